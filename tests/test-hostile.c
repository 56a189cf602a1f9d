/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Hostile clients against an in-process gchatd: each is cut off, and a good client stays served. */

#include "config.h"

#include <string.h>

#include "gchatd-test-client.h"

/* The log-in deadline of the tests that wait for it, in seconds (the config's smallest); 5 s
 * under valgrind (GCHAT_TEST_SLOW=1), where a good client's own log-in can take over 1 s. */
#define SHORT_LOGIN_TIMEOUT (gchat_test_is_slow () ? "login_timeout: 5" : "login_timeout: 1")
#define SHORT_LOGIN_TIMEOUT_US ((gchat_test_is_slow () ? 5 : 1) * G_USEC_PER_SEC)
/* Users online besides the flooder, with long names, so that each `list` answer is large. */
#define FLOOD_BYSTANDERS 24
/* More than a flooder can make the server queue before it must be cut off. */
#define FLOOD_BUDGET (64 * 1024 * 1024)

typedef struct {
  GchatdServer *server;
  guint         n;
} ConnectionCount;

static gboolean
has_n_connections (gpointer data)
{
  ConnectionCount *count = data;

  return gchatd_server_get_n_connections (count->server) == count->n;
}

/* The server forgets the offender (@n_left connections stay), and still serves @good. */
static void
assert_others_served (TestFixture *f,
                      TestClient  *good,
                      guint        n_left)
{
  ConnectionCount count = { f->server, n_left };

  test_iterate_until (has_n_connections, &count);
  test_client_ping (good);
}

/* The offender was disconnected, without a word when @silently; when it was logged in as
 * @user, it is out of the online list; and nothing else changed. */
static void
assert_cut (TestFixture *f,
            TestClient  *offender,
            gboolean     silently,
            const char  *user,
            TestClient  *good)
{
  test_client_wait_closed (offender, silently);
  assert_others_served (f, good, 1);
  /* Gone from the list. Its presence may never have reached @good: one that came and went
   * within a batch window costs the sessions before it nothing. */
  if (user != NULL)
    {
      g_autoptr(GchatMessage) list = gchat_message_new (GCHAT_MESSAGE_LIST);
      g_autoptr(GchatMessage) users = NULL;

      gchat_message_set_int (list, "id", 8);
      test_client_send (good, list);
      users = test_client_expect (good, GCHAT_MESSAGE_USERS);
      g_assert_cmpint (gchat_message_get_int (users, "id"), ==, 8);
      g_assert_false (test_message_has_name (users, "users", user));
    }
}

static TestClient *
connect_after_hello (TestFixture *f)
{
  TestClient *c = test_client_connect (f->port);
  g_autoptr(GBytes) hello = test_client_recv_frame (c);

  g_assert_nonnull (hello);
  return c;
}

static TestClient *
connect_after_handshake (TestFixture *f)
{
  TestClient *c = test_client_connect (f->port);

  test_client_handshake (c);
  /* The pong proves the server finished its half: the next frame meets the sealed channel. */
  test_client_ping (c);
  return c;
}

/* Reads the hello and makes the client key frame, without sending it. */
static GBytes *
make_client_key_frame (TestClient *c)
{
  g_autoptr(GBytes) hello = test_client_recv_frame (c);
  g_autoptr(GBytes) client_key = NULL;

  g_assert_nonnull (hello);
  g_assert_true (gchat_handshake_step (c->handshake, hello, &client_key, NULL));
  return gchat_frame_encode (g_bytes_get_data (client_key, NULL), g_bytes_get_size (client_key),
                             NULL);
}

static guint8 *
random_bytes (gsize len)
{
  guint8 *bytes = g_malloc (len);

  for (gsize i = 0; i < len; i++)
    bytes[i] = (guint8) g_test_rand_int_range (0, 256);
  return bytes;
}

/* A frame with a correct length and @len random bytes of payload. */
static guint8 *
random_frame (gsize  len,
              gsize *frame_len)
{
  guint8 *frame = random_bytes (GCHAT_FRAME_HEADER_SIZE + len);

  gchat_frame_write_header (frame, len);
  *frame_len = GCHAT_FRAME_HEADER_SIZE + len;
  return frame;
}

/* Random bytes at each stage of a connection. With the short log-in deadline, even bytes that
 * happen to announce a small frame and never complete it cannot keep a connection. */
