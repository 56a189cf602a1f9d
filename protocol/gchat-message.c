/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Protocol messages: strict JSON checked field by field against a declarative schema. */

#include "config.h"

#include <inttypes.h>
#include <string.h>
#include <glib/gi18n-lib.h>
#include <json-glib/json-glib.h>

#include "gchat-crypto.h"
#include "gchat-handshake.h"
#include "gchat-json.h"
#include "gchat-message.h"

/* One field of a message type. The meaning of the limits depends on the kind:
 *   STRING       min, max: length in bytes
 *   INT          min, max: value
 *   BOOL         none
 *   STRING_LIST  max: number of items; item_min, item_max: length of each item in bytes
 *   BYTES        min, max: decoded size in bytes (equal for an exact size) */
typedef struct
{
  const char     *name;
  GchatFieldKind  kind;
  gboolean        required;
  gint64          min;
  gint64          max;
  gint64          item_min;
  gint64          item_max;
} FieldSpec;

typedef struct
{
  const char      *name;
  const FieldSpec *fields;
  guint            n_fields;
} TypeSpec;

#define REQUIRED TRUE
#define OPTIONAL FALSE

#define FIELD_STRING(name, req, min, max) { name, GCHAT_FIELD_STRING, req, min, max, 0, 0 }
#define FIELD_INT(name, req, min, max)    { name, GCHAT_FIELD_INT, req, min, max, 0, 0 }
#define FIELD_BOOL(name, req)             { name, GCHAT_FIELD_BOOL, req, 0, 0, 0, 0 }
#define FIELD_STRING_LIST(name, req, max_items, item_min, item_max) \
  { name, GCHAT_FIELD_STRING_LIST, req, 0, max_items, item_min, item_max }
#define FIELD_BYTES(name, req, min, max)  { name, GCHAT_FIELD_BYTES, req, min, max, 0, 0 }

/* Fields that many types share. */
#define ID_FIELD           FIELD_INT ("id", OPTIONAL, 0, G_MAXINT32)
#define USER_FIELD(req)    FIELD_STRING ("user", req, 1, GCHAT_USER_NAME_MAX)
#define PASSWORD_FIELD     FIELD_STRING ("password", REQUIRED, 1, GCHAT_PASSWORD_MAX)
#define CODE_FIELD(req)    FIELD_STRING ("code", req, 1, 64)
#define REASON_FIELD       FIELD_STRING ("message", OPTIONAL, 0, GCHAT_REASON_MAX)
#define USER_LIST(name, req) \
  FIELD_STRING_LIST (name, req, GCHAT_USER_LIST_MAX, 1, GCHAT_USER_NAME_MAX)

#define MAX_SAFE_INTEGER GCHAT_MESSAGE_MAX_SAFE_INT
#define SAFE_INT_FIELD(name) FIELD_INT (name, REQUIRED, 0, MAX_SAFE_INTEGER)
/* A sender's message id: a conversation id (epoch:u31 || number:u32, PROTOCOL.md §7.2) or
 * the client's own id, so the full signed 64-bit range. */
#define MSG_ID_FIELD FIELD_INT ("msg_id", REQUIRED, 0, G_MAXINT64)
#define DATAGRAM_FIELD \
  FIELD_BYTES ("datagram", REQUIRED, GCHAT_RELAY_DATAGRAM_MIN, GCHAT_RELAY_DATAGRAM_MAX)
/* BYTES rather than STRING: base64 grows a text by a third whatever it holds, where JSON
 * escaping could grow it six times and push a 64 KiB text past the largest message. */
#define TEXT_FIELD FIELD_BYTES ("text", REQUIRED, 1, GCHAT_TEXT_MAX)

/* The schema of protocol version 1. PROTOCOL.md describes the same types and fields: change
 * both together, and never loosen a limit the peer's version still enforces. */
static const FieldSpec id_only_fields[] = {
  ID_FIELD,
};

static const FieldSpec credentials_fields[] = {
  USER_FIELD (REQUIRED),
  PASSWORD_FIELD,
  ID_FIELD,
};

static const FieldSpec talk_fields[] = {
  USER_FIELD (REQUIRED),
  /* The key id the client wants replaced: the server then issues a fresh key. */
  FIELD_INT ("replace", OPTIONAL, 1, G_MAXUINT32),
  ID_FIELD,
};

static const FieldSpec relay_fields[] = {
  FIELD_STRING ("to", REQUIRED, 1, GCHAT_USER_NAME_MAX),
  DATAGRAM_FIELD,
  ID_FIELD,
};

static const FieldSpec post_fields[] = {
  FIELD_STRING ("to", REQUIRED, 1, GCHAT_USER_NAME_MAX),
  MSG_ID_FIELD,
  TEXT_FIELD,
  ID_FIELD,
};

static const FieldSpec mail_ack_fields[] = {
  SAFE_INT_FIELD ("mail_id"),
  ID_FIELD,
};

static const FieldSpec receipt_ack_fields[] = {
  SAFE_INT_FIELD ("receipt_id"),
  ID_FIELD,
};

