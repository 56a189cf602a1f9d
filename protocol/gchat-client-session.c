/* SPDX-License-Identifier: GPL-3.0-or-later */
/* GchatClient's connection to gchatd: trust in the server's key, logging in, reconnecting
 * with backoff, and the messages that are not about peers. */

#include "config.h"

#include <string.h>

#include <glib/gi18n-lib.h>

#include "gchat-client-private.h"
#include "gchat-crypto.h"
#include "gchat-handshake.h"
#include "gchat-known-servers.h"

#define RECONNECT_FIRST_S 1
#define RECONNECT_MAX_S   30
/* A logged-in client that has sent nothing for this long sends a ping (PROTOCOL.md §5.1). */
#define PING_AFTER_US     (25 * G_USEC_PER_SEC)
#define PING_CHECK_S      5
/* How long log-out waits for messages being posted to the server. */
#define LOGOUT_FLUSH_MS   5000
/* The most names one online list may have. */
#define LIST_MAX_NAMES    (1000 * 1000)

static void connect_start (GchatClient *self);

void
gchat_request_free (GchatRequest *request)
{
  if (request->task != NULL)
    {
      g_task_return_new_error (request->task, GCHAT_CLIENT_ERROR, GCHAT_CLIENT_ERROR_CLOSED,
                               "%s", _("The connection to the server ended"));
      g_object_unref (request->task);
    }
  g_free (request->peer);
  g_free (request);
}

gint64
gchat_client_new_request (GchatClient      *self,
                          GchatRequestKind  kind)
{
  GchatRequest *request = g_new0 (GchatRequest, 1);
  gint64 id = self->next_request_id;

  self->next_request_id = id >= G_MAXINT32 ? 1 : id + 1;
  request->id = id;
  request->kind = kind;
  g_hash_table_insert (self->requests, &request->id, request);
  return id;
}

gboolean
gchat_client_send_message (GchatClient  *self,
                           GchatMessage *message)
{
  return self->session != NULL && gchat_session_send (self->session, message);
}

static void
forget_ticket (GchatClient *self)
{
  g_clear_pointer (&self->resume_ticket, g_bytes_unref);
  g_clear_pointer (&self->resume_secret, gchat_wiped_buffer_free);
  self->resume_expires = 0;
}

/* The resumption ticket goes with the password: both only let this process log in again. */
void
gchat_client_forget_password (GchatClient *self)
{
  if (self->password != NULL)
    {
      gchat_memzero (self->password, strlen (self->password));
      g_clear_pointer (&self->password, g_free);
    }
  forget_ticket (self);
}

/* Keeps the ticket of a successful log-in, for the next reconnection. */
static void
keep_ticket (GchatClient  *self,
             GchatMessage *result)
{
  GBytes *ticket = gchat_message_get_bytes (result, "resume");
  GBytes *secret = gchat_message_get_bytes (result, "resume_secret");

  forget_ticket (self);
  if (ticket == NULL || secret == NULL || !gchat_message_has_field (result, "resume_expires"))
    return;
  self->resume_ticket = g_bytes_ref (ticket);
  self->resume_secret = gchat_wiped_buffer_new (GCHAT_RESUME_SECRET_SIZE);
  memcpy (self->resume_secret, g_bytes_get_data (secret, NULL), GCHAT_RESUME_SECRET_SIZE);
  self->resume_expires = gchat_message_get_int (result, "resume_expires");
}

/* Whether the next connection resumes: only a reconnection, never the user's own log-in, and
 * only with a ticket that has a minute left. */
static gboolean
can_resume (GchatClient *self)
{
  return self->login_task == NULL && self->resume_ticket != NULL
         && self->resume_expires - 60 > g_get_real_time () / G_USEC_PER_SEC;
}

/* Errors for people */

