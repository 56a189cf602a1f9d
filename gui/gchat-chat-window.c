/* SPDX-License-Identifier: GPL-3.0-or-later */
/* One chat window: the messages with one peer, their delivery state, and the entry to answer. */

#include "config.h"

#include <glib/gi18n-lib.h>

#include "gchat-chat-window.h"

#define OLDER_PAGE         200
#define BOTTOM_SLACK       8.0 /* pixels from the end that still count as "at the bottom" */
#define ENTRY_LINES        5

struct _GchatChatWindow
{
  GtkApplicationWindow  parent_instance;

  GtkLabel             *title_label;
  GtkLabel             *subtitle_label;
  GtkInfoBar           *offline_bar;
  GtkLabel             *offline_label;
  GtkInfoBar           *error_bar;
  GtkLabel             *error_label;
  GtkScrolledWindow    *scroller;
  GtkListView          *list_view;
  GtkScrolledWindow    *entry_scroller;
  GtkTextView          *text_view;
  GtkButton            *send_button;

  char                 *peer;
  GchatClient          *client;
  gulong                presence_handler;
  GListModel           *messages;

  /* Following the newest message: TRUE while the view is at the bottom. */
  gboolean              sticky;
  gboolean              scrolling;
  double                last_upper;
  double                last_page_size;
  guint                 scroll_source;
};

enum {
  PROP_0,
  PROP_PEER,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE (GchatChatWindow, gchat_chat_window, GTK_TYPE_APPLICATION_WINDOW)

static GchatApplication *
get_application (GchatChatWindow *self)
{
  GtkApplication *application = gtk_window_get_application (GTK_WINDOW (self));

  return GCHAT_IS_APPLICATION (application) ? GCHAT_APPLICATION (application) : NULL;
}

static void
show_error (GchatChatWindow *self,
            const char      *message)
{
  gtk_label_set_text (self->error_label, message);
  gtk_info_bar_set_revealed (self->error_bar, TRUE);
}

static void
on_error_bar_response (GchatChatWindow *self,
                       int              response)
{
  gtk_info_bar_set_revealed (self->error_bar, FALSE);
}

/* Rows --------------------------------------------------------------------------------------- */

/* The widgets of one row, kept on its GtkListItem, which GtkListView reuses for other messages. */
typedef struct
{
  GtkWidget        *box;
  GtkWidget        *sender;
  GtkWidget        *time;
  GtkWidget        *text;
  GtkWidget        *status;
  GtkWidget        *state;
  GtkWidget        *retry;
  GchatChatMessage *message; /* the message bound, or NULL */
} Row;

static GtkWidget *
row_label (const char *css_class)
{
  GtkWidget *label = gtk_label_new (NULL);

  gtk_label_set_xalign (GTK_LABEL (label), 0);
  if (css_class != NULL)
    gtk_widget_add_css_class (label, css_class);
  return label;
}

static void
on_retry_clicked (GtkButton   *button,
                  GtkListItem *item)
{
  Row *row = g_object_get_data (G_OBJECT (item), "gchat-row");
  GchatChatWindow *self = GCHAT_CHAT_WINDOW (gtk_widget_get_root (GTK_WIDGET (button)));
  GchatApplication *application = get_application (self);
  g_autoptr(GError) error = NULL;

  if (row->message == NULL || application == NULL)
    return;
  self->sticky = TRUE;
  if (!gchat_application_send (application, self->peer,
                               gchat_chat_message_get_text (row->message), &error))
    show_error (self, error->message);
}

static void
setup_row (GtkSignalListItemFactory *factory,
           GtkListItem              *item,
           gpointer                  user_data)
{
  Row *row = g_new0 (Row, 1);
  GtkWidget *bubble = gtk_box_new (GTK_ORIENTATION_VERTICAL, 2);
  GtkWidget *header = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 8);

