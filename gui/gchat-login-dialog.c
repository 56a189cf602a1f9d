/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The log-in dialog: server, user name, password; log in or create an account. */

#include "config.h"
#include "gchat-gui-config.h"

#include <glib/gi18n-lib.h>
#ifdef HAVE_LIBSECRET
#include <libsecret/secret.h>
#endif

#include "gchat-login-dialog.h"

/* The port gchatd listens on unless told otherwise; it is left out of the server field. */
#define DEFAULT_PORT 10000

struct _GchatLoginDialog
{
  GtkApplicationWindow  parent_instance;

  GtkWidget            *form;
  GtkEntry             *server_entry;
  GtkEntry             *user_entry;
  GtkPasswordEntry     *password_entry;
  GtkCheckButton       *remember_check;
  GtkLabel             *error_label;
  GtkSpinner           *spinner;
  GtkWidget            *create_button;
  GtkWidget            *login_button;

  GCancellable         *cancellable;
  /* The action under way or to retry after trusting the server: create an account or log in. */
  gboolean              signing;
};

G_DEFINE_FINAL_TYPE (GchatLoginDialog, gchat_login_dialog, GTK_TYPE_APPLICATION_WINDOW)

enum
{
  SIGNAL_LOGGED_IN,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

#ifdef HAVE_LIBSECRET
static const SecretSchema password_schema = {
  GCHAT_APPLICATION_ID, SECRET_SCHEMA_NONE,
  {
    { "server", SECRET_SCHEMA_ATTRIBUTE_STRING },
    { "user", SECRET_SCHEMA_ATTRIBUTE_STRING },
    { NULL, 0 },
  },
};
#endif

static GchatApplication *
get_app (GchatLoginDialog *self)
{
  return GCHAT_APPLICATION (gtk_window_get_application (GTK_WINDOW (self)));
}

static GchatClient *
get_client (GchatLoginDialog *self)
{
  return gchat_application_get_client (get_app (self));
}

void
gchat_login_dialog_set_error (GchatLoginDialog *self,
                              const char       *message)
{
  g_return_if_fail (GCHAT_IS_LOGIN_DIALOG (self));

  gtk_label_set_text (self->error_label, message != NULL ? message : "");
  gtk_widget_set_visible (GTK_WIDGET (self->error_label), message != NULL && *message != '\0');
}

static void
set_busy (GchatLoginDialog *self,
          gboolean          busy)
{
  gtk_widget_set_sensitive (self->form, !busy);
  gtk_widget_set_sensitive (self->create_button, !busy);
  gtk_widget_set_sensitive (self->login_button, !busy);
  gtk_spinner_set_spinning (self->spinner, busy);
  if (busy)
    gchat_login_dialog_set_error (self, NULL);
}

/* Server field */

/* "host", "host:port", or "[v6]:port", leaving out the usual port. */
static char *
format_server (const char *host,
               guint       port)
{
  gboolean v6 = strchr (host, ':') != NULL;

  if (port == DEFAULT_PORT)
    return g_strdup (host);
  return g_strdup_printf (v6 ? "[%s]:%u" : "%s:%u", host, port);
}

static gboolean
parse_server (const char  *text,
              char       **host,
              guint       *port,
              GError     **error)
{
  g_autoptr(GSocketConnectable) address = NULL;
  g_autofree char *stripped = g_strstrip (g_strdup (text));

  if (*stripped == '\0')
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                           _("Enter the server’s name or address"));
      return FALSE;
    }
  /* GLib takes "a b:c" for an IPv6 address; no host name holds spaces or slashes. */
  if (strpbrk (stripped, " \t/") == NULL)
    address = g_network_address_parse (stripped, DEFAULT_PORT, NULL);
  if (address == NULL || g_network_address_get_port (G_NETWORK_ADDRESS (address)) == 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   _("“%s” is not a server address: enter a host name, optionally followed by a "
                     "colon and a port, such as “chat.example.org:10000”"), stripped);
      return FALSE;
    }
  *host = g_strdup (g_network_address_get_hostname (G_NETWORK_ADDRESS (address)));
  *port = g_network_address_get_port (G_NETWORK_ADDRESS (address));
  return TRUE;
}

/* The keyring */

#ifdef HAVE_LIBSECRET
static char *
keyring_server (GchatLoginDialog *self)
{
  g_autofree char *host = NULL;
  guint port = 0;

  g_object_get (get_client (self), "server-host", &host, "server-port", &port, NULL);
  return g_strdup_printf ("%s:%u", host, port);
}

