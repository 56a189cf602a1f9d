/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Cryptographic primitives on libgcrypt: random, SHA-256, HMAC, HKDF, AEAD, X25519, Argon2id. */

#include "config.h"

#include <string.h>

#include <gcrypt.h>
#include <glib/gi18n-lib.h>

#include "gchat-crypto.h"

/* The oldest libgcrypt with gcry_kdf_open (Argon2) and gcry_ecc_mul_point that we have tested. */
#define GCHAT_GCRYPT_MIN_VERSION "1.10.0"

/* Big enough for the few short-lived secrets libgcrypt keeps in secure memory itself (X25519
 * scalars); libgcrypt grows the pool if it ever needs more. */
#define GCHAT_SECMEM_SIZE (1024 * 1024)

/* RFC 5869: at most 255 blocks of output. */
#define HKDF_MAX_OKM (255 * GCHAT_SHA256_SIZE)

/* RFC 8439 section 2.8: the block counter limits one message to 2^38 - 64 bytes. */
#define AEAD_MAX_PLAIN ((G_GUINT64_CONSTANT (1) << 38) - 64)

#define ARGON2_MIN_SALT    8
#define ARGON2_MIN_OUT     4
#define ARGON2_MAX_OUT     1024
#define ARGON2_MAX_INPUT   G_MAXUINT32

G_DEFINE_QUARK (gchat-crypto-error-quark, gchat_crypto_error)

struct _GchatAead
{
  /* One handle for the life of the key: ChaCha20-Poly1305 has no expensive key schedule, but
   * opening a handle per message would allocate on every frame. It lives in normal memory, not
   * the small secure pool, because a server keeps one per session. */
  gcry_cipher_hd_t hd;
};

/* The outcome of the one-time initialisation, kept as a number so that every later caller can
 * build its own GError from it. Zero is reserved by g_once_init_enter(). */
typedef enum {
  INIT_OK = 1,
  INIT_TOO_OLD,
  INIT_SECMEM_FAILED,
  INIT_FINISH_FAILED,
  INIT_ALGORITHM_MISSING,
} CryptoInitResult;

static CryptoInitResult
crypto_init_once (void)
{
  if (gcry_check_version (GCHAT_GCRYPT_MIN_VERSION) == NULL)
    return INIT_TOO_OLD;

  /* Another library in this process may have set libgcrypt up already; its choice stands. */
  if (!gcry_control (GCRYCTL_INITIALIZATION_FINISHED_P))
    {
      gpointer probe;

      /* When the pool cannot be locked in RAM (an unprivileged user over RLIMIT_MEMLOCK),
       * libgcrypt still uses it, unlocked, but reports GPG_ERR_GENERAL here and would warn
       * on stderr. Neither should stop a chat client, so the result is ignored and the pool
       * probed below instead. */
      gcry_control (GCRYCTL_DISABLE_SECMEM_WARN);
      gcry_control (GCRYCTL_INIT_SECMEM, GCHAT_SECMEM_SIZE, 0);
      if (gcry_control (GCRYCTL_INITIALIZATION_FINISHED, 0) != 0)
        return INIT_FINISH_FAILED;

      probe = gcry_malloc_secure (16);
      if (probe == NULL)
        return INIT_SECMEM_FAILED;
      gcry_free (probe);
    }

  /* A FIPS-mode or stripped-down build may lack what the protocol cannot do without. */
  if (gcry_md_test_algo (GCRY_MD_SHA256) != 0 || gcry_cipher_test_algo (GCRY_CIPHER_CHACHA20) != 0)
    return INIT_ALGORITHM_MISSING;

  return INIT_OK;
}

