/* SPDX-License-Identifier: GPL-3.0-or-later */
/* GchatClient against the real gchatd: direct and relayed messages, loss, hostile datagrams,
 * long messages, key replacement, offline delivery and reconnection. */

#include "config.h"

#include <signal.h>
#include <string.h>

#include "gchat-client.h"
#include "gchat-conversation.h"
#include "gchat-crypto.h"
#include "gchat-known-servers.h"
#include "gchatd-test-client.h"

/* Long waits: 1,000 messages through 30 % loss take a while on a busy machine. */
#define WAIT_US (60 * G_USEC_PER_SEC)

typedef struct {
  char            *from;
  char            *text;
  GchatClientPath  path;
} Received;

typedef struct {
  GchatClient *client;
  char        *dir;
  GPtrArray   *received;   /* Received */
  GHashTable  *states;     /* id → GchatDeliveryState + 1 */
  GHashTable  *paths;      /* id → GchatClientPath + 1 */
  GPtrArray   *presence;   /* "+name" / "-name" */
  gboolean     done;
  GError      *error;
} Peer;

static void
received_free (Received *r)
{
  g_free (r->from);
  g_free (r->text);
  g_free (r);
}

static void
message_cb (GchatClient     *client,
            const char      *from,
            const char      *text,
            GchatClientPath  path,
            guint64          id,
            gint64           sent,
            Peer            *p)
{
  Received *r = g_new0 (Received, 1);

  r->from = g_strdup (from);
  r->text = g_strdup (text);
  r->path = path;
  g_ptr_array_add (p->received, r);
}

static void
delivery_cb (GchatClient        *client,
             guint64             id,
             const char         *to,
             GchatDeliveryState  state,
             GchatClientPath     path,
             const GError       *error,
             Peer               *p)
{
  guint64 *key = g_new (guint64, 1);
  guint64 *key2 = g_new (guint64, 1);

  *key = *key2 = id;
  g_hash_table_replace (p->states, key, GUINT_TO_POINTER (state + 1));
  g_hash_table_replace (p->paths, key2, GUINT_TO_POINTER (path + 1));
}

static void
presence_cb (GchatClient *client,
             const char  *user,
             gboolean     online,
             Peer        *p)
{
  g_ptr_array_add (p->presence, g_strdup_printf ("%c%s", online ? '+' : '-', user));
}

static Peer *
peer_new (TestDaemon *d)
{
  Peer *p = g_new0 (Peer, 1);
  g_autofree char *known = NULL;

  p->dir = g_dir_make_tmp ("gchat-client-XXXXXX", NULL);
  known = g_build_filename (p->dir, "known-servers", NULL);
  p->client = gchat_client_new ();
  g_object_set (p->client,
                "server-host", "127.0.0.1",
                "server-port", (guint) d->port,
                "known-servers-path", known,
                "accept-new-server-key", TRUE,
                NULL);
  p->received = g_ptr_array_new_with_free_func ((GDestroyNotify) received_free);
  p->states = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
  p->paths = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
  p->presence = g_ptr_array_new_with_free_func (g_free);
  g_signal_connect (p->client, "message-received", G_CALLBACK (message_cb), p);
  g_signal_connect (p->client, "delivery-changed", G_CALLBACK (delivery_cb), p);
  g_signal_connect (p->client, "presence", G_CALLBACK (presence_cb), p);
  return p;
}

static void
peer_free (Peer *p)
{
  g_signal_handlers_disconnect_by_data (p->client, p);
  g_object_unref (p->client);
  test_remove_dir (p->dir);
  g_free (p->dir);
  g_ptr_array_unref (p->received);
  g_hash_table_unref (p->states);
  g_hash_table_unref (p->paths);
  g_ptr_array_unref (p->presence);
  g_clear_error (&p->error);
  g_free (p);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Peer, peer_free)

static gboolean
tick_cb (gpointer user_data)
{
  return G_SOURCE_CONTINUE;
}

