/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The messages of one account, per peer: appended in batches to a file each, read from the end. */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gi18n-lib.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gchat-history.h"
#include "gchat-json.h"
#include "gchat-message.h"

/* Messages a conversation opens with: a window shows about 20, and GTK 4.8's list view builds
 * a row for every loaded item near the view, so more only slows the opening (bench-gui). */
#define INITIAL_COUNT     50
#define BLOCK_SIZE        (64 * 1024)
#define MAX_LINE_SIZE     (1024 * 1024)
#define MAX_HOST_SIZE     253
#define FLUSH_INTERVAL_MS 1000
#define FOLDER_MODE       0700
#define FILE_MODE         0600

/* The latest state of one of our messages, seen before the message itself was loaded. */
typedef struct
{
  GchatDeliveryState state;
  GchatClientPath    path;
} StateUpdate;

/* One conversation: its model, what is loaded of its file, and what is still to be written. */
typedef struct
{
  char       *file;        /* NULL for a name that cannot be a file name: kept in memory */
  GListStore *store;       /* of GchatChatMessage, oldest first */
  GHashTable *outgoing;    /* id → GchatChatMessage of ours in @store */
  GHashTable *updates;     /* id → StateUpdate for messages not loaded yet */
  goffset     loaded_from; /* the file offset of the earliest line loaded; 0: all loaded */
  GString    *pending;     /* lines not written yet */
  int         fd;          /* open for appending after the first write, else -1 */
} Peer;

struct _GchatHistory
{
  GObject     parent_instance;

  char       *folder;
  GHashTable *peers; /* folded name → Peer */
  guint       flush_source;
};

G_DEFINE_QUARK (gchat-history-error-quark, gchat_history_error)
G_DEFINE_FINAL_TYPE (GchatHistory, gchat_history, G_TYPE_OBJECT)

static void
peer_free (Peer *peer)
{
  if (peer->fd >= 0)
    g_close (peer->fd, NULL);
  g_free (peer->file);
  g_clear_object (&peer->store);
  g_clear_pointer (&peer->outgoing, g_hash_table_unref);
  g_clear_pointer (&peer->updates, g_hash_table_unref);
  g_string_free (peer->pending, TRUE);
  g_free (peer);
}

static Peer *
peer_new (char *file)
{
  Peer *peer = g_new0 (Peer, 1);

  peer->file = file;
  peer->store = g_list_store_new (GCHAT_TYPE_CHAT_MESSAGE);
  peer->outgoing = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, g_object_unref);
  peer->updates = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, g_free);
  peer->pending = g_string_new (NULL);
  peer->fd = -1;
  return peer;
}

/* Names ---------------------------------------------------------------------------------------- */

/* A user name as the server allows them (1–32 of [A-Za-z0-9._-], starting with a letter or a
 * digit), folded to lower case; NULL for anything else, which could escape the folder. */
static char *
fold_user_name (const char *name)
{
  gsize i;

  for (i = 0; name[i] != '\0' && i <= GCHAT_USER_NAME_MAX; i++)
    if (!g_ascii_isalnum (name[i]) && name[i] != '.' && name[i] != '_' && name[i] != '-')
      return NULL;
  if (i == 0 || i > GCHAT_USER_NAME_MAX || !g_ascii_isalnum (name[0]))
    return NULL;
  return g_ascii_strdown (name, -1);
}

/* A host name or address, lower-cased, as a folder name: DNS names (international ones in their
 * ASCII form), IPv4 and IPv6 addresses (without brackets). */
static char *
fold_host (const char *host)
{
  g_autofree char *ascii = NULL;
  gsize len;

  if (!g_utf8_validate (host, -1, NULL))
    return NULL;
  ascii = g_hostname_is_non_ascii (host) ? g_hostname_to_ascii (host) : g_strdup (host);
  if (ascii == NULL)
    return NULL;
  len = strlen (ascii);
  if (len > 2 && ascii[0] == '[' && ascii[len - 1] == ']')
    {
      memmove (ascii, ascii + 1, len - 2);
      ascii[len -= 2] = '\0';
    }
  if (len == 0 || len > MAX_HOST_SIZE || !g_ascii_isalnum (ascii[0]))
    return NULL;
  for (gsize i = 0; i < len; i++)
    if (!g_ascii_isalnum (ascii[i]) && strchr ("-._:", ascii[i]) == NULL)
      return NULL;
  return g_ascii_strdown (ascii, len);
}

