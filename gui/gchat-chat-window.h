/* SPDX-License-Identifier: GPL-3.0-or-later */
/* One chat with one peer: the messages, their delivery state, and the entry. */

#pragma once

#include <gtk/gtk.h>

#include "gchat-application.h"

G_BEGIN_DECLS

#define GCHAT_TYPE_CHAT_WINDOW (gchat_chat_window_get_type ())

G_DECLARE_FINAL_TYPE (GchatChatWindow, gchat_chat_window, GCHAT, CHAT_WINDOW,
                      GtkApplicationWindow)

GchatChatWindow *gchat_chat_window_new      (GchatApplication *application,
                                             const char       *peer);
const char      *gchat_chat_window_get_peer (GchatChatWindow  *self);

G_END_DECLS
