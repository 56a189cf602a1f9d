/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Tests GchatConfig on real files: defaults, every key, the original's files, and every refusal. */

#include <string.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "gchat-test-util.h"

/* A white-box test: it walks the library's own key table, so every key added there is covered
 * (and documented in the example) without touching this file. */
#include "gchat-config.c"

typedef struct {
  char *dir;
  char *saved_cwd;
} Fixture;

static void
fixture_set_up (Fixture       *fixture,
                gconstpointer  user_data)
{
  fixture->dir = gchat_test_make_dir ("test-config");
  fixture->saved_cwd = g_get_current_dir ();
}

static void
fixture_tear_down (Fixture       *fixture,
                   gconstpointer  user_data)
{
  g_assert_no_errno (g_chdir (fixture->saved_cwd));
  g_assert_true (gchat_test_remove_tree (fixture->dir));
  g_free (fixture->dir);
  g_free (fixture->saved_cwd);
}

/* Writes @len bytes of @contents (or all of it when @len is -1) to @name in the fixture folder,
 * creating folders on the way, and returns the file's absolute path. */
static char *
write_file (Fixture    *fixture,
            const char *name,
            const char *contents,
            gssize      len)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *folder = NULL;
  char *path = g_build_filename (fixture->dir, name, NULL);

  folder = g_path_get_dirname (path);
  g_assert_no_errno (g_mkdir_with_parents (folder, 0700));
  g_file_set_contents (path, contents, len, &error);
  g_assert_no_error (error);

  return path;
}

static GchatConfig *
load_ok (Fixture    *fixture,
         const char *contents)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *path = write_file (fixture, "config.yaml", contents, -1);
  GchatConfig *config = gchat_config_new_from_file (path, &error);

  g_assert_no_error (error);
  g_assert_nonnull (config);

  return config;
}

/* Loads @contents from a file and checks the error, whose message starts with the file's path
 * when @message starts with “:”. */
static void
assert_load_error (Fixture          *fixture,
                   const char       *contents,
                   GchatConfigError  code,
                   const char       *message)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GchatConfig) config = NULL;
  g_autofree char *path = write_file (fixture, "config.yaml", contents, -1);
  g_autofree char *expected = NULL;

  config = gchat_config_new_from_file (path, &error);
  g_assert_null (config);
  g_assert_error (error, GCHAT_CONFIG_ERROR, (gint) code);

  expected = message[0] == ':' ? g_strconcat (path, message, NULL) : g_strdup (message);
  g_assert_cmpstr (error->message, ==, expected);
}

static void
assert_defaults (GchatConfig *config)
{
  GchatArgon2Params params = { 0 };

  g_assert_cmpstr (gchat_config_get_server_address (config), ==, "localhost");
  g_assert_cmpuint (gchat_config_get_server_port (config), ==, 10000);
  g_assert_null (gchat_config_get_server_certificate (config));
  g_assert_null (gchat_config_get_server_private_key (config));
  g_assert_null (gchat_config_get_data_base (config));
  gchat_config_get_argon2_params (config, &params);
  g_assert_cmpuint (params.memory_kib, ==, GCHAT_ARGON2_DEFAULT_MEMORY_KIB);
  g_assert_cmpuint (params.iterations, ==, 2);
  g_assert_cmpuint (params.parallelism, ==, 1);
  g_assert_cmpuint (gchat_config_get_max_connections (config), ==, 19000);
  g_assert_true (gchat_config_get_bool (config, "allow_sign_up"));

  for (gsize i = 0; i < N_KEYS; i++)
    g_assert_false (gchat_config_has_key (config, keys[i].name));
  g_assert_nonnull (gchat_config_get_warnings (config));
  g_assert_null (gchat_config_get_warnings (config)[0]);
}

static void
test_defaults (void)
{
  g_autoptr (GchatConfig) config = gchat_config_new ();

  assert_defaults (config);
}

static void
test_empty_files (Fixture       *fixture,
                  gconstpointer  user_data)
{
  const char *empty_documents[] = {
    "",
    "\n\n",
    "# Only a comment.\n",
    "---\n",
    "--- ~\n",
    "---\n...\n",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (empty_documents); i++)
    {
      g_autoptr (GchatConfig) config = load_ok (fixture, empty_documents[i]);

      assert_defaults (config);
    }
}

