/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Writes the seed corpus of the binary fuzz targets: valid inputs for each of their modes,
 * sealed with the fixed keys of fuzz-common.h, and a few edge cases. */

#include <glib/gstdio.h>

#include "fuzz-common.h"
#include "gchat-channel.h"
#include "gchat-datagram.h"
#include "gchat-frame.h"
#include "gchat-handshake.h"

static const char *corpus_dir;

/* Writes @prefix (a mode byte, usually) then @data to CORPUS/TARGET/NAME. */
static void
write_seed (const char   *target,
            const char   *name,
            const guint8 *prefix,
            gsize         prefix_len,
            const guint8 *data,
            gsize         len)
{
  g_autofree char *dir = g_build_filename (corpus_dir, target, NULL);
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autoptr(GByteArray) bytes = g_byte_array_new ();
  g_autoptr(GError) error = NULL;

  g_byte_array_append (bytes, prefix, prefix_len);
  g_byte_array_append (bytes, data, len);
  if (g_mkdir_with_parents (dir, 0755) != 0 ||
      !g_file_set_contents (path, (const char *) bytes->data, bytes->len, &error))
    {
      g_printerr ("make-corpus: cannot write %s\n", path);
      exit (1);
    }
}

static void
write_bytes (const char *target,
             const char *name,
             guint8      mode,
             GBytes     *bytes)
{
  write_seed (target, name, &mode, 1, g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes));
}

/* Appends a u16 length and @bytes, the record format of several targets. */
static void
append_record (GByteArray   *out,
               const guint8 *data,
               gsize         len)
{
  guint8 len_be[2] = { (guint8) (len >> 8), (guint8) len };

  g_byte_array_append (out, len_be, 2);
  g_byte_array_append (out, data, len);
}

static void
frame_seeds (void)
{
  /* mode, 4 bytes of chunking seed, then the stream. */
  static const guint8 two_frames[] = { 0, 1, 2, 3, 4, 0, 0, 0, 2, 'h', 'i', 0, 0, 0, 1, '!' };
  static const guint8 handshake[] = { 1, 9, 9, 9, 9, 0, 0, 0, 3, 'a', 'b', 'c', 0, 0, 8, 0, 'x' };
  static const guint8 empty[] = { 0, 0, 0, 0, 1, 0, 0, 0, 0 };
  static const guint8 too_large[] = { 1, 5, 6, 7, 8, 0, 0, 4, 1, 'x' };
  static const guint8 small_limit[] = { 2 | (3 << 2), 0, 0, 0, 7, 0, 0, 0, 0x70, 'y' };

  write_seed ("fuzz-frame", "two-frames", NULL, 0, two_frames, sizeof two_frames);
  write_seed ("fuzz-frame", "handshake-then-large", NULL, 0, handshake, sizeof handshake);
  write_seed ("fuzz-frame", "empty-frame", NULL, 0, empty, sizeof empty);
  write_seed ("fuzz-frame", "too-large", NULL, 0, too_large, sizeof too_large);
  write_seed ("fuzz-frame", "small-limit", NULL, 0, small_limit, sizeof small_limit);
}

