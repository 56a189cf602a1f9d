/* SPDX-License-Identifier: GPL-3.0-or-later */
/* gchat-cli's events on standard output: one a line, for a person or as JSON objects. */

#include "config.h"

#include <stdio.h>

#include <glib/gi18n-lib.h>
#include <json-glib/json-glib.h>

#include "gchat-cli-output.h"

struct _GchatCliOutput
{
  FILE    *out;
  gboolean json;
};

GchatCliOutput *
gchat_cli_output_new (FILE    *out,
                      gboolean json)
{
  GchatCliOutput *self = g_new0 (GchatCliOutput, 1);

  self->out = out;
  self->json = json;
  return self;
}

void
gchat_cli_output_free (GchatCliOutput *self)
{
  g_free (self);
}

/* The names scripts see: fixed here, whatever the client core calls them. */
static const char *
path_name (GchatClientPath path)
{
  switch (path)
    {
    case GCHAT_CLIENT_PATH_RELAY:
      return "relay";
    case GCHAT_CLIENT_PATH_OFFLINE:
      return "offline";
    case GCHAT_CLIENT_PATH_DIRECT:
    default:
      return "direct";
    }
}

static const char *
delivery_name (GchatDeliveryState state)
{
  switch (state)
    {
    case GCHAT_DELIVERY_SENDING:
      return "sending";
    case GCHAT_DELIVERY_QUEUED:
      return "queued";
    case GCHAT_DELIVERY_DELIVERED:
      return "delivered";
    case GCHAT_DELIVERY_FAILED:
    default:
      return "failed";
    }
}

static const char *
state_name (GchatClientState state)
{
  switch (state)
    {
    case GCHAT_CLIENT_STATE_CONNECTING:
      return "connecting";
    case GCHAT_CLIENT_STATE_ONLINE:
      return "online";
    case GCHAT_CLIENT_STATE_RECONNECTING:
      return "reconnecting";
    case GCHAT_CLIENT_STATE_OFFLINE:
    default:
      return "offline";
    }
}

/* A stable word for each GchatClientError, so that scripts need not parse messages. */
static const char *
error_code (const GError *error)
{
  static const char * const codes[] = {
    "unreachable", "server-key-unknown", "server-key-changed", "protocol", "closed",
    "bad-credentials", "name-taken", "bad-name", "bad-password", "sign-up-closed", "throttled",
    "busy", "unknown-user", "mailbox-full", "invalid-text", "not-logged-in", "failed",
  };

  if (error == NULL || error->domain != GCHAT_CLIENT_ERROR || error->code < 0
      || (gsize) error->code >= G_N_ELEMENTS (codes))
    return NULL;
  return codes[error->code];
}

/* Writes one line and flushes it, so a reader sees each event as it happens. */
static void
write_line (GchatCliOutput *self,
            const char     *line,
            gsize           len)
{
  fwrite (line, 1, len, self->out);
  fputc ('\n', self->out);
  fflush (self->out);
}

static JsonBuilder *
begin_event (const char *event)
{
  JsonBuilder *builder = json_builder_new ();

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "event");
  json_builder_add_string_value (builder, event);
  return builder;
}

static void
add_string (JsonBuilder *builder,
            const char  *name,
            const char  *value)
{
  json_builder_set_member_name (builder, name);
  json_builder_add_string_value (builder, value);
}

static void
add_boolean (JsonBuilder *builder,
             const char  *name,
             gboolean     value)
{
  json_builder_set_member_name (builder, name);
  json_builder_add_boolean_value (builder, value);
}

/* An id as a decimal string: a guint64 does not fit a JSON number every parser reads exactly. */
static void
add_id (JsonBuilder *builder,
        guint64      id)
{
  g_autofree char *text = g_strdup_printf ("%" G_GUINT64_FORMAT, id);

  add_string (builder, "id", text);
}

static void
end_event (GchatCliOutput *self,
           JsonBuilder    *builder)
{
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  g_autoptr(JsonNode) root = NULL;
  g_autofree char *data = NULL;
  gsize len;

  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  data = json_generator_to_data (generator, &len);
  write_line (self, data, len);
  g_object_unref (builder);
}

/* Text from the network, made safe for a terminal: control characters and the marks that
 * reorder text are shown as escapes, and no event takes more than one line. */
static char *
make_readable (const char *text)
{
  GString *out = g_string_new (NULL);

  for (const char *p = text; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);

      if (c == '\n')
        g_string_append (out, "\\n");
      else if (c == '\t')
        g_string_append (out, "\\t");
      else if (g_unichar_iscntrl (c) || (c >= 0x202A && c <= 0x202E)
               || (c >= 0x2066 && c <= 0x2069))
        g_string_append_printf (out, "\\u%04X", c);
      else
        g_string_append_unichar (out, c);
    }
  return g_string_free (out, FALSE);
}

