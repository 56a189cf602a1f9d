/* SPDX-License-Identifier: GPL-3.0-or-later */
/* libFuzzer target: peer and endpoint datagrams, their body codecs, reassembly, and a whole
 * conversation receiving hostile datagrams. */

#include "fuzz-common.h"
#include "gchat-conversation.h"
#include "gchat-datagram.h"

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* The input's first byte picks one of these; make-corpus writes seeds for each. */
enum {
  MODE_RAW,         /* the rest is one datagram off the socket */
  MODE_BODY,        /* the rest is a body: parsed, then sealed and opened */
  MODE_REASSEMBLE,  /* the rest is data bodies: u16 length, body; joined into one message */
  MODE_CONVERSATION /* the rest is operations on a conversation (see conversation_step) */
};

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  fuzz_init ();
  return 0;
}

/* Parses @body as every body kind; what parses must build back to the same bytes. */
static void
parse_bodies (const guint8 *body,
              gsize         len)
{
  GchatDatagramData parsed;
  guint64 ids[GCHAT_DATAGRAM_MAX_ACK_IDS];
  GchatDatagramEndpoint endpoints[GCHAT_DATAGRAM_MAX_ENDPOINTS];
  g_autofree char *user = NULL;
  guint count = 0;

  if (gchat_datagram_parse_data (body, len, &parsed, NULL))
    {
      g_autoptr(GBytes) rebuilt = gchat_datagram_build_data (parsed.msg_id, parsed.floor,
                                                             parsed.fragment, parsed.fragments,
                                                             parsed.text, parsed.text_len, NULL);

      FUZZ_CHECK (parsed.text >= body && parsed.text + parsed.text_len <= body + len);
      FUZZ_CHECK (rebuilt != NULL && g_bytes_get_size (rebuilt) == len);
      FUZZ_CHECK (memcmp (g_bytes_get_data (rebuilt, NULL), body, len) == 0);
    }
  if (gchat_datagram_parse_ack (body, len, ids, &count, NULL))
    {
      g_autoptr(GBytes) rebuilt = gchat_datagram_build_ack (ids, count, NULL);

      FUZZ_CHECK (count <= GCHAT_DATAGRAM_MAX_ACK_IDS);
      FUZZ_CHECK (rebuilt != NULL && g_bytes_get_size (rebuilt) == len);
      FUZZ_CHECK (memcmp (g_bytes_get_data (rebuilt, NULL), body, len) == 0);
    }
  if (gchat_datagram_parse_endpoint (body, len, &user, endpoints, &count, NULL))
    {
      g_autoptr(GBytes) rebuilt = gchat_datagram_build_endpoint (user, endpoints, count, NULL);

      FUZZ_CHECK (count <= GCHAT_DATAGRAM_MAX_ENDPOINTS);
      for (guint i = 0; i < count; i++)
        {
          g_autoptr(GSocketAddress) address = gchat_datagram_endpoint_to_address (&endpoints[i]);

          FUZZ_CHECK (endpoints[i].family == 4 || endpoints[i].family == 6);
          FUZZ_CHECK (endpoints[i].port != 0 && address != NULL);
        }
      FUZZ_CHECK (rebuilt != NULL && g_bytes_get_size (rebuilt) == len);
      FUZZ_CHECK (memcmp (g_bytes_get_data (rebuilt, NULL), body, len) == 0);
    }
}

/* What gchatd's endpoint listener and the client's peer socket do with a datagram. */
static void
fuzz_raw (const guint8 *data,
          gsize         len)
{
  g_autoptr(GchatPeerKeys) keys = gchat_peer_keys_new (fuzz_pair_key, FUZZ_PAIR_KEY_ID,
                                                       FUZZ_SELF_USER, FUZZ_PEER_USER, NULL);
  g_autoptr(GchatEndpointKey) server = NULL;
  g_autoptr(GchatEndpointKey) client = NULL;
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GBytes) endpoint_body = NULL;
  g_autoptr(GBytes) answer_body = NULL;
  GchatDatagramHeader header;
  GchatDatagramKind kind = 0;

  server = gchat_endpoint_key_new_for_session (fuzz_server_send_key, FUZZ_ENDPOINT_ID,
                                               GCHAT_ENDPOINT_SIDE_SERVER, NULL);
  client = gchat_endpoint_key_new_for_session (fuzz_server_send_key, FUZZ_ENDPOINT_ID,
                                               GCHAT_ENDPOINT_SIDE_CLIENT, NULL);
  FUZZ_CHECK (keys != NULL && server != NULL && client != NULL);
  if (!gchat_datagram_peek_header (data, len, &header, NULL))
    return;
  body = gchat_peer_keys_open (keys, data, len, &kind, NULL, NULL);
  if (body != NULL)
    {
      FUZZ_CHECK (kind == header.kind);
      parse_bodies (g_bytes_get_data (body, NULL), g_bytes_get_size (body));
    }
  endpoint_body = gchat_endpoint_key_open (server, data, len, NULL, NULL);
  if (endpoint_body != NULL)
    parse_bodies (g_bytes_get_data (endpoint_body, NULL), g_bytes_get_size (endpoint_body));
  answer_body = gchat_endpoint_key_open (client, data, len, NULL, NULL);
  if (answer_body != NULL)
    parse_bodies (g_bytes_get_data (answer_body, NULL), g_bytes_get_size (answer_body));
}

