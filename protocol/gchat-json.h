/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Strict RFC 8259 JSON: a non-recursive checker in front of json-glib, and no repeated members. */

#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define GCHAT_JSON_ERROR (gchat_json_error_quark ())

typedef enum {
  GCHAT_JSON_ERROR_SYNTAX,           /* not strict JSON: comments, quotes, escapes, data after… */
  GCHAT_JSON_ERROR_ENCODING,         /* the text is not UTF-8, or holds a NUL byte */
  GCHAT_JSON_ERROR_INTEGER_RANGE,    /* an integer json-glib would wrap: outside 64 bits */
  GCHAT_JSON_ERROR_TOO_DEEP,         /* more nested objects and arrays than the caller allows */
  GCHAT_JSON_ERROR_TOO_MANY_VALUES,  /* more values than the caller allows */
  GCHAT_JSON_ERROR_DUPLICATE_MEMBER, /* an object names one member twice */
} GchatJsonError;

GQuark    gchat_json_error_quark         (void);

/* Checks that @data is one strict RFC 8259 JSON value, in UTF-8 with no NUL byte and nothing but
 * white space around it, without recursion (so any depth of input is safe). It also refuses
 * what json-glib 1.6 would get wrong: "\u0000" and unpaired surrogate escapes, and integers
 * outside 64 bits. At most @max_depth objects and arrays may be nested (0: none), and with
 * @max_values > 0 at most that many values (scalars, objects and arrays; not member names)
 * may appear.
 *
 * On failure, @error_offset (if not NULL) gets the byte offset of the problem, and the error's
 * message is a short lower-case phrase, without the position and never quoting the data (it
 * may hold passwords), meant to follow a caller's own words: "… at line 3, column 7: %s". */
gboolean  gchat_json_check               (const char   *data,
                                          gsize         len,
                                          guint         max_depth,
                                          guint         max_values,
                                          gsize        *error_offset,
                                          GError      **error);

/* Runs gchat_json_check(), then loads @data into @parser, refusing an object that names a
 * member twice (json-glib keeps the last one without a word). The caller makes the parser, so
 * that it may choose an immutable one or connect its own signals first. On failure the
 * parser's root is not to be used; for GCHAT_JSON_ERROR_DUPLICATE_MEMBER @error_offset is where
 * json-glib noticed, at the end of the repeated member's value. */
gboolean  gchat_json_parse               (JsonParser   *parser,
                                          const char   *data,
                                          gsize         len,
                                          guint         max_depth,
                                          guint         max_values,
                                          gsize        *error_offset,
                                          GError      **error);

/* The 1-based line and column (counted in UTF-8 characters) of byte @offset of @data, for
 * messages about files people edit. */
void      gchat_json_offset_to_position  (const char   *data,
                                          gsize         offset,
                                          guint        *line,
                                          guint        *column);

G_END_DECLS
