/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Measures the GTK client against the speed targets of its issue on an X server, Xvfb
 * normally (not a test: it prints a table for the README and never fails on timing). */

/* How it works. Run it under an X server and a session bus with the accessibility bus started,
 * as on a desktop: tests/bench-gui-start.sh BUILDDIR runs it so under Xvfb (1280×800×24), as the
 * GUI tests run. It makes a temporary folder for the XDG folders, and uses the build's compiled
 * GSettings schema with the memory backend.
 *
 * 1. Start-up: it starts the built `gchat` several times and watches the X server itself
 *    (Xlib, SubstructureNotify on the root window, and a DAMAGE object on every new top-level
 *    window): the time from just before the fork to the first damage after which the first
 *    window mapped with the child's _NET_WM_PID shows content (GTK's first frame; the server's
 *    background fill at the map is damage too, of one colour).
 * 2. Contact list: it re-executes itself with --contacts. That process registers a
 *    GchatApplication (not unique), shows a GchatContactsWindow and feeds the client's
 *    GchatOnlineUsers with 10,000 joins in one batch, 10,000 leaves, then 100 batches of 100
 *    joins every 10 ms, while a 5 ms timeout records the longest gap between its runs (the
 *    longest main-loop stall) and the window's frame clock tells when the change was drawn.
 * 3. History: it starts the built gchatd, writes 100,000 messages with one peer through
 *    GchatHistory, and re-executes itself with --open-chat: that process creates an account
 *    with the application's own client, tells the application it is logged in (the log-in
 *    dialog's "logged-in" signal), then opens the chat and measures the time to its first
 *    frame and the resident memory before and after.
 * A frame counts as drawn when GdkSurface::render ran for the window and the frame clock
 * reached "after-paint". The children print "result KEY VALUE" lines; the parent reads them. */

#include "config.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <X11/Xatom.h>
#include <X11/Xlib.h>
#include <X11/Xutil.h>
#include <X11/extensions/Xdamage.h>

#include <gtk/gtk.h>

#include "gchat-application.h"
#include "gchat-chat-window.h"
#include "gchat-contacts-window.h"
#include "gchat-crypto.h"
#include "gchat-history.h"
#include "gchat-login-dialog.h"
#include "gchat-online-users.h"
#include "gchat-rsa-key.h"
#include "gchat-test-util.h"

#define USER "bench"
#define PASSWORD "bench password 1"
#define PEER "peer"
/* Every wait of the bench has this deadline, so that nothing hangs for ever. */
#define WAIT_US (60 * G_USEC_PER_SEC)
/* The stall detector's period: a gap between its runs longer than this is a stall. */
#define TICK_MS 5
/* How long each contact-list phase keeps watching after its change (late layout, rows). */
#define SETTLE_US (G_USEC_PER_SEC)
#define USERS 10000
#define BATCH 100
#define BATCH_INTERVAL_MS 10
#define HISTORY_MESSAGES 100000
/* A window showing at least this many colours has been drawn by its program. */
#define CONTENT_COLOURS 16

/* Results of the children, by key. */
static GHashTable *results;

/* Helpers of every process */

static void
die_with_parent (gpointer signal_number)
{
  prctl (PR_SET_PDEATHSIG, GPOINTER_TO_INT (signal_number));
}

static double
ms (gint64 us)
{
  return us / 1000.0;
}

static int
compare_int64 (gconstpointer a,
               gconstpointer b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;

  return (x > y) - (x < y);
}

/* The resident memory of this process (VmRSS) or its peak (VmHWM), in kB. */
static guint64
read_status_kb (const char *field)
{
  g_autofree char *status = NULL;
  const char *line;

  if (!g_file_get_contents ("/proc/self/status", &status, NULL, NULL)
      || (line = strstr (status, field)) == NULL)
    return 0;
  return g_ascii_strtoull (line + strlen (field) + 1, NULL, 10);
}

static void
result (const char *key,
        const char *format,
        ...) G_GNUC_PRINTF (2, 3);

static void
result (const char *key,
        const char *format,
        ...)
{
  va_list args;
  g_autofree char *value = NULL;

  va_start (args, format);
  value = g_strdup_vprintf (format, args);
  va_end (args);
  printf ("result %s %s\n", key, value);
  fflush (stdout);
}

/* The main loop of the GTK children */

typedef gboolean (*Condition) (gpointer data);

static gboolean
keep_source (gpointer data)
{
  return G_SOURCE_CONTINUE;
}

static gboolean
never (gpointer data)
{
  return FALSE;
}

/* Runs the main loop until @done or @timeout_us; a slow timeout keeps it from sleeping past
 * the deadline. */