static void
test_every_key (Fixture       *fixture,
                gconstpointer  user_data)
{
  g_autoptr (GchatConfig) config = NULL;
  g_autofree char *certificate = g_build_filename (fixture->dir, "keys", "public.pem", NULL);
  GchatArgon2Params params = { 0 };

  config = load_ok (fixture,
                    "# Every key.\n"
                    "server_address: chat.example.org\n"
                    "server_port: \"4242\"\n"
                    "server_certificate: keys/public.pem\n"
                    "server_privateKey: /etc/gchatd/private.pem\n"
                    "data_base: ../elsewhere/../users.json\n"
                    "argon2_memory_kib: 65536\n"
                    "argon2_iterations: +3\n"
                    "argon2_parallelism: 4\n"
                    "max_connections: 1000000\n"
                    "login_timeout: 5\n"
                    "idle_timeout: 600\n"
                    "allow_sign_up: No\n");

  g_assert_cmpstr (gchat_config_get_server_address (config), ==, "chat.example.org");
  g_assert_cmpuint (gchat_config_get_server_port (config), ==, 4242);
  g_assert_cmpstr (gchat_config_get_server_certificate (config), ==, certificate);
  g_assert_cmpstr (gchat_config_get_server_private_key (config), ==, "/etc/gchatd/private.pem");
  g_assert_true (g_path_is_absolute (gchat_config_get_data_base (config)));
  g_assert_true (g_str_has_suffix (gchat_config_get_data_base (config), "/users.json"));
  g_assert_null (strstr (gchat_config_get_data_base (config), ".."));
  gchat_config_get_argon2_params (config, &params);
  g_assert_cmpuint (params.memory_kib, ==, 65536);
  g_assert_cmpuint (params.iterations, ==, 3);
  g_assert_cmpuint (params.parallelism, ==, 4);
  g_assert_cmpuint (gchat_config_get_max_connections (config), ==, 1000000);
  g_assert_false (gchat_config_get_bool (config, "allow_sign_up"));
  g_assert_cmpint (gchat_config_get_int (config, "login_timeout"), ==, 5);
  g_assert_cmpint (gchat_config_get_int (config, "idle_timeout"), ==, 600);
  g_assert_cmpint (gchat_config_get_int (config, "server_port"), ==, 4242);
  g_assert_cmpstr (gchat_config_get_string (config, "server_address"), ==, "chat.example.org");

  for (gsize i = 0; i < N_KEYS; i++)
    g_assert_true (gchat_config_has_key (config, keys[i].name));
  g_assert_null (gchat_config_get_warnings (config)[0]);
}

static void
test_booleans (Fixture       *fixture,
               gconstpointer  user_data)
{
  const struct {
    const char *text;
    gboolean    value;
  } cases[] = {
    { "true", TRUE }, { "TRUE", TRUE },   { "yes", TRUE },  { "On", TRUE },
    { "false", FALSE }, { "No", FALSE }, { "off", FALSE }, { "'yes'", TRUE },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *contents = g_strdup_printf ("allow_sign_up: %s\n", cases[i].text);
      g_autoptr (GchatConfig) config = load_ok (fixture, contents);

      g_assert_cmpint (gchat_config_get_bool (config, "allow_sign_up"), ==, cases[i].value);
      g_assert_true (gchat_config_has_key (config, "allow_sign_up"));
    }
}

/* A YAML null keeps the default, as if the key were not in the file. */
static void
test_null_values (Fixture       *fixture,
                  gconstpointer  user_data)
{
  g_autoptr (GchatConfig) config = load_ok (fixture,
                                            "server_address: ~\n"
                                            "server_port:\n"
                                            "server_certificate: null\n"
                                            "server_privateKey: ''\n"
                                            "data_base: NULL\n"
                                            "allow_sign_up:\n");

  assert_defaults (config);
}

