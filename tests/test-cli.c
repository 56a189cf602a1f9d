/* SPDX-License-Identifier: GPL-3.0-or-later */
/* gchat-cli: its command parser and line reader, then whole conversations against a real gchatd. */

#include "config.h"

#include <signal.h>
#include <string.h>

#include <json-glib/json-glib.h>

#include "gchat-cli-command.h"
#include "gchat-cli-line-reader.h"
#include "gchat-test-util.h"
#include "gchatd-test-client.h"

/* No single event takes longer than this to show, so a failure never hangs. */
#define EVENT_TIMEOUT_US (gchat_test_scale_us (20 * G_USEC_PER_SEC))
#define WRONG_PASSWORD   "not the password 42"

/* The parser */

static GchatCliCommand *
parse (const char *line)
{
  g_autoptr(GError) error = NULL;
  GchatCliCommand *command = gchat_cli_command_parse (line, strlen (line), &error);

  g_assert_no_error (error);
  g_assert_nonnull (command);
  return command;
}

static void
assert_parse_error (const char *line,
                    gsize       len,
                    int         code)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatCliCommand) command = gchat_cli_command_parse (line, len, &error);

  g_assert_null (command);
  g_assert_error (error, GCHAT_CLI_ERROR, code);
}

static void
test_parse (void)
{
  g_autoptr(GchatCliCommand) sign = parse ("sign alice correct horse");
  g_autoptr(GchatCliCommand) auth = parse ("  AUTH alice pw");
  g_autoptr(GchatCliCommand) send = parse ("send bob  two  spaces, \"quotes\" \\ é ");
  g_autoptr(GchatCliCommand) list = parse ("list  ");
  g_autoptr(GchatCliCommand) stop = parse ("STOP");
  g_autoptr(GchatCliCommand) empty = parse ("   ");
  g_autoptr(GchatCliCommand) trust = parse ("trust  ab12 cd34 ");

  g_assert_cmpint (sign->type, ==, GCHAT_CLI_COMMAND_SIGN);
  g_assert_cmpstr (sign->user, ==, "alice");
  g_assert_cmpstr (sign->password, ==, "correct horse");
  g_assert_cmpint (auth->type, ==, GCHAT_CLI_COMMAND_AUTH);
  g_assert_cmpstr (auth->password, ==, "pw");
  g_assert_cmpint (send->type, ==, GCHAT_CLI_COMMAND_SEND);
  g_assert_cmpstr (send->user, ==, "bob");
  /* After exactly one space, the text is kept as typed. */
  g_assert_cmpstr (send->text, ==, " two  spaces, \"quotes\" \\ é ");
  g_assert_cmpint (list->type, ==, GCHAT_CLI_COMMAND_LIST);
  g_assert_cmpint (stop->type, ==, GCHAT_CLI_COMMAND_QUIT);
  g_assert_cmpint (empty->type, ==, GCHAT_CLI_COMMAND_NONE);
  g_assert_cmpstr (trust->text, ==, "ab12 cd34");

  assert_parse_error ("frobnicate secret", 17, GCHAT_CLI_ERROR_UNKNOWN_COMMAND);
  assert_parse_error ("send bob", 8, GCHAT_CLI_ERROR_USAGE);
  assert_parse_error ("send bob ", 9, GCHAT_CLI_ERROR_USAGE);
  assert_parse_error ("auth alice", 10, GCHAT_CLI_ERROR_USAGE);
  assert_parse_error ("list all", 8, GCHAT_CLI_ERROR_USAGE);
  assert_parse_error ("trust  ", 7, GCHAT_CLI_ERROR_USAGE);
  assert_parse_error ("send bob \xff", 10, GCHAT_CLI_ERROR_BAD_ENCODING);
  assert_parse_error ("send bob a\0b", 12, GCHAT_CLI_ERROR_BAD_ENCODING);
}

static void
test_unknown_command_quotes_nothing (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatCliCommand) command = gchat_cli_command_parse ("hunter2", 7, &error);

  /* A password typed on a line of its own is not shown back. */
  g_assert_null (command);
  g_assert_null (strstr (error->message, "hunter2"));
}

