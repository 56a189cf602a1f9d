/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Cryptographic primitives on libgcrypt: random, SHA-256, HMAC, HKDF, AEAD, X25519, Argon2id. */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define GCHAT_CRYPTO_ERROR (gchat_crypto_error_quark ())

typedef enum {
  GCHAT_CRYPTO_ERROR_INIT,             /* libgcrypt missing, too old or unusable */
  GCHAT_CRYPTO_ERROR_FAILED,           /* libgcrypt refused an operation */
  GCHAT_CRYPTO_ERROR_DECRYPT,          /* ciphertext did not authenticate */
  GCHAT_CRYPTO_ERROR_WEAK_KEY,         /* X25519 gave the all-zero secret */
  GCHAT_CRYPTO_ERROR_INVALID_ARGUMENT, /* sizes or parameters out of range */
} GchatCryptoError;

#define GCHAT_KEY_SIZE         32
#define GCHAT_SHA256_SIZE      32
#define GCHAT_AEAD_NONCE_SIZE  12
#define GCHAT_AEAD_TAG_SIZE    16
#define GCHAT_X25519_SIZE      32

/* Argon2id cost. The defaults follow OWASP's minimum (19 MiB, t=2, p=1). */
typedef struct {
  guint32 memory_kib;
  guint32 iterations;
  guint32 parallelism;
} GchatArgon2Params;

#define GCHAT_ARGON2_DEFAULT_MEMORY_KIB  19456
#define GCHAT_ARGON2_DEFAULT_ITERATIONS  2
#define GCHAT_ARGON2_DEFAULT_PARALLELISM 1
#define GCHAT_ARGON2_MIN_MEMORY_KIB      8
#define GCHAT_ARGON2_MAX_MEMORY_KIB      (2 * 1024 * 1024) /* 2 GiB; libgcrypt 1.10 overflows at 4 */
#define GCHAT_ARGON2_MAX_ITERATIONS      64
#define GCHAT_ARGON2_MAX_PARALLELISM     16

GQuark    gchat_crypto_error_quark      (void);

/* Initialises libgcrypt once (thread-safe, idempotent): version check, secure memory pool,
 * no "insecure memory" warning on stderr. Every other function here calls it. */
gboolean  gchat_crypto_init             (GError        **error);

/* Releases what libgcrypt keeps for the process's lifetime (the random pool's buffers), so leak
 * checkers see a clean exit. Call it last, from main, when no thread uses crypto any more. */
void      gchat_crypto_shutdown         (void);

/* Fills @buf with strong random bytes (GCRY_STRONG_RANDOM). */
void      gchat_random_bytes            (guint8         *buf,
                                         gsize           len);

/* Overwrites @len bytes at @mem in a way the compiler cannot drop. */
void      gchat_memzero                 (gpointer        mem,
                                         gsize           len);

/* A buffer for secrets that is overwritten when freed. gchat_wiped_buffer_new() allocates @size
 * bytes (not cleared); fill them, then either free the buffer with gchat_wiped_buffer_free() (a
 * GDestroyNotify) or hand it, with its first @len bytes in use, to a GBytes that wipes and frees
 * it when its last reference goes. No copy of the secret is made on the way. */
guint8   *gchat_wiped_buffer_new        (gsize           size);
void      gchat_wiped_buffer_free       (gpointer        data);
GBytes   *gchat_wiped_buffer_to_bytes   (guint8         *data,
                                         gsize           len);
/* A GBytes holding a copy of @data that is wiped when its last reference goes. */
GBytes   *gchat_bytes_new_wiped         (const guint8   *data,
                                         gsize           len);

/* Compares two buffers in time that depends only on @len. */
gboolean  gchat_constant_time_equal     (gconstpointer   a,
                                         gconstpointer   b,
                                         gsize           len);

void      gchat_sha256                  (const guint8   *data,
                                         gsize           len,
                                         guint8          out[GCHAT_SHA256_SIZE]);

/* SHA-256 over several parts: (const guint8 *data, gsize len) pairs ended by NULL. */
void      gchat_sha256_parts            (guint8          out[GCHAT_SHA256_SIZE],
                                         const guint8   *first_data,
                                         ...) G_GNUC_NULL_TERMINATED;

