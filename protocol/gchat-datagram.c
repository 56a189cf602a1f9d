/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Peer and endpoint datagrams as pure functions of bytes; PROTOCOL.md §7 describes every byte. */

#include "config.h"

#include <inttypes.h>
#include <glib/gi18n-lib.h>
#include <string.h>

#include "gchat-crypto.h"
#include "gchat-datagram.h"
#include "gchat-message.h"

/* Labels of protocol version 1. Changing any of them makes a new, incompatible version. */
#define LABEL_LO_HI "gchat v1 peer lo-hi"
#define LABEL_HI_LO "gchat v1 peer hi-lo"
#define LABEL_ENDPOINT_C2S "gchat v1 endpoint client to server"
#define LABEL_ENDPOINT_S2C "gchat v1 endpoint server to client"

/* The info of a direction key: a label, then both names with a length byte each. */
#define DIRECTION_INFO_MAX (sizeof LABEL_LO_HI - 1 + 2 * (1 + GCHAT_USER_NAME_MAX))
G_STATIC_ASSERT (sizeof LABEL_LO_HI == sizeof LABEL_HI_LO);

#define DATA_MAX_TEXT GCHAT_DATAGRAM_MAX_FRAGMENT_TEXT

G_STATIC_ASSERT (GCHAT_DATAGRAM_MIN_SIZE == GCHAT_DATAGRAM_HEADER_SIZE + GCHAT_AEAD_TAG_SIZE);
G_STATIC_ASSERT (GCHAT_DATAGRAM_MAX_BODY == 1168);
G_STATIC_ASSERT (DATA_MAX_TEXT == 1148);
/* Even the smallest allowed fragments must be able to carry the largest text. */
G_STATIC_ASSERT ((guint64) GCHAT_DATAGRAM_MAX_FRAGMENTS * DATA_MAX_TEXT >= GCHAT_DATAGRAM_MAX_TEXT);
G_STATIC_ASSERT (GCHAT_DATAGRAM_WINDOW == 64);

/* The receiving side of one key and direction (§7.3): the highest sequence number that
 * authenticated, and in bit i - 1 of @seen whether highest - i did too, for 1 ≤ i ≤ 64. */
typedef struct
{
  gboolean any;
  guint64  highest;
  guint64  seen;
} ReplayWindow;

struct _GchatPeerKeys
{
  GchatAead   *send;
  GchatAead   *receive;
  guint32      key_id;
  guint8       direction;
  guint64      next_seq;
  ReplayWindow window;
};

/* The two directions of a session never share a key, and so never a nonce. */
struct _GchatEndpointKey
{
  GchatAead   *send;
  GchatAead   *receive;
  guint32      key_id;
  guint8       send_direction;
  guint8       receive_direction;
  guint64      next_seq;
  ReplayWindow window;
};

struct _GchatDatagramReassembler
{
  guint64  msg_id;
  guint    fragments; /* 0 until the first fragment arrives */
  guint    received;
  gsize    total;
  GBytes  *pieces[GCHAT_DATAGRAM_MAX_FRAGMENTS];
};

/* A bounds-checked cursor over bytes from the network. */
typedef struct
{
  const guint8 *data;
  gsize         len;
  gsize         pos;
} Reader;

G_DEFINE_QUARK (gchat-datagram-error-quark, gchat_datagram_error)

static void
put_u16 (guint8  *p,
         guint16  value)
{
  p[0] = (guint8) (value >> 8);
  p[1] = (guint8) value;
}

static void
put_u32 (guint8  *p,
         guint32  value)
{
  for (guint i = 0; i < 4; i++)
    p[i] = (guint8) (value >> (24 - 8 * i));
}

static void
put_u64 (guint8  *p,
         guint64  value)
{
  for (guint i = 0; i < 8; i++)
    p[i] = (guint8) (value >> (56 - 8 * i));
}

static guint16
get_u16 (const guint8 *p)
{
  return (guint16) ((p[0] << 8) | p[1]);
}

static guint32
get_u32 (const guint8 *p)
{
  return ((guint32) p[0] << 24) | ((guint32) p[1] << 16) | ((guint32) p[2] << 8) | p[3];
}

static guint64
get_u64 (const guint8 *p)
{
  return ((guint64) get_u32 (p) << 32) | get_u32 (p + 4);
}

/* Takes @n bytes, or fails without moving when fewer are left. */
static const guint8 *
reader_take (Reader *reader,
             gsize   n)
{
  const guint8 *p;

  if (n > reader->len - reader->pos)
    return NULL;
  p = reader->data + reader->pos;
  reader->pos += n;
  return p;
}

static gboolean
set_malformed (GError     **error,
               const char  *what)
{
  g_set_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_MALFORMED,
               _("A datagram is malformed: %s"), what);
  return FALSE;
}

/* ---- Headers, nonces, sealing and the replay window ---- */

