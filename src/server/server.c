/* src/server/server.c — `mccom serve`'s machinery: HTTP through
 * libmicrohttpd, a bounded queue, one engine thread over n_slots contexts.
 *
 * Threads and ownership.
 *   - libmicrohttpd runs one thread per connection (MHD_USE_THREAD_PER_CONNECTION).
 *     That thread reads the body, parses and validates it (api.c), and puts a
 *     job on the queue. A non-streaming request then waits in the access
 *     handler until the job is done and answers with its real status; a
 *     streaming one answers 200 at once with a content-reader response that
 *     blocks for the engine's events (blocking is allowed in this mode: the
 *     thread serves only this connection).
 *   - The engine thread takes jobs in order and runs each on the slot whose
 *     cached tokens share the longest prefix with its prompt (else the least
 *     recently used one), through gen (mc_gen_run, mc_gen_score). It is the
 *     only thread that touches contexts.
 *   - A job is shared by its connection, the queue/engine and (streaming) the
 *     content reader: a reference count frees it when the last lets go.
 *
 * Cancellation. libmicrohttpd notices a vanished client only when it writes,
 * and nothing is written while a request waits for the engine, so the waiting
 * thread also polls its socket for POLLRDHUP every 20 ms; either way the job's
 * cancel flag is set, which gen polls between forward passes and the engine
 * checks before starting a job. MHD's completion callback
 * (MHD_OPTION_NOTIFY_COMPLETED) sets it too for any request that did not end
 * with MHD_REQUEST_TERMINATED_COMPLETED_OK (a failed write while streaming).
 * (A client that half-closes its socket after sending the request is taken
 * as gone; HTTP clients do not do that.)
 *
 * A queued job whose client leaves is taken out of the queue at once.
 *
 * Streaming back-pressure: events go through a bounded per-job buffer; a
 * reader that does not drain it for STREAM_STALL_S seconds cancels its job.
 *
 * Stopping: refuse new work, cancel everything, join the engine (which
 * answers every job: 503, or an error event on a stream), wait up to
 * STOP_FLUSH_S for those answers to be sent, then stop libmicrohttpd.
 *
 * Hostile clients (server.h has the policy). Every connection is in a table
 * (MHD_OPTION_NOTIFY_CONNECTION) with the time since which it has been waiting
 * for a complete request, and whether it has one (busy). The accept policy
 * callback enforces the connection limits, closing a waiting connection of
 * the heaviest address to make room (on_accept); a reaper thread closes
 * connections that wait longer than request_timeout_s. "Closing" is shutdown(2) on the socket,
 * done under the table's lock while the connection is still in the table
 * (libmicrohttpd closes the descriptor only after its CLOSED notification,
 * which takes the same lock) and only after getpeername confirms the
 * descriptor is still that peer's; the connection's own thread then sees
 * end-of-file and libmicrohttpd cleans up as for any client that left.
 *
 * Lock order: server mutex, then a job's mutex; the connection table's mutex
 * (cmu) is taken alone or before the metrics mutex; the metrics mutex is a
 * leaf.
 *
 * Not here: request and response formats (api.c, render.c), metric rendering
 * (metrics.c), signals and the command line (src/cli/cmd_serve.c).
 */
#include "server_internal.h"

#include "mccom/tok.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>

#define WAIT_SLICE_MS 20          /* how often a waiting thread looks at its client */
#define STREAM_BUF_MAX (64 * 1024) /* bytes of events buffered per streaming request */
#define STREAM_STALL_S 30.0       /* a stream nobody reads for this long is canceled */
#define STOP_FLUSH_S 5.0          /* at stop, how long answers may take to leave */
#define REAP_SLICE_MS 100         /* how often the reaper looks for stalled connections */
#define BODY_OVERHEAD 65536       /* bytes a request costs beyond 3 x its body */
#define IDLE_TIMEOUT_S 60         /* libmicrohttpd's: silence on a busy connection */
#define BODY_MIN_RATE 16384       /* bytes/s: each 16 KiB of body received earns 1 s more */

typedef struct slot {
    mc_ctx *c;
    uint64_t last_used;
} slot;

typedef struct job job;
struct job {
    int refs; /* atomic */
    mc_server *s;
    int ep;                 /* enum mc__srv_endpoint (= request kind) */
    mc__srv_req rq;
    mc__srv_meta meta;
    char id[48];
    volatile int cancel;    /* set by any thread; read by gen and the engine */
    int fd;                 /* the client's socket */
    double t_recv, t_enqueue;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;              /* the engine is finished: status, out and the stream are final */
    int status;             /* HTTP status of the outcome */
    char msg[256];          /* error message when status != 200 */
    mc__srv_out out;
    /* streaming: events not yet handed to libmicrohttpd */
    char *sbuf;
    size_t slen, scap;
    size_t text_offset;
    bool saw_token;
    job *next;              /* queue link (server mutex) */
};

/* One client connection (the socket context libmicrohttpd keeps for us). */
typedef struct sconn {
    int fd;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    double t_wait;     /* since when it has been waiting for (the rest of) a request */
    int64_t got;       /* body bytes of that request received so far (atomic) */
    bool busy;         /* its request is complete and being served */
    bool closing;      /* shut down by the server; libmicrohttpd's CLOSED follows */
    struct sconn *prev, *next;
} sconn;

struct mc_server {
    mc_model *m;
    const mc_tok *tok;
    mc_server_params p;
    char *host, *api_key, *model_name; /* owned copies */
    size_t key_len;
    int port;
    struct MHD_Daemon *d;
    mc__srv_env env;
    slot *slots;
    int n_slots;
    uint64_t tick;          /* engine thread only */
    pthread_t engine;
    bool engine_started;
    pthread_mutex_t mu;     /* queue, running, stopping */
    pthread_cond_t cv;
    job *head, *tail;
    int n_queued;
    job *running;
    bool stopping;
    int n_active;           /* atomic: requests between arrival and completion */
    uint64_t n_ids;         /* atomic: response ids */
    uint64_t seed_mix;      /* unseeded sampling: varies per request */
    mc__srv_metrics metrics;
    /* hostile clients: the connection table and the memory budget (cmu) */
    pthread_mutex_t cmu;
    pthread_cond_t ccv;     /* wakes the reaper at stop */
    sconn *conns;
    int n_conns;
    size_t inflight;        /* bytes reserved by requests in flight */
    pthread_t reaper;
    bool reaper_started, reaper_stop;
};

