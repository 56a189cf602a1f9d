/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The handshake state machines of both sides: pure, bytes in and bytes out, no sockets. */

#pragma once

#include <glib.h>

#include "gchat-channel.h"
#include "gchat-rsa-key.h"

G_BEGIN_DECLS

#define GCHAT_HANDSHAKE_ERROR (gchat_handshake_error_quark ())

typedef enum {
  GCHAT_HANDSHAKE_ERROR_MALFORMED, /* wrong size, wrong magic */
  GCHAT_HANDSHAKE_ERROR_VERSION,   /* the other side speaks another protocol version */
  GCHAT_HANDSHAKE_ERROR_KEY,       /* the client key did not unwrap, or a weak X25519 key */
  GCHAT_HANDSHAKE_ERROR_STATE,     /* a message arrived when none was expected */
  GCHAT_HANDSHAKE_ERROR_SERVER_KEY, /* the hello carries another key than the one expected */
  GCHAT_HANDSHAKE_ERROR_TICKET,    /* a resumption ticket or its binder is not valid (now) */
} GchatHandshakeError;

#define GCHAT_HANDSHAKE_MAGIC         "GCHT"
#define GCHAT_HANDSHAKE_MAGIC_SIZE    4
#define GCHAT_HANDSHAKE_CHALLENGE_SIZE 32
/* The hello: magic, version, challenge, X25519 public key, key_len (u16, big-endian), then
 * key_len bytes of the server's DER SubjectPublicKeyInfo. The bounds admit RSA 2048 to 4096. */
#define GCHAT_HANDSHAKE_HELLO_FIXED_SIZE   (4 + 1 + 32 + 32 + 2)
#define GCHAT_HANDSHAKE_HELLO_MIN_KEY_SIZE 64
#define GCHAT_HANDSHAKE_HELLO_MAX_KEY_SIZE 800
#define GCHAT_HANDSHAKE_HELLO_MAX_SIZE     (GCHAT_HANDSHAKE_HELLO_FIXED_SIZE + \
                                            GCHAT_HANDSHAKE_HELLO_MAX_KEY_SIZE)

/* Resumption (PROTOCOL.md §3.5): the client's message then starts with this magic and carries
 * a ticket of GCHAT_TICKET_MIN_SIZE to GCHAT_TICKET_MAX_SIZE bytes; the secret that goes with
 * it is GCHAT_RESUME_SECRET_SIZE bytes. */
#define GCHAT_HANDSHAKE_RESUME_MAGIC  "GCHR"
#define GCHAT_RESUME_SECRET_SIZE      32
#define GCHAT_TICKET_KEY_SIZE         32
#define GCHAT_TICKET_ACCOUNT_SIZE     8
#define GCHAT_TICKET_USER_MAX         32
/* key_id, nonce, then sealed: user_len:u8, user, issued:u64, expires:u64, account, secret. */
#define GCHAT_TICKET_MIN_SIZE         (1 + 12 + 1 + 1 + 8 + 8 + 8 + 32 + 16)
#define GCHAT_TICKET_MAX_SIZE         256

typedef enum {
  GCHAT_HANDSHAKE_ROLE_CLIENT,
  GCHAT_HANDSHAKE_ROLE_SERVER,
} GchatHandshakeRole;

typedef struct _GchatHandshake GchatHandshake;

GQuark          gchat_handshake_error_quark   (void);

/* The server needs its private key; the client, the server's public key. */
GchatHandshake *gchat_handshake_new_server    (GchatRsaKey     *server_key);
GchatHandshake *gchat_handshake_new_client    (GchatRsaKey     *server_public_key);
/* The caller may give the handshake its own ephemeral X25519 key pair (clamped @secret, its
 * @public_key) rather than have one made at the first step. A server under load shares one
 * among the hellos of a short moment (PROTOCOL.md §3.2); a client must use a pair once only (a
 * load generator makes them ahead). Before the first step only; the handshake keeps a copy of
 * the secret and wipes it when it is done. */
void            gchat_handshake_set_ephemeral (GchatHandshake *self,
                                               const guint8    secret[GCHAT_X25519_SIZE],
                                               const guint8    public_key[GCHAT_X25519_SIZE]);
