/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Tests of both handshake state machines, driven by hand without sockets. */

#include "config.h"

#include <string.h>

#include "gchat-crypto.h"
#include "gchat-frame.h"
#include "gchat-handshake.h"

static GchatRsaKey *server_key;   /* what gchatd holds */
static GchatRsaKey *server_public; /* what a client pinned */
static GchatRsaKey *other_key;     /* some other server */

/* One run of the handshake, with every message kept for tampering. */
typedef struct
{
  GchatHandshake *server;
  GchatHandshake *client;
  GBytes         *hello;
  GBytes         *client_key;
} Run;

static void
run_clear (Run *run)
{
  g_clear_pointer (&run->server, gchat_handshake_free);
  g_clear_pointer (&run->client, gchat_handshake_free);
  g_clear_pointer (&run->hello, g_bytes_unref);
  g_clear_pointer (&run->client_key, g_bytes_unref);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Run, run_clear)

/* Offsets in the hello (PROTOCOL.md §3.2). */
#define HELLO_SERVER_EPH (GCHAT_HANDSHAKE_MAGIC_SIZE + 1 + GCHAT_HANDSHAKE_CHALLENGE_SIZE)
#define HELLO_KEY_LEN    (HELLO_SERVER_EPH + GCHAT_X25519_SIZE)
#define HELLO_KEY        (HELLO_KEY_LEN + 2)

static gsize
hello_size (GchatRsaKey *key)
{
  g_autoptr(GBytes) der = gchat_rsa_key_get_public_der (key);

  return GCHAT_HANDSHAKE_HELLO_FIXED_SIZE + g_bytes_get_size (der);
}

/* A hello made of @hello's first @keep bytes (at most its size), then @extra_len bytes of
 * @extra, with key_len set to @key_len unless it is -1. */
static GBytes *
remake_hello (GBytes       *hello,
              gsize         keep,
              const guint8 *extra,
              gsize         extra_len,
              int           key_len)
{
  GByteArray *array = g_byte_array_new ();

  g_assert_cmpuint (keep, <=, g_bytes_get_size (hello));
  g_byte_array_append (array, g_bytes_get_data (hello, NULL), keep);
  if (extra_len > 0)
    g_byte_array_append (array, extra, extra_len);
  if (key_len >= 0)
    {
      g_assert_cmpuint (array->len, >=, HELLO_KEY);
      array->data[HELLO_KEY_LEN] = (guint8) (key_len >> 8);
      array->data[HELLO_KEY_LEN + 1] = (guint8) key_len;
    }
  return g_byte_array_free_to_bytes (array);
}

