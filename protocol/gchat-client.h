/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The client core: one account's session with gchatd and its peer conversations, no GTK. */

#pragma once

#include <gio/gio.h>

#include "gchat-online-users.h"
#include "gchat-rsa-key.h"

G_BEGIN_DECLS

#define GCHAT_CLIENT_ERROR (gchat_client_error_quark ())

typedef enum {
  GCHAT_CLIENT_ERROR_UNREACHABLE,        /* no connection to the server could be made */
  GCHAT_CLIENT_ERROR_SERVER_KEY_UNKNOWN, /* a first connection: confirm the key, then retry */
  GCHAT_CLIENT_ERROR_SERVER_KEY_CHANGED, /* the server's key is not the pinned one */
  GCHAT_CLIENT_ERROR_PROTOCOL,           /* the server broke the protocol */
  GCHAT_CLIENT_ERROR_CLOSED,             /* the connection ended */
  GCHAT_CLIENT_ERROR_BAD_CREDENTIALS,    /* unknown user or wrong password */
  GCHAT_CLIENT_ERROR_NAME_TAKEN,
  GCHAT_CLIENT_ERROR_BAD_NAME,
  GCHAT_CLIENT_ERROR_BAD_PASSWORD,
  GCHAT_CLIENT_ERROR_SIGN_UP_CLOSED,
  GCHAT_CLIENT_ERROR_THROTTLED,          /* see gchat_client_get_retry_after() */
  GCHAT_CLIENT_ERROR_BUSY,
  GCHAT_CLIENT_ERROR_UNKNOWN_USER,       /* no account of that name */
  GCHAT_CLIENT_ERROR_MAILBOX_FULL,       /* the recipient's box on the server is full */
  GCHAT_CLIENT_ERROR_INVALID_TEXT,       /* empty, too long, not UTF-8 or holding a NUL */
  GCHAT_CLIENT_ERROR_NOT_LOGGED_IN,
  GCHAT_CLIENT_ERROR_FAILED,             /* the server failed; nothing was changed */
} GchatClientError;

typedef enum {
  GCHAT_CLIENT_STATE_OFFLINE,      /* not logged in; gchat_client_get_state_reason() says why */
  GCHAT_CLIENT_STATE_CONNECTING,   /* connecting and logging in, at the user's request */
  GCHAT_CLIENT_STATE_ONLINE,
  GCHAT_CLIENT_STATE_RECONNECTING, /* the connection dropped; logging in again by itself */
} GchatClientState;

/* How a message travelled. */
typedef enum {
  GCHAT_CLIENT_PATH_DIRECT,  /* UDP from client to client */
  GCHAT_CLIENT_PATH_RELAY,   /* sealed datagrams relayed by gchatd */
  GCHAT_CLIENT_PATH_OFFLINE, /* held by gchatd for a user who was offline */
} GchatClientPath;

typedef enum {
  GCHAT_DELIVERY_SENDING,
  GCHAT_DELIVERY_QUEUED,    /* held by the server until the peer logs in */
  GCHAT_DELIVERY_DELIVERED,
  GCHAT_DELIVERY_FAILED,    /* see the error of the "delivery-changed" signal */
} GchatDeliveryState;

#define GCHAT_TYPE_CLIENT (gchat_client_get_type ())

G_DECLARE_FINAL_TYPE (GchatClient, gchat_client, GCHAT, CLIENT, GObject)

/*
 * Properties (all readable; those marked "rw" writable):
 *   "state"                  GchatClientState
 *   "state-reason"           string: why offline or reconnecting, in words for a person, or NULL
 *   "user"                   string: the logged-in name as the server spells it, or NULL
 *   "server-host", "server-port" (rw): default "localhost", 10000
 *   "server-key"             (rw) GchatRsaKey: the key from the config; NULL: pin on first use
 *   "known-servers-path"     (rw) string: default $XDG_DATA_HOME/gchat/known-servers
 *   "accept-new-server-key"  (rw) bool: pin an unknown key without asking
 *   "direct-loss"            (rw) uint 0–100: the percentage of direct datagrams dropped on
 *                            sending, for tests and demonstrations; 100 blocks the direct path
 *   "datagram-loss"          (rw) uint 0–100: likewise for every datagram, relayed ones too
 *   "rekey-datagrams"        (rw) uint64: replace a pair key after this many datagrams (tests)
 *
 * Signals:
 *   "message-received" (const char *from, const char *text, GchatClientPath path,
 *                       guint64 id, gint64 sent_unix): each message once, in order per peer
 *   "delivery-changed" (guint64 id, const char *to, GchatDeliveryState state,
 *                       GchatClientPath path, const GError *error): one of ours moved on
 *   "presence"         (const char *user, gboolean online)
 */

