/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The handshake of both sides as a pure state machine; PROTOCOL.md §3 describes every byte. */

#include "config.h"

#include <glib/gi18n-lib.h>
#include <string.h>

#include "gchat-crypto.h"
#include "gchat-handshake.h"

/* Labels of protocol version 1. Changing any of them makes a new, incompatible version. */
#define LABEL_TRANSCRIPT  "gchat v1 transcript"
#define LABEL_WRAP        "gchat v1 client key"
#define LABEL_CLIENT_SEND "gchat v1 client to server"
#define LABEL_SERVER_SEND "gchat v1 server to client"
#define LABEL_EXPORTER    "gchat v1 exporter"
#define LABEL_EXPORT      "gchat v1 export "
#define LABEL_RESUME_TRANSCRIPT  "gchat v1 resume transcript"
#define LABEL_RESUME_BINDER      "gchat v1 resume binder"
#define LABEL_RESUME_CLIENT_SEND "gchat v1 resume client to server"
#define LABEL_RESUME_SERVER_SEND "gchat v1 resume server to client"
#define LABEL_RESUME_EXPORTER    "gchat v1 resume exporter"
#define LABEL_TICKET             "gchat v1 ticket"

#define CLIENT_KEY_FIXED_SIZE (GCHAT_HANDSHAKE_MAGIC_SIZE + 1 + GCHAT_X25519_SIZE + 2)
/* The resumption message: magic, version, client_eph, ticket_len, ticket, binder. */
#define RESUME_FIXED_SIZE (CLIENT_KEY_FIXED_SIZE + GCHAT_SHA256_SIZE)
#define TICKET_NONCE_SIZE GCHAT_AEAD_NONCE_SIZE
#define TICKET_PLAIN_MAX  (1 + GCHAT_TICKET_USER_MAX + 8 + 8 + GCHAT_TICKET_ACCOUNT_SIZE + \
                           GCHAT_RESUME_SECRET_SIZE)

/* The labels of one kind of handshake: the full one, or a resumption. */
typedef struct {
  const char *transcript;
  const char *client_send;
  const char *server_send;
  const char *exporter;
} Labels;

static const Labels full_labels = {
  LABEL_TRANSCRIPT, LABEL_CLIENT_SEND, LABEL_SERVER_SEND, LABEL_EXPORTER,
};
static const Labels resume_labels = {
  LABEL_RESUME_TRANSCRIPT, LABEL_RESUME_CLIENT_SEND, LABEL_RESUME_SERVER_SEND,
  LABEL_RESUME_EXPORTER,
};

typedef enum {
  STATE_START,
  STATE_WAIT_CLIENT_KEY,
  STATE_WAIT_SECRET,     /* server: a resumption message came, its ticket is being opened */
  STATE_DONE,
  STATE_FAILED,
} State;

struct _GchatHandshake
{
  GchatHandshakeRole role;
  State              state;
  GchatRsaKey       *server_key;
  guint8             secret[GCHAT_X25519_SIZE];
  guint8             own_public[GCHAT_X25519_SIZE];
  gboolean           given_ephemeral; /* secret and own_public set by the caller */
  GBytes            *hello;
  GchatChannel      *channel;
  guint8             transcript_hash[GCHAT_SHA256_SIZE];
  guint8             exporter[GCHAT_SHA256_SIZE];
  gboolean           resumption;
  GBytes            *ticket;        /* client: to send; server: as received */
  guint8             resume_secret[GCHAT_RESUME_SECRET_SIZE];
  GBytes            *resume_msg;    /* server: the resumption message, until finished */
};

G_DEFINE_QUARK (gchat-handshake-error-quark, gchat_handshake_error)

static GchatHandshake *
handshake_new (GchatHandshakeRole  role,
               GchatRsaKey        *key)
{
  GchatHandshake *self = g_new0 (GchatHandshake, 1);

  self->role = role;
  self->state = STATE_START;
  self->server_key = g_object_ref (key);
  return self;
}

GchatHandshake *
gchat_handshake_new_server (GchatRsaKey *server_key)
{
  g_return_val_if_fail (GCHAT_IS_RSA_KEY (server_key), NULL);
  g_return_val_if_fail (gchat_rsa_key_has_private (server_key), NULL);

  return handshake_new (GCHAT_HANDSHAKE_ROLE_SERVER, server_key);
}

void
gchat_handshake_set_ephemeral (GchatHandshake *self,
                               const guint8    secret[GCHAT_X25519_SIZE],
                               const guint8    public_key[GCHAT_X25519_SIZE])
{
  g_return_if_fail (self != NULL);
  g_return_if_fail (self->state == STATE_START);
  g_return_if_fail (secret != NULL && public_key != NULL);

  memcpy (self->secret, secret, GCHAT_X25519_SIZE);
  memcpy (self->own_public, public_key, GCHAT_X25519_SIZE);
  self->given_ephemeral = TRUE;
}