static void
run_hello (Run *run)
{
  g_autoptr(GError) error = NULL;

  run->server = gchat_handshake_new_server (server_key);
  run->client = gchat_handshake_new_client (server_public);
  g_assert_true (gchat_handshake_step (run->server, NULL, &run->hello, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (g_bytes_get_size (run->hello), ==, hello_size (server_key));
}

static void
run_client (Run    *run,
            GBytes *hello)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (gchat_handshake_step (run->client, hello, &run->client_key, &error));
  g_assert_no_error (error);
  g_assert_true (gchat_handshake_is_done (run->client));
}

static void
run_full (Run *run)
{
  g_autoptr(GError) error = NULL;
  GBytes *none = NULL;

  run_hello (run);
  run_client (run, run->hello);
  g_assert_true (gchat_handshake_step (run->server, run->client_key, &none, &error));
  g_assert_no_error (error);
  g_assert_null (none);
  g_assert_true (gchat_handshake_is_done (run->server));
}

static GBytes *
payload_of (GBytes *frame)
{
  return g_bytes_new_from_bytes (frame, GCHAT_FRAME_HEADER_SIZE,
                                 g_bytes_get_size (frame) - GCHAT_FRAME_HEADER_SIZE);
}

/* Seals @text on @from and returns whether @to opens it to the same text. */
static gboolean
frame_passes (GchatChannel *from,
              GchatChannel *to,
              const char   *text)
{
  g_autoptr(GBytes) frame = gchat_channel_seal (from, (const guint8 *) text, strlen (text), NULL);
  g_autoptr(GBytes) payload = payload_of (frame);
  g_autoptr(GBytes) plain = gchat_channel_open (to, payload, NULL);

  return plain != NULL && g_bytes_get_size (plain) == strlen (text) &&
         memcmp (g_bytes_get_data (plain, NULL), text, strlen (text)) == 0;
}

static GBytes *
flip_byte (GBytes *bytes,
           gsize   offset)
{
  gsize len;
  guint8 *copy = g_memdup2 (g_bytes_get_data (bytes, &len), g_bytes_get_size (bytes));

  copy[offset] ^= 0x01;
  return g_bytes_new_take (copy, len);
}

static void
test_round_trip (void)
{
  g_auto(Run) run = { 0 };
  g_autoptr(GchatChannel) client = NULL;
  g_autoptr(GchatChannel) server = NULL;

  run_full (&run);
  g_assert_cmpmem (gchat_handshake_get_transcript_hash (run.client), GCHAT_SHA256_SIZE,
                   gchat_handshake_get_transcript_hash (run.server), GCHAT_SHA256_SIZE);
  /* Both sides export the same secrets, one per label. */
  {
    guint8 c1[32], s1[32], c2[32];

    g_assert_true (gchat_handshake_export (run.client, "endpoint", c1, sizeof c1, NULL));
    g_assert_true (gchat_handshake_export (run.server, "endpoint", s1, sizeof s1, NULL));
    g_assert_true (gchat_handshake_export (run.client, "resume", c2, sizeof c2, NULL));
    g_assert_cmpmem (c1, sizeof c1, s1, sizeof s1);
    g_assert_true (memcmp (c1, c2, sizeof c1) != 0);
  }
  client = gchat_handshake_steal_channel (run.client);
  server = gchat_handshake_steal_channel (run.server);
  for (guint i = 0; i < 10; i++)
    {
      g_assert_true (frame_passes (client, server, "{\"type\":\"auth\"}"));
      g_assert_true (frame_passes (server, client, "{\"type\":\"result\"}"));
    }
}

static void
test_fresh_every_time (void)
{
  g_auto(Run) a = { 0 };
  g_auto(Run) b = { 0 };

  run_full (&a);
  run_full (&b);
  /* Fresh challenge and ephemeral keys: no two hellos, no two sessions alike. */
  g_assert_false (g_bytes_equal (a.hello, b.hello));
  g_assert_false (g_bytes_equal (a.client_key, b.client_key));
  g_assert_true (memcmp (gchat_handshake_get_transcript_hash (a.server),
                         gchat_handshake_get_transcript_hash (b.server), GCHAT_SHA256_SIZE) != 0);
}

/* gchatd shares one ephemeral key pair among the hellos of a short moment: the hellos carry it,
 * yet each connection still gets keys of its own (fresh challenge, fresh client keys), and a
 * client key made for one of them does not finish the other. */
static void
test_shared_server_ephemeral (void)
{
  g_autoptr(GError) error = NULL;
  guint8 secret[GCHAT_X25519_SIZE], public_key[GCHAT_X25519_SIZE];
  Run runs[2] = { { 0 }, { 0 } };
  GBytes *none = NULL;

  g_assert_true (gchat_x25519_keypair (secret, public_key, &error));
  g_assert_no_error (error);
  for (guint i = 0; i < 2; i++)
    {
      runs[i].server = gchat_handshake_new_server (server_key);
      runs[i].client = gchat_handshake_new_client (server_public);
      gchat_handshake_set_ephemeral (runs[i].server, secret, public_key);
      g_assert_true (gchat_handshake_step (runs[i].server, NULL, &runs[i].hello, &error));
      g_assert_no_error (error);
      g_assert_cmpmem ((const guint8 *) g_bytes_get_data (runs[i].hello, NULL) + HELLO_SERVER_EPH,
                       GCHAT_X25519_SIZE, public_key, GCHAT_X25519_SIZE);
      run_client (&runs[i], runs[i].hello);
    }
  g_assert_false (g_bytes_equal (runs[0].hello, runs[1].hello));

  /* Crossed: the first connection's client key on another hello with the same key pair gives
   * that server other keys (its transcript differs), so the client's frames do not open. */
  {
    g_autoptr(GchatHandshake) crossed = gchat_handshake_new_server (server_key);
    g_autoptr(GBytes) hello = NULL;
    g_autoptr(GchatChannel) client = NULL;
    g_autoptr(GchatChannel) server = NULL;
    g_autoptr(GchatHandshake) client_copy = gchat_handshake_new_client (server_public);
    g_autoptr(GBytes) client_key = NULL;

    gchat_handshake_set_ephemeral (crossed, secret, public_key);
    g_assert_true (gchat_handshake_step (crossed, NULL, &hello, NULL));
    g_assert_true (gchat_handshake_step (client_copy, runs[0].hello, &client_key, NULL));
    if (gchat_handshake_step (crossed, client_key, &none, NULL))
      {
        client = gchat_handshake_steal_channel (client_copy);
        server = gchat_handshake_steal_channel (crossed);
        g_assert_false (frame_passes (client, server, "{\"type\":\"auth\"}"));
      }
  }

  for (guint i = 0; i < 2; i++)
    {
      g_assert_true (gchat_handshake_step (runs[i].server, runs[i].client_key, &none, &error));
      g_assert_no_error (error);
      g_assert_true (gchat_handshake_is_done (runs[i].server));
    }
  g_assert_true (memcmp (gchat_handshake_get_transcript_hash (runs[0].server),
                         gchat_handshake_get_transcript_hash (runs[1].server),
                         GCHAT_SHA256_SIZE) != 0);
  {
    g_autoptr(GchatChannel) c0 = gchat_handshake_steal_channel (runs[0].client);
    g_autoptr(GchatChannel) s0 = gchat_handshake_steal_channel (runs[0].server);
    g_autoptr(GchatChannel) s1 = gchat_handshake_steal_channel (runs[1].server);

    g_assert_true (frame_passes (c0, s0, "{\"type\":\"auth\"}"));
    g_assert_false (frame_passes (c0, s1, "{\"type\":\"auth\"}"));
  }
  gchat_memzero (secret, sizeof secret);
  run_clear (&runs[0]);
  run_clear (&runs[1]);
}

/* The original's flaw: a recorded login replayed on a new connection logged in as the victim. */
static void
test_replayed_client_key (void)
{
  g_auto(Run) victim = { 0 };
  g_auto(Run) attack = { 0 };
  g_autoptr(GchatChannel) victim_client = NULL;
  g_autoptr(GchatChannel) attack_server = NULL;
  g_autoptr(GBytes) recorded_login = NULL;
  g_autoptr(GBytes) payload = NULL;
  g_autoptr(GBytes) plain = NULL;
  g_autoptr(GError) error = NULL;
  GBytes *none = NULL;
  const char *login = "{\"type\":\"auth\",\"user\":\"alice\",\"password\":\"secret123\"}";

  run_full (&victim);
  victim_client = gchat_handshake_steal_channel (victim.client);
  recorded_login = gchat_channel_seal (victim_client, (const guint8 *) login, strlen (login), NULL);

  /* The attacker opens a new connection and replays the victim's client key and login. The
   * server takes the client key (it cannot know it is old), but derives other keys. */
  run_hello (&attack);
  g_assert_true (gchat_handshake_step (attack.server, victim.client_key, &none, &error));
  g_assert_no_error (error);
  attack_server = gchat_handshake_steal_channel (attack.server);
  payload = payload_of (recorded_login);
  plain = gchat_channel_open (attack_server, payload, &error);
  g_assert_null (plain);
  g_assert_error (error, GCHAT_CHANNEL_ERROR, GCHAT_CHANNEL_ERROR_DECRYPT);
}

/* A hello from one connection and a client key from another never fit together. */
static void
test_spliced (void)
{
  g_auto(Run) one = { 0 };
  g_auto(Run) two = { 0 };
  g_autoptr(GchatChannel) client = NULL;
  g_autoptr(GchatChannel) server = NULL;
  g_autoptr(GError) error = NULL;
  GBytes *none = NULL;

  run_full (&one);
  run_hello (&two);
  run_client (&two, one.hello); /* the client answers the wrong server's hello */
  g_assert_true (gchat_handshake_step (two.server, two.client_key, &none, &error));
  client = gchat_handshake_steal_channel (two.client);
  server = gchat_handshake_steal_channel (two.server);
  g_assert_false (frame_passes (client, server, "hello"));
}

/* Any change to the hello in flight ends in a refusal or in a failed first frame: the challenge
 * and the ephemeral key are in the transcript, the key and its length are checked outright. */
static void
test_tampered_hello (void)
{
  for (gsize offset = GCHAT_HANDSHAKE_MAGIC_SIZE + 1; offset < hello_size (server_key);
       offset += 7)
    {
      g_auto(Run) run = { 0 };
      g_autoptr(GBytes) tampered = NULL;
      g_autoptr(GchatChannel) client = NULL;
      g_autoptr(GchatChannel) server = NULL;
      g_autoptr(GError) error = NULL;
      GBytes *none = NULL;

      run_hello (&run);
      tampered = flip_byte (run.hello, offset);
      if (!gchat_handshake_step (run.client, tampered, &run.client_key, &error))
        {
          if (offset >= HELLO_KEY)
            g_assert_error (error, GCHAT_HANDSHAKE_ERROR, GCHAT_HANDSHAKE_ERROR_SERVER_KEY);
          else if (offset >= HELLO_KEY_LEN)
            g_assert_error (error, GCHAT_HANDSHAKE_ERROR, GCHAT_HANDSHAKE_ERROR_MALFORMED);
          else /* A flipped public key can land on a low-order point: refused outright. */
            g_assert_error (error, GCHAT_HANDSHAKE_ERROR, GCHAT_HANDSHAKE_ERROR_KEY);
          continue;
        }
      g_assert_cmpuint (offset, <, HELLO_KEY_LEN);
      g_assert_true (gchat_handshake_step (run.server, run.client_key, &none, &error));
      client = gchat_handshake_steal_channel (run.client);
      server = gchat_handshake_steal_channel (run.server);
      g_assert_false (frame_passes (client, server, "hello"));
    }
}

static void
test_tampered_client_key (void)
{
  gsize offsets[] = { GCHAT_HANDSHAKE_MAGIC_SIZE + 1, GCHAT_HANDSHAKE_MAGIC_SIZE + 20,
                      GCHAT_HANDSHAKE_MAGIC_SIZE + 1 + GCHAT_X25519_SIZE + 2, 200, 0 };

  offsets[G_N_ELEMENTS (offsets) - 1] = G_MAXSIZE;
  for (guint i = 0; offsets[i] != G_MAXSIZE; i++)
    {
      g_auto(Run) run = { 0 };
      g_autoptr(GBytes) tampered = NULL;
      g_autoptr(GError) error = NULL;
      GBytes *none = NULL;

      run_hello (&run);
      run_client (&run, run.hello);
      tampered = flip_byte (run.client_key, offsets[i]);
      if (gchat_handshake_step (run.server, tampered, &none, &error))
        {
          g_autoptr(GchatChannel) client = gchat_handshake_steal_channel (run.client);
          g_autoptr(GchatChannel) server = gchat_handshake_steal_channel (run.server);

          g_assert_false (frame_passes (client, server, "hello"));
        }
      else
        {
          g_assert_error (error, GCHAT_HANDSHAKE_ERROR, GCHAT_HANDSHAKE_ERROR_KEY);
        }
    }
}

static void
assert_client_refuses (GBytes *hello,
                       int     code)
{
  g_autoptr(GchatHandshake) client = gchat_handshake_new_client (server_public);
  g_autoptr(GError) error = NULL;
  GBytes *out = NULL;

  g_assert_false (gchat_handshake_step (client, hello, &out, &error));
  g_assert_error (error, GCHAT_HANDSHAKE_ERROR, code);
  g_assert_null (out);
  g_assert_false (gchat_handshake_is_done (client));
}

/* A client that pinned another server's key refuses this one's hello, before it wraps anything
 * for a key it does not trust. */
static void
test_wrong_server_key (void)
{
  g_autoptr(GchatHandshake) server = gchat_handshake_new_server (server_key);
  g_autoptr(GchatHandshake) client = gchat_handshake_new_client (other_key);
  g_autoptr(GBytes) hello = NULL;
  g_autoptr(GBytes) client_key = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_true (gchat_handshake_step (server, NULL, &hello, NULL));
  g_assert_false (gchat_handshake_step (client, hello, &client_key, &error));
  g_assert_error (error, GCHAT_HANDSHAKE_ERROR, GCHAT_HANDSHAKE_ERROR_SERVER_KEY);
  g_assert_null (client_key);
  g_assert_false (gchat_handshake_is_done (client));
}

/* The other way round: another server (say, one that took over the address) says hello with its
 * own key to a client that pinned ours. Its key is genuine, the hello well formed, and still
 * the client refuses it; so does a hello whose key bytes an attacker replaced in flight. */
static void
test_other_server_hello (void)
{
  g_autoptr(GchatHandshake) impostor = gchat_handshake_new_server (other_key);
  g_autoptr(GBytes) impostor_hello = NULL;
  g_autoptr(GBytes) other_der = gchat_rsa_key_get_public_der (other_key);
  g_autoptr(GBytes) spliced = NULL;
  g_auto(Run) run = { 0 };

  g_assert_true (gchat_handshake_step (impostor, NULL, &impostor_hello, NULL));
  g_assert_cmpuint (g_bytes_get_size (impostor_hello), ==, hello_size (other_key));
  assert_client_refuses (impostor_hello, GCHAT_HANDSHAKE_ERROR_SERVER_KEY);

  run_hello (&run);
  spliced = remake_hello (run.hello, HELLO_KEY, g_bytes_get_data (other_der, NULL),
                          g_bytes_get_size (other_der), (int) g_bytes_get_size (other_der));
  assert_client_refuses (spliced, GCHAT_HANDSHAKE_ERROR_SERVER_KEY);
}

/* The server's stolen RSA key opens K, yet recorded traffic stays closed: the X25519 secrets of
 * both sides were wiped, and K alone is only half of the key material. */
static void
test_forward_secrecy (void)
{
  g_auto(Run) recorded = { 0 };
  g_autoptr(GchatChannel) client = NULL;
  g_autoptr(GBytes) frame = NULL;
  g_autoptr(GchatHandshake) thief = NULL;
  g_autoptr(GchatChannel) stolen = NULL;
  g_autoptr(GBytes) payload = NULL;
  g_autoptr(GBytes) plain = NULL;
  g_autoptr(GBytes) thief_hello = NULL;
  GBytes *none = NULL;

  run_full (&recorded);
  client = gchat_handshake_steal_channel (recorded.client);
  frame = gchat_channel_seal (client, (const guint8 *) "secret", 6, NULL);

  /* The thief holds the private key and both recorded messages; the best it can do is run the
   * server side again, with an ephemeral key of its own. */
  thief = gchat_handshake_new_server (server_key);
  g_assert_true (gchat_handshake_step (thief, NULL, &thief_hello, NULL));
  g_assert_true (gchat_handshake_step (thief, recorded.client_key, &none, NULL));
  stolen = gchat_handshake_steal_channel (thief);
  payload = payload_of (frame);
  plain = gchat_channel_open (stolen, payload, NULL);
  g_assert_null (plain);
}

/* Resumption (PROTOCOL.md §3.5) */

static const guint8 ticket_key[GCHAT_TICKET_KEY_SIZE] = "0123456789abcdef0123456789abcde";
#define TICKET_KEY_ID 7

/* A ticket for "alice", valid from @issued to @expires, with a fixed secret. */
static GBytes *
make_ticket (gint64       issued,
             gint64       expires,
             GchatTicket *ticket)
{
  g_autoptr(GError) error = NULL;
  GBytes *sealed;

  memset (ticket, 0, sizeof *ticket);
  g_strlcpy (ticket->user, "alice", sizeof ticket->user);
  ticket->issued = issued;
  ticket->expires = expires;
  memset (ticket->account, 0xa5, sizeof ticket->account);
  gchat_random_bytes (ticket->secret, sizeof ticket->secret);
  sealed = gchat_ticket_seal (ticket_key, TICKET_KEY_ID, ticket, &error);
  g_assert_no_error (error);
  g_assert_nonnull (sealed);
  g_assert_cmpuint (g_bytes_get_size (sealed), >=, GCHAT_TICKET_MIN_SIZE);
  g_assert_cmpuint (g_bytes_get_size (sealed), <=, GCHAT_TICKET_MAX_SIZE);
  return sealed;
}

/* The server's side up to the open ticket: hello, then the client's resumption message. */
static void
run_resume_until_ticket (Run          *run,
                         GBytes       *ticket,
                         const guint8 *secret)
{
  g_autoptr(GError) error = NULL;
  GBytes *none = NULL;

  run->server = gchat_handshake_new_server (server_key);
  run->client = gchat_handshake_new_client_resume (server_public, ticket, secret);
  g_assert_true (gchat_handshake_step (run->server, NULL, &run->hello, &error));
  run_client (run, run->hello);
  g_assert_true (gchat_handshake_is_resume_message (run->client_key));
  g_assert_true (gchat_handshake_step (run->server, run->client_key, &none, &error));
  g_assert_no_error (error);
  g_assert_null (none);
  g_assert_false (gchat_handshake_is_done (run->server));
  g_assert_true (gchat_handshake_is_resumption (run->server));
}

static void
test_resume_round_trip (void)
{
  g_auto(Run) run = { 0 };
  g_autoptr(GBytes) ticket = NULL;
  g_autoptr(GchatChannel) client = NULL;
  g_autoptr(GchatChannel) server = NULL;
  g_autoptr(GError) error = NULL;
  GchatTicket issued, opened;
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  guint8 c1[32], s1[32];

  ticket = make_ticket (now, now + 3600, &issued);
  run_resume_until_ticket (&run, ticket, issued.secret);
  g_assert_true (g_bytes_equal (gchat_handshake_get_ticket (run.server), ticket));
  g_assert_true (gchat_ticket_open (ticket_key, TICKET_KEY_ID,
                                    gchat_handshake_get_ticket (run.server), now, &opened,
                                    &error));
  g_assert_no_error (error);
  g_assert_cmpstr (opened.user, ==, "alice");
  g_assert_cmpint (opened.issued, ==, now);
  g_assert_cmpint (opened.expires, ==, now + 3600);
  g_assert_cmpmem (opened.account, sizeof opened.account, issued.account, sizeof issued.account);
  g_assert_true (gchat_handshake_server_resume (run.server, opened.secret, &error));
  g_assert_no_error (error);
  g_assert_true (gchat_handshake_is_done (run.server));

  g_assert_cmpmem (gchat_handshake_get_transcript_hash (run.client), GCHAT_SHA256_SIZE,
                   gchat_handshake_get_transcript_hash (run.server), GCHAT_SHA256_SIZE);
  g_assert_true (gchat_handshake_export (run.client, "endpoint", c1, sizeof c1, NULL));
  g_assert_true (gchat_handshake_export (run.server, "endpoint", s1, sizeof s1, NULL));
  g_assert_cmpmem (c1, sizeof c1, s1, sizeof s1);
  client = gchat_handshake_steal_channel (run.client);
  server = gchat_handshake_steal_channel (run.server);
  for (guint i = 0; i < 10; i++)
    {
      g_assert_true (frame_passes (client, server, "{\"type\":\"list\"}"));
      g_assert_true (frame_passes (server, client, "{\"type\":\"result\"}"));
    }
}

/* A client that holds the ticket but not its secret gets no keys: the binder is refused. */
static void
test_resume_wrong_binder (void)
{
  g_auto(Run) run = { 0 };
  g_autoptr(GBytes) ticket = NULL;
  g_autoptr(GError) error = NULL;
  GchatTicket issued, opened;
  guint8 guessed[GCHAT_RESUME_SECRET_SIZE];
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;

  ticket = make_ticket (now, now + 3600, &issued);
  gchat_random_bytes (guessed, sizeof guessed);
  run_resume_until_ticket (&run, ticket, guessed);
  g_assert_true (gchat_ticket_open (ticket_key, TICKET_KEY_ID,
                                    gchat_handshake_get_ticket (run.server), now, &opened, NULL));
  g_assert_false (gchat_handshake_server_resume (run.server, opened.secret, &error));
  g_assert_error (error, GCHAT_HANDSHAKE_ERROR, GCHAT_HANDSHAKE_ERROR_TICKET);
  g_assert_false (gchat_handshake_is_done (run.server));
}

/* A resumption message replayed on a new connection: the binder covers the old hello. */
static void
test_resume_replayed (void)
{
  g_auto(Run) run = { 0 };
  g_autoptr(GchatHandshake) server = gchat_handshake_new_server (server_key);
  g_autoptr(GBytes) ticket = NULL;
  g_autoptr(GBytes) hello = NULL;
  g_autoptr(GError) error = NULL;
  GchatTicket issued, opened;
  GBytes *none = NULL;
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;

  ticket = make_ticket (now, now + 3600, &issued);
  run_resume_until_ticket (&run, ticket, issued.secret);
  g_assert_true (gchat_handshake_step (server, NULL, &hello, NULL));
  g_assert_true (gchat_handshake_step (server, run.client_key, &none, NULL));
  g_assert_true (gchat_ticket_open (ticket_key, TICKET_KEY_ID, gchat_handshake_get_ticket (server),
                                    now, &opened, NULL));
  g_assert_false (gchat_handshake_server_resume (server, opened.secret, &error));
  g_assert_error (error, GCHAT_HANDSHAKE_ERROR, GCHAT_HANDSHAKE_ERROR_TICKET);
}

static void
test_resume_expired_ticket (void)
{
  g_autoptr(GBytes) ticket = NULL;
  g_autoptr(GError) error = NULL;
  GchatTicket issued, opened;
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;

  ticket = make_ticket (now - 7200, now - 1, &issued);
  g_assert_false (gchat_ticket_open (ticket_key, TICKET_KEY_ID, ticket, now, &opened, &error));
  g_assert_error (error, GCHAT_HANDSHAKE_ERROR, GCHAT_HANDSHAKE_ERROR_TICKET);
  g_assert_cmpstr (opened.user, ==, "");
  /* Valid the second before it expires; with @now 0 the caller checks expiry itself. */
  g_assert_true (gchat_ticket_open (ticket_key, TICKET_KEY_ID, ticket, now - 2, &opened, NULL));
  g_assert_true (gchat_ticket_open (ticket_key, TICKET_KEY_ID, ticket, 0, &opened, NULL));
  g_assert_cmpint (opened.expires, ==, now - 1);
}

/* Every byte of a ticket is covered: flipping any one refuses it. */
static void
test_resume_tampered_ticket (void)
{
  g_autoptr(GBytes) ticket = NULL;
  GchatTicket issued, opened;
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;

  ticket = make_ticket (now, now + 3600, &issued);
  for (gsize i = 0; i < g_bytes_get_size (ticket); i++)
    {
      g_autoptr(GBytes) bad = flip_byte (ticket, i);
      g_autoptr(GError) error = NULL;

      g_assert_false (gchat_ticket_open (ticket_key, TICKET_KEY_ID, bad, now, &opened, &error));
      g_assert_error (error, GCHAT_HANDSHAKE_ERROR, GCHAT_HANDSHAKE_ERROR_TICKET);
    }
  /* Truncated or extended. */
  for (gsize len = 0; len < g_bytes_get_size (ticket) + 8; len += 7)
    {
      g_autoptr(GBytes) bad = NULL;
      g_autofree guint8 *data = g_malloc0 (len + 1);

      memcpy (data, g_bytes_get_data (ticket, NULL), MIN (len, g_bytes_get_size (ticket)));
      bad = g_bytes_new (data, len);
      if (len != g_bytes_get_size (ticket))
        g_assert_false (gchat_ticket_open (ticket_key, TICKET_KEY_ID, bad, now, &opened, NULL));
    }
}

static void
test_resume_wrong_ticket_key (void)
{
  g_autoptr(GBytes) ticket = NULL;
  g_autoptr(GError) error = NULL;
  guint8 other[GCHAT_TICKET_KEY_SIZE];
  GchatTicket issued, opened;
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;

  ticket = make_ticket (now, now + 3600, &issued);
  memcpy (other, ticket_key, sizeof other);
  other[0] ^= 1;
  g_assert_false (gchat_ticket_open (other, TICKET_KEY_ID, ticket, now, &opened, &error));
  g_assert_error (error, GCHAT_HANDSHAKE_ERROR, GCHAT_HANDSHAKE_ERROR_TICKET);
  g_clear_error (&error);
  g_assert_false (gchat_ticket_open (ticket_key, TICKET_KEY_ID + 1, ticket, now, &opened, &error));
  g_assert_error (error, GCHAT_HANDSHAKE_ERROR, GCHAT_HANDSHAKE_ERROR_TICKET);
}

/* A thief with the ticket key and a recorded resumption opens the ticket and learns the
 * secret, yet the recorded traffic stays closed: the X25519 secrets of both sides were wiped,
 * and the secret alone is only half of the key material. */
static void
test_resume_forward_secrecy (void)
{
  g_auto(Run) recorded = { 0 };
  g_autoptr(GBytes) ticket = NULL;
  g_autoptr(GchatChannel) server = NULL;
  g_autoptr(GBytes) frame = NULL;
  g_autoptr(GchatHandshake) thief = NULL;
  g_autoptr(GchatHandshake) replay = NULL;
  g_autoptr(GchatChannel) stolen = NULL;
  g_autoptr(GBytes) payload = NULL;
  g_autoptr(GBytes) plain = NULL;
  g_autoptr(GBytes) thief_msg = NULL;
  g_autoptr(GBytes) replay_hello = NULL;
  GchatTicket issued, opened;
  GBytes *none = NULL;
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;

  ticket = make_ticket (now, now + 3600, &issued);
  run_resume_until_ticket (&recorded, ticket, issued.secret);
  g_assert_true (gchat_ticket_open (ticket_key, TICKET_KEY_ID,
                                    gchat_handshake_get_ticket (recorded.server), now, &opened,
                                    NULL));
  g_assert_true (gchat_handshake_server_resume (recorded.server, opened.secret, NULL));
  server = gchat_handshake_steal_channel (recorded.server);
  frame = gchat_channel_seal (server, (const guint8 *) "secret", 6, NULL);

  /* The thief plays the client on the recorded hello with the stolen secret: its keys need
   * its own X25519 key, not the recorded client's, and open nothing recorded. */
  thief = gchat_handshake_new_client_resume (server_public, ticket, opened.secret);
  g_assert_true (gchat_handshake_step (thief, recorded.hello, &thief_msg, NULL));
  stolen = gchat_handshake_steal_channel (thief);
  payload = payload_of (frame);
  plain = gchat_channel_open (stolen, payload, NULL);
  g_assert_null (plain);

  /* Nor can it replay the recorded message to a server: the binder covers the old hello. */
  replay = gchat_handshake_new_server (server_key);
  g_assert_true (gchat_handshake_step (replay, NULL, &replay_hello, NULL));
  g_assert_true (gchat_handshake_step (replay, recorded.client_key, &none, NULL));
  g_assert_false (gchat_handshake_server_resume (replay, opened.secret, NULL));
}

static void
test_resume_malformed (void)
{
  g_auto(Run) run = { 0 };
  g_autoptr(GBytes) ticket = NULL;
  GchatTicket issued;
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  gsize len;

  ticket = make_ticket (now, now + 3600, &issued);
  run.server = gchat_handshake_new_server (server_key);
  run.client = gchat_handshake_new_client_resume (server_public, ticket, issued.secret);
  g_assert_true (gchat_handshake_step (run.server, NULL, &run.hello, NULL));
  run_client (&run, run.hello);
  len = g_bytes_get_size (run.client_key);
  for (gsize keep = 0; keep < len; keep += 5)
    {
      g_autoptr(GchatHandshake) server = gchat_handshake_new_server (server_key);
      g_autoptr(GBytes) hello = NULL;
      g_autoptr(GBytes) cut = g_bytes_new_from_bytes (run.client_key, 0, keep);
      g_autoptr(GError) error = NULL;
      GBytes *none = NULL;

      g_assert_true (gchat_handshake_step (server, NULL, &hello, NULL));
      g_assert_false (gchat_handshake_step (server, cut, &none, &error));
      g_assert_error (error, GCHAT_HANDSHAKE_ERROR, GCHAT_HANDSHAKE_ERROR_MALFORMED);
    }
  /* Out of turn: resuming a server that got no resumption message. */
  {
    g_autoptr(GchatHandshake) server = gchat_handshake_new_server (server_key);
    g_autoptr(GError) error = NULL;

    g_assert_false (gchat_handshake_server_resume (server, issued.secret, &error));
    g_assert_error (error, GCHAT_HANDSHAKE_ERROR, GCHAT_HANDSHAKE_ERROR_STATE);
  }
}

static void
test_malformed_hello (void)
{
  g_auto(Run) run = { 0 };
  const guint8 *hello;
  g_autoptr(GBytes) bad_magic = NULL;
  g_autoptr(GBytes) tiny = g_bytes_new ("GC", 2);
  g_autoptr(GBytes) empty = g_bytes_new (NULL, 0);
  g_autofree guint8 *v2 = NULL;
  g_autoptr(GBytes) version_two = NULL;
  g_autoptr(GBytes) version_two_short = NULL;
  g_autofree guint8 *zero_key = NULL;
  g_autoptr(GBytes) zero_key_hello = NULL;
  gsize len;

  run_hello (&run);
  hello = g_bytes_get_data (run.hello, &len);
  bad_magic = flip_byte (run.hello, 0);
  v2 = g_memdup2 (hello, len);
  v2[GCHAT_HANDSHAKE_MAGIC_SIZE] = 2;
  version_two = g_bytes_new (v2, len);
  /* Another version's hello may have another size: the version is what the user is told. */
  version_two_short = g_bytes_new (v2, GCHAT_HANDSHAKE_MAGIC_SIZE + 1);
  /* The all-zero public key is a low-order point: the shared secret would be zero. */
  zero_key = g_memdup2 (hello, len);
  memset (zero_key + HELLO_SERVER_EPH, 0, GCHAT_X25519_SIZE);
  zero_key_hello = g_bytes_new (zero_key, len);

  assert_client_refuses (empty, GCHAT_HANDSHAKE_ERROR_MALFORMED);
  assert_client_refuses (tiny, GCHAT_HANDSHAKE_ERROR_MALFORMED);
  assert_client_refuses (bad_magic, GCHAT_HANDSHAKE_ERROR_MALFORMED);
  assert_client_refuses (version_two, GCHAT_HANDSHAKE_ERROR_VERSION);
  assert_client_refuses (version_two_short, GCHAT_HANDSHAKE_ERROR_VERSION);
  assert_client_refuses (zero_key_hello, GCHAT_HANDSHAKE_ERROR_KEY);
}

/* Every prefix of a genuine hello, and the hello with bytes after it, whether key_len says so
 * or not: the client refuses them all, and so does gchat_handshake_hello_get_server_key(). */
static void
test_hello_truncated_or_extended (void)
{
  g_auto(Run) run = { 0 };
  guint8 junk[GCHAT_FRAME_MAX_HANDSHAKE_PAYLOAD];
  gsize len;

  memset (junk, 0x30, sizeof junk);
  run_hello (&run);
  len = g_bytes_get_size (run.hello);
  for (gsize keep = 0; keep < len; keep++)
    {
      g_autoptr(GBytes) truncated = remake_hello (run.hello, keep, NULL, 0, -1);
      g_autoptr(GError) error = NULL;
      g_autoptr(GchatRsaKey) key = gchat_handshake_hello_get_server_key (truncated, &error);

      g_assert_null (key);
      g_assert_error (error, GCHAT_HANDSHAKE_ERROR, GCHAT_HANDSHAKE_ERROR_MALFORMED);
      assert_client_refuses (truncated, GCHAT_HANDSHAKE_ERROR_MALFORMED);
    }
  for (gsize extra = 1; len + extra <= sizeof junk; extra += extra < 16 ? 1 : 61)
    {
      g_autoptr(GBytes) longer = remake_hello (run.hello, len, junk, extra, -1);
      g_autoptr(GBytes) longer_key = NULL;
      g_autoptr(GError) error = NULL;
      g_autoptr(GchatRsaKey) key = gchat_handshake_hello_get_server_key (longer, &error);

      g_assert_null (key);
      g_assert_error (error, GCHAT_HANDSHAKE_ERROR, GCHAT_HANDSHAKE_ERROR_MALFORMED);
      assert_client_refuses (longer, GCHAT_HANDSHAKE_ERROR_MALFORMED);
      g_clear_error (&error);

      /* The key with junk after it, key_len and all: still not the key, nor any key. */
      if (len - HELLO_KEY + extra > GCHAT_HANDSHAKE_HELLO_MAX_KEY_SIZE)
        continue;
      longer_key = remake_hello (run.hello, len, junk, extra, (int) (len - HELLO_KEY + extra));
      key = gchat_handshake_hello_get_server_key (longer_key, &error);
      g_assert_null (key);
      g_assert_error (error, GCHAT_HANDSHAKE_ERROR, GCHAT_HANDSHAKE_ERROR_MALFORMED);
      assert_client_refuses (longer_key, GCHAT_HANDSHAKE_ERROR_SERVER_KEY);
    }
}

/* key_len outside 64..800 is refused before the key is looked at, even when the hello really
 * is that long. */
static void
test_hello_key_len_bounds (void)
{
  const int bad[] = { 0, 1, GCHAT_HANDSHAKE_HELLO_MIN_KEY_SIZE - 1,
                      GCHAT_HANDSHAKE_HELLO_MAX_KEY_SIZE + 1, 0x7fff, 0xffff };
  guint8 junk[0xffff];
  g_auto(Run) run = { 0 };

  G_STATIC_ASSERT (GCHAT_HANDSHAKE_HELLO_MAX_SIZE <= GCHAT_FRAME_MAX_HANDSHAKE_PAYLOAD);
  memset (junk, 0x30, sizeof junk);
  run_hello (&run);
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GBytes) sized = remake_hello (run.hello, HELLO_KEY, junk, bad[i], bad[i]);
      g_autoptr(GBytes) unsized = remake_hello (run.hello, g_bytes_get_size (run.hello), NULL,
                                                0, bad[i]);
      g_autoptr(GError) error = NULL;
      g_autoptr(GchatRsaKey) key = gchat_handshake_hello_get_server_key (sized, &error);

      g_assert_null (key);
      g_assert_error (error, GCHAT_HANDSHAKE_ERROR, GCHAT_HANDSHAKE_ERROR_MALFORMED);
      assert_client_refuses (sized, GCHAT_HANDSHAKE_ERROR_MALFORMED);
      assert_client_refuses (unsized, GCHAT_HANDSHAKE_ERROR_MALFORMED);
    }
}