GQuark        gchat_client_error_quark        (void);

GchatClient  *gchat_client_new                (void);

/* Reads server_address, server_port and server_certificate of a client config. */
gboolean      gchat_client_apply_config       (GchatClient          *self,
                                               const char           *config_path,
                                               GError              **error);

GchatClientState gchat_client_get_state       (GchatClient          *self);
const char   *gchat_client_get_state_reason   (GchatClient          *self);
const char   *gchat_client_get_user           (GchatClient          *self);
/* Seconds to wait after GCHAT_CLIENT_ERROR_THROTTLED or _BUSY. */
guint         gchat_client_get_retry_after    (GchatClient          *self);

/* The server's key fingerprint seen by the last connection attempt (for the front end to show
 * after GCHAT_CLIENT_ERROR_SERVER_KEY_UNKNOWN or _CHANGED), and the pinned one after _CHANGED. */
const char   *gchat_client_get_server_fingerprint (GchatClient      *self);
const char   *gchat_client_get_pinned_fingerprint (GchatClient      *self);
/* Pins the key seen by the last attempt for this host and port, after the user confirmed
 * @fingerprint (which must match it). */
gboolean      gchat_client_trust_server_key   (GchatClient          *self,
                                               const char           *fingerprint,
                                               GError              **error);

/* Connect, handshake and create the account (sign) or log in (auth). The password is kept in
 * memory only, for logging in again after a dropped connection, and wiped at log-out. */
void          gchat_client_sign_async         (GchatClient          *self,
                                               const char           *user,
                                               const char           *password,
                                               GCancellable         *cancellable,
                                               GAsyncReadyCallback   callback,
                                               gpointer              user_data);
gboolean      gchat_client_sign_finish        (GchatClient          *self,
                                               GAsyncResult         *result,
                                               GError              **error);
void          gchat_client_auth_async         (GchatClient          *self,
                                               const char           *user,
                                               const char           *password,
                                               GCancellable         *cancellable,
                                               GAsyncReadyCallback   callback,
                                               gpointer              user_data);
gboolean      gchat_client_auth_finish        (GchatClient          *self,
                                               GAsyncResult         *result,
                                               GError              **error);

/* Logs out: the messages not yet handed on are posted to the server first (bounded by a few
 * seconds), then the session ends and the password is wiped. */
void          gchat_client_logout_async       (GchatClient          *self,
                                               GCancellable         *cancellable,
                                               GAsyncReadyCallback   callback,
                                               gpointer              user_data);
gboolean      gchat_client_logout_finish      (GchatClient          *self,
                                               GAsyncResult         *result,
                                               GError              **error);

/* The other users online, a GListModel of GchatOnlineUser sorted by name, following presence. */
GListModel   *gchat_client_get_online_users   (GchatClient          *self);
gboolean      gchat_client_is_online          (GchatClient          *self,
                                               const char           *user);

/* Asks the server for the online list again; completes with a NULL-terminated array of names. */
void          gchat_client_list_async         (GchatClient          *self,
                                               GCancellable         *cancellable,
                                               GAsyncReadyCallback   callback,
                                               gpointer              user_data);
char        **gchat_client_list_finish        (GchatClient          *self,
                                               GAsyncResult         *result,
                                               GError              **error);

/* Sends @text (UTF-8, 1–65536 bytes, no NUL) to @to and returns its id (unique for this
 * account across restarts), or 0 and an error for a text that can never be sent. The message
 * is never dropped afterwards: "delivery-changed" reports QUEUED, DELIVERED or FAILED. */
guint64       gchat_client_send               (GchatClient          *self,
                                               const char           *to,
                                               const char           *text,
                                               GError              **error);

/* Datagrams dropped because they did not open, were replayed or malformed. */
guint64       gchat_client_get_n_dropped      (GchatClient          *self);
/* Pair keys installed since the client was made (for tests of key replacement). */
guint         gchat_client_get_n_pair_keys    (GchatClient          *self);
/* The local UDP port of the peer socket, 0 while offline (for tests). */
guint16       gchat_client_get_peer_port      (GchatClient          *self);

GType gchat_client_state_get_type (void) G_GNUC_CONST;
GType gchat_client_path_get_type (void) G_GNUC_CONST;
GType gchat_delivery_state_get_type (void) G_GNUC_CONST;
#define GCHAT_TYPE_CLIENT_STATE   (gchat_client_state_get_type ())
#define GCHAT_TYPE_CLIENT_PATH    (gchat_client_path_get_type ())
#define GCHAT_TYPE_DELIVERY_STATE (gchat_delivery_state_get_type ())

const char   *gchat_client_path_to_string     (GchatClientPath       path);
const char   *gchat_delivery_state_to_string  (GchatDeliveryState    state);

G_END_DECLS
