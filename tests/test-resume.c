/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Session resumption (PROTOCOL.md §3.5) against gchatd: tickets, restarts, expiry, revocation. */

#include "config.h"

#include <signal.h>
#include <string.h>

#include "gchat-crypto.h"
#include "gchat-test-util.h"
#include "gchatd-test-client.h"

/* A ticket and its secret, as a log-in's `result` carries them. */
typedef struct {
  GBytes *ticket;
  GBytes *secret;
  gint64  expires;
} Ticket;

static void
ticket_clear (Ticket *t)
{
  g_clear_pointer (&t->ticket, g_bytes_unref);
  g_clear_pointer (&t->secret, g_bytes_unref);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Ticket, ticket_clear)

static void
ticket_take (Ticket       *t,
             GchatMessage *result)
{
  ticket_clear (t);
  g_assert_nonnull (gchat_message_get_bytes (result, "resume"));
  g_assert_nonnull (gchat_message_get_bytes (result, "resume_secret"));
  t->ticket = g_bytes_ref (gchat_message_get_bytes (result, "resume"));
  t->secret = g_bytes_ref (gchat_message_get_bytes (result, "resume_secret"));
  t->expires = gchat_message_get_int (result, "resume_expires");
  g_assert_cmpuint (g_bytes_get_size (t->secret), ==, GCHAT_RESUME_SECRET_SIZE);
}

/* Logs in with the password and keeps the ticket; the client stays connected. */
static TestClient *
log_in_with_ticket (guint16     port,
                    const char *type,
                    const char *user,
                    Ticket     *t)
{
  TestClient *c = test_client_connect (port);
  g_autoptr(GchatMessage) result = NULL;
  g_autoptr(GchatMessage) users = NULL;

  test_client_handshake (c);
  result = test_client_request (c, type, user, TEST_PASSWORD);
  test_assert_result (result, NULL);
  ticket_take (t, result);
  users = test_client_expect (c, GCHAT_MESSAGE_USERS);
  return c;
}

/* Resumes with @t; returns the server's `result` "resume", or NULL when it closed in silence. */
static GchatMessage *
resume (guint16      port,
        const Ticket *t,
        TestClient  **out)
{
  g_autoptr(TestClient) c = test_client_connect (port);
  GchatMessage *result;

  test_client_resume_handshake (c, t->ticket, g_bytes_get_data (t->secret, NULL));
  result = test_client_recv (c);
  if (result != NULL)
    {
      g_assert_cmpint (gchat_message_get_message_type (result), ==, GCHAT_MESSAGE_RESULT);
      g_assert_cmpstr (gchat_message_get_string (result, "request"), ==, "resume");
      g_assert_false (gchat_message_has_field (result, "id"));
    }
  if (out != NULL)
    *out = g_steal_pointer (&c);
  return result;
}

static void
assert_refused (guint16       port,
                const Ticket *t)
{
  g_autoptr(TestClient) c = NULL;
  g_autoptr(GchatMessage) result = resume (port, t, &c);

  g_assert_nonnull (result);
  g_assert_false (gchat_message_get_bool (result, "ok"));
  g_assert_cmpstr (gchat_message_get_string (result, "code"), ==, "resume-refused");
  g_assert_false (gchat_message_has_field (result, "resume"));
  test_client_expect_closed (c);
}

static void
test_ticket_issued (TestFixture   *f,
                    gconstpointer  data)
{
  g_auto(Ticket) signed_up = { 0 };
  g_auto(Ticket) logged_in = { 0 };
  g_autoptr(TestClient) a = log_in_with_ticket (f->port, "sign", "alice", &signed_up);
  g_autoptr(TestClient) b = NULL;
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;

  g_assert_cmpint (signed_up.expires, >=, now + GCHATD_SERVER_TICKET_LIFETIME_S - 5);
  g_assert_cmpint (signed_up.expires, <=, now + GCHATD_SERVER_TICKET_LIFETIME_S + 5);
  g_clear_pointer (&a, test_client_free);
  b = log_in_with_ticket (f->port, "auth", "alice", &logged_in);
  /* Every log-in gets its own ticket and secret. */
  g_assert_false (g_bytes_equal (signed_up.ticket, logged_in.ticket));
  g_assert_false (g_bytes_equal (signed_up.secret, logged_in.secret));
}

