/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The client's UDP socket for peer and endpoint datagrams, non-blocking on the main loop. */

#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct _GchatPeerSocket GchatPeerSocket;

/* Called for each datagram received, on the thread-default main context of the creator. */
typedef void (*GchatPeerSocketFunc) (const guint8       *data,
                                     gsize               len,
                                     GInetSocketAddress *from,
                                     gpointer            user_data);

/* Binds a socket of @family on any address and a free port. */
GchatPeerSocket *gchat_peer_socket_new      (GSocketFamily        family,
                                             GchatPeerSocketFunc  func,
                                             gpointer             user_data,
                                             GError             **error);
void             gchat_peer_socket_free     (GchatPeerSocket     *self);
guint16          gchat_peer_socket_get_port (GchatPeerSocket     *self);
/* Sends without blocking; a datagram the kernel cannot take now is dropped, as the network
 * could drop it, and the sender's retransmission covers it. */
void             gchat_peer_socket_send     (GchatPeerSocket     *self,
                                             GBytes              *datagram,
                                             GSocketAddress      *to);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (GchatPeerSocket, gchat_peer_socket_free)

G_END_DECLS
