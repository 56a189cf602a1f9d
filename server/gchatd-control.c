/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Serves gchatctl on a local Unix socket: one JSON request a line, answered once it is durable. */

/*
 * How gchatctl and a running gchatd lose no update from either side
 * -----------------------------------------------------------------
 *
 * gchatd owns the user database while it runs, and says so in two ways:
 *
 *  1. It holds an exclusive flock(2) on "<data_base>.lock" for its whole life
 *     (gchatd_store_lock_acquire()), and refuses to start while anyone else holds it.
 *  2. It answers on a control socket (this file), where gchatctl sends its commands, so that
 *     every change goes through the daemon's one GchatdUserStore and its batched, atomic saves.
 *
 * gchatctl first tries the socket. When nothing answers there, it takes the lock itself, edits
 * the files directly and lets go; if the lock is held but nothing answers, a gchatd is starting
 * or stuck (or another gchatctl is at work), and gchatctl stops with an error rather than edit
 * under it. Reading (`users`, `fingerprint`) without a daemon needs no lock: saves are atomic
 * renames, so a reader always sees a whole file.
 *
 * The socket
 * ----------
 * $XDG_RUNTIME_DIR/gchatd/control (see gchatd_paths_resolve() for the name used with a
 * data_base of one's own, and the fallback without $XDG_RUNTIME_DIR). Its folder is made 0700
 * and the socket 0600, and each connection's peer is checked with SO_PEERCRED: only the user
 * gchatd runs as, or root, is served. A stale socket left by a crash is removed at start; a
 * live one (another gchatd answers) stops the start.
 *
 * The protocol
 * ------------
 * One JSON object a line (UTF-8, "\n"-terminated) each way; one request is handled at a time
 * per connection. A request line is at most GCHATD_CONTROL_MAX_LINE bytes, and holds only
 * string members:
 *
 *   {"command":"adduser","user":"bob","password":"…"}   new account (hashed with Argon2id)
 *   {"command":"passwd","user":"bob","password":"…"}    new password for an account
 *   {"command":"deluser","user":"bob"}                  delete it, and drop its live session
 *   {"command":"revoke","user":"bob"}                   refuse its resumption tickets so far
 *   {"command":"users"}                                 list the accounts
 *   {"command":"fingerprint"}                           the server key's fingerprint
 *
 * Any request may add "store": the user database path the sender means; a gchatd serving
 * another one answers "other-store" and changes nothing. The answers:
 *
 *   {"ok":true}
 *   {"ok":true,"fingerprint":"3f2a 9c01 …"}
 *   {"ok":true,"users":[{"name":"bob","created":1700000000},…],"more":true}   (then more lines;
 *       the last has no "more"; at most GCHATD_CONTROL_USERS_PER_LINE accounts a line)
 *   {"ok":false,"code":"name-taken","message":"The user name “bob” is already taken"}
 *
 * Codes (gchatd_admin_error_to_code()): name-taken, invalid-name, invalid-password,
 * unknown-user, full, busy, io, other-store, bad-request, failed. adduser, passwd and deluser
 * are answered only once the change is durable (or has failed, leaving the file as it was).
 * A line that is too long, not UTF-8, not a flat JSON object or not a known request is
 * answered "bad-request" and the connection closed; so is a connection silent for
 * GCHATD_CONTROL_IDLE_TIMEOUT_S. Passwords are never logged, and wiped from the line buffer
 * and the parsed request once handed to the hasher.
 */

#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib/gi18n-lib.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "gchat-json.h"
#include "gchatd-admin.h"
#include "gchatd-control.h"

/* How much is read at a time, so that a flood of requests is taken in small bites. */
#define READ_CHUNK 4096

G_DEFINE_QUARK (gchatd-control-error-quark, gchatd_control_error)

typedef struct _Client Client;

struct _GchatdControl
{
  GObject               parent_instance;

  GchatdUserStore      *store;
  GchatdPasswordHasher *hasher;
  GchatArgon2Params     params;
  char                 *fingerprint;

  GSocketService       *service;
  char                 *socket_path;
  /* The socket file this control made, so that stop never deletes another's. */
  dev_t                 socket_dev;
  ino_t                 socket_ino;
  GPtrArray            *clients; /* Client, owned references */
};

enum {
  PROP_0,
  PROP_STORE,
  PROP_HASHER,
  PROP_FINGERPRINT,
  N_PROPS
};

enum {
  SIGNAL_USER_DELETED,
  SIGNAL_REVOKE_TICKETS,
  N_SIGNALS
};

static GParamSpec *properties[N_PROPS];
static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (GchatdControl, gchatd_control, G_TYPE_OBJECT)

/* Clients -------------------------------------------------------------------------------------- */

/* One control connection, reference-counted (g_rc_box): the control's list holds one, and so
 * does every operation under way. */
