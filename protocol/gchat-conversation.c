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

typedef struct {
  guint64    msg_id;
  GPtrArray *bodies;     /* GBytes data bodies, in fragment order */
  gboolean   sent;       /* transmitted at least once, at first_sent */
  gint64     first_sent;
  gint64     next_retx;
  gint64     rto;
  gboolean   stalled;
} OutMessage;

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
  gint64         rekey_age;

  /* Sending: OutMessage, in msg_id order; the prefix up to window_end() is in flight. */
  GQueue         outgoing;
  guint64        next_msg_id;
  GArray        *stalled_ids;

  /* Receiving. */
  guint64        next_deliver;
  GHashTable    *partial;       /* msg_id → GchatDatagramReassembler */
  GHashTable    *complete;      /* msg_id → GBytes text, waiting for an earlier id */
  gint64         gap_since;     /* 0 when nothing waits */
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
  g_ptr_array_unref (message->bodies);
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
  g_hash_table_unref (self->partial);
  g_hash_table_unref (self->complete);
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
  self->next_msg_id = 1;
  self->stalled_ids = g_array_new (FALSE, FALSE, sizeof (guint64));
  self->next_deliver = 1;
  self->partial = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free,
                                         (GDestroyNotify) gchat_datagram_reassembler_free);
  self->complete = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free,
                                          (GDestroyNotify) g_bytes_unref);
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

