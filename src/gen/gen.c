/* src/gen/gen.c — generation on one context: decisions (greedy, sampled,
 * healing-constrained), draft verification, stop rules, streaming text.
 *
 * The contract is in include/mccom/gen.h. What this file deliberately does not
 * do: build prompts, know about HTTP, or keep state between calls (the only
 * state that survives a call is the context's KV cache).
 *
 * Shape of mc_gen_run:
 *   1. reuse the cached prefix, evaluate the prompt's tail (logits of its last
 *      position) and the draft (logits at every draft position) — one or two
 *      mc_ctx_decode calls, no matter how long the draft is;
 *   2. walk the draft: accept while the model's decision equals the draft
 *      token; the first disagreement (or the end of the draft) yields the
 *      model's own token; roll the cache back to prompt + accepted;
 *   3. decode one token at a time until a stop rule, max_new or the cache ends.
 * Every decided token passes through one function (push) that applies healing,
 * text cuts, stop rules and the streaming callback, so that accepted draft
 * tokens and the model's own tokens are treated identically.
 */
#include "mccom/gen.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const stop_names[] = {
#define MC__GEN_NAME(name, str) str,
    MC_GEN_STOPS(MC__GEN_NAME)
#undef MC__GEN_NAME
};

const char *mc_gen_stop_name(int stop) {
    if (stop < 0 || stop >= (int)MC_ARRAY_LEN(stop_names))
        return "unknown";
    return stop_names[stop];
}

mc_gen_params mc_gen_params_default(void) {
    mc_gen_params p;
    memset(&p, 0, sizeof p);
    p.max_new = 64;
    return p;
}

void mc_gen_result_fini(mc_gen_result *r) {
    if (!r)
        return;
    free(r->toks);
    free(r->text);
    memset(r, 0, sizeof *r);
}

/* ---- log-softmax helpers -------------------------------------------------- */

static double log_sum_exp(const float *x, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        if (x[i] > mx)
            mx = x[i];
    if (!isfinite(mx))
        return mx;
    double s = 0.0;
    for (int i = 0; i < n; i++)
        s += exp((double)(x[i] - mx));
    return (double)mx + log(s);
}

float mc_gen_logprob(const float *logits, int n_vocab, int32_t id) {
    if (id < 0 || id >= n_vocab)
        return -INFINITY;
    return (float)((double)logits[id] - log_sum_exp(logits, n_vocab));
}

int mc_gen_rank(const float *logits, int n_vocab, int32_t id) {
    if (id < 0 || id >= n_vocab)
        return 0;
    const float x = logits[id];
    int above = 0;
    for (int i = 0; i < n_vocab; i++)
        above += logits[i] > x;
    return above + 1;
}

/* Top-k by insertion into a sorted array (k <= MC_GEN_MAX_TOP is small). */
static int top_k_ids(const float *x, int n, int k, int32_t *ids) {
    if (k > n)
        k = n;
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (m == k && !(x[i] > x[ids[m - 1]]))
            continue; /* equal logits keep the lower id already there */
        int j = m < k ? m++ : k - 1;
        while (j > 0 && x[i] > x[ids[j - 1]]) {
            ids[j] = ids[j - 1];
            j--;
        }
        ids[j] = i;
    }
    return m;
}

int mc_gen_top(const float *logits, int n_vocab, int k, int32_t *ids, float *logprobs) {
    if (k <= 0 || n_vocab <= 0)
        return 0;
    int m = top_k_ids(logits, n_vocab, k, ids);
    double lse = log_sum_exp(logits, n_vocab);
    for (int i = 0; i < m; i++)
        logprobs[i] = (float)((double)logits[ids[i]] - lse);
    return m;
}

/* ---- one generation ------------------------------------------------------- */

