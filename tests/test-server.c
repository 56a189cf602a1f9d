/* SPDX-License-Identifier: GPL-3.0-or-later */
/* gchatd's server against real loopback sockets, with clients built on the protocol library. */

#include "config.h"

#include <signal.h>
#include <string.h>

#include <glib/gstdio.h>
#include <gio/gio.h>

#include "gchat-channel.h"
#include "gchat-datagram.h"
#include "gchat-frame.h"
#include "gchat-handshake.h"
#include "gchat-message.h"
#include "gchatd-server.h"

/* No wait in these tests takes longer than this, so none can hang. */
#define WAIT_TIMEOUT_US (10 * G_USEC_PER_SEC)
#define PASSWORD "correct horse battery"

static GchatRsaKey *server_key;

typedef struct {
  char         *dir;
  GchatdServer *server;
  guint16       port;
} Fixture;

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatConfig) config = NULL;
  g_autofree char *private_path = NULL;
  g_autofree char *public_path = NULL;
  g_autofree char *text = NULL;

  f->dir = g_dir_make_tmp ("gchatd-test-XXXXXX", &error);
  g_assert_no_error (error);
  private_path = g_build_filename (f->dir, "server-private.pem", NULL);
  public_path = g_build_filename (f->dir, "server-public.pem", NULL);
  g_assert_true (gchat_rsa_key_save_private (server_key, private_path, &error));
  g_assert_true (gchat_rsa_key_save_public (server_key, public_path, &error));
  /* A tiny Argon2id cost: the tests are about the protocol, not the hash. */
  text = g_strdup_printf ("server_address: 127.0.0.1\n"
                          "server_certificate: server-public.pem\n"
                          "server_privateKey: server-private.pem\n"
                          "data_base: users.json\n"
                          "argon2_memory_kib: 64\n"
                          "argon2_iterations: 1\n"
                          "%s\n", data ? (const char *) data : "");
  config = gchat_config_new_from_data (text, strlen (text), "test", f->dir, &error);
  g_assert_no_error (error);
  f->server = gchatd_server_new (config, &error);
  g_assert_no_error (error);
  gchatd_server_set_port (f->server, 0);
  /* A YAML comment sets what the config cannot: an idle deadline shorter than its 10 s floor. */
  if (data != NULL && strstr (data, "# idle-ms ") != NULL)
    gchatd_server_set_idle_timeout (f->server,
                                    (guint) g_ascii_strtoull (strstr (data, "# idle-ms ") + 10,
                                                              NULL, 10));
  g_assert_true (gchatd_server_start (f->server, &error));
  g_assert_no_error (error);
  f->port = gchatd_server_get_port (f->server);
  g_assert_cmpuint (f->port, >, 0);
}

static void
remove_dir (const char *path)
{
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *child = g_build_filename (path, name, NULL);

      if (g_file_test (child, G_FILE_TEST_IS_DIR) && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
        remove_dir (child);
      else
        g_assert_no_errno (g_remove (child));
    }
  g_assert_no_errno (g_rmdir (path));
}

static void
iterate_until (gboolean (*done) (gpointer),
               gpointer  data)
{
  gint64 deadline = g_get_monotonic_time () + WAIT_TIMEOUT_US;

  while (!done (data))
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("Timed out waiting");
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (1000);
    }
}

static gboolean
no_connections (gpointer data)
{
  return gchatd_server_get_n_connections (data) == 0;
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  gchatd_server_stop (f->server);
  iterate_until (no_connections, f->server);
  g_assert_true (gchatd_user_store_flush_sync (gchatd_server_get_store (f->server), 5000, &error));
  g_clear_object (&f->server);
  /* Let the last callbacks of the worker threads run. */
  while (g_main_context_iteration (NULL, FALSE))
    ;
  remove_dir (f->dir);
  g_free (f->dir);
}

/* A client that blocks on the socket while still running the main loop the server lives in. */
typedef struct {
  GSocketConnection *connection;
  GSocket           *socket;
  GchatHandshake    *handshake;
  GchatChannel      *channel;
  GchatFrameDecoder *decoder;
  GBytes            *client_key_frame; /* as sent, for the replay test */
  GBytes            *last_frame;       /* the last sealed frame sent, likewise */
  gboolean           closed;
} Client;

static void
client_free (Client *c)
{
  g_clear_object (&c->connection);
  g_clear_pointer (&c->handshake, gchat_handshake_free);
  g_clear_pointer (&c->channel, gchat_channel_free);
  g_clear_pointer (&c->decoder, gchat_frame_decoder_free);
  g_clear_pointer (&c->client_key_frame, g_bytes_unref);
  g_clear_pointer (&c->last_frame, g_bytes_unref);
  g_free (c);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Client, client_free)

static Client *
client_connect (Fixture *f)
{
  g_autoptr(GSocketClient) socket_client = g_socket_client_new ();
  g_autoptr(GError) error = NULL;
  Client *c = g_new0 (Client, 1);

  /* The kernel completes the connection from the listen backlog: no loop is needed here. */
  c->connection = g_socket_client_connect_to_host (socket_client, "127.0.0.1", f->port, NULL,
                                                   &error);
  g_assert_no_error (error);
  c->socket = g_socket_connection_get_socket (c->connection);
  g_socket_set_blocking (c->socket, FALSE);
  c->decoder = gchat_frame_decoder_new (GCHAT_FRAME_MAX_PAYLOAD);
  c->handshake = gchat_handshake_new_client (server_key);
  return c;
}

