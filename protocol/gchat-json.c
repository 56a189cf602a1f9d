/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Strict RFC 8259 JSON: a non-recursive checker in front of json-glib, and no repeated members. */

#include "config.h"

#include <string.h>
#include <glib/gi18n-lib.h>

#include "gchat-json.h"

/* json-glib 1.6 parses more than JSON, and less safely: its parser recurses once per nesting
 * level (a few hundred thousand “[” overflow the stack), it accepts comments, single quotes,
 * hexadecimal and zero-padded numbers and data after the root value, wraps integers past 64
 * bits, keeps the last of two members with the same name, and turns unpaired surrogate escapes
 * into invalid UTF-8. So every text is first walked here once, byte by byte and without
 * recursion, and only strict JSON within the caller's limits reaches json-glib; repeated members
 * are caught while json-glib builds the tree. */

G_DEFINE_QUARK (gchat-json-error-quark, gchat_json_error)

typedef struct
{
  const guint8   *data;
  gsize           len;
  gsize           pos;
  guint           max_depth;
  guint           max_values;
  guint           n_values;
  /* The first problem met. The detail is NULL for the limits, whose message is formatted. */
  gboolean        failed;
  GchatJsonError  code;
  gsize           error_pos;
  const char     *detail;
} Scanner;

static gboolean
scan_fail_at (Scanner        *scan,
              gsize           pos,
              GchatJsonError  code,
              const char     *detail)
{
  if (!scan->failed)
    {
      scan->failed = TRUE;
      scan->code = code;
      scan->error_pos = pos;
      scan->detail = detail;
    }
  return FALSE;
}

static gboolean
scan_syntax_error (Scanner    *scan,
                   const char *detail)
{
  return scan_fail_at (scan, scan->pos, GCHAT_JSON_ERROR_SYNTAX, detail);
}

static int
scan_peek (Scanner *scan)
{
  return scan->pos < scan->len ? scan->data[scan->pos] : -1;
}

static gboolean
scan_accept (Scanner *scan,
             int      c)
{
  if (scan_peek (scan) != c)
    return FALSE;
  scan->pos++;
  return TRUE;
}

static void
scan_whitespace (Scanner *scan)
{
  int c = scan_peek (scan);

  while (c == ' ' || c == '\t' || c == '\n' || c == '\r')
    {
      scan->pos++;
      c = scan_peek (scan);
    }
}

static gboolean
scan_digits (Scanner *scan)
{
  gsize start = scan->pos;

  while (g_ascii_isdigit (scan_peek (scan)))
    scan->pos++;
  return scan->pos > start;
}

/* json-glib reads integers into 64 bits and wraps around without an error, so integers that
 * do not fit are refused here. */
static gboolean
integer_fits (const guint8 *digits,
              gsize         n_digits,
              gboolean      negative)
{
  guint64 limit = negative ? (guint64) G_MAXINT64 + 1 : (guint64) G_MAXINT64;
  guint64 value = 0;

  for (gsize i = 0; i < n_digits; i++)
    {
      guint digit = digits[i] - '0';

      if (value > (limit - digit) / 10)
        return FALSE;
      value = value * 10 + digit;
    }
  return TRUE;
}

static gboolean
scan_number (Scanner *scan)
{
  gsize start = scan->pos;
  gboolean negative = scan_accept (scan, '-');
  gsize int_start = scan->pos;
  gsize int_end;
  gboolean is_integer = TRUE;

  if (!scan_accept (scan, '0') && !scan_digits (scan))
    return scan_syntax_error (scan, _("a number is malformed"));
  int_end = scan->pos;

  if (scan_accept (scan, '.'))
    {
      is_integer = FALSE;
      if (!scan_digits (scan))
        return scan_syntax_error (scan, _("a number is malformed"));
    }
  if (scan_accept (scan, 'e') || scan_accept (scan, 'E'))
    {
      is_integer = FALSE;
      if (!scan_accept (scan, '+'))
        scan_accept (scan, '-');
      if (!scan_digits (scan))
        return scan_syntax_error (scan, _("a number is malformed"));
    }
  if (is_integer && !integer_fits (scan->data + int_start, int_end - int_start, negative))
    return scan_fail_at (scan, start, GCHAT_JSON_ERROR_INTEGER_RANGE,
                         _("an integer does not fit in 64 bits"));
  return TRUE;
}