static void
test_random_bytes (TestFixture   *f,
                   gconstpointer  data)
{
  g_autoptr(TestClient) good = test_client_log_in (f->port, "sign", "alice", TEST_PASSWORD);

  for (guint round = 0; round < 20; round++)
    {
      g_autoptr(TestClient) bad = NULL;
      g_autofree char *user = g_strdup_printf ("mallory%u", round);
      g_autofree guint8 *junk = NULL;
      gsize len = g_test_rand_int_range (1, 4096);

      switch (round % 5)
        {
        case 0: /* raw bytes in place of everything, the hello unread */
          bad = test_client_connect (f->port);
          junk = random_bytes (len);
          break;
        case 1: /* a well-framed client key of random bytes */
          bad = connect_after_hello (f);
          junk = random_frame (MIN (len, GCHAT_FRAME_MAX_HANDSHAKE_PAYLOAD), &len);
          break;
        case 2: /* a well-framed sealed frame of random bytes, before the log-in */
          bad = connect_after_handshake (f);
          junk = random_frame (len, &len);
          break;
        case 3: /* a well-framed sealed frame of random bytes, logged in */
          bad = test_client_log_in (f->port, "sign", user, TEST_PASSWORD);
          junk = random_frame (len, &len);
          break;
        default: /* raw bytes, logged in; the top bit makes the length too large, since
                  * no log-in deadline would end a frame that never completes */
          bad = test_client_log_in (f->port, "sign", user, TEST_PASSWORD);
          junk = random_bytes (len + GCHAT_FRAME_HEADER_SIZE);
          junk[0] |= 0x80;
          len += GCHAT_FRAME_HEADER_SIZE;
          break;
        }
      test_client_send_raw (bad, junk, len);
      /* Logged-in offenders may have presence batches on their way. */
      assert_cut (f, bad, round % 5 == 1 || round % 5 == 2, round % 5 >= 3 ? user : NULL, good);
    }
  g_assert_cmpuint (gchatd_server_get_n_sessions (f->server), ==, 1);
}

/* Only a length header, no payload: the server must refuse it from the four bytes alone,
 * before it reserves anything, and well before the 30 s log-in deadline. */
static void
send_length (TestClient *c,
             guint32     length)
{
  guint8 header[GCHAT_FRAME_HEADER_SIZE];

  gchat_frame_write_header (header, length);
  test_client_send_raw (c, header, sizeof header);
}

static void
test_oversize_length (TestFixture   *f,
                      gconstpointer  data)
{
  g_autoptr(TestClient) good = test_client_log_in (f->port, "sign", "alice", TEST_PASSWORD);
  g_autoptr(TestClient) early = connect_after_hello (f);
  g_autoptr(TestClient) huge = connect_after_hello (f);
  g_autoptr(TestClient) unauthenticated = connect_after_handshake (f);
  g_autoptr(TestClient) logged_in = test_client_log_in (f->port, "sign", "bob", TEST_PASSWORD);

  send_length (early, GCHAT_FRAME_MAX_HANDSHAKE_PAYLOAD + 1);
  test_client_wait_closed (early, TRUE);
  send_length (huge, G_MAXUINT32);
  test_client_wait_closed (huge, TRUE);
  /* A sealed channel without a log-in may send only what a `sign` or `auth` needs. */
  send_length (unauthenticated, GCHATD_CONNECTION_MAX_UNAUTHENTICATED_PAYLOAD + 1);
  test_client_wait_closed (unauthenticated, TRUE);
  /* A session may have presence on its way: not silently. */
  send_length (logged_in, GCHAT_FRAME_MAX_PAYLOAD + 1);
  assert_cut (f, logged_in, FALSE, "bob", good);
}

/* A client key cut in half, and a client that has a sealed channel and pings but never logs
 * in: both go at the log-in deadline, not before. */
