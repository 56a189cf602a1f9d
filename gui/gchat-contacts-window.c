/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The main window: who is online, unread counts, search, the connection state, log-out. */

#include "config.h"

#include <glib/gi18n-lib.h>

#include "gchat-contacts-window.h"

struct _GchatContactsWindow
{
  GtkApplicationWindow  parent_instance;

  GtkLabel             *title_label;
  GtkLabel             *subtitle_label;
  GtkInfoBar           *banner;
  GtkSpinner           *banner_spinner;
  GtkLabel             *banner_label;
  GtkSearchBar         *search_bar;
  GtkSearchEntry       *search_entry;
  GtkStack             *stack;
  GtkListView          *list_view;

  GchatApplication     *application;
  GchatClient          *client;
  GListModel           *users;    /* the client's online users, all of them */
  GtkStringFilter      *filter;   /* by name, from the search entry */
  GtkFilterListModel   *filtered; /* what the list shows */
};

G_DEFINE_FINAL_TYPE (GchatContactsWindow, gchat_contacts_window, GTK_TYPE_APPLICATION_WINDOW)

/* Rows: an avatar, the name and an unread badge, recycled by the list view. */

static GtkWidget *
row_get_name_label (GtkListItem *item)
{
  GtkWidget *row = gtk_list_item_get_child (item);

  return gtk_widget_get_next_sibling (gtk_widget_get_first_child (row));
}

static GtkWidget *
row_get_badge (GtkListItem *item)
{
  return gtk_widget_get_last_child (gtk_list_item_get_child (item));
}

static void
row_update_badge (GtkListItem      *item,
                  GchatApplication *application)
{
  GchatOnlineUser *user = gtk_list_item_get_item (item);
  GtkWidget *badge = row_get_badge (item);
  guint unread = 0;
  g_autofree char *count = NULL;
  g_autofree char *description = NULL;

  if (user != NULL)
    unread = gchat_application_get_unread (application, gchat_online_user_get_name (user));
  gtk_widget_set_visible (badge, unread > 0);
  if (unread == 0)
    return;
  count = g_strdup_printf ("%u", unread);
  description = g_strdup_printf (ngettext ("%u unread message", "%u unread messages", unread),
                                 unread);
  gtk_label_set_text (GTK_LABEL (badge), count);
  gtk_widget_set_tooltip_text (badge, description);
  gtk_accessible_update_property (GTK_ACCESSIBLE (badge),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL, description,
                                  -1);
}

static void
row_unread_changed_cb (GchatApplication *application,
                       const char       *peer,
                       GtkListItem      *item)
{
  GchatOnlineUser *user = gtk_list_item_get_item (item);

  /* Names are unique ignoring ASCII case, and the application may spell them either way. */
  if (user != NULL && g_ascii_strcasecmp (gchat_online_user_get_name (user), peer) == 0)
    row_update_badge (item, application);
}

static void
factory_setup_cb (GtkSignalListItemFactory *factory,
                  GtkListItem              *item,
                  GchatContactsWindow      *self)
{
  GtkWidget *row = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 12);
  GtkWidget *avatar = gtk_image_new_from_icon_name ("avatar-default-symbolic");
  GtkWidget *name = gtk_label_new (NULL);
  GtkWidget *badge = gtk_label_new (NULL);

  gtk_widget_set_margin_top (row, 6);
  gtk_widget_set_margin_bottom (row, 6);
  gtk_widget_set_margin_start (row, 6);
  gtk_widget_set_margin_end (row, 6);
  gtk_image_set_icon_size (GTK_IMAGE (avatar), GTK_ICON_SIZE_LARGE);
  gtk_widget_add_css_class (avatar, "dim-label");
  gtk_accessible_update_state (GTK_ACCESSIBLE (avatar), GTK_ACCESSIBLE_STATE_HIDDEN, TRUE, -1);
  gtk_label_set_xalign (GTK_LABEL (name), 0.0);
  gtk_label_set_ellipsize (GTK_LABEL (name), PANGO_ELLIPSIZE_END);
  gtk_widget_set_hexpand (name, TRUE);
  gtk_widget_set_valign (badge, GTK_ALIGN_CENTER);
  gtk_widget_set_visible (badge, FALSE);
  gtk_widget_add_css_class (badge, "unread-badge");
  gtk_widget_add_css_class (badge, "numeric");
  gtk_box_append (GTK_BOX (row), avatar);
  gtk_box_append (GTK_BOX (row), name);
  gtk_box_append (GTK_BOX (row), badge);
  gtk_list_item_set_child (item, row);
}

