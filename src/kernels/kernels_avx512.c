/* kernels_avx512.c — AVX-512 F/BW/VL/DQ + VNNI kernels, with AVX512-BF16
 * for BF16 weights where the CPU has it (two tables, chosen in kernels.c).
 *
 * gemm tiles are 4 rows (a quarter matrix apart, see internal.h) x 4 tokens,
 * or x 1 for decode, of 512-bit accumulators; an output's operations are the
 * same in both, so decode and batches agree bitwise. Int8 dot products use
 * vpdpbusd (unsigned x signed bytes, summed in fours into int32). The weights
 * are made unsigned by an offset, and the dot product is corrected exactly,
 * once per token for all rows:
 *   Q8_0: (w + 128) as u8;  sum w*x = sum (w+128)*x - 128*sum x
 *   Q4_0: nibble q as u8;   sum (q-8)*x = sum q*x - 8*sum x
 * The correction -off*sum(x) is part of the grouped activations (internal.h)
 * and the accumulator's starting value, so each block's integer lane sums
 * equal the scalar oracle's. A zmm holds four blocks: elements 0..15 of each
 * in one register, 16..31 in another, gathered from the weight row with one
 * 16-bit permute each; lanes 4k..4k+3 belong to block k, scaled by its own
 * d_w*d_x.
 *
 * attn: a call's query rows go in groups of four. Scores: 4 rows x 4 K blocks
 * (64 positions) of accumulators, one broadcast q[i] per row against one
 * vector of 16 positions' element i (the blocked K layout, kernels.h), so
 * every score is its own FMA chain and no horizontal sum is needed. Softmax a
 * row at a time with exp512. Weighted V: 4 rows x 64 columns of
 * accumulators, one broadcast weight per row and position.
 */
#include "internal.h"

#include <immintrin.h>
#include <math.h>

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

/* e^x as 2^n * e^r, n = round(x / ln 2), |r| <= ln 2 / 2, with Cephes' expf
 * polynomial for e^r (relative error ~1e-7) and vscalefps for 2^n, which also
 * takes care of overflow to inf and underflow to 0. */
AI __m512 exp512(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(89.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

/* ---- attention ------------------------------------------------------------------------ */

AI __m512 load_kv(const void *kv, int64_t i, __mmask16 m, const int f16) {
    if (f16)
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)kv + i));
    return _mm512_maskz_loadu_ps(m, (const float *)kv + i);
}

AI __m512 load16(const void *kv, int64_t i, const int f16) {
    if (f16)
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)kv + i)));
    return _mm512_loadu_ps((const float *)kv + i);
}

/* Scores of rows r0..r0+R-1 against K blocks b0..b0+B-1 into their rows of
 * scratch (S floats apart), scaled later: lane j of block b is one FMA chain
 * over i = 0..hd-1 in order, q[i] * K(16b + j, i), whatever R and B are. */
AI void qk_tile(const mc_attn_rows *a, int r0, int64_t b0, int64_t S, const int R, const int B,
                const int f16) {
    const int64_t hd = a->hd;
    const int64_t kb = b0 * hd * MC_KV_BLOCK;
    const float *q[4];
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        q[r] = a->q[r0 + r];
#pragma GCC unroll 4
        for (int b = 0; b < B; b++)
            acc[r][b] = _mm512_setzero_ps();
    }
    for (int64_t i = 0; i < hd; i++) {
        __m512 kv[4];
#pragma GCC unroll 4
        for (int b = 0; b < B; b++)
            kv[b] = load16(a->k, kb + (b * hd + i) * MC_KV_BLOCK, f16);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const __m512 qv = _mm512_set1_ps(q[r][i]);
#pragma GCC unroll 4
            for (int b = 0; b < B; b++)
                acc[r][b] = _mm512_fmadd_ps(qv, kv[b], acc[r][b]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int b = 0; b < B; b++)
            _mm512_storeu_ps(a->scratch + (r0 + r) * S + (b0 + b) * MC_KV_BLOCK, acc[r][b]);
}

