/* src/lsp/config.c — the server's configuration: defaults from the command
 * line (mc_lsp_params), then initializationOptions and
 * workspace/didChangeConfiguration settings on top (docs/lsp.md lists the
 * keys). A bad value is reported and skipped; it never stops the server.
 * This file does not load anything. */
#include "lsp_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dup_or_null(const char *s) { return s && *s ? strdup(s) : NULL; }

void mc__lsp_config_from_params(mc__lsp_config *c, const mc_lsp_params *p) {
    memset(c, 0, sizeof *c);
    c->slm_path = dup_or_null(p->slm_path);
    c->llm_path = dup_or_null(p->llm_path);
    c->tokenizer_path = dup_or_null(p->tokenizer_path);
    c->llm_url = dup_or_null(p->llm_url);
    c->llm_api_key = dup_or_null(p->llm_api_key);
    c->llm_log = dup_or_null(p->llm_log);
    c->tau = p->tau;
    c->retrieval = p->retrieval;
    c->copy = p->copy;
    c->tau_copy = p->tau_copy;
    c->debounce_ms = p->debounce_ms;
    c->llm_budget_ms = p->llm_budget_ms;
    c->max_line_tokens = p->max_line_tokens;
    c->n_threads = p->n_threads;
    c->n_ctx = p->n_ctx;
    c->completion = p->completion;
}

void mc__lsp_config_fini(mc__lsp_config *c) {
    if (!c)
        return;
    free(c->slm_path);
    free(c->llm_path);
    free(c->tokenizer_path);
    free(c->llm_url);
    free(c->llm_api_key);
    free(c->llm_log);
    memset(c, 0, sizeof *c);
}

int mc__lsp_config_copy(mc__lsp_config *dst, const mc__lsp_config *src) {
    *dst = *src;
    dst->slm_path = dup_or_null(src->slm_path);
    dst->llm_path = dup_or_null(src->llm_path);
    dst->tokenizer_path = dup_or_null(src->tokenizer_path);
    dst->llm_url = dup_or_null(src->llm_url);
    dst->llm_api_key = dup_or_null(src->llm_api_key);
    dst->llm_log = dup_or_null(src->llm_log);
    if ((src->slm_path && !dst->slm_path) || (src->llm_path && !dst->llm_path) ||
        (src->tokenizer_path && !dst->tokenizer_path) || (src->llm_url && !dst->llm_url) ||
        (src->llm_api_key && !dst->llm_api_key) || (src->llm_log && !dst->llm_log)) {
        mc__lsp_config_fini(dst);
        return MC_ENOMEM;
    }
    return 0;
}

static bool str_eq(const char *a, const char *b) {
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

bool mc__lsp_config_models_differ(const mc__lsp_config *a, const mc__lsp_config *b) {
    return !str_eq(a->slm_path, b->slm_path) || !str_eq(a->tokenizer_path, b->tokenizer_path) ||
           a->n_threads != b->n_threads || a->n_ctx != b->n_ctx;
}

bool mc__lsp_config_llm_differs(const mc__lsp_config *a, const mc__lsp_config *b) {
    return !str_eq(a->llm_path, b->llm_path) || !str_eq(a->llm_url, b->llm_url) ||
           !str_eq(a->llm_api_key, b->llm_api_key) || !str_eq(a->llm_log, b->llm_log);
}

static void problem(char *msg, size_t cap, int *n, const char *key, const char *what) {
    (*n)++;
    size_t used = strlen(msg);
    if (used + 1 >= cap)
        return;
    snprintf(msg + used, cap - used, "%s%s %s", used ? "; " : "", key, what);
}

/* A string setting: a string sets it, "" or null clears it. */
static void set_str(char **dst, const json_t *v, const char *key, char *msg, size_t cap, int *n) {
    if (json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0)) {
        free(*dst);
        *dst = NULL;
        return;
    }
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
        problem(msg, cap, n, key, "must be a string");
        return;
    }
    char *d = strdup(json_string_value(v));
    if (!d) {
        problem(msg, cap, n, key, "could not be stored (out of memory)");
        return;
    }
    free(*dst);
    *dst = d;
}

