/* Tests of the tokenizers: llama.cpp's golden pairs for every vocabulary in
 * ../shared/tokenizers, round trips, special tokens, streaming, healing. */
#include "mccom/tok.h"
#include "test.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>

static char *slurp(const char *path, size_t *n) {
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

static mc_tok *load_vocab(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "tokenizers/ggml-vocab-%s.gguf", name);
    mc_tok *t = NULL;
    mc_err err;
    int rc = mc_tok_load_gguf_file(mc_test_shared(rel), &t, &err);
    CHECK_MSG(rc == 0, "load %s: %s", name, err.msg);
    return t;
}

/* Every test string of X.gguf.inp encodes to the ids of the matching line of
 * X.gguf.out (llama.cpp, no BOS, special tokens not parsed) and decodes back. */
static void golden(const char *name) {
    mc_tok *t = load_vocab(name);
    MC_REQUIRE(t);
    char rel[256];
    size_t ni, no;
    snprintf(rel, sizeof rel, "tokenizers/ggml-vocab-%s.gguf.inp", name);
    char *inp = slurp(mc_test_shared(rel), &ni);
    snprintf(rel, sizeof rel, "tokenizers/ggml-vocab-%s.gguf.out", name);
    char *out = slurp(mc_test_shared(rel), &no);
    MC_REQUIRE(inp && out);
    const char *sep = "\n__ggml_vocab_test__\n";
    size_t seplen = strlen(sep);
    char *p = inp, *line = out;
    int n_tests = 0, n_bad = 0;
    int32_t *ids = malloc(65536 * sizeof(int32_t));
    char *dec = malloc(1 << 20);
    for (;;) {
        char *e = strstr(p, sep);
        if (!e)
            break;
        size_t len = (size_t)(e - p);
        char *nl = strchr(line, '\n');
        MC_REQUIRE(nl);
        *nl = 0;
        int32_t want[4096];
        int nw = 0;
        for (char *q = line; *q;) {
            while (*q == ' ')
                q++;
            if (!*q)
                break;
            want[nw++] = (int32_t)strtol(q, &q, 10);
        }
        int64_t n = 0;
        int rc = mc_tok_encode(t, p, len, 0, ids, 65536, &n);
        CHECK_EQ_INT(rc, 0);
        bool same = n == nw;
        for (int i = 0; same && i < nw; i++)
            same = ids[i] == want[i];
        if (!same) {
            n_bad++;
            char got[2048] = "";
            for (int64_t i = 0, o = 0; i < n && o < 2000; i++)
                o += snprintf(got + o, sizeof got - (size_t)o, " %d", ids[i]);
            mc_test_fail_at(__FILE__, __LINE__, "%s: test %d \"%.*s\": got [%s] want [%s]", name,
                            n_tests, (int)MC_MIN(len, 60), p, got, line);
        }
        int64_t dn = mc_tok_decode(t, ids, n, MC_TOK_DECODE_STRIP_PREFIX, dec, 1 << 20);
        CHECK_MSG(dn == (int64_t)len && memcmp(dec, p, len) == 0, "%s: test %d decode mismatch",
                  name, n_tests);
        n_tests++;
        p = e + seplen;
        line = nl + 1;
    }
    printf("%s: %d tests, %d mismatches\n", name, n_tests, n_bad);
    CHECK(n_tests > 30);
    free(ids);
    free(dec);
    free(inp);
    free(out);
    mc_tok_free(t);
}

MC_TEST(tok_golden_starcoder) { golden("starcoder"); }
MC_TEST(tok_golden_deepseek_coder) { golden("deepseek-coder"); }
MC_TEST(tok_golden_qwen2) { golden("qwen2"); }
MC_TEST(tok_golden_gpt2) { golden("gpt-2"); }
MC_TEST(tok_golden_llama_bpe) { golden("llama-bpe"); }
MC_TEST(tok_golden_llama_spm) { golden("llama-spm"); }
MC_TEST(tok_golden_refact) { golden("refact"); }