static void
client_send_raw (Client       *c,
                 const guint8 *data,
                 gsize         len)
{
  gint64 deadline = g_get_monotonic_time () + WAIT_TIMEOUT_US;

  while (len > 0)
    {
      g_autoptr(GError) error = NULL;
      gssize n = g_socket_send (c->socket, (const char *) data, len, NULL, &error);

      if (n < 0 && !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        return; /* the server closed: the test reads that next */
      if (n > 0)
        {
          data += n;
          len -= n;
        }
      else if (g_get_monotonic_time () > deadline)
        g_error ("Timed out sending");
      else
        g_main_context_iteration (NULL, FALSE);
    }
}

/* The next frame payload, or NULL once the server has closed the connection. */
static GBytes *
client_recv_frame (Client *c)
{
  gint64 deadline = g_get_monotonic_time () + WAIT_TIMEOUT_US;
  GBytes *payload;

  while ((payload = gchat_frame_decoder_pop (c->decoder)) == NULL && !c->closed)
    {
      g_autoptr(GError) error = NULL;
      char buffer[4096];
      gssize n;

      if (g_get_monotonic_time () > deadline)
        g_error ("Timed out waiting for a frame");
      g_main_context_iteration (NULL, FALSE);
      n = g_socket_receive (c->socket, buffer, sizeof buffer, NULL, &error);
      if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        g_socket_condition_timed_wait (c->socket, G_IO_IN, 1000, NULL, NULL);
      else if (n <= 0)
        c->closed = TRUE;
      else
        g_assert_true (gchat_frame_decoder_push (c->decoder, (guint8 *) buffer, n, NULL));
    }
  return payload;
}

static GBytes *
frame_of (GBytes *payload)
{
  return gchat_frame_encode (g_bytes_get_data (payload, NULL), g_bytes_get_size (payload), NULL);
}

static void
client_handshake (Client *c)
{
  g_autoptr(GBytes) hello = client_recv_frame (c);
  g_autoptr(GBytes) client_key = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_nonnull (hello);
  g_assert_true (gchat_handshake_step (c->handshake, hello, &client_key, &error));
  g_assert_no_error (error);
  c->client_key_frame = frame_of (client_key);
  client_send_raw (c, g_bytes_get_data (c->client_key_frame, NULL),
                   g_bytes_get_size (c->client_key_frame));
  c->channel = gchat_handshake_steal_channel (c->handshake);
}

static void
client_send (Client       *c,
             GchatMessage *message)
{
  g_autoptr(GBytes) json = gchat_message_encode (message, NULL);

  g_assert_nonnull (json);
  g_clear_pointer (&c->last_frame, g_bytes_unref);
  c->last_frame = gchat_channel_seal (c->channel, g_bytes_get_data (json, NULL),
                                      g_bytes_get_size (json), NULL);
  client_send_raw (c, g_bytes_get_data (c->last_frame, NULL), g_bytes_get_size (c->last_frame));
}

/* The next message, or NULL once the server has closed the connection. */
static GchatMessage *
client_recv (Client *c)
{
  g_autoptr(GBytes) payload = client_recv_frame (c);
  g_autoptr(GBytes) plain = NULL;
  g_autoptr(GError) error = NULL;
  GchatMessage *message;

  if (payload == NULL)
    return NULL;
  plain = gchat_channel_open (c->channel, payload, &error);
  g_assert_no_error (error);
  message = gchat_message_decode (g_bytes_get_data (plain, NULL), g_bytes_get_size (plain),
                                  &error);
  g_assert_no_error (error);
  return message;
}

/* The next message of @type, passing over presence and lists that other tests' steps cause. */
static GchatMessage *
client_expect (Client           *c,
               GchatMessageType  type)
{
  for (;;)
    {
      g_autoptr(GchatMessage) message = client_recv (c);
      GchatMessageType got;

      if (message == NULL)
        g_error ("The server closed while a “%s” was expected", gchat_message_type_to_string (type));
      got = gchat_message_get_message_type (message);
      if (got == type)
        return g_steal_pointer (&message);
      if (got != GCHAT_MESSAGE_PRESENCE && got != GCHAT_MESSAGE_USERS)
        g_error ("Got “%s” while a “%s” was expected", gchat_message_type_to_string (got),
                 gchat_message_type_to_string (type));
    }
}

/* Waits for the server to close, passing over what it still sends, unless @silently. */
static void
client_wait_closed (Client   *c,
                    gboolean  silently)
{
  while (!c->closed)
    {
      g_autoptr(GBytes) payload = client_recv_frame (c);

      if (silently)
        g_assert_null (payload);
    }
}

static void
client_expect_closed (Client *c)
{
  client_wait_closed (c, FALSE);
}

static GchatMessage *
client_request (Client     *c,
                const char *type,
                const char *user,
                const char *password)
{
  GchatMessageType message_type;
  g_autoptr(GchatMessage) request = NULL;
  GchatMessage *result;

  g_assert_true (gchat_message_type_from_string (type, &message_type));
  request = gchat_message_new (message_type);
  gchat_message_set_string (request, "user", user);
  if (password != NULL)
    gchat_message_set_string (request, "password", password);
  gchat_message_set_int (request, "id", 42);
  client_send (c, request);
  result = client_expect (c, message_type == GCHAT_MESSAGE_TALK ? GCHAT_MESSAGE_PAIR_KEY
                                                                 : GCHAT_MESSAGE_RESULT);
  return result;
}

static void
assert_result (GchatMessage *result,
               const char   *code)
{
  g_assert_cmpint (gchat_message_get_message_type (result), ==, GCHAT_MESSAGE_RESULT);
  g_assert_cmpstr (gchat_message_get_string (result, "code"), ==, code);
  g_assert_true (gchat_message_get_bool (result, "ok") == (code == NULL));
  g_assert_cmpint (gchat_message_get_int (result, "id"), ==, 42);
}

/* A connected client that did `type` (sign or auth) as @user with @password, successfully. */
static Client *
client_log_in (Fixture    *f,
               const char *type,
               const char *user,
               const char *password)
{
  Client *c = client_connect (f);
  g_autoptr(GchatMessage) result = NULL;
  g_autoptr(GchatMessage) users = NULL;

  client_handshake (c);
  result = client_request (c, type, user, password);
  assert_result (result, NULL);
  users = client_expect (c, GCHAT_MESSAGE_USERS);
  return c;
}

static void
test_sign_up (Fixture       *f,
              gconstpointer  data)
{
  g_autoptr(Client) alice = client_log_in (f, "sign", "alice", PASSWORD);
  g_autoptr(Client) thief = client_connect (f);
  g_autoptr(Client) again = NULL;
  g_autoptr(GchatMessage) result = NULL;
  g_autofree char *path = g_build_filename (f->dir, "users.json", NULL);
  GStatBuf st;

  /* Answered only once durable: the file is there, private to its owner. */
  g_assert_no_errno (g_stat (path, &st));
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);

  /* The original's account takeover: a second sign-up of the name, in any case. */
  client_handshake (thief);
  result = client_request (thief, "sign", "ALICE", "another password");
  assert_result (result, "name-taken");
  g_clear_pointer (&result, gchat_message_unref);
  result = client_request (thief, "auth", "alice", "another password");
  assert_result (result, "bad-credentials");

  again = client_log_in (f, "auth", "Alice", PASSWORD);
  g_assert_cmpuint (gchatd_user_store_get_n_users (gchatd_server_get_store (f->server)), ==, 1);
}

