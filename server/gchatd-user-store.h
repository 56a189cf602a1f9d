/* SPDX-License-Identifier: GPL-3.0-or-later */
/* gchatd's accounts file: unique names in any case, Argon2id records, durable batched adds. */

#pragma once

#include <gio/gio.h>

#include "gchat-crypto.h"

G_BEGIN_DECLS

#define GCHATD_USER_STORE_ERROR (gchatd_user_store_error_quark ())

typedef enum {
  GCHATD_USER_STORE_ERROR_IO,               /* the file could not be read or saved */
  GCHATD_USER_STORE_ERROR_CORRUPT,          /* the file is not a user database this version reads */
  GCHATD_USER_STORE_ERROR_NAME_TAKEN,       /* another account has this name, in any case */
  GCHATD_USER_STORE_ERROR_INVALID_NAME,     /* outside the allowed set of user names */
  GCHATD_USER_STORE_ERROR_INVALID_PASSWORD, /* too short or too long */
  GCHATD_USER_STORE_ERROR_INVALID_ARGUMENT, /* Argon2id parameters out of range */
  GCHATD_USER_STORE_ERROR_FULL,             /* already GCHATD_USER_STORE_MAX_USERS accounts */
  GCHATD_USER_STORE_ERROR_TIMED_OUT,        /* gchatd_user_store_flush_sync() gave up waiting */
  GCHATD_USER_STORE_ERROR_UNKNOWN_USER,     /* a replace or remove names no account */
} GchatdUserStoreError;

#define GCHATD_USER_NAME_MAX_LENGTH  32
#define GCHATD_PASSWORD_MIN_LENGTH   8
#define GCHATD_PASSWORD_MAX_LENGTH   1024
#define GCHATD_USER_SALT_SIZE        16
#define GCHATD_USER_HASH_SIZE        32
#define GCHATD_USER_STORE_MAX_USERS  250000

GQuark    gchatd_user_store_error_quark  (void);

/* User names are 1–32 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit.
 * ASCII only on purpose: names compare without regard to case by plain ASCII folding, so two
 * names that look alike can never be two accounts, and no name can break a log line. */
gboolean  gchatd_user_name_validate      (const char     *name,
                                          GError        **error);
/* Passwords are 8–1024 bytes, any bytes. */
gboolean  gchatd_password_validate       (const char     *password,
                                          gsize           len,
                                          GError        **error);

/* One account, immutable and reference-counted, so it can be read on any thread. */
#define GCHATD_TYPE_USER_RECORD (gchatd_user_record_get_type ())

typedef struct _GchatdUserRecord GchatdUserRecord;

GType                    gchatd_user_record_get_type    (void) G_GNUC_CONST;
GchatdUserRecord        *gchatd_user_record_ref         (GchatdUserRecord       *record);
void                     gchatd_user_record_unref       (GchatdUserRecord       *record);
/* The name as it was signed up, with its case. */
const char              *gchatd_user_record_get_name    (const GchatdUserRecord *record);
const GchatArgon2Params *gchatd_user_record_get_params  (const GchatdUserRecord *record);
/* GCHATD_USER_SALT_SIZE bytes. */
const guint8            *gchatd_user_record_get_salt    (const GchatdUserRecord *record);
/* GCHATD_USER_HASH_SIZE bytes. */
const guint8            *gchatd_user_record_get_hash    (const GchatdUserRecord *record);
/* When the account was made, in seconds since 1970 (UTC). */
gint64                   gchatd_user_record_get_created (const GchatdUserRecord *record);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (GchatdUserRecord, gchatd_user_record_unref)

#define GCHATD_TYPE_USER_STORE (gchatd_user_store_get_type ())

G_DECLARE_FINAL_TYPE (GchatdUserStore, gchatd_user_store, GCHATD, USER_STORE, GObject)

/* Loads @path. A missing file is an empty store (the file is made by the first add); a file that
 * cannot be read or is not valid fails with an error naming the file and the position, and the
 * file is left exactly as it is. All functions may be called from any thread. */
