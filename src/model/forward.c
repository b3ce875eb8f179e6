/* The forward pass: a batch of tokens through the transformer, with a KV cache.
 *
 * Read it top to bottom like llama2.c's: embed, then per layer
 * RMSNorm -> Q/K/V (+bias) -> RoPE -> cache K/V -> causal attention ->
 * output projection -> residual -> RMSNorm -> SwiGLU FFN -> residual, then the
 * final norm and the output projection. Each step works on the whole batch
 * (up to n_batch tokens), so prefill and draft verification are matrix-matrix
 * products. Every buffer is allocated in mc_ctx_new; a decode call allocates
 * nothing unless it asks for more logits rows than ever before.
 *
 * Numerics follow ggml's CPU backend where it matters for parity with
 * llama.cpp: sums of squares in double, RoPE angles computed by repeated
 * multiplication in float, SiLU as x/(1+exp(-x)) (the kernels' swiglu, with a
 * SIMD e^x as ggml has its own), softmax with the same e^x (kernels' attn).
 *
 * Batch == decode, bit for bit: every kernel computes a token's row the same
 * way whatever else is in the batch (matmul per output, attn per query row,
 * kernels.h), which is what speculative decoding's verification relies on.
 */
#include "model_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct mc_ctx {
    mc_model *m;
    const mc_kernels *k;
    mc_pool *pool;
    int n_ctx, n_batch, n_threads, kv_f32;
    int n_past;
    int32_t *tokens;        /* (n_ctx) the cached history */
    int n_ctx_pad;          /* n_ctx rounded up to MC_KV_BLOCK */
    /* The KV cache, f16 or f32, one stretch per (layer, KV head) in the
     * layout mc_kernels.attn reads (kernels.h): K in blocks of MC_KV_BLOCK
     * positions, dimension-major inside a block; V row-major. */
    void *k_cache;          /* (n_layer, n_head_kv, n_ctx_pad / 16, head_dim, 16) */
    void *v_cache;          /* (n_layer, n_head_kv, n_ctx_pad, head_dim) */
    float *rope_cos, *rope_sin; /* (n_ctx, n_rot/2) */
    /* activations for one batch */
    float *x;      /* (n_batch, n_embd) residual stream */
    float *xb;     /* (n_batch, n_embd) normed input */
    float *q;      /* (n_batch, q_dim) */
    float *kv_k;   /* (n_batch, kv_dim) */
    float *kv_v;   /* (n_batch, kv_dim) */
    float *att;    /* (n_batch, q_dim) attention output */
    float *hb;     /* (n_batch, n_ff) gate */
    float *hb2;    /* (n_batch, n_ff) up */
    float *scores; /* (n_threads, MC_ATTN_ROWS, n_ctx_pad) per-thread attention scratch */
    void *scratch; /* matmul scratch */
    size_t scratch_size;
    float *logits; /* (logits_cap, n_vocab) */
    int logits_cap;
    int logits_n;   /* rows valid from the last decode */
    int logits_all; /* 1 if every row is valid, else only the last */
};

mc_ctx_params mc_ctx_params_default(void) {
    mc_ctx_params p = {0, 0, 0, 0};
    return p;
}

static void *xcalloc(size_t n, size_t size) { return n && size ? calloc(n, size) : NULL; }

