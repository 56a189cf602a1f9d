/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The known-servers file: trust on first use, then the pinned key must not change. */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib/gi18n-lib.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "gchat-file.h"
#include "gchat-known-servers.h"

#define FINGERPRINT_HEX_SIZE (GCHAT_SHA256_SIZE * 2)
#define MAX_HOST_NAME        253
#define MAX_PORT             65535

/* One line of the file. Comments and blank lines are kept verbatim, so a rewrite keeps them. */
typedef struct
{
  char *text;        /* a comment or blank line; NULL for a server */
  char *server;      /* "host:port", normalised */
  char *fingerprint; /* FINGERPRINT_HEX_SIZE lower-case hex digits */
} Line;

struct _GchatKnownServers
{
  GObject     parent_instance;

  char       *path;
  GPtrArray  *lines; /* of Line, in file order */
  GHashTable *index; /* server → Line in @lines */
};

enum {
  PROP_0,
  PROP_PATH,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_QUARK (gchat-known-servers-error-quark, gchat_known_servers_error)
G_DEFINE_FINAL_TYPE (GchatKnownServers, gchat_known_servers, G_TYPE_OBJECT)

static void
line_free (Line *line)
{
  g_free (line->text);
  g_free (line->server);
  g_free (line->fingerprint);
  g_free (line);
}

static GPtrArray *
lines_new (void)
{
  return g_ptr_array_new_with_free_func ((GDestroyNotify) line_free);
}

static GHashTable *
index_new (void)
{
  return g_hash_table_new (g_str_hash, g_str_equal);
}

/* Host names and ports ------------------------------------------------------------------------- */

static gboolean
set_invalid_host (GError     **error,
                  const char  *host)
{
  g_autofree char *shown = g_utf8_make_valid (host, -1);

  g_set_error (error, GCHAT_KNOWN_SERVERS_ERROR, GCHAT_KNOWN_SERVERS_ERROR_INVALID,
               _("“%s” is not a host name or address"), shown);
  return FALSE;
}

/* "[2001:db8::1]" from any spelling GLib understands, so one address has one entry. A zone
 * ("%eth0") only means something on one machine, so it cannot be pinned. */
static char *
normalize_ipv6 (const char  *address,
                GError     **error)
{
  g_autoptr(GInetAddress) parsed = NULL;
  g_autofree char *text = NULL;

  if (strchr (address, '%') == NULL)
    parsed = g_inet_address_new_from_string (address);
  if (parsed == NULL || g_inet_address_get_family (parsed) != G_SOCKET_FAMILY_IPV6)
    {
      set_invalid_host (error, address);
      return NULL;
    }
  text = g_inet_address_to_string (parsed);
  return g_strdup_printf ("[%s]", text);
}

/* A DNS name (international ones in their ASCII form) or an IPv4 address, lower-cased, without
 * the final dot, which names the same host. */
static char *
normalize_name (const char  *host,
                GError     **error)
{
  g_autofree char *ascii = NULL;
  gsize len;

  if (!g_utf8_validate (host, -1, NULL))
    {
      set_invalid_host (error, host);
      return NULL;
    }
  ascii = g_hostname_is_non_ascii (host) ? g_hostname_to_ascii (host) : g_strdup (host);
  len = ascii != NULL ? strlen (ascii) : 0;
  if (len > 1 && ascii[len - 1] == '.')
    ascii[--len] = '\0';
  if (len == 0 || len > MAX_HOST_NAME || ascii[0] == '.' || strstr (ascii, "..") != NULL)
    {
      set_invalid_host (error, host);
      return NULL;
    }
  for (gsize i = 0; i < len; i++)
    if (!g_ascii_isalnum (ascii[i]) && ascii[i] != '-' && ascii[i] != '.' && ascii[i] != '_')
      {
        set_invalid_host (error, host);
        return NULL;
      }
  return g_ascii_strdown (ascii, len);
}

static char *
normalize_host (const char  *host,
                GError     **error)
{
  gsize len = strlen (host);

  if (len > 0 && host[0] == '[')
    {
      g_autofree char *inner = NULL;

      if (len < 3 || host[len - 1] != ']')
        {
          set_invalid_host (error, host);
          return NULL;
        }
      inner = g_strndup (host + 1, len - 2);
      return normalize_ipv6 (inner, error);
    }
  if (strchr (host, ':') != NULL)
    return normalize_ipv6 (host, error);
  return normalize_name (host, error);
}

/* The key of a server in the file and in the index: "host:port". */
static char *
server_name (const char  *host,
             guint        port,
             GError     **error)
{
  g_autofree char *normal = NULL;

  if (port == 0 || port > MAX_PORT)
    {
      g_set_error (error, GCHAT_KNOWN_SERVERS_ERROR, GCHAT_KNOWN_SERVERS_ERROR_INVALID,
                   _("%u is not a port number: it must be from 1 to 65535"), port);
      return NULL;
    }
  normal = normalize_host (host, error);
  if (normal == NULL)
    return NULL;
  return g_strdup_printf ("%s:%u", normal, port);
}

static char *
key_fingerprint_hex (GchatRsaKey *key)
{
  guint8 digest[GCHAT_SHA256_SIZE];
  char *hex = g_malloc (FINGERPRINT_HEX_SIZE + 1);

  gchat_rsa_key_get_fingerprint_digest (key, digest);
  for (gsize i = 0; i < GCHAT_SHA256_SIZE; i++)
    g_snprintf (hex + 2 * i, 3, "%02x", digest[i]);
  return hex;
}

/* Parsing -------------------------------------------------------------------------------------- */

/* "1".."65535", digits only. */
static gboolean
parse_port (const char *text,
            guint      *port)
{
  guint value = 0;
  gsize len = strlen (text);

  if (len == 0 || len > 5)
    return FALSE;
  for (gsize i = 0; i < len; i++)
    {
      if (!g_ascii_isdigit (text[i]))
        return FALSE;
      value = value * 10 + (guint) (text[i] - '0');
    }
  *port = value;
  return value >= 1 && value <= MAX_PORT;
}

/* "host:port" or "[ipv6]:port" into its normalised form; NULL and a reason when it is not. */
static char *
parse_server (const char  *token,
              const char **reason)
{
  g_autofree char *host = NULL;
  const char *colon;
  guint port = 0;
  char *server;

  if (token[0] == '[')
    {
      const char *close = strchr (token, ']');

      colon = close != NULL ? close + 1 : NULL;
      if (colon == NULL || *colon != ':')
        colon = NULL;
    }
  else
    {
      colon = strchr (token, ':');
      if (colon != NULL && strchr (colon + 1, ':') != NULL)
        {
          *reason = _("an IPv6 address must be written in brackets, as in “[2001:db8::1]:5222”");
          return NULL;
        }
    }
  if (colon == NULL)
    {
      *reason = _("the server has no port: write it as “host:port”");
      return NULL;
    }
  if (!parse_port (colon + 1, &port))
    {
      *reason = _("the port must be a number from 1 to 65535");
      return NULL;
    }
  host = g_strndup (token, colon - token);
  server = server_name (host, port, NULL);
  if (server == NULL)
    *reason = _("the host is not a host name or address");
  return server;
}

static char *
parse_fingerprint (const char *token)
{
  if (strlen (token) != FINGERPRINT_HEX_SIZE)
    return NULL;
  for (gsize i = 0; i < FINGERPRINT_HEX_SIZE; i++)
    if (!g_ascii_isxdigit (token[i]))
      return NULL;
  return g_ascii_strdown (token, -1);
}

/* One line without its newline, free of NUL bytes. Returns the line or NULL and a reason.
 * Blanks around and between the two fields are forgiven: people edit this file by hand. */
static Line *
parse_line (const char  *text,
            const char **reason)
{
  g_autofree char *stripped = g_strstrip (g_strdup (text));
  g_autofree char *server = NULL;
  g_autofree char *fingerprint = NULL;
  char *second;
  Line *line;

  if (stripped[0] == '\0' || stripped[0] == '#')
    {
      line = g_new0 (Line, 1);
      line->text = g_strdup (text);
      return line;
    }

  second = stripped + strcspn (stripped, " \t");
  if (*second != '\0')
    *second++ = '\0';
  second += strspn (second, " \t");
  if (*second == '\0' || second[strcspn (second, " \t")] != '\0')
    {
      *reason = _("a line must be “host:port fingerprint”");
      return NULL;
    }
  server = parse_server (stripped, reason);
  if (server == NULL)
    return NULL;
  fingerprint = parse_fingerprint (second);
  if (fingerprint == NULL)
    {
      *reason = _("the fingerprint must be 64 hexadecimal digits");
      return NULL;
    }
  line = g_new0 (Line, 1);
  line->server = g_steal_pointer (&server);
  line->fingerprint = g_steal_pointer (&fingerprint);
  return line;
}

static gboolean
set_line_error (GError     **error,
                const char  *path,
                guint        number,
                const char  *reason)
{
  g_autofree char *name = g_filename_display_name (path);

  g_set_error (error, GCHAT_KNOWN_SERVERS_ERROR, GCHAT_KNOWN_SERVERS_ERROR_SYNTAX,
               _("“%s”, line %u: %s"), name, number, reason);
  return FALSE;
}

/* Adds the line @text (@len bytes, not NUL-terminated) to @lines and @index. */
static gboolean
add_line (GPtrArray   *lines,
          GHashTable  *index,
          const char  *path,
          guint        number,
          const char  *text,
          gsize        len,
          GError     **error)
{
  g_autofree char *copy = NULL;
  const char *reason = NULL;
  Line *line;

  if (len > GCHAT_KNOWN_SERVERS_MAX_LINE)
    return set_line_error (error, path, number, _("the line is too long"));
  if (memchr (text, '\0', len) != NULL)
    return set_line_error (error, path, number, _("the line holds a NUL byte"));
  copy = g_strndup (text, len);
  line = parse_line (copy, &reason);
  if (line == NULL)
    return set_line_error (error, path, number, reason);
  if (line->server != NULL && g_hash_table_contains (index, line->server))
    {
      line_free (line);
      return set_line_error (error, path, number,
                             _("this server is already on an earlier line: remove one of them"));
    }
  g_ptr_array_add (lines, line);
  if (line->server != NULL)
    g_hash_table_insert (index, line->server, line);
  return TRUE;
}

static gboolean
parse_contents (const char  *path,
                const char  *contents,
                gsize        len,
                GPtrArray   *lines,
                GHashTable  *index,
                GError     **error)
{
  const char *p = contents;
  const char *end = contents + len;
  guint number = 0;

  while (p < end)
    {
      const char *newline = memchr (p, '\n', end - p);
      const char *line_end = newline != NULL ? newline : end;

      number++;
      if (!add_line (lines, index, path, number, p, line_end - p, error))
        return FALSE;
      p = newline != NULL ? newline + 1 : end;
    }
  return TRUE;
}

/* Reading and writing -------------------------------------------------------------------------- */

/* The whole file, or NULL contents and TRUE when there is none. */
static gboolean
read_file (const char  *path,
           char       **contents,
           gsize       *len,
           GError     **error)
{
  g_autoptr(GError) local_error = NULL;
  g_autofree char *name = NULL;
  int fd;

  /* O_NONBLOCK so that a FIFO put in the file's place cannot hang the client. */
  fd = g_open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0);
  if (fd < 0 && errno == ENOENT)
    return TRUE;
  if (fd >= 0 && gchat_file_read_fd (fd, GCHAT_KNOWN_SERVERS_MAX_FILE, contents, len,
                                     &local_error))
    {
      close (fd);
      return TRUE;
    }

