/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Threads for gchatd's slow cryptography (RSA, X25519, Argon2id), running below the main loop's
 * priority so that the loop keeps answering the users who are logged in while they work. */

#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* The nice value of the pool's threads: the main loop (nice 0) wins a core whenever it wakes. */
#define GCHATD_WORKER_POOL_NICE 10

typedef struct _GchatdWorkerPool GchatdWorkerPool;

/* @n_threads threads, made now and kept; 0 means one per processor. @name, a static string,
 * says what they do in debug messages. */
GchatdWorkerPool *gchatd_worker_pool_new         (const char       *name,
                                                  guint             n_threads);
/* Runs the jobs already queued, waits for them (unless called on one of the pool's own
 * threads), then ends the threads. */
void              gchatd_worker_pool_free        (GchatdWorkerPool *self);

/* As g_task_run_in_thread(), on one of the pool's threads: @func must return a value on @task,
 * which then calls back in the task's main context as usual. Jobs run in the order queued. */
void              gchatd_worker_pool_run         (GchatdWorkerPool *self,
                                                  GTask            *task,
                                                  GTaskThreadFunc   func);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (GchatdWorkerPool, gchatd_worker_pool_free)

G_END_DECLS