/* Per-request state libmicrohttpd keeps for us (its "con_cls"). */
typedef struct conn {
    int ep;
    bool post;
    const char *method;
    char *body;
    size_t len, cap;
    bool too_big;
    bool over_budget; /* the memory budget had no room: body dropped, 429 at the end */
    size_t reserved;  /* of the memory budget, released when the request completes */
    sconn *sc;        /* its connection's entry, or NULL (untracked) */
    job *job;
    double t0;
    int status;   /* of the response queued, 0 before */
    bool counted; /* in the request metrics already */
} conn;

mc_server_params mc_server_params_default(void) {
    mc_server_params p;
    memset(&p, 0, sizeof p);
    p.host = "127.0.0.1";
    p.port = 8080;
    p.n_slots = 2;
    p.ctx = mc_ctx_params_default();
    p.max_body = 1 << 20;
    p.max_json_depth = 32;
    p.max_queue = 64;
    p.max_connections = 256;
    p.max_connections_per_ip = 64;
    p.request_timeout_s = 10;
    p.max_inflight_bytes = (size_t)64 << 20;
    return p;
}

/* ---- small helpers ------------------------------------------------------------- */

static void deadline_in(struct timespec *ts, double seconds) {
    clock_gettime(CLOCK_MONOTONIC, ts);
    long ns = ts->tv_nsec + (long)(seconds * 1e9);
    ts->tv_sec += ns / 1000000000L;
    ts->tv_nsec = ns % 1000000000L;
}

static void cond_init_monotonic(pthread_cond_t *cv) {
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
}

static void set_cancel(job *j) { __atomic_store_n(&j->cancel, 1, __ATOMIC_SEQ_CST); }
static bool is_canceled(const job *j) { return __atomic_load_n(&j->cancel, __ATOMIC_SEQ_CST) != 0; }

/* The client closed its end (or the socket is broken). */
static bool peer_closed(int fd) {
    if (fd < 0)
        return false;
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) <= 0)
        return false;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

/* Compare a presented key with the configured one in time that depends only
 * on the configured key's length. */
static bool key_equal(const char *given, size_t gn, const char *key, size_t kn) {
    volatile unsigned char d = (unsigned char)(gn != kn);
    for (size_t i = 0; i < kn; i++)
        d |= (unsigned char)(key[i] ^ (i < gn ? given[i] : 0));
    return d == 0;
}

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* ---- jobs ------------------------------------------------------------------------ */

static job *job_new(mc_server *s, int ep, mc__srv_req *rq, double t_recv) {
    job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->refs = 1;
    j->s = s;
    j->ep = ep;
    j->rq = *rq; /* moved */
    memset(rq, 0, sizeof *rq);
    j->fd = -1;
    j->t_recv = t_recv;
    pthread_mutex_init(&j->mu, NULL);
    cond_init_monotonic(&j->cv);
    uint64_t n = __atomic_add_fetch(&s->n_ids, 1, __ATOMIC_RELAXED);
    snprintf(j->id, sizeof j->id, "cmpl-%016llx", (unsigned long long)splitmix64(n ^ (uint64_t)mc_time_ns()));
    j->meta.model = s->model_name;
    j->meta.id = j->id;
    j->meta.created = (int64_t)time(NULL);
    return j;
}

static void job_ref(job *j) { __atomic_add_fetch(&j->refs, 1, __ATOMIC_ACQ_REL); }

