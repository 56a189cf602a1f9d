/* SPDX-License-Identifier: GPL-3.0-or-later */
/* gchatd killed with SIGKILL during a burst of sign-ups: every account it acknowledged lives. */

#include "config.h"

#include <signal.h>
#include <string.h>

#include <glib/gstdio.h>

#include "gchat-test-util.h"
#include "gchatd-test-client.h"

/* Connections that sign up at once in each round. The password hasher takes 64 waiting
 * requests besides its workers, so none of these is answered `busy`. */
#define BURST 40
#define ROUNDS 8
#define SLOW_ROUNDS 40
/* Accounts checked at once at the end, each on a connection of its own. */
#define CHECK_BATCH 40

/* When a round kills gchatd. */
typedef enum {
  KILL_AFTER_ACKS,      /* once some sign-ups were acknowledged, so the next save may be running */
  KILL_AFTER_FIRST_ACK, /* 0–20 ms after the first acknowledgement, amid the group commits */
  KILL_AFTER_DELAY,     /* 0–300 ms after the burst, before, amid or after the saves */
  N_KILL_MODES
} KillMode;

static const char * const kill_mode_names[] = {
  "after acknowledgements", "after the first acknowledgement", "after a delay",
};

/* One gchatd, its files in a temporary folder, restarted after every kill. */
typedef struct {
  char        *dir;
  char        *config_path;
  char        *store_path;
  char        *log_path;
  guint16      port;
  GSubprocess *daemon;
  GPtrArray   *accounts; /* names of accounts known to exist: acknowledged, or found later */
} Crash;

/* One round's sign-ups. */
typedef struct {
  TestClient *clients[BURST];
  char       *users[BURST];
  gboolean    acked[BURST];
  guint       n_acked;
  gint64      sent; /* when the last `sign` went out */
} Burst;

/* Each account has a password of its own, so that records mixed up between accounts show. */
static char *
password_of (const char *user)
{
  return g_strdup_printf ("the password of %s", user);
}

static void
crash_fail (Crash      *c,
            const char *what)
{
  g_autofree char *log = NULL;
  gsize len = 0;

  g_file_get_contents (c->log_path, &log, &len, NULL);
  /* The end of the log says why; the start is the same every time. */
  g_error ("%s; the end of gchatd's log:\n%s", what,
           log == NULL ? "(none)" : log + (len > 4000 ? len - 4000 : 0));
}

static void
daemon_start (Crash *c)
{
  g_autoptr(GSubprocessLauncher) launcher = test_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_autoptr(GPtrArray) argv = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *runtime_dir = g_build_filename (c->dir, "run", NULL);
  gint64 deadline = g_get_monotonic_time () + TEST_WAIT_TIMEOUT_US;

  /* The control socket goes to a runtime folder of the test's own. */
  g_subprocess_launcher_setenv (launcher, "XDG_RUNTIME_DIR", runtime_dir, TRUE);
  /* A log file, not a pipe: a pipe nobody reads would stall gchatd once full. */
  g_subprocess_launcher_set_stderr_file_path (launcher, c->log_path);
  g_assert_null (c->daemon);
  argv = gchat_test_argv_new (g_getenv ("GCHATD"));
  g_ptr_array_add (argv, (gpointer) "--config");
  g_ptr_array_add (argv, c->config_path);
  g_ptr_array_add (argv, NULL);
  c->daemon = g_subprocess_launcher_spawnv (launcher, (const char * const *) argv->pdata, &error);
  g_assert_no_error (error);
  while (!test_port_in_use (c->port))
    {
      /* The identifier goes once the process has ended: gchatd refused to start. */
      if (g_subprocess_get_identifier (c->daemon) == NULL)
        crash_fail (c, "gchatd did not start again on its files");
      if (g_get_monotonic_time () > deadline)
        crash_fail (c, "gchatd did not listen in time");
      g_usleep (10 * 1000);
    }
}

