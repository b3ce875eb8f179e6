/* tools/oracle/oracle.c — mccom-oracle: llama.cpp itself, as a reference for tests and benchmarks.
 *
 * A thin command-line wrapper over the prebuilt libllama that scripts/setup-npm.sh installs
 * (node-llama-cpp's linux-x64 build of llama.cpp v0.5.0, commit de3ff815). Parity tests run
 * it as a subprocess and compare mccom's tokens and logits with its output; scripts/bench.sh
 * runs its `bench` next to ours. It is not part of libmccom and the product never links it.
 *
 *   mccom-oracle tokenize VOCAB.gguf [--special] [--bos]            < text
 *   mccom-oracle logits   MODEL.gguf --tokens 1,2,3 --out F.bin [--all] [--threads N]
 *   mccom-oracle generate MODEL.gguf --tokens 1,2,3 -n N [--threads N]
 *   mccom-oracle bench    MODEL.gguf [--pp 128] [--tg 64] [--threads N] [--reps 5]
 *   mccom-oracle info
 *
 * The CPU backend is a separate shared object per CPU family (libggml-cpu-zen4.so, ...);
 * ggml picks the best one for this machine from the directory that holds libllama. Context
 * defaults follow llama.cpp's (KV cache F16) except flash attention, which is off unless
 * asked for, so attention is the plain softmax(QK^T)V that mccom computes. Every
 * evaluation of n tokens is one llama_decode with n_batch = n_ubatch >= n.
 *
 * It deliberately does no sampling other than greedy argmax (ties: lowest id, as
 * mc_argmax) and no tokenization in `logits`/`generate`: token ids in, numbers out.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ggml-backend.h"
#include "llama.h"

static int g_verbose;

static int max_int(int a, int b) { return a > b ? a : b; }

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("mccom-oracle: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static double cpu_time_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* llama.cpp and ggml log through here: errors always, the rest with --verbose. */
static void log_cb(enum ggml_log_level level, const char *text, void *ud) {
    (void)ud;
    if (g_verbose || level == GGML_LOG_LEVEL_ERROR)
        fputs(text, stderr);
}

/* ---- backends ---------------------------------------------------------- */

static char g_bins_dir[PATH_MAX];
static char g_cpu_variant[64] = "?";

/* The directory of the libllama we are linked against (found through a symbol of it),
 * or $MC_LLAMA_BINS. The CPU backends sit next to it. */
static void find_bins_dir(void) {
    const char *env = getenv("MC_LLAMA_BINS");
    if (env && *env) {
        snprintf(g_bins_dir, sizeof g_bins_dir, "%s", env);
        return;
    }
    Dl_info info;
    if (!dladdr((void *)&llama_backend_init, &info) || !info.dli_fname)
        die("cannot locate libllama (dladdr failed); set MC_LLAMA_BINS to its directory");
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", info.dli_fname);
    snprintf(g_bins_dir, sizeof g_bins_dir, "%s", dirname(tmp));
}

/* Which libggml-cpu-*.so ggml chose: the one mapped into this process. */
static void find_cpu_variant(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return;
    char line[PATH_MAX + 256];
    while (fgets(line, sizeof line, f)) {
        char *p = strstr(line, "libggml-cpu-");
        if (!p)
            continue;
        p += strlen("libggml-cpu-");
        char *e = strstr(p, ".so");
        if (!e)
            continue;
        size_t n = (size_t)(e - p);
        if (n >= sizeof g_cpu_variant)
            n = sizeof g_cpu_variant - 1;
        memcpy(g_cpu_variant, p, n);
        g_cpu_variant[n] = 0;
        break;
    }
    fclose(f);
}

static void backends_init(void) {
    llama_log_set(log_cb, NULL);
    find_bins_dir();
    ggml_backend_load_all_from_path(g_bins_dir);
    if (!ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU))
        die("no ggml CPU backend could be loaded from %s (expected libggml-cpu-*.so there; "
            "run scripts/setup-npm.sh)",
            g_bins_dir);
    find_cpu_variant();
    llama_backend_init();
}

