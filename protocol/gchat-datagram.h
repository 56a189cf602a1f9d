/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Peer and endpoint datagrams (PROTOCOL.md §7): keys, sealing, replay windows and body codecs. */

#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define GCHAT_DATAGRAM_ERROR (gchat_datagram_error_quark ())

typedef enum {
  GCHAT_DATAGRAM_ERROR_MALFORMED,    /* wrong size, magic, version, kind or body layout */
  GCHAT_DATAGRAM_ERROR_UNKNOWN_KEY,  /* another key id, direction or kind than the keys serve */
  GCHAT_DATAGRAM_ERROR_DECRYPT,      /* the datagram did not authenticate */
  GCHAT_DATAGRAM_ERROR_REPLAY,       /* the sequence number was seen already or is too old */
  GCHAT_DATAGRAM_ERROR_TOO_LARGE,    /* a body, list or text (sent or joined) over its limit */
  GCHAT_DATAGRAM_ERROR_EXHAUSTED,    /* the sequence numbers of a key are used up */
  GCHAT_DATAGRAM_ERROR_INVALID_NAME, /* a user name that is empty, too long or the peer's own */
  GCHAT_DATAGRAM_ERROR_INCONSISTENT, /* a fragment that disagrees with the earlier ones */
} GchatDatagramError;

typedef enum {
  GCHAT_DATAGRAM_KIND_DATA = 1,
  GCHAT_DATAGRAM_KIND_ACK = 2,
  GCHAT_DATAGRAM_KIND_HELLO = 3,
  GCHAT_DATAGRAM_KIND_ENDPOINT = 4,
} GchatDatagramKind;

/* A whole datagram: header, sealed body and tag. The smallest is an empty body. */
#define GCHAT_DATAGRAM_MAX_SIZE      1200
#define GCHAT_DATAGRAM_HEADER_SIZE   16
#define GCHAT_DATAGRAM_MIN_SIZE      (GCHAT_DATAGRAM_HEADER_SIZE + 16)
#define GCHAT_DATAGRAM_MAGIC         0x47
#define GCHAT_DATAGRAM_MAX_BODY      (GCHAT_DATAGRAM_MAX_SIZE - GCHAT_DATAGRAM_HEADER_SIZE - 16)
/* How far behind the highest sequence number a datagram may arrive and still be accepted. */
#define GCHAT_DATAGRAM_WINDOW        64

/* Data bodies: msg_id:u64 || floor:u64 || fragment:u16 || fragments:u16 || text, so a
 * fragment carries at most 1168 - 20 = 1148 bytes of text, and 58 of them the largest text. */
#define GCHAT_DATAGRAM_DATA_HEADER_SIZE 20
#define GCHAT_DATAGRAM_MAX_FRAGMENT_TEXT (GCHAT_DATAGRAM_MAX_BODY - GCHAT_DATAGRAM_DATA_HEADER_SIZE)
#define GCHAT_DATAGRAM_MAX_FRAGMENTS 64
#define GCHAT_DATAGRAM_MAX_TEXT      65536
/* A message id is epoch:u32 || number:u32 (§7.2): the sender picks a random epoch other than
 * 0 each time it starts (below 2^31, so that an id fits a signed 64-bit `msg_id`, §7.6), and
 * numbers its messages 1, 2, … within it. */
#define GCHAT_DATAGRAM_MSG_ID(epoch, number) (((guint64) (epoch) << 32) | (guint32) (number))
#define GCHAT_DATAGRAM_MSG_EPOCH(msg_id)      ((guint32) ((msg_id) >> 32))
#define GCHAT_DATAGRAM_MSG_NUMBER(msg_id)     ((guint32) ((msg_id) & G_MAXUINT32))
/* Ack bodies: count:u8 || count × msg_id:u64; 0 only answers a hello. */
#define GCHAT_DATAGRAM_MAX_ACK_IDS   64
/* Endpoint bodies: the sender's user name and up to this many local endpoints. */
#define GCHAT_DATAGRAM_MAX_ENDPOINTS 8

/* The clear header of every datagram, as gchat_datagram_peek_header() reads it. */
typedef struct {
  GchatDatagramKind kind;
  guint8            direction; /* 0: sent by the smaller name (or an endpoint), 1: the larger */
  guint32           key_id;
  guint64           seq;
} GchatDatagramHeader;

