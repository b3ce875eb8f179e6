/* Tests of the BPE trainer, its two output files, and corpus tokenization.
 * Training data: a few packages of the Python standard library; held-out
 * files (http, urllib) measure compression and check tokenizer.json against an
 * independent reference (tools/tok/hf_bpe_ref.py). */
#include "mccom/tok.h"
#include "test.h"

#include <stdlib.h>
#include <sys/stat.h>

static const char *train_dirs[] = {"/usr/lib/python3.11/json", "/usr/lib/python3.11/email",
                                   "/usr/lib/python3.11/asyncio",
                                   "/usr/lib/python3.11/importlib"};
static const char *held_out[] = {"/usr/lib/python3.11/http/client.py",
                                 "/usr/lib/python3.11/http/cookiejar.py",
                                 "/usr/lib/python3.11/urllib/parse.py",
                                 "/usr/lib/python3.11/urllib/request.py"};

static char *slurp2(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, f);
    b[*n] = 0;
    fclose(f);
    return b;
}

static void need_stdlib(void) {
    struct stat st;
    if (stat("/usr/lib/python3.11/json", &st) != 0)
        MC_SKIP("no Python standard library to train on");
}

/* Train a 4096-token vocabulary into dir/tok.gguf and dir/tokenizer.json. */
static void train(const char *dir, int threads, bool reverse, char *gguf, char *hf) {
    mc_tok_train_params p = mc_tok_train_default();
    p.vocab_size = 4096;
    p.n_threads = threads;
    mc_tok_trainer *t = mc_tok_trainer_new(&p);
    MC_REQUIRE(t);
    const char *paths[4];
    for (int i = 0; i < 4; i++)
        paths[i] = train_dirs[reverse ? 3 - i : i];
    mc_err err;
    int64_t bytes = 0;
    CHECK_EQ_INT(mc_tok_trainer_add_paths(t, paths, 4, &bytes, &err), 0);
    CHECK(bytes > 500000);
    CHECK_EQ_INT(mc_tok_trainer_run(t, &err), 0);
    CHECK_EQ_INT(mc_tok_trainer_n_merges(t), 4096 - 6 - 256);
    sprintf(gguf, "%s/tok.gguf", dir);
    sprintf(hf, "%s/tokenizer.json", dir);
    CHECK_EQ_INT(mc_tok_trainer_write_gguf(t, gguf, &err), 0);
    CHECK_EQ_INT(mc_tok_trainer_write_hf(t, hf, &err), 0);
    mc_tok_trainer_free(t);
}

MC_TEST(tok_train_is_deterministic) {
    need_stdlib();
    char d1[512], d2[512], g1[600], g2[600], h1[600], h2[600];
    snprintf(d1, sizeof d1, "%s/a", mc_test_tmpdir());
    snprintf(d2, sizeof d2, "%s/b", mc_test_tmpdir());
    mkdir(d1, 0755);
    mkdir(d2, 0755);
    train(d1, 1, false, g1, h1);
    train(d2, 2, true, g2, h2);
    size_t n1, n2;
    char *a = slurp2(g1, &n1), *b = slurp2(g2, &n2);
    MC_REQUIRE(a && b);
    CHECK(n1 == n2 && memcmp(a, b, n1) == 0);
    free(a);
    free(b);
    a = slurp2(h1, &n1);
    b = slurp2(h2, &n2);
    MC_REQUIRE(a && b);
    CHECK(n1 == n2 && memcmp(a, b, n1) == 0);
    free(a);
    free(b);
}

