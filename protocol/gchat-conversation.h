/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The reliability engine of one peer conversation (PROTOCOL.md §7): no sockets, no clock. */

#pragma once

#include <gio/gio.h>

#include "gchat-datagram.h"

G_BEGIN_DECLS

#define GCHAT_CONVERSATION_ERROR (gchat_conversation_error_quark ())

/* Datagrams that do not open fail with a GCHAT_DATAGRAM_ERROR code instead (§7.3). */
typedef enum {
  GCHAT_CONVERSATION_ERROR_NO_KEY,        /* no pair key is installed (or the grace key ended) */
  GCHAT_CONVERSATION_ERROR_OUT_OF_WINDOW, /* a message id the receive window does not admit */
  GCHAT_CONVERSATION_ERROR_QUEUE_FULL,    /* too many messages wait to be sent */
  GCHAT_CONVERSATION_ERROR_KEY_REUSED,    /* a key id installed before: its nonces are spent */
} GchatConversationError;

/* After this many sealed datagrams a key asks to be replaced. */
#define GCHAT_CONVERSATION_REKEY_DATAGRAMS   (G_GUINT64_CONSTANT (1) << 20)
/* After this long (µs) a key asks to be replaced. */
#define GCHAT_CONVERSATION_REKEY_AGE         (G_GINT64_CONSTANT (3600) * G_USEC_PER_SEC)
/* How long the previous key still opens datagrams after a new one is installed. */
#define GCHAT_CONVERSATION_KEY_GRACE         (30 * G_USEC_PER_SEC)
/* The first retransmission timeout, doubled each time up to the cap. */
#define GCHAT_CONVERSATION_RTO_INITIAL       (200 * 1000)
#define GCHAT_CONVERSATION_RTO_MAX           (5 * G_USEC_PER_SEC)
/* Since its first transmission, a message without an ack is "stalled" then "failed". */
#define GCHAT_CONVERSATION_STALL_TIMEOUT     (1 * G_USEC_PER_SEC)
#define GCHAT_CONVERSATION_FAIL_TIMEOUT      (60 * G_USEC_PER_SEC)
/* A receiver skips a missing message id once later ones have waited this long: longer than
 * the sender's fail timeout, so the sender has given it up by then. */
#define GCHAT_CONVERSATION_GAP_TIMEOUT       (90 * G_USEC_PER_SEC)
/* Message ids the sender has in flight: from the oldest unacknowledged one, this many… */
#define GCHAT_CONVERSATION_MAX_IN_FLIGHT     32
/* …and datagrams in flight (but the oldest message always goes): no more than the peer's
 * replay window holds, so that a burst arrives without "too old" drops. */
#define GCHAT_CONVERSATION_MAX_IN_FLIGHT_FRAGMENTS GCHAT_DATAGRAM_WINDOW
/* Message ids a receiver admits from the next one it delivers: at least the in-flight bound. */
#define GCHAT_CONVERSATION_RECEIVE_WINDOW    64
/* Messages that may wait behind the in-flight ones. */
#define GCHAT_CONVERSATION_MAX_QUEUED        1024
/* Sender epochs (one per start of the peer's program) whose receive state is kept; the least
 * recently used is dropped, after delivering what it held, when another one arrives. */
#define GCHAT_CONVERSATION_MAX_EPOCHS        4

/* A message taken back from the conversation before it was acknowledged. @text holds @len
 * bytes of UTF-8 and a NUL after them; it is wiped when the message is freed. */
typedef struct {
  guint64  msg_id;
  char    *text;
  gsize    len;
} GchatOutgoingMessage;

#define GCHAT_TYPE_OUTGOING_MESSAGE (gchat_outgoing_message_get_type ())

GType                 gchat_outgoing_message_get_type (void) G_GNUC_CONST;
GchatOutgoingMessage *gchat_outgoing_message_copy     (const GchatOutgoingMessage *message);
void                  gchat_outgoing_message_free     (GchatOutgoingMessage       *message);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (GchatOutgoingMessage, gchat_outgoing_message_free)

#define GCHAT_TYPE_CONVERSATION (gchat_conversation_get_type ())

G_DECLARE_FINAL_TYPE (GchatConversation, gchat_conversation, GCHAT, CONVERSATION, GObject)

/*
 * Signals (emitted from send, poll and receive, after the state has changed):
 *   "message"        (guint64 msg_id, const char *text): the peer's messages, once, in order
 *   "delivered"      (guint64 msg_id): the peer acknowledged one of ours
 *   "stalled"        (guint64 msg_id): no ack within GCHAT_CONVERSATION_STALL_TIMEOUT; the id
 *                    is also kept for gchat_conversation_take_stalled()
 *   "failed"         (guint64 msg_id): no ack within the fail timeout; it is given up
 *   "hello-answered" (): the peer answered a hello with an ack of count 0
 */

