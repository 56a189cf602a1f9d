/* SPDX-License-Identifier: GPL-3.0-or-later */
/* gchat-cli's events on standard output: one a line, for a person or as JSON objects. */

#pragma once

#include <stdio.h>

#include <glib.h>

#include "gchat-client.h"

G_BEGIN_DECLS

typedef struct _GchatCliOutput GchatCliOutput;

/* Writes to @out (stdout in gchat-cli), flushing after every event. */
GchatCliOutput *gchat_cli_output_new       (FILE               *out,
                                            gboolean            json);
void            gchat_cli_output_free      (GchatCliOutput     *self);

/* "auth" or "sign": @error NULL when it succeeded, as @user; @retry_after (seconds) is added
 * when not 0. */
void            gchat_cli_output_login     (GchatCliOutput     *self,
                                            const char         *event,
                                            const char         *user,
                                            const GError       *error,
                                            guint               retry_after);
void            gchat_cli_output_presence  (GchatCliOutput     *self,
                                            const char         *user,
                                            gboolean            online);
void            gchat_cli_output_list      (GchatCliOutput     *self,
                                            const char * const *users);
void            gchat_cli_output_message   (GchatCliOutput     *self,
                                            const char         *from,
                                            const char         *text,
                                            GchatClientPath     path,
                                            guint64             id);
void            gchat_cli_output_sent      (GchatCliOutput     *self,
                                            guint64             id,
                                            const char         *to,
                                            GchatDeliveryState  state,
                                            GchatClientPath     path,
                                            const GError       *error);
/* @fingerprint, when not NULL, is added as its own member. */
void            gchat_cli_output_error     (GchatCliOutput     *self,
                                            const char         *message,
                                            const char         *fingerprint);
void            gchat_cli_output_state     (GchatCliOutput     *self,
                                            GchatClientState    state,
                                            const char         *reason);
void            gchat_cli_output_trusted   (GchatCliOutput     *self,
                                            const char         *fingerprint);
void            gchat_cli_output_help      (GchatCliOutput     *self);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (GchatCliOutput, gchat_cli_output_free)

G_END_DECLS
