/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The gchat application: one GchatClient, the windows, unread counts and notifications. */

#include "config.h"

#include <glib/gi18n-lib.h>

#include "gchat-application.h"
#include "gchat-chat-message.h"
#include "gchat-chat-window.h"
#include "gchat-contacts-window.h"
#include "gchat-login-dialog.h"

/* Longest notification body, in characters: enough to recognise a message, not a wall. */
#define NOTIFICATION_MAX_CHARS 100
/* How long quitting waits for a log-out that hands pending messages to the server. */
#define SHUTDOWN_LOGOUT_TIMEOUT_MS 5000

struct _GchatApplication
{
  GtkApplication  parent_instance;

  GchatClient    *client;
  GSettings      *settings;
  /* The account's history: set while a session lasts, from log-in to log-out. */
  GchatHistory   *history;
  /* Peer (any case) → unread count, and peer → its GchatChatWindow (not owned). */
  GHashTable     *unread;
  GHashTable     *chat_windows;
  GtkWindow      *login_dialog;
  GtkWindow      *contacts_window;
  /* Why the configuration file could not be used, shown once in the log-in dialog. */
  char           *startup_error;
  gboolean        logging_out;
  /* Whether a notification service is there: without one GLib would only warn. */
  guint           notification_watch[2];
  gboolean        notification_owner[2];
  gboolean        notification_activatable;
};

G_DEFINE_FINAL_TYPE (GchatApplication, gchat_application, GTK_TYPE_APPLICATION)

enum
{
  SIGNAL_UNREAD_CHANGED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

static const char * const notification_services[] = {
  "org.freedesktop.Notifications",
  "org.gtk.Notifications",
};

/* User names are unique under ASCII case, so every table keyed by a peer ignores it. */
static guint
peer_hash (gconstpointer key)
{
  g_autofree char *lower = g_ascii_strdown (key, -1);

  return g_str_hash (lower);
}

static gboolean
peer_equal (gconstpointer a,
            gconstpointer b)
{
  return g_ascii_strcasecmp (a, b) == 0;
}

static char *
notification_id (const char *peer)
{
  g_autofree char *lower = g_ascii_strdown (peer, -1);

  return g_strconcat ("message-", lower, NULL);
}

static gboolean
notifications_available (GchatApplication *self)
{
  /* In a sandbox GLib talks to the portal, which is always there. */
  return self->notification_owner[0] || self->notification_owner[1]
         || self->notification_activatable || g_file_test ("/.flatpak-info", G_FILE_TEST_EXISTS);
}

/* Windows */

static GtkWindow *
get_contacts_window (GchatApplication *self)
{
  if (self->contacts_window == NULL)
    self->contacts_window = GTK_WINDOW (gchat_contacts_window_new (self));
  return self->contacts_window;
}

static void logged_in_cb (GchatApplication *self);

static GtkWindow *
get_login_dialog (GchatApplication *self)
{
  if (self->login_dialog == NULL)
    {
      self->login_dialog = GTK_WINDOW (gchat_login_dialog_new (self));
      g_signal_connect_object (self->login_dialog, "logged-in", G_CALLBACK (logged_in_cb), self,
                               G_CONNECT_SWAPPED);
      if (self->startup_error != NULL)
        {
          gchat_login_dialog_set_error (GCHAT_LOGIN_DIALOG (self->login_dialog),
                                        self->startup_error);
          g_clear_pointer (&self->startup_error, g_free);
        }
    }
  return self->login_dialog;
}

static void
chat_window_active_cb (GtkWindow        *window,
                       GParamSpec       *pspec,
                       GchatApplication *self)
{
  if (gtk_window_is_active (window))
    gchat_application_mark_read (self, gchat_chat_window_get_peer (GCHAT_CHAT_WINDOW (window)));
}

static void
close_chat_windows (GchatApplication *self)
{
  g_autoptr(GList) windows = g_hash_table_get_values (self->chat_windows);

  /* Destroying a window removes it from the table (window_removed), hence the copy. */
  for (GList *l = windows; l != NULL; l = l->next)
    gtk_window_destroy (l->data);
  g_hash_table_remove_all (self->chat_windows);
}

/* Sessions */

static void
clear_unread (GchatApplication *self)
{
  g_autoptr(GList) peers = g_hash_table_get_keys (self->unread);

  for (GList *l = peers; l != NULL; l = l->next)
    {
      g_autofree char *id = notification_id (l->data);

      g_application_withdraw_notification (G_APPLICATION (self), id);
    }
  g_hash_table_remove_all (self->unread);
}

/* The session is over (log-out, or the server ended it): back to the log-in dialog, which
 * shows @reason when there is one. */
static void
end_session (GchatApplication *self,
             const char       *reason)
{
  GtkWindow *dialog;
  g_autoptr(GError) error = NULL;

  close_chat_windows (self);
  clear_unread (self);
  if (self->history != NULL && !gchat_history_flush (self->history, &error))
    g_message ("The history could not be written: %s", error->message);
  g_clear_object (&self->history);

  /* Show the dialog before the contact list goes, so that the application keeps a window. */
  dialog = get_login_dialog (self);
  gchat_login_dialog_set_error (GCHAT_LOGIN_DIALOG (dialog), reason);
  gtk_window_present (dialog);
  if (self->contacts_window != NULL)
    gtk_window_destroy (self->contacts_window);
}

typedef struct
{
  GchatApplication *self;
  char             *reason;
} LogOutData;

static void
log_out_done_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  LogOutData *data = user_data;
  g_autoptr(GError) error = NULL;

