/* src/lsp/server.c — the reading thread's side of `mccom lsp`: message
 * dispatch, the lifecycle (initialize … shutdown, exit), the open documents
 * and their edits, the job queue the worker drains (with cancellation:
 * $/cancelRequest, a newer request, an edit), the background index build and
 * its $/progress.
 *
 * Every request gets exactly one response: here for the cheap ones, from the
 * worker for completions (also when they are cancelled). This file never runs
 * a model and never touches the index the worker has. */
#include "lsp_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char PROGRESS_TOKEN[] = "mccom/index";
static const char PROGRESS_CREATE_ID[] = "mccom/progress-create";

mc_lsp_params mc_lsp_params_default(void) {
    mc_lsp_params p;
    memset(&p, 0, sizeof p);
    p.tau = mc_cascade_params_default().tau;
    p.retrieval = true;
    p.copy = true;
    p.tau_copy = mc_cascade_params_default().tau_copy;
    p.llm_budget_ms = mc_cascade_params_default().llm_budget_ms;
    p.max_message_bytes = (size_t)64 << 20;
    p.load_files = true;
    p.log_level = 1;
    p.version = "0";
    return p;
}

void mc__lsp_job_free(mc__lsp_job *j) {
    if (!j)
        return;
    if (j->id)
        json_decref(j->id);
    free(j->uri);
    free(j->path);
    free(j->rel);
    free(j->arg);
    mc__lsp_text_unref(j->text);
    mc__lsp_config_fini(&j->cfg);
    mc_retr_free(j->ix);
    free(j);
}

/* ---- the queue ------------------------------------------------------------------- */

static void enqueue_locked(mc_lsp_server *s, mc__lsp_job *j) {
    j->t_queued = mc_time_s();
    if (s->qtail)
        s->qtail->next = j;
    else
        s->qhead = j;
    s->qtail = j;
    pthread_cond_broadcast(&s->qcond);
}

static void enqueue(mc_lsp_server *s, mc__lsp_job *j) {
    pthread_mutex_lock(&s->qlock);
    if (s->stop) {
        pthread_mutex_unlock(&s->qlock);
        mc__lsp_job_free(j);
        return;
    }
    enqueue_locked(s, j);
    pthread_mutex_unlock(&s->qlock);
}

static void cancel_job(mc__lsp_job *j, int code, const char *why) {
    if (j->cancel)
        return;
    j->cancel_code = code;
    j->cancel_why = why;
    __atomic_store_n(&j->cancel, 1, __ATOMIC_RELEASE);
}

/* Cancel the completions (and escalations) of a document, under qlock. */
static void cancel_doc_locked(mc_lsp_server *s, const char *uri, int code, const char *why) {
    for (mc__lsp_job *j = s->qhead; j; j = j->next)
        if ((j->kind == JOB_COMPLETE || (j->kind == JOB_EVENT && j->has_cursor)) &&
            !strcmp(j->uri, uri))
            cancel_job(j, code, why);
    mc__lsp_job *r = s->running;
    if (r && (r->kind == JOB_COMPLETE || (r->kind == JOB_EVENT && r->has_cursor)) &&
        !strcmp(r->uri, uri))
        cancel_job(r, code, why);
    pthread_cond_broadcast(&s->qcond);
}

static mc__lsp_job *job_new(int kind) {
    mc__lsp_job *j = calloc(1, sizeof *j);
    if (j)
        j->kind = kind;
    return j;
}

/* ---- documents ----------------------------------------------------------------- */

static mc__lsp_doc *doc_find(mc_lsp_server *s, const char *uri) {
    for (int i = 0; i < s->n_docs; i++)
        if (!strcmp(s->docs[i].uri, uri))
            return &s->docs[i];
    return NULL;
}

static void doc_fini(mc__lsp_doc *d) {
    free(d->uri);
    free(d->path);
    free(d->rel);
    mc__lsp_text_unref(d->text);
    memset(d, 0, sizeof *d);
}

static void doc_remove(mc_lsp_server *s, mc__lsp_doc *d) {
    doc_fini(d);
    int i = (int)(d - s->docs);
    memmove(&s->docs[i], &s->docs[i + 1], (size_t)(s->n_docs - i - 1) * sizeof *d);
    s->n_docs--;
}

/* The document's path relative to the root, if it is under it. */
static char *rel_of(const mc_lsp_server *s, const char *path) {
    char *r = mc__lsp_relpath(s->root, path);
    if (!r && s->root_real)
        r = mc__lsp_relpath(s->root_real, path);
    return r;
}

/* ---- the index build ----------------------------------------------------------- */