/* A reconnection with the ticket logs in without the password and gets a fresh ticket. */
static void
test_round_trip (TestFixture   *f,
                 gconstpointer  data)
{
  g_auto(Ticket) t = { 0 };
  g_auto(Ticket) fresh = { 0 };
  g_autoptr(TestClient) bob = log_in_with_ticket (f->port, "sign", "bob", &t);
  g_autoptr(TestClient) alice = log_in_with_ticket (f->port, "sign", "Alice", &t);
  g_autoptr(GchatMessage) result = NULL;
  g_autoptr(GchatMessage) users = NULL;
  g_autoptr(TestClient) again = NULL;

  test_client_expect_presence (bob, "joined", "Alice");
  test_client_free (g_steal_pointer (&alice));
  test_client_expect_presence (bob, "left", "Alice");

  result = resume (f->port, &t, &alice);
  g_assert_nonnull (result);
  g_assert_true (gchat_message_get_bool (result, "ok"));
  g_assert_cmpstr (gchat_message_get_string (result, "user"), ==, "Alice");
  g_assert_true (gchat_message_has_field (result, "endpoint_id"));
  ticket_take (&fresh, result);
  g_assert_false (g_bytes_equal (fresh.ticket, t.ticket));
  users = test_client_expect (alice, GCHAT_MESSAGE_USERS);
  g_assert_true (test_message_has_name (users, "users", "bob"));
  test_client_expect_presence (bob, "joined", "Alice");
  test_client_ping (alice);
  g_assert_cmpuint (gchatd_server_get_n_resumed (f->server), ==, 1);
  g_assert_cmpuint (gchatd_server_get_n_sessions (f->server), ==, 2);

  /* Tickets are reusable until they expire or are revoked (PROTOCOL.md §3.5): the older one
   * still works, and replaces the session like a log-in does. */
  g_clear_pointer (&result, gchat_message_unref);
  result = resume (f->port, &t, &again);
  g_assert_true (gchat_message_get_bool (result, "ok"));
  g_clear_pointer (&result, gchat_message_unref);
  result = test_client_expect (alice, GCHAT_MESSAGE_BYE);
  g_assert_cmpstr (gchat_message_get_string (result, "code"), ==, "replaced");
}

/* A ticket that does not open, or a client without the secret, gets no keys and no words. */
static void
test_forged (TestFixture   *f,
             gconstpointer  data)
{
  g_auto(Ticket) t = { 0 };
  g_auto(Ticket) forged = { 0 };
  g_autoptr(TestClient) alice = log_in_with_ticket (f->port, "sign", "alice", &t);
  g_autoptr(GchatMessage) result = NULL;
  guint8 secret[GCHAT_RESUME_SECRET_SIZE];
  guint8 *data_copy;
  gsize len;

  gchat_random_bytes (secret, sizeof secret);
  forged.ticket = g_bytes_ref (t.ticket);
  forged.secret = g_bytes_new (secret, sizeof secret);
  result = resume (f->port, &forged, NULL);
  g_assert_null (result);

  g_clear_pointer (&forged.ticket, g_bytes_unref);
  data_copy = g_memdup2 (g_bytes_get_data (t.ticket, &len), g_bytes_get_size (t.ticket));
  data_copy[len / 2] ^= 0x40;
  forged.ticket = g_bytes_new_take (data_copy, len);
  g_clear_pointer (&forged.secret, g_bytes_unref);
  forged.secret = g_bytes_ref (t.secret);
  result = resume (f->port, &forged, NULL);
  g_assert_null (result);
  g_assert_cmpuint (gchatd_server_get_n_resumed (f->server), ==, 0);
  test_client_ping (alice);
}

