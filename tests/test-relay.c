/* SPDX-License-Identifier: GPL-3.0-or-later */
/* gchatd relaying sealed peer datagrams between sessions, tested against the real daemon. */

#include "config.h"

#include <signal.h>
#include <string.h>

#include "gchat-crypto.h"
#include "gchatd-test-client.h"

/* A datagram as a client would relay it: opaque bytes, every value present. */
static GBytes *
make_datagram (gsize  len,
               guint8 seed)
{
  guint8 *data = g_malloc (len);

  for (gsize i = 0; i < len; i++)
    data[i] = (guint8) (seed + i * 131);
  return g_bytes_new_take (data, len);
}

static void
assert_relayed (TestClient *to,
                const char *from,
                GBytes     *datagram)
{
  g_autoptr(GchatMessage) relayed = test_client_expect (to, GCHAT_MESSAGE_RELAYED);
  GBytes *got = gchat_message_get_bytes (relayed, "datagram");

  g_assert_cmpstr (gchat_message_get_string (relayed, "from"), ==, from);
  g_assert_cmpmem (g_bytes_get_data (got, NULL), g_bytes_get_size (got),
                   g_bytes_get_data (datagram, NULL), g_bytes_get_size (datagram));
}

static void
relay (TestClient *c,
       const char *to,
       GBytes     *datagram)
{
  test_client_relay (c, to, g_bytes_get_data (datagram, NULL), g_bytes_get_size (datagram));
}

/* Both ways, the smallest and the largest, byte for byte, with the sender's name as stored
 * whatever spelling the sender used for the recipient. */
static void
test_relay_between_sessions (void)
{
  g_autoptr(TestDaemon) d = test_daemon_new (NULL);
  g_autoptr(TestClient) alice = NULL;
  g_autoptr(TestClient) bob = NULL;
  g_autoptr(GBytes) smallest = make_datagram (32, 1);
  g_autoptr(GBytes) largest = make_datagram (1200, 2);
  g_autoptr(GBytes) back = make_datagram (700, 3);

  if (d == NULL)
    return;
  alice = test_client_log_in (d->port, "sign", "Alice", TEST_PASSWORD);
  bob = test_client_log_in (d->port, "sign", "bob", TEST_PASSWORD);

  relay (alice, "BOB", smallest);
  relay (alice, "bob", largest);
  assert_relayed (bob, "Alice", smallest);
  assert_relayed (bob, "Alice", largest);
  relay (bob, "alice", back);
  assert_relayed (alice, "bob", back);

  /* A burst arrives whole and in order: a relay never waits for anything. */
  for (guint i = 0; i < 200; i++)
    {
      g_autoptr(GBytes) datagram = make_datagram (1200, (guint8) i);

      relay (alice, "bob", datagram);
    }
  for (guint i = 0; i < 200; i++)
    {
      g_autoptr(GBytes) datagram = make_datagram (1200, (guint8) i);

      assert_relayed (bob, "Alice", datagram);
    }
  test_client_ping (alice);
  test_client_ping (bob);
}

/* To someone offline, to no one and to oneself, a datagram is dropped without a word: the
 * sender stays connected, and nobody gets anything. The log counts drops, never bytes. */