/* What a trust-on-first-use client does: take the key out of the hello, show its fingerprint,
 * then run its handshake with that key. */
static void
test_hello_get_server_key (void)
{
  g_auto(Run) run = { 0 };
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatRsaKey) key = NULL;
  g_autoptr(GBytes) der = NULL;
  g_autoptr(GBytes) expected_der = gchat_rsa_key_get_public_der (server_key);
  g_autofree char *fingerprint = NULL;
  g_autofree char *expected = gchat_rsa_key_get_fingerprint (server_key);
  guint8 digest[GCHAT_SHA256_SIZE];
  GBytes *none = NULL;

  run.server = gchat_handshake_new_server (server_key);
  g_assert_true (gchat_handshake_step (run.server, NULL, &run.hello, NULL));
  key = gchat_handshake_hello_get_server_key (run.hello, &error);
  g_assert_no_error (error);
  g_assert_nonnull (key);
  g_assert_false (gchat_rsa_key_has_private (key));
  der = gchat_rsa_key_get_public_der (key);
  g_assert_true (g_bytes_equal (der, expected_der));
  g_assert_cmpmem (g_bytes_get_data (run.hello, NULL) + HELLO_KEY,
                   g_bytes_get_size (run.hello) - HELLO_KEY,
                   g_bytes_get_data (expected_der, NULL), g_bytes_get_size (expected_der));
  fingerprint = gchat_rsa_key_get_fingerprint (key);
  g_assert_cmpstr (fingerprint, ==, expected);
  /* The fingerprint is the SHA-256 of the key bytes as sent. */
  gchat_sha256 (g_bytes_get_data (run.hello, NULL) + HELLO_KEY,
                g_bytes_get_size (run.hello) - HELLO_KEY, digest);
  g_clear_pointer (&fingerprint, g_free);
  fingerprint = gchat_fingerprint_format (digest);
  g_assert_cmpstr (fingerprint, ==, expected);

  run.client = gchat_handshake_new_client (key);
  run_client (&run, run.hello);
  g_assert_true (gchat_handshake_step (run.server, run.client_key, &none, &error));
  g_assert_no_error (error);
  g_assert_true (gchat_handshake_is_done (run.server));
}

