/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Tests of the sealed frame channel: round trips and every way a frame stream can be altered. */

#include <string.h>

#include "gchat-channel.h"
#include "gchat-crypto.h"
#include "gchat-frame.h"

typedef struct
{
  GchatChannel *a; /* sends with key 1 */
  GchatChannel *b; /* sends with key 2 */
} Pair;

static void
pair_setup (Pair          *pair,
            gconstpointer  data)
{
  guint8 k1[GCHAT_KEY_SIZE], k2[GCHAT_KEY_SIZE];
  g_autoptr(GError) error = NULL;

  gchat_random_bytes (k1, sizeof k1);
  gchat_random_bytes (k2, sizeof k2);
  pair->a = gchat_channel_new (k1, k2, &error);
  g_assert_no_error (error);
  pair->b = gchat_channel_new (k2, k1, &error);
  g_assert_no_error (error);
}

static void
pair_teardown (Pair          *pair,
               gconstpointer  data)
{
  g_clear_pointer (&pair->a, gchat_channel_free);
  g_clear_pointer (&pair->b, gchat_channel_free);
}

/* The frame payload, as the frame decoder would hand it over. */
static GBytes *
payload_of (GBytes *frame)
{
  return g_bytes_new_from_bytes (frame, GCHAT_FRAME_HEADER_SIZE,
                                 g_bytes_get_size (frame) - GCHAT_FRAME_HEADER_SIZE);
}

static GBytes *
seal_text (GchatChannel *channel,
           const char   *text)
{
  g_autoptr(GError) error = NULL;
  GBytes *frame = gchat_channel_seal (channel, (const guint8 *) text, strlen (text), &error);

  g_assert_no_error (error);
  g_assert_nonnull (frame);
  return frame;
}

static void
assert_opens_to (GchatChannel *channel,
                 GBytes       *frame,
                 const char   *text)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) payload = payload_of (frame);
  g_autoptr(GBytes) plain = gchat_channel_open (channel, payload, &error);

  g_assert_no_error (error);
  g_assert_cmpmem (g_bytes_get_data (plain, NULL), g_bytes_get_size (plain), text, strlen (text));
}

static void
assert_refused (GchatChannel *channel,
                GBytes       *payload,
                int           code)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) plain = gchat_channel_open (channel, payload, &error);

  g_assert_null (plain);
  g_assert_error (error, GCHAT_CHANNEL_ERROR, code);
}

static void
test_round_trip (Pair          *pair,
                 gconstpointer  data)
{
  for (guint i = 0; i < 100; i++)
    {
      g_autofree char *text = g_strdup_printf ("message %u", i);
      g_autoptr(GBytes) there = seal_text (pair->a, text);
      g_autoptr(GBytes) back = seal_text (pair->b, text);

      /* The header carries the payload size: plaintext plus the tag. */
      g_assert_cmpuint (g_bytes_get_size (there),
                        ==, GCHAT_FRAME_HEADER_SIZE + strlen (text) + GCHAT_CHANNEL_OVERHEAD);
      assert_opens_to (pair->b, there, text);
      assert_opens_to (pair->a, back, text);
    }
  g_assert_cmpuint (gchat_channel_get_sent (pair->a), ==, 100);
  g_assert_cmpuint (gchat_channel_get_received (pair->a), ==, 100);
}

static void
test_empty_and_largest (Pair          *pair,
                        gconstpointer  data)
{
  gsize largest = GCHAT_FRAME_MAX_PAYLOAD - GCHAT_CHANNEL_OVERHEAD;
  g_autofree guint8 *big = g_malloc0 (largest + 1);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) empty = gchat_channel_seal (pair->a, NULL, 0, &error);
  g_autoptr(GBytes) frame = NULL;
  g_autoptr(GBytes) too_big = NULL;

  g_assert_no_error (error);
  assert_opens_to (pair->b, empty, "");
  frame = gchat_channel_seal (pair->a, big, largest, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_bytes_get_size (frame), ==, GCHAT_FRAME_HEADER_SIZE + GCHAT_FRAME_MAX_PAYLOAD);
  too_big = gchat_channel_seal (pair->a, big, largest + 1, &error);
  g_assert_null (too_big);
  g_assert_error (error, GCHAT_CHANNEL_ERROR, GCHAT_CHANNEL_ERROR_TOO_LARGE);
}

static void
test_replayed (Pair          *pair,
               gconstpointer  data)
{
  g_autoptr(GBytes) frame = seal_text (pair->a, "pay bob 10");
  g_autoptr(GBytes) payload = payload_of (frame);

  assert_opens_to (pair->b, frame, "pay bob 10");
  assert_refused (pair->b, payload, GCHAT_CHANNEL_ERROR_DECRYPT);
}