static void
datagram_raw_seeds (void)
{
  g_autoptr(GchatPeerKeys) bob = gchat_peer_keys_new (fuzz_pair_key, FUZZ_PAIR_KEY_ID,
                                                      FUZZ_PEER_USER, FUZZ_SELF_USER, NULL);
  g_autoptr(GchatEndpointKey) client = NULL;
  g_autoptr(GchatEndpointKey) server = NULL;
  g_autoptr(GBytes) data = gchat_datagram_build_data (GCHAT_DATAGRAM_MSG_ID (9, 1), 0, 0, 1,
                                                      (const guint8 *) "hello", 5, NULL);
  guint64 ids[2] = { GCHAT_DATAGRAM_MSG_ID (7, 1), GCHAT_DATAGRAM_MSG_ID (7, 2) };
  g_autoptr(GBytes) ack = gchat_datagram_build_ack (ids, 2, NULL);
  GchatDatagramEndpoint endpoint = { 4, { 203, 0, 113, 7 }, 4000 };
  g_autoptr(GBytes) where = gchat_datagram_build_endpoint (FUZZ_SELF_USER, &endpoint, 1, NULL);
  g_autoptr(GBytes) sealed_data = NULL, sealed_ack = NULL, hello = NULL;
  g_autoptr(GBytes) request = NULL, answer = NULL;

  client = gchat_endpoint_key_new_for_session (fuzz_server_send_key, FUZZ_ENDPOINT_ID,
                                               GCHAT_ENDPOINT_SIDE_CLIENT, NULL);
  server = gchat_endpoint_key_new_for_session (fuzz_server_send_key, FUZZ_ENDPOINT_ID,
                                               GCHAT_ENDPOINT_SIDE_SERVER, NULL);
  sealed_data = gchat_peer_keys_seal (bob, GCHAT_DATAGRAM_KIND_DATA, g_bytes_get_data (data, NULL),
                                      g_bytes_get_size (data), NULL);
  sealed_ack = gchat_peer_keys_seal (bob, GCHAT_DATAGRAM_KIND_ACK, g_bytes_get_data (ack, NULL),
                                     g_bytes_get_size (ack), NULL);
  hello = gchat_peer_keys_seal (bob, GCHAT_DATAGRAM_KIND_HELLO, NULL, 0, NULL);
  request = gchat_endpoint_key_seal (client, g_bytes_get_data (where, NULL),
                                     g_bytes_get_size (where), NULL);
  answer = gchat_endpoint_key_seal (server, g_bytes_get_data (where, NULL),
                                    g_bytes_get_size (where), NULL);
  write_bytes ("fuzz-datagram", "raw-data", 0, sealed_data);
  write_bytes ("fuzz-datagram", "raw-ack", 0, sealed_ack);
  write_bytes ("fuzz-datagram", "raw-hello", 0, hello);
  write_bytes ("fuzz-datagram", "raw-endpoint", 0, request);
  write_bytes ("fuzz-datagram", "raw-endpoint-answer", 0, answer);
  write_bytes ("fuzz-datagram", "body-data", 1 | (0 << 2), data);
  write_bytes ("fuzz-datagram", "body-ack", 1 | (1 << 2), ack);
  write_bytes ("fuzz-datagram", "body-endpoint", 1 | (3 << 2), where);
}

static void
datagram_reassemble_seed (void)
{
  g_autoptr(GByteArray) out = g_byte_array_new ();
  const char *text = "three fragments of one message, cut small: é ü ñ";
  g_autoptr(GPtrArray) bodies = gchat_datagram_split_text (GCHAT_DATAGRAM_MSG_ID (9, 4), 0,
                                                           text, strlen (text),
                                                           GCHAT_DATAGRAM_DATA_HEADER_SIZE + 20,
                                                           NULL);

  for (guint i = bodies->len; i > 0; i--)
    {
      GBytes *body = g_ptr_array_index (bodies, i - 1);

      append_record (out, g_bytes_get_data (body, NULL), g_bytes_get_size (body));
    }
  write_seed ("fuzz-datagram", "reassemble", (const guint8 *) "\2", 1, out->data, out->len);
}

/* Appends one conversation operation (see conversation_step in fuzz-datagram.c). */
static void
append_op (GByteArray   *out,
           guint8        op,
           const guint8 *data,
           gsize         len)
{
  g_byte_array_append (out, &op, 1);
  if ((op & 7) != 3)
    append_record (out, data, len);
}

static void
datagram_conversation_seed (void)
{
  g_autoptr(GByteArray) out = g_byte_array_new ();
  g_autoptr(GBytes) data = gchat_datagram_build_data (GCHAT_DATAGRAM_MSG_ID (9, 1),
                                                      GCHAT_DATAGRAM_MSG_ID (9, 1), 0, 1,
                                                      (const guint8 *) "hi", 2, NULL);
  guint64 ours = GCHAT_DATAGRAM_MSG_ID (7, 1);
  g_autoptr(GBytes) ack = gchat_datagram_build_ack (&ours, 1, NULL);
  g_autoptr(GBytes) hello_answer = gchat_datagram_build_ack (NULL, 0, NULL);

  append_op (out, 4, (const guint8 *) "hello bob", 9);
  append_op (out, 1 | (1 << 3), g_bytes_get_data (data, NULL), g_bytes_get_size (data));
  append_op (out, 3, NULL, 0);
  append_op (out, 2 | (3 << 3), g_bytes_get_data (ack, NULL), g_bytes_get_size (ack));
  append_op (out, 4, (const guint8 *) "unanswered", 10);
  append_op (out, 5 | (20 << 3), NULL, 0);
  append_op (out, 6, (const guint8 *) "\0", 1);
  append_op (out, 7, NULL, 0);
  append_op (out, 2, g_bytes_get_data (hello_answer, NULL), g_bytes_get_size (hello_answer));
  append_op (out, 5, (const guint8 *) "x", 1);
  write_seed ("fuzz-datagram", "conversation", (const guint8 *) "\3", 1, out->data, out->len);
}