typedef struct gen_state {
    mc_ctx *c;
    const mc_tok *tok;
    const mc_gen_params *p;
    mc_gen_result *r;
    int n_vocab;
    int cap;                /* capacity of r->toks */
    mc_sampler samp;        /* private copy: the caller's state is not advanced */
    bool greedy;
    /* scratch, allocated once per call */
    float *row0;            /* (n_vocab) logits of the prompt's last position */
    float *masked;          /* (n_vocab) logits with disallowed tokens at -inf */
    uint8_t *mask;          /* (n_vocab) healing mask */
    void *samp_work;
    /* text: raw = every byte of every piece; the text is raw[heal_len..cut) */
    char *raw;
    size_t raw_len, raw_cap;
    size_t heal_left;       /* healing bytes not yet matched */
    size_t text_end;        /* end of the text in raw (== raw_len until a cut) */
    size_t streamed;        /* raw bytes already given to on_token */
    int n_newlines;         /* newlines seen in the text so far */
    bool ended;
    int stop;
} gen_state;

static int raw_append(gen_state *s, const char *b, size_t n) {
    if (s->raw_len + n + 1 > s->raw_cap) {
        size_t nc = s->raw_cap ? s->raw_cap * 2 : 256;
        while (nc < s->raw_len + n + 1)
            nc *= 2;
        char *nr = realloc(s->raw, nc);
        if (!nr)
            return MC_ENOMEM;
        s->raw = nr;
        s->raw_cap = nc;
    }
    memcpy(s->raw + s->raw_len, b, n);
    s->raw_len += n;
    s->raw[s->raw_len] = '\0';
    return 0;
}

/* Start of the text inside raw: the healed bytes are not part of it. */
static size_t text_begin(const gen_state *s) {
    size_t h = s->p->heal ? s->p->heal_len : 0;
    return h < s->raw_len ? h : s->raw_len;
}

/* Apply the cut rules to text grown by the last piece; sets ended/stop. */
static void apply_cuts(gen_state *s, size_t old_raw_len) {
    size_t b = text_begin(s);
    size_t from = old_raw_len > b ? old_raw_len : b;
    size_t cut = s->raw_len;
    int why = -1;
    if (s->p->stop_newline) {
        int want = s->p->n_lines > 1 ? s->p->n_lines : 1;
        for (size_t k = from; k < s->raw_len; k++) {
            if (s->raw[k] == '\n' && ++s->n_newlines == want) {
                cut = k;
                why = MC_GEN_NEWLINE;
                break;
            }
        }
    }
    for (int i = 0; i < s->p->n_stop; i++) {
        const char *st = s->p->stop[i];
        size_t sl = st ? strlen(st) : 0;
        if (sl == 0)
            continue;
        /* a stop string may straddle pieces: look back sl-1 bytes */
        size_t lo = from >= b + sl - 1 ? from - (sl - 1) : b;
        if (lo < b)
            lo = b;
        for (size_t k = lo; k + sl <= s->raw_len && k < cut; k++) {
            if (memcmp(s->raw + k, st, sl) == 0) {
                cut = k;
                why = MC_GEN_STOP;
                break;
            }
        }
    }
    if (why >= 0) {
        s->text_end = cut;
        s->ended = true;
        s->stop = why;
    } else {
        s->text_end = s->raw_len;
    }
}

/* Bytes of the text that may be streamed now: complete UTF-8 and no suffix
 * that could still become a stop string. All of it once generation ended. */
static size_t stream_limit(const gen_state *s) {
    size_t b = text_begin(s);
    size_t end = s->text_end;
    if (end < b)
        return b;
    if (s->ended)
        return end;
    /* hold back an incomplete UTF-8 sequence at the end */
    size_t k = end, back = 0;
    while (k > b && back < 4 && ((unsigned char)s->raw[k - 1] & 0xC0) == 0x80) {
        k--;
        back++;
    }
    if (k > b) {
        unsigned char lead = (unsigned char)s->raw[k - 1];
        size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
        if (lead >= 0xC0 && need > back + 1)
            end = k - 1;
    }
    /* hold back a suffix that is a proper prefix of a stop string */
    size_t hold = 0;
    for (int i = 0; i < s->p->n_stop; i++) {
        const char *st = s->p->stop[i];
        size_t sl = st ? strlen(st) : 0;
        for (size_t m = sl > 1 ? sl - 1 : 0; m > hold; m--) {
            if (m <= end - b && memcmp(s->raw + end - m, st, m) == 0) {
                hold = m;
                break;
            }
        }
    }
    return end - hold;
}

