/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Tests of the conversation engine: two sides wired through a simulated, lossy network. */

#include "config.h"

#include <string.h>

#include "gchat-conversation.h"

#define ALICE 0
#define BOB   1
#define START (G_USEC_PER_SEC)
#define TICK  (5 * 1000)
#define MS    1000

typedef struct {
  GBytes *datagram;
  gint64  due;
  guint   order;
  int     to;
} Packet;

/* What one side saw. */
typedef struct {
  GArray    *messages;  /* guint64 ids, as delivered */
  GPtrArray *texts;
  GArray    *delivered;
  GArray    *stalled;
  GArray    *failed;
  guint      hello_answers;
  guint      drops;
} Record;

typedef struct {
  GchatConversation *side[2];
  Record             record[2];
  GPtrArray         *packets;
  GRand             *rand;
  guint              order;
  gint64             now;
  double             loss;
  double             duplication;
  gint64             delay;
  gint64             jitter;
  gboolean           blocked;
  guint8             pair_key[32];
  guint32            key_id;
} Net;

static void
packet_free (Packet *packet)
{
  g_bytes_unref (packet->datagram);
  g_free (packet);
}

static void
on_message (GchatConversation *conversation,
            guint64            msg_id,
            const char        *text,
            Record            *record)
{
  g_array_append_val (record->messages, msg_id);
  g_ptr_array_add (record->texts, g_strdup (text));
}

static void
on_id (GArray  *ids,
       guint64  msg_id)
{
  g_array_append_val (ids, msg_id);
}

static void
on_delivered (GchatConversation *conversation,
              guint64            msg_id,
              Record            *record)
{
  on_id (record->delivered, msg_id);
}

static void
on_stalled (GchatConversation *conversation,
            guint64            msg_id,
            Record            *record)
{
  on_id (record->stalled, msg_id);
}

static void
on_failed (GchatConversation *conversation,
           guint64            msg_id,
           Record            *record)
{
  on_id (record->failed, msg_id);
}

static void
on_hello_answered (GchatConversation *conversation,
                   Record            *record)
{
  record->hello_answers++;
}

static void
install_key (Net *net,
             int  side,
             guint32 key_id)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (gchat_conversation_set_key (net->side[side], net->pair_key, key_id, 0,
                                             net->now, &error));
  g_assert_no_error (error);
}

/* Each new key id gets its own pair key, as the server would hand out. */
static void
next_pair_key (Net *net)
{
  net->key_id++;
  for (guint i = 0; i < sizeof net->pair_key; i++)
    net->pair_key[i] = (guint8) g_rand_int (net->rand);
}

/* A new conversation object for one side, as after a restart of its program. */
static void
net_start (Net *net,
           int  side)
{
  const char *names[2] = { "alice", "bob" };
  Record *record = &net->record[side];

  g_clear_object (&net->side[side]);
  net->side[side] = gchat_conversation_new (names[side], names[1 - side]);
  g_signal_connect (net->side[side], "message", G_CALLBACK (on_message), record);
  g_signal_connect (net->side[side], "delivered", G_CALLBACK (on_delivered), record);
  g_signal_connect (net->side[side], "stalled", G_CALLBACK (on_stalled), record);
  g_signal_connect (net->side[side], "failed", G_CALLBACK (on_failed), record);
  g_signal_connect (net->side[side], "hello-answered", G_CALLBACK (on_hello_answered), record);
}

static void
net_setup (Net           *net,
           gconstpointer  data)
{

  net->packets = g_ptr_array_new_with_free_func ((GDestroyNotify) packet_free);
  net->rand = g_rand_new_with_seed (20261126);
  net->now = START;
  net->delay = 10 * MS;
  for (int i = 0; i < 2; i++)
    {
      Record *record = &net->record[i];

      record->messages = g_array_new (FALSE, FALSE, sizeof (guint64));
      record->texts = g_ptr_array_new_with_free_func (g_free);
      record->delivered = g_array_new (FALSE, FALSE, sizeof (guint64));
      record->stalled = g_array_new (FALSE, FALSE, sizeof (guint64));
      record->failed = g_array_new (FALSE, FALSE, sizeof (guint64));
      net_start (net, i);
    }
  next_pair_key (net);
  install_key (net, ALICE, net->key_id);
  install_key (net, BOB, net->key_id);
}

static void
net_teardown (Net           *net,
              gconstpointer  data)
{
  for (int i = 0; i < 2; i++)
    {
      Record *record = &net->record[i];

      g_clear_object (&net->side[i]);
      g_array_unref (record->messages);
      g_ptr_array_unref (record->texts);
      g_array_unref (record->delivered);
      g_array_unref (record->stalled);
      g_array_unref (record->failed);
    }
  g_ptr_array_unref (net->packets);
  g_rand_free (net->rand);
}

static void
net_put (Net    *net,
         int     to,
         GBytes *datagram)
{
  Packet *packet = g_new0 (Packet, 1);

  packet->datagram = g_bytes_ref (datagram);
  packet->to = to;
  packet->order = net->order++;
  packet->due = net->now + net->delay;
  if (net->jitter > 0)
    packet->due += g_rand_int_range (net->rand, 0, (gint32) net->jitter);
  g_ptr_array_add (net->packets, packet);
}

/* Loses, duplicates and delays what one side sent. */
static void
net_send (Net       *net,
          int        from,
          GPtrArray *datagrams)
{
  for (guint i = 0; i < datagrams->len; i++)
    {
      GBytes *datagram = g_ptr_array_index (datagrams, i);

      if (net->blocked || g_rand_double (net->rand) < net->loss)
        continue;
      net_put (net, 1 - from, datagram);
      if (g_rand_double (net->rand) < net->duplication)
        net_put (net, 1 - from, datagram);
    }
}

static gint
packet_compare (gconstpointer a,
                gconstpointer b)
{
  const Packet *pa = *(const Packet **) a;
  const Packet *pb = *(const Packet **) b;

  if (pa->due != pb->due)
    return pa->due < pb->due ? -1 : 1;
  return pa->order < pb->order ? -1 : pa->order > pb->order;
}

static void
net_receive (Net    *net,
             int     to,
             GBytes *datagram)
{
  g_autoptr(GError) error = NULL;
  gsize len;
  const guint8 *data = g_bytes_get_data (datagram, &len);

  if (!gchat_conversation_receive (net->side[to], data, len, net->now, &error))
    {
      g_assert_nonnull (error);
      net->record[to].drops++;
    }
}

