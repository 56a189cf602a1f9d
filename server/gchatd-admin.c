/* SPDX-License-Identifier: GPL-3.0-or-later */
/* gchatctl's commands, through a running gchatd or on the files under the store lock. */

/*
 * Which way a command goes is described at the top of gchatd-control.c. In short: a command
 * goes to the gchatd answering on the control socket when there is one; otherwise a change
 * takes the store lock and edits the file directly (refusing when the lock is held: a gchatd is
 * starting or stuck), and a read just reads the file, which is always whole.
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <glib/gi18n-lib.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "gchat-file.h"
#include "gchat-json.h"
#include "gchat-rsa-key.h"
#include "gchatd-admin.h"
#include "gchatd-control.h"
#include "gchatd-mailbox.h"
#include "gchatd-password-hasher.h"
#include "gchatd-user-store.h"

/* How long gchatctl keeps asking a busy gchatd before it gives up. */
#define BUSY_RETRY_US (10 * G_USEC_PER_SEC)

/* How long gchatctl waits for gchatd to answer a request. */
#define ANSWER_TIMEOUT_S 60
/* The most answer lines read for one request: a full store's `users`, and some. */
#define MAX_ANSWER_LINES (GCHATD_USER_STORE_MAX_USERS / GCHATD_CONTROL_USERS_PER_LINE + 2)

G_DEFINE_QUARK (gchatd-admin-error-quark, gchatd_admin_error)

/* Paths --------------------------------------------------------------------------------------- */

/* See GchatdPaths. A configuration with a data_base of its own gets a socket of its own, named
 * after the store, so that a gchatctl for one database never reaches a gchatd serving another. */
static char *
control_socket_path (const GchatdPaths *paths,
                     gboolean           own_store)
{
  const char *runtime_dir = g_getenv ("XDG_RUNTIME_DIR");
  g_autofree char *digest = NULL;
  g_autofree char *name = NULL;

  if (runtime_dir == NULL || !g_path_is_absolute (runtime_dir))
    return g_build_filename (paths->data_dir, "control", NULL);
  if (!own_store)
    return g_build_filename (runtime_dir, "gchatd", "control", NULL);

  digest = g_compute_checksum_for_string (G_CHECKSUM_SHA256, paths->store, -1);
  name = g_strdup_printf ("control-%.16s", digest);
  return g_build_filename (runtime_dir, "gchatd", name, NULL);
}

static char *
path_or_default (const char *configured,
                 const char *folder,
                 const char *name)
{
  return configured != NULL ? g_strdup (configured) : g_build_filename (folder, name, NULL);
}

GchatdPaths *
gchatd_paths_resolve (GchatConfig *config)
{
  GchatdPaths *paths;
  const char *data_base;

  g_return_val_if_fail (GCHAT_IS_CONFIG (config), NULL);

  paths = g_new0 (GchatdPaths, 1);
  data_base = gchat_config_get_data_base (config);
  if (data_base != NULL)
    paths->data_dir = g_path_get_dirname (data_base);
  else
    paths->data_dir = g_build_filename (g_get_user_data_dir (), "gchatd", NULL);
  paths->store = path_or_default (data_base, paths->data_dir, "users.json");
  paths->lock = g_strconcat (paths->store, ".lock", NULL);
  paths->private_key = path_or_default (gchat_config_get_server_private_key (config),
                                        paths->data_dir, "server-private.pem");
  paths->public_key = path_or_default (gchat_config_get_server_certificate (config),
                                       paths->data_dir, "server-public.pem");
  paths->mail_dir = g_build_filename (paths->data_dir, "mail", NULL);
  paths->ticket_key = g_build_filename (paths->data_dir, "ticket-key", NULL);
  paths->revocations = g_build_filename (paths->data_dir, "ticket-revocations.json", NULL);
  paths->control_socket = control_socket_path (paths, data_base != NULL);

  return paths;
}

void
gchatd_paths_free (GchatdPaths *paths)
{
  if (paths == NULL)
    return;

  g_free (paths->data_dir);
  g_free (paths->store);
  g_free (paths->lock);
  g_free (paths->private_key);
  g_free (paths->public_key);
  g_free (paths->mail_dir);
  g_free (paths->ticket_key);
  g_free (paths->revocations);
  g_free (paths->control_socket);
  g_free (paths);
}

char *
gchatd_config_dup_default_path (void)
{
  return g_build_filename (g_get_user_config_dir (), "gchatd", "config.yaml", NULL);
}

GchatConfig *
gchatd_config_load (const char *path,
                    GError    **error)
{
  g_autofree char *default_path = NULL;

  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (path == NULL)
    {
      default_path = gchatd_config_dup_default_path ();
      if (g_file_test (default_path, G_FILE_TEST_EXISTS))
        path = default_path;
    }
  if (path == NULL)
    return gchat_config_new ();

  return gchat_config_new_from_file (path, error);
}

/* The store lock ------------------------------------------------------------------------------ */

struct _GchatdStoreLock
{
  int fd;
};

