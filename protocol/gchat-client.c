/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The client core: one account's session with gchatd and its peer conversations, no GTK. */

#include "config.h"

#include <string.h>

#include <glib/gi18n-lib.h>

#include "gchat-client.h"
#include "gchat-client-private.h"
#include "gchat-config.h"
#include "gchat-crypto.h"

G_DEFINE_QUARK (gchat-client-error-quark, gchat_client_error)

G_DEFINE_FINAL_TYPE (GchatClient, gchat_client, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_STATE,
  PROP_STATE_REASON,
  PROP_USER,
  PROP_SERVER_HOST,
  PROP_SERVER_PORT,
  PROP_SERVER_KEY,
  PROP_KNOWN_SERVERS_PATH,
  PROP_ACCEPT_NEW_SERVER_KEY,
  PROP_DIRECT_LOSS,
  PROP_DATAGRAM_LOSS,
  PROP_REKEY_DATAGRAMS,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum {
  SIGNAL_MESSAGE_RECEIVED,
  SIGNAL_DELIVERY_CHANGED,
  SIGNAL_PRESENCE,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

static void
gchat_client_dispose (GObject *object)
{
  GchatClient *self = GCHAT_CLIENT (object);

  gchat_client_drop_session (self);
  gchat_client_peers_clear (self);
  g_clear_handle_id (&self->reconnect_source, g_source_remove);
  g_clear_handle_id (&self->ping_source, g_source_remove);
  g_clear_pointer (&self->peer_socket, gchat_peer_socket_free);
  g_clear_object (&self->online);

  G_OBJECT_CLASS (gchat_client_parent_class)->dispose (object);
}

static void
gchat_client_finalize (GObject *object)
{
  GchatClient *self = GCHAT_CLIENT (object);

  gchat_client_forget_password (self);
  g_free (self->login_user);
  g_free (self->user);
  g_free (self->state_reason);
  g_free (self->host);
  g_clear_object (&self->server_key);
  g_clear_object (&self->seen_key);
  g_free (self->seen_fingerprint);
  g_free (self->pinned_fingerprint);
  g_free (self->known_servers_path);
  g_hash_table_unref (self->messages);
  g_hash_table_unref (self->requests);
  g_hash_table_unref (self->peers);
  g_hash_table_unref (self->key_ids);
  g_hash_table_unref (self->seen_mail);
  g_hash_table_unref (self->posted);
  g_ptr_array_unref (self->early);
  g_queue_clear (&self->outbox);

  G_OBJECT_CLASS (gchat_client_parent_class)->finalize (object);
}

static void
gchat_client_get_property (GObject    *object,
                           guint       prop_id,
                           GValue     *value,
                           GParamSpec *pspec)
{
  GchatClient *self = GCHAT_CLIENT (object);

  switch (prop_id)
    {
    case PROP_STATE:
      g_value_set_enum (value, self->state);
      break;
    case PROP_STATE_REASON:
      g_value_set_string (value, self->state_reason);
      break;
    case PROP_USER:
      g_value_set_string (value, self->user);
      break;
    case PROP_SERVER_HOST:
      g_value_set_string (value, self->host);
      break;
    case PROP_SERVER_PORT:
      g_value_set_uint (value, self->port);
      break;
    case PROP_SERVER_KEY:
      g_value_set_object (value, self->server_key);
      break;
    case PROP_KNOWN_SERVERS_PATH:
      g_value_set_string (value, self->known_servers_path);
      break;
    case PROP_ACCEPT_NEW_SERVER_KEY:
      g_value_set_boolean (value, self->accept_new_server_key);
      break;
    case PROP_DIRECT_LOSS:
      g_value_set_uint (value, self->direct_loss);
      break;
    case PROP_DATAGRAM_LOSS:
      g_value_set_uint (value, self->datagram_loss);
      break;
    case PROP_REKEY_DATAGRAMS:
      g_value_set_uint64 (value, self->rekey_datagrams);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
gchat_client_set_property (GObject      *object,
                           guint         prop_id,
                           const GValue *value,
                           GParamSpec   *pspec)
{
  GchatClient *self = GCHAT_CLIENT (object);

  switch (prop_id)
    {
    case PROP_SERVER_HOST:
      g_free (self->host);
      self->host = g_value_dup_string (value);
      if (self->host == NULL)
        self->host = g_strdup ("localhost");
      break;
    case PROP_SERVER_PORT:
      self->port = g_value_get_uint (value);
      break;
    case PROP_SERVER_KEY:
      g_set_object (&self->server_key, g_value_get_object (value));
      break;
    case PROP_KNOWN_SERVERS_PATH:
      g_free (self->known_servers_path);
      self->known_servers_path = g_value_dup_string (value);
      if (self->known_servers_path == NULL)
        self->known_servers_path = g_build_filename (g_get_user_data_dir (), "gchat",
                                                     "known-servers", NULL);
      break;
    case PROP_ACCEPT_NEW_SERVER_KEY:
      self->accept_new_server_key = g_value_get_boolean (value);
      break;
    case PROP_DIRECT_LOSS:
      self->direct_loss = g_value_get_uint (value);
      break;
    case PROP_DATAGRAM_LOSS:
      self->datagram_loss = g_value_get_uint (value);
      break;
    case PROP_REKEY_DATAGRAMS:
      self->rekey_datagrams = g_value_get_uint64 (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
gchat_client_class_init (GchatClientClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY;
  GParamFlags ro = G_PARAM_READABLE | G_PARAM_STATIC_STRINGS;

  object_class->dispose = gchat_client_dispose;
  object_class->finalize = gchat_client_finalize;
  object_class->get_property = gchat_client_get_property;
  object_class->set_property = gchat_client_set_property;

  properties[PROP_STATE] =
    g_param_spec_enum ("state", NULL, NULL, GCHAT_TYPE_CLIENT_STATE,
                       GCHAT_CLIENT_STATE_OFFLINE, ro);
  properties[PROP_STATE_REASON] = g_param_spec_string ("state-reason", NULL, NULL, NULL, ro);
  properties[PROP_USER] = g_param_spec_string ("user", NULL, NULL, NULL, ro);
  properties[PROP_SERVER_HOST] =
    g_param_spec_string ("server-host", NULL, NULL, "localhost", rw | G_PARAM_CONSTRUCT);
  properties[PROP_SERVER_PORT] =
    g_param_spec_uint ("server-port", NULL, NULL, 1, 65535, 10000, rw | G_PARAM_CONSTRUCT);
  properties[PROP_SERVER_KEY] =
    g_param_spec_object ("server-key", NULL, NULL, GCHAT_TYPE_RSA_KEY, rw);
  properties[PROP_KNOWN_SERVERS_PATH] =
    g_param_spec_string ("known-servers-path", NULL, NULL, NULL, rw | G_PARAM_CONSTRUCT);
  properties[PROP_ACCEPT_NEW_SERVER_KEY] =
    g_param_spec_boolean ("accept-new-server-key", NULL, NULL, FALSE, rw);
  properties[PROP_DIRECT_LOSS] =
    g_param_spec_uint ("direct-loss", NULL, NULL, 0, 100, 0, rw);
  properties[PROP_DATAGRAM_LOSS] =
    g_param_spec_uint ("datagram-loss", NULL, NULL, 0, 100, 0, rw);
  properties[PROP_REKEY_DATAGRAMS] =
    g_param_spec_uint64 ("rekey-datagrams", NULL, NULL, 0, G_MAXUINT64, 0, rw);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  signals[SIGNAL_MESSAGE_RECEIVED] =
    g_signal_new ("message-received", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 5, G_TYPE_STRING, G_TYPE_STRING,
                  GCHAT_TYPE_CLIENT_PATH, G_TYPE_UINT64, G_TYPE_INT64);
  signals[SIGNAL_DELIVERY_CHANGED] =
    g_signal_new ("delivery-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 5, G_TYPE_UINT64, G_TYPE_STRING,
                  GCHAT_TYPE_DELIVERY_STATE, GCHAT_TYPE_CLIENT_PATH, G_TYPE_ERROR);
  signals[SIGNAL_PRESENCE] =
    g_signal_new ("presence", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_BOOLEAN);
}

static void
gchat_client_init (GchatClient *self)
{
  self->online = gchat_online_users_new ();
  self->messages = g_hash_table_new_full (g_int64_hash, g_int64_equal, NULL,
                                          (GDestroyNotify) gchat_out_message_free);
  self->requests = g_hash_table_new_full (g_int64_hash, g_int64_equal, NULL,
                                          (GDestroyNotify) gchat_request_free);
  self->peers = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                       (GDestroyNotify) gchat_peer_free);
  self->key_ids = g_hash_table_new (NULL, NULL);
  self->seen_mail = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->posted = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, g_free);
  self->early = g_ptr_array_new_with_free_func (gchat_early_datagram_free);
  g_queue_init (&self->outbox);
  self->next_request_id = 1;
}

GchatClient *
gchat_client_new (void)
{
  return g_object_new (GCHAT_TYPE_CLIENT, NULL);
}

gboolean
gchat_client_apply_config (GchatClient  *self,
                           const char   *config_path,
                           GError      **error)
{
  g_autoptr(GchatConfig) config = NULL;
  g_autoptr(GchatRsaKey) key = NULL;
  const char *certificate;

  g_return_val_if_fail (GCHAT_IS_CLIENT (self), FALSE);

  config = gchat_config_new_from_file (config_path, error);
  if (config == NULL)
    return FALSE;
  certificate = gchat_config_get_server_certificate (config);
  if (certificate != NULL && (key = gchat_rsa_key_load_public (certificate, error)) == NULL)
    return FALSE;
  g_object_set (self,
                "server-host", gchat_config_get_server_address (config),
                "server-port", (guint) gchat_config_get_server_port (config),
                NULL);
  if (key != NULL)
    g_object_set (self, "server-key", key, NULL);
  return TRUE;
}

/* State */

void
gchat_client_set_state (GchatClient      *self,
                        GchatClientState  state,
                        const char       *reason)
{
  gboolean reason_changed = g_strcmp0 (reason, self->state_reason) != 0;

  if (reason_changed)
    {
      g_free (self->state_reason);
      self->state_reason = g_strdup (reason);
    }
  if (state != self->state)
    {
      self->state = state;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATE]);
    }
  if (reason_changed)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATE_REASON]);
}

void
gchat_client_set_user (GchatClient *self,
                       const char  *user)
{
  if (g_strcmp0 (user, self->user) == 0)
    return;
  g_free (self->user);
  self->user = g_strdup (user);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_USER]);
}