  name = g_filename_display_name (path);
  if (fd < 0)
    g_set_error (error, GCHAT_KNOWN_SERVERS_ERROR, GCHAT_KNOWN_SERVERS_ERROR_READ,
                 _("Could not read the known servers in “%s”: %s"), name, g_strerror (errno));
  else if (g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE))
    g_set_error (error, GCHAT_KNOWN_SERVERS_ERROR, GCHAT_KNOWN_SERVERS_ERROR_TOO_LARGE,
                 _("“%s” is larger than %u KiB: it cannot be a list of known servers"), name,
                 GCHAT_KNOWN_SERVERS_MAX_FILE / 1024);
  else
    g_set_error (error, GCHAT_KNOWN_SERVERS_ERROR, GCHAT_KNOWN_SERVERS_ERROR_READ,
                 _("Could not read the known servers in “%s”: %s"), name, local_error->message);
  if (fd >= 0)
    close (fd);
  return FALSE;
}

/* The file's text with @server's fingerprint set to @fingerprint (added at the end if it was
 * not there), or removed when @fingerprint is NULL. The list itself is not changed. */
static GString *
format_with_change (GchatKnownServers *self,
                    const char        *server,
                    const char        *fingerprint)
{
  GString *text = g_string_new (NULL);
  gboolean found = FALSE;

  for (guint i = 0; i < self->lines->len; i++)
    {
      Line *line = g_ptr_array_index (self->lines, i);
      const char *value = line->fingerprint;

      if (line->text != NULL)
        {
          g_string_append_printf (text, "%s\n", line->text);
          continue;
        }
      if (strcmp (line->server, server) == 0)
        {
          found = TRUE;
          value = fingerprint;
        }
      if (value != NULL)
        g_string_append_printf (text, "%s %s\n", line->server, value);
    }
  if (!found && fingerprint != NULL)
    g_string_append_printf (text, "%s %s\n", server, fingerprint);
  return text;
}