MC_TEST(tok_train_vocab_loads_roundtrips_and_compresses) {
    need_stdlib();
    char g[600], h[600];
    train(mc_test_tmpdir(), 2, false, g, h);
    mc_tok *t = NULL, *gpt2 = NULL;
    mc_err err;
    MC_REQUIRE(mc_tok_load_gguf_file(g, &t, &err) == 0);
    CHECK_EQ_INT(mc_tok_type(t), MC_TOK_BPE);
    CHECK_EQ_STR(mc_tok_pre_name(t), "qwen2");
    CHECK_EQ_INT(mc_tok_n_vocab(t), 4096);
    CHECK_EQ_INT(mc_tok_eos(t), 0);
    CHECK_EQ_INT(mc_tok_special(t, MC_TOK_FIM_PRE), 1);
    CHECK_EQ_INT(mc_tok_special(t, MC_TOK_FIM_MID), 2);
    CHECK_EQ_INT(mc_tok_special(t, MC_TOK_FIM_SUF), 3);
    CHECK_EQ_INT(mc_tok_special(t, MC_TOK_FIM_PAD), 4);
    CHECK_EQ_INT(mc_tok_special(t, MC_TOK_FIM_SEP), 5);
    for (int i = 0; i < 6; i++)
        CHECK(mc_tok_attr(t, i) & MC_TOK_ATTR_CONTROL);
    CHECK(!mc_tok_add_bos(t));
    int32_t ids[16];
    int64_t n;
    const char *fim = "<|fim_prefix|>x<|fim_suffix|>y<|fim_middle|>";
    CHECK_EQ_INT(mc_tok_encode(t, fim, strlen(fim), MC_TOK_PARSE_SPECIAL, ids, 16, &n), 0);
    CHECK(n == 5 && ids[0] == 1 && ids[2] == 3 && ids[4] == 2);

    MC_REQUIRE(mc_tok_load_gguf_file(mc_test_shared("tokenizers/ggml-vocab-gpt-2.gguf"), &gpt2,
                                     &err) == 0);
    int64_t bytes = 0, n_ours = 0, n_gpt2 = 0;
    int32_t *buf = malloc((1 << 20) * sizeof(int32_t));
    char *dec = malloc(1 << 22);
    for (size_t i = 0; i < MC_ARRAY_LEN(held_out); i++) {
        size_t len;
        char *s = slurp2(held_out[i], &len);
        if (!s)
            continue;
        bytes += (int64_t)len;
        CHECK_EQ_INT(mc_tok_encode(t, s, len, 0, buf, 1 << 20, &n), 0);
        n_ours += n;
        int64_t dn = mc_tok_decode(t, buf, n, 0, dec, 1 << 22);
        CHECK(dn == (int64_t)len && memcmp(dec, s, len) == 0);
        CHECK_EQ_INT(mc_tok_encode(gpt2, s, len, 0, buf, 1 << 20, &n), 0);
        n_gpt2 += n;
        free(s);
    }
    MC_REQUIRE(bytes > 0);
    printf("held-out Python, %lld bytes: trained-4096 %.4f tokens/byte, gpt-2 %.4f tokens/byte, "
           "ratio %.3f\n",
           (long long)bytes, (double)n_ours / (double)bytes, (double)n_gpt2 / (double)bytes,
           (double)n_ours / (double)n_gpt2);
    CHECK(n_ours < n_gpt2);
    free(buf);
    free(dec);
    mc_tok_free(t);
    mc_tok_free(gpt2);
}

/* tokenizer.json, read by an independent implementation, gives our ids. */
MC_TEST(tok_train_hf_json_matches_reference) {
    need_stdlib();
    if (system("python3 -c 'import json, unicodedata' >/dev/null 2>&1") != 0)
        MC_SKIP("no python3");
    char g[600], h[600];
    train(mc_test_tmpdir(), 2, false, g, h);
    mc_tok *t = NULL;
    mc_err err;
    MC_REQUIRE(mc_tok_load_gguf_file(g, &t, &err) == 0);
    char cmd[4096];
    int o = snprintf(cmd, sizeof cmd, "python3 tools/tok/hf_bpe_ref.py %s", h);
    for (size_t i = 0; i < MC_ARRAY_LEN(held_out); i++)
        o += snprintf(cmd + o, sizeof cmd - (size_t)o, " %s", held_out[i]);
    FILE *p = popen(cmd, "r");
    MC_REQUIRE(p);
    size_t cap = 1 << 24;
    char *line = malloc(cap);
    int32_t *ids = malloc((1 << 20) * sizeof(int32_t));
    int files = 0;
    for (size_t i = 0; i < MC_ARRAY_LEN(held_out) && fgets(line, (int)cap, p); i++) {
        size_t len;
        char *s = slurp2(held_out[i], &len);
        MC_REQUIRE(s);
        int64_t n;
        CHECK_EQ_INT(mc_tok_encode(t, s, len, MC_TOK_PARSE_SPECIAL, ids, 1 << 20, &n), 0);
        int64_t k = 0;
        bool same = true;
        for (char *q = line; *q && *q != '\n';) {
            long v = strtol(q, &q, 10);
            if (k >= n || ids[k] != v)
                same = false;
            k++;
            while (*q == ' ')
                q++;
        }
        CHECK_MSG(same && k == n, "%s: mccom %lld ids, reference %lld ids, differ", held_out[i],
                  (long long)n, (long long)k);
        files++;
        free(s);
    }
    CHECK_EQ_INT(pclose(p), 0);
    CHECK_EQ_INT(files, (int)MC_ARRAY_LEN(held_out));
    free(line);
    free(ids);
    mc_tok_free(t);
}

