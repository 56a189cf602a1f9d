/* SPDX-License-Identifier: GPL-3.0-or-later */
/* One client's TCP connection: handshake, sealed messages, log-in, and a bounded write queue. */

#include "config.h"

#include <string.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <glib/gi18n-lib.h>

#include "gchat-channel.h"
#include "gchat-frame.h"
#include "gchat-handshake.h"
#include "gchatd-connection.h"
#include "gchatd-server.h"

/* Read at most this much per wake-up, into a buffer on the stack: an idle connection holds no
 * read buffer of its own. */
#define READ_CHUNK 16384
/* What a connection may hold, unprocessed, while its handshake, sign or auth runs. */
#define MAX_HELD_INPUT (2 * GCHATD_CONNECTION_MAX_UNAUTHENTICATED_PAYLOAD)
/* Frames handed to the kernel in one system call when the socket becomes writable again. */
#define MAX_VECTORS 64

struct _GchatdConnection
{
  GObject               parent_instance;

  GchatdServer         *server; /* not owned; NULL once closed */
  GchatdPoller         *poller;
  GSocketConnection    *connection;
  GSocket              *socket;      /* the connection's, non-blocking */
  int                   fd;
  char                 *address;
  GchatdConnectionState state;
  char                 *user;
  guint64               session_serial;

  GchatHandshake       *handshake;
  GchatChannel         *channel;
  guint8                endpoint_key[32]; /* valid once channel is set */
  guint32               endpoint_id;      /* 0 until logged in with an endpoint registration */
  gint64                last_activity;    /* monotonic µs of the last bytes received */
  GchatFrameDecoder    *decoder;
  gboolean              watched;    /* the socket is in the poller */
  GIOCondition          watching;   /* what the poller watches */
  gboolean              reading;    /* the socket is read: started, not closing, not held back */
  gboolean              paused;     /* a handshake step, sign or auth is running */
  GCancellable         *cancellable; /* the hasher and store requests */

  GQueue                output;      /* GBytes, whole frames, in counter order */
  gsize                 head_sent;   /* what of the head frame the kernel has taken */
  gsize                 queued_bytes; /* not yet taken by the kernel */
  gboolean              write_blocked; /* the socket is full: waiting until it is writable */
  guint                 corked;        /* frames wait in the queue to leave in one write */
  gboolean              output_broken; /* a write failed or overflowed: nothing more goes out */
  GError               *write_error; /* a failure of a direct send, handled at the next wake-up */
  GQueue                held;        /* Held: mail and receipts waiting for room in the output */
  guint                 mailbox_requests; /* posts and acknowledgements the disk has not done */
  GQueue                post_answers; /* GchatMessage `result`s of posts, in the order of the
                                       * posts; NULL for one not done yet */

  guint                 login_timeout_ms;
  guint                 login_timeout_id;
  guint                 close_timeout_id;
  gboolean              closed;
};

G_DEFINE_FINAL_TYPE (GchatdConnection, gchatd_connection, G_TYPE_OBJECT)

