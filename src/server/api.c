/* src/server/api.c — request bodies in: parse and validate everything a
 * client sends (nesting depth, syntax, UTF-8, field names, types, ranges,
 * token ids, context limits) and tokenize it, so that the engine thread only
 * runs models and the fuzz target (fuzz/fuzz_server_json.c) reaches every
 * check without a model.
 *
 * Request shapes: /v1/completions is OpenAI's legacy completions API plus
 * vLLM's prompt_logprobs and top_k; /infill is llama.cpp's (tools/server/
 * README.md: input_prefix, input_suffix, input_extra [{filename, text}],
 * prompt after FIM_MID, n_predict, and its sampling options); /v1/verify is
 * ours (include/mccom/server.h). Defaults follow each origin: OpenAI's
 * temperature 1 and top_p 1 for completions, llama.cpp's temperature 0.8,
 * top_k 40, top_p 0.95 for infill.
 *
 * Limits: a prompt longer than the context is a 400 everywhere. max_tokens
 * beyond what the context holds is a 400 for /v1/completions and /v1/verify
 * (as vLLM and OpenAI answer); /infill cuts n_predict to what fits (as
 * llama.cpp; -1 means all of it).
 *
 * Not here: responses (render.c), HTTP and threads (server.c).
 */
#include "server_internal.h"

#include "mccom/tok.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- parse errors ------------------------------------------------------------ */

typedef struct pctx {
    const mc__srv_env *env;
    mc_err *err;
    char *param;
    size_t param_cap;
} pctx;

static int fail(pctx *c, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Report "field: message" (or just the message) and remember the field. */
static int fail(pctx *c, const char *field, const char *fmt, ...) {
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->param && c->param_cap)
        snprintf(c->param, c->param_cap, "%s", field ? field : "");
    if (field)
        return mc_err_set(c->err, MC_EINVAL, -1, "%s: %s", field, msg);
    return mc_err_set(c->err, MC_EINVAL, -1, "%s", msg);
}

static const char *type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* ---- nesting depth, before any parser sees the bytes ------------------------- */

/* Scan JSON text for its array/object nesting depth, skipping strings. Stops
 * at the first byte that goes deeper than max_depth (*at gets its offset). */
static bool depth_ok(const char *s, size_t n, int max_depth, size_t *at) {
    int depth = 0;
    bool in_str = false, esc = false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (in_str) {
            if (esc)
                esc = false;
            else if (ch == '\\')
                esc = true;
            else if (ch == '"')
                in_str = false;
            continue;
        }
        if (ch == '"') {
            in_str = true;
        } else if (ch == '[' || ch == '{') {
            if (++depth > max_depth) {
                *at = i;
                return false;
            }
        } else if ((ch == ']' || ch == '}') && depth > 0) {
            depth--;
        }
    }
    return true;
}

/* ---- field readers --------------------------------------------------------------
 * Each returns 0 (value read, or absent/null: *out untouched) or the error. */

static int get_int(pctx *c, json_t *o, const char *key, long long lo, long long hi, long long *out) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v))
        return fail(c, key, "expected an integer, got %s", type_name(v));
    long long x = json_integer_value(v);
    if (x < lo || x > hi)
        return fail(c, key, "must be between %lld and %lld, got %lld", lo, hi, x);
    *out = x;
    return 0;
}

static int get_num(pctx *c, json_t *o, const char *key, double *out) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_number(v))
        return fail(c, key, "expected a number, got %s", type_name(v));
    *out = json_number_value(v);
    return 0;
}

static int get_bool(pctx *c, json_t *o, const char *key, bool *out) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return fail(c, key, "expected true or false, got %s", type_name(v));
    *out = json_is_true(v);
    return 0;
}

static int get_str(pctx *c, json_t *o, const char *key, const char **s, size_t *n) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return fail(c, key, "expected a string, got %s", type_name(v));
    *s = json_string_value(v);
    *n = json_string_length(v);
    return 0;
}

/* Fields accepted for compatibility whose only supported value is one. */
static int get_only(pctx *c, json_t *o, const char *key, double only) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_number(v))
        return fail(c, key, "expected a number, got %s", type_name(v));
    if (json_number_value(v) != only)
        return fail(c, key, "only %g is supported", only);
    return 0;
}

