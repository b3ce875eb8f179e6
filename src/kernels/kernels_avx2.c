/* kernels_avx2.c — AVX2 + FMA + F16C kernels (built with -mavx2 -mfma -mf16c).
 *
 * gemm tiles are 4 rows x 2 tokens of 256-bit accumulators (16 ymm registers
 * do not fit more; 4 x 1 for decode). Int8 dot products use vpmaddubsw, which multiplies
 * unsigned by signed bytes: Q8_0 weights go through the sign trick
 * (|w| * sign(x, w)), a block at a time; Q4_0 nibbles are already unsigned and
 * go two blocks at a time against grouped activations (internal.h), whose
 * per-token correction restores the -8 offset. Every block's integer sum is
 * the exact integer the scalar oracle computes; only the f32 accumulation
 * order differs from kernels_scalar.c.
 *
 * attn as in kernels_avx512.c with half the registers: 2 rows x 2 K blocks
 * of scores, 2 rows x 32 columns of weighted V, softmax with exp256.
 */
#include "internal.h"

#include <immintrin.h>
#include <math.h>

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

/* e^x as 2^n * e^r (see kernels_avx512.c), 2^n built in the exponent bits;
 * x is clamped to [-87.3, 88.7] so that n stays in [-126, 127], and above
 * 88.7 the result is inf, as expf's. (Below -87.3 it is 1e-38 instead of a
 * denormal or 0: 1 + e^x is 1 either way.) */
AI __m256 exp256(__m256 x0) {
    const __m256 big = _mm256_cmp_ps(x0, _mm256_set1_ps(88.7f), _CMP_GT_OQ);
    __m256 x = _mm256_min_ps(_mm256_max_ps(x0, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.7f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    n = _mm256_min_ps(n, _mm256_set1_ps(127.0f));
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_blendv_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)), _mm256_set1_ps(INFINITY), big);
}

/* ---- attention ------------------------------------------------------------------------ */

AI __m256 load_kv8(const void *kv, int64_t i, const int f16) {
    if (f16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)kv + i)));
    return _mm256_loadu_ps((const float *)kv + i);
}

AI float load_kv1(const void *kv, int64_t i, const int f16) {
    return f16 ? mc_fp16_to_fp32(((const uint16_t *)kv)[i]) : ((const float *)kv)[i];
}

/* Scores of rows r0..r0+R-1 against K blocks b0..b0+B-1 (two ymm each):
 * lane j of block b is one FMA chain over i = 0..hd-1 in order, whatever R
 * and B are (see kernels_avx512.c). */
AI void qk_tile(const mc_attn_rows *a, int r0, int64_t b0, int64_t S, const int R, const int B,
                const int f16) {
    const int64_t hd = a->hd;
    const int64_t kb = b0 * hd * MC_KV_BLOCK;
    const float *q[2];
    __m256 acc[2][2][2];
#pragma GCC unroll 2
    for (int r = 0; r < R; r++) {
        q[r] = a->q[r0 + r];
#pragma GCC unroll 2
        for (int b = 0; b < B; b++)
            acc[r][b][0] = acc[r][b][1] = _mm256_setzero_ps();
    }
    for (int64_t i = 0; i < hd; i++) {
        __m256 kv[2][2];
#pragma GCC unroll 2
        for (int b = 0; b < B; b++) {
            kv[b][0] = load_kv8(a->k, kb + (b * hd + i) * MC_KV_BLOCK, f16);
            kv[b][1] = load_kv8(a->k, kb + (b * hd + i) * MC_KV_BLOCK + 8, f16);
        }
#pragma GCC unroll 2
        for (int r = 0; r < R; r++) {
            const __m256 qv = _mm256_set1_ps(q[r][i]);
#pragma GCC unroll 2
            for (int b = 0; b < B; b++) {
                acc[r][b][0] = _mm256_fmadd_ps(qv, kv[b][0], acc[r][b][0]);
                acc[r][b][1] = _mm256_fmadd_ps(qv, kv[b][1], acc[r][b][1]);
            }
        }
    }
#pragma GCC unroll 2
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int b = 0; b < B; b++) {
            float *dst = a->scratch + (r0 + r) * S + (b0 + b) * MC_KV_BLOCK;
            _mm256_storeu_ps(dst, acc[r][b][0]);
            _mm256_storeu_ps(dst + 8, acc[r][b][1]);
        }
}

