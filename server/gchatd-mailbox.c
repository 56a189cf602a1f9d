/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Keeps the messages and receipts held for offline users, one small JSON file per user. */

/*
 * The folder (for gchatd, “mail” in its data folder) is 0700 and holds one file, 0600, per
 * user who has something waiting, named after the user name folded to lower case:
 * “alice.json”. One file per user rather than one for all keeps each save small: a burst of
 * mail to one user rewrites that user's file only, whatever the others hold. The name is safe
 * as a file name because only names gchatd_user_name_validate() accepts are used (ASCII
 * letters, digits, “.”, “_”, “-”, starting with a letter or digit, at most 32), so it can be
 * neither “.”, “..”, empty, too long, nor hold a “/”; case variants fold to one file.
 *
 * {
 *   "version": 1,
 *   "user": "alice",
 *   "mail": [
 *     {"id":1700000000000001,"sender":"Bob","recipient":"Alice","msg_id":"42","text":"hi",
 *      "queued":1700000000},
 *   ],
 *   "receipts": [
 *     {"id":1700000000000002,"sender":"Alice","recipient":"carol","msg_id":"7",
 *      "delivered":1700000000}
 *   ]
 * }
 *
 * mail      messages for this user, oldest first; at most GCHATD_MAILBOX_MAX_MESSAGES of at
 *           most GCHATD_MAILBOX_MAX_BYTES bytes of text in all
 * receipts  "delivered" receipts for messages this user sent, oldest first
 * id        assigned by gchatd, unique among the user's records; ids only grow: a new one is
 *           the larger of the last one plus one and the time in microseconds, so that an id
 *           is not reused even after a box was emptied (and its file deleted) and gchatd
 *           restarted, unless the clock went back
 * msg_id    the sender's own 64-bit id of the message, in decimal (JSON integers stop at 2^63)
 *
 * Loading is strict, as for the user database: every member present with its type, no other
 * member, names valid and belonging in this file, ids ascending in each array, limits kept; a
 * bad file fails the load with its name and position and nothing is written. Other files in
 * the folder (temporary files left by a crash, say) are ignored.
 *
 * Saving rewrites one user's file: write “alice.json.XXXXXX” (0600), fsync, rename over the
 * file, fsync the folder; a box left empty is deleted instead. Saves run on a private pool of
 * one thread; the changes that arrive during a save are saved together by the next one (group
 * commit), each user's file once per save. A change completes, and is visible, only once its
 * file is durable; a failed save changes nothing in memory or on disk.
 */

#include "config.h"

#include <inttypes.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gi18n-lib.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "gchat-crypto.h"
#include "gchat-file.h"
#include "gchat-json.h"
#include "gchatd-mailbox.h"
#include "gchatd-user-store.h"

#define FORMAT_VERSION 1
#define FILE_SUFFIX ".json"
/* The largest box file loaded: the text of a full box with every byte escaped as “\u00XX”,
 * plus the records around it. */
#define MAX_FILE_SIZE (6 * GCHATD_MAILBOX_MAX_BYTES + 4 * 1024 * 1024)
/* The format needs three levels; json-glib recurses once per level. */
#define MAX_DEPTH 8
/* A record has seven values. */
#define MAX_VALUES ((GCHATD_MAILBOX_MAX_MESSAGES + GCHATD_MAILBOX_MAX_RECEIPTS) * 8 + 64)
/* How much of a bad name is quoted back in a message. */
#define MAX_QUOTED 40

G_DEFINE_QUARK (gchatd-mailbox-error-quark, gchatd_mailbox_error)

/* Records -------------------------------------------------------------------------------------- */

struct _GchatdMail
{
  gatomicrefcount ref_count;
  guint64         id;
  char           *sender;
  char           *recipient;
  guint64         msg_id;
  char           *text;
  gsize           len;
  gint64          queued;
};

G_DEFINE_BOXED_TYPE (GchatdMail, gchatd_mail, gchatd_mail_ref, gchatd_mail_unref)

static GchatdMail *
gchatd_mail_new (guint64     id,
                 const char *sender,
                 const char *recipient,
                 guint64     msg_id,
                 const char *text,
                 gsize       len,
                 gint64      queued)
{
  GchatdMail *mail = g_new0 (GchatdMail, 1);

  g_atomic_ref_count_init (&mail->ref_count);
  mail->id = id;
  mail->sender = g_strdup (sender);
  mail->recipient = g_strdup (recipient);
  mail->msg_id = msg_id;
  mail->text = g_strndup (text, len);
  mail->len = len;
  mail->queued = queued;

  return mail;
}

GchatdMail *
gchatd_mail_ref (GchatdMail *mail)
{
  g_return_val_if_fail (mail != NULL, NULL);

  g_atomic_ref_count_inc (&mail->ref_count);
  return mail;
}

void
gchatd_mail_unref (GchatdMail *mail)
{
  g_return_if_fail (mail != NULL);

  if (!g_atomic_ref_count_dec (&mail->ref_count))
    return;

  g_free (mail->sender);
  g_free (mail->recipient);
  g_free (mail->text);
  g_free (mail);
}

guint64
gchatd_mail_get_id (const GchatdMail *mail)
{
  g_return_val_if_fail (mail != NULL, 0);
  return mail->id;
}

const char *
gchatd_mail_get_sender (const GchatdMail *mail)
{
  g_return_val_if_fail (mail != NULL, NULL);
  return mail->sender;
}

const char *
gchatd_mail_get_recipient (const GchatdMail *mail)
{
  g_return_val_if_fail (mail != NULL, NULL);
  return mail->recipient;
}

guint64
gchatd_mail_get_msg_id (const GchatdMail *mail)
{
  g_return_val_if_fail (mail != NULL, 0);
  return mail->msg_id;
}

const char *
gchatd_mail_get_text (const GchatdMail *mail,
                      gsize            *len)
{
  g_return_val_if_fail (mail != NULL, NULL);

  if (len != NULL)
    *len = mail->len;
  return mail->text;
}

gint64
gchatd_mail_get_queued (const GchatdMail *mail)
{
  g_return_val_if_fail (mail != NULL, 0);
  return mail->queued;
}

struct _GchatdMailReceipt
{
  gatomicrefcount ref_count;
  guint64         id;
  char           *sender;
  char           *recipient;
  guint64         msg_id;
  gint64          delivered;
};

G_DEFINE_BOXED_TYPE (GchatdMailReceipt, gchatd_mail_receipt, gchatd_mail_receipt_ref,
                     gchatd_mail_receipt_unref)

static GchatdMailReceipt *
gchatd_mail_receipt_new (guint64     id,
                         const char *sender,
                         const char *recipient,
                         guint64     msg_id,
                         gint64      delivered)
{
  GchatdMailReceipt *receipt = g_new0 (GchatdMailReceipt, 1);

  g_atomic_ref_count_init (&receipt->ref_count);
  receipt->id = id;
  receipt->sender = g_strdup (sender);
  receipt->recipient = g_strdup (recipient);
  receipt->msg_id = msg_id;
  receipt->delivered = delivered;

  return receipt;
}

GchatdMailReceipt *
gchatd_mail_receipt_ref (GchatdMailReceipt *receipt)
{
  g_return_val_if_fail (receipt != NULL, NULL);

  g_atomic_ref_count_inc (&receipt->ref_count);
  return receipt;
}