/* Runs the main loop until @check holds, failing after WAIT_US. The tick makes sure the loop
 * wakes up to look at the deadline even when nothing else happens. */
#define WAIT_FOR(check, what)                                                     \
  G_STMT_START {                                                                  \
    gint64 deadline_ = g_get_monotonic_time () + WAIT_US;                         \
    guint tick_ = g_timeout_add (100, tick_cb, NULL);                             \
    while (!(check))                                                              \
      {                                                                           \
        if (g_get_monotonic_time () > deadline_)                                  \
          g_error ("Timed out waiting for %s", what);                             \
        g_main_context_iteration (NULL, TRUE);                                    \
      }                                                                           \
    g_source_remove (tick_);                                                      \
  } G_STMT_END

static void
login_cb (GObject      *source,
          GAsyncResult *result,
          gpointer      user_data)
{
  Peer *p = user_data;
  GchatClient *client = GCHAT_CLIENT (source);

  if (g_task_get_source_tag (G_TASK (result)) == gchat_client_sign_async)
    gchat_client_sign_finish (client, result, &p->error);
  else
    gchat_client_auth_finish (client, result, &p->error);
  p->done = TRUE;
}

static void
peer_login (Peer       *p,
            gboolean    sign,
            const char *user)
{
  p->done = FALSE;
  g_clear_error (&p->error);
  if (sign)
    gchat_client_sign_async (p->client, user, TEST_PASSWORD, NULL, login_cb, p);
  else
    gchat_client_auth_async (p->client, user, TEST_PASSWORD, NULL, login_cb, p);
  WAIT_FOR (p->done, "the log-in");
  g_assert_no_error (p->error);
  g_assert_cmpint (gchat_client_get_state (p->client), ==, GCHAT_CLIENT_STATE_ONLINE);
}

static void
logout_cb (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  Peer *p = user_data;

  g_assert_true (gchat_client_logout_finish (GCHAT_CLIENT (source), result, NULL));
  p->done = TRUE;
}

static void
peer_logout (Peer *p)
{
  p->done = FALSE;
  gchat_client_logout_async (p->client, NULL, logout_cb, p);
  WAIT_FOR (p->done, "the log-out");
  g_assert_cmpint (gchat_client_get_state (p->client), ==, GCHAT_CLIENT_STATE_OFFLINE);
}

static GchatDeliveryState
state_of (Peer    *p,
          guint64  id)
{
  return GPOINTER_TO_UINT (g_hash_table_lookup (p->states, &id)) - 1;
}

static GchatClientPath
path_of (Peer    *p,
         guint64  id)
{
  return GPOINTER_TO_UINT (g_hash_table_lookup (p->paths, &id)) - 1;
}

static gboolean
has_state (Peer               *p,
           guint64             id,
           GchatDeliveryState  state)
{
  return g_hash_table_contains (p->states, &id) && state_of (p, id) == state;
}

static guint64
send_text (Peer       *p,
           const char *to,
           const char *text)
{
  g_autoptr(GError) error = NULL;
  guint64 id = gchat_client_send (p->client, to, text, &error);

  g_assert_no_error (error);
  g_assert_cmpuint (id, !=, 0);
  return id;
}

/* Two users logged in who see each other. */
static void
pair_up (TestDaemon *d,
         Peer      **alice,
         Peer      **bob)
{
  *alice = peer_new (d);
  *bob = peer_new (d);
  peer_login (*alice, TRUE, "alice");
  peer_login (*bob, TRUE, "bob");
  WAIT_FOR (gchat_client_is_online ((*alice)->client, "bob")
            && gchat_client_is_online ((*bob)->client, "alice"), "each other online");
}