/* Lanes j < n of an 8-lane vector, as a blend mask. */
AI __m256 lanes_below(int64_t n) {
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)MC_MIN(n, 8)), iota));
}

/* A row's scores s[0..n) (raw dot products) -> e^(scale*s - max) in place,
 * 0 in the padding lanes of the last vector; returns 1 / their sum. */
AI float softmax_row(float *s, int64_t n, float scale) {
    const int64_t nv = (n + 7) / 8;
    const __m256 last = lanes_below(n - 8 * (nv - 1));
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 mx = ninf;
    for (int64_t j = 0; j + 1 < nv; j++)
        mx = _mm256_max_ps(mx, _mm256_loadu_ps(s + 8 * j));
    mx = _mm256_max_ps(mx, _mm256_blendv_ps(ninf, _mm256_loadu_ps(s + 8 * (nv - 1)), last));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    /* scale > 0, so the max of the rounded products is the rounded max */
    const __m256 ms = _mm256_set1_ps(_mm_cvtss_f32(m4) * scale);
    const __m256 sc = _mm256_set1_ps(scale);
    __m256 sum = _mm256_setzero_ps();
    for (int64_t j = 0; j < nv; j++) {
        __m256 e = exp256(_mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(s + 8 * j), sc), ms));
        if (j == nv - 1)
            e = _mm256_and_ps(e, last);
        _mm256_storeu_ps(s + 8 * j, e);
        sum = _mm256_add_ps(sum, e);
    }
    return 1.0f / hsum256(sum);
}

/* Output columns i0..i0+8*NV-1 of rows r0..r0+R-1: per column one FMA chain
 * over p = 0..n-1 in order, then times 1/sum; the positions all R rows
 * attend to go through the tile, each row's remaining ones continue its own
 * chains. */
AI void pv_tile(const mc_attn_rows *a, int r0, const float *inv, int64_t S, int64_t i0,
                const int R, const int NV, const int f16) {
    const int64_t st = a->v_stride;
    const float *e[2];
    int64_t n_lo = INT64_MAX;
    __m256 acc[2][4];
#pragma GCC unroll 2
    for (int r = 0; r < R; r++) {
        e[r] = a->scratch + (r0 + r) * S;
        n_lo = MC_MIN(n_lo, a->n[r0 + r]);
#pragma GCC unroll 4
        for (int c = 0; c < NV; c++)
            acc[r][c] = _mm256_setzero_ps();
    }
    for (int64_t p = 0; p < n_lo; p++) {
        __m256 vv[4];
#pragma GCC unroll 4
        for (int c = 0; c < NV; c++)
            vv[c] = load_kv8(a->v, p * st + i0 + 8 * c, f16);
#pragma GCC unroll 2
        for (int r = 0; r < R; r++) {
            const __m256 w = _mm256_set1_ps(e[r][p]);
#pragma GCC unroll 4
            for (int c = 0; c < NV; c++)
                acc[r][c] = _mm256_fmadd_ps(w, vv[c], acc[r][c]);
        }
    }
#pragma GCC unroll 2
    for (int r = 0; r < R; r++) {
        for (int64_t p = n_lo; p < a->n[r0 + r]; p++) {
            const __m256 w = _mm256_set1_ps(e[r][p]);
#pragma GCC unroll 4
            for (int c = 0; c < NV; c++)
                acc[r][c] = _mm256_fmadd_ps(w, load_kv8(a->v, p * st + i0 + 8 * c, f16), acc[r][c]);
        }
        const __m256 iv = _mm256_set1_ps(inv[r0 + r]);
#pragma GCC unroll 4
        for (int c = 0; c < NV; c++)
            _mm256_storeu_ps(a->out[r0 + r] + i0 + 8 * c, _mm256_mul_ps(acc[r][c], iv));
    }
}

#define QK_CASE(R_, B_)                     \
    case (R_) * 8 + (B_):                   \
        qk_tile(a, r0, b0, S, R_, B_, f16); \
        break;
#define PV_CASE(R_, NV_)                           \
    case (R_) * 8 + (NV_):                         \
        pv_tile(a, r0, inv, S, i0, R_, NV_, f16);  \
        break;

