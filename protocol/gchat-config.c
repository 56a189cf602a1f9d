/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Loads the YAML configuration of gchatd and the clients into typed values or positioned errors. */

#include "config.h"

#include <inttypes.h>
#include <string.h>

#include <gio/gio.h>
#include <glib/gi18n-lib.h>
#include <yaml.h>

#include "gchat-config.h"

/* Longest string value (and key) accepted. A path or a host name never needs more. */
#define MAX_STRING_LENGTH 4096
/* How many characters of a bad value are quoted back in a message. */
#define MAX_QUOTED_CHARS 40
/* Unknown keys listed one by one before a single summary line; keeps the log readable. */
#define MAX_WARNINGS 32

typedef enum {
  KEY_STRING,
  KEY_PATH,
  KEY_INT,
  KEY_BOOL,
} KeyKind;

typedef struct {
  const char *name;
  KeyKind     kind;
  /* What a value must look like, for error messages; integer ranges are appended. */
  const char *expected;
  gint64      min;
  gint64      max;
  /* The default of STRING and PATH keys (PATH defaults must be absolute or NULL)… */
  const char *default_string;
  /* …and of INT and BOOL keys. */
  gint64      default_int;
} KeyInfo;

#define STRING_KEY(name, def)        { name, KEY_STRING, N_("text"), 0, 0, def, 0 }
#define PATH_KEY(name)               { name, KEY_PATH, N_("a file path"), 0, 0, NULL, 0 }
#define INT_KEY(name, min, max, def) { name, KEY_INT, N_("a whole number"), min, max, NULL, def }
#define BOOL_KEY(name, def) \
  { name, KEY_BOOL, N_("true or false (or yes/no, on/off)"), 0, 0, NULL, def }

/* Every key a configuration file may set. The first five keep the original project's names
 * (“server_privateKey”, “data_base”) on purpose, so that its files still load. */
static const KeyInfo keys[] = {
  STRING_KEY ("server_address", "localhost"),
  INT_KEY ("server_port", 1, 65535, GCHAT_DEFAULT_PORT),
  PATH_KEY ("server_certificate"),
  PATH_KEY ("server_privateKey"),
  PATH_KEY ("data_base"),
  INT_KEY ("argon2_memory_kib", GCHAT_ARGON2_MIN_MEMORY_KIB, GCHAT_ARGON2_MAX_MEMORY_KIB,
           GCHAT_ARGON2_DEFAULT_MEMORY_KIB),
  INT_KEY ("argon2_iterations", 1, GCHAT_ARGON2_MAX_ITERATIONS, GCHAT_ARGON2_DEFAULT_ITERATIONS),
  INT_KEY ("argon2_parallelism", 1, GCHAT_ARGON2_MAX_PARALLELISM,
           GCHAT_ARGON2_DEFAULT_PARALLELISM),
  INT_KEY ("max_connections", 1, 1000000, 19000),
  INT_KEY ("login_timeout", 1, 600, 30),
  INT_KEY ("idle_timeout", 10, 86400, 90),
  BOOL_KEY ("allow_sign_up", TRUE),
};

#define N_KEYS G_N_ELEMENTS (keys)

struct _GchatConfig
{
  GObject    parent_instance;

  char      *strings[N_KEYS];
  gint64     ints[N_KEYS];
  gboolean   from_file[N_KEYS];
  GPtrArray *warnings; /* NULL-terminated */
};

G_DEFINE_FINAL_TYPE (GchatConfig, gchat_config, G_TYPE_OBJECT)

G_DEFINE_QUARK (gchat-config-error-quark, gchat_config_error)

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (yaml_parser_t, yaml_parser_delete)
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (yaml_event_t, yaml_event_delete)

/* The state of one load: the parser, where messages point, and the keys seen so far. */
typedef struct {
  GchatConfig   *config;
  yaml_parser_t *parser;
  const char    *display_name;
  const char    *base_dir;
  GHashTable    *seen; /* key → line where it was first set, 1-based */
  guint          n_unknown;
} Loader;

