/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Tests gchatd's control socket and gchatctl: through a live GchatdControl, on the files with no
 * daemon, the store lock, hostile peers, the socket's mode, and concurrent changes. */

/* For the pseudo-terminal functions (posix_openpt() and its kin). */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "gchat-test-util.h"
#include <json-glib/json-glib.h>

#include "gchat-config.h"
#include "gchat-rsa-key.h"
#include "gchatd-admin.h"
#include "gchatd-control.h"

/* The cheapest Argon2id cost there is: the tests hash a lot. */
#define CONFIG_TEXT                                                                             \
  "data_base: users.json\n"                                                                     \
  "server_certificate: server-public.pem\n"                                                     \
  "argon2_memory_kib: 8\n"                                                                      \
  "argon2_iterations: 1\n"                                                                      \
  "argon2_parallelism: 1\n"

/* One key for the whole run: making one takes a while. */
static GchatRsaKey *server_key;

typedef struct {
  char                 *dir;
  char                 *config_path;
  GchatConfig          *config;
  GchatdPaths          *paths;
  GchatdUserStore      *store;
  GchatdPasswordHasher *hasher;
  GchatdControl        *control;
  char                 *fingerprint;
  GPtrArray            *deleted; /* names "user-deleted" was emitted with */
} Fixture;

static void
on_user_deleted (GchatdControl *control,
                 const char    *name,
                 Fixture       *fixture)
{
  g_ptr_array_add (fixture->deleted, g_strdup (name));
}

static GchatdControl *
control_new (Fixture *fixture)
{
  GchatArgon2Params params;

  gchat_config_get_argon2_params (fixture->config, &params);
  return gchatd_control_new (fixture->store, fixture->hasher, &params, fixture->fingerprint);
}

static void
fixture_set_up (Fixture       *fixture,
                gconstpointer  user_data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *public_path = NULL;

  fixture->dir = gchat_test_make_dir ("test-control");
  fixture->config_path = g_build_filename (fixture->dir, "config.yaml", NULL);
  g_file_set_contents (fixture->config_path, CONFIG_TEXT, -1, &error);
  g_assert_no_error (error);
  public_path = g_build_filename (fixture->dir, "server-public.pem", NULL);
  g_assert_true (gchat_rsa_key_save_public (server_key, public_path, &error));

  fixture->config = gchat_config_new_from_file (fixture->config_path, &error);
  g_assert_no_error (error);
  fixture->paths = gchatd_paths_resolve (fixture->config);
  fixture->store = gchatd_user_store_new (fixture->paths->store, &error);
  g_assert_no_error (error);
  fixture->hasher = gchatd_password_hasher_new (2, 64);
  fixture->fingerprint = gchat_rsa_key_get_fingerprint (server_key);
  fixture->deleted = g_ptr_array_new_with_free_func (g_free);

  fixture->control = control_new (fixture);
  g_signal_connect (fixture->control, "user-deleted", G_CALLBACK (on_user_deleted), fixture);
  gchatd_control_start (fixture->control, fixture->paths->control_socket, &error);
  g_assert_no_error (error);
}

static void
fixture_tear_down (Fixture       *fixture,
                   gconstpointer  user_data)
{
  gchatd_control_stop (fixture->control);
  /* Answers still on their way hold the control; let them finish. */
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_clear_object (&fixture->control);
  g_assert_true (gchatd_user_store_flush_sync (fixture->store, 10000, NULL));
  g_clear_object (&fixture->store);
  g_clear_object (&fixture->hasher);
  g_clear_pointer (&fixture->paths, gchatd_paths_free);
  g_clear_object (&fixture->config);
  g_ptr_array_unref (fixture->deleted);
  g_free (fixture->fingerprint);
  g_assert_true (gchat_test_remove_tree (fixture->dir));
  g_free (fixture->dir);
  g_free (fixture->config_path);
}

/* Running gchatctl ----------------------------------------------------------------------------- */

typedef struct {
  gboolean done;
  int      status; /* the exit status, or -1 when it did not exit */
  char    *out;
  char    *err;
} Run;

static void
run_clear (Run *run)
{
  g_clear_pointer (&run->out, g_free);
  g_clear_pointer (&run->err, g_free);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Run, run_clear)

static void
on_communicated (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  GSubprocess *process = G_SUBPROCESS (source);
  Run *run = user_data;
  g_autoptr (GError) error = NULL;

  g_subprocess_communicate_utf8_finish (process, result, &run->out, &run->err, &error);
  g_assert_no_error (error);
  run->status = g_subprocess_get_if_exited (process) ? g_subprocess_get_exit_status (process) : -1;
  run->done = TRUE;
}

/* Starts gchatctl --config <the fixture's> @args…, with @input on its standard input. The main
 * loop keeps running (and the control serving) while it works. */
static void
start_gchatctl (Fixture    *fixture,
                const char *input,
                Run        *run,
                const char *first_arg,
                ...)
{
  g_autoptr (GPtrArray) argv = gchat_test_argv_new (g_getenv ("GCHATCTL"));
  g_autoptr (GSubprocess) process = NULL;
  g_autoptr (GError) error = NULL;
  const char *arg;
  va_list args;

  g_ptr_array_add (argv, (gpointer) "--config");
  g_ptr_array_add (argv, fixture->config_path);
  va_start (args, first_arg);
  for (arg = first_arg; arg != NULL; arg = va_arg (args, const char *))
    g_ptr_array_add (argv, (gpointer) arg);
  va_end (args);
  g_ptr_array_add (argv, NULL);

  process = g_subprocess_newv ((const char * const *) argv->pdata,
                               G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE
                                 | G_SUBPROCESS_FLAGS_STDERR_PIPE,
                               &error);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8_async (process, input, NULL, on_communicated, run);
}