static void
test_fingerprint (void)
{
  const char *formatted = "3f2a 9c01 3f2a 9c01 3f2a 9c01 3f2a 9c01 "
                          "3f2a 9c01 3f2a 9c01 3f2a 9c01 3f2a 9c01";
  g_autofree char *spaced = gchat_cli_normalize_fingerprint (formatted);
  g_autofree char *packed = gchat_cli_normalize_fingerprint (
    " 3F2A9C013F2A9C013F2A9C013F2A9C01:3F2A9C013F2A9C013F2A9C013F2A9C01 ");
  g_autofree char *other = gchat_cli_normalize_fingerprint (" not a fingerprint ");

  g_assert_cmpstr (spaced, ==, formatted);
  g_assert_cmpstr (packed, ==, formatted);
  g_assert_cmpstr (other, ==, "not a fingerprint");
}

/* The line reader */

typedef struct {
  GchatCliLineReader *reader;
  GPtrArray          *lines; /* "ERROR" for a skipped line */
  gboolean            done;
} ReadAll;

static void
read_all_cb (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  ReadAll *all = user_data;
  g_autoptr(GError) error = NULL;
  gsize len;
  char *line = gchat_cli_line_reader_read_finish (all->reader, result, &len, &error);

  if (error != NULL)
    {
      g_assert_error (error, GCHAT_CLI_ERROR, GCHAT_CLI_ERROR_LINE_TOO_LONG);
      g_ptr_array_add (all->lines, g_strdup ("ERROR"));
    }
  else if (line == NULL)
    {
      all->done = TRUE;
      return;
    }
  else
    {
      g_assert_cmpuint (strlen (line), ==, len);
      g_ptr_array_add (all->lines, line);
    }
  gchat_cli_line_reader_read_async (all->reader, NULL, read_all_cb, all);
}

static gboolean
read_all_done (gpointer data)
{
  return ((ReadAll *) data)->done;
}

static void
test_line_reader (void)
{
  g_autoptr(GString) input = g_string_new ("one\r\ntwo\n\n");
  g_autoptr(GInputStream) stream = NULL;
  g_autoptr(GPtrArray) lines = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *longest = g_strnfill (16, 'x');
  ReadAll all = { NULL, lines, FALSE };
  const char *expected[] = { "one", "two", "", "ERROR", longest, "ERROR", "ERROR", "last" };

  /* With a bound of 16 bytes: lines of 17 and 40 bytes are skipped, one of 16 is read, and so
   * is a last line without a newline. */
  g_string_append_printf (input, "%sy\n%s\n", longest, longest);
  g_string_append_printf (input, "%s%szzzzzzzz\nq%s\nlast", longest, longest, longest);
  stream = g_memory_input_stream_new_from_data (g_memdup2 (input->str, input->len), input->len,
                                                g_free);
  all.reader = gchat_cli_line_reader_new (stream, 16);
  gchat_cli_line_reader_read_async (all.reader, NULL, read_all_cb, &all);
  test_iterate_until (read_all_done, &all);

  g_assert_cmpuint (lines->len, ==, G_N_ELEMENTS (expected));
  for (guint i = 0; i < lines->len; i++)
    g_assert_cmpstr (g_ptr_array_index (lines, i), ==, expected[i]);
  g_object_unref (all.reader);
}

/* A running gchat-cli */

typedef struct {
  char               *name;
  GSubprocess        *process;
  GOutputStream      *in;
  GDataInputStream   *out;
  GMemoryOutputStream *err;
  GCancellable       *cancellable;
  GQueue              events;  /* JsonObject, not yet expected */
  GPtrArray          *lines;   /* every line of stdout, for the password check */
  gboolean            reading;
  gboolean            eof;
  gboolean            splicing;
} Cli;

static void read_next_line (Cli *cli);