GQuark             gchat_conversation_error_quark (void);

GchatConversation *gchat_conversation_new              (const char          *self_user,
                                                        const char          *peer_user);
const char        *gchat_conversation_get_self_user    (GchatConversation   *self);
const char        *gchat_conversation_get_peer_user    (GchatConversation   *self);

/* Installs a pair key (§5.2 `pair-key`). @expires_us is in the monotonic clock of @now (0: no
 * expiry). The replaced key still opens datagrams for GCHAT_CONVERSATION_KEY_GRACE; messages
 * not yet acknowledged are sealed again under the new key at the next poll. */
gboolean           gchat_conversation_set_key          (GchatConversation   *self,
                                                        const guint8         pair_key[32],
                                                        guint32              key_id,
                                                        gint64               expires_us,
                                                        gint64               now,
                                                        GError             **error);
gboolean           gchat_conversation_has_key          (GchatConversation   *self);
/* TRUE when there is no key, or the key has sealed too many datagrams, is too old or expired. */
gboolean           gchat_conversation_needs_rekey      (GchatConversation   *self,
                                                        gint64               now);
/* For tests and tuning; 0 keeps the current value. */
void               gchat_conversation_set_rekey_limits (GchatConversation   *self,
                                                        guint64              datagrams,
                                                        gint64               age_us);

/* The random epoch (never 0) of the ids this side gives its messages, chosen when the
 * conversation is made, so that a restarted program never repeats an id the peer has seen. */
guint32            gchat_conversation_get_epoch        (GchatConversation   *self);
/* For tests: a chosen epoch instead of the random one, before the first message is sent. */
void               gchat_conversation_set_epoch        (GchatConversation   *self,
                                                        guint32              epoch);

/* Queues a message of at most GCHAT_DATAGRAM_MAX_TEXT bytes of UTF-8 without NUL and returns
 * its id (GCHAT_DATAGRAM_MSG_ID (epoch, n), n = 1, 2, …), or 0 and an error. It is sent at the
 * next poll (once a key is installed and the in-flight window admits it). */
guint64            gchat_conversation_send             (GchatConversation   *self,
                                                        const char          *text,
                                                        gsize                len,
                                                        gint64               now,
                                                        GError             **error);

/* Appends to @out_datagrams (GBytes) the datagrams due at @now: answers and acks first, then
 * first transmissions and retransmissions. Returns when to poll again at the latest
 * (G_MAXINT64: only after the next send, receive or key). */
gint64             gchat_conversation_poll             (GchatConversation   *self,
                                                        gint64               now,
                                                        GPtrArray           *out_datagrams);

/* Takes a datagram from the peer, direct or relayed. Returns FALSE and an error (never an
 * answer) when it is dropped; the caller counts those. Poll afterwards to send the acks. */
gboolean           gchat_conversation_receive          (GchatConversation   *self,
                                                        const guint8        *data,
                                                        gsize                len,
                                                        gint64               now,
                                                        GError             **error);

/* A sealed hello (§7.2) to open a NAT binding; the peer answers with an ack of count 0. */
GBytes            *gchat_conversation_seal_hello       (GchatConversation   *self,
                                                        GError             **error);

/* The ids of the messages that stalled since the last call, oldest first (a GArray of
 * guint64; empty when none). */
GArray            *gchat_conversation_take_stalled     (GchatConversation   *self);
/* Seals the datagrams of an unacknowledged message again, for the relay (a GPtrArray of
 * GBytes); NULL and an error when it is not in flight or there is no key. */
GPtrArray         *gchat_conversation_seal_message     (GchatConversation   *self,
                                                        guint64              msg_id,
                                                        GError             **error);

/* Removes every message not yet acknowledged, in flight or queued, and returns them oldest
 * first (a GPtrArray of GchatOutgoingMessage, empty when none), for the client to hand to the
 * server's mailbox. Acks that come for them later are ignored, and the floor the peer sees
 * moves past them, so it stops waiting for them. The peer may have received some of them
 * whole already: whoever delivers the mailbox copy should drop an id seen before. */
GPtrArray         *gchat_conversation_take_unacknowledged (GchatConversation *self);

/* How many messages wait for an ack or to be sent. */
guint              gchat_conversation_get_n_pending    (GchatConversation   *self);

G_END_DECLS