GchatdStoreLock *
gchatd_store_lock_acquire (const char *store_path,
                           GError    **error)
{
  g_autofree char *folder = NULL;
  g_autofree char *path = NULL;
  GchatdStoreLock *lock;
  int fd, saved_errno;

  g_return_val_if_fail (store_path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  folder = g_path_get_dirname (store_path);
  path = g_strconcat (store_path, ".lock", NULL);
  if (g_mkdir_with_parents (folder, 0700) != 0)
    {
      saved_errno = errno;
      g_set_error (error, GCHATD_ADMIN_ERROR, GCHATD_ADMIN_ERROR_IO,
                   _("Cannot make the folder “%s”: %s"), folder, g_strerror (saved_errno));
      return NULL;
    }

  /* The file is never deleted: deleting it would let two holders lock two different files. */
  fd = g_open (path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
  if (fd < 0 || flock (fd, LOCK_EX | LOCK_NB) != 0)
    {
      saved_errno = errno;
      if (fd >= 0)
        close (fd);
      if (saved_errno == EWOULDBLOCK)
        g_set_error (error, GCHATD_ADMIN_ERROR, GCHATD_ADMIN_ERROR_LOCKED,
                     _("The user database “%s” is in use by another gchatd or gchatctl (it "
                       "holds the lock “%s”)"),
                     store_path, path);
      else
        g_set_error (error, GCHATD_ADMIN_ERROR, GCHATD_ADMIN_ERROR_IO,
                     _("Cannot lock the user database with “%s”: %s"), path,
                     g_strerror (saved_errno));
      return NULL;
    }

  lock = g_new0 (GchatdStoreLock, 1);
  lock->fd = fd;
  return lock;
}

void
gchatd_store_lock_release (GchatdStoreLock *lock)
{
  if (lock == NULL)
    return;

  /* Closing the only descriptor of the open file releases the flock. */
  close (lock->fd);
  g_free (lock);
}

/* Ticket revocations -------------------------------------------------------------------------- */

/* Far more than the names a full store can have, each with its time. */
#define REVOCATIONS_MAX_SIZE (32 * 1024 * 1024)

static GHashTable *
revocations_new (void)
{
  return g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
}

static gboolean
revocations_corrupt (const char  *path,
                     const char  *why,
                     GError     **error)
{
  g_set_error (error, GCHATD_ADMIN_ERROR, GCHATD_ADMIN_ERROR_IO,
               _("The ticket revocations in “%s” cannot be read (%s); restore the file or "
                 "delete it, which makes revoked tickets valid again"), path, why);
  return FALSE;
}

/* Fills @table from the parsed file; FALSE when it is not what gchatd writes. */
static gboolean
revocations_parse (JsonNode   *root,
                   GHashTable *table)
{
  JsonObject *object = JSON_NODE_HOLDS_OBJECT (root) ? json_node_get_object (root) : NULL;
  JsonNode *node = object != NULL ? json_object_get_member (object, "not_before") : NULL;
  JsonObjectIter iter;
  const char *name;
  JsonNode *value;

  if (node == NULL || !JSON_NODE_HOLDS_OBJECT (node)
      || json_object_get_int_member_with_default (object, "version", 0) != 1)
    return FALSE;
  json_object_iter_init (&iter, json_node_get_object (node));
  while (json_object_iter_next (&iter, &name, &value))
    {
      gint64 *time;

      if (!JSON_NODE_HOLDS_VALUE (value) || json_node_get_value_type (value) != G_TYPE_INT64
          || !gchatd_user_name_validate (name, NULL))
        return FALSE;
      time = g_new (gint64, 1);
      *time = json_node_get_int (value);
      g_hash_table_insert (table, g_ascii_strdown (name, -1), time);
    }
  return TRUE;
}

GHashTable *
gchatd_revocations_load (const char  *path,
                         GError     **error)
{
  g_autoptr(GHashTable) table = revocations_new ();
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) local_error = NULL;
  g_autofree char *contents = NULL;
  gsize len = 0;
  int fd;
  gboolean ok;

  g_return_val_if_fail (path != NULL, NULL);

  fd = g_open (path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0 && errno == ENOENT)
    return g_steal_pointer (&table);
  if (fd < 0)
    {
      revocations_corrupt (path, g_strerror (errno), error);
      return NULL;
    }
  ok = gchat_file_read_fd (fd, REVOCATIONS_MAX_SIZE, &contents, &len, &local_error);
  close (fd);
  if (!ok)
    {
      revocations_corrupt (path, local_error->message, error);
      return NULL;
    }
  if (!json_parser_load_from_data (parser, contents, len, &local_error))
    {
      revocations_corrupt (path, local_error->message, error);
      return NULL;
    }
  if (!revocations_parse (json_parser_get_root (parser), table))
    {
      revocations_corrupt (path, _("not a list of revocations"), error);
      return NULL;
    }
  return g_steal_pointer (&table);
}

gboolean
gchatd_revocations_add (const char  *path,
                        GHashTable  *revocations,
                        const char  *name,
                        gint64       now,
                        gint64       lifetime_s,
                        GError     **error)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  g_autoptr(JsonNode) root = NULL;
  g_autoptr(GError) local_error = NULL;
  g_autofree char *text = NULL;
  gint64 *time = g_new (gint64, 1);
  GHashTableIter iter;
  gpointer key, value;
  gsize len;

  g_return_val_if_fail (path != NULL && revocations != NULL && name != NULL, FALSE);

  *time = now;
  g_hash_table_insert (revocations, g_ascii_strdown (name, -1), time);
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "version");
  json_builder_add_int_value (builder, 1);
  json_builder_set_member_name (builder, "not_before");
  json_builder_begin_object (builder);
  g_hash_table_iter_init (&iter, revocations);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      if (*(gint64 *) value < now - lifetime_s)
        {
          g_hash_table_iter_remove (&iter);
          continue;
        }
      json_builder_set_member_name (builder, key);
      json_builder_add_int_value (builder, *(gint64 *) value);
    }
  json_builder_end_object (builder);
  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  text = json_generator_to_data (generator, &len);
  if (gchat_file_replace (path, text, len, 0600, &local_error))
    return TRUE;
  g_set_error (error, GCHATD_ADMIN_ERROR, GCHATD_ADMIN_ERROR_IO,
               _("Could not save the ticket revocations in “%s”: %s"), path,
               local_error->message);
  return FALSE;
}

