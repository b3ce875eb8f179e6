/* kernels_avx512.c — AVX-512 F/BW/VL/DQ + VNNI kernels, with AVX512-BF16
 * for BF16 weights where the CPU has it (two tables, chosen in kernels.c).
 *
 * gemm tiles are 4 rows x 4 tokens of 512-bit accumulators. Int8 dot products
 * use vpdpbusd (unsigned x signed bytes, summed in fours into int32). The
 * weights are made unsigned by an offset, the way the dot product is then
 * corrected is exact and shared by the 4 rows of a tile:
 *   Q8_0: (w + 128) as u8;  sum w*x = sum (w+128)*x - 128*sum x
 *   Q4_0: nibble q as u8;   sum (q-8)*x = sum q*x - 8*sum x
 * The correction -off*sum(x) is computed per token with vpdpbusd against a
 * constant and used as the accumulator's starting value, so each block's
 * integer lane sums equal the scalar oracle's. One zmm holds two blocks
 * (lanes 0-7: block b, 8-15: block b+1), each scaled by its own d_w*d_x.
 * Q4_0's nibble order (low nibbles = elements 0..15) is restored with one
 * 128-bit lane shuffle per row, shared by the tile's tokens.
 */
#include "internal.h"

#include <immintrin.h>

#define AI static inline __attribute__((always_inline))

/* ---- vector helpers -------------------------------------------------------------- */

AI __mmask16 tail16(int64_t n) {
    return (__mmask16)((1u << n) - 1u);
}

static float vec_dot_f32(int64_t n, const float *a, const float *b) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail16(n - i);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

static float vec_dot_f16_f32(int64_t n, const uint16_t *a, const float *b) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 a0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(a + i)));
        __m512 a1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(a + i + 16)));
        s0 = _mm512_fmadd_ps(a0, _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(a1, _mm512_loadu_ps(b + i + 16), s1);
    }
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail16(n - i);
        __m512 av = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, a + i));
        s0 = _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(m, b + i), s0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

static void vec_axpy_f32(int64_t n, float alpha, const float *x, float *y) {
    const __m512 va = _mm512_set1_ps(alpha);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail16(n - i);
        __m512 r = _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i));
        _mm512_mask_storeu_ps(y + i, m, r);
    }
}

static void vec_axpy_f16(int64_t n, float alpha, const uint16_t *x, float *y) {
    const __m512 va = _mm512_set1_ps(alpha);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail16(n - i);
        __m512 xv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, x + i));
        _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, xv, _mm512_maskz_loadu_ps(m, y + i)));
    }
}

static void fp16_to_fp32_row(const uint16_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail16(n - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, x + i)));
    }
}

/* Hardware rounding is ggml's; NaN lanes become 0x7e00 | sign as in ggml. */
static void fp32_to_fp16_row(const float *x, uint16_t *y, int64_t n) {
    const __m256i abs_mask = _mm256_set1_epi16(0x7fff), inf = _mm256_set1_epi16(0x7c00);
    const __m256i sign_mask = _mm256_set1_epi16((short)0x8000), qnan = _mm256_set1_epi16(0x7e00);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail16(n - i);
        __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, x + i), _MM_FROUND_TO_NEAREST_INT);
        __mmask16 nan = _mm256_cmpgt_epi16_mask(_mm256_and_si256(h, abs_mask), inf);
        h = _mm256_mask_blend_epi16(nan, h, _mm256_or_si256(_mm256_and_si256(h, sign_mask), qnan));
        _mm256_mask_storeu_epi16(y + i, m, h);
    }
}

/* ---- activation preparation -------------------------------------------------------- */