static void
test_bad_requests (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(Client) alice = client_log_in (f, "sign", "alice", PASSWORD);
  g_autoptr(Client) c = client_connect (f);
  g_autoptr(GchatMessage) result = NULL;
  g_autoptr(GchatMessage) list = gchat_message_new (GCHAT_MESSAGE_LIST);
  g_autoptr(GchatMessage) error = NULL;

  client_handshake (c);
  result = client_request (c, "auth", "alice", "wrong password");
  assert_result (result, "bad-credentials");
  g_clear_pointer (&result, gchat_message_unref);
  /* Unknown user: the very same answer. */
  result = client_request (c, "auth", "nobody", PASSWORD);
  assert_result (result, "bad-credentials");
  g_clear_pointer (&result, gchat_message_unref);
  result = client_request (c, "sign", "no spaces", PASSWORD);
  assert_result (result, "bad-name");
  g_clear_pointer (&result, gchat_message_unref);
  result = client_request (c, "sign", "bob", "short");
  assert_result (result, "bad-password");

  client_send (c, list);
  error = client_expect (c, GCHAT_MESSAGE_ERROR_MSG);
  g_assert_cmpstr (gchat_message_get_string (error, "code"), ==, "not-logged-in");
  g_assert_cmpuint (gchatd_server_get_n_sessions (f->server), ==, 1);
}

static void
test_throttle (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(Client) alice = client_log_in (f, "sign", "alice", PASSWORD);
  g_autoptr(Client) c = client_connect (f);
  g_autoptr(GchatMessage) result = NULL;

  client_handshake (c);
  /* The free failures pass, then a lock-out starts. */
  for (guint i = 0; i < GCHATD_THROTTLE_NAME_FREE_FAILURES; i++)
    {
      g_clear_pointer (&result, gchat_message_unref);
      result = client_request (c, "auth", "alice", "wrong password");
      assert_result (result, "bad-credentials");
    }
  for (guint i = 0; i < 10; i++)
    {
      g_clear_pointer (&result, gchat_message_unref);
      result = client_request (c, "auth", "alice", "wrong password");
      if (g_strcmp0 (gchat_message_get_string (result, "code"), "throttled") == 0)
        break;
      assert_result (result, "bad-credentials");
    }
  assert_result (result, "throttled");
  g_clear_pointer (&result, gchat_message_unref);
  /* Locked out, even with the right password. */
  result = client_request (c, "auth", "alice", PASSWORD);
  assert_result (result, "throttled");
  g_assert_cmpint (gchat_message_get_int (result, "retry_after"), >=, 1);
}

