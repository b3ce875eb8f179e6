/* src/cascade/cascade.c — the request path: the small model's line with
 * confidence routing, escalation with iterative retrieval and two-stage
 * speculative decoding, and the large-model-only baselines.
 *
 * The contract is in include/mccom/cascade.h; the session state machine is in
 * session.c, prompts in prompt.c. This file never sleeps, retries or touches
 * the network itself: the LLM tier (llm.h) does. */
#include "cascade_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const path_names[] = {"slm", "confidence", "rejection", "llm", "copy"};

const char *mc_cascade_path_name(int path) {
    if (path < 0 || path >= (int)MC_ARRAY_LEN(path_names))
        return "unknown";
    return path_names[path];
}

mc_cascade_params mc_cascade_params_default(void) {
    mc_cascade_params p;
    memset(&p, 0, sizeof p);
    p.tau = 0.5f;
    p.n_conf = 3;
    p.routing = true;
    p.speculative = true;
    p.iterative = true;
    p.retrieval = true;
    p.draft_k = 4;
    p.max_line_tokens = 48;
    p.retr_tokens = 1000;
    p.retr_k = 10;
    p.retr_query_lines = 20;
    p.sim = MC_RETR_JACCARD;
    p.heal = true;
    p.copy = true;
    p.tau_copy = 0.5f;
    p.copy_k = 4;
    p.copy_w = 0.0f;
    p.copy_theta = -1e9f;
    p.copy_below = true;
    p.lookup_min = 2;
    p.llm_budget_ms = 10000;
    return p;
}

static int check_params(const mc_cascade_params *p, mc_err *err) {
    if (!(p->tau >= 0.0f && p->tau <= 1.0f) || p->n_conf < 1 || p->draft_k < 1 ||
        p->draft_k > 64 || p->max_line_tokens < 1 || p->max_line_tokens > 1024 ||
        p->slm_prompt_tokens < 0 || p->llm_prompt_tokens < 0 || p->retr_tokens < 0 ||
        p->retr_k < 1 || p->retr_query_lines < 1 || p->llm_budget_ms < 0 ||
        (p->sim != MC_RETR_JACCARD && p->sim != MC_RETR_BM25) || !(p->tau_copy >= 0.0f) ||
        p->copy_k < 1 || p->copy_k > 16 || !(p->copy_w >= 0.0f) || p->copy_theta != p->copy_theta ||
        p->lookup_min < 1 || p->lookup_min > 4)
        return mc_err_set(err, MC_EINVAL, -1,
                          "bad cascade parameters (tau %g in [0,1], n_conf %d >= 1, draft_k %d in 1..64, "
                          "max_line_tokens %d in 1..1024, budgets >= 0, retr_k %d >= 1, tau_copy >= 0, "
                          "copy_k %d in 1..16, copy_w >= 0)",
                          (double)p->tau, p->n_conf, p->draft_k, p->max_line_tokens, p->retr_k,
                          p->copy_k);
    return 0;
}

void mc_suggestion_fini(mc_suggestion *s) {
    if (!s)
        return;
    free(s->text);
    free(s->slm_ids);
    free(s->slm_text);
    free(s->draft_text);
    free(s->copy_top);
    memset(s, 0, sizeof *s);
}

int mc_cascade_new(const mc_cascade_params *p, mc_model *slm, const mc_tok *tok, mc_llm *llm,
                   mc_retr_index *ix, const mc_ctx_params *slm_ctx, mc_cascade **out,
                   mc_err *err) {
    *out = NULL;
    mc_cascade_params dp = mc_cascade_params_default();
    if (!p)
        p = &dp;
    if (!slm || !tok)
        return mc_err_set(err, MC_EINVAL, -1, "the cascade needs a small model and its tokenizer");
    int rc = check_params(p, err);
    if (rc != 0)
        return rc;
    mc_cascade *c = calloc(1, sizeof *c);
    if (!c)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    mc_ctx_params cp = slm_ctx ? *slm_ctx : mc_ctx_params_default();
    rc = mc_ctx_new(slm, &cp, &c->slm_ctx, err);
    if (rc != 0) {
        free(c);
        return rc;
    }
    c->p = *p;
    c->slm = slm;
    c->tok = tok;
    c->llm = llm;
    c->ix = ix;
    c->next_id = 1;
    *out = c;
    return 0;
}

void mc_cascade_free(mc_cascade *c) {
    if (!c)
        return;
    mc_ctx_free(c->slm_ctx);
    free(c->last_prompt);
    free(c);
}

int mc_cascade_set_params(mc_cascade *c, const mc_cascade_params *p, mc_err *err) {
    int rc = check_params(p, err);
    if (rc == 0)
        c->p = *p;
    return rc;
}