static void
wait_run (Run *run)
{
  while (!run->done)
    g_main_context_iteration (NULL, TRUE);
  g_test_message ("gchatctl exited %d; out: %s; err: %s", run->status, run->out, run->err);
}

#define GCHATCTL(fixture, input, run, ...)                                                      \
  G_STMT_START                                                                                  \
  {                                                                                             \
    start_gchatctl (fixture, input, run, __VA_ARGS__, NULL);                                    \
    wait_run (run);                                                                             \
  }                                                                                             \
  G_STMT_END

static gboolean
have_gchatctl (void)
{
  if (g_getenv ("GCHATCTL") != NULL)
    return TRUE;
  g_test_skip ("GCHATCTL is not set to the gchatctl to test");
  return FALSE;
}

/* Checking the store --------------------------------------------------------------------------- */

static void
on_result (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  GAsyncResult **slot = user_data;

  *slot = g_object_ref (result);
}

static GAsyncResult *
wait_for (GAsyncResult **slot)
{
  while (*slot == NULL)
    g_main_context_iteration (NULL, TRUE);
  return *slot;
}

/* Whether @password logs @name in, by the record in @store. */
static gboolean
password_verifies (Fixture         *fixture,
                   GchatdUserStore *store,
                   const char      *name,
                   const char      *password)
{
  g_autoptr (GchatdUserRecord) record = gchatd_user_store_lookup (store, name);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  gboolean match;

  g_assert_nonnull (record);
  gchatd_password_hasher_verify_async (fixture->hasher, gchatd_user_record_get_params (record),
                                       gchatd_user_record_get_salt (record),
                                       GCHATD_USER_SALT_SIZE,
                                       gchatd_user_record_get_hash (record),
                                       GCHATD_USER_HASH_SIZE, password, strlen (password), NULL,
                                       on_result, &result);
  match = gchatd_password_hasher_verify_finish (fixture->hasher, wait_for (&result), &error);
  g_assert_no_error (error);
  return match;
}

/* The store as the file holds it now. */
static GchatdUserStore *
reload (Fixture *fixture)
{
  g_autoptr (GError) error = NULL;
  GchatdUserStore *store = gchatd_user_store_new (fixture->paths->store, &error);

  g_assert_no_error (error);
  return store;
}

/* Adds @name to the store in-process, as a sign-up would; flush to wait for it. */
static void
start_direct_add (Fixture    *fixture,
                  const char *name)
{
  guint8 salt[GCHATD_USER_SALT_SIZE], hash[GCHATD_USER_HASH_SIZE];
  GchatArgon2Params params;

  gchat_config_get_argon2_params (fixture->config, &params);
  gchat_random_bytes (salt, sizeof salt);
  gchat_random_bytes (hash, sizeof hash);
  gchatd_user_store_add_async (fixture->store, name, &params, salt, sizeof salt, hash,
                               sizeof hash, NULL, NULL, NULL);
}

/* Raw control connections ---------------------------------------------------------------------- */

typedef struct {
  GSocketConnection *connection;
  GString           *pending;
  gboolean           eof;
} Peer;

static Peer *
peer_new (const char *path)
{
  g_autoptr (GSocketClient) client = g_socket_client_new ();
  g_autoptr (GSocketAddress) address = g_unix_socket_address_new (path);
  g_autoptr (GError) error = NULL;
  Peer *peer = g_new0 (Peer, 1);

  peer->connection = g_socket_client_connect (client, G_SOCKET_CONNECTABLE (address), NULL,
                                              &error);
  g_assert_no_error (error);
  peer->pending = g_string_new (NULL);
  return peer;
}

static void
peer_free (Peer *peer)
{
  g_object_unref (peer->connection);
  g_string_free (peer->pending, TRUE);
  g_free (peer);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Peer, peer_free)

static void
peer_send (Peer       *peer,
           const char *data,
           gsize       len)
{
  GOutputStream *output = g_io_stream_get_output_stream (G_IO_STREAM (peer->connection));
  g_autoptr (GError) error = NULL;

  g_output_stream_write_all (output, data, len, NULL, NULL, &error);
  g_assert_no_error (error);
}

/* The next line from the control, without its newline, or NULL at the end of the connection.
 * Reads asynchronously, so the control (in this same main loop) can answer. */
static char *
peer_read_line (Peer *peer)
{
  GInputStream *input = g_io_stream_get_input_stream (G_IO_STREAM (peer->connection));

  for (;;)
    {
      char *newline = memchr (peer->pending->str, '\n', peer->pending->len);
      g_autoptr (GAsyncResult) result = NULL;
      g_autoptr (GError) error = NULL;
      char chunk[4096];
      gssize n;

      if (newline != NULL)
        {
          char *line = g_strndup (peer->pending->str, newline - peer->pending->str);

          g_string_erase (peer->pending, 0, newline - peer->pending->str + 1);
          return line;
        }
      if (peer->eof)
        return NULL;
      g_input_stream_read_async (input, chunk, sizeof chunk, G_PRIORITY_DEFAULT, NULL, on_result,
                                 &result);
      n = g_input_stream_read_finish (input, wait_for (&result), &error);
      /* A reset counts as the end too: the control may close with our data still unread. */
      if (n <= 0)
        peer->eof = TRUE;
      else
        g_string_append_len (peer->pending, chunk, n);
    }
}

/* Sends @request (a line without its newline) and parses the answer line. */
static JsonObject *
peer_call (Peer       *peer,
           const char *request)
{
  g_autofree char *line = g_strconcat (request, "\n", NULL);
  g_autofree char *answer = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;

  peer_send (peer, line, strlen (line));
  answer = peer_read_line (peer);
  g_assert_nonnull (answer);
  json_parser_load_from_data (parser, answer, -1, &error);
  g_assert_no_error (error);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)));
  return json_object_ref (json_node_get_object (json_parser_get_root (parser)));
}

