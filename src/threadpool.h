/* A small fork-join pool for the forward pass: run n_tasks independent tasks on n_threads threads
 * (the calling thread included) and return when all are done. No allocation after creation.
 *
 * Each thread takes its own contiguous share of the tasks first, in order, then what is left of
 * the others' (so neighbouring tasks tend to run on one thread); which thread runs a task still
 * varies, so a task's result must not depend on it: each task writes its own disjoint output and
 * uses the per-thread scratch selected by the `thread` argument. */
#ifndef MONE_THREADPOOL_H
#define MONE_THREADPOOL_H

typedef struct MoneThreadPool MoneThreadPool;

/* task in [0, n_tasks), thread in [0, n_threads): index of the running thread, for scratch. */
typedef void (*MoneTaskFunc) (void *arg, int task, int thread);

/* n_threads >= 1 threads in total: the caller plus n_threads - 1 workers started here.
 * Returns NULL if a thread cannot be started. */
MoneThreadPool *mone_thread_pool_new (int n_threads);
void mone_thread_pool_free (MoneThreadPool *pool);
int mone_thread_pool_get_threads (const MoneThreadPool *pool);
/* Runs fn(arg, task, thread) for every task and waits for all of them. Not reentrant: one caller
 * at a time (a pool belongs to one MoneContext). */
void mone_thread_pool_run (MoneThreadPool *pool, int n_tasks, MoneTaskFunc fn, void *arg);

/* Brackets a series of jobs that follow each other closely (one frame): inside it, idle workers
 * wait for the next job spinning instead of sleeping, up to a few milliseconds. Outside it they
 * sleep after a short spin. Only changes timing, never results. */
void mone_thread_pool_begin_series (MoneThreadPool *pool);
void mone_thread_pool_end_series (MoneThreadPool *pool);

#endif
