/* GGUF reader/writer tests: round trip, real llama.cpp files, and hostile input
 * (every truncation, targeted corruptions, random mutations). */
#include "mccom/gguf.h"
#include "test.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)sz + 1);
    *n = fread(buf, 1, (size_t)sz, f);
    fclose(f);
    return buf;
}

/* A small file with every value type and tensors of several types and shapes. */
static void write_sample(const char *path, float *f32data, uint16_t *f16data, uint8_t *q8data) {
    mc_gguf_writer *w = mc_gguf_writer_new();
    MC_REQUIRE(w);
    CHECK_EQ_INT(mc_gguf_set_str(w, "general.architecture", "llama"), 0);
    CHECK_EQ_INT(mc_gguf_set_u32(w, "llama.block_count", 3), 0);
    CHECK_EQ_INT(mc_gguf_set_i32(w, "test.i32", -7), 0);
    CHECK_EQ_INT(mc_gguf_set_u64(w, "test.u64", 1ull << 40), 0);
    CHECK_EQ_INT(mc_gguf_set_f32(w, "test.f32", 1.5f), 0);
    CHECK_EQ_INT(mc_gguf_set_bool(w, "test.bool", true), 0);
    CHECK_EQ_INT(mc_gguf_set_u8(w, "test.u8", 200), 0);
    const char *strs[] = {"a", "", "hello world", "\xe2\x82\xac"};
    CHECK_EQ_INT(mc_gguf_set_arr_str(w, "test.strs", strs, NULL, 4), 0);
    int32_t ints[5] = {1, -2, 3, -4, 5};
    CHECK_EQ_INT(mc_gguf_set_arr(w, "test.ints", MC_GGUF_I32, ints, 5), 0);
    CHECK_EQ_INT(mc_gguf_set_u32(w, "llama.block_count", 4), 0); /* replaces */
    for (int i = 0; i < 7 * 3; i++)
        f32data[i] = (float)i * 0.5f;
    for (int i = 0; i < 64; i++)
        f16data[i] = (uint16_t)(0x3c00 + i);
    for (int i = 0; i < 34 * 2; i++)
        q8data[i] = (uint8_t)(i * 7);
    int64_t ne1[2] = {7, 3};
    CHECK_EQ_INT(mc_gguf_add_tensor(w, "a.weight", MC_TYPE_F32, 2, ne1, f32data, 7 * 3 * 4), 0);
    int64_t ne2[1] = {64};
    CHECK_EQ_INT(mc_gguf_add_tensor(w, "b", MC_TYPE_F16, 1, ne2, f16data, 128), 0);
    int64_t ne3[3] = {32, 1, 2};
    CHECK_EQ_INT(mc_gguf_add_tensor(w, "c.q8", MC_TYPE_Q8_0, 3, ne3, q8data, 68), 0);
    /* rejected: wrong byte count, duplicate name, bad block multiple */
    CHECK(mc_gguf_add_tensor(w, "d", MC_TYPE_F32, 1, ne2, f32data, 12) == MC_EINVAL);
    CHECK(mc_gguf_add_tensor(w, "b", MC_TYPE_F16, 1, ne2, f16data, 128) == MC_EINVAL);
    int64_t ne4[1] = {33};
    CHECK(mc_gguf_add_tensor(w, "e", MC_TYPE_Q8_0, 1, ne4, q8data, 34) == MC_EINVAL);
    mc_err err;
    CHECK_EQ_INT(mc_gguf_writer_write(w, path, &err), 0);
    mc_gguf_writer_free(w);
}