/* GLib reaps the child on a thread of its own; the identifier goes once it has. */
static void
daemon_wait (Crash *c)
{
  gint64 deadline = g_get_monotonic_time () + TEST_WAIT_TIMEOUT_US;

  while (g_subprocess_get_identifier (c->daemon) != NULL)
    {
      if (g_get_monotonic_time () > deadline)
        {
          g_subprocess_force_exit (c->daemon);
          crash_fail (c, "gchatd did not exit in time");
        }
      g_usleep (1000);
    }
  g_assert_true (g_subprocess_wait (c->daemon, NULL, NULL));
}

static void
daemon_kill (Crash *c)
{
  g_subprocess_send_signal (c->daemon, SIGKILL);
  daemon_wait (c);
  g_assert_true (g_subprocess_get_if_signaled (c->daemon));
  g_assert_cmpint (g_subprocess_get_term_sig (c->daemon), ==, SIGKILL);
  g_clear_object (&c->daemon);
}

/* SIGTERM: a graceful stop, exit status 0 within the 2 s. */
static void
daemon_stop (Crash *c)
{
  gint64 start = g_get_monotonic_time ();

  g_subprocess_send_signal (c->daemon, SIGTERM);
  daemon_wait (c);
  if (!g_subprocess_get_if_exited (c->daemon) || g_subprocess_get_exit_status (c->daemon) != 0)
    crash_fail (c, "gchatd did not stop cleanly on SIGTERM");
  /* Under valgrind (GCHAT_TEST_SLOW=1) the leak check at the exit takes longer than that. */
  g_assert_cmpint (g_get_monotonic_time () - start, <, gchat_test_scale_us (2 * G_USEC_PER_SEC));
  g_clear_object (&c->daemon);
}

static void
crash_setup (Crash *c)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *key_path = NULL;
  g_autofree char *config = NULL;

  c->dir = gchat_test_make_dir ("gchatd-crash");
  c->config_path = g_build_filename (c->dir, "config.yaml", NULL);
  c->store_path = g_build_filename (c->dir, "users.json", NULL);
  c->log_path = g_build_filename (c->dir, "gchatd.log", NULL);
  key_path = g_build_filename (c->dir, "server-private.pem", NULL);
  c->port = test_find_free_port ();
  c->accounts = g_ptr_array_new_with_free_func (g_free);
  /* A tiny Argon2id cost: the test is about the store, and a burst should finish in moments. */
  config = g_strdup_printf ("server_address: 127.0.0.1\nserver_port: %u\n"
                            "data_base: users.json\n"
                            "argon2_memory_kib: 64\nargon2_iterations: 1\n", c->port);
  g_assert_true (g_file_set_contents (c->config_path, config, -1, &error));
  g_assert_true (gchat_rsa_key_save_private (test_server_key_get (), key_path, &error));
  g_assert_no_error (error);
}

static void
crash_teardown (Crash *c)
{
  g_assert_null (c->daemon);
  test_remove_dir (c->dir);
  g_free (c->dir);
  g_free (c->config_path);
  g_free (c->store_path);
  g_free (c->log_path);
  g_ptr_array_unref (c->accounts);
}

/* Waits up to @timeout_ms for any of @clients to have something to read, then reads it all. */
static void
poll_clients (TestClient **clients,
              guint        n,
              int          timeout_ms)
{
  g_autofree GPollFD *fds = g_new0 (GPollFD, n);
  guint n_fds = 0;

  for (guint i = 0; i < n; i++)
    if (!clients[i]->closed)
      {
        fds[n_fds].fd = g_socket_get_fd (clients[i]->socket);
        fds[n_fds++].events = G_IO_IN | G_IO_HUP | G_IO_ERR;
      }
  if (n_fds == 0)
    return;
  g_poll (fds, n_fds, timeout_ms);
  for (guint i = 0; i < n; i++)
    test_client_read_available (clients[i]);
}

/* Takes in what has arrived: `result` answers to the `sign` requests, and the lists and
 * presence that follow a successful one. */
