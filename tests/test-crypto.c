/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Known-answer and misuse tests for the libgcrypt-based primitives in gchat-crypto. */

#include "config.h"

#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <glib.h>

#include "gchat-crypto.h"

/* Decodes a test vector; vectors are constants here, so a bad one is a bug in the test. */
static guint8 *
unhex (const char *hex,
       gsize      *len_out)
{
  gsize   len = strlen (hex);
  guint8 *out;

  g_assert_cmpuint (len % 2, ==, 0);
  out = g_malloc0 (len / 2 + 1);
  for (gsize i = 0; i < len / 2; i++)
    {
      int hi = g_ascii_xdigit_value (hex[2 * i]);
      int lo = g_ascii_xdigit_value (hex[2 * i + 1]);

      g_assert_true (hi >= 0 && lo >= 0);
      out[i] = (guint8) (hi << 4 | lo);
    }

  if (len_out != NULL)
    *len_out = len / 2;
  return out;
}

/* Decodes a vector that must be exactly @expected_len bytes long. */
static guint8 *
unhex_n (const char *hex,
         gsize       expected_len)
{
  gsize   len;
  guint8 *out = unhex (hex, &len);

  g_assert_cmpuint (len, ==, expected_len);
  return out;
}

static char *
to_hex (const guint8 *data,
        gsize         len)
{
  GString *str = g_string_sized_new (len * 2 + 1);

  for (gsize i = 0; i < len; i++)
    g_string_append_printf (str, "%02x", data[i]);
  return g_string_free (str, FALSE);
}

/* Compares as hex text, so that a failure prints both values readably. */
static void
assert_hex (const guint8 *data,
            gsize         len,
            const char   *expected)
{
  g_autofree char *actual = to_hex (data, len);

  g_assert_cmpstr (actual, ==, expected);
}

static gboolean
is_all_zero (const guint8 *data,
             gsize         len)
{
  for (gsize i = 0; i < len; i++)
    if (data[i] != 0)
      return FALSE;
  return TRUE;
}

/* Init. */

static void
test_init (void)
{
  g_autoptr (GError) error = NULL;

  g_assert_true (gchat_crypto_init (&error));
  g_assert_no_error (error);
  g_assert_true (gchat_crypto_init (NULL));
}

static gpointer
init_thread (gpointer data)
{
  guint8 buf[32];

  if (!gchat_crypto_init (NULL))
    return GINT_TO_POINTER (FALSE);
  gchat_random_bytes (buf, sizeof buf);
  return GINT_TO_POINTER (TRUE);
}

/* The first initialisation can only be raced in a fresh process. */
static void
test_init_threads (void)
{
  if (g_test_subprocess ())
    {
      GThread *threads[8];

      for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
        threads[i] = g_thread_new ("init", init_thread, NULL);
      for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
        g_assert_true (GPOINTER_TO_INT (g_thread_join (threads[i])));
      return;
    }

  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  /* No "using insecure memory" chatter, even where the pool cannot be locked. */
  g_test_trap_assert_stderr ("");
}

/* With no RLIMIT_MEMLOCK an unprivileged process cannot lock the secure pool; libgcrypt must
 * still work, silently. (Run as root this only checks the locked case: root may always lock.) */
static void
test_init_unlocked (void)
{
  if (g_test_subprocess ())
    {
      struct rlimit none = { 0, 0 };
      guint8        buf[32];

      g_assert_cmpint (setrlimit (RLIMIT_MEMLOCK, &none), ==, 0);
      g_assert_true (gchat_crypto_init (NULL));
      gchat_random_bytes (buf, sizeof buf);
      g_assert_true (gchat_x25519_public (buf, buf, NULL));
      return;
    }

  if (geteuid () == 0)
    g_test_message ("Running as root: the secure memory pool will be locked anyway");

  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr ("");
}

/* Small helpers. */

static void
test_random (void)
{
  guint8 a[32] = { 0 };
  guint8 b[32] = { 0 };

  gchat_random_bytes (a, sizeof a);
  gchat_random_bytes (b, sizeof b);
  gchat_random_bytes (NULL, 0);

  g_assert_false (is_all_zero (a, sizeof a));
  g_assert_false (memcmp (a, b, sizeof a) == 0);
}

static void
test_memzero (void)
{
  guint8 buf[100];

  memset (buf, 0xaa, sizeof buf);
  gchat_memzero (buf + 10, 80);
  g_assert_cmpuint (buf[9], ==, 0xaa);
  g_assert_true (is_all_zero (buf + 10, 80));
  g_assert_cmpuint (buf[90], ==, 0xaa);
  gchat_memzero (NULL, 0);
}

/* A wiped buffer becomes a GBytes without a copy, of the length in use; the wipe itself is
 * gchat_memzero()'s, and ASan or valgrind see that every path frees the whole allocation. */
