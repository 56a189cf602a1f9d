/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Tests of the strict JSON checker and parser: what json-glib lets through, limits and offsets. */

#include "config.h"

#include <string.h>

#include "gchat-json.h"

/* Deep enough for every sample here; the limits have tests of their own. */
#define DEPTH 8

typedef struct
{
  const char *text;
  int         code;
  gsize       offset;
} BadCase;

/* Logs a sample with its control characters and non-ASCII bytes escaped, to keep TAP readable. */
static void
log_sample (const char *text)
{
  g_autofree char *escaped = g_strescape (text, NULL);

  g_test_message ("%s", escaped);
}

static void
assert_check_fails_len (const char *text,
                        gsize       len,
                        guint       max_depth,
                        guint       max_values,
                        int         code,
                        gsize       offset)
{
  g_autoptr(GError) error = NULL;
  gsize error_offset = G_MAXSIZE;

  g_assert_false (gchat_json_check (text, len, max_depth, max_values, &error_offset, &error));
  g_test_message ("→ %s (at byte %" G_GSIZE_FORMAT ")", error->message, error_offset);
  g_assert_error (error, GCHAT_JSON_ERROR, code);
  g_assert_cmpuint (error_offset, ==, offset);
}

static void
assert_check_fails (const char *text,
                    guint       max_depth,
                    guint       max_values,
                    int         code,
                    gsize       offset)
{
  assert_check_fails_len (text, strlen (text), max_depth, max_values, code, offset);
}

static void
assert_cases_fail (const BadCase *cases,
                   gsize          n_cases)
{
  for (gsize i = 0; i < n_cases; i++)
    {
      log_sample (cases[i].text);
      assert_check_fails (cases[i].text, DEPTH, 0, cases[i].code, cases[i].offset);
    }
}

static JsonParser *
assert_parse_ok (const char *text,
                 guint       max_depth,
                 guint       max_values)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;

  gboolean parsed;

  log_sample (text);
  parsed = gchat_json_parse (parser, text, strlen (text), max_depth, max_values, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (parsed);
  g_assert_nonnull (json_parser_get_root (parser));
  return g_steal_pointer (&parser);
}

/* Strict JSON of every kind gets through, and json-glib reads it. */
static void
test_accepted (void)
{
  static const char *const good[] = {
    "{}", "[]", "0", "-0", "42", "\"\"", "true", "false", "null", " \t\r\n[ ] \n",
    "{ \"type\" : \"ping\" , \"id\" : 1 }",
    "[1,-0,0.5,-1.5e-3,1E5,1e+5,2.0E-0,9223372036854775807,-9223372036854775808]",
    "[-0.0,1e400,-1e-400,123456789012345678901234567890.5,18446744073709551616e0]",
    "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0001\\u00e9\\ud83d\\ude00\\uD83D\\uDE00\"",
    "[true,false,null,{},[],\"\"]",
    "{\"x\":{},\"type\":\"ping\",\"\":1,\"a\":{\"b\":[[[]]]}}",
    "\"/* no comment */ // # ' \\\\\"",
    "\"é😀 and \xf4\x8f\xbf\xbf\"",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (good); i++)
    {
      G_GNUC_UNUSED g_autoptr(JsonParser) parser = assert_parse_ok (good[i], DEPTH, 0);
    }
}

