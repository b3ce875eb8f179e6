/* src/tok/tok_load.c — building an mc_tok from GGUF metadata or a llama2.c
 * tokenizer.bin: token texts, scores and types, merges, special ids, and the
 * defaults llama.cpp applies (add_bos, add_space_prefix, ignore_merges,
 * special-token detection by text). Every array length and id is checked. */
#include "tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mc__tok_tls_destroy(void *p);

/* What a loader hands to build(). */
typedef struct build_in {
    int type;
    const char *pre; /* BPE pre-tokenizer name */
    int64_t n_vocab;
    mc_str (*text)(const void *ctx, int64_t i);
    const void *ctx;
    const float *scores;      /* may be NULL */
    const int32_t *iscores;   /* alternative, may be NULL */
    const int32_t *types;     /* may be NULL (unaligned: read with memcpy) */
    int64_t n_merges;
    mc_str (*merge)(const void *ctx, int64_t i);
    int64_t key_special[MC_TOK_N_SPECIAL]; /* from metadata, -1 if absent */
    int add_bos, add_eos, add_space_prefix; /* -1 absent */
} build_in;

static int pre_from_name(const char *name, int *pre, bool *ignore_merges, bool *add_bos) {
    static const struct {
        const char *name;
        int pre;
    } tab[] = {
        {"default", MC__PRE_GPT2},       {"gpt-2", MC__PRE_GPT2},
        {"gpt2", MC__PRE_GPT2},          {"starcoder", MC__PRE_STARCODER},
        {"refact", MC__PRE_STARCODER},   {"deepseek-coder", MC__PRE_DEEPSEEK_CODER},
        {"qwen2", MC__PRE_QWEN2},        {"llama-bpe", MC__PRE_LLAMA3},
        {"llama3", MC__PRE_LLAMA3},      {"llama-v3", MC__PRE_LLAMA3},
    };
    for (size_t i = 0; i < MC_ARRAY_LEN(tab); i++)
        if (!strcmp(name, tab[i].name)) {
            *pre = tab[i].pre;
            if (tab[i].pre == MC__PRE_LLAMA3) {
                *ignore_merges = true;
                *add_bos = true;
            }
            return 0;
        }
    return MC_EUNSUPPORTED;
}

static int attr_from_type(int32_t ty) {
    switch (ty) {
    case 1: return MC_TOK_ATTR_NORMAL;
    case 2: return MC_TOK_ATTR_UNKNOWN;
    case 3: return MC_TOK_ATTR_CONTROL;
    case 4: return MC_TOK_ATTR_USER_DEFINED;
    case 5: return MC_TOK_ATTR_UNUSED;
    case 6: return MC_TOK_ATTR_BYTE;
    default: return 0; /* undefined */
    }
}

static int ht_build(mc_tok *t) {
    uint64_t cap = 16;
    while (cap < (uint64_t)t->n_vocab * 2)
        cap *= 2;
    t->text_ht = malloc(cap * sizeof(int32_t));
    if (!t->text_ht)
        return MC_ENOMEM;
    memset(t->text_ht, 0xFF, cap * sizeof(int32_t));
    t->text_ht_mask = cap - 1;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const char *s = t->text_pool + t->text_off[id];
        size_t n = (size_t)(t->text_off[id + 1] - t->text_off[id]);
        uint64_t i = mc__tok_hash(s, n) & t->text_ht_mask;
        for (;; i = (i + 1) & t->text_ht_mask) {
            int32_t o = t->text_ht[i];
            if (o < 0) {
                t->text_ht[i] = id;
                break;
            }
            size_t on = (size_t)(t->text_off[o + 1] - t->text_off[o]);
            if (on == n && memcmp(t->text_pool + t->text_off[o], s, n) == 0) {
                t->text_ht[i] = id; /* duplicate text: the last id wins (llama.cpp) */
                break;
            }
        }
    }
    return 0;
}

