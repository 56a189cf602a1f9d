/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Tests of GchatdPoller on real socket pairs: readiness, modify, hang-up, removal mid-dispatch. */

#include <sys/socket.h>
#include <unistd.h>

#include "gchatd-poller.h"

typedef struct {
  int          fds[2];
  guint        calls;
  GIOCondition last;
  GchatdPoller *poller;
  int          *remove_fd; /* removed (and counted) by the handler when set */
} Pair;

static void
pair_open (Pair *pair)
{
  g_assert_no_errno (socketpair (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                                 pair->fds));
}

static void
pair_close (Pair *pair)
{
  for (guint i = 0; i < 2; i++)
    if (pair->fds[i] >= 0)
      close (pair->fds[i]);
}

static void
on_ready (int          fd,
          GIOCondition ready,
          gpointer     user_data)
{
  Pair *pair = user_data;
  char buffer[64];

  pair->calls++;
  pair->last = ready;
  if (ready & G_IO_IN)
    while (read (fd, buffer, sizeof buffer) > 0)
      ;
  if (pair->remove_fd != NULL)
    gchatd_poller_remove (pair->poller, *pair->remove_fd);
}

/* Runs the loop until @pair was called or a second passed. */
static void
iterate_for (Pair *pair,
             guint calls)
{
  gint64 deadline = g_get_monotonic_time () + G_USEC_PER_SEC;

  while (pair->calls < calls && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, FALSE);
}

static void
test_readable (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatdPoller) poller = gchatd_poller_new (&error);
  Pair pair = { { -1, -1 } };

  g_assert_no_error (error);
  pair_open (&pair);
  g_assert_true (gchatd_poller_add (poller, pair.fds[0], G_IO_IN, on_ready, &pair, &error));
  iterate_for (&pair, 1);
  g_assert_cmpuint (pair.calls, ==, 0);

  g_assert_cmpint (write (pair.fds[1], "x", 1), ==, 1);
  iterate_for (&pair, 1);
  g_assert_cmpuint (pair.calls, ==, 1);
  g_assert_true (pair.last & G_IO_IN);

  /* Watching nothing: data waits, unreported, until input is watched again. */
  gchatd_poller_modify (poller, pair.fds[0], 0);
  g_assert_cmpint (write (pair.fds[1], "y", 1), ==, 1);
  iterate_for (&pair, 2);
  g_assert_cmpuint (pair.calls, ==, 1);
  gchatd_poller_modify (poller, pair.fds[0], G_IO_IN);
  iterate_for (&pair, 2);
  g_assert_cmpuint (pair.calls, ==, 2);

  /* A hang-up is reported. */
  close (pair.fds[1]);
  pair.fds[1] = -1;
  iterate_for (&pair, 3);
  g_assert_cmpuint (pair.calls, >=, 3);
  g_assert_true (pair.last & (G_IO_HUP | G_IO_IN));

  gchatd_poller_remove (poller, pair.fds[0]);
  pair_close (&pair);
}

static void
test_writable (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatdPoller) poller = gchatd_poller_new (&error);
  Pair pair = { { -1, -1 } };

  pair_open (&pair);
  g_assert_true (gchatd_poller_add (poller, pair.fds[0], G_IO_OUT, on_ready, &pair, &error));
  iterate_for (&pair, 1);
  g_assert_cmpuint (pair.calls, >=, 1);
  g_assert_true (pair.last & G_IO_OUT);
  gchatd_poller_remove (poller, pair.fds[0]);
  pair_close (&pair);
}

/* A handler removes another descriptor whose event was collected in the same batch: the removed
 * one is not called any more. */
static void
test_remove_during_dispatch (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatdPoller) poller = gchatd_poller_new (&error);
  Pair a = { { -1, -1 } }, b = { { -1, -1 } };
  gint64 deadline;

  pair_open (&a);
  pair_open (&b);
  a.poller = b.poller = poller;
  a.remove_fd = &b.fds[0];
  b.remove_fd = &a.fds[0];
  g_assert_true (gchatd_poller_add (poller, a.fds[0], G_IO_IN, on_ready, &a, &error));
  g_assert_true (gchatd_poller_add (poller, b.fds[0], G_IO_IN, on_ready, &b, &error));
  g_assert_cmpint (write (a.fds[1], "x", 1), ==, 1);
  g_assert_cmpint (write (b.fds[1], "x", 1), ==, 1);

  deadline = g_get_monotonic_time () + G_USEC_PER_SEC / 5;
  while (g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, FALSE);
  /* Whichever ran first removed the other. */
  g_assert_cmpuint (a.calls + b.calls, ==, 1);

  gchatd_poller_remove (poller, a.calls == 1 ? a.fds[0] : b.fds[0]);
  pair_close (&a);
  pair_close (&b);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/poller/readable", test_readable);
  g_test_add_func ("/poller/writable", test_writable);
  g_test_add_func ("/poller/remove-during-dispatch", test_remove_during_dispatch);
  return g_test_run ();
}