/* A recorded client key and auth, replayed on a new connection, must not log in. */
static void
test_replay (Fixture       *f,
             gconstpointer  data)
{
  g_autoptr(Client) signer = client_log_in (f, "sign", "alice", PASSWORD);
  g_autoptr(Client) victim = client_connect (f);
  g_autoptr(Client) attacker = client_connect (f);
  g_autoptr(GchatMessage) result = NULL;
  g_autoptr(GBytes) hello = NULL;

  g_clear_pointer (&signer, client_free);
  client_handshake (victim);
  result = client_request (victim, "auth", "alice", PASSWORD);
  assert_result (result, NULL);

  hello = client_recv_frame (attacker);
  g_assert_nonnull (hello);
  client_send_raw (attacker, g_bytes_get_data (victim->client_key_frame, NULL),
                   g_bytes_get_size (victim->client_key_frame));
  client_send_raw (attacker, g_bytes_get_data (victim->last_frame, NULL),
                   g_bytes_get_size (victim->last_frame));
  client_wait_closed (attacker, TRUE);
  g_assert_cmpuint (gchatd_server_get_n_sessions (f->server), ==, 1);
}

static void
assert_strv_has (GchatMessage *message,
                 const char   *field,
                 const char   *name)
{
  g_auto(GStrv) names = gchat_message_dup_strv (message, field);

  g_assert_nonnull (names);
  g_assert_true (g_strv_contains ((const char * const *) names, name));
}

static gboolean
strv_has (GchatMessage *message,
          const char   *field,
          const char   *name)
{
  g_auto(GStrv) names = gchat_message_dup_strv (message, field);

  return names != NULL && g_strv_contains ((const char * const *) names, name);
}

/* Batches may also hold earlier changes, such as the client's own log-in. */
static void
client_expect_presence (Client     *c,
                        const char *field,
                        const char *name)
{
  for (;;)
    {
      g_autoptr(GchatMessage) presence = client_expect (c, GCHAT_MESSAGE_PRESENCE);

      if (strv_has (presence, field, name))
        return;
    }
}