/* The decision at one position: greedy or sampled, restricted by healing. */
static int32_t decide(gen_state *s, const float *row) {
    const float *x = row;
    if (s->heal_left > 0 && s->tok) {
        const char *rem = s->p->heal + (s->p->heal_len - s->heal_left);
        int64_t n_ok = mc_tok_heal_mask(s->tok, rem, s->heal_left, s->mask);
        if (n_ok > 0) {
            for (int i = 0; i < s->n_vocab; i++)
                s->masked[i] = s->mask[i] ? row[i] : -INFINITY;
            x = s->masked;
        }
        /* n_ok == 0 (a vocabulary without byte tokens): no constraint */
    }
    if (s->greedy)
        return mc_argmax(x, s->n_vocab);
    return mc_sample(&s->samp, x, s->n_vocab, s->samp_work);
}

/* Record a decided token (row: the logits it was decided from). */
static int push(gen_state *s, int32_t id, const float *row, bool from_draft) {
    mc_gen_result *r = s->r;
    if (r->n == s->cap) {
        int nc = s->cap ? s->cap * 2 : 32;
        mc_gen_token *nt = realloc(r->toks, (size_t)nc * sizeof *nt);
        if (!nt)
            return MC_ENOMEM;
        r->toks = nt;
        s->cap = nc;
    }
    mc_gen_token *t = &r->toks[r->n++];
    memset(t, 0, sizeof *t);
    t->id = id;
    t->from_draft = from_draft;
    t->logprob = mc_gen_logprob(row, s->n_vocab, id);
    t->rank = mc_gen_rank(row, s->n_vocab, id);
    if (s->p->n_top > 0)
        t->n_top = mc_gen_top(row, s->n_vocab, s->p->n_top, t->top_id, t->top_logprob);
    if (from_draft)
        r->n_accepted++;

    if (s->tok) {
        if (mc_tok_is_eog(s->tok, id)) {
            s->ended = true;
            s->stop = MC_GEN_EOG;
        } else {
            char piece[512];
            int len = mc_tok_decode_piece(s->tok, id, 0, piece, sizeof piece);
            if (len < 0)
                return len;
            if ((size_t)len > sizeof piece)
                len = (int)sizeof piece; /* pieces are at most 256 bytes */
            size_t old = s->raw_len;
            if (raw_append(s, piece, (size_t)len) != 0)
                return MC_ENOMEM;
            if (s->heal_left > 0) {
                size_t take = (size_t)len < s->heal_left ? (size_t)len : s->heal_left;
                s->heal_left -= take;
            }
            apply_cuts(s, old);
        }
    }
    int rc = 0;
    if (s->p->on_token) {
        size_t lim = s->tok ? stream_limit(s) : 0;
        if (lim < s->streamed)
            lim = s->streamed;
        size_t b = s->tok ? text_begin(s) : 0;
        if (s->streamed < b)
            s->streamed = b;
        t->text = s->raw ? s->raw + s->streamed : "";
        t->text_len = lim > s->streamed ? lim - s->streamed : 0;
        rc = s->p->on_token(s->p->ud, t);
        s->streamed += t->text_len;
        t->text = NULL;
        t->text_len = 0;
        if (rc != 0 && !s->ended) {
            s->ended = true;
            s->stop = MC_GEN_CANCELED;
        }
    }
    if (!s->ended && s->p->max_total > 0 && r->n >= s->p->max_total) {
        s->ended = true;
        s->stop = MC_GEN_LENGTH;
    }
    return 0;
}

