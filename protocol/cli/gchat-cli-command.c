/* SPDX-License-Identifier: GPL-3.0-or-later */
/* One line of gchat-cli's standard input parsed into a command, with the original's words. */

#include "config.h"

#include <string.h>

#include <glib/gi18n-lib.h>

#include "gchat-crypto.h"
#include "gchat-cli-command.h"
#include "gchat-cli-line-reader.h"

typedef enum {
  ARGS_NONE,        /* list, help, quit */
  ARGS_USER_SECRET, /* sign, auth: USER, then the rest of the line */
  ARGS_USER_TEXT,   /* send: USER, then the rest of the line as typed */
  ARGS_REST,        /* trust: the rest of the line, trimmed */
} Args;

typedef struct {
  const char         *word;
  GchatCliCommandType type;
  Args                args;
  const char         *usage;
} CommandInfo;

static const CommandInfo commands[] = {
  { "sign", GCHAT_CLI_COMMAND_SIGN, ARGS_USER_SECRET, N_("Usage: sign USER PASSWORD") },
  { "auth", GCHAT_CLI_COMMAND_AUTH, ARGS_USER_SECRET, N_("Usage: auth USER PASSWORD") },
  { "list", GCHAT_CLI_COMMAND_LIST, ARGS_NONE, N_("Usage: list (no arguments)") },
  { "send", GCHAT_CLI_COMMAND_SEND, ARGS_USER_TEXT, N_("Usage: send USER TEXT") },
  { "trust", GCHAT_CLI_COMMAND_TRUST, ARGS_REST, N_("Usage: trust FINGERPRINT") },
  { "help", GCHAT_CLI_COMMAND_HELP, ARGS_NONE, N_("Usage: help (no arguments)") },
  { "quit", GCHAT_CLI_COMMAND_QUIT, ARGS_NONE, N_("Usage: quit (no arguments)") },
  /* The original's word for quitting. */
  { "stop", GCHAT_CLI_COMMAND_QUIT, ARGS_NONE, N_("Usage: stop (no arguments)") },
};

void
gchat_cli_command_free (GchatCliCommand *command)
{
  if (command == NULL)
    return;
  if (command->password != NULL)
    gchat_memzero (command->password, strlen (command->password));
  g_free (command->password);
  g_free (command->user);
  g_free (command->text);
  g_free (command);
}

static gboolean
check_encoding (const char *line,
                gsize       len,
                GError    **error)
{
  if (memchr (line, '\0', len) != NULL || !g_utf8_validate (line, len, NULL))
    {
      g_set_error_literal (error, GCHAT_CLI_ERROR, GCHAT_CLI_ERROR_BAD_ENCODING,
                           _("The line is not UTF-8 text (or holds a NUL byte) and was skipped"));
      return FALSE;
    }
  return TRUE;
}

static const CommandInfo *
find_command (const char *word,
              gsize       len,
              GError    **error)
{
  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
    {
      if (strlen (commands[i].word) == len && g_ascii_strncasecmp (word, commands[i].word, len) == 0)
        return &commands[i];
    }
  /* The word is not quoted back: a person may have typed a password on a line of its own. */
  g_set_error_literal (error, GCHAT_CLI_ERROR, GCHAT_CLI_ERROR_UNKNOWN_COMMAND,
                       _("Unknown command; the commands are sign, auth, list, send, trust, help "
                         "and quit"));
  return NULL;
}

static gboolean
usage_error (const CommandInfo *info,
             GError           **error)
{
  g_set_error_literal (error, GCHAT_CLI_ERROR, GCHAT_CLI_ERROR_USAGE, _(info->usage));
  return FALSE;
}

/* Fills @command from @rest, what follows the command word (NUL-terminated). */
static gboolean
parse_arguments (const CommandInfo *info,
                 const char        *rest,
                 GchatCliCommand   *command,
                 GError           **error)
{
  const char *user_end;
  g_autofree char *trimmed = NULL;

  rest += strspn (rest, " \t");
  switch (info->args)
    {
    case ARGS_NONE:
      return *rest == '\0' ? TRUE : usage_error (info, error);
    case ARGS_REST:
      trimmed = g_strstrip (g_strdup (rest));
      if (*trimmed == '\0')
        return usage_error (info, error);
      command->text = g_steal_pointer (&trimmed);
      return TRUE;
    case ARGS_USER_SECRET:
    case ARGS_USER_TEXT:
    default:
      user_end = strchr (rest, ' ');
      /* USER, exactly one space, then the rest as typed (a password may hold spaces too). */
      if (user_end == NULL || user_end == rest || user_end[1] == '\0')
        return usage_error (info, error);
      command->user = g_strndup (rest, user_end - rest);
      if (info->args == ARGS_USER_SECRET)
        command->password = g_strdup (user_end + 1);
      else
        command->text = g_strdup (user_end + 1);
      return TRUE;
    }
}

GchatCliCommand *
gchat_cli_command_parse (const char *line,
                         gsize       len,
                         GError    **error)
{
  g_autoptr(GchatCliCommand) command = g_new0 (GchatCliCommand, 1);
  const CommandInfo *info;
  const char *word;
  gsize word_len;

  g_return_val_if_fail (line != NULL || len == 0, NULL);

  if (!check_encoding (line, len, error))
    return NULL;
  /* After the check, @line holds no NUL before @len, and the reader ended it with one. */
  word = line + strspn (line, " \t");
  word_len = strcspn (word, " \t");
  if (word_len == 0)
    {
      command->type = GCHAT_CLI_COMMAND_NONE;
      return g_steal_pointer (&command);
    }
  info = find_command (word, word_len, error);
  if (info == NULL)
    return NULL;
  command->type = info->type;
  if (!parse_arguments (info, word + word_len, command, error))
    return NULL;
  return g_steal_pointer (&command);
}

char *
gchat_cli_normalize_fingerprint (const char *typed)
{
  g_autoptr(GString) hex = g_string_new (NULL);
  GString *grouped;

  g_return_val_if_fail (typed != NULL, NULL);

  for (const char *p = typed; *p != '\0'; p++)
    {
      if (g_ascii_isxdigit (*p))
        g_string_append_c (hex, g_ascii_tolower (*p));
      else if (*p != ' ' && *p != ':' && *p != '\t')
        return g_strstrip (g_strdup (typed));
    }
  if (hex->len != 2 * GCHAT_SHA256_SIZE)
    return g_strstrip (g_strdup (typed));

  grouped = g_string_sized_new (hex->len + hex->len / 4);
  for (gsize i = 0; i < hex->len; i += 4)
    {
      if (i > 0)
        g_string_append_c (grouped, ' ');
      g_string_append_len (grouped, hex->str + i, 4);
    }
  return g_string_free (grouped, FALSE);
}