static void
test_direct_both_ways (void)
{
  g_autoptr(TestDaemon) d = test_daemon_new (NULL);
  g_autoptr(Peer) alice = NULL;
  g_autoptr(Peer) bob = NULL;
  guint64 id;
  Received *r;

  if (d == NULL)
    return;
  pair_up (d, &alice, &bob);
  g_assert_cmpuint (g_list_model_get_n_items (gchat_client_get_online_users (alice->client)), ==, 1);

  id = send_text (alice, "bob", "hello bob");
  WAIT_FOR (has_state (alice, id, GCHAT_DELIVERY_DELIVERED), "delivered");
  g_assert_cmpint (path_of (alice, id), ==, GCHAT_CLIENT_PATH_DIRECT);
  WAIT_FOR (bob->received->len == 1, "bob's message");
  r = g_ptr_array_index (bob->received, 0);
  g_assert_cmpstr (r->from, ==, "alice");
  g_assert_cmpstr (r->text, ==, "hello bob");
  g_assert_cmpint (r->path, ==, GCHAT_CLIENT_PATH_DIRECT);

  id = send_text (bob, "alice", "hi alice, «ça va ?»");
  WAIT_FOR (has_state (bob, id, GCHAT_DELIVERY_DELIVERED), "delivered back");
  WAIT_FOR (alice->received->len == 1, "alice's message");
  r = g_ptr_array_index (alice->received, 0);
  g_assert_cmpstr (r->text, ==, "hi alice, «ça va ?»");
  g_assert_cmpint (r->path, ==, GCHAT_CLIENT_PATH_DIRECT);
  g_assert_cmpuint (gchat_client_get_n_dropped (bob->client), ==, 0);

  peer_logout (alice);
  WAIT_FOR (!gchat_client_is_online (bob->client, "alice"), "alice gone");
  peer_logout (bob);
}

/* The direct path dropped entirely (as a firewall would): gchatd relays, sealed. */
static void
test_relay_when_direct_blocked (void)
{
  g_autoptr(TestDaemon) d = test_daemon_new (NULL);
  g_autoptr(Peer) alice = NULL;
  g_autoptr(Peer) bob = NULL;
  guint64 id;
  Received *r;

  if (d == NULL)
    return;
  pair_up (d, &alice, &bob);
  g_object_set (alice->client, "direct-loss", 100, NULL);
  g_object_set (bob->client, "direct-loss", 100, NULL);

  id = send_text (alice, "bob", "through the relay");
  WAIT_FOR (has_state (alice, id, GCHAT_DELIVERY_DELIVERED), "delivered");
  g_assert_cmpint (path_of (alice, id), ==, GCHAT_CLIENT_PATH_RELAY);
  WAIT_FOR (bob->received->len == 1, "bob's message");
  r = g_ptr_array_index (bob->received, 0);
  g_assert_cmpstr (r->text, ==, "through the relay");
  g_assert_cmpint (r->path, ==, GCHAT_CLIENT_PATH_RELAY);

  id = send_text (bob, "alice", "and back");
  WAIT_FOR (has_state (bob, id, GCHAT_DELIVERY_DELIVERED), "delivered back");
  WAIT_FOR (alice->received->len == 1, "alice's message");
  r = g_ptr_array_index (alice->received, 0);
  g_assert_cmpstr (r->text, ==, "and back");
}

/* 30 % of all datagrams lost, both ways: every one of 1,000 messages arrives once, in order. */
static void
test_lossy_thousand (void)
{
  g_autoptr(TestDaemon) d = test_daemon_new (NULL);
  g_autoptr(Peer) alice = NULL;
  g_autoptr(Peer) bob = NULL;
  g_autoptr(GArray) ids = g_array_new (FALSE, FALSE, sizeof (guint64));
  const guint n = 1000;

  if (d == NULL)
    return;
  pair_up (d, &alice, &bob);
  g_object_set (alice->client, "datagram-loss", 30, NULL);
  g_object_set (bob->client, "datagram-loss", 30, NULL);

  for (guint i = 0; i < n; i++)
    {
      g_autofree char *text = g_strdup_printf ("message %u", i);
      guint64 id = send_text (alice, "bob", text);

      g_array_append_val (ids, id);
    }
  WAIT_FOR (bob->received->len >= n, "1000 messages");
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *text = g_strdup_printf ("message %u", i);
      Received *r = g_ptr_array_index (bob->received, i);

      g_assert_cmpstr (r->text, ==, text);
    }
  for (guint i = 0; i < n; i++)
    WAIT_FOR (has_state (alice, g_array_index (ids, guint64, i), GCHAT_DELIVERY_DELIVERED),
              "every message delivered");
  /* Nothing more comes: no duplicates after the retransmissions settle. */
  {
    gint64 until = g_get_monotonic_time () + G_USEC_PER_SEC;

    while (g_get_monotonic_time () < until)
      g_main_context_iteration (NULL, FALSE);
  }
  g_assert_cmpuint (bob->received->len, ==, n);
}

