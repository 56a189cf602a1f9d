/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Tests of the known-servers file: first use, pinning, changed keys and hostile files. */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gchat-known-servers.h"
#include "gchat-test-util.h"

static GchatRsaKey *key_a;
static GchatRsaKey *key_b;

typedef struct
{
  char *folder; /* the temporary folder */
  char *path;   /* a file in a subfolder not made yet */
} Fixture;

static void
fixture_set_up (Fixture       *f,
                gconstpointer  data)
{
  f->folder = gchat_test_make_dir ("known-servers");
  f->path = g_build_filename (f->folder, "gchat", "known-servers", NULL);
}

static void
fixture_tear_down (Fixture       *f,
                   gconstpointer  data)
{
  g_assert_true (gchat_test_remove_tree (f->folder));
  g_free (f->folder);
  g_free (f->path);
}

/* The lower-case hex SHA-256 of @key's DER, as a file line has it. */
static char *
hex_of (GchatRsaKey *key)
{
  g_autoptr(GBytes) der = gchat_rsa_key_get_public_der (key);
  guint8 digest[GCHAT_SHA256_SIZE];
  GString *hex = g_string_new (NULL);

  gchat_sha256 (g_bytes_get_data (der, NULL), g_bytes_get_size (der), digest);
  for (guint i = 0; i < sizeof digest; i++)
    g_string_append_printf (hex, "%02x", digest[i]);
  return g_string_free (hex, FALSE);
}

static char *
read_text (const char *path)
{
  g_autoptr(GBytes) bytes = gchat_test_read_bytes (path);

  return g_strndup (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes));
}

static void
write_text (const char *path,
            const char *text,
            gssize      len)
{
  g_autofree char *folder = g_path_get_dirname (path);
  g_autoptr(GError) error = NULL;

  g_assert_cmpint (g_mkdir_with_parents (folder, 0700), ==, 0);
  g_file_set_contents (path, text, len, &error);
  g_assert_no_error (error);
}

static GchatKnownServers *
loaded (const char *path)
{
  g_autoptr(GchatKnownServers) known = gchat_known_servers_new (path);
  g_autoptr(GError) error = NULL;

  g_assert_true (gchat_known_servers_load (known, &error));
  g_assert_no_error (error);
  return g_steal_pointer (&known);
}

static void
assert_status (GchatKnownServers      *known,
               const char             *host,
               guint                   port,
               GchatRsaKey            *key,
               GchatKnownServerStatus  expected)
{
  g_autofree char *pinned = NULL;

  g_assert_cmpint (gchat_known_servers_check (known, host, port, key, &pinned), ==, expected);
  if (expected == GCHAT_KNOWN_SERVER_UNKNOWN)
    g_assert_null (pinned);
  else
    g_assert_nonnull (pinned);
}

static void
pin (GchatKnownServers *known,
     const char        *host,
     guint              port,
     GchatRsaKey       *key)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (gchat_known_servers_pin (known, host, port, key, &error));
  g_assert_no_error (error);
}

static void
test_first_use (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(GchatKnownServers) known = loaded (f->path);
  g_autofree char *pinned = NULL;
  g_autofree char *expected = gchat_rsa_key_get_fingerprint (key_a);
  g_autofree char *hex = hex_of (key_a);
  g_autofree char *line = g_strdup_printf ("chat.example.org:5222 %s\n", hex);
  g_autofree char *text = NULL;

  g_assert_cmpstr (gchat_known_servers_get_path (known), ==, f->path);
  g_assert_cmpint (gchat_known_servers_check (known, "chat.example.org", 5222, key_a, &pinned),
                   ==, GCHAT_KNOWN_SERVER_UNKNOWN);
  g_assert_null (pinned);
  g_assert_false (g_file_test (f->path, G_FILE_TEST_EXISTS));

  pin (known, "chat.example.org", 5222, key_a);
  g_assert_cmpint (gchat_known_servers_check (known, "chat.example.org", 5222, key_a, &pinned),
                   ==, GCHAT_KNOWN_SERVER_TRUSTED);
  g_assert_cmpstr (pinned, ==, expected);
  text = read_text (f->path);
  g_assert_cmpstr (text, ==, line);
  /* Another port is another server. */
  assert_status (known, "chat.example.org", 5223, key_a, GCHAT_KNOWN_SERVER_UNKNOWN);
}

