/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Tests of peer and endpoint datagrams: keys, sealing, the replay window and every body codec. */

#include "config.h"

#include <string.h>

#include "gchat-crypto.h"
#include "gchat-datagram.h"

#define KEY_ID 7

typedef struct
{
  guint8         pair_key[GCHAT_KEY_SIZE];
  GchatPeerKeys *alice; /* the smaller name: direction 0 */
  GchatPeerKeys *bob;   /* direction 1 */
} Pair;

static GchatPeerKeys *
keys_new (const guint8 *pair_key,
          guint32       key_id,
          const char   *self_user,
          const char   *peer_user)
{
  g_autoptr(GError) error = NULL;
  GchatPeerKeys *keys = gchat_peer_keys_new (pair_key, key_id, self_user, peer_user, &error);

  g_assert_no_error (error);
  g_assert_nonnull (keys);
  return keys;
}

static void
pair_setup (Pair          *pair,
            gconstpointer  data)
{
  gchat_random_bytes (pair->pair_key, sizeof pair->pair_key);
  pair->alice = keys_new (pair->pair_key, KEY_ID, "alice", "bob");
  pair->bob = keys_new (pair->pair_key, KEY_ID, "bob", "alice");
}

static void
pair_teardown (Pair          *pair,
               gconstpointer  data)
{
  g_clear_pointer (&pair->alice, gchat_peer_keys_free);
  g_clear_pointer (&pair->bob, gchat_peer_keys_free);
}

static GBytes *
seal (GchatPeerKeys     *keys,
      GchatDatagramKind  kind,
      const void        *body,
      gsize              len)
{
  g_autoptr(GError) error = NULL;
  GBytes *datagram = gchat_peer_keys_seal (keys, kind, body, len, &error);

  g_assert_no_error (error);
  g_assert_nonnull (datagram);
  return datagram;
}

static GBytes *
seal_text (GchatPeerKeys *keys,
           const char    *text)
{
  return seal (keys, GCHAT_DATAGRAM_KIND_DATA, text, strlen (text));
}

static void
assert_opens (GchatPeerKeys     *keys,
              GBytes            *datagram,
              GchatDatagramKind  expected_kind,
              const void        *expected,
              gsize              expected_len)
{
  g_autoptr(GError) error = NULL;
  GchatDatagramKind kind = 0;
  guint64 seq = G_MAXUINT64;
  gsize len;
  const guint8 *data = g_bytes_get_data (datagram, &len);
  g_autoptr(GBytes) body = gchat_peer_keys_open (keys, data, len, &kind, &seq, &error);

  g_assert_no_error (error);
  g_assert_nonnull (body);
  g_assert_cmpint (kind, ==, expected_kind);
  g_assert_cmpuint (seq, ==, ((guint64) data[8] << 56) | ((guint64) data[9] << 48)
                    | ((guint64) data[10] << 40) | ((guint64) data[11] << 32)
                    | ((guint64) data[12] << 24) | ((guint64) data[13] << 16)
                    | ((guint64) data[14] << 8) | data[15]);
  g_assert_cmpmem (g_bytes_get_data (body, NULL), g_bytes_get_size (body), expected, expected_len);
}

static void
assert_opens_text (GchatPeerKeys *keys,
                   GBytes        *datagram,
                   const char    *text)
{
  assert_opens (keys, datagram, GCHAT_DATAGRAM_KIND_DATA, text, strlen (text));
}

static void
assert_refused_data (GchatPeerKeys *keys,
                     const guint8  *data,
                     gsize          len,
                     int            code)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) body = gchat_peer_keys_open (keys, data, len, NULL, NULL, &error);

  g_assert_null (body);
  g_assert_error (error, GCHAT_DATAGRAM_ERROR, code);
}

static void
assert_refused (GchatPeerKeys *keys,
                GBytes        *datagram,
                int            code)
{
  gsize len;
  const guint8 *data = g_bytes_get_data (datagram, &len);

  assert_refused_data (keys, data, len, code);
}

static void
put_u64 (guint8  *p,
         guint64  value)
{
  for (guint i = 0; i < 8; i++)
    p[i] = (guint8) (value >> (56 - 8 * i));
}

/* ---- Sealing and opening ---- */

static void
test_round_trip (Pair          *pair,
                 gconstpointer  data)
{
  guint64 ids[] = { 1, 2, G_MAXUINT64 };
  g_autoptr(GBytes) ack = gchat_datagram_build_ack (ids, G_N_ELEMENTS (ids), NULL);
  g_autoptr(GBytes) body = gchat_datagram_build_data (42, 40, 0, 1, (const guint8 *) "hi", 2, NULL);

  g_assert_cmpuint (gchat_peer_keys_get_direction (pair->alice), ==, 0);
  g_assert_cmpuint (gchat_peer_keys_get_direction (pair->bob), ==, 1);
  g_assert_cmpuint (gchat_peer_keys_get_key_id (pair->alice), ==, KEY_ID);
  for (guint i = 0; i < 3; i++)
    {
      GchatPeerKeys *from = i % 2 == 0 ? pair->alice : pair->bob;
      GchatPeerKeys *to = i % 2 == 0 ? pair->bob : pair->alice;
      g_autoptr(GBytes) d = seal (from, GCHAT_DATAGRAM_KIND_DATA, g_bytes_get_data (body, NULL),
                                  g_bytes_get_size (body));
      g_autoptr(GBytes) a = seal (from, GCHAT_DATAGRAM_KIND_ACK, g_bytes_get_data (ack, NULL),
                                  g_bytes_get_size (ack));
      g_autoptr(GBytes) h = seal (from, GCHAT_DATAGRAM_KIND_HELLO, NULL, 0);

      g_assert_cmpuint (g_bytes_get_size (d), ==, 16 + g_bytes_get_size (body) + 16);
      g_assert_cmpuint (g_bytes_get_size (h), ==, GCHAT_DATAGRAM_MIN_SIZE);
      assert_opens (to, d, GCHAT_DATAGRAM_KIND_DATA, g_bytes_get_data (body, NULL),
                    g_bytes_get_size (body));
      assert_opens (to, a, GCHAT_DATAGRAM_KIND_ACK, g_bytes_get_data (ack, NULL),
                    g_bytes_get_size (ack));
      assert_opens (to, h, GCHAT_DATAGRAM_KIND_HELLO, "", 0);
    }
  g_assert_cmpuint (gchat_peer_keys_get_next_seq (pair->alice), ==, 6);
  g_assert_cmpuint (gchat_peer_keys_get_next_seq (pair->bob), ==, 3);
}

static void
test_largest (Pair          *pair,
              gconstpointer  data)
{
  guint8 body[GCHAT_DATAGRAM_MAX_BODY + 1];
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) largest = NULL;
  g_autoptr(GBytes) too_large = NULL;
  g_autoptr(GBytes) hello = NULL;

  gchat_random_bytes (body, sizeof body);
  largest = seal (pair->alice, GCHAT_DATAGRAM_KIND_DATA, body, GCHAT_DATAGRAM_MAX_BODY);
  g_assert_cmpuint (g_bytes_get_size (largest), ==, GCHAT_DATAGRAM_MAX_SIZE);
  assert_opens (pair->bob, largest, GCHAT_DATAGRAM_KIND_DATA, body, GCHAT_DATAGRAM_MAX_BODY);

  too_large = gchat_peer_keys_seal (pair->alice, GCHAT_DATAGRAM_KIND_DATA, body, sizeof body,
                                    &error);
  g_assert_null (too_large);
  g_assert_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_TOO_LARGE);
  g_clear_error (&error);
  hello = gchat_peer_keys_seal (pair->alice, GCHAT_DATAGRAM_KIND_HELLO, body, 1, &error);
  g_assert_null (hello);
  g_assert_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_MALFORMED);
  /* Refused datagrams use no sequence number. */
  g_assert_cmpuint (gchat_peer_keys_get_next_seq (pair->alice), ==, 1);
}

