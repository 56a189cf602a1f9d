/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The server's RSA key: generation, PEM files, fingerprints and RSA-OAEP (SHA-256) key wrapping. */

#pragma once

#include <glib-object.h>

#include "gchat-crypto.h"

G_BEGIN_DECLS

#define GCHAT_RSA_KEY_ERROR (gchat_rsa_key_error_quark ())

typedef enum {
  GCHAT_RSA_KEY_ERROR_FORMAT,      /* the file or DER is not a key we can read */
  GCHAT_RSA_KEY_ERROR_TOO_WEAK,    /* fewer than GCHAT_RSA_KEY_MIN_BITS bits */
  GCHAT_RSA_KEY_ERROR_NO_PRIVATE,  /* the operation needs the private half */
  GCHAT_RSA_KEY_ERROR_UNWRAP,      /* an OAEP ciphertext did not decode */
  GCHAT_RSA_KEY_ERROR_FAILED,      /* libgcrypt refused */
} GchatRsaKeyError;

#define GCHAT_RSA_KEY_BITS     3072
#define GCHAT_RSA_KEY_MIN_BITS 2048
/* Largest key file read, public or private; anything larger is refused unread. */
#define GCHAT_RSA_KEY_MAX_FILE (64 * 1024)

#define GCHAT_TYPE_RSA_KEY (gchat_rsa_key_get_type ())
G_DECLARE_FINAL_TYPE (GchatRsaKey, gchat_rsa_key, GCHAT, RSA_KEY, GObject)

GQuark       gchat_rsa_key_error_quark           (void);

/* Slow (about a second for 3072 bits): call it off the main loop. */
GchatRsaKey *gchat_rsa_key_generate              (guint          bits,
                                                  GError       **error);
/* Private key file: PEM "RSA PRIVATE KEY" (PKCS#1). Refused if group- or world-readable. */
GchatRsaKey *gchat_rsa_key_load_private          (const char    *path,
                                                  GError       **error);
/* Public key file: PEM "PUBLIC KEY" (X.509 SubjectPublicKeyInfo, as `openssl pkey -pubout`). */
GchatRsaKey *gchat_rsa_key_load_public           (const char    *path,
                                                  GError       **error);
GchatRsaKey *gchat_rsa_key_new_from_public_der   (GBytes        *der,
                                                  GError       **error);
/* Written to a temporary file, fsynced, renamed over @path: never a half-written key. */
gboolean     gchat_rsa_key_save_private          (GchatRsaKey   *self,
                                                  const char    *path,
                                                  GError       **error);
gboolean     gchat_rsa_key_save_public           (GchatRsaKey   *self,
                                                  const char    *path,
                                                  GError       **error);

gboolean     gchat_rsa_key_has_private           (GchatRsaKey   *self);
guint        gchat_rsa_key_get_bits              (GchatRsaKey   *self);
/* The DER SubjectPublicKeyInfo; its SHA-256 is the fingerprint. */
GBytes      *gchat_rsa_key_get_public_der        (GchatRsaKey   *self);
void         gchat_rsa_key_get_fingerprint_digest (GchatRsaKey  *self,
                                                  guint8         digest[GCHAT_SHA256_SIZE]);
/* gchat_fingerprint_format() of the digest. */
char        *gchat_rsa_key_get_fingerprint       (GchatRsaKey   *self);
/* Size in bytes of a wrapped key: the modulus size. */
gsize        gchat_rsa_key_get_wrapped_size      (GchatRsaKey   *self);

/* RSA-OAEP with SHA-256 (hash and MGF1) and the given label. */
GBytes      *gchat_rsa_key_wrap                  (GchatRsaKey   *self,
                                                  const guint8  *data,
                                                  gsize          len,
                                                  const char    *label,
                                                  GError       **error);
/* Succeeds only when the plaintext is exactly @out_len bytes. Thread-safe. */
gboolean     gchat_rsa_key_unwrap                (GchatRsaKey   *self,
                                                  const guint8  *wrapped,
                                                  gsize          wrapped_len,
                                                  const char    *label,
                                                  guint8        *out,
                                                  gsize          out_len,
                                                  GError       **error);

G_END_DECLS