/* Bytes of the right size that are not an RSA key, or another version's hello. */
static void
test_hello_get_server_key_refuses (void)
{
  g_auto(Run) run = { 0 };
  guint8 junk[300];
  g_autoptr(GBytes) not_a_key = NULL;
  g_autoptr(GBytes) version_two = NULL;
  g_autofree guint8 *v2 = NULL;
  g_autoptr(GchatRsaKey) key = NULL;
  g_autoptr(GError) error = NULL;
  gsize len;

  memset (junk, 0x30, sizeof junk);
  run_hello (&run);
  not_a_key = remake_hello (run.hello, HELLO_KEY, junk, sizeof junk, sizeof junk);
  key = gchat_handshake_hello_get_server_key (not_a_key, &error);
  g_assert_null (key);
  g_assert_error (error, GCHAT_HANDSHAKE_ERROR, GCHAT_HANDSHAKE_ERROR_MALFORMED);
  g_clear_error (&error);
  assert_client_refuses (not_a_key, GCHAT_HANDSHAKE_ERROR_SERVER_KEY);

  v2 = g_memdup2 (g_bytes_get_data (run.hello, &len), g_bytes_get_size (run.hello));
  v2[GCHAT_HANDSHAKE_MAGIC_SIZE] = 2;
  version_two = g_bytes_new (v2, len);
  key = gchat_handshake_hello_get_server_key (version_two, &error);
  g_assert_null (key);
  g_assert_error (error, GCHAT_HANDSHAKE_ERROR, GCHAT_HANDSHAKE_ERROR_VERSION);
}