gboolean
gchat_crypto_init (GError **error)
{
  static gsize result = 0;

  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (g_once_init_enter (&result))
    g_once_init_leave (&result, crypto_init_once ());

  switch ((CryptoInitResult) result)
    {
      case INIT_OK:
        return TRUE;
      case INIT_TOO_OLD:
        g_set_error (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_INIT,
                     _("The libgcrypt library is version %s, but gchat needs %s or newer"),
                     gcry_check_version (NULL), GCHAT_GCRYPT_MIN_VERSION);
        return FALSE;
      case INIT_SECMEM_FAILED:
        g_set_error_literal (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_INIT,
                             _("Could not set up libgcrypt’s secure memory"));
        return FALSE;
      case INIT_ALGORITHM_MISSING:
        g_set_error_literal (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_INIT,
                             _("This libgcrypt lacks SHA-256 or ChaCha20 (is it in FIPS mode?)"));
        return FALSE;
      case INIT_FINISH_FAILED:
      default:
        g_set_error_literal (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_INIT,
                             _("Could not initialise the libgcrypt library"));
        return FALSE;
    }
}

/* For the functions that have no GError to report with. A program is expected to call
 * gchat_crypto_init() at startup and stop there with its message; if it did not, carrying on
 * without libgcrypt would hand out predictable "random" bytes or wrong hashes, so abort. */
static void
crypto_require_init (void)
{
  g_autoptr (GError) error = NULL;

  if (G_LIKELY (gchat_crypto_init (&error)))
    return;

  g_error ("%s", error->message);
}

/* libgcrypt only fails these for an unknown algorithm or bad flags, both ruled out once
 * initialisation has tested SHA-256, so a failure means a broken library. */
static void
hash_buffers (unsigned int          flags,
              guint8               *out,
              const gcry_buffer_t  *iov,
              int                   iovcnt)
{
  gcry_error_t err;

  err = gcry_md_hash_buffers (GCRY_MD_SHA256, flags, out, iov, iovcnt);
  if (G_UNLIKELY (err != 0))
    g_error ("libgcrypt refused to compute SHA-256: %s", gcry_strerror (err));
}

/* gcry_buffer_t wants a mutable pointer; libgcrypt only reads through it. A NULL pointer with
 * length zero becomes "" so that libgcrypt never sees NULL. */
static gcry_buffer_t
buffer_for (gconstpointer data,
            gsize         len)
{
  gcry_buffer_t buf = { 0 };

  buf.data = data != NULL ? (gpointer) data : (gpointer) "";
  buf.len = len;
  buf.size = len;
  return buf;
}

void
gchat_random_bytes (guint8 *buf,
                    gsize   len)
{
  g_return_if_fail (buf != NULL || len == 0);

  crypto_require_init ();
  if (len > 0)
    gcry_randomize (buf, len, GCRY_STRONG_RANDOM);
}

void
gchat_memzero (gpointer mem,
               gsize    len)
{
  g_return_if_fail (mem != NULL || len == 0);

  if (len == 0)
    return;

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 25))
  explicit_bzero (mem, len);
#else
  {
    /* Stores through a volatile pointer are observable behaviour the compiler must keep. */
    volatile guint8 *p = mem;

    while (len-- > 0)
      *p++ = 0;
  }
#endif
}

/* The allocation behind a wiped buffer: the size to wipe, then the bytes handed out. */
typedef struct
{
  gsize  size;
  guint8 data[];
} WipedBuffer;

static WipedBuffer *
wiped_buffer_from_data (gpointer data)
{
  return (WipedBuffer *) ((guint8 *) data - G_STRUCT_OFFSET (WipedBuffer, data));
}

guint8 *
gchat_wiped_buffer_new (gsize size)
{
  WipedBuffer *buffer;

  g_return_val_if_fail (size <= G_MAXSIZE - sizeof (WipedBuffer), NULL);

  buffer = g_malloc (sizeof (WipedBuffer) + size);
  buffer->size = size;
  return buffer->data;
}

void
gchat_wiped_buffer_free (gpointer data)
{
  WipedBuffer *buffer;

  if (data == NULL)
    return;

  /* The whole allocation, not only the part a GBytes showed: a caller may have used less. */
  buffer = wiped_buffer_from_data (data);
  gchat_memzero (buffer->data, buffer->size);
  g_free (buffer);
}

