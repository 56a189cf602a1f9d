/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Tests for GchatRsaKey: generation, key files and their modes, OpenSSL interoperability,
 * RSA-OAEP wrapping, and refusal of hostile key files and DER. */

#include "gchat-test-util.h"
#include "gchat-rsa-key.h"

#include <string.h>
#include <sys/stat.h>

#include <gcrypt.h>
#include <gio/gio.h>
#include <glib/gstdio.h>

#define OPENSSL    "/usr/bin/openssl"
#define TEST_LABEL "gchat test label"

/* Key generation is slow, and far slower under valgrind, so the whole program makes only these
 * two keys, each on first use. */
static GchatRsaKey *full_key;  /* GCHAT_RSA_KEY_BITS */
static GchatRsaKey *small_key; /* GCHAT_RSA_KEY_MIN_BITS, where the size is not the point */

static GchatRsaKey *
generate_once (GchatRsaKey **key, guint bits)
{
  if (*key == NULL)
    {
      g_autoptr(GError) error = NULL;

      *key = gchat_rsa_key_generate (bits, &error);
      g_assert_no_error (error);
      g_assert_nonnull (*key);
    }
  return *key;
}

static GchatRsaKey *
get_full_key (void)
{
  return generate_once (&full_key, GCHAT_RSA_KEY_BITS);
}

static GchatRsaKey *
get_small_key (void)
{
  return generate_once (&small_key, GCHAT_RSA_KEY_MIN_BITS);
}

/* A key with only the public half of @key. */
static GchatRsaKey *
public_only (GchatRsaKey *key)
{
  g_autoptr(GBytes) der = gchat_rsa_key_get_public_der (key);
  g_autoptr(GError) error = NULL;
  GchatRsaKey *copy = gchat_rsa_key_new_from_public_der (der, &error);

  g_assert_no_error (error);
  g_assert_false (gchat_rsa_key_has_private (copy));
  return copy;
}

static void
assert_same_key (GchatRsaKey *a, GchatRsaKey *b)
{
  g_autoptr(GBytes) der_a = gchat_rsa_key_get_public_der (a);
  g_autoptr(GBytes) der_b = gchat_rsa_key_get_public_der (b);
  g_autofree char *fingerprint_a = gchat_rsa_key_get_fingerprint (a);
  g_autofree char *fingerprint_b = gchat_rsa_key_get_fingerprint (b);

  g_assert_true (g_bytes_equal (der_a, der_b));
  g_assert_cmpstr (fingerprint_a, ==, fingerprint_b);
  g_assert_cmpuint (gchat_rsa_key_get_bits (a), ==, gchat_rsa_key_get_bits (b));
}

/* Wraps with @wrapper and checks that @unwrapper gets the same bytes back. */
static void
assert_wrap_round_trip (GchatRsaKey *wrapper, GchatRsaKey *unwrapper)
{
  guint8 secret[GCHAT_KEY_SIZE];
  guint8 out[GCHAT_KEY_SIZE] = { 0 };
  g_autoptr(GBytes) wrapped = NULL;
  g_autoptr(GError) error = NULL;

  gcry_create_nonce (secret, sizeof secret);
  wrapped = gchat_rsa_key_wrap (wrapper, secret, sizeof secret, TEST_LABEL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_bytes_get_size (wrapped), ==, gchat_rsa_key_get_wrapped_size (wrapper));
  g_assert_true (gchat_rsa_key_unwrap (unwrapper, g_bytes_get_data (wrapped, NULL),
                                       g_bytes_get_size (wrapped), TEST_LABEL, out, sizeof out,
                                       &error));
  g_assert_no_error (error);
  g_assert_cmpmem (out, sizeof out, secret, sizeof secret);
}

/* A temporary folder for key files, removed with everything in it afterwards. */
typedef struct
{
  char *dir;
} Fixture;

static void
fixture_setup (Fixture *fixture, gconstpointer user_data)
{
  fixture->dir = gchat_test_make_dir ("test-rsa-key");
}

static void
fixture_teardown (Fixture *fixture, gconstpointer user_data)
{
  g_autoptr(GDir) dir = g_dir_open (fixture->dir, 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename (fixture->dir, name, NULL);

      if (g_unlink (path) != 0)
        g_assert_cmpint (g_rmdir (path), ==, 0);
    }
  g_assert_cmpint (g_rmdir (fixture->dir), ==, 0);
  g_free (fixture->dir);
}

static char *
fixture_path (Fixture *fixture, const char *name)
{
  return g_build_filename (fixture->dir, name, NULL);
}

static void
write_file (const char *path, const void *data, gsize len, int mode)
{
  g_autoptr(GError) error = NULL;

  /* GLib 2.74 does not truncate an existing file with G_FILE_SET_CONTENTS_NONE. */
  g_file_set_contents_full (path, data, len, G_FILE_SET_CONTENTS_CONSISTENT, mode, &error);
  g_assert_no_error (error);
  g_assert_cmpint (g_chmod (path, mode), ==, 0);
}

static char *
pem_armour (const char *label, const guint8 *der, gsize len)
{
  g_autofree char *base64 = g_base64_encode (der, len);
  gsize base64_len = strlen (base64);
  GString *pem = g_string_new (NULL);

  g_string_append_printf (pem, "-----BEGIN %s-----\n", label);
  for (gsize i = 0; i < base64_len; i += 64)
    g_string_append_printf (pem, "%.64s\n", base64 + i);
  g_string_append_printf (pem, "-----END %s-----\n", label);
  return g_string_free (pem, FALSE);
}

static void
write_pem (const char *path, const char *label, const guint8 *der, gsize len, int mode)
{
  g_autofree char *pem = pem_armour (label, der, len);

  write_file (path, pem, strlen (pem), mode);
}