/* A row's scores s[0..n) (raw dot products) -> e^(scale*s - max) in place,
 * 0 in the padding lanes of the last vector; returns 1 / their sum. */
AI float softmax_row(float *s, int64_t n, float scale) {
    const int64_t nv = (n + 15) / 16;
    const __mmask16 last = tail16(n - 16 * (nv - 1));
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int64_t j = 0; j + 1 < nv; j++)
        mx = _mm512_max_ps(mx, _mm512_loadu_ps(s + 16 * j));
    mx = _mm512_mask_max_ps(mx, last, mx, _mm512_loadu_ps(s + 16 * (nv - 1)));
    /* scale > 0, so the max of the rounded products is the rounded max */
    const __m512 ms = _mm512_set1_ps(_mm512_reduce_max_ps(mx) * scale);
    const __m512 sc = _mm512_set1_ps(scale);
    __m512 sum = _mm512_setzero_ps();
    for (int64_t j = 0; j < nv; j++) {
        __m512 e = exp512(_mm512_sub_ps(_mm512_mul_ps(_mm512_loadu_ps(s + 16 * j), sc), ms));
        if (j == nv - 1)
            e = _mm512_maskz_mov_ps(last, e);
        _mm512_storeu_ps(s + 16 * j, e);
        sum = _mm512_add_ps(sum, e);
    }
    return 1.0f / _mm512_reduce_add_ps(sum);
}

/* Output columns i0..i0+16*NV-1 (the last vector masked by mlast) of rows
 * r0..r0+R-1: for each column one FMA chain over p = 0..n-1 in order,
 * e[p] * V(p, i), then times 1/sum. The positions all R rows attend to go
 * through the tile; each row's remaining ones continue its own chains. */
AI void pv_tile(const mc_attn_rows *a, int r0, const float *inv, int64_t S, int64_t i0,
                __mmask16 mlast, const int R, const int NV, const int f16) {
    const int64_t st = a->v_stride;
    const float *e[4];
    int64_t n_lo = INT64_MAX;
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        e[r] = a->scratch + (r0 + r) * S;
        n_lo = MC_MIN(n_lo, a->n[r0 + r]);
#pragma GCC unroll 4
        for (int c = 0; c < NV; c++)
            acc[r][c] = _mm512_setzero_ps();
    }
    for (int64_t p = 0; p < n_lo; p++) {
        __m512 vv[4];
#pragma GCC unroll 4
        for (int c = 0; c < NV; c++)
            vv[c] = load_kv(a->v, p * st + i0 + 16 * c, c == NV - 1 ? mlast : (__mmask16)0xffff,
                            f16);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const __m512 w = _mm512_set1_ps(e[r][p]);
#pragma GCC unroll 4
            for (int c = 0; c < NV; c++)
                acc[r][c] = _mm512_fmadd_ps(w, vv[c], acc[r][c]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        for (int64_t p = n_lo; p < a->n[r0 + r]; p++) {
            const __m512 w = _mm512_set1_ps(e[r][p]);
#pragma GCC unroll 4
            for (int c = 0; c < NV; c++)
                acc[r][c] = _mm512_fmadd_ps(
                    w,
                    load_kv(a->v, p * st + i0 + 16 * c, c == NV - 1 ? mlast : (__mmask16)0xffff, f16),
                    acc[r][c]);
        }
        const __m512 iv = _mm512_set1_ps(inv[r0 + r]);
#pragma GCC unroll 4
        for (int c = 0; c < NV; c++)
            _mm512_mask_storeu_ps(a->out[r0 + r] + i0 + 16 * c,
                                  c == NV - 1 ? mlast : (__mmask16)0xffff,
                                  _mm512_mul_ps(acc[r][c], iv));
    }
}

#define QK_CASE(R_, B_)                                   \
    case (R_) * 8 + (B_):                                 \
        qk_tile(a, r0, b0, S, R_, B_, f16);               \
        break;