GchatClientState
gchat_client_get_state (GchatClient *self)
{
  g_return_val_if_fail (GCHAT_IS_CLIENT (self), GCHAT_CLIENT_STATE_OFFLINE);

  return self->state;
}

const char *
gchat_client_get_state_reason (GchatClient *self)
{
  g_return_val_if_fail (GCHAT_IS_CLIENT (self), NULL);

  return self->state_reason;
}

const char *
gchat_client_get_user (GchatClient *self)
{
  g_return_val_if_fail (GCHAT_IS_CLIENT (self), NULL);

  return self->user;
}

guint
gchat_client_get_retry_after (GchatClient *self)
{
  g_return_val_if_fail (GCHAT_IS_CLIENT (self), 0);

  return self->retry_after;
}

const char *
gchat_client_get_server_fingerprint (GchatClient *self)
{
  g_return_val_if_fail (GCHAT_IS_CLIENT (self), NULL);

  return self->seen_fingerprint;
}

const char *
gchat_client_get_pinned_fingerprint (GchatClient *self)
{
  g_return_val_if_fail (GCHAT_IS_CLIENT (self), NULL);

  return self->pinned_fingerprint;
}

GListModel *
gchat_client_get_online_users (GchatClient *self)
{
  g_return_val_if_fail (GCHAT_IS_CLIENT (self), NULL);

  return G_LIST_MODEL (self->online);
}

