/* src/eval/run.c — one benchmark task in one mode: the document the editor
 * would hold, the cascade or a baseline, and the simulated user.
 *
 * The document is the task's prompt + "\n" with the cursor at its end; its
 * path is the task's file relative to the repository (so retrieval's leakage
 * filter drops that file's windows at or after the target), its line the
 * target's line, n_lines the ground truth's. Each mode has its own cascade
 * and, in-process, its own large-model context, so that no mode is timed
 * against a cache another mode warmed.
 *
 * The simulated user accepts the small model's line iff it scores EM 1, and
 * otherwise rejects it at once (the reaction delay is accounted in the report,
 * never slept). This file does not decide thresholds or write anything. */
#include "mccom/eval.h"

#include <stdlib.h>
#include <string.h>

struct mc_eval_runner {
    mc_eval_setup s;
    mc_retr_index *ix;
    mc_copy_index *cx;   /* follows ix (owned) */
    mc_cascade *cas[MC_EVAL_N_MODES];
    mc_llm *own_llm[MC_EVAL_N_MODES];
};

static const char *const mode_names[] = {
#define MC__EVAL_NAME(name, str) str,
    MC_EVAL_MODES(MC__EVAL_NAME)
#undef MC__EVAL_NAME
};

const char *mc_eval_mode_name(int mode) {
    return mode >= 0 && mode < MC_EVAL_N_MODES ? mode_names[mode] : "unknown";
}

int mc_eval_mode_parse(const char *s) {
    for (int m = 0; m < MC_EVAL_N_MODES; m++)
        if (!strcmp(s, mode_names[m]))
            return m;
    return MC_EINVAL;
}

bool mc_eval_mode_cascade(int mode) { return mode >= MC_EVAL_CASCADE && mode < MC_EVAL_N_MODES; }

bool mc_eval_mode_copy(int mode) {
    return mode == MC_EVAL_COPY || mode == MC_EVAL_SLM_COPY ||
           (mc_eval_mode_cascade(mode) && mode != MC_EVAL_CASCADE_NO_COPY);
}

bool mc_eval_mode_needs_llm(int mode) { return mode >= MC_EVAL_LLM && mode <= MC_EVAL_LLM_ITER; }

static double mono_ms(void *ud) {
    (void)ud;
    return (double)mc_time_ns() / 1e6;
}

static double now(const mc_eval_runner *r) { return r->s.clock.now_ms(r->s.clock.ud); }

int mc_eval_runner_new(const mc_eval_setup *s, mc_eval_runner **out, mc_err *err) {
    *out = NULL;
    if (!s || !s->slm || !s->tok)
        return mc_err_set(err, MC_EINVAL, -1, "the evaluation needs a small model and its tokenizer");
    mc_eval_runner *r = calloc(1, sizeof *r);
    if (!r)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    r->s = *s;
    if (!r->s.clock.now_ms)
        r->s.clock.now_ms = mono_ms;
    *out = r;
    return 0;
}

void mc_eval_runner_free(mc_eval_runner *r) {
    if (!r)
        return;
    for (int m = 0; m < MC_EVAL_N_MODES; m++) {
        mc_cascade_free(r->cas[m]);
        mc_llm_free(r->own_llm[m]);
    }
    mc_copy_free(r->cx);
    free(r);
}

void mc_eval_runner_set_index(mc_eval_runner *r, mc_retr_index *ix) {
    r->ix = ix;
    mc_copy_free(r->cx);
    r->cx = NULL;
    mc_err e;
    /* without memory for it the copy modes just propose nothing */
    if (ix && mc_copy_new(&r->cx, ix, &e) == 0 && mc_copy_sync(r->cx, NULL, &e) != 0) {
        mc_copy_free(r->cx);
        r->cx = NULL;
    }
    for (int m = 0; m < MC_EVAL_N_MODES; m++) {
        if (!r->cas[m])
            continue;
        mc_cascade_set_index(r->cas[m], ix);
        mc_cascade_set_copy(r->cas[m], mc_eval_mode_copy(m) ? r->cx : NULL);
    }
}

static mc_cascade_params mode_params(const mc_eval_runner *r, int mode) {
    mc_cascade_params p = r->s.params;
    p.routing = mode == MC_EVAL_CASCADE || mode == MC_EVAL_CASCADE_NO_SPEC ||
                mode == MC_EVAL_CASCADE_NO_ITER || mode == MC_EVAL_CASCADE_NO_COPY;
    p.speculative = mode != MC_EVAL_CASCADE_NO_SPEC;
    p.iterative = mode != MC_EVAL_CASCADE_NO_ITER;
    p.copy = p.copy && mc_eval_mode_copy(mode);
    p.copy_below = false; /* the documents end at the cursor anyway */
    return p;
}