gboolean
gchat_datagram_peek_header (const guint8         *data,
                            gsize                 len,
                            GchatDatagramHeader  *header,
                            GError              **error)
{
  g_return_val_if_fail (data != NULL || len == 0, FALSE);
  g_return_val_if_fail (header != NULL, FALSE);

  if (len < GCHAT_DATAGRAM_MIN_SIZE || len > GCHAT_DATAGRAM_MAX_SIZE)
    {
      g_set_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_MALFORMED,
                   _("A datagram of %zu bytes is outside the allowed %u "
                     "to %u bytes"),
                   len, (guint) GCHAT_DATAGRAM_MIN_SIZE, (guint) GCHAT_DATAGRAM_MAX_SIZE);
      return FALSE;
    }
  if (data[0] != GCHAT_DATAGRAM_MAGIC)
    return set_malformed (error, _("it is not a gchat datagram"));
  if (data[1] != GCHAT_PROTOCOL_VERSION)
    {
      g_set_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_MALFORMED,
                   _("A datagram of protocol version %u arrived; this program speaks version %u"),
                   data[1], (guint) GCHAT_PROTOCOL_VERSION);
      return FALSE;
    }
  if (data[2] < GCHAT_DATAGRAM_KIND_DATA || data[2] > GCHAT_DATAGRAM_KIND_ENDPOINT)
    return set_malformed (error, _("its kind is unknown"));
  if (data[3] > 1)
    return set_malformed (error, _("its direction is neither 0 nor 1"));

  header->kind = (GchatDatagramKind) data[2];
  header->direction = data[3];
  header->key_id = get_u32 (data + 4);
  header->seq = get_u64 (data + 8);
  return TRUE;
}

static void
write_header (const GchatDatagramHeader *header,
              guint8                     out[GCHAT_DATAGRAM_HEADER_SIZE])
{
  out[0] = GCHAT_DATAGRAM_MAGIC;
  out[1] = GCHAT_PROTOCOL_VERSION;
  out[2] = (guint8) header->kind;
  out[3] = header->direction;
  put_u32 (out + 4, header->key_id);
  put_u64 (out + 8, header->seq);
}

/* The nonce is the sequence number: 4 zero bytes, then 8 bytes big-endian. Each direction has
 * its own key and its own counter, so a (key, nonce) pair is never used twice. */
static void
make_nonce (guint64 seq,
            guint8  nonce[GCHAT_AEAD_NONCE_SIZE])
{
  memset (nonce, 0, 4);
  put_u64 (nonce + 4, seq);
}

/* Takes the next sequence number of a key. The last one is never used, like a sealed frame's,
 * so that the counter cannot wrap around to a nonce used before. */
static gboolean
take_seq (guint64  *next_seq,
          guint64  *seq,
          GError  **error)
{
  if (*next_seq == G_MAXUINT64)
    {
      g_set_error_literal (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_EXHAUSTED,
                           _("This key has sealed all the datagrams it may; ask for a new one"));
      return FALSE;
    }
  *seq = (*next_seq)++;
  return TRUE;
}

static GBytes *
seal_datagram (GchatAead                 *aead,
               const GchatDatagramHeader *header,
               const guint8              *body,
               gsize                      body_len,
               GError                   **error)
{
  guint8 nonce[GCHAT_AEAD_NONCE_SIZE];
  gsize len = GCHAT_DATAGRAM_HEADER_SIZE + body_len + GCHAT_AEAD_TAG_SIZE;
  g_autofree guint8 *datagram = g_malloc (len);

  write_header (header, datagram);
  make_nonce (header->seq, nonce);
  if (!gchat_aead_seal (aead, nonce, datagram, GCHAT_DATAGRAM_HEADER_SIZE, body, body_len,
                        datagram + GCHAT_DATAGRAM_HEADER_SIZE, error))
    return NULL;
  return g_bytes_new_take (g_steal_pointer (&datagram), len);
}

static gboolean
check_body_size (gsize    body_len,
                 GError **error)
{
  if (body_len > GCHAT_DATAGRAM_MAX_BODY)
    {
      g_set_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_TOO_LARGE,
                   _("A datagram body of %zu bytes is larger than the limit of %u"),
                   body_len, (guint) GCHAT_DATAGRAM_MAX_BODY);
      return FALSE;
    }
  return TRUE;
}

static gboolean
replay_window_check (const ReplayWindow  *window,
                     guint64              seq,
                     GError             **error)
{
  guint64 behind;

  if (!window->any || seq > window->highest)
    return TRUE;
  behind = window->highest - seq;
  if (behind == 0 || behind > GCHAT_DATAGRAM_WINDOW
      || (window->seen & (G_GUINT64_CONSTANT (1) << (behind - 1))) != 0)
    {
      g_set_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_REPLAY,
                   _("Datagram %" PRIu64 " was received before or is too old"), seq);
      return FALSE;
    }
  return TRUE;
}

/* Only for a sequence number that replay_window_check() accepted and that authenticated. */
static void
replay_window_commit (ReplayWindow *window,
                      guint64       seq)
{
  guint64 shift;

  if (!window->any)
    {
      window->any = TRUE;
      window->highest = seq;
      window->seen = 0;
      return;
    }
  if (seq < window->highest)
    {
      window->seen |= G_GUINT64_CONSTANT (1) << (window->highest - seq - 1);
      return;
    }
  /* The old highest becomes bit shift - 1, if it stays inside the window at all. */
  shift = seq - window->highest;
  window->seen = shift >= 64 ? 0 : window->seen << shift;
  if (shift <= 64)
    window->seen |= G_GUINT64_CONSTANT (1) << (shift - 1);
  window->highest = seq;
}

