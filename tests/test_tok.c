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

static const char *all_vocabs[] = {"starcoder", "deepseek-coder", "qwen2",     "gpt-2",
                                   "llama-bpe", "llama-spm",      "refact"};

static void roundtrip(mc_tok *t, const char *name, const char *s, size_t n, int *bad) {
    static int32_t ids[1 << 20];
    static char dec[1 << 22];
    int64_t k = 0;
    int rc = mc_tok_encode(t, s, n, 0, ids, 1 << 20, &k);
    if (rc) {
        mc_test_fail_at(__FILE__, __LINE__, "%s: encode rc %d", name, rc);
        return;
    }
    int64_t dn = mc_tok_decode(t, ids, k, MC_TOK_DECODE_STRIP_PREFIX, dec, sizeof dec);
    if (dn != (int64_t)n || memcmp(dec, s, n) != 0) {
        if ((*bad)++ < 3)
            mc_test_fail_at(__FILE__, __LINE__, "%s: round trip of %zu bytes gave %lld bytes",
                            name, n, (long long)dn);
    }
}

/* decode(encode(x)) == x for random byte strings (valid UTF-8 or not). */
MC_TEST(tok_roundtrip_random_bytes) {
    uint64_t seed = 12345;
    char buf[512];
    for (size_t v = 0; v < MC_ARRAY_LEN(all_vocabs); v++) {
        mc_tok *t = load_vocab(all_vocabs[v]);
        MC_REQUIRE(t);
        int bad = 0;
        /* Bytes the vocabulary can represent at all: StarCoder-style vocabularies
         * have no token for bytes that never occur in UTF-8 (0xF5..0xFF), and
         * llama.cpp drops them too. Random strings are drawn from the rest. */
        uint8_t ok[256];
        int n_ok = 0;
        for (int b = 0; b < 256; b++) {
            char c1 = (char)b, d[8];
            int32_t id[8];
            int64_t k;
            mc_tok_encode(t, &c1, 1, 0, id, 8, &k);
            if (mc_tok_decode(t, id, k, MC_TOK_DECODE_STRIP_PREFIX, d, 8) == 1 && d[0] == c1)
                ok[n_ok++] = (uint8_t)b;
        }
        printf("%s: %d of 256 bytes representable\n", all_vocabs[v], n_ok);
        CHECK(n_ok >= 240);
        for (int it = 0; it < 400; it++) {
            size_t n = (size_t)(it % 97) + 1;
            for (size_t i = 0; i < n; i++) {
                seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                uint8_t b = ok[(seed >> 48) % (uint64_t)n_ok];
                /* mix: raw bytes, ASCII text, spaces */
                int mode = (int)((seed >> 40) & 3);
                buf[i] = (char)(mode == 0 ? b : mode == 1 ? ' ' + (b % 95) : mode == 2 ? " \n\t"[b % 3] : b);
            }
            roundtrip(t, all_vocabs[v], buf, n, &bad);
        }
        CHECK_EQ_INT(bad, 0);
        mc_tok_free(t);
    }
}

/* decode(encode(x)) == x on real source: the Python standard library. */
MC_TEST_T(tok_roundtrip_python_stdlib, 300) {
    const char *dir = "/usr/lib/python3.11";
    DIR *d = opendir(dir);
    if (!d)
        MC_SKIP("no /usr/lib/python3.11");
    /* a fixed sample: the first 40 .py files in name order */
    char *names[2048];
    int nn = 0;
    struct dirent *e;
    while ((e = readdir(d)) && nn < 2048) {
        size_t l = strlen(e->d_name);
        if (l > 3 && !strcmp(e->d_name + l - 3, ".py"))
            names[nn++] = strdup(e->d_name);
    }
    closedir(d);
    for (int i = 0; i < nn; i++)
        for (int j = i + 1; j < nn; j++)
            if (strcmp(names[i], names[j]) > 0) {
                char *x = names[i];
                names[i] = names[j];
                names[j] = x;
            }
    for (size_t v = 0; v < MC_ARRAY_LEN(all_vocabs); v++) {
        mc_tok *t = load_vocab(all_vocabs[v]);
        MC_REQUIRE(t);
        int bad = 0;
        size_t total = 0;
        for (int i = 0; i < nn && i < 40; i++) {
            char path[512];
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            size_t n;
            char *s = slurp(path, &n);
            if (!s)
                continue;
            total += n;
            roundtrip(t, all_vocabs[v], s, n, &bad);
            free(s);
        }
        printf("%s: %zu bytes of stdlib round-tripped, %d failures\n", all_vocabs[v], total, bad);
        CHECK_EQ_INT(bad, 0);
        mc_tok_free(t);
    }
    for (int i = 0; i < nn; i++)
        free(names[i]);
}

