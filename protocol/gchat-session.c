/* SPDX-License-Identifier: GPL-3.0-or-later */
/* One client connection to gchatd: TCP, the handshake, and sealed messages in and out. */

#include "config.h"

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <glib/gi18n-lib.h>

#include "gchat-channel.h"
#include "gchat-client.h"
#include "gchat-crypto.h"
#include "gchat-frame.h"
#include "gchat-handshake.h"
#include "gchat-session.h"

/* How long connecting and the server's hello may take together. */
#define CONNECT_TIMEOUT_S 10
#define READ_CHUNK        (16 * 1024)

struct _GchatSession
{
  GObject             parent_instance;

  GSocketConnection  *connection;
  GCancellable       *cancellable;
  GchatFrameDecoder  *decoder;
  GchatChannel       *channel;
  GchatRsaKey        *server_key;
  GBytes             *hello;
  guint8              endpoint_key[32];
  guint8              read_buffer[READ_CHUNK];

  GTask              *connect_task;  /* until the hello came */
  guint               connect_timeout;

  GQueue              out;           /* of GBytes, the head being written */
  gsize               unsent;
  gboolean            writing;
  gint64              last_sent;

  gboolean            started;
  gboolean            closed;
};

G_DEFINE_FINAL_TYPE (GchatSession, gchat_session, G_TYPE_OBJECT)