static void
check_original_server (const char *config_dir,
                       GchatConfig *config)
{
  g_autofree char *certificate = g_build_filename (config_dir, "KeyA", "A_certificate.crt", NULL);
  g_autofree char *private_key = g_build_filename (config_dir, "KeyA", "A_privateKey.key", NULL);
  g_autofree char *data_base = g_build_filename (config_dir, "pass.json", NULL);

  g_assert_cmpstr (gchat_config_get_server_address (config), ==, "localhost");
  g_assert_cmpuint (gchat_config_get_server_port (config), ==, 10000);
  g_assert_cmpstr (gchat_config_get_server_certificate (config), ==, certificate);
  g_assert_cmpstr (gchat_config_get_server_private_key (config), ==, private_key);
  g_assert_cmpstr (gchat_config_get_data_base (config), ==, data_base);
  g_assert_true (gchat_config_has_key (config, "data_base"));
  g_assert_false (gchat_config_has_key (config, "max_connections"));
  g_assert_null (gchat_config_get_warnings (config)[0]);
}

/* The original project's own files, verbatim; their paths were relative to the current
 * directory there, and are relative to the file's folder here. */
static void
test_original_files (Fixture       *fixture,
                     gconstpointer  user_data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GchatConfig) client = NULL;
  g_autoptr (GchatConfig) server = NULL;
  g_autoptr (GchatConfig) relative = NULL;
  g_autofree char *client_path = write_file (fixture, "Client/config.yaml",
                                             "server_address: localhost\n"
                                             "server_port: 10000\n"
                                             "server_certificate: ./KeyA_/A_certificate.crt\n",
                                             -1);
  g_autofree char *server_path = write_file (fixture, "Server/config.yaml",
                                             "server_address: localhost\n"
                                             "server_port: 10000\n"
                                             "server_certificate: ./KeyA/A_certificate.crt\n"
                                             "server_privateKey: ./KeyA/A_privateKey.key\n"
                                             "data_base: pass.json\n",
                                             -1);
  g_autofree char *client_certificate = g_build_filename (fixture->dir, "Client", "KeyA_",
                                                          "A_certificate.crt", NULL);
  g_autofree char *server_dir = g_build_filename (fixture->dir, "Server", NULL);
  g_autofree char *cwd = NULL;
  g_autofree char *cwd_server_dir = NULL;

  g_assert_no_errno (g_chdir ("/"));

  client = gchat_config_new_from_file (client_path, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (gchat_config_get_server_address (client), ==, "localhost");
  g_assert_cmpuint (gchat_config_get_server_port (client), ==, 10000);
  g_assert_cmpstr (gchat_config_get_server_certificate (client), ==, client_certificate);
  g_assert_null (gchat_config_get_warnings (client)[0]);

  server = gchat_config_new_from_file (server_path, &error);
  g_assert_no_error (error);
  check_original_server (server_dir, server);

  /* A relative path to the file itself is taken from the current directory at load time. */
  g_assert_no_errno (g_chdir (fixture->dir));
  cwd = g_get_current_dir ();
  cwd_server_dir = g_build_filename (cwd, "Server", NULL);
  relative = gchat_config_new_from_file ("Server/config.yaml", &error);
  g_assert_no_error (error);
  g_assert_no_errno (g_chdir ("/"));
  check_original_server (cwd_server_dir, relative);
}

static void
test_home_expansion (Fixture       *fixture,
                     gconstpointer  user_data)
{
  g_autoptr (GchatConfig) config = load_ok (fixture,
                                            "server_certificate: ~/keys/public.pem\n"
                                            "server_privateKey: ~\n"
                                            "data_base: '~'\n");
  g_autofree char *home = g_canonicalize_filename (g_get_home_dir (), NULL);
  g_autofree char *certificate = g_build_filename (home, "keys", "public.pem", NULL);

  g_assert_cmpstr (gchat_config_get_server_certificate (config), ==, certificate);
  g_assert_null (gchat_config_get_server_private_key (config)); /* a bare ~ is YAML's null */
  g_assert_cmpstr (gchat_config_get_data_base (config), ==, home);
}

