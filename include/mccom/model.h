/* mccom/model.h — decoder-only transformer inference (llama and qwen2 families).
 *
 * An mc_model is the weights of one GGUF file (mmap'd, never copied) plus its
 * hyper-parameters. An mc_ctx is one inference stream over a model: its KV
 * cache, its scratch buffers (allocated once; decoding allocates nothing) and
 * the token history the cache holds, which makes prefix reuse and rollback
 * possible. Several contexts may share one model; a context is used by one
 * thread at a time (it runs its own thread pool internally).
 *
 * Supported: general.architecture "llama" or "qwen2"; RMSNorm; RoPE in normal
 * (llama) or NeoX (qwen2) order with theta from {arch}.rope.freq_base;
 * grouped-query attention; SwiGLU feed-forward; optional q/k/v biases; tied or
 * untied output. Weight types F32, F16, BF16, Q8_0, Q4_0.
 */
#ifndef MCCOM_MODEL_H
#define MCCOM_MODEL_H

#include "mccom/common.h"
#include "mccom/gguf.h"

typedef struct mc_hparams {
    char arch[32];        /* "llama" | "qwen2" */
    int n_vocab;
    int n_ctx_train;
    int n_embd;
    int n_layer;
    int n_head;
    int n_head_kv;
    int head_dim;         /* n_embd / n_head unless the file says otherwise */
    int n_ff;
    int n_rot;            /* rotary dims (= head_dim unless rope.dimension_count) */
    int rope_neox;        /* 1: rotate pairs (i, i + n_rot/2); 0: adjacent pairs */
    float rope_theta;
    float norm_eps;
    int has_qkv_bias;
    int tied_output;      /* output = token_embd */
} mc_hparams;

typedef struct mc_model mc_model;
typedef struct mc_ctx mc_ctx;

/* Load a model from a GGUF file; checks every tensor's presence, type and
 * shape against the hyper-parameters. */
int mc_model_load(const char *path, mc_model **out, mc_err *err);
void mc_model_free(mc_model *m);
const mc_hparams *mc_model_hparams(const mc_model *m);
/* The open GGUF file behind the model (for the tokenizer's metadata). */
const mc_gguf *mc_model_gguf(const mc_model *m);
/* Bytes of weights (what one decode step must read). */
size_t mc_model_weight_bytes(const mc_model *m);

typedef struct mc_ctx_params {
    int n_ctx;     /* KV cache capacity in tokens; 0 = min(n_ctx_train, 4096) */
    int n_batch;   /* most tokens evaluated per internal step; 0 = 512 */
    int n_threads; /* 0 = number of online CPUs */
    int kv_f32;    /* 1: F32 KV cache (exact); 0: F16 (default, half the memory
                      and bandwidth, as llama.cpp's default) */
} mc_ctx_params;

mc_ctx_params mc_ctx_params_default(void);
int mc_ctx_new(mc_model *m, const mc_ctx_params *p, mc_ctx **out, mc_err *err);
void mc_ctx_free(mc_ctx *c);
int mc_ctx_n_ctx(const mc_ctx *c);
/* The model a context runs. */
const mc_model *mc_ctx_model(const mc_ctx *c);

/* Append n tokens at positions n_past .. n_past+n-1 (n_past = tokens already
 * cached) and run them through the model in batches. If all_logits, logits
 * for every one of the n positions are computed, else only for the last.
 * Returns 0, or MC_EFULL if the cache cannot hold them (nothing changed),
 * MC_EINVAL for a token id out of range. */
int mc_ctx_decode(mc_ctx *c, const int32_t *tokens, int n, int all_logits, mc_err *err);
/* Logits (n_vocab floats) of position i of the last mc_ctx_decode call
 * (i in 0..n-1 if all_logits, else only n-1). Owned by the context, valid
 * until its next decode/truncate. NULL if not computed. */
const float *mc_ctx_logits(const mc_ctx *c, int i);
/* Logits of the last position of the last decode (NULL if none). */
const float *mc_ctx_logits_last(const mc_ctx *c);

/* The cached token history. */
int mc_ctx_n_past(const mc_ctx *c);
const int32_t *mc_ctx_tokens(const mc_ctx *c);
/* Roll back to the first n_keep tokens (a rejected draft): O(1). */
void mc_ctx_truncate(mc_ctx *c, int n_keep);
/* Make the cache hold exactly `tokens` and compute the logits of its last
 * position, reusing the longest cached prefix (only the new tail, and at least
 * the last token, are computed). *n_reused gets the reused prefix length. */
int mc_ctx_set_prompt(mc_ctx *c, const int32_t *tokens, int n, int *n_reused, mc_err *err);

/* Greedy argmax of a logit row (ties: lowest id). */
int32_t mc_argmax(const float *logits, int n);

/* Sampling: temperature <= 0 is greedy; top_k <= 0 keeps every token;
 * top_p >= 1 disables nucleus filtering. `rng` is the caller's state (seed it
 * with any non-zero value); the same seed gives the same tokens. `work` is
 * caller scratch of mc_sampler_work_size(n_vocab) bytes (no allocation). */
typedef struct mc_sampler {
    float temperature;
    int top_k;
    float top_p;
    uint64_t rng;
} mc_sampler;
size_t mc_sampler_work_size(int n_vocab);
int32_t mc_sample(mc_sampler *s, const float *logits, int n_vocab, void *work);

#endif
