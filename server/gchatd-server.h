/* SPDX-License-Identifier: GPL-3.0-or-later */
/* gchatd's top object: the listening socket, the sessions, presence and the pair keys. */

#pragma once

#include <gio/gio.h>

#include "gchat-config.h"
#include "gchat-handshake.h"
#include "gchat-rsa-key.h"
#include "gchatd-admin.h"
#include "gchatd-connection.h"
#include "gchatd-mailbox.h"
#include "gchatd-password-hasher.h"
#include "gchatd-throttle.h"
#include "gchatd-user-store.h"
#include "gchatd-worker-pool.h"

G_BEGIN_DECLS

#define GCHATD_SERVER_ERROR (gchatd_server_error_quark ())

typedef enum {
  GCHATD_SERVER_ERROR_STATE_DIR, /* the state folder could not be made */
  GCHATD_SERVER_ERROR_KEY,       /* the key pair could not be read, made or saved */
  GCHATD_SERVER_ERROR_LISTEN,    /* the address could not be resolved or bound */
  GCHATD_SERVER_ERROR_MAILBOX,   /* the mailbox folder could not be made or loaded */
} GchatdServerError;

/* How long a new connection has to log in before it is closed. */
#define GCHATD_SERVER_LOGIN_TIMEOUT_MS (30 * 1000)
/* A logged-in client that sends nothing this long is gone (clients ping every 30 s when idle,
 * PROTOCOL.md §5.1); `idle_timeout` in the config overrides it. */
#define GCHATD_SERVER_IDLE_TIMEOUT_S 90
/* Presence changes are collected this long, then sent to everyone in one batch. */
#define GCHATD_SERVER_PRESENCE_BATCH_MS 50
/* How long a pair key is valid. */
#define GCHATD_SERVER_PAIR_KEY_LIFETIME_S (24 * 60 * 60)
/* Session resumption (PROTOCOL.md §3.5): how long a ticket is valid. */
#define GCHATD_SERVER_TICKET_LIFETIME_S GCHATD_TICKET_LIFETIME_S

/* The X25519 key pair of the hellos is made anew for the first connection after this long and
 * wiped then (PROTOCOL.md §3.2): under a reconnect storm, one key pair for each of thousands of
 * connections a second was a third of gchatd's work. */
#define GCHATD_SERVER_EPHEMERAL_LIFETIME_MS 1000

/* The listen backlog: GIO's default of 10 makes a connection storm crawl. */
#define GCHATD_SERVER_LISTEN_BACKLOG 4096

#define GCHATD_TYPE_SERVER (gchatd_server_get_type ())
G_DECLARE_FINAL_TYPE (GchatdServer, gchatd_server, GCHATD, SERVER, GObject)

GQuark                gchatd_server_error_quark   (void);


/* Resolves the paths as gchatctl does (gchatd_paths_resolve()), makes the data folder (0700),
 * takes the store lock for the server's life, loads the key pair or makes an RSA-3072 one at first start
 * (private key 0600), opens the user store and loads the mailboxes (“mail” in the data folder,
 * 0700). Blocks: call it before the loop runs. */
GchatdServer         *gchatd_server_new           (GchatConfig       *config,
                                                   GError           **error);
/* Overrides the configured port before start, 0 meaning any free port (for tests). */
void                  gchatd_server_set_port      (GchatdServer      *self,
                                                   guint16            port);
void                  gchatd_server_set_login_timeout (GchatdServer  *self,
                                                   guint              timeout_ms);
/* Overrides how long presence changes are collected before they go out (for tests). */
void                  gchatd_server_set_presence_batch (GchatdServer *self,
                                                   guint              batch_ms);
/* `allow_sign_up` of the config: whether `sign` may create accounts. */
gboolean              gchatd_server_get_allow_sign_up (GchatdServer  *self);
/* Overrides the idle deadline of logged-in connections (for tests); 0 turns it off. */
void                  gchatd_server_set_idle_timeout (GchatdServer   *self,
                                                   guint              timeout_ms);
gboolean              gchatd_server_start         (GchatdServer      *self,
                                                   GError           **error);
/* The port actually bound, once started. */
guint16               gchatd_server_get_port      (GchatdServer      *self);
/* Stops listening and tells every client the server is going down (`bye` `shutdown`). The
 * connections close as their output drains; watch gchatd_server_get_n_connections(). */
void                  gchatd_server_stop          (GchatdServer      *self);

/* Takes what can change while running from @config: the connection limit and the Argon2id cost
 * of new accounts. Other changes are logged as needing a restart. */
void                  gchatd_server_reload        (GchatdServer      *self,
                                                   GchatConfig       *config);

const char           *gchatd_server_get_fingerprint  (GchatdServer   *self);
guint                 gchatd_server_get_n_connections (GchatdServer  *self);
guint                 gchatd_server_get_n_sessions   (GchatdServer   *self);

/* For GchatdConnection. */
GchatRsaKey          *gchatd_server_get_key       (GchatdServer      *self);
/* The threads for the handshakes' X25519 and RSA work (gchatd-worker-pool.h). */
GchatdWorkerPool     *gchatd_server_get_crypto_threads (GchatdServer *self);
/* The ephemeral X25519 key pair for a new connection's hello, copied out. */
gboolean              gchatd_server_get_ephemeral (GchatdServer      *self,
                                                   guint8             secret[GCHAT_X25519_SIZE],
                                                   guint8             public_key[GCHAT_X25519_SIZE],
                                                   GError           **error);