void
gchatd_mail_receipt_unref (GchatdMailReceipt *receipt)
{
  g_return_if_fail (receipt != NULL);

  if (!g_atomic_ref_count_dec (&receipt->ref_count))
    return;

  g_free (receipt->sender);
  g_free (receipt->recipient);
  g_free (receipt);
}

guint64
gchatd_mail_receipt_get_id (const GchatdMailReceipt *receipt)
{
  g_return_val_if_fail (receipt != NULL, 0);
  return receipt->id;
}

const char *
gchatd_mail_receipt_get_sender (const GchatdMailReceipt *receipt)
{
  g_return_val_if_fail (receipt != NULL, NULL);
  return receipt->sender;
}

const char *
gchatd_mail_receipt_get_recipient (const GchatdMailReceipt *receipt)
{
  g_return_val_if_fail (receipt != NULL, NULL);
  return receipt->recipient;
}

guint64
gchatd_mail_receipt_get_msg_id (const GchatdMailReceipt *receipt)
{
  g_return_val_if_fail (receipt != NULL, 0);
  return receipt->msg_id;
}

gint64
gchatd_mail_receipt_get_delivered (const GchatdMailReceipt *receipt)
{
  g_return_val_if_fail (receipt != NULL, 0);
  return receipt->delivered;
}

/* Boxes and the mailbox ------------------------------------------------------------------------ */

/* What one user has waiting. The arrays hold what is durable; the reservations count posts and
 * receipts admitted but not saved yet, so that the limits hold for them too. */
typedef struct {
  GPtrArray *mail;      /* GchatdMail, oldest first */
  GPtrArray *receipts;  /* GchatdMailReceipt, oldest first */
  gsize      bytes;     /* text bytes of @mail */
  guint      reserved_mail;
  gsize      reserved_bytes;
  guint      reserved_receipts;
} Box;

static Box *
box_new (void)
{
  Box *box = g_new0 (Box, 1);

  box->mail = g_ptr_array_new_with_free_func ((GDestroyNotify) gchatd_mail_unref);
  box->receipts = g_ptr_array_new_with_free_func ((GDestroyNotify) gchatd_mail_receipt_unref);
  return box;
}

static void
box_free (gpointer data)
{
  Box *box = data;

  g_ptr_array_unref (box->mail);
  g_ptr_array_unref (box->receipts);
  g_free (box);
}

struct _GchatdMailbox
{
  GObject      parent_instance;

  char        *folder;
  /* One thread at most, so saves never overlap. Jobs hold no reference to the mailbox:
   * finalize waits for them instead, as GchatdUserStore does. */
  GThreadPool *writer;

  GMutex       lock;
  GCond        idle_cond;
  /* Everything below is guarded by @lock. */
  GHashTable  *boxes;       /* folded name → Box */
  GPtrArray   *pending;     /* GTask of changes not yet taken by a save, owned references */
  gboolean     job_queued;  /* a job is queued that has not taken @pending yet */
  guint        n_jobs;      /* jobs queued or running; flush waits for zero */
  guint        n_writes;
  guint64      last_id;
};

enum {
  PROP_0,
  PROP_FOLDER,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void gchatd_mailbox_initable_iface_init (GInitableIface *iface);
static void writer_job (gpointer data, gpointer user_data);

G_DEFINE_FINAL_TYPE_WITH_CODE (GchatdMailbox, gchatd_mailbox, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE,
                                                      gchatd_mailbox_initable_iface_init))

static void
gchatd_mailbox_finalize (GObject *object)
{
  GchatdMailbox *self = GCHATD_MAILBOX (object);

  /* Every change holds a reference until its callback ran: this only waits for the last job
   * to finish its bookkeeping, which needs no main loop. */
  g_thread_pool_free (self->writer, FALSE, TRUE);

  g_hash_table_unref (self->boxes);
  g_ptr_array_unref (self->pending);
  g_mutex_clear (&self->lock);
  g_cond_clear (&self->idle_cond);
  g_free (self->folder);

  G_OBJECT_CLASS (gchatd_mailbox_parent_class)->finalize (object);
}

