/* SPDX-License-Identifier: GPL-3.0-or-later */
/* gchatd on its bad days: a full disk, repeated SIGKILLs, vanished clients, a jumping clock and
 * a flood of connections that never log in. */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "gchat-test-util.h"
#include "gchatd-test-client.h"
#include "gchatd-user-store.h"

#define LIBFAKETIME "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"

/* Each account has a password of its own, so that records mixed up between accounts show. */
static char *
password_of (const char *user)
{
  return g_strdup_printf ("the password of %s", user);
}

static TestClient *
sign_up (TestDaemon *d,
         const char *user)
{
  g_autofree char *password = password_of (user);

  return test_client_log_in (d->port, "sign", user, password);
}

static TestClient *
log_in (TestDaemon *d,
        const char *user)
{
  g_autofree char *password = password_of (user);

  return test_client_log_in (d->port, "auth", user, password);
}

static void
send_request (TestClient *c,
              const char *type,
              const char *user,
              gint64      id)
{
  GchatMessageType message_type;
  g_autoptr(GchatMessage) request = NULL;
  g_autofree char *password = password_of (user);

  g_assert_true (gchat_message_type_from_string (type, &message_type));
  request = gchat_message_new (message_type);
  gchat_message_set_string (request, "user", user);
  gchat_message_set_string (request, "password", password);
  gchat_message_set_int (request, "id", id);
  test_client_send (c, request);
}

/* Every account in @users logs in with its password, a batch of connections at a time. */
static void
assert_log_ins (TestDaemon *d,
                GPtrArray  *users)
{
  for (guint start = 0; start < users->len; start += 40)
    {
      guint n = MIN (40, users->len - start);
      g_autofree TestClient **clients = g_new0 (TestClient *, n);

      for (guint i = 0; i < n; i++)
        {
          clients[i] = test_client_connect (d->port);
          test_client_handshake (clients[i]);
          send_request (clients[i], "auth", users->pdata[start + i], 42);
        }
      for (guint i = 0; i < n; i++)
        {
          g_autoptr(GchatMessage) result = test_client_expect (clients[i], GCHAT_MESSAGE_RESULT);

          if (!gchat_message_get_bool (result, "ok"))
            g_error ("The acknowledged account “%s” cannot log in: %s",
                     (char *) users->pdata[start + i], gchat_message_get_string (result, "code"));
          test_client_free (clients[i]);
        }
    }
}

/* Waits for a `mail` from @from with @msg_id and acknowledges it. */
static GchatMessage *
expect_mail (TestClient *c,
             const char *from,
             gint64      msg_id)
{
  GchatMessage *mail = test_client_expect (c, GCHAT_MESSAGE_MAIL);

  g_assert_cmpstr (gchat_message_get_string (mail, "from"), ==, from);
  g_assert_cmpint (gchat_message_get_int (mail, "msg_id"), ==, msg_id);
  test_client_mail_ack (c, gchat_message_get_int (mail, "mail_id"));
  return mail;
}

static gint64
rss_kib (TestDaemon *d)
{
  g_autofree char *path = g_strdup_printf ("/proc/%s/status",
                                           g_subprocess_get_identifier (d->process));
  g_autofree char *status = NULL;
  const char *line;

  g_assert_true (g_file_get_contents (path, &status, NULL, NULL));
  line = strstr (status, "VmRSS:");
  g_assert_nonnull (line);
  return g_ascii_strtoll (line + 6, NULL, 10);
}

/* 1. The disk fills up ------------------------------------------------------------------------ */

/* gchatd's data on a 1 MiB tmpfs of its own, which the test fills. */
typedef struct {
  char       *dir;
  char       *data;
  char       *filler;
  TestDaemon *daemon;
} Disk;