GchatdUserStore      *gchatd_server_get_store     (GchatdServer      *self);
GchatdPasswordHasher *gchatd_server_get_hasher    (GchatdServer      *self);
GchatdThrottle       *gchatd_server_get_throttle  (GchatdServer      *self);
/* The messages and receipts held for offline users. */
GchatdMailbox        *gchatd_server_get_mailbox   (GchatdServer      *self);
/* The logged-in connection of @user (any letter case), or NULL. */
GchatdConnection     *gchatd_server_lookup_session (GchatdServer     *self,
                                                   const char        *user);
/* The Argon2id cost new accounts get. */
void                  gchatd_server_get_argon2_params (GchatdServer  *self,
                                                   GchatArgon2Params *params);
/* Registers @connection's endpoint key (PROTOCOL.md §7.5) and returns the endpoint id for the
 * log-in's `result`, or 0 when the server takes no endpoint datagrams. */
guint32               gchatd_server_register_endpoint (GchatdServer  *self,
                                                   GchatdConnection  *connection);
/* @connection has just logged in as @user (the stored spelling): replaces an older session of
 * the same user, sends the online list and tells everyone else. */
void                  gchatd_server_session_begin (GchatdServer      *self,
                                                   GchatdConnection  *connection);
/* @connection's session ends (it is closing). */
void                  gchatd_server_session_end   (GchatdServer      *self,
                                                   GchatdConnection  *connection);
/* Sends the online list to @connection, in several `users` messages when long. @id < 0 means
 * the request had none. */
void                  gchatd_server_send_user_list (GchatdServer     *self,
                                                   GchatdConnection  *connection,
                                                   gint64             id);
/* Issues (or reuses) the pair key of @connection's user and @user, and sends it to both; a
 * fresh one when @replace (0: none) is the id of the live one, which the client used enough.
 * Returns NULL then, or the error code for the `result`: `unknown-user`, `offline` or
 * `bad-name` (oneself). */
const char           *gchatd_server_talk          (GchatdServer      *self,
                                                   GchatdConnection  *connection,
                                                   const char        *user,
                                                   guint32            replace,
                                                   gint64             id);

/* Relay and offline delivery (PROTOCOL.md §7.6) */

/* Hands @datagram, unopened and unchanged, to @to's session as a `relayed` from @from's user.
 * Dropped silently, like a lost datagram, when @to is not online, is @from's own user, or has
 * more than GCHATD_CONNECTION_MAX_RELAY_QUEUED bytes of output waiting. Never blocks. */
void                  gchatd_server_relay         (GchatdServer      *self,
                                                   GchatdConnection  *from,
                                                   const char        *to,
                                                   GBytes            *datagram);
/* How many relayed datagrams went out, and how many were dropped, since the start. */
guint64               gchatd_server_get_n_relayed (GchatdServer      *self);
guint64               gchatd_server_get_n_relay_dropped (GchatdServer *self);
/* @mail is durable in its recipient's box: the recipient gets it at once when online. */
void                  gchatd_server_mail_posted   (GchatdServer      *self,
                                                   GchatdMail        *mail);
/* The messages in @removed (GchatdMail) were taken out of their box, durably, after their
 * recipient acknowledged them: each sender gets a durable “delivered” receipt, at once when
 * online. */
void                  gchatd_server_mail_delivered (GchatdServer     *self,
                                                   GPtrArray         *removed);
/* Session resumption (PROTOCOL.md §3.5) */

/* Overrides how long new tickets are valid (for tests). */
void                  gchatd_server_set_ticket_lifetime (GchatdServer *self,
                                                   guint              seconds);
/* Adds a fresh ticket for @user (the stored spelling), its secret and its expiry to @result,
 * the successful answer to a log-in. Nothing is added when @user has no account. */
void                  gchatd_server_add_ticket    (GchatdServer      *self,
                                                   const char        *user,
                                                   GchatMessage      *result);
/* Opens @ticket with the server's ticket key. FALSE (GCHAT_HANDSHAKE_ERROR_TICKET) when it was
 * not issued with this key or was changed: the secret is unknown then. Expiry and revocation
 * are checked apart, by gchatd_server_check_ticket(), once the binder proved the client. */
gboolean              gchatd_server_open_ticket   (GchatdServer      *self,
                                                   GBytes            *ticket,
                                                   GchatTicket       *out,
                                                   GError           **error);
/* The stored name of the ticket's account when the ticket is still valid: not expired, not
 * revoked, and issued for this very account and password. NULL with @error otherwise. */
char                 *gchatd_server_check_ticket  (GchatdServer      *self,
                                                   const GchatTicket *ticket,
                                                   GError           **error);
/* Refuses every ticket of @user issued up to now, durably. */
gboolean              gchatd_server_revoke_tickets (GchatdServer     *self,
                                                   const char        *user,
                                                   GError           **error);
/* Successful resumptions since the start. */
guint64               gchatd_server_get_n_resumed (GchatdServer      *self);
void                  gchatd_server_count_resumed (GchatdServer      *self);

/* Flushes the mailbox before an exit; FALSE with @error when it did not finish in time. */
gboolean              gchatd_server_flush_mailbox (GchatdServer      *self,
                                                   guint              timeout_ms,
                                                   GError           **error);

G_END_DECLS