/* A line for a person, in the terminal's character set. */
static void
print_readable (GchatCliOutput *self,
                const char     *line)
{
  const char *charset;
  g_autofree char *converted = NULL;
  gsize len = 0;

  if (!g_get_charset (&charset))
    converted = g_convert_with_fallback (line, -1, charset, "UTF-8", "?", NULL, &len, NULL);
  if (converted != NULL)
    write_line (self, converted, len);
  else
    write_line (self, line, strlen (line));
}

G_GNUC_PRINTF (2, 3)
static void
print_human (GchatCliOutput *self,
             const char     *format,
             ...)
{
  g_autofree char *line = NULL;
  va_list args;

  va_start (args, format);
  line = g_strdup_vprintf (format, args);
  va_end (args);
  print_readable (self, line);
}

static void
print_login (GchatCliOutput *self,
             gboolean        sign,
             const char     *user,
             const GError   *error,
             guint           retry_after)
{
  g_autofree char *name = make_readable (user);
  g_autofree char *message = NULL;
  g_autofree char *line = NULL;

  if (error == NULL)
    {
      print_human (self, sign ? _("Signed up and logged in as %s") : _("Logged in as %s"), name);
      return;
    }
  message = make_readable (error->message);
  line = g_strdup_printf (sign ? _("Could not sign up as “%s”: %s")
                               : _("Could not log in as “%s”: %s"),
                          name, message);
  if (retry_after > 0)
    print_human (self,
                 g_dngettext (GETTEXT_PACKAGE, "%s (try again in %u second)",
                              "%s (try again in %u seconds)", retry_after),
                 line, retry_after);
  else
    print_readable (self, line);
}

void
gchat_cli_output_login (GchatCliOutput *self,
                        const char     *event,
                        const char     *user,
                        const GError   *error,
                        guint           retry_after)
{
  JsonBuilder *builder;

  if (!self->json)
    {
      print_login (self, g_str_equal (event, "sign"), user, error, retry_after);
      return;
    }
  builder = begin_event (event);
  add_boolean (builder, "ok", error == NULL);
  add_string (builder, "user", user);
  if (error != NULL)
    {
      add_string (builder, "message", error->message);
      if (error_code (error) != NULL)
        add_string (builder, "code", error_code (error));
    }
  if (retry_after > 0)
    {
      json_builder_set_member_name (builder, "retry_after");
      json_builder_add_int_value (builder, retry_after);
    }
  end_event (self, builder);
}

void
gchat_cli_output_presence (GchatCliOutput *self,
                           const char     *user,
                           gboolean        online)
{
  JsonBuilder *builder;
  g_autofree char *name = NULL;

  if (!self->json)
    {
      name = make_readable (user);
      print_human (self, online ? _("%s is online") : _("%s went offline"), name);
      return;
    }
  builder = begin_event ("presence");
  add_string (builder, "user", user);
  add_boolean (builder, "online", online);
  end_event (self, builder);
}

void
gchat_cli_output_list (GchatCliOutput     *self,
                       const char * const *users)
{
  JsonBuilder *builder;
  g_autofree char *joined = NULL;
  g_autofree char *readable = NULL;

  if (!self->json)
    {
      joined = g_strjoinv (", ", (char **) users);
      readable = make_readable (joined);
      if (users[0] == NULL)
        print_human (self, "%s", _("Nobody else is online"));
      else
        print_human (self, _("Online: %s"), readable);
      return;
    }
  builder = begin_event ("list");
  json_builder_set_member_name (builder, "users");
  json_builder_begin_array (builder);
  for (gsize i = 0; users[i] != NULL; i++)
    json_builder_add_string_value (builder, users[i]);
  json_builder_end_array (builder);
  end_event (self, builder);
}

static void
print_message (GchatCliOutput  *self,
               const char      *from,
               const char      *text,
               GchatClientPath  path)
{
  g_autofree char *name = make_readable (from);
  g_autofree char *body = make_readable (text);

  switch (path)
    {
    case GCHAT_CLIENT_PATH_RELAY:
      print_human (self, _("%s (relayed by the server): %s"), name, body);
      break;
    case GCHAT_CLIENT_PATH_OFFLINE:
      print_human (self, _("%s (while you were offline): %s"), name, body);
      break;
    case GCHAT_CLIENT_PATH_DIRECT:
    default:
      print_human (self, _("%s: %s"), name, body);
      break;
    }
}

void
gchat_cli_output_message (GchatCliOutput  *self,
                          const char      *from,
                          const char      *text,
                          GchatClientPath  path,
                          guint64          id)
{
  JsonBuilder *builder;

  if (!self->json)
    {
      print_message (self, from, text, path);
      return;
    }
  builder = begin_event ("message");
  add_string (builder, "from", from);
  add_string (builder, "text", text);
  add_string (builder, "path", path_name (path));
  add_id (builder, id);
  end_event (self, builder);
}

