/* SPDX-License-Identifier: GPL-3.0-or-later */
/* gchat-cli, the reference command-line client: options, the client, and the session's loop. */

#include "config.h"

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <glib-unix.h>
#include <glib/gi18n-lib.h>
#include <gio/gunixinputstream.h>

#include "gchat-cli-session.h"
#include "gchat-client.h"
#include "gchat-crypto.h"
#include "gchat-rsa-key.h"

/* Exit statuses: 1 when something failed, 2 when the command line was not understood. */
#define EXIT_USAGE 2

static char *opt_config;
static char *opt_server;
static int opt_port = -1;
static char *opt_server_key;
static gboolean opt_accept_new_server_key;
static gboolean opt_json;
static gboolean opt_version;
static int opt_direct_loss = -1;
static int opt_datagram_loss = -1;

static const GOptionEntry entries[] = {
  { "config", 'c', 0, G_OPTION_ARG_FILENAME, &opt_config,
    N_("Read the client configuration from FILE"), N_("FILE") },
  { "server", 's', 0, G_OPTION_ARG_STRING, &opt_server,
    N_("Connect to the gchat server on HOST"), N_("HOST") },
  { "port", 'p', 0, G_OPTION_ARG_INT, &opt_port, N_("Connect to the server’s TCP port N"),
    N_("N") },
  { "server-key", 'k', 0, G_OPTION_ARG_FILENAME, &opt_server_key,
    N_("Trust only the server key in FILE (PEM, as the server’s administrator handed it out)"),
    N_("FILE") },
  { "accept-new-server-key", 0, 0, G_OPTION_ARG_NONE, &opt_accept_new_server_key,
    N_("Remember the key of a server seen for the first time without asking"), NULL },
  { "json", 'j', 0, G_OPTION_ARG_NONE, &opt_json,
    N_("Print each event as one JSON object a line, for scripts"), NULL },
  { "version", 0, 0, G_OPTION_ARG_NONE, &opt_version, N_("Show the version and exit"), NULL },
  /* For tests and demonstrations only. */
  { "direct-loss", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_INT, &opt_direct_loss,
    N_("Drop PERCENT of the direct datagrams sent"), N_("PERCENT") },
  { "datagram-loss", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_INT, &opt_datagram_loss,
    N_("Drop PERCENT of all datagrams sent"), N_("PERCENT") },
  { NULL }
};

static const char description[] = N_(
  "Commands, one a line on standard input:\n"
  "  sign USER PASSWORD   Create an account and log in\n"
  "  auth USER PASSWORD   Log in\n"
  "  list                 Show who is online\n"
  "  send USER TEXT       Send TEXT, the rest of the line as typed, to USER\n"
  "  trust FINGERPRINT    Trust the server key of that fingerprint (an addition to the\n"
  "                       original’s commands), then log in again\n"
  "  help                 Show the commands\n"
  "  quit                 Log out and exit (so does the end of input)\n"
  "\n"
  "Commands run in order: a command waits for the log-in before it. Before exiting, the\n"
  "messages sent so far get up to 10 seconds to be delivered or held by the server.\n"
  "\n"
  "Events are printed one a line on standard output. With --json each is an object whose\n"
  "\"event\" member is auth, sign, presence, list, message, sent or error, as the original\n"
  "client’s output, or one of these additions: state (the connection changed: connecting,\n"
  "online, reconnecting, offline, with a \"message\" saying why), trust and help.\n"
  "\n"
  "The configuration file uses the original’s keys server_address, server_port and\n"
  "server_certificate; by default it is $XDG_CONFIG_HOME/gchat/config.yaml when that exists.\n"
  "Options given on the command line win over the file.\n");

static int
usage_error (const char *message)
{
  g_printerr ("gchat-cli: %s\n", message);
  g_printerr (_("Try “gchat-cli --help” for the options and commands.\n"));
  return EXIT_USAGE;
}

static int
fail (const GError *error)
{
  g_printerr ("gchat-cli: %s\n", error->message);
  return EXIT_FAILURE;
}