#define PV_CASE(R_, NV_)                                  \
    case (R_) * 8 + (NV_):                                \
        pv_tile(a, r0, inv, S, i0, mlast, R_, NV_, f16);  \
        break;

/* Rows in groups of up to four; K in steps of four blocks (64 positions) of
 * 4 x 4 accumulators, V in steps of 64 columns. */
AI void attn_t(const mc_attn_rows *a, const int f16) {
    int64_t n_max = 0;
    for (int r = 0; r < a->n_rows; r++)
        n_max = MC_MAX(n_max, a->n[r]);
    const int64_t S = mc_kv_padded(n_max);
    float inv[MC_ATTN_ROWS];
    for (int r0 = 0; r0 < a->n_rows; r0 += 4) {
        const int R = MC_MIN(4, a->n_rows - r0);
        int64_t n_hi = 0;
        for (int r = r0; r < r0 + R; r++)
            n_hi = MC_MAX(n_hi, a->n[r]);
        const int64_t nb = mc_kv_padded(n_hi) / MC_KV_BLOCK;
        for (int64_t b0 = 0; b0 < nb; b0 += 4) {
            const int B = (int)MC_MIN(4, nb - b0);
            switch (R * 8 + B) {
                QK_CASE(1, 1) QK_CASE(1, 2) QK_CASE(1, 3) QK_CASE(1, 4)
                QK_CASE(2, 1) QK_CASE(2, 2) QK_CASE(2, 3) QK_CASE(2, 4)
                QK_CASE(3, 1) QK_CASE(3, 2) QK_CASE(3, 3) QK_CASE(3, 4)
                QK_CASE(4, 1) QK_CASE(4, 2) QK_CASE(4, 3) QK_CASE(4, 4)
            }
        }
        for (int r = r0; r < r0 + R; r++)
            inv[r] = softmax_row(a->scratch + r * S, a->n[r], a->scale);
        for (int64_t i0 = 0; i0 < a->hd; i0 += 64) {
            const int64_t left = MC_MIN(64, a->hd - i0);
            const int NV = (int)((left + 15) / 16);
            const __mmask16 mlast = tail16(left - 16 * (NV - 1));
            switch (R * 8 + NV) {
                PV_CASE(1, 1) PV_CASE(1, 2) PV_CASE(1, 3) PV_CASE(1, 4)
                PV_CASE(2, 1) PV_CASE(2, 2) PV_CASE(2, 3) PV_CASE(2, 4)
                PV_CASE(3, 1) PV_CASE(3, 2) PV_CASE(3, 3) PV_CASE(3, 4)
                PV_CASE(4, 1) PV_CASE(4, 2) PV_CASE(4, 3) PV_CASE(4, 4)
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
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail16(n - i);
        const __m512 gv = _mm512_maskz_loadu_ps(m, g + i);
        const __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), gv));
        const __m512 s = _mm512_div_ps(gv, _mm512_add_ps(one, e));
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, u + i)));
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

/* One block of 32 activations, quantized as ggml-cpu's x86 quantize_row_q8_0:
 * elements 0..15 to *lo, 16..31 to *hi, the binary16-rounded scale to *d. */
AI void quantize_block(const float *x, __m128i *lo, __m128i *hi, float *d) {
    __m512 v0 = _mm512_loadu_ps(x);
    __m512 v1 = _mm512_loadu_ps(x + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    *d = mc_fp16_to_fp32(mc_fp32_to_fp16(amax / 127.0f));
    const __m512 mul = _mm512_set1_ps(id);
#define RND (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC) /* an immediate for clang */
    *lo = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_roundscale_ps(_mm512_mul_ps(v0, mul), RND)));
    *hi = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_roundscale_ps(_mm512_mul_ps(v1, mul), RND)));
#undef RND
}

