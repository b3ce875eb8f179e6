/* pool.c — the persistent thread pool (see mccom/pool.h).
 *
 * Protocol. The caller publishes (fn, arg, n_tasks), resets the task counter,
 * sets `pending` to the number of workers and then bumps `gen` (release).
 * A worker waiting for generation g spins on `gen` for a while, then sleeps
 * in futex_wait(&gen, g). Having seen the new generation (acquire) it takes
 * task indices from `next` until they run out, then decrements `pending`
 * (release). The caller takes tasks too, then waits for pending == 0
 * (acquire), so the next run cannot overwrite (fn, arg) while a worker still
 * reads them.
 *
 * Wake-ups: a worker announces it is about to sleep by incrementing
 * `n_sleeping` before futex_wait, and the caller reads `n_sleeping` after
 * bumping `gen`. Both are sequentially consistent, so either the caller sees
 * the sleeper and wakes it, or the sleeper's futex_wait sees the new `gen`
 * and returns at once (the Dekker pattern); no wake-up is lost.
 */
#include "mccom/pool.h"

#include "mccom/common.h"

#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MC_CPU_RELAX() _mm_pause()
#else
#define MC_CPU_RELAX() ((void)0)
#endif

/* Spin iterations (each a pause, ~10-40 ns) before a worker sleeps. */
#define MC_POOL_SPIN 4000

struct mc_pool_worker {
    mc_pool *pool;
    int index;
};

struct mc_pool {
    int n_threads;
    pthread_t *threads;               /* n_threads-1 workers */
    struct mc_pool_worker *workers;

    /* The current run; written by the caller before `gen` is bumped. */
    mc_pool_fn fn;
    void *arg;
    int n_tasks;

    _Alignas(64) atomic_uint gen;     /* futex word: run generation */
    atomic_int stop;
    atomic_int n_sleeping;
    _Alignas(64) atomic_int next;     /* next task index to hand out */
    _Alignas(64) atomic_int pending;  /* workers not yet done with this run */
};

static void futex_wait(atomic_uint *addr, unsigned expected) {
    syscall(SYS_futex, (unsigned *)addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake_all(atomic_uint *addr) {
    syscall(SYS_futex, (unsigned *)addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static void run_tasks(mc_pool *p, mc_pool_fn fn, void *arg, int n_tasks, int thread) {
    for (;;) {
        int t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (t >= n_tasks)
            break;
        fn(arg, t, thread);
    }
}

static void *worker_main(void *varg) {
    struct mc_pool_worker *w = varg;
    mc_pool *p = w->pool;
    unsigned seen = atomic_load_explicit(&p->gen, memory_order_acquire);
    for (;;) {
        unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
        for (int i = 0; g == seen && i < MC_POOL_SPIN; i++) {
            MC_CPU_RELAX();
            g = atomic_load_explicit(&p->gen, memory_order_acquire);
        }
        while (g == seen) {
            atomic_fetch_add(&p->n_sleeping, 1);
            futex_wait(&p->gen, seen);
            atomic_fetch_sub(&p->n_sleeping, 1);
            g = atomic_load_explicit(&p->gen, memory_order_acquire);
        }
        seen = g;
        if (atomic_load_explicit(&p->stop, memory_order_acquire))
            break;
        run_tasks(p, p->fn, p->arg, p->n_tasks, w->index);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
    }
    return NULL;
}

static void pool_stop(mc_pool *p, int n_started) {
    atomic_store(&p->stop, 1);
    atomic_fetch_add(&p->gen, 1);
    futex_wake_all(&p->gen);
    for (int i = 0; i < n_started; i++)
        pthread_join(p->threads[i], NULL);
}

int mc_pool_new(int n_threads, mc_pool **out) {
    *out = NULL;
    if (n_threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (int)MC_MIN(n, 1024) : 1;
    }
    if (n_threads < 1 || n_threads > 1024)
        return MC_EINVAL;
    mc_pool *p = aligned_alloc(64, (sizeof(mc_pool) + 63) / 64 * 64);
    if (!p)
        return MC_ENOMEM;
    memset(p, 0, sizeof(*p));
    p->n_threads = n_threads;
    atomic_init(&p->gen, 0);
    atomic_init(&p->stop, 0);
    atomic_init(&p->n_sleeping, 0);
    atomic_init(&p->next, 0);
    atomic_init(&p->pending, 0);
    int n_workers = n_threads - 1;
    if (n_workers > 0) {
        p->threads = calloc((size_t)n_workers, sizeof(pthread_t));
        p->workers = calloc((size_t)n_workers, sizeof(struct mc_pool_worker));
        if (!p->threads || !p->workers) {
            free(p->threads);
            free(p->workers);
            free(p);
            return MC_ENOMEM;
        }
    }
    for (int i = 0; i < n_workers; i++) {
        p->workers[i].pool = p;
        p->workers[i].index = i + 1;
        if (pthread_create(&p->threads[i], NULL, worker_main, &p->workers[i]) != 0) {
            pool_stop(p, i);
            free(p->threads);
            free(p->workers);
            free(p);
            return MC_EIO;
        }
    }
    *out = p;
    return 0;
}

void mc_pool_free(mc_pool *p) {
    if (!p)
        return;
    pool_stop(p, p->n_threads - 1);
    free(p->threads);
    free(p->workers);
    free(p);
}

int mc_pool_n_threads(const mc_pool *p) {
    return p ? p->n_threads : 1;
}

void mc_pool_run(mc_pool *p, mc_pool_fn fn, void *arg, int n_tasks) {
    if (n_tasks <= 0)
        return;
    if (!p || p->n_threads == 1 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++)
            fn(arg, t, 0);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n_tasks;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    atomic_store_explicit(&p->pending, p->n_threads - 1, memory_order_relaxed);
    atomic_fetch_add(&p->gen, 1); /* seq_cst: publishes the run, orders vs n_sleeping */
    if (atomic_load(&p->n_sleeping) > 0)
        futex_wake_all(&p->gen);
    run_tasks(p, fn, arg, n_tasks, 0);
    /* Workers finish their last task or notice there is none left; on an
     * oversubscribed machine one may be descheduled, so stop burning the
     * core after a while. */
    for (long i = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; i++) {
        if (i < 200000)
            MC_CPU_RELAX();
        else
            sched_yield();
    }
}
