/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Measures a real gchatd against the speed targets of its issue, with simulated clients spread
 * over worker processes (not a test: it prints a table for the README). */

/* How it works. The parent process makes a temporary folder with a key pair and a config file,
 * starts the built gchatd on a free port and re-executes itself W times with the hidden
 * --worker option. Each worker owns a slice of the users (u00001, u00002, …) and drives all of
 * them from one GLib main loop: non-blocking GSockets registered in one epoll set, which is a
 * single GSource, so a wake-up costs what is ready rather than what is open. The parent sends
 * each worker one command line at a time on its stdin and reads the answer lines on its
 * stdout. Every wait has a deadline, and the children die with the parent.
 *
 * The phases: handshakes and resumptions with no sessions, the sign-up of N users, a join,
 * handshakes, pair keys, resumptions, relayed datagrams and offline posts with N online, then a
 * restart of gchatd under all of them (each comes back with its ticket and rebuilds its online
 * list), and last a log-in storm at gchatd's default Argon2id cost while an idle client pings.
 * --phases picks some; the sign-up always runs. */

#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <glib-unix.h>
#include <glib/gstdio.h>
#include <gio/gio.h>

#include "gchat-test-util.h"
#include "gchat-channel.h"
#include "gchat-crypto.h"
#include "gchat-frame.h"
#include "gchat-handshake.h"
#include "gchat-message.h"
#include "gchat-rsa-key.h"

#define PASSWORD "bench password 1"
/* The label of the client key in the handshake (PROTOCOL.md §3.3), for the unwrap rate. */
#define CLIENT_KEY_LABEL "gchat v1 client key"

/* Deadlines of one client: a handshake (and ping) and a whole sign-up, queueing included. */
#define HANDSHAKE_TIMEOUT_US (15 * G_USEC_PER_SEC)
#define SIGN_TIMEOUT_US (120 * G_USEC_PER_SEC)
/* A user whose connection fails before it is logged in is tried this many times in all. */
#define SIGN_ATTEMPTS 3
/* How often a worker checks deadlines, refills its windows and sees whether a phase is over. */
#define SWEEP_MS 20
/* Deadlines, busy retries and keepalives are checked every this many sweeps. */
#define SCAN_EVERY 10
/* Sign-ups in flight per worker: enough to keep both cores busy with RSA, few enough that
 * the server's bounded Argon2id queue (64) and listen backlog are never the limit. */
#define SIGN_WINDOW 16
/* A reconnecting client gives up on an attempt (a SYN lost to a full listen backlog waits
 * seconds for the kernel's retransmission) and tries afresh after this long. */
#define RECONNECT_TIMEOUT_US (10 * G_USEC_PER_SEC)
/* Key pairs made per worker for each second of a resumption phase (past them, the simulated
 * clients make their own inside the phase). */
#define RESUME_KEY_PAIRS_PER_S 1000
/* The pinger's interval in the log-in storm. */
#define PING_MS 10
/* A logged-in client that has sent nothing this long sends a `ping` (PROTOCOL.md §5.1). */
#define KEEPALIVE_US (30 * G_USEC_PER_SEC)
/* How long in-flight talk requests may take to come back after a talk phase. */
#define TALK_DRAIN_US (10 * G_USEC_PER_SEC)
/* A sign-up phase fails after this long without a new log-in, or this long in all. */
#define STALL_US (60 * G_USEC_PER_SEC)
/* Sign-up progress is shown this often, in seconds. */
#define PROGRESS_S 30
#define SIGN_UP_MAX_MS (2 * 60 * 60 * 1000)
/* gchatd's configured connection limit; the bench stays below it. A process may open 20,000
 * files here: this leaves gchatd room for its listening sockets, logs and data files. */
#define MAX_CONNECTIONS 19800
/* A process may open this many files here, and each client is one. */
#define MAX_CLIENTS_PER_WORKER 18000

static int
compare_int64 (gconstpointer a,
               gconstpointer b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;

  return (x > y) - (x < y);
}

static gboolean
has_prefix (const guint8 *data,
            gsize         len,
            const char   *prefix)
{
  gsize n = strlen (prefix);

  return len >= n && memcmp (data, prefix, n) == 0;
}

/* Simulated clients */

typedef struct _Worker Worker;

typedef enum {
  CLIENT_CONNECTING,
  CLIENT_HELLO,   /* connected, waiting for the server hello */
  CLIENT_WAITING, /* the first request is out, its answer decides */
  CLIENT_READY,   /* the handshake is proven by a pong; not logged in */
  CLIENT_ONLINE,  /* logged in */
  CLIENT_CLOSED,
} ClientState;

typedef enum {
  ROLE_CHURN,   /* handshake, ping, pong, close: the handshake rate */
  ROLE_USER,    /* sign up (or log in) and stay online */
  ROLE_JOINER,  /* the parent's own client: ping, then whatever the parent sends */
  ROLE_RESUMER, /* resume with its account's ticket, close: the resumption rate */
  ROLE_STORM,   /* full handshake, sign up at the configured cost, close: the log-in storm */
} ClientRole;

/* The newest resumption ticket of one account and its secret (PROTOCOL.md §3.5). */
typedef struct {
  GBytes *ticket; /* NULL: none, log in with the password */
  guint8  secret[GCHAT_RESUME_SECRET_SIZE];
} Ticket;

typedef struct {
  Worker            *worker;
  ClientRole         role;
  ClientState        state;
  char              *user;  /* NULL for churn */
  guint              index; /* 1-based user number, 0 for none */
  GSocket           *socket;
  int                fd;
  guint32            events; /* what the epoll set watches */
  GchatHandshake    *handshake;
  GchatChannel      *channel;
  GchatFrameDecoder *decoder;
  GByteArray        *out;    /* sealed frames the socket did not take yet */
  gint64             started;
  gint64             last_sent;
  gint64             deadline; /* 0: none */
  gint64             retry_at; /* 0: none; a `busy` answer asks to send again then */
  gint64             answered; /* when the log-in was answered */
  gint64             join_seen;
  gboolean           completed; /* a churn client that got its pong */
  gboolean           keep;      /* the parent frees it, not the worker */
  char              *failure;   /* why it closed, for the parent's joiner */
  guint              next_k;    /* talk partner offset */
  guint              in_flight;
  gint64             next_id;
  guint              listed;    /* names in the answer to the joiner's `list` */
  gboolean           list_done;
  Ticket            *ticket;    /* where this account's tickets go; NULL for none */
  gboolean           resuming;  /* this connection resumes rather than logs in */
  guint              slot;      /* a resumer's account */
  guint              mails;     /* `mail` messages a joiner got */
  gboolean           pinger;    /* a joiner whose pongs are timed */
  guint              post_k;    /* the next mailbox a user posts to */
  guint              posts;     /* posts in flight */
} Client;

/* An X25519 key pair made before a timed phase, for one connection. */
typedef struct {
  guint8 secret[GCHAT_X25519_SIZE];
  guint8 public_key[GCHAT_X25519_SIZE];
} KeyPair;

struct _Worker
{
  GMainLoop      *loop; /* a worker process's own; NULL in the parent */
  GArray         *key_pairs; /* KeyPair, each used once: the resumers' and reconnecters' */
  int             epoll_fd;
  guint           epoll_id;
  guint           sweep_id;
  guint           stdin_id;
  GString        *command;
  GchatRsaKey    *server_key;
  GSocketAddress *address;
  guint           first;   /* this worker's users: first … first + count - 1 */
  guint           count;
  guint           n_total; /* all users of all workers */
  Client        **users;
  guint8         *attempts;
  gboolean       *use_auth;
  GHashTable     *churn;   /* Client → itself */
  GPtrArray      *dead;    /* closed clients, freed once no event can name them */
  gboolean        quitting;
  guint           n_errors;
  guint           sweeps;

  /* sign-up */
  gboolean        signing;
  guint           next_user;
  GQueue          retry; /* user numbers to try again */
  guint           sign_active;
  guint           signed_ok;
  guint           signed_failed;
  gint64          sign_start;
  gint64          sign_last;
  gint64          progress_at;
  guint           lost;

  /* handshake churn */
  gboolean        churning;
  gint64          churn_end;
  guint           churn_target;
  guint64         churn_done;
  guint64         churn_failed;
  guint64         churn_late;
  gint64          churn_latency_sum;

  /* join */
  char           *join_name;
  gboolean        collecting;
  gint64          collect_end;

  /* talk */
  gboolean        talking;
  gint64          talk_end;
  guint           talk_window;
  guint64         talk_in_flight;
  guint64         talk_issued;
  guint64         talk_peer;
  guint64         talk_errors;
  guint64         talk_late;
  gboolean        talk_wrapped;

  /* resumption, and the role the churn phases use */
  ClientRole      churn_role;
  Ticket         *user_tickets;   /* one per user of this worker */
  Ticket         *resume_tickets; /* the resumers' accounts */
  guint           n_resume;
  GQueue          free_slots;     /* resumers' accounts not in use */
  guint           prep_active;
  gboolean        prepping;
  guint           storm_next;

  /* mass reconnect */
  gboolean        reconnecting;   /* a lost session connects again by itself */
  gboolean        tracking;       /* users keep their online list */
  guint           jitter_ms;
  gint64         *reconnect_at;   /* per user; 0: none */
  guint8         *seen;           /* per user, a bit per user u00001 … of its online list */
  guint          *seen_count;
  gint64         *complete_at;    /* when each user's list was last complete */
  gboolean        rc_waiting;
  gint64          rc_end;
  guint64         presence_bytes;
  guint64         users_bytes;
  guint64         rc_resumed;
  guint64         rc_full;
  guint64         rc_retries;
  gint64          rc_online_last;

  /* relay and post */
  gboolean        relaying;
  gint64          relay_end;
  guint64         relay_sent;
  guint64         relay_received;
  guint64         relay_late;
  guint8          datagram[200];
  gboolean        posting;
  gint64          post_end;
  guint           post_window;
  guint           mailboxes;
  guint64         post_in_flight;
  guint64         post_ok;
  guint64         post_refused;
  guint64         post_late;
  char            text[201];

  /* the parent's pinger */
  GArray         *ping_sent;      /* gint64 per ping id */
  GArray         *ping_rtt;       /* gint64 µs */
};

static void client_close (Client     *c,
                          const char *reason);
static void worker_client_closed (Worker      *w,
                                  Client      *c,
                                  ClientState  was,
                                  const char  *reason);
static void worker_user_online (Worker *w,
                                Client *c);
static void worker_churn_done (Worker *w,
                               Client *c);
static void client_post_answered (Client   *c,
                                  gboolean  ok);

static void
client_free (Client *c)
{
  g_clear_object (&c->socket);
  g_clear_pointer (&c->handshake, gchat_handshake_free);
  g_clear_pointer (&c->channel, gchat_channel_free);
  g_clear_pointer (&c->decoder, gchat_frame_decoder_free);
  g_clear_pointer (&c->out, g_byte_array_unref);
  g_free (c->user);
  g_free (c->failure);
  g_free (c);
}

static void
client_watch (Client  *c,
              guint32  events)
{
  struct epoll_event event = { .events = events, .data.ptr = c };

  if (c->events == events)
    return;
  c->events = events;
  epoll_ctl (c->worker->epoll_fd, EPOLL_CTL_MOD, c->fd, &event);
}