static gboolean
disk_setup (Disk *k)
{
  k->dir = gchat_test_make_dir ("gchatd-disk");
  k->data = g_build_filename (k->dir, "data", NULL);
  k->filler = g_build_filename (k->data, "filler", NULL);
  g_assert_no_errno (g_mkdir (k->data, 0700));
  if (mount ("gchat-test", k->data, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0700") != 0)
    {
      g_autofree char *why = g_strdup_printf ("Cannot mount a small tmpfs to fill: %s",
                                              g_strerror (errno));

      g_test_skip (why);
      return FALSE;
    }
  return TRUE;
}

static void
disk_teardown (Disk *k,
               gboolean mounted)
{
  g_clear_pointer (&k->daemon, test_daemon_free);
  if (mounted)
    g_assert_no_errno (umount (k->data));
  test_remove_dir (k->dir);
  g_free (k->dir);
  g_free (k->data);
  g_free (k->filler);
}

/* Writes the filler until the file system has not a byte left, then gives @room bytes back. */
static void
disk_fill (Disk  *k,
           gsize  room)
{
  static const guint8 zeros[65536];
  int fd = open (k->filler, O_WRONLY | O_CREAT | O_APPEND, 0600);
  gsize chunk = sizeof zeros;
  struct stat st;

  g_assert_cmpint (fd, >=, 0);
  while (chunk > 0)
    if (write (fd, zeros, chunk) < 0)
      {
        g_assert_cmpint (errno, ==, ENOSPC);
        chunk /= 2;
      }
  g_assert_no_errno (fstat (fd, &st));
  g_assert_cmpint (st.st_size, >, (goffset) room);
  g_assert_no_errno (ftruncate (fd, st.st_size - (goffset) room));
  g_assert_no_errno (close (fd));
}

/* Every file of the data folder but the filler, with its contents. */
static GHashTable *
snapshot_dir (const char *dir,
              GHashTable *files)
{
  g_autoptr(GDir) folder = g_dir_open (dir, 0, NULL);
  const char *name;

  if (files == NULL)
    files = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_assert_nonnull (folder);
  while ((name = g_dir_read_name (folder)) != NULL)
    {
      g_autofree char *path = g_build_filename (dir, name, NULL);
      char *contents = NULL;

      if (g_str_equal (name, "filler") || g_str_has_suffix (name, ".lock"))
        continue;
      if (g_file_test (path, G_FILE_TEST_IS_DIR))
        snapshot_dir (path, files);
      else if (g_file_get_contents (path, &contents, NULL, NULL))
        g_hash_table_insert (files, g_steal_pointer (&path), contents);
      else
        g_hash_table_insert (files, g_steal_pointer (&path), g_strdup ("(a socket)"));
    }
  return files;
}

static void
assert_same_files (GHashTable *before,
                   GHashTable *after)
{
  GHashTableIter iter;
  gpointer path, contents;

  g_hash_table_iter_init (&iter, after);
  while (g_hash_table_iter_next (&iter, &path, &contents))
    {
      if (!g_hash_table_contains (before, path))
        g_error ("A failed save left “%s” behind", (char *) path);
      g_assert_cmpstr (g_hash_table_lookup (before, path), ==, contents);
    }
  g_assert_cmpuint (g_hash_table_size (before), ==, g_hash_table_size (after));
}

static void
assert_stored (Disk       *k,
               const char *user,
               gboolean    stored)
{
  g_autofree char *path = g_build_filename (k->data, "users.json", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatdUserStore) store = gchatd_user_store_new (path, &error);
  g_autoptr(GchatdUserRecord) record = NULL;

  g_assert_no_error (error);
  record = gchatd_user_store_lookup (store, user);
  g_assert_true ((record != NULL) == stored);
}

/* Signs up new users, with the disk almost full, until a save fails: returns the failed
 * connection, still open, adds the names acknowledged before to @accounts, and sets
 * @last_store to what the last save that fitted wrote. */
static TestClient *
sign_up_until_full (Disk       *k,
                    GPtrArray  *accounts,
                    char      **last_store)
{
  g_autofree char *store_path = g_build_filename (k->data, "users.json", NULL);

  for (guint i = 0; i < 500; i++)
    {
      g_autofree char *user = g_strdup_printf ("user%03u", i);
      g_autoptr(TestClient) client = test_client_connect (k->daemon->port);
      g_autoptr(GchatMessage) result = NULL;

      test_client_handshake (client);
      send_request (client, "sign", user, 42);
      result = test_client_expect (client, GCHAT_MESSAGE_RESULT);
      if (!gchat_message_get_bool (result, "ok"))
        {
          test_assert_result (result, "internal");
          return g_steal_pointer (&client);
        }
      g_ptr_array_add (accounts, g_steal_pointer (&user));
      g_clear_pointer (last_store, g_free);
      g_assert_true (g_file_get_contents (store_path, last_store, NULL, NULL));
    }
  g_error ("500 sign-ups fitted in the space left");
}

/* Proves that a save that fails is reported, not acknowledged (the sign-up and the post are
 * answered `internal`), that it replaces the file only once the new one is whole (users.json
 * and the box stay byte for byte as they were, with no temporary file left to keep the disk
 * full), that nothing half-done stays in memory (the same name can sign up later), and that the
 * server lives on. */
static void
test_disk_full (void)
{
  g_autoptr(TestClient) alice = NULL;
  g_autoptr(TestClient) client = NULL;
  g_autoptr(TestClient) bob = NULL;
  g_autoptr(GchatMessage) result = NULL;
  g_autoptr(GchatMessage) mail1 = NULL;
  g_autoptr(GchatMessage) mail3 = NULL;
  g_autoptr(GHashTable) before = NULL;
  g_autoptr(GHashTable) after = NULL;
  g_autoptr(GPtrArray) accounts = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *failed = NULL;
  g_autofree char *last_store = NULL;
  g_autofree char *store_path = NULL;
  Disk k = { 0 };

  if (g_getenv ("GCHATD") == NULL)
    {
      g_test_skip ("GCHATD is not set");
      return;
    }
  if (!disk_setup (&k))
    {
      disk_teardown (&k, FALSE);
      return;
    }
  k.daemon = test_daemon_new_full (NULL, k.data, NULL);
  alice = sign_up (k.daemon, "alice");
  test_client_free (sign_up (k.daemon, "bob"));
  result = test_client_post (alice, "bob", 1, "before the disk filled");
  test_assert_result (result, NULL);

  /* Three pages left: the store grows until its new copy no longer fits beside the old one. */
  disk_fill (&k, 3 * 4096);
  before = snapshot_dir (k.data, NULL);
  client = sign_up_until_full (&k, accounts, &last_store);
  failed = g_strdup_printf ("user%03u", accounts->len);
  g_test_message ("%u sign-ups fitted; the next one failed", accounts->len);
  g_assert_cmpuint (accounts->len, >, 0);
  /* Not a byte left now, for the box of bob. */
  disk_fill (&k, 0);
  g_clear_pointer (&result, gchat_message_unref);
  result = test_client_post (alice, "bob", 2, "while the disk is full");
  test_assert_result (result, "internal");

  /* Both files are whole: the box as it was, users.json as the last save that fitted left it. */
  after = snapshot_dir (k.data, NULL);
  store_path = g_build_filename (k.data, "users.json", NULL);
  g_assert_cmpstr (g_hash_table_lookup (after, store_path), ==, last_store);
  g_hash_table_insert (before, g_strdup (store_path), g_strdup (last_store));
  assert_same_files (before, after);
  assert_stored (&k, "alice", TRUE);
  assert_stored (&k, accounts->pdata[accounts->len - 1], TRUE);
  assert_stored (&k, failed, FALSE);
  test_client_ping (client);
  test_client_ping (alice);
  assert_log_ins (k.daemon, accounts);

  /* Space again: the same sign-up and a post now work. */
  g_assert_no_errno (g_unlink (k.filler));
  g_clear_pointer (&result, gchat_message_unref);
  send_request (client, "sign", failed, 42);
  result = test_client_expect (client, GCHAT_MESSAGE_RESULT);
  test_assert_result (result, NULL);
  g_clear_pointer (&result, gchat_message_unref);
  result = test_client_post (alice, "bob", 3, "after the disk was freed");
  test_assert_result (result, NULL);
  assert_stored (&k, failed, TRUE);

  /* bob gets the first and the third, and the refused one never. */
  bob = log_in (k.daemon, "bob");
  mail1 = expect_mail (bob, "alice", 1);
  mail3 = expect_mail (bob, "alice", 3);
  test_client_ping (bob);
  disk_teardown (&k, TRUE);
}

/* 2. SIGKILL under a load of sign-ups and posts ---------------------------------------------- */

#define STORM_ROUNDS 10
#define STORM_CLIENTS 16
/* Posts each client keeps sending, one more at each answer, until the kill: so that the kill
 * lands amid saves whatever its moment. The boxes stay far from their 1,000 messages. */
#define STORM_POSTS 15
#define STORM_BOXES 4

/* What gchatd acknowledged over the rounds. */
typedef struct {
  TestDaemon *daemon;
  GPtrArray  *accounts;            /* names whose sign-up was answered ok */
  GHashTable *posts[STORM_BOXES];  /* msg_id → sender, of posts to box<i> answered ok */
  guint       n_posts;
} Storm;

static char *
box_name (guint box)
{
  return g_strdup_printf ("box%u", box);
}

/* Posts that go out right behind the sign-up, before any answer. */
#define STORM_FIRST_POSTS 3

/* Post @k of client @i, to a box that is offline. */
static void
storm_post (TestClient *c,
            const char *user,
            guint       i,
            guint       k,
            guint       msg_base)
{
  g_autofree char *box = box_name ((i + k) % STORM_BOXES);
  g_autofree char *text = g_strdup_printf ("post %u of %s", k, user);

  test_client_send_post (c, box, (gint64) k * 100000 + msg_base, text, strlen (text), k);
}

/* Takes the answers that arrived for the round's clients. Every request must succeed: fresh
 * names, fewer sign-ups than the hasher queues, boxes far from full. */
static void
storm_collect (Storm       *s,
               TestClient **clients,
               char       **users,
               guint        round)
{
  for (guint i = 0; i < STORM_CLIENTS; i++)
    {
      GchatMessage *message;

      while ((message = test_client_pop_message (clients[i])) != NULL)
        {
          if (gchat_message_get_message_type (message) == GCHAT_MESSAGE_RESULT)
            {
              const char *request = gchat_message_get_string (message, "request");
              gint64 id = gchat_message_get_int (message, "id");

              if (!gchat_message_get_bool (message, "ok"))
                g_error ("A “%s” of “%s” failed: %s", request, users[i],
                         gchat_message_get_string (message, "code"));
              if (g_str_equal (request, "sign"))
                g_ptr_array_add (s->accounts, g_strdup (users[i]));
              else
                {
                  guint box = (i + (guint) id) % STORM_BOXES;
                  gint64 msg_id = id * 100000 + round * 100 + i;

                  g_hash_table_insert (s->posts[box], g_memdup2 (&msg_id, sizeof msg_id),
                                       g_strdup (users[i]));
                  s->n_posts++;
                  if (id + STORM_FIRST_POSTS <= STORM_POSTS)
                    storm_post (clients[i], users[i], i, (guint) id + STORM_FIRST_POSTS,
                                round * 100 + i);
                }
            }
          gchat_message_unref (message);
        }
    }
}

/* Each client signs up and at once, behind its sign-up, posts to boxes that are offline. */
static void
storm_send (TestClient  *c,
            const char  *user,
            guint        i,
            guint        msg_base)
{
  send_request (c, "sign", user, 0);
  for (guint k = 1; k <= STORM_FIRST_POSTS; k++)
    storm_post (c, user, i, k, msg_base);
}

static void
storm_round (Storm *s,
             guint  round)
{
  TestClient *clients[STORM_CLIENTS];
  char *users[STORM_CLIENTS];
  gint64 kill_at = g_get_monotonic_time ()
                   + gchat_test_scale_us (g_test_rand_int_range (20000, 400001));
  gint64 deadline;
  gboolean open = TRUE;
  guint accounts = s->accounts->len, posts = s->n_posts;

  for (guint i = 0; i < STORM_CLIENTS; i++)
    {
      users[i] = g_strdup_printf ("r%02u-user%02u", round, i);
      clients[i] = test_client_connect (s->daemon->port);
      test_client_handshake (clients[i]);
    }
  for (guint i = 0; i < STORM_CLIENTS; i++)
    storm_send (clients[i], users[i], i, round * 100 + i);
  while (g_get_monotonic_time () < kill_at)
    {
      test_clients_poll (clients, STORM_CLIENTS, 1);
      storm_collect (s, clients, users, round);
    }
  test_daemon_stop (s->daemon, SIGKILL);
  /* What the server sent before it died is still in the sockets. */
  deadline = g_get_monotonic_time () + TEST_WAIT_TIMEOUT_US;
  while (open)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      test_clients_poll (clients, STORM_CLIENTS, 10);
      storm_collect (s, clients, users, round);
      open = FALSE;
      for (guint i = 0; i < STORM_CLIENTS; i++)
        open |= !clients[i]->closed;
    }
  g_test_message ("Round %u: %u sign-ups and %u posts acknowledged before the kill", round,
                  s->accounts->len - accounts, s->n_posts - posts);
  for (guint i = 0; i < STORM_CLIENTS; i++)
    {
      test_client_free (clients[i]);
      g_free (users[i]);
    }
  test_daemon_start (s->daemon);
}

/* Logs each box in and checks that every acknowledged post to it is delivered. */
static guint
storm_check_boxes (Storm *s)
{
  guint delivered = 0;

  for (guint box = 0; box < STORM_BOXES; box++)
    {
      g_autofree char *name = box_name (box);
      g_autoptr(TestClient) c = log_in (s->daemon, name);
      guint found = 0;

      while (found < g_hash_table_size (s->posts[box]))
        {
          g_autoptr(GchatMessage) mail = test_client_expect (c, GCHAT_MESSAGE_MAIL);
          gint64 msg_id = gchat_message_get_int (mail, "msg_id");
          const char *from = g_hash_table_lookup (s->posts[box], &msg_id);

          test_client_mail_ack (c, gchat_message_get_int (mail, "mail_id"));
          delivered++;
          /* One whose answer never came may be there too: saved, then killed. */
          if (from != NULL)
            {
              g_assert_cmpstr (gchat_message_get_string (mail, "from"), ==, from);
              found++;
            }
        }
    }
  return delivered;
}

/* Proves that gchatd answers a sign-up or a post only once it is durable (a write-then-rename
 * with fsync before the answer): killed at any moment, what it acknowledged is there on the
 * next start. Extends test-crash, which kills during sign-ups alone. */
static void
test_kill_under_load (void)
{
  Storm s = { 0 };
  guint delivered;

  s.daemon = test_daemon_new (NULL);
  if (s.daemon == NULL)
    return;
  s.accounts = g_ptr_array_new_with_free_func (g_free);
  for (guint box = 0; box < STORM_BOXES; box++)
    {
      g_autofree char *name = box_name (box);

      s.posts[box] = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, g_free);
      test_client_free (sign_up (s.daemon, name));
    }
  for (guint round = 0; round < STORM_ROUNDS; round++)
    storm_round (&s, round);

  assert_log_ins (s.daemon, s.accounts);
  delivered = storm_check_boxes (&s);
  g_test_message ("%u kills: %u acknowledged accounts log in; %u acknowledged posts, %u mails "
                  "delivered", STORM_ROUNDS, s.accounts->len, s.n_posts, delivered);
  g_assert_cmpuint (s.accounts->len, >, 0);
  g_assert_cmpuint (s.n_posts, >, 0);
  g_assert_cmpuint (delivered, >=, s.n_posts);
  for (guint box = 0; box < STORM_BOXES; box++)
    g_hash_table_unref (s.posts[box]);
  g_ptr_array_unref (s.accounts);
  test_daemon_free (s.daemon);
}