static const FieldSpec result_fields[] = {
  ID_FIELD,
  FIELD_STRING ("request", REQUIRED, 1, 16),
  FIELD_BOOL ("ok", REQUIRED),
  CODE_FIELD (OPTIONAL),
  REASON_FIELD,
  FIELD_INT ("retry_after", OPTIONAL, 0, 86400),
  USER_FIELD (OPTIONAL),
  FIELD_INT ("endpoint_id", OPTIONAL, 1, G_MAXUINT32),
  FIELD_INT ("mail_id", OPTIONAL, 0, MAX_SAFE_INTEGER),
  /* In a successful answer to `sign`, `auth` or `resume` (PROTOCOL.md §3.5): a resumption
   * ticket, its secret and when it expires. */
  FIELD_BYTES ("resume", OPTIONAL, GCHAT_TICKET_MIN_SIZE, GCHAT_TICKET_MAX_SIZE),
  FIELD_BYTES ("resume_secret", OPTIONAL, GCHAT_RESUME_SECRET_SIZE, GCHAT_RESUME_SECRET_SIZE),
  FIELD_INT ("resume_expires", OPTIONAL, 0, MAX_SAFE_INTEGER),
};

static const FieldSpec users_fields[] = {
  ID_FIELD,
  USER_LIST ("users", REQUIRED),
  FIELD_BOOL ("more", OPTIONAL),
};

static const FieldSpec presence_fields[] = {
  USER_LIST ("joined", OPTIONAL),
  USER_LIST ("left", OPTIONAL),
};

static const FieldSpec pair_key_fields[] = {
  ID_FIELD,
  USER_FIELD (REQUIRED),
  FIELD_INT ("key_id", REQUIRED, 0, G_MAXUINT32),
  FIELD_BYTES ("key", REQUIRED, 32, 32),
  FIELD_INT ("expires", REQUIRED, 0, MAX_SAFE_INTEGER),
  FIELD_STRING_LIST ("endpoints", OPTIONAL, GCHAT_ENDPOINT_LIST_MAX, 1, GCHAT_ENDPOINT_MAX),
};

static const FieldSpec error_fields[] = {
  ID_FIELD,
  CODE_FIELD (REQUIRED),
  REASON_FIELD,
};

static const FieldSpec bye_fields[] = {
  CODE_FIELD (REQUIRED),
  REASON_FIELD,
};

static const FieldSpec relayed_fields[] = {
  FIELD_STRING ("from", REQUIRED, 1, GCHAT_USER_NAME_MAX),
  DATAGRAM_FIELD,
};

static const FieldSpec mail_fields[] = {
  SAFE_INT_FIELD ("mail_id"),
  FIELD_STRING ("from", REQUIRED, 1, GCHAT_USER_NAME_MAX),
  MSG_ID_FIELD,
  TEXT_FIELD,
  SAFE_INT_FIELD ("queued"),
};

static const FieldSpec receipt_fields[] = {
  SAFE_INT_FIELD ("receipt_id"),
  USER_FIELD (REQUIRED),
  MSG_ID_FIELD,
  SAFE_INT_FIELD ("delivered"),
};

#define TYPE(name, fields) { name, fields, G_N_ELEMENTS (fields) }
#define TYPE_EMPTY(name)   { name, NULL, 0 }

static const TypeSpec message_types[GCHAT_N_MESSAGE_TYPES] = {
  [GCHAT_MESSAGE_SIGN] = TYPE ("sign", credentials_fields),
  [GCHAT_MESSAGE_AUTH] = TYPE ("auth", credentials_fields),
  [GCHAT_MESSAGE_LIST] = TYPE ("list", id_only_fields),
  [GCHAT_MESSAGE_TALK] = TYPE ("talk", talk_fields),
  [GCHAT_MESSAGE_LOGOUT] = TYPE_EMPTY ("logout"),
  [GCHAT_MESSAGE_PING] = TYPE ("ping", id_only_fields),
  [GCHAT_MESSAGE_RELAY] = TYPE ("relay", relay_fields),
  [GCHAT_MESSAGE_POST] = TYPE ("post", post_fields),
  [GCHAT_MESSAGE_MAIL_ACK] = TYPE ("mail-ack", mail_ack_fields),
  [GCHAT_MESSAGE_RECEIPT_ACK] = TYPE ("receipt-ack", receipt_ack_fields),
  [GCHAT_MESSAGE_RESULT] = TYPE ("result", result_fields),
  [GCHAT_MESSAGE_USERS] = TYPE ("users", users_fields),
  [GCHAT_MESSAGE_PRESENCE] = TYPE ("presence", presence_fields),
  [GCHAT_MESSAGE_PAIR_KEY] = TYPE ("pair-key", pair_key_fields),
  [GCHAT_MESSAGE_ERROR_MSG] = TYPE ("error", error_fields),
  [GCHAT_MESSAGE_BYE] = TYPE ("bye", bye_fields),
  [GCHAT_MESSAGE_PONG] = TYPE ("pong", id_only_fields),
  [GCHAT_MESSAGE_RELAYED] = TYPE ("relayed", relayed_fields),
  [GCHAT_MESSAGE_MAIL] = TYPE ("mail", mail_fields),
  [GCHAT_MESSAGE_RECEIPT] = TYPE ("receipt", receipt_fields),
};

static const char *const kind_names[] = {
  [GCHAT_FIELD_STRING] = "string",
  [GCHAT_FIELD_INT] = "integer",
  [GCHAT_FIELD_BOOL] = "boolean",
  [GCHAT_FIELD_STRING_LIST] = "string list",
  [GCHAT_FIELD_BYTES] = "bytes",
};

