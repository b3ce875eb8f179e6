/* src/llm/llm.c — the large-model tier interface and its in-process
 * implementation (a model and one context, through mc_gen_run).
 *
 * The remote implementation lives in src/remote/. This file does not time out
 * or retry anything: an in-process model either answers or fails. */
#include "mccom/llm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mc_llm {
    mc_llm_ops ops;
    void *self;
};

void mc_llm_result_fini(mc_llm_result *r) {
    if (!r)
        return;
    mc_gen_result_fini(&r->gen);
    memset(r, 0, sizeof *r);
}

mc_llm *mc_llm_new(const mc_llm_ops *ops, void *self) {
    if (!ops || !ops->generate)
        return NULL;
    mc_llm *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->ops = *ops;
    l->self = self;
    return l;
}

void mc_llm_free(mc_llm *l) {
    if (!l)
        return;
    if (l->ops.destroy)
        l->ops.destroy(l->self);
    free(l);
}

int mc_llm_generate(mc_llm *l, const mc_llm_request *rq, mc_llm_result *res, mc_err *err) {
    if (!res)
        return mc_err_set(err, MC_EINVAL, -1, "no result record");
    memset(res, 0, sizeof *res);
    if (!l || !rq)
        return mc_err_set(err, MC_EINVAL, -1, "no large model or no request");
    double t0 = mc_time_s();
    int rc = l->ops.generate(l->self, rq, res, err);
    if (rc != 0) {
        /* no generation, but what the attempt cost stays on the record */
        mc_llm_result acct = *res;
        memset(&acct.gen, 0, sizeof acct.gen);
        mc_llm_result_fini(res);
        res->attempts = acct.attempts;
        res->http_status = acct.http_status;
        res->bytes_sent = acct.bytes_sent;
        res->bytes_received = acct.bytes_received;
        res->ms_total = (mc_time_s() - t0) * 1e3;
        return rc;
    }
    if (res->ms_total <= 0.0)
        res->ms_total = (mc_time_s() - t0) * 1e3;
    return 0;
}

bool mc_llm_available(mc_llm *l) { return l && (!l->ops.available || l->ops.available(l->self)); }

const char *mc_llm_describe(mc_llm *l) {
    if (!l)
        return "none";
    return l->ops.describe ? l->ops.describe(l->self) : "large model";
}

/* ---- in-process ------------------------------------------------------------ */

typedef struct local_llm {
    mc_model *m;
    const mc_tok *tok;
    mc_ctx *c;
    char desc[160];
} local_llm;

static int local_generate(void *self, const mc_llm_request *rq, mc_llm_result *res, mc_err *err) {
    local_llm *l = self;
    mc_gen_params gp = mc_gen_params_default();
    gp.max_new = rq->max_new;
    gp.stop_newline = rq->stop_newline;
    gp.n_lines = rq->n_lines;
    gp.heal = rq->heal;
    gp.heal_len = rq->heal_len;
    gp.cancel = rq->cancel;
    int rc = mc_gen_run(l->c, l->tok, rq->prompt, rq->n_prompt, rq->draft, rq->n_draft, &gp,
                        &res->gen, err);
    if (rc != 0)
        return rc;
    res->verified = true;
    res->attempts = 1;
    res->ms_server = res->gen.ms_prompt + res->gen.ms_gen;
    return 0;
}

static const char *local_describe(void *self) { return ((local_llm *)self)->desc; }

static void local_destroy(void *self) {
    local_llm *l = self;
    mc_ctx_free(l->c);
    free(l);
}

int mc_llm_local_new(mc_model *m, const mc_tok *tok, const mc_ctx_params *cp, mc_llm **out,
                     mc_err *err) {
    *out = NULL;
    if (!m || !tok)
        return mc_err_set(err, MC_EINVAL, -1, "the in-process large model needs a model and a tokenizer");
    local_llm *l = calloc(1, sizeof *l);
    if (!l)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    mc_ctx_params p = cp ? *cp : mc_ctx_params_default();
    int rc = mc_ctx_new(m, &p, &l->c, err);
    if (rc != 0) {
        free(l);
        return rc;
    }
    l->m = m;
    l->tok = tok;
    const mc_hparams *hp = mc_model_hparams(m);
    snprintf(l->desc, sizeof l->desc, "in-process %s (%d layers, d %d, ctx %d)", hp->arch,
             hp->n_layer, hp->n_embd, mc_ctx_n_ctx(l->c));
    static const mc_llm_ops ops = {local_generate, NULL, local_describe, local_destroy};
    *out = mc_llm_new(&ops, l);
    if (!*out) {
        local_destroy(l);
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    }
    return 0;
}