/* Makes @path and its missing parents, and holds @path itself to FOLDER_MODE. */
static gboolean
make_folder (const char  *path,
             GError     **error)
{
  if (g_mkdir_with_parents (path, FOLDER_MODE) != 0 || g_chmod (path, FOLDER_MODE) != 0)
    {
      int saved_errno = errno;

      g_set_error (error, GCHAT_HISTORY_ERROR, GCHAT_HISTORY_ERROR_IO,
                   _("Could not make the history folder “%s”: %s"), path,
                   g_strerror (saved_errno));
      return FALSE;
    }
  return TRUE;
}

/* Lines ---------------------------------------------------------------------------------------- */

static void
append_json (GString     *pending,
             JsonBuilder *builder)
{
  g_autoptr(JsonNode) root = json_builder_get_root (builder);
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  gsize len;
  g_autofree char *text = NULL;

  json_generator_set_root (generator, root);
  text = json_generator_to_data (generator, &len);
  g_string_append_len (pending, text, len);
  g_string_append_c (pending, '\n');
}

static void
append_message_line (GString          *pending,
                     GchatChatMessage *message)
{
  g_autoptr(JsonBuilder) builder = json_builder_new_immutable ();
  GchatDeliveryState state = gchat_chat_message_get_state (message);
  GchatClientPath path = gchat_chat_message_get_path (message);

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "id");
  json_builder_add_int_value (builder, (gint64) gchat_chat_message_get_id (message));
  json_builder_set_member_name (builder, "out");
  json_builder_add_boolean_value (builder, gchat_chat_message_get_outgoing (message));
  json_builder_set_member_name (builder, "from");
  json_builder_add_string_value (builder, gchat_chat_message_get_sender (message));
  json_builder_set_member_name (builder, "text");
  json_builder_add_string_value (builder, gchat_chat_message_get_text (message));
  json_builder_set_member_name (builder, "time");
  json_builder_add_int_value (builder, gchat_chat_message_get_time (message));
  json_builder_set_member_name (builder, "state");
  json_builder_add_string_value (builder, gchat_delivery_state_to_string (state));
  json_builder_set_member_name (builder, "path");
  json_builder_add_string_value (builder, gchat_client_path_to_string (path));
  json_builder_end_object (builder);
  append_json (pending, builder);
}

static void
append_state_line (GString            *pending,
                   guint64             id,
                   GchatDeliveryState  state,
                   GchatClientPath     path)
{
  g_autoptr(JsonBuilder) builder = json_builder_new_immutable ();

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "id");
  json_builder_add_int_value (builder, (gint64) id);
  json_builder_set_member_name (builder, "state");
  json_builder_add_string_value (builder, gchat_delivery_state_to_string (state));
  json_builder_set_member_name (builder, "path");
  json_builder_add_string_value (builder, gchat_client_path_to_string (path));
  json_builder_end_object (builder);
  append_json (pending, builder);
}

/* The value of the enum nick in @object's member @name, or FALSE when missing or unknown. */
static gboolean
read_enum (JsonObject *object,
           const char *name,
           GType       type,
           gint       *value)
{
  g_autoptr(GEnumClass) klass = g_type_class_ref (type);
  const char *nick = json_object_get_string_member_with_default (object, name, NULL);
  GEnumValue *found = nick != NULL ? g_enum_get_value_by_nick (klass, nick) : NULL;

  if (found == NULL)
    return FALSE;
  *value = found->value;
  return TRUE;
}

static gboolean
member_is (JsonObject *object,
           const char *name,
           GType       type)
{
  JsonNode *node = json_object_get_member (object, name);

  return node != NULL && JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == type;
}

/* A message line; NULL when a member is missing or of the wrong type. */
static GchatChatMessage *
parse_message (JsonObject *object)
{
  gint state = GCHAT_DELIVERY_DELIVERED;
  gint path = GCHAT_CLIENT_PATH_DIRECT;

  if (!member_is (object, "id", G_TYPE_INT64) || !member_is (object, "out", G_TYPE_BOOLEAN)
      || !member_is (object, "from", G_TYPE_STRING) || !member_is (object, "text", G_TYPE_STRING)
      || !member_is (object, "time", G_TYPE_INT64)
      || !read_enum (object, "state", GCHAT_TYPE_DELIVERY_STATE, &state)
      || !read_enum (object, "path", GCHAT_TYPE_CLIENT_PATH, &path))
    return NULL;

  return gchat_chat_message_new ((guint64) json_object_get_int_member (object, "id"),
                                 json_object_get_boolean_member (object, "out"),
                                 json_object_get_string_member (object, "from"),
                                 json_object_get_string_member (object, "text"),
                                 json_object_get_int_member (object, "time"),
                                 state, path);
}

