/* SPDX-License-Identifier: GPL-3.0-or-later */
/* gchatd's top object: the listening socket, the sessions, presence and the pair keys. */

#include "config.h"

#include <errno.h>
#include <string.h>

#include <glib/gi18n-lib.h>
#include <glib/gstdio.h>

#include "gchat-crypto.h"
#include "gchat-file.h"
#include "gchatd-admin.h"
#include "gchatd-control.h"
#include "gchatd-endpoint-listener.h"
#include "gchatd-online-list.h"
#include "gchatd-server.h"

/* How often forgotten pair keys and throttle records are dropped. */
#define SWEEP_INTERVAL_S 60
/* Sessions a presence batch goes to per main-loop turn: a few milliseconds of sending. */
#define PRESENCE_SLICE 256
/* A presence batch entry: online now; online after the name's first change in the window. */
#define PRESENCE_NOW   1
#define PRESENCE_FIRST 2
/* How long a starting gchatd waits for a gchatctl that holds the store lock. */
#define STORE_LOCK_WAIT_MS 3000
/* Log-ins added to the kept online list before it is encoded again as a whole. */

/* The key of one pair of users, valid only while both sessions that it was issued to live: a
 * client that logs in again starts its datagram counters from zero, so it must never be given
 * a key it used before. */
typedef struct {
  guint8  key[GCHAT_KEY_SIZE];
  guint32 key_id;
  gint64  expires;   /* Unix time in seconds */
  guint64 serial_lo; /* session serials of the two users, in the order of the table key */
  guint64 serial_hi;
} PairKey;

struct _GchatdServer
{
  GObject               parent_instance;

  GchatConfig          *config;
  GchatRsaKey          *key;
  char                 *fingerprint;
  GchatdUserStore      *store;
  GchatdPasswordHasher *hasher;
  GchatdThrottle       *throttle;
  GchatdMailbox        *mailbox;
  GchatArgon2Params     params;

  GchatdPaths          *paths;
  GchatdStoreLock      *lock;
  GchatdControl        *control;
  GSocketService       *service;
  GchatdPoller         *poller;      /* every client socket, in one epoll set */
  GchatdEndpointListener *endpoints; /* UDP, on the same addresses and port */
  gint                  port_override; /* -1: the configured port */
  guint16               port;
  guint                 login_timeout_ms;
  guint                 idle_timeout_ms;
  guint                 idle_id;
  gboolean              stopping;

  GHashTable           *connections; /* GchatdConnection → itself, owning a reference */
  GHashTable           *sessions;    /* case-folded user name → GchatdConnection */
  /* The next batch: user name as stored → PRESENCE_NOW | PRESENCE_FIRST bits, the state now
   * and the state its first change in the window went to. */
  GHashTable           *presence;
  guint64               presence_serial; /* the newest session serial at the last flush */
  guint                 presence_id;
  guint                 presence_batch_ms;
  gint64                presence_ready_at; /* monotonic µs: no flush before it */
  /* The batch going out: to these sessions (refs, as they were at the flush), these messages,
   * a slice of sessions per main-loop turn from fanout_next. */
  GPtrArray            *fanout_sessions; /* the first fanout_n_full get fanout_full, the rest
                                          * fanout_messages (the net changes) */
  guint                 fanout_n_full;
  GPtrArray            *fanout_full;
  GPtrArray            *fanout_messages;
  guint                 fanout_next;
  guint                 fanout_id;
  gint64                fanout_busy;       /* µs spent sending it so far */
  GchatdWorkerPool     *crypto_threads;
  /* The hellos' X25519 key pair while eph_wipe_id runs, then wiped. */
  guint8                eph_secret[GCHAT_X25519_SIZE];
  guint8                eph_public[GCHAT_X25519_SIZE];
  guint                 eph_wipe_id;
  GchatdOnlineList     *online;      /* the sessions' names, as `users` messages */
  GHashTable           *pairs;       /* "lo\nhi" of case-folded names → PairKey */
  guint32               next_key_id;
  guint                 sweep_id;
  guint64               n_relayed;
  guint64               n_relay_dropped;

  /* Session resumption (PROTOCOL.md §3.5) */
  guint8                ticket_key[GCHAT_TICKET_KEY_SIZE];
  guint8                ticket_key_id;
  GHashTable           *revocations; /* folded name → gint64 *, tickets_not_before */
  guint                 ticket_lifetime_s;
  guint64               n_resumed;
};

G_DEFINE_FINAL_TYPE (GchatdServer, gchatd_server, G_TYPE_OBJECT)

G_DEFINE_QUARK (gchatd-server-error-quark, gchatd_server_error)

static void
pair_key_free (gpointer data)
{
  gchat_memzero (data, sizeof (PairKey));
  g_free (data);
}

static void
connection_closed_cb (GchatdConnection *connection,
                      gpointer          user_data)
{
  GchatdServer *self = user_data;

  g_signal_handlers_disconnect_by_data (connection, self);
  g_hash_table_remove (self->connections, connection);
}

static void
gchatd_server_dispose (GObject *object)
{
  GchatdServer *self = GCHATD_SERVER (object);
  g_autoptr(GList) connections = NULL;

  if (self->service != NULL)
    {
      g_socket_service_stop (self->service);
      g_socket_listener_close (G_SOCKET_LISTENER (self->service));
    }
  g_clear_object (&self->service);
  /* Handshake jobs in flight use the ticket key: they finish before anything goes. */
  g_clear_pointer (&self->crypto_threads, gchatd_worker_pool_free);
  g_clear_handle_id (&self->eph_wipe_id, g_source_remove);
  gchat_memzero (self->eph_secret, sizeof self->eph_secret);
  g_clear_object (&self->endpoints);
  g_clear_handle_id (&self->presence_id, g_source_remove);
  g_clear_handle_id (&self->fanout_id, g_source_remove);
  g_clear_pointer (&self->fanout_sessions, g_ptr_array_unref);
  g_clear_pointer (&self->fanout_messages, g_ptr_array_unref);
  g_clear_pointer (&self->fanout_full, g_ptr_array_unref);
  g_clear_handle_id (&self->sweep_id, g_source_remove);
  g_clear_handle_id (&self->idle_id, g_source_remove);
  if (self->connections != NULL)
    connections = g_hash_table_get_keys (self->connections);
  for (GList *l = connections; l != NULL; l = l->next)
    {
      g_signal_handlers_disconnect_by_data (l->data, self);
      gchatd_connection_close (l->data, NULL, "server finalized");
    }
  g_clear_pointer (&self->connections, g_hash_table_unref);
  g_clear_pointer (&self->sessions, g_hash_table_unref);
  g_clear_object (&self->poller);
  if (self->control != NULL)
    gchatd_control_stop (self->control);
  g_clear_object (&self->control);
  g_clear_object (&self->hasher);
  g_clear_object (&self->store);
  /* Waits for the last save, if one runs. */
  g_clear_object (&self->mailbox);
  /* Last: the lock guards the store's file. */
  g_clear_pointer (&self->lock, gchatd_store_lock_release);
  g_clear_object (&self->throttle);
  g_clear_object (&self->key);
  g_clear_object (&self->config);

  G_OBJECT_CLASS (gchatd_server_parent_class)->dispose (object);
}

static void
gchatd_server_finalize (GObject *object)
{
  GchatdServer *self = GCHATD_SERVER (object);

  g_clear_pointer (&self->presence, g_hash_table_unref);
  g_clear_pointer (&self->online, gchatd_online_list_free);
  g_clear_pointer (&self->pairs, g_hash_table_unref);
  g_clear_pointer (&self->paths, gchatd_paths_free);
  g_clear_pointer (&self->revocations, g_hash_table_unref);
  gchat_memzero (self->ticket_key, sizeof self->ticket_key);
  g_free (self->fingerprint);

  G_OBJECT_CLASS (gchatd_server_parent_class)->finalize (object);
}

static void
gchatd_server_class_init (GchatdServerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = gchatd_server_dispose;
  object_class->finalize = gchatd_server_finalize;
}