int mc_ctx_new(mc_model *m, const mc_ctx_params *params, mc_ctx **out, mc_err *err) {
    *out = NULL;
    mc_err_clear(err);
    mc_ctx_params p = params ? *params : mc_ctx_params_default();
    const mc_hparams *hp = &m->hp;
    if (p.n_ctx < 0 || p.n_batch < 0 || p.n_threads < 0)
        return mc_err_set(err, MC_EINVAL, -1, "negative context parameter");
    if (p.n_ctx == 0)
        p.n_ctx = MC_MIN(hp->n_ctx_train, 4096);
    if (p.n_batch == 0)
        p.n_batch = 512;
    p.n_batch = MC_MIN(p.n_batch, p.n_ctx);
    if (p.n_threads == 0)
        p.n_threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (p.n_threads < 1)
        p.n_threads = 1;
    if (p.n_threads > 256)
        return mc_err_set(err, MC_EINVAL, -1, "too many threads (%d)", p.n_threads);
    mc_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    c->m = m;
    c->k = mc_kernels_best();
    c->n_ctx = p.n_ctx;
    c->n_batch = p.n_batch;
    c->n_threads = p.n_threads;
    c->kv_f32 = p.kv_f32 != 0;
    int q_dim = hp->n_head * hp->head_dim, kv_dim = hp->n_head_kv * hp->head_dim;
    size_t kv_elt = c->kv_f32 ? 4 : 2;
    c->n_ctx_pad = (int)mc_kv_padded(c->n_ctx);
    size_t kv_n = (size_t)hp->n_layer * (size_t)c->n_ctx_pad * (size_t)kv_dim;
    size_t B = (size_t)c->n_batch;
    c->tokens = xcalloc((size_t)c->n_ctx, sizeof(int32_t));
    c->k_cache = xcalloc(kv_n, kv_elt);
    c->v_cache = xcalloc(kv_n, kv_elt);
    c->rope_cos = xcalloc((size_t)c->n_ctx * (size_t)(hp->n_rot / 2), sizeof(float));
    c->rope_sin = xcalloc((size_t)c->n_ctx * (size_t)(hp->n_rot / 2), sizeof(float));
    c->x = xcalloc(B * (size_t)hp->n_embd, sizeof(float));
    c->xb = xcalloc(B * (size_t)MC_MAX(hp->n_embd, q_dim), sizeof(float));
    c->q = xcalloc(B * (size_t)q_dim, sizeof(float));
    c->kv_k = xcalloc(B * (size_t)kv_dim, sizeof(float));
    c->kv_v = xcalloc(B * (size_t)kv_dim, sizeof(float));
    c->att = xcalloc(B * (size_t)q_dim, sizeof(float));
    c->hb = xcalloc(B * (size_t)hp->n_ff, sizeof(float));
    c->hb2 = xcalloc(B * (size_t)hp->n_ff, sizeof(float));
    c->scores = aligned_alloc(64, (size_t)c->n_threads * MC_ATTN_ROWS * (size_t)c->n_ctx_pad *
                                      sizeof(float)); /* a multiple of 64 bytes */
    /* matmul scratch: the largest need over every weight shape */
    const mc_gguf_tensor *mats[] = {m->output};
    size_t need = mc_matmul_scratch_size(mats[0]->type, hp->n_embd, c->n_batch);
    for (int l = 0; l < hp->n_layer; l++) {
        const struct mc_layer *L = &m->layers[l];
        const mc_gguf_tensor *ws[] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
        for (size_t i = 0; i < MC_ARRAY_LEN(ws); i++)
            need = MC_MAX(need, mc_matmul_scratch_size(ws[i]->type, ws[i]->ne[0], c->n_batch));
    }
    c->scratch_size = need;
    c->scratch = need ? malloc(need) : NULL;
    c->logits_cap = 1;
    c->logits = xcalloc((size_t)hp->n_vocab, sizeof(float));
    int rc = mc_pool_new(c->n_threads, &c->pool);
    if (rc || !c->tokens || !c->k_cache || !c->v_cache || !c->rope_cos || !c->rope_sin || !c->x ||
        !c->xb || !c->q || !c->kv_k || !c->kv_v || !c->att || !c->hb || !c->hb2 || !c->scores ||
        (need && !c->scratch) || !c->logits) {
        mc_ctx_free(c);
        return mc_err_set(err, MC_ENOMEM, -1,
                          "out of memory for a %d-token context (KV cache %.1f MiB)", p.n_ctx,
                          2.0 * (double)(kv_n * kv_elt) / 1048576.0);
    }
    /* RoPE table, computed as ggml does: theta_i = pos * base^(-2i/n_rot), by
     * repeated multiplication in float. */
    int half = hp->n_rot / 2;
    float theta_scale = powf(hp->rope_theta, -2.0f / (float)hp->n_rot);
    for (int pos = 0; pos < c->n_ctx; pos++) {
        float theta = (float)pos;
        for (int i = 0; i < half; i++) {
            c->rope_cos[(size_t)pos * half + i] = cosf(theta);
            c->rope_sin[(size_t)pos * half + i] = sinf(theta);
            theta *= theta_scale;
        }
    }
    *out = c;
    return 0;
}