/* A message holds its schema fields in wire form in @fields, after a first member "type", so
 * that the object is exactly what gets sent. BYTES fields are held twice: as base64 there and
 * decoded in @bytes (indexed like the type's fields), so that gchat_message_get_bytes() can
 * return bytes the message owns.
 *
 * Passwords and keys pass through messages, so every string a message owns is overwritten
 * before it is freed, and decoded bytes are overwritten when their last reference goes. That
 * cannot cover the copies made outside the message: the caller's input buffer and encoded
 * output, and the scanner buffers json-glib frees without wiping while parsing or generating. */
struct _GchatMessage
{
  gatomicrefcount   ref_count;
  GchatMessageType  type;
  JsonObject       *fields;
  GBytes          **bytes;
};

G_DEFINE_QUARK (gchat-message-error-quark, gchat_message_error)
G_DEFINE_BOXED_TYPE (GchatMessage, gchat_message, gchat_message_ref, gchat_message_unref)

static const FieldSpec *
find_field (const TypeSpec *type,
            const char     *name)
{
  for (guint i = 0; i < type->n_fields; i++)
    if (strcmp (type->fields[i].name, name) == 0)
      return &type->fields[i];
  return NULL;
}

static char *
int_to_string (gint64 value)
{
  return g_strdup_printf ("%" PRId64, value);
}

/* Wiping. */

static void
wipe_string (const char *string)
{
  /* The string belongs to a node that is about to be freed or replaced, so writing through the
   * const pointer json-glib hands out is safe. */
  if (string != NULL)
    gchat_memzero ((char *) string, strlen (string));
}

/* Overwrites every string under @node. The depth is bounded by gchat_json_parse(). */
static void
wipe_node (JsonNode *node)
{
  switch (JSON_NODE_TYPE (node))
    {
    case JSON_NODE_VALUE:
      if (json_node_get_value_type (node) == G_TYPE_STRING)
        wipe_string (json_node_get_string (node));
      break;

    case JSON_NODE_ARRAY:
      {
        JsonArray *array = json_node_get_array (node);

        for (guint i = 0; i < json_array_get_length (array); i++)
          wipe_node (json_array_get_element (array, i));
        break;
      }

    case JSON_NODE_OBJECT:
      {
        JsonObject *object = json_node_get_object (node);
        JsonObjectIter iter;
        JsonNode *member;

        json_object_iter_init (&iter, object);
        while (json_object_iter_next (&iter, NULL, &member))
          wipe_node (member);
        break;
      }

    case JSON_NODE_NULL:
    default:
      break;
    }
}

/* Names, references. */

const char *
gchat_message_type_to_string (GchatMessageType type)
{
  g_return_val_if_fail ((guint) type < GCHAT_N_MESSAGE_TYPES, NULL);

  return message_types[type].name;
}

gboolean
gchat_message_type_from_string (const char       *name,
                                GchatMessageType *type)
{
  g_return_val_if_fail (name != NULL, FALSE);

  for (guint i = 0; i < GCHAT_N_MESSAGE_TYPES; i++)
    {
      if (strcmp (message_types[i].name, name) == 0)
        {
          if (type != NULL)
            *type = (GchatMessageType) i;
          return TRUE;
        }
    }
  return FALSE;
}

GchatMessage *
gchat_message_new (GchatMessageType type)
{
  GchatMessage *self;

  g_return_val_if_fail ((guint) type < GCHAT_N_MESSAGE_TYPES, NULL);

  self = g_new0 (GchatMessage, 1);
  g_atomic_ref_count_init (&self->ref_count);
  self->type = type;
  self->fields = json_object_new ();
  json_object_set_string_member (self->fields, "type", message_types[type].name);
  return self;
}

GchatMessage *
gchat_message_ref (GchatMessage *self)
{
  g_return_val_if_fail (self != NULL, NULL);

  g_atomic_ref_count_inc (&self->ref_count);
  return self;
}

void
gchat_message_unref (GchatMessage *self)
{
  const TypeSpec *type;

  g_return_if_fail (self != NULL);

  if (!g_atomic_ref_count_dec (&self->ref_count))
    return;

  type = &message_types[self->type];
  for (guint i = 0; i < type->n_fields; i++)
    {
      JsonNode *node = json_object_get_member (self->fields, type->fields[i].name);

      if (node != NULL)
        wipe_node (node);
      if (self->bytes != NULL)
        g_clear_pointer (&self->bytes[i], g_bytes_unref);
    }
  g_free (self->bytes);
  json_object_unref (self->fields);
  g_free (self);
}

/* Field checks, shared by decoding and encoding. */

