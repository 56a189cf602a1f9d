/* SPDX-License-Identifier: GPL-3.0-or-later */
/* What every test program shares: temporary folders, and looking at the files in them. */

#include <string.h>
#include <sys/stat.h>

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

guint
gchat_test_file_mode (const char *path)
{
  GStatBuf st;

  g_assert_no_errno (g_lstat (path, &st));
  return st.st_mode & 07777;
}

GBytes *
gchat_test_read_bytes (const char *path)
{
  g_autoptr(GError) error = NULL;
  char *contents = NULL;
  gsize len = 0;

  g_file_get_contents (path, &contents, &len, &error);
  g_assert_no_error (error);
  return g_bytes_new_take (contents, len);
}

/* g_ptr_array_sort() hands the comparison pointers to the elements. */
static int
compare_names (gconstpointer a,
               gconstpointer b)
{
  return strcmp (*(char * const *) a, *(char * const *) b);
}

char *
gchat_test_list_folder (const char *folder)
{
  g_autoptr(GDir) dir = g_dir_open (folder, 0, NULL);
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *name;

  g_assert_nonnull (dir);
  while ((name = g_dir_read_name (dir)) != NULL)
    g_ptr_array_add (names, g_strdup (name));
  g_ptr_array_sort (names, compare_names);
  g_ptr_array_add (names, NULL);
  return g_strjoinv (" ", (char **) names->pdata);
}