enum {
  SIGNAL_CLOSED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

static void connection_resume (GchatdConnection *self);
static void connection_finish_close (GchatdConnection *self);
static void connection_unwatch (GchatdConnection *self);
static void connection_send_held (GchatdConnection *self);

/* One `mail` or `receipt` waiting to be sent: exactly one of the two is set. */
typedef struct {
  GchatdMail        *mail;
  GchatdMailReceipt *receipt;
} Held;

static void
clear_answer (gpointer data)
{
  if (data != NULL)
    gchat_message_unref (data);
}

static void
held_free (gpointer data)
{
  Held *held = data;

  g_clear_pointer (&held->mail, gchatd_mail_unref);
  g_clear_pointer (&held->receipt, gchatd_mail_receipt_unref);
  g_free (held);
}

static void
gchatd_connection_dispose (GObject *object)
{
  GchatdConnection *self = GCHATD_CONNECTION (object);

  g_cancellable_cancel (self->cancellable);
  connection_unwatch (self);
  g_clear_handle_id (&self->login_timeout_id, g_source_remove);
  g_clear_handle_id (&self->close_timeout_id, g_source_remove);
  g_clear_object (&self->connection);
  g_clear_object (&self->poller);

  G_OBJECT_CLASS (gchatd_connection_parent_class)->dispose (object);
}

static void
gchatd_connection_finalize (GObject *object)
{
  GchatdConnection *self = GCHATD_CONNECTION (object);

  g_queue_clear_full (&self->output, (GDestroyNotify) g_bytes_unref);
  g_queue_clear_full (&self->held, held_free);
  g_queue_clear_full (&self->post_answers, clear_answer);
  g_clear_pointer (&self->handshake, gchat_handshake_free);
  g_clear_pointer (&self->channel, gchat_channel_free);
  gchat_memzero (self->endpoint_key, sizeof self->endpoint_key);
  g_clear_pointer (&self->decoder, gchat_frame_decoder_free);
  g_clear_object (&self->cancellable);
  g_clear_error (&self->write_error);
  g_free (self->address);
  g_free (self->user);

  G_OBJECT_CLASS (gchatd_connection_parent_class)->finalize (object);
}

static void
gchatd_connection_class_init (GchatdConnectionClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = gchatd_connection_dispose;
  object_class->finalize = gchatd_connection_finalize;

  signals[SIGNAL_CLOSED] = g_signal_new ("closed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                         0, NULL, NULL, NULL, G_TYPE_NONE, 0);
}

static void
gchatd_connection_init (GchatdConnection *self)
{
  self->state = GCHATD_CONNECTION_HANDSHAKE;
  self->cancellable = g_cancellable_new ();
  self->decoder = gchat_frame_decoder_new (GCHAT_FRAME_MAX_HANDSHAKE_PAYLOAD);
  self->last_activity = g_get_monotonic_time ();
  g_queue_init (&self->output);
  g_queue_init (&self->held);
  g_queue_init (&self->post_answers);
}

static char *
dup_peer_address (GSocketConnection *connection)
{
  g_autoptr(GSocketAddress) address = g_socket_connection_get_remote_address (connection, NULL);

  if (G_IS_INET_SOCKET_ADDRESS (address))
    {
      GInetAddress *inet = g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (address));

      return g_inet_address_to_string (inet);
    }
  return g_strdup ("unknown");
}

GchatdConnection *
gchatd_connection_new (GchatdServer      *server,
                       GchatdPoller      *poller,
                       GSocketConnection *connection,
                       guint              login_timeout_ms)
{
  GchatdConnection *self;

  g_return_val_if_fail (GCHATD_IS_POLLER (poller), NULL);
  g_return_val_if_fail (G_IS_SOCKET_CONNECTION (connection), NULL);

  self = g_object_new (GCHATD_TYPE_CONNECTION, NULL);
  self->server = server;
  self->poller = g_object_ref (poller);
  self->connection = g_object_ref (connection);
  self->socket = g_socket_connection_get_socket (connection);
  self->fd = g_socket_get_fd (self->socket);
  g_socket_set_blocking (self->socket, FALSE);
  /* Frames are whole when queued: holding them back for Nagle only adds a round trip. */
  if (G_IS_TCP_CONNECTION (connection))
    g_socket_set_option (self->socket, IPPROTO_TCP, TCP_NODELAY, 1, NULL);
  self->address = dup_peer_address (connection);
  self->login_timeout_ms = login_timeout_ms;
  self->handshake = gchat_handshake_new_server (gchatd_server_get_key (server));
  return self;
}

GchatdConnectionState
gchatd_connection_get_state (GchatdConnection *self)
{
  g_return_val_if_fail (GCHATD_IS_CONNECTION (self), GCHATD_CONNECTION_CLOSING);
  return self->state;
}

const char *
gchatd_connection_get_user (GchatdConnection *self)
{
  g_return_val_if_fail (GCHATD_IS_CONNECTION (self), NULL);
  return self->user;
}

const char *
gchatd_connection_get_address (GchatdConnection *self)
{
  g_return_val_if_fail (GCHATD_IS_CONNECTION (self), NULL);
  return self->address;
}

gint64
gchatd_connection_get_last_activity (GchatdConnection *self)
{
  g_return_val_if_fail (GCHATD_IS_CONNECTION (self), 0);
  return self->last_activity;
}

const guint8 *
gchatd_connection_get_endpoint_key (GchatdConnection *self)
{
  g_return_val_if_fail (GCHATD_IS_CONNECTION (self), NULL);
  return self->channel != NULL ? self->endpoint_key : NULL;
}

guint64
gchatd_connection_get_session_serial (GchatdConnection *self)
{
  g_return_val_if_fail (GCHATD_IS_CONNECTION (self), 0);
  return self->session_serial;
}

/* Watching */

static void connection_ready_cb (int          fd,
                                 GIOCondition ready,
                                 gpointer     user_data);

/* Tells the poller what the connection waits for now; every change of `reading` or
 * `write_blocked` ends here. */
static void
connection_watch (GchatdConnection *self)
{
  GIOCondition events = 0;

  if (!self->watched)
    return;
  if (self->reading)
    events |= G_IO_IN;
  if (self->write_blocked)
    events |= G_IO_OUT;
  if (events != self->watching)
    gchatd_poller_modify (self->poller, self->fd, events);
  self->watching = events;
}

/* Before the socket closes: the poller must not watch a descriptor that may be reused. */
static void
connection_unwatch (GchatdConnection *self)
{
  if (!self->watched)
    return;
  gchatd_poller_remove (self->poller, self->fd);
  self->watched = FALSE;
}

/* Output */

typedef enum {
  FLUSH_DONE,    /* the kernel took everything */
  FLUSH_BLOCKED, /* the socket is full; the rest waits */
  FLUSH_FAILED,
} FlushResult;

/* Drops what the kernel took: whole frames, and the start of the next one. */
static void
connection_consume_output (GchatdConnection *self,
                           gsize             sent)
{
  self->queued_bytes -= sent;
  while (sent > 0)
    {
      GBytes *head = g_queue_peek_head (&self->output);
      gsize left = g_bytes_get_size (head) - self->head_sent;

      if (sent < left)
        {
          self->head_sent += sent;
          return;
        }
      sent -= left;
      self->head_sent = 0;
      g_bytes_unref (g_queue_pop_head (&self->output));
    }
}

/* Gives the kernel as much of the queue as it takes now, up to MAX_VECTORS frames per call.
 * Frames leave in queue order, so their counters arrive in order. */
static FlushResult
connection_flush (GchatdConnection  *self,
                  GError           **error)
{
  while (!g_queue_is_empty (&self->output))
    {
      GOutputVector vectors[MAX_VECTORS];
      g_autoptr(GError) local_error = NULL;
      gsize total = 0;
      guint n = 0;
      gssize sent;

      for (GList *l = self->output.head; l != NULL && n < MAX_VECTORS; l = l->next, n++)
        {
          gsize size;
          const guint8 *data = g_bytes_get_data (l->data, &size);
          gsize skip = n == 0 ? self->head_sent : 0;

          vectors[n].buffer = data + skip;
          vectors[n].size = size - skip;
          total += size - skip;
        }
      sent = g_socket_send_message (self->socket, NULL, vectors, n, NULL, 0, G_SOCKET_MSG_NONE,
                                    NULL, &local_error);
      if (sent < 0 && g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        return FLUSH_BLOCKED;
      if (sent < 0)
        {
          g_propagate_error (error, g_steal_pointer (&local_error));
          return FLUSH_FAILED;
        }
      connection_consume_output (self, sent);
      /* A short write means the socket buffer is full: asking again would only say so. */
      if ((gsize) sent < total)
        return FLUSH_BLOCKED;
    }
  return FLUSH_DONE;
}

/* Nothing is sent any more: the client is being disconnected. */
static void
connection_drop_output (GchatdConnection *self)
{
  g_queue_clear_full (&self->output, (GDestroyNotify) g_bytes_unref);
  self->head_sent = 0;
  self->queued_bytes = 0;
  self->output_broken = TRUE;
}

static void
connection_write_failed (GchatdConnection *self,
                         const GError     *error)
{
  g_debug ("Write to %s failed: %s", self->address, error->message);
  connection_drop_output (self);
  if (self->state != GCHATD_CONNECTION_CLOSING)
    gchatd_connection_close (self, NULL, "write failed");
  else
    connection_finish_close (self);
}

/* The socket is writable again (or failed): the queue goes on, and a closing connection
 * closes once it is flushed. */
static void
connection_write_ready (GchatdConnection *self)
{
  g_autoptr(GError) error = g_steal_pointer (&self->write_error);
  FlushResult result = error != NULL ? FLUSH_FAILED : connection_flush (self, &error);

  if (result == FLUSH_BLOCKED)
    {
      connection_send_held (self);
      return;
    }
  self->write_blocked = FALSE;
  connection_watch (self);
  if (result == FLUSH_FAILED)
    connection_write_failed (self, error);
  else if (self->state == GCHATD_CONNECTION_CLOSING)
    connection_finish_close (self);
  else
    connection_send_held (self);
}

/* Most frames leave at once, with no wake-up in between. A failure is only noted here and
 * handled at the next wake-up: the caller may be in the middle of a log-in or of a loop over
 * the sessions, and must not see the connection close under it. */
static void
connection_write_now (GchatdConnection *self)
{
  g_autoptr(GError) error = NULL;
  FlushResult result = connection_flush (self, &error);

  if (result == FLUSH_DONE)
    return;
  if (result == FLUSH_FAILED)
    {
      connection_drop_output (self);
      self->write_error = g_steal_pointer (&error);
    }
  /* A failed socket reports itself writable, so the failure comes back at once. */
  self->write_blocked = TRUE;
  connection_watch (self);
}

/* Returns FALSE when the client lets too much output pile up: the caller closes it. */
static gboolean
connection_queue_frame (GchatdConnection *self,
                        GBytes           *frame)
{
  if (self->closed || self->output_broken)
    return TRUE; /* the connection is on its way out already */
  self->queued_bytes += g_bytes_get_size (frame);
  g_queue_push_tail (&self->output, g_bytes_ref (frame));
  if (self->queued_bytes > GCHATD_CONNECTION_MAX_QUEUED_OUTPUT)
    {
      g_message ("Disconnecting %s: it does not read what it is sent", self->address);
      connection_drop_output (self);
      return FALSE;
    }
  if (!self->write_blocked && self->corked == 0)
    connection_write_now (self);
  return TRUE;
}

/* Between these, frames queue up and then leave in one write: a log-in's answer, its online
 * list (forty frames with ten thousand users online) and its mail took a system call each. */
static void
connection_cork (GchatdConnection *self)
{
  self->corked++;
}

static void
connection_uncork (GchatdConnection *self)
{
  g_return_if_fail (self->corked > 0);

  if (--self->corked > 0 || self->write_blocked || self->closed || self->output_broken
      || g_queue_is_empty (&self->output))
    return;
  connection_write_now (self);
  /* Held mail stopped at the low-water mark of a queue that has left now. */
  if (!self->write_blocked)
    connection_send_held (self);
}

/* Returns FALSE when the connection must end: the caller closes it. */
static gboolean
connection_send_sealed (GchatdConnection *self,
                        GBytes           *json)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) frame = NULL;