/* The derivation of §7.1 written out again here, independent of gchat-datagram.c. */
static void
derive (const guint8 *pair_key,
        guint32       key_id,
        const char   *label,
        const char   *lo,
        const char   *hi,
        guint8        out[GCHAT_KEY_SIZE])
{
  guint8 salt[4] = { key_id >> 24, key_id >> 16, key_id >> 8, key_id };
  g_autoptr(GByteArray) info = g_byte_array_new ();
  guint8 lo_len = strlen (lo), hi_len = strlen (hi);
  g_autoptr(GError) error = NULL;

  g_byte_array_append (info, (const guint8 *) label, strlen (label));
  g_byte_array_append (info, &lo_len, 1);
  g_byte_array_append (info, (const guint8 *) lo, lo_len);
  g_byte_array_append (info, &hi_len, 1);
  g_byte_array_append (info, (const guint8 *) hi, hi_len);
  g_assert_true (gchat_hkdf (salt, 4, pair_key, GCHAT_KEY_SIZE, info->data, info->len, out,
                             GCHAT_KEY_SIZE, &error));
  g_assert_no_error (error);
}

/* A datagram sealed by hand with @key, as another implementation would. */
static GBytes *
seal_by_hand (const guint8 *key,
              guint8        direction,
              guint32       key_id,
              guint64       seq,
              const char   *text)
{
  gsize len = strlen (text);
  guint8 *out = g_malloc (16 + len + 16);
  guint8 nonce[GCHAT_AEAD_NONCE_SIZE] = { 0 };
  g_autoptr(GchatAead) aead = gchat_aead_new (key, NULL);

  out[0] = 0x47;
  out[1] = 1;
  out[2] = GCHAT_DATAGRAM_KIND_DATA;
  out[3] = direction;
  out[4] = key_id >> 24;
  out[5] = key_id >> 16;
  out[6] = key_id >> 8;
  out[7] = key_id;
  put_u64 (out + 8, seq);
  put_u64 (nonce + 4, seq);
  g_assert_true (gchat_aead_seal (aead, nonce, out, 16, (const guint8 *) text, len, out + 16,
                                  NULL));
  return g_bytes_new_take (out, 16 + len + 16);
}

/* Opens by hand what @keys sealed, to show they used @key. */
static void
assert_sealed_with (GBytes       *datagram,
                    const guint8 *key,
                    const char   *text)
{
  gsize len;
  const guint8 *data = g_bytes_get_data (datagram, &len);
  guint8 nonce[GCHAT_AEAD_NONCE_SIZE] = { 0 };
  g_autofree guint8 *plain = g_malloc (len);
  g_autoptr(GchatAead) aead = gchat_aead_new (key, NULL);
  g_autoptr(GError) error = NULL;

  memcpy (nonce + 4, data + 8, 8);
  g_assert_true (gchat_aead_open (aead, nonce, data, 16, data + 16, len - 16, plain, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (plain, len - 32, text, strlen (text));
}

static void
check_derivation (const char *lo,
                  const char *hi,
                  guint32     key_id)
{
  guint8 pair_key[GCHAT_KEY_SIZE], lo_hi[GCHAT_KEY_SIZE], hi_lo[GCHAT_KEY_SIZE];
  g_autoptr(GchatPeerKeys) lo_keys = NULL;
  g_autoptr(GchatPeerKeys) hi_keys = NULL;
  g_autoptr(GBytes) from_lo = NULL;
  g_autoptr(GBytes) from_hi = NULL;
  g_autoptr(GBytes) by_hand_lo = NULL;
  g_autoptr(GBytes) by_hand_hi = NULL;

  gchat_random_bytes (pair_key, sizeof pair_key);
  derive (pair_key, key_id, "gchat v1 peer lo-hi", lo, hi, lo_hi);
  derive (pair_key, key_id, "gchat v1 peer hi-lo", lo, hi, hi_lo);
  lo_keys = keys_new (pair_key, key_id, lo, hi);
  hi_keys = keys_new (pair_key, key_id, hi, lo);
  g_assert_cmpuint (gchat_peer_keys_get_direction (lo_keys), ==, 0);
  g_assert_cmpuint (gchat_peer_keys_get_direction (hi_keys), ==, 1);

  from_lo = seal_text (lo_keys, "from lo");
  from_hi = seal_text (hi_keys, "from hi");
  assert_sealed_with (from_lo, lo_hi, "from lo");
  assert_sealed_with (from_hi, hi_lo, "from hi");
  by_hand_lo = seal_by_hand (lo_hi, 0, key_id, 5, "by hand lo");
  by_hand_hi = seal_by_hand (hi_lo, 1, key_id, 9, "by hand hi");
  assert_opens_text (hi_keys, by_hand_lo, "by hand lo");
  assert_opens_text (lo_keys, by_hand_hi, "by hand hi");
}

static void
test_derivation (void)
{
  /* Names compare as unsigned bytes; a name comes before a longer one it starts. */
  check_derivation ("alice", "bob", KEY_ID);
  check_derivation ("ann", "anna", 0);
  check_derivation ("Zoe", "zoe", G_MAXUINT32);
  check_derivation ("zed", "\xc3\x9cnal", 0x01020304);
  check_derivation ("0123456789abcdef0123456789abcdef", "x", 1);
}

static void
test_names (void)
{
  guint8 pair_key[GCHAT_KEY_SIZE] = { 0 };
  const char *bad[][2] = {
    { "alice", "alice" },
    { "", "bob" },
    { "alice", "" },
    { "alice", "0123456789abcdef0123456789abcdefX" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GchatPeerKeys) keys = gchat_peer_keys_new (pair_key, 1, bad[i][0], bad[i][1],
                                                           &error);

      g_assert_null (keys);
      g_assert_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_INVALID_NAME);
    }
}

static void
test_reflected (Pair          *pair,
                gconstpointer  data)
{
  g_autoptr(GBytes) datagram = seal_text (pair->alice, "reflect me");
  gsize len;
  g_autofree guint8 *turned = g_memdup2 (g_bytes_get_data (datagram, &len),
                                         g_bytes_get_size (datagram));

  assert_refused (pair->alice, datagram, GCHAT_DATAGRAM_ERROR_UNKNOWN_KEY);
  /* Claiming the other direction does not help: the header is authenticated and the key
   * differs. */
  turned[3] = 1;
  assert_refused_data (pair->alice, turned, len, GCHAT_DATAGRAM_ERROR_DECRYPT);
  assert_refused_data (pair->bob, turned, len, GCHAT_DATAGRAM_ERROR_UNKNOWN_KEY);
  assert_opens_text (pair->bob, datagram, "reflect me");
}

static void
test_other_pair (Pair          *pair,
                 gconstpointer  data)
{
  g_autoptr(GBytes) datagram = seal_text (pair->alice, "for bob only");
  g_autoptr(GchatPeerKeys) carol = keys_new (pair->pair_key, KEY_ID, "carol", "alice");
  g_autoptr(GchatPeerKeys) bob_other_id = keys_new (pair->pair_key, KEY_ID + 1, "bob", "alice");
  g_autoptr(GchatPeerKeys) bob_other_key = NULL;
  guint8 other_key[GCHAT_KEY_SIZE];
  gsize len;
  g_autofree guint8 *moved = g_memdup2 (g_bytes_get_data (datagram, &len),
                                        g_bytes_get_size (datagram));

  gchat_random_bytes (other_key, sizeof other_key);
  bob_other_key = keys_new (other_key, KEY_ID, "bob", "alice");
  assert_refused (carol, datagram, GCHAT_DATAGRAM_ERROR_DECRYPT);
  assert_refused (bob_other_id, datagram, GCHAT_DATAGRAM_ERROR_UNKNOWN_KEY);
  assert_refused (bob_other_key, datagram, GCHAT_DATAGRAM_ERROR_DECRYPT);
  /* Rewriting the key id to the other one only moves the failure to the AEAD. */
  moved[7] = KEY_ID + 1;
  assert_refused_data (bob_other_id, moved, len, GCHAT_DATAGRAM_ERROR_DECRYPT);
  assert_opens_text (pair->bob, datagram, "for bob only");
}

static void
test_replayed (Pair          *pair,
               gconstpointer  data)
{
  g_autoptr(GBytes) datagram = seal_text (pair->alice, "pay bob 10");

  assert_opens_text (pair->bob, datagram, "pay bob 10");
  assert_refused (pair->bob, datagram, GCHAT_DATAGRAM_ERROR_REPLAY);
  assert_refused (pair->bob, datagram, GCHAT_DATAGRAM_ERROR_REPLAY);
}

/* Seals @n datagrams whose text is their number. */
static GPtrArray *
seal_numbered (GchatPeerKeys *keys,
               guint          n)
{
  GPtrArray *datagrams = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);

  for (guint i = 0; i < n; i++)
    {
      g_autofree char *text = g_strdup_printf ("%u", i);

      g_ptr_array_add (datagrams, seal_text (keys, text));
    }
  return datagrams;
}

