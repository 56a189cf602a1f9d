/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Prints how fast the protocol library's building blocks run on this machine (not a test). */

#include "config.h"

#include <string.h>

#include "gchat-channel.h"
#include "gchat-crypto.h"
#include "gchat-frame.h"
#include "gchat-handshake.h"
#include "gchat-message.h"
#include "gchat-rsa-key.h"

static int
compare_doubles (gconstpointer a,
                 gconstpointer b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return (x > y) - (x < y);
}

static double
median (GArray *samples)
{
  g_array_sort (samples, compare_doubles);
  return g_array_index (samples, double, samples->len / 2);
}

static void
print_row (const char *what,
           const char *value)
{
  g_print ("| %-48s | %30s |\n", what, value);
}

/* Seal 200-byte messages, cut the stream into odd chunks, decode and open them again. */
static void
bench_sealed_frames (void)
{
  const guint n = 200000;
  guint8 k1[GCHAT_KEY_SIZE], k2[GCHAT_KEY_SIZE], plain[200];
  g_autoptr(GchatChannel) sender = NULL;
  g_autoptr(GchatChannel) receiver = NULL;
  g_autoptr(GchatFrameDecoder) decoder = gchat_frame_decoder_new (GCHAT_FRAME_MAX_PAYLOAD);
  gint64 start, elapsed;
  guint opened = 0;
  g_autofree char *rate = NULL;

  gchat_random_bytes (k1, sizeof k1);
  gchat_random_bytes (k2, sizeof k2);
  memset (plain, 'x', sizeof plain);
  sender = gchat_channel_new (k1, k2, NULL);
  receiver = gchat_channel_new (k2, k1, NULL);

  start = g_get_monotonic_time ();
  for (guint i = 0; i < n; i++)
    {
      g_autoptr(GBytes) frame = gchat_channel_seal (sender, plain, sizeof plain, NULL);
      gsize len;
      const guint8 *data = g_bytes_get_data (frame, &len);
      GBytes *payload;

      /* Two pushes per frame, as a socket would split them. */
      gchat_frame_decoder_push (decoder, data, 7, NULL);
      gchat_frame_decoder_push (decoder, data + 7, len - 7, NULL);
      while ((payload = gchat_frame_decoder_pop (decoder)) != NULL)
        {
          g_autoptr(GBytes) opened_plain = gchat_channel_open (receiver, payload, NULL);

          opened += opened_plain != NULL;
          g_bytes_unref (payload);
        }
    }
  elapsed = g_get_monotonic_time () - start;
  g_assert_cmpuint (opened, ==, n);
  rate = g_strdup_printf ("%.0f frames/s (%.1f MB/s)", n / (elapsed / 1e6),
                          n * 200.0 / elapsed);
  print_row ("sealed frame encode+decode, 200-byte messages", rate);
}

static void
bench_messages (void)
{
  const guint n = 100000;
  gint64 start, elapsed;
  g_autofree char *rate = NULL;

  start = g_get_monotonic_time ();
  for (guint i = 0; i < n; i++)
    {
      g_autoptr(GchatMessage) msg = gchat_message_new (GCHAT_MESSAGE_AUTH);
      g_autoptr(GBytes) bytes = NULL;
      g_autoptr(GchatMessage) back = NULL;

      gchat_message_set_string (msg, "user", "alice");
      gchat_message_set_string (msg, "password", "correct horse battery staple");
      gchat_message_set_int (msg, "id", i);
      bytes = gchat_message_encode (msg, NULL);
      back = gchat_message_decode (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes), NULL);
      g_assert_nonnull (back);
    }
  elapsed = g_get_monotonic_time () - start;
  rate = g_strdup_printf ("%.0f messages/s", n / (elapsed / 1e6));
  print_row ("JSON message encode+decode (auth)", rate);
}

