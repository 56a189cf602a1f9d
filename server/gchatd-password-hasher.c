/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Runs Argon2id on worker threads with a bound on concurrency and a bounded queue. */

#include "config.h"

#include <string.h>

#include <gcrypt.h>
#include <glib/gi18n-lib.h>

#include "gchatd-password-hasher.h"
#include "gchatd-worker-pool.h"

typedef enum {
  JOB_HASH,
  JOB_VERIFY,
} JobKind;

/* One request, kept as the task data of its GTask. */
typedef struct {
  JobKind           kind;
  GchatArgon2Params params;

  /* A private copy of the password, in libgcrypt's secure memory when the pool has room;
   * wiped as soon as the hash is computed or the request is dropped. */
  guint8           *password;
  gsize             password_len;
  gboolean          password_secure;

  /* For JOB_HASH the fresh salt and the result; for JOB_VERIFY the stored record. */
  guint8            salt[GCHATD_PASSWORD_HASHER_MAX_SALT_SIZE];
  gsize             salt_len;
  guint8            hash[GCHATD_PASSWORD_HASHER_MAX_HASH_SIZE];
  gsize             hash_len;
  /* Set for the dummy record of an unknown user, which must never match. */
  gboolean          never_match;

  /* While the request waits for a worker: its place in the queue (data is the GTask) and
   * the handler that drops it when cancelled. Both are guarded by the hasher's lock. */
  GList             link;
  gboolean          queued;
  gulong            cancel_id;
} Job;

struct _GchatdPasswordHasher
{
  GObject parent_instance;

  guint   max_parallel;
  guint   max_queued;
  GchatdWorkerPool *threads; /* max_parallel of them, below the main loop's priority */

  /* The record verify_dummy_async() checks against: random and never stored, so no password
   * matches it, yet checking costs exactly what checking a real record costs. */
  guint8  dummy_salt[GCHATD_PASSWORD_HASHER_SALT_SIZE];
  guint8  dummy_hash[GCHATD_PASSWORD_HASHER_HASH_SIZE];

  /* Worker threads hand their slot on to the next waiting request themselves, so the state
   * below is shared with them. */
  GMutex  lock;
  GQueue  waiting; /* of GTask, oldest first; the queue holds a reference on each */
  guint   running;
  guint64 completed;
  guint64 rejected;
  guint64 cancelled;
};

enum {
  PROP_0,
  PROP_MAX_PARALLEL,
  PROP_MAX_QUEUED,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE (GchatdPasswordHasher, gchatd_password_hasher, G_TYPE_OBJECT)

G_DEFINE_QUARK (gchatd-password-hasher-error-quark, gchatd_password_hasher_error)

static void
job_wipe_password (Job *job)
{
  if (job->password == NULL)
    return;

  gchat_memzero (job->password, job->password_len);
  if (job->password_secure)
    gcry_free (job->password);
  else
    g_free (job->password);
  job->password = NULL;
  job->password_len = 0;
}

static void
job_free (gpointer data)
{
  Job *job = data;

  job_wipe_password (job);
  gchat_memzero (job, sizeof *job);
  g_free (job);
}

static Job *
job_new (JobKind                  kind,
         const GchatArgon2Params *params,
         const char              *password,
         gsize                    len)
{
  Job *job = g_new0 (Job, 1);

  job->kind = kind;
  job->params = *params;
  job->password_len = len;

  /* The secure pool is small and shared; when it is full the copy lives in ordinary memory,
   * which is wiped just the same. */
  if (len > 0 && gchat_crypto_init (NULL))
    job->password = gcry_malloc_secure (len);
  job->password_secure = job->password != NULL;
  if (job->password == NULL)
    job->password = g_malloc (MAX (len, 1));
  if (len > 0)
    memcpy (job->password, password, len);

  return job;
}

/* Computes the job's Argon2id: TRUE when it was computed, with @matched telling whether a
 * verified password is right. Runs on a worker thread. */
static gboolean
job_compute (Job       *job,
             gboolean  *matched,
             GError   **error)
{
  guint8 computed[GCHATD_PASSWORD_HASHER_MAX_HASH_SIZE];
  guint8 *out = job->kind == JOB_HASH ? job->hash : computed;
  gboolean ok;

  if (job->kind == JOB_HASH)
    gchat_random_bytes (job->salt, job->salt_len);

  ok = gchat_argon2id (&job->params, job->password, job->password_len, job->salt, job->salt_len,
                       NULL, 0, NULL, 0, out, job->hash_len, error);
  *matched = ok && job->kind == JOB_VERIFY
             && gchat_constant_time_equal (computed, job->hash, job->hash_len)
             && !job->never_match;
  gchat_memzero (computed, sizeof computed);
  return ok;
}

static void run_job (GTask        *task,
                     gpointer      source_object,
                     gpointer      task_data,
                     GCancellable *cancellable);

/* Called by a worker when its job is done: the slot goes straight to the oldest waiting
 * request, or is given back when none waits. */
static void
pass_slot_on (GchatdPasswordHasher *self,
              gboolean              hashed)
{
  GList *link;
  GTask *next = NULL;
  Job   *job;

  g_mutex_lock (&self->lock);
  if (hashed)
    self->completed++;
  else
    self->cancelled++;
  link = g_queue_pop_head_link (&self->waiting);
  if (link != NULL)
    {
      next = link->data;
      job = g_task_get_task_data (next);
      job->queued = FALSE;
    }
  else
    self->running--;
  g_mutex_unlock (&self->lock);

  if (next == NULL)
    return;

  /* Outside the lock: disconnecting waits for a handler running in another thread, and the
   * handler takes the lock. It finds the job no longer queued and leaves it alone. */
  g_cancellable_disconnect (g_task_get_cancellable (next), job->cancel_id);
  job->cancel_id = 0;
  gchatd_worker_pool_run (self->threads, next, run_job);
  g_object_unref (next);
}

static void
run_job (GTask        *task,
         gpointer      source_object,
         gpointer      task_data,
         GCancellable *cancellable)
{
  GchatdPasswordHasher *self = source_object;
  Job                  *job = task_data;
  GError               *error = NULL;
  gboolean              hashed, ok = FALSE, matched = FALSE;

  hashed = !g_cancellable_is_cancelled (cancellable);
  if (hashed)
    ok = job_compute (job, &matched, &error);
  job_wipe_password (job);
  /* The books are done before the result goes out: the caller's callback may run at once
   * and find the hasher's statistics already counting this job. */
  pass_slot_on (self, hashed);
  if (!hashed)
    g_task_return_error_if_cancelled (task);
  else if (!ok)
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, job->kind == JOB_HASH || matched);
}

