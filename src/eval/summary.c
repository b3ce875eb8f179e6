/* src/eval/summary.c — what the records add up to: latency with a network
 * round trip, summaries of a mode, and the cascade at any threshold τ derived
 * from one cascade-no-routing run.
 *
 * Why one run suffices for the sweep: routing changes only *when* the large
 * model is asked, never what it answers — an escalation by confidence and one
 * by rejection run the same computation (mc_cascade_escalate on the same small
 * model line). A cascade-no-routing record holds the small model's line, its
 * confidence and time, and the escalation's line, time and calls (the real one
 * after a rejection, a shadow one after an acceptance), so the outcome at any
 * τ follows: confidence < τ → the escalated line, after both times; otherwise
 * what the user did. A copy line shown first (at once, or picked over the
 * small model's) is never routed by confidence, so its record stands at every
 * τ. The reaction delay is only ever added as a separate figure. Nothing here
 * runs a model. */
#include "mccom/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const double mc_eval_tau_grid[MC_EVAL_N_TAU] = {0,    0.05, 0.1,  0.15, 0.2,  0.25, 0.3,
                                                 0.35, 0.4,  0.45, 0.5,  0.55, 0.6,  0.65,
                                                 0.7,  0.75, 0.8,  0.85, 0.9,  0.95, 1.0};

double mc_eval_latency(const mc_eval_rec *r, double rtt_ms) {
    return r->ms_first + r->ms_second + rtt_ms * r->calls;
}

