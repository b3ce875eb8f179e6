/* mccom/pool.h — a persistent thread pool for the inference kernels.
 *
 * A pool owns n_threads-1 worker threads; the thread that calls mc_pool_run
 * takes part as thread 0, so a pool of n threads uses n cores. A run hands
 * out task indices 0..n_tasks-1 through one atomic counter (dynamic load
 * balancing: a thread that finishes early takes the next index) and returns
 * when every task has finished. Nothing is allocated per run.
 *
 * Between runs a worker spins for a short while (about 50 microseconds, so
 * that the ~10 back-to-back runs of one transformer layer never pay a
 * wake-up) and then sleeps on a futex; the next run wakes it only if it
 * sleeps, so dispatch to spinning workers costs no system call.
 *
 * Rules: a pool is driven by one caller thread at a time (mc_pool_run is not
 * re-entrant and must not be called from inside a task). Memory written by the
 * caller before mc_pool_run is visible to every task, and memory written by
 * the tasks is visible to the caller when mc_pool_run returns.
 */
#ifndef MCCOM_POOL_H
#define MCCOM_POOL_H

typedef struct mc_pool mc_pool;

/* fn(arg, task, thread): task in 0..n_tasks-1; thread in 0..n_threads-1 is
 * the index of the thread running it (0 = the caller), stable for the run, so
 * a task may use per-thread scratch indexed by it. */
typedef void (*mc_pool_fn)(void *arg, int task, int thread);

/* Create a pool of n_threads threads (the caller counts as one, so
 * n_threads-1 workers are started); n_threads = 0 means the number of online
 * CPUs. n_threads = 1 starts no thread: every run executes inline.
 * Returns 0 and *out, or MC_EINVAL (n_threads < 0 or > 1024) / MC_ENOMEM /
 * MC_EIO (thread creation failed); on failure *out is NULL and nothing leaks. */
int mc_pool_new(int n_threads, mc_pool **out);

/* Stop and join the workers and free the pool. NULL is a no-op. Must not be
 * called while a run is in progress. */
void mc_pool_free(mc_pool *p);

/* Number of threads including the caller (>= 1). NULL gives 1. */
int mc_pool_n_threads(const mc_pool *p);

/* Run fn for every task in 0..n_tasks-1, each exactly once, spread over the
 * pool's threads, and return when all have finished. n_tasks <= 0 returns at
 * once. p = NULL, a one-thread pool, or n_tasks = 1 run inline on the caller
 * (thread index 0) with no synchronisation at all. */
void mc_pool_run(mc_pool *p, mc_pool_fn fn, void *arg, int n_tasks);

#endif