static void
test_presence (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(Client) alice = client_log_in (f, "sign", "alice", PASSWORD);
  g_autoptr(Client) bob = client_log_in (f, "sign", "Bob", PASSWORD);
  g_autoptr(GchatMessage) list = gchat_message_new (GCHAT_MESSAGE_LIST);
  g_autoptr(GchatMessage) users = NULL;
  g_autoptr(GchatMessage) logout = gchat_message_new (GCHAT_MESSAGE_LOGOUT);
  g_auto(GStrv) names = NULL;

  client_expect_presence (alice, "joined", "Bob");

  gchat_message_set_int (list, "id", 7);
  client_send (alice, list);
  users = client_expect (alice, GCHAT_MESSAGE_USERS);
  g_assert_cmpint (gchat_message_get_int (users, "id"), ==, 7);
  names = gchat_message_dup_strv (users, "users");
  g_assert_cmpuint (g_strv_length (names), ==, 2);
  assert_strv_has (users, "users", "alice");
  assert_strv_has (users, "users", "Bob");

  client_send (bob, logout);
  client_expect_closed (bob);
  client_expect_presence (alice, "left", "Bob");
  g_assert_cmpuint (gchatd_server_get_n_sessions (f->server), ==, 1);
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
test_talk (Fixture       *f,
           gconstpointer  data)
{
  g_autoptr(Client) alice = client_log_in (f, "sign", "alice", PASSWORD);
  g_autoptr(Client) bob = client_log_in (f, "sign", "bob", PASSWORD);
  g_autoptr(Client) carol = client_log_in (f, "sign", "carol", PASSWORD);
  g_autoptr(GchatMessage) to_alice = client_request (alice, "talk", "BOB", NULL);
  g_autoptr(GchatMessage) to_bob = client_expect (bob, GCHAT_MESSAGE_PAIR_KEY);
  g_autoptr(GchatMessage) logout = gchat_message_new (GCHAT_MESSAGE_LOGOUT);
  g_autoptr(GchatMessage) talk = gchat_message_new (GCHAT_MESSAGE_TALK);
  g_autoptr(GchatMessage) result = NULL;

  g_assert_cmpstr (gchat_message_get_string (to_alice, "user"), ==, "bob");
  g_assert_cmpstr (gchat_message_get_string (to_bob, "user"), ==, "alice");
  g_assert_cmpint (gchat_message_get_int (to_alice, "id"), ==, 42);
  g_assert_false (gchat_message_has_field (to_bob, "id"));
  assert_same_key (to_alice, to_bob);

  client_send (carol, logout);
  client_expect_closed (carol);
  gchat_message_set_int (talk, "id", 42);
  gchat_message_set_string (talk, "user", "carol");
  client_send (alice, talk);
  result = client_expect (alice, GCHAT_MESSAGE_RESULT);
  assert_result (result, "offline");
  g_clear_pointer (&result, gchat_message_unref);
  gchat_message_set_string (talk, "user", "dave");
  client_send (alice, talk);
  result = client_expect (alice, GCHAT_MESSAGE_RESULT);
  assert_result (result, "unknown-user");
  g_clear_pointer (&result, gchat_message_unref);
  gchat_message_set_string (talk, "user", "Alice");
  client_send (alice, talk);
  result = client_expect (alice, GCHAT_MESSAGE_RESULT);
  assert_result (result, "bad-name");
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
test_endpoints (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(Client) alice = client_log_in (f, "sign", "alice", PASSWORD);
  g_autoptr(Client) bob = client_connect (f);
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

  client_handshake (bob);
  result = client_request (bob, "sign", "bob", PASSWORD);
  assert_result (result, NULL);
  endpoint_id = gchat_message_get_int (result, "endpoint_id");
  g_assert_cmpint (endpoint_id, >, 0);
  users = client_expect (bob, GCHAT_MESSAGE_USERS);

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
  iterate_until (peer_socket_answered, &peer);

  to_alice = client_request (alice, "talk", "bob", NULL);
  endpoints = gchat_message_dup_strv (to_alice, "endpoints");
  g_assert_nonnull (endpoints);
  g_assert_cmpuint (g_strv_length (endpoints), ==, 2);
  g_assert_cmpstr (endpoints[0], ==, observed);
  g_assert_cmpstr (endpoints[1], ==, "203.0.113.9:4444");
  g_clear_object (&peer.socket);
}

/* The original could leave both with different keys forever. */
static void
test_talk_both_ways (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(Client) alice = client_log_in (f, "sign", "alice", PASSWORD);
  g_autoptr(Client) bob = client_log_in (f, "sign", "bob", PASSWORD);
  g_autoptr(GchatMessage) to_bob = gchat_message_new (GCHAT_MESSAGE_TALK);
  g_autoptr(GchatMessage) to_alice = gchat_message_new (GCHAT_MESSAGE_TALK);
  GchatMessage *keys[4];

  gchat_message_set_string (to_bob, "user", "bob");
  gchat_message_set_string (to_alice, "user", "alice");
  client_send (alice, to_bob);
  client_send (bob, to_alice);
  keys[0] = client_expect (alice, GCHAT_MESSAGE_PAIR_KEY);
  keys[1] = client_expect (alice, GCHAT_MESSAGE_PAIR_KEY);
  keys[2] = client_expect (bob, GCHAT_MESSAGE_PAIR_KEY);
  keys[3] = client_expect (bob, GCHAT_MESSAGE_PAIR_KEY);
  for (guint i = 1; i < G_N_ELEMENTS (keys); i++)
    assert_same_key (keys[0], keys[i]);
  for (guint i = 0; i < G_N_ELEMENTS (keys); i++)
    gchat_message_unref (keys[i]);
}

/* A client that logs in again starts its datagram counters over: it must get a new key. */
static void
test_talk_new_session (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(Client) alice = client_log_in (f, "sign", "alice", PASSWORD);
  g_autoptr(Client) bob = client_log_in (f, "sign", "bob", PASSWORD);
  g_autoptr(Client) bob_again = NULL;
  g_autoptr(GchatMessage) first = client_request (alice, "talk", "bob", NULL);
  g_autoptr(GchatMessage) same = client_request (alice, "talk", "bob", NULL);
  g_autoptr(GchatMessage) fresh = NULL;

  g_assert_cmpint (gchat_message_get_int (first, "key_id"), ==,
                   gchat_message_get_int (same, "key_id"));
  bob_again = client_log_in (f, "auth", "bob", PASSWORD);
  fresh = client_request (alice, "talk", "bob", NULL);
  g_assert_cmpint (gchat_message_get_int (first, "key_id"), !=,
                   gchat_message_get_int (fresh, "key_id"));
  g_assert_false (g_bytes_equal (gchat_message_get_bytes (first, "key"),
                                 gchat_message_get_bytes (fresh, "key")));
}

static void
test_replace (Fixture       *f,
              gconstpointer  data)
{
  g_autoptr(Client) first = client_log_in (f, "sign", "alice", PASSWORD);
  g_autoptr(Client) second = client_log_in (f, "auth", "ALICE", PASSWORD);
  g_autoptr(GchatMessage) bye = client_expect (first, GCHAT_MESSAGE_BYE);
  g_autoptr(GchatMessage) ping = gchat_message_new (GCHAT_MESSAGE_PING);
  g_autoptr(GchatMessage) pong = NULL;

  g_assert_cmpstr (gchat_message_get_string (bye, "code"), ==, "replaced");
  client_expect_closed (first);
  gchat_message_set_int (ping, "id", 3);
  client_send (second, ping);
  pong = client_expect (second, GCHAT_MESSAGE_PONG);
  g_assert_cmpint (gchat_message_get_int (pong, "id"), ==, 3);
  g_assert_cmpuint (gchatd_server_get_n_sessions (f->server), ==, 1);
}

/* A client that vanished without a word (killed, unplugged) leaves everyone's list once the
 * idle deadline passes; one that pings stays. */
static void
test_idle (Fixture       *f,
           gconstpointer  data)
{
  g_autoptr(Client) alice = client_log_in (f, "sign", "alice", PASSWORD);
  g_autoptr(Client) bob = client_log_in (f, "sign", "bob", PASSWORD);
  g_autoptr(GchatMessage) bye = NULL;
  g_autoptr(GchatMessage) ping = gchat_message_new (GCHAT_MESSAGE_PING);
  gint64 deadline = g_get_monotonic_time () + 3 * G_USEC_PER_SEC;
  gboolean bob_gone = FALSE;

  client_expect_presence (alice, "joined", "bob");
  /* Alice keeps talking, Bob says nothing. */
  while (!bob_gone && g_get_monotonic_time () < deadline)
    {
      g_autoptr(GchatMessage) message = NULL;

      client_send (alice, ping);
      message = client_recv (alice);
      g_assert_nonnull (message);
      if (gchat_message_get_message_type (message) == GCHAT_MESSAGE_PRESENCE)
        bob_gone = strv_has (message, "left", "bob");
    }
  g_assert_true (bob_gone);
  bye = client_expect (bob, GCHAT_MESSAGE_BYE);
  g_assert_cmpstr (gchat_message_get_string (bye, "code"), ==, "idle");
  client_expect_closed (bob);
  g_assert_cmpuint (gchatd_server_get_n_sessions (f->server), ==, 1);
}

/* An admin who closed sign-up adds accounts with gchatctl; `sign` is refused. */
static void
test_sign_up_closed (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(Client) c = client_connect (f);
  g_autoptr(GchatMessage) result = NULL;

  client_handshake (c);
  result = client_request (c, "sign", "mallory", PASSWORD);
  assert_result (result, "sign-up-closed");
}

static void
send_garbage (Fixture      *f,
              const guint8 *data,
              gsize         len,
              gboolean      after_hello)
{
  g_autoptr(Client) c = client_connect (f);

  if (after_hello)
    {
      g_autoptr(GBytes) hello = client_recv_frame (c);

      g_assert_nonnull (hello);
    }
  client_send_raw (c, data, len);
  while (!c->closed)
    g_bytes_unref (client_recv_frame (c));
}

static void
test_garbage (Fixture       *f,
              gconstpointer  data)
{
  static const guint8 oversize[] = { 0x00, 0x00, 0x04, 0x01, 'G', 'C' };
  static const guint8 huge[] = { 0xff, 0xff, 0xff, 0xff };
  static const guint8 empty[] = { 0, 0, 0, 0 };
  guint8 junk[300];
  g_autoptr(Client) alice = NULL;

  send_garbage (f, oversize, sizeof oversize, TRUE);
  send_garbage (f, huge, sizeof huge, FALSE);
  send_garbage (f, empty, sizeof empty, TRUE);
  /* A well-framed client key of the wrong size and contents. */
  gchat_frame_write_header (junk, sizeof junk - GCHAT_FRAME_HEADER_SIZE);
  for (gsize i = GCHAT_FRAME_HEADER_SIZE; i < sizeof junk; i++)
    junk[i] = (guint8) g_random_int ();
  send_garbage (f, junk, sizeof junk, TRUE);

  /* Nothing of that disturbed the server. */
  alice = client_log_in (f, "sign", "alice", PASSWORD);
  g_assert_cmpuint (gchatd_server_get_n_sessions (f->server), ==, 1);
}

static void
test_tampered (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(Client) c = client_connect (f);
  g_autoptr(Client) d = client_connect (f);
  g_autoptr(GchatMessage) ping = gchat_message_new (GCHAT_MESSAGE_PING);
  g_autoptr(GchatMessage) error = NULL;
  g_autoptr(GBytes) frame = NULL;
  guint8 *bytes;
  gsize len;

  /* A sealed frame with one bit flipped. */
  client_handshake (c);
  frame = gchat_channel_seal (c->channel, (const guint8 *) "{\"type\":\"ping\"}", 15, NULL);
  bytes = g_bytes_unref_to_data (g_steal_pointer (&frame), &len);
  bytes[len - 1] ^= 1;
  client_send_raw (c, bytes, len);
  g_free (bytes);
  client_expect_closed (c);

  /* A sealed frame that is not a message. */
  client_handshake (d);
  frame = gchat_channel_seal (d->channel, (const guint8 *) "{\"type\":\"nope\"}", 15, NULL);
  client_send_raw (d, g_bytes_get_data (frame, NULL), g_bytes_get_size (frame));
  error = client_expect (d, GCHAT_MESSAGE_ERROR_MSG);
  g_assert_cmpstr (gchat_message_get_string (error, "code"), ==, "bad-message");
  client_expect_closed (d);
}

static void
test_login_deadline (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(Client) slow = NULL;

  gchatd_server_set_login_timeout (f->server, 100);
  slow = client_connect (f);
  /* The hello, then nothing until the server gives up. */
  g_bytes_unref (client_recv_frame (slow));
  client_expect_closed (slow);
}

static void
test_max_connections (Fixture       *f,
                      gconstpointer  data)
{
  g_autoptr(Client) one = client_connect (f);
  g_autoptr(Client) two = client_connect (f);
  g_autoptr(Client) three = NULL;
  g_autoptr(GBytes) hello = NULL;

  client_handshake (one);
  client_handshake (two);
  three = client_connect (f);
  hello = client_recv_frame (three);
  g_assert_null (hello);
  g_assert_true (three->closed);
  g_assert_cmpuint (gchatd_server_get_n_connections (f->server), ==, 2);
}

static void
test_shutdown (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(Client) alice = client_log_in (f, "sign", "alice", PASSWORD);
  g_autoptr(GchatMessage) bye = NULL;

  gchatd_server_stop (f->server);
  bye = client_expect (alice, GCHAT_MESSAGE_BYE);
  g_assert_cmpstr (gchat_message_get_string (bye, "code"), ==, "shutdown");
  client_expect_closed (alice);
}

/* The daemon itself */

static guint16
find_free_port (void)
{
  g_autoptr(GSocket) socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                                            G_SOCKET_PROTOCOL_TCP, NULL);
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
  g_autoptr(GSocketAddress) bound = NULL;

  g_assert_true (g_socket_bind (socket, any, TRUE, NULL));
  bound = g_socket_get_local_address (socket, NULL);
  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
}

static GSubprocess *
spawn_gchatd (GSubprocessFlags   flags,
              GError           **error,
              ...)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  const char *gchatd = g_getenv ("GCHATD");
  const char *arg;
  va_list args;

  g_ptr_array_add (argv, (gpointer) gchatd);
  va_start (args, error);
  while ((arg = va_arg (args, const char *)) != NULL)
    g_ptr_array_add (argv, (gpointer) arg);
  va_end (args);
  g_ptr_array_add (argv, NULL);
  return g_subprocess_newv ((const char * const *) argv->pdata, flags, error);
}

