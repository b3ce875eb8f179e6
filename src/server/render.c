/* src/server/render.c — response bodies out: gen's results in the shapes
 * clients of other servers already parse, as JSON documents or server-sent
 * events, and error bodies.
 *
 * Where the shapes come from:
 *   - /v1/completions: OpenAI's legacy completions API. logprobs is
 *     {tokens, token_logprobs, top_logprobs, text_offset}; top_logprobs holds,
 *     per token, a {text: logprob} map of the best alternatives plus the chosen
 *     token (OpenAI: "up to logprobs+1 elements"); with echo the first prompt
 *     token has a null logprob and a null map. text_offset counts bytes from
 *     the start of the choice's text, as vLLM computes it (serving_completion:
 *     initial offset 0, then the length of each token's text). -inf logprobs
 *     become -9999.0 as in vLLM (JSON has no infinities). Streaming: one
 *     "text_completion" chunk per token, a last chunk with finish_reason and
 *     usage, then "data: [DONE]".
 *   - prompt_logprobs: vLLM's extension (vllm/logprobs.py: PromptLogprobs =
 *     list[Optional[dict[int, Logprob]]], Logprob = {logprob, rank,
 *     decoded_token}; the first entry is None): the actual token with its true
 *     vocabulary rank (1 + the tokens strictly more likely), and the best
 *     alternatives ranked by their place in the list.
 *   - /infill: llama.cpp's /completion response fields (content, stop,
 *     tokens_predicted, tokens_evaluated, tokens_cached, stopped_eos,
 *     stopped_word, stopped_limit, stopping_word, timings); a stream is
 *     {"content", "stop": false} events, then the final object (content
 *     already sent, so ""), without a [DONE] line, as llama.cpp.
 *   - /v1/verify: ours (include/mccom/server.h).
 *   - errors: OpenAI's {"error": {"message", "type", "param", "code"}}, code
 *     being the HTTP status as vLLM sends it.
 *
 * Text is bytes from the model; JSON needs UTF-8, so invalid sequences in
 * generated text become U+FFFD, and a token that is not valid UTF-8 on its
 * own is named "bytes:\\xNN..." (OpenAI's convention).
 *
 * Not here: parsing (api.c), HTTP (server.c).
 */
#include "server_internal.h"

#include "mccom/tok.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- rendering helpers ------------------------------------------------------------ */

/* A JSON string of arbitrary bytes: invalid UTF-8 becomes U+FFFD. */
static json_t *jtext(const char *s, size_t n) {
    size_t i = 0;
    /* fast path: already valid */
    char *fixed = NULL;
    size_t fl = 0;
    while (i < n) {
        unsigned char b = (unsigned char)s[i];
        size_t need = b < 0x80 ? 1 : (b >= 0xC2 && b <= 0xDF) ? 2 : (b >= 0xE0 && b <= 0xEF) ? 3
                                   : (b >= 0xF0 && b <= 0xF4) ? 4 : 0;
        bool ok = need > 0 && i + need <= n;
        for (size_t k = 1; ok && k < need; k++)
            ok = ((unsigned char)s[i + k] & 0xC0) == 0x80;
        if (ok && need == 3) {
            unsigned char b1 = (unsigned char)s[i + 1];
            ok = !(b == 0xE0 && b1 < 0xA0) && !(b == 0xED && b1 >= 0xA0);
        } else if (ok && need == 4) {
            unsigned char b1 = (unsigned char)s[i + 1];
            ok = !(b == 0xF0 && b1 < 0x90) && !(b == 0xF4 && b1 >= 0x90);
        }
        if (ok && !(need == 1 && b == 0)) {
            if (fixed) {
                memcpy(fixed + fl, s + i, need);
                fl += need;
            }
            i += need;
            continue;
        }
        if (!fixed) {
            fixed = malloc(3 * n + 1); /* each bad byte grows to 3 */
            if (!fixed)
                return NULL;
            memcpy(fixed, s, i);
            fl = i;
        }
        memcpy(fixed + fl, "\xEF\xBF\xBD", 3);
        fl += 3;
        i++;
    }
    if (!fixed)
        return json_stringn(s, n);
    json_t *j = json_stringn(fixed, fl);
    free(fixed);
    return j;
}

/* A logprob as JSON: finite, -inf as -9999.0 (vLLM's clamp). */
static json_t *jlogprob(float x) {
    double v = isfinite(x) ? (double)x : -9999.0;
    if (v < -9999.0)
        v = -9999.0;
    return json_real(v);
}

