/* SPDX-License-Identifier: GPL-3.0-or-later */
/* GchatClient's messages: peer conversations over direct UDP or gchatd's relay, the endpoint
 * registration, and mail held by gchatd for users who are offline (PROTOCOL.md §7). */

#include "config.h"

#include <string.h>

#include <glib/gi18n-lib.h>

#include "gchat-client-private.h"
#include "gchat-crypto.h"

/* After a stall on the direct path, send through gchatd for this long (doubling while the
 * direct path keeps failing, up to the cap), then try direct again. */
#define RELAY_HOLD_FIRST_US   (30 * G_USEC_PER_SEC)
#define RELAY_HOLD_MAX_US     (300 * G_USEC_PER_SEC)
/* The relay is a datagram service: drop rather than queue behind a slow connection. */
#define RELAY_MAX_UNSENT      (1024 * 1024)
/* Endpoint registration: one datagram a second until the server answers. */
#define ENDPOINT_RETRY_MS     1000
#define ENDPOINT_MAX_TRIES    10
/* Datagrams under a key id not known yet, kept a moment: the peer's first datagram can come
 * before the pair key the server sent us at the same time as to the peer. */
#define EARLY_MAX             32
#define EARLY_KEEP_US         (2 * G_USEC_PER_SEC)
/* Remembered message ids, to show each message once when it comes twice (relay and mail). */
#define SEEN_MAX              65536

static void peer_poll (GchatPeer *peer);

typedef struct {
  guint32             key_id;
  GBytes             *datagram;
  GInetSocketAddress *from;
  gint64              at;
} GchatEarlyDatagram;

void
gchat_early_datagram_free (gpointer data)
{
  GchatEarlyDatagram *early = data;

  g_bytes_unref (early->datagram);
  g_object_unref (early->from);
  g_free (early);
}

void
gchat_out_message_free (GchatOutMessage *message)
{
  g_free (message->to);
  if (message->text != NULL)
    gchat_memzero (message->text, message->len);
  g_free (message->text);
  g_free (message);
}

void
gchat_peer_free (GchatPeer *peer)
{
  for (guint i = 0; i < peer->key_ids->len; i++)
    {
      guint32 key_id = g_array_index (peer->key_ids, guint32, i);

      if (g_hash_table_lookup (peer->client->key_ids, GUINT_TO_POINTER (key_id)) == peer)
        g_hash_table_remove (peer->client->key_ids, GUINT_TO_POINTER (key_id));
    }
  g_clear_handle_id (&peer->timer, g_source_remove);
  if (peer->conversation != NULL)
    g_signal_handlers_disconnect_by_data (peer->conversation, peer);
  g_clear_object (&peer->conversation);
  g_hash_table_unref (peer->by_conv_id);
  g_ptr_array_unref (peer->endpoints);
  g_clear_object (&peer->last_from);
  g_array_unref (peer->key_ids);
  g_free (peer->name);
  g_free (peer);
}

void
gchat_client_peers_clear (GchatClient *self)
{
  g_clear_handle_id (&self->endpoint_source, g_source_remove);
  g_clear_pointer (&self->endpoint_key, gchat_endpoint_key_free);
  g_clear_object (&self->server_udp);
  g_hash_table_remove_all (self->peers);
}

/* Our messages */

static void
message_finish (GchatClient        *self,
                GchatOutMessage    *message,
                GchatDeliveryState  state,
                GchatClientPath     path,
                const GError       *error)
{
  g_autofree char *to = g_strdup (message->to);
  guint64 id = message->id;

  /* Queued ones are done on our side: the receipt names the recipient itself. */
  g_hash_table_remove (self->messages, &id);
  gchat_client_emit_delivery (self, id, to, state, path, error);
}

static void
message_fail (GchatClient     *self,
              GchatOutMessage *message,
              GError          *error)
{
  message_finish (self, message, GCHAT_DELIVERY_FAILED,
                  message->relayed ? GCHAT_CLIENT_PATH_RELAY : GCHAT_CLIENT_PATH_DIRECT, error);
  g_error_free (error);
}

/* Our ids are microseconds since 1970, made unique: they stay unique across restarts (unless
 * the clock goes back), and stay below 2^53, the integers a JSON reader in any language keeps
 * exactly. */
static guint64
new_message_id (GchatClient *self)
{
  guint64 now = (guint64) g_get_real_time ();

  self->last_message_id = MAX (now, self->last_message_id + 1);
  return self->last_message_id;
}

static char *
seen_key (const char *from,
          guint64     id)
{
  g_autofree char *folded = g_ascii_strdown (from, -1);

  return g_strdup_printf ("%s\n%016" G_GINT64_MODIFIER "x", folded, id);
}

