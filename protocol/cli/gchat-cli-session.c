/* SPDX-License-Identifier: GPL-3.0-or-later */
/* gchat-cli's run: commands from a stream, in order, to a GchatClient, and its events out. */

#include "config.h"

#include <string.h>

#include <glib/gi18n-lib.h>

#include "gchat-crypto.h"
#include "gchat-cli-command.h"
#include "gchat-cli-line-reader.h"
#include "gchat-cli-session.h"

struct _GchatCliSession
{
  GObject             parent_instance;

  GchatClient        *client;
  GchatCliOutput     *output;
  GchatCliLineReader *reader;
  GCancellable       *cancellable; /* the reading of commands */
  GMainLoop          *loop;

  /* Our messages without a final state (queued, delivered or failed) yet, by id. */
  GHashTable         *pending;
  /* Ids that reached a final state during gchat_client_send(), before it returned them. */
  GHashTable         *settled_early;
  gboolean            in_send;
  /* The users shown online, so that each change of the client's list is shown once. */
  GHashTable         *online;

  gboolean            busy;       /* a command is running: the next line waits */
  gboolean            logging_in; /* presence is shown after the log-in result */
  gboolean            stopping;
  gboolean            draining;
  guint               drain_id;
  guint               logout_id;
  int                 status;
};

G_DEFINE_FINAL_TYPE (GchatCliSession, gchat_cli_session, G_TYPE_OBJECT)

static void read_next (GchatCliSession *self);
static void drain     (GchatCliSession *self);

static guint
id_hash (gconstpointer key)
{
  return g_int64_hash (key);
}

static gboolean
id_equal (gconstpointer a,
          gconstpointer b)
{
  return *(const guint64 *) a == *(const guint64 *) b;
}

static GHashTable *
id_set_new (void)
{
  return g_hash_table_new_full (id_hash, id_equal, g_free, NULL);
}

static void
id_set_add (GHashTable *set,
            guint64     id)
{
  g_hash_table_add (set, g_memdup2 (&id, sizeof id));
}

static void
gchat_cli_session_dispose (GObject *object)
{
  GchatCliSession *self = GCHAT_CLI_SESSION (object);

  if (self->client != NULL)
    {
      g_signal_handlers_disconnect_by_data (self->client, self);
      g_signal_handlers_disconnect_by_data (gchat_client_get_online_users (self->client), self);
    }
  g_cancellable_cancel (self->cancellable);
  g_clear_handle_id (&self->drain_id, g_source_remove);
  g_clear_handle_id (&self->logout_id, g_source_remove);
  g_clear_object (&self->client);
  g_clear_object (&self->reader);
  g_clear_object (&self->cancellable);
  G_OBJECT_CLASS (gchat_cli_session_parent_class)->dispose (object);
}

static void
gchat_cli_session_finalize (GObject *object)
{
  GchatCliSession *self = GCHAT_CLI_SESSION (object);

  g_clear_pointer (&self->output, gchat_cli_output_free);
  g_clear_pointer (&self->loop, g_main_loop_unref);
  g_clear_pointer (&self->pending, g_hash_table_unref);
  g_clear_pointer (&self->settled_early, g_hash_table_unref);
  g_clear_pointer (&self->online, g_hash_table_unref);
  G_OBJECT_CLASS (gchat_cli_session_parent_class)->finalize (object);
}

static void
gchat_cli_session_class_init (GchatCliSessionClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = gchat_cli_session_dispose;
  object_class->finalize = gchat_cli_session_finalize;
}

static void
gchat_cli_session_init (GchatCliSession *self)
{
  self->cancellable = g_cancellable_new ();
  self->loop = g_main_loop_new (NULL, FALSE);
  self->pending = id_set_new ();
  self->settled_early = id_set_new ();
  self->online = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
}

/* Presence */

