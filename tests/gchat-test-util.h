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

/* How many times longer a deadline is when GCHAT_TEST_SLOW=1: the valgrind test setup sets it,
 * since everything there runs tens of times slower. */
#define GCHAT_TEST_SLOW_FACTOR 10
/* Whether the tests run under a slow checker such as valgrind (GCHAT_TEST_SLOW=1). */
gboolean  gchat_test_is_slow     (void);
/* @us, or GCHAT_TEST_SLOW_FACTOR times @us under a slow checker: for deadlines that only bound a
 * wait, never for ones a test checks are kept. */
gint64    gchat_test_scale_us    (gint64      us);
/* A new argv (without its NULL end) starting with the words of GCHAT_TEST_WRAPPER, then
 * @program: the programs a test spawns run under the same checker as the test (valgrind, in the
 * valgrind test setup). The array owns none of its strings; @program must outlive it. */
GPtrArray *gchat_test_argv_new   (const char *program);

G_END_DECLS
