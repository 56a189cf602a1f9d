/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Sealed frames after the handshake: ChaCha20-Poly1305 with one key and one counter per direction. */

#include "config.h"

#include <glib/gi18n-lib.h>

#include "gchat-channel.h"
#include "gchat-crypto.h"
#include "gchat-frame.h"

struct _GchatChannel
{
  GchatAead *send;
  GchatAead *receive;
  guint64    sent;
  guint64    received;
  gboolean   failed;
};

G_DEFINE_QUARK (gchat-channel-error-quark, gchat_channel_error)

/* The nonce is the frame's sequence number: 4 zero bytes, then 8 bytes big-endian. Each
 * direction has its own key, so the two counters never share a (key, nonce) pair. */
static void
make_nonce (guint64 counter,
            guint8  nonce[GCHAT_AEAD_NONCE_SIZE])
{
  memset (nonce, 0, 4);
  for (guint i = 0; i < 8; i++)
    nonce[4 + i] = (guint8) (counter >> (56 - 8 * i));
}

GchatChannel *
gchat_channel_new (const guint8  *send_key,
                   const guint8  *receive_key,
                   GError       **error)
{
  g_autoptr(GchatAead) send = NULL;
  g_autoptr(GchatAead) receive = NULL;
  GchatChannel *self;

  g_return_val_if_fail (send_key != NULL, NULL);
  g_return_val_if_fail (receive_key != NULL, NULL);

  send = gchat_aead_new (send_key, error);
  if (send == NULL)
    return NULL;
  receive = gchat_aead_new (receive_key, error);
  if (receive == NULL)
    return NULL;

  self = g_new0 (GchatChannel, 1);
  self->send = g_steal_pointer (&send);
  self->receive = g_steal_pointer (&receive);
  return self;
}

void
gchat_channel_free (GchatChannel *self)
{
  if (self == NULL)
    return;
  g_clear_pointer (&self->send, gchat_aead_free);
  g_clear_pointer (&self->receive, gchat_aead_free);
  g_free (self);
}

GBytes *
gchat_channel_seal (GchatChannel  *self,
                    const guint8  *plain,
                    gsize          len,
                    GError       **error)
{
  guint8 nonce[GCHAT_AEAD_NONCE_SIZE];
  gsize payload_len = len + GCHAT_AEAD_TAG_SIZE;
  g_autofree guint8 *frame = NULL;

  g_return_val_if_fail (self != NULL, NULL);
  g_return_val_if_fail (plain != NULL || len == 0, NULL);

  if (self->failed)
    {
      g_set_error_literal (error, GCHAT_CHANNEL_ERROR, GCHAT_CHANNEL_ERROR_CLOSED,
                           _("The secure channel is closed after an earlier error"));
      return NULL;
    }
  if (len > GCHAT_FRAME_MAX_PAYLOAD - GCHAT_AEAD_TAG_SIZE)
    {
      g_set_error (error, GCHAT_CHANNEL_ERROR, GCHAT_CHANNEL_ERROR_TOO_LARGE,
                   _("A message of %zu bytes is larger than the limit of %u"),
                   len, (guint) (GCHAT_FRAME_MAX_PAYLOAD - GCHAT_AEAD_TAG_SIZE));
      return NULL;
    }
  if (self->sent == G_MAXUINT64)
    {
      self->failed = TRUE;
      g_set_error_literal (error, GCHAT_CHANNEL_ERROR, GCHAT_CHANNEL_ERROR_EXHAUSTED,
                           _("The secure channel has used up its sequence numbers; reconnect"));
      return NULL;
    }

  frame = g_malloc (GCHAT_FRAME_HEADER_SIZE + payload_len);
  gchat_frame_write_header (frame, (guint32) payload_len);
  make_nonce (self->sent, nonce);
  /* The header is authenticated too, so a frame cannot be cut or stretched unnoticed. */
  if (!gchat_aead_seal (self->send, nonce, frame, GCHAT_FRAME_HEADER_SIZE, plain, len,
                        frame + GCHAT_FRAME_HEADER_SIZE, error))
    return NULL;
  self->sent++;
  return g_bytes_new_take (g_steal_pointer (&frame), GCHAT_FRAME_HEADER_SIZE + payload_len);
}

/* Whether forged, replayed, reordered, dropped or cut, the stream can no longer be trusted. */
static GBytes *
fail_tampered (GchatChannel  *self,
               GError       **error)
{
  self->failed = TRUE;
  g_set_error_literal (error, GCHAT_CHANNEL_ERROR, GCHAT_CHANNEL_ERROR_DECRYPT,
                       _("A frame failed authentication: the connection was tampered with or "
                         "broken, and is closed"));
  return NULL;
}

GBytes *
gchat_channel_open (GchatChannel  *self,
                    GBytes        *payload,
                    GError       **error)
{
  guint8 nonce[GCHAT_AEAD_NONCE_SIZE];
  guint8 header[GCHAT_FRAME_HEADER_SIZE];
  const guint8 *data;
  gsize len;
  guint8 *plain;

  g_return_val_if_fail (self != NULL, NULL);
  g_return_val_if_fail (payload != NULL, NULL);

  if (self->failed)
    {
      g_set_error_literal (error, GCHAT_CHANNEL_ERROR, GCHAT_CHANNEL_ERROR_CLOSED,
                           _("The secure channel is closed after an earlier error"));
      return NULL;
    }

  data = g_bytes_get_data (payload, &len);
  if (len < GCHAT_AEAD_TAG_SIZE || len > GCHAT_FRAME_MAX_PAYLOAD || self->received == G_MAXUINT64)
    return fail_tampered (self, error);

  gchat_frame_write_header (header, (guint32) len);
  make_nonce (self->received, nonce);
  /* The plaintext handed out is wiped when its last reference goes. */
  plain = gchat_wiped_buffer_new (len - GCHAT_AEAD_TAG_SIZE);
  if (!gchat_aead_open (self->receive, nonce, header, sizeof header, data, len, plain, NULL))
    {
      gchat_wiped_buffer_free (plain);
      return fail_tampered (self, error);
    }
  self->received++;
  return gchat_wiped_buffer_to_bytes (plain, len - GCHAT_AEAD_TAG_SIZE);
}

guint64
gchat_channel_get_sent (GchatChannel *self)
{
  g_return_val_if_fail (self != NULL, 0);
  return self->sent;
}

guint64
gchat_channel_get_received (GchatChannel *self)
{
  g_return_val_if_fail (self != NULL, 0);
  return self->received;
}