/* Says what a field of each kind must look like, for a field of the wrong JSON type. */
static void
set_field_type_error (const TypeSpec   *type,
                      const FieldSpec  *field,
                      GError          **error)
{
  GQuark domain = GCHAT_MESSAGE_ERROR;
  int code = GCHAT_MESSAGE_ERROR_FIELD_TYPE;

  switch (field->kind)
    {
    case GCHAT_FIELD_STRING:
      g_set_error (error, domain, code, _("“%s” message: field “%s” must be a string"),
                   type->name, field->name);
      break;
    case GCHAT_FIELD_INT:
      g_set_error (error, domain, code, _("“%s” message: field “%s” must be an integer"),
                   type->name, field->name);
      break;
    case GCHAT_FIELD_BOOL:
      g_set_error (error, domain, code, _("“%s” message: field “%s” must be true or false"),
                   type->name, field->name);
      break;
    case GCHAT_FIELD_STRING_LIST:
      g_set_error (error, domain, code, _("“%s” message: field “%s” must be a list of strings"),
                   type->name, field->name);
      break;
    case GCHAT_FIELD_BYTES:
      g_set_error (error, domain, code, _("“%s” message: field “%s” must be a base64 string"),
                   type->name, field->name);
      break;
    default:
      g_assert_not_reached ();
    }
}

/* A string field, or an item of a string list, outside its length limits. */
static void
set_length_error (const TypeSpec   *type,
                  const FieldSpec  *field,
                  gboolean          item,
                  gboolean          too_long,
                  gint64            limit,
                  GError          **error)
{
  g_autofree char *bytes = int_to_string (limit);
  GQuark domain = GCHAT_MESSAGE_ERROR;
  const char *name = type->name;

  if (too_long && !item)
    g_set_error (error, domain, GCHAT_MESSAGE_ERROR_TOO_LONG,
                 _("“%s” message: field “%s” is longer than %s bytes"), name, field->name, bytes);
  else if (too_long)
    g_set_error (error, domain, GCHAT_MESSAGE_ERROR_TOO_LONG,
                 _("“%s” message: field “%s” has an item longer than %s bytes"), name,
                 field->name, bytes);
  else if (limit == 1 && !item)
    g_set_error (error, domain, GCHAT_MESSAGE_ERROR_OUT_OF_RANGE,
                 _("“%s” message: field “%s” is empty"), name, field->name);
  else if (limit == 1)
    g_set_error (error, domain, GCHAT_MESSAGE_ERROR_OUT_OF_RANGE,
                 _("“%s” message: field “%s” has an empty item"), name, field->name);
  else if (!item)
    g_set_error (error, domain, GCHAT_MESSAGE_ERROR_OUT_OF_RANGE,
                 _("“%s” message: field “%s” is shorter than %s bytes"), name, field->name,
                 bytes);
  else
    g_set_error (error, domain, GCHAT_MESSAGE_ERROR_OUT_OF_RANGE,
                 _("“%s” message: field “%s” has an item shorter than %s bytes"), name,
                 field->name, bytes);
}

/* Checks a string field, or with @item an item of a string list. Strings from the wire are
 * UTF-8 already; the check is for strings a caller set. */
static gboolean
check_string (const TypeSpec   *type,
              const FieldSpec  *field,
              const char       *value,
              gboolean          item,
              GError          **error)
{
  gint64 min = item ? field->item_min : field->min;
  gint64 max = item ? field->item_max : field->max;
  gsize len = strlen (value);

  if (!g_utf8_validate (value, (gssize) len, NULL))
    {
      g_set_error (error, GCHAT_MESSAGE_ERROR, GCHAT_MESSAGE_ERROR_SYNTAX,
                   _("“%s” message: field “%s” is not valid UTF-8"), type->name, field->name);
      return FALSE;
    }
  if ((gint64) len > max)
    {
      set_length_error (type, field, item, TRUE, max, error);
      return FALSE;
    }
  if ((gint64) len < min)
    {
      set_length_error (type, field, item, FALSE, min, error);
      return FALSE;
    }
  return TRUE;
}

static gboolean
check_int (const TypeSpec   *type,
           const FieldSpec  *field,
           gint64            value,
           GError          **error)
{
  g_autofree char *min = NULL;
  g_autofree char *max = NULL;

  if (value >= field->min && value <= field->max)
    return TRUE;

  min = int_to_string (field->min);
  max = int_to_string (field->max);
  g_set_error (error, GCHAT_MESSAGE_ERROR, GCHAT_MESSAGE_ERROR_OUT_OF_RANGE,
               _("“%s” message: field “%s” must be between %s and %s"), type->name, field->name,
               min, max);
  return FALSE;
}

static gboolean
check_string_list (const TypeSpec   *type,
                   const FieldSpec  *field,
                   JsonArray        *array,
                   GError          **error)
{
  guint n_items = json_array_get_length (array);

  if (n_items > field->max)
    {
      g_autofree char *max = int_to_string (field->max);

      g_set_error (error, GCHAT_MESSAGE_ERROR, GCHAT_MESSAGE_ERROR_TOO_LONG,
                   _("“%s” message: field “%s” has more than %s items"), type->name,
                   field->name, max);
      return FALSE;
    }

  for (guint i = 0; i < n_items; i++)
    {
      JsonNode *item = json_array_get_element (array, i);

      if (json_node_get_value_type (item) != G_TYPE_STRING)
        {
          set_field_type_error (type, field, error);
          return FALSE;
        }
      if (!check_string (type, field, json_node_get_string (item), TRUE, error))
        return FALSE;
    }
  return TRUE;
}

static gboolean
is_base64_char (char c)
{
  return g_ascii_isalnum (c) || c == '+' || c == '/';
}

