/* pool.c — the persistent thread pool (see mccom/pool.h).
 *
 * Protocol. A run has a generation number g. The caller publishes
 * (fn, arg, n_tasks), zeroes `done`, sets the ticket word `work` to (g << 32 | 0)
 * and then stores g in `gen` (the futex word). A worker that sees a new `gen`
 * reads (fn, arg, n_tasks) and claims task indices by compare-and-swap on
 * `work`: a claim succeeds only while the ticket still carries generation g
 * and its index is below n_tasks. Each finished task increments `done`
 * (release); the caller, having taken tasks too, waits for done == n_tasks
 * (acquire) and returns.
 *
 * Why tickets carry the generation: the caller never waits for workers that
 * did not take part. On a loaded machine a worker may wake up long after its
 * run ended, even while the caller is writing the next run's (fn, arg,
 * n_tasks); its reads may then mix two runs. Before writing them the caller
 * closes the old ticket (index 0xffffffff, which no n_tasks reaches), and the
 * fields are stored with release and loaded with acquire: a worker that read
 * any field of the next run therefore sees at least the closed ticket, and its
 * claim fails. (Without the close, a worker holding run g's exhausted ticket
 * (g, i) and the next run's larger n_tasks claimed index i: a task run twice.)
 * So a successful claim of (g, i < n_tasks) means every field it read belongs
 * to run g, and run g is still live since not all its tasks are claimed.
 *
 * Wake-ups: a worker announces it is about to sleep by incrementing
 * `n_sleeping` before futex_wait, and the caller reads `n_sleeping` after
 * storing `gen`. Both are sequentially consistent, so either the caller sees
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

    /* The current run (see the protocol above). */
    _Atomic(mc_pool_fn) fn;
    _Atomic(void *) arg;
    atomic_int n_tasks;
    unsigned gen_next;                /* caller-only: last generation used */

    _Alignas(64) atomic_uint gen;     /* futex word: generation of the last run */
    atomic_int stop;
    atomic_int n_sleeping;
    _Alignas(64) _Atomic uint64_t work; /* generation << 32 | next task index */
    _Alignas(64) atomic_int done;     /* tasks finished in this run */
};

static void futex_wait(atomic_uint *addr, unsigned expected) {
    syscall(SYS_futex, (unsigned *)addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake_all(atomic_uint *addr) {
    syscall(SYS_futex, (unsigned *)addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* Claim and run tasks of generation g until none are left (or g is over). */
static void run_tasks(mc_pool *p, unsigned g, int thread) {
    mc_pool_fn fn = atomic_load_explicit(&p->fn, memory_order_acquire);
    void *arg = atomic_load_explicit(&p->arg, memory_order_acquire);
    int n_tasks = atomic_load_explicit(&p->n_tasks, memory_order_acquire);
    uint64_t w = atomic_load_explicit(&p->work, memory_order_relaxed);
    for (;;) {
        if ((unsigned)(w >> 32) != g || (int64_t)(uint32_t)w >= n_tasks)
            return;
        if (!atomic_compare_exchange_weak_explicit(&p->work, &w, w + 1, memory_order_acquire,
                                                   memory_order_relaxed))
            continue; /* w was reloaded */
        fn(arg, (int)(uint32_t)w, thread);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
        w = atomic_load_explicit(&p->work, memory_order_relaxed);
    }
}

static void *worker_main(void *varg) {
    struct mc_pool_worker *w = varg;
    mc_pool *p = w->pool;
    /* Generation 0 is the pool's creation; reading `gen` here instead would
     * miss a run published before this thread got to start. */
    unsigned seen = 0;
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
        run_tasks(p, g, w->index);
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
    atomic_init(&p->fn, NULL);
    atomic_init(&p->arg, NULL);
    atomic_init(&p->n_tasks, 0);
    atomic_init(&p->work, 0);
    atomic_init(&p->done, 0);
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
    unsigned g = ++p->gen_next;
    if (g == 0) /* 0 means "creation" to a starting worker: skip it */
        g = ++p->gen_next;
    /* Close the previous run's ticket before its fields change (see above). */
    uint64_t prev = atomic_load_explicit(&p->work, memory_order_relaxed);
    atomic_store_explicit(&p->work, (prev & 0xffffffff00000000u) | 0xffffffffu,
                          memory_order_relaxed);
    atomic_store_explicit(&p->fn, fn, memory_order_release);
    atomic_store_explicit(&p->arg, arg, memory_order_release);
    atomic_store_explicit(&p->n_tasks, n_tasks, memory_order_release);
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    atomic_store_explicit(&p->work, (uint64_t)g << 32, memory_order_release);
    atomic_store(&p->gen, g); /* seq_cst: publishes the run, orders vs n_sleeping */
    if (atomic_load(&p->n_sleeping) > 0)
        futex_wake_all(&p->gen);
    run_tasks(p, g, 0);
    /* Tasks claimed by workers may still be running; on an oversubscribed
     * machine such a worker may be descheduled, so stop burning the core
     * after a while. */
    for (long i = 0; atomic_load_explicit(&p->done, memory_order_acquire) < n_tasks; i++) {
        if (i < 100000)
            MC_CPU_RELAX();
        else
            sched_yield();
    }
}