static void
gchat_config_finalize (GObject *object)
{
  GchatConfig *self = GCHAT_CONFIG (object);

  for (gsize i = 0; i < N_KEYS; i++)
    g_free (self->strings[i]);
  g_ptr_array_unref (self->warnings);

  G_OBJECT_CLASS (gchat_config_parent_class)->finalize (object);
}

static void
gchat_config_class_init (GchatConfigClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = gchat_config_finalize;
}

static void
gchat_config_init (GchatConfig *self)
{
  for (gsize i = 0; i < N_KEYS; i++)
    {
      self->strings[i] = g_strdup (keys[i].default_string);
      self->ints[i] = keys[i].default_int;
    }

  self->warnings = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (self->warnings, NULL);
}

static const KeyInfo *
lookup_key (const char *name,
            gsize      *index)
{
  for (gsize i = 0; i < N_KEYS; i++)
    {
      if (strcmp (keys[i].name, name) == 0)
        {
          *index = i;
          return &keys[i];
        }
    }

  return NULL;
}

/* Returns what a value of @info must be, in words, ranges included. */
static char *
describe_expected (const KeyInfo *info)
{
  if (info->kind == KEY_INT)
    return g_strdup_printf (_("%s from %" PRId64 " to %" PRId64),
                            _(info->expected), info->min, info->max);

  return g_strdup (_(info->expected));
}

/* Returns @text (@len bytes, from a hostile file) fit to quote in a one-line message: valid
 * UTF-8, control characters escaped, and cut after a few dozen characters. */
static char *
quote_for_message (const char *text,
                   gsize       len)
{
  g_autofree char *valid = g_utf8_make_valid (text, (gssize) len);
  GString *out = g_string_new (NULL);
  const char *p = valid;
  guint n_chars = 0;

  for (; *p != '\0' && n_chars < MAX_QUOTED_CHARS; p = g_utf8_next_char (p), n_chars++)
    {
      gunichar c = g_utf8_get_char (p);

      if (g_unichar_iscntrl (c) || c == 0x2028 || c == 0x2029)
        g_string_append_printf (out, "\\u%04x", c);
      else
        g_string_append_unichar (out, c);
    }

  if (*p != '\0')
    g_string_append (out, "…");

  return g_string_free (out, FALSE);
}

static void
set_error_at (Loader           *loader,
              GError          **error,
              GchatConfigError  code,
              yaml_mark_t       mark,
              const char       *message)
{
  g_set_error (error, GCHAT_CONFIG_ERROR, code, "%s:%zu:%zu: %s", loader->display_name,
               mark.line + 1, mark.column + 1, message);
}

/* Turns a libyaml failure into a SYNTAX error that points where libyaml stopped. */
static void
set_parser_error (Loader      *loader,
                  const char  *data,
                  gsize        len,
                  GError     **error)
{
  yaml_parser_t *parser = loader->parser;
  yaml_mark_t mark = parser->problem_mark;
  const char *problem = parser->problem != NULL ? parser->problem : _("the parser failed");
  g_autofree char *message = NULL;

  /* The reader, which checks the encoding, only knows a byte offset: count lines ourselves. */
  if (parser->error == YAML_READER_ERROR)
    {
      mark.line = mark.column = 0;
      for (gsize i = 0; i < MIN (parser->problem_offset, len); i++)
        {
          if (data[i] == '\n')
            {
              mark.line++;
              mark.column = 0;
            }
          else if (((guchar) data[i] & 0xC0) != 0x80)
            mark.column++;
        }
    }

  if (parser->context != NULL)
    message = g_strdup_printf (_("%s (%s at line %zu, column %zu)"), problem, parser->context,
                               parser->context_mark.line + 1, parser->context_mark.column + 1);
  else
    message = g_strdup (problem);

  set_error_at (loader, error, GCHAT_CONFIG_ERROR_SYNTAX, mark, message);
}