static void quantize_act_q8_0(const float *x, void *dst, int64_t n_in) {
    int8_t *qs = dst;
    float *ds = (float *)((uint8_t *)dst + mc__align64((size_t)n_in));
    for (int64_t b = 0; b < n_in / 32; b++) {
        __m512 v0 = _mm512_loadu_ps(x + b * 32);
        __m512 v1 = _mm512_loadu_ps(x + b * 32 + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        const float d = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        ds[b] = mc_fp16_to_fp32(mc_fp32_to_fp16(d));
        const __m512 mul = _mm512_set1_ps(id);
        const int rnd = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
        __m512i q0 = _mm512_cvtps_epi32(_mm512_roundscale_ps(_mm512_mul_ps(v0, mul), rnd));
        __m512i q1 = _mm512_cvtps_epi32(_mm512_roundscale_ps(_mm512_mul_ps(v1, mul), rnd));
        _mm_storeu_si128((__m128i *)(qs + b * 32), _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(qs + b * 32 + 16), _mm512_cvtepi32_epi8(q1));
    }
}

static void round_f16_row(const float *x, void *dst, int64_t n_in) {
    float *y = dst;
    for (int64_t i = 0; i < n_in; i += 16) {
        __mmask16 m = n_in - i >= 16 ? (__mmask16)0xffff : tail16(n_in - i);
        __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm512_mask_storeu_ps(y + i, m, _mm512_cvtph_ps(h));
    }
}

/* bfloat16 activations for vdpbf16ps, converted as ggml-cpu does on such
 * CPUs (vcvtneps2bf16: nearest even, denormals flushed). */
static void to_bf16_row(const float *x, void *dst, int64_t n_in) {
    uint16_t *y = dst;
    for (int64_t i = 0; i < n_in; i += 16) {
        __mmask16 m = n_in - i >= 16 ? (__mmask16)0xffff : tail16(n_in - i);
        __m256bh h = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + i));
        _mm256_mask_storeu_epi16(y + i, m, (__m256i)h);
    }
}

/* ---- gemm tiles ---------------------------------------------------------------------- */

#define NR 4
#define NT 4

typedef struct tile_ptrs {
    const uint8_t *w[NR];
    const uint8_t *x[NT];
} tile_ptrs;

AI void tile_setup(const mc__gemm_args *a, int64_t r, int64_t t, int nr, int nt, tile_ptrs *p) {
    for (int i = 0; i < nr; i++)
        p->w[i] = a->W + (size_t)(r + i) * a->w_row;
    for (int j = 0; j < nt; j++)
        p->x[j] = a->act + (size_t)(t + j) * a->act_stride;
}

AI void tile_finish(const mc__gemm_args *a, int64_t r, int64_t t, int nr, int nt,
                    __m512 acc[NR][NT]) {
    for (int i = 0; i < nr; i++)
        for (int j = 0; j < nt; j++)
            a->Y[(t + j) * a->n_out + r + i] = _mm512_reduce_add_ps(acc[i][j]);
}

/* kind 0 = f32 weights, 1 = f16, 2 = bf16 (weights widened to f32);
 * activations f32. 16 elements per step, the tail masked. */
AI __m512 load_w16(const uint8_t *w, int64_t k, __mmask16 m, int kind) {
    if (kind == 0)
        return _mm512_maskz_loadu_ps(m, (const float *)w + k);
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)w + k);
    if (kind == 1)
        return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

AI void float_step(const tile_ptrs *p, int64_t k, __mmask16 m, int nr, int nt, int kind,
                   __m512 acc[NR][NT]) {
    __m512 xv[NT];
#pragma GCC unroll 4
    for (int j = 0; j < nt; j++)
        xv[j] = _mm512_maskz_loadu_ps(m, (const float *)p->x[j] + k);
#pragma GCC unroll 4
    for (int i = 0; i < nr; i++) {
        __m512 wv = load_w16(p->w[i], k, m, kind);
#pragma GCC unroll 4
        for (int j = 0; j < nt; j++)
            acc[i][j] = _mm512_fmadd_ps(wv, xv[j], acc[i][j]);
    }
}

AI void tile_float(const mc__gemm_args *a, int64_t r, int64_t t, int nr, int nt, int kind) {
    tile_ptrs p;
    tile_setup(a, r, t, nr, nt, &p);
    __m512 acc[NR][NT];
    for (int i = 0; i < nr; i++)
        for (int j = 0; j < nt; j++)
            acc[i][j] = _mm512_setzero_ps();
    const int64_t n = a->n_in;
    int64_t k = 0;
    for (; k + 16 <= n; k += 16)
        float_step(&p, k, (__mmask16)0xffff, nr, nt, kind, acc);
    if (k < n)
        float_step(&p, k, tail16(n - k), nr, nt, kind, acc);
    tile_finish(a, r, t, nr, nt, acc);
}

/* BF16 weights x BF16 activations with vdpbf16ps: 32 elements per step. */
AI void bf16_step(const tile_ptrs *p, int64_t k, __mmask32 m, int nr, int nt,
                  __m512 acc[NR][NT]) {
    __m512bh xv[NT];
#pragma GCC unroll 4
    for (int j = 0; j < nt; j++)
        xv[j] = (__m512bh)_mm512_maskz_loadu_epi16(m, (const uint16_t *)p->x[j] + k);
#pragma GCC unroll 4
    for (int i = 0; i < nr; i++) {
        __m512bh wv = (__m512bh)_mm512_maskz_loadu_epi16(m, (const uint16_t *)p->w[i] + k);
#pragma GCC unroll 4
        for (int j = 0; j < nt; j++)
            acc[i][j] = _mm512_dpbf16_ps(acc[i][j], wv, xv[j]);
    }
}

