/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Placeholder until written. */

#include "gchat-rsa-key.h"

int gchat_placeholder_rsa_key (void);
int gchat_placeholder_rsa_key (void) { return 0; }
