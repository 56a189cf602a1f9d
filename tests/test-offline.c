/* SPDX-License-Identifier: GPL-3.0-or-later */
/* gchatd holding messages for offline users and telling senders they arrived, tested against
 * the real daemon, across restarts and crashes. */

#include "config.h"

#include <signal.h>
#include <string.h>

#include "gchat-crypto.h"
#include "gchat-test-util.h"
#include "gchatd-test-client.h"

#define TEXT "Hello Bob, this stays between us ✓"

static TestClient *
sign_up (TestDaemon *d,
         const char *user)
{
  return test_client_log_in (d->port, "sign", user, TEST_PASSWORD);
}

static TestClient *
log_in (TestDaemon *d,
        const char *user)
{
  return test_client_log_in (d->port, "auth", user, TEST_PASSWORD);
}

/* Signs @user up and leaves, so that @user has an account and is offline. */
static void
make_offline_user (TestDaemon *d,
                   const char *user)
{
  TestClient *c = sign_up (d, user);

  test_client_free (c);
}

/* Posts @text and checks the answer; returns the mail id. */
static gint64
post_ok (TestClient *c,
         const char *to,
         gint64      msg_id,
         const char *text)
{
  g_autoptr(GchatMessage) result = test_client_post (c, to, msg_id, text);
  gint64 mail_id;

  test_assert_result (result, NULL);
  g_assert_true (gchat_message_has_field (result, "mail_id"));
  mail_id = gchat_message_get_int (result, "mail_id");
  g_assert_cmpint (mail_id, >, 0);
  return mail_id;
}

static void
assert_post_fails (TestClient *c,
                   const char *to,
                   const char *code)
{
  g_autoptr(GchatMessage) result = test_client_post (c, to, 1, "hi");

  test_assert_result (result, code);
  g_assert_false (gchat_message_has_field (result, "mail_id"));
}

/* Waits for a `mail` and checks it; returns its mail id. */
static gint64
expect_mail (TestClient *c,
             const char *from,
             gint64      msg_id,
             const char *text)
{
  g_autoptr(GchatMessage) mail = test_client_expect (c, GCHAT_MESSAGE_MAIL);
  GBytes *got = gchat_message_get_bytes (mail, "text");
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;

  g_assert_cmpstr (gchat_message_get_string (mail, "from"), ==, from);
  g_assert_cmpint (gchat_message_get_int (mail, "msg_id"), ==, msg_id);
  g_assert_cmpmem (g_bytes_get_data (got, NULL), g_bytes_get_size (got), text, strlen (text));
  g_assert_cmpint (gchat_message_get_int (mail, "queued"), <=, now);
  g_assert_cmpint (gchat_message_get_int (mail, "queued"), >, now - 600);
  return gchat_message_get_int (mail, "mail_id");
}

/* Waits for a `receipt` and checks it; returns its receipt id. */
static gint64
expect_receipt (TestClient *c,
                const char *user,
                gint64      msg_id)
{
  g_autoptr(GchatMessage) receipt = test_client_expect (c, GCHAT_MESSAGE_RECEIPT);
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;

  g_assert_cmpstr (gchat_message_get_string (receipt, "user"), ==, user);
  g_assert_cmpint (gchat_message_get_int (receipt, "msg_id"), ==, msg_id);
  g_assert_cmpint (gchat_message_get_int (receipt, "delivered"), <=, now);
  g_assert_cmpint (gchat_message_get_int (receipt, "delivered"), >, now - 600);
  g_assert_cmpint (gchat_message_get_int (receipt, "receipt_id"), >, 0);
  return gchat_message_get_int (receipt, "receipt_id");
}

static gboolean
box_is_gone (gpointer data)
{
  return !g_file_test (data, G_FILE_TEST_EXISTS);
}

static gboolean
box_is_there (gpointer data)
{
  return g_file_test (data, G_FILE_TEST_EXISTS);
}

/* Waits until @user's box file is deleted: what it held was acknowledged, durably. */
static void
wait_box_empty (TestDaemon *d,
                const char *user)
{
  g_autofree char *name = g_strconcat (user, ".json", NULL);
  g_autofree char *path = g_build_filename (d->dir, "mail", name, NULL);

  test_iterate_until (box_is_gone, path);
}

/* The whole round: held, delivered at log-in, acknowledged, receipt to the online sender, the
 * receipt acknowledged; afterwards nobody gets anything again. */