static void
assert_answer_code (JsonObject *answer,
                    const char *code)
{
  g_assert_false (json_object_get_boolean_member (answer, "ok"));
  g_assert_cmpstr (json_object_get_string_member (answer, "code"), ==, code);
  g_assert_nonnull (json_object_get_string_member (answer, "message"));
}

/* The control answered "bad-request" and then closed the connection. */
static void
assert_rejected (Peer *peer)
{
  g_autofree char *answer = peer_read_line (peer);
  g_autofree char *after = NULL;

  g_assert_nonnull (answer);
  g_test_message ("%s", answer);
  g_assert_nonnull (strstr (answer, "\"code\":\"bad-request\""));
  after = peer_read_line (peer);
  g_assert_null (after);
}

/* Tests: through the daemon -------------------------------------------------------------------- */

static void
test_adduser (Fixture       *fixture,
              gconstpointer  user_data)
{
  g_auto (Run) added = { 0 };
  g_auto (Run) taken = { 0 };
  g_auto (Run) short_password = { 0 };
  g_autoptr (GchatdUserStore) reloaded = NULL;

  if (!have_gchatctl ())
    return;

  GCHATCTL (fixture, "correct horse\n", &added, "adduser", "Bob");
  g_assert_cmpint (added.status, ==, 0);
  g_assert_nonnull (strstr (added.out, "Added the user “Bob”"));
  g_assert_true (password_verifies (fixture, fixture->store, "bob", "correct horse"));
  g_assert_false (password_verifies (fixture, fixture->store, "bob", "correct horse\n"));
  reloaded = reload (fixture);
  g_assert_true (password_verifies (fixture, reloaded, "BOB", "correct horse"));

  /* A taken name, in any case, is refused and the account not touched. */
  GCHATCTL (fixture, "another password\n", &taken, "adduser", "bob");
  g_assert_cmpint (taken.status, ==, 1);
  g_assert_nonnull (strstr (taken.err, "taken"));
  g_assert_true (password_verifies (fixture, fixture->store, "bob", "correct horse"));

  GCHATCTL (fixture, "short\n", &short_password, "adduser", "carol");
  g_assert_cmpint (short_password.status, ==, 1);
  g_assert_nonnull (strstr (short_password.err, "8–1024 bytes"));
  g_assert_cmpuint (gchatd_user_store_get_n_users (fixture->store), ==, 1);
}

static void
test_passwd (Fixture       *fixture,
             gconstpointer  user_data)
{
  g_auto (Run) added = { 0 };
  g_auto (Run) changed = { 0 };
  g_auto (Run) unknown = { 0 };
  g_autoptr (GchatdUserStore) reloaded = NULL;
  g_autoptr (GchatdUserRecord) before = NULL;
  g_autoptr (GchatdUserRecord) after = NULL;

  if (!have_gchatctl ())
    return;

  GCHATCTL (fixture, "first password\n", &added, "adduser", "alice");
  g_assert_cmpint (added.status, ==, 0);
  before = gchatd_user_store_lookup (fixture->store, "alice");

  GCHATCTL (fixture, "second password\r\n", &changed, "passwd", "ALICE");
  g_assert_cmpint (changed.status, ==, 0);
  g_assert_nonnull (strstr (changed.out, "Changed the password"));
  after = gchatd_user_store_lookup (fixture->store, "alice");
  g_assert_cmpstr (gchatd_user_record_get_name (after), ==, "alice");
  g_assert_cmpint (gchatd_user_record_get_created (after), ==,
                   gchatd_user_record_get_created (before));
  g_assert_false (password_verifies (fixture, fixture->store, "alice", "first password"));
  g_assert_true (password_verifies (fixture, fixture->store, "alice", "second password"));
  reloaded = reload (fixture);
  g_assert_false (password_verifies (fixture, reloaded, "alice", "first password"));
  g_assert_true (password_verifies (fixture, reloaded, "alice", "second password"));

  GCHATCTL (fixture, "some password\n", &unknown, "passwd", "nobody");
  g_assert_cmpint (unknown.status, ==, 1);
  g_assert_nonnull (strstr (unknown.err, "no user named “nobody”"));
}

static void
test_deluser (Fixture       *fixture,
              gconstpointer  user_data)
{
  g_auto (Run) added_dave = { 0 };
  g_auto (Run) added_carol = { 0 };
  g_auto (Run) deleted = { 0 };
  g_auto (Run) again = { 0 };
  g_autoptr (GchatdUserStore) reloaded = NULL;
  g_autoptr (GchatdUserRecord) carol = NULL;

  if (!have_gchatctl ())
    return;

  GCHATCTL (fixture, "password one\n", &added_dave, "adduser", "Dave");
  g_assert_cmpint (added_dave.status, ==, 0);
  GCHATCTL (fixture, "password two\n", &added_carol, "adduser", "carol");
  g_assert_cmpint (added_carol.status, ==, 0);

  GCHATCTL (fixture, NULL, &deleted, "deluser", "DAVE");
  g_assert_cmpint (deleted.status, ==, 0);
  g_assert_nonnull (strstr (deleted.out, "Deleted the user"));
  /* The signal names the account as stored, and came before gchatctl was answered. */
  g_assert_cmpuint (fixture->deleted->len, ==, 1);
  g_assert_cmpstr (fixture->deleted->pdata[0], ==, "Dave");
  g_assert_null (gchatd_user_store_lookup (fixture->store, "dave"));
  reloaded = reload (fixture);
  g_assert_null (gchatd_user_store_lookup (reloaded, "dave"));
  carol = gchatd_user_store_lookup (reloaded, "carol");
  g_assert_nonnull (carol);

  GCHATCTL (fixture, NULL, &again, "deluser", "dave");
  g_assert_cmpint (again.status, ==, 1);
  g_assert_nonnull (strstr (again.err, "no user named"));
  g_assert_cmpuint (fixture->deleted->len, ==, 1);
}