/* Standard base64 with padding, in canonical form. g_base64_decode() skips anything it does
 * not know, so it cannot be trusted to reject bad input. Returns the decoded size or -1. */
static gssize
base64_decoded_size (const char *text)
{
  static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  gsize len = strlen (text);
  gsize padding = 0;
  gsize data_len;

  if (len % 4 != 0)
    return -1;
  if (len > 0 && text[len - 1] == '=')
    padding = text[len - 2] == '=' ? 2 : 1;
  data_len = len - padding;

  for (gsize i = 0; i < data_len; i++)
    if (!is_base64_char (text[i]))
      return -1;

  /* The bits of the last character that the padding makes unused must be zero, so that each
   * byte string has exactly one encoding. */
  if (padding > 0)
    {
      gsize value = (gsize) (strchr (alphabet, text[data_len - 1]) - alphabet);

      if ((padding == 1 && (value & 0x03) != 0) || (padding == 2 && (value & 0x0f) != 0))
        return -1;
    }
  return (gssize) (len / 4 * 3 - padding);
}

static gboolean
check_bytes (const TypeSpec   *type,
             const FieldSpec  *field,
             const char       *text,
             GError          **error)
{
  gssize size = base64_decoded_size (text);
  g_autofree char *min = NULL;
  g_autofree char *max = NULL;

  if (size < 0)
    {
      g_set_error (error, GCHAT_MESSAGE_ERROR, GCHAT_MESSAGE_ERROR_OUT_OF_RANGE,
                   _("“%s” message: field “%s” is not valid base64"), type->name, field->name);
      return FALSE;
    }
  if (size >= field->min && size <= field->max)
    return TRUE;

  min = int_to_string (field->min);
  max = int_to_string (field->max);
  if (field->min == field->max)
    g_set_error (error, GCHAT_MESSAGE_ERROR, GCHAT_MESSAGE_ERROR_OUT_OF_RANGE,
                 _("“%s” message: field “%s” must hold exactly %s bytes"), type->name,
                 field->name, min);
  else
    g_set_error (error, GCHAT_MESSAGE_ERROR, GCHAT_MESSAGE_ERROR_OUT_OF_RANGE,
                 _("“%s” message: field “%s” must hold between %s and %s bytes"), type->name,
                 field->name, min, max);
  return FALSE;
}

static gboolean
has_json_type (const FieldSpec *field,
               JsonNode        *node)
{
  switch (field->kind)
    {
    case GCHAT_FIELD_STRING:
    case GCHAT_FIELD_BYTES:
      return json_node_get_value_type (node) == G_TYPE_STRING;
    case GCHAT_FIELD_INT:
      /* A number with a fraction or an exponent is a double, even 1.0. */
      return json_node_get_value_type (node) == G_TYPE_INT64;
    case GCHAT_FIELD_BOOL:
      return json_node_get_value_type (node) == G_TYPE_BOOLEAN;
    case GCHAT_FIELD_STRING_LIST:
      return JSON_NODE_HOLDS_ARRAY (node);
    default:
      g_assert_not_reached ();
    }
}

/* Checks one present field: its JSON type, then its limits. Error messages name the message
 * type and the field but never the value, which could be a password. */
static gboolean
check_field (const TypeSpec   *type,
             const FieldSpec  *field,
             JsonNode         *node,
             GError          **error)
{
  if (!has_json_type (field, node))
    {
      set_field_type_error (type, field, error);
      return FALSE;
    }

  switch (field->kind)
    {
    case GCHAT_FIELD_STRING:
      return check_string (type, field, json_node_get_string (node), FALSE, error);
    case GCHAT_FIELD_INT:
      return check_int (type, field, json_node_get_int (node), error);
    case GCHAT_FIELD_BOOL:
      return TRUE;
    case GCHAT_FIELD_STRING_LIST:
      return check_string_list (type, field, json_node_get_array (node), error);
    case GCHAT_FIELD_BYTES:
      return check_bytes (type, field, json_node_get_string (node), error);
    default:
      g_assert_not_reached ();
    }
}

/* Checks the fields of @fields that the schema of @type knows, in the schema's order. */
static gboolean
check_fields (const TypeSpec  *type,
              JsonObject      *fields,
              GError         **error)
{
  for (guint i = 0; i < type->n_fields; i++)
    {
      const FieldSpec *field = &type->fields[i];
      JsonNode *node = json_object_get_member (fields, field->name);

      if (node == NULL)
        {
          if (!field->required)
            continue;
          g_set_error (error, GCHAT_MESSAGE_ERROR, GCHAT_MESSAGE_ERROR_MISSING_FIELD,
                       _("“%s” message: required field “%s” is missing"), type->name,
                       field->name);
          return FALSE;
        }
      if (!check_field (type, field, node, error))
        return FALSE;
    }
  return TRUE;
}

/* Storing fields. */

static void
store_node (GchatMessage    *self,
            const FieldSpec *field,
            JsonNode        *node)
{
  JsonNode *old = json_object_get_member (self->fields, field->name);

  if (old != NULL)
    wipe_node (old);
  if (node != NULL)
    json_object_set_member (self->fields, field->name, node);
  else
    json_object_remove_member (self->fields, field->name);
}