static void *indexer_main(void *arg) {
    mc_lsp_server *s = arg;
    mc_err err;
    mc_err_clear(&err);
    mc_retr_index *ix = NULL;
    mc_retr_sync_stats st;
    memset(&st, 0, sizeof st);
    int rc = mc_retr_new(&ix, s->root, NULL, NULL, &err);
    if (rc == 0)
        rc = mc_retr_sync(ix, &st, &err);
    mc_retr_stats rs;
    memset(&rs, 0, sizeof rs);
    if (rc == 0)
        mc_retr_get_stats(ix, &rs);
    pthread_mutex_lock(&s->ilock);
    s->idx_state = rc == 0 ? IDX_DONE : IDX_FAILED;
    s->idx_t1 = mc_time_s();
    s->idx_stats = st;
    s->idx_files = rs.n_files;
    s->idx_windows = rs.n_windows;
    snprintf(s->idx_error, sizeof s->idx_error, "%s", rc == 0 ? "" : err.msg);
    double secs = s->idx_t1 - s->idx_t0;
    pthread_mutex_unlock(&s->ilock);
    if (rc == 0)
        mc__lsp_log(s, 1, "index of %s: %d files, %d windows in %.2f s", s->root, rs.n_files,
                    rs.n_windows, secs);
    else
        mc__lsp_log(s, 0, "index of %s failed: %s", s->root, err.msg);
    mc__lsp_job *j = rc == 0 ? job_new(JOB_INDEX_ATTACH) : NULL;
    if (j) {
        j->ix = ix;
        ix = NULL;
        enqueue(s, j); /* frees it if the server is stopping */
    }
    mc_retr_free(ix);
    ssize_t w = write(s->wake[1], "i", 1);
    (void)w;
    return NULL;
}

static void maybe_start_index(mc_lsp_server *s) {
    if (!s->p.load_files || !s->cfg.retrieval || !s->root || s->idx_enabled)
        return;
    s->idx_enabled = true;
    pthread_mutex_lock(&s->ilock);
    s->idx_state = IDX_BUILDING;
    s->idx_t0 = mc_time_s();
    pthread_mutex_unlock(&s->ilock);
    if (pthread_create(&s->indexer, NULL, indexer_main, s) != 0) {
        mc__lsp_log(s, 0, "cannot start the index thread: retrieval is off");
        pthread_mutex_lock(&s->ilock);
        s->idx_state = IDX_FAILED;
        pthread_mutex_unlock(&s->ilock);
        return;
    }
    s->indexer_started = true;
    if (s->cap_progress) {
        json_t *m = json_pack("{s:s, s:s, s:s, s:{s:s}}", "jsonrpc", "2.0", "id",
                              PROGRESS_CREATE_ID, "method", "window/workDoneProgress/create",
                              "params", "token", PROGRESS_TOKEN);
        mc__lsp_send(s, m);
        s->prog = PROG_CREATING;
    }
}

static void progress(mc_lsp_server *s, json_t *value) {
    mc__lsp_notify(s, "$/progress", json_pack("{s:s, s:o}", "token", PROGRESS_TOKEN, "value", value));
}

void mc_lsp_server_tick(mc_lsp_server *s) {
    char drain[64];
    while (read(s->wake[0], drain, sizeof drain) > 0) {
    }
    if (s->prog == PROG_READY) {
        progress(s, json_pack("{s:s, s:s, s:s, s:b, s:i}", "kind", "begin", "title",
                              "mccom: indexing", "message", s->root, "cancellable", 0,
                              "percentage", 0));
        s->prog = PROG_ACTIVE;
        s->prog_last = mc_time_s();
    }
    if (s->prog != PROG_ACTIVE)
        return;
    pthread_mutex_lock(&s->ilock);
    int st = s->idx_state;
    double t0 = s->idx_t0, t1 = s->idx_t1;
    int files = s->idx_files, windows = s->idx_windows;
    char e[256];
    snprintf(e, sizeof e, "%s", s->idx_error);
    pthread_mutex_unlock(&s->ilock);
    char msg[320];
    if (st == IDX_DONE || st == IDX_FAILED) {
        if (st == IDX_DONE)
            snprintf(msg, sizeof msg, "%d files, %d windows in %.1f s", files, windows, t1 - t0);
        else
            snprintf(msg, sizeof msg, "failed: %s", e);
        msg[mc__lsp_utf8_valid_prefix(msg, strlen(msg))] = '\0';
        progress(s, json_pack("{s:s, s:s, s:i}", "kind", "report", "message", msg, "percentage", 100));
        progress(s, json_pack("{s:s, s:s}", "kind", "end", "message", msg));
        s->prog = PROG_DONE;
    } else if (mc_time_s() - s->prog_last >= 1.0) {
        snprintf(msg, sizeof msg, "reading files (%.0f s)", mc_time_s() - t0);
        progress(s, json_pack("{s:s, s:s}", "kind", "report", "message", msg));
        s->prog_last = mc_time_s();
    }
}

int mc_lsp_server_tick_ms(const mc_lsp_server *s) { return s->prog == PROG_ACTIVE ? 250 : -1; }
int mc_lsp_server_wake_fd(const mc_lsp_server *s) { return s->wake[0]; }

