/* src/lsp/worker.c — the worker thread of `mccom lsp`: it owns the models,
 * the cascade, one session per document and the attached retrieval index,
 * and runs the queued jobs one at a time.
 *
 * Latency rules (docs/lsp.md):
 *   - a request whose document continues the live suggestion (type-through)
 *     is answered at once: no debounce, no index work, no model;
 *   - any other request waits debounce_ms (0 by default) unless a newer
 *     request, an edit or $/cancelRequest cancels it first, and the cascade
 *     polls the same cancel flag between forward passes;
 *   - index updates for edited buffers are applied only after the worker has
 *     been idle for IDLE_MS, so typing never waits for the index.
 *
 * A cancelled request is answered with RequestCancelled (the client asked)
 * or ContentModified (an edit or a newer request made it stale). This file
 * does not parse messages; the reading thread hands it whole jobs. */
#include "lsp_internal.h"
#include "mccom/remote.h"

#include "mccom/llm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { IDLE_MS = 100 };

/* A document as the worker sees it: its session and the suggestion the
 * session shows, to recognise type-through before the session does. */
typedef struct wdoc {
    char *uri;
    mc_session *sess;
    bool has_base;
    size_t base_at;      /* cursor where the shown suggestion starts */
    uint64_t base_hash;  /* hash of the document before it */
    char *rest;          /* the whole suggestion text */
    size_t rest_len;
    uint64_t shown_id;   /* the last suggestion the client said it showed */
} wdoc;

/* An index update waiting for an idle moment. */
typedef struct pending {
    char *rel;
    mc__lsp_text *text; /* NULL: re-read the file from disk */
} pending;

struct mc__lsp_engine {
    mc__lsp_config cfg;
    bool have_cfg;
    mc_model *slm;
    mc_tok *tok;
    mc_model *llm_model;
    mc_llm *llm;
    mc_cascade *c;
    mc_retr_index *ix;
    mc_copy_index *cx;       /* tier 0, following ix (NULL: none) */
    char why_not[400];       /* why there is no cascade */
    bool client_reports_show;
    wdoc *docs;
    int n_docs, cap_docs;
    pending *pend;
    int n_pend, cap_pend;
};

/* ---- sessions ------------------------------------------------------------------- */

static void wdoc_forget(wdoc *w) {
    free(w->rest);
    w->rest = NULL;
    w->rest_len = 0;
    w->has_base = false;
}

static void wdoc_fini(wdoc *w) {
    mc_session_free(w->sess);
    wdoc_forget(w);
    free(w->uri);
}

static wdoc *wdoc_get(mc__lsp_engine *e, const char *uri, bool create) {
    for (int i = 0; i < e->n_docs; i++)
        if (!strcmp(e->docs[i].uri, uri))
            return &e->docs[i];
    if (!create)
        return NULL;
    if (e->n_docs == e->cap_docs) {
        int nc = e->cap_docs ? e->cap_docs * 2 : 8;
        wdoc *nd = realloc(e->docs, (size_t)nc * sizeof *nd);
        if (!nd)
            return NULL;
        e->docs = nd;
        e->cap_docs = nc;
    }
    wdoc *w = &e->docs[e->n_docs];
    memset(w, 0, sizeof *w);
    w->uri = strdup(uri);
    if (!w->uri)
        return NULL;
    e->n_docs++;
    return w;
}

static void wdoc_remove(mc__lsp_engine *e, const char *uri) {
    wdoc *w = wdoc_get(e, uri, false);
    if (!w)
        return;
    wdoc_fini(w);
    int i = (int)(w - e->docs);
    memmove(&e->docs[i], &e->docs[i + 1], (size_t)(e->n_docs - i - 1) * sizeof *w);
    e->n_docs--;
}

/* Sessions belong to a cascade: they go when it goes. */
static void drop_sessions(mc__lsp_engine *e) {
    for (int i = 0; i < e->n_docs; i++) {
        mc_session_free(e->docs[i].sess);
        e->docs[i].sess = NULL;
        wdoc_forget(&e->docs[i]);
    }
}