static char *
long_text (gsize len)
{
  GString *text = g_string_new (NULL);

  /* Characters of 1 to 4 bytes, so fragments cut through them. */
  while (text->len + 10 <= len)
    g_string_append (text, "a\u00e9\u20ac\U0001F600");
  while (text->len < len)
    g_string_append_c (text, 'z');
  return g_string_free (text, FALSE);
}

static void
test_long_message (void)
{
  g_autoptr(TestDaemon) d = test_daemon_new (NULL);
  g_autoptr(Peer) alice = NULL;
  g_autoptr(Peer) bob = NULL;
  g_autofree char *text = long_text (65536);
  g_autofree char *too_long = long_text (65537);
  g_autoptr(GError) error = NULL;
  guint64 id;
  Received *r;

  if (d == NULL)
    return;
  pair_up (d, &alice, &bob);
  g_assert_cmpuint (strlen (text), ==, 65536);
  id = send_text (alice, "bob", text);
  WAIT_FOR (has_state (alice, id, GCHAT_DELIVERY_DELIVERED), "delivered");
  WAIT_FOR (bob->received->len == 1, "the long message");
  r = g_ptr_array_index (bob->received, 0);
  g_assert_cmpuint (strlen (r->text), ==, 65536);
  g_assert_cmpstr (r->text, ==, text);

  g_assert_cmpuint (gchat_client_send (alice->client, "bob", too_long, &error), ==, 0);
  g_assert_error (error, GCHAT_CLIENT_ERROR, GCHAT_CLIENT_ERROR_INVALID_TEXT);
}

/* Keys replaced every few datagrams while messages keep flowing: none lost or repeated. */
static void
test_rekey_mid_conversation (void)
{
  g_autoptr(TestDaemon) d = test_daemon_new (NULL);
  g_autoptr(Peer) alice = NULL;
  g_autoptr(Peer) bob = NULL;
  const guint round = 30;
  gint64 deadline;
  guint n = 0;

  if (d == NULL)
    return;
  alice = peer_new (d);
  bob = peer_new (d);
  g_object_set (alice->client, "rekey-datagrams", (guint64) 25, NULL);
  g_object_set (bob->client, "rekey-datagrams", (guint64) 25, NULL);
  peer_login (alice, TRUE, "alice");
  peer_login (bob, TRUE, "bob");
  WAIT_FOR (gchat_client_is_online (alice->client, "bob"), "bob online");

  /* In rounds, each waiting for the one before: every round seals more datagrams than a key
   * may, so alice asks gchatd for a new one. The rounds go straight from peer to peer but the
   * new key comes through gchatd, which on a loaded machine may answer only after the last of
   * a fixed number of rounds: rounds go on until at least ten are done and alice has had three
   * keys, however slow the machine is. */
  deadline = g_get_monotonic_time () + WAIT_US;
  while (n < 10 * round || gchat_client_get_n_pair_keys (alice->client) < 3)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      for (guint i = n; i < n + round; i++)
        {
          g_autofree char *text = g_strdup_printf ("m%u", i);

          send_text (alice, "bob", text);
          if (i % 10 == 0)
            send_text (bob, "alice", text);
        }
      n += round;
      WAIT_FOR (bob->received->len >= n, "a round of messages");
    }
  WAIT_FOR (alice->received->len >= n / 10, "every message");
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *text = g_strdup_printf ("m%u", i);

      g_assert_cmpstr (((Received *) g_ptr_array_index (bob->received, i))->text, ==, text);
    }
  g_assert_cmpuint (bob->received->len, ==, n);
  g_assert_cmpuint (alice->received->len, ==, n / 10);
  g_assert_cmpuint (gchat_client_get_n_pair_keys (alice->client), >=, 3);
}

