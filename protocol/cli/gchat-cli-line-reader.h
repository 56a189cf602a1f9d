/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Reads lines of a bounded length from a stream on the main loop, skipping those that are too long. */

#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define GCHAT_CLI_ERROR (gchat_cli_error_quark ())

typedef enum {
  GCHAT_CLI_ERROR_LINE_TOO_LONG,   /* the line was skipped; reading can go on */
  GCHAT_CLI_ERROR_BAD_ENCODING,    /* not UTF-8, or holding a NUL */
  GCHAT_CLI_ERROR_UNKNOWN_COMMAND,
  GCHAT_CLI_ERROR_USAGE,           /* a known command with the wrong arguments */
} GchatCliError;

GQuark gchat_cli_error_quark (void);

#define GCHAT_TYPE_CLI_LINE_READER (gchat_cli_line_reader_get_type ())

G_DECLARE_FINAL_TYPE (GchatCliLineReader, gchat_cli_line_reader, GCHAT, CLI_LINE_READER, GObject)

/* Lines of up to @max_line bytes (without the newline) are read; longer ones are skipped. */
GchatCliLineReader *gchat_cli_line_reader_new         (GInputStream        *base,
                                                       gsize                max_line);

/* One read at a time. */
void                gchat_cli_line_reader_read_async  (GchatCliLineReader  *self,
                                                       GCancellable        *cancellable,
                                                       GAsyncReadyCallback  callback,
                                                       gpointer             user_data);
/* The next line without its "\n" (nor a "\r" before it), NUL-terminated, with its length in
 * @length; NULL without an error at the end of the stream; NULL and
 * GCHAT_CLI_ERROR_LINE_TOO_LONG after skipping a line longer than the bound. A last line
 * without a newline is still returned. */
char               *gchat_cli_line_reader_read_finish (GchatCliLineReader  *self,
                                                       GAsyncResult        *result,
                                                       gsize               *length,
                                                       GError             **error);

G_END_DECLS
