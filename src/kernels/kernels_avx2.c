/* kernels_avx2.c — AVX2 + FMA + F16C kernels (built with -mavx2 -mfma -mf16c).
 *
 * gemm tiles are 4 rows x 2 tokens of 256-bit accumulators (16 ymm registers
 * do not fit more). Int8 dot products use vpmaddubsw, which multiplies
 * unsigned by signed bytes: Q8_0 weights go through the sign trick
 * (|w| * sign(x, w)); Q4_0 nibbles are already unsigned, and the -8 offset is
 * subtracted once per token as 8 * sum(x), computed with the same
 * instructions, so every block sum is the exact integer the scalar oracle
 * computes. Only the f32 accumulation order differs from kernels_scalar.c.
 */
#include "internal.h"

#include <immintrin.h>

#define AI static inline __attribute__((always_inline))

static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* ---- vector helpers -------------------------------------------------------------- */

static float vec_dot_f32(int64_t n, const float *a, const float *b) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static float vec_dot_f16_f32(int64_t n, const uint16_t *a, const float *b) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 a0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i)));
        __m256 a1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i + 8)));
        s0 = _mm256_fmadd_ps(a0, _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(a1, _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i))),
                             _mm256_loadu_ps(b + i), s0);
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < n; i++)
        s += mc_fp16_to_fp32(a[i]) * b[i];
    return s;
}

static void vec_axpy_f32(int64_t n, float alpha, const float *x, float *y) {
    const __m256 va = _mm256_set1_ps(alpha);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += alpha * x[i];
}

static void vec_axpy_f16(int64_t n, float alpha, const uint16_t *x, float *y) {
    const __m256 va = _mm256_set1_ps(alpha);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 xv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i)));
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, xv, _mm256_loadu_ps(y + i)));
    }
    for (; i < n; i++)
        y[i] += alpha * mc_fp16_to_fp32(x[i]);
}

static void fp16_to_fp32_row(const uint16_t *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    for (; i < n; i++)
        y[i] = mc_fp16_to_fp32(x[i]);
}

/* F16C rounds like ggml; only NaN differs (F16C keeps payload bits), so NaN
 * lanes are rewritten to ggml's 0x7e00 | sign. */
static void fp32_to_fp16_row(const float *x, uint16_t *y, int64_t n) {
    const __m128i abs_mask = _mm_set1_epi16(0x7fff), inf = _mm_set1_epi16(0x7c00);
    const __m128i sign_mask = _mm_set1_epi16((short)0x8000), qnan = _mm_set1_epi16(0x7e00);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
        __m128i is_nan = _mm_cmpgt_epi16(_mm_and_si128(h, abs_mask), inf);
        __m128i fixed = _mm_or_si128(_mm_and_si128(h, sign_mask), qnan);
        _mm_storeu_si128((__m128i *)(y + i), _mm_blendv_epi8(h, fixed, is_nan));
    }
    for (; i < n; i++)
        y[i] = mc_fp32_to_fp16(x[i]);
}

/* ---- activation preparation -------------------------------------------------------- */

static void quantize_act_q8_0(const float *x, void *dst, int64_t n_in) {
    int8_t *qs = dst;
    float *ds = (float *)((uint8_t *)dst + mc__align64((size_t)n_in));
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < n_in / 32; b++) {
        const float *xb = x + b * 32;
        __m256 v[4], m = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(xb + 8 * k);
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[k]));
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        const float d = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        ds[b] = mc_fp16_to_fp32(mc_fp32_to_fp16(d));
        const __m256 mul = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; k++)
            q[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], mul),
                                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        /* pack 32 int32 -> 32 int8 (in-lane packs, then fix the lane order) */
        __m256i p01 = _mm256_packs_epi32(q[0], q[1]);
        __m256i p23 = _mm256_packs_epi32(q[2], q[3]);
        __m256i p = _mm256_packs_epi16(p01, p23);
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(qs + b * 32), p);
    }
}