static void
gchatd_server_init (GchatdServer *self)
{
  self->port_override = -1;
  self->login_timeout_ms = GCHATD_SERVER_LOGIN_TIMEOUT_MS;
  self->idle_timeout_ms = GCHATD_SERVER_IDLE_TIMEOUT_S * 1000;
  self->presence_batch_ms = GCHATD_SERVER_PRESENCE_BATCH_MS;
  self->ticket_lifetime_s = GCHATD_SERVER_TICKET_LIFETIME_S;
  /* Key ids start at a random place: a client that outlives a restart of gchatd never gets an
   * id it has used before for the same peer, which it would refuse (its nonces are spent). */
  gchat_random_bytes ((guint8 *) &self->next_key_id, sizeof self->next_key_id);
  if (self->next_key_id == 0)
    self->next_key_id = 1;
  self->connections = g_hash_table_new_full (NULL, NULL, g_object_unref, NULL);
  self->sessions = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->presence = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->online = gchatd_online_list_new ();
  self->crypto_threads = gchatd_worker_pool_new ("handshake", 0);
  self->pairs = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, pair_key_free);
}

/* Files */

static GchatRsaKey *
create_key (const char  *private_path,
            const char  *public_path,
            GError     **error)
{
  g_autoptr(GchatRsaKey) key = NULL;
  g_autofree char *fingerprint = NULL;

  g_message ("Making the server's RSA-%u key pair in %s; this takes a moment", GCHAT_RSA_KEY_BITS,
             private_path);
  key = gchat_rsa_key_generate (GCHAT_RSA_KEY_BITS, error);
  if (key == NULL || !gchat_rsa_key_save_private (key, private_path, error)
      || !gchat_rsa_key_save_public (key, public_path, error))
    return NULL;
  fingerprint = gchat_rsa_key_get_fingerprint (key);
  g_message ("The server's new key fingerprint is %s", fingerprint);
  return g_steal_pointer (&key);
}

static GchatRsaKey *
load_or_create_key (const GchatdPaths  *paths,
                    GError            **error)
{
  g_autoptr(GchatRsaKey) key = NULL;

  if (!g_file_test (paths->private_key, G_FILE_TEST_EXISTS))
    return create_key (paths->private_key, paths->public_key, error);
  key = gchat_rsa_key_load_private (paths->private_key, error);
  if (key == NULL)
    return NULL;
  /* The hello carries the public key and must fit the handshake's frame (PROTOCOL.md §3): a
   * key outside 2048–4096 bits would fail every connection, so refuse it at once. */
  if (gchat_rsa_key_get_bits (key) < 2048 || gchat_rsa_key_get_bits (key) > 4096)
    {
      g_set_error (error, GCHATD_SERVER_ERROR, GCHATD_SERVER_ERROR_KEY,
                   _("The key in “%s” has %u bits; gchatd needs an RSA key of 2048 to 4096 bits. "
                     "Move it away to have a new one made, or point server_privateKey to another"),
                   paths->private_key, gchat_rsa_key_get_bits (key));
      return NULL;
    }
  /* Clients need the public half: write it again when someone deleted it. */
  if (!g_file_test (paths->public_key, G_FILE_TEST_EXISTS)
      && !gchat_rsa_key_save_public (key, paths->public_key, error))
    return NULL;
  return g_steal_pointer (&key);
}

/* The ticket key lives in the data folder, so tickets outlive a restart: a restart with
 * everyone online then costs no Argon2id at all. Made at the first start. */
