/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A sealed frame channel: one AEAD key per direction and an implicit counter nonce. */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define GCHAT_CHANNEL_ERROR (gchat_channel_error_quark ())

typedef enum {
  GCHAT_CHANNEL_ERROR_DECRYPT,   /* forged, replayed, reordered, dropped or truncated frame */
  GCHAT_CHANNEL_ERROR_TOO_LARGE, /* plaintext larger than a frame can carry */
  GCHAT_CHANNEL_ERROR_EXHAUSTED, /* the counter would wrap: the connection must end */
  GCHAT_CHANNEL_ERROR_CLOSED,    /* an earlier failure closed the channel */
} GchatChannelError;

/* Sealing adds this many bytes to a plaintext. */
#define GCHAT_CHANNEL_OVERHEAD 16

typedef struct _GchatChannel GchatChannel;

GQuark         gchat_channel_error_quark (void);

/* Keys are 32 bytes each and copied. */
GchatChannel  *gchat_channel_new         (const guint8  *send_key,
                                          const guint8  *receive_key,
                                          GError       **error);
void           gchat_channel_free        (GchatChannel  *self);

/* A whole frame (header included), ready for the socket. */
GBytes        *gchat_channel_seal        (GchatChannel  *self,
                                          const guint8  *plain,
                                          gsize          len,
                                          GError       **error);
/* @payload is a frame payload from the frame decoder. Any failure closes the channel for good:
 * the connection must end. The returned plaintext is wiped when freed. */
GBytes        *gchat_channel_open        (GchatChannel  *self,
                                          GBytes        *payload,
                                          GError       **error);

guint64        gchat_channel_get_sent     (GchatChannel *self);
guint64        gchat_channel_get_received (GchatChannel *self);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (GchatChannel, gchat_channel_free)

G_END_DECLS
