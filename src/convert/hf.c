/* Hugging Face model directory (llama, qwen2) -> GGUF.
 *
 * The model loader (src/model/model.c) and llama.cpp are the spec of what is
 * written: architecture keys {arch}.*, tensor names token_embd / blk.N.* /
 * output_norm / output, matrices as (out, in) row-major (GGUF ne = [in, out],
 * the same bytes as PyTorch's Linear weight), 1-D tensors in f32.
 *
 * RoPE: Hugging Face Llama weights are in rotate-half order (dimension i of a
 * head pairs with i + head_dim/2); llama.cpp's "llama" rope pairs (2i, 2i+1).
 * So q_proj/k_proj rows (and q/k biases, if any) are permuted per head exactly
 * as llama.cpp's converter does: reshape(n_head, 2, head_dim/2, n_embd)
 * .swapaxes(1, 2). Qwen2 runs NeoX-order rope, which is rotate-half: no
 * permutation; it has q/k/v biases.
 *
 * Tokenizer: byte-level BPE from tokenizer.json (vocab, merges in either the
 * "a b" or the ["a", "b"] form, added tokens), special ids from
 * tokenizer_config.json then config.json, FIM ids by token text, and a
 * pre-tokenizer name recognised from the pre_tokenizer section. The keys are
 * written in the same order and with the same values as the vocabulary-only
 * GGUF that `mccom tokenizer train` writes, so converting our own model gives
 * the same tokenizer section. Or the tokenizer.* keys of a given GGUF are
 * copied as they are.
 *
 * Deliberately not handled: SentencePiece vocabularies (tokenizer.model),
 * rope scaling, sliding-window attention (ignored, as llama.cpp does; it only
 * matters past the window), tokenizer normalizers (llama.cpp ignores them too,
 * e.g. Qwen2's NFC), and quantization (`mccom quantize` afterwards).
 */
#include "mccom/convert.h"
#include "mccom/gguf.h"
#include "mccom/kernels.h"
#include "mccom/tok.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* llama.cpp's token types */
enum { TT_NORMAL = 1, TT_CONTROL = 3, TT_USER_DEFINED = 4, TT_UNUSED = 5 };

mc_convert_hf_params mc_convert_hf_default(void) {
    mc_convert_hf_params p;
    memset(&p, 0, sizeof p);
    p.out_type = -1;
    return p;
}

/* ---- config.json ---------------------------------------------------------- */

typedef struct hfcfg {
    const char *arch; /* "llama" | "qwen2" */
    int64_t n_embd, n_ff, n_layer, n_head, n_head_kv, head_dim, n_vocab, n_ctx;
    double eps, theta;
    int tied;
} hfcfg;

static char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s", dir, name);
    return s;
}

/* Load dir/name as JSON; a missing optional file gives *out = NULL and 0. */
static int load_json(const char *dir, const char *name, int required, json_t **out, mc_err *err) {
    *out = NULL;
    char *path = path_join(dir, name);
    if (!path)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    int rc = 0;
    if (access(path, F_OK) != 0) {
        if (required)
            rc = mc_err_set(err, MC_ENOTFOUND, -1, "%s is missing", path);
        free(path);
        return rc;
    }
    json_error_t je;
    *out = json_load_file(path, 0, &je);
    if (!*out)
        rc = mc_err_set(err, MC_EFORMAT, (int64_t)je.position,
                        "%s: not valid JSON (line %d, byte %lld): %s", path, je.line,
                        (long long)je.position, je.text);
    else if (!json_is_object(*out)) {
        rc = mc_err_set(err, MC_EFORMAT, 0, "%s: not a JSON object", path);
        json_decref(*out);
        *out = NULL;
    }
    free(path);
    return rc;
}

/* Integer field in [1, max]; absent or null gives def (def < 0: required). */
static int cfg_int(const json_t *c, const char *key, int64_t def, int64_t max, int64_t *out,
                   mc_err *err) {
    const json_t *v = json_object_get(c, key);
    if (!v || json_is_null(v)) {
        if (def < 0)
            return mc_err_set(err, MC_EFORMAT, -1, "config.json: field %s is missing", key);
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > max)
        return mc_err_set(err, MC_EFORMAT, -1,
                          "config.json: field %s must be an integer in [1, %lld]", key,
                          (long long)max);
    *out = json_integer_value(v);
    return 0;
}

static int cfg_num(const json_t *c, const char *key, double def, double *out, mc_err *err) {
    const json_t *v = json_object_get(c, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_number(v) || !(json_number_value(v) > 0) || !isfinite(json_number_value(v)))
        return mc_err_set(err, MC_EFORMAT, -1, "config.json: field %s must be a positive number",
                          key);
    *out = json_number_value(v);
    return 0;
}