static void
test_deliver (void)
{
  g_autoptr(TestDaemon) d = test_daemon_new (NULL);
  g_autoptr(TestClient) alice = NULL;
  g_autoptr(TestClient) bob = NULL;
  g_autofree char *mail_dir = NULL;
  gint64 mail_id, receipt_id;

  if (d == NULL)
    return;
  mail_dir = g_build_filename (d->dir, "mail", NULL);
  make_offline_user (d, "Bob");
  alice = sign_up (d, "alice");
  mail_id = post_ok (alice, "bob", 7, TEXT);
  g_assert_true (g_file_test (mail_dir, G_FILE_TEST_IS_DIR));
  g_assert_cmpuint (gchat_test_file_mode (mail_dir), ==, 0700);

  bob = log_in (d, "bob");
  g_assert_cmpint (expect_mail (bob, "alice", 7, TEXT), ==, mail_id);
  test_client_mail_ack (bob, mail_id);
  /* A second acknowledgement changes nothing. */
  test_client_mail_ack (bob, mail_id);
  receipt_id = expect_receipt (alice, "Bob", 7);
  test_client_receipt_ack (alice, receipt_id);
  test_client_receipt_ack (alice, receipt_id);
  wait_box_empty (d, "bob");
  wait_box_empty (d, "alice");

  g_clear_pointer (&alice, test_client_free);
  g_clear_pointer (&bob, test_client_free);
  alice = log_in (d, "alice");
  bob = log_in (d, "bob");
  test_client_ping (alice);
  test_client_ping (bob);
}

/* The sender is away when the message is acknowledged: the receipt waits for its log-in. And a
 * message posted to someone online arrives at once (and is held until acknowledged). */
static void
test_receipt_later (void)
{
  g_autoptr(TestDaemon) d = test_daemon_new (NULL);
  g_autoptr(TestClient) alice = NULL;
  g_autoptr(TestClient) bob = NULL;
  g_autofree char *alice_box = NULL;
  gint64 mail_id;

  if (d == NULL)
    return;
  alice_box = g_build_filename (d->dir, "mail", "alice.json", NULL);
  alice = sign_up (d, "alice");
  bob = sign_up (d, "bob");
  mail_id = post_ok (alice, "bob", 1, "live");
  g_assert_cmpint (expect_mail (bob, "alice", 1, "live"), ==, mail_id);
  g_clear_pointer (&alice, test_client_free);

  test_client_mail_ack (bob, mail_id);
  /* The receipt is durable in alice's box before she is back. */
  test_iterate_until (box_is_there, alice_box);
  alice = log_in (d, "alice");
  expect_receipt (alice, "bob", 1);
}

/* A message not acknowledged comes again at the next log-in, with the same id; several come
 * oldest first. */
static void
test_redeliver (void)
{
  g_autoptr(TestDaemon) d = test_daemon_new (NULL);
  g_autoptr(TestClient) alice = NULL;
  g_autoptr(TestClient) bob = NULL;
  gint64 first, second;

  if (d == NULL)
    return;
  make_offline_user (d, "bob");
  alice = sign_up (d, "alice");
  first = post_ok (alice, "bob", 10, "one");
  second = post_ok (alice, "bob", 11, "two");
  g_assert_cmpint (second, >, first);

  bob = log_in (d, "bob");
  g_assert_cmpint (expect_mail (bob, "alice", 10, "one"), ==, first);
  g_assert_cmpint (expect_mail (bob, "alice", 11, "two"), ==, second);
  g_clear_pointer (&bob, test_client_free);

  bob = log_in (d, "bob");
  g_assert_cmpint (expect_mail (bob, "alice", 10, "one"), ==, first);
  g_assert_cmpint (expect_mail (bob, "alice", 11, "two"), ==, second);
  test_client_mail_ack (bob, first);
  expect_receipt (alice, "bob", 10);
  g_clear_pointer (&bob, test_client_free);

  bob = log_in (d, "bob");
  g_assert_cmpint (expect_mail (bob, "alice", 11, "two"), ==, second);
  test_client_ping (bob);
}

/* A post answered is durable: neither a stop (SIGTERM) nor a crash (SIGKILL) right after the
 * answer loses it. */
static void
check_survives (int signal_number)
{
  g_autoptr(TestDaemon) d = test_daemon_new (NULL);
  g_autoptr(TestClient) alice = NULL;
  g_autoptr(TestClient) bob = NULL;
  gint64 mail_id;

  if (d == NULL)
    return;
  make_offline_user (d, "bob");
  alice = sign_up (d, "alice");
  mail_id = post_ok (alice, "bob", 99, TEXT);
  test_daemon_stop (d, signal_number);
  g_clear_pointer (&alice, test_client_free);

  test_daemon_start (d);
  bob = log_in (d, "bob");
  g_assert_cmpint (expect_mail (bob, "alice", 99, TEXT), ==, mail_id);
}

static void
test_survives_sigterm (void)
{
  check_survives (SIGTERM);
}