/* Whether the job's document continues the shown suggestion at its cursor
 * (and some of it is left: typed to its end, the session runs the cascade). */
static bool continues(const wdoc *w, const mc__lsp_job *j) {
    if (!w->has_base || j->cursor < w->base_at || j->cursor - w->base_at >= w->rest_len)
        return false;
    if (mc__lsp_hash(j->text->data, w->base_at) != w->base_hash)
        return false;
    return memcmp(j->text->data + w->base_at, w->rest, j->cursor - w->base_at) == 0;
}

static void remember(wdoc *w, const mc__lsp_job *j, const mc_suggestion *sug) {
    char *r = malloc(sug->len + 1);
    if (!r) {
        wdoc_forget(w);
        return;
    }
    memcpy(r, sug->text, sug->len + 1);
    free(w->rest);
    w->rest = r;
    w->rest_len = sug->len;
    w->base_at = j->cursor;
    w->base_hash = mc__lsp_hash(j->text->data, j->cursor);
    w->has_base = true;
}

/* ---- models --------------------------------------------------------------------- */

static void unload_llm(mc__lsp_engine *e) {
    if (e->c)
        mc_cascade_set_llm(e->c, NULL);
    mc_llm_free(e->llm);
    mc_model_free(e->llm_model);
    e->llm = NULL;
    e->llm_model = NULL;
}

static void unload(mc__lsp_engine *e) {
    drop_sessions(e);
    mc_cascade_free(e->c);
    e->c = NULL;
    unload_llm(e);
    mc_tok_free(e->tok);
    mc_model_free(e->slm);
    e->tok = NULL;
    e->slm = NULL;
}

static mc_ctx_params ctx_params(const mc__lsp_config *cfg) {
    mc_ctx_params cp = mc_ctx_params_default();
    cp.n_threads = cfg->n_threads;
    cp.n_ctx = cfg->n_ctx;
    return cp;
}

static mc_cascade_params cascade_params(const mc__lsp_config *cfg) {
    mc_cascade_params p = mc_cascade_params_default();
    p.tau = cfg->tau;
    p.retrieval = cfg->retrieval;
    p.copy = cfg->copy;
    p.tau_copy = cfg->tau_copy;
    p.llm_budget_ms = cfg->llm_budget_ms;
    if (cfg->max_line_tokens > 0)
        p.max_line_tokens = cfg->max_line_tokens;
    return p;
}

static void load_llm(mc_lsp_server *s, mc__lsp_engine *e, const mc__lsp_config *cfg) {
    mc_err err;
    if (cfg->llm_url && strcmp(cfg->llm_url, "none") != 0) {
        if (!e->tok)
            return;
        mc_remote_params rp = mc_remote_params_default();
        rp.url = cfg->llm_url;
        rp.api_key = cfg->llm_api_key;
        rp.log_path = cfg->llm_log;
        if (mc_llm_remote_new(&rp, e->tok, &e->llm, &err) != 0) {
            mc__lsp_log(s, 0, "large model %s: %s", cfg->llm_url, err.msg);
            mc__lsp_show_message(s, 1, "mccom: large model %s: %s", cfg->llm_url, err.msg);
            e->llm = NULL;
            return;
        }
        mc__lsp_log(s, 1, "large model: %s", mc_llm_describe(e->llm));
        return;
    }
    if (cfg->llm_url || !cfg->llm_path || !e->tok)
        return; /* llmUrl "none": the small model alone, nothing leaves the machine */
    if (mc_model_load(cfg->llm_path, &e->llm_model, &err) != 0) {
        mc__lsp_log(s, 0, "large model %s: %s", cfg->llm_path, err.msg);
        mc__lsp_show_message(s, 1, "mccom: large model %s: %s", cfg->llm_path, err.msg);
        return;
    }
    if (mc_model_hparams(e->llm_model)->n_vocab < mc_tok_n_vocab(e->tok)) {
        mc__lsp_log(s, 0, "large model %s: its %d-token vocabulary is not the small model's (%d)",
                    cfg->llm_path, mc_model_hparams(e->llm_model)->n_vocab, mc_tok_n_vocab(e->tok));
        mc__lsp_show_message(s, 1, "mccom: the large model does not share the small model's vocabulary");
        mc_model_free(e->llm_model);
        e->llm_model = NULL;
        return;
    }
    mc_ctx_params cp = ctx_params(cfg);
    if (mc_llm_local_new(e->llm_model, e->tok, &cp, &e->llm, &err) != 0) {
        mc__lsp_log(s, 0, "large model %s: %s", cfg->llm_path, err.msg);
        mc__lsp_show_message(s, 1, "mccom: large model %s: %s", cfg->llm_path, err.msg);
        mc_model_free(e->llm_model);
        e->llm_model = NULL;
        return;
    }
    mc__lsp_log(s, 1, "large model: %s", mc_llm_describe(e->llm));
}