static int parse_config(const json_t *c, hfcfg *h, mc_err *err) {
    memset(h, 0, sizeof *h);
    const json_t *archs = json_object_get(c, "architectures");
    if (!json_is_array(archs) || json_array_size(archs) == 0)
        return mc_err_set(err, MC_EFORMAT, -1,
                          "config.json: field architectures is missing (LlamaForCausalLM or "
                          "Qwen2ForCausalLM)");
    const char *a = json_string_value(json_array_get(archs, 0));
    if (a && !strcmp(a, "LlamaForCausalLM"))
        h->arch = "llama";
    else if (a && !strcmp(a, "Qwen2ForCausalLM"))
        h->arch = "qwen2";
    else
        return mc_err_set(err, MC_EUNSUPPORTED, -1,
                          "config.json: architecture '%s' is not supported (LlamaForCausalLM, "
                          "Qwen2ForCausalLM)",
                          a ? a : "(not a string)");
    const json_t *rs = json_object_get(c, "rope_scaling");
    if (rs && !json_is_null(rs)) {
        const char *ty = json_string_value(json_object_get(rs, "rope_type"));
        if (!ty)
            ty = json_string_value(json_object_get(rs, "type"));
        return mc_err_set(err, MC_EUNSUPPORTED, -1,
                          "config.json: field rope_scaling is set (type '%s'); mccom implements "
                          "plain RoPE only, so this model cannot be converted",
                          ty ? ty : "?");
    }
    const char *act = json_string_value(json_object_get(c, "hidden_act"));
    if (json_object_get(c, "hidden_act") && (!act || strcmp(act, "silu") != 0))
        return mc_err_set(err, MC_EUNSUPPORTED, -1,
                          "config.json: field hidden_act is '%s'; only silu (SwiGLU) is supported",
                          act ? act : "(not a string)");
    int rc;
    if ((rc = cfg_int(c, "hidden_size", -1, 1 << 16, &h->n_embd, err)) ||
        (rc = cfg_int(c, "intermediate_size", -1, 1 << 20, &h->n_ff, err)) ||
        (rc = cfg_int(c, "num_hidden_layers", -1, 4096, &h->n_layer, err)) ||
        (rc = cfg_int(c, "num_attention_heads", -1, 4096, &h->n_head, err)) ||
        (rc = cfg_int(c, "num_key_value_heads", h->n_head, 4096, &h->n_head_kv, err)) ||
        (rc = cfg_int(c, "vocab_size", -1, 1 << 24, &h->n_vocab, err)) ||
        (rc = cfg_int(c, "max_position_embeddings", 2048, 1 << 24, &h->n_ctx, err)))
        return rc;
    if (h->n_head % h->n_head_kv != 0)
        return mc_err_set(err, MC_EFORMAT, -1,
                          "config.json: num_attention_heads %lld is not a multiple of "
                          "num_key_value_heads %lld",
                          (long long)h->n_head, (long long)h->n_head_kv);
    if (json_object_get(c, "head_dim") && !json_is_null(json_object_get(c, "head_dim"))) {
        if ((rc = cfg_int(c, "head_dim", -1, 1024, &h->head_dim, err)))
            return rc;
    } else {
        if (h->n_embd % h->n_head != 0)
            return mc_err_set(err, MC_EFORMAT, -1,
                              "config.json: hidden_size %lld is not a multiple of "
                              "num_attention_heads %lld (and there is no head_dim)",
                              (long long)h->n_embd, (long long)h->n_head);
        h->head_dim = h->n_embd / h->n_head;
    }
    if (h->head_dim % 2 != 0 || h->head_dim > 1024)
        return mc_err_set(err, MC_EFORMAT, -1,
                          "config.json: head dimension %lld must be even, <= 1024",
                          (long long)h->head_dim);
    if ((rc = cfg_num(c, "rms_norm_eps", 1e-6, &h->eps, err)) ||
        (rc = cfg_num(c, "rope_theta", 10000.0, &h->theta, err)))
        return rc;
    const json_t *tie = json_object_get(c, "tie_word_embeddings");
    if (tie && !json_is_boolean(tie) && !json_is_null(tie))
        return mc_err_set(err, MC_EFORMAT, -1,
                          "config.json: field tie_word_embeddings is not a boolean");
    h->tied = json_is_true(tie); /* LlamaConfig and Qwen2Config default to false */
    return 0;
}

/* ---- tokenizer.json -------------------------------------------------------- */

typedef struct hfvocab {
    int64_t n;
    char **text; /* owned */
    size_t *len;
    int32_t *type;
    char **merges; /* owned, "a b" */
    int64_t n_merges;
    char pre[32];
    int64_t bos, eos, pad; /* -1: none */
    int add_bos, add_eos;
} hfvocab;

static void vocab_free(hfvocab *v) {
    if (v->text)
        for (int64_t i = 0; i < v->n; i++)
            free(v->text[i]);
    if (v->merges)
        for (int64_t i = 0; i < v->n_merges; i++)
            free(v->merges[i]);
    free(v->text);
    free(v->len);
    free(v->type);
    free(v->merges);
}

static int64_t vocab_find(const hfvocab *v, const char *s) {
    size_t n = strlen(s);
    for (int64_t i = 0; i < v->n; i++)
        if (v->text[i] && v->len[i] == n && !memcmp(v->text[i], s, n))
            return i;
    return -1;
}