  if (!gchat_client_logout_finish (GCHAT_CLIENT (source), result, &error))
    g_debug ("Log-out: %s", error->message);
  data->self->logging_out = FALSE;
  end_session (data->self, data->reason);
  g_object_unref (data->self);
  g_free (data->reason);
  g_free (data);
}

static void
log_out (GchatApplication *self,
         const char       *reason)
{
  LogOutData *data;

  if (self->logging_out)
    return;
  self->logging_out = TRUE;
  data = g_new0 (LogOutData, 1);
  data->self = g_object_ref (self);
  data->reason = g_strdup (reason);
  gchat_client_logout_async (self->client, NULL, log_out_done_cb, data);
}

/* The log-in dialog succeeded: open the account's history and show the contact list. */
static void
logged_in_cb (GchatApplication *self)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *host = NULL;
  guint port = 0;

  g_object_get (self->client, "server-host", &host, "server-port", &port, NULL);
  g_clear_object (&self->history);
  self->history = gchat_history_new (NULL, host, port, gchat_client_get_user (self->client),
                                     &error);
  if (self->history == NULL)
    {
      g_autofree char *reason = g_strdup_printf (_("Your messages cannot be kept on this "
                                                   "computer, so you were logged out: %s"),
                                                 error->message);

      log_out (self, reason);
      return;
    }
  gtk_window_present (get_contacts_window (self));
  if (self->login_dialog != NULL)
    {
      /* GTK 4.8 warns when a focused entry's window goes away under it (the cursor blink
       * misses its focus-out): take the focus away first. */
      gtk_window_set_focus (self->login_dialog, NULL);
      gtk_window_destroy (self->login_dialog);
    }
}

/* The client's signals */

static void
client_state_cb (GchatApplication *self)
{
  /* Offline while a session lasts and not at our request: the server replaced the session,
   * deleted the account, or a reconnection was refused. */
  if (gchat_client_get_state (self->client) == GCHAT_CLIENT_STATE_OFFLINE
      && self->history != NULL && !self->logging_out)
    {
      const char *reason = gchat_client_get_state_reason (self->client);

      g_debug ("The session ended: %s", reason != NULL ? reason : "no reason given");
      end_session (self, reason != NULL ? reason : _("You were logged out"));
    }
}

static void
notify_message (GchatApplication *self,
                const char       *from,
                const char       *text)
{
  g_autoptr(GNotification) notification = NULL;
  g_autofree char *id = notification_id (from);
  g_autofree char *body = NULL;

  if (!notifications_available (self))
    return;
  if (g_utf8_strlen (text, -1) > NOTIFICATION_MAX_CHARS)
    {
      g_autofree char *start = g_utf8_substring (text, 0, NOTIFICATION_MAX_CHARS - 1);

      body = g_strconcat (start, "…", NULL);
    }
  else
    body = g_strdup (text);
  notification = g_notification_new (from);
  g_notification_set_body (notification, body);
  g_notification_set_default_action_and_target (notification, "app.open-chat", "s", from);
  g_application_send_notification (G_APPLICATION (self), id, notification);
}