/* Reading backwards ---------------------------------------------------------------------------- */

/* The bytes [start, start + buf->len) of a file, read block by block towards its beginning. */
typedef struct
{
  int         fd;
  goffset     start;
  GByteArray *buf;
  gboolean    skipping; /* inside a line too long to keep, looking for its beginning */
  guint       n_skipped;
} Reader;

/* The last newline in @data[0, @len), or NULL. */
static const guint8 *
last_newline (const guint8 *data,
              gsize         len)
{
  while (len > 0)
    if (data[--len] == '\n')
      return data + len;
  return NULL;
}

/* Puts the block before @start in front of the buffer; FALSE at the beginning or on an error. */
static gboolean
reader_fill (Reader *reader)
{
  gsize n = MIN ((goffset) BLOCK_SIZE, reader->start);
  g_autofree guint8 *block = NULL;
  gsize done = 0;

  if (n == 0)
    return FALSE;
  block = g_malloc (n);
  while (done < n)
    {
      gssize got = pread (reader->fd, block + done, n - done, reader->start - n + done);

      if (got < 0 && errno == EINTR)
        continue;
      if (got <= 0)
        {
          g_debug ("History: a read failed: %s", got < 0 ? g_strerror (errno) : "end of file");
          return FALSE;
        }
      done += got;
    }
  g_byte_array_prepend (reader->buf, block, n);
  reader->start -= n;
  return TRUE;
}

/* Goes back to the beginning of a line too long to keep; FALSE when that is the file's start. */
static gboolean
reader_skip_long_line (Reader *reader)
{
  reader->n_skipped++;
  while (reader->skipping)
    {
      const guint8 *nl;

      g_byte_array_set_size (reader->buf, 0);
      if (!reader_fill (reader))
        return FALSE;
      nl = last_newline (reader->buf->data, reader->buf->len);
      if (nl != NULL)
        {
          g_byte_array_set_size (reader->buf, nl - reader->buf->data + 1);
          reader->skipping = FALSE;
        }
    }
  return TRUE;
}

/* The line before the buffer's end, without its newline, or NULL at the file's beginning. */
static char *
reader_previous_line (Reader *reader,
                      gsize  *len)
{
  for (;;)
    {
      guint8 *data = reader->buf->data;
      gsize stop = reader->buf->len;
      const guint8 *nl;

      if (stop == 0)
        {
          if (!reader_fill (reader))
            return NULL;
          continue;
        }
      if (data[stop - 1] == '\n')
        stop--;
      nl = last_newline (data, stop);
      if (nl != NULL || reader->start == 0)
        {
          gsize from = nl != NULL ? (gsize) (nl - data) + 1 : 0;
          char *line = g_strndup ((char *) data + from, stop - from);

          *len = stop - from;
          g_byte_array_set_size (reader->buf, from);
          if (*len <= MAX_LINE_SIZE)
            return line;
          g_free (line);
          reader->n_skipped++;
          continue;
        }
      if (stop > MAX_LINE_SIZE)
        {
          reader->skipping = TRUE;
          if (!reader_skip_long_line (reader))
            return NULL;
          continue;
        }
      if (!reader_fill (reader))
        return NULL;
    }
}

/* Loading -------------------------------------------------------------------------------------- */

static void
apply_pending_update (Peer             *peer,
                      GchatChatMessage *message)
{
  guint64 id = gchat_chat_message_get_id (message);
  StateUpdate *update = g_hash_table_lookup (peer->updates, &id);

  if (update != NULL)
    {
      gchat_chat_message_set_state (message, update->state, update->path);
      g_hash_table_remove (peer->updates, &id);
    }
}

/* Remembers a state for a message not loaded yet; @replace: it is newer than any known. */
static void
remember_update (Peer               *peer,
                 guint64             id,
                 GchatDeliveryState  state,
                 GchatClientPath     path,
                 gboolean            replace)
{
  StateUpdate *update;

  if (!replace && g_hash_table_contains (peer->updates, &id))
    return;
  update = g_new (StateUpdate, 1);
  update->state = state;
  update->path = path;
  g_hash_table_replace (peer->updates, g_memdup2 (&id, sizeof id), update);
}