/* TRUE the first time (@from, @id) is seen in this process. */
static gboolean
first_sight (GchatClient *self,
             const char  *from,
             guint64      id)
{
  if (g_hash_table_size (self->seen_mail) >= SEEN_MAX)
    g_hash_table_remove_all (self->seen_mail);
  return g_hash_table_add (self->seen_mail, seen_key (from, id));
}

static void
post (GchatClient     *self,
      GchatOutMessage *message)
{
  g_autoptr(GchatMessage) request = gchat_message_new (GCHAT_MESSAGE_POST);
  gint64 id;
  GchatRequest *pending;

  if (self->state != GCHAT_CLIENT_STATE_ONLINE || self->session == NULL)
    {
      g_queue_push_tail (&self->outbox, message);
      return;
    }
  id = gchat_client_new_request (self, GCHAT_REQUEST_POST);
  pending = g_hash_table_lookup (self->requests, &id);
  pending->message = message->id;
  message->posting = TRUE;
  gchat_message_set_string (request, "to", message->to);
  /* A message taken back from a conversation keeps its id there, so that the peer shows it
   * once even if it also came directly (§7.4); the receipt then names that id. */
  if (message->conv_id != 0)
    g_hash_table_insert (self->posted, g_memdup2 (&message->conv_id, sizeof (guint64)),
                         g_memdup2 (&message->id, sizeof (guint64)));
  gchat_message_set_int (request, "msg_id",
                         (gint64) (message->conv_id != 0 ? message->conv_id : message->id));
  gchat_message_set_bytes (request, "text", (const guint8 *) message->text, message->len);
  gchat_message_set_int (request, "id", id);
  gchat_client_send_message (self, request);
}

void
gchat_client_peers_post_done (GchatClient  *self,
                              GchatRequest *request,
                              GchatMessage *result)
{
  GchatOutMessage *message = g_hash_table_lookup (self->messages, &request->message);

  if (message == NULL)
    return;
  message->posting = FALSE;
  if (gchat_message_get_bool (result, "ok"))
    message_finish (self, message, GCHAT_DELIVERY_QUEUED, GCHAT_CLIENT_PATH_OFFLINE, NULL);
  else
    message_fail (self, message, gchat_client_error_from_result (result, NULL));
}

guint
gchat_client_peers_n_posting (GchatClient *self)
{
  GHashTableIter iter;
  gpointer value;
  guint n = 0;

  g_hash_table_iter_init (&iter, self->messages);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    n += ((GchatOutMessage *) value)->posting;
  return n + g_queue_get_length (&self->outbox);
}

/* Peers */

static void conversation_message_cb   (GchatConversation *conversation,
                                       guint64            msg_id,
                                       const char        *text,
                                       GchatPeer         *peer);
static void conversation_delivered_cb (GchatConversation *conversation,
                                       guint64            msg_id,
                                       GchatPeer         *peer);
static void conversation_stalled_cb   (GchatConversation *conversation,
                                       guint64            msg_id,
                                       GchatPeer         *peer);
static void conversation_failed_cb    (GchatConversation *conversation,
                                       guint64            msg_id,
                                       GchatPeer         *peer);

static GchatPeer *
peer_lookup (GchatClient *self,
             const char  *name)
{
  g_autofree char *folded = g_ascii_strdown (name, -1);

  return g_hash_table_lookup (self->peers, folded);
}

static GchatPeer *
peer_get (GchatClient *self,
          const char  *name)
{
  GchatPeer *peer = peer_lookup (self, name);

  if (peer != NULL)
    return peer;
  peer = g_new0 (GchatPeer, 1);
  peer->client = self;
  peer->name = g_strdup (name);
  peer->conversation = gchat_conversation_new (self->user, name);
  if (self->rekey_datagrams > 0)
    gchat_conversation_set_rekey_limits (peer->conversation, self->rekey_datagrams, 0);
  peer->by_conv_id = g_hash_table_new (g_int64_hash, g_int64_equal);
  peer->endpoints = g_ptr_array_new_with_free_func (g_object_unref);
  peer->key_ids = g_array_new (FALSE, FALSE, sizeof (guint32));
  peer->relay_hold = RELAY_HOLD_FIRST_US;
  g_signal_connect (peer->conversation, "message", G_CALLBACK (conversation_message_cb), peer);
  g_signal_connect (peer->conversation, "delivered", G_CALLBACK (conversation_delivered_cb),
                    peer);
  g_signal_connect (peer->conversation, "stalled", G_CALLBACK (conversation_stalled_cb), peer);
  g_signal_connect (peer->conversation, "failed", G_CALLBACK (conversation_failed_cb), peer);
  g_hash_table_insert (self->peers, g_ascii_strdown (name, -1), peer);
  return peer;
}