static void set_int(int *dst, const json_t *v, const char *key, int lo, int hi, char *msg,
                    size_t cap, int *n) {
    double x;
    if (json_is_integer(v))
        x = (double)json_integer_value(v);
    else if (json_is_real(v) && json_real_value(v) == (double)(long long)json_real_value(v))
        x = json_real_value(v);
    else {
        problem(msg, cap, n, key, "must be an integer");
        return;
    }
    if (x < lo || x > hi) {
        char what[64];
        snprintf(what, sizeof what, "must be in [%d, %d]", lo, hi);
        problem(msg, cap, n, key, what);
        return;
    }
    *dst = (int)x;
}

int mc__lsp_config_apply(mc__lsp_config *c, const json_t *o, char *msg, size_t cap) {
    int n = 0;
    if (cap)
        msg[0] = '\0';
    if (!o || json_is_null(o))
        return 0;
    if (!json_is_object(o)) {
        problem(msg, cap, &n, "the settings", "must be an object");
        return n;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)o, key, v) {
        if (!strcmp(key, "slmModel"))
            set_str(&c->slm_path, v, key, msg, cap, &n);
        else if (!strcmp(key, "llmModel"))
            set_str(&c->llm_path, v, key, msg, cap, &n);
        else if (!strcmp(key, "tokenizer"))
            set_str(&c->tokenizer_path, v, key, msg, cap, &n);
        else if (!strcmp(key, "llmUrl"))
            set_str(&c->llm_url, v, key, msg, cap, &n);
        else if (!strcmp(key, "llmApiKey"))
            set_str(&c->llm_api_key, v, key, msg, cap, &n);
        else if (!strcmp(key, "llmLog"))
            set_str(&c->llm_log, v, key, msg, cap, &n);
        else if (!strcmp(key, "tau")) {
            if (!json_is_number(v) || !(json_number_value(v) >= 0.0 && json_number_value(v) <= 1.0))
                problem(msg, cap, &n, key, "must be a number in [0, 1]");
            else
                c->tau = (float)json_number_value(v);
        } else if (!strcmp(key, "retrieval")) {
            if (!json_is_boolean(v))
                problem(msg, cap, &n, key, "must be true or false");
            else
                c->retrieval = json_is_true(v);
        } else if (!strcmp(key, "copy")) {
            if (!json_is_boolean(v))
                problem(msg, cap, &n, key, "must be true or false");
            else
                c->copy = json_is_true(v);
        } else if (!strcmp(key, "tauCopy")) {
            if (!json_is_number(v) || !(json_number_value(v) >= 0.0))
                problem(msg, cap, &n, key, "must be a number >= 0 (above 1: never at once)");
            else
                c->tau_copy = (float)json_number_value(v);
        } else if (!strcmp(key, "completion")) {
            if (!json_is_boolean(v))
                problem(msg, cap, &n, key, "must be true or false");
            else
                c->completion = json_is_true(v);
        } else if (!strcmp(key, "debounceMs"))
            set_int(&c->debounce_ms, v, key, 0, 10000, msg, cap, &n);
        else if (!strcmp(key, "llmBudgetMs"))
            set_int(&c->llm_budget_ms, v, key, 0, 600000, msg, cap, &n);
        else if (!strcmp(key, "maxLineTokens"))
            set_int(&c->max_line_tokens, v, key, 0, 1024, msg, cap, &n);
        else if (!strcmp(key, "threads"))
            set_int(&c->n_threads, v, key, 0, 1024, msg, cap, &n);
        else if (!strcmp(key, "contextTokens"))
            set_int(&c->n_ctx, v, key, 0, 1 << 20, msg, cap, &n);
        else
            problem(msg, cap, &n, key, "is not a setting of mccom (ignored)");
    }
    return n;
}
