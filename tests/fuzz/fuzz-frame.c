/* SPDX-License-Identifier: GPL-3.0-or-later */
/* libFuzzer target: the frame decoder, fed a byte stream in pushes of random sizes. */

#include "fuzz-common.h"
#include "gchat-frame.h"

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  fuzz_init ();
  return 0;
}

/* Checks that a popped payload is the next frame of the stream, as its header announced it. */
static void
check_payload (const guint8 *stream,
               gsize         stream_len,
               gsize        *consumed,
               GBytes       *payload,
               gsize         limit)
{
  gsize len;
  const guint8 *bytes = g_bytes_get_data (payload, &len);
  guint8 header[GCHAT_FRAME_HEADER_SIZE];

  FUZZ_CHECK (len >= 1 && len <= limit);
  FUZZ_CHECK (*consumed + GCHAT_FRAME_HEADER_SIZE + len <= stream_len);
  gchat_frame_write_header (header, (guint32) len);
  FUZZ_CHECK (memcmp (stream + *consumed, header, sizeof header) == 0);
  FUZZ_CHECK (memcmp (stream + *consumed + GCHAT_FRAME_HEADER_SIZE, bytes, len) == 0);
  *consumed += GCHAT_FRAME_HEADER_SIZE + len;
}

/* The chunk sizes come from a small generator seeded by the input's first bytes, so mutating
 * the stream does not move the cuts, and the cuts can be mutated on their own. */
static gsize
next_chunk (guint32 *state,
            gsize    left)
{
  *state ^= *state << 13;
  *state ^= *state >> 17;
  *state ^= *state << 5;
  /* Mostly small pushes (the header split across reads), sometimes everything at once. */
  if ((*state & 7) == 0)
    return left;
  return MIN (left, 1 + (*state >> 3) % 37);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  FuzzInput in = { data, size };
  guint8 mode = fuzz_input_u8 (&in);
  guint32 state = ((guint32) fuzz_input_u16 (&in) << 16 | fuzz_input_u16 (&in)) | 1;
  /* Like gchatd and the client: the handshake limit until the first frame, then the full one;
   * or a small odd limit, to walk its edges. */
  gsize limit = (mode & 1) ? GCHAT_FRAME_MAX_HANDSHAKE_PAYLOAD
                           : (mode & 2) ? 1 + (gsize) ((mode >> 2) * 37) : GCHAT_FRAME_MAX_PAYLOAD;
  g_autoptr(GchatFrameDecoder) decoder = gchat_frame_decoder_new (limit);
  const guint8 *stream = in.data;
  gsize stream_len = in.len, pushed = 0, consumed = 0;
  gboolean failed = FALSE;

  FUZZ_CHECK (gchat_frame_decoder_get_max_payload (decoder) == limit);
  while (pushed < stream_len && !failed)
    {
      gsize chunk = next_chunk (&state, stream_len - pushed);
      g_autoptr(GError) error = NULL;

      failed = !gchat_frame_decoder_push (decoder, stream + pushed, chunk, &error);
      FUZZ_CHECK (failed == (error != NULL));
      FUZZ_CHECK (!failed || error->domain == GCHAT_FRAME_ERROR);
      pushed += chunk;
      for (;;)
        {
          g_autoptr(GBytes) payload = gchat_frame_decoder_pop (decoder);

          if (payload == NULL)
            break;
          check_payload (stream, stream_len, &consumed, payload, limit);
          if ((mode & 1) && limit == GCHAT_FRAME_MAX_HANDSHAKE_PAYLOAD)
            {
              limit = GCHAT_FRAME_MAX_PAYLOAD;
              gchat_frame_decoder_set_max_payload (decoder, limit);
            }
        }
    }

  if (failed)
    {
      g_autoptr(GError) error = NULL;
      const guint8 byte = 1;

      /* Once failed, the decoder refuses everything. */
      FUZZ_CHECK (!gchat_frame_decoder_push (decoder, &byte, 1, &error));
      FUZZ_CHECK (g_error_matches (error, GCHAT_FRAME_ERROR, GCHAT_FRAME_ERROR_FAILED));
    }
  else
    {
      /* Nothing lost: what was not popped is still held. */
      FUZZ_CHECK (consumed + gchat_frame_decoder_get_buffered (decoder) == stream_len);
    }
  return 0;
}
