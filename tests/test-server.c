/* SPDX-License-Identifier: GPL-3.0-or-later */
/* gchatd's server against real loopback sockets, with clients built on the protocol library. */

#include "config.h"

#include <signal.h>
#include <string.h>

#include <glib/gstdio.h>
#include <gio/gio.h>

#include "gchat-test-util.h"
#include "gchat-datagram.h"
#include "gchatd-test-client.h"

static void
test_sign_up (TestFixture   *f,
              gconstpointer  data)
{
  G_GNUC_UNUSED g_autoptr(TestClient) alice = test_client_log_in (f->port, "sign", "alice",
                                                                  TEST_PASSWORD);
  g_autoptr(TestClient) thief = test_client_connect (f->port);
  g_autoptr(TestClient) again = NULL;
  g_autoptr(GchatMessage) result = NULL;
  g_autofree char *path = g_build_filename (f->dir, "users.json", NULL);
  GStatBuf st;

  /* Answered only once durable: the file is there, private to its owner. */
  g_assert_no_errno (g_stat (path, &st));
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);

  /* The original's account takeover: a second sign-up of the name, in any case. */
  test_client_handshake (thief);
  result = test_client_request (thief, "sign", "ALICE", "another password");
  test_assert_result (result, "name-taken");
  g_clear_pointer (&result, gchat_message_unref);
  result = test_client_request (thief, "auth", "alice", "another password");
  test_assert_result (result, "bad-credentials");

  again = test_client_log_in (f->port, "auth", "Alice", TEST_PASSWORD);
  g_assert_cmpuint (gchatd_user_store_get_n_users (gchatd_server_get_store (f->server)), ==, 1);
}

static void
test_bad_requests (TestFixture   *f,
                   gconstpointer  data)
{
  G_GNUC_UNUSED g_autoptr(TestClient) alice = test_client_log_in (f->port, "sign", "alice",
                                                                  TEST_PASSWORD);
  g_autoptr(TestClient) c = test_client_connect (f->port);
  g_autoptr(GchatMessage) result = NULL;
  g_autoptr(GchatMessage) list = gchat_message_new (GCHAT_MESSAGE_LIST);
  g_autoptr(GchatMessage) error = NULL;

  test_client_handshake (c);
  result = test_client_request (c, "auth", "alice", "wrong password");
  test_assert_result (result, "bad-credentials");
  g_clear_pointer (&result, gchat_message_unref);
  /* Unknown user: the very same answer. */
  result = test_client_request (c, "auth", "nobody", TEST_PASSWORD);
  test_assert_result (result, "bad-credentials");
  g_clear_pointer (&result, gchat_message_unref);
  result = test_client_request (c, "sign", "no spaces", TEST_PASSWORD);
  test_assert_result (result, "bad-name");
  g_clear_pointer (&result, gchat_message_unref);
  result = test_client_request (c, "sign", "bob", "short");
  test_assert_result (result, "bad-password");

  test_client_send (c, list);
  error = test_client_expect (c, GCHAT_MESSAGE_ERROR_MSG);
  g_assert_cmpstr (gchat_message_get_string (error, "code"), ==, "not-logged-in");
  g_assert_cmpuint (gchatd_server_get_n_sessions (f->server), ==, 1);
}

static void
test_throttle (TestFixture   *f,
               gconstpointer  data)
{
  G_GNUC_UNUSED g_autoptr(TestClient) alice = test_client_log_in (f->port, "sign", "alice",
                                                                  TEST_PASSWORD);
  g_autoptr(TestClient) c = test_client_connect (f->port);
  g_autoptr(GchatMessage) result = NULL;

  test_client_handshake (c);
  /* The free failures pass, then a lock-out starts. */
  for (guint i = 0; i < GCHATD_THROTTLE_NAME_FREE_FAILURES; i++)
    {
      g_clear_pointer (&result, gchat_message_unref);
      result = test_client_request (c, "auth", "alice", "wrong password");
      test_assert_result (result, "bad-credentials");
    }
  for (guint i = 0; i < 10; i++)
    {
      g_clear_pointer (&result, gchat_message_unref);
      result = test_client_request (c, "auth", "alice", "wrong password");
      if (g_strcmp0 (gchat_message_get_string (result, "code"), "throttled") == 0)
        break;
      test_assert_result (result, "bad-credentials");
    }
  test_assert_result (result, "throttled");
  g_clear_pointer (&result, gchat_message_unref);
  /* Locked out, even with the right password. */
  result = test_client_request (c, "auth", "alice", TEST_PASSWORD);
  test_assert_result (result, "throttled");
  g_assert_cmpint (gchat_message_get_int (result, "retry_after"), >=, 1);
}

/* A recorded client key and auth, replayed on a new connection, must not log in. */
static void
test_replay (TestFixture   *f,
             gconstpointer  data)
{
  g_autoptr(TestClient) signer = test_client_log_in (f->port, "sign", "alice", TEST_PASSWORD);
  g_autoptr(TestClient) victim = test_client_connect (f->port);
  g_autoptr(TestClient) attacker = test_client_connect (f->port);
  g_autoptr(GchatMessage) result = NULL;
  g_autoptr(GBytes) hello = NULL;

  g_clear_pointer (&signer, test_client_free);
  test_client_handshake (victim);
  result = test_client_request (victim, "auth", "alice", TEST_PASSWORD);
  test_assert_result (result, NULL);

  hello = test_client_recv_frame (attacker);
  g_assert_nonnull (hello);
  test_client_send_raw (attacker, g_bytes_get_data (victim->client_key_frame, NULL),
                        g_bytes_get_size (victim->client_key_frame));
  test_client_send_raw (attacker, g_bytes_get_data (victim->last_frame, NULL),
                        g_bytes_get_size (victim->last_frame));
  test_client_wait_closed (attacker, TRUE);
  g_assert_cmpuint (gchatd_server_get_n_sessions (f->server), ==, 1);
}