/* What json-glib 1.6 accepts but JSON does not, each refused where it starts. */
static void
test_json_glib_extras (void)
{
  static const BadCase cases[] = {
    { "{'a':1}", GCHAT_JSON_ERROR_SYNTAX, 1 },
    { "['a']", GCHAT_JSON_ERROR_SYNTAX, 1 },
    { "/* c */{}", GCHAT_JSON_ERROR_SYNTAX, 0 },
    { "{}/* c */", GCHAT_JSON_ERROR_SYNTAX, 2 },
    { "// c\n{}", GCHAT_JSON_ERROR_SYNTAX, 0 },
    { "# c\n{}", GCHAT_JSON_ERROR_SYNTAX, 0 },
    { "[0x10]", GCHAT_JSON_ERROR_SYNTAX, 2 },
    { "[01]", GCHAT_JSON_ERROR_SYNTAX, 2 },
    { "[-01]", GCHAT_JSON_ERROR_SYNTAX, 3 },
    { "[+1]", GCHAT_JSON_ERROR_SYNTAX, 1 },
    { "[NaN]", GCHAT_JSON_ERROR_SYNTAX, 1 },
    { "[Infinity]", GCHAT_JSON_ERROR_SYNTAX, 1 },
    { "[-Infinity]", GCHAT_JSON_ERROR_SYNTAX, 2 },
    { "[.5]", GCHAT_JSON_ERROR_SYNTAX, 1 },
    { "[1.]", GCHAT_JSON_ERROR_SYNTAX, 3 },
    { "{} {}", GCHAT_JSON_ERROR_SYNTAX, 3 },
    { "{}x", GCHAT_JSON_ERROR_SYNTAX, 2 },
    { "[1]]", GCHAT_JSON_ERROR_SYNTAX, 3 },
    { "{\"a\":1}\n\n//", GCHAT_JSON_ERROR_SYNTAX, 9 },
    { "\xef\xbb\xbf{}", GCHAT_JSON_ERROR_SYNTAX, 0 },
    { "{}\f", GCHAT_JSON_ERROR_SYNTAX, 2 },
    { "[\"\\x41\"]", GCHAT_JSON_ERROR_SYNTAX, 2 },
    { "[\"\\'\"]", GCHAT_JSON_ERROR_SYNTAX, 2 },
    { "[\"a\tb\"]", GCHAT_JSON_ERROR_SYNTAX, 3 },
    { "[\"a\x1f\"]", GCHAT_JSON_ERROR_SYNTAX, 3 },
    { "[TRUE]", GCHAT_JSON_ERROR_SYNTAX, 1 },
    { "{a:1}", GCHAT_JSON_ERROR_SYNTAX, 1 },
    { "[1,]", GCHAT_JSON_ERROR_SYNTAX, 3 },
    { "{\"a\":1,}", GCHAT_JSON_ERROR_SYNTAX, 7 },
    { "var = [1]", GCHAT_JSON_ERROR_SYNTAX, 0 },
  };

  assert_cases_fail (cases, G_N_ELEMENTS (cases));
}

/* Plain syntax errors, and text that stops too early. */
static void
test_syntax (void)
{
  static const BadCase cases[] = {
    { "", GCHAT_JSON_ERROR_SYNTAX, 0 },
    { " ", GCHAT_JSON_ERROR_SYNTAX, 1 },
    { "{", GCHAT_JSON_ERROR_SYNTAX, 1 },
    { "[\"abc", GCHAT_JSON_ERROR_SYNTAX, 5 },
    { "[1", GCHAT_JSON_ERROR_SYNTAX, 2 },
    { "]", GCHAT_JSON_ERROR_SYNTAX, 0 },
    { "[}", GCHAT_JSON_ERROR_SYNTAX, 1 },
    { "{\"a\":1]", GCHAT_JSON_ERROR_SYNTAX, 6 },
    { "{\"a\" \"b\":1}", GCHAT_JSON_ERROR_SYNTAX, 5 },
    { "{\"a\"}", GCHAT_JSON_ERROR_SYNTAX, 4 },
    { "{1:2}", GCHAT_JSON_ERROR_SYNTAX, 1 },
    { "[\"a\"\"b\"]", GCHAT_JSON_ERROR_SYNTAX, 4 },
    { "[1,,2]", GCHAT_JSON_ERROR_SYNTAX, 3 },
    { "[1 2]", GCHAT_JSON_ERROR_SYNTAX, 3 },
    { "[true false]", GCHAT_JSON_ERROR_SYNTAX, 6 },
    { "[tru]", GCHAT_JSON_ERROR_SYNTAX, 1 },
    { "[nul", GCHAT_JSON_ERROR_SYNTAX, 1 },
    { "[1e]", GCHAT_JSON_ERROR_SYNTAX, 3 },
    { "[1e+]", GCHAT_JSON_ERROR_SYNTAX, 4 },
    { "[-]", GCHAT_JSON_ERROR_SYNTAX, 2 },
    { "[\"\\u12\"]", GCHAT_JSON_ERROR_SYNTAX, 2 },
    { "[\"\\", GCHAT_JSON_ERROR_SYNTAX, 2 },
  };

  assert_cases_fail (cases, G_N_ELEMENTS (cases));
}

