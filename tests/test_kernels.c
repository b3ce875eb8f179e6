/* tests/test_kernels.c — number conversions, quantizers, vector helpers and
 * matmul: hand-computed values for the formats, every SIMD table against the
 * scalar one, and matmul against a double-precision reference. */
#include "mccom/kernels.h"
#include "test.h"

#include "../src/kernels/internal.h"

#include <math.h>
#include <stdlib.h>

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd_u32(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 16);
}

static float rnd_f(void) { /* uniform in [-1, 1) */
    return (float)((double)rnd_u32() / 2147483648.0 - 1.0);
}

static uint32_t bits(float f) {
    return mc__f32_bits(f);
}

/* ---- fp16 / bf16 ------------------------------------------------------------------ */

MC_TEST(kernels_fp16_special_values) {
    struct {
        float f;
        uint16_t h;
    } cases[] = {
        {0.0f, 0x0000},
        {-0.0f, 0x8000},
        {1.0f, 0x3c00},
        {-2.0f, 0xc000},
        {65504.0f, 0x7bff},               /* max */
        {65519.0f, 0x7bff},               /* below the halfway point to 2^16 */
        {65520.0f, 0x7c00},               /* halfway: rounds (to even) to inf */
        {1e10f, 0x7c00},
        {-1e10f, 0xfc00},
        {INFINITY, 0x7c00},
        {-INFINITY, 0xfc00},
        {0x1p-24f, 0x0001},               /* smallest denormal */
        {0x1p-25f, 0x0000},               /* tie between 0 and 2^-24: even (0) */
        {0x1.8p-24f, 0x0002},             /* 1.5 ulp: tie, to even (2) */
        {0x1.000002p-25f, 0x0001},        /* just above the tie */
        {0x1p-14f, 0x0400},               /* smallest normal */
        {0x1.ff8p-15f, 0x03ff},           /* largest denormal */
        {0x1.ffcp-15f, 0x0400},           /* ... + half ulp: tie, to even (up) */
        {1.0f + 0x1p-11f, 0x3c00},        /* tie between 1 and 1+2^-10: even */
        {1.0f + 0x1.8p-10f, 0x3c02},      /* tie: to even (2) */
        {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01},
        {-1.0f - 0x1p-10f, 0xbc01},
        {0.1f, 0x2e66},
        {NAN, 0x7e00},
        {-NAN, 0xfe00},
    };
    for (size_t i = 0; i < MC_ARRAY_LEN(cases); i++) {
        uint16_t h = mc_fp32_to_fp16(cases[i].f);
        CHECK_MSG(h == cases[i].h, "fp16(%a) = 0x%04x, want 0x%04x", (double)cases[i].f, h,
                  cases[i].h);
        if (!isnan(cases[i].f) && fabsf(cases[i].f) <= 65504.0f && (bits(cases[i].f) & 0x7fffffff) != 0x33000000)
            CHECK(fabsf(mc_fp16_to_fp32(h) - cases[i].f) <= fabsf(cases[i].f) * 0x1p-11f + 0x1p-25f);
    }
    /* every binary16 value converts to binary32 and back unchanged */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = mc_fp16_to_fp32((uint16_t)h);
        bool nan = ((h >> 10) & 0x1f) == 0x1f && (h & 0x3ff);
        if (nan) {
            bad += !isnan(f);
            continue;
        }
        bad += mc_fp32_to_fp16(f) != h;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(mc_fp16_to_fp32(0x0001) == 0x1p-24f);
    CHECK(mc_fp16_to_fp32(0x7bff) == 65504.0f);
    CHECK(isinf(mc_fp16_to_fp32(0xfc00)) && mc_fp16_to_fp32(0xfc00) < 0);
    CHECK(bits(mc_fp16_to_fp32(0x8000)) == 0x80000000u);
}

MC_TEST(kernels_bf16_special_values) {
    struct {
        uint32_t f;
        uint16_t h;
    } cases[] = {
        {0x00000000, 0x0000}, {0x80000000, 0x8000}, {0x3f800000, 0x3f80},
        {0x3f808000, 0x3f80}, /* tie: even */
        {0x3f818000, 0x3f82}, /* tie: even (up) */
        {0x3f808001, 0x3f81}, {0x3f807fff, 0x3f80},
        {0x7f7fffff, 0x7f80}, /* max float rounds to inf */
        {0x7f800000, 0x7f80}, {0xff800000, 0xff80},
        {0x00010000, 0x0001}, /* denormals kept */
        {0x00008000, 0x0000}, {0x00018000, 0x0002},
        {0x7fc00000, 0x7fc0}, /* quiet NaN */
        {0x7f800001, 0x7fc0}, /* signalling NaN: quieted, not turned into inf */
        {0x7fa00000, 0x7fe0}, {0xffc00001, 0xffc0},
    };
    for (size_t i = 0; i < MC_ARRAY_LEN(cases); i++) {
        uint16_t h = mc_fp32_to_bf16(mc__f32_from_bits(cases[i].f));
        CHECK_MSG(h == cases[i].h, "bf16(0x%08x) = 0x%04x, want 0x%04x", cases[i].f, h, cases[i].h);
    }
    CHECK(mc_bf16_to_fp32(0x3f80) == 1.0f);
    CHECK(bits(mc_bf16_to_fp32(0x8001)) == 0x80010000u);
    uint16_t in[3] = {0x3f80, 0xc000, 0x0001};
    float out[3];
    mc_bf16_to_fp32_row(in, out, 3);
    CHECK(out[0] == 1.0f && out[1] == -2.0f && bits(out[2]) == 0x00010000u);
    uint16_t back[3];
    mc_fp32_to_bf16_row(out, back, 3);
    CHECK(!memcmp(in, back, sizeof(in)));
}