static const struct {
  const char       *code;
  GchatClientError  error;
  const char       *message;
} result_codes[] = {
  { "bad-credentials", GCHAT_CLIENT_ERROR_BAD_CREDENTIALS, N_("Wrong user name or password") },
  { "name-taken", GCHAT_CLIENT_ERROR_NAME_TAKEN, N_("This name is taken; choose another one") },
  { "bad-name", GCHAT_CLIENT_ERROR_BAD_NAME,
    N_("This user name is not allowed: use 1–32 letters, digits, dots, dashes or underscores") },
  { "bad-password", GCHAT_CLIENT_ERROR_BAD_PASSWORD,
    N_("The password must be 8 to 1024 bytes long") },
  { "sign-up-closed", GCHAT_CLIENT_ERROR_SIGN_UP_CLOSED,
    N_("This server takes no new accounts; ask its administrator") },
  { "unknown-user", GCHAT_CLIENT_ERROR_UNKNOWN_USER, N_("There is no user of that name") },
  { "mailbox-full", GCHAT_CLIENT_ERROR_MAILBOX_FULL,
    N_("The recipient has too many messages waiting; try again later") },
  { "not-logged-in", GCHAT_CLIENT_ERROR_NOT_LOGGED_IN, N_("Log in first") },
};

GError *
gchat_client_error_from_result (GchatMessage *result,
                                guint        *retry_after)
{
  const char *code = gchat_message_get_string (result, "code");
  guint wait = (guint) gchat_message_get_int (result, "retry_after");

  if (retry_after != NULL)
    *retry_after = wait;
  if (g_strcmp0 (code, "throttled") == 0)
    return g_error_new (GCHAT_CLIENT_ERROR, GCHAT_CLIENT_ERROR_THROTTLED,
                        ngettext ("Too many attempts; try again in %u second",
                                  "Too many attempts; try again in %u seconds", wait), wait);
  if (g_strcmp0 (code, "busy") == 0)
    return g_error_new (GCHAT_CLIENT_ERROR, GCHAT_CLIENT_ERROR_BUSY,
                        ngettext ("The server is busy; try again in %u second",
                                  "The server is busy; try again in %u seconds", wait), wait);
  for (gsize i = 0; i < G_N_ELEMENTS (result_codes); i++)
    if (g_strcmp0 (code, result_codes[i].code) == 0)
      return g_error_new_literal (GCHAT_CLIENT_ERROR, result_codes[i].error,
                                  _(result_codes[i].message));
  return g_error_new_literal (GCHAT_CLIENT_ERROR, GCHAT_CLIENT_ERROR_FAILED,
                              _("The server could not do this; try again later"));
}

/* Sessions end */

void
gchat_client_drop_session (GchatClient *self)
{
  g_autoptr(GchatSession) session = g_steal_pointer (&self->session);

  if (self->connect_cancellable != NULL)
    {
      g_cancellable_cancel (self->connect_cancellable);
      g_clear_object (&self->connect_cancellable);
    }
  g_clear_handle_id (&self->ping_source, g_source_remove);
  if (session != NULL)
    {
      g_signal_handlers_disconnect_by_data (session, self);
      gchat_session_close (session);
    }
  g_hash_table_remove_all (self->requests);
  g_clear_pointer (&self->list_names, g_ptr_array_unref);
  self->awaiting_list = FALSE;
  self->resuming = FALSE;
}

static void
login_task_fail (GchatClient *self,
                 GError      *error)
{
  g_autoptr(GTask) task = g_steal_pointer (&self->login_task);

  g_task_return_error (task, error);
}

static void
schedule_reconnect (GchatClient *self,
                    guint        delay_s,
                    const char  *reason);
static void give_up (GchatClient *self,
                     const char  *reason);

/* The session ended without us asking: retry if we were logged in, else report. */
static void
session_lost (GchatClient  *self,
              const GError *why)
{
  g_autofree char *reason = NULL;

  gchat_client_drop_session (self);
  gchat_client_peers_session_lost (self);
  if (self->logout_task != NULL)
    {
      g_autoptr(GTask) task = g_steal_pointer (&self->logout_task);

      give_up (self, _("Logged out"));
      g_task_return_boolean (task, TRUE);
      return;
    }
  if (self->login_task != NULL)
    {
      gchat_client_set_state (self, GCHAT_CLIENT_STATE_OFFLINE, why ? why->message : NULL);
      login_task_fail (self, why != NULL ? g_error_copy (why)
                                         : g_error_new_literal (GCHAT_CLIENT_ERROR,
                                                                GCHAT_CLIENT_ERROR_CLOSED,
                                                                _("The connection to the server ended")));
      return;
    }
  if (!self->logged_in_once || self->password == NULL)
    return;
  reason = g_strdup_printf (_("Connection lost (%s); reconnecting…"),
                            why != NULL ? why->message : _("closed"));
  schedule_reconnect (self, self->reconnect_delay_s, reason);
}

