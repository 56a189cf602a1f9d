/* SPDX-License-Identifier: GPL-3.0-or-later */
/* One line of gchat-cli's standard input parsed into a command, with the original's words. */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
  GCHAT_CLI_COMMAND_NONE,  /* an empty line: nothing to do */
  GCHAT_CLI_COMMAND_SIGN,  /* sign USER PASSWORD */
  GCHAT_CLI_COMMAND_AUTH,  /* auth USER PASSWORD */
  GCHAT_CLI_COMMAND_LIST,  /* list */
  GCHAT_CLI_COMMAND_SEND,  /* send USER TEXT… */
  GCHAT_CLI_COMMAND_TRUST, /* trust FINGERPRINT (an addition) */
  GCHAT_CLI_COMMAND_HELP,  /* help */
  GCHAT_CLI_COMMAND_QUIT,  /* quit (or the original's STOP) */
} GchatCliCommandType;

typedef struct {
  GchatCliCommandType type;
  char               *user;     /* sign, auth, send */
  char               *password; /* sign, auth: wiped when the command is freed */
  char               *text;     /* send: the text as typed; trust: the fingerprint */
} GchatCliCommand;

/* @line is @len bytes without its newline. Fails with a GCHAT_CLI_ERROR whose message never
 * quotes more of the line than the command word, since the line may hold a password. */
GchatCliCommand *gchat_cli_command_parse (const char       *line,
                                          gsize             len,
                                          GError          **error);
void             gchat_cli_command_free  (GchatCliCommand  *command);

/* The fingerprint as gchat formats it ("3f2a 9c01 …", lower case) when @typed is 64 hex digits
 * in any grouping; otherwise @typed with the spaces around it removed. */
char            *gchat_cli_normalize_fingerprint (const char *typed);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (GchatCliCommand, gchat_cli_command_free)

G_END_DECLS
