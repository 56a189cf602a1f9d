/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Acknowledgements, retransmission, in-order delivery and key replacement of one conversation. */

#include "config.h"

#include <inttypes.h>
#include <string.h>

#include <glib/gi18n-lib.h>

#include "gchat-conversation.h"
#include "gchat-crypto.h"

/* Acks waiting for the next poll are bounded; one that does not fit is sent again when the
 * peer retransmits. */
#define MAX_PENDING_ACKS (4 * GCHAT_DATAGRAM_MAX_ACK_IDS)
/* The ids last received whole, repeated in the room left in ack datagrams, so that one lost
 * ack costs no retransmission while traffic flows. */
#define RECENT_ACKS      GCHAT_CONVERSATION_MAX_IN_FLIGHT
/* Fast retransmission: after this many acks of messages transmitted later. */
#define FAST_RETRANSMIT_ACKS    2
/* Transmissions of a message before its timeout starts doubling. */
#define RTO_STEADY_TRANSMISSIONS 3

typedef struct {
  guint64    msg_id;
  GBytes    *text;       /* wiped when freed; cut into data bodies at each transmission */
  guint      fragments;
  gboolean   sent;       /* transmitted at least once, at first_sent */
  gint64     first_sent;
  gint64     next_retx;
  gint64     rto;
  guint64    tx_order;   /* when it was last transmitted, in the conversation's count */
  guint      later_acks; /* acks since then of messages transmitted after it */
  guint      transmissions;
  gboolean   stalled;
} OutMessage;

/* The receive state of one sender epoch: its messages are delivered in order of id. */
typedef struct {
  guint32     epoch;
  guint64     next_deliver;
  GHashTable *partial;       /* msg_id → GchatDatagramReassembler */
  GHashTable *complete;      /* msg_id → GBytes text, waiting for an earlier id */
  gint64      gap_since;     /* 0 when nothing waits */
} Inbound;

/* A message ready for the "message" signal, emitted once the state is consistent. */
typedef struct {
  guint64  msg_id;
  GBytes  *text;
} Ready;

struct _GchatConversation
{
  GObject        parent_instance;

  char          *self_user;
  char          *peer_user;

  GchatPeerKeys *key;
  gint64         key_installed;
  gint64         key_expires;
  GchatPeerKeys *old_key;
  gint64         old_key_until;
  GArray        *used_key_ids; /* guint32: never installed twice */
  guint64        rekey_datagrams;
  guint64        transmissions; /* every message transmission, to order them */
  gint64         rekey_age;

  /* Sending: OutMessage, in msg_id order; the prefix up to window_end() is in flight. */
  GQueue         outgoing;
  guint32        epoch;
  guint32        next_number;   /* 0 once every number of the epoch is used */
  GArray        *stalled_ids;

  /* Receiving: Inbound, the most recently used epoch first. */
  GQueue         inbound;
  GQueue         ready;         /* Ready, oldest first */
  GArray        *pending_acks;  /* guint64 */
  guint64        recent_acks[RECENT_ACKS];
  guint          n_recent_acks;
  gboolean       answer_hello;
};

G_DEFINE_FINAL_TYPE (GchatConversation, gchat_conversation, G_TYPE_OBJECT)

G_DEFINE_QUARK (gchat-conversation-error-quark, gchat_conversation_error)

enum {
  SIGNAL_MESSAGE,
  SIGNAL_DELIVERED,
  SIGNAL_STALLED,
  SIGNAL_FAILED,
  SIGNAL_HELLO_ANSWERED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

/* An honest sender's ids all fit in the receiver's window. */
G_STATIC_ASSERT (GCHAT_CONVERSATION_MAX_IN_FLIGHT <= GCHAT_CONVERSATION_RECEIVE_WINDOW);

static void
out_message_free (OutMessage *message)
{
  g_bytes_unref (message->text);
  g_free (message);
}

static Inbound *
inbound_new (guint32 epoch,
             guint64 next_deliver)
{
  Inbound *inbound = g_new0 (Inbound, 1);

  inbound->epoch = epoch;
  inbound->next_deliver = next_deliver;
  inbound->partial = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free,
                                            (GDestroyNotify) gchat_datagram_reassembler_free);
  inbound->complete = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free,
                                             (GDestroyNotify) g_bytes_unref);
  return inbound;
}

static void
inbound_free (Inbound *inbound)
{
  g_hash_table_unref (inbound->partial);
  g_hash_table_unref (inbound->complete);
  g_free (inbound);
}

static void
ready_free (Ready *ready)
{
  g_bytes_unref (ready->text);
  g_free (ready);
}

G_DEFINE_BOXED_TYPE (GchatOutgoingMessage, gchat_outgoing_message,
                     gchat_outgoing_message_copy, gchat_outgoing_message_free)

static GchatOutgoingMessage *
outgoing_message_new (guint64       msg_id,
                      const guint8 *text,
                      gsize         len)
{
  GchatOutgoingMessage *message = g_new0 (GchatOutgoingMessage, 1);

  message->msg_id = msg_id;
  message->text = g_malloc (len + 1);
  if (len > 0)
    memcpy (message->text, text, len);
  message->text[len] = '\0';
  message->len = len;
  return message;
}