/* Checks the window, opens, and only then moves the window: a forged datagram must not be able
 * to push the window ahead and block the genuine ones. */
static GBytes *
open_datagram (GchatAead                 *aead,
               ReplayWindow              *window,
               const GchatDatagramHeader *header,
               const guint8              *data,
               gsize                      len,
               GError                   **error)
{
  guint8 nonce[GCHAT_AEAD_NONCE_SIZE];
  gsize sealed_len = len - GCHAT_DATAGRAM_HEADER_SIZE;
  guint8 *body;
  g_autoptr(GError) local_error = NULL;

  if (!replay_window_check (window, header->seq, error))
    return NULL;

  /* Bodies hold messages, so they are wiped when the last reference goes. */
  body = gchat_wiped_buffer_new (sealed_len - GCHAT_AEAD_TAG_SIZE);
  make_nonce (header->seq, nonce);
  if (!gchat_aead_open (aead, nonce, data, GCHAT_DATAGRAM_HEADER_SIZE,
                        data + GCHAT_DATAGRAM_HEADER_SIZE, sealed_len, body, &local_error))
    {
      gchat_wiped_buffer_free (body);
      if (!g_error_matches (local_error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_DECRYPT))
        {
          g_propagate_error (error, g_steal_pointer (&local_error));
          return NULL;
        }
      g_set_error_literal (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_DECRYPT,
                           _("A datagram did not authenticate: it was forged, altered or "
                             "sealed with another key"));
      return NULL;
    }
  replay_window_commit (window, header->seq);
  return gchat_wiped_buffer_to_bytes (body, sealed_len - GCHAT_AEAD_TAG_SIZE);
}

/* ---- Peer keys ---- */

static gboolean
check_name (const char  *name,
            GError     **error)
{
  gsize len = strlen (name);

  if (len == 0 || len > GCHAT_USER_NAME_MAX)
    {
      g_set_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_INVALID_NAME,
                   _("A user name must have 1 to %u bytes, not %zu"),
                   (guint) GCHAT_USER_NAME_MAX, len);
      return FALSE;
    }
  return TRUE;
}

/* HKDF(salt = key_id:u32, ikm = pair_key, info = label || name_block, 32), §7.1. The names
 * passed check_name(), so the info fits its buffer. */
static gboolean
derive_direction_key (const guint8  pair_key[GCHAT_KEY_SIZE],
                      guint32       key_id,
                      const char   *label,
                      const char   *lo,
                      const char   *hi,
                      guint8        out[GCHAT_KEY_SIZE],
                      GError      **error)
{
  guint8 salt[4];
  guint8 info[DIRECTION_INFO_MAX];
  gsize label_len = strlen (label), lo_len = strlen (lo), hi_len = strlen (hi);
  gsize pos = 0;

  put_u32 (salt, key_id);
  memcpy (info, label, label_len);
  pos += label_len;
  info[pos++] = (guint8) lo_len;
  memcpy (info + pos, lo, lo_len);
  pos += lo_len;
  info[pos++] = (guint8) hi_len;
  memcpy (info + pos, hi, hi_len);
  pos += hi_len;
  return gchat_hkdf (salt, sizeof salt, pair_key, GCHAT_KEY_SIZE, info, pos, out, GCHAT_KEY_SIZE,
                     error);
}

/* Makes the two AEAD handles from the two direction keys; @direction says which one sends. */
static GchatPeerKeys *
peer_keys_from (const guint8   key_lo_hi[GCHAT_KEY_SIZE],
                const guint8   key_hi_lo[GCHAT_KEY_SIZE],
                guint8         direction,
                guint32        key_id,
                GError       **error)
{
  g_autoptr(GchatAead) lo_hi = gchat_aead_new (key_lo_hi, error);
  g_autoptr(GchatAead) hi_lo = NULL;
  GchatPeerKeys *self;

  if (lo_hi == NULL)
    return NULL;
  hi_lo = gchat_aead_new (key_hi_lo, error);
  if (hi_lo == NULL)
    return NULL;

  self = g_new0 (GchatPeerKeys, 1);
  self->key_id = key_id;
  self->direction = direction;
  self->send = direction == 0 ? g_steal_pointer (&lo_hi) : g_steal_pointer (&hi_lo);
  self->receive = direction == 0 ? g_steal_pointer (&hi_lo) : g_steal_pointer (&lo_hi);
  return self;
}

