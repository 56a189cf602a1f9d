/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Keeps gchatd's accounts in one JSON file, validated strictly and saved atomically in batches. */

/*
 * The file (the configuration key “data_base”), mode 0600, one account a line:
 *
 * {
 *   "version": 1,
 *   "users": [
 *     {"name":"Alice","argon2":{"m":19456,"t":2,"p":1},"salt":"…","hash":"…","created":1700000000},
 *     {"name":"bob",…}
 *   ]
 * }
 *
 * name     the user name as signed up, with its case (see gchatd_user_name_validate()); names
 *          are unique under ASCII case folding, the key of the in-memory table
 * argon2   the Argon2id cost the hash was made with: memory in KiB, iterations, lanes, each
 *          within the GCHAT_ARGON2_* limits
 * salt     standard base64 (with padding) of the 16-byte random salt
 * hash     standard base64 (with padding) of the 32-byte Argon2id output
 * created  when the account was made, in whole seconds since 1970 (UTC)
 *
 * Loading is strict: members of other types, missing or unknown members, non-canonical base64,
 * a repeated member or name, numbers json-glib would wrap, nesting deeper than the format needs,
 * and anything after the closing brace are all refused with the file's name and the position.
 * A failed load never writes, renames or chmods the file.
 *
 * Saving rewrites the whole file: serialise, write a temporary “path.XXXXXX” (0600) in the same
 * folder, fsync it, rename it over the file, fsync the folder. Saves run on a private thread pool
 * of one thread, so no two ever overlap and the main loop never waits for the disk; changes
 * (adds, and the replaces and removes of gchatctl's passwd and deluser) that arrive during a
 * save are all written by the next one (group commit), in the order they were asked for. A
 * change is visible only once the file holding it is durable, and a failed save changes nothing
 * in memory or on disk.
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gi18n-lib.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "gchat-file.h"
#include "gchat-json.h"
#include "gchatd-user-store.h"

#define FORMAT_VERSION 1
/* The largest file loaded. A full store (GCHATD_USER_STORE_MAX_USERS records of at most about
 * 200 bytes each) is about 50 MB. */
#define MAX_FILE_SIZE (64 * 1024 * 1024)
/* json-glib's parser recurses once per level, so a file of a million “[” would overflow the
 * stack; the format itself needs three levels. */
#define MAX_DEPTH 16
/* Values a file may hold, so that its parsed tree stays in proportion to the accounts it can
 * describe; a record has nine. */
#define MAX_VALUES (GCHATD_USER_STORE_MAX_USERS * 12 + 64)
/* How much of a bad name or member is quoted back in a message. */
#define MAX_QUOTED 40
/* Base64 lengths of the salt and the hash, padding included. */
#define SALT_BASE64_LENGTH (4 * ((GCHATD_USER_SALT_SIZE + 2) / 3))
#define HASH_BASE64_LENGTH (4 * ((GCHATD_USER_HASH_SIZE + 2) / 3))

G_DEFINE_QUARK (gchatd-user-store-error-quark, gchatd_user_store_error)

/* Records -------------------------------------------------------------------------------------- */

struct _GchatdUserRecord
{
  gatomicrefcount   ref_count;
  /* Whether the record is on disk. Read and written only under the owning store's lock. */
  gboolean          durable;
  char             *name;
  GchatArgon2Params params;
  guint8            salt[GCHATD_USER_SALT_SIZE];
  guint8            hash[GCHATD_USER_HASH_SIZE];
  gint64            created;
};

G_DEFINE_BOXED_TYPE (GchatdUserRecord, gchatd_user_record, gchatd_user_record_ref,
                     gchatd_user_record_unref)

static GchatdUserRecord *
gchatd_user_record_new (const char              *name,
                        const GchatArgon2Params *params,
                        const guint8            *salt,
                        const guint8            *hash,
                        gint64                   created)
{
  GchatdUserRecord *record = g_new0 (GchatdUserRecord, 1);

  g_atomic_ref_count_init (&record->ref_count);
  record->name = g_strdup (name);
  record->params = *params;
  memcpy (record->salt, salt, sizeof record->salt);
  memcpy (record->hash, hash, sizeof record->hash);
  record->created = created;

  return record;
}

GchatdUserRecord *
gchatd_user_record_ref (GchatdUserRecord *record)
{
  g_return_val_if_fail (record != NULL, NULL);

  g_atomic_ref_count_inc (&record->ref_count);
  return record;
}

void
gchatd_user_record_unref (GchatdUserRecord *record)
{
  g_return_if_fail (record != NULL);

  if (!g_atomic_ref_count_dec (&record->ref_count))
    return;

  /* The hash is what a password guess is checked against: do not leave it in freed memory. */
  gchat_memzero (record->hash, sizeof record->hash);
  g_free (record->name);
  g_free (record);
}

const char *
gchatd_user_record_get_name (const GchatdUserRecord *record)
{
  g_return_val_if_fail (record != NULL, NULL);
  return record->name;
}

const GchatArgon2Params *
gchatd_user_record_get_params (const GchatdUserRecord *record)
{
  g_return_val_if_fail (record != NULL, NULL);
  return &record->params;
}

const guint8 *
gchatd_user_record_get_salt (const GchatdUserRecord *record)
{
  g_return_val_if_fail (record != NULL, NULL);
  return record->salt;
}

const guint8 *
gchatd_user_record_get_hash (const GchatdUserRecord *record)
{
  g_return_val_if_fail (record != NULL, NULL);
  return record->hash;
}

gint64
gchatd_user_record_get_created (const GchatdUserRecord *record)
{
  g_return_val_if_fail (record != NULL, 0);
  return record->created;
}

/* Names and passwords -------------------------------------------------------------------------- */

static gboolean
is_name_start (char c)
{
  return g_ascii_isalnum (c);
}

static gboolean
is_name_char (char c)
{
  return g_ascii_isalnum (c) || c == '.' || c == '_' || c == '-';
}