GchatdUserStore  *gchatd_user_store_new             (const char          *path,
                                                     GError             **error);
const char       *gchatd_user_store_get_path        (GchatdUserStore     *self);
/* Durable accounts only: a name whose add has not completed yet is not counted. */
guint             gchatd_user_store_get_n_users     (GchatdUserStore     *self);
/* How many times the file has been saved since the store was loaded. */
guint             gchatd_user_store_get_n_writes    (GchatdUserStore     *self);
/* The durable account of that name in any case, or NULL. */
GchatdUserRecord *gchatd_user_store_lookup          (GchatdUserStore     *self,
                                                     const char          *name);
/* Every durable account, in sign-up order (a GPtrArray of GchatdUserRecord, owning them). */
GPtrArray        *gchatd_user_store_dup_records     (GchatdUserStore     *self);

/* Adds an account. The name is reserved at once: a second add of it, in any case, fails with
 * GCHATD_USER_STORE_ERROR_NAME_TAKEN and the account that has it is never touched. The add
 * completes only once the record is durable on disk; adds made while a save is running are
 * saved together by the next one. If the save fails, the add fails, the name is free again and
 * the file is as it was. @cancellable is checked only before the name is reserved: once it is,
 * the result says what really happened to the record. @callback runs in the thread-default main
 * context of the caller. */
void              gchatd_user_store_add_async       (GchatdUserStore     *self,
                                                     const char          *name,
                                                     const GchatArgon2Params *params,
                                                     const guint8        *salt,
                                                     gsize                salt_len,
                                                     const guint8        *hash,
                                                     gsize                hash_len,
                                                     GCancellable        *cancellable,
                                                     GAsyncReadyCallback  callback,
                                                     gpointer             user_data);
gboolean          gchatd_user_store_add_finish      (GchatdUserStore     *self,
                                                     GAsyncResult        *result,
                                                     GError             **error);

/* Gives the existing account @name (in any case) new Argon2id parameters, salt and hash, as a
 * password change does; its name and creation time stay. Like an add, it goes through the next
 * batched save and completes only once durable: until then lookups return the old record, and
 * if the save fails the old record stays, in memory and in the file. Fails with
 * GCHATD_USER_STORE_ERROR_UNKNOWN_USER when no durable account has the name, at the call or
 * when the batch is saved (a remove before it won). */
void              gchatd_user_store_replace_async   (GchatdUserStore     *self,
                                                     const char          *name,
                                                     const GchatArgon2Params *params,
                                                     const guint8        *salt,
                                                     gsize                salt_len,
                                                     const guint8        *hash,
                                                     gsize                hash_len,
                                                     GCancellable        *cancellable,
                                                     GAsyncReadyCallback  callback,
                                                     gpointer             user_data);
gboolean          gchatd_user_store_replace_finish  (GchatdUserStore     *self,
                                                     GAsyncResult        *result,
                                                     GError             **error);

/* Deletes the account @name (in any case), durably, through the same batched save: the account
 * stays visible, and its name taken, until the file without it is on disk; a failed save keeps
 * it. Fails with GCHATD_USER_STORE_ERROR_UNKNOWN_USER as replace does. */
void              gchatd_user_store_remove_async    (GchatdUserStore     *self,
                                                     const char          *name,
                                                     GCancellable        *cancellable,
                                                     GAsyncReadyCallback  callback,
                                                     gpointer             user_data);
gboolean          gchatd_user_store_remove_finish   (GchatdUserStore     *self,
                                                     GAsyncResult        *result,
                                                     GError             **error);

/* Blocks until every change made so far is saved or has failed, or @timeout_ms passed (then
 * GCHATD_USER_STORE_ERROR_TIMED_OUT). For a graceful stop: the changes' callbacks still need the
 * main loop to run afterwards. */
gboolean          gchatd_user_store_flush_sync      (GchatdUserStore     *self,
                                                     guint                timeout_ms,
                                                     GError             **error);

G_END_DECLS