static void job_release(job *j) {
    if (!j || __atomic_sub_fetch(&j->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    mc__srv_req_fini(&j->rq);
    mc_gen_result_fini(&j->out.gen);
    free(j->out.scored);
    free(j->sbuf);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

/* The engine is done with the job: publish the outcome. */
static void job_finish(job *j, int status, const char *msg) {
    pthread_mutex_lock(&j->mu);
    j->status = status;
    snprintf(j->msg, sizeof j->msg, "%s", msg ? msg : "");
    j->done = true;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

/* Append events to a job's stream (takes ev). Waits while the buffer is full;
 * fails when the job is canceled or its reader stalls. `last`: a closing event
 * (an error) that is appended even to a canceled job, without waiting. */
static int stream_put(job *j, char *ev, size_t n, bool last) {
    if (!ev)
        return MC_ENOMEM;
    if (n == 0) {
        free(ev);
        return 0;
    }
    int rc = 0;
    double t0 = mc_time_s();
    pthread_mutex_lock(&j->mu);
    while (!last && j->slen > 0 && j->slen + n > STREAM_BUF_MAX && !is_canceled(j)) {
        if (mc_time_s() - t0 > STREAM_STALL_S) {
            set_cancel(j);
            break;
        }
        struct timespec ts;
        deadline_in(&ts, WAIT_SLICE_MS * 1e-3);
        pthread_cond_timedwait(&j->cv, &j->mu, &ts);
    }
    if (is_canceled(j) && !last) {
        rc = MC_ECANCELED;
    } else {
        if (j->slen + n > j->scap) {
            size_t nc = j->scap ? j->scap : 4096;
            while (nc < j->slen + n)
                nc *= 2;
            char *nb = realloc(j->sbuf, nc);
            if (!nb) {
                rc = MC_ENOMEM;
                goto out;
            }
            j->sbuf = nb;
            j->scap = nc;
        }
        memcpy(j->sbuf + j->slen, ev, n);
        j->slen += n;
        pthread_cond_broadcast(&j->cv);
    }
out:
    pthread_mutex_unlock(&j->mu);
    free(ev);
    return rc;
}

/* ---- the engine --------------------------------------------------------------- */

/* A canceled job's outcome: the client left (499, nobody reads it), or the
 * server is stopping (503, and a streaming client gets an error event). */
static void job_cancel_finish(mc_server *s, job *j) {
    pthread_mutex_lock(&s->mu);
    bool stopping = s->stopping;
    pthread_mutex_unlock(&s->mu);
    const char *msg = stopping ? "the server is shutting down" : "canceled";
    if (stopping && j->rq.stream) {
        size_t n = 0;
        char *ev = mc__srv_sse_error(503, msg, &n);
        stream_put(j, ev, n, true);
    }
    job_finish(j, stopping ? 503 : 499, msg);
}

/* The slot whose cached tokens share the longest prefix with the prompt, if
 * that prefix is at least half the prompt (as llama.cpp's slot similarity:
 * a shared BOS or a few common tokens are not worth another prompt's cache);
 * else the least recently used slot. */
static slot *pick_slot(mc_server *s, const int32_t *p, int n) {
    slot *best = NULL, *lru = &s->slots[0];
    int best_lcp = 0;
    for (int i = 0; i < s->n_slots; i++) {
        slot *sl = &s->slots[i];
        const int32_t *h = mc_ctx_tokens(sl->c);
        int nh = mc_ctx_n_past(sl->c), k = 0;
        while (k < nh && k < n && h[k] == p[k])
            k++;
        if (k > best_lcp) {
            best_lcp = k;
            best = sl;
        }
        if (sl->last_used < lru->last_used)
            lru = sl;
    }
    return best && 2 * best_lcp >= n ? best : lru;
}

/* gen's streaming callback: one event per token. */
static int on_token(void *ud, const mc_gen_token *t) {
    job *j = ud;
    if (is_canceled(j))
        return 1;
    if (!j->saw_token && t->id >= 0) {
        j->saw_token = true;
        mc__srv_metrics_first_token(&j->s->metrics, mc_time_s() - j->t_enqueue);
    }
    /* a token that adds no text is worth an event only for its logprobs */
    if (t->text_len == 0 && (t->id < 0 || j->rq.kind == MC__SRV_INFILL || j->rq.logprobs < 0))
        return 0;
    size_t n = 0;
    char *ev = mc__srv_sse_token(&j->rq, &j->meta, t, j->s->tok, &j->text_offset, &n);
    return stream_put(j, ev, n, false) != 0;
}

static void run_job(mc_server *s, job *j) {
    mc__srv_req *rq = &j->rq;
    double t_start = mc_time_s();
    double queue_s = t_start - j->t_enqueue;
    j->meta.queue_ms = queue_s * 1e3;
    if (is_canceled(j)) {
        mc__srv_metrics_job(&s->metrics, j->ep, 0, NULL, queue_s, 0.0, true);
        job_cancel_finish(s, j);
        return;
    }
    slot *sl = pick_slot(s, rq->prompt, rq->n_prompt);
    sl->last_used = ++s->tick;
    mc_err err;
    mc_err_clear(&err);
    int rc = 0;

    /* the prompt's own logprobs (echo with logprobs, vLLM's prompt_logprobs) */
    bool score = rq->prompt_logprobs >= 0 || (rq->echo && rq->logprobs >= 0);
    if (score) {
        j->out.scored = malloc((size_t)rq->n_prompt * sizeof *j->out.scored);
        j->out.n_scored = rq->n_prompt;
        rc = j->out.scored ? mc_gen_score(sl->c, rq->prompt, rq->n_prompt,
                                          MC_MAX(rq->prompt_logprobs, rq->logprobs),
                                          j->out.scored, &err)
                           : mc_err_set(&err, MC_ENOMEM, -1, "out of memory");
    }
    if (rc == 0 && rq->stream && rq->echo) {
        size_t n = 0;
        char *ev = mc__srv_sse_echo(rq, &j->meta, &j->out, s->tok, &j->text_offset, &n);
        rc = stream_put(j, ev, n, false);
        if (rc != 0)
            mc_err_set(&err, rc, -1, "%s", mc_code_message(rc));
    }

    mc_sampler smp = {rq->temperature, rq->top_k, rq->top_p, 0};
    uint64_t seed = rq->seeded ? rq->seed : (s->seed_mix++ ^ (uint64_t)mc_time_ns());
    smp.rng = splitmix64(seed);
    if (smp.rng == 0)
        smp.rng = 1;
    mc_gen_params gp = mc_gen_params_default();
    gp.max_new = rq->max_tokens;
    gp.stop = (const char *const *)rq->stop;
    gp.n_stop = rq->n_stop;
    gp.stop_newline = rq->stop_newline;
    gp.n_lines = rq->n_lines;
    gp.heal = rq->heal;
    gp.heal_len = rq->heal_len;
    gp.sampler = rq->temperature > 0.0f ? &smp : NULL;
    gp.n_top = rq->logprobs > 0 ? rq->logprobs : 0;
    gp.on_token = rq->stream ? on_token : NULL;
    gp.ud = j;
    gp.cancel = &j->cancel;
    if (rc == 0)
        rc = mc_gen_run(sl->c, s->tok, rq->prompt, rq->n_prompt, rq->draft, rq->n_draft, &gp,
                        &j->out.gen, &err);

    bool canceled = is_canceled(j) || (rc == 0 && j->out.gen.stop == MC_GEN_CANCELED);
    mc__srv_metrics_job(&s->metrics, j->ep, rq->n_prompt, rc == 0 ? &j->out.gen : NULL, queue_s,
                        mc_time_s() - t_start, canceled);
    if (canceled) {
        job_cancel_finish(s, j);
        return;
    }
    if (rc != 0) {
        /* gen refuses only what validation lets through by mistake (400) or
         * fails inside (500) */
        int status = (rc == MC_EINVAL || rc == MC_EFULL) ? 400 : 500;
        if (rq->stream) {
            size_t n = 0;
            char *ev = mc__srv_sse_error(status, err.msg, &n);
            stream_put(j, ev, n, true);
        }
        job_finish(j, status, err.msg[0] ? err.msg : mc_code_message(rc));
        return;
    }
    if (rq->stream) {
        size_t n = 0;
        char *ev = mc__srv_sse_final(rq, &j->meta, &j->out, s->tok, &n);
        if (stream_put(j, ev, n, false) != 0) {
            job_cancel_finish(s, j);
            return;
        }
    }
    mc__srv_metrics_latency(&s->metrics, j->ep, mc_time_s() - j->t_recv);
    job_finish(j, 200, NULL);
}

static void *engine_main(void *arg) {
    mc_server *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->head && !s->stopping)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->stopping) {
            job *q = s->head;
            s->head = s->tail = NULL;
            s->n_queued = 0;
            pthread_mutex_unlock(&s->mu);
            while (q) {
                job *next = q->next;
                mc__srv_metrics_job(&s->metrics, q->ep, 0, NULL, 0.0, 0.0, true);
                job_cancel_finish(s, q);
                job_release(q);
                q = next;
            }
            return NULL;
        }
        job *j = s->head;
        s->head = j->next;
        if (!s->head)
            s->tail = NULL;
        s->n_queued--;
        s->running = j;
        pthread_mutex_unlock(&s->mu);

        run_job(s, j);

        pthread_mutex_lock(&s->mu);
        s->running = NULL;
        pthread_mutex_unlock(&s->mu);
        job_release(j);
    }
}

/* Queue a job (the queue takes a reference). MC_EFULL: too many waiting;
 * MC_ECANCELED: stopping. */
static int enqueue(mc_server *s, job *j) {
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    if (s->stopping)
        rc = MC_ECANCELED;
    else if (s->n_queued >= s->p.max_queue)
        rc = MC_EFULL;
    if (rc == 0) {
        job_ref(j);
        j->t_enqueue = mc_time_s();
        j->next = NULL;
        if (s->tail)
            s->tail->next = j;
        else
            s->head = j;
        s->tail = j;
        s->n_queued++;
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- hostile clients: connection table, limits, reaper, memory budget ----------- */

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr *b) {
    if (a->ss_family != b->sa_family)
        return false;
    if (b->sa_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (b->sa_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
    return false;
}

/* Whether c's descriptor still belongs to c's peer (address and port): a
 * number the kernel reused is never touched. cmu held, c in the table. */
static bool conn_mine(const sconn *c) {
    struct sockaddr_storage now;
    socklen_t n = sizeof now;
    return c->fd >= 0 && getpeername(c->fd, (struct sockaddr *)&now, &n) == 0 &&
           n == c->peer_len && memcmp(&now, &c->peer, n) == 0;
}

/* Close a connection from outside its thread (cmu held, c in the table). */
static void conn_close(sconn *c) {
    c->closing = true;
    if (conn_mine(c))
        shutdown(c->fd, SHUT_RDWR);
}

/* Bytes the client has sent that the server has not read yet: when there are
 * some, the server is the slow party (its threads starved of CPU), not the
 * client, and the request timeout does not apply. */
static int conn_unread(const sconn *c) {
    int n = 0;
    return conn_mine(c) && ioctl(c->fd, FIONREAD, &n) == 0 ? n : 0;
}

/* Connections per client address, counted once per accept decision: an open
 * addressing table over the connection table (cmu held). */
typedef struct addr_count {
    const struct sockaddr_storage *addr; /* NULL: empty slot */
    int n;
} addr_count;

static uint64_t addr_hash(const struct sockaddr_storage *a) {
    const unsigned char *p = NULL;
    size_t n = 0;
    if (a->ss_family == AF_INET) {
        p = (const unsigned char *)&((const struct sockaddr_in *)a)->sin_addr;
        n = sizeof(struct in_addr);
    } else if (a->ss_family == AF_INET6) {
        p = (const unsigned char *)&((const struct sockaddr_in6 *)a)->sin6_addr;
        n = sizeof(struct in6_addr);
    }
    uint64_t h = 0xcbf29ce484222325ull ^ a->ss_family;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static addr_count *addr_slot(addr_count *t, size_t cap, const struct sockaddr_storage *a) {
    for (size_t i = addr_hash(a) & (cap - 1);; i = (i + 1) & (cap - 1))
        if (!t[i].addr || same_addr(t[i].addr, (const struct sockaddr *)a))
            return &t[i];
}

/* libmicrohttpd's accept policy: the connection limits. A new connection at
 * a limit makes room by closing a connection that is still waiting for its
 * request (never one being served): at its own address's limit, that
 * address's longest-waiting one; at the global limit, the longest-waiting
 * one of the address that holds the most connections — fair shares, so a
 * flood from a few addresses closes its own connections and never those of
 * a client with one or two. With nothing waiting to close, it is refused. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen) {
    mc_server *s = cls;
    (void)addrlen;
    struct sockaddr_storage me;
    memset(&me, 0, sizeof me);
    memcpy(&me, addr, addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                  : sizeof(struct sockaddr_in));
    pthread_mutex_lock(&s->cmu);
    size_t cap = 16;
    while (cap < 2 * (size_t)s->n_conns + 2)
        cap *= 2;
    addr_count *t = calloc(cap, sizeof *t);
    int n_all = 0;
    for (sconn *c = s->conns; t && c; c = c->next) {
        if (c->closing)
            continue;
        addr_count *e = addr_slot(t, cap, &c->peer);
        e->addr = &c->peer;
        e->n++;
        n_all++;
    }
    int n_ip = 0;
    if (t) {
        addr_count *e = addr_slot(t, cap, &me);
        n_ip = e->addr ? e->n : 0;
    }
    bool at_ip = n_ip >= s->p.max_connections_per_ip, at_all = n_all >= s->p.max_connections;
    sconn *victim = NULL;
    int victim_n = 0;
    for (sconn *c = s->conns; t && (at_ip || at_all) && c; c = c->next) {
        if (c->closing || c->busy)
            continue;
        int n = addr_slot(t, cap, &c->peer)->n;
        if (at_ip && !same_addr(&c->peer, addr))
            continue;
        if (!victim || n > victim_n || (n == victim_n && c->t_wait < victim->t_wait)) {
            victim = c;
            victim_n = n;
        }
    }
    enum MHD_Result ok = MHD_YES;
    if (!t) {
        ok = at_all ? MHD_NO : MHD_YES; /* out of memory: no eviction, the hard limit holds */
    } else if (victim) {
        conn_close(victim);
        mc__srv_metrics_conn(&s->metrics, MC__CONN_EVICTED);
    } else if (at_ip || at_all) {
        ok = MHD_NO; /* everyone at the limit is busy with a real request */
        mc__srv_metrics_conn(&s->metrics, MC__CONN_REFUSED);
    }
    pthread_mutex_unlock(&s->cmu);
    free(t);
    return ok;
}

/* libmicrohttpd's connection notifications: the table. */
static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    mc_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        sconn *c = calloc(1, sizeof *c);
        if (!c)
            return; /* untracked: only libmicrohttpd's own timeout applies */
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
        c->fd = ci ? ci->connect_fd : -1;
        ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        c->peer_len = sizeof c->peer;
        if (c->fd < 0 ||
            getpeername(c->fd, (struct sockaddr *)&c->peer, &c->peer_len) != 0) {
            if (ci && ci->client_addr) { /* no socket to ask: the address MHD saw */
                c->peer_len = ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                                     : sizeof(struct sockaddr_in);
                memcpy(&c->peer, ci->client_addr, c->peer_len);
            }
            c->fd = -1; /* never shut down by us */
        }
        c->t_wait = mc_time_s();
        pthread_mutex_lock(&s->cmu);
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        s->n_conns++;
        pthread_mutex_unlock(&s->cmu);
        *socket_context = c;
        return;
    }
    sconn *c = *socket_context;
    if (!c)
        return;
    pthread_mutex_lock(&s->cmu);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    pthread_mutex_unlock(&s->cmu);
    free(c);
    *socket_context = NULL;
}

static sconn *conn_of(struct MHD_Connection *mc) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? (sconn *)ci->socket_context : NULL;
}