static void
test_from_data_base_dir (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GchatConfig) config = NULL;
  g_autoptr (GchatConfig) here = NULL;
  g_autofree char *cwd = g_get_current_dir ();
  g_autofree char *in_cwd = g_build_filename (cwd, "users.json", NULL);
  const char data[] = "data_base: users.json\nserver_port: 1";

  /* Not NUL-terminated on purpose: only @len bytes may be read. */
  config = gchat_config_new_from_data (data, strlen (data), "inline", "/srv/gchat", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (gchat_config_get_data_base (config), ==, "/srv/gchat/users.json");
  g_assert_cmpuint (gchat_config_get_server_port (config), ==, 1);

  here = gchat_config_new_from_data (data, strlen (data), NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (gchat_config_get_data_base (here), ==, in_cwd);

  g_clear_object (&here);
  here = gchat_config_new_from_data (NULL, 0, "nothing", NULL, &error);
  g_assert_no_error (error);
  assert_defaults (here);
}

static void
test_unknown_keys (Fixture       *fixture,
                   gconstpointer  user_data)
{
  g_autoptr (GchatConfig) config = NULL;
  g_autoptr (GString) many = g_string_new (NULL);
  g_autofree char *path = NULL;
  g_autofree char *expected = NULL;
  const char *const *warnings = NULL;

  config = load_ok (fixture, "server_port: 4000\n\nfoo: bar\n\"line\\nbreak\": 1\n");
  path = g_build_filename (fixture->dir, "config.yaml", NULL);
  warnings = gchat_config_get_warnings (config);
  expected = g_strdup_printf ("%s:3: unknown key “foo”, ignored", path);
  g_assert_cmpstr (warnings[0], ==, expected);
  g_clear_pointer (&expected, g_free);
  expected = g_strdup_printf ("%s:4: unknown key “line\\u000abreak”, ignored", path);
  g_assert_cmpstr (warnings[1], ==, expected);
  g_assert_null (warnings[2]);
  g_assert_cmpuint (gchat_config_get_server_port (config), ==, 4000);
  g_assert_false (gchat_config_has_key (config, "server_address"));

  /* Thousands of them give a bounded list that says more were left out. */
  for (guint i = 0; i < 5000; i++)
    g_string_append_printf (many, "unknown_%u: %u\n", i, i);
  g_clear_object (&config);
  config = load_ok (fixture, many->str);
  warnings = gchat_config_get_warnings (config);
  g_assert_cmpuint (g_strv_length ((char **) warnings), ==, MAX_WARNINGS + 1);
  g_assert_true (g_str_has_suffix (warnings[MAX_WARNINGS], "ignored without listing them"));
}

static void
test_type_errors (Fixture       *fixture,
                  gconstpointer  user_data)
{
  assert_load_error (fixture, "server_address: localhost\nserver_port: ten\n",
                     GCHAT_CONFIG_ERROR_TYPE,
                     ":2:14: “server_port” must be a whole number from 1 to 65535, not “ten”");
  assert_load_error (fixture, "server_port: 10000.5\n", GCHAT_CONFIG_ERROR_TYPE,
                     ":1:14: “server_port” must be a whole number from 1 to 65535, not “10000.5”");
  assert_load_error (fixture, "server_port: 1e4\n", GCHAT_CONFIG_ERROR_TYPE,
                     ":1:14: “server_port” must be a whole number from 1 to 65535, not “1e4”");
  assert_load_error (fixture, "server_port: 0x10\n", GCHAT_CONFIG_ERROR_TYPE,
                     ":1:14: “server_port” must be a whole number from 1 to 65535, not “0x10”");
  assert_load_error (fixture, "server_port: ' 10'\n", GCHAT_CONFIG_ERROR_TYPE,
                     ":1:14: “server_port” must be a whole number from 1 to 65535, not “ 10”");
  assert_load_error (fixture, "server_port: [1, 2]\n", GCHAT_CONFIG_ERROR_TYPE,
                     ":1:14: “server_port” must be a whole number from 1 to 65535, not a list");
  assert_load_error (fixture, "max_connections:\n  - 1\n", GCHAT_CONFIG_ERROR_TYPE,
                     ":2:3: “max_connections” must be a whole number from 1 to 1000000, "
                     "not a list");
  assert_load_error (fixture, "server_certificate:\n  path: a.pem\n", GCHAT_CONFIG_ERROR_TYPE,
                     ":2:3: “server_certificate” must be a file path, not a mapping");
  assert_load_error (fixture, "server_address: {a: b}\n", GCHAT_CONFIG_ERROR_TYPE,
                     ":1:17: “server_address” must be text, not a mapping");
  assert_load_error (fixture, "allow_sign_up: maybe\n", GCHAT_CONFIG_ERROR_TYPE,
                     ":1:16: “allow_sign_up” must be true or false (or yes/no, on/off), not “maybe”");
  assert_load_error (fixture, "allow_sign_up: 1\n", GCHAT_CONFIG_ERROR_TYPE,
                     ":1:16: “allow_sign_up” must be true or false (or yes/no, on/off), not “1”");
  assert_load_error (fixture, "server_port: \"\\t\\x01\"\n", GCHAT_CONFIG_ERROR_TYPE,
                     ":1:14: “server_port” must be a whole number from 1 to 65535, "
                     "not “\\u0009\\u0001”");
}

static void
test_value_errors (Fixture       *fixture,
                   gconstpointer  user_data)
{
  g_autofree char *long_address = g_strnfill (5000, 'a');
  g_autofree char *long_document = g_strdup_printf ("server_address: %s\n", long_address);
  g_autofree char *memory_message
      = g_strdup_printf (":1:20: “argon2_memory_kib” must be a whole number from %d to %d, not 4",
                         GCHAT_ARGON2_MIN_MEMORY_KIB, GCHAT_ARGON2_MAX_MEMORY_KIB);

  assert_load_error (fixture, "server_port: 0\n", GCHAT_CONFIG_ERROR_VALUE,
                     ":1:14: “server_port” must be a whole number from 1 to 65535, not 0");
  assert_load_error (fixture, "server_port: 70000\n", GCHAT_CONFIG_ERROR_VALUE,
                     ":1:14: “server_port” must be a whole number from 1 to 65535, not 70000");
  assert_load_error (fixture, "server_port: -1\n", GCHAT_CONFIG_ERROR_VALUE,
                     ":1:14: “server_port” must be a whole number from 1 to 65535, not -1");
  assert_load_error (fixture, "server_port: 99999999999999999999999\n", GCHAT_CONFIG_ERROR_VALUE,
                     ":1:14: “server_port” must be a whole number from 1 to 65535, "
                     "not 99999999999999999999999");
  assert_load_error (fixture, "argon2_memory_kib: 4\n", GCHAT_CONFIG_ERROR_VALUE,
                     memory_message);
  assert_load_error (fixture, "argon2_parallelism: 17\n", GCHAT_CONFIG_ERROR_VALUE,
                     ":1:21: “argon2_parallelism” must be a whole number from 1 to 16, not 17");
  assert_load_error (fixture, "max_connections: 0\n", GCHAT_CONFIG_ERROR_VALUE,
                     ":1:18: “max_connections” must be a whole number from 1 to 1000000, not 0");
  assert_load_error (fixture, long_document, GCHAT_CONFIG_ERROR_VALUE,
                     ":1:17: “server_address” is longer than 4096 bytes");
  assert_load_error (fixture, "server_certificate: \"a\\0b\"\n", GCHAT_CONFIG_ERROR_VALUE,
                     ":1:21: “server_certificate” must not contain a NUL character");
}

static void
test_structure_errors (Fixture       *fixture,
                       gconstpointer  user_data)
{
  assert_load_error (fixture, "server_port: 1\nserver_address: a\nserver_port: 2\n",
                     GCHAT_CONFIG_ERROR_SYNTAX,
                     ":3:1: “server_port” is set twice; it was first set on line 1");
  assert_load_error (fixture, "foo: 1\nfoo: 2\n", GCHAT_CONFIG_ERROR_SYNTAX,
                     ":2:1: “foo” is set twice; it was first set on line 1");
  assert_load_error (fixture, "server_address: &name a\n", GCHAT_CONFIG_ERROR_SYNTAX,
                     ":1:17: YAML anchors (“&name”) are not supported in a configuration file");
  assert_load_error (fixture, "server_address: *name\n", GCHAT_CONFIG_ERROR_SYNTAX,
                     ":1:17: YAML aliases (“*name”) are not supported in a configuration file");
  assert_load_error (fixture, "? *name\n: 1\n", GCHAT_CONFIG_ERROR_SYNTAX,
                     ":1:3: YAML aliases (“*name”) are not supported in a configuration file");
  assert_load_error (fixture, "server_port: !!int 10\n", GCHAT_CONFIG_ERROR_SYNTAX,
                     ":1:14: YAML tags (“!name”) are not supported in a configuration file");
  assert_load_error (fixture, "&top\nserver_port: 10\n", GCHAT_CONFIG_ERROR_SYNTAX,
                     ":1:1: YAML anchors (“&name”) are not supported in a configuration file");
  assert_load_error (fixture, "- server_port\n- 10\n", GCHAT_CONFIG_ERROR_SYNTAX,
                     ":1:1: the configuration must be a mapping of keys to values, "
                     "such as “server_port: 10000”");
  assert_load_error (fixture, "just some words\n", GCHAT_CONFIG_ERROR_SYNTAX,
                     ":1:1: the configuration must be a mapping of keys to values, "
                     "such as “server_port: 10000”");
  assert_load_error (fixture, "? [a, b]\n: 1\n", GCHAT_CONFIG_ERROR_SYNTAX,
                     ":1:3: keys must be plain names, not lists or mappings");
  assert_load_error (fixture, "foo:\n  bar: 1\n", GCHAT_CONFIG_ERROR_SYNTAX,
                     ":2:3: “foo” must have a single value, not a list or a mapping");
  assert_load_error (fixture, "server_port: 1\n---\nserver_port: 2\n", GCHAT_CONFIG_ERROR_SYNTAX,
                     ":2:1: a configuration file must hold a single YAML document");
}

static void
test_syntax_errors (Fixture       *fixture,
                    gconstpointer  user_data)
{
  assert_load_error (fixture, "server_address: \"localhost\nserver_port: 1\n",
                     GCHAT_CONFIG_ERROR_SYNTAX,
                     ":3:1: found unexpected end of stream "
                     "(while scanning a quoted scalar at line 1, column 17)");
  assert_load_error (fixture, "server_address: a\n  server_port: 1\n", GCHAT_CONFIG_ERROR_SYNTAX,
                     ":2:14: mapping values are not allowed in this context");
  assert_load_error (fixture, "server_port: 1\n- server_address\n", GCHAT_CONFIG_ERROR_SYNTAX,
                     ":2:1: did not find expected key "
                     "(while parsing a block mapping at line 1, column 1)");
  assert_load_error (fixture, "server_address: a: b\n", GCHAT_CONFIG_ERROR_SYNTAX,
                     ":1:18: mapping values are not allowed in this context");
  assert_load_error (fixture, "\tserver_port: 1\n", GCHAT_CONFIG_ERROR_SYNTAX,
                     ":1:1: found character that cannot start any token "
                     "(while scanning for the next token at line 1, column 1)");
}

/* Bytes that are not text: libyaml's reader refuses them, and we say where. */
static void
test_binary_data (Fixture       *fixture,
                  gconstpointer  user_data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GchatConfig) config = NULL;
  g_autofree char *path = NULL;
  g_autofree char *expected = NULL;
  const char nul[] = "server_port: 1\nserver_address: a\0b\n";
  const char latin1[] = "server_address: caf\xe9 au lait\n";

  config = gchat_config_new_from_data (nul, sizeof nul - 1, "nul.yaml", "/", &error);
  g_assert_null (config);
  g_assert_error (error, GCHAT_CONFIG_ERROR, GCHAT_CONFIG_ERROR_SYNTAX);
  g_assert_cmpstr (error->message, ==, "nul.yaml:2:18: control characters are not allowed");
  g_clear_error (&error);

  path = write_file (fixture, "latin1.yaml", latin1, sizeof latin1 - 1);
  config = gchat_config_new_from_file (path, &error);
  g_assert_null (config);
  g_assert_error (error, GCHAT_CONFIG_ERROR, GCHAT_CONFIG_ERROR_SYNTAX);
  expected = g_strdup_printf ("%s:1:21: invalid trailing UTF-8 octet", path);
  g_assert_cmpstr (error->message, ==, expected);
}

