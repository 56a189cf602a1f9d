/* SPDX-License-Identifier: GPL-3.0-or-later */
/* One message of a chat, as shown and kept in the history. */

#pragma once

#include <glib-object.h>

#include "gchat-client.h"

G_BEGIN_DECLS

#define GCHAT_TYPE_CHAT_MESSAGE (gchat_chat_message_get_type ())

G_DECLARE_FINAL_TYPE (GchatChatMessage, gchat_chat_message, GCHAT, CHAT_MESSAGE, GObject)

/*
 * Properties: "id" (guint64), "outgoing" (gboolean), "sender" (string), "text" (string),
 * "time" (gint64, Unix seconds), "state" (GchatDeliveryState, notified when it changes),
 * "path" (GchatClientPath).
 */

GchatChatMessage   *gchat_chat_message_new        (guint64             id,
                                                   gboolean            outgoing,
                                                   const char         *sender,
                                                   const char         *text,
                                                   gint64              time,
                                                   GchatDeliveryState  state,
                                                   GchatClientPath     path);
guint64             gchat_chat_message_get_id       (GchatChatMessage *self);
gboolean            gchat_chat_message_get_outgoing (GchatChatMessage *self);
const char         *gchat_chat_message_get_sender   (GchatChatMessage *self);
const char         *gchat_chat_message_get_text     (GchatChatMessage *self);
gint64              gchat_chat_message_get_time     (GchatChatMessage *self);
GchatDeliveryState  gchat_chat_message_get_state    (GchatChatMessage *self);
GchatClientPath     gchat_chat_message_get_path     (GchatChatMessage *self);
void                gchat_chat_message_set_state    (GchatChatMessage   *self,
                                                     GchatDeliveryState  state,
                                                     GchatClientPath     path);

G_END_DECLS