/* Sends what the socket takes now; the rest waits for EPOLLOUT. */
static void
client_flush (Client *c)
{
  g_autoptr(GError) error = NULL;
  gssize n;

  if (c->state == CLIENT_CLOSED || c->state == CLIENT_CONNECTING)
    return;
  if (c->out->len > 0)
    {
      n = g_socket_send (c->socket, (const char *) c->out->data, c->out->len, NULL, &error);
      if (n < 0 && !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        {
          client_close (c, error->message);
          return;
        }
      if (n > 0)
        g_byte_array_remove_range (c->out, 0, n);
    }
  client_watch (c, c->out->len > 0 ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

static void
client_queue (Client       *c,
              GchatMessage *message)
{
  g_autoptr(GBytes) json = gchat_message_encode (message, NULL);
  g_autoptr(GBytes) frame = NULL;
  g_autoptr(GError) error = NULL;

  g_assert (json != NULL); /* every field the bench sets is within its limits */
  frame = gchat_channel_seal (c->channel, g_bytes_get_data (json, NULL), g_bytes_get_size (json),
                              &error);
  if (frame == NULL)
    {
      client_close (c, error->message);
      return;
    }
  g_byte_array_append (c->out, g_bytes_get_data (frame, NULL), g_bytes_get_size (frame));
  c->last_sent = g_get_monotonic_time ();
}

static void
client_send_simple (Client           *c,
                    GchatMessageType  type,
                    gint64            id)
{
  g_autoptr(GchatMessage) message = gchat_message_new (type);

  if (id >= 0)
    gchat_message_set_int (message, "id", id);
  client_queue (c, message);
  client_flush (c);
}

static void
client_send_login (Client           *c,
                   GchatMessageType  type)
{
  g_autoptr(GchatMessage) message = gchat_message_new (type);

  gchat_message_set_string (message, "user", c->user);
  gchat_message_set_string (message, "password", PASSWORD);
  gchat_message_set_int (message, "id", 1);
  c->state = CLIENT_WAITING;
  c->retry_at = 0;
  client_queue (c, message);
  client_flush (c);
}

/* The first sealed request follows the client key at once, as PROTOCOL.md §3.3 allows. */
static void
client_send_first_request (Client *c)
{
  Worker *w = c->worker;

  if (c->resuming)
    {
      /* Nothing follows a resumption message until its `result` (PROTOCOL.md §3.5). */
      c->state = CLIENT_WAITING;
      client_flush (c);
    }
  else if (c->role == ROLE_USER)
    client_send_login (c, w->use_auth[c->index - w->first] ? GCHAT_MESSAGE_AUTH
                                                           : GCHAT_MESSAGE_SIGN);
  else if (c->role == ROLE_RESUMER || c->role == ROLE_STORM)
    client_send_login (c, GCHAT_MESSAGE_SIGN);
  else
    {
      c->state = CLIENT_WAITING;
      client_send_simple (c, GCHAT_MESSAGE_PING, 1);
    }
}

static void
client_on_hello (Client *c,
                 GBytes *hello)
{
  g_autoptr(GBytes) client_key = NULL;
  g_autoptr(GBytes) frame = NULL;
  g_autoptr(GError) error = NULL;

  if (!gchat_handshake_step (c->handshake, hello, &client_key, &error)
      || (frame = gchat_frame_encode (g_bytes_get_data (client_key, NULL),
                                      g_bytes_get_size (client_key), &error)) == NULL)
    {
      client_close (c, error->message);
      return;
    }
  g_byte_array_append (c->out, g_bytes_get_data (frame, NULL), g_bytes_get_size (frame));
  c->channel = gchat_handshake_steal_channel (c->handshake);
  g_clear_pointer (&c->handshake, gchat_handshake_free);
  client_send_first_request (c);
}

static void
client_on_pong (Client       *c,
                GchatMessage *pong)
{
  Worker *w = c->worker;
  gint64 id = gchat_message_get_int (pong, "id");

  if (c->pinger && id > 0 && w->ping_sent != NULL && (guint) id <= w->ping_sent->len)
    {
      gint64 rtt = g_get_monotonic_time () - g_array_index (w->ping_sent, gint64, id - 1);

      g_array_append_val (w->ping_rtt, rtt);
      return;
    }
  if (c->state != CLIENT_WAITING)
    return;
  c->deadline = 0;
  if (c->role == ROLE_CHURN)
    worker_churn_done (c->worker, c);
  else
    c->state = CLIENT_READY;
}

/* Partners at offsets 1 … (N-1)/2 make distinct pairs: {i, i+k} and {j, j+k'} are one pair
 * only when k + k' = N. Past that the offsets start over, and pairs (and keys) repeat. */
static guint
client_next_partner (Client *c)
{
  Worker *w = c->worker;
  guint half = MAX ((w->n_total - 1) / 2, 1);

  if (c->next_k == 0 || c->next_k > half)
    {
      if (c->next_k > half)
        w->talk_wrapped = TRUE;
      c->next_k = 1;
    }
  return (c->index - 1 + c->next_k++) % w->n_total + 1;
}

static void
client_talk_more (Client *c)
{
  Worker *w = c->worker;
  gint64 now = g_get_monotonic_time ();

  while (w->talking && c->state == CLIENT_ONLINE && c->in_flight < w->talk_window
         && now < w->talk_end)
    {
      g_autoptr(GchatMessage) talk = gchat_message_new (GCHAT_MESSAGE_TALK);
      char partner[16];

      g_snprintf (partner, sizeof partner, "u%05u", client_next_partner (c));
      gchat_message_set_string (talk, "user", partner);
      gchat_message_set_int (talk, "id", c->next_id++ % G_MAXINT32);
      client_queue (c, talk);
      c->in_flight++;
      w->talk_in_flight++;
    }
  client_flush (c);
}

static void
client_talk_answered (Client   *c,
                      gboolean  ok)
{
  Worker *w = c->worker;

  if (c->in_flight == 0)
    return;
  c->in_flight--;
  w->talk_in_flight--;
  if (!ok)
    w->talk_errors++;
  else if (g_get_monotonic_time () < w->talk_end)
    w->talk_issued++;
  else
    w->talk_late++;
  client_talk_more (c);
}

/* Every successful log-in or resumption brings the ticket for the next one; the newest wins. */
static void
client_keep_ticket (Client       *c,
                    GchatMessage *result)
{
  GBytes *ticket = gchat_message_get_bytes (result, "resume");
  GBytes *secret = gchat_message_get_bytes (result, "resume_secret");

  if (c->ticket == NULL || ticket == NULL || secret == NULL
      || g_bytes_get_size (secret) != GCHAT_RESUME_SECRET_SIZE)
    return;
  g_clear_pointer (&c->ticket->ticket, g_bytes_unref);
  c->ticket->ticket = g_bytes_ref (ticket);
  memcpy (c->ticket->secret, g_bytes_get_data (secret, NULL), GCHAT_RESUME_SECRET_SIZE);
}

/* A 200-byte datagram to the next user, who passes it on when it comes: the ring keeps the
 * number in flight constant, so gchatd's relay, not a queue, sets the rate. */
static void
client_relay_one (Client *c)
{
  Worker *w = c->worker;
  g_autoptr(GchatMessage) relay = gchat_message_new (GCHAT_MESSAGE_RELAY);
  char partner[16];

  g_snprintf (partner, sizeof partner, "u%05u", c->index % w->n_total + 1);
  gchat_message_set_string (relay, "to", partner);
  gchat_message_set_bytes (relay, "datagram", w->datagram, sizeof w->datagram);
  client_queue (c, relay);
  w->relay_sent++;
}

static void
client_on_relayed (Client *c)
{
  Worker *w = c->worker;

  if (!w->relaying)
    return;
  if (g_get_monotonic_time () >= w->relay_end)
    {
      w->relay_late++;
      return;
    }
  w->relay_received++;
  if (c->state == CLIENT_ONLINE && c->role == ROLE_USER)
    client_relay_one (c);
}

/* Posts to the mailbox accounts m0001 …, which are offline, keeping a window in flight. */
static void
client_post_more (Client *c)
{
  Worker *w = c->worker;
  gint64 now = g_get_monotonic_time ();

  while (w->posting && c->state == CLIENT_ONLINE && c->posts < w->post_window
         && now < w->post_end)
    {
      g_autoptr(GchatMessage) post = gchat_message_new (GCHAT_MESSAGE_POST);
      char to[16];

      g_snprintf (to, sizeof to, "m%04u", (c->index + c->post_k++) % w->mailboxes + 1);
      gchat_message_set_string (post, "to", to);
      gchat_message_set_int (post, "msg_id", (gint64) c->index * 1000000000 + c->next_id);
      gchat_message_set_bytes (post, "text", (const guint8 *) w->text, strlen (w->text));
      gchat_message_set_int (post, "id", c->next_id++ % G_MAXINT32);
      client_queue (c, post);
      c->posts++;
      w->post_in_flight++;
    }
  client_flush (c);
}

static void
client_post_answered (Client   *c,
                      gboolean  ok)
{
  Worker *w = c->worker;

  if (c->posts == 0)
    return;
  c->posts--;
  w->post_in_flight--;
  if (!ok)
    w->post_refused++;
  else if (g_get_monotonic_time () < w->post_end)
    w->post_ok++;
  else
    w->post_late++;
  client_post_more (c);
}

static void
client_on_login_result (Client       *c,
                        GchatMessage *result)
{
  const char *code = gchat_message_get_string (result, "code");

  if (c->state != CLIENT_WAITING)
    return;
  if (gchat_message_get_bool (result, "ok"))
    {
      client_keep_ticket (c, result);
      c->answered = g_get_monotonic_time ();
      c->deadline = 0;
      c->state = CLIENT_ONLINE;
      if (c->role == ROLE_USER)
        worker_user_online (c->worker, c);
      else if (c->role == ROLE_RESUMER || c->role == ROLE_STORM)
        worker_churn_done (c->worker, c);
    }
  else if (c->resuming)
    {
      /* A refused ticket is forgotten: the next attempt logs in with the password. */
      if (c->ticket != NULL)
        g_clear_pointer (&c->ticket->ticket, g_bytes_unref);
      client_close (c, "resumption refused");
    }
  else if ((c->role == ROLE_USER || c->role == ROLE_RESUMER) && g_strcmp0 (code, "busy") == 0)
    c->retry_at = g_get_monotonic_time ()
                  + MAX (gchat_message_get_int (result, "retry_after"), 1) * G_USEC_PER_SEC;
  else if ((c->role == ROLE_USER || c->role == ROLE_RESUMER)
           && g_strcmp0 (code, "name-taken") == 0)
    {
      /* An earlier attempt signed up but lost its connection before the answer. */
      if (c->role == ROLE_USER)
        c->worker->use_auth[c->index - c->worker->first] = TRUE;
      client_send_login (c, GCHAT_MESSAGE_AUTH);
    }
  else
    {
      g_autofree char *reason = g_strdup_printf ("log-in refused: %s", code ? code : "?");

      client_close (c, reason);
    }
}

static void
client_on_result (Client       *c,
                  GchatMessage *result)
{
  const char *request = gchat_message_get_string (result, "request");

  if (g_strcmp0 (request, "talk") == 0)
    client_talk_answered (c, FALSE);
  else if (g_strcmp0 (request, "post") == 0)
    client_post_answered (c, gchat_message_get_bool (result, "ok"));
  else
    client_on_login_result (c, result);
}

static void
client_on_pair_key (Client       *c,
                    GchatMessage *pair_key)
{
  Worker *w = c->worker;

  if (gchat_message_has_field (pair_key, "id"))
    client_talk_answered (c, TRUE);
  else if (g_get_monotonic_time () < w->talk_end)
    w->talk_peer++;
}

static void
client_on_presence (Client       *c,
                    GchatMessage *presence)
{
  g_auto(GStrv) joined = gchat_message_dup_strv (presence, "joined");
  const char *name = c->worker->join_name;

  if (c->join_seen == 0 && name != NULL && joined != NULL
      && g_strv_contains ((const char * const *) joined, name))
    c->join_seen = g_get_monotonic_time ();
}

/* The joiner counts the names of the answer to its `list` (id 2), which is the server's own
 * count of sessions. */
static void
client_on_users (Client       *c,
                 GchatMessage *users)
{
  g_auto(GStrv) names = gchat_message_dup_strv (users, "users");

  if (c->role != ROLE_JOINER || gchat_message_get_int (users, "id") != 2)
    return;
  c->listed += names ? g_strv_length (names) : 0;
  if (!gchat_message_get_bool (users, "more"))
    c->list_done = TRUE;
}

/* As a client that stored it: gchatd sends more mail as earlier mail is acknowledged. */
static void
client_on_mail (Client       *c,
                GchatMessage *mail)
{
  g_autoptr(GchatMessage) ack = gchat_message_new (GCHAT_MESSAGE_MAIL_ACK);

  c->mails++;
  gchat_message_set_int (ack, "mail_id", gchat_message_get_int (mail, "mail_id"));
  client_queue (c, ack);
}

static void
client_on_message (Client       *c,
                   GchatMessage *message)
{
  GchatMessageType type = gchat_message_get_message_type (message);
  g_autofree char *reason = NULL;

  switch (type)
    {
    case GCHAT_MESSAGE_PONG:
      client_on_pong (c, message);
      break;
    case GCHAT_MESSAGE_RESULT:
      client_on_result (c, message);
      break;
    case GCHAT_MESSAGE_PAIR_KEY:
      client_on_pair_key (c, message);
      break;
    case GCHAT_MESSAGE_PRESENCE:
      client_on_presence (c, message);
      break;
    case GCHAT_MESSAGE_USERS:
      client_on_users (c, message);
      break;
    case GCHAT_MESSAGE_MAIL:
      client_on_mail (c, message);
      break;
    case GCHAT_MESSAGE_RECEIPT:
    case GCHAT_MESSAGE_RELAYED:
      break;
    default:
      reason = g_strdup_printf ("%s \"%s\"", gchat_message_type_to_string (type),
                               gchat_message_get_string (message, "code"));
      client_close (c, reason);
    }
}

static const guint8 *
find_bytes (const guint8 *data,
            gsize         len,
            const char   *needle,
            gsize         n)
{
  for (gsize i = 0; i + n <= len; i++)
    if (data[i] == (guint8) needle[0] && memcmp (data + i, needle, n) == 0)
      return data + i;
  return NULL;
}

/* Takes the names of the list @key of a `users` or `presence` message into @c's online list,
 * a bit per simulated user (the others are not counted). Names are plain ASCII, so a scan for
 * quotes is enough, and much cheaper than a JSON parser for 10,000 lists of 10,000 names. */
static void
client_track_names (Client       *c,
                    const guint8 *data,
                    gsize         len,
                    const char   *key,
                    gboolean      add)
{
  Worker *w = c->worker;
  guint slot = c->index - w->first;
  guint8 *bits = w->seen + (gsize) slot * ((w->n_total + 7) / 8);
  char pattern[24];
  gsize n = g_snprintf (pattern, sizeof pattern, "\"%s\":[", key);
  const guint8 *p = find_bytes (data, len, pattern, n), *end = data + len;

  if (p == NULL)
    return;
  for (p += n; p < end && *p != ']'; p++)
    {
      const guint8 *close;
      guint index = 0;
      guint8 mask;

      if (*p != '"')
        continue;
      close = memchr (p + 1, '"', end - p - 1);
      if (close == NULL)
        return;
      if (close - p == 7 && p[1] == 'u')
        for (guint i = 2; i < 7 && index != G_MAXUINT; i++)
          index = g_ascii_isdigit (p[i]) ? index * 10 + (p[i] - '0') : G_MAXUINT;
      p = close;
      if (index < 1 || index > w->n_total)
        continue;
      mask = 1 << ((index - 1) % 8);
      if (add && !(bits[(index - 1) / 8] & mask))
        {
          bits[(index - 1) / 8] |= mask;
          w->seen_count[slot]++;
        }
      else if (!add && (bits[(index - 1) / 8] & mask))
        {
          bits[(index - 1) / 8] &= ~mask;
          w->seen_count[slot]--;
        }
    }
  if (w->seen_count[slot] == w->n_total)
    w->complete_at[slot] = g_get_monotonic_time ();
}

/* During the mass reconnect each user keeps its online list from `users` and `presence`. */
static gboolean
client_track (Client       *c,
              const guint8 *data,
              gsize         len)
{
  Worker *w = c->worker;

  if (c->role != ROLE_USER || !w->tracking || c->state != CLIENT_ONLINE)
    return FALSE;
  if (has_prefix (data, len, "{\"type\":\"users\""))
    {
      w->users_bytes += len;
      client_track_names (c, data, len, "users", TRUE);
      return TRUE;
    }
  if (has_prefix (data, len, "{\"type\":\"presence\""))
    {
      w->presence_bytes += len;
      client_track_names (c, data, len, "left", FALSE);
      client_track_names (c, data, len, "joined", TRUE);
      return TRUE;
    }
  return FALSE;
}

/* Users lists and presence batches are most of what a client gets while others sign up: the
 * bench leaves them undecoded unless it needs them, to leave the CPU to gchatd. Messages start
 * with their "type" member (gchat-message.c); anything else is decoded in full. */
static void
client_on_payload (Client *c,
                   GBytes *payload)
{
  g_autoptr(GBytes) plain = NULL;
  g_autoptr(GchatMessage) message = NULL;
  g_autoptr(GError) error = NULL;
  const guint8 *data;
  gsize len;

  if (c->state == CLIENT_HELLO)
    {
      client_on_hello (c, payload);
      return;
    }
  plain = gchat_channel_open (c->channel, payload, &error);
  if (plain == NULL)
    {
      client_close (c, error->message);
      return;
    }
  data = g_bytes_get_data (plain, &len);
  if (client_track (c, data, len))
    return;
  if (has_prefix (data, len, "{\"type\":\"relayed\""))
    {
      client_on_relayed (c);
      return;
    }
  if (c->role != ROLE_JOINER && has_prefix (data, len, "{\"type\":\"users\""))
    return;
  if ((c->worker->join_name == NULL || c->join_seen != 0)
      && has_prefix (data, len, "{\"type\":\"presence\""))
    return;
  message = gchat_message_decode (data, len, &error);
  if (message == NULL)
    client_close (c, error->message);
  else
    client_on_message (c, message);
}

static void
client_read (Client *c)
{
  static guint8 buffer[65536];
  g_autoptr(GError) error = NULL;
  gssize n = g_socket_receive (c->socket, (char *) buffer, sizeof buffer, NULL, &error);

  if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
    return;
  if (n <= 0)
    {
      client_close (c, n == 0 ? "the server closed the connection" : error->message);
      return;
    }
  if (!gchat_frame_decoder_push (c->decoder, buffer, n, &error))
    {
      client_close (c, error->message);
      return;
    }
  while (c->state != CLIENT_CLOSED)
    {
      g_autoptr(GBytes) payload = gchat_frame_decoder_pop (c->decoder);

      if (payload == NULL)
        break;
      client_on_payload (c, payload);
    }
  client_flush (c);
}

static void
client_on_connected (Client *c)
{
  g_autoptr(GError) error = NULL;

  if (!g_socket_check_connect_result (c->socket, &error))
    {
      client_close (c, error->message);
      return;
    }
  c->state = CLIENT_HELLO;
  client_watch (c, EPOLLIN);
}

static void
client_on_events (Client  *c,
                  guint32  events)
{
  if (c->state == CLIENT_CLOSED)
    return;
  if (c->state == CLIENT_CONNECTING)
    {
      client_on_connected (c);
      return;
    }
  if (events & EPOLLOUT)
    client_flush (c);
  if (c->state != CLIENT_CLOSED && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
    client_read (c);
}

static gboolean
client_connect (Client *c)
{
  Worker *w = c->worker;
  g_autoptr(GError) error = NULL;
  struct epoll_event event = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };

  c->socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP,
                            &error);
  if (c->socket == NULL)
    {
      client_close (c, error->message);
      return FALSE;
    }
  g_socket_set_blocking (c->socket, FALSE);
  /* Requests are whole frames written at once: Nagle would only hold pipelined ones back. */
  g_socket_set_option (c->socket, IPPROTO_TCP, TCP_NODELAY, 1, NULL);
  if (!g_socket_connect (c->socket, w->address, NULL, &error)
      && !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_PENDING))
    {
      client_close (c, error->message);
      return FALSE;
    }
  c->fd = g_socket_get_fd (c->socket);
  c->events = event.events;
  epoll_ctl (w->epoll_fd, EPOLL_CTL_ADD, c->fd, &event);
  return TRUE;
}

/* The load generator's own X25519 key pairs are made before the timed phases that resume, so
 * that they measure gchatd and not the simulated clients' key making: a real client makes its
 * own on its own machine. The clients still compute their shared secrets inside the phases. */
static void
worker_make_key_pairs (Worker *w,
                       guint   n)
{
  if (w->key_pairs == NULL)
    w->key_pairs = g_array_new (FALSE, TRUE, sizeof (KeyPair));
  while (w->key_pairs->len < n)
    {
      KeyPair pair;

      if (!gchat_x25519_keypair (pair.secret, pair.public_key, NULL))
        g_error ("bench-server: cannot make an X25519 key pair");
      g_array_append_val (w->key_pairs, pair);
      gchat_memzero (&pair, sizeof pair);
    }
}

/* Each key pair is used once, then wiped; when none is left the handshake makes its own. */
static void
worker_use_key_pair (Worker         *w,
                     GchatHandshake *handshake)
{
  KeyPair *pair;

  if (w->key_pairs == NULL || w->key_pairs->len == 0)
    return;
  pair = &g_array_index (w->key_pairs, KeyPair, w->key_pairs->len - 1);
  gchat_handshake_set_ephemeral (handshake, pair->secret, pair->public_key);
  gchat_memzero (pair, sizeof *pair);
  g_array_set_size (w->key_pairs, w->key_pairs->len - 1);
}

/* A new client, already registered with its worker, connecting. It may be closed already when
 * the connection failed at once. With @resume it resumes with @ticket instead of logging in;
 * either way a successful log-in leaves its new ticket there. */
static Client *
client_new_with (Worker     *w,
                 ClientRole  role,
                 guint       index,
                 const char *user,
                 Ticket     *ticket,
                 gboolean    resume)
{
  Client *c = g_new0 (Client, 1);

  c->worker = w;
  c->role = role;
  c->index = index;
  c->user = g_strdup (user);
  c->fd = -1;
  c->state = CLIENT_CONNECTING;
  c->started = g_get_monotonic_time ();
  c->deadline = c->started + (role == ROLE_USER || role == ROLE_STORM ? SIGN_TIMEOUT_US
                                                                      : HANDSHAKE_TIMEOUT_US);
  c->decoder = gchat_frame_decoder_new (GCHAT_FRAME_MAX_PAYLOAD);
  c->ticket = ticket;
  c->resuming = resume && ticket != NULL && ticket->ticket != NULL;
  c->handshake = c->resuming ? gchat_handshake_new_client_resume (w->server_key, ticket->ticket,
                                                                  ticket->secret)
                             : gchat_handshake_new_client (w->server_key);
  if (c->resuming)
    worker_use_key_pair (w, c->handshake);
  c->out = g_byte_array_new ();
  c->keep = role == ROLE_JOINER;
  if (role == ROLE_CHURN || role == ROLE_RESUMER || role == ROLE_STORM)
    g_hash_table_add (w->churn, c);
  else if (role == ROLE_USER)
    w->users[index - w->first] = c;
  client_connect (c);
  return c;
}

static Client *
client_new (Worker     *w,
            ClientRole  role,
            guint       index,
            const char *user)
{
  Ticket *ticket = role == ROLE_USER ? &w->user_tickets[index - w->first] : NULL;
  Client *c = client_new_with (w, role, index, user, ticket, w->reconnecting);

  if (w->reconnecting && c->state != CLIENT_CLOSED)
    c->deadline = c->started + RECONNECT_TIMEOUT_US;
  return c;
}

static void
client_close (Client     *c,
              const char *reason)
{
  ClientState was = c->state;

  if (was == CLIENT_CLOSED)
    return;
  c->state = CLIENT_CLOSED;
  if (reason != NULL && c->failure == NULL)
    c->failure = g_strdup (reason);
  if (c->fd >= 0)
    epoll_ctl (c->worker->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
  if (c->socket != NULL)
    g_socket_close (c->socket, NULL);
  worker_client_closed (c->worker, c, was, reason);
}

/* Workers */

static void worker_reply (const char *format,
                          ...) G_GNUC_PRINTF (1, 2);

/* One answer line to the parent, on stdout. */
static void
worker_reply (const char *format,
              ...)
{
  va_list args;

  va_start (args, format);
  vprintf (format, args);
  va_end (args);
  putchar ('\n');
  fflush (stdout);
}

static void
worker_note_error (Worker     *w,
                   const char *what,
                   const char *reason)
{
  /* The first few say what goes wrong; the counts in the answers say how often. */
  if (w->n_errors++ < 5)
    g_printerr ("bench-server worker %u: %s: %s\n", w->first, what, reason ? reason : "?");
}

static void
worker_free_dead (Worker *w)
{
  g_ptr_array_set_size (w->dead, 0);
}

static void
worker_user_closed (Worker      *w,
                    Client      *c,
                    ClientState  was,
                    const char  *reason)
{
  guint slot = c->index - w->first;

  w->users[slot] = NULL;
  w->talk_in_flight -= c->in_flight;
  w->post_in_flight -= c->posts;
  if (w->quitting)
    return;
  if (w->reconnecting)
    {
      /* As a real client: back after a random delay, and again a little later if the server
       * is not there yet. */
      guint delay_ms = was == CLIENT_ONLINE ? g_random_int_range (0, w->jitter_ms + 1)
                                            : 200 + g_random_int_range (0, 300);

      w->reconnect_at[slot] = g_get_monotonic_time () + (gint64) delay_ms * 1000;
      if (was == CLIENT_ONLINE && w->rc_waiting)
        worker_note_error (w, "reconnect (session lost)", reason);
      else if (was != CLIENT_ONLINE)
        {
          g_autofree char *what = g_strdup_printf ("reconnect (%s)", was == CLIENT_CONNECTING
                                                   ? "connecting" : was == CLIENT_HELLO
                                                   ? "waiting for the hello" : "resuming");

          w->rc_retries++;
          worker_note_error (w, what, reason);
        }
      return;
    }
  if (was == CLIENT_ONLINE)
    {
      w->lost++;
      worker_note_error (w, "session lost", reason);
      return;
    }
  w->sign_active--;
  if (w->attempts[slot] < SIGN_ATTEMPTS)
    g_queue_push_tail (&w->retry, GUINT_TO_POINTER (c->index));
  else
    {
      w->signed_failed++;
      worker_note_error (w, "sign-up", reason);
    }
}

static void
worker_client_closed (Worker      *w,
                      Client      *c,
                      ClientState  was,
                      const char  *reason)
{
  if (c->role == ROLE_CHURN || c->role == ROLE_RESUMER || c->role == ROLE_STORM)
    {
      g_hash_table_remove (w->churn, c);
      if (c->role == ROLE_RESUMER && !c->resuming)
        w->prep_active--;
      else if (!c->completed && !w->quitting)
        {
          w->churn_failed++;
          worker_note_error (w, c->role == ROLE_CHURN ? "handshake"
                                : c->role == ROLE_STORM ? "storm log-in" : "resumption", reason);
        }
      /* A resumer's account is free for the next one, with its newest ticket. */
      if (c->role == ROLE_RESUMER && c->resuming && c->ticket->ticket != NULL && !w->quitting)
        g_queue_push_tail (&w->free_slots, GUINT_TO_POINTER (c->ticket - w->resume_tickets));
    }
  else if (c->role == ROLE_USER)
    worker_user_closed (w, c, was, reason);
  if (!c->keep)
    g_ptr_array_add (w->dead, c);
}

static gboolean
worker_epoll_cb (int           fd,
                 GIOCondition  condition,
                 gpointer      user_data)
{
  Worker *w = user_data;
  struct epoll_event events[512];
  int n = epoll_wait (w->epoll_fd, events, G_N_ELEMENTS (events), 0);

  for (int i = 0; i < n; i++)
    client_on_events (events[i].data.ptr, events[i].events);
  /* Closed clients are freed only now: a later event of this batch could still name one. */
  worker_free_dead (w);
  return G_SOURCE_CONTINUE;
}

static Worker *
worker_new (GchatRsaKey    *server_key,
            GSocketAddress *address,
            guint           first,
            guint           count,
            guint           n_total)
{
  Worker *w = g_new0 (Worker, 1);

  w->epoll_fd = epoll_create1 (EPOLL_CLOEXEC);
  g_assert (w->epoll_fd >= 0);
  w->epoll_id = g_unix_fd_add (w->epoll_fd, G_IO_IN, worker_epoll_cb, w);
  w->server_key = g_object_ref (server_key);
  w->address = g_object_ref (address);
  w->first = first;
  w->count = count;
  w->n_total = n_total;
  w->users = g_new0 (Client *, MAX (count, 1));
  w->attempts = g_new0 (guint8, MAX (count, 1));
  w->use_auth = g_new0 (gboolean, MAX (count, 1));
  w->user_tickets = g_new0 (Ticket, MAX (count, 1));
  w->reconnect_at = g_new0 (gint64, MAX (count, 1));
  w->seen_count = g_new0 (guint, MAX (count, 1));
  w->complete_at = g_new0 (gint64, MAX (count, 1));
  g_queue_init (&w->free_slots);
  gchat_random_bytes (w->datagram, sizeof w->datagram);
  for (guint i = 0; i < sizeof w->text - 1; i++)
    w->text[i] = 'a' + g_random_int_range (0, 26);
  w->churn = g_hash_table_new (NULL, NULL);
  w->dead = g_ptr_array_new_with_free_func ((GDestroyNotify) client_free);
  w->command = g_string_new (NULL);
  g_queue_init (&w->retry);
  return w;
}

static void
worker_close_all (Worker *w)
{
  g_autoptr(GList) churn = g_hash_table_get_keys (w->churn);

  w->quitting = TRUE;
  for (guint i = 0; i < w->count; i++)
    if (w->users[i] != NULL)
      client_close (w->users[i], NULL);
  for (GList *l = churn; l != NULL; l = l->next)
    client_close (l->data, NULL);
  worker_free_dead (w);
}

static void
worker_free_tickets (Ticket *tickets,
                     guint   n)
{
  for (guint i = 0; tickets != NULL && i < n; i++)
    g_clear_pointer (&tickets[i].ticket, g_bytes_unref);
  g_free (tickets);
}

static void
worker_free (Worker *w)
{
  worker_close_all (w);
  g_clear_handle_id (&w->epoll_id, g_source_remove);
  g_clear_handle_id (&w->sweep_id, g_source_remove);
  g_clear_handle_id (&w->stdin_id, g_source_remove);
  close (w->epoll_fd);
  g_clear_object (&w->server_key);
  g_clear_object (&w->address);
  g_hash_table_unref (w->churn);
  g_ptr_array_unref (w->dead);
  g_string_free (w->command, TRUE);
  g_queue_clear (&w->retry);
  g_free (w->users);
  g_free (w->attempts);
  g_free (w->use_auth);
  g_free (w->join_name);
  worker_free_tickets (w->user_tickets, w->count);
  worker_free_tickets (w->resume_tickets, w->n_resume);
  if (w->key_pairs != NULL)
    gchat_memzero (w->key_pairs->data, w->key_pairs->len * sizeof (KeyPair));
  g_clear_pointer (&w->key_pairs, g_array_unref);
  g_queue_clear (&w->free_slots);
  g_free (w->reconnect_at);
  g_free (w->seen);
  g_free (w->seen_count);
  g_free (w->complete_at);
  g_clear_pointer (&w->ping_sent, g_array_unref);
  g_clear_pointer (&w->ping_rtt, g_array_unref);
  g_free (w);
}

/* Sign-up */

static void
worker_start_user (Worker *w,
                   guint   index)
{
  char name[16];

  g_snprintf (name, sizeof name, "u%05u", index);
  w->attempts[index - w->first]++;
  w->sign_active++;
  client_new (w, ROLE_USER, index, name);
}

static void
worker_sign_refill (Worker *w)
{
  while (w->signing && w->sign_active < SIGN_WINDOW)
    {
      if (!g_queue_is_empty (&w->retry))
        worker_start_user (w, GPOINTER_TO_UINT (g_queue_pop_head (&w->retry)));
      else if (w->next_user < w->count)
        worker_start_user (w, w->first + w->next_user++);
      else
        break;
    }
}

static void
worker_user_online (Worker *w,
                    Client *c)
{
  if (w->reconnecting)
    {
      guint slot = c->index - w->first;
      gsize n = (w->n_total + 7) / 8;

      if (c->resuming)
        w->rc_resumed++;
      else
        w->rc_full++;
      w->rc_online_last = MAX (w->rc_online_last, c->answered);
      /* A new session's list starts from the `users` that follows, and oneself. */
      memset (w->seen + (gsize) slot * n, 0, n);
      w->seen[(gsize) slot * n + (c->index - 1) / 8] |= 1 << ((c->index - 1) % 8);
      w->seen_count[slot] = 1;
      w->complete_at[slot] = 0;
      return;
    }
  w->sign_active--;
  w->signed_ok++;
  w->sign_last = c->answered;
  worker_sign_refill (w);
}

static void
worker_sign_check (Worker *w,
                   gint64  now)
{
  if (!w->signing)
    return;
  worker_sign_refill (w);
  if (now >= w->progress_at)
    {
      worker_reply ("progress %u", w->signed_ok);
      w->progress_at = now + G_USEC_PER_SEC;
    }
  if (w->signed_ok + w->signed_failed < w->count)
    return;
  w->signing = FALSE;
  worker_reply ("signup-done %u %u %" G_GINT64_FORMAT " %" G_GINT64_FORMAT, w->signed_ok,
                w->signed_failed, w->sign_start, w->sign_last);
}

/* Handshake churn */

static Client *
worker_churn_new (Worker *w)
{
  char name[32];
  guint slot;

  if (w->churn_role == ROLE_STORM)
    {
      g_snprintf (name, sizeof name, "s%05u%06u", w->first, w->storm_next++);
      return client_new_with (w, ROLE_STORM, 0, name, NULL, FALSE);
    }
  if (w->churn_role != ROLE_RESUMER)
    return client_new (w, ROLE_CHURN, 0, NULL);
  if (g_queue_is_empty (&w->free_slots))
    return NULL;
  slot = GPOINTER_TO_UINT (g_queue_pop_head (&w->free_slots));
  g_snprintf (name, sizeof name, "r%05u%03u", w->first, slot);
  return client_new_with (w, ROLE_RESUMER, 0, name, &w->resume_tickets[slot], TRUE);
}

static void
worker_churn_refill (Worker *w)
{
  while (w->churning && g_get_monotonic_time () < w->churn_end
         && g_hash_table_size (w->churn) < w->churn_target)
    {
      Client *c = worker_churn_new (w);

      /* A connection refused at once is tried again at the next sweep, not in a tight loop. */
      if (c == NULL || c->state == CLIENT_CLOSED)
        break;
    }
}

/* The resumers' accounts sign up (or log in) once, for their first tickets. */
static void
worker_resume_prep (Worker *w,
                    guint   n,
                    guint   n_key_pairs)
{
  worker_make_key_pairs (w, n_key_pairs);
  if (w->n_resume >= n)
    {
      worker_reply ("resume-prep-done %u", w->n_resume);
      return;
    }
  worker_free_tickets (w->resume_tickets, w->n_resume);
  w->resume_tickets = g_new0 (Ticket, n);
  w->n_resume = n;
  w->prep_active = n;
  w->prepping = TRUE;
  for (guint k = 0; k < n; k++)
    {
      char name[32];

      g_snprintf (name, sizeof name, "r%05u%03u", w->first, k);
      client_new_with (w, ROLE_RESUMER, 0, name, &w->resume_tickets[k], FALSE);
    }
}

static void
worker_prep_check (Worker *w)
{
  guint ready = 0;

  if (!w->prepping || w->prep_active > 0)
    return;
  for (guint k = 0; k < w->n_resume; k++)
    ready += w->resume_tickets[k].ticket != NULL;
  w->prepping = FALSE;
  worker_reply ("resume-prep-done %u", ready);
}

static void
worker_churn_done (Worker *w,
                   Client *c)
{
  gint64 now = g_get_monotonic_time ();

  if (c->role == ROLE_RESUMER && !c->resuming)
    {
      c->completed = TRUE;
      client_close (c, NULL);
      return;
    }

  if (now < w->churn_end)
    {
      w->churn_done++;
      w->churn_latency_sum += now - c->started;
    }
  else
    w->churn_late++;
  c->completed = TRUE;
  client_close (c, NULL);
  worker_churn_refill (w);
}

static void
worker_churn_check (Worker *w,
                    gint64  now)
{
  if (!w->churning)
    return;
  worker_churn_refill (w);
  if (now < w->churn_end || g_hash_table_size (w->churn) > 0)
    return;
  w->churning = FALSE;
  worker_reply ("handshake-done %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT
                " %" G_GINT64_FORMAT, w->churn_done, w->churn_failed, w->churn_late,
                w->churn_latency_sum);
}

/* Join */

static void
worker_join_report (Worker *w)
{
  g_autoptr(GString) line = g_string_new ("join-times");
  guint seen = 0, missing = 0;

  for (guint i = 0; i < w->count; i++)
    {
      Client *c = w->users[i];

      if (c == NULL || c->state != CLIENT_ONLINE)
        continue;
      if (c->join_seen == 0)
        {
          missing++;
          continue;
        }
      g_string_append_printf (line, " %" G_GINT64_FORMAT, c->join_seen);
      if (++seen % 500 == 0)
        {
          worker_reply ("%s", line->str);
          g_string_assign (line, "join-times");
        }
    }
  if (seen % 500 != 0)
    worker_reply ("%s", line->str);
  worker_reply ("join-done %u %u", seen, missing);
}

static void
worker_join_check (Worker *w,
                   gint64  now)
{
  gboolean all = TRUE;

  if (!w->collecting)
    return;
  for (guint i = 0; i < w->count && all; i++)
    all = w->users[i] == NULL || w->users[i]->join_seen != 0;
  if (!all && now < w->collect_end)
    return;
  w->collecting = FALSE;
  worker_join_report (w);
  g_clear_pointer (&w->join_name, g_free);
}

/* Talk */

static void
worker_talk_start (Worker *w,
                   guint   seconds,
                   guint   window)
{
  w->talking = TRUE;
  w->talk_window = MAX (window, 1);
  w->talk_end = g_get_monotonic_time () + seconds * G_USEC_PER_SEC;
  w->talk_issued = w->talk_peer = w->talk_errors = w->talk_late = 0;
  for (guint i = 0; i < w->count; i++)
    if (w->users[i] != NULL)
      client_talk_more (w->users[i]);
}

static void
worker_talk_check (Worker *w,
                   gint64  now)
{
  if (!w->talking || now < w->talk_end)
    return;
  if (w->talk_in_flight > 0 && now < w->talk_end + TALK_DRAIN_US)
    return;
  w->talking = FALSE;
  worker_reply ("talk-done %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT
                " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %d", w->talk_issued, w->talk_peer,
                w->talk_errors, w->talk_late, w->talk_in_flight, w->talk_wrapped);
}

/* Mass reconnect */

static void
worker_reconnect_arm (Worker *w,
                      guint   jitter_ms)
{
  w->reconnecting = w->tracking = TRUE;
  w->jitter_ms = jitter_ms;
  w->presence_bytes = w->users_bytes = 0;
  w->rc_resumed = w->rc_full = w->rc_retries = 0;
  w->rc_online_last = 0;
  if (w->seen == NULL)
    w->seen = g_malloc0 ((gsize) MAX (w->count, 1) * ((w->n_total + 7) / 8));
  /* A user whose ticket is refused logs in with its password; every account exists. */
  for (guint i = 0; i < w->count; i++)
    w->use_auth[i] = TRUE;
  /* Attempts while gchatd is down use some too. */
  worker_make_key_pairs (w, 2 * w->count);
  worker_reply ("armed");
}

static void
worker_reconnect_check (Worker *w,
                        gint64  now)
{
  guint online = 0, complete = 0;
  gint64 last = 0;

  if (!w->reconnecting)
    return;
  for (guint i = 0; i < w->count; i++)
    if (w->users[i] == NULL && w->reconnect_at[i] != 0 && now >= w->reconnect_at[i])
      {
        char name[16];

        w->reconnect_at[i] = 0;
        g_snprintf (name, sizeof name, "u%05u", w->first + i);
        client_new (w, ROLE_USER, w->first + i, name);
      }
  if (!w->rc_waiting)
    return;
  for (guint i = 0; i < w->count; i++)
    if (w->users[i] != NULL && w->users[i]->state == CLIENT_ONLINE)
      {
        online++;
        if (w->seen_count[i] == w->n_total)
          {
            complete++;
            last = MAX (last, w->complete_at[i]);
          }
      }
  if ((online < w->count || complete < w->count) && now < w->rc_end)
    return;
  w->rc_waiting = FALSE;
  worker_reply ("reconnect-done %u %u %" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %" G_GUINT64_FORMAT
                " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %"
                G_GUINT64_FORMAT, online, complete, last, w->rc_online_last, w->presence_bytes,
                w->users_bytes, w->rc_resumed, w->rc_full, w->rc_retries);
}

/* Relay and post */

static void
worker_relay_start (Worker *w,
                    guint   seconds,
                    guint   window)
{
  w->relaying = TRUE;
  w->relay_end = g_get_monotonic_time () + seconds * G_USEC_PER_SEC;
  w->relay_sent = w->relay_received = w->relay_late = 0;
  for (guint i = 0; i < w->count; i++)
    if (w->users[i] != NULL && w->users[i]->state == CLIENT_ONLINE)
      {
        for (guint k = 0; k < MAX (window, 1); k++)
          client_relay_one (w->users[i]);
        client_flush (w->users[i]);
      }
}

static void
worker_relay_check (Worker *w,
                    gint64  now)
{
  /* Relayed datagrams get no answer: the stragglers have a second to come. */
  if (!w->relaying || now < w->relay_end + G_USEC_PER_SEC)
    return;
  w->relaying = FALSE;
  worker_reply ("relay-done %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT,
                w->relay_sent, w->relay_received, w->relay_late);
}

static void
worker_post_start (Worker *w,
                   guint   seconds,
                   guint   window,
                   guint   mailboxes)
{
  w->posting = TRUE;
  w->post_window = MAX (window, 1);
  w->mailboxes = MAX (mailboxes, 1);
  w->post_end = g_get_monotonic_time () + seconds * G_USEC_PER_SEC;
  w->post_ok = w->post_refused = w->post_late = 0;
  for (guint i = 0; i < w->count; i++)
    if (w->users[i] != NULL)
      client_post_more (w->users[i]);
}

static void
worker_post_check (Worker *w,
                   gint64  now)
{
  if (!w->posting || now < w->post_end)
    return;
  if (w->post_in_flight > 0 && now < w->post_end + TALK_DRAIN_US)
    return;
  w->posting = FALSE;
  worker_reply ("post-done %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT
                " %" G_GUINT64_FORMAT, w->post_ok, w->post_refused, w->post_late,
                w->post_in_flight);
}

/* Deadlines and busy retries of every client, then whether a phase is over. */
static void
worker_scan_clients (Worker *w,
                     gint64  now)
{
  g_autoptr(GList) churn = g_hash_table_get_keys (w->churn);

  for (guint i = 0; i < w->count; i++)
    {
      Client *c = w->users[i];

      if (c == NULL)
        continue;
      if (c->retry_at != 0 && now >= c->retry_at)
        client_send_first_request (c);
      else if (c->deadline != 0 && now >= c->deadline)
        client_close (c, "timed out");
      else if (c->state == CLIENT_ONLINE && now - c->last_sent >= KEEPALIVE_US)
        client_send_simple (c, GCHAT_MESSAGE_PING, -1);
    }
  for (GList *l = churn; l != NULL; l = l->next)
    {
      Client *c = l->data;

      if (c->retry_at != 0 && now >= c->retry_at)
        client_send_first_request (c);
      else if (c->deadline != 0 && now >= c->deadline)
        client_close (c, "timed out");
    }
  worker_free_dead (w);
}

static gboolean
worker_sweep_cb (gpointer user_data)
{
  Worker *w = user_data;
  gint64 now = g_get_monotonic_time ();

  /* Every client only now and then: the scan is what an idle worker costs. */
  if (++w->sweeps % SCAN_EVERY == 0)
    worker_scan_clients (w, now);
  worker_sign_check (w, now);
  worker_churn_check (w, now);
  worker_join_check (w, now);
  worker_talk_check (w, now);
  worker_prep_check (w);
  worker_reconnect_check (w, now);
  worker_relay_check (w, now);
  worker_post_check (w, now);
  worker_free_dead (w);
  return G_SOURCE_CONTINUE;
}

static void
worker_status (Worker *w)
{
  guint online = 0;

  for (guint i = 0; i < w->count; i++)
    online += w->users[i] != NULL && w->users[i]->state == CLIENT_ONLINE;
  worker_reply ("status %u %u", online, w->lost);
}

static void
worker_command (Worker     *w,
                const char *line)
{
  g_auto(GStrv) words = g_strsplit (line, " ", -1);
  guint argc = g_strv_length (words);
  guint a = argc > 1 ? (guint) g_ascii_strtoull (words[1], NULL, 10) : 0;
  guint b = argc > 2 ? (guint) g_ascii_strtoull (words[2], NULL, 10) : 0;
  guint c = argc > 3 ? (guint) g_ascii_strtoull (words[3], NULL, 10) : 0;

  if (argc == 0)
    return;
  if (g_str_equal (words[0], "signup"))
    {
      w->signing = TRUE;
      w->sign_start = g_get_monotonic_time ();
      worker_sign_refill (w);
    }
  else if (g_str_equal (words[0], "handshake") || g_str_equal (words[0], "resume")
           || g_str_equal (words[0], "storm"))
    {
      w->churn_role = g_str_equal (words[0], "resume") ? ROLE_RESUMER
                      : g_str_equal (words[0], "storm") ? ROLE_STORM : ROLE_CHURN;
      g_queue_clear (&w->free_slots);
      for (guint k = 0; k < w->n_resume && k < MAX (b, 1); k++)
        if (w->resume_tickets[k].ticket != NULL)
          g_queue_push_tail (&w->free_slots, GUINT_TO_POINTER (k));
      w->churning = TRUE;
      w->churn_end = g_get_monotonic_time () + a * G_USEC_PER_SEC;
      w->churn_target = MAX (b, 1);
      w->churn_done = w->churn_failed = w->churn_late = 0;
      w->churn_latency_sum = 0;
      worker_churn_refill (w);
    }
  else if (g_str_equal (words[0], "join-arm") && argc > 1)
    {
      g_free (w->join_name);
      w->join_name = g_strdup (words[1]);
      for (guint i = 0; i < w->count; i++)
        if (w->users[i] != NULL)
          w->users[i]->join_seen = 0;
      worker_reply ("armed");
    }
  else if (g_str_equal (words[0], "join-collect"))
    {
      w->collecting = TRUE;
      w->collect_end = g_get_monotonic_time () + (gint64) a * 1000;
    }
  else if (g_str_equal (words[0], "talk"))
    worker_talk_start (w, a, b);
  else if (g_str_equal (words[0], "resume-prep"))
    worker_resume_prep (w, MAX (a, 1), b);
  else if (g_str_equal (words[0], "reconnect-arm"))
    worker_reconnect_arm (w, a);
  else if (g_str_equal (words[0], "reconnect-wait"))
    {
      /* The failures worth telling are those after the restart. */
      w->n_errors = 0;
      w->rc_waiting = TRUE;
      w->rc_end = g_get_monotonic_time () + (gint64) a * 1000;
    }
  else if (g_str_equal (words[0], "reconnect-end"))
    {
      w->reconnecting = w->tracking = FALSE;
      worker_reply ("ended");
    }
  else if (g_str_equal (words[0], "relay"))
    worker_relay_start (w, a, b);
  else if (g_str_equal (words[0], "post"))
    worker_post_start (w, a, b, c);
  else if (g_str_equal (words[0], "status"))
    worker_status (w);
  else if (g_str_equal (words[0], "quit"))
    g_main_loop_quit (w->loop);
}

/* Commands come one per line on stdin; end of file means the parent is gone. */
static gboolean
worker_stdin_cb (int           fd,
                 GIOCondition  condition,
                 gpointer      user_data)
{
  Worker *w = user_data;
  char buffer[4096];
  ssize_t n = read (fd, buffer, sizeof buffer);
  char *newline;

  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return G_SOURCE_CONTINUE;
  if (n <= 0)
    {
      w->stdin_id = 0;
      g_main_loop_quit (w->loop);
      return G_SOURCE_REMOVE;
    }
  g_string_append_len (w->command, buffer, n);
  while ((newline = memchr (w->command->str, '\n', w->command->len)) != NULL)
    {
      g_autofree char *line = g_strndup (w->command->str, newline - w->command->str);

      g_string_erase (w->command, 0, newline - w->command->str + 1);
      worker_command (w, line);
    }
  return G_SOURCE_CONTINUE;
}

static GSocketAddress *
loopback_address (guint16 port)
{
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);

  return g_inet_socket_address_new (loopback, port);
}

static int
worker_main (const char *key_path,
             guint16     port,
             guint       first,
             guint       count,
             guint       n_total)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatRsaKey) key = NULL;
  g_autoptr(GSocketAddress) address = loopback_address (port);
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  Worker *w;

  /* The parent's death ends the worker even when it could not say so. */
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  if (!gchat_crypto_init (&error) || (key = gchat_rsa_key_load_public (key_path, &error)) == NULL)
    {
      g_printerr ("bench-server worker: %s\n", error->message);
      return EXIT_FAILURE;
    }
  w = worker_new (key, address, first, count, n_total);
  w->loop = loop;
  w->sweep_id = g_timeout_add (SWEEP_MS, worker_sweep_cb, w);
  w->stdin_id = g_unix_fd_add (STDIN_FILENO, G_IO_IN | G_IO_HUP, worker_stdin_cb, w);
  worker_reply ("ready");
  g_main_loop_run (loop);
  worker_free (w);
  return EXIT_SUCCESS;
}