/* The request is complete (busy) or answered (waiting for the next one). */
static void conn_set_busy(mc_server *s, sconn *c, bool busy) {
    if (!c)
        return;
    pthread_mutex_lock(&s->cmu);
    c->busy = busy;
    c->t_wait = mc_time_s();
    __atomic_store_n(&c->got, 0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&s->cmu);
}

/* Closes connections that have waited longer than request_timeout_s for a
 * complete request, however slowly they send it; a body earns one second more
 * per BODY_MIN_RATE bytes received (Apache's mod_reqtimeout MinRate), so a
 * large upload over a slow link is not cut off while a trickle is. */
static void *reaper_main(void *arg) {
    mc_server *s = arg;
    pthread_mutex_lock(&s->cmu);
    while (!s->reaper_stop) {
        struct timespec ts;
        deadline_in(&ts, REAP_SLICE_MS * 1e-3);
        pthread_cond_timedwait(&s->ccv, &s->cmu, &ts);
        double now = mc_time_s();
        for (sconn *c = s->conns; c; c = c->next) {
            double allowed = s->p.request_timeout_s +
                             (double)__atomic_load_n(&c->got, __ATOMIC_RELAXED) / BODY_MIN_RATE;
            if (c->busy || c->closing || now - c->t_wait <= allowed || conn_unread(c) > 0)
                continue;
            conn_close(c);
            mc__srv_metrics_conn(&s->metrics, MC__CONN_TIMED_OUT);
        }
    }
    pthread_mutex_unlock(&s->cmu);
    return NULL;
}