static void
test_users (Fixture       *fixture,
            gconstpointer  user_data)
{
  const guint n = 2 * GCHATD_CONTROL_USERS_PER_LINE + 3;
  g_auto (Run) listed = { 0 };
  g_auto (GStrv) lines = NULL;

  if (!have_gchatctl ())
    return;

  for (guint i = 0; i < n; i++)
    {
      g_autofree char *name = g_strdup_printf ("user%03u", i);

      start_direct_add (fixture, name);
    }
  g_assert_true (gchatd_user_store_flush_sync (fixture->store, 10000, NULL));

  /* Three answer lines' worth, listed in sign-up order. */
  GCHATCTL (fixture, NULL, &listed, "users");
  g_assert_cmpint (listed.status, ==, 0);
  lines = g_strsplit (listed.out, "\n", -1);
  g_assert_cmpuint (g_strv_length (lines), ==, n + 1);
  g_assert_true (g_str_has_prefix (lines[0], "user000 "));
  g_assert_true (g_str_has_prefix (lines[n - 1], "user514 "));
  g_assert_nonnull (strstr (lines[0], " UTC"));
}

static void
test_fingerprint (Fixture       *fixture,
                  gconstpointer  user_data)
{
  g_autofree char *expected = g_strconcat (fixture->fingerprint, "\n", NULL);
  g_auto (Run) live = { 0 };
  g_auto (Run) given_socket = { 0 };
  g_auto (Run) offline = { 0 };

  if (!have_gchatctl ())
    return;

  GCHATCTL (fixture, NULL, &live, "fingerprint");
  g_assert_cmpint (live.status, ==, 0);
  g_assert_cmpstr (live.out, ==, expected);
  GCHATCTL (fixture, NULL, &given_socket, "--socket", fixture->paths->control_socket,
            "fingerprint");
  g_assert_cmpint (given_socket.status, ==, 0);
  g_assert_cmpstr (given_socket.out, ==, expected);

  /* With no daemon, from the public key file. */
  gchatd_control_stop (fixture->control);
  GCHATCTL (fixture, NULL, &offline, "fingerprint");
  g_assert_cmpint (offline.status, ==, 0);
  g_assert_cmpstr (offline.out, ==, expected);
}

/* Tests: the terminal -------------------------------------------------------------------------- */

/* Reads @stream into @text until it holds @needle (NULL: until the stream ends). */
static gboolean
read_until (GInputStream *stream,
            GString      *text,
            const char   *needle)
{
  while (needle == NULL || strstr (text->str, needle) == NULL)
    {
      g_autoptr (GAsyncResult) result = NULL;
      g_autoptr (GError) error = NULL;
      char chunk[256];
      gssize n;

      g_input_stream_read_async (stream, chunk, sizeof chunk, G_PRIORITY_DEFAULT, NULL, on_result,
                                 &result);
      n = g_input_stream_read_finish (stream, wait_for (&result), &error);
      g_assert_no_error (error);
      if (n == 0)
        return FALSE;
      g_string_append_len (text, chunk, n);
    }

  return TRUE;
}

/* Everything the terminal showed, read from the pseudo-terminal's master side. */
static char *
drain_terminal (int master)
{
  GString *shown = g_string_new (NULL);
  char chunk[256];
  gssize n;

  g_assert_no_errno (fcntl (master, F_SETFL, O_NONBLOCK));
  while ((n = read (master, chunk, sizeof chunk)) > 0)
    g_string_append_len (shown, chunk, n);

  return g_string_free (shown, FALSE);
}

/* Runs `gchatctl adduser @name` on a pseudo-terminal, typing @first and @second after the two
 * prompts; returns the exit status, with the terminal's output in @shown and stderr in @err. */