/* Runs gchatctl with @password (or nothing) on its standard input; returns its exit status. */
static int
run_gchatctl (const char  *password,
              char       **err,
              ...)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *input = password ? g_strconcat (password, "\n", NULL) : NULL;
  const char *arg;
  va_list args;

  g_ptr_array_add (argv, (gpointer) g_getenv ("GCHATCTL"));
  va_start (args, err);
  while ((arg = va_arg (args, const char *)) != NULL)
    g_ptr_array_add (argv, (gpointer) arg);
  va_end (args);
  g_ptr_array_add (argv, NULL);
  process = g_subprocess_newv ((const char * const *) argv->pdata,
                               G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_SILENCE |
                               G_SUBPROCESS_FLAGS_STDERR_PIPE, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_communicate_utf8 (process, input, NULL, NULL, err, &error));
  g_assert_no_error (error);
  return g_subprocess_get_exit_status (process);
}

/* gchatctl beside a running gchatd goes through its control socket: an account it adds can log
 * in at once, one it deletes is thrown out at once, and a second gchatd on the same files is
 * refused by the store lock. */
static void
check_admin_beside_daemon (Fixture    *f,
                           const char *config_path)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocess) second = NULL;
  g_autofree char *err = NULL;
  g_autofree char *second_err = NULL;
  Client *carol;
  GchatMessage *bye;

  if (g_getenv ("GCHATCTL") == NULL)
    return;
  g_assert_cmpint (run_gchatctl (PASSWORD, &err, "--config", config_path, "adduser", "carol",
                                 NULL), ==, 0);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run_gchatctl (PASSWORD, &err, "--config", config_path, "adduser", "Carol",
                                 NULL), ==, 1);
  g_assert_nonnull (strstr (err, "taken"));
  g_clear_pointer (&err, g_free);

  carol = client_log_in (f, "auth", "carol", PASSWORD);
  g_assert_cmpint (run_gchatctl (NULL, &err, "--config", config_path, "deluser", "carol", NULL),
                   ==, 0);
  bye = client_expect (carol, GCHAT_MESSAGE_BYE);
  g_assert_cmpstr (gchat_message_get_string (bye, "code"), ==, "account-deleted");
  gchat_message_unref (bye);
  client_expect_closed (carol);
  client_free (carol);

  second = spawn_gchatd (G_SUBPROCESS_FLAGS_STDERR_PIPE, &error, "--config", config_path, NULL);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_communicate_utf8 (second, NULL, NULL, NULL, &second_err, &error));
  g_assert_cmpint (g_subprocess_get_exit_status (second), ==, 1);
}