static gboolean
run_until (Condition done,
           gpointer  data,
           gint64    timeout_us)
{
  gint64 deadline = g_get_monotonic_time () + timeout_us;
  guint wake = g_timeout_add (20, keep_source, NULL);

  while (!done (data) && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  g_source_remove (wake);
  return done (data);
}

static void
run_for (gint64 us)
{
  run_until (never, NULL, us);
}

/* The stall detector: the longest gap between two runs of a TICK_MS timeout. */
typedef struct
{
  gint64 last;
  gint64 max_gap;
  guint  over_50ms;
} Ticker;

static Ticker ticker;

static gboolean
ticker_cb (gpointer data)
{
  gint64 now = g_get_monotonic_time ();
  gint64 gap = now - ticker.last;

  if (gap > ticker.max_gap)
    ticker.max_gap = gap;
  if (gap > 50000)
    ticker.over_50ms++;
  ticker.last = now;
  return G_SOURCE_CONTINUE;
}

static void
ticker_reset (void)
{
  ticker.last = g_get_monotonic_time ();
  ticker.max_gap = 0;
  ticker.over_50ms = 0;
}

/* The frames of one window: a frame is drawn when its surface rendered and its frame clock
 * reached after-paint. The latency is from the oldest change not drawn yet to that frame. */
typedef struct
{
  GdkSurface *surface;
  gboolean    rendered;
  gint64      change;      /* the oldest change not drawn yet, or 0 */
  gint64      drawn_at;    /* the last frame drawn */
  gint64      max_latency;
  guint       frames;
} FrameWatch;

static FrameWatch watch;

/* An emission hook, since the window's own render handler stops the emission. */
static gboolean
render_hook (GSignalInvocationHint *hint,
             guint                  n_values,
             const GValue          *values,
             gpointer               data)
{
  if (g_value_get_object (&values[0]) == (gpointer) watch.surface)
    watch.rendered = TRUE;
  return TRUE;
}

static void
after_paint_cb (GdkFrameClock *clock,
                gpointer       surface)
{
  gint64 now = g_get_monotonic_time ();

  if (surface != (gpointer) watch.surface || !watch.rendered)
    return;
  watch.rendered = FALSE;
  watch.frames++;
  watch.drawn_at = now;
  if (watch.change != 0 && now - watch.change > watch.max_latency)
    watch.max_latency = now - watch.change;
  watch.change = 0;
}

static void
watch_window (GtkWindow *window)
{
  static gulong hook;

  if (hook == 0)
    hook = g_signal_add_emission_hook (g_signal_lookup ("render", GDK_TYPE_SURFACE), 0,
                                       render_hook, NULL, NULL);
  watch.surface = gtk_native_get_surface (GTK_NATIVE (window));
  g_signal_connect (gtk_widget_get_frame_clock (GTK_WIDGET (window)), "after-paint",
                    G_CALLBACK (after_paint_cb), watch.surface);
}

static void
watch_change (gint64 when)
{
  if (watch.change == 0)
    watch.change = when;
}

static void
watch_reset (void)
{
  watch.change = 0;
  watch.drawn_at = 0;
  watch.max_latency = 0;
  watch.frames = 0;
}

static gboolean
watch_drawn (gpointer data)
{
  return watch.drawn_at != 0 && watch.change == 0;
}

/* A GchatApplication that is registered (so started up) but not run: the bench drives the
 * main loop. It is not unique, so a running gchat is left alone. */
static GchatApplication *
start_application (void)
{
  GchatApplication *app = gchat_application_new ();
  g_autoptr(GError) error = NULL;

  g_application_set_flags (G_APPLICATION (app), G_APPLICATION_NON_UNIQUE);
  if (!g_application_register (G_APPLICATION (app), NULL, &error))
    g_error ("bench-gui: the application cannot start: %s", error->message);
  return app;
}

/* Shows @window and waits for its first frame; the result is the time since @start. */
static gint64
present_and_wait (GtkWindow *window,
                  gint64     start)
{
  gtk_window_present (window);
  watch_reset ();
  watch_window (window);
  watch_change (start);
  if (!run_until (watch_drawn, NULL, WAIT_US))
    g_error ("bench-gui: the window drew no frame");
  return watch.drawn_at - start;
}

static void
destroy_windows (GchatApplication *app)
{
  GList *windows;

  while ((windows = gtk_application_get_windows (GTK_APPLICATION (app))) != NULL)
    gtk_window_destroy (windows->data);
  run_for (100000);
}

/* --contacts: the contact list under 10,000 joins */

/* The rows a list view of @widget has built: GTK 4.8 builds rows around its anchor, not only
 * the visible ones, and each costs its text layout. */
static guint
count_list_rows (GtkWidget *widget)
{
  guint rows = 0;

  if (GTK_IS_LIST_VIEW (widget))
    {
      for (GtkWidget *row = gtk_widget_get_first_child (widget); row != NULL;
           row = gtk_widget_get_next_sibling (row))
        rows++;
      return rows;
    }
  for (GtkWidget *child = gtk_widget_get_first_child (widget); child != NULL;
       child = gtk_widget_get_next_sibling (child))
    rows += count_list_rows (child);
  return rows;
}


typedef struct
{
  GchatOnlineUsers *users;
  char            **names;
  guint             next;
  guint             source;
} Batches;

static gboolean
batch_cb (gpointer data)
{
  Batches *b = data;
  g_autofree const char **slice = g_new0 (const char *, BATCH + 1);
  gint64 now = g_get_monotonic_time ();

  memcpy (slice, b->names + b->next, BATCH * sizeof (char *));
  gchat_online_users_update (b->users, slice, NULL);
  watch_change (now);
  b->next += BATCH;
  if (b->next < USERS)
    return G_SOURCE_CONTINUE;
  b->source = 0;
  return G_SOURCE_REMOVE;
}

static gboolean
batches_done (gpointer data)
{
  Batches *b = data;

  return b->source == 0 && watch_drawn (NULL);
}

/* User names in a random order, so that every batch lands all over the sorted list. */
static char **
make_names (void)
{
  char **names = g_new0 (char *, USERS + 1);
  g_autoptr(GRand) rand = g_rand_new_with_seed (5);

  for (guint i = 0; i < USERS; i++)
    names[i] = g_strdup_printf ("%s%05u", i % 2 ? "user" : "User", i);
  for (guint i = USERS - 1; i > 0; i--)
    {
      guint j = g_rand_int_range (rand, 0, i + 1);
      char *swap = names[i];

      names[i] = names[j];
      names[j] = swap;
    }
  return names;
}

/* One batch of USERS joins (or leaves): its own cost, the time to the frame that shows it,
 * and the longest stall until a second after. */
static void
contacts_one_batch (const char       *key,
                    GchatOnlineUsers *users,
                    char            **names,
                    gboolean          join)
{
  gint64 start, applied;

  run_for (100000);
  watch_reset ();
  ticker_reset ();
  start = g_get_monotonic_time ();
  if (join)
    gchat_online_users_update (users, (const char * const *) names, NULL);
  else
    gchat_online_users_update (users, NULL, (const char * const *) names);
  applied = g_get_monotonic_time ();
  watch_change (start);
  run_until (watch_drawn, NULL, WAIT_US);
  run_for (SETTLE_US);
  result (key, "%.1f %.1f %.1f %u", ms (ticker.max_gap), ms (applied - start),
          ms (watch.max_latency), ticker.over_50ms);
}

static int
run_contacts (void)
{
  g_autoptr(GchatApplication) app = start_application ();
  GchatClient *client = gchat_application_get_client (app);
  GchatOnlineUsers *users = GCHAT_ONLINE_USERS (gchat_client_get_online_users (client));
  g_auto(GStrv) names = make_names ();
  GtkWindow *window = GTK_WINDOW (gchat_contacts_window_new (app));
  Batches batches = { users, names, 0, 0 };
  guint tick;

  result ("contacts-first-frame", "%.1f", ms (present_and_wait (window, g_get_monotonic_time ())));
  result ("renderer", "%s", G_OBJECT_TYPE_NAME (gtk_native_get_renderer (GTK_NATIVE (window))));
  tick = g_timeout_add (TICK_MS, ticker_cb, NULL);

  contacts_one_batch ("contacts-join", users, names, TRUE);
  result ("contacts-count", "%u %u", g_list_model_get_n_items (G_LIST_MODEL (users)),
          count_list_rows (GTK_WIDGET (window)));
  contacts_one_batch ("contacts-leave", users, names, FALSE);

  run_for (100000);
  watch_reset ();
  ticker_reset ();
  batches.source = g_timeout_add (BATCH_INTERVAL_MS, batch_cb, &batches);
  run_until (batches_done, &batches, WAIT_US);
  run_for (SETTLE_US);
  result ("contacts-batches", "%.1f %.1f %u %u", ms (ticker.max_gap), ms (watch.max_latency),
          watch.frames, ticker.over_50ms);

  g_source_remove (tick);
  destroy_windows (app);
  return EXIT_SUCCESS;
}

/* --open-chat: a chat with 100,000 messages of history */

typedef struct
{
  gboolean  done;
  GError   *error;
} SignUp;

static void
signed_cb (GObject      *source,
           GAsyncResult *res,
           gpointer      data)
{
  SignUp *sign_up = data;

  gchat_client_sign_finish (GCHAT_CLIENT (source), res, &sign_up->error);
  sign_up->done = TRUE;
}

static gboolean
signed_up (gpointer data)
{
  return ((SignUp *) data)->done;
}

static gboolean
logged_out (gpointer data)
{
  return gchat_application_get_history (data) == NULL;
}

static GtkWindow *
find_window (GchatApplication *app,
             GType             type)
{
  for (GList *l = gtk_application_get_windows (GTK_APPLICATION (app)); l != NULL; l = l->next)
    if (G_TYPE_CHECK_INSTANCE_TYPE (l->data, type))
      return l->data;
  return NULL;
}

/* What a person does through the log-in dialog, done with the application's own client: the
 * dialog's "logged-in" signal then opens the account's history and the contact list. */
static void
log_in (GchatApplication *app,
        guint             port)
{
  GchatClient *client = gchat_application_get_client (app);
  SignUp sign_up = { FALSE, NULL };
  GtkWindow *dialog;

  g_object_set (client, "server-host", "127.0.0.1", "server-port", port,
                "accept-new-server-key", TRUE, NULL);
  g_application_activate (G_APPLICATION (app));
  gchat_client_sign_async (client, USER, PASSWORD, NULL, signed_cb, &sign_up);
  if (!run_until (signed_up, &sign_up, WAIT_US) || sign_up.error != NULL)
    g_error ("bench-gui: cannot create the account: %s",
             sign_up.error != NULL ? sign_up.error->message : "timed out");
  dialog = find_window (app, GCHAT_TYPE_LOGIN_DIALOG);
  if (dialog == NULL)
    g_error ("bench-gui: no log-in dialog");
  g_signal_emit_by_name (dialog, "logged-in");
  if (gchat_application_get_history (app) == NULL)
    g_error ("bench-gui: the application did not open the history");
}

static int
run_open_chat (guint port)
{
  g_autoptr(GchatApplication) app = start_application ();
  GtkWindow *contacts, *chat;
  guint64 rss_before;
  gint64 start, created;

  log_in (app, port);
  contacts = find_window (app, GCHAT_TYPE_CONTACTS_WINDOW);
  if (contacts == NULL)
    g_error ("bench-gui: no contact list");
  present_and_wait (contacts, g_get_monotonic_time ());
  run_for (500000);

  rss_before = read_status_kb ("VmRSS:");
  start = g_get_monotonic_time ();
  chat = gchat_application_open_chat (app, PEER);
  created = g_get_monotonic_time ();
  /* gchat_application_open_chat presents the window; watching it now misses no frame, since
   * frames are drawn from the main loop. */
  watch_reset ();
  watch_window (chat);
  watch_change (start);
  if (!run_until (watch_drawn, NULL, WAIT_US))
    g_error ("bench-gui: the chat window drew no frame");
  result ("chat-first-frame", "%.1f %.1f", ms (watch.drawn_at - start), ms (created - start));
  result ("chat-rss", "%" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT, rss_before,
          read_status_kb ("VmRSS:"));
  result ("chat-loaded", "%u %u", g_list_model_get_n_items (
            gchat_history_get_messages (gchat_application_get_history (app), PEER)),
          count_list_rows (GTK_WIDGET (chat)));
  run_for (SETTLE_US);
  result ("chat-rss-settled", "%" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT,
          read_status_kb ("VmRSS:"), read_status_kb ("VmHWM:"));

  g_action_group_activate_action (G_ACTION_GROUP (app), "log-out", NULL);
  run_until (logged_out, app, WAIT_US);
  destroy_windows (app);
  return EXIT_SUCCESS;
}

/* Parent: 1. start-up time, watched from the X server */

typedef struct
{
  Display    *display;
  int         damage_event;
  GHashTable *damages; /* Window → Damage of the top-level windows seen */
  GPid        pid;
  Window      window;  /* the child's first mapped window */
  gint64      mapped;
  gint64      drawn;
} Watcher;

/* Windows come and go under our feet: a request on one just destroyed is not a failure. */
static int
ignore_x_error (Display     *display,
                XErrorEvent *event)
{
  return 0;
}

static GPid
window_pid (Display *display,
            Window   window)
{
  Atom type;
  int format;
  unsigned long n, after;
  unsigned char *data = NULL;
  GPid pid = 0;

  if (XGetWindowProperty (display, window, XInternAtom (display, "_NET_WM_PID", False), 0, 1,
                          False, XA_CARDINAL, &type, &format, &n, &after, &data) == Success
      && data != NULL && format == 32 && n == 1)
    pid = (GPid) * (unsigned long *) data;
  if (data != NULL)
    XFree (data);
  return pid;
}

/* Whether @window shows more than a few colours. When a window is mapped, the X server first
 * fills it with its background colour, which is damage too; GTK's first frame (text, borders,
 * buttons) has hundreds of colours. */
static gboolean
window_has_content (Display *display,
                    Window   window)
{
  XWindowAttributes attributes;
  XImage *image;
  g_autoptr(GHashTable) colours = g_hash_table_new (NULL, NULL);

  if (!XGetWindowAttributes (display, window, &attributes)
      || (image = XGetImage (display, window, 0, 0, attributes.width, attributes.height,
                             AllPlanes, ZPixmap)) == NULL)
    return FALSE;
  for (int y = 0; y < image->height && g_hash_table_size (colours) < CONTENT_COLOURS; y += 2)
    for (int x = 0; x < image->width; x += 2)
      g_hash_table_add (colours, GSIZE_TO_POINTER (XGetPixel (image, x, y)));
  XDestroyImage (image);
  return g_hash_table_size (colours) >= CONTENT_COLOURS;
}

static void
watcher_handle (Watcher *w,
                XEvent  *event)
{
  gint64 now = g_get_monotonic_time ();

  if (event->type == CreateNotify)
    {
      Window window = event->xcreatewindow.window;
      Damage damage = XDamageCreate (w->display, window, XDamageReportNonEmpty);

      g_hash_table_insert (w->damages, GSIZE_TO_POINTER (window), GSIZE_TO_POINTER (damage));
      XFlush (w->display);
    }
  else if (event->type == MapNotify && w->window == None
           && window_pid (w->display, event->xmap.window) == w->pid)
    {
      w->window = event->xmap.window;
      w->mapped = now;
    }
  else if (event->type == w->damage_event + XDamageNotify)
    {
      XDamageNotifyEvent *damage = (XDamageNotifyEvent *) event;

      if (damage->drawable == w->window && w->window != None && w->drawn == 0
          && window_has_content (w->display, w->window))
        w->drawn = now;
      XDamageSubtract (w->display, damage->damage, None, None);
    }
}

static gboolean
watcher_wait (Watcher *w,
              gint64   start)
{
  while (w->drawn == 0 && g_get_monotonic_time () - start < WAIT_US)
    {
      struct pollfd fd = { ConnectionNumber (w->display), POLLIN, 0 };
      int status;

      while (XPending (w->display) > 0)
        {
          XEvent event;

          XNextEvent (w->display, &event);
          watcher_handle (w, &event);
        }
      if (w->drawn != 0)
        break;
      if (waitpid (w->pid, &status, WNOHANG) == w->pid)
        {
          w->pid = 0;
          return FALSE;
        }
      poll (&fd, 1, 20);
    }
  return w->drawn != 0;
}

static void
watcher_clear (Watcher *w)
{
  GHashTableIter iter;
  gpointer damage;

  g_hash_table_iter_init (&iter, w->damages);
  while (g_hash_table_iter_next (&iter, NULL, &damage))
    XDamageDestroy (w->display, (Damage) GPOINTER_TO_SIZE (damage));
  g_hash_table_remove_all (w->damages);
  XSync (w->display, True);
}

/* One start of gchat: the times to its window being mapped and drawn, or FALSE. */
static gboolean
start_once (Watcher    *w,
            const char *gchat_path,
            gint64     *mapped,
            gint64     *drawn)
{
  const char *argv[] = { gchat_path, NULL };
  g_autoptr(GError) error = NULL;
  gint64 start = g_get_monotonic_time ();
  gboolean ok;
  int status = 0;

  w->window = None;
  w->mapped = w->drawn = 0;
  if (!g_spawn_async (NULL, (char **) argv, NULL,
                      G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL, die_with_parent,
                      GINT_TO_POINTER (SIGKILL), &w->pid, &error))
    {
      g_printerr ("bench-gui: cannot start %s: %s\n", gchat_path, error->message);
      return FALSE;
    }
  ok = watcher_wait (w, start);
  if (w->pid != 0)
    {
      kill (w->pid, SIGTERM);
      waitpid (w->pid, &status, 0);
    }
  else
    g_printerr ("bench-gui: gchat exited before drawing its window\n");
  watcher_clear (w);
  *mapped = w->mapped - start;
  *drawn = w->drawn - start;
  return ok;
}

static void
measure_start (const char *gchat_path,
               int         runs)
{
  Watcher w = { 0 };
  int error_base;
  g_autoptr(GArray) drawn = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_autoptr(GArray) mapped = g_array_new (FALSE, FALSE, sizeof (gint64));
  gint64 first = 0;

  w.display = XOpenDisplay (NULL);
  if (w.display == NULL || !XDamageQueryExtension (w.display, &w.damage_event, &error_base))
    {
      g_printerr ("bench-gui: no X display with the DAMAGE extension\n");
      return;
    }
  XSetErrorHandler (ignore_x_error);
  XSelectInput (w.display, DefaultRootWindow (w.display), SubstructureNotifyMask);
  w.damages = g_hash_table_new (NULL, NULL);
  for (int i = 0; i < runs; i++)
    {
      gint64 m, d;

      if (!start_once (&w, gchat_path, &m, &d))
        continue;
      if (i == 0)
        first = d;
      g_array_append_val (mapped, m);
      g_array_append_val (drawn, d);
      printf ("bench: start %d: mapped after %.1f ms, drawn after %.1f ms\n", i + 1, ms (m),
              ms (d));
      g_usleep (200000);
    }
  g_hash_table_unref (w.damages);
  XCloseDisplay (w.display);
  if (drawn->len == 0)
    return;
  g_array_sort (drawn, compare_int64);
  g_array_sort (mapped, compare_int64);
  g_hash_table_insert (results, g_strdup ("start"),
                       g_strdup_printf ("%.1f %.1f %.1f %.1f %u",
                                        ms (g_array_index (drawn, gint64, drawn->len / 2)),
                                        ms (g_array_index (drawn, gint64, drawn->len - 1)),
                                        ms (g_array_index (mapped, gint64, mapped->len / 2)),
                                        ms (first), drawn->len));
}

/* Parent: 2. and 3., in children */

/* Runs this program again with @args and keeps its "result" lines. */
static gboolean
run_child (const char * const *args)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *self = g_file_read_link ("/proc/self/exe", &error);
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) child = NULL;
  g_autofree char *out = NULL;
  g_auto(GStrv) lines = NULL;

  if (self == NULL)
    return FALSE;
  g_ptr_array_add (argv, self);
  for (guint i = 0; args[i] != NULL; i++)
    g_ptr_array_add (argv, (gpointer) args[i]);
  g_ptr_array_add (argv, NULL);
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_subprocess_launcher_set_child_setup (launcher, die_with_parent, GINT_TO_POINTER (SIGKILL),
                                         NULL);
  child = g_subprocess_launcher_spawnv (launcher, (const char * const *) argv->pdata, &error);
  if (child == NULL || !g_subprocess_communicate_utf8 (child, NULL, NULL, &out, NULL, &error))
    {
      g_printerr ("bench-gui: %s\n", error->message);
      return FALSE;
    }
  lines = g_strsplit (out, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      g_auto(GStrv) parts = g_strsplit (lines[i], " ", 3);

      if (g_strv_length (parts) == 3 && g_str_equal (parts[0], "result"))
        g_hash_table_insert (results, g_strdup (parts[1]), g_strdup (parts[2]));
    }
  if (!g_subprocess_get_successful (child))
    g_printerr ("bench-gui: %s %s did not finish well\n", self, args[0]);
  return g_subprocess_get_successful (child);
}

