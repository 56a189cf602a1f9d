/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Tests of gchatd's endpoint listener over real UDP sockets on loopback, and of session keys. */

#include "config.h"

#include <string.h>

#include <gio/gio.h>

#include "gchat-crypto.h"
#include "gchat-datagram.h"
#include "gchat-message.h"
#include "gchatd-endpoint-listener.h"

/* Long enough for a loaded machine, short enough that a broken test fails instead of hanging. */
#define WAIT_US       (5 * G_USEC_PER_SEC)
/* Loopback delivers at once: the answer, if any, is queued before the listener's counters move,
 * so this only guards against a scheduler hiccup. */
#define NO_ANSWER_US  (100 * 1000)

typedef struct
{
  GchatdEndpointListener *listener;
  GSocketAddress         *server; /* where the clients send */
  GSocket                *client;
  guint16                 client_port;
  guint8                  key[GCHAT_KEY_SIZE];
  guint32                 id;
  GchatEndpointKey       *client_key;
  guint                   n_changed;
  char                   *changed_user;
} Fixture;

/* ---- Helpers ---- */

static GInetSocketAddress *
inet_address (const char *ip,
              guint16     port)
{
  return G_INET_SOCKET_ADDRESS (g_inet_socket_address_new_from_string (ip, port));
}

static GchatDatagramEndpoint
endpoint (const char *ip,
          guint16     port)
{
  g_autoptr(GInetSocketAddress) address = inet_address (ip, port);
  GchatDatagramEndpoint out;

  g_assert_true (gchat_datagram_endpoint_from_address (address, &out, NULL));
  return out;
}

/* A non-blocking UDP socket bound to @ip on a free port; NULL if the system has no such
 * address (IPv6 switched off, say). */
static GSocket *
client_socket (const char *ip,
               guint16    *port)
{
  g_autoptr(GInetSocketAddress) address = inet_address (ip, 0);
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketAddress) bound = NULL;

  socket = g_socket_new (g_socket_address_get_family (G_SOCKET_ADDRESS (address)),
                         G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP, NULL);
  if (socket == NULL || !g_socket_bind (socket, G_SOCKET_ADDRESS (address), FALSE, NULL))
    return NULL;
  bound = g_socket_get_local_address (socket, NULL);
  g_assert_nonnull (bound);
  *port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  g_socket_set_blocking (socket, FALSE);
  return g_steal_pointer (&socket);
}

static GBytes *
request (GchatEndpointKey            *key,
         const char                  *user,
         const GchatDatagramEndpoint *endpoints,
         guint                        n_endpoints)
{
  g_autoptr(GBytes) body = gchat_datagram_build_endpoint (user, endpoints, n_endpoints, NULL);
  g_autoptr(GError) error = NULL;
  GBytes *datagram;

  g_assert_nonnull (body);
  datagram = gchat_endpoint_key_seal (key, g_bytes_get_data (body, NULL), g_bytes_get_size (body),
                                      &error);
  g_assert_no_error (error);
  return datagram;
}

static void
send_raw (GSocket        *from,
          GSocketAddress *to,
          const guint8   *data,
          gsize           len)
{
  g_autoptr(GError) error = NULL;

  g_assert_cmpint (g_socket_send_to (from, to, (const char *) data, len, NULL, &error), ==, len);
  g_assert_no_error (error);
}

static void
send_bytes (GSocket        *from,
            GSocketAddress *to,
            GBytes         *bytes)
{
  send_raw (from, to, g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes));
}

static gboolean
on_tick (gpointer data)
{
  return G_SOURCE_CONTINUE;
}

/* Runs the main loop until @listener has read @n datagrams in all; a tick wakes the loop so
 * that the deadline is seen even when nothing arrives. */