/* SIGTERM: every client is told, the store is flushed, and gchatd exits 0 within 2 s. */
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
  g_autofree char *fingerprint = gchat_rsa_key_get_fingerprint (server_key);
  g_autofree char *printed = NULL;
  g_autoptr(GSubprocess) daemon = NULL;
  g_autoptr(GSubprocess) print = NULL;
  g_autoptr(GchatdUserStore) store = NULL;
  g_autoptr(GchatdUserRecord) record = NULL;
  Fixture f = { .dir = dir, .port = find_free_port () };
  Client *alice = NULL;
  GchatMessage *bye;
  gint64 start;

  if (g_getenv ("GCHATD") == NULL)
    {
      g_test_skip ("GCHATD is not set");
      return;
    }
  config = g_strdup_printf ("server_address: 127.0.0.1\nserver_port: %u\ndata_base: users.json\n"
                            "argon2_memory_kib: 64\nargon2_iterations: 1\n", f.port);
  g_assert_true (g_file_set_contents (config_path, config, -1, &error));
  g_assert_true (gchat_rsa_key_save_private (server_key, key_path, &error));

  print = spawn_gchatd (G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error, "--config", config_path,
                        "--print-fingerprint", NULL);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_communicate_utf8 (print, NULL, NULL, &printed, NULL, &error));
  g_assert_true (g_subprocess_get_successful (print));
  g_assert_cmpstr (g_strstrip (printed), ==, fingerprint);
  /* The public half was written next to the private one. */
  g_assert_true (g_file_test (public_path, G_FILE_TEST_IS_REGULAR));

  daemon = spawn_gchatd (G_SUBPROCESS_FLAGS_NONE, &error, "--config", config_path, NULL);
  g_assert_no_error (error);
  for (start = g_get_monotonic_time (); alice == NULL;)
    {
      g_autoptr(GSocketClient) socket_client = g_socket_client_new ();
      g_autoptr(GSocketConnection) connection = NULL;

      g_assert_cmpint (g_get_monotonic_time () - start, <, WAIT_TIMEOUT_US);
      connection = g_socket_client_connect_to_host (socket_client, "127.0.0.1", f.port, NULL, NULL);
      if (connection == NULL)
        g_usleep (20000);
      else
        alice = client_log_in (&f, "sign", "alice", PASSWORD);
    }

  check_admin_beside_daemon (&f, config_path);

  start = g_get_monotonic_time ();
  g_subprocess_send_signal (daemon, SIGTERM);
  bye = client_expect (alice, GCHAT_MESSAGE_BYE);
  g_assert_cmpstr (gchat_message_get_string (bye, "code"), ==, "shutdown");
  gchat_message_unref (bye);
  client_expect_closed (alice);
  client_free (alice);
  g_assert_true (g_subprocess_wait (daemon, NULL, &error));
  g_assert_true (g_subprocess_get_if_exited (daemon));
  g_assert_cmpint (g_subprocess_get_exit_status (daemon), ==, 0);
  g_assert_cmpint (g_get_monotonic_time () - start, <, 2 * G_USEC_PER_SEC);

  store = gchatd_user_store_new (store_path, &error);
  g_assert_no_error (error);
  record = gchatd_user_store_lookup (store, "alice");
  g_assert_nonnull (record);
  g_clear_object (&store);
  g_assert_no_errno (g_remove (config_path));
  remove_dir (dir);
}

