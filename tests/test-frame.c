/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Tests of the frame encoder and of the incremental decoder, fed every way a socket could. */

#include "config.h"

#include <string.h>

#include "gchat-frame.h"

/* A stream of frames and the payloads it carries. */
typedef struct
{
  GByteArray *stream;
  GPtrArray  *payloads;
  gsize       limit;
} Stream;

static void
stream_free (Stream *stream)
{
  g_byte_array_unref (stream->stream);
  g_ptr_array_unref (stream->payloads);
  g_free (stream);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Stream, stream_free)

static GBytes *
pattern_bytes (gsize len,
               guint seed)
{
  guint8 *data = g_malloc (len);

  for (gsize i = 0; i < len; i++)
    data[i] = (guint8) (i * 31 + seed);
  return g_bytes_new_take (data, len);
}

static void
stream_append_frame (Stream *stream,
                     GBytes *payload)
{
  guint8 header[GCHAT_FRAME_HEADER_SIZE];
  gsize len;
  const guint8 *data = g_bytes_get_data (payload, &len);

  gchat_frame_write_header (header, (guint32) len);
  g_byte_array_append (stream->stream, header, sizeof header);
  g_byte_array_append (stream->stream, data, (guint) len);
  g_ptr_array_add (stream->payloads, g_bytes_ref (payload));
}

/* Frames of the given sizes; the last size is also the decoder's limit. */
static Stream *
stream_new (const gsize *sizes,
            guint        n_sizes)
{
  Stream *stream = g_new0 (Stream, 1);

  stream->stream = g_byte_array_new ();
  stream->payloads = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  stream->limit = sizes[n_sizes - 1];
  for (guint i = 0; i < n_sizes; i++)
    {
      g_autoptr(GBytes) payload = pattern_bytes (sizes[i], i);

      stream_append_frame (stream, payload);
    }
  return stream;
}

/* Pushes the stream cut at @cuts (increasing offsets), pops after every push, and checks that
 * exactly the stream's frames come out. */
static void
feed_stream (Stream      *stream,
             const gsize *cuts,
             gsize        n_cuts)
{
  g_autoptr(GchatFrameDecoder) decoder = gchat_frame_decoder_new (stream->limit);
  g_autoptr(GPtrArray) popped = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  gsize offset = 0;

  for (gsize i = 0; i <= n_cuts; i++)
    {
      gsize next = i < n_cuts ? cuts[i] : stream->stream->len;
      g_autoptr(GError) error = NULL;
      GBytes *frame;

      g_assert_true (gchat_frame_decoder_push (decoder, stream->stream->data + offset,
                                               next - offset, &error));
      g_assert_no_error (error);
      offset = next;
      while ((frame = gchat_frame_decoder_pop (decoder)) != NULL)
        g_ptr_array_add (popped, frame);
    }

  g_assert_cmpuint (popped->len, ==, stream->payloads->len);
  for (guint i = 0; i < popped->len; i++)
    g_assert_true (g_bytes_equal (popped->pdata[i], stream->payloads->pdata[i]));
  g_assert_cmpuint (gchat_frame_decoder_get_buffered (decoder), ==, 0);
}

static void
feed_split (Stream *stream,
            gsize   cut)
{
  feed_stream (stream, &cut, 1);
}

static void
test_encode_round_trip (void)
{
  static const guint8 payload[] = "hello, frame";
  g_autoptr(GchatFrameDecoder) decoder = gchat_frame_decoder_new (GCHAT_FRAME_MAX_PAYLOAD);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) frame = gchat_frame_encode (payload, sizeof payload, &error);
  g_autoptr(GBytes) popped = NULL;
  const guint8 *data;
  gsize len;

  g_assert_no_error (error);
  data = g_bytes_get_data (frame, &len);
  g_assert_cmpuint (len, ==, GCHAT_FRAME_HEADER_SIZE + sizeof payload);
  g_assert_cmpmem (data, 4, "\x00\x00\x00\x0d", 4);

  g_assert_null (gchat_frame_decoder_pop (decoder));
  g_assert_true (gchat_frame_decoder_push (decoder, data, len, &error));
  g_assert_cmpuint (gchat_frame_decoder_get_buffered (decoder), ==, len);
  popped = gchat_frame_decoder_pop (decoder);
  g_assert_nonnull (popped);
  g_assert_cmpmem (g_bytes_get_data (popped, NULL), g_bytes_get_size (popped), payload,
                   sizeof payload);
  g_assert_null (gchat_frame_decoder_pop (decoder));
  g_assert_cmpuint (gchat_frame_decoder_get_buffered (decoder), ==, 0);
}