static int get_stop(pctx *c, json_t *o, const char *key, mc__srv_req *r) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    json_t *one[1] = {v};
    json_t **items = one;
    size_t n = 1;
    if (json_is_array(v)) {
        n = json_array_size(v);
        if (n > MC__SRV_MAX_STOP)
            return fail(c, key, "at most %d stop strings, got %zu", MC__SRV_MAX_STOP, n);
        items = NULL;
    } else if (!json_is_string(v)) {
        return fail(c, key, "expected a string or an array of strings, got %s", type_name(v));
    }
    for (size_t i = 0; i < n; i++) {
        json_t *s = items ? items[i] : json_array_get(v, i);
        if (!json_is_string(s))
            return fail(c, key, "item %zu: expected a string, got %s", i, type_name(s));
        size_t len = json_string_length(s);
        if (len > MC__SRV_MAX_STOP_LEN)
            return fail(c, key, "item %zu: longer than %d bytes", i, MC__SRV_MAX_STOP_LEN);
        r->stop[r->n_stop] = strdup(json_string_value(s));
        if (!r->stop[r->n_stop])
            return mc_err_set(c->err, MC_ENOMEM, -1, "out of memory");
        r->n_stop++;
    }
    return 0;
}

/* ---- token arrays -------------------------------------------------------------- */

typedef struct ids {
    int32_t *v;
    int n, cap;
} ids;

static int ids_push(ids *a, const int32_t *x, int64_t n) {
    if (n <= 0)
        return 0;
    if ((int64_t)a->n + n > (1 << 28))
        return MC_ENOMEM;
    if (a->n + n > a->cap) {
        int nc = a->cap ? a->cap : 64;
        while (nc < a->n + n)
            nc *= 2;
        int32_t *nv = realloc(a->v, (size_t)nc * sizeof *nv);
        if (!nv)
            return MC_ENOMEM;
        a->v = nv;
        a->cap = nc;
    }
    memcpy(a->v + a->n, x, (size_t)n * sizeof *x);
    a->n += (int)n;
    return 0;
}

/* Tokenize text (the field `key`) and append it, within the context: the
 * ids so far plus these may be at most n_ctx + 1 (the callers' own checks
 * then say which limit applies). Bytes first: a text that needs more tokens
 * than fit, whatever the tokens, is refused untokenized; then the tokenizer
 * stops once the room is exceeded. Memory: at most room + 1 ids. */
static int ids_encode(pctx *c, ids *a, const char *key, const char *text, size_t len, int flags) {
    int64_t room = (int64_t)c->env->n_ctx + 1 - a->n;
    if (room < 0)
        room = 0;
    if (c->env->max_piece > 0 && (int64_t)(len / c->env->max_piece) > room)
        return fail(c, key, "%zu bytes: more than the context of %d tokens can hold", len,
                    c->env->n_ctx);
    int64_t cap = MC_MIN((int64_t)len + 8, room + 1), n = 0;
    int32_t *buf = malloc((size_t)(cap > 0 ? cap : 1) * sizeof *buf);
    if (!buf)
        return mc_err_set(c->err, MC_ENOMEM, -1, "out of memory");
    int rc = mc_tok_encode(c->env->tok, text, len, flags | MC_TOK_STOP_FULL, buf, cap, &n);
    if (rc == MC_EFULL) { /* a text gives at most len + 2 ids: this is the context's limit */
        free(buf);
        return fail(c, key, "more tokens than the context of %d holds", c->env->n_ctx);
    }
    if (rc == 0)
        rc = ids_push(a, buf, n);
    free(buf);
    if (rc != 0)
        return mc_err_set(c->err, rc, -1, "tokenizing: %s", mc_code_message(rc));
    return 0;
}

