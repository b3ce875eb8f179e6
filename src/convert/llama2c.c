/* llama2.c checkpoint + tokenizer -> GGUF (architecture "llama").
 *
 * llama2.c stores every matrix as (out, in) row-major, which is GGUF's layout
 * with ne[0] = in; its RoPE rotates adjacent pairs, which is llama's "normal"
 * order, so no permutation is needed. Its tokenizer export writes pieces with
 * spaces where SentencePiece has U+2581, and BOS/EOS as "\n<s>\n" and
 * "\n</s>\n"; both are undone here so the vocabulary reads like any llama one.
 */
#include "mccom/convert.h"
#include "mccom/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct map {
    const uint8_t *p;
    size_t n;
};

static int map_file(const char *path, struct map *m, mc_err *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mc_err_set(err, MC_EIO, -1, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
        close(fd);
        return mc_err_set(err, MC_EIO, -1, "%s is not a non-empty regular file", path);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return mc_err_set(err, MC_EIO, -1, "cannot map %s: %s", path, strerror(errno));
    m->p = p;
    m->n = (size_t)st.st_size;
    return 0;
}

static void unmap_file(struct map *m) {
    if (m->p)
        munmap((void *)m->p, m->n);
}

/* Token types, as llama.cpp's LLAMA_TOKEN_TYPE_*. */
enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_BYTE = 6 };

struct vocab {
    char **tok;
    size_t *len;
    float *score;
    int32_t *type;
    int n;
};

static void vocab_free(struct vocab *v) {
    for (int i = 0; i < v->n; i++)
        free(v->tok[i]);
    free(v->tok);
    free(v->len);
    free(v->score);
    free(v->type);
}

static int is_byte_token(const char *s, size_t n) {
    return n == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x' && s[5] == '>';
}

static int read_vocab(const struct map *m, int n_vocab, struct vocab *v, const char *path,
                      mc_err *err) {
    size_t o = 4; /* max_token_length */
    if (m->n < 4)
        return mc_err_set(err, MC_EFORMAT, 0, "%s: too short for a tokenizer", path);
    v->tok = calloc((size_t)n_vocab, sizeof(char *));
    v->len = calloc((size_t)n_vocab, sizeof(size_t));
    v->score = calloc((size_t)n_vocab, sizeof(float));
    v->type = calloc((size_t)n_vocab, sizeof(int32_t));
    v->n = n_vocab;
    if (!v->tok || !v->len || !v->score || !v->type)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    for (int i = 0; i < n_vocab; i++) {
        int32_t len;
        if (m->n - o < 8)
            return mc_err_set(err, MC_EFORMAT, (int64_t)o,
                              "%s: truncated at token %d of %d (the model's vocab_size)", path, i,
                              n_vocab);
        memcpy(&v->score[i], m->p + o, 4);
        memcpy(&len, m->p + o + 4, 4);
        o += 8;
        if (len < 0 || (size_t)len > m->n - o)
            return mc_err_set(err, MC_EFORMAT, (int64_t)o - 4, "%s: token %d has bad length %d",
                              path, i, len);
        const char *s = (const char *)m->p + o;
        size_t n = (size_t)len;
        o += n;
        /* undo llama2.c's export quirks */
        if (n >= 2 && s[0] == '\n' && s[n - 1] == '\n') {
            s++;
            n -= 2;
        }
        /* spaces back to U+2581 (3 bytes each) */
        size_t spaces = 0;
        for (size_t j = 0; j < n; j++)
            spaces += s[j] == ' ';
        char *t = malloc(n + 2 * spaces + 1);
        if (!t)
            return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        size_t k = 0;
        for (size_t j = 0; j < n; j++) {
            if (s[j] == ' ') {
                memcpy(t + k, "\xe2\x96\x81", 3);
                k += 3;
            } else
                t[k++] = s[j];
        }
        t[k] = '\0';
        v->tok[i] = t;
        v->len[i] = k;
        if (i == 0)
            v->type[i] = TT_UNKNOWN;
        else if (i == 1 || i == 2)
            v->type[i] = TT_CONTROL;
        else if (is_byte_token(t, k))
            v->type[i] = TT_BYTE;
        else
            v->type[i] = TT_NORMAL;
    }
    return 0;
}