static void
assert_number_opens (GchatPeerKeys *keys,
                     GPtrArray     *datagrams,
                     guint          i)
{
  g_autofree char *text = g_strdup_printf ("%u", i);

  assert_opens_text (keys, g_ptr_array_index (datagrams, i), text);
}

static void
test_window (Pair          *pair,
             gconstpointer  data)
{
  g_autoptr(GPtrArray) d = seal_numbered (pair->alice, 100);

  assert_number_opens (pair->bob, d, 99);
  /* 64 behind the highest is the oldest still accepted, once. */
  assert_number_opens (pair->bob, d, 35);
  assert_refused (pair->bob, g_ptr_array_index (d, 35), GCHAT_DATAGRAM_ERROR_REPLAY);
  assert_refused (pair->bob, g_ptr_array_index (d, 34), GCHAT_DATAGRAM_ERROR_REPLAY);
  assert_refused (pair->bob, g_ptr_array_index (d, 0), GCHAT_DATAGRAM_ERROR_REPLAY);
  assert_number_opens (pair->bob, d, 50);
  assert_number_opens (pair->bob, d, 98);
  assert_refused (pair->bob, g_ptr_array_index (d, 50), GCHAT_DATAGRAM_ERROR_REPLAY);
  assert_refused (pair->bob, g_ptr_array_index (d, 99), GCHAT_DATAGRAM_ERROR_REPLAY);
}

static void
test_window_jumps (Pair          *pair,
                   gconstpointer  data)
{
  g_autoptr(GPtrArray) d = seal_numbered (pair->alice, 300);

  /* A jump of exactly 64 keeps the old highest at the window's far end. */
  assert_number_opens (pair->bob, d, 0);
  assert_number_opens (pair->bob, d, 64);
  assert_refused (pair->bob, g_ptr_array_index (d, 0), GCHAT_DATAGRAM_ERROR_REPLAY);
  for (guint i = 1; i < 64; i++)
    assert_number_opens (pair->bob, d, i);
  for (guint i = 0; i <= 64; i++)
    assert_refused (pair->bob, g_ptr_array_index (d, i), GCHAT_DATAGRAM_ERROR_REPLAY);
  /* A jump of more than 64 forgets the whole window. */
  assert_number_opens (pair->bob, d, 200);
  assert_refused (pair->bob, g_ptr_array_index (d, 135), GCHAT_DATAGRAM_ERROR_REPLAY);
  assert_number_opens (pair->bob, d, 136);
  assert_number_opens (pair->bob, d, 199);
  assert_number_opens (pair->bob, d, 201);
  assert_refused (pair->bob, g_ptr_array_index (d, 136), GCHAT_DATAGRAM_ERROR_REPLAY);
  assert_refused (pair->bob, g_ptr_array_index (d, 200), GCHAT_DATAGRAM_ERROR_REPLAY);
}

static void
shuffle (GPtrArray *array)
{
  for (guint i = array->len; i > 1; i--)
    {
      guint j = g_test_rand_int_range (0, i);
      gpointer tmp = array->pdata[i - 1];

      array->pdata[i - 1] = array->pdata[j];
      array->pdata[j] = tmp;
    }
}

static void
test_window_shuffled (Pair          *pair,
                      gconstpointer  data)
{
  g_autoptr(GPtrArray) d = seal_numbered (pair->alice, 65);
  g_autoptr(GPtrArray) order = g_ptr_array_new ();

  for (guint i = 0; i < d->len; i++)
    g_ptr_array_add (order, GUINT_TO_POINTER (i));
  shuffle (order);
  /* 65 datagrams in any order all fit: the highest and the 64 below it. */
  for (guint i = 0; i < order->len; i++)
    assert_number_opens (pair->bob, d, GPOINTER_TO_UINT (order->pdata[i]));
  for (guint i = 0; i < d->len; i++)
    assert_refused (pair->bob, g_ptr_array_index (d, i), GCHAT_DATAGRAM_ERROR_REPLAY);
}

/* Every bit of a datagram matters, and none of the failures moves the window. */
static void
test_every_bit (Pair          *pair,
                gconstpointer  data)
{
  g_autoptr(GBytes) datagram = seal_text (pair->alice, "meet at noon");
  gsize len;
  const guint8 *bytes = g_bytes_get_data (datagram, &len);

  for (gsize bit = 0; bit < len * 8; bit++)
    {
      g_autofree guint8 *copy = g_memdup2 (bytes, len);
      g_autoptr(GError) error = NULL;
      g_autoptr(GBytes) body = NULL;

      copy[bit / 8] ^= (guint8) (1u << (bit % 8));
      body = gchat_peer_keys_open (pair->bob, copy, len, NULL, NULL, &error);
      g_assert_null (body);
      g_assert_true (error != NULL && error->domain == GCHAT_DATAGRAM_ERROR);
      g_assert_cmpint (error->code, !=, GCHAT_DATAGRAM_ERROR_REPLAY);
    }
  assert_opens_text (pair->bob, datagram, "meet at noon");
}

static void
assert_peek_malformed (const guint8 *data,
                       gsize         len)
{
  GchatDatagramHeader header;
  g_autoptr(GError) error = NULL;

  g_assert_false (gchat_datagram_peek_header (data, len, &header, &error));
  g_assert_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_MALFORMED);
}