static void
handshake_seeds (GchatRsaKey *key)
{
  g_autoptr(GchatHandshake) server = gchat_handshake_new_server (key);
  g_autoptr(GchatHandshake) client = gchat_handshake_new_client (key);
  g_autoptr(GBytes) hello = NULL, client_key = NULL;
  g_autoptr(GBytes) der = gchat_rsa_key_get_public_der (key);
  guint8 fields[1 + 64] = { GCHAT_PROTOCOL_VERSION };
  guint8 weak[1 + 32 + 32] = { GCHAT_PROTOCOL_VERSION };

  FUZZ_CHECK (gchat_handshake_step (server, NULL, &hello, NULL));
  FUZZ_CHECK (gchat_handshake_step (client, hello, &client_key, NULL));
  gchat_random_bytes (fields + 1, 64);
  write_bytes ("fuzz-handshake-client", "raw-hello", 0, hello);
  write_seed ("fuzz-handshake-client", "fields", (const guint8 *) "\1", 1, fields, sizeof fields);
  write_bytes ("fuzz-handshake-client", "der", 2, der);
  write_bytes ("fuzz-handshake-server", "raw-client-key", 0, client_key);
  gchat_random_bytes (fields + 1 + 32, 32);
  write_seed ("fuzz-handshake-server", "fields", (const guint8 *) "\1", 1, fields, sizeof fields);
  /* An all-zero X25519 key: the shared secret is zero, which must be refused. */
  write_seed ("fuzz-handshake-server", "weak-key", (const guint8 *) "\1", 1, weak, sizeof weak);
}

/* A real client's answer, untouched (0 flips), then two messages. */
static void
handshake_server_session_seeds (void)
{
  static const char *const messages[] = {
    "{\"type\":\"auth\",\"user\":\"alice\",\"password\":\"correct horse\",\"id\":1}",
    "{\"type\":\"talk\",\"user\":\"bob\",\"id\":2}",
  };
  g_autoptr(GByteArray) out = g_byte_array_new ();
  g_autoptr(GByteArray) frames = g_byte_array_new ();
  g_autoptr(GchatChannel) client = gchat_channel_new (fuzz_client_send_key, fuzz_server_send_key,
                                                      NULL);
  guint8 start[2] = { 2, 0 };

  g_byte_array_append (out, start, 2);
  for (guint i = 0; i < G_N_ELEMENTS (messages); i++)
    {
      g_autoptr(GBytes) frame = gchat_channel_seal (client, (const guint8 *) messages[i],
                                                    strlen (messages[i]), NULL);

      append_record (out, (const guint8 *) messages[i], strlen (messages[i]));
      g_byte_array_append (frames, g_bytes_get_data (frame, NULL), g_bytes_get_size (frame));
    }
  write_seed ("fuzz-handshake-server", "session", NULL, 0, out->data, out->len);
  write_seed ("fuzz-handshake-server", "channel", (const guint8 *) "\3", 1, frames->data,
              frames->len);
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GchatRsaKey) key = NULL;

  if (argc != 2)
    {
      g_printerr ("Usage: make-corpus CORPUS-DIR\n");
      return 2;
    }
  corpus_dir = argv[1];
  fuzz_init ();
  key = gchat_rsa_key_generate (GCHAT_RSA_KEY_MIN_BITS, NULL);
  FUZZ_CHECK (key != NULL);
  frame_seeds ();
  datagram_raw_seeds ();
  datagram_reassemble_seed ();
  datagram_conversation_seed ();
  handshake_seeds (key);
  handshake_server_session_seeds ();
  gchat_crypto_shutdown ();
  return 0;
}