void mc_ctx_free(mc_ctx *c) {
    if (!c)
        return;
    mc_pool_free(c->pool);
    free(c->tokens);
    free(c->k_cache);
    free(c->v_cache);
    free(c->rope_cos);
    free(c->rope_sin);
    free(c->x);
    free(c->xb);
    free(c->q);
    free(c->kv_k);
    free(c->kv_v);
    free(c->att);
    free(c->hb);
    free(c->hb2);
    free(c->scores);
    free(c->scratch);
    free(c->logits);
    free(c);
}

int mc_ctx_n_ctx(const mc_ctx *c) { return c->n_ctx; }
const mc_model *mc_ctx_model(const mc_ctx *c) { return c->m; }
int mc_ctx_n_past(const mc_ctx *c) { return c->n_past; }
const int32_t *mc_ctx_tokens(const mc_ctx *c) { return c->tokens; }

void mc_ctx_truncate(mc_ctx *c, int n_keep) {
    if (n_keep < 0)
        n_keep = 0;
    if (n_keep < c->n_past)
        c->n_past = n_keep;
    c->logits_n = 0;
}

const float *mc_ctx_logits(const mc_ctx *c, int i) {
    if (i < 0 || i >= c->logits_n)
        return NULL;
    if (!c->logits_all)
        return i == c->logits_n - 1 ? c->logits : NULL;
    return c->logits + (size_t)i * (size_t)c->m->hp.n_vocab;
}

const float *mc_ctx_logits_last(const mc_ctx *c) { return mc_ctx_logits(c, c->logits_n - 1); }

/* y = x / rms(x) * w, over rows of n. Sum of squares in double, as ggml. */
static void rmsnorm(float *y, const float *x, const float *w, int n, float eps) {
    double ss = 0.0;
    for (int i = 0; i < n; i++)
        ss += (double)(x[i] * x[i]);
    float scale = 1.0f / sqrtf((float)(ss / n) + eps);
    for (int i = 0; i < n; i++)
        y[i] = (x[i] * scale) * w[i];
}

/* Rotate the first n_rot dims of each head of vec (n_heads x head_dim). */
static void rope(float *vec, int n_heads, int head_dim, int n_rot, int neox, const float *cs,
                 const float *sn) {
    int half = n_rot / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = vec + (size_t)h * head_dim;
        for (int i = 0; i < half; i++) {
            int a = neox ? i : 2 * i;
            int b = neox ? i + half : 2 * i + 1;
            float x0 = v[a], x1 = v[b];
            v[a] = x0 * cs[i] - x1 * sn[i];
            v[b] = x0 * sn[i] + x1 * cs[i];
        }
    }
}

static int matmul(mc_ctx *c, const mc_gguf_tensor *w, const float *x, int n_tok, float *y) {
    return mc_matmul(c->k, c->pool, w->type, w->data, w->ne[1], w->ne[0], x, n_tok, y,
                     c->scratch, c->scratch_size);
}

/* y[i] = x · w[i]ᵀ for n (<= MC_MATMUL_MAX) weights of the same width: one
 * preparation of x and one dispatch when their types agree (they always do
 * in llama.cpp's files for Q/K/V and gate/up; a mixed file falls back to one
 * call each). The results are the same bits either way. */