/* The parent: gchatd, the workers, the phases and the report */

typedef struct _Bench Bench;

typedef struct {
  Bench            *bench;
  GSubprocess      *process;
  int               pid;
  GDataInputStream *input;
  GOutputStream    *output;
  GQueue            lines; /* answers not taken yet */
  gboolean          eof;
  guint             progress;
} WorkerHandle;

/* In KiB, from /proc. */
typedef struct {
  gint64 rss;
  gint64 private_bytes; /* Private_Clean + Private_Dirty */
} Memory;

typedef struct {
  gint64  start;
  guint64 server_ticks;
  guint64 client_ticks;
  guint64 own_ticks;
  guint64 machine_ticks; /* busy time of all CPUs */
} CpuMark;

/* Percent of one core during a phase. Others, such as builds, share this machine: their share
 * tells how far to trust the rates. */
typedef struct {
  double server;
  double clients;
  double others;
} CpuUse;

typedef struct {
  gboolean measured;
  double   rate;
  guint64  done;
  guint64  failed;
  guint64  late;
  double   latency_ms;
  CpuUse   cpu;
} HandshakeFigures;

struct _Bench
{
  /* options */
  guint             clients;
  guint             n_workers;
  guint             seconds;
  guint             talk_window;
  guint             concurrency;
  guint             joins;
  const char       *gchatd_path;
  const char       *phases;      /* NULL: all */
  guint             jitter_ms;
  guint             relay_window;
  guint             post_window;
  guint             mailboxes;
  guint             storm_window;
  guint             resume_window;

