/* src/server/metrics.c — the server's counters and histograms, and their
 * rendering in Prometheus' text exposition format (version 0.0.4): "# HELP"
 * and "# TYPE" lines, counters ending in _total, histograms as cumulative
 * _bucket{le="..."} series ending with le="+Inf", then _sum and _count.
 *
 * One mutex guards everything; updates are a handful per request. Not here:
 * what counts as a request or a cancellation (server.c decides and calls).
 */
#include "server_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int codes[MC__SRV_N_CODES - 1] = {200, 400, 401, 404, 405, 413, 429, 499, 500, 503};

/* Upper bounds in seconds; the last bucket (+Inf) is implicit. Completions
 * span a few milliseconds (a cached one-line request on a small model) to
 * tens of seconds (long generations on a large one). */
static const double bounds[MC__SRV_N_BUCKETS - 1] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                     0.25,  0.5,    1.0,   2.5,  5.0,   10.0};

static const char *const paths[MC__EP_N] = {"/v1/completions", "/infill", "/v1/verify",
                                            "/v1/models",      "/health", "/metrics", "other"};

const char *mc__srv_endpoint_path(int ep) {
    return ep >= 0 && ep < MC__EP_N ? paths[ep] : "other";
}

void mc__srv_metrics_init(mc__srv_metrics *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

void mc__srv_metrics_fini(mc__srv_metrics *m) { pthread_mutex_destroy(&m->mu); }

static int code_index(int status) {
    for (int i = 0; i < MC__SRV_N_CODES - 1; i++)
        if (codes[i] == status)
            return i;
    return MC__SRV_N_CODES - 1;
}

static void observe(mc__srv_hist *h, double x) {
    int b = 0;
    while (b < MC__SRV_N_BUCKETS - 1 && x > bounds[b])
        b++;
    h->bucket[b]++;
    h->count++;
    h->sum += x;
}

void mc__srv_metrics_request(mc__srv_metrics *m, int ep, int status) {
    if (ep < 0 || ep >= MC__EP_N)
        ep = MC__EP_OTHER;
    pthread_mutex_lock(&m->mu);
    m->requests[ep][code_index(status)]++;
    pthread_mutex_unlock(&m->mu);
}

void mc__srv_metrics_job(mc__srv_metrics *m, int ep, int n_prompt, const mc_gen_result *gen,
                         double queue_s, double busy_s, bool canceled) {
    (void)ep;
    pthread_mutex_lock(&m->mu);
    m->engine_s += busy_s;
    m->prompt_tokens += (uint64_t)(n_prompt > 0 ? n_prompt : 0);
    if (gen) {
        m->cached_tokens += (uint64_t)gen->n_reused;
        m->generated_tokens += (uint64_t)(gen->n - gen->n_accepted);
        m->draft_tokens += (uint64_t)gen->n_draft;
        m->accepted_tokens += (uint64_t)gen->n_accepted;
    }
    if (canceled)
        m->cancellations++;
    observe(&m->queue_wait, queue_s);
    pthread_mutex_unlock(&m->mu);
}

void mc__srv_metrics_latency(mc__srv_metrics *m, int ep, double seconds) {
    if (ep < 0 || ep > MC__EP_VERIFY)
        return;
    pthread_mutex_lock(&m->mu);
    observe(&m->latency[ep], seconds);
    pthread_mutex_unlock(&m->mu);
}

void mc__srv_metrics_first_token(mc__srv_metrics *m, double seconds) {
    pthread_mutex_lock(&m->mu);
    observe(&m->first_token, seconds);
    pthread_mutex_unlock(&m->mu);
}

/* A growing text buffer; `oom` sticks. */
typedef struct buf {
    char *s;
    size_t len, cap;
    bool oom;
} buf;

static void out(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void out(buf *b, const char *fmt, ...) {
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t nc = b->cap ? b->cap * 2 : 4096;
        while (nc < b->len + (size_t)n + 1)
            nc *= 2;
        char *ns = realloc(b->s, nc);
        if (!ns) {
            b->oom = true;
            return;
        }
        b->s = ns;
        b->cap = nc;
    }
}

static void counter(buf *b, const char *name, const char *help, uint64_t v) {
    out(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
        (unsigned long long)v);
}

static void gauge(buf *b, const char *name, const char *help, long long v) {
    out(b, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", name, help, name, name, v);
}

/* One histogram series; `labels` is "" or `key="value",` (trailing comma). */
static void hist_series(buf *b, const char *name, const char *labels, const mc__srv_hist *h) {
    uint64_t cum = 0;
    for (int i = 0; i < MC__SRV_N_BUCKETS; i++) {
        cum += h->bucket[i];
        if (i < MC__SRV_N_BUCKETS - 1)
            out(b, "%s_bucket{%sle=\"%g\"} %llu\n", name, labels, bounds[i], (unsigned long long)cum);
        else
            out(b, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels, (unsigned long long)cum);
    }
    /* _sum and _count carry the same labels, without the trailing comma */
    char lab[96];
    size_t ll = strlen(labels);
    if (ll > 0 && ll < sizeof lab) {
        memcpy(lab, labels, ll - 1);
        lab[ll - 1] = '\0';
        out(b, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name, lab, h->sum, name, lab,
            (unsigned long long)h->count);
    } else {
        out(b, "%s_sum %.6f\n%s_count %llu\n", name, h->sum, name, (unsigned long long)h->count);
    }
}

void mc__srv_metrics_conn(mc__srv_metrics *m, int event) {
    pthread_mutex_lock(&m->mu);
    if (event == MC__CONN_TIMED_OUT)
        m->conn_timed_out++;
    else if (event == MC__CONN_EVICTED)
        m->conn_evicted++;
    else
        m->conn_refused++;
    pthread_mutex_unlock(&m->mu);
}

char *mc__srv_metrics_render(mc__srv_metrics *m, const mc__srv_gauges *g, size_t *len) {
    buf b = {0};
    pthread_mutex_lock(&m->mu);
    mc__srv_metrics c = *m; /* a consistent snapshot (its mutex copy is never used) */
    pthread_mutex_unlock(&m->mu);

    out(&b, "# HELP mccom_requests_total HTTP requests answered, by endpoint and status "
            "(499: the client went away first)\n# TYPE mccom_requests_total counter\n");
    for (int e = 0; e < MC__EP_N; e++) {
        for (int k = 0; k < MC__SRV_N_CODES; k++) {
            /* completions/200 is always shown so the series exists from the start */
            if (!c.requests[e][k] && !(e == MC__EP_COMPLETIONS && k == 0))
                continue;
            char code[16];
            if (k < MC__SRV_N_CODES - 1)
                snprintf(code, sizeof code, "%d", codes[k]);
            else
                snprintf(code, sizeof code, "other");
            out(&b, "mccom_requests_total{endpoint=\"%s\",code=\"%s\"} %llu\n", paths[e], code,
                (unsigned long long)c.requests[e][k]);
        }
    }
    counter(&b, "mccom_prompt_tokens_total", "Prompt tokens of requests the engine ran",
            c.prompt_tokens);
    counter(&b, "mccom_cached_prompt_tokens_total",
            "Prompt tokens whose KV cache entries were reused from a slot", c.cached_tokens);
    counter(&b, "mccom_generated_tokens_total", "Tokens the model generated (accepted draft tokens excluded)",
            c.generated_tokens);
    counter(&b, "mccom_draft_tokens_total", "Draft tokens offered to /v1/verify", c.draft_tokens);
    counter(&b, "mccom_accepted_tokens_total", "Draft tokens accepted by /v1/verify",
            c.accepted_tokens);
    counter(&b, "mccom_cancellations_total",
            "Requests canceled (client disconnect or shutdown), queued or running", c.cancellations);
    out(&b, "# HELP mccom_engine_seconds_total Time the engine thread spent running requests\n"
            "# TYPE mccom_engine_seconds_total counter\nmccom_engine_seconds_total %.6f\n",
        c.engine_s);
    gauge(&b, "mccom_queue_length", "Requests waiting for the engine", g->n_queued);
    gauge(&b, "mccom_requests_running", "Requests the engine is running", g->n_running);
    gauge(&b, "mccom_slots", "KV cache slots", g->n_slots);
    gauge(&b, "mccom_connections", "Open client connections", g->n_connections);
    gauge(&b, "mccom_inflight_bytes", "Bytes reserved for requests in flight (the memory budget)",
          (long long)g->inflight_bytes);
    counter(&b, "mccom_connections_timed_out_total",
            "Connections closed for not sending a complete request in time", c.conn_timed_out);
    counter(&b, "mccom_connections_evicted_total",
            "Idle connections closed to admit a new one at a connection limit", c.conn_evicted);
    counter(&b, "mccom_connections_refused_total",
            "Connections refused at a connection limit (nothing idle to close)", c.conn_refused);

    out(&b, "# HELP mccom_request_duration_seconds Time from receipt to the response being ready, "
            "by endpoint\n# TYPE mccom_request_duration_seconds histogram\n");
    for (int e = 0; e <= MC__EP_VERIFY; e++) {
        char lab[64];
        snprintf(lab, sizeof lab, "endpoint=\"%s\",", paths[e]);
        hist_series(&b, "mccom_request_duration_seconds", lab, &c.latency[e]);
    }
    out(&b, "# HELP mccom_queue_wait_seconds Time requests waited for the engine\n"
            "# TYPE mccom_queue_wait_seconds histogram\n");
    hist_series(&b, "mccom_queue_wait_seconds", "", &c.queue_wait);
    out(&b, "# HELP mccom_time_to_first_token_seconds Streaming: time from enqueue to the first "
            "token\n# TYPE mccom_time_to_first_token_seconds histogram\n");
    hist_series(&b, "mccom_time_to_first_token_seconds", "", &c.first_token);
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    *len = b.len;
    return b.s;
}