static int matmul_n(mc_ctx *c, int n, const mc_gguf_tensor *const *w, float *const *y,
                    const float *x, int n_tok) {
    mc_matmul_out mats[MC_MATMUL_MAX];
    int same = 1;
    for (int i = 0; i < n; i++) {
        same &= w[i]->type == w[0]->type;
        mats[i] = (mc_matmul_out){w[i]->data, w[i]->ne[1], y[i]};
    }
    if (same)
        return mc_matmul_multi(c->k, c->pool, w[0]->type, n, mats, w[0]->ne[0], x, n_tok,
                               c->scratch, c->scratch_size);
    for (int i = 0; i < n; i++) {
        int rc = matmul(c, w[i], x, n_tok, y[i]);
        if (rc)
            return rc;
    }
    return 0;
}

static void add_bias(float *y, const mc_gguf_tensor *b, int n_tok, int dim) {
    if (!b)
        return;
    const float *bv = b->data;
    for (int t = 0; t < n_tok; t++)
        for (int i = 0; i < dim; i++)
            y[(size_t)t * dim + i] += bv[i];
}

/* Attention tasks: the query rows of one KV head, (token t, head h) for the
 * heads that share it, numbered t * group + (h % group), cut in tiles of
 * `tile` consecutive rows; task = kv_head * tiles + tile index. A row's
 * result does not depend on its tile (kernels.h), so the tiling is free to
 * follow the batch and the thread count. */
struct att_job {
    mc_ctx *c;
    int layer;
    int n_tok;
    int pos0;
    int tile;  /* rows per tile, 1..MC_ATTN_ROWS */
    int tiles; /* tiles per KV head */
};

static void attention_task(void *arg, int task, int thread) {
    const struct att_job *j = arg;
    mc_ctx *c = j->c;
    const mc_hparams *hp = &c->m->hp;
    const int hd = hp->head_dim, q_dim = hp->n_head * hd;
    const int group = hp->n_head / hp->n_head_kv;
    const int kvh = task / j->tiles;
    const int row0 = task % j->tiles * j->tile;
    const int row1 = MC_MIN(row0 + j->tile, j->n_tok * group);
    size_t elt = c->kv_f32 ? 4 : 2;
    size_t head = ((size_t)j->layer * hp->n_head_kv + (size_t)kvh) * (size_t)c->n_ctx_pad * hd;
    mc_attn_rows a;
    a.hd = hd;
    a.k = (const uint8_t *)c->k_cache + head * elt;
    a.v = (const uint8_t *)c->v_cache + head * elt;
    a.v_stride = hd;
    a.f16 = !c->kv_f32;
    a.scale = 1.0f / sqrtf((float)hd);
    a.n_rows = row1 - row0;
    for (int r = 0; r < a.n_rows; r++) {
        int t = (row0 + r) / group, h = kvh * group + (row0 + r) % group;
        a.q[r] = c->q + (size_t)t * q_dim + (size_t)h * hd;
        a.n[r] = j->pos0 + t + 1; /* attends to positions 0..pos0+t */
        a.out[r] = c->att + (size_t)t * q_dim + (size_t)h * hd;
    }
    a.scratch = c->scores + (size_t)thread * MC_ATTN_ROWS * (size_t)c->n_ctx_pad;
    c->k->attn(&a);
}

/* Store token `pos`'s K and V rows (kv_dim floats each, heads side by side)
 * into layer l's cache. */
