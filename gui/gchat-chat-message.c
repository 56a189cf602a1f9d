/* SPDX-License-Identifier: GPL-3.0-or-later */
/* One message of a chat: who wrote it, when, its text and, for ours, how far it got. */

#include "config.h"

#include "gchat-chat-message.h"

struct _GchatChatMessage
{
  GObject             parent_instance;

  guint64             id;
  gboolean            outgoing;
  char               *sender;
  char               *text;
  gint64              time;
  GchatDeliveryState  state;
  GchatClientPath     path;
};

enum {
  PROP_0,
  PROP_ID,
  PROP_OUTGOING,
  PROP_SENDER,
  PROP_TEXT,
  PROP_TIME,
  PROP_STATE,
  PROP_PATH,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE (GchatChatMessage, gchat_chat_message, G_TYPE_OBJECT)

static void
gchat_chat_message_finalize (GObject *object)
{
  GchatChatMessage *self = GCHAT_CHAT_MESSAGE (object);

  g_free (self->sender);
  g_free (self->text);

  G_OBJECT_CLASS (gchat_chat_message_parent_class)->finalize (object);
}

static void
gchat_chat_message_get_property (GObject    *object,
                                 guint       prop_id,
                                 GValue     *value,
                                 GParamSpec *pspec)
{
  GchatChatMessage *self = GCHAT_CHAT_MESSAGE (object);

  switch (prop_id)
    {
    case PROP_ID:
      g_value_set_uint64 (value, self->id);
      break;
    case PROP_OUTGOING:
      g_value_set_boolean (value, self->outgoing);
      break;
    case PROP_SENDER:
      g_value_set_string (value, self->sender);
      break;
    case PROP_TEXT:
      g_value_set_string (value, self->text);
      break;
    case PROP_TIME:
      g_value_set_int64 (value, self->time);
      break;
    case PROP_STATE:
      g_value_set_enum (value, self->state);
      break;
    case PROP_PATH:
      g_value_set_enum (value, self->path);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
gchat_chat_message_set_property (GObject      *object,
                                 guint         prop_id,
                                 const GValue *value,
                                 GParamSpec   *pspec)
{
  GchatChatMessage *self = GCHAT_CHAT_MESSAGE (object);

  switch (prop_id)
    {
    case PROP_ID:
      self->id = g_value_get_uint64 (value);
      break;
    case PROP_OUTGOING:
      self->outgoing = g_value_get_boolean (value);
      break;
    case PROP_SENDER:
      g_free (self->sender);
      self->sender = g_value_dup_string (value);
      break;
    case PROP_TEXT:
      g_free (self->text);
      self->text = g_value_dup_string (value);
      break;
    case PROP_TIME:
      self->time = g_value_get_int64 (value);
      break;
    case PROP_STATE:
      gchat_chat_message_set_state (self, g_value_get_enum (value), self->path);
      break;
    case PROP_PATH:
      gchat_chat_message_set_state (self, self->state, g_value_get_enum (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
gchat_chat_message_class_init (GchatChatMessageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GParamFlags construct = G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS;
  GParamFlags changing = G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS;

  object_class->finalize = gchat_chat_message_finalize;
  object_class->get_property = gchat_chat_message_get_property;
  object_class->set_property = gchat_chat_message_set_property;

  properties[PROP_ID] = g_param_spec_uint64 ("id", NULL, NULL, 0, G_MAXUINT64, 0, construct);
  properties[PROP_OUTGOING] = g_param_spec_boolean ("outgoing", NULL, NULL, FALSE, construct);
  properties[PROP_SENDER] = g_param_spec_string ("sender", NULL, NULL, NULL, construct);
  properties[PROP_TEXT] = g_param_spec_string ("text", NULL, NULL, NULL, construct);
  properties[PROP_TIME] = g_param_spec_int64 ("time", NULL, NULL, G_MININT64, G_MAXINT64, 0,
                                              construct);
  properties[PROP_STATE] = g_param_spec_enum ("state", NULL, NULL, GCHAT_TYPE_DELIVERY_STATE,
                                              GCHAT_DELIVERY_SENDING, changing);
  properties[PROP_PATH] = g_param_spec_enum ("path", NULL, NULL, GCHAT_TYPE_CLIENT_PATH,
                                             GCHAT_CLIENT_PATH_DIRECT, changing);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
gchat_chat_message_init (GchatChatMessage *self)
{
}

GchatChatMessage *
gchat_chat_message_new (guint64             id,
                        gboolean            outgoing,
                        const char         *sender,
                        const char         *text,
                        gint64              time,
                        GchatDeliveryState  state,
                        GchatClientPath     path)
{
  return g_object_new (GCHAT_TYPE_CHAT_MESSAGE,
                       "id", id,
                       "outgoing", outgoing,
                       "sender", sender,
                       "text", text,
                       "time", time,
                       "state", state,
                       "path", path,
                       NULL);
}

guint64
gchat_chat_message_get_id (GchatChatMessage *self)
{
  g_return_val_if_fail (GCHAT_IS_CHAT_MESSAGE (self), 0);
  return self->id;
}

gboolean
gchat_chat_message_get_outgoing (GchatChatMessage *self)
{
  g_return_val_if_fail (GCHAT_IS_CHAT_MESSAGE (self), FALSE);
  return self->outgoing;
}

const char *
gchat_chat_message_get_sender (GchatChatMessage *self)
{
  g_return_val_if_fail (GCHAT_IS_CHAT_MESSAGE (self), NULL);
  return self->sender;
}

const char *
gchat_chat_message_get_text (GchatChatMessage *self)
{
  g_return_val_if_fail (GCHAT_IS_CHAT_MESSAGE (self), NULL);
  return self->text;
}

gint64
gchat_chat_message_get_time (GchatChatMessage *self)
{
  g_return_val_if_fail (GCHAT_IS_CHAT_MESSAGE (self), 0);
  return self->time;
}

GchatDeliveryState
gchat_chat_message_get_state (GchatChatMessage *self)
{
  g_return_val_if_fail (GCHAT_IS_CHAT_MESSAGE (self), GCHAT_DELIVERY_SENDING);
  return self->state;
}

GchatClientPath
gchat_chat_message_get_path (GchatChatMessage *self)
{
  g_return_val_if_fail (GCHAT_IS_CHAT_MESSAGE (self), GCHAT_CLIENT_PATH_DIRECT);
  return self->path;
}

void
gchat_chat_message_set_state (GchatChatMessage   *self,
                              GchatDeliveryState  state,
                              GchatClientPath     path)
{
  g_return_if_fail (GCHAT_IS_CHAT_MESSAGE (self));

  g_object_freeze_notify (G_OBJECT (self));
  if (self->state != state)
    {
      self->state = state;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATE]);
    }
  if (self->path != path)
    {
      self->path = path;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_PATH]);
    }
  g_object_thaw_notify (G_OBJECT (self));
}