MC_TEST(tok_special_tokens_only_when_asked) {
    mc_tok *t = load_vocab("starcoder");
    MC_REQUIRE(t);
    int32_t pre = mc_tok_special(t, MC_TOK_FIM_PRE), mid = mc_tok_special(t, MC_TOK_FIM_MID);
    int32_t suf = mc_tok_special(t, MC_TOK_FIM_SUF);
    CHECK_EQ_INT(pre, 1);
    CHECK_EQ_INT(mid, 2);
    CHECK_EQ_INT(suf, 3);
    CHECK(mc_tok_eos(t) >= 0 && mc_tok_is_eog(t, mc_tok_eos(t)));
    const char *s = "<fim_prefix>def f(x):<fim_suffix>\n<fim_middle>";
    int32_t ids[128];
    int64_t n;
    CHECK_EQ_INT(mc_tok_encode(t, s, strlen(s), MC_TOK_PARSE_SPECIAL, ids, 128, &n), 0);
    CHECK(n > 3 && ids[0] == pre && ids[n - 1] == mid);
    bool has_suf = false;
    for (int64_t i = 0; i < n; i++)
        has_suf |= ids[i] == suf;
    CHECK(has_suf);
    char dec[256];
    /* control tokens decode to nothing unless asked */
    CHECK_EQ_INT(mc_tok_decode(t, ids, n, 0, dec, sizeof dec), (int64_t)strlen("def f(x):\n"));
    CHECK_EQ_INT(mc_tok_decode(t, ids, n, MC_TOK_DECODE_SPECIAL, dec, sizeof dec), (int64_t)strlen(s));
    /* without PARSE_SPECIAL they are plain text */
    CHECK_EQ_INT(mc_tok_encode(t, s, strlen(s), 0, ids, 128, &n), 0);
    for (int64_t i = 0; i < n; i++)
        CHECK(ids[i] != pre && ids[i] != mid && ids[i] != suf);

    CHECK_EQ_INT(mc_tok_decode(t, ids, n, 0, dec, sizeof dec), (int64_t)strlen(s));
    /* MC_EFULL reports the size needed */
    CHECK_EQ_INT(mc_tok_encode(t, s, strlen(s), 0, ids, 2, &n), MC_EFULL);
    CHECK(n > 2);
    mc_tok_free(t);

    /* SPM adds BOS when asked (add_bos) */
    t = load_vocab("llama-spm");
    MC_REQUIRE(t);
    CHECK_EQ_INT(mc_tok_encode(t, "hi", 2, MC_TOK_ADD_BOS, ids, 128, &n), 0);
    CHECK(n >= 2 && ids[0] == mc_tok_bos(t));
    mc_tok_free(t);
}

/* Streaming: UTF-8 split across tokens is held back, never emitted broken. */
MC_TEST(tok_stream_holds_partial_utf8) {
    for (size_t v = 0; v < MC_ARRAY_LEN(all_vocabs); v++) {
        mc_tok *t = load_vocab(all_vocabs[v]);
        MC_REQUIRE(t);
        const char *s = "emoji 🦙🦙 and 中文字符 and ümlaut\n";
        int32_t ids[256];
        int64_t n;
        CHECK_EQ_INT(mc_tok_encode(t, s, strlen(s), 0, ids, 256, &n), 0);
        mc_tok_stream st;
        mc_tok_stream_init(&st, MC_TOK_DECODE_STRIP_PREFIX);
        char out[1024];
        size_t o = 0;
        for (int64_t i = 0; i < n; i++) {
            int k = mc_tok_stream_push(t, &st, ids[i], out + o, sizeof out - o);
            MC_REQUIRE(k >= 0);
            /* what has been emitted so far is always complete UTF-8 */
            size_t l = o + (size_t)k;
            for (size_t j = 0; j < l;) {
                unsigned char c = (unsigned char)out[j];
                size_t need = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
                CHECK_MSG(j + need <= l, "%s: broken UTF-8 emitted at token %lld", all_vocabs[v],
                          (long long)i);
                j += need;
            }
            o = l;
        }
        int k = mc_tok_stream_flush(&st, out + o, sizeof out - o);
        CHECK_EQ_INT(k, 0);
        CHECK(o == strlen(s) && memcmp(out, s, o) == 0);
        mc_tok_free(t);
    }
}

