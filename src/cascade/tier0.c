/* src/cascade/tier0.c — the copy tier inside the cascade: proposals for a
 * request, the SLM's scores of the candidates, and the pick rule between
 * them and the SLM's own line.
 *
 * Scoring evaluates, per candidate, the prompt's last token followed by the
 * candidate's tokens (the healed bytes, its text and the line end) in one
 * batched forward pass on the SLM's context, whose KV cache already holds the
 * prompt: a candidate costs about one decode step of its length, never the
 * prompt again. (One pass per candidate: the engine's KV cache is linear, so
 * candidates cannot share a pass without a tree attention mask.)
 *
 * Nothing here runs the large model or decides routing (cascade.c). */
#include "cascade_internal.h"

#include "mccom/gen.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mc__copy_propose(mc_cascade *c, const mc_cascade_doc *d, int k, mc_copy_result *out,
                     double *ms, mc_err *err) {
    memset(out, 0, sizeof *out);
    *ms = 0;
    if (!c->p.copy || !c->cx)
        return 0;
    double t0 = mc_time_s();
    mc_err e2;
    int rc = mc_copy_synced(c->cx) ? 0 : mc_copy_sync(c->cx, NULL, &e2);
    if (rc == 0) {
        mc_copy_query q = {d->path, d->text, d->len, d->cursor, d->line, d->n_lines};
        mc_copy_params cp = mc_copy_params_default();
        cp.k = k;
        cp.use_below = c->p.copy_below;
        rc = mc_copy_propose(c->cx, &q, &cp, out, &e2);
    }
    *ms = (mc_time_s() - t0) * 1e3;
    /* the tier is optional: only running out of memory ends the request */
    if (rc == MC_ENOMEM)
        return mc_err_set(err, rc, -1, "%s", e2.msg);
    return 0;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d)
        memcpy(d, s, n + 1);
    return d;
}

int mc__copy_take(mc_suggestion *out, const mc_copy_cand *cc, bool shown) {
    if (shown) {
        free(out->text);
        out->text = dup_str(cc->text);
        out->len = cc->len;
        out->source = MC_SRC_COPY;
        out->copy_precision = cc->precision;
        out->copy_context = cc->context;
        snprintf(out->copy_file, sizeof out->copy_file, "%s", cc->file);
        out->copy_line = cc->line;
        if (!out->text)
            return MC_ENOMEM;
    }
    if (!out->copy_top) {
        out->copy_top = dup_str(cc->text);
        if (!out->copy_top)
            return MC_ENOMEM;
    }
    return 0;
}

/* The SLM's log-probabilities of `text` (what follows the cursor) as the
 * continuation of prompt `pr`: its tokens are those of the healed bytes, the
 * text and a line end. *mean_lp gets the mean per token, *conf the mean p of
 * the first n_conf tokens. MC_EFULL when the context cannot hold them. */