static void
test_changed (Fixture       *f,
              gconstpointer  data)
{
  g_autoptr(GchatKnownServers) known = loaded (f->path);
  g_autofree char *pinned = NULL;
  g_autofree char *fingerprint_a = gchat_rsa_key_get_fingerprint (key_a);
  g_autofree char *fingerprint_b = gchat_rsa_key_get_fingerprint (key_b);
  g_autofree char *hex_b = hex_of (key_b);
  g_autofree char *text = NULL;
  g_autofree char *line = NULL;

  pin (known, "chat.example.org", 5222, key_a);
  g_assert_cmpint (gchat_known_servers_check (known, "chat.example.org", 5222, key_b, &pinned),
                   ==, GCHAT_KNOWN_SERVER_CHANGED);
  /* What the client shows: the pinned fingerprint and the presented one, which differ. */
  g_assert_cmpstr (pinned, ==, fingerprint_a);
  g_assert_cmpstr (pinned, !=, fingerprint_b);
  g_assert_cmpuint (strlen (pinned), ==, 16 * 4 + 15);

  /* The user accepts the new key: it replaces the old one, on the same line. */
  pin (known, "chat.example.org", 5222, key_b);
  assert_status (known, "chat.example.org", 5222, key_b, GCHAT_KNOWN_SERVER_TRUSTED);
  assert_status (known, "chat.example.org", 5222, key_a, GCHAT_KNOWN_SERVER_CHANGED);
  text = read_text (f->path);
  line = g_strdup_printf ("chat.example.org:5222 %s\n", hex_b);
  g_assert_cmpstr (text, ==, line);
}

static void
test_reload (Fixture       *f,
             gconstpointer  data)
{
  g_autoptr(GchatKnownServers) first = loaded (f->path);
  g_autoptr(GchatKnownServers) second = loaded (f->path);
  g_autoptr(GchatKnownServers) third = NULL;

  pin (first, "one.example", 1, key_a);
  /* @second has not seen that pin, yet its own pin keeps it: pinning reads the file first. */
  pin (second, "two.example", 65535, key_b);
  third = loaded (f->path);
  assert_status (third, "one.example", 1, key_a, GCHAT_KNOWN_SERVER_TRUSTED);
  assert_status (third, "two.example", 65535, key_b, GCHAT_KNOWN_SERVER_TRUSTED);
  assert_status (second, "one.example", 1, key_a, GCHAT_KNOWN_SERVER_TRUSTED);
}

static void
test_modes (Fixture       *f,
            gconstpointer  data)
{
  g_autoptr(GchatKnownServers) known = gchat_known_servers_new (f->path);
  g_autofree char *folder = g_path_get_dirname (f->path);
  mode_t old_umask = umask (0);

  pin (known, "chat.example.org", 5222, key_a);
  umask (old_umask);
  g_assert_cmpuint (gchat_test_file_mode (folder), ==, 0700);
  g_assert_cmpuint (gchat_test_file_mode (f->path), ==, 0600);
  /* A rewrite leaves no temporary file behind. */
  pin (known, "chat.example.org", 5222, key_b);
  g_assert_cmpuint (gchat_test_file_mode (f->path), ==, 0600);
  {
    g_autofree char *names = gchat_test_list_folder (folder);

    g_assert_cmpstr (names, ==, "known-servers");
  }
}

/* A hostile or broken file: an error that names the file (and the line), and a list that
 * stays as it was. */
typedef struct
{
  const char *name;
  const char *contents; /* {fp} and {fp63} stand for a fingerprint and its first 63 digits;
                         * NULL: built by the test */
  int         code;
  guint       line;     /* 0: no line number */
} HostileCase;