gboolean
gchat_client_is_online (GchatClient *self,
                        const char  *user)
{
  g_return_val_if_fail (GCHAT_IS_CLIENT (self), FALSE);

  return gchat_online_users_contains (self->online, user);
}

guint64
gchat_client_get_n_dropped (GchatClient *self)
{
  g_return_val_if_fail (GCHAT_IS_CLIENT (self), 0);

  return self->n_dropped;
}

guint
gchat_client_get_n_pair_keys (GchatClient *self)
{
  g_return_val_if_fail (GCHAT_IS_CLIENT (self), 0);

  return self->n_pair_keys;
}

guint16
gchat_client_get_peer_port (GchatClient *self)
{
  g_return_val_if_fail (GCHAT_IS_CLIENT (self), 0);

  return self->peer_socket != NULL ? gchat_peer_socket_get_port (self->peer_socket) : 0;
}

/* Events for the front end */

void
gchat_client_emit_message (GchatClient     *self,
                           const char      *from,
                           const char      *text,
                           GchatClientPath  path,
                           guint64          id,
                           gint64           sent_unix)
{
  g_signal_emit (self, signals[SIGNAL_MESSAGE_RECEIVED], 0, from, text, path, id, sent_unix);
}

void
gchat_client_emit_delivery (GchatClient        *self,
                            guint64             id,
                            const char         *to,
                            GchatDeliveryState  state,
                            GchatClientPath     path,
                            const GError       *error)
{
  g_signal_emit (self, signals[SIGNAL_DELIVERY_CHANGED], 0, id, to, state, path, error);
}