static void
message_received_cb (GchatApplication *self,
                     const char       *from,
                     const char       *text,
                     GchatClientPath   path,
                     guint64           id,
                     gint64            sent_unix)
{
  g_autoptr(GchatChatMessage) message = NULL;
  GtkWindow *window;

  if (self->history == NULL)
    return;
  message = gchat_chat_message_new (id, FALSE, from, text, sent_unix, GCHAT_DELIVERY_DELIVERED,
                                    path);
  gchat_history_add (self->history, from, message);

  window = g_hash_table_lookup (self->chat_windows, from);
  if (window != NULL && gtk_window_is_active (window))
    return;
  g_hash_table_insert (self->unread, g_strdup (from),
                       GUINT_TO_POINTER (gchat_application_get_unread (self, from) + 1));
  g_signal_emit (self, signals[SIGNAL_UNREAD_CHANGED], 0, from);
  notify_message (self, from, text);
}

static void
delivery_changed_cb (GchatApplication   *self,
                     guint64             id,
                     const char         *to,
                     GchatDeliveryState  state,
                     GchatClientPath     path,
                     const GError       *error)
{
  if (self->history != NULL)
    gchat_history_set_state (self->history, to, id, state, path);
}

/* Actions */

static void
quit_activated (GSimpleAction *action,
                GVariant      *parameter,
                gpointer       user_data)
{
  g_application_quit (G_APPLICATION (user_data));
}

static void
about_activated (GSimpleAction *action,
                 GVariant      *parameter,
                 gpointer       user_data)
{
  GtkApplication *app = user_data;

  gtk_show_about_dialog (gtk_application_get_active_window (app),
                         "program-name", "gchat",
                         "version", PACKAGE_VERSION,
                         "comments", _("Chat securely with the people on your gchat server"),
                         "logo-icon-name", GCHAT_APPLICATION_ID,
                         "license-type", GTK_LICENSE_GPL_3_0,
                         "website", "https://github.com/gchat/gchat",
                         "translator-credits", _("translator-credits"),
                         NULL);
}

static void
log_out_activated (GSimpleAction *action,
                   GVariant      *parameter,
                   gpointer       user_data)
{
  GchatApplication *self = user_data;

  if (self->history != NULL)
    log_out (self, NULL);
}

static void
open_chat_activated (GSimpleAction *action,
                     GVariant      *parameter,
                     gpointer       user_data)
{
  GchatApplication *self = user_data;
  const char *peer = g_variant_get_string (parameter, NULL);

  /* A notification can outlive its session; then there is nothing to open. */
  if (self->history == NULL || *peer == '\0')
    g_application_activate (G_APPLICATION (self));
  else
    gchat_application_open_chat (self, peer);
}

static void
search_activated (GSimpleAction *action,
                  GVariant      *parameter,
                  gpointer       user_data)
{
  GchatApplication *self = user_data;
  GtkWindow *window;

  if (self->history == NULL)
    return;
  window = get_contacts_window (self);
  gtk_window_present (window);
  gtk_widget_activate_action (GTK_WIDGET (window), "win.search", NULL);
}

static const GActionEntry app_actions[] = {
  { .name = "quit", .activate = quit_activated },
  { .name = "about", .activate = about_activated },
  { .name = "log-out", .activate = log_out_activated },
  { .name = "open-chat", .activate = open_chat_activated, .parameter_type = "s" },
  { .name = "search", .activate = search_activated },
};

/* Notification service */

static void
notification_appeared_cb (GDBusConnection *connection,
                          const char      *name,
                          const char      *owner,
                          gpointer         user_data)
{
  GchatApplication *self = user_data;

  self->notification_owner[g_str_equal (name, notification_services[0]) ? 0 : 1] = TRUE;
}

static void
notification_vanished_cb (GDBusConnection *connection,
                          const char      *name,
                          gpointer         user_data)
{
  GchatApplication *self = user_data;

  self->notification_owner[g_str_equal (name, notification_services[0]) ? 0 : 1] = FALSE;
}

