/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The gchat application: one GchatClient, the windows, unread counts and notifications. */

#pragma once

#include <gtk/gtk.h>

#include "gchat-client.h"
#include "gchat-history.h"

G_BEGIN_DECLS

/* The one reverse-DNS id of the desktop file, icon, schema, metainfo and resources. */
#define GCHAT_APPLICATION_ID "io.github.gchat.Gchat"

#define GCHAT_TYPE_APPLICATION (gchat_application_get_type ())

G_DECLARE_FINAL_TYPE (GchatApplication, gchat_application, GCHAT, APPLICATION, GtkApplication)

/*
 * Signals:
 *   "unread-changed" (const char *peer): the unread count of @peer, and so the total, changed
 *
 * Actions (app.*): "about", "quit", "log-out", "open-chat" (s: the peer), "search".
 */

GchatApplication *gchat_application_new              (void);

GchatClient      *gchat_application_get_client       (GchatApplication *self);
GSettings        *gchat_application_get_settings     (GchatApplication *self);
/* The history of the account logged in, or NULL while logged out. */
GchatHistory     *gchat_application_get_history      (GchatApplication *self);

/* Opens the chat window of @peer, or raises it when it exists. */
GtkWindow        *gchat_application_open_chat        (GchatApplication *self,
                                                      const char       *peer);

guint             gchat_application_get_unread       (GchatApplication *self,
                                                      const char       *peer);
guint             gchat_application_get_total_unread (GchatApplication *self);
/* The user has seen the messages of @peer (its window has the focus). */
void              gchat_application_mark_read        (GchatApplication *self,
                                                      const char       *peer);

/* Sends @text to @peer and records it in the history; FALSE and an error for a text that can
 * never be sent (empty or too long). */
gboolean          gchat_application_send             (GchatApplication *self,
                                                      const char       *peer,
                                                      const char       *text,
                                                      GError          **error);

G_END_DECLS