struct _Client
{
  /* NULL once closed. Not a reference: the control closes every client before it goes. */
  GchatdControl     *control;
  GSocketConnection *connection;
  GCancellable      *cancellable;
  GSource           *idle_timeout;
  GBytes            *reply;    /* the answer being written */
  gboolean           close_after_reply;
  /* Received bytes not handled yet. Fixed, so that no reallocation leaves a copy of a
   * password behind; wiped as lines are consumed. */
  gsize              filled;
  char               buffer[GCHATD_CONTROL_MAX_LINE];
};

static void client_process (Client *client);

static void
client_clear (gpointer data)
{
  Client *client = data;

  if (client->idle_timeout != NULL)
    g_source_destroy (client->idle_timeout);
  g_clear_pointer (&client->idle_timeout, g_source_unref);
  g_clear_pointer (&client->reply, g_bytes_unref);
  g_clear_object (&client->cancellable);
  g_clear_object (&client->connection);
  gchat_memzero (client->buffer, sizeof client->buffer);
}

static Client *
client_ref (Client *client)
{
  return g_rc_box_acquire (client);
}

static void
client_unref (Client *client)
{
  g_rc_box_release_full (client, client_clear);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Client, client_unref)

static void
client_stop_idle_timeout (Client *client)
{
  if (client->idle_timeout == NULL)
    return;
  g_source_destroy (client->idle_timeout);
  g_clear_pointer (&client->idle_timeout, g_source_unref);
}

/* Closes the connection at once: the peer sees the end, and what is still under way drops
 * its answer. The client itself goes with the last operation holding it. */
static void
client_close (Client *client)
{
  GchatdControl *control = client->control;

  if (control == NULL)
    return;

  client->control = NULL;
  g_cancellable_cancel (client->cancellable);
  client_stop_idle_timeout (client);
  g_socket_shutdown (g_socket_connection_get_socket (client->connection), TRUE, TRUE, NULL);
  /* Last: this may drop what was the last reference. */
  g_ptr_array_remove_fast (control->clients, client);
}

static gboolean
on_idle_timeout (gpointer user_data)
{
  Client *client = user_data;

  g_debug ("Closing a control connection idle for %d s", GCHATD_CONTROL_IDLE_TIMEOUT_S);
  g_clear_pointer (&client->idle_timeout, g_source_unref);
  client_close (client);

  return G_SOURCE_REMOVE;
}

static void
on_read (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  g_autoptr (Client) client = user_data;
  g_autoptr (GError) error = NULL;
  gssize n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &error);

  if (client->control == NULL)
    return;
  if (n <= 0)
    {
      if (n < 0)
        g_debug ("A control connection failed: %s", error->message);
      client_close (client);
      return;
    }

  client->filled += n;
  client_process (client);
}

/* Waits for more of a request; the idle deadline runs from the end of the last answer, and
 * bytes trickling in do not move it. */
static void
client_read (Client *client)
{
  GInputStream *input = g_io_stream_get_input_stream (G_IO_STREAM (client->connection));
  gsize room = sizeof client->buffer - client->filled;

  if (client->idle_timeout == NULL)
    {
      client->idle_timeout = g_timeout_source_new_seconds (GCHATD_CONTROL_IDLE_TIMEOUT_S);
      g_source_set_callback (client->idle_timeout, on_idle_timeout, client, NULL);
      g_source_set_static_name (client->idle_timeout, "[gchatd] control idle timeout");
      g_source_attach (client->idle_timeout, g_main_context_get_thread_default ());
    }

  g_input_stream_read_async (input, client->buffer + client->filled, MIN (room, READ_CHUNK),
                             G_PRIORITY_DEFAULT, client->cancellable, on_read,
                             client_ref (client));
}

static void
on_written (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  g_autoptr (Client) client = user_data;
  g_autoptr (GError) error = NULL;

  g_clear_pointer (&client->reply, g_bytes_unref);
  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, &error))
    {
      if (client->control != NULL)
        g_debug ("Could not answer on a control connection: %s", error->message);
      client_close (client);
      return;
    }
  if (client->control == NULL)
    return;
  if (client->close_after_reply)
    {
      client_close (client);
      return;
    }

  client_process (client);
}

/* Sends @text (one or more whole lines, taken) as the answer to the request being handled. */
static void
client_send (Client  *client,
             GString *text)
{
  GOutputStream *output = g_io_stream_get_output_stream (G_IO_STREAM (client->connection));

  g_assert (client->reply == NULL);
  client->reply = g_string_free_to_bytes (text);
  g_output_stream_write_all_async (output, g_bytes_get_data (client->reply, NULL),
                                   g_bytes_get_size (client->reply), G_PRIORITY_DEFAULT,
                                   client->cancellable, on_written, client_ref (client));
}