  frame = gchat_channel_seal (self->channel, g_bytes_get_data (json, NULL),
                              g_bytes_get_size (json), &error);
  if (frame == NULL)
    {
      g_message ("Disconnecting %s: %s", self->address, error->message);
      return FALSE;
    }
  return connection_queue_frame (self, frame);
}

void
gchatd_connection_send_encoded (GchatdConnection *self,
                                GBytes           *json)
{
  g_return_if_fail (GCHATD_IS_CONNECTION (self));
  g_return_if_fail (json != NULL);

  if (self->state == GCHATD_CONNECTION_CLOSING || self->channel == NULL)
    return;
  if (!connection_send_sealed (self, json))
    gchatd_connection_close (self, NULL, "cannot send");
}

void
gchatd_connection_send_encoded_all (GchatdConnection *self,
                                    GPtrArray        *jsons)
{
  g_return_if_fail (GCHATD_IS_CONNECTION (self));
  g_return_if_fail (jsons != NULL);

  connection_cork (self);
  for (guint i = 0; i < jsons->len; i++)
    gchatd_connection_send_encoded (self, g_ptr_array_index (jsons, i));
  connection_uncork (self);
}

void
gchatd_connection_send_message (GchatdConnection *self,
                                GchatMessage     *message)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) json = NULL;

  g_return_if_fail (GCHATD_IS_CONNECTION (self));

  json = gchat_message_encode (message, &error);
  if (json == NULL)
    {
      /* Only a bug of ours gets here: every field we set is within its limits. */
      g_critical ("Cannot encode a “%s” message: %s",
                  gchat_message_type_to_string (gchat_message_get_message_type (message)),
                  error->message);
      return;
    }
  gchatd_connection_send_encoded (self, json);
}

gsize
gchatd_connection_get_queued_output (GchatdConnection *self)
{
  g_return_val_if_fail (GCHATD_IS_CONNECTION (self), 0);
  return self->queued_bytes;
}

/* Held mail and receipts */

static GchatMessage *
mail_message_new (GchatdMail *mail)
{
  GchatMessage *message = gchat_message_new (GCHAT_MESSAGE_MAIL);
  gsize len;
  const char *text = gchatd_mail_get_text (mail, &len);

  gchat_message_set_int (message, "mail_id", (gint64) gchatd_mail_get_id (mail));
  gchat_message_set_string (message, "from", gchatd_mail_get_sender (mail));
  gchat_message_set_int (message, "msg_id", (gint64) gchatd_mail_get_msg_id (mail));
  gchat_message_set_bytes (message, "text", (const guint8 *) text, len);
  gchat_message_set_int (message, "queued", gchatd_mail_get_queued (mail));
  return message;
}

static GchatMessage *
receipt_message_new (GchatdMailReceipt *receipt)
{
  GchatMessage *message = gchat_message_new (GCHAT_MESSAGE_RECEIPT);

  gchat_message_set_int (message, "receipt_id", (gint64) gchatd_mail_receipt_get_id (receipt));
  gchat_message_set_string (message, "user", gchatd_mail_receipt_get_recipient (receipt));
  gchat_message_set_int (message, "msg_id", (gint64) gchatd_mail_receipt_get_msg_id (receipt));
  gchat_message_set_int (message, "delivered", gchatd_mail_receipt_get_delivered (receipt));
  return message;
}

/* Held records come from files: one the protocol cannot carry (a field past its limit in the
 * schema, an empty text) is skipped with a note rather than treated as a bug of ours. */
static void
send_held_message (GchatdConnection *self,
                   GchatMessage     *message)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) json = gchat_message_encode (message, &error);

  if (json == NULL)
    {
      g_message ("A message held for “%s” cannot be sent: %s", self->user, error->message);
      return;
    }
  gchatd_connection_send_encoded (self, json);
}

/* Sends what is held while the output is short: a client gets its whole mailbox as fast as it
 * reads, and never so much at once that it would be disconnected for not reading. */
static void
connection_send_held (GchatdConnection *self)
{
  while (self->state == GCHATD_CONNECTION_LOGGED_IN && !g_queue_is_empty (&self->held)
         && self->queued_bytes < GCHATD_CONNECTION_MAIL_LOW_WATER)
    {
      Held *held = g_queue_pop_head (&self->held);
      g_autoptr(GchatMessage) message = held->mail != NULL ? mail_message_new (held->mail)
                                                           : receipt_message_new (held->receipt);

      held_free (held);
      send_held_message (self, message);
    }
}

static void
connection_hold (GchatdConnection  *self,
                 GchatdMail        *mail,
                 GchatdMailReceipt *receipt)
{
  Held *held = g_new0 (Held, 1);

  held->mail = mail != NULL ? gchatd_mail_ref (mail) : NULL;
  held->receipt = receipt != NULL ? gchatd_mail_receipt_ref (receipt) : NULL;
  g_queue_push_tail (&self->held, held);
}

void
gchatd_connection_push_mail (GchatdConnection *self,
                             GchatdMail       *mail)
{
  g_autoptr(GchatdConnection) hold = NULL;

  g_return_if_fail (GCHATD_IS_CONNECTION (self));
  g_return_if_fail (mail != NULL);

  if (self->state != GCHATD_CONNECTION_LOGGED_IN)
    return;
  hold = g_object_ref (self);
  connection_hold (self, mail, NULL);
  connection_send_held (self);
}

void
gchatd_connection_push_receipt (GchatdConnection  *self,
                                GchatdMailReceipt *receipt)
{
  g_autoptr(GchatdConnection) hold = NULL;

  g_return_if_fail (GCHATD_IS_CONNECTION (self));
  g_return_if_fail (receipt != NULL);

  if (self->state != GCHATD_CONNECTION_LOGGED_IN)
    return;
  hold = g_object_ref (self);
  connection_hold (self, NULL, receipt);
  connection_send_held (self);
}

/* At log-in: everything the mailbox holds for the user, messages then receipts, oldest first.
 * They stay in the mailbox until acknowledged, so what a lost connection missed comes again. */
static void
connection_queue_mailbox (GchatdConnection *self)
{
  GchatdMailbox *mailbox = gchatd_server_get_mailbox (self->server);
  g_autoptr(GPtrArray) mail = gchatd_mailbox_peek (mailbox, self->user);
  g_autoptr(GPtrArray) receipts = gchatd_mailbox_peek_receipts (mailbox, self->user);

  for (guint i = 0; i < mail->len; i++)
    connection_hold (self, g_ptr_array_index (mail, i), NULL);
  for (guint i = 0; i < receipts->len; i++)
    connection_hold (self, NULL, g_ptr_array_index (receipts, i));
  if (mail->len > 0 || receipts->len > 0)
    g_debug ("“%s” has %u messages and %u receipts waiting", self->user, mail->len,
             receipts->len);
  connection_send_held (self);
}