static gboolean
load_or_create_ticket_key (GchatdServer  *self,
                           GError       **error)
{
  const char *path = self->paths->ticket_key;
  g_autoptr(GError) local_error = NULL;
  g_autofree char *contents = NULL;
  guint8 digest[GCHAT_SHA256_SIZE];
  gsize len = 0;

  if (g_file_get_contents (path, &contents, &len, &local_error))
    {
      if (len != GCHAT_TICKET_KEY_SIZE)
        {
          gchat_memzero (contents, len);
          g_set_error (error, GCHATD_SERVER_ERROR, GCHATD_SERVER_ERROR_KEY,
                       _("The ticket key “%s” is not %u bytes long; delete it to have a new one "
                         "made (clients then log in with their passwords once)"),
                       path, (guint) GCHAT_TICKET_KEY_SIZE);
          return FALSE;
        }
      memcpy (self->ticket_key, contents, len);
      gchat_memzero (contents, len);
    }
  else if (g_error_matches (local_error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
    {
      gchat_random_bytes (self->ticket_key, sizeof self->ticket_key);
      g_clear_error (&local_error);
      if (!gchat_file_replace (path, self->ticket_key, sizeof self->ticket_key, 0600,
                               &local_error))
        {
          g_set_error (error, GCHATD_SERVER_ERROR, GCHATD_SERVER_ERROR_KEY,
                       _("Could not save the ticket key “%s”: %s"), path, local_error->message);
          return FALSE;
        }
    }
  else
    {
      g_set_error (error, GCHATD_SERVER_ERROR, GCHATD_SERVER_ERROR_KEY,
                   _("Could not read the ticket key: %s"), local_error->message);
      return FALSE;
    }
  /* The key id names the key in each ticket, so a ticket of another key is told apart at
   * once; it is no secret. */
  gchat_sha256 (self->ticket_key, sizeof self->ticket_key, digest);
  self->ticket_key_id = digest[0];
  return TRUE;
}

static gboolean
open_tickets (GchatdServer  *self,
              GError       **error)
{
  g_autoptr(GError) local_error = NULL;

  if (!load_or_create_ticket_key (self, error))
    return FALSE;
  self->revocations = gchatd_revocations_load (self->paths->revocations, &local_error);
  if (self->revocations != NULL)
    return TRUE;
  g_set_error_literal (error, GCHATD_SERVER_ERROR, GCHATD_SERVER_ERROR_KEY, local_error->message);
  return FALSE;
}

/* gchatctl may hold the lock for the moment of an edit: wait a little before giving up. */
static GchatdStoreLock *
acquire_store_lock (const char  *store,
                    GError     **error)
{
  gint64 deadline = g_get_monotonic_time () + STORE_LOCK_WAIT_MS * 1000;

  for (;;)
    {
      g_autoptr(GError) local_error = NULL;
      GchatdStoreLock *lock = gchatd_store_lock_acquire (store, &local_error);

      if (lock != NULL)
        return lock;
      if (!g_error_matches (local_error, GCHATD_ADMIN_ERROR, GCHATD_ADMIN_ERROR_LOCKED)
          || g_get_monotonic_time () > deadline)
        {
          g_propagate_error (error, g_steal_pointer (&local_error));
          return NULL;
        }
      g_usleep (50 * 1000);
    }
}

/* A save cut short by a crash leaves "<store>.XXXXXX" behind (g_mkstemp's pattern), a stale
 * copy of every password hash. Holding the store lock, gchatd knows nobody is saving now. */
static void
remove_stale_temporaries (const char *store)
{
  g_autofree char *folder = g_path_get_dirname (store);
  g_autofree char *base = g_path_get_basename (store);
  g_autoptr(GDir) dir = g_dir_open (folder, 0, NULL);
  gsize base_len = strlen (base);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = NULL;
      gboolean temporary = strlen (name) == base_len + 7 && strncmp (name, base, base_len) == 0
                           && name[base_len] == '.';

      for (gsize i = base_len + 1; temporary && name[i] != '\0'; i++)
        temporary = g_ascii_isalnum (name[i]);
      if (!temporary)
        continue;
      path = g_build_filename (folder, name, NULL);
      if (g_unlink (path) == 0)
        g_message ("Removed %s, left by a save that was interrupted", path);
    }
}

/* Like the user store, a mailbox that does not load stops gchatd: starting without it would
 * hide held messages, and the next save would write over them. */
static gboolean
open_mailbox (GchatdServer  *self,
              GError       **error)
{
  g_autoptr(GError) local_error = NULL;

  self->mailbox = gchatd_mailbox_new (self->paths->mail_dir, &local_error);
  if (self->mailbox != NULL)
    return TRUE;
  g_set_error (error, GCHATD_SERVER_ERROR, GCHATD_SERVER_ERROR_MAILBOX,
               _("The mailboxes of offline users cannot be loaded: %s"), local_error->message);
  return FALSE;
}

static gboolean
open_state (GchatdServer  *self,
            GError       **error)
{
  GError *local_error = NULL;

  self->paths = gchatd_paths_resolve (self->config);
  if (g_mkdir_with_parents (self->paths->data_dir, 0700) != 0)
    {
      int saved_errno = errno;

      g_set_error (error, GCHATD_SERVER_ERROR, GCHATD_SERVER_ERROR_STATE_DIR,
                   _("Cannot make the folder “%s”: %s"), self->paths->data_dir,
                   g_strerror (saved_errno));
      return FALSE;
    }
  /* Held for the whole life of the server: gchatctl edits the files only when no gchatd runs. */
  self->lock = acquire_store_lock (self->paths->store, error);
  if (self->lock == NULL)
    return FALSE;
  remove_stale_temporaries (self->paths->store);
  self->key = load_or_create_key (self->paths, &local_error);
  if (self->key == NULL)
    {
      g_set_error (error, GCHATD_SERVER_ERROR, GCHATD_SERVER_ERROR_KEY,
                   _("The server key is unusable: %s"), local_error->message);
      g_error_free (local_error);
      return FALSE;
    }
  self->fingerprint = gchat_rsa_key_get_fingerprint (self->key);
  self->store = gchatd_user_store_new (self->paths->store, error);
  if (self->store == NULL || !open_tickets (self, error))
    return FALSE;
  return open_mailbox (self, error);
}

GchatdServer *
gchatd_server_new (GchatConfig  *config,
                   GError      **error)
{
  g_autoptr(GchatdServer) self = NULL;

  g_return_val_if_fail (GCHAT_IS_CONFIG (config), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  self = g_object_new (GCHATD_TYPE_SERVER, NULL);
  self->config = g_object_ref (config);
  gchat_config_get_argon2_params (config, &self->params);
  self->login_timeout_ms = (guint) gchat_config_get_int (config, "login_timeout") * 1000;
  self->idle_timeout_ms = (guint) gchat_config_get_int (config, "idle_timeout") * 1000;
  if (!open_state (self, error))
    return NULL;
  self->hasher = gchatd_password_hasher_new (0, GCHATD_PASSWORD_HASHER_DEFAULT_MAX_QUEUED);
  self->throttle = gchatd_throttle_new ();
  return g_steal_pointer (&self);
}

void
gchatd_server_set_port (GchatdServer *self,
                        guint16       port)
{
  g_return_if_fail (GCHATD_IS_SERVER (self));
  g_return_if_fail (self->service == NULL);
  self->port_override = port;
}

void
gchatd_server_set_login_timeout (GchatdServer *self,
                                 guint         timeout_ms)
{
  g_return_if_fail (GCHATD_IS_SERVER (self));
  self->login_timeout_ms = timeout_ms;
}

/* Listening */

static gboolean
incoming_cb (GSocketService    *service,
             GSocketConnection *socket_connection,
             GObject           *source_object,
             gpointer           user_data)
{
  GchatdServer *self = user_data;
  GchatdConnection *connection;

  if (self->stopping)
    return TRUE;
  if (g_hash_table_size (self->connections) >= gchat_config_get_max_connections (self->config))
    {
      g_debug ("Refusing a connection: %u clients are connected already",
               g_hash_table_size (self->connections));
      g_io_stream_close (G_IO_STREAM (socket_connection), NULL, NULL);
      return TRUE;
    }
  connection = gchatd_connection_new (self, self->poller, socket_connection,
                                      self->login_timeout_ms);
  g_hash_table_add (self->connections, connection);
  g_signal_connect (connection, "closed", G_CALLBACK (connection_closed_cb), self);
  gchatd_connection_start (connection);
  return TRUE;
}

static GList *
resolve_listen_address (const char  *host,
                        GError     **error)
{
  g_autoptr(GInetAddress) address = g_inet_address_new_from_string (host);
  g_autoptr(GError) local_error = NULL;
  GList *addresses;

  if (address != NULL)
    return g_list_prepend (NULL, g_steal_pointer (&address));
  addresses = g_resolver_lookup_by_name (g_resolver_get_default (), host, NULL, &local_error);
  if (addresses == NULL)
    g_set_error (error, GCHATD_SERVER_ERROR, GCHATD_SERVER_ERROR_LISTEN,
                 _("Cannot find the address “%s” to listen on: %s"), host, local_error->message);
  return addresses;
}

/* Binds every address @host names. With port 0, the first bind picks a free port and the
 * others take the same, so the server has one port. */
static void endpoint_changed_cb (GchatdServer *self,
                                 const char   *user);

/* Clients register their UDP endpoint on the TCP address and port they reached (PROTOCOL.md
 * §7.5). Without it peers can still talk through the relay, so a failure is only logged. */
static void
listen_for_endpoints (GchatdServer       *self,
                      GInetSocketAddress *address)
{
  g_autoptr(GError) error = NULL;

  if (self->endpoints == NULL)
    {
      self->endpoints = gchatd_endpoint_listener_new (address, &error);
      if (self->endpoints != NULL)
        g_signal_connect_object (self->endpoints, "endpoint-changed",
                                 G_CALLBACK (endpoint_changed_cb), self, G_CONNECT_SWAPPED);
    }
  else
    {
      gchatd_endpoint_listener_add_address (self->endpoints, address, &error);
    }
  if (error != NULL)
    g_message ("%s; peers will reach each other through the relay only", error->message);
}

static gboolean
listen_on (GchatdServer  *self,
           const char    *host,
           guint16        port,
           GError       **error)
{
  GList *addresses = resolve_listen_address (host, error);
  g_autoptr(GError) first_error = NULL;
  guint bound = 0;

  for (GList *l = addresses; l != NULL; l = l->next)
    {
      g_autoptr(GSocketAddress) address = g_inet_socket_address_new (l->data, port);
      g_autoptr(GSocketAddress) effective = NULL;
      g_autoptr(GError) local_error = NULL;

      if (!g_socket_listener_add_address (G_SOCKET_LISTENER (self->service), address,
                                          G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, NULL,
                                          &effective, &local_error))
        {
          g_message ("Not listening on %s: %s", host, local_error->message);
          if (first_error == NULL)
            first_error = g_steal_pointer (&local_error);
          continue;
        }
      port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (effective));
      bound++;
      listen_for_endpoints (self, G_INET_SOCKET_ADDRESS (effective));
    }
  g_list_free_full (addresses, g_object_unref);
  if (bound == 0 && first_error != NULL)
    g_set_error (error, GCHATD_SERVER_ERROR, GCHATD_SERVER_ERROR_LISTEN,
                 _("Cannot listen on %s port %u: %s"), host, port, first_error->message);
  self->port = port;
  return bound > 0;
}

static gboolean sweep_cb (gpointer user_data);

static void
box_dropped_cb (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) removed = NULL;

  if (g_task_get_source_tag (G_TASK (result)) == gchatd_mailbox_remove_async)
    removed = gchatd_mailbox_remove_finish (GCHATD_MAILBOX (source), result, &error);
  else
    removed = gchatd_mailbox_remove_receipts_finish (GCHATD_MAILBOX (source), result, &error);
  if (removed == NULL)
    g_message ("The held messages of a deleted account could not be dropped: %s",
               error->message);
}

/* The box of a deleted account goes with it: a later account of the same name must not get
 * what was held for the old one. The messages it sent stay in their recipients' boxes. */
static void
drop_mailbox (GchatdServer *self,
              const char   *name)
{
  g_autoptr(GPtrArray) mail = gchatd_mailbox_peek (self->mailbox, name);
  g_autoptr(GPtrArray) receipts = gchatd_mailbox_peek_receipts (self->mailbox, name);
  g_autoptr(GArray) ids = g_array_new (FALSE, FALSE, sizeof (guint64));

  for (guint i = 0; i < mail->len; i++)
    {
      guint64 id = gchatd_mail_get_id (g_ptr_array_index (mail, i));

      g_array_append_val (ids, id);
    }
  if (ids->len > 0)
    gchatd_mailbox_remove_async (self->mailbox, name, (guint64 *) ids->data, ids->len, NULL,
                                 box_dropped_cb, NULL);
  g_array_set_size (ids, 0);
  for (guint i = 0; i < receipts->len; i++)
    {
      guint64 id = gchatd_mail_receipt_get_id (g_ptr_array_index (receipts, i));

      g_array_append_val (ids, id);
    }
  if (ids->len > 0)
    gchatd_mailbox_remove_receipts_async (self->mailbox, name, (guint64 *) ids->data, ids->len,
                                          NULL, box_dropped_cb, NULL);
}

