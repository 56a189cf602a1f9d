/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Placeholder until written. */

#include "gchat-handshake.h"

int gchat_placeholder_handshake (void);
int gchat_placeholder_handshake (void) { return 0; }