static void
peer_remove (GchatClient *self,
             GchatPeer   *peer)
{
  g_autofree char *folded = g_ascii_strdown (peer->name, -1);

  g_hash_table_remove (self->peers, folded);
}

static void
peer_ask_key (GchatPeer *peer)
{
  GchatClient *self = peer->client;
  g_autoptr(GchatMessage) talk = NULL;
  GchatRequest *request;
  gint64 id;

  if (peer->talk_pending || self->state != GCHAT_CLIENT_STATE_ONLINE)
    return;
  id = gchat_client_new_request (self, GCHAT_REQUEST_TALK);
  request = g_hash_table_lookup (self->requests, &id);
  request->peer = g_strdup (peer->name);
  talk = gchat_message_new (GCHAT_MESSAGE_TALK);
  gchat_message_set_string (talk, "user", peer->name);
  if (peer->key_id != 0 && gchat_conversation_has_key (peer->conversation))
    gchat_message_set_int (talk, "replace", peer->key_id);
  gchat_message_set_int (talk, "id", id);
  peer->talk_pending = gchat_client_send_message (self, talk);
}

/* Hands every message of @peer not yet acknowledged to the server's mailbox. */
static guint
peer_to_mailbox (GchatPeer *peer)
{
  GchatClient *self = peer->client;
  g_autoptr(GPtrArray) taken = gchat_conversation_take_unacknowledged (peer->conversation);

  for (guint i = 0; i < taken->len; i++)
    {
      GchatOutgoingMessage *outgoing = g_ptr_array_index (taken, i);
      GchatOutMessage *message = g_hash_table_lookup (peer->by_conv_id, &outgoing->msg_id);

      if (message == NULL)
        continue;
      g_hash_table_remove (peer->by_conv_id, &outgoing->msg_id);
      post (self, message);
    }
  return taken->len;
}

void
gchat_client_peers_talk_done (GchatClient  *self,
                              GchatRequest *request,
                              GchatMessage *result)
{
  GchatPeer *peer = peer_lookup (self, request->peer);
  const char *code = gchat_message_get_string (result, "code");

  if (peer == NULL)
    return;
  peer->talk_pending = FALSE;
  if (gchat_message_get_bool (result, "ok"))
    return;
  if (g_strcmp0 (code, "unknown-user") == 0 || g_strcmp0 (code, "bad-name") == 0)
    {
      g_autoptr(GPtrArray) taken = gchat_conversation_take_unacknowledged (peer->conversation);

      for (guint i = 0; i < taken->len; i++)
        {
          GchatOutgoingMessage *outgoing = g_ptr_array_index (taken, i);
          GchatOutMessage *message = g_hash_table_lookup (peer->by_conv_id, &outgoing->msg_id);

          if (message != NULL)
            message_fail (self, message, gchat_client_error_from_result (result, NULL));
        }
      peer_remove (self, peer);
      return;
    }
  /* Offline, or anything else: the mailbox takes them. */
  peer_to_mailbox (peer);
}

static void
route (GchatClient     *self,
       GchatOutMessage *message)
{
  GchatPeer *peer;
  g_autoptr(GError) error = NULL;

  /* Until the online list is in, whether the peer is online is not known. */
  if (self->state != GCHAT_CLIENT_STATE_ONLINE || self->awaiting_list)
    {
      g_queue_push_tail (&self->outbox, message);
      return;
    }
  if (!gchat_online_users_contains (self->online, message->to))
    {
      post (self, message);
      return;
    }
  peer = peer_get (self, gchat_online_users_lookup (self->online, message->to));
  message->conv_id = gchat_conversation_send (peer->conversation, message->text, message->len,
                                              g_get_monotonic_time (), &error);
  if (message->conv_id == 0)
    {
      g_debug ("Posting instead of sending directly: %s", error->message);
      post (self, message);
      return;
    }
  g_hash_table_insert (peer->by_conv_id, &message->conv_id, message);
  message->relayed = g_get_monotonic_time () < peer->relay_until;
  if (!gchat_conversation_has_key (peer->conversation))
    peer_ask_key (peer);
  peer_poll (peer);
}

