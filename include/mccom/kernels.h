/* mccom/kernels.h — numeric kernels: number formats, quantization, matmul.
 *
 * Weight formats are ggml's, byte for byte (a GGUF tensor's data is used in
 * place, never repacked). A row of ne[0] = n elements is stored as:
 *
 *   F32   n little-endian IEEE binary32
 *   F16   n IEEE binary16 (uint16_t bits)
 *   BF16  n bfloat16 (the high 16 bits of a binary32)
 *   Q8_0  n/32 blocks of 34 bytes:  offset 0  u16 d (binary16 scale)
 *                                   offset 2  i8  qs[32]
 *         element j = qs[j] * d
 *   Q4_0  n/32 blocks of 18 bytes:  offset 0  u16 d (binary16 scale)
 *                                   offset 2  u8  qs[16]
 *         element j (j < 16) = ((qs[j] & 15) - 8) * d
 *         element j (j >= 16) = ((qs[j-16] >> 4) - 8) * d
 *
 * Every fast kernel has a scalar twin (the MC_ISA_SCALAR table) which is the
 * test oracle. ISA-specific code lives in src/kernels/ files named _avx2.c and _avx512.c
 * and is chosen at run time through an mc_kernels table; the tables are
 * constant data, initialised once (thread-safe), and there is no other
 * mutable global state.
 *
 * Numerics (what "matches ggml" means here):
 * - fp16/bf16 conversions are bit-exact with ggml's (round to nearest even;
 *   overflow to inf; NaN stays NaN: fp16 NaN -> 0x7e00 with the sign kept, as
 *   ggml's portable converter; bf16 NaN keeps its payload, quiet bit forced).
 * - mc_quantize_row is bit-exact with ggml's reference quantizers
 *   (quantize_row_q8_0_ref / quantize_row_q4_0_ref), which is what
 *   llama-quantize writes to files.
 * - mc_matmul follows ggml's CPU backend: for Q8_0/Q4_0 weights the
 *   activations are quantized to Q8_0 the way ggml-cpu's x86 quantize_row_q8_0
 *   does (d = amax/127, x*127/amax rounded half-to-even) and the block dot
 *   products are exact integers, scaled per block in f32; for F16 weights the
 *   activations are rounded to F16, for BF16 to BF16 (on AVX512-BF16 CPUs with
 *   vcvtneps2bf16, which flushes denormals, as ggml-cpu does there), and
 *   products accumulate in f32. Differences from ggml (and between ISAs) are only the order of
 *   f32 accumulation.
 */
#ifndef MCCOM_KERNELS_H
#define MCCOM_KERNELS_H

#include "mccom/common.h"
#include "mccom/gguf.h"
#include "mccom/pool.h"

#include <assert.h>
#include <string.h>

/* ---- quantized blocks ------------------------------------------------------ */

#define MC_QK8_0 32
#define MC_QK4_0 32

typedef struct mc_block_q8_0 {
    uint16_t d;      /* binary16 scale */
    int8_t qs[32];   /* element j = qs[j] * d */
} mc_block_q8_0;
static_assert(sizeof(mc_block_q8_0) == 34, "q8_0 block is 34 bytes");

typedef struct mc_block_q4_0 {
    uint16_t d;      /* binary16 scale */
    uint8_t qs[16];  /* low nibble: elements 0..15, high nibble: 16..31; value = (q-8)*d */
} mc_block_q4_0;
static_assert(sizeof(mc_block_q4_0) == 18, "q4_0 block is 18 bytes");

/* ---- scalar number conversions (bit-exact with ggml) ---------------------- */

static inline uint32_t mc__f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float mc__f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* binary16 -> binary32, exact for every input (denormals, inf, NaN kept). */
static inline float mc_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else {
        /* denormal: man * 2^-24, exact in binary32 */
        float v = (float)man * 0x1p-24f;
        bits = sign | mc__f32_bits(v);
    }
    return mc__f32_from_bits(bits);
}

/* binary32 -> binary16, round to nearest even (as F16C and ggml do);
 * too large -> +-inf; NaN -> 0x7e00 | sign. */