static int score_line(mc_cascade *c, const mc__prompt *pr, const char *text, size_t len,
                      int n_lines, double *mean_lp, float *conf, mc_err *err) {
    size_t n = pr->heal_len + len + 1;
    char *s = malloc(n + 1);
    int cap = c->p.max_line_tokens * (n_lines > 1 ? n_lines : 1) + 2;
    int32_t *ids = malloc((size_t)(cap + 1) * sizeof *ids);
    if (!s || !ids) {
        free(s);
        free(ids);
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    }
    memcpy(s, pr->heal, pr->heal_len);
    memcpy(s + pr->heal_len, text, len);
    s[n - 1] = '\n';
    int64_t n_ids = 0;
    int rc = mc_tok_encode(c->tok, s, n, 0, ids + 1, cap, &n_ids);
    free(s);
    if (rc == MC_EFULL) { /* longer than a line may be: score its first cap tokens */
        rc = 0;
        n_ids = cap;
    }
    if (rc != 0 || n_ids <= 0) {
        free(ids);
        return rc ? mc_err_set(err, rc, -1, "tokenizing a copy candidate failed") : MC_EFULL;
    }
    /* the cache holds the prompt (and the SLM's line): keep all but the
     * prompt's last token, which is evaluated again to predict the first
     * candidate token */
    mc_ctx *x = c->slm_ctx;
    int keep = pr->n - 1;
    if (mc_ctx_n_past(x) >= keep && !memcmp(mc_ctx_tokens(x), pr->ids, (size_t)keep * sizeof *ids)) {
        mc_ctx_truncate(x, keep);
    } else {
        int reused;
        rc = keep > 0 ? mc_ctx_set_prompt(x, pr->ids, keep, &reused, err) : 0;
        if (keep == 0)
            mc_ctx_truncate(x, 0);
        if (rc != 0) {
            free(ids);
            return rc;
        }
    }
    ids[0] = pr->ids[pr->n - 1];
    int m = (int)n_ids;
    rc = mc_ctx_decode(x, ids, m + 1, 1, err);
    if (rc != 0) {
        free(ids);
        return rc;
    }
    const int n_vocab = mc_model_hparams(mc_ctx_model(x))->n_vocab;
    double sum = 0, psum = 0;
    int n_conf = MC_MIN(c->p.n_conf, m);
    for (int i = 0; i < m; i++) {
        double lp = mc_gen_logprob(mc_ctx_logits(x, i), n_vocab, ids[i + 1]);
        sum += lp;
        if (i < n_conf)
            psum += exp(lp);
    }
    free(ids);
    *mean_lp = sum / m;
    *conf = n_conf > 0 ? (float)(psum / n_conf) : 0.0f;
    return 0;
}

int mc__copy_pick(mc_cascade *c, const mc__prompt *pr, const mc_gen_result *g,
                  const mc_copy_result *cr, int n_lines, mc_suggestion *out, mc_err *err) {
    int k = MC_MIN(cr->n, c->p.copy_k);
    if (k <= 0)
        return 0;
    double t0 = mc_time_s();
    double lp[16];
    float conf[16];
    bool ok[16];
    double g_lp = 0;
    for (int i = 0; i < g->n; i++)
        g_lp += g->toks[i].logprob;
    g_lp = g->n > 0 ? g_lp / g->n : -1e9;
    for (int i = 0; i < k; i++) {
        mc_err e2;
        int rc = score_line(c, pr, cr->c[i].text, cr->c[i].len, n_lines, &lp[i], &conf[i], &e2);
        ok[i] = rc == 0;
        if (rc == MC_ENOMEM)
            return mc_err_set(err, rc, -1, "%s", e2.msg);
        out->st.copy_scored += ok[i];
    }
    /* the pick rule: with copy_w = 0 the copy order stands (its first
     * candidate); otherwise the SLM's relative preference re-ranks them */
    int best = -1;
    double best_s = -INFINITY;
    for (int i = 0; i < k; i++) {
        if (!ok[i])
            continue;
        double p = MC_MIN(MC_MAX((double)cr->c[i].precision, 1e-6), 1 - 1e-6);
        double sc = log(p / (1 - p)) + c->p.copy_w * (lp[i] - g_lp);
        if (best < 0 || (c->p.copy_w > 0 && sc > best_s)) {
            best = i;
            best_s = sc;
        }
    }
    int rc = 0;
    bool take = best >= 0 && best_s >= c->p.copy_theta;
    /* the stage-1 draft of a later escalation: the most likely line that is
     * not the one shown (by the SLM's mean log-probability per token) */
    int draft = -1; /* -1: the SLM's own line */
    double draft_lp = take ? g_lp : -INFINITY;
    for (int i = 0; i < k; i++)
        if (ok[i] && i != (take ? best : -1) && lp[i] > draft_lp) {
            draft = i;
            draft_lp = lp[i];
        }
    if (draft >= 0 && !(out->draft_text = dup_str(cr->c[draft].text)))
        rc = MC_ENOMEM;
    if (rc == 0)
        rc = mc__copy_take(out, &cr->c[take ? best : 0], take);
    if (rc == 0 && take)
        out->confidence = conf[best];
    out->st.ms_copy += (mc_time_s() - t0) * 1e3;
    return rc ? mc_err_set(err, rc, -1, "out of memory") : 0;
}