static void load_slm(mc_lsp_server *s, mc__lsp_engine *e, const mc__lsp_config *cfg) {
    mc_err err;
    mc_err_clear(&err);
    if (!cfg->slm_path) {
        snprintf(e->why_not, sizeof e->why_not,
                 "no small model is configured (initializationOptions.slmModel or --slm)");
        return;
    }
    const char *what = cfg->slm_path;
    int rc = mc_model_load(cfg->slm_path, &e->slm, &err);
    if (rc == 0) {
        what = cfg->tokenizer_path ? cfg->tokenizer_path : cfg->slm_path;
        rc = cfg->tokenizer_path ? mc_tok_load_gguf_file(cfg->tokenizer_path, &e->tok, &err)
                                 : mc_tok_load_gguf(mc_model_gguf(e->slm), &e->tok, &err);
    }
    if (rc == 0 && mc_model_hparams(e->slm)->n_vocab < mc_tok_n_vocab(e->tok))
        rc = mc_err_set(&err, MC_EINVAL, -1, "the vocabulary (%d tokens) is larger than the model's (%d)",
                        mc_tok_n_vocab(e->tok), mc_model_hparams(e->slm)->n_vocab);
    if (rc == 0) {
        load_llm(s, e, cfg);
        mc_cascade_params p = cascade_params(cfg);
        mc_ctx_params cp = ctx_params(cfg);
        what = "cascade";
        rc = mc_cascade_new(&p, e->slm, e->tok, e->llm, e->ix, &cp, &e->c, &err);
        if (rc == 0)
            mc_cascade_set_copy(e->c, e->cx);
    }
    if (rc != 0) {
        snprintf(e->why_not, sizeof e->why_not, "%s: %s", what, err.msg);
        mc__lsp_log(s, 0, "%s", e->why_not);
        mc__lsp_show_message(s, 1, "mccom: %s", e->why_not);
        unload(e);
        return;
    }
    e->why_not[0] = '\0';
    mc__lsp_log(s, 1, "small model: %s%s", cfg->slm_path, e->llm ? "" : "; no large model");
}

static void configure(mc_lsp_server *s, mc__lsp_engine *e, mc__lsp_config *cfg) {
    if (!s->p.load_files) {
        snprintf(e->why_not, sizeof e->why_not, "model loading is disabled in this server");
    } else if (!e->have_cfg || mc__lsp_config_models_differ(&e->cfg, cfg)) {
        unload(e);
        load_slm(s, e, cfg);
    } else if (mc__lsp_config_llm_differs(&e->cfg, cfg)) {
        drop_sessions(e); /* a shown suggestion may come from the old tier */
        unload_llm(e);
        load_llm(s, e, cfg);
        if (e->c)
            mc_cascade_set_llm(e->c, e->llm);
    }
    if (e->c) {
        mc_cascade_params p = cascade_params(cfg);
        mc_err err;
        if (mc_cascade_set_params(e->c, &p, &err) != 0) {
            mc__lsp_log(s, 0, "configuration: %s", err.msg);
            mc__lsp_show_message(s, 1, "mccom: %s", err.msg);
        }
    }
    mc__lsp_config_fini(&e->cfg);
    e->cfg = *cfg;
    memset(cfg, 0, sizeof *cfg);
    e->have_cfg = true;
}