static void
net_deliver_due (Net *net)
{
  g_autoptr(GPtrArray) due = g_ptr_array_new_with_free_func ((GDestroyNotify) packet_free);

  for (guint i = 0; i < net->packets->len;)
    {
      Packet *packet = g_ptr_array_index (net->packets, i);

      if (packet->due <= net->now)
        g_ptr_array_add (due, g_ptr_array_steal_index (net->packets, i));
      else
        i++;
    }
  g_ptr_array_sort (due, packet_compare);
  for (guint i = 0; i < due->len; i++)
    {
      Packet *packet = g_ptr_array_index (due, i);

      net_receive (net, packet->to, packet->datagram);
    }
}

static void
net_step (Net *net)
{
  for (int i = 0; i < 2; i++)
    {
      g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);

      gchat_conversation_poll (net->side[i], net->now, out);
      net_send (net, i, out);
    }
  net_deliver_due (net);
  net->now += TICK;
}

static void
send_text (Net        *net,
           int         from,
           const char *text)
{
  g_autoptr(GError) error = NULL;
  guint64 id = gchat_conversation_send (net->side[from], text, strlen (text), net->now, &error);

  g_assert_no_error (error);
  g_assert_cmpuint (id, >, 0);
}

/* The id a side gave its @n-th message. */
static guint64
id_of (Net    *net,
       int     side,
       guint32 n)
{
  return GCHAT_DATAGRAM_MSG_ID (gchat_conversation_get_epoch (net->side[side]), n);
}

/* Messages 1..n of one sender epoch, each once and in order. */
static void
assert_in_order (Record *record,
                 guint   n)
{
  guint32 epoch;

  g_assert_cmpuint (record->messages->len, ==, n);
  if (n == 0)
    return;
  epoch = GCHAT_DATAGRAM_MSG_EPOCH (g_array_index (record->messages, guint64, 0));
  for (guint i = 0; i < n; i++)
    g_assert_cmpuint (g_array_index (record->messages, guint64, i), ==,
                      GCHAT_DATAGRAM_MSG_ID (epoch, i + 1));
}

/* ---- Tests ---- */

static char *
make_text (int    from,
           guint  i)
{
  /* Every tenth message is three fragments long. */
  if (i % 10 == 9)
    {
      g_autofree char *filler = g_strnfill (2500, 'a' + (char) (i % 26));

      return g_strdup_printf ("%d-%u-%s", from, i, filler);
    }
  return g_strdup_printf ("%d-%u", from, i);
}

static void
run_both_ways (Net   *net,
               guint  n,
               gint64 limit)
{
  guint queued = 0;
  gint64 start = net->now;

  while (net->now < limit
         && (net->record[ALICE].messages->len < n || net->record[BOB].messages->len < n
             || net->record[ALICE].delivered->len < n || net->record[BOB].delivered->len < n))
    {
      /* A few messages every tick, more than the in-flight window holds. */
      for (guint k = 0; k < 3 && queued < n; k++, queued++)
        for (int from = 0; from < 2; from++)
          {
            g_autofree char *text = make_text (from, queued);

            send_text (net, from, text);
          }
      net_step (net);
    }
  g_test_message ("%u messages each way in %.1f s of simulated time", n,
                  (double) (net->now - start) / G_USEC_PER_SEC);
  for (int to = 0; to < 2; to++)
    {
      Record *record = &net->record[to];

      assert_in_order (record, n);
      for (guint i = 0; i < n; i++)
        {
          g_autofree char *expected = make_text (1 - to, i);

          g_assert_cmpstr (g_ptr_array_index (record->texts, i), ==, expected);
        }
      g_assert_cmpuint (record->delivered->len, ==, n);
      g_assert_cmpuint (record->failed->len, ==, 0);
      g_assert_cmpuint (gchat_conversation_get_n_pending (net->side[to]), ==, 0);
    }
}

static void
test_lossy (Net           *net,
            gconstpointer  data)
{
  net->loss = 0.3;
  net->duplication = 0.1;
  net->jitter = 20 * MS;
  run_both_ways (net, 300, START + 900 * G_USEC_PER_SEC);
  /* Duplicates and reordering beyond the replay window were dropped on the way. */
  g_assert_cmpuint (net->record[BOB].drops, >, 0);
}

static void
test_largest (Net           *net,
              gconstpointer  data)
{
  GString *text = g_string_new (NULL);
  g_autoptr(GError) error = NULL;
  g_autofree char *expected = NULL;

  /* Two-byte characters, so that fragments cut through them. */
  while (text->len < GCHAT_DATAGRAM_MAX_TEXT)
    g_string_append (text, "é");
  g_assert_cmpuint (text->len, ==, GCHAT_DATAGRAM_MAX_TEXT);
  g_assert_cmpuint (gchat_conversation_send (net->side[ALICE], text->str, text->len, net->now,
                                             &error), ==, id_of (net, ALICE, 1));
  g_assert_no_error (error);

  g_string_append_c (text, 'x');
  g_assert_cmpuint (gchat_conversation_send (net->side[ALICE], text->str, text->len, net->now,
                                             &error), ==, 0);
  g_assert_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_TOO_LARGE);
  g_string_truncate (text, GCHAT_DATAGRAM_MAX_TEXT);
  expected = g_string_free (text, FALSE);

  net->loss = 0.2;
  while (net->record[ALICE].delivered->len == 0 && net->now < START + 60 * G_USEC_PER_SEC)
    net_step (net);
  assert_in_order (&net->record[BOB], 1);
  g_assert_cmpstr (g_ptr_array_index (net->record[BOB].texts, 0), ==, expected);
  g_assert_cmpuint (net->record[ALICE].failed->len, ==, 0);
}

static void
test_send_errors (Net           *net,
                  gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  guint8 key[32] = { 0 };
  guint i;

  g_assert_cmpuint (gchat_conversation_send (net->side[ALICE], "a\0b", 3, net->now, &error), ==, 0);
  g_assert_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_MALFORMED);
  g_clear_error (&error);
  g_assert_cmpuint (gchat_conversation_send (net->side[ALICE], "\xff", 1, net->now, &error), ==, 0);
  g_assert_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_MALFORMED);
  g_clear_error (&error);

  /* A key id installed before would repeat its nonces. */
  g_assert_false (gchat_conversation_set_key (net->side[ALICE], key, net->key_id, 0, net->now,
                                              &error));
  g_assert_error (error, GCHAT_CONVERSATION_ERROR, GCHAT_CONVERSATION_ERROR_KEY_REUSED);
  g_clear_error (&error);

  /* An empty message is a message too, and ids count from 1. */
  g_assert_cmpuint (gchat_conversation_send (net->side[ALICE], "", 0, net->now, &error), ==,
                    id_of (net, ALICE, 1));
  for (i = 1; i < GCHAT_CONVERSATION_MAX_IN_FLIGHT + GCHAT_CONVERSATION_MAX_QUEUED; i++)
    g_assert_cmpuint (gchat_conversation_send (net->side[ALICE], "x", 1, net->now, NULL), ==,
                      id_of (net, ALICE, i + 1));
  g_assert_cmpuint (gchat_conversation_send (net->side[ALICE], "x", 1, net->now, &error), ==, 0);
  g_assert_error (error, GCHAT_CONVERSATION_ERROR, GCHAT_CONVERSATION_ERROR_QUEUE_FULL);
}