static void
assert_strv_has (GchatMessage *message,
                 const char   *field,
                 const char   *name)
{
  g_assert_true (test_message_has_name (message, field, name));
}

static void
test_presence (TestFixture   *f,
               gconstpointer  data)
{
  g_autoptr(TestClient) alice = test_client_log_in (f->port, "sign", "alice", TEST_PASSWORD);
  g_autoptr(TestClient) bob = test_client_log_in (f->port, "sign", "Bob", TEST_PASSWORD);
  g_autoptr(GchatMessage) list = gchat_message_new (GCHAT_MESSAGE_LIST);
  g_autoptr(GchatMessage) users = NULL;
  g_autoptr(GchatMessage) logout = gchat_message_new (GCHAT_MESSAGE_LOGOUT);
  g_auto(GStrv) names = NULL;

  test_client_expect_presence (alice, "joined", "Bob");

  gchat_message_set_int (list, "id", 7);
  test_client_send (alice, list);
  users = test_client_expect (alice, GCHAT_MESSAGE_USERS);
  g_assert_cmpint (gchat_message_get_int (users, "id"), ==, 7);
  names = gchat_message_dup_strv (users, "users");
  g_assert_cmpuint (g_strv_length (names), ==, 2);
  assert_strv_has (users, "users", "alice");
  assert_strv_has (users, "users", "Bob");

  test_client_send (bob, logout);
  test_client_expect_closed (bob);
  test_client_expect_presence (alice, "left", "Bob");
  g_assert_cmpuint (gchatd_server_get_n_sessions (f->server), ==, 1);
}