static bool canceled(const gen_state *s) { return s->p->cancel && *s->p->cancel; }

static int check_ids(const int32_t *ids, int n, int n_vocab, const char *what, mc_err *err) {
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= n_vocab)
            return mc_err_set(err, MC_EINVAL, -1, "%s token %d has id %d, outside the vocabulary of %d",
                              what, i, ids[i], n_vocab);
    return 0;
}

static int validate(mc_ctx *c, const mc_tok *tok, int n_prompt, const int32_t *prompt,
                    int n_draft, const int32_t *draft, const mc_gen_params *p, int n_vocab,
                    mc_err *err) {
    if (!c || !prompt || n_prompt < 1 || n_draft < 0 || (n_draft > 0 && !draft) || !p)
        return mc_err_set(err, MC_EINVAL, -1, "generation needs a context and at least one prompt token");
    if (p->max_new < 0 || p->max_total < 0 || p->n_top < 0 || p->n_top > MC_GEN_MAX_TOP ||
        p->n_lines < 0 ||
        p->n_stop < 0 || (p->n_stop > 0 && !p->stop))
        return mc_err_set(err, MC_EINVAL, -1,
                          "bad generation parameters (max_new %d, max_total %d, n_top %d of at most %d, %d stop strings)",
                          p->max_new, p->max_total, p->n_top, MC_GEN_MAX_TOP, p->n_stop);
    bool greedy = !p->sampler || p->sampler->temperature <= 0.0f;
    if (n_draft > 0 && !greedy)
        return mc_err_set(err, MC_EINVAL, -1, "draft verification needs greedy decoding (temperature 0)");
    if (!tok && (p->stop_newline || p->n_stop > 0 || (p->heal && p->heal_len > 0)))
        return mc_err_set(err, MC_EINVAL, -1, "stop rules and healing need a tokenizer");
    if (tok && mc_tok_n_vocab(tok) > n_vocab)
        return mc_err_set(err, MC_EINVAL, -1, "the tokenizer has %d tokens, the model %d",
                          (int)mc_tok_n_vocab(tok), n_vocab);
    int rc = check_ids(prompt, n_prompt, n_vocab, "prompt", err);
    if (rc == 0)
        rc = check_ids(draft, n_draft, n_vocab, "draft", err);
    if (rc == 0 && n_prompt > mc_ctx_n_ctx(c))
        rc = mc_err_set(err, MC_EFULL, -1, "the prompt has %d tokens, more than the context of %d",
                        n_prompt, mc_ctx_n_ctx(c));
    return rc;
}