  row->box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 0);
  gtk_widget_add_css_class (row->box, "message");
  gtk_widget_add_css_class (bubble, "message-bubble");
  row->sender = row_label ("message-sender");
  row->time = row_label ("message-time");
  gtk_widget_add_css_class (row->time, "dim-label");
  row->text = row_label ("message-text");
  gtk_label_set_wrap (GTK_LABEL (row->text), TRUE);
  gtk_label_set_wrap_mode (GTK_LABEL (row->text), PANGO_WRAP_WORD_CHAR);
  gtk_label_set_max_width_chars (GTK_LABEL (row->text), 60);
  gtk_label_set_selectable (GTK_LABEL (row->text), TRUE);
  row->status = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 8);
  row->state = row_label ("message-state");
  gtk_label_set_wrap (GTK_LABEL (row->state), TRUE);
  row->retry = gtk_button_new_with_mnemonic (_("_Retry"));
  gtk_widget_add_css_class (row->retry, "message-retry");
  gtk_widget_set_valign (row->retry, GTK_ALIGN_CENTER);
  g_signal_connect (row->retry, "clicked", G_CALLBACK (on_retry_clicked), item);

  gtk_box_append (GTK_BOX (header), row->sender);
  gtk_box_append (GTK_BOX (header), row->time);
  gtk_box_append (GTK_BOX (row->status), row->state);
  gtk_box_append (GTK_BOX (row->status), row->retry);
  gtk_box_append (GTK_BOX (bubble), header);
  gtk_box_append (GTK_BOX (bubble), row->text);
  gtk_box_append (GTK_BOX (bubble), row->status);
  gtk_box_append (GTK_BOX (row->box), bubble);

  gtk_list_item_set_activatable (item, FALSE);
  gtk_list_item_set_selectable (item, FALSE);
  gtk_list_item_set_child (item, row->box);
  g_object_set_data_full (G_OBJECT (item), "gchat-row", row, g_free);
}

static char *
state_text (GchatChatWindow    *self,
            GchatDeliveryState  state)
{
  switch (state)
    {
    case GCHAT_DELIVERY_SENDING:
      return g_strdup (_("Sending…"));
    case GCHAT_DELIVERY_QUEUED:
      return g_strdup_printf (_("Queued — will be delivered when %s logs in"), self->peer);
    case GCHAT_DELIVERY_DELIVERED:
      return g_strdup (_("Delivered"));
    case GCHAT_DELIVERY_FAILED:
    default:
      return g_strdup (_("Failed"));
    }
}

static void
row_show_state (Row             *row,
                GchatChatWindow *self)
{
  GchatDeliveryState state = gchat_chat_message_get_state (row->message);
  g_autofree char *text = state_text (self, state);

  gtk_label_set_text (GTK_LABEL (row->state), text);
  gtk_widget_set_visible (row->retry, state == GCHAT_DELIVERY_FAILED);
  if (state == GCHAT_DELIVERY_FAILED)
    gtk_widget_add_css_class (row->box, "failed");
  else
    gtk_widget_remove_css_class (row->box, "failed");
}

static void
on_message_state (GchatChatMessage *message,
                  GParamSpec       *pspec,
                  GtkListItem      *item)
{
  Row *row = g_object_get_data (G_OBJECT (item), "gchat-row");
  GtkRoot *root = gtk_widget_get_root (row->box);

  if (row->message == message && GCHAT_IS_CHAT_WINDOW (root))
    row_show_state (row, GCHAT_CHAT_WINDOW (root));
}

static void
row_show_time (Row    *row,
               gint64  unix_time)
{
  g_autoptr(GDateTime) time = g_date_time_new_from_unix_local (unix_time);
  g_autofree char *short_text = NULL;
  g_autofree char *long_text = NULL;

  if (time == NULL)
    {
      gtk_label_set_text (GTK_LABEL (row->time), "");
      gtk_widget_set_tooltip_text (row->time, NULL);
      return;
    }
  short_text = g_date_time_format (time, "%H:%M");
  /* TRANSLATORS: the full date and time of a message, in its tooltip; see g_date_time_format(). */
  long_text = g_date_time_format (time, _("%A %-d %B %Y, %H:%M:%S"));
  gtk_label_set_text (GTK_LABEL (row->time), short_text);
  gtk_widget_set_tooltip_text (row->time, long_text);
}