/* ---- configuration ----------------------------------------------------------------- */

static void send_config(mc_lsp_server *s) {
    mc__lsp_job *j = job_new(JOB_CONFIG);
    if (!j || mc__lsp_config_copy(&j->cfg, &s->cfg) != 0) {
        free(j);
        mc__lsp_log(s, 0, "out of memory: configuration not applied");
        return;
    }
    enqueue(s, j);
}

static void apply_settings(mc_lsp_server *s, const json_t *o, const char *where) {
    char msg[512];
    int n = mc__lsp_config_apply(&s->cfg, o, msg, sizeof msg);
    if (n > 0) {
        mc__lsp_log(s, 0, "%s: %s", where, msg);
        mc__lsp_show_message(s, 2, "mccom: %s: %s", where, msg);
    }
}

/* ---- requests -------------------------------------------------------------------------- */

static bool has_string(const json_t *arr, const char *want) {
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        if (json_is_string(v) && !strcmp(json_string_value(v), want))
            return true;
    }
    return false;
}

static void on_initialize(mc_lsp_server *s, json_t *id, json_t *params) {
    if (s->initialized) {
        mc__lsp_reply_error(s, id, RPC_INVALID_REQUEST, "initialize was already received");
        return;
    }
    if (!json_is_object(params)) {
        mc__lsp_reply_error(s, id, RPC_INVALID_PARAMS, "initialize needs an InitializeParams object");
        return;
    }
    json_t *caps = json_object_get(params, "capabilities");
    json_t *general = json_object_get(caps, "general");
    json_t *encs = json_object_get(general, "positionEncodings");
    s->enc = json_is_array(encs) && has_string(encs, "utf-8") ? MC_LSP_UTF8 : MC_LSP_UTF16;
    json_t *window = json_object_get(caps, "window");
    s->cap_progress = json_is_true(json_object_get(window, "workDoneProgress"));
    /* the workspace root */
    const char *ru = mc__json_str(params, "rootUri");
    char *root = ru ? mc__lsp_uri_to_path(ru) : NULL;
    if (!root && mc__json_str(params, "rootPath"))
        root = strdup(mc__json_str(params, "rootPath"));
    json_t *folders = json_object_get(params, "workspaceFolders");
    if (!root && json_is_array(folders) && json_array_size(folders) > 0) {
        const char *fu = mc__json_str(json_array_get(folders, 0), "uri");
        root = fu ? mc__lsp_uri_to_path(fu) : NULL;
    }
    if (root && root[0] != '/') { /* only absolute roots mean something to us */
        free(root);
        root = NULL;
    }
    s->root = root;
    s->root_real = root ? realpath(root, NULL) : NULL;

    json_t *res = json_pack(
        "{s:{s:s, s:{s:b, s:i, s:{s:b}}, s:{}, s:{s:[s]}}, s:{s:s, s:s}}", "capabilities",
        "positionEncoding", mc_lsp_encoding_name(s->enc), "textDocumentSync", "openClose", 1,
        "change", 2, "save", "includeText", 0, "inlineCompletionProvider",
        "executeCommandProvider", "commands", "mccom.accept", "serverInfo", "name", "mccom",
        "version", s->version);
    /* the options first: they decide whether completion is offered */
    char msg[512];
    int n_bad = mc__lsp_config_apply(&s->cfg, json_object_get(params, "initializationOptions"),
                                     msg, sizeof msg);
    if (s->cfg.completion)
        json_object_set_new(json_object_get(res, "capabilities"), "completionProvider",
                            json_pack("{s:b}", "resolveProvider", 0));
    mc__lsp_reply(s, id, res);
    s->initialized = true;
    mc__lsp_log(s, 1, "initialized: root %s, positions %s%s%s", s->root ? s->root : "(none)",
                mc_lsp_encoding_name(s->enc), s->cap_progress ? ", progress" : "",
                s->cfg.completion ? ", completion" : "");
    if (n_bad > 0) {
        mc__lsp_log(s, 0, "initializationOptions: %s", msg);
        mc__lsp_show_message(s, 2, "mccom: initializationOptions: %s", msg);
    }
    send_config(s);
    maybe_start_index(s);
}

