/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Length-prefixed frames: the encoder and an incremental decoder that checks every header first. */

#include "config.h"

#include <string.h>
#include <glib/gi18n-lib.h>

#include "gchat-frame.h"

/* Buffers larger than this are given back once the decoder is empty, so that an idle
 * connection which once received a large frame does not keep its memory. */
#define DECODER_KEEP_ALLOC 4096

/* The decoder holds the bytes received but not yet popped in buf[start, end). Every header
 * before offset @scan has been checked; @scan is the offset of the next header to check, and
 * may lie beyond @end while the frame before it is still arriving. Offsets only move forward
 * until the buffer is compacted, which happens lazily (see make_room()), so a stream of small
 * frames costs amortised constant time per byte.
 *
 * Failure is final: after any bad header the buffered bytes are dropped, every later push
 * fails with %GCHAT_FRAME_ERROR_FAILED and pop returns %NULL, even for frames that were
 * complete before the bad header. A peer that sends one bad header cannot be trusted with the
 * frames around it, and the connection is going to be closed anyway. */
struct _GchatFrameDecoder
{
  guint8  *buf;
  gsize    alloc;
  gsize    start;
  gsize    end;
  gsize    scan;
  gsize    max_payload;
  gboolean failed;
};

G_DEFINE_QUARK (gchat-frame-error-quark, gchat_frame_error)

static guint32
read_header (const guint8 header[GCHAT_FRAME_HEADER_SIZE])
{
  return ((guint32) header[0] << 24) | ((guint32) header[1] << 16) | ((guint32) header[2] << 8)
         | (guint32) header[3];
}

void
gchat_frame_write_header (guint8  header[GCHAT_FRAME_HEADER_SIZE],
                          guint32 payload_len)
{
  header[0] = (guint8) (payload_len >> 24);
  header[1] = (guint8) (payload_len >> 16);
  header[2] = (guint8) (payload_len >> 8);
  header[3] = (guint8) payload_len;
}

/* The one check shared by the encoder and the decoder. */
static gboolean
check_payload_len (gsize    payload_len,
                   gsize    max_payload,
                   GError **error)
{
  if (payload_len == 0)
    {
      g_set_error_literal (error, GCHAT_FRAME_ERROR, GCHAT_FRAME_ERROR_EMPTY,
                           _("A frame cannot be empty"));
      return FALSE;
    }
  if (payload_len > max_payload)
    {
      g_set_error (error, GCHAT_FRAME_ERROR, GCHAT_FRAME_ERROR_TOO_LARGE,
                   _("A frame of %lu bytes is larger than the limit of %lu bytes"),
                   (gulong) payload_len, (gulong) max_payload);
      return FALSE;
    }
  return TRUE;
}

GBytes *
gchat_frame_encode (const guint8  *payload,
                    gsize          payload_len,
                    GError       **error)
{
  guint8 *frame;

  g_return_val_if_fail (payload != NULL || payload_len == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!check_payload_len (payload_len, GCHAT_FRAME_MAX_PAYLOAD, error))
    return NULL;

  frame = g_malloc (GCHAT_FRAME_HEADER_SIZE + payload_len);
  gchat_frame_write_header (frame, (guint32) payload_len);
  memcpy (frame + GCHAT_FRAME_HEADER_SIZE, payload, payload_len);
  return g_bytes_new_take (frame, GCHAT_FRAME_HEADER_SIZE + payload_len);
}

GchatFrameDecoder *
gchat_frame_decoder_new (gsize max_payload)
{
  GchatFrameDecoder *self;

  g_return_val_if_fail (max_payload > 0, NULL);

  self = g_new0 (GchatFrameDecoder, 1);
  self->max_payload = max_payload;
  return self;
}

static void
decoder_clear_buffer (GchatFrameDecoder *self)
{
  g_clear_pointer (&self->buf, g_free);
  self->alloc = 0;
  self->start = 0;
  self->end = 0;
  self->scan = 0;
}

void
gchat_frame_decoder_free (GchatFrameDecoder *self)
{
  if (self == NULL)
    return;
  g_free (self->buf);
  g_free (self);
}

void
gchat_frame_decoder_set_max_payload (GchatFrameDecoder *self,
                                     gsize              max_payload)
{
  g_return_if_fail (self != NULL);
  g_return_if_fail (max_payload > 0);

  self->max_payload = max_payload;
}

gsize
gchat_frame_decoder_get_max_payload (GchatFrameDecoder *self)
{
  g_return_val_if_fail (self != NULL, 0);

  return self->max_payload;
}

/* Byte @pos of the buffered bytes followed by @data, without copying anything. */
static guint8
stream_byte (GchatFrameDecoder *self,
             const guint8      *data,
             gsize              pos)
{
  return pos < self->end ? self->buf[pos] : data[pos - self->end];
}