static gboolean
loader_next (Loader        *loader,
             const char    *data,
             gsize          len,
             yaml_event_t  *event,
             GError       **error)
{
  if (!yaml_parser_parse (loader->parser, event))
    {
      set_parser_error (loader, data, len, error);
      return FALSE;
    }

  return TRUE;
}

/* Anchors, aliases and tags have no use in a flat file of settings: refuse them plainly. */
static gboolean
check_plain_node (Loader        *loader,
                  yaml_event_t  *event,
                  GError       **error)
{
  const yaml_char_t *anchor = NULL;
  const yaml_char_t *tag = NULL;

  if (event->type == YAML_ALIAS_EVENT)
    {
      set_error_at (loader, error, GCHAT_CONFIG_ERROR_SYNTAX, event->start_mark,
                    _("YAML aliases (“*name”) are not supported in a configuration file"));
      return FALSE;
    }

  if (event->type == YAML_SCALAR_EVENT)
    {
      anchor = event->data.scalar.anchor;
      tag = event->data.scalar.tag;
    }
  else if (event->type == YAML_MAPPING_START_EVENT)
    {
      anchor = event->data.mapping_start.anchor;
      tag = event->data.mapping_start.tag;
    }
  else if (event->type == YAML_SEQUENCE_START_EVENT)
    {
      anchor = event->data.sequence_start.anchor;
      tag = event->data.sequence_start.tag;
    }

  if (anchor != NULL)
    {
      set_error_at (loader, error, GCHAT_CONFIG_ERROR_SYNTAX, event->start_mark,
                    _("YAML anchors (“&name”) are not supported in a configuration file"));
      return FALSE;
    }

  if (tag != NULL)
    {
      set_error_at (loader, error, GCHAT_CONFIG_ERROR_SYNTAX, event->start_mark,
                    _("YAML tags (“!name”) are not supported in a configuration file"));
      return FALSE;
    }

  return TRUE;
}