  char             *dir;
  char             *public_path;
  guint16           port;
  GchatRsaKey      *key;
  GSocketAddress   *address;
  GCancellable     *cancellable;
  GSubprocess      *gchatd;
  int               gchatd_pid;
  gboolean          gchatd_exited;
  WorkerHandle     *workers;
  guint             n_started;
  Worker           *local; /* the joiners' */
  gboolean          interrupted;
  gboolean          failed_worker;
  gboolean          stalled;
  gint64            progress_at;
  guint             progress_shown;
  guint             last_progress;
  gint64            last_progress_time;

  /* figures; a negative value is one not measured */
  double            unwrap_rate;
  double            unwrap_ms;
  Memory            base0;
  Memory            base1;
  Memory            after;
  gboolean          memory_measured;
  HandshakeFigures  hs_empty;
  HandshakeFigures  hs_idle;
  guint             signed_ok;
  guint             signed_failed;
  double            sign_seconds;
  CpuUse            sign_cpu;
  gint              online;
  guint             lost;
  double            idle_cpu; /* gchatd's, with every session idle */
  gint              listed;
  GArray           *join_answered; /* gint64 µs after the log-in was answered */
  GArray           *join_sent;     /* gint64 µs after the log-in was sent */
  guint             join_missing;
  guint             join_rounds;
  double            join_auth_ms;
  gboolean          talk_measured;
  guint64           talk_issued;
  guint64           talk_peer;
  guint64           talk_errors;
  guint64           talk_late;
  guint64           talk_left;
  gboolean          talk_wrapped;
  CpuUse            talk_cpu;

  HandshakeFigures  rs_empty;
  HandshakeFigures  rs_idle;
  gboolean          rc_measured;
  double            rc_stop_s;      /* SIGTERM until gchatd was gone */
  double            rc_start_s;     /* SIGTERM until the new gchatd accepted */
  double            rc_online_s;    /* SIGTERM until the last client was back */
  double            rc_complete_s;  /* SIGTERM until the last online list was complete */
  guint             rc_online;
  guint             rc_complete;
  guint64           rc_presence;
  guint64           rc_users;
  guint64           rc_resumed;
  guint64           rc_full;
  guint64           rc_retries;
  CpuUse            rc_cpu;
  gboolean          relay_measured;
  guint64           relay_sent;
  guint64           relay_received;
  guint64           relay_late;
  CpuUse            relay_cpu;
  gboolean          post_measured;
  guint64           post_ok;
  guint64           post_refused;
  guint64           post_late;
  guint64           post_left;
  CpuUse            post_cpu;
  guint64           mail_got;
  double            mail_seconds;
  HandshakeFigures  storm;
  GArray           *ping_idle;      /* sorted RTTs, µs */
  GArray           *ping_storm;
};

