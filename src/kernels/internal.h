/* src/kernels/internal.h — what the kernel files share and nobody else sees.
 *
 * mc_matmul (kernels.c) is a driver: it validates, prepares the activations
 * of every token once (quantize to Q8_0, round to F16/BF16) into the caller's
 * scratch, and then hands tiles of (rows x tokens) to the ISA's gemm
 * function on the pool. Each ISA file provides one mc__gemm_ops.
 */
#ifndef MCCOM_KERNELS_INTERNAL_H
#define MCCOM_KERNELS_INTERNAL_H

#include "mccom/kernels.h"

/* Weight-type slots of the gemm tables. */
enum { MC__WT_F32, MC__WT_F16, MC__WT_BF16, MC__WT_Q8_0, MC__WT_Q4_0, MC__WT_COUNT };

/* Prepared activations, one record of `act_stride` bytes per token (64-byte
 * aligned):
 *   F32        none: the X rows themselves (stride n_in*4)
 *   F16        n_in floats, each rounded through binary16
 *   BF16       act_bf16 == 0: n_in floats rounded through bfloat16;
 *              act_bf16 == 1: n_in bfloat16 values (uint16_t)
 *   Q8_0/Q4_0  ggml-cpu's x86 quantize_row_q8_0 of the token, with d already
 *              rounded through binary16 as ggml stores it, in one of two layouts
 *              (the ISA's prep and gemm agree on which):
 *              flat (scalar, AVX2): int8 qs[n_in] at offset 0, then float
 *                d[n_in/32] at offset mc__align64(n_in);
 *              grouped by G blocks (G = act_group[slot]: 4 in AVX-512, 2 in
 *                AVX2 for Q4_0): per group of G blocks, 64*G bytes: int8
 *                lo[16G] (elements 0..15 of the G blocks, 16 each), int8
 *                hi[16G] (elements 16..31), int32 corr[4G] (lane l: -off * the
 *                sum of lo and hi bytes 4l..4l+3, the 8 elements that an int32
 *                lane of an int8 dot product over lo and hi covers; off = 128
 *                for Q8_0 weights, 8 for Q4_0), float d[4G] (lane l: d of
 *                block l/4).
 *                A last partial group is zero past its blocks.
 *
 * Rows. A register tile computes rows r, r+q, r+2q, r+3q (q = row_step =
 * ceil(n_out/4); those >= n_out are skipped), not four adjacent rows: each
 * row is then one sequential stream through memory, which the hardware
 * prefetchers follow. Four adjacent rows read in lockstep jump back and forth
 * inside the same pages and defeat them: on the Zen 4 reference machine a
 * Q8_0 decode read 10 GB/s that way against 34 GB/s with the rows apart.
 * Which rows share a tile never changes a result: each output has its own
 * accumulator, so decode (one token) and batches give bitwise equal Y. */
#define MC__QGROUP_BYTES 256 /* a group of 4 blocks, the largest */
typedef struct mc__gemm_args {
    const uint8_t *W;     /* weights, row o at W + o*w_row */
    size_t w_row;         /* bytes per weight row */
    int64_t n_in;
    int64_t n_out;        /* rows of W, and the row stride of Y */
    int64_t row_step;     /* q = ceil(n_out/4): a tile's rows are r + i*q */
    const uint8_t *act;   /* prepared activations, token t at act + t*act_stride */
    size_t act_stride;
    float *Y;             /* (n_tok, n_out) */
} mc__gemm_args;

/* Compute Y[t][o] for t in [t0,t1) and every row o = r + i*row_step < n_out
 * with r in [r0,r1) (0 <= r0 <= r1 <= row_step) and i < 4. */
typedef void (*mc__gemm_fn)(const mc__gemm_args *a, int64_t r0, int64_t r1, int64_t t0,
                            int64_t t1);
/* Prepare one token: n_in floats x -> the record at dst (layout above). */
typedef void (*mc__prep_fn)(const float *x, void *dst, int64_t n_in);

struct mc__gemm_ops {
    mc__prep_fn prep[MC__WT_COUNT]; /* NULL for F32 */
    mc__gemm_fn gemm[MC__WT_COUNT];
    int act_bf16;                   /* BF16 activations stored as bfloat16 */
    int act_group[MC__WT_COUNT];    /* Q8_0/Q4_0: blocks per group of the grouped
                                       layout, 0 for the flat one */
};

static inline size_t mc__align64(size_t n) {
    return (n + 63) & ~(size_t)63;
}

/* Scalar pieces the ISA files reuse for tails. */
void mc__quantize_act_q8_0(const float *x, void *dst, int64_t n_in);
void mc__round_f16_row(const float *x, void *dst, int64_t n_in);
void mc__round_bf16_row(const float *x, void *dst, int64_t n_in);

extern const mc_kernels mc__kernels_scalar;
extern const mc_kernels mc__kernels_avx2;
extern const mc_kernels mc__kernels_avx512;
extern const mc_kernels mc__kernels_avx512_bf16;

#endif