static gboolean
is_null_scalar (const yaml_event_t *event)
{
  const char *value = (const char *) event->data.scalar.value;

  if (event->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
    return FALSE;

  return event->data.scalar.length == 0 || strcmp (value, "~") == 0
         || strcmp (value, "null") == 0 || strcmp (value, "Null") == 0
         || strcmp (value, "NULL") == 0;
}

static gboolean
is_decimal_integer (const char *text)
{
  if (*text == '+' || *text == '-')
    text++;

  if (*text == '\0')
    return FALSE;

  for (; *text != '\0'; text++)
    {
      if (!g_ascii_isdigit (*text))
        return FALSE;
    }

  return TRUE;
}

static void
set_type_error (Loader             *loader,
                const KeyInfo      *info,
                const yaml_event_t *event,
                GError            **error)
{
  g_autofree char *expected = describe_expected (info);
  g_autofree char *message = NULL;

  if (event->type == YAML_SEQUENCE_START_EVENT)
    message = g_strdup_printf (_("“%s” must be %s, not a list"), info->name, expected);
  else if (event->type == YAML_MAPPING_START_EVENT)
    message = g_strdup_printf (_("“%s” must be %s, not a mapping"), info->name, expected);
  else
    {
      g_autofree char *quoted = quote_for_message ((const char *) event->data.scalar.value,
                                                   event->data.scalar.length);

      message = g_strdup_printf (_("“%s” must be %s, not “%s”"), info->name, expected, quoted);
    }

  set_error_at (loader, error, GCHAT_CONFIG_ERROR_TYPE, event->start_mark, message);
}

static gboolean
parse_int (Loader              *loader,
           const KeyInfo       *info,
           const yaml_event_t  *event,
           gint64              *out,
           GError             **error)
{
  const char *text = (const char *) event->data.scalar.value;
  gint64 value = 0;

  if (!is_decimal_integer (text))
    {
      set_type_error (loader, info, event, error);
      return FALSE;
    }

  /* Only overflow can fail here, which is out of range too. */
  if (!g_ascii_string_to_signed (text, 10, G_MININT64, G_MAXINT64, &value, NULL)
      || value < info->min || value > info->max)
    {
      g_autofree char *expected = describe_expected (info);
      g_autofree char *quoted = quote_for_message (text, event->data.scalar.length);
      g_autofree char *message
          = g_strdup_printf (_("“%s” must be %s, not %s"), info->name, expected, quoted);

      set_error_at (loader, error, GCHAT_CONFIG_ERROR_VALUE, event->start_mark, message);
      return FALSE;
    }

  *out = value;
  return TRUE;
}

static gboolean
parse_bool (Loader              *loader,
            const KeyInfo       *info,
            const yaml_event_t  *event,
            gint64              *out,
            GError             **error)
{
  static const char *const truths[] = { "true", "yes", "on" };
  static const char *const falsehoods[] = { "false", "no", "off" };
  const char *text = (const char *) event->data.scalar.value;

  for (gsize i = 0; i < G_N_ELEMENTS (truths); i++)
    {
      if (g_ascii_strcasecmp (text, truths[i]) == 0)
        {
          *out = TRUE;
          return TRUE;
        }

      if (g_ascii_strcasecmp (text, falsehoods[i]) == 0)
        {
          *out = FALSE;
          return TRUE;
        }
    }

  set_type_error (loader, info, event, error);
  return FALSE;
}

/* Makes @text absolute: “~/” is the home folder, anything else relative is the file's folder. */
static char *
resolve_path (Loader     *loader,
              const char *text)
{
  g_autofree char *expanded = NULL;

  if (strcmp (text, "~") == 0)
    expanded = g_strdup (g_get_home_dir ());
  else if (g_str_has_prefix (text, "~/"))
    expanded = g_build_filename (g_get_home_dir (), text + 2, NULL);
  else
    expanded = g_strdup (text);

  return g_canonicalize_filename (expanded, loader->base_dir);
}

static gboolean
is_within_limits (const yaml_event_t *scalar)
{
  gsize len = scalar->data.scalar.length;

  return len <= MAX_STRING_LENGTH && memchr (scalar->data.scalar.value, '\0', len) == NULL;
}

/* Checks what every value must be before the key's kind looks at it. */
static gboolean
check_value_limits (Loader              *loader,
                    const char          *name,
                    const yaml_event_t  *event,
                    GError             **error)
{
  g_autofree char *message = NULL;

  if (is_within_limits (event))
    return TRUE;

  if (event->data.scalar.length > MAX_STRING_LENGTH)
    message = g_strdup_printf (_("“%s” is longer than %d bytes"), name, MAX_STRING_LENGTH);
  else
    message = g_strdup_printf (_("“%s” must not contain a NUL character"), name);

  set_error_at (loader, error, GCHAT_CONFIG_ERROR_VALUE, event->start_mark, message);
  return FALSE;
}

/* Stores the scalar @event as the value of the known key @index. */
static gboolean
set_value (Loader              *loader,
           gsize                index,
           const yaml_event_t  *event,
           GError             **error)
{
  const KeyInfo *info = &keys[index];
  GchatConfig *config = loader->config;
  const char *text = (const char *) event->data.scalar.value;

  if (!check_value_limits (loader, info->name, event, error))
    return FALSE;

  /* An empty value, “~” or “null” leaves the key at its default, as if it were not there. An
   * empty quoted string is no host name or path either. */
  if (is_null_scalar (event) || (*text == '\0' && info->kind != KEY_INT && info->kind != KEY_BOOL))
    return TRUE;

  switch (info->kind)
    {
    case KEY_STRING:
      g_free (config->strings[index]);
      config->strings[index] = g_strdup (text);
      break;
    case KEY_PATH:
      g_free (config->strings[index]);
      config->strings[index] = resolve_path (loader, text);
      break;
    case KEY_INT:
      if (!parse_int (loader, info, event, &config->ints[index], error))
        return FALSE;
      break;
    case KEY_BOOL:
      if (!parse_bool (loader, info, event, &config->ints[index], error))
        return FALSE;
      break;
    default:
      g_assert_not_reached ();
    }

  config->from_file[index] = TRUE;
  return TRUE;
}

static void
add_unknown_key_warning (Loader             *loader,
                         const yaml_event_t *key)
{
  GPtrArray *warnings = loader->config->warnings;
  char *warning = NULL;

  loader->n_unknown++;
  if (loader->n_unknown > MAX_WARNINGS + 1)
    return;

  if (loader->n_unknown == MAX_WARNINGS + 1)
    {
      warning = g_strdup_printf (_("%s:%zu: more unknown keys, ignored without listing them"),
                                 loader->display_name, key->start_mark.line + 1);
    }
  else
    {
      g_autofree char *quoted = quote_for_message ((const char *) key->data.scalar.value,
                                                   key->data.scalar.length);

      warning = g_strdup_printf (_("%s:%zu: unknown key “%s”, ignored"), loader->display_name,
                                 key->start_mark.line + 1, quoted);
    }

  /* Keep the array NULL-terminated: the new line replaces the terminator. */
  g_ptr_array_index (warnings, warnings->len - 1) = warning;
  g_ptr_array_add (warnings, NULL);
}

/* Refuses a key the mapping already had, which YAML forbids and which would hide a mistake. */
static gboolean
check_key (Loader              *loader,
           const yaml_event_t  *key,
           GError             **error)
{
  const char *name = (const char *) key->data.scalar.value;
  gpointer first_line = NULL;

  if (!is_within_limits (key))
    {
      set_error_at (loader, error, GCHAT_CONFIG_ERROR_SYNTAX, key->start_mark,
                    _("keys must be short names without NUL characters"));
      return FALSE;
    }

  if (g_hash_table_lookup_extended (loader->seen, name, NULL, &first_line))
    {
      g_autofree char *quoted = quote_for_message (name, key->data.scalar.length);
      g_autofree char *message
          = g_strdup_printf (_("“%s” is set twice; it was first set on line %u"), quoted,
                             GPOINTER_TO_UINT (first_line));

      set_error_at (loader, error, GCHAT_CONFIG_ERROR_SYNTAX, key->start_mark, message);
      return FALSE;
    }

  g_hash_table_insert (loader->seen, g_strdup (name),
                       GUINT_TO_POINTER ((guint) MIN (key->start_mark.line + 1, G_MAXUINT)));
  return TRUE;
}

static void
set_nested_value_error (Loader              *loader,
                        const yaml_event_t  *key,
                        const yaml_event_t  *value,
                        GError             **error)
{
  g_autofree char *quoted = quote_for_message ((const char *) key->data.scalar.value,
                                               key->data.scalar.length);
  g_autofree char *message
      = g_strdup_printf (_("“%s” must have a single value, not a list or a mapping"), quoted);

  set_error_at (loader, error, GCHAT_CONFIG_ERROR_SYNTAX, value->start_mark, message);
}

/* Reads the value that follows the scalar @key and stores it when the key is known. */
static gboolean
load_entry (Loader              *loader,
            const char          *data,
            gsize                len,
            const yaml_event_t  *key,
            GError             **error)
{
  g_auto (yaml_event_t) value = { 0 };
  const KeyInfo *info = NULL;
  gsize index = 0;

  if (!check_key (loader, key, error)
      || !loader_next (loader, data, len, &value, error)
      || !check_plain_node (loader, &value, error))
    return FALSE;

  info = lookup_key ((const char *) key->data.scalar.value, &index);

  if (value.type != YAML_SCALAR_EVENT)
    {
      if (info != NULL)
        set_type_error (loader, info, &value, error);
      else
        set_nested_value_error (loader, key, &value, error);
      return FALSE;
    }

  if (info == NULL)
    {
      add_unknown_key_warning (loader, key);
      return TRUE;
    }

  return set_value (loader, index, &value, error);
}

/* Reads the entries of the top mapping up to its end. */
static gboolean
load_mapping (Loader      *loader,
              const char  *data,
              gsize        len,
              GError     **error)
{
  while (TRUE)
    {
      g_auto (yaml_event_t) key = { 0 };

      if (!loader_next (loader, data, len, &key, error))
        return FALSE;

      if (key.type == YAML_MAPPING_END_EVENT)
        return TRUE;

      if (!check_plain_node (loader, &key, error))
        return FALSE;

      if (key.type != YAML_SCALAR_EVENT)
        {
          set_error_at (loader, error, GCHAT_CONFIG_ERROR_SYNTAX, key.start_mark,
                        _("keys must be plain names, not lists or mappings"));
          return FALSE;
        }

      if (!load_entry (loader, data, len, &key, error))
        return FALSE;
    }
}

/* Reads one document: a mapping, or nothing at all (an empty scalar) for the defaults. */
static gboolean
load_document (Loader      *loader,
               const char  *data,
               gsize        len,
               GError     **error)
{
  g_auto (yaml_event_t) root = { 0 };
  g_auto (yaml_event_t) end = { 0 };

  if (!loader_next (loader, data, len, &root, error) || !check_plain_node (loader, &root, error))
    return FALSE;

  if (root.type == YAML_MAPPING_START_EVENT)
    {
      if (!load_mapping (loader, data, len, error))
        return FALSE;
    }
  else if (root.type != YAML_SCALAR_EVENT || !is_null_scalar (&root))
    {
      set_error_at (loader, error, GCHAT_CONFIG_ERROR_SYNTAX, root.start_mark,
                    _("the configuration must be a mapping of keys to values, "
                      "such as “server_port: 10000”"));
      return FALSE;
    }

  /* Nothing but the end of the document can follow the root node. */
  return loader_next (loader, data, len, &end, error);
}

/* Walks the event stream: at most one document, holding one flat mapping. */
static gboolean
load_stream (Loader      *loader,
             const char  *data,
             gsize        len,
             GError     **error)
{
  g_auto (yaml_event_t) start = { 0 };
  g_auto (yaml_event_t) document = { 0 };
  g_auto (yaml_event_t) next = { 0 };

  if (!loader_next (loader, data, len, &start, error)
      || !loader_next (loader, data, len, &document, error))
    return FALSE;

  if (document.type == YAML_STREAM_END_EVENT)
    return TRUE;

  if (!load_document (loader, data, len, error) || !loader_next (loader, data, len, &next, error))
    return FALSE;

  if (next.type != YAML_STREAM_END_EVENT)
    {
      set_error_at (loader, error, GCHAT_CONFIG_ERROR_SYNTAX, next.start_mark,
                    _("a configuration file must hold a single YAML document"));
      return FALSE;
    }

  return TRUE;
}

/**
 * gchat_config_new:
 *
 * Returns: (transfer full): a configuration holding the built-in defaults.
 */
GchatConfig *
gchat_config_new (void)
{
  return g_object_new (GCHAT_TYPE_CONFIG, NULL);
}

/**
 * gchat_config_new_from_data:
 * @data: (array length=len) (nullable): the YAML text; need not end with a NUL
 * @len: the length of @data in bytes
 * @display_name: (nullable): names the source in messages, such as a file path
 * @base_dir: (nullable): the folder relative paths resolve against; %NULL for the current one
 * @error: return location for a #GchatConfigError
 *
 * Parses @data, which may be anything at all: a file a user edited or bytes from a fuzzer.
 *
 * Returns: (transfer full): the configuration, or %NULL with @error set
 */
GchatConfig *
gchat_config_new_from_data (const char  *data,
                            gsize        len,
                            const char  *display_name,
                            const char  *base_dir,
                            GError     **error)
{
  g_autoptr (GchatConfig) config = NULL;
  g_auto (yaml_parser_t) parser = { 0 };
  g_autoptr (GHashTable) seen = NULL;
  g_autofree char *base = NULL;
  Loader loader = { 0 };

  g_return_val_if_fail (data != NULL || len == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (display_name == NULL)
    display_name = _("configuration");

  if (len > GCHAT_CONFIG_MAX_SIZE)
    {
      g_set_error (error, GCHAT_CONFIG_ERROR, GCHAT_CONFIG_ERROR_TOO_LARGE,
                   _("%s: the configuration is larger than %d bytes"), display_name,
                   GCHAT_CONFIG_MAX_SIZE);
      return NULL;
    }

  config = gchat_config_new ();
  seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  base = g_canonicalize_filename (base_dir != NULL ? base_dir : ".", NULL);

  if (!yaml_parser_initialize (&parser))
    g_error ("libyaml could not allocate its parser");
  yaml_parser_set_input_string (&parser, (const unsigned char *) (data != NULL ? data : ""), len);
  yaml_parser_set_encoding (&parser, YAML_UTF8_ENCODING);

  loader = (Loader) { config, &parser, display_name, base, seen, 0 };
  if (!load_stream (&loader, data, len, error))
    return NULL;

  return g_steal_pointer (&config);
}

/* Reads at most GCHAT_CONFIG_MAX_SIZE + 1 bytes, so that a huge file is never read whole. */
static GBytes *
read_bounded (GFile       *file,
              const char  *display_name,
              GError     **error)
{
  g_autoptr (GFileInputStream) stream = NULL;
  g_autofree char *buffer = NULL;
  gsize n_read = 0;

  stream = g_file_read (file, NULL, error);
  if (stream == NULL)
    return NULL;

  buffer = g_malloc (GCHAT_CONFIG_MAX_SIZE + 1);
  if (!g_input_stream_read_all (G_INPUT_STREAM (stream), buffer, GCHAT_CONFIG_MAX_SIZE + 1,
                                &n_read, NULL, error))
    {
      g_prefix_error (error, _("Could not read “%s”: "), display_name);
      return NULL;
    }

  if (n_read > GCHAT_CONFIG_MAX_SIZE)
    {
      g_set_error (error, GCHAT_CONFIG_ERROR, GCHAT_CONFIG_ERROR_TOO_LARGE,
                   _("%s: the configuration is larger than %d bytes"), display_name,
                   GCHAT_CONFIG_MAX_SIZE);
      return NULL;
    }

  return g_bytes_new_take (g_realloc (g_steal_pointer (&buffer), MAX (n_read, 1)), n_read);
}

/**
 * gchat_config_new_from_file:
 * @path: the file to read, in the GLib file name encoding
 * @error: return location for a #GchatConfigError or a #GIOErrorEnum
 *
 * Reads @path. Relative paths inside it resolve against the folder that holds it, whatever
 * the current directory is.
 *
 * Returns: (transfer full): the configuration, or %NULL with @error set
 */
GchatConfig *
gchat_config_new_from_file (const char  *path,
                            GError     **error)
{
  g_autofree char *absolute = NULL;
  g_autofree char *folder = NULL;
  g_autofree char *display_name = NULL;
  g_autoptr (GFile) file = NULL;
  g_autoptr (GBytes) bytes = NULL;
  gsize len = 0;
  const char *data = NULL;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  absolute = g_canonicalize_filename (path, NULL);
  folder = g_path_get_dirname (absolute);
  display_name = g_filename_display_name (path);
  file = g_file_new_for_path (absolute);

  bytes = read_bounded (file, display_name, error);
  if (bytes == NULL)
    return NULL;

  data = g_bytes_get_data (bytes, &len);
  return gchat_config_new_from_data (data, len, display_name, folder, error);
}

/**
 * gchat_config_get_warnings:
 * @self: a #GchatConfig
 *
 * Returns: (transfer none) (array zero-terminated=1): problems that did not stop loading,
 *   one line each, for the program to log; empty but never %NULL
 */
const char *const *
gchat_config_get_warnings (GchatConfig *self)
{
  g_return_val_if_fail (GCHAT_IS_CONFIG (self), NULL);

  return (const char *const *) self->warnings->pdata;
}

/* Finds @key for a getter; an unknown key or the wrong getter is a programmer error. */
static const KeyInfo *
lookup_for_getter (GchatConfig *self,
                   const char  *key,
                   gsize       *index)
{
  g_return_val_if_fail (GCHAT_IS_CONFIG (self), NULL);
  g_return_val_if_fail (key != NULL, NULL);

  return lookup_key (key, index);
}

gboolean
gchat_config_has_key (GchatConfig *self,
                      const char  *key)
{
  gsize index = 0;
  const KeyInfo *info = lookup_for_getter (self, key, &index);

  g_return_val_if_fail (info != NULL, FALSE);

  return self->from_file[index];
}

/**
 * gchat_config_get_string:
 * @self: a #GchatConfig
 * @key: a text or path key of the table
 *
 * Returns: (nullable): the value; path keys are absolute
 */
const char *
gchat_config_get_string (GchatConfig *self,
                         const char  *key)
{
  gsize index = 0;
  const KeyInfo *info = lookup_for_getter (self, key, &index);

  g_return_val_if_fail (info != NULL, NULL);
  g_return_val_if_fail (info->kind == KEY_STRING || info->kind == KEY_PATH, NULL);

  return self->strings[index];
}

gint64
gchat_config_get_int (GchatConfig *self,
                      const char  *key)
{
  gsize index = 0;
  const KeyInfo *info = lookup_for_getter (self, key, &index);

  g_return_val_if_fail (info != NULL, 0);
  g_return_val_if_fail (info->kind == KEY_INT, 0);

  return self->ints[index];
}

gboolean
gchat_config_get_bool (GchatConfig *self,
                       const char  *key)
{
  gsize index = 0;
  const KeyInfo *info = lookup_for_getter (self, key, &index);

  g_return_val_if_fail (info != NULL, FALSE);
  g_return_val_if_fail (info->kind == KEY_BOOL, FALSE);

  return self->ints[index] != 0;
}

const char *
gchat_config_get_server_address (GchatConfig *self)
{
  return gchat_config_get_string (self, "server_address");
}

guint16
gchat_config_get_server_port (GchatConfig *self)
{
  return (guint16) gchat_config_get_int (self, "server_port");
}

const char *
gchat_config_get_server_certificate (GchatConfig *self)
{
  return gchat_config_get_string (self, "server_certificate");
}

const char *
gchat_config_get_server_private_key (GchatConfig *self)
{
  return gchat_config_get_string (self, "server_privateKey");
}

const char *
gchat_config_get_data_base (GchatConfig *self)
{
  return gchat_config_get_string (self, "data_base");
}

void
gchat_config_get_argon2_params (GchatConfig       *self,
                                GchatArgon2Params *params)
{
  g_return_if_fail (GCHAT_IS_CONFIG (self));
  g_return_if_fail (params != NULL);

  params->memory_kib = (guint32) gchat_config_get_int (self, "argon2_memory_kib");
  params->iterations = (guint32) gchat_config_get_int (self, "argon2_iterations");
  params->parallelism = (guint32) gchat_config_get_int (self, "argon2_parallelism");
}

guint
gchat_config_get_max_connections (GchatConfig *self)
{
  return (guint) gchat_config_get_int (self, "max_connections");
}