/* Rows in pairs; K in steps of two blocks (32 positions), V in steps of 32
 * columns; the last hd % 8 columns one row and column at a time. */
AI void attn_t(const mc_attn_rows *a, const int f16) {
    const int64_t hd = a->hd, hd8 = hd / 8 * 8;
    int64_t n_max = 0;
    for (int r = 0; r < a->n_rows; r++)
        n_max = MC_MAX(n_max, a->n[r]);
    const int64_t S = mc_kv_padded(n_max);
    float inv[MC_ATTN_ROWS];
    for (int r0 = 0; r0 < a->n_rows; r0 += 2) {
        const int R = MC_MIN(2, a->n_rows - r0);
        int64_t n_hi = 0;
        for (int r = r0; r < r0 + R; r++)
            n_hi = MC_MAX(n_hi, a->n[r]);
        const int64_t nb = mc_kv_padded(n_hi) / MC_KV_BLOCK;
        for (int64_t b0 = 0; b0 < nb; b0 += 2) {
            const int B = (int)MC_MIN(2, nb - b0);
            switch (R * 8 + B) {
                QK_CASE(1, 1) QK_CASE(1, 2) QK_CASE(2, 1) QK_CASE(2, 2)
            }
        }
        for (int r = r0; r < r0 + R; r++)
            inv[r] = softmax_row(a->scratch + r * S, a->n[r], a->scale);
        for (int64_t i0 = 0; i0 < hd8; i0 += 32) {
            const int NV = (int)MC_MIN(4, (hd8 - i0) / 8);
            switch (R * 8 + NV) {
                PV_CASE(1, 1) PV_CASE(1, 2) PV_CASE(1, 3) PV_CASE(1, 4)
                PV_CASE(2, 1) PV_CASE(2, 2) PV_CASE(2, 3) PV_CASE(2, 4)
            }
        }
        for (int r = r0; r < r0 + R; r++) {
            const float *e = a->scratch + r * S;
            for (int64_t i = hd8; i < hd; i++) {
                float acc = 0.0f;
                for (int64_t p = 0; p < a->n[r]; p++)
                    acc = fmaf(e[p], load_kv1(a->v, p * a->v_stride + i, f16), acc);
                a->out[r][i] = acc * inv[r];
            }
        }
    }
}

static void attn(const mc_attn_rows *a) {
    if (a->f16)
        attn_t(a, 1);
    else
        attn_t(a, 0);
}

/* ---- SwiGLU --------------------------------------------------------------------------- */

static void swiglu(int64_t n, const float *g, const float *u, float *y) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 gv = _mm256_loadu_ps(g + i);
        const __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), gv));
        const __m256 s = _mm256_div_ps(gv, _mm256_add_ps(one, e));
        _mm256_storeu_ps(y + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++)
        y[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
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

/* One block of 32 activations as ggml-cpu's x86 quantize_row_q8_0: the 32
 * int8 in order to *q, the binary16-rounded scale to *d. */
AI void quantize_block(const float *xb, __m256i *q, float *d) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 v[4], m = _mm256_setzero_ps();
    for (int k = 0; k < 4; k++) {
        v[k] = _mm256_loadu_ps(xb + 8 * k);
        m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[k]));
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    *d = mc_fp16_to_fp32(mc_fp32_to_fp16(amax / 127.0f));
    const __m256 mul = _mm256_set1_ps(id);
    __m256i qi[4];
    for (int k = 0; k < 4; k++)
        qi[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], mul),
                                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    /* pack 32 int32 -> 32 int8 (in-lane packs, then fix the lane order) */
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(qi[0], qi[1]), _mm256_packs_epi32(qi[2], qi[3]));
    *q = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* Flat layout (Q8_0 weights). */
static void quantize_act_q8_0(const float *x, void *dst, int64_t n_in) {
    int8_t *qs = dst;
    float *ds = (float *)((uint8_t *)dst + mc__align64((size_t)n_in));
    for (int64_t b = 0; b < n_in / 32; b++) {
        __m256i q;
        quantize_block(x + b * 32, &q, &ds[b]);
        _mm256_storeu_si256((__m256i *)(qs + b * 32), q);
    }
}