static void
line_cb (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  Cli *cli = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autofree char *line = g_data_input_stream_read_line_finish_utf8 (cli->out, result, NULL,
                                                                     &error);

  cli->reading = FALSE;
  if (line == NULL)
    {
      cli->eof = TRUE;
      return;
    }
  /* Every line is exactly one JSON object. */
  if (!json_parser_load_from_data (parser, line, -1, &error)
      || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    g_error ("%s printed a line that is not a JSON object: %s", cli->name, line);
  g_queue_push_tail (&cli->events, json_object_ref (json_node_get_object (json_parser_get_root (parser))));
  g_ptr_array_add (cli->lines, g_steal_pointer (&line));
  read_next_line (cli);
}

static void
read_next_line (Cli *cli)
{
  cli->reading = TRUE;
  g_data_input_stream_read_line_async (cli->out, G_PRIORITY_DEFAULT, cli->cancellable, line_cb,
                                       cli);
}

static void
splice_cb (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  Cli *cli = user_data;

  g_output_stream_splice_finish (G_OUTPUT_STREAM (source), result, NULL);
  cli->splicing = FALSE;
}

/* Runs gchat-cli as @name would, with its own configuration and data folders under @home. */
static Cli *
cli_spawn (const char *home,
           const char *name,
           guint16     port,
           const char *extra)
{
  g_autoptr(GSubprocessLauncher) launcher =
    test_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE
                       | G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_autofree char *config_home = g_build_filename (home, name, "config", NULL);
  g_autofree char *data_home = g_build_filename (home, name, "data", NULL);
  g_autofree char *port_text = g_strdup_printf ("%u", port);
  g_autoptr(GPtrArray) argv = gchat_test_argv_new (g_getenv ("GCHAT_CLI"));
  const char *args[] = { "--json", "--accept-new-server-key", "--server", "127.0.0.1", "--port",
                         port_text, extra };
  g_autoptr(GError) error = NULL;
  Cli *cli = g_new0 (Cli, 1);

  g_assert_no_errno (g_mkdir_with_parents (config_home, 0700));
  g_assert_no_errno (g_mkdir_with_parents (data_home, 0700));
  g_subprocess_launcher_setenv (launcher, "XDG_CONFIG_HOME", config_home, TRUE);
  g_subprocess_launcher_setenv (launcher, "XDG_DATA_HOME", data_home, TRUE);
  cli->name = g_strdup (name);
  for (gsize i = 0; i < G_N_ELEMENTS (args) && args[i] != NULL; i++)
    g_ptr_array_add (argv, (gpointer) args[i]);
  g_ptr_array_add (argv, NULL);
  cli->process = g_subprocess_launcher_spawnv (launcher, (const char * const *) argv->pdata,
                                               &error);
  g_assert_no_error (error);
  cli->in = g_subprocess_get_stdin_pipe (cli->process);
  cli->out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (cli->process));
  cli->err = G_MEMORY_OUTPUT_STREAM (g_memory_output_stream_new_resizable ());
  cli->cancellable = g_cancellable_new ();
  cli->lines = g_ptr_array_new_with_free_func (g_free);
  g_queue_init (&cli->events);
  read_next_line (cli);
  /* Its log is kept, to show on a failure and to check it never holds a password. */
  cli->splicing = TRUE;
  g_output_stream_splice_async (G_OUTPUT_STREAM (cli->err),
                                g_subprocess_get_stderr_pipe (cli->process),
                                G_OUTPUT_STREAM_SPLICE_CLOSE_TARGET, G_PRIORITY_DEFAULT,
                                cli->cancellable, splice_cb, cli);
  return cli;
}

static char *
cli_log (Cli *cli)
{
  gsize size = g_memory_output_stream_get_data_size (cli->err);
  const char *data = g_memory_output_stream_get_data (cli->err);

  return data != NULL ? g_strndup (data, size) : g_strdup ("");
}

static void
cli_assert_no_secrets (Cli *cli)
{
  g_autofree char *log = cli_log (cli);

  for (guint i = 0; i < cli->lines->len; i++)
    {
      g_assert_null (strstr (g_ptr_array_index (cli->lines, i), TEST_PASSWORD));
      g_assert_null (strstr (g_ptr_array_index (cli->lines, i), WRONG_PASSWORD));
    }
  g_assert_null (strstr (log, TEST_PASSWORD));
  g_assert_null (strstr (log, WRONG_PASSWORD));
}