int mc_gen_run(mc_ctx *c, const mc_tok *tok, const int32_t *prompt, int n_prompt,
               const int32_t *draft, int n_draft, const mc_gen_params *p, mc_gen_result *r,
               mc_err *err) {
    if (!r)
        return mc_err_set(err, MC_EINVAL, -1, "no result record");
    memset(r, 0, sizeof *r);
    mc_gen_params defaults = mc_gen_params_default();
    if (!p)
        p = &defaults;
    const int n_vocab = c ? mc_model_hparams(mc_ctx_model(c))->n_vocab : 0;
    int rc = validate(c, tok, n_prompt, prompt, n_draft, draft, p, n_vocab, err);
    if (rc != 0)
        return rc;
    const int n_ctx = mc_ctx_n_ctx(c);
    if (n_prompt + n_draft > n_ctx)
        n_draft = n_ctx - n_prompt; /* a draft never makes a request fail */

    gen_state s;
    memset(&s, 0, sizeof s);
    s.c = c;
    s.tok = tok;
    s.p = p;
    s.r = r;
    s.n_vocab = n_vocab;
    s.greedy = !p->sampler || p->sampler->temperature <= 0.0f;
    if (p->sampler)
        s.samp = *p->sampler;
    s.heal_left = p->heal ? p->heal_len : 0;
    s.row0 = malloc((size_t)n_vocab * sizeof(float));
    s.masked = malloc((size_t)n_vocab * sizeof(float));
    s.mask = malloc((size_t)n_vocab);
    s.samp_work = s.greedy ? NULL : malloc(mc_sampler_work_size(n_vocab));
    if (!s.row0 || !s.masked || !s.mask || (!s.greedy && !s.samp_work)) {
        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory for generation scratch");
        goto fail;
    }
    r->n_draft = n_draft;
    r->stop = MC_GEN_LENGTH;

    /* 1. Reuse the cache; evaluate the prompt's tail and the draft. */
    double t0 = mc_time_s();
    const int32_t *hist = mc_ctx_tokens(c);
    int n_hist = mc_ctx_n_past(c);
    int common = 0;
    while (common < n_hist && common < n_prompt && hist[common] == prompt[common])
        common++;
    int keep = MC_MIN(common, n_prompt - 1); /* the last prompt token is always run */
    mc_ctx_truncate(c, keep);
    r->n_reused = keep;
    if (canceled(&s)) {
        r->stop = MC_GEN_CANCELED;
        goto done;
    }
    /* A short tail (a cached prompt, as in every stage-2 round) goes into the
     * draft's pass: one forward pass (one read of the weights) for both. A
     * long tail runs alone with the last row's logits only, so that a cold
     * prompt does not compute logits for every position. */
    const int tail = n_prompt - keep;
    const bool joint = n_draft > 0 && tail <= 16;
    int row_base = 0; /* row of the last decode whose logits predict draft[0] */
    if (joint) {
        int32_t *seq = malloc((size_t)(tail + n_draft) * sizeof *seq);
        if (!seq) {
            rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
            goto fail;
        }
        memcpy(seq, prompt + keep, (size_t)tail * sizeof *seq);
        memcpy(seq + tail, draft, (size_t)n_draft * sizeof *seq);
        rc = mc_ctx_decode(c, seq, tail + n_draft, 1, err);
        free(seq);
        if (rc != 0)
            goto fail;
        r->n_passes++;
        r->n_computed += tail + n_draft;
        row_base = tail - 1;
        memcpy(s.row0, mc_ctx_logits(c, row_base), (size_t)n_vocab * sizeof(float));
    } else {
        rc = mc_ctx_decode(c, prompt + keep, tail, 0, err);
        if (rc != 0)
            goto fail;
        r->n_passes++;
        r->n_computed += tail;
        memcpy(s.row0, mc_ctx_logits_last(c), (size_t)n_vocab * sizeof(float));
        if (n_draft > 0) {
            rc = mc_ctx_decode(c, draft, n_draft, 1, err);
            if (rc != 0)
                goto fail;
            r->n_passes++;
            r->n_computed += n_draft;
            row_base = -1;
        }
    }
    r->ms_prompt = (mc_time_s() - t0) * 1e3;

    /* 2. Walk the draft. */
    double t1 = mc_time_s();
    const float *row = s.row0;
    int32_t last = -1; /* the newest token not yet in the cache */
    for (int i = 0; i <= n_draft && !s.ended; i++) {
        if (i > 0)
            row = mc_ctx_logits(c, row_base + i);
        int32_t g = decide(&s, row);
        if (i < n_draft && g == draft[i]) {
            rc = push(&s, g, row, true);
            if (rc != 0)
                goto fail_oom;
            continue;
        }
        if (p->max_new > 0) {
            rc = push(&s, g, row, false);
            if (rc != 0)
                goto fail_oom;
            last = g;
        }
        break;
    }
    if (n_draft > 0)
        mc_ctx_truncate(c, n_prompt + r->n_accepted);

    /* 3. The model's own tokens. */
    int n_own = last >= 0 ? 1 : 0;
    while (!s.ended && last >= 0 && n_own < p->max_new) {
        if (canceled(&s)) {
            s.ended = true;
            s.stop = MC_GEN_CANCELED;
            break;
        }
        if (mc_ctx_n_past(c) + 1 > n_ctx) {
            s.ended = true;
            s.stop = MC_GEN_CTX_FULL;
            break;
        }
        rc = mc_ctx_decode(c, &last, 1, 0, err);
        if (rc != 0)
            goto fail;
        r->n_passes++;
        r->n_computed++;
        row = mc_ctx_logits_last(c);
        int32_t g = decide(&s, row);
        rc = push(&s, g, row, false);
        if (rc != 0)
            goto fail_oom;
        last = g;
        n_own++;
    }
    r->ms_gen = (mc_time_s() - t1) * 1e3;
    if (s.ended)
        r->stop = s.stop;

done:
    /* flush what streaming held back, then the text */
    if (p->on_token && tok && r->n > 0) {
        s.ended = true;
        size_t lim = stream_limit(&s);
        if (lim > s.streamed) {
            mc_gen_token t;
            memset(&t, 0, sizeof t);
            t.id = -1; /* a flush, not a token */
            t.text = s.raw + s.streamed;
            t.text_len = lim - s.streamed;
            p->on_token(p->ud, &t);
        }
    }
    {
        size_t b = tok ? text_begin(&s) : 0;
        size_t e = s.raw ? s.text_end : 0;
        if (e < b)
            e = b;
        r->text_len = e - b;
        r->text = malloc(r->text_len + 1);
        if (!r->text) {
            rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory for the generated text");
            goto fail;
        }
        if (r->text_len)
            memcpy(r->text, s.raw + b, r->text_len);
        r->text[r->text_len] = '\0';
    }
    free(s.row0);
    free(s.masked);
    free(s.mask);
    free(s.samp_work);
    free(s.raw);
    return 0;

fail_oom:
    rc = mc_err_set(err, rc, -1, "generation: %s", mc_code_message(rc));
fail:
    free(s.row0);
    free(s.masked);
    free(s.mask);
    free(s.samp_work);
    free(s.raw);
    mc_gen_result_fini(r);
    return rc;
}