static void on_inline_completion(mc_lsp_server *s, json_t *id, json_t *params, bool as_completion) {
    const char *uri = mc__json_str(json_object_get(params, "textDocument"), "uri");
    json_t *pos = json_object_get(params, "position");
    uint32_t line, ch;
    if (!uri || !mc__json_uint(pos, "line", &line) || !mc__json_uint(pos, "character", &ch)) {
        mc__lsp_reply_error(s, id, RPC_INVALID_PARAMS,
                            "%s needs textDocument.uri and position {line, character}",
                            as_completion ? "completion" : "inlineCompletion");
        return;
    }
    int trigger = 2;
    json_t *ctx = json_object_get(params, "context");
    json_t *tk = json_object_get(ctx, "triggerKind");
    /* inline: 1 = Invoked; completion: 1 = Invoked too (2, 3 are automatic) */
    if (json_is_integer(tk) && json_integer_value(tk) == 1 && !as_completion)
        trigger = 1;
    mc__lsp_doc *d = doc_find(s, uri);
    if (!d) {
        mc__lsp_reply_error(s, id, RPC_INVALID_PARAMS, "document %s is not open", uri);
        return;
    }
    mc__lsp_job *j = job_new(JOB_COMPLETE);
    if (!j) {
        mc__lsp_reply_error(s, id, RPC_INTERNAL_ERROR, "out of memory");
        return;
    }
    j->id = json_incref(id);
    j->uri = strdup(uri);
    j->rel = d->rel ? strdup(d->rel) : NULL;
    j->path = strdup(d->rel ? d->rel : d->path ? d->path : uri);
    j->text = mc__lsp_text_ref(d->text);
    j->version = d->version;
    j->cursor = mc_lsp_offset(d->text->data, d->text->len, line, ch, s->enc);
    uint32_t l2, c2;
    mc_lsp_position(d->text->data, d->text->len, j->cursor, s->enc, &l2, &c2);
    j->line = l2;
    j->trigger = trigger;
    j->as_completion = as_completion;
    if (!j->uri || !j->path || (d->rel && !j->rel)) {
        mc__lsp_reply_error(s, id, RPC_INTERNAL_ERROR, "out of memory");
        mc__lsp_job_free(j);
        return;
    }
    d->has_last = true;
    d->last_line = l2;
    d->last_char = c2;
    pthread_mutex_lock(&s->qlock);
    /* older requests for this document are stale; so is an escalation at another cursor */
    for (mc__lsp_job *q = s->qhead; q; q = q->next) {
        if (!q->uri || strcmp(q->uri, uri) != 0)
            continue;
        if (q->kind == JOB_COMPLETE)
            cancel_job(q, LSP_CONTENT_MODIFIED, "superseded by a newer request");
        else if (q->kind == JOB_EVENT && q->has_cursor &&
                 (q->cursor != j->cursor || q->version != j->version))
            cancel_job(q, LSP_CONTENT_MODIFIED, "the cursor moved");
    }
    mc__lsp_job *r = s->running;
    if (r && r->uri && !strcmp(r->uri, uri)) {
        if (r->kind == JOB_COMPLETE)
            cancel_job(r, LSP_CONTENT_MODIFIED, "superseded by a newer request");
        else if (r->kind == JOB_EVENT && r->has_cursor &&
                 (r->cursor != j->cursor || r->version != j->version))
            cancel_job(r, LSP_CONTENT_MODIFIED, "the cursor moved");
    }
    if (s->stop) {
        pthread_mutex_unlock(&s->qlock);
        mc__lsp_reply_error(s, id, LSP_REQUEST_CANCELLED, "the server is stopping");
        mc__lsp_job_free(j);
        return;
    }
    enqueue_locked(s, j);
    pthread_mutex_unlock(&s->qlock);
}

/* {uri, id} of a mccom notification or command argument. */
static mc__lsp_job *event_job(mc_lsp_server *s, const json_t *params, int event, const char *what) {
    const char *uri = mc__json_str(json_object_get(params, "textDocument"), "uri");
    if (!uri)
        uri = mc__json_str(params, "uri");
    if (!uri) {
        mc__lsp_log(s, 0, "%s dropped: no textDocument.uri", what);
        return NULL;
    }
    mc__lsp_job *j = job_new(JOB_EVENT);
    if (!j || !(j->uri = strdup(uri))) {
        free(j);
        return NULL;
    }
    j->event = event;
    json_t *sid = json_object_get(params, "id");
    if (json_is_integer(sid) && json_integer_value(sid) >= 0) {
        j->has_sug_id = true;
        j->sug_id = (uint64_t)json_integer_value(sid);
    }
    return j;
}

static void on_execute_command(mc_lsp_server *s, json_t *id, json_t *params) {
    const char *cmd = mc__json_str(params, "command");
    json_t *args = json_object_get(params, "arguments");
    if (!cmd || strcmp(cmd, "mccom.accept") != 0) {
        mc__lsp_reply_error(s, id, RPC_INVALID_PARAMS, "unknown command (mccom.accept is the only one)");
        return;
    }
    json_t *a = json_is_array(args) ? json_array_get(args, 0) : NULL;
    mc__lsp_job *j = json_is_object(a) ? event_job(s, a, EV_ACCEPT, "mccom.accept") : NULL;
    if (!j) {
        mc__lsp_reply_error(s, id, RPC_INVALID_PARAMS, "mccom.accept needs arguments [{uri, id}]");
        return;
    }
    enqueue(s, j);
    mc__lsp_reply(s, id, json_null());
}