static void
bind_row (GtkSignalListItemFactory *factory,
          GtkListItem              *item,
          GchatChatWindow          *self)
{
  Row *row = g_object_get_data (G_OBJECT (item), "gchat-row");
  GchatChatMessage *message = gtk_list_item_get_item (item);
  gboolean outgoing = gchat_chat_message_get_outgoing (message);

  row->message = g_object_ref (message);
  gtk_label_set_text (GTK_LABEL (row->sender),
                      outgoing ? _("You") : gchat_chat_message_get_sender (message));
  gtk_label_set_text (GTK_LABEL (row->text), gchat_chat_message_get_text (message));
  row_show_time (row, gchat_chat_message_get_time (message));
  gtk_widget_set_halign (row->box, outgoing ? GTK_ALIGN_END : GTK_ALIGN_START);
  if (outgoing)
    {
      gtk_widget_add_css_class (row->box, "outgoing");
      gtk_widget_remove_css_class (row->box, "incoming");
      row_show_state (row, self);
      g_signal_connect (message, "notify::state", G_CALLBACK (on_message_state), item);
    }
  else
    {
      gtk_widget_add_css_class (row->box, "incoming");
      gtk_widget_remove_css_class (row->box, "outgoing");
      gtk_widget_remove_css_class (row->box, "failed");
    }
  gtk_widget_set_visible (row->status, outgoing);
}

static void
unbind_row (GtkSignalListItemFactory *factory,
            GtkListItem              *item,
            GchatChatWindow          *self)
{
  Row *row = g_object_get_data (G_OBJECT (item), "gchat-row");

  if (row->message == NULL)
    return;
  g_signal_handlers_disconnect_by_func (row->message, on_message_state, item);
  g_clear_object (&row->message);
}

/* Scrolling ---------------------------------------------------------------------------------- */

static void
scroll_to_bottom (GchatChatWindow *self)
{
  GtkAdjustment *adjustment = gtk_scrolled_window_get_vadjustment (self->scroller);

  self->scrolling = TRUE;
  gtk_adjustment_set_value (adjustment, gtk_adjustment_get_upper (adjustment)
                                        - gtk_adjustment_get_page_size (adjustment));
  self->scrolling = FALSE;
}

static gboolean
scroll_idle_cb (gpointer user_data)
{
  GchatChatWindow *self = user_data;

  self->scroll_source = 0;
  if (self->sticky)
    scroll_to_bottom (self);
  return G_SOURCE_REMOVE;
}

/* Scrolls once the list view has finished its layout: setting the value from within its size
 * allocation would be overridden by the allocation itself. */
static void
schedule_scroll_to_bottom (GchatChatWindow *self)
{
  if (self->scroll_source == 0)
    self->scroll_source = g_idle_add (scroll_idle_cb, self);
}

/* A change of the content's size (a new message, rows measured) keeps a view that was at the
 * bottom there; a change of the position alone is the user scrolling, which decides it. */
static void
on_adjustment_changed (GtkAdjustment   *adjustment,
                       GchatChatWindow *self)
{
  double upper = gtk_adjustment_get_upper (adjustment);
  double page_size = gtk_adjustment_get_page_size (adjustment);
  gboolean resized = upper != self->last_upper || page_size != self->last_page_size;

  self->last_upper = upper;
  self->last_page_size = page_size;
  if (self->scrolling)
    return;
  if (resized && self->sticky)
    schedule_scroll_to_bottom (self);
  else if (!resized && self->scroll_source == 0)
    self->sticky = gtk_adjustment_get_value (adjustment) + page_size >= upper - BOTTOM_SLACK;
}

static void
on_items_changed (GListModel      *model,
                  guint            position,
                  guint            removed,
                  guint            added,
                  GchatChatWindow *self)
{
  /* Older messages put in front keep the view on the same rows; only new ones at the end
   * bring a view that was at the bottom along. */
  if (added == 0 || position + added != g_list_model_get_n_items (model) || !self->sticky)
    return;
  schedule_scroll_to_bottom (self);
}