void      gchat_hmac_sha256             (const guint8   *key,
                                         gsize           key_len,
                                         const guint8   *data,
                                         gsize           len,
                                         guint8          out[GCHAT_SHA256_SIZE]);

/* HKDF-SHA256 (RFC 5869). A NULL or empty salt means 32 zero bytes, as the RFC says. */
void      gchat_hkdf_extract            (const guint8   *salt,
                                         gsize           salt_len,
                                         const guint8   *ikm,
                                         gsize           ikm_len,
                                         guint8          prk[GCHAT_SHA256_SIZE]);
gboolean  gchat_hkdf_expand             (const guint8   *prk,
                                         gsize           prk_len,
                                         const guint8   *info,
                                         gsize           info_len,
                                         guint8         *okm,
                                         gsize           okm_len,
                                         GError        **error);
gboolean  gchat_hkdf                    (const guint8   *salt,
                                         gsize           salt_len,
                                         const guint8   *ikm,
                                         gsize           ikm_len,
                                         const guint8   *info,
                                         gsize           info_len,
                                         guint8         *okm,
                                         gsize           okm_len,
                                         GError        **error);

/* ChaCha20-Poly1305 (RFC 8439) with a 256-bit key. The handle keeps the key; reuse it. */
typedef struct _GchatAead GchatAead;

GchatAead *gchat_aead_new               (const guint8   *key,
                                         GError        **error);
void       gchat_aead_free              (GchatAead      *aead);
/* Writes @len + GCHAT_AEAD_TAG_SIZE bytes to @out (ciphertext then tag). */
gboolean   gchat_aead_seal              (GchatAead      *aead,
                                         const guint8   *nonce,
                                         const guint8   *aad,
                                         gsize           aad_len,
                                         const guint8   *plain,
                                         gsize           len,
                                         guint8         *out,
                                         GError        **error);
/* Reads @sealed_len bytes (ciphertext then tag), writes @sealed_len - GCHAT_AEAD_TAG_SIZE bytes
 * to @out. On GCHAT_CRYPTO_ERROR_DECRYPT nothing usable is left in @out (it is wiped). */
gboolean   gchat_aead_open              (GchatAead      *aead,
                                         const guint8   *nonce,
                                         const guint8   *aad,
                                         gsize           aad_len,
                                         const guint8   *sealed,
                                         gsize           sealed_len,
                                         guint8         *out,
                                         GError        **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (GchatAead, gchat_aead_free)

/* X25519 (RFC 7748). The secret is clamped as the RFC says. */
gboolean  gchat_x25519_keypair          (guint8          secret[GCHAT_X25519_SIZE],
                                         guint8          public_key[GCHAT_X25519_SIZE],
                                         GError        **error);
gboolean  gchat_x25519_public           (const guint8    secret[GCHAT_X25519_SIZE],
                                         guint8          public_key[GCHAT_X25519_SIZE],
                                         GError        **error);
/* Fails with GCHAT_CRYPTO_ERROR_WEAK_KEY on an all-zero result (RFC 7748 section 6.1). */
gboolean  gchat_x25519                  (const guint8    secret[GCHAT_X25519_SIZE],
                                         const guint8    peer_public[GCHAT_X25519_SIZE],
                                         guint8          shared[GCHAT_X25519_SIZE],
                                         GError        **error);

/* Argon2id (RFC 9106) through gcry_kdf_open. @secret and @ad may be NULL. */
gboolean  gchat_argon2id                (const GchatArgon2Params *params,
                                         const guint8   *password,
                                         gsize           password_len,
                                         const guint8   *salt,
                                         gsize           salt_len,
                                         const guint8   *secret,
                                         gsize           secret_len,
                                         const guint8   *ad,
                                         gsize           ad_len,
                                         guint8         *out,
                                         gsize           out_len,
                                         GError        **error);
void      gchat_argon2_params_init_default (GchatArgon2Params *params);
gboolean  gchat_argon2_params_validate  (const GchatArgon2Params *params,
                                         GError        **error);

/* Formats a SHA-256 digest for people to read aloud and compare: 16 groups of 4 lower-case
 * hex digits separated by spaces, "3f2a 9c01 …". */
char     *gchat_fingerprint_format      (const guint8    digest[GCHAT_SHA256_SIZE]);

G_END_DECLS
