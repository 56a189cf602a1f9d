/* SPDX-License-Identifier: GPL-3.0-or-later */
/* What every gchatd test shares: a blocking test client, an in-process server, the daemon. */

#include "config.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <glib/gstdio.h>

#include "gchat-test-util.h"
#include "gchatd-test-client.h"

static GchatRsaKey *server_key;

GchatRsaKey *
test_server_key_get (void)
{
  if (server_key == NULL)
    {
      g_autoptr(GError) error = NULL;

      server_key = gchat_rsa_key_generate (2048, &error);
      g_assert_no_error (error);
    }
  return server_key;
}

void
test_server_key_set (GchatRsaKey *key)
{
  g_set_object (&server_key, key);
}

/* The in-process server */

static char *
fixture_config_text (const char *extra)
{
  /* A tiny Argon2id cost, unless the test sets its own: most tests are about the protocol,
   * not the hash. */
  const char *cost = extra != NULL && strstr (extra, "argon2_memory_kib") != NULL
                       ? ""
                       : "argon2_memory_kib: 64\nargon2_iterations: 1\n";

  return g_strdup_printf ("server_address: 127.0.0.1\n"
                          "server_certificate: server-public.pem\n"
                          "server_privateKey: server-private.pem\n"
                          "data_base: users.json\n"
                          "%s%s\n", cost, extra != NULL ? extra : "");
}

void
test_fixture_setup (TestFixture   *f,
                    gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatConfig) config = NULL;
  g_autofree char *private_path = NULL;
  g_autofree char *public_path = NULL;
  g_autofree char *text = fixture_config_text (data);

  f->dir = gchat_test_make_dir ("gchatd-test");
  private_path = g_build_filename (f->dir, "server-private.pem", NULL);
  public_path = g_build_filename (f->dir, "server-public.pem", NULL);
  g_assert_true (gchat_rsa_key_save_private (test_server_key_get (), private_path, &error));
  g_assert_true (gchat_rsa_key_save_public (test_server_key_get (), public_path, &error));
  config = gchat_config_new_from_data (text, strlen (text), "test", f->dir, &error);
  g_assert_no_error (error);
  f->server = gchatd_server_new (config, &error);
  g_assert_no_error (error);
  gchatd_server_set_port (f->server, 0);
  /* A YAML comment sets what the config cannot: an idle deadline shorter than its 10 s floor.
   * Under valgrind (GCHAT_TEST_SLOW=1) a log-in alone can outlast a short one, and the joins a
   * presence batch should gather arrive ten times slower, so both are ten times longer. */
  if (data != NULL && strstr (data, "# idle-ms ") != NULL)
    gchatd_server_set_idle_timeout (f->server,
                                    (guint) gchat_test_scale_us (
                                      g_ascii_strtoull (strstr (data, "# idle-ms ") + 10,
                                                        NULL, 10)));
  if (data != NULL && strstr (data, "# presence-ms ") != NULL)
    gchatd_server_set_presence_batch (f->server,
                                      (guint) gchat_test_scale_us (
                                        g_ascii_strtoull (strstr (data, "# presence-ms ") + 14,
                                                          NULL, 10)));
  g_assert_true (gchatd_server_start (f->server, &error));
  g_assert_no_error (error);
  f->port = gchatd_server_get_port (f->server);
  g_assert_cmpuint (f->port, >, 0);
}

static gboolean
no_connections (gpointer data)
{
  return gchatd_server_get_n_connections (data) == 0;
}

void
test_fixture_teardown (TestFixture   *f,
                       gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  gchatd_server_stop (f->server);
  test_iterate_until (no_connections, f->server);
  g_assert_true (gchatd_user_store_flush_sync (gchatd_server_get_store (f->server), 5000, &error));
  g_clear_object (&f->server);
  /* Let the last callbacks of the worker threads run. */
  while (g_main_context_iteration (NULL, FALSE))
    ;
  test_remove_dir (f->dir);
  g_free (f->dir);
}