static void
cli_free (Cli *cli)
{
  cli_assert_no_secrets (cli);
  g_subprocess_force_exit (cli->process);
  g_cancellable_cancel (cli->cancellable);
  while (cli->reading || cli->splicing)
    g_main_context_iteration (NULL, TRUE);
  g_queue_clear_full (&cli->events, (GDestroyNotify) json_object_unref);
  g_ptr_array_unref (cli->lines);
  g_clear_object (&cli->out);
  g_clear_object (&cli->err);
  g_clear_object (&cli->cancellable);
  g_clear_object (&cli->process);
  g_free (cli->name);
  g_free (cli);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Cli, cli_free)

static void
cli_write (Cli        *cli,
           const char *line)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *text = g_strconcat (line, "\n", NULL);

  g_assert_true (g_output_stream_write_all (cli->in, text, strlen (text), NULL, NULL, &error));
  g_assert_no_error (error);
}

static void
cli_close_input (Cli *cli)
{
  g_assert_true (g_output_stream_close (cli->in, NULL, NULL));
}

/* Whether @object has @member with the value @value: a string, or "true"/"false". */
static gboolean
member_is (JsonObject *object,
           const char *member,
           const char *value)
{
  JsonNode *node = json_object_get_member (object, member);

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node))
    return FALSE;
  if (json_node_get_value_type (node) == G_TYPE_BOOLEAN)
    return g_str_equal (value, json_node_get_boolean (node) ? "true" : "false");
  if (json_node_get_value_type (node) == G_TYPE_STRING)
    return g_str_equal (value, json_node_get_string (node));
  return FALSE;
}

static gboolean
matches (JsonObject *object,
         const char *event,
         GPtrArray  *pairs)
{
  if (!member_is (object, "event", event))
    return FALSE;
  for (guint i = 0; i + 1 < pairs->len; i += 2)
    {
      if (!member_is (object, g_ptr_array_index (pairs, i), g_ptr_array_index (pairs, i + 1)))
        return FALSE;
    }
  return TRUE;
}

/* Removes and returns the first event that matches, waiting for it when none has come yet. */
static JsonObject *
cli_find (Cli        *cli,
          const char *event,
          GPtrArray  *pairs)
{
  for (GList *l = cli->events.head; l != NULL; l = l->next)
    {
      if (matches (l->data, event, pairs))
        {
          JsonObject *found = l->data;

          g_queue_delete_link (&cli->events, l);
          return found;
        }
    }
  return NULL;
}

static G_GNUC_NORETURN void
cli_timed_out (Cli        *cli,
               const char *event)
{
  g_autoptr(GString) seen = g_string_new (NULL);
  g_autofree char *log = cli_log (cli);

  for (guint i = 0; i < cli->lines->len; i++)
    g_string_append_printf (seen, "  %s\n", (char *) g_ptr_array_index (cli->lines, i));
  g_error ("%s: no “%s” event came %s. Its output:\n%sIts log:\n%s", cli->name, event,
           cli->eof ? "before it exited" : "in time", seen->str, log);
}

/* Waits for an event @event whose members, given in pairs up to NULL, have those values. */
G_GNUC_NULL_TERMINATED
static JsonObject *
cli_expect (Cli        *cli,
            const char *event,
            ...)
{
  g_autoptr(GPtrArray) pairs = g_ptr_array_new ();
  gint64 deadline = g_get_monotonic_time () + EVENT_TIMEOUT_US;
  const char *arg;
  JsonObject *found;
  va_list args;

  va_start (args, event);
  while ((arg = va_arg (args, const char *)) != NULL)
    g_ptr_array_add (pairs, (gpointer) arg);
  va_end (args);

  while ((found = cli_find (cli, event, pairs)) == NULL)
    {
      if (g_get_monotonic_time () > deadline || cli->eof)
        cli_timed_out (cli, event);
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (2000);
    }
  return found;
}


static void
wait_cb (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  g_subprocess_wait_finish (G_SUBPROCESS (source), result, NULL);
  *(gboolean *) user_data = TRUE;
}