static void
test_half_handshake (TestFixture   *f,
                     gconstpointer  data)
{
  g_autoptr(TestClient) good = test_client_log_in (f->port, "sign", "alice", TEST_PASSWORD);
  gint64 start = g_get_monotonic_time ();
  g_autoptr(TestClient) half = test_client_connect (f->port);
  g_autoptr(TestClient) pinger = connect_after_handshake (f);
  g_autoptr(GBytes) frame = make_client_key_frame (half);

  /* The header announces more than ever comes. */
  test_client_send_raw (half, g_bytes_get_data (frame, NULL), g_bytes_get_size (frame) / 2);
  test_client_ping (good);
  test_client_ping (pinger);

  test_client_wait_closed (half, TRUE);
  g_assert_cmpint (g_get_monotonic_time () - start, >=, SHORT_LOGIN_TIMEOUT_US * 8 / 10);
  test_client_wait_closed (pinger, TRUE);
  g_assert_cmpint (g_get_monotonic_time () - start, >=, SHORT_LOGIN_TIMEOUT_US * 8 / 10);
  assert_others_served (f, good, 1);
}

/* Sends @data a byte at a time, every @interval_us, until the server closes; returns how many
 * bytes went out. */
static gsize
trickle_until_closed (TestClient   *c,
                      const guint8 *data,
                      gsize         len,
                      gint64        interval_us)
{
  gint64 deadline = g_get_monotonic_time () + TEST_WAIT_TIMEOUT_US;
  gint64 next = 0;
  gsize sent = 0;

  while (!c->closed)
    {
      gint64 now = g_get_monotonic_time ();

      g_assert_cmpint (now, <, deadline);
      if (now >= next && sent < len)
        {
          /* Errors mean the server has closed: the read below finds that out. */
          if (g_socket_send (c->socket, (const char *) data + sent, 1, NULL, NULL) == 1)
            sent++;
          next = now + interval_us;
        }
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (1000);
      test_client_read_available (c);
    }
  return sent;
}

/* One byte every 100 ms keeps the connection busy but never logs in: the log-in deadline
 * counts from the connection, not from the last byte. Also through a sealed channel. */
static void
test_slowloris (TestFixture   *f,
                gconstpointer  data)
{
  g_autoptr(TestClient) good = test_client_log_in (f->port, "sign", "alice", TEST_PASSWORD);
  static const char auth_json[] =
    "{\"type\":\"auth\",\"user\":\"alice\",\"password\":\"" TEST_PASSWORD "\"}";
  g_autoptr(TestClient) slow = NULL;
  g_autoptr(TestClient) sealed = NULL;
  g_autoptr(GBytes) frame = NULL;
  g_autoptr(GBytes) auth = NULL;
  gint64 start = g_get_monotonic_time ();
  gsize sent;

  /* The handshake, a byte at a time. */
  slow = test_client_connect (f->port);
  frame = make_client_key_frame (slow);
  sent = trickle_until_closed (slow, g_bytes_get_data (frame, NULL), g_bytes_get_size (frame),
                               100 * 1000);
  g_assert_cmpint (g_get_monotonic_time () - start, >=, SHORT_LOGIN_TIMEOUT_US * 8 / 10);
  g_assert_cmpuint (sent, >=, 5);
  test_client_ping (good);

  /* An `auth`, a byte at a time, on a sealed channel. */
  start = g_get_monotonic_time ();
  sealed = test_client_connect (f->port);
  test_client_handshake (sealed);
  auth = gchat_channel_seal (sealed->channel, (const guint8 *) auth_json, strlen (auth_json), NULL);
  sent = trickle_until_closed (sealed, g_bytes_get_data (auth, NULL), g_bytes_get_size (auth),
                               100 * 1000);
  g_assert_cmpint (g_get_monotonic_time () - start, >=, SHORT_LOGIN_TIMEOUT_US * 8 / 10);
  g_assert_cmpuint (sent, <, g_bytes_get_size (auth));
  assert_others_served (f, good, 1);
  g_assert_cmpuint (gchatd_server_get_n_sessions (f->server), ==, 1);
}