/* SIMD row conversions are bit-exact with the scalar ones, NaN included. */
MC_TEST(kernels_convert_rows_match_scalar) {
    enum { N = 4099 };
    float *x = malloc(N * sizeof(float)), *y0 = malloc(N * sizeof(float)), *y1 = malloc(N * sizeof(float));
    uint16_t *h0 = malloc(N * 2), *h1 = malloc(N * 2), *hin = malloc(N * 2);
    MC_REQUIRE(x && y0 && y1 && h0 && h1 && hin);
    for (int i = 0; i < N; i++) {
        uint32_t r = rnd_u32();
        /* exponents around the fp16 range, plus raw bit patterns */
        x[i] = i % 7 == 0 ? mc__f32_from_bits(r) : ldexpf(rnd_f(), (int)(r % 50) - 30);
        hin[i] = (uint16_t)rnd_u32();
    }
    x[0] = NAN;
    x[1] = -NAN;
    x[2] = 65520.0f;
    x[3] = 0x1p-25f;
    const mc_kernels *ks = mc_kernels_for(MC_ISA_SCALAR);
    MC_REQUIRE(ks);
    for (int isa = MC_ISA_AVX2; isa < MC_ISA_COUNT; isa++) {
        const mc_kernels *k = mc_kernels_for(isa);
        if (!k)
            continue;
        static const int64_t lens[] = {0, 1, 7, 8, 15, 16, 17, 33, N};
        for (size_t l = 0; l < MC_ARRAY_LEN(lens); l++) {
            int64_t n = lens[l];
            memset(h0, 0xaa, N * 2);
            memset(h1, 0xaa, N * 2);
            ks->fp32_to_fp16_row(x, h0, n);
            k->fp32_to_fp16_row(x, h1, n);
            CHECK_MSG(!memcmp(h0, h1, N * 2), "%s fp32_to_fp16_row n=%lld", k->name, (long long)n);
            memset(y0, 0, N * 4);
            memset(y1, 0, N * 4);
            ks->fp16_to_fp32_row(hin, y0, n);
            k->fp16_to_fp32_row(hin, y1, n);
            int bad = 0;
            for (int i = 0; i < N; i++)
                bad += isnan(y0[i]) ? !isnan(y1[i]) : bits(y0[i]) != bits(y1[i]);
            CHECK_MSG(bad == 0, "%s fp16_to_fp32_row n=%lld: %d differ", k->name, (long long)n, bad);
        }
    }
    free(x), free(y0), free(y1), free(h0), free(h1), free(hin);
}

/* ---- reference quantizers ------------------------------------------------------------ */

MC_TEST(kernels_quantize_q8_0_hand_blocks) {
    float x[64];
    /* block 0: amax = 127 so d = 1 and q = roundf(x): ties away from zero */
    static const float v[] = {127, -127, 63.5f, -63.5f, 0.5f, -0.5f, 2.5f, -2.5f, 0.49f, 1.51f};
    static const int8_t q[] = {127, -127, 64, -64, 1, -1, 3, -3, 0, 2};
    for (int j = 0; j < 32; j++)
        x[j] = j < 10 ? v[j] : (float)(j - 20);
    /* block 1: all zero */
    for (int j = 32; j < 64; j++)
        x[j] = 0.0f;
    mc_block_q8_0 b[2];
    MC_REQUIRE(mc_quantize_row(MC_TYPE_Q8_0, x, b, 64) == 0);
    CHECK_EQ_INT(b[0].d, 0x3c00);
    for (int j = 0; j < 10; j++)
        CHECK_MSG(b[0].qs[j] == q[j], "q[%d] = %d want %d", j, b[0].qs[j], q[j]);
    for (int j = 10; j < 32; j++)
        CHECK_EQ_INT(b[0].qs[j], j - 20);
    CHECK_EQ_INT(b[1].d, 0);
    for (int j = 0; j < 32; j++)
        CHECK_EQ_INT(b[1].qs[j], 0);
    /* d = amax/127 stored as fp16, q = round(x * 127/amax... via 1/d) */
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j - 16); /* amax 16 */
    MC_REQUIRE(mc_quantize_row(MC_TYPE_Q8_0, x, b, 32) == 0);
    CHECK_EQ_INT(b[0].d, mc_fp32_to_fp16(16.0f / 127.0f));
    CHECK_EQ_INT(b[0].qs[0], -127);
    CHECK_EQ_INT(b[0].qs[17], 8);  /* 1 * 7.9375 = 7.94 -> 8 */
    CHECK_EQ_INT(b[0].qs[31], 119); /* 15 * 7.9375 = 119.06 */
    float y[32];
    MC_REQUIRE(mc_dequantize_row(MC_TYPE_Q8_0, b, y, 32) == 0);
    for (int j = 0; j < 32; j++)
        CHECK_NEAR(y[j], x[j], 16.0 / 127.0 / 2 * 1.01);
    CHECK_EQ_INT(mc_quantize_row(MC_TYPE_Q8_0, x, b, 33), MC_EINVAL);
    CHECK_EQ_INT(mc_quantize_row(MC_TYPE_Q4_1, x, b, 32), MC_EUNSUPPORTED);
    CHECK_EQ_INT(mc_dequantize_row(MC_TYPE_Q8_0, b, y, -32), MC_EINVAL);
    CHECK_EQ_INT(mc_kernels_row_size(MC_TYPE_Q8_0, 64), 68);
    CHECK_EQ_INT(mc_kernels_row_size(MC_TYPE_Q4_0, 64), 36);
    CHECK_EQ_INT(mc_kernels_row_size(MC_TYPE_Q4_0, 40), 0);
    CHECK_EQ_INT(mc_kernels_row_size(MC_TYPE_BF16, 3), 6);
}

