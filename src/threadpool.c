/* Fork-join pool (threadpool.h). Between jobs, workers spin and then sleep on a condition variable.
 * Inside a series (one frame: ~2 jobs per transformer block, microseconds apart) they keep
 * spinning: waking a sleeping thread takes a futex call and, in a virtual machine, an
 * inter-processor interrupt, tens of microseconds that the short spin alone did not bridge
 * (docs/engine.md, Threads). Outside a series they sleep after the short spin, so an idle pool
 * between frames does not hold a core.
 *
 * Tasks: thread t owns the t-th of n_threads contiguous shares of the task range and takes its
 * own tasks in order, then what is left of the other shares. Neighbouring tasks read the same
 * data (one head's query blocks read its keys and values; one expert's row pieces read its weight
 * slices), so each thread keeps reading what is already in its own cache; threads taking the
 * tasks alternately would each read all of it (docs/engine.md, Threads). */
#include "threadpool.h"

#include <glib.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause ()
#else
#define cpu_relax() ((void) 0)
#endif

/* Iterations of the short spin, each a pause instruction (~10-140 cycles), some 10-50 us: outside
 * a series a waiting thread then sleeps, inside one it then yields its core between checks, so an
 * oversubscribed machine gets the core back from it. */
#define SPIN_ITERATIONS 1000

/* Inside a series, the longest a thread spins before sleeping anyway: a bound for a caller that
 * stalls in the middle of its series, far above any gap between the jobs of a frame. */
#define SERIES_SPIN_US 5000

/* Tasks [next, end) of a share not yet taken; on a cache line of its own, since its owner and
 * another thread taking what is left both bump `next`. */
typedef struct {
  _Alignas(64) atomic_int next;
  int end;
} TaskShare;

struct MoneThreadPool {
  int n_threads;
  pthread_t *workers; /* (n_threads - 1) */
  int n_started;

  pthread_mutex_t lock;
  pthread_cond_t job_posted;   /* generation changed or stopping */
  pthread_cond_t job_finished; /* busy reached 0 */

  /* The current job. Written by the caller before it bumps `generation`, read by workers after. */
  MoneTaskFunc fn;
  void *arg;
  TaskShare *shares; /* (n_threads) thread t's share of the current job's tasks */
  atomic_int busy; /* workers still inside the current job */
  atomic_uint generation;
  atomic_bool stopping;
  atomic_bool in_series; /* between mone_thread_pool_begin_series and _end_series */
};

typedef struct {
  MoneThreadPool *pool;
  int thread;
} WorkerStart;

/* Spins while `waiting (pool, value)` holds, for SPIN_ITERATIONS pauses, or up to SERIES_SPIN_US
 * while the pool is in a series. Returns whether the wait is over (false: go to sleep). */
static bool
spin_while (MoneThreadPool *pool, bool (*waiting) (MoneThreadPool *, unsigned), unsigned value)
{
  gint64 deadline = 0;
  for (int spins = 0; waiting (pool, value); spins++) {
    if (spins >= SPIN_ITERATIONS && (spins & 63) == 0) {
      if (!atomic_load_explicit (&pool->in_series, memory_order_relaxed))
        return false;
      const gint64 now = g_get_monotonic_time ();
      if (!deadline)
        deadline = now + SERIES_SPIN_US;
      else if (now > deadline)
        return false;
      /* Past the short spin, let any other runnable thread on this core (an oversubscribed
       * machine, another stream's pool) have it. */
      sched_yield ();
    }
    cpu_relax ();
  }
  return true;
}

static bool
no_new_job (MoneThreadPool *pool, unsigned seen)
{
  return atomic_load_explicit (&pool->generation, memory_order_acquire) == seen
      && !atomic_load_explicit (&pool->stopping, memory_order_relaxed);
}

static bool
workers_busy (MoneThreadPool *pool, unsigned unused)
{
  (void) unused;
  return atomic_load_explicit (&pool->busy, memory_order_acquire) > 0;
}

static void
run_tasks (MoneThreadPool *pool, int thread)
{
  for (int k = 0; k < pool->n_threads; k++) {
    TaskShare *share = &pool->shares[(thread + k) % pool->n_threads];
    for (;;) {
      const int task = atomic_fetch_add_explicit (&share->next, 1, memory_order_relaxed);
      if (task >= share->end)
        break;
      pool->fn (pool->arg, task, thread);
    }
  }
}