static int merges_build(mc_tok *t, const build_in *in, mc_err *err) {
    uint64_t cap = 16;
    while (cap < (uint64_t)in->n_merges * 2)
        cap *= 2;
    t->merge_ht = calloc(cap, sizeof(mc__merge_slot));
    if (!t->merge_ht)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory for %lld merges",
                          (long long)in->n_merges);
    t->merge_ht_mask = cap - 1;
    char *buf = NULL;
    size_t cap_buf = 0;
    for (int64_t r = 0; r < in->n_merges; r++) {
        mc_str m = in->merge(in->ctx, r);
        /* "left right": split at the first space after the first byte */
        const char *sp = m.len > 1 ? memchr(m.ptr + 1, ' ', m.len - 1) : NULL;
        if (!sp)
            continue;
        size_t ln = (size_t)(sp - m.ptr), rn = m.len - ln - 1;
        int32_t a = mc__tok_lookup(t, m.ptr, ln);
        int32_t b = mc__tok_lookup(t, sp + 1, rn);
        if (a < 0 || b < 0)
            continue;
        if (ln + rn > cap_buf) {
            cap_buf = (ln + rn) * 2;
            char *nb = realloc(buf, cap_buf);
            if (!nb) {
                free(buf);
                return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
            }
            buf = nb;
        }
        memcpy(buf, m.ptr, ln);
        memcpy(buf + ln, sp + 1, rn);
        int32_t res = mc__tok_lookup(t, buf, ln + rn);
        if (res < 0)
            continue; /* a merge whose result is no token can never be emitted */
        uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
        for (uint64_t i = mc__tok_hash64(key) & t->merge_ht_mask;; i = (i + 1) & t->merge_ht_mask) {
            mc__merge_slot *s = &t->merge_ht[i];
            if (s->key == key)
                break; /* first rank wins */
            if (s->key == 0) {
                *s = (mc__merge_slot){key, (int32_t)r, res};
                break;
            }
        }
    }
    free(buf);
    return 0;
}

/* Bytes a normal byte-level BPE token stands for: each char mapped back to
 * its byte; a char outside the map is kept as its UTF-8. */
static size_t bpe_unmap(const char *s, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t l;
        uint32_t cp = mc__u_decode((const uint8_t *)s, n, i, &l);
        int b = mc__u_cp_to_byte(cp);
        if (b >= 0 && cp != 0xFFFD) {
            out[o++] = (char)b;
        } else {
            memcpy(out + o, s + i, l);
            o += l;
        }
        i += l;
    }
    return o;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int pieces_build(mc_tok *t) {
    uint64_t total = t->text_off[t->n_vocab];
    t->piece_pool = malloc(total + 1);
    t->piece_off = malloc(((size_t)t->n_vocab + 1) * sizeof(uint64_t));
    if (!t->piece_pool || !t->piece_off)
        return MC_ENOMEM;
    uint64_t o = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        t->piece_off[id] = o;
        const char *s = t->text_pool + t->text_off[id];
        size_t n = (size_t)(t->text_off[id + 1] - t->text_off[id]);
        int a = t->attr[id];
        char *dst = t->piece_pool + o;
        size_t k = 0;
        if (a & (MC_TOK_ATTR_CONTROL | MC_TOK_ATTR_UNKNOWN | MC_TOK_ATTR_USER_DEFINED)) {
            memcpy(dst, s, n); /* control tokens: decode shows their text only on request */
            k = n;
        } else if (a & MC_TOK_ATTR_BYTE) {
            if (n == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x' && s[5] == '>' &&
                hexval(s[3]) >= 0 && hexval(s[4]) >= 0) {
                dst[0] = (char)(hexval(s[3]) * 16 + hexval(s[4]));
                k = 1;
            } else if (t->type == MC_TOK_BPE) {
                k = bpe_unmap(s, n, dst);
            }
        } else if (a & MC_TOK_ATTR_NORMAL) {
            if (t->type == MC_TOK_BPE) {
                k = bpe_unmap(s, n, dst);
            } else {
                for (size_t i = 0; i < n; i++) {
                    if (i + 2 < n && (uint8_t)s[i] == 0xE2 && (uint8_t)s[i + 1] == 0x96 &&
                        (uint8_t)s[i + 2] == 0x81) {
                        dst[k++] = ' ';
                        i += 2;
                    } else {
                        dst[k++] = s[i];
                    }
                }
            }
        }
        o += k;
    }
    t->piece_off[t->n_vocab] = o;
    return 0;
}