static char *
hostile_contents (const HostileCase *c,
                  gsize             *len)
{
  g_autofree char *hex = hex_of (key_a);

  if (c->contents != NULL)
    {
      GString *text = g_string_new (c->contents);
      g_autofree char *hex63 = g_strndup (hex, 63);

      g_string_replace (text, "{fp63}", hex63, 0);
      g_string_replace (text, "{fp}", hex, 0);
      *len = text->len;
      return g_string_free (text, FALSE);
    }
  if (strcmp (c->name, "huge-line") == 0)
    {
      GString *text = g_string_new ("# fine\n");

      g_string_append_printf (text, "host.example:1 %s", hex);
      for (guint i = 0; i < GCHAT_KNOWN_SERVERS_MAX_LINE; i++)
        g_string_append_c (text, ' ');
      g_string_append (text, "\n");
      *len = text->len;
      return g_string_free (text, FALSE);
    }
  if (strcmp (c->name, "two-mib") == 0)
    {
      *len = 2 * 1024 * 1024;
      return g_strnfill (*len, '#');
    }
  /* Binary junk, NUL bytes included, on the third line. */
  {
    GString *text = g_string_new ("\n#\n");

    for (guint i = 0; i < 512; i++)
      g_string_append_c (text, (char) (i * 37 % 256 == '\n' ? 0 : i * 37 % 256));
    *len = text->len;
    return g_string_free (text, FALSE);
  }
}

static const HostileCase hostile_cases[] = {
  { "huge-line", NULL, GCHAT_KNOWN_SERVERS_ERROR_SYNTAX, 2 },
  { "two-mib", NULL, GCHAT_KNOWN_SERVERS_ERROR_TOO_LARGE, 0 },
  { "binary", NULL, GCHAT_KNOWN_SERVERS_ERROR_SYNTAX, 3 },
  { "short-fingerprint", "# a\n\nhost.example:1 {fp63}\n", GCHAT_KNOWN_SERVERS_ERROR_SYNTAX, 3 },
  { "long-fingerprint", "host.example:1 {fp}0\n", GCHAT_KNOWN_SERVERS_ERROR_SYNTAX, 1 },
  { "not-hex", "host.example:1 {fp63}g\n", GCHAT_KNOWN_SERVERS_ERROR_SYNTAX, 1 },
  { "no-fingerprint", "a.example:1 {fp}\nhost.example:2\n", GCHAT_KNOWN_SERVERS_ERROR_SYNTAX, 2 },
  { "missing-port", "host.example {fp}\n", GCHAT_KNOWN_SERVERS_ERROR_SYNTAX, 1 },
  { "empty-port", "host.example: {fp}\n", GCHAT_KNOWN_SERVERS_ERROR_SYNTAX, 1 },
  { "port-zero", "host.example:0 {fp}\n", GCHAT_KNOWN_SERVERS_ERROR_SYNTAX, 1 },
  { "port-70000", "host.example:70000 {fp}\n", GCHAT_KNOWN_SERVERS_ERROR_SYNTAX, 1 },
  { "port-sign", "host.example:+80 {fp}\n", GCHAT_KNOWN_SERVERS_ERROR_SYNTAX, 1 },
  { "port-huge", "host.example:99999999999999999999 {fp}\n", GCHAT_KNOWN_SERVERS_ERROR_SYNTAX, 1 },
  { "bare-ipv6", "::1:5222 {fp}\n", GCHAT_KNOWN_SERVERS_ERROR_SYNTAX, 1 },
  { "bad-ipv6", "[::g]:5222 {fp}\n", GCHAT_KNOWN_SERVERS_ERROR_SYNTAX, 1 },
  { "unclosed-ipv6", "[::1:5222 {fp}\n", GCHAT_KNOWN_SERVERS_ERROR_SYNTAX, 1 },
  { "ipv4-in-brackets", "[127.0.0.1]:5222 {fp}\n", GCHAT_KNOWN_SERVERS_ERROR_SYNTAX, 1 },
  { "bad-host", "ho/st:1 {fp}\n", GCHAT_KNOWN_SERVERS_ERROR_SYNTAX, 1 },
  { "empty-host", ":1 {fp}\n", GCHAT_KNOWN_SERVERS_ERROR_SYNTAX, 1 },
  { "extra-field", "host.example:1 {fp} extra\n", GCHAT_KNOWN_SERVERS_ERROR_SYNTAX, 1 },
  { "duplicate", "h.example:1 {fp}\n#\nH.EXAMPLE:1 {fp}\n", GCHAT_KNOWN_SERVERS_ERROR_SYNTAX, 3 },
};