guint64
gchat_client_send (GchatClient  *self,
                   const char   *to,
                   const char   *text,
                   GError      **error)
{
  GchatOutMessage *message;
  gsize len;

  g_return_val_if_fail (GCHAT_IS_CLIENT (self), 0);
  g_return_val_if_fail (to != NULL && text != NULL, 0);

  len = strlen (text);
  if (len == 0 || len > GCHAT_DATAGRAM_MAX_TEXT || !g_utf8_validate (text, len, NULL))
    {
      g_set_error (error, GCHAT_CLIENT_ERROR, GCHAT_CLIENT_ERROR_INVALID_TEXT,
                   _("A message holds 1 to %u bytes of text"), (guint) GCHAT_DATAGRAM_MAX_TEXT);
      return 0;
    }
  if (self->user != NULL && g_ascii_strcasecmp (to, self->user) == 0)
    {
      g_set_error_literal (error, GCHAT_CLIENT_ERROR, GCHAT_CLIENT_ERROR_UNKNOWN_USER,
                           _("You cannot send a message to yourself"));
      return 0;
    }
  if (self->state == GCHAT_CLIENT_STATE_OFFLINE && self->login_task == NULL)
    {
      g_set_error_literal (error, GCHAT_CLIENT_ERROR, GCHAT_CLIENT_ERROR_NOT_LOGGED_IN,
                           _("Log in first"));
      return 0;
    }
  message = g_new0 (GchatOutMessage, 1);
  message->id = new_message_id (self);
  message->to = g_strdup (to);
  message->text = g_strndup (text, len);
  message->len = len;
  g_hash_table_insert (self->messages, &message->id, message);
  route (self, message);
  return message->id;
}

/* Sending datagrams */

static gboolean
lost (guint percent)
{
  return percent > 0 && (guint) g_random_int_range (0, 100) < percent;
}

static void
send_relay (GchatPeer *peer,
            GBytes    *datagram)
{
  GchatClient *self = peer->client;
  g_autoptr(GchatMessage) relay = NULL;

  if (self->session == NULL || gchat_session_get_unsent (self->session) > RELAY_MAX_UNSENT)
    return;
  relay = gchat_message_new (GCHAT_MESSAGE_RELAY);
  gchat_message_set_string (relay, "to", peer->name);
  gchat_message_set_bytes (relay, "datagram", g_bytes_get_data (datagram, NULL),
                           g_bytes_get_size (datagram));
  gchat_client_send_message (self, relay);
}

static gboolean
peer_uses_relay (GchatPeer *peer,
                 gint64     now)
{
  return now < peer->relay_until || (peer->endpoints->len == 0 && peer->last_from == NULL)
         || peer->client->peer_socket == NULL;
}

static void
transmit (GchatPeer *peer,
          GBytes    *datagram,
          gint64     now)
{
  GchatClient *self = peer->client;

  if (lost (self->datagram_loss))
    return;
  if (peer_uses_relay (peer, now))
    {
      send_relay (peer, datagram);
      return;
    }
  if (lost (self->direct_loss))
    return;
  /* Where the peer was last heard from; until then, every endpoint the server gave. */
  if (peer->last_from != NULL)
    {
      gchat_peer_socket_send (self->peer_socket, datagram, G_SOCKET_ADDRESS (peer->last_from));
      return;
    }
  for (guint i = 0; i < peer->endpoints->len; i++)
    gchat_peer_socket_send (self->peer_socket, datagram, g_ptr_array_index (peer->endpoints, i));
}

static gboolean
peer_timer_cb (gpointer user_data)
{
  GchatPeer *peer = user_data;

  peer->timer = 0;
  peer->timer_at = 0;
  peer_poll (peer);
  return G_SOURCE_REMOVE;
}

static void
peer_poll (GchatPeer *peer)
{
  GchatClient *self = peer->client;
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  gint64 now = g_get_monotonic_time ();
  gint64 next;

  next = gchat_conversation_poll (peer->conversation, now, out);
  for (guint i = 0; i < out->len; i++)
    transmit (peer, g_ptr_array_index (out, i), now);
  if (gchat_conversation_get_n_pending (peer->conversation) > 0
      && gchat_conversation_needs_rekey (peer->conversation, now))
    peer_ask_key (peer);

  if (next == G_MAXINT64 || (peer->timer != 0 && peer->timer_at == next))
    return;
  g_clear_handle_id (&peer->timer, g_source_remove);
  peer->timer_at = next;
  peer->timer = g_timeout_add (next > now ? (guint) ((next - now + 999) / 1000) : 0,
                               peer_timer_cb, peer);
  (void) self;
}

/* Conversation events */

