/* src/eval/record.c — result records as JSON Lines, and lists of them.
 *
 * One object per (split, task, mode):
 *   {"split","task","repo","hash" (16 hex digits),"mode","tau","path",
 *    "pred","slm","conf","em","es","fuzz","ms_first","ms_second","calls",
 *    "prompt_tokens","gen_tokens","draft_tokens","draft_accepted",
 *    "stage1_accepted","stage2_rounds","llm_failed",
 *    "shadow","shadow_em","shadow_es","shadow_fuzz","ms_shadow","shadow_calls","error",
 *    "copy_p","copy"}
 * with "slm", "shadow", "error" and "copy" null when absent ("copy_p" and
 * "copy" may be missing altogether: records made before the copy tier). A run appends one line per
 * finished task and flushes it, so an interrupted run loses at most the line
 * being written; the loader ignores such a torn last line. */
#include "mccom/eval.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void mc_eval_rec_fini(mc_eval_rec *r) {
    if (!r)
        return;
    free(r->split);
    free(r->task);
    free(r->repo);
    free(r->pred);
    free(r->slm);
    free(r->shadow);
    free(r->error);
    free(r->copy);
    memset(r, 0, sizeof *r);
}

static json_t *str_or_null(const char *s) { return s ? json_string(s) : json_null(); }

int mc_eval_rec_write(FILE *f, const mc_eval_rec *r) {
    char hash[17];
    snprintf(hash, sizeof hash, "%016" PRIx64, r->hash);
    json_t *o = json_object();
    if (!o)
        return MC_ENOMEM;
    /* every string of a record is valid UTF-8 (the runner cleans model output) */
    json_object_set_new(o, "split", json_string(r->split));
    json_object_set_new(o, "task", json_string(r->task));
    json_object_set_new(o, "repo", json_string(r->repo));
    json_object_set_new(o, "hash", json_string(hash));
    json_object_set_new(o, "mode", json_string(mc_eval_mode_name(r->mode)));
    json_object_set_new(o, "tau", json_real(r->tau));
    json_object_set_new(o, "path", json_string(mc_cascade_path_name(r->path)));
    json_object_set_new(o, "pred", str_or_null(r->pred ? r->pred : ""));
    json_object_set_new(o, "slm", str_or_null(r->slm));
    json_object_set_new(o, "conf", json_real(r->conf));
    json_object_set_new(o, "em", json_integer(r->score.em));
    json_object_set_new(o, "es", json_real(r->score.es));
    json_object_set_new(o, "fuzz", json_integer(r->score.fuzz));
    json_object_set_new(o, "ms_first", json_real(r->ms_first));
    json_object_set_new(o, "ms_second", json_real(r->ms_second));
    json_object_set_new(o, "calls", json_integer(r->calls));
    json_object_set_new(o, "prompt_tokens", json_integer(r->prompt_tokens));
    json_object_set_new(o, "gen_tokens", json_integer(r->gen_tokens));
    json_object_set_new(o, "draft_tokens", json_integer(r->draft_tokens));
    json_object_set_new(o, "draft_accepted", json_integer(r->draft_accepted));
    json_object_set_new(o, "stage1_accepted", json_integer(r->stage1_accepted));
    json_object_set_new(o, "stage2_rounds", json_integer(r->stage2_rounds));
    json_object_set_new(o, "llm_failed", json_boolean(r->llm_failed));
    json_object_set_new(o, "shadow", str_or_null(r->shadow));
    json_object_set_new(o, "shadow_em", json_integer(r->shadow_score.em));
    json_object_set_new(o, "shadow_es", json_real(r->shadow_score.es));
    json_object_set_new(o, "shadow_fuzz", json_integer(r->shadow_score.fuzz));
    json_object_set_new(o, "ms_shadow", json_real(r->ms_shadow));
    json_object_set_new(o, "shadow_calls", json_integer(r->shadow_calls));
    json_object_set_new(o, "error", str_or_null(r->error));
    json_object_set_new(o, "copy_p", json_real(r->copy_p));
    json_object_set_new(o, "copy", str_or_null(r->copy));
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(o);
    if (!s)
        return MC_EFORMAT; /* a string that is not UTF-8 */
    /* one line, flushed and on disk before the next task runs: a crash loses at
     * most the record being written, and its torn line is ignored on load */
    int rc = fprintf(f, "%s\n", s) < 0 || fflush(f) != 0 || fdatasync(fileno(f)) != 0 ? MC_EIO : 0;
    free(s);
    return rc;
}