typedef struct
{
  char        *dir;
  const char  *gchatd_path;
  guint16      port;
  GSubprocess *gchatd;
} Server;

static guint16
find_free_port (void)
{
  g_autoptr(GSocket) socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                                            G_SOCKET_PROTOCOL_TCP, NULL);
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
  g_autoptr(GSocketAddress) bound = NULL;

  if (socket == NULL || !g_socket_bind (socket, any, TRUE, NULL)
      || (bound = g_socket_get_local_address (socket, NULL)) == NULL)
    return 0;
  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
}

static gboolean
gchatd_listens (guint16 port)
{
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GSocketConnection) connection = NULL;

  connection = g_socket_client_connect_to_host (client, "127.0.0.1", port, NULL, NULL);
  return connection != NULL;
}

/* gchatd with a new key pair, Argon2id at its lowest cost so that the sign-up is quick. */
static gboolean
server_start (Server  *s,
              GError **error)
{
  g_autofree char *private_path = g_build_filename (s->dir, "server-private.pem", NULL);
  g_autofree char *public_path = g_build_filename (s->dir, "server-public.pem", NULL);
  g_autofree char *config_path = g_build_filename (s->dir, "gchatd.yaml", NULL);
  g_autofree char *config = NULL;
  g_autoptr(GchatRsaKey) key = NULL;
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  gint64 deadline = g_get_monotonic_time () + WAIT_US;

  s->port = find_free_port ();
  key = gchat_rsa_key_generate (GCHAT_RSA_KEY_BITS, error);
  if (key == NULL || !gchat_rsa_key_save_private (key, private_path, error)
      || !gchat_rsa_key_save_public (key, public_path, error))
    return FALSE;
  config = g_strdup_printf ("server_address: 127.0.0.1\nserver_port: %u\n"
                            "server_certificate: server-public.pem\n"
                            "server_privateKey: server-private.pem\ndata_base: users.json\n"
                            "argon2_memory_kib: 64\nargon2_iterations: 1\n", s->port);
  if (!g_file_set_contents (config_path, config, -1, error))
    return FALSE;
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE
                                        | G_SUBPROCESS_FLAGS_STDERR_SILENCE);
  g_subprocess_launcher_set_child_setup (launcher, die_with_parent, GINT_TO_POINTER (SIGTERM),
                                         NULL);
  s->gchatd = g_subprocess_launcher_spawn (launcher, error, s->gchatd_path, "--config",
                                           config_path, NULL);
  if (s->gchatd == NULL)
    return FALSE;
  while (!gchatd_listens (s->port))
    {
      if (g_get_monotonic_time () > deadline || g_subprocess_get_identifier (s->gchatd) == NULL)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                       "gchatd did not listen on port %u", s->port);
          return FALSE;
        }
      g_usleep (20000);
    }
  return TRUE;
}