/* Control protocol error codes ---------------------------------------------------------------- */

typedef struct {
  const char *code;
  GQuark      (*domain) (void);
  int         error_code;
} CodeMapping;

static const CodeMapping code_mappings[] = {
  { "name-taken", gchatd_user_store_error_quark, GCHATD_USER_STORE_ERROR_NAME_TAKEN },
  { "invalid-name", gchatd_user_store_error_quark, GCHATD_USER_STORE_ERROR_INVALID_NAME },
  { "invalid-password", gchatd_user_store_error_quark,
    GCHATD_USER_STORE_ERROR_INVALID_PASSWORD },
  { "unknown-user", gchatd_user_store_error_quark, GCHATD_USER_STORE_ERROR_UNKNOWN_USER },
  { "full", gchatd_user_store_error_quark, GCHATD_USER_STORE_ERROR_FULL },
  { "io", gchatd_user_store_error_quark, GCHATD_USER_STORE_ERROR_IO },
  { "busy", gchatd_password_hasher_error_quark, GCHATD_PASSWORD_HASHER_ERROR_BUSY },
  { "other-store", gchatd_admin_error_quark, GCHATD_ADMIN_ERROR_OTHER_STORE },
  { "bad-request", gchatd_admin_error_quark, GCHATD_ADMIN_ERROR_PROTOCOL },
};

const char *
gchatd_admin_error_to_code (const GError *error)
{
  g_return_val_if_fail (error != NULL, NULL);

  for (gsize i = 0; i < G_N_ELEMENTS (code_mappings); i++)
    if (g_error_matches (error, code_mappings[i].domain (), code_mappings[i].error_code))
      return code_mappings[i].code;

  return "failed";
}

GError *
gchatd_admin_error_from_code (const char *code,
                              const char *message)
{
  g_return_val_if_fail (code != NULL && message != NULL, NULL);

  for (gsize i = 0; i < G_N_ELEMENTS (code_mappings); i++)
    if (strcmp (code, code_mappings[i].code) == 0)
      return g_error_new_literal (code_mappings[i].domain (), code_mappings[i].error_code,
                                  message);

  return g_error_new_literal (GCHATD_ADMIN_ERROR, GCHATD_ADMIN_ERROR_FAILED, message);
}

/* Passwords ----------------------------------------------------------------------------------- */

/* One line of at most GCHATD_PASSWORD_MAX_LENGTH bytes from @fd, without its line ending; read
 * a byte at a time so that nothing after the line is taken from the stream. */
static char *
read_password_line (int      fd,
                    GError **error)
{
  const gsize size = GCHATD_PASSWORD_MAX_LENGTH + 2;
  char *line = g_malloc0 (size);
  gsize len = 0;

  for (;;)
    {
      gssize n = read (fd, line + len, 1);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0 || line[len] == '\n')
        break;
      if (++len == size - 1)
        break;
    }
  line[len] = '\0';
  if (len > 0 && line[len - 1] == '\r')
    line[--len] = '\0';

  if (len > GCHATD_PASSWORD_MAX_LENGTH)
    {
      gchatd_admin_password_free (line);
      g_set_error (error, GCHATD_USER_STORE_ERROR, GCHATD_USER_STORE_ERROR_INVALID_PASSWORD,
                   _("Passwords must be %d–%d bytes long"), GCHATD_PASSWORD_MIN_LENGTH,
                   GCHATD_PASSWORD_MAX_LENGTH);
      return NULL;
    }

  return line;
}

/* The terminal's settings while echo is off, to put back if a signal ends gchatctl there. */
static struct termios saved_termios;
static int saved_termios_fd = -1;

static void
restore_terminal_and_die (int signum)
{
  tcsetattr (saved_termios_fd, TCSAFLUSH, &saved_termios);
  signal (signum, SIG_DFL);
  raise (signum);
}

/* Prints @prompt on stderr and reads a line from the terminal @fd with echo off. */
static char *
prompt_without_echo (int         fd,
                     const char *prompt,
                     GError    **error)
{
  static const int signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
  void (*saved_handlers[G_N_ELEMENTS (signals)]) (int);
  struct termios quiet;
  char *line;

  if (tcgetattr (fd, &saved_termios) != 0)
    {
      int saved_errno = errno;

      g_set_error (error, GCHATD_ADMIN_ERROR, GCHATD_ADMIN_ERROR_PASSWORD,
                   _("Cannot read a password from the terminal: %s"), g_strerror (saved_errno));
      return NULL;
    }
  saved_termios_fd = fd;
  for (gsize i = 0; i < G_N_ELEMENTS (signals); i++)
    saved_handlers[i] = signal (signals[i], restore_terminal_and_die);

  /* Echo goes off before the prompt shows, so nothing typed after it is ever echoed (or
   * flushed away). */
  quiet = saved_termios;
  quiet.c_lflag &= ~ECHO;
  quiet.c_lflag |= ECHONL;
  tcsetattr (fd, TCSAFLUSH, &quiet);
  fputs (prompt, stderr);
  fflush (stderr);
  line = read_password_line (fd, error);
  tcsetattr (fd, TCSAFLUSH, &saved_termios);

  for (gsize i = 0; i < G_N_ELEMENTS (signals); i++)
    signal (signals[i], saved_handlers[i]);
  return line;
}