GchatPeerKeys *
gchat_peer_keys_new (const guint8   pair_key[32],
                     guint32        key_id,
                     const char    *self_user,
                     const char    *peer_user,
                     GError       **error)
{
  guint8 key_lo_hi[GCHAT_KEY_SIZE], key_hi_lo[GCHAT_KEY_SIZE];
  const char *lo, *hi;
  int order;
  GchatPeerKeys *self = NULL;

  g_return_val_if_fail (pair_key != NULL, NULL);
  g_return_val_if_fail (self_user != NULL && peer_user != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!check_name (self_user, error) || !check_name (peer_user, error))
    return NULL;
  /* strcmp() compares as unsigned bytes, and a name before a longer one it starts. */
  order = strcmp (self_user, peer_user);
  if (order == 0)
    {
      g_set_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_INVALID_NAME,
                   _("“%s” cannot share a pair key with themselves"), self_user);
      return NULL;
    }
  lo = order < 0 ? self_user : peer_user;
  hi = order < 0 ? peer_user : self_user;

  if (derive_direction_key (pair_key, key_id, LABEL_LO_HI, lo, hi, key_lo_hi, error)
      && derive_direction_key (pair_key, key_id, LABEL_HI_LO, lo, hi, key_hi_lo, error))
    self = peer_keys_from (key_lo_hi, key_hi_lo, order < 0 ? 0 : 1, key_id, error);
  gchat_memzero (key_lo_hi, sizeof key_lo_hi);
  gchat_memzero (key_hi_lo, sizeof key_hi_lo);
  return self;
}

void
gchat_peer_keys_free (GchatPeerKeys *self)
{
  if (self == NULL)
    return;
  g_clear_pointer (&self->send, gchat_aead_free);
  g_clear_pointer (&self->receive, gchat_aead_free);
  g_free (self);
}

guint32
gchat_peer_keys_get_key_id (GchatPeerKeys *self)
{
  g_return_val_if_fail (self != NULL, 0);

  return self->key_id;
}

guint8
gchat_peer_keys_get_direction (GchatPeerKeys *self)
{
  g_return_val_if_fail (self != NULL, 0);

  return self->direction;
}

guint64
gchat_peer_keys_get_next_seq (GchatPeerKeys *self)
{
  g_return_val_if_fail (self != NULL, 0);

  return self->next_seq;
}

GBytes *
gchat_peer_keys_seal (GchatPeerKeys      *self,
                      GchatDatagramKind   kind,
                      const guint8       *body,
                      gsize               body_len,
                      GError            **error)
{
  GchatDatagramHeader header = { kind, 0, 0, 0 };

  g_return_val_if_fail (self != NULL, NULL);
  g_return_val_if_fail (kind == GCHAT_DATAGRAM_KIND_DATA || kind == GCHAT_DATAGRAM_KIND_ACK
                        || kind == GCHAT_DATAGRAM_KIND_HELLO, NULL);
  g_return_val_if_fail (body != NULL || body_len == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!check_body_size (body_len, error))
    return NULL;
  if (kind == GCHAT_DATAGRAM_KIND_HELLO && body_len != 0)
    {
      set_malformed (error, _("a hello has an empty body"));
      return NULL;
    }
  if (!take_seq (&self->next_seq, &header.seq, error))
    return NULL;
  header.direction = self->direction;
  header.key_id = self->key_id;
  return seal_datagram (self->send, &header, body, body_len, error);
}

/* A datagram this side holds no receiving key for is dropped before any decryption. */
static gboolean
check_peer_header (GchatPeerKeys              *self,
                   const GchatDatagramHeader  *header,
                   GError                    **error)
{
  if (header->kind == GCHAT_DATAGRAM_KIND_ENDPOINT)
    {
      g_set_error_literal (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_UNKNOWN_KEY,
                           _("An endpoint datagram arrived where only peer datagrams belong"));
      return FALSE;
    }
  if (header->key_id != self->key_id)
    {
      g_set_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_UNKNOWN_KEY,
                   _("A datagram for pair key %u arrived, but this pair uses key %u"),
                   header->key_id, self->key_id);
      return FALSE;
    }
  if (header->direction == self->direction)
    {
      g_set_error_literal (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_UNKNOWN_KEY,
                           _("A datagram came back in this side’s own direction"));
      return FALSE;
    }
  return TRUE;
}

GBytes *
gchat_peer_keys_open (GchatPeerKeys      *self,
                      const guint8       *data,
                      gsize               len,
                      GchatDatagramKind  *kind,
                      guint64            *seq,
                      GError            **error)
{
  GchatDatagramHeader header;
  g_autoptr(GBytes) body = NULL;

  g_return_val_if_fail (self != NULL, NULL);
  g_return_val_if_fail (data != NULL || len == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!gchat_datagram_peek_header (data, len, &header, error)
      || !check_peer_header (self, &header, error))
    return NULL;
  body = open_datagram (self->receive, &self->window, &header, data, len, error);
  if (body == NULL)
    return NULL;
  if (header.kind == GCHAT_DATAGRAM_KIND_HELLO && g_bytes_get_size (body) != 0)
    {
      set_malformed (error, _("a hello has an empty body"));
      return NULL;
    }

  if (kind != NULL)
    *kind = header.kind;
  if (seq != NULL)
    *seq = header.seq;
  return g_steal_pointer (&body);
}

/* ---- Endpoint key ---- */

/* HKDF-Expand(key, label, 32) made into an AEAD handle, the key wiped at once. */
static GchatAead *
endpoint_direction_aead (const guint8  key[GCHAT_KEY_SIZE],
                         const char   *label,
                         GError      **error)
{
  guint8 direction_key[GCHAT_KEY_SIZE];
  GchatAead *aead = NULL;

  if (gchat_hkdf_expand (key, GCHAT_KEY_SIZE, (const guint8 *) label, strlen (label),
                         direction_key, sizeof direction_key, error))
    aead = gchat_aead_new (direction_key, error);
  gchat_memzero (direction_key, sizeof direction_key);
  return aead;
}