/* The bytes of one token (control tokens by their text). */
static int piece(const mc_tok *tok, int32_t id, char *buf, size_t cap) {
    int n = mc_tok_decode_piece(tok, id, MC_TOK_DECODE_SPECIAL, buf, cap);
    if (n < 0)
        return 0;
    return n > (int)cap ? (int)cap : n;
}

/* A token as a string: its text, or "bytes:\xNN..." when it is not valid
 * UTF-8 on its own (OpenAI's convention). */
static json_t *jtoken(const mc_tok *tok, int32_t id) {
    char b[512];
    int n = piece(tok, id, b, sizeof b);
    json_t *j = json_stringn(b, (size_t)n); /* NULL unless valid UTF-8 */
    if (j)
        return j;
    char hex[6 + 4 * sizeof b + 1];
    size_t k = (size_t)snprintf(hex, sizeof hex, "bytes:");
    for (int i = 0; i < n; i++)
        k += (size_t)snprintf(hex + k, sizeof hex - k, "\\x%02x", (unsigned char)b[i]);
    return json_stringn(hex, k);
}

/* Steal-reference setters that tolerate NULL (allocation failure is caught
 * at the end: json_dumps of an incomplete tree still succeeds, so a missing
 * member is checked through the `oom` flag). */
typedef struct jb {
    bool oom;
} jb;

static void put(jb *b, json_t *o, const char *k, json_t *v) {
    if (!v || json_object_set_new(o, k, v) != 0)
        b->oom = true;
}

static void add(jb *b, json_t *a, json_t *v) {
    if (!v || json_array_append_new(a, v) != 0)
        b->oom = true;
}

static char *dump(jb *b, json_t *o, size_t *len) {
    char *s = NULL;
    if (o && !b->oom)
        s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(o);
    if (s && len)
        *len = strlen(s);
    return s;
}

/* OpenAI's logprobs object over a list of tokens: prompt tokens first when
 * echoing (scored; the first has no logprob), then generated ones. */
typedef struct lp_builder {
    json_t *tokens, *lps, *tops, *offs;
    size_t offset;
} lp_builder;

static void lp_add(jb *b, lp_builder *l, const mc_tok *tok, const mc_gen_token *t, int n_top,
                   bool first_prompt) {
    char buf[512];
    add(b, l->tokens, jtoken(tok, t->id));
    add(b, l->lps, first_prompt ? json_null() : jlogprob(t->logprob));
    if (first_prompt) {
        add(b, l->tops, json_null());
    } else {
        json_t *m = json_object();
        int k = MC_MIN(n_top, t->n_top);
        /* the best alternatives, then the chosen token if it is not among them;
         * two ids with the same text share one key (the first, more likely, wins) */
        for (int j = -1; m && j < k; j++) {
            json_t *key = jtoken(tok, j < 0 ? t->id : t->top_id[j]);
            if (!key) {
                b->oom = true;
                break;
            }
            if (j >= 0 || t->rank > k || t->rank == 0)
                if (!json_object_get(m, json_string_value(key)))
                    put(b, m, json_string_value(key),
                        jlogprob(j < 0 ? t->logprob : t->top_logprob[j]));
            json_decref(key);
        }
        add(b, l->tops, m);
    }
    add(b, l->offs, json_integer((json_int_t)l->offset));
    l->offset += (size_t)piece(tok, t->id, buf, sizeof buf);
}

static json_t *lp_object(jb *b, lp_builder *l) {
    json_t *o = json_object();
    if (!o) {
        b->oom = true;
        json_decref(l->tokens);
        json_decref(l->lps);
        json_decref(l->tops);
        json_decref(l->offs);
        return NULL;
    }
    put(b, o, "tokens", l->tokens);
    put(b, o, "token_logprobs", l->lps);
    put(b, o, "top_logprobs", l->tops);
    put(b, o, "text_offset", l->offs);
    return o;
}

static void lp_init(lp_builder *l, size_t offset) {
    l->tokens = json_array();
    l->lps = json_array();
    l->tops = json_array();
    l->offs = json_array();
    l->offset = offset;
}