/* Shows the changes between what was shown and the client's list of users online. */
static void
sync_presence (GchatCliSession *self)
{
  GListModel *model = gchat_client_get_online_users (self->client);
  g_autoptr(GHashTable) now = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  GHashTableIter iter;
  gpointer name;
  guint n = model != NULL ? g_list_model_get_n_items (model) : 0;

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(GchatOnlineUser) user = g_list_model_get_item (model, i);
      const char *user_name = gchat_online_user_get_name (user);

      g_hash_table_add (now, g_strdup (user_name));
      if (!g_hash_table_contains (self->online, user_name))
        gchat_cli_output_presence (self->output, user_name, TRUE);
    }
  g_hash_table_iter_init (&iter, self->online);
  while (g_hash_table_iter_next (&iter, &name, NULL))
    {
      if (!g_hash_table_contains (now, name))
        gchat_cli_output_presence (self->output, name, FALSE);
    }
  g_clear_pointer (&self->online, g_hash_table_unref);
  self->online = g_steal_pointer (&now);
}

/* The client's list of users online is the one source of presence: it also holds those who
 * were online before the log-in, which no "presence" signal announces. */
static void
online_changed_cb (GListModel *model,
                   guint       position,
                   guint       removed,
                   guint       added,
                   gpointer    user_data)
{
  GchatCliSession *self = user_data;

  /* The log-in result comes first, and the list emptied by a log-out is no news. */
  if (self->logging_in || self->stopping
      || gchat_client_get_state (self->client) != GCHAT_CLIENT_STATE_ONLINE)
    return;
  sync_presence (self);
}

static void
state_cb (GObject    *object,
          GParamSpec *pspec,
          gpointer    user_data)
{
  GchatCliSession *self = user_data;
  GchatClientState state = gchat_client_get_state (self->client);

  gchat_cli_output_state (self->output, state, gchat_client_get_state_reason (self->client));
  if (state == GCHAT_CLIENT_STATE_ONLINE && !self->logging_in)
    sync_presence (self);
  else if (state == GCHAT_CLIENT_STATE_OFFLINE)
    g_hash_table_remove_all (self->online);
}

/* Messages */

static void
message_cb (GchatClient     *client,
            const char      *from,
            const char      *text,
            GchatClientPath  path,
            guint64          id,
            gint64           sent_unix,
            gpointer         user_data)
{
  GchatCliSession *self = user_data;

  gchat_cli_output_message (self->output, from, text, path, id);
}

static void
delivery_cb (GchatClient        *client,
             guint64             id,
             const char         *to,
             GchatDeliveryState  state,
             GchatClientPath     path,
             const GError       *error,
             gpointer            user_data)
{
  GchatCliSession *self = user_data;

  /* "sending" is where every message starts: not news to the one who sent it. */
  if (state == GCHAT_DELIVERY_SENDING)
    return;
  gchat_cli_output_sent (self->output, id, to, state, path, error);
  if (!g_hash_table_remove (self->pending, &id) && self->in_send)
    id_set_add (self->settled_early, id);
  if (self->draining && g_hash_table_size (self->pending) == 0)
    drain (self);
}

/* Commands */

/* A command that ran asynchronously is over: the next line, or the end. */
static void
command_done (GchatCliSession *self)
{
  self->busy = FALSE;
  if (self->stopping)
    drain (self);
  else
    read_next (self);
}

static char *
server_key_message (GchatCliSession *self,
                    const GError    *error)
{
  const char *seen = gchat_client_get_server_fingerprint (self->client);
  const char *pinned = gchat_client_get_pinned_fingerprint (self->client);

  if (seen == NULL)
    return g_strdup (error->message);
  if (g_error_matches (error, GCHAT_CLIENT_ERROR, GCHAT_CLIENT_ERROR_SERVER_KEY_UNKNOWN))
    return g_strdup_printf (_("The server’s key is not known yet; its fingerprint is %s. If that is "
                              "your server’s, type “trust %s” and log in again (or start "
                              "gchat-cli with --server-key FILE or --accept-new-server-key)"),
                            seen, seen);
  return g_strdup_printf (_("The server’s key is not the one pinned for it: it shows %s, but %s "
                            "was pinned, so someone may be in between. Only if the server’s "
                            "administrator confirms the new key, type “trust %s” and log in "
                            "again"),
                          seen, pinned != NULL ? pinned : "?", seen);
}