int mc_convert_llama2c(const char *model_path, const char *tok_path, const char *out_path,
                       mc_err *err) {
    mc_err_clear(err);
    struct map mm = {0}, tm = {0};
    struct vocab voc = {0};
    mc_gguf_writer *w = NULL;
    int rc = map_file(model_path, &mm, err);
    if (rc)
        return rc;
    if ((rc = map_file(tok_path, &tm, err)))
        goto done;
    int32_t h[7];
    if (mm.n < sizeof h) {
        rc = mc_err_set(err, MC_EFORMAT, 0, "%s: too short for a llama2.c header", model_path);
        goto done;
    }
    memcpy(h, mm.p, sizeof h);
    int dim = h[0], hidden = h[1], n_layer = h[2], n_head = h[3], n_kv = h[4];
    /* a negative vocabulary size means "classifier not shared"; INT_MIN has no
     * positive counterpart (its negation overflows): taken as 0, refused below */
    int shared = h[5] > 0, vocab = h[5] > 0 ? h[5] : h[5] == INT32_MIN ? 0 : -h[5], seq = h[6];
    if (dim <= 0 || hidden <= 0 || n_layer <= 0 || n_head <= 0 || n_kv <= 0 || vocab <= 0 ||
        seq <= 0 || dim % n_head || n_head % n_kv || dim > 65536 || hidden > 1 << 20 ||
        n_layer > 1024 || vocab > 1 << 22 || seq > 1 << 22 || (dim / n_head) % 2) {
        rc = mc_err_set(err, MC_EFORMAT, 0,
                        "%s: implausible llama2.c header (dim %d, hidden %d, layers %d, heads %d, "
                        "kv heads %d, vocab %d, seq %d)",
                        model_path, dim, hidden, n_layer, n_head, n_kv, h[5], seq);
        goto done;
    }
    int hs = dim / n_head, kv_dim = n_kv * hs;
    size_t L = (size_t)n_layer, D = (size_t)dim, H = (size_t)hidden, V = (size_t)vocab;
    size_t need = V * D + L * D + L * D * D + 2 * L * D * kv_dim + L * D * D + L * D + 3 * L * D * H +
                  D + (size_t)seq * hs + (shared ? 0 : V * D);
    if ((mm.n - sizeof h) / 4 < need) {
        rc = mc_err_set(err, MC_EFORMAT, (int64_t)mm.n,
                        "%s: %zu bytes of weights, the header needs %zu", model_path,
                        mm.n - sizeof h, need * 4);
        goto done;
    }
    if ((rc = read_vocab(&tm, vocab, &voc, tok_path, err)))
        goto done;

    w = mc_gguf_writer_new();
    if (!w) {
        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        goto done;
    }
    const char *base = strrchr(model_path, '/');
    base = base ? base + 1 : model_path;
    char name[128];
    snprintf(name, sizeof name, "%.*s", (int)strcspn(base, "."), base);
    mc_gguf_set_str(w, "general.architecture", "llama");
    mc_gguf_set_str(w, "general.name", name);
    mc_gguf_set_u32(w, "general.file_type", 0);
    mc_gguf_set_u32(w, "llama.context_length", (uint32_t)seq);
    mc_gguf_set_u32(w, "llama.embedding_length", (uint32_t)dim);
    mc_gguf_set_u32(w, "llama.feed_forward_length", (uint32_t)hidden);
    mc_gguf_set_u32(w, "llama.block_count", (uint32_t)n_layer);
    mc_gguf_set_u32(w, "llama.attention.head_count", (uint32_t)n_head);
    mc_gguf_set_u32(w, "llama.attention.head_count_kv", (uint32_t)n_kv);
    mc_gguf_set_u32(w, "llama.rope.dimension_count", (uint32_t)hs);
    mc_gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    mc_gguf_set_f32(w, "llama.rope.freq_base", 10000.0f);
    mc_gguf_set_str(w, "tokenizer.ggml.model", "llama");
    mc_gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)voc.tok, voc.len,
                        (uint64_t)vocab);
    mc_gguf_set_arr(w, "tokenizer.ggml.scores", MC_GGUF_F32, voc.score, (uint64_t)vocab);
    mc_gguf_set_arr(w, "tokenizer.ggml.token_type", MC_GGUF_I32, voc.type, (uint64_t)vocab);
    mc_gguf_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    mc_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    mc_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    mc_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    mc_gguf_set_bool(w, "tokenizer.ggml.add_eos_token", false);

    const float *p = (const float *)(mm.p + sizeof h);
    int64_t ne[2];