static void
list_activatable_cb (GObject      *source,
                     GAsyncResult *result,
                     gpointer      user_data)
{
  g_autoptr(GchatApplication) self = user_data;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree const char **names = NULL;

  reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), result, &error);
  if (reply == NULL)
    {
      g_debug ("No activatable D-Bus names: %s", error->message);
      return;
    }
  g_variant_get (reply, "(^a&s)", &names);
  for (gsize i = 0; names[i] != NULL; i++)
    if (g_strv_contains (notification_services, names[i]))
      self->notification_activatable = TRUE;
}

static void
watch_notification_service (GchatApplication *self)
{
  GDBusConnection *bus = g_application_get_dbus_connection (G_APPLICATION (self));

  if (bus == NULL)
    return;
  for (guint i = 0; i < G_N_ELEMENTS (notification_services); i++)
    self->notification_watch[i] = g_bus_watch_name_on_connection (
      bus, notification_services[i], G_BUS_NAME_WATCHER_FLAGS_NONE, notification_appeared_cb,
      notification_vanished_cb, self, NULL);
  g_dbus_connection_call (bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                          "org.freedesktop.DBus", "ListActivatableNames", NULL,
                          G_VARIANT_TYPE ("(as)"), G_DBUS_CALL_FLAGS_NONE, -1, NULL,
                          list_activatable_cb, g_object_ref (self));
}

/* GApplication */

/* Where to connect first: the configuration file when there is one, else the last server. */
static void
configure_client (GchatApplication *self)
{
  g_autofree char *path = g_build_filename (g_get_user_config_dir (), "gchat", "config.yaml",
                                            NULL);
  g_autofree char *last_server = g_settings_get_string (self->settings, "last-server");
  g_autoptr(GError) error = NULL;

  if (g_file_test (path, G_FILE_TEST_EXISTS))
    {
      if (gchat_client_apply_config (self->client, path, &error))
        return;
      g_message ("Ignoring %s: %s", path, error->message);
      /* The message names the file already. */
      self->startup_error = g_strdup_printf (_("Your configuration cannot be used: %s"),
                                             error->message);
    }
  if (*last_server != '\0')
    g_object_set (self->client,
                  "server-host", last_server,
                  "server-port", g_settings_get_uint (self->settings, "last-port"),
                  NULL);
}

/* A plain GtkApplication (libadwaita's would) does not load style.css by itself. */
static void
load_style (void)
{
  g_autoptr(GtkCssProvider) provider = gtk_css_provider_new ();

  gtk_css_provider_load_from_resource (provider, "/io/github/gchat/Gchat/style.css");
  gtk_style_context_add_provider_for_display (gdk_display_get_default (),
                                              GTK_STYLE_PROVIDER (provider),
                                              GTK_STYLE_PROVIDER_PRIORITY_APPLICATION);
}

static void
gchat_application_startup (GApplication *app)
{
  GchatApplication *self = GCHAT_APPLICATION (app);
  static const char * const quit_accels[] = { "<Control>q", NULL };
  static const char * const search_accels[] = { "<Control>f", NULL };

  G_APPLICATION_CLASS (gchat_application_parent_class)->startup (app);

  load_style ();
  self->settings = g_settings_new (GCHAT_APPLICATION_ID);
  self->client = gchat_client_new ();
  configure_client (self);
  g_signal_connect_object (self->client, "notify::state", G_CALLBACK (client_state_cb), self,
                           G_CONNECT_SWAPPED);
  g_signal_connect_object (self->client, "message-received", G_CALLBACK (message_received_cb),
                           self, G_CONNECT_SWAPPED);
  g_signal_connect_object (self->client, "delivery-changed", G_CALLBACK (delivery_changed_cb),
                           self, G_CONNECT_SWAPPED);

  g_action_map_add_action_entries (G_ACTION_MAP (self), app_actions, G_N_ELEMENTS (app_actions),
                                   self);
  gtk_application_set_accels_for_action (GTK_APPLICATION (self), "app.quit", quit_accels);
  /* The contact list's own action; chat windows have none, so Ctrl+F does nothing there. */
  gtk_application_set_accels_for_action (GTK_APPLICATION (self), "win.search", search_accels);
  watch_notification_service (self);
}

