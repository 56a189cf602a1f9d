/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Protocol messages: JSON objects checked against a fixed schema on the way in and out. */

#pragma once

#include <glib-object.h>

G_BEGIN_DECLS

#define GCHAT_MESSAGE_ERROR (gchat_message_error_quark ())

typedef enum {
  GCHAT_MESSAGE_ERROR_SYNTAX,        /* not UTF-8, not JSON, not an object, nested too deep */
  GCHAT_MESSAGE_ERROR_UNKNOWN_TYPE,  /* "type" missing, not a string or not a known type */
  GCHAT_MESSAGE_ERROR_MISSING_FIELD, /* a required field is absent */
  GCHAT_MESSAGE_ERROR_FIELD_TYPE,    /* a field has the wrong JSON type */
  GCHAT_MESSAGE_ERROR_TOO_LONG,      /* a string, list or whole message over its limit */
  GCHAT_MESSAGE_ERROR_OUT_OF_RANGE,  /* a number outside its range, bytes of the wrong size */
} GchatMessageError;

/* Every message type of protocol version 1. PROTOCOL.md lists the fields of each. */
typedef enum {
  /* client to server */
  GCHAT_MESSAGE_SIGN,
  GCHAT_MESSAGE_AUTH,
  GCHAT_MESSAGE_LIST,
  GCHAT_MESSAGE_TALK,
  GCHAT_MESSAGE_LOGOUT,
  GCHAT_MESSAGE_PING,
  GCHAT_MESSAGE_RELAY,
  GCHAT_MESSAGE_POST,
  GCHAT_MESSAGE_MAIL_ACK,
  GCHAT_MESSAGE_RECEIPT_ACK,
  /* server to client */
  GCHAT_MESSAGE_RESULT,
  GCHAT_MESSAGE_USERS,
  GCHAT_MESSAGE_PRESENCE,
  GCHAT_MESSAGE_PAIR_KEY,
  GCHAT_MESSAGE_ERROR_MSG,
  GCHAT_MESSAGE_BYE,
  GCHAT_MESSAGE_PONG,
  GCHAT_MESSAGE_RELAYED,
  GCHAT_MESSAGE_MAIL,
  GCHAT_MESSAGE_RECEIPT,
  GCHAT_N_MESSAGE_TYPES
} GchatMessageType;

/* Field value kinds. */
typedef enum {
  GCHAT_FIELD_STRING,
  GCHAT_FIELD_INT,
  GCHAT_FIELD_BOOL,
  GCHAT_FIELD_STRING_LIST,
  GCHAT_FIELD_BYTES,       /* base64 in JSON */
} GchatFieldKind;

/* Limits shared with the server and clients. */
#define GCHAT_MESSAGE_MAX_SIZE      (256 * 1024)
#define GCHAT_MESSAGE_MAX_DEPTH     4
#define GCHAT_USER_NAME_MAX         32
#define GCHAT_PASSWORD_MIN          8
#define GCHAT_PASSWORD_MAX          1024
#define GCHAT_TEXT_MAX              (64 * 1024)
#define GCHAT_USER_LIST_MAX         5000  /* longer lists go in several messages */
#define GCHAT_REASON_MAX            512
/* "203.0.113.7:4000" or "[2001:db8::1]:4000"; the observed endpoint, then up to 8 local ones. */
#define GCHAT_ENDPOINT_MAX          64
#define GCHAT_ENDPOINT_LIST_MAX     9
/* A sealed peer datagram the server relays (PROTOCOL.md §7.2, §7.3): 32 to 1200 bytes. */
#define GCHAT_RELAY_DATAGRAM_MIN    32
#define GCHAT_RELAY_DATAGRAM_MAX    1200
/* Ids and times in messages stay within what any JSON reader holds exactly: 2^53 - 1. */
#define GCHAT_MESSAGE_MAX_SAFE_INT  ((G_GINT64_CONSTANT (1) << 53) - 1)

typedef struct _GchatMessage GchatMessage;

#define GCHAT_TYPE_MESSAGE (gchat_message_get_type ())

GType             gchat_message_get_type         (void) G_GNUC_CONST;
GQuark            gchat_message_error_quark      (void);

const char       *gchat_message_type_to_string   (GchatMessageType  type);
/* Returns FALSE for an unknown name. */
gboolean          gchat_message_type_from_string (const char       *name,
                                                  GchatMessageType *type);

GchatMessage     *gchat_message_new              (GchatMessageType  type);
GchatMessage     *gchat_message_ref              (GchatMessage     *self);
void              gchat_message_unref            (GchatMessage     *self);

/* Strict decoding of untrusted bytes. Fields not in the schema are ignored and dropped. */
GchatMessage     *gchat_message_decode           (const guint8     *data,
                                                  gsize             len,
                                                  GError          **error);
/* Fails when a required field was never set. */
GBytes           *gchat_message_encode           (GchatMessage     *self,
                                                  GError          **error);

GchatMessageType  gchat_message_get_message_type (GchatMessage     *self);
gboolean          gchat_message_has_field        (GchatMessage     *self,
                                                  const char       *field);

/* Setters check, as programming errors, that @field belongs to the type with this kind. The
 * value limits are checked by gchat_message_encode(). */
void              gchat_message_set_string       (GchatMessage     *self,
                                                  const char       *field,
                                                  const char       *value);
void              gchat_message_set_int          (GchatMessage     *self,
                                                  const char       *field,
                                                  gint64            value);
void              gchat_message_set_bool         (GchatMessage     *self,
                                                  const char       *field,
                                                  gboolean          value);
void              gchat_message_set_strv         (GchatMessage     *self,
                                                  const char       *field,
                                                  const char * const *value);
void              gchat_message_set_bytes        (GchatMessage     *self,
                                                  const char       *field,
                                                  const guint8     *data,
                                                  gsize             len);

/* Getters return the default (NULL, 0, FALSE) for an absent optional field. */
const char       *gchat_message_get_string       (GchatMessage     *self,
                                                  const char       *field);
gint64            gchat_message_get_int          (GchatMessage     *self,
                                                  const char       *field);
gboolean          gchat_message_get_bool         (GchatMessage     *self,
                                                  const char       *field);
/* A new NULL-terminated array, or NULL when absent. */
char            **gchat_message_dup_strv         (GchatMessage     *self,
                                                  const char       *field);
/* The decoded bytes, owned by the message (transfer none), or NULL when absent. */
GBytes           *gchat_message_get_bytes        (GchatMessage     *self,
                                                  const char       *field);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (GchatMessage, gchat_message_unref)

G_END_DECLS