#define ADD(nm, a, b, ptr)                                                                    \
    do {                                                                                      \
        ne[0] = (a);                                                                          \
        ne[1] = (b);                                                                          \
        rc = mc_gguf_add_tensor(w, nm, MC_TYPE_F32, (b) == 1 ? 1 : 2, ne, ptr,                \
                                (size_t)(a) * (size_t)(b) * 4);                               \
        if (rc) {                                                                             \
            mc_err_set(err, rc, -1, "cannot add tensor %s", nm);                              \
            goto done;                                                                        \
        }                                                                                     \
    } while (0)
    const float *emb = p;
    p += V * D;
    const float *rms_att = p;
    p += L * D;
    const float *wq = p;
    p += L * D * D;
    const float *wk = p;
    p += L * D * kv_dim;
    const float *wv = p;
    p += L * D * kv_dim;
    const float *wo = p;
    p += L * D * D;
    const float *rms_ffn = p;
    p += L * D;
    const float *w1 = p;
    p += L * D * H;
    const float *w2 = p;
    p += L * D * H;
    const float *w3 = p;
    p += L * D * H;
    const float *rms_final = p;
    p += D;
    p += (size_t)seq * hs; /* freq_cis_real and freq_cis_imag: recomputed by the engine */
    const float *wcls = shared ? emb : p;
    ADD("token_embd.weight", dim, vocab, emb);
    char tn[64];
    for (int l = 0; l < n_layer; l++) {
        snprintf(tn, sizeof tn, "blk.%d.attn_norm.weight", l);
        ADD(tn, dim, 1, rms_att + l * D);
        snprintf(tn, sizeof tn, "blk.%d.attn_q.weight", l);
        ADD(tn, dim, dim, wq + l * D * D);
        snprintf(tn, sizeof tn, "blk.%d.attn_k.weight", l);
        ADD(tn, dim, kv_dim, wk + l * D * kv_dim);
        snprintf(tn, sizeof tn, "blk.%d.attn_v.weight", l);
        ADD(tn, dim, kv_dim, wv + l * D * kv_dim);
        snprintf(tn, sizeof tn, "blk.%d.attn_output.weight", l);
        ADD(tn, dim, dim, wo + l * D * D);
        snprintf(tn, sizeof tn, "blk.%d.ffn_norm.weight", l);
        ADD(tn, dim, 1, rms_ffn + l * D);
        snprintf(tn, sizeof tn, "blk.%d.ffn_gate.weight", l);
        ADD(tn, dim, hidden, w1 + l * D * H);
        snprintf(tn, sizeof tn, "blk.%d.ffn_down.weight", l);
        ADD(tn, hidden, dim, w2 + l * D * H);
        snprintf(tn, sizeof tn, "blk.%d.ffn_up.weight", l);
        ADD(tn, dim, hidden, w3 + l * D * H);
    }
    ADD("output_norm.weight", dim, 1, rms_final);
    if (!shared)
        ADD("output.weight", dim, vocab, wcls);
#undef ADD
    rc = mc_gguf_writer_write(w, out_path, err);
done:
    mc_gguf_writer_free(w);
    vocab_free(&voc);
    unmap_file(&mm);
    unmap_file(&tm);
    return rc;
}
