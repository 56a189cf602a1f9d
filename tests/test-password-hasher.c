/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Tests of GchatdPasswordHasher: results, bounds on work, cancellation, threads and timing. */

#include "config.h"

#include <string.h>

#include <gio/gio.h>

#include "gchat-crypto.h"
#include "gchatd-password-hasher.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

/* Cheap parameters for everything but the one test at the real cost. */
static const GchatArgon2Params small_params = { 1024, 1, 1 };
/* Slow enough (tens of milliseconds) that what is queued behind it is still waiting. */
static const GchatArgon2Params slow_params = { GCHAT_ARGON2_DEFAULT_MEMORY_KIB * 4, 2, 1 };

#define PASSWORD       "correct horse battery staple"
#define OTHER_PASSWORD "correct horse battery stapler"

/* What one request ended with, filled in by its callback. */
typedef struct {
  gboolean done;
  gboolean ok;
  GError  *error;
  guint8   salt[GCHATD_PASSWORD_HASHER_SALT_SIZE];
  guint8   hash[GCHATD_PASSWORD_HASHER_HASH_SIZE];
  GThread *thread;
  gint64   finished_us;
} Result;

static void
result_clear (Result *result)
{
  g_clear_error (&result->error);
}

static void
hash_cb (GObject      *source,
         GAsyncResult *res,
         gpointer      user_data)
{
  Result *result = user_data;

  g_assert_false (result->done);
  result->ok = gchatd_password_hasher_hash_finish (GCHATD_PASSWORD_HASHER (source), res,
                                                   result->salt, result->hash, &result->error);
  g_assert_true (result->ok == (result->error == NULL));
  result->thread = g_thread_self ();
  result->finished_us = g_get_monotonic_time ();
  result->done = TRUE;
}

static void
verify_cb (GObject      *source,
           GAsyncResult *res,
           gpointer      user_data)
{
  Result *result = user_data;

  g_assert_false (result->done);
  result->ok = gchatd_password_hasher_verify_finish (GCHATD_PASSWORD_HASHER (source), res,
                                                     &result->error);
  g_assert_true (result->error == NULL || !result->ok);
  result->thread = g_thread_self ();
  result->finished_us = g_get_monotonic_time ();
  result->done = TRUE;
}

static void
wait_for (Result *result)
{
  while (!result->done)
    g_main_context_iteration (NULL, TRUE);
}

static void
hash_sync (GchatdPasswordHasher    *hasher,
           const GchatArgon2Params *params,
           const char              *password,
           Result                  *result)
{
  gchatd_password_hasher_hash_async (hasher, params, password, strlen (password), NULL, hash_cb,
                                     result);
  g_assert_false (result->done);
  wait_for (result);
}

static void
verify_sync (GchatdPasswordHasher    *hasher,
             const GchatArgon2Params *params,
             const Result            *record,
             const char              *password,
             Result                  *result)
{
  gchatd_password_hasher_verify_async (hasher, params, record->salt, sizeof record->salt,
                                       record->hash, sizeof record->hash, password,
                                       strlen (password), NULL, verify_cb, result);
  g_assert_false (result->done);
  wait_for (result);
}

static void
verify_dummy_sync (GchatdPasswordHasher    *hasher,
                   const GchatArgon2Params *params,
                   const char              *password,
                   Result                  *result)
{
  gchatd_password_hasher_verify_dummy_async (hasher, params, password, strlen (password), NULL,
                                             verify_cb, result);
  g_assert_false (result->done);
  wait_for (result);
}