static void
store_bytes (GchatMessage    *self,
             const FieldSpec *field,
             GBytes          *bytes)
{
  const TypeSpec *type = &message_types[self->type];
  gsize index = (gsize) (field - type->fields);

  if (self->bytes == NULL)
    self->bytes = g_new0 (GBytes *, type->n_fields);
  g_clear_pointer (&self->bytes[index], g_bytes_unref);
  self->bytes[index] = bytes;
}

static JsonNode *
string_node_new (const char *value)
{
  return json_node_init_string (json_node_alloc (), value);
}

/* A fresh node holding the value of @node, which has the JSON type of @field. The parse tree
 * is wiped and dropped afterwards, so nothing may be shared with it. */
static JsonNode *
copy_value (const FieldSpec *field,
            JsonNode        *node)
{
  switch (field->kind)
    {
    case GCHAT_FIELD_STRING:
    case GCHAT_FIELD_BYTES:
      return string_node_new (json_node_get_string (node));
    case GCHAT_FIELD_INT:
      return json_node_init_int (json_node_alloc (), json_node_get_int (node));
    case GCHAT_FIELD_BOOL:
      return json_node_init_boolean (json_node_alloc (), json_node_get_boolean (node));
    case GCHAT_FIELD_STRING_LIST:
      {
        JsonArray *from = json_node_get_array (node);
        JsonArray *to = json_array_sized_new (json_array_get_length (from));
        JsonNode *copy = json_node_alloc ();

        for (guint i = 0; i < json_array_get_length (from); i++)
          json_array_add_string_element (to, json_array_get_string_element (from, i));
        json_node_init_array (copy, to);
        json_array_unref (to);
        return copy;
      }
    default:
      g_assert_not_reached ();
    }
}

/* Decodes base64 that check_bytes() accepted into a buffer that is wiped when freed. */
static GBytes *
decode_base64 (const char *text)
{
  gsize text_len = strlen (text);
  guint8 *buffer = gchat_wiped_buffer_new (text_len / 4 * 3 + 3);
  gint state = 0;
  guint save = 0;
  gsize len = g_base64_decode_step (text, text_len, buffer, &state, &save);

  return gchat_wiped_buffer_to_bytes (buffer, len);
}

/* Decoding. */

/* Says what gchat_json_parse() refused, in this codec's words: json-glib's and the checker's
 * own messages never reach a peer, which gets a byte offset at most. */
static void
set_json_error (const guint8  *data,
                gsize          len,
                gsize          offset,
                const GError  *json_error,
                GError       **error)
{
  GQuark domain = GCHAT_MESSAGE_ERROR;
  int code = GCHAT_MESSAGE_ERROR_SYNTAX;

  switch (json_error->code)
    {
    case GCHAT_JSON_ERROR_ENCODING:
      if (offset < len && data[offset] == '\0')
        g_set_error_literal (error, domain, code, _("The message contains a NUL byte"));
      else
        g_set_error_literal (error, domain, code, _("The message is not valid UTF-8"));
      break;
    case GCHAT_JSON_ERROR_TOO_DEEP:
      g_set_error (error, domain, code, _("The message is nested deeper than %d levels"),
                   GCHAT_MESSAGE_MAX_DEPTH);
      break;
    case GCHAT_JSON_ERROR_DUPLICATE_MEMBER:
      g_set_error_literal (error, domain, code,
                           _("The message has two members with the same name"));
      break;
    default:
      g_set_error (error, domain, code, _("The message is not valid JSON (at byte %lu)"),
                   (gulong) offset);
      break;
    }
}

/* Parses strict JSON no larger than a message. Returns the parser, which owns the tree. */
static JsonParser *
parse_json (const guint8  *data,
            gsize          len,
            GError       **error)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) json_error = NULL;
  gsize offset = 0;

  if (len > GCHAT_MESSAGE_MAX_SIZE)
    {
      g_set_error (error, GCHAT_MESSAGE_ERROR, GCHAT_MESSAGE_ERROR_TOO_LONG,
                   _("The message is larger than %d bytes"), GCHAT_MESSAGE_MAX_SIZE);
      return NULL;
    }
  if (!gchat_json_parse (parser, (const char *) data, len, GCHAT_MESSAGE_MAX_DEPTH, 0, &offset,
                         &json_error))
    {
      set_json_error (data, len, offset, json_error, error);
      return NULL;
    }
  return g_steal_pointer (&parser);
}

static gboolean
lookup_type (JsonObject        *root,
             GchatMessageType  *type,
             GError           **error)
{
  JsonNode *node = json_object_get_member (root, "type");

  if (node == NULL)
    {
      g_set_error_literal (error, GCHAT_MESSAGE_ERROR, GCHAT_MESSAGE_ERROR_UNKNOWN_TYPE,
                           _("The message has no “type”"));
      return FALSE;
    }
  if (json_node_get_value_type (node) != G_TYPE_STRING)
    {
      g_set_error_literal (error, GCHAT_MESSAGE_ERROR, GCHAT_MESSAGE_ERROR_UNKNOWN_TYPE,
                           _("The message’s “type” is not a string"));
      return FALSE;
    }
  if (!gchat_message_type_from_string (json_node_get_string (node), type))
    {
      g_set_error_literal (error, GCHAT_MESSAGE_ERROR, GCHAT_MESSAGE_ERROR_UNKNOWN_TYPE,
                           _("The message’s “type” is not one this version knows"));
      return FALSE;
    }
  return TRUE;
}