/* Closing */

static gboolean
close_timeout_cb (gpointer user_data)
{
  GchatdConnection *self = user_data;

  self->close_timeout_id = 0;
  connection_finish_close (self);
  return G_SOURCE_REMOVE;
}

static void
connection_finish_close (GchatdConnection *self)
{
  G_GNUC_UNUSED g_autoptr(GchatdConnection) hold = g_object_ref (self);

  if (self->closed)
    return;
  self->closed = TRUE;
  g_clear_handle_id (&self->close_timeout_id, g_source_remove);
  connection_unwatch (self);
  g_io_stream_close (G_IO_STREAM (self->connection), NULL, NULL);
  self->server = NULL;
  g_signal_emit (self, signals[SIGNAL_CLOSED], 0);
}

static void
connection_stop_reading (GchatdConnection *self)
{
  self->reading = FALSE;
  connection_watch (self);
}

static void
connection_send_bye (GchatdConnection *self,
                     const char       *code)
{
  g_autoptr(GchatMessage) bye = gchat_message_new (GCHAT_MESSAGE_BYE);
  g_autoptr(GBytes) json = NULL;

  gchat_message_set_string (bye, "code", code);
  json = gchat_message_encode (bye, NULL);
  if (json != NULL)
    connection_send_sealed (self, json);
}

void
gchatd_connection_close (GchatdConnection *self,
                         const char       *bye_code,
                         const char       *reason)
{
  g_autoptr(GchatdConnection) hold = NULL;
  GchatdConnectionState old_state;

  g_return_if_fail (GCHATD_IS_CONNECTION (self));

  if (self->state == GCHATD_CONNECTION_CLOSING)
    return;
  hold = g_object_ref (self);
  old_state = self->state;
  self->state = GCHATD_CONNECTION_CLOSING;
  g_debug ("Closing the connection of %s%s%s: %s", self->address, self->user ? " as " : "",
           self->user ? self->user : "", reason);
  if (bye_code != NULL && self->channel != NULL)
    connection_send_bye (self, bye_code);
  if (old_state == GCHATD_CONNECTION_LOGGED_IN && self->server != NULL)
    gchatd_server_session_end (self->server, self);
  connection_stop_reading (self);
  g_cancellable_cancel (self->cancellable);
  g_clear_handle_id (&self->login_timeout_id, g_source_remove);
  if (g_queue_is_empty (&self->output))
    connection_finish_close (self);
  else if (self->close_timeout_id == 0)
    self->close_timeout_id = g_timeout_add (GCHATD_CONNECTION_CLOSE_TIMEOUT_MS, close_timeout_cb,
                                            self);
}

/* Answers */

static void
message_set_id (GchatMessage *message,
                gint64        id)
{
  if (id >= 0)
    gchat_message_set_int (message, "id", id);
}

static gint64
message_get_id (GchatMessage *request)
{
  return gchat_message_has_field (request, "id") ? gchat_message_get_int (request, "id") : -1;
}

static gboolean
is_login_request (const char *request)
{
  return g_str_equal (request, "sign") || g_str_equal (request, "auth")
         || g_str_equal (request, "resume");
}

static void
send_result (GchatdConnection *self,
             const char       *request,
             gint64            id,
             const char       *code,
             const char       *text,
             guint             retry_after)
{
  g_autoptr(GchatMessage) result = gchat_message_new (GCHAT_MESSAGE_RESULT);

  gchat_message_set_string (result, "request", request);
  gchat_message_set_bool (result, "ok", code == NULL);
  if (code != NULL)
    gchat_message_set_string (result, "code", code);
  if (text != NULL)
    gchat_message_set_string (result, "message", text);
  if (retry_after > 0)
    gchat_message_set_int (result, "retry_after", retry_after);
  if (code == NULL && self->user != NULL)
    gchat_message_set_string (result, "user", self->user);
  if (code == NULL && self->endpoint_id != 0)
    gchat_message_set_int (result, "endpoint_id", self->endpoint_id);
  /* Every log-in, resumptions included, gets a fresh ticket for the next reconnection. */
  if (code == NULL && self->user != NULL && is_login_request (request))
    gchatd_server_add_ticket (self->server, self->user, result);
  message_set_id (result, id);
  gchatd_connection_send_message (self, result);
}

static void
send_error (GchatdConnection *self,
            gint64            id,
            const char       *code,
            const char       *text)
{
  g_autoptr(GchatMessage) message = gchat_message_new (GCHAT_MESSAGE_ERROR_MSG);

  gchat_message_set_string (message, "code", code);
  if (text != NULL)
    gchat_message_set_string (message, "message", text);
  message_set_id (message, id);
  gchatd_connection_send_message (self, message);
}

/* Log-in */

static gboolean
login_timeout_cb (gpointer user_data)
{
  GchatdConnection *self = user_data;

  self->login_timeout_id = 0;
  g_message ("Disconnecting %s: no log-in within %u ms", self->address, self->login_timeout_ms);
  gchatd_connection_close (self, NULL, "log-in deadline");
  return G_SOURCE_REMOVE;
}

static void
connection_log_in (GchatdConnection *self,
                   const char       *request,
                   gint64            id,
                   const char       *user)
{
  static guint64 next_serial = 1;

  g_clear_handle_id (&self->login_timeout_id, g_source_remove);
  self->user = g_strdup (user);
  self->session_serial = next_serial++;
  self->state = GCHATD_CONNECTION_LOGGED_IN;
  gchat_frame_decoder_set_max_payload (self->decoder, GCHAT_FRAME_MAX_PAYLOAD);
  if (g_str_equal (request, "resume"))
    g_message ("“%s” resumed its session from %s", user, self->address);
  else
    g_message ("“%s” logged in from %s", user, self->address);
  self->endpoint_id = gchatd_server_register_endpoint (self->server, self);
  connection_cork (self);
  send_result (self, request, id, NULL, NULL, 0);
  gchatd_server_session_begin (self->server, self);
  connection_queue_mailbox (self);
  connection_uncork (self);
}

/* A name a client sent, fit for a log line: one that is not a valid user name (and so names no
 * account) could hold control characters that fake log lines. */
static const char *
loggable_name (const char *name)
{
  return gchatd_user_name_validate (name, NULL) ? name : "(an invalid name)";
}

/* What a `sign` or `auth` carries to its callbacks. */
typedef struct {
  GchatdConnection *self;
  char             *user;
  gint64            id;
} Request;

static Request *
request_new (GchatdConnection *self,
             const char       *user,
             gint64            id)
{
  Request *request = g_new0 (Request, 1);

  request->self = g_object_ref (self);
  request->user = g_strdup (user);
  request->id = id;
  return request;
}

static void
request_free (Request *request)
{
  g_object_unref (request->self);
  g_free (request->user);
  g_free (request);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Request, request_free)

/* Reports a hasher or store failure that is not the client's fault. Returns TRUE when the
 * request was cancelled because the connection is closing: nothing more to do then. */
static gboolean
report_failure (GchatdConnection *self,
                const char       *request,
                gint64            id,
                const GError     *error)
{
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED)
      || self->state == GCHATD_CONNECTION_CLOSING)
    return TRUE;
  if (g_error_matches (error, GCHATD_PASSWORD_HASHER_ERROR, GCHATD_PASSWORD_HASHER_ERROR_BUSY))
    {
      send_result (self, request, id, "busy", _("The server is busy; try again in a moment"), 1);
      return FALSE;
    }
  g_message ("A “%s” from %s failed: %s", request, self->address, error->message);
  send_result (self, request, id, "internal", _("The server failed; nothing was changed"), 0);
  return FALSE;
}