/* The rules a password read must follow; the log-in protocol carries passwords as JSON strings,
 * so one that is not UTF-8 could never be typed in to log in. */
static gboolean
check_password (const char *password,
                GError    **error)
{
  gsize len = strlen (password);

  if (len == 0)
    {
      g_set_error_literal (error, GCHATD_ADMIN_ERROR, GCHATD_ADMIN_ERROR_PASSWORD,
                           _("No password was given"));
      return FALSE;
    }
  if (!g_utf8_validate_len (password, len, NULL))
    {
      g_set_error_literal (error, GCHATD_ADMIN_ERROR, GCHATD_ADMIN_ERROR_PASSWORD,
                           _("The password is not valid UTF-8 text"));
      return FALSE;
    }

  return gchatd_password_validate (password, len, error);
}

static char *
read_from_terminal (int         fd,
                    const char *user,
                    gboolean    confirm,
                    GError    **error)
{
  g_autofree char *prompt = g_strdup_printf (_("Password for “%s”: "), user);
  char *first = prompt_without_echo (fd, prompt, error);
  char *second;
  gboolean same;

  if (first == NULL || !confirm)
    return first;
  if (!check_password (first, error))
    {
      gchatd_admin_password_free (first);
      return NULL;
    }

  second = prompt_without_echo (fd, _("Repeat the password: "), error);
  same = second != NULL && strcmp (first, second) == 0;
  if (second != NULL && !same)
    g_set_error_literal (error, GCHATD_ADMIN_ERROR, GCHATD_ADMIN_ERROR_PASSWORD,
                         _("The passwords do not match"));
  gchatd_admin_password_free (second);
  if (same)
    return first;

  gchatd_admin_password_free (first);
  return NULL;
}