/* The grouped record (internal.h) of one token; off = 128 (Q8_0) or 8 (Q4_0). */
AI void prep_grouped(const float *x, void *dst, int64_t n_in, int off) {
    const int64_t nb = n_in / 32;
    uint8_t *g = dst;
    const __m512i offv = _mm512_set1_epi8((char)off);
    for (int64_t b0 = 0; b0 < nb; b0 += 4, g += MC__QGROUP_BYTES) {
        __m128i lo[4], hi[4];
        float d[4];
        for (int k = 0; k < 4; k++) {
            if (b0 + k < nb) {
                quantize_block(x + (b0 + k) * 32, &lo[k], &hi[k], &d[k]);
            } else {
                lo[k] = hi[k] = _mm_setzero_si128();
                d[k] = 0.0f;
            }
        }
        __m512i vlo = _mm512_inserti32x4(_mm512_castsi128_si512(lo[0]), lo[1], 1);
        vlo = _mm512_inserti32x4(_mm512_inserti32x4(vlo, lo[2], 2), lo[3], 3);
        __m512i vhi = _mm512_inserti32x4(_mm512_castsi128_si512(hi[0]), hi[1], 1);
        vhi = _mm512_inserti32x4(_mm512_inserti32x4(vhi, hi[2], 2), hi[3], 3);
        __m512i sum = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), offv, vlo), offv, vhi);
        __m512 dv = _mm512_setr_ps(d[0], d[0], d[0], d[0], d[1], d[1], d[1], d[1], d[2], d[2], d[2],
                                   d[2], d[3], d[3], d[3], d[3]);
        _mm512_storeu_si512(g, vlo);
        _mm512_storeu_si512(g + 64, vhi);
        _mm512_storeu_si512(g + 128, _mm512_sub_epi32(_mm512_setzero_si512(), sum));
        _mm512_storeu_ps(g + 192, dv);
    }
}

static void prep_q8_0(const float *x, void *dst, int64_t n_in) {
    prep_grouped(x, dst, n_in, 128);
}