/* The pre-tokenizer expressions mccom implements, as Hugging Face writes them. */
static const char RE_QWEN2[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                               "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                               "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char RE_LLAMA3[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* Names accepted by --pre: the byte-level pre-tokenizers src/tok implements (tok.h). */
static const char *const PRE_NAMES[] = {"qwen2",   "llama-bpe", "llama3",         "gpt-2",
                                        "default", "starcoder", "deepseek-coder", "refact"};

/* Re-set err's message as before + message + after. */
static int prefix_err(mc_err *err, int rc, const char *before, const char *after) {
    if (!err)
        return rc;
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "%s", err->msg);
    return mc_err_set(err, rc, err->offset, "%s%s%s", before, msg, after);
}

static int is_type(const json_t *o, const char *type) {
    const char *t = json_string_value(json_object_get(o, "type"));
    return t && !strcmp(t, type);
}

/* ByteLevel's use_regex defaults to true. */
static int byte_level_regex(const json_t *o) {
    const json_t *u = json_object_get(o, "use_regex");
    return !u || json_is_true(u);
}

static int has_byte_level(const json_t *o) {
    if (!json_is_object(o))
        return 0;
    if (is_type(o, "ByteLevel"))
        return 1;
    const json_t *seq = json_object_get(o, "pretokenizers");
    if (!seq)
        seq = json_object_get(o, "decoders");
    size_t i;
    const json_t *e;
    json_array_foreach(seq, i, e) {
        if (has_byte_level(e))
            return 1;
    }
    return 0;
}

/* Recognise the pre-tokenizer; NULL if it is not one we know exactly. */
static const char *detect_pre(const json_t *pt, int64_t n_merges) {
    /* Without merges every byte is its own token whatever the words are, so the
     * pre-tokenizer cannot change the result: use the one of our trained
     * vocabularies (the byte vocabulary of tools/train/tokfile.py is such). */
    if (n_merges == 0)
        return MC_TOK_TRAIN_PRE;
    if (!json_is_object(pt))
        return NULL;
    const json_t *steps[4];
    size_t n = 0;
    if (is_type(pt, "Sequence")) {
        const json_t *seq = json_object_get(pt, "pretokenizers");
        if (!json_is_array(seq) || json_array_size(seq) > 4)
            return NULL;
        for (n = 0; n < json_array_size(seq); n++)
            steps[n] = json_array_get(seq, n);
    } else {
        steps[n++] = pt;
    }
    if (n == 2 && is_type(steps[0], "Split") && is_type(steps[1], "ByteLevel") &&
        !byte_level_regex(steps[1])) {
        const char *re =
            json_string_value(json_object_get(json_object_get(steps[0], "pattern"), "Regex"));
        const char *beh = json_string_value(json_object_get(steps[0], "behavior"));
        if (!re || !beh || strcmp(beh, "Isolated") != 0 ||
            json_is_true(json_object_get(steps[0], "invert")))
            return NULL;
        if (!strcmp(re, RE_QWEN2))
            return "qwen2";
        if (!strcmp(re, RE_LLAMA3))
            return "llama-bpe";
        return NULL;
    }
    if (n == 1 && is_type(steps[0], "ByteLevel") && byte_level_regex(steps[0]) &&
        !json_is_true(json_object_get(steps[0], "add_prefix_space")))
        return "gpt-2";
    if (n == 2 && is_type(steps[0], "Digits") &&
        json_is_true(json_object_get(steps[0], "individual_digits")) &&
        is_type(steps[1], "ByteLevel") && byte_level_regex(steps[1]) &&
        !json_is_true(json_object_get(steps[1], "add_prefix_space")))
        return "starcoder";
    return NULL;
}

/* Token text of a tokenizer_config.json entry: a string or {"content": ...}. */
static const char *special_text(const json_t *tc, const char *key) {
    const json_t *v = json_object_get(tc, key);
    if (json_is_object(v))
        v = json_object_get(v, "content");
    return json_string_value(v);
}

/* id of a special token: tokenizer_config.json's text, else config.json's id. */
static int64_t special_id(const hfvocab *v, const json_t *tc, const char *tc_key, const json_t *cfg,
                          const char *cfg_key) {
    const char *s = tc ? special_text(tc, tc_key) : NULL;
    if (s) {
        int64_t id = vocab_find(v, s);
        if (id >= 0)
            return id;
    }
    const json_t *j = json_object_get(cfg, cfg_key);
    if (json_is_array(j))
        j = json_array_get(j, 0);
    if (json_is_integer(j) && json_integer_value(j) >= 0 && json_integer_value(j) < v->n)
        return json_integer_value(j);
    return -1;
}

/* add_bos: tokenizer_config.json's add_bos_token, else whether the
 * post-processor template starts with the BOS token (Llama 3 style). */
static int want_bos(const hfvocab *v, const json_t *tc, const json_t *tj) {
    const json_t *a = tc ? json_object_get(tc, "add_bos_token") : NULL;
    if (json_is_boolean(a))
        return json_is_true(a);
    const json_t *pp = json_object_get(tj, "post_processor");
    if (is_type(pp, "Sequence")) {
        size_t i;
        const json_t *e, *found = NULL;
        const json_t *procs = json_object_get(pp, "processors");
        json_array_foreach(procs, i, e) {
            if (is_type(e, "TemplateProcessing"))
                found = e;
        }
        pp = found;
    }
    if (!pp || !is_type(pp, "TemplateProcessing") || v->bos < 0)
        return 0;
    const char *id = json_string_value(json_object_get(
        json_object_get(json_array_get(json_object_get(pp, "single"), 0), "SpecialToken"), "id"));
    return id && v->len[v->bos] == strlen(id) && !memcmp(v->text[v->bos], id, v->len[v->bos]);
}

/* Looks like a control token although not flagged special ("<|fim_prefix|>" in
 * Qwen2.5 is "special": false); llama.cpp's converter makes these CONTROL too. */
static int looks_special(const char *s) {
    size_t n = strlen(s);
    return n >= 4 && !strncmp(s, "<|", 2) && !strcmp(s + n - 2, "|>");
}

static int read_tokenizer(const char *dir, const json_t *cfg, int64_t n_vocab, const char *pre_opt,
                          hfvocab *v, mc_err *err) {
    json_t *tj = NULL, *tc = NULL;
    int rc = load_json(dir, "tokenizer.json", 1, &tj, err);
    if (rc)
        return prefix_err(err, rc, "",
                          " (or pass --vocab VOCAB.gguf to take the vocabulary from "
                          "a GGUF file)");
    if ((rc = load_json(dir, "tokenizer_config.json", 0, &tc, err)))
        goto done;
    const json_t *model = json_object_get(tj, "model");
    const char *mtype = json_string_value(json_object_get(model, "type"));
    if (!mtype || strcmp(mtype, "BPE") != 0) {
        rc = mc_err_set(err, MC_EUNSUPPORTED, -1,
                        "tokenizer.json: field model.type is '%s'; only byte-level BPE converts",
                        mtype ? mtype : "(missing)");
        goto done;
    }
    if (!has_byte_level(json_object_get(tj, "pre_tokenizer")) &&
        !has_byte_level(json_object_get(tj, "decoder"))) {
        rc = mc_err_set(err, MC_EUNSUPPORTED, -1,
                        "tokenizer.json: BPE without a ByteLevel pre-tokenizer or decoder "
                        "(SentencePiece-style BPE) is not supported");
        goto done;
    }
    const json_t *vocab = json_object_get(model, "vocab");
    const json_t *merges = json_object_get(model, "merges");
    const json_t *added = json_object_get(tj, "added_tokens");
    if (!json_is_object(vocab) || (merges && !json_is_array(merges)) ||
        (added && !json_is_array(added))) {
        rc = mc_err_set(err, MC_EFORMAT, -1,
                        "tokenizer.json: model.vocab must be an object, model.merges and "
                        "added_tokens arrays");
        goto done;
    }
    v->n = n_vocab;
    v->text = calloc((size_t)n_vocab, sizeof *v->text);
    v->len = calloc((size_t)n_vocab, sizeof *v->len);
    v->type = calloc((size_t)n_vocab, sizeof *v->type);
    if (!v->text || !v->len || !v->type) {
        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        goto done;
    }
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)vocab, key, val) {
        json_int_t id = json_is_integer(val) ? json_integer_value(val) : -1;
        if (id < 0 || id >= n_vocab) {
            rc = mc_err_set(err, MC_EFORMAT, -1,
                            "tokenizer.json: field model.vocab['%.64s'] = %lld is not an id below "
                            "vocab_size %lld (config.json)",
                            key, (long long)id, (long long)n_vocab);
            goto done;
        }
        if (v->text[id]) {
            rc = mc_err_set(err, MC_EFORMAT, -1, "tokenizer.json: id %lld is in model.vocab twice",
                            (long long)id);
            goto done;
        }
        v->text[id] = strdup(key);
        v->len[id] = strlen(key);
        v->type[id] = TT_NORMAL;
        if (!v->text[id]) {
            rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
            goto done;
        }
    }
    size_t i;
    json_array_foreach((json_t *)added, i, val) {
        const json_t *jid = json_object_get(val, "id");
        const char *content = json_string_value(json_object_get(val, "content"));
        json_int_t id = json_is_integer(jid) ? json_integer_value(jid) : -1;
        if (!content || id < 0 || id >= n_vocab) {
            rc = mc_err_set(err, MC_EFORMAT, -1,
                            "tokenizer.json: added_tokens[%zu] needs a content string and an id "
                            "below vocab_size %lld",
                            i, (long long)n_vocab);
            goto done;
        }
        free(v->text[id]);
        v->text[id] = strdup(content);
        v->len[id] = strlen(content);
        v->type[id] = json_is_true(json_object_get(val, "special")) || looks_special(content)
                          ? TT_CONTROL
                          : TT_USER_DEFINED;
        if (!v->text[id]) {
            rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
            goto done;
        }
    }
    /* ids the tokenizer does not use (the embedding is often padded): llama.cpp's names */
    for (int64_t id = 0; id < n_vocab; id++)
        if (!v->text[id]) {
            char buf[32];
            snprintf(buf, sizeof buf, "[PAD%lld]", (long long)id);
            v->text[id] = strdup(buf);
            v->len[id] = strlen(buf);
            v->type[id] = TT_UNUSED;
            if (!v->text[id]) {
                rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
                goto done;
            }
        }
    size_t nm = merges ? json_array_size(merges) : 0;
    v->merges = calloc(nm ? nm : 1, sizeof *v->merges);
    if (!v->merges) {
        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        goto done;
    }
    json_array_foreach((json_t *)merges, i, val) {
        char *m = NULL;
        if (json_is_string(val)) {
            const char *s = json_string_value(val);
            const char *sp = strchr(s, ' ');
            if (sp && sp != s && sp[1] && !strchr(sp + 1, ' '))
                m = strdup(s);
        } else if (json_is_array(val) && json_array_size(val) == 2 &&
                   json_is_string(json_array_get(val, 0)) &&
                   json_is_string(json_array_get(val, 1))) {
            const char *a = json_string_value(json_array_get(val, 0));
            const char *b = json_string_value(json_array_get(val, 1));
            size_t la = strlen(a), lb = strlen(b);
            if (la && lb && !strchr(a, ' ') && !strchr(b, ' ') && (m = malloc(la + lb + 2))) {
                memcpy(m, a, la);
                m[la] = ' ';
                memcpy(m + la + 1, b, lb + 1);
            }
        }
        if (!m) {
            rc = mc_err_set(err, MC_EFORMAT, -1,
                            "tokenizer.json: model.merges[%zu] is not \"a b\" or [\"a\", \"b\"] of "
                            "two non-empty tokens without spaces",
                            i);
            goto done;
        }
        v->merges[v->n_merges++] = m;
    }
    const char *pre =
        pre_opt ? pre_opt : detect_pre(json_object_get(tj, "pre_tokenizer"), v->n_merges);
    if (!pre) {
        rc = mc_err_set(err, MC_EUNSUPPORTED, -1,
                        "tokenizer.json: the pre_tokenizer is not one mccom recognises exactly "
                        "(qwen2, llama-bpe, gpt-2, starcoder); if you know which it is, pass "
                        "--pre NAME");
        goto done;
    }
    snprintf(v->pre, sizeof v->pre, "%s", pre);
    v->bos = special_id(v, tc, "bos_token", cfg, "bos_token_id");
    v->eos = special_id(v, tc, "eos_token", cfg, "eos_token_id");
    v->pad = special_id(v, tc, "pad_token", cfg, "pad_token_id");
    v->add_bos = want_bos(v, tc, tj);
    v->add_eos = tc && json_is_true(json_object_get(tc, "add_eos_token"));