static void
password_lookup_cb (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  g_autoptr(GchatLoginDialog) self = user_data;
  g_autoptr(GError) error = NULL;
  char *password = secret_password_lookup_finish (result, &error);

  if (password == NULL)
    {
      /* No keyring running is normal: the user types the password. */
      if (error != NULL)
        g_debug ("No password from the keyring: %s", error->message);
      return;
    }
  if (*gtk_editable_get_text (GTK_EDITABLE (self->password_entry)) == '\0')
    gtk_editable_set_text (GTK_EDITABLE (self->password_entry), password);
  secret_password_free (password);
}

static void
password_stored_cb (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  g_autoptr(GError) error = NULL;

  if (!secret_password_store_finish (result, &error))
    g_debug ("The password could not be kept in the keyring: %s", error->message);
}

static void
password_cleared_cb (GObject      *source,
                     GAsyncResult *result,
                     gpointer      user_data)
{
  g_autoptr(GError) error = NULL;

  if (!secret_password_clear_finish (result, &error) && error != NULL)
    g_debug ("The keyring could not forget the password: %s", error->message);
}
#endif

static void
keyring_lookup (GchatLoginDialog *self)
{
#ifdef HAVE_LIBSECRET
  g_autofree char *server = keyring_server (self);
  const char *user = gtk_editable_get_text (GTK_EDITABLE (self->user_entry));

  if (*user == '\0' || !gtk_check_button_get_active (self->remember_check))
    return;
  secret_password_lookup (&password_schema, self->cancellable, password_lookup_cb,
                          g_object_ref (self), "server", server, "user", user, NULL);
#endif
}

/* Keeps the password in the keyring, or forgets it, as the user chose. */
static void
keyring_update (GchatLoginDialog *self,
                const char       *user,
                const char       *password)
{
#ifdef HAVE_LIBSECRET
  g_autofree char *server = keyring_server (self);

  if (gtk_check_button_get_active (self->remember_check))
    {
      g_autofree char *label = g_strdup_printf (_("gchat password for %s on %s"), user, server);

      secret_password_store (&password_schema, SECRET_COLLECTION_DEFAULT, label, password, NULL,
                             password_stored_cb, NULL, "server", server, "user", user, NULL);
    }
  else
    secret_password_clear (&password_schema, NULL, password_cleared_cb, NULL,
                           "server", server, "user", user, NULL);
#endif
}

/* Logging in */

static void start (GchatLoginDialog *self,
                   gboolean          sign);

static void
succeeded (GchatLoginDialog *self)
{
  GSettings *settings = gchat_application_get_settings (get_app (self));
  /* The name as the server spells it, which the next log-in dialog shows and looks up. */
  const char *user = gchat_client_get_user (get_client (self));
  g_autofree char *host = NULL;
  guint port = 0;

  g_object_get (get_client (self), "server-host", &host, "server-port", &port, NULL);
  g_settings_set_string (settings, "last-server", host);
  g_settings_set_uint (settings, "last-port", port);
  g_settings_set_string (settings, "last-user", user);
  keyring_update (self, user, gtk_editable_get_text (GTK_EDITABLE (self->password_entry)));
  gtk_editable_set_text (GTK_EDITABLE (self->password_entry), "");
  set_busy (self, FALSE);
  /* Last: the application may destroy this dialog from its handler. */
  g_signal_emit (self, signals[SIGNAL_LOGGED_IN], 0);
}

static GtkWidget *
fingerprint_label (const char *fingerprint)
{
  GtkWidget *label = gtk_label_new (fingerprint);

  gtk_label_set_selectable (GTK_LABEL (label), TRUE);
  gtk_label_set_wrap (GTK_LABEL (label), TRUE);
  gtk_label_set_wrap_mode (GTK_LABEL (label), PANGO_WRAP_CHAR);
  gtk_label_set_max_width_chars (GTK_LABEL (label), 48);
  /* Else the selectable label takes the focus and the default button loses it. */
  gtk_widget_set_focusable (label, FALSE);
  gtk_widget_add_css_class (label, "monospace");
  return label;
}

/* A dialog button whose name for assistive technologies is its visible label: GTK 4.8 names
 * a button made with gtk_dialog_add_button() twice ("Cancel Cancel"). */
