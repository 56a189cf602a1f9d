/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Measures how fast two GchatClients exchange acknowledged messages through a real gchatd,
 * directly and through the relay, against the speed targets of its issue (not a test). */

/* How it works. The parent process makes a temporary folder with a key pair, a config file
 * and a known-servers file that pins the key, starts the built gchatd on a free port, logs in
 * as the sender and re-executes itself with the hidden --receiver option, so that each client
 * has a core of its own. The receiver logs in, prints "ready" and then answers one command
 * line at a time on its stdin ("direct-loss N", "count", "quit"). The sender keeps its
 * conversation full and counts "delivery-changed" DELIVERED, which is the receiver's ack.
 * Every wait has a deadline, and the receiver dies with the parent. */

#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/prctl.h>

#include <glib-unix.h>
#include <gio/gio.h>

#include "gchat-test-util.h"
#include "gchat-client.h"
#include "gchat-crypto.h"
#include "gchat-datagram.h"
#include "gchat-known-servers.h"
#include "gchat-rsa-key.h"

#define PASSWORD "bench password 1"
#define SENDER "alice"
#define RECEIVER "bob"
#define TEXT_SIZE 200
/* No single wait (a log-in, a drain, one message) takes longer than this. */
#define WAIT_US (60 * G_USEC_PER_SEC)
/* Samples of the one-at-a-time latency, at most; fewer if --seconds runs out first. */
#define LATENCY_SAMPLES 2000

static int
compare_int64 (gconstpointer a,
               gconstpointer b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;

  return (x > y) - (x < y);
}

/* The nearest-rank percentile of sorted samples. */
static gint64
percentile (GArray *sorted,
            double  fraction)
{
  double exact = fraction * sorted->len;
  guint rank = (guint) exact + ((double) (guint) exact < exact);

  return g_array_index (sorted, gint64, CLAMP (rank, 1, sorted->len) - 1);
}

/* User plus system time of @pid, in clock ticks. */
static guint64
read_cpu_ticks (int pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/stat", pid);
  g_autofree char *text = NULL;
  unsigned long long utime = 0, stime = 0;
  const char *rest;

  if (pid <= 0 || !g_file_get_contents (path, &text, NULL, NULL))
    return 0;
  /* The command name may hold spaces and parentheses: fields count from the last ')'. */
  rest = strrchr (text, ')');
  if (rest == NULL
      || sscanf (rest + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                 &stime) != 2)
    return 0;
  return utime + stime;
}

static gboolean
tick_cb (gpointer user_data)
{
  /* Only wakes the loop, so that deadlines are looked at. */
  return G_SOURCE_CONTINUE;
}

/* The log-in both processes do */

typedef struct {
  gboolean  done;
  GError   *error;
} LoginWait;

static void
sign_cb (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  LoginWait *wait = user_data;

  gchat_client_sign_finish (GCHAT_CLIENT (source), result, &wait->error);
  wait->done = TRUE;
}

static void
logout_cb (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  LoginWait *wait = user_data;

  gchat_client_logout_finish (GCHAT_CLIENT (source), result, &wait->error);
  wait->done = TRUE;
}

