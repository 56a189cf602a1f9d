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

gboolean
gchat_test_is_slow (void)
{
  return g_strcmp0 (g_getenv ("GCHAT_TEST_SLOW"), "1") == 0;
}

gint64
gchat_test_scale_us (gint64 us)
{
  return gchat_test_is_slow () ? us * GCHAT_TEST_SLOW_FACTOR : us;
}

/* The words of GCHAT_TEST_WRAPPER, parsed at the first call and kept for the life of the process,
 * or NULL when it is unset or empty. */
static char **
wrapper_words (void)
{
  static char **words = NULL;
  static gsize parsed = 0;

  if (g_once_init_enter (&parsed))
    {
      const char *wrapper = g_getenv ("GCHAT_TEST_WRAPPER");
      g_autoptr(GError) error = NULL;

      if (wrapper != NULL && *wrapper != '\0')
        {
          g_shell_parse_argv (wrapper, NULL, &words, &error);
          g_assert_no_error (error);
        }
      g_once_init_leave (&parsed, 1);
    }
  return words;
}

GPtrArray *
gchat_test_argv_new (const char *program)
{
  GPtrArray *argv = g_ptr_array_new ();
  char **words = wrapper_words ();

  for (gsize i = 0; words != NULL && words[i] != NULL; i++)
    g_ptr_array_add (argv, words[i]);
  g_ptr_array_add (argv, (gpointer) program);
  return argv;
}
