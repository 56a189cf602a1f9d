/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Placeholder until written. */

#include "gchat-crypto.h"

int gchat_placeholder_crypto (void);
int gchat_placeholder_crypto (void) { return 0; }