static gboolean
wait_done (LoginWait *wait)
{
  gint64 deadline = g_get_monotonic_time () + WAIT_US;

  while (!wait->done && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  return wait->done;
}

static GchatClient *
client_new (guint16     port,
            const char *known_path)
{
  GchatClient *client = gchat_client_new ();

  g_object_set (client,
                "server-host", "127.0.0.1",
                "server-port", (guint) port,
                "known-servers-path", known_path,
                NULL);
  return client;
}

/* Signs up @user; FALSE after printing why not. */
static gboolean
client_sign_up (GchatClient *client,
                const char  *user)
{
  LoginWait wait = { 0 };
  guint tick = g_timeout_add (100, tick_cb, NULL);

  gchat_client_sign_async (client, user, PASSWORD, NULL, sign_cb, &wait);
  wait_done (&wait);
  g_source_remove (tick);
  if (wait.error != NULL || !wait.done)
    {
      g_printerr ("bench-peer: %s could not sign up: %s\n", user,
                  wait.error != NULL ? wait.error->message : "timed out");
      g_clear_error (&wait.error);
      return FALSE;
    }
  return TRUE;
}

static void
client_log_out (GchatClient *client)
{
  LoginWait wait = { 0 };
  guint tick = g_timeout_add (100, tick_cb, NULL);

  gchat_client_logout_async (client, NULL, logout_cb, &wait);
  wait_done (&wait);
  g_source_remove (tick);
  g_clear_error (&wait.error);
}

/* The receiver process */

typedef struct {
  GchatClient      *client;
  GIOChannel       *input;
  guint             watch;
  GMainLoop        *loop;
  guint64           received[3]; /* by GchatClientPath */
} Receiver;

static void
receiver_message_cb (GchatClient     *client,
                     const char      *from,
                     const char      *text,
                     GchatClientPath  path,
                     guint64          id,
                     gint64           sent,
                     Receiver        *r)
{
  if (path <= GCHAT_CLIENT_PATH_OFFLINE)
    r->received[path]++;
}

static void
receiver_command (Receiver   *r,
                  const char *line)
{
  guint64 loss;

  if (g_str_has_prefix (line, "direct-loss ")
      && g_ascii_string_to_unsigned (line + 12, 10, 0, 100, &loss, NULL))
    {
      g_object_set (r->client, "direct-loss", (guint) loss, NULL);
      printf ("ok\n");
    }
  else if (g_str_equal (line, "count"))
    printf ("count %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT "\n",
            r->received[GCHAT_CLIENT_PATH_DIRECT], r->received[GCHAT_CLIENT_PATH_RELAY],
            r->received[GCHAT_CLIENT_PATH_OFFLINE]);
  else
    g_main_loop_quit (r->loop);
}

static gboolean
receiver_stdin_cb (GIOChannel   *channel,
                   GIOCondition  condition,
                   gpointer      user_data)
{
  Receiver *r = user_data;

  for (;;)
    {
      g_autofree char *line = NULL;
      gsize terminator = 0;
      GIOStatus status = g_io_channel_read_line (channel, &line, NULL, &terminator, NULL);

      if (status == G_IO_STATUS_AGAIN)
        return G_SOURCE_CONTINUE;
      /* The end of stdin is the parent gone: quit as for "quit". */
      if (status != G_IO_STATUS_NORMAL)
        {
          g_main_loop_quit (r->loop);
          r->watch = 0;
          return G_SOURCE_REMOVE;
        }
      line[terminator] = '\0';
      receiver_command (r, line);
    }
}

static int
receiver_main (guint16     port,
               const char *known_path)
{
  g_autoptr(GError) error = NULL;
  Receiver r = { 0 };
  gboolean ok;

  /* The parent's death ends the receiver even when it could not say so. */
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  if (!gchat_crypto_init (&error))
    {
      g_printerr ("bench-peer receiver: %s\n", error->message);
      return EXIT_FAILURE;
    }
  r.client = client_new (port, known_path);
  r.input = g_io_channel_unix_new (STDIN_FILENO);
  g_io_channel_set_flags (r.input, G_IO_FLAG_NONBLOCK, NULL);
  r.loop = g_main_loop_new (NULL, FALSE);
  g_signal_connect (r.client, "message-received", G_CALLBACK (receiver_message_cb), &r);
  ok = client_sign_up (r.client, RECEIVER);
  if (ok)
    {
      printf ("ready\n");
      r.watch = g_io_add_watch (r.input, G_IO_IN | G_IO_HUP | G_IO_ERR, receiver_stdin_cb, &r);
      g_main_loop_run (r.loop);
      g_clear_handle_id (&r.watch, g_source_remove);
      client_log_out (r.client);
    }
  g_object_unref (r.client);
  g_io_channel_unref (r.input);
  g_main_loop_unref (r.loop);
  gchat_crypto_shutdown ();
  return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* The sender, in the parent */

typedef struct {
  gboolean  measured;
  char     *why_not;      /* when not measured */
  guint64   messages;
  double    seconds;
  double    rate;
  guint64   by_path[3];   /* deliveries by GchatClientPath */
  guint64   failed;
  double    cpu_sender;   /* percent of one core */
  double    cpu_receiver;
  double    cpu_gchatd;
} Throughput;

typedef struct {
  gboolean  measured;
  char     *why_not;
  GArray   *samples;      /* gint64 µs, sorted once measured */
} Latency;

typedef struct {
  /* options */
  int            seconds;
  int            messages;
  int            window;
  gboolean       quick;
  char          *gchatd_path;

  char          *dir;
  char          *known_path;
  guint16        port;
  GchatRsaKey   *key;
  GSubprocess   *gchatd;
  int            gchatd_pid;
  GSubprocess   *receiver;
  int            receiver_pid;
  GDataInputStream *receiver_out;
  GQueue         lines;  /* the receiver's answers not taken yet */
  gboolean       receiver_gone;
  GchatClient   *client;
  char           text[TEXT_SIZE + 1];

  /* what "delivery-changed" counts */
  guint64        sent;       /* in this phase */
  guint64        total_sent;
  guint64        pending;
  guint64        delivered;
  guint64        failed;
  guint64        by_path[3];
  gint64         last_delivered_at;

  double         seal_open_rate;   /* gchat_peer_keys seal + open of 200-byte bodies per second */
  double         aead_rate;        /* gchat_aead seal + open of 200 bytes per second */
  Throughput     direct, relay;
  Latency        direct_latency, relay_latency;
  guint64        receiver_counts[3];
} Bench;

static void
delivery_cb (GchatClient        *client,
             guint64             id,
             const char         *to,
             GchatDeliveryState  state,
             GchatClientPath     path,
             const GError       *error,
             Bench              *b)
{
  if (state == GCHAT_DELIVERY_SENDING)
    return;
  b->pending--;
  if (state != GCHAT_DELIVERY_DELIVERED)
    {
      b->failed++;
      return;
    }
  b->delivered++;
  if (path <= GCHAT_CLIENT_PATH_OFFLINE)
    b->by_path[path]++;
  b->last_delivered_at = g_get_monotonic_time ();
}

/* Sends one 200-byte message with a running number in front; FALSE if the client refused. */
static gboolean
bench_send_one (Bench *b)
{
  g_autoptr(GError) error = NULL;
  char number[24];
  int len = g_snprintf (number, sizeof number, "%" G_GUINT64_FORMAT " ", b->sent);

  memcpy (b->text, number, len);
  if (gchat_client_send (b->client, RECEIVER, b->text, &error) == 0)
    {
      g_printerr ("bench-peer: cannot send: %s\n", error->message);
      return FALSE;
    }
  b->sent++;
  b->total_sent++;
  b->pending++;
  return TRUE;
}

static void
bench_reset_counts (Bench *b)
{
  b->sent = b->delivered = b->failed = 0;
  memset (b->by_path, 0, sizeof b->by_path);
}

/* Receiver pipe */

static void bench_read_receiver (Bench *b);

static void
receiver_out_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  Bench *b = user_data;
  g_autoptr(GError) error = NULL;
  char *line = g_data_input_stream_read_line_finish (G_DATA_INPUT_STREAM (source), result, NULL,
                                                     &error);

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  if (line == NULL)
    {
      b->receiver_gone = TRUE;
      return;
    }
  g_queue_push_tail (&b->lines, line);
  bench_read_receiver (b);
}

static void
bench_read_receiver (Bench *b)
{
  g_data_input_stream_read_line_async (b->receiver_out, G_PRIORITY_DEFAULT, NULL,
                                       receiver_out_cb, b);
}

static gboolean
bench_tell_receiver (Bench      *b,
                     const char *command)
{
  g_autofree char *line = g_strconcat (command, "\n", NULL);
  GOutputStream *in = g_subprocess_get_stdin_pipe (b->receiver);

  return g_output_stream_write_all (in, line, strlen (line), NULL, NULL, NULL);
}

/* The receiver's next line, or NULL if it did not come in time. */
static char *
bench_receiver_line (Bench *b)
{
  gint64 deadline = g_get_monotonic_time () + WAIT_US;
  guint tick = g_timeout_add (100, tick_cb, NULL);

  while (g_queue_is_empty (&b->lines) && !b->receiver_gone
         && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  g_source_remove (tick);
  return g_queue_pop_head (&b->lines);
}

static gboolean
bench_ask_receiver (Bench      *b,
                    const char *command,
                    char      **answer)
{
  g_autofree char *line = NULL;

  if (!bench_tell_receiver (b, command) || (line = bench_receiver_line (b)) == NULL)
    {
      g_printerr ("bench-peer: the receiver did not answer “%s”\n", command);
      return FALSE;
    }
  if (answer != NULL)
    *answer = g_steal_pointer (&line);
  return TRUE;
}

static void
bench_read_receiver_counts (Bench *b)
{
  g_autofree char *answer = NULL;
  unsigned long long direct = 0, relay = 0, offline = 0;

  if (bench_ask_receiver (b, "count", &answer)
      && sscanf (answer, "count %llu %llu %llu", &direct, &relay, &offline) == 3)
    {
      b->receiver_counts[GCHAT_CLIENT_PATH_DIRECT] = direct;
      b->receiver_counts[GCHAT_CLIENT_PATH_RELAY] = relay;
      b->receiver_counts[GCHAT_CLIENT_PATH_OFFLINE] = offline;
    }
}

/* Raw AEAD */

/* Seals and opens 200-byte bodies as peer datagrams for @seconds; pairs per second. */
static double
measure_peer_keys (const guint8 pair_key[32],
                   double       seconds)
{
  guint8 body[TEXT_SIZE];
  g_autoptr(GchatPeerKeys) sender = gchat_peer_keys_new (pair_key, 1, SENDER, RECEIVER, NULL);
  g_autoptr(GchatPeerKeys) receiver = gchat_peer_keys_new (pair_key, 1, RECEIVER, SENDER, NULL);
  gint64 start = g_get_monotonic_time ();
  gint64 end = start + (gint64) (seconds * G_USEC_PER_SEC);
  guint64 n = 0;

  memset (body, 'x', sizeof body);
  while (g_get_monotonic_time () < end)
    for (guint i = 0; i < 256; i++, n++)
      {
        g_autoptr(GBytes) datagram = gchat_peer_keys_seal (sender, GCHAT_DATAGRAM_KIND_DATA, body,
                                                           sizeof body, NULL);
        g_autoptr(GBytes) back = gchat_peer_keys_open (receiver, g_bytes_get_data (datagram, NULL),
                                                       g_bytes_get_size (datagram), NULL, NULL,
                                                       NULL);

        if (back == NULL)
          g_error ("A peer datagram did not open");
      }
  return n / ((g_get_monotonic_time () - start) / 1e6);
}

/* The same with bare ChaCha20-Poly1305, without datagram headers or allocations. */
static double
measure_aead (const guint8 key[32],
              double       seconds)
{
  guint8 body[TEXT_SIZE], nonce[GCHAT_AEAD_NONCE_SIZE] = { 0 };
  guint8 sealed[TEXT_SIZE + GCHAT_AEAD_TAG_SIZE], opened[TEXT_SIZE];
  g_autoptr(GchatAead) aead = gchat_aead_new (key, NULL);
  gint64 start = g_get_monotonic_time ();
  gint64 end = start + (gint64) (seconds * G_USEC_PER_SEC);
  guint64 n = 0;

  memset (body, 'x', sizeof body);
  while (g_get_monotonic_time () < end)
    for (guint i = 0; i < 256; i++, n++)
      {
        memcpy (nonce, &n, sizeof n);
        if (!gchat_aead_seal (aead, nonce, NULL, 0, body, sizeof body, sealed, NULL)
            || !gchat_aead_open (aead, nonce, NULL, 0, sealed, sizeof sealed, opened, NULL))
          g_error ("ChaCha20-Poly1305 failed");
      }
  return n / ((g_get_monotonic_time () - start) / 1e6);
}

/* Both rates on this one core, before any other process runs. */
static void
phase_aead (Bench  *b,
            double  seconds)
{
  guint8 pair_key[32];

  gchat_random_bytes (pair_key, sizeof pair_key);
  b->seal_open_rate = measure_peer_keys (pair_key, seconds);
  b->aead_rate = measure_aead (pair_key, seconds);
}

/* Throughput */

typedef struct {
  gint64  start;
  guint64 sender, receiver, gchatd;
} CpuMark;

static void
cpu_mark (Bench   *b,
          CpuMark *mark)
{
  mark->start = g_get_monotonic_time ();
  mark->sender = read_cpu_ticks (getpid ());
  mark->receiver = read_cpu_ticks (b->receiver_pid);
  mark->gchatd = read_cpu_ticks (b->gchatd_pid);
}

static void
cpu_since (Bench         *b,
           const CpuMark *mark,
           Throughput    *t)
{
  double percent = 100.0 / sysconf (_SC_CLK_TCK)
                   / ((g_get_monotonic_time () - mark->start) / 1e6);

  t->cpu_sender = (read_cpu_ticks (getpid ()) - mark->sender) * percent;
  t->cpu_receiver = (read_cpu_ticks (b->receiver_pid) - mark->receiver) * percent;
  t->cpu_gchatd = (read_cpu_ticks (b->gchatd_pid) - mark->gchatd) * percent;
}

/* Keeps @window messages pending until --seconds have passed and --messages were sent, then
 * waits for the last acks. The rate counts from the first send to the last ack. */
static void
phase_throughput (Bench      *b,
                  Throughput *t)
{
  gint64 start, end, deadline;
  guint tick = g_timeout_add (100, tick_cb, NULL);
  CpuMark mark;

  bench_reset_counts (b);
  cpu_mark (b, &mark);
  start = g_get_monotonic_time ();
  end = start + b->seconds * G_USEC_PER_SEC;
  deadline = end + WAIT_US;
  for (;;)
    {
      gint64 now = g_get_monotonic_time ();
      gboolean more = now < end || b->sent < (guint64) b->messages;

      while (more && b->pending < (guint64) b->window)
        if (!bench_send_one (b))
          {
            t->why_not = g_strdup ("the client refused a message");
            g_source_remove (tick);
            return;
          }
      if ((!more && b->pending == 0) || now > deadline)
        break;
      g_main_context_iteration (NULL, TRUE);
    }
  g_source_remove (tick);
  cpu_since (b, &mark, t);
  if (b->pending > 0)
    {
      t->why_not = g_strdup_printf ("%" G_GUINT64_FORMAT " messages not acknowledged within "
                                    "%d s", b->pending, (int) (WAIT_US / G_USEC_PER_SEC));
      return;
    }
  t->measured = TRUE;
  t->messages = b->delivered;
  t->failed = b->failed;
  memcpy (t->by_path, b->by_path, sizeof t->by_path);
  t->seconds = (b->last_delivered_at - start) / 1e6;
  t->rate = t->messages / t->seconds;
}

/* Latency */

/* Sends one message and waits for its ack; the round trip in µs, or -1. */
static gint64
round_trip (Bench *b)
{
  guint64 before = b->delivered + b->failed;
  gint64 start = g_get_monotonic_time ();
  gint64 deadline = start + WAIT_US;

  if (!bench_send_one (b))
    return -1;
  while (b->delivered + b->failed == before && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  if (b->delivered + b->failed == before || b->failed > 0)
    return -1;
  return b->last_delivered_at - start;
}

static void
phase_latency (Bench   *b,
               Latency *l)
{
  guint n = b->quick ? LATENCY_SAMPLES / 10 : LATENCY_SAMPLES;
  gint64 end = g_get_monotonic_time () + b->seconds * G_USEC_PER_SEC;
  guint tick = g_timeout_add (100, tick_cb, NULL);

  bench_reset_counts (b);
  l->samples = g_array_new (FALSE, FALSE, sizeof (gint64));
  while (l->samples->len < n && g_get_monotonic_time () < end)
    {
      gint64 us = round_trip (b);

      if (us < 0)
        {
          l->why_not = g_strdup ("a message was not acknowledged");
          break;
        }
      g_array_append_val (l->samples, us);
    }
  g_source_remove (tick);
  g_array_sort (l->samples, compare_int64);
  l->measured = l->why_not == NULL && l->samples->len > 0;
}

/* The relay: the direct path blocked on both sides, and one message through the stall, so
 * that the sender sends everything through gchatd from then on. */
static gboolean
bench_switch_to_relay (Bench *b)
{
  gint64 waited;

  g_object_set (b->client, "direct-loss", 100, NULL);
  if (!bench_ask_receiver (b, "direct-loss 100", NULL))
    return FALSE;
  bench_reset_counts (b);
  waited = round_trip (b);
  if (waited < 0 || b->by_path[GCHAT_CLIENT_PATH_RELAY] != 1)
    {
      g_printerr ("bench-peer: the first message with the direct path blocked did not come "
                  "through the relay\n");
      return FALSE;
    }
  printf ("bench: the relay took over after %.2f s\n", waited / 1e6);
  return TRUE;
}

/* Set-up and clean-up */

static void
die_with_parent (gpointer signal_number)
{
  prctl (PR_SET_PDEATHSIG, GPOINTER_TO_INT (signal_number));
}

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

/* The key pair, gchatd's config (Argon2id at its lowest cost, so log-ins are quick) and the
 * key pinned for both clients. */
static gboolean
bench_write_files (Bench   *b,
                   GError **error)
{
  g_autofree char *private_path = g_build_filename (b->dir, "server-private.pem", NULL);
  g_autofree char *public_path = g_build_filename (b->dir, "server-public.pem", NULL);
  g_autofree char *config_path = g_build_filename (b->dir, "config.yaml", NULL);
  g_autofree char *config = NULL;
  g_autoptr(GchatKnownServers) known = NULL;

  b->key = gchat_rsa_key_generate (GCHAT_RSA_KEY_BITS, error);
  if (b->key == NULL || !gchat_rsa_key_save_private (b->key, private_path, error)
      || !gchat_rsa_key_save_public (b->key, public_path, error))
    return FALSE;
  config = g_strdup_printf ("server_address: 127.0.0.1\n"
                            "server_port: %u\n"
                            "server_certificate: server-public.pem\n"
                            "server_privateKey: server-private.pem\n"
                            "data_base: users.json\n"
                            "argon2_memory_kib: 64\n"
                            "argon2_iterations: 1\n", b->port);
  if (!g_file_set_contents (config_path, config, -1, error))
    return FALSE;
  b->known_path = g_build_filename (b->dir, "known-servers", NULL);
  known = gchat_known_servers_new (b->known_path);
  return gchat_known_servers_pin (known, "127.0.0.1", b->port, b->key, error);
}

static gboolean
gchatd_listens (guint16 port)
{
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GSocketConnection) connection = NULL;

  connection = g_socket_client_connect_to_host (client, "127.0.0.1", port, NULL, NULL);
  return connection != NULL;
}

static gboolean
bench_start_gchatd (Bench *b)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *config = g_build_filename (b->dir, "config.yaml", NULL);
  g_autofree char *log = g_build_filename (b->dir, "gchatd.log", NULL);
  gint64 deadline = g_get_monotonic_time () + WAIT_US;

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE);
  g_subprocess_launcher_set_stderr_file_path (launcher, log);
  g_subprocess_launcher_set_child_setup (launcher, die_with_parent, GINT_TO_POINTER (SIGTERM),
                                         NULL);
  b->gchatd = g_subprocess_launcher_spawn (launcher, &error, b->gchatd_path, "--config", config,
                                           NULL);
  if (b->gchatd == NULL)
    {
      g_printerr ("bench-peer: cannot start gchatd: %s\n", error->message);
      return FALSE;
    }
  b->gchatd_pid = atoi (g_subprocess_get_identifier (b->gchatd));
  while (!gchatd_listens (b->port))
    {
      if (g_get_monotonic_time () > deadline || g_subprocess_get_identifier (b->gchatd) == NULL)
        {
          g_printerr ("bench-peer: gchatd did not listen on port %u; its log is %s\n", b->port,
                      log);
          return FALSE;
        }
      g_usleep (20000);
    }
  printf ("bench: started %s (pid %d) on 127.0.0.1 port %u\n", b->gchatd_path, b->gchatd_pid,
          b->port);
  return TRUE;
}