/* The DER inside a PEM file we wrote ourselves, so trusted. */
static GBytes *
read_pem_der (const char *path)
{
  g_autofree char *text = NULL;
  g_auto(GStrv) lines = NULL;
  g_autoptr(GString) base64 = g_string_new (NULL);
  g_autoptr(GError) error = NULL;
  gsize len;
  guint8 *der;

  g_file_get_contents (path, &text, NULL, &error);
  g_assert_no_error (error);
  lines = g_strsplit (text, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    if (!g_str_has_prefix (lines[i], "-----"))
      g_string_append (base64, lines[i]);
  der = g_base64_decode (base64->str, &len);
  return g_bytes_new_take (der, len);
}

static void
assert_format_error (const GError *error, const char *path)
{
  g_assert_error (error, GCHAT_RSA_KEY_ERROR, GCHAT_RSA_KEY_ERROR_FORMAT);
  if (path != NULL)
    g_assert_nonnull (strstr (error->message, path));
}

/* A test-side DER encoder: it must produce invalid DER on purpose, so it shares nothing with the
 * code under test. */

static void
der_append (GByteArray *out, guint8 tag, const guint8 *content, gsize len)
{
  guint8 header[4] = { tag };
  guint header_len = 2;

  g_assert_cmpuint (len, <, 0x10000);
  if (len < 0x80)
    header[1] = len;
  else if (len < 0x100)
    header[1] = 0x81, header[2] = len, header_len = 3;
  else
    header[1] = 0x82, header[2] = len >> 8, header[3] = len & 0xff, header_len = 4;
  g_byte_array_append (out, header, header_len);
  g_byte_array_append (out, content, len);
}

static void
der_append_array (GByteArray *out, guint8 tag, GByteArray *content)
{
  der_append (out, tag, content->data, content->len);
}

/* A trusted reader for DER we made: returns the content of the next element. */
static const guint8 *
der_next (const guint8 **data, gsize *len, guint8 expected_tag, gsize *content_len)
{
  const guint8 *content;
  gsize header_len = 2;
  gsize size;

  g_assert_cmpuint (*len, >=, 2);
  g_assert_cmpuint ((*data)[0], ==, expected_tag);
  size = (*data)[1];
  if (size & 0x80)
    {
      header_len += size & 0x7f;
      size = 0;
      for (gsize i = 2; i < header_len; i++)
        size = (size << 8) | (*data)[i];
    }
  g_assert_cmpuint (header_len + size, <=, *len);
  content = *data + header_len;
  *content_len = size;
  *data += header_len + size;
  *len -= header_len + size;
  return content;
}

/* The contents of the two INTEGERs of an SPKI's RSAPublicKey. */
static void
spki_split (GBytes *der, GBytes **n, GBytes **e)
{
  const guint8 *data = g_bytes_get_data (der, NULL);
  gsize len = g_bytes_get_size (der);
  gsize spki_len, bits_len, rsa_len, algorithm_len, n_len, e_len;
  const guint8 *spki = der_next (&data, &len, 0x30, &spki_len);
  const guint8 *bits, *rsa, *content;

  der_next (&spki, &spki_len, 0x30, &algorithm_len);
  bits = der_next (&spki, &spki_len, 0x03, &bits_len);
  bits++, bits_len--;
  rsa = der_next (&bits, &bits_len, 0x30, &rsa_len);
  content = der_next (&rsa, &rsa_len, 0x02, &n_len);
  *n = g_bytes_new (content, n_len);
  content = der_next (&rsa, &rsa_len, 0x02, &e_len);
  *e = g_bytes_new (content, e_len);
}

/* Builds an SPKI around INTEGER contents given as they are, so they can be invalid. */
static GBytes *
spki_build (GBytes *n, GBytes *e, guint8 oid_last, gboolean with_null, guint8 unused_bits)
{
  guint8 oid[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, oid_last };
  g_autoptr(GByteArray) rsa = g_byte_array_new ();
  g_autoptr(GByteArray) rsa_seq = g_byte_array_new ();
  g_autoptr(GByteArray) bits = g_byte_array_new ();
  g_autoptr(GByteArray) algorithm = g_byte_array_new ();
  g_autoptr(GByteArray) spki = g_byte_array_new ();
  GByteArray *out = g_byte_array_new ();

  der_append (rsa, 0x02, g_bytes_get_data (n, NULL), g_bytes_get_size (n));
  der_append (rsa, 0x02, g_bytes_get_data (e, NULL), g_bytes_get_size (e));
  der_append_array (rsa_seq, 0x30, rsa);
  g_byte_array_append (bits, &unused_bits, 1);
  g_byte_array_append (bits, rsa_seq->data, rsa_seq->len);
  der_append (algorithm, 0x06, oid, sizeof oid);
  if (with_null)
    der_append (algorithm, 0x05, NULL, 0);
  der_append_array (spki, 0x30, algorithm);
  der_append_array (spki, 0x03, bits);
  der_append_array (out, 0x30, spki);
  return g_byte_array_free_to_bytes (out);
}

static void
assert_der_refused (GBytes *der, int code)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatRsaKey) key = gchat_rsa_key_new_from_public_der (der, &error);

  g_assert_error (error, GCHAT_RSA_KEY_ERROR, code);
  g_assert_null (key);
}

static GBytes *
bytes_from (const guint8 *data, gsize len)
{
  return g_bytes_new (data, len);
}

/* Generation and accessors. */

static void
test_generate (void)
{
  GchatRsaKey *key = get_full_key ();
  g_autoptr(GBytes) der = gchat_rsa_key_get_public_der (key);
  g_autoptr(GBytes) der_again = gchat_rsa_key_get_public_der (key);
  g_autofree char *fingerprint = gchat_rsa_key_get_fingerprint (key);
  g_auto(GStrv) groups = g_strsplit (fingerprint, " ", -1);
  guint8 digest[GCHAT_SHA256_SIZE];
  guint8 expected[GCHAT_SHA256_SIZE];

  g_assert_true (gchat_rsa_key_has_private (key));
  g_assert_cmpuint (gchat_rsa_key_get_bits (key), ==, GCHAT_RSA_KEY_BITS);
  g_assert_cmpuint (gchat_rsa_key_get_wrapped_size (key), ==, GCHAT_RSA_KEY_BITS / 8);
  g_assert_true (g_bytes_equal (der, der_again));

  /* The fingerprint is the SHA-256 of the DER, as `openssl pkey -pubin -outform der` gives it. */
  gcry_md_hash_buffer (GCRY_MD_SHA256, expected, g_bytes_get_data (der, NULL),
                       g_bytes_get_size (der));
  gchat_rsa_key_get_fingerprint_digest (key, digest);
  g_assert_cmpmem (digest, sizeof digest, expected, sizeof expected);
  g_assert_cmpuint (g_strv_length (groups), ==, 16);
  for (guint i = 0; i < 16; i++)
    g_assert_cmpuint (strlen (groups[i]), ==, 4);
}

static void
test_generate_too_weak (void)
{
  const guint sizes[] = { 0, 512, 1024, GCHAT_RSA_KEY_MIN_BITS - 1 };

  for (gsize i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GchatRsaKey) key = gchat_rsa_key_generate (sizes[i], &error);

      g_assert_error (error, GCHAT_RSA_KEY_ERROR, GCHAT_RSA_KEY_ERROR_TOO_WEAK);
      g_assert_null (key);
    }
}

static void
test_generate_min_bits (void)
{
  GchatRsaKey *key = get_small_key ();

  g_assert_cmpuint (gchat_rsa_key_get_bits (key), ==, GCHAT_RSA_KEY_MIN_BITS);
  g_assert_cmpuint (gchat_rsa_key_get_wrapped_size (key), ==, GCHAT_RSA_KEY_MIN_BITS / 8);
  assert_wrap_round_trip (key, key);
}

/* Files. */

static guint
count_files (const char *path)
{
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  guint count = 0;

  g_assert_nonnull (dir);
  while (g_dir_read_name (dir) != NULL)
    count++;
  return count;
}

static void
save_key (GchatRsaKey *key, const char *private_path, const char *public_path)
{
  g_autoptr(GError) error = NULL;

  if (private_path != NULL)
    g_assert_true (gchat_rsa_key_save_private (key, private_path, &error));
  g_assert_no_error (error);
  if (public_path != NULL)
    g_assert_true (gchat_rsa_key_save_public (key, public_path, &error));
  g_assert_no_error (error);
}

