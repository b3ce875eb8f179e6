/* tools/mkmodel/mkmodel.c — write a random-initialised llama/qwen2 GGUF of any shape.
 *
 * The files use llama.cpp's standard keys and tensor names, so the same file loads in
 * mccom and in llama.cpp (the parity tests and benchmarks rely on that). There is no
 * vocabulary: tokenizer.ggml.model is "no_vocab" and {arch}.vocab_size gives the number
 * of (dummy) tokens, which llama.cpp accepts for weights-only models.
 *
 * Weights are deterministic in the seed and independent of --type (each tensor has its
 * own generator stream, so an f32 and a q4_0 file of one shape and seed hold the same
 * model up to rounding). They are uniform with standard deviation scale/sqrt(fan_in) for
 * matrices (about 0.02-0.1 at the usual widths) so every layer moves the residual stream,
 * attention scores are O(1), and logits have a standard deviation of about 2: greedy
 * choices are well separated, which the parity tests need. Norm weights are near 1,
 * biases small. Quantization uses mccom's kernels (bit-exact with ggml's reference
 * quantizers, i.e. what llama-quantize writes).
 *
 * It is a test and benchmark tool, not a trainer: the models are noise.
 */
#include "mccom/common.h"
#include "mccom/gguf.h"
#include "mccom/kernels.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: mkmodel [options] OUT.gguf\n"
    "  --arch llama|qwen2   architecture (default llama)\n"
    "  --vocab N            vocabulary size (default 1000)\n"
    "  --embd N             embedding width (default 128)\n"
    "  --layers N           transformer blocks (default 2)\n"
    "  --heads N            attention heads (default 4)\n"
    "  --kv-heads N         key/value heads (default = heads)\n"
    "  --ff N               feed-forward width (default 4*embd rounded... default 256)\n"
    "  --ctx N              training context length written to the file (default 2048)\n"
    "  --bias               q/k/v biases (qwen2 style)\n"
    "  --tied               no output.weight: the output reuses token_embd\n"
    "  --type T             f32|f16|bf16|q8_0|q4_0 for the 2-D weights (default f32);\n"
    "                       quantized types need embd and ff multiples of 32\n"
    "  --seed S             generator seed (default 1)\n"
    "  --rope-theta X       RoPE base (default 10000 llama, 1000000 qwen2)\n"
    "  --eps X              RMSNorm epsilon (default 1e-5 llama, 1e-6 qwen2)\n"
    "  --scale X            multiplies every matrix's standard deviation (default 1)\n"
    "  --name S             general.name (default mkmodel-<arch>-<type>)\n"
    "  -q, --quiet          print nothing on success\n"
    "Prints the parameter count and file size.\n";

typedef struct cfg {
    const char *arch;
    int n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx;
    int bias, tied, type, quiet;
    uint64_t seed;
    float rope_theta, eps, scale;
    const char *name;
    const char *out;
} cfg;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("mkmodel: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static long parse_long(const char *flag, const char *s, long lo, long hi) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        die("%s: expected an integer in [%ld, %ld], got '%s'", flag, lo, hi, s);
    return v;
}

static float parse_float(const char *flag, const char *s) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        die("%s: expected a number, got '%s'", flag, s);
    return (float)v;
}

/* ---- deterministic generator --------------------------------------------------- */

/* splitmix64: one stream per tensor, seeded from (seed, tensor name). */
typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in [-1, 1) */
static float rng_uniform(rng *r) {
    return (float)((double)(rng_next(r) >> 40) * 0x1p-23 - 1.0);
}

static rng rng_for(uint64_t seed, const char *name) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a of the name */
    for (const char *p = name; *p; p++)
        h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    rng r = {seed * 0x9E3779B97F4A7C15ull ^ h};
    rng_next(&r);
    return r;
}

/* ---- tensors ------------------------------------------------------------------- */

/* Buffers handed to the writer live until the file is written. */
static void **g_bufs;
static size_t g_n_bufs, g_cap_bufs;
static uint64_t g_n_params;

static void *keep(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p)
        die("out of memory (%zu bytes)", n);
    if (g_n_bufs == g_cap_bufs) {
        g_cap_bufs = g_cap_bufs ? 2 * g_cap_bufs : 64;
        g_bufs = realloc(g_bufs, g_cap_bufs * sizeof *g_bufs);
        if (!g_bufs)
            die("out of memory");
    }
    g_bufs[g_n_bufs++] = p;
    return p;
}