static void on_request(mc_lsp_server *s, mc__rpc_msg *m) {
    const char *meth = m->method;
    if (!strcmp(meth, "initialize")) {
        on_initialize(s, m->id, m->params);
        return;
    }
    if (!s->initialized) {
        mc__lsp_reply_error(s, m->id, LSP_SERVER_NOT_INITIALIZED, "%s before initialize", meth);
        return;
    }
    if (s->shutdown) {
        mc__lsp_reply_error(s, m->id, RPC_INVALID_REQUEST, "%s after shutdown", meth);
        return;
    }
    if (!strcmp(meth, "shutdown")) {
        s->shutdown = true;
        pthread_mutex_lock(&s->qlock);
        for (mc__lsp_job *j = s->qhead; j; j = j->next)
            cancel_job(j, LSP_REQUEST_CANCELLED, "the server is shutting down");
        if (s->running)
            cancel_job(s->running, LSP_REQUEST_CANCELLED, "the server is shutting down");
        pthread_cond_broadcast(&s->qcond);
        pthread_mutex_unlock(&s->qlock);
        mc__lsp_reply(s, m->id, json_null());
    } else if (!strcmp(meth, "textDocument/inlineCompletion") ||
               (!strcmp(meth, "textDocument/completion") && s->cfg.completion)) {
        if (!json_is_object(m->params))
            mc__lsp_reply_error(s, m->id, RPC_INVALID_PARAMS, "%s needs params", meth);
        else
            on_inline_completion(s, m->id, m->params, !strcmp(meth, "textDocument/completion"));
    } else if (!strcmp(meth, "workspace/executeCommand")) {
        if (!json_is_object(m->params))
            mc__lsp_reply_error(s, m->id, RPC_INVALID_PARAMS, "executeCommand needs params");
        else
            on_execute_command(s, m->id, m->params);
    } else {
        mc__lsp_reply_error(s, m->id, RPC_METHOD_NOT_FOUND, "method %s is not supported", meth);
    }
}

/* ---- notifications ------------------------------------------------------------------- */

static void on_did_open(mc_lsp_server *s, json_t *params) {
    json_t *td = json_object_get(params, "textDocument");
    const char *uri = mc__json_str(td, "uri");
    json_t *text = json_object_get(td, "text");
    json_t *ver = json_object_get(td, "version");
    if (!uri || !json_is_string(text)) {
        mc__lsp_log(s, 0, "didOpen dropped: needs textDocument {uri, text}");
        return;
    }
    mc__lsp_text *t = mc__lsp_text_new(json_string_value(text), json_string_length(text));
    if (!t) {
        mc__lsp_log(s, 0, "didOpen dropped: out of memory");
        return;
    }
    mc__lsp_doc *d = doc_find(s, uri);
    if (d) {
        mc__lsp_log(s, 1, "didOpen of an open document %s: its text is replaced", uri);
        mc__lsp_text_unref(d->text);
    } else {
        if (s->n_docs == s->cap_docs) {
            int nc = s->cap_docs ? s->cap_docs * 2 : 8;
            mc__lsp_doc *nd = realloc(s->docs, (size_t)nc * sizeof *nd);
            if (!nd) {
                mc__lsp_text_unref(t);
                mc__lsp_log(s, 0, "didOpen dropped: out of memory");
                return;
            }
            s->docs = nd;
            s->cap_docs = nc;
        }
        d = &s->docs[s->n_docs];
        memset(d, 0, sizeof *d);
        d->uri = strdup(uri);
        if (!d->uri) {
            mc__lsp_text_unref(t);
            return;
        }
        s->n_docs++;
        d->path = mc__lsp_uri_to_path(uri);
        d->rel = d->path ? rel_of(s, d->path) : NULL;
    }
    d->text = t;
    d->version = json_is_integer(ver) ? (int)json_integer_value(ver) : 0;
    d->has_last = false;
    mc__lsp_log(s, 2, "opened %s (%zu bytes%s%s)", uri, t->len, d->rel ? ", in the index as " : "",
                d->rel ? d->rel : "");
}

/* Queue the edited text of a document under the root for the index. */
static void index_buffer(mc_lsp_server *s, mc__lsp_doc *d, int kind) {
    if (!d->rel || !s->idx_enabled)
        return;
    pthread_mutex_lock(&s->qlock);
    for (mc__lsp_job *q = s->qhead; q; q = q->next) {
        if ((q->kind == JOB_INDEX_SET || q->kind == JOB_INDEX_DISK) && q->rel &&
            !strcmp(q->rel, d->rel)) {
            /* coalesce: the newest state wins */
            q->kind = kind;
            mc__lsp_text_unref(q->text);
            q->text = kind == JOB_INDEX_SET ? mc__lsp_text_ref(d->text) : NULL;
            pthread_mutex_unlock(&s->qlock);
            return;
        }
    }
    mc__lsp_job *j = job_new(kind);
    if (j) {
        j->uri = strdup(d->uri);
        j->rel = strdup(d->rel);
        j->text = kind == JOB_INDEX_SET ? mc__lsp_text_ref(d->text) : NULL;
    }
    if (j && j->uri && j->rel && !s->stop)
        enqueue_locked(s, j);
    else
        mc__lsp_job_free(j);
    pthread_mutex_unlock(&s->qlock);
}