MC_TEST(gguf_roundtrip_every_type) {
    char path[512];
    snprintf(path, sizeof path, "%s/s.gguf", mc_test_tmpdir());
    float f32data[21];
    uint16_t f16data[64];
    uint8_t q8data[68];
    write_sample(path, f32data, f16data, q8data);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0); /* renamed, no temp left */

    mc_gguf *g;
    mc_err err;
    MC_REQUIRE(mc_gguf_open(path, &g, &err) == 0);
    CHECK_EQ_INT(mc_gguf_version(g), 3);
    CHECK_EQ_INT(mc_gguf_n_kv(g), 9);
    CHECK_EQ_INT(mc_gguf_n_tensors(g), 3);
    uint32_t u32 = 0;
    CHECK_EQ_INT(mc_gguf_get_u32(g, "llama.block_count", &u32), 0);
    CHECK_EQ_INT(u32, 4);
    /* key order: first set */
    mc_str k1 = mc_gguf_key(g, 1);
    CHECK(k1.len == 17 && !memcmp(k1.ptr, "llama.block_count", 17));
    int32_t i32;
    CHECK_EQ_INT(mc_gguf_get_i32(g, "test.i32", &i32), 0);
    CHECK_EQ_INT(i32, -7);
    CHECK_EQ_INT(mc_gguf_get_u32(g, "test.i32", &u32), MC_ERANGE);
    CHECK_EQ_INT(mc_gguf_get_u32(g, "test.u64", &u32), MC_ERANGE);
    uint64_t u64;
    CHECK_EQ_INT(mc_gguf_get_u64(g, "test.u64", &u64), 0);
    CHECK(u64 == (1ull << 40));
    float f;
    CHECK_EQ_INT(mc_gguf_get_f32(g, "test.f32", &f), 0);
    CHECK(f == 1.5f);
    CHECK_EQ_INT(mc_gguf_get_f32(g, "llama.block_count", &f), 0);
    CHECK(f == 4.0f);
    bool b = false;
    CHECK_EQ_INT(mc_gguf_get_bool(g, "test.bool", &b), 0);
    CHECK(b);
    CHECK_EQ_INT(mc_gguf_get_u32(g, "test.u8", &u32), 0);
    CHECK_EQ_INT(u32, 200);
    mc_str s;
    CHECK_EQ_INT(mc_gguf_get_str(g, "general.architecture", &s), 0);
    CHECK(s.len == 5 && !memcmp(s.ptr, "llama", 5));
    CHECK_EQ_INT(mc_gguf_get_str(g, "test.f32", &s), MC_ETYPE);
    CHECK_EQ_INT(mc_gguf_get_str(g, "no.such.key", &s), MC_ENOTFOUND);
    int64_t ia = mc_gguf_find_key(g, "test.strs");
    MC_REQUIRE(ia >= 0);
    CHECK_EQ_INT(mc_gguf_kv_type(g, ia), MC_GGUF_ARRAY);
    CHECK_EQ_INT(mc_gguf_arr_type(g, ia), MC_GGUF_STRING);
    CHECK_EQ_INT(mc_gguf_arr_n(g, ia), 4);
    mc_str e2 = mc_gguf_arr_str(g, ia, 2), e1 = mc_gguf_arr_str(g, ia, 1),
           e3 = mc_gguf_arr_str(g, ia, 3);
    CHECK(e2.len == 11 && !memcmp(e2.ptr, "hello world", 11));
    CHECK_EQ_INT(e1.len, 0);
    CHECK(e3.len == 3 && !memcmp(e3.ptr, "\xe2\x82\xac", 3));
    CHECK(mc_gguf_arr_str(g, ia, 4).len == 0);
    int64_t ii = mc_gguf_find_key(g, "test.ints");
    const int32_t *ints = mc_gguf_arr_data(g, ii);
    MC_REQUIRE(ints);
    int32_t v3;
    memcpy(&v3, (const char *)ints + 12, 4);
    CHECK_EQ_INT(v3, -4);
    char buf[256];
    CHECK_EQ_INT(mc_gguf_kv_format(g, ii, buf, sizeof buf), 0);
    CHECK_EQ_STR(buf, "[i32 x 5] 1, -2, 3, -4, ...");

    const mc_gguf_tensor *ta = mc_gguf_find_tensor(g, "a.weight");
    MC_REQUIRE(ta);
    CHECK_EQ_INT(ta->type, MC_TYPE_F32);
    CHECK_EQ_INT(ta->n_dims, 2);
    CHECK_EQ_INT(ta->ne[0], 7);
    CHECK_EQ_INT(ta->ne[1], 3);
    CHECK_EQ_INT(ta->ne[2], 1);
    CHECK_EQ_INT(ta->size, 84);
    CHECK(memcmp(ta->data, f32data, 84) == 0);
    const mc_gguf_tensor *tb = mc_gguf_find_tensor(g, "b");
    MC_REQUIRE(tb);
    CHECK(memcmp(tb->data, f16data, 128) == 0);
    CHECK_EQ_INT(tb->offset % 32, 0);
    const mc_gguf_tensor *tc = mc_gguf_find_tensor(g, "c.q8");
    MC_REQUIRE(tc);
    CHECK_EQ_INT(tc->size, 68);
    CHECK(memcmp(tc->data, q8data, 68) == 0);
    CHECK_EQ_INT(((const uint8_t *)tc->data - (const uint8_t *)mc_gguf_base(g)) % 32, 0);
    CHECK(mc_gguf_find_tensor(g, "missing") == NULL);

    /* copy_kv + re-write preserves every value byte for byte */
    mc_gguf_writer *w = mc_gguf_writer_new();
    CHECK_EQ_INT(mc_gguf_copy_kv(w, g), 0);
    char path2[600];
    snprintf(path2, sizeof path2, "%s/copy.gguf", mc_test_tmpdir());
    CHECK_EQ_INT(mc_gguf_writer_write(w, path2, &err), 0);
    mc_gguf_writer_free(w);
    mc_gguf *g2;
    MC_REQUIRE(mc_gguf_open(path2, &g2, &err) == 0);
    CHECK_EQ_INT(mc_gguf_n_kv(g2), mc_gguf_n_kv(g));
    for (int64_t i = 0; i < mc_gguf_n_kv(g); i++) {
        char b1[256], b2[256];
        mc_gguf_kv_format(g, i, b1, sizeof b1);
        mc_gguf_kv_format(g2, i, b2, sizeof b2);
        CHECK_EQ_STR(b1, b2);
    }
    mc_gguf_close(g2);
    mc_gguf_close(g);
}