static void
add_button (GtkDialog  *dialog,
            const char *mnemonic,
            int         response)
{
  GtkWidget *button = gtk_button_new ();
  GtkWidget *label = gtk_label_new_with_mnemonic (mnemonic);

  gtk_label_set_mnemonic_widget (GTK_LABEL (label), button);
  gtk_button_set_child (GTK_BUTTON (button), label);
  gtk_dialog_add_action_widget (dialog, button, response);
}

static void
trust_response_cb (GtkDialog        *dialog,
                   int               response,
                   GchatLoginDialog *self)
{
  g_autofree char *fingerprint = g_strdup (g_object_get_data (G_OBJECT (dialog), "fingerprint"));
  g_autoptr(GError) error = NULL;

  gtk_window_destroy (GTK_WINDOW (dialog));
  if (response != GTK_RESPONSE_ACCEPT)
    {
      gchat_login_dialog_set_error (self, _("Not connected: you did not trust the server."));
      return;
    }
  if (!gchat_client_trust_server_key (get_client (self), fingerprint, &error))
    {
      gchat_login_dialog_set_error (self, error->message);
      return;
    }
  start (self, self->signing);
}

/* A first connection to this server: show its key's fingerprint and ask. */
static void
ask_trust (GchatLoginDialog *self,
           const GError     *error)
{
  GchatClient *client = get_client (self);
  const char *fingerprint = gchat_client_get_server_fingerprint (client);
  g_autofree char *host = NULL;
  GtkWidget *dialog;
  guint port = 0;

  if (fingerprint == NULL)
    {
      gchat_login_dialog_set_error (self, error->message);
      return;
    }
  g_object_get (client, "server-host", &host, "server-port", &port, NULL);
  dialog = gtk_message_dialog_new (GTK_WINDOW (self),
                                   GTK_DIALOG_MODAL | GTK_DIALOG_DESTROY_WITH_PARENT,
                                   GTK_MESSAGE_QUESTION, GTK_BUTTONS_NONE, "%s",
                                   _("Trust this server?"));
  gtk_message_dialog_format_secondary_text (
    GTK_MESSAGE_DIALOG (dialog),
    _("This is the first connection to “%s” (port %u). To be sure it is the real server, ask "
      "its administrator whether its key fingerprint is this one:"), host, port);
  gtk_box_append (GTK_BOX (gtk_message_dialog_get_message_area (GTK_MESSAGE_DIALOG (dialog))),
                  fingerprint_label (fingerprint));
  add_button (GTK_DIALOG (dialog), _("_Cancel"), GTK_RESPONSE_CANCEL);
  add_button (GTK_DIALOG (dialog), _("_Trust and connect"), GTK_RESPONSE_ACCEPT);
  gtk_dialog_set_default_response (GTK_DIALOG (dialog), GTK_RESPONSE_CANCEL);
  g_object_set_data_full (G_OBJECT (dialog), "fingerprint", g_strdup (fingerprint), g_free);
  g_signal_connect_object (dialog, "response", G_CALLBACK (trust_response_cb), self, 0);
  gtk_window_present (GTK_WINDOW (dialog));
}

static void
append_fingerprint (GtkWidget  *area,
                    const char *title,
                    const char *fingerprint)
{
  GtkWidget *label = gtk_label_new (title);

  gtk_label_set_xalign (GTK_LABEL (label), 0.5);
  gtk_widget_add_css_class (label, "heading");
  gtk_box_append (GTK_BOX (area), label);
  gtk_box_append (GTK_BOX (area), fingerprint_label (fingerprint != NULL ? fingerprint : "—"));
}