/* Reads one line found going backwards: a message (added to @found, newest first) or a state
 * update (kept for its message, which is earlier in the file). FALSE for a line of neither. */
static gboolean
read_line (Peer       *peer,
           const char *line,
           gsize       len,
           GPtrArray  *found)
{
  g_autoptr(JsonParser) parser = json_parser_new_immutable ();
  g_autoptr(GError) error = NULL;
  JsonObject *object;
  GchatChatMessage *message;
  gint state, path;
  guint64 id;

  if (!gchat_json_parse (parser, line, len, 1, 16, NULL, &error))
    return FALSE;
  if (!JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    return FALSE;
  object = json_node_get_object (json_parser_get_root (parser));
  if (json_object_has_member (object, "text"))
    {
      message = parse_message (object);
      if (message == NULL)
        return FALSE;
      g_ptr_array_add (found, message);
      id = gchat_chat_message_get_id (message);
      if (gchat_chat_message_get_outgoing (message)
          && !g_hash_table_contains (peer->outgoing, &id))
        {
          apply_pending_update (peer, message);
          g_hash_table_insert (peer->outgoing, g_memdup2 (&id, sizeof id),
                               g_object_ref (message));
        }
      return TRUE;
    }
  if (!member_is (object, "id", G_TYPE_INT64)
      || !read_enum (object, "state", GCHAT_TYPE_DELIVERY_STATE, &state)
      || !read_enum (object, "path", GCHAT_TYPE_CLIENT_PATH, &path))
    return FALSE;
  /* A message already loaded came later in the file than this update: its state is newer. */
  id = (guint64) json_object_get_int_member (object, "id");
  if (!g_hash_table_contains (peer->outgoing, &id))
    remember_update (peer, id, state, path, FALSE);
  return TRUE;
}

/* Reads up to @count messages before @peer's loaded_from into @found, newest first. */
static void
read_back (Peer      *peer,
           guint      count,
           GPtrArray *found)
{
  Reader reader = { -1, peer->loaded_from, NULL, FALSE, 0 };
  guint n_corrupt = 0;
  gboolean at_start = FALSE;
  gsize len;

  reader.fd = g_open (peer->file, O_RDONLY | O_CLOEXEC, 0);
  if (reader.fd < 0)
    {
      if (errno != ENOENT)
        g_debug ("History: could not read “%s”: %s", peer->file, g_strerror (errno));
      peer->loaded_from = 0;
      return;
    }
  reader.buf = g_byte_array_new ();
  while (found->len < count && !at_start)
    {
      g_autofree char *line = reader_previous_line (&reader, &len);

      if (line == NULL)
        at_start = TRUE;
      else if (!read_line (peer, line, len, found))
        n_corrupt++;
    }
  /* The buffer holds only whole lines not read yet, or nothing: its start is where to resume. */
  peer->loaded_from = at_start ? 0 : reader.start + (goffset) reader.buf->len;
  if (n_corrupt > 0 || reader.n_skipped > 0)
    g_debug ("History: skipped %u damaged and %u over-long lines in “%s”", n_corrupt,
             reader.n_skipped, peer->file);
  g_byte_array_unref (reader.buf);
  g_close (reader.fd, NULL);
}

static guint
peer_load_older (Peer  *peer,
                 guint  count)
{
  g_autoptr(GPtrArray) found = g_ptr_array_new_with_free_func (g_object_unref);
  guint n;

  if (peer->file == NULL || peer->loaded_from == 0 || count == 0)
    return 0;
  read_back (peer, count, found);
  n = found->len;
  /* Oldest first, as the model is. */
  for (guint i = 0; i < n / 2; i++)
    {
      gpointer swap = found->pdata[i];

      found->pdata[i] = found->pdata[n - 1 - i];
      found->pdata[n - 1 - i] = swap;
    }
  g_list_store_splice (peer->store, 0, 0, found->pdata, n);
  return n;
}

/* The conversation with @name, its latest messages loaded on first use. */
static Peer *
get_peer (GchatHistory *self,
          const char   *name)
{
  g_autofree char *folded = fold_user_name (name);
  Peer *peer;
  GStatBuf st;

  if (folded == NULL)
    {
      g_debug ("History: “%s” cannot be a file name; its messages are not kept", name);
      folded = g_strconcat ("/", name, NULL);
    }
  peer = g_hash_table_lookup (self->peers, folded);
  if (peer != NULL)
    return peer;

  peer = peer_new (folded[0] != '/' ? g_build_filename (self->folder, folded, NULL) : NULL);
  g_hash_table_insert (self->peers, g_steal_pointer (&folded), peer);
  if (peer->file != NULL && g_stat (peer->file, &st) == 0)
    {
      peer->loaded_from = st.st_size;
      peer_load_older (peer, INITIAL_COUNT);
    }
  return peer;
}

/* Writing -------------------------------------------------------------------------------------- */

/* Opens @peer's file for appending, with a newline after a last line cut short by a crash so
 * that it does not swallow the next one. */
static gboolean
peer_open (Peer    *peer,
           GError **error)
{
  GStatBuf st;
  char last = '\n';

  peer->fd = g_open (peer->file, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, FILE_MODE);
  if (peer->fd < 0 || fchmod (peer->fd, FILE_MODE) != 0 || fstat (peer->fd, &st) != 0)
    {
      int saved_errno = errno;

      if (peer->fd >= 0)
        g_close (peer->fd, NULL);
      peer->fd = -1;
      g_set_error (error, GCHAT_HISTORY_ERROR, GCHAT_HISTORY_ERROR_IO,
                   _("Could not open the history file “%s”: %s"), peer->file,
                   g_strerror (saved_errno));
      return FALSE;
    }
  if (st.st_size > 0 && pread (peer->fd, &last, 1, st.st_size - 1) == 1 && last != '\n')
    g_string_prepend_c (peer->pending, '\n');
  return TRUE;
}

static gboolean
peer_flush (Peer    *peer,
            GError **error)
{
  gsize done = 0;

  if (peer->file == NULL || peer->pending->len == 0)
    return TRUE;
  if (peer->fd < 0 && !peer_open (peer, error))
    return FALSE;
  while (done < peer->pending->len)
    {
      gssize n = write (peer->fd, peer->pending->str + done, peer->pending->len - done);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          int saved_errno = errno;

          /* What was written stays written; the rest is tried again with the next batch. */
          g_string_erase (peer->pending, 0, done);
          g_set_error (error, GCHAT_HISTORY_ERROR, GCHAT_HISTORY_ERROR_IO,
                       _("Could not save the history file “%s”: %s"), peer->file,
                       g_strerror (saved_errno));
          return FALSE;
        }
      done += n;
    }
  g_string_truncate (peer->pending, 0);
  return TRUE;
}