/* Polls only when the conversation asks to, and returns the datagrams of that poll. */
static GPtrArray *
poll_at_wakeup (GchatConversation *conversation,
                gint64            *now)
{
  GPtrArray *out = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  gint64 next = gchat_conversation_poll (conversation, *now, out);

  if (out->len == 0)
    {
      g_assert_cmpint (next, >, *now);
      g_assert_cmpint (next, <, G_MAXINT64);
      *now = next;
      gchat_conversation_poll (conversation, *now, out);
    }
  return out;
}

static void
test_backoff (Net           *net,
              gconstpointer  data)
{
  const gint64 expected[] = { 200, 200, 200, 400, 800, 1600, 3200, 5000, 5000 };
  gint64 last;
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  gint64 now = net->now;

  send_text (net, ALICE, "are you there?");
  g_clear_pointer (&out, g_ptr_array_unref);
  out = poll_at_wakeup (net->side[ALICE], &now);
  g_assert_cmpuint (out->len, ==, 1);
  last = now;
  for (guint i = 0; i < G_N_ELEMENTS (expected); i++)
    {
      /* The stall at one second wakes the poll once without sending anything. */
      do
        {
          g_clear_pointer (&out, g_ptr_array_unref);
          out = poll_at_wakeup (net->side[ALICE], &now);
        }
      while (out->len == 0);
      g_assert_cmpuint (out->len, ==, 1);
      g_assert_cmpint (now - last, ==, expected[i] * MS);
      last = now;
    }
  g_assert_cmpuint (net->record[ALICE].stalled->len, ==, 1);

  /* The last copy reaches bob, whose ack stops the retransmissions. */
  net->now = now;
  net_receive (net, BOB, g_ptr_array_index (out, 0));
  g_clear_pointer (&out, g_ptr_array_unref);
  out = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_assert_cmpint (gchat_conversation_poll (net->side[BOB], now, out), ==, G_MAXINT64);
  g_assert_cmpuint (out->len, ==, 1);
  net_receive (net, ALICE, g_ptr_array_index (out, 0));
  g_assert_cmpuint (net->record[ALICE].delivered->len, ==, 1);
  g_ptr_array_set_size (out, 0);
  g_assert_cmpint (gchat_conversation_poll (net->side[ALICE], now + 60 * G_USEC_PER_SEC, out), ==,
                   G_MAXINT64);
  g_assert_cmpuint (out->len, ==, 0);
  g_assert_cmpuint (net->record[ALICE].failed->len, ==, 0);
}

static void
run_until (Net    *net,
           gint64  until)
{
  while (net->now < until)
    net_step (net);
}

/* Hands the stalled messages of one side to the other as a relay would. */
static void
relay_stalled (Net *net,
               int  from)
{
  g_autoptr(GArray) stalled = gchat_conversation_take_stalled (net->side[from]);

  for (guint i = 0; i < stalled->len; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GPtrArray) datagrams =
        gchat_conversation_seal_message (net->side[from], g_array_index (stalled, guint64, i),
                                         &error);

      g_assert_no_error (error);
      for (guint j = 0; j < datagrams->len; j++)
        net_receive (net, 1 - from, g_ptr_array_index (datagrams, j));
    }
}

static void
test_stalled_failed (Net           *net,
                     gconstpointer  data)
{
  g_autoptr(GArray) none = NULL;
  gint64 t0 = net->now;

  net->blocked = TRUE;
  send_text (net, ALICE, "one");
  run_until (net, t0 + GCHAT_CONVERSATION_STALL_TIMEOUT - TICK);
  g_assert_cmpuint (net->record[ALICE].stalled->len, ==, 0);
  run_until (net, t0 + GCHAT_CONVERSATION_STALL_TIMEOUT + TICK);
  g_assert_cmpuint (net->record[ALICE].stalled->len, ==, 1);

  /* The relay carries it; bob's ack goes the same way back. */
  relay_stalled (net, ALICE);
  none = gchat_conversation_take_stalled (net->side[ALICE]);
  g_assert_cmpuint (none->len, ==, 0);
  assert_in_order (&net->record[BOB], 1);
  g_assert_cmpstr (g_ptr_array_index (net->record[BOB].texts, 0), ==, "one");
  {
    g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);

    gchat_conversation_poll (net->side[BOB], net->now, out);
    g_assert_cmpuint (out->len, ==, 1);
    net_receive (net, ALICE, g_ptr_array_index (out, 0));
  }
  g_assert_cmpuint (net->record[ALICE].delivered->len, ==, 1);

  /* Message 2 finds no path at all and is given up after the long bound. */
  t0 = net->now;
  send_text (net, ALICE, "two");
  run_until (net, t0 + GCHAT_CONVERSATION_FAIL_TIMEOUT - TICK);
  g_assert_cmpuint (net->record[ALICE].failed->len, ==, 0);
  run_until (net, t0 + GCHAT_CONVERSATION_FAIL_TIMEOUT + 2 * TICK);
  g_assert_cmpuint (net->record[ALICE].failed->len, ==, 1);
  g_assert_cmpuint (g_array_index (net->record[ALICE].failed, guint64, 0), ==,
                    id_of (net, ALICE, 2));
  /* It stalled on the way, but a failed message no longer waits for the relay. */
  g_assert_cmpuint (net->record[ALICE].stalled->len, ==, 2);
  g_clear_pointer (&none, g_array_unref);
  none = gchat_conversation_take_stalled (net->side[ALICE]);
  g_assert_cmpuint (none->len, ==, 0);
  g_assert_cmpuint (gchat_conversation_get_n_pending (net->side[ALICE]), ==, 0);

  /* Message 3 carries a floor past the failed 2, so bob does not wait for 2 at all. */
  net->blocked = FALSE;
  t0 = net->now;
  send_text (net, ALICE, "three");
  run_until (net, t0 + 100 * MS);
  g_assert_cmpuint (net->record[ALICE].delivered->len, ==, 2);
  g_assert_cmpuint (net->record[BOB].messages->len, ==, 2);
  g_assert_cmpuint (g_array_index (net->record[BOB].messages, guint64, 1), ==,
                    id_of (net, ALICE, 3));
  g_assert_cmpstr (g_ptr_array_index (net->record[BOB].texts, 1), ==, "three");
}