/* 3. A client killed with SIGKILL ------------------------------------------------------------- */

/* A TCP relay between gchat-cli and gchatd. Once the client's side ends, it goes silent but
 * keeps gchatd's side open, as when the client's host loses power or its network: no FIN ever
 * reaches gchatd. */
typedef struct {
  int      listener;
  guint16  port;
  guint16  upstream;
  GThread *thread;
  gint     stop;
} Proxy;

static void
proxy_pump (int from,
            int to)
{
  char buffer[16384];
  gssize n = recv (from, buffer, sizeof buffer, MSG_DONTWAIT);

  if (n > 0 && to >= 0)
    g_assert_cmpint (send (to, buffer, n, MSG_NOSIGNAL), ==, n);
}

static gpointer
proxy_run (gpointer data)
{
  Proxy *p = data;
  struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = g_htons (p->upstream),
                                 .sin_addr.s_addr = g_htonl (INADDR_LOOPBACK) };
  int client = accept (p->listener, NULL, NULL);
  int server = socket (AF_INET, SOCK_STREAM, 0);
  struct pollfd fds[2] = { { client, POLLIN, 0 }, { server, POLLIN, 0 } };

  g_assert_cmpint (client, >=, 0);
  g_assert_no_errno (connect (server, (struct sockaddr *) &address, sizeof address));
  while (!g_atomic_int_get (&p->stop))
    {
      char probe;

      if (poll (fds, 2, 50) <= 0)
        continue;
      if (fds[0].fd >= 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)))
        {
          if (recv (client, &probe, 1, MSG_PEEK | MSG_DONTWAIT) <= 0)
            fds[0].fd = -1; /* the client is gone: say nothing to gchatd */
          else
            proxy_pump (client, server);
        }
      /* What gchatd still sends is read and dropped, as a dead host's kernel would not. */
      if (fds[1].revents & POLLIN)
        proxy_pump (server, fds[0].fd);
    }
  close (client);
  close (server);
  return NULL;
}

