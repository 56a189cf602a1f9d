/* SPDX-License-Identifier: GPL-3.0-or-later */
/* gchatd's side of the local control socket that gchatctl talks to. */

#pragma once

#include <gio/gio.h>

#include "gchat-crypto.h"
#include "gchatd-password-hasher.h"
#include "gchatd-user-store.h"

G_BEGIN_DECLS

#define GCHATD_CONTROL_ERROR (gchatd_control_error_quark ())

typedef enum {
  GCHATD_CONTROL_ERROR_SOCKET, /* the socket or its folder could not be made */
  GCHATD_CONTROL_ERROR_IN_USE, /* another gchatd already answers on the socket */
} GchatdControlError;

/* The longest request line, newline included. A request holds at most a 1024-byte password,
 * which JSON escaping can make six times longer, and a path. */
#define GCHATD_CONTROL_MAX_LINE (16 * 1024)
/* The longest answer line gchatctl reads; `users` answers in lines of at most
 * GCHATD_CONTROL_USERS_PER_LINE accounts so that no line comes near it. */
#define GCHATD_CONTROL_MAX_REPLY (64 * 1024)
#define GCHATD_CONTROL_USERS_PER_LINE 256
/* Connections served at once; more are closed at once. Only the owner can connect, so this
 * only guards against a runaway script. */
#define GCHATD_CONTROL_MAX_CLIENTS 16
/* A connection that sends no complete request for this long is closed. */
#define GCHATD_CONTROL_IDLE_TIMEOUT_S 60

#define GCHATD_TYPE_CONTROL (gchatd_control_get_type ())
G_DECLARE_FINAL_TYPE (GchatdControl, gchatd_control, GCHATD, CONTROL, GObject)

GQuark         gchatd_control_error_quark       (void);

/* Serves @store: accounts are added with @params (new hashes, made by @hasher), and
 * `fingerprint` answers @fingerprint, the server key's as gchat_rsa_key_get_fingerprint()
 * writes it.
 *
 * Signals:
 *   "user-deleted" (GchatdControl *control, const char *name, gpointer user_data): emitted once
 *   `deluser` removed @name (the stored spelling) for good, before gchatctl is answered; the
 *   server drops that user's live session in its handler. */
GchatdControl *gchatd_control_new               (GchatdUserStore         *store,
                                                 GchatdPasswordHasher    *hasher,
                                                 const GchatArgon2Params *params,
                                                 const char              *fingerprint);
/* The Argon2id cost of hashes made from now on (after a configuration reload). */
void           gchatd_control_set_argon2_params (GchatdControl           *self,
                                                 const GchatArgon2Params *params);
/* Listens on @socket_path (see gchatd_paths_resolve()): makes its folder 0700 if needed, removes
 * a stale socket left by a crash, refuses (GCHATD_CONTROL_ERROR_IN_USE) when a live gchatd
 * answers there, and makes the socket 0600. Call it once the main loop's context is the
 * thread-default one; clients are served there. */
gboolean       gchatd_control_start             (GchatdControl           *self,
                                                 const char              *socket_path,
                                                 GError                 **error);
/* Stops listening, removes the socket file and closes every control connection. Changes
 * already under way still complete (and are saved); their answers are dropped. Idempotent. */
void           gchatd_control_stop              (GchatdControl           *self);
/* Control connections open now. */
guint          gchatd_control_get_n_clients     (GchatdControl           *self);

G_END_DECLS