/* vLLM's prompt_logprobs: [null, {"<id>": {logprob, rank, decoded_token}}, ...]. */
static json_t *prompt_logprobs_json(jb *b, const mc_tok *tok, const mc_gen_token *sc, int n,
                                    int n_top) {
    json_t *a = json_array();
    if (!a) {
        b->oom = true;
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        if (i == 0) {
            add(b, a, json_null());
            continue;
        }
        json_t *m = json_object();
        for (int j = -1; m && j < MC_MIN(n_top, sc[i].n_top); j++) {
            int32_t id = j < 0 ? sc[i].id : sc[i].top_id[j];
            if (j >= 0 && id == sc[i].id)
                continue; /* the actual token keeps its true rank */
            char key[16];
            snprintf(key, sizeof key, "%d", id);
            json_t *e = json_object();
            if (!e) {
                b->oom = true;
                break;
            }
            put(b, e, "logprob", jlogprob(j < 0 ? sc[i].logprob : sc[i].top_logprob[j]));
            put(b, e, "rank", json_integer(j < 0 ? sc[i].rank : j + 1));
            put(b, e, "decoded_token", jtoken(tok, id));
            put(b, m, key, e);
        }
        add(b, a, m);
    }
    return a;
}

static const char *finish_reason(int stop) {
    switch (stop) {
    case MC_GEN_STOP:
    case MC_GEN_EOG:
    case MC_GEN_NEWLINE: return "stop";
    case MC_GEN_CANCELED: return "abort";
    default: return "length"; /* length, ctx_full */
    }
}

/* The decoded prompt for echo: the string as sent, else the ids' text. */
static char *prompt_text(const mc__srv_req *rq, const mc_tok *tok, size_t *len) {
    if (rq->prompt_text) {
        char *s = malloc(rq->prompt_text_len + 1);
        if (s) {
            memcpy(s, rq->prompt_text, rq->prompt_text_len + 1);
            *len = rq->prompt_text_len;
        }
        return s;
    }
    int flags = MC_TOK_DECODE_STRIP_PREFIX;
    int64_t n = mc_tok_decode(tok, rq->prompt, rq->n_prompt, flags, NULL, 0);
    if (n < 0)
        n = 0;
    char *s = malloc((size_t)n + 1);
    if (!s)
        return NULL;
    mc_tok_decode(tok, rq->prompt, rq->n_prompt, flags, s, (size_t)n);
    s[n] = '\0';
    *len = (size_t)n;
    return s;
}

static json_t *usage_json(jb *b, int n_prompt, int n_gen) {
    json_t *u = json_object();
    if (!u) {
        b->oom = true;
        return NULL;
    }
    put(b, u, "prompt_tokens", json_integer(n_prompt));
    put(b, u, "completion_tokens", json_integer(n_gen));
    put(b, u, "total_tokens", json_integer(n_prompt + n_gen));
    return u;
}

static json_t *completion_head(jb *b, const mc__srv_meta *meta) {
    json_t *o = json_object();
    if (!o) {
        b->oom = true;
        return NULL;
    }
    put(b, o, "id", json_string(meta->id));
    put(b, o, "object", json_string("text_completion"));
    put(b, o, "created", json_integer(meta->created));
    put(b, o, "model", json_string(meta->model));
    return o;
}

static char *render_completion(const mc__srv_req *rq, const mc__srv_meta *meta,
                               const mc__srv_out *o, const mc_tok *tok, size_t *len) {
    jb b = {0};
    json_t *root = completion_head(&b, meta);
    json_t *choice = json_object();
    size_t plen = 0;
    char *ptext = rq->echo ? prompt_text(rq, tok, &plen) : NULL;
    if (rq->echo && !ptext)
        b.oom = true;
    /* the text: the prompt (echo) then the generated text */
    char *text = malloc(plen + o->gen.text_len + 1);
    if (text) {
        if (plen)
            memcpy(text, ptext, plen);
        memcpy(text + plen, o->gen.text ? o->gen.text : "", o->gen.text_len);
        text[plen + o->gen.text_len] = '\0';
    }
    if (choice) {
        put(&b, choice, "index", json_integer(0));
        put(&b, choice, "text", text ? jtext(text, plen + o->gen.text_len) : NULL);
        if (rq->logprobs >= 0) {
            lp_builder l;
            lp_init(&l, 0);
            if (rq->echo && o->scored)
                for (int i = 0; i < o->n_scored; i++)
                    lp_add(&b, &l, tok, &o->scored[i], rq->logprobs, i == 0);
            if (rq->echo)
                l.offset = plen;
            for (int i = 0; i < o->gen.n; i++)
                lp_add(&b, &l, tok, &o->gen.toks[i], rq->logprobs, false);
            put(&b, choice, "logprobs", lp_object(&b, &l));
        } else {
            put(&b, choice, "logprobs", json_null());
        }
        put(&b, choice, "finish_reason", json_string(finish_reason(o->gen.stop)));
        if (rq->prompt_logprobs >= 0 && o->scored)
            put(&b, choice, "prompt_logprobs",
                prompt_logprobs_json(&b, tok, o->scored, o->n_scored, rq->prompt_logprobs));
    }
    json_t *choices = json_array();
    add(&b, choices, choice);
    if (root) {
        put(&b, root, "choices", choices);
        put(&b, root, "usage", usage_json(&b, rq->n_prompt, o->gen.n));
    } else {
        json_decref(choices);
    }
    free(text);
    free(ptext);
    return dump(&b, root, len);
}

