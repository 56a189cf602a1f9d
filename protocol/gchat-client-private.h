/* SPDX-License-Identifier: GPL-3.0-or-later */
/* What the parts of GchatClient share: gchat-client.c (the object), gchat-client-session.c (the
 * connection to gchatd) and gchat-client-peers.c (conversations, datagrams, relay and mail). */

#pragma once

#include "gchat-client.h"
#include "gchat-conversation.h"
#include "gchat-datagram.h"
#include "gchat-message.h"
#include "gchat-peer-socket.h"
#include "gchat-session.h"

G_BEGIN_DECLS

/* One message of ours until it reached a final state (or QUEUED). */
typedef struct {
  guint64             id;        /* ours, unique across restarts (see gchat_client_send) */
  char               *to;
  char               *text;
  gsize               len;
  guint64             conv_id;   /* its id in the peer's conversation, or 0 */
  gboolean            relayed;   /* some of it went through gchatd */
  gboolean            posting;   /* a `post` waits for its result */
} GchatOutMessage;

typedef enum {
  GCHAT_REQUEST_LOGIN,
  GCHAT_REQUEST_LIST,
  GCHAT_REQUEST_TALK,
  GCHAT_REQUEST_POST,
} GchatRequestKind;

/* A request waiting for its answer, by its `id`. */
typedef struct {
  gint64              id;        /* the key in GchatClient.requests */
  GchatRequestKind    kind;
  GTask              *task;      /* LIST from gchat_client_list_async(), or NULL */
  char               *peer;      /* TALK */
  guint64             message;   /* POST: the GchatOutMessage id */
} GchatRequest;

/* A user we exchange datagrams with. */
typedef struct {
  GchatClient        *client;
  char               *name;      /* as the server spells it */
  GchatConversation  *conversation;
  GHashTable         *by_conv_id;    /* conversation id → GchatOutMessage (borrowed) */
  GPtrArray          *endpoints;     /* GInetSocketAddress from the pair key */
  GInetSocketAddress *last_from;     /* where an authentic datagram last came from */
  GArray             *key_ids;       /* guint32: the ids routed here in client->key_ids */
  guint32             key_id;        /* the newest one, 0 before the first */
  gboolean            talk_pending;
  gint64              relay_until;   /* monotonic: send through gchatd until then */
  gint64              relay_hold;    /* how long the next switch to the relay lasts */
  guint               timer;
  gint64              timer_at;
} GchatPeer;

struct _GchatClient
{
  GObject             parent_instance;

  /* settings */
  char               *host;
  guint               port;
  GchatRsaKey        *server_key;
  char               *known_servers_path;
  gboolean            accept_new_server_key;
  guint               direct_loss;
  guint               datagram_loss;
  guint64             rekey_datagrams;

  /* state */
  GchatClientState    state;
  char               *state_reason;
  char               *user;
  guint               retry_after;
  GchatRsaKey        *seen_key;
  char               *seen_fingerprint;
  char               *pinned_fingerprint;
  GchatOnlineUsers   *online;

  /* the session and logging in */
  GchatSession       *session;
  GCancellable       *connect_cancellable;
  GTask              *login_task;     /* the caller's sign or auth */
  GTask              *logout_task;
  gboolean            login_is_sign;
  char               *login_user;
  char               *password;       /* wiped at log-out */
  GBytes             *resume_ticket;  /* PROTOCOL.md §3.5: only in memory, wiped at log-out */
  guint8             *resume_secret;  /* GCHAT_RESUME_SECRET_SIZE bytes, or NULL */
  gint64              resume_expires; /* Unix seconds */
  gboolean            resuming;       /* this session resumes: its `result` has not come */
  gboolean            logged_in_once; /* a dropped session is then taken up again */
  gboolean            awaiting_list;  /* logged in, the first online list not in yet */
  guint               reconnect_source;
  guint               reconnect_delay_s;
  guint               ping_source;
  gint64              next_request_id;
  GHashTable         *requests;       /* request id → GchatRequest */
  GPtrArray          *list_names;     /* collecting a `users` answer with `more` */