bool mc_eval_outcome_at(const mc_eval_rec *r, double tau, double rtt_ms, mc_eval_outcome *o) {
    memset(o, 0, sizeof *o);
    if (r->error || r->llm_failed)
        return false;
    if (r->path == MC_PATH_COPY) { /* shown at once by the copy tier: no threshold applies */
        o->path = MC_PATH_COPY;
        o->pred = r->pred;
        o->score = r->score;
        o->calls = r->calls;
        o->latency = mc_eval_latency(r, rtt_ms);
        return true;
    }
    if (!r->slm)
        return false;
    if (r->copy_p > 0) { /* a copy line was shown: the router never escalates it at once */
        o->path = r->path;
        o->pred = r->pred;
        o->score = r->score;
        o->calls = r->calls;
        o->latency = mc_eval_latency(r, rtt_ms);
        return r->path == MC_PATH_SLM || r->path == MC_PATH_REJECTION;
    }
    bool accepted = r->path == MC_PATH_SLM;
    if (!accepted && r->path != MC_PATH_REJECTION)
        return false; /* not a cascade-no-routing record */
    if (r->conf < (float)tau) { /* the router would have escalated at once */
        if (accepted && !r->shadow)
            return false;
        o->path = MC_PATH_CONFIDENCE;
        o->pred = accepted ? r->shadow : r->pred;
        o->score = accepted ? r->shadow_score : r->score;
        o->calls = accepted ? r->shadow_calls : r->calls;
        o->latency = r->ms_first + (accepted ? r->ms_shadow : r->ms_second) + rtt_ms * o->calls;
        return true;
    }
    o->path = r->path;
    o->pred = r->pred;
    o->score = r->score;
    o->calls = r->calls;
    o->latency = mc_eval_latency(r, rtt_ms);
    return true;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Quantile q of sorted v[0..n) with linear interpolation (numpy's default). */
static double quantile(const double *v, int n, double q) {
    if (n <= 0)
        return 0.0;
    double pos = q * (n - 1);
    int lo = (int)floor(pos);
    if (lo >= n - 1)
        return v[n - 1];
    return v[lo] + (pos - lo) * (v[lo + 1] - v[lo]);
}

int mc_eval_aggregate(const mc_eval_rec *const *recs, int n, double rtt_ms, double reaction_ms,
                      mc_eval_agg *out) {
    memset(out, 0, sizeof *out);
    if (n <= 0)
        return 0;
    double *lat = malloc((size_t)n * sizeof *lat);
    if (!lat)
        return MC_ENOMEM;
    for (int i = 0; i < n; i++) {
        const mc_eval_rec *r = recs[i];
        out->n++;
        out->n_err += r->error != NULL;
        out->em += r->score.em;
        out->es += r->score.es;
        out->fuzz += r->score.fuzz / 100.0;
        lat[i] = mc_eval_latency(r, rtt_ms);
        out->lat_mean += lat[i];
        if (r->path == MC_PATH_REJECTION)
            out->react_mean += reaction_ms;
        if (r->path >= 0 && r->path < MC_CASCADE_N_PATHS)
            out->n_path[r->path]++;
        if (r->copy_p > 0) {
            out->n_copy++;
            /* a copy line shown first was right iff the final answer is it */
            out->n_copy_ok += r->path == MC_PATH_COPY || r->path == MC_PATH_SLM ? r->score.em : 0;
        }
        out->n_llm += r->calls > 0;
        out->calls += r->calls;
        out->prompt_tokens += r->prompt_tokens;
        out->gen_tokens += r->gen_tokens;
        out->draft_tokens += r->draft_tokens;
        out->draft_accepted += r->draft_accepted;
        out->stage1_accepted += r->stage1_accepted;
        out->stage2_rounds += r->stage2_rounds;
    }
    qsort(lat, (size_t)n, sizeof *lat, cmp_double);
    out->lat_p50 = quantile(lat, n, 0.50);
    out->lat_p95 = quantile(lat, n, 0.95);
    free(lat);
    double k = 1.0 / n;
    out->em *= k;
    out->es *= k;
    out->fuzz *= k;
    out->lat_mean *= k;
    out->react_mean *= k;
    out->calls *= k;
    out->prompt_tokens *= k;
    out->gen_tokens *= k;
    return 0;
}

int mc_eval_sweep_at(const mc_eval_rec *const *cal, int n, double tau, double rtt_ms,
                     double reaction_ms, mc_eval_sweep_pt *out) {
    memset(out, 0, sizeof *out);
    out->tau = tau;
    double *lat = malloc((size_t)(n > 0 ? n : 1) * sizeof *lat);
    if (!lat)
        return MC_ENOMEM;
    for (int i = 0; i < n; i++) {
        mc_eval_outcome o;
        if (!mc_eval_outcome_at(cal[i], tau, rtt_ms, &o))
            continue;
        lat[out->n++] = o.latency;
        out->em += o.score.em;
        out->es += o.score.es;
        out->usage += o.calls > 0;
        out->lat_mean += o.latency;
        out->n_path[o.path]++;
    }
    if (out->n > 0) {
        double k = 1.0 / out->n;
        out->em *= k;
        out->es *= k;
        out->usage *= k;
        out->lat_mean *= k;
        out->time_mean = out->lat_mean + reaction_ms * out->n_path[MC_PATH_REJECTION] * k;
        qsort(lat, (size_t)out->n, sizeof *lat, cmp_double);
        out->lat_p95 = quantile(lat, out->n, 0.95);
    }
    free(lat);
    return 0;
}

int mc_eval_choose_tau(const mc_eval_rec *const *cal, int n, const double *grid, int n_grid,
                       double rtt_ms, double reaction_ms, double em_drop) {
    if (n_grid <= 0)
        return MC_EINVAL;
    mc_eval_sweep_pt *pt = calloc((size_t)n_grid, sizeof *pt);
    if (!pt)
        return MC_ENOMEM;
    double best_em = -1.0;
    for (int g = 0; g < n_grid; g++) {
        int rc = mc_eval_sweep_at(cal, n, grid[g], rtt_ms, reaction_ms, &pt[g]);
        if (rc != 0) {
            free(pt);
            return rc;
        }
        if (pt[g].n > 0 && pt[g].em > best_em)
            best_em = pt[g].em;
    }
    int pick = MC_EINVAL;
    for (int g = 0; g < n_grid; g++) {
        if (pt[g].n == 0 || pt[g].em < best_em - em_drop - 1e-12)
            continue;
        if (pick < 0 || pt[g].time_mean < pt[pick].time_mean)
            pick = g;
    }
    free(pt);
    return pick;
}