/* HISTORY_MESSAGES messages of various lengths with PEER, a third of them ours, written the
 * way the application writes them. */
static gboolean
write_history (guint16  port,
               GError **error)
{
  static const char words[] = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do "
                              "eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut "
                              "enim ad minim veniam, quis nostrud exercitation ullamco laboris.";
  g_autoptr(GchatHistory) history = gchat_history_new (NULL, "127.0.0.1", port, USER, error);
  gint64 start = g_get_monotonic_time ();
  gint64 epoch = g_get_real_time () / G_USEC_PER_SEC - HISTORY_MESSAGES * 30;

  if (history == NULL)
    return FALSE;
  for (guint i = 0; i < HISTORY_MESSAGES; i++)
    {
      gboolean outgoing = i % 3 == 0;
      int length = 10 + (i * 37) % (int) (sizeof words - 11);
      g_autofree char *text = g_strdup_printf ("%u: %.*s", i, length, words);
      g_autoptr(GchatChatMessage) message = NULL;

      message = gchat_chat_message_new (i + 1, outgoing, outgoing ? USER : PEER, text,
                                        epoch + i * 30, GCHAT_DELIVERY_DELIVERED,
                                        GCHAT_CLIENT_PATH_DIRECT);
      gchat_history_add (history, PEER, message);
      if (i % 10000 == 9999 && !gchat_history_flush (history, error))
        return FALSE;
    }
  if (!gchat_history_flush (history, error))
    return FALSE;
  g_hash_table_insert (results, g_strdup ("history-write"),
                       g_strdup_printf ("%.0f", ms (g_get_monotonic_time () - start)));
  return TRUE;
}