GBytes *
gchat_wiped_buffer_to_bytes (guint8 *data,
                             gsize   len)
{
  g_return_val_if_fail (data != NULL, NULL);
  g_return_val_if_fail (len <= wiped_buffer_from_data (data)->size, NULL);

  return g_bytes_new_with_free_func (data, len, gchat_wiped_buffer_free, data);
}

GBytes *
gchat_bytes_new_wiped (const guint8 *data,
                       gsize         len)
{
  guint8 *copy;

  g_return_val_if_fail (data != NULL || len == 0, NULL);

  copy = gchat_wiped_buffer_new (len);
  if (len > 0)
    memcpy (copy, data, len);
  return gchat_wiped_buffer_to_bytes (copy, len);
}

gboolean
gchat_constant_time_equal (gconstpointer a,
                           gconstpointer b,
                           gsize         len)
{
  const guint8   *pa = a;
  const guint8   *pb = b;
  volatile guint8 diff = 0;

  g_return_val_if_fail (a != NULL || len == 0, FALSE);
  g_return_val_if_fail (b != NULL || len == 0, FALSE);

  /* Every byte is looked at whatever the earlier ones were; the volatile accumulator keeps
   * the compiler from turning the loop into an early exit. */
  for (gsize i = 0; i < len; i++)
    diff |= pa[i] ^ pb[i];

  return diff == 0;
}

void
gchat_sha256 (const guint8 *data,
              gsize         len,
              guint8        out[GCHAT_SHA256_SIZE])
{
  gcry_buffer_t iov;

  g_return_if_fail (data != NULL || len == 0);
  g_return_if_fail (out != NULL);

  crypto_require_init ();
  iov = buffer_for (data, len);
  hash_buffers (0, out, &iov, 1);
}

/* The parts end at the first NULL data pointer, so a part cannot itself be NULL: pass "" for
 * an empty part. Lengths are read as gsize, so literals must be cast. */
void
gchat_sha256_parts (guint8        out[GCHAT_SHA256_SIZE],
                    const guint8 *first_data,
                    ...)
{
  g_autoptr (GArray) iov = NULL;
  const guint8 *data;
  va_list       ap;

  g_return_if_fail (out != NULL);

  crypto_require_init ();
  iov = g_array_sized_new (FALSE, TRUE, sizeof (gcry_buffer_t), 4);

  va_start (ap, first_data);
  for (data = first_data; data != NULL; data = va_arg (ap, const guint8 *))
    {
      gsize         len = va_arg (ap, gsize);
      gcry_buffer_t buf = buffer_for (data, len);

      g_array_append_val (iov, buf);
    }
  va_end (ap);

  if (iov->len > G_MAXINT)
    g_error ("gchat_sha256_parts: too many parts");

  hash_buffers (0, out, (const gcry_buffer_t *) (gpointer) iov->data, (int) iov->len);
}

/* HMAC-SHA256 over the concatenation of @parts. libgcrypt takes the key as the first buffer of
 * a GCRY_MD_FLAG_HMAC hash, which saves opening a handle per call. */
static void
hmac_sha256_parts (const guint8        *key,
                   gsize                key_len,
                   const gcry_buffer_t *parts,
                   int                  n_parts,
                   guint8               out[GCHAT_SHA256_SIZE])
{
  gcry_buffer_t iov[4];

  g_assert (n_parts >= 0 && n_parts < (int) G_N_ELEMENTS (iov));

  iov[0] = buffer_for (key, key_len);
  for (int i = 0; i < n_parts; i++)
    iov[i + 1] = parts[i];

  hash_buffers (GCRY_MD_FLAG_HMAC, out, iov, n_parts + 1);
}

void
gchat_hmac_sha256 (const guint8 *key,
                   gsize         key_len,
                   const guint8 *data,
                   gsize         len,
                   guint8        out[GCHAT_SHA256_SIZE])
{
  gcry_buffer_t part;

  g_return_if_fail (key != NULL || key_len == 0);
  g_return_if_fail (data != NULL || len == 0);
  g_return_if_fail (out != NULL);

  crypto_require_init ();
  part = buffer_for (data, len);
  hmac_sha256_parts (key, key_len, &part, 1, out);
}