static Proxy *
proxy_new (guint16 upstream)
{
  Proxy *p = g_new0 (Proxy, 1);
  struct sockaddr_in address = { .sin_family = AF_INET,
                                 .sin_addr.s_addr = g_htonl (INADDR_LOOPBACK) };
  socklen_t len = sizeof address;

  p->upstream = upstream;
  p->listener = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  g_assert_no_errno (bind (p->listener, (struct sockaddr *) &address, sizeof address));
  g_assert_no_errno (listen (p->listener, 1));
  g_assert_no_errno (getsockname (p->listener, (struct sockaddr *) &address, &len));
  p->port = g_ntohs (address.sin_port);
  p->thread = g_thread_new ("proxy", proxy_run, p);
  return p;
}

static void
proxy_free (Proxy *p)
{
  g_atomic_int_set (&p->stop, 1);
  g_thread_join (p->thread);
  close (p->listener);
  g_free (p);
}

/* gchat-cli signed up as @name through @port, with its own folders under @home. */
static GSubprocess *
cli_sign_up (const char *home,
             const char *name,
             guint16     port)
{
  g_autoptr(GSubprocessLauncher) launcher =
    test_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE);
  g_autofree char *config_home = g_build_filename (home, name, "config", NULL);
  g_autofree char *data_home = g_build_filename (home, name, "data", NULL);
  g_autofree char *port_text = g_strdup_printf ("%u", port);
  g_autofree char *log_path = g_build_filename (home, name, "log", NULL);
  g_autofree char *command = g_strdup_printf ("sign %s %s\n", name, TEST_PASSWORD);
  g_autoptr(GError) error = NULL;
  GSubprocess *cli;

  g_assert_no_errno (g_mkdir_with_parents (config_home, 0700));
  g_assert_no_errno (g_mkdir_with_parents (data_home, 0700));
  g_subprocess_launcher_setenv (launcher, "XDG_CONFIG_HOME", config_home, TRUE);
  g_subprocess_launcher_setenv (launcher, "XDG_DATA_HOME", data_home, TRUE);
  /* Files, not pipes nobody reads; its log tells what went wrong when it did. */
  g_subprocess_launcher_set_stdout_file_path (launcher, "/dev/null");
  g_subprocess_launcher_set_stderr_file_path (launcher, log_path);
  cli = g_subprocess_launcher_spawn (launcher, &error, g_getenv ("GCHAT_CLI"), "--json",
                                     "--accept-new-server-key", "--server", "127.0.0.1",
                                     "--port", port_text, NULL);
  g_assert_no_error (error);
  g_assert_true (g_output_stream_write_all (g_subprocess_get_stdin_pipe (cli), command,
                                            strlen (command), NULL, NULL, &error));
  g_assert_no_error (error);
  return cli;
}