/* Answers: JSON ------------------------------------------------------------------------------- */

static void
append_line (GString    *text,
             JsonObject *object)
{
  g_autoptr (JsonNode) node = json_node_init_object (json_node_alloc (), object);
  g_autofree char *line = json_to_string (node, FALSE);

  g_string_append (text, line);
  g_string_append_c (text, '\n');
}

static JsonObject *
ok_object (void)
{
  JsonObject *object = json_object_new ();

  json_object_set_boolean_member (object, "ok", TRUE);
  return object;
}

static void
client_answer_ok (Client     *client,
                  JsonObject *object)
{
  GString *text = g_string_new (NULL);

  append_line (text, object);
  client_send (client, text);
}

static void
client_answer_error (Client       *client,
                     const GError *error)
{
  g_autoptr (JsonObject) object = json_object_new ();
  const char *code = gchatd_admin_error_to_code (error);
  GString *text = g_string_new (NULL);

  json_object_set_boolean_member (object, "ok", FALSE);
  json_object_set_string_member (object, "code", code);
  json_object_set_string_member (object, "message", error->message);
  append_line (text, object);
  /* A peer that does not speak the protocol gets one answer, then the end of the line. */
  client->close_after_reply = g_error_matches (error, GCHATD_ADMIN_ERROR,
                                               GCHATD_ADMIN_ERROR_PROTOCOL);
  client_send (client, text);
}

/* Requests that take a while ----------------------------------------------------------------- */

typedef enum {
  REQUEST_ADD,
  REQUEST_REPLACE,
  REQUEST_REMOVE,
} RequestKind;

/* A change under way. It holds the control, so that a change that completes after a stop is
 * still logged and (for deluser) still drops the session. */
typedef struct {
  RequestKind       kind;
  GchatdControl    *control;
  Client           *client;
  char             *name;
  GchatArgon2Params params;
} Request;

static Request *
request_new (Client      *client,
             RequestKind  kind,
             const char  *name)
{
  Request *request = g_new0 (Request, 1);

  request->kind = kind;
  request->control = g_object_ref (client->control);
  request->client = client_ref (client);
  request->name = g_strdup (name);
  request->params = client->control->params;

  return request;
}

static void
request_free (Request *request)
{
  g_object_unref (request->control);
  client_unref (request->client);
  g_free (request->name);
  g_free (request);
}

/* Logs the outcome (never a password: none is left by now), answers, and frees @request. */
static void
request_finish (Request      *request,
                const GError *error)
{
  static const char * const done[] = { "Added the user", "Changed the password of",
                                       "Deleted the user" };
  static const char * const failed[] = { "add the user", "change the password of",
                                         "delete the user" };

  if (error == NULL)
    g_message ("%s “%s” (gchatctl)", done[request->kind], request->name);
  else if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    g_message ("Could not %s “%s” for gchatctl: %s", failed[request->kind], request->name,
               error->message);

  if (request->client->control != NULL)
    {
      if (error == NULL)
        {
          g_autoptr (JsonObject) object = ok_object ();

          client_answer_ok (request->client, object);
        }
      else
        client_answer_error (request->client, error);
    }

  request_free (request);
}

static void
on_stored (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  Request *request = user_data;
  GchatdUserStore *store = GCHATD_USER_STORE (source);
  g_autoptr (GError) error = NULL;
  gboolean ok;

  if (request->kind == REQUEST_ADD)
    ok = gchatd_user_store_add_finish (store, result, &error);
  else if (request->kind == REQUEST_REPLACE)
    ok = gchatd_user_store_replace_finish (store, result, &error);
  else
    ok = gchatd_user_store_remove_finish (store, result, &error);

  /* Before the answer, so that when gchatctl says "deleted" the session is gone too. */
  if (ok && request->kind == REQUEST_REMOVE)
    g_signal_emit (request->control, signals[SIGNAL_USER_DELETED], 0, request->name);

  request_finish (request, error);
}

static void
on_hashed (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  Request *request = user_data;
  GchatdUserStore *store = request->control->store;
  GCancellable *cancellable = request->client->cancellable;
  guint8 salt[GCHATD_PASSWORD_HASHER_SALT_SIZE];
  guint8 hash[GCHATD_PASSWORD_HASHER_HASH_SIZE];
  g_autoptr (GError) error = NULL;

  G_STATIC_ASSERT (sizeof salt == GCHATD_USER_SALT_SIZE && sizeof hash == GCHATD_USER_HASH_SIZE);

  if (!gchatd_password_hasher_hash_finish (GCHATD_PASSWORD_HASHER (source), result, salt, hash,
                                           &error))
    {
      request_finish (request, error);
      return;
    }

  /* The client's cancellable: a change whose gchatctl went away before it was queued is
   * dropped; once queued, it completes. */
  if (request->kind == REQUEST_ADD)
    gchatd_user_store_add_async (store, request->name, &request->params, salt, sizeof salt, hash,
                                 sizeof hash, cancellable, on_stored, request);
  else
    gchatd_user_store_replace_async (store, request->name, &request->params, salt, sizeof salt,
                                     hash, sizeof hash, cancellable, on_stored, request);
  gchat_memzero (hash, sizeof hash);
}