static void
factory_bind_cb (GtkSignalListItemFactory *factory,
                 GtkListItem              *item,
                 GchatContactsWindow      *self)
{
  GchatOnlineUser *user = gtk_list_item_get_item (item);

  gtk_label_set_text (GTK_LABEL (row_get_name_label (item)), gchat_online_user_get_name (user));
  row_update_badge (item, self->application);
  /* Only the rows on screen are bound, so only they follow the unread counts. */
  g_signal_connect_object (self->application, "unread-changed",
                           G_CALLBACK (row_unread_changed_cb), item, 0);
}

static void
factory_unbind_cb (GtkSignalListItemFactory *factory,
                   GtkListItem              *item,
                   GchatContactsWindow      *self)
{
  g_signal_handlers_disconnect_by_func (self->application, row_unread_changed_cb, item);
}

/* The window's own state */

static void
update_title (GchatContactsWindow *self)
{
  guint total = gchat_application_get_total_unread (self->application);
  g_autofree char *title = NULL;

  if (total > 0)
    /* Translators: the window title with the number of unread messages, e.g. "gchat (3)". */
    title = g_strdup_printf (_("gchat (%u)"), total);
  else
    title = g_strdup ("gchat");
  gtk_label_set_text (self->title_label, title);
  gtk_window_set_title (GTK_WINDOW (self), title);
}

static const char *
describe_state (GchatClientState state)
{
  switch (state)
    {
    case GCHAT_CLIENT_STATE_CONNECTING:
      return _("Connecting…");
    case GCHAT_CLIENT_STATE_ONLINE:
      return _("Online");
    case GCHAT_CLIENT_STATE_RECONNECTING:
      return _("Reconnecting…");
    case GCHAT_CLIENT_STATE_OFFLINE:
    default:
      return _("Offline");
    }
}

static void
update_subtitle (GchatContactsWindow *self)
{
  const char *user = gchat_client_get_user (self->client);
  const char *state = describe_state (gchat_client_get_state (self->client));
  g_autofree char *subtitle = NULL;

  if (user != NULL)
    /* Translators: the header bar's subtitle: the user's own name and connection state,
     * e.g. "alice · Online". */
    subtitle = g_strdup_printf (_("%s · %s"), user, state);
  gtk_label_set_text (self->subtitle_label, subtitle != NULL ? subtitle : state);
}

/* The banner follows the connection: hidden while online, the client's reason otherwise. */
static void
update_banner (GchatContactsWindow *self)
{
  GchatClientState state = gchat_client_get_state (self->client);
  const char *reason = gchat_client_get_state_reason (self->client);
  gboolean working = state == GCHAT_CLIENT_STATE_CONNECTING
                     || state == GCHAT_CLIENT_STATE_RECONNECTING;

  if (reason != NULL)
    gtk_label_set_text (self->banner_label, reason);
  else if (state == GCHAT_CLIENT_STATE_OFFLINE)
    gtk_label_set_text (self->banner_label, _("Offline"));
  else if (!gtk_info_bar_get_revealed (self->banner))
    gtk_label_set_text (self->banner_label, _("Connecting to the server…"));
  /* A new attempt after a lost connection has no reason of its own: the one shown stays. */

  gtk_info_bar_set_message_type (self->banner, working ? GTK_MESSAGE_WARNING : GTK_MESSAGE_ERROR);
  gtk_spinner_set_spinning (self->banner_spinner, working);
  gtk_widget_set_visible (GTK_WIDGET (self->banner_spinner), working);
  gtk_info_bar_set_revealed (self->banner, state != GCHAT_CLIENT_STATE_ONLINE);
}

static void
client_state_changed_cb (GchatContactsWindow *self)
{
  update_banner (self);
  update_subtitle (self);
}