/* Re-executes this program as the receiver and waits for its "ready". */
static gboolean
bench_start_receiver (Bench *b)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *self_path = g_file_read_link ("/proc/self/exe", &error);
  g_autofree char *port = g_strdup_printf ("%u", b->port);
  g_autofree char *ready = NULL;

  if (self_path == NULL)
    {
      g_printerr ("bench-peer: cannot find this program again: %s\n", error->message);
      return FALSE;
    }
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE
                                        | G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_subprocess_launcher_set_child_setup (launcher, die_with_parent, GINT_TO_POINTER (SIGKILL),
                                         NULL);
  b->receiver = g_subprocess_launcher_spawn (launcher, &error, self_path, "--receiver", "--port",
                                             port, "--known", b->known_path, NULL);
  if (b->receiver == NULL)
    {
      g_printerr ("bench-peer: cannot start the receiver: %s\n", error->message);
      return FALSE;
    }
  b->receiver_pid = atoi (g_subprocess_get_identifier (b->receiver));
  b->receiver_out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (b->receiver));
  bench_read_receiver (b);
  ready = bench_receiver_line (b);
  if (g_strcmp0 (ready, "ready") != 0)
    {
      g_printerr ("bench-peer: the receiver did not log in\n");
      return FALSE;
    }
  return TRUE;
}