static int
adduser_on_terminal (Fixture    *fixture,
                     const char *name,
                     const char *first,
                     const char *second,
                     char      **shown,
                     char      **err)
{
  g_autoptr (GSubprocessLauncher) launcher = g_subprocess_launcher_new (
    G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_autoptr (GPtrArray) argv = NULL;
  g_autoptr (GSubprocess) process = NULL;
  g_autoptr (GString) prompts = g_string_new (NULL);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  GInputStream *stderr_pipe;
  int master, slave;

  master = posix_openpt (O_RDWR | O_NOCTTY);
  g_assert_cmpint (master, >=, 0);
  g_assert_no_errno (grantpt (master));
  g_assert_no_errno (unlockpt (master));
  slave = open (ptsname (master), O_RDWR | O_NOCTTY);
  g_assert_cmpint (slave, >=, 0);
  g_subprocess_launcher_take_stdin_fd (launcher, slave);
  argv = gchat_test_argv_new (g_getenv ("GCHATCTL"));
  g_ptr_array_add (argv, (gpointer) "--config");
  g_ptr_array_add (argv, fixture->config_path);
  g_ptr_array_add (argv, (gpointer) "adduser");
  g_ptr_array_add (argv, (gpointer) name);
  g_ptr_array_add (argv, NULL);
  process = g_subprocess_launcher_spawnv (launcher, (const char * const *) argv->pdata, &error);
  g_assert_no_error (error);
  g_clear_object (&launcher);

  /* Type only after each prompt: gchatctl discards what was typed before echo went off. */
  stderr_pipe = g_subprocess_get_stderr_pipe (process);
  g_assert_true (read_until (stderr_pipe, prompts, "Password for"));
  g_assert_cmpint (write (master, first, strlen (first)), ==, strlen (first));
  g_assert_true (read_until (stderr_pipe, prompts, "Repeat the password: "));
  g_assert_cmpint (write (master, second, strlen (second)), ==, strlen (second));
  read_until (stderr_pipe, prompts, NULL);

  g_subprocess_wait_async (process, NULL, on_result, &result);
  g_assert_true (g_subprocess_wait_finish (process, wait_for (&result), &error));
  *shown = drain_terminal (master);
  close (master);
  *err = g_strdup (prompts->str);
  g_test_message ("terminal: “%s”; stderr: “%s”", *shown, *err);

  return g_subprocess_get_exit_status (process);
}

static void
test_terminal (Fixture       *fixture,
               gconstpointer  user_data)
{
  g_autofree char *shown = NULL;
  g_autofree char *err = NULL;

  if (!have_gchatctl ())
    return;

  g_assert_cmpint (adduser_on_terminal (fixture, "judy", "tty secret 1\n", "tty secret 1\n",
                                        &shown, &err),
                   ==, 0);
  g_assert_nonnull (strstr (err, "Password for “judy”: "));
  /* Nothing typed was echoed. */
  g_assert_null (strstr (shown, "secret"));
  g_assert_true (password_verifies (fixture, fixture->store, "judy", "tty secret 1"));
  g_clear_pointer (&shown, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (adduser_on_terminal (fixture, "karl", "tty secret 1\n", "tty secret 2\n",
                                        &shown, &err),
                   ==, 1);
  g_assert_nonnull (strstr (err, "The passwords do not match"));
  g_assert_null (strstr (shown, "secret"));
  g_assert_null (gchatd_user_store_lookup (fixture->store, "karl"));
}

/* Tests: without a daemon ---------------------------------------------------------------------- */

static void
test_no_daemon (Fixture       *fixture,
                gconstpointer  user_data)
{
  g_auto (Run) added = { 0 };
  g_auto (Run) deleted = { 0 };
  g_auto (Run) listed = { 0 };
  g_autoptr (GchatdUserStore) reloaded = NULL;

  if (!have_gchatctl ())
    return;

  gchatd_control_stop (fixture->control);
  g_assert_false (g_file_test (fixture->paths->control_socket, G_FILE_TEST_EXISTS));

  GCHATCTL (fixture, "password one\n", &added, "adduser", "erin");
  g_assert_cmpint (added.status, ==, 0);
  GCHATCTL (fixture, NULL, &listed, "users");
  g_assert_cmpint (listed.status, ==, 0);
  g_assert_true (g_str_has_prefix (listed.out, "erin "));

  reloaded = reload (fixture);
  g_assert_true (password_verifies (fixture, reloaded, "erin", "password one"));
  g_assert_cmphex (g_file_test (fixture->paths->lock, G_FILE_TEST_IS_REGULAR), ==, TRUE);

  GCHATCTL (fixture, NULL, &deleted, "deluser", "erin");
  g_assert_cmpint (deleted.status, ==, 0);
  g_clear_object (&reloaded);
  reloaded = reload (fixture);
  g_assert_cmpuint (gchatd_user_store_get_n_users (reloaded), ==, 0);
  /* No daemon, no signal. */
  g_assert_cmpuint (fixture->deleted->len, ==, 0);
}

/* A lock held while nothing answers (a gchatd starting or stuck): changes are refused, reads
 * still work. */
static void
test_lock_held (Fixture       *fixture,
                gconstpointer  user_data)
{
  g_autoptr (GchatdStoreLock) lock = NULL;
  g_autoptr (GchatdStoreLock) second = NULL;
  g_autoptr (GchatdUserStore) reloaded = NULL;
  g_autoptr (GError) error = NULL;
  g_auto (Run) refused = { 0 };
  g_auto (Run) listed = { 0 };
  g_auto (Run) added = { 0 };

  if (!have_gchatctl ())
    return;

  start_direct_add (fixture, "frank");
  g_assert_true (gchatd_user_store_flush_sync (fixture->store, 10000, NULL));
  gchatd_control_stop (fixture->control);

  lock = gchatd_store_lock_acquire (fixture->paths->store, &error);
  g_assert_no_error (error);
  second = gchatd_store_lock_acquire (fixture->paths->store, &error);
  g_assert_error (error, GCHATD_ADMIN_ERROR, GCHATD_ADMIN_ERROR_LOCKED);
  g_assert_null (second);
  g_clear_error (&error);

  GCHATCTL (fixture, "password one\n", &refused, "adduser", "grace");
  g_assert_cmpint (refused.status, ==, 1);
  g_assert_nonnull (strstr (refused.err, "in use by another gchatd"));
  g_assert_nonnull (strstr (refused.err, "no gchatd answers"));
  GCHATCTL (fixture, NULL, &listed, "users");
  g_assert_cmpint (listed.status, ==, 0);
  g_assert_true (g_str_has_prefix (listed.out, "frank "));

  reloaded = reload (fixture);
  g_assert_cmpuint (gchatd_user_store_get_n_users (reloaded), ==, 1);

  /* Once let go, the lock is free for the next one. */
  g_clear_pointer (&lock, gchatd_store_lock_release);
  GCHATCTL (fixture, "password one\n", &added, "adduser", "grace");
  g_assert_cmpint (added.status, ==, 0);
}

/* Tests: the protocol -------------------------------------------------------------------------- */

static void
test_protocol (Fixture       *fixture,
               gconstpointer  user_data)
{
  g_autoptr (Peer) peer = peer_new (fixture->paths->control_socket);
  g_autoptr (JsonObject) added = NULL;
  g_autoptr (JsonObject) taken = NULL;
  g_autoptr (JsonObject) other = NULL;
  g_autoptr (JsonObject) users = NULL;
  g_autoptr (JsonObject) fingerprint = NULL;
  g_autofree char *other_request = NULL;
  JsonArray *list;

  added = peer_call (peer, "{\"command\":\"adduser\",\"user\":\"heidi\",\"password\":\"p4ssw0rd!\"}");
  g_assert_true (json_object_get_boolean_member (added, "ok"));
  taken = peer_call (peer, "{\"command\":\"adduser\",\"user\":\"HEIDI\",\"password\":\"p4ssw0rd!\"}");
  assert_answer_code (taken, "name-taken");

  /* A request for another user database changes nothing, and the connection stays. */
  other_request = g_strdup_printf ("{\"command\":\"deluser\",\"user\":\"heidi\","
                                   "\"store\":\"%s/elsewhere.json\"}", fixture->dir);
  other = peer_call (peer, other_request);
  assert_answer_code (other, "other-store");
  g_assert_cmpuint (gchatd_user_store_get_n_users (fixture->store), ==, 1);

  users = peer_call (peer, "{\"command\":\"users\"}");
  list = json_object_get_array_member (users, "users");
  g_assert_cmpuint (json_array_get_length (list), ==, 1);
  g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (list, 0), "name"),
                   ==, "heidi");
  g_assert_false (json_object_has_member (users, "more"));

  fingerprint = peer_call (peer, "{\"command\":\"fingerprint\"}");
  g_assert_cmpstr (json_object_get_string_member (fingerprint, "fingerprint"), ==,
                   fixture->fingerprint);
}