enum {
  SIGNAL_MESSAGE,
  SIGNAL_CLOSED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

static void read_next (GchatSession *self);

static void
gchat_session_dispose (GObject *object)
{
  GchatSession *self = GCHAT_SESSION (object);

  self->closed = TRUE;
  g_cancellable_cancel (self->cancellable);
  g_clear_handle_id (&self->connect_timeout, g_source_remove);
  if (self->connection != NULL)
    g_io_stream_close (G_IO_STREAM (self->connection), NULL, NULL);
  g_clear_object (&self->connection);
  g_queue_clear_full (&self->out, (GDestroyNotify) g_bytes_unref);

  G_OBJECT_CLASS (gchat_session_parent_class)->dispose (object);
}

static void
gchat_session_finalize (GObject *object)
{
  GchatSession *self = GCHAT_SESSION (object);

  g_clear_object (&self->cancellable);
  g_clear_pointer (&self->decoder, gchat_frame_decoder_free);
  g_clear_pointer (&self->channel, gchat_channel_free);
  g_clear_object (&self->server_key);
  g_clear_pointer (&self->hello, g_bytes_unref);
  gchat_memzero (self->endpoint_key, sizeof self->endpoint_key);
  g_assert (self->connect_task == NULL);

  G_OBJECT_CLASS (gchat_session_parent_class)->finalize (object);
}

static void
gchat_session_class_init (GchatSessionClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = gchat_session_dispose;
  object_class->finalize = gchat_session_finalize;

  signals[SIGNAL_MESSAGE] =
    g_signal_new ("message", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                  G_TYPE_NONE, 1, GCHAT_TYPE_MESSAGE);
  signals[SIGNAL_CLOSED] =
    g_signal_new ("closed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                  G_TYPE_NONE, 1, G_TYPE_POINTER);
}

static void
gchat_session_init (GchatSession *self)
{
  self->cancellable = g_cancellable_new ();
  self->decoder = gchat_frame_decoder_new (GCHAT_FRAME_MAX_HANDSHAKE_PAYLOAD);
  g_queue_init (&self->out);
}

/* Ends the session once: a pending connect fails with @why, a started one emits "closed". */
static void
session_fail (GchatSession *self,
              const GError *why)
{
  G_GNUC_UNUSED g_autoptr(GchatSession) hold = g_object_ref (self);

  if (self->closed)
    return;
  self->closed = TRUE;
  g_cancellable_cancel (self->cancellable);
  g_clear_handle_id (&self->connect_timeout, g_source_remove);
  if (self->connection != NULL)
    g_io_stream_close (G_IO_STREAM (self->connection), NULL, NULL);
  g_queue_clear_full (&self->out, (GDestroyNotify) g_bytes_unref);
  self->unsent = 0;

  if (self->connect_task != NULL)
    {
      g_autoptr(GTask) task = g_steal_pointer (&self->connect_task);

      g_task_return_error (task, why != NULL ? g_error_copy (why)
                                             : g_error_new_literal (G_IO_ERROR,
                                                                    G_IO_ERROR_CANCELLED,
                                                                    _("Cancelled")));
      return;
    }
  g_signal_emit (self, signals[SIGNAL_CLOSED], 0, why);
}

static void
session_fail_literal (GchatSession *self,
                      gint          code,
                      const char   *message)
{
  g_autoptr(GError) error = g_error_new_literal (GCHAT_CLIENT_ERROR, code, message);

  session_fail (self, error);
}

/* Reading */

static void
hello_received (GchatSession *self,
                GBytes       *hello)
{
  g_autoptr(GTask) task = g_steal_pointer (&self->connect_task);
  g_autoptr(GError) error = NULL;

  g_clear_handle_id (&self->connect_timeout, g_source_remove);
  self->server_key = gchat_handshake_hello_get_server_key (hello, &error);
  if (self->server_key == NULL)
    {
      self->connect_task = g_steal_pointer (&task);
      session_fail_literal (self, GCHAT_CLIENT_ERROR_PROTOCOL,
                            _("The server’s greeting is not one this version understands"));
      return;
    }
  self->hello = g_bytes_ref (hello);
  g_task_return_pointer (task, g_object_ref (self), g_object_unref);
}

static gboolean
message_received (GchatSession *self,
                  GBytes       *payload)
{
  g_autoptr(GBytes) plain = NULL;
  g_autoptr(GchatMessage) message = NULL;
  g_autoptr(GError) error = NULL;

  plain = gchat_channel_open (self->channel, payload, &error);
  if (plain != NULL)
    message = gchat_message_decode (g_bytes_get_data (plain, NULL), g_bytes_get_size (plain),
                                    &error);
  if (message == NULL)
    {
      g_debug ("Message from the server refused: %s", error->message);
      session_fail_literal (self, GCHAT_CLIENT_ERROR_PROTOCOL,
                            _("The server sent a message this version does not understand"));
      return FALSE;
    }
  g_signal_emit (self, signals[SIGNAL_MESSAGE], 0, message);
  return !self->closed;
}

static void
read_cb (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  g_autoptr(GchatSession) self = user_data;
  g_autoptr(GError) error = NULL;
  gssize n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &error);

  if (self->closed)
    return;
  if (n <= 0)
    {
      if (n == 0)
        session_fail_literal (self, GCHAT_CLIENT_ERROR_CLOSED, _("The server closed the connection"));
      else
        session_fail (self, error);
      return;
    }
  if (!gchat_frame_decoder_push (self->decoder, self->read_buffer, n, &error))
    {
      session_fail_literal (self, GCHAT_CLIENT_ERROR_PROTOCOL, _("The server sent a malformed frame"));
      return;
    }
  for (;;)
    {
      g_autoptr(GBytes) payload = gchat_frame_decoder_pop (self->decoder);

      if (payload == NULL)
        break;
      if (!self->started)
        {
          /* Nothing may follow the hello before our answer. */
          if (gchat_frame_decoder_get_buffered (self->decoder) > 0 || self->hello != NULL)
            {
              session_fail_literal (self, GCHAT_CLIENT_ERROR_PROTOCOL,
                                    _("The server sent more than its greeting"));
              return;
            }
          hello_received (self, payload);
          return;
        }
      if (!message_received (self, payload))
        return;
    }
  read_next (self);
}

static void
read_next (GchatSession *self)
{
  GInputStream *in = g_io_stream_get_input_stream (G_IO_STREAM (self->connection));

  g_input_stream_read_async (in, self->read_buffer, sizeof self->read_buffer, G_PRIORITY_DEFAULT,
                             self->cancellable, read_cb, g_object_ref (self));
}

/* Connecting */

static gboolean
connect_timeout_cb (gpointer user_data)
{
  GchatSession *self = user_data;

  self->connect_timeout = 0;
  session_fail_literal (self, GCHAT_CLIENT_ERROR_UNREACHABLE,
                        _("The server did not answer in time"));
  return G_SOURCE_REMOVE;
}

static void
connected_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(GchatSession) self = user_data;
  g_autoptr(GError) error = NULL;
  GSocketConnection *connection;