static gboolean
bench_prepare (Bench *b)
{
  g_autoptr(GError) error = NULL;
  gint64 deadline;

  b->dir = g_dir_make_tmp ("gchat-bench-peer-XXXXXX", &error);
  b->port = find_free_port ();
  if (b->dir == NULL || !bench_write_files (b, &error))
    {
      g_printerr ("bench-peer: %s\n", error->message);
      return FALSE;
    }
  if (!bench_start_gchatd (b))
    return FALSE;
  b->client = client_new (b->port, b->known_path);
  g_signal_connect (b->client, "delivery-changed", G_CALLBACK (delivery_cb), b);
  if (!client_sign_up (b->client, SENDER) || !bench_start_receiver (b))
    return FALSE;
  deadline = g_get_monotonic_time () + WAIT_US;
  while (!gchat_client_is_online (b->client, RECEIVER) && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  /* The first message waits for the pair key: it is not part of any figure. */
  if (!gchat_client_is_online (b->client, RECEIVER) || round_trip (b) < 0)
    {
      g_printerr ("bench-peer: the receiver is not online or did not answer a first message\n");
      return FALSE;
    }
  return TRUE;
}

static void
bench_stop_gchatd (Bench *b)
{
  if (b->gchatd == NULL)
    return;
  g_subprocess_send_signal (b->gchatd, SIGTERM);
  if (!g_subprocess_wait (b->gchatd, NULL, NULL) || !g_subprocess_get_if_exited (b->gchatd)
      || g_subprocess_get_exit_status (b->gchatd) != 0)
    g_printerr ("bench-peer: gchatd did not exit cleanly; its log was in %s\n", b->dir);
}

static void
bench_cleanup (Bench *b)
{
  if (b->client != NULL && gchat_client_get_state (b->client) == GCHAT_CLIENT_STATE_ONLINE)
    client_log_out (b->client);
  if (b->receiver != NULL)
    {
      bench_tell_receiver (b, "quit");
      g_output_stream_close (g_subprocess_get_stdin_pipe (b->receiver), NULL, NULL);
      g_subprocess_wait (b->receiver, NULL, NULL);
    }
  bench_stop_gchatd (b);
  if (b->dir != NULL)
    gchat_test_remove_tree (b->dir);
  g_clear_pointer (&b->dir, g_free);
  g_clear_pointer (&b->known_path, g_free);
  g_clear_object (&b->client);
  g_clear_object (&b->receiver_out);
  g_clear_object (&b->receiver);
  g_clear_object (&b->gchatd);
  g_clear_object (&b->key);
  g_queue_clear_full (&b->lines, g_free);
  g_clear_pointer (&b->direct_latency.samples, g_array_unref);
  g_clear_pointer (&b->relay_latency.samples, g_array_unref);
  g_clear_pointer (&b->direct.why_not, g_free);
  g_clear_pointer (&b->relay.why_not, g_free);
  g_clear_pointer (&b->direct_latency.why_not, g_free);
  g_clear_pointer (&b->relay_latency.why_not, g_free);
}

/* The report */

static void
print_row (const char *measure,
           const char *result,
           const char *target)
{
  printf ("| %s | %s | %s |\n", measure, result, target);
}

static char *
format_throughput (const Throughput *t)
{
  if (!t->measured)
    return g_strdup_printf ("not measured (%s)", t->why_not != NULL ? t->why_not : "skipped");
  return g_strdup_printf ("**%.0f/s**", t->rate);
}

static char *
format_latency (const Latency *l)
{
  if (!l->measured)
    return g_strdup_printf ("not measured (%s)", l->why_not != NULL ? l->why_not : "skipped");
  return g_strdup_printf ("**%.3f** / **%.3f** ms (max %.3f, %u samples)",
                          percentile (l->samples, 0.5) / 1e3, percentile (l->samples, 0.99) / 1e3,
                          percentile (l->samples, 1.0) / 1e3, l->samples->len);
}

static void
print_table (Bench *b)
{
  g_autofree char *direct = format_throughput (&b->direct);
  g_autofree char *relay = format_throughput (&b->relay);
  g_autofree char *direct_latency = format_latency (&b->direct_latency);
  g_autofree char *relay_latency = format_latency (&b->relay_latency);
  g_autofree char *seal_open = g_strdup_printf ("%.0f/s (bare ChaCha20-Poly1305: %.0f/s)",
                                                b->seal_open_rate, b->aead_rate);
  g_autofree char *ratio = NULL;

  ratio = !b->direct.measured || b->seal_open_rate <= 0 ? g_strdup ("not measured")
          : g_strdup_printf ("**%.1f %%** of the seal+open rate", 100.0 * b->direct.rate
                                                                  / b->seal_open_rate);
  printf ("\n| measure | result | target |\n| --- | --- | --- |\n");
  print_row ("Direct path, 200-byte messages acknowledged", direct, "≥ 50,000/s");
  print_row ("Relay path, 200-byte messages acknowledged", relay, "");
  print_row ("Direct latency, send → delivered (p50 / p99)", direct_latency,
             "< 1 ms / < 5 ms");
  print_row ("Relay latency, send → delivered (p50 / p99)", relay_latency, "");
  print_row ("Peer datagram seal + open, 200-byte body, one core", seal_open, "");
  print_row ("Direct throughput against seal + open", ratio, "");
}

static void
print_throughput_figures (const char       *label,
                          const Throughput *t)
{
  if (!t->measured)
    return;
  printf ("- %s: %" G_GUINT64_FORMAT " messages in %.2f s (%" G_GUINT64_FORMAT " reported "
          "direct, %" G_GUINT64_FORMAT " relayed, %" G_GUINT64_FORMAT " failed or queued); CPU "
          "of the sender %.0f %%, of the receiver %.0f %%, of gchatd %.0f %%\n", label,
          t->messages, t->seconds, t->by_path[GCHAT_CLIENT_PATH_DIRECT],
          t->by_path[GCHAT_CLIENT_PATH_RELAY], t->failed, t->cpu_sender, t->cpu_receiver,
          t->cpu_gchatd);
}

static void
print_machine (Bench *b)
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
  /* Other processes share the cores: the load average says how much they did. */
  if (g_file_get_contents ("/proc/loadavg", &load, NULL, NULL))
    load[strcspn (load, " ")] = '\0';
  printf ("\nMachine: %d cores (nproc), %s, %s, load average %s; window %d messages, %d s per "
          "rate phase, CPU in percent of one core\n", (int) g_get_num_processors (),
          model != NULL ? model : "unknown CPU", date, load != NULL ? load : "unknown",
          b->window, b->seconds);
}