/* The server shows another key than the trusted one: explain, and offer no way to connect. */
static void
warn_key_changed (GchatLoginDialog *self)
{
  GchatClient *client = get_client (self);
  g_autoptr(GObject) configured_key = NULL;
  g_autofree char *host = NULL;
  g_autofree char *known_servers = NULL;
  GtkWidget *dialog;
  GtkWidget *area;
  guint port = 0;

  g_object_get (client, "server-host", &host, "server-port", &port, "server-key",
                &configured_key, "known-servers-path", &known_servers, NULL);
  dialog = gtk_message_dialog_new (GTK_WINDOW (self),
                                   GTK_DIALOG_MODAL | GTK_DIALOG_DESTROY_WITH_PARENT,
                                   GTK_MESSAGE_WARNING, GTK_BUTTONS_NONE, "%s",
                                   _("The server’s identity changed"));
  if (configured_key != NULL)
    gtk_message_dialog_format_secondary_text (
      GTK_MESSAGE_DIALOG (dialog),
      _("“%s” presented another key than the one in your configuration file. Someone may be "
        "impersonating the server, so gchat did not connect. Ask the server’s administrator; "
        "only if they confirm that the key was replaced, put the new key in your "
        "configuration file and log in again."), host);
  else
    gtk_message_dialog_format_secondary_text (
      GTK_MESSAGE_DIALOG (dialog),
      _("“%s” (port %u) presented another key than on earlier connections. Someone may be "
        "impersonating the server, so gchat did not connect. Ask the server’s administrator; "
        "only if they confirm that the key was replaced, remove the line starting with "
        "“%s:%u” from %s and log in again."), host, port, host, port, known_servers);
  area = gtk_message_dialog_get_message_area (GTK_MESSAGE_DIALOG (dialog));
  append_fingerprint (area, _("Key presented now"), gchat_client_get_server_fingerprint (client));
  append_fingerprint (area, _("Key trusted before"), gchat_client_get_pinned_fingerprint (client));
  add_button (GTK_DIALOG (dialog), _("_Close"), GTK_RESPONSE_CLOSE);
  gtk_dialog_set_default_response (GTK_DIALOG (dialog), GTK_RESPONSE_CLOSE);
  g_signal_connect (dialog, "response", G_CALLBACK (gtk_window_destroy), NULL);
  gtk_window_present (GTK_WINDOW (dialog));
  gchat_login_dialog_set_error (self, _("Not connected: the server’s identity changed."));
}

static void
login_done_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  g_autoptr(GchatLoginDialog) self = user_data;
  g_autoptr(GError) error = NULL;
  gboolean ok;

  if (self->signing)
    ok = gchat_client_sign_finish (GCHAT_CLIENT (source), result, &error);
  else
    ok = gchat_client_auth_finish (GCHAT_CLIENT (source), result, &error);
  if (ok)
    {
      succeeded (self);
      return;
    }
  /* The dialog was closed meanwhile: nobody is there to tell. */
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  g_debug ("Log-in failed: %s", error->message);
  set_busy (self, FALSE);
  if (g_error_matches (error, GCHAT_CLIENT_ERROR, GCHAT_CLIENT_ERROR_SERVER_KEY_UNKNOWN))
    ask_trust (self, error);
  else if (g_error_matches (error, GCHAT_CLIENT_ERROR, GCHAT_CLIENT_ERROR_SERVER_KEY_CHANGED))
    warn_key_changed (self);
  else
    gchat_login_dialog_set_error (self, error->message);
}

/* Checks the fields, then logs in (or creates the account when @sign). */
static void
start (GchatLoginDialog *self,
       gboolean          sign)
{
  GchatClient *client = get_client (self);
  g_autofree char *host = NULL;
  g_autofree char *user = g_strdup (gtk_editable_get_text (GTK_EDITABLE (self->user_entry)));
  const char *password = gtk_editable_get_text (GTK_EDITABLE (self->password_entry));
  g_autoptr(GError) error = NULL;
  guint port = 0;

  if (!parse_server (gtk_editable_get_text (GTK_EDITABLE (self->server_entry)), &host, &port,
                     &error))
    {
      gchat_login_dialog_set_error (self, error->message);
      gtk_widget_grab_focus (GTK_WIDGET (self->server_entry));
      return;
    }
  if (*g_strstrip (user) == '\0')
    {
      gchat_login_dialog_set_error (self, _("Enter your user name"));
      gtk_widget_grab_focus (GTK_WIDGET (self->user_entry));
      return;
    }
  if (*password == '\0')
    {
      gchat_login_dialog_set_error (self, sign ? _("Choose a password") : _("Enter your password"));
      gtk_widget_grab_focus (GTK_WIDGET (self->password_entry));
      return;
    }
  g_object_set (client, "server-host", host, "server-port", port, NULL);
  self->signing = sign;
  set_busy (self, TRUE);
  if (sign)
    gchat_client_sign_async (client, user, password, self->cancellable, login_done_cb,
                             g_object_ref (self));
  else
    gchat_client_auth_async (client, user, password, self->cancellable, login_done_cb,
                             g_object_ref (self));
}

static void
login_clicked_cb (GchatLoginDialog *self)
{
  start (self, FALSE);
}

