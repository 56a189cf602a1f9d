/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Threads for gchatd's slow cryptography, below the main loop's priority.
 *
 * GLib's own pool for g_task_run_in_thread() grows past the number of cores and runs at the
 * main loop's priority: during a log-in storm its RSA and Argon2id threads took both cores and
 * a logged-in user's ping waited hundreds of milliseconds. These threads are exclusive to their
 * pool (GLib would otherwise hand them to other pools when idle) and lower their own priority
 * when they start, which on Linux is per thread. */

#include "config.h"

#include <errno.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "gchatd-worker-pool.h"

struct _GchatdWorkerPool {
  GThreadPool *threads;
  const char  *name; /* static */
};

typedef struct {
  GTask           *task;
  GTaskThreadFunc  func;
} Job;

/* The pool a thread belongs to, set at its first job, when it lowers its priority. */
static GPrivate thread_pool;

static void
lower_this_thread (GchatdWorkerPool *pool)
{
  if (g_private_get (&thread_pool) != NULL)
    return;
  g_private_set (&thread_pool, pool);
  /* Not fatal: the work is still done, only at the main loop's priority. */
  if (setpriority (PRIO_PROCESS, (id_t) syscall (SYS_gettid), GCHATD_WORKER_POOL_NICE) != 0)
    g_debug ("Could not lower the priority of a %s thread: %s", pool->name, g_strerror (errno));
}

static void
job_run (gpointer data,
         gpointer user_data)
{
  GchatdWorkerPool *self = user_data;
  Job *job = data;

  lower_this_thread (self);
  job->func (job->task, g_task_get_source_object (job->task), g_task_get_task_data (job->task),
             g_task_get_cancellable (job->task));
  g_object_unref (job->task);
  g_free (job);
}

GchatdWorkerPool *
gchatd_worker_pool_new (const char *name,
                        guint       n_threads)
{
  GchatdWorkerPool *self = g_new0 (GchatdWorkerPool, 1);
  g_autoptr(GError) error = NULL;

  g_return_val_if_fail (name != NULL, NULL);

  if (n_threads == 0)
    n_threads = MAX (1, g_get_num_processors ());
  self->name = name;
  self->threads = g_thread_pool_new (job_run, self, (gint) n_threads, TRUE, &error);
  if (self->threads == NULL)
    g_error ("Cannot start the %s threads: %s", name, error->message);
  return self;
}

void
gchatd_worker_pool_free (GchatdWorkerPool *self)
{
  if (self == NULL)
    return;
  /* The last reference to a task's source object may be dropped on one of the threads, which
   * may free the pool's owner: a thread cannot wait for itself, so it lets the pool end
   * behind it (GLib frees it when its last thread is done). The owner holds no job then. */
  if (g_private_get (&thread_pool) == self)
    g_thread_pool_free (self->threads, TRUE, FALSE);
  else
    g_thread_pool_free (self->threads, FALSE, TRUE);
  g_free (self);
}

void
gchatd_worker_pool_run (GchatdWorkerPool *self,
                        GTask            *task,
                        GTaskThreadFunc   func)
{
  Job *job;

  g_return_if_fail (self != NULL);
  g_return_if_fail (G_IS_TASK (task));
  g_return_if_fail (func != NULL);

  job = g_new0 (Job, 1);
  job->task = g_object_ref (task);
  job->func = func;
  g_thread_pool_push (self->threads, job, NULL);
}