/* A prompt or draft: a string (tokenized with `flags`) or an array of ids. */
static int get_tokens(pctx *c, json_t *o, const char *key, int flags, ids *a, bool *present,
                      const char **text, size_t *text_len) {
    json_t *v = json_object_get(o, key);
    *present = false;
    if (!v || json_is_null(v))
        return 0;
    *present = true;
    if (json_is_string(v)) {
        if (text) {
            *text = json_string_value(v);
            *text_len = json_string_length(v);
        }
        return ids_encode(c, a, key, json_string_value(v), json_string_length(v), flags);
    }
    if (!json_is_array(v))
        return fail(c, key, "expected a string or an array of token ids, got %s", type_name(v));
    size_t n = json_array_size(v);
    if (n > (size_t)c->env->n_ctx + 1)
        return fail(c, key, "%zu tokens, more than the context of %d", n, c->env->n_ctx);
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_array_get(v, i);
        if (!json_is_integer(x)) {
            if (json_is_string(x) || json_is_array(x))
                return fail(c, key, "one prompt per request (a string or an array of token ids)");
            return fail(c, key, "item %zu: expected a token id, got %s", i, type_name(x));
        }
        long long id = json_integer_value(x);
        if (id < 0 || id >= c->env->n_vocab)
            return fail(c, key, "item %zu: token id %lld is outside the vocabulary (0..%d)", i, id,
                        c->env->n_vocab - 1);
        int32_t t = (int32_t)id;
        if (ids_push(a, &t, 1) != 0)
            return mc_err_set(c->err, MC_ENOMEM, -1, "out of memory");
    }
    return 0;
}

/* ---- the three request kinds ------------------------------------------------------ */

static const char *const completion_fields[] = {
    "prompt", "max_tokens", "temperature", "top_k", "top_p", "seed", "stop", "logprobs", "echo",
    "stream", "prompt_logprobs", "model", "user", "n", "best_of", "frequency_penalty",
    "presence_penalty", NULL};
static const char *const infill_fields[] = {
    "input_prefix", "input_suffix", "input_extra", "prompt", "n_predict", "temperature", "top_k",
    "top_p", "seed", "stop", "stream", "model", NULL};
static const char *const verify_fields[] = {
    "prompt", "draft", "max_tokens", "stop", "stop_at_newline", "n_lines", "heal", "logprobs", "model", NULL};

static int check_fields(pctx *c, json_t *o, const char *const *allowed) {
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        bool ok = false;
        for (int i = 0; allowed[i] && !ok; i++)
            ok = strcmp(key, allowed[i]) == 0;
        if (!ok) {
            /* keys may hold anything; show a bounded, printable form */
            char shown[64];
            size_t k = 0;
            for (const char *p = key; *p && k + 1 < sizeof shown; p++)
                shown[k++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
            shown[k] = '\0';
            return fail(c, shown, "unknown field");
        }
    }
    (void)v;
    return 0;
}

/* Sampling fields shared by completions and infill. */
static int get_sampling(pctx *c, json_t *o, mc__srv_req *r) {
    double temp = r->temperature, top_p = r->top_p;
    long long top_k = r->top_k, seed = 0;
    int rc = get_num(c, o, "temperature", &temp);
    if (rc == 0 && !(temp >= 0.0 && temp <= 1e6))
        rc = fail(c, "temperature", "must be >= 0, got %g", temp);
    if (rc == 0)
        rc = get_num(c, o, "top_p", &top_p);
    if (rc == 0 && !(top_p > 0.0 && top_p <= 1.0))
        rc = fail(c, "top_p", "must be in (0, 1], got %g", top_p);
    if (rc == 0)
        rc = get_int(c, o, "top_k", -1, 1 << 30, &top_k);
    if (rc == 0) {
        json_t *sv = json_object_get(o, "seed");
        rc = get_int(c, o, "seed", INT64_MIN, INT64_MAX, &seed);
        if (rc == 0 && sv && !json_is_null(sv)) {
            r->seeded = true;
            r->seed = (uint64_t)seed;
        }
    }
    if (rc == 0)
        rc = get_stop(c, o, "stop", r);
    r->temperature = (float)temp;
    r->top_p = (float)top_p;
    r->top_k = top_k < 0 ? 0 : (int)top_k;
    return rc;
}

static int need_prompt(pctx *c, const mc__srv_req *r, bool present, const char *field) {
    if (!present)
        return fail(c, field, "required");
    if (r->n_prompt < 1)
        return fail(c, field, "empty: at least one token is needed");
    if (r->n_prompt > c->env->n_ctx)
        return fail(c, field, "%d tokens, more than the context of %d", r->n_prompt, c->env->n_ctx);
    return 0;
}