void
gchat_hkdf_extract (const guint8 *salt,
                    gsize         salt_len,
                    const guint8 *ikm,
                    gsize         ikm_len,
                    guint8        prk[GCHAT_SHA256_SIZE])
{
  static const guint8 zero_salt[GCHAT_SHA256_SIZE] = { 0 };

  g_return_if_fail (salt != NULL || salt_len == 0);
  g_return_if_fail (ikm != NULL || ikm_len == 0);
  g_return_if_fail (prk != NULL);

  /* RFC 5869 section 2.2: no salt means HashLen zero bytes. (HMAC pads short keys with zeros,
   * so this gives the same result as an empty key; it is spelled out to match the RFC.) */
  if (salt == NULL || salt_len == 0)
    {
      salt = zero_salt;
      salt_len = sizeof zero_salt;
    }

  gchat_hmac_sha256 (salt, salt_len, ikm, ikm_len, prk);
}

gboolean
gchat_hkdf_expand (const guint8 *prk,
                   gsize         prk_len,
                   const guint8 *info,
                   gsize         info_len,
                   guint8       *okm,
                   gsize         okm_len,
                   GError      **error)
{
  guint8 block[GCHAT_SHA256_SIZE];
  gsize  previous_len = 0;
  guint8 counter = 0;

  g_return_val_if_fail (prk != NULL, FALSE);
  g_return_val_if_fail (info != NULL || info_len == 0, FALSE);
  g_return_val_if_fail (okm != NULL || okm_len == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!gchat_crypto_init (error))
    return FALSE;

  if (prk_len < GCHAT_SHA256_SIZE)
    {
      g_set_error (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_INVALID_ARGUMENT,
                   _("HKDF needs a pseudorandom key of at least %d bytes, not %zu"),
                   GCHAT_SHA256_SIZE, prk_len);
      return FALSE;
    }
  if (okm_len > HKDF_MAX_OKM)
    {
      g_set_error (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_INVALID_ARGUMENT,
                   _("HKDF-SHA256 can derive at most %d bytes, not %zu"),
                   HKDF_MAX_OKM, okm_len);
      return FALSE;
    }

  /* T(i) = HMAC(PRK, T(i-1) | info | i), with T(0) empty. */
  for (gsize done = 0; done < okm_len; done += sizeof block)
    {
      gcry_buffer_t parts[3];

      counter++;
      parts[0] = buffer_for (block, previous_len);
      parts[1] = buffer_for (info, info_len);
      parts[2] = buffer_for (&counter, 1);
      hmac_sha256_parts (prk, prk_len, parts, G_N_ELEMENTS (parts), block);

      memcpy (okm + done, block, MIN (sizeof block, okm_len - done));
      previous_len = sizeof block;
    }

  gchat_memzero (block, sizeof block);
  return TRUE;
}

gboolean
gchat_hkdf (const guint8 *salt,
            gsize         salt_len,
            const guint8 *ikm,
            gsize         ikm_len,
            const guint8 *info,
            gsize         info_len,
            guint8       *okm,
            gsize         okm_len,
            GError      **error)
{
  guint8   prk[GCHAT_SHA256_SIZE];
  gboolean ok;

  g_return_val_if_fail (salt != NULL || salt_len == 0, FALSE);
  g_return_val_if_fail (ikm != NULL || ikm_len == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!gchat_crypto_init (error))
    return FALSE;

  gchat_hkdf_extract (salt, salt_len, ikm, ikm_len, prk);
  ok = gchat_hkdf_expand (prk, sizeof prk, info, info_len, okm, okm_len, error);
  gchat_memzero (prk, sizeof prk);
  return ok;
}