void
gchat_client_emit_presence (GchatClient *self,
                            const char  *user,
                            gboolean     online)
{
  g_signal_emit (self, signals[SIGNAL_PRESENCE], 0, user, online);
}

/* Enumerations */

GType
gchat_client_state_get_type (void)
{
  static gsize type = 0;
  static const GEnumValue values[] = {
    { GCHAT_CLIENT_STATE_OFFLINE, "GCHAT_CLIENT_STATE_OFFLINE", "offline" },
    { GCHAT_CLIENT_STATE_CONNECTING, "GCHAT_CLIENT_STATE_CONNECTING", "connecting" },
    { GCHAT_CLIENT_STATE_ONLINE, "GCHAT_CLIENT_STATE_ONLINE", "online" },
    { GCHAT_CLIENT_STATE_RECONNECTING, "GCHAT_CLIENT_STATE_RECONNECTING", "reconnecting" },
    { 0, NULL, NULL }
  };

  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static ("GchatClientState", values));
  return type;
}

GType
gchat_client_path_get_type (void)
{
  static gsize type = 0;
  static const GEnumValue values[] = {
    { GCHAT_CLIENT_PATH_DIRECT, "GCHAT_CLIENT_PATH_DIRECT", "direct" },
    { GCHAT_CLIENT_PATH_RELAY, "GCHAT_CLIENT_PATH_RELAY", "relay" },
    { GCHAT_CLIENT_PATH_OFFLINE, "GCHAT_CLIENT_PATH_OFFLINE", "offline" },
    { 0, NULL, NULL }
  };

  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static ("GchatClientPath", values));
  return type;
}

GType
gchat_delivery_state_get_type (void)
{
  static gsize type = 0;
  static const GEnumValue values[] = {
    { GCHAT_DELIVERY_SENDING, "GCHAT_DELIVERY_SENDING", "sending" },
    { GCHAT_DELIVERY_QUEUED, "GCHAT_DELIVERY_QUEUED", "queued" },
    { GCHAT_DELIVERY_DELIVERED, "GCHAT_DELIVERY_DELIVERED", "delivered" },
    { GCHAT_DELIVERY_FAILED, "GCHAT_DELIVERY_FAILED", "failed" },
    { 0, NULL, NULL }
  };

  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static ("GchatDeliveryState", values));
  return type;
}

static const char *
enum_nick (GType type,
           int   value)
{
  g_autoptr(GEnumClass) klass = g_type_class_ref (type);
  GEnumValue *found = g_enum_get_value (klass, value);

  return found != NULL ? found->value_nick : "unknown";
}

const char *
gchat_client_path_to_string (GchatClientPath path)
{
  return enum_nick (GCHAT_TYPE_CLIENT_PATH, path);
}

const char *
gchat_delivery_state_to_string (GchatDeliveryState state)
{
  return enum_nick (GCHAT_TYPE_DELIVERY_STATE, state);
}
