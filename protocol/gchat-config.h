/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The YAML configuration shared by gchatd and the clients, with typed keys and positioned errors. */

#pragma once

#include <glib-object.h>

#include "gchat-crypto.h"

G_BEGIN_DECLS

#define GCHAT_CONFIG_ERROR (gchat_config_error_quark ())

typedef enum {
  GCHAT_CONFIG_ERROR_SYNTAX,    /* not YAML, or not a mapping of keys to single values */
  GCHAT_CONFIG_ERROR_TYPE,      /* a key has a value of the wrong type */
  GCHAT_CONFIG_ERROR_VALUE,     /* right type, but out of range */
  GCHAT_CONFIG_ERROR_TOO_LARGE, /* the file is larger than GCHAT_CONFIG_MAX_SIZE */
} GchatConfigError;

#define GCHAT_CONFIG_MAX_SIZE (1024 * 1024)
#define GCHAT_DEFAULT_PORT    10000

#define GCHAT_TYPE_CONFIG (gchat_config_get_type ())
G_DECLARE_FINAL_TYPE (GchatConfig, gchat_config, GCHAT, CONFIG, GObject)

GQuark        gchat_config_error_quark         (void);

/* The built-in defaults. */
GchatConfig  *gchat_config_new                 (void);
/* Relative paths in the file resolve against the file's own folder. */
GchatConfig  *gchat_config_new_from_file       (const char   *path,
                                                GError      **error);
/* @display_name names the source in messages; relative paths resolve against @base_dir (the
 * current directory when NULL). */
GchatConfig  *gchat_config_new_from_data       (const char   *data,
                                                gsize         len,
                                                const char   *display_name,
                                                const char   *base_dir,
                                                GError      **error);

/* Problems that did not stop loading, such as an unknown key, one line each:
 * "FILE:LINE: unknown key “name”, ignored". Never NULL. */
const char * const *gchat_config_get_warnings  (GchatConfig  *self);
/* TRUE when the file (not the defaults) gave a value for @key. */
gboolean      gchat_config_has_key             (GchatConfig  *self,
                                                const char   *key);

/* The original's keys. */
const char   *gchat_config_get_server_address  (GchatConfig  *self);  /* "localhost" */
guint16       gchat_config_get_server_port     (GchatConfig  *self);  /* 10000 */
const char   *gchat_config_get_server_certificate (GchatConfig *self); /* absolute path or NULL */
const char   *gchat_config_get_server_private_key (GchatConfig *self); /* absolute path or NULL */
const char   *gchat_config_get_data_base       (GchatConfig  *self);  /* absolute path or NULL */

/* Added keys. */
void          gchat_config_get_argon2_params   (GchatConfig  *self,
                                                GchatArgon2Params *params);
guint         gchat_config_get_max_connections (GchatConfig  *self);

/* Any key by name, for keys later parts add to the table. */
const char   *gchat_config_get_string          (GchatConfig  *self,
                                                const char   *key);
gint64        gchat_config_get_int             (GchatConfig  *self,
                                                const char   *key);
gboolean      gchat_config_get_bool            (GchatConfig  *self,
                                                const char   *key);

G_END_DECLS
