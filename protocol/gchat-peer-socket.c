/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The client's UDP socket for peer and endpoint datagrams, non-blocking on the main loop. */

#include "config.h"

#include "gchat-peer-socket.h"

/* Larger than any valid datagram (1200 bytes), so an over-long one is seen and dropped. */
#define RECEIVE_BUFFER 2048
/* Datagrams taken per wake-up before the loop gets a turn. */
#define RECEIVE_BURST  64

struct _GchatPeerSocket
{
  GSocket             *socket;
  GSource             *source;
  GchatPeerSocketFunc  func;
  gpointer             user_data;
};

static gboolean
readable_cb (GSocket      *socket,
             GIOCondition  condition,
             gpointer      user_data)
{
  GchatPeerSocket *self = user_data;
  guint8 buffer[RECEIVE_BUFFER];

  for (guint i = 0; i < RECEIVE_BURST; i++)
    {
      g_autoptr(GSocketAddress) from = NULL;
      g_autoptr(GError) error = NULL;
      gssize n = g_socket_receive_from (socket, &from, (char *) buffer, sizeof buffer, NULL,
                                        &error);

      if (n < 0)
        {
          if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
            g_debug ("Peer socket: %s", error->message);
          break;
        }
      if (G_IS_INET_SOCKET_ADDRESS (from))
        self->func (buffer, n, G_INET_SOCKET_ADDRESS (from), self->user_data);
    }
  return G_SOURCE_CONTINUE;
}

GchatPeerSocket *
gchat_peer_socket_new (GSocketFamily         family,
                       GchatPeerSocketFunc   func,
                       gpointer              user_data,
                       GError              **error)
{
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GInetAddress) any = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  GchatPeerSocket *self;

  socket = g_socket_new (family, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP, error);
  if (socket == NULL)
    return NULL;
  any = g_inet_address_new_any (family);
  address = g_inet_socket_address_new (any, 0);
  if (!g_socket_bind (socket, address, FALSE, error))
    return NULL;
  g_socket_set_blocking (socket, FALSE);

  self = g_new0 (GchatPeerSocket, 1);
  self->socket = g_steal_pointer (&socket);
  self->func = func;
  self->user_data = user_data;
  self->source = g_socket_create_source (self->socket, G_IO_IN, NULL);
  g_source_set_callback (self->source, G_SOURCE_FUNC (readable_cb), self, NULL);
  g_source_attach (self->source, g_main_context_get_thread_default ());
  return self;
}

void
gchat_peer_socket_free (GchatPeerSocket *self)
{
  if (self == NULL)
    return;
  g_source_destroy (self->source);
  g_source_unref (self->source);
  g_socket_close (self->socket, NULL);
  g_object_unref (self->socket);
  g_free (self);
}

guint16
gchat_peer_socket_get_port (GchatPeerSocket *self)
{
  g_autoptr(GSocketAddress) local = g_socket_get_local_address (self->socket, NULL);

  return G_IS_INET_SOCKET_ADDRESS (local)
         ? g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (local)) : 0;
}

void
gchat_peer_socket_send (GchatPeerSocket *self,
                        GBytes          *datagram,
                        GSocketAddress  *to)
{
  g_autoptr(GError) error = NULL;

  if (g_socket_send_to (self->socket, to, g_bytes_get_data (datagram, NULL),
                        g_bytes_get_size (datagram), NULL, &error) < 0)
    g_debug ("A datagram was not sent: %s", error->message);
}
