/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Files replaced whole and durably: a crash leaves the old file or the new one, never a mix. */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Reads the whole of the open file @fd, which must be a regular file of at most @max_size bytes:
 * a larger one is refused before anything is allocated for it, and one that grows while it is
 * read is refused too. The result is NUL-terminated. Errors are in G_IO_ERROR:
 * G_IO_ERROR_NOT_REGULAR_FILE, G_IO_ERROR_MESSAGE_TOO_LARGE, or from errno with strerror's
 * words, for the caller to name the file. */
gboolean  gchat_file_read_fd     (int            fd,
                                  gsize          max_size,
                                  char         **contents,
                                  gsize         *len,
                                  GError       **error);
/* Writes @data to a temporary file beside @path (mode @mode whatever the umask), fsyncs it,
 * renames it over @path and fsyncs the folder. On failure @path is as it was and no temporary
 * file is left; @error is in G_IO_ERROR, from errno, with strerror's words as its message, for
 * the caller to put after its own ("Could not save …: "). Blocking: call it off the main loop. */
gboolean  gchat_file_replace     (const char    *path,
                                  gconstpointer  data,
                                  gsize          len,
                                  int            mode,
                                  GError       **error);
/* The parts of gchat_file_replace() for a writer that replaces many files at once: each fsync
 * costs about a millisecond, and a batch of thousands of files took seconds.
 * gchat_file_write_temp() writes @data to a new temporary file beside @path (mode @mode) and
 * returns its name in @temp, not yet durable; gchat_file_sync_fs() makes everything written on
 * @path's file system durable in one call (syncfs); then each temporary file is renamed over
 * its file, and one gchat_file_sync_folder() makes the renames durable. Errors as above. */
gboolean  gchat_file_write_temp  (const char    *path,
                                  gconstpointer  data,
                                  gsize          len,
                                  int            mode,
                                  char         **temp,
                                  GError       **error);
gboolean  gchat_file_sync_fs     (const char    *path,
                                  GError       **error);
/* Makes a rename or an unlink in @path's folder durable. A file system that cannot sync a
 * folder (EINVAL) has nothing to sync there either, and counts as success. */
gboolean  gchat_file_sync_folder (const char    *path,
                                  GError       **error);

G_END_DECLS