/* An account deleted with gchatctl: its live session ends at once. */
static void
user_deleted_cb (GchatdServer *self,
                 const char   *name)
{
  g_autofree char *folded = g_ascii_strdown (name, -1);
  GchatdConnection *connection = g_hash_table_lookup (self->sessions, folded);

  if (connection != NULL)
    gchatd_connection_close (connection, "account-deleted", "account deleted");
  drop_mailbox (self, name);
}

static gboolean
revoke_tickets_cb (GchatdServer  *self,
                   const char    *name,
                   GError       **error)
{
  return gchatd_server_revoke_tickets (self, name, error);
}

void
gchatd_server_set_presence_batch (GchatdServer *self,
                                  guint         batch_ms)
{
  g_return_if_fail (GCHATD_IS_SERVER (self));
  self->presence_batch_ms = batch_ms;
}

gboolean
gchatd_server_get_allow_sign_up (GchatdServer *self)
{
  g_return_val_if_fail (GCHATD_IS_SERVER (self), FALSE);
  return gchat_config_get_bool (self->config, "allow_sign_up");
}

void
gchatd_server_set_idle_timeout (GchatdServer *self,
                                guint         timeout_ms)
{
  g_return_if_fail (GCHATD_IS_SERVER (self));
  g_return_if_fail (self->service == NULL);

  self->idle_timeout_ms = timeout_ms;
}

/* Closes logged-in connections that have been silent past the idle deadline: a client killed
 * without a word (power cut, SIGKILL, a lost network) leaves everyone's online list this way.
 * Time is monotonic, so a jump of the wall clock expires nobody. */
static gboolean
idle_check_cb (gpointer user_data)
{
  GchatdServer *self = user_data;
  gint64 now = g_get_monotonic_time ();
  g_autoptr(GPtrArray) idle = g_ptr_array_new_with_free_func (g_object_unref);
  GHashTableIter iter;
  gpointer connection;

  g_hash_table_iter_init (&iter, self->sessions);
  while (g_hash_table_iter_next (&iter, NULL, &connection))
    if (now - gchatd_connection_get_last_activity (connection) >
        (gint64) self->idle_timeout_ms * 1000)
      g_ptr_array_add (idle, g_object_ref (connection));
  for (guint i = 0; i < idle->len; i++)
    {
      GchatdConnection *c = g_ptr_array_index (idle, i);

      g_message ("Disconnecting “%s” at %s: silent for more than %u s",
                 gchatd_connection_get_user (c), gchatd_connection_get_address (c),
                 self->idle_timeout_ms / 1000);
      gchatd_connection_close (c, "idle", "idle deadline");
    }
  return G_SOURCE_CONTINUE;
}

gboolean
gchatd_server_start (GchatdServer  *self,
                     GError       **error)
{
  g_autoptr(GError) local_error = NULL;
  const char *host;
  guint16 port;

  g_return_val_if_fail (GCHATD_IS_SERVER (self), FALSE);
  g_return_val_if_fail (self->service == NULL, FALSE);

  /* The admin's door first: gchatctl goes through it while gchatd runs, so no update is lost. */
  self->control = gchatd_control_new (self->store, self->hasher, &self->params, self->fingerprint);
  g_signal_connect_object (self->control, "user-deleted", G_CALLBACK (user_deleted_cb), self,
                           G_CONNECT_SWAPPED);
  g_signal_connect_object (self->control, "revoke-tickets", G_CALLBACK (revoke_tickets_cb), self,
                           G_CONNECT_SWAPPED);
  if (!gchatd_control_start (self->control, self->paths->control_socket, error))
    {
      g_clear_object (&self->control);
      return FALSE;
    }

  self->poller = gchatd_poller_new (&local_error);
  if (self->poller == NULL)
    {
      g_set_error (error, GCHATD_SERVER_ERROR, GCHATD_SERVER_ERROR_LISTEN,
                   _("Cannot watch client connections: %s"), local_error->message);
      gchatd_control_stop (self->control);
      g_clear_object (&self->control);
      return FALSE;
    }

  host = gchat_config_get_server_address (self->config);
  port = self->port_override >= 0 ? self->port_override
                                  : gchat_config_get_server_port (self->config);
  self->service = g_socket_service_new ();
  g_socket_listener_set_backlog (G_SOCKET_LISTENER (self->service), GCHATD_SERVER_LISTEN_BACKLOG);
  if (!listen_on (self, host, port, error))
    {
      g_clear_object (&self->service);
      g_clear_object (&self->poller);
      gchatd_control_stop (self->control);
      g_clear_object (&self->control);
      return FALSE;
    }
  g_signal_connect (self->service, "incoming", G_CALLBACK (incoming_cb), self);
  g_socket_service_start (self->service);
  self->sweep_id = g_timeout_add_seconds (SWEEP_INTERVAL_S, sweep_cb, self);
  /* Checking a few times per deadline makes a silent client go within 4/3 of it. */
  if (self->idle_timeout_ms > 0)
    self->idle_id = g_timeout_add (MAX (self->idle_timeout_ms / 3, 10), idle_check_cb, self);
  g_message ("Listening on %s port %u; key fingerprint %s", host, self->port, self->fingerprint);
  return TRUE;
}

guint16
gchatd_server_get_port (GchatdServer *self)
{
  g_return_val_if_fail (GCHATD_IS_SERVER (self), 0);
  return self->port;
}

void
gchatd_server_stop (GchatdServer *self)
{
  GList *connections;

  g_return_if_fail (GCHATD_IS_SERVER (self));

  if (self->stopping)
    return;
  self->stopping = TRUE;
  if (self->control != NULL)
    gchatd_control_stop (self->control);
  if (self->service != NULL)
    {
      g_socket_service_stop (self->service);
      g_socket_listener_close (G_SOCKET_LISTENER (self->service));
    }
  /* Closing may drop a connection from the table at once: walk a copy. */
  connections = g_hash_table_get_keys (self->connections);
  for (GList *l = connections; l != NULL; l = l->next)
    g_object_ref (l->data);
  for (GList *l = connections; l != NULL; l = l->next)
    gchatd_connection_close (l->data, "shutdown", "server stopping");
  g_list_free_full (connections, g_object_unref);
}

void
gchatd_server_reload (GchatdServer *self,
                      GchatConfig  *config)
{
  static const char * const restart_keys[] = {
    "server_address", "server_certificate", "server_privateKey", "data_base",
  };

  g_return_if_fail (GCHATD_IS_SERVER (self));
  g_return_if_fail (GCHAT_IS_CONFIG (config));

  for (guint i = 0; i < G_N_ELEMENTS (restart_keys); i++)
    {
      const char *key = restart_keys[i];

      if (g_strcmp0 (gchat_config_get_string (self->config, key),
                     gchat_config_get_string (config, key)) != 0)
        g_message ("The new value of “%s” takes effect at the next start", key);
    }
  if (gchat_config_get_server_port (self->config) != gchat_config_get_server_port (config))
    g_message ("The new value of “server_port” takes effect at the next start");
  g_set_object (&self->config, config);
  gchat_config_get_argon2_params (config, &self->params);
  if (self->control != NULL)
    gchatd_control_set_argon2_params (self->control, &self->params);
  self->login_timeout_ms = (guint) gchat_config_get_int (config, "login_timeout") * 1000;
  self->idle_timeout_ms = (guint) gchat_config_get_int (config, "idle_timeout") * 1000;
  if (self->idle_id != 0)
    {
      g_source_remove (self->idle_id);
      self->idle_id = g_timeout_add (MAX (self->idle_timeout_ms / 3, 10), idle_check_cb, self);
    }
  g_message ("Reloaded the configuration: at most %u connections, sign-up %s",
             gchat_config_get_max_connections (config),
             gchat_config_get_bool (config, "allow_sign_up") ? "open" : "closed");
}

const char *
gchatd_server_get_fingerprint (GchatdServer *self)
{
  g_return_val_if_fail (GCHATD_IS_SERVER (self), NULL);
  return self->fingerprint;
}

guint
gchatd_server_get_n_connections (GchatdServer *self)
{
  g_return_val_if_fail (GCHATD_IS_SERVER (self), 0);
  return g_hash_table_size (self->connections);
}

