/* kernels_scalar.c — the portable reference: number conversions, ggml's
 * reference quantizers, the vector helpers and the gemm oracle.
 *
 * Every SIMD kernel is tested against these. They are written for clarity,
 * not speed: one output at a time, f32 accumulation in element order (int32
 * per block for the quantized types, as ggml's scalar vec_dot does).
 */
#include "internal.h"

#include <math.h>

/* ---- rows of numbers ------------------------------------------------------- */

void mc_fp16_to_fp32_row(const uint16_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        y[i] = mc_fp16_to_fp32(x[i]);
}

void mc_fp32_to_fp16_row(const float *x, uint16_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        y[i] = mc_fp32_to_fp16(x[i]);
}

void mc_bf16_to_fp32_row(const uint16_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        y[i] = mc_bf16_to_fp32(x[i]);
}

void mc_fp32_to_bf16_row(const float *x, uint16_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        y[i] = mc_fp32_to_bf16(x[i]);
}

/* ---- ggml's reference quantizers ----------------------------------------------- */

/* quantize_row_q8_0_ref: d = amax/127, q = roundf(x/d) (half away from zero). */
static void quantize_q8_0_ref(const float *x, mc_block_q8_0 *y, int64_t n) {
    for (int64_t b = 0; b < n / MC_QK8_0; b++) {
        const float *xb = x + b * MC_QK8_0;
        float amax = 0.0f;
        for (int j = 0; j < MC_QK8_0; j++)
            amax = MC_MAX(amax, fabsf(xb[j]));
        const float d = amax / 127.0f;
        const float id = d ? 1.0f / d : 0.0f;
        y[b].d = mc_fp32_to_fp16(d);
        for (int j = 0; j < MC_QK8_0; j++)
            y[b].qs[j] = (int8_t)roundf(xb[j] * id);
    }
}

/* quantize_row_q4_0_ref: the signed value of largest magnitude maps to -8;
 * q = min(15, trunc(x/d + 8.5)). */
static void quantize_q4_0_ref(const float *x, mc_block_q4_0 *y, int64_t n) {
    for (int64_t b = 0; b < n / MC_QK4_0; b++) {
        const float *xb = x + b * MC_QK4_0;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < MC_QK4_0; j++) {
            if (amax < fabsf(xb[j])) {
                amax = fabsf(xb[j]);
                max = xb[j];
            }
        }
        const float d = max / -8;
        const float id = d ? 1.0f / d : 0.0f;
        y[b].d = mc_fp32_to_fp16(d);
        for (int j = 0; j < MC_QK4_0 / 2; j++) {
            const float x0 = xb[j] * id;
            const float x1 = xb[MC_QK4_0 / 2 + j] * id;
            const uint8_t q0 = (uint8_t)MC_MIN(15, (int8_t)(x0 + 8.5f));
            const uint8_t q1 = (uint8_t)MC_MIN(15, (int8_t)(x1 + 8.5f));
            y[b].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

static void dequantize_q8_0(const mc_block_q8_0 *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / MC_QK8_0; b++) {
        const float d = mc_fp16_to_fp32(x[b].d);
        for (int j = 0; j < MC_QK8_0; j++)
            y[b * MC_QK8_0 + j] = x[b].qs[j] * d;
    }
}

static void dequantize_q4_0(const mc_block_q4_0 *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / MC_QK4_0; b++) {
        const float d = mc_fp16_to_fp32(x[b].d);
        for (int j = 0; j < MC_QK4_0 / 2; j++) {
            y[b * MC_QK4_0 + j] = ((x[b].qs[j] & 15) - 8) * d;
            y[b * MC_QK4_0 + j + 16] = ((x[b].qs[j] >> 4) - 8) * d;
        }
    }
}

int mc_kernels_type_supported(int type) {
    return type == MC_TYPE_F32 || type == MC_TYPE_F16 || type == MC_TYPE_BF16 ||
           type == MC_TYPE_Q8_0 || type == MC_TYPE_Q4_0;
}

size_t mc_kernels_row_size(int type, int64_t n) {
    if (n < 0)
        return 0;
    switch (type) {
    case MC_TYPE_F32:
        return (size_t)n * 4;
    case MC_TYPE_F16:
    case MC_TYPE_BF16:
        return (size_t)n * 2;
    case MC_TYPE_Q8_0:
        return n % MC_QK8_0 ? 0 : (size_t)(n / MC_QK8_0) * sizeof(mc_block_q8_0);
    case MC_TYPE_Q4_0:
        return n % MC_QK4_0 ? 0 : (size_t)(n / MC_QK4_0) * sizeof(mc_block_q4_0);
    default:
        return 0;
    }
}

static int check_row(int type, int64_t n) {
    if (!mc_kernels_type_supported(type))
        return MC_EUNSUPPORTED;
    if (n < 0 || (n > 0 && mc_kernels_row_size(type, n) == 0))
        return MC_EINVAL;
    return 0;
}