static void
test_files_modes (Fixture *fixture, gconstpointer user_data)
{
  GchatRsaKey *key = get_full_key ();
  g_autofree char *private_path = fixture_path (fixture, "server.key");
  g_autofree char *public_path = fixture_path (fixture, "server.pub");
  mode_t old_umask;

  /* The modes must not depend on the umask, whether it is permissive or strict. */
  old_umask = umask (0);
  save_key (key, private_path, public_path);
  g_assert_cmpuint (gchat_test_file_mode (private_path), ==, 0600);
  g_assert_cmpuint (gchat_test_file_mode (public_path), ==, 0644);
  umask (0077);
  save_key (key, private_path, public_path);
  g_assert_cmpuint (gchat_test_file_mode (private_path), ==, 0600);
  g_assert_cmpuint (gchat_test_file_mode (public_path), ==, 0644);
  umask (old_umask);

  /* Saving over the old files leaves no temporary file behind. */
  g_assert_cmpuint (count_files (fixture->dir), ==, 2);
}

static void
test_files_round_trip (Fixture *fixture, gconstpointer user_data)
{
  GchatRsaKey *key = get_full_key ();
  g_autofree char *private_path = fixture_path (fixture, "server.key");
  g_autofree char *public_path = fixture_path (fixture, "server.pub");
  g_autofree char *text = NULL;
  g_autoptr(GchatRsaKey) private_key = NULL;
  g_autoptr(GchatRsaKey) public_key = NULL;
  g_autoptr(GError) error = NULL;

  save_key (key, private_path, public_path);
  g_file_get_contents (private_path, &text, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (text, "-----BEGIN RSA PRIVATE KEY-----\n"));
  g_assert_true (g_str_has_suffix (text, "-----END RSA PRIVATE KEY-----\n"));

  private_key = gchat_rsa_key_load_private (private_path, &error);
  g_assert_no_error (error);
  g_assert_true (gchat_rsa_key_has_private (private_key));
  assert_same_key (key, private_key);
  public_key = gchat_rsa_key_load_public (public_path, &error);
  g_assert_no_error (error);
  g_assert_false (gchat_rsa_key_has_private (public_key));
  assert_same_key (key, public_key);

  /* The loaded halves work together, and with the original. */
  assert_wrap_round_trip (public_key, private_key);
  assert_wrap_round_trip (private_key, key);
}

static void
test_files_save_public_only (Fixture *fixture, gconstpointer user_data)
{
  g_autoptr(GchatRsaKey) key = public_only (get_small_key ());
  g_autofree char *path = fixture_path (fixture, "server.key");
  g_autoptr(GError) error = NULL;

  g_assert_false (gchat_rsa_key_save_private (key, path, &error));
  g_assert_error (error, GCHAT_RSA_KEY_ERROR, GCHAT_RSA_KEY_ERROR_NO_PRIVATE);
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
}

static void
test_files_unwritable (Fixture *fixture, gconstpointer user_data)
{
  g_autofree char *path = g_build_filename (fixture->dir, "missing", "server.pub", NULL);
  g_autoptr(GError) error = NULL;

  g_assert_false (gchat_rsa_key_save_public (get_small_key (), path, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, path));
}

/* OpenSSL interoperability. */

static gboolean run_openssl (char **output, GError **error, ...) G_GNUC_NULL_TERMINATED;

static gboolean
run_openssl (char **output, GError **error, ...)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autofree char *errors = NULL;
  g_autofree char *discarded = NULL;
  const char *arg;
  va_list args;
  int status;

  g_ptr_array_add (argv, (char *) OPENSSL);
  va_start (args, error);
  while ((arg = va_arg (args, const char *)) != NULL)
    g_ptr_array_add (argv, (char *) arg);
  va_end (args);
  g_ptr_array_add (argv, NULL);

  /* Output is always captured, so that nothing but TAP reaches our standard output. */
  if (!g_spawn_sync (NULL, (char **) argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                     output != NULL ? output : &discarded, &errors, &status, error))
    return FALSE;
  if (!g_spawn_check_wait_status (status, error))
    {
      g_prefix_error (error, "%s: ", errors);
      return FALSE;
    }
  return TRUE;
}

static gboolean
skip_without_openssl (void)
{
  if (g_file_test (OPENSSL, G_FILE_TEST_IS_EXECUTABLE))
    return FALSE;
  g_test_skip ("needs " OPENSSL);
  return TRUE;
}

/* OpenSSL reads our files, and we read what OpenSSL writes. */
static void
test_openssl_files (Fixture *fixture, gconstpointer user_data)
{
  GchatRsaKey *key = get_full_key ();
  g_autofree char *private_path = fixture_path (fixture, "server.key");
  g_autofree char *public_path = fixture_path (fixture, "server.pub");
  g_autofree char *der_path = fixture_path (fixture, "openssl.der");
  g_autofree char *openssl_private = fixture_path (fixture, "openssl.key");
  g_autofree char *openssl_public = fixture_path (fixture, "openssl.pub");
  g_autofree char *output = NULL;
  g_autoptr(GBytes) der = gchat_rsa_key_get_public_der (key);
  g_autoptr(GBytes) openssl_der = NULL;
  g_autoptr(GchatRsaKey) loaded_private = NULL;
  g_autoptr(GchatRsaKey) loaded_public = NULL;
  g_autoptr(GError) error = NULL;

  if (skip_without_openssl ())
    return;
  save_key (key, private_path, public_path);

  run_openssl (NULL, &error, "pkey", "-pubin", "-in", public_path, "-outform", "der", "-out",
               der_path, NULL);
  g_assert_no_error (error);
  openssl_der = gchat_test_read_bytes (der_path);
  g_assert_true (g_bytes_equal (der, openssl_der));
  run_openssl (&output, &error, "rsa", "-check", "-noout", "-in", private_path, NULL);
  g_assert_no_error (error);
  g_assert_nonnull (strstr (output, "RSA key ok"));

  run_openssl (NULL, &error, "rsa", "-in", private_path, "-traditional", "-out",
               openssl_private, NULL);
  g_assert_no_error (error);
  run_openssl (NULL, &error, "rsa", "-in", private_path, "-pubout", "-out", openssl_public,
               NULL);
  g_assert_no_error (error);
  g_assert_cmpint (g_chmod (openssl_private, 0600), ==, 0);
  loaded_private = gchat_rsa_key_load_private (openssl_private, &error);
  g_assert_no_error (error);
  assert_same_key (key, loaded_private);
  loaded_public = gchat_rsa_key_load_public (openssl_public, &error);
  g_assert_no_error (error);
  assert_same_key (key, loaded_public);
}

static char *
hex_of (const char *text)
{
  GString *hex = g_string_new (NULL);

  for (const char *p = text; *p != '\0'; p++)
    g_string_append_printf (hex, "%02x", (guint8) *p);
  return g_string_free (hex, FALSE);
}