static void
burst_collect (Burst *b)
{
  for (guint i = 0; i < BURST; i++)
    {
      GchatMessage *message;

      while ((message = test_client_pop_message (b->clients[i])) != NULL)
        {
          if (gchat_message_get_message_type (message) == GCHAT_MESSAGE_RESULT)
            {
              g_assert_cmpstr (gchat_message_get_string (message, "request"), ==, "sign");
              g_assert_false (b->acked[i]);
              /* Nothing but success is expected of these sign-ups: fresh names, good
               * passwords, fewer requests than the hasher queues. */
              if (!gchat_message_get_bool (message, "ok"))
                g_error ("The sign-up of “%s” failed: %s", b->users[i],
                         gchat_message_get_string (message, "code"));
              b->acked[i] = TRUE;
              b->n_acked++;
            }
          gchat_message_unref (message);
        }
    }
}

static void
burst_send (Crash *c,
            Burst *b,
            guint  round)
{
  for (guint i = 0; i < BURST; i++)
    {
      b->users[i] = g_strdup_printf ("r%03u-user%02u", round, i);
      b->clients[i] = test_client_connect (c->port);
    }
  for (guint i = 0; i < BURST; i++)
    test_client_handshake (b->clients[i]);
  /* All at once, without waiting for the server's half of the handshakes, as a real client
   * sends its first request. */
  for (guint i = 0; i < BURST; i++)
    {
      g_autoptr(GchatMessage) sign = gchat_message_new (GCHAT_MESSAGE_SIGN);
      g_autofree char *password = password_of (b->users[i]);

      gchat_message_set_string (sign, "user", b->users[i]);
      gchat_message_set_string (sign, "password", password);
      gchat_message_set_int (sign, "id", i);
      test_client_send (b->clients[i], sign);
    }
  b->sent = g_get_monotonic_time ();
}

/* Reads answers as they come until the round's moment to kill. */
static void
burst_wait_for_kill (Crash    *c,
                     Burst    *b,
                     KillMode  mode)
{
  gint64 start = g_get_monotonic_time ();
  guint target_acks = (guint) g_test_rand_int_range (1, BURST);
  gint64 delay_us = g_test_rand_int_range (0, mode == KILL_AFTER_DELAY ? 300001 : 20001);

  for (;;)
    {
      gint64 now = g_get_monotonic_time ();

      if (mode == KILL_AFTER_ACKS && b->n_acked >= target_acks)
        return;
      /* The delay after the first acknowledgement counts from when it was seen. */
      if (mode == KILL_AFTER_FIRST_ACK && b->n_acked == 0)
        start = now;
      else if (mode != KILL_AFTER_ACKS && now - start >= delay_us)
        return;
      if (now - b->sent > TEST_WAIT_TIMEOUT_US)
        crash_fail (c, "The sign-ups were not acknowledged in time");
      poll_clients (b->clients, BURST, 1);
      burst_collect (b);
    }
}

/* After the kill: what the server sent before it died is still in the sockets. */
static void
burst_drain (Burst *b)
{
  gint64 deadline = g_get_monotonic_time () + TEST_WAIT_TIMEOUT_US;
  gboolean open = TRUE;

  while (open)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      poll_clients (b->clients, BURST, 10);
      burst_collect (b);
      open = FALSE;
      for (guint i = 0; i < BURST; i++)
        open |= !b->clients[i]->closed;
    }
}

static void
burst_clear (Burst *b)
{
  for (guint i = 0; i < BURST; i++)
    {
      g_clear_pointer (&b->clients[i], test_client_free);
      g_clear_pointer (&b->users[i], g_free);
    }
}

static void
assert_in_store (GchatdUserStore *store,
                 const char      *user)
{
  g_autoptr(GchatdUserRecord) record = gchatd_user_store_lookup (store, user);

  if (record == NULL)
    g_error ("The acknowledged account “%s” is not in the file after a kill", user);
}

/* The file parses on its own, and holds every account known so far and those @b acknowledged
 * (when not NULL). */
