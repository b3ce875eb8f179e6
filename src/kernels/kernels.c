/* kernels.c — ISA dispatch and the matmul driver.
 *
 * The driver owns everything that is not arithmetic: argument checks, the
 * layout of the prepared activations in the caller's scratch, and the split
 * of the work over the pool. The arithmetic is in kernels_scalar.c (the
 * oracle) and the *_avx2.c / *_avx512.c files.
 *
 * Work split: a register tile computes four rows that lie a quarter of the
 * matrix apart (rows r, r+q, r+2q, r+3q with q = ceil(n_out/4); see
 * internal.h for why), so the unit of work is a tile position r in [0, q).
 * Positions are cut in chunks, about 8 per thread so the atomic task counter
 * balances uneven cores; mc_matmul_multi numbers the chunks of all its
 * matrices in one run. Inside a chunk, tokens go in blocks of MC__TOK_BLOCK
 * so that a block's prepared activations stay in L2 while the chunk's rows
 * stream past them; the ISA's gemm then tiles (rows x tokens) in registers.
 */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#endif

#define MC__TOK_BLOCK 32

/* ---- dispatch -------------------------------------------------------------------- */

static const mc_kernels *g_tables[MC_ISA_COUNT]; /* written once under g_once */
static const mc_kernels *g_best;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__) && defined(__GNUC__)
/* F16C from CPUID leaf 1 (ECX bit 29): clang's __builtin_cpu_supports does
 * not know "f16c". */
static int has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29)) != 0;
}
#endif

static void detect(void) {
    g_tables[MC_ISA_SCALAR] = &mc__kernels_scalar;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
    if (avx2)
        g_tables[MC_ISA_AVX2] = &mc__kernels_avx2;
    int avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
                 __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                 __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
    if (avx512)
        g_tables[MC_ISA_AVX512] = __builtin_cpu_supports("avx512bf16")
                                      ? &mc__kernels_avx512_bf16
                                      : &mc__kernels_avx512;
#endif
    int cap = MC_ISA_COUNT - 1;
    const char *env = getenv("MCCOM_ISA");
    if (env) {
        if (!strcmp(env, "scalar"))
            cap = MC_ISA_SCALAR;
        else if (!strcmp(env, "avx2"))
            cap = MC_ISA_AVX2;
        else if (!strcmp(env, "avx512"))
            cap = MC_ISA_AVX512;
    }
    for (int i = cap; i >= 0; i--) {
        if (g_tables[i]) {
            g_best = g_tables[i];
            break;
        }
    }
}

const mc_kernels *mc_kernels_for(int isa) {
    if (isa < 0 || isa >= MC_ISA_COUNT)
        return NULL;
    pthread_once(&g_once, detect);
    return g_tables[isa];
}

const mc_kernels *mc_kernels_best(void) {
    pthread_once(&g_once, detect);
    return g_best;
}

const char *mc_kernels_name(const mc_kernels *k) {
    return k ? k->name : "none";
}

float mc_vec_dot_f32(int64_t n, const float *a, const float *b) {
    return mc_kernels_best()->vec_dot_f32(n, a, b);
}

float mc_vec_dot_f16_f32(int64_t n, const uint16_t *a_f16, const float *b) {
    return mc_kernels_best()->vec_dot_f16_f32(n, a_f16, b);
}

void mc_vec_axpy_f32(int64_t n, float alpha, const float *x, float *y) {
    mc_kernels_best()->vec_axpy_f32(n, alpha, x, y);
}

void mc_vec_axpy_f16(int64_t n, float alpha, const uint16_t *x_f16, float *y) {
    mc_kernels_best()->vec_axpy_f16(n, alpha, x_f16, y);
}

/* ---- matmul driver ----------------------------------------------------------------- */

static int wt_slot(int wtype) {
    switch (wtype) {
    case MC_TYPE_F32:
        return MC__WT_F32;
    case MC_TYPE_F16:
        return MC__WT_F16;
    case MC_TYPE_BF16:
        return MC__WT_BF16;
    case MC_TYPE_Q8_0:
        return MC__WT_Q8_0;
    case MC_TYPE_Q4_0:
        return MC__WT_Q4_0;
    default:
        return -1;
    }
}

/* Bytes of one token's prepared activations: the largest layout over the ISAs
 * (internal.h), so that one scratch size serves every table. */
static size_t act_stride(int slot, int64_t n_in) {
    if (slot == MC__WT_Q8_0 || slot == MC__WT_Q4_0) {
        size_t flat = mc__align64((size_t)n_in) + mc__align64((size_t)(n_in / 32) * sizeof(float));
        size_t grouped = (size_t)(n_in / 32 + 3) / 4 * MC__QGROUP_BYTES;
        return MC_MAX(flat, grouped);
    }
    return mc__align64((size_t)n_in * sizeof(float));
}

size_t mc_matmul_scratch_size(int wtype, int64_t n_in, int64_t n_tok) {
    int slot = wt_slot(wtype);
    if (slot < 0 || slot == MC__WT_F32 || n_in <= 0 || n_tok <= 0)
        return 0;
    return (size_t)n_tok * act_stride(slot, n_in) + 64;
}