int mc_eval_runner_set_tau(mc_eval_runner *r, double tau, mc_err *err) {
    mc_cascade_params p = r->s.params;
    p.tau = (float)tau;
    for (int m = 0; m < MC_EVAL_N_MODES; m++) {
        if (!r->cas[m])
            continue;
        mc_cascade_params q = *mc_cascade_get_params(r->cas[m]);
        q.tau = p.tau;
        int rc = mc_cascade_set_params(r->cas[m], &q, err);
        if (rc != 0)
            return rc;
    }
    r->s.params = p;
    return 0;
}

/* The mode's cascade, made on first use. */
static int cascade_of(mc_eval_runner *r, int mode, mc_cascade **out, mc_err *err) {
    if (!r->cas[mode]) {
        mc_llm *llm = NULL;
        if (mode != MC_EVAL_SLM && mode != MC_EVAL_COPY && mode != MC_EVAL_SLM_COPY) {
            if (r->s.llm_model) {
                int rc = mc_llm_local_new(r->s.llm_model, r->s.tok, &r->s.llm_ctx,
                                          &r->own_llm[mode], err);
                if (rc != 0)
                    return rc;
                llm = r->own_llm[mode];
            } else {
                llm = r->s.llm;
            }
        }
        if (!llm && mc_eval_mode_needs_llm(mode))
            return mc_err_set(err, MC_EINVAL, -1, "mode %s needs a large model",
                              mc_eval_mode_name(mode));
        mc_cascade_params p = mode_params(r, mode);
        int rc = mc_cascade_new(&p, r->s.slm, r->s.tok, llm, r->ix, &r->s.slm_ctx,
                                &r->cas[mode], err);
        if (rc != 0)
            return rc;
        mc_cascade_set_copy(r->cas[mode], mc_eval_mode_copy(mode) ? r->cx : NULL);
    }
    *out = r->cas[mode];
    return 0;
}

static void take_llm_stats(mc_eval_rec *rec, const mc_cascade_stats *st) {
    rec->calls = st->llm_calls;
    rec->prompt_tokens = st->llm_prompt_tokens;
    rec->gen_tokens = st->llm_tokens;
    rec->draft_tokens = st->draft_tokens;
    rec->draft_accepted = st->draft_accepted;
    rec->stage1_accepted = st->stage1_accepted;
    rec->stage2_rounds = st->stage2_rounds;
    rec->llm_failed = st->llm_failed;
}

static char *clean(const char *s, size_t n) { return mc_eval_utf8_clean(s ? s : "", s ? n : 0, NULL); }

/* The copy tier's part of a record: the first suggestion's copy line and
 * precision, the top proposal. 0 or MC_ENOMEM. */
static int take_copy(mc_eval_rec *rec, const mc_suggestion *s) {
    rec->copy_p = s->source == MC_SRC_COPY ? s->copy_precision : -1.0f;
    if (s->copy_top) {
        rec->copy = clean(s->copy_top, strlen(s->copy_top));
        if (!rec->copy)
            return MC_ENOMEM;
    }
    return 0;
}

static bool user_accepts(const mc_eval_task *t, const mc_suggestion *s) {
    mc_eval_score sc;
    return mc_eval_score_text(t->truth, strlen(t->truth), s->text, s->len, &sc) == 0 && sc.em;
}

/* A cascade mode, as the user at the editor sees it. */
static int run_cascade(mc_eval_runner *r, mc_cascade *c, const mc_eval_task *t,
                       const mc_cascade_doc *d, int mode, mc_eval_rec *rec, mc_err *err) {
    mc_session *s = mc_session_new(c);
    if (!s)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    const mc_suggestion *sug = NULL;
    double t0 = now(r);
    int rc = mc_session_request(s, d, NULL, &sug, err);
    rec->ms_first = now(r) - t0;
    if (rc != 0)
        goto out;
    rec->conf = sug->confidence;
    rec->slm = sug->slm_text ? clean(sug->slm_text, strlen(sug->slm_text)) : NULL;
    if ((sug->slm_text && !rec->slm) || take_copy(rec, sug) != 0) {
        rc = MC_ENOMEM;
        goto out;
    }
    const mc_suggestion *fin = sug;
    const bool local = sug->source != MC_SRC_LLM;
    if (local && user_accepts(t, sug)) {
        if (mode == MC_EVAL_CASCADE_NO_ROUTING) {
            /* calibration: what escalating this line would have given */
            mc_suggestion sh;
            mc_err e2;
            double t1 = now(r);
            int src = mc_cascade_escalate(c, d, sug, MC_PATH_REJECTION, NULL, &sh, &e2);
            rec->ms_shadow = now(r) - t1;
            if (src == 0) {
                rec->shadow = clean(sh.text, sh.len);
                rec->shadow_calls = sh.st.llm_calls;
                mc_suggestion_fini(&sh);
                if (!rec->shadow || mc_eval_score_text(t->truth, strlen(t->truth), rec->shadow,
                                                       strlen(rec->shadow), &rec->shadow_score) != 0) {
                    rc = MC_ENOMEM;
                    goto out;
                }
            }
        }
        rec->pred = clean(sug->text, sug->len);
        take_llm_stats(rec, &sug->st);
        mc_session_accepted(s, sug->len);
    } else if (local) {
        /* rejected: the user re-asks (the reaction delay is not slept) */
        double t1 = now(r);
        rc = mc_session_escalate(s, d, NULL, &fin, err);
        rec->ms_second = now(r) - t1;
        if (rc != 0)
            goto out;
        rec->pred = clean(fin->text, fin->len);
        take_llm_stats(rec, &fin->st); /* llm_failed when the local line stood */
    } else {
        rec->pred = clean(sug->text, sug->len);
        take_llm_stats(rec, &sug->st);
    }
    rec->path = fin->path;
    if (!rec->pred)
        rc = MC_ENOMEM;
out:
    mc_session_free(s);
    return rc;
}