static void
print_sent (GchatCliOutput     *self,
            guint64             id,
            const char         *to,
            GchatDeliveryState  state,
            const GError       *error)
{
  g_autofree char *name = make_readable (to);
  g_autofree char *why = make_readable (error != NULL ? error->message : _("unknown error"));
  g_autofree char *number = g_strdup_printf ("%" G_GUINT64_FORMAT, id);

  switch (state)
    {
    case GCHAT_DELIVERY_SENDING:
      print_human (self, _("Message %s to %s: sending"), number, name);
      break;
    case GCHAT_DELIVERY_QUEUED:
      print_human (self, _("Message %s to %s: held by the server until they log in"), number,
                   name);
      break;
    case GCHAT_DELIVERY_DELIVERED:
      print_human (self, _("Message %s to %s: delivered"), number, name);
      break;
    case GCHAT_DELIVERY_FAILED:
    default:
      print_human (self, _("Message %s to %s: not delivered: %s"), number, name, why);
      break;
    }
}

void
gchat_cli_output_sent (GchatCliOutput     *self,
                       guint64             id,
                       const char         *to,
                       GchatDeliveryState  state,
                       GchatClientPath     path,
                       const GError       *error)
{
  JsonBuilder *builder;

  if (!self->json)
    {
      print_sent (self, id, to, state, error);
      return;
    }
  builder = begin_event ("sent");
  add_string (builder, "to", to);
  add_id (builder, id);
  add_string (builder, "state", delivery_name (state));
  add_string (builder, "path", path_name (path));
  if (error != NULL)
    {
      add_string (builder, "message", error->message);
      if (error_code (error) != NULL)
        add_string (builder, "code", error_code (error));
    }
  end_event (self, builder);
}

void
gchat_cli_output_error (GchatCliOutput *self,
                        const char     *message,
                        const char     *fingerprint)
{
  JsonBuilder *builder;
  g_autofree char *readable = NULL;

  if (!self->json)
    {
      readable = make_readable (message);
      print_human (self, _("Error: %s"), readable);
      return;
    }
  builder = begin_event ("error");
  add_string (builder, "message", message);
  if (fingerprint != NULL)
    add_string (builder, "fingerprint", fingerprint);
  end_event (self, builder);
}

static void
print_state (GchatCliOutput   *self,
             GchatClientState  state,
             const char       *reason)
{
  g_autofree char *why = reason != NULL ? make_readable (reason) : NULL;

  switch (state)
    {
    case GCHAT_CLIENT_STATE_CONNECTING:
      print_human (self, "%s", _("Connecting…"));
      break;
    case GCHAT_CLIENT_STATE_ONLINE:
      print_human (self, "%s", _("Connected"));
      break;
    case GCHAT_CLIENT_STATE_RECONNECTING:
      if (why != NULL)
        print_human (self, _("Connection lost (%s); reconnecting…"), why);
      else
        print_human (self, "%s", _("Connection lost; reconnecting…"));
      break;
    case GCHAT_CLIENT_STATE_OFFLINE:
    default:
      if (why != NULL)
        print_human (self, _("Offline: %s"), why);
      else
        print_human (self, "%s", _("Offline"));
      break;
    }
}

void
gchat_cli_output_state (GchatCliOutput   *self,
                        GchatClientState  state,
                        const char       *reason)
{
  JsonBuilder *builder;

  if (!self->json)
    {
      print_state (self, state, reason);
      return;
    }
  builder = begin_event ("state");
  add_string (builder, "state", state_name (state));
  if (reason != NULL)
    add_string (builder, "message", reason);
  end_event (self, builder);
}

void
gchat_cli_output_trusted (GchatCliOutput *self,
                          const char     *fingerprint)
{
  JsonBuilder *builder;

  if (!self->json)
    {
      print_human (self, _("Trusted the server key %s; log in again"), fingerprint);
      return;
    }
  builder = begin_event ("trust");
  add_boolean (builder, "ok", TRUE);
  add_string (builder, "fingerprint", fingerprint);
  end_event (self, builder);
}

static const char * const help_lines[] = {
  N_("sign USER PASSWORD   create an account and log in"),
  N_("auth USER PASSWORD   log in"),
  N_("list                 show who is online"),
  N_("send USER TEXT       send TEXT (the rest of the line) to USER"),
  N_("trust FINGERPRINT    trust the server key of that fingerprint"),
  N_("help                 show these commands"),
  N_("quit                 log out and exit (so does the end of input)"),
};

void
gchat_cli_output_help (GchatCliOutput *self)
{
  JsonBuilder *builder;

  if (!self->json)
    {
      for (gsize i = 0; i < G_N_ELEMENTS (help_lines); i++)
        print_human (self, "%s", _(help_lines[i]));
      return;
    }
  builder = begin_event ("help");
  json_builder_set_member_name (builder, "commands");
  json_builder_begin_array (builder);
  for (gsize i = 0; i < G_N_ELEMENTS (help_lines); i++)
    json_builder_add_string_value (builder, _(help_lines[i]));
  json_builder_end_array (builder);
  end_event (self, builder);
}
