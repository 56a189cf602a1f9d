/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Tests of GchatdThrottle: backoff per name and per address, decay, memory bounds and clocks. */

#include "config.h"

#include <string.h>

#include <glib.h>

#include "gchatd-throttle.h"

#define SEC G_GINT64_CONSTANT (1000000)
/* An arbitrary monotonic "now" well away from zero. */
#define T0 (G_GINT64_CONSTANT (1000000) * SEC)

/* The seconds a locked-out caller is told to wait, or 0 when it may go ahead. */
static guint
retry_after (GchatdThrottle *throttle,
             const char     *name,
             const char     *address,
             gint64          now)
{
  guint    retry = G_MAXUINT;
  gboolean allowed = gchatd_throttle_check (throttle, name, address, now, &retry);

  g_assert_true (allowed == (retry == 0));
  return retry;
}

static void
test_name_backoff (void)
{
  g_autoptr (GchatdThrottle) throttle = gchatd_throttle_new ();
  gint64 now = T0;
  guint  expected = GCHATD_THROTTLE_INITIAL_DELAY_S;

  /* The free failures cost nothing. */
  for (guint i = 0; i < GCHATD_THROTTLE_NAME_FREE_FAILURES; i++)
    {
      g_assert_cmpuint (retry_after (throttle, "alice", NULL, now), ==, 0);
      gchatd_throttle_failure (throttle, "alice", NULL, now);
    }
  g_assert_cmpuint (retry_after (throttle, "alice", NULL, now), ==, 0);

  /* Then each failure doubles the wait, 1, 2, 4 … up to the cap, where it stays. */
  for (guint i = 0; i < 16; i++)
    {
      gchatd_throttle_failure (throttle, "alice", NULL, now);
      g_assert_cmpuint (retry_after (throttle, "alice", NULL, now), ==, expected);
      g_assert_cmpuint (retry_after (throttle, "alice", NULL, now + SEC / 2), ==, expected);
      g_assert_cmpuint (retry_after (throttle, "alice", NULL, now + expected * SEC - 1), ==, 1);
      now += expected * SEC;
      g_assert_cmpuint (retry_after (throttle, "alice", NULL, now), ==, 0);
      expected = MIN (expected * 2, GCHATD_THROTTLE_NAME_MAX_DELAY_S);
    }
  g_assert_cmpuint (expected, ==, GCHATD_THROTTLE_NAME_MAX_DELAY_S);

  /* Somebody else is not concerned, and NULL for both is always allowed. */
  gchatd_throttle_failure (throttle, "alice", NULL, now);
  g_assert_cmpuint (retry_after (throttle, "bob", NULL, now), ==, 0);
  g_assert_cmpuint (retry_after (throttle, NULL, NULL, now), ==, 0);
  g_assert_cmpuint (retry_after (throttle, "alice", NULL, now), ==,
                    GCHATD_THROTTLE_NAME_MAX_DELAY_S);
  g_assert_false (gchatd_throttle_check (throttle, "alice", NULL, now, NULL));
}

static void
test_case_insensitive (void)
{
  g_autoptr (GchatdThrottle) throttle = gchatd_throttle_new ();
  const char *alices[] = { "alice", "Alice", "ALICE", "aLiCe" };
  const char *umlauts[] = { "ärger", "ÄRGER", "A\xcc\x88rger" /* decomposed Ä */ };

  for (guint i = 0; i <= GCHATD_THROTTLE_NAME_FREE_FAILURES; i++)
    gchatd_throttle_failure (throttle, alices[i % G_N_ELEMENTS (alices)], NULL, T0);
  for (guint i = 0; i <= GCHATD_THROTTLE_NAME_FREE_FAILURES; i++)
    gchatd_throttle_failure (throttle, umlauts[i % G_N_ELEMENTS (umlauts)], NULL, T0);

  g_assert_cmpuint (gchatd_throttle_get_n_names (throttle), ==, 2);
  for (guint i = 0; i < G_N_ELEMENTS (alices); i++)
    g_assert_cmpuint (retry_after (throttle, alices[i], NULL, T0), ==, 1);
  for (guint i = 0; i < G_N_ELEMENTS (umlauts); i++)
    g_assert_cmpuint (retry_after (throttle, umlauts[i], NULL, T0), ==, 1);
  g_assert_cmpuint (retry_after (throttle, "alicE2", NULL, T0), ==, 0);

  /* Bytes that are not UTF-8 still give a stable, case-insensitive key. */
  for (guint i = 0; i <= GCHATD_THROTTLE_NAME_FREE_FAILURES; i++)
    gchatd_throttle_failure (throttle, i % 2 ? "X\xff" : "x\xff", NULL, T0);
  g_assert_cmpuint (retry_after (throttle, "X\xff", NULL, T0), ==, 1);
}