static void
test_hostile (Fixture       *f,
              gconstpointer  data)
{
  for (guint i = 0; i < G_N_ELEMENTS (hostile_cases); i++)
    {
      const HostileCase *c = &hostile_cases[i];
      g_autoptr(GchatKnownServers) known = gchat_known_servers_new (f->path);
      g_autoptr(GError) error = NULL;
      g_autofree char *contents = NULL;
      gsize len = 0;

      g_test_message ("case %s", c->name);
      g_assert_cmpint (g_remove (f->path) == 0 || errno == ENOENT, ==, TRUE);
      pin (known, "kept.example", 1, key_a);

      contents = hostile_contents (c, &len);
      write_text (f->path, contents, len);
      g_assert_false (gchat_known_servers_load (known, &error));
      g_assert_error (error, GCHAT_KNOWN_SERVERS_ERROR, c->code);
      g_test_message ("%s", error->message);
      g_assert_nonnull (strstr (error->message, f->path));
      if (c->line != 0)
        {
          g_autofree char *where = g_strdup_printf ("line %u:", c->line);

          g_assert_nonnull (strstr (error->message, where));
        }
      g_assert_true (g_utf8_validate (error->message, -1, NULL));
      /* The list is as it was, and nothing is pinned over a file we cannot read. */
      assert_status (known, "kept.example", 1, key_a, GCHAT_KNOWN_SERVER_TRUSTED);
      g_clear_error (&error);
      g_assert_false (gchat_known_servers_pin (known, "new.example", 1, key_b, &error));
      g_assert_error (error, GCHAT_KNOWN_SERVERS_ERROR, c->code);
      {
        g_autoptr(GBytes) after = gchat_test_read_bytes (f->path);

        g_assert_cmpmem (g_bytes_get_data (after, NULL), g_bytes_get_size (after), contents, len);
      }
    }
}

/* Something that is not a regular file where the file should be: refused, never waited on. */
static void
test_not_a_file (Fixture       *f,
                 gconstpointer  data)
{
  g_autoptr(GchatKnownServers) known = gchat_known_servers_new (f->path);
  g_autoptr(GError) error = NULL;

  g_assert_cmpint (g_mkdir_with_parents (f->path, 0700), ==, 0);
  g_assert_false (gchat_known_servers_load (known, &error));
  g_assert_error (error, GCHAT_KNOWN_SERVERS_ERROR, GCHAT_KNOWN_SERVERS_ERROR_READ);
  g_clear_error (&error);
  g_assert_cmpint (g_rmdir (f->path), ==, 0);

  g_assert_cmpint (mkfifo (f->path, 0600), ==, 0);
  g_assert_false (gchat_known_servers_load (known, &error));
  g_assert_error (error, GCHAT_KNOWN_SERVERS_ERROR, GCHAT_KNOWN_SERVERS_ERROR_READ);
}