static gboolean
scan_hex4 (Scanner *scan,
           guint   *value)
{
  *value = 0;
  for (guint i = 0; i < 4; i++)
    {
      int c = scan_peek (scan);

      if (c < 0 || !g_ascii_isxdigit (c))
        return FALSE;
      *value = (*value << 4) | (guint) g_ascii_xdigit_value (c);
      scan->pos++;
    }
  return TRUE;
}

/* A "\u" escape starting at @start, read from after the backslash: no NUL, which C strings
 * cannot hold, and surrogates only in pairs. */
static gboolean
scan_unicode_escape (Scanner *scan,
                     gsize    start)
{
  guint unit;
  guint low;

  if (!scan_accept (scan, 'u') || !scan_hex4 (scan, &unit))
    return scan_fail_at (scan, start, GCHAT_JSON_ERROR_SYNTAX,
                         _("a string holds an escape that JSON does not have"));
  if (unit == 0)
    return scan_fail_at (scan, start, GCHAT_JSON_ERROR_SYNTAX,
                         _("a string holds an escaped NUL character"));
  if (unit < 0xd800 || unit > 0xdfff)
    return TRUE;
  if (unit <= 0xdbff && scan_accept (scan, '\\') && scan_accept (scan, 'u')
      && scan_hex4 (scan, &low) && low >= 0xdc00 && low <= 0xdfff)
    return TRUE;
  return scan_fail_at (scan, start, GCHAT_JSON_ERROR_SYNTAX,
                       _("a string holds an unpaired surrogate escape"));
}

/* A string, from its opening quote. The whole text is already known to be UTF-8. */
static gboolean
scan_string (Scanner *scan)
{
  if (!scan_accept (scan, '"'))
    return FALSE;

  for (;;)
    {
      gsize start = scan->pos;
      int c = scan_peek (scan);

      if (c < 0)
        return FALSE;
      if (c < 0x20)
        return scan_syntax_error (scan, _("a string holds a control character that is not "
                                          "escaped"));
      scan->pos++;
      if (c == '"')
        return TRUE;
      if (c != '\\')
        continue;

      c = scan_peek (scan);
      if (c > 0 && strchr ("\"\\/bfnrt", c) != NULL)
        scan->pos++;
      else if (!scan_unicode_escape (scan, start))
        return FALSE;
    }
}

/* An object member's name and the colon after it. */
static gboolean
scan_member_name (Scanner *scan)
{
  scan_whitespace (scan);
  if (!scan_string (scan))
    return FALSE;
  scan_whitespace (scan);
  return scan_accept (scan, ':');
}

static gboolean
scan_scalar (Scanner *scan)
{
  static const char *const literals[] = { "true", "false", "null" };
  int c = scan_peek (scan);

  if (c == '"')
    return scan_string (scan);
  if (c == '-' || g_ascii_isdigit (c))
    return scan_number (scan);

  for (guint i = 0; i < G_N_ELEMENTS (literals); i++)
    {
      gsize len = strlen (literals[i]);

      if (scan->len - scan->pos >= len && memcmp (scan->data + scan->pos, literals[i], len) == 0)
        {
          scan->pos += len;
          return TRUE;
        }
    }
  return FALSE;
}

/* After a value: closes the containers that end here. Returns FALSE on bad syntax; sets
 * @done when the root value is complete, or else leaves the scanner before the next value. */