static void round_f16_row(const float *x, void *dst, int64_t n_in) {
    float *y = dst;
    int64_t i = 0;
    for (; i + 8 <= n_in; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(x + i),
                                                                _MM_FROUND_TO_NEAREST_INT)));
    for (; i < n_in; i++)
        y[i] = mc_fp16_to_fp32(mc_fp32_to_fp16(x[i]));
}

/* ---- gemm tiles ---------------------------------------------------------------------- */

#define NR 4
#define NT 2

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

AI void tile_store(const mc__gemm_args *a, int64_t r, int64_t t, int nr, int nt,
                   float s[NR][NT]) {
    for (int i = 0; i < nr; i++)
        for (int j = 0; j < nt; j++)
            a->Y[(t + j) * a->n_out + r + i] = s[i][j];
}

/* Float weights: kind 0 = f32, 1 = f16, 2 = bf16; activations are f32. */
AI __m256 load_w8(const uint8_t *w, int64_t i, int kind) {
    if (kind == 0)
        return _mm256_loadu_ps((const float *)w + i);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + i));
    if (kind == 1)
        return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

AI float load_w1(const uint8_t *w, int64_t i, int kind) {
    if (kind == 0)
        return ((const float *)w)[i];
    uint16_t h = ((const uint16_t *)w)[i];
    return kind == 1 ? mc_fp16_to_fp32(h) : mc_bf16_to_fp32(h);
}

AI void tile_float(const mc__gemm_args *a, int64_t r, int64_t t, int nr, int nt, int kind) {
    tile_ptrs p;
    tile_setup(a, r, t, nr, nt, &p);
    __m256 acc[NR][NT];
    for (int i = 0; i < nr; i++)
        for (int j = 0; j < nt; j++)
            acc[i][j] = _mm256_setzero_ps();
    const int64_t n = a->n_in;
    int64_t k = 0;
    for (; k + 8 <= n; k += 8) {
        __m256 xv[NT];
#pragma GCC unroll 4
        for (int j = 0; j < nt; j++)
            xv[j] = _mm256_loadu_ps((const float *)p.x[j] + k);
#pragma GCC unroll 4
        for (int i = 0; i < nr; i++) {
            __m256 wv = load_w8(p.w[i], k, kind);
#pragma GCC unroll 4
            for (int j = 0; j < nt; j++)
                acc[i][j] = _mm256_fmadd_ps(wv, xv[j], acc[i][j]);
        }
    }
    float s[NR][NT];
    for (int i = 0; i < nr; i++)
        for (int j = 0; j < nt; j++) {
            float v = hsum256(acc[i][j]);
            for (int64_t kk = k; kk < n; kk++)
                v += load_w1(p.w[i], kk, kind) * ((const float *)p.x[j])[kk];
            s[i][j] = v;
        }
    tile_store(a, r, t, nr, nt, s);
}