MC_TEST(gguf_reads_llama_cpp_vocab_files) {
    static const char *names[] = {"starcoder", "deepseek-coder", "qwen2", "gpt-2",
                                  "llama-bpe", "llama-spm",      "refact"};
    for (size_t i = 0; i < MC_ARRAY_LEN(names); i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "tokenizers/ggml-vocab-%s.gguf", names[i]);
        mc_gguf *g;
        mc_err err;
        int rc = mc_gguf_open(mc_test_shared(rel), &g, &err);
        CHECK_MSG(rc == 0, "%s: %s", rel, err.msg);
        if (rc)
            continue;
        int64_t it = mc_gguf_find_key(g, "tokenizer.ggml.tokens");
        CHECK(it >= 0);
        CHECK(mc_gguf_arr_type(g, it) == MC_GGUF_STRING);
        CHECK(mc_gguf_arr_n(g, it) > 1000);
        mc_str model;
        CHECK_EQ_INT(mc_gguf_get_str(g, "tokenizer.ggml.model", &model), 0);
        /* the last token string is reachable and in bounds */
        mc_str last = mc_gguf_arr_str(g, it, mc_gguf_arr_n(g, it) - 1);
        CHECK(last.ptr >= (const char *)mc_gguf_base(g));
        CHECK(last.ptr + last.len <= (const char *)mc_gguf_base(g) + mc_gguf_file_size(g));
        mc_gguf_close(g);
    }
}