/* Waits up to @timeout_us for a presence that says @name left, pinging meanwhile so that the
 * watcher itself is not idle; returns how long it took. */
static gdouble
wait_for_left (TestClient *c,
               const char *name,
               gint64      timeout_us)
{
  gint64 start = g_get_monotonic_time ();
  gint64 next_ping = start;

  for (;;)
    {
      g_autoptr(GchatMessage) message = NULL;
      gint64 now = g_get_monotonic_time ();

      if (now - start > timeout_us)
        g_error ("“%s” was still online %" G_GINT64_FORMAT " s after it was killed", name,
                 timeout_us / G_USEC_PER_SEC);
      if (now >= next_ping)
        {
          g_autoptr(GchatMessage) ping = gchat_message_new (GCHAT_MESSAGE_PING);

          gchat_message_set_int (ping, "id", 7);
          test_client_send (c, ping);
          next_ping = now + 2 * G_USEC_PER_SEC;
        }
      test_clients_poll (&c, 1, 100);
      g_assert_false (c->closed);
      while ((message = test_client_pop_message (c)) != NULL)
        {
          if (gchat_message_get_message_type (message) == GCHAT_MESSAGE_PRESENCE
              && test_message_has_name (message, "left", name))
            return (g_get_monotonic_time () - start) / (gdouble) G_USEC_PER_SEC;
          g_clear_pointer (&message, gchat_message_unref);
        }
    }
}