/* Recorded bytes sent again: on another connection, on the same one, reflected. */
static void
test_replayed_handshake (TestFixture   *f,
                         gconstpointer  data)
{
  g_autoptr(TestClient) good = test_client_log_in (f->port, "sign", "alice", TEST_PASSWORD);
  g_autoptr(TestClient) victim = test_client_connect (f->port);
  g_autoptr(TestClient) attacker = connect_after_hello (f);
  g_autoptr(TestClient) twice = connect_after_handshake (f);
  g_autoptr(TestClient) mirror = test_client_connect (f->port);
  g_autoptr(GchatMessage) result = NULL;
  g_autoptr(GBytes) hello = NULL;
  g_autoptr(GBytes) hello_frame = NULL;

  /* A whole recorded log-in on a new connection: the server's fresh hello makes other keys. */
  test_client_handshake (victim);
  result = test_client_request (victim, "sign", "bob", TEST_PASSWORD);
  test_assert_result (result, NULL);
  test_client_send_raw (attacker, g_bytes_get_data (victim->client_key_frame, NULL),
                        g_bytes_get_size (victim->client_key_frame));
  test_client_send_raw (attacker, g_bytes_get_data (victim->last_frame, NULL),
                        g_bytes_get_size (victim->last_frame));
  test_client_wait_closed (attacker, TRUE);
  g_assert_cmpuint (gchatd_server_get_n_sessions (f->server), ==, 2);

  /* The client key twice on one connection: the second is no sealed frame. */
  test_client_send_raw (twice, g_bytes_get_data (twice->client_key_frame, NULL),
                        g_bytes_get_size (twice->client_key_frame));
  test_client_wait_closed (twice, TRUE);

  /* The server's own hello sent back as the client key. */
  hello = test_client_recv_frame (mirror);
  hello_frame = gchat_frame_encode (g_bytes_get_data (hello, NULL), g_bytes_get_size (hello), NULL);
  test_client_send_raw (mirror, g_bytes_get_data (hello_frame, NULL),
                        g_bytes_get_size (hello_frame));
  test_client_wait_closed (mirror, TRUE);

  /* A logged-in client's own frame again: its counter is behind, and the session ends. */
  test_client_ping (victim);
  test_client_send_raw (victim, g_bytes_get_data (victim->last_frame, NULL),
                        g_bytes_get_size (victim->last_frame));
  assert_cut (f, victim, FALSE, "bob", good);
  g_assert_cmpuint (gchatd_server_get_n_sessions (f->server), ==, 1);
}

/* Where a bit of a sealed frame is flipped. */
typedef enum {
  TAMPER_CIPHERTEXT,
  TAMPER_TAG,
  TAMPER_LENGTH, /* one less: the tag is cut short and the last byte starts a new header */
  N_TAMPER,
} Tamper;

static void
send_tampered (TestClient *c,
               const char *json,
               Tamper      where)
{
  g_autoptr(GBytes) frame = gchat_channel_seal (c->channel, (const guint8 *) json, strlen (json),
                                                NULL);
  gsize len;
  g_autofree guint8 *bytes = g_bytes_unref_to_data (g_steal_pointer (&frame), &len);

  if (where == TAMPER_CIPHERTEXT)
    bytes[GCHAT_FRAME_HEADER_SIZE + 2] ^= 0x10;
  else if (where == TAMPER_TAG)
    bytes[len - 1] ^= 0x01;
  else
    bytes[GCHAT_FRAME_HEADER_SIZE - 1] -= 1;
  test_client_send_raw (c, bytes, len);
}

/* Flipped bits in the first sealed frame (a correct `auth` for alice) and in a logged-in
 * client's frame: nothing is answered under a broken channel, and nobody logs in. */
static void
test_tampered_frame (TestFixture   *f,
                     gconstpointer  data)
{
  g_autoptr(TestClient) good = test_client_log_in (f->port, "sign", "alice", TEST_PASSWORD);

  for (Tamper where = 0; where < N_TAMPER; where++)
    {
      g_autoptr(TestClient) thief = test_client_connect (f->port);
      g_autoptr(TestClient) bob = test_client_log_in (f->port, where == 0 ? "sign" : "auth", "bob",
                                                      TEST_PASSWORD);

      test_client_handshake (thief);
      send_tampered (thief, "{\"type\":\"auth\",\"user\":\"alice\","
                            "\"password\":\"" TEST_PASSWORD "\"}", where);
      test_client_wait_closed (thief, TRUE);

      send_tampered (bob, "{\"type\":\"ping\",\"id\":1}", where);
      test_client_expect_closed (bob);
      assert_cut (f, bob, FALSE, "bob", good);
    }
  g_assert_cmpuint (gchatd_server_get_n_sessions (f->server), ==, 1);
}

/* Past max_connections (3 here) a connection is closed before the hello; one that ends frees
 * its place. */