MC_TEST(gguf_every_truncation_is_an_error) {
    char path[512];
    snprintf(path, sizeof path, "%s/s.gguf", mc_test_tmpdir());
    float a[21];
    uint16_t b[64];
    uint8_t c[68];
    write_sample(path, a, b, c);
    size_t n;
    uint8_t *bytes = read_all(path, &n);
    MC_REQUIRE(bytes);
    /* cutting only the padding after the last tensor's data leaves a valid file */
    mc_gguf *full;
    mc_err ferr;
    MC_REQUIRE(mc_gguf_open_mem(bytes, n, &full, &ferr) == 0);
    size_t data_end = 0;
    for (int64_t i = 0; i < mc_gguf_n_tensors(full); i++) {
        const mc_gguf_tensor *t = mc_gguf_tensor_at(full, i);
        size_t end = (size_t)((const uint8_t *)t->data - bytes) + t->size;
        data_end = MC_MAX(data_end, end);
    }
    mc_gguf_close(full);
    CHECK(data_end > 700 && data_end < n);
    for (size_t len = 0; len < data_end; len++) {
        /* a private copy of exactly len bytes, so ASan sees any overread */
        uint8_t *cut = malloc(len ? len : 1);
        memcpy(cut, bytes, len);
        mc_gguf *g = NULL;
        mc_err err;
        int rc = mc_gguf_open_mem(cut, len, &g, &err);
        CHECK_MSG(rc == MC_EFORMAT, "length %zu: rc %d", len, rc);
        CHECK(g == NULL);
        CHECK_MSG(err.offset <= (int64_t)n && err.msg[0], "length %zu: offset %lld", len,
                  (long long)err.offset);
        free(cut);
    }
    mc_gguf *g;
    mc_err err;
    CHECK_EQ_INT(mc_gguf_open_mem(bytes, n, &g, &err), 0);
    mc_gguf_close(g);
    free(bytes);
}

/* Build a header by hand: magic, version, n_tensors, n_kv, then `body`. */
static size_t hdr(uint8_t *buf, uint32_t version, uint64_t n_t, uint64_t n_kv) {
    uint32_t magic = MC_GGUF_MAGIC;
    memcpy(buf, &magic, 4);
    memcpy(buf + 4, &version, 4);
    memcpy(buf + 8, &n_t, 8);
    memcpy(buf + 16, &n_kv, 8);
    return 24;
}
static size_t put_str(uint8_t *buf, size_t o, const char *s) {
    uint64_t n = strlen(s);
    memcpy(buf + o, &n, 8);
    memcpy(buf + o + 8, s, n);
    return o + 8 + n;
}
static size_t put_u32(uint8_t *buf, size_t o, uint32_t v) {
    memcpy(buf + o, &v, 4);
    return o + 4;
}
static size_t put_u64(uint8_t *buf, size_t o, uint64_t v) {
    memcpy(buf + o, &v, 8);
    return o + 8;
}

static void expect_error(const uint8_t *buf, size_t n, int code, int64_t offset, const char *needle) {
    mc_gguf *g = NULL;
    mc_err err;
    int rc = mc_gguf_open_mem(buf, n, &g, &err);
    CHECK_MSG(rc == code, "want %s got %s (%s)", mc_code_name(code), mc_code_name(rc), err.msg);
    CHECK_MSG(err.offset == offset, "offset: want %lld got %lld (%s)", (long long)offset,
              (long long)err.offset, err.msg);
    CHECK_MSG(strstr(err.msg, needle) != NULL, "message '%s' lacks '%s'", err.msg, needle);
    CHECK(g == NULL);
    mc_gguf_close(g);
}