/* A peer that speaks the protocol by hand: replays, tampering and strangers get nothing. */
static void
test_hostile_datagrams (void)
{
  g_autoptr(TestDaemon) d = test_daemon_new (NULL);
  g_autoptr(Peer) bob = NULL;
  g_autoptr(TestClient) carol = NULL;
  g_autoptr(GchatMessage) pair_key = NULL;
  g_autoptr(GchatConversation) conversation = NULL;
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocket) stranger = NULL;
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) bob_address = NULL;
  g_autoptr(GBytes) tampered = NULL;
  GBytes *datagram;
  GBytes *key;
  guint8 *copy;
  gsize len;
  guint64 dropped;

  if (d == NULL)
    return;
  bob = peer_new (d);
  peer_login (bob, TRUE, "bob");
  carol = test_client_log_in (d->port, "sign", "carol", TEST_PASSWORD);
  WAIT_FOR (gchat_client_is_online (bob->client, "carol"), "carol online");
  pair_key = test_client_request (carol, "talk", "bob", NULL);
  g_assert_cmpint (gchat_message_get_message_type (pair_key), ==, GCHAT_MESSAGE_PAIR_KEY);

  conversation = gchat_conversation_new ("carol", "bob");
  key = gchat_message_get_bytes (pair_key, "key");
  g_assert_true (gchat_conversation_set_key (conversation, g_bytes_get_data (key, NULL),
                                             gchat_message_get_int (pair_key, "key_id"), 0,
                                             g_get_monotonic_time (), NULL));
  g_assert_cmpuint (gchat_conversation_send (conversation, "from carol", 10,
                                             g_get_monotonic_time (), NULL), !=, 0);
  gchat_conversation_poll (conversation, g_get_monotonic_time (), out);
  g_assert_cmpuint (out->len, ==, 1);
  datagram = g_ptr_array_index (out, 0);

  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP, NULL);
  stranger = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP, NULL);
  bob_address = g_inet_socket_address_new (loopback, gchat_client_get_peer_port (bob->client));
  g_assert_cmpuint (gchat_client_get_peer_port (bob->client), !=, 0);
  g_assert_cmpint (g_socket_send_to (socket, bob_address, g_bytes_get_data (datagram, NULL),
                                     g_bytes_get_size (datagram), NULL, NULL), >, 0);
  WAIT_FOR (bob->received->len == 1, "carol's message");
  g_assert_cmpstr (((Received *) g_ptr_array_index (bob->received, 0))->text, ==, "from carol");
  dropped = gchat_client_get_n_dropped (bob->client);

  /* The same datagram again, from the same address and from a stranger's. */
  g_socket_send_to (socket, bob_address, g_bytes_get_data (datagram, NULL),
                    g_bytes_get_size (datagram), NULL, NULL);
  g_socket_send_to (stranger, bob_address, g_bytes_get_data (datagram, NULL),
                    g_bytes_get_size (datagram), NULL, NULL);
  WAIT_FOR (gchat_client_get_n_dropped (bob->client) >= dropped + 2, "replays dropped");

  /* One bit changed in the sealed body, then in the header. */
  len = g_bytes_get_size (datagram);
  copy = g_memdup2 (g_bytes_get_data (datagram, NULL), len);
  copy[len - 20] ^= 0x01;
  g_socket_send_to (socket, bob_address, (char *) copy, len, NULL, NULL);
  copy[len - 20] ^= 0x01;
  copy[15] ^= 0x40;
  tampered = g_bytes_new_take (copy, len);
  g_socket_send_to (stranger, bob_address, g_bytes_get_data (tampered, NULL), len, NULL, NULL);
  WAIT_FOR (gchat_client_get_n_dropped (bob->client) >= dropped + 4, "tampered dropped");

  /* Garbage of every size from a stranger. */
  for (gsize size = 0; size < 1300; size += 97)
    {
      g_autofree guint8 *junk = g_malloc0 (size + 1);

      gchat_random_bytes (junk, size);
      g_socket_send_to (stranger, bob_address, (char *) junk, size, NULL, NULL);
    }
  {
    gint64 until = g_get_monotonic_time () + G_USEC_PER_SEC / 2;

    while (g_get_monotonic_time () < until)
      g_main_context_iteration (NULL, FALSE);
  }
  g_assert_cmpuint (bob->received->len, ==, 1);
  g_assert_cmpint (gchat_client_get_state (bob->client), ==, GCHAT_CLIENT_STATE_ONLINE);
}