static void
on_edge_reached (GchatChatWindow *self,
                 GtkPositionType  position)
{
  GchatApplication *application = get_application (self);
  GchatHistory *history = application != NULL ? gchat_application_get_history (application) : NULL;

  if (position != GTK_POS_TOP || history == NULL || self->sticky)
    return;
  gchat_history_load_older (history, self->peer, OLDER_PAGE);
}

/* Presence ----------------------------------------------------------------------------------- */

static void
show_presence (GchatChatWindow *self)
{
  gboolean online = self->client != NULL && gchat_client_is_online (self->client, self->peer);
  g_autofree char *banner = NULL;

  gtk_label_set_text (self->subtitle_label, online ? _("Online")
                                                   : _("offline — messages will be delivered "
                                                       "when they log in"));
  if (!online)
    {
      banner = g_strdup_printf (_("%s is offline. Your messages will be delivered when they "
                                  "log in."), self->peer);
      gtk_label_set_text (self->offline_label, banner);
    }
  gtk_info_bar_set_revealed (self->offline_bar, !online);
}

static void
on_presence (GchatClient     *client,
             const char      *user,
             gboolean         online,
             GchatChatWindow *self)
{
  if (g_ascii_strcasecmp (user, self->peer) == 0)
    show_presence (self);
}

/* Sending ------------------------------------------------------------------------------------ */

static char *
get_entry_text (GchatChatWindow *self)
{
  GtkTextBuffer *buffer = gtk_text_view_get_buffer (self->text_view);
  GtkTextIter start, end;

  gtk_text_buffer_get_bounds (buffer, &start, &end);
  return gtk_text_buffer_get_text (buffer, &start, &end, FALSE);
}

static gboolean
is_blank (const char *text)
{
  for (; *text != '\0'; text++)
    if (!g_ascii_isspace (*text))
      return FALSE;
  return TRUE;
}

static void
send_entry (GchatChatWindow *self)
{
  GchatApplication *application = get_application (self);
  g_autofree char *text = get_entry_text (self);
  g_autoptr(GError) error = NULL;

  if (is_blank (text) || application == NULL)
    return;
  /* Sending shows the new message, wherever the view was. */
  self->sticky = TRUE;
  if (!gchat_application_send (application, self->peer, g_strchomp (text), &error))
    {
      show_error (self, error->message);
      return;
    }
  gtk_info_bar_set_revealed (self->error_bar, FALSE);
  gtk_text_buffer_set_text (gtk_text_view_get_buffer (self->text_view), "", 0);
}

static void
on_send_clicked (GchatChatWindow *self)
{
  send_entry (self);
  gtk_widget_grab_focus (GTK_WIDGET (self->text_view));
}

static void
on_buffer_changed (GtkTextBuffer   *buffer,
                   GchatChatWindow *self)
{
  g_autofree char *text = get_entry_text (self);

  gtk_widget_set_sensitive (GTK_WIDGET (self->send_button), !is_blank (text));
}

/* Enter sends; Shift+Enter is left to the text view, which starts a new line. */
static gboolean
on_key_pressed (GtkEventControllerKey *controller,
                guint                  keyval,
                guint                  keycode,
                GdkModifierType        state,
                GchatChatWindow       *self)
{
  if (keyval != GDK_KEY_Return && keyval != GDK_KEY_KP_Enter && keyval != GDK_KEY_ISO_Enter)
    return FALSE;
  if ((state & (GDK_SHIFT_MASK | GDK_CONTROL_MASK | GDK_ALT_MASK)) != 0)
    return FALSE;
  send_entry (self);
  return TRUE;
}

/* The entry grows with its text up to ENTRY_LINES lines, then scrolls. */
static void
limit_entry_height (GchatChatWindow *self)
{
  PangoContext *context = gtk_widget_get_pango_context (GTK_WIDGET (self->text_view));
  PangoFontMetrics *metrics = pango_context_get_metrics (context, NULL, NULL);
  int line = PANGO_PIXELS (pango_font_metrics_get_height (metrics));

  pango_font_metrics_unref (metrics);
  if (line <= 0)
    line = 20;
  gtk_scrolled_window_set_max_content_height (self->entry_scroller, ENTRY_LINES * line + 12);
}

/* The window ---------------------------------------------------------------------------------- */