/* Token healing: the cursor inside an identifier backs off to the word start. */
MC_TEST(tok_heal_backs_off_partial_word) {
    for (size_t v = 0; v < MC_ARRAY_LEN(all_vocabs); v++) {
        mc_tok *t = load_vocab(all_vocabs[v]);
        MC_REQUIRE(t);
        const char *s = "import os\nresult = os.path.jo";
        int32_t ids[128];
        mc_tok_heal_result h;
        CHECK_EQ_INT(mc_tok_heal(t, s, strlen(s), 0, 0, ids, 128, &h), 0);
        const char *rem = s + h.keep_len;
        CHECK_MSG(h.removed_len >= 2 && !memcmp(rem + h.removed_len - 2, "jo", 2), "%s: removed '%.*s'",
                  all_vocabs[v], (int)h.removed_len, rem);
        /* kept ids decode to the kept text */
        char dec[256];
        int64_t dn = mc_tok_decode(t, ids, h.n_ids, MC_TOK_DECODE_STRIP_PREFIX, dec, sizeof dec);
        CHECK(dn == (int64_t)h.keep_len && memcmp(dec, s, h.keep_len) == 0);
        /* the token for "join" (or a prefix path to it) fits; "x" does not */
        uint8_t *mask = malloc((size_t)mc_tok_n_vocab(t));
        int64_t allowed = mc_tok_heal_mask(t, rem, h.removed_len, mask);
        CHECK(allowed > 0);
        int32_t x[8];
        int64_t nx;
        mc_tok_encode(t, "x", 1, 0, x, 8, &nx);
        CHECK(nx >= 1 && !mask[x[nx - 1]]);
        /* every allowed token agrees with the removed text */
        for (int32_t i = 0; i < mc_tok_n_vocab(t); i++)
            if (mask[i]) {
                char p[512];
                int pl = mc_tok_decode_piece(t, i, 0, p, sizeof p);
                size_t m = MC_MIN((size_t)pl, h.removed_len);
                CHECK(pl > 0 && memcmp(p, rem, m) == 0);
            }
        free(mask);
        mc_tok_free(t);
    }
}

MC_TEST(tok_llama2c_tok512) {
    mc_tok *t = NULL;
    mc_err err;
    int rc = mc_tok_load_llama2c(mc_test_shared("models/stories260K/tok512.bin"), 512, &t, &err);
    MC_REQUIRE(rc == 0);
    CHECK_EQ_INT(mc_tok_n_vocab(t), 512);
    CHECK_EQ_INT(mc_tok_bos(t), 1);
    CHECK_EQ_INT(mc_tok_eos(t), 2);
    const char *s = "Once upon a time, there was a little girl named Lily.";
    int32_t ids[256];
    int64_t n;
    CHECK_EQ_INT(mc_tok_encode(t, s, strlen(s), MC_TOK_ADD_BOS, ids, 256, &n), 0);
    CHECK(n > 5 && n < 40 && ids[0] == 1);
    char dec[256];
    int64_t dn = mc_tok_decode(t, ids, n, MC_TOK_DECODE_STRIP_PREFIX, dec, sizeof dec);
    CHECK(dn == (int64_t)strlen(s) && memcmp(dec, s, (size_t)dn) == 0);
    /* bytes outside the vocabulary fall back to <0xXX> tokens */
    const char *u = "naïve 🦙";
    CHECK_EQ_INT(mc_tok_encode(t, u, strlen(u), 0, ids, 256, &n), 0);
    dn = mc_tok_decode(t, ids, n, MC_TOK_DECODE_STRIP_PREFIX, dec, sizeof dec);
    CHECK(dn == (int64_t)strlen(u) && memcmp(dec, u, (size_t)dn) == 0);
    mc_tok_free(t);
    /* truncated file: an error with an offset, not a crash */
    char junk[12] = {8, 0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0};
    CHECK(mc_tok_load_llama2c_mem(junk, sizeof junk, 0, &t, &err) == MC_EFORMAT && t == NULL);
}