typedef struct {
  GchatCliSession *session;
  char            *user;
  gboolean         sign;
} LoginData;

static void
login_data_free (LoginData *data)
{
  g_object_unref (data->session);
  g_free (data->user);
  g_free (data);
}

static void
report_login_error (GchatCliSession *self,
                    const GError    *error)
{
  g_autofree char *message = NULL;

  if (!g_error_matches (error, GCHAT_CLIENT_ERROR, GCHAT_CLIENT_ERROR_SERVER_KEY_UNKNOWN)
      && !g_error_matches (error, GCHAT_CLIENT_ERROR, GCHAT_CLIENT_ERROR_SERVER_KEY_CHANGED))
    return;
  message = server_key_message (self, error);
  gchat_cli_output_error (self->output, message,
                          gchat_client_get_server_fingerprint (self->client));
}

static void
login_cb (GObject      *source,
          GAsyncResult *result,
          gpointer      user_data)
{
  LoginData *data = user_data;
  GchatCliSession *self = data->session;
  g_autoptr(GError) error = NULL;
  const char *user = data->user;
  guint retry_after = 0;

  if (data->sign)
    gchat_client_sign_finish (self->client, result, &error);
  else
    gchat_client_auth_finish (self->client, result, &error);
  self->logging_in = FALSE;

  if (error == NULL && gchat_client_get_user (self->client) != NULL)
    user = gchat_client_get_user (self->client);
  if (g_error_matches (error, GCHAT_CLIENT_ERROR, GCHAT_CLIENT_ERROR_THROTTLED)
      || g_error_matches (error, GCHAT_CLIENT_ERROR, GCHAT_CLIENT_ERROR_BUSY))
    retry_after = gchat_client_get_retry_after (self->client);
  if (error != NULL)
    report_login_error (self, error);
  gchat_cli_output_login (self->output, data->sign ? "sign" : "auth", user, error, retry_after);
  sync_presence (self);
  command_done (self);
  login_data_free (data);
}

static void
run_login (GchatCliSession *self,
           GchatCliCommand *command)
{
  LoginData *data = g_new0 (LoginData, 1);

  data->session = g_object_ref (self);
  data->user = g_strdup (command->user);
  data->sign = command->type == GCHAT_CLI_COMMAND_SIGN;
  self->logging_in = TRUE;
  if (data->sign)
    gchat_client_sign_async (self->client, command->user, command->password, NULL, login_cb,
                             data);
  else
    gchat_client_auth_async (self->client, command->user, command->password, NULL, login_cb,
                             data);
}

static void
list_cb (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  g_autoptr(GchatCliSession) self = user_data;
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) users = gchat_client_list_finish (self->client, result, &error);

  if (users == NULL)
    {
      g_autofree char *message = g_strdup_printf (_("Could not list the users online: %s"),
                                                  error->message);

      gchat_cli_output_error (self->output, message, NULL);
    }
  else
    gchat_cli_output_list (self->output, (const char * const *) users);
  command_done (self);
}

static void
run_send (GchatCliSession *self,
          GchatCliCommand *command)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *message = NULL;
  guint64 id;

  self->in_send = TRUE;
  id = gchat_client_send (self->client, command->user, command->text, &error);
  self->in_send = FALSE;
  if (id != 0)
    {
      if (!g_hash_table_remove (self->settled_early, &id))
        id_set_add (self->pending, id);
      g_hash_table_remove_all (self->settled_early);
      return;
    }
  if (g_error_matches (error, GCHAT_CLIENT_ERROR, GCHAT_CLIENT_ERROR_NOT_LOGGED_IN))
    message = g_strdup (_("Not logged in: use “auth USER PASSWORD” or “sign USER PASSWORD” "
                          "first"));
  else
    message = g_strdup_printf (_("Could not send to “%s”: %s"), command->user,
                               error != NULL ? error->message : _("unknown error"));
  gchat_cli_output_error (self->output, message, NULL);
}