static void
test_encode_limits (void)
{
  g_autofree guint8 *big = g_malloc0 (GCHAT_FRAME_MAX_PAYLOAD + 1);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) frame = NULL;
  guint8 header[GCHAT_FRAME_HEADER_SIZE];

  frame = gchat_frame_encode (big, 0, &error);
  g_assert_error (error, GCHAT_FRAME_ERROR, GCHAT_FRAME_ERROR_EMPTY);
  g_assert_null (frame);
  g_clear_error (&error);

  frame = gchat_frame_encode (big, GCHAT_FRAME_MAX_PAYLOAD + 1, &error);
  g_assert_error (error, GCHAT_FRAME_ERROR, GCHAT_FRAME_ERROR_TOO_LARGE);
  g_assert_null (frame);
  g_clear_error (&error);

  frame = gchat_frame_encode (big, GCHAT_FRAME_MAX_PAYLOAD, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_bytes_get_size (frame), ==,
                    GCHAT_FRAME_HEADER_SIZE + GCHAT_FRAME_MAX_PAYLOAD);

  gchat_frame_write_header (header, 0x01020304);
  g_assert_cmpmem (header, 4, "\x01\x02\x03\x04", 4);
  gchat_frame_write_header (header, G_MAXUINT32);
  g_assert_cmpmem (header, 4, "\xff\xff\xff\xff", 4);
}

/* A scaled-down stream of the same shape as the real one, small enough to cut everywhere. */
static void
test_every_split_small (void)
{
  static const gsize sizes[] = { 1, 100, 5000, 6000 };
  g_autoptr(Stream) stream = stream_new (sizes, G_N_ELEMENTS (sizes));

  for (gsize cut = 0; cut <= stream->stream->len; cut++)
    feed_split (stream, cut);
}

static const gsize real_sizes[] = { 1, 100, 70 * 1024, GCHAT_FRAME_MAX_PAYLOAD };

/* Every split of the full-size stream costs a few hundred gigabytes of copying, so the quick
 * run cuts at and around every frame boundary and at random places; `-m slow` cuts everywhere. */
static void
test_every_split_full (void)
{
  g_autoptr(Stream) stream = stream_new (real_sizes, G_N_ELEMENTS (real_sizes));
  gsize len = stream->stream->len;

  if (g_test_slow ())
    {
      for (gsize cut = 0; cut <= len; cut++)
        feed_split (stream, cut);
      return;
    }

  for (gsize boundary = 0;;)
    {
      const guint8 *header = stream->stream->data + boundary;

      for (gsize cut = MAX (boundary, 8) - 8; cut <= MIN (len, boundary + 12); cut++)
        feed_split (stream, cut);
      if (boundary == len)
        break;
      boundary += GCHAT_FRAME_HEADER_SIZE
                  + (((gsize) header[0] << 24) | ((gsize) header[1] << 16)
                     | ((gsize) header[2] << 8) | header[3]);
    }
  for (guint i = 0; i < 200; i++)
    feed_split (stream, (gsize) g_test_rand_int_range (0, (gint32) len + 1));
}

static void
test_byte_by_byte (void)
{
  g_autoptr(Stream) stream = stream_new (real_sizes, G_N_ELEMENTS (real_sizes));
  gsize len = stream->stream->len;
  g_autofree gsize *cuts = g_new (gsize, len);

  for (gsize i = 0; i < len - 1; i++)
    cuts[i] = i + 1;
  feed_stream (stream, cuts, len - 1);
}

