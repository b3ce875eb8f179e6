/* Internal structures of the model module (not part of the public API). */
#ifndef MCCOM_MODEL_INTERNAL_H
#define MCCOM_MODEL_INTERNAL_H

#include "mccom/kernels.h"
#include "mccom/model.h"
#include "mccom/pool.h"

struct mc_layer {
    const mc_gguf_tensor *attn_norm, *ffn_norm;       /* f32 (n_embd) */
    const mc_gguf_tensor *wq, *wk, *wv, *wo;          /* (out, in) any supported type */
    const mc_gguf_tensor *bq, *bk, *bv;               /* f32 biases or NULL */
    const mc_gguf_tensor *w_gate, *w_up, *w_down;
};

struct mc_model {
    mc_gguf *g;
    mc_hparams hp;
    const mc_gguf_tensor *tok_embd;  /* (n_vocab, n_embd) */
    const mc_gguf_tensor *out_norm;  /* (n_embd) */
    const mc_gguf_tensor *output;    /* (n_vocab, n_embd); == tok_embd when tied */
    struct mc_layer *layers;         /* n_layer */
};

#endif