/* Delivers the cancellation of a request dropped from the queue, in the caller's context. */
static gboolean
dropped_cb (gpointer user_data)
{
  GTask *task = user_data;
  Job   *job = g_task_get_task_data (task);

  g_cancellable_disconnect (g_task_get_cancellable (task), job->cancel_id);
  job->cancel_id = 0;
  job_wipe_password (job);
  g_task_return_error_if_cancelled (task);

  return G_SOURCE_REMOVE;
}

/* The GCancellable::cancelled handler of a waiting request; it may run in any thread. */
static void
waiting_cancelled_cb (GCancellable *cancellable,
                      gpointer      user_data)
{
  GTask                *task = user_data;
  GchatdPasswordHasher *self = g_task_get_source_object (task);
  Job                  *job = g_task_get_task_data (task);
  gboolean              dropped = FALSE;
  g_autoptr (GSource) source = NULL;

  g_mutex_lock (&self->lock);
  if (job->queued)
    {
      g_queue_unlink (&self->waiting, &job->link);
      job->queued = FALSE;
      self->cancelled++;
      dropped = TRUE;
    }
  g_mutex_unlock (&self->lock);

  if (!dropped)
    return;

  /* The handler cannot disconnect itself, and returning from here could run the caller's
   * callback inside g_cancellable_cancel(); an idle does both later. The queue's reference
   * on the task passes to the idle. */
  source = g_idle_source_new ();
  g_source_set_priority (source, G_PRIORITY_DEFAULT);
  g_source_set_static_name (source, "[gchatd] dropped password hash");
  g_source_set_callback (source, dropped_cb, task, g_object_unref);
  g_source_attach (source, g_task_get_context (task));
}

typedef enum {
  ADMIT_START,
  ADMIT_WAIT,
  ADMIT_REJECT,
} Admission;

static Admission
admit (GchatdPasswordHasher *self,
       GTask                *task)
{
  Job      *job = g_task_get_task_data (task);
  Admission admission;

  g_mutex_lock (&self->lock);
  if (self->running < self->max_parallel)
    {
      self->running++;
      admission = ADMIT_START;
    }
  else if (self->waiting.length < self->max_queued)
    {
      job->link.data = task;
      g_queue_push_tail_link (&self->waiting, &job->link);
      job->queued = TRUE;
      admission = ADMIT_WAIT;
    }
  else
    {
      self->rejected++;
      admission = ADMIT_REJECT;
    }
  g_mutex_unlock (&self->lock);

  return admission;
}