static int cmp_special(const void *a, const void *b, void *ctx) {
    const mc_tok *t = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint64_t lx = t->text_off[x + 1] - t->text_off[x], ly = t->text_off[y + 1] - t->text_off[y];
    if (lx != ly)
        return lx > ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

static bool text_is(const mc_tok *t, int32_t id, const char *const *names) {
    size_t n = (size_t)(t->text_off[id + 1] - t->text_off[id]);
    const char *s = t->text_pool + t->text_off[id];
    for (; *names; names++)
        if (strlen(*names) == n && memcmp(*names, s, n) == 0)
            return true;
    return false;
}

static int build(const build_in *in, mc_tok **out, mc_err *err) {
    *out = NULL;
    if (in->n_vocab <= 0 || in->n_vocab > INT32_MAX / 2)
        return mc_err_set(err, MC_EFORMAT, -1, "vocabulary size %lld out of range",
                          (long long)in->n_vocab);
    mc_tok *t = calloc(1, sizeof(*t));
    if (!t)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    int rc = 0;
    t->type = in->type;
    t->n_vocab = (int32_t)in->n_vocab;
    if (pthread_key_create(&t->tls, mc__tok_tls_destroy) == 0)
        t->tls_ok = true;
    else {
        rc = mc_err_set(err, MC_ENOMEM, -1, "no thread-local key");
        goto fail;
    }
    bool add_bos = false;
    if (t->type == MC_TOK_BPE) {
        const char *pre = in->pre ? in->pre : "default";
        if (pre_from_name(pre, &t->pre, &t->ignore_merges, &add_bos)) {
            rc = mc_err_set(err, MC_EUNSUPPORTED, -1, "unsupported pre-tokenizer '%s'", pre);
            goto fail;
        }
        snprintf(t->pre_name, sizeof t->pre_name, "%s", pre);
        t->add_space_prefix = false;
    } else {
        snprintf(t->pre_name, sizeof t->pre_name, "llama");
        add_bos = true;
        t->add_space_prefix = true;
    }
    t->add_bos = in->add_bos >= 0 ? in->add_bos != 0 : add_bos;
    t->add_eos = in->add_eos >= 0 ? in->add_eos != 0 : false;
    if (in->add_space_prefix >= 0)
        t->add_space_prefix = in->add_space_prefix != 0;

    /* texts */
    uint64_t total = 0;
    for (int64_t i = 0; i < in->n_vocab; i++) {
        mc_str s = in->text(in->ctx, i);
        total += s.len ? s.len : 32;
    }
    t->text_pool = malloc(total + 1);
    t->text_off = malloc(((size_t)in->n_vocab + 1) * sizeof(uint64_t));
    t->scores = calloc((size_t)in->n_vocab, sizeof(float));
    t->attr = calloc((size_t)in->n_vocab, 1);
    t->eog = calloc((size_t)in->n_vocab, 1);
    if (!t->text_pool || !t->text_off || !t->scores || !t->attr || !t->eog) {
        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory for %lld tokens", (long long)in->n_vocab);
        goto fail;
    }
    uint64_t o = 0;
    for (int64_t i = 0; i < in->n_vocab; i++) {
        mc_str s = in->text(in->ctx, i);
        t->text_off[i] = o;
        if (s.len == 0) /* as llama.cpp: an empty token gets a placeholder text */
            o += (uint64_t)snprintf(t->text_pool + o, 32, "[EMPTY_%lld]", (long long)i);
        else {
            memcpy(t->text_pool + o, s.ptr, s.len);
            o += s.len;
        }
        if (in->scores)
            memcpy(&t->scores[i], &in->scores[i], sizeof(float));
        else if (in->iscores) {
            int32_t v;
            memcpy(&v, &in->iscores[i], sizeof v);
            t->scores[i] = (float)v;
        }
        int32_t ty = 1;
        if (in->types)
            memcpy(&ty, &in->types[i], sizeof ty);
        t->attr[i] = (uint8_t)attr_from_type(ty);
    }
    t->text_off[in->n_vocab] = o;
    if ((rc = ht_build(t)) != 0) {
        mc_err_set(err, rc, -1, "out of memory");
        goto fail;
    }

    /* byte tokens */
    for (int b = 0; b < 256; b++) {
        char buf[8];
        int n;
        if (t->type == MC_TOK_BPE)
            n = mc__u_encode(mc__u_byte_to_cp((uint8_t)b), buf);
        else
            n = snprintf(buf, sizeof buf, "<0x%02X>", b);
        t->byte_tok[b] = mc__tok_lookup(t, buf, (size_t)n);
    }
    if (t->type == MC_TOK_BPE && (rc = merges_build(t, in, err)) != 0)
        goto fail;

    /* special ids: llama.cpp's defaults, then metadata */
    for (int r = 0; r < MC_TOK_N_SPECIAL; r++)
        t->special[r] = -1;
    if (t->type == MC_TOK_BPE) {
        t->special[MC_TOK_BOS] = 11;
        t->special[MC_TOK_EOS] = 11;
    } else {
        t->special[MC_TOK_BOS] = 1;
        t->special[MC_TOK_EOS] = 2;
        t->special[MC_TOK_UNK] = 0;
    }
    for (int r = 0; r < MC_TOK_N_SPECIAL; r++) {
        if (t->special[r] >= t->n_vocab)
            t->special[r] = -1;
        if (in->key_special[r] >= 0 && in->key_special[r] < t->n_vocab)
            t->special[r] = (int32_t)in->key_special[r];
    }
    /* detection by text, as llama.cpp does when the metadata is silent */
    {
        static const char *eot[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                    "<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>",
                                    "<｜end▁of▁sentence｜>", NULL};
        static const char *pre[] = {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
                                    "<｜fim▁begin｜>", "<PRE>", "▁<PRE>", NULL};
        static const char *suf[] = {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
                                    "<｜fim▁hole｜>", "<SUF>", "▁<SUF>", NULL};
        static const char *mid[] = {"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
                                    "<｜fim▁end｜>", "<MID>", "▁<MID>", NULL};
        static const char *pad[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", NULL};
        static const char *rep[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>",
                                    "<reponame>", NULL};
        static const char *sep[] = {"<|file_sep|>", "<file_sep>", NULL};
        static const struct {
            int role;
            const char *const *names;
        } det[] = {{MC_TOK_EOT, eot},     {MC_TOK_FIM_PRE, pre}, {MC_TOK_FIM_SUF, suf},
                   {MC_TOK_FIM_MID, mid}, {MC_TOK_FIM_PAD, pad}, {MC_TOK_FIM_REP, rep},
                   {MC_TOK_FIM_SEP, sep}};
        for (size_t k = 0; k < MC_ARRAY_LEN(det); k++) {
            if (t->special[det[k].role] >= 0)
                continue;
            for (int32_t id = 0; id < t->n_vocab; id++)
                if (text_is(t, id, det[k].names)) {
                    t->special[det[k].role] = id;
                    t->attr[id] |= MC_TOK_ATTR_CONTROL;
                    break;
                }
        }
        static const char *eog_names[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                          "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>",
                                          "<|end_of_text|>", "<｜end▁of▁sentence｜>", NULL};
        for (int32_t id = 0; id < t->n_vocab; id++)
            if ((t->attr[id] & MC_TOK_ATTR_CONTROL) && text_is(t, id, eog_names))
                t->eog[id] = 1;
        int eog_roles[] = {MC_TOK_EOS, MC_TOK_EOT, MC_TOK_FIM_PAD, MC_TOK_FIM_REP, MC_TOK_FIM_SEP};
        for (size_t k = 0; k < MC_ARRAY_LEN(eog_roles); k++)
            if (t->special[eog_roles[k]] >= 0)
                t->eog[t->special[eog_roles[k]]] = 1;
    }

    /* special tokens in matching order */
    t->special_ids = malloc((size_t)t->n_vocab * sizeof(int32_t));
    if (!t->special_ids) {
        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        goto fail;
    }
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (t->attr[id] & (MC_TOK_ATTR_CONTROL | MC_TOK_ATTR_USER_DEFINED | MC_TOK_ATTR_UNKNOWN))
            t->special_ids[t->n_special++] = id;
    qsort_r(t->special_ids, (size_t)t->n_special, sizeof(int32_t), cmp_special, t);
    t->sp_start = calloc(65537, sizeof(uint32_t));
    t->sp_ids = malloc(((size_t)t->n_special + 1) * sizeof(int32_t));
    if (!t->sp_start || !t->sp_ids) {
        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        goto fail;
    }
    for (int b = 0; b < 256; b++)
        t->sp_one[b] = -1;
    for (int32_t k = 0; k < t->n_special; k++) {
        int32_t id = t->special_ids[k];
        const uint8_t *s = (const uint8_t *)t->text_pool + t->text_off[id];
        uint64_t n = t->text_off[id + 1] - t->text_off[id];
        if (n == 1 && t->sp_one[s[0]] < 0)
            t->sp_one[s[0]] = k;
        else if (n >= 2)
            t->sp_start[((unsigned)s[0] << 8 | s[1]) + 1]++;
    }
    for (int i = 0; i < 65536; i++)
        t->sp_start[i + 1] += t->sp_start[i];
    {
        uint32_t *fill = calloc(65536, sizeof(uint32_t));
        if (!fill) {
            rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
            goto fail;
        }
        for (int32_t k = 0; k < t->n_special; k++) {
            int32_t id = t->special_ids[k];
            const uint8_t *s = (const uint8_t *)t->text_pool + t->text_off[id];
            if (t->text_off[id + 1] - t->text_off[id] >= 2) {
                unsigned key = (unsigned)s[0] << 8 | s[1];
                t->sp_ids[t->sp_start[key] + fill[key]++] = k;
            }
        }
        free(fill);
    }

    if (pieces_build(t)) {
        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        goto fail;
    }
    *out = t;
    return 0;
fail:
    mc_tok_free(t);
    return rc ? rc : MC_ENOMEM;
}

/* ---- GGUF ----------------------------------------------------------------- */

typedef struct gctx {
    const mc_gguf *g;
    int64_t tokens, merges;
} gctx;

static mc_str g_text(const void *ctx, int64_t i) {
    const gctx *c = ctx;
    return mc_gguf_arr_str(c->g, c->tokens, (uint64_t)i);
}
static mc_str g_merge(const void *ctx, int64_t i) {
    const gctx *c = ctx;
    return mc_gguf_arr_str(c->g, c->merges, (uint64_t)i);
}

static int get_str(const mc_gguf *g, const char *key, char *buf, size_t cap) {
    mc_str s;
    if (mc_gguf_get_str(g, key, &s) != 0)
        return -1;
    size_t n = MC_MIN(s.len, cap - 1);
    memcpy(buf, s.ptr, n);
    buf[n] = 0;
    return 0;
}

static int get_flag(const mc_gguf *g, const char *key) {
    bool b;
    return mc_gguf_get_bool(g, key, &b) == 0 ? (int)b : -1;
}

int mc_tok_load_gguf(const mc_gguf *g, mc_tok **out, mc_err *err) {
    *out = NULL;
    char model[64], pre[64];
    if (get_str(g, "tokenizer.ggml.model", model, sizeof model))
        return mc_err_set(err, MC_ENOTFOUND, -1, "no tokenizer.ggml.model in the file");
    build_in in;
    memset(&in, 0, sizeof in);
    if (!strcmp(model, "gpt2"))
        in.type = MC_TOK_BPE;
    else if (!strcmp(model, "llama"))
        in.type = MC_TOK_SPM;
    else
        return mc_err_set(err, MC_EUNSUPPORTED, -1, "unsupported tokenizer model '%s'", model);
    in.pre = get_str(g, "tokenizer.ggml.pre", pre, sizeof pre) == 0 ? pre : NULL;

    gctx c = {g, mc_gguf_find_key(g, "tokenizer.ggml.tokens"), -1};
    if (c.tokens < 0)
        return mc_err_set(err, MC_ENOTFOUND, -1, "no tokenizer.ggml.tokens in the file");
    if (mc_gguf_kv_type(g, c.tokens) != MC_GGUF_ARRAY ||
        mc_gguf_arr_type(g, c.tokens) != MC_GGUF_STRING)
        return mc_err_set(err, MC_ETYPE, -1, "tokenizer.ggml.tokens is not an array of strings");
    in.n_vocab = (int64_t)mc_gguf_arr_n(g, c.tokens);
    in.text = g_text;
    in.ctx = &c;

    int64_t k = mc_gguf_find_key(g, "tokenizer.ggml.scores");
    if (k >= 0) {
        int at = mc_gguf_arr_type(g, k);
        if (mc_gguf_kv_type(g, k) != MC_GGUF_ARRAY || (at != MC_GGUF_F32 && at != MC_GGUF_I32))
            return mc_err_set(err, MC_ETYPE, -1, "tokenizer.ggml.scores is not f32/i32 array");
        if ((int64_t)mc_gguf_arr_n(g, k) < in.n_vocab)
            return mc_err_set(err, MC_EFORMAT, -1, "tokenizer.ggml.scores has %llu < %lld entries",
                              (unsigned long long)mc_gguf_arr_n(g, k), (long long)in.n_vocab);
        if (at == MC_GGUF_F32)
            in.scores = mc_gguf_arr_data(g, k);
        else
            in.iscores = mc_gguf_arr_data(g, k);
    }
    k = mc_gguf_find_key(g, "tokenizer.ggml.token_type");
    if (k >= 0) {
        if (mc_gguf_kv_type(g, k) != MC_GGUF_ARRAY || mc_gguf_arr_type(g, k) != MC_GGUF_I32)
            return mc_err_set(err, MC_ETYPE, -1, "tokenizer.ggml.token_type is not an i32 array");
        if ((int64_t)mc_gguf_arr_n(g, k) < in.n_vocab)
            return mc_err_set(err, MC_EFORMAT, -1, "tokenizer.ggml.token_type too short");
        in.types = mc_gguf_arr_data(g, k);
    }
    if (in.type == MC_TOK_BPE) {
        c.merges = mc_gguf_find_key(g, "tokenizer.ggml.merges");
        if (c.merges < 0)
            return mc_err_set(err, MC_ENOTFOUND, -1, "no tokenizer.ggml.merges in the file");
        if (mc_gguf_kv_type(g, c.merges) != MC_GGUF_ARRAY ||
            mc_gguf_arr_type(g, c.merges) != MC_GGUF_STRING)
            return mc_err_set(err, MC_ETYPE, -1, "tokenizer.ggml.merges is not a string array");
        in.n_merges = (int64_t)mc_gguf_arr_n(g, c.merges);
        in.merge = g_merge;
    }
    static const struct {
        int role;
        const char *key;
    } keys[] = {
        {MC_TOK_BOS, "tokenizer.ggml.bos_token_id"},
        {MC_TOK_EOS, "tokenizer.ggml.eos_token_id"},
        {MC_TOK_EOT, "tokenizer.ggml.eot_token_id"},
        {MC_TOK_UNK, "tokenizer.ggml.unknown_token_id"},
        {MC_TOK_PAD, "tokenizer.ggml.padding_token_id"},
        {MC_TOK_FIM_PRE, "tokenizer.ggml.fim_pre_token_id"},
        {MC_TOK_FIM_SUF, "tokenizer.ggml.fim_suf_token_id"},
        {MC_TOK_FIM_MID, "tokenizer.ggml.fim_mid_token_id"},
        {MC_TOK_FIM_PAD, "tokenizer.ggml.fim_pad_token_id"},
        {MC_TOK_FIM_REP, "tokenizer.ggml.fim_rep_token_id"},
        {MC_TOK_FIM_SEP, "tokenizer.ggml.fim_sep_token_id"},
        {MC_TOK_FIM_PRE, "tokenizer.ggml.prefix_token_id"},
        {MC_TOK_FIM_SUF, "tokenizer.ggml.suffix_token_id"},
        {MC_TOK_FIM_MID, "tokenizer.ggml.middle_token_id"},
    };
    for (int r = 0; r < MC_TOK_N_SPECIAL; r++)
        in.key_special[r] = -1;
    for (size_t i = 0; i < MC_ARRAY_LEN(keys); i++) {
        uint32_t v;
        if (mc_gguf_get_u32(g, keys[i].key, &v) == 0 && in.key_special[keys[i].role] < 0)
            in.key_special[keys[i].role] = v;
    }
    in.add_bos = get_flag(g, "tokenizer.ggml.add_bos_token");
    in.add_eos = get_flag(g, "tokenizer.ggml.add_eos_token");
    in.add_space_prefix = get_flag(g, "tokenizer.ggml.add_space_prefix");
    return build(&in, out, err);
}

int mc_tok_load_gguf_file(const char *path, mc_tok **out, mc_err *err) {
    *out = NULL;
    mc_gguf *g = NULL;
    int rc = mc_gguf_open(path, &g, err);
    if (rc)
        return rc;
    rc = mc_tok_load_gguf(g, out, err);
    mc_gguf_close(g);
    return rc;
}

/* ---- llama2.c tokenizer.bin -------------------------------------------------------- */

typedef struct l2ctx {
    mc_str *texts;
} l2ctx;

static mc_str l2_text(const void *ctx, int64_t i) {
    return ((const l2ctx *)ctx)->texts[i];
}

int mc_tok_load_llama2c_mem(const void *data, size_t size, int n_vocab, mc_tok **out,
                            mc_err *err) {
    *out = NULL;
    const uint8_t *p = data;
    if (size < 4)
        return mc_err_set(err, MC_EFORMAT, 0, "tokenizer.bin: too short for max_token_length");
    int32_t maxlen;
    memcpy(&maxlen, p, 4);
    if (maxlen <= 0 || maxlen > 1 << 20)
        return mc_err_set(err, MC_EFORMAT, 0, "tokenizer.bin: max_token_length %d out of range",
                          maxlen);
    /* count tokens */
    size_t off = 4;
    int64_t n = 0;
    while (off < size && (n_vocab <= 0 || n < n_vocab)) {
        if (size - off < 8)
            return mc_err_set(err, MC_EFORMAT, (int64_t)off, "tokenizer.bin: truncated token %lld",
                              (long long)n);
        int32_t len;
        memcpy(&len, p + off + 4, 4);
        if (len < 0 || len > maxlen || (size_t)len > size - off - 8)
            return mc_err_set(err, MC_EFORMAT, (int64_t)off + 4,
                              "tokenizer.bin: token %lld has bad length %d", (long long)n, len);
        off += 8 + (size_t)len;
        n++;
    }
    if (n == 0 || (n_vocab > 0 && n < n_vocab))
        return mc_err_set(err, MC_EFORMAT, (int64_t)off,
                          "tokenizer.bin: %lld tokens, expected %d", (long long)n, n_vocab);
    mc_str *texts = calloc((size_t)n, sizeof(mc_str));
    float *scores = calloc((size_t)n, sizeof(float));
    int32_t *types = calloc((size_t)n, sizeof(int32_t));
    /* texts use real spaces: store them the SentencePiece way (U+2581) */
    char *pool = malloc((off - 4) * 3 + 1);
    if (!texts || !scores || !types || !pool) {
        free(texts);
        free(scores);
        free(types);
        free(pool);
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    }
    size_t o = 4, po = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t len;
        memcpy(&scores[i], p + o, 4);
        memcpy(&len, p + o + 4, 4);
        const char *s = (const char *)p + o + 8;
        texts[i].ptr = pool + po;
        for (int32_t j = 0; j < len; j++) {
            if (s[j] == ' ') {
                memcpy(pool + po, "\xE2\x96\x81", 3);
                po += 3;
            } else {
                pool[po++] = s[j];
            }
        }
        texts[i].len = (size_t)(pool + po - texts[i].ptr);
        o += 8 + (size_t)len;
        bool is_byte = len == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x' && s[5] == '>';
        types[i] = i == 0 ? 2 : (i == 1 || i == 2) ? 3 : is_byte ? 6 : 1;
    }
    build_in in;
    memset(&in, 0, sizeof in);
    l2ctx c = {texts};
    in.type = MC_TOK_SPM;
    in.n_vocab = n;
    in.text = l2_text;
    in.ctx = &c;
    in.scores = scores;
    in.types = types;
    for (int r = 0; r < MC_TOK_N_SPECIAL; r++)
        in.key_special[r] = -1;
    in.add_bos = -1;
    in.add_eos = -1;
    in.add_space_prefix = -1;
    int rc = build(&in, out, err);
    free(texts);
    free(scores);
    free(types);
    free(pool);
    return rc;
}

int mc_tok_load_llama2c(const char *path, int n_vocab, mc_tok **out, mc_err *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return mc_err_set(err, MC_EIO, -1, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (sz < 0) {
        fclose(f);
        return mc_err_set(err, MC_EIO, -1, "cannot size %s", path);
    }
    void *buf = malloc((size_t)sz + 1);
    if (!buf) {
        fclose(f);
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    }
    size_t got = fread(buf, 1, (size_t)sz, f);
    fclose(f);
    int rc = mc_tok_load_llama2c_mem(buf, got, n_vocab, out, err);
    free(buf);
    return rc;
}
