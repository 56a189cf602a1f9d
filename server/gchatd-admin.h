/* SPDX-License-Identifier: GPL-3.0-or-later */
/* gchatctl's work, and what gchatd shares with it: default paths, the store lock, the commands. */

#pragma once

#include <gio/gio.h>

#include "gchat-config.h"

G_BEGIN_DECLS

#define GCHATD_ADMIN_ERROR (gchatd_admin_error_quark ())

typedef enum {
  GCHATD_ADMIN_ERROR_IO,           /* a file or folder could not be made, read or locked */
  GCHATD_ADMIN_ERROR_LOCKED,       /* another gchatd or gchatctl holds the store lock */
  GCHATD_ADMIN_ERROR_NO_DAEMON,    /* nothing answers on the control socket */
  GCHATD_ADMIN_ERROR_DAEMON_STUCK, /* the store is locked, yet no gchatd answers */
  GCHATD_ADMIN_ERROR_PROTOCOL,     /* a control message was malformed, too long or unexpected */
  GCHATD_ADMIN_ERROR_OTHER_STORE,  /* the gchatd on the socket serves another user database */
  GCHATD_ADMIN_ERROR_PASSWORD,     /* no usable password was given, or the two did not match */
  GCHATD_ADMIN_ERROR_FAILED,       /* gchatd failed for a reason this version does not know */
} GchatdAdminError;

GQuark       gchatd_admin_error_quark        (void);

/* Paths --------------------------------------------------------------------------------------- */

/* Where gchatd and gchatctl keep things, from one configuration; both must use this. */
typedef struct {
  char *data_dir;       /* the folder of data_base when set, else $XDG_DATA_HOME/gchatd */
  char *store;          /* data_base, else <data_dir>/users.json */
  char *lock;           /* <store>.lock, see gchatd_store_lock_acquire() */
  char *private_key;    /* server_privateKey, else <data_dir>/server-private.pem */
  char *public_key;     /* server_certificate, else <data_dir>/server-public.pem */
  char *mail_dir;       /* <data_dir>/mail: the mailboxes of offline users (GchatdMailbox) */
  char *ticket_key;     /* <data_dir>/ticket-key: seals resumption tickets (PROTOCOL.md §3.5) */
  char *revocations;    /* <data_dir>/ticket-revocations.json: see gchatd_revocations_load() */
  /* With $XDG_RUNTIME_DIR set (absolute): $XDG_RUNTIME_DIR/gchatd/control, or, when the
   * configuration sets data_base, $XDG_RUNTIME_DIR/gchatd/control-<16 hex digits of the
   * SHA-256 of the store path>, so that gchatds with other databases never share a socket.
   * Otherwise <data_dir>/control. */
  char *control_socket;
} GchatdPaths;

GchatdPaths *gchatd_paths_resolve            (GchatConfig  *config);
void         gchatd_paths_free               (GchatdPaths  *paths);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (GchatdPaths, gchatd_paths_free)

/* $XDG_CONFIG_HOME/gchatd/config.yaml */
char        *gchatd_config_dup_default_path  (void);
/* Loads @path; with @path NULL, the default file if it exists, else the built-in defaults. */
GchatConfig *gchatd_config_load              (const char   *path,
                                              GError      **error);

/* The store lock ------------------------------------------------------------------------------ */

/* An exclusive flock(2) on "<store>.lock" (made 0600 if missing, never deleted), held by gchatd
 * for its whole life and by gchatctl while it edits the files with no gchatd running. So a
 * gchatctl never edits the store under a running gchatd, nor two at once. */
typedef struct _GchatdStoreLock GchatdStoreLock;

/* Never waits: GCHATD_ADMIN_ERROR_LOCKED when someone else holds it. Makes the store's folder
 * (0700) when missing. */
GchatdStoreLock *gchatd_store_lock_acquire   (const char       *store_path,
                                              GError          **error);
void             gchatd_store_lock_release   (GchatdStoreLock  *lock);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (GchatdStoreLock, gchatd_store_lock_release)

/* Ticket revocations -------------------------------------------------------------------------- */