int mc_quantize_row(int type, const float *x, void *y, int64_t n) {
    int rc = check_row(type, n);
    if (rc)
        return rc;
    switch (type) {
    case MC_TYPE_F32:
        memcpy(y, x, (size_t)n * 4);
        break;
    case MC_TYPE_F16:
        mc_fp32_to_fp16_row(x, y, n);
        break;
    case MC_TYPE_BF16:
        mc_fp32_to_bf16_row(x, y, n);
        break;
    case MC_TYPE_Q8_0:
        quantize_q8_0_ref(x, y, n);
        break;
    case MC_TYPE_Q4_0:
        quantize_q4_0_ref(x, y, n);
        break;
    }
    return 0;
}

int mc_dequantize_row(int type, const void *x, float *y, int64_t n) {
    int rc = check_row(type, n);
    if (rc)
        return rc;
    switch (type) {
    case MC_TYPE_F32:
        memcpy(y, x, (size_t)n * 4);
        break;
    case MC_TYPE_F16:
        mc_fp16_to_fp32_row(x, y, n);
        break;
    case MC_TYPE_BF16:
        mc_bf16_to_fp32_row(x, y, n);
        break;
    case MC_TYPE_Q8_0:
        dequantize_q8_0(x, y, n);
        break;
    case MC_TYPE_Q4_0:
        dequantize_q4_0(x, y, n);
        break;
    }
    return 0;
}

/* ---- activation preparation (matmul) ---------------------------------------------- */

/* Round half to even for |v| < 2^22 under the default rounding mode. */
static inline float round_even(float v) {
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    volatile float t = v + magic;  /* volatile: keep the compiler from folding */
    return t - magic;
}

/* ggml-cpu x86 quantize_row_q8_0: d = amax/127 (stored as binary16),
 * q = round_half_even(x * (127/amax)). */
void mc__quantize_act_q8_0(const float *x, void *dst, int64_t n_in) {
    int8_t *qs = dst;
    float *ds = (float *)((uint8_t *)dst + mc__align64((size_t)n_in));
    for (int64_t b = 0; b < n_in / 32; b++) {
        const float *xb = x + b * 32;
        float amax = 0.0f;
        for (int j = 0; j < 32; j++)
            amax = MC_MAX(amax, fabsf(xb[j]));
        const float d = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        ds[b] = mc_fp16_to_fp32(mc_fp32_to_fp16(d));
        for (int j = 0; j < 32; j++)
            qs[b * 32 + j] = (int8_t)(int)round_even(xb[j] * id);
    }
}

void mc__round_f16_row(const float *x, void *dst, int64_t n_in) {
    float *y = dst;
    for (int64_t i = 0; i < n_in; i++)
        y[i] = mc_fp16_to_fp32(mc_fp32_to_fp16(x[i]));
}

void mc__round_bf16_row(const float *x, void *dst, int64_t n_in) {
    float *y = dst;
    for (int64_t i = 0; i < n_in; i++)
        y[i] = mc_bf16_to_fp32(mc_fp32_to_bf16(x[i]));
}

/* ---- vector helpers ------------------------------------------------------------ */

static float vec_dot_f32(int64_t n, const float *a, const float *b) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static float vec_dot_f16_f32(int64_t n, const uint16_t *a, const float *b) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++)
        s += mc_fp16_to_fp32(a[i]) * b[i];
    return s;
}

static void vec_axpy_f32(int64_t n, float alpha, const float *x, float *y) {
    for (int64_t i = 0; i < n; i++)
        y[i] += alpha * x[i];
}

static void vec_axpy_f16(int64_t n, float alpha, const uint16_t *x, float *y) {
    for (int64_t i = 0; i < n; i++)
        y[i] += alpha * mc_fp16_to_fp32(x[i]);
}

static float kv_at(const void *kv, int64_t i, int f16) {
    return f16 ? mc_fp16_to_fp32(((const uint16_t *)kv)[i]) : ((const float *)kv)[i];
}

/* One row at a time, in the plainest order: each score a sum over i, the
 * softmax with libm's expf and a double denominator, the weighted sum of V
 * over p. */
static void attn(const mc_attn_rows *a) {
    const int64_t hd = a->hd;
    float *s = a->scratch;
    for (int r = 0; r < a->n_rows; r++) {
        const int64_t n = a->n[r];
        const float *q = a->q[r];
        float mx = -INFINITY;
        for (int64_t p = 0; p < n; p++) {
            float acc = 0.0f;
            for (int64_t i = 0; i < hd; i++)
                acc += q[i] * kv_at(a->k, mc_kv_k_index(p, i, hd), a->f16);
            s[p] = acc * a->scale;
            mx = s[p] > mx ? s[p] : mx;
        }
        double sum = 0.0;
        for (int64_t p = 0; p < n; p++) {
            s[p] = expf(s[p] - mx);
            sum += s[p];
        }
        const float inv = (float)(1.0 / sum);
        for (int64_t i = 0; i < hd; i++) {
            float acc = 0.0f;
            for (int64_t p = 0; p < n; p++)
                acc += s[p] * kv_at(a->v, p * a->v_stride + i, a->f16);
            a->out[r][i] = acc * inv;
        }
    }
}