static void
test_max_connections (TestFixture   *f,
                      gconstpointer  data)
{
  g_autoptr(TestClient) good = test_client_log_in (f->port, "sign", "alice", TEST_PASSWORD);
  g_autoptr(TestClient) second = connect_after_hello (f);
  g_autoptr(TestClient) third = connect_after_handshake (f);
  g_autoptr(TestClient) again = NULL;

  for (guint i = 0; i < 20; i++)
    {
      g_autoptr(TestClient) extra = test_client_connect (f->port);

      test_client_wait_closed (extra, TRUE);
      g_assert_cmpuint (gchatd_server_get_n_connections (f->server), ==, 3);
    }
  test_client_ping (good);
  test_client_ping (third);

  g_clear_pointer (&second, test_client_free);
  assert_others_served (f, good, 2);
  again = connect_after_hello (f);
  test_client_ping (good);
}

/* Answers to the storm, as they come. */
typedef struct {
  TestClient **clients;
  guint        n;
  guint        busy;
} Storm;

static gboolean
storm_answered_busy (gpointer data)
{
  Storm *storm = data;

  for (guint i = 0; i < storm->n; i++)
    {
      TestClient *c = storm->clients[i];
      g_autoptr(GchatMessage) message = NULL;

      test_client_read_available (c);
      g_assert_false (c->closed);
      message = test_client_pop_message (c);
      if (message == NULL)
        continue;
      /* `busy` comes at once; a hash that was run fails later. */
      if (g_strcmp0 (gchat_message_get_string (message, "code"), "bad-credentials") == 0)
        continue;
      test_assert_result (message, "busy");
      g_assert_cmpint (gchat_message_get_int (message, "retry_after"), >=, 1);
      storm->busy++;
    }
  return storm->busy > 0;
}

static gboolean
hasher_idle (gpointer data)
{
  GchatdPasswordHasherStats stats;

  gchatd_password_hasher_get_stats (data, &stats);
  return stats.running == 0 && stats.queued == 0;
}

/* How many requests the hasher has taken in, run, refused or dropped so far. */
static guint64
hasher_taken (GchatdPasswordHasher *hasher)
{
  GchatdPasswordHasherStats stats;

  gchatd_password_hasher_get_stats (hasher, &stats);
  return stats.running + stats.queued + stats.completed + stats.rejected + stats.cancelled;
}

typedef struct {
  GchatdPasswordHasher *hasher;
  guint64               n;
} HasherCount;

static gboolean
hasher_has_taken (gpointer data)
{
  HasherCount *count = data;

  return hasher_taken (count->hasher) >= count->n;
}

/* @n connections past the handshake, each with an `auth` for an unknown user on its way. */
static TestClient **
storm_send (TestFixture *f,
            guint        n)
{
  TestClient **clients = g_new0 (TestClient *, n);

  for (guint i = 0; i < n; i++)
    clients[i] = connect_after_handshake (f);
  for (guint i = 0; i < n; i++)
    {
      g_autoptr(GchatMessage) auth = gchat_message_new (GCHAT_MESSAGE_AUTH);
      g_autofree char *user = g_strdup_printf ("nobody%u", i);

      gchat_message_set_string (auth, "user", user);
      gchat_message_set_string (auth, "password", TEST_PASSWORD);
      gchat_message_set_int (auth, "id", 42);
      test_client_send (clients[i], auth);
    }
  return clients;
}

static void
storm_free (TestClient **clients,
            guint        n)
{
  for (guint i = 0; i < n; i++)
    test_client_free (clients[i]);
  g_free (clients);
}

/* Past the hasher's workers and queue, at an Argon2id cost that keeps the workers busy while
 * the requests arrive, log-ins are told `busy` at once and keep their connection, while
 * logged-in clients are served. */