static void
test_survives_sigkill (void)
{
  check_survives (SIGKILL);
}

/* Posts that cannot be held: no such account, oneself. The log never shows a text. */
static void
test_refused (void)
{
  g_autoptr(TestDaemon) d = test_daemon_new (NULL);
  g_autoptr(TestClient) alice = NULL;
  g_autofree char *log = NULL;

  if (d == NULL)
    return;
  make_offline_user (d, "bob");
  alice = sign_up (d, "alice");
  assert_post_fails (alice, "nobody", "unknown-user");
  assert_post_fails (alice, "not a name!", "unknown-user");
  assert_post_fails (alice, "ALICE", "bad-name");
  post_ok (alice, "bob", 1, TEXT);
  test_client_ping (alice);

  test_daemon_stop (d, SIGTERM);
  log = test_daemon_dup_log (d);
  g_assert_null (strstr (log, "stays between us"));
}

/* An account deleted with gchatctl takes its box along: a new account of the same name does
 * not get what was held for the old one. */
static void
test_account_deleted (void)
{
  g_autoptr(TestDaemon) d = test_daemon_new (NULL);
  g_autoptr(TestClient) alice = NULL;
  g_autoptr(TestClient) bob = NULL;
  g_autofree char *err = NULL;

  if (d == NULL)
    return;
  if (g_getenv ("GCHATCTL") == NULL)
    {
      g_test_skip ("GCHATCTL is not set");
      return;
    }
  make_offline_user (d, "bob");
  alice = sign_up (d, "alice");
  post_ok (alice, "bob", 1, TEXT);
  g_assert_cmpint (test_run_gchatctl (NULL, &err, "--config", d->config_path, "deluser", "bob",
                                      NULL), ==, 0);
  wait_box_empty (d, "bob");
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (test_run_gchatctl (TEST_PASSWORD, &err, "--config", d->config_path, "adduser",
                                      "bob", NULL), ==, 0);
  bob = log_in (d, "bob");
  test_client_ping (bob);
}

/* The same while gchatd is stopped: gchatctl works on the files and drops the box too, so a
 * new account of that name never reads the old account's mail. */
static void
test_account_deleted_offline (void)
{
  g_autoptr(TestDaemon) d = test_daemon_new (NULL);
  g_autoptr(TestClient) alice = NULL;
  g_autoptr(TestClient) bob = NULL;
  g_autoptr(GchatMessage) message = NULL;
  g_autofree char *err = NULL;
  g_autofree char *box = NULL;

  if (d == NULL)
    return;
  if (g_getenv ("GCHATCTL") == NULL)
    {
      g_test_skip ("GCHATCTL is not set");
      return;
    }
  make_offline_user (d, "bob");
  alice = sign_up (d, "alice");
  post_ok (alice, "bob", 1, TEXT);
  g_clear_pointer (&alice, test_client_free);
  test_daemon_stop (d, SIGTERM);
  box = g_build_filename (d->dir, "mail", "bob.json", NULL);
  g_assert_true (g_file_test (box, G_FILE_TEST_EXISTS));

  g_assert_cmpint (test_run_gchatctl (NULL, &err, "--config", d->config_path, "deluser", "bob",
                                      NULL), ==, 0);
  g_assert_false (g_file_test (box, G_FILE_TEST_EXISTS));
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (test_run_gchatctl (TEST_PASSWORD, &err, "--config", d->config_path, "adduser",
                                      "bob", NULL), ==, 0);
  test_daemon_start (d);
  bob = test_client_log_in (d->port, "auth", "bob", TEST_PASSWORD);
  /* The ping's answer comes first: no mail was waiting to be pushed before it. */
  test_client_ping (bob);
  while ((message = test_client_pop_message (bob)) != NULL)
    {
      g_assert_cmpint (gchat_message_get_message_type (message), !=, GCHAT_MESSAGE_MAIL);
      g_clear_pointer (&message, gchat_message_unref);
    }
}

/* A text that is not UTF-8, or holds a NUL, breaks the protocol: `bad-message`, then the
 * connection closes, and nothing is held. */
static void
test_bad_text (void)
{
  static const char *const texts[] = { "caf\xe9", "a\0b", "\xed\xa0\x80" };
  static const gsize lengths[] = { 4, 3, 3 };
  g_autoptr(TestDaemon) d = test_daemon_new (NULL);
  g_autoptr(TestClient) bob = NULL;

  if (d == NULL)
    return;
  make_offline_user (d, "bob");
  for (guint i = 0; i < G_N_ELEMENTS (texts); i++)
    {
      g_autofree char *name = g_strdup_printf ("sender%u", i);
      g_autoptr(TestClient) c = sign_up (d, name);
      g_autoptr(GchatMessage) error = NULL;

      test_client_send_post (c, "bob", 1, texts[i], lengths[i], 5);
      error = test_client_expect (c, GCHAT_MESSAGE_ERROR_MSG);
      g_assert_cmpstr (gchat_message_get_string (error, "code"), ==, "bad-message");
      g_assert_cmpint (gchat_message_get_int (error, "id"), ==, 5);
      test_client_expect_closed (c);
    }
  bob = log_in (d, "bob");
  test_client_ping (bob);
}