/* json-glib wraps integers past 64 bits; the exact edges get through and read back exactly. */
static void
test_integers (void)
{
  static const BadCase cases[] = {
    { "[9223372036854775808]", GCHAT_JSON_ERROR_INTEGER_RANGE, 1 },
    { "[-9223372036854775809]", GCHAT_JSON_ERROR_INTEGER_RANGE, 1 },
    { "[18446744073709551616]", GCHAT_JSON_ERROR_INTEGER_RANGE, 1 },
    { "[18446744073709551617]", GCHAT_JSON_ERROR_INTEGER_RANGE, 1 },
    { "[1,99999999999999999999999999]", GCHAT_JSON_ERROR_INTEGER_RANGE, 3 },
    { "{\"created\":  -100000000000000000000}", GCHAT_JSON_ERROR_INTEGER_RANGE, 13 },
  };
  g_autoptr(JsonParser) parser = NULL;
  JsonArray *array;

  assert_cases_fail (cases, G_N_ELEMENTS (cases));

  parser = assert_parse_ok ("[9223372036854775807,-9223372036854775808,0,-0,1e400]", DEPTH, 0);
  array = json_node_get_array (json_parser_get_root (parser));
  g_assert_cmpint (json_array_get_int_element (array, 0), ==, G_MAXINT64);
  g_assert_cmpint (json_array_get_int_element (array, 1), ==, G_MININT64);
  g_assert_cmpint (json_array_get_int_element (array, 2), ==, 0);
  g_assert_cmpint (json_array_get_int_element (array, 3), ==, 0);
  g_assert_true (json_node_get_value_type (json_array_get_element (array, 4)) == G_TYPE_DOUBLE);
}

/* Surrogate escapes only in pairs (json-glib makes invalid UTF-8 of the others), no NUL. */
static void
test_surrogates (void)
{
  static const BadCase cases[] = {
    { "[\"\\ud800\"]", GCHAT_JSON_ERROR_SYNTAX, 2 },
    { "[\"\\udc00\"]", GCHAT_JSON_ERROR_SYNTAX, 2 },
    { "[\"\\uDFFF\"]", GCHAT_JSON_ERROR_SYNTAX, 2 },
    { "[\"ab\\ud800\\u0041\"]", GCHAT_JSON_ERROR_SYNTAX, 4 },
    { "[\"\\ud800x\"]", GCHAT_JSON_ERROR_SYNTAX, 2 },
    { "[\"\\ud800\\ud800\"]", GCHAT_JSON_ERROR_SYNTAX, 2 },
    { "[\"\\udc00\\ud800\"]", GCHAT_JSON_ERROR_SYNTAX, 2 },
    { "[\"\\udbff\\n\"]", GCHAT_JSON_ERROR_SYNTAX, 2 },
    { "[\"\\ud83d\\u", GCHAT_JSON_ERROR_SYNTAX, 2 },
    { "[\"\\u0000\"]", GCHAT_JSON_ERROR_SYNTAX, 2 },
  };
  g_autoptr(JsonParser) parser = NULL;
  const char *text;

  assert_cases_fail (cases, G_N_ELEMENTS (cases));

  parser = assert_parse_ok ("\"\\ud83d\\ude00\\udbff\\udfff\"", DEPTH, 0);
  text = json_node_get_string (json_parser_get_root (parser));
  g_assert_cmpstr (text, ==, "😀\xf4\x8f\xbf\xbf");
  g_assert_true (g_utf8_validate (text, -1, NULL));
}

/* Bytes that are not UTF-8, and NUL bytes, wherever they stand. */
static void
test_encoding (void)
{
  static const BadCase cases[] = {
    { "[\"\xff\"]", GCHAT_JSON_ERROR_ENCODING, 2 },
    { "[\"\xc3\"]", GCHAT_JSON_ERROR_ENCODING, 2 },
    { "[\"\xed\xa0\x80\"]", GCHAT_JSON_ERROR_ENCODING, 2 },
    { "[\"\xc0\xaf\"]", GCHAT_JSON_ERROR_ENCODING, 2 },
    { "[\"\xf4\x90\x80\x80\"]", GCHAT_JSON_ERROR_ENCODING, 2 },
    { "[1, \xff]", GCHAT_JSON_ERROR_ENCODING, 4 },
  };

  assert_cases_fail (cases, G_N_ELEMENTS (cases));
  assert_check_fails_len ("[\"a\0b\"]", 7, DEPTH, 0, GCHAT_JSON_ERROR_ENCODING, 3);
  assert_check_fails_len ("{}\0", 3, DEPTH, 0, GCHAT_JSON_ERROR_ENCODING, 2);
}