/* Builds a message from a parsed root object, keeping only the fields of the schema. */
static GchatMessage *
message_from_object (JsonObject  *root,
                     GError     **error)
{
  g_autoptr(GchatMessage) message = NULL;
  GchatMessageType type_id;
  const TypeSpec *type;

  if (!lookup_type (root, &type_id, error))
    return NULL;
  type = &message_types[type_id];
  if (!check_fields (type, root, error))
    return NULL;

  message = gchat_message_new (type_id);
  for (guint i = 0; i < type->n_fields; i++)
    {
      const FieldSpec *field = &type->fields[i];
      JsonNode *node = json_object_get_member (root, field->name);

      if (node == NULL)
        continue;
      store_node (message, field, copy_value (field, node));
      if (field->kind == GCHAT_FIELD_BYTES)
        store_bytes (message, field, decode_base64 (json_node_get_string (node)));
    }
  return g_steal_pointer (&message);
}

GchatMessage *
gchat_message_decode (const guint8  *data,
                      gsize          len,
                      GError       **error)
{
  g_autoptr(JsonParser) parser = NULL;
  JsonNode *root;
  GchatMessage *message;

  g_return_val_if_fail (data != NULL || len == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  parser = parse_json (data, len, error);
  if (parser == NULL)
    return NULL;

  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error_literal (error, GCHAT_MESSAGE_ERROR, GCHAT_MESSAGE_ERROR_SYNTAX,
                           _("The message is not a JSON object"));
      return NULL;
    }

  message = message_from_object (json_node_get_object (root), error);
  /* The message holds copies of what it needs; the parse tree goes without its secrets. */
  wipe_node (root);
  return message;
}

/* Encoding. */

/* json-glib 1.6 writes the control character U+001F into strings unescaped, which strict JSON
 * (and so our own decoder) refuses. In its output the byte can only stand inside a string, so
 * it is replaced by its escape. */
static char *
escape_unit_separator (char  *json,
                       gsize *len)
{
  gsize count = 0;
  char *escaped;
  gsize out = 0;

  for (gsize i = 0; i < *len; i++)
    count += json[i] == 0x1f;
  if (count == 0)
    return json;

  /* Sized exactly, so that no copy of the text is left behind by a reallocation. */
  escaped = g_malloc (*len + 5 * count + 1);
  for (gsize i = 0; i < *len; i++)
    {
      if (json[i] != 0x1f)
        {
          escaped[out++] = json[i];
          continue;
        }
      memcpy (escaped + out, "\\u001f", 6);
      out += 6;
    }
  escaped[out] = '\0';
  gchat_memzero (json, *len);
  g_free (json);
  *len = out;
  return escaped;
}