/* Ends for good: no more reconnecting. */
static void
give_up (GchatClient *self,
         const char  *reason)
{
  g_debug ("Offline for good: %s", reason);
  gchat_client_drop_session (self);
  gchat_client_peers_session_lost (self);
  g_clear_handle_id (&self->reconnect_source, g_source_remove);
  gchat_client_forget_password (self);
  self->logged_in_once = FALSE;
  gchat_online_users_clear (self->online);
  /* The session is over: what was not handed on fails visibly rather than vanish. */
  gchat_client_peers_end (self, reason);
  gchat_client_set_user (self, NULL);
  gchat_client_set_state (self, GCHAT_CLIENT_STATE_OFFLINE, reason);
}

static gboolean
reconnect_cb (gpointer user_data)
{
  GchatClient *self = user_data;

  self->reconnect_source = 0;
  connect_start (self);
  return G_SOURCE_REMOVE;
}

static void
schedule_reconnect (GchatClient *self,
                    guint        delay_s,
                    const char  *reason)
{
  guint delay_ms;

  g_debug ("%s (next attempt in about %u s)", reason, MAX (delay_s, 1));
  gchat_client_set_state (self, GCHAT_CLIENT_STATE_RECONNECTING, reason);
  g_clear_handle_id (&self->reconnect_source, g_source_remove);
  /* A little randomness, so that clients dropped together do not all come back together. */
  delay_ms = MAX (delay_s, 1) * 1000;
  delay_ms = delay_ms * 3 / 4 + g_random_int_range (0, delay_ms / 2 + 1);
  self->reconnect_source = g_timeout_add (delay_ms, reconnect_cb, self);
  self->reconnect_delay_s = MIN (MAX (self->reconnect_delay_s * 2, RECONNECT_FIRST_S),
                                 RECONNECT_MAX_S);
}

/* A failed attempt: for the user's own log-in, report it; while reconnecting, try again later
 * unless the server refused the account itself. */
static void
attempt_failed (GchatClient *self,
                GError      *error)
{
  gboolean transient = error->domain != GCHAT_CLIENT_ERROR
                       || error->code == GCHAT_CLIENT_ERROR_UNREACHABLE
                       || error->code == GCHAT_CLIENT_ERROR_CLOSED
                       || error->code == GCHAT_CLIENT_ERROR_BUSY
                       || error->code == GCHAT_CLIENT_ERROR_THROTTLED
                       || error->code == GCHAT_CLIENT_ERROR_FAILED;

  gchat_client_drop_session (self);
  if (self->login_task != NULL)
    {
      gchat_client_forget_password (self);
      gchat_client_set_state (self, GCHAT_CLIENT_STATE_OFFLINE, error->message);
      login_task_fail (self, error);
      return;
    }
  if (transient)
    {
      g_autofree char *reason = g_strdup_printf (_("%s; reconnecting…"), error->message);

      schedule_reconnect (self, MAX (self->reconnect_delay_s, self->retry_after), reason);
    }
  else
    give_up (self, error->message);
  g_error_free (error);
}

/* Trust */

/* Decides whether to trust the key the server presented: the configured key, else the key
 * pinned for this host and port, else (after confirmation) pin it. */
