/* SPDX-License-Identifier: GPL-3.0-or-later */
/* libFuzzer target: the client's handshake step and the hello's key check, fed a server hello. */

#include "fuzz-common.h"
#include "gchat-handshake.h"

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* The key the client expects, made once per process: 2048 bits, the smallest allowed, to
 * keep start-up short. */
static GchatRsaKey *server_public;
static GBytes *server_der;

/* The input's first byte picks one of these; make-corpus writes seeds for each. */
enum {
  MODE_RAW,      /* the rest is the hello */
  MODE_FIELDS,   /* the rest gives version, challenge and X25519 key; the key is the expected one */
  MODE_DER,      /* a well-formed hello whose key (DER) is the rest of the input */
};

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatRsaKey) key = NULL;

  fuzz_init ();
  key = gchat_rsa_key_generate (GCHAT_RSA_KEY_MIN_BITS, &error);
  FUZZ_CHECK (key != NULL);
  server_der = gchat_rsa_key_get_public_der (key);
  server_public = gchat_rsa_key_new_from_public_der (server_der, &error);
  FUZZ_CHECK (server_public != NULL);
  return 0;
}

/* magic, version, challenge, X25519 key, key length and key, as the server writes a hello. */
static GBytes *
build_hello (FuzzInput    *in,
             guint8        mode,
             const guint8 *der,
             gsize         der_len)
{
  GByteArray *hello = g_byte_array_new ();
  guint8 fixed[1 + GCHAT_HANDSHAKE_CHALLENGE_SIZE + GCHAT_X25519_SIZE];
  guint8 len_be[2] = { (guint8) (der_len >> 8), (guint8) der_len };

  fuzz_input_copy (in, fixed, sizeof fixed);
  /* Mostly the right version, so that the rest is reached. */
  if ((mode & 4) == 0)
    fixed[0] = GCHAT_PROTOCOL_VERSION;
  g_byte_array_append (hello, (const guint8 *) GCHAT_HANDSHAKE_MAGIC, GCHAT_HANDSHAKE_MAGIC_SIZE);
  g_byte_array_append (hello, fixed, sizeof fixed);
  g_byte_array_append (hello, len_be, sizeof len_be);
  g_byte_array_append (hello, der, der_len);
  return g_byte_array_free_to_bytes (hello);
}

/* gchat-session's order: read the key the hello carries, then answer it. */
static void
check_hello (GBytes *hello)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatRsaKey) key = gchat_handshake_hello_get_server_key (hello, &error);
  g_autoptr(GchatHandshake) handshake = gchat_handshake_new_client (server_public);
  g_autoptr(GBytes) client_key = NULL;
  g_autoptr(GBytes) again = NULL;
  g_autoptr(GchatChannel) channel = NULL;
  guint8 exported[32];

  FUZZ_CHECK (key != NULL || (error != NULL && error->domain == GCHAT_HANDSHAKE_ERROR));
  FUZZ_CHECK (key == NULL || gchat_rsa_key_get_bits (key) >= GCHAT_RSA_KEY_MIN_BITS);
  g_clear_error (&error);
  if (!gchat_handshake_step (handshake, hello, &client_key, &error))
    {
      FUZZ_CHECK (error != NULL && client_key == NULL);
      FUZZ_CHECK (!gchat_handshake_is_done (handshake));
      return;
    }
  /* The client accepted only a hello that carries its own key. */
  FUZZ_CHECK (key != NULL);
  FUZZ_CHECK (gchat_handshake_is_done (handshake) && client_key != NULL);
  FUZZ_CHECK (gchat_handshake_get_transcript_hash (handshake) != NULL);
  FUZZ_CHECK (gchat_handshake_export (handshake, "endpoint", exported, sizeof exported, NULL));
  channel = gchat_handshake_steal_channel (handshake);
  FUZZ_CHECK (channel != NULL);
  /* A second hello is out of turn. */
  FUZZ_CHECK (!gchat_handshake_step (handshake, hello, &again, NULL) && again == NULL);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  FuzzInput in = { data, size };
  guint8 mode = fuzz_input_u8 (&in);
  g_autoptr(GBytes) hello = NULL;

  switch (mode % 3)
    {
    case MODE_RAW:
      hello = g_bytes_new (in.data, in.len);
      break;
    case MODE_FIELDS:
      hello = build_hello (&in, mode, g_bytes_get_data (server_der, NULL),
                           g_bytes_get_size (server_der));
      break;
    default:
      {
        guint8 fixed[1 + GCHAT_HANDSHAKE_CHALLENGE_SIZE + GCHAT_X25519_SIZE] = { 0 };
        FuzzInput header = { fixed, sizeof fixed };

        hello = build_hello (&header, 0, in.data, in.len);
      }
      break;
    }
  check_hello (hello);
  return 0;
}