GBytes *
gchat_message_encode (GchatMessage  *self,
                      GError       **error)
{
  const TypeSpec *type;
  g_autoptr(JsonGenerator) generator = NULL;
  g_autoptr(JsonNode) root = NULL;
  char *json;
  gsize len;

  g_return_val_if_fail (self != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  /* The same checks as the peer's decoder: nothing is sent that it would refuse. */
  type = &message_types[self->type];
  if (!check_fields (type, self->fields, error))
    return NULL;

  root = json_node_init_object (json_node_alloc (), self->fields);
  generator = json_generator_new ();
  json_generator_set_pretty (generator, FALSE);
  json_generator_set_root (generator, root);
  json = escape_unit_separator (json_generator_to_data (generator, &len), &len);

  if (len > GCHAT_MESSAGE_MAX_SIZE)
    {
      g_set_error (error, GCHAT_MESSAGE_ERROR, GCHAT_MESSAGE_ERROR_TOO_LONG,
                   _("The “%s” message is larger than %d bytes"), type->name,
                   GCHAT_MESSAGE_MAX_SIZE);
      gchat_memzero (json, len);
      g_free (json);
      return NULL;
    }
  return g_bytes_new_take (json, len);
}

/* Accessors. */

GchatMessageType
gchat_message_get_message_type (GchatMessage *self)
{
  g_return_val_if_fail (self != NULL, GCHAT_N_MESSAGE_TYPES);

  return self->type;
}

/* The schema entry of @field, or NULL with a critical warning when @field is not a field of
 * this kind in the message's type: that is a programming error, not bad input. */
static const FieldSpec *
expect_field (GchatMessage   *self,
              const char     *field,
              GchatFieldKind  kind,
              const char     *function)
{
  const TypeSpec *type = &message_types[self->type];
  const FieldSpec *spec = find_field (type, field);

  if (spec == NULL || spec->kind != kind)
    {
      g_critical ("%s: '%s' messages have no %s field '%s'", function, type->name,
                  kind_names[kind], field);
      return NULL;
    }
  return spec;
}

gboolean
gchat_message_has_field (GchatMessage *self,
                         const char   *field)
{
  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (field != NULL, FALSE);
  g_return_val_if_fail (find_field (&message_types[self->type], field) != NULL, FALSE);

  return json_object_has_member (self->fields, field);
}

void
gchat_message_set_string (GchatMessage *self,
                          const char   *field,
                          const char   *value)
{
  const FieldSpec *spec;

  g_return_if_fail (self != NULL);
  g_return_if_fail (field != NULL);

  spec = expect_field (self, field, GCHAT_FIELD_STRING, G_STRFUNC);
  if (spec == NULL)
    return;
  store_node (self, spec, value != NULL ? string_node_new (value) : NULL);
}

void
gchat_message_set_int (GchatMessage *self,
                       const char   *field,
                       gint64        value)
{
  const FieldSpec *spec;

  g_return_if_fail (self != NULL);
  g_return_if_fail (field != NULL);

  spec = expect_field (self, field, GCHAT_FIELD_INT, G_STRFUNC);
  if (spec == NULL)
    return;
  store_node (self, spec, json_node_init_int (json_node_alloc (), value));
}

void
gchat_message_set_bool (GchatMessage *self,
                        const char   *field,
                        gboolean      value)
{
  const FieldSpec *spec;

  g_return_if_fail (self != NULL);
  g_return_if_fail (field != NULL);

  spec = expect_field (self, field, GCHAT_FIELD_BOOL, G_STRFUNC);
  if (spec == NULL)
    return;
  store_node (self, spec, json_node_init_boolean (json_node_alloc (), value != FALSE));
}

void
gchat_message_set_strv (GchatMessage       *self,
                        const char         *field,
                        const char * const *value)
{
  const FieldSpec *spec;
  JsonArray *array;
  JsonNode *node;

  g_return_if_fail (self != NULL);
  g_return_if_fail (field != NULL);

  spec = expect_field (self, field, GCHAT_FIELD_STRING_LIST, G_STRFUNC);
  if (spec == NULL)
    return;
  if (value == NULL)
    {
      store_node (self, spec, NULL);
      return;
    }

  array = json_array_sized_new (g_strv_length ((char **) value));
  for (gsize i = 0; value[i] != NULL; i++)
    json_array_add_string_element (array, value[i]);
  node = json_node_init_array (json_node_alloc (), array);
  json_array_unref (array);
  store_node (self, spec, node);
}

void
gchat_message_set_bytes (GchatMessage *self,
                         const char   *field,
                         const guint8 *data,
                         gsize         len)
{
  const FieldSpec *spec;
  char *text;

  g_return_if_fail (self != NULL);
  g_return_if_fail (field != NULL);
  g_return_if_fail (data != NULL || len == 0);

  spec = expect_field (self, field, GCHAT_FIELD_BYTES, G_STRFUNC);
  if (spec == NULL)
    return;

  store_bytes (self, spec, gchat_bytes_new_wiped (data, len));

  text = g_base64_encode (data, len);
  store_node (self, spec, string_node_new (text));
  wipe_string (text);
  g_free (text);
}

/* The value of a field that is set, or NULL. */
static JsonNode *
get_member (GchatMessage   *self,
            const char     *field,
            GchatFieldKind  kind,
            const char     *function)
{
  if (expect_field (self, field, kind, function) == NULL)
    return NULL;
  return json_object_get_member (self->fields, field);
}

const char *
gchat_message_get_string (GchatMessage *self,
                          const char   *field)
{
  JsonNode *node;

  g_return_val_if_fail (self != NULL, NULL);
  g_return_val_if_fail (field != NULL, NULL);

  node = get_member (self, field, GCHAT_FIELD_STRING, G_STRFUNC);
  return node != NULL ? json_node_get_string (node) : NULL;
}

gint64
gchat_message_get_int (GchatMessage *self,
                       const char   *field)
{
  JsonNode *node;

  g_return_val_if_fail (self != NULL, 0);
  g_return_val_if_fail (field != NULL, 0);

  node = get_member (self, field, GCHAT_FIELD_INT, G_STRFUNC);
  return node != NULL ? json_node_get_int (node) : 0;
}

gboolean
gchat_message_get_bool (GchatMessage *self,
                        const char   *field)
{
  JsonNode *node;

  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (field != NULL, FALSE);

  node = get_member (self, field, GCHAT_FIELD_BOOL, G_STRFUNC);
  return node != NULL ? json_node_get_boolean (node) : FALSE;
}

char **
gchat_message_dup_strv (GchatMessage *self,
                        const char   *field)
{
  JsonNode *node;
  JsonArray *array;
  g_autoptr(GStrvBuilder) builder = NULL;

  g_return_val_if_fail (self != NULL, NULL);
  g_return_val_if_fail (field != NULL, NULL);

  node = get_member (self, field, GCHAT_FIELD_STRING_LIST, G_STRFUNC);
  if (node == NULL)
    return NULL;

  array = json_node_get_array (node);
  builder = g_strv_builder_new ();
  for (guint i = 0; i < json_array_get_length (array); i++)
    g_strv_builder_add (builder, json_array_get_string_element (array, i));
  return g_strv_builder_end (builder);
}

GBytes *
gchat_message_get_bytes (GchatMessage *self,
                         const char   *field)
{
  const FieldSpec *spec;
  const TypeSpec *type;

  g_return_val_if_fail (self != NULL, NULL);
  g_return_val_if_fail (field != NULL, NULL);

  spec = expect_field (self, field, GCHAT_FIELD_BYTES, G_STRFUNC);
  if (spec == NULL || self->bytes == NULL)
    return NULL;
  type = &message_types[self->type];
  return self->bytes[spec - type->fields];
}