static void
gchatd_mailbox_get_property (GObject    *object,
                             guint       prop_id,
                             GValue     *value,
                             GParamSpec *pspec)
{
  GchatdMailbox *self = GCHATD_MAILBOX (object);

  switch (prop_id)
    {
    case PROP_FOLDER:
      g_value_set_string (value, self->folder);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
gchatd_mailbox_set_property (GObject      *object,
                             guint         prop_id,
                             const GValue *value,
                             GParamSpec   *pspec)
{
  GchatdMailbox *self = GCHATD_MAILBOX (object);

  switch (prop_id)
    {
    case PROP_FOLDER:
      self->folder = g_value_dup_string (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
gchatd_mailbox_class_init (GchatdMailboxClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = gchatd_mailbox_finalize;
  object_class->get_property = gchatd_mailbox_get_property;
  object_class->set_property = gchatd_mailbox_set_property;

  properties[PROP_FOLDER] =
    g_param_spec_string ("folder", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
gchatd_mailbox_init (GchatdMailbox *self)
{
  g_mutex_init (&self->lock);
  g_cond_init (&self->idle_cond);
  self->boxes = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, box_free);
  self->pending = g_ptr_array_new ();
  self->writer = g_thread_pool_new (writer_job, self, 1, FALSE, NULL);
}

/* Under the lock (or while loading): the box of @key, made when missing. */
static Box *
ensure_box (GchatdMailbox *self,
            const char    *key)
{
  Box *box = g_hash_table_lookup (self->boxes, key);

  if (box == NULL)
    {
      box = box_new ();
      g_hash_table_insert (self->boxes, g_strdup (key), box);
    }
  return box;
}

/* Under the lock: forgets @key's box when it holds and expects nothing, so that memory follows
 * what is waiting rather than everyone who ever got mail. */
static void
drop_box_if_empty (GchatdMailbox *self,
                   const char    *key)
{
  Box *box = g_hash_table_lookup (self->boxes, key);

  if (box != NULL && box->mail->len == 0 && box->receipts->len == 0 && box->reserved_mail == 0
      && box->reserved_receipts == 0)
    g_hash_table_remove (self->boxes, key);
}

static char *
box_path (GchatdMailbox *self,
          const char    *key)
{
  g_autofree char *name = g_strconcat (key, FILE_SUFFIX, NULL);

  return g_build_filename (self->folder, name, NULL);
}

static char *
quote_for_message (const char *text)
{
  g_autofree char *cut = g_strndup (text, MAX_QUOTED);

  return g_strescape (cut, NULL);
}

/* Loading: reading a file ---------------------------------------------------------------------- */

static gboolean
set_read_error (GError    **error,
                const char *path,
                const char *reason)
{
  g_set_error (error, GCHATD_MAILBOX_ERROR, GCHATD_MAILBOX_ERROR_IO,
               _("Could not read the mailbox “%s”: %s"), path, reason);
  return FALSE;
}

static gboolean
set_too_large_error (GError    **error,
                     const char *path)
{
  g_set_error (error, GCHATD_MAILBOX_ERROR, GCHATD_MAILBOX_ERROR_CORRUPT,
               _("The mailbox “%s” is corrupt: it is larger than %d MiB, or grew while it was "
                 "read"),
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
  g_set_error_literal (error, GCHATD_MAILBOX_ERROR, GCHATD_MAILBOX_ERROR_CORRUPT, detail);

  return FALSE;
}

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
         gint64     *out,
         GError    **error)
{
  JsonNode *node = json_object_get_member (object, member);

  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
    return set_detail (error, _("“%s” is not a whole number"), member);

  *out = json_node_get_int (node);
  if (*out < min)
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

/* A user name member, valid and, for @key_member, the name the file belongs to. */
static gboolean
get_name (JsonObject  *object,
          const char  *member,
          const char  *key,
          const char **out,
          GError     **error)
{
  if (!get_string (object, member, out, error))
    return FALSE;
  if (!gchatd_user_name_validate (*out, NULL))
    {
      g_autofree char *quoted = quote_for_message (*out);

      return set_detail (error, _("“%s” is not a valid user name"), quoted);
    }
  if (key != NULL && g_ascii_strcasecmp (*out, key) != 0)
    return set_detail (error, _("“%s” does not belong in the mailbox of “%s”"), *out, key);

  return TRUE;
}

/* The sender's message id: canonical decimal of a 64-bit unsigned number. */
static gboolean
get_msg_id (JsonObject *object,
            guint64    *out,
            GError    **error)
{
  const char *text;
  char canonical[24];

  if (!get_string (object, "msg_id", &text, error))
    return FALSE;
  if (!g_ascii_string_to_unsigned (text, 10, 0, G_MAXUINT64, out, NULL))
    return set_detail (error, _("“%s” is not a 64-bit number in decimal"), "msg_id");
  g_snprintf (canonical, sizeof canonical, "%" PRIu64, *out);
  if (strcmp (canonical, text) != 0)
    return set_detail (error, _("“%s” is not a 64-bit number in decimal"), "msg_id");

  return TRUE;
}

/* The id of a record: positive and above every id before it in the file. */
static gboolean
get_id (JsonObject *object,
        guint64    *last_id,
        guint64    *out,
        GError    **error)
{
  gint64 id;

  if (!get_int (object, "id", 1, &id, error))
    return FALSE;
  if ((guint64) id <= *last_id)
    return set_detail (error, _("“id” is not above the ids before it"));

  *out = *last_id = id;
  return TRUE;
}

static GchatdMail *
parse_mail (JsonNode   *node,
            const char *key,
            guint64    *last_id,
            GError    **error)
{
  static const char * const members[] = { "id",   "sender", "recipient", "msg_id",
                                          "text", "queued", NULL };
  JsonObject *object;
  const char *sender, *recipient, *text;
  guint64 id, msg_id;
  gint64 queued;
  gsize len;

  if (!JSON_NODE_HOLDS_OBJECT (node))
    {
      set_detail (error, _("it is not an object"));
      return NULL;
    }
  object = json_node_get_object (node);

  if (!check_members (object, members, error) || !get_id (object, last_id, &id, error)
      || !get_name (object, "sender", NULL, &sender, error)
      || !get_name (object, "recipient", key, &recipient, error)
      || !get_msg_id (object, &msg_id, error) || !get_string (object, "text", &text, error)
      || !get_int (object, "queued", 0, &queued, error))
    return NULL;

  /* gchat_json_check() has made sure of UTF-8 without NUL. */
  len = strlen (text);
  if (len > GCHATD_MAILBOX_MAX_TEXT)
    {
      set_detail (error, _("“text” is longer than %d bytes"), GCHATD_MAILBOX_MAX_TEXT);
      return NULL;
    }

  return gchatd_mail_new (id, sender, recipient, msg_id, text, len, queued);
}

static GchatdMailReceipt *
parse_receipt (JsonNode   *node,
               const char *key,
               guint64    *last_id,
               GError    **error)
{
  static const char * const members[] = { "id", "sender", "recipient", "msg_id", "delivered",
                                          NULL };
  JsonObject *object;
  const char *sender, *recipient;
  guint64 id, msg_id;
  gint64 delivered;

  if (!JSON_NODE_HOLDS_OBJECT (node))
    {
      set_detail (error, _("it is not an object"));
      return NULL;
    }
  object = json_node_get_object (node);

  if (!check_members (object, members, error) || !get_id (object, last_id, &id, error)
      || !get_name (object, "sender", key, &sender, error)
      || !get_name (object, "recipient", NULL, &recipient, error)
      || !get_msg_id (object, &msg_id, error)
      || !get_int (object, "delivered", 0, &delivered, error))
    return NULL;

  return gchatd_mail_receipt_new (id, sender, recipient, msg_id, delivered);
}

/* Checks the top level; returns the "mail" and "receipts" arrays. */
static gboolean
parse_root (JsonNode    *root,
            const char  *key,
            JsonArray  **mail,
            JsonArray  **receipts,
            GError     **error)
{
  static const char * const members[] = { "version", "user", "mail", "receipts", NULL };
  JsonObject *object;
  JsonNode *mail_node, *receipts_node;
  const char *user;
  gint64 version;

  if (root == NULL)
    return set_detail (error, _("the file is empty"));
  if (!JSON_NODE_HOLDS_OBJECT (root))
    return set_detail (error, _("it is not a JSON object"));
  object = json_node_get_object (root);

  if (!check_members (object, members, error) || !get_int (object, "version", 0, &version, error))
    return FALSE;
  if (version != FORMAT_VERSION)
    return set_detail (error, _("it is in format %" PRId64 ", and this gchatd reads "
                                "only format %d"),
                       version, FORMAT_VERSION);
  if (!get_string (object, "user", &user, error))
    return FALSE;
  if (strcmp (user, key) != 0)
    return set_detail (error, _("“user” does not match the file name"));

  mail_node = json_object_get_member (object, "mail");
  receipts_node = json_object_get_member (object, "receipts");
  if (!JSON_NODE_HOLDS_ARRAY (mail_node))
    return set_detail (error, _("“%s” is not an array"), "mail");
  if (!JSON_NODE_HOLDS_ARRAY (receipts_node))
    return set_detail (error, _("“%s” is not an array"), "receipts");
  *mail = json_node_get_array (mail_node);
  *receipts = json_node_get_array (receipts_node);
  if (json_array_get_length (*mail) > GCHATD_MAILBOX_MAX_MESSAGES)
    return set_detail (error, _("it holds more than %d messages"), GCHATD_MAILBOX_MAX_MESSAGES);
  if (json_array_get_length (*receipts) > GCHATD_MAILBOX_MAX_RECEIPTS)
    return set_detail (error, _("it holds more than %d receipts"), GCHATD_MAILBOX_MAX_RECEIPTS);

  return TRUE;
}

/* What is being loaded from one file, and where its array elements ended. */
typedef struct {
  const char *path;
  const char *key;
  GHashTable *element_lines;  /* JsonNode → line */
  /* Ids ascend within each array; the two arrays draw from one counter, interleaved. */
  guint64     last_mail_id;
  guint64     last_receipt_id;
} Loading;

/* Says which record of the file is wrong: the message or (with @receipt) receipt @index. */
static gboolean
prefix_record_error (GError  **error,
                     Loading  *loading,
                     gboolean  receipt,
                     guint     index,
                     JsonNode *node)
{
  guint line = GPOINTER_TO_UINT (g_hash_table_lookup (loading->element_lines, node));

  if (receipt)
    g_prefix_error (error, _("The mailbox “%s” is corrupt in receipt %u (ending on line %u): "),
                    loading->path, index + 1, line);
  else
    g_prefix_error (error, _("The mailbox “%s” is corrupt in message %u (ending on line %u): "),
                    loading->path, index + 1, line);
  return FALSE;
}

static gboolean
load_mail (Loading   *loading,
           JsonArray *array,
           Box       *box,
           GError   **error)
{
  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      JsonNode *node = json_array_get_element (array, i);
      GchatdMail *mail = parse_mail (node, loading->key, &loading->last_mail_id, error);

      if (mail == NULL)
        return prefix_record_error (error, loading, FALSE, i, node);
      g_ptr_array_add (box->mail, mail);
      box->bytes += mail->len;
      if (box->bytes > GCHATD_MAILBOX_MAX_BYTES)
        {
          set_detail (error, _("the messages hold more than %d bytes"), GCHATD_MAILBOX_MAX_BYTES);
          return prefix_record_error (error, loading, FALSE, i, node);
        }
    }

  return TRUE;
}

static gboolean
load_receipts (Loading   *loading,
               JsonArray *array,
               Box       *box,
               GError   **error)
{
  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      JsonNode *node = json_array_get_element (array, i);
      GchatdMailReceipt *receipt =
        parse_receipt (node, loading->key, &loading->last_receipt_id, error);

      if (receipt == NULL)
        return prefix_record_error (error, loading, TRUE, i, node);
      g_ptr_array_add (box->receipts, receipt);
    }

  return TRUE;
}

static void
on_array_element (JsonParser *parser,
                  JsonArray  *array,
                  int         index,
                  GHashTable *element_lines)
{
  g_hash_table_insert (element_lines, json_array_get_element (array, index),
                       GUINT_TO_POINTER (json_parser_get_current_line (parser)));
}

/* Parses and checks the text of one box file into @box. */
static gboolean
load_contents (Loading    *loading,
               const char *data,
               gsize       len,
               Box        *box,
               GError    **error)
{
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  g_autoptr (GError) local_error = NULL;
  JsonArray *mail = NULL, *receipts = NULL;
  gsize offset = 0;
  guint line, column;

  g_signal_connect (parser, "array-element", G_CALLBACK (on_array_element),
                    loading->element_lines);
  if (strspn (data, " \t\n\r") < len
      && !gchat_json_parse (parser, data, len, MAX_DEPTH, MAX_VALUES, &offset, &local_error))
    {
      gchat_json_offset_to_position (data, offset, &line, &column);
      g_set_error (error, GCHATD_MAILBOX_ERROR, GCHATD_MAILBOX_ERROR_CORRUPT,
                   _("The mailbox “%s” is corrupt at line %u, column %u: %s"), loading->path,
                   line, column, local_error->message);
      return FALSE;
    }

  if (!parse_root (json_parser_get_root (parser), loading->key, &mail, &receipts, error))
    {
      g_prefix_error (error, _("The mailbox “%s” is corrupt at the top level: "),
                      loading->path);
      return FALSE;
    }

  return load_mail (loading, mail, box, error) && load_receipts (loading, receipts, box, error);
}

/* Loads the box file @name of the folder, if it is one. */
static gboolean
load_file (GchatdMailbox *self,
           const char    *name,
           GError       **error)
{
  g_autofree char *key = g_strndup (name, strlen (name) - strlen (FILE_SUFFIX));
  g_autofree char *folded = g_ascii_strdown (key, -1);
  g_autofree char *path = g_build_filename (self->folder, name, NULL);
  g_autoptr (GHashTable) element_lines = g_hash_table_new (NULL, NULL);
  g_autofree char *contents = NULL;
  Loading loading = { path, key, element_lines, 0, 0 };
  Box *box;
  gsize len = 0;
  gboolean ok;
  int fd;

  if (!gchatd_user_name_validate (key, NULL) || strcmp (key, folded) != 0)
    {
      g_set_error (error, GCHATD_MAILBOX_ERROR, GCHATD_MAILBOX_ERROR_CORRUPT,
                   _("The mailbox folder holds “%s”, which is not named after a user in lower "
                     "case; move it away"),
                   path);
      return FALSE;
    }

  /* O_NOFOLLOW and O_NONBLOCK: a link or a FIFO put here is refused rather than followed. */
  fd = g_open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW, 0);
  if (fd < 0)
    return set_read_error (error, path, g_strerror (errno));

  box = ensure_box (self, key);
  ok = read_all (fd, path, &contents, &len, error)
       && load_contents (&loading, contents, len, box, error);
  close (fd);
  self->last_id = MAX (self->last_id, MAX (loading.last_mail_id, loading.last_receipt_id));

  return ok;
}

/* Makes the folder if needed; refuses anything but a folder, and makes it private. */
static gboolean
prepare_folder (GchatdMailbox *self,
                GError       **error)
{
  GStatBuf st;

  if (g_mkdir_with_parents (self->folder, 0700) != 0 || g_lstat (self->folder, &st) != 0)
    return set_read_error (error, self->folder, g_strerror (errno));
  if (!S_ISDIR (st.st_mode))
    return set_read_error (error, self->folder, g_strerror (ENOTDIR));
  /* The messages are private: a folder others can list gives away who gets mail. */
  if ((st.st_mode & 0077) != 0 && g_chmod (self->folder, 0700) != 0)
    return set_read_error (error, self->folder, g_strerror (errno));

  return TRUE;
}

static gboolean
gchatd_mailbox_initable_init (GInitable    *initable,
                              GCancellable *cancellable,
                              GError      **error)
{
  GchatdMailbox *self = GCHATD_MAILBOX (initable);
  g_autoptr (GDir) dir = NULL;
  g_autoptr (GError) local_error = NULL;
  const char *name;

  g_return_val_if_fail (self->folder != NULL, FALSE);

  if (!prepare_folder (self, error))
    return FALSE;
  dir = g_dir_open (self->folder, 0, &local_error);
  if (dir == NULL)
    {
      g_set_error (error, GCHATD_MAILBOX_ERROR, GCHATD_MAILBOX_ERROR_IO,
                   _("Could not read the mailbox folder “%s”: %s"), self->folder,
                   local_error->message);
      return FALSE;
    }

  /* Other names (temporary files a crash left, say) are not boxes and are left alone. */
  while ((name = g_dir_read_name (dir)) != NULL)
    if (g_str_has_suffix (name, FILE_SUFFIX) && !load_file (self, name, error))
      return FALSE;

  return TRUE;
}

static void
gchatd_mailbox_initable_iface_init (GInitableIface *iface)
{
  iface->init = gchatd_mailbox_initable_init;
}

/* Saving --------------------------------------------------------------------------------------- */

static JsonNode *
mail_to_json (const GchatdMail *mail)
{
  g_autoptr (JsonObject) object = json_object_new ();
  g_autofree char *msg_id = g_strdup_printf ("%" PRIu64, mail->msg_id);

  json_object_set_int_member (object, "id", (gint64) mail->id);
  json_object_set_string_member (object, "sender", mail->sender);
  json_object_set_string_member (object, "recipient", mail->recipient);
  json_object_set_string_member (object, "msg_id", msg_id);
  json_object_set_string_member (object, "text", mail->text);
  json_object_set_int_member (object, "queued", mail->queued);

  return json_node_init_object (json_node_alloc (), object);
}

static JsonNode *
receipt_to_json (const GchatdMailReceipt *receipt)
{
  g_autoptr (JsonObject) object = json_object_new ();
  g_autofree char *msg_id = g_strdup_printf ("%" PRIu64, receipt->msg_id);

  json_object_set_int_member (object, "id", (gint64) receipt->id);
  json_object_set_string_member (object, "sender", receipt->sender);
  json_object_set_string_member (object, "recipient", receipt->recipient);
  json_object_set_string_member (object, "msg_id", msg_id);
  json_object_set_int_member (object, "delivered", receipt->delivered);

  return json_node_init_object (json_node_alloc (), object);
}

/* Appends @records, one a line, so that a position in an error points at one record. */
static void
append_array (GString          *text,
              JsonGenerator    *generator,
              GPtrArray        *records,
              JsonNode       *(*to_json) (gconstpointer record))
{
  for (guint i = 0; i < records->len; i++)
    {
      g_autoptr (JsonNode) node = to_json (g_ptr_array_index (records, i));

      g_string_append (text, i == 0 ? "\n    " : ",\n    ");
      json_generator_set_root (generator, node);
      json_generator_to_gstring (generator, text);
    }
  g_string_append (text, records->len > 0 ? "\n  ]" : "]");
}

static GString *
serialize (const char *key,
           GPtrArray  *mail,
           GPtrArray  *receipts)
{
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  GString *text = g_string_new ("{\n  \"version\": 1,\n  \"user\": \"");

  /* The key is a valid user name, which needs no escaping. */
  g_string_append (text, key);
  g_string_append (text, "\",\n  \"mail\": [");
  append_array (text, generator, mail, (JsonNode * (*) (gconstpointer)) mail_to_json);
  g_string_append (text, ",\n  \"receipts\": [");
  append_array (text, generator, receipts, (JsonNode * (*) (gconstpointer)) receipt_to_json);
  g_string_append (text, "\n}\n");

  return text;
}

static gboolean
set_save_error (GError     **error,
                const char  *path,
                const char  *reason)
{
  g_set_error (error, GCHATD_MAILBOX_ERROR, GCHATD_MAILBOX_ERROR_IO,
               _("Could not save the mailbox “%s”: %s"), path, reason);
  return FALSE;
}

/* Changes and the writer ----------------------------------------------------------------------- */

typedef enum {
  CHANGE_POST,
  CHANGE_REMOVE,
  CHANGE_RECEIPT,
  CHANGE_REMOVE_RECEIPTS,
} ChangeKind;

/* One change on its way to the disk: the task data of its GTask. */
typedef struct {
  ChangeKind         kind;
  char              *key;      /* the folded name of the box it changes */
  GchatdMail        *mail;     /* post: the new message, its id assigned */
  GchatdMailReceipt *receipt;  /* receipt: the new receipt */
  GArray            *ids;      /* removes: the ids asked for */
  GPtrArray         *removed;  /* removes: the records really removed, once saved */
} Change;

static void
change_free (gpointer data)
{
  Change *change = data;

  g_free (change->key);
  g_clear_pointer (&change->mail, gchatd_mail_unref);
  g_clear_pointer (&change->receipt, gchatd_mail_receipt_unref);
  g_clear_pointer (&change->ids, g_array_unref);
  g_clear_pointer (&change->removed, g_ptr_array_unref);
  g_free (change);
}

static Change *
change_new (ChangeKind  kind,
            const char *name)
{
  Change *change = g_new0 (Change, 1);

  change->kind = kind;
  change->key = g_ascii_strdown (name, -1);
  return change;
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
  Change *change = task_change (completion->task);

  if (completion->error != NULL)
    g_task_return_error (completion->task, g_steal_pointer (&completion->error));
  else if (change->kind == CHANGE_POST)
    g_task_return_pointer (completion->task, gchatd_mail_ref (change->mail),
                           (GDestroyNotify) gchatd_mail_unref);
  else if (change->kind == CHANGE_RECEIPT)
    g_task_return_boolean (completion->task, TRUE);
  else
    g_task_return_pointer (completion->task, g_ptr_array_ref (change->removed),
                           (GDestroyNotify) g_ptr_array_unref);

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

/* Hands @task (an owned reference, passed on) to its own main context to be returned there:
 * the writer thread must never drop the last reference to a task, which may be the last one
 * to the mailbox, whose finalize waits for the writer. */
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
  g_source_set_static_name (source, "[gchatd] mailbox change");
  g_source_attach (source, g_task_get_context (task));
  g_source_unref (source);
}

/* One box as the next save will write it. */
typedef struct {
  GPtrArray *mail;
  GPtrArray *receipts;
  gboolean   dirty;
  gboolean   saved;
  GError    *error;
  char      *temp; /* while saving: its new file, written but not renamed yet */
} Snapshot;

static void
snapshot_free (gpointer data)
{
  Snapshot *snapshot = data;

  g_ptr_array_unref (snapshot->mail);
  g_ptr_array_unref (snapshot->receipts);
  g_clear_error (&snapshot->error);
  if (snapshot->temp != NULL)
    g_unlink (snapshot->temp);
  g_free (snapshot->temp);
  g_free (snapshot);
}

static gpointer
copy_mail (gconstpointer mail,
           gpointer      user_data)
{
  return gchatd_mail_ref ((GchatdMail *) mail);
}

static gpointer
copy_receipt (gconstpointer receipt,
              gpointer      user_data)
{
  return gchatd_mail_receipt_ref ((GchatdMailReceipt *) receipt);
}

/* Under the lock: the snapshot of @key in @snapshots, copied from the durable box at first. */
static Snapshot *
ensure_snapshot (GchatdMailbox *self,
                 GHashTable    *snapshots,
                 const char    *key)
{
  Snapshot *snapshot = g_hash_table_lookup (snapshots, key);
  Box *box;

  if (snapshot != NULL)
    return snapshot;

  box = ensure_box (self, key);
  snapshot = g_new0 (Snapshot, 1);
  snapshot->mail = g_ptr_array_copy (box->mail, copy_mail, NULL);
  g_ptr_array_set_free_func (snapshot->mail, (GDestroyNotify) gchatd_mail_unref);
  snapshot->receipts = g_ptr_array_copy (box->receipts, copy_receipt, NULL);
  g_ptr_array_set_free_func (snapshot->receipts, (GDestroyNotify) gchatd_mail_receipt_unref);
  g_hash_table_insert (snapshots, g_strdup (key), snapshot);

  return snapshot;
}

/* Moves the records of @records whose id is in @ids to @removed, keeping the order of the rest.
 * A plain search: a box holds at most a thousand records, and acknowledgements come in small
 * groups. */
static guint
steal_ids (GPtrArray    *records,
           const GArray *ids,
           GPtrArray    *removed,
           guint64     (*id_of) (gconstpointer record))
{
  guint n = 0;

  for (guint i = 0; i < ids->len; i++)
    for (guint j = 0; j < records->len; j++)
      if (id_of (g_ptr_array_index (records, j)) == g_array_index (ids, guint64, i))
        {
          g_ptr_array_add (removed, g_ptr_array_steal_index (records, j));
          n++;
          break;
        }

  return n;
}

/* Applies @change to its box's snapshot. */
static void
apply_change (GchatdMailbox *self,
              GHashTable    *snapshots,
              Change        *change)
{
  Snapshot *snapshot = ensure_snapshot (self, snapshots, change->key);

  switch (change->kind)
    {
    case CHANGE_POST:
      g_ptr_array_add (snapshot->mail, gchatd_mail_ref (change->mail));
      snapshot->dirty = TRUE;
      break;
    case CHANGE_RECEIPT:
      g_ptr_array_add (snapshot->receipts, gchatd_mail_receipt_ref (change->receipt));
      snapshot->dirty = TRUE;
      break;
    case CHANGE_REMOVE:
      change->removed = g_ptr_array_new_with_free_func ((GDestroyNotify) gchatd_mail_unref);
      if (steal_ids (snapshot->mail, change->ids, change->removed,
                     (guint64 (*) (gconstpointer)) gchatd_mail_get_id) > 0)
        snapshot->dirty = TRUE;
      break;
    case CHANGE_REMOVE_RECEIPTS:
      change->removed = g_ptr_array_new_with_free_func (
        (GDestroyNotify) gchatd_mail_receipt_unref);
      if (steal_ids (snapshot->receipts, change->ids, change->removed,
                     (guint64 (*) (gconstpointer)) gchatd_mail_receipt_get_id) > 0)
        snapshot->dirty = TRUE;
      break;
    default:
      g_assert_not_reached ();
    }
}

/* Writes @snapshot's new file beside @path, or deletes its file when nothing is left in it. */
static gboolean
write_box (const char *path,
           const char *key,
           Snapshot   *snapshot,
           GError    **error)
{
  g_autoptr (GError) local_error = NULL;
  GString *text;
  gboolean ok;

  if (snapshot->mail->len == 0 && snapshot->receipts->len == 0)
    {
      if (g_unlink (path) != 0 && errno != ENOENT)
        return set_save_error (error, path, g_strerror (errno));
      return TRUE;
    }
  /* The text is message bodies: wipe it rather than leave it in freed memory. */
  text = serialize (key, snapshot->mail, snapshot->receipts);
  ok = gchat_file_write_temp (path, text->str, text->len, 0600, &snapshot->temp, &local_error);
  gchat_memzero (text->str, text->len);
  g_string_free (text, TRUE);
  return ok || set_save_error (error, path, local_error->message);
}

/* Deletes the new files not renamed, now: the changes' callers may look at the folder as soon
 * as they hear of the failure, before the snapshots are freed. */
static void
drop_temps (GHashTable *snapshots)
{
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, snapshots);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      Snapshot *snapshot = value;

      if (snapshot->temp != NULL)
        g_unlink (snapshot->temp);
      g_clear_pointer (&snapshot->temp, g_free);
    }
}

/* Fails every snapshot of the save that has not failed yet: their new files are not durable. */
static void
fail_pending (GHashTable   *snapshots,
              const char   *path,
              const GError *error)
{
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, snapshots);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      Snapshot *snapshot = value;

      if (snapshot->dirty && snapshot->error == NULL)
        set_save_error (&snapshot->error, path, error->message);
    }
}