static void
test_hash_verify (void)
{
  g_autoptr (GchatdPasswordHasher) hasher = gchatd_password_hasher_new (2, 8);
  g_autoptr (GError) error = NULL;
  Result record = { 0 }, again = { 0 }, right = { 0 }, wrong = { 0 }, dummy = { 0 };
  guint8 expected[GCHATD_PASSWORD_HASHER_HASH_SIZE];
  GchatdPasswordHasherStats stats;

  hash_sync (hasher, &small_params, PASSWORD, &record);
  g_assert_no_error (record.error);
  g_assert_true (record.ok);
  g_assert_true (record.thread == g_thread_self ());

  /* The record is plain Argon2id of the password under the returned salt. */
  g_assert_true (gchat_argon2id (&small_params, (const guint8 *) PASSWORD, strlen (PASSWORD),
                                 record.salt, sizeof record.salt, NULL, 0, NULL, 0, expected,
                                 sizeof expected, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (expected, sizeof expected, record.hash, sizeof record.hash);

  /* Every record gets a fresh salt. */
  hash_sync (hasher, &small_params, PASSWORD, &again);
  g_assert_true (again.ok);
  g_assert_false (memcmp (record.salt, again.salt, sizeof record.salt) == 0);
  g_assert_false (memcmp (record.hash, again.hash, sizeof record.hash) == 0);

  verify_sync (hasher, &small_params, &record, PASSWORD, &right);
  g_assert_no_error (right.error);
  g_assert_true (right.ok);

  verify_sync (hasher, &small_params, &record, OTHER_PASSWORD, &wrong);
  g_assert_no_error (wrong.error);
  g_assert_false (wrong.ok);

  verify_dummy_sync (hasher, &small_params, PASSWORD, &dummy);
  g_assert_no_error (dummy.error);
  g_assert_false (dummy.ok);

  gchatd_password_hasher_get_stats (hasher, &stats);
  g_assert_cmpuint (stats.completed, ==, 5);
  g_assert_cmpuint (stats.running, ==, 0);
  g_assert_cmpuint (stats.queued, ==, 0);
  g_assert_cmpuint (stats.rejected, ==, 0);
  g_assert_cmpuint (stats.cancelled, ==, 0);

  result_clear (&record);
  result_clear (&again);
  result_clear (&right);
  result_clear (&wrong);
  result_clear (&dummy);
}

static void
test_defaults (void)
{
  g_autoptr (GchatdPasswordHasher) hasher = NULL;
  guint n_cpus = MIN (g_get_num_processors (), GCHATD_PASSWORD_HASHER_MAX_PARALLEL_LIMIT);

  hasher = gchatd_password_hasher_new (0, GCHATD_PASSWORD_HASHER_DEFAULT_MAX_QUEUED);
  g_assert_cmpuint (gchatd_password_hasher_get_max_parallel (hasher), ==, n_cpus);
  g_assert_cmpuint (gchatd_password_hasher_get_max_queued (hasher), ==, 64);
  g_clear_object (&hasher);

  hasher = g_object_new (GCHATD_TYPE_PASSWORD_HASHER, NULL);
  g_assert_cmpuint (gchatd_password_hasher_get_max_parallel (hasher), ==, n_cpus);
  g_assert_cmpuint (gchatd_password_hasher_get_max_queued (hasher), ==,
                    GCHATD_PASSWORD_HASHER_DEFAULT_MAX_QUEUED);
}

typedef struct {
  GchatdPasswordHasher *hasher;
  Result                result;
} IdleCall;

/* Refuses a request from inside a main-loop callback, where the daemon makes its calls. */
static gboolean
refuse_in_idle_cb (gpointer user_data)
{
  IdleCall *call = user_data;

  gchatd_password_hasher_hash_async (call->hasher, &small_params, "", 0, NULL, hash_cb,
                                     &call->result);
  g_assert_false (call->result.done);
  return G_SOURCE_REMOVE;
}

/* Bad lengths and parameters fail (or, for verify, do not match) without hashing, and the
 * answer still comes from the main loop, not from inside the call. */
static void
test_invalid (void)
{
  g_autoptr (GchatdPasswordHasher) hasher = gchatd_password_hasher_new (1, 1);
  g_autofree char *long_password = g_strnfill (GCHATD_PASSWORD_HASHER_MAX_PASSWORD_SIZE + 1, 'x');
  GchatArgon2Params bad_params = { 1, 1, 1 };
  guint8 salt[GCHATD_PASSWORD_HASHER_MAX_SALT_SIZE + 1] = { 0 };
  guint8 hash[GCHATD_PASSWORD_HASHER_HASH_SIZE] = { 0 };
  Result r[7] = { 0 };
  GchatdPasswordHasherStats stats;

  gchatd_password_hasher_hash_async (hasher, &small_params, "", 0, NULL, hash_cb, &r[0]);
  gchatd_password_hasher_hash_async (hasher, &small_params, long_password, strlen (long_password),
                                     NULL, hash_cb, &r[1]);
  gchatd_password_hasher_hash_async (hasher, &bad_params, PASSWORD, strlen (PASSWORD), NULL,
                                     hash_cb, &r[2]);
  gchatd_password_hasher_verify_async (hasher, &small_params, salt, 4, hash, sizeof hash, PASSWORD,
                                       strlen (PASSWORD), NULL, verify_cb, &r[3]);
  gchatd_password_hasher_verify_async (hasher, &small_params, salt, sizeof salt, hash, sizeof hash,
                                       PASSWORD, strlen (PASSWORD), NULL, verify_cb, &r[4]);
  gchatd_password_hasher_verify_async (hasher, &small_params, salt, 16, hash, sizeof hash, "", 0,
                                       NULL, verify_cb, &r[5]);
  gchatd_password_hasher_verify_dummy_async (hasher, &small_params, long_password,
                                             strlen (long_password), NULL, verify_cb, &r[6]);
  for (guint i = 0; i < G_N_ELEMENTS (r); i++)
    g_assert_false (r[i].done);
  for (guint i = 0; i < G_N_ELEMENTS (r); i++)
    wait_for (&r[i]);

  g_assert_error (r[0].error, GCHATD_PASSWORD_HASHER_ERROR,
                  GCHATD_PASSWORD_HASHER_ERROR_INVALID_ARGUMENT);
  g_assert_error (r[1].error, GCHATD_PASSWORD_HASHER_ERROR,
                  GCHATD_PASSWORD_HASHER_ERROR_INVALID_ARGUMENT);
  g_assert_error (r[2].error, GCHAT_CRYPTO_ERROR, GCHAT_CRYPTO_ERROR_INVALID_ARGUMENT);
  g_assert_error (r[3].error, GCHATD_PASSWORD_HASHER_ERROR,
                  GCHATD_PASSWORD_HASHER_ERROR_INVALID_ARGUMENT);
  g_assert_error (r[4].error, GCHATD_PASSWORD_HASHER_ERROR,
                  GCHATD_PASSWORD_HASHER_ERROR_INVALID_ARGUMENT);
  /* No record holds an empty or over-long password: a plain mismatch. */
  g_assert_no_error (r[5].error);
  g_assert_false (r[5].ok);
  g_assert_no_error (r[6].error);
  g_assert_false (r[6].ok);

  gchatd_password_hasher_get_stats (hasher, &stats);
  g_assert_cmpuint (stats.completed, ==, 0);
  g_assert_cmpuint (stats.rejected, ==, 0);

  for (guint i = 0; i < G_N_ELEMENTS (r); i++)
    result_clear (&r[i]);

  {
    IdleCall call = { hasher, { 0 } };

    g_idle_add (refuse_in_idle_cb, &call);
    wait_for (&call.result);
    g_assert_error (call.result.error, GCHATD_PASSWORD_HASHER_ERROR,
                    GCHATD_PASSWORD_HASHER_ERROR_INVALID_ARGUMENT);
    result_clear (&call.result);
  }
}

/* State for the busy test's ticking timeout. */
typedef struct {
  GchatdPasswordHasher *hasher;
  gint64                last_tick_us;
  gint64                max_gap_us;
  guint                 ticks;
} Ticker;

static gboolean
tick_cb (gpointer user_data)
{
  Ticker                   *ticker = user_data;
  gint64                    now = g_get_monotonic_time ();
  GchatdPasswordHasherStats stats;

  ticker->max_gap_us = MAX (ticker->max_gap_us, now - ticker->last_tick_us);
  ticker->last_tick_us = now;
  ticker->ticks++;

  /* The bounds hold at every moment, not just at the end. */
  gchatd_password_hasher_get_stats (ticker->hasher, &stats);
  g_assert_cmpuint (stats.running, <=, 1);
  g_assert_cmpuint (stats.queued, <=, 2);

  return G_SOURCE_CONTINUE;
}

/* At the real cost, one worker and a queue of two: of ten requests three are hashed and seven
 * are refused at once, while the main loop keeps running. */
static void
test_busy (void)
{
  g_autoptr (GchatdPasswordHasher) hasher = gchatd_password_hasher_new (1, 2);
  GchatArgon2Params params;
  Result r[10] = { 0 };
  Ticker ticker = { 0 };
  guint  tick_id, n_ok = 0, n_busy = 0;
  GchatdPasswordHasherStats stats;

  gchat_argon2_params_init_default (&params);
  ticker.hasher = hasher;
  ticker.last_tick_us = g_get_monotonic_time ();
  tick_id = g_timeout_add (10, tick_cb, &ticker);

  for (guint i = 0; i < G_N_ELEMENTS (r); i++)
    gchatd_password_hasher_hash_async (hasher, &params, PASSWORD, strlen (PASSWORD), NULL,
                                       hash_cb, &r[i]);
  for (guint i = 0; i < G_N_ELEMENTS (r); i++)
    g_assert_false (r[i].done);

  gchatd_password_hasher_get_stats (hasher, &stats);
  g_assert_cmpuint (stats.running, ==, 1);
  g_assert_cmpuint (stats.queued, ==, 2);
  g_assert_cmpuint (stats.rejected, ==, 7);

  for (guint i = 0; i < G_N_ELEMENTS (r); i++)
    wait_for (&r[i]);
  g_source_remove (tick_id);

  for (guint i = 0; i < G_N_ELEMENTS (r); i++)
    {
      if (r[i].ok)
        n_ok++;
      else if (g_error_matches (r[i].error, GCHATD_PASSWORD_HASHER_ERROR,
                                GCHATD_PASSWORD_HASHER_ERROR_BUSY))
        {
          g_assert_cmpstr (r[i].error->message, ==, "the server is busy, try again in a moment");
          n_busy++;
        }
      g_assert_true (r[i].thread == g_thread_self ());
      result_clear (&r[i]);
    }
  /* The first three in, the rest refused. */
  g_assert_cmpuint (n_ok, ==, 3);
  g_assert_cmpuint (n_busy, ==, 7);
  g_assert_true (r[0].ok && r[1].ok && r[2].ok);

  gchatd_password_hasher_get_stats (hasher, &stats);
  g_assert_cmpuint (stats.completed, ==, 3);
  g_assert_cmpuint (stats.rejected, ==, 7);
  g_assert_cmpuint (stats.running, ==, 0);
  g_assert_cmpuint (stats.queued, ==, 0);

  /* Generous: a blocked loop would show the length of three hashes. Valgrind runs one thread
   * at a time, so there the loop waits for its turn as well. */
  g_test_message ("%u ticks, largest gap %" G_GINT64_FORMAT " ms", ticker.ticks,
                  ticker.max_gap_us / 1000);
  g_assert_cmpint (ticker.max_gap_us, <, (RUNNING_ON_VALGRIND ? 5000 : 500) * 1000);
  g_assert_cmpuint (ticker.ticks, >, 0);
}

/* A cancelled request is dropped without hashing, whether it waits or has not been sent. */
static void
test_cancel (void)
{
  g_autoptr (GchatdPasswordHasher) hasher = gchatd_password_hasher_new (1, 4);
  g_autoptr (GCancellable) cancel_waiting = g_cancellable_new ();
  g_autoptr (GCancellable) cancel_early = g_cancellable_new ();
  g_autoptr (GCancellable) cancel_never = g_cancellable_new ();
  Result first = { 0 }, waiting = { 0 }, last = { 0 }, early = { 0 };
  GchatdPasswordHasherStats stats;

  /* The first keeps the only worker busy while the second is cancelled in the queue. */
  gchatd_password_hasher_hash_async (hasher, &slow_params, PASSWORD, strlen (PASSWORD), NULL,
                                     hash_cb, &first);
  gchatd_password_hasher_hash_async (hasher, &small_params, PASSWORD, strlen (PASSWORD),
                                     cancel_waiting, hash_cb, &waiting);
  gchatd_password_hasher_hash_async (hasher, &small_params, PASSWORD, strlen (PASSWORD),
                                     cancel_never, hash_cb, &last);
  g_cancellable_cancel (cancel_waiting);
  g_assert_false (waiting.done);

  g_cancellable_cancel (cancel_early);
  gchatd_password_hasher_verify_dummy_async (hasher, &small_params, PASSWORD, strlen (PASSWORD),
                                             cancel_early, verify_cb, &early);
  g_assert_false (early.done);

  wait_for (&first);
  wait_for (&waiting);
  wait_for (&last);
  wait_for (&early);

  g_assert_no_error (first.error);
  g_assert_error (waiting.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_no_error (last.error);
  g_assert_error (early.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);

  /* Only the two requests nobody cancelled cost a hash. */
  gchatd_password_hasher_get_stats (hasher, &stats);
  g_assert_cmpuint (stats.completed, ==, 2);
  g_assert_cmpuint (stats.cancelled, ==, 2);
  g_assert_cmpuint (stats.running, ==, 0);
  g_assert_cmpuint (stats.queued, ==, 0);

  result_clear (&first);
  result_clear (&waiting);
  result_clear (&last);
  result_clear (&early);
}

/* Cancelling while a slow hash holds the only worker takes the waiting request out of the
 * queue at once: its error arrives before the hash in front of it finishes. */
static void
test_cancel_prompt (void)
{
  g_autoptr (GchatdPasswordHasher) hasher = gchatd_password_hasher_new (1, 1);
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  GchatArgon2Params slow;
  Result first = { 0 }, waiting = { 0 }, after = { 0 };
  GchatdPasswordHasherStats stats;

  gchat_argon2_params_init_default (&slow);
  gchatd_password_hasher_hash_async (hasher, &slow, PASSWORD, strlen (PASSWORD), NULL, hash_cb,
                                     &first);
  gchatd_password_hasher_hash_async (hasher, &small_params, PASSWORD, strlen (PASSWORD),
                                     cancellable, hash_cb, &waiting);

  gchatd_password_hasher_get_stats (hasher, &stats);
  if (stats.queued == 1)
    {
      g_cancellable_cancel (cancellable);
      /* The queue's one place is free again straight away. */
      gchatd_password_hasher_get_stats (hasher, &stats);
      g_assert_cmpuint (stats.queued, ==, 0);
      g_assert_cmpuint (stats.cancelled, ==, 1);
      gchatd_password_hasher_hash_async (hasher, &small_params, PASSWORD, strlen (PASSWORD), NULL,
                                         hash_cb, &after);
      wait_for (&waiting);
      g_assert_error (waiting.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
      if (!first.done)
        g_test_message ("cancelled request answered while the slow hash ran");
      wait_for (&first);
      wait_for (&after);
      g_assert_true (first.ok);
      g_assert_true (after.ok);
    }
  else
    {
      /* The slow hash finished before we looked: a very fast or very idle machine. */
      g_test_skip ("the first hash finished too quickly to cancel the second while it waited");
      wait_for (&first);
      wait_for (&waiting);
    }

  result_clear (&first);
  result_clear (&waiting);
  result_clear (&after);
}

static gpointer
cancel_every_other (gpointer data)
{
  GPtrArray *cancellables = data;

  for (guint i = 0; i < cancellables->len; i += 2)
    {
      g_cancellable_cancel (g_ptr_array_index (cancellables, i));
      g_usleep (100);
    }
  return NULL;
}

/* Requests cancelled from another thread while workers take them off the queue: each one is
 * answered exactly once, and each is either hashed or dropped. */
static void
test_cancel_race (void)
{
  g_autoptr (GchatdPasswordHasher) hasher = gchatd_password_hasher_new (2, 100);
  g_autoptr (GPtrArray) cancellables = g_ptr_array_new_with_free_func (g_object_unref);
  Result   r[100] = { 0 };
  GThread *thread;
  GchatdPasswordHasherStats stats;

  for (guint i = 0; i < G_N_ELEMENTS (r); i++)
    g_ptr_array_add (cancellables, g_cancellable_new ());
  for (guint i = 0; i < G_N_ELEMENTS (r); i++)
    gchatd_password_hasher_hash_async (hasher, &small_params, PASSWORD, strlen (PASSWORD),
                                       g_ptr_array_index (cancellables, i), hash_cb, &r[i]);

  thread = g_thread_new ("canceller", cancel_every_other, cancellables);
  for (guint i = 0; i < G_N_ELEMENTS (r); i++)
    wait_for (&r[i]);
  g_thread_join (thread);

  for (guint i = 0; i < G_N_ELEMENTS (r); i++)
    {
      if (i % 2 == 1)
        g_assert_no_error (r[i].error);
      else if (r[i].error != NULL)
        g_assert_error (r[i].error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
      result_clear (&r[i]);
    }

  gchatd_password_hasher_get_stats (hasher, &stats);
  g_test_message ("%" G_GUINT64_FORMAT " hashed, %" G_GUINT64_FORMAT " dropped", stats.completed,
                  stats.cancelled);
  g_assert_cmpuint (stats.completed + stats.cancelled, ==, G_N_ELEMENTS (r));
  g_assert_cmpuint (stats.completed, >=, G_N_ELEMENTS (r) / 2);
  g_assert_cmpuint (stats.running, ==, 0);
  g_assert_cmpuint (stats.queued, ==, 0);
}

/* A thread with its own main context gets its results there. */
static gpointer
thread_func (gpointer data)
{
  GchatdPasswordHasher *hasher = data;
  g_autoptr (GMainContext) context = g_main_context_new ();
  Result record = { 0 }, check = { 0 };

  g_main_context_push_thread_default (context);

  gchatd_password_hasher_hash_async (hasher, &small_params, PASSWORD, strlen (PASSWORD), NULL,
                                     hash_cb, &record);
  while (!record.done)
    g_main_context_iteration (context, TRUE);
  g_assert_true (record.ok);
  g_assert_true (record.thread == g_thread_self ());

  gchatd_password_hasher_verify_async (hasher, &small_params, record.salt, sizeof record.salt,
                                       record.hash, sizeof record.hash, PASSWORD,
                                       strlen (PASSWORD), NULL, verify_cb, &check);
  while (!check.done)
    g_main_context_iteration (context, TRUE);
  g_assert_true (check.ok);
  g_assert_true (check.thread == g_thread_self ());

  g_main_context_pop_thread_default (context);
  result_clear (&record);
  result_clear (&check);
  return GINT_TO_POINTER (TRUE);
}

static void
test_thread_context (void)
{
  g_autoptr (GchatdPasswordHasher) hasher = gchatd_password_hasher_new (2, 8);
  GThread *threads[3];

  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    threads[i] = g_thread_new ("hasher-test", thread_func, hasher);
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    g_assert_true (GPOINTER_TO_INT (g_thread_join (threads[i])));
}

static int
compare_gint64 (gconstpointer a,
                gconstpointer b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;

  return (x > y) - (x < y);
}

/* Microseconds to check a wrong password against @record, or for an unknown user if NULL. */
static gint64
time_verify (GchatdPasswordHasher    *hasher,
             const GchatArgon2Params *params,
             const Result            *record)
{
  Result result = { 0 };
  gint64 start = g_get_monotonic_time ();

  if (record != NULL)
    verify_sync (hasher, params, record, OTHER_PASSWORD, &result);
  else
    verify_dummy_sync (hasher, params, OTHER_PASSWORD, &result);

  g_assert_no_error (result.error);
  g_assert_false (result.ok);
  return result.finished_us - start;
}

/* An unknown user costs what a wrong password costs. Timing is noisy, so the test only fails
 * on a gross difference (one of them skipping the hash, say). */
static void
test_dummy_timing (void)
{
  g_autoptr (GchatdPasswordHasher) hasher = gchatd_password_hasher_new (1, 4);
  GchatArgon2Params params = { 8192, 1, 1 };
  Result record = { 0 };
  gint64 real_us[9], dummy_us[9];
  double ratio;

  hash_sync (hasher, &params, PASSWORD, &record);
  g_assert_true (record.ok);

  for (guint i = 0; i < G_N_ELEMENTS (real_us); i++)
    {
      /* Taking turns at going first, so that neither always pays for waking a worker. */
      if (i % 2 == 0)
        real_us[i] = time_verify (hasher, &params, &record);
      dummy_us[i] = time_verify (hasher, &params, NULL);
      if (i % 2 == 1)
        real_us[i] = time_verify (hasher, &params, &record);
    }

  qsort (real_us, G_N_ELEMENTS (real_us), sizeof real_us[0], compare_gint64);
  qsort (dummy_us, G_N_ELEMENTS (dummy_us), sizeof dummy_us[0], compare_gint64);
  ratio = (double) MAX (dummy_us[4], 1) / (double) MAX (real_us[4], 1);
  g_test_message ("median wrong password %" G_GINT64_FORMAT " us, unknown user %" G_GINT64_FORMAT
                  " us, ratio %.2f (expected 0.5-2)", real_us[4], dummy_us[4], ratio);
  g_assert_cmpfloat (ratio, >, 0.2);
  g_assert_cmpfloat (ratio, <, 5.0);

  result_clear (&record);
}

/* Many requests from the loop at once: each is answered once, and the counts add up. */
static void
test_many (void)
{
  g_autoptr (GchatdPasswordHasher) hasher = gchatd_password_hasher_new (2, 100);
  Result record = { 0 };
  Result r[60] = { 0 };
  GchatdPasswordHasherStats stats;

  hash_sync (hasher, &small_params, PASSWORD, &record);
  for (guint i = 0; i < G_N_ELEMENTS (r); i++)
    {
      const char *password = i % 3 == 0 ? PASSWORD : OTHER_PASSWORD;

      if (i % 2 == 0)
        gchatd_password_hasher_verify_async (hasher, &small_params, record.salt,
                                             sizeof record.salt, record.hash, sizeof record.hash,
                                             password, strlen (password), NULL, verify_cb, &r[i]);
      else
        gchatd_password_hasher_verify_dummy_async (hasher, &small_params, password,
                                                   strlen (password), NULL, verify_cb, &r[i]);
    }
  for (guint i = 0; i < G_N_ELEMENTS (r); i++)
    {
      wait_for (&r[i]);
      g_assert_no_error (r[i].error);
      g_assert_true (r[i].ok == (i % 6 == 0));
      result_clear (&r[i]);
    }

  gchatd_password_hasher_get_stats (hasher, &stats);
  g_assert_cmpuint (stats.completed, ==, G_N_ELEMENTS (r) + 1);
  g_assert_cmpuint (stats.running, ==, 0);
  g_assert_cmpuint (stats.queued, ==, 0);
  result_clear (&record);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/password-hasher/hash-verify", test_hash_verify);
  g_test_add_func ("/password-hasher/defaults", test_defaults);
  g_test_add_func ("/password-hasher/invalid", test_invalid);
  g_test_add_func ("/password-hasher/busy", test_busy);
  g_test_add_func ("/password-hasher/cancel", test_cancel);
  g_test_add_func ("/password-hasher/cancel-prompt", test_cancel_prompt);
  g_test_add_func ("/password-hasher/cancel-race", test_cancel_race);
  g_test_add_func ("/password-hasher/thread-context", test_thread_context);
  g_test_add_func ("/password-hasher/dummy-timing", test_dummy_timing);
  g_test_add_func ("/password-hasher/many", test_many);

  return g_test_run ();
}
