/* SPDX-License-Identifier: GPL-3.0-or-later */
/* gchatd's entry point: options, configuration, the server object and the main loop. */

#include "config.h"

#include <locale.h>
#include <stdlib.h>

#include <glib-unix.h>
#include <glib/gi18n-lib.h>
#include <gio/gunixsocketaddress.h>

#include "gchat-crypto.h"
#include "gchatd-admin.h"
#include "gchatd-server.h"

/* How long a stop may wait for the store and for clients to get their `bye`. */
#define STOP_FLUSH_TIMEOUT_MS 1000
#define STOP_DRAIN_TIMEOUT_MS 800
/* The mailbox may have a save of several users' boxes to finish; what it holds was promised. */
#define STOP_MAILBOX_TIMEOUT_MS 3000

static char *opt_config;
static gboolean opt_version;
static gboolean opt_verbose;
static gboolean opt_print_fingerprint;

static const GOptionEntry entries[] = {
  { "config", 'c', 0, G_OPTION_ARG_FILENAME, &opt_config,
    N_("Read the configuration from FILE"), N_("FILE") },
  { "version", 0, 0, G_OPTION_ARG_NONE, &opt_version, N_("Show the version and exit"), NULL },
  { "verbose", 'v', 0, G_OPTION_ARG_NONE, &opt_verbose, N_("Log debugging messages"), NULL },
  { "print-fingerprint", 0, 0, G_OPTION_ARG_NONE, &opt_print_fingerprint,
    N_("Print the server key's fingerprint and exit"), NULL },
  { NULL }
};

/* Tells systemd (Type=notify) about the service's state, without libsystemd. */
static void
notify_systemd (const char *state)
{
  const char *path = g_getenv ("NOTIFY_SOCKET");
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketAddress) address = NULL;

  if (path == NULL || (path[0] != '/' && path[0] != '@'))
    return;
  socket = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_DATAGRAM, 0, NULL);
  if (path[0] == '@')
    address = g_unix_socket_address_new_with_type (path + 1, -1,
                                                   G_UNIX_SOCKET_ADDRESS_ABSTRACT);
  else
    address = g_unix_socket_address_new (path);
  if (socket != NULL)
    g_socket_send_to (socket, address, state, strlen (state), NULL, NULL);
}

static GchatConfig *
load_config (GError **error)
{
  GchatConfig *config = gchatd_config_load (opt_config, error);

  if (config == NULL)
    return NULL;
  /* g_message, not g_warning: a typo in a config file is not a bug in gchatd. */
  for (const char * const *w = gchat_config_get_warnings (config); *w != NULL; w++)
    g_message ("%s", *w);
  return config;
}

/* --print-fingerprint reads the public key, so it works beside a running gchatd (which holds
 * the store lock); only before the first start does it make the key pair. */
static int
print_fingerprint (GchatConfig *config)
{
  g_autoptr(GchatdPaths) paths = gchatd_paths_resolve (config);
  g_autoptr(GchatRsaKey) key = NULL;
  g_autoptr(GchatdServer) server = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *fingerprint = NULL;

  if (g_file_test (paths->public_key, G_FILE_TEST_EXISTS))
    key = gchat_rsa_key_load_public (paths->public_key, &error);
  else if ((server = gchatd_server_new (config, &error)) != NULL)
    key = g_object_ref (gchatd_server_get_key (server));
  if (key == NULL)
    {
      g_printerr ("gchatd: %s\n", error->message);
      return EXIT_FAILURE;
    }
  fingerprint = gchat_rsa_key_get_fingerprint (key);
  g_print ("%s\n", fingerprint);
  return EXIT_SUCCESS;
}

/* SIGHUP: the configuration file again, for what can change live. */
static gboolean
reload_cb (gpointer user_data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatConfig) config = NULL;

  notify_systemd ("RELOADING=1");
  config = load_config (&error);
  if (config == NULL)
    g_message ("Keeping the running configuration: %s", error->message);
  else
    gchatd_server_reload (user_data, config);
  notify_systemd ("READY=1");
  return G_SOURCE_CONTINUE;
}

static gboolean
stop_cb (gpointer user_data)
{
  g_main_loop_quit (user_data);
  return G_SOURCE_CONTINUE;
}

static void
flush_mailbox (GchatdServer *server)
{
  g_autoptr(GError) error = NULL;

  if (!gchatd_server_flush_mailbox (server, STOP_MAILBOX_TIMEOUT_MS, &error))
    g_message ("The mailbox may have lost the latest changes: %s", error->message);
}

/* Tells every client, waits for the store and the mailbox, then gives the `bye` messages a
 * moment to leave. The mailbox is flushed again after that: an acknowledgement that completed
 * meanwhile may have started a receipt. */
static void
stop_server (GchatdServer *server)
{
  g_autoptr(GError) error = NULL;
  gint64 deadline = g_get_monotonic_time () + STOP_DRAIN_TIMEOUT_MS * 1000;

  notify_systemd ("STOPPING=1");
  gchatd_server_stop (server);
  if (!gchatd_user_store_flush_sync (gchatd_server_get_store (server), STOP_FLUSH_TIMEOUT_MS,
                                     &error))
    g_message ("The user store may have lost the latest sign-ups: %s", error->message);
  flush_mailbox (server);
  while (gchatd_server_get_n_connections (server) > 0 && g_get_monotonic_time () < deadline)
    {
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (1000);
    }
  for (guint i = 0; i < 1000 && g_main_context_iteration (NULL, FALSE); i++)
    ;
  flush_mailbox (server);
  g_message ("Stopped");
}

static int
run (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatConfig) config = NULL;
  g_autoptr(GchatdServer) server = NULL;
  g_autoptr(GMainLoop) loop = NULL;

  if (!gchat_crypto_init (&error) || (config = load_config (&error)) == NULL)
    {
      g_printerr ("gchatd: %s\n", error->message);
      return EXIT_FAILURE;
    }
  if (opt_print_fingerprint)
    return print_fingerprint (config);
  if ((server = gchatd_server_new (config, &error)) == NULL)
    {
      g_printerr ("gchatd: %s\n", error->message);
      return EXIT_FAILURE;
    }
  if (!gchatd_server_start (server, &error))
    {
      g_printerr ("gchatd: %s\n", error->message);
      return EXIT_FAILURE;
    }
  loop = g_main_loop_new (NULL, FALSE);
  g_unix_signal_add (SIGTERM, stop_cb, loop);
  g_unix_signal_add (SIGINT, stop_cb, loop);
  g_unix_signal_add (SIGHUP, reload_cb, server);
  notify_systemd ("READY=1");
  g_main_loop_run (loop);
  stop_server (server);
  return EXIT_SUCCESS;
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  int status;

  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);

  context = g_option_context_new (NULL);
  g_option_context_set_summary (context, _("The gchat server"));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("gchatd: %s\n", error->message);
      return EXIT_FAILURE;
    }
  if (opt_version)
    {
      g_print ("gchatd %s\n", PACKAGE_VERSION);
      return EXIT_SUCCESS;
    }
  if (opt_verbose)
    g_log_set_debug_enabled (TRUE);
  status = run ();
  g_free (opt_config);
  gchat_crypto_shutdown ();
  return status;
}
