/* SPDX-License-Identifier: GPL-3.0-or-later */
/* One epoll set for every client socket, watched by a single main-loop source. */

#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define GCHATD_POLLER_ERROR (gchatd_poller_error_quark ())

typedef enum {
  GCHATD_POLLER_ERROR_FAILED, /* the kernel refused to make or extend the epoll set */
} GchatdPollerError;

/* Called with what of the watched @events is ready, plus G_IO_ERR or G_IO_HUP when the socket
 * failed or hung up. It may add, modify or remove any descriptor, its own included. */
typedef void (*GchatdPollerFunc) (int          fd,
                                  GIOCondition ready,
                                  gpointer     user_data);

#define GCHATD_TYPE_POLLER (gchatd_poller_get_type ())
G_DECLARE_FINAL_TYPE (GchatdPoller, gchatd_poller, GCHATD, POLLER, GObject)

GQuark        gchatd_poller_error_quark (void);

/* Attaches its one source to the thread-default main context. */
GchatdPoller *gchatd_poller_new         (GError          **error);
/* Watches @fd for @events (G_IO_IN, G_IO_OUT; 0 watches nothing, not even a hang-up) until
 * gchatd_poller_remove(), which must come before @fd is closed. @user_data is not referenced. */
gboolean      gchatd_poller_add         (GchatdPoller     *self,
                                         int               fd,
                                         GIOCondition      events,
                                         GchatdPollerFunc  func,
                                         gpointer          user_data,
                                         GError          **error);
void          gchatd_poller_modify      (GchatdPoller     *self,
                                         int               fd,
                                         GIOCondition      events);
/* After it returns, @fd's function is not called again, even for events already collected. */
void          gchatd_poller_remove      (GchatdPoller     *self,
                                         int               fd);

G_END_DECLS