/* OpenSSL's RSA-OAEP with SHA-256 for the hash and for MGF1 is the same scheme as ours. */
static void
test_openssl_oaep (Fixture *fixture, gconstpointer user_data)
{
  GchatRsaKey *key = get_full_key ();
  g_autofree char *private_path = fixture_path (fixture, "server.key");
  g_autofree char *public_path = fixture_path (fixture, "server.pub");
  g_autofree char *plain_path = fixture_path (fixture, "plain");
  g_autofree char *wrapped_path = fixture_path (fixture, "wrapped");
  g_autofree char *hex_label = hex_of (TEST_LABEL);
  g_autofree char *label_option = g_strconcat ("rsa_oaep_label:", hex_label, NULL);
  g_autoptr(GBytes) wrapped = NULL;
  g_autoptr(GBytes) plain = NULL;
  g_autoptr(GError) error = NULL;
  guint8 secret[GCHAT_KEY_SIZE];
  guint8 out[GCHAT_KEY_SIZE];

  if (skip_without_openssl ())
    return;
  save_key (key, private_path, public_path);
  gcry_create_nonce (secret, sizeof secret);

  /* OpenSSL wraps, we unwrap. */
  write_file (plain_path, secret, sizeof secret, 0600);
  run_openssl (NULL, &error, "pkeyutl", "-encrypt", "-pubin", "-inkey", public_path, "-in",
               plain_path, "-out", wrapped_path, "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt",
               "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256", "-pkeyopt", label_option,
               NULL);
  g_assert_no_error (error);
  wrapped = gchat_test_read_bytes (wrapped_path);
  g_assert_true (gchat_rsa_key_unwrap (key, g_bytes_get_data (wrapped, NULL),
                                       g_bytes_get_size (wrapped), TEST_LABEL, out, sizeof out,
                                       &error));
  g_assert_no_error (error);
  g_assert_cmpmem (out, sizeof out, secret, sizeof secret);

  /* We wrap, OpenSSL unwraps. */
  g_clear_pointer (&wrapped, g_bytes_unref);
  wrapped = gchat_rsa_key_wrap (key, secret, sizeof secret, TEST_LABEL, &error);
  g_assert_no_error (error);
  write_file (wrapped_path, g_bytes_get_data (wrapped, NULL), g_bytes_get_size (wrapped), 0600);
  run_openssl (NULL, &error, "pkeyutl", "-decrypt", "-inkey", private_path, "-in", wrapped_path,
               "-out", plain_path, "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt",
               "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256", "-pkeyopt", label_option,
               NULL);
  g_assert_no_error (error);
  plain = gchat_test_read_bytes (plain_path);
  g_assert_cmpmem (g_bytes_get_data (plain, NULL), g_bytes_get_size (plain), secret,
                   sizeof secret);
}

/* Wrapping. */