/* Grouped layout, two blocks a group (Q4_0 weights): see internal.h. */
static void prep_q4_0(const float *x, void *dst, int64_t n_in) {
    const int64_t nb = n_in / 32;
    uint8_t *g = dst;
    const __m256i eight = _mm256_set1_epi8(8), ones = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < nb; b += 2, g += 128) {
        __m256i q0, q1 = _mm256_setzero_si256();
        float d0, d1 = 0.0f;
        quantize_block(x + b * 32, &q0, &d0);
        if (b + 1 < nb)
            quantize_block(x + (b + 1) * 32, &q1, &d1);
        __m256i lo = _mm256_permute2x128_si256(q0, q1, 0x20);
        __m256i hi = _mm256_permute2x128_si256(q0, q1, 0x31);
        __m256i sum = _mm256_madd_epi16(
            _mm256_add_epi16(_mm256_maddubs_epi16(eight, lo), _mm256_maddubs_epi16(eight, hi)), ones);
        _mm256_storeu_si256((__m256i *)g, lo);
        _mm256_storeu_si256((__m256i *)(g + 32), hi);
        _mm256_storeu_si256((__m256i *)(g + 64), _mm256_sub_epi32(_mm256_setzero_si256(), sum));
        _mm256_storeu_ps((float *)(g + 96), _mm256_setr_ps(d0, d0, d0, d0, d1, d1, d1, d1));
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

/* 4 rows x 2 tokens (or x 1 for decode), one named accumulator per output:
 * GCC keeps accumulator arrays in memory. Ragged edges reuse the last valid
 * row/token pointer and store only the valid outputs. */

typedef struct tile_ptrs {
    const uint8_t *w[4];
    const uint8_t *x[2];
} tile_ptrs;

AI void tile_setup(const mc__gemm_args *a, int64_t r, int64_t t, int nr, int nt, tile_ptrs *p) {
    for (int i = 0; i < 4; i++)
        p->w[i] = a->W + (size_t)(r + MC_MIN(i, nr - 1) * a->row_step) * a->w_row;
    for (int j = 0; j < 2; j++)
        p->x[j] = a->act + (size_t)(t + MC_MIN(j, nt - 1)) * a->act_stride;
}

#define ACC_ROW(i) __m256 a##i##0 = _mm256_setzero_ps(), a##i##1 = a##i##0
#define ACC_DECL ACC_ROW(0); ACC_ROW(1); ACC_ROW(2); ACC_ROW(3)

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

/* Store row i, token j: horizontal sum plus the scalar tail k..n_in. */
#define F_STORE1(i, j)                                                                 \
    if (i < nr && j < nt) {                                                            \
        float v_ = hsum256(a##i##j);                                                   \
        for (int64_t kk = k; kk < n; kk++)                                             \
            v_ += load_w1(p.w[i], kk, kind) * ((const float *)p.x[j])[kk];             \
        a->Y[(t + j) * a->n_out + r + i * a->row_step] = v_;                                         \
    }

#define F_ROW(i)                                                  \
    do {                                                          \
        __m256 w_ = load_w8(p.w[i], k, kind);                     \
        a##i##0 = _mm256_fmadd_ps(w_, x0, a##i##0);               \
        if (NT2)                                                  \
            a##i##1 = _mm256_fmadd_ps(w_, x1, a##i##1);           \
    } while (0)

AI void tile_float(const mc__gemm_args *a, int64_t r, int64_t t, int nr, int nt, int kind,
                   const int NT2) {
    tile_ptrs p;
    tile_setup(a, r, t, nr, nt, &p);
    ACC_DECL;
    const int64_t n = a->n_in;
    int64_t k = 0;
    for (; k + 8 <= n; k += 8) {
        __m256 x0 = _mm256_loadu_ps((const float *)p.x[0] + k), x1 = x0;
        if (NT2)
            x1 = _mm256_loadu_ps((const float *)p.x[1] + k);
        F_ROW(0);
        F_ROW(1);
        F_ROW(2);
        F_ROW(3);
    }
    F_STORE1(0, 0) F_STORE1(0, 1) F_STORE1(1, 0) F_STORE1(1, 1)
    F_STORE1(2, 0) F_STORE1(2, 1) F_STORE1(3, 0) F_STORE1(3, 1)
}

/* Q8_0 weights, one block at a time, flat activations. Row i of block b: the
 * unsigned weight bytes |w|, the signed ones (for the sign trick) and d. */
AI void q8_load_row(const uint8_t *row, int64_t b, __m256i *wu, __m256i *ws, __m256 *dw) {
    const uint8_t *blk = row + (size_t)b * sizeof(mc_block_q8_0);
    uint16_t dh;
    memcpy(&dh, blk, 2);
    *dw = _mm256_set1_ps(_cvtsh_ss(dh));
    *ws = _mm256_loadu_si256((const __m256i *)(blk + 2));
    *wu = _mm256_sign_epi8(*ws, *ws);
}

#define Q8_MAC(i, j)                                                                              \
    do {                                                                                          \
        __m256i si_ = _mm256_madd_epi16(_mm256_maddubs_epi16(u##i, _mm256_sign_epi8(x##j, s##i)), \
                                        ones);                                                    \
        a##i##j = _mm256_fmadd_ps(_mm256_cvtepi32_ps(si_), _mm256_mul_ps(d##i, dx##j), a##i##j);  \
    } while (0)

#define Q8_ROW(i)                                  \
    do {                                           \
        __m256i u##i, s##i;                        \
        __m256 d##i;                               \
        q8_load_row(p.w[i], b, &u##i, &s##i, &d##i); \
        Q8_MAC(i, 0);                              \
        if (NT2)                                   \
            Q8_MAC(i, 1);                          \
    } while (0)

#define Q_STORE1(i, j)                                                      \
    if (i < nr && j < nt)                                                   \
        a->Y[(t + j) * a->n_out + r + i * a->row_step] = hsum256(a##i##j);
#define Q_STORE_ALL                                                                 \
    Q_STORE1(0, 0) Q_STORE1(0, 1) Q_STORE1(1, 0) Q_STORE1(1, 1)                     \
    Q_STORE1(2, 0) Q_STORE1(2, 1) Q_STORE1(3, 0) Q_STORE1(3, 1)

AI void tile_q8(const mc__gemm_args *a, int64_t r, int64_t t, int nr, int nt, const int NT2) {
    tile_ptrs p;
    tile_setup(a, r, t, nr, nt, &p);
    const int64_t nb = a->n_in / 32;
    const size_t doff = mc__align64((size_t)a->n_in);
    const __m256i ones = _mm256_set1_epi16(1);
    ACC_DECL;
    for (int64_t b = 0; b < nb; b++) {
        __m256i x0 = _mm256_loadu_si256((const __m256i *)(p.x[0] + b * 32)), x1 = x0;
        __m256 dx0 = _mm256_broadcast_ss((const float *)(p.x[0] + doff) + b), dx1 = dx0;
        if (NT2) {
            x1 = _mm256_loadu_si256((const __m256i *)(p.x[1] + b * 32));
            dx1 = _mm256_broadcast_ss((const float *)(p.x[1] + doff) + b);
        }
        Q8_ROW(0);
        Q8_ROW(1);
        Q8_ROW(2);
        Q8_ROW(3);
    }
    Q_STORE_ALL
}

/* Q4_0 weights, two blocks a group, grouped activations (internal.h): the
 * nibbles are unsigned already, so vpmaddubsw takes them as they are; the -8
 * comes back through the token's correction. Row by row within the tile, so
 * that the 8 accumulators, a row's 3 vectors and the constants fit in 16
 * registers (the tokens' vectors are memory operands). */
AI void q4_group(const uint8_t *row, int64_t g, int two, __m256i *lo, __m256i *hi, __m256 *ds) {
    const uint8_t *b0 = row + (size_t)g * 2 * sizeof(mc_block_q4_0);
    uint16_t h0, h1 = 0;
    memcpy(&h0, b0, 2);
    __m128i q1 = _mm_setzero_si128();
    if (two) {
        memcpy(&h1, b0 + 18, 2);
        q1 = _mm_loadu_si128((const __m128i *)(b0 + 20));
    }
    __m256i q = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(b0 + 2))), q1, 1);
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    *lo = _mm256_and_si256(q, m4);
    *hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
    *ds = _mm256_cvtph_ps(_mm_unpacklo_epi64(_mm_set1_epi16((short)h0), _mm_set1_epi16((short)h1)));
}

#define Q4_MAC(i, j)                                                                           \
    do {                                                                                       \
        const uint8_t *x_ = p.x[j] + (size_t)g * 128;                                          \
        __m256i s_ = _mm256_add_epi16(                                                         \
            _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)x_)),                 \
            _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(x_ + 32))));         \
        s_ = _mm256_add_epi32(_mm256_madd_epi16(s_, ones),                                     \
                              _mm256_loadu_si256((const __m256i *)(x_ + 64)));                 \
        a##i##j = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s_),                                      \
                                  _mm256_mul_ps(ds, _mm256_loadu_ps((const float *)(x_ + 96))), \
                                  a##i##j);                                                    \
    } while (0)