/* CPU features the loaded backend reports, "AVX2 AVX512 ...". */
static void cpu_features(char *buf, size_t cap) {
    buf[0] = 0;
    ggml_backend_dev_t dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    ggml_backend_reg_t reg = dev ? ggml_backend_dev_backend_reg(dev) : NULL;
    ggml_backend_get_features_t get =
        reg ? (ggml_backend_get_features_t)ggml_backend_reg_get_proc_address(
                  reg, "ggml_backend_get_features")
            : NULL;
    if (!get)
        return;
    size_t len = 0;
    for (struct ggml_backend_feature *ft = get(reg); ft && ft->name; ft++) {
        int flag = strcmp(ft->value, "1") == 0;
        int w = snprintf(buf + len, cap - len, "%s%s%s%s", len ? " " : "", ft->name,
                         flag ? "" : "=", flag ? "" : ft->value);
        if (w < 0 || (size_t)w >= cap - len)
            break;
        len += (size_t)w;
    }
}

/* ---- arguments ---------------------------------------------------------- */

typedef struct opts {
    const char *model;
    int32_t *tokens;
    int n_tokens;
    const char *out;
    int n_gen;
    int threads;
    int all;
    int special;
    int bos;
    int pp, tg, reps;
    int flash_attn; /* LLAMA_FLASH_ATTN_TYPE_* */
    int kv_type;    /* GGML_TYPE_F16 or GGML_TYPE_F32 */
    int no_repack;  /* keep weights in their file layout (no CPU_REPACK buffers) */
} opts;

static int parse_int(const char *flag, const char *s, int lo, int hi) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        die("%s: expected an integer in [%d, %d], got '%s'", flag, lo, hi, s);
    return (int)v;
}

/* "1,2,3" (spaces also accepted) */
static void parse_tokens(opts *o, const char *s) {
    size_t cap = 16;
    o->tokens = malloc(cap * sizeof *o->tokens);
    o->n_tokens = 0;
    const char *p = s;
    while (*p) {
        while (*p == ',' || *p == ' ')
            p++;
        if (!*p)
            break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < 0 || v > INT32_MAX)
            die("--tokens: bad token id at '%.20s' (expected comma-separated ids)", p);
        if ((size_t)o->n_tokens == cap) {
            cap *= 2;
            o->tokens = realloc(o->tokens, cap * sizeof *o->tokens);
        }
        if (!o->tokens)
            die("out of memory");
        o->tokens[o->n_tokens++] = (int32_t)v;
        p = end;
    }
    if (o->n_tokens == 0)
        die("--tokens: no token ids given");
}

static int default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void parse_args(opts *o, int argc, char **argv, const char *usage) {
    memset(o, 0, sizeof *o);
    o->threads = default_threads();
    o->pp = 128;
    o->tg = 64;
    o->reps = 5;
    o->n_gen = 16;
    o->flash_attn = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    o->kv_type = GGML_TYPE_F16;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE()                                  \
    do {                                              \
        if (!v)                                       \
            die("%s needs a value\n%s", a, usage);    \
        i++;                                          \
    } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            exit(0);
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            g_verbose = 1;
        } else if (!strcmp(a, "--tokens")) {
            NEED_VALUE();
            parse_tokens(o, v);
        } else if (!strcmp(a, "--out") || !strcmp(a, "-o")) {
            NEED_VALUE();
            o->out = v;
        } else if (!strcmp(a, "-n")) {
            NEED_VALUE();
            o->n_gen = parse_int(a, v, 0, 1 << 20);
        } else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) {
            NEED_VALUE();
            o->threads = parse_int(a, v, 1, 1024);
        } else if (!strcmp(a, "--all")) {
            o->all = 1;
        } else if (!strcmp(a, "--special")) {
            o->special = 1;
        } else if (!strcmp(a, "--bos")) {
            o->bos = 1;
        } else if (!strcmp(a, "--pp")) {
            NEED_VALUE();
            o->pp = parse_int(a, v, 0, 1 << 16);
        } else if (!strcmp(a, "--tg")) {
            NEED_VALUE();
            o->tg = parse_int(a, v, 0, 1 << 16);
        } else if (!strcmp(a, "--reps")) {
            NEED_VALUE();
            o->reps = parse_int(a, v, 1, 1000);
        } else if (!strcmp(a, "--flash-attn")) {
            NEED_VALUE();
            if (!strcmp(v, "on"))
                o->flash_attn = LLAMA_FLASH_ATTN_TYPE_ENABLED;
            else if (!strcmp(v, "off"))
                o->flash_attn = LLAMA_FLASH_ATTN_TYPE_DISABLED;
            else if (!strcmp(v, "auto"))
                o->flash_attn = LLAMA_FLASH_ATTN_TYPE_AUTO;
            else
                die("--flash-attn: expected on, off or auto, got '%s'", v);
        } else if (!strcmp(a, "--no-repack")) {
            o->no_repack = 1;
        } else if (!strcmp(a, "--kv")) {
            NEED_VALUE();
            if (!strcmp(v, "f16"))
                o->kv_type = GGML_TYPE_F16;
            else if (!strcmp(v, "f32"))
                o->kv_type = GGML_TYPE_F32;
            else
                die("--kv: expected f16 or f32, got '%s'", v);
        } else if (a[0] == '-' && a[1]) {
            die("unknown option '%s'\n%s", a, usage);
        } else if (!o->model) {
            o->model = a;
        } else {
            die("unexpected argument '%s'\n%s", a, usage);
        }