done:
    json_decref(tj);
    json_decref(tc);
    return rc;
}

static void set_id(mc_gguf_writer *w, const char *key, int64_t id) {
    if (id >= 0)
        mc_gguf_set_u32(w, key, (uint32_t)id);
}

static void write_vocab(mc_gguf_writer *w, const hfvocab *v) {
    static const struct {
        const char *key, *names[2];
    } fim[] = {
        {"tokenizer.ggml.fim_pre_token_id", {"<|fim_prefix|>", "<fim_prefix>"}},
        {"tokenizer.ggml.fim_mid_token_id", {"<|fim_middle|>", "<fim_middle>"}},
        {"tokenizer.ggml.fim_suf_token_id", {"<|fim_suffix|>", "<fim_suffix>"}},
        {"tokenizer.ggml.fim_pad_token_id", {"<|fim_pad|>", "<fim_pad>"}},
        {"tokenizer.ggml.fim_sep_token_id", {"<|file_sep|>", "<file_sep>"}},
        {"tokenizer.ggml.fim_rep_token_id", {"<|repo_name|>", "<repo_name>"}},
    };
    mc_gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
    mc_gguf_set_str(w, "tokenizer.ggml.pre", v->pre);
    mc_gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->text, v->len,
                        (uint64_t)v->n);
    mc_gguf_set_arr(w, "tokenizer.ggml.token_type", MC_GGUF_I32, v->type, (uint64_t)v->n);
    mc_gguf_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v->merges, NULL,
                        (uint64_t)v->n_merges);
    set_id(w, "tokenizer.ggml.bos_token_id", v->bos);
    set_id(w, "tokenizer.ggml.eos_token_id", v->eos);
    set_id(w, "tokenizer.ggml.padding_token_id", v->pad);
    for (size_t i = 0; i < MC_ARRAY_LEN(fim); i++) {
        int64_t id = vocab_find(v, fim[i].names[0]);
        if (id < 0)
            id = vocab_find(v, fim[i].names[1]);
        set_id(w, fim[i].key, id);
    }
    mc_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", v->add_bos != 0);
    mc_gguf_set_bool(w, "tokenizer.ggml.add_eos_token", v->add_eos != 0);
}

