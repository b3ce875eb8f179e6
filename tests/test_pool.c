/* tests/test_pool.c — the thread pool runs every task exactly once, on valid
 * thread indices, and publishes the tasks' writes to the caller. */
#include "mccom/common.h"
#include "mccom/pool.h"
#include "test.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

typedef struct count_job {
    atomic_int *hits;   /* (n_tasks) */
    int *plain;         /* (n_tasks) written without atomics: checks publication */
    int n_threads;
    atomic_int bad_thread;
} count_job;

static void count_task(void *arg, int task, int thread) {
    count_job *j = arg;
    atomic_fetch_add(&j->hits[task], 1);
    j->plain[task] += task + 1;
    if (thread < 0 || thread >= j->n_threads)
        atomic_store(&j->bad_thread, 1);
}

MC_TEST(pool_every_task_once) {
    static const int threads[] = {1, 2, 3, 4, 8};
    static const int tasks[] = {0, 1, 2, 3, 5, 7, 8, 31, 100, 1000};
    atomic_int *hits = calloc(1000, sizeof(atomic_int));
    int *plain = calloc(1000, sizeof(int));
    MC_REQUIRE(hits && plain);
    for (size_t a = 0; a < MC_ARRAY_LEN(threads); a++) {
        mc_pool *p = NULL;
        MC_REQUIRE(mc_pool_new(threads[a], &p) == 0 && p);
        CHECK_EQ_INT(mc_pool_n_threads(p), threads[a]);
        for (int rep = 0; rep < 20; rep++) {
            for (size_t b = 0; b < MC_ARRAY_LEN(tasks); b++) {
                int n = tasks[b];
                for (int i = 0; i < n; i++) {
                    atomic_store(&hits[i], 0);
                    plain[i] = 0;
                }
                count_job j = {hits, plain, threads[a], 0};
                mc_pool_run(p, count_task, &j, n);
                for (int i = 0; i < n; i++) {
                    CHECK_MSG(atomic_load(&hits[i]) == 1, "threads %d tasks %d: task %d ran %d times",
                              threads[a], n, i, atomic_load(&hits[i]));
                    CHECK(plain[i] == i + 1);
                }
                CHECK(atomic_load(&j.bad_thread) == 0);
            }
        }
        mc_pool_free(p);
    }
    free(hits);
    free(plain);
}

/* Runs with pauses in between, so that workers go to sleep and must be woken. */
MC_TEST(pool_wakes_sleeping_workers) {
    mc_pool *p = NULL;
    MC_REQUIRE(mc_pool_new(3, &p) == 0);
    atomic_int hits[16];
    int plain[16];
    for (int rep = 0; rep < 10; rep++) {
        for (int i = 0; i < 16; i++) {
            atomic_store(&hits[i], 0);
            plain[i] = 0;
        }
        count_job j = {hits, plain, 3, 0};
        mc_pool_run(p, count_task, &j, 16);
        for (int i = 0; i < 16; i++)
            CHECK(atomic_load(&hits[i]) == 1);
        struct timespec ts = {0, 2 * 1000 * 1000}; /* 2 ms: longer than the spin */
        nanosleep(&ts, NULL);
    }
    mc_pool_free(p);
}

typedef struct spread_job {
    atomic_int per_thread[4];
} spread_job;

static void spin_task(void *arg, int task, int thread) {
    (void)task;
    spread_job *j = arg;
    atomic_fetch_add(&j->per_thread[thread], 1);
    volatile double x = 0;
    for (int i = 0; i < 20000; i++)
        x += i;
}

MC_TEST(pool_uses_workers_and_edge_cases) {
    mc_pool_run(NULL, spin_task, &(spread_job){0}, 3); /* NULL pool runs inline */
    mc_pool *p = NULL;
    CHECK(mc_pool_new(-1, &p) == MC_EINVAL && p == NULL);
    CHECK(mc_pool_new(5000, &p) == MC_EINVAL && p == NULL);
    MC_REQUIRE(mc_pool_new(0, &p) == 0);
    CHECK(mc_pool_n_threads(p) >= 1);
    mc_pool_free(p);
    mc_pool_free(NULL);
    CHECK_EQ_INT(mc_pool_n_threads(NULL), 1);

    MC_REQUIRE(mc_pool_new(2, &p) == 0);
    spread_job j;
    for (int i = 0; i < 4; i++)
        atomic_init(&j.per_thread[i], 0);
    for (int rep = 0; rep < 50; rep++)
        mc_pool_run(p, spin_task, &j, 64);
    CHECK_EQ_INT(atomic_load(&j.per_thread[0]) + atomic_load(&j.per_thread[1]), 50 * 64);
    CHECK(atomic_load(&j.per_thread[2]) == 0);
    mc_pool_free(p);
}

static void noop_task(void *arg, int task, int thread) {
    (void)arg;
    (void)task;
    (void)thread;
}

/* Dispatch overhead: reported, only loosely checked (the machine is shared). */
MC_TEST(pool_dispatch_overhead) {
    mc_pool *p = NULL;
    MC_REQUIRE(mc_pool_new(2, &p) == 0);
    const int n = 20000;
    double t0 = mc_time_s();
    for (int i = 0; i < n; i++)
        mc_pool_run(p, noop_task, NULL, 8);
    double us = (mc_time_s() - t0) / n * 1e6;
    fprintf(stderr, "pool: %.2f us per run (2 threads, 8 no-op tasks)\n", us);
    CHECK(us < 1000.0);
    mc_pool_free(p);
}

/* A worker that wakes late for run g may read the next run's (fn, arg, n_tasks)
 * while the ticket word still holds run g's exhausted index: it must not take
 * that index as a task of either run. Alternating a small run after a large
 * one, with more threads than cores, is the pattern that exposed it. */
MC_TEST(pool_stale_worker_never_claims) {
    atomic_int *hits = calloc(512, sizeof(atomic_int));
    int *plain = calloc(512, sizeof(int));
    MC_REQUIRE(hits && plain);
    mc_pool *p = NULL;
    MC_REQUIRE(mc_pool_new(8, &p) == 0);
    int bad = 0;
    for (int rep = 0; rep < 4000 && !bad; rep++) {
        int n = (rep & 1) ? 512 : 1 + rep % 5;
        for (int i = 0; i < n; i++) {
            atomic_store(&hits[i], 0);
            plain[i] = 0;
        }
        count_job j = {hits, plain, 8, 0};
        mc_pool_run(p, count_task, &j, n);
        for (int i = 0; i < n; i++)
            if (atomic_load(&hits[i]) != 1 || plain[i] != i + 1) {
                CHECK_MSG(0, "rep %d tasks %d: task %d ran %d times", rep, n, i,
                          atomic_load(&hits[i]));
                bad = 1;
                break;
            }
        CHECK(atomic_load(&j.bad_thread) == 0);
    }
    mc_pool_free(p);
    free(hits);
    free(plain);
}