static void
test_success_clears_name (void)
{
  g_autoptr (GchatdThrottle) throttle = gchatd_throttle_new ();
  gint64 now = T0;

  for (guint i = 0; i < GCHATD_THROTTLE_NAME_FREE_FAILURES + 3; i++)
    gchatd_throttle_failure (throttle, "carol", "192.0.2.7", now);
  g_assert_cmpuint (retry_after (throttle, "carol", "192.0.2.7", now), ==, 4);

  /* The log-in goes through once the wait is over, and the slate is clean. */
  now += 4 * SEC;
  g_assert_cmpuint (retry_after (throttle, "carol", "192.0.2.7", now), ==, 0);
  gchatd_throttle_success (throttle, "CAROL", "192.0.2.7", now);
  g_assert_cmpuint (gchatd_throttle_get_n_names (throttle), ==, 0);
  for (guint i = 0; i < GCHATD_THROTTLE_NAME_FREE_FAILURES; i++)
    gchatd_throttle_failure (throttle, "carol", "192.0.2.7", now);
  g_assert_cmpuint (retry_after (throttle, "carol", "192.0.2.7", now), ==, 0);

  /* The address keeps its count: 6 + 3 failures so far, so one more makes ten free ones and
   * the one after locks the address, whoever logged in from it. */
  g_assert_cmpuint (gchatd_throttle_get_n_addresses (throttle), ==, 1);
  gchatd_throttle_failure (throttle, "dave", "192.0.2.7", now);
  g_assert_cmpuint (retry_after (throttle, "erin", "192.0.2.7", now), ==, 0);
  gchatd_throttle_failure (throttle, "dave", "192.0.2.7", now);
  g_assert_cmpuint (retry_after (throttle, "erin", "192.0.2.7", now), ==, 1);

  /* A success for an unknown name, or with no name, is harmless. */
  gchatd_throttle_success (throttle, "nobody", NULL, now);
  gchatd_throttle_success (throttle, NULL, NULL, now);
}

