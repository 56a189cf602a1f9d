/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Files replaced whole and durably: a crash leaves the old file or the new one, never a mix. */

#define _GNU_SOURCE /* syncfs */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "gchat-file.h"

static gboolean
set_errno_error (GError **error,
                 int      saved_errno)
{
  g_set_error_literal (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                       g_strerror (saved_errno));
  return FALSE;
}

static gboolean
set_too_large (GError **error)
{
  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE,
                       "too large, or grew while it was read");
  return FALSE;
}

static gboolean
write_all (int           fd,
           const guint8 *data,
           gsize         len)
{
  while (len > 0)
    {
      gssize n = write (fd, data, len);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          /* A regular file never takes nothing without an error; do not loop on it. */
          if (n == 0)
            errno = ENOSPC;
          return FALSE;
        }
      data += n;
      len -= n;
    }
  return TRUE;
}

gboolean
gchat_file_read_fd (int      fd,
                    gsize    max_size,
                    char   **contents,
                    gsize   *len,
                    GError **error)
{
  struct stat st;
  g_autofree char *buffer = NULL;
  gsize size, filled = 0;
  gssize n;

  g_return_val_if_fail (contents != NULL && len != NULL, FALSE);

  if (fstat (fd, &st) != 0)
    return set_errno_error (error, errno);
  if (!S_ISREG (st.st_mode))
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_REGULAR_FILE,
                           "not a regular file");
      return FALSE;
    }
  if ((guint64) st.st_size > max_size)
    return set_too_large (error);

  /* Room for one byte more than the size, to notice a file that grew while it was read. */
  size = (gsize) st.st_size;
  buffer = g_malloc (size + 2);
  while ((n = read (fd, buffer + filled, size + 1 - filled)) != 0)
    {
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return set_errno_error (error, errno);
      filled += n;
      if (filled > size)
        return set_too_large (error);
    }
  buffer[filled] = '\0';
  *contents = g_steal_pointer (&buffer);
  *len = filled;
  return TRUE;
}

gboolean
gchat_file_sync_folder (const char  *path,
                        GError     **error)
{
  g_autofree char *folder = g_path_get_dirname (path);
  int fd = g_open (folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  int saved_errno;

  g_return_val_if_fail (path != NULL, FALSE);

  if (fd < 0)
    return set_errno_error (error, errno);
  saved_errno = fsync (fd) == 0 ? 0 : errno;
  close (fd);
  if (saved_errno != 0 && saved_errno != EINVAL)
    return set_errno_error (error, saved_errno);
  return TRUE;
}

/* Writes @data to a new temporary file beside @path, mode @mode whatever the umask, fsynced
 * when @sync; its name goes in @temp. On failure no file is left. */
static gboolean
write_temp (const char     *path,
            gconstpointer   data,
            gsize           len,
            int             mode,
            gboolean        sync,
            char          **temp,
            GError        **error)
{
  g_autofree char *name = g_strconcat (path, ".XXXXXX", NULL);
  int fd = g_mkstemp_full (name, O_WRONLY | O_CLOEXEC, mode);
  int saved_errno = 0;

  if (fd < 0)
    return set_errno_error (error, errno);
  /* fchmod: the umask may have taken bits from @mode that the file must have. */
  if (fchmod (fd, mode) != 0 || !write_all (fd, data, len) || (sync && fsync (fd) != 0))
    saved_errno = errno;
  if (close (fd) != 0 && saved_errno == 0)
    saved_errno = errno;
  if (saved_errno != 0)
    {
      g_unlink (name);
      return set_errno_error (error, saved_errno);
    }
  *temp = g_steal_pointer (&name);
  return TRUE;
}

gboolean
gchat_file_write_temp (const char     *path,
                       gconstpointer   data,
                       gsize           len,
                       int             mode,
                       char          **temp,
                       GError        **error)
{
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (data != NULL || len == 0, FALSE);
  g_return_val_if_fail (temp != NULL, FALSE);

  return write_temp (path, data, len, mode, FALSE, temp, error);
}

gboolean
gchat_file_sync_fs (const char  *path,
                    GError     **error)
{
  g_autofree char *folder = NULL;
  int fd, saved_errno;

  g_return_val_if_fail (path != NULL, FALSE);

  folder = g_path_get_dirname (path);
  fd = g_open (folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  if (fd < 0)
    return set_errno_error (error, errno);
  /* Since Linux 5.8 syncfs() also reports a failed writeback of any file since the last call. */
  saved_errno = syncfs (fd) == 0 ? 0 : errno;
  close (fd);
  if (saved_errno != 0)
    return set_errno_error (error, saved_errno);
  return TRUE;
}

gboolean
gchat_file_replace (const char     *path,
                    gconstpointer   data,
                    gsize           len,
                    int             mode,
                    GError        **error)
{
  g_autofree char *temp = NULL;

  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (data != NULL || len == 0, FALSE);

  if (!write_temp (path, data, len, mode, TRUE, &temp, error))
    return FALSE;
  if (g_rename (temp, path) != 0)
    {
      int saved_errno = errno;

      g_unlink (temp);
      return set_errno_error (error, saved_errno);
    }
  return gchat_file_sync_folder (path, error);
}