static void
test_hostile_peers (Fixture       *fixture,
                    gconstpointer  user_data)
{
  static const char * const bad_lines[] = {
    "hello\n",
    "{\"command\":\"frobnicate\"}\n",
    "{\"command\":\"users\",\"password\":\"secret-secret\"}\n",
    "{\"command\":\"adduser\",\"user\":\"ivan\"}\n",
    "{\"command\":\"adduser\",\"user\":[\"ivan\"],\"password\":\"12345678\"}\n",
    "{\"command\":\"deluser\",\"user\":5}\n",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n",
    "\"just a string\"\n",
    "{\"command\":\"users\",\"extra\":\"x\"}\n",
    "{\"command\":\"us\xffrs\"}\n",
  };
  g_autofree char *long_line = g_malloc (GCHATD_CONTROL_MAX_LINE + 100);
  g_autoptr (JsonObject) answer = NULL;

  for (gsize i = 0; i < G_N_ELEMENTS (bad_lines); i++)
    {
      g_autoptr (Peer) peer = peer_new (fixture->paths->control_socket);

      peer_send (peer, bad_lines[i], strlen (bad_lines[i]));
      assert_rejected (peer);
    }

  /* A line longer than the limit, with no end in sight. */
  memset (long_line, 'x', GCHATD_CONTROL_MAX_LINE + 100);
  {
    g_autoptr (Peer) peer = peer_new (fixture->paths->control_socket);

    peer_send (peer, long_line, GCHATD_CONTROL_MAX_LINE + 100);
    assert_rejected (peer);
  }

  /* None of it hurt: the control serves the next one, and no account was made. */
  {
    g_autoptr (Peer) peer = peer_new (fixture->paths->control_socket);

    answer = peer_call (peer, "{\"command\":\"fingerprint\"}");
    g_assert_true (json_object_get_boolean_member (answer, "ok"));
  }
  g_assert_cmpuint (gchatd_user_store_get_n_users (fixture->store), ==, 0);
  while (gchatd_control_get_n_clients (fixture->control) > 0)
    g_main_context_iteration (NULL, TRUE);
}

/* Past GCHATD_CONTROL_MAX_CLIENTS, connections are told "busy" and closed at once (gchatctl asks
 * again); the others are served. */
static void
test_max_clients (Fixture       *fixture,
                  gconstpointer  user_data)
{
  g_autoptr (GPtrArray) peers = g_ptr_array_new_with_free_func ((GDestroyNotify) peer_free);
  g_autoptr (JsonObject) answer = NULL;
  g_autofree char *busy = NULL;
  g_autofree char *nothing = NULL;
  Peer *extra;

  for (guint i = 0; i < GCHATD_CONTROL_MAX_CLIENTS; i++)
    g_ptr_array_add (peers, peer_new (fixture->paths->control_socket));
  while (gchatd_control_get_n_clients (fixture->control) < GCHATD_CONTROL_MAX_CLIENTS)
    g_main_context_iteration (NULL, TRUE);

  extra = peer_new (fixture->paths->control_socket);
  g_ptr_array_add (peers, extra);
  busy = peer_read_line (extra);
  g_assert_nonnull (busy);
  g_assert_nonnull (strstr (busy, "\"code\":\"busy\""));
  nothing = peer_read_line (extra);
  g_assert_null (nothing);
  g_assert_cmpuint (gchatd_control_get_n_clients (fixture->control), ==,
                    GCHATD_CONTROL_MAX_CLIENTS);

  answer = peer_call (peers->pdata[0], "{\"command\":\"fingerprint\"}");
  g_assert_true (json_object_get_boolean_member (answer, "ok"));
}

/* Tests: the socket ---------------------------------------------------------------------------- */