static void
test_wrap_round_trip (void)
{
  GchatRsaKey *key = get_full_key ();
  g_autoptr(GchatRsaKey) public_key = public_only (key);
  guint8 secret[GCHAT_KEY_SIZE] = { 1, 2, 3 };
  guint8 out[GCHAT_KEY_SIZE];
  g_autoptr(GBytes) first = NULL;
  g_autoptr(GBytes) second = NULL;
  g_autoptr(GError) error = NULL;

  assert_wrap_round_trip (key, key);
  assert_wrap_round_trip (public_key, key);

  /* OAEP is randomised: the same secret never wraps the same way twice. */
  first = gchat_rsa_key_wrap (key, secret, sizeof secret, NULL, &error);
  g_assert_no_error (error);
  second = gchat_rsa_key_wrap (key, secret, sizeof secret, NULL, &error);
  g_assert_no_error (error);
  g_assert_false (g_bytes_equal (first, second));

  /* No label is the empty label. */
  g_assert_true (gchat_rsa_key_unwrap (key, g_bytes_get_data (first, NULL),
                                       g_bytes_get_size (first), "", out, sizeof out, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (out, sizeof out, secret, sizeof secret);
}

static GBytes *
wrap_test_secret (GchatRsaKey *key)
{
  static const guint8 secret[GCHAT_KEY_SIZE] = { 0x42 };
  g_autoptr(GError) error = NULL;
  GBytes *wrapped = gchat_rsa_key_wrap (key, secret, sizeof secret, TEST_LABEL, &error);

  g_assert_no_error (error);
  return wrapped;
}

/* Returns the message, to check that all failures read the same. */
static char *
assert_unwrap_fails (GchatRsaKey *key, const guint8 *wrapped, gsize len, const char *label,
                     gsize out_len)
{
  guint8 out[GCHAT_KEY_SIZE + 1];
  g_autoptr(GError) error = NULL;

  g_assert_cmpuint (out_len, <=, sizeof out);
  g_assert_false (gchat_rsa_key_unwrap (key, wrapped, len, label, out, out_len, &error));
  g_assert_error (error, GCHAT_RSA_KEY_ERROR, GCHAT_RSA_KEY_ERROR_UNWRAP);
  return g_strdup (error->message);
}

static void
test_wrap_wrong_label (void)
{
  GchatRsaKey *key = get_full_key ();
  g_autoptr(GBytes) wrapped = wrap_test_secret (key);
  const guint8 *data = g_bytes_get_data (wrapped, NULL);
  gsize len = g_bytes_get_size (wrapped);
  g_autofree char *other = assert_unwrap_fails (key, data, len, "other label", GCHAT_KEY_SIZE);
  g_autofree char *none = assert_unwrap_fails (key, data, len, NULL, GCHAT_KEY_SIZE);

  g_assert_cmpstr (other, ==, none);
}

/* Every failure must read like a wrong label (@expected): none may tell which check failed. */
static void
assert_unwrap_refused (GchatRsaKey *key, const guint8 *wrapped, gsize len, gsize out_len,
                       const char *expected)
{
  g_autofree char *message = assert_unwrap_fails (key, wrapped, len, TEST_LABEL, out_len);

  g_assert_cmpstr (message, ==, expected);
}

static void
test_wrap_tampered (void)
{
  GchatRsaKey *key = get_full_key ();
  g_autoptr(GBytes) wrapped = wrap_test_secret (key);
  const guint8 *data = g_bytes_get_data (wrapped, NULL);
  gsize len = g_bytes_get_size (wrapped);
  const gsize positions[] = { 0, len / 2, len - 1 };
  g_autofree char *expected = assert_unwrap_fails (key, data, len, "x", GCHAT_KEY_SIZE);

  for (gsize i = 0; i < G_N_ELEMENTS (positions); i++)
    {
      g_autofree guint8 *tampered = g_memdup2 (data, len);

      tampered[positions[i]] ^= 0x01;
      assert_unwrap_refused (key, tampered, len, GCHAT_KEY_SIZE, expected);
    }
}

static void
test_wrap_wrong_length (void)
{
  GchatRsaKey *key = get_full_key ();
  g_autoptr(GBytes) wrapped = wrap_test_secret (key);
  gsize len = g_bytes_get_size (wrapped);
  const guint8 *data = g_bytes_get_data (wrapped, NULL);
  g_autofree guint8 *longer = g_malloc0 (len + 1);
  g_autofree guint8 *all_ones = g_malloc (len);
  g_autofree char *expected = assert_unwrap_fails (key, data, len, "x", GCHAT_KEY_SIZE);

  /* Too short, too long (even with only a leading zero more), empty, and a plaintext of
   * another size than expected. */
  memcpy (longer + 1, data, len);
  assert_unwrap_refused (key, data, len - 1, GCHAT_KEY_SIZE, expected);
  assert_unwrap_refused (key, longer, len + 1, GCHAT_KEY_SIZE, expected);
  assert_unwrap_refused (key, NULL, 0, GCHAT_KEY_SIZE, expected);
  assert_unwrap_refused (key, data, len, GCHAT_KEY_SIZE - 1, expected);
  assert_unwrap_refused (key, data, len, GCHAT_KEY_SIZE + 1, expected);

  /* A ciphertext above the modulus. */
  memset (all_ones, 0xff, len);
  assert_unwrap_refused (key, all_ones, len, GCHAT_KEY_SIZE, expected);
}

static void
test_wrap_no_private (void)
{
  g_autoptr(GchatRsaKey) key = public_only (get_full_key ());
  g_autoptr(GBytes) wrapped = wrap_test_secret (key);
  guint8 out[GCHAT_KEY_SIZE];
  g_autoptr(GError) error = NULL;

  g_assert_false (gchat_rsa_key_unwrap (key, g_bytes_get_data (wrapped, NULL),
                                        g_bytes_get_size (wrapped), TEST_LABEL, out, sizeof out,
                                        &error));
  g_assert_error (error, GCHAT_RSA_KEY_ERROR, GCHAT_RSA_KEY_ERROR_NO_PRIVATE);
}

static void
test_wrap_sizes (void)
{
  GchatRsaKey *key = get_small_key ();
  gsize max = gchat_rsa_key_get_wrapped_size (key) - 2 * GCHAT_SHA256_SIZE - 2;
  g_autofree guint8 *data = g_malloc (max + 1);
  g_autofree guint8 *out = g_malloc (max);
  g_autoptr(GBytes) wrapped = NULL;
  g_autoptr(GBytes) refused = NULL;
  g_autoptr(GError) error = NULL;

  gcry_create_nonce (data, max + 1);
  wrapped = gchat_rsa_key_wrap (key, data, max, TEST_LABEL, &error);
  g_assert_no_error (error);
  g_assert_true (gchat_rsa_key_unwrap (key, g_bytes_get_data (wrapped, NULL),
                                       g_bytes_get_size (wrapped), TEST_LABEL, out, max, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (out, max, data, max);

  refused = gchat_rsa_key_wrap (key, data, max + 1, TEST_LABEL, &error);
  g_assert_error (error, GCHAT_RSA_KEY_ERROR, GCHAT_RSA_KEY_ERROR_FAILED);
  g_assert_null (refused);
  g_clear_error (&error);
  refused = gchat_rsa_key_wrap (key, data, 0, TEST_LABEL, &error);
  g_assert_error (error, GCHAT_RSA_KEY_ERROR, GCHAT_RSA_KEY_ERROR_FAILED);
  g_assert_null (refused);
}

#define N_THREADS        4
#define N_THREAD_ROUNDS  2

static gpointer
wrap_thread (gpointer user_data)
{
  GchatRsaKey *key = user_data;
  gboolean ok = TRUE;

  for (guint round = 0; round < N_THREAD_ROUNDS && ok; round++)
    {
      guint8 secret[GCHAT_KEY_SIZE];
      guint8 out[GCHAT_KEY_SIZE];
      g_autoptr(GBytes) wrapped = NULL;

      gcry_create_nonce (secret, sizeof secret);
      wrapped = gchat_rsa_key_wrap (key, secret, sizeof secret, TEST_LABEL, NULL);
      ok = wrapped != NULL
           && gchat_rsa_key_unwrap (key, g_bytes_get_data (wrapped, NULL),
                                    g_bytes_get_size (wrapped), TEST_LABEL, out, sizeof out, NULL)
           && memcmp (out, secret, sizeof secret) == 0;
    }
  return GINT_TO_POINTER (ok);
}

/* The server unwraps in worker threads, all with the one key. */
static void
test_wrap_threads (void)
{
  GchatRsaKey *key = get_small_key ();
  GThread *threads[N_THREADS];

  for (guint i = 0; i < N_THREADS; i++)
    threads[i] = g_thread_new ("wrap", wrap_thread, key);
  for (guint i = 0; i < N_THREADS; i++)
    g_assert_true (GPOINTER_TO_INT (g_thread_join (threads[i])));
}

/* Loading hostile or broken files. */

static void
test_load_permissions (Fixture *fixture, gconstpointer user_data)
{
  const int modes[] = { 0644, 0640, 0604, 0660 };
  g_autofree char *path = fixture_path (fixture, "server.key");
  g_autofree char *hint = g_strdup_printf ("chmod 600 %s", path);

  save_key (get_small_key (), path, NULL);
  for (gsize i = 0; i < G_N_ELEMENTS (modes); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GchatRsaKey) key = NULL;

      g_assert_cmpint (g_chmod (path, modes[i]), ==, 0);
      key = gchat_rsa_key_load_private (path, &error);
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED);
      g_assert_nonnull (strstr (error->message, hint));
      g_assert_null (key);
    }
}

static void
test_load_missing (Fixture *fixture, gconstpointer user_data)
{
  g_autofree char *path = fixture_path (fixture, "missing.pem");
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatRsaKey) public_key = gchat_rsa_key_load_public (path, &error);
  g_autoptr(GchatRsaKey) private_key = NULL;

  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, path));
  g_assert_null (public_key);
  g_clear_error (&error);
  private_key = gchat_rsa_key_load_private (path, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_assert_null (private_key);
}

static void
assert_file_refused (const char *path, gboolean is_private)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatRsaKey) key = is_private ? gchat_rsa_key_load_private (path, &error)
                                          : gchat_rsa_key_load_public (path, &error);

  if (g_test_verbose ())
    g_test_message ("%s", error != NULL ? error->message : "loaded");
  assert_format_error (error, path);
  g_assert_null (key);
}

static void
assert_text_refused (Fixture *fixture, const char *text, gsize len, gboolean is_private)
{
  g_autofree char *path = fixture_path (fixture, is_private ? "bad.key" : "bad.pub");

  write_file (path, text, len, is_private ? 0600 : 0644);
  assert_file_refused (path, is_private);
}

static void
assert_der_file_refused (Fixture *fixture, const guint8 *der, gsize len, gboolean is_private)
{
  g_autofree char *pem = pem_armour (is_private ? "RSA PRIVATE KEY" : "PUBLIC KEY", der, len);

  assert_text_refused (fixture, pem, strlen (pem), is_private);
}