static void
conversation_message_cb (GchatConversation *conversation,
                         guint64            msg_id,
                         const char        *text,
                         GchatPeer         *peer)
{
  GchatClient *self = peer->client;

  if (first_sight (self, peer->name, msg_id))
    gchat_client_emit_message (self, peer->name, text, self->input_path, msg_id,
                               g_get_real_time () / G_USEC_PER_SEC);
}

static void
conversation_delivered_cb (GchatConversation *conversation,
                           guint64            msg_id,
                           GchatPeer         *peer)
{
  GchatClient *self = peer->client;
  GchatOutMessage *message = g_hash_table_lookup (peer->by_conv_id, &msg_id);

  if (message == NULL)
    return;
  g_hash_table_remove (peer->by_conv_id, &msg_id);
  /* Sent while the relay was in use, or acknowledged through it: the relay carried it. */
  if (self->input_path == GCHAT_CLIENT_PATH_RELAY)
    message->relayed = TRUE;
  if (!message->relayed)
    peer->relay_hold = RELAY_HOLD_FIRST_US;
  message_finish (self, message, GCHAT_DELIVERY_DELIVERED,
                  message->relayed ? GCHAT_CLIENT_PATH_RELAY : GCHAT_CLIENT_PATH_DIRECT, NULL);
}

/* No ack within a second: the direct path does not work (now), so the message goes through
 * gchatd, and so does everything else for a while. */
static void
conversation_stalled_cb (GchatConversation *conversation,
                         guint64            msg_id,
                         GchatPeer         *peer)
{
  GchatClient *self = peer->client;
  g_autoptr(GArray) stalled = gchat_conversation_take_stalled (conversation);
  gint64 now = g_get_monotonic_time ();

  if (now >= peer->relay_until)
    {
      peer->relay_until = now + peer->relay_hold;
      peer->relay_hold = MIN (peer->relay_hold * 2, RELAY_HOLD_MAX_US);
    }
  for (guint i = 0; i < stalled->len; i++)
    {
      guint64 id = g_array_index (stalled, guint64, i);
      GchatOutMessage *message = g_hash_table_lookup (peer->by_conv_id, &id);
      g_autoptr(GPtrArray) datagrams = gchat_conversation_seal_message (conversation, id, NULL);

      if (message != NULL)
        message->relayed = TRUE;
      for (guint j = 0; datagrams != NULL && j < datagrams->len; j++)
        if (!lost (self->datagram_loss))
          send_relay (peer, g_ptr_array_index (datagrams, j));
    }
}

static void
conversation_failed_cb (GchatConversation *conversation,
                        guint64            msg_id,
                        GchatPeer         *peer)
{
  GchatClient *self = peer->client;
  GchatOutMessage *message = g_hash_table_lookup (peer->by_conv_id, &msg_id);

  if (message == NULL)
    return;
  g_hash_table_remove (peer->by_conv_id, &msg_id);
  message_fail (self, message,
                g_error_new (GCHAT_CLIENT_ERROR, GCHAT_CLIENT_ERROR_FAILED,
                             _("%s did not receive the message in time"), peer->name));
}

/* Receiving datagrams */

static void
receive_datagram (GchatClient     *self,
                  GchatPeer       *peer,
                  const guint8    *data,
                  gsize            len,
                  GchatClientPath  path,
                  GInetSocketAddress *from)
{
  g_autoptr(GError) error = NULL;
  gint64 now = g_get_monotonic_time ();

  self->input_path = path;
  if (!gchat_conversation_receive (peer->conversation, data, len, now, &error))
    {
      self->n_dropped++;
      g_debug ("Dropped a datagram from %s: %s", peer->name, error->message);
      return;
    }
  /* Only an authentic datagram moves where we answer: a forged source address cannot. */
  if (from != NULL)
    g_set_object (&peer->last_from, from);
  else if (now >= peer->relay_until)
    /* The peer cannot reach us directly: answer through gchatd too. */
    peer->relay_until = now + RELAY_HOLD_FIRST_US;
  peer_poll (peer);
}

static void endpoint_answer (GchatClient  *self,
                             const guint8 *data,
                             gsize         len);

static void
keep_early (GchatClient        *self,
            guint32             key_id,
            const guint8       *data,
            gsize               len,
            GInetSocketAddress *from)
{
  GchatEarlyDatagram *early;
  gint64 now = g_get_monotonic_time ();

  while (self->early->len > 0
         && (self->early->len >= EARLY_MAX
             || ((GchatEarlyDatagram *) self->early->pdata[0])->at + EARLY_KEEP_US < now))
    {
      g_ptr_array_remove_index (self->early, 0);
      self->n_dropped++;
    }
  early = g_new0 (GchatEarlyDatagram, 1);
  early->key_id = key_id;
  early->datagram = g_bytes_new (data, len);
  early->from = g_object_ref (from);
  early->at = now;
  g_ptr_array_add (self->early, early);
}