static char *get_str(json_t *o, const char *k, bool *bad) {
    json_t *v = json_object_get(o, k);
    if (json_is_null(v))
        return NULL;
    if (!json_is_string(v)) {
        *bad = true;
        return NULL;
    }
    char *s = strdup(json_string_value(v));
    if (!s)
        *bad = true;
    return s;
}

static double get_num(json_t *o, const char *k, bool *bad) {
    json_t *v = json_object_get(o, k);
    if (!json_is_number(v)) {
        *bad = true;
        return 0;
    }
    return json_number_value(v);
}

static int parse_path(const char *s) {
    for (int p = 0; p < MC_CASCADE_N_PATHS; p++)
        if (s && !strcmp(s, mc_cascade_path_name(p)))
            return p;
    return -1;
}

static int parse_rec(json_t *o, mc_eval_rec *r) {
    bool bad = false;
    memset(r, 0, sizeof *r);
    r->split = get_str(o, "split", &bad);
    r->task = get_str(o, "task", &bad);
    r->repo = get_str(o, "repo", &bad);
    r->pred = get_str(o, "pred", &bad);
    r->slm = get_str(o, "slm", &bad);
    r->shadow = get_str(o, "shadow", &bad);
    r->error = get_str(o, "error", &bad);
    r->copy = get_str(o, "copy", &bad);
    const char *hash = json_string_value(json_object_get(o, "hash"));
    const char *mode = json_string_value(json_object_get(o, "mode"));
    const char *path = json_string_value(json_object_get(o, "path"));
    char *end = NULL;
    r->hash = hash ? strtoull(hash, &end, 16) : 0;
    r->mode = mode ? mc_eval_mode_parse(mode) : -1;
    r->path = parse_path(path);
    r->tau = get_num(o, "tau", &bad);
    r->conf = (float)get_num(o, "conf", &bad);
    r->score.em = (int)get_num(o, "em", &bad);
    r->score.es = get_num(o, "es", &bad);
    r->score.fuzz = (int)get_num(o, "fuzz", &bad);
    r->ms_first = get_num(o, "ms_first", &bad);
    r->ms_second = get_num(o, "ms_second", &bad);
    r->calls = (int)get_num(o, "calls", &bad);
    r->prompt_tokens = (int)get_num(o, "prompt_tokens", &bad);
    r->gen_tokens = (int)get_num(o, "gen_tokens", &bad);
    r->draft_tokens = (int)get_num(o, "draft_tokens", &bad);
    r->draft_accepted = (int)get_num(o, "draft_accepted", &bad);
    r->stage1_accepted = (int)get_num(o, "stage1_accepted", &bad);
    r->stage2_rounds = (int)get_num(o, "stage2_rounds", &bad);
    r->llm_failed = json_is_true(json_object_get(o, "llm_failed"));
    r->shadow_score.em = (int)get_num(o, "shadow_em", &bad);
    r->shadow_score.es = get_num(o, "shadow_es", &bad);
    r->shadow_score.fuzz = (int)get_num(o, "shadow_fuzz", &bad);
    r->ms_shadow = get_num(o, "ms_shadow", &bad);
    r->shadow_calls = (int)get_num(o, "shadow_calls", &bad);
    json_t *cp = json_object_get(o, "copy_p");
    r->copy_p = cp ? (float)get_num(o, "copy_p", &bad) : -1.0f;
    if (bad || !r->split || !r->task || !r->repo || !r->pred || !hash || !end || *end ||
        r->mode < 0 || r->path < 0) {
        mc_eval_rec_fini(r);
        return MC_EFORMAT;
    }
    return 0;
}