static GBytes *
first_datagram (Net *net,
                int  from)
{
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);

  gchat_conversation_poll (net->side[from], net->now, out);
  g_assert_cmpuint (out->len, >=, 1);
  return g_bytes_ref (g_ptr_array_index (out, 0));
}

static void
assert_dropped (Net        *net,
                int         to,
                GBytes     *datagram,
                GQuark      domain,
                int         code)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  gsize len;
  const guint8 *data = g_bytes_get_data (datagram, &len);
  guint delivered = net->record[to].messages->len;

  g_assert_false (gchat_conversation_receive (net->side[to], data, len, net->now, &error));
  g_assert_error (error, domain, code);
  /* Nothing changed: nothing delivered, nothing to answer. */
  g_assert_cmpuint (net->record[to].messages->len, ==, delivered);
  gchat_conversation_poll (net->side[to], net->now, out);
  g_assert_cmpuint (out->len, ==, 0);
}

static void
test_hostile (Net           *net,
              gconstpointer  data)
{
  g_autoptr(GBytes) datagram = NULL;
  g_autoptr(GBytes) forged = NULL;
  g_autoptr(GBytes) foreign = NULL;
  g_autoptr(GchatConversation) aaron = gchat_conversation_new ("aaron", "bob");
  guint8 *bytes;
  gsize len;

  send_text (net, ALICE, "hello bob");
  datagram = first_datagram (net, ALICE);
  net_receive (net, BOB, datagram);
  assert_in_order (&net->record[BOB], 1);
  g_assert_cmpuint (net->record[BOB].drops, ==, 0);
  {
    g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);

    gchat_conversation_poll (net->side[BOB], net->now, out); /* the ack */
  }

  assert_dropped (net, BOB, datagram, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_REPLAY);
  /* Reflected back to its sender: the wrong direction. */
  assert_dropped (net, ALICE, datagram, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_UNKNOWN_KEY);

  bytes = g_bytes_unref_to_data (g_bytes_ref (datagram), &len);
  bytes[len - 1] ^= 1;
  bytes[15]++; /* a fresh seq, so that only the tag can refuse it */
  forged = g_bytes_new_take (bytes, len);
  assert_dropped (net, BOB, forged, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_DECRYPT);

  /* The same pair key used by another pair opens nothing here. */
  g_assert_true (gchat_conversation_set_key (aaron, net->pair_key, net->key_id, 0, net->now, NULL));
  /* Past the seqs bob has seen, so that only the tag can refuse it. */
  for (guint i = 0; i < 3; i++)
    {
      g_clear_pointer (&foreign, g_bytes_unref);
      foreign = gchat_conversation_seal_hello (aaron, NULL);
    }
  assert_dropped (net, BOB, foreign, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_DECRYPT);

  g_clear_pointer (&forged, g_bytes_unref);
  forged = g_bytes_new_static ("G\1\1\1", 4);
  assert_dropped (net, BOB, forged, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_MALFORMED);

  /* Alice's message was delivered once and her state is intact: it still goes through. */
  send_text (net, ALICE, "still here");
  run_until (net, net->now + G_USEC_PER_SEC);
  assert_in_order (&net->record[BOB], 2);
  g_assert_cmpuint (net->record[ALICE].delivered->len, ==, 2);
}

static void
test_hello (Net           *net,
            gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) hello = gchat_conversation_seal_hello (net->side[ALICE], &error);
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr(GchatConversation) lonely = gchat_conversation_new ("alice", "dave");

  g_assert_no_error (error);
  net_receive (net, BOB, hello);
  net_receive (net, BOB, hello); /* a replay gets no second answer */
  g_assert_cmpuint (net->record[BOB].drops, ==, 1);
  gchat_conversation_poll (net->side[BOB], net->now, out);
  g_assert_cmpuint (out->len, ==, 1);
  net_receive (net, ALICE, g_ptr_array_index (out, 0));
  g_assert_cmpuint (net->record[ALICE].hello_answers, ==, 1);
  g_assert_cmpuint (net->record[BOB].messages->len, ==, 0);

  g_assert_null (gchat_conversation_seal_hello (lonely, &error));
  g_assert_error (error, GCHAT_CONVERSATION_ERROR, GCHAT_CONVERSATION_ERROR_NO_KEY);
  g_clear_error (&error);
  g_assert_false (gchat_conversation_receive (lonely, g_bytes_get_data (hello, NULL),
                                              g_bytes_get_size (hello), net->now, &error));
  g_assert_error (error, GCHAT_CONVERSATION_ERROR, GCHAT_CONVERSATION_ERROR_NO_KEY);
}

/* Rekeys whenever a side asks, the other side following a little later, as the server's
 * pair-key reaches the two clients at different times. */
static void
test_rekey (Net           *net,
            gconstpointer  data)
{
  const guint n = 200;
  gint64 bob_due = 0;
  guint rekeys = 0;
  guint queued = 0;

  net->loss = 0.1;
  net->jitter = 5 * MS;
  gchat_conversation_set_rekey_limits (net->side[ALICE], 100, 0);
  g_assert_false (gchat_conversation_needs_rekey (net->side[ALICE], net->now));
  while (net->now < START + 600 * G_USEC_PER_SEC
         && (net->record[BOB].messages->len < n || net->record[ALICE].delivered->len < n))
    {
      if (queued < n)
        {
          g_autofree char *text = make_text (ALICE, queued++);

          send_text (net, ALICE, text);
        }
      if (bob_due == 0 && gchat_conversation_needs_rekey (net->side[ALICE], net->now))
        {
          next_pair_key (net);
          install_key (net, ALICE, net->key_id);
          bob_due = net->now + 300 * MS;
          rekeys++;
        }
      if (bob_due != 0 && net->now >= bob_due)
        {
          install_key (net, BOB, net->key_id);
          bob_due = 0;
        }
      net_step (net);
    }
  g_assert_cmpuint (rekeys, >=, 2);
  assert_in_order (&net->record[BOB], n);
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *expected = make_text (ALICE, i);

      g_assert_cmpstr (g_ptr_array_index (net->record[BOB].texts, i), ==, expected);
    }
  g_assert_cmpuint (net->record[ALICE].delivered->len, ==, n);
  g_assert_cmpuint (net->record[ALICE].failed->len, ==, 0);

  /* Age and expiry ask for a key too. */
  g_assert_true (gchat_conversation_needs_rekey (net->side[BOB],
                                                 net->now + GCHAT_CONVERSATION_REKEY_AGE));
  next_pair_key (net);
  g_assert_true (gchat_conversation_set_key (net->side[BOB], net->pair_key, net->key_id,
                                             net->now + 10 * G_USEC_PER_SEC, net->now, NULL));
  g_assert_false (gchat_conversation_needs_rekey (net->side[BOB], net->now + 9 * G_USEC_PER_SEC));
  g_assert_true (gchat_conversation_needs_rekey (net->side[BOB], net->now + 10 * G_USEC_PER_SEC));
}

