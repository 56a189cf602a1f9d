/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Placeholder until written. */

#include "gchat-channel.h"

int gchat_placeholder_channel (void);
int gchat_placeholder_channel (void) { return 0; }