static void
test_socket_file (Fixture       *fixture,
                  gconstpointer  user_data)
{
  const char *path = fixture->paths->control_socket;
  g_autofree char *folder = g_path_get_dirname (path);
  g_autoptr (GchatdControl) second = control_new (fixture);
  g_autoptr (GSocket) stale = NULL;
  g_autoptr (GSocketAddress) address = g_unix_socket_address_new (path);
  g_autoptr (GError) error = NULL;

  g_assert_cmphex (gchat_test_file_mode (path), ==, 0600);
  g_assert_cmphex (gchat_test_file_mode (folder), ==, 0700);

  /* A live control keeps its socket: a second one refuses to start. */
  g_assert_false (gchatd_control_start (second, path, &error));
  g_assert_error (error, GCHATD_CONTROL_ERROR, GCHATD_CONTROL_ERROR_IN_USE);
  g_clear_error (&error);
  g_assert_true (g_file_test (path, G_FILE_TEST_EXISTS));

  /* Stopping removes the socket. */
  gchatd_control_stop (fixture->control);
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));

  /* A socket left behind by a crash is replaced. */
  stale = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT,
                        &error);
  g_assert_no_error (error);
  g_assert_true (g_socket_bind (stale, address, FALSE, &error));
  g_socket_close (stale, NULL);
  g_assert_true (gchatd_control_start (second, path, &error));
  g_assert_no_error (error);
  g_assert_cmphex (gchat_test_file_mode (path), ==, 0600);
  gchatd_control_stop (second);

  /* Anything else in its place is left alone. */
  g_file_set_contents (path, "not a socket", -1, &error);
  g_assert_no_error (error);
  g_assert_false (gchatd_control_start (second, path, &error));
  g_assert_error (error, GCHATD_CONTROL_ERROR, GCHATD_CONTROL_ERROR_SOCKET);
  g_assert_true (g_file_test (path, G_FILE_TEST_IS_REGULAR));
}

static void
on_child_exited (GPid     pid,
                 gint     wait_status,
                 gpointer user_data)
{
  int *status = user_data;

  *status = wait_status;
  g_spawn_close_pid (pid);
}

/* In the forked child, with only system calls (the parent has threads): connects as another
 * user and writes to @report 'y' if the control closed on it unanswered, else what went wrong.
 * Not the exit status: a checker such as valgrind may replace that of a forked child. */
static void G_GNUC_NORETURN
connect_as_nobody (const struct sockaddr_un *address,
                   int                       report)
{
  const char request[] = "{\"command\":\"fingerprint\"}\n";
  char answer[256];
  char result = 'y';
  int fd = -1;

  if (setgid (65534) != 0 || setuid (65534) != 0)
    result = 'u';
  else if ((fd = socket (AF_UNIX, SOCK_STREAM, 0)) < 0
           || connect (fd, (const struct sockaddr *) address, sizeof *address) != 0)
    result = 'c';
  else
    {
      /* The write may fail: the control can have closed first. Only the answer counts. */
      if (write (fd, request, sizeof request - 1) < 0 && errno != EPIPE && errno != ECONNRESET)
        result = 'w';
      if (read (fd, answer, sizeof answer) > 0)
        result = 'a';
    }

  if (write (report, &result, 1) != 1)
    _exit (1);
  _exit (0);
}

/* Sets the mode of the socket's folder and of the two above it (the test's runtime folder). */
static void
chmod_socket_folders (const char *path,
                      int         mode)
{
  g_autofree char *folder = g_path_get_dirname (path);
  g_autofree char *runtime = g_path_get_dirname (folder);
  g_autofree char *base = g_path_get_dirname (runtime);

  g_assert_no_errno (g_chmod (folder, mode));
  g_assert_no_errno (g_chmod (runtime, mode));
  g_assert_no_errno (g_chmod (base, mode));
}

/* Only the same user (or root) is served: checked on the peer's credentials, not only by the
 * folder's mode, which is opened up here to let another user get as far as the socket. */
static void
test_other_user (Fixture       *fixture,
                 gconstpointer  user_data)
{
  const char *path = fixture->paths->control_socket;
  struct sockaddr_un address = { .sun_family = AF_UNIX };
  char result = 0;
  int status = -1;
  int report[2];
  pid_t pid;

  if (getuid () != 0)
    {
      g_test_skip ("Needs root, to connect as another user");
      return;
    }

  g_assert_cmpuint (strlen (path), <, sizeof address.sun_path);
  strcpy (address.sun_path, path);
  chmod_socket_folders (path, 0755);
  g_assert_no_errno (g_chmod (path, 0666));
  g_assert_no_errno (pipe (report));
  pid = fork ();
  g_assert_cmpint (pid, >=, 0);
  if (pid == 0)
    connect_as_nobody (&address, report[1]);

  close (report[1]);
  g_child_watch_add (pid, on_child_exited, &status);
  while (status == -1)
    g_main_context_iteration (NULL, TRUE);
  chmod_socket_folders (path, 0700);
  g_assert_cmpint (read (report[0], &result, 1), ==, 1);
  close (report[0]);
  g_assert_cmpint (result, ==, 'y');
  g_assert_cmpuint (gchatd_control_get_n_clients (fixture->control), ==, 0);
}

/* Tests: paths and concurrency ----------------------------------------------------------------- */

static void
test_paths (void)
{
  const char *own_text = "data_base: /srv/chat/db.json\n";
  g_autoptr (GchatConfig) defaults = gchat_config_new ();
  g_autoptr (GchatConfig) own = NULL;
  g_autoptr (GchatdPaths) paths = gchatd_paths_resolve (defaults);
  g_autoptr (GchatdPaths) own_paths = NULL;
  g_autoptr (GchatdPaths) no_runtime = NULL;
  g_autofree char *runtime = g_strdup (g_getenv ("XDG_RUNTIME_DIR"));
  g_autofree char *data_dir = g_build_filename (g_get_user_data_dir (), "gchatd", NULL);
  g_autofree char *socket = g_build_filename (runtime, "gchatd", "control", NULL);
  g_autofree char *config = gchatd_config_dup_default_path ();
  g_autoptr (GError) error = NULL;

  g_assert_cmpstr (paths->data_dir, ==, data_dir);
  g_assert_true (g_str_has_prefix (paths->store, data_dir));
  g_assert_true (g_str_has_suffix (paths->store, "/gchatd/users.json"));
  g_assert_true (g_str_has_suffix (paths->lock, "/gchatd/users.json.lock"));
  g_assert_true (g_str_has_suffix (paths->private_key, "/gchatd/server-private.pem"));
  g_assert_true (g_str_has_suffix (paths->public_key, "/gchatd/server-public.pem"));
  g_assert_cmpstr (paths->control_socket, ==, socket);
  g_assert_true (g_str_has_prefix (config, g_get_user_config_dir ()));
  g_assert_true (g_str_has_suffix (config, "/gchatd/config.yaml"));

  /* A database of its own gets a socket of its own. */
  own = gchat_config_new_from_data (own_text, strlen (own_text), "test", "/", &error);
  g_assert_no_error (error);
  own_paths = gchatd_paths_resolve (own);
  g_assert_cmpstr (own_paths->data_dir, ==, "/srv/chat");
  g_assert_cmpstr (own_paths->public_key, ==, "/srv/chat/server-public.pem");
  g_assert_true (g_str_has_prefix (own_paths->control_socket, socket));
  g_assert_cmpuint (strlen (own_paths->control_socket), ==, strlen (socket) + 17);

  g_unsetenv ("XDG_RUNTIME_DIR");
  no_runtime = gchatd_paths_resolve (own);
  g_setenv ("XDG_RUNTIME_DIR", runtime, TRUE);
  g_assert_cmpstr (no_runtime->control_socket, ==, "/srv/chat/control");
}

