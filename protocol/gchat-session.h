/* SPDX-License-Identifier: GPL-3.0-or-later */
/* One client connection to gchatd: TCP, the handshake, and sealed messages in and out. */

#pragma once

#include <gio/gio.h>

#include "gchat-message.h"
#include "gchat-rsa-key.h"

G_BEGIN_DECLS

#define GCHAT_TYPE_SESSION (gchat_session_get_type ())

G_DECLARE_FINAL_TYPE (GchatSession, gchat_session, GCHAT, SESSION, GObject)

/*
 * A session is used once: connect, decide whether to trust the key the server presented,
 * start, then exchange messages until "closed" (const GError *why) is emitted, after which
 * nothing more happens. "message" (GchatMessage *) is emitted for each message, in order.
 */

/* Connects and reads the server's hello; completes with the key the hello carries. */
void          gchat_session_connect_async   (const char           *host,
                                             guint16               port,
                                             GCancellable         *cancellable,
                                             GAsyncReadyCallback   callback,
                                             gpointer              user_data);
GchatSession *gchat_session_connect_finish  (GAsyncResult         *result,
                                             GError              **error);

/* The key presented in the hello. */
GchatRsaKey  *gchat_session_get_server_key  (GchatSession         *self);
/* The address of the server as connected. */
GInetSocketAddress *gchat_session_get_remote_address (GchatSession *self);
GInetSocketAddress *gchat_session_get_local_address  (GchatSession *self);

/* Completes the handshake with @trusted_key, the key the caller decided to trust, and starts
 * reading messages. */
gboolean      gchat_session_start           (GchatSession         *self,
                                             GchatRsaKey          *trusted_key,
                                             GError              **error);

/* The same, resuming with @ticket and its @secret (GCHAT_RESUME_SECRET_SIZE bytes) instead of
 * the full handshake (PROTOCOL.md §3.5). The server answers with a `result` for "resume", or
 * closes without a word when it cannot open the ticket. */
gboolean      gchat_session_start_resume    (GchatSession         *self,
                                             GchatRsaKey          *trusted_key,
                                             GBytes               *ticket,
                                             const guint8         *secret,
                                             GError              **error);

/* The 32-byte "endpoint" export of the handshake (PROTOCOL.md §7.5), once started. */
const guint8 *gchat_session_get_endpoint_key (GchatSession        *self);

/* Queues @message; it is written in order. FALSE once the session has closed. */
gboolean      gchat_session_send            (GchatSession         *self,
                                             GchatMessage         *message);
/* Bytes queued and not yet written. */
gsize         gchat_session_get_unsent      (GchatSession         *self);
/* Monotonic time of the last message sent. */
gint64        gchat_session_get_last_sent   (GchatSession         *self);

/* Closes at once; "closed" is emitted with @why (NULL: closed by us). */
void          gchat_session_close           (GchatSession         *self);
gboolean      gchat_session_is_closed       (GchatSession         *self);

G_END_DECLS