/* A message to a user who is offline waits in gchatd, across its restart, and is delivered at
 * the next log-in; the sender, reconnected by itself, sees "queued" then "delivered". */
static void
test_offline_across_restart (void)
{
  g_autoptr(TestDaemon) d = test_daemon_new (NULL);
  g_autoptr(Peer) alice = NULL;
  g_autoptr(Peer) bob = NULL;
  g_autoptr(Peer) carol = NULL;
  guint64 id;
  Received *r;

  if (d == NULL)
    return;
  pair_up (d, &alice, &bob);
  carol = peer_new (d);
  peer_login (carol, TRUE, "carol");
  peer_logout (carol);
  WAIT_FOR (!gchat_client_is_online (alice->client, "carol"), "carol gone");

  id = send_text (alice, "carol", "while you were away");
  WAIT_FOR (has_state (alice, id, GCHAT_DELIVERY_QUEUED), "queued");
  g_assert_cmpint (path_of (alice, id), ==, GCHAT_CLIENT_PATH_OFFLINE);

  test_daemon_stop (d, SIGTERM);
  WAIT_FOR (gchat_client_get_state (alice->client) == GCHAT_CLIENT_STATE_RECONNECTING,
            "alice reconnecting");
  test_daemon_start (d);
  WAIT_FOR (gchat_client_get_state (alice->client) == GCHAT_CLIENT_STATE_ONLINE
            && gchat_client_get_state (bob->client) == GCHAT_CLIENT_STATE_ONLINE, "back online");
  WAIT_FOR (gchat_client_is_online (alice->client, "bob"), "bob back in alice's list");

  peer_login (carol, FALSE, "carol");
  WAIT_FOR (carol->received->len == 1, "carol's mail");
  r = g_ptr_array_index (carol->received, 0);
  g_assert_cmpstr (r->from, ==, "alice");
  g_assert_cmpstr (r->text, ==, "while you were away");
  g_assert_cmpint (r->path, ==, GCHAT_CLIENT_PATH_OFFLINE);
  WAIT_FOR (has_state (alice, id, GCHAT_DELIVERY_DELIVERED), "delivered");

  /* And the peers still reach each other directly after the restart. */
  id = send_text (bob, "alice", "still here");
  WAIT_FOR (has_state (bob, id, GCHAT_DELIVERY_DELIVERED), "delivered after the restart");
  WAIT_FOR (alice->received->len == 1, "alice's message");
}

/* What gchatd logged since @from bytes into its log. */
static char *
log_since (TestDaemon *d,
           gsize       from)
{
  g_autofree char *log = test_daemon_dup_log (d);

  return g_strdup (strlen (log) > from ? log + from : "");
}

static gsize
log_length (TestDaemon *d)
{
  g_autofree char *log = test_daemon_dup_log (d);

  return strlen (log);
}

/* After a restart of gchatd the clients come back with their resumption tickets: no Argon2id
 * runs (gchatd logs a resumption, not a log-in). A revoked ticket falls back to the password. */