static void
test_load_malformed_pem (Fixture *fixture, gconstpointer user_data)
{
  g_autoptr(GBytes) der = gchat_rsa_key_get_public_der (get_small_key ());
  g_autofree char *pem = pem_armour ("PUBLIC KEY", g_bytes_get_data (der, NULL),
                                     g_bytes_get_size (der));
  g_autofree char *base64 = g_base64_encode (g_bytes_get_data (der, NULL), g_bytes_get_size (der));
  g_autofree char *with_garbage = g_strconcat (pem, "garbage\n", NULL);
  g_autofree char *with_preamble = g_strconcat ("Key:\n", pem, NULL);
  g_autofree char *no_end = g_strndup (pem, strlen (pem) - strlen ("-----END PUBLIC KEY-----\n"));
  g_autofree char *nul = g_strdup (pem);
  g_autofree char *good_path = fixture_path (fixture, "good.pub");
  g_autoptr(GchatRsaKey) key = NULL;
  g_autoptr(GError) error = NULL;
  const char *texts[] = {
    "",
    " \n\t\r\n",
    base64,
    "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n",
    "-----BEGIN PUBLIC KEY-----\nMII=AAAA\n-----END PUBLIC KEY-----\n",
    "-----BEGIN PUBLIC KEY-----\nMI==\n-AAA\n-----END PUBLIC KEY-----\n",
    "-----BEGIN PUBLIC KEY-----\nM===\n-----END PUBLIC KEY-----\n",
    "-----BEGIN PUBLIC KEY-----\nMIIBI\n-----END PUBLIC KEY-----\n",
    "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n",
    "-----BEGIN PUBLIC KEY----------END PUBLIC KEY-----",
    "-----BEGIN PUBLIC KEY-----\nProc-Type: 4,ENCRYPTED\n\nMIIB\n-----END PUBLIC KEY-----\n",
    "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    "-----BEGIN \x01\xff-----\nMIIB\n-----END \x01\xff-----\n",
    "-----BEGIN PUBLIC KEY-----",
    with_garbage,
    with_preamble,
    no_end,
  };

  /* The unchanged text loads, so each refusal below is for what was changed. */
  write_file (good_path, pem, strlen (pem), 0644);
  key = gchat_rsa_key_load_public (good_path, &error);
  g_assert_no_error (error);
  for (gsize i = 0; i < G_N_ELEMENTS (texts); i++)
    assert_text_refused (fixture, texts[i], strlen (texts[i]), FALSE);

  /* A NUL byte in the middle of the base64 text. */
  nul[40] = '\0';
  assert_text_refused (fixture, nul, strlen (pem), FALSE);
}

static void
test_load_malformed_der (Fixture *fixture, gconstpointer user_data)
{
  g_autoptr(GBytes) der = gchat_rsa_key_get_public_der (get_small_key ());
  gsize len = g_bytes_get_size (der);
  g_autofree guint8 *trailing = g_malloc0 (len + 2);
  static const guint8 huge_length[] = { 0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x30, 0x00 };
  static const guint8 long_length[] = { 0x30, 0x85, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00 };
  static const guint8 indefinite[] = { 0x30, 0x80, 0x02, 0x01, 0x01, 0x00, 0x00 };
  static const guint8 not_minimal[] = { 0x30, 0x81, 0x03, 0x02, 0x01, 0x01 };
  static const guint8 wrong_tag[] = { 0x31, 0x03, 0x02, 0x01, 0x01 };

  memcpy (trailing, g_bytes_get_data (der, NULL), len);
  assert_der_file_refused (fixture, trailing, len + 2, FALSE);
  assert_der_file_refused (fixture, trailing, len - 1, FALSE);
  assert_der_file_refused (fixture, huge_length, sizeof huge_length, FALSE);
  assert_der_file_refused (fixture, long_length, sizeof long_length, FALSE);
  assert_der_file_refused (fixture, indefinite, sizeof indefinite, FALSE);
  assert_der_file_refused (fixture, not_minimal, sizeof not_minimal, FALSE);
  assert_der_file_refused (fixture, wrong_tag, sizeof wrong_tag, FALSE);
  assert_der_file_refused (fixture, huge_length, sizeof huge_length, TRUE);
  assert_der_file_refused (fixture, indefinite, sizeof indefinite, TRUE);
}

static void
test_load_wrong_kind (Fixture *fixture, gconstpointer user_data)
{
  g_autoptr(GBytes) der = gchat_rsa_key_get_public_der (get_small_key ());
  g_autofree char *public_pem = pem_armour ("PUBLIC KEY", g_bytes_get_data (der, NULL),
                                            g_bytes_get_size (der));
  g_autofree char *private_path = fixture_path (fixture, "server.key");
  g_autoptr(GBytes) private_der = NULL;
  g_autofree char *pkcs8 = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatRsaKey) key = NULL;

  /* A public key where a private one is expected, and the other way round. */
  assert_text_refused (fixture, public_pem, strlen (public_pem), TRUE);
  save_key (get_small_key (), private_path, NULL);
  assert_file_refused (private_path, FALSE);

  /* OpenSSL 3 writes PKCS#8 by default; the message says how to convert it. */
  private_der = read_pem_der (private_path);
  pkcs8 = pem_armour ("PRIVATE KEY", g_bytes_get_data (private_der, NULL),
                      g_bytes_get_size (private_der));
  write_file (private_path, pkcs8, strlen (pkcs8), 0600);
  key = gchat_rsa_key_load_private (private_path, &error);
  assert_format_error (error, private_path);
  g_assert_nonnull (strstr (error->message, "-traditional"));
}

static void
test_load_special_files (Fixture *fixture, gconstpointer user_data)
{
  g_autofree char *large_path = fixture_path (fixture, "large.pub");
  g_autofree char *dir_path = fixture_path (fixture, "folder.pub");
  g_autofree char *large = g_malloc (GCHAT_RSA_KEY_MAX_FILE + 1);
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatRsaKey) key = NULL;

  /* Refused unread, even when the rest would be a valid key. */
  memset (large, ' ', GCHAT_RSA_KEY_MAX_FILE + 1);
  write_file (large_path, large, GCHAT_RSA_KEY_MAX_FILE + 1, 0600);
  assert_file_refused (large_path, FALSE);
  assert_file_refused (large_path, TRUE);

  g_assert_cmpint (g_mkdir (dir_path, 0700), ==, 0);
  key = gchat_rsa_key_load_public (dir_path, &error);
  assert_format_error (error, dir_path);
}

/* Every prefix of a valid DER is refused cleanly. */
static void
test_der_truncated (void)
{
  g_autoptr(GBytes) der = gchat_rsa_key_get_public_der (get_small_key ());
  gsize len = g_bytes_get_size (der);

  for (gsize i = 0; i < len; i++)
    {
      g_autoptr(GBytes) prefix = g_bytes_new_from_bytes (der, 0, i);

      assert_der_refused (prefix, GCHAT_RSA_KEY_ERROR_FORMAT);
    }
}

/* Any single damaged byte is either refused or still a key: it never crashes. */
static void
test_der_flipped (void)
{
  g_autoptr(GBytes) der = gchat_rsa_key_get_public_der (get_small_key ());
  gsize len = g_bytes_get_size (der);

  for (gsize i = 0; i < len; i++)
    {
      g_autofree guint8 *copy = g_memdup2 (g_bytes_get_data (der, NULL), len);
      g_autoptr(GBytes) damaged = NULL;
      g_autoptr(GError) error = NULL;
      g_autoptr(GchatRsaKey) key = NULL;

      copy[i] ^= 0x80;
      damaged = g_bytes_new (copy, len);
      key = gchat_rsa_key_new_from_public_der (damaged, &error);
      g_assert_true ((key == NULL) == (error != NULL));
      if (error != NULL)
        g_assert_true (error->domain == GCHAT_RSA_KEY_ERROR);
    }
}