/* Commands ------------------------------------------------------------------------------------ */

/* adduser and passwd: hash, then add or replace. Name and password are checked here so that
 * a bad one costs no hash; whether the name is taken or known, the store decides. */
static void
handle_hash_command (Client      *client,
                     JsonObject  *object,
                     RequestKind  kind)
{
  GchatdControl *self = client->control;
  const char *name = json_object_get_string_member (object, "user");
  /* json-glib's own copy, wiped below once the hasher took its own. */
  char *password = (char *) json_object_get_string_member (object, "password");
  gsize len = strlen (password);
  g_autoptr (GError) error = NULL;
  Request *request;

  if (!gchatd_user_name_validate (name, &error) || !gchatd_password_validate (password, len,
                                                                              &error))
    {
      gchat_memzero (password, len);
      client_answer_error (client, error);
      return;
    }

  request = request_new (client, kind, name);
  gchatd_password_hasher_hash_async (self->hasher, &request->params, password, len,
                                     client->cancellable, on_hashed, request);
  gchat_memzero (password, len);
}

static void
handle_adduser (Client     *client,
                JsonObject *object)
{
  handle_hash_command (client, object, REQUEST_ADD);
}

static void
handle_passwd (Client     *client,
               JsonObject *object)
{
  handle_hash_command (client, object, REQUEST_REPLACE);
}

static void
handle_deluser (Client     *client,
                JsonObject *object)
{
  GchatdControl *self = client->control;
  const char *name = json_object_get_string_member (object, "user");
  g_autoptr (GchatdUserRecord) record = gchatd_user_store_lookup (self->store, name);
  Request *request;

  /* The signal names the account as stored, whatever case gchatctl was given. */
  request = request_new (client, REQUEST_REMOVE,
                         record != NULL ? gchatd_user_record_get_name (record) : name);
  gchatd_user_store_remove_async (self->store, name, client->cancellable, on_stored, request);
}

/* The server keeps the revocations (it checks them at every resumption): it saves them in its
 * "revoke-tickets" handler, which reports a failure in the GError it is given. */
static void
handle_revoke (Client     *client,
               JsonObject *object)
{
  GchatdControl *self = client->control;
  const char *name = json_object_get_string_member (object, "user");
  g_autoptr (GchatdUserRecord) record = gchatd_user_store_lookup (self->store, name);
  g_autoptr (JsonObject) answer = NULL;
  g_autoptr (GError) error = NULL;
  gboolean done = FALSE;

  if (record == NULL)
    error = g_error_new (GCHATD_USER_STORE_ERROR, GCHATD_USER_STORE_ERROR_UNKNOWN_USER,
                         _("There is no account “%s”"), name);
  else
    g_signal_emit (self, signals[SIGNAL_REVOKE_TICKETS], 0,
                   gchatd_user_record_get_name (record), &error, &done);
  if (!done && error == NULL)
    error = g_error_new_literal (GCHATD_ADMIN_ERROR, GCHATD_ADMIN_ERROR_FAILED,
                                 _("This gchatd does not keep resumption tickets"));
  if (error != NULL)
    {
      g_message ("Could not revoke the tickets of “%s” for gchatctl: %s", name, error->message);
      client_answer_error (client, error);
      return;
    }
  g_message ("Revoked the resumption tickets of “%s” (gchatctl)",
             gchatd_user_record_get_name (record));
  answer = ok_object ();
  client_answer_ok (client, answer);
}

static void
handle_users (Client     *client,
              JsonObject *object)
{
  g_autoptr (GPtrArray) records = gchatd_user_store_dup_records (client->control->store);
  GString *text = g_string_new (NULL);
  guint i = 0;

  do
    {
      g_autoptr (JsonObject) line = ok_object ();
      g_autoptr (JsonArray) users = json_array_new ();
      guint end = MIN (records->len, i + GCHATD_CONTROL_USERS_PER_LINE);

      for (; i < end; i++)
        {
          g_autoptr (JsonObject) user = json_object_new ();
          GchatdUserRecord *record = g_ptr_array_index (records, i);

          json_object_set_string_member (user, "name", gchatd_user_record_get_name (record));
          json_object_set_int_member (user, "created", gchatd_user_record_get_created (record));
          json_array_add_object_element (users, g_steal_pointer (&user));
        }
      json_object_set_array_member (line, "users", g_steal_pointer (&users));
      if (i < records->len)
        json_object_set_boolean_member (line, "more", TRUE);
      append_line (text, line);
    }
  while (i < records->len);

  client_send (client, text);
}