#undef NEED_VALUE
    }
    if (!o->model)
        die("no model file given\n%s", usage);
    if (access(o->model, R_OK) != 0)
        die("cannot read model file '%s': %s", o->model, strerror(errno));
}

/* ---- model and context -------------------------------------------------- */

static struct llama_model *load_model(const char *path, bool vocab_only, int no_repack) {
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    mp.use_extra_bufts = !no_repack;
    mp.vocab_only = vocab_only;
    struct llama_model *m = llama_model_load_from_file(path, mp);
    if (!m)
        die("llama.cpp could not load '%s' (run with --verbose for its log)", path);
    return m;
}

/* A context for sequences of up to n_ctx tokens, evaluated in batches of up to n_batch. */
static struct llama_context *new_ctx(struct llama_model *m, const opts *o, int n_ctx,
                                     int n_batch, int n_outputs) {
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)n_ctx;
    cp.n_batch = (uint32_t)n_batch;
    cp.n_ubatch = (uint32_t)n_batch;
    cp.n_seq_max = 1;
    cp.n_outputs_max = (uint32_t)n_outputs;
    cp.n_threads = o->threads;
    cp.n_threads_batch = o->threads;
    cp.flash_attn_type = (enum llama_flash_attn_type)o->flash_attn;
    cp.type_k = (enum ggml_type)o->kv_type;
    cp.type_v = (enum ggml_type)o->kv_type;
    cp.no_perf = true;
    struct llama_context *c = llama_init_from_model(m, cp);
    if (!c)
        die("llama.cpp could not create a context (n_ctx %d, n_batch %d; --verbose for its log)",
            n_ctx, n_batch);
    return c;
}

static void check_tokens(const struct llama_model *m, const opts *o) {
    int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(m));
    for (int i = 0; i < o->n_tokens; i++)
        if (o->tokens[i] >= n_vocab)
            die("--tokens: id %d out of range (n_vocab %d)", o->tokens[i], n_vocab);
}

/* Evaluate tokens[0..n) at positions pos0.. in one llama_decode; logits for all or the last. */
static void decode(struct llama_context *c, const int32_t *tokens, int n, int pos0, int all) {
    struct llama_batch b = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; i++) {
        b.token[i] = tokens[i];
        b.pos[i] = pos0 + i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = (int8_t)(all || i == n - 1);
    }
    b.n_tokens = n;
    int rc = llama_decode(c, b);
    llama_batch_free(b);
    if (rc != 0)
        die("llama_decode failed (%d) for %d tokens at position %d", rc, n, pos0);
}

static int32_t argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

/* ---- subcommands -------------------------------------------------------- */

static const char USAGE_TOKENIZE[] =
    "usage: mccom-oracle tokenize VOCAB.gguf [--special] [--bos] [--verbose] < TEXT\n"
    "  Tokenizes stdin with llama.cpp (vocabulary-only load) and prints the token ids,\n"
    "  space-separated, on one line.\n"
    "  --special  parse special/control tokens written in the text (e.g. <|endoftext|>)\n"
    "  --bos      add BOS/EOS as the vocabulary is configured to (llama_tokenize add_special)\n";