static void
test_host_case (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(GchatKnownServers) known = loaded (f->path);
  g_autoptr(GchatKnownServers) again = NULL;
  g_autofree char *text = NULL;

  pin (known, "Chat.Example.ORG", 5222, key_a);
  assert_status (known, "chat.example.org", 5222, key_a, GCHAT_KNOWN_SERVER_TRUSTED);
  assert_status (known, "CHAT.EXAMPLE.ORG", 5222, key_a, GCHAT_KNOWN_SERVER_TRUSTED);
  assert_status (known, "chat.example.org.", 5222, key_a, GCHAT_KNOWN_SERVER_TRUSTED);
  assert_status (known, "chat.example.com", 5222, key_a, GCHAT_KNOWN_SERVER_UNKNOWN);
  text = read_text (f->path);
  g_assert_true (g_str_has_prefix (text, "chat.example.org:5222 "));

  /* Addresses and names read back from the file the same. */
  pin (known, "192.0.2.7", 80, key_b);
  again = loaded (f->path);
  assert_status (again, "192.0.2.7", 80, key_b, GCHAT_KNOWN_SERVER_TRUSTED);
  assert_status (again, "chat.EXAMPLE.org", 5222, key_a, GCHAT_KNOWN_SERVER_TRUSTED);
  /* International names are pinned in their ASCII form. */
  pin (known, "bücher.example", 5222, key_a);
  g_clear_pointer (&text, g_free);
  text = read_text (f->path);
  g_assert_nonnull (strstr (text, "\nxn--bcher-kva.example:5222 "));
  assert_status (known, "xn--bcher-kva.example", 5222, key_a, GCHAT_KNOWN_SERVER_TRUSTED);
}

static void
test_ipv6 (Fixture       *f,
           gconstpointer  data)
{
  g_autoptr(GchatKnownServers) known = loaded (f->path);
  g_autoptr(GchatKnownServers) again = NULL;
  g_autofree char *text = NULL;
  g_autofree char *hex = hex_of (key_a);
  g_autofree char *expected = g_strdup_printf ("[2001:db8::1]:5222 %s\n", hex);

  pin (known, "2001:DB8:0:0::1", 5222, key_a);
  text = read_text (f->path);
  g_assert_cmpstr (text, ==, expected);
  assert_status (known, "[2001:db8::1]", 5222, key_a, GCHAT_KNOWN_SERVER_TRUSTED);
  assert_status (known, "2001:0db8:0000:0000:0000:0000:0000:0001", 5222, key_a,
                 GCHAT_KNOWN_SERVER_TRUSTED);
  assert_status (known, "2001:db8::2", 5222, key_a, GCHAT_KNOWN_SERVER_UNKNOWN);
  pin (known, "[::1]", 1, key_b);
  again = loaded (f->path);
  assert_status (again, "::1", 1, key_b, GCHAT_KNOWN_SERVER_TRUSTED);
  assert_status (again, "2001:db8::1", 5222, key_b, GCHAT_KNOWN_SERVER_CHANGED);
}

/* Hand-written comments and blank lines survive a rewrite, in their place. */
static void
test_comments (Fixture       *f,
               gconstpointer  data)
{
  g_autofree char *hex_a = hex_of (key_a);
  g_autofree char *hex_b = hex_of (key_b);
  g_autofree char *before =
    g_strdup_printf ("# My servers\n\n  # work\nWORK.example:5222   %s\t\n# home\nhome.example:1 %s",
                     hex_a, hex_a);
  g_autofree char *after =
    g_strdup_printf ("# My servers\n\n  # work\nwork.example:5222 %s\n# home\n"
                     "new.example:2 %s\n",
                     hex_b, hex_b);
  g_autoptr(GchatKnownServers) known = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;

  write_text (f->path, before, -1);
  known = loaded (f->path);
  assert_status (known, "work.example", 5222, key_a, GCHAT_KNOWN_SERVER_TRUSTED);
  pin (known, "work.example", 5222, key_b);
  g_assert_true (gchat_known_servers_forget (known, "home.example", 1, &error));
  g_assert_no_error (error);
  pin (known, "new.example", 2, key_b);
  text = read_text (f->path);
  g_assert_cmpstr (text, ==, after);
}

static void
test_forget (Fixture       *f,
             gconstpointer  data)
{
  g_autoptr(GchatKnownServers) known = loaded (f->path);
  g_autoptr(GchatKnownServers) again = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;

  /* Forgetting what was never pinned writes nothing. */
  g_assert_true (gchat_known_servers_forget (known, "a.example", 1, &error));
  g_assert_no_error (error);
  g_assert_false (g_file_test (f->path, G_FILE_TEST_EXISTS));

  pin (known, "a.example", 1, key_a);
  pin (known, "b.example", 1, key_a);
  g_assert_true (gchat_known_servers_forget (known, "A.example", 1, &error));
  g_assert_no_error (error);
  assert_status (known, "a.example", 1, key_a, GCHAT_KNOWN_SERVER_UNKNOWN);
  again = loaded (f->path);
  assert_status (again, "a.example", 1, key_a, GCHAT_KNOWN_SERVER_UNKNOWN);
  assert_status (again, "b.example", 1, key_a, GCHAT_KNOWN_SERVER_TRUSTED);
  text = read_text (f->path);
  g_assert_true (g_str_has_prefix (text, "b.example:1 "));
}

