/* SPDX-License-Identifier: GPL-3.0-or-later */
/* One epoll set for every client socket, watched by a single main-loop source. */

/* Why not one GSource per socket: GLib polls every source's descriptor on every turn of the
 * loop, so with ten thousand idle sessions each turn costs ten thousand, whatever is ready. Here
 * the loop polls one descriptor, the epoll set, and a turn costs what is ready. */

#include "config.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <sys/epoll.h>

#include <glib-unix.h>
#include <glib/gi18n-lib.h>

#include "gchatd-poller.h"

/* Events taken from the kernel at once, and how many such batches one turn of the main loop
 * may handle before the other sources (timers, finished worker threads) get their turn. */
#define BATCH 256
#define MAX_BATCHES 4

typedef struct {
  int              fd;
  GIOCondition     events;
  GchatdPollerFunc func;
  gpointer         user_data;
  gboolean         dead; /* removed during a batch that may still name it */
} Entry;

struct _GchatdPoller
{
  GObject     parent_instance;

  int         epoll_fd;
  GSource    *source;
  GHashTable *entries;     /* fd → Entry, owned */
  GPtrArray  *graveyard;   /* Entry removed while dispatching, freed after the batch */
  guint       dispatching;
};

G_DEFINE_FINAL_TYPE (GchatdPoller, gchatd_poller, G_TYPE_OBJECT)

G_DEFINE_QUARK (gchatd-poller-error-quark, gchatd_poller_error)

static void
gchatd_poller_dispose (GObject *object)
{
  GchatdPoller *self = GCHATD_POLLER (object);

  if (self->source != NULL)
    g_source_destroy (self->source);
  g_clear_pointer (&self->source, g_source_unref);

  G_OBJECT_CLASS (gchatd_poller_parent_class)->dispose (object);
}

static void
gchatd_poller_finalize (GObject *object)
{
  GchatdPoller *self = GCHATD_POLLER (object);

  g_clear_pointer (&self->entries, g_hash_table_unref);
  g_clear_pointer (&self->graveyard, g_ptr_array_unref);
  if (self->epoll_fd >= 0)
    close (self->epoll_fd);

  G_OBJECT_CLASS (gchatd_poller_parent_class)->finalize (object);
}

static void
gchatd_poller_class_init (GchatdPollerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = gchatd_poller_dispose;
  object_class->finalize = gchatd_poller_finalize;
}

static void
gchatd_poller_init (GchatdPoller *self)
{
  self->epoll_fd = -1;
  self->entries = g_hash_table_new_full (NULL, NULL, NULL, g_free);
  self->graveyard = g_ptr_array_new_with_free_func (g_free);
}

/* Watching nothing is a one-shot registration without events: the kernel still reports a
 * hang-up or an error, but only once, and then leaves the descriptor alone until it is
 * modified again. A plain empty mask would report a hang-up on every turn. */
static guint32
events_to_epoll (GIOCondition events)
{
  guint32 mask = 0;

  if (events & G_IO_IN)
    mask |= EPOLLIN;
  if (events & G_IO_OUT)
    mask |= EPOLLOUT;
  return mask != 0 ? mask : EPOLLONESHOT;
}

static GIOCondition
events_from_epoll (guint32 mask)
{
  GIOCondition ready = 0;

  if (mask & EPOLLIN)
    ready |= G_IO_IN;
  if (mask & EPOLLOUT)
    ready |= G_IO_OUT;
  if (mask & EPOLLERR)
    ready |= G_IO_ERR;
  if (mask & EPOLLHUP)
    ready |= G_IO_HUP;
  return ready;
}

static void
poller_dispatch (GchatdPoller             *self,
                 const struct epoll_event *events,
                 int                       n)
{
  self->dispatching++;
  for (int i = 0; i < n; i++)
    {
      Entry *entry = events[i].data.ptr;
      GIOCondition ready;

      /* An event collected before its entry was removed or modified must not reach it. */
      if (entry->dead || entry->events == 0)
        continue;
      ready = events_from_epoll (events[i].events) & (entry->events | G_IO_ERR | G_IO_HUP);
      if (ready != 0)
        entry->func (entry->fd, ready, entry->user_data);
    }
  self->dispatching--;
  if (self->dispatching == 0)
    g_ptr_array_set_size (self->graveyard, 0);
}