static void
test_resume_after_restart (void)
{
  g_autoptr(TestDaemon) d = test_daemon_new (NULL);
  g_autoptr(Peer) alice = NULL;
  g_autoptr(Peer) bob = NULL;
  g_autofree char *log = NULL;
  g_autofree char *err = NULL;
  gsize mark;

  if (d == NULL)
    return;
  pair_up (d, &alice, &bob);
  test_daemon_stop (d, SIGTERM);
  WAIT_FOR (gchat_client_get_state (alice->client) == GCHAT_CLIENT_STATE_RECONNECTING
            && gchat_client_get_state (bob->client) == GCHAT_CLIENT_STATE_RECONNECTING,
            "both reconnecting");
  mark = log_length (d);
  test_daemon_start (d);
  WAIT_FOR (gchat_client_get_state (alice->client) == GCHAT_CLIENT_STATE_ONLINE
            && gchat_client_get_state (bob->client) == GCHAT_CLIENT_STATE_ONLINE
            && gchat_client_is_online (alice->client, "bob")
            && gchat_client_is_online (bob->client, "alice"), "each other online again");
  log = log_since (d, mark);
  g_assert_nonnull (strstr (log, "“alice” resumed its session from"));
  g_assert_nonnull (strstr (log, "“bob” resumed its session from"));
  g_assert_null (strstr (log, "logged in from"));

  /* Revoked: the next reconnection is refused its ticket and logs in with the password. */
  g_assert_cmpint (test_run_gchatctl (NULL, &err, "--config", d->config_path, "revoke", "alice",
                                      NULL), ==, 0);
  test_daemon_stop (d, SIGTERM);
  WAIT_FOR (gchat_client_get_state (alice->client) == GCHAT_CLIENT_STATE_RECONNECTING,
            "alice reconnecting");
  mark = log_length (d);
  test_daemon_start (d);
  WAIT_FOR (gchat_client_get_state (alice->client) == GCHAT_CLIENT_STATE_ONLINE
            && gchat_client_get_state (bob->client) == GCHAT_CLIENT_STATE_ONLINE
            && gchat_client_is_online (alice->client, "bob")
            && gchat_client_is_online (bob->client, "alice"), "online after the revocation");
  g_clear_pointer (&log, g_free);
  log = log_since (d, mark);
  g_assert_nonnull (strstr (log, "Refused a resumption from"));
  g_assert_nonnull (strstr (log, "“alice” logged in from"));
  g_assert_nonnull (strstr (log, "“bob” resumed its session from"));
}

/* A message sent while the server is away waits in the client and goes when it is back. */
static void
test_send_while_reconnecting (void)
{
  g_autoptr(TestDaemon) d = test_daemon_new (NULL);
  g_autoptr(Peer) alice = NULL;
  g_autoptr(Peer) bob = NULL;
  guint64 id;

  if (d == NULL)
    return;
  pair_up (d, &alice, &bob);
  test_daemon_stop (d, SIGKILL);
  WAIT_FOR (gchat_client_get_state (alice->client) == GCHAT_CLIENT_STATE_RECONNECTING,
            "alice reconnecting");
  id = send_text (alice, "bob", "sent during the outage");
  test_daemon_start (d);
  WAIT_FOR (has_state (alice, id, GCHAT_DELIVERY_DELIVERED)
            || has_state (alice, id, GCHAT_DELIVERY_QUEUED), "handed on");
  WAIT_FOR (bob->received->len == 1, "bob's message");
  g_assert_cmpstr (((Received *) g_ptr_array_index (bob->received, 0))->text, ==,
                   "sent during the outage");
}

static void
test_wrong_password (void)
{
  g_autoptr(TestDaemon) d = test_daemon_new (NULL);
  g_autoptr(Peer) alice = NULL;
  g_autoptr(Peer) other = NULL;

  if (d == NULL)
    return;
  alice = peer_new (d);
  peer_login (alice, TRUE, "alice");
  other = peer_new (d);
  gchat_client_auth_async (other->client, "alice", "wrong password!", NULL, login_cb, other);
  WAIT_FOR (other->done, "the refusal");
  g_assert_error (other->error, GCHAT_CLIENT_ERROR, GCHAT_CLIENT_ERROR_BAD_CREDENTIALS);
  g_assert_cmpint (gchat_client_get_state (other->client), ==, GCHAT_CLIENT_STATE_OFFLINE);

  /* Signing up as someone who exists never takes the account over. */
  other->done = FALSE;
  g_clear_error (&other->error);
  gchat_client_sign_async (other->client, "ALICE", "another password", NULL, login_cb, other);
  WAIT_FOR (other->done, "the refusal");
  g_assert_error (other->error, GCHAT_CLIENT_ERROR, GCHAT_CLIENT_ERROR_NAME_TAKEN);
}