/* Exactly @max_depth levels get through, siblings do not add up, and strings do not count. */
static void
test_depth_limit (void)
{
  g_autoptr(JsonParser) parser = NULL;

  parser = assert_parse_ok ("[[]]", 2, 0);
  g_clear_object (&parser);
  parser = assert_parse_ok ("[[],{\"a\":1},[0],{},[[]]]", 3, 0);
  g_clear_object (&parser);
  parser = assert_parse_ok ("[\"[[[[{{{{\"]", 1, 0);
  g_clear_object (&parser);
  parser = assert_parse_ok ("\"scalars need no depth\"", 0, 0);

  assert_check_fails ("[[[]]]", 2, 0, GCHAT_JSON_ERROR_TOO_DEEP, 2);
  assert_check_fails ("[[],[[[]]]]", 2, 0, GCHAT_JSON_ERROR_TOO_DEEP, 5);
  assert_check_fails ("{\"a\":{\"b\":{}}}", 2, 0, GCHAT_JSON_ERROR_TOO_DEEP, 10);
  assert_check_fails ("[]", 0, 0, GCHAT_JSON_ERROR_TOO_DEEP, 0);
}

static char *
nested_arrays (gsize depth)
{
  char *text = g_malloc (2 * depth + 1);

  memset (text, '[', depth);
  memset (text + depth, ']', depth);
  text[2 * depth] = '\0';
  return text;
}

/* Nesting 100000 deep, which would overflow json-glib's stack, is walked without recursion: under
 * a low limit it is refused at once, under a high one it is only checked, and quickly. */
static void
test_deep_nesting (void)
{
  const gsize depth = 100000;
  g_autofree char *arrays = nested_arrays (depth);
  g_autoptr(GString) objects = g_string_new (NULL);
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;
  gint64 start = g_get_monotonic_time ();

  for (gsize i = 0; i < depth; i++)
    g_string_append (objects, "{\"a\":");
  g_string_append (objects, "1");
  for (gsize i = 0; i < depth; i++)
    g_string_append_c (objects, '}');

  g_assert_false (gchat_json_parse (parser, arrays, 2 * depth, 16, 0, NULL, &error));
  g_assert_error (error, GCHAT_JSON_ERROR, GCHAT_JSON_ERROR_TOO_DEEP);
  g_assert_null (json_parser_get_root (parser));
  assert_check_fails (objects->str, 16, 0, GCHAT_JSON_ERROR_TOO_DEEP, 16 * 5);

  g_assert_true (gchat_json_check (arrays, 2 * depth, depth, 0, NULL, NULL));
  g_assert_true (gchat_json_check (objects->str, objects->len, depth, 0, NULL, NULL));
  assert_check_fails (arrays, depth - 1, 0, GCHAT_JSON_ERROR_TOO_DEEP, depth - 1);
  assert_check_fails (objects->str, depth - 1, 0, GCHAT_JSON_ERROR_TOO_DEEP, (depth - 1) * 5);

  /* Unterminated, it is still refused, and the limit is met before the end of the text. */
  arrays[depth] = '\0';
  assert_check_fails (arrays, G_MAXUINT, 0, GCHAT_JSON_ERROR_SYNTAX, depth);
  assert_check_fails (arrays, 64, 0, GCHAT_JSON_ERROR_TOO_DEEP, 64);

  g_assert_cmpint (g_get_monotonic_time () - start, <, 2 * G_USEC_PER_SEC);
}