guint
gchatd_server_get_n_sessions (GchatdServer *self)
{
  g_return_val_if_fail (GCHATD_IS_SERVER (self), 0);
  return g_hash_table_size (self->sessions);
}

GchatRsaKey *
gchatd_server_get_key (GchatdServer *self)
{
  g_return_val_if_fail (GCHATD_IS_SERVER (self), NULL);
  return self->key;
}

GchatdWorkerPool *
gchatd_server_get_crypto_threads (GchatdServer *self)
{
  g_return_val_if_fail (GCHATD_IS_SERVER (self), NULL);

  return self->crypto_threads;
}

static gboolean
ephemeral_wipe_cb (gpointer user_data)
{
  GchatdServer *self = user_data;

  gchat_memzero (self->eph_secret, sizeof self->eph_secret);
  self->eph_wipe_id = 0;
  return G_SOURCE_REMOVE;
}

/* Made on the main loop: one X25519 a second at most is not worth a thread hop. Each handshake
 * wipes its copy when it is done, so a key pair outlives its last use by under a second plus
 * the log-in deadline of a handshake that never finishes. */
gboolean
gchatd_server_get_ephemeral (GchatdServer  *self,
                             guint8         secret[GCHAT_X25519_SIZE],
                             guint8         public_key[GCHAT_X25519_SIZE],
                             GError       **error)
{
  g_return_val_if_fail (GCHATD_IS_SERVER (self), FALSE);

  if (self->eph_wipe_id == 0)
    {
      if (!gchat_x25519_keypair (self->eph_secret, self->eph_public, error))
        return FALSE;
      self->eph_wipe_id = g_timeout_add (GCHATD_SERVER_EPHEMERAL_LIFETIME_MS, ephemeral_wipe_cb,
                                         self);
    }
  memcpy (secret, self->eph_secret, GCHAT_X25519_SIZE);
  memcpy (public_key, self->eph_public, GCHAT_X25519_SIZE);
  return TRUE;
}

GchatdUserStore *
gchatd_server_get_store (GchatdServer *self)
{
  g_return_val_if_fail (GCHATD_IS_SERVER (self), NULL);
  return self->store;
}

GchatdPasswordHasher *
gchatd_server_get_hasher (GchatdServer *self)
{
  g_return_val_if_fail (GCHATD_IS_SERVER (self), NULL);
  return self->hasher;
}

GchatdThrottle *
gchatd_server_get_throttle (GchatdServer *self)
{
  g_return_val_if_fail (GCHATD_IS_SERVER (self), NULL);
  return self->throttle;
}

GchatdMailbox *
gchatd_server_get_mailbox (GchatdServer *self)
{
  g_return_val_if_fail (GCHATD_IS_SERVER (self), NULL);
  return self->mailbox;
}

GchatdConnection *
gchatd_server_lookup_session (GchatdServer *self,
                              const char   *user)
{
  g_autofree char *folded = NULL;

  g_return_val_if_fail (GCHATD_IS_SERVER (self), NULL);
  g_return_val_if_fail (user != NULL, NULL);

  folded = g_ascii_strdown (user, -1);
  return g_hash_table_lookup (self->sessions, folded);
}

void
gchatd_server_get_argon2_params (GchatdServer      *self,
                                 GchatArgon2Params *params)
{
  g_return_if_fail (GCHATD_IS_SERVER (self));
  *params = self->params;
}

/* Presence */

/* Cuts @names into messages of at most GCHAT_USER_LIST_MAX names each; returns the next
 * position. */
static guint
take_names (GPtrArray          *names,
            guint               start,
            GchatMessage       *message,
            const char         *field)
{
  guint n = MIN (names->len - start, GCHAT_USER_LIST_MAX);
  g_autofree const char **slice = g_new0 (const char *, n + 1);

  memcpy (slice, names->pdata + start, n * sizeof (char *));
  gchat_message_set_strv (message, field, slice);
  return start + n;
}

static void presence_schedule (GchatdServer *self);

/* Sends the batch to the next slice of sessions. Sending to ten thousand sessions at once held
 * the main loop for a hundred milliseconds, and every logged-in user's request waited; a slice
 * at a time, their requests are answered in between. A session closed since the flush is
 * skipped by gchatd_connection_send_encoded(); one that logged in since got the list of now. */
static gboolean
fanout_cb (gpointer user_data)
{
  GchatdServer *self = user_data;
  gint64 start = g_get_monotonic_time ();
  guint end = MIN (self->fanout_next + PRESENCE_SLICE, self->fanout_sessions->len);

  for (; self->fanout_next < end; self->fanout_next++)
    {
      GchatdConnection *connection = g_ptr_array_index (self->fanout_sessions, self->fanout_next);

      gchatd_connection_send_encoded_all (connection, self->fanout_next < self->fanout_n_full
                                                      ? self->fanout_full
                                                      : self->fanout_messages);
    }
  self->fanout_busy += g_get_monotonic_time () - start;
  if (self->fanout_next < self->fanout_sessions->len)
    return G_SOURCE_CONTINUE;

  /* Under load a batch to everyone is costly: the loop gets twice that time for the log-ins,
   * pair keys and handshakes before the next, which is then bigger and no dearer per name. */
  self->presence_ready_at = g_get_monotonic_time () + 2 * self->fanout_busy;
  g_clear_pointer (&self->fanout_sessions, g_ptr_array_unref);
  g_clear_pointer (&self->fanout_messages, g_ptr_array_unref);
  g_clear_pointer (&self->fanout_full, g_ptr_array_unref);
  self->fanout_id = 0;
  if (g_hash_table_size (self->presence) > 0 && self->presence_id == 0)
    presence_schedule (self);
  return G_SOURCE_REMOVE;
}

/* Encodes `presence` messages telling @joined and @left into @messages. */
static void
encode_presence (GPtrArray *joined,
                 GPtrArray *left,
                 GPtrArray *messages)
{
  guint j = 0, l = 0;

  while (j < joined->len || l < left->len)
    {
      g_autoptr(GchatMessage) message = gchat_message_new (GCHAT_MESSAGE_PRESENCE);
      GBytes *json;

      if (j < joined->len)
        j = take_names (joined, j, message, "joined");
      if (l < left->len)
        l = take_names (left, l, message, "left");
      json = gchat_message_encode (message, NULL);
      if (json != NULL)
        g_ptr_array_add (messages, json);
    }
}

/* A batch comes in two encodings. Sessions that logged in during the window got an online list
 * of some moment in it: they get the state now of every name that changed, which, applied to
 * any list that was right at some time in the window, gives the list of now. Sessions older
 * than the window had the list as the last batch left it: they get only the names whose state
 * differs from then, so a user who comes and goes (or reconnects) within the window costs them
 * nothing; during resumption churn with ten thousand online that was most of gchatd's sending. */
static gboolean
presence_flush_cb (gpointer user_data)
{
  GchatdServer *self = user_data;
  g_autoptr(GHashTable) batch = NULL;
  g_autoptr(GPtrArray) joined = g_ptr_array_new ();
  g_autoptr(GPtrArray) left = g_ptr_array_new ();
  g_autoptr(GPtrArray) net_joined = g_ptr_array_new ();
  g_autoptr(GPtrArray) net_left = g_ptr_array_new ();
  g_autoptr(GPtrArray) older = NULL;
  guint64 boundary = self->presence_serial;
  GHashTableIter iter;
  gpointer name, value;

  self->presence_id = 0;
  /* One batch at a time, in order: the next waits for this one to reach everyone. */
  if (self->fanout_id != 0)
    return G_SOURCE_REMOVE;
  batch = g_steal_pointer (&self->presence);
  self->presence = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_hash_table_iter_init (&iter, batch);
  while (g_hash_table_iter_next (&iter, &name, &value))
    {
      guint bits = GPOINTER_TO_UINT (value);
      gboolean now = (bits & PRESENCE_NOW) != 0;

      g_ptr_array_add (now ? joined : left, name);
      /* The state before the window was the opposite of the first change. */
      if (now == ((bits & PRESENCE_FIRST) != 0))
        g_ptr_array_add (now ? net_joined : net_left, name);
    }
  self->fanout_full = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  self->fanout_messages = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  encode_presence (joined, left, self->fanout_full);
  encode_presence (net_joined, net_left, self->fanout_messages);

  self->fanout_sessions = g_ptr_array_new_full (g_hash_table_size (self->sessions),
                                                g_object_unref);
  older = g_ptr_array_new_full (g_hash_table_size (self->sessions), g_object_unref);
  g_hash_table_iter_init (&iter, self->sessions);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      guint64 serial = gchatd_connection_get_session_serial (value);

      self->presence_serial = MAX (self->presence_serial, serial);
      if (serial > boundary)
        g_ptr_array_add (self->fanout_sessions, g_object_ref (value));
      else if (self->fanout_messages->len > 0)
        g_ptr_array_add (older, g_object_ref (value));
    }
  self->fanout_n_full = self->fanout_sessions->len;
  for (guint i = 0; i < older->len; i++)
    g_ptr_array_add (self->fanout_sessions, g_object_ref (g_ptr_array_index (older, i)));
  self->fanout_next = 0;
  self->fanout_busy = 0;
  /* At the loop's own priority, so that reading and writing sockets go on between slices. */
  self->fanout_id = g_idle_add_full (G_PRIORITY_DEFAULT, fanout_cb, self, NULL);
  return G_SOURCE_REMOVE;
}