GchatEndpointKey *
gchat_endpoint_key_new_for_session (const guint8        key[32],
                                    guint32             endpoint_id,
                                    GchatEndpointSide   side,
                                    GError            **error)
{
  g_autoptr(GchatAead) c2s = NULL;
  g_autoptr(GchatAead) s2c = NULL;
  gboolean server = side == GCHAT_ENDPOINT_SIDE_SERVER;
  GchatEndpointKey *self;

  g_return_val_if_fail (key != NULL, NULL);
  g_return_val_if_fail (endpoint_id != 0, NULL);
  g_return_val_if_fail (side == GCHAT_ENDPOINT_SIDE_CLIENT || server, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  c2s = endpoint_direction_aead (key, LABEL_ENDPOINT_C2S, error);
  if (c2s == NULL)
    return NULL;
  s2c = endpoint_direction_aead (key, LABEL_ENDPOINT_S2C, error);
  if (s2c == NULL)
    return NULL;

  self = g_new0 (GchatEndpointKey, 1);
  self->key_id = endpoint_id;
  self->send_direction = server ? 1 : 0;
  self->receive_direction = server ? 0 : 1;
  self->send = server ? g_steal_pointer (&s2c) : g_steal_pointer (&c2s);
  self->receive = server ? g_steal_pointer (&c2s) : g_steal_pointer (&s2c);
  return self;
}

guint32
gchat_endpoint_key_get_endpoint_id (GchatEndpointKey *self)
{
  g_return_val_if_fail (self != NULL, 0);

  return self->key_id;
}

void
gchat_endpoint_key_free (GchatEndpointKey *self)
{
  if (self == NULL)
    return;
  g_clear_pointer (&self->receive, gchat_aead_free);
  g_clear_pointer (&self->send, gchat_aead_free);
  g_free (self);
}

GBytes *
gchat_endpoint_key_seal (GchatEndpointKey  *self,
                         const guint8      *body,
                         gsize              body_len,
                         GError           **error)
{
  GchatDatagramHeader header = { GCHAT_DATAGRAM_KIND_ENDPOINT, 0, 0, 0 };

  g_return_val_if_fail (self != NULL, NULL);
  g_return_val_if_fail (body != NULL || body_len == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!check_body_size (body_len, error) || !take_seq (&self->next_seq, &header.seq, error))
    return NULL;
  header.direction = self->send_direction;
  header.key_id = self->key_id;
  return seal_datagram (self->send, &header, body, body_len, error);
}

GBytes *
gchat_endpoint_key_open (GchatEndpointKey  *self,
                         const guint8      *data,
                         gsize              len,
                         guint64           *seq,
                         GError           **error)
{
  GchatDatagramHeader header;
  GBytes *body;

  g_return_val_if_fail (self != NULL, NULL);
  g_return_val_if_fail (data != NULL || len == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!gchat_datagram_peek_header (data, len, &header, error))
    return NULL;
  if (header.kind != GCHAT_DATAGRAM_KIND_ENDPOINT || header.key_id != self->key_id
      || header.direction != self->receive_direction)
    {
      g_set_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_UNKNOWN_KEY,
                   _("Only endpoint datagrams with key %u and direction %u belong here"),
                   self->key_id, (guint) self->receive_direction);
      return NULL;
    }
  body = open_datagram (self->receive, &self->window, &header, data, len, error);
  if (body != NULL && seq != NULL)
    *seq = header.seq;
  return body;
}

/* ---- Data and ack bodies ---- */

static gboolean
check_fragment (guint    fragment,
                guint    fragments,
                GError **error)
{
  if (fragments < 1 || fragments > GCHAT_DATAGRAM_MAX_FRAGMENTS)
    return set_malformed (error, _("a message has 1 to 64 fragments"));
  if (fragment >= fragments)
    return set_malformed (error, _("a fragment number is past the last fragment"));
  return TRUE;
}

/* The floor is the oldest message the sender still waits for, so it cannot be past the
 * message that carries it. */
static gboolean
check_floor (guint64   msg_id,
             guint64   floor,
             GError  **error)
{
  if (floor > msg_id)
    return set_malformed (error, _("a message names a floor past its own id"));
  return TRUE;
}

GBytes *
gchat_datagram_build_data (guint64        msg_id,
                           guint64        floor,
                           guint16        fragment,
                           guint16        fragments,
                           const guint8  *text,
                           gsize          text_len,
                           GError       **error)
{
  gsize len;
  guint8 *body;

  g_return_val_if_fail (text != NULL || text_len == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!check_fragment (fragment, fragments, error) || !check_floor (msg_id, floor, error))
    return NULL;
  if (text_len > DATA_MAX_TEXT)
    {
      g_set_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_TOO_LARGE,
                   _("A fragment of %zu bytes of text is larger than the "
                     "limit of %u"), text_len, (guint) DATA_MAX_TEXT);
      return NULL;
    }
  len = GCHAT_DATAGRAM_DATA_HEADER_SIZE + text_len;
  body = gchat_wiped_buffer_new (len);
  put_u64 (body, msg_id);
  put_u64 (body + 8, floor);
  put_u16 (body + 16, fragment);
  put_u16 (body + 18, fragments);
  if (text_len > 0)
    memcpy (body + GCHAT_DATAGRAM_DATA_HEADER_SIZE, text, text_len);
  return gchat_wiped_buffer_to_bytes (body, len);
}