static void
run_trust (GchatCliSession *self,
           GchatCliCommand *command)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *fingerprint = gchat_cli_normalize_fingerprint (command->text);
  g_autofree char *message = NULL;

  if (gchat_client_trust_server_key (self->client, fingerprint, &error))
    {
      gchat_cli_output_trusted (self->output, fingerprint);
      return;
    }
  message = g_strdup_printf (_("Could not trust that key: %s"), error->message);
  gchat_cli_output_error (self->output, message, NULL);
}

/* Returns TRUE when the command goes on asynchronously and reads the next line itself. */
static gboolean
run_command (GchatCliSession *self,
             GchatCliCommand *command)
{
  switch (command->type)
    {
    case GCHAT_CLI_COMMAND_SIGN:
    case GCHAT_CLI_COMMAND_AUTH:
      self->busy = TRUE;
      run_login (self, command);
      return TRUE;
    case GCHAT_CLI_COMMAND_LIST:
      self->busy = TRUE;
      gchat_client_list_async (self->client, NULL, list_cb, g_object_ref (self));
      return TRUE;
    case GCHAT_CLI_COMMAND_SEND:
      run_send (self, command);
      return FALSE;
    case GCHAT_CLI_COMMAND_TRUST:
      run_trust (self, command);
      return FALSE;
    case GCHAT_CLI_COMMAND_HELP:
      gchat_cli_output_help (self->output);
      return FALSE;
    case GCHAT_CLI_COMMAND_QUIT:
      gchat_cli_session_stop (self);
      return TRUE;
    case GCHAT_CLI_COMMAND_NONE:
    default:
      return FALSE;
    }
}

/* Reading */

static void
handle_line (GchatCliSession *self,
             char            *line,
             gsize            len)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatCliCommand) command = gchat_cli_command_parse (line, len, &error);

  /* The line may hold a password: it does not stay in memory. */
  gchat_memzero (line, len);
  g_free (line);
  if (command == NULL)
    gchat_cli_output_error (self->output, error->message, NULL);
  if (command == NULL || !run_command (self, command))
    read_next (self);
}

static void
line_cb (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  g_autoptr(GchatCliSession) self = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree char *message = NULL;
  gsize len;
  char *line = gchat_cli_line_reader_read_finish (self->reader, result, &len, &error);

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  if (g_error_matches (error, GCHAT_CLI_ERROR, GCHAT_CLI_ERROR_LINE_TOO_LONG))
    {
      gchat_cli_output_error (self->output, error->message, NULL);
      read_next (self);
    }
  else if (error != NULL)
    {
      message = g_strdup_printf (_("Could not read the standard input: %s"), error->message);
      gchat_cli_output_error (self->output, message, NULL);
      self->status = 1;
      gchat_cli_session_stop (self);
    }
  else if (line == NULL)
    gchat_cli_session_stop (self);
  else
    handle_line (self, line, len);
}

static void
read_next (GchatCliSession *self)
{
  if (self->stopping)
    return;
  gchat_cli_line_reader_read_async (self->reader, self->cancellable, line_cb,
                                    g_object_ref (self));
}

/* The end */

static gboolean
logout_timeout_cb (gpointer user_data)
{
  GchatCliSession *self = user_data;

  self->logout_id = 0;
  g_printerr (_("gchat-cli: logging out took too long; exiting anyway\n"));
  g_main_loop_quit (self->loop);
  return G_SOURCE_REMOVE;
}