static inline uint16_t mc_fp32_to_fp16(float f) {
    /* ggml's branch-free scheme: let the FPU do the rounding by adding a
     * power of two that pushes the dropped bits off the mantissa. */
    const float scale_to_inf = 0x1.0p+112f;
    const float scale_to_zero = 0x1.0p-110f;
    float base = ((f < 0 ? -f : f) * scale_to_inf) * scale_to_zero;
    uint32_t w = mc__f32_bits(f);
    uint32_t shl1_w = w + w;
    uint32_t sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xff000000u;
    if (bias < 0x71000000u)
        bias = 0x71000000u;
    base = mc__f32_from_bits((bias >> 1) + 0x07800000u) + base;
    uint32_t bits = mc__f32_bits(base);
    uint32_t exp_bits = (bits >> 13) & 0x00007c00u;
    uint32_t mantissa_bits = bits & 0x00000fffu;
    uint32_t nonsign = exp_bits + mantissa_bits;
    return (uint16_t)((sign >> 16) | (shl1_w > 0xff000000u ? 0x7e00u : nonsign));
}

/* bfloat16 -> binary32 (exact). */
static inline float mc_bf16_to_fp32(uint16_t h) {
    return mc__f32_from_bits((uint32_t)h << 16);
}

/* binary32 -> bfloat16, round to nearest even; NaN stays NaN (quiet bit set),
 * as ggml_compute_fp32_to_bf16. Denormals are kept, not flushed. */
static inline uint16_t mc_fp32_to_bf16(float f) {
    uint32_t u = mc__f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 64u);
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
}

/* Row conversions (scalar; the tables below have SIMD ones). n >= 0. */
void mc_fp16_to_fp32_row(const uint16_t *x, float *y, int64_t n);
void mc_fp32_to_fp16_row(const float *x, uint16_t *y, int64_t n);
void mc_bf16_to_fp32_row(const uint16_t *x, float *y, int64_t n);
void mc_fp32_to_bf16_row(const float *x, uint16_t *y, int64_t n);

/* ---- row quantization ------------------------------------------------------ */

/* 1 if mc_quantize_row / mc_dequantize_row / mc_matmul handle ggml type
 * `type` (F32, F16, BF16, Q8_0, Q4_0), else 0. */
int mc_kernels_type_supported(int type);

/* Bytes of a row of n elements of a supported type; 0 if the type is not
 * supported, n < 0, or n is not a multiple of the type's block size. */
size_t mc_kernels_row_size(int type, int64_t n);

/* Convert n floats to type `type` into y (mc_kernels_row_size(type, n)
 * bytes), bit-exact with ggml's reference quantizers. Rows may be
 * concatenated: n may span many rows as long as each row is whole blocks.
 * Returns 0, MC_EUNSUPPORTED for another type, MC_EINVAL if n is negative or
 * not a multiple of the block size (y untouched). */
int mc_quantize_row(int type, const float *x, void *y, int64_t n);

/* Convert n elements of type `type` at x to floats (same rules/errors). */
int mc_dequantize_row(int type, const void *x, float *y, int64_t n);

/* ---- ISA dispatch ------------------------------------------------------------ */

enum mc_isa {
    MC_ISA_SCALAR = 0, /* portable C, the reference */
    MC_ISA_AVX2 = 1,   /* AVX2 + FMA + F16C */
    MC_ISA_AVX512 = 2, /* AVX-512 F/BW/VL/DQ + VNNI; BF16 instructions if present */
    MC_ISA_COUNT
};

/* ---- attention -------------------------------------------------------------- */

/* The KV cache of one KV head, as mc_kernels.attn reads it. Elements are F16
 * (uint16_t binary16) or F32.
 *
 * K is blocked: positions go in blocks of MC_KV_BLOCK, and inside a block
 * dimension-major, so that the scores of a block's 16 positions are the 16
 * lanes of one vector sum (no horizontal adds):
 *   element i of position p is at  (p / 16) * hd * 16 + i * 16 + p % 16
 * (mc_kv_k_index). A head's K of n positions takes mc_kv_padded(n) * hd
 * elements: the last block is whole even when n is not a multiple of 16.
 * V is row-major: element i of position p at p * v_stride + i. */
#define MC_KV_BLOCK 16
#define MC_ATTN_ROWS 8 /* query rows per attn call */

static inline int64_t mc_kv_padded(int64_t n) {
    return (n + MC_KV_BLOCK - 1) / MC_KV_BLOCK * MC_KV_BLOCK;
}
static inline int64_t mc_kv_k_index(int64_t p, int64_t i, int64_t hd) {
    return (p / MC_KV_BLOCK * hd + i) * MC_KV_BLOCK + p % MC_KV_BLOCK;
}

