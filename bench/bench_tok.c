/* bench/bench_tok.c — tokenizer throughput: encode MB/s per vocabulary (cold
 * word cache and warm), beside llama.cpp's on the same text (through the
 * oracle program, when built), and trainer throughput. Markdown tables.
 *
 * usage: bench_tok [--shared DIR] [--oracle PATH] [--mb N] [--train-dir DIR]
 * Text: Python files of /usr/lib/python3.11 concatenated up to N MB (default 4). */
#include "mccom/tok.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>

static char *g_text;
static size_t g_len, g_cap;

static void add_dir(const char *dir, size_t limit) {
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char **names = NULL;
    size_t n = 0;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l > 3 && !strcmp(e->d_name + l - 3, ".py")) {
            names = realloc(names, (n + 1) * sizeof(char *));
            names[n++] = strdup(e->d_name);
        }
    }
    closedir(d);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (strcmp(names[i], names[j]) > 0) {
                char *x = names[i];
                names[i] = names[j];
                names[j] = x;
            }
    for (size_t i = 0; i < n && g_len < limit; i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        FILE *f = fopen(p, "rb");
        if (f) {
            fseek(f, 0, SEEK_END);
            long sz = ftell(f);
            fseek(f, 0, SEEK_SET);
            if (g_len + (size_t)sz + 1 > g_cap) {
                g_cap = (g_len + (size_t)sz + 1) * 2;
                g_text = realloc(g_text, g_cap);
            }
            g_len += fread(g_text + g_len, 1, (size_t)sz, f);
            fclose(f);
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* seconds llama.cpp takes to tokenize `len` bytes of the text (load included) */
static double oracle_time(const char *oracle, const char *vocab, size_t len) {
    const char *path = "/tmp/mccom_bench_tok.txt";
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    fwrite(g_text, 1, len, f);
    fclose(f);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s tokenize %s < %s > /dev/null 2>&1", oracle, vocab, path);
    double t0 = mc_time_s();
    int rc = system(cmd);
    double t = mc_time_s() - t0;
    remove(path);
    return rc == 0 ? t : -1;
}

int main(int argc, char **argv) {
    const char *shared = getenv("MC_SHARED") ? getenv("MC_SHARED") : "../shared";
    const char *oracle = getenv("MC_ORACLE");
    const char *train_dir = "/usr/lib/python3.11";
    double mb = 4;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--shared") && i + 1 < argc)
            shared = argv[++i];
        else if (!strcmp(argv[i], "--oracle") && i + 1 < argc)
            oracle = argv[++i];
        else if (!strcmp(argv[i], "--mb") && i + 1 < argc)
            mb = atof(argv[++i]);
        else if (!strcmp(argv[i], "--train-dir") && i + 1 < argc)
            train_dir = argv[++i];
    }
    struct stat st;
    if (!oracle && stat("build/oracle/mccom-oracle", &st) == 0)
        oracle = "build/oracle/mccom-oracle";
    size_t limit = (size_t)(mb * 1e6);
    add_dir("/usr/lib/python3.11", limit);
    add_dir("/usr/lib/python3.11/email", limit);
    add_dir("/usr/lib/python3.11/asyncio", limit);
    add_dir("/usr/lib/python3.11/json", limit);
    if (g_len == 0) {
        fprintf(stderr, "bench_tok: no Python source found under /usr/lib/python3.11\n");
        return 1;
    }
    struct utsname u;
    uname(&u);
    printf("## Tokenizer encode throughput\n\nmachine: %s %s; build: -O2; text: %.2f MB of Python "
           "(/usr/lib/python3.11); one thread; median of 3\n\n",
           u.nodename, u.machine, (double)g_len / 1e6);
    printf("| vocabulary | pre-tokenizer | tokens/byte | mccom cold MB/s | mccom warm MB/s | "
           "llama.cpp MB/s | mccom / llama.cpp |\n|---|---|---|---|---|---|---|\n");
    static const char *names[] = {"starcoder", "deepseek-coder", "qwen2",    "gpt-2",
                                  "llama-bpe", "llama-spm",      "refact"};
    int32_t *ids = malloc(g_len * sizeof(int32_t) + 16);
    for (size_t v = 0; v < sizeof names / sizeof names[0]; v++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/tokenizers/ggml-vocab-%s.gguf", shared, names[v]);
        double cold[3], warm[3];
        int64_t n = 0;
        int ok = 1;
        for (int r = 0; r < 3 && ok; r++) {
            mc_tok *t;
            mc_err err;
            if (mc_tok_load_gguf_file(path, &t, &err) != 0) {
                ok = 0;
                break;
            }
            double t0 = mc_time_s();
            mc_tok_encode(t, g_text, g_len, 0, ids, (int64_t)g_len, &n);
            cold[r] = mc_time_s() - t0;
            t0 = mc_time_s();
            mc_tok_encode(t, g_text, g_len, 0, ids, (int64_t)g_len, &n);
            warm[r] = mc_time_s() - t0;
            if (r == 0)
                printf("| %s | %s | %.3f ", names[v], mc_tok_pre_name(t), (double)n / (double)g_len);
            mc_tok_free(t);
        }
        if (!ok) {
            printf("| %s | (missing: %s) | | | | | |\n", names[v], path);
            continue;
        }
        qsort(cold, 3, sizeof(double), cmp_d);
        qsort(warm, 3, sizeof(double), cmp_d);
        double mc_cold = (double)g_len / 1e6 / cold[1];
        printf("| %.1f | %.1f ", mc_cold, (double)g_len / 1e6 / warm[1]);
        if (oracle) {
            /* load time cancels out: time(full) - time(1/8) for 7/8 of the bytes */
            size_t small = g_len / 8;
            double ts[3], tf[3];
            for (int r = 0; r < 3; r++) {
                ts[r] = oracle_time(oracle, path, small);
                tf[r] = oracle_time(oracle, path, g_len);
            }
            qsort(ts, 3, sizeof(double), cmp_d);
            qsort(tf, 3, sizeof(double), cmp_d);
            double d = tf[1] - ts[1];
            if (ts[1] >= 0 && tf[1] >= 0 && d > 0) {
                double ll = (double)(g_len - small) / 1e6 / d;
                printf("| %.1f | %.2f |\n", ll, mc_cold / ll);
            } else
                printf("| (failed) | |\n");
        } else {
            printf("| (oracle not built) | |\n");
        }
    }
    free(ids);

    /* trainer */
    printf("\n## BPE trainer\n\ncorpus: %s (text files; binaries skipped); vocabulary 16384; 2 "
           "threads\n\n| bytes | count s | count MB/s | merges | merge s | total MB/s |\n"
           "|---|---|---|---|---|---|\n",
           train_dir);
    mc_tok_train_params p = mc_tok_train_default();
    mc_tok_trainer *t = mc_tok_trainer_new(&p);
    const char *paths[] = {train_dir};
    int64_t bytes = 0;
    mc_err err;
    double t0 = mc_time_s();
    if (mc_tok_trainer_add_paths(t, paths, 1, &bytes, &err) != 0) {
        printf("| training failed: %s |\n", err.msg);
        return 1;
    }
    double t1 = mc_time_s();
    mc_tok_trainer_run(t, &err);
    double t2 = mc_time_s();
    printf("| %.1f MB | %.2f | %.1f | %lld | %.2f | %.1f |\n", (double)bytes / 1e6, t1 - t0,
           (double)bytes / 1e6 / (t1 - t0), (long long)mc_tok_trainer_n_merges(t), t2 - t1,
           (double)bytes / 1e6 / (t2 - t0));
    mc_tok_trainer_free(t);
    free(g_text);
    return 0;
}