/* Saves every dirty snapshot; returns how many files were written or deleted.
 *
 * Each file used to be written, fsynced, renamed and its folder fsynced in turn: with receipts
 * for ten thousand senders that was twenty thousand fsyncs, seconds of saving (and of waiting
 * at a stop). Now every new file is written first, one syncfs() makes them all durable, the
 * renames follow and one fsync of the folder makes those durable. A crash still leaves each box
 * as it was or as it is now, never a mix; a box that cannot be written fails alone. */
static guint
save_snapshots (GchatdMailbox *self,
                GHashTable    *snapshots)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *any_path = box_path (self, "x");
  GHashTableIter iter;
  gpointer key, value;
  guint n_saved = 0, n_dirty = 0;

  g_hash_table_iter_init (&iter, snapshots);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      Snapshot *snapshot = value;
      g_autofree char *path = box_path (self, key);

      if (!snapshot->dirty)
        continue;
      n_dirty++;
      write_box (path, key, snapshot, &snapshot->error);
    }
  /* Changes that changed nothing (a removal of what was gone already) need no sync. */
  if (n_dirty == 0)
    return 0;
  if (!gchat_file_sync_fs (any_path, &error))
    {
      fail_pending (snapshots, self->folder, error);
      drop_temps (snapshots);
      return 0;
    }
  g_hash_table_iter_init (&iter, snapshots);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      Snapshot *snapshot = value;
      g_autofree char *path = box_path (self, key);

      if (!snapshot->dirty || snapshot->error != NULL || snapshot->temp == NULL)
        continue;
      if (g_rename (snapshot->temp, path) != 0)
        {
          set_save_error (&snapshot->error, path, g_strerror (errno));
          g_unlink (snapshot->temp);
        }
      g_clear_pointer (&snapshot->temp, g_free);
    }
  if (!gchat_file_sync_folder (any_path, &error))
    {
      fail_pending (snapshots, self->folder, error);
      return 0;
    }
  g_hash_table_iter_init (&iter, snapshots);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      Snapshot *snapshot = value;

      snapshot->saved = snapshot->dirty && snapshot->error == NULL;
      n_saved += snapshot->saved;
    }
  return n_saved;
}