/* Trust on first use, then a changed key refused with both fingerprints. */
static void
test_server_key_pinning (void)
{
  g_autoptr(TestDaemon) d = test_daemon_new (NULL);
  g_autoptr(Peer) alice = NULL;
  g_autoptr(GchatRsaKey) other_key = NULL;
  g_autofree char *other_fingerprint = NULL;
  g_autofree char *path = NULL;
  g_autofree char *seen = NULL;

  if (d == NULL)
    return;
  alice = peer_new (d);
  g_object_set (alice->client, "accept-new-server-key", FALSE, NULL);
  gchat_client_sign_async (alice->client, "alice", TEST_PASSWORD, NULL, login_cb, alice);
  WAIT_FOR (alice->done, "the question");
  g_assert_error (alice->error, GCHAT_CLIENT_ERROR, GCHAT_CLIENT_ERROR_SERVER_KEY_UNKNOWN);
  seen = g_strdup (gchat_client_get_server_fingerprint (alice->client));
  g_assert_nonnull (seen);
  g_assert_nonnull (strstr (alice->error->message, seen));
  g_assert_true (gchat_client_trust_server_key (alice->client, seen, NULL));
  peer_login (alice, TRUE, "alice");
  peer_logout (alice);

  /* The pinned key is replaced in the file by another one: the real server no longer matches. */
  other_key = gchat_rsa_key_generate (2048, NULL);
  other_fingerprint = gchat_rsa_key_get_fingerprint (other_key);
  g_object_get (alice->client, "known-servers-path", &path, NULL);
  {
    g_autoptr(GchatKnownServers) known = gchat_known_servers_new (path);

    g_assert_true (gchat_known_servers_pin (known, "127.0.0.1", d->port, other_key, NULL));
  }
  alice->done = FALSE;
  g_clear_error (&alice->error);
  gchat_client_auth_async (alice->client, "alice", TEST_PASSWORD, NULL, login_cb, alice);
  WAIT_FOR (alice->done, "the refusal");
  g_assert_error (alice->error, GCHAT_CLIENT_ERROR, GCHAT_CLIENT_ERROR_SERVER_KEY_CHANGED);
  g_assert_nonnull (strstr (alice->error->message, seen));
  g_assert_nonnull (strstr (alice->error->message, other_fingerprint));
}

int
main (int   argc,
      char *argv[])
{
  int status;

  g_test_init (&argc, &argv, NULL);
  gchat_crypto_init (NULL);

  g_test_add_func ("/client/direct-both-ways", test_direct_both_ways);
  g_test_add_func ("/client/relay-when-direct-blocked", test_relay_when_direct_blocked);
  g_test_add_func ("/client/lossy-thousand", test_lossy_thousand);
  g_test_add_func ("/client/long-message", test_long_message);
  g_test_add_func ("/client/rekey-mid-conversation", test_rekey_mid_conversation);
  g_test_add_func ("/client/hostile-datagrams", test_hostile_datagrams);
  g_test_add_func ("/client/offline-across-restart", test_offline_across_restart);
  g_test_add_func ("/client/send-while-reconnecting", test_send_while_reconnecting);
  g_test_add_func ("/client/resume-after-restart", test_resume_after_restart);
  g_test_add_func ("/client/wrong-password", test_wrong_password);
  g_test_add_func ("/client/server-key-pinning", test_server_key_pinning);

  status = g_test_run ();
  gchat_crypto_shutdown ();
  return status;
}