/* A parsed data body. @text points into the bytes that were parsed. @floor is the sender's
 * oldest unacknowledged message id: it gave up or saw acknowledged every id below it. */
typedef struct {
  guint64       msg_id;
  guint64       floor;
  guint16       fragment;
  guint16       fragments;
  const guint8 *text;
  gsize         text_len;
} GchatDatagramData;

/* One endpoint of an endpoint body: @family is 4 (the first 4 bytes of @address are used, the
 * rest is zero) or 6; @port is never 0. */
typedef struct {
  guint8  family;
  guint8  address[16];
  guint16 port;
} GchatDatagramEndpoint;

GQuark   gchat_datagram_error_quark      (void);

/* Reads the clear header without any key, to route a datagram by its kind and key id. Checks
 * the size (GCHAT_DATAGRAM_MIN_SIZE..GCHAT_DATAGRAM_MAX_SIZE), magic, version, kind and
 * direction; nothing is authenticated yet. */
gboolean gchat_datagram_peek_header      (const guint8         *data,
                                          gsize                 len,
                                          GchatDatagramHeader  *header,
                                          GError              **error);

/* The keys of one pair key, seen from one of its two users. */
typedef struct _GchatPeerKeys GchatPeerKeys;

/* Derives both direction keys (§7.1). Names are 1..32 bytes and must differ. */
GchatPeerKeys *gchat_peer_keys_new       (const guint8    pair_key[32],
                                          guint32         key_id,
                                          const char     *self_user,
                                          const char     *peer_user,
                                          GError        **error);
void           gchat_peer_keys_free      (GchatPeerKeys  *self);
guint32        gchat_peer_keys_get_key_id (GchatPeerKeys *self);
/* The direction of the datagrams this side seals: 0 or 1. */
guint8         gchat_peer_keys_get_direction (GchatPeerKeys *self);
/* The sequence number the next sealed datagram gets: how many were sealed before. */
guint64        gchat_peer_keys_get_next_seq (GchatPeerKeys *self);
/* Seals a data, ack or hello datagram with the next sequence number. A hello body is empty;
 * a body over GCHAT_DATAGRAM_MAX_BODY fails with GCHAT_DATAGRAM_ERROR_TOO_LARGE. */
GBytes        *gchat_peer_keys_seal      (GchatPeerKeys      *self,
                                          GchatDatagramKind   kind,
                                          const guint8       *body,
                                          gsize               body_len,
                                          GError            **error);
/* Opens a datagram from the peer and returns its body (wiped when freed). The replay window
 * moves only when the datagram authenticated. @kind and @seq may be NULL. */
