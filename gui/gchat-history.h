/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The messages of one account, per peer, kept in files and loaded latest first. */

#pragma once

#include <gio/gio.h>

#include "gchat-chat-message.h"

G_BEGIN_DECLS

#define GCHAT_HISTORY_ERROR (gchat_history_error_quark ())

typedef enum {
  GCHAT_HISTORY_ERROR_IO,      /* a history file or folder could not be read or written */
  GCHAT_HISTORY_ERROR_INVALID, /* a name that cannot be a file name */
} GchatHistoryError;

#define GCHAT_TYPE_HISTORY (gchat_history_get_type ())

G_DECLARE_FINAL_TYPE (GchatHistory, gchat_history, GCHAT, HISTORY, GObject)

GQuark         gchat_history_error_quark  (void);

/* The history of @account on the server @host:@port, in
 * $XDG_DATA_HOME/gchat/history/HOST_PORT/ACCOUNT/ (or under @base when not NULL, for tests):
 * folders 0700, one file per peer, 0600. Nothing is read until a peer's messages are asked. */
GchatHistory  *gchat_history_new          (const char    *base,
                                           const char    *host,
                                           guint          port,
                                           const char    *account,
                                           GError       **error);

/* The messages with @peer, oldest first (a GListModel of GchatChatMessage). At first only the
 * latest ones are loaded (fast, whatever the file's size); gchat_history_load_older() puts
 * earlier ones in front. The same model is returned each time. */
GListModel    *gchat_history_get_messages (GchatHistory  *self,
                                           const char    *peer);
/* Loads up to @count earlier messages; returns how many were added (0: the beginning). */
guint          gchat_history_load_older   (GchatHistory  *self,
                                           const char    *peer,
                                           guint          count);

/* Appends @message to @peer's conversation (the model and, batched, the file). */
void           gchat_history_add          (GchatHistory      *self,
                                           const char        *peer,
                                           GchatChatMessage  *message);
/* A message of ours moved on: updates the model and records it in the file. */
void           gchat_history_set_state    (GchatHistory       *self,
                                           const char         *peer,
                                           guint64             id,
                                           GchatDeliveryState  state,
                                           GchatClientPath     path);
/* Writes what is pending now (it is also written within a second, and when disposed). */
gboolean       gchat_history_flush        (GchatHistory  *self,
                                           GError       **error);

G_END_DECLS