/* A key arrived: what came under it before is taken now. */
static void
take_early (GchatClient *self,
            GchatPeer   *peer,
            guint32      key_id)
{
  for (guint i = 0; i < self->early->len;)
    {
      GchatEarlyDatagram *early = g_ptr_array_index (self->early, i);

      if (early->key_id != key_id)
        {
          i++;
          continue;
        }
      g_ptr_array_steal_index (self->early, i);
      receive_datagram (self, peer, g_bytes_get_data (early->datagram, NULL),
                        g_bytes_get_size (early->datagram), GCHAT_CLIENT_PATH_DIRECT,
                        early->from);
      gchat_early_datagram_free (early);
    }
}

static void
peer_socket_cb (const guint8       *data,
                gsize               len,
                GInetSocketAddress *from,
                gpointer            user_data)
{
  GchatClient *self = user_data;
  GchatDatagramHeader header;
  GchatPeer *peer;

  if (!gchat_datagram_peek_header (data, len, &header, NULL))
    {
      self->n_dropped++;
      return;
    }
  if (header.kind == GCHAT_DATAGRAM_KIND_ENDPOINT)
    {
      endpoint_answer (self, data, len);
      return;
    }
  peer = g_hash_table_lookup (self->key_ids, GUINT_TO_POINTER (header.key_id));
  if (peer == NULL)
    {
      keep_early (self, header.key_id, data, len, from);
      return;
    }
  receive_datagram (self, peer, data, len, GCHAT_CLIENT_PATH_DIRECT, from);
}

/* Messages from the server about peers */

static GInetSocketAddress *
parse_endpoint (const char *text)
{
  g_autofree char *host = NULL;
  const char *colon;
  g_autoptr(GInetAddress) address = NULL;
  guint64 port;

  if (text[0] == '[')
    {
      const char *end = strstr (text, "]:");

      if (end == NULL)
        return NULL;
      host = g_strndup (text + 1, end - text - 1);
      colon = end + 1;
    }
  else
    {
      colon = strrchr (text, ':');
      if (colon == NULL)
        return NULL;
      host = g_strndup (text, colon - text);
    }
  if (!g_ascii_string_to_unsigned (colon + 1, 10, 1, 65535, &port, NULL)
      || (address = g_inet_address_new_from_string (host)) == NULL)
    return NULL;
  return G_INET_SOCKET_ADDRESS (g_inet_socket_address_new (address, (guint16) port));
}

static void
pair_key_received (GchatClient  *self,
                   GchatMessage *message)
{
  const char *name = gchat_message_get_string (message, "user");
  GBytes *key = gchat_message_get_bytes (message, "key");
  g_auto(GStrv) endpoints = gchat_message_dup_strv (message, "endpoints");
  guint32 key_id = (guint32) gchat_message_get_int (message, "key_id");
  gint64 now = g_get_monotonic_time ();
  gint64 left_s = gchat_message_get_int (message, "expires") - g_get_real_time () / G_USEC_PER_SEC;
  g_autoptr(GError) error = NULL;
  GchatPeer *peer = peer_get (self, name);

  peer->talk_pending = FALSE;
  g_ptr_array_set_size (peer->endpoints, 0);
  for (guint i = 0; endpoints != NULL && endpoints[i] != NULL; i++)
    {
      GInetSocketAddress *address = parse_endpoint (endpoints[i]);

      if (address != NULL)
        g_ptr_array_add (peer->endpoints, address);
    }
  /* The same key again (both asked at once, or new endpoints) only updates the endpoints. */
  if (key_id != peer->key_id)
    {
      if (!gchat_conversation_set_key (peer->conversation, g_bytes_get_data (key, NULL), key_id,
                                       now + MAX (left_s, 1) * G_USEC_PER_SEC, now, &error))
        g_debug ("Pair key %u for %s not installed: %s", key_id, name, error->message);
      else
        {
          peer->key_id = key_id;
          self->n_pair_keys++;
          g_array_append_val (peer->key_ids, key_id);
          g_hash_table_insert (self->key_ids, GUINT_TO_POINTER (key_id), peer);
          take_early (self, peer, key_id);
        }
    }
  peer_poll (peer);
}

static void
relayed_received (GchatClient  *self,
                  GchatMessage *message)
{
  GchatPeer *peer = peer_lookup (self, gchat_message_get_string (message, "from"));
  GBytes *datagram = gchat_message_get_bytes (message, "datagram");

  if (peer == NULL)
    {
      self->n_dropped++;
      return;
    }
  receive_datagram (self, peer, g_bytes_get_data (datagram, NULL), g_bytes_get_size (datagram),
                    GCHAT_CLIENT_PATH_RELAY, NULL);
}