/* Copy every tokenizer.* key of a GGUF vocabulary, values unchanged. */
static int copy_vocab(mc_gguf_writer *w, const char *path, int64_t n_vocab, mc_err *err) {
    mc_gguf *g = NULL;
    mc_tok *tok = NULL;
    int rc = mc_gguf_open(path, &g, err);
    if (rc)
        return rc;
    if ((rc = mc_tok_load_gguf(g, &tok, err))) {
        prefix_err(err, rc, "--vocab: ", "");
        goto done;
    }
    if (mc_tok_n_vocab(tok) != n_vocab) {
        rc = mc_err_set(err, MC_EFORMAT, -1,
                        "--vocab %s has %d tokens, the model's vocab_size is %lld", path,
                        mc_tok_n_vocab(tok), (long long)n_vocab);
        goto done;
    }
    for (int64_t i = 0; i < mc_gguf_n_kv(g) && !rc; i++) {
        mc_str k = mc_gguf_key(g, i);
        if (k.len < 10 || memcmp(k.ptr, "tokenizer.", 10) != 0)
            continue;
        char key[256];
        if (k.len >= sizeof key) {
            rc = mc_err_set(err, MC_EFORMAT, -1, "--vocab %s: key too long", path);
            break;
        }
        memcpy(key, k.ptr, k.len);
        key[k.len] = 0;
        int ty = mc_gguf_kv_type(g, i);
        uint32_t u32;
        int32_t i32;
        uint64_t u64;
        float f;
        bool b;
        mc_str s;
        switch (ty) {
        case MC_GGUF_U8:
            rc = mc_gguf_get_u32(g, key, &u32);
            if (!rc)
                rc = mc_gguf_set_u8(w, key, (uint8_t)u32);
            break;
        case MC_GGUF_U32:
            rc = mc_gguf_get_u32(g, key, &u32);
            if (!rc)
                rc = mc_gguf_set_u32(w, key, u32);
            break;
        case MC_GGUF_I32:
            rc = mc_gguf_get_i32(g, key, &i32);
            if (!rc)
                rc = mc_gguf_set_i32(w, key, i32);
            break;
        case MC_GGUF_U64:
            rc = mc_gguf_get_u64(g, key, &u64);
            if (!rc)
                rc = mc_gguf_set_u64(w, key, u64);
            break;
        case MC_GGUF_F32:
            rc = mc_gguf_get_f32(g, key, &f);
            if (!rc)
                rc = mc_gguf_set_f32(w, key, f);
            break;
        case MC_GGUF_BOOL:
            rc = mc_gguf_get_bool(g, key, &b);
            if (!rc)
                rc = mc_gguf_set_bool(w, key, b);
            break;
        case MC_GGUF_STRING:
            rc = mc_gguf_get_str(g, key, &s);
            if (!rc)
                rc = mc_gguf_set_strn(w, key, s.ptr, s.len);
            break;
        case MC_GGUF_ARRAY: {
            uint64_t n = mc_gguf_arr_n(g, i);
            if (mc_gguf_arr_type(g, i) != MC_GGUF_STRING) {
                rc = mc_gguf_set_arr(w, key, mc_gguf_arr_type(g, i), mc_gguf_arr_data(g, i), n);
                break;
            }
            const char **p = malloc((n ? n : 1) * sizeof *p);
            size_t *l = malloc((n ? n : 1) * sizeof *l);
            if (!p || !l)
                rc = MC_ENOMEM;
            for (uint64_t j = 0; !rc && j < n; j++) {
                mc_str e = mc_gguf_arr_str(g, i, j);
                p[j] = e.ptr;
                l[j] = e.len;
            }
            if (!rc)
                rc = mc_gguf_set_arr_str(w, key, p, l, n);
            free(p);
            free(l);
            break;
        }
        default:
            rc = mc_err_set(err, MC_EUNSUPPORTED, -1, "--vocab %s: key %s has type %s, not copied",
                            path, key, mc_gguf_type_name(ty));
            goto done;
        }
        if (rc)
            rc = mc_err_set(err, rc, -1, "--vocab %s: cannot copy key %s", path, key);
    }
done:
    mc_tok_free(tok);
    mc_gguf_close(g);
    return rc;
}

/* ---- tensors ------------------------------------------------------------- */

typedef struct job {
    char name[64]; /* GGUF name */
    const mc_st_tensor *src;
    int dst; /* ggml type */
    int n_dims;
    int64_t ne[2];      /* GGUF order: ne[0] = row length */
    int64_t perm_heads; /* > 0: llama rope permutation of rows, per head */
    size_t nbytes;
    uint8_t *buf; /* in the scratch mapping, or NULL: src->data is written as is */
} job;

typedef struct plan {
    job *jobs;
    int n, cap;
    uint8_t *used; /* per safetensors tensor */
    const mc_safetensors *st;
    int out_type;
} plan;