static gboolean
have_cli (void)
{
  if (g_getenv ("GCHATD") != NULL && g_getenv ("GCHAT_CLI") != NULL)
    return TRUE;
  g_test_skip ("GCHATD or GCHAT_CLI is not set");
  return FALSE;
}

/* Proves that a closed connection leaves the online list at once: the kernel closes a killed
 * process's socket, and gchatd must notice the end of the stream. */
static void
test_killed_client (void)
{
  g_autoptr(TestDaemon) d = NULL;
  g_autoptr(TestClient) alice = NULL;
  g_autoptr(GSubprocess) carol = NULL;
  gdouble seconds;

  if (!have_cli ())
    return;
  d = test_daemon_new ("idle_timeout: 10\n");
  alice = sign_up (d, "alice");
  carol = cli_sign_up (d->dir, "carol", d->port);
  test_client_expect_presence (alice, "joined", "carol");
  g_subprocess_force_exit (carol);
  g_assert_true (g_subprocess_wait (carol, NULL, NULL));
  seconds = wait_for_left (alice, "carol", gchat_test_scale_us (5 * G_USEC_PER_SEC));
  g_test_message ("The killed client left the list after %.2f s", seconds);
}

/* Proves the idle deadline: a client that vanishes without its host closing the connection
 * (the proxy swallows the end of the stream) still leaves everyone's list, within the
 * configured 10 s plus a check period. */
static void
test_vanished_client (void)
{
  g_autoptr(TestDaemon) d = NULL;
  g_autoptr(TestClient) alice = NULL;
  g_autoptr(GSubprocess) carol = NULL;
  Proxy *proxy;
  gdouble seconds;

  if (!have_cli ())
    return;
  d = test_daemon_new ("idle_timeout: 10\n");
  proxy = proxy_new (d->port);
  alice = sign_up (d, "alice");
  carol = cli_sign_up (d->dir, "carol", proxy->port);
  test_client_expect_presence (alice, "joined", "carol");
  g_subprocess_force_exit (carol);
  g_assert_true (g_subprocess_wait (carol, NULL, NULL));
  /* The deadline, plus up to a third of it until the next check, plus a margin. */
  seconds = wait_for_left (alice, "carol", gchat_test_scale_us (16 * G_USEC_PER_SEC));
  g_test_message ("The vanished client left the list after %.2f s (idle deadline 10 s)", seconds);
  test_client_ping (alice);
  proxy_free (proxy);
}

/* 4. The wall clock jumps --------------------------------------------------------------------- */

static void
set_clock (const char *path,
           const char *offset)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (g_file_set_contents (path, offset, -1, &error));
}

/* Both clients ping for @seconds, longer than an idle check period, then pair up. */
static void
stay_and_talk (TestClient *alice,
               TestClient *bob,
               guint       seconds)
{
  g_autoptr(GchatMessage) to_alice = NULL;
  g_autoptr(GchatMessage) to_bob = NULL;

  for (guint i = 0; i < seconds * 2; i++)
    {
      test_client_ping (alice);
      test_client_ping (bob);
      g_usleep (G_USEC_PER_SEC / 2);
    }
  to_alice = test_client_request (alice, "talk", "bob", NULL);
  to_bob = test_client_expect (bob, GCHAT_MESSAGE_PAIR_KEY);
  test_client_ping (alice);
  test_client_ping (bob);
}