/* Whether something already listens on @port of 127.0.0.1. */
static gboolean
port_in_use (guint16 port)
{
  g_autoptr(GSocketClient) socket_client = g_socket_client_new ();
  g_autoptr(GSocketConnection) connection =
    g_socket_client_connect_to_host (socket_client, "127.0.0.1", port, NULL, NULL);

  return connection != NULL;
}

/* The "done when": gchatd starts with no configuration at all (built-in defaults, a
 * fresh key in $XDG_DATA_HOME/gchatd, port 10000), gchatctl adds an account, and it logs in. */
static void
test_no_config (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *home = g_dir_make_tmp ("gchatd-home-XXXXXX", &error);
  g_autofree char *data_dir = g_build_filename (home, "data", NULL);
  g_autofree char *public_path = g_build_filename (data_dir, "gchatd", "server-public.pem", NULL);
  g_autofree char *err = NULL;
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) daemon = NULL;
  g_autoptr(GchatRsaKey) pinned = NULL;
  const char *env[][2] = { { "XDG_CONFIG_HOME", "config" }, { "XDG_DATA_HOME", "data" },
                           { "XDG_RUNTIME_DIR", "run" } };
  Fixture f = { .dir = home, .port = GCHAT_DEFAULT_PORT };
  Client *bob;
  gint64 start;

  if (g_getenv ("GCHATD") == NULL || g_getenv ("GCHATCTL") == NULL)
    {
      g_test_skip ("GCHATD or GCHATCTL is not set");
      return;
    }
  if (port_in_use (GCHAT_DEFAULT_PORT))
    {
      g_test_skip ("port 10000 is taken on this machine");
      return;
    }
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  for (guint i = 0; i < G_N_ELEMENTS (env); i++)
    {
      g_autofree char *path = g_build_filename (home, env[i][1], NULL);

      g_assert_no_errno (g_mkdir (path, 0700));
      g_subprocess_launcher_setenv (launcher, env[i][0], path, TRUE);
      g_setenv (env[i][0], path, TRUE); /* for gchatctl below */
    }
  daemon = g_subprocess_launcher_spawn (launcher, &error, g_getenv ("GCHATD"), NULL);
  g_assert_no_error (error);

  /* The first start makes an RSA-3072 key: wait for the port. */
  for (start = g_get_monotonic_time (); !port_in_use (GCHAT_DEFAULT_PORT);)
    {
      g_assert_cmpint (g_get_monotonic_time () - start, <, 6 * WAIT_TIMEOUT_US);
      g_usleep (50000);
    }
  g_assert_cmpint (run_gchatctl (PASSWORD, &err, "adduser", "bob", NULL), ==, 0);

  /* This client pins the key gchatd made, as a user given server-public.pem would. */
  pinned = gchat_rsa_key_load_public (public_path, &error);
  g_assert_no_error (error);
  g_set_object (&server_key, pinned);
  bob = client_log_in (&f, "auth", "bob", PASSWORD);
  client_free (bob);

  g_subprocess_send_signal (daemon, SIGTERM);
  g_assert_true (g_subprocess_wait (daemon, NULL, &error));
  g_assert_cmpint (g_subprocess_get_exit_status (daemon), ==, 0);
  for (guint i = 0; i < G_N_ELEMENTS (env); i++)
    g_unsetenv (env[i][0]);
  remove_dir (home);
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GError) error = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);
  g_assert_true (gchat_crypto_init (&error));
  server_key = gchat_rsa_key_generate (2048, &error);
  g_assert_no_error (error);

#define ADD(path, func, data) \
  g_test_add (path, Fixture, data, fixture_setup, func, fixture_teardown)
  ADD ("/server/sign-up", test_sign_up, NULL);
  ADD ("/server/bad-requests", test_bad_requests, NULL);
  ADD ("/server/throttle", test_throttle, NULL);
  ADD ("/server/replay", test_replay, NULL);
  ADD ("/server/presence", test_presence, NULL);
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

  status = g_test_run ();
  g_clear_object (&server_key);
  gchat_crypto_shutdown ();
  return status;
}