static int cmd_tokenize(int argc, char **argv) {
    opts o;
    parse_args(&o, argc, argv, USAGE_TOKENIZE);
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap);
    for (;;) {
        if (!text)
            die("out of memory");
        size_t r = fread(text + len, 1, cap - len, stdin);
        len += r;
        if (r == 0)
            break;
        if (len == cap) {
            cap *= 2;
            text = realloc(text, cap);
        }
    }
    if (len > INT32_MAX / 2)
        die("input too long");
    backends_init();
    struct llama_model *m = load_model(o.model, true, 1);
    const struct llama_vocab *v = llama_model_get_vocab(m);
    int n_max = (int)len + 8;
    int32_t *ids = malloc((size_t)n_max * sizeof *ids);
    int n = llama_tokenize(v, text, (int32_t)len, ids, n_max, o.bos, o.special);
    if (n < 0) {
        n_max = -n;
        ids = realloc(ids, (size_t)n_max * sizeof *ids);
        n = llama_tokenize(v, text, (int32_t)len, ids, n_max, o.bos, o.special);
    }
    if (n < 0)
        die("llama_tokenize failed (%d)", n);
    for (int i = 0; i < n; i++)
        printf(i ? " %d" : "%d", ids[i]);
    putchar('\n');
    free(ids);
    free(text);
    llama_model_free(m);
    llama_backend_free();
    return 0;
}

static const char USAGE_LOGITS[] =
    "usage: mccom-oracle logits MODEL.gguf --tokens 1,2,3 --out F.bin [--all] [--threads N]\n"
    "                           [--kv f16|f32] [--flash-attn off|on|auto] [--verbose]\n"
    "  Evaluates the tokens at positions 0.. in one batch and writes float32 logits,\n"
    "  little-endian, row-major: n_tokens x n_vocab with --all, else the last row only.\n"
    "  Prints \"n_rows n_vocab\" on stdout.\n"
    "  --kv       KV cache type (default f16, llama.cpp's default)\n"
    "  --flash-attn  default off\n"
    "  --no-repack   keep quantized weights in the file's layout (no CPU_REPACK)\n";

static int cmd_logits(int argc, char **argv) {
    opts o;
    parse_args(&o, argc, argv, USAGE_LOGITS);
    if (!o.tokens)
        die("logits: --tokens is required\n%s", USAGE_LOGITS);
    if (!o.out)
        die("logits: --out is required\n%s", USAGE_LOGITS);
    backends_init();
    struct llama_model *m = load_model(o.model, false, o.no_repack);
    check_tokens(m, &o);
    int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(m));
    struct llama_context *c = new_ctx(m, &o, o.n_tokens, o.n_tokens, o.n_tokens);
    decode(c, o.tokens, o.n_tokens, 0, o.all);
    FILE *f = fopen(o.out, "wb");
    if (!f)
        die("cannot write '%s': %s", o.out, strerror(errno));
    int first = o.all ? 0 : o.n_tokens - 1;
    for (int i = first; i < o.n_tokens; i++) {
        const float *row = llama_get_logits_ith(c, i);
        if (!row)
            die("llama.cpp returned no logits for position %d", i);
        if (fwrite(row, sizeof(float), (size_t)n_vocab, f) != (size_t)n_vocab)
            die("write to '%s' failed: %s", o.out, strerror(errno));
    }
    if (fclose(f) != 0)
        die("write to '%s' failed: %s", o.out, strerror(errno));
    printf("%d %d\n", o.n_tokens - first, n_vocab);
    llama_free(c);
    llama_model_free(m);
    llama_backend_free();
    free(o.tokens);
    return 0;
}

static const char USAGE_GENERATE[] =
    "usage: mccom-oracle generate MODEL.gguf --tokens 1,2,3 -n N [--threads N]\n"
    "                             [--kv f16|f32] [--flash-attn off|on|auto] [--verbose]\n"
    "  Evaluates the prompt in one batch, then greedily (argmax, ties to the lowest id)\n"
    "  generates N tokens one at a time; prints the N new ids space-separated.\n";