static void on_did_change(mc_lsp_server *s, json_t *params) {
    json_t *td = json_object_get(params, "textDocument");
    const char *uri = mc__json_str(td, "uri");
    json_t *changes = json_object_get(params, "contentChanges");
    if (!uri || !json_is_array(changes)) {
        mc__lsp_log(s, 0, "didChange dropped: needs textDocument.uri and contentChanges");
        return;
    }
    mc__lsp_doc *d = doc_find(s, uri);
    if (!d) {
        mc__lsp_log(s, 0, "didChange dropped: %s is not open", uri);
        return;
    }
    size_t i;
    json_t *c;
    json_array_foreach(changes, i, c) {
        json_t *text = json_object_get(c, "text");
        if (!json_is_string(text)) {
            mc__lsp_log(s, 0, "didChange of %s: change %zu has no text; skipped (the document may be out of sync)",
                        uri, i);
            continue;
        }
        const char *tv = json_string_value(text);
        size_t tn = json_string_length(text);
        json_t *range = json_object_get(c, "range");
        mc__lsp_text *nt;
        if (range) {
            json_t *a = json_object_get(range, "start"), *b = json_object_get(range, "end");
            uint32_t al, ac, bl, bc;
            if (!mc__json_uint(a, "line", &al) || !mc__json_uint(a, "character", &ac) ||
                !mc__json_uint(b, "line", &bl) || !mc__json_uint(b, "character", &bc)) {
                mc__lsp_log(s, 0, "didChange of %s: change %zu has a bad range; skipped (the document may be out of sync)",
                            uri, i);
                continue;
            }
            size_t x = mc_lsp_offset(d->text->data, d->text->len, al, ac, s->enc);
            size_t y = mc_lsp_offset(d->text->data, d->text->len, bl, bc, s->enc);
            if (y < x) {
                mc__lsp_log(s, 0, "didChange of %s: change %zu ends before it starts; applied as [end, start)",
                            uri, i);
                size_t t = x;
                x = y;
                y = t;
            }
            nt = mc__lsp_text_splice(d->text, x, y, tv, tn);
        } else {
            nt = mc__lsp_text_new(tv, tn);
        }
        if (!nt) {
            mc__lsp_log(s, 0, "didChange of %s: out of memory (the document may be out of sync)", uri);
            continue;
        }
        mc__lsp_text_unref(d->text);
        d->text = nt;
    }
    json_t *ver = json_object_get(td, "version");
    if (json_is_integer(ver))
        d->version = (int)json_integer_value(ver);
    pthread_mutex_lock(&s->qlock);
    cancel_doc_locked(s, uri, LSP_CONTENT_MODIFIED, "the document changed");
    pthread_mutex_unlock(&s->qlock);
    index_buffer(s, d, JOB_INDEX_SET);
}

static void on_did_close(mc_lsp_server *s, json_t *params) {
    const char *uri = mc__json_str(json_object_get(params, "textDocument"), "uri");
    mc__lsp_doc *d = uri ? doc_find(s, uri) : NULL;
    if (!d) {
        mc__lsp_log(s, 0, "didClose dropped: %s is not open", uri ? uri : "(no uri)");
        return;
    }
    pthread_mutex_lock(&s->qlock);
    cancel_doc_locked(s, uri, LSP_CONTENT_MODIFIED, "the document was closed");
    pthread_mutex_unlock(&s->qlock);
    /* unsaved edits are gone: the index goes back to the file on disk */
    index_buffer(s, d, JOB_INDEX_DISK);
    mc__lsp_job *j = job_new(JOB_CLOSE);
    if (j && (j->uri = strdup(uri)) != NULL)
        enqueue(s, j);
    else
        free(j);
    doc_remove(s, d);
}

static void on_did_save(mc_lsp_server *s, json_t *params) {
    const char *uri = mc__json_str(json_object_get(params, "textDocument"), "uri");
    mc__lsp_doc *d = uri ? doc_find(s, uri) : NULL;
    if (d)
        index_buffer(s, d, JOB_INDEX_DISK);
}