int mc_gen_score(mc_ctx *c, const int32_t *tokens, int n, int n_top, mc_gen_token *out,
                 mc_err *err) {
    if (!c || !tokens || n < 1 || !out || n_top < 0 || n_top > MC_GEN_MAX_TOP)
        return mc_err_set(err, MC_EINVAL, -1, "scoring needs a context, tokens and 0..%d alternatives",
                          MC_GEN_MAX_TOP);
    const int n_vocab = mc_model_hparams(mc_ctx_model(c))->n_vocab;
    int rc = check_ids(tokens, n, n_vocab, "scored", err);
    if (rc != 0)
        return rc;
    if (n > mc_ctx_n_ctx(c))
        return mc_err_set(err, MC_EFULL, -1, "%d tokens exceed the context of %d", n, mc_ctx_n_ctx(c));
    memset(out, 0, (size_t)n * sizeof *out);
    out[0].id = tokens[0];
    mc_ctx_truncate(c, 0);
    /* Chunks bound the logits memory (rows x n_vocab floats). */
    const int chunk = 128;
    for (int at = 0; at < n; at += chunk) {
        int m = MC_MIN(chunk, n - at);
        rc = mc_ctx_decode(c, tokens + at, m, 1, err);
        if (rc != 0)
            return rc;
        for (int i = 0; i < m; i++) {
            int pos = at + i; /* row i predicts token pos + 1 */
            if (pos + 1 >= n)
                break;
            const float *row = mc_ctx_logits(c, i);
            mc_gen_token *t = &out[pos + 1];
            t->id = tokens[pos + 1];
            t->logprob = mc_gen_logprob(row, n_vocab, t->id);
            t->rank = mc_gen_rank(row, n_vocab, t->id);
            if (n_top > 0)
                t->n_top = mc_gen_top(row, n_vocab, n_top, t->top_id, t->top_logprob);
        }
    }
    return 0;
}
