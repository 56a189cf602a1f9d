/* SPDX-License-Identifier: GPL-3.0-or-later */
/* gchat-cli's run: commands from a stream, in order, to a GchatClient, and its events out. */

#pragma once

#include <gio/gio.h>

#include "gchat-cli-output.h"
#include "gchat-client.h"

G_BEGIN_DECLS

/* How long the end of input waits for the messages sent so far to reach a final state. */
#define GCHAT_CLI_DRAIN_TIMEOUT_S  10
/* How long log-out may take before gchat-cli exits anyway. */
#define GCHAT_CLI_LOGOUT_TIMEOUT_S 15
/* Longer input lines are refused. */
#define GCHAT_CLI_MAX_LINE         (256 * 1024)

#define GCHAT_TYPE_CLI_SESSION (gchat_cli_session_get_type ())

G_DECLARE_FINAL_TYPE (GchatCliSession, gchat_cli_session, GCHAT, CLI_SESSION, GObject)

/* Takes @output. */
GchatCliSession *gchat_cli_session_new  (GchatClient     *client,
                                         GchatCliOutput  *output,
                                         GInputStream    *input);
/* Reads and runs commands until the end of input, `quit` or gchat_cli_session_stop(), then
 * logs out; returns the exit status. */
int              gchat_cli_session_run  (GchatCliSession *self);
/* Stops reading and ends as at the end of input; a second call ends at once. */
void             gchat_cli_session_stop (GchatCliSession *self);

G_END_DECLS