static void cache_store(mc_ctx *c, int l, int pos, const float *k, const float *v) {
    const mc_hparams *hp = &c->m->hp;
    const int hd = hp->head_dim;
    for (int kvh = 0; kvh < hp->n_head_kv; kvh++) {
        size_t head = ((size_t)l * hp->n_head_kv + (size_t)kvh) * (size_t)c->n_ctx_pad * hd;
        const float *kr = k + (size_t)kvh * hd, *vr = v + (size_t)kvh * hd;
        size_t vo = head + (size_t)pos * hd;
        if (c->kv_f32) {
            float *kc = (float *)c->k_cache + head;
            for (int i = 0; i < hd; i++)
                kc[mc_kv_k_index(pos, i, hd)] = kr[i];
            memcpy((float *)c->v_cache + vo, vr, (size_t)hd * sizeof(float));
        } else {
            uint16_t *kc = (uint16_t *)c->k_cache + head, tmp[64];
            for (int i0 = 0; i0 < hd; i0 += 64) {
                int m = MC_MIN(64, hd - i0);
                c->k->fp32_to_fp16_row(kr + i0, tmp, m);
                for (int i = 0; i < m; i++)
                    kc[mc_kv_k_index(pos, i0 + i, hd)] = tmp[i];
            }
            c->k->fp32_to_fp16_row(vr, (uint16_t *)c->v_cache + vo, hd);
        }
    }
}

/* Run n (<= n_batch) tokens at positions n_past.. through the model. Logits
 * for rows [first_logit, n) go to c->logits + (row - first_logit + out_row0). */
static int forward_batch(mc_ctx *c, const int32_t *tok, int n, int first_logit, float *logits) {
    mc_model *m = c->m;
    const mc_hparams *hp = &m->hp;
    int D = hp->n_embd, hd = hp->head_dim;
    int q_dim = hp->n_head * hd, kv_dim = hp->n_head_kv * hd, F = hp->n_ff;
    int pos0 = c->n_past;
    int rc;
    size_t emb_row = mc_kernels_row_size(m->tok_embd->type, D);
    for (int t = 0; t < n; t++) {
        const uint8_t *row = (const uint8_t *)m->tok_embd->data + (size_t)tok[t] * emb_row;
        mc_dequantize_row(m->tok_embd->type, row, c->x + (size_t)t * D, D);
    }
    int half = hp->n_rot / 2;
    for (int l = 0; l < hp->n_layer; l++) {
        const struct mc_layer *L = &m->layers[l];
        for (int t = 0; t < n; t++)
            rmsnorm(c->xb + (size_t)t * D, c->x + (size_t)t * D, L->attn_norm->data, D,
                    hp->norm_eps);
        const mc_gguf_tensor *wqkv[3] = {L->wq, L->wk, L->wv};
        float *yqkv[3] = {c->q, c->kv_k, c->kv_v};
        if ((rc = matmul_n(c, 3, wqkv, yqkv, c->xb, n)))
            return rc;
        add_bias(c->q, L->bq, n, q_dim);
        add_bias(c->kv_k, L->bk, n, kv_dim);
        add_bias(c->kv_v, L->bv, n, kv_dim);
        for (int t = 0; t < n; t++) {
            int pos = pos0 + t;
            const float *cs = c->rope_cos + (size_t)pos * half, *sn = c->rope_sin + (size_t)pos * half;
            rope(c->q + (size_t)t * q_dim, hp->n_head, hd, hp->n_rot, hp->rope_neox, cs, sn);
            rope(c->kv_k + (size_t)t * kv_dim, hp->n_head_kv, hd, hp->n_rot, hp->rope_neox, cs, sn);
            cache_store(c, l, pos, c->kv_k + (size_t)t * kv_dim, c->kv_v + (size_t)t * kv_dim);
        }
        /* Tiles as large as the kernel takes, but small enough that every
         * thread gets one (decode has only n_head rows). */
        int rows = n * (hp->n_head / hp->n_head_kv);
        int tile = (rows * hp->n_head_kv + c->n_threads - 1) / c->n_threads;
        tile = MC_MAX(1, MC_MIN(tile, MC_ATTN_ROWS));
        struct att_job job = {c, l, n, pos0, tile, (rows + tile - 1) / tile};
        mc_pool_run(c->pool, attention_task, &job, hp->n_head_kv * job.tiles);
        if ((rc = matmul(c, L->wo, c->att, n, c->xb)))
            return rc;
        for (size_t i = 0; i < (size_t)n * D; i++)
            c->x[i] += c->xb[i];
        for (int t = 0; t < n; t++)
            rmsnorm(c->xb + (size_t)t * D, c->x + (size_t)t * D, L->ffn_norm->data, D,
                    hp->norm_eps);
        const mc_gguf_tensor *wgu[2] = {L->w_gate, L->w_up};
        float *ygu[2] = {c->hb, c->hb2};
        if ((rc = matmul_n(c, 2, wgu, ygu, c->xb, n)))
            return rc;
        for (int t = 0; t < n; t++) /* per token: a row's lanes never depend on the batch */
            c->k->swiglu(F, c->hb + (size_t)t * F, c->hb2 + (size_t)t * F, c->hb + (size_t)t * F);
        if ((rc = matmul(c, L->w_down, c->hb, n, c->xb)))
            return rc;
        for (size_t i = 0; i < (size_t)n * D; i++)
            c->x[i] += c->xb[i];
    }
    c->n_past += n;
    if (first_logit >= n)
        return 0;
    int n_out = n - first_logit;
    for (int t = first_logit; t < n; t++)
        rmsnorm(c->xb + (size_t)(t - first_logit) * D, c->x + (size_t)t * D, m->out_norm->data, D,
                hp->norm_eps);
    return matmul(c, m->output, c->xb, n_out, logits);
}