MC_TEST(kernels_quantize_q4_0_hand_blocks) {
    float x[32];
    /* max (signed value of largest magnitude) = -8 -> d = 1, id = 1;
     * q = min(15, trunc(x + 8.5)) */
    static const float v[] = {-8, 7, 7.4f, -7.6f, 0, 0.5f, -0.5f, 3.49f, -3.51f, 6.6f};
    static const int qv[] = {0, 15, 15, 0, 8, 9, 8, 11, 4, 15};
    for (int j = 0; j < 32; j++)
        x[j] = j < 10 ? v[j] : (float)((j % 15) - 7);
    mc_block_q4_0 b;
    MC_REQUIRE(mc_quantize_row(MC_TYPE_Q4_0, x, &b, 32) == 0);
    CHECK_EQ_INT(b.d, 0x3c00);
    for (int j = 0; j < 32; j++) {
        int q = j < 16 ? (b.qs[j] & 15) : (b.qs[j - 16] >> 4);
        int want = j < 10 ? qv[j] : (j % 15) - 7 + 8;
        CHECK_MSG(q == want, "q[%d] = %d want %d", j, q, want);
    }
    /* max = +8 -> d = -1: +8 maps to 0, -8 to 16 clamped to 15 */
    for (int j = 0; j < 32; j++)
        x[j] = 0;
    x[0] = 8;
    x[20] = -8;
    x[3] = -7.9f;
    MC_REQUIRE(mc_quantize_row(MC_TYPE_Q4_0, x, &b, 32) == 0);
    CHECK_EQ_INT(b.d, 0xbc00);
    CHECK_EQ_INT(b.qs[0] & 15, 0);
    CHECK_EQ_INT(b.qs[4] >> 4, 15); /* element 20 */
    CHECK_EQ_INT(b.qs[3] & 15, 15); /* 7.9 + 8.5 = 16.4 -> 15 */
    CHECK_EQ_INT(b.qs[1] & 15, 8);
    float y[32];
    MC_REQUIRE(mc_dequantize_row(MC_TYPE_Q4_0, &b, y, 32) == 0);
    CHECK(y[0] == 8.0f && y[20] == -7.0f && y[1] == 0.0f);
    /* all zero */
    memset(x, 0, sizeof(x));
    MC_REQUIRE(mc_quantize_row(MC_TYPE_Q4_0, x, &b, 32) == 0);
    CHECK_EQ_INT(b.d, 0x8000); /* d = 0 / -8 = -0, as ggml writes it */
    for (int j = 0; j < 16; j++)
        CHECK_EQ_INT(b.qs[j], 0x88);
}

MC_TEST(kernels_quantize_roundtrip_random) {
    enum { N = 32 * 40 };
    float x[N], y[N];
    for (int i = 0; i < N; i++)
        x[i] = rnd_f() * (float)(1 + i / 32);
    static const int types[] = {MC_TYPE_F32, MC_TYPE_F16, MC_TYPE_BF16, MC_TYPE_Q8_0, MC_TYPE_Q4_0};
    uint8_t buf[N * 4];
    for (size_t t = 0; t < MC_ARRAY_LEN(types); t++) {
        MC_REQUIRE(mc_quantize_row(types[t], x, buf, N) == 0);
        MC_REQUIRE(mc_dequantize_row(types[t], buf, y, N) == 0);
        for (int b = 0; b < N / 32; b++) {
            float amax = 0;
            for (int j = 0; j < 32; j++)
                amax = fmaxf(amax, fabsf(x[b * 32 + j]));
            double tol = types[t] == MC_TYPE_Q4_0   ? amax / 8.0 * 1.01
                         : types[t] == MC_TYPE_Q8_0 ? amax / 127.0 * (0.5 + 127.0 / 2048) * 1.01
                         : types[t] == MC_TYPE_BF16 ? amax / 256.0
                         : types[t] == MC_TYPE_F16  ? amax / 2048.0
                                                    : 0.0;
            for (int j = 0; j < 32; j++)
                CHECK_NEAR(y[b * 32 + j], x[b * 32 + j], tol);
        }
    }
}

/* The matmul activation quantizer: ggml-cpu's x86 rounding (half to even),
 * identical bytes in every ISA. */
MC_TEST(kernels_activation_quantizer) {
    enum { N = 32 * 9 };
    float x[N];
    for (int i = 0; i < N; i++)
        x[i] = rnd_f() * 3.0f;
    static const float v[] = {127, 2.5f, -2.5f, 3.5f, 0.5f, -1.5f};
    static const int8_t q[] = {127, 2, -2, 4, 0, -2};
    for (int j = 0; j < 32; j++)
        x[j] = j < 6 ? v[j] : 0.0f;
    for (int j = 64; j < 96; j++)
        x[j] = 0.0f; /* an all-zero block */
    size_t stride = mc__align64(N) + mc__align64(N / 32 * 4);
    uint8_t *ref = aligned_alloc(64, stride), *got = aligned_alloc(64, stride);
    MC_REQUIRE(ref && got);
    memset(ref, 0, stride);
    mc__quantize_act_q8_0(x, ref, N);
    for (int j = 0; j < 6; j++)
        CHECK_EQ_INT(((int8_t *)ref)[j], q[j]);
    float d0;
    memcpy(&d0, ref + mc__align64(N), 4);
    CHECK(d0 == 1.0f);
    size_t gstride = (N / 32 + 3) / 4 * MC__QGROUP_BYTES;
    uint8_t *grp = aligned_alloc(64, gstride);
    MC_REQUIRE(grp);
    for (int isa = MC_ISA_AVX2; isa < MC_ISA_COUNT; isa++) {
        const mc_kernels *k = mc_kernels_for(isa);
        if (!k)
            continue;
        for (int slot = MC__WT_Q8_0; slot <= MC__WT_Q4_0; slot++) {
            memset(got, 0, stride);
            const int G = k->gemm->act_group[slot];
            if (!G) {
                k->gemm->prep[slot](x, got, N);
            } else {
                /* grouped layout (internal.h): check the correction and scale
                 * lanes, and the zero tail, then unpack it to the flat one */
                memset(grp, 0x55, gstride);
                k->gemm->prep[slot](x, grp, N);
                const int off = slot == MC__WT_Q8_0 ? 128 : 8;
                for (int g = 0; g < (N / 32 + G - 1) / G; g++) {
                    const uint8_t *rec = grp + (size_t)g * 64 * G;
                    for (int l = 0; l < 4 * G; l++) {
                        int b = G * g + l / 4;
                        int32_t corr, sum = 0;
                        float d;
                        memcpy(&corr, rec + 32 * G + 4 * l, 4);
                        memcpy(&d, rec + 48 * G + 4 * l, 4);
                        for (int e = 0; e < 4; e++)
                            sum += (int8_t)rec[4 * l + e] + (int8_t)rec[16 * G + 4 * l + e];
                        CHECK_EQ_INT(corr, -off * sum);
                        if (b >= N / 32) {
                            CHECK(d == 0.0f && sum == 0);
                            continue;
                        }
                        memcpy(got + mc__align64(N) + 4 * b, &d, 4);
                        for (int e = 0; e < 4; e++) {
                            int j = 4 * (l % 4) + e;
                            got[32 * b + j] = rec[4 * l + e];
                            got[32 * b + 16 + j] = rec[16 * G + 4 * l + e];
                        }
                    }
                }
            }
            CHECK_MSG(!memcmp(ref, got, stride), "%s activation quantizer differs (slot %d)",
                      k->name, slot);
        }
    }
    free(grp);
    free(ref);
    free(got);
}