AI void tile_bf16dp(const mc__gemm_args *a, int64_t r, int64_t t, int nr, int nt) {
    tile_ptrs p;
    tile_setup(a, r, t, nr, nt, &p);
    __m512 acc[NR][NT];
    for (int i = 0; i < nr; i++)
        for (int j = 0; j < nt; j++)
            acc[i][j] = _mm512_setzero_ps();
    const int64_t n = a->n_in;
    int64_t k = 0;
    for (; k + 32 <= n; k += 32)
        bf16_step(&p, k, (__mmask32)0xffffffffu, nr, nt, acc);
    if (k < n)
        bf16_step(&p, k, (__mmask32)((1ull << (n - k)) - 1), nr, nt, acc);
    tile_finish(a, r, t, nr, nt, acc);
}

/* Two blocks (b, b+1) per step; two = 0 for a lone last block. q4 selects
 * Q4_0 (else Q8_0). */
AI void quant_step(const tile_ptrs *p, int64_t b, int two, size_t doff, int nr, int nt, int q4,
                   __m512 acc[NR][NT]) {
    const size_t bsz = q4 ? sizeof(mc_block_q4_0) : sizeof(mc_block_q8_0);
    const __m512i idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i off = _mm512_set1_epi8(q4 ? 8 : (char)0x80);
    __m512i wv[NR];
    __m512 dw[NR];
#pragma GCC unroll 4
    for (int i = 0; i < nr; i++) {
        const uint8_t *b0 = p->w[i] + (size_t)b * bsz;
        const uint8_t *b1 = b0 + bsz;
        uint16_t h0, h1 = 0;
        memcpy(&h0, b0, 2);
        if (two)
            memcpy(&h1, b1, 2);
        __m128 d2 = _mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)h0 | ((uint32_t)h1 << 16))));
        dw[i] = _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(d2));
        if (q4) {
            __m128i l0 = _mm_loadu_si128((const __m128i *)(b0 + 2));
            __m128i l1 = two ? _mm_loadu_si128((const __m128i *)(b1 + 2)) : _mm_setzero_si128();
            __m256i q = _mm256_inserti128_si256(_mm256_castsi128_si256(l0), l1, 1);
            __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(q), _mm256_srli_epi16(q, 4), 1);
            z = _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0)); /* q0 lo, q0 hi, q1 lo, q1 hi */
            wv[i] = _mm512_and_si512(z, _mm512_set1_epi8(0x0f));
        } else {
            __m256i l0 = _mm256_loadu_si256((const __m256i *)(b0 + 2));
            __m256i l1 = two ? _mm256_loadu_si256((const __m256i *)(b1 + 2)) : _mm256_setzero_si256();
            wv[i] = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(l0), l1, 1), off);
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < nt; j++) {
        const int8_t *xq = (const int8_t *)p->x[j] + b * 32;
        const float *xd = (const float *)(p->x[j] + doff) + b;
        __m512i xv = two ? _mm512_loadu_si512(xq)
                         : _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)xq));
        __m128 d2 = two ? _mm_castpd_ps(_mm_load_sd((const double *)xd)) : _mm_load_ss(xd);
        __m512 dx = _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(d2));
        __m512i corr = _mm512_sub_epi32(_mm512_setzero_si512(),
                                        _mm512_dpbusd_epi32(_mm512_setzero_si512(), off, xv));
#pragma GCC unroll 4
        for (int i = 0; i < nr; i++) {
            __m512i si = _mm512_dpbusd_epi32(corr, wv[i], xv);
            acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(si), _mm512_mul_ps(dw[i], dx), acc[i][j]);
        }
    }
}

AI void tile_quant(const mc__gemm_args *a, int64_t r, int64_t t, int nr, int nt, int q4) {
    tile_ptrs p;
    tile_setup(a, r, t, nr, nt, &p);
    __m512 acc[NR][NT];
    for (int i = 0; i < nr; i++)
        for (int j = 0; j < nt; j++)
            acc[i][j] = _mm512_setzero_ps();
    const int64_t nb = a->n_in / 32;
    const size_t doff = mc__align64((size_t)a->n_in);
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2)
        quant_step(&p, b, 1, doff, nr, nt, q4, acc);
    if (b < nb)
        quant_step(&p, b, 0, doff, nr, nt, q4, acc);
    tile_finish(a, r, t, nr, nt, acc);
}