static void swiglu(int64_t n, const float *g, const float *u, float *y) {
    for (int64_t i = 0; i < n; i++)
        y[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* ---- gemm oracle ------------------------------------------------------------------ */

/* Every row o of tile positions [r0, r1) (internal.h), in increasing order. */
#define FOR_ROWS(a, r0, r1, o)                                                      \
    for (int64_t r_ = (r0); r_ < (r1); r_++)                                        \
        for (int64_t o = r_; o < (a)->n_out && o < r_ + 4 * (a)->row_step; o += (a)->row_step)

static const float *act_f32(const mc__gemm_args *a, int64_t t) {
    return (const float *)(a->act + (size_t)t * a->act_stride);
}

static void gemm_f32(const mc__gemm_args *a, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++)
        FOR_ROWS(a, r0, r1, o)
            a->Y[t * a->n_out + o] =
                vec_dot_f32(a->n_in, (const float *)(a->W + (size_t)o * a->w_row), act_f32(a, t));
}

static void gemm_f16(const mc__gemm_args *a, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++)
        FOR_ROWS(a, r0, r1, o)
            a->Y[t * a->n_out + o] = vec_dot_f16_f32(
                a->n_in, (const uint16_t *)(a->W + (size_t)o * a->w_row), act_f32(a, t));
}

static void gemm_bf16(const mc__gemm_args *a, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
        const float *x = act_f32(a, t);
        FOR_ROWS(a, r0, r1, o) {
            const uint16_t *w = (const uint16_t *)(a->W + (size_t)o * a->w_row);
            float s = 0.0f;
            for (int64_t i = 0; i < a->n_in; i++)
                s += mc_bf16_to_fp32(w[i]) * x[i];
            a->Y[t * a->n_out + o] = s;
        }
    }
}

static void gemm_q8_0(const mc__gemm_args *a, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
    const int64_t nb = a->n_in / 32;
    for (int64_t t = t0; t < t1; t++) {
        const int8_t *xq = (const int8_t *)(a->act + (size_t)t * a->act_stride);
        const float *xd = (const float *)((const uint8_t *)xq + mc__align64((size_t)a->n_in));
        FOR_ROWS(a, r0, r1, o) {
            const mc_block_q8_0 *w = (const mc_block_q8_0 *)(a->W + (size_t)o * a->w_row);
            float s = 0.0f;
            for (int64_t b = 0; b < nb; b++) {
                int32_t si = 0;
                for (int j = 0; j < 32; j++)
                    si += w[b].qs[j] * xq[b * 32 + j];
                s += (float)si * (mc_fp16_to_fp32(w[b].d) * xd[b]);
            }
            a->Y[t * a->n_out + o] = s;
        }
    }
}

static void gemm_q4_0(const mc__gemm_args *a, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
    const int64_t nb = a->n_in / 32;
    for (int64_t t = t0; t < t1; t++) {
        const int8_t *xq = (const int8_t *)(a->act + (size_t)t * a->act_stride);
        const float *xd = (const float *)((const uint8_t *)xq + mc__align64((size_t)a->n_in));
        FOR_ROWS(a, r0, r1, o) {
            const mc_block_q4_0 *w = (const mc_block_q4_0 *)(a->W + (size_t)o * a->w_row);
            float s = 0.0f;
            for (int64_t b = 0; b < nb; b++) {
                int32_t si = 0;
                for (int j = 0; j < 16; j++) {
                    si += ((w[b].qs[j] & 15) - 8) * xq[b * 32 + j];
                    si += ((w[b].qs[j] >> 4) - 8) * xq[b * 32 + j + 16];
                }
                s += (float)si * (mc_fp16_to_fp32(w[b].d) * xd[b]);
            }
            a->Y[t * a->n_out + o] = s;
        }
    }
}

static const struct mc__gemm_ops gemm_scalar = {
    .prep = {NULL, mc__round_f16_row, mc__round_bf16_row, mc__quantize_act_q8_0,
             mc__quantize_act_q8_0},
    .gemm = {gemm_f32, gemm_f16, gemm_bf16, gemm_q8_0, gemm_q4_0},
    .act_bf16 = 0,
};

const mc_kernels mc__kernels_scalar = {
    .name = "scalar",
    .isa = MC_ISA_SCALAR,
    .vec_dot_f32 = vec_dot_f32,
    .vec_dot_f16_f32 = vec_dot_f16_f32,
    .vec_axpy_f32 = vec_axpy_f32,
    .vec_axpy_f16 = vec_axpy_f16,
    .attn = attn,
    .swiglu = swiglu,
    .fp16_to_fp32_row = mc_fp16_to_fp32_row,
    .fp32_to_fp16_row = mc_fp32_to_fp16_row,
    .gemm = &gemm_scalar,
};