/* Values are scalars, objects and arrays, not member names; 0 means no limit. */
static void
test_max_values (void)
{
  g_autoptr(JsonParser) parser = NULL;
  g_autoptr(GString) many = g_string_new ("[0");

  parser = assert_parse_ok ("[1,2,3]", DEPTH, 4);
  g_clear_object (&parser);
  parser = assert_parse_ok ("{\"a\":1,\"b\":[]}", DEPTH, 3);
  g_clear_object (&parser);
  parser = assert_parse_ok ("1", 0, 1);

  assert_check_fails ("[1,2,3]", DEPTH, 3, GCHAT_JSON_ERROR_TOO_MANY_VALUES, 5);
  assert_check_fails ("{\"a\":1,\"b\":[]}", DEPTH, 2, GCHAT_JSON_ERROR_TOO_MANY_VALUES, 11);
  assert_check_fails ("[[],{},\"\"]", DEPTH, 3, GCHAT_JSON_ERROR_TOO_MANY_VALUES, 7);

  for (guint i = 1; i < 100000; i++)
    g_string_append (many, ",0");
  g_string_append_c (many, ']');
  g_assert_true (gchat_json_check (many->str, many->len, 1, 0, NULL, NULL));
  g_assert_true (gchat_json_check (many->str, many->len, 1, 100001, NULL, NULL));
  assert_check_fails (many->str, 1, 100000, GCHAT_JSON_ERROR_TOO_MANY_VALUES, many->len - 2);
}

typedef struct
{
  const char *text;
  gsize       repeat_at; /* where the repeated member's name starts */
} DuplicateCase;

/* A member named twice in one object, at any level and however its name is escaped, is refused
 * near the repeat; the same name in different objects is fine. */
static void
test_duplicates (void)
{
  static const DuplicateCase cases[] = {
    { "{\"a\":1,\"a\":2}", 7 },
    { "{\"type\":\"ping\",\"type\":\"pong\",\"id\":1}", 15 },
    { "{\"x\":{\"b\":1,\"b\":2}}", 12 },
    { "[{\"a\":1},{\"c\":1,\"c\":1}]", 16 },
    { "{\"a\":1,\"\\u0061\":2}", 7 },
    { "{\"\":1,\"\":2}", 6 },
    { "{\"l1\":{\"l2\":{\"l3\":{\"k\":true,\n\"k\":[false]}}}}", 29 },
    { "{\"a\":{\"deep\":[1,2,3]},\"b\":2,\"a\":{\"deep\":[]}}", 28 },
  };
  static const char *const distinct[] = {
    "[{\"a\":1},{\"a\":2}]", "{\"a\":{\"a\":{\"a\":1}}}", "{\"a\":1,\"A\":2,\"a \":3}",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(JsonParser) parser = json_parser_new ();
      g_autoptr(GError) error = NULL;
      gsize len = strlen (cases[i].text);
      gsize offset = G_MAXSIZE;

      log_sample (cases[i].text);
      g_assert_true (gchat_json_check (cases[i].text, len, DEPTH, 0, NULL, NULL));
      g_assert_false (gchat_json_parse (parser, cases[i].text, len, DEPTH, 0, &offset, &error));
      g_assert_error (error, GCHAT_JSON_ERROR, GCHAT_JSON_ERROR_DUPLICATE_MEMBER);
      g_assert_cmpuint (offset, >=, cases[i].repeat_at);
      g_assert_cmpuint (offset, <, len);
    }

  for (gsize i = 0; i < G_N_ELEMENTS (distinct); i++)
    {
      G_GNUC_UNUSED g_autoptr(JsonParser) parser = assert_parse_ok (distinct[i], DEPTH, 0);
    }
}

/* Messages say what is wrong, never what the text held: it may be a password. */
static void
test_errors_hide_data (void)
{
  static const char *const cases[] = {
    "{\"password\":SECRET}", "{\"password\":\"SECRET\\x\"}", "{\"password\":'SECRET'}",
    "{\"password\":\"SECRET\"", "{\"SECRET\":1,\"SECRET\":2}", "[\"SECRET\",]",
    "{\"password\":\"SECRET\"} SECRET", "{\"password\":\"SECRET\xff\"}",
    "{\"password\":\"SECRET\t\"}", "{\"password\":[[[\"SECRET\"]]]}",
    "{\"password\":\"SECRET\\ud800\"}", "{\"password\":123456789012345678901234567890}",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(JsonParser) parser = json_parser_new ();
      g_autoptr(GError) error = NULL;

      g_assert_false (gchat_json_parse (parser, cases[i], strlen (cases[i]), 2, 0, NULL, &error));
      g_assert_nonnull (error);
      log_sample (cases[i]);
      g_test_message ("→ %s", error->message);
      g_assert_null (strstr (error->message, "SECRET"));
      g_assert_null (strstr (error->message, "password"));
      g_assert_null (strstr (error->message, "1234567890"));
    }
}