static void prep_q4_0(const float *x, void *dst, int64_t n_in) {
    prep_grouped(x, dst, n_in, 8);
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

/* A tile is 4 rows x NT tokens (NT = 4, or 1 for decode) with one named
 * accumulator per (row, token): the macros below spell them out because GCC
 * keeps an accumulator *array* in memory, which serialises the FMA chains
 * on store-to-load forwarding. Ragged edges reuse the last valid row/token
 * pointer (computing a duplicate) and store only the valid outputs. */

typedef struct tile_ptrs {
    const uint8_t *w[4];
    const uint8_t *x[4];
} tile_ptrs;

AI void tile_setup(const mc__gemm_args *a, int64_t r, int64_t t, int nr, int nt, tile_ptrs *p) {
    for (int i = 0; i < 4; i++)
        p->w[i] = a->W + (size_t)(r + MC_MIN(i, nr - 1) * a->row_step) * a->w_row;
    for (int j = 0; j < 4; j++)
        p->x[j] = a->act + (size_t)(t + MC_MIN(j, nt - 1)) * a->act_stride;
}

#define ACC_ROW(i) __m512 a##i##0 = _mm512_setzero_ps(), a##i##1 = a##i##0, a##i##2 = a##i##0, a##i##3 = a##i##0
#define ACC_DECL ACC_ROW(0); ACC_ROW(1); ACC_ROW(2); ACC_ROW(3)
#define ACC_USE_ROW(i) (void)a##i##1, (void)a##i##2, (void)a##i##3

#define STORE1(i, j)                                                                   \
    if (i < nr && j < nt)                                                              \
        a->Y[(t + j) * a->n_out + r + i * a->row_step] = _mm512_reduce_add_ps(a##i##j);
#define STORE_ROW(i) STORE1(i, 0) STORE1(i, 1) STORE1(i, 2) STORE1(i, 3)
#define STORE_ALL STORE_ROW(0) STORE_ROW(1) STORE_ROW(2) STORE_ROW(3)

/* kind 0 = f32 weights, 1 = f16, 2 = bf16 (widened to f32); f32 activations. */
AI __m512 load_w16(const uint8_t *w, int64_t k, __mmask16 m, int kind) {
    if (kind == 0)
        return _mm512_maskz_loadu_ps(m, (const float *)w + k);
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)w + k);
    if (kind == 1)
        return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

#define F_ROW(i)                                                      \
    do {                                                              \
        __m512 w_ = load_w16(p.w[i], k, m, kind);                     \
        a##i##0 = _mm512_fmadd_ps(w_, x0, a##i##0);                   \
        if (NT4) {                                                    \
            a##i##1 = _mm512_fmadd_ps(w_, x1, a##i##1);               \
            a##i##2 = _mm512_fmadd_ps(w_, x2, a##i##2);               \
            a##i##3 = _mm512_fmadd_ps(w_, x3, a##i##3);               \
        }                                                             \
    } while (0)

#define F_STEP                                                                     \
    do {                                                                           \
        __m512 x0 = _mm512_maskz_loadu_ps(m, (const float *)p.x[0] + k), x1 = x0,  \
               x2 = x0, x3 = x0;                                                   \
        if (NT4) {                                                                 \
            x1 = _mm512_maskz_loadu_ps(m, (const float *)p.x[1] + k);              \
            x2 = _mm512_maskz_loadu_ps(m, (const float *)p.x[2] + k);              \
            x3 = _mm512_maskz_loadu_ps(m, (const float *)p.x[3] + k);              \
        }                                                                          \
        F_ROW(0);                                                                  \
        F_ROW(1);                                                                  \
        F_ROW(2);                                                                  \
        F_ROW(3);                                                                  \
    } while (0)

AI void tile_float(const mc__gemm_args *a, int64_t r, int64_t t, int nr, int nt, int kind,
                   const int NT4) {
    tile_ptrs p;
    tile_setup(a, r, t, nr, nt, &p);
    ACC_DECL;
    const int64_t n = a->n_in;
    int64_t k = 0;
    for (; k + 16 <= n; k += 16) {
        const __mmask16 m = 0xffff;
        F_STEP;
    }
    if (k < n) {
        const __mmask16 m = tail16(n - k);
        F_STEP;
    }
    STORE_ALL
}

/* BF16 weights x BF16 activations with vdpbf16ps: 32 elements per step. */
#define B_ROW(i)                                                                    \
    do {                                                                            \
        __m512bh w_ = (__m512bh)_mm512_maskz_loadu_epi16(m, (const uint16_t *)p.w[i] + k); \
        a##i##0 = _mm512_dpbf16_ps(a##i##0, w_, x0);                                \
        if (NT4) {                                                                  \
            a##i##1 = _mm512_dpbf16_ps(a##i##1, w_, x1);                            \
            a##i##2 = _mm512_dpbf16_ps(a##i##2, w_, x2);                            \
            a##i##3 = _mm512_dpbf16_ps(a##i##3, w_, x3);                            \
        }                                                                           \
    } while (0)

#define B_LX(j) (__m512bh)_mm512_maskz_loadu_epi16(m, (const uint16_t *)p.x[j] + k)
#define B_STEP                                                   \
    do {                                                         \
        __m512bh x0 = B_LX(0), x1 = x0, x2 = x0, x3 = x0;        \
        if (NT4) {                                               \
            x1 = B_LX(1);                                        \
            x2 = B_LX(2);                                        \
            x3 = B_LX(3);                                        \
        }                                                        \
        B_ROW(0);                                                \
        B_ROW(1);                                                \
        B_ROW(2);                                                \
        B_ROW(3);                                                \
    } while (0)

AI void tile_bf16dp(const mc__gemm_args *a, int64_t r, int64_t t, int nr, int nt, const int NT4) {
    tile_ptrs p;
    tile_setup(a, r, t, nr, nt, &p);
    ACC_DECL;
    const int64_t n = a->n_in;
    int64_t k = 0;
    for (; k + 32 <= n; k += 32) {
        const __mmask32 m = 0xffffffffu;
        B_STEP;
    }
    if (k < n) {
        const __mmask32 m = (__mmask32)((1ull << (n - k)) - 1);
        B_STEP;
    }
    STORE_ALL
}

/* Quantized weights, a group of four blocks at a time (Q8_0: 136 bytes, Q4_0:
 * 72). One permute gathers the group's bytes the way the grouped activations
 * are laid out (lo: elements 0..15 of the four blocks, hi: 16..31), another
 * its four scales (each repeated for the 4 lanes of its block). Then per
 * (row, token): two vpdpbusd starting from the token's correction, one
 * conversion, one scale product and one FMA. The loads read only the group's
 * own bytes; a last partial group of nbl < 4 blocks loads under a byte mask,
 * so the missing blocks' bytes and scales are zero (as are the activations). */

#define I16(M, b) M(b), M(b + 1), M(b + 2), M(b + 3), M(b + 4), M(b + 5), M(b + 6), M(b + 7), \
                  M(b + 8), M(b + 9), M(b + 10), M(b + 11), M(b + 12), M(b + 13), M(b + 14), M(b + 15)
/* Blocks start at even offsets, so 16-bit permutes (AVX512BW) suffice. Word p
 * of lo/hi holds block p/8, elements 2(p%8), 2(p%8)+1 (+16 for hi); the word
 * tables are (A, B) = bytes [0,64) and [8,72) for Q4_0, and for Q8_0 bytes
 * [0,64), [64,128) (lo) or [8,72), [72,136) (hi). */
#define Q4_OFF(p) (9 * ((p) / 8) + 1 + (p) % 8)
#define Q4_IX(p) (Q4_OFF(p) < 32 ? Q4_OFF(p) : Q4_OFF(p) + 28)
#define Q8_LO(p) (17 * ((p) / 8) + 1 + (p) % 8)
#define Q8_HI(p) (17 * ((p) / 8) + 9 + (p) % 8 - 4)
/* word w < 16 of the scales: block w/4's d (word 9k of a Q4_0 group, 17k of Q8_0) */
#define Q4_D(w) ((w) < 16 ? 9 * ((w) / 4) : 0)
#define Q8_D(w) ((w) < 16 ? 17 * ((w) / 4) : 0)

static const uint16_t k_q4_ix[32] __attribute__((aligned(64))) = {I16(Q4_IX, 0), I16(Q4_IX, 16)};
static const uint16_t k_q8_lo[32] __attribute__((aligned(64))) = {I16(Q8_LO, 0), I16(Q8_LO, 16)};
static const uint16_t k_q8_hi[32] __attribute__((aligned(64))) = {I16(Q8_HI, 0), I16(Q8_HI, 16)};
static const uint16_t k_q4_d[32] __attribute__((aligned(64))) = {I16(Q4_D, 0), I16(Q4_D, 16)};
static const uint16_t k_q8_d[32] __attribute__((aligned(64))) = {I16(Q8_D, 0), I16(Q8_D, 16)};

AI __mmask64 byte_mask(int64_t n) {
    return n <= 0 ? 0 : n >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << n) - 1;
}