/* The client */

TestClient *
test_client_connect_with_buffer (guint16 port,
                                 int     receive_buffer)
{
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new (loopback, port);
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GError) error = NULL;
  TestClient *c = g_new0 (TestClient, 1);

  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP,
                         &error);
  g_assert_no_error (error);
  /* Before connecting, so that the window the client announces is small from the start. */
  if (receive_buffer > 0)
    g_assert_true (g_socket_set_option (socket, SOL_SOCKET, SO_RCVBUF, receive_buffer, &error));
  /* The kernel completes the connection from the listen backlog: no loop is needed here. */
  g_assert_true (g_socket_connect (socket, address, NULL, &error));
  g_assert_no_error (error);
  c->connection = g_socket_connection_factory_create_connection (socket);
  c->socket = g_socket_connection_get_socket (c->connection);
  g_socket_set_blocking (c->socket, FALSE);
  c->decoder = gchat_frame_decoder_new (GCHAT_FRAME_MAX_PAYLOAD);
  c->handshake = gchat_handshake_new_client (test_server_key_get ());
  return c;
}

TestClient *
test_client_connect (guint16 port)
{
  return test_client_connect_with_buffer (port, 0);
}

void
test_client_free (TestClient *c)
{
  g_clear_object (&c->connection);
  g_clear_pointer (&c->handshake, gchat_handshake_free);
  g_clear_pointer (&c->channel, gchat_channel_free);
  g_clear_pointer (&c->decoder, gchat_frame_decoder_free);
  g_clear_pointer (&c->client_key_frame, g_bytes_unref);
  g_clear_pointer (&c->last_frame, g_bytes_unref);
  g_free (c);
}

void
test_client_send_raw (TestClient   *c,
                      const guint8 *data,
                      gsize         len)
{
  gint64 deadline = g_get_monotonic_time () + TEST_WAIT_TIMEOUT_US;

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

/* Returns how many bytes were read. */
static gsize
read_available (TestClient *c)
{
  gsize total = 0;

  while (!c->closed)
    {
      g_autoptr(GError) error = NULL;
      char buffer[4096];
      gssize n = g_socket_receive (c->socket, buffer, sizeof buffer, NULL, &error);

      if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        break;
      if (n <= 0)
        c->closed = TRUE; /* the end of the stream, or a reset */
      else
        {
          g_assert_true (gchat_frame_decoder_push (c->decoder, (guint8 *) buffer, n, NULL));
          total += n;
        }
    }
  return total;
}

void
test_client_read_available (TestClient *c)
{
  read_available (c);
}

GBytes *
test_client_recv_frame (TestClient *c)
{
  gint64 deadline = g_get_monotonic_time () + TEST_WAIT_TIMEOUT_US;
  GBytes *payload;

  while ((payload = gchat_frame_decoder_pop (c->decoder)) == NULL && !c->closed)
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("Timed out waiting for a frame");
      g_main_context_iteration (NULL, FALSE);
      if (read_available (c) == 0 && !c->closed)
        g_socket_condition_timed_wait (c->socket, G_IO_IN, 1000, NULL, NULL);
    }
  return payload;
}

static GBytes *
frame_of (GBytes *payload)
{
  return gchat_frame_encode (g_bytes_get_data (payload, NULL), g_bytes_get_size (payload), NULL);
}

void
test_client_handshake (TestClient *c)
{
  g_autoptr(GBytes) hello = test_client_recv_frame (c);
  g_autoptr(GBytes) client_key = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_nonnull (hello);
  g_assert_true (gchat_handshake_step (c->handshake, hello, &client_key, &error));
  g_assert_no_error (error);
  c->client_key_frame = frame_of (client_key);
  test_client_send_raw (c, g_bytes_get_data (c->client_key_frame, NULL),
                        g_bytes_get_size (c->client_key_frame));
  c->channel = gchat_handshake_steal_channel (c->handshake);
}