/* Proves that session deadlines run on the monotonic clock: with gchatd's wall clock moved two
 * hours ahead, then back, live sessions are neither expired nor refused. */
static void
test_clock_jump (void)
{
  g_autofree char *clock_dir = NULL;
  g_autofree char *clock_path = NULL;
  g_autofree char *clock_env = NULL;
  g_autoptr(TestDaemon) d = NULL;
  g_autoptr(TestClient) alice = NULL;
  g_autoptr(TestClient) bob = NULL;
  g_autoptr(TestClient) carol = NULL;
  g_autoptr(GchatMessage) result = NULL;
  g_autoptr(GchatMessage) mail = NULL;
  gint64 shift;

  if (g_getenv ("GCHATD") == NULL || !g_file_test (LIBFAKETIME, G_FILE_TEST_EXISTS))
    {
      g_test_skip ("GCHATD is not set, or libfaketime (Debian package “faketime”) is missing");
      return;
    }
  clock_dir = gchat_test_make_dir ("gchatd-clock");
  clock_path = g_build_filename (clock_dir, "offset", NULL);
  clock_env = g_strconcat ("FAKETIME_TIMESTAMP_FILE=", clock_path, NULL);
  set_clock (clock_path, "+0\n");
  {
    const char *env[] = { "LD_PRELOAD=" LIBFAKETIME, clock_env, "FAKETIME_NO_CACHE=1",
                          "DONT_FAKE_MONOTONIC=1",
                          /* Under AddressSanitizer, libfaketime is loaded before its runtime. */
                          "ASAN_OPTIONS=verify_asan_link_order=0:halt_on_error=1:abort_on_error=1",
                          NULL };

    d = test_daemon_new_full ("idle_timeout: 10\n", NULL, env);
  }
  test_client_free (sign_up (d, "carol"));
  alice = sign_up (d, "alice");
  bob = sign_up (d, "bob");

  set_clock (clock_path, "+7200\n");
  /* A post to carol, offline, is stamped with gchatd's wall clock: the jump took effect. */
  result = test_client_post (alice, "carol", 1, "from two hours ahead");
  test_assert_result (result, NULL);
  stay_and_talk (alice, bob, 5);
  set_clock (clock_path, "-7200\n");
  stay_and_talk (alice, bob, 5);
  set_clock (clock_path, "+0\n");

  carol = log_in (d, "carol");
  mail = expect_mail (carol, "alice", 1);
  shift = gchat_message_get_int (mail, "queued") - g_get_real_time () / G_USEC_PER_SEC;
  g_test_message ("gchatd's clock was moved by %" G_GINT64_FORMAT " s", shift);
  g_assert_cmpint (shift, >, 7000);
  g_assert_cmpint (shift, <, 7400);
  g_clear_pointer (&d, test_daemon_free);
  test_remove_dir (clock_dir);
}

/* 5. Connections that never log in ------------------------------------------------------------ */

/* Under valgrind, a tenth: that run looks for memory errors, not for capacity. */
#define HALF_OPEN (gchat_test_is_slow () ? 500 : 5000)
#define ROUND_TRIPS 40

static int
connect_raw (guint16 port)
{
  struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = g_htons (port),
                                 .sin_addr.s_addr = g_htonl (INADDR_LOOPBACK) };
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  g_assert_cmpint (fd, >=, 0);
  g_assert_no_errno (connect (fd, (struct sockaddr *) &address, sizeof address));
  g_assert_no_errno (fcntl (fd, F_SETFL, O_NONBLOCK));
  return fd;
}

/* alice relays a datagram to bob and bob pings: returns how long it took, in ms. */
static gdouble
round_trip (TestClient *alice,
            TestClient *bob)
{
  static const guint8 datagram[64] = { 1, 2, 3 };
  g_autoptr(GchatMessage) relayed = NULL;
  gint64 start = g_get_monotonic_time ();

  test_client_relay (alice, "bob", datagram, sizeof datagram);
  relayed = test_client_expect (bob, GCHAT_MESSAGE_RELAYED);
  g_assert_cmpstr (gchat_message_get_string (relayed, "from"), ==, "alice");
  test_client_ping (bob);
  test_client_ping (alice);
  return (g_get_monotonic_time () - start) / 1000.0;
}

/* How many of @fds gchatd has closed; reads and drops what else came (the hello). */
static guint
count_closed (int   *fds,
              guint  n)
{
  guint closed = 0;

  for (guint i = 0; i < n; i++)
    {
      char buffer[4096];
      gssize got;

      if (fds[i] < 0)
        {
          closed++;
          continue;
        }
      while ((got = recv (fds[i], buffer, sizeof buffer, 0)) > 0)
        ;
      if (got == 0 || errno != EAGAIN)
        {
          close (fds[i]);
          fds[i] = -1;
          closed++;
        }
    }
  return closed;
}