/* A mass join costs each client a few presence frames, not one per joining user. */
static void
test_presence_batched (TestFixture   *f,
                       gconstpointer  data)
{
  g_autoptr(TestClient) alice = test_client_log_in (f->port, "sign", "alice", TEST_PASSWORD);
  g_autoptr(GPtrArray) others = g_ptr_array_new_with_free_func ((GDestroyNotify) test_client_free);
  g_autoptr(GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  const guint n = 20;
  guint frames = 0;

  for (guint i = 0; i < n; i++)
    {
      g_autofree char *name = g_strdup_printf ("user%02u", i);

      g_ptr_array_add (others, test_client_log_in (f->port, "sign", name, TEST_PASSWORD));
    }
  while (g_hash_table_size (seen) < n)
    {
      g_autoptr(GchatMessage) presence = test_client_expect (alice, GCHAT_MESSAGE_PRESENCE);
      g_auto(GStrv) joined = gchat_message_dup_strv (presence, "joined");

      frames++;
      for (guint i = 0; joined != NULL && joined[i] != NULL; i++)
        if (!g_str_equal (joined[i], "alice"))
          g_hash_table_add (seen, g_strdup (joined[i]));
    }
  g_test_message ("%u joins reached alice in %u presence frames", n, frames);
  g_assert_cmpuint (frames, <=, 2);
}

/* A user who comes and goes within one batch window costs the sessions that were there before
 * nothing, while a session that logged in in between (and so saw that user in its list) is
 * told that the user left. */
static void
test_presence_net (TestFixture   *f,
                   gconstpointer  data)
{
  g_autoptr(TestClient) alice = test_client_log_in (f->port, "sign", "alice", TEST_PASSWORD);
  g_autoptr(TestClient) bob = NULL;
  g_autoptr(TestClient) carol = NULL;
  g_autoptr(TestClient) dave = NULL;
  g_autoptr(GchatMessage) logout = gchat_message_new (GCHAT_MESSAGE_LOGOUT);
  g_autoptr(GchatMessage) seen_by_alice = NULL;

  /* alice's own join has gone out: from now on she is one of the sessions before the window. */
  test_client_expect_presence (alice, "joined", "alice");

  bob = test_client_log_in (f->port, "sign", "bob", TEST_PASSWORD);
  carol = test_client_log_in (f->port, "sign", "carol", TEST_PASSWORD);
  test_client_send (bob, logout);
  test_client_expect_closed (bob);
  dave = test_client_log_in (f->port, "sign", "dave", TEST_PASSWORD);

  seen_by_alice = test_client_expect (alice, GCHAT_MESSAGE_PRESENCE);
  g_assert_true (test_message_has_name (seen_by_alice, "joined", "carol"));
  g_assert_true (test_message_has_name (seen_by_alice, "joined", "dave"));
  g_assert_false (test_message_has_name (seen_by_alice, "joined", "bob"));
  g_assert_false (test_message_has_name (seen_by_alice, "left", "bob"));

  test_client_expect_presence (carol, "left", "bob");
  test_client_ping (alice);
}

static void
assert_same_key (GchatMessage *a,
                 GchatMessage *b)
{
  g_assert_cmpint (gchat_message_get_int (a, "key_id"), ==, gchat_message_get_int (b, "key_id"));
  g_assert_true (g_bytes_equal (gchat_message_get_bytes (a, "key"),
                                gchat_message_get_bytes (b, "key")));
  g_assert_cmpint (gchat_message_get_int (a, "expires"), >, g_get_real_time () / G_USEC_PER_SEC);
}

static void
test_talk (TestFixture   *f,
           gconstpointer  data)
{
  g_autoptr(TestClient) alice = test_client_log_in (f->port, "sign", "alice", TEST_PASSWORD);
  g_autoptr(TestClient) bob = test_client_log_in (f->port, "sign", "bob", TEST_PASSWORD);
  g_autoptr(TestClient) carol = test_client_log_in (f->port, "sign", "carol", TEST_PASSWORD);
  g_autoptr(GchatMessage) to_alice = test_client_request (alice, "talk", "BOB", NULL);
  g_autoptr(GchatMessage) to_bob = test_client_expect (bob, GCHAT_MESSAGE_PAIR_KEY);
  g_autoptr(GchatMessage) logout = gchat_message_new (GCHAT_MESSAGE_LOGOUT);
  g_autoptr(GchatMessage) talk = gchat_message_new (GCHAT_MESSAGE_TALK);
  g_autoptr(GchatMessage) result = NULL;

  g_assert_cmpstr (gchat_message_get_string (to_alice, "user"), ==, "bob");
  g_assert_cmpstr (gchat_message_get_string (to_bob, "user"), ==, "alice");
  g_assert_cmpint (gchat_message_get_int (to_alice, "id"), ==, 42);
  g_assert_false (gchat_message_has_field (to_bob, "id"));
  assert_same_key (to_alice, to_bob);

  test_client_send (carol, logout);
  test_client_expect_closed (carol);
  gchat_message_set_int (talk, "id", 42);
  gchat_message_set_string (talk, "user", "carol");
  test_client_send (alice, talk);
  result = test_client_expect (alice, GCHAT_MESSAGE_RESULT);
  test_assert_result (result, "offline");
  g_clear_pointer (&result, gchat_message_unref);
  gchat_message_set_string (talk, "user", "dave");
  test_client_send (alice, talk);
  result = test_client_expect (alice, GCHAT_MESSAGE_RESULT);
  test_assert_result (result, "unknown-user");
  g_clear_pointer (&result, gchat_message_unref);
  gchat_message_set_string (talk, "user", "Alice");
  test_client_send (alice, talk);
  result = test_client_expect (alice, GCHAT_MESSAGE_RESULT);
  test_assert_result (result, "bad-name");
}

/* A datagram socket standing for a client's peer socket, and whether its answer came. */
typedef struct {
  GSocket *socket;
  gboolean answered;
} PeerSocket;

static gboolean
peer_socket_answered (gpointer data)
{
  PeerSocket *peer = data;
  char buffer[2048];

  if (g_socket_receive (peer->socket, buffer, sizeof buffer, NULL, NULL) > 0)
    peer->answered = TRUE;
  return peer->answered;
}

/* The original trusted the address a client claimed, in plaintext. Here the server records the
 * source address it saw on an authenticated datagram, and hands it to the peer first. */
static void
test_endpoints (TestFixture   *f,
                gconstpointer  data)
{
  g_autoptr(TestClient) alice = test_client_log_in (f->port, "sign", "alice", TEST_PASSWORD);
  g_autoptr(TestClient) bob = test_client_connect (f->port);
  g_autoptr(GchatMessage) result = NULL;
  g_autoptr(GchatMessage) users = NULL;
  g_autoptr(GchatMessage) to_alice = NULL;
  g_autoptr(GchatEndpointKey) endpoint_key = NULL;
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
  g_autoptr(GSocketAddress) server = g_inet_socket_address_new (loopback, f->port);
  g_autoptr(GSocketAddress) local = NULL;
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GBytes) datagram = NULL;
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) endpoints = NULL;
  g_autofree char *observed = NULL;
  GchatDatagramEndpoint claimed = { .family = 4, .address = { 203, 0, 113, 9 }, .port = 4444 };
  PeerSocket peer = { 0 };
  guint8 key[32];
  gint64 endpoint_id;

  test_client_handshake (bob);
  result = test_client_request (bob, "sign", "bob", TEST_PASSWORD);
  test_assert_result (result, NULL);
  endpoint_id = gchat_message_get_int (result, "endpoint_id");
  g_assert_cmpint (endpoint_id, >, 0);
  users = test_client_expect (bob, GCHAT_MESSAGE_USERS);

  g_assert_true (gchat_handshake_export (bob->handshake, "endpoint", key, sizeof key, NULL));
  endpoint_key = gchat_endpoint_key_new_for_session (key, (guint32) endpoint_id,
                                                     GCHAT_ENDPOINT_SIDE_CLIENT, &error);
  g_assert_no_error (error);
  peer.socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM,
                              G_SOCKET_PROTOCOL_UDP, &error);
  g_assert_no_error (error);
  g_assert_true (g_socket_bind (peer.socket, any, FALSE, &error));
  g_socket_set_blocking (peer.socket, FALSE);
  local = g_socket_get_local_address (peer.socket, &error);
  observed = g_strdup_printf ("127.0.0.1:%u",
                              g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (local)));

  body = gchat_datagram_build_endpoint ("bob", &claimed, 1, &error);
  g_assert_no_error (error);
  datagram = gchat_endpoint_key_seal (endpoint_key, g_bytes_get_data (body, NULL),
                                      g_bytes_get_size (body), &error);
  g_assert_no_error (error);
  g_assert_cmpint (g_socket_send_to (peer.socket, server, g_bytes_get_data (datagram, NULL),
                                     g_bytes_get_size (datagram), NULL, &error), >, 0);
  test_iterate_until (peer_socket_answered, &peer);

  to_alice = test_client_request (alice, "talk", "bob", NULL);
  endpoints = gchat_message_dup_strv (to_alice, "endpoints");
  g_assert_nonnull (endpoints);
  g_assert_cmpuint (g_strv_length (endpoints), ==, 2);
  g_assert_cmpstr (endpoints[0], ==, observed);
  g_assert_cmpstr (endpoints[1], ==, "203.0.113.9:4444");
  g_clear_object (&peer.socket);
}