/* Waits for gchat-cli to exit and returns its status. */
static int
cli_wait_exit (Cli *cli)
{
  gint64 deadline = g_get_monotonic_time () + EVENT_TIMEOUT_US;
  gboolean done = FALSE;

  g_subprocess_wait_async (cli->process, NULL, wait_cb, &done);
  while (!done)
    {
      if (g_get_monotonic_time () > deadline)
        cli_timed_out (cli, "(exit)");
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (2000);
    }
  /* What it printed last is read too. */
  while (!cli->eof && g_main_context_iteration (NULL, TRUE))
    ;
  g_assert_true (g_subprocess_get_if_exited (cli->process));
  if (g_subprocess_get_exit_status (cli->process) != 0)
    {
      g_autofree char *log = cli_log (cli);

      g_test_message ("%s exited with status %d; its log:\n%s", cli->name,
                      g_subprocess_get_exit_status (cli->process), log);
    }
  return g_subprocess_get_exit_status (cli->process);
}

/* A gchatd of its own */

typedef struct {
  char        *dir;
  GSubprocess *daemon;
  guint16      port;
} Daemon;

static void
daemon_start (Daemon *d)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *config_path = NULL;
  g_autofree char *key_path = NULL;
  g_autofree char *config = NULL;
  gint64 start;

  d->dir = gchat_test_make_dir ("gchat-cli-test");
  d->port = test_find_free_port ();
  config_path = g_build_filename (d->dir, "gchatd.yaml", NULL);
  key_path = g_build_filename (d->dir, "server-private.pem", NULL);
  config = g_strdup_printf ("server_address: 127.0.0.1\nserver_port: %u\ndata_base: users.json\n"
                            "argon2_memory_kib: 64\nargon2_iterations: 1\n", d->port);
  g_assert_true (g_file_set_contents (config_path, config, -1, &error));
  g_assert_true (gchat_rsa_key_save_private (test_server_key_get (), key_path, &error));
  d->daemon = test_spawn_gchatd (G_SUBPROCESS_FLAGS_NONE, &error, "--config", config_path, NULL);
  g_assert_no_error (error);
  for (start = g_get_monotonic_time (); !test_port_in_use (d->port);)
    {
      g_assert_cmpint (g_get_monotonic_time () - start, <, EVENT_TIMEOUT_US);
      g_usleep (20000);
    }
}

static void
daemon_stop (Daemon *d)
{
  g_autoptr(GError) error = NULL;

  g_subprocess_send_signal (d->daemon, SIGTERM);
  g_assert_true (g_subprocess_wait (d->daemon, NULL, &error));
  g_assert_cmpint (g_subprocess_get_exit_status (d->daemon), ==, 0);
  g_clear_object (&d->daemon);
  test_remove_dir (d->dir);
  g_free (d->dir);
}

static gboolean
skip_without_programs (void)
{
  if (g_getenv ("GCHATD") != NULL && g_getenv ("GCHAT_CLI") != NULL)
    return FALSE;
  g_test_skip ("GCHATD or GCHAT_CLI is not set");
  return TRUE;
}

/* Signs @name up and waits for the answer. */
static Cli *
cli_sign_up (Daemon     *d,
             const char *name,
             const char *extra)
{
  Cli *cli = cli_spawn (d->dir, name, d->port, extra);
  g_autofree char *command = g_strdup_printf ("sign %s %s", name, TEST_PASSWORD);
  g_autoptr(JsonObject) result = NULL;

  cli_write (cli, command);
  result = cli_expect (cli, "sign", "ok", "true", "user", name, NULL);
  return cli;
}

static gboolean
list_has (JsonObject *list,
          const char *name)
{
  JsonArray *users = json_object_get_array_member (list, "users");

  for (guint i = 0; users != NULL && i < json_array_get_length (users); i++)
    {
      if (g_strcmp0 (json_array_get_string_element (users, i), name) == 0)
        return TRUE;
    }
  return FALSE;
}

