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

#define CLIENT_KEY_FIXED_SIZE (GCHAT_HANDSHAKE_MAGIC_SIZE + 1 + GCHAT_X25519_SIZE + 2)

typedef enum {
  STATE_START,
  STATE_WAIT_CLIENT_KEY,
  STATE_DONE,
  STATE_FAILED,
} State;

struct _GchatHandshake
{
  GchatHandshakeRole role;
  State              state;
  GchatRsaKey       *server_key;
  guint8             secret[GCHAT_X25519_SIZE];
  GBytes            *hello;
  GchatChannel      *channel;
  guint8             transcript_hash[GCHAT_SHA256_SIZE];
  guint8             exporter[GCHAT_SHA256_SIZE];
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

GchatHandshake *
gchat_handshake_new_client (GchatRsaKey *server_public_key)
{
  g_return_val_if_fail (GCHAT_IS_RSA_KEY (server_public_key), NULL);

  return handshake_new (GCHAT_HANDSHAKE_ROLE_CLIENT, server_public_key);
}

void
gchat_handshake_free (GchatHandshake *self)
{
  if (self == NULL)
    return;
  gchat_memzero (self->secret, sizeof self->secret);
  gchat_memzero (self->exporter, sizeof self->exporter);
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

/* Derives the two direction keys from K, the X25519 secret and the transcript, and makes the
 * channel. @client_key is the whole client key message; the hello is in self->hello. */
static gboolean
derive_channel (GchatHandshake  *self,
                const guint8    *k,
                const guint8    *peer_public,
                GBytes          *client_key,
                GError         **error)
{
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
                      (const guint8 *) LABEL_TRANSCRIPT, strlen (LABEL_TRANSCRIPT),
                      fingerprint, sizeof fingerprint,
                      hello, hello_len,
                      key_msg, client_key_len,
                      NULL);
  gchat_hkdf_extract (self->transcript_hash, sizeof self->transcript_hash, ikm, sizeof ikm, prk);
  ok = gchat_hkdf_expand (prk, sizeof prk, (const guint8 *) LABEL_CLIENT_SEND,
                          strlen (LABEL_CLIENT_SEND), client_send, sizeof client_send, error) &&
       gchat_hkdf_expand (prk, sizeof prk, (const guint8 *) LABEL_SERVER_SEND,
                          strlen (LABEL_SERVER_SEND), server_send, sizeof server_send, error) &&
       gchat_hkdf_expand (prk, sizeof prk, (const guint8 *) LABEL_EXPORTER,
                          strlen (LABEL_EXPORTER), self->exporter, sizeof self->exporter, error);
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
  self->state = ok ? STATE_DONE : STATE_FAILED;
  return ok;
}

/* Server, first step: the hello with a fresh challenge, ephemeral X25519 key and our public key. */
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
  if (!gchat_x25519_keypair (self->secret, p, error))
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
  if (wrapped == NULL || !gchat_x25519_keypair (self->secret, public_key, error))
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
    return server_finish (self, input, error);
  if (self->role == GCHAT_HANDSHAKE_ROLE_CLIENT && self->state == STATE_START && input != NULL)
    return client_answer (self, input, output, error);

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