/* Which stop string ended an infill (llama.cpp's stopping_word). */
static const char *stopping_word(const mc__srv_req *rq, const mc__srv_out *o, const mc_tok *tok) {
    if (o->gen.stop != MC_GEN_STOP || o->gen.n == 0)
        return "";
    int32_t *ids = malloc((size_t)o->gen.n * sizeof *ids);
    if (!ids)
        return "";
    for (int i = 0; i < o->gen.n; i++)
        ids[i] = o->gen.toks[i].id;
    int64_t n = mc_tok_decode(tok, ids, o->gen.n, 0, NULL, 0);
    char *raw = n > 0 ? malloc((size_t)n) : NULL;
    const char *w = "";
    if (raw) {
        mc_tok_decode(tok, ids, o->gen.n, 0, raw, (size_t)n);
        for (int i = 0; i < rq->n_stop && !*w; i++) {
            size_t sl = strlen(rq->stop[i]);
            if (sl && o->gen.text_len + sl <= (size_t)n &&
                memcmp(raw + o->gen.text_len, rq->stop[i], sl) == 0)
                w = rq->stop[i];
        }
    }
    free(raw);
    free(ids);
    return w;
}

static json_t *infill_object(jb *b, const mc__srv_req *rq, const mc__srv_meta *meta,
                             const mc__srv_out *o, const mc_tok *tok, bool with_content) {
    json_t *r = json_object();
    if (!r) {
        b->oom = true;
        return NULL;
    }
    const mc_gen_result *g = &o->gen;
    put(b, r, "content", with_content ? jtext(g->text ? g->text : "", g->text_len) : json_string(""));
    put(b, r, "stop", json_true());
    put(b, r, "model", json_string(meta->model));
    put(b, r, "tokens_predicted", json_integer(g->n));
    put(b, r, "tokens_evaluated", json_integer(rq->n_prompt));
    put(b, r, "tokens_cached", json_integer(g->n_reused));
    put(b, r, "stopped_eos", json_boolean(g->stop == MC_GEN_EOG));
    put(b, r, "stopped_word", json_boolean(g->stop == MC_GEN_STOP));
    put(b, r, "stopped_limit", json_boolean(g->stop == MC_GEN_LENGTH || g->stop == MC_GEN_CTX_FULL));
    const char *word = stopping_word(rq, o, tok);
    put(b, r, "stopping_word", jtext(word, strlen(word)));
    json_t *t = json_object();
    if (t) {
        int pn = g->n_computed - MC_MAX(g->n - 1, 0);
        int gn = MC_MAX(g->n - 1, 0); /* the first token comes from the prompt pass */
        put(b, t, "prompt_n", json_integer(pn));
        put(b, t, "prompt_ms", json_real(g->ms_prompt));
        put(b, t, "prompt_per_token_ms", json_real(pn > 0 ? g->ms_prompt / pn : 0.0));
        put(b, t, "prompt_per_second", json_real(g->ms_prompt > 0 ? 1e3 * pn / g->ms_prompt : 0.0));
        put(b, t, "predicted_n", json_integer(g->n));
        put(b, t, "predicted_ms", json_real(g->ms_gen));
        put(b, t, "predicted_per_token_ms", json_real(gn > 0 ? g->ms_gen / gn : 0.0));
        put(b, t, "predicted_per_second", json_real(g->ms_gen > 0 ? 1e3 * gn / g->ms_gen : 0.0));
        put(b, t, "queue_ms", json_real(meta->queue_ms));
    }
    put(b, r, "timings", t);
    return r;
}