static void
test_der_crafted (void)
{
  g_autoptr(GBytes) der = gchat_rsa_key_get_public_der (get_small_key ());
  g_autoptr(GBytes) n = NULL, e = NULL, rebuilt = NULL;
  const guint8 *n_data;
  gsize n_len;
  static const guint8 zero[] = { 0x00 }, one[] = { 0x01 }, even[] = { 0x01, 0x00, 0x00 };
  static const guint8 padded_e[] = { 0x00, 0x01, 0x00, 0x01 }, negative[] = { 0x81 };
  g_autofree guint8 *huge = g_malloc (2060);
  g_autofree guint8 *even_n = NULL;
  g_autofree guint8 *weak_n = NULL;

  spki_split (der, &n, &e);
  n_data = g_bytes_get_data (n, &n_len);
  /* The test encoder makes the same DER, so the changes below are the only ones. */
  rebuilt = spki_build (n, e, 0x01, TRUE, 0);
  g_assert_true (g_bytes_equal (rebuilt, der));

#define REFUSED(n_, e_, oid_, null_, unused_, code_)                                              \
  G_STMT_START                                                                                  \
  {                                                                                             \
    g_autoptr(GBytes) crafted = spki_build (n_, e_, oid_, null_, unused_);                     \
    assert_der_refused (crafted, code_);                                                        \
  }                                                                                             \
  G_STMT_END

  REFUSED (n, e, 0x0a, TRUE, 0, GCHAT_RSA_KEY_ERROR_FORMAT);  /* RSASSA-PSS, not rsaEncryption */
  REFUSED (n, e, 0x01, FALSE, 0, GCHAT_RSA_KEY_ERROR_FORMAT); /* parameters missing */
  REFUSED (n, e, 0x01, TRUE, 1, GCHAT_RSA_KEY_ERROR_FORMAT);  /* unused bits */
  {
    g_autoptr(GBytes) negative_n = bytes_from (n_data + 1, n_len - 1);
    g_autoptr(GBytes) zero_e = bytes_from (zero, 1), one_e = bytes_from (one, 1);
    g_autoptr(GBytes) even_e = bytes_from (even, 3), padded = bytes_from (padded_e, 4);
    g_autoptr(GBytes) negative_e = bytes_from (negative, 1), empty = bytes_from (NULL, 0);
    g_autoptr(GBytes) huge_n = NULL, even_modulus = NULL, weak = NULL;

    REFUSED (negative_n, e, 0x01, TRUE, 0, GCHAT_RSA_KEY_ERROR_FORMAT);
    REFUSED (n, zero_e, 0x01, TRUE, 0, GCHAT_RSA_KEY_ERROR_FORMAT);
    REFUSED (n, one_e, 0x01, TRUE, 0, GCHAT_RSA_KEY_ERROR_FORMAT);
    REFUSED (n, even_e, 0x01, TRUE, 0, GCHAT_RSA_KEY_ERROR_FORMAT);
    REFUSED (n, padded, 0x01, TRUE, 0, GCHAT_RSA_KEY_ERROR_FORMAT); /* not minimal */
    REFUSED (n, negative_e, 0x01, TRUE, 0, GCHAT_RSA_KEY_ERROR_FORMAT);
    REFUSED (n, empty, 0x01, TRUE, 0, GCHAT_RSA_KEY_ERROR_FORMAT);

    memset (huge, 0x7f, 2060);
    huge_n = bytes_from (huge, 2060);
    REFUSED (huge_n, e, 0x01, TRUE, 0, GCHAT_RSA_KEY_ERROR_FORMAT);
    even_n = g_memdup2 (n_data, n_len);
    even_n[n_len - 1] &= 0xfe;
    even_modulus = bytes_from (even_n, n_len);
    REFUSED (even_modulus, e, 0x01, TRUE, 0, GCHAT_RSA_KEY_ERROR_FORMAT);
    /* 1024 bits: the low half of the real modulus, still odd. */
    weak_n = g_memdup2 (n_data + n_len - 128, 128);
    weak_n[0] = 0x7f;
    weak = bytes_from (weak_n, 128);
    REFUSED (weak, e, 0x01, TRUE, 0, GCHAT_RSA_KEY_ERROR_TOO_WEAK);
  }
#undef REFUSED
}

/* Private key files built from the parts of a real one. */

#define PKCS1_N_INTEGERS 9 /* version, n, e, d, p, q, dP, dQ, qInv */

static GPtrArray *
pkcs1_split (GBytes *der)
{
  const guint8 *data = g_bytes_get_data (der, NULL);
  gsize len = g_bytes_get_size (der);
  gsize sequence_len;
  const guint8 *sequence = der_next (&data, &len, 0x30, &sequence_len);
  GPtrArray *integers = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);

  while (sequence_len > 0)
    {
      gsize content_len;
      const guint8 *content = der_next (&sequence, &sequence_len, 0x02, &content_len);

      g_ptr_array_add (integers, g_bytes_new (content, content_len));
    }
  g_assert_cmpuint (integers->len, ==, PKCS1_N_INTEGERS);
  return integers;
}

static gpointer
copy_bytes (gconstpointer bytes, gpointer user_data)
{
  return g_bytes_ref ((GBytes *) bytes);
}

static GPtrArray *
pkcs1_copy (GPtrArray *integers)
{
  GPtrArray *copy = g_ptr_array_copy (integers, copy_bytes, NULL);

  g_ptr_array_set_free_func (copy, (GDestroyNotify) g_bytes_unref);
  return copy;
}

static GBytes *
pkcs1_build (GPtrArray *integers)
{
  g_autoptr(GByteArray) content = g_byte_array_new ();
  GByteArray *out = g_byte_array_new ();

  for (guint i = 0; i < integers->len; i++)
    {
      GBytes *integer = g_ptr_array_index (integers, i);

      der_append (content, 0x02, g_bytes_get_data (integer, NULL), g_bytes_get_size (integer));
    }
  der_append_array (out, 0x30, content);
  return g_byte_array_free_to_bytes (out);
}

static gcry_mpi_t
integer_to_mpi (GPtrArray *integers, guint index)
{
  GBytes *integer = g_ptr_array_index (integers, index);
  gcry_mpi_t value = NULL;

  g_assert_cmpint (gcry_mpi_scan (&value, GCRYMPI_FMT_STD, g_bytes_get_data (integer, NULL),
                                  g_bytes_get_size (integer), NULL),
                   ==, 0);
  return value;
}

static void
set_integer (GPtrArray *integers, guint index, gcry_mpi_t value)
{
  guint8 *buffer = NULL;
  size_t len = 0;

  g_assert_cmpint (gcry_mpi_aprint (GCRYMPI_FMT_STD, &buffer, &len, value), ==, 0);
  g_bytes_unref (g_ptr_array_index (integers, index));
  g_ptr_array_index (integers, index) = g_bytes_new (buffer, len);
  gcry_free (buffer);
}

static void
add_to_integer (GPtrArray *integers, guint index, long delta)
{
  gcry_mpi_t value = integer_to_mpi (integers, index);

  if (delta >= 0)
    gcry_mpi_add_ui (value, value, delta);
  else
    gcry_mpi_sub_ui (value, value, -delta);
  set_integer (integers, index, value);
  gcry_mpi_release (value);
}

static GchatRsaKey *
load_private_der (Fixture *fixture, GBytes *der, GError **error)
{
  g_autofree char *path = fixture_path (fixture, "crafted.key");

  write_pem (path, "RSA PRIVATE KEY", g_bytes_get_data (der, NULL), g_bytes_get_size (der),
             0600);
  return gchat_rsa_key_load_private (path, error);
}