/* The token file: header fields, tokens = encode(doc) + separator per doc. */
MC_TEST(tok_corpus_file_format) {
    mc_tok *t = NULL;
    mc_err err;
    MC_REQUIRE(mc_tok_load_gguf_file(mc_test_shared("tokenizers/ggml-vocab-starcoder.gguf"), &t,
                                     &err) == 0);
    char d[600], f1[700], f2[700], out[700];
    snprintf(d, sizeof d, "%s/docs", mc_test_tmpdir());
    mkdir(d, 0755);
    snprintf(f1, sizeof f1, "%s/a.py", d);
    snprintf(f2, sizeof f2, "%s/b.py", d);
    snprintf(out, sizeof out, "%s/out.bin", mc_test_tmpdir());
    FILE *f = fopen(f1, "w");
    fputs("def f(x):\n    return x + 1\n", f);
    fclose(f);
    f = fopen(f2, "w");
    fputs("print('hello')\n", f);
    fclose(f);
    const char *paths[] = {d};
    mc_tok_corpus_stats st;
    CHECK_EQ_INT(mc_tok_corpus_write(t, paths, 1, 2, out, false, &st, &err), 0);
    CHECK_EQ_INT(st.n_docs, 2);
    size_t n;
    char *b = slurp2(out, &n);
    MC_REQUIRE(b && n >= 32);
    CHECK(memcmp(b, "MCTOKENS", 8) == 0);
    uint32_t ver, bpt, sep, nv;
    uint64_t nt;
    memcpy(&ver, b + 8, 4);
    memcpy(&bpt, b + 12, 4);
    memcpy(&nt, b + 16, 8);
    memcpy(&sep, b + 24, 4);
    memcpy(&nv, b + 28, 4);
    CHECK_EQ_INT(ver, 1);
    CHECK_EQ_INT(bpt, 2);
    CHECK_EQ_INT(sep, (uint32_t)mc_tok_eos(t));
    CHECK_EQ_INT(nv, 49152);
    CHECK_EQ_INT(n, 32 + nt * 2);
    /* expected: a.py tokens, sep, b.py tokens, sep */
    int32_t want[256];
    int64_t k1, k2;
    mc_tok_encode(t, "def f(x):\n    return x + 1\n", 27, 0, want, 128, &k1);
    want[k1] = (int32_t)sep;
    mc_tok_encode(t, "print('hello')\n", 15, 0, want + k1 + 1, 100, &k2);
    want[k1 + 1 + k2] = (int32_t)sep;
    CHECK_EQ_INT((int64_t)nt, k1 + k2 + 2);
    for (uint64_t i = 0; i < nt && i < 256; i++) {
        uint16_t v;
        memcpy(&v, b + 32 + 2 * i, 2);
        CHECK_EQ_INT(v, want[i]);
    }
    free(b);
    mc_tok_free(t);
}

/* ---- against llama.cpp itself (the oracle program, when built) ---------------- */

static const char *oracle_path(void) {
    const char *e = getenv("MC_ORACLE");
    if (e && *e)
        return e;
    struct stat st;
    if (stat("build/oracle/mccom-oracle", &st) == 0)
        return "build/oracle/mccom-oracle";
    return NULL;
}

/* ids of llama.cpp for file `path` with vocabulary `vocab`; returns count. */
static int64_t oracle_ids(const char *oracle, const char *vocab, const char *path, int32_t *ids,
                          int64_t cap) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s tokenize %s < %s 2>/dev/null", oracle, vocab, path);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    int64_t n = 0;
    long v;
    while (fscanf(p, "%ld", &v) == 1) {
        if (n < cap)
            ids[n] = (int32_t)v;
        n++;
    }
    if (pclose(p) != 0)
        return -1;
    return n;
}

static void compare_with_oracle(const char *oracle, const char *vocab, const char *label,
                                size_t n_files) {
    mc_tok *t = NULL;
    mc_err err;
    MC_REQUIRE(mc_tok_load_gguf_file(vocab, &t, &err) == 0);
    int32_t *a = malloc((1 << 20) * sizeof(int32_t)), *b = malloc((1 << 20) * sizeof(int32_t));
    for (size_t i = 0; i < n_files; i++) {
        size_t len;
        char *s = slurp2(held_out[i], &len);
        if (!s)
            continue;
        int64_t n = 0;
        CHECK_EQ_INT(mc_tok_encode(t, s, len, 0, a, 1 << 20, &n), 0);
        int64_t m = oracle_ids(oracle, vocab, held_out[i], b, 1 << 20);
        CHECK_MSG(m == n && memcmp(a, b, (size_t)n * sizeof(int32_t)) == 0,
                  "%s: %s: mccom %lld ids, llama.cpp %lld ids, differ", label, held_out[i],
                  (long long)n, (long long)m);
        free(s);
    }
    free(a);
    free(b);
    mc_tok_free(t);
}

/* Slow-ish (llama.cpp loads each vocabulary): one held-out file per real
 * vocabulary, all of them for the trained one. */
MC_TEST_T(tok_same_ids_as_llama_cpp, 300) {
    need_stdlib();
    const char *oracle = oracle_path();
    /* make test always builds the oracle: its absence is a set-up failure */
    CHECK_MSG(oracle != NULL, "llama.cpp oracle not built (make oracle, or set $MC_ORACLE)");
    if (!oracle)
        return;
    char g[600], h[600];
    train(mc_test_tmpdir(), 2, false, g, h);
    compare_with_oracle(oracle, g, "trained", MC_ARRAY_LEN(held_out));
    static const char *names[] = {"starcoder", "deepseek-coder", "qwen2",    "gpt-2",
                                  "llama-bpe", "llama-spm",      "refact"};
    for (size_t i = 0; i < MC_ARRAY_LEN(names); i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "tokenizers/ggml-vocab-%s.gguf", names[i]);
        compare_with_oracle(oracle, mc_test_shared(rel), names[i], 1);
    }
}