static void
test_in_flight_bound (Net           *net,
                      gconstpointer  data)
{
  g_autoptr(GPtrArray) acks = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);

  for (guint i = 0; i < 100; i++)
    send_text (net, ALICE, "queued");

  /* Bob's acks are held back: alice sends the window and nothing more. */
  for (guint round = 0; round < 3; round++)
    {
      g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);

      gchat_conversation_poll (net->side[ALICE], net->now, out);
      g_assert_cmpuint (out->len, ==, round == 0 ? GCHAT_CONVERSATION_MAX_IN_FLIGHT : 0);
      for (guint i = 0; i < out->len; i++)
        net_receive (net, BOB, g_ptr_array_index (out, i));
      gchat_conversation_poll (net->side[BOB], net->now, acks);
      net->now += 50 * MS;
    }
  assert_in_order (&net->record[BOB], GCHAT_CONVERSATION_MAX_IN_FLIGHT);
  g_assert_cmpuint (acks->len, ==, 1);

  /* Retransmissions are acknowledged again but not delivered again. */
  net->now += 200 * MS;
  {
    g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);

    gchat_conversation_poll (net->side[ALICE], net->now, out);
    g_assert_cmpuint (out->len, ==, GCHAT_CONVERSATION_MAX_IN_FLIGHT);
    for (guint i = 0; i < out->len; i++)
      net_receive (net, BOB, g_ptr_array_index (out, i));
    gchat_conversation_poll (net->side[BOB], net->now, acks);
  }
  assert_in_order (&net->record[BOB], GCHAT_CONVERSATION_MAX_IN_FLIGHT);
  g_assert_cmpuint (acks->len, ==, 2);

  net_receive (net, ALICE, g_ptr_array_index (acks, 0));
  g_assert_cmpuint (net->record[ALICE].delivered->len, ==, GCHAT_CONVERSATION_MAX_IN_FLIGHT);
  g_assert_cmpuint (gchat_conversation_get_n_pending (net->side[ALICE]), ==,
                    100 - GCHAT_CONVERSATION_MAX_IN_FLIGHT);
  run_until (net, net->now + G_USEC_PER_SEC);
  assert_in_order (&net->record[BOB], 100);
}

/* Large messages are held back by the datagram bound, not the message bound. */
static void
test_in_flight_fragments (Net           *net,
                          gconstpointer  data)
{
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autofree char *text = g_strnfill (20 * (GCHAT_DATAGRAM_MAX_BODY -
                                            GCHAT_DATAGRAM_DATA_HEADER_SIZE), 'f');

  for (guint i = 0; i < 5; i++)
    send_text (net, ALICE, text);
  gchat_conversation_poll (net->side[ALICE], net->now, out);
  g_assert_cmpuint (out->len, ==, 3 * 20);
  for (guint i = 0; i < out->len; i++)
    net_receive (net, BOB, g_ptr_array_index (out, i));
  assert_in_order (&net->record[BOB], 3);
  g_assert_cmpuint (net->record[BOB].drops, ==, 0);
  run_until (net, net->now + G_USEC_PER_SEC);
  assert_in_order (&net->record[BOB], 5);
  g_assert_cmpuint (net->record[ALICE].delivered->len, ==, 5);
}

/* The epoch of the datagrams a test seals by hand as the peer. */
#define PEER_EPOCH  0x7e57
#define PEER_ID(n)  GCHAT_DATAGRAM_MSG_ID (PEER_EPOCH, n)

/* A hostile bob opens many messages and completes none. */
static void
test_reassembly_bound (Net           *net,
                       gconstpointer  data)
{
  g_autoptr(GchatPeerKeys) mallory = gchat_peer_keys_new (net->pair_key, net->key_id, "bob",
                                                          "alice", NULL);
  guint refused = 0;
  guint too_large = 0;
  guint8 chunk[1100];

  memset (chunk, 'm', sizeof chunk);
  for (guint32 n = 1; n <= 1000; n++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GBytes) body = gchat_datagram_build_data (PEER_ID (n), PEER_ID (1), 0, 64, chunk,
                                                          sizeof chunk, NULL);
      g_autoptr(GBytes) datagram =
        gchat_peer_keys_seal (mallory, GCHAT_DATAGRAM_KIND_DATA, g_bytes_get_data (body, NULL),
                              g_bytes_get_size (body), NULL);

      if (!gchat_conversation_receive (net->side[ALICE], g_bytes_get_data (datagram, NULL),
                                       g_bytes_get_size (datagram), net->now, &error))
        {
          g_assert_error (error, GCHAT_CONVERSATION_ERROR,
                          GCHAT_CONVERSATION_ERROR_OUT_OF_WINDOW);
          refused++;
        }
    }
  /* Only the receive window's worth is held: at most 64 messages of at most 64 KiB. */
  g_assert_cmpuint (refused, ==, 1000 - GCHAT_CONVERSATION_RECEIVE_WINDOW);

  /* A message that would grow past the text limit is refused fragment by fragment. */
  for (guint16 fragment = 1; fragment < 64; fragment++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GBytes) body = gchat_datagram_build_data (PEER_ID (1), PEER_ID (1), fragment, 64,
                                                          chunk, sizeof chunk, NULL);
      g_autoptr(GBytes) datagram =
        gchat_peer_keys_seal (mallory, GCHAT_DATAGRAM_KIND_DATA, g_bytes_get_data (body, NULL),
                              g_bytes_get_size (body), NULL);

      if (!gchat_conversation_receive (net->side[ALICE], g_bytes_get_data (datagram, NULL),
                                       g_bytes_get_size (datagram), net->now, &error))
        {
          g_assert_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_TOO_LARGE);
          too_large++;
        }
    }
  g_assert_cmpuint (too_large, ==, 64 - GCHAT_DATAGRAM_MAX_TEXT / sizeof chunk);
  g_assert_cmpuint (net->record[ALICE].messages->len, ==, 0);
}

/* Seals a one-fragment message as the peer would, to hand-pick what arrives. */
static gboolean
receive_with_floor (Net            *net,
                    GchatPeerKeys  *peer,
                    int             to,
                    guint64         msg_id,
                    guint64         floor,
                    const char     *text,
                    GError        **error)
{
  g_autoptr(GBytes) body = gchat_datagram_build_data (msg_id, floor, 0, 1, (const guint8 *) text,
                                                      strlen (text), NULL);
  g_autoptr(GBytes) datagram =
    gchat_peer_keys_seal (peer, GCHAT_DATAGRAM_KIND_DATA, g_bytes_get_data (body, NULL),
                          g_bytes_get_size (body), NULL);

  return gchat_conversation_receive (net->side[to], g_bytes_get_data (datagram, NULL),
                                     g_bytes_get_size (datagram), net->now, error);
}