static gboolean
server_key_trusted (GchatClient  *self,
                    GchatRsaKey  *key,
                    GError      **error)
{
  g_autoptr(GchatKnownServers) known = NULL;
  g_autofree char *pinned = NULL;
  GchatKnownServerStatus status;

  g_set_object (&self->seen_key, key);
  g_free (self->seen_fingerprint);
  self->seen_fingerprint = gchat_rsa_key_get_fingerprint (key);
  g_clear_pointer (&self->pinned_fingerprint, g_free);

  if (self->server_key != NULL)
    {
      g_autoptr(GBytes) expected = gchat_rsa_key_get_public_der (self->server_key);
      g_autoptr(GBytes) presented = gchat_rsa_key_get_public_der (key);

      if (g_bytes_equal (expected, presented))
        return TRUE;
      self->pinned_fingerprint = gchat_rsa_key_get_fingerprint (self->server_key);
      g_set_error (error, GCHAT_CLIENT_ERROR, GCHAT_CLIENT_ERROR_SERVER_KEY_CHANGED,
                   _("The server’s key is not the configured one: it presented %s, the "
                     "configuration expects %s. Do not connect unless the administrator "
                     "confirms the change."), self->seen_fingerprint, self->pinned_fingerprint);
      return FALSE;
    }

  known = gchat_known_servers_new (self->known_servers_path);
  if (!gchat_known_servers_load (known, error))
    return FALSE;
  status = gchat_known_servers_check (known, self->host, self->port, key, &pinned);
  switch (status)
    {
    case GCHAT_KNOWN_SERVER_TRUSTED:
      return TRUE;
    case GCHAT_KNOWN_SERVER_CHANGED:
      self->pinned_fingerprint = g_steal_pointer (&pinned);
      g_set_error (error, GCHAT_CLIENT_ERROR, GCHAT_CLIENT_ERROR_SERVER_KEY_CHANGED,
                   _("The key of %s changed: it presented %s, but %s was trusted before. "
                     "Someone may be impersonating the server; do not connect unless its "
                     "administrator confirms the change."),
                   self->host, self->seen_fingerprint, self->pinned_fingerprint);
      return FALSE;
    case GCHAT_KNOWN_SERVER_UNKNOWN:
    default:
      if (self->accept_new_server_key)
        return gchat_known_servers_pin (known, self->host, self->port, key, error);
      g_set_error (error, GCHAT_CLIENT_ERROR, GCHAT_CLIENT_ERROR_SERVER_KEY_UNKNOWN,
                   _("%s is not known yet; its key fingerprint is %s. Trust it only if the "
                     "administrator confirms this fingerprint."),
                   self->host, self->seen_fingerprint);
      return FALSE;
    }
}

/* The hex digits of a fingerprint, lower-cased, however the user copied it. */
static char *
fingerprint_digits (const char *fingerprint)
{
  GString *digits = g_string_new (NULL);

  for (const char *p = fingerprint; *p != '\0'; p++)
    if (g_ascii_isxdigit (*p))
      g_string_append_c (digits, g_ascii_tolower (*p));
  return g_string_free (digits, FALSE);
}

gboolean
gchat_client_trust_server_key (GchatClient  *self,
                               const char   *fingerprint,
                               GError      **error)
{
  g_autoptr(GchatKnownServers) known = NULL;
  g_autofree char *wanted = NULL;
  g_autofree char *seen = NULL;

  g_return_val_if_fail (GCHAT_IS_CLIENT (self), FALSE);
  g_return_val_if_fail (fingerprint != NULL, FALSE);

  wanted = fingerprint_digits (fingerprint);
  seen = self->seen_fingerprint != NULL ? fingerprint_digits (self->seen_fingerprint) : NULL;
  if (seen == NULL || !g_str_equal (wanted, seen))
    {
      g_set_error_literal (error, GCHAT_CLIENT_ERROR, GCHAT_CLIENT_ERROR_SERVER_KEY_CHANGED,
                           _("This is not the fingerprint of the key the server presented"));
      return FALSE;
    }
  known = gchat_known_servers_new (self->known_servers_path);
  return gchat_known_servers_pin (known, self->host, self->port, self->seen_key, error);
}

/* Logging in */

static void session_message_cb (GchatSession *session,
                                GchatMessage *message,
                                GchatClient  *self);
static void session_closed_cb  (GchatSession *session,
                                const GError *why,
                                GchatClient  *self);