/* Which page shows: the list, nobody online, or nobody matching the search. */
static void
update_page (GchatContactsWindow *self)
{
  const char *page = "list";

  if (g_list_model_get_n_items (G_LIST_MODEL (self->filtered)) == 0)
    page = g_list_model_get_n_items (self->users) == 0 ? "empty" : "no-match";
  gtk_stack_set_visible_child_name (self->stack, page);
}

/* Search and activation */

static void
open_chat_at (GchatContactsWindow *self,
              guint                position)
{
  g_autoptr(GchatOnlineUser) user = g_list_model_get_item (G_LIST_MODEL (self->filtered),
                                                           position);

  if (user != NULL)
    gchat_application_open_chat (self->application, gchat_online_user_get_name (user));
}

static void
list_activate_cb (GchatContactsWindow *self,
                  guint                position)
{
  open_chat_at (self, position);
}

static void
search_changed_cb (GchatContactsWindow *self)
{
  const char *text = gtk_editable_get_text (GTK_EDITABLE (self->search_entry));

  gtk_string_filter_set_search (self->filter, text[0] != '\0' ? text : NULL);
}

/* Enter in the search entry opens the first match, as in other GNOME searches. */
static void
search_activate_cb (GchatContactsWindow *self)
{
  const char *text = gtk_editable_get_text (GTK_EDITABLE (self->search_entry));

  if (text[0] != '\0')
    open_chat_at (self, 0);
}

static void
search_action_cb (GSimpleAction *action,
                  GVariant      *parameter,
                  gpointer       user_data)
{
  GchatContactsWindow *self = user_data;
  gboolean enable = !gtk_search_bar_get_search_mode (self->search_bar);

  gtk_search_bar_set_search_mode (self->search_bar, enable);
  if (enable)
    gtk_widget_grab_focus (GTK_WIDGET (self->search_entry));
  else
    gtk_widget_grab_focus (GTK_WIDGET (self->list_view));
}

static const GActionEntry window_actions[] = {
  { .name = "search", .activate = search_action_cb },
};

/* GObject */

/* Closing the contact list ends the session, as in other GNOME chat applications: app.quit
 * logs out (handing on what is not yet sent) and quits; no hidden window keeps running. */
static gboolean
gchat_contacts_window_close_request (GtkWindow *window)
{
  GchatContactsWindow *self = GCHAT_CONTACTS_WINDOW (window);

  if (self->application != NULL
      && g_action_group_has_action (G_ACTION_GROUP (self->application), "quit"))
    g_action_group_activate_action (G_ACTION_GROUP (self->application), "quit", NULL);
  return GTK_WINDOW_CLASS (gchat_contacts_window_parent_class)->close_request (window);
}

static void
gchat_contacts_window_dispose (GObject *object)
{
  GchatContactsWindow *self = GCHAT_CONTACTS_WINDOW (object);

  /* Unbind the rows (and so disconnect them from the application) while it is still known. */
  if (self->list_view != NULL)
    gtk_list_view_set_model (self->list_view, NULL);
  gtk_widget_dispose_template (GTK_WIDGET (self), GCHAT_TYPE_CONTACTS_WINDOW);
  g_clear_object (&self->filtered);
  g_clear_object (&self->filter);
  g_clear_object (&self->users);
  g_clear_object (&self->client);
  g_clear_object (&self->application);
  G_OBJECT_CLASS (gchat_contacts_window_parent_class)->dispose (object);
}