static uint64_t key_hash(const char *split, const char *task, int mode) {
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)mode;
    for (const char *s = split; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    h = (h ^ 0xff) * 0x100000001b3ull;
    for (const char *s = task; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

/* Open addressing over record indexes (-1 empty), kept at most half full. */
static void ht_insert(mc_eval_recs *rs, int i) {
    const mc_eval_rec *r = &rs->r[i];
    size_t m = (size_t)rs->ht_cap - 1;
    size_t h = (size_t)key_hash(r->split, r->task, r->mode) & m;
    while (rs->ht[h] >= 0)
        h = (h + 1) & m;
    rs->ht[h] = i;
}

static int ht_build(mc_eval_recs *rs) {
    int cap = 64;
    while (cap < 2 * rs->n + 2)
        cap *= 2;
    int *ht = malloc((size_t)cap * sizeof *ht);
    if (!ht)
        return MC_ENOMEM;
    free(rs->ht);
    rs->ht = ht;
    rs->ht_cap = cap;
    for (int i = 0; i < cap; i++)
        ht[i] = -1;
    for (int i = 0; i < rs->n; i++)
        ht_insert(rs, i);
    return 0;
}

int mc_eval_recs_push(mc_eval_recs *rs, mc_eval_rec *r) {
    if (rs->n == rs->cap) {
        int nc = rs->cap ? rs->cap * 2 : 256;
        mc_eval_rec *nr = realloc(rs->r, (size_t)nc * sizeof *nr);
        if (!nr)
            return MC_ENOMEM;
        rs->r = nr;
        rs->cap = nc;
    }
    rs->r[rs->n++] = *r;
    memset(r, 0, sizeof *r);
    if (rs->ht) { /* keep the table current, or drop it to be rebuilt */
        if (2 * rs->n + 2 <= rs->ht_cap) {
            ht_insert(rs, rs->n - 1);
        } else {
            free(rs->ht);
            rs->ht = NULL;
            rs->ht_cap = 0;
        }
    }
    return 0;
}

void mc_eval_recs_fini(mc_eval_recs *rs) {
    if (!rs)
        return;
    for (int i = 0; i < rs->n; i++)
        mc_eval_rec_fini(&rs->r[i]);
    free(rs->r);
    free(rs->ht);
    memset(rs, 0, sizeof *rs);
}

int mc_eval_recs_load(const char *path, mc_eval_recs *out, mc_err *err) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, rc = 0;
    int64_t off = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        lineno++;
        int64_t here = off;
        off += len;
        if (line[len - 1] != '\n')
            break; /* torn last line of an interrupted run */
        json_error_t je;
        json_t *o = json_loadb(line, (size_t)len - 1, 0, &je);
        mc_eval_rec r;
        int prc = o ? parse_rec(o, &r) : MC_EFORMAT;
        json_decref(o);
        if (prc != 0) {
            rc = mc_err_set(err, MC_EFORMAT, here, "%s:%d: not a result record", path, lineno);
            break;
        }
        if (mc_eval_recs_push(out, &r) != 0) {
            mc_eval_rec_fini(&r);
            rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
            break;
        }
    }
    free(line);
    fclose(f);
    if (rc != 0)
        mc_eval_recs_fini(out);
    return rc;
}

const mc_eval_rec *mc_eval_recs_find(mc_eval_recs *rs, const char *split, const char *task,
                                     int mode) {
    if (rs->n == 0)
        return NULL;
    if (!rs->ht && ht_build(rs) != 0) { /* no memory for the table: scan */
        for (int i = 0; i < rs->n; i++) {
            const mc_eval_rec *r = &rs->r[i];
            if (r->mode == mode && !strcmp(r->task, task) && !strcmp(r->split, split))
                return r;
        }
        return NULL;
    }
    size_t m = (size_t)rs->ht_cap - 1;
    for (size_t h = (size_t)key_hash(split, task, mode) & m; rs->ht[h] >= 0; h = (h + 1) & m) {
        const mc_eval_rec *r = &rs->r[rs->ht[h]];
        if (r->mode == mode && !strcmp(r->task, task) && !strcmp(r->split, split))
            return r;
    }
    return NULL;
}
