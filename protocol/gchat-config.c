/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Placeholder until written. */

#include "gchat-config.h"

int gchat_placeholder_config (void);
int gchat_placeholder_config (void) { return 0; }
