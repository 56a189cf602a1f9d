/* SPDX-License-Identifier: GPL-3.0-or-later */
/* What every test program shares: temporary folders made and removed. */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* A new folder under the temporary directory, named after @prefix; aborts the test on failure. */
char     *gchat_test_make_dir    (const char *prefix);
/* Removes @path and everything below it, without following links; FALSE when something stayed. */
gboolean  gchat_test_remove_tree (const char *path);

G_END_DECLS