int mc_eval_run(mc_eval_runner *r, const char *split, const mc_eval_task *t, int mode,
                mc_eval_rec *rec, mc_err *err) {
    memset(rec, 0, sizeof *rec);
    if (mode < 0 || mode >= MC_EVAL_N_MODES)
        return mc_err_set(err, MC_EINVAL, -1, "unknown mode %d", mode);
    rec->split = strdup(split);
    rec->task = strdup(t->id);
    rec->repo = strdup(t->repo);
    if (!rec->split || !rec->task || !rec->repo) {
        mc_eval_rec_fini(rec);
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    }
    rec->hash = t->hash;
    rec->mode = mode;
    rec->tau = mc_eval_mode_cascade(mode) && mode != MC_EVAL_CASCADE_NO_ROUTING
                   ? (double)r->s.params.tau
                   : -1.0;
    rec->conf = -1.0f;
    rec->copy_p = -1.0f;
    mc_cascade *c = NULL;
    int rc = cascade_of(r, mode, &c, err);
    if (rc != 0) {
        mc_eval_rec_fini(rec);
        return rc;
    }
    /* the editor's buffer: the left context and the new line the cursor is on */
    char *text = malloc(t->prompt_len + 2);
    if (!text) {
        mc_eval_rec_fini(rec);
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    }
    memcpy(text, t->prompt, t->prompt_len);
    text[t->prompt_len] = '\n';
    text[t->prompt_len + 1] = '\0';
    mc_cascade_doc d = {.path = t->path,
                        .text = text,
                        .len = t->prompt_len + 1,
                        .cursor = t->prompt_len + 1,
                        .line = t->line,
                        .n_lines = t->n_lines};
    mc_err terr;
    mc_err_clear(&terr);
    mc_suggestion sug;
    memset(&sug, 0, sizeof sug);
    if (mode == MC_EVAL_SLM || mode == MC_EVAL_SLM_COPY) {
        double t0 = now(r);
        rc = mc_cascade_suggest(c, &d, NULL, &sug, &terr);
        rec->ms_first = now(r) - t0;
        if (rc == 0) {
            rec->pred = clean(sug.text, sug.len);
            rec->slm = sug.slm_text ? clean(sug.slm_text, strlen(sug.slm_text)) : NULL;
            rec->conf = sug.confidence;
            rec->path = sug.path;
            if ((sug.slm_text && !rec->slm) || take_copy(rec, &sug) != 0)
                rc = MC_ENOMEM;
        }
    } else if (mode == MC_EVAL_COPY) {
        double t0 = now(r);
        rc = mc_cascade_copy_only(c, &d, &sug, &terr);
        rec->ms_first = now(r) - t0;
        if (rc == 0) {
            rec->pred = clean(sug.text, sug.len);
            rec->path = MC_PATH_COPY;
            if (take_copy(rec, &sug) != 0)
                rc = MC_ENOMEM;
        }
    } else if (mc_eval_mode_needs_llm(mode)) {
        double t0 = now(r);
        rc = mc_cascade_llm_only(c, &d, mode - MC_EVAL_LLM, NULL, &sug, &terr);
        rec->ms_first = now(r) - t0;
        if (rc == 0) {
            rec->pred = clean(sug.text, sug.len);
            rec->path = MC_PATH_LLM;
            take_llm_stats(rec, &sug.st);
        }
    } else {
        rc = run_cascade(r, c, t, &d, mode, rec, &terr);
    }
    mc_suggestion_fini(&sug);
    free(text);
    if (rc == MC_ENOMEM) {
        mc_eval_rec_fini(rec);
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    }
    if (rc != 0) { /* the task failed; the run goes on */
        free(rec->pred);
        rec->pred = strdup("");
        rec->error = strdup(terr.msg[0] ? terr.msg : mc_code_message(rc));
        if (!rec->pred || !rec->error) {
            mc_eval_rec_fini(rec);
            return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        }
    }
    if (!rec->pred || (mode == MC_EVAL_SLM && !rec->slm && !rec->error) ||
        mc_eval_score_text(t->truth, strlen(t->truth), rec->pred, strlen(rec->pred),
                           &rec->score) != 0) {
        mc_eval_rec_fini(rec);
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    }
    return 0;
}