static void
test_malformed (Pair          *pair,
                gconstpointer  data)
{
  g_autoptr(GBytes) datagram = seal_text (pair->alice, "hello");
  gsize len;
  const guint8 *bytes = g_bytes_get_data (datagram, &len);
  guint8 big[GCHAT_DATAGRAM_MAX_SIZE + 1];
  /* Byte offset, then a value that is not allowed there. */
  const guint8 bad_bytes[][2] = { { 0, 0x48 }, { 0, 0 }, { 1, 0 }, { 1, 2 }, { 2, 0 },
                                  { 2, 5 }, { 2, 255 }, { 3, 2 }, { 3, 255 } };
  GchatDatagramHeader header;

  g_assert_true (gchat_datagram_peek_header (bytes, len, &header, NULL));
  g_assert_cmpint (header.kind, ==, GCHAT_DATAGRAM_KIND_DATA);
  g_assert_cmpuint (header.direction, ==, 0);
  g_assert_cmpuint (header.key_id, ==, KEY_ID);
  g_assert_cmpuint (header.seq, ==, 0);

  for (guint i = 0; i < G_N_ELEMENTS (bad_bytes); i++)
    {
      g_autofree guint8 *copy = g_memdup2 (bytes, len);

      copy[bad_bytes[i][0]] = bad_bytes[i][1];
      assert_peek_malformed (copy, len);
      assert_refused_data (pair->bob, copy, len, GCHAT_DATAGRAM_ERROR_MALFORMED);
    }
  for (gsize cut = 0; cut < GCHAT_DATAGRAM_MIN_SIZE; cut++)
    {
      assert_peek_malformed (bytes, cut);
      assert_refused_data (pair->bob, bytes, cut, GCHAT_DATAGRAM_ERROR_MALFORMED);
    }
  memset (big, 0, sizeof big);
  memcpy (big, bytes, len);
  assert_peek_malformed (big, sizeof big);
  assert_refused_data (pair->bob, big, sizeof big, GCHAT_DATAGRAM_ERROR_MALFORMED);
  /* Cut short but still long enough, it fails to authenticate. */
  assert_refused_data (pair->bob, bytes, len - 1, GCHAT_DATAGRAM_ERROR_DECRYPT);
  assert_opens_text (pair->bob, datagram, "hello");
}

/* A forged datagram with a huge seq fails, and does not push the window past the real ones. */
static void
test_forged_seq (Pair          *pair,
                 gconstpointer  data)
{
  g_autoptr(GPtrArray) d = seal_numbered (pair->alice, 3);
  const guint64 forged_seqs[] = { 1000, G_MAXUINT64 - 1, G_MAXUINT64 };

  for (guint i = 0; i < G_N_ELEMENTS (forged_seqs); i++)
    {
      gsize len;
      g_autofree guint8 *forged = g_memdup2 (g_bytes_get_data (d->pdata[0], &len),
                                             g_bytes_get_size (d->pdata[0]));

      put_u64 (forged + 8, forged_seqs[i]);
      assert_refused_data (pair->bob, forged, len, GCHAT_DATAGRAM_ERROR_DECRYPT);
      gchat_random_bytes (forged + 16, len - 16);
      assert_refused_data (pair->bob, forged, len, GCHAT_DATAGRAM_ERROR_DECRYPT);
    }
  for (guint i = 0; i < d->len; i++)
    assert_number_opens (pair->bob, d, i);
}

/* ---- Endpoint datagrams ---- */

static void
test_endpoint_key (Pair          *pair,
                   gconstpointer  data)
{
  guint8 key[GCHAT_KEY_SIZE], other[GCHAT_KEY_SIZE];
  g_autoptr(GchatEndpointKey) client = NULL;
  g_autoptr(GchatEndpointKey) server = NULL;
  g_autoptr(GchatEndpointKey) stranger = NULL;
  g_autoptr(GBytes) datagram = NULL;
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GBytes) peer = seal_text (pair->alice, "not an endpoint");
  g_autoptr(GError) error = NULL;
  GchatDatagramHeader header;
  gsize len;
  const guint8 *bytes;
  guint64 seq = 99;

  gchat_random_bytes (key, sizeof key);
  gchat_random_bytes (other, sizeof other);
  client = gchat_endpoint_key_new_for_session (key, 7, GCHAT_ENDPOINT_SIDE_CLIENT, &error);
  g_assert_no_error (error);
  server = gchat_endpoint_key_new_for_session (key, 7, GCHAT_ENDPOINT_SIDE_SERVER, NULL);
  stranger = gchat_endpoint_key_new_for_session (other, 7, GCHAT_ENDPOINT_SIDE_SERVER, NULL);

  datagram = gchat_endpoint_key_seal (client, (const guint8 *) "body", 4, &error);
  g_assert_no_error (error);
  bytes = g_bytes_get_data (datagram, &len);
  g_assert_true (gchat_datagram_peek_header (bytes, len, &header, NULL));
  g_assert_cmpint (header.kind, ==, GCHAT_DATAGRAM_KIND_ENDPOINT);
  g_assert_cmpuint (header.key_id, ==, 7);
  g_assert_cmpuint (header.direction, ==, 0);

  body = gchat_endpoint_key_open (stranger, bytes, len, NULL, &error);
  g_assert_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_DECRYPT);
  g_clear_error (&error);
  body = gchat_endpoint_key_open (server, bytes, len, &seq, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (g_bytes_get_data (body, NULL), g_bytes_get_size (body), "body", 4);
  g_assert_cmpuint (seq, ==, 0);
  g_clear_pointer (&body, g_bytes_unref);
  body = gchat_endpoint_key_open (server, bytes, len, NULL, &error);
  g_assert_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_REPLAY);
  g_clear_error (&error);

  /* Neither kind of datagram is taken for the other. */
  body = gchat_endpoint_key_open (server, g_bytes_get_data (peer, NULL), g_bytes_get_size (peer),
                                  NULL, &error);
  g_assert_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_UNKNOWN_KEY);
  assert_refused (pair->bob, datagram, GCHAT_DATAGRAM_ERROR_UNKNOWN_KEY);
}

static void
test_endpoint_every_bit (void)
{
  guint8 key[GCHAT_KEY_SIZE];
  g_autoptr(GchatEndpointKey) client = NULL;
  g_autoptr(GchatEndpointKey) server = NULL;
  g_autoptr(GBytes) datagram = NULL;
  g_autoptr(GBytes) body = NULL;
  gsize len;
  const guint8 *bytes;

  gchat_random_bytes (key, sizeof key);
  client = gchat_endpoint_key_new_for_session (key, 7, GCHAT_ENDPOINT_SIDE_CLIENT, NULL);
  server = gchat_endpoint_key_new_for_session (key, 7, GCHAT_ENDPOINT_SIDE_SERVER, NULL);
  datagram = gchat_endpoint_key_seal (client, (const guint8 *) "x", 1, NULL);
  bytes = g_bytes_get_data (datagram, &len);
  for (gsize bit = 0; bit < len * 8; bit++)
    {
      g_autofree guint8 *copy = g_memdup2 (bytes, len);
      g_autoptr(GError) error = NULL;
      g_autoptr(GBytes) opened = NULL;

      copy[bit / 8] ^= (guint8) (1u << (bit % 8));
      opened = gchat_endpoint_key_open (server, copy, len, NULL, &error);
      g_assert_null (opened);
      g_assert_true (error != NULL && error->domain == GCHAT_DATAGRAM_ERROR);
    }
  body = gchat_endpoint_key_open (server, bytes, len, NULL, NULL);
  g_assert_nonnull (body);
}