/* Message @n of the peer's test epoch, whose floor stays at 1. */
static void
receive_from (Net           *net,
              GchatPeerKeys *peer,
              int            to,
              guint32        n,
              const char    *text)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (receive_with_floor (net, peer, to, PEER_ID (n), PEER_ID (1), text, &error));
  g_assert_no_error (error);
}

static void
poll_side (Net *net,
           int  side)
{
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);

  gchat_conversation_poll (net->side[side], net->now, out);
}

/* Each missing id is waited for the whole gap timeout from when it became the next one. */
static void
test_gap (Net           *net,
          gconstpointer  data)
{
  g_autoptr(GchatPeerKeys) bob = gchat_peer_keys_new (net->pair_key, net->key_id, "bob",
                                                      "alice", NULL);
  Record *record = &net->record[ALICE];
  gint64 t0 = net->now;

  receive_from (net, bob, ALICE, 3, "three");
  receive_from (net, bob, ALICE, 5, "five");
  g_assert_cmpuint (record->messages->len, ==, 0);

  net->now = t0 + 50 * G_USEC_PER_SEC;
  receive_from (net, bob, ALICE, 2, "two");
  net->now = t0 + GCHAT_CONVERSATION_GAP_TIMEOUT - TICK;
  poll_side (net, ALICE);
  g_assert_cmpuint (record->messages->len, ==, 0); /* 1 is missing since t0 */
  net->now += TICK;
  poll_side (net, ALICE);
  g_assert_cmpuint (record->messages->len, ==, 2); /* 1 skipped: 2 and 3 */

  /* 4 became the next one only now, so it gets a whole timeout again. */
  net->now += GCHAT_CONVERSATION_GAP_TIMEOUT - TICK;
  poll_side (net, ALICE);
  g_assert_cmpuint (record->messages->len, ==, 2);
  net->now += TICK;
  poll_side (net, ALICE);
  g_assert_cmpuint (record->messages->len, ==, 3);
  g_assert_cmpuint (g_array_index (record->messages, guint64, 2), ==, PEER_ID (5));
  g_assert_cmpstr (g_ptr_array_index (record->texts, 2), ==, "five");

  /* A skipped id arriving late is acknowledged but never delivered out of order. */
  receive_from (net, bob, ALICE, 4, "four");
  g_assert_cmpuint (record->messages->len, ==, 3);
}

/* ---- Restarts, floors and epochs ---- */

/* One side's program restarts: a new conversation object, and a new pair key for both, since
 * a pair key lives only in memory. */
static void
net_restart (Net *net,
             int  side)
{
  net_start (net, side);
  next_pair_key (net);
  install_key (net, ALICE, net->key_id);
  install_key (net, BOB, net->key_id);
}

static void
run_until_delivered (Net    *net,
                     int     from,
                     guint   n,
                     gint64  limit)
{
  while (net->record[from].delivered->len < n && net->now < limit)
    net_step (net);
  g_assert_cmpuint (net->record[from].delivered->len, ==, n);
}

/* The text of the @i-th message, for the tests that check each text. */
static void
send_numbered (Net   *net,
               int    from,
               guint  i)
{
  g_autofree char *text = make_text (from, i);

  send_text (net, from, text);
}

static void
assert_texts (Net   *net,
              int    to,
              guint  n)
{
  g_assert_cmpuint (net->record[to].texts->len, ==, n);
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *expected = make_text (1 - to, i);

      g_assert_cmpstr (g_ptr_array_index (net->record[to].texts, i), ==, expected);
    }
}

/* A restarted sender numbers from 1 again, in a new epoch: the receiver, still running,
 * delivers the new messages instead of taking them for duplicates. */
static void
test_sender_restart (Net           *net,
                     gconstpointer  data)
{
  guint32 old_epoch = gchat_conversation_get_epoch (net->side[ALICE]);
  guint32 new_epoch;
  Record *record = &net->record[BOB];

  net->loss = 0.2;
  for (guint i = 0; i < 10; i++)
    send_numbered (net, ALICE, i);
  run_until_delivered (net, ALICE, 10, net->now + 30 * G_USEC_PER_SEC);
  run_until (net, net->now + 100 * MS);

  net_restart (net, ALICE);
  new_epoch = gchat_conversation_get_epoch (net->side[ALICE]);
  g_assert_cmpuint (new_epoch, !=, old_epoch);
  for (guint i = 10; i < 20; i++)
    send_numbered (net, ALICE, i);
  run_until_delivered (net, ALICE, 20, net->now + 30 * G_USEC_PER_SEC);
  run_until (net, net->now + G_USEC_PER_SEC);

  assert_texts (net, BOB, 20);
  for (guint i = 0; i < 20; i++)
    g_assert_cmpuint (g_array_index (record->messages, guint64, i), ==,
                      GCHAT_DATAGRAM_MSG_ID (i < 10 ? old_epoch : new_epoch, i % 10 + 1));
  g_assert_cmpuint (net->record[ALICE].failed->len, ==, 0);

  /* Bob's side kept going through alice's restart: his messages reach the new alice. */
  for (guint i = 0; i < 5; i++)
    send_numbered (net, BOB, i);
  run_until_delivered (net, BOB, 5, net->now + 30 * G_USEC_PER_SEC);
  assert_in_order (&net->record[ALICE], 5);
}

/* A restarted receiver knows nothing of the sender's epoch: it starts at the floor the
 * datagrams carry, mid-epoch, and delivers what the sender still waits for. */
static void
test_receiver_restart (Net           *net,
                       gconstpointer  data)
{
  for (guint i = 0; i < 5; i++)
    send_numbered (net, ALICE, i);
  run_until_delivered (net, ALICE, 5, net->now + 10 * G_USEC_PER_SEC);

  /* Bob is gone while alice sends three more. */
  net->blocked = TRUE;
  for (guint i = 5; i < 8; i++)
    send_numbered (net, ALICE, i);
  run_until (net, net->now + 2 * G_USEC_PER_SEC);
  g_assert_cmpuint (net->record[BOB].messages->len, ==, 5);

  net_restart (net, BOB);
  net->blocked = FALSE;
  net->loss = 0.2;
  run_until_delivered (net, ALICE, 8, net->now + 30 * G_USEC_PER_SEC);
  for (guint i = 8; i < 10; i++)
    send_numbered (net, ALICE, i);
  run_until_delivered (net, ALICE, 10, net->now + 30 * G_USEC_PER_SEC);

  /* Each message once, in order, across the restart. */
  assert_in_order (&net->record[BOB], 10);
  assert_texts (net, BOB, 10);
  g_assert_cmpuint (net->record[ALICE].failed->len, ==, 0);
}