/* x[i] = mean + std * U(-sqrt3, sqrt3), i.e. the given mean and standard deviation. */
static void fill(float *x, int64_t n, uint64_t seed, const char *name, float mean, float std) {
    rng r = rng_for(seed, name);
    const float a = std * 1.7320508f;
    for (int64_t i = 0; i < n; i++)
        x[i] = mean + a * rng_uniform(&r);
}

/* x (n floats) -> n elements of `type` at y (bit-exact with ggml's converters). */
static void convert(int type, const float *x, void *y, int64_t n, const char *name) {
    int rc = type == MC_TYPE_F32 ? (memcpy(y, x, (size_t)n * sizeof *x), 0)
                                 : mc_quantize_row(type, x, y, n);
    if (rc != 0)
        die("%s: cannot convert to %s: %s", name, mc_ggml_type_name(type), mc_code_message(rc));
}

static void add(mc_gguf_writer *w, const char *name, int type, int n_dims, int64_t ne0,
                int64_t ne1, const float *x) {
    int64_t ne[2] = {ne0, ne1};
    int64_t n = ne0 * (n_dims > 1 ? ne1 : 1);
    size_t nbytes = mc_ggml_row_size(type, ne0) * (size_t)(n_dims > 1 ? ne1 : 1);
    if (nbytes == 0)
        die("%s: a row of %lld elements cannot be stored as %s (needs a multiple of %d)", name,
            (long long)ne0, mc_ggml_type_name(type), mc_ggml_type_block(type));
    void *data = keep(nbytes);
    convert(type, x, data, n, name);
    int rc = mc_gguf_add_tensor(w, name, type, n_dims, ne, data, nbytes);
    if (rc != 0)
        die("%s: cannot add tensor: %s", name, mc_code_message(rc));
    g_n_params += (uint64_t)n;
}

/* A matrix of n_out rows of n_in (ne = {n_in, n_out}), std = scale/sqrt(n_in). */
static void add_matrix(mc_gguf_writer *w, const cfg *c, float *tmp, const char *name,
                       int64_t n_in, int64_t n_out, float std) {
    fill(tmp, n_in * n_out, c->seed, name, 0.0f, std);
    add(w, name, c->type, 2, n_in, n_out, tmp);
}

static void add_vector(mc_gguf_writer *w, const cfg *c, float *tmp, const char *name,
                       int64_t n, float mean, float std) {
    fill(tmp, n, c->seed, name, mean, std);
    add(w, name, MC_TYPE_F32, 1, n, 1, tmp);
}

/* llama_ftype of a file whose matrices are all of one type. */
static uint32_t file_type(int type) {
    switch (type) {
    case MC_TYPE_F32: return 0;
    case MC_TYPE_F16: return 1;
    case MC_TYPE_Q4_0: return 2;
    case MC_TYPE_Q8_0: return 7;
    case MC_TYPE_BF16: return 32;
    default: return 0;
    }
}