/* ---- Bodies ---- */

static void
put_be (guint8  *p,
        guint64  value,
        guint    size)
{
  for (guint i = 0; i < size; i++)
    p[i] = (guint8) (value >> (8 * (size - 1 - i)));
}

static void
assert_data_refused (const guint8 *bytes,
                     gsize         len,
                     int           code)
{
  g_autoptr(GError) error = NULL;
  GchatDatagramData out;

  g_assert_false (gchat_datagram_parse_data (bytes, len, &out, &error));
  g_assert_error (error, GCHAT_DATAGRAM_ERROR, code);
}

/* msg_id:u64 || floor:u64 || fragment:u16 || fragments:u16 || text, byte by byte. */
static void
test_data_body (void)
{
  guint8 text[GCHAT_DATAGRAM_MAX_BODY] = { 0 };
  const guint16 bad[][2] = { { 0, 0 }, { 0, 65 }, { 1, 1 }, { 64, 64 }, { 5, 3 }, { 0, 65535 } };
  const guint8 expected[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfc,
                              0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0,
                              0x00, 0x02, 0x00, 0x03, 'a', 'b', 'c' };
  g_autoptr(GBytes) body = gchat_datagram_build_data (G_MAXUINT64 - 3, G_MAXUINT64 - 15, 2, 3,
                                                      (const guint8 *) "abc", 3, NULL);
  g_autoptr(GBytes) largest = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree guint8 *copy = NULL;
  GchatDatagramData out;
  gsize len;
  const guint8 *bytes = g_bytes_get_data (body, &len);

  g_assert_cmpmem (bytes, len, expected, sizeof expected);
  g_assert_true (gchat_datagram_parse_data (bytes, len, &out, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (out.msg_id, ==, G_MAXUINT64 - 3);
  g_assert_cmpuint (out.floor, ==, G_MAXUINT64 - 15);
  g_assert_cmpuint (out.fragment, ==, 2);
  g_assert_cmpuint (out.fragments, ==, 3);
  g_assert_cmpmem (out.text, out.text_len, "abc", 3);
  /* Every truncation of the header is refused; an exact-size copy lets ASan see overreads. */
  for (gsize cut = 0; cut < GCHAT_DATAGRAM_DATA_HEADER_SIZE; cut++)
    {
      g_autofree guint8 *cut_copy = g_memdup2 (bytes, MAX (cut, 1));

      assert_data_refused (cut_copy, cut, GCHAT_DATAGRAM_ERROR_MALFORMED);
    }
  /* An empty text is a whole body. */
  g_assert_true (gchat_datagram_parse_data (bytes, GCHAT_DATAGRAM_DATA_HEADER_SIZE, &out, NULL));
  g_assert_cmpuint (out.text_len, ==, 0);

  /* The floor may equal the id but never pass it. */
  copy = g_memdup2 (bytes, len);
  put_be (copy + 8, G_MAXUINT64 - 3, 8);
  g_assert_true (gchat_datagram_parse_data (copy, len, &out, NULL));
  put_be (copy + 8, G_MAXUINT64 - 2, 8);
  assert_data_refused (copy, len, GCHAT_DATAGRAM_ERROR_MALFORMED);
  g_assert_null (gchat_datagram_build_data (5, 6, 0, 1, NULL, 0, &error));
  g_assert_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_MALFORMED);
  g_clear_error (&error);

  largest = gchat_datagram_build_data (1, 1, 0, 64, text, GCHAT_DATAGRAM_MAX_FRAGMENT_TEXT,
                                       &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_bytes_get_size (largest), ==, GCHAT_DATAGRAM_MAX_BODY);
  g_assert_cmpuint (GCHAT_DATAGRAM_MAX_FRAGMENT_TEXT, ==, 1148);
  g_assert_null (gchat_datagram_build_data (1, 1, 0, 1, text, GCHAT_DATAGRAM_MAX_FRAGMENT_TEXT + 1,
                                            &error));
  g_assert_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_TOO_LARGE);
  g_clear_error (&error);
  assert_data_refused (text, GCHAT_DATAGRAM_MAX_BODY + 1, GCHAT_DATAGRAM_ERROR_MALFORMED);

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_assert_null (gchat_datagram_build_data (1, 1, bad[i][0], bad[i][1], NULL, 0, &error));
      g_assert_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_MALFORMED);
      g_clear_error (&error);
      memcpy (copy, bytes, len);
      put_be (copy + 16, bad[i][0], 2);
      put_be (copy + 18, bad[i][1], 2);
      assert_data_refused (copy, len, GCHAT_DATAGRAM_ERROR_MALFORMED);
    }
}

/* Message ids are epoch:u32 || number:u32. */
static void
test_msg_id (void)
{
  guint64 id = GCHAT_DATAGRAM_MSG_ID (0xdeadbeef, 7);

  g_assert_cmpuint (id, ==, G_GUINT64_CONSTANT (0xdeadbeef00000007));
  g_assert_cmpuint (GCHAT_DATAGRAM_MSG_EPOCH (id), ==, 0xdeadbeef);
  g_assert_cmpuint (GCHAT_DATAGRAM_MSG_NUMBER (id), ==, 7);
  g_assert_cmpuint (GCHAT_DATAGRAM_MSG_NUMBER (G_MAXUINT64), ==, G_MAXUINT32);
}

static void
test_ack_body (void)
{
  guint64 ids[GCHAT_DATAGRAM_MAX_ACK_IDS + 1];
  guint64 out[GCHAT_DATAGRAM_MAX_ACK_IDS];
  const guint counts[] = { 0, 1, 2, 63, 64 };
  g_autoptr(GError) error = NULL;
  guint8 too_many[1 + 8 * 65] = { 65 };
  guint count;

  for (guint i = 0; i < G_N_ELEMENTS (ids); i++)
    ids[i] = (guint64) g_test_rand_int () << 32 | (guint32) g_test_rand_int ();
  for (guint c = 0; c < G_N_ELEMENTS (counts); c++)
    {
      g_autoptr(GBytes) body = gchat_datagram_build_ack (ids, counts[c], &error);
      gsize len;
      const guint8 *bytes = g_bytes_get_data (body, &len);

      g_assert_no_error (error);
      g_assert_cmpuint (len, ==, 1 + 8 * counts[c]);
      g_assert_true (gchat_datagram_parse_ack (bytes, len, out, &count, &error));
      g_assert_no_error (error);
      g_assert_cmpmem (out, count * sizeof (guint64), ids, counts[c] * sizeof (guint64));
      /* Every other length disagrees with the count. */
      for (gsize l = 0; l <= len + 8; l++)
        if (l != len)
          {
            g_autofree guint8 *copy = g_malloc0 (l + 1);

            memcpy (copy, bytes, MIN (l, len));
            g_assert_false (gchat_datagram_parse_ack (copy, l, out, &count, &error));
            g_assert_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_MALFORMED);
            g_clear_error (&error);
          }
    }
  g_assert_null (gchat_datagram_build_ack (ids, 65, &error));
  g_assert_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_TOO_LARGE);
  g_clear_error (&error);
  g_assert_false (gchat_datagram_parse_ack (too_many, sizeof too_many, out, &count, &error));
  g_assert_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_MALFORMED);
}