static void
bench_report (Bench *b)
{
  print_table (b);
  print_machine (b);
  print_throughput_figures ("Direct", &b->direct);
  print_throughput_figures ("Relay", &b->relay);
  printf ("- The receiver showed %" G_GUINT64_FORMAT " messages that came directly, %"
          G_GUINT64_FORMAT " through the relay, %" G_GUINT64_FORMAT " from the mailbox; %"
          G_GUINT64_FORMAT " were sent\n", b->receiver_counts[GCHAT_CLIENT_PATH_DIRECT],
          b->receiver_counts[GCHAT_CLIENT_PATH_RELAY],
          b->receiver_counts[GCHAT_CLIENT_PATH_OFFLINE], b->total_sent);
}

/* Every phase in order; the figures of a phase that failed say why. */
static gboolean
bench_run (Bench *b)
{
  printf ("bench: sealing and opening 200-byte bodies on one core\n");
  phase_aead (b, b->quick ? 0.3 : 1.0);
  if (!bench_prepare (b))
    return FALSE;
  printf ("bench: direct throughput\n");
  phase_throughput (b, &b->direct);
  printf ("bench: direct latency\n");
  phase_latency (b, &b->direct_latency);
  printf ("bench: switching to the relay (the first message waits for the stall timeout)\n");
  if (bench_switch_to_relay (b))
    {
          printf ("bench: relay throughput\n");
      phase_throughput (b, &b->relay);
          printf ("bench: relay latency\n");
      phase_latency (b, &b->relay_latency);
        }
  bench_read_receiver_counts (b);
  return TRUE;
}