static char *render_verify(const mc__srv_req *rq, const mc__srv_meta *meta, const mc__srv_out *o,
                           size_t *len) {
    jb b = {0};
    const mc_gen_result *g = &o->gen;
    json_t *r = json_object();
    if (!r)
        return NULL;
    put(&b, r, "object", json_string("verify"));
    put(&b, r, "model", json_string(meta->model));
    put(&b, r, "accepted", json_integer(g->n_accepted));
    put(&b, r, "n_draft", json_integer(g->n_draft));
    json_t *toks = json_array(), *lps = json_array();
    json_t *tops = rq->logprobs > 0 ? json_array() : NULL;
    for (int i = 0; i < g->n; i++) {
        add(&b, toks, json_integer(g->toks[i].id));
        add(&b, lps, jlogprob(g->toks[i].logprob));
        if (!tops)
            continue;
        json_t *alts = json_array();
        for (int j = 0; alts && j < g->toks[i].n_top; j++) {
            json_t *e = json_object();
            if (e) {
                put(&b, e, "id", json_integer(g->toks[i].top_id[j]));
                put(&b, e, "logprob", jlogprob(g->toks[i].top_logprob[j]));
            }
            add(&b, alts, e);
        }
        add(&b, tops, alts);
    }
    put(&b, r, "tokens", toks);
    put(&b, r, "token_logprobs", lps);
    if (rq->logprobs > 0)
        put(&b, r, "top_logprobs", tops);
    put(&b, r, "text", jtext(g->text ? g->text : "", g->text_len));
    put(&b, r, "finish_reason", json_string(mc_gen_stop_name(g->stop)));
    json_t *t = json_object();
    if (t) {
        put(&b, t, "queue_ms", json_real(meta->queue_ms));
        put(&b, t, "prompt_ms", json_real(g->ms_prompt));
        put(&b, t, "gen_ms", json_real(g->ms_gen));
        put(&b, t, "n_reused", json_integer(g->n_reused));
        put(&b, t, "n_computed", json_integer(g->n_computed));
        put(&b, t, "n_passes", json_integer(g->n_passes));
    }
    put(&b, r, "timings", t);
    put(&b, r, "usage", usage_json(&b, rq->n_prompt, g->n));
    return dump(&b, r, len);
}

char *mc__srv_render(const mc__srv_req *rq, const mc__srv_meta *meta, const mc__srv_out *o,
                     const mc_tok *tok, size_t *len) {
    if (rq->kind == MC__SRV_COMPLETIONS)
        return render_completion(rq, meta, o, tok, len);
    if (rq->kind == MC__SRV_VERIFY)
        return render_verify(rq, meta, o, len);
    jb b = {0};
    return dump(&b, infill_object(&b, rq, meta, o, tok, true), len);
}

/* ---- server-sent events ----------------------------------------------------------- */

/* "data: " + json + "\n\n"; frees json. */
static char *sse_wrap(char *json, size_t jl, size_t *len) {
    if (!json)
        return NULL;
    size_t n = 6 + jl + 2;
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, "data: ", 6);
        memcpy(s + 6, json, jl);
        memcpy(s + 6 + jl, "\n\n", 2);
        s[n] = '\0';
        *len = n;
    }
    free(json);
    return s;
}

/* A completion chunk: one choice with `text`, logprobs (or null), finish reason (or null). */
static char *completion_chunk(const mc__srv_meta *meta, json_t *text,
                              json_t *logprobs, const char *finish, json_t *usage, size_t *len) {
    jb b = {0};
    json_t *root = completion_head(&b, meta);
    json_t *choice = json_object();
    if (choice) {
        put(&b, choice, "index", json_integer(0));
        put(&b, choice, "text", text);
        put(&b, choice, "logprobs", logprobs ? logprobs : json_null());
        put(&b, choice, "finish_reason", finish ? json_string(finish) : json_null());
    } else {
        json_decref(text);
        json_decref(logprobs);
    }
    json_t *choices = json_array();
    add(&b, choices, choice);
    if (root) {
        put(&b, root, "choices", choices);
        if (usage)
            put(&b, root, "usage", usage);
    } else {
        json_decref(choices);
        json_decref(usage);
    }
    size_t jl = 0;
    char *j = dump(&b, root, &jl);
    return sse_wrap(j, jl, len);
}

