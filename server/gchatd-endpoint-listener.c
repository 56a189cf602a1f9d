/* SPDX-License-Identifier: GPL-3.0-or-later */
/* gchatd's UDP socket that learns each session's peer endpoints from endpoint datagrams. */

/*
 * A client proves with each endpoint datagram (PROTOCOL.md §7.5) that it holds the endpoint key
 * of a live session: the header's key id names the session, its key opens the body, and the
 * body's user name must be the session's. Only then is the source address believed, and only
 * then is anything sent back: one sealed answer, never larger than the datagram it answers, so
 * the port can be used neither to reflect nor to amplify.
 *
 * Memory is one Session per registered session, all of fixed size; a datagram that does not
 * authenticate leaves nothing behind.
 */

#include "config.h"

#include <string.h>

#include <glib/gi18n-lib.h>

#include "gchat-crypto.h"
#include "gchat-datagram.h"
#include "gchat-message.h"
#include "gchatd-endpoint-listener.h"

/* The observed endpoint, then at most GCHAT_DATAGRAM_MAX_ENDPOINTS local ones. */
#define MAX_SESSION_ENDPOINTS (1 + GCHAT_DATAGRAM_MAX_ENDPOINTS)
G_STATIC_ASSERT (MAX_SESSION_ENDPOINTS == GCHAT_ENDPOINT_LIST_MAX);

/* One byte more than a datagram may have, so that a longer one shows up as too long instead of
 * being cut to a size that looks valid. */
#define RECEIVE_BUFFER_SIZE (GCHAT_DATAGRAM_MAX_SIZE + 1)

typedef struct
{
  guint32                id;
  char                  *user;   /* as registered: the server's spelling */
  char                  *folded; /* ASCII lower case; the key of the listener's by_user table */
  GchatEndpointKey      *key;
  guint                  n_endpoints; /* 0 until the first datagram is accepted */
  GchatDatagramEndpoint  endpoints[MAX_SESSION_ENDPOINTS];
} Session;

struct _GchatdEndpointListener
{
  GObject     parent_instance;

  GPtrArray  *sockets; /* of GSocket, one per bound address */
  GPtrArray  *sources; /* of GSource, one per socket */
  guint16     port;
  GHashTable *by_id;   /* endpoint id → Session, which it owns */
  GHashTable *by_user; /* Session.folded → the same Session */

  guint64     n_received;
  guint64     n_accepted;
  guint64     n_dropped;
  guint64     n_answered;
};

G_DEFINE_FINAL_TYPE (GchatdEndpointListener, gchatd_endpoint_listener, G_TYPE_OBJECT)

G_DEFINE_QUARK (gchatd-endpoint-listener-error-quark, gchatd_endpoint_listener_error)