GchatAead *
gchat_aead_new (const guint8 *key,
                GError      **error)
{
  g_autoptr (GchatAead) aead = NULL;
  gcry_error_t err;

  g_return_val_if_fail (key != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!gchat_crypto_init (error))
    return NULL;

  aead = g_new0 (GchatAead, 1);
  err = gcry_cipher_open (&aead->hd, GCRY_CIPHER_CHACHA20, GCRY_CIPHER_MODE_POLY1305, 0);
  if (err == 0)
    err = gcry_cipher_setkey (aead->hd, key, GCHAT_KEY_SIZE);
  if (err != 0)
    {
      g_set_error (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_FAILED,
                   _("Could not set up ChaCha20-Poly1305: %s"), gcry_strerror (err));
      return NULL;
    }

  return g_steal_pointer (&aead);
}

void
gchat_aead_free (GchatAead *aead)
{
  if (aead == NULL)
    return;

  /* gcry_cipher_close() wipes the key schedule before freeing it. */
  if (aead->hd != NULL)
    gcry_cipher_close (aead->hd);
  gchat_memzero (aead, sizeof *aead);
  g_free (aead);
}

/* Starts one message: a new nonce resets the Poly1305 state, then the associated data. */
static gcry_error_t
aead_begin (GchatAead    *aead,
            const guint8 *nonce,
            const guint8 *aad,
            gsize         aad_len)
{
  gcry_error_t err;

  err = gcry_cipher_setiv (aead->hd, nonce, GCHAT_AEAD_NONCE_SIZE);
  if (err == 0 && aad_len > 0)
    err = gcry_cipher_authenticate (aead->hd, aad, aad_len);
  return err;
}

static gboolean
aead_check_length (guint64  len,
                   GError **error)
{
  if (len <= AEAD_MAX_PLAIN)
    return TRUE;

  g_set_error_literal (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_INVALID_ARGUMENT,
                       _("The message is too long for ChaCha20-Poly1305"));
  return FALSE;
}

gboolean
gchat_aead_seal (GchatAead    *aead,
                 const guint8 *nonce,
                 const guint8 *aad,
                 gsize         aad_len,
                 const guint8 *plain,
                 gsize         len,
                 guint8       *out,
                 GError      **error)
{
  gcry_error_t err;

  g_return_val_if_fail (aead != NULL, FALSE);
  g_return_val_if_fail (nonce != NULL, FALSE);
  g_return_val_if_fail (aad != NULL || aad_len == 0, FALSE);
  g_return_val_if_fail (plain != NULL || len == 0, FALSE);
  g_return_val_if_fail (out != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!gchat_crypto_init (error) || !aead_check_length (len, error))
    return FALSE;

  err = aead_begin (aead, nonce, aad, aad_len);
  if (err == 0 && len > 0)
    err = gcry_cipher_encrypt (aead->hd, out, len, plain, len);
  if (err == 0)
    err = gcry_cipher_gettag (aead->hd, out + len, GCHAT_AEAD_TAG_SIZE);
  if (err != 0)
    {
      g_set_error (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_FAILED,
                   _("Could not encrypt the message: %s"), gcry_strerror (err));
      return FALSE;
    }

  return TRUE;
}