/* Source row of destination row r under the rope permutation (see the file head). */
static int64_t perm_row(int64_t r, int64_t rows, int64_t heads) {
    int64_t hd = rows / heads, h = r / hd, k = r % hd;
    return h * hd + (k % 2) * (hd / 2) + k / 2;
}

/* Add HF tensor `hf` (shape [rows, cols], or [cols] when rows == 0) as GGUF `name`. */
static int plan_add(plan *pl, const char *hf, const char *name, int64_t rows, int64_t cols,
                    int64_t perm_heads, int optional, mc_err *err) {
    const mc_st_tensor *t = mc_safetensors_find(pl->st, hf);
    if (!t) {
        if (optional)
            return 0;
        return mc_err_set(err, MC_EFORMAT, -1, "tensor '%s' is missing from the checkpoint", hf);
    }
    pl->used[t - mc_safetensors_tensor_at(pl->st, 0)] = 1;
    if (t->type != MC_TYPE_F32 && t->type != MC_TYPE_F16 && t->type != MC_TYPE_BF16)
        return mc_err_set(err, MC_EUNSUPPORTED, (int64_t)t->file_offset,
                          "tensor '%s' has dtype %s; only F32, F16 and BF16 weights convert", hf,
                          t->dtype);
    int n_dims = rows ? 2 : 1;
    if (t->n_dims != n_dims || (rows && (t->shape[0] != rows || t->shape[1] != cols)) ||
        (!rows && t->shape[0] != cols)) {
        char got[128] = "", *g = got;
        for (int d = 0; d < t->n_dims && g < got + sizeof got - 24; d++)
            g += sprintf(g, d ? ", %lld" : "%lld", (long long)t->shape[d]);
        if (rows)
            return mc_err_set(err, MC_EFORMAT, -1,
                              "tensor '%s' has shape [%s]; config.json implies [%lld, %lld]", hf,
                              got, (long long)rows, (long long)cols);
        return mc_err_set(err, MC_EFORMAT, -1,
                          "tensor '%s' has shape [%s]; config.json implies [%lld]", hf, got,
                          (long long)cols);
    }
    if (pl->n == pl->cap) {
        int cap = pl->cap ? 2 * pl->cap : 64;
        job *nj = realloc(pl->jobs, (size_t)cap * sizeof *nj);
        if (!nj)
            return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        pl->jobs = nj;
        pl->cap = cap;
    }
    job *j = &pl->jobs[pl->n++];
    memset(j, 0, sizeof *j);
    snprintf(j->name, sizeof j->name, "%s", name);
    j->src = t;
    j->n_dims = n_dims;
    j->ne[0] = cols;
    j->ne[1] = rows ? rows : 1;
    j->perm_heads = perm_heads;
    if (n_dims == 1)
        j->dst = MC_TYPE_F32;
    else if (pl->out_type >= 0)
        j->dst = pl->out_type;
    else
        j->dst = t->type == MC_TYPE_F32 ? MC_TYPE_F32 : MC_TYPE_F16;
    j->nbytes = mc_ggml_row_size(j->dst, cols) * (size_t)j->ne[1];
    return 0;
}

static int make_plan(plan *pl, const hfcfg *h, mc_err *err) {
    const int llama = !strcmp(h->arch, "llama");
    const int64_t E = h->n_embd, Q = h->n_head * h->head_dim, KV = h->n_head_kv * h->head_dim;
    const int64_t pq = llama ? h->n_head : 0, pk = llama ? h->n_head_kv : 0;
    int rc;
    if ((rc = plan_add(pl, "model.embed_tokens.weight", "token_embd.weight", h->n_vocab, E, 0, 0,
                       err)))
        return rc;
    for (int64_t l = 0; l < h->n_layer; l++) {
        char hf[128], gg[64];
#define ADD(hfname, ggname, rows, cols, perm, opt)                                                 \
    do {                                                                                           \
        snprintf(hf, sizeof hf, "model.layers.%lld." hfname, (long long)l);                        \
        snprintf(gg, sizeof gg, "blk.%lld." ggname, (long long)l);                                 \
        if ((rc = plan_add(pl, hf, gg, rows, cols, perm, opt, err)))                               \
            return rc;                                                                             \
    } while (0)
        ADD("input_layernorm.weight", "attn_norm.weight", 0, E, 0, 0);
        ADD("self_attn.q_proj.weight", "attn_q.weight", Q, E, pq, 0);
        ADD("self_attn.k_proj.weight", "attn_k.weight", KV, E, pk, 0);
        ADD("self_attn.v_proj.weight", "attn_v.weight", KV, E, 0, 0);
        /* qwen2 has q/k/v biases; a llama checkpoint may too (attention_bias) */
        ADD("self_attn.q_proj.bias", "attn_q.bias", 0, Q, pq, llama);
        ADD("self_attn.k_proj.bias", "attn_k.bias", 0, KV, pk, llama);
        ADD("self_attn.v_proj.bias", "attn_v.bias", 0, KV, 0, llama);
        ADD("self_attn.o_proj.weight", "attn_output.weight", E, Q, 0, 0);
        ADD("post_attention_layernorm.weight", "ffn_norm.weight", 0, E, 0, 0);
        ADD("mlp.gate_proj.weight", "ffn_gate.weight", h->n_ff, E, 0, 0);
        ADD("mlp.up_proj.weight", "ffn_up.weight", h->n_ff, E, 0, 0);
        ADD("mlp.down_proj.weight", "ffn_down.weight", E, h->n_ff, 0, 0);
#undef ADD
    }
    if ((rc = plan_add(pl, "model.norm.weight", "output_norm.weight", 0, E, 0, 0, err)))
        return rc;
    const mc_st_tensor *lm = mc_safetensors_find(pl->st, "lm_head.weight");
    if (h->tied) {
        if (lm) /* some checkpoints store the tied copy; it equals the embedding */
            pl->used[lm - mc_safetensors_tensor_at(pl->st, 0)] = 1;
    } else if (!lm) {
        return mc_err_set(err, MC_EFORMAT, -1,
                          "tensor 'lm_head.weight' is missing and config.json says "
                          "tie_word_embeddings is false");
    } else if ((rc = plan_add(pl, "lm_head.weight", "output.weight", h->n_vocab, E, 0, 0, err))) {
        return rc;
    }
    /* the biases must be all or nothing: the loader looks at layer 0 */
    int n_bias = 0;
    for (int i = 0; i < pl->n; i++)
        n_bias += strstr(pl->jobs[i].name, ".bias") != NULL;
    if (n_bias != 0 && n_bias != 3 * h->n_layer)
        return mc_err_set(err, MC_EFORMAT, -1,
                          "q/k/v biases are present in some layers only (%d of %lld)", n_bias,
                          (long long)(3 * h->n_layer));
    for (int64_t i = 0; i < mc_safetensors_n_tensors(pl->st); i++) {
        const mc_st_tensor *t = mc_safetensors_tensor_at(pl->st, i);
        if (pl->used[i] || strstr(t->name, "rotary_emb.inv_freq")) /* recomputed */
            continue;
        return mc_err_set(err, MC_EUNSUPPORTED, -1,
                          "tensor '%s' is not part of the %s graph mccom and llama.cpp run (an "
                          "o_proj or MLP bias, or another architecture?); refusing to drop it",
                          t->name, h->arch);
    }
    return 0;
}