static void
presence_schedule (GchatdServer *self)
{
  gint64 now = g_get_monotonic_time ();
  gint64 delay_ms = self->presence_batch_ms;

  if (self->presence_ready_at > now + delay_ms * 1000)
    delay_ms = (self->presence_ready_at - now + 999) / 1000;
  self->presence_id = g_timeout_add ((guint) delay_ms, presence_flush_cb, self);
}

static void
presence_record (GchatdServer *self,
                 const char   *user,
                 gboolean      online)
{
  gpointer bits;

  if (g_hash_table_lookup_extended (self->presence, user, NULL, &bits))
    g_hash_table_insert (self->presence, g_strdup (user),
                         GUINT_TO_POINTER ((GPOINTER_TO_UINT (bits) & PRESENCE_FIRST)
                                           | (online ? PRESENCE_NOW : 0)));
  else
    g_hash_table_insert (self->presence, g_strdup (user),
                         GUINT_TO_POINTER (online ? PRESENCE_NOW | PRESENCE_FIRST : 0));
  if (self->presence_id == 0 && self->fanout_id == 0)
    presence_schedule (self);
}

static GPtrArray *
dup_session_names (GchatdServer *self)
{
  GPtrArray *names = g_ptr_array_new_full (g_hash_table_size (self->sessions), NULL);
  GHashTableIter iter;
  gpointer session;

  g_hash_table_iter_init (&iter, self->sessions);
  while (g_hash_table_iter_next (&iter, NULL, &session))
    g_ptr_array_add (names, (gpointer) gchatd_connection_get_user (session));
  return names;
}

/* One `users` message of at most GCHAT_USER_LIST_MAX of @names from @start. */
static GBytes *
encode_users (GPtrArray *names,
              guint      start,
              guint     *next,
              gboolean   more,
              gint64     id)
{
  g_autoptr(GchatMessage) message = gchat_message_new (GCHAT_MESSAGE_USERS);

  *next = take_names (names, start, message, "users");
  if (more)
    gchat_message_set_bool (message, "more", TRUE);
  if (id >= 0)
    gchat_message_set_int (message, "id", id);
  return gchat_message_encode (message, NULL);
}

/* The online list sent at each log-in is kept encoded (gchatd-online-list.c): during a mass
 * log-in, encoding ten thousand names for each new session would be most of the server's work. */
static void
send_kept_user_list (GchatdServer     *self,
                     GchatdConnection *connection)
{
  g_autoptr(GPtrArray) messages = gchatd_online_list_encode (self->online);

  gchatd_connection_send_encoded_all (connection, messages);
}

void
gchatd_server_send_user_list (GchatdServer     *self,
                              GchatdConnection *connection,
                              gint64            id)
{
  g_autoptr(GPtrArray) names = NULL;
  guint next = 0;

  g_return_if_fail (GCHATD_IS_SERVER (self));

  if (id < 0 && g_hash_table_size (self->sessions) > 0)
    {
      send_kept_user_list (self, connection);
      return;
    }
  names = dup_session_names (self);
  do
    {
      g_autoptr(GBytes) json = NULL;
      guint start = next;

      json = encode_users (names, start, &next, next + GCHAT_USER_LIST_MAX < names->len, id);
      if (json != NULL)
        gchatd_connection_send_encoded (connection, json);
    }
  while (next < names->len);
}

void
gchatd_server_session_begin (GchatdServer     *self,
                             GchatdConnection *connection)
{
  const char *user = gchatd_connection_get_user (connection);
  g_autofree char *folded = g_ascii_strdown (user, -1);
  GchatdConnection *old;

  g_return_if_fail (GCHATD_IS_SERVER (self));

  old = g_hash_table_lookup (self->sessions, folded);
  if (old != NULL)
    {
      /* Out of the table first, so its end does not announce the user as gone. */
      g_hash_table_remove (self->sessions, folded);
      g_message ("“%s” logged in again from %s; closing the session from %s", user,
                 gchatd_connection_get_address (connection), gchatd_connection_get_address (old));
      gchatd_connection_close (old, "replaced", "replaced by a new log-in");
    }
  g_hash_table_insert (self->sessions, g_strdup (folded), connection);
  if (old == NULL)
    gchatd_online_list_add (self->online, user);
  gchatd_server_send_user_list (self, connection, -1);
  if (old == NULL)
    presence_record (self, user, TRUE);
}

void
gchatd_server_session_end (GchatdServer     *self,
                           GchatdConnection *connection)
{
  const char *user = gchatd_connection_get_user (connection);
  g_autofree char *folded = NULL;

  g_return_if_fail (GCHATD_IS_SERVER (self));

  if (user == NULL)
    return;
  folded = g_ascii_strdown (user, -1);
  if (g_hash_table_lookup (self->sessions, folded) != connection)
    return;
  g_hash_table_remove (self->sessions, folded);
  gchatd_online_list_remove (self->online, user);
  if (self->endpoints != NULL)
    gchatd_endpoint_listener_unregister (self->endpoints, user);
  g_message ("The session of “%s” ended", user);
  presence_record (self, user, FALSE);
}

/* Pair keys */

guint32
gchatd_server_register_endpoint (GchatdServer     *self,
                                 GchatdConnection *connection)
{
  g_autoptr(GError) error = NULL;
  const guint8 *key = gchatd_connection_get_endpoint_key (connection);
  guint32 id;

  g_return_val_if_fail (GCHATD_IS_SERVER (self), 0);

  if (self->endpoints == NULL || key == NULL)
    return 0;
  id = gchatd_endpoint_listener_register (self->endpoints, gchatd_connection_get_user (connection),
                                          key, &error);
  if (id == 0)
    g_message ("No endpoint registration for “%s”: %s", gchatd_connection_get_user (connection),
               error->message);
  return id;
}

static void
send_pair_key (GchatdServer     *self,
               GchatdConnection *to,
               GchatdConnection *other,
               const PairKey    *pair,
               gint64            id)
{
  g_autoptr(GchatMessage) message = gchat_message_new (GCHAT_MESSAGE_PAIR_KEY);
  g_auto(GStrv) endpoints = NULL;

  /* Where the other side's peer socket is, as the server saw it (PROTOCOL.md §7.5). */
  if (self->endpoints != NULL)
    endpoints = gchatd_endpoint_listener_dup_endpoints (self->endpoints,
                                                        gchatd_connection_get_user (other));
  if (endpoints != NULL)
    gchat_message_set_strv (message, "endpoints", (const char * const *) endpoints);

  gchat_message_set_string (message, "user", gchatd_connection_get_user (other));
  gchat_message_set_int (message, "key_id", pair->key_id);
  gchat_message_set_bytes (message, "key", pair->key, sizeof pair->key);
  gchat_message_set_int (message, "expires", pair->expires);
  if (id >= 0)
    gchat_message_set_int (message, "id", id);
  gchatd_connection_send_message (to, message);
}