static int parse_completions(pctx *c, json_t *o, mc__srv_req *r) {
    ids p = {0};
    bool present = false;
    const char *text = NULL;
    size_t text_len = 0;
    int rc = check_fields(c, o, completion_fields);
    if (rc == 0)
        rc = get_tokens(c, o, "prompt", MC_TOK_ADD_BOS | MC_TOK_PARSE_SPECIAL, &p, &present, &text,
                        &text_len);
    r->prompt = p.v;
    r->n_prompt = p.n;
    if (rc == 0)
        rc = need_prompt(c, r, present, "prompt");
    if (rc == 0 && text) {
        r->prompt_text = malloc(text_len + 1);
        if (!r->prompt_text)
            return mc_err_set(c->err, MC_ENOMEM, -1, "out of memory");
        memcpy(r->prompt_text, text, text_len);
        r->prompt_text[text_len] = '\0';
        r->prompt_text_len = text_len;
    }
    long long max_tokens = 16, logprobs = -1, prompt_logprobs = -1;
    r->temperature = 1.0f; /* OpenAI's defaults */
    r->top_p = 1.0f;
    r->top_k = 0;
    if (rc == 0)
        rc = get_int(c, o, "max_tokens", 0, 1 << 30, &max_tokens);
    if (rc == 0)
        rc = get_sampling(c, o, r);
    if (rc == 0)
        rc = get_int(c, o, "logprobs", 0, MC_GEN_MAX_TOP, &logprobs);
    if (rc == 0)
        rc = get_int(c, o, "prompt_logprobs", 0, MC_GEN_MAX_TOP, &prompt_logprobs);
    if (rc == 0)
        rc = get_bool(c, o, "echo", &r->echo);
    if (rc == 0)
        rc = get_bool(c, o, "stream", &r->stream);
    const char *s;
    size_t sl;
    if (rc == 0)
        rc = get_str(c, o, "model", &s, &sl);
    if (rc == 0)
        rc = get_str(c, o, "user", &s, &sl);
    if (rc == 0)
        rc = get_only(c, o, "n", 1);
    if (rc == 0)
        rc = get_only(c, o, "best_of", 1);
    if (rc == 0)
        rc = get_only(c, o, "frequency_penalty", 0);
    if (rc == 0)
        rc = get_only(c, o, "presence_penalty", 0);
    if (rc != 0)
        return rc;
    /* As vLLM and OpenAI: a request that cannot fit is refused, not cut. */
    if ((long long)r->n_prompt + max_tokens > c->env->n_ctx)
        return fail(c, "max_tokens",
                    "the context holds %d tokens; the prompt has %d and max_tokens asks for %lld more",
                    c->env->n_ctx, r->n_prompt, max_tokens);
    r->max_tokens = (int)max_tokens;
    r->logprobs = (int)logprobs;
    r->prompt_logprobs = (int)prompt_logprobs;
    return 0;
}