static void
endpoint_from_string (const char            *ip,
                      guint16                port,
                      GchatDatagramEndpoint *endpoint)
{
  g_autoptr(GInetAddress) inet = g_inet_address_new_from_string (ip);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new (inet, port);
  g_autoptr(GError) error = NULL;

  g_assert_true (gchat_datagram_endpoint_from_address (G_INET_SOCKET_ADDRESS (address), endpoint,
                                                       &error));
  g_assert_no_error (error);
}

static void
assert_endpoint_is (const GchatDatagramEndpoint *endpoint,
                    const char                  *ip,
                    guint16                      port)
{
  g_autoptr(GSocketAddress) address = gchat_datagram_endpoint_to_address (endpoint);
  GInetAddress *inet = g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (address));
  g_autofree char *text = g_inet_address_to_string (inet);

  g_assert_cmpstr (text, ==, ip);
  g_assert_cmpuint (g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (address)), ==, port);
}

static void
assert_endpoint_body_refused (const guint8 *data,
                              gsize         len)
{
  GchatDatagramEndpoint out[GCHAT_DATAGRAM_MAX_ENDPOINTS];
  g_autofree char *user = NULL;
  guint n = 0;
  g_autoptr(GError) error = NULL;

  g_assert_false (gchat_datagram_parse_endpoint (data, len, &user, out, &n, &error));
  g_assert_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_MALFORMED);
  g_assert_null (user);
}

static void
test_endpoint_body (void)
{
  const char *ips[] = { "192.0.2.1", "2001:db8::1", "10.0.0.7", "fe80::1234:5678:9abc:def0",
                        "255.255.255.255", "::", "198.51.100.200", "2001:db8:ffff::ffff" };
  GchatDatagramEndpoint in[GCHAT_DATAGRAM_MAX_ENDPOINTS + 1], out[GCHAT_DATAGRAM_MAX_ENDPOINTS];
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *user = NULL;
  guint n = 0;
  gsize len;
  const guint8 *bytes;

  for (guint i = 0; i < G_N_ELEMENTS (ips); i++)
    endpoint_from_string (ips[i], 1000 + i, &in[i]);
  in[8] = in[0];
  body = gchat_datagram_build_endpoint ("b\xc3\xa9la", in, 8, &error);
  g_assert_no_error (error);
  bytes = g_bytes_get_data (body, &len);
  g_assert_cmpuint (len, ==, 1 + 5 + 1 + 4 * (1 + 4 + 2) + 4 * (1 + 16 + 2));
  g_assert_true (gchat_datagram_parse_endpoint (bytes, len, &user, out, &n, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (user, ==, "b\xc3\xa9la");
  g_assert_cmpuint (n, ==, 8);
  for (guint i = 0; i < n; i++)
    {
      g_assert_cmpmem (&out[i], sizeof out[i], &in[i], sizeof in[i]);
      assert_endpoint_is (&out[i], ips[i], 1000 + i);
    }
  for (gsize cut = 0; cut < len; cut++)
    assert_endpoint_body_refused (bytes, cut);

  g_assert_null (gchat_datagram_build_endpoint ("bob", in, 9, &error));
  g_assert_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_TOO_LARGE);
}

static void
test_endpoint_body_bad (void)
{
  /* Each is a whole body but for one fault. */
  static const struct { const char *bytes; gsize len; } bad[] = {
    { "\x00\x00", 2 },                                         /* empty name */
    { "\x03" "bob" "\x09", 5 },                                /* too many endpoints */
    { "\x03" "bob" "\x01\x05\x01\x02\x03\x04\x00\x01", 12 },   /* family 5 */
    { "\x03" "bob" "\x01\x04\x01\x02\x03\x04\x00\x00", 12 },   /* port 0 */
    { "\x03" "bob" "\x00\x00", 6 },                            /* a byte after the end */
    { "\x03" "b\x00" "b\x00", 6 },                             /* NUL in the name */
    { "\x03" "b\xff" "b\x00", 6 },                             /* not UTF-8 */
    { "\x21" "0123456789abcdef0123456789abcdefX\x00", 35 },    /* name of 33 bytes */
  };
  GchatDatagramEndpoint endpoint = { 5, { 0 }, 1 };
  g_autoptr(GError) error = NULL;
  g_autoptr(GInetAddress) inet = g_inet_address_new_from_string ("::ffff:192.0.2.9");
  g_autoptr(GSocketAddress) mapped = g_inet_socket_address_new (inet, 0);

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    assert_endpoint_body_refused ((const guint8 *) bad[i].bytes, bad[i].len);

  g_assert_null (gchat_datagram_build_endpoint ("bob", &endpoint, 1, &error));
  g_assert_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_MALFORMED);
  g_clear_error (&error);
  g_assert_null (gchat_datagram_build_endpoint ("", NULL, 0, &error));
  g_assert_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_INVALID_NAME);
  g_clear_error (&error);

  /* An IPv4 peer seen through a dual-stack socket is an IPv4 endpoint; port 0 is none. */
  g_assert_false (gchat_datagram_endpoint_from_address (G_INET_SOCKET_ADDRESS (mapped), &endpoint,
                                                        &error));
  g_assert_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_MALFORMED);
  g_assert_cmpuint (endpoint.family, ==, 4);
  g_assert_cmpmem (endpoint.address, 4, "\xc0\x00\x02\x09", 4);
}

/* ---- Fragments ---- */

/* @len bytes of valid UTF-8 mixing one- to four-byte characters. */
static char *
make_text (gsize len)
{
  static const char *chars[] = { "a", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", " " };
  GString *text = g_string_sized_new (len);

  while (text->len < len)
    {
      const char *c = chars[g_test_rand_int_range (0, G_N_ELEMENTS (chars))];

      if (text->len + strlen (c) <= len)
        g_string_append (text, c);
      else
        g_string_append_c (text, 'x');
    }
  return g_string_free (text, FALSE);
}

/* Adds every body of @bodies, shuffled and each twice, and returns the joined text. */
static GBytes *
reassemble (GPtrArray *bodies,
            guint64    msg_id)
{
  g_autoptr(GchatDatagramReassembler) reassembler = gchat_datagram_reassembler_new (msg_id);
  g_autoptr(GPtrArray) order = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;
  GBytes *text;

  for (guint copy = 0; copy < 2; copy++)
    for (guint i = 0; i < bodies->len; i++)
      g_ptr_array_add (order, bodies->pdata[i]);
  shuffle (order);
  for (guint i = 0; i < order->len; i++)
    {
      GchatDatagramData fragment;
      gsize len;
      const guint8 *bytes = g_bytes_get_data (order->pdata[i], &len);

      g_assert_true (gchat_datagram_parse_data (bytes, len, &fragment, &error));
      g_assert_no_error (error);
      g_assert_true (gchat_datagram_reassembler_add (reassembler, &fragment, &error));
      g_assert_no_error (error);
    }
  g_assert_true (gchat_datagram_reassembler_is_complete (reassembler));
  text = gchat_datagram_reassembler_finish (reassembler, &error);
  g_assert_no_error (error);
  return text;
}

static void
test_split_reassemble (void)
{
  const gsize sizes[] = { 0, 1, 1147, 1148, 1149, 1168, 1169, 5000, 65535, 65536 };

  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      g_autofree char *text = make_text (sizes[i]);
      g_autoptr(GError) error = NULL;
      g_autoptr(GPtrArray) bodies = gchat_datagram_split_text (i, i, text, sizes[i],
                                                               GCHAT_DATAGRAM_MAX_BODY, &error);
      g_autoptr(GBytes) joined = NULL;

      g_assert_no_error (error);
      g_assert_cmpuint (bodies->len, ==, sizes[i] == 0 ? 1 : (sizes[i] + 1147) / 1148);
      for (guint b = 0; b < bodies->len; b++)
        g_assert_cmpuint (g_bytes_get_size (bodies->pdata[b]), <=, GCHAT_DATAGRAM_MAX_BODY);
      joined = reassemble (bodies, i);
      g_assert_cmpmem (g_bytes_get_data (joined, NULL), g_bytes_get_size (joined), text, sizes[i]);
    }
}