gboolean
gchat_datagram_parse_data (const guint8       *data,
                           gsize               len,
                           GchatDatagramData  *out,
                           GError            **error)
{
  guint64 msg_id, floor;
  guint16 fragment, fragments;

  g_return_val_if_fail (data != NULL || len == 0, FALSE);
  g_return_val_if_fail (out != NULL, FALSE);

  if (len < GCHAT_DATAGRAM_DATA_HEADER_SIZE)
    return set_malformed (error, _("a data body is too short"));
  if (len > GCHAT_DATAGRAM_MAX_BODY)
    return set_malformed (error, _("a data body is too long"));
  msg_id = get_u64 (data);
  floor = get_u64 (data + 8);
  fragment = get_u16 (data + 16);
  fragments = get_u16 (data + 18);
  if (!check_fragment (fragment, fragments, error) || !check_floor (msg_id, floor, error))
    return FALSE;

  out->msg_id = msg_id;
  out->floor = floor;
  out->fragment = fragment;
  out->fragments = fragments;
  out->text = data + GCHAT_DATAGRAM_DATA_HEADER_SIZE;
  out->text_len = len - GCHAT_DATAGRAM_DATA_HEADER_SIZE;
  return TRUE;
}

GBytes *
gchat_datagram_build_ack (const guint64  *msg_ids,
                          guint           count,
                          GError        **error)
{
  gsize len = 1 + 8 * (gsize) count;
  guint8 *body;

  g_return_val_if_fail (msg_ids != NULL || count == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (count > GCHAT_DATAGRAM_MAX_ACK_IDS)
    {
      g_set_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_TOO_LARGE,
                   _("An ack names at most %u messages, not %u"),
                   (guint) GCHAT_DATAGRAM_MAX_ACK_IDS, count);
      return NULL;
    }
  body = gchat_wiped_buffer_new (len);
  body[0] = (guint8) count;
  for (guint i = 0; i < count; i++)
    put_u64 (body + 1 + 8 * i, msg_ids[i]);
  return gchat_wiped_buffer_to_bytes (body, len);
}

gboolean
gchat_datagram_parse_ack (const guint8  *data,
                          gsize          len,
                          guint64        msg_ids[GCHAT_DATAGRAM_MAX_ACK_IDS],
                          guint         *count,
                          GError       **error)
{
  guint n;

  g_return_val_if_fail (data != NULL || len == 0, FALSE);
  g_return_val_if_fail (msg_ids != NULL, FALSE);
  g_return_val_if_fail (count != NULL, FALSE);

  if (len < 1)
    return set_malformed (error, _("an ack body is empty"));
  n = data[0];
  if (n > GCHAT_DATAGRAM_MAX_ACK_IDS)
    return set_malformed (error, _("an ack names more than 64 messages"));
  if (len != 1 + 8 * (gsize) n)
    return set_malformed (error, _("an ack body does not match its count"));

  for (guint i = 0; i < n; i++)
    msg_ids[i] = get_u64 (data + 1 + 8 * i);
  *count = n;
  return TRUE;
}

/* ---- Endpoint bodies ---- */

static gsize
endpoint_address_size (guint8 family)
{
  return family == 4 ? 4 : family == 6 ? 16 : 0;
}

static gboolean
check_endpoint (const GchatDatagramEndpoint  *endpoint,
                GError                      **error)
{
  if (endpoint_address_size (endpoint->family) == 0)
    return set_malformed (error, _("an endpoint is neither IPv4 nor IPv6"));
  if (endpoint->port == 0)
    return set_malformed (error, _("an endpoint has port 0"));
  return TRUE;
}

/* Everything the sender's own data must satisfy before it becomes an endpoint body. */
static gboolean
check_endpoint_args (const char                   *user,
                     const GchatDatagramEndpoint  *endpoints,
                     guint                         n_endpoints,
                     GError                      **error)
{
  if (!check_name (user, error))
    return FALSE;
  if (!g_utf8_validate (user, -1, NULL))
    {
      g_set_error_literal (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_INVALID_NAME,
                           _("A user name must be valid UTF-8"));
      return FALSE;
    }
  if (n_endpoints > GCHAT_DATAGRAM_MAX_ENDPOINTS)
    {
      g_set_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_TOO_LARGE,
                   _("An endpoint datagram lists at most %u endpoints, not %u"),
                   (guint) GCHAT_DATAGRAM_MAX_ENDPOINTS, n_endpoints);
      return FALSE;
    }
  for (guint i = 0; i < n_endpoints; i++)
    if (!check_endpoint (&endpoints[i], error))
      return FALSE;
  return TRUE;
}