static void
bench_argon2id (void)
{
  GchatArgon2Params params;
  guint8 salt[16], out[32];
  g_autoptr(GArray) samples = g_array_new (FALSE, FALSE, sizeof (double));
  g_autofree char *label = NULL;
  g_autofree char *value = NULL;

  gchat_argon2_params_init_default (&params);
  gchat_random_bytes (salt, sizeof salt);
  for (guint i = 0; i < 5; i++)
    {
      gint64 start = g_get_monotonic_time ();
      double ms;

      if (!gchat_argon2id (&params, (const guint8 *) "password123", 11, salt, sizeof salt,
                           NULL, 0, NULL, 0, out, sizeof out, NULL))
        g_error ("Argon2id failed");
      ms = (g_get_monotonic_time () - start) / 1000.0;
      g_array_append_val (samples, ms);
    }
  label = g_strdup_printf ("Argon2id, default cost (m=%u KiB, t=%u, p=%u)", params.memory_kib,
                           params.iterations, params.parallelism);
  value = g_strdup_printf ("%.1f ms", median (samples));
  print_row (label, value);
}

static void
bench_rsa (GchatRsaKey *key)
{
  guint8 k[GCHAT_KEY_SIZE], out[GCHAT_KEY_SIZE];
  g_autoptr(GBytes) wrapped = NULL;
  g_autoptr(GArray) samples = g_array_new (FALSE, FALSE, sizeof (double));
  g_autofree char *value = NULL;

  gchat_random_bytes (k, sizeof k);
  wrapped = gchat_rsa_key_wrap (key, k, sizeof k, "bench", NULL);
  for (guint i = 0; i < 50; i++)
    {
      gint64 start = g_get_monotonic_time ();
      double ms;

      if (!gchat_rsa_key_unwrap (key, g_bytes_get_data (wrapped, NULL), g_bytes_get_size (wrapped),
                                 "bench", out, sizeof out, NULL))
        g_error ("RSA unwrap failed");
      ms = (g_get_monotonic_time () - start) / 1000.0;
      g_array_append_val (samples, ms);
    }
  value = g_strdup_printf ("%.2f ms", median (samples));
  print_row ("RSA-3072 OAEP-SHA256 unwrap", value);
}

static void
bench_x25519 (void)
{
  const guint n = 2000;
  guint8 a[32], a_pub[32], b[32], b_pub[32], shared[32];
  gint64 start, elapsed;
  g_autofree char *value = NULL;

  gchat_x25519_keypair (b, b_pub, NULL);
  start = g_get_monotonic_time ();
  for (guint i = 0; i < n; i++)
    {
      gchat_x25519_keypair (a, a_pub, NULL);
      gchat_x25519 (a, b_pub, shared, NULL);
    }
  elapsed = g_get_monotonic_time () - start;
  value = g_strdup_printf ("%.0f us (key pair + shared secret)", (double) elapsed / n);
  print_row ("X25519", value);
}

/* Both sides' full handshake, the server's part being the RSA unwrap and key schedule. */
static void
bench_handshake (GchatRsaKey *key)
{
  const guint n = 200;
  gint64 start, elapsed;
  g_autofree char *value = NULL;

  start = g_get_monotonic_time ();
  for (guint i = 0; i < n; i++)
    {
      g_autoptr(GchatHandshake) server = gchat_handshake_new_server (key);
      g_autoptr(GchatHandshake) client = gchat_handshake_new_client (key);
      g_autoptr(GBytes) hello = NULL;
      g_autoptr(GBytes) client_key = NULL;
      GBytes *none = NULL;

      if (!gchat_handshake_step (server, NULL, &hello, NULL) ||
          !gchat_handshake_step (client, hello, &client_key, NULL) ||
          !gchat_handshake_step (server, client_key, &none, NULL))
        g_error ("handshake failed");
    }
  elapsed = g_get_monotonic_time () - start;
  value = g_strdup_printf ("%.0f /s (%.2f ms each)", n / (elapsed / 1e6), elapsed / 1000.0 / n);
  print_row ("full handshake, both sides in one thread", value);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatRsaKey) key = NULL;

  if (!gchat_crypto_init (&error))
    g_error ("%s", error->message);
  key = gchat_rsa_key_generate (GCHAT_RSA_KEY_BITS, &error);
  if (key == NULL)
    g_error ("%s", error->message);

  g_print ("| %-48s | %30s |\n", "gchat protocol benchmark (one core)", "result");
  g_print ("|%s|%s|\n", "--------------------------------------------------",
           "--------------------------------");
  bench_sealed_frames ();
  bench_messages ();
  bench_argon2id ();
  bench_rsa (key);
  bench_x25519 ();
  bench_handshake (key);
  g_clear_object (&key);
  gchat_crypto_shutdown ();
  return 0;
}