static void
send_login (GchatClient *self)
{
  g_autoptr(GchatMessage) request =
    gchat_message_new (self->login_is_sign ? GCHAT_MESSAGE_SIGN : GCHAT_MESSAGE_AUTH);
  gint64 id = gchat_client_new_request (self, GCHAT_REQUEST_LOGIN);

  gchat_message_set_string (request, "user", self->login_user);
  gchat_message_set_string (request, "password", self->password);
  gchat_message_set_int (request, "id", id);
  gchat_client_send_message (self, request);
}

static void
connected_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(GchatClient) self = user_data;
  g_autoptr(GchatSession) session = NULL;
  g_autoptr(GError) error = NULL;
  gboolean resume;

  session = gchat_session_connect_finish (result, &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  g_clear_object (&self->connect_cancellable);
  resume = can_resume (self);
  if (session == NULL
      || !server_key_trusted (self, gchat_session_get_server_key (session), &error)
      || !(resume ? gchat_session_start_resume (session, gchat_session_get_server_key (session),
                                                self->resume_ticket, self->resume_secret, &error)
                  : gchat_session_start (session, gchat_session_get_server_key (session), &error)))
    {
      if (session != NULL)
        gchat_session_close (session);
      attempt_failed (self, g_steal_pointer (&error));
      return;
    }
  self->session = g_steal_pointer (&session);
  g_signal_connect (self->session, "message", G_CALLBACK (session_message_cb), self);
  g_signal_connect (self->session, "closed", G_CALLBACK (session_closed_cb), self);
  /* A resumption logs in by the handshake itself: the server answers `result` "resume". */
  self->resuming = resume;
  if (!resume)
    send_login (self);
}

/* The server would not resume (or closed before it answered): the ticket is spent, and the
 * password logs in at once, as before resumption existed. */
static void
resume_refused (GchatClient *self,
                const char  *why)
{
  g_debug ("Session resumption refused (%s); logging in with the password", why);
  self->resuming = FALSE;
  forget_ticket (self);
  gchat_client_drop_session (self);
  if (self->password != NULL)
    connect_start (self);
  else
    give_up (self, why);
}

static void
connect_start (GchatClient *self)
{
  gchat_client_drop_session (self);
  self->connect_cancellable = g_cancellable_new ();
  gchat_session_connect_async (self->host, self->port, self->connect_cancellable, connected_cb,
                               g_object_ref (self));
}

static gboolean
ping_cb (gpointer user_data)
{
  GchatClient *self = user_data;

  if (self->session != NULL
      && g_get_monotonic_time () - gchat_session_get_last_sent (self->session) > PING_AFTER_US)
    {
      g_autoptr(GchatMessage) ping = gchat_message_new (GCHAT_MESSAGE_PING);

      gchat_client_send_message (self, ping);
    }
  return G_SOURCE_CONTINUE;
}

static void
request_list (GchatClient *self,
              GTask       *task)
{
  g_autoptr(GchatMessage) list = gchat_message_new (GCHAT_MESSAGE_LIST);
  gint64 id = gchat_client_new_request (self, GCHAT_REQUEST_LIST);
  GchatRequest *request = g_hash_table_lookup (self->requests, &id);

  request->task = task;
  gchat_message_set_int (list, "id", id);
  gchat_client_send_message (self, list);
}

static void
login_succeeded (GchatClient  *self,
                 GchatMessage *result)
{
  const char *user = gchat_message_get_string (result, "user");

  gchat_client_set_user (self, user != NULL ? user : self->login_user);
  self->logged_in_once = TRUE;
  keep_ticket (self, result);
  /* The account exists now: logging in again after a drop is an `auth`. */
  self->login_is_sign = FALSE;
  self->reconnect_delay_s = RECONNECT_FIRST_S;
  self->retry_after = 0;
  self->ping_source = g_timeout_add_seconds (PING_CHECK_S, ping_cb, self);
  self->awaiting_list = TRUE;
  request_list (self, NULL);
  gchat_client_set_state (self, GCHAT_CLIENT_STATE_ONLINE, NULL);
  gchat_client_peers_logged_in (self, (guint32) gchat_message_get_int (result, "endpoint_id"));
  if (self->login_task != NULL)
    {
      g_autoptr(GTask) task = g_steal_pointer (&self->login_task);

      g_task_return_boolean (task, TRUE);
    }
}