void
test_client_resume_handshake (TestClient   *c,
                              GBytes       *ticket,
                              const guint8 *secret)
{
  g_autoptr(GBytes) hello = test_client_recv_frame (c);
  g_autoptr(GBytes) message = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_nonnull (hello);
  g_clear_pointer (&c->handshake, gchat_handshake_free);
  c->handshake = gchat_handshake_new_client_resume (test_server_key_get (), ticket, secret);
  g_assert_true (gchat_handshake_step (c->handshake, hello, &message, &error));
  g_assert_no_error (error);
  c->client_key_frame = frame_of (message);
  test_client_send_raw (c, g_bytes_get_data (c->client_key_frame, NULL),
                        g_bytes_get_size (c->client_key_frame));
  c->channel = gchat_handshake_steal_channel (c->handshake);
}

void
test_client_send (TestClient   *c,
                  GchatMessage *message)
{
  g_autoptr(GBytes) json = gchat_message_encode (message, NULL);

  g_assert_nonnull (json);
  g_clear_pointer (&c->last_frame, g_bytes_unref);
  c->last_frame = gchat_channel_seal (c->channel, g_bytes_get_data (json, NULL),
                                      g_bytes_get_size (json), NULL);
  test_client_send_raw (c, g_bytes_get_data (c->last_frame, NULL),
                        g_bytes_get_size (c->last_frame));
}

static GchatMessage *
open_message (TestClient *c,
              GBytes     *payload)
{
  g_autoptr(GBytes) plain = NULL;
  g_autoptr(GError) error = NULL;
  GchatMessage *message;

  plain = gchat_channel_open (c->channel, payload, &error);
  g_assert_no_error (error);
  message = gchat_message_decode (g_bytes_get_data (plain, NULL), g_bytes_get_size (plain),
                                  &error);
  g_assert_no_error (error);
  return message;
}

GchatMessage *
test_client_pop_message (TestClient *c)
{
  g_autoptr(GBytes) payload = gchat_frame_decoder_pop (c->decoder);

  return payload != NULL ? open_message (c, payload) : NULL;
}

GchatMessage *
test_client_recv (TestClient *c)
{
  g_autoptr(GBytes) payload = test_client_recv_frame (c);

  return payload != NULL ? open_message (c, payload) : NULL;
}

