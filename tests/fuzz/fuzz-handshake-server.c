/* SPDX-License-Identifier: GPL-3.0-or-later */
/* libFuzzer target: the server's handshake fed a client key message, and a sealed channel
 * opening the frames that follow, as gchatd handles a new connection. */

#include <string.h>

#include "fuzz-common.h"
#include "gchat-frame.h"
#include "gchat-handshake.h"
#include "gchat-message.h"

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* The label of the wrapped key (gchat-handshake.c, PROTOCOL.md §4). */
#define LABEL_WRAP "gchat v1 client key"

/* The server's key, made once per process: 2048 bits, the smallest allowed, to keep start-up
 * short. */
static GchatRsaKey *server_key;
/* Resumption (PROTOCOL.md §3.5): a fixed ticket key, and a ticket sealed with it at start. */
#define TICKET_KEY_ID 1
static const guint8 ticket_key[GCHAT_TICKET_KEY_SIZE] = {
  0x74, 0x69, 0x63, 0x6b, 0x65, 0x74, 0x20, 0x6b, 0x65, 0x79, 0x20, 0x66, 0x6f, 0x72, 0x20, 0x66,
  0x75, 0x7a, 0x7a, 0x69, 0x6e, 0x67, 0x20, 0x6f, 0x6e, 0x6c, 0x79, 0x21, 0x21, 0x21, 0x21, 0x21,
};
static const guint8 resume_secret[GCHAT_RESUME_SECRET_SIZE] = {
  0x72, 0x65, 0x73, 0x75, 0x6d, 0x65, 0x20, 0x73, 0x65, 0x63, 0x72, 0x65, 0x74, 0x20, 0x66, 0x6f,
  0x72, 0x20, 0x66, 0x75, 0x7a, 0x7a, 0x69, 0x6e, 0x67, 0x20, 0x6f, 0x6e, 0x6c, 0x79, 0x2e, 0x2e,
};
static GBytes *ticket;

/* The input's first byte picks one of these; make-corpus writes seeds for each. */
enum {
  MODE_RAW,     /* the rest is the client key message */
  MODE_FIELDS,  /* version, X25519 key and K from the input; K wrapped for the server */
  MODE_CLIENT,  /* a real client's answer with bytes flipped, then sealed messages */
  MODE_CHANNEL, /* a channel with fixed keys opening the rest as a frame stream */
};

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  g_autoptr(GError) error = NULL;
  GchatTicket plain = { "alice", 0, G_MAXINT64, { 0 }, { 0 } };

  fuzz_init ();
  server_key = gchat_rsa_key_generate (GCHAT_RSA_KEY_MIN_BITS, &error);
  FUZZ_CHECK (server_key != NULL);
  memcpy (plain.secret, resume_secret, sizeof plain.secret);
  ticket = gchat_ticket_seal (ticket_key, TICKET_KEY_ID, &plain, &error);
  FUZZ_CHECK (ticket != NULL);
  return 0;
}

/* A server handshake that has sent its hello and waits for the client key. */
static GchatHandshake *
server_start (GBytes **hello)
{
  GchatHandshake *handshake = gchat_handshake_new_server (server_key);

  FUZZ_CHECK (gchat_handshake_step (handshake, NULL, hello, NULL) && *hello != NULL);
  return handshake;
}

/* What gchatd does with each frame once the channel is up: open it, then decode it. Returns
 * FALSE once the channel refused a frame (gchatd closes the connection there). */
static gboolean
open_frame (GchatChannel *channel,
            GBytes       *payload)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) plain = gchat_channel_open (channel, payload, &error);
  g_autoptr(GchatMessage) message = NULL;

  if (plain == NULL)
    {
      FUZZ_CHECK (error != NULL && error->domain == GCHAT_CHANNEL_ERROR);
      return FALSE;
    }
  message = gchat_message_decode (g_bytes_get_data (plain, NULL), g_bytes_get_size (plain), NULL);
  return TRUE;
}