static void
test_too_large (Fixture       *fixture,
                gconstpointer  user_data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GchatConfig) config = NULL;
  g_autofree char *big = g_strnfill (2 * 1024 * 1024, '#');
  g_autofree char *path = write_file (fixture, "big.yaml", big, -1);

  config = gchat_config_new_from_file (path, &error);
  g_assert_null (config);
  g_assert_error (error, GCHAT_CONFIG_ERROR, GCHAT_CONFIG_ERROR_TOO_LARGE);
  g_assert_nonnull (strstr (error->message, path));
  g_clear_error (&error);

  config = gchat_config_new_from_data (big, GCHAT_CONFIG_MAX_SIZE + 1, "big", NULL, &error);
  g_assert_null (config);
  g_assert_error (error, GCHAT_CONFIG_ERROR, GCHAT_CONFIG_ERROR_TOO_LARGE);
  g_clear_error (&error);

  /* Exactly the limit is still fine. */
  g_free (path);
  path = write_file (fixture, "limit.yaml", big, GCHAT_CONFIG_MAX_SIZE);
  config = gchat_config_new_from_file (path, &error);
  g_assert_no_error (error);
  assert_defaults (config);
}

static void
test_missing_file (Fixture       *fixture,
                   gconstpointer  user_data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GchatConfig) config = NULL;
  g_autofree char *path = g_build_filename (fixture->dir, "absent.yaml", NULL);

  config = gchat_config_new_from_file (path, &error);
  g_assert_null (config);
  if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
    g_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT);
  g_assert_nonnull (strstr (error->message, path));
  g_clear_error (&error);

  /* A folder is not a configuration file either. */
  config = gchat_config_new_from_file (fixture->dir, &error);
  g_assert_null (config);
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, fixture->dir));
}