static void
measure_chat (Server *s)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *port = NULL;

  if (!server_start (s, &error) || !write_history (s->port, &error))
    {
      g_printerr ("bench-gui: cannot prepare the chat: %s\n", error->message);
      return;
    }
  port = g_strdup_printf ("%u", s->port);
  printf ("bench: opening a chat with %d messages of history\n", HISTORY_MESSAGES);
  run_child ((const char *[]) { "--open-chat", "--port", port, NULL });
}

/* Parent: the report */

static const char *
get (const char *key)
{
  return g_hash_table_lookup (results, key);
}

static void
print_row (const char *measure,
           const char *result_text,
           const char *target)
{
  printf ("| %s | %s | %s |\n", measure, result_text != NULL ? result_text : "not measured",
          target);
}

static char *
format_start (void)
{
  double median, max, mapped, first;
  guint runs;

  if (get ("start") == NULL
      || sscanf (get ("start"), "%lf %lf %lf %lf %u", &median, &max, &mapped, &first, &runs) != 5)
    return NULL;
  return g_strdup_printf ("**%.0f** / %.0f ms (mapped at %.0f ms; first run, cold: %.0f ms; "
                          "%u runs)", median, max, mapped, first, runs);
}

static char *
format_batch (const char *key)
{
  double gap, update, frame;
  guint over;

  if (get (key) == NULL || sscanf (get (key), "%lf %lf %lf %u", &gap, &update, &frame, &over) != 4)
    return NULL;
  return g_strdup_printf ("**%.0f ms** (the update itself %.1f ms; drawn %.0f ms after it; "
                          "%u gaps over 50 ms)", gap, update, frame, over);
}