/* Pushes @len bytes to the server's frame decoder and opens every frame it completes. */
static gboolean
feed_frames (GchatFrameDecoder *decoder,
             GchatChannel      *channel,
             const guint8      *data,
             gsize              len)
{
  if (!gchat_frame_decoder_push (decoder, data, len, NULL))
    return FALSE;
  for (;;)
    {
      g_autoptr(GBytes) payload = gchat_frame_decoder_pop (decoder);

      if (payload == NULL)
        return TRUE;
      if (!open_frame (channel, payload))
        return FALSE;
    }
}

/* What gchatd does after a step that took a resumption message: open the ticket, then finish
 * with its secret. TRUE once the handshake is done. */
static gboolean
server_finish_resume (GchatHandshake *handshake)
{
  GchatTicket opened;
  gboolean done = FALSE;

  FUZZ_CHECK (!gchat_handshake_is_done (handshake));
  if (gchat_ticket_open (ticket_key, TICKET_KEY_ID, gchat_handshake_get_ticket (handshake), 0,
                         &opened, NULL))
    done = gchat_handshake_server_resume (handshake, opened.secret, NULL);
  gchat_memzero (&opened, sizeof opened);
  FUZZ_CHECK (done == gchat_handshake_is_done (handshake));
  return done;
}

static void
fuzz_raw (FuzzInput *in)
{
  g_autoptr(GBytes) hello = NULL;
  g_autoptr(GchatHandshake) handshake = server_start (&hello);
  g_autoptr(GBytes) client_key = g_bytes_new (in->data, in->len);
  g_autoptr(GBytes) none = NULL;

  if (!gchat_handshake_step (handshake, client_key, &none, NULL))
    return;
  FUZZ_CHECK (none == NULL);
  if (gchat_handshake_is_resumption (handshake))
    (void) server_finish_resume (handshake);
  else
    FUZZ_CHECK (gchat_handshake_is_done (handshake));
}

/* A client key message made by the rules from fuzzed fields, so that the RSA unwrap succeeds
 * and the X25519 key (a weak one, say) is what gets tested. */
static void
fuzz_fields (FuzzInput *in,
             guint8     mode)
{
  g_autoptr(GBytes) hello = NULL;
  g_autoptr(GchatHandshake) handshake = server_start (&hello);
  g_autoptr(GBytes) wrapped = NULL;
  g_autoptr(GBytes) message = NULL;
  g_autoptr(GBytes) none = NULL;
  g_autoptr(GchatChannel) channel = NULL;
  guint8 fields[1 + GCHAT_X25519_SIZE + GCHAT_KEY_SIZE];
  GByteArray *msg = g_byte_array_new ();
  guint8 len_be[2];

  fuzz_input_copy (in, fields, sizeof fields);
  if ((mode & 4) == 0)
    fields[0] = GCHAT_PROTOCOL_VERSION;
  wrapped = gchat_rsa_key_wrap (server_key, fields + 1 + GCHAT_X25519_SIZE, GCHAT_KEY_SIZE,
                                LABEL_WRAP, NULL);
  FUZZ_CHECK (wrapped != NULL);
  len_be[0] = (guint8) (g_bytes_get_size (wrapped) >> 8);
  len_be[1] = (guint8) g_bytes_get_size (wrapped);
  g_byte_array_append (msg, (const guint8 *) GCHAT_HANDSHAKE_MAGIC, GCHAT_HANDSHAKE_MAGIC_SIZE);
  g_byte_array_append (msg, fields, 1 + GCHAT_X25519_SIZE);
  g_byte_array_append (msg, len_be, sizeof len_be);
  g_byte_array_append (msg, g_bytes_get_data (wrapped, NULL), g_bytes_get_size (wrapped));
  message = g_byte_array_free_to_bytes (msg);
  if (!gchat_handshake_step (handshake, message, &none, NULL))
    return;
  channel = gchat_handshake_steal_channel (handshake);
  FUZZ_CHECK (channel != NULL);
}