static gboolean
pair_key_is_live (const PairKey *pair,
                  guint64        serial_lo,
                  guint64        serial_hi,
                  gint64         now)
{
  return pair->serial_lo == serial_lo && pair->serial_hi == serial_hi && pair->expires > now;
}

/* The live key of the pair, or a fresh one: when both users ask for each other at once, the
 * second request finds the key of the first, so both end with the same key. */
static const PairKey *
pair_key_get (GchatdServer     *self,
              GchatdConnection *a,
              const char       *folded_a,
              GchatdConnection *b,
              const char       *folded_b,
              guint32           replace)
{
  gboolean a_first = strcmp (folded_a, folded_b) < 0;
  guint64 serial_lo = gchatd_connection_get_session_serial (a_first ? a : b);
  guint64 serial_hi = gchatd_connection_get_session_serial (a_first ? b : a);
  g_autofree char *id = g_strconcat (a_first ? folded_a : folded_b, "\n",
                                     a_first ? folded_b : folded_a, NULL);
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  PairKey *pair = g_hash_table_lookup (self->pairs, id);

  /* A client replacing a key it used enough (PROTOCOL.md §7.4) gets a new one; the other side
   * asking for the same replacement a moment later then gets that new one. */
  if (pair != NULL && pair_key_is_live (pair, serial_lo, serial_hi, now)
      && (replace == 0 || pair->key_id != replace))
    return pair;
  pair = g_new0 (PairKey, 1);
  gchat_random_bytes (pair->key, sizeof pair->key);
  pair->key_id = self->next_key_id;
  /* Ids count from 1 and skip 0 when they wrap: a key id is never 0, which reads as none. */
  self->next_key_id = self->next_key_id == G_MAXUINT32 ? 1 : self->next_key_id + 1;
  pair->expires = now + GCHATD_SERVER_PAIR_KEY_LIFETIME_S;
  pair->serial_lo = serial_lo;
  pair->serial_hi = serial_hi;
  g_hash_table_replace (self->pairs, g_steal_pointer (&id), pair);
  return pair;
}

const char *
gchatd_server_talk (GchatdServer     *self,
                    GchatdConnection *connection,
                    const char       *user,
                    guint32           replace,
                    gint64            id)
{
  g_autoptr(GchatdUserRecord) record = NULL;
  g_autofree char *folded_self = NULL;
  g_autofree char *folded_other = NULL;
  GchatdConnection *other;
  const PairKey *pair;

  g_return_val_if_fail (GCHATD_IS_SERVER (self), "internal");

  if (!gchatd_user_name_validate (user, NULL)
      || (record = gchatd_user_store_lookup (self->store, user)) == NULL)
    return "unknown-user";
  folded_self = g_ascii_strdown (gchatd_connection_get_user (connection), -1);
  folded_other = g_ascii_strdown (gchatd_user_record_get_name (record), -1);
  if (g_str_equal (folded_self, folded_other))
    return "bad-name";
  other = g_hash_table_lookup (self->sessions, folded_other);
  if (other == NULL)
    return "offline";
  pair = pair_key_get (self, connection, folded_self, other, folded_other, replace);
  send_pair_key (self, connection, other, pair, id);
  send_pair_key (self, other, connection, pair, -1);
  return NULL;
}

/* Housekeeping */

static gboolean
pair_key_is_stale (gpointer key,
                   gpointer value,
                   gpointer user_data)
{
  GchatdServer *self = user_data;
  g_auto(GStrv) names = g_strsplit (key, "\n", 2);
  GchatdConnection *lo = g_hash_table_lookup (self->sessions, names[0]);
  GchatdConnection *hi = names[1] ? g_hash_table_lookup (self->sessions, names[1]) : NULL;
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;

  return lo == NULL || hi == NULL
         || !pair_key_is_live (value, gchatd_connection_get_session_serial (lo),
                               gchatd_connection_get_session_serial (hi), now);
}

static gboolean
sweep_cb (gpointer user_data)
{
  GchatdServer *self = user_data;

  g_hash_table_foreach_remove (self->pairs, pair_key_is_stale, self);
  gchatd_throttle_expire (self->throttle, g_get_monotonic_time ());
  return G_SOURCE_CONTINUE;
}

/* A user's endpoints changed (a new network, a NAT rebinding): everyone holding a live pair key
 * with that user gets the key again with the new endpoints, so direct delivery keeps working. */
static void
endpoint_changed_cb (GchatdServer *self,
                     const char   *user)
{
  g_autofree char *folded = g_ascii_strdown (user, -1);
  GchatdConnection *changed = g_hash_table_lookup (self->sessions, folded);
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  GHashTableIter iter;
  gpointer id, value;

  if (changed == NULL)
    return;
  g_hash_table_iter_init (&iter, self->pairs);
  while (g_hash_table_iter_next (&iter, &id, &value))
    {
      g_auto(GStrv) names = g_strsplit (id, "\n", 2);
      const char *other_name = g_str_equal (names[0], folded) ? names[1] : names[0];
      GchatdConnection *other;
      gboolean changed_first;

      if (!g_str_equal (names[0], folded) && !g_str_equal (names[1], folded))
        continue;
      other = g_hash_table_lookup (self->sessions, other_name);
      changed_first = g_str_equal (names[0], folded);
      if (other != NULL &&
          pair_key_is_live (value, gchatd_connection_get_session_serial (changed_first ? changed : other),
                            gchatd_connection_get_session_serial (changed_first ? other : changed), now))
        send_pair_key (self, other, changed, value, -1);
    }
}

/* Relay and offline delivery */

static void
relay_drop (GchatdServer     *self,
            GchatdConnection *from,
            const char       *why)
{
  self->n_relay_dropped++;
  /* Never the payload, nor a name a client made up: only why, and who sent it. */
  g_debug ("Dropped a datagram “%s” asked to relay: %s (%" G_GUINT64_FORMAT " dropped so far)",
           gchatd_connection_get_user (from), why, self->n_relay_dropped);
}

void
gchatd_server_relay (GchatdServer     *self,
                     GchatdConnection *from,
                     const char       *to,
                     GBytes           *datagram)
{
  g_autoptr(GchatMessage) relayed = NULL;
  GchatdConnection *other;

  g_return_if_fail (GCHATD_IS_SERVER (self));
  g_return_if_fail (datagram != NULL);

  other = gchatd_server_lookup_session (self, to);
  if (other == NULL)
    {
      relay_drop (self, from, "the recipient is not online");
      return;
    }
  if (other == from)
    {
      relay_drop (self, from, "it was addressed to its sender");
      return;
    }
  /* A datagram may be lost: a recipient that does not read loses datagrams rather than its
   * connection, and the sender never waits for it. */
  if (gchatd_connection_get_queued_output (other) > GCHATD_CONNECTION_MAX_RELAY_QUEUED)
    {
      relay_drop (self, from, "the recipient does not read fast enough");
      return;
    }
  relayed = gchat_message_new (GCHAT_MESSAGE_RELAYED);
  gchat_message_set_string (relayed, "from", gchatd_connection_get_user (from));
  gchat_message_set_bytes (relayed, "datagram", g_bytes_get_data (datagram, NULL),
                           g_bytes_get_size (datagram));
  self->n_relayed++;
  gchatd_connection_send_message (other, relayed);
}

guint64
gchatd_server_get_n_relayed (GchatdServer *self)
{
  g_return_val_if_fail (GCHATD_IS_SERVER (self), 0);
  return self->n_relayed;
}

guint64
gchatd_server_get_n_relay_dropped (GchatdServer *self)
{
  g_return_val_if_fail (GCHATD_IS_SERVER (self), 0);
  return self->n_relay_dropped;
}

void
gchatd_server_mail_posted (GchatdServer *self,
                           GchatdMail   *mail)
{
  GchatdConnection *recipient;

  g_return_if_fail (GCHATD_IS_SERVER (self));
  g_return_if_fail (mail != NULL);

  recipient = gchatd_server_lookup_session (self, gchatd_mail_get_recipient (mail));
  if (recipient != NULL)
    gchatd_connection_push_mail (recipient, mail);
}

/* What a receipt being saved needs once it is durable. */
typedef struct {
  GchatdServer *server;
  char         *sender;
  char         *recipient;
  guint64       msg_id;
} ReceiptRequest;