static void
test_split_refused (void)
{
  g_autofree char *text = make_text (GCHAT_DATAGRAM_MAX_TEXT + 1);
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) bodies = NULL;

  bodies = gchat_datagram_split_text (1, 1, text, GCHAT_DATAGRAM_MAX_TEXT + 1,
                                      GCHAT_DATAGRAM_MAX_BODY, &error);
  g_assert_null (bodies);
  g_assert_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_TOO_LARGE);
  g_clear_error (&error);
  /* Small bodies would need more than 64 fragments. */
  bodies = gchat_datagram_split_text (1, 1, text, 64 * 100 + 1, 120, &error);
  g_assert_null (bodies);
  g_assert_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_TOO_LARGE);
  g_clear_error (&error);
  g_clear_pointer (&text, g_free);
  text = make_text (64 * 100);
  bodies = gchat_datagram_split_text (1, 1, text, 64 * 100, 120, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (bodies->len, ==, 64);
  g_clear_pointer (&bodies, g_ptr_array_unref);
  bodies = gchat_datagram_split_text (1, 1, "a\xff", 2, GCHAT_DATAGRAM_MAX_BODY, &error);
  g_assert_null (bodies);
  g_assert_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_MALFORMED);
  g_clear_error (&error);
  /* A floor past the message it travels with. */
  bodies = gchat_datagram_split_text (1, 2, "a", 1, GCHAT_DATAGRAM_MAX_BODY, &error);
  g_assert_null (bodies);
  g_assert_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_MALFORMED);
}

/* The whole path: a long text cut, sealed, delivered out of order, opened and joined. */
static void
test_message_path (Pair          *pair,
                   gconstpointer  data)
{
  g_autofree char *text = make_text (GCHAT_DATAGRAM_MAX_TEXT);
  g_autoptr(GPtrArray) bodies = gchat_datagram_split_text (77, 70, text, GCHAT_DATAGRAM_MAX_TEXT,
                                                           GCHAT_DATAGRAM_MAX_BODY, NULL);
  g_autoptr(GPtrArray) datagrams = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr(GPtrArray) opened = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr(GBytes) joined = NULL;

  for (guint i = 0; i < bodies->len; i++)
    g_ptr_array_add (datagrams, seal (pair->bob, GCHAT_DATAGRAM_KIND_DATA,
                                      g_bytes_get_data (bodies->pdata[i], NULL),
                                      g_bytes_get_size (bodies->pdata[i])));
  shuffle (datagrams);
  for (guint i = 0; i < datagrams->len; i++)
    {
      gsize len;
      const guint8 *bytes = g_bytes_get_data (datagrams->pdata[i], &len);
      GBytes *body = gchat_peer_keys_open (pair->alice, bytes, len, NULL, NULL, NULL);

      g_assert_nonnull (body);
      g_ptr_array_add (opened, body);
    }
  joined = reassemble (opened, 77);
  g_assert_cmpmem (g_bytes_get_data (joined, NULL), g_bytes_get_size (joined), text,
                   GCHAT_DATAGRAM_MAX_TEXT);
}

static void
assert_add_refused (GchatDatagramReassembler *reassembler,
                    GchatDatagramData        *fragment,
                    int                       code)
{
  g_autoptr(GError) error = NULL;

  g_assert_false (gchat_datagram_reassembler_add (reassembler, fragment, &error));
  g_assert_error (error, GCHAT_DATAGRAM_ERROR, code);
}

static void
test_reassembler_refuses (void)
{
  static guint8 piece[GCHAT_DATAGRAM_MAX_FRAGMENT_TEXT];
  g_autoptr(GchatDatagramReassembler) r = gchat_datagram_reassembler_new (5);
  GchatDatagramData f = { 5, 5, 0, 64, piece, sizeof piece };
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) text = NULL;
  guint i;

  memset (piece, 'a', sizeof piece);
  /* 57 full fragments of 1148 bytes fit in 65536 bytes; a 58th full one does not. */
  for (i = 0; i < 57; i++)
    {
      f.fragment = i;
      g_assert_true (gchat_datagram_reassembler_add (r, &f, &error));
      g_assert_no_error (error);
    }
  f.fragment = 57;
  assert_add_refused (r, &f, GCHAT_DATAGRAM_ERROR_TOO_LARGE);
  /* A duplicate is ignored, even with other text; the first copy counts. */
  f.fragment = 3;
  f.text_len = 1;
  g_assert_true (gchat_datagram_reassembler_add (r, &f, &error));
  f.fragments = 63;
  assert_add_refused (r, &f, GCHAT_DATAGRAM_ERROR_INCONSISTENT);
  f.fragments = 64;
  f.msg_id = 6;
  assert_add_refused (r, &f, GCHAT_DATAGRAM_ERROR_INCONSISTENT);
  f.msg_id = 5;
  f.fragment = 64;
  assert_add_refused (r, &f, GCHAT_DATAGRAM_ERROR_MALFORMED);
  /* The rest are short enough: 65536 - 57 × 1148 = 100 bytes for 7 fragments. */
  for (i = 57; i < 64; i++)
    {
      g_assert_false (gchat_datagram_reassembler_is_complete (r));
      f.fragment = i;
      f.text_len = i < 63 ? 14 : 16;
      g_assert_true (gchat_datagram_reassembler_add (r, &f, &error));
      g_assert_no_error (error);
    }
  g_assert_true (gchat_datagram_reassembler_is_complete (r));
  text = gchat_datagram_reassembler_finish (r, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_bytes_get_size (text), ==, GCHAT_DATAGRAM_MAX_TEXT);
}

static void
test_reassembler_not_utf8 (void)
{
  g_autoptr(GchatDatagramReassembler) r = gchat_datagram_reassembler_new (1);
  /* A character cut between two fragments is fine; a broken one is not. */
  GchatDatagramData first = { 1, 1, 0, 2, (const guint8 *) "\xc3", 1 };
  GchatDatagramData second = { 1, 1, 1, 2, (const guint8 *) "\xa9\xff", 2 };
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) text = NULL;

  g_assert_true (gchat_datagram_reassembler_add (r, &second, NULL));
  g_assert_true (gchat_datagram_reassembler_add (r, &first, NULL));
  text = gchat_datagram_reassembler_finish (r, &error);
  g_assert_null (text);
  g_assert_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_MALFORMED);
}

/* ---- Random mutations ---- */

static void
mutate (GByteArray *bytes)
{
  guint n = g_test_rand_int_range (1, 5);

  for (guint i = 0; i < n; i++)
    {
      guint op = g_test_rand_int_range (0, 4);
      guint pos = bytes->len > 0 ? g_test_rand_int_range (0, bytes->len) : 0;
      guint8 byte = g_test_rand_int_range (0, 256);

      if (op == 0 && bytes->len > 0)
        bytes->data[pos] ^= (guint8) (1u << g_test_rand_int_range (0, 8));
      else if (op == 1 && bytes->len > 0)
        bytes->data[pos] = byte;
      else if (op == 2)
        g_byte_array_set_size (bytes, pos);
      else
        g_byte_array_append (bytes, &byte, 1);
    }
}