/* What a request of `body` bytes may hold at its peak: the body, the parsed
 * JSON (jansson's strings and nodes, about as much again), a margin. */
static size_t body_cost(size_t body) { return 3 * body + BODY_OVERHEAD; }

/* Reserve n more bytes of the budget; false when they do not fit. */
static bool budget_take(mc_server *s, size_t n) {
    pthread_mutex_lock(&s->cmu);
    bool ok = s->inflight + n <= s->p.max_inflight_bytes;
    if (ok)
        s->inflight += n;
    pthread_mutex_unlock(&s->cmu);
    return ok;
}

static void budget_give(mc_server *s, size_t n) {
    if (n == 0)
        return;
    pthread_mutex_lock(&s->cmu);
    s->inflight -= MC_MIN(n, s->inflight);
    pthread_mutex_unlock(&s->cmu);
}

/* Grow the request's reservation to cover a body of `len` bytes; on failure
 * the request is over budget from then on (its body is dropped). */
static void budget_cover(mc_server *s, conn *cn, size_t len) {
    size_t need = body_cost(len);
    if (cn->over_budget || need <= cn->reserved)
        return;
    if (budget_take(s, need - cn->reserved)) {
        cn->reserved = need;
        return;
    }
    cn->over_budget = true;
    free(cn->body);
    cn->body = NULL;
    cn->cap = 0;
}

/* ---- HTTP ------------------------------------------------------------------------ */

static enum MHD_Result reply(mc_server *s, struct MHD_Connection *mc, conn *cn, int status,
                             char *body, size_t len, const char *ctype) {
    if (!body) {
        static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
                                  "\"param\":null,\"code\":500}}";
        status = 500;
        len = sizeof oom - 1;
        body = malloc(len + 1);
        if (!body)
            return MHD_NO;
        memcpy(body, oom, len + 1);
        ctype = "application/json";
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (status == 401)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (status == 429 || status == 503) /* over a budget or a queue: soon, not never */
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (status == 405)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW,
                                cn->ep <= MC__EP_VERIFY ? "POST" : "GET");
    enum MHD_Result ok = MHD_queue_response(mc, (unsigned)status, r);
    MHD_destroy_response(r);
    if (ok == MHD_YES) {
        /* counted now, so that a client that reads /metrics right after its
         * answer sees it (the completion callback may still be on its way) */
        cn->status = status;
        cn->counted = true;
        mc__srv_metrics_request(&s->metrics, cn->ep, status);
    }
    return ok;
}

static enum MHD_Result reply_error(mc_server *s, struct MHD_Connection *mc, conn *cn, int status,
                                   const char *msg, const char *param) {
    size_t len = 0;
    char *body = mc__srv_error_json(status, msg, param, &len);
    return reply(s, mc, cn, status, body, len, "application/json");
}

static enum MHD_Result reply_json(mc_server *s, struct MHD_Connection *mc, conn *cn, json_t *o) {
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return reply(s, mc, cn, 200, body, body ? strlen(body) : 0, "application/json");
}

static void classify(const char *url, const char *method, conn *cn) {
    static const struct {
        const char *path;
        int ep;
    } routes[] = {{"/v1/completions", MC__EP_COMPLETIONS}, {"/infill", MC__EP_INFILL},
                  {"/v1/verify", MC__EP_VERIFY},           {"/v1/models", MC__EP_MODELS},
                  {"/health", MC__EP_HEALTH},              {"/metrics", MC__EP_METRICS}};
    cn->ep = MC__EP_OTHER;
    for (size_t i = 0; i < MC_ARRAY_LEN(routes); i++)
        if (strcmp(url, routes[i].path) == 0)
            cn->ep = routes[i].ep;
    cn->post = strcmp(method, "POST") == 0;
    cn->method = cn->post ? "POST" : strcmp(method, "GET") == 0 ? "GET" : "other";
}

static bool authorized(const mc_server *s, struct MHD_Connection *mc) {
    if (!s->api_key)
        return true;
    const char *h = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    const char *given = "";
    if (h && strncasecmp(h, "Bearer ", 7) == 0) {
        given = h + 7;
        while (*given == ' ')
            given++;
    }
    return key_equal(given, strlen(given), s->api_key, s->key_len);
}