static void
auth_verified_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  g_autoptr(Request) request = user_data;
  GchatdConnection *self = request->self;
  g_autoptr(GError) error = NULL;
  gboolean match;
  GchatdThrottle *throttle;

  match = gchatd_password_hasher_verify_finish (GCHATD_PASSWORD_HASHER (source), result, &error);
  if (error != NULL)
    {
      if (!report_failure (self, "auth", request->id, error))
        connection_resume (self);
      return;
    }
  if (self->state == GCHATD_CONNECTION_CLOSING)
    return;
  throttle = gchatd_server_get_throttle (self->server);
  if (!match)
    {
      gchatd_throttle_failure (throttle, request->user, self->address, g_get_monotonic_time ());
      g_message ("Failed log-in as “%s” from %s", loggable_name (request->user), self->address);
      send_result (self, "auth", request->id, "bad-credentials",
                   _("Unknown user name or wrong password"), 0);
    }
  else
    {
      g_autoptr(GchatdUserRecord) record = NULL;

      gchatd_throttle_success (throttle, request->user, self->address, g_get_monotonic_time ());
      record = gchatd_user_store_lookup (gchatd_server_get_store (self->server), request->user);
      connection_log_in (self, "auth", request->id,
                         record ? gchatd_user_record_get_name (record) : request->user);
    }
  connection_resume (self);
}

static void
handle_auth (GchatdConnection *self,
             GchatMessage     *message)
{
  const char *user = gchat_message_get_string (message, "user");
  const char *password = gchat_message_get_string (message, "password");
  gint64 id = message_get_id (message);
  GchatdPasswordHasher *hasher = gchatd_server_get_hasher (self->server);
  g_autoptr(GchatdUserRecord) record = NULL;
  guint retry_after = 0;

  if (!gchatd_throttle_check (gchatd_server_get_throttle (self->server), user, self->address,
                              g_get_monotonic_time (), &retry_after))
    {
      send_result (self, "auth", id, "throttled",
                   _("Too many failed log-ins; wait before trying again"), MAX (retry_after, 1));
      return;
    }
  self->paused = TRUE;
  record = gchatd_user_store_lookup (gchatd_server_get_store (self->server), user);
  if (record == NULL)
    {
      GchatArgon2Params params;

      /* The same work as for a real account, so timing does not tell which names exist. */
      gchatd_server_get_argon2_params (self->server, &params);
      gchatd_password_hasher_verify_dummy_async (hasher, &params, password, strlen (password),
                                                 self->cancellable, auth_verified_cb,
                                                 request_new (self, user, id));
      return;
    }
  gchatd_password_hasher_verify_async (hasher, gchatd_user_record_get_params (record),
                                       gchatd_user_record_get_salt (record), GCHATD_USER_SALT_SIZE,
                                       gchatd_user_record_get_hash (record), GCHATD_USER_HASH_SIZE,
                                       password, strlen (password), self->cancellable,
                                       auth_verified_cb, request_new (self, user, id));
}

/* Sign-up */

static void
sign_stored_cb (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(Request) request = user_data;
  GchatdConnection *self = request->self;
  g_autoptr(GError) error = NULL;

  if (!gchatd_user_store_add_finish (GCHATD_USER_STORE (source), result, &error))
    {
      if (g_error_matches (error, GCHATD_USER_STORE_ERROR, GCHATD_USER_STORE_ERROR_NAME_TAKEN))
        {
          if (self->state != GCHATD_CONNECTION_CLOSING)
            send_result (self, "sign", request->id, "name-taken",
                         _("This user name is already taken"), 0);
        }
      else if (report_failure (self, "sign", request->id, error))
        return;
      connection_resume (self);
      return;
    }
  g_message ("Signed up “%s” from %s", request->user, self->address);
  if (self->state == GCHATD_CONNECTION_CLOSING)
    return;
  connection_log_in (self, "sign", request->id, request->user);
  connection_resume (self);
}

static void
sign_hashed_cb (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(Request) request = user_data;
  GchatdConnection *self = request->self;
  g_autoptr(GError) error = NULL;
  guint8 salt[GCHATD_PASSWORD_HASHER_SALT_SIZE];
  guint8 hash[GCHATD_PASSWORD_HASHER_HASH_SIZE];
  GchatArgon2Params params;
  const char *user;

  if (!gchatd_password_hasher_hash_finish (GCHATD_PASSWORD_HASHER (source), result, salt, hash,
                                           &error))
    {
      if (!report_failure (self, "sign", request->id, error))
        connection_resume (self);
      return;
    }
  if (self->state == GCHATD_CONNECTION_CLOSING)
    return;
  gchatd_server_get_argon2_params (self->server, &params);
  user = request->user;
  gchatd_user_store_add_async (gchatd_server_get_store (self->server), user, &params, salt,
                               sizeof salt, hash, sizeof hash, self->cancellable, sign_stored_cb,
                               g_steal_pointer (&request));
  gchat_memzero (hash, sizeof hash);
}

static void
handle_sign (GchatdConnection *self,
             GchatMessage     *message)
{
  const char *user = gchat_message_get_string (message, "user");
  const char *password = gchat_message_get_string (message, "password");
  gint64 id = message_get_id (message);
  g_autoptr(GchatdUserRecord) record = NULL;
  GchatArgon2Params params;

  if (!gchatd_server_get_allow_sign_up (self->server))
    {
      send_result (self, "sign", id, "sign-up-closed",
                   _("This server does not take new accounts; ask its administrator for one"), 0);
      return;
    }
  if (!gchatd_user_name_validate (user, NULL))
    {
      send_result (self, "sign", id, "bad-name",
                   _("User names are 1 to 32 letters, digits, “.”, “_” or “-”, starting with a "
                     "letter or digit"), 0);
      return;
    }
  if (!gchatd_password_validate (password, strlen (password), NULL))
    {
      send_result (self, "sign", id, "bad-password",
                   _("Passwords are 8 to 1024 bytes long"), 0);
      return;
    }
  /* A quick answer for the common case; the store checks again when it reserves the name. */
  record = gchatd_user_store_lookup (gchatd_server_get_store (self->server), user);
  if (record != NULL)
    {
      send_result (self, "sign", id, "name-taken", _("This user name is already taken"), 0);
      return;
    }
  self->paused = TRUE;
  gchatd_server_get_argon2_params (self->server, &params);
  gchatd_password_hasher_hash_async (gchatd_server_get_hasher (self->server), &params, password,
                                     strlen (password), self->cancellable, sign_hashed_cb,
                                     request_new (self, user, id));
}

/* Messages */

static void
handle_talk (GchatdConnection *self,
             GchatMessage     *message)
{
  gint64 id = message_get_id (message);
  const char *code;

  code = gchatd_server_talk (self->server, self, gchat_message_get_string (message, "user"),
                             (guint32) gchat_message_get_int (message, "replace"), id);
  if (code == NULL)
    return;
  if (g_str_equal (code, "unknown-user"))
    send_result (self, "talk", id, code, _("There is no user of that name"), 0);
  else if (g_str_equal (code, "offline"))
    send_result (self, "talk", id, code, _("That user is not online"), 0);
  else
    send_result (self, "talk", id, code, _("You cannot talk to yourself"), 0);
}

