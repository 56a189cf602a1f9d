/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Placeholder until written. */

#include "gchat-frame.h"

int gchat_placeholder_frame (void);
int gchat_placeholder_frame (void) { return 0; }