static enum MHD_Result handle_get(mc_server *s, struct MHD_Connection *mc, conn *cn) {
    if (cn->ep == MC__EP_METRICS) {
        mc__srv_gauges g = {0};
        pthread_mutex_lock(&s->mu);
        g.n_queued = s->n_queued;
        g.n_running = s->running != NULL;
        pthread_mutex_unlock(&s->mu);
        g.n_slots = s->n_slots;
        pthread_mutex_lock(&s->cmu);
        g.n_connections = s->n_conns;
        g.inflight_bytes = s->inflight;
        pthread_mutex_unlock(&s->cmu);
        size_t len = 0;
        char *body = mc__srv_metrics_render(&s->metrics, &g, &len);
        return reply(s, mc, cn, 200, body, len, "text/plain; version=0.0.4; charset=utf-8");
    }
    json_t *o = json_object();
    if (cn->ep == MC__EP_HEALTH) {
        pthread_mutex_lock(&s->mu);
        int queued = s->n_queued;
        pthread_mutex_unlock(&s->mu);
        json_object_set_new(o, "status", json_string("ok"));
        json_object_set_new(o, "server", json_string("mccom"));
        json_object_set_new(o, "model", json_string(s->model_name));
        json_object_set_new(o, "slots", json_integer(s->n_slots));
        json_object_set_new(o, "queued", json_integer(queued));
    } else { /* models */
        json_t *m = json_object(), *data = json_array();
        json_object_set_new(m, "id", json_string(s->model_name));
        json_object_set_new(m, "object", json_string("model"));
        json_object_set_new(m, "owned_by", json_string("mccom"));
        json_object_set_new(m, "max_model_len", json_integer(s->env.n_ctx));
        json_array_append_new(data, m);
        json_object_set_new(o, "object", json_string("list"));
        json_object_set_new(o, "data", data);
    }
    return reply_json(s, mc, cn, o);
}

/* The client of job j is gone: cancel it, and if it is still waiting in the
 * queue, take it out now so that it stops holding a queue place. */
static void client_gone(mc_server *s, job *j) {
    set_cancel(j);
    pthread_mutex_lock(&s->mu);
    job **pp = &s->head, *prev = NULL;
    while (*pp && *pp != j) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    bool queued = *pp == j;
    if (queued) {
        *pp = j->next;
        if (s->tail == j)
            s->tail = prev;
        s->n_queued--;
    }
    pthread_mutex_unlock(&s->mu);
    if (queued) {
        mc__srv_metrics_job(&s->metrics, j->ep, 0, NULL, mc_time_s() - j->t_enqueue, 0.0, true);
        job_finish(j, 499, "canceled");
        job_release(j); /* the queue's reference */
    }
}

/* Wait for the engine; false if the client went away first (job canceled). */
static bool wait_done(job *j) {
    pthread_mutex_lock(&j->mu);
    while (!j->done) {
        struct timespec ts;
        deadline_in(&ts, WAIT_SLICE_MS * 1e-3);
        pthread_cond_timedwait(&j->cv, &j->mu, &ts);
        if (!j->done && peer_closed(j->fd)) {
            pthread_mutex_unlock(&j->mu);
            client_gone(j->s, j);
            return false;
        }
    }
    pthread_mutex_unlock(&j->mu);
    return true;
}