/* Under the lock: makes the saved snapshots the durable boxes and gives back the reservations
 * of the batch; a change whose box failed to save loses what it would have removed. */
static void
settle_batch (GchatdMailbox *self,
              GPtrArray     *batch,
              GHashTable    *snapshots)
{
  GHashTableIter iter;
  gpointer key, value;

  g_hash_table_iter_init (&iter, snapshots);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      Snapshot *snapshot = value;
      Box *box = ensure_box (self, key);

      if (!snapshot->saved)
        continue;
      g_ptr_array_unref (box->mail);
      g_ptr_array_unref (box->receipts);
      box->mail = g_ptr_array_ref (snapshot->mail);
      box->receipts = g_ptr_array_ref (snapshot->receipts);
      box->bytes = 0;
      for (guint i = 0; i < box->mail->len; i++)
        box->bytes += ((GchatdMail *) g_ptr_array_index (box->mail, i))->len;
    }

  for (guint i = 0; i < batch->len; i++)
    {
      Change *change = task_change (g_ptr_array_index (batch, i));
      Snapshot *snapshot = g_hash_table_lookup (snapshots, change->key);
      Box *box = ensure_box (self, change->key);

      if (change->kind == CHANGE_POST)
        {
          box->reserved_mail--;
          box->reserved_bytes -= change->mail->len;
        }
      else if (change->kind == CHANGE_RECEIPT)
        box->reserved_receipts--;
      else if (snapshot->dirty && !snapshot->saved)
        g_ptr_array_set_size (change->removed, 0);
      drop_box_if_empty (self, change->key);
    }
}