static void
assert_server_refuses (GBytes *client_key,
                       int     code)
{
  g_autoptr(GchatHandshake) server = gchat_handshake_new_server (server_key);
  g_autoptr(GBytes) hello = NULL;
  g_autoptr(GError) error = NULL;
  GBytes *out = NULL;

  g_assert_true (gchat_handshake_step (server, NULL, &hello, NULL));
  g_assert_false (gchat_handshake_step (server, client_key, &out, &error));
  g_assert_error (error, GCHAT_HANDSHAKE_ERROR, code);
  g_assert_false (gchat_handshake_is_done (server));
}

static void
test_malformed_client_key (void)
{
  g_auto(Run) run = { 0 };
  gsize len;
  const guint8 *key;
  g_autoptr(GBytes) truncated = NULL;
  g_autoptr(GBytes) bad_magic = NULL;
  g_autoptr(GBytes) bad_length = NULL;
  g_autoptr(GBytes) empty = g_bytes_new (NULL, 0);
  g_autofree guint8 *v9 = NULL;
  g_autoptr(GBytes) version_nine = NULL;
  g_autofree guint8 *zero_key = NULL;
  g_autoptr(GBytes) zero_key_msg = NULL;

  run_hello (&run);
  run_client (&run, run.hello);
  key = g_bytes_get_data (run.client_key, &len);
  truncated = g_bytes_new (key, len - 1);
  bad_magic = flip_byte (run.client_key, 1);
  bad_length = flip_byte (run.client_key, GCHAT_HANDSHAKE_MAGIC_SIZE + 1 + GCHAT_X25519_SIZE);
  v9 = g_memdup2 (key, len);
  v9[GCHAT_HANDSHAKE_MAGIC_SIZE] = 9;
  version_nine = g_bytes_new (v9, len);
  zero_key = g_memdup2 (key, len);
  memset (zero_key + GCHAT_HANDSHAKE_MAGIC_SIZE + 1, 0, GCHAT_X25519_SIZE);
  zero_key_msg = g_bytes_new (zero_key, len);

  assert_server_refuses (empty, GCHAT_HANDSHAKE_ERROR_MALFORMED);
  assert_server_refuses (truncated, GCHAT_HANDSHAKE_ERROR_MALFORMED);
  assert_server_refuses (bad_magic, GCHAT_HANDSHAKE_ERROR_MALFORMED);
  assert_server_refuses (bad_length, GCHAT_HANDSHAKE_ERROR_MALFORMED);
  assert_server_refuses (version_nine, GCHAT_HANDSHAKE_ERROR_VERSION);
  /* The wrapped K is genuine, but the client's X25519 key is a low-order point. */
  assert_server_refuses (zero_key_msg, GCHAT_HANDSHAKE_ERROR_KEY);
}