/* Group g of a row: bytes lo/hi as unsigned (Q8_0 + 128, Q4_0 nibbles) and
 * the scales. nbl = blocks in the group (4, or fewer for the last). */
AI void q_group(const uint8_t *row, int64_t g, int nbl, int q4, __m512i *lo, __m512i *hi,
                __m512 *ds) {
    if (q4) {
        const uint8_t *p = row + (size_t)g * 4 * sizeof(mc_block_q4_0);
        __m512i A, B;
        if (nbl == 4) {
            A = _mm512_loadu_si512(p);
            B = _mm512_loadu_si512(p + 8);
        } else {
            A = _mm512_maskz_loadu_epi8(byte_mask(18 * nbl), p);
            B = _mm512_maskz_loadu_epi8(byte_mask(18 * nbl - 8), p + 8);
        }
        __m512i q = _mm512_permutex2var_epi16(A, _mm512_load_si512(k_q4_ix), B);
        __m512i d = _mm512_permutexvar_epi16(_mm512_load_si512(k_q4_d), A);
        const __m512i m4 = _mm512_set1_epi8(0x0f);
        *lo = _mm512_and_si512(q, m4);
        *hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
        *ds = _mm512_cvtph_ps(_mm512_castsi512_si256(d));
    } else {
        const uint8_t *p = row + (size_t)g * 4 * sizeof(mc_block_q8_0);
        __m512i A, B, A2, B2;
        if (nbl == 4) {
            A = _mm512_loadu_si512(p);
            B = _mm512_loadu_si512(p + 64);
            A2 = _mm512_loadu_si512(p + 8);
            B2 = _mm512_loadu_si512(p + 72);
        } else {
            const int64_t n = 34 * nbl;
            A = _mm512_maskz_loadu_epi8(byte_mask(n), p);
            B = _mm512_maskz_loadu_epi8(byte_mask(n - 64), p + 64);
            A2 = _mm512_maskz_loadu_epi8(byte_mask(n - 8), p + 8);
            B2 = _mm512_maskz_loadu_epi8(byte_mask(n - 72), p + 72);
        }
        const __m512i flip = _mm512_set1_epi8((char)0x80);
        *lo = _mm512_xor_si512(_mm512_permutex2var_epi16(A, _mm512_load_si512(k_q8_lo), B), flip);
        *hi = _mm512_xor_si512(_mm512_permutex2var_epi16(A2, _mm512_load_si512(k_q8_hi), B2), flip);
        __m512i d = _mm512_permutex2var_epi16(A, _mm512_load_si512(k_q8_d), B);
        *ds = _mm512_cvtph_ps(_mm512_castsi512_si256(d));
    }
}

