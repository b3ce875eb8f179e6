/* Model loading: hyper-parameters from GGUF metadata and the weight table.
 *
 * Weights stay in the mapping; a model owns only small tables of pointers.
 * Every tensor the forward pass touches is checked here for presence, type
 * and shape, so the forward pass can trust them. Rope scaling variants
 * (linear, YaRN) are not implemented: a file that asks for them is refused.
 */
#include "model_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int get_u32_arch(const mc_gguf *g, const char *arch, const char *suffix, uint32_t *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return mc_gguf_get_u32(g, key, out);
}

static int get_f32_arch(const mc_gguf *g, const char *arch, const char *suffix, float *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return mc_gguf_get_f32(g, key, out);
}

/* Find tensor `name`, check type class and shape (ne0, ne1; ne1 = 0 for 1-D). */
static int want(mc_model *m, const char *name, int is_matrix, int64_t ne0, int64_t ne1,
                const mc_gguf_tensor **out, mc_err *err) {
    const mc_gguf_tensor *t = mc_gguf_find_tensor(m->g, name);
    *out = t;
    if (!t)
        return mc_err_set(err, MC_EFORMAT, -1, "tensor '%s' is missing", name);
    if (is_matrix) {
        if (!mc_kernels_type_supported(t->type))
            return mc_err_set(err, MC_EUNSUPPORTED, -1,
                              "tensor '%s' has type %s; mccom computes with f32, f16, bf16, "
                              "q8_0 and q4_0 (re-quantize with `mccom quantize`)",
                              name, mc_ggml_type_name(t->type));
        if (t->n_dims != 2 || t->ne[0] != ne0 || t->ne[1] != ne1)
            return mc_err_set(err, MC_EFORMAT, -1,
                              "tensor '%s' has shape [%lld, %lld, %lld], expected [%lld, %lld]",
                              name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                              (long long)ne0, (long long)ne1);
    } else {
        if (t->type != MC_TYPE_F32)
            return mc_err_set(err, MC_EUNSUPPORTED, -1, "tensor '%s' must be f32, is %s", name,
                              mc_ggml_type_name(t->type));
        if (t->ne[0] != ne0 || t->ne[1] != 1 || t->ne[2] != 1 || t->ne[3] != 1)
            return mc_err_set(err, MC_EFORMAT, -1, "tensor '%s' has %lld elements, expected %lld",
                              name, (long long)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]),
                              (long long)ne0);
    }
    return 0;
}

static int load_hparams(mc_model *m, mc_err *err) {
    mc_hparams *hp = &m->hp;
    mc_str arch;
    if (mc_gguf_get_str(m->g, "general.architecture", &arch) != 0)
        return mc_err_set(err, MC_EFORMAT, -1, "general.architecture is missing");
    if (arch.len >= sizeof hp->arch)
        return mc_err_set(err, MC_EUNSUPPORTED, -1, "architecture name too long");
    memcpy(hp->arch, arch.ptr, arch.len);
    hp->arch[arch.len] = '\0';
    int is_llama = !strcmp(hp->arch, "llama"), is_qwen2 = !strcmp(hp->arch, "qwen2");
    if (!is_llama && !is_qwen2)
        return mc_err_set(err, MC_EUNSUPPORTED, -1,
                          "architecture '%s' is not supported (llama, qwen2)", hp->arch);
    uint32_t v;
    struct {
        const char *key;
        int *dst;
        int required;
    } ints[] = {
        {"embedding_length", &hp->n_embd, 1},  {"block_count", &hp->n_layer, 1},
        {"feed_forward_length", &hp->n_ff, 1}, {"attention.head_count", &hp->n_head, 1},
        {"context_length", &hp->n_ctx_train, 0},
    };
    for (size_t i = 0; i < MC_ARRAY_LEN(ints); i++) {
        int rc = get_u32_arch(m->g, hp->arch, ints[i].key, &v);
        if (rc == MC_ENOTFOUND && !ints[i].required) {
            *ints[i].dst = 2048;
            continue;
        }
        if (rc || v == 0 || v > (1u << 24))
            return mc_err_set(err, MC_EFORMAT, -1, "%s.%s is missing or invalid", hp->arch,
                              ints[i].key);
        *ints[i].dst = (int)v;
    }
    hp->n_head_kv = hp->n_head;
    if (get_u32_arch(m->g, hp->arch, "attention.head_count_kv", &v) == 0)
        hp->n_head_kv = (int)v;
    if (hp->n_head_kv <= 0 || hp->n_head % hp->n_head_kv != 0)
        return mc_err_set(err, MC_EFORMAT, -1, "head_count %d is not a multiple of head_count_kv %d",
                          hp->n_head, hp->n_head_kv);
    hp->head_dim = hp->n_embd / hp->n_head;
    if (get_u32_arch(m->g, hp->arch, "attention.key_length", &v) == 0)
        hp->head_dim = (int)v;
    uint32_t vlen;
    if (get_u32_arch(m->g, hp->arch, "attention.value_length", &vlen) == 0 &&
        (int)vlen != hp->head_dim)
        return mc_err_set(err, MC_EUNSUPPORTED, -1, "key_length != value_length is not supported");
    if (hp->head_dim <= 0 || hp->head_dim % 2 != 0 || hp->head_dim > 1024)
        return mc_err_set(err, MC_EFORMAT, -1, "head dimension %d is invalid", hp->head_dim);
    hp->n_rot = hp->head_dim;
    if (get_u32_arch(m->g, hp->arch, "rope.dimension_count", &v) == 0)
        hp->n_rot = (int)v;
    if (hp->n_rot <= 0 || hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0)
        return mc_err_set(err, MC_EFORMAT, -1, "rope.dimension_count %d is invalid", hp->n_rot);
    hp->rope_theta = 10000.0f;
    get_f32_arch(m->g, hp->arch, "rope.freq_base", &hp->rope_theta);
    if (!(hp->rope_theta > 0))
        return mc_err_set(err, MC_EFORMAT, -1, "rope.freq_base must be positive");
    float scale = 1.0f;
    if (get_f32_arch(m->g, hp->arch, "rope.scaling.factor", &scale) == 0 && scale != 1.0f &&
        scale != 0.0f)
        return mc_err_set(err, MC_EUNSUPPORTED, -1, "rope scaling (factor %g) is not supported",
                          (double)scale);
    hp->norm_eps = 1e-5f;
    get_f32_arch(m->g, hp->arch, "attention.layer_norm_rms_epsilon", &hp->norm_eps);
    hp->rope_neox = is_qwen2;
    return 0;
}