/* ---- the index ----------------------------------------------------------------- */

static void pend_add(mc_lsp_server *s, mc__lsp_engine *e, const char *rel, mc__lsp_text *t) {
    for (int i = 0; i < e->n_pend; i++) {
        if (!strcmp(e->pend[i].rel, rel)) {
            mc__lsp_text_unref(e->pend[i].text);
            e->pend[i].text = mc__lsp_text_ref(t);
            return;
        }
    }
    if (e->n_pend == e->cap_pend) {
        int nc = e->cap_pend ? e->cap_pend * 2 : 8;
        pending *np = realloc(e->pend, (size_t)nc * sizeof *np);
        if (!np) {
            mc__lsp_log(s, 0, "out of memory: the index misses an edit of %s", rel);
            return;
        }
        e->pend = np;
        e->cap_pend = nc;
    }
    char *r = strdup(rel);
    if (!r)
        return;
    e->pend[e->n_pend].rel = r;
    e->pend[e->n_pend].text = mc__lsp_text_ref(t);
    e->n_pend++;
}

/* Apply the waiting index updates (the worker is idle, or an index arrived). */
static void pend_apply(mc_lsp_server *s, mc__lsp_engine *e) {
    if (!e->ix)
        return;
    for (int i = 0; i < e->n_pend; i++) {
        pending *p = &e->pend[i];
        mc_err err;
        int rc = p->text ? mc_retr_set_file(e->ix, p->rel, p->text->data, p->text->len, &err)
                         : mc_retr_update_file(e->ix, p->rel, &err);
        if (rc < 0)
            mc__lsp_log(s, 0, "index update of %s: %s", p->rel, err.msg);
        else
            mc__lsp_log(s, 2, "index: %s %s", p->text ? "buffer" : "file", p->rel);
        free(p->rel);
        mc__lsp_text_unref(p->text);
    }
    e->n_pend = 0;
}

/* The copy tier's index, following the attached retrieval index: built here
 * once (the cascade syncs it with every later index update itself). */
static void attach_copy(mc_lsp_server *s, mc__lsp_engine *e) {
    if (!e->ix)
        return;
    mc_err err;
    double t0 = mc_time_s();
    if (mc_copy_new(&e->cx, e->ix, &err) != 0 || mc_copy_sync(e->cx, NULL, &err) != 0) {
        mc__lsp_log(s, 0, "copy index: %s; the copy tier is off", err.msg);
        mc_copy_free(e->cx);
        e->cx = NULL;
        return;
    }
    mc_copy_stats st;
    mc_copy_get_stats(e->cx, &st);
    mc__lsp_log(s, 1, "copy index: %d files, %lld lines in %.0f ms", st.n_files,
                (long long)st.n_lines, (mc_time_s() - t0) * 1e3);
    if (e->c)
        mc_cascade_set_copy(e->c, e->cx);
}

/* ---- replies ---------------------------------------------------------------------- */

static const char *source_name(const mc_suggestion *g) {
    return g->source == MC_SRC_LLM ? "llm" : g->source == MC_SRC_COPY ? "copy" : "slm";
}

/* One InlineCompletionItem for a suggestion at the job's cursor, with mccom's
 * own member "mccom" (the id the notifications name, and where it came from),
 * or NULL when there is nothing to show. */