static void on_cancel(mc_lsp_server *s, json_t *params) {
    json_t *id = json_object_get(params, "id");
    if (!json_is_integer(id) && !json_is_string(id)) {
        mc__lsp_log(s, 0, "$/cancelRequest dropped: no id");
        return;
    }
    pthread_mutex_lock(&s->qlock);
    bool found = false;
    for (mc__lsp_job *j = s->qhead; j; j = j->next)
        if (j->kind == JOB_COMPLETE && json_equal(j->id, id)) {
            cancel_job(j, LSP_REQUEST_CANCELLED, "canceled by the client");
            found = true;
        }
    if (s->running && s->running->kind == JOB_COMPLETE && json_equal(s->running->id, id)) {
        cancel_job(s->running, LSP_REQUEST_CANCELLED, "canceled by the client");
        found = true;
    }
    pthread_cond_broadcast(&s->qcond);
    pthread_mutex_unlock(&s->qlock);
    mc__lsp_log(s, 2, "$/cancelRequest: %s", found ? "canceling" : "no such request in progress");
}

static void on_mccom_event(mc_lsp_server *s, json_t *params, int event, const char *what) {
    mc__lsp_job *j = event_job(s, params, event, what);
    if (!j)
        return;
    const char *arg = NULL;
    json_t *a = json_object_get(params, event == EV_ACCEPT ? "accepted" : "typed");
    if (json_is_string(a))
        arg = json_string_value(a);
    if (arg) {
        j->arg_len = json_string_length(a);
        j->arg = malloc(j->arg_len + 1);
        if (!j->arg) {
            mc__lsp_job_free(j);
            return;
        }
        memcpy(j->arg, arg, j->arg_len + 1);
    }
    mc__lsp_doc *d = doc_find(s, j->uri);
    if (event == EV_REJECT && d) {
        /* the escalation runs at the given cursor, or the last request's */
        json_t *pos = json_object_get(params, "position");
        uint32_t line, ch;
        bool have = mc__json_uint(pos, "line", &line) && mc__json_uint(pos, "character", &ch);
        if (!have && d->has_last) {
            line = d->last_line;
            ch = d->last_char;
            have = true;
        }
        if (have) {
            j->has_cursor = true;
            j->text = mc__lsp_text_ref(d->text);
            j->version = d->version;
            j->cursor = mc_lsp_offset(d->text->data, d->text->len, line, ch, s->enc);
            uint32_t l2, c2;
            mc_lsp_position(d->text->data, d->text->len, j->cursor, s->enc, &l2, &c2);
            j->line = l2;
            j->rel = d->rel ? strdup(d->rel) : NULL;
            j->path = strdup(d->rel ? d->rel : d->path ? d->path : j->uri);
            if (!j->path) {
                mc__lsp_job_free(j);
                return;
            }
        }
    }
    enqueue(s, j);
}

static void on_notification(mc_lsp_server *s, mc__rpc_msg *m) {
    const char *meth = m->method;
    if (!strcmp(meth, "exit")) {
        s->exited = true;
        return;
    }
    if (!s->initialized) {
        mc__lsp_log(s, 0, "notification %s before initialize: dropped", meth);
        return;
    }
    if (s->shutdown) {
        mc__lsp_log(s, 2, "notification %s after shutdown: dropped", meth);
        return;
    }
    json_t *p = m->params;
    bool obj = json_is_object(p);
    if (!strcmp(meth, "initialized")) {
        return;
    } else if (!strcmp(meth, "$/cancelRequest")) {
        if (obj)
            on_cancel(s, p);
        return;
    } else if (!strcmp(meth, "workspace/didChangeConfiguration")) {
        json_t *set = obj ? json_object_get(p, "settings") : NULL;
        json_t *mine = json_object_get(set, "mccom");
        apply_settings(s, json_is_object(mine) ? mine : set, "didChangeConfiguration");
        send_config(s);
        maybe_start_index(s);
        return;
    }
    if (!obj) {
        if (strncmp(meth, "$/", 2) != 0)
            mc__lsp_log(s, 0, "notification %s dropped: its params are not an object", meth);
        return;
    }
    if (!strcmp(meth, "textDocument/didOpen"))
        on_did_open(s, p);
    else if (!strcmp(meth, "textDocument/didChange"))
        on_did_change(s, p);
    else if (!strcmp(meth, "textDocument/didClose"))
        on_did_close(s, p);
    else if (!strcmp(meth, "textDocument/didSave"))
        on_did_save(s, p);
    else if (!strcmp(meth, "mccom/didShow"))
        on_mccom_event(s, p, EV_SHOW, meth);
    else if (!strcmp(meth, "mccom/didAccept"))
        on_mccom_event(s, p, EV_ACCEPT, meth);
    else if (!strcmp(meth, "mccom/didReject"))
        on_mccom_event(s, p, EV_REJECT, meth);
    else if (strncmp(meth, "$/", 2) != 0)
        mc__lsp_log(s, 2, "notification %s ignored", meth);
}

static void on_response(mc_lsp_server *s, mc__rpc_msg *m) {
    if (json_is_string(m->id) && !strcmp(json_string_value(m->id), PROGRESS_CREATE_ID) &&
        s->prog == PROG_CREATING) {
        if (m->error) {
            mc__lsp_log(s, 1, "the client refused a progress token: no $/progress");
            s->prog = PROG_DONE;
        } else {
            s->prog = PROG_READY;
        }
        return;
    }
    mc__lsp_log(s, 2, "a response to no request of ours: ignored");
}