/* @from sends @text to @to, which shows it as having come by @path; returns the id. */
static char *
exchange (Cli        *from,
          Cli        *to,
          const char *text,
          const char *path)
{
  g_autofree char *command = g_strdup_printf ("send %s %s", to->name, text);
  g_autoptr(JsonObject) message = NULL;
  g_autoptr(JsonObject) sent = NULL;
  const char *id;

  cli_write (from, command);
  message = cli_expect (to, "message", "from", from->name, "text", text, "path", path, NULL);
  sent = cli_expect (from, "sent", "to", to->name, "state", "delivered", NULL);
  id = json_object_get_string_member (sent, "id");
  g_assert_nonnull (id);
  g_assert_cmpuint (strspn (id, "0123456789"), ==, strlen (id));
  g_assert_cmpuint (g_ascii_strtoull (id, NULL, 10), >, 0);
  return g_strdup (id);
}

/* A bad command is an error event, and the commands after it still run. */
static void
check_bad_command (Cli *cli)
{
  g_autoptr(JsonObject) error = NULL;
  g_autoptr(JsonObject) list = NULL;

  cli_write (cli, "frobnicate now");
  error = cli_expect (cli, "error", NULL);
  g_assert_true (json_object_has_member (error, "message"));
  cli_write (cli, "list");
  list = cli_expect (cli, "list", NULL);
}

static void
check_wrong_password (Daemon *d)
{
  g_autoptr(Cli) mallory = cli_spawn (d->dir, "mallory", d->port, NULL);
  g_autoptr(JsonObject) result = NULL;

  cli_write (mallory, "auth alice " WRONG_PASSWORD);
  result = cli_expect (mallory, "auth", "ok", "false", "user", "alice", "code", "bad-credentials",
                       NULL);
  g_assert_true (json_object_has_member (result, "message"));
  cli_write (mallory, "quit");
  g_assert_cmpint (cli_wait_exit (mallory), ==, 0);
}

/* carol signs up and leaves; alice's message waits on the server; carol's next log-in gets it. */
static void
check_offline (Daemon *d,
               Cli    *alice)
{
  g_autoptr(Cli) carol = cli_sign_up (d, "carol", NULL);
  g_autoptr(Cli) carol_again = NULL;
  G_GNUC_UNUSED g_autoptr(JsonObject) online = cli_expect (alice, "presence", "user", "carol",
                                                           "online", "true", NULL);
  g_autoptr(JsonObject) offline = NULL;
  g_autoptr(JsonObject) queued = NULL;
  g_autoptr(JsonObject) message = NULL;
  g_autoptr(JsonObject) delivered = NULL;
  const char *text = "while you were away";

  cli_write (carol, "quit");
  g_assert_cmpint (cli_wait_exit (carol), ==, 0);
  offline = cli_expect (alice, "presence", "user", "carol", "online", "false", NULL);

  cli_write (alice, "send carol while you were away");
  queued = cli_expect (alice, "sent", "to", "carol", "state", "queued", NULL);

  carol_again = cli_spawn (d->dir, "carol", d->port, NULL);
  cli_write (carol_again, "auth carol " TEST_PASSWORD);
  message = cli_expect (carol_again, "message", "from", "alice", "text", text, "path", "offline",
                        NULL);
  delivered = cli_expect (alice, "sent", "to", "carol", "state", "delivered", "id",
                          json_object_get_string_member (queued, "id"), NULL);
  /* The end of input logs carol out, with exit status 0. */
  cli_close_input (carol_again);
  g_assert_cmpint (cli_wait_exit (carol_again), ==, 0);
}

/* A script pipes a log-in, a message and the end of input at once: the message is not lost. */
static void
check_script (Daemon *d,
              Cli    *bob)
{
  g_autoptr(Cli) dave = cli_spawn (d->dir, "dave", d->port, NULL);
  g_autoptr(JsonObject) message = NULL;
  g_autoptr(JsonObject) sent = NULL;

  cli_write (dave, "sign dave " TEST_PASSWORD);
  cli_write (dave, "send bob sent by a script");
  cli_close_input (dave);
  message = cli_expect (bob, "message", "from", "dave", "text", "sent by a script", NULL);
  g_assert_cmpint (cli_wait_exit (dave), ==, 0);
  /* Sent before dave's client knew bob was online, it may have gone by the server's mailbox:
   * either way it reached a final state before dave exited. */
  sent = cli_expect (dave, "sent", "to", "bob", NULL);
  g_assert_true (member_is (sent, "state", "delivered") || member_is (sent, "state", "queued"));
}

