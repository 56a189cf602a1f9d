/* SPDX-License-Identifier: GPL-3.0-or-later */
/* libFuzzer target: the YAML configuration parser, then every getter on what it accepted. */

#include "fuzz-common.h"
#include "gchat-config.h"

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
  g_autoptr(GchatConfig) config = NULL;
  GchatArgon2Params params;
  const char * const *warnings;

  /* A base folder that does not exist: paths in the file are resolved, never opened. */
  config = gchat_config_new_from_data ((const char *) data, size, "fuzz.yaml",
                                       "/nonexistent/gchat-fuzz", &error);
  if (config == NULL)
    {
      FUZZ_CHECK (error != NULL && error->domain == GCHAT_CONFIG_ERROR);
      return 0;
    }
  warnings = gchat_config_get_warnings (config);
  FUZZ_CHECK (warnings != NULL);
  for (gsize i = 0; warnings[i] != NULL; i++)
    FUZZ_CHECK (g_utf8_validate (warnings[i], -1, NULL));
  FUZZ_CHECK (gchat_config_get_server_address (config) != NULL);
  FUZZ_CHECK (gchat_config_get_server_port (config) >= 1);
  (void) gchat_config_get_server_certificate (config);
  (void) gchat_config_get_server_private_key (config);
  (void) gchat_config_get_data_base (config);
  (void) gchat_config_get_max_connections (config);
  (void) gchat_config_get_int (config, "login_timeout");
  (void) gchat_config_get_bool (config, "allow_sign_up");
  gchat_config_get_argon2_params (config, &params);
  FUZZ_CHECK (gchat_argon2_params_validate (&params, NULL));
  return 0;
}