static void
handle_fingerprint (Client     *client,
                    JsonObject *object)
{
  g_autoptr (JsonObject) answer = ok_object ();

  json_object_set_string_member (answer, "fingerprint", client->control->fingerprint);
  client_answer_ok (client, answer);
}

typedef void (*CommandHandler) (Client     *client,
                                JsonObject *object);

typedef struct {
  const char    *name;
  gboolean       takes_user;
  gboolean       takes_password;
  CommandHandler handle;
} Command;

static const Command commands[] = {
  { "adduser", TRUE, TRUE, handle_adduser },
  { "passwd", TRUE, TRUE, handle_passwd },
  { "deluser", TRUE, FALSE, handle_deluser },
  { "revoke", TRUE, FALSE, handle_revoke },
  { "users", FALSE, FALSE, handle_users },
  { "fingerprint", FALSE, FALSE, handle_fingerprint },
};

/* Parsing requests ---------------------------------------------------------------------------- */

static gboolean
set_bad_request (GError    **error,
                 const char *detail)
{
  g_set_error (error, GCHATD_ADMIN_ERROR, GCHATD_ADMIN_ERROR_PROTOCOL,
               _("Not a gchatd control request: %s"), detail);
  return FALSE;
}

/* Checks that every member is a known one holding a string, and that @command has the members
 * it needs and no others. */
static gboolean
check_members (JsonObject    *object,
               const Command *command,
               GError       **error)
{
  static const char * const known[] = { "command", "user", "password", "store", NULL };
  g_autoptr (GList) members = json_object_get_members (object);

  for (const GList *l = members; l != NULL; l = l->next)
    {
      JsonNode *node = json_object_get_member (object, l->data);

      if (!g_strv_contains (known, l->data))
        return set_bad_request (error, _("it has an unknown member"));
      if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
        return set_bad_request (error, _("a member is not a string"));
    }
  if (json_object_has_member (object, "user") != command->takes_user
      || json_object_has_member (object, "password") != command->takes_password)
    return set_bad_request (error, _("the command lacks a member or has one too many"));

  return TRUE;
}

/* Finds the command a request object names and checks its members. */
static const Command *
find_command (JsonObject *object,
              GError    **error)
{
  JsonNode *node = json_object_get_member (object, "command");
  const char *name;

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_STRING)
    {
      set_bad_request (error, _("it names no command"));
      return NULL;
    }

  name = json_node_get_string (node);
  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
    if (strcmp (commands[i].name, name) == 0)
      return check_members (object, &commands[i], error) ? &commands[i] : NULL;

  set_bad_request (error, _("the command is unknown"));
  return NULL;
}

/* Parses one request line into @parser as strict JSON, nested one level at most (requests are
 * flat), and puts the request object in @object. A request refused for naming a member twice
 * still has its object put there, so that the caller wipes the password it may hold. */
static gboolean
parse_request (JsonParser  *parser,
               const char  *line,
               gsize        len,
               JsonObject **object,
               GError     **error)
{
  g_autoptr (GError) json_error = NULL;
  gboolean parsed = gchat_json_parse (parser, line, len, 1, 0, NULL, &json_error);
  JsonNode *root = json_parser_get_root (parser);

  if (root != NULL && JSON_NODE_HOLDS_OBJECT (root))
    *object = json_node_get_object (root);
  if (g_error_matches (json_error, GCHAT_JSON_ERROR, GCHAT_JSON_ERROR_ENCODING))
    return set_bad_request (error, _("it is not UTF-8 text"));
  if (g_error_matches (json_error, GCHAT_JSON_ERROR, GCHAT_JSON_ERROR_DUPLICATE_MEMBER))
    return set_bad_request (error, _("it names a member twice"));
  if (!parsed)
    return set_bad_request (error, _("it is not a flat JSON object"));
  if (*object == NULL)
    return set_bad_request (error, _("it is not a JSON object"));

  return TRUE;
}

/* A request meant for another user database (another gchatd's) changes nothing here. */
static gboolean
check_store (GchatdControl *self,
             JsonObject    *object,
             GError       **error)
{
  const char *ours = gchatd_user_store_get_path (self->store);
  const char *theirs = json_object_get_string_member_with_default (object, "store", NULL);

  if (theirs == NULL || strcmp (theirs, ours) == 0)
    return TRUE;

  g_set_error (error, GCHATD_ADMIN_ERROR, GCHATD_ADMIN_ERROR_OTHER_STORE,
               _("This gchatd serves the user database “%s”, not “%s”"), ours, theirs);
  return FALSE;
}