  connection = g_socket_client_connect_to_host_finish (G_SOCKET_CLIENT (source), result, &error);
  if (self->closed)
    {
      g_clear_object (&connection);
      return;
    }
  if (connection == NULL)
    {
      g_autoptr(GError) unreachable =
        g_error_new (GCHAT_CLIENT_ERROR, GCHAT_CLIENT_ERROR_UNREACHABLE,
                     _("Server unreachable: %s"), error->message);

      session_fail (self, unreachable);
      return;
    }
  self->connection = connection;
  /* The client's timeout was for connecting: a quiet session must not time out. */
  g_socket_set_timeout (g_socket_connection_get_socket (connection), 0);
  /* Messages are small and latency matters more than packing them. */
  g_socket_set_option (g_socket_connection_get_socket (connection), IPPROTO_TCP, TCP_NODELAY, 1,
                       NULL);
  read_next (self);
}

void
gchat_session_connect_async (const char          *host,
                             guint16              port,
                             GCancellable        *cancellable,
                             GAsyncReadyCallback  callback,
                             gpointer             user_data)
{
  g_autoptr(GchatSession) self = g_object_new (GCHAT_TYPE_SESSION, NULL);
  g_autoptr(GSocketClient) client = g_socket_client_new ();

  g_return_if_fail (host != NULL);

  self->connect_task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (self->connect_task, gchat_session_connect_async);
  if (cancellable != NULL)
    g_cancellable_connect (cancellable, G_CALLBACK (g_cancellable_cancel),
                           g_object_ref (self->cancellable), g_object_unref);
  self->connect_timeout = g_timeout_add_seconds (CONNECT_TIMEOUT_S, connect_timeout_cb, self);
  g_socket_client_set_timeout (client, CONNECT_TIMEOUT_S);
  g_socket_client_connect_to_host_async (client, host, port, self->cancellable, connected_cb,
                                         g_object_ref (self));
}

GchatSession *
gchat_session_connect_finish (GAsyncResult  *result,
                              GError       **error)
{
  return g_task_propagate_pointer (G_TASK (result), error);
}

GchatRsaKey *
gchat_session_get_server_key (GchatSession *self)
{
  g_return_val_if_fail (GCHAT_IS_SESSION (self), NULL);

  return self->server_key;
}

static GInetSocketAddress *
socket_address (GchatSession *self,
                gboolean      remote)
{
  GSocket *socket;
  GSocketAddress *address;

  if (self->connection == NULL)
    return NULL;
  socket = g_socket_connection_get_socket (self->connection);
  address = remote ? g_socket_get_remote_address (socket, NULL)
                   : g_socket_get_local_address (socket, NULL);
  return G_IS_INET_SOCKET_ADDRESS (address) ? G_INET_SOCKET_ADDRESS (address) : NULL;
}

GInetSocketAddress *
gchat_session_get_remote_address (GchatSession *self)
{
  g_return_val_if_fail (GCHAT_IS_SESSION (self), NULL);

  return socket_address (self, TRUE);
}

GInetSocketAddress *
gchat_session_get_local_address (GchatSession *self)
{
  g_return_val_if_fail (GCHAT_IS_SESSION (self), NULL);

  return socket_address (self, FALSE);
}

/* Writing */

static void write_next (GchatSession *self);

static void
write_cb (GObject      *source,
          GAsyncResult *result,
          gpointer      user_data)
{
  g_autoptr(GchatSession) self = user_data;
  g_autoptr(GError) error = NULL;
  GBytes *done;

  self->writing = FALSE;
  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, &error))
    {
      if (!self->closed)
        session_fail (self, error);
      return;
    }
  if (self->closed)
    return;
  done = g_queue_pop_head (&self->out);
  self->unsent -= g_bytes_get_size (done);
  g_bytes_unref (done);
  write_next (self);
}

static void
write_next (GchatSession *self)
{
  GOutputStream *out;
  GBytes *head;

  if (self->writing || self->closed || (head = g_queue_peek_head (&self->out)) == NULL)
    return;
  out = g_io_stream_get_output_stream (G_IO_STREAM (self->connection));
  self->writing = TRUE;
  g_output_stream_write_all_async (out, g_bytes_get_data (head, NULL), g_bytes_get_size (head),
                                   G_PRIORITY_DEFAULT, self->cancellable, write_cb,
                                   g_object_ref (self));
}

static void
queue_bytes (GchatSession *self,
             GBytes       *bytes)
{
  self->unsent += g_bytes_get_size (bytes);
  self->last_sent = g_get_monotonic_time ();
  g_queue_push_tail (&self->out, bytes);
  write_next (self);
}