gboolean
gchatd_user_name_validate (const char *name,
                           GError    **error)
{
  gsize i;

  g_return_val_if_fail (name != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  /* Bounded: a name sent by a peer may be long, and is never measured past the limit. */
  for (i = 0; name[i] != '\0' && i <= GCHATD_USER_NAME_MAX_LENGTH; i++)
    if (!is_name_char (name[i]))
      break;

  if (i == 0 || name[i] != '\0' || i > GCHATD_USER_NAME_MAX_LENGTH || !is_name_start (name[0]))
    {
      g_set_error (error, GCHATD_USER_STORE_ERROR, GCHATD_USER_STORE_ERROR_INVALID_NAME,
                   _("User names are 1–%d letters, digits, “.”, “_” or “-”, starting with a "
                     "letter or digit"),
                   GCHATD_USER_NAME_MAX_LENGTH);
      return FALSE;
    }

  return TRUE;
}

gboolean
gchatd_password_validate (const char *password,
                          gsize       len,
                          GError    **error)
{
  g_return_val_if_fail (password != NULL || len == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (len < GCHATD_PASSWORD_MIN_LENGTH || len > GCHATD_PASSWORD_MAX_LENGTH)
    {
      g_set_error (error, GCHATD_USER_STORE_ERROR, GCHATD_USER_STORE_ERROR_INVALID_PASSWORD,
                   _("Passwords must be %d–%d bytes long"), GCHATD_PASSWORD_MIN_LENGTH,
                   GCHATD_PASSWORD_MAX_LENGTH);
      return FALSE;
    }

  return TRUE;
}

/* The key of the name table. Names are ASCII (see gchatd_user_name_validate()), so ASCII case
 * folding is complete: no Unicode normalisation is needed to make look-alikes collide. */
static char *
fold_name (const char *name)
{
  return g_ascii_strdown (name, -1);
}

/* Quotes text from the file for a message: cut short and with control and non-ASCII bytes
 * escaped, so that a corrupt file cannot write arbitrary bytes into the log. */
static char *
quote_for_message (const char *text)
{
  g_autofree char *cut = g_strndup (text, MAX_QUOTED);

  return g_strescape (cut, NULL);
}

/* The store ------------------------------------------------------------------------------------ */

struct _GchatdUserStore
{
  GObject      parent_instance;

  char        *path;
  /* One thread at most, so saves never overlap. Jobs hold no reference to the store: finalize
   * waits for them instead (see writer_job() for why that cannot deadlock). */
  GThreadPool *writer;

  GMutex       lock;
  GCond        idle_cond;
  /* Everything below is guarded by @lock. */
  GHashTable  *names;      /* folded name → GchatdUserRecord, durable or only reserved */
  GPtrArray   *records;    /* durable GchatdUserRecord, in sign-up order, as in the file */
  GPtrArray   *pending;    /* GTask of changes not yet taken by a save, owned references */
  gboolean     job_queued; /* a job is queued that has not taken @pending yet */
  guint        n_jobs;     /* jobs queued or running; flush waits for zero */
  guint        n_writes;
};

enum {
  PROP_0,
  PROP_PATH,
  PROP_N_USERS,
  PROP_N_WRITES,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void gchatd_user_store_initable_iface_init (GInitableIface *iface);
static void writer_job (gpointer data, gpointer user_data);

G_DEFINE_FINAL_TYPE_WITH_CODE (GchatdUserStore, gchatd_user_store, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE,
                                                      gchatd_user_store_initable_iface_init))

static void
gchatd_user_store_finalize (GObject *object)
{
  GchatdUserStore *self = GCHATD_USER_STORE (object);

  /* Every change holds a reference until its callback ran, so no save is left to do here; this
   * only waits for the last job to finish its bookkeeping, which needs no main loop. */
  g_thread_pool_free (self->writer, FALSE, TRUE);

  g_hash_table_unref (self->names);
  g_ptr_array_unref (self->records);
  g_ptr_array_unref (self->pending);
  g_mutex_clear (&self->lock);
  g_cond_clear (&self->idle_cond);
  g_free (self->path);

  G_OBJECT_CLASS (gchatd_user_store_parent_class)->finalize (object);
}

static void
gchatd_user_store_get_property (GObject    *object,
                                guint       prop_id,
                                GValue     *value,
                                GParamSpec *pspec)
{
  GchatdUserStore *self = GCHATD_USER_STORE (object);

  switch (prop_id)
    {
    case PROP_PATH:
      g_value_set_string (value, self->path);
      break;
    case PROP_N_USERS:
      g_value_set_uint (value, gchatd_user_store_get_n_users (self));
      break;
    case PROP_N_WRITES:
      g_value_set_uint (value, gchatd_user_store_get_n_writes (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
gchatd_user_store_set_property (GObject      *object,
                                guint         prop_id,
                                const GValue *value,
                                GParamSpec   *pspec)
{
  GchatdUserStore *self = GCHATD_USER_STORE (object);

  switch (prop_id)
    {
    case PROP_PATH:
      self->path = g_value_dup_string (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
gchatd_user_store_class_init (GchatdUserStoreClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = gchatd_user_store_finalize;
  object_class->get_property = gchatd_user_store_get_property;
  object_class->set_property = gchatd_user_store_set_property;

  properties[PROP_PATH] =
    g_param_spec_string ("path", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  /* The two counters change on the writer thread, so they are not notified: read them. */
  properties[PROP_N_USERS] =
    g_param_spec_uint ("n-users", NULL, NULL, 0, G_MAXUINT, 0,
                       G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_N_WRITES] =
    g_param_spec_uint ("n-writes", NULL, NULL, 0, G_MAXUINT, 0,
                       G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
gchatd_user_store_init (GchatdUserStore *self)
{
  g_mutex_init (&self->lock);
  g_cond_init (&self->idle_cond);
  self->names = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                       (GDestroyNotify) gchatd_user_record_unref);
  self->records = g_ptr_array_new_with_free_func ((GDestroyNotify) gchatd_user_record_unref);
  self->pending = g_ptr_array_new ();
  /* A shared (non-exclusive) pool cannot fail to be created; its thread starts on demand. */
  self->writer = g_thread_pool_new (writer_job, self, 1, FALSE, NULL);
}

/* Loading: reading the file -------------------------------------------------------------------- */

static gboolean
set_read_error (GError    **error,
                const char *path,
                const char *reason)
{
  g_set_error (error, GCHATD_USER_STORE_ERROR, GCHATD_USER_STORE_ERROR_IO,
               _("Could not read the user database “%s”: %s"), path, reason);
  return FALSE;
}

static gboolean
set_corrupt_error (GError    **error,
                   const char *path,
                   guint       line,
                   guint       column,
                   const char *detail)
{
  g_set_error (error, GCHATD_USER_STORE_ERROR, GCHATD_USER_STORE_ERROR_CORRUPT,
               _("The user database “%s” is corrupt at line %u, column %u: %s"), path, line, column,
               detail);
  return FALSE;
}

static gboolean
set_too_large_error (GError    **error,
                     const char *path)
{
  g_set_error (error, GCHATD_USER_STORE_ERROR, GCHATD_USER_STORE_ERROR_CORRUPT,
               _("The user database “%s” is corrupt: it is larger than %d MiB, or grew while it "
                 "was read"),
               path, MAX_FILE_SIZE / (1024 * 1024));
  return FALSE;
}

/* Reads the whole of the open regular file @fd (gchat_file_read_fd()), worded for this file. */
static gboolean
read_all (int         fd,
          const char *path,
          char      **contents,
          gsize      *len,
          GError    **error)
{
  g_autoptr (GError) local_error = NULL;

  if (gchat_file_read_fd (fd, MAX_FILE_SIZE, contents, len, &local_error))
    return TRUE;
  if (g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE))
    return set_too_large_error (error, path);
  if (g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_NOT_REGULAR_FILE))
    return set_read_error (error, path, _("it is not a regular file"));
  return set_read_error (error, path, local_error->message);
}

/* Loading: parsing ----------------------------------------------------------------------------- */

static void
on_array_element (JsonParser *parser,
                  JsonArray  *array,
                  int         index,
                  GHashTable *element_lines)
{
  g_hash_table_insert (element_lines, json_array_get_element (array, index),
                       GUINT_TO_POINTER (json_parser_get_current_line (parser)));
}

/* Parses @data into @parser as strict JSON, with the line and column of any problem, and
 * notes in @element_lines (JsonNode → line) where each array element ended: positions exist
 * only while the parser runs. */
static gboolean
parse_json (JsonParser *parser,
            const char *path,
            const char *data,
            gsize       len,
            GHashTable *element_lines,
            GError    **error)
{
  g_autoptr (GError) local_error = NULL;
  gsize offset = 0;
  guint line, column;

  g_signal_connect (parser, "array-element", G_CALLBACK (on_array_element), element_lines);
  if (gchat_json_parse (parser, data, len, MAX_DEPTH, MAX_VALUES, &offset, &local_error))
    return TRUE;

  gchat_json_offset_to_position (data, offset, &line, &column);
  return set_corrupt_error (error, path, line, column, local_error->message);
}

/* Loading: validating -------------------------------------------------------------------------- */

static gboolean
set_detail (GError    **error,
            const char *format,
            ...) G_GNUC_PRINTF (2, 3);

/* Sets a CORRUPT error with only the detail; the caller prefixes the file and position. */
static gboolean
set_detail (GError    **error,
            const char *format,
            ...)
{
  g_autofree char *detail = NULL;
  va_list args;

  va_start (args, format);
  detail = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error_literal (error, GCHATD_USER_STORE_ERROR, GCHATD_USER_STORE_ERROR_CORRUPT, detail);

  return FALSE;
}

/* Refuses any member of @object not in the NULL-terminated @allowed, and any missing one. */
static gboolean
check_members (JsonObject         *object,
               const char * const *allowed,
               GError            **error)
{
  g_autoptr (GList) members = json_object_get_members (object);

  for (const GList *l = members; l != NULL; l = l->next)
    if (!g_strv_contains (allowed, l->data))
      {
        g_autofree char *quoted = quote_for_message (l->data);

        return set_detail (error, _("the member “%s” is not part of the format"), quoted);
      }
  for (gsize i = 0; allowed[i] != NULL; i++)
    if (!json_object_has_member (object, allowed[i]))
      return set_detail (error, _("the member “%s” is missing"), allowed[i]);

  return TRUE;
}

static gboolean
get_int (JsonObject *object,
         const char *member,
         gint64      min,
         gint64      max,
         gint64     *out,
         GError    **error)
{
  JsonNode *node = json_object_get_member (object, member);

  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
    return set_detail (error, _("“%s” is not a whole number"), member);

  *out = json_node_get_int (node);
  if (*out < min || *out > max)
    return set_detail (error, _("“%s” is out of range"), member);

  return TRUE;
}

static gboolean
get_string (JsonObject  *object,
            const char  *member,
            const char **out,
            GError     **error)
{
  JsonNode *node = json_object_get_member (object, member);

  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    return set_detail (error, _("“%s” is not a string"), member);

  *out = json_node_get_string (node);
  return TRUE;
}

/* Decodes canonical base64 of exactly @size bytes: the right length, and the encoding of the
 * decoded bytes is the text itself (g_base64_decode() alone skips stray characters). */
static gboolean
decode_base64_exact (const char *text,
                     guint8     *out,
                     gsize       size)
{
  g_autofree guchar *decoded = NULL;
  g_autofree char *encoded = NULL;
  gsize decoded_len = 0;

  if (strlen (text) != 4 * ((size + 2) / 3))
    return FALSE;
  decoded = g_base64_decode (text, &decoded_len);
  if (decoded_len != size)
    return FALSE;
  encoded = g_base64_encode (decoded, decoded_len);
  if (strcmp (encoded, text) != 0)
    return FALSE;

  memcpy (out, decoded, size);
  return TRUE;
}

static gboolean
parse_params (JsonObject        *record,
              GchatArgon2Params *params,
              GError           **error)
{
  static const char * const members[] = { "m", "t", "p", NULL };
  JsonNode *node = json_object_get_member (record, "argon2");
  JsonObject *object;
  gint64 m, t, p;
  g_autoptr (GError) invalid = NULL;

  if (!JSON_NODE_HOLDS_OBJECT (node))
    return set_detail (error, _("“%s” is not an object"), "argon2");
  object = json_node_get_object (node);

  if (!check_members (object, members, error) || !get_int (object, "m", 0, G_MAXUINT32, &m, error)
      || !get_int (object, "t", 0, G_MAXUINT32, &t, error)
      || !get_int (object, "p", 0, G_MAXUINT32, &p, error))
    return FALSE;

  *params = (GchatArgon2Params) { .memory_kib = m, .iterations = t, .parallelism = p };
  if (!gchat_argon2_params_validate (params, &invalid))
    return set_detail (error, "%s", invalid->message);

  return TRUE;
}

/* Checks the values of a record whose members all have the right types. */
static gboolean
check_record_values (const char *name,
                     const char *salt_text,
                     const char *hash_text,
                     guint8     *salt,
                     guint8     *hash,
                     GError    **error)
{
  if (!gchatd_user_name_validate (name, NULL))
    {
      g_autofree char *quoted = quote_for_message (name);

      return set_detail (error, _("“%s” is not a valid user name"), quoted);
    }
  if (!decode_base64_exact (salt_text, salt, GCHATD_USER_SALT_SIZE))
    return set_detail (error, _("“salt” is not %d bytes in base64"), GCHATD_USER_SALT_SIZE);
  if (!decode_base64_exact (hash_text, hash, GCHATD_USER_HASH_SIZE))
    return set_detail (error, _("“hash” is not %d bytes in base64"), GCHATD_USER_HASH_SIZE);

  return TRUE;
}

/* Turns one element of "users" into a record, or says what is wrong with it. */
static GchatdUserRecord *
parse_record (JsonNode *node,
              GError  **error)
{
  static const char * const members[] = { "name", "argon2", "salt", "hash", "created", NULL };
  JsonObject *object;
  const char *name, *salt_text, *hash_text;
  GchatArgon2Params params;
  guint8 salt[GCHATD_USER_SALT_SIZE], hash[GCHATD_USER_HASH_SIZE];
  gint64 created;

  if (!JSON_NODE_HOLDS_OBJECT (node))
    {
      set_detail (error, _("it is not an object"));
      return NULL;
    }
  object = json_node_get_object (node);

  if (!check_members (object, members, error) || !get_string (object, "name", &name, error)
      || !parse_params (object, &params, error) || !get_string (object, "salt", &salt_text, error)
      || !get_string (object, "hash", &hash_text, error)
      || !get_int (object, "created", 0, G_MAXINT64, &created, error)
      || !check_record_values (name, salt_text, hash_text, salt, hash, error))
    return NULL;

  return gchatd_user_record_new (name, &params, salt, hash, created);
}

/* Checks the top level; returns FALSE, or TRUE with the "users" array in @users. */
static gboolean
parse_root (JsonNode   *root,
            JsonArray **users,
            GError    **error)
{
  static const char * const members[] = { "version", "users", NULL };
  JsonObject *object;
  JsonNode *node;
  gint64 version;

  if (root == NULL)
    return set_detail (error, _("the file is empty; delete it to start with no users"));
  if (!JSON_NODE_HOLDS_OBJECT (root))
    return set_detail (error, _("it is not a JSON object"));
  object = json_node_get_object (root);

  if (!check_members (object, members, error)
      || !get_int (object, "version", 0, G_MAXINT32, &version, error))
    return FALSE;
  if (version != FORMAT_VERSION)
    return set_detail (error, _("it is in format %d, and this gchatd reads only format %d"),
                       (int) version, FORMAT_VERSION);

  node = json_object_get_member (object, "users");
  if (!JSON_NODE_HOLDS_ARRAY (node))
    return set_detail (error, _("“%s” is not an array"), "users");
  *users = json_node_get_array (node);
  if (json_array_get_length (*users) > GCHATD_USER_STORE_MAX_USERS)
    return set_detail (error, _("it holds more than %d users"), GCHATD_USER_STORE_MAX_USERS);

  return TRUE;
}

/* Adds a record read from the file to the (still private, so unlocked) tables of @self. */
static gboolean
add_loaded_record (GchatdUserStore  *self,
                   GchatdUserRecord *record,
                   GError          **error)
{
  g_autofree char *key = fold_name (record->name);

  if (g_hash_table_contains (self->names, key))
    {
      for (guint i = 0; i < self->records->len; i++)
        {
          GchatdUserRecord *first = g_ptr_array_index (self->records, i);

          if (g_ascii_strcasecmp (first->name, key) == 0)
            return set_detail (error, _("the name “%s” is already used by user record %u"),
                               record->name, i + 1);
        }
    }

  record->durable = TRUE;
  g_hash_table_insert (self->names, g_steal_pointer (&key), gchatd_user_record_ref (record));
  g_ptr_array_add (self->records, gchatd_user_record_ref (record));

  return TRUE;
}

static gboolean
load_records (GchatdUserStore *self,
              JsonArray       *users,
              GHashTable      *element_lines,
              GError         **error)
{
  guint n = json_array_get_length (users);

  for (guint i = 0; i < n; i++)
    {
      JsonNode *node = json_array_get_element (users, i);
      g_autoptr (GchatdUserRecord) record = parse_record (node, error);

      if (record == NULL || !add_loaded_record (self, record, error))
        {
          guint line = GPOINTER_TO_UINT (g_hash_table_lookup (element_lines, node));

          g_prefix_error (error,
                          _("The user database “%s” is corrupt in user record %u (ending on "
                            "line %u): "),
                          self->path, i + 1, line);
          return FALSE;
        }
    }

  return TRUE;
}

static gboolean
load_contents (GchatdUserStore *self,
               const char      *data,
               gsize            len,
               GError         **error)
{
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  g_autoptr (GHashTable) element_lines = g_hash_table_new (NULL, NULL);
  JsonNode *root = NULL;
  JsonArray *users = NULL;

  /* A blank file is not JSON, but it gets the advice of parse_root() rather than a position.
   * (read_all() ends @data with a NUL, which strspn() stops at.) */
  if (strspn (data, " \t\n\r") < len)
    {
      if (!parse_json (parser, self->path, data, len, element_lines, error))
        return FALSE;
      root = json_parser_get_root (parser);
    }

  if (!parse_root (root, &users, error))
    {
      g_prefix_error (error, _("The user database “%s” is corrupt at the top level: "), self->path);
      return FALSE;
    }

  return load_records (self, users, element_lines, error);
}

/* A file others can read gives away every hash to try passwords against offline. Saving always
 * makes it 0600; a file loaded with a wider mode (copied in by hand, say) is fixed at once. */
static void
tighten_mode (GchatdUserStore *self,
              int              fd)
{
  struct stat st;

  if (fstat (fd, &st) != 0 || (st.st_mode & 0077) == 0)
    return;

  if (fchmod (fd, 0600) == 0)
    g_message ("Made the user database “%s” readable by its owner only (it was %04o)", self->path,
               (guint) (st.st_mode & 07777));
  else
    g_warning ("The user database “%s” is readable by others, and could not be changed: %s",
               self->path, g_strerror (errno));
}

static gboolean
gchatd_user_store_initable_init (GInitable    *initable,
                                 GCancellable *cancellable,
                                 GError      **error)
{
  GchatdUserStore *self = GCHATD_USER_STORE (initable);
  g_autofree char *contents = NULL;
  gsize len = 0;
  gboolean ok;
  int fd;

  g_return_val_if_fail (self->path != NULL, FALSE);

  /* O_NONBLOCK so that a FIFO put in the file's place cannot hang the start. */
  fd = g_open (self->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0);
  if (fd < 0 && errno == ENOENT)
    return TRUE;
  if (fd < 0)
    return set_read_error (error, self->path, g_strerror (errno));

  ok = read_all (fd, self->path, &contents, &len, error)
       && load_contents (self, contents, len, error);
  if (ok)
    tighten_mode (self, fd);
  close (fd);

  return ok;
}

static void
gchatd_user_store_initable_iface_init (GInitableIface *iface)
{
  iface->init = gchatd_user_store_initable_init;
}

/* Saving --------------------------------------------------------------------------------------- */

static JsonNode *
record_to_json (const GchatdUserRecord *record)
{
  g_autoptr (JsonObject) argon2 = json_object_new ();
  g_autoptr (JsonObject) object = json_object_new ();
  g_autofree char *salt = g_base64_encode (record->salt, sizeof record->salt);
  g_autofree char *hash = g_base64_encode (record->hash, sizeof record->hash);

  json_object_set_int_member (argon2, "m", record->params.memory_kib);
  json_object_set_int_member (argon2, "t", record->params.iterations);
  json_object_set_int_member (argon2, "p", record->params.parallelism);

  json_object_set_string_member (object, "name", record->name);
  json_object_set_object_member (object, "argon2", g_steal_pointer (&argon2));
  json_object_set_string_member (object, "salt", salt);
  json_object_set_string_member (object, "hash", hash);
  json_object_set_int_member (object, "created", record->created);

  return json_node_init_object (json_node_alloc (), object);
}

/* The file's text: one record a line, so that a position in an error points at one account. */
static GString *
serialize (GPtrArray *records)
{
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  GString *text = g_string_new ("{\n  \"version\": 1,\n  \"users\": [");

  for (guint i = 0; i < records->len; i++)
    {
      g_autoptr (JsonNode) node = record_to_json (g_ptr_array_index (records, i));

      g_string_append (text, i == 0 ? "\n    " : ",\n    ");
      json_generator_set_root (generator, node);
      json_generator_to_gstring (generator, text);
    }
  g_string_append (text, records->len > 0 ? "\n  ]\n}\n" : "]\n}\n");

  /* The text holds the hashes until the save is done; the caller wipes and frees it. */
  return text;
}

static gboolean
save_records (const char *path,
              GPtrArray  *records,
              GError    **error)
{
  GString *text = serialize (records);
  g_autoptr (GError) local_error = NULL;
  gboolean ok = gchat_file_replace (path, text->str, text->len, 0600, &local_error);

  if (!ok)
    g_set_error (error, GCHATD_USER_STORE_ERROR, GCHATD_USER_STORE_ERROR_IO,
                 _("Could not save the user database “%s”: %s"), path, local_error->message);

  gchat_memzero (text->str, text->len);
  g_string_free (text, TRUE);

  return ok;
}

/* Changes and the writer ----------------------------------------------------------------------- */

typedef enum {
  CHANGE_ADD,
  CHANGE_REPLACE,
  CHANGE_REMOVE,
} ChangeKind;

/* One add, replace or remove on its way to the disk: the task data of its GTask. */
typedef struct {
  ChangeKind        kind;
  /* The folded name the change is about. */
  char             *key;
  /* Add: the new record, reserved in the name table. Replace: at first a template holding the
   * new parameters, salt and hash; once the batch is built, the replacing record, which keeps the
   * stored name and creation time. Remove: NULL. */
  GchatdUserRecord *record;
  /* Set while the batch is built when the change no longer applies (its user went away). */
  GError           *error;
} Change;

static void
change_free (gpointer data)
{
  Change *change = data;

  g_free (change->key);
  g_clear_pointer (&change->record, gchatd_user_record_unref);
  g_clear_error (&change->error);
  g_free (change);
}

static Change *
task_change (GTask *task)
{
  return g_task_get_task_data (task);
}

/* One change's result on its way to the main context the change was asked for in. */
typedef struct {
  GTask  *task;
  GError *error;
} Completion;

static gboolean
completion_dispatch (gpointer data)
{
  Completion *completion = data;

  if (completion->error != NULL)
    g_task_return_error (completion->task, g_steal_pointer (&completion->error));
  else
    g_task_return_boolean (completion->task, TRUE);

  return G_SOURCE_REMOVE;
}

static void
completion_free (gpointer data)
{
  Completion *completion = data;

  g_clear_error (&completion->error);
  g_object_unref (completion->task);
  g_free (completion);
}

/* Hands @task (an owned reference, passed on) to its own main context to be returned there.
 * The writer thread must never drop the last reference to a task: that would drop the task's
 * reference to the store on the writer thread, where finalize cannot wait for the writer. */
static void
complete_in_context (GTask        *task,
                     const GError *error)
{
  Completion *completion = g_new0 (Completion, 1);
  GSource *source = g_idle_source_new ();

  completion->task = task;
  completion->error = error != NULL ? g_error_copy (error) : NULL;
  g_source_set_priority (source, G_PRIORITY_DEFAULT);
  g_source_set_callback (source, completion_dispatch, completion, completion_free);
  g_source_set_static_name (source, "[gchatd] user store change");
  g_source_attach (source, g_task_get_context (task));
  g_source_unref (source);
}

static gpointer
copy_record (gconstpointer record,
             gpointer      user_data)
{
  return gchatd_user_record_ref ((GchatdUserRecord *) record);
}

static void
set_unknown_user_error (GError    **error,
                        const char *name)
{
  g_set_error (error, GCHATD_USER_STORE_ERROR, GCHATD_USER_STORE_ERROR_UNKNOWN_USER,
               _("There is no user named “%s”"), name);
}

/* The position in @records of the account with the folded name @key, or -1. A linear search:
 * replaces and removes are administrator commands, rare next to adds, which need none. */
static gint
find_record (GPtrArray  *records,
             const char *key)
{
  for (guint i = 0; i < records->len; i++)
    {
      const GchatdUserRecord *record = g_ptr_array_index (records, i);

      if (g_ascii_strcasecmp (record->name, key) == 0)
        return i;
    }

  return -1;
}

/* Applies @change to @records, the file's contents being built. A replace or remove whose user
 * is no longer there (an earlier change removed it) gets its own error and changes nothing. */
static gboolean
apply_change (GPtrArray *records,
              Change    *change)
{
  GchatdUserRecord *old, *template;
  gint index;

  if (change->kind == CHANGE_ADD)
    {
      g_ptr_array_add (records, gchatd_user_record_ref (change->record));
      return TRUE;
    }

  index = find_record (records, change->key);
  if (index < 0)
    {
      set_unknown_user_error (&change->error, change->record != NULL ? change->record->name
                                                                     : change->key);
      return FALSE;
    }
  if (change->kind == CHANGE_REMOVE)
    {
      g_ptr_array_remove_index (records, index);
      return TRUE;
    }

  old = g_ptr_array_index (records, index);
  template = change->record;
  change->record = gchatd_user_record_new (old->name, &template->params, template->salt,
                                           template->hash, old->created);
  gchatd_user_record_unref (template);
  g_ptr_array_index (records, index) = gchatd_user_record_ref (change->record);
  gchatd_user_record_unref (old);

  return TRUE;
}

/* Under the lock: the durable records with the changes of @batch applied, in order, as the file
 * will hold them. Returns how many changes applied in @n_applied. */
static GPtrArray *
snapshot_with (GchatdUserStore *self,
               GPtrArray       *batch,
               guint           *n_applied)
{
  GPtrArray *snapshot = g_ptr_array_copy (self->records, copy_record, NULL);

  *n_applied = 0;
  for (guint i = 0; i < batch->len; i++)
    if (apply_change (snapshot, task_change (g_ptr_array_index (batch, i))))
      (*n_applied)++;

  return snapshot;
}

/* Under the lock: makes the changes of a saved batch visible, or frees the names its adds
 * reserved after a failed save. Replaces and removes that failed left nothing to undo. */
static void
settle_batch (GchatdUserStore *self,
              GPtrArray       *batch,
              GPtrArray       *snapshot,
              gboolean         saved)
{
  for (guint i = 0; i < batch->len; i++)
    {
      Change *change = task_change (g_ptr_array_index (batch, i));

      if (change->error != NULL || (!saved && change->kind != CHANGE_ADD))
        continue;
      if (!saved || change->kind == CHANGE_REMOVE)
        g_hash_table_remove (self->names, change->key);
      else if (change->kind == CHANGE_REPLACE)
        g_hash_table_insert (self->names, g_strdup (change->key),
                             gchatd_user_record_ref (change->record));
      if (saved && change->record != NULL)
        change->record->durable = TRUE;
    }

  /* Only the writer changes @records, and it built @snapshot from them under the lock. */
  if (saved)
    {
      g_ptr_array_unref (self->records);
      self->records = g_ptr_array_ref (snapshot);
    }
}

/* The writer's one job: save every change pending when it starts, in one rewrite of the file.
 * It holds no reference to the store. The store stays alive meanwhile because each change in
 * the batch holds one until its result is dispatched in its main context; after that, only
 * finalize can run, which waits for this job in g_thread_pool_free() on the main thread — never
 * here, since this thread never drops a task. */
static void
writer_job (gpointer data,
            gpointer user_data)
{
  GchatdUserStore *self = user_data;
  g_autoptr (GPtrArray) batch = NULL;
  g_autoptr (GPtrArray) snapshot = NULL;
  g_autoptr (GError) error = NULL;
  guint n_applied = 0;
  gboolean saved = TRUE;

  g_mutex_lock (&self->lock);
  batch = g_steal_pointer (&self->pending);
  self->pending = g_ptr_array_new ();
  self->job_queued = FALSE;
  snapshot = snapshot_with (self, batch, &n_applied);
  g_mutex_unlock (&self->lock);

  /* A failure is not logged here: it reaches every change of the batch, whose callers report
   * it. A batch of which nothing applies leaves the file as it is. */
  if (n_applied > 0)
    saved = save_records (self->path, snapshot, &error);

  g_mutex_lock (&self->lock);
  settle_batch (self, batch, snapshot, saved);
  if (saved && n_applied > 0)
    self->n_writes++;
  g_mutex_unlock (&self->lock);

  for (guint i = 0; i < batch->len; i++)
    {
      GTask *task = g_ptr_array_index (batch, i);
      const GError *own_error = task_change (task)->error;

      complete_in_context (task, own_error != NULL ? own_error : error);
    }

  g_mutex_lock (&self->lock);
  self->n_jobs--;
  g_cond_broadcast (&self->idle_cond);
  g_mutex_unlock (&self->lock);
}

/* Under the lock: checks that @change can be queued, reserving the name of an add. */
static gboolean
admit_change (GchatdUserStore *self,
              Change          *change,
              GError         **error)
{
  GchatdUserRecord *current = g_hash_table_lookup (self->names, change->key);

  if (change->kind != CHANGE_ADD)
    {
      /* Checked again when the batch is built; this only spares a save that would fail. */
      if (current == NULL || !current->durable)
        {
          set_unknown_user_error (error, change->record != NULL ? change->record->name
                                                                : change->key);
          return FALSE;
        }
      return TRUE;
    }

  if (current != NULL)
    {
      g_set_error (error, GCHATD_USER_STORE_ERROR, GCHATD_USER_STORE_ERROR_NAME_TAKEN,
                   _("The user name “%s” is already taken"), change->record->name);
      return FALSE;
    }
  if (g_hash_table_size (self->names) >= GCHATD_USER_STORE_MAX_USERS)
    {
      g_set_error (error, GCHATD_USER_STORE_ERROR, GCHATD_USER_STORE_ERROR_FULL,
                   _("The user database is full: it holds %d users"),
                   GCHATD_USER_STORE_MAX_USERS);
      return FALSE;
    }

  g_hash_table_insert (self->names, g_strdup (change->key),
                       gchatd_user_record_ref (change->record));
  return TRUE;
}

/* Admits the change of @task and queues the task for the next save. */
static gboolean
queue_change (GchatdUserStore *self,
              GTask           *task,
              GError         **error)
{
  G_GNUC_UNUSED g_autoptr (GMutexLocker) locker = g_mutex_locker_new (&self->lock);
  g_autoptr (GError) push_error = NULL;

  if (!admit_change (self, task_change (task), error))
    return FALSE;

  g_ptr_array_add (self->pending, g_object_ref (task));
  if (self->job_queued)
    return TRUE;

  self->job_queued = TRUE;
  self->n_jobs++;
  /* A shared pool queues the job even when it cannot start a thread right now; it runs as soon
   * as one is free, so there is nothing to undo here, only something to report. */
  if (!g_thread_pool_push (self->writer, self, &push_error))
    g_warning ("Could not start saving the user database “%s”: %s", self->path,
               push_error->message);

  return TRUE;
}

/* Checks what every change needs and makes its task; NULL when the task already returned. */
static GTask *
change_task_new (GchatdUserStore     *self,
                 const char          *name,
                 GCancellable        *cancellable,
                 GAsyncReadyCallback  callback,
                 gpointer             user_data,
                 gpointer             source_tag)
{
  g_autoptr (GTask) task = g_task_new (self, cancellable, callback, user_data);
  g_autoptr (GError) error = NULL;

  g_task_set_source_tag (task, source_tag);
  /* Once the change is queued, the save decides the outcome and the result must tell it. */
  g_task_set_check_cancellable (task, FALSE);

  if (g_task_return_error_if_cancelled (task))
    return NULL;
  if (!gchatd_user_name_validate (name, &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return NULL;
    }

  return g_steal_pointer (&task);
}

/* Checks the parameters of an add or a replace; returns the task already if they are bad. */
static gboolean
check_params (GTask                   *task,
              const GchatArgon2Params *params)
{
  g_autoptr (GError) invalid = NULL;

  if (gchat_argon2_params_validate (params, &invalid))
    return TRUE;

  g_task_return_new_error (task, GCHATD_USER_STORE_ERROR, GCHATD_USER_STORE_ERROR_INVALID_ARGUMENT,
                           "%s", invalid->message);
  return FALSE;
}

/* Gives @change to @task and queues it, or returns the task with the reason it was refused. */
static void
submit_change (GchatdUserStore *self,
               GTask           *task,
               Change          *change)
{
  g_autoptr (GError) error = NULL;

  g_task_set_task_data (task, change, change_free);
  if (!queue_change (self, task, &error))
    g_task_return_error (task, g_steal_pointer (&error));
}

static Change *
change_new (ChangeKind        kind,
            const char       *name,
            GchatdUserRecord *record)
{
  Change *change = g_new0 (Change, 1);

  change->kind = kind;
  change->key = fold_name (name);
  change->record = record;

  return change;
}

void
gchatd_user_store_add_async (GchatdUserStore         *self,
                             const char              *name,
                             const GchatArgon2Params *params,
                             const guint8            *salt,
                             gsize                    salt_len,
                             const guint8            *hash,
                             gsize                    hash_len,
                             GCancellable            *cancellable,
                             GAsyncReadyCallback      callback,
                             gpointer                 user_data)
{
  g_autoptr (GTask) task = NULL;
  GchatdUserRecord *record;

  g_return_if_fail (GCHATD_IS_USER_STORE (self));
  g_return_if_fail (name != NULL && params != NULL && salt != NULL && hash != NULL);
  g_return_if_fail (salt_len == GCHATD_USER_SALT_SIZE && hash_len == GCHATD_USER_HASH_SIZE);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = change_task_new (self, name, cancellable, callback, user_data,
                          gchatd_user_store_add_async);
  if (task == NULL || !check_params (task, params))
    return;

  record = gchatd_user_record_new (name, params, salt, hash, g_get_real_time () / G_USEC_PER_SEC);
  submit_change (self, task, change_new (CHANGE_ADD, name, record));
}

gboolean
gchatd_user_store_add_finish (GchatdUserStore *self,
                              GAsyncResult    *result,
                              GError         **error)
{
  g_return_val_if_fail (GCHATD_IS_USER_STORE (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == gchatd_user_store_add_async,
                        FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

void
gchatd_user_store_replace_async (GchatdUserStore         *self,
                                 const char              *name,
                                 const GchatArgon2Params *params,
                                 const guint8            *salt,
                                 gsize                    salt_len,
                                 const guint8            *hash,
                                 gsize                    hash_len,
                                 GCancellable            *cancellable,
                                 GAsyncReadyCallback      callback,
                                 gpointer                 user_data)
{
  g_autoptr (GTask) task = NULL;
  GchatdUserRecord *template;

  g_return_if_fail (GCHATD_IS_USER_STORE (self));
  g_return_if_fail (name != NULL && params != NULL && salt != NULL && hash != NULL);
  g_return_if_fail (salt_len == GCHATD_USER_SALT_SIZE && hash_len == GCHATD_USER_HASH_SIZE);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = change_task_new (self, name, cancellable, callback, user_data,
                          gchatd_user_store_replace_async);
  if (task == NULL || !check_params (task, params))
    return;

  template = gchatd_user_record_new (name, params, salt, hash, 0);
  submit_change (self, task, change_new (CHANGE_REPLACE, name, template));
}

gboolean
gchatd_user_store_replace_finish (GchatdUserStore *self,
                                  GAsyncResult    *result,
                                  GError         **error)
{
  g_return_val_if_fail (GCHATD_IS_USER_STORE (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (
    g_task_get_source_tag (G_TASK (result)) == gchatd_user_store_replace_async, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

void
gchatd_user_store_remove_async (GchatdUserStore     *self,
                                const char          *name,
                                GCancellable        *cancellable,
                                GAsyncReadyCallback  callback,
                                gpointer             user_data)
{
  g_autoptr (GTask) task = NULL;

  g_return_if_fail (GCHATD_IS_USER_STORE (self));
  g_return_if_fail (name != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = change_task_new (self, name, cancellable, callback, user_data,
                          gchatd_user_store_remove_async);
  if (task == NULL)
    return;

  submit_change (self, task, change_new (CHANGE_REMOVE, name, NULL));
}

gboolean
gchatd_user_store_remove_finish (GchatdUserStore *self,
                                 GAsyncResult    *result,
                                 GError         **error)
{
  g_return_val_if_fail (GCHATD_IS_USER_STORE (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (
    g_task_get_source_tag (G_TASK (result)) == gchatd_user_store_remove_async, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/* Queries -------------------------------------------------------------------------------------- */

GchatdUserStore *
gchatd_user_store_new (const char *path,
                       GError    **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_initable_new (GCHATD_TYPE_USER_STORE, NULL, error, "path", path, NULL);
}

const char *
gchatd_user_store_get_path (GchatdUserStore *self)
{
  g_return_val_if_fail (GCHATD_IS_USER_STORE (self), NULL);

  return self->path;
}

guint
gchatd_user_store_get_n_users (GchatdUserStore *self)
{
  g_autoptr (GMutexLocker) locker = NULL;

  g_return_val_if_fail (GCHATD_IS_USER_STORE (self), 0);

  locker = g_mutex_locker_new (&self->lock);
  return self->records->len;
}

guint
gchatd_user_store_get_n_writes (GchatdUserStore *self)
{
  g_autoptr (GMutexLocker) locker = NULL;

  g_return_val_if_fail (GCHATD_IS_USER_STORE (self), 0);

  locker = g_mutex_locker_new (&self->lock);
  return self->n_writes;
}

GchatdUserRecord *
gchatd_user_store_lookup (GchatdUserStore *self,
                          const char      *name)
{
  g_autoptr (GMutexLocker) locker = NULL;
  g_autofree char *key = NULL;
  GchatdUserRecord *record;

  g_return_val_if_fail (GCHATD_IS_USER_STORE (self), NULL);
  g_return_val_if_fail (name != NULL, NULL);

  /* No stored name is invalid, and checking first bounds the work a peer's name can cause. */
  if (!gchatd_user_name_validate (name, NULL))
    return NULL;

  key = fold_name (name);
  locker = g_mutex_locker_new (&self->lock);
  record = g_hash_table_lookup (self->names, key);
  if (record == NULL || !record->durable)
    return NULL;

  return gchatd_user_record_ref (record);
}

GPtrArray *
gchatd_user_store_dup_records (GchatdUserStore *self)
{
  g_autoptr (GMutexLocker) locker = NULL;

  g_return_val_if_fail (GCHATD_IS_USER_STORE (self), NULL);

  locker = g_mutex_locker_new (&self->lock);
  return g_ptr_array_copy (self->records, copy_record, NULL);
}

gboolean
gchatd_user_store_flush_sync (GchatdUserStore *self,
                              guint            timeout_ms,
                              GError         **error)
{
  g_autoptr (GMutexLocker) locker = NULL;
  gint64 end_time;

  g_return_val_if_fail (GCHATD_IS_USER_STORE (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  end_time = g_get_monotonic_time () + (gint64) timeout_ms * G_TIME_SPAN_MILLISECOND;
  locker = g_mutex_locker_new (&self->lock);
  while (self->n_jobs > 0)
    if (!g_cond_wait_until (&self->idle_cond, &self->lock, end_time))
      {
        g_set_error (error, GCHATD_USER_STORE_ERROR, GCHATD_USER_STORE_ERROR_TIMED_OUT,
                     _("The user database “%s” was still being saved after %u ms"), self->path,
                     timeout_ms);
        return FALSE;
      }

  return TRUE;
}