/* A client that resumes with @ticket and its @secret (GCHAT_RESUME_SECRET_SIZE bytes) instead
 * of wrapping a key for the server: no RSA on either side. */
GchatHandshake *gchat_handshake_new_client_resume (GchatRsaKey  *server_public_key,
                                                   GBytes       *ticket,
                                                   const guint8 *secret);
void            gchat_handshake_free          (GchatHandshake  *self);

/* The server key a hello carries, checked as strictly as the client's step checks it (size,
 * magic, version, a usable key in canonical DER), so a client can decide whether it trusts the
 * key before it makes its handshake with it. Errors are in GCHAT_HANDSHAKE_ERROR. */
GchatRsaKey    *gchat_handshake_hello_get_server_key (GBytes   *hello,
                                                      GError  **error);

/* One step. The server starts with @input NULL and gets its hello in @output; the client feeds
 * the hello (GCHAT_HANDSHAKE_ERROR_SERVER_KEY when it carries another key than the client's) and
 * gets its client key; the server feeds that and is done (@output NULL). Any
 * error leaves the handshake failed for good. The server's step with the client key includes an
 * RSA decryption: run it off the main loop. */
gboolean        gchat_handshake_step          (GchatHandshake  *self,
                                               GBytes          *input,
                                               GBytes         **output,
                                               GError         **error);
gboolean        gchat_handshake_is_done       (GchatHandshake  *self);

/* Resumption on the server: a step with a resumption message (quick: no RSA, checked with
 * gchat_handshake_is_resume_message()) succeeds without being done; the caller then opens the
 * ticket (gchat_handshake_get_ticket(), gchat_ticket_open()) and finishes with the ticket's
 * secret, which checks the client's binder and derives the keys. */
gboolean        gchat_handshake_is_resume_message (GBytes      *client_message);
gboolean        gchat_handshake_is_resumption (GchatHandshake  *self);
GBytes         *gchat_handshake_get_ticket    (GchatHandshake  *self);
gboolean        gchat_handshake_server_resume (GchatHandshake  *self,
                                               const guint8    *secret,
                                               GError         **error);
/* The sealed channel, once done; the handshake keeps nothing of it. */
GchatChannel   *gchat_handshake_steal_channel (GchatHandshake  *self);
/* The SHA-256 of the whole transcript, once done: binds later proofs to this connection. */
const guint8   *gchat_handshake_get_transcript_hash (GchatHandshake *self);

/* Once done: a secret of @len bytes (1..255*32) for another use of this connection, such as the
 * key of the client's endpoint datagrams, derived from the exporter secret and @label. */
gboolean        gchat_handshake_export        (GchatHandshake  *self,
                                               const char      *label,
                                               guint8          *out,
                                               gsize            len,
                                               GError         **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (GchatHandshake, gchat_handshake_free)

/* What a resumption ticket holds. Only its issuer reads it: the client keeps it as opaque
 * bytes. @account identifies the account's password record, so that a new password or a new
 * account of the same name refuses older tickets. */
typedef struct {
  char    user[GCHAT_TICKET_USER_MAX + 1];
  gint64  issued;   /* Unix seconds */
  gint64  expires;  /* Unix seconds */
  guint8  account[GCHAT_TICKET_ACCOUNT_SIZE];
  guint8  secret[GCHAT_RESUME_SECRET_SIZE];
} GchatTicket;

/* Seals @ticket with @key (GCHAT_TICKET_KEY_SIZE bytes), named @key_id in the ticket. */
GBytes         *gchat_ticket_seal             (const guint8      *key,
                                               guint8             key_id,
                                               const GchatTicket *ticket,
                                               GError           **error);
/* Opens a ticket sealed with @key and @key_id; GCHAT_HANDSHAKE_ERROR_TICKET when it was not,
 * was changed, or has expired at @now (Unix seconds; 0 leaves expiry to the caller, who may
 * want to answer an expired ticket in words). @ticket is wiped on failure. */
gboolean        gchat_ticket_open             (const guint8      *key,
                                               guint8             key_id,
                                               GBytes            *sealed,
                                               gint64             now,
                                               GchatTicket       *ticket,
                                               GError           **error);

G_END_DECLS