static void
login_answered (GchatClient  *self,
                GchatMessage *result)
{
  if (gchat_message_get_bool (result, "ok"))
    login_succeeded (self, result);
  else
    attempt_failed (self, gchat_client_error_from_result (result, &self->retry_after));
}

static void
login_async (GchatClient         *self,
             gboolean             sign,
             const char          *user,
             const char          *password,
             GCancellable        *cancellable,
             GAsyncReadyCallback  callback,
             gpointer             user_data,
             gpointer             source_tag)
{
  g_autoptr(GTask) task = g_task_new (self, cancellable, callback, user_data);

  g_task_set_source_tag (task, source_tag);
  if (self->login_task != NULL || self->state == GCHAT_CLIENT_STATE_ONLINE
      || self->state == GCHAT_CLIENT_STATE_RECONNECTING)
    {
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_PENDING, "%s",
                               _("Already logged in or logging in; log out first"));
      return;
    }
  gchat_client_forget_password (self);
  g_free (self->login_user);
  self->login_user = g_strdup (user);
  self->password = g_strdup (password);
  self->login_is_sign = sign;
  self->login_task = g_steal_pointer (&task);
  gchat_client_set_state (self, GCHAT_CLIENT_STATE_CONNECTING, NULL);
  connect_start (self);
}

void
gchat_client_sign_async (GchatClient         *self,
                         const char          *user,
                         const char          *password,
                         GCancellable        *cancellable,
                         GAsyncReadyCallback  callback,
                         gpointer             user_data)
{
  g_return_if_fail (GCHAT_IS_CLIENT (self));
  g_return_if_fail (user != NULL && password != NULL);

  login_async (self, TRUE, user, password, cancellable, callback, user_data,
               gchat_client_sign_async);
}

gboolean
gchat_client_sign_finish (GchatClient   *self,
                          GAsyncResult  *result,
                          GError       **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}

void
gchat_client_auth_async (GchatClient         *self,
                         const char          *user,
                         const char          *password,
                         GCancellable        *cancellable,
                         GAsyncReadyCallback  callback,
                         gpointer             user_data)
{
  g_return_if_fail (GCHAT_IS_CLIENT (self));
  g_return_if_fail (user != NULL && password != NULL);

  login_async (self, FALSE, user, password, cancellable, callback, user_data,
               gchat_client_auth_async);
}

gboolean
gchat_client_auth_finish (GchatClient   *self,
                          GAsyncResult  *result,
                          GError       **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}

/* Logging out */

static void
send_logout (GchatClient *self)
{
  g_autoptr(GchatMessage) logout = gchat_message_new (GCHAT_MESSAGE_LOGOUT);

  gchat_client_forget_password (self);
  self->logged_in_once = FALSE;
  if (!gchat_client_send_message (self, logout))
    session_lost (self, NULL);
}

static gboolean
logout_flush_cb (gpointer user_data)
{
  GchatClient *self = user_data;
  gint64 *deadline = g_object_get_data (G_OBJECT (self), "gchat-logout-deadline");

  if (self->logout_task == NULL)
    return G_SOURCE_REMOVE;
  if (gchat_client_peers_n_posting (self) > 0 && self->session != NULL
      && g_get_monotonic_time () < *deadline)
    return G_SOURCE_CONTINUE;
  send_logout (self);
  return G_SOURCE_REMOVE;
}

void
gchat_client_logout_async (GchatClient         *self,
                           GCancellable        *cancellable,
                           GAsyncReadyCallback  callback,
                           gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  gint64 *deadline;

  g_return_if_fail (GCHAT_IS_CLIENT (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, gchat_client_logout_async);
  if (self->logout_task != NULL)
    {
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_PENDING, "%s",
                               _("Already logging out"));
      return;
    }
  if (self->session == NULL || self->state != GCHAT_CLIENT_STATE_ONLINE)
    {
      give_up (self, _("Logged out"));
      g_task_return_boolean (task, TRUE);
      return;
    }
  self->logout_task = g_steal_pointer (&task);
  gchat_client_peers_flush_to_mailbox (self);
  deadline = g_new (gint64, 1);
  *deadline = g_get_monotonic_time () + LOGOUT_FLUSH_MS * 1000;
  g_object_set_data_full (G_OBJECT (self), "gchat-logout-deadline", deadline, g_free);
  if (logout_flush_cb (self) == G_SOURCE_CONTINUE)
    g_timeout_add (50, logout_flush_cb, self);
}