/* ---- vector helpers ---------------------------------------------------------------------- */

MC_TEST(kernels_vec_helpers_match_scalar) {
    enum { N = 1031 };
    float a[N], b[N], y0[N], y1[N];
    uint16_t h[N];
    for (int i = 0; i < N; i++) {
        a[i] = rnd_f();
        b[i] = rnd_f();
        h[i] = mc_fp32_to_fp16(rnd_f() * 4);
    }
    const mc_kernels *ks = mc_kernels_for(MC_ISA_SCALAR);
    static const int64_t lens[] = {0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 100, N};
    for (int isa = MC_ISA_AVX2; isa < MC_ISA_COUNT; isa++) {
        const mc_kernels *k = mc_kernels_for(isa);
        if (!k)
            continue;
        for (size_t l = 0; l < MC_ARRAY_LEN(lens); l++) {
            int64_t n = lens[l];
            double mag = 0, magh = 0;
            for (int64_t i = 0; i < n; i++) {
                mag += fabs((double)a[i] * b[i]);
                magh += fabs((double)mc_fp16_to_fp32(h[i]) * b[i]);
            }
            CHECK_NEAR(k->vec_dot_f32(n, a, b), ks->vec_dot_f32(n, a, b), 1e-6 * (mag + 1));
            CHECK_NEAR(k->vec_dot_f16_f32(n, h, b), ks->vec_dot_f16_f32(n, h, b), 1e-6 * (magh + 1));
            memcpy(y0, b, sizeof(b));
            memcpy(y1, b, sizeof(b));
            ks->vec_axpy_f32(n, 0.37f, a, y0);
            k->vec_axpy_f32(n, 0.37f, a, y1);
            for (int i = 0; i < N; i++)
                CHECK_NEAR(y1[i], y0[i], 1e-6);
            memcpy(y0, b, sizeof(b));
            memcpy(y1, b, sizeof(b));
            ks->vec_axpy_f16(n, -1.5f, h, y0);
            k->vec_axpy_f16(n, -1.5f, h, y1);
            for (int i = 0; i < N; i++)
                CHECK_NEAR(y1[i], y0[i], 1e-5);
        }
    }
    /* the dispatching wrappers reach a table */
    CHECK_NEAR(mc_vec_dot_f32(3, a, b), a[0] * b[0] + a[1] * b[1] + a[2] * b[2], 1e-6);
    CHECK(mc_kernels_best() != NULL);
    CHECK(mc_kernels_for(MC_ISA_SCALAR) != NULL);
    CHECK(mc_kernels_for(-1) == NULL && mc_kernels_for(MC_ISA_COUNT) == NULL);
    CHECK_EQ_STR(mc_kernels_name(NULL), "none");
    fprintf(stderr, "best kernels: %s\n", mc_kernels_name(mc_kernels_best()));
}

/* ---- attention ---------------------------------------------------------------------------- */

enum { ATT_MAXN = 300, ATT_MAXHD = 130, ATT_VSTRIDE = 133 };

/* A cache of ATT_MAXN positions in the layout of kernels.h (K blocked, V rows
 * ATT_VSTRIDE apart), F32 and F16 copies of the same random values. */
typedef struct att_cache {
    float kf[(ATT_MAXN + 16) * ATT_MAXHD], vf[ATT_MAXN * ATT_VSTRIDE]; /* K: whole blocks */
    uint16_t kh[(ATT_MAXN + 16) * ATT_MAXHD], vh[ATT_MAXN * ATT_VSTRIDE];
} att_cache;

/* Positions from..ATT_MAXN-1: random values in [-2, 2) if poison is 0, else
 * all `poison` (NaN, inf: what a stale cache may hold past a row's end). */
static void att_fill(att_cache *c, int64_t hd, int64_t from, float poison) {
    for (int64_t p = from; p < ATT_MAXN; p++) {
        for (int64_t i = 0; i < hd; i++) {
            float k = poison != 0 ? poison : rnd_f() * 2;
            float v = poison != 0 ? poison : rnd_f() * 2;
            int64_t ki = mc_kv_k_index(p, i, hd), vi = p * ATT_VSTRIDE + i;
            c->kh[ki] = mc_fp32_to_fp16(k);
            c->kf[ki] = k;
            c->vh[vi] = mc_fp32_to_fp16(v);
            c->vf[vi] = v;
        }
    }
}

static mc_attn_rows att_args(const att_cache *c, int64_t hd, int f16, float scale, float *scratch) {
    mc_attn_rows a;
    memset(&a, 0, sizeof a);
    a.hd = hd;
    a.k = f16 ? (const void *)c->kh : (const void *)c->kf;
    a.v = f16 ? (const void *)c->vh : (const void *)c->vf;
    a.v_stride = ATT_VSTRIDE;
    a.f16 = f16;
    a.scale = scale;
    a.scratch = scratch;
    return a;
}

static float att_k(const att_cache *c, int f16, int64_t p, int64_t i, int64_t hd) {
    int64_t ki = mc_kv_k_index(p, i, hd);
    return f16 ? mc_fp16_to_fp32(c->kh[ki]) : c->kf[ki];
}

/* Every SIMD table against the scalar one, a row at a time: F16 and F32
 * caches, head sizes with every kind of tail (below, at and past the vector
 * widths), position counts around the 16-position blocks and the 64-position
 * steps, a soft and a peaked softmax. The bound is the error the scores' f32
 * sums allow, carried through the softmax weights, plus the exp's. */