static void
test_conversation (void)
{
  Daemon d = { 0 };
  g_autoptr(Cli) alice = NULL;
  g_autoptr(Cli) bob = NULL;
  g_autoptr(JsonObject) event = NULL;
  g_autofree char *first_id = NULL;
  g_autofree char *second_id = NULL;
  g_autofree char *reply_id = NULL;
  const char *tricky = "  two  spaces, \"quotes\", back\\slash \\n, tab\there, é ü 日本 🙂  ";

  if (skip_without_programs ())
    return;
  daemon_start (&d);
  alice = cli_sign_up (&d, "alice", NULL);
  bob = cli_sign_up (&d, "bob", NULL);
  g_clear_pointer (&event, json_object_unref);
  event = cli_expect (alice, "presence", "user", "bob", "online", "true", NULL);
  g_clear_pointer (&event, json_object_unref);
  event = cli_expect (bob, "presence", "user", "alice", "online", "true", NULL);

  g_clear_pointer (&event, json_object_unref);
  cli_write (alice, "list");
  event = cli_expect (alice, "list", NULL);
  g_assert_true (list_has (event, "bob"));

  first_id = exchange (alice, bob, "hello bob", "direct");
  reply_id = exchange (bob, alice, "hello alice", "direct");
  second_id = exchange (alice, bob, tricky, "direct");
  g_assert_cmpstr (first_id, !=, second_id);

  check_bad_command (alice);
  check_wrong_password (&d);
  check_offline (&d, alice);
  check_script (&d, bob);

  cli_write (alice, "quit");
  g_assert_cmpint (cli_wait_exit (alice), ==, 0);
  cli_close_input (bob);
  g_assert_cmpint (cli_wait_exit (bob), ==, 0);
  g_clear_pointer (&alice, cli_free);
  g_clear_pointer (&bob, cli_free);
  daemon_stop (&d);
}

/* Before a log-in, a message is refused with an error event; a first command after it still
 * works. */
static void
test_send_before_login (void)
{
  Daemon d = { 0 };
  g_autoptr(Cli) alice = NULL;
  g_autoptr(JsonObject) error = NULL;

  if (skip_without_programs ())
    return;
  daemon_start (&d);
  alice = cli_spawn (d.dir, "alice", d.port, NULL);
  cli_write (alice, "send bob too early");
  error = cli_expect (alice, "error", NULL);
  cli_write (alice, "sign alice " TEST_PASSWORD);
  g_clear_pointer (&error, json_object_unref);
  error = cli_expect (alice, "sign", "ok", "true", NULL);
  cli_close_input (alice);
  g_assert_cmpint (cli_wait_exit (alice), ==, 0);
  g_clear_pointer (&alice, cli_free);
  daemon_stop (&d);
}

/* With the direct path blocked, messages go through the server's relay. */
static void
test_relay (void)
{
  Daemon d = { 0 };
  g_autoptr(Cli) alice = NULL;
  g_autoptr(Cli) bob = NULL;
  g_autoptr(JsonObject) presence = NULL;
  g_autofree char *id = NULL;

  if (skip_without_programs ())
    return;
  daemon_start (&d);
  alice = cli_sign_up (&d, "alice", "--direct-loss=100");
  bob = cli_sign_up (&d, "bob", "--direct-loss=100");
  presence = cli_expect (alice, "presence", "user", "bob", "online", "true", NULL);
  id = exchange (alice, bob, "through the relay", "relay");
  cli_close_input (alice);
  cli_close_input (bob);
  g_assert_cmpint (cli_wait_exit (alice), ==, 0);
  g_assert_cmpint (cli_wait_exit (bob), ==, 0);
  g_clear_pointer (&alice, cli_free);
  g_clear_pointer (&bob, cli_free);
  daemon_stop (&d);
}

/* A launcher whose gchat-cli finds no configuration of the person running the tests. */
static GSubprocessLauncher *
isolated_launcher (GSubprocessFlags flags)
{
  GSubprocessLauncher *launcher = test_launcher_new (flags);

  g_subprocess_launcher_setenv (launcher, "XDG_CONFIG_HOME", "/nonexistent/gchat-cli-test", TRUE);
  g_subprocess_launcher_setenv (launcher, "XDG_DATA_HOME", "/nonexistent/gchat-cli-test", TRUE);
  return launcher;
}