gboolean
gchat_client_logout_finish (GchatClient   *self,
                            GAsyncResult  *result,
                            GError       **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}

/* The online list */

void
gchat_client_list_async (GchatClient         *self,
                         GCancellable        *cancellable,
                         GAsyncReadyCallback  callback,
                         gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;

  g_return_if_fail (GCHAT_IS_CLIENT (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, gchat_client_list_async);
  if (self->state != GCHAT_CLIENT_STATE_ONLINE)
    {
      g_task_return_new_error (task, GCHAT_CLIENT_ERROR, GCHAT_CLIENT_ERROR_NOT_LOGGED_IN, "%s",
                               _("Log in first"));
      return;
    }
  request_list (self, g_steal_pointer (&task));
}

char **
gchat_client_list_finish (GchatClient   *self,
                          GAsyncResult  *result,
                          GError       **error)
{
  return g_task_propagate_pointer (G_TASK (result), error);
}

/* Everyone online but us. */
static GPtrArray *
others (GchatClient        *self,
        const char * const *names)
{
  GPtrArray *list = g_ptr_array_new_with_free_func (g_free);

  for (guint i = 0; names != NULL && names[i] != NULL; i++)
    if (self->user == NULL || g_ascii_strcasecmp (names[i], self->user) != 0)
      g_ptr_array_add (list, g_strdup (names[i]));
  return list;
}

static void
users_received (GchatClient  *self,
                GchatMessage *users,
                GchatRequest *request)
{
  g_auto(GStrv) names = gchat_message_dup_strv (users, "users");
  g_autoptr(GPtrArray) list = NULL;
  char **all;

  if (self->list_names == NULL)
    self->list_names = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; names[i] != NULL; i++)
    g_ptr_array_add (self->list_names, g_strdup (names[i]));
  /* A server that never ends its list must not grow it for ever: a server holds at most about
   * 20,000 sessions (one per open file), so anything far beyond is broken. */
  if (gchat_message_get_bool (users, "more") && self->list_names->len < LIST_MAX_NAMES)
    return;

  g_ptr_array_add (self->list_names, NULL);
  list = others (self, (const char * const *) self->list_names->pdata);
  g_clear_pointer (&self->list_names, g_ptr_array_unref);
  g_ptr_array_add (list, NULL);
  all = (char **) list->pdata;

  /* Whoever is gone since the last list left while we were away. */
  for (guint i = 0; i < g_list_model_get_n_items (G_LIST_MODEL (self->online)); i++)
    {
      g_autoptr(GchatOnlineUser) user = g_list_model_get_item (G_LIST_MODEL (self->online), i);
      const char *name = gchat_online_user_get_name (user);

      if (!g_strv_contains ((const char * const *) all, name))
        gchat_client_peers_user_left (self, name);
    }
  gchat_online_users_set_all (self->online, (const char * const *) all);
  if (self->awaiting_list)
    {
      self->awaiting_list = FALSE;
      gchat_client_peers_flush_outbox (self);
    }
  if (request != NULL && request->task != NULL)
    {
      g_autoptr(GTask) task = g_steal_pointer (&request->task);

      g_task_return_pointer (task, g_strdupv (all), (GDestroyNotify) g_strfreev);
    }
}

static void
presence_received (GchatClient  *self,
                   GchatMessage *presence)
{
  g_auto(GStrv) joined_all = gchat_message_dup_strv (presence, "joined");
  g_auto(GStrv) left_all = gchat_message_dup_strv (presence, "left");
  g_autoptr(GPtrArray) joined = others (self, (const char * const *) joined_all);
  g_autoptr(GPtrArray) left = others (self, (const char * const *) left_all);

  g_ptr_array_add (joined, NULL);
  g_ptr_array_add (left, NULL);
  gchat_online_users_update (self->online, (const char * const *) joined->pdata,
                             (const char * const *) left->pdata);
  for (guint i = 0; left->pdata[i] != NULL; i++)
    {
      gchat_client_peers_user_left (self, left->pdata[i]);
      gchat_client_emit_presence (self, left->pdata[i], FALSE);
    }
  for (guint i = 0; joined->pdata[i] != NULL; i++)
    gchat_client_emit_presence (self, joined->pdata[i], TRUE);
}