static void
test_busy (TestFixture   *f,
           gconstpointer  data)
{
  g_autoptr(TestClient) good = test_client_log_in (f->port, "sign", "alice", TEST_PASSWORD);
  GchatdPasswordHasher *hasher = gchatd_server_get_hasher (f->server);
  guint capacity = gchatd_password_hasher_get_max_parallel (hasher)
                   + gchatd_password_hasher_get_max_queued (hasher);
  Storm storm = { .n = capacity + 16 };
  GchatdPasswordHasherStats stats;

  storm.clients = storm_send (f, storm.n);
  test_iterate_until (storm_answered_busy, &storm);
  g_test_message ("%u of %u log-ins were told “busy”", storm.busy, storm.n);

  /* The loop is not blocked, and a client told `busy` may go on. */
  test_client_ping (good);
  for (guint i = 0; i < storm.n; i++)
    g_assert_false (storm.clients[i]->closed);
  gchatd_password_hasher_get_stats (hasher, &stats);
  g_assert_cmpuint (stats.rejected, >=, 1);

  /* Stopping closes every connection, which drops the waiting requests unhashed: the test
   * need not wait for them (/hostile/hang-up-while-queued is about clients that leave). */
  gchatd_server_stop (f->server);
  test_iterate_until (hasher_idle, hasher);
  storm_free (storm.clients, storm.n);
}

/* Clients that send `auth` and hang up while it waits in the hasher's queue: the server should
 * notice, drop the waiting requests unhashed and free the connections. */
static void
test_hang_up_while_queued (TestFixture   *f,
                           gconstpointer  data)
{
  g_autoptr(TestClient) good = test_client_log_in (f->port, "sign", "alice", TEST_PASSWORD);
  GchatdPasswordHasher *hasher = gchatd_server_get_hasher (f->server);
  guint n = gchatd_password_hasher_get_max_parallel (hasher)
            + gchatd_password_hasher_get_max_queued (hasher);
  HasherCount taken = { hasher, hasher_taken (hasher) + n };
  TestClient **clients = storm_send (f, n);
  GchatdPasswordHasherStats before, after;

  /* Hang up once every request is in the hasher; most still wait for a worker. */
  test_iterate_until (hasher_has_taken, &taken);
  gchatd_password_hasher_get_stats (hasher, &before);
  storm_free (clients, n);
  assert_others_served (f, good, 1);
  test_iterate_until (hasher_idle, hasher);
  gchatd_password_hasher_get_stats (hasher, &after);
  g_test_message ("After the hang-ups: %" G_GUINT64_FORMAT " more hashed, %" G_GUINT64_FORMAT
                  " dropped", after.completed - before.completed,
                  after.cancelled - before.cancelled);
  /* The hang-ups were noticed: the waiting requests were dropped, not hashed for nobody. */
  g_assert_cmpuint (after.cancelled - before.cancelled, >=, 1);
}

static gboolean
session_count_is_one (gpointer data)
{
  return gchatd_server_get_n_sessions (data) == 1;
}

/* A logged-in client that sends `list` after `list` and never reads the answers: the server
 * cuts it once its queue is full, and the others go on. */
static void
test_flood (TestFixture   *f,
            gconstpointer  data)
{
  g_autoptr(TestClient) good = test_client_log_in (f->port, "sign", "alice", TEST_PASSWORD);
  g_autoptr(TestClient) flooder = test_client_connect_with_buffer (f->port, 4096);
  g_autoptr(GchatMessage) result = NULL;
  g_autoptr(GchatMessage) list = gchat_message_new (GCHAT_MESSAGE_LIST);
  g_autoptr(GBytes) json = gchat_message_encode (list, NULL);
  g_autoptr(GchatMessage) users = NULL;
  TestClient *bystanders[FLOOD_BYSTANDERS];
  gint64 deadline = g_get_monotonic_time () + TEST_WAIT_TIMEOUT_US;
  gsize flooded = 0;
  guint frames = 0;

  for (guint i = 0; i < FLOOD_BYSTANDERS; i++)
    {
      g_autofree char *user = g_strdup_printf ("a-rather-long-user-name-%08u", i);

      bystanders[i] = test_client_log_in (f->port, "sign", user, TEST_PASSWORD);
    }
  test_client_handshake (flooder);
  result = test_client_request (flooder, "sign", "flood", TEST_PASSWORD);
  test_assert_result (result, NULL);

  while (gchatd_server_get_n_sessions (f->server) > FLOOD_BYSTANDERS + 1)
    {
      g_autoptr(GBytes) frame = gchat_channel_seal (flooder->channel,
                                                    g_bytes_get_data (json, NULL),
                                                    g_bytes_get_size (json), NULL);

      if (flooded > FLOOD_BUDGET || g_get_monotonic_time () > deadline)
        g_error ("The server kept a client that read nothing of %" G_GSIZE_FORMAT " bytes",
                 flooded);
      test_client_send_raw (flooder, g_bytes_get_data (frame, NULL), g_bytes_get_size (frame));
      flooded += g_bytes_get_size (frame);
      /* Others are served while the flood runs. */
      if (++frames % 256 == 0)
        test_client_ping (good);
    }
  g_test_message ("The flooder was cut after sending %" G_GSIZE_FORMAT " bytes", flooded);
  /* Gone from the list. Its `left` may have gone by during a ping, so the list tells. */
  gchat_message_set_int (list, "id", 7);
  test_client_send (good, list);
  users = test_client_expect (good, GCHAT_MESSAGE_USERS);
  g_assert_cmpint (gchat_message_get_int (users, "id"), ==, 7);
  g_assert_true (test_message_has_name (users, "users", "alice"));
  g_assert_false (test_message_has_name (users, "users", "flood"));

  for (guint i = 0; i < FLOOD_BYSTANDERS; i++)
    test_client_free (bystanders[i]);
  test_iterate_until (session_count_is_one, f->server);
  assert_others_served (f, good, 1);
}