/* The writer's one job: save every change pending when it starts, each box it touches once. */
static void
writer_job (gpointer data,
            gpointer user_data)
{
  GchatdMailbox *self = user_data;
  g_autoptr (GPtrArray) batch = NULL;
  g_autoptr (GHashTable) snapshots = NULL;
  guint n_saved;

  snapshots = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, snapshot_free);
  g_mutex_lock (&self->lock);
  batch = g_steal_pointer (&self->pending);
  self->pending = g_ptr_array_new ();
  self->job_queued = FALSE;
  for (guint i = 0; i < batch->len; i++)
    apply_change (self, snapshots, task_change (g_ptr_array_index (batch, i)));
  g_mutex_unlock (&self->lock);

  /* Failures are not logged here: they reach the changes, whose callers report them. */
  n_saved = save_snapshots (self, snapshots);

  g_mutex_lock (&self->lock);
  settle_batch (self, batch, snapshots);
  self->n_writes += n_saved;
  g_mutex_unlock (&self->lock);

  for (guint i = 0; i < batch->len; i++)
    {
      GTask *task = g_ptr_array_index (batch, i);
      Snapshot *snapshot = g_hash_table_lookup (snapshots, task_change (task)->key);

      complete_in_context (task, snapshot->error);
    }

  g_mutex_lock (&self->lock);
  self->n_jobs--;
  g_cond_broadcast (&self->idle_cond);
  g_mutex_unlock (&self->lock);
}