/* Relay and offline delivery */

static void handle_bad_message (GchatdConnection *self,
                                gint64            id,
                                const char       *text,
                                const char       *log_reason);

static void
handle_relay (GchatdConnection *self,
              GchatMessage     *message)
{
  gchatd_server_relay (self->server, self, gchat_message_get_string (message, "to"),
                       gchat_message_get_bytes (message, "datagram"));
}

/* What a `post` or an acknowledgement carries to its callback. The server is referenced: what
 * follows a save (the push to the recipient, the receipt) happens even when this connection
 * has closed meanwhile. */
typedef struct {
  GchatdConnection *self;
  GchatdServer     *server;
  gint64            id;
  GList            *answer; /* a post's place in post_answers */
} MailRequest;

/* Counts a request that waits for the disk; at the limit, the input waits too, so that a client
 * cannot pile up requests faster than the disk takes them. */
static MailRequest *
mail_request_new (GchatdConnection *self,
                  gint64            id)
{
  MailRequest *request = g_new0 (MailRequest, 1);

  request->self = g_object_ref (self);
  request->server = g_object_ref (self->server);
  request->id = id;
  if (++self->mailbox_requests >= GCHATD_CONNECTION_MAX_MAILBOX_REQUESTS)
    self->paused = TRUE;
  return request;
}

static void
mail_request_free (MailRequest *request)
{
  GchatdConnection *self = request->self;

  if (self->mailbox_requests-- == GCHATD_CONNECTION_MAX_MAILBOX_REQUESTS
      && self->state != GCHATD_CONNECTION_CLOSING)
    connection_resume (self);
  g_object_unref (request->server);
  g_object_unref (self);
  g_free (request);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MailRequest, mail_request_free)

/* Sends the answers of the posts that are done, up to the first that is not: the answers come
 * in the order of the posts, although a refusal is known long before a save is done. */
static void
send_post_answers (GchatdConnection *self)
{
  while (!g_queue_is_empty (&self->post_answers) && g_queue_peek_head (&self->post_answers))
    {
      g_autoptr(GchatMessage) result = g_queue_pop_head (&self->post_answers);

      gchatd_connection_send_message (self, result);
    }
}

/* Answers a post, at @answer (a place kept in post_answers) or, for one refused at once, after
 * the posts still waiting. */
static void
send_post_result (GchatdConnection *self,
                  GList            *answer,
                  gint64            id,
                  GchatdMail       *mail,
                  const char       *code,
                  const char       *text)
{
  GchatMessage *result = gchat_message_new (GCHAT_MESSAGE_RESULT);

  gchat_message_set_string (result, "request", "post");
  gchat_message_set_bool (result, "ok", code == NULL);
  if (code != NULL)
    gchat_message_set_string (result, "code", code);
  if (text != NULL)
    gchat_message_set_string (result, "message", text);
  if (mail != NULL)
    gchat_message_set_int (result, "mail_id", (gint64) gchatd_mail_get_id (mail));
  message_set_id (result, id);
  if (answer != NULL)
    answer->data = result;
  else
    g_queue_push_tail (&self->post_answers, result);
  send_post_answers (self);
}

static void
post_done_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(MailRequest) request = user_data;
  GchatdConnection *self = request->self;
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatdMail) mail = NULL;

  mail = gchatd_mailbox_post_finish (GCHATD_MAILBOX (source), result, &error);
  if (mail != NULL)
    {
      send_post_result (self, request->answer, request->id, mail, NULL, NULL);
      gchatd_server_mail_posted (request->server, mail);
    }
  else if (g_error_matches (error, GCHATD_MAILBOX_ERROR, GCHATD_MAILBOX_ERROR_FULL))
    {
      send_post_result (self, request->answer, request->id, NULL, "mailbox-full",
                        _("The recipient has too many messages waiting; try again later"));
    }
  else
    {
      g_message ("A “post” from %s failed: %s", self->address, error->message);
      send_post_result (self, request->answer, request->id, NULL, "internal",
                        _("The server failed; nothing was changed"));
    }
}

static void
handle_post (GchatdConnection *self,
             GchatMessage     *message)
{
  gint64 id = message_get_id (message);
  const char *to = gchat_message_get_string (message, "to");
  GBytes *text = gchat_message_get_bytes (message, "text");
  gsize len = g_bytes_get_size (text);
  const char *data = g_bytes_get_data (text, NULL);
  g_autoptr(GchatdUserRecord) record = NULL;
  MailRequest *request;

  if (!g_utf8_validate_len (data, len, NULL))
    {
      handle_bad_message (self, id, _("A message text must be UTF-8 without NUL characters"),
                          "a post text that is not UTF-8");
      return;
    }
  if (gchatd_user_name_validate (to, NULL))
    record = gchatd_user_store_lookup (gchatd_server_get_store (self->server), to);
  if (record == NULL)
    {
      send_post_result (self, NULL, id, NULL, "unknown-user",
                        _("There is no user of that name"));
      return;
    }
  if (g_ascii_strcasecmp (gchatd_user_record_get_name (record), self->user) == 0)
    {
      send_post_result (self, NULL, id, NULL, "bad-name",
                        _("You cannot send a message to yourself"));
      return;
    }
  request = mail_request_new (self, id);
  g_queue_push_tail (&self->post_answers, NULL);
  request->answer = g_queue_peek_tail_link (&self->post_answers);
  gchatd_mailbox_post_async (gchatd_server_get_mailbox (self->server),
                             gchatd_user_record_get_name (record), self->user,
                             (guint64) gchat_message_get_int (message, "msg_id"), data, len, NULL,
                             post_done_cb, request);
}

static void
mail_removed_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr(MailRequest) request = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) removed = NULL;

  removed = gchatd_mailbox_remove_finish (GCHATD_MAILBOX (source), result, &error);
  if (removed == NULL)
    g_message ("A “mail-ack” from %s failed: %s", request->self->address, error->message);
  else
    gchatd_server_mail_delivered (request->server, removed);
}

static void
handle_mail_ack (GchatdConnection *self,
                 GchatMessage     *message)
{
  guint64 mail_id = (guint64) gchat_message_get_int (message, "mail_id");

  gchatd_mailbox_remove_async (gchatd_server_get_mailbox (self->server), self->user, &mail_id, 1,
                               NULL, mail_removed_cb,
                               mail_request_new (self, message_get_id (message)));
}

static void
receipts_removed_cb (GObject      *source,
                     GAsyncResult *result,
                     gpointer      user_data)
{
  g_autoptr(MailRequest) request = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) removed = NULL;

  removed = gchatd_mailbox_remove_receipts_finish (GCHATD_MAILBOX (source), result, &error);
  if (removed == NULL)
    g_message ("A “receipt-ack” from %s failed: %s", request->self->address, error->message);
}

static void
handle_receipt_ack (GchatdConnection *self,
                    GchatMessage     *message)
{
  guint64 receipt_id = (guint64) gchat_message_get_int (message, "receipt_id");

  gchatd_mailbox_remove_receipts_async (gchatd_server_get_mailbox (self->server), self->user,
                                        &receipt_id, 1, NULL, receipts_removed_cb,
                                        mail_request_new (self, message_get_id (message)));
}