enum {
  SIGNAL_ENDPOINT_CHANGED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

static void
session_free (gpointer data)
{
  Session *session = data;

  g_clear_pointer (&session->key, gchat_endpoint_key_free);
  g_free (session->user);
  g_free (session->folded);
  g_free (session);
}

static void
gchatd_endpoint_listener_dispose (GObject *object)
{
  GchatdEndpointListener *self = GCHATD_ENDPOINT_LISTENER (object);

  if (self->sources != NULL)
    for (guint i = 0; i < self->sources->len; i++)
      g_source_destroy (g_ptr_array_index (self->sources, i));
  g_clear_pointer (&self->sources, g_ptr_array_unref);
  g_clear_pointer (&self->sockets, g_ptr_array_unref);
  /* by_user only borrows the sessions, so it goes first. */
  g_clear_pointer (&self->by_user, g_hash_table_unref);
  g_clear_pointer (&self->by_id, g_hash_table_unref);

  G_OBJECT_CLASS (gchatd_endpoint_listener_parent_class)->dispose (object);
}

static void
gchatd_endpoint_listener_class_init (GchatdEndpointListenerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = gchatd_endpoint_listener_dispose;

  signals[SIGNAL_ENDPOINT_CHANGED] =
    g_signal_new ("endpoint-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_STRING);
}

static void
gchatd_endpoint_listener_init (GchatdEndpointListener *self)
{
  self->by_id = g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL, session_free);
  self->by_user = g_hash_table_new (g_str_hash, g_str_equal);
  self->sockets = g_ptr_array_new_with_free_func (g_object_unref);
  self->sources = g_ptr_array_new_with_free_func ((GDestroyNotify) g_source_unref);
}

/* ---- Endpoints ---- */

static gboolean
endpoint_equal (const GchatDatagramEndpoint *a,
                const GchatDatagramEndpoint *b)
{
  return a->family == b->family && a->port == b->port
         && memcmp (a->address, b->address, a->family == 4 ? 4 : 16) == 0;
}

/* Addresses no peer can send to: the unspecified address, multicast and IPv4 broadcast. */
static gboolean
endpoint_is_usable (const GchatDatagramEndpoint *endpoint)
{
  static const guint8 zero[16] = { 0 };
  static const guint8 broadcast[4] = { 255, 255, 255, 255 };

  if (endpoint->family == 4)
    return memcmp (endpoint->address, zero, 4) != 0
           && memcmp (endpoint->address, broadcast, 4) != 0
           && (endpoint->address[0] & 0xf0) != 0xe0;
  return memcmp (endpoint->address, zero, 16) != 0 && endpoint->address[0] != 0xff;
}

/* Keeps endpoints[0], the observed one, and of the listed ones after it those that are usable
 * and not already in the list. Returns how many are left, in their order. */
static guint
filter_endpoints (GchatDatagramEndpoint *endpoints,
                  guint                  n_endpoints)
{
  guint kept = 1;

  for (guint i = 1; i < n_endpoints; i++)
    {
      gboolean repeat = FALSE;

      for (guint j = 0; j < kept && !repeat; j++)
        repeat = endpoint_equal (&endpoints[i], &endpoints[j]);
      if (!repeat && endpoint_is_usable (&endpoints[i]))
        endpoints[kept++] = endpoints[i];
    }
  return kept;
}

/* "203.0.113.7:4000" or "[2001:db8::1]:4000", as PROTOCOL.md §5.2 writes them. */
static char *
endpoint_to_string (const GchatDatagramEndpoint *endpoint)
{
  g_autoptr(GInetAddress) inet = NULL;
  g_autofree char *text = NULL;

  inet = g_inet_address_new_from_bytes (endpoint->address, endpoint->family == 4
                                                           ? G_SOCKET_FAMILY_IPV4
                                                           : G_SOCKET_FAMILY_IPV6);
  text = g_inet_address_to_string (inet);
  if (endpoint->family == 4)
    return g_strdup_printf ("%s:%u", text, (guint) endpoint->port);
  return g_strdup_printf ("[%s]:%u", text, (guint) endpoint->port);
}

/* Stores the endpoints a datagram gave; TRUE when they differ from those the session had. */
static gboolean
session_update (Session                     *session,
                const GchatDatagramEndpoint *endpoints,
                guint                        n_endpoints)
{
  gboolean changed = n_endpoints != session->n_endpoints;

  for (guint i = 0; i < n_endpoints && !changed; i++)
    changed = !endpoint_equal (&endpoints[i], &session->endpoints[i]);
  for (guint i = 0; i < n_endpoints; i++)
    session->endpoints[i] = endpoints[i];
  session->n_endpoints = n_endpoints;
  return changed;
}

/* ---- Datagrams ---- */

/* The session a datagram claims to belong to, from its clear header alone; NULL when it is no
 * endpoint datagram from a client or names no live session, so no key is ever tried. */
static Session *
lookup_session (GchatdEndpointListener *self,
                const guint8           *data,
                gsize                   len)
{
  GchatDatagramHeader header;
  g_autoptr(GError) error = NULL;

  if (!gchat_datagram_peek_header (data, len, &header, &error))
    {
      g_debug ("Dropped a datagram: %s", error->message);
      return NULL;
    }
  if (header.kind != GCHAT_DATAGRAM_KIND_ENDPOINT || header.direction != 0)
    {
      g_debug ("Dropped a datagram of kind %d, direction %u: not an endpoint datagram",
               header.kind, (guint) header.direction);
      return NULL;
    }
  return g_hash_table_lookup (self->by_id, GUINT_TO_POINTER (header.key_id));
}

/* Opens a datagram with @session's key and reads its endpoints: the observed @source first,
 * then the usable listed ones. Returns how many, or 0 when the datagram is to be dropped. */
static guint
read_endpoints (Session               *session,
                GSocketAddress        *source,
                const guint8          *data,
                gsize                  len,
                GchatDatagramEndpoint  endpoints[MAX_SESSION_ENDPOINTS])
{
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *user = NULL;
  const guint8 *bytes;
  gsize size = 0;
  guint n_listed = 0;

  if (!G_IS_INET_SOCKET_ADDRESS (source)
      || !gchat_datagram_endpoint_from_address (G_INET_SOCKET_ADDRESS (source), &endpoints[0],
                                                &error)
      || !endpoint_is_usable (&endpoints[0]))
    {
      g_debug ("Dropped an endpoint datagram from an unusable source address");
      return 0;
    }
  body = gchat_endpoint_key_open (session->key, data, len, NULL, &error);
  bytes = body != NULL ? g_bytes_get_data (body, &size) : NULL;
  if (body == NULL
      || !gchat_datagram_parse_endpoint (bytes, size, &user, endpoints + 1, &n_listed, &error))
    {
      g_debug ("Dropped an endpoint datagram for “%s”: %s", session->user, error->message);
      return 0;
    }
  /* Names are unique under ASCII case folding, and a client may spell its own either way. */
  if (g_ascii_strcasecmp (user, session->user) != 0)
    {
      g_debug ("Dropped an endpoint datagram of “%s” that names another user", session->user);
      return 0;
    }
  return filter_endpoints (endpoints, 1 + n_listed);
}

/* Tells the client the endpoint the server saw, sealed in the server's direction. The answer
 * carries the same name as the request and one endpoint, so it is no larger than a request
 * that listed at least as many endpoint bytes; otherwise nothing is sent. */
static void
send_answer (GchatdEndpointListener      *self,
             GSocket                     *socket,
             Session                     *session,
             GSocketAddress              *source,
             const GchatDatagramEndpoint *observed,
             gsize                        request_len)
{
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GBytes) datagram = NULL;
  g_autoptr(GError) error = NULL;
  const guint8 *bytes;
  gsize len;