MC_TEST(kernels_attn_matches_scalar) {
    static att_cache c;
        static float q[ATT_MAXHD], y0[ATT_MAXHD + 1], y1[ATT_MAXHD + 1];
    static float scratch[ATT_MAXN + 16];
    static double w[ATT_MAXN];
    for (int i = 0; i < ATT_MAXHD; i++)
        q[i] = rnd_f();
    static const int64_t hds[] = {1, 7, 8, 9, 16, 17, 33, 64, 80, 100, 128, 130};
    static const int64_t ns[] = {1, 2, 3, 15, 16, 17, 31, 33, 63, 64, 65, 100, 129, ATT_MAXN};
    const mc_kernels *ks = mc_kernels_for(MC_ISA_SCALAR);
    int n_checked = 0;
    for (int isa = MC_ISA_AVX2; isa < MC_ISA_COUNT; isa++) {
        const mc_kernels *k = mc_kernels_for(isa);
        if (!k)
            continue;
        for (int f16 = 0; f16 <= 1; f16++) {
            for (size_t a_ = 0; a_ < MC_ARRAY_LEN(hds); a_++) {
                const int64_t hd = hds[a_];
                att_fill(&c, hd, 0, 0); /* this head size's layout */
                for (int peaked = 0; peaked <= 1; peaked++) {
                    const float scale = peaked ? 4.0f : 1.0f / sqrtf((float)hd);
                    for (size_t b = 0; b < MC_ARRAY_LEN(ns); b++) {
                        const int64_t n = ns[b];
                        mc_attn_rows a = att_args(&c, hd, f16, scale, scratch);
                        a.n_rows = 1;
                        a.q[0] = q;
                        a.n[0] = n;
                        y0[hd] = y1[hd] = 12345.0f; /* sentinels */
                        a.out[0] = y0;
                        ks->attn(&a);
                        a.out[0] = y1;
                        k->attn(&a);
                        CHECK(y0[hd] == 12345.0f && y1[hd] == 12345.0f);
                        /* softmax weights in double, and the largest score magnitude */
                        double mx = -INFINITY, sum = 0, mag = 0;
                        for (int64_t p = 0; p < n; p++) {
                            double s = 0, m = 0;
                            for (int64_t i = 0; i < hd; i++) {
                                s += (double)q[i] * att_k(&c, f16, p, i, hd);
                                m += fabs((double)q[i] * att_k(&c, f16, p, i, hd));
                            }
                            w[p] = s * scale;
                            mx = fmax(mx, w[p]);
                            mag = fmax(mag, m * scale);
                        }
                        for (int64_t p = 0; p < n; p++)
                            sum += (w[p] = exp(w[p] - mx));
                        for (int64_t i = 0; i < hd; i++) {
                            double wv = 0;
                            for (int64_t p = 0; p < n; p++)
                                wv += w[p] / sum *
                                      fabs(f16 ? mc_fp16_to_fp32(c.vh[p * ATT_VSTRIDE + i])
                                               : c.vf[p * ATT_VSTRIDE + i]);
                            double tol = wv * (1e-5 + 4e-6 * mag) + 1e-7;
                            CHECK_MSG(fabs(y1[i] - y0[i]) <= tol,
                                      "%s attn f16=%d hd %lld n %lld scale %g: out[%lld] %.9g "
                                      "scalar %.9g (tol %.3g)",
                                      k->name, f16, (long long)hd, (long long)n, scale,
                                      (long long)i, y1[i], y0[i], tol);
                            n_checked++;
                        }
                    }
                }
            }
        }
    }
    printf("%d outputs checked against the scalar table\n", n_checked);
}

/* The property speculative decoding rests on: a row's output is the same bits
 * whether it is computed alone, with a cache that holds garbage (NaN, inf)
 * past its own positions, as decode sees it, or in a call with other rows of
 * other lengths at any place in it. Every table, F16 and F32 caches. */
MC_TEST(kernels_attn_rows_independent) {
    static att_cache c, orig;
    static float q[MC_ATTN_ROWS][ATT_MAXHD], tiled[MC_ATTN_ROWS][ATT_MAXHD + 1];
    static float alone[ATT_MAXHD + 1];
    static float scratch[MC_ATTN_ROWS * (ATT_MAXN + 16) + 1];
    for (int r = 0; r < MC_ATTN_ROWS; r++)
        for (int i = 0; i < ATT_MAXHD; i++)
            q[r][i] = rnd_f() * 1.5f;
    static const int64_t hds[] = {7, 16, 33, 64, 130};
    int n_rows_checked = 0;
    for (int isa = MC_ISA_SCALAR; isa < MC_ISA_COUNT; isa++) {
        const mc_kernels *k = mc_kernels_for(isa);
        if (!k)
            continue;
        for (int f16 = 0; f16 <= 1; f16++) {
            for (size_t h = 0; h < MC_ARRAY_LEN(hds); h++) {
                const int64_t hd = hds[h];
                for (int layout = 0; layout < 4; layout++) {
                    /* row counts 1..8; lengths: a causal run (decode's batch), spread
                     * out, all equal, one long row among short ones */
                    const int n_rows = layout == 3 ? 5 : MC_ATTN_ROWS - layout;
                    int64_t n[MC_ATTN_ROWS];
                    for (int r = 0; r < n_rows; r++)
                        n[r] = layout == 0   ? 250 + r
                               : layout == 1 ? 1 + (r * 97) % ATT_MAXN
                               : layout == 2 ? 64
                                             : (r == 2 ? ATT_MAXN : 3 + r);
                    att_fill(&c, hd, 0, 0);
                    float *sent = scratch + n_rows * mc_kv_padded(ATT_MAXN);
                    *sent = 12345.0f;
                    mc_attn_rows a = att_args(&c, hd, f16, 1.0f / sqrtf((float)hd), scratch);
                    a.n_rows = n_rows;
                    for (int r = 0; r < n_rows; r++) {
                        a.q[r] = q[(r * 5 + layout) % MC_ATTN_ROWS];
                        a.n[r] = n[r];
                        a.out[r] = tiled[r];
                        tiled[r][hd] = 12345.0f;
                    }
                    k->attn(&a);
                    CHECK(*sent == 12345.0f);
                    for (int r = 0; r < n_rows; r++) {
                        CHECK(tiled[r][hd] == 12345.0f);
                        /* alone, positions past n[r] poisoned, then restored */
                        memcpy(&orig, &c, sizeof c);
                        att_fill(&c, hd, n[r], r % 2 ? NAN : INFINITY);
                        mc_attn_rows b = att_args(&c, hd, f16, a.scale, scratch);
                        b.n_rows = 1;
                        b.q[0] = a.q[r];
                        b.n[0] = n[r];
                        b.out[0] = alone;
                        k->attn(&b);
                        CHECK_MSG(!memcmp(alone, tiled[r], (size_t)hd * sizeof(float)),
                                  "%s f16=%d hd %lld layout %d: row %d of %d (n %lld) differs "
                                  "alone",
                                  k->name, f16, (long long)hd, layout, r, n_rows, (long long)n[r]);
                        for (int64_t i = 0; i < hd; i++)
                            CHECK_MSG(isfinite(alone[i]), "%s: output not finite", k->name);
                        memcpy(&c, &orig, sizeof c);
                        n_rows_checked++;
                    }
                }
            }
        }
    }
    printf("%d rows checked\n", n_rows_checked);
}