/* /proc */

static gboolean
read_memory (int     pid,
             Memory *memory)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/smaps_rollup", pid);
  g_autofree char *text = NULL;
  g_auto(GStrv) lines = NULL;

  memset (memory, 0, sizeof *memory);
  if (!g_file_get_contents (path, &text, NULL, NULL))
    return FALSE;
  lines = g_strsplit (text, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      gint64 kib = 0;
      char key[64];

      if (sscanf (lines[i], "%63[^:]: %" G_GINT64_FORMAT " kB", key, &kib) != 2)
        continue;
      if (g_str_equal (key, "Rss"))
        memory->rss = kib;
      else if (g_str_equal (key, "Private_Clean") || g_str_equal (key, "Private_Dirty"))
        memory->private_bytes += kib;
    }
  return TRUE;
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

static guint64
workers_cpu_ticks (Bench *b)
{
  guint64 ticks = 0;

  for (guint i = 0; i < b->n_started; i++)
    ticks += read_cpu_ticks (b->workers[i].pid);
  return ticks;
}

/* Busy time of all CPUs, in clock ticks, from the first line of /proc/stat. */
static guint64
read_machine_ticks (void)
{
  g_autofree char *text = NULL;
  unsigned long long user, nice, system, idle, iowait, irq, softirq, steal;

  if (!g_file_get_contents ("/proc/stat", &text, NULL, NULL)
      || sscanf (text, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &system,
                 &idle, &iowait, &irq, &softirq, &steal) != 8)
    return 0;
  return user + nice + system + irq + softirq + steal;
}

static void
cpu_mark (Bench   *b,
          CpuMark *mark)
{
  mark->start = g_get_monotonic_time ();
  mark->server_ticks = read_cpu_ticks (b->gchatd_pid);
  mark->client_ticks = workers_cpu_ticks (b);
  mark->own_ticks = read_cpu_ticks (getpid ());
  mark->machine_ticks = read_machine_ticks ();
}

static void
cpu_since (Bench         *b,
           const CpuMark *mark,
           CpuUse        *use)
{
  double seconds = (g_get_monotonic_time () - mark->start) / 1e6;
  double percent = 100.0 / sysconf (_SC_CLK_TCK) / seconds;
  double server = read_cpu_ticks (b->gchatd_pid) - mark->server_ticks;
  double clients = workers_cpu_ticks (b) - mark->client_ticks;
  double own = read_cpu_ticks (getpid ()) - mark->own_ticks;
  double machine = read_machine_ticks () - mark->machine_ticks;

  use->server = server * percent;
  use->clients = (clients + own) * percent;
  use->others = MAX (machine - server - clients - own, 0) * percent;
}

/* Waiting */

typedef gboolean (*DoneFunc) (Bench    *b,
                              gpointer  data);

/* Runs the main loop until @done; FALSE, having said why, on a timeout, an interruption, the
 * end of gchatd or of a worker. */
static gboolean
bench_wait (Bench      *b,
            DoneFunc    done,
            gpointer    data,
            guint       timeout_ms,
            const char *what)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  while (done == NULL || !done (b, data))
    {
      if (b->interrupted || b->gchatd_exited || b->failed_worker || b->stalled)
        {
          g_printerr ("bench-server: %s while waiting for %s\n",
                      b->interrupted ? "interrupted" : b->gchatd_exited ? "gchatd exited"
                      : b->stalled ? "no progress for a while" : "a worker ended", what);
          return FALSE;
        }
      if (g_get_monotonic_time () >= deadline)
        {
          if (done != NULL)
            g_printerr ("bench-server: timed out after %u s waiting for %s\n", timeout_ms / 1000,
                        what);
          return done == NULL;
        }
      g_main_context_iteration (NULL, TRUE);
    }
  return TRUE;
}

static gboolean
bench_sleep (Bench *b,
             guint  ms)
{
  return bench_wait (b, NULL, NULL, ms, "a pause");
}

static gboolean
tick_cb (gpointer user_data)
{
  return G_SOURCE_CONTINUE;
}

static gboolean
interrupt_cb (gpointer user_data)
{
  Bench *b = user_data;

  b->interrupted = TRUE;
  return G_SOURCE_CONTINUE;
}

/* Until gchatd is as idle as it gets: under 3 % of a core over a whole second, or no less busy
 * than over the second before, since idle sessions still send keepalives (and a main loop that
 * watches every socket costs something per wake-up). Presence batches, lists and the store are
 * done by then. Returns gchatd's CPU over the last second in @idle_cpu, as percent of a core. */
static gboolean
bench_settle (Bench  *b,
              double *idle_cpu)
{
  guint64 ticks_per_s = sysconf (_SC_CLK_TCK), previous = G_MAXUINT64;

  for (guint i = 0; i < 60; i++)
    {
      guint64 before = read_cpu_ticks (b->gchatd_pid), used;

      if (!bench_sleep (b, 1000))
        return FALSE;
      used = read_cpu_ticks (b->gchatd_pid) - before;
      if (idle_cpu != NULL)
        *idle_cpu = 100.0 * used / ticks_per_s;
      if (used <= ticks_per_s * 3 / 100 || (i >= 2 && used + ticks_per_s / 50 >= previous))
        return TRUE;
      previous = used;
    }
  printf ("bench: gchatd did not go idle within 60 s; measuring anyway\n");
  return TRUE;
}

/* gchatd */

static void
die_with_parent (gpointer signal_number)
{
  prctl (PR_SET_PDEATHSIG, GPOINTER_TO_INT (signal_number));
}

static void
gchatd_exited_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  g_autoptr(GError) error = NULL;

  g_subprocess_wait_finish (G_SUBPROCESS (source), result, &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  ((Bench *) user_data)->gchatd_exited = TRUE;
}

static guint16
find_free_port (void)
{
  g_autoptr(GSocket) socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                                            G_SOCKET_PROTOCOL_TCP, NULL);
  g_autoptr(GSocketAddress) any = loopback_address (0);
  g_autoptr(GSocketAddress) bound = NULL;

  if (socket == NULL || !g_socket_bind (socket, any, TRUE, NULL)
      || (bound = g_socket_get_local_address (socket, NULL)) == NULL)
    return 0;
  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
}

/* With @lowered, Argon2id at m=64 KiB, t=1 for the sign-ups of the session test; otherwise
 * gchatd's default cost, for the log-in storm. */
static gboolean
write_config (Bench     *b,
              gboolean   lowered,
              GError   **error)
{
  g_autofree char *path = g_build_filename (b->dir, "config.yaml", NULL);
  g_autofree char *text = NULL;

  text = g_strdup_printf ("server_address: 127.0.0.1\n"
                         "server_port: %u\n"
                         "server_certificate: server-public.pem\n"
                         "server_privateKey: server-private.pem\n"
                         "data_base: users.json\n"
                         "%s"
                         "max_connections: %u\n", b->port,
                         lowered ? "argon2_memory_kib: 64\nargon2_iterations: 1\n" : "",
                         MAX_CONNECTIONS);
  return g_file_set_contents (path, text, -1, error);
}

static gboolean
gchatd_accepts (Bench    *b,
                gpointer  data)
{
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GSocketConnection) connection = NULL;

  connection = g_socket_client_connect (client, G_SOCKET_CONNECTABLE (b->address), NULL, NULL);
  if (connection == NULL)
    g_usleep (50000);
  return connection != NULL;
}

static gboolean
bench_start_gchatd (Bench *b)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *config = g_build_filename (b->dir, "config.yaml", NULL);
  g_autofree char *log = g_build_filename (b->dir, "gchatd.log", NULL);

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE);
  g_subprocess_launcher_set_stderr_file_path (launcher, log);
  g_subprocess_launcher_set_child_setup (launcher, die_with_parent, GINT_TO_POINTER (SIGTERM),
                                         NULL);
  b->gchatd = g_subprocess_launcher_spawn (launcher, &error, b->gchatd_path, "--config", config,
                                           NULL);
  if (b->gchatd == NULL)
    {
      g_printerr ("bench-server: cannot start gchatd: %s\n", error->message);
      return FALSE;
    }
  b->gchatd_pid = atoi (g_subprocess_get_identifier (b->gchatd));
  g_subprocess_wait_async (b->gchatd, b->cancellable, gchatd_exited_cb, b);
  printf ("bench: started %s (pid %d) on 127.0.0.1 port %u\n", b->gchatd_path, b->gchatd_pid,
          b->port);
  return bench_wait (b, gchatd_accepts, NULL, 30000, "gchatd to accept connections");
}

static void
print_gchatd_log_tail (Bench *b)
{
  g_autofree char *log = g_build_filename (b->dir, "gchatd.log", NULL);
  g_autofree char *text = NULL;
  gsize len = 0;

  if (!g_file_get_contents (log, &text, &len, NULL) || len == 0)
    return;
  g_printerr ("bench-server: the end of gchatd's log:\n%s\n", text + (len > 2000 ? len - 2000 : 0));
}

static void
bench_stop_gchatd (Bench *b)
{
  gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;

  if (b->gchatd == NULL)
    return;
  if (!b->gchatd_exited)
    g_subprocess_send_signal (b->gchatd, SIGTERM);
  while (!b->gchatd_exited && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  if (!b->gchatd_exited)
    {
      g_printerr ("bench-server: gchatd did not stop within 5 s of SIGTERM; killing it\n");
      print_gchatd_log_tail (b);
      g_subprocess_force_exit (b->gchatd);
      /* Its exit callback must have run before another gchatd starts, or it would be taken
       * for the new one's. */
      while (!b->gchatd_exited)
        g_main_context_iteration (NULL, TRUE);
    }
  else if (!g_subprocess_get_if_exited (b->gchatd) || g_subprocess_get_exit_status (b->gchatd) != 0)
    {
      g_printerr ("bench-server: gchatd did not exit cleanly\n");
      print_gchatd_log_tail (b);
    }
}

/* Workers, seen from the parent */

static void
handle_read_cb (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(GError) error = NULL;
  char *line = g_data_input_stream_read_line_finish (G_DATA_INPUT_STREAM (source), result, NULL,
                                                     &error);
  WorkerHandle *h;

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  h = user_data;
  if (line == NULL)
    {
      h->eof = TRUE;
      h->bench->failed_worker = TRUE;
      return;
    }
  g_queue_push_tail (&h->lines, line);
  g_data_input_stream_read_line_async (h->input, G_PRIORITY_DEFAULT, h->bench->cancellable,
                                       handle_read_cb, h);
}

static gboolean
handle_send (WorkerHandle *h,
             const char   *command)
{
  g_autofree char *line = g_strconcat (command, "\n", NULL);
  g_autoptr(GError) error = NULL;

  if (g_output_stream_write_all (h->output, line, strlen (line), NULL, NULL, &error))
    return TRUE;
  g_printerr ("bench-server: cannot talk to worker %d: %s\n", h->pid, error->message);
  h->bench->failed_worker = TRUE;
  return FALSE;
}

static gboolean
line_is (const char *line,
         const char *word)
{
  gsize n = strlen (word);

  return strncmp (line, word, n) == 0 && (line[n] == ' ' || line[n] == '\0');
}

/* Moves the answer lines up to the first one that is @word into @into; `progress` lines only
 * update the handle. */
static gboolean
handle_take (WorkerHandle *h,
             const char   *word,
             GPtrArray    *into)
{
  gboolean found = FALSE;

  for (GList *l = h->lines.head; l != NULL && !found; l = l->next)
    found = line_is (l->data, word);
  while (!g_queue_is_empty (&h->lines))
    {
      char *line = g_queue_peek_head (&h->lines);
      gboolean last = line_is (line, word);

      if (!found && !line_is (line, "progress"))
        break;
      g_queue_pop_head (&h->lines);
      if (line_is (line, "progress"))
        h->progress = (guint) g_ascii_strtoull (line + strlen ("progress"), NULL, 10);
      if (line_is (line, "progress") || into == NULL)
        g_free (line);
      else
        g_ptr_array_add (into, line);
      if (last)
        break;
    }
  return found;
}

typedef struct {
  const char *word;
  gboolean   *got;
  GPtrArray  *lines;
  gboolean    show_progress;
} Asking;

/* Sign-ups are bounded by progress, not by a total time: the phase fails after a minute
 * without one, however long all of them take on a loaded machine. */
static void
bench_show_progress (Bench *b,
                     guint  progress)
{
  gint64 now = g_get_monotonic_time ();

  if (progress != b->last_progress || b->last_progress_time == 0)
    {
      b->last_progress = progress;
      b->last_progress_time = now;
    }
  else if (now - b->last_progress_time > STALL_US)
    b->stalled = TRUE;
  if (now >= b->progress_at)
    {
      printf ("bench:   %u of %u signed up, %.0f/s over the last %u s\n", progress, b->clients,
              (progress - b->progress_shown) / (double) PROGRESS_S, PROGRESS_S);
      b->progress_shown = progress;
      b->progress_at = now + PROGRESS_S * G_USEC_PER_SEC;
    }
}

static gboolean
all_answered (Bench    *b,
              gpointer  data)
{
  Asking *asking = data;
  gboolean all = TRUE;
  guint progress = 0;

  for (guint i = 0; i < b->n_started; i++)
    {
      if (!asking->got[i])
        asking->got[i] = handle_take (&b->workers[i], asking->word, asking->lines);
      all = all && asking->got[i];
      progress += b->workers[i].progress;
    }
  if (asking->show_progress)
    bench_show_progress (b, progress);
  return all;
}

/* Sends @command to every worker and waits for each to answer @word. The answer lines of all
 * workers, in order, or NULL. */
static GPtrArray *
bench_ask (Bench      *b,
           const char *command,
           const char *word,
           guint       timeout_ms)
{
  g_autoptr(GPtrArray) lines = g_ptr_array_new_with_free_func (g_free);
  g_autofree gboolean *got = g_new0 (gboolean, b->n_started);
  Asking asking = { word, got, lines, g_str_equal (command, "signup") };

  for (guint i = 0; i < b->n_started; i++)
    if (!handle_send (&b->workers[i], command))
      return NULL;
  b->progress_at = g_get_monotonic_time () + PROGRESS_S * G_USEC_PER_SEC;
  b->progress_shown = 0;
  if (!bench_wait (b, all_answered, &asking, timeout_ms, word))
    return NULL;
  return g_steal_pointer (&lines);
}

static gboolean
bench_start_worker (Bench        *b,
                    WorkerHandle *h,
                    const char   *self_path,
                    guint         first,
                    guint         count)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GError) error = NULL;
  char port[8], first_text[16], count_text[16], total[16];

  g_snprintf (port, sizeof port, "%u", b->port);
  g_snprintf (first_text, sizeof first_text, "%u", first);
  g_snprintf (count_text, sizeof count_text, "%u", count);
  g_snprintf (total, sizeof total, "%u", b->clients);
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE
                                        | G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  h->bench = b;
  h->process = g_subprocess_launcher_spawn (launcher, &error, self_path, "--worker", "--port",
                                            port, "--key", b->public_path, "--first", first_text,
                                            "--count", count_text, "--total", total, NULL);
  if (h->process == NULL)
    {
      g_printerr ("bench-server: cannot start a worker: %s\n", error->message);
      return FALSE;
    }
  h->pid = atoi (g_subprocess_get_identifier (h->process));
  h->input = g_data_input_stream_new (g_subprocess_get_stdout_pipe (h->process));
  h->output = g_object_ref (g_subprocess_get_stdin_pipe (h->process));
  g_queue_init (&h->lines);
  g_data_input_stream_read_line_async (h->input, G_PRIORITY_DEFAULT, b->cancellable,
                                       handle_read_cb, h);
  return TRUE;
}