static void
on_is_active (GchatChatWindow *self)
{
  GchatApplication *application = get_application (self);

  if (application != NULL && gtk_window_is_active (GTK_WINDOW (self)))
    gchat_application_mark_read (application, self->peer);
}

static void
setup_factory (GchatChatWindow *self)
{
  GtkListItemFactory *factory = gtk_signal_list_item_factory_new ();

  g_signal_connect (factory, "setup", G_CALLBACK (setup_row), self);
  g_signal_connect (factory, "bind", G_CALLBACK (bind_row), self);
  g_signal_connect (factory, "unbind", G_CALLBACK (unbind_row), self);
  gtk_list_view_set_factory (self->list_view, factory);
  g_object_unref (factory);
}

/* Shows @messages, in place of what was shown. */
static void
set_messages (GchatChatWindow *self,
              GListModel      *messages)
{
  GtkNoSelection *selection;

  if (self->messages != NULL)
    g_signal_handlers_disconnect_by_func (self->messages, on_items_changed, self);
  g_set_object (&self->messages, messages);
  selection = gtk_no_selection_new (g_object_ref (messages));
  gtk_list_view_set_model (self->list_view, GTK_SELECTION_MODEL (selection));
  g_object_unref (selection);
  g_signal_connect (messages, "items-changed", G_CALLBACK (on_items_changed), self);
}

/* GtkWindow's "application" is set after construction: the window attaches to the application's
 * history and client when it gets one. */
static void
on_application_changed (GchatChatWindow *self,
                        GParamSpec      *pspec,
                        gpointer         user_data)
{
  GchatApplication *application = get_application (self);
  GchatHistory *history;

  if (application == NULL || self->client != NULL || self->peer == NULL)
    return;
  history = gchat_application_get_history (application);
  if (history != NULL)
    set_messages (self, gchat_history_get_messages (history, self->peer));
  self->client = g_object_ref (gchat_application_get_client (application));
  self->presence_handler = g_signal_connect (self->client, "presence",
                                             G_CALLBACK (on_presence), self);
  show_presence (self);
}

static void
gchat_chat_window_constructed (GObject *object)
{
  GchatChatWindow *self = GCHAT_CHAT_WINDOW (object);
  g_autoptr(GListModel) empty = NULL;

  G_OBJECT_CLASS (gchat_chat_window_parent_class)->constructed (object);

  gtk_window_set_title (GTK_WINDOW (self), self->peer);
  gtk_label_set_text (self->title_label, self->peer);
  setup_factory (self);
  /* Empty until the application's history is known. */
  empty = G_LIST_MODEL (g_list_store_new (GCHAT_TYPE_CHAT_MESSAGE));
  set_messages (self, empty);
  show_presence (self);
  limit_entry_height (self);
  gtk_widget_grab_focus (GTK_WIDGET (self->text_view));
  g_signal_connect (self, "notify::application", G_CALLBACK (on_application_changed), NULL);
  on_application_changed (self, NULL, NULL);
}

static void
gchat_chat_window_dispose (GObject *object)
{
  GchatChatWindow *self = GCHAT_CHAT_WINDOW (object);

  g_clear_handle_id (&self->scroll_source, g_source_remove);
  if (self->client != NULL)
    g_clear_signal_handler (&self->presence_handler, self->client);
  g_clear_object (&self->client);
  gtk_widget_dispose_template (GTK_WIDGET (self), GCHAT_TYPE_CHAT_WINDOW);
  if (self->messages != NULL)
    g_signal_handlers_disconnect_by_func (self->messages, on_items_changed, self);
  g_clear_object (&self->messages);

  G_OBJECT_CLASS (gchat_chat_window_parent_class)->dispose (object);
}

static void
gchat_chat_window_finalize (GObject *object)
{
  GchatChatWindow *self = GCHAT_CHAT_WINDOW (object);

  g_free (self->peer);

  G_OBJECT_CLASS (gchat_chat_window_parent_class)->finalize (object);
}