/* The original could leave both with different keys forever. */
static void
test_talk_both_ways (TestFixture   *f,
                     gconstpointer  data)
{
  g_autoptr(TestClient) alice = test_client_log_in (f->port, "sign", "alice", TEST_PASSWORD);
  g_autoptr(TestClient) bob = test_client_log_in (f->port, "sign", "bob", TEST_PASSWORD);
  g_autoptr(GchatMessage) to_bob = gchat_message_new (GCHAT_MESSAGE_TALK);
  g_autoptr(GchatMessage) to_alice = gchat_message_new (GCHAT_MESSAGE_TALK);
  GchatMessage *keys[4];

  gchat_message_set_string (to_bob, "user", "bob");
  gchat_message_set_string (to_alice, "user", "alice");
  test_client_send (alice, to_bob);
  test_client_send (bob, to_alice);
  keys[0] = test_client_expect (alice, GCHAT_MESSAGE_PAIR_KEY);
  keys[1] = test_client_expect (alice, GCHAT_MESSAGE_PAIR_KEY);
  keys[2] = test_client_expect (bob, GCHAT_MESSAGE_PAIR_KEY);
  keys[3] = test_client_expect (bob, GCHAT_MESSAGE_PAIR_KEY);
  for (guint i = 1; i < G_N_ELEMENTS (keys); i++)
    assert_same_key (keys[0], keys[i]);
  for (guint i = 0; i < G_N_ELEMENTS (keys); i++)
    gchat_message_unref (keys[i]);
}

/* A client that logs in again starts its datagram counters over: it must get a new key. */
static void
test_talk_new_session (TestFixture   *f,
                       gconstpointer  data)
{
  g_autoptr(TestClient) alice = test_client_log_in (f->port, "sign", "alice", TEST_PASSWORD);
  G_GNUC_UNUSED g_autoptr(TestClient) bob = test_client_log_in (f->port, "sign", "bob",
                                                                TEST_PASSWORD);
  g_autoptr(TestClient) bob_again = NULL;
  g_autoptr(GchatMessage) first = test_client_request (alice, "talk", "bob", NULL);
  g_autoptr(GchatMessage) same = test_client_request (alice, "talk", "bob", NULL);
  g_autoptr(GchatMessage) fresh = NULL;

  g_assert_cmpint (gchat_message_get_int (first, "key_id"), ==,
                   gchat_message_get_int (same, "key_id"));
  bob_again = test_client_log_in (f->port, "auth", "bob", TEST_PASSWORD);
  fresh = test_client_request (alice, "talk", "bob", NULL);
  g_assert_cmpint (gchat_message_get_int (first, "key_id"), !=,
                   gchat_message_get_int (fresh, "key_id"));
  g_assert_false (g_bytes_equal (gchat_message_get_bytes (first, "key"),
                                 gchat_message_get_bytes (fresh, "key")));
}

static void
test_replace (TestFixture   *f,
              gconstpointer  data)
{
  g_autoptr(TestClient) first = test_client_log_in (f->port, "sign", "alice", TEST_PASSWORD);
  g_autoptr(TestClient) second = test_client_log_in (f->port, "auth", "ALICE", TEST_PASSWORD);
  g_autoptr(GchatMessage) bye = test_client_expect (first, GCHAT_MESSAGE_BYE);
  g_autoptr(GchatMessage) ping = gchat_message_new (GCHAT_MESSAGE_PING);
  g_autoptr(GchatMessage) pong = NULL;

  g_assert_cmpstr (gchat_message_get_string (bye, "code"), ==, "replaced");
  test_client_expect_closed (first);
  gchat_message_set_int (ping, "id", 3);
  test_client_send (second, ping);
  pong = test_client_expect (second, GCHAT_MESSAGE_PONG);
  g_assert_cmpint (gchat_message_get_int (pong, "id"), ==, 3);
  g_assert_cmpuint (gchatd_server_get_n_sessions (f->server), ==, 1);
}

/* A client that vanished without a word (killed, unplugged) leaves everyone's list once the
 * idle deadline passes; one that pings stays. */