static void
test_expired (TestFixture   *f,
              gconstpointer  data)
{
  g_auto(Ticket) t = { 0 };
  g_autoptr(TestClient) alice = NULL;

  gchatd_server_set_ticket_lifetime (f->server, 1);
  alice = log_in_with_ticket (f->port, "sign", "alice", &t);
  g_clear_pointer (&alice, test_client_free);
  g_usleep (2100 * 1000);
  assert_refused (f->port, &t);
  g_assert_cmpuint (gchatd_server_get_n_resumed (f->server), ==, 0);
}

static void
test_revoked (TestFixture   *f,
              gconstpointer  data)
{
  g_auto(Ticket) t = { 0 };
  g_auto(Ticket) bobs = { 0 };
  G_GNUC_UNUSED g_autoptr(TestClient) alice = log_in_with_ticket (f->port, "sign", "alice", &t);
  G_GNUC_UNUSED g_autoptr(TestClient) bob = log_in_with_ticket (f->port, "sign", "bob", &bobs);
  g_autoptr(TestClient) c = NULL;
  g_autoptr(GchatMessage) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *path = g_build_filename (f->dir, "ticket-revocations.json", NULL);

  g_assert_true (gchatd_server_revoke_tickets (f->server, "ALICE", &error));
  g_assert_no_error (error);
  g_assert_cmpuint (gchat_test_file_mode (path), ==, 0600);
  assert_refused (f->port, &t);
  /* Only alice's: bob's ticket still works. */
  result = resume (f->port, &bobs, &c);
  g_assert_true (gchat_message_get_bool (result, "ok"));
}

/* The account's password changed, or the account was deleted: its tickets are refused. */
static void
store_done_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  gboolean *done = user_data;

  *done = TRUE;
}

static gboolean
is_true (gpointer data)
{
  return *(gboolean *) data;
}

static void
test_account_changed (TestFixture   *f,
                      gconstpointer  data)
{
  g_auto(Ticket) t = { 0 };
  g_autoptr(TestClient) alice = log_in_with_ticket (f->port, "sign", "alice", &t);
  GchatdUserStore *store = gchatd_server_get_store (f->server);
  GchatArgon2Params params;
  guint8 salt[GCHATD_USER_SALT_SIZE] = { 1 };
  guint8 hash[GCHATD_USER_HASH_SIZE] = { 2 };
  gboolean done = FALSE;

  g_clear_pointer (&alice, test_client_free);
  gchat_argon2_params_init_default (&params);
  gchatd_user_store_replace_async (store, "alice", &params, salt, sizeof salt, hash, sizeof hash,
                                   NULL, store_done_cb, &done);
  test_iterate_until (is_true, &done);
  assert_refused (f->port, &t);

  done = FALSE;
  gchatd_user_store_remove_async (store, "alice", NULL, store_done_cb, &done);
  test_iterate_until (is_true, &done);
  assert_refused (f->port, &t);
}

/* Not asserted: how many resumptions a second one client gets through, one after the other. */
static void
test_rate (TestFixture   *f,
           gconstpointer  data)
{
  g_auto(Ticket) t = { 0 };
  g_autoptr(TestClient) alice = log_in_with_ticket (f->port, "sign", "alice", &t);
  const guint n = 200;
  gint64 start;
  double seconds;

  g_clear_pointer (&alice, test_client_free);
  start = g_get_monotonic_time ();
  for (guint i = 0; i < n; i++)
    {
      g_autoptr(TestClient) c = NULL;
      g_autoptr(GchatMessage) result = resume (f->port, &t, &c);
      g_autoptr(GchatMessage) users = NULL;

      g_assert_true (gchat_message_get_bool (result, "ok"));
      users = test_client_expect (c, GCHAT_MESSAGE_USERS);
    }
  seconds = (g_get_monotonic_time () - start) / (double) G_USEC_PER_SEC;
  g_test_message ("%u resumptions in %.3f s: %.0f per second (one client at a time, "
                  "in-process server)", n, seconds, n / seconds);
  g_assert_cmpuint (gchatd_server_get_n_resumed (f->server), ==, n);
}