static void
assert_position (const char *data,
                 gsize       offset,
                 guint       line,
                 guint       column)
{
  guint got_line = 0;
  guint got_column = 0;

  gchat_json_offset_to_position (data, offset, &got_line, &got_column);
  g_assert_cmpuint (got_line, ==, line);
  g_assert_cmpuint (got_column, ==, column);
}

/* Lines and columns count from 1, and columns count characters, not bytes. */
static void
test_offset_to_position (void)
{
  const char *data = "ab\ncé\n\nxyz";

  assert_position (data, 0, 1, 1);
  assert_position (data, 2, 1, 3);
  assert_position (data, 3, 2, 1);
  assert_position (data, 4, 2, 2);
  assert_position (data, 6, 2, 3);
  assert_position (data, 7, 3, 1);
  assert_position (data, 8, 4, 1);
  assert_position (data, strlen (data), 4, 4);
  assert_position ("", 0, 1, 1);
}

/* Random changes to valid JSON: whatever the checker lets through, json-glib reads, and every
 * refusal points inside the text. */
static void
test_random_mutations (void)
{
  static const char *const samples[] = {
    "{\"type\":\"auth\",\"user\":\"alice\",\"password\":\"pa55word\",\"id\":1}",
    "{\"a\":[1,-2.5e3,true,false,null,\"\\u00e9\\ud83d\\ude00\"],\"b\":{\"c\":{}}}",
    "[9223372036854775807,-9223372036854775808,\"x\\\"y\\\\z\"]",
  };
  static const char alphabet[] = "{}[],:\"\\ue0123456789-+.Eaflnrst \t\n\x01\x7f\xc3\xa9\xff";

  for (guint round = 0; round < 20000; round++)
    {
      const char *sample = samples[round % G_N_ELEMENTS (samples)];
      g_autofree char *text = g_strdup (sample);
      g_autoptr(JsonParser) parser = json_parser_new ();
      g_autoptr(GError) error = NULL;
      gsize len = strlen (text);
      gsize offset = G_MAXSIZE;
      guint n_changes = g_test_rand_int_range (1, 4);

      for (guint i = 0; i < n_changes; i++)
        text[g_test_rand_int_range (0, (gint32) len)] =
          alphabet[g_test_rand_int_range (0, (gint32) sizeof alphabet - 1)];

      if (gchat_json_parse (parser, text, len, DEPTH, 0, &offset, &error))
        continue;
      g_assert_nonnull (error);
      g_assert_cmpuint (offset, <=, len);
      /* json-glib only ever refuses a repeated member: the checker let nothing else through. */
      if (gchat_json_check (text, len, DEPTH, 0, NULL, NULL))
        g_assert_error (error, GCHAT_JSON_ERROR, GCHAT_JSON_ERROR_DUPLICATE_MEMBER);
    }
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/json/accepted", test_accepted);
  g_test_add_func ("/json/refused/json-glib-extras", test_json_glib_extras);
  g_test_add_func ("/json/refused/syntax", test_syntax);
  g_test_add_func ("/json/refused/integers", test_integers);
  g_test_add_func ("/json/refused/surrogates", test_surrogates);
  g_test_add_func ("/json/refused/encoding", test_encoding);
  g_test_add_func ("/json/limits/depth", test_depth_limit);
  g_test_add_func ("/json/limits/deep-nesting", test_deep_nesting);
  g_test_add_func ("/json/limits/max-values", test_max_values);
  g_test_add_func ("/json/duplicates", test_duplicates);
  g_test_add_func ("/json/errors-hide-data", test_errors_hide_data);
  g_test_add_func ("/json/offset-to-position", test_offset_to_position);
  g_test_add_func ("/json/random-mutations", test_random_mutations);

  return g_test_run ();
}