GchatOutgoingMessage *
gchat_outgoing_message_copy (const GchatOutgoingMessage *message)
{
  g_return_val_if_fail (message != NULL, NULL);

  return outgoing_message_new (message->msg_id, (const guint8 *) message->text, message->len);
}

void
gchat_outgoing_message_free (GchatOutgoingMessage *message)
{
  if (message == NULL)
    return;
  /* A message text is as private as the key that would have sealed it. */
  gchat_memzero (message->text, message->len);
  g_free (message->text);
  g_free (message);
}

static void
gchat_conversation_finalize (GObject *object)
{
  GchatConversation *self = GCHAT_CONVERSATION (object);

  g_free (self->self_user);
  g_free (self->peer_user);
  g_clear_pointer (&self->key, gchat_peer_keys_free);
  g_clear_pointer (&self->old_key, gchat_peer_keys_free);
  g_array_unref (self->used_key_ids);
  g_queue_clear_full (&self->outgoing, (GDestroyNotify) out_message_free);
  g_array_unref (self->stalled_ids);
  g_queue_clear_full (&self->inbound, (GDestroyNotify) inbound_free);
  g_queue_clear_full (&self->ready, (GDestroyNotify) ready_free);
  g_array_unref (self->pending_acks);

  G_OBJECT_CLASS (gchat_conversation_parent_class)->finalize (object);
}

static guint
add_id_signal (GObjectClass *object_class,
               const char   *name)
{
  return g_signal_new (name, G_TYPE_FROM_CLASS (object_class), G_SIGNAL_RUN_LAST, 0,
                       NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_UINT64);
}

static void
gchat_conversation_class_init (GchatConversationClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = gchat_conversation_finalize;

  /* The text is wiped right after the emission, so handlers copy what they keep. */
  signals[SIGNAL_MESSAGE] =
    g_signal_new ("message", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 2,
                  G_TYPE_UINT64, G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE);
  signals[SIGNAL_DELIVERED] = add_id_signal (object_class, "delivered");
  signals[SIGNAL_STALLED] = add_id_signal (object_class, "stalled");
  signals[SIGNAL_FAILED] = add_id_signal (object_class, "failed");
  signals[SIGNAL_HELLO_ANSWERED] =
    g_signal_new ("hello-answered", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 0);
}

static void
gchat_conversation_init (GchatConversation *self)
{
  self->used_key_ids = g_array_new (FALSE, FALSE, sizeof (guint32));
  self->rekey_datagrams = GCHAT_CONVERSATION_REKEY_DATAGRAMS;
  self->rekey_age = GCHAT_CONVERSATION_REKEY_AGE;
  g_queue_init (&self->outgoing);
  /* A fresh random epoch each time: a restarted sender never repeats an id of its previous
   * run, which the peer would take for a duplicate and never show. */
  /* 31 bits, so that a message id fits the signed 64-bit `msg_id` of a `post` (§5.1). */
  while (self->epoch == 0)
    {
      gchat_random_bytes ((guint8 *) &self->epoch, sizeof self->epoch);
      self->epoch &= 0x7fffffff;
    }
  self->next_number = 1;
  self->stalled_ids = g_array_new (FALSE, FALSE, sizeof (guint64));
  g_queue_init (&self->inbound);
  g_queue_init (&self->ready);
  self->pending_acks = g_array_new (FALSE, FALSE, sizeof (guint64));
}

GchatConversation *
gchat_conversation_new (const char *self_user,
                        const char *peer_user)
{
  GchatConversation *self;

  g_return_val_if_fail (self_user != NULL, NULL);
  g_return_val_if_fail (peer_user != NULL, NULL);

  self = g_object_new (GCHAT_TYPE_CONVERSATION, NULL);
  self->self_user = g_strdup (self_user);
  self->peer_user = g_strdup (peer_user);
  return self;
}

const char *
gchat_conversation_get_self_user (GchatConversation *self)
{
  g_return_val_if_fail (GCHAT_IS_CONVERSATION (self), NULL);

  return self->self_user;
}

const char *
gchat_conversation_get_peer_user (GchatConversation *self)
{
  g_return_val_if_fail (GCHAT_IS_CONVERSATION (self), NULL);

  return self->peer_user;
}

/* ---- Keys ---- */

static gboolean
key_id_was_used (GchatConversation *self,
                 guint32            key_id)
{
  for (guint i = 0; i < self->used_key_ids->len; i++)
    if (g_array_index (self->used_key_ids, guint32, i) == key_id)
      return TRUE;
  return FALSE;
}