static void
test_wiped_buffer (void)
{
  static const guint8 secret[] = "correct horse battery staple";
  guint8 *data = gchat_wiped_buffer_new (64);
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(GBytes) copy = NULL;
  g_autoptr(GBytes) empty = NULL;
  gsize len = 0;

  memcpy (data, secret, sizeof secret);
  bytes = gchat_wiped_buffer_to_bytes (data, sizeof secret);
  g_assert_true (g_bytes_get_data (bytes, &len) == data);
  g_assert_cmpuint (len, ==, sizeof secret);

  copy = gchat_bytes_new_wiped (secret, sizeof secret);
  g_assert_true (g_bytes_get_data (copy, NULL) != (gconstpointer) secret);
  g_assert_true (g_bytes_equal (copy, bytes));

  empty = gchat_wiped_buffer_to_bytes (gchat_wiped_buffer_new (0), 0);
  g_assert_cmpuint (g_bytes_get_size (empty), ==, 0);
  g_clear_pointer (&empty, g_bytes_unref);
  empty = gchat_bytes_new_wiped (NULL, 0);
  g_assert_cmpuint (g_bytes_get_size (empty), ==, 0);

  /* Dropped without ever becoming bytes, as on a failed decryption. */
  gchat_wiped_buffer_free (gchat_wiped_buffer_new (16));
  gchat_wiped_buffer_free (NULL);
}