static void
check_store_file (Crash *c,
                  Burst *b)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatdUserStore) store = gchatd_user_store_new (c->store_path, &error);

  g_assert_no_error (error);
  for (guint i = 0; i < c->accounts->len; i++)
    assert_in_store (store, c->accounts->pdata[i]);
  for (guint i = 0; b != NULL && i < BURST; i++)
    if (b->acked[i])
      assert_in_store (store, b->users[i]);
}

static void
send_request (TestClient *client,
              const char *type,
              const char *user,
              const char *password)
{
  GchatMessageType message_type;
  g_autoptr(GchatMessage) request = NULL;

  g_assert_true (gchat_message_type_from_string (type, &message_type));
  request = gchat_message_new (message_type);
  gchat_message_set_string (request, "user", user);
  gchat_message_set_string (request, "password", password);
  gchat_message_set_int (request, "id", 42);
  test_client_send (client, request);
}

static TestClient **
connect_all (Crash *c,
             guint  n)
{
  TestClient **clients = g_new0 (TestClient *, n);

  for (guint i = 0; i < n; i++)
    clients[i] = test_client_connect (c->port);
  for (guint i = 0; i < n; i++)
    test_client_handshake (clients[i]);
  return clients;
}

static void
free_all (TestClient **clients,
          guint        n)
{
  for (guint i = 0; i < n; i++)
    test_client_free (clients[i]);
  g_free (clients);
}

/* Every account in @users[0 … @n) logs in with its password, all at once. */
static void
check_log_ins (Crash       *c,
               const char **users,
               guint        n)
{
  TestClient **clients = connect_all (c, n);

  for (guint i = 0; i < n; i++)
    {
      g_autofree char *password = password_of (users[i]);

      send_request (clients[i], "auth", users[i], password);
    }
  for (guint i = 0; i < n; i++)
    {
      g_autoptr(GchatMessage) result = test_client_expect (clients[i], GCHAT_MESSAGE_RESULT);

      if (!gchat_message_get_bool (result, "ok"))
        g_error ("“%s” cannot log in after a restart: %s", users[i],
                 gchat_message_get_string (result, "code"));
    }
  free_all (clients, n);
}

/* The round's names after the restart. An acknowledged one must be taken and must log in. One
 * whose answer never came may exist or not, but never half: when its name is taken, it logs in
 * with its password, and when not, it can be signed up now. */
static void
check_round (Crash *c,
             Burst *b)
{
  TestClient **clients = connect_all (c, BURST);
  g_autoptr(GPtrArray) taken = g_ptr_array_new ();

  for (guint i = 0; i < BURST; i++)
    {
      g_autofree char *password = password_of (b->users[i]);

      send_request (clients[i], "sign", b->users[i], password);
    }
  for (guint i = 0; i < BURST; i++)
    {
      g_autoptr(GchatMessage) result = test_client_expect (clients[i], GCHAT_MESSAGE_RESULT);
      const char *code = gchat_message_get_string (result, "code");

      if (b->acked[i] && g_strcmp0 (code, "name-taken") != 0)
        g_error ("The acknowledged account “%s” was lost: signing it up again gave “%s”",
                 b->users[i], code ? code : "ok");
      if (code != NULL)
        {
          g_assert_cmpstr (code, ==, "name-taken");
          g_ptr_array_add (taken, b->users[i]);
        }
      /* Found to exist, either way: later restarts must keep it. */
      g_ptr_array_add (c->accounts, g_strdup (b->users[i]));
    }
  free_all (clients, BURST);
  check_log_ins (c, (const char **) taken->pdata, taken->len);
}

/* Accounts of earlier rounds, in another letter case, are still refused as taken. */
static void
check_names_taken (Crash *c,
                   guint  n)
{
  g_autoptr(TestClient) client = test_client_connect (c->port);

  test_client_handshake (client);
  for (guint start = 0; start < n; start += CHECK_BATCH)
    {
      guint end = MIN (n, start + CHECK_BATCH);

      /* A batch at a time, so neither side's buffers fill while the other waits. */
      for (guint i = start; i < end; i++)
        {
          g_autofree char *upper = g_ascii_strup (c->accounts->pdata[i], -1);

          send_request (client, "sign", upper, "someone else's password");
        }
      for (guint i = start; i < end; i++)
        {
          g_autoptr(GchatMessage) result = test_client_expect (client, GCHAT_MESSAGE_RESULT);

          test_assert_result (result, "name-taken");
        }
    }
}