char *
gchatd_admin_read_password (int         fd,
                            const char *user,
                            gboolean    confirm,
                            GError    **error)
{
  char *password;

  g_return_val_if_fail (user != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (isatty (fd))
    password = read_from_terminal (fd, user, confirm, error);
  else
    password = read_password_line (fd, error);

  if (password != NULL && !check_password (password, error))
    g_clear_pointer (&password, gchatd_admin_password_free);

  return password;
}

void
gchatd_admin_password_free (char *password)
{
  if (password == NULL)
    return;

  gchat_memzero (password, strlen (password));
  g_free (password);
}

/* The object ---------------------------------------------------------------------------------- */

struct _GchatdAdmin
{
  GObject      parent_instance;

  GchatConfig *config;
  GchatdPaths *paths;
  char        *socket_path;
  /* With a socket given by hand, requests do not name the store: the caller chose the gchatd. */
  gboolean     socket_given;
  gboolean     used_daemon;
};

G_DEFINE_FINAL_TYPE (GchatdAdmin, gchatd_admin, G_TYPE_OBJECT)

static void
gchatd_admin_finalize (GObject *object)
{
  GchatdAdmin *self = GCHATD_ADMIN (object);

  g_clear_object (&self->config);
  g_clear_pointer (&self->paths, gchatd_paths_free);
  g_free (self->socket_path);

  G_OBJECT_CLASS (gchatd_admin_parent_class)->finalize (object);
}

static void
gchatd_admin_class_init (GchatdAdminClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = gchatd_admin_finalize;
}

static void
gchatd_admin_init (GchatdAdmin *self)
{
}

GchatdAdmin *
gchatd_admin_new (GchatConfig *config,
                  const char  *socket_path)
{
  GchatdAdmin *self;

  g_return_val_if_fail (GCHAT_IS_CONFIG (config), NULL);

  self = g_object_new (GCHATD_TYPE_ADMIN, NULL);
  self->config = g_object_ref (config);
  self->paths = gchatd_paths_resolve (config);
  self->socket_given = socket_path != NULL;
  self->socket_path = g_strdup (socket_path != NULL ? socket_path : self->paths->control_socket);

  return self;
}

const GchatdPaths *
gchatd_admin_get_paths (GchatdAdmin *self)
{
  g_return_val_if_fail (GCHATD_IS_ADMIN (self), NULL);

  return self->paths;
}

gboolean
gchatd_admin_get_used_daemon (GchatdAdmin *self)
{
  g_return_val_if_fail (GCHATD_IS_ADMIN (self), FALSE);

  return self->used_daemon;
}

/* Through the daemon -------------------------------------------------------------------------- */

static GSocketConnection *
daemon_connect (GchatdAdmin *self,
                GError     **error)
{
  g_autoptr (GSocketClient) client = g_socket_client_new ();
  g_autoptr (GSocketAddress) address = NULL;
  g_autoptr (GError) local_error = NULL;
  GSocketConnection *connection;
  struct sockaddr_un sun;

  /* No gchatd can listen on a path too long for a socket. */
  if (strlen (self->socket_path) >= sizeof sun.sun_path)
    {
      g_set_error (error, GCHATD_ADMIN_ERROR, GCHATD_ADMIN_ERROR_NO_DAEMON,
                   _("No gchatd answers on “%s”: the path is too long for a socket"),
                   self->socket_path);
      return NULL;
    }

  address = g_unix_socket_address_new (self->socket_path);
  g_socket_client_set_timeout (client, ANSWER_TIMEOUT_S);
  connection = g_socket_client_connect (client, G_SOCKET_CONNECTABLE (address), NULL,
                                        &local_error);
  if (connection == NULL)
    g_set_error (error, GCHATD_ADMIN_ERROR, GCHATD_ADMIN_ERROR_NO_DAEMON,
                 _("No gchatd answers on “%s”: %s"), self->socket_path, local_error->message);

  return connection;
}

static gboolean
daemon_send (GSocketConnection *connection,
             JsonObject        *request,
             GError           **error)
{
  GOutputStream *output = g_io_stream_get_output_stream (G_IO_STREAM (connection));
  g_autoptr (JsonNode) node = json_node_init_object (json_node_alloc (), request);
  char *line = json_to_string (node, FALSE);
  g_autofree char *text = g_strconcat (line, "\n", NULL);
  gboolean ok;

  ok = g_output_stream_write_all (output, text, strlen (text), NULL, NULL, error);
  /* The line may hold a password. */
  gchat_memzero (line, strlen (line));
  gchat_memzero (text, strlen (text));
  g_free (line);

  return ok;
}

/* Returns NULL, for the functions below that return a pointer. */
static gpointer
set_protocol_error (GError    **error,
                    const char *detail)
{
  g_set_error (error, GCHATD_ADMIN_ERROR, GCHATD_ADMIN_ERROR_PROTOCOL,
               _("gchatd gave an answer this gchatctl does not understand: %s"), detail);
  return NULL;
}

/* One answer line, without its newline; @pending keeps what was read past it. */
static char *
read_answer_line (GInputStream *input,
                  GString      *pending,
                  GError      **error)
{
  char chunk[4096];

  for (;;)
    {
      char *newline = memchr (pending->str, '\n', pending->len);
      gssize n;

      if (newline != NULL)
        {
          char *line = g_strndup (pending->str, newline - pending->str);

          g_string_erase (pending, 0, newline - pending->str + 1);
          return line;
        }
      if (pending->len >= GCHATD_CONTROL_MAX_REPLY)
        return set_protocol_error (error, _("a line is too long"));

      n = g_input_stream_read (input, chunk, sizeof chunk, NULL, error);
      if (n < 0)
        return NULL;
      if (n == 0)
        return set_protocol_error (error, _("it closed the connection"));
      g_string_append_len (pending, chunk, n);
    }
}

/* Parses an answer line; an answer "ok": false becomes the error it stands for. */
static JsonObject *
parse_answer (const char *line,
              GError    **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonNode *root;
  JsonObject *object;
  const char *code, *message;

  /* The daemon's answers nest 3 levels at most ({"users":[{...}]}); the strict path keeps a
   * hostile peer on the socket from crashing json-glib with deep nesting. */
  if (!gchat_json_parse (parser, line, strlen (line), 4, 0, NULL, NULL)
      || (root = json_parser_get_root (parser)) == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    return set_protocol_error (error, _("it is not a JSON object"));

  object = json_node_get_object (root);
  if (json_object_get_boolean_member_with_default (object, "ok", FALSE))
    return json_object_ref (object);

  code = json_object_get_string_member_with_default (object, "code", "failed");
  message = json_object_get_string_member_with_default (object, "message", code);
  g_propagate_error (error, gchatd_admin_error_from_code (code, message));
  return NULL;
}

/* Says which gchatd an I/O error (a timeout, say) came from; returns NULL. */
static gpointer
lost_connection (GchatdAdmin *self,
                 GError     **error)
{
  if (error != NULL && *error != NULL && (*error)->domain == G_IO_ERROR)
    g_prefix_error (error, _("The gchatd on “%s” did not answer: "), self->socket_path);
  return NULL;
}

static GPtrArray *
daemon_request_once (GchatdAdmin *self,
                     JsonObject  *request,
                     GError     **error)
{
  g_autoptr (GSocketConnection) connection = NULL;
  g_autoptr (GPtrArray) answers = NULL;
  g_autoptr (GString) pending = g_string_new (NULL);
  GInputStream *input;

  self->used_daemon = FALSE;
  connection = daemon_connect (self, error);
  if (connection == NULL)
    return NULL;
  self->used_daemon = TRUE;
  if (!self->socket_given)
    json_object_set_string_member (request, "store", self->paths->store);
  if (!daemon_send (connection, request, error))
    return lost_connection (self, error);

  input = g_io_stream_get_input_stream (G_IO_STREAM (connection));
  answers = g_ptr_array_new_with_free_func ((GDestroyNotify) json_object_unref);
  do
    {
      g_autofree char *line = read_answer_line (input, pending, error);
      JsonObject *answer;

      if (line == NULL)
        return lost_connection (self, error);
      answer = parse_answer (line, error);
      if (answer == NULL)
        return NULL;
      g_ptr_array_add (answers, answer);
      if (answers->len > MAX_ANSWER_LINES)
        return set_protocol_error (error, _("it sends too many lines"));
    }
  while (json_object_get_boolean_member_with_default (g_ptr_array_index (answers,
                                                                         answers->len - 1),
                                                      "more", FALSE));

  return g_steal_pointer (&answers);
}

/* Sends @request to the daemon and returns its answers (JsonObject), one a line, up to the
 * first without "more". Fails with GCHATD_ADMIN_ERROR_NO_DAEMON when none answers. A daemon
 * that is busy (with other administrators, or hashing log-ins) changed nothing: ask again,
 * waiting a little longer each time, for a few seconds. */
static GPtrArray *
daemon_request (GchatdAdmin *self,
                JsonObject  *request,
                GError     **error)
{
  gulong wait_us = 20 * 1000;

  for (gint64 deadline = g_get_monotonic_time () + BUSY_RETRY_US;;)
    {
      g_autoptr (GError) local_error = NULL;
      GPtrArray *answers = daemon_request_once (self, request, &local_error);

      if (answers != NULL)
        return answers;
      if (!g_error_matches (local_error, GCHATD_PASSWORD_HASHER_ERROR,
                            GCHATD_PASSWORD_HASHER_ERROR_BUSY)
          || g_get_monotonic_time () + (gint64) wait_us > deadline)
        {
          g_propagate_error (error, g_steal_pointer (&local_error));
          return NULL;
        }
      g_usleep (wait_us);
      wait_us = MIN (wait_us * 2, 500 * 1000);
    }
}

static JsonObject *
request_new (const char *command,
             const char *name,
             const char *password)
{
  JsonObject *request = json_object_new ();

  json_object_set_string_member (request, "command", command);
  if (name != NULL)
    json_object_set_string_member (request, "user", name);
  if (password != NULL)
    json_object_set_string_member (request, "password", password);

  return request;
}

/* Wipes json-glib's copy of the password in @request. */
static void
request_wipe (JsonObject *request)
{
  char *password;

  if (!json_object_has_member (request, "password"))
    return;
  password = (char *) json_object_get_string_member (request, "password");
  gchat_memzero (password, strlen (password));
}

/* On the files ------------------------------------------------------------------------------- */

typedef enum {
  CHANGE_ADD,
  CHANGE_REPLACE,
  CHANGE_REMOVE,
  CHANGE_REVOKE,
} ChangeKind;

static void
on_result (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  GAsyncResult **slot = user_data;

  *slot = g_object_ref (result);
}

/* Runs @context until an on_result() callback filled @slot. */
static GAsyncResult *
wait_for (GMainContext  *context,
          GAsyncResult **slot)
{
  while (*slot == NULL)
    g_main_context_iteration (context, TRUE);

  return *slot;
}

static gboolean
hash_password (GMainContext            *context,
               const GchatArgon2Params *params,
               const char              *password,
               guint8                  *salt,
               guint8                  *hash,
               GError                 **error)
{
  g_autoptr (GchatdPasswordHasher) hasher = gchatd_password_hasher_new (1, 1);
  g_autoptr (GAsyncResult) result = NULL;

  gchatd_password_hasher_hash_async (hasher, params, password, strlen (password), NULL,
                                     on_result, &result);
  return gchatd_password_hasher_hash_finish (hasher, wait_for (context, &result), salt, hash,
                                             error);
}

/* Makes one change to @store and waits until it is durable (or failed). */
static gboolean
change_store (GchatdUserStore         *store,
              GMainContext            *context,
              ChangeKind               kind,
              const char              *name,
              const char              *password,
              const GchatArgon2Params *params,
              GError                 **error)
{
  guint8 salt[GCHATD_USER_SALT_SIZE], hash[GCHATD_USER_HASH_SIZE];
  g_autoptr (GAsyncResult) result = NULL;

  if (kind == CHANGE_REMOVE)
    {
      gchatd_user_store_remove_async (store, name, NULL, on_result, &result);
      return gchatd_user_store_remove_finish (store, wait_for (context, &result), error);
    }

  if (!hash_password (context, params, password, salt, hash, error))
    return FALSE;
  if (kind == CHANGE_ADD)
    gchatd_user_store_add_async (store, name, params, salt, sizeof salt, hash, sizeof hash, NULL,
                                 on_result, &result);
  else
    gchatd_user_store_replace_async (store, name, params, salt, sizeof salt, hash, sizeof hash,
                                     NULL, on_result, &result);
  gchat_memzero (hash, sizeof hash);
  wait_for (context, &result);

  return kind == CHANGE_ADD ? gchatd_user_store_add_finish (store, result, error)
                            : gchatd_user_store_replace_finish (store, result, error);
}

/* With no gchatd answering: takes the lock, loads the store, makes the change durable, lets go. */
static GArray *
mail_ids (GPtrArray *held,
          gboolean   receipts)
{
  GArray *ids = g_array_new (FALSE, FALSE, sizeof (guint64));

  for (guint i = 0; i < held->len; i++)
    {
      guint64 id = receipts ? gchatd_mail_receipt_get_id (g_ptr_array_index (held, i))
                            : gchatd_mail_get_id (g_ptr_array_index (held, i));

      g_array_append_val (ids, id);
    }
  return ids;
}

/* A deleted account's held messages and receipts go with it: a new account of the same name
 * must not read them. gchatd does the same when it runs. */
static gboolean
drop_mailbox (GchatdAdmin  *self,
              GMainContext *context,
              const char   *name,
              GError      **error)
{
  g_autoptr (GchatdMailbox) mailbox = NULL;
  g_autoptr (GPtrArray) mail = NULL;
  g_autoptr (GPtrArray) receipts = NULL;
  g_autoptr (GArray) mail_ids_ = NULL;
  g_autoptr (GArray) receipt_ids = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GAsyncResult) receipts_result = NULL;
  g_autoptr (GPtrArray) removed = NULL;
  g_autoptr (GPtrArray) removed_receipts = NULL;

  mailbox = gchatd_mailbox_new (self->paths->mail_dir, error);
  if (mailbox == NULL)
    return FALSE;
  mail = gchatd_mailbox_peek (mailbox, name);
  receipts = gchatd_mailbox_peek_receipts (mailbox, name);
  mail_ids_ = mail_ids (mail, FALSE);
  receipt_ids = mail_ids (receipts, TRUE);
  if (mail_ids_->len > 0)
    {
      gchatd_mailbox_remove_async (mailbox, name, (guint64 *) mail_ids_->data, mail_ids_->len,
                                   NULL, on_result, &result);
      removed = gchatd_mailbox_remove_finish (mailbox, wait_for (context, &result), error);
      if (removed == NULL)
        return FALSE;
    }
  if (receipt_ids->len > 0)
    {
      gchatd_mailbox_remove_receipts_async (mailbox, name, (guint64 *) receipt_ids->data,
                                            receipt_ids->len, NULL, on_result, &receipts_result);
      removed_receipts = gchatd_mailbox_remove_receipts_finish (mailbox,
                                                                wait_for (context,
                                                                          &receipts_result),
                                                                error);
      if (removed_receipts == NULL)
        return FALSE;
    }
  return TRUE;
}

/* With no gchatd running, under the store lock: the account must exist. */
static gboolean
revoke_in_files (GchatdAdmin  *self,
                 const char   *name,
                 GError      **error)
{
  g_autoptr (GchatdUserStore) store = gchatd_user_store_new (self->paths->store, error);
  g_autoptr (GchatdUserRecord) record = NULL;
  g_autoptr (GHashTable) revocations = NULL;

  if (store == NULL)
    return FALSE;
  record = gchatd_user_store_lookup (store, name);
  if (record == NULL)
    {
      g_set_error (error, GCHATD_USER_STORE_ERROR, GCHATD_USER_STORE_ERROR_UNKNOWN_USER,
                   _("There is no account “%s”"), name);
      return FALSE;
    }
  revocations = gchatd_revocations_load (self->paths->revocations, error);
  return revocations != NULL
         && gchatd_revocations_add (self->paths->revocations, revocations,
                                    gchatd_user_record_get_name (record),
                                    g_get_real_time () / G_USEC_PER_SEC,
                                    GCHATD_TICKET_LIFETIME_S, error);
}

static gboolean
change_files (GchatdAdmin *self,
              ChangeKind   kind,
              const char  *name,
              const char  *password,
              GError     **error)
{
  g_autoptr (GchatdStoreLock) lock = NULL;
  g_autoptr (GMainContext) context = NULL;
  g_autoptr (GchatdUserStore) store = NULL;
  g_autoptr (GError) local_error = NULL;
  GchatArgon2Params params;
  gboolean ok;

  lock = gchatd_store_lock_acquire (self->paths->store, &local_error);
  if (lock == NULL && g_error_matches (local_error, GCHATD_ADMIN_ERROR, GCHATD_ADMIN_ERROR_LOCKED))
    {
      g_set_error (error, GCHATD_ADMIN_ERROR, GCHATD_ADMIN_ERROR_DAEMON_STUCK,
                   _("%s, yet no gchatd answers on “%s”. If gchatd is starting, try again in a "
                     "moment; if it is stuck, restart it"),
                   local_error->message, self->socket_path);
      return FALSE;
    }
  if (lock == NULL)
    {
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }

  if (kind == CHANGE_REVOKE)
    return revoke_in_files (self, name, error);
  gchat_config_get_argon2_params (self->config, &params);
  context = g_main_context_new ();
  g_main_context_push_thread_default (context);
  store = gchatd_user_store_new (self->paths->store, error);
  ok = store != NULL && change_store (store, context, kind, name, password, &params, error);
  g_clear_object (&store);
  if (ok && kind == CHANGE_REMOVE)
    ok = drop_mailbox (self, context, name, error);
  g_main_context_pop_thread_default (context);

  return ok;
}

/* Commands ------------------------------------------------------------------------------------ */

static gboolean
run_change (GchatdAdmin *self,
            ChangeKind   kind,
            const char  *name,
            const char  *password,
            GError     **error)
{
  static const char * const command_names[] = { "adduser", "passwd", "deluser", "revoke" };
  g_autoptr (JsonObject) request = NULL;
  g_autoptr (GPtrArray) answers = NULL;
  g_autoptr (GError) local_error = NULL;

  if (!gchatd_user_name_validate (name, error)
      || (password != NULL && !check_password (password, error)))
    return FALSE;

  request = request_new (command_names[kind], name, password);
  answers = daemon_request (self, request, &local_error);
  request_wipe (request);
  if (answers != NULL)
    return TRUE;
  if (!g_error_matches (local_error, GCHATD_ADMIN_ERROR, GCHATD_ADMIN_ERROR_NO_DAEMON))
    {
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }

  g_debug ("%s; working on the files", local_error->message);
  return change_files (self, kind, name, password, error);
}

gboolean
gchatd_admin_add_user (GchatdAdmin *self,
                       const char  *name,
                       const char  *password,
                       GError     **error)
{
  g_return_val_if_fail (GCHATD_IS_ADMIN (self), FALSE);
  g_return_val_if_fail (name != NULL && password != NULL, FALSE);

  return run_change (self, CHANGE_ADD, name, password, error);
}

gboolean
gchatd_admin_set_password (GchatdAdmin *self,
                           const char  *name,
                           const char  *password,
                           GError     **error)
{
  g_return_val_if_fail (GCHATD_IS_ADMIN (self), FALSE);
  g_return_val_if_fail (name != NULL && password != NULL, FALSE);

  return run_change (self, CHANGE_REPLACE, name, password, error);
}

gboolean
gchatd_admin_delete_user (GchatdAdmin *self,
                          const char  *name,
                          GError     **error)
{
  g_return_val_if_fail (GCHATD_IS_ADMIN (self), FALSE);
  g_return_val_if_fail (name != NULL, FALSE);

  return run_change (self, CHANGE_REMOVE, name, NULL, error);
}

gboolean
gchatd_admin_revoke_tickets (GchatdAdmin *self,
                             const char  *name,
                             GError     **error)
{
  g_return_val_if_fail (GCHATD_IS_ADMIN (self), FALSE);
  g_return_val_if_fail (name != NULL, FALSE);

  return run_change (self, CHANGE_REVOKE, name, NULL, error);
}

/* Sends a read-only request; NULL with no error when no gchatd answers. */
static GPtrArray *
daemon_read (GchatdAdmin *self,
             const char  *command,
             GError     **error)
{
  g_autoptr (JsonObject) request = request_new (command, NULL, NULL);
  g_autoptr (GError) local_error = NULL;
  GPtrArray *answers = daemon_request (self, request, &local_error);

  if (answers == NULL
      && !g_error_matches (local_error, GCHATD_ADMIN_ERROR, GCHATD_ADMIN_ERROR_NO_DAEMON))
    g_propagate_error (error, g_steal_pointer (&local_error));

  return answers;
}

static void
admin_user_clear (gpointer data)
{
  GchatdAdminUser *user = data;

  g_free (user->name);
}

static GArray *
users_new (void)
{
  GArray *users = g_array_new (FALSE, FALSE, sizeof (GchatdAdminUser));

  g_array_set_clear_func (users, admin_user_clear);
  return users;
}

/* Collects the users of the daemon's answers, checking each. */
static GArray *
users_from_answers (GPtrArray *answers,
                    GError   **error)
{
  g_autoptr (GArray) users = users_new ();

  for (guint i = 0; i < answers->len; i++)
    {
      JsonNode *node = json_object_get_member (g_ptr_array_index (answers, i), "users");
      JsonArray *array = node != NULL && JSON_NODE_HOLDS_ARRAY (node) ? json_node_get_array (node)
                                                                      : NULL;

      for (guint j = 0; array != NULL && j < json_array_get_length (array); j++)
        {
          JsonNode *element = json_array_get_element (array, j);
          JsonObject *object = JSON_NODE_HOLDS_OBJECT (element) ? json_node_get_object (element)
                                                                : NULL;
          const char *name = object != NULL ? json_object_get_string_member_with_default (
                                                object, "name", NULL)
                                            : NULL;
          GchatdAdminUser user = { 0 };

          if (name == NULL)
            return set_protocol_error (error, _("a user has no name"));
          user.name = g_strdup (name);
          user.created = json_object_get_int_member_with_default (object, "created", 0);
          g_array_append_val (users, user);
        }
      if (array == NULL)
        return set_protocol_error (error, _("the list of users is missing"));
    }

  return g_steal_pointer (&users);
}

GArray *
gchatd_admin_list_users (GchatdAdmin *self,
                         GError     **error)
{
  g_autoptr (GError) local_error = NULL;
  g_autoptr (GPtrArray) answers = NULL;
  g_autoptr (GchatdUserStore) store = NULL;
  g_autoptr (GPtrArray) records = NULL;
  GArray *users;

  g_return_val_if_fail (GCHATD_IS_ADMIN (self), NULL);

  answers = daemon_read (self, "users", &local_error);
  if (answers != NULL)
    return users_from_answers (answers, error);
  if (local_error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&local_error));
      return NULL;
    }

  /* Saves replace the file whole, so reading needs no lock. */
  store = gchatd_user_store_new (self->paths->store, error);
  if (store == NULL)
    return NULL;
  records = gchatd_user_store_dup_records (store);
  users = users_new ();
  for (guint i = 0; i < records->len; i++)
    {
      GchatdAdminUser user = { g_strdup (gchatd_user_record_get_name (records->pdata[i])),
                               gchatd_user_record_get_created (records->pdata[i]) };

      g_array_append_val (users, user);
    }

  return users;
}

char *
gchatd_admin_get_fingerprint (GchatdAdmin *self,
                              GError     **error)
{
  g_autoptr (GError) local_error = NULL;
  g_autoptr (GPtrArray) answers = NULL;
  g_autoptr (GchatRsaKey) key = NULL;
  const char *fingerprint;

  g_return_val_if_fail (GCHATD_IS_ADMIN (self), NULL);

  answers = daemon_read (self, "fingerprint", &local_error);
  if (answers != NULL)
    {
      fingerprint = json_object_get_string_member_with_default (answers->pdata[0], "fingerprint",
                                                                NULL);
      if (fingerprint == NULL)
        return set_protocol_error (error, _("the fingerprint is missing"));
      return g_strdup (fingerprint);
    }
  if (local_error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&local_error));
      return NULL;
    }

  key = gchat_rsa_key_load_public (self->paths->public_key, error);
  if (key == NULL)
    {
      g_prefix_error (error, _("No gchatd answers, and the server key cannot be read (gchatd "
                               "makes it at its first start): "));
      return NULL;
    }

  return gchat_rsa_key_get_fingerprint (key);
}
