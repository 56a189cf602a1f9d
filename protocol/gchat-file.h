/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Files replaced whole and durably: a crash leaves the old file or the new one, never a mix. */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Writes @data to a temporary file beside @path (mode @mode whatever the umask), fsyncs it,
 * renames it over @path and fsyncs the folder. On failure @path is as it was and no temporary
 * file is left; @error is in G_IO_ERROR, from errno, with strerror's words as its message, for
 * the caller to put after its own ("Could not save …: "). Blocking: call it off the main loop. */
gboolean  gchat_file_replace     (const char    *path,
                                  gconstpointer  data,
                                  gsize          len,
                                  int            mode,
                                  GError       **error);
/* Makes a rename or an unlink in @path's folder durable. A file system that cannot sync a
 * folder (EINVAL) has nothing to sync there either, and counts as success. */
gboolean  gchat_file_sync_folder (const char    *path,
                                  GError       **error);

G_END_DECLS