static int cmd_generate(int argc, char **argv) {
    opts o;
    parse_args(&o, argc, argv, USAGE_GENERATE);
    if (!o.tokens)
        die("generate: --tokens is required\n%s", USAGE_GENERATE);
    backends_init();
    struct llama_model *m = load_model(o.model, false, o.no_repack);
    check_tokens(m, &o);
    int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(m));
    struct llama_context *c = new_ctx(m, &o, o.n_tokens + o.n_gen, o.n_tokens, 1);
    decode(c, o.tokens, o.n_tokens, 0, 0);
    for (int i = 0; i < o.n_gen; i++) {
        int32_t t = argmax(llama_get_logits_ith(c, -1), n_vocab);
        printf(i ? " %d" : "%d", t);
        if (i + 1 < o.n_gen)
            decode(c, &t, 1, o.n_tokens + i, 0);
    }
    putchar('\n');
    llama_free(c);
    llama_model_free(m);
    llama_backend_free();
    free(o.tokens);
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void print_runs(const char *key, const double *v, int n) {
    printf("  \"%s\": [", key);
    for (int i = 0; i < n; i++)
        printf(i ? ", %.3f" : "%.3f", v[i]);
    printf("],\n");
}

static const char USAGE_BENCH[] =
    "usage: mccom-oracle bench MODEL.gguf [--pp 128] [--tg 64] [--threads N] [--reps 5]\n"
    "                          [--kv f16|f32] [--flash-attn off|on|auto] [--verbose]\n"
    "  Measures as llama-bench does: prompt processing = pp random tokens in one batch\n"
    "  into an empty cache; text generation = tg tokens decoded one at a time starting\n"
    "  from an empty cache. One warm-up run of each, then --reps timed runs; prints JSON\n"
    "  with the medians (tokens/s), every run, and the CPU backend variant ggml loaded;\n"
    "  also per second of process CPU time (pp_cpu_tok_s, tg_cpu_tok_s), the steadier\n"
    "  figure for one thread on a shared machine.\n";

static int cmd_bench(int argc, char **argv) {
    opts o;
    parse_args(&o, argc, argv, USAGE_BENCH);
    if (o.pp < 1 && o.tg < 1)
        die("bench: nothing to measure (--pp and --tg are 0)");
    backends_init();
    struct llama_model *m = load_model(o.model, false, o.no_repack);
    int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(m));
    int n_ctx = max_int(o.pp, o.tg) + 1;
    int n_batch = o.pp > 0 ? o.pp : 1;
    struct llama_context *c = new_ctx(m, &o, n_ctx, n_batch, 1);
    llama_memory_t mem = llama_get_memory(c);

    int n_tok = max_int(o.pp, o.tg) + 1;
    int32_t *toks = malloc((size_t)n_tok * sizeof *toks);
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < n_tok; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        toks[i] = (int32_t)(s % (uint64_t)n_vocab);
    }
    double *pp_runs = calloc((size_t)o.reps, sizeof(double));
    double *tg_runs = calloc((size_t)o.reps, sizeof(double));
    double *pp_cpu = calloc((size_t)o.reps, sizeof(double));
    double *tg_cpu = calloc((size_t)o.reps, sizeof(double));
    /* warm-up: pages in the weights, builds the graphs */
    if (o.pp > 0) {
        llama_memory_clear(mem, true);
        decode(c, toks, o.pp, 0, 0);
    }
    if (o.tg > 0) {
        llama_memory_clear(mem, true);
        decode(c, toks, 1, 0, 0);
    }
    llama_synchronize(c);
    for (int r = 0; r < o.reps; r++) {
        if (o.pp > 0) {
            llama_memory_clear(mem, true);
            double t0 = now_s(), c0 = cpu_time_s();
            decode(c, toks, o.pp, 0, 0);
            llama_synchronize(c);
            pp_runs[r] = o.pp / (now_s() - t0);
            pp_cpu[r] = o.pp / (cpu_time_s() - c0);
        }
        if (o.tg > 0) {
            llama_memory_clear(mem, true);
            double t0 = now_s(), c0 = cpu_time_s();
            for (int i = 0; i < o.tg; i++)
                decode(c, &toks[i], 1, i, 0);
            llama_synchronize(c);
            tg_runs[r] = o.tg / (now_s() - t0);
            tg_cpu[r] = o.tg / (cpu_time_s() - c0);
        }
    }
    char desc[256], feats[512];
    llama_model_desc(m, desc, sizeof desc);
    cpu_features(feats, sizeof feats);
    printf("{\n");
    printf("  \"engine\": \"llama.cpp\",\n");
    printf("  \"llama_commit\": \"de3ff815\",\n");
    printf("  \"model\": \"%s\",\n", o.model);
    printf("  \"model_desc\": \"%s\",\n", desc);
    printf("  \"model_bytes\": %llu,\n", (unsigned long long)llama_model_size(m));
    printf("  \"n_params\": %llu,\n", (unsigned long long)llama_model_n_params(m));
    printf("  \"threads\": %d,\n", o.threads);
    printf("  \"pp\": %d,\n  \"tg\": %d,\n  \"reps\": %d,\n", o.pp, o.tg, o.reps);
    printf("  \"flash_attn\": \"%s\",\n",
           llama_flash_attn_type_name((enum llama_flash_attn_type)o.flash_attn));
    printf("  \"kv_type\": \"%s\",\n", ggml_type_name((enum ggml_type)o.kv_type));
    printf("  \"cpu_backend\": \"%s\",\n", g_cpu_variant);
    printf("  \"cpu_features\": \"%s\",\n", feats);
    if (o.pp > 0)
        print_runs("pp_runs", pp_runs, o.reps);
    if (o.tg > 0)
        print_runs("tg_runs", tg_runs, o.reps);
    printf("  \"pp_cpu_tok_s\": %.3f,\n", o.pp > 0 ? median(pp_cpu, o.reps) : 0.0);
    printf("  \"tg_cpu_tok_s\": %.3f,\n", o.tg > 0 ? median(tg_cpu, o.reps) : 0.0);
    printf("  \"pp_tok_s\": %.3f,\n", o.pp > 0 ? median(pp_runs, o.reps) : 0.0);
    printf("  \"tg_tok_s\": %.3f\n", o.tg > 0 ? median(tg_runs, o.reps) : 0.0);
    printf("}\n");
    free(pp_runs);
    free(tg_runs);
    free(pp_cpu);
    free(tg_cpu);
    free(toks);
    llama_free(c);
    llama_model_free(m);
    llama_backend_free();
    return 0;
}