static gboolean
bench_start_workers (Bench *b)
{
  g_autofree char *self_path = g_file_read_link ("/proc/self/exe", NULL);
  g_autofree gboolean *got = NULL;
  Asking asking = { "ready", NULL, NULL, FALSE };
  guint first = 1;

  if (self_path == NULL)
    return FALSE;
  b->workers = g_new0 (WorkerHandle, b->n_workers);
  for (guint i = 0; i < b->n_workers; i++)
    {
      guint count = b->clients / b->n_workers + (i < b->clients % b->n_workers);

      if (!bench_start_worker (b, &b->workers[i], self_path, first, count))
        return FALSE;
      b->n_started++;
      first += count;
    }
  got = g_new0 (gboolean, b->n_started);
  asking.got = got;
  return bench_wait (b, all_answered, &asking, 30000, "the workers to start");
}

static void
bench_stop_workers (Bench *b)
{
  gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;

  for (guint i = 0; i < b->n_started; i++)
    if (!b->workers[i].eof)
      handle_send (&b->workers[i], "quit");
  for (guint i = 0; i < b->n_started; i++)
    {
      WorkerHandle *h = &b->workers[i];

      while (!h->eof && g_get_monotonic_time () < deadline)
        g_main_context_iteration (NULL, TRUE);
      if (!h->eof)
        g_subprocess_force_exit (h->process);
      g_subprocess_wait (h->process, NULL, NULL);
    }
}

static void
bench_free_workers (Bench *b)
{
  for (guint i = 0; i < b->n_started; i++)
    {
      WorkerHandle *h = &b->workers[i];

      g_queue_clear_full (&h->lines, g_free);
      g_clear_object (&h->input);
      g_clear_object (&h->output);
      g_clear_object (&h->process);
    }
  g_clear_pointer (&b->workers, g_free);
  b->n_started = 0;
}

/* Sums field @field (0 = the first number after the word) of every @word line. */
static guint64
sum_field (GPtrArray  *lines,
           const char *word,
           guint       field)
{
  guint64 sum = 0;

  for (guint i = 0; i < lines->len; i++)
    {
      g_auto(GStrv) words = NULL;

      if (!line_is (lines->pdata[i], word))
        continue;
      words = g_strsplit (lines->pdata[i], " ", -1);
      if (g_strv_length (words) > field + 1)
        sum += g_ascii_strtoull (words[field + 1], NULL, 10);
    }
  return sum;
}

/* The joiners: the parent's own clients */

static gboolean
client_settled (Bench    *b,
                gpointer  data)
{
  Client *c = data;

  return c->state == CLIENT_READY || c->state == CLIENT_ONLINE || c->state == CLIENT_CLOSED;
}

static gboolean
client_is_closed (Bench    *b,
                  gpointer  data)
{
  return ((Client *) data)->state == CLIENT_CLOSED;
}

static gboolean
client_has_list (Bench    *b,
                 gpointer  data)
{
  return ((Client *) data)->list_done || ((Client *) data)->state == CLIENT_CLOSED;
}

static void
joiner_free (Client *c)
{
  client_close (c, NULL);
  client_free (c);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Client, joiner_free)

/* A joiner with its handshake proven by a ping, not logged in yet. */
static Client *
joiner_connect (Bench      *b,
                const char *name)
{
  g_autoptr(Client) c = client_new (b->local, ROLE_JOINER, 0, name);

  if (!bench_wait (b, client_settled, c, 20000, "the joiner's handshake"))
    return NULL;
  if (c->state != CLIENT_READY)
    {
      g_printerr ("bench-server: the joiner “%s” failed: %s\n", name, c->failure);
      return NULL;
    }
  return g_steal_pointer (&c);
}

static gboolean
joiner_log_in (Bench            *b,
               Client           *c,
               GchatMessageType  type)
{
  client_send_login (c, type);
  if (!bench_wait (b, client_settled, c, 20000, "the joiner's log-in"))
    return FALSE;
  if (c->state != CLIENT_ONLINE)
    {
      g_printerr ("bench-server: the joiner “%s” could not log in: %s\n", c->user, c->failure);
      return FALSE;
    }
  return TRUE;
}

static gboolean
joiner_log_out (Bench  *b,
                Client *c)
{
  client_send_simple (c, GCHAT_MESSAGE_LOGOUT, -1);
  return bench_wait (b, client_is_closed, c, 5000, "the joiner's log-out");
}

/* The joiners' accounts exist before anyone else logs in, so that joining is only a log-in. */
static gboolean
bench_sign_up_one (Bench      *b,
                   const char *name)
{
  g_autoptr(Client) c = joiner_connect (b, name);

  return c != NULL && joiner_log_in (b, c, GCHAT_MESSAGE_SIGN) && joiner_log_out (b, c);
}

static gboolean bench_wants (Bench      *b,
                             const char *phase);

/* So are the mailboxes that the post phase writes to, which stay offline until it is over. */
static gboolean
bench_sign_up_joiners (Bench *b)
{
  for (guint round = 1; round <= MAX (b->joins, 1); round++)
    {
      g_autofree char *name = g_strdup_printf ("j%04u", round);

      if (!bench_sign_up_one (b, name))
        return FALSE;
    }
  for (guint k = 1; bench_wants (b, "post") && k <= b->mailboxes; k++)
    {
      g_autofree char *name = g_strdup_printf ("m%04u", k);

      if (!bench_sign_up_one (b, name))
        return FALSE;
    }
  return TRUE;
}

/* Phases */

static gboolean
phase_unwrap (Bench *b)
{
  guint8 secret[GCHAT_KEY_SIZE], out[GCHAT_KEY_SIZE];
  g_autoptr(GBytes) wrapped = NULL;
  g_autoptr(GError) error = NULL;
  gint64 start = g_get_monotonic_time (), elapsed = 0;
  guint n = 0;

  gchat_random_bytes (secret, sizeof secret);
  wrapped = gchat_rsa_key_wrap (b->key, secret, sizeof secret, CLIENT_KEY_LABEL, &error);
  while (wrapped != NULL && (n < 20 || elapsed < (gint64) b->seconds * G_USEC_PER_SEC))
    {
      if (!gchat_rsa_key_unwrap (b->key, g_bytes_get_data (wrapped, NULL),
                                 g_bytes_get_size (wrapped), CLIENT_KEY_LABEL, out, sizeof out,
                                 &error))
        break;
      n++;
      elapsed = g_get_monotonic_time () - start;
    }
  if (error != NULL)
    {
      g_printerr ("bench-server: RSA failed: %s\n", error->message);
      return FALSE;
    }
  b->unwrap_rate = n / (elapsed / 1e6);
  b->unwrap_ms = elapsed / 1000.0 / n;
  printf ("bench: RSA-3072 unwrap in this process, one core: %.1f/s (%.2f ms each)\n",
          b->unwrap_rate, b->unwrap_ms);
  return TRUE;
}

/* A churn of short connections (`handshake`, `resume` or `storm`) for @seconds. */
static gboolean
phase_churn (Bench            *b,
             const char       *command,
             HandshakeFigures *figures)
{
  g_autoptr(GPtrArray) lines = NULL;
  CpuMark mark;

  cpu_mark (b, &mark);
  lines = bench_ask (b, command, "handshake-done", (b->seconds + 150) * 1000);
  if (lines == NULL)
    return FALSE;
  /* The CPU of the measured window only, not of the stragglers after it. */
  cpu_since (b, &mark, &figures->cpu);
  figures->measured = TRUE;
  figures->done = sum_field (lines, "handshake-done", 0);
  figures->failed = sum_field (lines, "handshake-done", 1);
  figures->late = sum_field (lines, "handshake-done", 2);
  figures->rate = figures->done / (double) b->seconds;
  figures->latency_ms = figures->done ? sum_field (lines, "handshake-done", 3) / 1000.0
                                        / figures->done : 0;
  return TRUE;
}

static gboolean
phase_handshakes (Bench            *b,
                  HandshakeFigures *figures,
                  const char       *label)
{
  g_autofree char *command = g_strdup_printf ("handshake %u %u", b->seconds, b->concurrency);

  printf ("bench: handshakes (%s): %u connections at a time per worker for %u s\n", label,
          b->concurrency, b->seconds);
  return phase_churn (b, command, figures);
}

/* Each worker's resumers log in once for a ticket, then reconnect with it over and over:
 * connect, hello, resumption message, `result` `resume`, close. */
static gboolean
phase_resume (Bench            *b,
              HandshakeFigures *figures,
              const char       *label)
{
  /* Key pairs for up to RESUME_KEY_PAIRS_PER_S resumptions a second per worker. */
  g_autofree char *prep = g_strdup_printf ("resume-prep %u %u", b->resume_window,
                                           b->seconds * RESUME_KEY_PAIRS_PER_S);
  g_autofree char *command = g_strdup_printf ("resume %u %u", b->seconds, b->resume_window);
  g_autoptr(GPtrArray) lines = bench_ask (b, prep, "resume-prep-done", 120000);
  guint64 ready;

  if (lines == NULL)
    return FALSE;
  ready = sum_field (lines, "resume-prep-done", 0);
  printf ("bench: resumptions (%s): %u connections at a time per worker for %u s, %"
          G_GUINT64_FORMAT " tickets\n", label, b->resume_window, b->seconds, ready);
  if (ready == 0)
    {
      printf ("bench:   gchatd gave no tickets: resumption not measured\n");
      return TRUE;
    }
  return phase_churn (b, command, figures);
}

static gint64
extreme_field (GPtrArray  *lines,
               const char *word,
               guint       field,
               gboolean    largest)
{
  gint64 value = largest ? G_MININT64 : G_MAXINT64;

  for (guint i = 0; i < lines->len; i++)
    {
      g_auto(GStrv) words = NULL;
      gint64 v;

      if (!line_is (lines->pdata[i], word))
        continue;
      words = g_strsplit (lines->pdata[i], " ", -1);
      if (g_strv_length (words) <= field + 1)
        continue;
      v = g_ascii_strtoll (words[field + 1], NULL, 10);
      value = largest ? MAX (value, v) : MIN (value, v);
    }
  return value;
}

static gboolean
bench_status (Bench *b)
{
  g_autoptr(GPtrArray) lines = bench_ask (b, "status", "status", 10000);

  if (lines == NULL)
    return FALSE;
  b->online = sum_field (lines, "status", 0);
  b->lost = sum_field (lines, "status", 1);
  return TRUE;
}

static gboolean
phase_sessions (Bench *b)
{
  g_autoptr(GPtrArray) lines = NULL;
  CpuMark mark;

  printf ("bench: signing up and logging in %u users, %u at a time per worker\n", b->clients,
          SIGN_WINDOW);
  cpu_mark (b, &mark);
  lines = bench_ask (b, "signup", "signup-done", SIGN_UP_MAX_MS);
  if (lines == NULL)
    return FALSE;
  cpu_since (b, &mark, &b->sign_cpu);
  b->signed_ok = sum_field (lines, "signup-done", 0);
  b->signed_failed = sum_field (lines, "signup-done", 1);
  b->sign_seconds = (extreme_field (lines, "signup-done", 3, TRUE)
                     - extreme_field (lines, "signup-done", 2, FALSE)) / 1e6;
  printf ("bench:   %u signed up and online, %u failed, in %.1f s\n", b->signed_ok,
          b->signed_failed, b->sign_seconds);
  return b->signed_ok > 0;
}

static void
add_join_times (Bench     *b,
                GPtrArray *lines,
                gint64     sent,
                gint64     answered)
{
  for (guint i = 0; i < lines->len; i++)
    {
      g_auto(GStrv) words = NULL;

      if (!line_is (lines->pdata[i], "join-times"))
        continue;
      words = g_strsplit (lines->pdata[i], " ", -1);
      for (guint j = 1; words[j] != NULL; j++)
        {
          gint64 seen = g_ascii_strtoll (words[j], NULL, 10);
          gint64 from_answer = seen - answered, from_sent = seen - sent;

          g_array_append_val (b->join_answered, from_answer);
          g_array_append_val (b->join_sent, from_sent);
        }
    }
  b->join_missing += sum_field (lines, "join-done", 1);
}

/* One more user logs in while everyone is online; each worker notes when each of its clients
 * hears of it. The clock is CLOCK_MONOTONIC, which all processes of a machine share. */
static gboolean
phase_join_round (Bench *b,
                  guint  round)
{
  g_autofree char *name = g_strdup_printf ("j%04u", round);
  g_autofree char *arm = g_strdup_printf ("join-arm %s", name);
  g_autoptr(Client) c = joiner_connect (b, name);
  g_autoptr(GPtrArray) armed = NULL;
  g_autoptr(GPtrArray) lines = NULL;
  gint64 sent;

  if (c == NULL || (armed = bench_ask (b, arm, "armed", 10000)) == NULL)
    return FALSE;
  sent = g_get_monotonic_time ();
  if (!joiner_log_in (b, c, GCHAT_MESSAGE_AUTH))
    return FALSE;
  b->join_auth_ms += (c->answered - sent) / 1000.0;
  client_send_simple (c, GCHAT_MESSAGE_LIST, 2);
  lines = bench_ask (b, "join-collect 10000", "join-done", 30000);
  if (lines == NULL || !bench_wait (b, client_has_list, c, 10000, "the joiner's list"))
    return FALSE;
  add_join_times (b, lines, sent, c->answered);
  b->join_rounds++;
  b->listed = c->listed;
  /* The next round starts once this joiner's departure has gone round too. */
  return joiner_log_out (b, c) && bench_settle (b, NULL);
}

static gboolean
phase_join (Bench *b)
{
  printf ("bench: %u users join, one at a time, while %u are online\n", b->joins, b->clients);
  for (guint round = 1; round <= b->joins; round++)
    if (!phase_join_round (b, round))
      return FALSE;
  return TRUE;
}

static gboolean
phase_talk (Bench *b)
{
  g_autofree char *command = g_strdup_printf ("talk %u %u", b->seconds, b->talk_window);
  g_autoptr(GPtrArray) lines = NULL;
  CpuMark mark;

  printf ("bench: pair keys: every online user keeps %u `talk` requests in flight for %u s\n",
          b->talk_window, b->seconds);
  cpu_mark (b, &mark);
  lines = bench_ask (b, command, "talk-done", (b->seconds + 30) * 1000);
  if (lines == NULL)
    return FALSE;
  cpu_since (b, &mark, &b->talk_cpu);
  b->talk_measured = TRUE;
  b->talk_issued = sum_field (lines, "talk-done", 0);
  b->talk_peer = sum_field (lines, "talk-done", 1);
  b->talk_errors = sum_field (lines, "talk-done", 2);
  b->talk_late = sum_field (lines, "talk-done", 3);
  b->talk_left = sum_field (lines, "talk-done", 4);
  b->talk_wrapped = sum_field (lines, "talk-done", 5) > 0;
  return TRUE;
}

static gboolean
phase_relay (Bench *b)
{
  g_autofree char *command = g_strdup_printf ("relay %u %u", b->seconds, b->relay_window);
  g_autoptr(GPtrArray) lines = NULL;
  CpuMark mark;

  printf ("bench: relay: %u 200-byte datagrams per user passed round the ring of users for "
          "%u s\n", b->relay_window, b->seconds);
  cpu_mark (b, &mark);
  lines = bench_ask (b, command, "relay-done", (b->seconds + 30) * 1000);
  if (lines == NULL)
    return FALSE;
  cpu_since (b, &mark, &b->relay_cpu);
  b->relay_measured = TRUE;
  b->relay_sent = sum_field (lines, "relay-done", 0);
  b->relay_received = sum_field (lines, "relay-done", 1);
  b->relay_late = sum_field (lines, "relay-done", 2);
  return TRUE;
}

static guint
count_mails (GPtrArray *boxes)
{
  guint n = 0;

  for (guint i = 0; i < boxes->len; i++)
    n += ((Client *) boxes->pdata[i])->mails;
  return n;
}

typedef struct {
  GPtrArray *boxes;
  guint64    expected;
} MailWait;

static gboolean
mail_all_in (Bench    *b,
             gpointer  data)
{
  MailWait *wait = data;

  return count_mails (wait->boxes) >= wait->expected;
}