static char *
format_batches (void)
{
  double gap, latency;
  guint frames, over;

  if (get ("contacts-batches") == NULL
      || sscanf (get ("contacts-batches"), "%lf %lf %u %u", &gap, &latency, &frames, &over) != 4)
    return NULL;
  return g_strdup_printf ("**%.0f ms** (a batch drawn at most %.0f ms after it; %u frames; "
                          "%u gaps over 50 ms)", gap, latency, frames, over);
}

static char *
format_chat_time (void)
{
  double frame, created;
  guint loaded = 0, rows = 0;

  if (get ("chat-first-frame") == NULL
      || sscanf (get ("chat-first-frame"), "%lf %lf", &frame, &created) != 2)
    return NULL;
  if (get ("chat-loaded") != NULL)
    sscanf (get ("chat-loaded"), "%u %u", &loaded, &rows);
  return g_strdup_printf ("**%.0f ms** (window built and presented in %.0f ms; %u messages "
                          "loaded, %u rows built)", frame, created, loaded, rows);
}

static char *
format_chat_rss (void)
{
  guint64 before, after, settled = 0, peak = 0;

  if (get ("chat-rss") == NULL
      || sscanf (get ("chat-rss"), "%" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT, &before,
                 &after) != 2)
    return NULL;
  if (get ("chat-rss-settled") != NULL)
    sscanf (get ("chat-rss-settled"), "%" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT, &settled,
            &peak);
  return g_strdup_printf ("**%.1f MB** (before opening: %.1f MB, so +%.1f MB; a second later "
                          "%.1f MB, peak %.1f MB)", after / 1024.0, before / 1024.0,
                          ((double) after - before) / 1024.0, settled / 1024.0, peak / 1024.0);
}