/* Claiming more bytes in use than the buffer has is a programming error. */
static void
test_wiped_buffer_overlong (void)
{
  if (g_test_subprocess ())
    {
      guint8 *data = gchat_wiped_buffer_new (8);

      g_assert_null (gchat_wiped_buffer_to_bytes (data, 9));
      gchat_wiped_buffer_free (data);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  g_test_trap_assert_stderr ("*len <= wiped_buffer_from_data (data)->size*");
}

static void
test_constant_time_equal (void)
{
  guint8 a[64];
  guint8 b[64];

  for (guint i = 0; i < sizeof a; i++)
    a[i] = b[i] = (guint8) i;

  g_assert_true (gchat_constant_time_equal (a, b, sizeof a));
  g_assert_true (gchat_constant_time_equal (NULL, NULL, 0));

  b[0] ^= 1;
  g_assert_false (gchat_constant_time_equal (a, b, sizeof a));
  g_assert_true (gchat_constant_time_equal (a + 1, b + 1, sizeof a - 1));
  b[0] ^= 1;

  b[63] ^= 0x80;
  g_assert_false (gchat_constant_time_equal (a, b, sizeof a));
  g_assert_true (gchat_constant_time_equal (a, b, sizeof a - 1));
}

/* SHA-256 and HMAC. */

static void
test_sha256_abc (void)
{
  guint8 digest[GCHAT_SHA256_SIZE];

  gchat_sha256 ((const guint8 *) "abc", 3, digest);
  assert_hex (digest, sizeof digest,
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

  gchat_sha256 (NULL, 0, digest);
  assert_hex (digest, sizeof digest,
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void
test_sha256_parts (void)
{
  const char *text = "hello world";
  guint8      whole[GCHAT_SHA256_SIZE];
  guint8      parts[GCHAT_SHA256_SIZE];

  gchat_sha256 ((const guint8 *) text, strlen (text), whole);
  assert_hex (whole, sizeof whole,
              "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");

  gchat_sha256_parts (parts,
                      (const guint8 *) "hello", (gsize) 5,
                      (const guint8 *) "", (gsize) 0,
                      (const guint8 *) " ", (gsize) 1,
                      (const guint8 *) "world", (gsize) 5,
                      NULL);
  g_assert_cmpmem (parts, sizeof parts, whole, sizeof whole);

  gchat_sha256_parts (parts, (const guint8 *) text, strlen (text), NULL);
  g_assert_cmpmem (parts, sizeof parts, whole, sizeof whole);

  /* A single empty part is the hash of the empty string. */
  gchat_sha256_parts (parts, (const guint8 *) "", (gsize) 0, NULL);
  assert_hex (parts, sizeof parts,
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void
test_hmac_rfc4231 (void)
{
  static const char *tc2_data = "what do ya want for nothing?";
  static const char *tc6_data = "Test Using Larger Than Block-Size Key - Hash Key First";
  guint8             key[131];
  guint8             mac[GCHAT_SHA256_SIZE];

  /* Test case 1. */
  memset (key, 0x0b, 20);
  gchat_hmac_sha256 (key, 20, (const guint8 *) "Hi There", 8, mac);
  assert_hex (mac, sizeof mac,
              "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");

  /* Test case 2. */
  gchat_hmac_sha256 ((const guint8 *) "Jefe", 4, (const guint8 *) tc2_data, strlen (tc2_data),
                     mac);
  assert_hex (mac, sizeof mac,
              "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

  /* Test case 6: a key longer than the block is hashed first. */
  memset (key, 0xaa, sizeof key);
  gchat_hmac_sha256 (key, sizeof key, (const guint8 *) tc6_data, strlen (tc6_data), mac);
  assert_hex (mac, sizeof mac,
              "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

/* HKDF. */

typedef struct
{
  const char *ikm;
  const char *salt;
  const char *info;
  gsize       okm_len;
  const char *prk;
  const char *okm;
} HkdfVector;

/* RFC 5869 appendix A.1 to A.3. */
static const HkdfVector hkdf_vectors[] = {
  { "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
    "000102030405060708090a0b0c",
    "f0f1f2f3f4f5f6f7f8f9",
    42,
    "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
    "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865" },
  { "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
    "404142434445464748494a4b4c4d4e4f",
    "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
    "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
    "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
    "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
    "d0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef"
    "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
    82,
    "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
    "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
    "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
    "cc30c58179ec3e87c14c01d5c1f3434f1d87" },
  { "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
    "",
    "",
    42,
    "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
    "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8" },
};

static void
check_hkdf_vector (const HkdfVector *v)
{
  g_autoptr (GError) error = NULL;
  gsize            ikm_len, salt_len, info_len;
  g_autofree guint8 *ikm = unhex (v->ikm, &ikm_len);
  g_autofree guint8 *salt = unhex (v->salt, &salt_len);
  g_autofree guint8 *info = unhex (v->info, &info_len);
  g_autofree guint8 *okm = g_malloc (v->okm_len);
  guint8             prk[GCHAT_SHA256_SIZE];

  gchat_hkdf_extract (salt, salt_len, ikm, ikm_len, prk);
  assert_hex (prk, sizeof prk, v->prk);

  g_assert_true (gchat_hkdf_expand (prk, sizeof prk, info, info_len, okm, v->okm_len, &error));
  g_assert_no_error (error);
  assert_hex (okm, v->okm_len, v->okm);

  memset (okm, 0, v->okm_len);
  g_assert_true (gchat_hkdf (salt, salt_len, ikm, ikm_len, info, info_len, okm, v->okm_len,
                             &error));
  g_assert_no_error (error);
  assert_hex (okm, v->okm_len, v->okm);
}

static void
test_hkdf_rfc5869 (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (hkdf_vectors); i++)
    {
      g_test_message ("RFC 5869 test case %u", i + 1);
      check_hkdf_vector (&hkdf_vectors[i]);
    }
}

/* A.3 has an empty salt; NULL must mean the same, and so must 32 zero bytes. */
static void
test_hkdf_null_salt (void)
{
  g_autofree guint8 *ikm = unhex_n (hkdf_vectors[2].ikm, 22);
  guint8             zeros[GCHAT_SHA256_SIZE] = { 0 };
  guint8             prk[GCHAT_SHA256_SIZE];

  gchat_hkdf_extract (NULL, 0, ikm, 22, prk);
  assert_hex (prk, sizeof prk, hkdf_vectors[2].prk);

  gchat_hkdf_extract (zeros, sizeof zeros, ikm, 22, prk);
  assert_hex (prk, sizeof prk, hkdf_vectors[2].prk);
}

static void
test_hkdf_expand_limits (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree guint8 *okm = g_malloc (255 * GCHAT_SHA256_SIZE + 1);
  guint8             prk[GCHAT_SHA256_SIZE];

  memset (prk, 0x42, sizeof prk);

  g_assert_false (gchat_hkdf_expand (prk, sizeof prk, NULL, 0, okm, 255 * 32 + 1, &error));
  g_assert_error (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  g_assert_false (gchat_hkdf (NULL, 0, prk, sizeof prk, NULL, 0, okm, 255 * 32 + 1, &error));
  g_assert_error (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  g_assert_false (gchat_hkdf_expand (prk, sizeof prk - 1, NULL, 0, okm, 32, &error));
  g_assert_error (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  /* The largest output is allowed, and its first block is that of a short output. */
  g_assert_true (gchat_hkdf_expand (prk, sizeof prk, NULL, 0, okm, 255 * 32, &error));
  g_assert_no_error (error);
  {
    guint8 first[10];

    g_assert_true (gchat_hkdf_expand (prk, sizeof prk, NULL, 0, first, sizeof first, &error));
    g_assert_no_error (error);
    g_assert_cmpmem (first, sizeof first, okm, sizeof first);
  }

  g_assert_true (gchat_hkdf_expand (prk, sizeof prk, NULL, 0, NULL, 0, &error));
  g_assert_no_error (error);
}

/* ChaCha20-Poly1305. */

/* RFC 8439 section 2.8.2. */
#define AEAD_KEY   "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
#define AEAD_NONCE "070000004041424344454647"
#define AEAD_AAD   "50515253c0c1c2c3c4c5c6c7"
#define AEAD_PLAIN                                                                                 \
  "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, " \
  "sunscreen would be it."
#define AEAD_CIPHER                                                                                \
  "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"                              \
  "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"                              \
  "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"                              \
  "3ff4def08e4b7a9de576d26586cec64b6116"
#define AEAD_TAG   "1ae10b594f09e26a7e902ecbd0600691"

typedef struct
{
  GchatAead *aead;
  guint8    *nonce;
  guint8    *aad;
  guint8    *sealed;
  gsize      plain_len;
  gsize      sealed_len;
} AeadFixture;

static void
aead_fixture_set_up (AeadFixture  *fixture,
                     gconstpointer user_data)
{
  g_autoptr (GError) error = NULL;
  g_autofree guint8 *key = unhex_n (AEAD_KEY, GCHAT_KEY_SIZE);

  fixture->aead = gchat_aead_new (key, &error);
  g_assert_no_error (error);
  g_assert_nonnull (fixture->aead);

  fixture->nonce = unhex_n (AEAD_NONCE, GCHAT_AEAD_NONCE_SIZE);
  fixture->aad = unhex_n (AEAD_AAD, 12);
  fixture->sealed = unhex (AEAD_CIPHER AEAD_TAG, &fixture->sealed_len);
  fixture->plain_len = strlen (AEAD_PLAIN);
  g_assert_cmpuint (fixture->plain_len, ==, 114);
  g_assert_cmpuint (fixture->sealed_len, ==, 114 + GCHAT_AEAD_TAG_SIZE);
}

static void
aead_fixture_tear_down (AeadFixture  *fixture,
                        gconstpointer user_data)
{
  g_clear_pointer (&fixture->aead, gchat_aead_free);
  g_free (fixture->nonce);
  g_free (fixture->aad);
  g_free (fixture->sealed);
}

static void
test_aead_rfc8439 (AeadFixture  *fixture,
                   gconstpointer user_data)
{
  g_autoptr (GError) error = NULL;
  g_autofree guint8 *out = g_malloc0 (fixture->sealed_len);
  g_autofree guint8 *plain = g_malloc0 (fixture->plain_len);

  /* Twice on the same handle: the second message must not inherit state from the first. */
  for (guint round = 0; round < 2; round++)
    {
      g_assert_true (gchat_aead_seal (fixture->aead, fixture->nonce, fixture->aad, 12,
                                      (const guint8 *) AEAD_PLAIN, fixture->plain_len, out,
                                      &error));
      g_assert_no_error (error);
      assert_hex (out, fixture->plain_len, AEAD_CIPHER);
      assert_hex (out + fixture->plain_len, GCHAT_AEAD_TAG_SIZE, AEAD_TAG);

      g_assert_true (gchat_aead_open (fixture->aead, fixture->nonce, fixture->aad, 12,
                                      fixture->sealed, fixture->sealed_len, plain, &error));
      g_assert_no_error (error);
      g_assert_cmpmem (plain, fixture->plain_len, AEAD_PLAIN, fixture->plain_len);
    }
}

/* Opens a damaged message and checks that it fails and leaves nothing readable behind. */
static void
assert_open_fails (AeadFixture  *fixture,
                   const guint8 *nonce,
                   const guint8 *aad,
                   const guint8 *sealed)
{
  g_autoptr (GError) error = NULL;
  guint8 out[114];

  memset (out, 0x5a, sizeof out);
  g_assert_false (gchat_aead_open (fixture->aead, nonce, aad, 12, sealed, fixture->sealed_len,
                                   out, &error));
  g_assert_error (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_DECRYPT);
  g_assert_true (is_all_zero (out, sizeof out));
}

static void
test_aead_tamper (AeadFixture  *fixture,
                  gconstpointer user_data)
{
  g_autoptr (GError) error = NULL;
  guint8 out[114];

  for (gsize bit = 0; bit < fixture->sealed_len * 8; bit++)
    {
      fixture->sealed[bit / 8] ^= 1 << (bit % 8);
      assert_open_fails (fixture, fixture->nonce, fixture->aad, fixture->sealed);
      fixture->sealed[bit / 8] ^= 1 << (bit % 8);
    }

  for (gsize bit = 0; bit < 12 * 8; bit++)
    {
      fixture->aad[bit / 8] ^= 1 << (bit % 8);
      assert_open_fails (fixture, fixture->nonce, fixture->aad, fixture->sealed);
      fixture->aad[bit / 8] ^= 1 << (bit % 8);
    }

  for (gsize bit = 0; bit < GCHAT_AEAD_NONCE_SIZE * 8; bit++)
    {
      fixture->nonce[bit / 8] ^= 1 << (bit % 8);
      assert_open_fails (fixture, fixture->nonce, fixture->aad, fixture->sealed);
      fixture->nonce[bit / 8] ^= 1 << (bit % 8);
    }

  /* All those failures left the handle usable. */
  g_assert_true (gchat_aead_open (fixture->aead, fixture->nonce, fixture->aad, 12,
                                  fixture->sealed, fixture->sealed_len, out, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (out, sizeof out, AEAD_PLAIN, sizeof out);
}

static void
test_aead_wrong_key (AeadFixture  *fixture,
                     gconstpointer user_data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GchatAead) other = NULL;
  guint8 key[GCHAT_KEY_SIZE];
  guint8 out[114];

  memset (key, 0x80, sizeof key);
  other = gchat_aead_new (key, &error);
  g_assert_no_error (error);

  memset (out, 0x5a, sizeof out);
  g_assert_false (gchat_aead_open (other, fixture->nonce, fixture->aad, 12, fixture->sealed,
                                   fixture->sealed_len, out, &error));
  g_assert_error (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_DECRYPT);
  g_assert_true (is_all_zero (out, sizeof out));
}

static void
test_aead_short (AeadFixture  *fixture,
                 gconstpointer user_data)
{
  guint8 out[GCHAT_AEAD_TAG_SIZE];

  for (gsize len = 0; len < GCHAT_AEAD_TAG_SIZE; len++)
    {
      g_autoptr (GError) error = NULL;

      g_assert_false (gchat_aead_open (fixture->aead, fixture->nonce, NULL, 0, fixture->sealed,
                                       len, out, &error));
      g_assert_error (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_DECRYPT);
    }
}

static void
test_aead_empty (AeadFixture  *fixture,
                 gconstpointer user_data)
{
  g_autoptr (GError) error = NULL;
  guint8 sealed[GCHAT_AEAD_TAG_SIZE];
  guint8 other[GCHAT_AEAD_TAG_SIZE];
  guint8 out[1];

  /* An empty message still authenticates its associated data. */
  g_assert_true (gchat_aead_seal (fixture->aead, fixture->nonce, fixture->aad, 12, NULL, 0,
                                  sealed, &error));
  g_assert_no_error (error);
  g_assert_true (gchat_aead_open (fixture->aead, fixture->nonce, fixture->aad, 12, sealed,
                                  sizeof sealed, out, &error));
  g_assert_no_error (error);

  g_assert_true (gchat_aead_seal (fixture->aead, fixture->nonce, NULL, 0, NULL, 0, other,
                                  &error));
  g_assert_no_error (error);
  g_assert_false (memcmp (sealed, other, sizeof sealed) == 0);
  g_assert_true (gchat_aead_open (fixture->aead, fixture->nonce, NULL, 0, other, sizeof other,
                                  NULL, &error));
  g_assert_no_error (error);

  g_assert_false (gchat_aead_open (fixture->aead, fixture->nonce, NULL, 0, sealed,
                                   sizeof sealed, out, &error));
  g_assert_error (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_DECRYPT);
}

static gpointer
aead_thread (gpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GchatAead) aead = NULL;
  g_autofree guint8 *key = unhex_n (AEAD_KEY, GCHAT_KEY_SIZE);
  g_autofree guint8 *expected = unhex (AEAD_CIPHER AEAD_TAG, NULL);
  guint8 plain[1000];
  guint8 sealed[sizeof plain + GCHAT_AEAD_TAG_SIZE];
  guint8 opened[sizeof plain];
  guint8 nonce[GCHAT_AEAD_NONCE_SIZE] = { 0 };

  aead = gchat_aead_new (key, &error);
  g_assert_no_error (error);

  for (guint i = 0; i < 200; i++)
    {
      gsize len = i * 5;

      gchat_random_bytes (plain, len);
      nonce[0] = (guint8) i;
      g_assert_true (gchat_aead_seal (aead, nonce, NULL, 0, plain, len, sealed, &error));
      g_assert_no_error (error);
      g_assert_true (gchat_aead_open (aead, nonce, NULL, 0, sealed, len + GCHAT_AEAD_TAG_SIZE,
                                      opened, &error));
      g_assert_no_error (error);
      g_assert_cmpmem (opened, len, plain, len);
    }

  /* And the known answer still comes out of this thread's handle. */
  {
    g_autofree guint8 *nonce8439 = unhex_n (AEAD_NONCE, GCHAT_AEAD_NONCE_SIZE);
    g_autofree guint8 *aad = unhex_n (AEAD_AAD, 12);

    g_assert_true (gchat_aead_seal (aead, nonce8439, aad, 12, (const guint8 *) AEAD_PLAIN, 114,
                                    sealed, &error));
    g_assert_no_error (error);
    g_assert_cmpmem (sealed, 114 + GCHAT_AEAD_TAG_SIZE, expected, 114 + GCHAT_AEAD_TAG_SIZE);
  }

  return NULL;
}

/* One handle per thread is the supported way to use several threads. */
static void
test_aead_threads (void)
{
  GThread *threads[4];

  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    threads[i] = g_thread_new ("aead", aead_thread, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    g_thread_join (threads[i]);
}

/* X25519. */

static void
check_x25519 (const char *scalar_hex,
              const char *u_hex,
              const char *expected)
{
  g_autoptr (GError) error = NULL;
  g_autofree guint8 *scalar = unhex_n (scalar_hex, GCHAT_X25519_SIZE);
  g_autofree guint8 *u = unhex_n (u_hex, GCHAT_X25519_SIZE);
  guint8             out[GCHAT_X25519_SIZE];

  g_assert_true (gchat_x25519 (scalar, u, out, &error));
  g_assert_no_error (error);
  assert_hex (out, sizeof out, expected);
}

/* RFC 7748 section 5.2. Both scalars are unclamped and the second u has its top bit set, so
 * these check the clamping and the masking of u. */
static void
test_x25519_rfc7748 (void)
{
  check_x25519 ("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
                "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
                "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552");
  check_x25519 ("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
                "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
                "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957");
}

/* RFC 7748 section 6.1. */
static void
test_x25519_dh (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree guint8 *alice = unhex_n (
      "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", 32);
  g_autofree guint8 *bob = unhex_n (
      "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb", 32);
  guint8 alice_public[GCHAT_X25519_SIZE];
  guint8 bob_public[GCHAT_X25519_SIZE];
  guint8 shared[GCHAT_X25519_SIZE];

  g_assert_true (gchat_x25519_public (alice, alice_public, &error));
  g_assert_no_error (error);
  assert_hex (alice_public, sizeof alice_public,
              "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");

  g_assert_true (gchat_x25519_public (bob, bob_public, &error));
  g_assert_no_error (error);
  assert_hex (bob_public, sizeof bob_public,
              "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");

  g_assert_true (gchat_x25519 (alice, bob_public, shared, &error));
  g_assert_no_error (error);
  assert_hex (shared, sizeof shared,
              "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");

  g_assert_true (gchat_x25519 (bob, alice_public, shared, &error));
  g_assert_no_error (error);
  assert_hex (shared, sizeof shared,
              "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
}

static void
test_x25519_keypair (void)
{
  g_autoptr (GError) error = NULL;
  guint8 a_secret[GCHAT_X25519_SIZE], a_public[GCHAT_X25519_SIZE];
  guint8 b_secret[GCHAT_X25519_SIZE], b_public[GCHAT_X25519_SIZE];
  guint8 check[GCHAT_X25519_SIZE];
  guint8 ab[GCHAT_X25519_SIZE], ba[GCHAT_X25519_SIZE];

  g_assert_true (gchat_x25519_keypair (a_secret, a_public, &error));
  g_assert_no_error (error);
  g_assert_true (gchat_x25519_keypair (b_secret, b_public, &error));
  g_assert_no_error (error);
  g_assert_false (memcmp (a_secret, b_secret, GCHAT_X25519_SIZE) == 0);

  /* The stored secret is already clamped. */
  g_assert_cmpuint (a_secret[0] & 7, ==, 0);
  g_assert_cmpuint (a_secret[31] & 0xc0, ==, 0x40);

  g_assert_true (gchat_x25519_public (a_secret, check, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (check, sizeof check, a_public, sizeof a_public);

  g_assert_true (gchat_x25519 (a_secret, b_public, ab, &error));
  g_assert_no_error (error);
  g_assert_true (gchat_x25519 (b_secret, a_public, ba, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (ab, sizeof ab, ba, sizeof ba);
}

/* Clamping ignores the three low bits and the top two, so these all name the same key. */
static void
test_x25519_clamping (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree guint8 *secret = unhex_n (
      "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", 32);
  guint8 expected[GCHAT_X25519_SIZE];
  guint8 public_key[GCHAT_X25519_SIZE];

  g_assert_true (gchat_x25519_public (secret, expected, &error));
  g_assert_no_error (error);

  secret[0] ^= 7;
  secret[31] ^= 0xc0;
  g_assert_true (gchat_x25519_public (secret, public_key, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (public_key, sizeof public_key, expected, sizeof expected);
}

/* Points of small order (and their non-canonical encodings) force the all-zero secret. */
static void
test_x25519_low_order (void)
{
  static const char *points[] = {
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  };
  g_autofree guint8 *secret = unhex_n (
      "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4", 32);

  for (guint i = 0; i < G_N_ELEMENTS (points); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autofree guint8 *point = unhex_n (points[i], GCHAT_X25519_SIZE);
      guint8             shared[GCHAT_X25519_SIZE];

      memset (shared, 0x5a, sizeof shared);
      g_assert_false (gchat_x25519 (secret, point, shared, &error));
      g_assert_error (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_WEAK_KEY);
      g_assert_true (is_all_zero (shared, sizeof shared));
    }
}

/* Argon2id. */

static void
test_argon2id_rfc9106 (void)
{
  g_autoptr (GError) error = NULL;
  GchatArgon2Params params = { .memory_kib = 32, .iterations = 3, .parallelism = 4 };
  guint8            password[32], salt[16], secret[8], ad[12];
  guint8            tag[32];
  guint8            other[32];

  memset (password, 0x01, sizeof password);
  memset (salt, 0x02, sizeof salt);
  memset (secret, 0x03, sizeof secret);
  memset (ad, 0x04, sizeof ad);

  /* RFC 9106 section 5.3. */
  g_assert_true (gchat_argon2id (&params, password, sizeof password, salt, sizeof salt, secret,
                                 sizeof secret, ad, sizeof ad, tag, sizeof tag, &error));
  g_assert_no_error (error);
  assert_hex (tag, sizeof tag,
              "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659");

  /* Without the secret and the associated data the result differs. */
  g_assert_true (gchat_argon2id (&params, password, sizeof password, salt, sizeof salt, NULL, 0,
                                 NULL, 0, other, sizeof other, &error));
  g_assert_no_error (error);
  g_assert_false (memcmp (tag, other, sizeof tag) == 0);
}

static void
assert_params_invalid (guint32 memory_kib,
                       guint32 iterations,
                       guint32 parallelism)
{
  g_autoptr (GError) error = NULL;
  GchatArgon2Params params = { memory_kib, iterations, parallelism };
  guint8            out[32];

  g_assert_false (gchat_argon2_params_validate (&params, &error));
  g_assert_error (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  g_assert_false (gchat_argon2id (&params, (const guint8 *) "password", 8,
                                  (const guint8 *) "saltsalt", 8, NULL, 0, NULL, 0, out,
                                  sizeof out, &error));
  g_assert_error (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_INVALID_ARGUMENT);
}

static void
test_argon2id_params (void)
{
  g_autoptr (GError) error = NULL;
  GchatArgon2Params params;

  memset (&params, 0xff, sizeof params);
  gchat_argon2_params_init_default (&params);
  g_assert_cmpuint (params.memory_kib, ==, GCHAT_ARGON2_DEFAULT_MEMORY_KIB);
  g_assert_cmpuint (params.iterations, ==, GCHAT_ARGON2_DEFAULT_ITERATIONS);
  g_assert_cmpuint (params.parallelism, ==, GCHAT_ARGON2_DEFAULT_PARALLELISM);
  g_assert_true (gchat_argon2_params_validate (&params, &error));
  g_assert_no_error (error);

  params = (GchatArgon2Params) { GCHAT_ARGON2_MAX_MEMORY_KIB, GCHAT_ARGON2_MAX_ITERATIONS,
                                 GCHAT_ARGON2_MAX_PARALLELISM };
  g_assert_true (gchat_argon2_params_validate (&params, &error));
  g_assert_no_error (error);

  params = (GchatArgon2Params) { 8, 1, 1 };
  g_assert_true (gchat_argon2_params_validate (&params, &error));
  g_assert_no_error (error);

  assert_params_invalid (GCHAT_ARGON2_MIN_MEMORY_KIB - 1, 1, 1);
  assert_params_invalid (GCHAT_ARGON2_MAX_MEMORY_KIB + 1, 1, 1);
  assert_params_invalid (G_MAXUINT32, 1, 1);
  assert_params_invalid (31, 1, 4);
  assert_params_invalid (64, 0, 1);
  assert_params_invalid (64, GCHAT_ARGON2_MAX_ITERATIONS + 1, 1);
  assert_params_invalid (64, 1, 0);
  assert_params_invalid (1024, 1, GCHAT_ARGON2_MAX_PARALLELISM + 1);
}

static void
assert_argon2id_input_invalid (const char *password,
                               gsize       salt_len,
                               gsize       out_len)
{
  g_autoptr (GError) error = NULL;
  GchatArgon2Params params = { 8, 1, 1 };
  guint8            salt[16] = { 0 };
  guint8            out[1025];

  g_assert_false (gchat_argon2id (&params, (const guint8 *) password, strlen (password), salt,
                                  salt_len, NULL, 0, NULL, 0, out, out_len, &error));
  g_assert_error (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_INVALID_ARGUMENT);
}

static void
test_argon2id_inputs (void)
{
  g_autoptr (GError) error = NULL;
  GchatArgon2Params params = { 8, 1, 1 };
  guint8            salt[8] = { 0 };
  guint8            out[4];

  assert_argon2id_input_invalid ("password", 7, 32);
  assert_argon2id_input_invalid ("password", 0, 32);
  assert_argon2id_input_invalid ("password", 16, 3);
  assert_argon2id_input_invalid ("password", 16, 1025);
  assert_argon2id_input_invalid ("", 16, 32);

  /* The smallest accepted sizes work. */
  g_assert_true (gchat_argon2id (&params, (const guint8 *) "p", 1, salt, sizeof salt, NULL, 0,
                                 NULL, 0, out, sizeof out, &error));
  g_assert_no_error (error);

  /* libgcrypt 1.10 cannot address 4 GiB; the limit stays below, and above it is an error. */
  params = (GchatArgon2Params) { GCHAT_ARGON2_MAX_MEMORY_KIB + 1, 1, 1 };
  g_assert_false (gchat_argon2id (&params, (const guint8 *) "p", 1, salt, sizeof salt, NULL, 0,
                                  NULL, 0, out, sizeof out, &error));
  g_assert_error (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  params = (GchatArgon2Params) { 4u * 1024 * 1024, 1, 1 };
  g_assert_false (gchat_argon2id (&params, (const guint8 *) "p", 1, salt, sizeof salt, NULL, 0,
                                  NULL, 0, out, sizeof out, &error));
  g_assert_error (error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_INVALID_ARGUMENT);
}

/* Fingerprints. */

static void
test_fingerprint_format (void)
{
  guint8           digest[GCHAT_SHA256_SIZE];
  g_autofree char *text = NULL;
  g_auto (GStrv) groups = NULL;

  gchat_sha256 ((const guint8 *) "abc", 3, digest);
  text = gchat_fingerprint_format (digest);

  g_assert_cmpstr (text, ==,
                   "ba78 16bf 8f01 cfea 4141 40de 5dae 2223 "
                   "b003 61a3 9617 7a9c b410 ff61 f200 15ad");
  g_assert_cmpuint (strlen (text), ==, 79);

  groups = g_strsplit (text, " ", -1);
  g_assert_cmpuint (g_strv_length (groups), ==, 16);
  for (guint i = 0; groups[i] != NULL; i++)
    {
      g_assert_cmpuint (strlen (groups[i]), ==, 4);
      for (guint j = 0; j < 4; j++)
        g_assert_true (g_ascii_isxdigit (groups[i][j]) && !g_ascii_isupper (groups[i][j]));
    }

  memset (digest, 0xff, sizeof digest);
  g_clear_pointer (&text, g_free);
  text = gchat_fingerprint_format (digest);
  g_assert_cmpuint (strlen (text), ==, 79);
  g_assert_true (g_str_has_prefix (text, "ffff ffff "));
}

int
main (int argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/crypto/init", test_init);
  g_test_add_func ("/crypto/init/threads", test_init_threads);
  g_test_add_func ("/crypto/init/unlocked", test_init_unlocked);
  g_test_add_func ("/crypto/random", test_random);
  g_test_add_func ("/crypto/memzero", test_memzero);
  g_test_add_func ("/crypto/wiped-buffer", test_wiped_buffer);
  g_test_add_func ("/crypto/wiped-buffer/overlong", test_wiped_buffer_overlong);
  g_test_add_func ("/crypto/constant-time-equal", test_constant_time_equal);
  g_test_add_func ("/crypto/sha256/abc", test_sha256_abc);
  g_test_add_func ("/crypto/sha256/parts", test_sha256_parts);
  g_test_add_func ("/crypto/hmac/rfc4231", test_hmac_rfc4231);
  g_test_add_func ("/crypto/hkdf/rfc5869", test_hkdf_rfc5869);
  g_test_add_func ("/crypto/hkdf/null-salt", test_hkdf_null_salt);
  g_test_add_func ("/crypto/hkdf/expand-limits", test_hkdf_expand_limits);
  g_test_add ("/crypto/aead/rfc8439", AeadFixture, NULL, aead_fixture_set_up, test_aead_rfc8439,
              aead_fixture_tear_down);
  g_test_add ("/crypto/aead/tamper", AeadFixture, NULL, aead_fixture_set_up, test_aead_tamper,
              aead_fixture_tear_down);
  g_test_add ("/crypto/aead/wrong-key", AeadFixture, NULL, aead_fixture_set_up,
              test_aead_wrong_key, aead_fixture_tear_down);
  g_test_add ("/crypto/aead/short", AeadFixture, NULL, aead_fixture_set_up, test_aead_short,
              aead_fixture_tear_down);
  g_test_add ("/crypto/aead/empty", AeadFixture, NULL, aead_fixture_set_up, test_aead_empty,
              aead_fixture_tear_down);
  g_test_add_func ("/crypto/aead/threads", test_aead_threads);
  g_test_add_func ("/crypto/x25519/rfc7748", test_x25519_rfc7748);
  g_test_add_func ("/crypto/x25519/dh", test_x25519_dh);
  g_test_add_func ("/crypto/x25519/keypair", test_x25519_keypair);
  g_test_add_func ("/crypto/x25519/clamping", test_x25519_clamping);
  g_test_add_func ("/crypto/x25519/low-order", test_x25519_low_order);
  g_test_add_func ("/crypto/argon2id/rfc9106", test_argon2id_rfc9106);
  g_test_add_func ("/crypto/argon2id/params", test_argon2id_params);
  g_test_add_func ("/crypto/argon2id/inputs", test_argon2id_inputs);
  g_test_add_func ("/crypto/fingerprint", test_fingerprint_format);

  return g_test_run ();
}