/* Checks every header that is complete in the buffered bytes followed by @data, before any
 * of @data is stored, so that no buffer ever grows on behalf of a bad header. */
static gboolean
decoder_check_headers (GchatFrameDecoder *self,
                       const guint8      *data,
                       gsize              len,
                       GError           **error)
{
  gsize total = self->end + len;
  gsize scan = self->scan;

  while (scan <= total && total - scan >= GCHAT_FRAME_HEADER_SIZE)
    {
      guint8 header[GCHAT_FRAME_HEADER_SIZE];
      guint32 payload_len;

      for (guint i = 0; i < GCHAT_FRAME_HEADER_SIZE; i++)
        header[i] = stream_byte (self, data, scan + i);
      payload_len = read_header (header);
      if (!check_payload_len (payload_len, self->max_payload, error))
        return FALSE;
      scan += GCHAT_FRAME_HEADER_SIZE + (gsize) payload_len;
    }

  self->scan = scan;
  return TRUE;
}

/* Makes room for @len more bytes. Popped bytes are only moved out of the way when they are at
 * least as many as the bytes kept, or when the buffer is full anyway: each kept byte is then
 * paid for by a popped one, so compaction costs amortised constant time per byte. The buffer
 * grows geometrically, so it never holds more than about twice the bytes received. */
static void
make_room (GchatFrameDecoder *self,
           gsize              len)
{
  gsize held = self->end - self->start;
  gsize needed;

  if (self->start > 0 && (self->start >= held || self->alloc - self->end < len))
    {
      memmove (self->buf, self->buf + self->start, held);
      self->scan -= self->start;
      self->end = held;
      self->start = 0;
    }

  if (self->alloc - self->end >= len)
    return;

  needed = self->end + len;
  self->alloc = MAX (MAX (needed, 2 * self->alloc), 64);
  self->buf = g_realloc (self->buf, self->alloc);
}

gboolean
gchat_frame_decoder_push (GchatFrameDecoder *self,
                          const guint8      *data,
                          gsize              len,
                          GError           **error)
{
  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (data != NULL || len == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  g_return_val_if_fail (len <= G_MAXSIZE - self->end, FALSE);

  if (self->failed)
    {
      g_set_error_literal (error, GCHAT_FRAME_ERROR, GCHAT_FRAME_ERROR_FAILED,
                           _("The peer already sent a malformed frame; no more data is accepted"));
      return FALSE;
    }
  if (len == 0)
    return TRUE;

  if (!decoder_check_headers (self, data, len, error))
    {
      self->failed = TRUE;
      decoder_clear_buffer (self);
      return FALSE;
    }

  make_room (self, len);
  memcpy (self->buf + self->end, data, len);
  self->end += len;
  return TRUE;
}

/* Hands the whole buffer over to the frame instead of copying it, when the frame fills most of
 * it: large frames are then never copied, and small ones never pin a large buffer. */
static GBytes *
decoder_steal_frame (GchatFrameDecoder *self,
                     gsize              payload_len)
{
  g_autoptr(GBytes) whole = g_bytes_new_take (g_steal_pointer (&self->buf), self->end);

  decoder_clear_buffer (self);
  return g_bytes_new_from_bytes (whole, GCHAT_FRAME_HEADER_SIZE, payload_len);
}

GBytes *
gchat_frame_decoder_pop (GchatFrameDecoder *self)
{
  gsize payload_len;
  gsize frame_len;
  GBytes *payload;

  g_return_val_if_fail (self != NULL, NULL);

  if (self->failed || self->end - self->start < GCHAT_FRAME_HEADER_SIZE)
    return NULL;

  payload_len = read_header (self->buf + self->start);
  frame_len = GCHAT_FRAME_HEADER_SIZE + payload_len;
  if (self->end - self->start < frame_len)
    return NULL;

  if (self->start == 0 && self->end == frame_len && payload_len >= self->alloc / 2
      && self->alloc > DECODER_KEEP_ALLOC)
    return decoder_steal_frame (self, payload_len);

  payload = g_bytes_new (self->buf + self->start + GCHAT_FRAME_HEADER_SIZE, payload_len);
  self->start += frame_len;

  /* Empty again: the next header is the next byte received. */
  if (self->start == self->end)
    {
      if (self->alloc > DECODER_KEEP_ALLOC)
        decoder_clear_buffer (self);
      self->start = self->end = self->scan = 0;
    }
  return payload;
}

gsize
gchat_frame_decoder_get_buffered (GchatFrameDecoder *self)
{
  g_return_val_if_fail (self != NULL, 0);

  return self->end - self->start;
}