static void
print_machine (void)
{
  g_autoptr(GDateTime) now = g_date_time_new_now_local ();
  g_autofree char *date = g_date_time_format (now, "%Y-%m-%d %H:%M:%S %Z");
  g_autofree char *cpuinfo = NULL;
  g_autofree char *model = NULL;
  g_autofree char *load = NULL;
  const char *line;

  if (g_file_get_contents ("/proc/cpuinfo", &cpuinfo, NULL, NULL)
      && (line = strstr (cpuinfo, "model name")) != NULL && (line = strchr (line, ':')) != NULL)
    model = g_strstrip (g_strndup (line + 1, strcspn (line + 1, "\n")));
  if (g_file_get_contents ("/proc/loadavg", &load, NULL, NULL))
    g_strchomp (load);
  printf ("\nMachine: %d cores (nproc), %s, %s, load average %s; GTK %u.%u.%u, renderer %s, "
          "display %s\n", (int) g_get_num_processors (), model != NULL ? model : "unknown CPU",
          date, load != NULL ? load : "unknown", gtk_get_major_version (),
          gtk_get_minor_version (), gtk_get_micro_version (),
          get ("renderer") != NULL ? get ("renderer") : "unknown", g_getenv ("DISPLAY"));
  if (get ("history-write") != NULL)
    printf ("- Writing the %d messages through GchatHistory took %s ms.\n", HISTORY_MESSAGES,
            get ("history-write"));
  if (get ("contacts-first-frame") != NULL)
    printf ("- The empty contact list drew its first frame %s ms after gtk_window_present.\n",
            get ("contacts-first-frame"));
  if (get ("contacts-count") != NULL)
    printf ("- After the 10,000 joins: users and list rows built: %s.\n", get ("contacts-count"));
}