MC_TEST(gguf_corruptions_name_field_and_offset) {
    uint8_t buf[512];
    memset(buf, 0, sizeof buf);
    size_t o = hdr(buf, 3, 0, 0);
    buf[0] = 'X';
    expect_error(buf, o, MC_EFORMAT, 0, "not a GGUF file");
    o = hdr(buf, 1, 0, 0);
    expect_error(buf, o, MC_EUNSUPPORTED, 4, "version 1");
    o = hdr(buf, 3, 0, 1000000);
    expect_error(buf, o + 20, MC_EFORMAT, 16, "n_kv");
    o = hdr(buf, 3, 1ull << 60, 0);
    expect_error(buf, o, MC_EFORMAT, 8, "n_tensors");
    /* key string length past the end */
    o = hdr(buf, 3, 0, 1);
    o = put_u64(buf, o, 1ull << 50);
    expect_error(buf, o + 8, MC_EFORMAT, 24, "key: string length");
    /* unknown value type */
    o = hdr(buf, 3, 0, 1);
    o = put_str(buf, o, "k");
    o = put_u32(buf, o, 99);
    expect_error(buf, o + 8, MC_EFORMAT, 33, "unknown value type 99");
    /* bool that is not 0/1 */
    o = hdr(buf, 3, 0, 1);
    o = put_str(buf, o, "flag");
    o = put_u32(buf, o, MC_GGUF_BOOL);
    buf[o++] = 2;
    expect_error(buf, o, MC_EFORMAT, 40, "bool byte is 2");
    /* nested array */
    o = hdr(buf, 3, 0, 1);
    o = put_str(buf, o, "arr");
    o = put_u32(buf, o, MC_GGUF_ARRAY);
    o = put_u32(buf, o, MC_GGUF_ARRAY);
    o = put_u64(buf, o, 1);
    expect_error(buf, o + 16, MC_EUNSUPPORTED, 39, "nested arrays");
    /* array count larger than the file */
    o = hdr(buf, 3, 0, 1);
    o = put_str(buf, o, "arr");
    o = put_u32(buf, o, MC_GGUF_ARRAY);
    o = put_u32(buf, o, MC_GGUF_U32);
    o = put_u64(buf, o, 1ull << 40);
    expect_error(buf, o, MC_EFORMAT, 43, "elements of 4 bytes");
    /* duplicate key */
    o = hdr(buf, 3, 0, 2);
    o = put_str(buf, o, "k");
    o = put_u32(buf, o, MC_GGUF_U8);
    buf[o++] = 1;
    size_t second = o;
    o = put_str(buf, o, "k");
    o = put_u32(buf, o, MC_GGUF_U8);
    buf[o++] = 1;
    expect_error(buf, o, MC_EFORMAT, (int64_t)second, "duplicate key 'k'");
    /* alignment not a power of two */
    o = hdr(buf, 3, 0, 1);
    o = put_str(buf, o, "general.alignment");
    o = put_u32(buf, o, MC_GGUF_U32);
    o = put_u32(buf, o, 24);
    expect_error(buf, o, MC_EFORMAT, 53, "not a power of two");
    /* tensor with 5 dims */
    o = hdr(buf, 3, 1, 0);
    o = put_str(buf, o, "t");
    o = put_u32(buf, o, 5);
    expect_error(buf, o + 64, MC_EFORMAT, 33, "n_dims 5");
    /* unknown tensor type */
    o = hdr(buf, 3, 1, 0);
    o = put_str(buf, o, "t");
    o = put_u32(buf, o, 1);
    o = put_u64(buf, o, 4);
    o = put_u32(buf, o, 17); /* an IQ type mccom does not know */
    o = put_u64(buf, o, 0);
    expect_error(buf, o + 64, MC_EUNSUPPORTED, 45, "type 17");
    /* q8_0 row not a multiple of 32 */
    o = hdr(buf, 3, 1, 0);
    o = put_str(buf, o, "t");
    o = put_u32(buf, o, 1);
    o = put_u64(buf, o, 33);
    o = put_u32(buf, o, MC_TYPE_Q8_0);
    o = put_u64(buf, o, 0);
    expect_error(buf, o + 64, MC_EFORMAT, 33, "block size 32");
    /* misaligned offset */
    o = hdr(buf, 3, 1, 0);
    o = put_str(buf, o, "t");
    o = put_u32(buf, o, 1);
    o = put_u64(buf, o, 4);
    o = put_u32(buf, o, MC_TYPE_F32);
    o = put_u64(buf, o, 8);
    expect_error(buf, o + 64, MC_EFORMAT, 49, "not a multiple of the alignment");
    /* data past the end of the file */
    o = hdr(buf, 3, 1, 0);
    o = put_str(buf, o, "t");
    o = put_u32(buf, o, 2);
    o = put_u64(buf, o, 1000);
    o = put_u64(buf, o, 1000);
    o = put_u32(buf, o, MC_TYPE_F32);
    o = put_u64(buf, o, 0);
    expect_error(buf, 128, MC_EFORMAT, 96, "runs past the end");
    /* dimension overflow */
    o = hdr(buf, 3, 1, 0);
    o = put_str(buf, o, "t");
    o = put_u32(buf, o, 2);
    o = put_u64(buf, o, 1ull << 40);
    o = put_u64(buf, o, 1ull << 40);
    o = put_u32(buf, o, MC_TYPE_F32);
    o = put_u64(buf, o, 0);
    expect_error(buf, o + 64, MC_EFORMAT, 45, "overflows");
}

