/* SPDX-License-Identifier: GPL-3.0-or-later */
/* libFuzzer target: the message decoder, and the encoder on whatever the decoder accepted. */

#include "fuzz-common.h"
#include "gchat-message.h"

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  fuzz_init ();
  return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatMessage) message = gchat_message_decode (data, size, &error);
  g_autoptr(GchatMessage) again = NULL;
  g_autoptr(GBytes) wire = NULL;
  g_autoptr(GBytes) wire_again = NULL;

  if (message == NULL)
    {
      FUZZ_CHECK (error != NULL && error->domain == GCHAT_MESSAGE_ERROR);
      return 0;
    }
  FUZZ_CHECK (error == NULL);

  /* What the decoder takes is within every limit, so the encoder must take it too, and what
   * the encoder writes must decode to the same message. */
  wire = gchat_message_encode (message, &error);
  if (wire == NULL)
    {
      fprintf (stderr, "decoded but does not encode: %s\n", error->message);
      abort ();
    }
  again = gchat_message_decode (g_bytes_get_data (wire, NULL), g_bytes_get_size (wire), &error);
  if (again == NULL)
    {
      fprintf (stderr, "encoded but does not decode: %s\n", error->message);
      abort ();
    }
  FUZZ_CHECK (gchat_message_get_message_type (again) == gchat_message_get_message_type (message));
  wire_again = gchat_message_encode (again, &error);
  FUZZ_CHECK (wire_again != NULL);
  FUZZ_CHECK (g_bytes_equal (wire, wire_again));
  return 0;
}