/* The mailbox users log in together and get what was posted to them as `mail`. */
static gboolean
phase_mail (Bench *b)
{
  g_autoptr(GPtrArray) boxes = g_ptr_array_new_with_free_func ((GDestroyNotify) joiner_free);
  MailWait wait = { boxes, b->post_ok + b->post_late };
  gint64 start;

  for (guint k = 1; k <= b->mailboxes; k++)
    {
      g_autofree char *name = g_strdup_printf ("m%04u", k);
      Client *c = joiner_connect (b, name);

      if (c == NULL)
        return FALSE;
      g_ptr_array_add (boxes, c);
    }
  start = g_get_monotonic_time ();
  /* In waves below gchatd's Argon2id queue (64), which answers more with `busy`. */
  for (guint i = 0; i < boxes->len; i++)
    {
      client_send_login (boxes->pdata[i], GCHAT_MESSAGE_AUTH);
      if ((i + 1) % 32 == 0 || i + 1 == boxes->len)
        for (guint j = i + 1 - MIN (i + 1, 32); j <= i; j++)
          if (!bench_wait (b, client_settled, boxes->pdata[j], 20000, "a mailbox user's log-in"))
            return FALSE;
    }
  bench_wait (b, mail_all_in, &wait, 120000, "the mail");
  b->mail_seconds = (g_get_monotonic_time () - start) / 1e6;
  b->mail_got = count_mails (boxes);
  printf ("bench:   %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " mails delivered to %u users "
          "logging in at once, in %.2f s\n", b->mail_got, wait.expected, b->mailboxes,
          b->mail_seconds);
  return TRUE;
}

static gboolean
phase_post (Bench *b)
{
  g_autofree char *command = g_strdup_printf ("post %u %u %u", b->seconds, b->post_window,
                                              b->mailboxes);
  g_autoptr(GPtrArray) lines = NULL;
  CpuMark mark;

  printf ("bench: posts: every user keeps %u `post` in flight to %u offline users for %u s\n",
          b->post_window, b->mailboxes, b->seconds);
  cpu_mark (b, &mark);
  lines = bench_ask (b, command, "post-done", (b->seconds + 30) * 1000);
  if (lines == NULL)
    return FALSE;
  cpu_since (b, &mark, &b->post_cpu);
  b->post_measured = TRUE;
  b->post_ok = sum_field (lines, "post-done", 0);
  b->post_refused = sum_field (lines, "post-done", 1);
  b->post_late = sum_field (lines, "post-done", 2);
  b->post_left = sum_field (lines, "post-done", 3);
  return phase_mail (b);
}

static void
bench_reconnect_figures (Bench     *b,
                         GPtrArray *lines,
                         gint64     stop)
{
  b->rc_measured = TRUE;
  b->rc_online = sum_field (lines, "reconnect-done", 0);
  b->rc_complete = sum_field (lines, "reconnect-done", 1);
  b->rc_complete_s = (extreme_field (lines, "reconnect-done", 2, TRUE) - stop) / 1e6;
  b->rc_online_s = (extreme_field (lines, "reconnect-done", 3, TRUE) - stop) / 1e6;
  b->rc_presence = sum_field (lines, "reconnect-done", 4);
  b->rc_users = sum_field (lines, "reconnect-done", 5);
  b->rc_resumed = sum_field (lines, "reconnect-done", 6);
  b->rc_full = sum_field (lines, "reconnect-done", 7);
  b->rc_retries = sum_field (lines, "reconnect-done", 8);
}

/* gchatd stops (SIGTERM) and starts again on the same files and port; every client comes
 * back by itself with its ticket. The restarted gchatd runs at the default Argon2id cost, for
 * the log-in storm after it: accounts keep the cost they were made with. */
static gboolean
phase_reconnect (Bench *b)
{
  g_autofree char *arm = g_strdup_printf ("reconnect-arm %u", b->jitter_ms);
  g_autoptr(GPtrArray) armed = NULL;
  g_autoptr(GPtrArray) lines = NULL;
  g_autoptr(GPtrArray) ended = NULL;
  g_autoptr(GError) error = NULL;
  gint64 stop;
  CpuMark mark;

  printf ("bench: mass reconnect: gchatd restarted under %d clients, each back after 0–%u ms\n",
          b->online, b->jitter_ms);
  if ((armed = bench_ask (b, arm, "armed", 10000)) == NULL)
    return FALSE;
  if (!write_config (b, FALSE, &error))
    {
      g_printerr ("bench-server: %s\n", error->message);
      return FALSE;
    }
  stop = g_get_monotonic_time ();
  bench_stop_gchatd (b);
  b->rc_stop_s = (g_get_monotonic_time () - stop) / 1e6;
  g_clear_object (&b->gchatd);
  b->gchatd_exited = FALSE;
  if (!bench_start_gchatd (b))
    return FALSE;
  b->rc_start_s = (g_get_monotonic_time () - stop) / 1e6;
  cpu_mark (b, &mark);
  lines = bench_ask (b, "reconnect-wait 60000", "reconnect-done", 90000);
  if (lines == NULL)
    return FALSE;
  cpu_since (b, &mark, &b->rc_cpu);
  bench_reconnect_figures (b, lines, stop);
  printf ("bench:   %u online, %u with a complete list, %.2f s after SIGTERM\n", b->rc_online,
          b->rc_complete, b->rc_complete_s);
  if (b->rc_complete < b->clients)
    print_gchatd_log_tail (b);
  ended = bench_ask (b, "reconnect-end", "ended", 10000);
  return ended != NULL;
}

static gboolean
ping_cb (gpointer user_data)
{
  Client *c = user_data;
  Worker *w = c->worker;
  gint64 now = g_get_monotonic_time ();

  if (c->state != CLIENT_ONLINE)
    return G_SOURCE_CONTINUE;
  g_array_append_val (w->ping_sent, now);
  client_send_simple (c, GCHAT_MESSAGE_PING, w->ping_sent->len);
  return G_SOURCE_CONTINUE;
}

static GArray *
take_rtts (Worker *w)
{
  GArray *rtts = g_array_copy (w->ping_rtt);

  g_array_set_size (w->ping_rtt, 0);
  g_array_sort (rtts, compare_int64);
  return rtts;
}

/* A logged-in client pings every PING_MS while others log in at gchatd's default Argon2id
 * cost, each with a full handshake: the round trips show how long gchatd's main loop stalls. */
static gboolean
phase_storm (Bench *b)
{
  g_autofree char *command = g_strdup_printf ("storm %u %u", b->seconds, b->storm_window);
  g_autoptr(Client) c = joiner_connect (b, "j0001");
  Worker *w = b->local;
  guint ping_id;
  gboolean ok;

  if (c == NULL || !joiner_log_in (b, c, GCHAT_MESSAGE_AUTH))
    return FALSE;
  printf ("bench: log-in storm at Argon2id m=%u KiB, t=%u: %u sign-ups at a time per worker for "
          "%u s, with a `ping` every %u ms from an idle client\n",
          GCHAT_ARGON2_DEFAULT_MEMORY_KIB, GCHAT_ARGON2_DEFAULT_ITERATIONS, b->storm_window,
          b->seconds, PING_MS);
  w->ping_sent = g_array_new (FALSE, FALSE, sizeof (gint64));
  w->ping_rtt = g_array_new (FALSE, FALSE, sizeof (gint64));
  c->pinger = TRUE;
  ping_id = g_timeout_add (PING_MS, ping_cb, c);
  ok = bench_sleep (b, b->seconds * 1000);
  b->ping_idle = take_rtts (w);
  ok = ok && phase_churn (b, command, &b->storm);
  b->ping_storm = take_rtts (w);
  g_source_remove (ping_id);
  c->pinger = FALSE;
  return ok && joiner_log_out (b, c);
}

/* The report */

static gint64
percentile (GArray *sorted,
            double  fraction)
{
  /* The nearest-rank percentile: the smallest rank whose share reaches @fraction. */
  double exact = fraction * sorted->len;
  guint rank = (guint) exact + ((double) (guint) exact < exact);

  return g_array_index (sorted, gint64, CLAMP (rank, 1, sorted->len) - 1);
}

static void
print_row (const char *measure,
           const char *result,
           const char *target)
{
  printf ("| %s | %s | %s |\n", measure, result, target);
}

static char *
format_handshakes (Bench                  *b,
                   const HandshakeFigures *figures)
{
  if (!figures->measured)
    return g_strdup ("not measured");
  return g_strdup_printf ("%.1f/s = **%.0f %%** of 2 × %.1f unwraps/s", figures->rate,
                         100.0 * figures->rate / (2 * b->unwrap_rate), b->unwrap_rate);
}

static char *
format_resumptions (const HandshakeFigures *figures)
{
  if (!figures->measured)
    return g_strdup ("not measured");
  return g_strdup_printf ("**%.0f/s** (%.1f ms each)", figures->rate, figures->latency_ms);
}

static char *
format_p99 (GArray *rtts)
{
  if (rtts == NULL || rtts->len == 0)
    return g_strdup ("no samples");
  return g_strdup_printf ("%.1f", percentile (rtts, 0.99) / 1e3);
}

static void
print_new_rows (Bench *b)
{
  g_autofree char *rs_idle_label = g_strdup_printf ("Resumptions per second, %u sessions idle",
                                                   b->clients);
  g_autofree char *rs_idle = format_resumptions (&b->rs_idle);
  g_autofree char *rs_empty = format_resumptions (&b->rs_empty);
  g_autofree char *rc_label = g_strdup_printf ("gchatd restarted under %u clients: all back "
                                              "online / all online lists complete", b->clients);
  g_autofree char *rc = NULL;
  g_autofree char *traffic = NULL;
  g_autofree char *relay = NULL;
  g_autofree char *post = NULL;
  g_autofree char *mail = NULL;
  g_autofree char *storm = NULL;
  g_autofree char *p99_idle = format_p99 (b->ping_idle);
  g_autofree char *p99_storm = format_p99 (b->ping_storm);

  rc = !b->rc_measured ? g_strdup ("not measured")
       : b->rc_complete < b->clients
       ? g_strdup_printf ("%u of %u back online, %u lists complete after 60 s", b->rc_online,
                          b->clients, b->rc_complete)
       : g_strdup_printf ("%.2f s / **%.2f s** after SIGTERM (%u / %u of %u)", b->rc_online_s,
                          b->rc_complete_s, b->rc_online, b->rc_complete, b->clients);
  traffic = !b->rc_measured ? g_strdup ("not measured")
            : g_strdup_printf ("presence **%.0f B**, `users` lists %.0f B per client",
                               b->rc_presence / (double) b->clients,
                               b->rc_users / (double) b->clients);
  relay = !b->relay_measured ? g_strdup ("not measured")
          : g_strdup_printf ("**%.0f/s** delivered (`relay` → `relayed`)",
                             b->relay_received / (double) b->seconds);
  post = !b->post_measured ? g_strdup ("not measured")
         : g_strdup_printf ("**%.0f/s** acknowledged durable", b->post_ok / (double) b->seconds);
  mail = !b->post_measured ? g_strdup ("not measured")
         : g_strdup_printf ("**%.0f/s** (%" G_GUINT64_FORMAT " in %.2f s)",
                            b->mail_got / MAX (b->mail_seconds, 1e-3), b->mail_got,
                            b->mail_seconds);
  storm = !b->storm.measured ? g_strdup ("not measured")
          : g_strdup_printf ("p99 **%s ms** (idle: %s ms), %.1f log-ins/s", p99_storm, p99_idle,
                             b->storm.rate);
  print_row (rs_idle_label, rs_idle, "≥ 2,000/s");
  print_row ("Resumptions per second, no sessions", rs_empty, "≥ 2,000/s");
  print_row (rc_label, rc, "≤ 10 s");
  print_row ("Online-list traffic per client in that reconnect", traffic, "≈ linear in N");
  print_row ("Relayed 200-byte datagrams per second", relay, "");
  print_row ("Posts to offline users per second", post, "");
  print_row ("Mail delivered at the recipients' log-in", mail, "");
  print_row ("Main-loop delay (ping round trip) during a log-in storm at the default Argon2id "
             "cost", storm, "p99 < 20 ms");
}

static void
print_table (Bench *b)
{
  g_autofree char *sessions = NULL;
  g_autofree char *memory = NULL;
  g_autofree char *hs_idle = format_handshakes (b, &b->hs_idle);
  g_autofree char *hs_empty = format_handshakes (b, &b->hs_empty);
  g_autofree char *talk = NULL;
  g_autofree char *join = NULL;
  g_autofree char *hs_idle_label = g_strdup_printf ("Handshakes per second, %u sessions idle",
                                                   b->clients);
  g_autofree char *join_label = g_strdup_printf ("Time until all %u clients see a join "
                                                "(p50 / p99 / max)", b->clients);

  sessions = b->online < 0 ? g_strdup ("not measured")
             : b->listed < 0 ? g_strdup_printf ("%d of %u", b->online, b->clients)
             : g_strdup_printf ("%d of %u (gchatd listed %d with the joiner)", b->online,
                                b->clients, b->listed);
  memory = !b->memory_measured ? g_strdup ("not measured")
           : g_strdup_printf ("**%.1f KiB** private (%.1f KiB of RSS)",
                             (b->after.private_bytes - b->base0.private_bytes) / (double) b->clients,
                             (b->after.rss - b->base0.rss) / (double) b->clients);
  talk = !b->talk_measured ? g_strdup ("not measured")
         : g_strdup_printf ("**%.0f/s**, fresh keys of distinct pairs%s",
                            b->talk_issued / (double) b->seconds,
                            b->talk_wrapped ? " (some pairs repeated)" : "");
  if (b->join_answered->len == 0)
    join = g_strdup ("not measured");
  else
    join = g_strdup_printf ("%.0f / **%.0f** / %.0f ms", percentile (b->join_answered, 0.5) / 1e3,
                            percentile (b->join_answered, 0.99) / 1e3,
                            percentile (b->join_answered, 1.0) / 1e3);

  printf ("\n| measure | result | target |\n| --- | --- | --- |\n");
  print_row ("Sessions held, logged in and idle", sessions, "19,000");
  print_row ("gchatd memory per idle session", memory, "≤ 12 KiB");
  print_row (hs_idle_label, hs_idle, "≥ 80 %");
  print_row ("Handshakes per second, no sessions", hs_empty, "≥ 80 %");
  print_row ("Pair keys issued per second", talk, "≥ 20,000/s");
  print_row (join_label, join, "p99 < 250 ms");
  print_new_rows (b);
}

static char *
format_cpu (const CpuUse *use)
{
  return g_strdup_printf ("CPU of gchatd %.0f %%, of the bench %.0f %%, of other processes "
                          "%.0f %%", use->server, use->clients, use->others);
}

static void
print_handshake_figures (const char             *label,
                         const HandshakeFigures *f)
{
  g_autofree char *cpu = format_cpu (&f->cpu);

  if (!f->measured)
    return;
  printf ("- %s: %" G_GUINT64_FORMAT " done in the window (%" G_GUINT64_FORMAT
          " after it, %" G_GUINT64_FORMAT " failed), %.1f ms each from connect to its answer; "
          "%s\n", label, f->done, f->late, f->failed, f->latency_ms, cpu);
}

static void
print_memory_figures (Bench *b)
{
  printf ("- gchatd memory in KiB (RSS / private): at start %" G_GINT64_FORMAT " / %"
          G_GINT64_FORMAT ", after the first handshake phase %" G_GINT64_FORMAT " / %"
          G_GINT64_FORMAT ", with the sessions idle %" G_GINT64_FORMAT " / %" G_GINT64_FORMAT
          "; per session counted from after the handshake phase: %.1f KiB private. Kernel "
          "socket buffers are not in a process's memory.\n", b->base0.rss,
          b->base0.private_bytes, b->base1.rss, b->base1.private_bytes, b->after.rss,
          b->after.private_bytes,
          (b->after.private_bytes - b->base1.private_bytes) / (double) b->clients);
}

static void
print_talk_figures (Bench *b)
{
  g_autofree char *cpu = format_cpu (&b->talk_cpu);

  printf ("- Pair keys: %" G_GUINT64_FORMAT " `pair-key` answers to the asker and %"
          G_GUINT64_FORMAT " copies to the other user in %u s, %" G_GUINT64_FORMAT
          " refused, %" G_GUINT64_FORMAT " answered after the window, %" G_GUINT64_FORMAT
          " never answered; %s\n", b->talk_issued, b->talk_peer, b->seconds, b->talk_errors,
          b->talk_late, b->talk_left, cpu);
}

static void
print_join_figures (Bench *b)
{
  printf ("- Join: %u samples over %u rounds, %u clients never saw it; counted from the `auth` "
          "being sent: p50 %.0f, p99 %.0f, max %.0f ms; the `auth` took %.1f ms on average\n",
          b->join_answered->len, b->join_rounds, b->join_missing,
          percentile (b->join_sent, 0.5) / 1e3, percentile (b->join_sent, 0.99) / 1e3,
          percentile (b->join_sent, 1.0) / 1e3, b->join_auth_ms / b->join_rounds);
}