static void
on_direct_added (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  guint *n_done = user_data;
  g_autoptr (GError) error = NULL;

  gchatd_user_store_add_finish (GCHATD_USER_STORE (source), result, &error);
  g_assert_no_error (error);
  (*n_done)++;
}

/* Adds through gchatctl and the daemon, interleaved with adds made in-process (as sign-ups
 * would be): every one of them ends up in the file. */
static void
test_concurrent_adds (Fixture       *fixture,
                      gconstpointer  user_data)
{
  const guint n = 20;
  g_autofree Run *runs = g_new0 (Run, n);
  g_autoptr (GchatdUserStore) reloaded = NULL;
  guint8 salt[GCHATD_USER_SALT_SIZE], hash[GCHATD_USER_HASH_SIZE];
  GchatArgon2Params params;
  guint n_direct = 0;

  if (!have_gchatctl ())
    return;

  gchat_config_get_argon2_params (fixture->config, &params);
  gchat_random_bytes (salt, sizeof salt);
  gchat_random_bytes (hash, sizeof hash);
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *tool_name = g_strdup_printf ("tool%02u", i);
      g_autofree char *direct_name = g_strdup_printf ("direct%02u", i);

      start_gchatctl (fixture, "password one\n", &runs[i], "adduser", tool_name, NULL);
      gchatd_user_store_add_async (fixture->store, direct_name, &params, salt, sizeof salt, hash,
                                   sizeof hash, NULL, on_direct_added, &n_direct);
      g_main_context_iteration (NULL, FALSE);
    }
  for (guint i = 0; i < n; i++)
    {
      wait_run (&runs[i]);
      g_assert_cmpint (runs[i].status, ==, 0);
      run_clear (&runs[i]);
    }
  while (n_direct < n)
    g_main_context_iteration (NULL, TRUE);

  g_assert_cmpuint (gchatd_user_store_get_n_users (fixture->store), ==, 2 * n);
  reloaded = reload (fixture);
  g_assert_cmpuint (gchatd_user_store_get_n_users (reloaded), ==, 2 * n);
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *tool_name = g_strdup_printf ("TOOL%02u", i);

      g_assert_true (password_verifies (fixture, reloaded, tool_name, "password one"));
    }
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *base = NULL;
  g_autofree char *runtime = NULL;
  g_autofree char *data = NULL;
  g_autofree char *config = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);

  /* Everything gchatctl and the paths look at is in a folder of the test's own, set before
   * GLib reads (and caches) it. */
  base = gchat_test_make_dir ("test-control-env");
  runtime = g_build_filename (base, "run", NULL);
  data = g_build_filename (base, "data", NULL);
  config = g_build_filename (base, "config", NULL);
  g_setenv ("XDG_RUNTIME_DIR", runtime, TRUE);
  g_setenv ("XDG_DATA_HOME", data, TRUE);
  g_setenv ("XDG_CONFIG_HOME", config, TRUE);

  server_key = gchat_rsa_key_generate (GCHAT_RSA_KEY_MIN_BITS, &error);
  g_assert_no_error (error);

#define ADD_FIXTURE_TEST(path, func) \
  g_test_add (path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)

  /* First: it changes the environment, which is safe only before any thread is started. */
  g_test_add_func ("/control/paths", test_paths);
  ADD_FIXTURE_TEST ("/control/adduser", test_adduser);
  ADD_FIXTURE_TEST ("/control/passwd", test_passwd);
  ADD_FIXTURE_TEST ("/control/deluser", test_deluser);
  ADD_FIXTURE_TEST ("/control/users", test_users);
  ADD_FIXTURE_TEST ("/control/fingerprint", test_fingerprint);
  ADD_FIXTURE_TEST ("/control/terminal", test_terminal);
  ADD_FIXTURE_TEST ("/control/no-daemon", test_no_daemon);
  ADD_FIXTURE_TEST ("/control/lock-held", test_lock_held);
  ADD_FIXTURE_TEST ("/control/protocol", test_protocol);
  ADD_FIXTURE_TEST ("/control/hostile-peers", test_hostile_peers);
  ADD_FIXTURE_TEST ("/control/max-clients", test_max_clients);
  ADD_FIXTURE_TEST ("/control/socket-file", test_socket_file);
  ADD_FIXTURE_TEST ("/control/other-user", test_other_user);
  ADD_FIXTURE_TEST ("/control/concurrent-adds", test_concurrent_adds);

  status = g_test_run ();

  g_clear_object (&server_key);
  g_assert_true (gchat_test_remove_tree (base));
  gchat_crypto_shutdown ();
  return status;
}