/* (row i, token j) of group g: x##j names the token's group record. */
#define Q_MAC(i, j)                                                                         \
    do {                                                                                    \
        __m512i s_ = _mm512_dpbusd_epi32(_mm512_load_si512(x##j + 128), lo##i,              \
                                         _mm512_load_si512(x##j));                          \
        s_ = _mm512_dpbusd_epi32(s_, hi##i, _mm512_load_si512(x##j + 64));                  \
        a##i##j = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s_),                                   \
                                  _mm512_mul_ps(ds##i, _mm512_load_ps(x##j + 192)), a##i##j); \
    } while (0)

#define Q_ROW(i)                                                                  \
    do {                                                                          \
        __m512i lo##i, hi##i;                                                     \
        __m512 ds##i;                                                             \
        q_group(p.w[i], g, nbl, q4, &lo##i, &hi##i, &ds##i);                      \
        Q_MAC(i, 0);                                                              \
        if (NT4) {                                                                \
            Q_MAC(i, 1);                                                          \
            Q_MAC(i, 2);                                                          \
            Q_MAC(i, 3);                                                          \
        }                                                                         \
    } while (0)

#define Q_STEP                                                                    \
    do {                                                                          \
        const uint8_t *x0 = p.x[0] + (size_t)g * MC__QGROUP_BYTES;                \
        const uint8_t *x1 = p.x[1] + (size_t)g * MC__QGROUP_BYTES;                \
        const uint8_t *x2 = p.x[2] + (size_t)g * MC__QGROUP_BYTES;                \
        const uint8_t *x3 = p.x[3] + (size_t)g * MC__QGROUP_BYTES;                \
        (void)x1, (void)x2, (void)x3;                                             \
        Q_ROW(0);                                                                 \
        Q_ROW(1);                                                                 \
        Q_ROW(2);                                                                 \
        Q_ROW(3);                                                                 \
    } while (0)

AI void tile_quant(const mc__gemm_args *a, int64_t r, int64_t t, int nr, int nt, int q4,
                   const int NT4) {
    tile_ptrs p;
    tile_setup(a, r, t, nr, nt, &p);
    ACC_DECL;
    const int64_t nb = a->n_in / 32;
    int64_t g = 0;
    for (; 4 * g + 4 <= nb; g++) {
        const int nbl = 4;
        Q_STEP;
    }
    if (4 * g < nb) {
        const int nbl = (int)(nb - 4 * g);
        Q_STEP;
    }
    STORE_ALL
}

/* Rows in fours; tokens in fours, or one at a time when a single token is
 * left (decode), so a lone token never pays for four. */
#define DEFINE_GEMM(name, call)                                                        \
    static void name(const mc__gemm_args *a, int64_t r0, int64_t r1, int64_t t0,       \
                     int64_t t1) {                                                     \
        for (int64_t r = r0; r < r1; r++) {                                            \
            const int nr = (int)MC_MIN(4, (a->n_out - 1 - r) / a->row_step + 1);       \
            for (int64_t t = t0; t < t1; t += 4) {                                     \
                const int nt = (int)MC_MIN(4, t1 - t);                                 \
                if (nt == 1)                                                           \
                    call(0);                                                           \
                else                                                                   \
                    call(1);                                                           \
            }                                                                          \
        }                                                                              \
    }

#define CALL_F32(NT4) tile_float(a, r, t, nr, nt, 0, NT4)
#define CALL_F16(NT4) tile_float(a, r, t, nr, nt, 1, NT4)
#define CALL_BF16(NT4) tile_float(a, r, t, nr, nt, 2, NT4)
#define CALL_BF16DP(NT4) tile_bf16dp(a, r, t, nr, nt, NT4)
#define CALL_Q8(NT4) tile_quant(a, r, t, nr, nt, 0, NT4)
#define CALL_Q4(NT4) tile_quant(a, r, t, nr, nt, 1, NT4)

DEFINE_GEMM(gemm_f32, CALL_F32)
DEFINE_GEMM(gemm_f16, CALL_F16)
DEFINE_GEMM(gemm_bf16, CALL_BF16)
DEFINE_GEMM(gemm_bf16dp, CALL_BF16DP)
DEFINE_GEMM(gemm_q8_0, CALL_Q8)
DEFINE_GEMM(gemm_q4_0, CALL_Q4)

static const struct mc__gemm_ops gemm_avx512 = {
    .prep = {NULL, round_f16_row, mc__round_bf16_row, prep_q8_0, prep_q4_0},
    .gemm = {gemm_f32, gemm_f16, gemm_bf16, gemm_q8_0, gemm_q4_0},
    .act_bf16 = 0,
    .act_group = {[MC__WT_Q8_0] = 4, [MC__WT_Q4_0] = 4},
};

static const struct mc__gemm_ops gemm_avx512_bf16 = {
    .prep = {NULL, round_f16_row, to_bf16_row, prep_q8_0, prep_q4_0},
    .gemm = {gemm_f32, gemm_f16, gemm_bf16dp, gemm_q8_0, gemm_q4_0},
    .act_bf16 = 1,
    .act_group = {[MC__WT_Q8_0] = 4, [MC__WT_Q4_0] = 4},
};

const mc_kernels mc__kernels_avx512 = {
    .name = "avx512-vnni",
    .isa = MC_ISA_AVX512,
    .vec_dot_f32 = vec_dot_f32,
    .vec_dot_f16_f32 = vec_dot_f16_f32,
    .vec_axpy_f32 = vec_axpy_f32,
    .vec_axpy_f16 = vec_axpy_f16,
    .attn = attn,
    .swiglu = swiglu,
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
    .attn = attn,
    .swiglu = swiglu,
    .fp16_to_fp32_row = fp16_to_fp32_row,
    .fp32_to_fp16_row = fp32_to_fp16_row,
    .gemm = &gemm_avx512_bf16,
};