static GPtrArray *
small_key_integers (Fixture *fixture)
{
  g_autofree char *path = fixture_path (fixture, "small.key");
  g_autoptr(GBytes) der = NULL;

  save_key (get_small_key (), path, NULL);
  der = read_pem_der (path);
  return pkcs1_split (der);
}

/* A file whose first prime is the smaller one, unlike ours and OpenSSL's, still loads: the
 * primes are swapped into libgcrypt's order. */
static void
test_private_swapped_primes (Fixture *fixture, gconstpointer user_data)
{
  g_autoptr(GPtrArray) integers = small_key_integers (fixture);
  g_autoptr(GBytes) der = NULL;
  g_autoptr(GchatRsaKey) key = NULL;
  g_autoptr(GError) error = NULL;
  gcry_mpi_t prime1 = integer_to_mpi (integers, 4);
  gcry_mpi_t prime2 = integer_to_mpi (integers, 5);
  gcry_mpi_t coefficient = gcry_mpi_new (0);

  g_assert_cmpint (gcry_mpi_cmp (prime1, prime2), >, 0);
  g_ptr_array_insert (integers, 4, g_ptr_array_steal_index (integers, 5));
  g_ptr_array_insert (integers, 6, g_ptr_array_steal_index (integers, 7));
  g_assert_true (gcry_mpi_invm (coefficient, prime1, prime2));
  set_integer (integers, 8, coefficient);
  der = pkcs1_build (integers);

  key = load_private_der (fixture, der, &error);
  g_assert_no_error (error);
  assert_same_key (key, get_small_key ());
  assert_wrap_round_trip (get_small_key (), key);
  gcry_mpi_release (prime1);
  gcry_mpi_release (prime2);
  gcry_mpi_release (coefficient);
}

static void
assert_private_refused (Fixture *fixture, GPtrArray *integers)
{
  g_autoptr(GBytes) der = pkcs1_build (integers);
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatRsaKey) key = load_private_der (fixture, der, &error);

  g_test_message ("%s", error != NULL ? error->message : "loaded");
  assert_format_error (error, NULL);
  g_assert_null (key);
}

static void
test_private_inconsistent (Fixture *fixture, gconstpointer user_data)
{
  /* Version, d, dP, dQ, qInv, and primes that would make p − 1 zero. */
  const struct
  {
    guint index;
    long delta;
  } changes[] = { { 0, 1 }, { 3, 2 }, { 6, 2 }, { 7, -2 }, { 8, 1 } };
  g_autoptr(GPtrArray) integers = small_key_integers (fixture);
  g_autoptr(GBytes) der = pkcs1_build (integers);
  g_autoptr(GchatRsaKey) key = NULL;
  g_autoptr(GError) error = NULL;
  gcry_mpi_t one = gcry_mpi_set_ui (NULL, 1);

  /* The untouched parts load, so each refusal below is for its one change. */
  key = load_private_der (fixture, der, &error);
  g_assert_no_error (error);
  for (gsize i = 0; i < G_N_ELEMENTS (changes); i++)
    {
      g_autoptr(GPtrArray) changed = pkcs1_copy (integers);

      add_to_integer (changed, changes[i].index, changes[i].delta);
      assert_private_refused (fixture, changed);
    }
  for (guint index = 4; index <= 5; index++)
    {
      g_autoptr(GPtrArray) changed = pkcs1_copy (integers);

      set_integer (changed, index, one);
      assert_private_refused (fixture, changed);
    }
  gcry_mpi_release (one);

  /* Too few numbers, and too many. */
  g_bytes_unref (g_ptr_array_steal_index (integers, 8));
  assert_private_refused (fixture, integers);
  g_ptr_array_add (integers, g_bytes_new ("\x01", 1));
  g_ptr_array_add (integers, g_bytes_new ("\x01", 1));
  assert_private_refused (fixture, integers);
}

static void
test_private_truncated (Fixture *fixture, gconstpointer user_data)
{
  g_autofree char *path = fixture_path (fixture, "small.key");
  g_autoptr(GBytes) der = NULL;
  gsize len;

  save_key (get_small_key (), path, NULL);
  der = read_pem_der (path);
  len = g_bytes_get_size (der);
  /* Every prefix through the first numbers, then a sample of the rest. */
  for (gsize i = 1; i < len; i += i < 64 ? 1 : 37)
    assert_der_file_refused (fixture, g_bytes_get_data (der, NULL), i, TRUE);
}

int
main (int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  int result;

  g_test_init (&argc, &argv, NULL);
  /* The tests call libgcrypt directly too, before any key exists. */
  gchat_crypto_init (&error);
  g_assert_no_error (error);

  g_test_add_func ("/rsa-key/generate", test_generate);
  g_test_add_func ("/rsa-key/generate/too-weak", test_generate_too_weak);
  g_test_add_func ("/rsa-key/generate/min-bits", test_generate_min_bits);
#define ADD(path, func) g_test_add (path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("/rsa-key/files/modes", test_files_modes);
  ADD ("/rsa-key/files/round-trip", test_files_round_trip);
  ADD ("/rsa-key/files/save-public-only", test_files_save_public_only);
  ADD ("/rsa-key/files/unwritable", test_files_unwritable);
  ADD ("/rsa-key/openssl/files", test_openssl_files);
  ADD ("/rsa-key/openssl/oaep", test_openssl_oaep);
  g_test_add_func ("/rsa-key/wrap/round-trip", test_wrap_round_trip);
  g_test_add_func ("/rsa-key/wrap/wrong-label", test_wrap_wrong_label);
  g_test_add_func ("/rsa-key/wrap/tampered", test_wrap_tampered);
  g_test_add_func ("/rsa-key/wrap/wrong-length", test_wrap_wrong_length);
  g_test_add_func ("/rsa-key/wrap/no-private", test_wrap_no_private);
  g_test_add_func ("/rsa-key/wrap/sizes", test_wrap_sizes);
  g_test_add_func ("/rsa-key/wrap/threads", test_wrap_threads);
  ADD ("/rsa-key/load/permissions", test_load_permissions);
  ADD ("/rsa-key/load/missing", test_load_missing);
  ADD ("/rsa-key/load/malformed-pem", test_load_malformed_pem);
  ADD ("/rsa-key/load/malformed-der", test_load_malformed_der);
  ADD ("/rsa-key/load/wrong-kind", test_load_wrong_kind);
  ADD ("/rsa-key/load/special-files", test_load_special_files);
  g_test_add_func ("/rsa-key/der/truncated", test_der_truncated);
  g_test_add_func ("/rsa-key/der/flipped", test_der_flipped);
  g_test_add_func ("/rsa-key/der/crafted", test_der_crafted);
  ADD ("/rsa-key/private/swapped-primes", test_private_swapped_primes);
  ADD ("/rsa-key/private/inconsistent", test_private_inconsistent);
  ADD ("/rsa-key/private/truncated", test_private_truncated);
#undef ADD

  result = g_test_run ();
  g_clear_object (&full_key);
  g_clear_object (&small_key);
  /* Key generation makes libgcrypt keep a 128 KiB entropy buffer until exit, which valgrind
   * sees as still reachable but LeakSanitizer reports as leaked. Closing the random device
   * frees it. */
  gchat_crypto_shutdown ();
  return result;
}