static void
test_random_chunks (void)
{
  g_autoptr(Stream) stream = stream_new (real_sizes, G_N_ELEMENTS (real_sizes));
  gsize len = stream->stream->len;

  for (guint round = 0; round < 30; round++)
    {
      g_autoptr(GArray) cuts = g_array_new (FALSE, FALSE, sizeof (gsize));
      gint32 max_chunk = round % 3 == 0 ? 16 : round % 3 == 1 ? 4096 : 100000;
      gsize offset = 0;

      for (;;)
        {
          offset += (gsize) g_test_rand_int_range (1, max_chunk + 1);
          if (offset >= len)
            break;
          g_array_append_val (cuts, offset);
        }
      feed_stream (stream, (gsize *) (gpointer) cuts->data, cuts->len);
    }
}

/* Many small frames pushed at once and popped one by one, and the other way round. */
static void
test_many_small_frames (void)
{
  g_autoptr(GchatFrameDecoder) decoder = gchat_frame_decoder_new (64);
  g_autoptr(GByteArray) stream = g_byte_array_new ();
  g_autoptr(GError) error = NULL;
  guint n_popped = 0;
  GBytes *frame;

  for (guint i = 0; i < 20000; i++)
    {
      guint8 frame_bytes[GCHAT_FRAME_HEADER_SIZE + 3];

      gchat_frame_write_header (frame_bytes, 3);
      frame_bytes[4] = frame_bytes[5] = frame_bytes[6] = (guint8) i;
      g_byte_array_append (stream, frame_bytes, sizeof frame_bytes);
    }

  g_assert_true (gchat_frame_decoder_push (decoder, stream->data, stream->len, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (gchat_frame_decoder_get_buffered (decoder), ==, stream->len);
  while ((frame = gchat_frame_decoder_pop (decoder)) != NULL)
    {
      g_assert_cmpuint (g_bytes_get_size (frame), ==, 3);
      g_assert_cmpuint (((const guint8 *) g_bytes_get_data (frame, NULL))[0], ==,
                        (guint8) n_popped);
      n_popped++;
      /* Complete frames not popped yet count as buffered. */
      g_assert_cmpuint (gchat_frame_decoder_get_buffered (decoder), ==,
                        (20000 - n_popped) * (GCHAT_FRAME_HEADER_SIZE + 3));
      g_bytes_unref (frame);
    }
  g_assert_cmpuint (n_popped, ==, 20000);
}

static void
assert_failed_for_good (GchatFrameDecoder *decoder)
{
  static const guint8 good[] = { 0, 0, 0, 1, 'x' };
  g_autoptr(GError) error = NULL;

  g_assert_false (gchat_frame_decoder_push (decoder, good, sizeof good, &error));
  g_assert_error (error, GCHAT_FRAME_ERROR, GCHAT_FRAME_ERROR_FAILED);
  g_assert_null (gchat_frame_decoder_pop (decoder));
  g_assert_cmpuint (gchat_frame_decoder_get_buffered (decoder), ==, 0);
}

static void
test_empty_frame (void)
{
  static const guint8 stream[] = { 0, 0, 0, 1, 'a', 0, 0, 0, 0 };
  g_autoptr(GchatFrameDecoder) decoder = gchat_frame_decoder_new (1024);
  g_autoptr(GError) error = NULL;

  g_assert_false (gchat_frame_decoder_push (decoder, stream, sizeof stream, &error));
  g_assert_error (error, GCHAT_FRAME_ERROR, GCHAT_FRAME_ERROR_EMPTY);
  /* Failure is final: even the complete frame before the bad header is gone. */
  assert_failed_for_good (decoder);
  assert_failed_for_good (decoder);
}

static void
test_too_large_header_only (void)
{
  g_autoptr(GchatFrameDecoder) decoder = gchat_frame_decoder_new (1024);
  g_autoptr(GError) error = NULL;
  guint8 header[GCHAT_FRAME_HEADER_SIZE];

  gchat_frame_write_header (header, 1025);
  g_assert_true (gchat_frame_decoder_push (decoder, header, 3, &error));
  g_assert_cmpuint (gchat_frame_decoder_get_buffered (decoder), ==, 3);
  g_assert_false (gchat_frame_decoder_push (decoder, header + 3, 1, &error));
  g_assert_error (error, GCHAT_FRAME_ERROR, GCHAT_FRAME_ERROR_TOO_LARGE);
  g_assert_nonnull (strstr (error->message, "1025"));
  g_assert_nonnull (strstr (error->message, "1024"));
  g_assert_cmpuint (gchat_frame_decoder_get_buffered (decoder), ==, 0);
  assert_failed_for_good (decoder);
}

static void
test_huge_header (void)
{
  static const guint8 header[] = { 0xff, 0xff, 0xff, 0xff };
  g_autoptr(GchatFrameDecoder) decoder = gchat_frame_decoder_new (GCHAT_FRAME_MAX_PAYLOAD);
  g_autoptr(GError) error = NULL;

  g_assert_false (gchat_frame_decoder_push (decoder, header, sizeof header, &error));
  g_assert_error (error, GCHAT_FRAME_ERROR, GCHAT_FRAME_ERROR_TOO_LARGE);
  g_assert_nonnull (strstr (error->message, "4294967295"));
  assert_failed_for_good (decoder);
}

/* A header announcing the limit holds no more than what actually arrived. */
static void
test_no_allocation_ahead (void)
{
  g_autoptr(GchatFrameDecoder) decoder = gchat_frame_decoder_new (G_MAXUINT32);
  g_autoptr(GError) error = NULL;
  guint8 start[GCHAT_FRAME_HEADER_SIZE + 10] = { 0 };

  gchat_frame_write_header (start, G_MAXUINT32);
  g_assert_true (gchat_frame_decoder_push (decoder, start, sizeof start, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (gchat_frame_decoder_get_buffered (decoder), ==, sizeof start);
  g_assert_null (gchat_frame_decoder_pop (decoder));
}

/* The first bad header in one push is the one reported, whatever follows it. */
static void
test_first_bad_header_wins (void)
{
  static const guint8 stream[] = { 0, 0, 0, 2, 'a', 'b', 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff };
  g_autoptr(GchatFrameDecoder) decoder = gchat_frame_decoder_new (1024);
  g_autoptr(GError) error = NULL;

  g_assert_false (gchat_frame_decoder_push (decoder, stream, sizeof stream, &error));
  g_assert_error (error, GCHAT_FRAME_ERROR, GCHAT_FRAME_ERROR_EMPTY);
  assert_failed_for_good (decoder);
}

static void
push_frame (GchatFrameDecoder *decoder,
            gsize              len,
            gboolean           expect_ok)
{
  g_autoptr(GBytes) payload = pattern_bytes (len, 7);
  guint8 header[GCHAT_FRAME_HEADER_SIZE];
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) popped = NULL;

  gchat_frame_write_header (header, (guint32) len);
  if (!expect_ok)
    {
      g_assert_false (gchat_frame_decoder_push (decoder, header, sizeof header, &error));
      g_assert_error (error, GCHAT_FRAME_ERROR, GCHAT_FRAME_ERROR_TOO_LARGE);
      return;
    }
  g_assert_true (gchat_frame_decoder_push (decoder, header, sizeof header, &error));
  g_assert_true (gchat_frame_decoder_push (decoder, g_bytes_get_data (payload, NULL), len,
                                           &error));
  g_assert_no_error (error);
  popped = gchat_frame_decoder_pop (decoder);
  g_assert_true (g_bytes_equal (popped, payload));
}

static void
test_set_max_payload (void)
{
  g_autoptr(GchatFrameDecoder) decoder = NULL;
  g_autoptr(GchatFrameDecoder) lowered = gchat_frame_decoder_new (1024);
  g_autoptr(GError) error = NULL;
  guint8 header[GCHAT_FRAME_HEADER_SIZE];
  g_autoptr(GBytes) payload = pattern_bytes (1000, 1);
  g_autoptr(GBytes) popped = NULL;

  decoder = gchat_frame_decoder_new (GCHAT_FRAME_MAX_HANDSHAKE_PAYLOAD);
  g_assert_cmpuint (gchat_frame_decoder_get_max_payload (decoder), ==,
                    GCHAT_FRAME_MAX_HANDSHAKE_PAYLOAD);
  push_frame (decoder, GCHAT_FRAME_MAX_HANDSHAKE_PAYLOAD, TRUE);

  /* Raised once logged in. */
  gchat_frame_decoder_set_max_payload (decoder, GCHAT_FRAME_MAX_PAYLOAD);
  g_assert_cmpuint (gchat_frame_decoder_get_max_payload (decoder), ==, GCHAT_FRAME_MAX_PAYLOAD);
  push_frame (decoder, 100 * 1024, TRUE);
  push_frame (decoder, GCHAT_FRAME_MAX_PAYLOAD, TRUE);

  /* Lowered again. */
  gchat_frame_decoder_set_max_payload (decoder, 16);
  push_frame (decoder, 16, TRUE);
  push_frame (decoder, 17, FALSE);

  /* A header checked before the limit was lowered stays accepted. */
  gchat_frame_write_header (header, 1000);
  g_assert_true (gchat_frame_decoder_push (lowered, header, sizeof header, &error));
  gchat_frame_decoder_set_max_payload (lowered, 16);
  g_assert_true (gchat_frame_decoder_push (lowered, g_bytes_get_data (payload, NULL), 1000,
                                           &error));
  g_assert_no_error (error);
  popped = gchat_frame_decoder_pop (lowered);
  g_assert_true (g_bytes_equal (popped, payload));
  push_frame (lowered, 17, FALSE);
}

/* Random bytes in random chunks must give frames within the limit or an error, nothing else. */
static void
test_random_garbage (void)
{
  for (guint round = 0; round < 2000; round++)
    {
      gsize limit = (gsize) g_test_rand_int_range (1, 5000);
      g_autoptr(GchatFrameDecoder) decoder = gchat_frame_decoder_new (limit);
      gsize len = (gsize) g_test_rand_int_range (0, 3000);
      g_autofree guint8 *data = g_malloc (len + 1);
      gsize offset = 0;
      gboolean failed = FALSE;

      /* Half the bytes small, so that some headers are plausible. */
      for (gsize i = 0; i < len; i++)
        data[i] = (guint8) (g_test_rand_bit () ? g_test_rand_int_range (0, 4)
                                                : g_test_rand_int ());

      while (offset < len)
        {
          gsize chunk = (gsize) g_test_rand_int_range (1, 600);
          g_autoptr(GError) error = NULL;
          GBytes *frame;

          chunk = MIN (chunk, len - offset);
          if (!gchat_frame_decoder_push (decoder, data + offset, chunk, &error))
            {
              g_assert_nonnull (error);
              g_assert_true (error->domain == GCHAT_FRAME_ERROR);
              g_assert_true (!failed || error->code == GCHAT_FRAME_ERROR_FAILED);
              failed = TRUE;
            }
          offset += chunk;
          while ((frame = gchat_frame_decoder_pop (decoder)) != NULL)
            {
              g_assert_false (failed);
              g_assert_cmpuint (g_bytes_get_size (frame), >=, 1);
              g_assert_cmpuint (g_bytes_get_size (frame), <=, limit);
              g_bytes_unref (frame);
            }
          g_assert_cmpuint (gchat_frame_decoder_get_buffered (decoder), <=, len);
        }
    }
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/frame/encode/round-trip", test_encode_round_trip);
  g_test_add_func ("/frame/encode/limits", test_encode_limits);
  g_test_add_func ("/frame/decoder/every-split-small", test_every_split_small);
  g_test_add_func ("/frame/decoder/every-split-full", test_every_split_full);
  g_test_add_func ("/frame/decoder/byte-by-byte", test_byte_by_byte);
  g_test_add_func ("/frame/decoder/random-chunks", test_random_chunks);
  g_test_add_func ("/frame/decoder/many-small-frames", test_many_small_frames);
  g_test_add_func ("/frame/decoder/empty", test_empty_frame);
  g_test_add_func ("/frame/decoder/too-large-header-only", test_too_large_header_only);
  g_test_add_func ("/frame/decoder/huge-header", test_huge_header);
  g_test_add_func ("/frame/decoder/no-allocation-ahead", test_no_allocation_ahead);
  g_test_add_func ("/frame/decoder/first-bad-header-wins", test_first_bad_header_wins);
  g_test_add_func ("/frame/decoder/set-max-payload", test_set_max_payload);
  g_test_add_func ("/frame/decoder/random-garbage", test_random_garbage);

  return g_test_run ();
}