static void
receipt_request_free (ReceiptRequest *request)
{
  g_object_unref (request->server);
  g_free (request->sender);
  g_free (request->recipient);
  g_free (request);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (ReceiptRequest, receipt_request_free)

/* The receipt just saved: the newest of @sender's that matches. The mailbox does not return
 * it, and a receipt for the same message twice is harmless. */
static GchatdMailReceipt *
find_receipt (GchatdServer *self,
              const char   *sender,
              const char   *recipient,
              guint64       msg_id)
{
  g_autoptr(GPtrArray) receipts = gchatd_mailbox_peek_receipts (self->mailbox, sender);

  for (guint i = receipts->len; i > 0; i--)
    {
      GchatdMailReceipt *receipt = g_ptr_array_index (receipts, i - 1);

      if (gchatd_mail_receipt_get_msg_id (receipt) == msg_id
          && g_ascii_strcasecmp (gchatd_mail_receipt_get_recipient (receipt), recipient) == 0)
        return gchatd_mail_receipt_ref (receipt);
    }
  return NULL;
}

static void
receipt_added_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  g_autoptr(ReceiptRequest) request = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatdMailReceipt) receipt = NULL;
  GchatdConnection *sender;

  if (!gchatd_mailbox_add_receipt_finish (GCHATD_MAILBOX (source), result, &error))
    {
      g_message ("No “delivered” receipt for “%s”: %s", request->sender, error->message);
      return;
    }
  sender = gchatd_server_lookup_session (request->server, request->sender);
  if (sender == NULL)
    return;
  receipt = find_receipt (request->server, request->sender, request->recipient,
                          request->msg_id);
  if (receipt != NULL)
    gchatd_connection_push_receipt (sender, receipt);
}

void
gchatd_server_mail_delivered (GchatdServer *self,
                              GPtrArray    *removed)
{
  g_return_if_fail (GCHATD_IS_SERVER (self));
  g_return_if_fail (removed != NULL);

  for (guint i = 0; i < removed->len; i++)
    {
      GchatdMail *mail = g_ptr_array_index (removed, i);
      ReceiptRequest *request = g_new0 (ReceiptRequest, 1);

      request->server = g_object_ref (self);
      request->sender = g_strdup (gchatd_mail_get_sender (mail));
      request->recipient = g_strdup (gchatd_mail_get_recipient (mail));
      request->msg_id = gchatd_mail_get_msg_id (mail);
      gchatd_mailbox_add_receipt_async (self->mailbox, request->sender, request->recipient,
                                        request->msg_id, NULL, receipt_added_cb, request);
    }
}

gboolean
gchatd_server_flush_mailbox (GchatdServer  *self,
                             guint          timeout_ms,
                             GError       **error)
{
  g_return_val_if_fail (GCHATD_IS_SERVER (self), FALSE);

  return gchatd_mailbox_flush_sync (self->mailbox, timeout_ms, error);
}

/* Session resumption */

void
gchatd_server_set_ticket_lifetime (GchatdServer *self,
                                   guint         seconds)
{
  g_return_if_fail (GCHATD_IS_SERVER (self));
  self->ticket_lifetime_s = seconds;
}

/* Names the account's password record: a new password (new salt) or a new account of the
 * same name gives another tag, and refuses the tickets issued before. */
static void
account_tag (const GchatdUserRecord *record,
             guint8                  tag[GCHAT_TICKET_ACCOUNT_SIZE])
{
  static const char label[] = "gchat v1 ticket account";
  guint8 digest[GCHAT_SHA256_SIZE];

  gchat_sha256_parts (digest, (const guint8 *) label, strlen (label),
                      gchatd_user_record_get_salt (record), (gsize) GCHATD_USER_SALT_SIZE,
                      gchatd_user_record_get_hash (record), (gsize) GCHATD_USER_HASH_SIZE,
                      NULL);
  memcpy (tag, digest, GCHAT_TICKET_ACCOUNT_SIZE);
}

static gint64
unix_now (void)
{
  return g_get_real_time () / G_USEC_PER_SEC;
}

void
gchatd_server_add_ticket (GchatdServer *self,
                          const char   *user,
                          GchatMessage *result)
{
  g_autoptr(GchatdUserRecord) record = NULL;
  g_autoptr(GBytes) sealed = NULL;
  g_autoptr(GError) error = NULL;
  GchatTicket ticket = { 0 };

  g_return_if_fail (GCHATD_IS_SERVER (self));
  g_return_if_fail (user != NULL && result != NULL);

  record = gchatd_user_store_lookup (self->store, user);
  if (record == NULL)
    return;
  g_strlcpy (ticket.user, gchatd_user_record_get_name (record), sizeof ticket.user);
  ticket.issued = unix_now ();
  ticket.expires = ticket.issued + self->ticket_lifetime_s;
  account_tag (record, ticket.account);
  gchat_random_bytes (ticket.secret, sizeof ticket.secret);
  sealed = gchat_ticket_seal (self->ticket_key, self->ticket_key_id, &ticket, &error);
  if (sealed != NULL)
    {
      gchat_message_set_bytes (result, "resume", g_bytes_get_data (sealed, NULL),
                               g_bytes_get_size (sealed));
      gchat_message_set_bytes (result, "resume_secret", ticket.secret, sizeof ticket.secret);
      gchat_message_set_int (result, "resume_expires", ticket.expires);
    }
  else
    g_message ("No resumption ticket for “%s”: %s", user, error->message);
  gchat_memzero (&ticket, sizeof ticket);
}

gboolean
gchatd_server_open_ticket (GchatdServer  *self,
                           GBytes        *ticket,
                           GchatTicket   *out,
                           GError       **error)
{
  g_return_val_if_fail (GCHATD_IS_SERVER (self), FALSE);

  /* Expiry is checked by gchatd_server_check_ticket(), so that an expired ticket whose
   * client proves its secret is answered `resume-refused` rather than dropped. */
  return gchat_ticket_open (self->ticket_key, self->ticket_key_id, ticket, 0, out, error);
}

static char *
ticket_refused (GError     **error,
                const char  *message)
{
  g_set_error_literal (error, GCHAT_HANDSHAKE_ERROR, GCHAT_HANDSHAKE_ERROR_TICKET, message);
  return NULL;
}

char *
gchatd_server_check_ticket (GchatdServer       *self,
                            const GchatTicket  *ticket,
                            GError            **error)
{
  g_autoptr(GchatdUserRecord) record = NULL;
  g_autofree char *folded = NULL;
  guint8 tag[GCHAT_TICKET_ACCOUNT_SIZE];
  const gint64 *not_before;

  g_return_val_if_fail (GCHATD_IS_SERVER (self), NULL);
  g_return_val_if_fail (ticket != NULL, NULL);

  if (unix_now () >= ticket->expires)
    return ticket_refused (error, _("The resumption ticket has expired"));
  record = gchatd_user_store_lookup (self->store, ticket->user);
  if (record == NULL)
    return ticket_refused (error, _("The ticket’s account no longer exists"));
  account_tag (record, tag);
  if (!gchat_constant_time_equal (tag, ticket->account, sizeof tag))
    return ticket_refused (error, _("The ticket’s account has a new password"));
  folded = g_ascii_strdown (ticket->user, -1);
  not_before = g_hash_table_lookup (self->revocations, folded);
  if (not_before != NULL && ticket->issued <= *not_before)
    return ticket_refused (error, _("The administrator revoked the ticket"));
  return g_strdup (gchatd_user_record_get_name (record));
}

/* Blocking, like every admin change: it is rare, and answered only once durable. */
gboolean
gchatd_server_revoke_tickets (GchatdServer  *self,
                              const char    *user,
                              GError       **error)
{
  g_return_val_if_fail (GCHATD_IS_SERVER (self), FALSE);
  g_return_val_if_fail (user != NULL, FALSE);

  return gchatd_revocations_add (self->paths->revocations, self->revocations, user, unix_now (),
                                 GCHATD_SERVER_TICKET_LIFETIME_S, error);
}

guint64
gchatd_server_get_n_resumed (GchatdServer *self)
{
  g_return_val_if_fail (GCHATD_IS_SERVER (self), 0);
  return self->n_resumed;
}

void
gchatd_server_count_resumed (GchatdServer *self)
{
  g_return_if_fail (GCHATD_IS_SERVER (self));
  self->n_resumed++;
}
