/* src/lsp/rpc.c — JSON-RPC 2.0 messages: classify a body (request,
 * notification, response, or invalid with the error to answer), and write
 * replies, errors and notifications as framed messages under the output lock.
 *
 * LSP sends no batches; an array is answered with Invalid Request. This file
 * does not know any method. */
#include "lsp_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void invalid(mc__rpc_msg *m, int code, const char *fmt, const char *arg) {
    m->kind = MSG_INVALID;
    m->code = code;
    snprintf(m->why, sizeof m->why, fmt, arg ? arg : "");
}

void mc__rpc_parse(const char *body, size_t len, mc__rpc_msg *m) {
    memset(m, 0, sizeof *m);
    json_error_t je;
    m->root = json_loadb(body, len, JSON_ALLOW_NUL | JSON_DECODE_ANY, &je);
    if (!m->root) {
        m->kind = MSG_INVALID;
        m->code = RPC_PARSE_ERROR;
        snprintf(m->why, sizeof m->why, "bad JSON at byte %d: %.160s", je.position, je.text);
        return;
    }
    if (json_is_array(m->root)) {
        invalid(m, RPC_INVALID_REQUEST, "batches are not supported%s", NULL);
        return;
    }
    if (!json_is_object(m->root)) {
        invalid(m, RPC_INVALID_REQUEST, "a message must be an object%s", NULL);
        return;
    }
    json_t *id = json_object_get(m->root, "id");
    if (id && !json_is_string(id) && !json_is_integer(id) && !json_is_null(id)) {
        invalid(m, RPC_INVALID_REQUEST, "\"id\" must be an integer or a string%s", NULL);
        return;
    }
    if (id && !json_is_null(id))
        m->id = id;
    const char *ver = mc__json_str(m->root, "jsonrpc");
    if (!ver || strcmp(ver, "2.0") != 0) {
        invalid(m, RPC_INVALID_REQUEST, "\"jsonrpc\" must be \"2.0\"%s", NULL);
        return;
    }
    json_t *method = json_object_get(m->root, "method");
    if (method) {
        if (!json_is_string(method)) {
            invalid(m, RPC_INVALID_REQUEST, "\"method\" must be a string%s", NULL);
            return;
        }
        m->method = json_string_value(method);
        json_t *params = json_object_get(m->root, "params");
        if (params && !json_is_object(params) && !json_is_array(params) && !json_is_null(params)) {
            invalid(m, RPC_INVALID_REQUEST, "\"params\" of %s must be an object or an array",
                    m->method);
            return;
        }
        m->params = json_is_null(params) ? NULL : params;
        m->kind = id ? MSG_REQUEST : MSG_NOTIFICATION;
        if (id && json_is_null(id)) {
            invalid(m, RPC_INVALID_REQUEST, "a request needs a non-null \"id\"%s", NULL);
            return;
        }
        return;
    }
    m->result = json_object_get(m->root, "result");
    m->error = json_object_get(m->root, "error");
    if (id && (m->result || m->error)) {
        m->kind = MSG_RESPONSE;
        return;
    }
    invalid(m, RPC_INVALID_REQUEST, "neither a request (\"method\") nor a response%s", NULL);
}

void mc__rpc_msg_fini(mc__rpc_msg *m) {
    if (m && m->root)
        json_decref(m->root);
    if (m)
        memset(m, 0, sizeof *m);
}

const char *mc__json_str(const json_t *o, const char *key) {
    json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

bool mc__json_uint(const json_t *o, const char *key, uint32_t *out) {
    json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;
    if (!json_is_integer(v))
        return false;
    json_int_t x = json_integer_value(v);
    if (x < 0 || x > 0x7FFFFFFF) /* uinteger: 0 .. 2^31 - 1 */
        return false;
    *out = (uint32_t)x;
    return true;
}

uint64_t mc__lsp_hash(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* ---- writing ---------------------------------------------------------------------- */

void mc__lsp_send(mc_lsp_server *s, json_t *msg) {
    if (!msg)
        return;
    char *body = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (!body) {
        mc__lsp_log(s, 0, "cannot serialize a message (out of memory)");
        return;
    }
    char *framed;
    size_t n;
    int rc = mc_lsp_frame(body, strlen(body), &framed, &n);
    free(body);
    if (rc != 0)
        return;
    pthread_mutex_lock(&s->olock);
    if (!s->dead && s->write(s->write_ud, framed, n) < 0) {
        s->dead = true;
        pthread_mutex_unlock(&s->olock);
        mc__lsp_log(s, 0, "writing to the client failed; no more output");
    } else {
        pthread_mutex_unlock(&s->olock);
    }
    free(framed);
}

void mc__lsp_reply(mc_lsp_server *s, json_t *id, json_t *result) {
    json_t *m = json_object();
    json_object_set_new(m, "jsonrpc", json_string("2.0"));
    json_object_set(m, "id", id ? id : json_null());
    json_object_set_new(m, "result", result ? result : json_null());
    mc__lsp_send(s, m);
}

void mc__lsp_reply_error(mc_lsp_server *s, json_t *id, int code, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    msg[mc__lsp_utf8_valid_prefix(msg, strlen(msg))] = '\0';
    json_t *e = json_object();
    json_object_set_new(e, "code", json_integer(code));
    json_object_set_new(e, "message", json_string(msg));
    json_t *m = json_object();
    json_object_set_new(m, "jsonrpc", json_string("2.0"));
    json_object_set(m, "id", id ? id : json_null());
    json_object_set_new(m, "error", e);
    mc__lsp_send(s, m);
}

void mc__lsp_notify(mc_lsp_server *s, const char *method, json_t *params) {
    json_t *m = json_object();
    json_object_set_new(m, "jsonrpc", json_string("2.0"));
    json_object_set_new(m, "method", json_string(method));
    if (params)
        json_object_set_new(m, "params", params);
    mc__lsp_send(s, m);
}

void mc__lsp_show_message(mc_lsp_server *s, int type, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    msg[mc__lsp_utf8_valid_prefix(msg, strlen(msg))] = '\0';
    mc__lsp_notify(s, "window/showMessage", json_pack("{s:i, s:s}", "type", type, "message", msg));
}

void mc__lsp_log(mc_lsp_server *s, int level, const char *fmt, ...) {
    if (level > s->p.log_level)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&s->loglock);
    fprintf(s->log, "mccom lsp: %s\n", msg);
    fflush(s->log);
    pthread_mutex_unlock(&s->loglock);
}