static void
gchat_chat_window_get_property (GObject    *object,
                                guint       prop_id,
                                GValue     *value,
                                GParamSpec *pspec)
{
  GchatChatWindow *self = GCHAT_CHAT_WINDOW (object);

  switch (prop_id)
    {
    case PROP_PEER:
      g_value_set_string (value, self->peer);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
gchat_chat_window_set_property (GObject      *object,
                                guint         prop_id,
                                const GValue *value,
                                GParamSpec   *pspec)
{
  GchatChatWindow *self = GCHAT_CHAT_WINDOW (object);

  switch (prop_id)
    {
    case PROP_PEER:
      g_free (self->peer);
      self->peer = g_value_dup_string (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
gchat_chat_window_class_init (GchatChatWindowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->constructed = gchat_chat_window_constructed;
  object_class->dispose = gchat_chat_window_dispose;
  object_class->finalize = gchat_chat_window_finalize;
  object_class->get_property = gchat_chat_window_get_property;
  object_class->set_property = gchat_chat_window_set_property;

  properties[PROP_PEER] =
    g_param_spec_string ("peer", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/io/github/gchat/Gchat/gchat-chat-window.ui");
  gtk_widget_class_bind_template_child (widget_class, GchatChatWindow, title_label);
  gtk_widget_class_bind_template_child (widget_class, GchatChatWindow, subtitle_label);
  gtk_widget_class_bind_template_child (widget_class, GchatChatWindow, offline_bar);
  gtk_widget_class_bind_template_child (widget_class, GchatChatWindow, offline_label);
  gtk_widget_class_bind_template_child (widget_class, GchatChatWindow, error_bar);
  gtk_widget_class_bind_template_child (widget_class, GchatChatWindow, error_label);
  gtk_widget_class_bind_template_child (widget_class, GchatChatWindow, scroller);
  gtk_widget_class_bind_template_child (widget_class, GchatChatWindow, list_view);
  gtk_widget_class_bind_template_child (widget_class, GchatChatWindow, entry_scroller);
  gtk_widget_class_bind_template_child (widget_class, GchatChatWindow, text_view);
  gtk_widget_class_bind_template_child (widget_class, GchatChatWindow, send_button);
  gtk_widget_class_bind_template_callback (widget_class, on_error_bar_response);
  gtk_widget_class_bind_template_callback (widget_class, on_edge_reached);
  gtk_widget_class_bind_template_callback (widget_class, on_send_clicked);

  /* GtkWindow's own "window.close" action, on Ctrl+W wherever the focus is. */
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_w, GDK_CONTROL_MASK, "window.close",
                                       NULL);
}

static void
gchat_chat_window_init (GchatChatWindow *self)
{
  GtkEventController *keys;
  GtkAdjustment *adjustment;

  gtk_widget_init_template (GTK_WIDGET (self));
  self->sticky = TRUE;

  keys = gtk_event_controller_key_new ();
  gtk_event_controller_set_propagation_phase (keys, GTK_PHASE_CAPTURE);
  g_signal_connect (keys, "key-pressed", G_CALLBACK (on_key_pressed), self);
  gtk_widget_add_controller (GTK_WIDGET (self->text_view), keys);
  g_signal_connect (gtk_text_view_get_buffer (self->text_view), "changed",
                    G_CALLBACK (on_buffer_changed), self);

  adjustment = gtk_scrolled_window_get_vadjustment (self->scroller);
  g_signal_connect (adjustment, "changed", G_CALLBACK (on_adjustment_changed), self);
  g_signal_connect (adjustment, "value-changed", G_CALLBACK (on_adjustment_changed), self);
  g_signal_connect_swapped (self, "notify::is-active", G_CALLBACK (on_is_active), self);
}

GchatChatWindow *
gchat_chat_window_new (GchatApplication *application,
                       const char       *peer)
{
  g_return_val_if_fail (GCHAT_IS_APPLICATION (application), NULL);
  g_return_val_if_fail (peer != NULL, NULL);

  return g_object_new (GCHAT_TYPE_CHAT_WINDOW,
                       "application", application,
                       "peer", peer,
                       NULL);
}

const char *
gchat_chat_window_get_peer (GchatChatWindow *self)
{
  g_return_val_if_fail (GCHAT_IS_CHAT_WINDOW (self), NULL);
  return self->peer;
}