/* Our ephemeral key pair: the caller's, or made now. */
static gboolean
own_keypair (GchatHandshake *self,
             guint8          public_key[GCHAT_X25519_SIZE],
             GError        **error)
{
  if (!self->given_ephemeral)
    return gchat_x25519_keypair (self->secret, public_key, error);
  memcpy (public_key, self->own_public, GCHAT_X25519_SIZE);
  return TRUE;
}

GchatHandshake *
gchat_handshake_new_client (GchatRsaKey *server_public_key)
{
  g_return_val_if_fail (GCHAT_IS_RSA_KEY (server_public_key), NULL);

  return handshake_new (GCHAT_HANDSHAKE_ROLE_CLIENT, server_public_key);
}

GchatHandshake *
gchat_handshake_new_client_resume (GchatRsaKey  *server_public_key,
                                   GBytes       *ticket,
                                   const guint8 *secret)
{
  GchatHandshake *self;

  g_return_val_if_fail (GCHAT_IS_RSA_KEY (server_public_key), NULL);
  g_return_val_if_fail (ticket != NULL, NULL);
  g_return_val_if_fail (g_bytes_get_size (ticket) >= GCHAT_TICKET_MIN_SIZE &&
                        g_bytes_get_size (ticket) <= GCHAT_TICKET_MAX_SIZE, NULL);
  g_return_val_if_fail (secret != NULL, NULL);

  self = handshake_new (GCHAT_HANDSHAKE_ROLE_CLIENT, server_public_key);
  self->resumption = TRUE;
  self->ticket = g_bytes_ref (ticket);
  memcpy (self->resume_secret, secret, GCHAT_RESUME_SECRET_SIZE);
  return self;
}

void
gchat_handshake_free (GchatHandshake *self)
{
  if (self == NULL)
    return;
  gchat_memzero (self->secret, sizeof self->secret);
  gchat_memzero (self->exporter, sizeof self->exporter);
  gchat_memzero (self->resume_secret, sizeof self->resume_secret);
  g_clear_pointer (&self->ticket, g_bytes_unref);
  g_clear_pointer (&self->resume_msg, g_bytes_unref);
  g_clear_object (&self->server_key);
  g_clear_pointer (&self->hello, g_bytes_unref);
  g_clear_pointer (&self->channel, gchat_channel_free);
  g_free (self);
}

/* Marks the handshake failed for good, with @error already set. */
static gboolean
failed (GchatHandshake *self)
{
  self->state = STATE_FAILED;
  gchat_memzero (self->secret, sizeof self->secret);
  gchat_memzero (self->resume_secret, sizeof self->resume_secret);
  return FALSE;
}

static gboolean
fail (GchatHandshake  *self,
      GError         **error,
      int              code,
      const char      *message)
{
  g_set_error_literal (error, GCHAT_HANDSHAKE_ERROR, code, message);
  return failed (self);
}

/* Both sides check the 5 bytes that open each handshake message the same way. */
static gboolean
check_magic_and_version (const guint8  *data,
                         GError       **error)
{
  if (memcmp (data, GCHAT_HANDSHAKE_MAGIC, GCHAT_HANDSHAKE_MAGIC_SIZE) != 0)
    {
      g_set_error_literal (error, GCHAT_HANDSHAKE_ERROR, GCHAT_HANDSHAKE_ERROR_MALFORMED,
                           _("The other side does not speak the gchat protocol"));
      return FALSE;
    }
  if (data[GCHAT_HANDSHAKE_MAGIC_SIZE] != GCHAT_PROTOCOL_VERSION)
    {
      g_set_error (error, GCHAT_HANDSHAKE_ERROR, GCHAT_HANDSHAKE_ERROR_VERSION,
                   _("The other side speaks gchat protocol version %u; this program "
                     "speaks version %u. Update the older of the two."),
                   data[GCHAT_HANDSHAKE_MAGIC_SIZE], (guint) GCHAT_PROTOCOL_VERSION);
      return FALSE;
    }
  return TRUE;
}

/* Checks the whole layout of a hello and finds the server key in it. The magic and version come
 * first, so a client of another version is told to update whatever the size. */