gboolean
gchat_conversation_set_key (GchatConversation  *self,
                            const guint8        pair_key[32],
                            guint32             key_id,
                            gint64              expires_us,
                            gint64              now,
                            GError            **error)
{
  GchatPeerKeys *keys;

  g_return_val_if_fail (GCHAT_IS_CONVERSATION (self), FALSE);
  g_return_val_if_fail (pair_key != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  /* The sequence numbers of a key start again at 0, so a key id seen before would repeat its
   * nonces if the server ever sent the same key twice. */
  if (key_id_was_used (self, key_id))
    {
      g_set_error (error, GCHAT_CONVERSATION_ERROR, GCHAT_CONVERSATION_ERROR_KEY_REUSED,
                   _("Pair key %u with “%s” was installed before and cannot be used again"),
                   key_id, self->peer_user);
      return FALSE;
    }
  keys = gchat_peer_keys_new (pair_key, key_id, self->self_user, self->peer_user, error);
  if (keys == NULL)
    return FALSE;
  g_array_append_val (self->used_key_ids, key_id);

  g_clear_pointer (&self->old_key, gchat_peer_keys_free);
  self->old_key = g_steal_pointer (&self->key);
  self->old_key_until = now + GCHAT_CONVERSATION_KEY_GRACE;
  self->key = keys;
  self->key_installed = now;
  self->key_expires = expires_us;

  /* Whatever was sealed under the old key may be lost with it: send it again promptly. */
  for (GList *l = self->outgoing.head; l != NULL; l = l->next)
    {
      OutMessage *message = l->data;

      if (message->sent)
        {
          message->next_retx = now;
          message->rto = GCHAT_CONVERSATION_RTO_INITIAL;
        }
    }
  return TRUE;
}

gboolean
gchat_conversation_has_key (GchatConversation *self)
{
  g_return_val_if_fail (GCHAT_IS_CONVERSATION (self), FALSE);

  return self->key != NULL;
}

gboolean
gchat_conversation_needs_rekey (GchatConversation *self,
                                gint64             now)
{
  g_return_val_if_fail (GCHAT_IS_CONVERSATION (self), FALSE);

  if (self->key == NULL)
    return TRUE;
  return gchat_peer_keys_get_next_seq (self->key) >= self->rekey_datagrams
         || now - self->key_installed >= self->rekey_age
         || (self->key_expires != 0 && now >= self->key_expires);
}

void
gchat_conversation_set_rekey_limits (GchatConversation *self,
                                     guint64            datagrams,
                                     gint64             age_us)
{
  g_return_if_fail (GCHAT_IS_CONVERSATION (self));

  if (datagrams != 0)
    self->rekey_datagrams = datagrams;
  if (age_us > 0)
    self->rekey_age = age_us;
}

/* ---- Sending ---- */

guint32
gchat_conversation_get_epoch (GchatConversation *self)
{
  g_return_val_if_fail (GCHAT_IS_CONVERSATION (self), 0);

  return self->epoch;
}

void
gchat_conversation_set_epoch (GchatConversation *self,
                              guint32            epoch)
{
  g_return_if_fail (GCHAT_IS_CONVERSATION (self));
  g_return_if_fail (epoch != 0);
  g_return_if_fail (self->next_number == 1);

  self->epoch = epoch;
}

/* Every id below the oldest message still waiting was acknowledged, given up or taken back. */
static guint64
sending_floor (GchatConversation *self)
{
  OutMessage *head = g_queue_peek_head (&self->outgoing);

  return head != NULL ? head->msg_id : GCHAT_DATAGRAM_MSG_ID (self->epoch, self->next_number);
}

static gboolean
check_can_queue (GchatConversation  *self,
                 const char         *text,
                 gsize               len,
                 GError            **error)
{
  if (self->outgoing.length >= GCHAT_CONVERSATION_MAX_IN_FLIGHT + GCHAT_CONVERSATION_MAX_QUEUED)
    {
      g_set_error (error, GCHAT_CONVERSATION_ERROR, GCHAT_CONVERSATION_ERROR_QUEUE_FULL,
                   _("Too many messages to “%s” wait to be sent; try again later"),
                   self->peer_user);
      return FALSE;
    }
  /* Four billion messages in one run: the ids of this epoch are used up. */
  if (self->next_number == 0)
    {
      g_set_error (error, GCHAT_CONVERSATION_ERROR, GCHAT_CONVERSATION_ERROR_QUEUE_FULL,
                   _("The conversation with “%s” has used all its message numbers; "
                     "restart gchat to continue"), self->peer_user);
      return FALSE;
    }
  if (len > 0 && memchr (text, '\0', len) != NULL)
    {
      g_set_error_literal (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_MALFORMED,
                           _("A message must be valid UTF-8 text without NUL characters"));
      return FALSE;
    }
  return TRUE;
}

guint64
gchat_conversation_send (GchatConversation  *self,
                         const char         *text,
                         gsize               len,
                         gint64              now,
                         GError            **error)
{
  OutMessage *message;
  g_autoptr(GPtrArray) bodies = NULL;
  guint64 msg_id;

  g_return_val_if_fail (GCHAT_IS_CONVERSATION (self), 0);
  g_return_val_if_fail (text != NULL || len == 0, 0);
  g_return_val_if_fail (error == NULL || *error == NULL, 0);

  if (!check_can_queue (self, text, len, error))
    return 0;
  /* Cutting it once checks the size and the UTF-8; it is cut again at each transmission,
   * with the floor of that moment. */
  msg_id = GCHAT_DATAGRAM_MSG_ID (self->epoch, self->next_number);
  bodies = gchat_datagram_split_text (msg_id, msg_id, text, len, GCHAT_DATAGRAM_MAX_BODY, error);
  if (bodies == NULL)
    return 0;

  message = g_new0 (OutMessage, 1);
  message->msg_id = msg_id;
  message->text = gchat_bytes_new_wiped ((const guint8 *) text, len);
  message->fragments = bodies->len;
  message->rto = GCHAT_CONVERSATION_RTO_INITIAL;
  g_queue_push_tail (&self->outgoing, message);
  self->next_number++;
  (void) now;
  return message->msg_id;
}

static GBytes *
seal_ack (GchatPeerKeys *key,
          const guint64 *ids,
          guint          count)
{
  g_autoptr(GBytes) body = gchat_datagram_build_ack (ids, count, NULL);

  if (body == NULL)
    return NULL;
  return gchat_peer_keys_seal (key, GCHAT_DATAGRAM_KIND_ACK, g_bytes_get_data (body, NULL),
                               g_bytes_get_size (body), NULL);
}

static gboolean
ack_is_pending (GchatConversation *self,
                guint64            msg_id)
{
  for (guint i = 0; i < self->pending_acks->len; i++)
    if (g_array_index (self->pending_acks, guint64, i) == msg_id)
      return TRUE;
  return FALSE;
}

/* Fills the room left in the last ack datagram with recent ids, adding no datagram. */
static void
add_recent_acks (GchatConversation *self)
{
  for (guint i = 0; i < self->n_recent_acks; i++)
    {
      guint64 msg_id = self->recent_acks[i];

      if (self->pending_acks->len % GCHAT_DATAGRAM_MAX_ACK_IDS == 0)
        return;
      if (!ack_is_pending (self, msg_id))
        g_array_append_val (self->pending_acks, msg_id);
    }
}

/* Acks go out at once, coalesced into as few datagrams as they fit in. */
static void
flush_acks (GchatConversation *self,
            GPtrArray         *out)
{
  GBytes *datagram;

  add_recent_acks (self);

  if (self->answer_hello && (datagram = seal_ack (self->key, NULL, 0)) != NULL)
    g_ptr_array_add (out, datagram);
  self->answer_hello = FALSE;

  for (guint i = 0; i < self->pending_acks->len; i += GCHAT_DATAGRAM_MAX_ACK_IDS)
    {
      guint count = MIN (GCHAT_DATAGRAM_MAX_ACK_IDS, self->pending_acks->len - i);

      datagram = seal_ack (self->key, &g_array_index (self->pending_acks, guint64, i), count);
      if (datagram != NULL)
        g_ptr_array_add (out, datagram);
    }
  g_array_set_size (self->pending_acks, 0);
}

/* Cuts and seals one message with the current floor, which may have moved since it was
 * queued. */
static GPtrArray *
seal_message (GchatConversation  *self,
              OutMessage         *message,
              GError            **error)
{
  g_autoptr(GPtrArray) datagrams = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  gsize len;
  const char *text = g_bytes_get_data (message->text, &len);
  g_autoptr(GPtrArray) bodies = gchat_datagram_split_text (message->msg_id, sending_floor (self),
                                                           text, len, GCHAT_DATAGRAM_MAX_BODY,
                                                           error);

  if (bodies == NULL)
    return NULL;
  for (guint i = 0; i < bodies->len; i++)
    {
      GBytes *body = g_ptr_array_index (bodies, i);
      GBytes *datagram = gchat_peer_keys_seal (self->key, GCHAT_DATAGRAM_KIND_DATA,
                                               g_bytes_get_data (body, NULL),
                                               g_bytes_get_size (body), error);

      if (datagram == NULL)
        return NULL;
      g_ptr_array_add (datagrams, datagram);
    }
  return g_steal_pointer (&datagrams);
}

static void
transmit (GchatConversation *self,
          OutMessage        *message,
          gint64             now,
          GPtrArray         *out)
{
  g_autoptr(GPtrArray) datagrams = seal_message (self, message, NULL);

  /* Sealing fails only when the key is used up; the message waits for the next key then. */
  if (datagrams != NULL)
    for (guint i = 0; i < datagrams->len; i++)
      g_ptr_array_add (out, g_bytes_ref (g_ptr_array_index (datagrams, i)));
  if (!message->sent)
    message->first_sent = now;
  message->sent = TRUE;
  message->tx_order = ++self->transmissions;
  message->later_acks = 0;
  message->next_retx = now + message->rto;
  /* Random loss is not congestion: the first retransmissions keep the timeout, and only a
   * message lost again and again backs off, doubling up to the cap. */
  if (++message->transmissions >= RTO_STEADY_TRANSMISSIONS)
    message->rto = MIN (message->rto * 2, GCHAT_CONVERSATION_RTO_MAX);
}

/* A message that leaves the queue no longer waits for the relay either. */
static void
remove_message (GchatConversation *self,
                GList             *link)
{
  OutMessage *message = link->data;

  for (guint i = 0; i < self->stalled_ids->len; i++)
    if (g_array_index (self->stalled_ids, guint64, i) == message->msg_id)
      {
        g_array_remove_index (self->stalled_ids, i);
        break;
      }
  g_queue_delete_link (&self->outgoing, link);
  out_message_free (message);
}

/* The window is a prefix of the queue: at most GCHAT_CONVERSATION_MAX_IN_FLIGHT ids from the
 * oldest unacknowledged one, and at most GCHAT_CONVERSATION_MAX_IN_FLIGHT_FRAGMENTS datagrams
 * (the oldest message always fits), so that no burst outruns the peer's replay window. */
static GList *
window_end (GchatConversation *self)
{
  OutMessage *head = g_queue_peek_head (&self->outgoing);
  guint fragments = 0;
  GList *l;

  for (l = self->outgoing.head; l != NULL; l = l->next)
    {
      OutMessage *message = l->data;

      fragments += message->fragments;
      if (message->msg_id - head->msg_id >= GCHAT_CONVERSATION_MAX_IN_FLIGHT
          || (message != head && fragments > GCHAT_CONVERSATION_MAX_IN_FLIGHT_FRAGMENTS))
        break;
    }
  return l;
}

/* Sends what is due, marks stalls and gives up failures; the events are collected in @stalled
 * and @failed and emitted by the caller once the queue is consistent again. */
static gint64
poll_outgoing (GchatConversation *self,
               gint64             now,
               GPtrArray         *out,
               GArray            *stalled,
               GArray            *failed)
{
  gint64 next = G_MAXINT64;
  GList *l = self->outgoing.head;
  GList *end = window_end (self);

  while (l != end)
    {
      OutMessage *message = l->data;
      GList *following = l->next;

      if (message->sent && now - message->first_sent >= GCHAT_CONVERSATION_FAIL_TIMEOUT)
        {
          g_array_append_val (failed, message->msg_id);
          /* Giving it up moves the window, so the loop goes on to newly admitted ones. */
          remove_message (self, l);
          l = following;
          end = window_end (self);
          continue;
        }
      if (!message->sent || now >= message->next_retx)
        transmit (self, message, now, out);
      if (!message->stalled && now - message->first_sent >= GCHAT_CONVERSATION_STALL_TIMEOUT)
        {
          message->stalled = TRUE;
          g_array_append_val (stalled, message->msg_id);
          g_array_append_val (self->stalled_ids, message->msg_id);
        }
      next = MIN (next, message->next_retx);
      if (!message->stalled)
        next = MIN (next, message->first_sent + GCHAT_CONVERSATION_STALL_TIMEOUT);
      next = MIN (next, message->first_sent + GCHAT_CONVERSATION_FAIL_TIMEOUT);
      l = following;
    }
  return next;
}

static void
emit_ids (GchatConversation *self,
          guint              signal,
          GArray            *ids)
{
  for (guint i = 0; i < ids->len; i++)
    g_signal_emit (self, signals[signal], 0, g_array_index (ids, guint64, i));
}

static void deliver_ready (GchatConversation *self,
                           Inbound           *inbound,
                           gint64             now);
static void emit_ready    (GchatConversation *self);

gint64
gchat_conversation_poll (GchatConversation *self,
                         gint64             now,
                         GPtrArray         *out_datagrams)
{
  g_autoptr(GArray) stalled = g_array_new (FALSE, FALSE, sizeof (guint64));
  g_autoptr(GArray) failed = g_array_new (FALSE, FALSE, sizeof (guint64));
  gint64 next = G_MAXINT64;

  g_return_val_if_fail (GCHAT_IS_CONVERSATION (self), G_MAXINT64);
  g_return_val_if_fail (out_datagrams != NULL, G_MAXINT64);

  if (self->old_key != NULL && now >= self->old_key_until)
    g_clear_pointer (&self->old_key, gchat_peer_keys_free);
  if (self->old_key != NULL)
    next = self->old_key_until;

  for (GList *l = self->inbound.head; l != NULL; l = l->next)
    {
      Inbound *inbound = l->data;

      deliver_ready (self, inbound, now);
      if (inbound->gap_since != 0)
        next = MIN (next, inbound->gap_since + GCHAT_CONVERSATION_GAP_TIMEOUT);
    }
  if (self->key != NULL)
    {
      flush_acks (self, out_datagrams);
      next = MIN (next, poll_outgoing (self, now, out_datagrams, stalled, failed));
    }
  emit_ready (self);
  emit_ids (self, SIGNAL_FAILED, failed);
  emit_ids (self, SIGNAL_STALLED, stalled);
  return next;
}

GBytes *
gchat_conversation_seal_hello (GchatConversation  *self,
                               GError            **error)
{
  g_return_val_if_fail (GCHAT_IS_CONVERSATION (self), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (self->key == NULL)
    {
      g_set_error (error, GCHAT_CONVERSATION_ERROR, GCHAT_CONVERSATION_ERROR_NO_KEY,
                   _("There is no key for “%s” yet; ask the server for one"), self->peer_user);
      return NULL;
    }
  return gchat_peer_keys_seal (self->key, GCHAT_DATAGRAM_KIND_HELLO, NULL, 0, error);
}

GArray *
gchat_conversation_take_stalled (GchatConversation *self)
{
  GArray *ids;

  g_return_val_if_fail (GCHAT_IS_CONVERSATION (self), NULL);

  ids = g_steal_pointer (&self->stalled_ids);
  self->stalled_ids = g_array_new (FALSE, FALSE, sizeof (guint64));
  return ids;
}

static OutMessage *
find_in_flight (GchatConversation *self,
                guint64            msg_id,
                GList            **link)
{
  GList *end = window_end (self);

  for (GList *l = self->outgoing.head; l != end; l = l->next)
    {
      OutMessage *message = l->data;

      if (message->msg_id == msg_id)
        {
          if (link != NULL)
            *link = l;
          return message;
        }
    }
  return NULL;
}

GPtrArray *
gchat_conversation_seal_message (GchatConversation  *self,
                                 guint64             msg_id,
                                 GError            **error)
{
  OutMessage *message;

  g_return_val_if_fail (GCHAT_IS_CONVERSATION (self), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  message = find_in_flight (self, msg_id, NULL);
  if (message == NULL || !message->sent)
    {
      g_set_error (error, GCHAT_CONVERSATION_ERROR, GCHAT_CONVERSATION_ERROR_OUT_OF_WINDOW,
                   _("Message %" PRIu64 " to “%s” is not waiting for an answer"),
                   msg_id, self->peer_user);
      return NULL;
    }
  /* A fresh sealing, with new sequence numbers, so that the relayed copies are not taken for
   * replays of the direct ones. */
  return seal_message (self, message, error);
}

GPtrArray *
gchat_conversation_take_unacknowledged (GchatConversation *self)
{
  GPtrArray *taken;
  OutMessage *message;

  g_return_val_if_fail (GCHAT_IS_CONVERSATION (self), NULL);

  taken = g_ptr_array_new_with_free_func ((GDestroyNotify) gchat_outgoing_message_free);
  /* With the queue empty the floor is the next id, so the peer stops waiting for these. */
  while ((message = g_queue_peek_head (&self->outgoing)) != NULL)
    {
      gsize len;
      const guint8 *text = g_bytes_get_data (message->text, &len);

      g_ptr_array_add (taken, outgoing_message_new (message->msg_id, text, len));
      remove_message (self, self->outgoing.head);
    }
  return taken;
}

guint
gchat_conversation_get_n_pending (GchatConversation *self)
{
  g_return_val_if_fail (GCHAT_IS_CONVERSATION (self), 0);

  return self->outgoing.length;
}

/* ---- Receiving ---- */

static void
queue_ack (GchatConversation *self,
           guint64            msg_id)
{
  if (!ack_is_pending (self, msg_id) && self->pending_acks->len < MAX_PENDING_ACKS)
    g_array_append_val (self->pending_acks, msg_id);
}

static void
remember_ack (GchatConversation *self,
              guint64            msg_id)
{
  if (self->n_recent_acks == RECENT_ACKS)
    {
      memmove (self->recent_acks, self->recent_acks + 1,
               (RECENT_ACKS - 1) * sizeof self->recent_acks[0]);
      self->n_recent_acks--;
    }
  self->recent_acks[self->n_recent_acks++] = msg_id;
}

static guint64 *
id_key (guint64 msg_id)
{
  return g_memdup2 (&msg_id, sizeof msg_id);
}

static void
push_ready (GchatConversation *self,
            guint64            msg_id,
            GBytes            *text)
{
  Ready *ready = g_new0 (Ready, 1);

  ready->msg_id = msg_id;
  ready->text = g_bytes_ref (text);
  g_queue_push_tail (&self->ready, ready);
}

/* Emits the messages made ready, one at a time, so that a handler that calls back into the
 * conversation finds it consistent and the order is kept. */
static void
emit_ready (GchatConversation *self)
{
  Ready *ready;

  while ((ready = g_queue_pop_head (&self->ready)) != NULL)
    {
      gsize len;
      const char *data = g_bytes_get_data (ready->text, &len);
      char *copy = g_malloc (len + 1);

      if (len > 0)
        memcpy (copy, data, len);
      copy[len] = '\0';
      g_signal_emit (self, signals[SIGNAL_MESSAGE], 0, ready->msg_id, copy);
      gchat_memzero (copy, len);
      g_free (copy);
      ready_free (ready);
    }
}

static gint
compare_ids (gconstpointer a,
             gconstpointer b)
{
  guint64 x = *(const guint64 *) a, y = *(const guint64 *) b;

  return x < y ? -1 : x > y;
}

/* Moves an epoch's next id up to @floor: the sender no longer waits for anything below it.
 * Messages held below it were received whole and acknowledged, so they are delivered, in
 * order; pieces of the others are dropped. */
static void
inbound_skip_to (GchatConversation *self,
                 Inbound           *inbound,
                 guint64            floor)
{
  g_autoptr(GArray) held = g_array_new (FALSE, FALSE, sizeof (guint64));
  GHashTableIter iter;
  gpointer key;

  g_hash_table_iter_init (&iter, inbound->partial);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    if (*(guint64 *) key < floor)
      g_hash_table_iter_remove (&iter);
  g_hash_table_iter_init (&iter, inbound->complete);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    if (*(guint64 *) key < floor)
      g_array_append_val (held, *(guint64 *) key);
  g_array_sort (held, compare_ids);
  for (guint i = 0; i < held->len; i++)
    {
      guint64 msg_id = g_array_index (held, guint64, i);

      push_ready (self, msg_id, g_hash_table_lookup (inbound->complete, &msg_id));
      g_hash_table_remove (inbound->complete, &msg_id);
    }
  inbound->next_deliver = MAX (inbound->next_deliver, floor);
}

/* Delivers the complete messages that are next in order. When later ones wait for a missing
 * id for longer than the sender keeps trying, the missing ids are skipped: the sender has
 * reported them failed. */
static void
deliver_ready (GchatConversation *self,
               Inbound           *inbound,
               gint64             now)
{
  guint64 before = inbound->next_deliver;
  guint64 key;
  GBytes *text;

  /* Held messages all lie above the next id, so the skip ends at the first of them. */
  if (inbound->gap_since != 0 && now - inbound->gap_since >= GCHAT_CONVERSATION_GAP_TIMEOUT
      && g_hash_table_size (inbound->complete) > 0)
    {
      while (!g_hash_table_contains (inbound->complete, &inbound->next_deliver))
        {
          g_hash_table_remove (inbound->partial, &inbound->next_deliver);
          inbound->next_deliver++;
        }
    }
  while ((key = inbound->next_deliver,
          text = g_hash_table_lookup (inbound->complete, &key)) != NULL)
    {
      push_ready (self, key, text);
      g_hash_table_remove (inbound->complete, &key);
      inbound->next_deliver++;
    }
  /* The wait for a missing id starts when it becomes the next one: its sender sent it before
   * any of the held ones, so it has given it up by the time the wait ends. */
  if (g_hash_table_size (inbound->complete) == 0)
    inbound->gap_since = 0;
  else if (inbound->gap_since == 0 || inbound->next_deliver != before)
    inbound->gap_since = MAX (now, 1);
}

/* The state of @epoch, made the most recently used. A new epoch starts at the sender's floor:
 * a receiver that restarted cannot know more. The least recently used one makes room, after
 * delivering what it held, since those messages were acknowledged already. */
static Inbound *
inbound_for (GchatConversation *self,
             guint32            epoch,
             guint64            floor)
{
  Inbound *inbound;

  for (GList *l = self->inbound.head; l != NULL; l = l->next)
    {
      inbound = l->data;
      if (inbound->epoch == epoch)
        {
          g_queue_unlink (&self->inbound, l);
          g_queue_push_head_link (&self->inbound, l);
          return inbound;
        }
    }
  if (self->inbound.length >= GCHAT_CONVERSATION_MAX_EPOCHS)
    {
      inbound = g_queue_pop_tail (&self->inbound);
      inbound_skip_to (self, inbound, G_MAXUINT64);
      inbound_free (inbound);
    }
  inbound = inbound_new (epoch, floor);
  g_queue_push_head (&self->inbound, inbound);
  return inbound;
}

static gboolean
receive_fragment (GchatConversation        *self,
                  Inbound                  *inbound,
                  const GchatDatagramData  *data,
                  GError                  **error)
{
  GchatDatagramReassembler *reassembler;
  GBytes *text;

  reassembler = g_hash_table_lookup (inbound->partial, &data->msg_id);
  if (reassembler == NULL)
    {
      reassembler = gchat_datagram_reassembler_new (data->msg_id);
      g_hash_table_insert (inbound->partial, id_key (data->msg_id), reassembler);
    }
  if (!gchat_datagram_reassembler_add (reassembler, data, error))
    return FALSE;
  if (!gchat_datagram_reassembler_is_complete (reassembler))
    return TRUE;

  text = gchat_datagram_reassembler_finish (reassembler, error);
  g_hash_table_remove (inbound->partial, &data->msg_id);
  if (text == NULL)
    return FALSE;
  g_hash_table_insert (inbound->complete, id_key (data->msg_id), text);
  queue_ack (self, data->msg_id);
  remember_ack (self, data->msg_id);
  return TRUE;
}

/* Ids are epoch:u32 || number:u32 with neither 0, and the floor is in the same epoch. */
static gboolean
check_ids (const GchatDatagramData  *data,
           GError                  **error)
{
  if (GCHAT_DATAGRAM_MSG_EPOCH (data->msg_id) == 0 || GCHAT_DATAGRAM_MSG_NUMBER (data->floor) == 0
      || GCHAT_DATAGRAM_MSG_EPOCH (data->floor) != GCHAT_DATAGRAM_MSG_EPOCH (data->msg_id))
    {
      g_set_error_literal (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_MALFORMED,
                           _("The peer sent a message with an invalid id"));
      return FALSE;
    }
  return TRUE;
}

/* Takes one fragment into the state of its epoch, whose floor was applied already. */
static gboolean
accept_fragment (GchatConversation        *self,
                 Inbound                  *inbound,
                 const GchatDatagramData  *data,
                 GError                  **error)
{
  /* A message received before is acknowledged again: the peer evidently missed the ack. Below
   * the floor, the sender saw it acknowledged or gave it up, so the ack is harmless. */
  if (data->msg_id < inbound->next_deliver
      || g_hash_table_contains (inbound->complete, &data->msg_id))
    {
      queue_ack (self, data->msg_id);
      return TRUE;
    }
  /* The window bounds what a peer can make this side hold: at most this many messages of at
   * most GCHAT_DATAGRAM_MAX_TEXT bytes each, per epoch. */
  if (data->msg_id - inbound->next_deliver >= GCHAT_CONVERSATION_RECEIVE_WINDOW)
    {
      g_set_error (error, GCHAT_CONVERSATION_ERROR, GCHAT_CONVERSATION_ERROR_OUT_OF_WINDOW,
                   _("“%s” sent message %" PRIu64 " while %" PRIu64
                     " is still missing"), self->peer_user, data->msg_id, inbound->next_deliver);
      return FALSE;
    }
  return receive_fragment (self, inbound, data, error);
}

static gboolean
receive_data (GchatConversation  *self,
              GBytes             *body,
              gint64              now,
              GError            **error)
{
  GchatDatagramData data;
  Inbound *inbound;
  gboolean ok;
  gsize len;
  const guint8 *bytes = g_bytes_get_data (body, &len);

  if (!gchat_datagram_parse_data (bytes, len, &data, error) || !check_ids (&data, error))
    return FALSE;
  inbound = inbound_for (self, GCHAT_DATAGRAM_MSG_EPOCH (data.msg_id), data.floor);
  /* The sender waits for nothing below its floor: no need to wait out the gap timeout. */
  if (data.floor > inbound->next_deliver)
    inbound_skip_to (self, inbound, data.floor);
  ok = accept_fragment (self, inbound, &data, error);
  deliver_ready (self, inbound, now);
  emit_ready (self);
  return ok;
}

/* Acks of messages transmitted after one that stays unacknowledged mean that it was lost, so
 * it goes again at once rather than after its timeout (a fast retransmission, like TCP's with
 * selective acks). Waiting for a second such ack keeps a message merely overtaken on the way
 * from being sent twice. */
static void
retransmit_overtaken (GchatConversation *self,
                      guint64            newest_order,
                      gint64             now)
{
  for (GList *l = self->outgoing.head; l != NULL; l = l->next)
    {
      OutMessage *message = l->data;

      if (!message->sent || message->tx_order >= newest_order)
        continue;
      if (++message->later_acks >= FAST_RETRANSMIT_ACKS && message->next_retx > now)
        {
          message->next_retx = now;
          /* This send is not a timeout: it should not count towards the backoff. */
          if (message->transmissions > 0)
            message->transmissions--;
        }
    }
}

static void
receive_ack (GchatConversation *self,
             const guint64     *ids,
             guint              count,
             gint64             now)
{
  g_autoptr(GArray) delivered = g_array_new (FALSE, FALSE, sizeof (guint64));
  guint64 newest = 0;

  if (count == 0)
    {
      g_signal_emit (self, signals[SIGNAL_HELLO_ANSWERED], 0);
      return;
    }
  for (guint i = 0; i < count; i++)
    {
      GList *link = NULL;
      OutMessage *message = find_in_flight (self, ids[i], &link);

      /* Only a message that was sent can be acknowledged; anything else is ignored. */
      if (message == NULL || !message->sent)
        continue;
      newest = MAX (newest, message->tx_order);
      remove_message (self, link);
      g_array_append_val (delivered, ids[i]);
    }
  if (newest != 0)
    retransmit_overtaken (self, newest, now);
  emit_ids (self, SIGNAL_DELIVERED, delivered);
}

/* The current key, or the previous one while its grace lasts. */
static GchatPeerKeys *
key_for (GchatConversation  *self,
         const guint8       *data,
         gsize               len,
         gint64              now,
         GError            **error)
{
  GchatDatagramHeader header;

  if (!gchat_datagram_peek_header (data, len, &header, error))
    return NULL;
  if (self->old_key != NULL && now < self->old_key_until
      && header.key_id == gchat_peer_keys_get_key_id (self->old_key))
    return self->old_key;
  if (self->key != NULL)
    return self->key;
  g_set_error (error, GCHAT_CONVERSATION_ERROR, GCHAT_CONVERSATION_ERROR_NO_KEY,
               _("A datagram from “%s” arrived before any key"), self->peer_user);
  return NULL;
}

gboolean
gchat_conversation_receive (GchatConversation  *self,
                            const guint8       *data,
                            gsize               len,
                            gint64              now,
                            GError            **error)
{
  GchatPeerKeys *key;
  GchatDatagramKind kind;
  g_autoptr(GBytes) body = NULL;
  guint64 ids[GCHAT_DATAGRAM_MAX_ACK_IDS];
  guint count;
  gsize body_len;
  const guint8 *body_data;

  g_return_val_if_fail (GCHAT_IS_CONVERSATION (self), FALSE);
  g_return_val_if_fail (data != NULL || len == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  key = key_for (self, data, len, now, error);
  if (key == NULL)
    return FALSE;
  body = gchat_peer_keys_open (key, data, len, &kind, NULL, error);
  if (body == NULL)
    return FALSE;

  body_data = g_bytes_get_data (body, &body_len);
  switch (kind)
    {
    case GCHAT_DATAGRAM_KIND_DATA:
      return receive_data (self, body, now, error);
    case GCHAT_DATAGRAM_KIND_ACK:
      if (!gchat_datagram_parse_ack (body_data, body_len, ids, &count, error))
        return FALSE;
      receive_ack (self, ids, count, now);
      return TRUE;
    case GCHAT_DATAGRAM_KIND_HELLO:
      self->answer_hello = TRUE;
      return TRUE;
    case GCHAT_DATAGRAM_KIND_ENDPOINT:
    default:
      g_set_error_literal (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_MALFORMED,
                           _("An endpoint datagram arrived where only peer datagrams belong"));
      return FALSE;
    }
}