/* Quantized weights: q4 = 0 for Q8_0, 1 for Q4_0. */
AI void tile_quant(const mc__gemm_args *a, int64_t r, int64_t t, int nr, int nt, int q4) {
    tile_ptrs p;
    tile_setup(a, r, t, nr, nt, &p);
    const size_t bsz = q4 ? sizeof(mc_block_q4_0) : sizeof(mc_block_q8_0);
    const int64_t nb = a->n_in / 32;
    const size_t doff = mc__align64((size_t)a->n_in);
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i eight = _mm256_set1_epi8(8);
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    __m256 acc[NR][NT];
    for (int i = 0; i < nr; i++)
        for (int j = 0; j < nt; j++)
            acc[i][j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i xv[NT], corr[NT];
        __m256 xd[NT];
#pragma GCC unroll 4
        for (int j = 0; j < nt; j++) {
            xv[j] = _mm256_loadu_si256((const __m256i *)(p.x[j] + b * 32));
            xd[j] = _mm256_broadcast_ss((const float *)(p.x[j] + doff) + b);
            if (q4)
                corr[j] = _mm256_madd_epi16(_mm256_maddubs_epi16(eight, xv[j]), ones);
        }
#pragma GCC unroll 4
        for (int i = 0; i < nr; i++) {
            const uint8_t *blk = p.w[i] + (size_t)b * bsz;
            uint16_t dh;
            memcpy(&dh, blk, 2);
            const __m256 dw = _mm256_set1_ps(_cvtsh_ss(dh));
            __m256i wv;
            if (q4) {
                __m128i q = _mm_loadu_si128((const __m128i *)(blk + 2));
                wv = _mm256_and_si256(
                    _mm256_insertf128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1),
                    low4);
            } else {
                wv = _mm256_loadu_si256((const __m256i *)(blk + 2));
            }
            const __m256i wabs = q4 ? wv : _mm256_sign_epi8(wv, wv);
#pragma GCC unroll 4
            for (int j = 0; j < nt; j++) {
                __m256i si;
                if (q4) {
                    si = _mm256_sub_epi32(
                        _mm256_madd_epi16(_mm256_maddubs_epi16(wabs, xv[j]), ones), corr[j]);
                } else {
                    si = _mm256_madd_epi16(
                        _mm256_maddubs_epi16(wabs, _mm256_sign_epi8(xv[j], wv)), ones);
                }
                acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(si), _mm256_mul_ps(dw, xd[j]),
                                            acc[i][j]);
            }
        }
    }
    float s[NR][NT];
    for (int i = 0; i < nr; i++)
        for (int j = 0; j < nt; j++)
            s[i][j] = hsum256(acc[i][j]);
    tile_store(a, r, t, nr, nt, s);
}

/* One gemm entry per weight kind: tiles over rows x tokens, every (nr, nt)
 * tail shape instantiated with constants so the loops above unroll. */
#define TILE_SWITCH(call)                              \
    switch (nr * 8 + nt) {                             \
    case 4 * 8 + 2: call(4, 2); break;                 \
    case 4 * 8 + 1: call(4, 1); break;                 \
    case 3 * 8 + 2: call(3, 2); break;                 \
    case 3 * 8 + 1: call(3, 1); break;                 \
    case 2 * 8 + 2: call(2, 2); break;                 \
    case 2 * 8 + 1: call(2, 1); break;                 \
    case 1 * 8 + 2: call(1, 2); break;                 \
    default: call(1, 1); break;                        \
    }

#define DEFINE_GEMM(name)                                                               \
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
#define CALL_gemm_q8_0(R, T) tile_quant(a, r, t, R, T, 0)
#define CALL_gemm_q4_0(R, T) tile_quant(a, r, t, R, T, 1)

DEFINE_GEMM(gemm_f32)
DEFINE_GEMM(gemm_f16)
DEFINE_GEMM(gemm_bf16)
DEFINE_GEMM(gemm_q8_0)
DEFINE_GEMM(gemm_q4_0)

static const struct mc__gemm_ops gemm_avx2 = {
    .prep = {NULL, round_f16_row, mc__round_bf16_row, quantize_act_q8_0, quantize_act_q8_0},
    .gemm = {gemm_f32, gemm_f16, gemm_bf16, gemm_q8_0, gemm_q4_0},
    .act_bf16 = 0,
};

const mc_kernels mc__kernels_avx2 = {
    .name = "avx2",
    .isa = MC_ISA_AVX2,
    .vec_dot_f32 = vec_dot_f32,
    .vec_dot_f16_f32 = vec_dot_f16_f32,
    .vec_axpy_f32 = vec_axpy_f32,
    .vec_axpy_f16 = vec_axpy_f16,
    .fp16_to_fp32_row = fp16_to_fp32_row,
    .fp32_to_fp16_row = fp32_to_fp16_row,
    .gemm = &gemm_avx2,
};