/* Seals @body from the peer's side (or the client's endpoint side) and opens it on ours: any
 * body the sealer takes must come out whole. */
static void
fuzz_body (guint8        selector,
           const guint8 *body,
           gsize         len)
{
  static const GchatDatagramKind kinds[] = {
    GCHAT_DATAGRAM_KIND_DATA, GCHAT_DATAGRAM_KIND_ACK, GCHAT_DATAGRAM_KIND_HELLO,
    GCHAT_DATAGRAM_KIND_ENDPOINT,
  };
  GchatDatagramKind kind = kinds[selector % G_N_ELEMENTS (kinds)];
  g_autoptr(GBytes) sealed = NULL;
  g_autoptr(GBytes) opened = NULL;

  parse_bodies (body, len);
  if (kind == GCHAT_DATAGRAM_KIND_ENDPOINT)
    {
      g_autoptr(GchatEndpointKey) client = NULL;
      g_autoptr(GchatEndpointKey) server = NULL;

      client = gchat_endpoint_key_new_for_session (fuzz_server_send_key, FUZZ_ENDPOINT_ID,
                                                   GCHAT_ENDPOINT_SIDE_CLIENT, NULL);
      server = gchat_endpoint_key_new_for_session (fuzz_server_send_key, FUZZ_ENDPOINT_ID,
                                                   GCHAT_ENDPOINT_SIDE_SERVER, NULL);
      sealed = gchat_endpoint_key_seal (client, body, len, NULL);
      if (sealed != NULL)
        opened = gchat_endpoint_key_open (server, g_bytes_get_data (sealed, NULL),
                                          g_bytes_get_size (sealed), NULL, NULL);
    }
  else
    {
      g_autoptr(GchatPeerKeys) peer = gchat_peer_keys_new (fuzz_pair_key, FUZZ_PAIR_KEY_ID,
                                                           FUZZ_PEER_USER, FUZZ_SELF_USER, NULL);
      g_autoptr(GchatPeerKeys) self = gchat_peer_keys_new (fuzz_pair_key, FUZZ_PAIR_KEY_ID,
                                                           FUZZ_SELF_USER, FUZZ_PEER_USER, NULL);

      sealed = gchat_peer_keys_seal (peer, kind, body, len, NULL);
      if (sealed != NULL)
        opened = gchat_peer_keys_open (self, g_bytes_get_data (sealed, NULL),
                                       g_bytes_get_size (sealed), NULL, NULL, NULL);
    }
  if (sealed == NULL)
    return;
  FUZZ_CHECK (opened != NULL && g_bytes_get_size (opened) == len);
  FUZZ_CHECK (len == 0 || memcmp (g_bytes_get_data (opened, NULL), body, len) == 0);
}

/* Joins data bodies into one message, as the conversation does with a message's fragments. */
static void
fuzz_reassemble (FuzzInput *in)
{
  g_autoptr(GchatDatagramReassembler) reassembler = NULL;

  while (in->len > 0)
    {
      gsize len;
      const guint8 *body = fuzz_input_take (in, fuzz_input_u16 (in), &len);
      GchatDatagramData fragment;

      if (!gchat_datagram_parse_data (body, len, &fragment, NULL))
        continue;
      if (reassembler == NULL)
        reassembler = gchat_datagram_reassembler_new (fragment.msg_id);
      (void) gchat_datagram_reassembler_add (reassembler, &fragment, NULL);
      if (gchat_datagram_reassembler_is_complete (reassembler))
        {
          g_autoptr(GError) error = NULL;
          g_autoptr(GBytes) text = gchat_datagram_reassembler_finish (reassembler, &error);
          gsize text_len = 0;
          const char *bytes = text != NULL ? g_bytes_get_data (text, &text_len) : NULL;

          FUZZ_CHECK (text != NULL || error != NULL);
          FUZZ_CHECK (text == NULL || text_len <= GCHAT_DATAGRAM_MAX_TEXT);
          FUZZ_CHECK (text == NULL || g_utf8_validate (bytes, text_len, NULL));
          g_clear_pointer (&reassembler, gchat_datagram_reassembler_free);
        }
    }
}

/* The peer ("bob") as the fuzzer plays it: its keys seal what the input says, and open what
 * the conversation sends, which must always open. */
typedef struct {
  GchatConversation *conversation;
  GchatPeerKeys     *peer;
  guint32            key_id;
  gint64             now;
} Conversation;