/* Hosts and ports that cannot be pinned: an error, and nothing written. */
static void
test_invalid (Fixture       *f,
              gconstpointer  data)
{
  const char *hosts[] = { "", "a b", "bad..name", ".lead", "ho/st", "[::1", "[]", "[127.0.0.1]",
                          "fe80::1%eth0", "\xff\xfe", "1:2:3", NULL };
  g_autoptr(GchatKnownServers) known = loaded (f->path);
  g_autofree char *long_name = g_strnfill (254, 'a');
  guint ports[] = { 0, 65536, 70000, G_MAXUINT };

  for (guint i = 0; hosts[i] != NULL; i++)
    {
      g_autoptr(GError) error = NULL;

      g_test_message ("host %u", i);
      g_assert_false (gchat_known_servers_pin (known, hosts[i], 1, key_a, &error));
      g_assert_error (error, GCHAT_KNOWN_SERVERS_ERROR, GCHAT_KNOWN_SERVERS_ERROR_INVALID);
      g_assert_true (g_utf8_validate (error->message, -1, NULL));
      assert_status (known, hosts[i], 1, key_a, GCHAT_KNOWN_SERVER_UNKNOWN);
    }
  for (guint i = 0; i < G_N_ELEMENTS (ports); i++)
    {
      g_autoptr(GError) error = NULL;

      g_assert_false (gchat_known_servers_pin (known, "ok.example", ports[i], key_a, &error));
      g_assert_error (error, GCHAT_KNOWN_SERVERS_ERROR, GCHAT_KNOWN_SERVERS_ERROR_INVALID);
    }
  {
    g_autoptr(GError) error = NULL;

    g_assert_false (gchat_known_servers_pin (known, long_name, 1, key_a, &error));
    g_assert_error (error, GCHAT_KNOWN_SERVERS_ERROR, GCHAT_KNOWN_SERVERS_ERROR_INVALID);
  }
  g_assert_false (g_file_test (f->path, G_FILE_TEST_EXISTS));
}

/* A file whose name leaves no room for the temporary file beside it (even root cannot write
 * that): WRITE, and the list and the file are unchanged. */
static void
test_write_error (Fixture       *f,
                  gconstpointer  data)
{
  g_autofree char *folder = g_path_get_dirname (f->path);
  g_autofree char *name = g_strnfill (250, 'k');
  g_autofree char *path = g_build_filename (folder, name, NULL);
  g_autofree char *hex = hex_of (key_a);
  g_autofree char *line = g_strdup_printf ("a.example:1 %s\n", hex);
  g_autoptr(GchatKnownServers) known = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;
  int fd;

  g_assert_cmpint (g_mkdir_with_parents (folder, 0700), ==, 0);
  fd = g_open (path, O_WRONLY | O_CREAT | O_EXCL, 0600);
  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (write (fd, line, strlen (line)), ==, (gssize) strlen (line));
  g_assert_cmpint (close (fd), ==, 0);

  known = loaded (path);
  g_assert_false (gchat_known_servers_pin (known, "a.example", 1, key_b, &error));
  g_assert_error (error, GCHAT_KNOWN_SERVERS_ERROR, GCHAT_KNOWN_SERVERS_ERROR_WRITE);
  g_assert_nonnull (strstr (error->message, name));
  assert_status (known, "a.example", 1, key_a, GCHAT_KNOWN_SERVER_TRUSTED);
  assert_status (known, "a.example", 1, key_b, GCHAT_KNOWN_SERVER_CHANGED);
  text = read_text (path);
  g_assert_cmpstr (text, ==, line);
  g_clear_pointer (&text, g_free);
  text = gchat_test_list_folder (folder);
  g_assert_cmpstr (text, ==, name);
}