static void handle(mc_lsp_server *s, const char *body, size_t len) {
    mc__rpc_msg m;
    mc__rpc_parse(body, len, &m);
    switch (m.kind) {
    case MSG_INVALID:
        mc__lsp_log(s, 0, "bad message (%zu bytes at stream offset %llu): %s", len,
                    (unsigned long long)mc_lsp_framer_offset(s->fr), m.why);
        mc__lsp_reply_error(s, m.id, m.code, "%s", m.why);
        break;
    case MSG_REQUEST:
        on_request(s, &m);
        break;
    case MSG_NOTIFICATION:
        on_notification(s, &m);
        break;
    case MSG_RESPONSE:
        on_response(s, &m);
        break;
    }
    mc__rpc_msg_fini(&m);
}

int mc_lsp_server_feed(mc_lsp_server *s, const void *data, size_t n) {
    if (s->exited)
        return 1;
    if (mc_lsp_framer_feed(s->fr, data, n) != 0)
        mc__lsp_log(s, 0, "out of memory: %zu input bytes lost", n);
    for (;;) {
        const char *body;
        size_t len;
        mc_err err;
        int rc = mc_lsp_framer_next(s->fr, &body, &len, &err);
        if (rc == 0)
            break;
        if (rc < 0) {
            mc__lsp_log(s, 0, "input dropped at byte %lld: %s", (long long)err.offset, err.msg);
            continue;
        }
        handle(s, body, len);
        if (s->exited)
            break;
    }
    mc_lsp_server_tick(s);
    return s->exited ? 1 : 0;
}

int mc_lsp_server_exit_code(const mc_lsp_server *s) { return s->shutdown ? 0 : 1; }

/* ---- life cycle --------------------------------------------------------------------- */

int mc_lsp_server_new(const mc_lsp_params *p, mc_lsp_write_fn write, void *ud,
                      mc_lsp_server **out, mc_err *err) {
    *out = NULL;
    mc_lsp_params dp = mc_lsp_params_default();
    if (!p)
        p = &dp;
    if (!write)
        return mc_err_set(err, MC_EINVAL, -1, "the server needs a write function");
    mc_lsp_server *s = calloc(1, sizeof *s);
    if (!s)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    s->p = *p;
    s->p.slm_path = s->p.llm_path = s->p.tokenizer_path = NULL;
    s->p.llm_url = s->p.llm_api_key = s->p.llm_log = NULL;
    s->version = strdup(p->version ? p->version : "0");
    s->write = write;
    s->write_ud = ud;
    s->log = p->log ? p->log : stderr;
    s->wake[0] = s->wake[1] = -1;
    pthread_mutex_init(&s->olock, NULL);
    pthread_mutex_init(&s->loglock, NULL);
    pthread_mutex_init(&s->qlock, NULL);
    pthread_mutex_init(&s->ilock, NULL);
    pthread_cond_init(&s->qcond, NULL);
    s->fr = mc_lsp_framer_new(p->max_message_bytes);
    mc__lsp_config_from_params(&s->cfg, p);
    int rc = 0;
    if (!s->version || !s->fr)
        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    else if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) != 0)
        rc = mc_err_set(err, MC_EIO, -1, "pipe: %s", strerror(errno));
    else
        rc = mc__lsp_worker_start(s, err);
    if (rc != 0) {
        mc_lsp_server_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void mc_lsp_server_free(mc_lsp_server *s) {
    if (!s)
        return;
    pthread_mutex_lock(&s->qlock);
    s->stop = true;
    for (mc__lsp_job *j = s->qhead; j; j = j->next)
        cancel_job(j, LSP_REQUEST_CANCELLED, "the server is stopping");
    if (s->running)
        cancel_job(s->running, LSP_REQUEST_CANCELLED, "the server is stopping");
    pthread_cond_broadcast(&s->qcond);
    pthread_mutex_unlock(&s->qlock);
    if (s->indexer_started)
        pthread_join(s->indexer, NULL);
    mc__lsp_worker_join(s);
    for (int i = 0; i < s->n_docs; i++)
        doc_fini(&s->docs[i]);
    free(s->docs);
    mc__lsp_config_fini(&s->cfg);
    mc_lsp_framer_free(s->fr);
    free(s->root);
    free(s->root_real);
    free(s->version);
    if (s->wake[0] >= 0)
        close(s->wake[0]);
    if (s->wake[1] >= 0)
        close(s->wake[1]);
    pthread_cond_destroy(&s->qcond);
    pthread_mutex_destroy(&s->qlock);
    pthread_mutex_destroy(&s->ilock);
    pthread_mutex_destroy(&s->olock);
    pthread_mutex_destroy(&s->loglock);
    free(s);
}