/* Runs $GCHAT_CLI (under GCHAT_TEST_WRAPPER, when set) with the arguments that follow, up to
 * NULL. */
G_GNUC_NULL_TERMINATED
static GSubprocess *
spawn_cli (GSubprocessLauncher  *launcher,
           GError              **error,
           ...)
{
  g_autoptr(GPtrArray) argv = gchat_test_argv_new (g_getenv ("GCHAT_CLI"));
  const char *arg;
  va_list args;

  va_start (args, error);
  while ((arg = va_arg (args, const char *)) != NULL)
    g_ptr_array_add (argv, (gpointer) arg);
  va_end (args);
  g_ptr_array_add (argv, NULL);
  return g_subprocess_launcher_spawnv (launcher, (const char * const *) argv->pdata, error);
}

/* Options it cannot use end it at once with status 2, before anything is read. */
static void
test_options (void)
{
  const char *bad[][2] = { { "--port", "0" }, { "--port", "x" }, { "--direct-loss", "101" },
                           { "--no-such-option", NULL }, { "stray-argument", NULL } };

  if (skip_without_programs ())
    return;
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *err = NULL;
      g_autofree char *out = NULL;
      g_autoptr(GSubprocessLauncher) launcher =
        isolated_launcher (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE
                           | G_SUBPROCESS_FLAGS_STDERR_PIPE);
      g_autoptr(GSubprocess) process = spawn_cli (launcher, &error, bad[i][0], bad[i][1], NULL);

      g_assert_no_error (error);
      g_assert_true (g_subprocess_communicate_utf8 (process, NULL, NULL, &out, &err, &error));
      g_assert_cmpint (g_subprocess_get_exit_status (process), ==, 2);
      g_assert_cmpstr (out, ==, "");
      g_assert_cmpstr (err, !=, "");
    }
}

/* Without --json, the events are lines for a person; the end of input exits 0 even offline. */
static void
test_readable (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;
  g_autofree char *version = NULL;
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GSubprocess) version_process = NULL;
  g_auto(GStrv) lines = NULL;

  if (skip_without_programs ())
    return;
  launcher = isolated_launcher (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  process = spawn_cli (launcher, &error, "--port", "1", NULL);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_communicate_utf8 (process, "help\nfrobnicate " TEST_PASSWORD "\n",
                                                NULL, &out, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (g_subprocess_get_exit_status (process), ==, 0);
  lines = g_strsplit (out, "\n", -1);
  g_assert_nonnull (strstr (lines[0], "sign USER PASSWORD"));
  g_assert_nonnull (strstr (out, "Unknown command"));
  g_assert_null (strstr (out, "{\""));
  g_assert_null (strstr (out, TEST_PASSWORD));

  g_clear_object (&launcher);
  launcher = test_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  version_process = spawn_cli (launcher, &error, "--version", NULL);
  g_assert_true (g_subprocess_communicate_utf8 (version_process, NULL, NULL, &version, NULL,
                                                &error));
  g_assert_true (g_str_has_prefix (version, "gchat-cli " PACKAGE_VERSION));
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GError) error = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);
  g_assert_true (gchat_crypto_init (&error));

  g_test_add_func ("/cli/parse", test_parse);
  g_test_add_func ("/cli/unknown-command-quotes-nothing", test_unknown_command_quotes_nothing);
  g_test_add_func ("/cli/fingerprint", test_fingerprint);
  g_test_add_func ("/cli/line-reader", test_line_reader);
  g_test_add_func ("/cli/options", test_options);
  g_test_add_func ("/cli/readable", test_readable);
  g_test_add_func ("/cli/conversation", test_conversation);
  g_test_add_func ("/cli/send-before-login", test_send_before_login);
  g_test_add_func ("/cli/relay", test_relay);

  status = g_test_run ();
  test_server_key_set (NULL);
  gchat_crypto_shutdown ();
  return status;
}