static void
gchat_contacts_window_class_init (GchatContactsWindowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  GtkWindowClass *window_class = GTK_WINDOW_CLASS (klass);

  object_class->dispose = gchat_contacts_window_dispose;
  window_class->close_request = gchat_contacts_window_close_request;

  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/io/github/gchat/Gchat/gchat-contacts-window.ui");
  gtk_widget_class_bind_template_child (widget_class, GchatContactsWindow, title_label);
  gtk_widget_class_bind_template_child (widget_class, GchatContactsWindow, subtitle_label);
  gtk_widget_class_bind_template_child (widget_class, GchatContactsWindow, banner);
  gtk_widget_class_bind_template_child (widget_class, GchatContactsWindow, banner_spinner);
  gtk_widget_class_bind_template_child (widget_class, GchatContactsWindow, banner_label);
  gtk_widget_class_bind_template_child (widget_class, GchatContactsWindow, search_bar);
  gtk_widget_class_bind_template_child (widget_class, GchatContactsWindow, search_entry);
  gtk_widget_class_bind_template_child (widget_class, GchatContactsWindow, stack);
  gtk_widget_class_bind_template_child (widget_class, GchatContactsWindow, list_view);
  gtk_widget_class_bind_template_callback (widget_class, list_activate_cb);
  gtk_widget_class_bind_template_callback (widget_class, search_changed_cb);
  gtk_widget_class_bind_template_callback (widget_class, search_activate_cb);
}

static void
gchat_contacts_window_init (GchatContactsWindow *self)
{
  g_autoptr(GtkListItemFactory) factory = gtk_signal_list_item_factory_new ();

  gtk_widget_init_template (GTK_WIDGET (self));
  g_action_map_add_action_entries (G_ACTION_MAP (self), window_actions,
                                   G_N_ELEMENTS (window_actions), self);
  gtk_search_bar_set_key_capture_widget (self->search_bar, GTK_WIDGET (self));

  self->filter = gtk_string_filter_new (gtk_property_expression_new (GCHAT_TYPE_ONLINE_USER,
                                                                     NULL, "name"));
  gtk_string_filter_set_ignore_case (self->filter, TRUE);
  gtk_string_filter_set_match_mode (self->filter, GTK_STRING_FILTER_MATCH_MODE_SUBSTRING);

  g_signal_connect (factory, "setup", G_CALLBACK (factory_setup_cb), self);
  g_signal_connect (factory, "bind", G_CALLBACK (factory_bind_cb), self);
  g_signal_connect (factory, "unbind", G_CALLBACK (factory_unbind_cb), self);
  gtk_list_view_set_factory (self->list_view, factory);
}

/* What the window shows comes from the application, known only once it is set. */
static void
gchat_contacts_window_attach (GchatContactsWindow *self,
                              GchatApplication    *application)
{
  GtkNoSelection *selection;

  self->application = g_object_ref (application);
  self->client = g_object_ref (gchat_application_get_client (application));
  self->users = g_object_ref (gchat_client_get_online_users (self->client));
  self->filtered = gtk_filter_list_model_new (g_object_ref (self->users),
                                              GTK_FILTER (g_object_ref (self->filter)));
  selection = gtk_no_selection_new (g_object_ref (G_LIST_MODEL (self->filtered)));
  gtk_list_view_set_model (self->list_view, GTK_SELECTION_MODEL (selection));
  g_object_unref (selection);

  g_signal_connect_object (self->filtered, "items-changed",
                           G_CALLBACK (update_page), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (self->users, "items-changed",
                           G_CALLBACK (update_page), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (application, "unread-changed",
                           G_CALLBACK (update_title), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (self->client, "notify::state",
                           G_CALLBACK (client_state_changed_cb), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (self->client, "notify::state-reason",
                           G_CALLBACK (client_state_changed_cb), self, G_CONNECT_SWAPPED);
  g_signal_connect_object (self->client, "notify::user",
                           G_CALLBACK (update_subtitle), self, G_CONNECT_SWAPPED);

  /* Both ways: the size the user gives the window is the size of the next start. */
  g_settings_bind (gchat_application_get_settings (application), "window-width",
                   self, "default-width", G_SETTINGS_BIND_DEFAULT);
  g_settings_bind (gchat_application_get_settings (application), "window-height",
                   self, "default-height", G_SETTINGS_BIND_DEFAULT);

  update_page (self);
  update_title (self);
  client_state_changed_cb (self);
}

GchatContactsWindow *
gchat_contacts_window_new (GchatApplication *application)
{
  GchatContactsWindow *self;

  g_return_val_if_fail (GCHAT_IS_APPLICATION (application), NULL);

  self = g_object_new (GCHAT_TYPE_CONTACTS_WINDOW, "application", application, NULL);
  gchat_contacts_window_attach (self, application);
  return self;
}