guint64
gchat_conversation_send (GchatConversation  *self,
                         const char         *text,
                         gsize               len,
                         gint64              now,
                         GError            **error)
{
  OutMessage *message;
  GPtrArray *bodies;

  g_return_val_if_fail (GCHAT_IS_CONVERSATION (self), 0);
  g_return_val_if_fail (text != NULL || len == 0, 0);
  g_return_val_if_fail (error == NULL || *error == NULL, 0);

  if (self->outgoing.length >= GCHAT_CONVERSATION_MAX_IN_FLIGHT + GCHAT_CONVERSATION_MAX_QUEUED)
    {
      g_set_error (error, GCHAT_CONVERSATION_ERROR, GCHAT_CONVERSATION_ERROR_QUEUE_FULL,
                   _("Too many messages to “%s” wait to be sent; try again later"),
                   self->peer_user);
      return 0;
    }
  if (len > 0 && memchr (text, '\0', len) != NULL)
    {
      g_set_error_literal (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_MALFORMED,
                           _("A message must be valid UTF-8 text without NUL characters"));
      return 0;
    }
  bodies = gchat_datagram_split_text (self->next_msg_id, text, len, GCHAT_DATAGRAM_MAX_BODY,
                                      error);
  if (bodies == NULL)
    return 0;

  message = g_new0 (OutMessage, 1);
  message->msg_id = self->next_msg_id++;
  message->bodies = bodies;
  message->rto = GCHAT_CONVERSATION_RTO_INITIAL;
  g_queue_push_tail (&self->outgoing, message);
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

static GPtrArray *
seal_bodies (GchatPeerKeys  *key,
             GPtrArray      *bodies,
             GError        **error)
{
  g_autoptr(GPtrArray) datagrams = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);

  for (guint i = 0; i < bodies->len; i++)
    {
      GBytes *body = g_ptr_array_index (bodies, i);
      GBytes *datagram = gchat_peer_keys_seal (key, GCHAT_DATAGRAM_KIND_DATA,
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
  g_autoptr(GPtrArray) datagrams = seal_bodies (self->key, message->bodies, NULL);

  /* Sealing fails only when the key is used up; the message waits for the next key then. */
  if (datagrams != NULL)
    for (guint i = 0; i < datagrams->len; i++)
      g_ptr_array_add (out, g_bytes_ref (g_ptr_array_index (datagrams, i)));
  if (!message->sent)
    message->first_sent = now;
  message->sent = TRUE;
  message->next_retx = now + message->rto;
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

      fragments += message->bodies->len;
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
                           gint64             now);

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

  deliver_ready (self, now);
  if (self->gap_since != 0)
    next = MIN (next, self->gap_since + GCHAT_CONVERSATION_GAP_TIMEOUT);
  if (self->key == NULL)
    return next;

  flush_acks (self, out_datagrams);
  next = MIN (next, poll_outgoing (self, now, out_datagrams, stalled, failed));
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
  return seal_bodies (self->key, message->bodies, error);
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
emit_message (GchatConversation *self,
              guint64            msg_id,
              GBytes            *text)
{
  gsize len;
  const char *data = g_bytes_get_data (text, &len);
  char *copy = g_malloc (len + 1);

  if (len > 0)
    memcpy (copy, data, len);
  copy[len] = '\0';
  g_signal_emit (self, signals[SIGNAL_MESSAGE], 0, msg_id, copy);
  gchat_memzero (copy, len);
  g_free (copy);
}

/* Delivers the complete messages that are next in order. When later ones wait for a missing
 * id for longer than the sender keeps trying, the missing ids are skipped: the sender has
 * reported them failed. */
static void
deliver_ready (GchatConversation *self,
               gint64             now)
{
  guint64 before = self->next_deliver;
  guint64 key;
  GBytes *text;

  if (self->gap_since != 0 && now - self->gap_since >= GCHAT_CONVERSATION_GAP_TIMEOUT)
    {
      while (!g_hash_table_contains (self->complete, &self->next_deliver))
        {
          g_hash_table_remove (self->partial, &self->next_deliver);
          self->next_deliver++;
        }
    }
  while ((key = self->next_deliver,
          text = g_hash_table_lookup (self->complete, &key)) != NULL)
    {
      g_autoptr(GBytes) owned = g_bytes_ref (text);

      g_hash_table_remove (self->complete, &key);
      self->next_deliver++;
      emit_message (self, key, owned);
    }
  /* The wait for a missing id starts when it becomes the next one: its sender sent it before
   * any of the held ones, so it has given it up by the time the wait ends. */
  if (g_hash_table_size (self->complete) == 0)
    self->gap_since = 0;
  else if (self->gap_since == 0 || self->next_deliver != before)
    self->gap_since = MAX (now, 1);
}

static gboolean
receive_fragment (GchatConversation        *self,
                  const GchatDatagramData  *data,
                  GError                  **error)
{
  GchatDatagramReassembler *reassembler;
  GBytes *text;

  reassembler = g_hash_table_lookup (self->partial, &data->msg_id);
  if (reassembler == NULL)
    {
      reassembler = gchat_datagram_reassembler_new (data->msg_id);
      g_hash_table_insert (self->partial, id_key (data->msg_id), reassembler);
    }
  if (!gchat_datagram_reassembler_add (reassembler, data, error))
    return FALSE;
  if (!gchat_datagram_reassembler_is_complete (reassembler))
    return TRUE;

  text = gchat_datagram_reassembler_finish (reassembler, error);
  g_hash_table_remove (self->partial, &data->msg_id);
  if (text == NULL)
    return FALSE;
  g_hash_table_insert (self->complete, id_key (data->msg_id), text);
  queue_ack (self, data->msg_id);
  remember_ack (self, data->msg_id);
  return TRUE;
}

static gboolean
receive_data (GchatConversation  *self,
              GBytes             *body,
              gint64              now,
              GError            **error)
{
  GchatDatagramData data;
  gsize len;
  const guint8 *bytes = g_bytes_get_data (body, &len);

  if (!gchat_datagram_parse_data (bytes, len, &data, error))
    return FALSE;
  if (data.msg_id == 0)
    {
      g_set_error_literal (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_MALFORMED,
                           _("The peer sent a message with id 0"));
      return FALSE;
    }
  /* A message received before is acknowledged again: the peer evidently missed the ack. */
  if (data.msg_id < self->next_deliver || g_hash_table_contains (self->complete, &data.msg_id))
    {
      queue_ack (self, data.msg_id);
      return TRUE;
    }
  /* The window bounds what a peer can make this side hold: at most this many messages of at
   * most GCHAT_DATAGRAM_MAX_TEXT bytes each. */
  if (data.msg_id - self->next_deliver >= GCHAT_CONVERSATION_RECEIVE_WINDOW)
    {
      g_set_error (error, GCHAT_CONVERSATION_ERROR, GCHAT_CONVERSATION_ERROR_OUT_OF_WINDOW,
                   _("“%s” sent message %" PRIu64 " while %" PRIu64
                     " is still missing"), self->peer_user, data.msg_id, self->next_deliver);
      return FALSE;
    }
  if (!receive_fragment (self, &data, error))
    return FALSE;
  deliver_ready (self, now);
  return TRUE;
}

static void
receive_ack (GchatConversation *self,
             const guint64     *ids,
             guint              count)
{
  g_autoptr(GArray) delivered = g_array_new (FALSE, FALSE, sizeof (guint64));

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
      remove_message (self, link);
      g_array_append_val (delivered, ids[i]);
    }
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
      receive_ack (self, ids, count);
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