/* One address trying many names is held back by the address rule. */
static void
test_address (void)
{
  g_autoptr (GchatdThrottle) throttle = gchatd_throttle_new ();
  gint64 now = T0;
  guint  expected = GCHATD_THROTTLE_INITIAL_DELAY_S;
  guint  n = 0;

  for (guint i = 0; i < GCHATD_THROTTLE_ADDRESS_FREE_FAILURES; i++)
    {
      g_autofree char *name = g_strdup_printf ("user%u", n++);

      g_assert_cmpuint (retry_after (throttle, name, "198.51.100.20", now), ==, 0);
      gchatd_throttle_failure (throttle, name, "198.51.100.20", now);
    }
  g_assert_cmpuint (retry_after (throttle, "fresh", "198.51.100.20", now), ==, 0);

  for (guint i = 0; i < 12; i++)
    {
      g_autofree char *name = g_strdup_printf ("user%u", n++);

      gchatd_throttle_failure (throttle, name, "198.51.100.20", now);
      /* A name never tried before is held back all the same… */
      g_assert_cmpuint (retry_after (throttle, "fresh", "198.51.100.20", now), ==, expected);
      /* …but not from another address, nor when the address is not known. */
      g_assert_cmpuint (retry_after (throttle, "fresh", "198.51.100.21", now), ==, 0);
      g_assert_cmpuint (retry_after (throttle, "fresh", NULL, now), ==, 0);
      now += expected * SEC;
      expected = MIN (expected * 2, GCHATD_THROTTLE_ADDRESS_MAX_DELAY_S);
    }
  g_assert_cmpuint (expected, ==, GCHATD_THROTTLE_ADDRESS_MAX_DELAY_S);

  /* The address check is also made with no name. */
  gchatd_throttle_failure (throttle, "last", "198.51.100.20", now);
  g_assert_cmpuint (retry_after (throttle, NULL, "198.51.100.20", now), ==,
                    GCHATD_THROTTLE_ADDRESS_MAX_DELAY_S);

  /* The longer of the two waits wins. */
  for (guint i = 0; i < GCHATD_THROTTLE_NAME_FREE_FAILURES + 1; i++)
    gchatd_throttle_failure (throttle, "target", NULL, now);
  g_assert_cmpuint (retry_after (throttle, "target", "198.51.100.20", now), ==,
                    GCHATD_THROTTLE_ADDRESS_MAX_DELAY_S);
  g_assert_cmpuint (retry_after (throttle, "target", "198.51.100.99", now), ==, 1);
}

/* Locks @address out with failures under names never used twice. */
static void
lock_address (GchatdThrottle *throttle,
              const char     *address,
              gint64          now)
{
  for (guint i = 0; i <= GCHATD_THROTTLE_ADDRESS_FREE_FAILURES; i++)
    {
      g_autofree char *name = g_strdup_printf ("%s-%u", address, i);

      gchatd_throttle_failure (throttle, name, address, now);
    }
}

static void
test_ipv6_prefix (void)
{
  g_autoptr (GchatdThrottle) throttle = gchatd_throttle_new ();

  /* Failures spread over one /64 count together. */
  for (guint i = 0; i <= GCHATD_THROTTLE_ADDRESS_FREE_FAILURES; i++)
    {
      g_autofree char *address = NULL;

      address = g_strdup_printf ("2001:db8:1:2:%x::%x", (i * 7919) & 0xffff, i + 1);

      gchatd_throttle_failure (throttle, NULL, address, T0);
    }
  g_assert_cmpuint (gchatd_throttle_get_n_addresses (throttle), ==, 1);
  g_assert_cmpuint (retry_after (throttle, NULL, "2001:db8:1:2::1", T0), ==, 1);
  g_assert_cmpuint (retry_after (throttle, NULL, "2001:0DB8:0001:0002:ffff:ffff:ffff:ffff", T0),
                    ==, 1);
  /* The next /64 is another subscriber. */
  g_assert_cmpuint (retry_after (throttle, NULL, "2001:db8:1:3::1", T0), ==, 0);
  g_assert_cmpuint (retry_after (throttle, NULL, "2001:db8:1::1", T0), ==, 0);

  /* IPv4 is per address, however it is written. */
  lock_address (throttle, "192.0.2.1", T0);
  g_assert_cmpuint (retry_after (throttle, NULL, "192.0.2.1", T0), ==, 1);
  g_assert_cmpuint (retry_after (throttle, NULL, "::ffff:192.0.2.1", T0), ==, 1);
  g_assert_cmpuint (retry_after (throttle, NULL, "192.0.2.2", T0), ==, 0);
  lock_address (throttle, "::ffff:192.0.2.3", T0);
  g_assert_cmpuint (retry_after (throttle, NULL, "192.0.2.3", T0), ==, 1);

  /* Anything else is a key as it stands. */
  lock_address (throttle, "unix:/run/gchatd.sock", T0);
  g_assert_cmpuint (retry_after (throttle, NULL, "unix:/run/gchatd.sock", T0), ==, 1);
  g_assert_cmpuint (retry_after (throttle, NULL, "unix:/run/other.sock", T0), ==, 0);
}