/* One attn call: rows r < n_rows, each a query q[r] that attends to the
 * positions 0..n[r]-1 of the cache:
 *   out[r] = sum_p softmax_p(scale * q[r]·k_p) * v_p        (hd floats)
 * The scores of a row go through scratch: the call needs
 * n_rows * mc_kv_padded(max n[r]) floats there (64-byte alignment is best).
 * Numerics: scores, max and sum in f32 (the scalar table: expf and a double
 * sum, as before); the SIMD tables use their own e^x (as swiglu's) and
 * divide the weighted sum of V by the softmax denominator at the end.
 * Determinism, the property speculative decoding rests on: out[r] depends
 * only on q[r], n[r], hd, scale, f16 and the cache's first n[r] positions,
 * bit for bit: never on the other rows, on n_rows, or on where row r sits in
 * the call. (The kernels read K lanes up to the block that holds the largest
 * n[r]; lanes of positions >= n[r] never reach row r's result.) */
typedef struct mc_attn_rows {
    int64_t hd;                   /* head dimension, >= 1 */
    const void *k;                /* K blocks (above) */
    const void *v;                /* V rows */
    int64_t v_stride;             /* elements from one V row to the next */
    int f16;                      /* 1: cache elements are F16, 0: F32 */
    float scale;                  /* usually 1/sqrt(hd) */
    int n_rows;                   /* 1..MC_ATTN_ROWS */
    const float *q[MC_ATTN_ROWS]; /* (hd) query of row r */
    int64_t n[MC_ATTN_ROWS];      /* positions row r attends to, >= 1 */
    float *out[MC_ATTN_ROWS];     /* (hd) output of row r, overwritten; must not
                                     overlap q, the cache or scratch */
    float *scratch;               /* n_rows * mc_kv_padded(max n) floats */
} mc_attn_rows;

struct mc__gemm_ops; /* internal (src/kernels/internal.h) */

/* A table of kernels for one ISA. Constant; never freed. The function
 * pointers may be called directly in hot loops (no dispatch cost).
 * All take n >= 0 elements, any n (no multiple-of-width requirement), and
 * unaligned pointers. Sums are accumulated in f32 in an ISA-specific order. */
typedef struct mc_kernels {
    const char *name; /* "scalar", "avx2", "avx512-vnni", "avx512-vnni-bf16" */
    int isa;          /* enum mc_isa */
    /* sum_i a[i]*b[i] */
    float (*vec_dot_f32)(int64_t n, const float *a, const float *b);
    /* sum_i fp16(a[i])*b[i] — attention scores against an F16 K cache */
    float (*vec_dot_f16_f32)(int64_t n, const uint16_t *a, const float *b);
    /* y[i] += alpha*x[i] */
    void (*vec_axpy_f32)(int64_t n, float alpha, const float *x, float *y);
    /* y[i] += alpha*fp16(x[i]) — attention output against an F16 V cache */
    void (*vec_axpy_f16)(int64_t n, float alpha, const uint16_t *x, float *y);
    /* Causal attention of up to MC_ATTN_ROWS query rows that share one KV
     * head (see mc_attn_rows). */
    void (*attn)(const mc_attn_rows *a);
    /* y[i] = silu(g[i]) * u[i] with silu(x) = x / (1 + e^-x) (SwiGLU). The
     * scalar table uses libm's expf; the SIMD ones their own e^x (as ggml
     * has its own), within 4e-7 relative of the scalar result. y may alias g
     * or u. */
    void (*swiglu)(int64_t n, const float *g, const float *u, float *y);
    /* row conversions, bit-exact with the scalar ones above */
    void (*fp16_to_fp32_row)(const uint16_t *x, float *y, int64_t n);
    void (*fp32_to_fp16_row)(const float *x, uint16_t *y, int64_t n);
    const struct mc__gemm_ops *gemm; /* matmul internals: use mc_matmul */
} mc_kernels;

/* The table for `isa`, or NULL if this CPU (or OS) lacks it or isa is out of
 * range. MC_ISA_SCALAR is always available. */
const mc_kernels *mc_kernels_for(int isa);

/* The best table for this CPU, chosen once (thread-safe). The environment
 * variable MCCOM_ISA=scalar|avx2|avx512, read at that first call, caps the
 * choice (it can lower it, never raise it above what the CPU has); an
 * unknown value is ignored. Never NULL. */