/* Starts @task, queues it or refuses it. Takes the reference the caller holds on @task. */
static void
submit (GchatdPasswordHasher *self,
        GTask                *task)
{
  GCancellable *cancellable = g_task_get_cancellable (task);
  Job          *job = g_task_get_task_data (task);
  Admission     admission;

  if (g_task_return_error_if_cancelled (task))
    {
      g_mutex_lock (&self->lock);
      self->cancelled++;
      g_mutex_unlock (&self->lock);
      g_object_unref (task);
      return;
    }

  /* Connected before the request can enter the queue, and outside the lock: when the
   * cancellable fires at this very moment the handler runs here and now, finds nothing
   * queued, and the worker drops the request instead when it reaches it. */
  if (cancellable != NULL)
    job->cancel_id = g_cancellable_connect (cancellable, G_CALLBACK (waiting_cancelled_cb),
                                            g_object_ref (task), g_object_unref);

  admission = admit (self, task);
  if (admission != ADMIT_WAIT && job->cancel_id != 0)
    {
      g_cancellable_disconnect (cancellable, job->cancel_id);
      job->cancel_id = 0;
    }

  if (admission == ADMIT_START)
    gchatd_worker_pool_run (self->threads, task, run_job);
  else if (admission == ADMIT_REJECT)
    g_task_return_new_error (task, GCHATD_PASSWORD_HASHER_ERROR, GCHATD_PASSWORD_HASHER_ERROR_BUSY,
                             _("the server is busy, try again in a moment"));

  /* A waiting request stays referenced by the queue. */
  if (admission != ADMIT_WAIT)
    g_object_unref (task);
}

static void
gchatd_password_hasher_constructed (GObject *object)
{
  GchatdPasswordHasher *self = GCHATD_PASSWORD_HASHER (object);

  G_OBJECT_CLASS (gchatd_password_hasher_parent_class)->constructed (object);

  if (self->max_parallel == 0)
    self->max_parallel = CLAMP (g_get_num_processors (), 1,
                                GCHATD_PASSWORD_HASHER_MAX_PARALLEL_LIMIT);
  self->threads = gchatd_worker_pool_new ("Argon2id", self->max_parallel);
}

static void
gchatd_password_hasher_finalize (GObject *object)
{
  GchatdPasswordHasher *self = GCHATD_PASSWORD_HASHER (object);

  /* Every waiting request holds a reference on the hasher through its GTask. */
  g_warn_if_fail (g_queue_is_empty (&self->waiting));
  g_clear_pointer (&self->threads, gchatd_worker_pool_free);
  g_mutex_clear (&self->lock);
  gchat_memzero (self->dummy_hash, sizeof self->dummy_hash);

  G_OBJECT_CLASS (gchatd_password_hasher_parent_class)->finalize (object);
}