static int parse_infill(pctx *c, json_t *o, mc__srv_req *r) {
    int rc = check_fields(c, o, infill_fields);
    if (rc != 0)
        return rc;
    const mc_tok *tok = c->env->tok;
    int32_t pre = mc_tok_special(tok, MC_TOK_FIM_PRE), suf = mc_tok_special(tok, MC_TOK_FIM_SUF);
    int32_t mid = mc_tok_special(tok, MC_TOK_FIM_MID), sep = mc_tok_special(tok, MC_TOK_FIM_SEP);
    if (pre < 0 || suf < 0 || mid < 0)
        return fail(c, NULL, "this model's vocabulary has no fill-in-the-middle tokens "
                             "(FIM prefix, suffix and middle); /infill needs them");
    const char *prefix = "", *suffix = "", *after = "";
    size_t prefix_len = 0, suffix_len = 0, after_len = 0;
    rc = get_str(c, o, "input_prefix", &prefix, &prefix_len);
    if (rc == 0)
        rc = get_str(c, o, "input_suffix", &suffix, &suffix_len);
    if (rc == 0)
        rc = get_str(c, o, "prompt", &after, &after_len);
    json_t *extra = json_object_get(o, "input_extra");
    if (rc == 0 && extra && !json_is_null(extra) && !json_is_array(extra))
        rc = fail(c, "input_extra", "expected an array of {\"filename\", \"text\"}, got %s",
                  type_name(extra));
    if (rc != 0)
        return rc;

    /* Text pieces are tokenized without special-token parsing (code may
     * contain "<|endoftext|>"); the FIM tokens are inserted by id. */
    ids p = {0};
    int32_t bos = mc_tok_bos(tok);
    if (mc_tok_add_bos(tok) && bos >= 0)
        rc = ids_push(&p, &bos, 1);
    for (size_t i = 0; rc == 0 && extra && i < json_array_size(extra); i++) {
        json_t *ch = json_array_get(extra, i);
        char field[48];
        snprintf(field, sizeof field, "input_extra[%zu]", i);
        if (!json_is_object(ch)) {
            rc = fail(c, field, "expected an object {\"filename\", \"text\"}, got %s", type_name(ch));
            break;
        }
        const char *key;
        json_t *v;
        json_object_foreach(ch, key, v) {
            if (strcmp(key, "filename") != 0 && strcmp(key, "text") != 0) {
                rc = fail(c, field, "unknown field (only \"filename\" and \"text\")");
                break;
            }
            if (!json_is_string(v)) {
                rc = fail(c, field, "%s: expected a string, got %s",
                          strcmp(key, "text") == 0 ? "text" : "filename", type_name(v));
                break;
            }
        }
        if (rc != 0)
            break;
        json_t *fn = json_object_get(ch, "filename"), *tx = json_object_get(ch, "text");
        if (sep >= 0) {
            /* <|file_sep|>FILENAME\nTEXT (Qwen2.5-Coder's repository format) */
            rc = ids_push(&p, &sep, 1);
            if (rc == 0 && fn) {
                rc = ids_encode(c, &p, field, json_string_value(fn), json_string_length(fn), 0);
                if (rc == 0)
                    rc = ids_encode(c, &p, field, "\n", 1, 0);
            }
        }
        /* without a file separator token the text is prefixed as it is (llama.cpp) */
        if (rc == 0 && tx)
            rc = ids_encode(c, &p, field, json_string_value(tx), json_string_length(tx), 0);
    }
    if (rc == 0)
        rc = ids_push(&p, &pre, 1);
    if (rc == 0)
        rc = ids_encode(c, &p, "input_prefix", prefix, prefix_len, 0);
    if (rc == 0)
        rc = ids_push(&p, &suf, 1);
    if (rc == 0)
        rc = ids_encode(c, &p, "input_suffix", suffix, suffix_len, 0);
    if (rc == 0)
        rc = ids_push(&p, &mid, 1);
    if (rc == 0)
        rc = ids_encode(c, &p, "prompt", after, after_len, 0);
    r->prompt = p.v;
    r->n_prompt = p.n;
    if (rc == MC_ENOMEM)
        return mc_err_set(c->err, MC_ENOMEM, -1, "out of memory");
    if (rc != 0)
        return rc;
    if (r->n_prompt > c->env->n_ctx)
        return fail(c, "input_prefix", "the infill prompt has %d tokens, more than the context of %d",
                    r->n_prompt, c->env->n_ctx);

    long long n_predict = -1;
    r->temperature = 0.8f; /* llama.cpp's defaults */
    r->top_k = 40;
    r->top_p = 0.95f;
    rc = get_int(c, o, "n_predict", -1, 1 << 30, &n_predict);
    if (rc == 0)
        rc = get_sampling(c, o, r);
    if (rc == 0)
        rc = get_bool(c, o, "stream", &r->stream);
    const char *s;
    size_t sl;
    if (rc == 0)
        rc = get_str(c, o, "model", &s, &sl);
    if (rc != 0)
        return rc;
    /* As llama.cpp: n_predict is cut to what the context holds (-1: all of it).
     * The last token needs no cache entry, hence the + 1. */
    long long room = (long long)c->env->n_ctx - r->n_prompt + 1;
    if (n_predict < 0 || n_predict > room)
        n_predict = room;
    r->max_tokens = (int)n_predict;
    r->logprobs = -1;
    r->prompt_logprobs = -1;
    return 0;
}