gboolean
gchat_aead_open (GchatAead    *aead,
                 const guint8 *nonce,
                 const guint8 *aad,
                 gsize         aad_len,
                 const guint8 *sealed,
                 gsize         sealed_len,
                 guint8       *out,
                 GError      **error)
{
  gcry_error_t err;
  gsize        len;

  g_return_val_if_fail (aead != NULL, FALSE);
  g_return_val_if_fail (nonce != NULL, FALSE);
  g_return_val_if_fail (aad != NULL || aad_len == 0, FALSE);
  g_return_val_if_fail (sealed != NULL || sealed_len == 0, FALSE);
  g_return_val_if_fail (out != NULL || sealed_len <= GCHAT_AEAD_TAG_SIZE, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!gchat_crypto_init (error))
    return FALSE;

  /* Too short to hold a tag: it cannot be authentic, and there is nothing to write. */
  if (sealed_len < GCHAT_AEAD_TAG_SIZE)
    {
      g_set_error_literal (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_DECRYPT,
                           _("Message authentication failed: the message is truncated"));
      return FALSE;
    }

  len = sealed_len - GCHAT_AEAD_TAG_SIZE;
  if (!aead_check_length (len, error))
    return FALSE;

  /* libgcrypt computes the tag while it decrypts, so the plaintext exists in @out before the
   * tag is known to be good; it is wiped again below if it is not. */
  err = aead_begin (aead, nonce, aad, aad_len);
  if (err == 0 && len > 0)
    err = gcry_cipher_decrypt (aead->hd, out, len, sealed, len);
  if (err == 0)
    err = gcry_cipher_checktag (aead->hd, sealed + len, GCHAT_AEAD_TAG_SIZE);
  if (err == 0)
    return TRUE;

  if (len > 0)
    gchat_memzero (out, len);

  if (gcry_err_code (err) == GPG_ERR_CHECKSUM)
    g_set_error_literal (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_DECRYPT,
                         _("Message authentication failed: it was damaged or forged"));
  else
    g_set_error (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_FAILED,
                 _("Could not decrypt the message: %s"), gcry_strerror (err));
  return FALSE;
}

/* RFC 7748 section 5: clear the three low bits and the top bit, set bit 254. */
static void
x25519_clamp (guint8 scalar[GCHAT_X25519_SIZE])
{
  scalar[0] &= 248;
  scalar[31] &= 127;
  scalar[31] |= 64;
}

/* Scalar multiplication on a clamped copy of @secret; @point NULL means the base point.
 * libgcrypt 1.10 clamps too, and masks the top bit of the u-coordinate (the RFC 7748 test
 * vectors in test-crypto check both), but clamping here keeps the promise of the header
 * independent of that; clamping twice changes nothing. */
static gboolean
x25519_multiply (const guint8 *secret,
                 const guint8 *point,
                 guint8       *result,
                 GError      **error)
{
  guint8       scalar[GCHAT_X25519_SIZE];
  gcry_error_t err;

  memcpy (scalar, secret, sizeof scalar);
  x25519_clamp (scalar);
  err = gcry_ecc_mul_point (GCRY_ECC_CURVE25519, result, scalar, point);
  gchat_memzero (scalar, sizeof scalar);

  if (err != 0)
    {
      gchat_memzero (result, GCHAT_X25519_SIZE);
      g_set_error (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_FAILED,
                   _("X25519 key agreement failed: %s"), gcry_strerror (err));
      return FALSE;
    }

  return TRUE;
}

gboolean
gchat_x25519_keypair (guint8   secret[GCHAT_X25519_SIZE],
                      guint8   public_key[GCHAT_X25519_SIZE],
                      GError **error)
{
  g_return_val_if_fail (secret != NULL, FALSE);
  g_return_val_if_fail (public_key != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!gchat_crypto_init (error))
    return FALSE;

  /* Stored clamped, so that the secret on disk is the scalar actually used. */
  gchat_random_bytes (secret, GCHAT_X25519_SIZE);
  x25519_clamp (secret);

  if (!x25519_multiply (secret, NULL, public_key, error))
    {
      gchat_memzero (secret, GCHAT_X25519_SIZE);
      return FALSE;
    }

  return TRUE;
}

gboolean
gchat_x25519_public (const guint8 secret[GCHAT_X25519_SIZE],
                     guint8       public_key[GCHAT_X25519_SIZE],
                     GError     **error)
{
  g_return_val_if_fail (secret != NULL, FALSE);
  g_return_val_if_fail (public_key != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!gchat_crypto_init (error))
    return FALSE;

  return x25519_multiply (secret, NULL, public_key, error);
}