static void parse(cfg *c, int argc, char **argv) {
    memset(c, 0, sizeof *c);
    c->arch = "llama";
    c->n_vocab = 1000;
    c->n_embd = 128;
    c->n_layer = 2;
    c->n_head = 4;
    c->n_head_kv = -1;
    c->n_ff = 256;
    c->n_ctx = 2048;
    c->type = MC_TYPE_F32;
    c->seed = 1;
    c->rope_theta = -1;
    c->eps = -1;
    c->scale = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = !strcmp(a, "--arch") || !strcmp(a, "--vocab") || !strcmp(a, "--embd") ||
                     !strcmp(a, "--layers") || !strcmp(a, "--heads") ||
                     !strcmp(a, "--kv-heads") || !strcmp(a, "--ff") || !strcmp(a, "--ctx") ||
                     !strcmp(a, "--type") || !strcmp(a, "--seed") ||
                     !strcmp(a, "--rope-theta") || !strcmp(a, "--eps") ||
                     !strcmp(a, "--scale") || !strcmp(a, "--name");
        if (takes && !v)
            die("%s needs a value\n%s", a, USAGE);
        if (takes)
            i++;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(USAGE, stdout);
            exit(0);
        } else if (!strcmp(a, "--arch")) {
            if (strcmp(v, "llama") != 0 && strcmp(v, "qwen2") != 0)
                die("--arch: expected llama or qwen2, got '%s'", v);
            c->arch = v;
        } else if (!strcmp(a, "--vocab")) {
            c->n_vocab = (int)parse_long(a, v, 1, 1 << 24);
        } else if (!strcmp(a, "--embd")) {
            c->n_embd = (int)parse_long(a, v, 2, 1 << 16);
        } else if (!strcmp(a, "--layers")) {
            c->n_layer = (int)parse_long(a, v, 1, 1024);
        } else if (!strcmp(a, "--heads")) {
            c->n_head = (int)parse_long(a, v, 1, 1024);
        } else if (!strcmp(a, "--kv-heads")) {
            c->n_head_kv = (int)parse_long(a, v, 1, 1024);
        } else if (!strcmp(a, "--ff")) {
            c->n_ff = (int)parse_long(a, v, 1, 1 << 20);
        } else if (!strcmp(a, "--ctx")) {
            c->n_ctx = (int)parse_long(a, v, 1, 1 << 24);
        } else if (!strcmp(a, "--type")) {
            c->type = mc_ggml_type_from_name(v);
            if (c->type != MC_TYPE_F32 && c->type != MC_TYPE_F16 && c->type != MC_TYPE_BF16 &&
                c->type != MC_TYPE_Q8_0 && c->type != MC_TYPE_Q4_0)
                die("--type: expected f32, f16, bf16, q8_0 or q4_0, got '%s'", v);
        } else if (!strcmp(a, "--seed")) {
            c->seed = (uint64_t)parse_long(a, v, 0, 0x7fffffffffffffffL);
        } else if (!strcmp(a, "--rope-theta")) {
            c->rope_theta = parse_float(a, v);
        } else if (!strcmp(a, "--eps")) {
            c->eps = parse_float(a, v);
        } else if (!strcmp(a, "--scale")) {
            c->scale = parse_float(a, v);
        } else if (!strcmp(a, "--name")) {
            c->name = v;
        } else if (!strcmp(a, "--bias")) {
            c->bias = 1;
        } else if (!strcmp(a, "--tied")) {
            c->tied = 1;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            c->quiet = 1;
        } else if (a[0] == '-' && a[1]) {
            die("unknown option '%s'\n%s", a, USAGE);
        } else if (!c->out) {
            c->out = a;
        } else {
            die("unexpected argument '%s'\n%s", a, USAGE);
        }
    }
    if (!c->out)
        die("no output file given\n%s", USAGE);
    bool qwen = !strcmp(c->arch, "qwen2");
    if (c->n_head_kv < 0)
        c->n_head_kv = c->n_head;
    if (c->rope_theta < 0)
        c->rope_theta = qwen ? 1000000.0f : 10000.0f;
    if (c->eps < 0)
        c->eps = qwen ? 1e-6f : 1e-5f;
    if (c->n_embd % c->n_head != 0)
        die("--embd %d is not a multiple of --heads %d", c->n_embd, c->n_head);
    if ((c->n_embd / c->n_head) % 2 != 0)
        die("head size %d (embd/heads) must be even for RoPE", c->n_embd / c->n_head);
    if (c->n_head % c->n_head_kv != 0)
        die("--heads %d is not a multiple of --kv-heads %d", c->n_head, c->n_head_kv);
    int blk = mc_ggml_type_block(c->type);
    if (c->n_embd % blk != 0 || c->n_ff % blk != 0)
        die("--type %s needs --embd and --ff multiples of %d (got %d and %d)",
            mc_ggml_type_name(c->type), blk, c->n_embd, c->n_ff);
}