static gboolean
poller_ready_cb (int          fd,
                 GIOCondition condition,
                 gpointer     user_data)
{
  g_autoptr(GchatdPoller) self = g_object_ref (user_data);
  struct epoll_event events[BATCH];

  for (guint batch = 0; batch < MAX_BATCHES; batch++)
    {
      int n = epoll_wait (self->epoll_fd, events, BATCH, 0);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      poller_dispatch (self, events, n);
      if (n < BATCH)
        break;
    }
  return G_SOURCE_CONTINUE;
}

GchatdPoller *
gchatd_poller_new (GError **error)
{
  g_autoptr(GchatdPoller) self = NULL;

  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  self = g_object_new (GCHATD_TYPE_POLLER, NULL);
  self->epoll_fd = epoll_create1 (EPOLL_CLOEXEC);
  if (self->epoll_fd < 0)
    {
      int saved_errno = errno;

      g_set_error (error, GCHATD_POLLER_ERROR, GCHATD_POLLER_ERROR_FAILED,
                   _("Cannot make an epoll set: %s"), g_strerror (saved_errno));
      return NULL;
    }
  self->source = g_unix_fd_source_new (self->epoll_fd, G_IO_IN);
  g_source_set_callback (self->source, G_SOURCE_FUNC (poller_ready_cb), self, NULL);
  g_source_set_static_name (self->source, "gchatd poller");
  g_source_attach (self->source, g_main_context_get_thread_default ());
  return g_steal_pointer (&self);
}

gboolean
gchatd_poller_add (GchatdPoller      *self,
                   int                fd,
                   GIOCondition       events,
                   GchatdPollerFunc   func,
                   gpointer           user_data,
                   GError           **error)
{
  Entry *entry;
  struct epoll_event event = { .events = events_to_epoll (events) };

  g_return_val_if_fail (GCHATD_IS_POLLER (self), FALSE);
  g_return_val_if_fail (fd >= 0, FALSE);
  g_return_val_if_fail (func != NULL, FALSE);
  g_return_val_if_fail (!g_hash_table_contains (self->entries, GINT_TO_POINTER (fd)), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  entry = g_new0 (Entry, 1);
  entry->fd = fd;
  entry->events = events;
  entry->func = func;
  entry->user_data = user_data;
  event.data.ptr = entry;
  if (epoll_ctl (self->epoll_fd, EPOLL_CTL_ADD, fd, &event) != 0)
    {
      int saved_errno = errno;

      g_free (entry);
      g_set_error (error, GCHATD_POLLER_ERROR, GCHATD_POLLER_ERROR_FAILED,
                   _("Cannot watch a socket: %s"), g_strerror (saved_errno));
      return FALSE;
    }
  g_hash_table_insert (self->entries, GINT_TO_POINTER (fd), entry);
  return TRUE;
}

void
gchatd_poller_modify (GchatdPoller *self,
                      int           fd,
                      GIOCondition  events)
{
  Entry *entry;
  struct epoll_event event = { .events = events_to_epoll (events) };

  g_return_if_fail (GCHATD_IS_POLLER (self));

  entry = g_hash_table_lookup (self->entries, GINT_TO_POINTER (fd));
  g_return_if_fail (entry != NULL);

  event.data.ptr = entry;
  /* It can only fail for a descriptor closed before its removal, a bug of the caller's. */
  if (epoll_ctl (self->epoll_fd, EPOLL_CTL_MOD, fd, &event) != 0)
    g_critical ("Cannot change what is watched on descriptor %d: %s", fd, g_strerror (errno));
  entry->events = events;
}

void
gchatd_poller_remove (GchatdPoller *self,
                      int           fd)
{
  Entry *entry;

  g_return_if_fail (GCHATD_IS_POLLER (self));

  entry = g_hash_table_lookup (self->entries, GINT_TO_POINTER (fd));
  g_return_if_fail (entry != NULL);

  g_hash_table_steal (self->entries, GINT_TO_POINTER (fd));
  epoll_ctl (self->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
  if (self->dispatching > 0)
    {
      entry->dead = TRUE;
      g_ptr_array_add (self->graveyard, entry);
    }
  else
    {
      g_free (entry);
    }
}