/* How long a resumption ticket is valid. */
#define GCHATD_TICKET_LIFETIME_S (24 * 60 * 60)

/* `gchatctl revoke USER` refuses every resumption ticket issued to USER up to now. The file is
 * {"version":1,"not_before":{"bob":1700000000,…}}: case-folded names and Unix seconds, 0600.
 * Loads @path into a table of folded name → gint64 * (a missing file is an empty table); a
 * file that is not valid fails with GCHATD_ADMIN_ERROR_IO, so no revoked ticket comes back. */
GHashTable  *gchatd_revocations_load         (const char   *path,
                                              GError      **error);
/* Sets @name's time to @now in @revocations, drops entries older than @lifetime_s (no ticket
 * issued before them is still valid anyway, so the file stays small) and saves the file.
 * Blocking. On failure the table still holds the new entry. */
gboolean     gchatd_revocations_add          (const char   *path,
                                              GHashTable   *revocations,
                                              const char   *name,
                                              gint64        now,
                                              gint64        lifetime_s,
                                              GError      **error);

/* Control protocol error codes ---------------------------------------------------------------- */

/* The "code" of a control answer for @error: "name-taken", "invalid-name", "invalid-password",
 * "unknown-user", "full", "busy", "io", "other-store", "bad-request" or "failed". */
const char  *gchatd_admin_error_to_code      (const GError *error);
/* The error for an answer's code and message, in the domain and code it came from. */
GError      *gchatd_admin_error_from_code    (const char   *code,
                                              const char   *message);

/* Passwords ----------------------------------------------------------------------------------- */

/* Reads a password from @fd: on a terminal with a no-echo prompt naming @user, twice when
 * @confirm, failing when the two differ; otherwise one line (without its line ending). The
 * password must be valid UTF-8, as the log-in protocol carries it, and 8–1024 bytes. Free the
 * result with gchatd_admin_password_free(). */
char        *gchatd_admin_read_password      (int           fd,
                                              const char   *user,
                                              gboolean      confirm,
                                              GError      **error);
/* Wipes and frees. */
void         gchatd_admin_password_free      (char         *password);

/* The commands -------------------------------------------------------------------------------- */

/* One account as `users` lists it. */
typedef struct {
  char  *name;
  gint64 created; /* seconds since 1970, UTC */
} GchatdAdminUser;

#define GCHATD_TYPE_ADMIN (gchatd_admin_get_type ())
G_DECLARE_FINAL_TYPE (GchatdAdmin, gchatd_admin, GCHATD, ADMIN, GObject)

/* Runs gchatctl's commands for @config: each goes to the gchatd answering on @socket_path (NULL:
 * the one from gchatd_paths_resolve()); when none answers, the files are edited directly under
 * the store lock. The calls block: they are for the command-line tool. */
GchatdAdmin *gchatd_admin_new                (GchatConfig  *config,
                                              const char   *socket_path);
const GchatdPaths *gchatd_admin_get_paths    (GchatdAdmin  *self);
/* Whether the last command was answered by a running gchatd. */
gboolean     gchatd_admin_get_used_daemon    (GchatdAdmin  *self);

gboolean     gchatd_admin_add_user           (GchatdAdmin  *self,
                                              const char   *name,
                                              const char   *password,
                                              GError      **error);
gboolean     gchatd_admin_set_password       (GchatdAdmin  *self,
                                              const char   *name,
                                              const char   *password,
                                              GError      **error);
gboolean     gchatd_admin_delete_user        (GchatdAdmin  *self,
                                              const char   *name,
                                              GError      **error);
/* Refuses every resumption ticket of @name issued up to now (its live session stays). */
gboolean     gchatd_admin_revoke_tickets     (GchatdAdmin  *self,
                                              const char   *name,
                                              GError      **error);
/* An array of GchatdAdminUser, in sign-up order. */
GArray      *gchatd_admin_list_users         (GchatdAdmin  *self,
                                              GError      **error);
char        *gchatd_admin_get_fingerprint    (GchatdAdmin  *self,
                                              GError      **error);

G_END_DECLS