/* Admitting changes ---------------------------------------------------------------------------- */

/* Under the lock: an id above every id given before (see the top of the file). */
static guint64
next_id (GchatdMailbox *self)
{
  self->last_id = MAX (self->last_id + 1, (guint64) g_get_real_time ());
  return self->last_id;
}

static gboolean
set_full_error (GError    **error,
                const char *recipient,
                gboolean    by_count)
{
  if (by_count)
    g_set_error (error, GCHATD_MAILBOX_ERROR, GCHATD_MAILBOX_ERROR_FULL,
                 _("The mailbox of “%s” is full: %d messages are waiting"), recipient,
                 GCHATD_MAILBOX_MAX_MESSAGES);
  else
    g_set_error (error, GCHATD_MAILBOX_ERROR, GCHATD_MAILBOX_ERROR_FULL,
                 _("The mailbox of “%s” is full: the messages waiting would pass %d MiB"),
                 recipient, GCHATD_MAILBOX_MAX_BYTES / (1024 * 1024));
  return FALSE;
}

/* Under the lock: checks the limits of @change's box, reserves room and assigns the id. */
static gboolean
admit_change (GchatdMailbox *self,
              Change        *change,
              GError       **error)
{
  Box *box = ensure_box (self, change->key);

  if (change->kind == CHANGE_POST)
    {
      GchatdMail *mail = change->mail;

      if (box->mail->len + box->reserved_mail >= GCHATD_MAILBOX_MAX_MESSAGES)
        return set_full_error (error, mail->recipient, TRUE);
      if (box->bytes + box->reserved_bytes + mail->len > GCHATD_MAILBOX_MAX_BYTES)
        return set_full_error (error, mail->recipient, FALSE);
      mail->id = next_id (self);
      box->reserved_mail++;
      box->reserved_bytes += mail->len;
    }
  else if (change->kind == CHANGE_RECEIPT)
    {
      if (box->receipts->len + box->reserved_receipts >= GCHATD_MAILBOX_MAX_RECEIPTS)
        {
          g_set_error (error, GCHATD_MAILBOX_ERROR, GCHATD_MAILBOX_ERROR_RECEIPTS_FULL,
                       _("“%s” already has %d delivery receipts waiting"),
                       change->receipt->sender, GCHATD_MAILBOX_MAX_RECEIPTS);
          return FALSE;
        }
      change->receipt->id = next_id (self);
      box->reserved_receipts++;
    }

  return TRUE;
}

/* Gives @change to @task, admits it and queues it for the next save, or returns the task with
 * the reason it was refused. */