static void *
worker_main (void *data)
{
  MoneThreadPool *pool = ((WorkerStart *) data)[0].pool;
  int thread = ((WorkerStart *) data)[0].thread;
  g_free (data);
  /* Generation 0 is "no job yet": reading the counter here instead could skip a job posted before
   * this thread got to run. */
  unsigned seen = 0;
  for (;;) {
    /* Wait for a new generation: spin first, then sleep. It cannot move on again before this
     * thread has finished the job (the caller waits for `busy`), so reading it once is enough. */
    if (!spin_while (pool, no_new_job, seen)) {
      pthread_mutex_lock (&pool->lock);
      while (no_new_job (pool, seen))
        pthread_cond_wait (&pool->job_posted, &pool->lock);
      pthread_mutex_unlock (&pool->lock);
    }
    if (atomic_load (&pool->stopping))
      return NULL;
    seen = atomic_load_explicit (&pool->generation, memory_order_acquire);
    run_tasks (pool, thread);
    if (atomic_fetch_sub_explicit (&pool->busy, 1, memory_order_acq_rel) == 1) {
      pthread_mutex_lock (&pool->lock);
      pthread_cond_signal (&pool->job_finished);
      pthread_mutex_unlock (&pool->lock);
    }
  }
}

MoneThreadPool *
mone_thread_pool_new (int n_threads)
{
  if (n_threads < 1)
    n_threads = 1;
  MoneThreadPool *pool = g_new0 (MoneThreadPool, 1);
  pool->n_threads = n_threads;
  pthread_mutex_init (&pool->lock, NULL);
  pthread_cond_init (&pool->job_posted, NULL);
  pthread_cond_init (&pool->job_finished, NULL);
  atomic_init (&pool->busy, 0);
  atomic_init (&pool->generation, 0);
  atomic_init (&pool->stopping, false);
  atomic_init (&pool->in_series, false);
  pool->workers = g_new0 (pthread_t, n_threads);
  pool->shares = g_aligned_alloc0 (n_threads, sizeof (TaskShare), _Alignof(TaskShare));
  for (int i = 1; i < n_threads; i++) {
    WorkerStart *start = g_new (WorkerStart, 1);
    start->pool = pool;
    start->thread = i;
    if (pthread_create (&pool->workers[i - 1], NULL, worker_main, start) != 0) {
      g_free (start);
      mone_thread_pool_free (pool);
      return NULL;
    }
    pool->n_started++;
  }
  return pool;
}

void
mone_thread_pool_free (MoneThreadPool *pool)
{
  if (!pool)
    return;
  pthread_mutex_lock (&pool->lock);
  atomic_store (&pool->stopping, true);
  pthread_cond_broadcast (&pool->job_posted);
  pthread_mutex_unlock (&pool->lock);
  for (int i = 0; i < pool->n_started; i++)
    pthread_join (pool->workers[i], NULL);
  pthread_mutex_destroy (&pool->lock);
  pthread_cond_destroy (&pool->job_posted);
  pthread_cond_destroy (&pool->job_finished);
  g_free (pool->workers);
  g_aligned_free (pool->shares);
  g_free (pool);
}

int
mone_thread_pool_get_threads (const MoneThreadPool *pool)
{
  return pool->n_threads;
}

void
mone_thread_pool_run (MoneThreadPool *pool, int n_tasks, MoneTaskFunc fn, void *arg)
{
  if (n_tasks <= 0)
    return;
  if (pool->n_threads == 1 || n_tasks == 1) {
    for (int task = 0; task < n_tasks; task++)
      fn (arg, task, 0);
    return;
  }
  pool->fn = fn;
  pool->arg = arg;
  for (int t = 0; t < pool->n_threads; t++) {
    atomic_store_explicit (&pool->shares[t].next, (int) ((long long) n_tasks * t / pool->n_threads),
        memory_order_relaxed);
    pool->shares[t].end = (int) ((long long) n_tasks * (t + 1) / pool->n_threads);
  }
  atomic_store_explicit (&pool->busy, pool->n_threads - 1, memory_order_relaxed);
  /* Publish the job: the release store orders the fields above before the new generation. */
  pthread_mutex_lock (&pool->lock);
  atomic_fetch_add_explicit (&pool->generation, 1, memory_order_release);
  pthread_cond_broadcast (&pool->job_posted);
  pthread_mutex_unlock (&pool->lock);

  run_tasks (pool, 0);

  if (!spin_while (pool, workers_busy, 0)) {
    pthread_mutex_lock (&pool->lock);
    while (atomic_load (&pool->busy) > 0)
      pthread_cond_wait (&pool->job_finished, &pool->lock);
    pthread_mutex_unlock (&pool->lock);
  }
}

void
mone_thread_pool_begin_series (MoneThreadPool *pool)
{
  atomic_store_explicit (&pool->in_series, true, memory_order_relaxed);
}

void
mone_thread_pool_end_series (MoneThreadPool *pool)
{
  atomic_store_explicit (&pool->in_series, false, memory_order_relaxed);
}