static void
mail_received (GchatClient  *self,
               GchatMessage *message)
{
  const char *from = gchat_message_get_string (message, "from");
  guint64 msg_id = (guint64) gchat_message_get_int (message, "msg_id");
  GBytes *text = gchat_message_get_bytes (message, "text");
  g_autoptr(GchatMessage) ack = gchat_message_new (GCHAT_MESSAGE_MAIL_ACK);
  g_autofree char *copy = NULL;
  gsize len = g_bytes_get_size (text);

  copy = g_strndup (g_bytes_get_data (text, NULL), len);
  if (first_sight (self, from, msg_id) && len > 0 && strlen (copy) == len
      && g_utf8_validate (copy, len, NULL))
    gchat_client_emit_message (self, from, copy, GCHAT_CLIENT_PATH_OFFLINE, msg_id,
                               gchat_message_get_int (message, "queued"));
  gchat_message_set_int (ack, "mail_id", gchat_message_get_int (message, "mail_id"));
  gchat_client_send_message (self, ack);
}

static void
receipt_received (GchatClient  *self,
                  GchatMessage *message)
{
  g_autoptr(GchatMessage) ack = gchat_message_new (GCHAT_MESSAGE_RECEIPT_ACK);
  guint64 sent_id = (guint64) gchat_message_get_int (message, "msg_id");
  guint64 *ours = g_hash_table_lookup (self->posted, &sent_id);
  guint64 msg_id = ours != NULL ? *ours : sent_id;

  g_hash_table_remove (self->posted, &sent_id);
  gchat_client_emit_delivery (self, msg_id,
                              gchat_message_get_string (message, "user"),
                              GCHAT_DELIVERY_DELIVERED, GCHAT_CLIENT_PATH_OFFLINE, NULL);
  gchat_message_set_int (ack, "receipt_id", gchat_message_get_int (message, "receipt_id"));
  gchat_client_send_message (self, ack);
}

gboolean
gchat_client_peers_dispatch (GchatClient  *self,
                             GchatMessage *message)
{
  switch (gchat_message_get_message_type (message))
    {
    case GCHAT_MESSAGE_PAIR_KEY:
      pair_key_received (self, message);
      return TRUE;
    case GCHAT_MESSAGE_RELAYED:
      relayed_received (self, message);
      return TRUE;
    case GCHAT_MESSAGE_MAIL:
      mail_received (self, message);
      return TRUE;
    case GCHAT_MESSAGE_RECEIPT:
      receipt_received (self, message);
      return TRUE;
    default:
      return FALSE;
    }
}

/* Endpoint registration (§7.5) */

static gboolean
endpoint_send_cb (gpointer user_data)
{
  GchatClient *self = user_data;
  GchatDatagramEndpoint local;
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GBytes) datagram = NULL;
  g_autoptr(GError) error = NULL;
  GInetSocketAddress *session_local;
  g_autoptr(GSocketAddress) listed = NULL;

  if (self->endpoint_tries++ >= ENDPOINT_MAX_TRIES || self->session == NULL)
    {
      self->endpoint_source = 0;
      return G_SOURCE_REMOVE;
    }
  /* Our peer socket as seen on the interface that reaches the server. */
  session_local = gchat_session_get_local_address (self->session);
  listed = g_inet_socket_address_new (g_inet_socket_address_get_address (session_local),
                                      gchat_peer_socket_get_port (self->peer_socket));
  g_object_unref (session_local);
  if (!gchat_datagram_endpoint_from_address (G_INET_SOCKET_ADDRESS (listed), &local, &error)
      || (body = gchat_datagram_build_endpoint (self->user, &local, 1, &error)) == NULL
      || (datagram = gchat_endpoint_key_seal (self->endpoint_key, g_bytes_get_data (body, NULL),
                                              g_bytes_get_size (body), &error)) == NULL)
    {
      g_debug ("No endpoint registration: %s", error->message);
      self->endpoint_source = 0;
      return G_SOURCE_REMOVE;
    }
  gchat_peer_socket_send (self->peer_socket, datagram, self->server_udp);
  return G_SOURCE_CONTINUE;
}