#define Q4_ROW(i)                                 \
    do {                                          \
        __m256i lo, hi;                           \
        __m256 ds;                                \
        q4_group(p.w[i], g, two, &lo, &hi, &ds);  \
        Q4_MAC(i, 0);                             \
        if (NT2)                                  \
            Q4_MAC(i, 1);                         \
    } while (0)

AI void tile_q4(const mc__gemm_args *a, int64_t r, int64_t t, int nr, int nt, const int NT2) {
    tile_ptrs p;
    tile_setup(a, r, t, nr, nt, &p);
    const int64_t nb = a->n_in / 32;
    const __m256i ones = _mm256_set1_epi16(1);
    ACC_DECL;
    int64_t g = 0;
    for (; 2 * g + 2 <= nb; g++) {
        const int two = 1;
        Q4_ROW(0);
        Q4_ROW(1);
        Q4_ROW(2);
        Q4_ROW(3);
    }
    if (2 * g < nb) {
        const int two = 0;
        Q4_ROW(0);
        Q4_ROW(1);
        Q4_ROW(2);
        Q4_ROW(3);
    }
    Q_STORE_ALL
}

#define DEFINE_GEMM(name, call)                                                        \
    static void name(const mc__gemm_args *a, int64_t r0, int64_t r1, int64_t t0,       \
                     int64_t t1) {                                                     \
        for (int64_t r = r0; r < r1; r++) {                                            \
            const int nr = (int)MC_MIN(4, (a->n_out - 1 - r) / a->row_step + 1);       \
            for (int64_t t = t0; t < t1; t += 2) {                                     \
                const int nt = (int)MC_MIN(2, t1 - t);                                 \
                if (nt == 1)                                                           \
                    call(0);                                                           \
                else                                                                   \
                    call(1);                                                           \
            }                                                                          \
        }                                                                              \
    }

