/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Reads lines of a bounded length from a stream on the main loop, skipping those that are too long. */

#include "config.h"

#include <string.h>

#include <glib/gi18n-lib.h>

#include "gchat-cli-line-reader.h"

/* GDataInputStream's read_line grows its buffer for as long as no newline comes, so this reads
 * through a GBufferedInputStream of a fixed size instead and looks for the newline itself. */
struct _GchatCliLineReader
{
  GObject               parent_instance;

  GBufferedInputStream *stream;
  gsize                 max_line;
  gboolean              skipping; /* within a line that is too long, until its newline */
};

G_DEFINE_FINAL_TYPE (GchatCliLineReader, gchat_cli_line_reader, G_TYPE_OBJECT)

G_DEFINE_QUARK (gchat-cli-error-quark, gchat_cli_error)

static void fill_cb (GObject      *source,
                     GAsyncResult *result,
                     gpointer      user_data);

static void
gchat_cli_line_reader_dispose (GObject *object)
{
  GchatCliLineReader *self = GCHAT_CLI_LINE_READER (object);

  g_clear_object (&self->stream);
  G_OBJECT_CLASS (gchat_cli_line_reader_parent_class)->dispose (object);
}

static void
gchat_cli_line_reader_class_init (GchatCliLineReaderClass *klass)
{
  G_OBJECT_CLASS (klass)->dispose = gchat_cli_line_reader_dispose;
}

static void
gchat_cli_line_reader_init (GchatCliLineReader *self)
{
}

GchatCliLineReader *
gchat_cli_line_reader_new (GInputStream *base,
                           gsize         max_line)
{
  GchatCliLineReader *self;

  g_return_val_if_fail (G_IS_INPUT_STREAM (base), NULL);
  g_return_val_if_fail (max_line > 0 && max_line < G_MAXINT, NULL);

  self = g_object_new (GCHAT_TYPE_CLI_LINE_READER, NULL);
  self->max_line = max_line;
  self->stream = G_BUFFERED_INPUT_STREAM (g_buffered_input_stream_new_sized (base, max_line + 1));
  return self;
}

/* Consumes @count bytes that are already in the buffer, which never blocks. */
static void
consume (GchatCliLineReader *self,
         gsize               count)
{
  g_input_stream_skip (G_INPUT_STREAM (self->stream), count, NULL, NULL);
}

static void
free_line (gpointer line)
{
  g_string_free (line, TRUE);
}

static GString *
make_line (const char *data,
           gsize       len)
{
  GString *line;

  if (len > 0 && data[len - 1] == '\r')
    len--;
  line = g_string_sized_new (len + 1);
  g_string_append_len (line, data, len);
  return line;
}

static void
return_too_long (GchatCliLineReader *self,
                 GTask              *task)
{
  self->skipping = FALSE;
  g_task_return_new_error (task, GCHAT_CLI_ERROR, GCHAT_CLI_ERROR_LINE_TOO_LONG,
                           _("The line is longer than %u bytes and was skipped"),
                           (guint) self->max_line);
}

/* Completes @task from what the buffer holds, or returns FALSE when more must be read. */
static gboolean
take_line (GchatCliLineReader *self,
           GTask              *task)
{
  gsize available;
  const char *data = g_buffered_input_stream_peek_buffer (self->stream, &available);
  const char *newline = memchr (data, '\n', available);
  GString *line;
  gsize len;

  if (newline == NULL)
    {
      /* A full buffer without a newline: drop it, and the rest of the line as it comes. */
      if (available > self->max_line)
        {
          self->skipping = TRUE;
          consume (self, available);
        }
      return FALSE;
    }

  /* Consumed before the task returns: its callback may read the next line at once. */
  len = newline - data;
  line = self->skipping ? NULL : make_line (data, len);
  consume (self, len + 1);
  if (line == NULL)
    return_too_long (self, task);
  else
    g_task_return_pointer (task, line, free_line);
  return TRUE;
}

static void
read_more (GTask *task)
{
  GchatCliLineReader *self = g_task_get_source_object (task);

  if (take_line (self, task))
    {
      g_object_unref (task);
      return;
    }
  g_buffered_input_stream_fill_async (self->stream, -1, G_PRIORITY_DEFAULT,
                                      g_task_get_cancellable (task), fill_cb, task);
}

/* The end of the stream: what is left is the last line, unless it belongs to a skipped one. */
static void
finish_at_end (GchatCliLineReader *self,
               GTask              *task)
{
  gsize available;
  const char *data = g_buffered_input_stream_peek_buffer (self->stream, &available);
  GString *line = !self->skipping && available > 0 ? make_line (data, available) : NULL;
  gboolean skipped = self->skipping;

  consume (self, available);
  if (skipped)
    return_too_long (self, task);
  else
    g_task_return_pointer (task, line, line != NULL ? free_line : NULL);
}

static void
fill_cb (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  GchatCliLineReader *self = g_task_get_source_object (task);
  GError *error = NULL;
  gssize n = g_buffered_input_stream_fill_finish (self->stream, result, &error);

  if (n < 0)
    g_task_return_error (task, error);
  else if (n == 0)
    finish_at_end (self, task);
  else
    read_more (g_steal_pointer (&task));
}

void
gchat_cli_line_reader_read_async (GchatCliLineReader  *self,
                                  GCancellable        *cancellable,
                                  GAsyncReadyCallback  callback,
                                  gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (GCHAT_IS_CLI_LINE_READER (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, gchat_cli_line_reader_read_async);
  read_more (task);
}

char *
gchat_cli_line_reader_read_finish (GchatCliLineReader  *self,
                                   GAsyncResult        *result,
                                   gsize               *length,
                                   GError             **error)
{
  GString *line;

  g_return_val_if_fail (g_task_is_valid (result, self), NULL);

  line = g_task_propagate_pointer (G_TASK (result), error);
  if (length != NULL)
    *length = line != NULL ? line->len : 0;
  return line != NULL ? g_string_free (line, FALSE) : NULL;
}