static void
test_lossy_long (Net           *net,
                 gconstpointer  data)
{
  net->loss = 0.3;
  net->jitter = 20 * MS;
  run_both_ways (net, 1000, START + G_GINT64_CONSTANT (3600) * G_USEC_PER_SEC);
}

/* The floor moves the receiver past what the sender gave up, at once, and delivers what it
 * held below it, which it had acknowledged. */
static void
test_floor_skip (Net           *net,
                 gconstpointer  data)
{
  g_autoptr(GchatPeerKeys) bob = gchat_peer_keys_new (net->pair_key, net->key_id, "bob",
                                                      "alice", NULL);
  g_autoptr(GError) error = NULL;
  Record *record = &net->record[ALICE];

  receive_from (net, bob, ALICE, 1, "one");
  receive_from (net, bob, ALICE, 3, "three");
  receive_from (net, bob, ALICE, 5, "five");
  g_assert_cmpuint (record->messages->len, ==, 1);

  /* Bob gave 2 and 4 up (3 and 5 are not acknowledged yet as far as he knows). */
  g_assert_true (receive_with_floor (net, bob, ALICE, PEER_ID (6), PEER_ID (3), "six", &error));
  g_assert_no_error (error);
  g_assert_cmpuint (record->messages->len, ==, 2);
  g_assert_true (receive_with_floor (net, bob, ALICE, PEER_ID (7), PEER_ID (7), "seven", &error));
  g_assert_cmpuint (record->messages->len, ==, 5);
  g_assert_cmpuint (g_array_index (record->messages, guint64, 2), ==, PEER_ID (5));
  g_assert_cmpuint (g_array_index (record->messages, guint64, 3), ==, PEER_ID (6));
  g_assert_cmpuint (g_array_index (record->messages, guint64, 4), ==, PEER_ID (7));
  g_assert_cmpstr (g_ptr_array_index (record->texts, 4), ==, "seven");
  /* Nothing waits, so nothing is due for a gap. */
  poll_side (net, ALICE);

  /* An id below the floor is old: acknowledged again, never delivered. */
  receive_from (net, bob, ALICE, 4, "four");
  g_assert_cmpuint (record->messages->len, ==, 5);

  /* A floor in another epoch, or ids with a zero half, are malformed (a floor past its id
   * cannot even be parsed: test-datagram). */
  g_assert_false (receive_with_floor (net, bob, ALICE, PEER_ID (9),
                                      GCHAT_DATAGRAM_MSG_ID (PEER_EPOCH - 1, 9), "x", &error));
  g_assert_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_MALFORMED);
  g_clear_error (&error);
  g_assert_false (receive_with_floor (net, bob, ALICE, PEER_ID (9), PEER_ID (0), "x", &error));
  g_assert_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_MALFORMED);
  g_clear_error (&error);
  g_assert_false (receive_with_floor (net, bob, ALICE, 9, 1, "x", &error));
  g_assert_error (error, GCHAT_DATAGRAM_ERROR, GCHAT_DATAGRAM_ERROR_MALFORMED);
  g_assert_cmpuint (record->messages->len, ==, 5);
}

/* The client takes back what the peer has not acknowledged, to post it to the mailbox. */
static void
test_take_unacknowledged (Net           *net,
                          gconstpointer  data)
{
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr(GPtrArray) acks = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr(GPtrArray) taken = NULL;
  g_autoptr(GArray) stalled = NULL;
  const guint n = GCHAT_CONVERSATION_MAX_IN_FLIGHT + 8;

  for (guint i = 0; i < 3; i++)
    send_numbered (net, ALICE, i);
  run_until_delivered (net, ALICE, 3, net->now + 10 * G_USEC_PER_SEC);

  /* Message 4 reaches bob whole, but his ack is held back; the rest go nowhere. */
  for (guint i = 3; i < 3 + n; i++)
    send_numbered (net, ALICE, i);
  gchat_conversation_poll (net->side[ALICE], net->now, out);
  /* The in-flight window, three of them in three fragments each. */
  g_assert_cmpuint (out->len, ==, GCHAT_CONVERSATION_MAX_IN_FLIGHT + 3 * 2);
  net_receive (net, BOB, g_ptr_array_index (out, 0));
  gchat_conversation_poll (net->side[BOB], net->now, acks);
  g_assert_cmpuint (acks->len, ==, 1);
  net->now += 2 * G_USEC_PER_SEC;
  g_ptr_array_set_size (out, 0);
  gchat_conversation_poll (net->side[ALICE], net->now, out); /* they stall */
  g_assert_cmpuint (net->record[ALICE].stalled->len, ==, GCHAT_CONVERSATION_MAX_IN_FLIGHT);

  taken = gchat_conversation_take_unacknowledged (net->side[ALICE]);
  g_assert_cmpuint (taken->len, ==, n);
  for (guint i = 0; i < n; i++)
    {
      GchatOutgoingMessage *message = g_ptr_array_index (taken, i);
      g_autofree char *expected = make_text (ALICE, 3 + i);

      g_assert_cmpuint (message->msg_id, ==, id_of (net, ALICE, 4 + i));
      g_assert_cmpstr (message->text, ==, expected);
      g_assert_cmpuint (message->len, ==, strlen (expected));
    }
  g_assert_cmpuint (gchat_conversation_get_n_pending (net->side[ALICE]), ==, 0);
  stalled = gchat_conversation_take_stalled (net->side[ALICE]);
  g_assert_cmpuint (stalled->len, ==, 0);
  g_clear_pointer (&taken, g_ptr_array_unref);
  taken = gchat_conversation_take_unacknowledged (net->side[ALICE]);
  g_assert_cmpuint (taken->len, ==, 0);

  /* Bob's late ack changes nothing, and nothing is sent again. */
  net_receive (net, ALICE, g_ptr_array_index (acks, 0));
  g_assert_cmpuint (net->record[ALICE].delivered->len, ==, 3);
  g_ptr_array_set_size (out, 0);
  g_assert_cmpint (gchat_conversation_poll (net->side[ALICE], net->now + 10 * G_USEC_PER_SEC, out),
                   ==, G_MAXINT64);
  g_assert_cmpuint (out->len, ==, 0);

  /* The next message's floor tells bob to stop waiting for the taken ones. */
  send_text (net, ALICE, "after");
  run_until_delivered (net, ALICE, 4, net->now + G_USEC_PER_SEC);
  g_assert_cmpuint (net->record[BOB].messages->len, ==, 5);
  g_assert_cmpuint (g_array_index (net->record[BOB].messages, guint64, 3), ==,
                    id_of (net, ALICE, 4));
  g_assert_cmpuint (g_array_index (net->record[BOB].messages, guint64, 4), ==,
                    id_of (net, ALICE, 4 + n));
  g_assert_cmpstr (g_ptr_array_index (net->record[BOB].texts, 4), ==, "after");
  g_assert_cmpuint (net->record[ALICE].failed->len, ==, 0);
}