static gboolean
parse_hello (const guint8  *hello,
             gsize          len,
             const guint8 **key,
             gsize         *key_len,
             GError       **error)
{
  if (len < GCHAT_HANDSHAKE_MAGIC_SIZE + 1)
    {
      g_set_error_literal (error, GCHAT_HANDSHAKE_ERROR, GCHAT_HANDSHAKE_ERROR_MALFORMED,
                           _("The server’s hello is too short"));
      return FALSE;
    }
  if (!check_magic_and_version (hello, error))
    return FALSE;
  if (len >= GCHAT_HANDSHAKE_HELLO_FIXED_SIZE)
    *key_len = ((gsize) hello[GCHAT_HANDSHAKE_HELLO_FIXED_SIZE - 2] << 8) |
               hello[GCHAT_HANDSHAKE_HELLO_FIXED_SIZE - 1];
  if (len < GCHAT_HANDSHAKE_HELLO_FIXED_SIZE ||
      *key_len < GCHAT_HANDSHAKE_HELLO_MIN_KEY_SIZE ||
      *key_len > GCHAT_HANDSHAKE_HELLO_MAX_KEY_SIZE ||
      len != GCHAT_HANDSHAKE_HELLO_FIXED_SIZE + *key_len)
    {
      g_set_error_literal (error, GCHAT_HANDSHAKE_ERROR, GCHAT_HANDSHAKE_ERROR_MALFORMED,
                           _("The server’s hello has the wrong size"));
      return FALSE;
    }
  *key = hello + GCHAT_HANDSHAKE_HELLO_FIXED_SIZE;
  return TRUE;
}