#define TILE_SWITCH(call)                 \
    switch (nr * 8 + nt) {                \
    case 4 * 8 + 4: call(4, 4); break;    \
    case 4 * 8 + 3: call(4, 3); break;    \
    case 4 * 8 + 2: call(4, 2); break;    \
    case 4 * 8 + 1: call(4, 1); break;    \
    case 3 * 8 + 4: call(3, 4); break;    \
    case 3 * 8 + 3: call(3, 3); break;    \
    case 3 * 8 + 2: call(3, 2); break;    \
    case 3 * 8 + 1: call(3, 1); break;    \
    case 2 * 8 + 4: call(2, 4); break;    \
    case 2 * 8 + 3: call(2, 3); break;    \
    case 2 * 8 + 2: call(2, 2); break;    \
    case 2 * 8 + 1: call(2, 1); break;    \
    case 1 * 8 + 4: call(1, 4); break;    \
    case 1 * 8 + 3: call(1, 3); break;    \
    case 1 * 8 + 2: call(1, 2); break;    \
    default: call(1, 1); break;           \
    }

#define DEFINE_GEMM(name)                                                              \
    static void name(const mc__gemm_args *a, int64_t r0, int64_t r1, int64_t t0,       \
                     int64_t t1) {                                                     \
        for (int64_t r = r0; r < r1; r += NR) {                                        \
            const int nr = (int)MC_MIN(NR, r1 - r);                                    \
            for (int64_t t = t0; t < t1; t += NT) {                                    \
                const int nt = (int)MC_MIN(NT, t1 - t);                                \
                TILE_SWITCH(CALL_##name)                                               \
            }                                                                          \
        }                                                                              \
    }

#define CALL_gemm_f32(R, T) tile_float(a, r, t, R, T, 0)
#define CALL_gemm_f16(R, T) tile_float(a, r, t, R, T, 1)
#define CALL_gemm_bf16(R, T) tile_float(a, r, t, R, T, 2)
#define CALL_gemm_bf16dp(R, T) tile_bf16dp(a, r, t, R, T)
#define CALL_gemm_q8_0(R, T) tile_quant(a, r, t, R, T, 0)
#define CALL_gemm_q4_0(R, T) tile_quant(a, r, t, R, T, 1)

DEFINE_GEMM(gemm_f32)
DEFINE_GEMM(gemm_f16)
DEFINE_GEMM(gemm_bf16)
DEFINE_GEMM(gemm_bf16dp)
DEFINE_GEMM(gemm_q8_0)
DEFINE_GEMM(gemm_q4_0)

static const struct mc__gemm_ops gemm_avx512 = {
    .prep = {NULL, round_f16_row, mc__round_bf16_row, quantize_act_q8_0, quantize_act_q8_0},
    .gemm = {gemm_f32, gemm_f16, gemm_bf16, gemm_q8_0, gemm_q4_0},
    .act_bf16 = 0,
};

static const struct mc__gemm_ops gemm_avx512_bf16 = {
    .prep = {NULL, round_f16_row, to_bf16_row, quantize_act_q8_0, quantize_act_q8_0},
    .gemm = {gemm_f32, gemm_f16, gemm_bf16dp, gemm_q8_0, gemm_q4_0},
    .act_bf16 = 1,
};

const mc_kernels mc__kernels_avx512 = {
    .name = "avx512-vnni",
    .isa = MC_ISA_AVX512,
    .vec_dot_f32 = vec_dot_f32,
    .vec_dot_f16_f32 = vec_dot_f16_f32,
    .vec_axpy_f32 = vec_axpy_f32,
    .vec_axpy_f16 = vec_axpy_f16,
    .fp16_to_fp32_row = fp16_to_fp32_row,
    .fp32_to_fp16_row = fp32_to_fp16_row,
    .gemm = &gemm_avx512,
};

const mc_kernels mc__kernels_avx512_bf16 = {
    .name = "avx512-vnni-bf16",
    .isa = MC_ISA_AVX512,
    .vec_dot_f32 = vec_dot_f32,
    .vec_dot_f16_f32 = vec_dot_f16_f32,
    .vec_axpy_f32 = vec_axpy_f32,
    .vec_axpy_f16 = vec_axpy_f16,
    .fp16_to_fp32_row = fp16_to_fp32_row,
    .fp32_to_fp16_row = fp32_to_fp16_row,
    .gemm = &gemm_avx512_bf16,
};