static gboolean
write_file (const char  *path,
            GString     *text,
            GError     **error)
{
  g_autofree char *folder = g_path_get_dirname (path);
  g_autofree char *name = g_filename_display_name (path);
  g_autoptr(GError) local_error = NULL;

  /* Which servers someone talks to is private: the folder, if we make it, is only theirs. */
  if (g_mkdir_with_parents (folder, 0700) != 0)
    {
      int saved_errno = errno;
      g_autofree char *folder_name = g_filename_display_name (folder);

      g_set_error (error, GCHAT_KNOWN_SERVERS_ERROR, GCHAT_KNOWN_SERVERS_ERROR_WRITE,
                   _("Could not make the folder “%s”: %s"), folder_name, g_strerror (saved_errno));
      return FALSE;
    }
  if (!gchat_file_replace (path, text->str, text->len, 0600, &local_error))
    {
      g_set_error (error, GCHAT_KNOWN_SERVERS_ERROR, GCHAT_KNOWN_SERVERS_ERROR_WRITE,
                   _("Could not save the known servers in “%s”: %s"), name, local_error->message);
      return FALSE;
    }
  return TRUE;
}

/* Applies to the list the change format_with_change() wrote. */
static void
apply_change (GchatKnownServers *self,
              const char        *server,
              const char        *fingerprint)
{
  Line *line = g_hash_table_lookup (self->index, server);

  if (line != NULL && fingerprint != NULL)
    {
      g_free (line->fingerprint);
      line->fingerprint = g_strdup (fingerprint);
    }
  else if (line != NULL)
    {
      g_hash_table_remove (self->index, server);
      g_ptr_array_remove (self->lines, line);
    }
  else if (fingerprint != NULL)
    {
      line = g_new0 (Line, 1);
      line->server = g_strdup (server);
      line->fingerprint = g_strdup (fingerprint);
      g_ptr_array_add (self->lines, line);
      g_hash_table_insert (self->index, line->server, line);
    }
}