static void
create_clicked_cb (GchatLoginDialog *self)
{
  start (self, TRUE);
}

/* GObject */

/* Fills the form from the client's server (the configuration file or the last one used) and
 * the last user name, then puts the focus on the first empty field. */
static void
prefill (GchatLoginDialog *self)
{
  GSettings *settings = gchat_application_get_settings (get_app (self));
  g_autofree char *host = NULL;
  g_autofree char *server = NULL;
  g_autofree char *user = g_settings_get_string (settings, "last-user");
  guint port = 0;

  g_object_get (get_client (self), "server-host", &host, "server-port", &port, NULL);
  server = format_server (host != NULL ? host : "localhost", port);
  gtk_editable_set_text (GTK_EDITABLE (self->server_entry), server);
  gtk_editable_set_text (GTK_EDITABLE (self->user_entry), user);
#ifdef HAVE_LIBSECRET
  g_settings_bind (settings, "remember-password", self->remember_check, "active",
                   G_SETTINGS_BIND_DEFAULT);
#else
  gtk_widget_set_sensitive (GTK_WIDGET (self->remember_check), FALSE);
  gtk_widget_set_tooltip_text (GTK_WIDGET (self->remember_check),
                               _("This build of gchat cannot use the keyring"));
#endif
  gtk_window_set_focus (GTK_WINDOW (self), *user != '\0' ? GTK_WIDGET (self->password_entry)
                                                         : GTK_WIDGET (self->user_entry));
  keyring_lookup (self);
}

static gboolean
gchat_login_dialog_close_request (GtkWindow *window)
{
  GchatLoginDialog *self = GCHAT_LOGIN_DIALOG (window);

  g_cancellable_cancel (self->cancellable);
  return GTK_WINDOW_CLASS (gchat_login_dialog_parent_class)->close_request (window);
}

static void
gchat_login_dialog_dispose (GObject *object)
{
  GchatLoginDialog *self = GCHAT_LOGIN_DIALOG (object);

  g_cancellable_cancel (self->cancellable);
  g_clear_object (&self->cancellable);
  gtk_widget_dispose_template (GTK_WIDGET (self), GCHAT_TYPE_LOGIN_DIALOG);

  G_OBJECT_CLASS (gchat_login_dialog_parent_class)->dispose (object);
}

static void
gchat_login_dialog_class_init (GchatLoginDialogClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  GtkWindowClass *window_class = GTK_WINDOW_CLASS (klass);

  object_class->dispose = gchat_login_dialog_dispose;
  window_class->close_request = gchat_login_dialog_close_request;

  signals[SIGNAL_LOGGED_IN] = g_signal_new ("logged-in", G_TYPE_FROM_CLASS (klass),
                                            G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                                            G_TYPE_NONE, 0);

  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/io/github/gchat/Gchat/gchat-login-dialog.ui");
  gtk_widget_class_bind_template_child (widget_class, GchatLoginDialog, form);
  gtk_widget_class_bind_template_child (widget_class, GchatLoginDialog, server_entry);
  gtk_widget_class_bind_template_child (widget_class, GchatLoginDialog, user_entry);
  gtk_widget_class_bind_template_child (widget_class, GchatLoginDialog, password_entry);
  gtk_widget_class_bind_template_child (widget_class, GchatLoginDialog, remember_check);
  gtk_widget_class_bind_template_child (widget_class, GchatLoginDialog, error_label);
  gtk_widget_class_bind_template_child (widget_class, GchatLoginDialog, spinner);
  gtk_widget_class_bind_template_child (widget_class, GchatLoginDialog, create_button);
  gtk_widget_class_bind_template_child (widget_class, GchatLoginDialog, login_button);
  gtk_widget_class_bind_template_callback (widget_class, login_clicked_cb);
  gtk_widget_class_bind_template_callback (widget_class, create_clicked_cb);
}

static void
gchat_login_dialog_init (GchatLoginDialog *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  self->cancellable = g_cancellable_new ();
}

GchatLoginDialog *
gchat_login_dialog_new (GchatApplication *application)
{
  GchatLoginDialog *self;

  g_return_val_if_fail (GCHAT_IS_APPLICATION (application), NULL);

  /* GtkWindow:application is not a construct property: fill the form once it is set. */
  self = g_object_new (GCHAT_TYPE_LOGIN_DIALOG, "application", application, NULL);
  prefill (self);
  return self;
}