static void
test_idle (TestFixture   *f,
           gconstpointer  data)
{
  g_autoptr(TestClient) alice = test_client_log_in (f->port, "sign", "alice", TEST_PASSWORD);
  g_autoptr(TestClient) bob = test_client_log_in (f->port, "sign", "bob", TEST_PASSWORD);
  g_autoptr(GchatMessage) bye = NULL;
  g_autoptr(GchatMessage) ping = gchat_message_new (GCHAT_MESSAGE_PING);
  gint64 deadline = g_get_monotonic_time () + gchat_test_scale_us (3 * G_USEC_PER_SEC);
  gboolean bob_gone = FALSE;

  test_client_expect_presence (alice, "joined", "bob");
  /* Alice keeps talking, Bob says nothing. */
  while (!bob_gone && g_get_monotonic_time () < deadline)
    {
      g_autoptr(GchatMessage) message = NULL;

      test_client_send (alice, ping);
      message = test_client_recv (alice);
      g_assert_nonnull (message);
      if (gchat_message_get_message_type (message) == GCHAT_MESSAGE_PRESENCE)
        bob_gone = test_message_has_name (message, "left", "bob");
    }
  g_assert_true (bob_gone);
  bye = test_client_expect (bob, GCHAT_MESSAGE_BYE);
  g_assert_cmpstr (gchat_message_get_string (bye, "code"), ==, "idle");
  test_client_expect_closed (bob);
  g_assert_cmpuint (gchatd_server_get_n_sessions (f->server), ==, 1);
}

/* An admin who closed sign-up adds accounts with gchatctl; `sign` is refused. */
static void
test_sign_up_closed (TestFixture   *f,
                     gconstpointer  data)
{
  g_autoptr(TestClient) c = test_client_connect (f->port);
  g_autoptr(GchatMessage) result = NULL;

  test_client_handshake (c);
  result = test_client_request (c, "sign", "mallory", TEST_PASSWORD);
  test_assert_result (result, "sign-up-closed");
}

static void
send_garbage (TestFixture      *f,
              const guint8 *data,
              gsize         len,
              gboolean      after_hello)
{
  g_autoptr(TestClient) c = test_client_connect (f->port);

  if (after_hello)
    {
      g_autoptr(GBytes) hello = test_client_recv_frame (c);

      g_assert_nonnull (hello);
    }
  test_client_send_raw (c, data, len);
  while (!c->closed)
    g_bytes_unref (test_client_recv_frame (c));
}

static void
test_garbage (TestFixture   *f,
              gconstpointer  data)
{
  static const guint8 oversize[] = { 0x00, 0x00, 0x04, 0x01, 'G', 'C' };
  static const guint8 huge[] = { 0xff, 0xff, 0xff, 0xff };
  static const guint8 empty[] = { 0, 0, 0, 0 };
  guint8 junk[300];
  g_autoptr(TestClient) alice = NULL;

  send_garbage (f, oversize, sizeof oversize, TRUE);
  send_garbage (f, huge, sizeof huge, FALSE);
  send_garbage (f, empty, sizeof empty, TRUE);
  /* A well-framed client key of the wrong size and contents. */
  gchat_frame_write_header (junk, sizeof junk - GCHAT_FRAME_HEADER_SIZE);
  for (gsize i = GCHAT_FRAME_HEADER_SIZE; i < sizeof junk; i++)
    junk[i] = (guint8) g_random_int ();
  send_garbage (f, junk, sizeof junk, TRUE);

  /* Nothing of that disturbed the server. */
  alice = test_client_log_in (f->port, "sign", "alice", TEST_PASSWORD);
  g_assert_cmpuint (gchatd_server_get_n_sessions (f->server), ==, 1);
}

static void
test_tampered (TestFixture   *f,
               gconstpointer  data)
{
  g_autoptr(TestClient) c = test_client_connect (f->port);
  g_autoptr(TestClient) d = test_client_connect (f->port);
  g_autoptr(GchatMessage) error = NULL;
  g_autoptr(GBytes) frame = NULL;
  guint8 *bytes;
  gsize len;

  /* A sealed frame with one bit flipped. */
  test_client_handshake (c);
  frame = gchat_channel_seal (c->channel, (const guint8 *) "{\"type\":\"ping\"}", 15, NULL);
  bytes = g_bytes_unref_to_data (g_steal_pointer (&frame), &len);
  bytes[len - 1] ^= 1;
  test_client_send_raw (c, bytes, len);
  g_free (bytes);
  test_client_expect_closed (c);

  /* A sealed frame that is not a message. */
  test_client_handshake (d);
  frame = gchat_channel_seal (d->channel, (const guint8 *) "{\"type\":\"nope\"}", 15, NULL);
  test_client_send_raw (d, g_bytes_get_data (frame, NULL), g_bytes_get_size (frame));
  error = test_client_expect (d, GCHAT_MESSAGE_ERROR_MSG);
  g_assert_cmpstr (gchat_message_get_string (error, "code"), ==, "bad-message");
  test_client_expect_closed (d);
}

static void
test_login_deadline (TestFixture   *f,
                     gconstpointer  data)
{
  g_autoptr(TestClient) slow = NULL;

  gchatd_server_set_login_timeout (f->server, 100);
  slow = test_client_connect (f->port);
  /* The hello, then nothing until the server gives up. */
  g_bytes_unref (test_client_recv_frame (slow));
  test_client_expect_closed (slow);
}

static void
test_max_connections (TestFixture   *f,
                      gconstpointer  data)
{
  g_autoptr(TestClient) one = test_client_connect (f->port);
  g_autoptr(TestClient) two = test_client_connect (f->port);
  g_autoptr(TestClient) three = NULL;
  g_autoptr(GBytes) hello = NULL;

  test_client_handshake (one);
  test_client_handshake (two);
  three = test_client_connect (f->port);
  hello = test_client_recv_frame (three);
  g_assert_null (hello);
  g_assert_true (three->closed);
  g_assert_cmpuint (gchatd_server_get_n_connections (f->server), ==, 2);
}