static json_t *item_of(mc_lsp_server *s, const mc__lsp_job *j, const mc_suggestion *sug,
                       bool reused) {
    size_t n = mc__lsp_utf8_valid_prefix(sug->text, sug->len);
    if (n == 0)
        return NULL;
    uint32_t line, ch;
    mc_lsp_position(j->text->data, j->text->len, j->cursor, s->enc, &line, &ch);
    json_t *pos = json_pack("{s:I, s:I}", "line", (json_int_t)line, "character", (json_int_t)ch);
    json_t *it = json_pack(
        "{s:s%, s:{s:O, s:o}, s:{s:s, s:s, s:[{s:s, s:I}]}, s:{s:I, s:s, s:s, s:f, s:b, s:f}}",
        "insertText", sug->text, n, "range", "start", pos, "end", pos, "command", "title",
        "mccom: accepted", "command", "mccom.accept", "arguments", "uri", j->uri, "id",
        (json_int_t)sug->id, "mccom", "id", (json_int_t)sug->id, "source", source_name(sug),
        "path", mc_cascade_path_name(sug->path), "confidence", (double)sug->confidence, "reused",
        reused, "ms", reused ? 0.0 : sug->st.ms_total);
    if (it && sug->source == MC_SRC_COPY) { /* where the line was copied from, and how sure */
        json_t *mc = json_object_get(it, "mccom");
        json_object_set_new(mc, "precision", json_real(sug->copy_precision));
        json_object_set_new(mc, "copiedFrom", json_pack("{s:s, s:i}", "file", sug->copy_file,
                                                        "line", sug->copy_line));
    }
    return it;
}

/* The suggestion as a CompletionList for editors without inline completion:
 * one item that replaces the word before the cursor with that word and the
 * rest of the line (so that the client's filtering by the typed word keeps
 * it); isIncomplete, so the client asks again as the user types. */
static json_t *completion_list(mc_lsp_server *s, const mc__lsp_job *j, const mc_suggestion *sug) {
    json_t *items = json_array();
    size_t n = mc__lsp_utf8_valid_prefix(sug->text, sug->len);
    if (n > 0) {
        const char *t = j->text->data;
        size_t w = j->cursor;
        while (w > 0 && (t[w - 1] == '_' || (t[w - 1] >= '0' && t[w - 1] <= '9') ||
                         ((t[w - 1] | 0x20) >= 'a' && (t[w - 1] | 0x20) <= 'z') ||
                         (unsigned char)t[w - 1] >= 0x80))
            w--;
        size_t wl = j->cursor - w;
        char *full = malloc(wl + n + 1);
        if (full) {
            memcpy(full, t + w, wl);
            memcpy(full + wl, sug->text, n);
            full[wl + n] = '\0';
            uint32_t l0, c0, l1, c1;
            mc_lsp_position(t, j->text->len, w, s->enc, &l0, &c0);
            mc_lsp_position(t, j->text->len, j->cursor, s->enc, &l1, &c1);
            json_array_append_new(
                items,
                json_pack("{s:s, s:i, s:s, s:s, s:s, s:b, s:{s:{s:{s:I, s:I}, s:{s:I, s:I}}, s:s}, "
                          "s:{s:s, s:s, s:[{s:s, s:I}]}, s:{s:I, s:s, s:s}}",
                          "label", full, "kind", 1, "detail",
                          sug->source == MC_SRC_LLM    ? "mccom: large model"
                          : sug->source == MC_SRC_COPY ? "mccom: copied"
                                                       : "mccom",
                          "filterText", full,
                          "sortText", "0", "preselect", 1, "textEdit", "range", "start", "line",
                          (json_int_t)l0, "character", (json_int_t)c0, "end", "line",
                          (json_int_t)l1, "character", (json_int_t)c1, "newText", full, "command",
                          "title", "mccom: accepted", "command", "mccom.accept", "arguments",
                          "uri", j->uri, "id", (json_int_t)sug->id, "mccom", "id",
                          (json_int_t)sug->id, "source", source_name(sug), "path",
                          mc_cascade_path_name(sug->path)));
            free(full);
        }
    }
    return json_pack("{s:b, s:o}", "isIncomplete", 1, "items", items);
}