static gboolean
flush_cb (gpointer user_data)
{
  GchatHistory *self = user_data;
  g_autoptr(GError) error = NULL;

  self->flush_source = 0;
  if (!gchat_history_flush (self, &error))
    g_warning ("%s", error->message);
  return G_SOURCE_REMOVE;
}

static void
schedule_flush (GchatHistory *self)
{
  if (self->flush_source == 0)
    self->flush_source = g_timeout_add (FLUSH_INTERVAL_MS, flush_cb, self);
}

/* The object ----------------------------------------------------------------------------------- */

static void
gchat_history_dispose (GObject *object)
{
  GchatHistory *self = GCHAT_HISTORY (object);
  g_autoptr(GError) error = NULL;

  if (self->peers != NULL && !gchat_history_flush (self, &error))
    g_warning ("%s", error->message);
  g_clear_handle_id (&self->flush_source, g_source_remove);
  g_clear_pointer (&self->peers, g_hash_table_unref);

  G_OBJECT_CLASS (gchat_history_parent_class)->dispose (object);
}

static void
gchat_history_finalize (GObject *object)
{
  GchatHistory *self = GCHAT_HISTORY (object);

  g_free (self->folder);

  G_OBJECT_CLASS (gchat_history_parent_class)->finalize (object);
}

static void
gchat_history_class_init (GchatHistoryClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = gchat_history_dispose;
  object_class->finalize = gchat_history_finalize;
}

static void
gchat_history_init (GchatHistory *self)
{
  self->peers = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                       (GDestroyNotify) peer_free);
}