static void
bye_received (GchatClient  *self,
              GchatMessage *bye)
{
  const char *code = gchat_message_get_string (bye, "code");

  if (g_strcmp0 (code, "replaced") == 0)
    give_up (self, _("Logged out: this account logged in somewhere else"));
  else if (g_strcmp0 (code, "account-deleted") == 0)
    give_up (self, _("Logged out: the administrator deleted this account"));
  else
    {
      g_autoptr(GError) why = NULL;

      why = g_error_new_literal (GCHAT_CLIENT_ERROR, GCHAT_CLIENT_ERROR_CLOSED,
                                 g_strcmp0 (code, "shutdown") == 0
                                 ? _("the server is restarting")
                                 : _("the server closed the session"));
      session_lost (self, why);
    }
}

static void
result_received (GchatClient  *self,
                 GchatMessage *result)
{
  gint64 id = gchat_message_get_int (result, "id");
  GchatRequest *request;

  if (self->resuming && g_strcmp0 (gchat_message_get_string (result, "request"), "resume") == 0)
    {
      self->resuming = FALSE;
      if (gchat_message_get_bool (result, "ok"))
        login_succeeded (self, result);
      else
        resume_refused (self, gchat_message_get_string (result, "code"));
      return;
    }
  if (!gchat_message_has_field (result, "id")
      || (request = g_hash_table_lookup (self->requests, &id)) == NULL)
    return;
  g_hash_table_steal (self->requests, &id);
  switch (request->kind)
    {
    case GCHAT_REQUEST_LOGIN:
      login_answered (self, result);
      break;
    case GCHAT_REQUEST_TALK:
      gchat_client_peers_talk_done (self, request, result);
      break;
    case GCHAT_REQUEST_POST:
      gchat_client_peers_post_done (self, request, result);
      break;
    case GCHAT_REQUEST_LIST:
    default:
      break;
    }
  gchat_request_free (request);
}

static void
session_message_cb (GchatSession *session,
                    GchatMessage *message,
                    GchatClient  *self)
{
  G_GNUC_UNUSED g_autoptr(GchatClient) hold = g_object_ref (self);

  switch (gchat_message_get_message_type (message))
    {
    case GCHAT_MESSAGE_RESULT:
      result_received (self, message);
      break;
    case GCHAT_MESSAGE_USERS:
      {
        gint64 id = gchat_message_get_int (message, "id");
        GchatRequest *request = g_hash_table_lookup (self->requests, &id);

        users_received (self, message, request);
        if (request != NULL && !gchat_message_get_bool (message, "more"))
          g_hash_table_remove (self->requests, &id);
      }
      break;
    case GCHAT_MESSAGE_PRESENCE:
      presence_received (self, message);
      break;
    case GCHAT_MESSAGE_BYE:
      bye_received (self, message);
      break;
    case GCHAT_MESSAGE_ERROR_MSG:
      g_debug ("The server answered with error “%s”",
               gchat_message_get_string (message, "code"));
      break;
    case GCHAT_MESSAGE_PONG:
      break;
    default:
      if (!gchat_client_peers_dispatch (self, message))
        g_debug ("Ignoring a “%s” from the server",
                 gchat_message_type_to_string (gchat_message_get_message_type (message)));
    }
}

static void
session_closed_cb (GchatSession *session,
                   const GError *why,
                   GchatClient  *self)
{
  G_GNUC_UNUSED g_autoptr(GchatClient) hold = g_object_ref (self);

  if (self->resuming)
    {
      resume_refused (self, why != NULL ? why->message : "closed");
      return;
    }
  if (self->login_task != NULL && why != NULL)
    {
      attempt_failed (self, g_error_copy (why));
      return;
    }
  session_lost (self, why);
}