/* The hello's X25519 key pair is shared within a second, then replaced and wiped (PROTOCOL.md
 * §3.2): a recorded connection is forward secret a second after its hello, not a day later. */
static const guint8 *
hello_server_eph (GBytes *hello)
{
  g_assert_cmpuint (g_bytes_get_size (hello), >=, GCHAT_HANDSHAKE_HELLO_FIXED_SIZE);
  return (const guint8 *) g_bytes_get_data (hello, NULL) + GCHAT_HANDSHAKE_MAGIC_SIZE + 1
         + GCHAT_HANDSHAKE_CHALLENGE_SIZE;
}

static gboolean
time_passed (gpointer data)
{
  return g_get_monotonic_time () >= *(gint64 *) data;
}

static void
test_hello_key_pair_lifetime (TestFixture   *f,
                              gconstpointer  data)
{
  g_autoptr(TestClient) a = test_client_connect (f->port);
  g_autoptr(TestClient) b = test_client_connect (f->port);
  g_autoptr(TestClient) c = NULL;
  g_autoptr(GBytes) hello_a = test_client_recv_frame (a);
  g_autoptr(GBytes) hello_b = test_client_recv_frame (b);
  g_autoptr(GBytes) hello_c = NULL;
  gint64 later = g_get_monotonic_time () + (GCHATD_SERVER_EPHEMERAL_LIFETIME_MS + 200) * 1000;

  /* Within the second: one key pair, yet two hellos (fresh challenges). */
  g_assert_cmpmem (hello_server_eph (hello_a), GCHAT_X25519_SIZE,
                   hello_server_eph (hello_b), GCHAT_X25519_SIZE);
  g_assert_false (g_bytes_equal (hello_a, hello_b));

  test_iterate_until (time_passed, &later);
  c = test_client_connect (f->port);
  hello_c = test_client_recv_frame (c);
  g_assert_true (memcmp (hello_server_eph (hello_a), hello_server_eph (hello_c),
                         GCHAT_X25519_SIZE) != 0);
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
  ADD ("/hostile/random-bytes", test_random_bytes, SHORT_LOGIN_TIMEOUT);
  ADD ("/hostile/oversize-length", test_oversize_length, NULL);
  ADD ("/hostile/half-handshake", test_half_handshake, SHORT_LOGIN_TIMEOUT);
  ADD ("/hostile/slowloris", test_slowloris, SHORT_LOGIN_TIMEOUT);
  ADD ("/hostile/replayed-handshake", test_replayed_handshake, NULL);
  ADD ("/hostile/tampered-frame", test_tampered_frame, NULL);
  ADD ("/hostile/max-connections", test_max_connections, "max_connections: 3");
  ADD ("/hostile/busy", test_busy, "argon2_memory_kib: 16384\nargon2_iterations: 2");
  ADD ("/hostile/hang-up-while-queued", test_hang_up_while_queued,
       "argon2_memory_kib: 8192\nargon2_iterations: 1");
  ADD ("/hostile/flood", test_flood, NULL);
  ADD ("/hostile/hello-key-pair-lifetime", test_hello_key_pair_lifetime, NULL);
#undef ADD

  status = g_test_run ();
  test_server_key_set (NULL);
  gchat_crypto_shutdown ();
  return status;
}