static void
test_expiry (void)
{
  g_autoptr (GchatdThrottle) throttle = gchatd_throttle_new ();
  gint64 decay = GCHATD_THROTTLE_DECAY_S * SEC;

  for (guint i = 0; i < GCHATD_THROTTLE_NAME_FREE_FAILURES + 2; i++)
    gchatd_throttle_failure (throttle, "frank", "203.0.113.5", T0);
  gchatd_throttle_failure (throttle, "grace", "203.0.113.6", T0 + 10 * SEC);
  g_assert_cmpuint (retry_after (throttle, "frank", NULL, T0), ==, 2);

  /* Kept until the decay time has passed since the last failure… */
  g_assert_cmpuint (gchatd_throttle_expire (throttle, T0 + decay - 1), ==, 0);
  g_assert_cmpuint (gchatd_throttle_get_n_names (throttle), ==, 2);
  g_assert_cmpuint (gchatd_throttle_get_n_addresses (throttle), ==, 2);

  /* …then forgotten, name and address; the later records stay a little longer. */
  g_assert_cmpuint (gchatd_throttle_expire (throttle, T0 + decay), ==, 2);
  g_assert_cmpuint (gchatd_throttle_get_n_names (throttle), ==, 1);
  g_assert_cmpuint (gchatd_throttle_get_n_addresses (throttle), ==, 1);
  g_assert_cmpuint (gchatd_throttle_expire (throttle, T0 + decay + 10 * SEC), ==, 2);
  g_assert_cmpuint (gchatd_throttle_get_n_names (throttle), ==, 0);
  g_assert_cmpuint (gchatd_throttle_get_n_addresses (throttle), ==, 0);

  /* Without expire(), a decayed record counts as forgotten all the same: the free failures
   * are free again. */
  for (guint i = 0; i < GCHATD_THROTTLE_NAME_FREE_FAILURES + 5; i++)
    gchatd_throttle_failure (throttle, "heidi", NULL, T0);
  g_assert_cmpuint (retry_after (throttle, "heidi", NULL, T0), ==, 16);
  for (guint i = 0; i < GCHATD_THROTTLE_NAME_FREE_FAILURES; i++)
    gchatd_throttle_failure (throttle, "heidi", NULL, T0 + decay);
  g_assert_cmpuint (retry_after (throttle, "heidi", NULL, T0 + decay), ==, 0);
  gchatd_throttle_failure (throttle, "heidi", NULL, T0 + decay);
  g_assert_cmpuint (retry_after (throttle, "heidi", NULL, T0 + decay), ==, 1);
}

static void
test_memory_bound (void)
{
  g_autoptr (GchatdThrottle) throttle = gchatd_throttle_new ();
  guint extra = 1000;
  gint64 now = T0;

  /* A lock-out in progress, then a flood of single failures from other names and addresses. */
  for (guint i = 0; i < GCHATD_THROTTLE_NAME_FREE_FAILURES + 1; i++)
    gchatd_throttle_failure (throttle, "victim", NULL, now);
  lock_address (throttle, "198.51.100.1", now);

  for (guint i = 0; i < GCHATD_THROTTLE_MAX_NAMES + extra; i++)
    {
      char name[32];

      g_snprintf (name, sizeof name, "flood%u", i);
      gchatd_throttle_failure (throttle, name, NULL, now);
    }
  for (guint i = 0; i < GCHATD_THROTTLE_MAX_ADDRESSES + extra; i++)
    {
      char address[32];

      g_snprintf (address, sizeof address, "10.%u.%u.%u", i >> 16 & 0xff, i >> 8 & 0xff,
                  i & 0xff);
      gchatd_throttle_failure (throttle, NULL, address, now);
    }

  g_assert_cmpuint (gchatd_throttle_get_n_names (throttle), ==, GCHATD_THROTTLE_MAX_NAMES);
  g_assert_cmpuint (gchatd_throttle_get_n_addresses (throttle), ==,
                    GCHATD_THROTTLE_MAX_ADDRESSES);
  /* The flood pushed out its own oldest records, not the lock-outs. */
  g_assert_cmpuint (retry_after (throttle, "victim", NULL, now), ==, 1);
  g_assert_cmpuint (retry_after (throttle, NULL, "198.51.100.1", now), ==, 1);

  /* Huge names and addresses are tracked by a bounded prefix. */
  {
    g_autofree char *huge = g_strnfill (1 << 20, 'n');

    for (guint i = 0; i <= GCHATD_THROTTLE_NAME_FREE_FAILURES; i++)
      {
        huge[(1 << 20) - 1] = (char) ('a' + i);
        gchatd_throttle_failure (throttle, huge, huge, now);
      }
    g_assert_cmpuint (retry_after (throttle, huge, NULL, now), ==, 1);
    g_assert_cmpuint (gchatd_throttle_get_n_names (throttle), ==, GCHATD_THROTTLE_MAX_NAMES);
  }

  /* Everything goes once the decay time has passed. */
  gchatd_throttle_expire (throttle, now + GCHATD_THROTTLE_DECAY_S * SEC);
  g_assert_cmpuint (gchatd_throttle_get_n_names (throttle), ==, 0);
  g_assert_cmpuint (gchatd_throttle_get_n_addresses (throttle), ==, 0);
}

