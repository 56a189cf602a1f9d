/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The servers a client trusts: one pinned key fingerprint per host and port, kept in a file. */

#pragma once

#include <glib-object.h>

#include "gchat-rsa-key.h"

G_BEGIN_DECLS

#define GCHAT_KNOWN_SERVERS_ERROR (gchat_known_servers_error_quark ())

typedef enum {
  GCHAT_KNOWN_SERVERS_ERROR_READ,      /* the file exists but cannot be read */
  GCHAT_KNOWN_SERVERS_ERROR_TOO_LARGE, /* the file is over GCHAT_KNOWN_SERVERS_MAX_FILE */
  GCHAT_KNOWN_SERVERS_ERROR_SYNTAX,    /* a line is not "HOST:PORT FINGERPRINT" (line number said) */
  GCHAT_KNOWN_SERVERS_ERROR_WRITE,     /* the file or its folder cannot be written */
  GCHAT_KNOWN_SERVERS_ERROR_INVALID,   /* a host name or port that cannot be pinned */
} GchatKnownServersError;

typedef enum {
  GCHAT_KNOWN_SERVER_UNKNOWN, /* nothing pinned for this host and port: ask the user */
  GCHAT_KNOWN_SERVER_TRUSTED, /* the pinned key is this key */
  GCHAT_KNOWN_SERVER_CHANGED, /* another key is pinned: refuse, show both fingerprints */
} GchatKnownServerStatus;

/* Largest file read; anything larger is refused unread. */
#define GCHAT_KNOWN_SERVERS_MAX_FILE (1024 * 1024)
/* Longest line, comments included. */
#define GCHAT_KNOWN_SERVERS_MAX_LINE 4096

#define GCHAT_TYPE_KNOWN_SERVERS (gchat_known_servers_get_type ())
G_DECLARE_FINAL_TYPE (GchatKnownServers, gchat_known_servers, GCHAT, KNOWN_SERVERS, GObject)

GQuark                 gchat_known_servers_error_quark     (void);

/* $XDG_DATA_HOME/gchat/known-servers (g_get_user_data_dir()). */
char                  *gchat_known_servers_get_default_path (void);

/* Nothing is read until gchat_known_servers_load(). @path NULL means the default path. */
GchatKnownServers     *gchat_known_servers_new             (const char         *path);
const char            *gchat_known_servers_get_path        (GchatKnownServers  *self);

/* Reads the file again. A missing file is an empty list. On error the list is left as it was.
 * Blocking: call it off the main loop if the file may be on a slow disk. */
gboolean               gchat_known_servers_load            (GchatKnownServers  *self,
                                                            GError            **error);

/* Whether @key is the one pinned for @host (a name, an IPv4 address, or an IPv6 address with
 * or without brackets; case does not matter) and @port. @pinned_fingerprint, if not NULL, gets
 * the pinned fingerprint formatted for people (gchat_fingerprint_format()), or NULL when
 * UNKNOWN; compare it with gchat_rsa_key_get_fingerprint (@key). A host or port that cannot
 * be pinned is UNKNOWN (gchat_known_servers_pin() says why). */
GchatKnownServerStatus gchat_known_servers_check           (GchatKnownServers  *self,
                                                            const char         *host,
                                                            guint               port,
                                                            GchatRsaKey        *key,
                                                            char              **pinned_fingerprint);

/* Pins @key for @host and @port, replacing any other key. The file is read again first (so
 * what another client pinned meanwhile is kept) and replaced durably before this returns;
 * the folder is made 0700 and the file 0600. On error neither the file nor the list changed. */
gboolean               gchat_known_servers_pin             (GchatKnownServers  *self,
                                                            const char         *host,
                                                            guint               port,
                                                            GchatRsaKey        *key,
                                                            GError            **error);
/* Removes what is pinned for @host and @port, the same way. Nothing pinned is no error. */
gboolean               gchat_known_servers_forget          (GchatKnownServers  *self,
                                                            const char         *host,
                                                            guint               port,
                                                            GError            **error);

/* "3f2a 9c01 …" from the 64 hex digits of a file line; NULL if @hex is not 64 hex digits. */
char                  *gchat_known_servers_format_fingerprint (const char      *hex);

G_END_DECLS
