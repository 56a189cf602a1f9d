/* SPDX-License-Identifier: GPL-3.0-or-later */
/* What every test program shares: temporary folders, and looking at the files in them. */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* A new folder under the temporary directory, named after @prefix; aborts the test on failure. */
char     *gchat_test_make_dir    (const char *prefix);
/* Removes @path and everything below it, without following links; FALSE when something stayed. */
gboolean  gchat_test_remove_tree (const char *path);

/* The permission bits of @path itself (a link is not followed). */
guint     gchat_test_file_mode   (const char *path);
/* The whole contents of @path; aborts the test when it cannot be read. */
GBytes   *gchat_test_read_bytes  (const char *path);
/* The names in @folder, sorted and joined by spaces: shows leftover temporary files. */
char     *gchat_test_list_folder (const char *folder);

G_END_DECLS