static void
test_relay_dropped (void)
{
  g_autoptr(TestDaemon) d = test_daemon_new (NULL);
  g_autoptr(TestClient) alice = NULL;
  g_autoptr(TestClient) bob = NULL;
  g_autoptr(TestClient) carol = NULL;
  g_autoptr(GBytes) datagram = make_datagram (100, 7);
  g_autofree char *base64 = NULL;
  g_autofree char *log = NULL;

  if (d == NULL)
    return;
  carol = test_client_log_in (d->port, "sign", "carol", TEST_PASSWORD);
  g_clear_pointer (&carol, test_client_free);
  alice = test_client_log_in (d->port, "sign", "alice", TEST_PASSWORD);
  bob = test_client_log_in (d->port, "sign", "bob", TEST_PASSWORD);

  relay (alice, "carol", datagram);
  relay (alice, "nobody", datagram);
  relay (alice, "alice", datagram);
  relay (alice, "ALICE", datagram);
  /* The pongs come after anything the relays could have caused. */
  test_client_ping (alice);
  test_client_ping (bob);

  /* carol comes back: what was sent while she was away is gone, as with UDP. */
  carol = test_client_log_in (d->port, "auth", "carol", TEST_PASSWORD);
  test_client_ping (carol);

  test_daemon_stop (d, SIGTERM);
  log = test_daemon_dup_log (d);
  base64 = g_base64_encode (g_bytes_get_data (datagram, NULL), g_bytes_get_size (datagram));
  g_assert_nonnull (strstr (log, "(4 dropped so far)"));
  g_assert_null (strstr (log, base64));
  g_assert_null (strstr (log, TEST_PASSWORD));
}

/* Every new request needs a session; the connection stays, as for `talk`. */
static void
test_not_logged_in (void)
{
  static const char *const requests[] = {
    ("{\"type\":\"relay\",\"to\":\"bob\",\"datagram\":"
     "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\",\"id\":7}"),
    "{\"type\":\"post\",\"to\":\"bob\",\"msg_id\":1,\"text\":\"aGk=\",\"id\":7}",
    "{\"type\":\"mail-ack\",\"mail_id\":1,\"id\":7}",
    "{\"type\":\"receipt-ack\",\"receipt_id\":1,\"id\":7}",
  };
  g_autoptr(TestDaemon) d = test_daemon_new (NULL);
  g_autoptr(TestClient) c = NULL;

  if (d == NULL)
    return;
  c = test_client_connect (d->port);
  test_client_handshake (c);
  for (guint i = 0; i < G_N_ELEMENTS (requests); i++)
    {
      g_autoptr(GchatMessage) error = NULL;

      test_client_send_json (c, requests[i]);
      error = test_client_expect (c, GCHAT_MESSAGE_ERROR_MSG);
      g_assert_cmpstr (gchat_message_get_string (error, "code"), ==, "not-logged-in");
      g_assert_cmpint (gchat_message_get_int (error, "id"), ==, 7);
    }
  test_client_ping (c);
}

/* A datagram shorter than 32 bytes or longer than 1200 breaks §5: `bad-message`, then the
 * connection closes. */
static void
test_bad_size (void)
{
  static const gsize sizes[] = { 31, 1201 };
  g_autoptr(TestDaemon) d = test_daemon_new (NULL);

  if (d == NULL)
    return;
  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      g_autoptr(GBytes) datagram = make_datagram (sizes[i], 9);
      g_autofree char *base64 = g_base64_encode (g_bytes_get_data (datagram, NULL), sizes[i]);
      g_autofree char *json = g_strdup_printf ("{\"type\":\"relay\",\"to\":\"bob\","
                                               "\"datagram\":\"%s\"}", base64);
      g_autofree char *name = g_strdup_printf ("user%u", i);
      g_autoptr(TestClient) c = test_client_log_in (d->port, "sign", name, TEST_PASSWORD);
      g_autoptr(GchatMessage) error = NULL;

      test_client_send_json (c, json);
      error = test_client_expect (c, GCHAT_MESSAGE_ERROR_MSG);
      g_assert_cmpstr (gchat_message_get_string (error, "code"), ==, "bad-message");
      test_client_expect_closed (c);
    }
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GError) error = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);
  g_assert_true (gchat_crypto_init (&error));

  g_test_add_func ("/relay/between-sessions", test_relay_between_sessions);
  g_test_add_func ("/relay/dropped", test_relay_dropped);
  g_test_add_func ("/relay/not-logged-in", test_not_logged_in);
  g_test_add_func ("/relay/bad-size", test_bad_size);

  status = g_test_run ();
  test_server_key_set (NULL);
  gchat_crypto_shutdown ();
  return status;
}