/* Converted tensors live in an unlinked file beside the output: the kernel can
 * write them back instead of needing RAM for a whole model. */
typedef struct scratch {
    uint8_t *base;
    size_t size;
} scratch;

static int scratch_open(scratch *s, const char *out_path, size_t size, mc_err *err) {
    s->base = NULL;
    s->size = size;
    if (size == 0)
        return 0;
    size_t n = strlen(out_path) + 32;
    char *tmpl = malloc(n);
    if (!tmpl)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    snprintf(tmpl, n, "%s.scratch-XXXXXX", out_path);
    int fd = mkstemp(tmpl);
    if (fd < 0) {
        int rc = mc_err_set(err, MC_EIO, -1, "cannot create %s: %s", tmpl, strerror(errno));
        free(tmpl);
        return rc;
    }
    unlink(tmpl);
    int e = posix_fallocate(fd, 0, (off_t)size);
    if (e != 0) {
        close(fd);
        int rc = mc_err_set(err, MC_EIO, -1, "cannot reserve %zu bytes of scratch beside %s: %s",
                            size, out_path, strerror(e));
        free(tmpl);
        return rc;
    }
    free(tmpl);
    void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return mc_err_set(err, MC_EIO, -1, "cannot map %zu bytes of scratch: %s", size,
                          strerror(errno));
    s->base = m;
    return 0;
}

static void scratch_close(scratch *s) {
    if (s->base)
        munmap(s->base, s->size);
    s->base = NULL;
}

/* Element k of a 1-D float tensor as f32. */
static float elem_f32(const mc_st_tensor *t, int64_t k) {
    float x;
    uint16_t hv;
    if (t->type == MC_TYPE_F32) {
        memcpy(&x, (const uint8_t *)t->data + 4 * k, 4);
        return x;
    }
    memcpy(&hv, (const uint8_t *)t->data + 2 * k, 2);
    return t->type == MC_TYPE_F16 ? mc_fp16_to_fp32(hv) : mc_bf16_to_fp32(hv);
}

/* Fill j->buf: rows permuted and/or converted. row/tmp hold ne[0] values. */
static int run_job(const job *j, float *row, uint16_t *tmp, mc_err *err) {
    const mc_st_tensor *t = j->src;
    const int64_t rows = j->ne[1], cols = j->ne[0];
    if (j->n_dims == 1) { /* norms and biases: f32, a q/k bias permuted like its rows */
        for (int64_t k = 0; k < cols; k++) {
            float x = elem_f32(t, j->perm_heads ? perm_row(k, cols, j->perm_heads) : k);
            memcpy(j->buf + 4 * k, &x, 4);
        }
        return 0;
    }
    const size_t src_row = (size_t)cols * (size_t)t->elem_size;
    const size_t dst_row = mc_ggml_row_size(j->dst, cols);
    for (int64_t r = 0; r < rows; r++) {
        int64_t sr = j->perm_heads ? perm_row(r, rows, j->perm_heads) : r;
        const uint8_t *s = (const uint8_t *)t->data + (size_t)sr * src_row;
        uint8_t *d = j->buf + (size_t)r * dst_row;
        if (t->type == j->dst) {
            memcpy(d, s, dst_row);
            continue;
        }
        /* the source may be unaligned: through tmp/row */
        if (t->type == MC_TYPE_F32) {
            memcpy(row, s, src_row);
        } else {
            memcpy(tmp, s, src_row);
            if (t->type == MC_TYPE_F16)
                mc_fp16_to_fp32_row(tmp, row, cols);
            else
                mc_bf16_to_fp32_row(tmp, row, cols);
        }
        if (j->dst == MC_TYPE_F32) {
            memcpy(d, row, dst_row);
            continue;
        }
        if (j->dst == MC_TYPE_F16) {
            mc_fp32_to_fp16_row(row, tmp, cols);
            for (int64_t k = 0; k < cols; k++)
                if (isfinite(row[k]) && !isfinite(mc_fp16_to_fp32(tmp[k])))
                    return mc_err_set(err, MC_ERANGE, -1,
                                      "tensor '%s': value %g in row %lld does not fit f16; use "
                                      "--type bf16 or --type f32",
                                      t->name, (double)row[k], (long long)sr);
        } else {
            mc_fp32_to_bf16_row(row, tmp, cols);
        }
        memcpy(d, tmp, dst_row);
    }
    return 0;
}

static int ftype_of(int type) { return type == MC_TYPE_F16 ? 1 : type == MC_TYPE_BF16 ? 32 : 0; }