static void
handle_pong (GchatdConnection *self,
             GchatMessage     *message)
{
  g_autoptr(GchatMessage) pong = gchat_message_new (GCHAT_MESSAGE_PONG);

  message_set_id (pong, message_get_id (message));
  gchatd_connection_send_message (self, pong);
}

static void
handle_bad_message (GchatdConnection *self,
                    gint64            id,
                    const char       *text,
                    const char       *log_reason)
{
  send_error (self, id, "bad-message", text);
  gchatd_connection_close (self, NULL, log_reason);
}

/* The requests that need a session. */
static gboolean
is_session_request (GchatMessageType type)
{
  switch (type)
    {
    case GCHAT_MESSAGE_LIST:
    case GCHAT_MESSAGE_TALK:
    case GCHAT_MESSAGE_RELAY:
    case GCHAT_MESSAGE_POST:
    case GCHAT_MESSAGE_MAIL_ACK:
    case GCHAT_MESSAGE_RECEIPT_ACK:
      return TRUE;
    default:
      return FALSE;
    }
}

static void
handle_session_request (GchatdConnection *self,
                        GchatMessage     *message)
{
  switch (gchat_message_get_message_type (message))
    {
    case GCHAT_MESSAGE_LIST:
      gchatd_server_send_user_list (self->server, self, message_get_id (message));
      break;
    case GCHAT_MESSAGE_TALK:
      handle_talk (self, message);
      break;
    case GCHAT_MESSAGE_RELAY:
      handle_relay (self, message);
      break;
    case GCHAT_MESSAGE_POST:
      handle_post (self, message);
      break;
    case GCHAT_MESSAGE_MAIL_ACK:
      handle_mail_ack (self, message);
      break;
    case GCHAT_MESSAGE_RECEIPT_ACK:
      handle_receipt_ack (self, message);
      break;
    default:
      g_return_if_reached ();
    }
}

static void
handle_message (GchatdConnection *self,
                GchatMessage     *message)
{
  GchatMessageType type = gchat_message_get_message_type (message);
  gboolean logged_in = self->state == GCHATD_CONNECTION_LOGGED_IN;

  if (type == GCHAT_MESSAGE_PING)
    handle_pong (self, message);
  else if (type == GCHAT_MESSAGE_LOGOUT)
    gchatd_connection_close (self, NULL, "logged out");
  else if ((type == GCHAT_MESSAGE_SIGN || type == GCHAT_MESSAGE_AUTH) && logged_in)
    handle_bad_message (self, message_get_id (message), _("Already logged in"),
                        "sign or auth while logged in");
  else if (type == GCHAT_MESSAGE_SIGN)
    handle_sign (self, message);
  else if (type == GCHAT_MESSAGE_AUTH)
    handle_auth (self, message);
  else if (!is_session_request (type))
    handle_bad_message (self, message_get_id (message), _("Clients cannot send this message"),
                        "a server message from a client");
  else if (!logged_in)
    send_error (self, message_get_id (message), "not-logged-in", _("Log in first"));
  else
    handle_session_request (self, message);
}

static void
handle_sealed_frame (GchatdConnection *self,
                     GBytes           *payload)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) plain = NULL;
  g_autoptr(GchatMessage) message = NULL;

  plain = gchat_channel_open (self->channel, payload, &error);
  if (plain == NULL)
    {
      /* A forged, replayed or reordered frame: nothing is answered under a broken channel. */
      g_message ("Disconnecting %s: %s", self->address, error->message);
      gchatd_connection_close (self, NULL, "frame did not open");
      return;
    }
  message = gchat_message_decode (g_bytes_get_data (plain, NULL), g_bytes_get_size (plain), &error);
  if (message == NULL)
    {
      g_message ("Disconnecting %s: bad message: %s", self->address, error->message);
      handle_bad_message (self, -1, _("The message does not follow the gchat protocol"),
                          "bad message");
      return;
    }
  handle_message (self, message);
}

/* Handshake
 *
 * The client's step costs an X25519 and maybe an RSA unwrap, hundreds of microseconds to
 * milliseconds: it runs on gchatd's crypto threads (below the main loop's priority), and the
 * connection processes nothing more until it is done. After a restart with ten thousand
 * clients coming back at once, resuming them on the main loop was seconds of it. The hello
 * costs nothing now: its X25519 key pair is the server's of the moment. */

static void
handshake_step_thread (GTask        *task,
                       gpointer      source_object,
                       gpointer      task_data,
                       GCancellable *cancellable)
{
  GchatdConnection *self = source_object;
  GBytes *client_key = task_data;
  g_autoptr(GBytes) none = NULL;
  GError *error = NULL;

  if (!gchat_handshake_step (self->handshake, client_key, &none, &error)
      || !gchat_handshake_export (self->handshake, "endpoint", self->endpoint_key,
                                  sizeof self->endpoint_key, &error))
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
}

static void
handshake_step_done_cb (GObject      *source,
                        GAsyncResult *result,
                        gpointer      user_data)
{
  GchatdConnection *self = GCHATD_CONNECTION (source);
  g_autoptr(GError) error = NULL;

  if (!g_task_propagate_boolean (G_TASK (result), &error))
    {
      if (self->state != GCHATD_CONNECTION_CLOSING)
        {
          g_message ("Disconnecting %s: handshake failed: %s", self->address, error->message);
          gchatd_connection_close (self, NULL, "handshake failed");
        }
      return;
    }
  /* The handshake keeps the exporter secret: the endpoint key is taken, now drop it. */
  self->channel = gchat_handshake_steal_channel (self->handshake);
  g_clear_pointer (&self->handshake, gchat_handshake_free);
  if (self->state == GCHATD_CONNECTION_CLOSING)
    return;
  self->state = GCHATD_CONNECTION_AUTHENTICATING;
  connection_resume (self);
}

static void
run_handshake_job (GchatdConnection *self,
                   GBytes           *input,
                   GTaskThreadFunc   func,
                   GAsyncReadyCallback done)
{
  g_autoptr(GTask) task = g_task_new (self, NULL, done, NULL);

  g_task_set_source_tag (task, func);
  g_task_set_task_data (task, g_bytes_ref (input), (GDestroyNotify) g_bytes_unref);
  self->paused = TRUE;
  gchatd_worker_pool_run (gchatd_server_get_crypto_threads (self->server), task, func);
}

static void
handle_client_key (GchatdConnection *self,
                   GBytes           *client_key)
{
  gchat_frame_decoder_set_max_payload (self->decoder,
                                       GCHATD_CONNECTION_MAX_UNAUTHENTICATED_PAYLOAD);
  run_handshake_job (self, client_key, handshake_step_thread, handshake_step_done_cb);
}

static void
ticket_free (gpointer data)
{
  gchat_memzero (data, sizeof (GchatTicket));
  g_free (data);
}

/* Resumption (PROTOCOL.md §3.5): no RSA, no Argon2id, one X25519. A ticket that does not open,
 * or a client that does not prove its secret, gets no answer: no keys are shared with it. The
 * ticket key is only read after gchatd starts, so opening tickets here is safe. */