GchatRsaKey *
gchat_handshake_hello_get_server_key (GBytes  *hello,
                                      GError **error)
{
  const guint8 *key_data = NULL;
  gsize len, key_len = 0;
  const guint8 *data;
  g_autoptr(GBytes) der = NULL;
  g_autoptr(GBytes) canonical = NULL;
  g_autoptr(GchatRsaKey) key = NULL;
  g_autoptr(GError) local_error = NULL;

  g_return_val_if_fail (hello != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  data = g_bytes_get_data (hello, &len);
  if (!parse_hello (data, len, &key_data, &key_len, error))
    return NULL;
  der = g_bytes_new (key_data, key_len);
  key = gchat_rsa_key_new_from_public_der (der, &local_error);
  if (key == NULL)
    {
      g_set_error (error, GCHAT_HANDSHAKE_ERROR, GCHAT_HANDSHAKE_ERROR_MALFORMED,
                   _("The server’s hello carries no usable key: %s"), local_error->message);
      return NULL;
    }
  /* The fingerprint people compare is over these very bytes: a key that parses but that
   * we would encode differently would have two fingerprints. */
  canonical = gchat_rsa_key_get_public_der (key);
  if (!g_bytes_equal (canonical, der))
    {
      g_set_error_literal (error, GCHAT_HANDSHAKE_ERROR, GCHAT_HANDSHAKE_ERROR_MALFORMED,
                           _("The server’s key is not in canonical DER"));
      return NULL;
    }
  return g_steal_pointer (&key);
}

/* Derives the two direction keys from K (or the resumption secret), the X25519 secret and the
 * transcript, and makes the channel. @client_key is the whole client message; the hello is in
 * self->hello. */
static gboolean
derive_channel (GchatHandshake  *self,
                const guint8    *k,
                const guint8    *peer_public,
                GBytes          *client_key,
                GError         **error)
{
  const Labels *labels = self->resumption ? &resume_labels : &full_labels;
  guint8 fingerprint[GCHAT_SHA256_SIZE];
  guint8 ikm[GCHAT_KEY_SIZE + GCHAT_X25519_SIZE];
  guint8 prk[GCHAT_SHA256_SIZE];
  guint8 client_send[GCHAT_KEY_SIZE];
  guint8 server_send[GCHAT_KEY_SIZE];
  g_autoptr(GError) local_error = NULL;
  gsize hello_len, client_key_len;
  const guint8 *hello = g_bytes_get_data (self->hello, &hello_len);
  const guint8 *key_msg = g_bytes_get_data (client_key, &client_key_len);
  gboolean ok;

  if (!gchat_x25519 (self->secret, peer_public, ikm + GCHAT_KEY_SIZE, &local_error))
    return fail (self, error, GCHAT_HANDSHAKE_ERROR_KEY, local_error->message);
  memcpy (ikm, k, GCHAT_KEY_SIZE);

  /* The transcript binds the server's identity and every handshake byte to the keys: a
   * replayed or spliced message leads to different keys and the first frame fails. */
  gchat_rsa_key_get_fingerprint_digest (self->server_key, fingerprint);
  gchat_sha256_parts (self->transcript_hash,
                      (const guint8 *) labels->transcript, strlen (labels->transcript),
                      fingerprint, sizeof fingerprint,
                      hello, hello_len,
                      key_msg, client_key_len,
                      NULL);
  gchat_hkdf_extract (self->transcript_hash, sizeof self->transcript_hash, ikm, sizeof ikm, prk);
  ok = gchat_hkdf_expand (prk, sizeof prk, (const guint8 *) labels->client_send,
                          strlen (labels->client_send), client_send, sizeof client_send, error) &&
       gchat_hkdf_expand (prk, sizeof prk, (const guint8 *) labels->server_send,
                          strlen (labels->server_send), server_send, sizeof server_send, error) &&
       gchat_hkdf_expand (prk, sizeof prk, (const guint8 *) labels->exporter,
                          strlen (labels->exporter), self->exporter, sizeof self->exporter, error);
  if (ok)
    {
      if (self->role == GCHAT_HANDSHAKE_ROLE_CLIENT)
        self->channel = gchat_channel_new (client_send, server_send, error);
      else
        self->channel = gchat_channel_new (server_send, client_send, error);
      ok = self->channel != NULL;
    }

  gchat_memzero (ikm, sizeof ikm);
  gchat_memzero (prk, sizeof prk);
  gchat_memzero (client_send, sizeof client_send);
  gchat_memzero (server_send, sizeof server_send);
  gchat_memzero (self->secret, sizeof self->secret);
  gchat_memzero (self->resume_secret, sizeof self->resume_secret);
  self->state = ok ? STATE_DONE : STATE_FAILED;
  return ok;
}

/* Server, first step: the hello with a fresh challenge, an ephemeral X25519 key (made now unless
 * the caller gave one) and our public key. */
static gboolean
server_start (GchatHandshake  *self,
              GBytes         **output,
              GError         **error)
{
  g_autoptr(GBytes) der = gchat_rsa_key_get_public_der (self->server_key);
  gsize key_len = g_bytes_get_size (der);
  guint8 *hello;
  guint8 *p;

  if (key_len < GCHAT_HANDSHAKE_HELLO_MIN_KEY_SIZE || key_len > GCHAT_HANDSHAKE_HELLO_MAX_KEY_SIZE)
    return fail (self, error, GCHAT_HANDSHAKE_ERROR_KEY,
                 _("The server’s RSA key does not fit in the hello: use a key of 2048 to "
                   "4096 bits"));

  hello = g_malloc (GCHAT_HANDSHAKE_HELLO_FIXED_SIZE + key_len);
  p = hello;
  memcpy (p, GCHAT_HANDSHAKE_MAGIC, GCHAT_HANDSHAKE_MAGIC_SIZE);
  p += GCHAT_HANDSHAKE_MAGIC_SIZE;
  *p++ = GCHAT_PROTOCOL_VERSION;
  gchat_random_bytes (p, GCHAT_HANDSHAKE_CHALLENGE_SIZE);
  p += GCHAT_HANDSHAKE_CHALLENGE_SIZE;
  if (!own_keypair (self, p, error))
    {
      g_free (hello);
      return failed (self);
    }
  p += GCHAT_X25519_SIZE;
  *p++ = (guint8) (key_len >> 8);
  *p++ = (guint8) key_len;
  memcpy (p, g_bytes_get_data (der, NULL), key_len);

  self->hello = g_bytes_new_take (hello, GCHAT_HANDSHAKE_HELLO_FIXED_SIZE + key_len);
  self->state = STATE_WAIT_CLIENT_KEY;
  *output = g_bytes_ref (self->hello);
  return TRUE;
}

/* Client: the hello must be well formed and carry exactly the key we expect. */
static gboolean
client_check_hello (GchatHandshake  *self,
                    GBytes          *input,
                    GError         **error)
{
  gsize len, key_len = 0;
  const guint8 *hello = g_bytes_get_data (input, &len);
  const guint8 *key = NULL;
  g_autoptr(GBytes) expected = NULL;

  if (!parse_hello (hello, len, &key, &key_len, error))
    return failed (self);
  expected = gchat_rsa_key_get_public_der (self->server_key);
  if (key_len != g_bytes_get_size (expected) ||
      memcmp (key, g_bytes_get_data (expected, NULL), key_len) != 0)
    return fail (self, error, GCHAT_HANDSHAKE_ERROR_SERVER_KEY,
                 _("The server presented a different key"));
  return TRUE;
}

/* Client, only step: check the hello, answer with K wrapped for the server and our X25519 key. */
static gboolean
client_answer (GchatHandshake  *self,
               GBytes          *input,
               GBytes         **output,
               GError         **error)
{
  const guint8 *hello = g_bytes_get_data (input, NULL);
  const guint8 *server_public;
  gsize wrapped_len;
  guint8 k[GCHAT_KEY_SIZE];
  g_autoptr(GBytes) wrapped = NULL;
  g_autoptr(GBytes) client_key = NULL;
  GByteArray *msg;
  guint8 public_key[GCHAT_X25519_SIZE];
  guint8 version = GCHAT_PROTOCOL_VERSION;
  guint8 len_be[2];
  gboolean ok;

  if (!client_check_hello (self, input, error))
    return FALSE;
  self->hello = g_bytes_ref (input);
  server_public = hello + GCHAT_HANDSHAKE_MAGIC_SIZE + 1 + GCHAT_HANDSHAKE_CHALLENGE_SIZE;

  gchat_random_bytes (k, sizeof k);
  wrapped = gchat_rsa_key_wrap (self->server_key, k, sizeof k, LABEL_WRAP, error);
  if (wrapped == NULL || !own_keypair (self, public_key, error))
    {
      gchat_memzero (k, sizeof k);
      return failed (self);
    }

  wrapped_len = g_bytes_get_size (wrapped);
  len_be[0] = (guint8) (wrapped_len >> 8);
  len_be[1] = (guint8) wrapped_len;
  msg = g_byte_array_sized_new (CLIENT_KEY_FIXED_SIZE + wrapped_len);
  g_byte_array_append (msg, (const guint8 *) GCHAT_HANDSHAKE_MAGIC, GCHAT_HANDSHAKE_MAGIC_SIZE);
  g_byte_array_append (msg, &version, 1);
  g_byte_array_append (msg, public_key, sizeof public_key);
  g_byte_array_append (msg, len_be, sizeof len_be);
  g_byte_array_append (msg, g_bytes_get_data (wrapped, NULL), wrapped_len);
  client_key = g_byte_array_free_to_bytes (msg);

  ok = derive_channel (self, k, server_public, client_key, error);
  gchat_memzero (k, sizeof k);
  if (ok)
    *output = g_steal_pointer (&client_key);
  return ok;
}

/* Server, second step: unwrap K (RSA: the slow part), check the client's key, derive. */
static gboolean
server_finish (GchatHandshake  *self,
               GBytes          *input,
               GError         **error)
{
  gsize len, wrapped_len;
  const guint8 *msg = g_bytes_get_data (input, &len);
  const guint8 *client_public;
  guint8 k[GCHAT_KEY_SIZE];
  gboolean ok;

  if (len < CLIENT_KEY_FIXED_SIZE)
    return fail (self, error, GCHAT_HANDSHAKE_ERROR_MALFORMED,
                 _("The client’s key message is too short"));
  if (!check_magic_and_version (msg, error))
    return failed (self);
  client_public = msg + GCHAT_HANDSHAKE_MAGIC_SIZE + 1;
  wrapped_len = ((gsize) msg[CLIENT_KEY_FIXED_SIZE - 2] << 8) | msg[CLIENT_KEY_FIXED_SIZE - 1];
  if (wrapped_len != gchat_rsa_key_get_wrapped_size (self->server_key) ||
      len != CLIENT_KEY_FIXED_SIZE + wrapped_len)
    return fail (self, error, GCHAT_HANDSHAKE_ERROR_MALFORMED,
                 _("The client’s key message has the wrong size"));

  if (!gchat_rsa_key_unwrap (self->server_key, msg + CLIENT_KEY_FIXED_SIZE, wrapped_len,
                             LABEL_WRAP, k, sizeof k, NULL))
    return fail (self, error, GCHAT_HANDSHAKE_ERROR_KEY,
                 _("The client’s key was not made for this server’s key"));

  ok = derive_channel (self, k, client_public, input, error);
  gchat_memzero (k, sizeof k);
  return ok;
}

/* Resumption (PROTOCOL.md §3.5) */

/* The binder: HMAC-SHA256(secret, SHA-256(label || fingerprint || hello || message without its
 * binder)). It proves the client holds the ticket's secret before the server does anything
 * for the ticket's user, and ties it to this connection's hello, so it cannot be replayed. */
static void
compute_binder (GchatHandshake *self,
                const guint8   *secret,
                const guint8   *msg,
                gsize           len_without_binder,
                guint8          binder[GCHAT_SHA256_SIZE])
{
  guint8 fingerprint[GCHAT_SHA256_SIZE];
  guint8 digest[GCHAT_SHA256_SIZE];
  gsize hello_len;
  const guint8 *hello = g_bytes_get_data (self->hello, &hello_len);

  gchat_rsa_key_get_fingerprint_digest (self->server_key, fingerprint);
  gchat_sha256_parts (digest,
                      (const guint8 *) LABEL_RESUME_BINDER, strlen (LABEL_RESUME_BINDER),
                      fingerprint, sizeof fingerprint,
                      hello, hello_len,
                      msg, len_without_binder,
                      NULL);
  gchat_hmac_sha256 (secret, GCHAT_RESUME_SECRET_SIZE, digest, sizeof digest, binder);
}

/* Client, only step of a resumption: check the hello, answer with the ticket, our X25519 key
 * and the binder, and derive from the resumption secret instead of a wrapped K. */
static gboolean
client_answer_resume (GchatHandshake  *self,
                      GBytes          *input,
                      GBytes         **output,
                      GError         **error)
{
  const guint8 *hello = g_bytes_get_data (input, NULL);
  const guint8 *server_public;
  gsize ticket_len = g_bytes_get_size (self->ticket);
  guint8 public_key[GCHAT_X25519_SIZE];
  guint8 binder[GCHAT_SHA256_SIZE];
  guint8 version = GCHAT_PROTOCOL_VERSION;
  guint8 len_be[2] = { (guint8) (ticket_len >> 8), (guint8) ticket_len };
  g_autoptr(GBytes) message = NULL;
  GByteArray *msg;
  guint8 secret[GCHAT_RESUME_SECRET_SIZE];
  gboolean ok;

  if (!client_check_hello (self, input, error))
    return FALSE;
  self->hello = g_bytes_ref (input);
  server_public = hello + GCHAT_HANDSHAKE_MAGIC_SIZE + 1 + GCHAT_HANDSHAKE_CHALLENGE_SIZE;
  if (!own_keypair (self, public_key, error))
    return failed (self);

  msg = g_byte_array_sized_new (RESUME_FIXED_SIZE + ticket_len);
  g_byte_array_append (msg, (const guint8 *) GCHAT_HANDSHAKE_RESUME_MAGIC,
                       GCHAT_HANDSHAKE_MAGIC_SIZE);
  g_byte_array_append (msg, &version, 1);
  g_byte_array_append (msg, public_key, sizeof public_key);
  g_byte_array_append (msg, len_be, sizeof len_be);
  g_byte_array_append (msg, g_bytes_get_data (self->ticket, NULL), ticket_len);
  compute_binder (self, self->resume_secret, msg->data, msg->len, binder);
  g_byte_array_append (msg, binder, sizeof binder);
  message = g_byte_array_free_to_bytes (msg);

  /* derive_channel wipes the handshake's copy of the secret. */
  memcpy (secret, self->resume_secret, sizeof secret);
  ok = derive_channel (self, secret, server_public, message, error);
  gchat_memzero (secret, sizeof secret);
  if (ok)
    *output = g_steal_pointer (&message);
  return ok;
}

gboolean
gchat_handshake_is_resume_message (GBytes *client_message)
{
  gsize len;
  const guint8 *data;

  g_return_val_if_fail (client_message != NULL, FALSE);

  data = g_bytes_get_data (client_message, &len);
  return len >= GCHAT_HANDSHAKE_MAGIC_SIZE &&
         memcmp (data, GCHAT_HANDSHAKE_RESUME_MAGIC, GCHAT_HANDSHAKE_MAGIC_SIZE) == 0;
}

/* Server: a resumption message is checked for its layout only; the ticket is the caller's to
 * open, and gchat_handshake_server_resume() finishes. */
static gboolean
server_accept_resume (GchatHandshake  *self,
                      GBytes          *input,
                      GError         **error)
{
  gsize len, ticket_len;
  const guint8 *msg = g_bytes_get_data (input, &len);

  if (len < RESUME_FIXED_SIZE)
    return fail (self, error, GCHAT_HANDSHAKE_ERROR_MALFORMED,
                 _("The client’s resumption message is too short"));
  if (msg[GCHAT_HANDSHAKE_MAGIC_SIZE] != GCHAT_PROTOCOL_VERSION)
    return fail (self, error, GCHAT_HANDSHAKE_ERROR_VERSION,
                 _("The client speaks another version of the gchat protocol"));
  ticket_len = ((gsize) msg[CLIENT_KEY_FIXED_SIZE - 2] << 8) | msg[CLIENT_KEY_FIXED_SIZE - 1];
  if (ticket_len < GCHAT_TICKET_MIN_SIZE || ticket_len > GCHAT_TICKET_MAX_SIZE ||
      len != RESUME_FIXED_SIZE + ticket_len)
    return fail (self, error, GCHAT_HANDSHAKE_ERROR_MALFORMED,
                 _("The client’s resumption message has the wrong size"));
  self->resumption = TRUE;
  self->resume_msg = g_bytes_ref (input);
  self->ticket = g_bytes_new (msg + CLIENT_KEY_FIXED_SIZE, ticket_len);
  self->state = STATE_WAIT_SECRET;
  return TRUE;
}

gboolean
gchat_handshake_is_resumption (GchatHandshake *self)
{
  g_return_val_if_fail (self != NULL, FALSE);
  return self->resumption;
}

GBytes *
gchat_handshake_get_ticket (GchatHandshake *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  return self->ticket;
}

gboolean
gchat_handshake_server_resume (GchatHandshake  *self,
                               const guint8    *secret,
                               GError         **error)
{
  gsize len;
  const guint8 *msg;
  guint8 binder[GCHAT_SHA256_SIZE];
  gboolean equal;
  g_autoptr(GBytes) message = NULL;

  g_return_val_if_fail (self != NULL && secret != NULL, FALSE);

  if (self->role != GCHAT_HANDSHAKE_ROLE_SERVER || self->state != STATE_WAIT_SECRET)
    return fail (self, error, GCHAT_HANDSHAKE_ERROR_STATE,
                 _("A handshake message arrived out of turn"));
  message = g_steal_pointer (&self->resume_msg);
  msg = g_bytes_get_data (message, &len);
  compute_binder (self, secret, msg, len - GCHAT_SHA256_SIZE, binder);
  equal = gchat_constant_time_equal (binder, msg + len - GCHAT_SHA256_SIZE, sizeof binder);
  if (!equal)
    return fail (self, error, GCHAT_HANDSHAKE_ERROR_TICKET,
                 _("The client does not hold the secret of its resumption ticket"));
  return derive_channel (self, secret, msg + GCHAT_HANDSHAKE_MAGIC_SIZE + 1, message, error);
}

/* Tickets */

static GchatAead *
ticket_aead (const guint8  *key,
             GError       **error)
{
  if (!gchat_crypto_init (error))
    return NULL;
  return gchat_aead_new (key, error);
}

static void
put_u64 (guint8  *p,
         guint64  value)
{
  for (int i = 7; i >= 0; i--, value >>= 8)
    p[i] = (guint8) value;
}

static guint64
get_u64 (const guint8 *p)
{
  guint64 value = 0;

  for (int i = 0; i < 8; i++)
    value = (value << 8) | p[i];
  return value;
}

GBytes *
gchat_ticket_seal (const guint8       *key,
                   guint8              key_id,
                   const GchatTicket  *ticket,
                   GError            **error)
{
  g_autoptr(GchatAead) aead = NULL;
  gsize user_len, plain_len, total;
  guint8 plain[TICKET_PLAIN_MAX];
  guint8 aad[sizeof LABEL_TICKET];
  guint8 *out, *p;

  g_return_val_if_fail (key != NULL && ticket != NULL, NULL);
  user_len = strnlen (ticket->user, sizeof ticket->user);
  g_return_val_if_fail (user_len >= 1 && user_len <= GCHAT_TICKET_USER_MAX, NULL);

  if ((aead = ticket_aead (key, error)) == NULL)
    return NULL;
  p = plain;
  *p++ = (guint8) user_len;
  memcpy (p, ticket->user, user_len), p += user_len;
  put_u64 (p, (guint64) ticket->issued), p += 8;
  put_u64 (p, (guint64) ticket->expires), p += 8;
  memcpy (p, ticket->account, GCHAT_TICKET_ACCOUNT_SIZE), p += GCHAT_TICKET_ACCOUNT_SIZE;
  memcpy (p, ticket->secret, GCHAT_RESUME_SECRET_SIZE), p += GCHAT_RESUME_SECRET_SIZE;
  plain_len = p - plain;

  total = 1 + TICKET_NONCE_SIZE + plain_len + GCHAT_AEAD_TAG_SIZE;
  out = g_malloc (total);
  out[0] = key_id;
  gchat_random_bytes (out + 1, TICKET_NONCE_SIZE);
  memcpy (aad, LABEL_TICKET, strlen (LABEL_TICKET));
  aad[strlen (LABEL_TICKET)] = key_id;
  if (!gchat_aead_seal (aead, out + 1, aad, sizeof aad, plain, plain_len,
                        out + 1 + TICKET_NONCE_SIZE, error))
    {
      gchat_memzero (plain, sizeof plain);
      g_free (out);
      return NULL;
    }
  gchat_memzero (plain, sizeof plain);
  return g_bytes_new_take (out, total);
}

static gboolean
ticket_refuse (GchatTicket  *ticket,
               GError      **error,
               const char   *message)
{
  gchat_memzero (ticket, sizeof *ticket);
  g_set_error_literal (error, GCHAT_HANDSHAKE_ERROR, GCHAT_HANDSHAKE_ERROR_TICKET, message);
  return FALSE;
}

/* Reads the opened ticket's fields; FALSE when the layout is not ours. */
static gboolean
ticket_parse (const guint8 *plain,
              gsize         len,
              GchatTicket  *ticket)
{
  gsize user_len = plain[0];

  if (user_len < 1 || user_len > GCHAT_TICKET_USER_MAX ||
      len != 1 + user_len + 8 + 8 + GCHAT_TICKET_ACCOUNT_SIZE + GCHAT_RESUME_SECRET_SIZE ||
      memchr (plain + 1, '\0', user_len) != NULL)
    return FALSE;
  memcpy (ticket->user, plain + 1, user_len);
  ticket->user[user_len] = '\0';
  plain += 1 + user_len;
  ticket->issued = (gint64) get_u64 (plain);
  ticket->expires = (gint64) get_u64 (plain + 8);
  memcpy (ticket->account, plain + 16, GCHAT_TICKET_ACCOUNT_SIZE);
  memcpy (ticket->secret, plain + 16 + GCHAT_TICKET_ACCOUNT_SIZE, GCHAT_RESUME_SECRET_SIZE);
  return TRUE;
}

gboolean
gchat_ticket_open (const guint8  *key,
                   guint8         key_id,
                   GBytes        *sealed,
                   gint64         now,
                   GchatTicket   *ticket,
                   GError       **error)
{
  g_autoptr(GchatAead) aead = NULL;
  guint8 plain[TICKET_PLAIN_MAX];
  guint8 aad[sizeof LABEL_TICKET];
  gsize len, plain_len;
  const guint8 *data;
  gboolean ok;

  g_return_val_if_fail (key != NULL && sealed != NULL && ticket != NULL, FALSE);

  memset (ticket, 0, sizeof *ticket);
  data = g_bytes_get_data (sealed, &len);
  if (len < GCHAT_TICKET_MIN_SIZE || len > 1 + TICKET_NONCE_SIZE + TICKET_PLAIN_MAX +
      GCHAT_AEAD_TAG_SIZE || data[0] != key_id)
    return ticket_refuse (ticket, error, _("The resumption ticket was not issued here"));
  if ((aead = ticket_aead (key, error)) == NULL)
    return FALSE;
  plain_len = len - 1 - TICKET_NONCE_SIZE - GCHAT_AEAD_TAG_SIZE;
  memcpy (aad, LABEL_TICKET, strlen (LABEL_TICKET));
  aad[strlen (LABEL_TICKET)] = key_id;
  ok = gchat_aead_open (aead, data + 1, aad, sizeof aad, data + 1 + TICKET_NONCE_SIZE,
                        len - 1 - TICKET_NONCE_SIZE, plain, NULL) &&
       ticket_parse (plain, plain_len, ticket);
  gchat_memzero (plain, sizeof plain);
  if (!ok)
    return ticket_refuse (ticket, error, _("The resumption ticket was not issued here"));
  if (now >= ticket->expires || ticket->issued > ticket->expires)
    return ticket_refuse (ticket, error, _("The resumption ticket has expired"));
  return TRUE;
}

gboolean
gchat_handshake_step (GchatHandshake  *self,
                      GBytes          *input,
                      GBytes         **output,
                      GError         **error)
{
  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (output != NULL && *output == NULL, FALSE);

  if (!gchat_crypto_init (error))
    return FALSE;

  if (self->role == GCHAT_HANDSHAKE_ROLE_SERVER && self->state == STATE_START && input == NULL)
    return server_start (self, output, error);
  if (self->role == GCHAT_HANDSHAKE_ROLE_SERVER && self->state == STATE_WAIT_CLIENT_KEY &&
      input != NULL)
    return gchat_handshake_is_resume_message (input) ? server_accept_resume (self, input, error)
                                                      : server_finish (self, input, error);
  if (self->role == GCHAT_HANDSHAKE_ROLE_CLIENT && self->state == STATE_START && input != NULL)
    return self->resumption ? client_answer_resume (self, input, output, error)
                            : client_answer (self, input, output, error);

  return fail (self, error, GCHAT_HANDSHAKE_ERROR_STATE,
               _("A handshake message arrived out of turn"));
}

gboolean
gchat_handshake_is_done (GchatHandshake *self)
{
  g_return_val_if_fail (self != NULL, FALSE);
  return self->state == STATE_DONE;
}

GchatChannel *
gchat_handshake_steal_channel (GchatHandshake *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  g_return_val_if_fail (self->state == STATE_DONE, NULL);
  return g_steal_pointer (&self->channel);
}

const guint8 *
gchat_handshake_get_transcript_hash (GchatHandshake *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  g_return_val_if_fail (self->state == STATE_DONE, NULL);
  return self->transcript_hash;
}

gboolean
gchat_handshake_export (GchatHandshake  *self,
                        const char      *label,
                        guint8          *out,
                        gsize            len,
                        GError         **error)
{
  g_autofree char *info = NULL;

  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (self->state == STATE_DONE, FALSE);
  g_return_val_if_fail (label != NULL && out != NULL, FALSE);

  info = g_strconcat (LABEL_EXPORT, label, NULL);
  return gchat_hkdf_expand (self->exporter, sizeof self->exporter, (const guint8 *) info,
                            strlen (info), out, len, error);
}