static void
wait_received (GchatdEndpointListener *listener,
               guint64                 n)
{
  gint64 deadline = g_get_monotonic_time () + WAIT_US;
  guint tick = g_timeout_add (10, on_tick, NULL);

  while (gchatd_endpoint_listener_get_n_received (listener) < n
         && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  g_source_remove (tick);
  g_assert_cmpuint (gchatd_endpoint_listener_get_n_received (listener), ==, n);
}

/* Reads one datagram within @timeout_us into @buffer; its size, or -1 when none came. */
static gssize
receive_within (GSocket *socket,
                gint64   timeout_us,
                guint8  *buffer,
                gsize    size)
{
  g_autoptr(GError) error = NULL;
  gssize len;

  if (!g_socket_condition_timed_wait (socket, G_IO_IN, timeout_us, NULL, &error))
    {
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
      return -1;
    }
  len = g_socket_receive (socket, (char *) buffer, size, NULL, &error);
  g_assert_no_error (error);
  return len;
}

static void
assert_no_answer (GSocket *socket)
{
  guint8 buffer[2048];

  g_assert_cmpint (receive_within (socket, NO_ANSWER_US, buffer, sizeof buffer), ==, -1);
}

/* Receives the answer to a request of @request_len bytes and checks it tells @user that the
 * server saw it at @ip, @port. */
static void
assert_answer (GSocket          *socket,
               GchatEndpointKey *key,
               gsize             request_len,
               const char       *user,
               const char       *ip,
               guint16           port)
{
  guint8 buffer[2048];
  gssize len = receive_within (socket, WAIT_US, buffer, sizeof buffer);
  GchatDatagramHeader header;
  GchatDatagramEndpoint endpoints[GCHAT_DATAGRAM_MAX_ENDPOINTS];
  GchatDatagramEndpoint expected = endpoint (ip, port);
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *name = NULL;
  guint n = 0;

  g_assert_cmpint (len, >, 0);
  g_assert_cmpint (len, <=, request_len);
  g_assert_true (gchat_datagram_peek_header (buffer, len, &header, NULL));
  g_assert_cmpuint (header.direction, ==, 1);
  g_assert_cmpuint (header.key_id, ==, gchat_endpoint_key_get_endpoint_id (key));
  body = gchat_endpoint_key_open (key, buffer, len, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (gchat_datagram_parse_endpoint (g_bytes_get_data (body, NULL),
                                                g_bytes_get_size (body), &name, endpoints, &n,
                                                &error));
  g_assert_no_error (error);
  g_assert_cmpstr (name, ==, user);
  g_assert_cmpuint (n, ==, 1);
  g_assert_cmpuint (endpoints[0].family, ==, expected.family);
  g_assert_cmpmem (endpoints[0].address, 16, expected.address, 16);
  g_assert_cmpuint (endpoints[0].port, ==, port);
}

static void
assert_endpoints (GchatdEndpointListener *listener,
                  const char             *user,
                  const char * const     *expected)
{
  g_auto(GStrv) endpoints = gchatd_endpoint_listener_dup_endpoints (listener, user);

  g_assert_nonnull (endpoints);
  g_assert_cmpstrv (endpoints, expected);
}

/* ---- Fixture: a listener on 127.0.0.1 and Alice's session and client socket ---- */

static void
on_endpoint_changed (GchatdEndpointListener *listener,
                     const char             *user,
                     Fixture                *fixture)
{
  fixture->n_changed++;
  g_free (fixture->changed_user);
  fixture->changed_user = g_strdup (user);
}

static void
fixture_setup (Fixture       *fixture,
               gconstpointer  data)
{
  g_autoptr(GInetSocketAddress) bind_address = inet_address ("127.0.0.1", 0);
  g_autoptr(GError) error = NULL;

  fixture->listener = gchatd_endpoint_listener_new (bind_address, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (gchatd_endpoint_listener_get_port (fixture->listener), !=, 0);
  fixture->server = G_SOCKET_ADDRESS (inet_address (
    "127.0.0.1", gchatd_endpoint_listener_get_port (fixture->listener)));
  g_signal_connect (fixture->listener, "endpoint-changed", G_CALLBACK (on_endpoint_changed),
                    fixture);

  gchat_random_bytes (fixture->key, sizeof fixture->key);
  fixture->id = gchatd_endpoint_listener_register (fixture->listener, "Alice", fixture->key,
                                                   &error);
  g_assert_no_error (error);
  g_assert_cmpuint (fixture->id, !=, 0);
  fixture->client_key = gchat_endpoint_key_new_for_session (fixture->key, fixture->id,
                                                            GCHAT_ENDPOINT_SIDE_CLIENT, &error);
  g_assert_no_error (error);
  fixture->client = client_socket ("127.0.0.1", &fixture->client_port);
  g_assert_nonnull (fixture->client);
}

static void
fixture_teardown (Fixture       *fixture,
                  gconstpointer  data)
{
  g_clear_object (&fixture->listener);
  g_clear_object (&fixture->server);
  g_clear_object (&fixture->client);
  g_clear_pointer (&fixture->client_key, gchat_endpoint_key_free);
  g_clear_pointer (&fixture->changed_user, g_free);
  /* Let the main context drop what the listener's source left behind. */
  while (g_main_context_iteration (NULL, FALSE))
    ;
}

static char *
client_endpoint (Fixture *fixture)
{
  return g_strdup_printf ("127.0.0.1:%u", (guint) fixture->client_port);
}

/* Sends one good request from the fixture's client and checks it is taken and answered. */
static void
send_good_request (Fixture                     *fixture,
                   const GchatDatagramEndpoint *locals,
                   guint                        n_locals)
{
  g_autoptr(GBytes) datagram = request (fixture->client_key, "Alice", locals, n_locals);
  guint64 received = gchatd_endpoint_listener_get_n_received (fixture->listener);
  guint64 accepted = gchatd_endpoint_listener_get_n_accepted (fixture->listener);

  send_bytes (fixture->client, fixture->server, datagram);
  wait_received (fixture->listener, received + 1);
  g_assert_cmpuint (gchatd_endpoint_listener_get_n_accepted (fixture->listener), ==,
                    accepted + 1);
  assert_answer (fixture->client, fixture->client_key, g_bytes_get_size (datagram), "Alice",
                 "127.0.0.1", fixture->client_port);
}

/* ---- Tests ---- */

static void
test_accepted (Fixture       *fixture,
               gconstpointer  data)
{
  GchatDatagramEndpoint locals[] = { endpoint ("10.0.0.5", 4000), endpoint ("2001:db8::1", 4001) };
  g_autofree char *observed = client_endpoint (fixture);
  const char *expected[] = { observed, "10.0.0.5:4000", "[2001:db8::1]:4001", NULL };
  const char *fewer[] = { observed, "10.0.0.5:4000", NULL };
  g_autoptr(GBytes) datagram = NULL;

  g_assert_null (gchatd_endpoint_listener_dup_endpoints (fixture->listener, "Alice"));

  /* The client may spell its name in another letter case; answers use the server's. */
  datagram = request (fixture->client_key, "alice", locals, G_N_ELEMENTS (locals));
  send_bytes (fixture->client, fixture->server, datagram);
  wait_received (fixture->listener, 1);
  g_assert_cmpuint (gchatd_endpoint_listener_get_n_accepted (fixture->listener), ==, 1);
  g_assert_cmpuint (gchatd_endpoint_listener_get_n_dropped (fixture->listener), ==, 0);
  g_assert_cmpuint (fixture->n_changed, ==, 1);
  g_assert_cmpstr (fixture->changed_user, ==, "Alice");
  assert_endpoints (fixture->listener, "Alice", expected);
  assert_endpoints (fixture->listener, "ALICE", expected);
  assert_answer (fixture->client, fixture->client_key, g_bytes_get_size (datagram), "Alice",
                 "127.0.0.1", fixture->client_port);
  g_assert_cmpuint (gchatd_endpoint_listener_get_n_answered (fixture->listener), ==, 1);

  /* The same endpoints again: answered, but nothing changed. */
  send_good_request (fixture, locals, G_N_ELEMENTS (locals));
  g_assert_cmpuint (fixture->n_changed, ==, 1);
  g_assert_cmpuint (gchatd_endpoint_listener_get_n_answered (fixture->listener), ==, 2);

  send_good_request (fixture, locals, 1);
  g_assert_cmpuint (fixture->n_changed, ==, 2);
  assert_endpoints (fixture->listener, "Alice", fewer);
  g_assert_null (gchatd_endpoint_listener_dup_endpoints (fixture->listener, "bob"));
}

/* Sends @len bytes that must be dropped: no answer, no change, only the drop counter moves. */
static void
assert_dropped_raw (Fixture      *fixture,
                    const guint8 *data,
                    gsize         len)
{
  GchatdEndpointListener *listener = fixture->listener;
  guint64 received = gchatd_endpoint_listener_get_n_received (listener);
  guint64 accepted = gchatd_endpoint_listener_get_n_accepted (listener);
  guint64 dropped = gchatd_endpoint_listener_get_n_dropped (listener);
  guint64 answered = gchatd_endpoint_listener_get_n_answered (listener);
  guint n_changed = fixture->n_changed;

  send_raw (fixture->client, fixture->server, data, len);
  wait_received (listener, received + 1);
  g_assert_cmpuint (gchatd_endpoint_listener_get_n_dropped (listener), ==, dropped + 1);
  g_assert_cmpuint (gchatd_endpoint_listener_get_n_accepted (listener), ==, accepted);
  g_assert_cmpuint (gchatd_endpoint_listener_get_n_answered (listener), ==, answered);
  g_assert_cmpuint (fixture->n_changed, ==, n_changed);
  assert_no_answer (fixture->client);
}

static void
assert_dropped (Fixture *fixture,
                GBytes  *datagram)
{
  assert_dropped_raw (fixture, g_bytes_get_data (datagram, NULL), g_bytes_get_size (datagram));
}

static void
test_dropped (Fixture       *fixture,
              gconstpointer  data)
{
  GchatDatagramEndpoint local = endpoint ("10.0.0.5", 4000);
  guint8 other[GCHAT_KEY_SIZE];
  guint32 unknown_id = fixture->id == G_MAXUINT32 ? 1 : fixture->id + 1;
  g_autoptr(GchatEndpointKey) wrong_key = NULL;
  g_autoptr(GchatEndpointKey) unknown = NULL;
  g_autoptr(GBytes) datagram = NULL;
  g_autoptr(GBytes) good = NULL;
  guint8 buffer[GCHAT_DATAGRAM_MAX_SIZE + 200];
  g_autofree char *observed = client_endpoint (fixture);
  const char *expected[] = { observed, "10.0.0.5:4000", NULL };
  gsize len;
  gssize answer_len;

  gchat_random_bytes (other, sizeof other);
  wrong_key = gchat_endpoint_key_new_for_session (other, fixture->id, GCHAT_ENDPOINT_SIDE_CLIENT,
                                                  NULL);
  unknown = gchat_endpoint_key_new_for_session (fixture->key, unknown_id,
                                                GCHAT_ENDPOINT_SIDE_CLIENT, NULL);
  /* Sealed with another key, or for an id nobody has. */
  datagram = request (wrong_key, "Alice", &local, 1);
  assert_dropped (fixture, datagram);
  g_clear_pointer (&datagram, g_bytes_unref);
  datagram = request (unknown, "Alice", &local, 1);
  assert_dropped (fixture, datagram);
  g_clear_pointer (&datagram, g_bytes_unref);

  /* The right key, but another user's name in the body. */
  datagram = request (fixture->client_key, "Bob", &local, 1);
  assert_dropped (fixture, datagram);
  g_clear_pointer (&datagram, g_bytes_unref);

  /* A forged sequence number far ahead must not push the window past the genuine one. */
  good = request (fixture->client_key, "Alice", &local, 1);
  len = g_bytes_get_size (good);
  memcpy (buffer, g_bytes_get_data (good, NULL), len);
  memset (buffer + 8, 0xfe, 8);
  assert_dropped_raw (fixture, buffer, len);

  /* A flipped bit, a cut datagram and a cut header. */
  memcpy (buffer, g_bytes_get_data (good, NULL), len);
  buffer[len - 1] ^= 0x01;
  assert_dropped_raw (fixture, buffer, len);
  assert_dropped_raw (fixture, g_bytes_get_data (good, NULL), len - 1);
  assert_dropped_raw (fixture, g_bytes_get_data (good, NULL), 20);

  /* Another kind and the server's direction, with the right id. */
  memcpy (buffer, g_bytes_get_data (good, NULL), len);
  buffer[2] = GCHAT_DATAGRAM_KIND_DATA;
  assert_dropped_raw (fixture, buffer, len);
  memcpy (buffer, g_bytes_get_data (good, NULL), len);
  buffer[3] = 1;
  assert_dropped_raw (fixture, buffer, len);

  /* The genuine datagram still gets in, once: the same bytes again are a replay. */
  send_bytes (fixture->client, fixture->server, good);
  wait_received (fixture->listener, gchatd_endpoint_listener_get_n_received (fixture->listener)
                                    + 1);
  g_assert_cmpuint (gchatd_endpoint_listener_get_n_accepted (fixture->listener), ==, 1);
  g_assert_cmpuint (fixture->n_changed, ==, 1);
  assert_endpoints (fixture->listener, "Alice", expected);
  answer_len = receive_within (fixture->client, WAIT_US, buffer, sizeof buffer);
  g_assert_cmpint (answer_len, >, 0);
  assert_dropped (fixture, good);

  /* The server's own answer, sent back to it, is no request. */
  {
    g_autofree guint8 *answer = g_memdup2 (buffer, answer_len);

    assert_dropped_raw (fixture, answer, answer_len);
  }

  /* Too long (also just one byte too long), and noise. */
  memcpy (buffer, g_bytes_get_data (good, NULL), GCHAT_DATAGRAM_HEADER_SIZE);
  gchat_random_bytes (buffer + GCHAT_DATAGRAM_HEADER_SIZE,
                      sizeof buffer - GCHAT_DATAGRAM_HEADER_SIZE);
  assert_dropped_raw (fixture, buffer, sizeof buffer);
  assert_dropped_raw (fixture, buffer, GCHAT_DATAGRAM_MAX_SIZE + 1);
  assert_dropped_raw (fixture, buffer, 100);
  gchat_random_bytes (buffer, sizeof buffer);
  assert_dropped_raw (fixture, buffer, 100);
  assert_dropped_raw (fixture, buffer, 1);

  assert_endpoints (fixture->listener, "Alice", expected);
  g_assert_cmpuint (gchatd_endpoint_listener_get_n_answered (fixture->listener), ==, 1);
}

static void
test_unregister (Fixture       *fixture,
                 gconstpointer  data)
{
  GchatDatagramEndpoint local = endpoint ("10.0.0.5", 4000);
  g_autoptr(GBytes) datagram = NULL;
  g_auto(GStrv) endpoints = NULL;

  send_good_request (fixture, &local, 1);
  endpoints = gchatd_endpoint_listener_dup_endpoints (fixture->listener, "Alice");
  g_assert_cmpuint (g_strv_length (endpoints), ==, 2);

  gchatd_endpoint_listener_unregister (fixture->listener, "nobody");
  gchatd_endpoint_listener_unregister (fixture->listener, "ALICE");
  g_assert_null (gchatd_endpoint_listener_dup_endpoints (fixture->listener, "Alice"));

  datagram = request (fixture->client_key, "Alice", &local, 1);
  assert_dropped (fixture, datagram);
  g_assert_null (gchatd_endpoint_listener_dup_endpoints (fixture->listener, "Alice"));
}

static void
test_reregister (Fixture       *fixture,
                 gconstpointer  data)
{
  GchatDatagramEndpoint local = endpoint ("10.0.0.5", 4000);
  guint8 key[GCHAT_KEY_SIZE];
  g_autoptr(GchatEndpointKey) new_key = NULL;
  g_autoptr(GSocket) new_socket = NULL;
  g_autoptr(GBytes) datagram = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *first = client_endpoint (fixture);
  g_autofree char *second = NULL;
  guint16 new_port = 0;
  guint32 id;

  send_good_request (fixture, &local, 1);
  g_assert_cmpuint (fixture->n_changed, ==, 1);
  {
    const char *expected[] = { first, "10.0.0.5:4000", NULL };

    assert_endpoints (fixture->listener, "Alice", expected);
  }

  /* A new log-in replaces the session, whatever the letter case. */
  gchat_random_bytes (key, sizeof key);
  id = gchatd_endpoint_listener_register (fixture->listener, "alice", key, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (id, !=, 0);
  g_assert_null (gchatd_endpoint_listener_dup_endpoints (fixture->listener, "Alice"));
  datagram = request (fixture->client_key, "Alice", &local, 1);
  assert_dropped (fixture, datagram);

  new_key = gchat_endpoint_key_new_for_session (key, id, GCHAT_ENDPOINT_SIDE_CLIENT, NULL);
  new_socket = client_socket ("127.0.0.1", &new_port);
  g_assert_nonnull (new_socket);
  g_clear_pointer (&datagram, g_bytes_unref);
  datagram = request (new_key, "Alice", &local, 1);
  send_bytes (new_socket, fixture->server, datagram);
  wait_received (fixture->listener, gchatd_endpoint_listener_get_n_received (fixture->listener)
                                    + 1);
  g_assert_cmpuint (fixture->n_changed, ==, 2);
  g_assert_cmpstr (fixture->changed_user, ==, "alice");
  second = g_strdup_printf ("127.0.0.1:%u", (guint) new_port);
  {
    const char *expected[] = { second, "10.0.0.5:4000", NULL };

    assert_endpoints (fixture->listener, "Alice", expected);
  }
  assert_answer (new_socket, new_key, g_bytes_get_size (datagram), "alice", "127.0.0.1",
                 new_port);
  assert_no_answer (fixture->client);
}

/* An answer is never larger than its request: with no endpoint listed there is none. */
static void
test_no_amplification (Fixture       *fixture,
                       gconstpointer  data)
{
  GchatDatagramEndpoint local = endpoint ("10.0.0.5", 4000);
  g_autoptr(GBytes) datagram = request (fixture->client_key, "Alice", NULL, 0);
  g_autofree char *observed = client_endpoint (fixture);
  const char *expected[] = { observed, NULL };

  send_bytes (fixture->client, fixture->server, datagram);
  wait_received (fixture->listener, 1);
  g_assert_cmpuint (gchatd_endpoint_listener_get_n_accepted (fixture->listener), ==, 1);
  g_assert_cmpuint (fixture->n_changed, ==, 1);
  assert_endpoints (fixture->listener, "Alice", expected);
  assert_no_answer (fixture->client);
  g_assert_cmpuint (gchatd_endpoint_listener_get_n_answered (fixture->listener), ==, 0);

  /* One IPv4 endpoint takes as many bytes as the observed IPv4 one: answered. */
  send_good_request (fixture, &local, 1);
  g_assert_cmpuint (gchatd_endpoint_listener_get_n_answered (fixture->listener), ==, 1);
}

static void
test_local_filter (Fixture       *fixture,
                   gconstpointer  data)
{
  GchatDatagramEndpoint locals[] = {
    endpoint ("0.0.0.0", 1), endpoint ("224.0.0.1", 2), endpoint ("255.255.255.255", 3),
    endpoint ("::", 4), endpoint ("ff02::1", 5), endpoint ("127.0.0.1", fixture->client_port),
    endpoint ("10.0.0.1", 6), endpoint ("10.0.0.1", 6),
  };
  g_autofree char *observed = client_endpoint (fixture);
  const char *expected[] = { observed, "10.0.0.1:6", NULL };

  send_good_request (fixture, locals, G_N_ELEMENTS (locals));
  assert_endpoints (fixture->listener, "Alice", expected);
}

static void
test_most_endpoints (Fixture       *fixture,
                     gconstpointer  data)
{
  GchatDatagramEndpoint locals[GCHAT_DATAGRAM_MAX_ENDPOINTS];
  g_auto(GStrv) endpoints = NULL;
  g_autofree char *observed = client_endpoint (fixture);

  for (guint i = 0; i < G_N_ELEMENTS (locals); i++)
    {
      g_autofree char *ip = g_strdup_printf ("2001:db8::%x", i + 1);

      locals[i] = endpoint (ip, 65535);
    }
  send_good_request (fixture, locals, G_N_ELEMENTS (locals));
  endpoints = gchatd_endpoint_listener_dup_endpoints (fixture->listener, "Alice");
  g_assert_cmpuint (g_strv_length (endpoints), ==, GCHAT_ENDPOINT_LIST_MAX);
  g_assert_cmpstr (endpoints[0], ==, observed);
  g_assert_cmpstr (endpoints[8], ==, "[2001:db8::8]:65535");
  for (guint i = 0; endpoints[i] != NULL; i++)
    g_assert_cmpuint (strlen (endpoints[i]), <=, GCHAT_ENDPOINT_MAX);
}

/* More datagrams than one wakeup reads: all of them are read, none answered. */
static void
test_flood (Fixture       *fixture,
            gconstpointer  data)
{
  guint8 noise[64];
  const guint n = 3 * GCHATD_ENDPOINT_LISTENER_BATCH / 2;

  for (guint i = 0; i < n; i++)
    {
      gchat_random_bytes (noise, sizeof noise);
      send_raw (fixture->client, fixture->server, noise, sizeof noise);
    }
  wait_received (fixture->listener, n);
  g_assert_cmpuint (gchatd_endpoint_listener_get_n_dropped (fixture->listener), ==, n);
  g_assert_cmpuint (gchatd_endpoint_listener_get_n_answered (fixture->listener), ==, 0);
  assert_no_answer (fixture->client);
}

static void
unregister_on_change (GchatdEndpointListener *listener,
                      const char             *user,
                      gpointer                data)
{
  gchatd_endpoint_listener_unregister (listener, user);
}

static void
drop_listener_on_change (GchatdEndpointListener *listener,
                         const char             *user,
                         Fixture                *fixture)
{
  g_clear_object (&fixture->listener);
}

/* A handler may end the session, or drop the listener, from inside the signal. */
static void
test_reentrant (Fixture       *fixture,
                gconstpointer  data)
{
  GchatDatagramEndpoint local = endpoint ("10.0.0.5", 4000);
  g_autoptr(GBytes) first = request (fixture->client_key, "Alice", &local, 1);
  g_autoptr(GBytes) second = NULL;
  gint64 deadline = g_get_monotonic_time () + WAIT_US;
  guint tick;

  g_signal_connect (fixture->listener, "endpoint-changed", G_CALLBACK (unregister_on_change),
                    NULL);
  send_good_request (fixture, &local, 1);
  g_assert_null (gchatd_endpoint_listener_dup_endpoints (fixture->listener, "Alice"));
  g_clear_pointer (&first, g_bytes_unref);

  /* Two requests wait in the socket; the first one's signal drops the last reference. */
  fixture->id = gchatd_endpoint_listener_register (fixture->listener, "Alice", fixture->key, NULL);
  g_clear_pointer (&fixture->client_key, gchat_endpoint_key_free);
  fixture->client_key = gchat_endpoint_key_new_for_session (fixture->key, fixture->id,
                                                            GCHAT_ENDPOINT_SIDE_CLIENT, NULL);
  g_signal_handlers_disconnect_by_func (fixture->listener, unregister_on_change, NULL);
  g_signal_connect (fixture->listener, "endpoint-changed", G_CALLBACK (drop_listener_on_change),
                    fixture);
  first = request (fixture->client_key, "Alice", &local, 1);
  second = request (fixture->client_key, "Alice", &local, 1);
  send_bytes (fixture->client, fixture->server, first);
  send_bytes (fixture->client, fixture->server, second);
  tick = g_timeout_add (10, on_tick, NULL);
  while (fixture->listener != NULL && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  g_source_remove (tick);
  g_assert_null (fixture->listener);
}

static void
test_bind_error (Fixture       *fixture,
                 gconstpointer  data)
{
  g_autoptr(GInetSocketAddress) taken = inet_address (
    "127.0.0.1", gchatd_endpoint_listener_get_port (fixture->listener));
  g_autoptr(GchatdEndpointListener) second = NULL;
  g_autoptr(GError) error = NULL;

  second = gchatd_endpoint_listener_new (taken, &error);
  g_assert_error (error, GCHATD_ENDPOINT_LISTENER_ERROR, GCHATD_ENDPOINT_LISTENER_ERROR_BIND);
  g_assert_null (second);
  g_assert_nonnull (strstr (error->message, "127.0.0.1"));
}

/* "ip:port", or "[ip]:port" for IPv6. */
static char *
endpoint_text (const char *ip,
               guint16     port)
{
  if (strchr (ip, ':') != NULL)
    return g_strdup_printf ("[%s]:%u", ip, (guint) port);
  return g_strdup_printf ("%s:%u", ip, (guint) port);
}

/* A listener on @bind_ip and a client on @client_ip that lists @local_ip: the endpoint
 * observed must be the client's own address. Skips when the system lacks IPv6. */
static void
check_family (const char *bind_ip,
              const char *client_ip,
              const char *local_ip)
{
  g_autoptr(GInetSocketAddress) bind_address = inet_address (bind_ip, 0);
  g_autoptr(GchatdEndpointListener) listener = NULL;
  g_autoptr(GSocketAddress) server = NULL;
  g_autoptr(GSocket) client = NULL;
  g_autoptr(GchatEndpointKey) key = NULL;
  g_autoptr(GBytes) datagram = NULL;
  g_autofree char *observed = NULL;
  g_autofree char *listed = endpoint_text (local_ip, 9);
  GchatDatagramEndpoint local = endpoint (local_ip, 9);
  guint8 secret[GCHAT_KEY_SIZE];
  guint16 port = 0;
  guint32 id;

  listener = gchatd_endpoint_listener_new (bind_address, NULL);
  client = client_socket (client_ip, &port);
  if (listener == NULL || client == NULL)
    {
      g_test_skip ("IPv6 is not available here");
      return;
    }
  server = G_SOCKET_ADDRESS (inet_address (client_ip,
                                           gchatd_endpoint_listener_get_port (listener)));
  gchat_random_bytes (secret, sizeof secret);
  id = gchatd_endpoint_listener_register (listener, "bob", secret, NULL);
  key = gchat_endpoint_key_new_for_session (secret, id, GCHAT_ENDPOINT_SIDE_CLIENT, NULL);
  datagram = request (key, "bob", &local, 1);
  send_bytes (client, server, datagram);
  wait_received (listener, 1);
  g_assert_cmpuint (gchatd_endpoint_listener_get_n_accepted (listener), ==, 1);
  observed = endpoint_text (client_ip, port);
  {
    const char *expected[] = { observed, listed, NULL };

    assert_endpoints (listener, "bob", expected);
  }
  assert_answer (client, key, g_bytes_get_size (datagram), "bob", client_ip, port);
}

static void
test_ipv6 (void)
{
  check_family ("::1", "::1", "2001:db8::2");
}

/* An IPv4 client of a dual-stack socket is seen as ::ffff:127.0.0.1 and recorded as IPv4. */
static void
test_dual_stack (void)
{
  check_family ("::", "127.0.0.1", "10.0.0.7");
}

/* ---- The session endpoint keys added to the protocol library for this ---- */

static GBytes *
seal_text (GchatEndpointKey *key,
           const char       *text)
{
  g_autoptr(GError) error = NULL;
  GBytes *datagram = gchat_endpoint_key_seal (key, (const guint8 *) text, strlen (text), &error);

  g_assert_no_error (error);
  return datagram;
}

static void
assert_refused (GchatEndpointKey *key,
                GBytes           *datagram,
                gint              code)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) body = gchat_endpoint_key_open (key, g_bytes_get_data (datagram, NULL),
                                                    g_bytes_get_size (datagram), NULL, &error);

  g_assert_null (body);
  g_assert_error (error, GCHAT_DATAGRAM_ERROR, code);
}

static void
assert_opens (GchatEndpointKey *key,
              GBytes           *datagram,
              const char       *text)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) body = gchat_endpoint_key_open (key, g_bytes_get_data (datagram, NULL),
                                                    g_bytes_get_size (datagram), NULL, &error);

  g_assert_no_error (error);
  g_assert_cmpmem (g_bytes_get_data (body, NULL), g_bytes_get_size (body), text, strlen (text));
}

static void
test_session_keys (void)
{
  guint8 secret[GCHAT_KEY_SIZE];
  g_autoptr(GchatEndpointKey) client = NULL;
  g_autoptr(GchatEndpointKey) server = NULL;
  g_autoptr(GchatEndpointKey) other_id = NULL;
  g_autoptr(GBytes) up = NULL;
  g_autoptr(GBytes) down = NULL;
  GchatDatagramHeader header;
  const guint8 *up_sealed, *down_sealed;
  g_autoptr(GError) error = NULL;

  gchat_random_bytes (secret, sizeof secret);
  client = gchat_endpoint_key_new_for_session (secret, 7, GCHAT_ENDPOINT_SIDE_CLIENT, &error);
  g_assert_no_error (error);
  server = gchat_endpoint_key_new_for_session (secret, 7, GCHAT_ENDPOINT_SIDE_SERVER, &error);
  g_assert_no_error (error);
  other_id = gchat_endpoint_key_new_for_session (secret, 8, GCHAT_ENDPOINT_SIDE_SERVER, NULL);
  g_assert_cmpuint (gchat_endpoint_key_get_endpoint_id (client), ==, 7);

  up = seal_text (client, "same");
  down = seal_text (server, "same");
  g_assert_true (gchat_datagram_peek_header (g_bytes_get_data (up, NULL), g_bytes_get_size (up),
                                             &header, NULL));
  g_assert_cmpuint (header.kind, ==, GCHAT_DATAGRAM_KIND_ENDPOINT);
  g_assert_cmpuint (header.direction, ==, 0);
  g_assert_cmpuint (header.key_id, ==, 7);
  g_assert_cmpuint (header.seq, ==, 0);
  g_assert_true (gchat_datagram_peek_header (g_bytes_get_data (down, NULL),
                                             g_bytes_get_size (down), &header, NULL));
  g_assert_cmpuint (header.direction, ==, 1);
  g_assert_cmpuint (header.seq, ==, 0);
  /* Same text, same seq, other direction: another key, so no keystream is shared. */
  up_sealed = (const guint8 *) g_bytes_get_data (up, NULL) + GCHAT_DATAGRAM_HEADER_SIZE;
  down_sealed = (const guint8 *) g_bytes_get_data (down, NULL) + GCHAT_DATAGRAM_HEADER_SIZE;
  g_assert_cmpint (memcmp (up_sealed, down_sealed, 4), !=, 0);

  /* Each side takes only the other side's datagrams, for its own id. */
  assert_refused (server, down, GCHAT_DATAGRAM_ERROR_UNKNOWN_KEY);
  assert_refused (client, up, GCHAT_DATAGRAM_ERROR_UNKNOWN_KEY);
  assert_refused (other_id, up, GCHAT_DATAGRAM_ERROR_UNKNOWN_KEY);
  assert_opens (server, up, "same");
  assert_opens (client, down, "same");
  assert_refused (server, up, GCHAT_DATAGRAM_ERROR_REPLAY);
  assert_refused (client, down, GCHAT_DATAGRAM_ERROR_REPLAY);
}

/* The directions are keyed as PROTOCOL.md §7.5 writes: HKDF-Expand(export, label, 32). */
static void
test_session_key_labels (void)
{
  guint8 secret[GCHAT_KEY_SIZE], c2s[GCHAT_KEY_SIZE];
  const char *label = "gchat v1 endpoint client to server";
  g_autoptr(GchatEndpointKey) client = NULL;
  g_autoptr(GBytes) up = NULL;
  g_autoptr(GchatAead) aead = NULL;
  guint8 nonce[GCHAT_AEAD_NONCE_SIZE] = { 0 };
  guint8 plain[4];
  const guint8 *bytes;
  gsize len;

  gchat_random_bytes (secret, sizeof secret);
  client = gchat_endpoint_key_new_for_session (secret, 1, GCHAT_ENDPOINT_SIDE_CLIENT, NULL);
  up = seal_text (client, "abcd");
  bytes = g_bytes_get_data (up, &len);
  g_assert_true (gchat_hkdf_expand (secret, sizeof secret, (const guint8 *) label,
                                    strlen (label), c2s, sizeof c2s, NULL));
  aead = gchat_aead_new (c2s, NULL);
  g_assert_true (gchat_aead_open (aead, nonce, bytes, GCHAT_DATAGRAM_HEADER_SIZE,
                                  bytes + GCHAT_DATAGRAM_HEADER_SIZE,
                                  len - GCHAT_DATAGRAM_HEADER_SIZE, plain, NULL));
  g_assert_cmpmem (plain, sizeof plain, "abcd", 4);
}

/* The log-in `result` carries the endpoint id, 1..2^32 − 1 (PROTOCOL.md §5.2). */
static void
test_result_endpoint_id (void)
{
  const char *bad[] = {
    "{\"type\":\"result\",\"request\":\"auth\",\"ok\":true,\"endpoint_id\":0}",
    "{\"type\":\"result\",\"request\":\"auth\",\"ok\":true,\"endpoint_id\":4294967296}",
  };
  const char *good = "{\"type\":\"result\",\"request\":\"auth\",\"ok\":true,"
                     "\"endpoint_id\":4294967295}";
  g_autoptr(GchatMessage) message = NULL;
  g_autoptr(GError) error = NULL;

  message = gchat_message_decode ((const guint8 *) good, strlen (good), &error);
  g_assert_no_error (error);
  g_assert_cmpint (gchat_message_get_int (message, "endpoint_id"), ==, G_MAXUINT32);
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GchatMessage) refused = NULL;

      refused = gchat_message_decode ((const guint8 *) bad[i], strlen (bad[i]), &error);
      g_assert_null (refused);
      g_assert_nonnull (error);
      g_clear_error (&error);
    }
}