static void
print_new_figures (Bench *b)
{
  g_autofree char *rc_cpu = format_cpu (&b->rc_cpu);
  g_autofree char *relay_cpu = format_cpu (&b->relay_cpu);
  g_autofree char *post_cpu = format_cpu (&b->post_cpu);

  print_handshake_figures ("Resumptions, no sessions", &b->rs_empty);
  print_handshake_figures ("Resumptions, sessions idle", &b->rs_idle);
  if (b->rc_measured)
    printf ("- Mass reconnect: gchatd took %.2f s to stop and accepted again %.2f s after SIGTERM;"
            " %" G_GUINT64_FORMAT " sessions resumed, %" G_GUINT64_FORMAT " full log-ins, %"
            G_GUINT64_FORMAT " attempts failed and were tried again; received %.1f MB of "
            "presence and %.1f MB of `users` lists in all; %s\n", b->rc_stop_s, b->rc_start_s,
            b->rc_resumed, b->rc_full, b->rc_retries, b->rc_presence / 1e6, b->rc_users / 1e6,
            rc_cpu);
  if (b->relay_measured)
    printf ("- Relay: %" G_GUINT64_FORMAT " sent, %" G_GUINT64_FORMAT " delivered in %u s, %"
            G_GUINT64_FORMAT " after it; %s\n", b->relay_sent, b->relay_received, b->seconds,
            b->relay_late, relay_cpu);
  if (b->post_measured)
    printf ("- Posts: %" G_GUINT64_FORMAT " acknowledged in %u s, %" G_GUINT64_FORMAT
            " after it, %" G_GUINT64_FORMAT " refused, %" G_GUINT64_FORMAT " never answered; %s\n",
            b->post_ok, b->seconds, b->post_late, b->post_refused, b->post_left, post_cpu);
  print_handshake_figures ("Log-in storm (full handshake and `sign` at the default cost)",
                           &b->storm);
  if (b->ping_storm != NULL && b->ping_storm->len > 0)
    printf ("- Ping round trips: idle %u samples, p50 %.2f / p99 %.2f / max %.2f ms; during the "
            "storm %u samples, p50 %.2f / p99 %.2f / max %.2f ms\n", b->ping_idle->len,
            percentile (b->ping_idle, 0.5) / 1e3, percentile (b->ping_idle, 0.99) / 1e3,
            percentile (b->ping_idle, 1.0) / 1e3, b->ping_storm->len,
            percentile (b->ping_storm, 0.5) / 1e3, percentile (b->ping_storm, 0.99) / 1e3,
            percentile (b->ping_storm, 1.0) / 1e3);
}

static void
print_raw_figures (Bench *b)
{
  g_autofree char *sign_cpu = format_cpu (&b->sign_cpu);

  printf ("\nRaw figures (%u clients in %u worker processes, %u s per rate phase, %d cores; "
          "CPU in percent of one core):\n", b->clients, b->n_workers, b->seconds,
          (int) g_get_num_processors ());
  printf ("- RSA-3072 unwrap (OAEP-SHA256) in the bench process, one core: %.1f/s, %.2f ms\n",
          b->unwrap_rate, b->unwrap_ms);
  if (b->memory_measured)
    print_memory_figures (b);
  if (b->signed_ok + b->signed_failed > 0)
    printf ("- Sign-ups (Argon2id lowered to m=64 KiB, t=1): %u in %.1f s = %.1f/s, %u failed; "
            "%s\n", b->signed_ok, b->sign_seconds, b->signed_ok / b->sign_seconds,
            b->signed_failed, sign_cpu);
  if (b->online >= 0)
    printf ("- Sessions at the end: %d online, %u lost during the run; with all of them idle "
            "(a keepalive `ping` each per 30 s) gchatd used %.0f %% of a core\n", b->online,
            b->lost, b->idle_cpu);
  print_handshake_figures ("Handshakes, no sessions", &b->hs_empty);
  print_handshake_figures ("Handshakes, sessions idle", &b->hs_idle);
  if (b->talk_measured)
    print_talk_figures (b);
  if (b->join_answered->len > 0)
    print_join_figures (b);
  print_new_figures (b);
}

static void
bench_report (Bench *b)
{
  g_array_sort (b->join_answered, compare_int64);
  g_array_sort (b->join_sent, compare_int64);
  print_table (b);
  print_raw_figures (b);
}

/* Set-up and clean-up */

static gboolean
bench_prepare (Bench *b)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *private_path = NULL;

  b->dir = g_dir_make_tmp ("gchatd-bench-XXXXXX", &error);
  if (b->dir == NULL)
    {
      g_printerr ("bench-server: %s\n", error->message);
      return FALSE;
    }
  printf ("bench: making an RSA-%u key pair in %s\n", GCHAT_RSA_KEY_BITS, b->dir);
  private_path = g_build_filename (b->dir, "server-private.pem", NULL);
  b->public_path = g_build_filename (b->dir, "server-public.pem", NULL);
  b->key = gchat_rsa_key_generate (GCHAT_RSA_KEY_BITS, &error);
  b->port = find_free_port ();
  b->address = loopback_address (b->port);
  if (b->key == NULL || !gchat_rsa_key_save_private (b->key, private_path, &error)
      || !gchat_rsa_key_save_public (b->key, b->public_path, &error)
      || !write_config (b, TRUE, &error))
    {
      g_printerr ("bench-server: %s\n", error->message);
      return FALSE;
    }
  printf ("bench: gchatd runs with Argon2id lowered to m=64 KiB, t=1 (the default is "
          "m=%u KiB, t=%u): the session test is about sessions, not password hashing\n",
          GCHAT_ARGON2_DEFAULT_MEMORY_KIB, GCHAT_ARGON2_DEFAULT_ITERATIONS);
  return TRUE;
}

static void
bench_cleanup (Bench *b)
{
  if (b->local != NULL)
    worker_free (b->local);
  bench_stop_workers (b);
  bench_stop_gchatd (b);
  g_cancellable_cancel (b->cancellable);
  bench_free_workers (b);
  if (b->dir != NULL)
    gchat_test_remove_tree (b->dir);
  g_clear_pointer (&b->dir, g_free);
  g_clear_pointer (&b->public_path, g_free);
  g_clear_object (&b->gchatd);
  g_clear_object (&b->key);
  g_clear_object (&b->address);
  g_clear_object (&b->cancellable);
  g_clear_pointer (&b->join_answered, g_array_unref);
  g_clear_pointer (&b->join_sent, g_array_unref);
  g_clear_pointer (&b->ping_idle, g_array_unref);
  g_clear_pointer (&b->ping_storm, g_array_unref);
}

static gboolean
bench_wants (Bench      *b,
             const char *phase)
{
  g_auto(GStrv) names = NULL;

  if (b->phases == NULL)
    return TRUE;
  names = g_strsplit (b->phases, ",", -1);
  /* The log-in storm needs the restart that sets gchatd's default Argon2id cost. */
  return g_strv_contains ((const char * const *) names, phase)
         || (g_str_equal (phase, "reconnect") && g_strv_contains ((const char * const *) names,
                                                                  "storm"));
}

/* The phases after the sign-up, each when wanted and each after gchatd settled. */
static gboolean
bench_run_loaded (Bench *b)
{
  if (bench_wants (b, "join") && !phase_join (b))
    return FALSE;
  if (bench_wants (b, "handshakes") && !phase_handshakes (b, &b->hs_idle, "sessions idle"))
    return FALSE;
  if (bench_wants (b, "talk") && !phase_talk (b))
    return FALSE;
  if (bench_wants (b, "resume")
      && (!bench_settle (b, NULL) || !phase_resume (b, &b->rs_idle, "sessions idle")))
    return FALSE;
  if (bench_wants (b, "relay") && (!bench_settle (b, NULL) || !phase_relay (b)))
    return FALSE;
  if (bench_wants (b, "post") && (!bench_settle (b, NULL) || !phase_post (b)))
    return FALSE;
  if (bench_wants (b, "reconnect") && (!bench_settle (b, NULL) || !phase_reconnect (b)))
    return FALSE;
  if (bench_wants (b, "storm") && (!bench_settle (b, NULL) || !phase_storm (b)))
    return FALSE;
  return TRUE;
}

/* Every phase in order; FALSE at the first that fails. */
static gboolean
bench_run (Bench *b)
{
  if (!bench_prepare (b) || !phase_unwrap (b) || !bench_start_gchatd (b))
    return FALSE;
  read_memory (b->gchatd_pid, &b->base0);
  b->local = worker_new (b->key, b->address, 0, 0, b->clients);
  if (!bench_start_workers (b) || !bench_sign_up_joiners (b))
    return FALSE;
  if (bench_wants (b, "handshakes")
      && (!phase_handshakes (b, &b->hs_empty, "no sessions") || !bench_settle (b, NULL)))
    return FALSE;
  if (bench_wants (b, "resume")
      && (!phase_resume (b, &b->rs_empty, "no sessions") || !bench_settle (b, NULL)))
    return FALSE;
  read_memory (b->gchatd_pid, &b->base1);
  if (!phase_sessions (b) || !bench_settle (b, &b->idle_cpu))
    return FALSE;
  read_memory (b->gchatd_pid, &b->after);
  b->memory_measured = TRUE;
  if (!bench_status (b) || !bench_run_loaded (b))
    return FALSE;
  /* Whether every session lived through all of it. */
  return bench_settle (b, NULL) && bench_status (b);
}

static void
raise_file_limit (void)
{
  struct rlimit limit;

  if (getrlimit (RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max)
    {
      limit.rlim_cur = limit.rlim_max;
      setrlimit (RLIMIT_NOFILE, &limit);
    }
}

static gboolean
check_options (Bench *b)
{
  struct rlimit limit = { 0 };

  getrlimit (RLIMIT_NOFILE, &limit);
  if (b->clients < 2 || b->clients > 99999
      || b->clients + b->n_workers * MAX (b->concurrency, b->resume_window) + 100
         > MAX_CONNECTIONS)
    g_printerr ("bench-server: --clients must be 2 or more, and leave room under gchatd's "
                "limit of %u connections\n", MAX_CONNECTIONS);
  else if (b->n_workers < 1 || b->n_workers > 64 || b->seconds < 1 || b->seconds > 600
           || b->joins < 1 || b->joins > 100)
    g_printerr ("bench-server: --workers must be 1 to 64, --seconds 1 to 600 and --joins 1 "
                "to 100\n");
  else if (b->talk_window < 1 || b->talk_window > 1000 || b->concurrency < 1
           || b->concurrency > 1000 || b->relay_window < 1 || b->relay_window > 1000
           || b->post_window < 1 || b->post_window > 1000 || b->storm_window < 1
           || b->storm_window > 1000 || b->resume_window < 1 || b->resume_window > 999)
    g_printerr ("bench-server: --talk-window, --relay-window, --post-window, --storm-window, "
                "--resume-window (below 1000) and --concurrency must be 1 to 1000\n");
  else if (b->mailboxes < 1 || b->mailboxes > 9999 || b->jitter_ms > 60000)
    g_printerr ("bench-server: --mailboxes must be 1 to 9999 and --jitter at most 60000\n");
  else if ((b->clients + b->n_workers - 1) / b->n_workers
           + MAX (b->concurrency, b->resume_window)
           > MIN (MAX_CLIENTS_PER_WORKER, limit.rlim_cur - 100))
    g_printerr ("bench-server: %u clients per worker is more than a process may open "
                "files for here: use more --workers\n", b->clients / b->n_workers);
  else if (!g_file_test (b->gchatd_path, G_FILE_TEST_IS_EXECUTABLE))
    g_printerr ("bench-server: there is no gchatd at %s; build it first (ninja -C BUILDDIR) "
                "or name it with --gchatd\n", b->gchatd_path);
  else if (b->clients + 200 > limit.rlim_cur)
    g_printerr ("bench-server: gchatd may open only %llu files here, too few for %u clients\n",
                (unsigned long long) limit.rlim_cur, b->clients);
  else
    return TRUE;
  return FALSE;
}

/* The parent's options, and the hidden ones a worker is started with. */
static Bench bench = {
  .clients = 10000, .n_workers = 4, .seconds = 5, .talk_window = 4, .concurrency = 16,
  .joins = 3, .gchatd_path = GCHATD_PATH, .online = -1, .listed = -1, .jitter_ms = 1000,
  .relay_window = 1, .post_window = 1, .mailboxes = 100, .storm_window = 8,
  .resume_window = 64,
};
static gboolean opt_worker;
static char *opt_key;
static int opt_port, opt_first, opt_count, opt_total;

static const GOptionEntry entries[] = {
  { "clients", 0, 0, G_OPTION_ARG_INT, &bench.clients, "Simulated users (10000)", "N" },
  { "workers", 0, 0, G_OPTION_ARG_INT, &bench.n_workers, "Worker processes (4)", "W" },
  { "seconds", 0, 0, G_OPTION_ARG_INT, &bench.seconds, "Seconds per rate phase (5)", "S" },
  { "talk-window", 0, 0, G_OPTION_ARG_INT, &bench.talk_window,
    "Talk requests in flight per user (4)", "K" },
  { "concurrency", 0, 0, G_OPTION_ARG_INT, &bench.concurrency,
    "Handshakes in flight per worker (16)", "C" },
  { "joins", 0, 0, G_OPTION_ARG_INT, &bench.joins, "Join rounds (3)", "J" },
  { "gchatd", 0, 0, G_OPTION_ARG_FILENAME, &bench.gchatd_path, "The gchatd to run", "PATH" },
  { "phases", 0, 0, G_OPTION_ARG_STRING, &bench.phases,
    "Phases besides the sign-up, comma-separated: handshakes, join, talk, resume, relay, post, "
    "reconnect, storm (all)", "LIST" },
  { "jitter", 0, 0, G_OPTION_ARG_INT, &bench.jitter_ms,
    "Largest random delay before a client reconnects, in ms (1000)", "MS" },
  { "relay-window", 0, 0, G_OPTION_ARG_INT, &bench.relay_window,
    "Relayed datagrams in flight per user (1)", "K" },
  { "post-window", 0, 0, G_OPTION_ARG_INT, &bench.post_window,
    "Posts in flight per user (1)", "K" },
  { "mailboxes", 0, 0, G_OPTION_ARG_INT, &bench.mailboxes,
    "Offline users the posts go to (100)", "M" },
  { "resume-window", 0, 0, G_OPTION_ARG_INT, &bench.resume_window,
    "Resumptions in flight per worker (64)", "K" },
  { "storm-window", 0, 0, G_OPTION_ARG_INT, &bench.storm_window,
    "Log-ins in flight per worker in the storm (8)", "K" },
  { "worker", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_NONE, &opt_worker, NULL, NULL },
  { "key", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_FILENAME, &opt_key, NULL, NULL },
  { "port", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_INT, &opt_port, NULL, NULL },
  { "first", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_INT, &opt_first, NULL, NULL },
  { "count", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_INT, &opt_count, NULL, NULL },
  { "total", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_INT, &opt_total, NULL, NULL },
  { NULL }
};

static int
bench_main (void)
{
  g_autoptr(GError) error = NULL;
  gboolean ok;

  if (!check_options (&bench))
    return EXIT_FAILURE;
  if (!gchat_crypto_init (&error))
    {
      g_printerr ("bench-server: %s\n", error->message);
      return EXIT_FAILURE;
    }
  bench.cancellable = g_cancellable_new ();
  bench.join_answered = g_array_new (FALSE, FALSE, sizeof (gint64));
  bench.join_sent = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_timeout_add (10, tick_cb, NULL);
  g_unix_signal_add (SIGINT, interrupt_cb, &bench);
  g_unix_signal_add (SIGTERM, interrupt_cb, &bench);
  ok = bench_run (&bench);
  if (!ok && bench.gchatd_exited)
    print_gchatd_log_tail (&bench);
  if (bench.gchatd != NULL)
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

  g_option_context_set_summary (context, "Runs gchatd under simulated load and prints the "
                                "speed figures of its issue as a Markdown table.");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("bench-server: %s\n", error->message);
      return EXIT_FAILURE;
    }
  /* Progress lines must show at once, even in a pipe. */
  setvbuf (stdout, NULL, _IOLBF, 0);
  /* A peer that went away must be an error to handle, not a signal that kills. */
  signal (SIGPIPE, SIG_IGN);
  raise_file_limit ();
  if (opt_worker)
    return worker_main (opt_key, opt_port, opt_first, opt_count, opt_total);
  return bench_main ();
}
