/* SPDX-License-Identifier: GPL-3.0-or-later */
/* gchat's entry point: set up translations and crypto, then run the application. */

#include "config.h"

#include <glib/gi18n.h>
#include <locale.h>

#include "gchat-application.h"
#include "gchat-crypto.h"

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GchatApplication) app = NULL;
  g_autoptr(GError) error = NULL;
  int status;

  setlocale (LC_ALL, "");
  /* Run from the build tree (tests), the translations are not installed yet. */
  bindtextdomain (GETTEXT_PACKAGE, g_getenv ("GCHAT_LOCALEDIR") != NULL ? g_getenv ("GCHAT_LOCALEDIR")
                                                                          : LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);

  if (!gchat_crypto_init (&error))
    {
      g_printerr ("%s\n", error->message);
      return 1;
    }
  app = gchat_application_new ();
  status = g_application_run (G_APPLICATION (app), argc, argv);
  g_clear_object (&app);
  gchat_crypto_shutdown ();
  return status;
}