/* A clock that goes backwards (it should not, but a test harness or a bug might) neither locks
 * anybody out for longer than the cap nor crashes. */
static void
test_clock_backwards (void)
{
  g_autoptr (GchatdThrottle) throttle = gchatd_throttle_new ();
  gint64 back = 5 * SEC;
  guint  retry;

  for (guint i = 0; i < 40; i++)
    gchatd_throttle_failure (throttle, "ivan", "192.0.2.50", T0);
  g_assert_cmpuint (retry_after (throttle, "ivan", NULL, T0), ==,
                    GCHATD_THROTTLE_NAME_MAX_DELAY_S);

  /* Far in the "past": still at most the cap… */
  retry = retry_after (throttle, "ivan", "192.0.2.50", back);
  g_assert_cmpuint (retry, >, 0);
  g_assert_cmpuint (retry, <=, GCHATD_THROTTLE_NAME_MAX_DELAY_S);
  /* …and over once that much time has passed on the new clock. */
  g_assert_cmpuint (retry_after (throttle, "ivan", "192.0.2.50",
                                 back + GCHATD_THROTTLE_NAME_MAX_DELAY_S * SEC), ==, 0);

  /* Failures and expiry keep working on the new clock. */
  gchatd_throttle_failure (throttle, "judy", "192.0.2.51", T0);
  g_assert_cmpuint (gchatd_throttle_expire (throttle, back), ==, 0);
  gchatd_throttle_failure (throttle, "ivan", NULL, back + 1000 * SEC);
  g_assert_cmpuint (retry_after (throttle, "ivan", NULL, back + 1000 * SEC), ==,
                    GCHATD_THROTTLE_NAME_MAX_DELAY_S);
  g_assert_cmpuint (retry_after (throttle, NULL, "192.0.2.51", 0), ==, 0);
  g_assert_cmpuint (gchatd_throttle_expire (throttle, back + 1000 * SEC
                                            + GCHATD_THROTTLE_DECAY_S * SEC), ==, 4);
  g_assert_cmpuint (gchatd_throttle_get_n_names (throttle), ==, 0);
  g_assert_cmpuint (gchatd_throttle_get_n_addresses (throttle), ==, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/throttle/name-backoff", test_name_backoff);
  g_test_add_func ("/throttle/case-insensitive", test_case_insensitive);
  g_test_add_func ("/throttle/success-clears-name", test_success_clears_name);
  g_test_add_func ("/throttle/address", test_address);
  g_test_add_func ("/throttle/ipv6-prefix", test_ipv6_prefix);
  g_test_add_func ("/throttle/expiry", test_expiry);
  g_test_add_func ("/throttle/memory-bound", test_memory_bound);
  g_test_add_func ("/throttle/clock-backwards", test_clock_backwards);

  return g_test_run ();
}