/* libmicrohttpd's content reader for a streaming response. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    job *j = cls;
    (void)pos;
    pthread_mutex_lock(&j->mu);
    while (j->slen == 0 && !j->done) {
        struct timespec ts;
        deadline_in(&ts, WAIT_SLICE_MS * 1e-3);
        pthread_cond_timedwait(&j->cv, &j->mu, &ts);
        if (j->slen == 0 && !j->done && peer_closed(j->fd)) {
            pthread_mutex_unlock(&j->mu);
            client_gone(j->s, j);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
    if (j->slen == 0) {
        pthread_mutex_unlock(&j->mu);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    size_t n = MC_MIN(max, j->slen);
    memcpy(buf, j->sbuf, n);
    memmove(j->sbuf, j->sbuf + n, j->slen - n);
    j->slen -= n;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return (ssize_t)n;
}

static void stream_free(void *cls) { job_release(cls); }

static enum MHD_Result handle_post(mc_server *s, struct MHD_Connection *mc, conn *cn) {
    mc__srv_req rq;
    char param[80];
    mc_err err;
    int rc = mc__srv_parse(cn->ep, cn->body ? cn->body : "", cn->len, &s->env, &rq, param,
                           sizeof param, &err);
    if (rc != 0)
        return reply_error(s, mc, cn, rc == MC_ENOMEM ? 500 : 400, err.msg, param);
    job *j = job_new(s, cn->ep, &rq, cn->t0);
    if (!j) {
        mc__srv_req_fini(&rq);
        return reply_error(s, mc, cn, 500, "out of memory", NULL);
    }
    cn->job = j; /* the connection's reference, dropped when the request completes */
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    j->fd = ci ? ci->connect_fd : -1;
    rc = enqueue(s, j);
    if (rc == MC_EFULL) {
        char msg[128];
        snprintf(msg, sizeof msg, "the server is busy: %d requests are waiting; retry later",
                 s->p.max_queue);
        return reply_error(s, mc, cn, 503, msg, NULL);
    }
    if (rc != 0)
        return reply_error(s, mc, cn, 503, "the server is shutting down", NULL);

    if (j->rq.stream) {
        job_ref(j); /* the reader's reference, dropped by stream_free */
        struct MHD_Response *r =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, j, stream_free);
        if (!r) {
            set_cancel(j);
            job_release(j);
            return MHD_NO;
        }
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        enum MHD_Result ok = MHD_queue_response(mc, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        if (ok == MHD_YES)
            cn->status = 200;
        else
            set_cancel(j);
        return ok;
    }

    if (!wait_done(j))
        return MHD_NO; /* the client is gone: close, nothing to say */
    if (j->status != 200)
        return reply_error(s, mc, cn, j->status, j->msg, NULL);
    size_t len = 0;
    char *body = mc__srv_render(&j->rq, &j->meta, &j->out, s->tok, &len);
    return reply(s, mc, cn, 200, body, len, "application/json");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
    mc_server *s = cls;
    conn *cn = *con_cls;
    (void)version;
    if (!cn) {
        cn = calloc(1, sizeof *cn);
        if (!cn)
            return MHD_NO;
        cn->t0 = mc_time_s();
        cn->sc = conn_of(mc);
        *con_cls = cn;
        __atomic_add_fetch(&s->n_active, 1, __ATOMIC_SEQ_CST);
        classify(url, method, cn);
        /* /health reveals nothing: load balancers may ask without a key */
        if (cn->ep != MC__EP_HEALTH && !authorized(s, mc))
            return reply_error(s, mc, cn, 401, "missing or wrong API key (Authorization: Bearer KEY)",
                               NULL);
        if (cn->ep == MC__EP_OTHER)
            return reply_error(s, mc, cn, 404, "no such endpoint", NULL);
        bool want_post = cn->ep <= MC__EP_VERIFY;
        if (cn->post != want_post || strcmp(cn->method, "other") == 0) {
            char msg[96];
            snprintf(msg, sizeof msg, "%s takes %s", mc__srv_endpoint_path(cn->ep),
                     want_post ? "POST" : "GET");
            return reply_error(s, mc, cn, 405, msg, NULL);
        }
        const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cn->post && cl) {
            char *end = NULL;
            unsigned long long n = strtoull(cl, &end, 10);
            if (end && *end == '\0' && n > s->p.max_body) {
                char msg[96];
                snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", s->p.max_body);
                return reply_error(s, mc, cn, 413, msg, NULL);
            }
            if (end && *end == '\0') {
                /* the whole body's cost up front; one allocation for the body */
                budget_cover(s, cn, (size_t)n);
                if (!cn->over_budget && n > 0) {
                    cn->body = malloc((size_t)n + 1);
                    cn->cap = cn->body ? (size_t)n + 1 : 0;
                }
            }
        } else if (cn->post) {
            budget_cover(s, cn, 0); /* chunked: reserved as it grows */
        }
        return MHD_YES;
    }
    if (*upload_size > 0) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (cn->sc) /* progress: the request timeout grows with the body (reaper_main) */
            __atomic_add_fetch(&cn->sc->got, (int64_t)n, __ATOMIC_RELAXED);
        if (cn->status != 0 || !cn->post)
            return MHD_YES; /* answered already, or a GET with a body: ignored */
        if (cn->too_big || cn->len + n > s->p.max_body) {
            /* a chunked body without a length: read and dropped, then 413 */
            if (!cn->too_big) {
                free(cn->body);
                cn->body = NULL;
                cn->too_big = true;
            }
            cn->len += n;
            return cn->len > 16 * s->p.max_body + (1u << 20) ? MHD_NO : MHD_YES;
        }
        budget_cover(s, cn, cn->len + n);
        if (cn->over_budget) { /* read and dropped, then 429: the client sees why */
            cn->len += n;
            return MHD_YES;
        }
        if (cn->len + n + 1 > cn->cap) {
            size_t nc = cn->cap ? cn->cap : 4096;
            while (nc < cn->len + n + 1)
                nc *= 2;
            char *nb = realloc(cn->body, nc);
            if (!nb)
                return MHD_NO;
            cn->body = nb;
            cn->cap = nc;
        }
        memcpy(cn->body + cn->len, upload, n);
        cn->len += n;
        cn->body[cn->len] = '\0';
        return MHD_YES;
    }
    if (cn->status != 0)
        return MHD_YES;
    conn_set_busy(s, cn->sc, true); /* the request is complete: no longer a reaper's target */
    if (!cn->post)
        return handle_get(s, mc, cn);
    if (cn->too_big) {
        char msg[96];
        snprintf(msg, sizeof msg, "the request body is larger than %zu bytes", s->p.max_body);
        return reply_error(s, mc, cn, 413, msg, NULL);
    }
    if (cn->over_budget)
        return reply_error(s, mc, cn, 429,
                           "the server's memory budget for requests in flight is full; retry "
                           "later",
                           NULL);
    return handle_post(s, mc, cn);
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    mc_server *s = cls;
    conn *cn = *con_cls;
    (void)mc;
    if (!cn)
        return;
    bool ok = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK;
    if (cn->job) {
        if (!ok)
            client_gone(s, cn->job);
        job_release(cn->job);
    }
    /* streams are counted when they end: 200, or 499 if the client left */
    int status = ok && cn->status ? cn->status : 499;
    if (cn->counted)
        status = cn->status;
    else
        mc__srv_metrics_request(&s->metrics, cn->ep, status);
    if (s->p.verbose)
        fprintf(stderr, "mccom serve: %s %s %d %.1f ms\n", cn->method, mc__srv_endpoint_path(cn->ep),
                status, (mc_time_s() - cn->t0) * 1e3);
    budget_give(s, cn->reserved);
    conn_set_busy(s, cn->sc, false); /* waiting for its next request from now on */
    free(cn->body);
    free(cn);
    *con_cls = NULL;
    __atomic_sub_fetch(&s->n_active, 1, __ATOMIC_SEQ_CST);
}

/* ---- lifecycle ------------------------------------------------------------------ */

static bool is_loopback(const struct sockaddr *sa) {
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_LOOPBACK(&a->sin6_addr))
            return true;
        return IN6_IS_ADDR_V4MAPPED(&a->sin6_addr) && a->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static void server_free(mc_server *s) {
    if (!s)
        return;
    for (int i = 0; s->slots && i < s->n_slots; i++)
        mc_ctx_free(s->slots[i].c);
    free(s->slots);
    free(s->host);
    free(s->api_key);
    free(s->model_name);
    mc__srv_metrics_fini(&s->metrics);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    while (s->conns) { /* none after MHD_stop_daemon; kept tidy on failed starts */
        sconn *c = s->conns;
        s->conns = c->next;
        free(c);
    }
    pthread_mutex_destroy(&s->cmu);
    pthread_cond_destroy(&s->ccv);
    free(s);
}

static void reaper_stop(mc_server *s) {
    if (!s->reaper_started)
        return;
    pthread_mutex_lock(&s->cmu);
    s->reaper_stop = true;
    pthread_cond_broadcast(&s->ccv);
    pthread_mutex_unlock(&s->cmu);
    pthread_join(s->reaper, NULL);
    s->reaper_started = false;
}