static void
conversation_poll (Conversation *c)
{
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);

  (void) gchat_conversation_poll (c->conversation, c->now, out);
  for (guint i = 0; i < out->len; i++)
    {
      GBytes *datagram = g_ptr_array_index (out, i);
      g_autoptr(GBytes) body = NULL;
      g_autoptr(GError) error = NULL;

      FUZZ_CHECK (g_bytes_get_size (datagram) <= GCHAT_DATAGRAM_MAX_SIZE);
      body = gchat_peer_keys_open (c->peer, g_bytes_get_data (datagram, NULL),
                                   g_bytes_get_size (datagram), NULL, NULL, &error);
      /* After a rekey, datagrams under the old key id are not for this peer object. */
      FUZZ_CHECK (body != NULL
                  || g_error_matches (error, GCHAT_DATAGRAM_ERROR,
                                      GCHAT_DATAGRAM_ERROR_UNKNOWN_KEY));
    }
}

/* One operation: a byte (low 3 bits: what; the rest: how far the clock moves first), then for
 * all but a hello a u16 length and that many bytes. */
static void
conversation_step (Conversation *c,
                   FuzzInput    *in)
{
  guint8 op = fuzz_input_u8 (in);
  gsize len;
  const guint8 *bytes;
  g_autoptr(GBytes) sealed = NULL;
  gint64 step = op >> 3;

  /* Up to 96 s at once, past every timeout of the conversation (the gap one is 90 s). */
  c->now += step * step * 100 * 1000;
  bytes = fuzz_input_take (in, (op & 7) == 3 ? 0 : fuzz_input_u16 (in) % 2048, &len);
  switch (op & 7)
    {
    case 0:
      (void) gchat_conversation_receive (c->conversation, bytes, len, c->now, NULL);
      break;
    case 1:
    case 2:
    case 3:
      sealed = gchat_peer_keys_seal (c->peer, (GchatDatagramKind) (op & 7), bytes, len, NULL);
      if (sealed != NULL)
        (void) gchat_conversation_receive (c->conversation, g_bytes_get_data (sealed, NULL),
                                           g_bytes_get_size (sealed), c->now, NULL);
      break;
    case 4:
      (void) gchat_conversation_send (c->conversation, (const char *) bytes, len, c->now, NULL);
      break;
    case 5:
      (void) gchat_conversation_needs_rekey (c->conversation, c->now);
      (void) gchat_conversation_get_n_pending (c->conversation);
      g_array_unref (gchat_conversation_take_stalled (c->conversation));
      if (len > 0)
        g_ptr_array_unref (gchat_conversation_take_unacknowledged (c->conversation));
      break;
    case 6:
      {
        g_autoptr(GPtrArray) again = NULL;
        guint64 msg_id = GCHAT_DATAGRAM_MSG_ID (gchat_conversation_get_epoch (c->conversation),
                                                len);

        GBytes *hello = gchat_conversation_seal_hello (c->conversation, NULL);

        g_clear_pointer (&hello, g_bytes_unref);
        again = gchat_conversation_seal_message (c->conversation, msg_id, NULL);
      }
      break;
    default:
      /* A new pair key, as after a `talk` with `replace`. */
      if (gchat_conversation_set_key (c->conversation, fuzz_pair_key, c->key_id + 1, 0, c->now,
                                      NULL))
        {
          c->key_id++;
          gchat_peer_keys_free (c->peer);
          c->peer = gchat_peer_keys_new (fuzz_pair_key, c->key_id, FUZZ_PEER_USER,
                                         FUZZ_SELF_USER, NULL);
        }
      break;
    }
  conversation_poll (c);
}

static void
fuzz_conversation (FuzzInput *in)
{
  Conversation c = { NULL, NULL, FUZZ_PAIR_KEY_ID, G_USEC_PER_SEC };

  c.conversation = gchat_conversation_new (FUZZ_SELF_USER, FUZZ_PEER_USER);
  gchat_conversation_set_epoch (c.conversation, 7);
  FUZZ_CHECK (gchat_conversation_set_key (c.conversation, fuzz_pair_key, c.key_id, 0, c.now,
                                          NULL));
  c.peer = gchat_peer_keys_new (fuzz_pair_key, c.key_id, FUZZ_PEER_USER, FUZZ_SELF_USER, NULL);
  for (guint steps = 0; in->len > 0 && steps < 256; steps++)
    conversation_step (&c, in);
  gchat_peer_keys_free (c.peer);
  g_object_unref (c.conversation);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  FuzzInput in = { data, size };
  guint8 mode = fuzz_input_u8 (&in);

  switch (mode & 3)
    {
    case MODE_RAW:
      fuzz_raw (in.data, in.len);
      break;
    case MODE_BODY:
      fuzz_body (mode >> 2, in.data, in.len);
      break;
    case MODE_REASSEMBLE:
      fuzz_reassemble (&in);
      break;
    default:
      fuzz_conversation (&in);
      break;
    }
  return 0;
}