/* The options a parser cannot check by itself; the message for the first one out of range. */
static char *
check_ranges (void)
{
  if (opt_port != -1 && (opt_port < 1 || opt_port > 65535))
    return g_strdup_printf (_("The port must be from 1 to 65535, not %d"), opt_port);
  if (opt_direct_loss != -1 && (opt_direct_loss < 0 || opt_direct_loss > 100))
    return g_strdup_printf (_("--direct-loss must be from 0 to 100, not %d"), opt_direct_loss);
  if (opt_datagram_loss != -1 && (opt_datagram_loss < 0 || opt_datagram_loss > 100))
    return g_strdup_printf (_("--datagram-loss must be from 0 to 100, not %d"),
                            opt_datagram_loss);
  return NULL;
}

/* The configuration file first, then the options over it. */
static gboolean
configure (GchatClient *client,
           GError     **error)
{
  g_autofree char *default_config = g_build_filename (g_get_user_config_dir (), "gchat",
                                                      "config.yaml", NULL);
  const char *config = opt_config;

  if (config == NULL && g_file_test (default_config, G_FILE_TEST_EXISTS))
    config = default_config;
  if (config != NULL && !gchat_client_apply_config (client, config, error))
    return FALSE;

  if (opt_server != NULL)
    g_object_set (client, "server-host", opt_server, NULL);
  if (opt_port != -1)
    g_object_set (client, "server-port", (guint) opt_port, NULL);
  if (opt_server_key != NULL)
    {
      g_autoptr(GchatRsaKey) key = gchat_rsa_key_load_public (opt_server_key, error);

      if (key == NULL)
        return FALSE;
      g_object_set (client, "server-key", key, NULL);
    }
  if (opt_accept_new_server_key)
    g_object_set (client, "accept-new-server-key", TRUE, NULL);
  if (opt_direct_loss != -1)
    g_object_set (client, "direct-loss", (guint) opt_direct_loss, NULL);
  if (opt_datagram_loss != -1)
    g_object_set (client, "datagram-loss", (guint) opt_datagram_loss, NULL);
  return TRUE;
}

static gboolean
stop_cb (gpointer user_data)
{
  gchat_cli_session_stop (user_data);
  return G_SOURCE_CONTINUE;
}

static int
run (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatClient) client = NULL;
  g_autoptr(GInputStream) input = NULL;
  g_autoptr(GchatCliSession) session = NULL;
  guint sigint_id, sigterm_id;
  int status;

  if (!gchat_crypto_init (&error))
    return fail (error);
  client = gchat_client_new ();
  if (!configure (client, &error))
    return fail (error);

  input = g_unix_input_stream_new (STDIN_FILENO, FALSE);
  session = gchat_cli_session_new (client, gchat_cli_output_new (stdout, opt_json), input);
  sigint_id = g_unix_signal_add (SIGINT, stop_cb, session);
  sigterm_id = g_unix_signal_add (SIGTERM, stop_cb, session);
  status = gchat_cli_session_run (session);
  g_source_remove (sigint_id);
  g_source_remove (sigterm_id);
  return status;
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *range_error = NULL;
  int status;

  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);
  /* Standard output carries events only; whatever is logged goes to standard error. */
  g_log_writer_default_set_use_stderr (TRUE);

  context = g_option_context_new (NULL);
  g_option_context_set_translation_domain (context, GETTEXT_PACKAGE);
  g_option_context_set_summary (context, _("Chats through a gchat server, reading commands "
                                           "from standard input."));
  g_option_context_set_description (context, _(description));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    return usage_error (error->message);
  if (argc > 1)
    return usage_error (_("Commands come on standard input, not as arguments"));
  if ((range_error = check_ranges ()) != NULL)
    return usage_error (range_error);
  if (opt_version)
    {
      g_print ("gchat-cli %s\n", PACKAGE_VERSION);
      return EXIT_SUCCESS;
    }

  status = run ();
  g_free (opt_config);
  g_free (opt_server);
  g_free (opt_server_key);
  gchat_crypto_shutdown ();
  return status;
}