/* A value or a GError of our domain, never both and never neither. */
#define ASSERT_ONE_OF(ok, error)                                                     \
  G_STMT_START {                                                                     \
    g_assert_true ((ok) != ((error) != NULL));                                       \
    if ((error) != NULL)                                                             \
      g_assert_true ((error)->domain == GCHAT_DATAGRAM_ERROR);                       \
    g_clear_error (&(error));                                                        \
  } G_STMT_END

static void
fuzz_one (Pair             *pair,
          GchatEndpointKey *endpoint_key,
          const guint8     *data,
          gsize             len)
{
  g_autoptr(GchatDatagramReassembler) r = gchat_datagram_reassembler_new (g_test_rand_int ());
  GError *error = NULL;
  GchatDatagramHeader header;
  GchatDatagramData fragment;
  GchatDatagramEndpoint endpoints[GCHAT_DATAGRAM_MAX_ENDPOINTS];
  guint64 ids[GCHAT_DATAGRAM_MAX_ACK_IDS];
  guint n;
  char *user = NULL;
  GBytes *body;
  gboolean ok;

  ok = gchat_datagram_peek_header (data, len, &header, &error);
  ASSERT_ONE_OF (ok, error);
  body = gchat_peer_keys_open (pair->bob, data, len, NULL, NULL, &error);
  ASSERT_ONE_OF (body != NULL, error);
  g_clear_pointer (&body, g_bytes_unref);
  body = gchat_endpoint_key_open (endpoint_key, data, len, NULL, &error);
  ASSERT_ONE_OF (body != NULL, error);
  g_clear_pointer (&body, g_bytes_unref);
  ok = gchat_datagram_parse_ack (data, len, ids, &n, &error);
  ASSERT_ONE_OF (ok, error);
  ok = gchat_datagram_parse_endpoint (data, len, &user, endpoints, &n, &error);
  ASSERT_ONE_OF (ok, error);
  g_clear_pointer (&user, g_free);
  ok = gchat_datagram_parse_data (data, len, &fragment, &error);
  ASSERT_ONE_OF (ok, error);
  if (ok)
    {
      fragment.msg_id = g_test_rand_bit () ? fragment.msg_id : 1;
      ok = gchat_datagram_reassembler_add (r, &fragment, &error);
      ASSERT_ONE_OF (ok, error);
      if (gchat_datagram_reassembler_is_complete (r))
        {
          body = gchat_datagram_reassembler_finish (r, &error);
          ASSERT_ONE_OF (body != NULL, error);
          g_clear_pointer (&body, g_bytes_unref);
        }
    }
}

static void
test_fuzz (Pair          *pair,
           gconstpointer  data)
{
  guint8 key[GCHAT_KEY_SIZE];
  g_autoptr(GchatEndpointKey) endpoint_key = NULL;
  g_autoptr(GPtrArray) seeds = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  GchatDatagramEndpoint endpoints[2];
  guint64 ids[3] = { 1, 2, 3 };
  guint iterations = g_test_slow () ? 100000 : 4000;

  gchat_random_bytes (key, sizeof key);
  endpoint_key = gchat_endpoint_key_new_for_session (key, 7, GCHAT_ENDPOINT_SIDE_CLIENT, NULL);
  endpoint_from_string ("192.0.2.1", 5000, &endpoints[0]);
  endpoint_from_string ("2001:db8::2", 5001, &endpoints[1]);
  g_ptr_array_add (seeds,
                   gchat_datagram_build_data (1, 1, 0, 1, (const guint8 *) "hello", 5, NULL));
  g_ptr_array_add (seeds, gchat_datagram_build_data (1, 1, 1, 2, (const guint8 *) "\xc3", 1, NULL));
  g_ptr_array_add (seeds, gchat_datagram_build_ack (ids, 3, NULL));
  g_ptr_array_add (seeds, gchat_datagram_build_endpoint ("alice", endpoints, 2, NULL));
  g_ptr_array_add (seeds, seal_text (pair->alice, "a datagram to bob"));
  g_ptr_array_add (seeds, seal (pair->alice, GCHAT_DATAGRAM_KIND_HELLO, NULL, 0));
  g_ptr_array_add (seeds, gchat_endpoint_key_seal (endpoint_key, (const guint8 *) "x", 1, NULL));

  for (guint i = 0; i < iterations; i++)
    {
      GBytes *seed = seeds->pdata[g_test_rand_int_range (0, seeds->len)];
      g_autoptr(GByteArray) bytes = g_byte_array_new ();
      g_autofree guint8 *exact = NULL;

      g_byte_array_append (bytes, g_bytes_get_data (seed, NULL), g_bytes_get_size (seed));
      if (i % 10 != 0)
        mutate (bytes);
      /* An exact-size copy, so that AddressSanitizer sees a read one byte too far. */
      exact = g_malloc (MAX (bytes->len, 1));
      if (bytes->len > 0)
        memcpy (exact, bytes->data, bytes->len);
      fuzz_one (pair, endpoint_key, exact, bytes->len);
    }
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_assert_true (gchat_crypto_init (NULL));

#define ADD_PAIR_TEST(path, func) \
  g_test_add (path, Pair, NULL, pair_setup, func, pair_teardown)
  ADD_PAIR_TEST ("/datagram/round-trip", test_round_trip);
  ADD_PAIR_TEST ("/datagram/largest", test_largest);
  g_test_add_func ("/datagram/derivation", test_derivation);
  g_test_add_func ("/datagram/names", test_names);
  ADD_PAIR_TEST ("/datagram/reflected", test_reflected);
  ADD_PAIR_TEST ("/datagram/other-pair", test_other_pair);
  ADD_PAIR_TEST ("/datagram/replayed", test_replayed);
  ADD_PAIR_TEST ("/datagram/window", test_window);
  ADD_PAIR_TEST ("/datagram/window-jumps", test_window_jumps);
  ADD_PAIR_TEST ("/datagram/window-shuffled", test_window_shuffled);
  ADD_PAIR_TEST ("/datagram/every-bit", test_every_bit);
  ADD_PAIR_TEST ("/datagram/malformed", test_malformed);
  ADD_PAIR_TEST ("/datagram/forged-seq", test_forged_seq);
  ADD_PAIR_TEST ("/datagram/endpoint-key", test_endpoint_key);
  g_test_add_func ("/datagram/endpoint-every-bit", test_endpoint_every_bit);
  g_test_add_func ("/datagram/data-body", test_data_body);
  g_test_add_func ("/datagram/msg-id", test_msg_id);
  g_test_add_func ("/datagram/ack-body", test_ack_body);
  g_test_add_func ("/datagram/endpoint-body", test_endpoint_body);
  g_test_add_func ("/datagram/endpoint-body-bad", test_endpoint_body_bad);
  g_test_add_func ("/datagram/split-reassemble", test_split_reassemble);
  g_test_add_func ("/datagram/split-refused", test_split_refused);
  ADD_PAIR_TEST ("/datagram/message-path", test_message_path);
  g_test_add_func ("/datagram/reassembler-refuses", test_reassembler_refuses);
  g_test_add_func ("/datagram/reassembler-not-utf8", test_reassembler_not_utf8);
  ADD_PAIR_TEST ("/datagram/fuzz", test_fuzz);
  return g_test_run ();
}