/* Pin and forget: read the file again, write it with the change, then change the list. */
static gboolean
change (GchatKnownServers  *self,
        const char         *host,
        guint               port,
        const char         *fingerprint,
        GError            **error)
{
  g_autofree char *server = server_name (host, port, error);
  g_autoptr(GString) text = NULL;

  if (server == NULL || !gchat_known_servers_load (self, error))
    return FALSE;
  if (fingerprint == NULL && !g_hash_table_contains (self->index, server))
    return TRUE;
  text = format_with_change (self, server, fingerprint);
  if (!write_file (self->path, text, error))
    return FALSE;
  apply_change (self, server, fingerprint);
  return TRUE;
}

/* The object ----------------------------------------------------------------------------------- */

static void
gchat_known_servers_finalize (GObject *object)
{
  GchatKnownServers *self = GCHAT_KNOWN_SERVERS (object);

  g_clear_pointer (&self->index, g_hash_table_unref);
  g_clear_pointer (&self->lines, g_ptr_array_unref);
  g_clear_pointer (&self->path, g_free);

  G_OBJECT_CLASS (gchat_known_servers_parent_class)->finalize (object);
}

static void
gchat_known_servers_get_property (GObject    *object,
                                  guint       prop_id,
                                  GValue     *value,
                                  GParamSpec *pspec)
{
  GchatKnownServers *self = GCHAT_KNOWN_SERVERS (object);

  switch (prop_id)
    {
    case PROP_PATH:
      g_value_set_string (value, self->path);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
gchat_known_servers_set_property (GObject      *object,
                                  guint         prop_id,
                                  const GValue *value,
                                  GParamSpec   *pspec)
{
  GchatKnownServers *self = GCHAT_KNOWN_SERVERS (object);

  switch (prop_id)
    {
    case PROP_PATH:
      g_free (self->path);
      self->path = g_value_dup_string (value);
      if (self->path == NULL)
        self->path = gchat_known_servers_get_default_path ();
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
gchat_known_servers_class_init (GchatKnownServersClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = gchat_known_servers_finalize;
  object_class->get_property = gchat_known_servers_get_property;
  object_class->set_property = gchat_known_servers_set_property;

  properties[PROP_PATH] =
    g_param_spec_string ("path", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
gchat_known_servers_init (GchatKnownServers *self)
{
  self->lines = lines_new ();
  self->index = index_new ();
}

char *
gchat_known_servers_get_default_path (void)
{
  return g_build_filename (g_get_user_data_dir (), "gchat", "known-servers", NULL);
}

GchatKnownServers *
gchat_known_servers_new (const char *path)
{
  return g_object_new (GCHAT_TYPE_KNOWN_SERVERS, "path", path, NULL);
}

const char *
gchat_known_servers_get_path (GchatKnownServers *self)
{
  g_return_val_if_fail (GCHAT_IS_KNOWN_SERVERS (self), NULL);
  return self->path;
}

gboolean
gchat_known_servers_load (GchatKnownServers  *self,
                          GError            **error)
{
  g_autofree char *contents = NULL;
  g_autoptr(GPtrArray) lines = lines_new ();
  g_autoptr(GHashTable) index = index_new ();
  gsize len = 0;

  g_return_val_if_fail (GCHAT_IS_KNOWN_SERVERS (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!read_file (self->path, &contents, &len, error))
    return FALSE;
  if (contents != NULL && !parse_contents (self->path, contents, len, lines, index, error))
    return FALSE;

  /* The index points into the lines: drop it first. */
  g_hash_table_unref (g_steal_pointer (&self->index));
  g_ptr_array_unref (g_steal_pointer (&self->lines));
  self->lines = g_steal_pointer (&lines);
  self->index = g_steal_pointer (&index);
  return TRUE;
}

GchatKnownServerStatus
gchat_known_servers_check (GchatKnownServers  *self,
                           const char         *host,
                           guint               port,
                           GchatRsaKey        *key,
                           char              **pinned_fingerprint)
{
  g_autofree char *server = NULL;
  g_autofree char *hex = NULL;
  Line *line = NULL;

  g_return_val_if_fail (GCHAT_IS_KNOWN_SERVERS (self), GCHAT_KNOWN_SERVER_UNKNOWN);
  g_return_val_if_fail (host != NULL, GCHAT_KNOWN_SERVER_UNKNOWN);
  g_return_val_if_fail (GCHAT_IS_RSA_KEY (key), GCHAT_KNOWN_SERVER_UNKNOWN);

  if (pinned_fingerprint != NULL)
    *pinned_fingerprint = NULL;
  server = server_name (host, port, NULL);
  if (server != NULL)
    line = g_hash_table_lookup (self->index, server);
  if (line == NULL)
    return GCHAT_KNOWN_SERVER_UNKNOWN;

  if (pinned_fingerprint != NULL)
    *pinned_fingerprint = gchat_known_servers_format_fingerprint (line->fingerprint);
  hex = key_fingerprint_hex (key);
  return strcmp (hex, line->fingerprint) == 0 ? GCHAT_KNOWN_SERVER_TRUSTED
                                              : GCHAT_KNOWN_SERVER_CHANGED;
}

gboolean
gchat_known_servers_pin (GchatKnownServers  *self,
                         const char         *host,
                         guint               port,
                         GchatRsaKey        *key,
                         GError            **error)
{
  g_autofree char *hex = NULL;

  g_return_val_if_fail (GCHAT_IS_KNOWN_SERVERS (self), FALSE);
  g_return_val_if_fail (host != NULL, FALSE);
  g_return_val_if_fail (GCHAT_IS_RSA_KEY (key), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  hex = key_fingerprint_hex (key);
  return change (self, host, port, hex, error);
}

gboolean
gchat_known_servers_forget (GchatKnownServers  *self,
                            const char         *host,
                            guint               port,
                            GError            **error)
{
  g_return_val_if_fail (GCHAT_IS_KNOWN_SERVERS (self), FALSE);
  g_return_val_if_fail (host != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return change (self, host, port, NULL, error);
}

char *
gchat_known_servers_format_fingerprint (const char *hex)
{
  guint8 digest[GCHAT_SHA256_SIZE];

  g_return_val_if_fail (hex != NULL, NULL);

  if (strlen (hex) != FINGERPRINT_HEX_SIZE)
    return NULL;
  for (gsize i = 0; i < GCHAT_SHA256_SIZE; i++)
    {
      int high = g_ascii_xdigit_value (hex[2 * i]);
      int low = g_ascii_xdigit_value (hex[2 * i + 1]);

      if (high < 0 || low < 0)
        return NULL;
      digest[i] = (guint8) (high << 4 | low);
    }
  return gchat_fingerprint_format (digest);
}