gboolean
gchat_x25519 (const guint8 secret[GCHAT_X25519_SIZE],
              const guint8 peer_public[GCHAT_X25519_SIZE],
              guint8       shared[GCHAT_X25519_SIZE],
              GError     **error)
{
  static const guint8 zero[GCHAT_X25519_SIZE] = { 0 };

  g_return_val_if_fail (secret != NULL, FALSE);
  g_return_val_if_fail (peer_public != NULL, FALSE);
  g_return_val_if_fail (shared != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!gchat_crypto_init (error))
    return FALSE;

  if (!x25519_multiply (secret, peer_public, shared, error))
    return FALSE;

  /* RFC 7748 section 6.1: a low-order peer key forces the all-zero secret, which would let
   * an attacker pick the session key. The comparison runs in constant time. */
  if (gchat_constant_time_equal (shared, zero, GCHAT_X25519_SIZE))
    {
      g_set_error_literal (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_WEAK_KEY,
                           _("The peer’s public key is invalid (it gives an all-zero secret)"));
      return FALSE;
    }

  return TRUE;
}

void
gchat_argon2_params_init_default (GchatArgon2Params *params)
{
  g_return_if_fail (params != NULL);

  params->memory_kib = GCHAT_ARGON2_DEFAULT_MEMORY_KIB;
  params->iterations = GCHAT_ARGON2_DEFAULT_ITERATIONS;
  params->parallelism = GCHAT_ARGON2_DEFAULT_PARALLELISM;
}