static void
endpoint_answer (GchatClient  *self,
                 const guint8 *data,
                 gsize         len)
{
  g_autoptr(GBytes) body = NULL;

  if (self->endpoint_key == NULL
      || (body = gchat_endpoint_key_open (self->endpoint_key, data, len, NULL, NULL)) == NULL)
    {
      self->n_dropped++;
      return;
    }
  /* The server has our endpoint: stop sending it. */
  g_clear_handle_id (&self->endpoint_source, g_source_remove);
}

static void
register_endpoint (GchatClient *self,
                   guint32      endpoint_id)
{
  GInetSocketAddress *remote = gchat_session_get_remote_address (self->session);
  g_autoptr(GError) error = NULL;

  g_clear_handle_id (&self->endpoint_source, g_source_remove);
  g_clear_pointer (&self->endpoint_key, gchat_endpoint_key_free);
  g_clear_object (&self->server_udp);
  if (remote == NULL || endpoint_id == 0)
    {
      g_clear_object (&remote);
      return;
    }
  if (self->peer_socket == NULL)
    self->peer_socket = gchat_peer_socket_new (g_socket_address_get_family (G_SOCKET_ADDRESS (remote)),
                                               peer_socket_cb, self, &error);
  if (self->peer_socket == NULL)
    {
      g_debug ("No peer socket, every message goes through the server: %s", error->message);
      g_object_unref (remote);
      return;
    }
  self->server_udp = g_inet_socket_address_new (g_inet_socket_address_get_address (remote),
                                                self->port);
  g_object_unref (remote);
  self->endpoint_key = gchat_endpoint_key_new_for_session (gchat_session_get_endpoint_key (self->session),
                                                           endpoint_id, GCHAT_ENDPOINT_SIDE_CLIENT,
                                                           &error);
  if (self->endpoint_key == NULL)
    {
      g_debug ("No endpoint key: %s", error->message);
      return;
    }
  self->endpoint_tries = 0;
  endpoint_send_cb (self);
  self->endpoint_source = g_timeout_add (ENDPOINT_RETRY_MS, endpoint_send_cb, self);
}

/* The session */

void
gchat_client_peers_logged_in (GchatClient *self,
                              guint32      endpoint_id)
{
  register_endpoint (self, endpoint_id);
}

/* What waited for a session and its online list goes now. */
void
gchat_client_peers_flush_outbox (GchatClient *self)
{
  GQueue waiting = self->outbox;
  GchatOutMessage *message;

  g_queue_init (&self->outbox);
  while ((message = g_queue_pop_head (&waiting)) != NULL)
    route (self, message);
}

void
gchat_client_peers_session_lost (GchatClient *self)
{
  GHashTableIter iter;
  gpointer value;

  g_clear_handle_id (&self->endpoint_source, g_source_remove);
  g_clear_pointer (&self->endpoint_key, gchat_endpoint_key_free);
  /* Posts whose result did not come are posted again on the next session (the receiver shows
   * a message it got twice once). */
  g_hash_table_iter_init (&iter, self->messages);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      GchatOutMessage *message = value;

      if (message->posting)
        {
          message->posting = FALSE;
          g_queue_push_tail (&self->outbox, message);
        }
    }
  g_hash_table_iter_init (&iter, self->peers);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    ((GchatPeer *) value)->talk_pending = FALSE;
}

void
gchat_client_peers_user_left (GchatClient *self,
                              const char  *user)
{
  GchatPeer *peer = peer_lookup (self, user);

  if (peer == NULL)
    return;
  /* Whatever was not acknowledged waits in the server's mailbox; the conversation goes, and a
   * new one starts when the user is back (the floor of §7.2 lets both sides start afresh). */
  peer_to_mailbox (peer);
  peer_remove (self, peer);
}

guint
gchat_client_peers_flush_to_mailbox (GchatClient *self)
{
  GHashTableIter iter;
  gpointer value;
  guint n = 0;

  g_hash_table_iter_init (&iter, self->peers);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    n += peer_to_mailbox (value);
  return n;
}

/* The account logged out or was logged out for good: every conversation ends, and each message
 * not yet handed on is reported failed. */
void
gchat_client_peers_end (GchatClient *self,
                        const char  *reason)
{
  g_autoptr(GList) pending = NULL;

  gchat_client_peers_clear (self);
  g_clear_pointer (&self->peer_socket, gchat_peer_socket_free);
  g_ptr_array_set_size (self->early, 0);
  g_queue_clear (&self->outbox);
  pending = g_hash_table_get_values (self->messages);
  for (GList *l = pending; l != NULL; l = l->next)
    message_fail (self, l->data,
                  g_error_new (GCHAT_CLIENT_ERROR, GCHAT_CLIENT_ERROR_NOT_LOGGED_IN,
                               _("Not sent: %s"), reason));
}