static int parse_verify(pctx *c, json_t *o, mc__srv_req *r) {
    ids p = {0}, d = {0};
    bool present = false, dpresent = false;
    int rc = check_fields(c, o, verify_fields);
    if (rc == 0)
        rc = get_tokens(c, o, "prompt", MC_TOK_ADD_BOS | MC_TOK_PARSE_SPECIAL, &p, &present, NULL,
                        NULL);
    r->prompt = p.v;
    r->n_prompt = p.n;
    if (rc == 0)
        rc = need_prompt(c, r, present, "prompt");
    if (rc == 0)
        rc = get_tokens(c, o, "draft", 0, &d, &dpresent, NULL, NULL);
    r->draft = d.v;
    r->n_draft = d.n;
    long long max_tokens = 16, logprobs = 0;
    if (rc == 0)
        rc = get_int(c, o, "max_tokens", 0, 1 << 30, &max_tokens);
    if (rc == 0)
        rc = get_stop(c, o, "stop", r);
    if (rc == 0)
        rc = get_bool(c, o, "stop_at_newline", &r->stop_newline);
    long long n_lines = 1;
    if (rc == 0)
        rc = get_int(c, o, "n_lines", 1, 1024, &n_lines);
    r->n_lines = (int)n_lines;
    const char *heal = NULL, *s;
    size_t heal_len = 0, sl;
    if (rc == 0)
        rc = get_str(c, o, "heal", &heal, &heal_len);
    if (rc == 0)
        rc = get_int(c, o, "logprobs", 0, MC_GEN_MAX_TOP, &logprobs);
    if (rc == 0)
        rc = get_str(c, o, "model", &s, &sl);
    if (rc != 0)
        return rc;
    if ((long long)r->n_prompt + max_tokens > c->env->n_ctx)
        return fail(c, "max_tokens",
                    "the context holds %d tokens; the prompt has %d and max_tokens asks for %lld more",
                    c->env->n_ctx, r->n_prompt, max_tokens);
    if (heal && heal_len > 0) {
        r->heal = malloc(heal_len + 1);
        if (!r->heal)
            return mc_err_set(c->err, MC_ENOMEM, -1, "out of memory");
        memcpy(r->heal, heal, heal_len);
        r->heal[heal_len] = '\0';
        r->heal_len = heal_len;
    }
    r->max_tokens = (int)max_tokens;
    r->logprobs = (int)logprobs;
    r->prompt_logprobs = -1;
    r->temperature = 0.0f; /* verification is greedy */
    r->top_p = 1.0f;
    return 0;
}

void mc__srv_req_fini(mc__srv_req *r) {
    if (!r)
        return;
    free(r->prompt);
    free(r->draft);
    free(r->prompt_text);
    free(r->heal);
    for (int i = 0; i < r->n_stop; i++)
        free(r->stop[i]);
    memset(r, 0, sizeof *r);
}

int mc__srv_parse(int kind, const char *body, size_t len, const mc__srv_env *env,
                  mc__srv_req *out, char *param, size_t param_cap, mc_err *err) {
    pctx c = {env, err, param, param_cap};
    memset(out, 0, sizeof *out);
    if (param && param_cap)
        param[0] = '\0';
    mc_err_clear(err);
    if (!env || !env->tok || kind < MC__SRV_COMPLETIONS || kind > MC__SRV_VERIFY)
        return mc_err_set(err, MC_EINVAL, -1, "bad parser arguments");
    size_t at = 0;
    if (!depth_ok(body, len, env->max_json_depth, &at))
        return mc_err_set(err, MC_EINVAL, (int64_t)at,
                          "JSON nested deeper than %d levels at byte %zu", env->max_json_depth, at);
    json_error_t je;
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        return mc_err_set(err, MC_EINVAL, je.position, "invalid JSON at byte %d: %s", je.position,
                          je.text);
    int rc;
    if (!json_is_object(o)) {
        rc = fail(&c, NULL, "the request body must be a JSON object, got %s", type_name(o));
    } else {
        out->kind = kind;
        if (kind == MC__SRV_COMPLETIONS)
            rc = parse_completions(&c, o, out);
        else if (kind == MC__SRV_INFILL)
            rc = parse_infill(&c, o, out);
        else
            rc = parse_verify(&c, o, out);
    }
    json_decref(o);
    if (rc != 0)
        mc__srv_req_fini(out);
    return rc;
}