static gboolean
scan_after_value (Scanner  *scan,
                  guint8   *stack,
                  guint    *depth,
                  gboolean *done)
{
  for (;;)
    {
      guint8 open;

      scan_whitespace (scan);
      if (*depth == 0)
        {
          *done = TRUE;
          return scan->pos == scan->len
                 || scan_syntax_error (scan, _("there is more after the end of the data"));
        }

      open = stack[*depth - 1];
      if (scan_accept (scan, ','))
        return open == '[' || scan_member_name (scan);
      if (!scan_accept (scan, open == '{' ? '}' : ']'))
        return FALSE;
      (*depth)--;
    }
}

/* Walks the values one after the other, keeping the open containers in @stack, which has room
 * for as many as the text may nest. */
static gboolean
scan_json (Scanner *scan,
           guint8  *stack)
{
  guint depth = 0;
  gboolean done = FALSE;

  while (!done)
    {
      int c;

      scan_whitespace (scan);
      if (scan->max_values > 0 && ++scan->n_values > scan->max_values)
        return scan_fail_at (scan, scan->pos, GCHAT_JSON_ERROR_TOO_MANY_VALUES, NULL);

      c = scan_peek (scan);
      if (c == '{' || c == '[')
        {
          if (depth == scan->max_depth)
            return scan_fail_at (scan, scan->pos, GCHAT_JSON_ERROR_TOO_DEEP, NULL);
          stack[depth++] = (guint8) c;
          scan->pos++;
          scan_whitespace (scan);
          if (scan_accept (scan, c == '{' ? '}' : ']'))
            depth--;
          else if (c == '[' || scan_member_name (scan))
            continue;
          else
            return FALSE;
        }
      else if (!scan_scalar (scan))
        return FALSE;

      if (!scan_after_value (scan, stack, &depth, &done))
        return FALSE;
    }
  return TRUE;
}

static gboolean
set_scan_error (Scanner  *scan,
                gsize    *error_offset,
                GError  **error)
{
  if (error_offset != NULL)
    *error_offset = scan->error_pos;

  if (scan->code == GCHAT_JSON_ERROR_TOO_DEEP)
    g_set_error (error, GCHAT_JSON_ERROR, scan->code,
                 _("the data is nested more than %u levels deep"), scan->max_depth);
  else if (scan->code == GCHAT_JSON_ERROR_TOO_MANY_VALUES)
    g_set_error (error, GCHAT_JSON_ERROR, scan->code, _("the data holds more than %u values"),
                 scan->max_values);
  else
    g_set_error_literal (error, GCHAT_JSON_ERROR, scan->code, scan->detail);
  return FALSE;
}