MC_TEST(gguf_random_mutations_never_crash) {
    char path[512];
    snprintf(path, sizeof path, "%s/s.gguf", mc_test_tmpdir());
    float a[21];
    uint16_t b[64];
    uint8_t c[68];
    write_sample(path, a, b, c);
    size_t n;
    uint8_t *orig = read_all(path, &n);
    MC_REQUIRE(orig);
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    int n_ok = 0, n_err = 0;
    for (int iter = 0; iter < 3000; iter++) {
        uint8_t *m = malloc(n);
        memcpy(m, orig, n);
        int flips = 1 + iter % 4;
        for (int k = 0; k < flips; k++) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            size_t pos = (size_t)(rng % n);
            m[pos] = (uint8_t)(rng >> 32);
        }
        mc_gguf *g = NULL;
        mc_err err;
        if (mc_gguf_open_mem(m, n, &g, &err) == 0) {
            n_ok++;
            for (int64_t i = 0; i < mc_gguf_n_tensors(g); i++) {
                const mc_gguf_tensor *t = mc_gguf_tensor_at(g, i);
                CHECK((const uint8_t *)t->data + t->size <= m + n);
            }
            char fb[256];
            for (int64_t i = 0; i < mc_gguf_n_kv(g); i++)
                mc_gguf_kv_format(g, i, fb, sizeof fb);
            mc_gguf_close(g);
        } else {
            n_err++;
            CHECK(err.msg[0] != '\0');
        }
        free(m);
    }
    CHECK(n_ok > 0 && n_err > 0);
    free(orig);
}

MC_TEST(gguf_open_errors_for_missing_and_short_files) {
    mc_gguf *g;
    mc_err err;
    CHECK_EQ_INT(mc_gguf_open("/nonexistent/x.gguf", &g, &err), MC_EIO);
    CHECK(strstr(err.msg, "/nonexistent/x.gguf") != NULL);
    char path[512];
    snprintf(path, sizeof path, "%s/short.gguf", mc_test_tmpdir());
    FILE *f = fopen(path, "wb");
    fputs("GGUF", f);
    fclose(f);
    CHECK_EQ_INT(mc_gguf_open(path, &g, &err), MC_EFORMAT);
    CHECK_EQ_INT(mc_gguf_open(mc_test_tmpdir(), &g, &err), MC_EIO);
    mc_gguf_writer *w = mc_gguf_writer_new();
    CHECK_EQ_INT(mc_gguf_writer_write(w, "/nonexistent/dir/out.gguf", &err), MC_EIO);
    mc_gguf_writer_free(w);
}