/* SwiGLU against the scalar table (libm expf): random gates over the whole
 * useful range, the extremes where e^-x overflows or underflows, and every
 * tail length; y may alias g. */
MC_TEST(kernels_swiglu_matches_scalar) {
    enum { N = 203 };
    float g[N], u[N], y0[N], y1[N];
    static const float special[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 87.0f, -87.0f, 88.5f, -88.5f,
                                    89.5f, -89.5f, 100.0f, -100.0f, 200.0f, -200.0f, 1e30f, -1e30f};
    for (int i = 0; i < N; i++) {
        g[i] = i < (int)MC_ARRAY_LEN(special) ? special[i] : rnd_f() * 30.0f;
        u[i] = rnd_f() * 2.0f;
    }
    const mc_kernels *ks = mc_kernels_for(MC_ISA_SCALAR);
    for (int isa = MC_ISA_AVX2; isa < MC_ISA_COUNT; isa++) {
        const mc_kernels *k = mc_kernels_for(isa);
        if (!k)
            continue;
        for (int n = 0; n <= 40; n += (n < 20 ? 1 : 20)) {
            ks->swiglu(n == 40 ? N : n, g, u, y0);
            memcpy(y1, g, sizeof(g));
            k->swiglu(n == 40 ? N : n, y1, u, y1);
            for (int i = 0; i < (n == 40 ? N : n); i++)
                CHECK_MSG(fabsf(y1[i] - y0[i]) <= 4e-7f * fabsf(y0[i]) + 1e-30f,
                          "%s swiglu(%g) * %g = %.9g, scalar %.9g", k->name, g[i], u[i], y1[i], y0[i]);
        }
    }
}

/* ---- matmul ---------------------------------------------------------------------------- */

typedef struct mm_case {
    int wtype;
    int64_t n_out, n_in, n_tok;
} mm_case;

/* Runs one shape on every ISA (and with pools) and checks:
 *  - vs a double reference on the dequantized weights and the original X,
 *    with the error the activation rounding allows;
 *  - SIMD vs scalar table within f32 reassociation error;
 *  - pool results bit-identical to the single-thread result. */
static void check_matmul(const mm_case *c, mc_pool *pool2, mc_pool *pool3) {
    const int64_t n_out = c->n_out, n_in = c->n_in, n_tok = c->n_tok;
    size_t row = mc_kernels_row_size(c->wtype, n_in);
    MC_REQUIRE(row > 0);
    float *wf = malloc((size_t)(n_out * n_in) * 4), *wd = malloc((size_t)(n_out * n_in) * 4);
    uint8_t *W = malloc(row * (size_t)n_out);
    float *X = malloc((size_t)(n_tok * n_in) * 4);
    float *Y0 = malloc((size_t)(n_tok * n_out) * 4), *Y1 = malloc((size_t)(n_tok * n_out) * 4);
    float *Y2 = malloc((size_t)(n_tok * n_out) * 4);
    size_t ss = mc_matmul_scratch_size(c->wtype, n_in, n_tok);
    void *scratch = malloc(ss + 1);
    MC_REQUIRE(wf && wd && W && X && Y0 && Y1 && Y2 && scratch);
    for (int64_t i = 0; i < n_out * n_in; i++)
        wf[i] = rnd_f();
    for (int64_t i = 0; i < n_tok * n_in; i++)
        X[i] = rnd_f() * 2.0f;
    for (int64_t o = 0; o < n_out; o++) {
        MC_REQUIRE(mc_quantize_row(c->wtype, wf + o * n_in, W + (size_t)o * row, n_in) == 0);
        MC_REQUIRE(mc_dequantize_row(c->wtype, W + (size_t)o * row, wd + o * n_in, n_in) == 0);
    }
    const mc_kernels *ks = mc_kernels_for(MC_ISA_SCALAR);
    /* misaligned scratch on purpose: the driver aligns inside it */
    MC_REQUIRE(mc_matmul(ks, NULL, c->wtype, W, n_out, n_in, X, n_tok, Y0, (char *)scratch + 1, ss) == 0);
    double rel = c->wtype == MC_TYPE_F32    ? 1e-5
                 : c->wtype == MC_TYPE_F16  ? 1.2e-3
                 : c->wtype == MC_TYPE_BF16 ? 8e-3
                                            : 0; /* quantized: see below */
    int bad = 0;
    for (int64_t t = 0; t < n_tok; t++) {
        double xmax = 0;
        for (int64_t i = 0; i < n_in; i++)
            xmax = fmax(xmax, fabs(X[t * n_in + i]));
        for (int64_t o = 0; o < n_out; o++) {
            double ref = 0, mag = 0, wabs = 0;
            for (int64_t i = 0; i < n_in; i++) {
                ref += (double)wd[o * n_in + i] * X[t * n_in + i];
                mag += fabs((double)wd[o * n_in + i] * X[t * n_in + i]);
                wabs += fabs(wd[o * n_in + i]);
            }
            /* Q8_0 activations: |dx| <= amax/254 per element, plus the
             * binary16 rounding of the scale (<= amax * 2^-11). */
            double tol = rel ? rel * mag + 1e-6 : wabs * xmax * (1 / 254.0 + 1 / 2048.0) * 1.01 + 1e-5;
            if (!(fabs(Y0[t * n_out + o] - ref) <= tol) && bad++ < 5)
                mc_test_fail_at(__FILE__, __LINE__, "type %d %lldx%lldx%lld: y[%lld][%lld] %g ref %g tol %g",
                                c->wtype, (long long)n_out, (long long)n_in, (long long)n_tok,
                                (long long)t, (long long)o, Y0[t * n_out + o], ref, tol);
        }
    }
    for (int isa = MC_ISA_AVX2; isa < MC_ISA_COUNT; isa++) {
        const mc_kernels *k = mc_kernels_for(isa);
        if (!k)
            continue;
        MC_REQUIRE(mc_matmul(k, NULL, c->wtype, W, n_out, n_in, X, n_tok, Y1, scratch, ss) == 0);
        int nbad = 0;
        for (int64_t t = 0; t < n_tok; t++)
            for (int64_t o = 0; o < n_out; o++) {
                double mag = 0;
                for (int64_t i = 0; i < n_in; i++)
                    mag += fabs((double)wd[o * n_in + i] * X[t * n_in + i]);
                /* bf16 x bf16 in hardware rounds activations like the scalar
                 * path; the rest is f32 reassociation */
                double tol = 2e-5 * mag + 1e-6;
                float a = Y1[t * n_out + o], b = Y0[t * n_out + o];
                if (!(fabs(a - b) <= tol) && nbad++ < 5)
                    mc_test_fail_at(__FILE__, __LINE__, "%s type %d %lldx%lldx%lld: y[%lld][%lld] %g scalar %g",
                                    k->name, c->wtype, (long long)n_out, (long long)n_in,
                                    (long long)n_tok, (long long)t, (long long)o, a, b);
            }
        /* a token alone gives the bits it gets inside the batch (decode
         * versus draft verification) */
        for (int64_t t = 0; t < n_tok; t++) {
            MC_REQUIRE(mc_matmul(k, NULL, c->wtype, W, n_out, n_in, X + t * n_in, 1, Y2, scratch,
                                 ss) == 0);
            CHECK_MSG(!memcmp(Y2, Y1 + t * n_out, (size_t)n_out * 4),
                      "%s type %d %lldx%lldx%lld: token %lld alone differs from the batch",
                      k->name, c->wtype, (long long)n_out, (long long)n_in, (long long)n_tok,
                      (long long)t);
        }
        mc_pool *pools[2] = {pool2, pool3};
        for (int pi = 0; pi < 2; pi++) {
            memset(Y2, 0xff, (size_t)(n_tok * n_out) * 4);
            MC_REQUIRE(mc_matmul(k, pools[pi], c->wtype, W, n_out, n_in, X, n_tok, Y2, scratch, ss) == 0);
            CHECK_MSG(!memcmp(Y1, Y2, (size_t)(n_tok * n_out) * 4), "%s type %d: pool result differs",
                      k->name, c->wtype);
        }
    }
    free(wf), free(wd), free(W), free(X), free(Y0), free(Y1), free(Y2), free(scratch);
}