int mc_server_start(mc_model *m, const mc_tok *tok, const mc_server_params *p, mc_server **out,
                    mc_err *err) {
    mc_server_params defaults = mc_server_params_default();
    if (!p)
        p = &defaults;
    *out = NULL;
    if (!m || !tok)
        return mc_err_set(err, MC_EINVAL, -1, "the server needs a model and its tokenizer");
    if (p->n_slots < 1 || p->n_slots > 64 || p->max_body < 1 || p->max_json_depth < 1 ||
        p->max_queue < 1 || p->port < 0 || p->port > 65535)
        return mc_err_set(err, MC_EINVAL, -1,
                          "bad server parameters (slots %d of 1..64, max_body %zu, depth %d, "
                          "queue %d, port %d)",
                          p->n_slots, p->max_body, p->max_json_depth, p->max_queue, p->port);
    if (p->max_connections < 1 || p->max_connections_per_ip < 1 || p->request_timeout_s < 1 ||
        p->max_body > SIZE_MAX / 4 || p->max_inflight_bytes < body_cost(p->max_body))
        return mc_err_set(err, MC_EINVAL, -1,
                          "bad server limits (connections %d and per address %d >= 1, request "
                          "timeout %d s >= 1, memory budget %zu >= 3 x max_body + 64 KiB = %zu)",
                          p->max_connections, p->max_connections_per_ip, p->request_timeout_s,
                          p->max_inflight_bytes, body_cost(MC_MIN(p->max_body, SIZE_MAX / 4)));
    const int n_vocab = mc_model_hparams(m)->n_vocab;
    if (mc_tok_n_vocab(tok) > n_vocab)
        return mc_err_set(err, MC_EINVAL, -1, "the tokenizer has %d tokens, the model %d",
                          (int)mc_tok_n_vocab(tok), n_vocab);
    const char *host = p->host ? p->host : "127.0.0.1";
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char port[16];
    snprintf(port, sizeof port, "%d", p->port);
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0 || !ai)
        return mc_err_set(err, MC_EINVAL, -1, "cannot resolve host '%s': %s", host, gai_strerror(gai));
    if (!is_loopback(ai->ai_addr) && !(p->api_key && *p->api_key)) {
        freeaddrinfo(ai);
        return mc_err_set(err, MC_EINVAL, -1,
                          "binding %s (not a loopback address) needs an API key (--api-key)", host);
    }

    mc_server *s = calloc(1, sizeof *s);
    if (!s) {
        freeaddrinfo(ai);
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_mutex_init(&s->cmu, NULL);
    cond_init_monotonic(&s->ccv);
    mc__srv_metrics_init(&s->metrics);
    s->m = m;
    s->tok = tok;
    s->p = *p;
    s->host = strdup(host);
    s->api_key = p->api_key && *p->api_key ? strdup(p->api_key) : NULL;
    s->key_len = s->api_key ? strlen(s->api_key) : 0;
    const char *name = p->model_name;
    mc_str gname = {0};
    char nbuf[256];
    if (!name) {
        if (mc_gguf_get_str(mc_model_gguf(m), "general.name", &gname) == 0 && gname.len > 0) {
            snprintf(nbuf, sizeof nbuf, "%.*s", (int)MC_MIN(gname.len, sizeof nbuf - 1), gname.ptr);
            name = nbuf;
        } else {
            name = "mccom";
        }
    }
    s->model_name = dup_or_null(name);
    s->p.host = s->host;
    s->p.api_key = s->api_key;
    s->p.model_name = s->model_name;
    s->seed_mix = (uint64_t)mc_time_ns();
    int rc = 0;
    if (!s->host || !s->model_name || (p->api_key && *p->api_key && !s->api_key)) {
        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        goto fail;
    }
    s->slots = calloc((size_t)p->n_slots, sizeof *s->slots);
    if (!s->slots) {
        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        goto fail;
    }
    s->n_slots = p->n_slots;
    for (int i = 0; i < s->n_slots; i++) {
        rc = mc_ctx_new(m, &p->ctx, &s->slots[i].c, err);
        if (rc != 0)
            goto fail;
    }
    s->env.tok = tok;
    s->env.n_vocab = n_vocab;
    s->env.n_ctx = mc_ctx_n_ctx(s->slots[0].c);
    s->env.max_json_depth = p->max_json_depth;
    s->env.max_piece = mc_tok_max_piece(tok);

    if (pthread_create(&s->engine, NULL, engine_main, s) != 0) {
        rc = mc_err_set(err, MC_ENOMEM, -1, "cannot start the engine thread");
        goto fail;
    }
    s->engine_started = true;
    if (pthread_create(&s->reaper, NULL, reaper_main, s) != 0) {
        rc = mc_err_set(err, MC_ENOMEM, -1, "cannot start the connection reaper thread");
        goto fail;
    }
    s->reaper_started = true;

    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (p->verbose)
        flags |= MHD_USE_ERROR_LOG;
    /* libmicrohttpd's connection limit is a backstop above ours (on_accept):
     * connections being closed still count until their threads are gone */
    s->d = MHD_start_daemon(flags, (uint16_t)p->port, on_accept, s, on_request, s,
                            MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)(2 * p->max_connections + 16),
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32 * 1024,
                            MHD_OPTION_END);
    if (!s->d) {
        rc = mc_err_set(err, MC_EIO, -1, "cannot listen on %s port %d (in use, or not allowed)",
                        host, p->port);
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di && di->port ? di->port : p->port;
    freeaddrinfo(ai);
    *out = s;
    return 0;

fail:
    freeaddrinfo(ai);
    reaper_stop(s);
    if (s->engine_started) {
        pthread_mutex_lock(&s->mu);
        s->stopping = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->engine, NULL);
    }
    server_free(s);
    return rc;
}

int mc_server_port(const mc_server *s) { return s ? s->port : 0; }

void mc_server_stop(mc_server *s) {
    if (!s)
        return;
    /* 1. refuse new work and cancel what is queued or running */
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    for (job *j = s->head; j; j = j->next)
        set_cancel(j);
    if (s->running)
        set_cancel(s->running);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    /* 2. the engine ends its job (gen sees the flag), fails the queue, exits */
    if (s->engine_started)
        pthread_join(s->engine, NULL);
    /* 3. every request now has its answer: let the connections send it (a
     * client that does not read gets STOP_FLUSH_S), then close them all */
    double t0 = mc_time_s();
    while (__atomic_load_n(&s->n_active, __ATOMIC_SEQ_CST) > 0 && mc_time_s() - t0 < STOP_FLUSH_S) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    reaper_stop(s);
    if (s->d)
        MHD_stop_daemon(s->d);
    server_free(s);
}