static const char USAGE_INFO[] =
    "usage: mccom-oracle info\n"
    "  Loads the ggml backends and prints the directory, the CPU variant chosen and its\n"
    "  features, and llama.cpp's system info.\n";

static int cmd_info(int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(USAGE_INFO, stdout);
            return 0;
        }
        if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose"))
            g_verbose = 1;
    }
    backends_init();
    char feats[512];
    cpu_features(feats, sizeof feats);
    printf("bins: %s\ncpu_backend: %s\ncpu_features: %s\nsystem_info: %s\n", g_bins_dir,
           g_cpu_variant, feats, llama_print_system_info());
    llama_backend_free();
    return 0;
}

static const char USAGE[] =
    "usage: mccom-oracle COMMAND [ARGS] (COMMAND --help for details)\n"
    "  tokenize VOCAB.gguf [--special] [--bos] < text   token ids of stdin\n"
    "  logits   MODEL.gguf --tokens 1,2,3 --out F.bin   float32 logits of one batch\n"
    "  generate MODEL.gguf --tokens 1,2,3 -n N          greedy continuation ids\n"
    "  bench    MODEL.gguf --pp 128 --tg 64 --threads N prompt/decode tokens per second (JSON)\n"
    "  info                                             which ggml CPU backend loads\n"
    "llama.cpp: prebuilt libllama v0.5.0 (commit de3ff815) from node-llama-cpp.\n"
    "Environment: MC_LLAMA_BINS overrides the directory holding the ggml backends.\n";

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs(USAGE, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        fputs(USAGE, stdout);
        return 0;
    }
    if (!strcmp(cmd, "tokenize"))
        return cmd_tokenize(argc - 2, argv + 2);
    if (!strcmp(cmd, "logits"))
        return cmd_logits(argc - 2, argv + 2);
    if (!strcmp(cmd, "generate"))
        return cmd_generate(argc - 2, argv + 2);
    if (!strcmp(cmd, "bench"))
        return cmd_bench(argc - 2, argv + 2);
    if (!strcmp(cmd, "info"))
        return cmd_info(argc - 2, argv + 2);
    fprintf(stderr, "mccom-oracle: unknown command '%s'\n%s", cmd, USAGE);
    return 2;
}
