/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The main window: who is online, unread counts, search, the connection state, log-out. */

#pragma once

#include <gtk/gtk.h>

#include "gchat-application.h"

G_BEGIN_DECLS

#define GCHAT_TYPE_CONTACTS_WINDOW (gchat_contacts_window_get_type ())

G_DECLARE_FINAL_TYPE (GchatContactsWindow, gchat_contacts_window, GCHAT, CONTACTS_WINDOW,
                      GtkApplicationWindow)

GchatContactsWindow *gchat_contacts_window_new (GchatApplication *application);

G_END_DECLS