static void
check_example (const char *name,
               guint       n_keys)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GchatConfig) config = NULL;
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "..", "data", name, NULL);
  guint n_set = 0;

  config = gchat_config_new_from_file (path, &error);
  g_assert_no_error (error);
  g_assert_null (gchat_config_get_warnings (config)[0]);
  g_assert_cmpstr (gchat_config_get_server_address (config), ==, "localhost");
  g_assert_cmpuint (gchat_config_get_server_port (config), ==, GCHAT_DEFAULT_PORT);

  for (gsize i = 0; i < N_KEYS; i++)
    n_set += gchat_config_has_key (config, keys[i].name);
  g_assert_cmpuint (n_set, ==, n_keys);
}

static void
test_examples (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GchatConfig) server = NULL;
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "..", "data", "gchatd.yaml.example",
                                                 NULL);
  g_autofree char *folder = g_canonicalize_filename (path, NULL);
  g_autofree char *certificate = NULL;
  g_autofree char *text = NULL;

  check_example ("gchatd.yaml.example", 5);
  check_example ("gchat.yaml.example", 2);

  /* The server's example documents every key of the table, with the ranges the code enforces. */
  g_file_get_contents (path, &text, NULL, &error);
  g_assert_no_error (error);
  for (gsize i = 0; i < N_KEYS; i++)
    {
      g_autofree char *range = g_strdup_printf ("from %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT,
                                                keys[i].min, keys[i].max);

      g_assert_nonnull (strstr (text, keys[i].name));
      if (keys[i].kind == KEY_INT)
        g_assert_nonnull (strstr (text, range));
    }

  /* The server's key files sit next to the configuration. */
  server = gchat_config_new_from_file (path, &error);
  g_assert_no_error (error);
  *strrchr (folder, '/') = '\0';
  certificate = g_build_filename (folder, "server-public.pem", NULL);
  g_assert_cmpstr (gchat_config_get_server_certificate (server), ==, certificate);
}