/* Ids are epoch:number with a random epoch; tests may choose it. */
static void
test_epoch (Net           *net,
            gconstpointer  data)
{
  g_autoptr(GchatConversation) other = gchat_conversation_new ("alice", "bob");
  g_autoptr(GchatConversation) chosen = gchat_conversation_new ("alice", "bob");
  g_autoptr(GchatOutgoingMessage) copy = NULL;
  g_autoptr(GPtrArray) taken = NULL;

  g_assert_cmpuint (gchat_conversation_get_epoch (net->side[ALICE]), !=, 0);
  g_assert_cmpuint (gchat_conversation_get_epoch (other), !=, 0);
  g_assert_cmpuint (gchat_conversation_get_epoch (other), !=,
                    gchat_conversation_get_epoch (net->side[ALICE]));

  gchat_conversation_set_epoch (chosen, 0xfeedf00d);
  g_assert_cmpuint (gchat_conversation_get_epoch (chosen), ==, 0xfeedf00d);
  g_assert_cmpuint (gchat_conversation_send (chosen, "hi", 2, net->now, NULL), ==,
                    G_GUINT64_CONSTANT (0xfeedf00d00000001));
  g_assert_cmpuint (gchat_conversation_send (chosen, "", 0, net->now, NULL), ==,
                    G_GUINT64_CONSTANT (0xfeedf00d00000002));
  taken = gchat_conversation_take_unacknowledged (chosen);
  g_assert_cmpuint (taken->len, ==, 2);
  copy = gchat_outgoing_message_copy (g_ptr_array_index (taken, 1));
  g_assert_cmpuint (copy->msg_id, ==, G_GUINT64_CONSTANT (0xfeedf00d00000002));
  g_assert_cmpstr (copy->text, ==, "");
  g_assert_true (G_TYPE_IS_BOXED (GCHAT_TYPE_OUTGOING_MESSAGE));
  /* Ids go on after the taken ones. */
  g_assert_cmpuint (gchat_conversation_send (chosen, "x", 1, net->now, NULL), ==,
                    G_GUINT64_CONSTANT (0xfeedf00d00000003));
}

/* A few epochs are kept; the least recently used makes room and delivers what it held. */
static void
test_epochs (Net           *net,
             gconstpointer  data)
{
  g_autoptr(GchatPeerKeys) bob = gchat_peer_keys_new (net->pair_key, net->key_id, "bob",
                                                      "alice", NULL);
  g_autoptr(GError) error = NULL;
  Record *record = &net->record[ALICE];
  const guint32 first = 100;

  /* Epoch 100 holds its message 2 back for the missing 1. */
  g_assert_true (receive_with_floor (net, bob, ALICE, GCHAT_DATAGRAM_MSG_ID (first, 2),
                                     GCHAT_DATAGRAM_MSG_ID (first, 1), "held", &error));
  for (guint32 e = first + 1; e < first + GCHAT_CONVERSATION_MAX_EPOCHS; e++)
    g_assert_true (receive_with_floor (net, bob, ALICE, GCHAT_DATAGRAM_MSG_ID (e, 1),
                                       GCHAT_DATAGRAM_MSG_ID (e, 1), "new", &error));
  g_assert_no_error (error);
  g_assert_cmpuint (record->messages->len, ==, GCHAT_CONVERSATION_MAX_EPOCHS - 1);

  /* Epoch 101 is used again, so 100 is the least recently used. */
  g_assert_true (receive_with_floor (net, bob, ALICE, GCHAT_DATAGRAM_MSG_ID (first + 1, 1),
                                     GCHAT_DATAGRAM_MSG_ID (first + 1, 1), "again", &error));
  g_assert_cmpuint (record->messages->len, ==, GCHAT_CONVERSATION_MAX_EPOCHS - 1);
  g_assert_true (receive_with_floor (net, bob, ALICE, GCHAT_DATAGRAM_MSG_ID (first + 10, 1),
                                     GCHAT_DATAGRAM_MSG_ID (first + 10, 1), "newest", &error));
  g_assert_cmpuint (record->messages->len, ==, GCHAT_CONVERSATION_MAX_EPOCHS + 1);
  g_assert_cmpuint (g_array_index (record->messages, guint64, GCHAT_CONVERSATION_MAX_EPOCHS - 1),
                    ==, GCHAT_DATAGRAM_MSG_ID (first, 2));
  g_assert_cmpstr (g_ptr_array_index (record->texts, GCHAT_CONVERSATION_MAX_EPOCHS - 1), ==,
                   "held");
  g_assert_cmpuint (g_array_index (record->messages, guint64, GCHAT_CONVERSATION_MAX_EPOCHS),
                    ==, GCHAT_DATAGRAM_MSG_ID (first + 10, 1));

  /* Epoch 101 was kept: its message 1 is a duplicate. */
  g_assert_true (receive_with_floor (net, bob, ALICE, GCHAT_DATAGRAM_MSG_ID (first + 1, 1),
                                     GCHAT_DATAGRAM_MSG_ID (first + 1, 1), "again", &error));
  g_assert_cmpuint (record->messages->len, ==, GCHAT_CONVERSATION_MAX_EPOCHS + 1);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func) g_test_add (path, Net, NULL, net_setup, func, net_teardown)
  ADD ("/conversation/lossy", test_lossy);
  ADD ("/conversation/largest", test_largest);
  ADD ("/conversation/send-errors", test_send_errors);
  ADD ("/conversation/backoff", test_backoff);
  ADD ("/conversation/stalled-failed", test_stalled_failed);
  ADD ("/conversation/hostile", test_hostile);
  ADD ("/conversation/hello", test_hello);
  ADD ("/conversation/rekey", test_rekey);
  ADD ("/conversation/in-flight-bound", test_in_flight_bound);
  ADD ("/conversation/in-flight-fragments", test_in_flight_fragments);
  ADD ("/conversation/reassembly-bound", test_reassembly_bound);
  ADD ("/conversation/gap", test_gap);
  ADD ("/conversation/sender-restart", test_sender_restart);
  ADD ("/conversation/receiver-restart", test_receiver_restart);
  ADD ("/conversation/lossy-long", test_lossy_long);
  ADD ("/conversation/floor-skip", test_floor_skip);
  ADD ("/conversation/take-unacknowledged", test_take_unacknowledged);
  ADD ("/conversation/epoch", test_epoch);
  ADD ("/conversation/epochs", test_epochs);
#undef ADD

  return g_test_run ();
}