static void
gchat_application_activate (GApplication *app)
{
  GchatApplication *self = GCHAT_APPLICATION (app);

  if (self->history != NULL)
    gtk_window_present (get_contacts_window (self));
  else
    gtk_window_present (get_login_dialog (self));
}

static void
shutdown_logout_cb (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  g_autoptr(GchatApplication) self = user_data;

  gchat_client_logout_finish (GCHAT_CLIENT (source), result, NULL);
  self->logging_out = FALSE;
}

static gboolean
shutdown_timeout_cb (gpointer user_data)
{
  gboolean *timed_out = user_data;

  *timed_out = TRUE;
  return G_SOURCE_REMOVE;
}

/* Quitting while logged in hands pending messages to the server first, as log-out does. */
static void
gchat_application_shutdown (GApplication *app)
{
  GchatApplication *self = GCHAT_APPLICATION (app);
  g_autoptr(GError) error = NULL;

  if (gchat_client_get_state (self->client) != GCHAT_CLIENT_STATE_OFFLINE && !self->logging_out)
    {
      gboolean timed_out = FALSE;
      guint timeout = g_timeout_add (SHUTDOWN_LOGOUT_TIMEOUT_MS, shutdown_timeout_cb, &timed_out);

      self->logging_out = TRUE;
      gchat_client_logout_async (self->client, NULL, shutdown_logout_cb, g_object_ref (self));
      while (self->logging_out && !timed_out)
        g_main_context_iteration (NULL, TRUE);
      if (!timed_out)
        g_source_remove (timeout);
    }
  if (self->history != NULL && !gchat_history_flush (self->history, &error))
    g_message ("The history could not be written: %s", error->message);
  for (guint i = 0; i < G_N_ELEMENTS (self->notification_watch); i++)
    g_clear_handle_id (&self->notification_watch[i], g_bus_unwatch_name);

  G_APPLICATION_CLASS (gchat_application_parent_class)->shutdown (app);
}

static void
gchat_application_window_added (GtkApplication *app,
                                GtkWindow      *window)
{
  GTK_APPLICATION_CLASS (gchat_application_parent_class)->window_added (app, window);

  if (GCHAT_IS_CHAT_WINDOW (window))
    g_signal_connect_object (window, "notify::is-active", G_CALLBACK (chat_window_active_cb),
                             app, 0);
}

static void
gchat_application_window_removed (GtkApplication *app,
                                  GtkWindow      *window)
{
  GchatApplication *self = GCHAT_APPLICATION (app);

  if (GCHAT_IS_CHAT_WINDOW (window) && self->chat_windows != NULL)
    {
      const char *peer = gchat_chat_window_get_peer (GCHAT_CHAT_WINDOW (window));

      g_signal_handlers_disconnect_by_func (window, chat_window_active_cb, self);
      if (g_hash_table_lookup (self->chat_windows, peer) == window)
        g_hash_table_remove (self->chat_windows, peer);
    }
  if (window == self->login_dialog)
    self->login_dialog = NULL;
  if (window == self->contacts_window)
    self->contacts_window = NULL;

  GTK_APPLICATION_CLASS (gchat_application_parent_class)->window_removed (app, window);
}

static void
gchat_application_dispose (GObject *object)
{
  GchatApplication *self = GCHAT_APPLICATION (object);

  g_clear_object (&self->history);
  g_clear_object (&self->client);
  g_clear_object (&self->settings);
  g_clear_pointer (&self->unread, g_hash_table_unref);
  g_clear_pointer (&self->chat_windows, g_hash_table_unref);
  g_clear_pointer (&self->startup_error, g_free);

  G_OBJECT_CLASS (gchat_application_parent_class)->dispose (object);
}

