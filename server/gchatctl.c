/* SPDX-License-Identifier: GPL-3.0-or-later */
/* gchatctl, gchatd's administration tool: options and output around GchatdAdmin. */

#include "config.h"

#include <locale.h>
#include <stdlib.h>
#include <unistd.h>

#include <glib/gi18n-lib.h>

#include "gchat-crypto.h"
#include "gchatd-admin.h"
#include "gchatd-user-store.h"

/* Exit statuses: 1 when a command failed, 2 when it was not understood. */
#define EXIT_USAGE 2

static char *opt_config;
static char *opt_socket;
static gboolean opt_version;

static const GOptionEntry entries[] = {
  { "config", 'c', 0, G_OPTION_ARG_FILENAME, &opt_config,
    N_("Read gchatd’s configuration from FILE"), N_("FILE") },
  { "socket", 's', 0, G_OPTION_ARG_FILENAME, &opt_socket,
    N_("Talk to the gchatd whose control socket is PATH"), N_("PATH") },
  { "version", 0, 0, G_OPTION_ARG_NONE, &opt_version, N_("Show the version and exit"), NULL },
  { NULL }
};

static int
fail (const GError *error)
{
  g_printerr ("gchatctl: %s\n", error->message);
  return EXIT_FAILURE;
}

/* adduser and passwd: the password comes from the terminal, or a line of standard input. */
static int
run_with_password (GchatdAdmin *admin,
                   const char  *name,
                   gboolean     add)
{
  g_autoptr (GError) error = NULL;
  char *password;
  gboolean ok;

  if (!gchatd_user_name_validate (name, &error))
    return fail (error);
  password = gchatd_admin_read_password (STDIN_FILENO, name, TRUE, &error);
  if (password == NULL)
    return fail (error);

  if (add)
    ok = gchatd_admin_add_user (admin, name, password, &error);
  else
    ok = gchatd_admin_set_password (admin, name, password, &error);
  gchatd_admin_password_free (password);
  if (!ok)
    return fail (error);

  if (add)
    g_print (_("Added the user “%s”\n"), name);
  else
    g_print (_("Changed the password of “%s”\n"), name);
  return EXIT_SUCCESS;
}

static int
run_adduser (GchatdAdmin *admin,
             const char  *name)
{
  return run_with_password (admin, name, TRUE);
}

static int
run_passwd (GchatdAdmin *admin,
            const char  *name)
{
  return run_with_password (admin, name, FALSE);
}

static int
run_deluser (GchatdAdmin *admin,
             const char  *name)
{
  g_autoptr (GError) error = NULL;

  if (!gchatd_admin_delete_user (admin, name, &error))
    return fail (error);

  g_print (_("Deleted the user “%s”\n"), name);
  return EXIT_SUCCESS;
}

static int
run_revoke (GchatdAdmin *admin,
            const char  *name)
{
  g_autoptr (GError) error = NULL;

  if (!gchatd_admin_revoke_tickets (admin, name, &error))
    return fail (error);

  g_print (_("Revoked the resumption tickets of “%s”: its next reconnection needs the "
             "password\n"), name);
  return EXIT_SUCCESS;
}

static int
run_users (GchatdAdmin *admin,
           const char  *unused)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GArray) users = gchatd_admin_list_users (admin, &error);

  if (users == NULL)
    return fail (error);

  for (guint i = 0; i < users->len; i++)
    {
      const GchatdAdminUser *user = &g_array_index (users, GchatdAdminUser, i);
      g_autoptr (GDateTime) created = g_date_time_new_from_unix_utc (user->created);
      g_autofree char *when = created != NULL ? g_date_time_format (created, "%F %T UTC") : NULL;

      g_print ("%-*s  %s\n", GCHATD_USER_NAME_MAX_LENGTH, user->name, when != NULL ? when : "?");
    }
  return EXIT_SUCCESS;
}

static int
run_fingerprint (GchatdAdmin *admin,
                 const char  *unused)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *fingerprint = gchatd_admin_get_fingerprint (admin, &error);

  if (fingerprint == NULL)
    return fail (error);

  g_print ("%s\n", fingerprint);
  return EXIT_SUCCESS;
}

typedef struct {
  const char *name;
  gboolean    takes_name;
  int       (*run) (GchatdAdmin *admin,
                    const char  *name);
} Command;

static const Command commands[] = {
  { "adduser", TRUE, run_adduser },
  { "passwd", TRUE, run_passwd },
  { "deluser", TRUE, run_deluser },
  { "revoke", TRUE, run_revoke },
  { "users", FALSE, run_users },
  { "fingerprint", FALSE, run_fingerprint },
};

static int
usage_error (const char *message)
{
  g_printerr ("gchatctl: %s\n", message);
  g_printerr (_("Try “gchatctl --help” for the commands.\n"));
  return EXIT_USAGE;
}

/* Finds the command in @argv; NULL after reporting a usage error. */
static const Command *
find_command (int    argc,
              char **argv)
{
  g_autofree char *message = NULL;

  if (argc < 2)
    {
      usage_error (_("No command given"));
      return NULL;
    }
  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
    {
      if (g_strcmp0 (argv[1], commands[i].name) != 0)
        continue;
      if (argc == (commands[i].takes_name ? 3 : 2))
        return &commands[i];
      message = g_strdup_printf (commands[i].takes_name ? _("“%s” takes one user name")
                                                        : _("“%s” takes no arguments"),
                                 argv[1]);
      usage_error (message);
      return NULL;
    }

  message = g_strdup_printf (_("Unknown command “%s”"), argv[1]);
  usage_error (message);
  return NULL;
}

static int
run (const Command *command,
     const char    *name)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GchatConfig) config = NULL;
  g_autoptr (GchatdAdmin) admin = NULL;

  if (!gchat_crypto_init (&error) || (config = gchatd_config_load (opt_config, &error)) == NULL)
    return fail (error);
  for (const char * const *w = gchat_config_get_warnings (config); *w != NULL; w++)
    g_printerr ("gchatctl: %s\n", *w);

  admin = gchatd_admin_new (config, opt_socket);
  return command->run (admin, name);
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GError) error = NULL;
  const Command *command;
  int status;

  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);

  context = g_option_context_new (_("COMMAND [NAME]"));
  g_option_context_set_summary (context, _("Manages the accounts of gchatd, the gchat server."));
  g_option_context_set_description (
    context, _("Commands:\n"
               "  adduser NAME   Add an account; asks for its password\n"
               "  passwd NAME    Set a new password for an account\n"
               "  deluser NAME   Delete an account and end its session\n"
               "  revoke NAME    Refuse the account’s session resumption tickets so far\n"
               "  users          List the accounts\n"
               "  fingerprint    Show the server key’s fingerprint\n"
               "\n"
               "Passwords are read from the terminal without echo, or as one line of standard\n"
               "input when it is not a terminal. With gchatd running, every command goes\n"
               "through it; otherwise gchatctl edits its files directly.\n"));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    return usage_error (error->message);
  if (opt_version)
    {
      g_print ("gchatctl %s\n", PACKAGE_VERSION);
      return EXIT_SUCCESS;
    }

  command = find_command (argc, argv);
  status = command != NULL ? run (command, argc > 2 ? argv[2] : NULL) : EXIT_USAGE;

  g_free (opt_config);
  g_free (opt_socket);
  gchat_crypto_shutdown ();
  return status;
}