static void
resume_thread (GTask        *task,
               gpointer      source_object,
               gpointer      task_data,
               GCancellable *cancellable)
{
  GchatdConnection *self = source_object;
  GBytes *message = task_data;
  g_autoptr(GBytes) none = NULL;
  GchatTicket *ticket = g_new0 (GchatTicket, 1);
  GError *error = NULL;

  if (!gchat_handshake_step (self->handshake, message, &none, &error)
      || !gchatd_server_open_ticket (self->server, gchat_handshake_get_ticket (self->handshake),
                                     ticket, &error)
      || !gchat_handshake_server_resume (self->handshake, ticket->secret, &error)
      || !gchat_handshake_export (self->handshake, "endpoint", self->endpoint_key,
                                  sizeof self->endpoint_key, &error))
    {
      ticket_free (ticket);
      g_task_return_error (task, error);
    }
  else
    g_task_return_pointer (task, ticket, ticket_free);
}

/* A valid ticket that is expired or revoked is refused in words. */
static void
resume_done_cb (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  GchatdConnection *self = GCHATD_CONNECTION (source);
  g_autoptr(GError) error = NULL;
  g_autofree char *user = NULL;
  GchatTicket *ticket = g_task_propagate_pointer (G_TASK (result), &error);

  if (self->state == GCHATD_CONNECTION_CLOSING)
    {
      g_clear_pointer (&ticket, ticket_free);
      return;
    }
  if (ticket == NULL)
    {
      g_message ("Disconnecting %s: resumption failed: %s", self->address, error->message);
      gchatd_connection_close (self, NULL, "resumption failed");
      return;
    }
  self->channel = gchat_handshake_steal_channel (self->handshake);
  g_clear_pointer (&self->handshake, gchat_handshake_free);
  self->state = GCHATD_CONNECTION_AUTHENTICATING;
  user = gchatd_server_check_ticket (self->server, ticket, &error);
  ticket_free (ticket);
  if (user == NULL)
    {
      g_message ("Refused a resumption from %s: %s", self->address, error->message);
      send_result (self, "resume", -1, "resume-refused", error->message, 0);
      gchatd_connection_close (self, NULL, "resumption refused");
      return;
    }
  gchatd_server_count_resumed (self->server);
  connection_log_in (self, "resume", -1, user);
  connection_resume (self);
}

static void
handle_resume (GchatdConnection *self,
               GBytes           *message)
{
  gchat_frame_decoder_set_max_payload (self->decoder,
                                       GCHATD_CONNECTION_MAX_UNAUTHENTICATED_PAYLOAD);
  run_handshake_job (self, message, resume_thread, resume_done_cb);
}

/* Reading */

static void
connection_process_frames (GchatdConnection *self)
{
  while (!self->paused && self->state != GCHATD_CONNECTION_CLOSING)
    {
      g_autoptr(GBytes) payload = gchat_frame_decoder_pop (self->decoder);

      if (payload == NULL)
        return;
      if (self->state == GCHATD_CONNECTION_HANDSHAKE && gchat_handshake_is_resume_message (payload))
        handle_resume (self, payload);
      else if (self->state == GCHATD_CONNECTION_HANDSHAKE)
        handle_client_key (self, payload);
      else
        handle_sealed_frame (self, payload);
    }
}

static gboolean
connection_push (GchatdConnection *self,
                 const guint8     *data,
                 gsize             len)
{
  g_autoptr(GError) error = NULL;

  if (gchat_frame_decoder_push (self->decoder, data, len, &error))
    return TRUE;
  g_message ("Disconnecting %s: %s", self->address, error->message);
  gchatd_connection_close (self, NULL, "bad frame");
  return FALSE;
}

/* Until the client key has arrived, bytes go in one at a time: the frames after it may be
 * larger than the handshake limit, which is raised only once the client key is out. */
static void
connection_feed (GchatdConnection *self,
                 const guint8     *data,
                 gsize             len)
{
  gsize i = 0;

  while (self->state == GCHATD_CONNECTION_HANDSHAKE && !self->paused && i < len)
    {
      if (!connection_push (self, data + i++, 1))
        return;
      connection_process_frames (self);
    }
  if (i < len && self->state != GCHATD_CONNECTION_CLOSING
      && !connection_push (self, data + i, len - i))
    return;
  connection_process_frames (self);
}

static void
connection_read (GchatdConnection *self)
{
  g_autoptr(GError) error = NULL;
  guint8 buffer[READ_CHUNK];
  gssize n;

  n = g_socket_receive (self->socket, (char *) buffer, sizeof buffer, NULL, &error);
  if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
    return;
  if (n <= 0)
    {
      gchatd_connection_close (self, NULL, n == 0 ? "peer closed" : error->message);
      return;
    }
  self->last_activity = g_get_monotonic_time ();
  connection_feed (self, buffer, n);
  /* While a request runs, its followers wait in the decoder. The socket is still read, so that
   * a client that hangs up is noticed and its queued hash dropped, but only up to a bound: a
   * client cannot pile frames up in memory. */
  if (self->paused && gchat_frame_decoder_get_buffered (self->decoder) > MAX_HELD_INPUT)
    connection_stop_reading (self);
}

/* A hang-up or an error goes to whichever side is waiting: the read or the write then fails
 * and closes the connection. */
static void
connection_ready_cb (int          fd,
                     GIOCondition ready,
                     gpointer     user_data)
{
  g_autoptr(GchatdConnection) self = g_object_ref (user_data);
  GIOCondition failed = ready & (G_IO_ERR | G_IO_HUP);

  if (self->write_blocked && ((ready & G_IO_OUT) || failed))
    connection_write_ready (self);
  if (self->reading && ((ready & G_IO_IN) || failed))
    connection_read (self);
}

static void
connection_start_reading (GchatdConnection *self)
{
  if (self->state == GCHATD_CONNECTION_CLOSING)
    return;
  self->reading = TRUE;
  connection_watch (self);
}

/* Goes on with the frames already buffered, then with the socket. */
static void
connection_resume (GchatdConnection *self)
{
  self->paused = FALSE;
  connection_process_frames (self);
  if (!self->paused)
    connection_start_reading (self);
}

void
gchatd_connection_start (GchatdConnection *self)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) hello = NULL;
  g_autoptr(GBytes) frame = NULL;
  guint8 secret[GCHAT_X25519_SIZE], public_key[GCHAT_X25519_SIZE];
  gboolean ok;

  g_return_if_fail (GCHATD_IS_CONNECTION (self));

  ok = gchatd_server_get_ephemeral (self->server, secret, public_key, &error);
  if (ok)
    gchat_handshake_set_ephemeral (self->handshake, secret, public_key);
  gchat_memzero (secret, sizeof secret);
  if (!ok
      || !gchat_handshake_step (self->handshake, NULL, &hello, &error)
      || (frame = gchat_frame_encode (g_bytes_get_data (hello, NULL), g_bytes_get_size (hello),
                                      &error)) == NULL)
    {
      g_message ("Cannot greet %s: %s", self->address, error->message);
      gchatd_connection_close (self, NULL, "no hello");
      return;
    }
  if (!gchatd_poller_add (self->poller, self->fd, G_IO_IN, connection_ready_cb, self, &error))
    {
      g_message ("Disconnecting %s: %s", self->address, error->message);
      gchatd_connection_close (self, NULL, "not watched");
      return;
    }
  self->watched = TRUE;
  self->watching = G_IO_IN;
  self->reading = TRUE;
  connection_queue_frame (self, frame);
  if (self->login_timeout_ms > 0)
    self->login_timeout_id = g_timeout_add (self->login_timeout_ms, login_timeout_cb, self);
}