static void
test_format_fingerprint (void)
{
  g_autofree char *hex = hex_of (key_a);
  g_autofree char *upper = g_ascii_strup (hex, -1);
  g_autofree char *formatted = gchat_known_servers_format_fingerprint (hex);
  g_autofree char *formatted_upper = gchat_known_servers_format_fingerprint (upper);
  g_autofree char *expected = gchat_rsa_key_get_fingerprint (key_a);
  g_autofree char *short_hex = g_strndup (hex, 63);
  g_autofree char *bad_hex = g_strdup (hex);

  g_assert_cmpstr (formatted, ==, expected);
  g_assert_cmpstr (formatted_upper, ==, expected);
  g_assert_null (gchat_known_servers_format_fingerprint (short_hex));
  g_assert_null (gchat_known_servers_format_fingerprint (""));
  bad_hex[10] = 'x';
  g_assert_null (gchat_known_servers_format_fingerprint (bad_hex));
}

/* The default file is gchat/known-servers in the user's data folder (a temporary one here). */
static void
test_default_path (void)
{
  g_autofree char *expected = g_build_filename (g_get_user_data_dir (), "gchat", "known-servers",
                                                NULL);
  g_autofree char *path = gchat_known_servers_get_default_path ();
  g_autoptr(GchatKnownServers) known = gchat_known_servers_new (NULL);
  g_autoptr(GchatKnownServers) again = NULL;
  g_autofree char *folder = g_path_get_dirname (expected);

  g_assert_cmpstr (path, ==, expected);
  g_assert_true (g_str_has_prefix (path, g_getenv ("XDG_DATA_HOME")));
  g_assert_cmpstr (gchat_known_servers_get_path (known), ==, expected);
  pin (known, "chat.example.org", 5222, key_a);
  again = loaded (NULL);
  assert_status (again, "chat.example.org", 5222, key_a, GCHAT_KNOWN_SERVER_TRUSTED);
  g_assert_cmpuint (gchat_test_file_mode (folder), ==, 0700);
}

static void
add (const char *path,
     void      (*func) (Fixture *, gconstpointer))
{
  g_test_add (path, Fixture, NULL, fixture_set_up, func, fixture_tear_down);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *data_home = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);
  /* The default file must not land in the real data folder of whoever runs the tests. GLib
   * reads the variable on the first g_get_user_data_dir(), which comes later. */
  data_home = gchat_test_make_dir ("known-servers-data");
  g_setenv ("XDG_DATA_HOME", data_home, TRUE);
  g_assert_true (gchat_crypto_init (&error));
  key_a = gchat_rsa_key_generate (GCHAT_RSA_KEY_MIN_BITS, &error);
  g_assert_no_error (error);
  key_b = gchat_rsa_key_generate (GCHAT_RSA_KEY_MIN_BITS, &error);
  g_assert_no_error (error);

  add ("/known-servers/first-use", test_first_use);
  add ("/known-servers/changed", test_changed);
  add ("/known-servers/reload", test_reload);
  add ("/known-servers/modes", test_modes);
  add ("/known-servers/hostile", test_hostile);
  add ("/known-servers/not-a-file", test_not_a_file);
  add ("/known-servers/host-case", test_host_case);
  add ("/known-servers/ipv6", test_ipv6);
  add ("/known-servers/comments", test_comments);
  add ("/known-servers/forget", test_forget);
  add ("/known-servers/invalid", test_invalid);
  add ("/known-servers/write-error", test_write_error);
  g_test_add_func ("/known-servers/format-fingerprint", test_format_fingerprint);
  g_test_add_func ("/known-servers/default-path", test_default_path);
  status = g_test_run ();

  g_clear_object (&key_a);
  g_clear_object (&key_b);
  gchat_crypto_shutdown ();
  g_assert_true (gchat_test_remove_tree (data_home));
  return status;
}