static void
test_reordered (Pair          *pair,
                gconstpointer  data)
{
  G_GNUC_UNUSED g_autoptr(GBytes) first = seal_text (pair->a, "first");
  g_autoptr(GBytes) second = seal_text (pair->a, "second");
  g_autoptr(GBytes) payload = payload_of (second);

  assert_refused (pair->b, payload, GCHAT_CHANNEL_ERROR_DECRYPT);
}

static void
test_dropped (Pair          *pair,
              gconstpointer  data)
{
  g_autoptr(GBytes) first = seal_text (pair->a, "first");
  G_GNUC_UNUSED g_autoptr(GBytes) second = seal_text (pair->a, "second");
  g_autoptr(GBytes) third = seal_text (pair->a, "third");
  g_autoptr(GBytes) payload = payload_of (third);

  assert_opens_to (pair->b, first, "first");
  assert_refused (pair->b, payload, GCHAT_CHANNEL_ERROR_DECRYPT);
}

static void
test_truncated (Pair          *pair,
                gconstpointer  data)
{
  g_autoptr(GBytes) frame = seal_text (pair->a, "a message that loses its end");
  g_autoptr(GBytes) cut = g_bytes_new_from_bytes (frame, GCHAT_FRAME_HEADER_SIZE,
                                                  g_bytes_get_size (frame) -
                                                  GCHAT_FRAME_HEADER_SIZE - 1);

  assert_refused (pair->b, cut, GCHAT_CHANNEL_ERROR_DECRYPT);
}

static void
test_too_short (Pair          *pair,
                gconstpointer  data)
{
  g_autoptr(GBytes) tiny = g_bytes_new ("0123456789", 10);

  assert_refused (pair->b, tiny, GCHAT_CHANNEL_ERROR_DECRYPT);
}

/* Every single bit of a sealed frame matters. */
static void
test_modified (void)
{
  guint8 k1[GCHAT_KEY_SIZE], k2[GCHAT_KEY_SIZE];
  const char *text = "meet at noon";
  gsize len = strlen (text) + GCHAT_CHANNEL_OVERHEAD;

  gchat_random_bytes (k1, sizeof k1);
  gchat_random_bytes (k2, sizeof k2);
  for (gsize bit = 0; bit < len * 8; bit++)
    {
      g_autoptr(GchatChannel) a = gchat_channel_new (k1, k2, NULL);
      g_autoptr(GchatChannel) b = gchat_channel_new (k2, k1, NULL);
      g_autoptr(GBytes) frame = seal_text (a, text);
      g_autofree guint8 *copy = g_memdup2 (g_bytes_get_data (frame, NULL) + GCHAT_FRAME_HEADER_SIZE,
                                           len);
      g_autoptr(GBytes) payload = NULL;

      copy[bit / 8] ^= (guint8) (1u << (bit % 8));
      payload = g_bytes_new (copy, len);
      assert_refused (b, payload, GCHAT_CHANNEL_ERROR_DECRYPT);
    }
}

static void
test_wrong_direction (Pair          *pair,
                      gconstpointer  data)
{
  /* A frame reflected back to its sender must not open: each direction has its own key. */
  g_autoptr(GBytes) frame = seal_text (pair->a, "reflect me");
  g_autoptr(GBytes) payload = payload_of (frame);

  assert_refused (pair->a, payload, GCHAT_CHANNEL_ERROR_DECRYPT);
}

static void
test_closed_after_failure (Pair          *pair,
                           gconstpointer  data)
{
  g_autoptr(GBytes) good = seal_text (pair->a, "good");
  g_autoptr(GBytes) garbage = g_bytes_new ("garbage garbage garbage!", 24);
  g_autoptr(GBytes) payload = payload_of (good);

  assert_refused (pair->b, garbage, GCHAT_CHANNEL_ERROR_DECRYPT);
  /* Even the genuine next frame is refused: the stream is no longer trusted. */
  assert_refused (pair->b, payload, GCHAT_CHANNEL_ERROR_CLOSED);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_assert_true (gchat_crypto_init (NULL));

#define ADD_PAIR_TEST(path, func) \
  g_test_add (path, Pair, NULL, pair_setup, func, pair_teardown)
  ADD_PAIR_TEST ("/channel/round-trip", test_round_trip);
  ADD_PAIR_TEST ("/channel/empty-and-largest", test_empty_and_largest);
  ADD_PAIR_TEST ("/channel/replayed", test_replayed);
  ADD_PAIR_TEST ("/channel/reordered", test_reordered);
  ADD_PAIR_TEST ("/channel/dropped", test_dropped);
  ADD_PAIR_TEST ("/channel/truncated", test_truncated);
  ADD_PAIR_TEST ("/channel/too-short", test_too_short);
  ADD_PAIR_TEST ("/channel/wrong-direction", test_wrong_direction);
  ADD_PAIR_TEST ("/channel/closed-after-failure", test_closed_after_failure);
  g_test_add_func ("/channel/modified-every-bit", test_modified);
  return g_test_run ();
}