char *mc__srv_sse_echo(const mc__srv_req *rq, const mc__srv_meta *meta, const mc__srv_out *o,
                       const mc_tok *tok, size_t *offset, size_t *len) {
    size_t plen = 0;
    char *ptext = prompt_text(rq, tok, &plen);
    if (!ptext)
        return NULL;
    *offset += plen;
    jb b = {0};
    json_t *lp = NULL;
    if (rq->logprobs >= 0 && o->scored) {
        lp_builder l;
        lp_init(&l, 0);
        for (int i = 0; i < o->n_scored; i++)
            lp_add(&b, &l, tok, &o->scored[i], rq->logprobs, i == 0);
        lp = lp_object(&b, &l);
    }
    char *s = b.oom ? NULL : completion_chunk(meta, jtext(ptext, plen), lp, NULL, NULL, len);
    if (b.oom)
        json_decref(lp);
    free(ptext);
    return s;
}

char *mc__srv_sse_token(const mc__srv_req *rq, const mc__srv_meta *meta, const mc_gen_token *t,
                        const mc_tok *tok, size_t *offset, size_t *len) {
    json_t *text = jtext(t->text ? t->text : "", t->text_len);
    if (rq->kind == MC__SRV_INFILL) {
        jb b = {0};
        json_t *r = json_object();
        if (r) {
            put(&b, r, "content", text);
            put(&b, r, "stop", json_false());
        } else {
            json_decref(text);
        }
        size_t jl = 0;
        char *j = dump(&b, r, &jl);
        return sse_wrap(j, jl, len);
    }
    json_t *lp = NULL;
    jb b = {0};
    if (rq->logprobs >= 0 && t->id >= 0) {
        lp_builder l;
        lp_init(&l, *offset);
        lp_add(&b, &l, tok, t, rq->logprobs, false);
        lp = lp_object(&b, &l);
    }
    *offset += t->text_len;
    if (b.oom) {
        json_decref(lp);
        json_decref(text);
        return NULL;
    }
    return completion_chunk(meta, text, lp, NULL, NULL, len);
}

char *mc__srv_sse_final(const mc__srv_req *rq, const mc__srv_meta *meta, const mc__srv_out *o,
                        const mc_tok *tok, size_t *len) {
    if (rq->kind == MC__SRV_INFILL) {
        /* llama.cpp ends an /infill stream with its final object, the whole
         * content already sent (content ""), and no [DONE] line */
        jb b = {0};
        size_t jl = 0;
        char *j = dump(&b, infill_object(&b, rq, meta, o, tok, false), &jl);
        return sse_wrap(j, jl, len);
    }
    jb b = {0};
    json_t *u = usage_json(&b, rq->n_prompt, o->gen.n);
    size_t cl = 0;
    char *chunk = b.oom ? NULL
                        : completion_chunk(meta, json_string(""), NULL,
                                           finish_reason(o->gen.stop), u, &cl);
    if (!chunk) {
        if (b.oom)
            json_decref(u);
        return NULL;
    }
    static const char done[] = "data: [DONE]\n\n";
    char *s = realloc(chunk, cl + sizeof done);
    if (!s) {
        free(chunk);
        return NULL;
    }
    memcpy(s + cl, done, sizeof done);
    *len = cl + sizeof done - 1;
    return s;
}

static const char *error_type(int status) {
    switch (status) {
    case 400:
    case 413: return "invalid_request_error";
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 405: return "method_not_allowed";
    case 503: return "overloaded_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

static json_t *error_object(jb *b, int status, const char *msg, const char *param) {
    json_t *root = json_object(), *e = json_object();
    if (!root || !e) {
        json_decref(root);
        json_decref(e);
        b->oom = true;
        return NULL;
    }
    put(b, e, "message", jtext(msg, strlen(msg)));
    put(b, e, "type", json_string(error_type(status)));
    put(b, e, "param", param && *param ? jtext(param, strlen(param)) : json_null());
    put(b, e, "code", json_integer(status));
    put(b, root, "error", e);
    return root;
}

char *mc__srv_error_json(int status, const char *msg, const char *param, size_t *len) {
    jb b = {0};
    return dump(&b, error_object(&b, status, msg, param), len);
}

char *mc__srv_sse_error(int status, const char *msg, size_t *len) {
    jb b = {0};
    size_t jl = 0;
    char *j = dump(&b, error_object(&b, status, msg, NULL), &jl);
    return sse_wrap(j, jl, len);
}