GchatMessage *
test_client_expect (TestClient       *c,
                    GchatMessageType  type)
{
  for (;;)
    {
      g_autoptr(GchatMessage) message = test_client_recv (c);
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

void
test_client_wait_closed (TestClient *c,
                         gboolean    silently)
{
  while (!c->closed)
    {
      g_autoptr(GBytes) payload = test_client_recv_frame (c);

      if (silently)
        g_assert_null (payload);
    }
}

void
test_client_expect_closed (TestClient *c)
{
  test_client_wait_closed (c, FALSE);
}

GchatMessage *
test_client_request (TestClient *c,
                     const char *type,
                     const char *user,
                     const char *password)
{
  GchatMessageType message_type;
  g_autoptr(GchatMessage) request = NULL;

  g_assert_true (gchat_message_type_from_string (type, &message_type));
  request = gchat_message_new (message_type);
  gchat_message_set_string (request, "user", user);
  if (password != NULL)
    gchat_message_set_string (request, "password", password);
  gchat_message_set_int (request, "id", 42);
  test_client_send (c, request);
  return test_client_expect (c, message_type == GCHAT_MESSAGE_TALK ? GCHAT_MESSAGE_PAIR_KEY
                                                                    : GCHAT_MESSAGE_RESULT);
}

void
test_assert_result (GchatMessage *result,
                    const char   *code)
{
  g_assert_cmpint (gchat_message_get_message_type (result), ==, GCHAT_MESSAGE_RESULT);
  g_assert_cmpstr (gchat_message_get_string (result, "code"), ==, code);
  g_assert_true (gchat_message_get_bool (result, "ok") == (code == NULL));
  g_assert_cmpint (gchat_message_get_int (result, "id"), ==, 42);
}

TestClient *
test_client_log_in (guint16     port,
                    const char *type,
                    const char *user,
                    const char *password)
{
  TestClient *c = test_client_connect (port);
  g_autoptr(GchatMessage) result = NULL;
  g_autoptr(GchatMessage) users = NULL;

  test_client_handshake (c);
  result = test_client_request (c, type, user, password);
  test_assert_result (result, NULL);
  users = test_client_expect (c, GCHAT_MESSAGE_USERS);
  return c;
}

gboolean
test_message_has_name (GchatMessage *message,
                       const char   *field,
                       const char   *name)
{
  g_auto(GStrv) names = gchat_message_dup_strv (message, field);

  return names != NULL && g_strv_contains ((const char * const *) names, name);
}

/* Batches may also hold earlier changes, such as the client's own log-in. */
void
test_client_expect_presence (TestClient *c,
                             const char *field,
                             const char *name)
{
  for (;;)
    {
      g_autoptr(GchatMessage) presence = test_client_expect (c, GCHAT_MESSAGE_PRESENCE);

      if (test_message_has_name (presence, field, name))
        return;
    }
}

void
test_client_ping (TestClient *c)
{
  static gint64 next_id = 1000;
  g_autoptr(GchatMessage) ping = gchat_message_new (GCHAT_MESSAGE_PING);
  g_autoptr(GchatMessage) pong = NULL;
  gint64 id = next_id++;

  gchat_message_set_int (ping, "id", id);
  test_client_send (c, ping);
  pong = test_client_expect (c, GCHAT_MESSAGE_PONG);
  g_assert_cmpint (gchat_message_get_int (pong, "id"), ==, id);
}

void
test_client_send_json (TestClient *c,
                       const char *json)
{
  g_clear_pointer (&c->last_frame, g_bytes_unref);
  c->last_frame = gchat_channel_seal (c->channel, (const guint8 *) json, strlen (json), NULL);
  g_assert_nonnull (c->last_frame);
  test_client_send_raw (c, g_bytes_get_data (c->last_frame, NULL),
                        g_bytes_get_size (c->last_frame));
}

void
test_client_relay (TestClient   *c,
                   const char   *to,
                   const guint8 *datagram,
                   gsize         len)
{
  g_autoptr(GchatMessage) relay = gchat_message_new (GCHAT_MESSAGE_RELAY);

  gchat_message_set_string (relay, "to", to);
  gchat_message_set_bytes (relay, "datagram", datagram, len);
  test_client_send (c, relay);
}

void
test_client_send_post (TestClient *c,
                       const char *to,
                       gint64      msg_id,
                       const char *text,
                       gsize       len,
                       gint64      id)
{
  g_autoptr(GchatMessage) post = gchat_message_new (GCHAT_MESSAGE_POST);

  gchat_message_set_string (post, "to", to);
  gchat_message_set_int (post, "msg_id", msg_id);
  gchat_message_set_bytes (post, "text", (const guint8 *) text, len);
  if (id >= 0)
    gchat_message_set_int (post, "id", id);
  test_client_send (c, post);
}

GchatMessage *
test_client_post (TestClient *c,
                  const char *to,
                  gint64      msg_id,
                  const char *text)
{
  GchatMessage *result;

  test_client_send_post (c, to, msg_id, text, strlen (text), 42);
  result = test_client_expect (c, GCHAT_MESSAGE_RESULT);
  g_assert_cmpstr (gchat_message_get_string (result, "request"), ==, "post");
  return result;
}

static void
send_ack (TestClient       *c,
          GchatMessageType  type,
          const char       *field,
          gint64            value)
{
  g_autoptr(GchatMessage) ack = gchat_message_new (type);

  gchat_message_set_int (ack, field, value);
  test_client_send (c, ack);
}

void
test_client_mail_ack (TestClient *c,
                      gint64      mail_id)
{
  send_ack (c, GCHAT_MESSAGE_MAIL_ACK, "mail_id", mail_id);
}

void
test_client_receipt_ack (TestClient *c,
                         gint64      receipt_id)
{
  send_ack (c, GCHAT_MESSAGE_RECEIPT_ACK, "receipt_id", receipt_id);
}

void
test_clients_poll (TestClient **clients,
                   guint        n,
                   int          timeout_ms)
{
  g_autofree GPollFD *fds = g_new0 (GPollFD, MAX (n, 1));
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

/* The daemon */

TestDaemon *
test_daemon_new (const char *extra)
{
  return test_daemon_new_full (extra, NULL, NULL);
}

TestDaemon *
test_daemon_new_full (const char         *extra,
                      const char         *data_dir,
                      const char * const *env)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *key_path = NULL;
  g_autofree char *store_path = NULL;
  g_autofree char *config = NULL;
  TestDaemon *d;

  if (g_getenv ("GCHATD") == NULL)
    {
      g_test_skip ("GCHATD is not set");
      return NULL;
    }
  d = g_new0 (TestDaemon, 1);
  d->dir = gchat_test_make_dir ("gchatd-daemon");
  d->config_path = g_build_filename (d->dir, "config.yaml", NULL);
  d->log_path = g_build_filename (d->dir, "gchatd.log", NULL);
  d->env = g_strdupv ((char **) env);
  /* The key lives with the store, where gchatd looks for it by default. */
  key_path = g_build_filename (data_dir != NULL ? data_dir : d->dir, "server-private.pem", NULL);
  store_path = data_dir != NULL ? g_build_filename (data_dir, "users.json", NULL)
                                : g_strdup ("users.json");
  d->port = test_find_free_port ();
  config = g_strdup_printf ("server_address: 127.0.0.1\nserver_port: %u\n"
                            "data_base: %s\nargon2_memory_kib: 64\n"
                            "argon2_iterations: 1\n%s", d->port, store_path,
                            extra != NULL ? extra : "");
  g_assert_true (g_file_set_contents (d->config_path, config, -1, &error));
  g_assert_true (gchat_rsa_key_save_private (test_server_key_get (), key_path, &error));
  test_daemon_start (d);
  return d;
}

void
test_daemon_start (TestDaemon *d)
{
  g_autoptr(GSubprocessLauncher) launcher = test_launcher_new (G_SUBPROCESS_FLAGS_STDERR_MERGE);
  g_autoptr(GPtrArray) argv = NULL;
  g_autoptr(GError) error = NULL;
  gint64 start = g_get_monotonic_time ();

  g_assert_null (d->process);
  for (guint i = 0; d->env != NULL && d->env[i] != NULL; i++)
    {
      g_auto(GStrv) pair = g_strsplit (d->env[i], "=", 2);

      g_assert_nonnull (pair[1]);
      g_subprocess_launcher_setenv (launcher, pair[0], pair[1], TRUE);
    }
  /* Appended to, so that the log of every run is kept for the test to read; GLib writes debug
   * messages to standard output, the others to standard error. */
  g_subprocess_launcher_take_stdout_fd (launcher, open (d->log_path, O_WRONLY | O_CREAT | O_APPEND,
                                                        0600));
  argv = gchat_test_argv_new (g_getenv ("GCHATD"));
  g_ptr_array_add (argv, (gpointer) "--verbose");
  g_ptr_array_add (argv, (gpointer) "--config");
  g_ptr_array_add (argv, d->config_path);
  g_ptr_array_add (argv, NULL);
  d->process = g_subprocess_launcher_spawnv (launcher, (const char * const *) argv->pdata, &error);
  g_assert_no_error (error);
  while (!test_port_in_use (d->port))
    {
      g_assert_cmpint (g_get_monotonic_time () - start, <, TEST_WAIT_TIMEOUT_US);
      g_usleep (20000);
    }
}

void
test_daemon_stop (TestDaemon *d,
                  int         signal_number)
{
  g_autoptr(GError) error = NULL;

  g_assert_nonnull (d->process);
  g_subprocess_send_signal (d->process, signal_number);
  g_assert_true (g_subprocess_wait (d->process, NULL, &error));
  g_assert_no_error (error);
  if (signal_number == SIGTERM)
    {
      g_assert_true (g_subprocess_get_if_exited (d->process));
      g_assert_cmpint (g_subprocess_get_exit_status (d->process), ==, 0);
    }
  g_clear_object (&d->process);
}

char *
test_daemon_dup_log (TestDaemon *d)
{
  g_autoptr(GError) error = NULL;
  char *log = NULL;

  g_assert_true (g_file_get_contents (d->log_path, &log, NULL, &error));
  return log;
}

void
test_daemon_free (TestDaemon *d)
{
  if (d->process != NULL)
    test_daemon_stop (d, SIGTERM);
  test_remove_dir (d->dir);
  g_free (d->dir);
  g_free (d->config_path);
  g_free (d->log_path);
  g_strfreev (d->env);
  g_free (d);
}

/* Helpers */

void
test_iterate_until (gboolean (*done) (gpointer),
                    gpointer  data)
{
  gint64 deadline = g_get_monotonic_time () + TEST_WAIT_TIMEOUT_US;

  while (!done (data))
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("Timed out waiting");
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (1000);
    }
}

void
test_remove_dir (const char *path)
{
  g_assert_true (gchat_test_remove_tree (path));
}

guint16
test_find_free_port (void)
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

gboolean
test_port_in_use (guint16 port)
{
  g_autoptr(GSocketClient) socket_client = g_socket_client_new ();
  g_autoptr(GSocketConnection) connection =
    g_socket_client_connect_to_host (socket_client, "127.0.0.1", port, NULL, NULL);

  return connection != NULL;
}

#ifdef __linux__
static void
die_with_parent (gpointer data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}
#endif

GSubprocessLauncher *
test_launcher_new (GSubprocessFlags flags)
{
  GSubprocessLauncher *launcher = g_subprocess_launcher_new (flags);

#ifdef __linux__
  g_subprocess_launcher_set_child_setup (launcher, die_with_parent, NULL, NULL);
#endif
  return launcher;
}

/* @argv0 (under GCHAT_TEST_WRAPPER, when set), then the arguments in @args up to NULL. */
static GPtrArray *
collect_argv (const char *argv0,
              va_list     args)
{
  GPtrArray *argv = gchat_test_argv_new (argv0);
  const char *arg;

  while ((arg = va_arg (args, const char *)) != NULL)
    g_ptr_array_add (argv, (gpointer) arg);
  g_ptr_array_add (argv, NULL);
  return argv;
}

GSubprocess *
test_spawn_gchatd (GSubprocessFlags   flags,
                   GError           **error,
                   ...)
{
  g_autoptr(GSubprocessLauncher) launcher = test_launcher_new (flags);
  g_autoptr(GPtrArray) argv = NULL;
  va_list args;

  va_start (args, error);
  argv = collect_argv (g_getenv ("GCHATD"), args);
  va_end (args);
  return g_subprocess_launcher_spawnv (launcher, (const char * const *) argv->pdata, error);
}

int
test_run_gchatctl (const char  *password,
                   char       **err,
                   ...)
{
  g_autoptr(GPtrArray) argv = NULL;
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *input = password ? g_strconcat (password, "\n", NULL) : NULL;
  va_list args;

  va_start (args, err);
  argv = collect_argv (g_getenv ("GCHATCTL"), args);
  va_end (args);
  process = g_subprocess_newv ((const char * const *) argv->pdata,
                               G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_SILENCE |
                               G_SUBPROCESS_FLAGS_STDERR_PIPE, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_communicate_utf8 (process, input, NULL, NULL, err, &error));
  g_assert_no_error (error);
  return g_subprocess_get_exit_status (process);
}