static void reply_cancel(mc_lsp_server *s, const mc__lsp_job *j) {
    mc__lsp_reply_error(s, j->id, j->cancel_code ? j->cancel_code : LSP_REQUEST_CANCELLED, "%s",
                        j->cancel_why ? j->cancel_why : "canceled");
}

/* Wait until the job's debounce time is over; false if it was cancelled. */
static bool debounce(mc_lsp_server *s, mc__lsp_job *j, int ms) {
    if (ms <= 0)
        return !j->cancel;
    double until = j->t_queued + ms * 1e-3;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double wait = until - mc_time_s();
    if (wait <= 0)
        return !j->cancel;
    long long ns = (long long)ts.tv_nsec + (long long)(wait * 1e9);
    ts.tv_sec += (time_t)(ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    pthread_mutex_lock(&s->qlock);
    while (!j->cancel && !s->stop && mc_time_s() < until)
        if (pthread_cond_timedwait(&s->qcond, &s->qlock, &ts) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&s->qlock);
    return !j->cancel && !s->stop;
}

static mc_cascade_doc doc_of(const mc__lsp_job *j) {
    mc_cascade_doc d;
    memset(&d, 0, sizeof d);
    d.path = j->path;
    d.text = j->text->data;
    d.len = j->text->len;
    d.cursor = j->cursor;
    d.line = (int)j->line;
    d.n_lines = 1;
    return d;
}

static void run_complete(mc_lsp_server *s, mc__lsp_engine *e, mc__lsp_job *j) {
    if (j->cancel) {
        reply_cancel(s, j);
        return;
    }
    if (!e->c) {
        mc__lsp_reply_error(s, j->id, LSP_REQUEST_FAILED, "%s",
                            e->why_not[0] ? e->why_not : "the models are not loaded yet");
        return;
    }
    wdoc *w = wdoc_get(e, j->uri, true);
    if (w && !w->sess)
        w->sess = mc_session_new(e->c);
    if (!w || !w->sess) {
        mc__lsp_reply_error(s, j->id, RPC_INTERNAL_ERROR, "out of memory");
        return;
    }
    bool through = continues(w, j);
    if (!through) {
        if (!debounce(s, j, e->cfg.debounce_ms)) {
            reply_cancel(s, j);
            return;
        }
        /* A suggestion the client never showed cannot be rejected: when the
         * client reports what it shows, an unshown one is dropped, not
         * turned into an escalation by the next keystroke. */
        const mc_suggestion *cur = mc_session_current(w->sess);
        if (e->client_reports_show && cur && cur->id != w->shown_id)
            mc_session_cursor_moved(w->sess);
    }
    mc_session_stats before, after;
    mc_session_get_stats(w->sess, &before);
    mc_cascade_doc d = doc_of(j);
    const mc_suggestion *sug = NULL;
    mc_err err;
    mc_err_clear(&err);
    int rc;
    if (j->trigger == 1) {
        /* an explicit request while a small-model line is shown: re-ask the large model */
        rc = mc_session_escalate(w->sess, &d, &j->cancel, &sug, &err);
        if (rc == MC_ENOTFOUND)
            rc = mc_session_request(w->sess, &d, &j->cancel, &sug, &err);
    } else {
        rc = mc_session_request(w->sess, &d, &j->cancel, &sug, &err);
    }
    if (rc == MC_ECANCELED) {
        reply_cancel(s, j);
        return;
    }
    if (rc != 0) {
        mc__lsp_reply_error(s, j->id, LSP_REQUEST_FAILED, "completion failed: %s", err.msg);
        return;
    }
    mc_session_get_stats(w->sess, &after);
    bool reused = after.reused > before.reused;
    if (!reused)
        remember(w, j, sug);
    if (j->as_completion) {
        mc__lsp_reply(s, j->id, completion_list(s, j, sug));
    } else {
        json_t *items = json_array();
        json_t *it = item_of(s, j, sug, reused);
        if (it)
            json_array_append_new(items, it);
        mc__lsp_reply(s, j->id, json_pack("{s:o}", "items", items));
    }
    mc__lsp_log(s, 2, "completion %llu: %s %s, %zu bytes, %.1f ms in the cascade, %.1f ms since queued",
                (unsigned long long)sug->id, source_name(sug),
                reused ? "reused" : mc_cascade_path_name(sug->path), sug->len,
                reused ? 0.0 : sug->st.ms_total, (mc_time_s() - j->t_queued) * 1e3);
}

static void run_event(mc_lsp_server *s, mc__lsp_engine *e, mc__lsp_job *j) {
    wdoc *w = wdoc_get(e, j->uri, false);
    const mc_suggestion *cur = w && w->sess ? mc_session_current(w->sess) : NULL;
    static const char *const names[] = {"didShow", "didAccept", "didReject"};
    if (!cur || (j->has_sug_id && cur->id != j->sug_id)) {
        mc__lsp_log(s, 2, "mccom/%s for suggestion %llu: not the shown one; ignored",
                    names[j->event], (unsigned long long)j->sug_id);
        return;
    }
    if (j->event == EV_SHOW) {
        w->shown_id = cur->id;
        e->client_reports_show = true;
        return;
    }
    if (j->event == EV_ACCEPT) {
        mc_session_accepted(w->sess, j->arg ? j->arg_len : cur->len);
        mc__lsp_log(s, 2, "accepted %zu bytes of %llu", j->arg ? j->arg_len : cur->len,
                    (unsigned long long)j->sug_id);
        return;
    }
    /* a rejection: the large model's line, pushed when it is ready */
    mc__lsp_log(s, 2, "rejected %llu%s%.*s", (unsigned long long)cur->id,
                j->arg ? " after typing " : "", j->arg ? (int)MC_MIN(j->arg_len, (size_t)40) : 0,
                j->arg ? j->arg : "");
    mc_session_rejected(w->sess);
    wdoc_forget(w);
    if (!j->has_cursor || !e->llm || !mc_session_pending(w->sess) || j->cancel)
        return;
    mc_cascade_doc d = doc_of(j);
    const mc_suggestion *sug = NULL;
    mc_err err;
    mc_err_clear(&err);
    int rc = mc_session_request(w->sess, &d, &j->cancel, &sug, &err);
    if (rc != 0) {
        mc__lsp_log(s, rc == MC_ECANCELED ? 2 : 0, "escalation: %s", err.msg);
        return;
    }
    remember(w, j, sug);
    if (sug->source != MC_SRC_LLM || sug->st.llm_failed) {
        mc__lsp_log(s, 1, "escalation: the large model did not answer; nothing pushed");
        return;
    }
    json_t *it = item_of(s, j, sug, false);
    json_t *items = json_array();
    if (it)
        json_array_append_new(items, it);
    uint32_t line, ch;
    mc_lsp_position(j->text->data, j->text->len, j->cursor, s->enc, &line, &ch);
    mc__lsp_notify(s, "mccom/suggestion",
                   json_pack("{s:{s:s, s:i}, s:{s:I, s:I}, s:o}", "textDocument", "uri", j->uri,
                             "version", j->version, "position", "line", (json_int_t)line,
                             "character", (json_int_t)ch, "items", items));
    mc__lsp_log(s, 2, "pushed suggestion %llu (%s, %.1f ms)", (unsigned long long)sug->id,
                mc_cascade_path_name(sug->path), sug->st.ms_total);
}

static void run_job(mc_lsp_server *s, mc__lsp_engine *e, mc__lsp_job *j) {
    switch (j->kind) {
    case JOB_CONFIG:
        configure(s, e, &j->cfg);
        break;
    case JOB_COMPLETE:
        run_complete(s, e, j);
        break;
    case JOB_EVENT:
        run_event(s, e, j);
        break;
    case JOB_INDEX_SET:
    case JOB_INDEX_DISK:
        pend_add(s, e, j->rel, j->kind == JOB_INDEX_SET ? j->text : NULL);
        break;
    case JOB_INDEX_ATTACH:
        if (e->c)
            mc_cascade_set_copy(e->c, NULL);
        mc_copy_free(e->cx); /* it follows the old index */
        e->cx = NULL;
        mc_retr_free(e->ix);
        e->ix = j->ix;
        j->ix = NULL;
        if (e->c)
            mc_cascade_set_index(e->c, e->ix);
        attach_copy(s, e);
        pend_apply(s, e);
        break;
    case JOB_CLOSE:
        wdoc_remove(e, j->uri);
        break;
    }
}

static void *worker_main(void *arg) {
    mc_lsp_server *s = arg;
    mc__lsp_engine *e = s->eng;
    pthread_mutex_lock(&s->qlock);
    for (;;) {
        while (!s->stop && !s->qhead) {
            if (e->n_pend > 0 && e->ix) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += IDLE_MS * 1000000L;
                ts.tv_sec += ts.tv_nsec / 1000000000L;
                ts.tv_nsec %= 1000000000L;
                int rc = pthread_cond_timedwait(&s->qcond, &s->qlock, &ts);
                if (rc == ETIMEDOUT && !s->qhead && !s->stop) {
                    pthread_mutex_unlock(&s->qlock);
                    pend_apply(s, e);
                    pthread_mutex_lock(&s->qlock);
                }
            } else {
                pthread_cond_wait(&s->qcond, &s->qlock);
            }
        }
        if (s->stop)
            break;
        mc__lsp_job *j = s->qhead;
        s->qhead = j->next;
        if (!s->qhead)
            s->qtail = NULL;
        j->next = NULL;
        s->running = j;
        pthread_mutex_unlock(&s->qlock);
        run_job(s, e, j);
        pthread_mutex_lock(&s->qlock);
        s->running = NULL;
        pthread_mutex_unlock(&s->qlock);
        mc__lsp_job_free(j);
        pthread_mutex_lock(&s->qlock);
    }
    /* stopping: what is left is dropped (no client waits for it any more) */
    mc__lsp_job *j = s->qhead;
    s->qhead = s->qtail = NULL;
    pthread_mutex_unlock(&s->qlock);
    while (j) {
        mc__lsp_job *n = j->next;
        mc__lsp_job_free(j);
        j = n;
    }
    return NULL;
}

int mc__lsp_worker_start(mc_lsp_server *s, mc_err *err) {
    s->eng = calloc(1, sizeof *s->eng);
    if (!s->eng)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    snprintf(s->eng->why_not, sizeof s->eng->why_not, "the server is not initialized");
    if (pthread_create(&s->worker, NULL, worker_main, s) != 0)
        return mc_err_set(err, MC_EIO, -1, "cannot start the worker thread");
    s->worker_started = true;
    return 0;
}

void mc__lsp_worker_join(mc_lsp_server *s) {
    if (s->worker_started)
        pthread_join(s->worker, NULL);
    s->worker_started = false;
    mc__lsp_engine *e = s->eng;
    if (!e)
        return;
    unload(e);
    mc_copy_free(e->cx);
    for (int i = 0; i < e->n_docs; i++)
        wdoc_fini(&e->docs[i]);
    free(e->docs);
    for (int i = 0; i < e->n_pend; i++) {
        free(e->pend[i].rel);
        mc__lsp_text_unref(e->pend[i].text);
    }
    free(e->pend);
    mc_retr_free(e->ix);
    mc__lsp_config_fini(&e->cfg);
    free(e);
    s->eng = NULL;
}