/* Calling a getter with a key the table lacks, or of another kind, is a programmer error. */
static void
test_getter_misuse (void)
{
  g_autoptr (GchatConfig) config = gchat_config_new ();

  g_test_expect_message (G_LOG_DOMAIN, G_LOG_LEVEL_CRITICAL, "*info != NULL*");
  g_assert_null (gchat_config_get_string (config, "no_such_key"));
  g_test_assert_expected_messages ();

  g_test_expect_message (G_LOG_DOMAIN, G_LOG_LEVEL_CRITICAL, "*KEY_INT*");
  g_assert_cmpint (gchat_config_get_int (config, "server_address"), ==, 0);
  g_test_assert_expected_messages ();

  g_test_expect_message (G_LOG_DOMAIN, G_LOG_LEVEL_CRITICAL, "*KEY_STRING*");
  g_assert_null (gchat_config_get_string (config, "server_port"));
  g_test_assert_expected_messages ();

  g_test_expect_message (G_LOG_DOMAIN, G_LOG_LEVEL_CRITICAL, "*KEY_BOOL*");
  g_assert_false (gchat_config_get_bool (config, "max_connections"));
  g_test_assert_expected_messages ();

  g_test_expect_message (G_LOG_DOMAIN, G_LOG_LEVEL_CRITICAL, "*info != NULL*");
  g_assert_false (gchat_config_has_key (config, "no_such_key"));
  g_test_assert_expected_messages ();
}