gboolean
gchat_json_check (const char  *data,
                  gsize        len,
                  guint        max_depth,
                  guint        max_values,
                  gsize       *error_offset,
                  GError     **error)
{
  Scanner scan = { (const guint8 *) data, len, 0, max_depth, max_values };
  g_autofree guint8 *stack = NULL;
  const char *end = NULL;

  g_return_val_if_fail (data != NULL || len == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (len > 0 && !g_utf8_validate_len (data, len, &end))
    {
      scan_fail_at (&scan, end - data, GCHAT_JSON_ERROR_ENCODING,
                    *end == '\0' ? _("the text holds a NUL byte")
                                 : _("the text is not valid UTF-8"));
      return set_scan_error (&scan, error_offset, error);
    }

  /* Nothing nests deeper than the text is long, so a generous limit costs no memory. */
  stack = g_malloc (MIN (max_depth, len) + 1);
  if (scan_json (&scan, stack))
    return TRUE;

  scan_syntax_error (&scan, scan.pos == len ? _("the data ends too early")
                                            : _("a character is out of place"));
  return set_scan_error (&scan, error_offset, error);
}

/* What the parser's signals report while json-glib runs: positions exist only then. */
typedef struct
{
  GHashTable *member_counts; /* JsonObject → members reported so far */
  gboolean    duplicate;
  gboolean    noticed;       /* the position below is that of the first problem */
  guint       line;
  guint       column;
} ParseWatch;

static void
parse_watch_notice (ParseWatch *watch,
                    JsonParser *parser)
{
  if (watch->noticed)
    return;
  watch->noticed = TRUE;
  watch->line = json_parser_get_current_line (parser);
  watch->column = json_parser_get_current_pos (parser);
}

/* json-glib reports each member as it adds it; an object that got more reports than it has
 * members had one twice. */
static void
on_object_member (JsonParser *parser,
                  JsonObject *object,
                  const char *member_name,
                  ParseWatch *watch)
{
  guint count = GPOINTER_TO_UINT (g_hash_table_lookup (watch->member_counts, object)) + 1;

  g_hash_table_insert (watch->member_counts, object, GUINT_TO_POINTER (count));
  if (count > json_object_get_size (object))
    {
      parse_watch_notice (watch, parser);
      watch->duplicate = TRUE;
    }
}

static void
on_parser_error (JsonParser   *parser,
                 const GError *error,
                 ParseWatch   *watch)
{
  parse_watch_notice (watch, parser);
}

/* json-glib gives where it is as a 1-based line and the bytes it has read on that line; this is
 * the offset of the last byte it read. */
static gsize
parser_offset (const char *data,
               gsize       len,
               guint       line,
               guint       column)
{
  gsize offset = 0;

  for (guint i = 1; i < line && offset < len; offset++)
    if (data[offset] == '\n')
      i++;
  offset += column > 0 ? column - 1 : 0;
  return MIN (offset, len);
}

gboolean
gchat_json_parse (JsonParser  *parser,
                  const char  *data,
                  gsize        len,
                  guint        max_depth,
                  guint        max_values,
                  gsize       *error_offset,
                  GError     **error)
{
  g_autoptr(GHashTable) member_counts = NULL;
  ParseWatch watch = { NULL };
  gulong member_handler, error_handler;
  gboolean loaded;

  g_return_val_if_fail (JSON_IS_PARSER (parser), FALSE);
  g_return_val_if_fail (data != NULL || len == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!gchat_json_check (data, len, max_depth, max_values, error_offset, error))
    return FALSE;

  member_counts = g_hash_table_new (NULL, NULL);
  watch.member_counts = member_counts;
  member_handler = g_signal_connect (parser, "object-member", G_CALLBACK (on_object_member),
                                     &watch);
  error_handler = g_signal_connect (parser, "error", G_CALLBACK (on_parser_error), &watch);
  /* json-glib's own message quotes the text around the problem, which may be a password, so it
   * is not asked for. After the check it has next to nothing left to refuse. */
  loaded = json_parser_load_from_data (parser, data, (gssize) len, NULL);
  g_signal_handler_disconnect (parser, member_handler);
  g_signal_handler_disconnect (parser, error_handler);

  if (loaded && !watch.duplicate)
    return TRUE;
  if (error_offset != NULL)
    *error_offset = parser_offset (data, len, watch.line, watch.column);
  if (watch.duplicate)
    g_set_error_literal (error, GCHAT_JSON_ERROR, GCHAT_JSON_ERROR_DUPLICATE_MEMBER,
                         _("an object has two members with the same name"));
  else
    g_set_error_literal (error, GCHAT_JSON_ERROR, GCHAT_JSON_ERROR_SYNTAX,
                         _("the data could not be parsed"));
  return FALSE;
}

void
gchat_json_offset_to_position (const char *data,
                               gsize       offset,
                               guint      *line,
                               guint      *column)
{
  guint l = 1;
  guint c = 1;

  g_return_if_fail (data != NULL || offset == 0);
  g_return_if_fail (line != NULL && column != NULL);

  for (gsize i = 0; i < offset; i++)
    {
      if (data[i] == '\n')
        {
          l++;
          c = 1;
        }
      else if ((data[i] & 0xc0) != 0x80)
        c++;
    }
  *line = l;
  *column = c;
}