int mc_convert_hf(const char *dir, const char *out_path, const mc_convert_hf_params *p,
                  mc_err *err) {
    mc_err_clear(err);
    mc_convert_hf_params def = mc_convert_hf_default();
    if (!p)
        p = &def;
    if (p->out_type != -1 && p->out_type != MC_TYPE_F32 && p->out_type != MC_TYPE_F16 &&
        p->out_type != MC_TYPE_BF16)
        return mc_err_set(err, MC_EINVAL, -1,
                          "output type must be f32, f16 or bf16 (quantize with "
                          "`mccom quantize` afterwards)");
    if (p->pre) {
        size_t i = 0;
        while (i < MC_ARRAY_LEN(PRE_NAMES) && strcmp(p->pre, PRE_NAMES[i]) != 0)
            i++;
        if (i == MC_ARRAY_LEN(PRE_NAMES))
            return mc_err_set(err, MC_EINVAL, -1,
                              "--pre %s: not a pre-tokenizer mccom implements (qwen2, llama-bpe, "
                              "gpt-2, starcoder, deepseek-coder, refact)",
                              p->pre);
    }
    json_t *cfg = NULL;
    mc_safetensors *st = NULL;
    mc_gguf_writer *w = NULL;
    hfvocab voc;
    memset(&voc, 0, sizeof voc);
    plan pl;
    memset(&pl, 0, sizeof pl);
    scratch sc = {NULL, 0};
    float *row = NULL;
    uint16_t *tmp = NULL;
    hfcfg h;
    int rc = load_json(dir, "config.json", 1, &cfg, err);
    if (rc)
        goto done;
    if ((rc = parse_config(cfg, &h, err)))
        goto done;
    if ((rc = mc_safetensors_open_dir(dir, &st, err)))
        goto done;
    pl.st = st;
    pl.out_type = p->out_type;
    pl.used = calloc((size_t)mc_safetensors_n_tensors(st) + 1, 1);
    if (!pl.used) {
        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        goto done;
    }
    if ((rc = make_plan(&pl, &h, err)))
        goto done;
    w = mc_gguf_writer_new();
    if (!w) {
        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        goto done;
    }
    const char *A = h.arch;
    char key[128], name[128];
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/')
        dl--;
    const char *base = dir + dl;
    while (base > dir && base[-1] != '/')
        base--;
    snprintf(name, sizeof name, "%.*s", (int)(dir + dl - base), base);
#define SET_U32(suffix, v)                                                                         \
    do {                                                                                           \
        snprintf(key, sizeof key, "%s." suffix, A);                                                \
        mc_gguf_set_u32(w, key, (uint32_t)(v));                                                    \
    } while (0)
#define SET_F32(suffix, v)                                                                         \
    do {                                                                                           \
        snprintf(key, sizeof key, "%s." suffix, A);                                                \
        mc_gguf_set_f32(w, key, (float)(v));                                                       \
    } while (0)
    mc_gguf_set_str(w, "general.architecture", A);
    mc_gguf_set_str(w, "general.name", name);
    mc_gguf_set_u32(w, "general.file_type", (uint32_t)ftype_of(pl.jobs[0].dst));
    SET_U32("vocab_size", h.n_vocab);
    SET_U32("context_length", h.n_ctx);
    SET_U32("embedding_length", h.n_embd);
    SET_U32("feed_forward_length", h.n_ff);
    SET_U32("block_count", h.n_layer);
    SET_U32("attention.head_count", h.n_head);
    SET_U32("attention.head_count_kv", h.n_head_kv);
    SET_U32("rope.dimension_count", h.head_dim);
    if (h.head_dim * h.n_head != h.n_embd) {
        SET_U32("attention.key_length", h.head_dim);
        SET_U32("attention.value_length", h.head_dim);
    }
    SET_F32("rope.freq_base", h.theta);
    SET_F32("attention.layer_norm_rms_epsilon", h.eps);
#undef SET_U32
#undef SET_F32
    if (p->vocab_gguf)
        rc = copy_vocab(w, p->vocab_gguf, h.n_vocab, err);
    else if ((rc = read_tokenizer(dir, cfg, h.n_vocab, p->pre, &voc, err)) == 0)
        write_vocab(w, &voc);
    if (rc)
        goto done;

    /* stage the tensors that change, then write */
    size_t total = 0, max_cols = 1;
    for (int i = 0; i < pl.n; i++) {
        job *j = &pl.jobs[i];
        if (j->dst != j->src->type || j->perm_heads)
            total += (j->nbytes + 63) & ~(size_t)63;
        if ((size_t)j->ne[0] > max_cols)
            max_cols = (size_t)j->ne[0];
    }
    if ((rc = scratch_open(&sc, out_path, total, err)))
        goto done;
    row = malloc(max_cols * sizeof *row);
    tmp = malloc(max_cols * sizeof *tmp);
    if (!row || !tmp) {
        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        goto done;
    }
    size_t at = 0;
    for (int i = 0; i < pl.n; i++) {
        job *j = &pl.jobs[i];
        const void *data = j->src->data;
        if (j->dst != j->src->type || j->perm_heads) {
            j->buf = sc.base + at;
            at += (j->nbytes + 63) & ~(size_t)63;
            if ((rc = run_job(j, row, tmp, err)))
                goto done;
            data = j->buf;
        }
        rc = mc_gguf_add_tensor(w, j->name, j->dst, j->n_dims, j->ne, data, j->nbytes);
        if (rc) {
            mc_err_set(err, rc, -1, "cannot add tensor %s", j->name);
            goto done;
        }
        if (p->progress)
            p->progress(p->ud, i + 1, pl.n, j->name);
    }
    if (p->progress)
        p->progress(p->ud, pl.n, pl.n, "writing");
    rc = mc_gguf_writer_write(w, out_path, err);
done:
    scratch_close(&sc);
    free(row);
    free(tmp);
    free(pl.jobs);
    free(pl.used);
    vocab_free(&voc);
    mc_gguf_writer_free(w);
    mc_safetensors_close(st);
    json_decref(cfg);
    return rc;
}