gboolean
gchat_argon2_params_validate (const GchatArgon2Params *params,
                              GError                 **error)
{
  g_return_val_if_fail (params != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (params->parallelism < 1 || params->parallelism > GCHAT_ARGON2_MAX_PARALLELISM)
    g_set_error (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_INVALID_ARGUMENT,
                 _("Argon2id parallelism must be between 1 and %u, not %u"),
                 (guint) GCHAT_ARGON2_MAX_PARALLELISM, params->parallelism);
  else if (params->iterations < 1 || params->iterations > GCHAT_ARGON2_MAX_ITERATIONS)
    g_set_error (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_INVALID_ARGUMENT,
                 _("Argon2id iterations must be between 1 and %u, not %u"),
                 (guint) GCHAT_ARGON2_MAX_ITERATIONS, params->iterations);
  else if (params->memory_kib < GCHAT_ARGON2_MIN_MEMORY_KIB
           || params->memory_kib > GCHAT_ARGON2_MAX_MEMORY_KIB)
    g_set_error (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_INVALID_ARGUMENT,
                 _("Argon2id memory must be between %u and %u KiB, not %u KiB"),
                 (guint) GCHAT_ARGON2_MIN_MEMORY_KIB, (guint) GCHAT_ARGON2_MAX_MEMORY_KIB,
                 params->memory_kib);
  else if (params->memory_kib < 8 * params->parallelism)
    g_set_error (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_INVALID_ARGUMENT,
                 _("Argon2id needs at least 8 KiB of memory per lane: %u KiB for %u lanes"),
                 8 * params->parallelism, params->parallelism);
  else
    return TRUE;

  return FALSE;
}

/* The checks on the inputs that RFC 9106 and libgcrypt impose beyond the cost parameters. */
static gboolean
argon2_check_inputs (const GchatArgon2Params *params,
                     gsize                    password_len,
                     gsize                    salt_len,
                     gsize                    secret_len,
                     gsize                    ad_len,
                     gsize                    out_len,
                     GError                 **error)
{
  guint64 blocks;

  if (!gchat_argon2_params_validate (params, error))
    return FALSE;

  /* libgcrypt 1.10 sizes its work area as 1024 * blocks in 32-bit arithmetic, so exactly
   * 4 GiB (counting the blocks it really uses, a multiple of 4 per lane) wraps to zero. */
  blocks = params->memory_kib / (4 * params->parallelism) * 4 * params->parallelism;

  if (salt_len < ARGON2_MIN_SALT || salt_len > ARGON2_MAX_INPUT)
    g_set_error (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_INVALID_ARGUMENT,
                 _("The Argon2id salt must be at least %d bytes long"), ARGON2_MIN_SALT);
  else if (out_len < ARGON2_MIN_OUT || out_len > ARGON2_MAX_OUT)
    g_set_error (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_INVALID_ARGUMENT,
                 _("Argon2id can produce between %d and %d bytes, not %zu"),
                 ARGON2_MIN_OUT, ARGON2_MAX_OUT, out_len);
  else if (password_len == 0)
    g_set_error_literal (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_INVALID_ARGUMENT,
                         _("The password must not be empty"));
  else if (password_len > ARGON2_MAX_INPUT || secret_len > ARGON2_MAX_INPUT
           || ad_len > ARGON2_MAX_INPUT)
    g_set_error_literal (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_INVALID_ARGUMENT,
                         _("An Argon2id input is longer than 4 GiB"));
  else if (blocks * 1024 > G_MAXUINT32)
    g_set_error (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_INVALID_ARGUMENT,
                 _("Argon2id memory of %u KiB is more than this libgcrypt supports"),
                 params->memory_kib);
  else
    return TRUE;

  return FALSE;
}

gboolean
gchat_argon2id (const GchatArgon2Params *params,
                const guint8            *password,
                gsize                    password_len,
                const guint8            *salt,
                gsize                    salt_len,
                const guint8            *secret,
                gsize                    secret_len,
                const guint8            *ad,
                gsize                    ad_len,
                guint8                  *out,
                gsize                    out_len,
                GError                 **error)
{
  gcry_kdf_hd_t hd = NULL;
  gcry_error_t  err;
  unsigned long param[4];

  g_return_val_if_fail (params != NULL, FALSE);
  g_return_val_if_fail (password != NULL || password_len == 0, FALSE);
  g_return_val_if_fail (salt != NULL || salt_len == 0, FALSE);
  g_return_val_if_fail (secret != NULL || secret_len == 0, FALSE);
  g_return_val_if_fail (ad != NULL || ad_len == 0, FALSE);
  g_return_val_if_fail (out != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!gchat_crypto_init (error)
      || !argon2_check_inputs (params, password_len, salt_len, secret_len, ad_len, out_len, error))
    return FALSE;

  param[0] = out_len;
  param[1] = params->iterations;
  param[2] = params->memory_kib;
  param[3] = params->parallelism;

  err = gcry_kdf_open (&hd, GCRY_KDF_ARGON2, GCRY_KDF_ARGON2ID, param, G_N_ELEMENTS (param),
                       password, password_len, salt, salt_len,
                       secret_len > 0 ? secret : NULL, secret_len,
                       ad_len > 0 ? ad : NULL, ad_len);
  if (err == 0)
    {
      /* No thread operations: the lanes run one after the other in this thread. Callers
       * already keep Argon2id off the main loop with g_task_run_in_thread(). */
      err = gcry_kdf_compute (hd, NULL);
      if (err == 0)
        err = gcry_kdf_final (hd, out_len, out);
      gcry_kdf_close (hd);
    }

  if (err != 0)
    {
      gchat_memzero (out, out_len);
      g_set_error (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_FAILED,
                   _("Could not derive the key with Argon2id: %s"), gcry_strerror (err));
      return FALSE;
    }

  return TRUE;
}

char *
gchat_fingerprint_format (const guint8 digest[GCHAT_SHA256_SIZE])
{
  static const char hex[] = "0123456789abcdef";
  char             *text;
  char             *p;

  g_return_val_if_fail (digest != NULL, NULL);

  /* 64 digits, 15 spaces and the terminating NUL. */
  text = g_malloc (GCHAT_SHA256_SIZE * 2 + GCHAT_SHA256_SIZE / 2);
  p = text;
  for (gsize i = 0; i < GCHAT_SHA256_SIZE; i++)
    {
      if (i > 0 && i % 2 == 0)
        *p++ = ' ';
      *p++ = hex[digest[i] >> 4];
      *p++ = hex[digest[i] & 0x0f];
    }
  *p = '\0';

  return text;
}

void
gchat_crypto_shutdown (void)
{
  gcry_control (GCRYCTL_CLOSE_RANDOM_DEVICE, 0);
}
