/* The forward pass's fork-join pool: every task of every job runs exactly once, on a valid thread
 * index, whether workers are spinning inside a series or were put to sleep between jobs; a thread
 * that has run its own share of the tasks takes what is left of the others'. */
#include <glib.h>
#include <stdatomic.h>

#include "threadpool.h"

#define MAX_TASKS 64

typedef struct {
  atomic_int runs[MAX_TASKS];
  atomic_int bad_thread;
  int n_threads;
} Job;

static void
count_task (void *data, int task, int thread)
{
  Job *job = data;
  atomic_fetch_add (&job->runs[task], 1);
  if (thread < 0 || thread >= job->n_threads)
    atomic_fetch_add (&job->bad_thread, 1);
}

static void
run_and_check (MoneThreadPool *pool, int n_threads, int n_tasks)
{
  Job job = { .n_threads = n_threads };
  for (int t = 0; t < MAX_TASKS; t++)
    atomic_init (&job.runs[t], 0);
  atomic_init (&job.bad_thread, 0);
  mone_thread_pool_run (pool, n_tasks, count_task, &job);
  for (int t = 0; t < MAX_TASKS; t++)
    g_assert_cmpint (atomic_load (&job.runs[t]), ==, t < n_tasks ? 1 : 0);
  g_assert_cmpint (atomic_load (&job.bad_thread), ==, 0);
}

static void
test_jobs (void)
{
  for (int n_threads = 1; n_threads <= 4; n_threads++) {
    MoneThreadPool *pool = mone_thread_pool_new (n_threads);
    g_assert_nonnull (pool);
    g_assert_cmpint (mone_thread_pool_get_threads (pool), ==, n_threads);
    for (int series = 0; series < 3; series++) {
      mone_thread_pool_begin_series (pool);
      for (int job = 0; job < 200; job++)
        run_and_check (pool, n_threads, 1 + job % MAX_TASKS);
      mone_thread_pool_end_series (pool);
      /* Long enough for idle workers to leave their spin and sleep: the next job must wake them. */
      g_usleep (20000);
      run_and_check (pool, n_threads, MAX_TASKS);
      run_and_check (pool, n_threads, 0);
    }
    mone_thread_pool_free (pool);
  }
}

/* Task 0 (in the first thread's share) waits for every other task: the rest of that share can only
 * run if the other thread takes it once its own share is done. */
typedef struct {
  atomic_int done;
  int n_tasks;
  gboolean waited_out;
} Hold;

static void
hold_first_task (void *data, int task, int thread)
{
  Hold *hold = data;
  (void) thread;
  if (task == 0) {
    const gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
    while (atomic_load (&hold->done) < hold->n_tasks - 1)
      if (g_get_monotonic_time () > deadline) {
        hold->waited_out = TRUE;
        break;
      }
  }
  atomic_fetch_add (&hold->done, 1);
}

static void
test_shares_are_taken_over (void)
{
  MoneThreadPool *pool = mone_thread_pool_new (2);
  g_assert_nonnull (pool);
  for (int n_tasks = 2; n_tasks <= 9; n_tasks++) {
    Hold hold = { .n_tasks = n_tasks };
    atomic_init (&hold.done, 0);
    mone_thread_pool_run (pool, n_tasks, hold_first_task, &hold);
    g_assert_false (hold.waited_out);
    g_assert_cmpint (atomic_load (&hold.done), ==, n_tasks);
  }
  mone_thread_pool_free (pool);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/threadpool/jobs", test_jobs);
  g_test_add_func ("/threadpool/shares-are-taken-over", test_shares_are_taken_over);
  return g_test_run ();
}