typedef struct matmul_job {
    const struct mc__gemm_ops *ops;
    int slot;
    int n_mats;
    mc__gemm_args args[MC_MATMUL_MAX]; /* one per matrix */
    int task0[MC_MATMUL_MAX + 1];      /* matrix m owns tasks task0[m] .. task0[m+1]-1 */
    int64_t chunk;                     /* tile positions per task */
    const float *X;
    int64_t n_in, n_tok;
    int64_t tok_per_prep_task;
} matmul_job;

static void prep_task(void *varg, int task, int thread) {
    (void)thread;
    matmul_job *j = varg;
    int64_t t0 = (int64_t)task * j->tok_per_prep_task;
    int64_t t1 = MC_MIN(t0 + j->tok_per_prep_task, j->n_tok);
    for (int64_t t = t0; t < t1; t++)
        j->ops->prep[j->slot](j->X + t * j->n_in,
                              (uint8_t *)j->args[0].act + (size_t)t * j->args[0].act_stride,
                              j->n_in);
}

static void gemm_task(void *varg, int task, int thread) {
    (void)thread;
    matmul_job *j = varg;
    int m = 0;
    while (task >= j->task0[m + 1])
        m++;
    const mc__gemm_args *a = &j->args[m];
    int64_t r0 = (int64_t)(task - j->task0[m]) * j->chunk;
    int64_t r1 = MC_MIN(r0 + j->chunk, a->row_step);
    mc__gemm_fn fn = j->ops->gemm[j->slot];
    for (int64_t t0 = 0; t0 < j->n_tok; t0 += MC__TOK_BLOCK)
        fn(a, r0, r1, t0, MC_MIN(t0 + MC__TOK_BLOCK, j->n_tok));
}

int mc_matmul_multi(const mc_kernels *k, mc_pool *pool, int wtype, int n_mats,
                    const mc_matmul_out *mats, int64_t n_in, const float *X, int64_t n_tok,
                    void *scratch, size_t scratch_size) {
    int slot = wt_slot(wtype);
    if (slot < 0)
        return MC_EUNSUPPORTED;
    if (n_mats < 1 || n_mats > MC_MATMUL_MAX || n_in <= 0 || n_tok < 0 ||
        mc_kernels_row_size(wtype, n_in) == 0 || n_tok > INT32_MAX / 2)
        return MC_EINVAL;
    int64_t total = 0;
    for (int m = 0; m < n_mats; m++) {
        if (mats[m].n_out < 0 || mats[m].n_out > INT32_MAX / 2)
            return MC_EINVAL;
        total += mats[m].n_out;
    }
    if (total == 0 || n_tok == 0)
        return 0;
    size_t need = mc_matmul_scratch_size(wtype, n_in, n_tok);
    if (need > 0 && (!scratch || scratch_size < need))
        return MC_EINVAL;
    if (!k)
        k = mc_kernels_best();

    matmul_job j; /* only the first n_mats args are set and read */
    j.ops = k->gemm;
    j.slot = slot;
    j.n_mats = n_mats;
    j.X = X;
    j.n_in = n_in;
    j.n_tok = n_tok;
    j.task0[0] = 0;
    j.tok_per_prep_task = 0;
    const uint8_t *act = (const uint8_t *)X;
    size_t stride = (size_t)n_in * sizeof(float);
    if (slot != MC__WT_F32) {
        act = (const uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
        stride = act_stride(slot, n_in);
    }
    int n_threads = mc_pool_n_threads(pool);
    /* Tile positions (each four rows, see internal.h) go to tasks in chunks:
     * about 8 chunks per thread so the atomic task counter balances uneven
     * cores, 4..64 positions (16..256 rows) each. */
    int64_t positions = 0;
    for (int m = 0; m < n_mats; m++)
        positions += (mats[m].n_out + 3) / 4;
    int64_t chunk = (positions + 8 * n_threads - 1) / (8 * n_threads);
    j.chunk = MC_MIN(MC_MAX(4, chunk), 64);
    for (int m = 0; m < n_mats; m++) {
        mc__gemm_args *a = &j.args[m];
        a->W = mats[m].W;
        a->w_row = mc_kernels_row_size(wtype, n_in);
        a->n_in = n_in;
        a->n_out = mats[m].n_out;
        a->row_step = (mats[m].n_out + 3) / 4;
        a->act = act;
        a->act_stride = stride;
        a->Y = mats[m].Y;
        j.task0[m + 1] = j.task0[m] + (int)((a->row_step + j.chunk - 1) / j.chunk);
    }

    if (j.ops->prep[slot]) {
        /* One token is cheap (n_in floats): not worth waking the pool. */
        j.tok_per_prep_task = MC_MAX(1, n_tok / (4 * n_threads));
        int n_prep = (int)((n_tok + j.tok_per_prep_task - 1) / j.tok_per_prep_task);
        mc_pool_run(n_tok >= 2 ? pool : NULL, prep_task, &j, n_prep);
    }
    mc_pool_run(pool, gemm_task, &j, j.task0[n_mats]);
    return 0;
}

int mc_matmul(const mc_kernels *k, mc_pool *pool, int wtype, const void *W, int64_t n_out,
              int64_t n_in, const float *X, int64_t n_tok, float *Y, void *scratch,
              size_t scratch_size) {
    if (wt_slot(wtype) < 0)
        return MC_EUNSUPPORTED;
    if (n_out < 0)
        return MC_EINVAL;
    mc_matmul_out m = {W, n_out, Y};
    return mc_matmul_multi(k, pool, wtype, 1, &m, n_in, X, n_tok, scratch, scratch_size);
}