int
main (int    argc,
      char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  g_assert_true (gchat_crypto_init (NULL));

#define ADD_TEST(path, func) \
  g_test_add (path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD_TEST ("/endpoint-listener/accepted", test_accepted);
  ADD_TEST ("/endpoint-listener/dropped", test_dropped);
  ADD_TEST ("/endpoint-listener/unregister", test_unregister);
  ADD_TEST ("/endpoint-listener/reregister", test_reregister);
  ADD_TEST ("/endpoint-listener/no-amplification", test_no_amplification);
  ADD_TEST ("/endpoint-listener/local-filter", test_local_filter);
  ADD_TEST ("/endpoint-listener/most-endpoints", test_most_endpoints);
  ADD_TEST ("/endpoint-listener/flood", test_flood);
  ADD_TEST ("/endpoint-listener/reentrant", test_reentrant);
  ADD_TEST ("/endpoint-listener/bind-error", test_bind_error);
  g_test_add_func ("/endpoint-listener/ipv6", test_ipv6);
  g_test_add_func ("/endpoint-listener/dual-stack", test_dual_stack);
  g_test_add_func ("/endpoint-listener/session-keys", test_session_keys);
  g_test_add_func ("/endpoint-listener/session-key-labels", test_session_key_labels);
  g_test_add_func ("/endpoint-listener/result-endpoint-id", test_result_endpoint_id);

  status = g_test_run ();
  gchat_crypto_shutdown ();
  return status;
}