static void
handle_line (Client     *client,
             const char *line,
             gsize       len)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;
  const Command *command = NULL;
  JsonObject *object = NULL;

  if (parse_request (parser, line, len, &object, &error))
    command = find_command (object, &error);
  if (command != NULL && check_store (client->control, object, &error))
    command->handle (client, object);
  else
    {
      if (g_error_matches (error, GCHATD_ADMIN_ERROR, GCHATD_ADMIN_ERROR_PROTOCOL))
        g_message ("Closing a control connection: %s", error->message);
      client_answer_error (client, error);
    }

  /* A request that failed before its handler could still hold a password. */
  if (object != NULL && json_object_has_member (object, "password")
      && json_node_get_value_type (json_object_get_member (object, "password")) == G_TYPE_STRING)
    {
      char *password = (char *) json_object_get_string_member (object, "password");

      gchat_memzero (password, strlen (password));
    }
}

/* Handles the next complete line, if any; otherwise reads on, or gives up on a line too long.
 * One request at a time: the next is looked at once this one is answered. */
static void
client_process (Client *client)
{
  char *newline = memchr (client->buffer, '\n', client->filled);
  gsize consumed;

  if (newline == NULL)
    {
      g_autoptr (GError) error = NULL;

      if (client->filled < sizeof client->buffer)
        {
          client_read (client);
          return;
        }
      client_stop_idle_timeout (client);
      set_bad_request (&error, _("the line is too long"));
      g_message ("Closing a control connection: %s", error->message);
      client_answer_error (client, error);
      return;
    }

  client_stop_idle_timeout (client);
  handle_line (client, client->buffer, newline - client->buffer);

  consumed = newline - client->buffer + 1;
  memmove (client->buffer, newline + 1, client->filled - consumed);
  client->filled -= consumed;
  gchat_memzero (client->buffer + client->filled, consumed);
}

static Client *
client_new (GchatdControl     *control,
            GSocketConnection *connection)
{
  Client *client = g_rc_box_new0 (Client);

  client->control = control;
  client->connection = g_object_ref (connection);
  client->cancellable = g_cancellable_new ();

  return client;
}

/* Listening ----------------------------------------------------------------------------------- */

/* Only the user gchatd runs as, and root, may change its accounts. */
static gboolean
peer_allowed (GSocketConnection *connection)
{
  GSocket *socket = g_socket_connection_get_socket (connection);
  g_autoptr (GCredentials) credentials = NULL;
  g_autoptr (GError) error = NULL;
  uid_t uid;

  credentials = g_socket_get_credentials (socket, &error);
  if (credentials == NULL)
    {
      g_message ("Refused a control connection whose peer is unknown: %s", error->message);
      return FALSE;
    }
  uid = g_credentials_get_unix_user (credentials, &error);
  if (uid == (uid_t) -1)
    {
      g_message ("Refused a control connection whose peer is unknown: %s", error->message);
      return FALSE;
    }
  if (uid != getuid () && uid != 0)
    {
      g_message ("Refused a control connection from user %u: only user %u and root may use it",
                 (guint) uid, (guint) getuid ());
      return FALSE;
    }

  return TRUE;
}

static gboolean
on_incoming (GSocketService    *service,
             GSocketConnection *connection,
             GObject           *source_object,
             gpointer           user_data)
{
  GchatdControl *self = user_data;
  Client *client;

  /* A refused connection is closed when the service drops it, right after this returns. */
  if (!peer_allowed (connection))
    return TRUE;
  if (self->clients->len >= GCHATD_CONTROL_MAX_CLIENTS)
    {
      /* Said, not just dropped: gchatctl asks again in a moment. The line is tiny and the
       * socket new, so this write does not block. */
      static const char busy[] = "{\"ok\":false,\"code\":\"busy\",\"message\":\"gchatd is "
                                 "serving other administrators; try again\"}\n";
      GOutputStream *output = g_io_stream_get_output_stream (G_IO_STREAM (connection));

      g_output_stream_write_all (output, busy, sizeof busy - 1, NULL, NULL, NULL);
      g_debug ("Refused a control connection: %d are open already", GCHATD_CONTROL_MAX_CLIENTS);
      return TRUE;
    }

  client = client_new (self, connection);
  g_ptr_array_add (self->clients, client);
  client_read (client);

  return TRUE;
}

static gboolean
set_socket_error (GError    **error,
                  const char *path,
                  const char *detail)
{
  g_set_error (error, GCHATD_CONTROL_ERROR, GCHATD_CONTROL_ERROR_SOCKET,
               _("Cannot make the control socket “%s”: %s"), path, detail);
  return FALSE;
}