int mc_ctx_decode(mc_ctx *c, const int32_t *tokens, int n, int all_logits, mc_err *err) {
    mc_err_clear(err);
    const mc_hparams *hp = &c->m->hp;
    if (n <= 0)
        return mc_err_set(err, MC_EINVAL, -1, "no tokens to decode");
    if (n > c->n_ctx - c->n_past)
        return mc_err_set(err, MC_EFULL, -1,
                          "context full: %d cached + %d new tokens exceed the %d-token context",
                          c->n_past, n, c->n_ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= hp->n_vocab)
            return mc_err_set(err, MC_EINVAL, -1, "token id %d at %d is out of range 0..%d",
                              tokens[i], i, hp->n_vocab - 1);
    int rows = all_logits ? n : 1;
    if (rows > c->logits_cap) {
        float *nl = realloc(c->logits, (size_t)rows * (size_t)hp->n_vocab * sizeof(float));
        if (!nl)
            return mc_err_set(err, MC_ENOMEM, -1, "out of memory for %d rows of logits", rows);
        c->logits = nl;
        c->logits_cap = rows;
    }
    int start_past = c->n_past;
    memcpy(c->tokens + c->n_past, tokens, (size_t)n * sizeof(int32_t));
    for (int done = 0; done < n;) {
        int nb = MC_MIN(c->n_batch, n - done);
        int first = all_logits ? 0 : (done + nb == n ? nb - 1 : nb);
        float *dst = all_logits ? c->logits + (size_t)done * hp->n_vocab : c->logits;
        int rc = forward_batch(c, tokens + done, nb, first, dst);
        if (rc) {
            c->n_past = start_past;
            c->logits_n = 0;
            return mc_err_set(err, rc, -1, "forward pass failed: %s", mc_code_message(rc));
        }
        done += nb;
    }
    c->logits_n = n;
    c->logits_all = all_logits != 0;
    return 0;
}

int mc_ctx_set_prompt(mc_ctx *c, const int32_t *tokens, int n, int *n_reused, mc_err *err) {
    if (n <= 0)
        return mc_err_set(err, MC_EINVAL, -1, "empty prompt");
    int p = 0;
    while (p < c->n_past && p < n && c->tokens[p] == tokens[p])
        p++;
    if (p == n)
        p = n - 1; /* the last position is recomputed to get its logits */
    mc_ctx_truncate(c, p);
    if (n_reused)
        *n_reused = p;
    return mc_ctx_decode(c, tokens + p, n - p, 0, err);
}

int32_t mc_argmax(const float *logits, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best])
            best = i;
    return best;
}