static void
test_out_of_turn (void)
{
  g_auto(Run) run = { 0 };
  g_autoptr(GError) error = NULL;
  g_autoptr(GchatHandshake) server = gchat_handshake_new_server (server_key);
  g_autoptr(GchatHandshake) client = gchat_handshake_new_client (server_public);
  GBytes *out = NULL;

  run_full (&run);
  /* A server that has not said hello takes no client key. */
  g_assert_false (gchat_handshake_step (server, run.client_key, &out, &error));
  g_assert_error (error, GCHAT_HANDSHAKE_ERROR, GCHAT_HANDSHAKE_ERROR_STATE);
  g_clear_error (&error);
  /* A client needs a hello to start. */
  g_assert_false (gchat_handshake_step (client, NULL, &out, &error));
  g_assert_error (error, GCHAT_HANDSHAKE_ERROR, GCHAT_HANDSHAKE_ERROR_STATE);
  g_clear_error (&error);
  /* A finished handshake takes nothing more. */
  g_assert_false (gchat_handshake_step (run.server, run.client_key, &out, &error));
  g_assert_error (error, GCHAT_HANDSHAKE_ERROR, GCHAT_HANDSHAKE_ERROR_STATE);
}

/* The hello and the client key both fit the pre-authentication frame limit. */
static void
test_fits_handshake_frames (void)
{
  g_auto(Run) run = { 0 };

  run_full (&run);
  g_assert_cmpuint (g_bytes_get_size (run.hello), <=, GCHAT_FRAME_MAX_HANDSHAKE_PAYLOAD);
  /* RSA-3072's DER SubjectPublicKeyInfo is 422 bytes. */
  g_assert_cmpuint (g_bytes_get_size (run.hello), ==, GCHAT_HANDSHAKE_HELLO_FIXED_SIZE + 422);
  g_assert_cmpuint (g_bytes_get_size (run.client_key), <=, GCHAT_FRAME_MAX_HANDSHAKE_PAYLOAD);
  g_assert_cmpuint (g_bytes_get_size (run.client_key), ==, 4 + 1 + 32 + 2 + 384);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) der = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);
  g_assert_true (gchat_crypto_init (&error));

  /* One full-size key for the whole program: RSA-3072 generation takes a while. */
  server_key = gchat_rsa_key_generate (GCHAT_RSA_KEY_BITS, &error);
  g_assert_no_error (error);
  der = gchat_rsa_key_get_public_der (server_key);
  server_public = gchat_rsa_key_new_from_public_der (der, &error);
  g_assert_no_error (error);
  other_key = gchat_rsa_key_generate (GCHAT_RSA_KEY_MIN_BITS, &error);
  g_assert_no_error (error);

  g_test_add_func ("/handshake/round-trip", test_round_trip);
  g_test_add_func ("/handshake/fresh-every-time", test_fresh_every_time);
  g_test_add_func ("/handshake/shared-server-ephemeral", test_shared_server_ephemeral);
  g_test_add_func ("/handshake/replayed-client-key", test_replayed_client_key);
  g_test_add_func ("/handshake/spliced", test_spliced);
  g_test_add_func ("/handshake/tampered-hello", test_tampered_hello);
  g_test_add_func ("/handshake/tampered-client-key", test_tampered_client_key);
  g_test_add_func ("/handshake/wrong-server-key", test_wrong_server_key);
  g_test_add_func ("/handshake/forward-secrecy", test_forward_secrecy);
  g_test_add_func ("/handshake/other-server-hello", test_other_server_hello);
  g_test_add_func ("/handshake/malformed-hello", test_malformed_hello);
  g_test_add_func ("/handshake/hello-truncated-or-extended", test_hello_truncated_or_extended);
  g_test_add_func ("/handshake/hello-key-len-bounds", test_hello_key_len_bounds);
  g_test_add_func ("/handshake/hello-get-server-key", test_hello_get_server_key);
  g_test_add_func ("/handshake/hello-get-server-key-refuses", test_hello_get_server_key_refuses);
  g_test_add_func ("/handshake/malformed-client-key", test_malformed_client_key);
  g_test_add_func ("/handshake/out-of-turn", test_out_of_turn);
  g_test_add_func ("/handshake/fits-handshake-frames", test_fits_handshake_frames);
  g_test_add_func ("/handshake/resume/round-trip", test_resume_round_trip);
  g_test_add_func ("/handshake/resume/wrong-binder", test_resume_wrong_binder);
  g_test_add_func ("/handshake/resume/replayed", test_resume_replayed);
  g_test_add_func ("/handshake/resume/expired-ticket", test_resume_expired_ticket);
  g_test_add_func ("/handshake/resume/tampered-ticket", test_resume_tampered_ticket);
  g_test_add_func ("/handshake/resume/wrong-ticket-key", test_resume_wrong_ticket_key);
  g_test_add_func ("/handshake/resume/forward-secrecy", test_resume_forward_secrecy);
  g_test_add_func ("/handshake/resume/malformed", test_resume_malformed);
  status = g_test_run ();

  g_clear_object (&server_key);
  g_clear_object (&server_public);
  g_clear_object (&other_key);
  gchat_crypto_shutdown ();
  return status;
}