static void
logout_cb (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  g_autoptr(GchatCliSession) self = user_data;
  g_autoptr(GError) error = NULL;

  if (!gchat_client_logout_finish (self->client, result, &error))
    {
      g_autofree char *message = g_strdup_printf (_("Could not log out cleanly: %s"),
                                                  error->message);

      gchat_cli_output_error (self->output, message, NULL);
    }
  g_main_loop_quit (self->loop);
}

static void
logout (GchatCliSession *self)
{
  if (gchat_client_get_state (self->client) == GCHAT_CLIENT_STATE_OFFLINE)
    {
      g_main_loop_quit (self->loop);
      return;
    }
  self->logout_id = g_timeout_add_seconds (GCHAT_CLI_LOGOUT_TIMEOUT_S, logout_timeout_cb, self);
  gchat_client_logout_async (self->client, NULL, logout_cb, g_object_ref (self));
}

static gboolean
drain_timeout_cb (gpointer user_data)
{
  GchatCliSession *self = user_data;
  guint n = g_hash_table_size (self->pending);

  self->drain_id = 0;
  self->draining = FALSE;
  g_printerr (g_dngettext (GETTEXT_PACKAGE,
                           "gchat-cli: %u message has no delivery state yet; exiting anyway\n",
                           "gchat-cli: %u messages have no delivery state yet; exiting anyway\n",
                           n),
              n);
  logout (self);
  return G_SOURCE_REMOVE;
}

/* Waits, within a bound, for the messages sent so far to reach a final state, then logs out. */
static void
drain (GchatCliSession *self)
{
  if (g_hash_table_size (self->pending) > 0)
    {
      if (!self->draining)
        {
          self->draining = TRUE;
          self->drain_id = g_timeout_add_seconds (GCHAT_CLI_DRAIN_TIMEOUT_S, drain_timeout_cb,
                                                  self);
        }
      return;
    }
  self->draining = FALSE;
  g_clear_handle_id (&self->drain_id, g_source_remove);
  logout (self);
}

void
gchat_cli_session_stop (GchatCliSession *self)
{
  g_return_if_fail (GCHAT_IS_CLI_SESSION (self));

  if (self->stopping)
    {
      g_main_loop_quit (self->loop);
      return;
    }
  self->stopping = TRUE;
  g_cancellable_cancel (self->cancellable);
  if (!self->busy)
    drain (self);
}

GchatCliSession *
gchat_cli_session_new (GchatClient    *client,
                       GchatCliOutput *output,
                       GInputStream   *input)
{
  GchatCliSession *self;

  g_return_val_if_fail (GCHAT_IS_CLIENT (client), NULL);
  g_return_val_if_fail (output != NULL, NULL);
  g_return_val_if_fail (G_IS_INPUT_STREAM (input), NULL);

  self = g_object_new (GCHAT_TYPE_CLI_SESSION, NULL);
  self->client = g_object_ref (client);
  self->output = output;
  self->reader = gchat_cli_line_reader_new (input, GCHAT_CLI_MAX_LINE);
  return self;
}

int
gchat_cli_session_run (GchatCliSession *self)
{
  g_return_val_if_fail (GCHAT_IS_CLI_SESSION (self), 1);

  g_signal_connect (self->client, "message-received", G_CALLBACK (message_cb), self);
  g_signal_connect (self->client, "delivery-changed", G_CALLBACK (delivery_cb), self);
  g_signal_connect (gchat_client_get_online_users (self->client), "items-changed",
                    G_CALLBACK (online_changed_cb), self);
  g_signal_connect (self->client, "notify::state", G_CALLBACK (state_cb), self);
  read_next (self);
  g_main_loop_run (self->loop);
  g_signal_handlers_disconnect_by_data (self->client, self);
  g_signal_handlers_disconnect_by_data (gchat_client_get_online_users (self->client), self);
  return self->status;
}