static void
gchatd_password_hasher_get_property (GObject    *object,
                                     guint       prop_id,
                                     GValue     *value,
                                     GParamSpec *pspec)
{
  GchatdPasswordHasher *self = GCHATD_PASSWORD_HASHER (object);

  switch (prop_id)
    {
      case PROP_MAX_PARALLEL:
        g_value_set_uint (value, self->max_parallel);
        break;
      case PROP_MAX_QUEUED:
        g_value_set_uint (value, self->max_queued);
        break;
      default:
        G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
gchatd_password_hasher_set_property (GObject      *object,
                                     guint         prop_id,
                                     const GValue *value,
                                     GParamSpec   *pspec)
{
  GchatdPasswordHasher *self = GCHATD_PASSWORD_HASHER (object);

  switch (prop_id)
    {
      case PROP_MAX_PARALLEL:
        self->max_parallel = g_value_get_uint (value);
        break;
      case PROP_MAX_QUEUED:
        self->max_queued = g_value_get_uint (value);
        break;
      default:
        G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
gchatd_password_hasher_class_init (GchatdPasswordHasherClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->constructed = gchatd_password_hasher_constructed;
  object_class->finalize = gchatd_password_hasher_finalize;
  object_class->get_property = gchatd_password_hasher_get_property;
  object_class->set_property = gchatd_password_hasher_set_property;

  /* 0 at construction means one per CPU; reading gives the number in effect. */
  properties[PROP_MAX_PARALLEL] =
    g_param_spec_uint ("max-parallel", NULL, NULL,
                       0, GCHATD_PASSWORD_HASHER_MAX_PARALLEL_LIMIT, 0,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  properties[PROP_MAX_QUEUED] =
    g_param_spec_uint ("max-queued", NULL, NULL,
                       0, GCHATD_PASSWORD_HASHER_MAX_QUEUED_LIMIT,
                       GCHATD_PASSWORD_HASHER_DEFAULT_MAX_QUEUED,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
gchatd_password_hasher_init (GchatdPasswordHasher *self)
{
  g_mutex_init (&self->lock);
  g_queue_init (&self->waiting);
  gchat_random_bytes (self->dummy_salt, sizeof self->dummy_salt);
  gchat_random_bytes (self->dummy_hash, sizeof self->dummy_hash);
}

GchatdPasswordHasher *
gchatd_password_hasher_new (guint max_parallel,
                            guint max_queued)
{
  g_return_val_if_fail (max_parallel <= GCHATD_PASSWORD_HASHER_MAX_PARALLEL_LIMIT, NULL);
  g_return_val_if_fail (max_queued <= GCHATD_PASSWORD_HASHER_MAX_QUEUED_LIMIT, NULL);

  return g_object_new (GCHATD_TYPE_PASSWORD_HASHER,
                       "max-parallel", max_parallel,
                       "max-queued", max_queued,
                       NULL);
}

guint
gchatd_password_hasher_get_max_parallel (GchatdPasswordHasher *self)
{
  g_return_val_if_fail (GCHATD_IS_PASSWORD_HASHER (self), 0);

  return self->max_parallel;
}

guint
gchatd_password_hasher_get_max_queued (GchatdPasswordHasher *self)
{
  g_return_val_if_fail (GCHATD_IS_PASSWORD_HASHER (self), 0);

  return self->max_queued;
}

void
gchatd_password_hasher_get_stats (GchatdPasswordHasher      *self,
                                  GchatdPasswordHasherStats *stats)
{
  g_return_if_fail (GCHATD_IS_PASSWORD_HASHER (self));
  g_return_if_fail (stats != NULL);

  g_mutex_lock (&self->lock);
  stats->running = self->running;
  stats->queued = self->waiting.length;
  stats->completed = self->completed;
  stats->rejected = self->rejected;
  stats->cancelled = self->cancelled;
  g_mutex_unlock (&self->lock);
}

static gboolean
password_length_ok (gsize len)
{
  return len >= 1 && len <= GCHATD_PASSWORD_HASHER_MAX_PASSWORD_SIZE;
}

void
gchatd_password_hasher_hash_async (GchatdPasswordHasher    *self,
                                   const GchatArgon2Params *params,
                                   const char              *password,
                                   gsize                    len,
                                   GCancellable            *cancellable,
                                   GAsyncReadyCallback      callback,
                                   gpointer                 user_data)
{
  g_autoptr (GTask) task = NULL;
  GError *error = NULL;
  Job    *job;

  g_return_if_fail (GCHATD_IS_PASSWORD_HASHER (self));
  g_return_if_fail (params != NULL);
  g_return_if_fail (password != NULL || len == 0);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, gchatd_password_hasher_hash_async);

  if (!password_length_ok (len))
    {
      g_task_return_new_error (task, GCHATD_PASSWORD_HASHER_ERROR,
                               GCHATD_PASSWORD_HASHER_ERROR_INVALID_ARGUMENT,
                               _("A password must be between 1 and %u bytes long"),
                               (guint) GCHATD_PASSWORD_HASHER_MAX_PASSWORD_SIZE);
      return;
    }
  if (!gchat_argon2_params_validate (params, &error))
    {
      g_task_return_error (task, error);
      return;
    }

  job = job_new (JOB_HASH, params, password, len);
  job->salt_len = GCHATD_PASSWORD_HASHER_SALT_SIZE;
  job->hash_len = GCHATD_PASSWORD_HASHER_HASH_SIZE;
  g_task_set_task_data (task, job, job_free);
  submit (self, g_steal_pointer (&task));
}

gboolean
gchatd_password_hasher_hash_finish (GchatdPasswordHasher *self,
                                    GAsyncResult         *result,
                                    guint8               *salt,
                                    guint8               *hash,
                                    GError              **error)
{
  Job *job;

  g_return_val_if_fail (GCHATD_IS_PASSWORD_HASHER (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result))
                          == gchatd_password_hasher_hash_async, FALSE);
  g_return_val_if_fail (salt != NULL && hash != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!g_task_propagate_boolean (G_TASK (result), error))
    return FALSE;

  job = g_task_get_task_data (G_TASK (result));
  memcpy (salt, job->salt, GCHATD_PASSWORD_HASHER_SALT_SIZE);
  memcpy (hash, job->hash, GCHATD_PASSWORD_HASHER_HASH_SIZE);
  return TRUE;
}

/* The part of verify_async() and verify_dummy_async() after the record is known good. */
static void
start_verify (GchatdPasswordHasher    *self,
              GTask                   *task,
              gboolean                 never_match,
              const GchatArgon2Params *params,
              const guint8            *salt,
              gsize                    salt_len,
              const guint8            *expected_hash,
              gsize                    hash_len,
              const char              *password,
              gsize                    len)
{
  GError *error = NULL;
  Job    *job;

  if (!gchat_argon2_params_validate (params, &error))
    {
      g_task_return_error (task, error);
      g_object_unref (task);
      return;
    }
  /* No record can hold such a password, so it cannot match; saying so costs no hashing. */
  if (!password_length_ok (len))
    {
      g_task_return_boolean (task, FALSE);
      g_object_unref (task);
      return;
    }

  job = job_new (JOB_VERIFY, params, password, len);
  memcpy (job->salt, salt, salt_len);
  job->salt_len = salt_len;
  memcpy (job->hash, expected_hash, hash_len);
  job->hash_len = hash_len;
  job->never_match = never_match;
  g_task_set_task_data (task, job, job_free);
  submit (self, task);
}

void
gchatd_password_hasher_verify_async (GchatdPasswordHasher    *self,
                                     const GchatArgon2Params *params,
                                     const guint8            *salt,
                                     gsize                    salt_len,
                                     const guint8            *expected_hash,
                                     gsize                    hash_len,
                                     const char              *password,
                                     gsize                    len,
                                     GCancellable            *cancellable,
                                     GAsyncReadyCallback      callback,
                                     gpointer                 user_data)
{
  GTask *task;

  g_return_if_fail (GCHATD_IS_PASSWORD_HASHER (self));
  g_return_if_fail (params != NULL);
  g_return_if_fail (salt != NULL || salt_len == 0);
  g_return_if_fail (expected_hash != NULL || hash_len == 0);
  g_return_if_fail (password != NULL || len == 0);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, gchatd_password_hasher_verify_async);

  /* The record comes from a file, so its sizes are checked like any other input. */
  if (salt_len < GCHATD_PASSWORD_HASHER_MIN_SALT_SIZE
      || salt_len > GCHATD_PASSWORD_HASHER_MAX_SALT_SIZE
      || hash_len < GCHATD_PASSWORD_HASHER_MIN_HASH_SIZE
      || hash_len > GCHATD_PASSWORD_HASHER_MAX_HASH_SIZE)
    {
      g_task_return_new_error (task, GCHATD_PASSWORD_HASHER_ERROR,
                               GCHATD_PASSWORD_HASHER_ERROR_INVALID_ARGUMENT,
                               _("The stored password record is damaged: a salt of %zu "
                                 "bytes and a hash of %zu bytes (expected %u–%u and %u–%u)"),
                               salt_len, hash_len,
                               (guint) GCHATD_PASSWORD_HASHER_MIN_SALT_SIZE,
                               (guint) GCHATD_PASSWORD_HASHER_MAX_SALT_SIZE,
                               (guint) GCHATD_PASSWORD_HASHER_MIN_HASH_SIZE,
                               (guint) GCHATD_PASSWORD_HASHER_MAX_HASH_SIZE);
      g_object_unref (task);
      return;
    }

  start_verify (self, task, FALSE, params, salt, salt_len, expected_hash, hash_len, password, len);
}

void
gchatd_password_hasher_verify_dummy_async (GchatdPasswordHasher    *self,
                                           const GchatArgon2Params *params,
                                           const char              *password,
                                           gsize                    len,
                                           GCancellable            *cancellable,
                                           GAsyncReadyCallback      callback,
                                           gpointer                 user_data)
{
  GTask *task;

  g_return_if_fail (GCHATD_IS_PASSWORD_HASHER (self));
  g_return_if_fail (params != NULL);
  g_return_if_fail (password != NULL || len == 0);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  /* Tagged like a real verification, so that one finish function serves both. */
  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, gchatd_password_hasher_verify_async);

  start_verify (self, task, TRUE, params, self->dummy_salt, sizeof self->dummy_salt,
                self->dummy_hash, sizeof self->dummy_hash, password, len);
}

gboolean
gchatd_password_hasher_verify_finish (GchatdPasswordHasher *self,
                                      GAsyncResult         *result,
                                      GError              **error)
{
  g_return_val_if_fail (GCHATD_IS_PASSWORD_HASHER (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result))
                          == gchatd_password_hasher_verify_async, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}
