/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Length-prefixed frames: the encoder and an incremental decoder with a hard size limit. */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define GCHAT_FRAME_ERROR (gchat_frame_error_quark ())

typedef enum {
  GCHAT_FRAME_ERROR_TOO_LARGE, /* the header announces more than the decoder's limit */
  GCHAT_FRAME_ERROR_EMPTY,     /* the header announces a zero-length frame */
  GCHAT_FRAME_ERROR_FAILED,    /* the decoder already failed; it takes nothing more */
} GchatFrameError;

/* A frame is a 4-byte big-endian payload length, then the payload (1 byte at least). */
#define GCHAT_FRAME_HEADER_SIZE  4
/* Largest payload on a logged-in connection: 64 KiB of text plus JSON and AEAD overhead. */
#define GCHAT_FRAME_MAX_PAYLOAD  (256 * 1024)
/* Largest payload before the handshake is done: a hello or a client key, nothing more. */
#define GCHAT_FRAME_MAX_HANDSHAKE_PAYLOAD 1024

GQuark   gchat_frame_error_quark (void);

void     gchat_frame_write_header (guint8   header[GCHAT_FRAME_HEADER_SIZE],
                                   guint32  payload_len);
/* Header and payload in one buffer. @payload_len must be 1..GCHAT_FRAME_MAX_PAYLOAD. */
GBytes  *gchat_frame_encode       (const guint8 *payload,
                                   gsize         payload_len,
                                   GError      **error);

typedef struct _GchatFrameDecoder GchatFrameDecoder;

GchatFrameDecoder *gchat_frame_decoder_new      (gsize               max_payload);
void               gchat_frame_decoder_free     (GchatFrameDecoder *self);
/* Lowers or raises the limit, for example once a connection has logged in. */
void               gchat_frame_decoder_set_max_payload (GchatFrameDecoder *self,
                                                        gsize              max_payload);
gsize              gchat_frame_decoder_get_max_payload (GchatFrameDecoder *self);
/* Appends bytes as they came off the socket. Fails as soon as a header is bad, before any
 * buffer of the announced size exists; once failed, the decoder refuses everything. */
gboolean           gchat_frame_decoder_push     (GchatFrameDecoder *self,
                                                 const guint8      *data,
                                                 gsize              len,
                                                 GError           **error);
/* The next complete payload, or NULL when none is complete yet. */
GBytes            *gchat_frame_decoder_pop      (GchatFrameDecoder *self);
/* Bytes held that do not yet make a complete frame, plus complete frames not popped. */
gsize              gchat_frame_decoder_get_buffered (GchatFrameDecoder *self);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (GchatFrameDecoder, gchat_frame_decoder_free)

G_END_DECLS