/* A quick stand-in for the fuzzer to come: damaged variants of a valid file must give a
 * configuration or an error, never a crash, a leak or a warning. */
static void
test_mutations (void)
{
  const char seed[] = "server_address: \"chat.example.org\"\n"
                      "server_port: 10000\n"
                      "server_certificate: ./keys/a.pem # comment\n"
                      "data_base: 'users.json'\n"
                      "allow_sign_up: yes\n"
                      "unknown: [x, {y: z}]\n";
  const char alphabet[] = ":-?[]{},#&*!|>'\"%@` \t\n\r\\~0a\xc3\xa9\x00\xff";
  guint n_rounds = g_test_slow () ? 200000 : 20000;

  for (guint round = 0; round < n_rounds; round++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (GchatConfig) config = NULL;
      g_autofree char *data = g_memdup2 (seed, sizeof seed - 1);
      gsize len = sizeof seed - 1;
      guint n_changes = (guint) g_test_rand_int_range (1, 6);

      for (guint i = 0; i < n_changes && len > 0; i++)
        {
          gsize at = (gsize) g_test_rand_int_range (0, (gint32) len);

          if (g_test_rand_bit ())
            data[at] = alphabet[g_test_rand_int_range (0, (gint32) sizeof alphabet - 1)];
          else
            len = at;
        }

      config = gchat_config_new_from_data (data, len, "fuzz", "/", &error);
      g_assert_true ((config == NULL) != (error == NULL));
      if (error != NULL)
        g_assert_true (error->domain == GCHAT_CONFIG_ERROR);
    }
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

#define ADD_FIXTURE_TEST(path, func) \
  g_test_add (path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)

  g_test_add_func ("/config/defaults", test_defaults);
  ADD_FIXTURE_TEST ("/config/empty-files", test_empty_files);
  ADD_FIXTURE_TEST ("/config/every-key", test_every_key);
  ADD_FIXTURE_TEST ("/config/booleans", test_booleans);
  ADD_FIXTURE_TEST ("/config/null-values", test_null_values);
  ADD_FIXTURE_TEST ("/config/original-files", test_original_files);
  ADD_FIXTURE_TEST ("/config/home-expansion", test_home_expansion);
  g_test_add_func ("/config/from-data-base-dir", test_from_data_base_dir);
  ADD_FIXTURE_TEST ("/config/unknown-keys", test_unknown_keys);
  ADD_FIXTURE_TEST ("/config/type-errors", test_type_errors);
  ADD_FIXTURE_TEST ("/config/value-errors", test_value_errors);
  ADD_FIXTURE_TEST ("/config/structure-errors", test_structure_errors);
  ADD_FIXTURE_TEST ("/config/syntax-errors", test_syntax_errors);
  ADD_FIXTURE_TEST ("/config/binary-data", test_binary_data);
  ADD_FIXTURE_TEST ("/config/too-large", test_too_large);
  ADD_FIXTURE_TEST ("/config/missing-file", test_missing_file);
  g_test_add_func ("/config/examples", test_examples);
  g_test_add_func ("/config/getter-misuse", test_getter_misuse);
  g_test_add_func ("/config/mutations", test_mutations);

  return g_test_run ();
}