static int load_tensors(mc_model *m, mc_err *err) {
    mc_hparams *hp = &m->hp;
    const mc_gguf_tensor *emb = mc_gguf_find_tensor(m->g, "token_embd.weight");
    if (!emb || emb->n_dims != 2)
        return mc_err_set(err, MC_EFORMAT, -1, "tensor 'token_embd.weight' is missing");
    hp->n_vocab = (int)emb->ne[1];
    int rc = want(m, "token_embd.weight", 1, hp->n_embd, hp->n_vocab, &m->tok_embd, err);
    if (rc)
        return rc;
    rc = want(m, "output_norm.weight", 0, hp->n_embd, 0, &m->out_norm, err);
    if (rc)
        return rc;
    m->output = mc_gguf_find_tensor(m->g, "output.weight");
    hp->tied_output = m->output == NULL;
    if (hp->tied_output)
        m->output = m->tok_embd;
    else if ((rc = want(m, "output.weight", 1, hp->n_embd, hp->n_vocab, &m->output, err)))
        return rc;
    int q_dim = hp->n_head * hp->head_dim, kv_dim = hp->n_head_kv * hp->head_dim;
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    char name[96];
#define W(field, suffix, matrix, a, b)                                          \
    do {                                                                        \
        snprintf(name, sizeof name, "blk.%d." suffix, l);                       \
        if ((rc = want(m, name, matrix, a, b, &L->field, err)))                 \
            return rc;                                                          \
    } while (0)
    hp->has_qkv_bias = mc_gguf_find_tensor(m->g, "blk.0.attn_q.bias") != NULL;
    for (int l = 0; l < hp->n_layer; l++) {
        struct mc_layer *L = &m->layers[l];
        W(attn_norm, "attn_norm.weight", 0, hp->n_embd, 0);
        W(wq, "attn_q.weight", 1, hp->n_embd, q_dim);
        W(wk, "attn_k.weight", 1, hp->n_embd, kv_dim);
        W(wv, "attn_v.weight", 1, hp->n_embd, kv_dim);
        W(wo, "attn_output.weight", 1, q_dim, hp->n_embd);
        W(ffn_norm, "ffn_norm.weight", 0, hp->n_embd, 0);
        W(w_gate, "ffn_gate.weight", 1, hp->n_embd, hp->n_ff);
        W(w_up, "ffn_up.weight", 1, hp->n_embd, hp->n_ff);
        W(w_down, "ffn_down.weight", 1, hp->n_ff, hp->n_embd);
        if (hp->has_qkv_bias) {
            W(bq, "attn_q.bias", 0, q_dim, 0);
            W(bk, "attn_k.bias", 0, kv_dim, 0);
            W(bv, "attn_v.bias", 0, kv_dim, 0);
        }
    }
#undef W
    return 0;
}

int mc_model_load(const char *path, mc_model **out, mc_err *err) {
    *out = NULL;
    mc_err_clear(err);
    mc_model *m = calloc(1, sizeof *m);
    if (!m)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    int rc = mc_gguf_open(path, &m->g, err);
    if (rc == 0)
        rc = load_hparams(m, err);
    if (rc == 0)
        rc = load_tensors(m, err);
    if (rc) {
        mc_model_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void mc_model_free(mc_model *m) {
    if (!m)
        return;
    free(m->layers);
    mc_gguf_close(m->g);
    free(m);
}

const mc_hparams *mc_model_hparams(const mc_model *m) { return &m->hp; }
const mc_gguf *mc_model_gguf(const mc_model *m) { return m->g; }

size_t mc_model_weight_bytes(const mc_model *m) {
    size_t total = 0;
    for (int64_t i = 0; i < mc_gguf_n_tensors(m->g); i++)
        total += mc_gguf_tensor_at(m->g, i)->size;
    return total;
}