/* The box holds 1000 messages (the real limit, posted back to back): the next is refused with
 * `mailbox-full`, and all 1000 arrive at the log-in, in order. */
static void
test_full_by_count (void)
{
  g_autoptr(TestDaemon) d = test_daemon_new (NULL);
  g_autoptr(TestClient) alice = NULL;
  g_autoptr(TestClient) bob = NULL;
  g_autoptr(GchatMessage) refused = NULL;

  if (d == NULL)
    return;
  make_offline_user (d, "bob");
  alice = sign_up (d, "alice");
  for (guint i = 0; i < 1001; i++)
    {
      g_autofree char *text = g_strdup_printf ("message %u", i);

      test_client_send_post (alice, "bob", i, text, strlen (text), i);
    }
  for (guint i = 0; i < 1000; i++)
    {
      g_autoptr(GchatMessage) result = test_client_expect (alice, GCHAT_MESSAGE_RESULT);

      g_assert_true (gchat_message_get_bool (result, "ok"));
      g_assert_cmpint (gchat_message_get_int (result, "id"), ==, i);
    }
  refused = test_client_expect (alice, GCHAT_MESSAGE_RESULT);
  g_assert_false (gchat_message_get_bool (refused, "ok"));
  g_assert_cmpstr (gchat_message_get_string (refused, "code"), ==, "mailbox-full");
  g_assert_cmpint (gchat_message_get_int (refused, "id"), ==, 1000);

  bob = log_in (d, "bob");
  for (guint i = 0; i < 1000; i++)
    {
      g_autofree char *text = g_strdup_printf ("message %u", i);

      expect_mail (bob, "alice", i, text);
    }
  test_client_ping (bob);
}

/* The box holds 8 MiB of text: 128 of the largest texts fit, the next does not. At the log-in
 * the client gets all of it, far more than a connection may have queued, because the server
 * sends it as the client reads. */
static void
test_full_by_size (void)
{
  g_autoptr(TestDaemon) d = test_daemon_new (NULL);
  g_autoptr(TestClient) alice = NULL;
  g_autoptr(TestClient) bob = NULL;
  g_autoptr(GchatMessage) refused = NULL;
  g_autofree char *text = g_strnfill (GCHAT_TEXT_MAX, 'z');

  if (d == NULL)
    return;
  make_offline_user (d, "bob");
  alice = sign_up (d, "alice");
  /* Back to back, so that the saves of the growing box are few. */
  for (guint i = 0; i < 129; i++)
    test_client_send_post (alice, "bob", i, text, GCHAT_TEXT_MAX, i);
  for (guint i = 0; i < 128; i++)
    {
      g_autoptr(GchatMessage) result = test_client_expect (alice, GCHAT_MESSAGE_RESULT);

      g_assert_true (gchat_message_get_bool (result, "ok"));
      g_assert_cmpint (gchat_message_get_int (result, "id"), ==, i);
    }
  refused = test_client_expect (alice, GCHAT_MESSAGE_RESULT);
  g_assert_cmpstr (gchat_message_get_string (refused, "code"), ==, "mailbox-full");

  bob = log_in (d, "bob");
  for (guint i = 0; i < 128; i++)
    expect_mail (bob, "alice", i, text);
  test_client_ping (bob);
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GError) error = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);
  g_assert_true (gchat_crypto_init (&error));

  g_test_add_func ("/offline/deliver", test_deliver);
  g_test_add_func ("/offline/receipt-later", test_receipt_later);
  g_test_add_func ("/offline/redeliver", test_redeliver);
  g_test_add_func ("/offline/survives-sigterm", test_survives_sigterm);
  g_test_add_func ("/offline/survives-sigkill", test_survives_sigkill);
  g_test_add_func ("/offline/refused", test_refused);
  g_test_add_func ("/offline/bad-text", test_bad_text);
  g_test_add_func ("/offline/account-deleted", test_account_deleted);
  g_test_add_func ("/offline/account-deleted-offline", test_account_deleted_offline);
  g_test_add_func ("/offline/full-by-count", test_full_by_count);
  g_test_add_func ("/offline/full-by-size", test_full_by_size);

  status = g_test_run ();
  test_server_key_set (NULL);
  gchat_crypto_shutdown ();
  return status;
}
