/* SPDX-License-Identifier: GPL-3.0-or-later */
/* gchatd's UDP socket that learns each session's peer endpoints from endpoint datagrams. */

#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define GCHATD_ENDPOINT_LISTENER_ERROR (gchatd_endpoint_listener_error_quark ())

typedef enum {
  GCHATD_ENDPOINT_LISTENER_ERROR_BIND, /* the UDP socket could not be made or bound */
  GCHATD_ENDPOINT_LISTENER_ERROR_KEY,  /* a session's endpoint key could not be set up */
} GchatdEndpointListenerError;

/* How many datagrams one wakeup of the main loop reads at most, so that a flood on the UDP
 * port cannot keep the loop from serving the TCP connections. */
#define GCHATD_ENDPOINT_LISTENER_BATCH 64

#define GCHATD_TYPE_ENDPOINT_LISTENER (gchatd_endpoint_listener_get_type ())
G_DECLARE_FINAL_TYPE (GchatdEndpointListener, gchatd_endpoint_listener, GCHATD,
                      ENDPOINT_LISTENER, GObject)

/*
 * The listener reads endpoint datagrams (PROTOCOL.md §7.5) on the thread-default main context
 * of the thread that made it, and must be used from that thread only.
 *
 * Signals:
 *   endpoint-changed (const char *user): the endpoints of @user's session (the name as given
 *   to gchatd_endpoint_listener_register()) were learnt or changed. Emitted after the answer
 *   went out; a handler may register or unregister sessions.
 */

GQuark                  gchatd_endpoint_listener_error_quark (void);

/* Binds a non-blocking UDP socket to @bind_address (port 0: any free port). An IPv6 wildcard
 * address also receives IPv4 where the system allows it. */
GchatdEndpointListener *gchatd_endpoint_listener_new        (GInetSocketAddress     *bind_address,
                                                             GError                **error);
/* Receives on one more address too (the server's name may resolve to several); sessions are
 * shared, and each answer leaves from the socket its request came in on. */
gboolean                gchatd_endpoint_listener_add_address (GchatdEndpointListener *self,
                                                             GInetSocketAddress     *bind_address,
                                                             GError                **error);
/* The port the first address bound. */
guint16                 gchatd_endpoint_listener_get_port   (GchatdEndpointListener *self);

/* Starts accepting endpoint datagrams of @user's session (the stored spelling of the name),
 * whose connection exported @key with the label "endpoint". Returns the session's endpoint id
 * for the `endpoint_id` of the log-in `result`: random, never 0 and unique among the live
 * sessions. A session @user had before (in any letter case) is replaced and its endpoints are
 * forgotten. Returns 0 with @error set when the key cannot be set up. */
guint32                 gchatd_endpoint_listener_register   (GchatdEndpointListener *self,
                                                             const char             *user,
                                                             const guint8            key[32],
                                                             GError                **error);
/* Forgets @user's session (in any letter case) and its endpoints; nothing if there is none.
 * Call it only for the session that is still current, as a newer one replaced the older. */
void                    gchatd_endpoint_listener_unregister (GchatdEndpointListener *self,
                                                             const char             *user);

/* The endpoints of @user's session in the form of PROTOCOL.md §5.2 ("203.0.113.7:4000",
 * "[2001:db8::1]:4000"): first the one observed, then the client's local ones, at most
 * GCHAT_ENDPOINT_LIST_MAX. NULL when @user has no session or sent no endpoint datagram yet. */
char                  **gchatd_endpoint_listener_dup_endpoints (GchatdEndpointListener *self,
                                                                const char             *user);

/* Counters for logs and tests. Every datagram read is received, then either accepted or
 * dropped; accepted ones are answered unless the answer would be larger (§7.5) or could not
 * be sent. */
guint64                 gchatd_endpoint_listener_get_n_received (GchatdEndpointListener *self);
guint64                 gchatd_endpoint_listener_get_n_accepted (GchatdEndpointListener *self);
guint64                 gchatd_endpoint_listener_get_n_dropped  (GchatdEndpointListener *self);
guint64                 gchatd_endpoint_listener_get_n_answered (GchatdEndpointListener *self);

G_END_DECLS