static void
test_shutdown (TestFixture   *f,
               gconstpointer  data)
{
  g_autoptr(TestClient) alice = test_client_log_in (f->port, "sign", "alice", TEST_PASSWORD);
  g_autoptr(GchatMessage) bye = NULL;

  gchatd_server_stop (f->server);
  bye = test_client_expect (alice, GCHAT_MESSAGE_BYE);
  g_assert_cmpstr (gchat_message_get_string (bye, "code"), ==, "shutdown");
  test_client_expect_closed (alice);
}

/* The daemon itself */

/* gchatctl beside a running gchatd goes through its control socket: an account it adds can log
 * in at once, one it deletes is thrown out at once, and a second gchatd on the same files is
 * refused by the store lock. */
static void
check_admin_beside_daemon (guint16     port,
                           const char *config_path)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocess) second = NULL;
  g_autofree char *err = NULL;
  g_autofree char *second_err = NULL;
  TestClient *carol;
  GchatMessage *bye;

  if (g_getenv ("GCHATCTL") == NULL)
    return;
  g_assert_cmpint (test_run_gchatctl (TEST_PASSWORD, &err, "--config", config_path, "adduser",
                                      "carol", NULL), ==, 0);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (test_run_gchatctl (TEST_PASSWORD, &err, "--config", config_path, "adduser",
                                      "Carol", NULL), ==, 1);
  g_assert_nonnull (strstr (err, "taken"));
  g_clear_pointer (&err, g_free);

  carol = test_client_log_in (port, "auth", "carol", TEST_PASSWORD);
  g_assert_cmpint (test_run_gchatctl (NULL, &err, "--config", config_path, "deluser", "carol",
                                      NULL), ==, 0);
  bye = test_client_expect (carol, GCHAT_MESSAGE_BYE);
  g_assert_cmpstr (gchat_message_get_string (bye, "code"), ==, "account-deleted");
  gchat_message_unref (bye);
  test_client_expect_closed (carol);
  test_client_free (carol);

  second = test_spawn_gchatd (G_SUBPROCESS_FLAGS_STDERR_PIPE, &error, "--config", config_path,
                              NULL);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_communicate_utf8 (second, NULL, NULL, NULL, &second_err, &error));
  g_assert_cmpint (g_subprocess_get_exit_status (second), ==, 1);
}

/* SIGTERM: every client is told, the store is flushed, and gchatd exits 0 within 2 s. */
#define WRONG_PASSWORD "not-the-password-42"

static void
check_wrong_password (guint16 port)
{
  g_autoptr(TestClient) c = test_client_connect (port);
  g_autoptr(GchatMessage) result = NULL;

  test_client_handshake (c);
  result = test_client_request (c, "auth", "alice", WRONG_PASSWORD);
  test_assert_result (result, "bad-credentials");
}

/* The log names log-ins and failures, never a password (issue 3: "logged without the
 * password"). */
static void
check_log (GSubprocess *daemon)
{
  GInputStream *stream = g_subprocess_get_stderr_pipe (daemon);
  g_autoptr(GByteArray) log = g_byte_array_new ();
  guint8 buffer[4096];
  gssize n;

  while ((n = g_input_stream_read (stream, buffer, sizeof buffer, NULL, NULL)) > 0)
    g_byte_array_append (log, buffer, n);
  g_byte_array_append (log, (const guint8 *) "", 1);
  g_assert_nonnull (strstr ((const char *) log->data, "alice"));
  g_assert_null (strstr ((const char *) log->data, TEST_PASSWORD));
  g_assert_null (strstr ((const char *) log->data, WRONG_PASSWORD));
}

/* SIGHUP re-reads the configuration: closing sign-up takes effect without a restart, and the
 * sessions already open stay (alice gets her `bye` only at the SIGTERM that follows). */
static void
check_reload (GSubprocess *daemon,
              guint16      port,
              const char  *config_path,
              const char  *config)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *closed = g_strconcat (config, "allow_sign_up: false\n", NULL);
  gint64 start = g_get_monotonic_time ();
  gboolean refused = FALSE;

  g_assert_true (g_file_set_contents (config_path, closed, -1, &error));
  g_subprocess_send_signal (daemon, SIGHUP);
  /* The signal is handled on gchatd's loop: ask until the new rule shows. */
  for (guint i = 0; !refused; i++)
    {
      g_autofree char *name = g_strdup_printf ("late%u", i);
      g_autoptr(TestClient) c = test_client_connect (port);
      g_autoptr(GchatMessage) result = NULL;

      g_assert_cmpint (g_get_monotonic_time () - start, <, TEST_WAIT_TIMEOUT_US);
      test_client_handshake (c);
      result = test_client_request (c, "sign", name, TEST_PASSWORD);
      refused = g_strcmp0 (gchat_message_get_string (result, "code"), "sign-up-closed") == 0;
    }
}