static void
print_report (int runs)
{
  g_autofree char *start = format_start ();
  g_autofree char *join = format_batch ("contacts-join");
  g_autofree char *leave = format_batch ("contacts-leave");
  g_autofree char *batches = format_batches ();
  g_autofree char *chat_time = format_chat_time ();
  g_autofree char *chat_rss = format_chat_rss ();
  g_autofree char *start_name = g_strdup_printf ("Process start → log-in dialog drawn "
                                                 "(median / max of %d)", runs);

  printf ("\n| measure | result | target |\n| --- | --- | --- |\n");
  print_row (start_name, start, "< 400 ms");
  print_row ("Contact list, 10,000 joins in one batch: longest main-loop stall", join,
             "≤ 50 ms");
  print_row ("Contact list, the 10,000 leaving in one batch: longest stall", leave, "≤ 50 ms");
  print_row ("Contact list, 100 batches of 100 joins, one per 10 ms: longest stall", batches,
             "≤ 50 ms");
  print_row ("Opening a chat with 100,000 messages: to its first frame", chat_time, "< 300 ms");
  print_row ("…resident memory (VmRSS) after that frame", chat_rss, "< 150 MB");
  print_machine ();
}

/* Everything below runs in a fresh folder with the build's schema. */
static char *
setup_environment (void)
{
  char *dir = gchat_test_make_dir ("bench-gui");
  static const char * const folders[][2] = {
    { "XDG_DATA_HOME", "data" }, { "XDG_CONFIG_HOME", "config" },
    { "XDG_CACHE_HOME", "cache" }, { "XDG_STATE_HOME", "state" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (folders); i++)
    {
      g_autofree char *path = g_build_filename (dir, folders[i][1], NULL);

      g_mkdir_with_parents (path, 0700);
      g_setenv (folders[i][0], path, TRUE);
    }
  g_setenv ("GSETTINGS_SCHEMA_DIR", GCHAT_SCHEMA_DIR, TRUE);
  g_setenv ("GSETTINGS_BACKEND", "memory", TRUE);
  return dir;
}

static char *opt_gchat = GCHAT_PATH;
static char *opt_gchatd = GCHATD_PATH;
static int opt_runs = 10;
static gboolean opt_contacts;
static gboolean opt_open_chat;
static int opt_port;

static const GOptionEntry entries[] = {
  { "runs", 0, 0, G_OPTION_ARG_INT, &opt_runs, "Starts of gchat to measure (10)", "N" },
  { "gchat", 0, 0, G_OPTION_ARG_FILENAME, &opt_gchat, "The gchat to start", "PATH" },
  { "gchatd", 0, 0, G_OPTION_ARG_FILENAME, &opt_gchatd, "The gchatd to run", "PATH" },
  { "contacts", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_NONE, &opt_contacts, NULL, NULL },
  { "open-chat", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_NONE, &opt_open_chat, NULL, NULL },
  { "port", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_INT, &opt_port, NULL, NULL },
  { NULL }
};

static gboolean
check_setup (void)
{
  if (g_getenv ("DISPLAY") == NULL || g_getenv ("DBUS_SESSION_BUS_ADDRESS") == NULL)
    g_printerr ("bench-gui: run it under an X server and a session bus: "
                "tests/bench-gui-start.sh BUILDDIR\n");
  else if (opt_runs < 1 || opt_runs > 100)
    g_printerr ("bench-gui: --runs must be 1 to 100\n");
  else if (!g_file_test (opt_gchat, G_FILE_TEST_IS_EXECUTABLE)
           || !g_file_test (opt_gchatd, G_FILE_TEST_IS_EXECUTABLE))
    g_printerr ("bench-gui: build gchat and gchatd first (ninja -C BUILDDIR), or name them with "
                "--gchat and --gchatd\n");
  else
    return TRUE;
  return FALSE;
}

static int
bench_main (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = NULL;
  Server server = { 0 };

  if (!check_setup ())
    return EXIT_FAILURE;
  dir = setup_environment ();
  server.dir = dir;
  server.gchatd_path = opt_gchatd;
  printf ("bench: starting %s %d times\n", opt_gchat, opt_runs);
  measure_start (opt_gchat, opt_runs);
  printf ("bench: the contact list under 10,000 joins\n");
  run_child ((const char *[]) { "--contacts", NULL });
  measure_chat (&server);
  if (server.gchatd != NULL)
    {
      g_subprocess_send_signal (server.gchatd, SIGTERM);
      g_subprocess_wait (server.gchatd, NULL, NULL);
      g_clear_object (&server.gchatd);
    }
  print_report (opt_runs);
  gchat_test_remove_tree (dir);
  return EXIT_SUCCESS;
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GOptionContext) context = g_option_context_new (NULL);
  g_autoptr(GError) error = NULL;
  int status;

  g_option_context_set_summary (context, "Starts the built gchat, fills its contact list and "
                                "opens a long chat on the X server of $DISPLAY, and prints the "
                                "times as a Markdown table.");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("bench-gui: %s\n", error->message);
      return EXIT_FAILURE;
    }
  if (!gchat_crypto_init (&error))
    {
      g_printerr ("bench-gui: %s\n", error->message);
      return EXIT_FAILURE;
    }
  results = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  if (opt_contacts)
    status = run_contacts ();
  else if (opt_open_chat)
    status = run_open_chat (opt_port);
  else
    status = bench_main ();
  g_hash_table_unref (results);
  gchat_crypto_shutdown ();
  return status;
}