GBytes        *gchat_peer_keys_open      (GchatPeerKeys      *self,
                                          const guint8       *data,
                                          gsize               len,
                                          GchatDatagramKind  *kind,
                                          guint64            *seq,
                                          GError            **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (GchatPeerKeys, gchat_peer_keys_free)

/* The key of one session's endpoint datagrams (§7.5), made by
 * gchat_endpoint_key_new_for_session() below. */
typedef struct _GchatEndpointKey GchatEndpointKey;

void              gchat_endpoint_key_free (GchatEndpointKey   *self);
GBytes           *gchat_endpoint_key_seal (GchatEndpointKey   *self,
                                           const guint8       *body,
                                           gsize               body_len,
                                           GError            **error);
/* Returns the body (wiped when freed); @seq may be NULL. */
GBytes           *gchat_endpoint_key_open (GchatEndpointKey   *self,
                                           const guint8       *data,
                                           gsize               len,
                                           guint64            *seq,
                                           GError            **error);

/* Which end of a session's endpoint datagrams a key serves (§7.5). */
typedef enum {
  GCHAT_ENDPOINT_SIDE_CLIENT, /* seals direction 0, opens the server's answers (direction 1) */
  GCHAT_ENDPOINT_SIDE_SERVER, /* opens direction 0, seals the answers (direction 1) */
} GchatEndpointSide;

/* The endpoint key of one session (§7.5): @key is the 32-byte export "endpoint" of the
 * connection and @endpoint_id (1..4294967295) the id the server gave in the `result` of `sign`
 * or `auth`. Each direction seals with its own key derived from @key, and opening checks the
 * key id and the direction, so an answer is never taken for a request or the reverse.
 * gchat_endpoint_key_seal() and gchat_endpoint_key_open() work on it as on any endpoint key. */
GchatEndpointKey *gchat_endpoint_key_new_for_session (const guint8        key[32],
                                                      guint32             endpoint_id,
                                                      GchatEndpointSide   side,
                                                      GError            **error);
/* The key id (the session's endpoint id) of the datagrams this key seals and opens. */
guint32           gchat_endpoint_key_get_endpoint_id (GchatEndpointKey   *self);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (GchatEndpointKey, gchat_endpoint_key_free)

/* Data bodies. Build and parse check floor ≤ msg_id, 1 ≤ fragments ≤ 64,
 * fragment < fragments and the body size. */
GBytes   *gchat_datagram_build_data      (guint64             msg_id,
                                          guint64             floor,
                                          guint16             fragment,
                                          guint16             fragments,
                                          const guint8       *text,
                                          gsize               text_len,
                                          GError            **error);
gboolean  gchat_datagram_parse_data      (const guint8       *data,
                                          gsize               len,
                                          GchatDatagramData  *out,
                                          GError            **error);

/* Ack bodies of 0..GCHAT_DATAGRAM_MAX_ACK_IDS message ids. */
GBytes   *gchat_datagram_build_ack       (const guint64      *msg_ids,
                                          guint               count,
                                          GError            **error);
gboolean  gchat_datagram_parse_ack       (const guint8       *data,
                                          gsize               len,
                                          guint64             msg_ids[GCHAT_DATAGRAM_MAX_ACK_IDS],
                                          guint              *count,
                                          GError            **error);

/* Endpoint bodies: a user name of 1..32 bytes of UTF-8 and 0..8 endpoints. */
GBytes   *gchat_datagram_build_endpoint  (const char                  *user,
                                          const GchatDatagramEndpoint *endpoints,
                                          guint                        n_endpoints,
                                          GError                     **error);
/* @endpoints has room for GCHAT_DATAGRAM_MAX_ENDPOINTS; on success @user is a new string and
 * the first @n_endpoints entries are filled. */
gboolean  gchat_datagram_parse_endpoint  (const guint8          *data,
                                          gsize                  len,
                                          char                 **user,
                                          GchatDatagramEndpoint *endpoints,
                                          guint                 *n_endpoints,
                                          GError               **error);
/* Conversions to and from GIO addresses; only IPv4 and IPv6 with a port other than 0. */
gboolean        gchat_datagram_endpoint_from_address (GInetSocketAddress     *address,
                                                      GchatDatagramEndpoint  *endpoint,
                                                      GError                **error);
GSocketAddress *gchat_datagram_endpoint_to_address   (const GchatDatagramEndpoint *endpoint);

/* Cuts a UTF-8 text of at most GCHAT_DATAGRAM_MAX_TEXT bytes into data bodies of at most
 * @max_body bytes (GCHAT_DATAGRAM_DATA_HEADER_SIZE + 1 .. GCHAT_DATAGRAM_MAX_BODY), at most
 * GCHAT_DATAGRAM_MAX_FRAGMENTS of them. An empty text is one body. Returns a GPtrArray of
 * GBytes, in fragment order. */
GPtrArray *gchat_datagram_split_text     (guint64             msg_id,
                                          guint64             floor,
                                          const char         *text,
                                          gsize               len,
                                          gsize               max_body,
                                          GError            **error);

/* Joins the fragments of one message, taken in any order. A fragment seen before is ignored;
 * one that disagrees with the others (message id, fragment count) or would make the text
 * larger than GCHAT_DATAGRAM_MAX_TEXT is refused and changes nothing. */
typedef struct _GchatDatagramReassembler GchatDatagramReassembler;

GchatDatagramReassembler *gchat_datagram_reassembler_new  (guint64                   msg_id);
void                      gchat_datagram_reassembler_free (GchatDatagramReassembler *self);
gboolean                  gchat_datagram_reassembler_add  (GchatDatagramReassembler *self,
                                                           const GchatDatagramData  *fragment,
                                                           GError                  **error);
gboolean                  gchat_datagram_reassembler_is_complete (GchatDatagramReassembler *self);
/* Once complete: the whole text (wiped when freed). It fails with MALFORMED if the text is not
 * valid UTF-8 or holds a NUL byte. */
GBytes                   *gchat_datagram_reassembler_finish (GchatDatagramReassembler *self,
                                                             GError                  **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (GchatDatagramReassembler, gchat_datagram_reassembler_free)

G_END_DECLS