static void
test_daemon (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("gchatd-test-XXXXXX", &error);
  g_autofree char *config_path = g_build_filename (dir, "config.yaml", NULL);
  g_autofree char *store_path = g_build_filename (dir, "users.json", NULL);
  g_autofree char *key_path = g_build_filename (dir, "server-private.pem", NULL);
  g_autofree char *public_path = g_build_filename (dir, "server-public.pem", NULL);
  g_autofree char *config = NULL;
  g_autofree char *fingerprint = gchat_rsa_key_get_fingerprint (test_server_key_get ());
  g_autofree char *printed = NULL;
  g_autoptr(GSubprocess) daemon = NULL;
  g_autoptr(GSubprocess) print = NULL;
  g_autoptr(GchatdUserStore) store = NULL;
  g_autoptr(GchatdUserRecord) record = NULL;
  guint16 port = test_find_free_port ();
  TestClient *alice = NULL;
  GchatMessage *bye;
  gint64 start;

  if (g_getenv ("GCHATD") == NULL)
    {
      g_test_skip ("GCHATD is not set");
      return;
    }
  config = g_strdup_printf ("server_address: 127.0.0.1\nserver_port: %u\ndata_base: users.json\n"
                            "argon2_memory_kib: 64\nargon2_iterations: 1\n", port);
  g_assert_true (g_file_set_contents (config_path, config, -1, &error));
  g_assert_true (gchat_rsa_key_save_private (test_server_key_get (), key_path, &error));

  print = test_spawn_gchatd (G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error, "--config", config_path,
                             "--print-fingerprint", NULL);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_communicate_utf8 (print, NULL, NULL, &printed, NULL, &error));
  g_assert_true (g_subprocess_get_successful (print));
  g_assert_cmpstr (g_strstrip (printed), ==, fingerprint);
  /* The public half was written next to the private one. */
  g_assert_true (g_file_test (public_path, G_FILE_TEST_IS_REGULAR));

  /* Its log is kept, to check what it says about log-ins (below). It is small: the pipe does
   * not fill while nobody reads it. */
  daemon = test_spawn_gchatd (G_SUBPROCESS_FLAGS_STDERR_PIPE, &error, "--config", config_path,
                              NULL);
  g_assert_no_error (error);
  for (start = g_get_monotonic_time (); alice == NULL;)
    {
      g_autoptr(GSocketClient) socket_client = g_socket_client_new ();
      g_autoptr(GSocketConnection) connection = NULL;

      g_assert_cmpint (g_get_monotonic_time () - start, <, TEST_WAIT_TIMEOUT_US);
      connection = g_socket_client_connect_to_host (socket_client, "127.0.0.1", port, NULL, NULL);
      if (connection == NULL)
        g_usleep (20000);
      else
        alice = test_client_log_in (port, "sign", "alice", TEST_PASSWORD);
    }

  check_admin_beside_daemon (port, config_path);
  check_wrong_password (port);
  check_reload (daemon, port, config_path, config);

  start = g_get_monotonic_time ();
  g_subprocess_send_signal (daemon, SIGTERM);
  bye = test_client_expect (alice, GCHAT_MESSAGE_BYE);
  g_assert_cmpstr (gchat_message_get_string (bye, "code"), ==, "shutdown");
  gchat_message_unref (bye);
  test_client_expect_closed (alice);
  test_client_free (alice);
  g_assert_true (g_subprocess_wait (daemon, NULL, &error));
  g_assert_true (g_subprocess_get_if_exited (daemon));
  g_assert_cmpint (g_subprocess_get_exit_status (daemon), ==, 0);
  g_assert_cmpint (g_get_monotonic_time () - start, <, 2 * G_USEC_PER_SEC);
  check_log (daemon);

  store = gchatd_user_store_new (store_path, &error);
  g_assert_no_error (error);
  record = gchatd_user_store_lookup (store, "alice");
  g_assert_nonnull (record);
  g_clear_object (&store);
  g_assert_no_errno (g_remove (config_path));
  test_remove_dir (dir);
}

/* The "done when": gchatd starts with no configuration at all (built-in defaults, a
 * fresh key in $XDG_DATA_HOME/gchatd, port 10000), gchatctl adds an account, and it logs in. */
/* A key too large for the hello (PROTOCOL.md §3) would fail every connection: gchatd refuses
 * to start with it and says what to do. */
static void
test_oversized_key (void)
{
  g_autofree char *dir = NULL;
  g_autofree char *key_path = NULL;
  g_autofree char *config_path = NULL;
  g_autofree char *config = NULL;
  g_autofree char *err = NULL;
  g_autoptr(GSubprocess) openssl = NULL;
  g_autoptr(GSubprocess) daemon = NULL;
  g_autoptr(GError) error = NULL;

  if (g_getenv ("GCHATD") == NULL || !g_file_test ("/usr/bin/openssl", G_FILE_TEST_IS_EXECUTABLE))
    {
      g_test_skip ("GCHATD is not set or openssl is missing");
      return;
    }
  dir = gchat_test_make_dir ("gchatd-big-key");
  key_path = g_build_filename (dir, "server.pem", NULL);
  openssl = g_subprocess_new (G_SUBPROCESS_FLAGS_STDERR_SILENCE, &error, "/usr/bin/openssl",
                              "genrsa", "-traditional", "-out", key_path, "4608", NULL);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_wait_check (openssl, NULL, &error));
  g_assert_no_errno (g_chmod (key_path, 0600));
  config = g_strdup_printf ("server_address: 127.0.0.1\nserver_port: %u\n"
                            "server_privateKey: server.pem\nserver_certificate: server-public.pem\n"
                            "data_base: users.json\n", test_find_free_port ());
  config_path = g_build_filename (dir, "gchatd.yaml", NULL);
  g_assert_true (g_file_set_contents (config_path, config, -1, NULL));

  daemon = test_spawn_gchatd (G_SUBPROCESS_FLAGS_STDERR_PIPE, &error, "--config", config_path,
                              NULL);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_communicate_utf8 (daemon, NULL, NULL, NULL, &err, &error));
  g_assert_no_error (error);
  g_assert_false (g_subprocess_get_successful (daemon));
  g_assert_nonnull (strstr (err, "4608 bits"));
  g_assert_nonnull (strstr (err, "2048 to 4096"));
  gchat_test_remove_tree (dir);
}