const mc_cascade_params *mc_cascade_get_params(const mc_cascade *c) { return &c->p; }
void mc_cascade_set_llm(mc_cascade *c, mc_llm *llm) { c->llm = llm; }
void mc_cascade_set_index(mc_cascade *c, mc_retr_index *ix) { c->ix = ix; }
void mc_cascade_set_copy(mc_cascade *c, mc_copy_index *cx) { c->cx = cx; }

static int lines_of(const mc_cascade_doc *d) { return d->n_lines > 1 ? d->n_lines : 1; }

/* Prompt budgets. A request for n lines reserves room for n lines of output
 * (n * max_line_tokens) in the small model's context: the context must hold
 * the prompt, the small model's draft and the generated tokens, or the large
 * model (same context by default) refuses the request (MC_EFULL) and a
 * statement-level escalation silently fails. An explicit LLM budget is used
 * as given: the LLM's context must leave that room itself. */
static int slm_budget(const mc_cascade *c, int n_lines) {
    int b = mc_ctx_n_ctx(c->slm_ctx) - c->p.max_line_tokens * n_lines;
    return c->p.slm_prompt_tokens > 0 ? MC_MIN(b, c->p.slm_prompt_tokens) : b;
}

static int llm_budget(const mc_cascade *c, int n_lines) {
    return c->p.llm_prompt_tokens > 0 ? c->p.llm_prompt_tokens : slm_budget(c, n_lines);
}

static bool canceled(const volatile int *cancel) { return cancel && *cancel; }

static int check_doc(const mc_cascade_doc *d, mc_err *err) {
    if (!d || (!d->text && d->len > 0) || d->cursor > d->len)
        return mc_err_set(err, MC_EINVAL, -1, "bad document (cursor %zu beyond %zu bytes)",
                          d ? d->cursor : 0, d ? d->len : 0);
    return 0;
}

/* The line text of token ids, as gen.h defines text: the healed bytes
 * skipped, cut before the first newline. */
static int ids_to_line(const mc_tok *tok, const int32_t *ids, int n, size_t heal_len, int n_lines,
                       char **out, size_t *out_len) {
    int nl_left = n_lines > 1 ? n_lines : 1;
    size_t cap = 256, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return MC_ENOMEM;
    size_t skip = heal_len;
    for (int i = 0; i < n; i++) {
        if (mc_tok_is_eog(tok, ids[i]))
            break;
        char piece[512];
        int pl = mc_tok_decode_piece(tok, ids[i], 0, piece, sizeof piece);
        if (pl < 0) {
            free(buf);
            return pl;
        }
        if ((size_t)pl > sizeof piece)
            pl = (int)sizeof piece;
        size_t off = 0;
        if (skip > 0) {
            off = MC_MIN(skip, (size_t)pl);
            skip -= off;
        }
        const char *src = piece + off;
        size_t sl = (size_t)pl - off;
        const char *nl = NULL;
        for (size_t k = 0; k < sl; k++) {
            if (src[k] == '\n' && --nl_left == 0) {
                nl = src + k;
                break;
            }
        }
        if (nl)
            sl = (size_t)(nl - src);
        if (len + sl + 1 > cap) {
            while (len + sl + 1 > cap)
                cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                return MC_ENOMEM;
            }
            buf = nb;
        }
        memcpy(buf + len, src, sl);
        len += sl;
        if (nl)
            break;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return 0;
}

static float confidence_of(const mc_gen_result *g, int n_conf) {
    int n = MC_MIN(n_conf, g->n);
    if (n <= 0)
        return 0.0f;
    double s = 0.0;
    for (int i = 0; i < n; i++)
        s += exp((double)g->toks[i].logprob);
    return (float)(s / n);
}