/* The ticket key is in the data folder: tickets outlive a restart of gchatd, and a revocation
 * made with gchatctl holds, whether gchatd runs or not. */
static void
test_daemon_restart (void)
{
  g_autoptr(TestDaemon) d = test_daemon_new (NULL);
  g_auto(Ticket) t = { 0 };
  g_auto(Ticket) fresh = { 0 };
  g_autoptr(TestClient) alice = NULL;
  g_autoptr(GchatMessage) result = NULL;
  g_autofree char *log = NULL;
  g_autofree char *err = NULL;
  g_autofree char *key_path = NULL;

  if (d == NULL)
    return;
  key_path = g_build_filename (d->dir, "ticket-key", NULL);
  g_assert_cmpuint (gchat_test_file_mode (key_path), ==, 0600);
  alice = log_in_with_ticket (d->port, "sign", "alice", &t);
  g_clear_pointer (&alice, test_client_free);
  test_daemon_stop (d, SIGTERM);
  test_daemon_start (d);

  result = resume (d->port, &t, &alice);
  g_assert_nonnull (result);
  g_assert_true (gchat_message_get_bool (result, "ok"));
  ticket_take (&fresh, result);
  log = test_daemon_dup_log (d);
  g_assert_nonnull (strstr (log, "“alice” resumed its session from"));
  g_clear_pointer (&alice, test_client_free);

  /* Revoked through the running gchatd: both tickets are refused. */
  g_assert_cmpint (test_run_gchatctl (NULL, &err, "--config", d->config_path, "revoke", "alice",
                                      NULL), ==, 0);
  assert_refused (d->port, &t);
  assert_refused (d->port, &fresh);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (test_run_gchatctl (NULL, &err, "--config", d->config_path, "revoke", "nobody",
                                      NULL), !=, 0);

  /* And across a restart. */
  test_daemon_stop (d, SIGTERM);
  test_daemon_start (d);
  assert_refused (d->port, &fresh);
}

/* gchatctl revoke with no gchatd running edits the file under the store lock. */
static void
test_daemon_revoke_offline (void)
{
  g_autoptr(TestDaemon) d = test_daemon_new (NULL);
  g_auto(Ticket) t = { 0 };
  g_autoptr(TestClient) alice = NULL;
  g_autofree char *err = NULL;

  if (d == NULL)
    return;
  alice = log_in_with_ticket (d->port, "sign", "alice", &t);
  g_clear_pointer (&alice, test_client_free);
  test_daemon_stop (d, SIGTERM);
  g_assert_cmpint (test_run_gchatctl (NULL, &err, "--config", d->config_path, "revoke", "Alice",
                                      NULL), ==, 0);
  test_daemon_start (d);
  assert_refused (d->port, &t);
}

int
main (int    argc,
      char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);

  g_test_add ("/resume/ticket-issued", TestFixture, NULL, test_fixture_setup, test_ticket_issued,
              test_fixture_teardown);
  g_test_add ("/resume/round-trip", TestFixture, NULL, test_fixture_setup, test_round_trip,
              test_fixture_teardown);
  g_test_add ("/resume/forged", TestFixture, NULL, test_fixture_setup, test_forged,
              test_fixture_teardown);
  g_test_add ("/resume/expired", TestFixture, NULL, test_fixture_setup, test_expired,
              test_fixture_teardown);
  g_test_add ("/resume/revoked", TestFixture, NULL, test_fixture_setup, test_revoked,
              test_fixture_teardown);
  g_test_add ("/resume/account-changed", TestFixture, NULL, test_fixture_setup,
              test_account_changed, test_fixture_teardown);
  g_test_add ("/resume/rate", TestFixture, NULL, test_fixture_setup, test_rate,
              test_fixture_teardown);
  g_test_add_func ("/resume/daemon-restart", test_daemon_restart);
  g_test_add_func ("/resume/daemon-revoke-offline", test_daemon_revoke_offline);
  status = g_test_run ();
  test_server_key_set (NULL);
  /* libgcrypt's random pool, so leak checkers see a clean exit. */
  gchat_crypto_shutdown ();
  return status;
}
