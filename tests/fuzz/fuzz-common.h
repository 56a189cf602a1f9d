/* SPDX-License-Identifier: GPL-3.0-or-later */
/* What every fuzz target shares: quiet logs, fatal criticals, fixed keys and an input reader. */

#pragma once

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "config.h"
#include "gchat-crypto.h"

/* The keys both sides of a sealed exchange use, so that the seed corpus (made by make-corpus)
 * holds datagrams and frames the targets can open. They protect nothing. */
static const guint8 fuzz_pair_key[32] = {
  0x66, 0x75, 0x7a, 0x7a, 0x20, 0x70, 0x61, 0x69, 0x72, 0x20, 0x6b, 0x65, 0x79, 0x20, 0x30, 0x31,
  0x02, 0x03, 0x05, 0x07, 0x0b, 0x0d, 0x11, 0x13, 0x17, 0x1d, 0x1f, 0x25, 0x29, 0x2b, 0x2f, 0x35,
};
static const guint8 fuzz_client_send_key[32] = {
  0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x20, 0x73, 0x65, 0x6e, 0x64, 0x20, 0x6b, 0x65, 0x79, 0x31,
  0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0, 0xb0, 0xc0, 0xd0, 0xe0, 0xf0, 0x01,
};
static const guint8 fuzz_server_send_key[32] = {
  0x73, 0x65, 0x72, 0x76, 0x65, 0x72, 0x20, 0x73, 0x65, 0x6e, 0x64, 0x20, 0x6b, 0x65, 0x79, 0x32,
  0x01, 0xf0, 0xe0, 0xd0, 0xc0, 0xb0, 0xa0, 0x90, 0x80, 0x70, 0x60, 0x50, 0x40, 0x30, 0x20, 0x10,
};
#define FUZZ_PAIR_KEY_ID   0x01020304u
#define FUZZ_ENDPOINT_ID   0x0a0b0c0du
#define FUZZ_SELF_USER     "alice"
#define FUZZ_PEER_USER     "bob"

/* An invariant of the code under test broke: report it as a crash libFuzzer keeps. */
#define FUZZ_CHECK(expr) \
  G_STMT_START { \
    if (G_UNLIKELY (!(expr))) \
      { \
        fprintf (stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #expr); \
        abort (); \
      } \
  } G_STMT_END

/* Warnings and debug messages are what hostile input should cause, so they are dropped; a
 * critical or an error is a programming error reached from input, so it aborts (a finding). */
static GLogWriterOutput
fuzz_log_writer (GLogLevelFlags   log_level,
                 const GLogField *fields,
                 gsize            n_fields,
                 gpointer         user_data)
{
  if (!(log_level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR)))
    return G_LOG_WRITER_HANDLED;
  g_log_writer_standard_streams (log_level, fields, n_fields, user_data);
  abort ();
}

/* Call from LLVMFuzzerInitialize, before anything logs. */
static inline void
fuzz_init (void)
{
  g_autoptr(GError) error = NULL;
  guint8 warm_up[GCHAT_X25519_SIZE];

  g_log_set_always_fatal (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR);
  g_log_set_writer_func (fuzz_log_writer, NULL, NULL);
  if (!gchat_crypto_init (&error))
    {
      fprintf (stderr, "fuzz: %s\n", error->message);
      abort ();
    }
  /* libgcrypt fills its random pool on first use and keeps it for the process's lifetime:
   * do that now, not in the first run, where the leak checker would count it. */
  gchat_random_bytes (warm_up, sizeof warm_up);
  atexit (gchat_crypto_shutdown);
}

/* A cursor over the fuzzer's input: reads past the end give zeros and empty slices, so a
 * target never needs to check lengths itself. */
typedef struct {
  const guint8 *data;
  gsize         len;
} FuzzInput;

static inline guint8
fuzz_input_u8 (FuzzInput *in)
{
  guint8 value;

  if (in->len == 0)
    return 0;
  value = in->data[0];
  in->data++;
  in->len--;
  return value;
}

static inline guint16
fuzz_input_u16 (FuzzInput *in)
{
  guint16 high = fuzz_input_u8 (in);

  return (guint16) ((high << 8) | fuzz_input_u8 (in));
}

/* Up to @want bytes; *@got says how many there were. */
static inline const guint8 *
fuzz_input_take (FuzzInput *in,
                 gsize      want,
                 gsize     *got)
{
  const guint8 *start = in->data;

  *got = MIN (want, in->len);
  in->data += *got;
  in->len -= *got;
  return start;
}

/* Exactly @len bytes, zero-padded when the input runs out. */
static inline void
fuzz_input_copy (FuzzInput *in,
                 guint8    *out,
                 gsize      len)
{
  gsize got;
  const guint8 *bytes = fuzz_input_take (in, len, &got);

  memcpy (out, bytes, got);
  memset (out + got, 0, len - got);
}