static void matmul_shapes(int wtype) {
    mc_pool *p2 = NULL, *p3 = NULL;
    MC_REQUIRE(mc_pool_new(2, &p2) == 0 && mc_pool_new(3, &p3) == 0);
    static const int64_t outs[] = {1, 3, 5, 17, 70};
    static const int64_t ins_q[] = {32, 64, 96, 160};
    static const int64_t ins_f[] = {1, 17, 32, 48, 67};
    static const int64_t toks[] = {1, 2, 3, 5, 9, 35};
    int quant = wtype == MC_TYPE_Q8_0 || wtype == MC_TYPE_Q4_0;
    for (size_t a = 0; a < MC_ARRAY_LEN(outs); a++)
        for (size_t b = 0; b < 4; b++)
            for (size_t t = 0; t < MC_ARRAY_LEN(toks); t++) {
                mm_case c = {wtype, outs[a], quant ? ins_q[b] : ins_f[b], toks[t]};
                check_matmul(&c, p2, p3);
            }
    mm_case big = {wtype, 67, quant ? 4096 : 4099, 7};
    check_matmul(&big, p2, p3);
    mc_pool_free(p2);
    mc_pool_free(p3);
}

MC_TEST(kernels_matmul_f32) { matmul_shapes(MC_TYPE_F32); }
MC_TEST(kernels_matmul_f16) { matmul_shapes(MC_TYPE_F16); }
MC_TEST(kernels_matmul_bf16) { matmul_shapes(MC_TYPE_BF16); }
MC_TEST(kernels_matmul_q8_0) { matmul_shapes(MC_TYPE_Q8_0); }
MC_TEST(kernels_matmul_q4_0) { matmul_shapes(MC_TYPE_Q4_0); }

/* Integer-exact case: d = 1 everywhere and activations that quantize to
 * themselves (integers with a +-127 in every block), so every ISA must give
 * exactly the int64 dot product, including Q8_0 weights of -128. */
MC_TEST(kernels_matmul_quant_exact) {
    enum { NO = 13, NI = 96, NT = 6 };
    float X[NT * NI], Y[NT * NO];
    for (int t = 0; t < NT; t++)
        for (int i = 0; i < NI; i++)
            X[t * NI + i] = i % 32 == (t * 5) % 32 ? (t & 1 ? -127.0f : 127.0f)
                                                  : (float)((int)(rnd_u32() % 255) - 127);
    mc_block_q8_0 w8[NO * NI / 32];
    mc_block_q4_0 w4[NO * NI / 32];
    for (int b = 0; b < NO * NI / 32; b++) {
        w8[b].d = 0x3c00;
        w4[b].d = 0x3c00;
        for (int j = 0; j < 32; j++)
            w8[b].qs[j] = (int8_t)(j == 3 ? -128 : (int)(rnd_u32() % 256) - 128);
        for (int j = 0; j < 16; j++)
            w4[b].qs[j] = (uint8_t)rnd_u32();
    }
    size_t ss = mc_matmul_scratch_size(MC_TYPE_Q8_0, NI, NT);
    void *scratch = malloc(ss);
    MC_REQUIRE(scratch);
    for (int isa = 0; isa < MC_ISA_COUNT; isa++) {
        const mc_kernels *k = mc_kernels_for(isa);
        if (!k)
            continue;
        for (int q4 = 0; q4 < 2; q4++) {
            MC_REQUIRE(mc_matmul(k, NULL, q4 ? MC_TYPE_Q4_0 : MC_TYPE_Q8_0, q4 ? (void *)w4 : (void *)w8,
                                 NO, NI, X, NT, Y, scratch, ss) == 0);
            for (int t = 0; t < NT; t++)
                for (int o = 0; o < NO; o++) {
                    int64_t s = 0;
                    for (int i = 0; i < NI; i++) {
                        int b = o * NI / 32 + i / 32, j = i % 32;
                        int w = q4 ? (j < 16 ? (w4[b].qs[j] & 15) : (w4[b].qs[j - 16] >> 4)) - 8
                                   : w8[b].qs[j];
                        s += (int64_t)w * (int64_t)X[t * NI + i];
                    }
                    CHECK_MSG(Y[t * NO + o] == (float)s, "%s %s y[%d][%d] = %.1f want %lld", k->name,
                              q4 ? "q4_0" : "q8_0", t, o, Y[t * NO + o], (long long)s);
                }
        }
    }
    free(scratch);
}