  body = gchat_datagram_build_endpoint (session->user, observed, 1, &error);
  if (body != NULL && GCHAT_DATAGRAM_MIN_SIZE + g_bytes_get_size (body) > request_len)
    return;
  if (body != NULL)
    datagram = gchat_endpoint_key_seal (session->key, g_bytes_get_data (body, NULL),
                                        g_bytes_get_size (body), &error);
  if (datagram == NULL)
    {
      g_debug ("Could not answer “%s”’s endpoint datagram: %s", session->user, error->message);
      return;
    }
  bytes = g_bytes_get_data (datagram, &len);
  /* A full send buffer drops the answer; the client asks again. */
  if (g_socket_send_to (socket, source, (const char *) bytes, len, NULL, &error) < 0)
    {
      g_debug ("Could not answer “%s”’s endpoint datagram: %s", session->user, error->message);
      return;
    }
  self->n_answered++;
}

static void
handle_datagram (GchatdEndpointListener *self,
                 GSocket                *socket,
                 GSocketAddress         *source,
                 const guint8           *data,
                 gsize                   len)
{
  GchatDatagramEndpoint endpoints[MAX_SESSION_ENDPOINTS];
  Session *session;
  guint n_endpoints = 0;
  g_autofree char *changed_user = NULL;

  session = lookup_session (self, data, len);
  if (session != NULL)
    n_endpoints = read_endpoints (session, source, data, len, endpoints);
  if (n_endpoints == 0)
    {
      self->n_dropped++;
      return;
    }

  self->n_accepted++;
  if (session_update (session, endpoints, n_endpoints))
    changed_user = g_strdup (session->user);
  send_answer (self, socket, session, source, &endpoints[0], len);
  /* Last, as a handler may unregister the session and free it. */
  if (changed_user != NULL)
    g_signal_emit (self, signals[SIGNAL_ENDPOINT_CHANGED], 0, changed_user);
}