  /* messages and peers */
  GHashTable         *messages;       /* our id → GchatOutMessage, owned */
  GQueue              outbox;         /* GchatOutMessage waiting for a session (borrowed) */
  guint64             last_message_id;
  GHashTable         *peers;          /* folded name → GchatPeer */
  GHashTable         *key_ids;        /* pair key id → GchatPeer (borrowed) */
  GHashTable         *seen_mail;      /* "from\nmsg_id" of messages shown in this process */
  GHashTable         *posted;         /* conversation id → our id, of posts awaiting receipts */
  GchatPeerSocket    *peer_socket;
  GSocketAddress     *server_udp;     /* where endpoint datagrams go */
  GchatEndpointKey   *endpoint_key;
  guint               endpoint_source;
  guint               endpoint_tries;
  GPtrArray          *early;          /* GchatEarlyDatagram: keys not here yet */
  GchatClientPath     input_path;     /* the path of the datagram being received */
  guint64             n_dropped;
  guint               n_pair_keys;
};

/* gchat-client.c */
void     gchat_client_set_state        (GchatClient        *self,
                                        GchatClientState    state,
                                        const char         *reason);
void     gchat_client_set_user         (GchatClient        *self,
                                        const char         *user);
void     gchat_client_emit_message     (GchatClient        *self,
                                        const char         *from,
                                        const char         *text,
                                        GchatClientPath     path,
                                        guint64             id,
                                        gint64              sent_unix);
void     gchat_client_emit_delivery    (GchatClient        *self,
                                        guint64             id,
                                        const char         *to,
                                        GchatDeliveryState  state,
                                        GchatClientPath     path,
                                        const GError       *error);
void     gchat_client_emit_presence    (GchatClient        *self,
                                        const char         *user,
                                        gboolean            online);

/* gchat-client-session.c */
void     gchat_client_drop_session     (GchatClient        *self);
void     gchat_client_forget_password  (GchatClient        *self);
gboolean gchat_client_send_message     (GchatClient        *self,
                                        GchatMessage       *message);
gint64   gchat_client_new_request      (GchatClient        *self,
                                        GchatRequestKind    kind);
void     gchat_request_free            (GchatRequest       *request);
GError  *gchat_client_error_from_result (GchatMessage      *result,
                                         guint             *retry_after);

/* gchat-client-peers.c */
void     gchat_out_message_free        (GchatOutMessage    *message);
void     gchat_peer_free               (GchatPeer          *peer);
void     gchat_early_datagram_free     (gpointer            early);
void     gchat_client_peers_clear      (GchatClient        *self);
void     gchat_client_peers_logged_in  (GchatClient        *self,
                                        guint32             endpoint_id);
void     gchat_client_peers_flush_outbox (GchatClient      *self);
void     gchat_client_peers_session_lost (GchatClient      *self);
void     gchat_client_peers_user_left  (GchatClient        *self,
                                        const char         *user);
gboolean gchat_client_peers_dispatch   (GchatClient        *self,
                                        GchatMessage       *message);
void     gchat_client_peers_request_failed (GchatClient    *self,
                                            GchatRequest   *request,
                                            GchatMessage   *result);
void     gchat_client_peers_post_done  (GchatClient        *self,
                                        GchatRequest       *request,
                                        GchatMessage       *result);
void     gchat_client_peers_talk_done  (GchatClient        *self,
                                        GchatRequest       *request,
                                        GchatMessage       *result);
guint    gchat_client_peers_flush_to_mailbox (GchatClient  *self);
void     gchat_client_peers_end        (GchatClient        *self,
                                        const char         *reason);
guint    gchat_client_peers_n_posting  (GchatClient        *self);

G_END_DECLS