GBytes *
gchat_datagram_build_endpoint (const char                   *user,
                               const GchatDatagramEndpoint  *endpoints,
                               guint                         n_endpoints,
                               GError                      **error)
{
  g_autoptr(GByteArray) body = NULL;
  guint8 byte;

  g_return_val_if_fail (user != NULL, NULL);
  g_return_val_if_fail (endpoints != NULL || n_endpoints == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!check_endpoint_args (user, endpoints, n_endpoints, error))
    return NULL;

  body = g_byte_array_new ();
  byte = (guint8) strlen (user);
  g_byte_array_append (body, &byte, 1);
  g_byte_array_append (body, (const guint8 *) user, byte);
  byte = (guint8) n_endpoints;
  g_byte_array_append (body, &byte, 1);
  for (guint i = 0; i < n_endpoints; i++)
    {
      guint8 port[2];

      g_byte_array_append (body, &endpoints[i].family, 1);
      g_byte_array_append (body, endpoints[i].address, endpoint_address_size (endpoints[i].family));
      put_u16 (port, endpoints[i].port);
      g_byte_array_append (body, port, 2);
    }
  return g_byte_array_free_to_bytes (g_steal_pointer (&body));
}

static gboolean
read_endpoint (Reader                 *reader,
               GchatDatagramEndpoint  *endpoint,
               GError                **error)
{
  const guint8 *family = reader_take (reader, 1);
  const guint8 *address, *port;
  gsize size;

  if (family == NULL)
    return set_malformed (error, _("an endpoint body ends early"));
  size = endpoint_address_size (*family);
  if (size == 0)
    return set_malformed (error, _("an endpoint is neither IPv4 nor IPv6"));
  address = reader_take (reader, size);
  port = reader_take (reader, 2);
  if (address == NULL || port == NULL)
    return set_malformed (error, _("an endpoint body ends early"));

  memset (endpoint, 0, sizeof *endpoint);
  endpoint->family = *family;
  memcpy (endpoint->address, address, size);
  endpoint->port = get_u16 (port);
  return check_endpoint (endpoint, error);
}

gboolean
gchat_datagram_parse_endpoint (const guint8           *data,
                               gsize                   len,
                               char                  **user,
                               GchatDatagramEndpoint  *endpoints,
                               guint                  *n_endpoints,
                               GError                **error)
{
  Reader reader = { data, len, 0 };
  const guint8 *name_len, *name, *count;

  g_return_val_if_fail (data != NULL || len == 0, FALSE);
  g_return_val_if_fail (user != NULL && endpoints != NULL && n_endpoints != NULL, FALSE);

  name_len = reader_take (&reader, 1);
  if (name_len == NULL || *name_len == 0 || *name_len > GCHAT_USER_NAME_MAX)
    return set_malformed (error, _("an endpoint body has no valid user name"));
  name = reader_take (&reader, *name_len);
  /* g_utf8_validate_len() also refuses NUL bytes, which would cut the name short. */
  if (name == NULL || !g_utf8_validate_len ((const char *) name, *name_len, NULL))
    return set_malformed (error, _("an endpoint body has no valid user name"));
  count = reader_take (&reader, 1);
  if (count == NULL || *count > GCHAT_DATAGRAM_MAX_ENDPOINTS)
    return set_malformed (error, _("an endpoint body lists more than 8 endpoints"));
  for (guint i = 0; i < *count; i++)
    if (!read_endpoint (&reader, &endpoints[i], error))
      return FALSE;
  if (reader.pos != len)
    return set_malformed (error, _("an endpoint body has bytes after its last endpoint"));

  *user = g_strndup ((const char *) name, *name_len);
  *n_endpoints = *count;
  return TRUE;
}

/* A dual-stack socket shows IPv4 peers as ::ffff:a.b.c.d; those are IPv4 endpoints. */
static gboolean
is_v4_mapped (const guint8 *bytes)
{
  static const guint8 prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

  return memcmp (bytes, prefix, sizeof prefix) == 0;
}

gboolean
gchat_datagram_endpoint_from_address (GInetSocketAddress     *address,
                                      GchatDatagramEndpoint  *endpoint,
                                      GError                **error)
{
  GInetAddress *inet;
  const guint8 *bytes;

  g_return_val_if_fail (G_IS_INET_SOCKET_ADDRESS (address), FALSE);
  g_return_val_if_fail (endpoint != NULL, FALSE);

  inet = g_inet_socket_address_get_address (address);
  bytes = g_inet_address_to_bytes (inet);
  memset (endpoint, 0, sizeof *endpoint);
  endpoint->port = g_inet_socket_address_get_port (address);
  if (g_inet_address_get_family (inet) == G_SOCKET_FAMILY_IPV4)
    {
      endpoint->family = 4;
      memcpy (endpoint->address, bytes, 4);
    }
  else if (is_v4_mapped (bytes))
    {
      endpoint->family = 4;
      memcpy (endpoint->address, bytes + 12, 4);
    }
  else
    {
      endpoint->family = 6;
      memcpy (endpoint->address, bytes, 16);
    }
  return check_endpoint (endpoint, error);
}

GSocketAddress *
gchat_datagram_endpoint_to_address (const GchatDatagramEndpoint *endpoint)
{
  g_autoptr(GInetAddress) inet = NULL;

  g_return_val_if_fail (endpoint != NULL, NULL);
  g_return_val_if_fail (endpoint->family == 4 || endpoint->family == 6, NULL);

  inet = g_inet_address_new_from_bytes (endpoint->address, endpoint->family == 4
                                                           ? G_SOCKET_FAMILY_IPV4
                                                           : G_SOCKET_FAMILY_IPV6);
  return g_inet_socket_address_new (inet, endpoint->port);
}