/* Reads one datagram; FALSE when there is none left or the socket failed. */
static gboolean
receive_one (GchatdEndpointListener *self,
             GSocket                *socket)
{
  guint8 buffer[RECEIVE_BUFFER_SIZE];
  g_autoptr(GSocketAddress) source = NULL;
  g_autoptr(GError) error = NULL;
  gssize len;

  len = g_socket_receive_from (socket, &source, (char *) buffer, sizeof buffer, NULL,
                               &error);
  if (len < 0)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        g_debug ("Could not read an endpoint datagram: %s", error->message);
      return FALSE;
    }
  self->n_received++;
  handle_datagram (self, socket, source, buffer, (gsize) len);
  return TRUE;
}

static gboolean
on_socket_readable (GSocket      *socket,
                    GIOCondition  condition,
                    gpointer      user_data)
{
  g_autoptr(GchatdEndpointListener) self = g_object_ref (user_data);

  /* A signal handler may drop the last other reference, which closes the sockets. */
  for (guint i = 0; i < GCHATD_ENDPOINT_LISTENER_BATCH && self->sockets != NULL; i++)
    if (!receive_one (self, socket))
      break;
  return G_SOURCE_CONTINUE;
}

/* ---- Public API ---- */

static GSocket *
bind_socket (GInetSocketAddress  *bind_address,
             guint16             *port,
             GError             **error)
{
  GSocketAddress *address = G_SOCKET_ADDRESS (bind_address);
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketAddress) bound = NULL;
  g_autoptr(GError) local_error = NULL;
  g_autofree char *where = NULL;

  socket = g_socket_new (g_socket_address_get_family (address), G_SOCKET_TYPE_DATAGRAM,
                         G_SOCKET_PROTOCOL_UDP, &local_error);
  /* No address reuse: for UDP that would let two daemons share the port. */
  if (socket != NULL && g_socket_bind (socket, address, FALSE, &local_error))
    bound = g_socket_get_local_address (socket, &local_error);
  if (bound == NULL)
    {
      where = g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (bind_address));
      g_set_error (error, GCHATD_ENDPOINT_LISTENER_ERROR, GCHATD_ENDPOINT_LISTENER_ERROR_BIND,
                   _("Could not receive endpoint datagrams on UDP %s: %s"), where,
                   local_error->message);
      return NULL;
    }
  g_socket_set_blocking (socket, FALSE);
  *port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  return g_steal_pointer (&socket);
}

