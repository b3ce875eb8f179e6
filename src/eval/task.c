/* src/eval/task.c — benchmark files in RepoEval's record format: one JSON
 * object per line with "prompt" and "metadata" {task_id, ground_truth,
 * fpath_tuple, line_no, ...}, and the fixed subsets the harness runs.
 *
 * Fields other than those are ignored (context_start_lineno is not needed:
 * line_no places the cursor). This file reads no repository and runs nothing. */
#include "mccom/eval.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void task_fini(mc_eval_task *t) {
    free(t->id);
    free(t->repo);
    free(t->path);
    free(t->prompt);
    free(t->truth);
    memset(t, 0, sizeof *t);
}

void mc_eval_bench_fini(mc_eval_bench *b) {
    if (!b)
        return;
    for (int i = 0; i < b->n; i++)
        task_fini(&b->tasks[i]);
    free(b->tasks);
    free(b->split);
    memset(b, 0, sizeof *b);
}

static uint64_t fnv1a(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static char *dupn(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* One record; returns NULL or what is wrong with it. */
static const char *parse_task(json_t *o, mc_eval_task *t) {
    json_t *md = json_object_get(o, "metadata");
    json_t *prompt = json_object_get(o, "prompt");
    json_t *id = json_object_get(md, "task_id");
    json_t *gt = json_object_get(md, "ground_truth");
    json_t *fp = json_object_get(md, "fpath_tuple");
    json_t *ln = json_object_get(md, "line_no");
    if (!json_is_string(prompt))
        return "no \"prompt\" string";
    if (!json_is_object(md))
        return "no \"metadata\" object";
    if (!json_is_string(id) || !json_is_string(gt))
        return "metadata needs strings \"task_id\" and \"ground_truth\"";
    if (!json_is_array(fp) || json_array_size(fp) < 2)
        return "metadata.fpath_tuple must list the repository and at least one path part";
    if (!json_is_integer(ln) || json_integer_value(ln) < 0 || json_integer_value(ln) > 100000000)
        return "metadata.line_no must be a non-negative integer";
    size_t pathlen = 0;
    for (size_t i = 0; i < json_array_size(fp); i++) {
        json_t *p = json_array_get(fp, i);
        const char *s = json_string_value(p);
        if (!s || !*s || strchr(s, '/') || !strcmp(s, "..") || !strcmp(s, "."))
            return "metadata.fpath_tuple parts must be non-empty names without '/'";
        if (i > 0)
            pathlen += strlen(s) + 1;
    }
    t->id = strdup(json_string_value(id));
    t->repo = strdup(json_string_value(json_array_get(fp, 0)));
    t->path = malloc(pathlen);
    t->prompt_len = json_string_length(prompt);
    t->prompt = dupn(json_string_value(prompt), t->prompt_len);
    t->truth = strdup(json_string_value(gt));
    if (!t->id || !t->repo || !t->path || !t->prompt || !t->truth)
        return "out of memory";
    size_t k = 0;
    for (size_t i = 1; i < json_array_size(fp); i++) {
        const char *s = json_string_value(json_array_get(fp, i));
        if (i > 1)
            t->path[k++] = '/';
        memcpy(t->path + k, s, strlen(s));
        k += strlen(s);
    }
    t->path[k] = '\0';
    t->line = (int)json_integer_value(ln);
    t->n_lines = 1;
    for (const char *c = t->truth; *c; c++)
        t->n_lines += *c == '\n';
    t->hash = fnv1a(t->prompt, t->prompt_len);
    return NULL;
}

int mc_eval_bench_load(const char *path, mc_eval_bench *out, mc_err *err) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return mc_err_set(err, MC_ENOTFOUND, -1, "cannot open benchmark %s", path);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t bl = strlen(base);
    if (bl > 6 && !strcmp(base + bl - 6, ".jsonl"))
        bl -= 6;
    out->split = dupn(base, bl);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int64_t off = 0;
    int lineno = 0, cap_tasks = 0, rc = 0;
    while (out->split && (len = getline(&line, &cap, f)) > 0) {
        lineno++;
        int64_t here = off;
        off += len;
        size_t l = (size_t)len;
        while (l > 0 && (line[l - 1] == '\n' || line[l - 1] == '\r'))
            l--;
        if (l == 0)
            continue;
        json_error_t je;
        json_t *o = json_loadb(line, l, 0, &je);
        if (!o) {
            rc = mc_err_set(err, MC_EFORMAT, here + je.position, "%s:%d: not JSON: %s", path,
                            lineno, je.text);
            break;
        }
        if (out->n == cap_tasks) {
            int nc = cap_tasks ? cap_tasks * 2 : 256;
            mc_eval_task *nt = realloc(out->tasks, (size_t)nc * sizeof *nt);
            if (!nt) {
                json_decref(o);
                rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
                break;
            }
            out->tasks = nt;
            cap_tasks = nc;
        }
        mc_eval_task *t = &out->tasks[out->n];
        memset(t, 0, sizeof *t);
        const char *why = parse_task(o, t);
        json_decref(o);
        if (why) {
            task_fini(t);
            rc = mc_err_set(err, MC_EFORMAT, here, "%s:%d: %s", path, lineno, why);
            break;
        }
        out->n++;
    }
    free(line);
    fclose(f);
    if (!out->split && rc == 0)
        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    if (rc == 0 && out->n == 0)
        rc = mc_err_set(err, MC_EFORMAT, -1, "%s holds no tasks", path);
    if (rc != 0)
        mc_eval_bench_fini(out);
    return rc;
}

void mc_eval_bench_select(mc_eval_bench *b, int per_repo, int limit) {
    int w = 0;
    for (int i = 0; i < b->n; i++) {
        bool keep = true;
        if (per_repo > 0) {
            int seen = 0;
            for (int j = 0; j < w; j++)
                seen += !strcmp(b->tasks[j].repo, b->tasks[i].repo);
            keep = seen < per_repo;
        }
        if (keep && limit > 0 && w >= limit)
            keep = false;
        if (keep)
            b->tasks[w++] = b->tasks[i];
        else
            task_fini(&b->tasks[i]);
    }
    b->n = w;
}
