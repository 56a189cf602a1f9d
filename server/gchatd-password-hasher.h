/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Runs Argon2id on worker threads with a bound on concurrency and a bounded queue. */

#pragma once

#include <gio/gio.h>

#include "gchat-crypto.h"

G_BEGIN_DECLS

#define GCHATD_PASSWORD_HASHER_ERROR (gchatd_password_hasher_error_quark ())

typedef enum {
  GCHATD_PASSWORD_HASHER_ERROR_BUSY,             /* every worker is busy and the queue is full */
  GCHATD_PASSWORD_HASHER_ERROR_INVALID_ARGUMENT, /* a password, salt or hash of a bad length */
} GchatdPasswordHasherError;

/* What a new hash is made of: a fresh random salt and the Argon2id output. */
#define GCHATD_PASSWORD_HASHER_SALT_SIZE 16
#define GCHATD_PASSWORD_HASHER_HASH_SIZE 32

/* Bounds on a stored record handed to verify: Argon2id needs at least 8 bytes of salt, and
 * anything past 64 bytes of salt or hash only costs memory. */
#define GCHATD_PASSWORD_HASHER_MIN_SALT_SIZE 8
#define GCHATD_PASSWORD_HASHER_MAX_SALT_SIZE 64
#define GCHATD_PASSWORD_HASHER_MIN_HASH_SIZE 16
#define GCHATD_PASSWORD_HASHER_MAX_HASH_SIZE 64

/* The longest password accepted, in bytes; the issue allows 8 to 1024 at sign-up. It also
 * bounds the secure memory that queued requests hold. */
#define GCHATD_PASSWORD_HASHER_MAX_PASSWORD_SIZE 1024

/* How many requests may wait for a worker when the caller has no better number. */
#define GCHATD_PASSWORD_HASHER_DEFAULT_MAX_QUEUED 64
/* Upper bounds for the constructor, so a typo in a config file cannot ask for a million
 * threads (each hash holds its Argon2id memory, 19 MiB by default). */
#define GCHATD_PASSWORD_HASHER_MAX_PARALLEL_LIMIT 256
#define GCHATD_PASSWORD_HASHER_MAX_QUEUED_LIMIT   100000

/* A snapshot of the counters, for logs and tests. */
typedef struct {
  guint   running;   /* requests holding a worker slot now */
  guint   queued;    /* requests waiting for a slot now */
  guint64 completed; /* Argon2id computations finished (matching or not, failed or not) */
  guint64 rejected;  /* requests refused with GCHATD_PASSWORD_HASHER_ERROR_BUSY */
  guint64 cancelled; /* requests dropped, without hashing, because they were cancelled */
} GchatdPasswordHasherStats;

#define GCHATD_TYPE_PASSWORD_HASHER (gchatd_password_hasher_get_type ())
G_DECLARE_FINAL_TYPE (GchatdPasswordHasher, gchatd_password_hasher, GCHATD, PASSWORD_HASHER,
                      GObject)

GQuark   gchatd_password_hasher_error_quark      (void);

/* At most @max_parallel hashes run at once (0: one per CPU, g_get_num_processors()) and at
 * most @max_queued wait for a worker (0: none may wait). Past that a request fails with
 * GCHATD_PASSWORD_HASHER_ERROR_BUSY, in an idle, never inside the call. */
GchatdPasswordHasher *gchatd_password_hasher_new (guint max_parallel,
                                                  guint max_queued);

guint    gchatd_password_hasher_get_max_parallel (GchatdPasswordHasher      *self);
guint    gchatd_password_hasher_get_max_queued   (GchatdPasswordHasher      *self);
void     gchatd_password_hasher_get_stats        (GchatdPasswordHasher      *self,
                                                  GchatdPasswordHasherStats *stats);

/* Makes a new record for @password (1 to GCHATD_PASSWORD_HASHER_MAX_PASSWORD_SIZE bytes):
 * a fresh random salt and the Argon2id hash under @params. The password is copied into
 * secure memory and wiped once hashed; the caller may wipe its own copy at once. Results
 * (as for every call here) reach @callback in the thread-default main context of the caller.
 * A request cancelled while it waits is dropped without hashing. */
void     gchatd_password_hasher_hash_async       (GchatdPasswordHasher    *self,
                                                  const GchatArgon2Params *params,
                                                  const char              *password,
                                                  gsize                    len,
                                                  GCancellable            *cancellable,
                                                  GAsyncReadyCallback      callback,
                                                  gpointer                 user_data);
/* Fills @salt (GCHATD_PASSWORD_HASHER_SALT_SIZE bytes) and @hash
 * (GCHATD_PASSWORD_HASHER_HASH_SIZE bytes) on success. */
gboolean gchatd_password_hasher_hash_finish      (GchatdPasswordHasher *self,
                                                  GAsyncResult         *result,
                                                  guint8               *salt,
                                                  guint8               *hash,
                                                  GError              **error);

/* Checks @password against a stored record. verify_finish() returns TRUE on a match and
 * FALSE without an error on a mismatch (compared in constant time); an empty or over-long
 * password is a mismatch too, since no record can hold one. An error means the check could
 * not be made: BUSY, cancelled (G_IO_ERROR_CANCELLED), a record with a salt or hash of a bad
 * length (INVALID_ARGUMENT) or bad parameters (GCHAT_CRYPTO_ERROR). */
void     gchatd_password_hasher_verify_async     (GchatdPasswordHasher    *self,
                                                  const GchatArgon2Params *params,
                                                  const guint8            *salt,
                                                  gsize                    salt_len,
                                                  const guint8            *expected_hash,
                                                  gsize                    hash_len,
                                                  const char              *password,
                                                  gsize                    len,
                                                  GCancellable            *cancellable,
                                                  GAsyncReadyCallback      callback,
                                                  gpointer                 user_data);
gboolean gchatd_password_hasher_verify_finish    (GchatdPasswordHasher *self,
                                                  GAsyncResult         *result,
                                                  GError              **error);

/* For a log-in naming an UNKNOWN user: does exactly the work of verify_async() with @params
 * (pass the parameters new accounts get) against a dummy record made when the hasher was
 * created, through the same queue, so it costs the same time and can fail BUSY the same way.
 * Finish it with gchatd_password_hasher_verify_finish(), which then never returns TRUE. */
void     gchatd_password_hasher_verify_dummy_async (GchatdPasswordHasher    *self,
                                                    const GchatArgon2Params *params,
                                                    const char              *password,
                                                    gsize                    len,
                                                    GCancellable            *cancellable,
                                                    GAsyncReadyCallback      callback,
                                                    gpointer                 user_data);

G_END_DECLS