/* Proves item 6: connections that never finish the handshake cost gchatd bounded memory, do
 * not slow logged-in users down (round trips answered meanwhile), and are closed by the log-in
 * deadline. Without the deadline they stay; without bounded buffers the memory grows. */
static void
test_half_open_flood (void)
{
  g_autoptr(TestDaemon) d = NULL;
  g_autoptr(TestClient) alice = NULL;
  g_autoptr(TestClient) bob = NULL;
  g_autoptr(TestClient) probe = NULL;
  g_autofree int *fds = g_new (int, HALF_OPEN);
  gint64 rss_before, rss_after, start, opened;
  gdouble worst = 0, total = 0;
  gsize partial;
  guint closed = 0;

  d = test_daemon_new ("max_connections: 6000\nlogin_timeout: 8\n");
  if (d == NULL)
    return;
  alice = sign_up (d, "alice");
  bob = sign_up (d, "bob");
  /* Without Nagle and delayed acknowledgements, the round trips measure gchatd. */
  g_assert_true (g_socket_set_option (alice->socket, IPPROTO_TCP, TCP_NODELAY, 1, NULL));
  g_assert_true (g_socket_set_option (bob->socket, IPPROTO_TCP, TCP_NODELAY, 1, NULL));
  /* A real client key frame, of which half the flood sends the first half. */
  probe = test_client_connect (d->port);
  test_client_handshake (probe);
  partial = g_bytes_get_size (probe->client_key_frame) / 2;
  rss_before = rss_kib (d);
  for (guint i = 0; i < ROUND_TRIPS; i++)
    total += round_trip (alice, bob);
  g_test_message ("Round trips before the flood: mean %.2f ms", total / ROUND_TRIPS);
  total = 0;

  start = g_get_monotonic_time ();
  for (guint i = 0; i < HALF_OPEN; i++)
    {
      fds[i] = connect_raw (d->port);
      if (i % 2 == 1)
        g_assert_cmpint (send (fds[i], g_bytes_get_data (probe->client_key_frame, NULL), partial,
                               MSG_NOSIGNAL), ==, (gssize) partial);
      /* A round trip now and then while the flood comes in. */
      if (i % 500 == 250)
        worst = MAX (worst, round_trip (alice, bob));
    }
  opened = g_get_monotonic_time ();
  g_test_message ("%u half-open connections made in %.2f s", HALF_OPEN,
                  (opened - start) / (gdouble) G_USEC_PER_SEC);

  for (guint i = 0; i < ROUND_TRIPS; i++)
    {
      gdouble ms = round_trip (alice, bob);

      worst = MAX (worst, ms);
      total += ms;
    }
  rss_after = rss_kib (d);
  g_test_message ("Round trips with %u half-open connections: mean %.2f ms, worst %.2f ms",
                  HALF_OPEN, total / ROUND_TRIPS, worst);
  g_test_message ("gchatd's memory: %" G_GINT64_FORMAT " KiB before, %" G_GINT64_FORMAT
                  " KiB with them (%.1f KiB each)", rss_before, rss_after,
                  (rss_after - rss_before) / (gdouble) HALF_OPEN);
  g_assert_cmpfloat (worst, <, gchat_test_scale_us (5000));
  if (!gchat_test_is_slow ())
    g_assert_cmpint (rss_after, <, 200 * 1024);

  /* The log-in deadline (8 s) closes every one of them, the logged-in users not. */
  while ((closed = count_closed (fds, HALF_OPEN)) < HALF_OPEN)
    {
      if (g_get_monotonic_time () - opened > gchat_test_scale_us (20 * G_USEC_PER_SEC))
        g_error ("Only %u of %u half-open connections were closed by the log-in deadline",
                 closed, HALF_OPEN);
      test_client_ping (alice);
      g_usleep (200000);
    }
  g_test_message ("All closed %.2f s after the last one opened",
                  (g_get_monotonic_time () - opened) / (gdouble) G_USEC_PER_SEC);
  g_assert_cmpint (g_get_monotonic_time () - start, >, 7 * G_USEC_PER_SEC);
  round_trip (alice, bob);
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GError) error = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);
  g_assert_true (gchat_crypto_init (&error));

  g_test_add_func ("/faults/disk-full", test_disk_full);
  g_test_add_func ("/faults/kill-under-load", test_kill_under_load);
  g_test_add_func ("/faults/killed-client", test_killed_client);
  g_test_add_func ("/faults/vanished-client", test_vanished_client);
  g_test_add_func ("/faults/clock-jump", test_clock_jump);
  g_test_add_func ("/faults/half-open-flood", test_half_open_flood);

  status = g_test_run ();
  test_server_key_set (NULL);
  gchat_crypto_shutdown ();
  return status;
}