/* ---- Fragments ---- */

GPtrArray *
gchat_datagram_split_text (guint64      msg_id,
                           guint64      floor,
                           const char  *text,
                           gsize        len,
                           gsize        max_body,
                           GError     **error)
{
  g_autoptr(GPtrArray) bodies = NULL;
  gsize chunk, n;

  g_return_val_if_fail (text != NULL || len == 0, NULL);
  g_return_val_if_fail (max_body > GCHAT_DATAGRAM_DATA_HEADER_SIZE, NULL);
  g_return_val_if_fail (max_body <= GCHAT_DATAGRAM_MAX_BODY, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  chunk = max_body - GCHAT_DATAGRAM_DATA_HEADER_SIZE;
  n = len == 0 ? 1 : (len - 1) / chunk + 1;
  if (len > GCHAT_DATAGRAM_MAX_TEXT || n > GCHAT_DATAGRAM_MAX_FRAGMENTS)
    {
      g_set_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_TOO_LARGE,
                   _("A message of %zu bytes is larger than the limit of %u"),
                   len,
                   (guint) MIN (GCHAT_DATAGRAM_MAX_TEXT, GCHAT_DATAGRAM_MAX_FRAGMENTS * chunk));
      return NULL;
    }
  if (len > 0 && !g_utf8_validate_len (text, len, NULL))
    {
      g_set_error_literal (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_MALFORMED,
                           _("A message must be valid UTF-8 text without NUL characters"));
      return NULL;
    }

  bodies = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  for (gsize i = 0; i < n; i++)
    {
      gsize offset = i * chunk;
      GBytes *body = gchat_datagram_build_data (msg_id, floor, (guint16) i, (guint16) n,
                                                (const guint8 *) text + offset,
                                                MIN (chunk, len - offset), error);
      if (body == NULL)
        return NULL;
      g_ptr_array_add (bodies, body);
    }
  return g_steal_pointer (&bodies);
}

GchatDatagramReassembler *
gchat_datagram_reassembler_new (guint64 msg_id)
{
  GchatDatagramReassembler *self = g_new0 (GchatDatagramReassembler, 1);

  self->msg_id = msg_id;
  return self;
}

void
gchat_datagram_reassembler_free (GchatDatagramReassembler *self)
{
  if (self == NULL)
    return;
  for (guint i = 0; i < G_N_ELEMENTS (self->pieces); i++)
    g_clear_pointer (&self->pieces[i], g_bytes_unref);
  g_free (self);
}

gboolean
gchat_datagram_reassembler_add (GchatDatagramReassembler  *self,
                                const GchatDatagramData   *fragment,
                                GError                   **error)
{
  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (fragment != NULL, FALSE);
  g_return_val_if_fail (fragment->text != NULL || fragment->text_len == 0, FALSE);

  if (!check_fragment (fragment->fragment, fragment->fragments, error))
    return FALSE;
  if (fragment->msg_id != self->msg_id
      || (self->fragments != 0 && fragment->fragments != self->fragments))
    {
      g_set_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_INCONSISTENT,
                   _("A fragment of message %" PRIu64 " disagrees with the "
                     "fragments before it"), fragment->msg_id);
      return FALSE;
    }
  /* A retransmitted fragment may arrive twice; the first copy counts. */
  if (self->pieces[fragment->fragment] != NULL)
    return TRUE;
  if (fragment->text_len > GCHAT_DATAGRAM_MAX_TEXT - self->total)
    {
      g_set_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_TOO_LARGE,
                   _("Message %" PRIu64 " is larger than the limit of %u bytes"),
                   self->msg_id, (guint) GCHAT_DATAGRAM_MAX_TEXT);
      return FALSE;
    }

  self->pieces[fragment->fragment] = gchat_bytes_new_wiped (fragment->text, fragment->text_len);
  self->fragments = fragment->fragments;
  self->received++;
  self->total += fragment->text_len;
  return TRUE;
}

gboolean
gchat_datagram_reassembler_is_complete (GchatDatagramReassembler *self)
{
  g_return_val_if_fail (self != NULL, FALSE);

  return self->fragments != 0 && self->received == self->fragments;
}

GBytes *
gchat_datagram_reassembler_finish (GchatDatagramReassembler  *self,
                                   GError                   **error)
{
  guint8 *text;
  gsize pos = 0;

  g_return_val_if_fail (gchat_datagram_reassembler_is_complete (self), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  text = gchat_wiped_buffer_new (self->total);
  for (guint i = 0; i < self->fragments; i++)
    {
      gsize size;
      const guint8 *piece = g_bytes_get_data (self->pieces[i], &size);

      if (size > 0)
        memcpy (text + pos, piece, size);
      pos += size;
    }
  if (self->total > 0 && !g_utf8_validate_len ((const char *) text, self->total, NULL))
    {
      gchat_wiped_buffer_free (text);
      g_set_error_literal (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_MALFORMED,
                           _("The peer sent a message that is not valid UTF-8 text"));
      return NULL;
    }
  return gchat_wiped_buffer_to_bytes (text, self->total);
}