static Bench bench = {
  .seconds = 3, .window = 256, .gchatd_path = GCHATD_PATH,
};
static gboolean opt_receiver;
static int opt_port;
static char *opt_known;

static const GOptionEntry entries[] = {
  { "seconds", 0, 0, G_OPTION_ARG_INT, &bench.seconds,
    "Seconds of each throughput phase, at least (3)", "S" },
  { "messages", 0, 0, G_OPTION_ARG_INT, &bench.messages,
    "Messages of each throughput phase, at least (0)", "N" },
  { "window", 0, 0, G_OPTION_ARG_INT, &bench.window,
    "Messages kept pending in the throughput phases (256)", "W" },
  { "quick", 0, 0, G_OPTION_ARG_NONE, &bench.quick, "One second per phase, fewer samples",
    NULL },
  { "gchatd", 0, 0, G_OPTION_ARG_FILENAME, &bench.gchatd_path, "The gchatd to run", "PATH" },
  { "receiver", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_NONE, &opt_receiver, NULL, NULL },
  { "port", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_INT, &opt_port, NULL, NULL },
  { "known", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_FILENAME, &opt_known, NULL, NULL },
  { NULL }
};

static gboolean
check_options (Bench *b)
{
  if (b->quick)
    b->seconds = 1;
  if (b->seconds < 1 || b->seconds > 12 || b->messages < 0 || b->messages > 10000000)
    g_printerr ("bench-peer: --seconds must be 1 to 12 (the relay holds for 30 s after a "
                "stall) and --messages 0 to 10000000\n");
  /* The conversation queues 1,024 behind 32 in flight; more would go to the mailbox. */
  else if (b->window < 1 || b->window > 1000)
    g_printerr ("bench-peer: --window must be 1 to 1000\n");
  else if (!g_file_test (b->gchatd_path, G_FILE_TEST_IS_EXECUTABLE))
    g_printerr ("bench-peer: there is no gchatd at %s; build it first (ninja -C BUILDDIR) "
                "or name it with --gchatd\n", b->gchatd_path);
  else
    return TRUE;
  return FALSE;
}

static int
bench_main (void)
{
  g_autoptr(GError) error = NULL;
  gboolean ok;

  if (!check_options (&bench))
    return EXIT_FAILURE;
  if (!gchat_crypto_init (&error))
    {
      g_printerr ("bench-peer: %s\n", error->message);
      return EXIT_FAILURE;
    }
  memset (bench.text, 'x', TEXT_SIZE);
  ok = bench_run (&bench);
  if (ok)
    bench_report (&bench);
  bench_cleanup (&bench);
  gchat_crypto_shutdown ();
  return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GOptionContext) context = g_option_context_new (NULL);
  g_autoptr(GError) error = NULL;

  g_option_context_set_summary (context, "Runs two GchatClients through the built gchatd and "
                                "prints their message rates and latencies as a Markdown table.");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("bench-peer: %s\n", error->message);
      return EXIT_FAILURE;
    }
  /* Lines must go at once, even in a pipe: the receiver's answers are read as they come. */
  setvbuf (stdout, NULL, _IOLBF, 0);
  signal (SIGPIPE, SIG_IGN);
  if (opt_receiver)
    return receiver_main ((guint16) opt_port, opt_known);
  return bench_main ();
}
