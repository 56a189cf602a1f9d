/* SPDX-License-Identifier: GPL-3.0-or-later */
/* One client's TCP connection: handshake, sealed messages, log-in, and a bounded write queue. */

#pragma once

#include <gio/gio.h>

#include "gchat-message.h"
#include "gchatd-mailbox.h"
#include "gchatd-poller.h"

G_BEGIN_DECLS

/* The life of a connection, in order; it only ever moves forward. */
typedef enum {
  GCHATD_CONNECTION_HANDSHAKE,      /* hello sent, waiting for (or unwrapping) the client key */
  GCHATD_CONNECTION_AUTHENTICATING, /* sealed channel up, waiting for a `sign` or `auth` */
  GCHATD_CONNECTION_LOGGED_IN,      /* a session of one user */
  GCHATD_CONNECTION_CLOSING,        /* flushing the last messages; nothing more is read */
} GchatdConnectionState;

/* The largest frame a connection accepts after the handshake but before a log-in: a `sign` or
 * `auth` with the longest password, every byte escaped, still fits. It caps what an
 * unauthenticated peer can make the server hold. */
#define GCHATD_CONNECTION_MAX_UNAUTHENTICATED_PAYLOAD 8192
/* Output queued for a client that does not read; past it, the client is disconnected. */
#define GCHATD_CONNECTION_MAX_QUEUED_OUTPUT (1024 * 1024)
/* Relayed datagrams are dropped for a client with more output than this waiting: half the
 * limit above, so that relayed traffic alone never gets a slow reader disconnected and leaves
 * room for the messages that must arrive (presence, pair keys, mail). */
#define GCHATD_CONNECTION_MAX_RELAY_QUEUED (GCHATD_CONNECTION_MAX_QUEUED_OUTPUT / 2)
/* Held mail and receipts go out only while less than this is waiting, the rest as the client
 * reads: a full mailbox is far larger than the output limit. */
#define GCHATD_CONNECTION_MAIL_LOW_WATER (256 * 1024)
/* Mailbox requests (`post`, `mail-ack`, `receipt-ack`) one connection may have waiting for the
 * disk; past it, its input waits. */
#define GCHATD_CONNECTION_MAX_MAILBOX_REQUESTS 64
/* How long a closing connection may take to flush its last messages. */
#define GCHATD_CONNECTION_CLOSE_TIMEOUT_MS 2000

typedef struct _GchatdServer GchatdServer;

#define GCHATD_TYPE_CONNECTION (gchatd_connection_get_type ())
G_DECLARE_FINAL_TYPE (GchatdConnection, gchatd_connection, GCHATD, CONNECTION, GObject)

/* @server is not referenced: it owns its connections and outlives them. The connection emits
 * "closed" once its socket is closed; the server then lets go of it. The socket is watched in
 * @poller, shared by all of the server's connections, from gchatd_connection_start() on. */
GchatdConnection     *gchatd_connection_new          (GchatdServer      *server,
                                                      GchatdPoller      *poller,
                                                      GSocketConnection *connection,
                                                      guint              login_timeout_ms);
/* Sends the server hello and starts reading. */
void                  gchatd_connection_start        (GchatdConnection  *self);

GchatdConnectionState gchatd_connection_get_state    (GchatdConnection  *self);
/* The user's name as stored, once logged in; NULL before. */
const char           *gchatd_connection_get_user     (GchatdConnection  *self);
/* The peer's IP address as text, for logs and throttling. */
const char           *gchatd_connection_get_address  (GchatdConnection  *self);
/* A number unique to this log-in among all of the server's, 0 before the log-in. */
guint64               gchatd_connection_get_session_serial (GchatdConnection *self);

/* When bytes last arrived, in monotonic microseconds (a wall-clock jump changes nothing). */
gint64                gchatd_connection_get_last_activity (GchatdConnection *self);
/* The key of this connection's endpoint datagrams (PROTOCOL.md §7.5), 32 bytes, once the
 * handshake is done; NULL before. */
const guint8         *gchatd_connection_get_endpoint_key (GchatdConnection *self);

/* Output queued for the client and not yet taken by the kernel, in bytes. */
gsize                 gchatd_connection_get_queued_output (GchatdConnection *self);

/* Queues a `mail` (a `receipt`) for the logged-in client. They go out in order, after what is
 * queued before, while the client's output stays under GCHATD_CONNECTION_MAIL_LOW_WATER. */
void                  gchatd_connection_push_mail    (GchatdConnection  *self,
                                                      GchatdMail        *mail);
void                  gchatd_connection_push_receipt (GchatdConnection  *self,
                                                      GchatdMailReceipt *receipt);

/* Seals and queues one message; does nothing once closing. */
void                  gchatd_connection_send_message (GchatdConnection  *self,
                                                      GchatMessage      *message);
/* The same for a message already encoded, so one encoding can go to many clients. */
void                  gchatd_connection_send_encoded (GchatdConnection  *self,
                                                      GBytes            *json);
/* Several, leaving in one write. */
void                  gchatd_connection_send_encoded_all (GchatdConnection *self,
                                                          GPtrArray        *jsons);
/* Sends `bye` with @bye_code (unless NULL), then closes once the output is flushed. @reason is
 * logged; it must hold no secret. */
void                  gchatd_connection_close        (GchatdConnection  *self,
                                                      const char        *bye_code,
                                                      const char        *reason);

G_END_DECLS
