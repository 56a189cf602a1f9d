/* SPDX-License-Identifier: GPL-3.0-or-later */
/* What every test program shares: temporary folders made and removed. */

#include <glib/gstdio.h>

#include "gchat-test-util.h"

char *
gchat_test_make_dir (const char *prefix)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *template = g_strconcat (prefix, "-XXXXXX", NULL);
  char *dir = g_dir_make_tmp (template, &error);

  g_assert_no_error (error);
  return dir;
}

gboolean
gchat_test_remove_tree (const char *path)
{
  gboolean removed = TRUE;

  if (g_file_test (path, G_FILE_TEST_IS_DIR) && !g_file_test (path, G_FILE_TEST_IS_SYMLINK))
    {
      g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
      const char *name;

      while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);

          removed &= gchat_test_remove_tree (child);
        }
      return g_rmdir (path) == 0 && removed;
    }
  return g_unlink (path) == 0;
}