GchatdEndpointListener *
gchatd_endpoint_listener_new (GInetSocketAddress  *bind_address,
                              GError             **error)
{
  g_autoptr(GchatdEndpointListener) self = NULL;

  g_return_val_if_fail (G_IS_INET_SOCKET_ADDRESS (bind_address), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  self = g_object_new (GCHATD_TYPE_ENDPOINT_LISTENER, NULL);
  if (!gchatd_endpoint_listener_add_address (self, bind_address, error))
    return NULL;
  return g_steal_pointer (&self);
}

gboolean
gchatd_endpoint_listener_add_address (GchatdEndpointListener  *self,
                                      GInetSocketAddress      *bind_address,
                                      GError                 **error)
{
  GMainContext *context;
  GSocket *socket;
  GSource *source;
  guint16 port = 0;

  g_return_val_if_fail (GCHATD_IS_ENDPOINT_LISTENER (self), FALSE);
  g_return_val_if_fail (G_IS_INET_SOCKET_ADDRESS (bind_address), FALSE);

  socket = bind_socket (bind_address, &port, error);
  if (socket == NULL)
    return FALSE;
  if (self->sockets->len == 0)
    self->port = port;
  g_ptr_array_add (self->sockets, socket);
  source = g_socket_create_source (socket, G_IO_IN, NULL);
  g_source_set_callback (source, G_SOURCE_FUNC (on_socket_readable), self, NULL);
  g_source_set_static_name (source, "gchatd endpoint datagrams");
  context = g_main_context_ref_thread_default ();
  g_source_attach (source, context);
  g_main_context_unref (context);
  g_ptr_array_add (self->sources, source);
  return TRUE;
}

guint16
gchatd_endpoint_listener_get_port (GchatdEndpointListener *self)
{
  g_return_val_if_fail (GCHATD_IS_ENDPOINT_LISTENER (self), 0);

  return self->port;
}

/* A random id that no live session has. The id is sent in the clear, so it need not be
 * secret; being random, it tells nothing about how many sessions there are. */
static guint32
new_endpoint_id (GchatdEndpointListener *self)
{
  guint32 id;

  do
    gchat_random_bytes ((guint8 *) &id, sizeof id);
  while (id == 0 || g_hash_table_contains (self->by_id, GUINT_TO_POINTER (id)));
  return id;
}

guint32
gchatd_endpoint_listener_register (GchatdEndpointListener  *self,
                                   const char              *user,
                                   const guint8             key[32],
                                   GError                 **error)
{
  g_autoptr(GError) local_error = NULL;
  GchatEndpointKey *endpoint_key;
  Session *session;
  guint32 id;

  g_return_val_if_fail (GCHATD_IS_ENDPOINT_LISTENER (self), 0);
  g_return_val_if_fail (user != NULL && user[0] != '\0', 0);
  g_return_val_if_fail (strlen (user) <= GCHAT_USER_NAME_MAX, 0);
  g_return_val_if_fail (key != NULL, 0);
  g_return_val_if_fail (error == NULL || *error == NULL, 0);

  gchatd_endpoint_listener_unregister (self, user);
  id = new_endpoint_id (self);
  endpoint_key = gchat_endpoint_key_new_for_session (key, id, GCHAT_ENDPOINT_SIDE_SERVER,
                                                     &local_error);
  if (endpoint_key == NULL)
    {
      g_set_error (error, GCHATD_ENDPOINT_LISTENER_ERROR, GCHATD_ENDPOINT_LISTENER_ERROR_KEY,
                   _("Could not set up the endpoint key of “%s”: %s"), user,
                   local_error->message);
      return 0;
    }

  session = g_new0 (Session, 1);
  session->id = id;
  session->user = g_strdup (user);
  session->folded = g_ascii_strdown (user, -1);
  session->key = endpoint_key;
  g_hash_table_insert (self->by_id, GUINT_TO_POINTER (id), session);
  g_hash_table_insert (self->by_user, session->folded, session);
  return id;
}

void
gchatd_endpoint_listener_unregister (GchatdEndpointListener *self,
                                     const char             *user)
{
  g_autofree char *folded = NULL;
  Session *session;

  g_return_if_fail (GCHATD_IS_ENDPOINT_LISTENER (self));
  g_return_if_fail (user != NULL);

  folded = g_ascii_strdown (user, -1);
  session = g_hash_table_lookup (self->by_user, folded);
  if (session == NULL)
    return;
  g_hash_table_remove (self->by_user, folded);
  g_hash_table_remove (self->by_id, GUINT_TO_POINTER (session->id));
}

char **
gchatd_endpoint_listener_dup_endpoints (GchatdEndpointListener *self,
                                        const char             *user)
{
  g_autofree char *folded = NULL;
  Session *session;
  char **strv;

  g_return_val_if_fail (GCHATD_IS_ENDPOINT_LISTENER (self), NULL);
  g_return_val_if_fail (user != NULL, NULL);

  folded = g_ascii_strdown (user, -1);
  session = g_hash_table_lookup (self->by_user, folded);
  if (session == NULL || session->n_endpoints == 0)
    return NULL;
  strv = g_new0 (char *, session->n_endpoints + 1);
  for (guint i = 0; i < session->n_endpoints; i++)
    strv[i] = endpoint_to_string (&session->endpoints[i]);
  return strv;
}

guint64
gchatd_endpoint_listener_get_n_received (GchatdEndpointListener *self)
{
  g_return_val_if_fail (GCHATD_IS_ENDPOINT_LISTENER (self), 0);

  return self->n_received;
}

guint64
gchatd_endpoint_listener_get_n_accepted (GchatdEndpointListener *self)
{
  g_return_val_if_fail (GCHATD_IS_ENDPOINT_LISTENER (self), 0);

  return self->n_accepted;
}

guint64
gchatd_endpoint_listener_get_n_dropped (GchatdEndpointListener *self)
{
  g_return_val_if_fail (GCHATD_IS_ENDPOINT_LISTENER (self), 0);

  return self->n_dropped;
}

guint64
gchatd_endpoint_listener_get_n_answered (GchatdEndpointListener *self)
{
  g_return_val_if_fail (GCHATD_IS_ENDPOINT_LISTENER (self), 0);

  return self->n_answered;
}