/* Flips the bytes the input names in @message: n, then n × (u16 position, u8 mask). */
static GBytes *
mutate (FuzzInput *in,
        GBytes    *message)
{
  gsize len;
  guint8 *bytes = g_bytes_unref_to_data (g_bytes_ref (message), &len);
  guint n = fuzz_input_u8 (in) % 8;

  for (guint i = 0; i < n; i++)
    {
      guint16 position = fuzz_input_u16 (in);

      bytes[position % len] ^= fuzz_input_u8 (in);
    }
  return g_bytes_new_take (bytes, len);
}

/* Both handshakes of a connection; the client's answer is damaged as the input says. When it
 * still completes, both ends must agree, and the rest of the input is messages: u16 length and
 * plaintext, sealed by the client and opened by the server. */
static void
fuzz_client (FuzzInput *in,
             guint8     mode)
{
  g_autoptr(GBytes) hello = NULL;
  g_autoptr(GchatHandshake) server = server_start (&hello);
  /* Bit 2 of the mode: a client that resumes with the fixed ticket instead. */
  g_autoptr(GchatHandshake) client = (mode & 4) != 0
                                     ? gchat_handshake_new_client_resume (server_key, ticket,
                                                                         resume_secret)
                                     : gchat_handshake_new_client (server_key);
  g_autoptr(GBytes) client_key = NULL;
  g_autoptr(GBytes) damaged = NULL;
  g_autoptr(GBytes) none = NULL;
  g_autoptr(GchatChannel) client_channel = NULL;
  g_autoptr(GchatChannel) server_channel = NULL;
  g_autoptr(GchatFrameDecoder) decoder = gchat_frame_decoder_new (GCHAT_FRAME_MAX_PAYLOAD);
  guint8 client_export[32], server_export[32];

  FUZZ_CHECK (gchat_handshake_step (client, hello, &client_key, NULL));
  damaged = mutate (in, client_key);
  if (!gchat_handshake_step (server, damaged, &none, NULL))
    return;
  if (gchat_handshake_is_resumption (server) && !server_finish_resume (server))
    {
      /* Only a damaged resumption may fail: the real client's must succeed. */
      FUZZ_CHECK (!g_bytes_equal (damaged, client_key));
      return;
    }
  FUZZ_CHECK (gchat_handshake_export (client, "endpoint", client_export, 32, NULL));
  FUZZ_CHECK (gchat_handshake_export (server, "endpoint", server_export, 32, NULL));
  if (g_bytes_equal (damaged, client_key))
    {
      FUZZ_CHECK (memcmp (client_export, server_export, 32) == 0);
      FUZZ_CHECK (memcmp (gchat_handshake_get_transcript_hash (client),
                          gchat_handshake_get_transcript_hash (server), GCHAT_SHA256_SIZE) == 0);
    }
  client_channel = gchat_handshake_steal_channel (client);
  server_channel = gchat_handshake_steal_channel (server);
  while (in->len > 0)
    {
      gsize len;
      const guint8 *plain = fuzz_input_take (in, fuzz_input_u16 (in), &len);
      g_autoptr(GBytes) frame = gchat_channel_seal (client_channel, plain, len, NULL);

      if (frame == NULL)
        continue;
      if (!feed_frames (decoder, server_channel, g_bytes_get_data (frame, NULL),
                        g_bytes_get_size (frame)))
        break;
    }
}

/* The server's end of a channel with fixed keys, taking the input as bytes off the socket. */
static void
fuzz_channel (FuzzInput *in)
{
  g_autoptr(GchatChannel) channel = gchat_channel_new (fuzz_server_send_key,
                                                       fuzz_client_send_key, NULL);
  g_autoptr(GchatFrameDecoder) decoder = gchat_frame_decoder_new (GCHAT_FRAME_MAX_PAYLOAD);

  FUZZ_CHECK (channel != NULL);
  (void) feed_frames (decoder, channel, in->data, in->len);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  FuzzInput in = { data, size };
  guint8 mode = fuzz_input_u8 (&in);

  switch (mode & 3)
    {
    case MODE_RAW:
      fuzz_raw (&in);
      break;
    case MODE_FIELDS:
      fuzz_fields (&in, mode);
      break;
    case MODE_CLIENT:
      fuzz_client (&in, mode);
      break;
    default:
      fuzz_channel (&in);
      break;
    }
  return 0;
}
