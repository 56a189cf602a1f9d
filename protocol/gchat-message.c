/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Placeholder until written. */

#include "gchat-message.h"

int gchat_placeholder_message (void);
int gchat_placeholder_message (void) { return 0; }