static void
test_no_config (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *home = NULL;
  g_autofree char *public_path = NULL;
  g_autofree char *err = NULL;
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GPtrArray) argv = NULL;
  g_autoptr(GSubprocess) daemon = NULL;
  g_autoptr(GchatRsaKey) pinned = NULL;
  const char *env[][2] = { { "XDG_CONFIG_HOME", "config" }, { "XDG_DATA_HOME", "data" },
                           { "XDG_RUNTIME_DIR", "run" } };
  TestClient *bob;
  gint64 start;

  if (g_getenv ("GCHATD") == NULL || g_getenv ("GCHATCTL") == NULL)
    {
      g_test_skip ("GCHATD or GCHATCTL is not set");
      return;
    }
  if (test_port_in_use (GCHAT_DEFAULT_PORT))
    {
      g_test_skip ("port 10000 is taken on this machine");
      return;
    }
  home = gchat_test_make_dir ("gchatd-home");
  public_path = g_build_filename (home, "data", "gchatd", "server-public.pem", NULL);
  launcher = test_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  for (guint i = 0; i < G_N_ELEMENTS (env); i++)
    {
      g_autofree char *path = g_build_filename (home, env[i][1], NULL);

      g_assert_no_errno (g_mkdir (path, 0700));
      g_subprocess_launcher_setenv (launcher, env[i][0], path, TRUE);
      g_setenv (env[i][0], path, TRUE); /* for gchatctl below */
    }
  argv = gchat_test_argv_new (g_getenv ("GCHATD"));
  g_ptr_array_add (argv, NULL);
  daemon = g_subprocess_launcher_spawnv (launcher, (const char * const *) argv->pdata, &error);
  g_assert_no_error (error);

  /* The first start makes an RSA-3072 key: wait for the port. */
  for (start = g_get_monotonic_time (); !test_port_in_use (GCHAT_DEFAULT_PORT);)
    {
      g_assert_cmpint (g_get_monotonic_time () - start, <, 6 * TEST_WAIT_TIMEOUT_US);
      g_usleep (50000);
    }
  g_assert_cmpint (test_run_gchatctl (TEST_PASSWORD, &err, "adduser", "bob", NULL), ==, 0);

  /* This client pins the key gchatd made, as a user given server-public.pem would. */
  pinned = gchat_rsa_key_load_public (public_path, &error);
  g_assert_no_error (error);
  test_server_key_set (pinned);
  bob = test_client_log_in (GCHAT_DEFAULT_PORT, "auth", "bob", TEST_PASSWORD);
  test_client_free (bob);

  g_subprocess_send_signal (daemon, SIGTERM);
  g_assert_true (g_subprocess_wait (daemon, NULL, &error));
  g_assert_cmpint (g_subprocess_get_exit_status (daemon), ==, 0);
  for (guint i = 0; i < G_N_ELEMENTS (env); i++)
    g_unsetenv (env[i][0]);
  test_remove_dir (home);
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GError) error = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);
  g_assert_true (gchat_crypto_init (&error));

#define ADD(path, func, data) \
  g_test_add (path, TestFixture, data, test_fixture_setup, func, test_fixture_teardown)
  ADD ("/server/sign-up", test_sign_up, NULL);
  ADD ("/server/bad-requests", test_bad_requests, NULL);
  ADD ("/server/throttle", test_throttle, NULL);
  ADD ("/server/replay", test_replay, NULL);
  ADD ("/server/presence", test_presence, NULL);
  ADD ("/server/presence-batched", test_presence_batched, "# presence-ms 2000");
  ADD ("/server/presence-net", test_presence_net, "# presence-ms 2000");
  ADD ("/server/talk", test_talk, NULL);
  ADD ("/server/endpoints", test_endpoints, NULL);
  ADD ("/server/talk-both-ways", test_talk_both_ways, NULL);
  ADD ("/server/talk-new-session", test_talk_new_session, NULL);
  ADD ("/server/replace", test_replace, NULL);
  ADD ("/server/garbage", test_garbage, NULL);
  ADD ("/server/tampered", test_tampered, NULL);
  ADD ("/server/login-deadline", test_login_deadline, NULL);
  ADD ("/server/max-connections", test_max_connections, "max_connections: 2");
  ADD ("/server/shutdown", test_shutdown, NULL);
  ADD ("/server/idle", test_idle, "# idle-ms 300");
  ADD ("/server/sign-up-closed", test_sign_up_closed, "allow_sign_up: false");
#undef ADD
  g_test_add_func ("/gchatd/daemon", test_daemon);
  /* Last: it swaps the pinned server key. */
  g_test_add_func ("/gchatd/no-config", test_no_config);
  g_test_add_func ("/gchatd/oversized-key", test_oversized_key);

  status = g_test_run ();
  test_server_key_set (NULL);
  gchat_crypto_shutdown ();
  return status;
}