/* Makes base/history, base/history/HOST_PORT and base/history/HOST_PORT/ACCOUNT, all private. */
static char *
make_folders (const char  *base,
              const char  *host,
              guint        port,
              const char  *account,
              GError     **error)
{
  g_autofree char *history = g_build_filename (base, "history", NULL);
  g_autofree char *server = g_strdup_printf ("%s_%u", host, port);
  g_autofree char *server_folder = g_build_filename (history, server, NULL);
  g_autofree char *folder = g_build_filename (server_folder, account, NULL);

  if (!make_folder (folder, error) || !make_folder (server_folder, error)
      || !make_folder (history, error))
    return NULL;
  return g_steal_pointer (&folder);
}

GchatHistory *
gchat_history_new (const char  *base,
                   const char  *host,
                   guint        port,
                   const char  *account,
                   GError     **error)
{
  g_autofree char *default_base = NULL;
  g_autofree char *folded_host = NULL;
  g_autofree char *folded_account = NULL;
  g_autofree char *folder = NULL;
  GchatHistory *self;

  g_return_val_if_fail (host != NULL, NULL);
  g_return_val_if_fail (account != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  folded_host = fold_host (host);
  folded_account = fold_user_name (account);
  if (folded_host == NULL || folded_account == NULL || port == 0 || port > G_MAXUINT16)
    {
      g_autofree char *shown = g_utf8_make_valid (folded_account == NULL ? account : host, -1);

      g_set_error (error, GCHAT_HISTORY_ERROR, GCHAT_HISTORY_ERROR_INVALID,
                   _("The history cannot be kept for “%s”: not a valid name"), shown);
      return NULL;
    }
  if (base == NULL)
    base = default_base = g_build_filename (g_get_user_data_dir (), "gchat", NULL);
  folder = make_folders (base, folded_host, port, folded_account, error);
  if (folder == NULL)
    return NULL;

  self = g_object_new (GCHAT_TYPE_HISTORY, NULL);
  self->folder = g_steal_pointer (&folder);
  return self;
}

GListModel *
gchat_history_get_messages (GchatHistory *self,
                            const char   *peer)
{
  g_return_val_if_fail (GCHAT_IS_HISTORY (self), NULL);
  g_return_val_if_fail (peer != NULL, NULL);

  return G_LIST_MODEL (get_peer (self, peer)->store);
}

guint
gchat_history_load_older (GchatHistory *self,
                          const char   *peer,
                          guint         count)
{
  g_return_val_if_fail (GCHAT_IS_HISTORY (self), 0);
  g_return_val_if_fail (peer != NULL, 0);

  return peer_load_older (get_peer (self, peer), count);
}

void
gchat_history_add (GchatHistory     *self,
                   const char       *peer,
                   GchatChatMessage *message)
{
  Peer *p;
  guint64 id;

  g_return_if_fail (GCHAT_IS_HISTORY (self));
  g_return_if_fail (peer != NULL);
  g_return_if_fail (GCHAT_IS_CHAT_MESSAGE (message));

  p = get_peer (self, peer);
  id = gchat_chat_message_get_id (message);
  if (gchat_chat_message_get_outgoing (message))
    g_hash_table_replace (p->outgoing, g_memdup2 (&id, sizeof id), g_object_ref (message));
  g_list_store_append (p->store, message);
  if (p->file == NULL)
    return;
  append_message_line (p->pending, message);
  schedule_flush (self);
}

void
gchat_history_set_state (GchatHistory       *self,
                         const char         *peer,
                         guint64             id,
                         GchatDeliveryState  state,
                         GchatClientPath     path)
{
  GchatChatMessage *message;
  Peer *p;

  g_return_if_fail (GCHAT_IS_HISTORY (self));
  g_return_if_fail (peer != NULL);

  p = get_peer (self, peer);
  message = g_hash_table_lookup (p->outgoing, &id);
  if (message != NULL)
    gchat_chat_message_set_state (message, state, path);
  else
    remember_update (p, id, state, path, TRUE);
  if (p->file == NULL)
    return;
  append_state_line (p->pending, id, state, path);
  schedule_flush (self);
}

gboolean
gchat_history_flush (GchatHistory  *self,
                     GError       **error)
{
  GHashTableIter iter;
  Peer *peer;
  gboolean ok = TRUE;

  g_return_val_if_fail (GCHAT_IS_HISTORY (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  g_clear_handle_id (&self->flush_source, g_source_remove);
  g_hash_table_iter_init (&iter, self->peers);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &peer))
    if (!peer_flush (peer, ok ? error : NULL))
      ok = FALSE;
  /* What could not be written is tried again later rather than dropped. */
  if (!ok)
    schedule_flush (self);
  return ok;
}