/* mc_matmul_multi: each product is bitwise the lone mc_matmul's, on every ISA
 * and pool, for matrices of uneven heights (ragged tiles in each). */
MC_TEST(kernels_matmul_multi) {
    enum { NI = 160, NT = 6, NM = 3 };
    static const int64_t outs[NM] = {70, 1, 13};
    static const int types[] = {MC_TYPE_F32, MC_TYPE_F16, MC_TYPE_BF16, MC_TYPE_Q8_0, MC_TYPE_Q4_0};
    float X[NT * NI], tmp[NI];
    for (int i = 0; i < NT * NI; i++)
        X[i] = rnd_f();
    mc_pool *p2 = NULL;
    MC_REQUIRE(mc_pool_new(2, &p2) == 0);
    for (size_t ti = 0; ti < MC_ARRAY_LEN(types); ti++) {
        const int type = types[ti];
        size_t row = mc_kernels_row_size(type, NI);
        uint8_t *W[NM];
        float *Y[NM], *Yref[NM];
        mc_matmul_out mats[NM];
        for (int m = 0; m < NM; m++) {
            W[m] = malloc(row * (size_t)outs[m]);
            Y[m] = malloc((size_t)(outs[m] * NT) * 4);
            Yref[m] = malloc((size_t)(outs[m] * NT) * 4);
            MC_REQUIRE(W[m] && Y[m] && Yref[m]);
            for (int64_t o = 0; o < outs[m]; o++) {
                for (int i = 0; i < NI; i++)
                    tmp[i] = rnd_f();
                MC_REQUIRE(mc_quantize_row(type, tmp, W[m] + (size_t)o * row, NI) == 0);
            }
            mats[m] = (mc_matmul_out){W[m], outs[m], Y[m]};
        }
        size_t ss = mc_matmul_scratch_size(type, NI, NT);
        void *scratch = ss ? malloc(ss) : NULL;
        for (int isa = 0; isa < MC_ISA_COUNT; isa++) {
            const mc_kernels *k = mc_kernels_for(isa);
            if (!k)
                continue;
            for (int m = 0; m < NM; m++)
                MC_REQUIRE(mc_matmul(k, NULL, type, W[m], outs[m], NI, X, NT, Yref[m], scratch, ss) == 0);
            for (int pi = 0; pi < 2; pi++) {
                for (int m = 0; m < NM; m++)
                    memset(Y[m], 0xff, (size_t)(outs[m] * NT) * 4);
                MC_REQUIRE(mc_matmul_multi(k, pi ? p2 : NULL, type, NM, mats, NI, X, NT, scratch, ss) == 0);
                for (int m = 0; m < NM; m++)
                    CHECK_MSG(!memcmp(Y[m], Yref[m], (size_t)(outs[m] * NT) * 4),
                              "%s type %d matrix %d differs", k->name, type, m);
            }
        }
        CHECK_EQ_INT(mc_matmul_multi(NULL, NULL, type, 0, mats, NI, X, NT, scratch, ss), MC_EINVAL);
        CHECK_EQ_INT(mc_matmul_multi(NULL, NULL, type, MC_MATMUL_MAX + 1, mats, NI, X, NT, scratch, ss),
                     MC_EINVAL);
        for (int m = 0; m < NM; m++) {
            free(W[m]);
            free(Y[m]);
            free(Yref[m]);
        }
        free(scratch);
    }
    mc_pool_free(p2);
}

MC_TEST(kernels_matmul_errors) {
    float X[64] = {0}, Y[4];
    uint8_t W[4 * 68] = {0};
    uint8_t scratch[1024];
    CHECK_EQ_INT(mc_matmul(NULL, NULL, MC_TYPE_Q4_1, W, 1, 32, X, 1, Y, scratch, sizeof(scratch)),
                 MC_EUNSUPPORTED);
    CHECK_EQ_INT(mc_matmul(NULL, NULL, MC_TYPE_Q8_0, W, 1, 33, X, 1, Y, scratch, sizeof(scratch)),
                 MC_EINVAL);
    CHECK_EQ_INT(mc_matmul(NULL, NULL, MC_TYPE_Q8_0, W, 1, 32, X, 1, Y, scratch, 10), MC_EINVAL);
    CHECK_EQ_INT(mc_matmul(NULL, NULL, MC_TYPE_F16, W, 1, 32, X, 1, Y, NULL, 0), MC_EINVAL);
    CHECK_EQ_INT(mc_matmul(NULL, NULL, MC_TYPE_F32, W, 1, 0, X, 1, Y, NULL, 0), MC_EINVAL);
    CHECK_EQ_INT(mc_matmul(NULL, NULL, MC_TYPE_F32, W, 0, 16, X, 1, Y, NULL, 0), 0);
    CHECK_EQ_INT(mc_matmul(NULL, NULL, MC_TYPE_F32, W, 1, 16, X, 0, Y, NULL, 0), 0);
    CHECK_EQ_INT(mc_matmul_scratch_size(MC_TYPE_F32, 32, 4), 0);
    CHECK(mc_matmul_scratch_size(MC_TYPE_Q4_0, 32, 4) >= 4 * (32 + 4));
    CHECK_EQ_INT(mc_matmul(NULL, NULL, MC_TYPE_F32, W, 2, 16, X, 2, Y, NULL, 0), 0);
    CHECK(Y[0] == 0.0f);
}

/* MCCOM_ISA caps the choice. Each test runs in a fresh process, so the
 * once-initialised choice has not been made yet here. */
MC_TEST(kernels_isa_env_cap) {
    setenv("MCCOM_ISA", "scalar", 1);
    const mc_kernels *k = mc_kernels_best();
    CHECK_EQ_INT(k->isa, MC_ISA_SCALAR);
    CHECK_EQ_STR(mc_kernels_name(k), "scalar");
    /* the other tables stay reachable directly */
    if (mc_kernels_for(MC_ISA_AVX2))
        CHECK_EQ_STR(mc_kernels_name(mc_kernels_for(MC_ISA_AVX2)), "avx2");
}