const mc_kernels *mc_kernels_best(void);

/* The table's name (see mc_kernels.name); "none" for NULL. */
const char *mc_kernels_name(const mc_kernels *k);

/* Convenience wrappers over mc_kernels_best() (one call through a pointer
 * plus a once-check; in hot loops prefer the table). */
float mc_vec_dot_f32(int64_t n, const float *a, const float *b);
float mc_vec_dot_f16_f32(int64_t n, const uint16_t *a_f16, const float *b);
void mc_vec_axpy_f32(int64_t n, float alpha, const float *x, float *y);
void mc_vec_axpy_f16(int64_t n, float alpha, const uint16_t *x_f16, float *y);

/* ---- matrix multiply ------------------------------------------------------------ */

/* Bytes of scratch mc_matmul needs for these shapes (any ISA); 0 for F32
 * weights. Does not depend on n_out or the pool. 0 also for an unsupported
 * type (mc_matmul then fails with MC_EUNSUPPORTED). */
size_t mc_matmul_scratch_size(int wtype, int64_t n_in, int64_t n_tok);

/* Y = X · Wᵀ:  Y[t*n_out + o] = sum_i W[o][i] * X[t*n_in + i]
 * for o < n_out, t < n_tok.
 *   k       kernel table (NULL = mc_kernels_best()).
 *   pool    threads to use (NULL = the caller alone). Rows of W are split in
 *           chunks over the pool; each thread works on tiles of four rows x
 *           several tokens so a weight row is read once per tile of tokens.
 *           Each output is accumulated on its own in a fixed order, so Y does
 *           not depend on the pool, on n_tok or on a token's place in X:
 *           row t of a batch is bitwise the result of X's row t alone.
 *   wtype   F32, F16, BF16, Q8_0 or Q4_0 (ggml type ids, gguf.h).
 *   W       the GGUF tensor data, ne[0] = n_in contiguous: row o at byte
 *           offset o * mc_kernels_row_size(wtype, n_in). Any alignment.
 *   X       (n_tok, n_in) floats, row-major.
 *   Y       (n_tok, n_out) floats, overwritten. Must not overlap X or W.
 *   scratch at least mc_matmul_scratch_size(wtype, n_in, n_tok) bytes, any
 *           alignment (the call aligns inside it); may be NULL when that size
 *           is 0. Its contents on return are unspecified.
 * Allocates nothing. Returns 0; MC_EUNSUPPORTED for another wtype; MC_EINVAL
 * for n_in <= 0, n_out < 0, n_tok < 0, n_in not a multiple of 32 for Q8_0 /
 * Q4_0, or scratch too small (Y untouched on error). n_out or n_tok = 0 is a
 * no-op. Stateless: concurrent calls are fine if each has its own pool (or
 * none), scratch and Y. */
int mc_matmul(const mc_kernels *k, mc_pool *pool, int wtype, const void *W, int64_t n_out,
              int64_t n_in, const float *X, int64_t n_tok, float *Y, void *scratch,
              size_t scratch_size);

/* One matrix of an mc_matmul_multi call. */
typedef struct mc_matmul_out {
    const void *W;   /* GGUF tensor data: n_out rows of n_in (as mc_matmul's W) */
    int64_t n_out;
    float *Y;        /* (n_tok, n_out), overwritten */
} mc_matmul_out;

#define MC_MATMUL_MAX 8 /* matrices per mc_matmul_multi call */

/* Several products of the same activations, Y_m = X · W_mᵀ for m < n_mats,
 * all weights of type wtype and width n_in: the activations are prepared once
 * and the rows of every matrix are spread over the pool in one run (one
 * dispatch instead of n_mats; a decode step runs Q, K, V and gate, up this
 * way). Y_m is bitwise what mc_matmul(..., W_m, n_out_m, ...) gives. The
 * scratch is mc_matmul_scratch_size(wtype, n_in, n_tok) as for one matrix.
 * Same errors as mc_matmul, and MC_EINVAL for n_mats outside
 * 1..MC_MATMUL_MAX; every Y_m untouched on error. */
int mc_matmul_multi(const mc_kernels *k, mc_pool *pool, int wtype, int n_mats,
                    const mc_matmul_out *mats, int64_t n_in, const float *X, int64_t n_tok,
                    void *scratch, size_t scratch_size);

#endif