static void
gchat_application_class_init (GchatApplicationClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GApplicationClass *app_class = G_APPLICATION_CLASS (klass);
  GtkApplicationClass *gtk_app_class = GTK_APPLICATION_CLASS (klass);

  object_class->dispose = gchat_application_dispose;
  app_class->startup = gchat_application_startup;
  app_class->activate = gchat_application_activate;
  app_class->shutdown = gchat_application_shutdown;
  gtk_app_class->window_added = gchat_application_window_added;
  gtk_app_class->window_removed = gchat_application_window_removed;

  signals[SIGNAL_UNREAD_CHANGED] =
    g_signal_new ("unread-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                  NULL, G_TYPE_NONE, 1, G_TYPE_STRING);
}

static void
gchat_application_init (GchatApplication *self)
{
  self->unread = g_hash_table_new_full (peer_hash, peer_equal, g_free, NULL);
  self->chat_windows = g_hash_table_new_full (peer_hash, peer_equal, g_free, NULL);
}

/* Public API */

GchatApplication *
gchat_application_new (void)
{
  return g_object_new (GCHAT_TYPE_APPLICATION,
                       "application-id", GCHAT_APPLICATION_ID,
                       "flags", G_APPLICATION_DEFAULT_FLAGS,
                       NULL);
}

GchatClient *
gchat_application_get_client (GchatApplication *self)
{
  g_return_val_if_fail (GCHAT_IS_APPLICATION (self), NULL);

  return self->client;
}

GSettings *
gchat_application_get_settings (GchatApplication *self)
{
  g_return_val_if_fail (GCHAT_IS_APPLICATION (self), NULL);

  return self->settings;
}

GchatHistory *
gchat_application_get_history (GchatApplication *self)
{
  g_return_val_if_fail (GCHAT_IS_APPLICATION (self), NULL);

  return self->history;
}

GtkWindow *
gchat_application_open_chat (GchatApplication *self,
                             const char       *peer)
{
  GtkWindow *window;

  g_return_val_if_fail (GCHAT_IS_APPLICATION (self), NULL);
  g_return_val_if_fail (peer != NULL && *peer != '\0', NULL);

  window = g_hash_table_lookup (self->chat_windows, peer);
  if (window == NULL)
    {
      window = GTK_WINDOW (gchat_chat_window_new (self, peer));
      g_hash_table_insert (self->chat_windows, g_strdup (peer), window);
    }
  gtk_window_present (window);
  return window;
}

guint
gchat_application_get_unread (GchatApplication *self,
                              const char       *peer)
{
  g_return_val_if_fail (GCHAT_IS_APPLICATION (self), 0);
  g_return_val_if_fail (peer != NULL, 0);

  return GPOINTER_TO_UINT (g_hash_table_lookup (self->unread, peer));
}

guint
gchat_application_get_total_unread (GchatApplication *self)
{
  GHashTableIter iter;
  gpointer count;
  guint total = 0;

  g_return_val_if_fail (GCHAT_IS_APPLICATION (self), 0);

  g_hash_table_iter_init (&iter, self->unread);
  while (g_hash_table_iter_next (&iter, NULL, &count))
    total += GPOINTER_TO_UINT (count);
  return total;
}

void
gchat_application_mark_read (GchatApplication *self,
                             const char       *peer)
{
  g_autofree char *id = NULL;

  g_return_if_fail (GCHAT_IS_APPLICATION (self));
  g_return_if_fail (peer != NULL);

  id = notification_id (peer);
  g_application_withdraw_notification (G_APPLICATION (self), id);
  if (g_hash_table_remove (self->unread, peer))
    g_signal_emit (self, signals[SIGNAL_UNREAD_CHANGED], 0, peer);
}

gboolean
gchat_application_send (GchatApplication  *self,
                        const char        *peer,
                        const char        *text,
                        GError           **error)
{
  g_autoptr(GchatChatMessage) message = NULL;
  guint64 id;

  g_return_val_if_fail (GCHAT_IS_APPLICATION (self), FALSE);
  g_return_val_if_fail (peer != NULL && text != NULL, FALSE);

  id = gchat_client_send (self->client, peer, text, error);
  if (id == 0)
    return FALSE;
  if (self->history != NULL)
    {
      message = gchat_chat_message_new (id, TRUE, gchat_client_get_user (self->client), text,
                                        g_get_real_time () / G_USEC_PER_SEC,
                                        GCHAT_DELIVERY_SENDING, GCHAT_CLIENT_PATH_DIRECT);
      gchat_history_add (self->history, peer, message);
    }
  return TRUE;
}