static void
submit_change (GchatdMailbox *self,
               GTask         *task,
               Change        *change)
{
  g_autoptr (GMutexLocker) locker = g_mutex_locker_new (&self->lock);
  g_autoptr (GError) error = NULL;

  g_task_set_task_data (task, change, change_free);
  if (!admit_change (self, change, &error))
    {
      drop_box_if_empty (self, change->key);
      g_clear_pointer (&locker, g_mutex_locker_free);
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  g_ptr_array_add (self->pending, g_object_ref (task));
  if (self->job_queued)
    return;

  self->job_queued = TRUE;
  self->n_jobs++;
  /* A shared pool queues the job even when it cannot start a thread right now. */
  if (!g_thread_pool_push (self->writer, self, &error))
    g_warning ("Could not start saving the mailbox “%s”: %s", self->folder, error->message);
}

static gboolean
check_name (GTask      *task,
            const char *name)
{
  g_autoptr (GError) invalid = NULL;

  if (gchatd_user_name_validate (name, &invalid))
    return TRUE;

  g_task_return_new_error (task, GCHATD_MAILBOX_ERROR, GCHATD_MAILBOX_ERROR_INVALID_NAME, "%s",
                           invalid->message);
  return FALSE;
}

/* Makes the task of a change to the box of @name; NULL when it already returned. */
static GTask *
change_task_new (GchatdMailbox       *self,
                 const char          *name,
                 GCancellable        *cancellable,
                 GAsyncReadyCallback  callback,
                 gpointer             user_data,
                 gpointer             source_tag)
{
  g_autoptr (GTask) task = g_task_new (self, cancellable, callback, user_data);

  g_task_set_source_tag (task, source_tag);
  /* Once the change is queued, the save decides the outcome and the result must tell it. */
  g_task_set_check_cancellable (task, FALSE);

  if (g_task_return_error_if_cancelled (task) || !check_name (task, name))
    return NULL;

  return g_steal_pointer (&task);
}

static gboolean
check_text (GTask      *task,
            const char *text,
            gsize       len)
{
  if (len > GCHATD_MAILBOX_MAX_TEXT)
    g_task_return_new_error (task, GCHATD_MAILBOX_ERROR, GCHATD_MAILBOX_ERROR_INVALID_ARGUMENT,
                             _("A message to hold is at most %d bytes long"),
                             GCHATD_MAILBOX_MAX_TEXT);
  else if (len > 0 && !g_utf8_validate_len (text, len, NULL))
    g_task_return_new_error (task, GCHATD_MAILBOX_ERROR, GCHATD_MAILBOX_ERROR_INVALID_ARGUMENT,
                             _("A message to hold must be UTF-8 text without NUL characters"));
  else
    return TRUE;

  return FALSE;
}

/* Public API ----------------------------------------------------------------------------------- */

void
gchatd_mailbox_post_async (GchatdMailbox       *self,
                           const char          *recipient,
                           const char          *sender,
                           guint64              sender_msg_id,
                           const char          *text,
                           gsize                len,
                           GCancellable        *cancellable,
                           GAsyncReadyCallback  callback,
                           gpointer             user_data)
{
  g_autoptr (GTask) task = NULL;
  Change *change;

  g_return_if_fail (GCHATD_IS_MAILBOX (self));
  g_return_if_fail (recipient != NULL && sender != NULL && (text != NULL || len == 0));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = change_task_new (self, recipient, cancellable, callback, user_data,
                          gchatd_mailbox_post_async);
  if (task == NULL || !check_name (task, sender) || !check_text (task, text, len))
    return;

  change = change_new (CHANGE_POST, recipient);
  change->mail = gchatd_mail_new (0, sender, recipient, sender_msg_id, len > 0 ? text : "", len,
                                  g_get_real_time () / G_USEC_PER_SEC);
  submit_change (self, task, change);
}

GchatdMail *
gchatd_mailbox_post_finish (GchatdMailbox *self,
                            GAsyncResult  *result,
                            GError       **error)
{
  g_return_val_if_fail (GCHATD_IS_MAILBOX (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == gchatd_mailbox_post_async,
                        NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

static void
submit_remove (GchatdMailbox  *self,
               GTask          *task,
               ChangeKind      kind,
               const char     *name,
               const guint64  *ids,
               gsize           n_ids)
{
  Change *change = change_new (kind, name);

  change->ids = g_array_sized_new (FALSE, FALSE, sizeof (guint64), n_ids);
  g_array_append_vals (change->ids, ids, n_ids);
  submit_change (self, task, change);
}

void
gchatd_mailbox_remove_async (GchatdMailbox       *self,
                             const char          *recipient,
                             const guint64       *ids,
                             gsize                n_ids,
                             GCancellable        *cancellable,
                             GAsyncReadyCallback  callback,
                             gpointer             user_data)
{
  g_autoptr (GTask) task = NULL;

  g_return_if_fail (GCHATD_IS_MAILBOX (self));
  g_return_if_fail (recipient != NULL && (ids != NULL || n_ids == 0));
  g_return_if_fail (n_ids <= GCHATD_MAILBOX_MAX_MESSAGES);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = change_task_new (self, recipient, cancellable, callback, user_data,
                          gchatd_mailbox_remove_async);
  if (task != NULL)
    submit_remove (self, task, CHANGE_REMOVE, recipient, ids, n_ids);
}

GPtrArray *
gchatd_mailbox_remove_finish (GchatdMailbox *self,
                              GAsyncResult  *result,
                              GError       **error)
{
  g_return_val_if_fail (GCHATD_IS_MAILBOX (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == gchatd_mailbox_remove_async,
                        NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

void
gchatd_mailbox_add_receipt_async (GchatdMailbox       *self,
                                  const char          *sender,
                                  const char          *recipient,
                                  guint64              sender_msg_id,
                                  GCancellable        *cancellable,
                                  GAsyncReadyCallback  callback,
                                  gpointer             user_data)
{
  g_autoptr (GTask) task = NULL;
  Change *change;

  g_return_if_fail (GCHATD_IS_MAILBOX (self));
  g_return_if_fail (sender != NULL && recipient != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = change_task_new (self, sender, cancellable, callback, user_data,
                          gchatd_mailbox_add_receipt_async);
  if (task == NULL || !check_name (task, recipient))
    return;

  change = change_new (CHANGE_RECEIPT, sender);
  change->receipt = gchatd_mail_receipt_new (0, sender, recipient, sender_msg_id,
                                             g_get_real_time () / G_USEC_PER_SEC);
  submit_change (self, task, change);
}

gboolean
gchatd_mailbox_add_receipt_finish (GchatdMailbox *self,
                                   GAsyncResult  *result,
                                   GError       **error)
{
  g_return_val_if_fail (GCHATD_IS_MAILBOX (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (
    g_task_get_source_tag (G_TASK (result)) == gchatd_mailbox_add_receipt_async, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

void
gchatd_mailbox_remove_receipts_async (GchatdMailbox       *self,
                                      const char          *sender,
                                      const guint64       *ids,
                                      gsize                n_ids,
                                      GCancellable        *cancellable,
                                      GAsyncReadyCallback  callback,
                                      gpointer             user_data)
{
  g_autoptr (GTask) task = NULL;

  g_return_if_fail (GCHATD_IS_MAILBOX (self));
  g_return_if_fail (sender != NULL && (ids != NULL || n_ids == 0));
  g_return_if_fail (n_ids <= GCHATD_MAILBOX_MAX_RECEIPTS);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = change_task_new (self, sender, cancellable, callback, user_data,
                          gchatd_mailbox_remove_receipts_async);
  if (task != NULL)
    submit_remove (self, task, CHANGE_REMOVE_RECEIPTS, sender, ids, n_ids);
}

GPtrArray *
gchatd_mailbox_remove_receipts_finish (GchatdMailbox *self,
                                       GAsyncResult  *result,
                                       GError       **error)
{
  g_return_val_if_fail (GCHATD_IS_MAILBOX (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (
    g_task_get_source_tag (G_TASK (result)) == gchatd_mailbox_remove_receipts_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/* Queries -------------------------------------------------------------------------------------- */

GchatdMailbox *
gchatd_mailbox_new (const char *folder,
                    GError    **error)
{
  g_return_val_if_fail (folder != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_initable_new (GCHATD_TYPE_MAILBOX, NULL, error, "folder", folder, NULL);
}

const char *
gchatd_mailbox_get_folder (GchatdMailbox *self)
{
  g_return_val_if_fail (GCHATD_IS_MAILBOX (self), NULL);

  return self->folder;
}

guint
gchatd_mailbox_get_n_writes (GchatdMailbox *self)
{
  g_autoptr (GMutexLocker) locker = NULL;

  g_return_val_if_fail (GCHATD_IS_MAILBOX (self), 0);

  locker = g_mutex_locker_new (&self->lock);
  return self->n_writes;
}

/* A copy of the durable records of @name's box: its mail, or with @receipts its receipts. */
static GPtrArray *
dup_box (GchatdMailbox *self,
         const char    *name,
         gboolean       receipts)
{
  g_autoptr (GMutexLocker) locker = NULL;
  g_autofree char *key = NULL;
  Box *box;

  /* No stored name is invalid, and checking first bounds the work a peer's name can cause. */
  if (!gchatd_user_name_validate (name, NULL))
    return g_ptr_array_new ();

  key = g_ascii_strdown (name, -1);
  locker = g_mutex_locker_new (&self->lock);
  box = g_hash_table_lookup (self->boxes, key);
  if (receipts)
    return box != NULL ? g_ptr_array_copy (box->receipts, copy_receipt, NULL)
                       : g_ptr_array_new ();
  return box != NULL ? g_ptr_array_copy (box->mail, copy_mail, NULL) : g_ptr_array_new ();
}

GPtrArray *
gchatd_mailbox_peek (GchatdMailbox *self,
                     const char    *recipient)
{
  GPtrArray *mail;

  g_return_val_if_fail (GCHATD_IS_MAILBOX (self), NULL);
  g_return_val_if_fail (recipient != NULL, NULL);

  mail = dup_box (self, recipient, FALSE);
  g_ptr_array_set_free_func (mail, (GDestroyNotify) gchatd_mail_unref);
  return mail;
}

GPtrArray *
gchatd_mailbox_peek_receipts (GchatdMailbox *self,
                              const char    *sender)
{
  GPtrArray *receipts;

  g_return_val_if_fail (GCHATD_IS_MAILBOX (self), NULL);
  g_return_val_if_fail (sender != NULL, NULL);

  receipts = dup_box (self, sender, TRUE);
  g_ptr_array_set_free_func (receipts, (GDestroyNotify) gchatd_mail_receipt_unref);
  return receipts;
}

gboolean
gchatd_mailbox_flush_sync (GchatdMailbox *self,
                           guint          timeout_ms,
                           GError       **error)
{
  g_autoptr (GMutexLocker) locker = NULL;
  gint64 end_time;

  g_return_val_if_fail (GCHATD_IS_MAILBOX (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  end_time = g_get_monotonic_time () + (gint64) timeout_ms * G_TIME_SPAN_MILLISECOND;
  locker = g_mutex_locker_new (&self->lock);
  while (self->n_jobs > 0)
    if (!g_cond_wait_until (&self->idle_cond, &self->lock, end_time))
      {
        g_set_error (error, GCHATD_MAILBOX_ERROR, GCHATD_MAILBOX_ERROR_TIMED_OUT,
                     _("The mailbox “%s” was still being saved after %u ms"), self->folder,
                     timeout_ms);
        return FALSE;
      }

  return TRUE;
}