/* Runs the client's only handshake step and starts reading sealed messages. */
static gboolean
session_start_with (GchatSession    *self,
                    GchatHandshake  *handshake,
                    GError         **error)
{
  g_autoptr(GBytes) client_key = NULL;
  GBytes *frame;

  if (self->closed)
    {
      g_set_error_literal (error, GCHAT_CLIENT_ERROR, GCHAT_CLIENT_ERROR_CLOSED,
                           _("The connection to the server ended"));
      return FALSE;
    }
  if (!gchat_handshake_step (handshake, self->hello, &client_key, error)
      || !gchat_handshake_export (handshake, "endpoint", self->endpoint_key,
                                  sizeof self->endpoint_key, error)
      || (frame = gchat_frame_encode (g_bytes_get_data (client_key, NULL),
                                      g_bytes_get_size (client_key), error)) == NULL)
    {
      session_fail (self, NULL);
      return FALSE;
    }
  self->channel = gchat_handshake_steal_channel (handshake);
  self->started = TRUE;
  g_clear_pointer (&self->hello, g_bytes_unref);
  gchat_frame_decoder_set_max_payload (self->decoder, GCHAT_FRAME_MAX_PAYLOAD);
  queue_bytes (self, frame);
  read_next (self);
  return TRUE;
}

gboolean
gchat_session_start (GchatSession  *self,
                     GchatRsaKey   *trusted_key,
                     GError       **error)
{
  g_autoptr(GchatHandshake) handshake = NULL;

  g_return_val_if_fail (GCHAT_IS_SESSION (self), FALSE);
  g_return_val_if_fail (GCHAT_IS_RSA_KEY (trusted_key), FALSE);
  g_return_val_if_fail (!self->started && self->hello != NULL, FALSE);

  handshake = gchat_handshake_new_client (trusted_key);
  return session_start_with (self, handshake, error);
}

gboolean
gchat_session_start_resume (GchatSession  *self,
                            GchatRsaKey   *trusted_key,
                            GBytes        *ticket,
                            const guint8  *secret,
                            GError       **error)
{
  g_autoptr(GchatHandshake) handshake = NULL;

  g_return_val_if_fail (GCHAT_IS_SESSION (self), FALSE);
  g_return_val_if_fail (GCHAT_IS_RSA_KEY (trusted_key), FALSE);
  g_return_val_if_fail (ticket != NULL && secret != NULL, FALSE);
  g_return_val_if_fail (!self->started && self->hello != NULL, FALSE);

  handshake = gchat_handshake_new_client_resume (trusted_key, ticket, secret);
  return session_start_with (self, handshake, error);
}

const guint8 *
gchat_session_get_endpoint_key (GchatSession *self)
{
  g_return_val_if_fail (GCHAT_IS_SESSION (self), NULL);

  return self->started ? self->endpoint_key : NULL;
}

gboolean
gchat_session_send (GchatSession *self,
                    GchatMessage *message)
{
  g_autoptr(GBytes) json = NULL;
  g_autoptr(GError) error = NULL;
  GBytes *frame;

  g_return_val_if_fail (GCHAT_IS_SESSION (self), FALSE);

  if (self->closed || !self->started)
    return FALSE;
  json = gchat_message_encode (message, &error);
  if (json == NULL)
    {
      g_critical ("A message could not be encoded: %s", error->message);
      return FALSE;
    }
  frame = gchat_channel_seal (self->channel, g_bytes_get_data (json, NULL),
                              g_bytes_get_size (json), &error);
  if (frame == NULL)
    {
      session_fail (self, error);
      return FALSE;
    }
  queue_bytes (self, frame);
  return TRUE;
}

gsize
gchat_session_get_unsent (GchatSession *self)
{
  g_return_val_if_fail (GCHAT_IS_SESSION (self), 0);

  return self->unsent;
}

gint64
gchat_session_get_last_sent (GchatSession *self)
{
  g_return_val_if_fail (GCHAT_IS_SESSION (self), 0);

  return self->last_sent;
}

void
gchat_session_close (GchatSession *self)
{
  g_return_if_fail (GCHAT_IS_SESSION (self));

  session_fail (self, NULL);
}

gboolean
gchat_session_is_closed (GchatSession *self)
{
  g_return_val_if_fail (GCHAT_IS_SESSION (self), TRUE);

  return self->closed;
}