/* Makes the socket's folder 0700, or checks that it is a folder of ours and tightens it. */
static gboolean
prepare_folder (const char *path,
                GError    **error)
{
  g_autofree char *folder = g_path_get_dirname (path);
  struct stat st;

  if (g_mkdir_with_parents (folder, 0700) != 0 || lstat (folder, &st) != 0)
    return set_socket_error (error, path, g_strerror (errno));
  if (!S_ISDIR (st.st_mode) || st.st_uid != getuid ())
    return set_socket_error (error, path, _("its folder is not a folder of this user"));
  if ((st.st_mode & 0077) != 0)
    {
      if (chmod (folder, 0700) != 0)
        return set_socket_error (error, path, g_strerror (errno));
      g_message ("Made the folder “%s” private to its owner (it was %04o)", folder,
                 (guint) (st.st_mode & 07777));
    }

  return TRUE;
}

/* Whether something listens on the socket at @path. Without blocking: a listener whose queue
 * is full (a gchatd that is stuck) counts as one. */
static gboolean
socket_answers (const char *path)
{
  g_autoptr (GSocket) socket = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM,
                                             G_SOCKET_PROTOCOL_DEFAULT, NULL);
  g_autoptr (GSocketAddress) address = g_unix_socket_address_new (path);
  g_autoptr (GError) error = NULL;

  if (socket == NULL)
    return FALSE;
  g_socket_set_blocking (socket, FALSE);
  if (g_socket_connect (socket, address, NULL, &error))
    return TRUE;

  return g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)
         || g_error_matches (error, G_IO_ERROR, G_IO_ERROR_PENDING);
}

/* Removes a socket left by a gchatd that crashed; refuses to touch anything else. */
static gboolean
clear_stale_socket (const char *path,
                    GError    **error)
{
  struct stat st;

  if (lstat (path, &st) != 0)
    return errno == ENOENT ? TRUE : set_socket_error (error, path, g_strerror (errno));
  if (!S_ISSOCK (st.st_mode))
    return set_socket_error (error, path, _("something else is in its place; remove it"));
  if (socket_answers (path))
    {
      g_set_error (error, GCHATD_CONTROL_ERROR, GCHATD_CONTROL_ERROR_IN_USE,
                   _("Another gchatd already answers on the control socket “%s”"), path);
      return FALSE;
    }
  if (g_unlink (path) != 0 && errno != ENOENT)
    return set_socket_error (error, path, g_strerror (errno));

  return TRUE;
}

static gboolean
listen_on (GchatdControl *self,
           const char    *path,
           GError       **error)
{
  g_autoptr (GSocketService) service = g_socket_service_new ();
  g_autoptr (GSocketAddress) address = g_unix_socket_address_new (path);
  g_autoptr (GError) local_error = NULL;
  struct stat st;

  g_socket_listener_set_backlog (G_SOCKET_LISTENER (service), GCHATD_CONTROL_MAX_CLIENTS);
  if (!g_socket_listener_add_address (G_SOCKET_LISTENER (service), address,
                                      G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT, NULL,
                                      NULL, &local_error))
    return set_socket_error (error, path, local_error->message);

  /* The folder is 0700 already; this is so the socket says the same on its own. */
  if (chmod (path, 0600) != 0 || lstat (path, &st) != 0)
    {
      int saved_errno = errno;

      g_socket_listener_close (G_SOCKET_LISTENER (service));
      g_unlink (path);
      return set_socket_error (error, path, g_strerror (saved_errno));
    }

  self->socket_dev = st.st_dev;
  self->socket_ino = st.st_ino;
  g_signal_connect (service, "incoming", G_CALLBACK (on_incoming), self);
  g_socket_service_start (service);
  self->service = g_steal_pointer (&service);

  return TRUE;
}

