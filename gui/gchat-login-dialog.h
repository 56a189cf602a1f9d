/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The log-in dialog: server, user name, password; log in or create an account. */

#pragma once

#include <gtk/gtk.h>

#include "gchat-application.h"

G_BEGIN_DECLS

#define GCHAT_TYPE_LOGIN_DIALOG (gchat_login_dialog_get_type ())

G_DECLARE_FINAL_TYPE (GchatLoginDialog, gchat_login_dialog, GCHAT, LOGIN_DIALOG,
                      GtkApplicationWindow)

/*
 * Signals:
 *   "logged-in" (): the client is online; the application shows the contact list
 */

GchatLoginDialog *gchat_login_dialog_new       (GchatApplication *application);
/* Shows @message (for people) under the form, or hides it when NULL: why the session ended. */
void              gchat_login_dialog_set_error (GchatLoginDialog *self,
                                                const char       *message);

G_END_DECLS
