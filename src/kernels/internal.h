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
 *   Q8_0/Q4_0  int8 qs[n_in] at offset 0, then float d[n_in/32] at offset
 *              mc__align64(n_in): ggml-cpu's x86 quantize_row_q8_0, with d
 *              already rounded through binary16 as ggml stores it. */
typedef struct mc__gemm_args {
    const uint8_t *W;     /* weights, row o at W + o*w_row */
    size_t w_row;         /* bytes per weight row */
    int64_t n_in;
    int64_t n_out;        /* row stride of Y */
    const uint8_t *act;   /* prepared activations, token t at act + t*act_stride */
    size_t act_stride;
    float *Y;             /* (n_tok, n_out) */
} mc__gemm_args;

/* Compute Y[t][o] for o in [r0,r1), t in [t0,t1). */
typedef void (*mc__gemm_fn)(const mc__gemm_args *a, int64_t r0, int64_t r1, int64_t t0,
                            int64_t t1);
/* Prepare one token: n_in floats x -> the record at dst (layout above). */
typedef void (*mc__prep_fn)(const float *x, void *dst, int64_t n_in);

struct mc__gemm_ops {
    mc__prep_fn prep[MC__WT_COUNT]; /* NULL for F32 */
    mc__gemm_fn gemm[MC__WT_COUNT];
    int act_bf16;                   /* BF16 activations stored as bfloat16 */
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