static guint
count_temporary_files (Crash *c)
{
  g_autoptr(GDir) dir = g_dir_open (c->dir, 0, NULL);
  const char *name;
  guint n = 0;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    if (g_str_has_prefix (name, "users.json.") && !g_str_equal (name, "users.json.lock"))
      n++;
  return n;
}

/* A round: a burst of sign-ups, a kill at some moment of it, a restart on the files left, and
 * the checks. gchatd keeps running into the next round. */
static void
run_round (Crash *c,
           guint  round)
{
  KillMode mode = round % N_KILL_MODES;
  guint earlier = c->accounts->len;
  Burst b = { 0 };

  burst_send (c, &b, round);
  burst_wait_for_kill (c, &b, mode);
  daemon_kill (c);
  burst_drain (&b);
  g_test_message ("Round %u: killed %s; %u of %u sign-ups acknowledged, %u temporary files left",
                  round, kill_mode_names[mode], b.n_acked, BURST, count_temporary_files (c));
  check_store_file (c, &b);

  /* gchatd must start on what the kill left: the kernel released the store lock. */
  daemon_start (c);
  check_round (c, &b);
  check_names_taken (c, earlier);
  burst_clear (&b);
}

static void
test_kill_during_sign_ups (void)
{
  guint rounds = g_test_slow () ? SLOW_ROUNDS : ROUNDS;
  Crash c = { 0 };

  if (g_getenv ("GCHATD") == NULL)
    {
      g_test_skip ("GCHATD is not set");
      return;
    }
  crash_setup (&c);
  daemon_start (&c);
  for (guint round = 0; round < rounds; round++)
    run_round (&c, round);

  /* At last every account ever found logs in, and a graceful stop leaves a file that holds
   * them all. */
  for (guint start = 0; start < c.accounts->len; start += CHECK_BATCH)
    check_log_ins (&c, (const char **) c.accounts->pdata + start,
                   MIN (CHECK_BATCH, c.accounts->len - start));
  daemon_stop (&c);
  check_store_file (&c, NULL);
  g_test_message ("%u accounts survived %u kills", c.accounts->len, rounds);
  crash_teardown (&c);
}

/* A save killed halfway leaves its temporary file behind. gchatd starts on the real file
 * regardless, and since it holds the store lock, nobody else can be saving: it removes the
 * leftover, a stale copy of every password hash. */
static void
test_stale_temporary_file (void)
{
  const char *alice[] = { "alice" };
  g_autofree char *password = password_of ("alice");
  g_autofree char *stale = NULL;
  g_autoptr(GError) error = NULL;
  Crash c = { 0 };
  TestClient *client;

  if (g_getenv ("GCHATD") == NULL)
    {
      g_test_skip ("GCHATD is not set");
      return;
    }
  crash_setup (&c);
  daemon_start (&c);
  client = test_client_log_in (c.port, "sign", "alice", password);
  test_client_free (client);
  daemon_kill (&c);

  /* A save cut short, named as g_mkstemp() names them. */
  stale = g_build_filename (c.dir, "users.json.Zq3xY9", NULL);
  g_assert_true (g_file_set_contents (stale, "{\"version\": 1, \"users\": [", -1, &error));
  daemon_start (&c);
  check_log_ins (&c, alice, 1);
  daemon_stop (&c);
  g_assert_false (g_file_test (stale, G_FILE_TEST_EXISTS));
  crash_teardown (&c);
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GError) error = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);
  g_assert_true (gchat_crypto_init (&error));

  g_test_add_func ("/crash/kill-during-sign-ups", test_kill_during_sign_ups);
  g_test_add_func ("/crash/stale-temporary-file", test_stale_temporary_file);

  status = g_test_run ();
  test_server_key_set (NULL);
  gchat_crypto_shutdown ();
  return status;
}