gboolean
gchatd_control_start (GchatdControl *self,
                      const char    *socket_path,
                      GError       **error)
{
  struct sockaddr_un sun;

  g_return_val_if_fail (GCHATD_IS_CONTROL (self), FALSE);
  g_return_val_if_fail (socket_path != NULL, FALSE);
  g_return_val_if_fail (self->service == NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (strlen (socket_path) >= sizeof sun.sun_path)
    return set_socket_error (error, socket_path,
                             _("the path is too long for a socket; set XDG_RUNTIME_DIR"));
  if (!prepare_folder (socket_path, error) || !clear_stale_socket (socket_path, error)
      || !listen_on (self, socket_path, error))
    return FALSE;

  self->socket_path = g_strdup (socket_path);
  g_debug ("Control socket at %s", socket_path);
  return TRUE;
}

/* Deletes the socket file if it is still the one this control made. */
static void
remove_socket_file (GchatdControl *self)
{
  struct stat st;

  if (lstat (self->socket_path, &st) == 0 && st.st_dev == self->socket_dev
      && st.st_ino == self->socket_ino)
    g_unlink (self->socket_path);
}

void
gchatd_control_stop (GchatdControl *self)
{
  g_return_if_fail (GCHATD_IS_CONTROL (self));

  if (self->service != NULL)
    {
      g_socket_service_stop (self->service);
      g_socket_listener_close (G_SOCKET_LISTENER (self->service));
      g_signal_handlers_disconnect_by_data (self->service, self);
      g_clear_object (&self->service);
      remove_socket_file (self);
      g_clear_pointer (&self->socket_path, g_free);
    }

  while (self->clients->len > 0)
    client_close (g_ptr_array_index (self->clients, self->clients->len - 1));
}

guint
gchatd_control_get_n_clients (GchatdControl *self)
{
  g_return_val_if_fail (GCHATD_IS_CONTROL (self), 0);

  return self->clients->len;
}

void
gchatd_control_set_argon2_params (GchatdControl           *self,
                                  const GchatArgon2Params *params)
{
  g_return_if_fail (GCHATD_IS_CONTROL (self));
  g_return_if_fail (params != NULL);

  self->params = *params;
}

/* The object ---------------------------------------------------------------------------------- */

static void
gchatd_control_dispose (GObject *object)
{
  GchatdControl *self = GCHATD_CONTROL (object);

  gchatd_control_stop (self);
  g_clear_object (&self->store);
  g_clear_object (&self->hasher);

  G_OBJECT_CLASS (gchatd_control_parent_class)->dispose (object);
}

static void
gchatd_control_finalize (GObject *object)
{
  GchatdControl *self = GCHATD_CONTROL (object);

  g_ptr_array_unref (self->clients);
  g_free (self->fingerprint);

  G_OBJECT_CLASS (gchatd_control_parent_class)->finalize (object);
}

static void
gchatd_control_get_property (GObject    *object,
                             guint       prop_id,
                             GValue     *value,
                             GParamSpec *pspec)
{
  GchatdControl *self = GCHATD_CONTROL (object);

  switch (prop_id)
    {
    case PROP_STORE:
      g_value_set_object (value, self->store);
      break;
    case PROP_HASHER:
      g_value_set_object (value, self->hasher);
      break;
    case PROP_FINGERPRINT:
      g_value_set_string (value, self->fingerprint);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
gchatd_control_set_property (GObject      *object,
                             guint         prop_id,
                             const GValue *value,
                             GParamSpec   *pspec)
{
  GchatdControl *self = GCHATD_CONTROL (object);

  switch (prop_id)
    {
    case PROP_STORE:
      self->store = g_value_dup_object (value);
      break;
    case PROP_HASHER:
      self->hasher = g_value_dup_object (value);
      break;
    case PROP_FINGERPRINT:
      self->fingerprint = g_value_dup_string (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
gchatd_control_class_init (GchatdControlClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = gchatd_control_dispose;
  object_class->finalize = gchatd_control_finalize;
  object_class->get_property = gchatd_control_get_property;
  object_class->set_property = gchatd_control_set_property;

  properties[PROP_STORE] =
    g_param_spec_object ("store", NULL, NULL, GCHATD_TYPE_USER_STORE,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  properties[PROP_HASHER] =
    g_param_spec_object ("hasher", NULL, NULL, GCHATD_TYPE_PASSWORD_HASHER,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  properties[PROP_FINGERPRINT] =
    g_param_spec_string ("fingerprint", NULL, NULL, "",
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  signals[SIGNAL_USER_DELETED] =
    g_signal_new ("user-deleted", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                  NULL, G_TYPE_NONE, 1, G_TYPE_STRING);
  /* "revoke-tickets" (const char *name, GError **error) → gboolean: whether the handler
   * revoked them; FALSE with @error set when it could not save that. */
  signals[SIGNAL_REVOKE_TICKETS] =
    g_signal_new ("revoke-tickets", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  g_signal_accumulator_first_wins, NULL, NULL, G_TYPE_BOOLEAN, 2,
                  G_TYPE_STRING, G_TYPE_POINTER);
}

static void
gchatd_control_init (GchatdControl *self)
{
  self->clients = g_ptr_array_new_with_free_func ((GDestroyNotify) client_unref);
  gchat_argon2_params_init_default (&self->params);
}

GchatdControl *
gchatd_control_new (GchatdUserStore         *store,
                    GchatdPasswordHasher    *hasher,
                    const GchatArgon2Params *params,
                    const char              *fingerprint)
{
  GchatdControl *self;

  g_return_val_if_fail (GCHATD_IS_USER_STORE (store), NULL);
  g_return_val_if_fail (GCHATD_IS_PASSWORD_HASHER (hasher), NULL);
  g_return_val_if_fail (params != NULL, NULL);
  g_return_val_if_fail (fingerprint != NULL, NULL);

  self = g_object_new (GCHATD_TYPE_CONTROL, "store", store, "hasher", hasher, "fingerprint",
                       fingerprint, NULL);
  self->params = *params;

  return self;
}