static char *dup_bytes(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        if (n)
            memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* The text of the cursor's line before the cursor. */
static void line_before_cursor(const mc_cascade_doc *d, const char **s, size_t *n) {
    size_t b = d->cursor;
    while (b > 0 && d->text[b - 1] != '\n')
        b--;
    *s = d->text + b;
    *n = d->cursor - b;
}

/* Remember the SLM prompt of suggestion `id` for stage-2 drafting. */
static int remember_prompt(mc_cascade *c, uint64_t id, const mc__prompt *pr) {
    int32_t *np = realloc(c->last_prompt, (size_t)pr->n * sizeof *np);
    if (!np)
        return MC_ENOMEM;
    memcpy(np, pr->ids, (size_t)pr->n * sizeof *np);
    c->last_prompt = np;
    c->n_last_prompt = pr->n;
    c->last_id = id;
    return 0;
}

/* The SLM's line: prompt (round-1 retrieval) and greedy generation; with
 * copy candidates `cr`, their scores and the pick between them and it. */
static int run_slm(mc_cascade *c, const mc_cascade_doc *d, const mc_copy_result *cr,
                   const volatile int *cancel, mc_suggestion *out, mc_err *err) {
    mc__prompt pr;
    int rc = mc__prompt_build(c, d, slm_budget(c, lines_of(d)), 1, NULL, 0, &pr, err);
    if (rc != 0)
        return rc;
    out->st.ms_retr1 = pr.ms_retr;
    out->st.retr1_windows = pr.n_windows;
    out->st.slm_prompt_tokens = pr.n;
    double t0 = mc_time_s();
    mc_gen_params gp = mc_gen_params_default();
    gp.max_new = c->p.max_line_tokens * lines_of(d);
    gp.stop_newline = true;
    gp.n_lines = lines_of(d);
    gp.heal = pr.heal_len ? pr.heal : NULL;
    gp.heal_len = pr.heal_len;
    gp.cancel = cancel;
    mc_gen_result g;
    rc = mc_gen_run(c->slm_ctx, c->tok, pr.ids, pr.n, NULL, 0, &gp, &g, err);
    out->st.ms_slm = (mc_time_s() - t0) * 1e3;
    if (rc != 0) {
        mc__prompt_fini(&pr);
        return rc;
    }
    if (g.stop == MC_GEN_CANCELED) {
        mc_gen_result_fini(&g);
        mc__prompt_fini(&pr);
        return mc_err_set(err, MC_ECANCELED, -1, "canceled");
    }
    out->id = c->next_id++;
    rc = remember_prompt(c, out->id, &pr);
    out->st.slm_reused = g.n_reused;
    out->st.slm_tokens = g.n;
    out->confidence = confidence_of(&g, c->p.n_conf);
    out->source = MC_SRC_SLM;
    out->path = MC_PATH_SLM;
    out->copy_precision = -1.0f;
    out->text = dup_bytes(g.text, g.text_len);
    out->slm_text = dup_bytes(g.text, g.text_len);
    out->len = g.text_len;
    out->n_slm_ids = g.n;
    out->slm_ids = malloc((size_t)(g.n > 0 ? g.n : 1) * sizeof(int32_t));
    if (rc != 0 || !out->text || !out->slm_text || !out->slm_ids) {
        mc_gen_result_fini(&g);
        mc__prompt_fini(&pr);
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    }
    for (int i = 0; i < g.n; i++)
        out->slm_ids[i] = g.toks[i].id;
    if (cr && cr->n > 0) {
        out->st.copy_candidates = cr->n_considered;
        rc = mc__copy_pick(c, &pr, &g, cr, lines_of(d), out, err);
    }
    mc_gen_result_fini(&g);
    mc__prompt_fini(&pr);
    return rc;
}

static void add_llm_stats(mc_cascade_stats *st, const mc_llm_result *r) {
    st->llm_calls++;
    st->llm_attempts += r->attempts;
    st->ms_llm_server += r->ms_server;
    st->bytes_sent += r->bytes_sent;
    st->bytes_received += r->bytes_received;
    if (!r->verified)
        st->unverified = true;
}

/* Append src[0..n) to a growable id array. */
static int ids_append(int32_t **a, int *n, int *cap, const int32_t *src, int m) {
    if (*n + m > *cap) {
        int nc = *cap ? *cap : 64;
        while (nc < *n + m)
            nc *= 2;
        int32_t *na = realloc(*a, (size_t)nc * sizeof *na);
        if (!na)
            return MC_ENOMEM;
        *a = na;
        *cap = nc;
    }
    memcpy(*a + *n, src, (size_t)m * sizeof *src);
    *n += m;
    return 0;
}

/* Bytes of heal not yet covered by the tokens so far. */
static size_t heal_left_after(const mc_tok *tok, const int32_t *ids, int n, size_t heal_len) {
    size_t got = 0;
    for (int i = 0; i < n && got < heal_len; i++) {
        int pl = mc_tok_decode_piece(tok, ids[i], 0, NULL, 0);
        if (pl > 0)
            got += (size_t)pl;
    }
    return got >= heal_len ? 0 : heal_len - got;
}

/* Newlines in the text of ids (healed bytes skipped): lines already done. */
static int newlines_in(const mc_tok *tok, const int32_t *ids, int n, size_t heal_len) {
    int k = 0;
    size_t skip = heal_len;
    for (int i = 0; i < n; i++) {
        char piece[512];
        int pl = mc_tok_decode_piece(tok, ids[i], 0, piece, sizeof piece);
        if (pl <= 0)
            continue;
        if ((size_t)pl > sizeof piece)
            pl = (int)sizeof piece;
        size_t off = MC_MIN(skip, (size_t)pl);
        skip -= off;
        for (size_t j = off; j < (size_t)pl; j++)
            k += piece[j] == '\n';
    }
    return k;
}

/* The LLM's line for prompt `lp`: stage 1 verifies `draft` (may be empty),
 * stage 2 lets the SLM draft after what the LLM has (when slm_prompt is
 * given), until the line ends. Fills out->text and stats (failed calls are
 * counted too). *deadline is the request's LLM deadline: 0 starts the budget
 * now; every call is bounded by it, and none is made once it has passed. */
static int run_llm(mc_cascade *c, const mc__prompt *lp, int n_lines, const int32_t *draft,
                   int n_draft, const int32_t *slm_prompt, int n_slm_prompt, size_t slm_heal_len,
                   int64_t *deadline, const volatile int *cancel, mc_suggestion *out,
                   mc_err *err) {
    const int max_line = c->p.max_line_tokens * n_lines;
    const bool spec = c->p.speculative && draft != NULL;
    int32_t *acc = NULL; /* the LLM's tokens after its prompt */
    int n_acc = 0, cap_acc = 0;
    int32_t *buf = NULL; /* prompt ⊕ acc, for follow-up calls */
    int n_buf = 0, cap_buf = 0;
    int32_t *hold = NULL; /* the stage-2 draft of the next call */
    char *text = NULL;
    size_t text_len = 0;
    bool have_text = false, done = false;
    /* prompt lookup (stage 2; part of the copy tier, on with it): drafts from
     * an earlier occurrence of the last tokens, tried once the SLM's drafts
     * are rejected, until one of its own is rejected too */
    bool lookup_round = false, lookup_off = !c->p.copy || !c->cx;
    int rc = 0;
    double t0 = mc_time_s();

    mc_llm_request rq;
    memset(&rq, 0, sizeof rq);
    rq.stop_newline = true;
    rq.n_lines = n_lines;
    rq.files = (const char *const *)lp->files;
    rq.n_files = lp->n_files;
    rq.cancel = cancel;
    rq.heal = lp->heal_len ? lp->heal : NULL;
    rq.heal_len = lp->heal_len;
    rq.prompt = lp->ids;
    rq.n_prompt = lp->n;
    if (spec) {
        rq.draft = draft;
        rq.n_draft = MC_MIN(n_draft, max_line);
        rq.max_new = 1;
        out->st.draft_tokens += rq.n_draft;
    } else {
        rq.max_new = max_line;
    }
    out->st.llm_prompt_tokens += lp->n; /* RepoCoder's two rounds send two prompts */
    if (*deadline == 0 && c->p.llm_budget_ms > 0)
        *deadline = mc_time_ns() + (int64_t)c->p.llm_budget_ms * 1000000;
    out->st.llm_deadline_ns = *deadline;
    rq.deadline_ns = *deadline;
    for (int round = 0; !done; round++) {
        if (canceled(cancel)) {
            rc = mc_err_set(err, MC_ECANCELED, -1, "canceled");
            goto out;
        }
        if (*deadline > 0 && mc_time_ns() >= *deadline) {
            rc = mc_err_set(err, MC_ETIMEOUT, -1,
                            "this request's %d ms for the large model are spent; no call made",
                            c->p.llm_budget_ms);
            goto out;
        }
        mc_llm_result r;
        rc = mc_llm_generate(c->llm, &rq, &r, err);
        free(hold); /* the call is over: its draft is no longer needed */
        hold = NULL;
        rq.draft = NULL;
        add_llm_stats(&out->st, &r); /* a failed call is on the account too */
        if (rc != 0)
            goto out;
        out->st.draft_accepted += r.gen.n_accepted;
        if (lookup_round)
            out->st.lookup_accepted += r.gen.n_accepted;
        if (round == 0)
            out->st.stage1_accepted = r.gen.n_accepted;
        if (!r.verified || r.gen.n == 0) {
            /* a backend that only returns text: its line is the answer */
            free(text);
            text = dup_bytes(r.gen.text ? r.gen.text : "", r.gen.text ? r.gen.text_len : 0);
            text_len = r.gen.text ? r.gen.text_len : 0;
            have_text = true;
            out->st.llm_tokens += r.gen.n;
            mc_llm_result_fini(&r);
            if (!text) {
                rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
                goto out;
            }
            break;
        }
        for (int i = 0; i < r.gen.n; i++) {
            if (ids_append(&acc, &n_acc, &cap_acc, &r.gen.toks[i].id, 1) != 0) {
                mc_llm_result_fini(&r);
                rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
                goto out;
            }
        }
        int stop = r.gen.stop;
        /* a stage-2 round that kept fewer than half of its draft tokens: the
         * SLM is not predicting this line well enough for speculation to pay.
         * A round is one LLM call (a network round trip, a verification pass
         * over k + 1 tokens) for a + 1 tokens; below a = k/2 that is a loss
         * against plain decoding on every backend bench_spec measures (in
         * process, k = 4: a = 1 gives 0.6-1.0x plain; behind a server each
         * call adds its round trip). The LLM finishes the line in one call. */
        bool give_up = round > 0 && rq.n_draft > 0 && 2 * r.gen.n_accepted < rq.n_draft;
        if (give_up && lookup_round)
            lookup_off = true;
        mc_llm_result_fini(&r);
        /* a verification returns up to one token past the draft: keep the
         * line's budget exactly as plain decoding would */
        if (n_acc > max_line)
            n_acc = max_line;
        done = stop != MC_GEN_LENGTH || n_acc >= max_line || !spec;
        if (done)
            break;
        /* stage 2: the SLM drafts draft_k tokens after the LLM's tokens */
        int32_t *sdraft = NULL;
        int n_sdraft = 0;
        if (slm_prompt && !give_up) {
            int32_t *sp = malloc((size_t)(n_slm_prompt + n_acc) * sizeof *sp);
            if (!sp) {
                rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
                goto out;
            }
            memcpy(sp, slm_prompt, (size_t)n_slm_prompt * sizeof *sp);
            memcpy(sp + n_slm_prompt, acc, (size_t)n_acc * sizeof *sp);
            size_t hl = heal_left_after(c->tok, acc, n_acc, slm_heal_len);
            mc_gen_params gp = mc_gen_params_default();
            gp.max_new = MC_MIN(c->p.draft_k, max_line - n_acc);
            gp.stop_newline = true;
            gp.n_lines = n_lines - newlines_in(c->tok, acc, n_acc, slm_heal_len);
            gp.heal = hl ? lp->heal + (lp->heal_len - hl) : NULL;
            gp.heal_len = hl;
            gp.cancel = cancel;
            mc_gen_result g;
            rc = mc_gen_run(c->slm_ctx, c->tok, sp, n_slm_prompt + n_acc, NULL, 0, &gp, &g, err);
            free(sp);
            if (rc != 0)
                goto out;
            n_sdraft = g.n;
            sdraft = malloc((size_t)(g.n > 0 ? g.n : 1) * sizeof *sdraft);
            if (!sdraft) {
                mc_gen_result_fini(&g);
                rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
                goto out;
            }
            for (int i = 0; i < g.n; i++)
                sdraft[i] = g.toks[i].id;
            mc_gen_result_fini(&g);
        }
        n_buf = 0;
        if (ids_append(&buf, &n_buf, &cap_buf, lp->ids, lp->n) != 0 ||
            ids_append(&buf, &n_buf, &cap_buf, acc, n_acc) != 0) {
            free(sdraft);
            rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
            goto out;
        }
        lookup_round = false;
        if (give_up && !lookup_off) {
            /* the SLM is not predicting this line: what followed the last
             * lookup_min..4 tokens earlier in the prompt (the file above,
             * retrieved code) */
            int room = MC_MIN(c->p.draft_k, max_line - n_acc);
            sdraft = room > 0 ? malloc((size_t)room * sizeof *sdraft) : NULL;
            n_sdraft = sdraft ? mc_copy_lookup(buf, n_buf, c->p.lookup_min, 4, sdraft, room, NULL) : 0;
            if (n_sdraft <= 0) {
                free(sdraft);
                sdraft = NULL;
                n_sdraft = 0;
                lookup_off = true;
            } else {
                lookup_round = true;
                out->st.lookup_tokens += n_sdraft;
            }
        }
        rq.prompt = buf;
        rq.n_prompt = n_buf;
        /* the healed bytes the LLM's tokens have not yet covered */
        size_t hl = heal_left_after(c->tok, acc, n_acc, lp->heal_len);
        rq.heal = hl ? lp->heal + (lp->heal_len - hl) : NULL;
        rq.heal_len = hl;
        rq.n_lines = n_lines - newlines_in(c->tok, acc, n_acc, lp->heal_len); /* lines left */
        hold = sdraft;
        rq.draft = sdraft;
        rq.n_draft = n_sdraft;
        rq.max_new = n_sdraft > 0 ? 1 : max_line - n_acc;
        out->st.draft_tokens += n_sdraft;
        out->st.stage2_rounds++;
    }
    if (!have_text) {
        rc = ids_to_line(c->tok, acc, n_acc, lp->heal_len, n_lines, &text, &text_len);
        if (rc != 0) {
            rc = mc_err_set(err, rc, -1, "decoding the large model's tokens failed");
            goto out;
        }
    }
    out->st.llm_tokens += n_acc;
    free(out->text);
    out->text = text;
    out->len = text_len;
    text = NULL;
out:
    out->st.ms_llm += (mc_time_s() - t0) * 1e3;
    free(hold);
    free(text);
    free(acc);
    free(buf);
    return rc;
}

/* The tokens of a local line as a stage-1 draft after prompt lp: its healed
 * bytes, then the line (at most the line budget). */
static int tokenize_draft(mc_cascade *c, const mc__prompt *lp, const char *text, int n_lines,
                          int32_t **out, int *n_out, mc_err *err) {
    *out = NULL;
    *n_out = 0;
    size_t tl = strlen(text), n = lp->heal_len + tl;
    int cap = c->p.max_line_tokens * n_lines;
    char *s = malloc(n + 1);
    int32_t *ids = malloc((size_t)(cap + 1) * sizeof *ids);
    if (!s || !ids) {
        free(s);
        free(ids);
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    }
    memcpy(s, lp->heal, lp->heal_len);
    memcpy(s + lp->heal_len, text, tl);
    int64_t k = 0;
    int rc = n ? mc_tok_encode(c->tok, s, n, 0, ids, cap, &k) : 0;
    free(s);
    if (rc == MC_EFULL) {
        rc = 0;
        k = cap;
    }
    if (rc != 0) {
        free(ids);
        return mc_err_set(err, rc, -1, "tokenizing the draft failed");
    }
    *out = ids;
    *n_out = (int)k;
    return 0;
}

int mc_cascade_escalate(mc_cascade *c, const mc_cascade_doc *d, const mc_suggestion *prev,
                        int path, const volatile int *cancel, mc_suggestion *out, mc_err *err) {
    memset(out, 0, sizeof *out);
    int rc = check_doc(d, err);
    if (rc != 0)
        return rc;
    if (!prev || (!prev->slm_text && prev->source != MC_SRC_COPY) || !prev->text)
        return mc_err_set(err, MC_EINVAL, -1, "escalation needs a local suggestion (small model "
                                              "or copy tier)");
    if (!c->llm)
        return mc_err_set(err, MC_EUNSUPPORTED, -1, "no large model is configured");
    if (!mc_llm_available(c->llm))
        return mc_err_set(err, MC_ENET, -1, "the large model is unavailable (circuit breaker open)");
    double t0 = mc_time_s();
    /* round 2: the query gets the completed line (typed part + SLM's rest) */
    const char *lb;
    size_t lbn;
    line_before_cursor(d, &lb, &lbn);
    const char *local = prev->slm_text ? prev->slm_text : prev->text;
    size_t sl = strlen(local);
    char *line = malloc(lbn + sl + 1);
    if (!line)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    memcpy(line, lb, lbn);
    memcpy(line + lbn, local, sl);
    line[lbn + sl] = '\0';
    mc__prompt lp;
    int round = c->p.iterative ? 2 : 1;
    rc = mc__prompt_build(c, d, llm_budget(c, lines_of(d)), round, line, lbn + sl, &lp, err);
    free(line);
    if (rc != 0)
        return rc;
    out->st.ms_retr2 = lp.ms_retr;
    out->st.retr2_windows = lp.n_windows;
    /* the SLM prompt for stage 2: remembered from the suggestion, or rebuilt */
    mc__prompt sp;
    memset(&sp, 0, sizeof sp);
    const int32_t *slm_prompt = NULL;
    int n_slm_prompt = 0;
    if (c->p.speculative) {
        if (c->last_id == prev->id && c->last_prompt) {
            slm_prompt = c->last_prompt;
            n_slm_prompt = c->n_last_prompt;
        } else {
            rc = mc__prompt_build(c, d, slm_budget(c, lines_of(d)), 1, NULL, 0, &sp, err);
            if (rc != 0) {
                mc__prompt_fini(&lp);
                return rc;
            }
            slm_prompt = sp.ids;
            n_slm_prompt = sp.n;
        }
    }
    /* The stage-1 draft: the SLM's own tokens, or the tokens of another local
     * line (a copy candidate) after the healed bytes. Healing is a property
     * of the text's end, so both prompts heal the same bytes. */
    const int32_t *draft = NULL;
    int n_draft = 0;
    int32_t *own_draft = NULL;
    const char *dtext = prev->draft_text ? prev->draft_text : prev->slm_ids ? NULL : prev->text;
    if (c->p.speculative && dtext) {
        rc = tokenize_draft(c, &lp, dtext, lines_of(d), &own_draft, &n_draft, err);
        if (rc != 0) {
            mc__prompt_fini(&lp);
            mc__prompt_fini(&sp);
            return rc;
        }
        draft = own_draft;
    } else if (c->p.speculative) {
        draft = prev->slm_ids;
        n_draft = prev->n_slm_ids;
    }
    int64_t deadline = d->llm_deadline_ns;
    rc = run_llm(c, &lp, lines_of(d), draft, n_draft, slm_prompt, n_slm_prompt, lp.heal_len,
                 &deadline, cancel, out, err);
    free(own_draft);
    mc__prompt_fini(&lp);
    mc__prompt_fini(&sp);
    if (rc != 0) {
        mc_cascade_stats keep = out->st; /* the failed attempt's cost stays on record */
        mc_suggestion_fini(out);
        out->st = keep;
        out->st.ms_total = (mc_time_s() - t0) * 1e3;
        return rc;
    }
    out->id = c->next_id++;
    out->source = MC_SRC_LLM;
    out->path = path;
    out->confidence = prev->confidence;
    out->copy_precision = -1.0f;
    out->slm_text = prev->slm_text ? dup_bytes(prev->slm_text, strlen(prev->slm_text)) : NULL;
    if (prev->slm_text && !out->slm_text) {
        mc_suggestion_fini(out);
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    }
    out->st.ms_total = (mc_time_s() - t0) * 1e3;
    return 0;
}

int mc_cascade_copy_only(mc_cascade *c, const mc_cascade_doc *d, mc_suggestion *out, mc_err *err) {
    memset(out, 0, sizeof *out);
    int rc = check_doc(d, err);
    if (rc != 0)
        return rc;
    if (!c->cx)
        return mc_err_set(err, MC_EUNSUPPORTED, -1, "no copy index is configured");
    double t0 = mc_time_s();
    mc_copy_result cr;
    mc_cascade_params p = c->p;
    c->p.copy = true;
    rc = mc__copy_propose(c, d, 1, &cr, &out->st.ms_copy, err);
    c->p = p;
    if (rc != 0)
        return rc;
    out->id = c->next_id++;
    out->source = MC_SRC_COPY;
    out->path = MC_PATH_COPY;
    out->confidence = -1.0f;
    out->copy_precision = -1.0f;
    out->st.copy_candidates = cr.n_considered;
    rc = cr.n > 0 ? mc__copy_take(out, &cr.c[0], true) : 0;
    if (rc == 0 && !out->text)
        rc = (out->text = dup_bytes("", 0)) ? 0 : MC_ENOMEM;
    mc_copy_result_fini(&cr);
    if (rc != 0) {
        mc_suggestion_fini(out);
        return mc_err_set(err, rc, -1, "out of memory");
    }
    out->st.ms_total = (mc_time_s() - t0) * 1e3;
    return 0;
}

int mc_cascade_suggest(mc_cascade *c, const mc_cascade_doc *d, const volatile int *cancel,
                       mc_suggestion *out, mc_err *err) {
    memset(out, 0, sizeof *out);
    int rc = check_doc(d, err);
    if (rc != 0)
        return rc;
    double t0 = mc_time_s();
    /* tier 0: a copy proposal precise enough is shown at once, no model */
    mc_copy_result cr;
    double ms_copy = 0;
    rc = mc__copy_propose(c, d, c->p.copy_k, &cr, &ms_copy, err);
    if (rc != 0)
        return rc;
    if (cr.n > 0 && cr.c[0].precision >= c->p.tau_copy) {
        out->id = c->next_id++;
        out->path = MC_PATH_COPY;
        out->confidence = -1.0f;
        out->st.ms_copy = ms_copy;
        out->st.copy_candidates = cr.n_considered;
        rc = mc__copy_take(out, &cr.c[0], true);
        /* a rejection escalates with the next candidate as the draft */
        if (rc == 0 && cr.n > 1 && !(out->draft_text = dup_bytes(cr.c[1].text, cr.c[1].len)))
            rc = MC_ENOMEM;
        mc_copy_result_fini(&cr);
        if (rc != 0) {
            mc_suggestion_fini(out);
            return mc_err_set(err, rc, -1, "out of memory");
        }
        out->st.ms_total = (mc_time_s() - t0) * 1e3;
        return 0;
    }
    rc = run_slm(c, d, &cr, cancel, out, err);
    mc_copy_result_fini(&cr);
    if (rc != 0) {
        mc_suggestion_fini(out);
        return rc;
    }
    out->st.ms_copy += ms_copy;
    out->st.ms_total = (mc_time_s() - t0) * 1e3;
    /* Confidence routing judges the SLM's own line. A copy line was already
     * judged — by its calibrated precision and the pick rule (copy_theta) —
     * and the SLM's probability of a line it did not write says little about
     * it: it is shown, and the user's rejection escalates. */
    if (!c->p.routing || !c->llm || out->source == MC_SRC_COPY || out->confidence >= c->p.tau)
        return 0;
    /* confidence routing: a hopeless line goes to the LLM at once */
    mc_suggestion up;
    mc_err e2;
    rc = mc_cascade_escalate(c, d, out, MC_PATH_CONFIDENCE, cancel, &up, &e2);
    if (rc == MC_ECANCELED) {
        mc_suggestion_fini(out);
        if (err)
            *err = e2;
        return rc;
    }
    if (rc != 0) { /* the local answer stands; what the attempt cost is on its account */
        out->st.llm_failed = true;
        out->st.ms_retr2 = up.st.ms_retr2;
        out->st.retr2_windows = up.st.retr2_windows;
        out->st.ms_llm = up.st.ms_llm;
        out->st.ms_llm_server = up.st.ms_llm_server;
        out->st.llm_calls = up.st.llm_calls;
        out->st.llm_attempts = up.st.llm_attempts;
        out->st.llm_prompt_tokens = up.st.llm_prompt_tokens;
        out->st.draft_tokens = up.st.draft_tokens;
        out->st.bytes_sent = up.st.bytes_sent;
        out->st.bytes_received = up.st.bytes_received;
        out->st.llm_deadline_ns = up.st.llm_deadline_ns;
        out->st.ms_total = (mc_time_s() - t0) * 1e3;
        return 0;
    }
    /* the escalated suggestion, with the local part of the account */
    mc_cascade_stats s = out->st;
    s.ms_retr2 = up.st.ms_retr2;
    s.retr2_windows = up.st.retr2_windows;
    s.ms_llm = up.st.ms_llm;
    s.ms_llm_server = up.st.ms_llm_server;
    s.llm_calls = up.st.llm_calls;
    s.llm_attempts = up.st.llm_attempts;
    s.llm_deadline_ns = up.st.llm_deadline_ns;
    s.llm_prompt_tokens = up.st.llm_prompt_tokens;
    s.llm_tokens = up.st.llm_tokens;
    s.draft_tokens = up.st.draft_tokens;
    s.draft_accepted = up.st.draft_accepted;
    s.stage1_accepted = up.st.stage1_accepted;
    s.stage2_rounds = up.st.stage2_rounds;
    s.unverified = up.st.unverified;
    s.bytes_sent = up.st.bytes_sent;
    s.bytes_received = up.st.bytes_received;
    s.ms_total = (mc_time_s() - t0) * 1e3;
    s.lookup_tokens = up.st.lookup_tokens;
    s.lookup_accepted = up.st.lookup_accepted;
    free(out->text);
    out->text = up.text;
    out->len = up.len;
    up.text = NULL;
    out->source = MC_SRC_LLM;
    out->path = MC_PATH_CONFIDENCE;
    out->copy_precision = -1.0f;
    out->st = s;
    mc_suggestion_fini(&up);
    return 0;
}

int mc_cascade_llm_only(mc_cascade *c, const mc_cascade_doc *d, int rounds,
                        const volatile int *cancel, mc_suggestion *out, mc_err *err) {
    memset(out, 0, sizeof *out);
    int rc = check_doc(d, err);
    if (rc != 0)
        return rc;
    if (rounds < 0 || rounds > 2)
        return mc_err_set(err, MC_EINVAL, -1, "retrieval rounds must be 0, 1 or 2 (got %d)", rounds);
    if (!c->llm)
        return mc_err_set(err, MC_EUNSUPPORTED, -1, "no large model is configured");
    double t0 = mc_time_s();
    mc__prompt lp;
    rc = mc__prompt_build(c, d, llm_budget(c, lines_of(d)), rounds > 0 ? 1 : 0, NULL, 0, &lp, err);
    if (rc != 0)
        return rc;
    out->st.ms_retr1 = lp.ms_retr;
    out->st.retr1_windows = lp.n_windows;
    int64_t deadline = d->llm_deadline_ns; /* both rounds share the request's budget */
    rc = run_llm(c, &lp, lines_of(d), NULL, 0, NULL, 0, 0, &deadline, cancel, out, err);
    mc__prompt_fini(&lp);
    if (rc == 0 && rounds == 2) {
        /* RepoCoder's second round: retrieve with the generated line */
        const char *lb;
        size_t lbn;
        line_before_cursor(d, &lb, &lbn);
        size_t gl = out->len;
        char *line = malloc(lbn + gl + 1);
        if (!line) {
            rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        } else {
            memcpy(line, lb, lbn);
            memcpy(line + lbn, out->text, gl);
            line[lbn + gl] = '\0';
            rc = mc__prompt_build(c, d, llm_budget(c, lines_of(d)), 2, line, lbn + gl, &lp, err);
            free(line);
            if (rc == 0) {
                out->st.ms_retr2 = lp.ms_retr;
                out->st.retr2_windows = lp.n_windows;
                rc = run_llm(c, &lp, lines_of(d), NULL, 0, NULL, 0, 0, &deadline, cancel, out,
                             err);
                mc__prompt_fini(&lp);
            }
        }
    }
    if (rc != 0) {
        mc_cascade_stats keep = out->st; /* the failed attempt's cost stays on record */
        mc_suggestion_fini(out);
        out->st = keep;
        out->st.ms_total = (mc_time_s() - t0) * 1e3;
        return rc;
    }
    out->id = c->next_id++;
    out->source = 1;
    out->path = MC_PATH_LLM;
    out->confidence = -1.0f;
    out->st.ms_total = (mc_time_s() - t0) * 1e3;
    return 0;
}