#define CALL_F32(NT2) tile_float(a, r, t, nr, nt, 0, NT2)
#define CALL_F16(NT2) tile_float(a, r, t, nr, nt, 1, NT2)
#define CALL_BF16(NT2) tile_float(a, r, t, nr, nt, 2, NT2)
#define CALL_Q8(NT2) tile_q8(a, r, t, nr, nt, NT2)
#define CALL_Q4(NT2) tile_q4(a, r, t, nr, nt, NT2)

DEFINE_GEMM(gemm_f32, CALL_F32)
DEFINE_GEMM(gemm_f16, CALL_F16)
DEFINE_GEMM(gemm_bf16, CALL_BF16)
DEFINE_GEMM(gemm_q8_0, CALL_Q8)
DEFINE_GEMM(gemm_q4_0, CALL_Q4)

static const struct mc__gemm_ops gemm_avx2 = {
    .prep = {NULL, round_f16_row, mc__round_bf16_row, quantize_act_q8_0, prep_q4_0},
    .gemm = {gemm_f32, gemm_f16, gemm_bf16, gemm_q8_0, gemm_q4_0},
    .act_bf16 = 0,
    .act_group = {[MC__WT_Q4_0] = 2},
};

const mc_kernels mc__kernels_avx2 = {
    .name = "avx2",
    .isa = MC_ISA_AVX2,
    .vec_dot_f32 = vec_dot_f32,
    .vec_dot_f16_f32 = vec_dot_f16_f32,
    .vec_axpy_f32 = vec_axpy_f32,
    .vec_axpy_f16 = vec_axpy_f16,
    .attn = attn,
    .swiglu = swiglu,
    .fp16_to_fp32_row = fp16_to_fp32_row,
    .fp32_to_fp16_row = fp32_to_fp16_row,
    .gemm = &gemm_avx2,
};