int main(int argc, char **argv) {
    cfg c;
    parse(&c, argc, argv);
    const int64_t E = c.n_embd, F = c.n_ff, V = c.n_vocab;
    const int64_t head_dim = E / c.n_head, kv_dim = head_dim * c.n_head_kv;
    const float s = c.scale;

    mc_gguf_writer *w = mc_gguf_writer_new();
    if (!w)
        die("out of memory");
    char key[128], name[128];
#define KEY(suffix) (snprintf(key, sizeof key, "%s." suffix, c.arch), key)
    char defname[64];
    snprintf(defname, sizeof defname, "mkmodel-%s-%s", c.arch, mc_ggml_type_name(c.type));
    int rc = 0;
    rc |= mc_gguf_set_str(w, "general.architecture", c.arch);
    rc |= mc_gguf_set_str(w, "general.name", c.name ? c.name : defname);
    rc |= mc_gguf_set_u32(w, "general.file_type", file_type(c.type));
    rc |= mc_gguf_set_u32(w, KEY("vocab_size"), (uint32_t)V);
    rc |= mc_gguf_set_u32(w, KEY("context_length"), (uint32_t)c.n_ctx);
    rc |= mc_gguf_set_u32(w, KEY("embedding_length"), (uint32_t)E);
    rc |= mc_gguf_set_u32(w, KEY("block_count"), (uint32_t)c.n_layer);
    rc |= mc_gguf_set_u32(w, KEY("feed_forward_length"), (uint32_t)F);
    rc |= mc_gguf_set_u32(w, KEY("attention.head_count"), (uint32_t)c.n_head);
    rc |= mc_gguf_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)c.n_head_kv);
    rc |= mc_gguf_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), c.eps);
    rc |= mc_gguf_set_f32(w, KEY("rope.freq_base"), c.rope_theta);
    rc |= mc_gguf_set_u32(w, KEY("rope.dimension_count"), (uint32_t)head_dim);
    rc |= mc_gguf_set_str(w, "tokenizer.ggml.model", "no_vocab");
#undef KEY
    if (rc != 0)
        die("cannot set metadata (out of memory?)");

    int64_t biggest = MC_MAX(V * E, MC_MAX(E * F, E * E));
    float *tmp = malloc((size_t)biggest * sizeof *tmp); // (largest tensor) scratch
    if (!tmp)
        die("out of memory");

    /* Token embeddings and output rows: std 2/sqrt(E), so logits (an RMS-normed state
     * times a row) have a standard deviation of about 2. */
    add_matrix(w, &c, tmp, "token_embd.weight", E, V, 2.0f * s / sqrtf((float)E));
    for (int l = 0; l < c.n_layer; l++) {
#define TN(fmt) (snprintf(name, sizeof name, "blk.%d." fmt, l), name)
        add_vector(w, &c, tmp, TN("attn_norm.weight"), E, 1.0f, 0.1f);
        add_matrix(w, &c, tmp, TN("attn_q.weight"), E, E, s / sqrtf((float)E));
        add_matrix(w, &c, tmp, TN("attn_k.weight"), E, kv_dim, s / sqrtf((float)E));
        add_matrix(w, &c, tmp, TN("attn_v.weight"), E, kv_dim, s / sqrtf((float)E));
        if (c.bias) {
            add_vector(w, &c, tmp, TN("attn_q.bias"), E, 0.0f, 0.2f);
            add_vector(w, &c, tmp, TN("attn_k.bias"), kv_dim, 0.0f, 0.2f);
            add_vector(w, &c, tmp, TN("attn_v.bias"), kv_dim, 0.0f, 0.2f);
        }
        add_matrix(w, &c, tmp, TN("attn_output.weight"), E, E, s / sqrtf((float)E));
        add_vector(w, &c, tmp, TN("ffn_norm.weight"), E, 1.0f, 0.1f);
        add_matrix(w, &c, tmp, TN("ffn_gate.weight"), E, F, s / sqrtf((float)E));
        add_matrix(w, &c, tmp, TN("ffn_up.weight"), E, F, s / sqrtf((float)E));
        add_matrix(w, &c, tmp, TN("ffn_down.weight"), F, E, s / sqrtf((float)F));
#undef TN
    }
    add_vector(w, &c, tmp, "output_norm.weight", E, 1.0f, 0.1f);
    if (!c.tied)
        add_matrix(w, &c, tmp, "output.weight", E, V, 2.0f * s / sqrtf((float)E));
    free(tmp);

    mc_err err;
    rc = mc_gguf_writer_write(w, c.out, &err);
    if (rc != 0)
        die("cannot write '%s': %s", c.out, err.msg);
    mc_gguf_writer_free(w);
    for (size_t i = 0; i < g_n_bufs; i++)
        free(g_bufs[i]);
    free(g_bufs);
    if (!c.quiet) {
        FILE *f = fopen(c.out, "rb");
        long size = -1;
        if (f && fseek(f, 0, SEEK_END) == 0)
            size = ftell(f);
        if (f)
            fclose(f);
        printf("%s: %s %s, %llu parameters, %ld bytes\n", c.out, c.arch,
               mc_ggml_type_name(c.type), (unsigned long long)g_n_params, size);
    }
    return 0;
}
