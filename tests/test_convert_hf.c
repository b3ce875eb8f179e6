/* tests/test_convert_hf.c — the safetensors reader and `mccom convert hf`.
 *
 * Pure C (normal and ASan builds):
 *   - safetensors: a valid file read field by field; every truncation of it and
 *     targeted corruptions (header length, JSON, dtype, shape, data_offsets,
 *     overlap, hole, trailing bytes, __metadata__) give an error naming the field,
 *     with a byte offset, never a crash; every header byte overwritten; sharded
 *     directories and broken indexes;
 *   - convert: tiny llama/qwen2 directories written here: the GGUF layout, the q/k
 *     rope permutation row by row against hand-written expectations, dtypes and the
 *     f16 range check, refusals (each leaves no output, .tmp or scratch file), merges
 *     in both JSON forms, and the tokenizer section of a vocabulary trained by
 *     `mccom tokenizer train`: converted from its tokenizer.json it has the same
 *     tokenizer.* keys and values as the trainer's vocab.gguf; with --vocab they are
 *     copied value for value.
 * With Python (normal build only, like tests/test_train.c: /usr/bin/python3 with torch):
 *   - the engine-vs-PyTorch logits test of docs/training.md on tiny-test models trained here
 *     for 20 steps (tied and untied) and on random, deliberately sharp models: llama
 *     (sharded checkpoint; plus a mutation check: the same file with q/k rows left in
 *     Hugging Face's order must be far off), a bf16 export, and qwen2 with biases against
 *     an independent numpy forward pass (tests/convert_hf_ref.py). Every logit of every
 *     one of 48 positions is compared with mc_ctx_logits (F32 KV cache). Bounds on max
 *     |mccom - PyTorch| (measured on this machine in brackets): F32 1e-4 absolute
 *     [3e-7 .. 1.6e-5]; relative to the largest |logit|: F16 5e-3 [1.6e-4 .. 1.9e-3],
 *     BF16 kept 2e-2 [7.9e-3], Q8_0 8e-2 [3.4e-3 .. 3.9e-2]. Q8_0 of the trained models:
 *     the same argmax at >= 95 % of positions [48/48]; of the random ones (near ties by
 *     construction): as close to PyTorch as llama.cpp's own evaluation of the same Q8_0
 *     file (within 1.5x; [equal]) and as many argmax agreements, less two [43 vs 44/48];
 *   - llama.cpp (build/oracle/mccom-oracle, docs/oracle.md) loads every converted F32 file,
 *     vocabulary included, and agrees with mccom to 1e-4 relative (tests/test_parity.c's
 *     F32 bound) [1.5e-7 .. 6e-7].
 */
#include "test.h"

#include "mccom/convert.h"
#include "mccom/gguf.h"
#include "mccom/kernels.h"
#include "mccom/model.h"
#include "mccom/tok.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ==== helpers ================================================================== */

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    MC_REQUIRE(f);
    MC_REQUIRE(fwrite(data, 1, n, f) == n);
    MC_REQUIRE(fclose(f) == 0);
}

static void write_str(const char *path, const char *s) { write_file(path, s, strlen(s)); }

static const char *tmp_path(const char *name) {
    static char bufs[32][1024]; /* a ring: a path stays valid for 31 more calls */
    static int k;
    char *b = bufs[k++ % 32];
    snprintf(b, 1024, "%s/%s", mc_test_tmpdir(), name);
    return b;
}

/* A safetensors image: u64 header length, the header, then `data`. */
static uint8_t *st_image(const char *header, const void *data, size_t n_data, size_t *size) {
    size_t h = strlen(header);
    *size = 8 + h + n_data;
    uint8_t *b = malloc(*size ? *size : 1);
    MC_REQUIRE(b);
    uint64_t hl = h;
    memcpy(b, &hl, 8);
    memcpy(b + 8, header, h);
    if (n_data)
        memcpy(b + 8 + h, data, n_data);
    return b;
}

/* Open `header` + n_data bytes (value i at byte i) from an exact-size copy. */
static int st_try(const char *header, size_t n_data, mc_err *err) {
    uint8_t data[256];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)i;
    MC_REQUIRE(n_data <= sizeof data);
    size_t size;
    uint8_t *img = st_image(header, data, n_data, &size);
    mc_safetensors *st = NULL;
    int rc = mc_safetensors_open_mem(img, size, &st, err);
    CHECK((rc == 0) == (st != NULL));
    mc_safetensors_close(st);
    free(img);
    return rc;
}

/* A safetensors tensor to write. */
typedef struct stt {
    const char *name;
    const char *dtype;
    int n_dims;
    int64_t shape[2];
    const void *data;
    size_t nbytes;
} stt;

static void st_write(const char *path, const stt *t, int n) {
    size_t cap = 256 + (size_t)n * 160, h = 0;
    char *hdr = malloc(cap);
    MC_REQUIRE(hdr);
    uint64_t off = 0;
    h += (size_t)snprintf(hdr + h, cap - h, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < n; i++) {
        h += (size_t)snprintf(hdr + h, cap - h, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t[i].name,
                              t[i].dtype);
        for (int d = 0; d < t[i].n_dims; d++)
            h += (size_t)snprintf(hdr + h, cap - h, d ? ",%lld" : "%lld", (long long)t[i].shape[d]);
        h += (size_t)snprintf(hdr + h, cap - h, "],\"data_offsets\":[%llu,%llu]}",
                              (unsigned long long)off, (unsigned long long)(off + t[i].nbytes));
        off += t[i].nbytes;
    }
    h += (size_t)snprintf(hdr + h, cap - h, "}");
    while (h % 8)
        hdr[h++] = ' ';
    hdr[h] = 0;
    MC_REQUIRE(h < cap);
    FILE *f = fopen(path, "wb");
    MC_REQUIRE(f);
    uint64_t hl = h;
    fwrite(&hl, 8, 1, f);
    fwrite(hdr, 1, h, f);
    for (int i = 0; i < n; i++)
        fwrite(t[i].data, 1, t[i].nbytes, f);
    MC_REQUIRE(fclose(f) == 0);
    free(hdr);
}

#define CHECK_HAS(msg, sub)                                                                        \
    CHECK_MSG(strstr((msg), (sub)) != NULL, "message \"%s\" lacks \"%s\"", (msg), (sub))

/* ==== safetensors reader ========================================================= */

static const char VALID_HDR[] =
    "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
    "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]},"
    "\"__metadata__\":{\"format\":\"pt\"}}    ";

MC_TEST(safetensors_valid_file_fields) {
    uint8_t data[32];
    for (int i = 0; i < 32; i++)
        data[i] = (uint8_t)(i * 7);
    size_t size;
    uint8_t *img = st_image(VALID_HDR, data, sizeof data, &size);
    mc_safetensors *st;
    mc_err err;
    MC_REQUIRE(mc_safetensors_open_mem(img, size, &st, &err) == 0);
    CHECK_EQ_INT(mc_safetensors_n_tensors(st), 2);
    CHECK_EQ_INT(mc_safetensors_n_files(st), 1);
    CHECK_EQ_INT(mc_safetensors_data_bytes(st), 32);
    const mc_st_tensor *b = mc_safetensors_tensor_at(st, 0), *w = mc_safetensors_tensor_at(st, 1);
    CHECK_EQ_STR(b->name, "b"); /* sorted by name */
    CHECK_EQ_STR(w->name, "w");
    CHECK(mc_safetensors_find(st, "w") == w);
    CHECK(mc_safetensors_find(st, "x") == NULL);
    CHECK_EQ_STR(w->dtype, "F32");
    CHECK_EQ_INT(w->type, MC_TYPE_F32);
    CHECK_EQ_INT(w->n_dims, 2);
    CHECK_EQ_INT(w->shape[0], 2);
    CHECK_EQ_INT(w->shape[1], 3);
    CHECK_EQ_INT(w->n_elem, 6);
    CHECK_EQ_INT(w->size, 24);
    const uint64_t base = 8 + strlen(VALID_HDR);
    CHECK_EQ_INT(w->file_offset, base);
    CHECK(w->data == img + base);
    CHECK_EQ_INT(b->type, MC_TYPE_BF16);
    CHECK_EQ_INT(b->elem_size, 2);
    CHECK_EQ_INT(b->file_offset, base + 24);
    CHECK(memcmp(b->data, data + 24, 8) == 0);
    mc_safetensors_close(st);
    free(img);

    /* a scalar, a zero-size tensor, other dtypes, an empty file */
    CHECK_EQ_INT(st_try("{\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
                        "\"z\":{\"dtype\":\"F16\",\"shape\":[0,5],\"data_offsets\":[4,4]},"
                        "\"i\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[4,12]},"
                        "\"u\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[12,15]}}",
                        15, &err),
                 0);
    CHECK_EQ_INT(st_try("{}", 0, &err), 0);
    CHECK_EQ_INT(st_try("{\"__metadata__\":{}}", 0, &err), 0);
}

/* Every prefix of a valid file is refused with a message naming the header length
 * or a field, and an offset inside the prefix. */
MC_TEST(safetensors_every_truncation_is_an_error) {
    uint8_t data[32] = {0};
    size_t size;
    uint8_t *img = st_image(VALID_HDR, data, sizeof data, &size);
    for (size_t k = 0; k < size; k++) {
        uint8_t *cut = malloc(k ? k : 1);
        MC_REQUIRE(cut);
        memcpy(cut, img, k);
        mc_safetensors *st = NULL;
        mc_err err;
        int rc = mc_safetensors_open_mem(cut, k, &st, &err);
        CHECK_MSG(rc == MC_EFORMAT && st == NULL, "prefix of %zu bytes: rc %d", k, rc);
        CHECK_MSG(strstr(err.msg, "header length") || strstr(err.msg, "field"),
                  "prefix of %zu bytes: message \"%s\" names no field", k, err.msg);
        CHECK_MSG(err.offset >= 0 && (size_t)err.offset <= k, "prefix %zu: offset %lld", k,
                  (long long)err.offset);
        free(cut);
    }
    free(img);
}

MC_TEST(safetensors_targeted_corruptions) {
    static const struct {
        const char *hdr;
        size_t n_data;
        int code;
        const char *needle;
    } cases[] = {
        {"[1,2]", 0, MC_EFORMAT, "does not start with '{'"},
        {"{\"a\":", 0, MC_EFORMAT, "not valid JSON"},
        {"{\"a\":1} x", 0, MC_EFORMAT, "not valid JSON"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{}}", 4, MC_EFORMAT,
         "not valid JSON"},                                 /* duplicate key */
        {"{\"\xff\":{}}", 0, MC_EFORMAT, "not valid JSON"}, /* not UTF-8 */
        {"{\"a\":1}", 0, MC_EFORMAT, "entry is not an object"},
        {"{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, MC_EFORMAT,
         "empty name"},
        {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, MC_EFORMAT, "field dtype"},
        {"{\"a\":{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, MC_EFORMAT,
         "field dtype"},
        {"{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, MC_EUNSUPPORTED,
         "field dtype 'F33'"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":\"x\",\"data_offsets\":[0,4]}}", 4, MC_EFORMAT,
         "field shape"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, MC_EFORMAT,
         "field shape[0]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1.5],\"data_offsets\":[0,4]}}", 4, MC_EFORMAT,
         "field shape[1]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
         MC_EFORMAT, "9 dimensions"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,4]}}",
         4, MC_EFORMAT, "field shape needs more bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1000],\"data_offsets\":[0,4]}}", 4, MC_EFORMAT,
         "field shape needs more bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, MC_EFORMAT, "field data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, MC_EFORMAT,
         "field data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,-4]}}", 4, MC_EFORMAT,
         "field data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, MC_EFORMAT,
         "outside the data section"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 6, MC_EFORMAT,
         "outside the data section"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", 12, MC_EFORMAT,
         "shape x dtype F32 is 8 bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         12, MC_EFORMAT, "overlaps"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}",
         20, MC_EFORMAT, "hole"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12, MC_EFORMAT,
         "not indexed"},
        {"{\"__metadata__\":[1]}", 0, MC_EFORMAT, "__metadata__"},
        {"{\"__metadata__\":{\"format\":1}}", 0, MC_EFORMAT, "__metadata__.format"},
    };
    for (size_t i = 0; i < MC_ARRAY_LEN(cases); i++) {
        mc_err err;
        int rc = st_try(cases[i].hdr, cases[i].n_data, &err);
        CHECK_MSG(rc == cases[i].code, "case %zu (%s): rc %d, want %d (%s)", i, cases[i].hdr, rc,
                  cases[i].code, err.msg);
        CHECK_MSG(strstr(err.msg, cases[i].needle) != NULL, "case %zu: message \"%s\" lacks \"%s\"",
                  i, err.msg, cases[i].needle);
        CHECK_MSG(err.offset >= 0, "case %zu: no offset", i);
    }
    /* offsets: the entry's name in the header; the data of a tensor */
    mc_err err;
    static const char h1[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                             "\"bad\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[4,8]}}";
    st_try(h1, 8, &err);
    CHECK_EQ_INT(err.offset, 8 + (strstr(h1, "\"bad\"") - h1)); /* the quote before bad */
    static const char h2[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                             "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,12]}}";
    st_try(h2, 12, &err);
    CHECK_EQ_INT(err.offset, 8 + strlen(h2) + 4); /* b's data */
    CHECK_HAS(err.msg, "'b'");
    /* header length: too short, absurd, past the end */
    uint8_t raw[16] = {0};
    mc_safetensors *st;
    CHECK_EQ_INT(mc_safetensors_open_mem(raw, 7, &st, &err), MC_EFORMAT);
    CHECK_HAS(err.msg, "header length");
    uint64_t hl = 1ull << 40;
    memcpy(raw, &hl, 8);
    CHECK_EQ_INT(mc_safetensors_open_mem(raw, 16, &st, &err), MC_EFORMAT);
    CHECK_HAS(err.msg, "100 MiB");
    hl = 9;
    memcpy(raw, &hl, 8);
    CHECK_EQ_INT(mc_safetensors_open_mem(raw, 16, &st, &err), MC_EFORMAT);
    CHECK_HAS(err.msg, "header length 9 runs past the end");
    hl = 1;
    memcpy(raw, &hl, 8);
    CHECK_EQ_INT(mc_safetensors_open_mem(raw, 16, &st, &err), MC_EFORMAT);
    CHECK_HAS(err.msg, "too small");
    CHECK_EQ_INT(mc_safetensors_open_mem(NULL, 0, &st, &err), MC_EFORMAT);
}

/* Overwrite every header byte with a few values: errors or valid files, never a crash. */
MC_TEST(safetensors_header_bytes_overwritten) {
    static const uint8_t vals[] = {0, '"', '9', '}', '[', ',', 0xff};
    uint8_t data[32] = {0};
    size_t size;
    uint8_t *img = st_image(VALID_HDR, data, sizeof data, &size);
    int n_err = 0, n_ok = 0;
    for (size_t pos = 0; pos < 8 + strlen(VALID_HDR); pos++)
        for (size_t v = 0; v < sizeof vals; v++) {
            uint8_t *c = malloc(size);
            MC_REQUIRE(c);
            memcpy(c, img, size);
            c[pos] = vals[v];
            mc_safetensors *st = NULL;
            mc_err err;
            int rc = mc_safetensors_open_mem(c, size, &st, &err);
            if (rc == 0) {
                n_ok++;
                for (int64_t i = 0; i < mc_safetensors_n_tensors(st); i++) {
                    const mc_st_tensor *t = mc_safetensors_tensor_at(st, i);
                    CHECK((const uint8_t *)t->data + t->size <= c + size);
                }
            } else {
                n_err++;
                CHECK(err.msg[0] != 0);
            }
            mc_safetensors_close(st);
            free(c);
        }
    CHECK(n_err > 0 && n_ok > 0);
    free(img);
}

static void shard_files(const char *dir) {
    float a[4] = {1, 2, 3, 4}, b[2] = {5, 6}, c[3] = {7, 8, 9};
    stt s1[] = {{"a", "F32", 2, {2, 2}, a, 16}, {"b", "F32", 1, {2}, b, 8}};
    stt s2[] = {{"c", "F32", 1, {3}, c, 12}};
    char p[1024];
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
    st_write(p, s1, 2);
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    st_write(p, s2, 1);
}

static int open_with_index(const char *dir, const char *index, mc_err *err) {
    char p[1024];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    write_str(p, index);
    mc_safetensors *st = NULL;
    int rc = mc_safetensors_open_dir(dir, &st, err);
    mc_safetensors_close(st);
    return rc;
}

MC_TEST(safetensors_sharded_directory) {
    const char *dir = mc_test_tmpdir();
    mc_err err;
    mc_safetensors *st;
    CHECK_EQ_INT(mc_safetensors_open_dir(dir, &st, &err), MC_ENOTFOUND);
    CHECK_HAS(err.msg, "model.safetensors.index.json");
    shard_files(dir);
    static const char *F1 = "model-00001-of-00002.safetensors",
                      *F2 = "model-00002-of-00002.safetensors";
    char idx[1024];
    snprintf(idx, sizeof idx,
             "{\"metadata\":{\"total_size\":36},\"weight_map\":{\"a\":\"%s\",\"b\":\"%s\",\"c\":\"%"
             "s\"}}",
             F1, F1, F2);
    write_str(tmp_path("model.safetensors.index.json"), idx);
    MC_REQUIRE(mc_safetensors_open_dir(dir, &st, &err) == 0);
    CHECK_EQ_INT(mc_safetensors_n_tensors(st), 3);
    CHECK_EQ_INT(mc_safetensors_n_files(st), 2);
    const mc_st_tensor *c = mc_safetensors_find(st, "c");
    MC_REQUIRE(c);
    CHECK(strstr(mc_safetensors_file_name(st, c->file), F2) != NULL);
    float v;
    memcpy(&v, (const uint8_t *)c->data + 8, 4);
    CHECK(v == 9.0f);
    CHECK_EQ_INT(mc_safetensors_data_bytes(st), 36);
    mc_safetensors_close(st);

    /* the map and the files must agree */
    snprintf(idx, sizeof idx, "{\"weight_map\":{\"a\":\"%s\",\"b\":\"%s\",\"c\":\"%s\"}}", F1, F2,
             F2);
    CHECK_EQ_INT(open_with_index(dir, idx, &err), MC_EFORMAT);
    CHECK_HAS(err.msg, "puts tensor 'b'");
    snprintf(idx, sizeof idx, "{\"weight_map\":{\"a\":\"%s\",\"c\":\"%s\"}}", F1, F2);
    CHECK_EQ_INT(open_with_index(dir, idx, &err), MC_EFORMAT);
    CHECK_HAS(err.msg, "tensor 'b'");
    CHECK_HAS(err.msg, "is not in weight_map");
    snprintf(idx, sizeof idx,
             "{\"weight_map\":{\"a\":\"%s\",\"b\":\"%s\",\"c\":\"%s\",\"d\":\"%s\"}}", F1, F1, F2,
             F2);
    CHECK_EQ_INT(open_with_index(dir, idx, &err), MC_EFORMAT);
    CHECK_HAS(err.msg, "'d'");
    snprintf(idx, sizeof idx,
             "{\"weight_map\":{\"a\":\"%s\",\"b\":\"%s\",\"c\":\"../x.safetensors\"}}", F1, F1);
    CHECK_EQ_INT(open_with_index(dir, idx, &err), MC_EFORMAT);
    CHECK_HAS(err.msg, "weight_map.c");
    snprintf(idx, sizeof idx,
             "{\"weight_map\":{\"a\":\"%s\",\"b\":\"%s\",\"c\":\"nope.safetensors\"}}", F1, F1);
    CHECK_EQ_INT(open_with_index(dir, idx, &err), MC_ENOTFOUND);
    CHECK_HAS(err.msg, "nope.safetensors");
    CHECK_EQ_INT(open_with_index(dir, "{\"weight_map\":{}}", &err), MC_EFORMAT);
    CHECK_HAS(err.msg, "weight_map");
    CHECK_EQ_INT(open_with_index(dir, "{\"weight_map\":", &err), MC_EFORMAT);
    CHECK_HAS(err.msg, "not valid JSON");
    /* a tensor in two shards */
    float a[4] = {0};
    stt dup[] = {{"a", "F32", 2, {2, 2}, a, 16}, {"c", "F32", 1, {3}, a, 12}};
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, F2);
    st_write(p, dup, 2);
    snprintf(idx, sizeof idx, "{\"weight_map\":{\"a\":\"%s\",\"b\":\"%s\",\"c\":\"%s\"}}", F1, F1,
             F2);
    CHECK_EQ_INT(open_with_index(dir, idx, &err), MC_EFORMAT);
    CHECK_HAS(err.msg, "in both");
    /* a damaged shard is named */
    write_str(p, "garbage!garbage!");
    CHECK_EQ_INT(open_with_index(dir, idx, &err), MC_EFORMAT);
    CHECK_HAS(err.msg, F2);
}

/* ==== convert: tiny directories written here ======================================= */

/* Shape of the tiny models: E 16, 2 heads of 8, 1 kv head, ff 32, 1 layer, vocab 20
 * (the tokenizer has 16 tokens: ids 16..19 are padding). */
enum { E = 16, NH = 2, NKV = 1, HD = 8, FF = 32, NV = 20, NTOK = 16 };

typedef struct hfopt {
    const char *arch; /* "llama" (default) or "qwen2" */
    int tied;
    const char *cfg_extra; /* appended to config.json's object, e.g. ",\"rope_scaling\":{...}" */
    const char *dtype;     /* matrices: F32 (default), F16, BF16 */
    const char *skip;      /* a tensor left out */
    int extra_bias;        /* add an o_proj.bias */
    int bad_shape;         /* write up_proj transposed */
    float big;             /* > 0: this value in down_proj[0][0] */
    const char *tok_json;  /* replaces tokenizer.json (NULL: the default below) */
    int no_tokenizer;
} hfopt;

static const char TOK_JSON[] =
    "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":0,\"content\":\"<|endoftext|>\",\"special\":"
    "true},"
    "{\"id\":15,\"content\":\"<|fim_prefix|>\",\"special\":false}],"
    "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true},"
    "\"decoder\":{\"type\":\"ByteLevel\"},"
    "\"model\":{\"type\":\"BPE\",\"vocab\":{\"<|endoftext|>\":0,\"a\":1,\"b\":2,\"c\":3,\"d\":4,"
    "\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,\"j\":10,\"ab\":11,\"abc\":12,\"Ġ\":13,\"Ċ\":14},"
    "\"merges\":[\"a b\",\"ab c\"]}}";

/* Matrix value: row r, column c of tensor number k (rows identifiable). */
static float wval(int k, int r, int c) { return (float)k + (float)r * 0.01f + (float)c * 0.0001f; }

static void *fill(const char *dtype, int k, int rows, int cols, size_t *nbytes) {
    int es = !strcmp(dtype, "F32") ? 4 : 2;
    *nbytes = (size_t)rows * (size_t)cols * (size_t)es;
    uint8_t *b = malloc(*nbytes);
    MC_REQUIRE(b);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            float x = wval(k, r, c);
            size_t o = ((size_t)r * (size_t)cols + (size_t)c) * (size_t)es;
            if (es == 4)
                memcpy(b + o, &x, 4);
            else {
                uint16_t h = !strcmp(dtype, "F16") ? mc_fp32_to_fp16(x) : mc_fp32_to_bf16(x);
                memcpy(b + o, &h, 2);
            }
        }
    return b;
}

static void write_hf(const char *dir, const hfopt *o) {
    const char *arch = o->arch ? o->arch : "llama";
    int qwen = !strcmp(arch, "qwen2");
    const char *mdt = o->dtype ? o->dtype : "F32";
    mkdir(dir, 0755);
    char p[1024], cfg[2048];
    snprintf(cfg, sizeof cfg,
             "{\"architectures\":[\"%s\"],\"hidden_size\":%d,\"intermediate_size\":%d,"
             "\"num_hidden_layers\":1,\"num_attention_heads\":%d,\"num_key_value_heads\":%d,"
             "\"vocab_size\":%d,\"max_position_embeddings\":256,\"rms_norm_eps\":1e-05,"
             "\"rope_theta\":10000.0,\"tie_word_embeddings\":%s,\"hidden_act\":\"silu\","
             "\"rope_scaling\":null,\"bos_token_id\":0,\"eos_token_id\":[0,3]%s}",
             qwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM", E, FF, NH, NKV, NV,
             o->tied ? "true" : "false", o->cfg_extra ? o->cfg_extra : "");
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_str(p, cfg);
    if (!o->no_tokenizer) {
        snprintf(p, sizeof p, "%s/tokenizer.json", dir);
        write_str(p, o->tok_json ? o->tok_json : TOK_JSON);
    }
    struct {
        const char *name;
        int rows, cols, matrix;
    } spec[] = {
        {"model.embed_tokens.weight", NV, E, 1},
        {"model.layers.0.input_layernorm.weight", 0, E, 0},
        {"model.layers.0.self_attn.q_proj.weight", NH * HD, E, 1},
        {"model.layers.0.self_attn.k_proj.weight", NKV * HD, E, 1},
        {"model.layers.0.self_attn.v_proj.weight", NKV * HD, E, 1},
        {"model.layers.0.self_attn.q_proj.bias", 0, NH * HD, 0},
        {"model.layers.0.self_attn.k_proj.bias", 0, NKV * HD, 0},
        {"model.layers.0.self_attn.v_proj.bias", 0, NKV * HD, 0},
        {"model.layers.0.self_attn.o_proj.weight", E, NH * HD, 1},
        {"model.layers.0.self_attn.o_proj.bias", 0, E, 0},
        {"model.layers.0.post_attention_layernorm.weight", 0, E, 0},
        {"model.layers.0.mlp.gate_proj.weight", FF, E, 1},
        {"model.layers.0.mlp.up_proj.weight", FF, E, 1},
        {"model.layers.0.mlp.down_proj.weight", E, FF, 1},
        {"model.norm.weight", 0, E, 0},
        {"lm_head.weight", NV, E, 1},
    };
    stt t[32];
    void *bufs[32];
    int n = 0;
    for (int k = 0; k < (int)MC_ARRAY_LEN(spec); k++) {
        const char *nm = spec[k].name;
        if ((o->skip && !strcmp(nm, o->skip)) || (o->tied && strstr(nm, "lm_head")) ||
            (!qwen && strstr(nm, "proj.bias") && !strstr(nm, "o_proj")) ||
            (!o->extra_bias && strstr(nm, "o_proj.bias")))
            continue;
        int rows = spec[k].rows, cols = spec[k].cols;
        if (o->bad_shape && strstr(nm, "up_proj")) {
            rows = spec[k].cols;
            cols = spec[k].rows;
        }
        const char *dt = spec[k].matrix ? mdt : "F32";
        size_t nb;
        bufs[n] = fill(dt, k, rows ? rows : 1, cols, &nb);
        if (o->big > 0 && strstr(nm, "down_proj")) {
            uint16_t h = mc_fp32_to_bf16(o->big);
            MC_REQUIRE(!strcmp(dt, "BF16"));
            memcpy(bufs[n], &h, 2);
        }
        t[n].name = nm;
        t[n].dtype = dt;
        t[n].n_dims = rows ? 2 : 1;
        t[n].shape[0] = rows ? rows : cols;
        t[n].shape[1] = cols;
        t[n].data = bufs[n];
        t[n].nbytes = nb;
        n++;
    }
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    st_write(p, t, n);
    for (int i = 0; i < n; i++)
        free(bufs[i]);
}

static int convert(const char *dir, const char *out, int type, const char *vocab, const char *pre,
                   mc_err *err) {
    mc_convert_hf_params p = mc_convert_hf_default();
    p.out_type = type;
    p.vocab_gguf = vocab;
    p.pre = pre;
    return mc_convert_hf(dir, out, &p, err);
}

static mc_gguf *open_gguf(const char *path) {
    mc_gguf *g = NULL;
    mc_err err;
    int rc = mc_gguf_open(path, &g, &err);
    CHECK_MSG(rc == 0, "open %s: %s", path, err.msg);
    MC_REQUIRE(rc == 0);
    return g;
}

static uint32_t get_u32(const mc_gguf *g, const char *key) {
    uint32_t v = 0xdeadbeef;
    CHECK_MSG(mc_gguf_get_u32(g, key, &v) == 0, "key %s", key);
    return v;
}

/* f32 value of element (r, c) of a GGUF tensor of type f32/f16/bf16 */
static float tval(const mc_gguf_tensor *t, int64_t r, int64_t c) {
    size_t i = (size_t)(r * t->ne[0] + c);
    uint16_t h;
    float x;
    if (t->type == MC_TYPE_F32) {
        memcpy(&x, (const uint8_t *)t->data + 4 * i, 4);
        return x;
    }
    memcpy(&h, (const uint8_t *)t->data + 2 * i, 2);
    return t->type == MC_TYPE_F16 ? mc_fp16_to_fp32(h) : mc_bf16_to_fp32(h);
}

MC_TEST(convert_hf_llama_layout_and_rope_permutation) {
    const char *dir = tmp_path("hf"), *out = tmp_path("m.gguf");
    hfopt o = {0};
    write_hf(dir, &o);
    mc_err err;
    int rc = convert(dir, out, -1, NULL, NULL, &err);
    CHECK_MSG(rc == 0, "convert: %s", err.msg);
    MC_REQUIRE(rc == 0);
    mc_gguf *g = open_gguf(out);
    mc_str s;
    MC_REQUIRE(mc_gguf_get_str(g, "general.architecture", &s) == 0);
    CHECK(s.len == 5 && !memcmp(s.ptr, "llama", 5));
    CHECK_EQ_INT(get_u32(g, "llama.embedding_length"), E);
    CHECK_EQ_INT(get_u32(g, "llama.feed_forward_length"), FF);
    CHECK_EQ_INT(get_u32(g, "llama.block_count"), 1);
    CHECK_EQ_INT(get_u32(g, "llama.attention.head_count"), NH);
    CHECK_EQ_INT(get_u32(g, "llama.attention.head_count_kv"), NKV);
    CHECK_EQ_INT(get_u32(g, "llama.rope.dimension_count"), HD);
    CHECK_EQ_INT(get_u32(g, "llama.context_length"), 256);
    CHECK_EQ_INT(get_u32(g, "llama.vocab_size"), NV);
    CHECK_EQ_INT(get_u32(g, "general.file_type"), 0);
    CHECK_EQ_INT(mc_gguf_find_key(g, "llama.attention.key_length"), -1);
    float f;
    CHECK(mc_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &f) == 0 && f == 1e-5f);
    CHECK(mc_gguf_get_f32(g, "llama.rope.freq_base", &f) == 0 && f == 10000.0f);
    CHECK_EQ_INT(mc_gguf_n_tensors(g), 12);
    const mc_gguf_tensor *q = mc_gguf_find_tensor(g, "blk.0.attn_q.weight");
    const mc_gguf_tensor *k = mc_gguf_find_tensor(g, "blk.0.attn_k.weight");
    const mc_gguf_tensor *v = mc_gguf_find_tensor(g, "blk.0.attn_v.weight");
    const mc_gguf_tensor *down = mc_gguf_find_tensor(g, "blk.0.ffn_down.weight");
    MC_REQUIRE(q && k && v && down && mc_gguf_find_tensor(g, "output.weight"));
    CHECK(q->type == MC_TYPE_F32 && q->ne[0] == E && q->ne[1] == NH * HD);
    CHECK(down->ne[0] == FF && down->ne[1] == E);
    /* rope permutation: reshape(n_head, 2, 4, E).swapaxes(1, 2) of HF's rows, i.e. per head
     * new row 2i+j <- old row j*4+i (head_dim 8) */
    static const int qrows[NH * HD] = {0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15};
    for (int r = 0; r < NH * HD; r++)
        for (int c = 0; c < E; c++)
            CHECK_MSG(tval(q, r, c) == wval(2, qrows[r], c), "attn_q row %d col %d", r, c);
    for (int r = 0; r < NKV * HD; r++)
        for (int c = 0; c < E; c++) {
            CHECK_MSG(tval(k, r, c) == wval(3, qrows[r], c), "attn_k row %d", r);
            CHECK_MSG(tval(v, r, c) == wval(4, r, c), "attn_v row %d unchanged", r);
        }
    CHECK(tval(down, 3, 7) == wval(13, 3, 7));
    /* tokenizer: padding, types, specials */
    int64_t kt = mc_gguf_find_key(g, "tokenizer.ggml.tokens");
    MC_REQUIRE(kt >= 0);
    CHECK_EQ_INT(mc_gguf_arr_n(g, kt), NV);
    mc_str t16 = mc_gguf_arr_str(g, kt, 16);
    CHECK(t16.len == 7 && !memcmp(t16.ptr, "[PAD16]", 7));
    int32_t types[NV];
    memcpy(types, mc_gguf_arr_data(g, mc_gguf_find_key(g, "tokenizer.ggml.token_type")),
           sizeof types);
    CHECK_EQ_INT(types[0], 3);  /* special: control */
    CHECK_EQ_INT(types[1], 1);  /* normal */
    CHECK_EQ_INT(types[15], 3); /* "<|fim_prefix|>", not flagged special, looks it */
    CHECK_EQ_INT(types[19], 5); /* padding: unused */
    MC_REQUIRE(mc_gguf_get_str(g, "tokenizer.ggml.pre", &s) == 0);
    CHECK(s.len == 5 && !memcmp(s.ptr, "gpt-2", 5)); /* plain ByteLevel with its regex */
    CHECK_EQ_INT(get_u32(g, "tokenizer.ggml.bos_token_id"), 0);
    CHECK_EQ_INT(get_u32(g, "tokenizer.ggml.eos_token_id"), 0); /* first of [0, 3] */
    CHECK_EQ_INT(get_u32(g, "tokenizer.ggml.fim_pre_token_id"), 15);
    CHECK_EQ_INT(mc_gguf_find_key(g, "tokenizer.ggml.fim_mid_token_id"), -1);
    bool b = true;
    CHECK(mc_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b) == 0 && !b);
    int64_t km = mc_gguf_find_key(g, "tokenizer.ggml.merges");
    CHECK_EQ_INT(mc_gguf_arr_n(g, km), 2);
    mc_str m1 = mc_gguf_arr_str(g, km, 1);
    CHECK(m1.len == 4 && !memcmp(m1.ptr, "ab c", 4));
    mc_gguf_close(g);
    /* the engine and the tokenizer load it */
    mc_model *m = NULL;
    rc = mc_model_load(out, &m, &err);
    CHECK_MSG(rc == 0, "load: %s", err.msg);
    if (m) {
        CHECK_EQ_INT(mc_model_hparams(m)->n_vocab, NV);
        CHECK(!mc_model_hparams(m)->tied_output && !mc_model_hparams(m)->rope_neox);
        mc_tok *tok = NULL;
        CHECK_EQ_INT(mc_tok_load_gguf(mc_model_gguf(m), &tok, &err), 0);
        if (tok) {
            int32_t ids[8];
            int64_t n = 0;
            CHECK_EQ_INT(mc_tok_encode(tok, "abc", 3, 0, ids, 8, &n), 0);
            CHECK(n == 1 && ids[0] == 12); /* both merges applied */
            mc_tok_free(tok);
        }
        mc_model_free(m);
    }
}

MC_TEST(convert_hf_qwen2_biases_no_permutation) {
    const char *dir = tmp_path("hf"), *out = tmp_path("m.gguf");
    hfopt o = {.arch = "qwen2", .tied = 1};
    write_hf(dir, &o);
    mc_err err;
    int rc = convert(dir, out, MC_TYPE_F16, NULL, NULL, &err);
    CHECK_MSG(rc == 0, "convert: %s", err.msg);
    MC_REQUIRE(rc == 0);
    mc_gguf *g = open_gguf(out);
    CHECK_EQ_INT(get_u32(g, "qwen2.attention.head_count"), NH);
    CHECK_EQ_INT(get_u32(g, "general.file_type"), 1);
    CHECK(mc_gguf_find_tensor(g, "output.weight") == NULL);
    const mc_gguf_tensor *q = mc_gguf_find_tensor(g, "blk.0.attn_q.weight");
    const mc_gguf_tensor *qb = mc_gguf_find_tensor(g, "blk.0.attn_q.bias");
    const mc_gguf_tensor *nrm = mc_gguf_find_tensor(g, "blk.0.attn_norm.weight");
    MC_REQUIRE(q && qb && nrm && mc_gguf_find_tensor(g, "blk.0.attn_v.bias"));
    CHECK_EQ_INT(q->type, MC_TYPE_F16);
    CHECK_EQ_INT(qb->type, MC_TYPE_F32); /* 1-D stays f32 */
    CHECK_EQ_INT(nrm->type, MC_TYPE_F32);
    for (int r = 0; r < NH * HD; r++) {
        CHECK_MSG(tval(q, r, 1) == mc_fp16_to_fp32(mc_fp32_to_fp16(wval(2, r, 1))), "row %d", r);
        CHECK_MSG(tval(qb, 0, r) == wval(5, 0, r), "bias %d not permuted", r);
    }
    mc_gguf_close(g);
    mc_model *m = NULL;
    rc = mc_model_load(out, &m, &err);
    CHECK_MSG(rc == 0, "load: %s", err.msg);
    if (m) {
        CHECK(mc_model_hparams(m)->has_qkv_bias && mc_model_hparams(m)->rope_neox &&
              mc_model_hparams(m)->tied_output);
        mc_model_free(m);
    }
}

MC_TEST(convert_hf_dtypes_and_f16_range) {
    const char *dir = tmp_path("hf");
    hfopt o = {.dtype = "BF16"};
    write_hf(dir, &o);
    mc_err err;
    static const struct {
        int type, want, ftype;
    } cases[] = {
        {-1, MC_TYPE_F16, 1}, {MC_TYPE_BF16, MC_TYPE_BF16, 32}, {MC_TYPE_F32, MC_TYPE_F32, 0}};
    for (size_t i = 0; i < MC_ARRAY_LEN(cases); i++) {
        const char *out = tmp_path("d.gguf");
        int rc = convert(dir, out, cases[i].type, NULL, NULL, &err);
        CHECK_MSG(rc == 0, "case %zu: %s", i, err.msg);
        if (rc)
            continue;
        mc_gguf *g = open_gguf(out);
        CHECK_EQ_INT(get_u32(g, "general.file_type"), cases[i].ftype);
        const mc_gguf_tensor *up = mc_gguf_find_tensor(g, "blk.0.ffn_up.weight");
        const mc_gguf_tensor *k = mc_gguf_find_tensor(g, "blk.0.attn_k.weight");
        MC_REQUIRE(up && k);
        CHECK_EQ_INT(up->type, cases[i].want);
        CHECK_EQ_INT(mc_gguf_find_tensor(g, "output_norm.weight")->type, MC_TYPE_F32);
        for (int r = 0; r < FF; r += 5)
            for (int c = 0; c < E; c += 3) {
                /* the bf16 value survives exactly (these values fit f16 too) */
                float want = mc_bf16_to_fp32(mc_fp32_to_bf16(wval(12, r, c)));
                CHECK_MSG(tval(up, r, c) == want, "case %zu (%d,%d): %g vs %g", i, r, c,
                          (double)tval(up, r, c), (double)want);
            }
        CHECK(tval(k, 1, 2) == mc_bf16_to_fp32(mc_fp32_to_bf16(wval(3, 4, 2)))); /* permuted */
        mc_gguf_close(g);
    }
    /* a bf16 value beyond f16's range: keep (-> f16) refuses, bf16 and f32 convert it */
    const char *dir2 = tmp_path("hf-big");
    hfopt big = {.dtype = "BF16", .big = 1e6f};
    write_hf(dir2, &big);
    const char *out2 = tmp_path("big.gguf");
    CHECK_EQ_INT(convert(dir2, out2, -1, NULL, NULL, &err), MC_ERANGE);
    CHECK_HAS(err.msg, "'model.layers.0.mlp.down_proj.weight'");
    CHECK_HAS(err.msg, "--type bf16");
    CHECK(access(out2, F_OK) != 0);
    CHECK_EQ_INT(convert(dir2, out2, MC_TYPE_BF16, NULL, NULL, &err), 0);
    CHECK_EQ_INT(convert(dir2, out2, MC_TYPE_Q8_0, NULL, NULL, &err), MC_EINVAL);
    /* f16 input kept as f16: the bytes are written as they are */
    const char *dir3 = tmp_path("hf-f16"), *out3 = tmp_path("f16.gguf");
    hfopt h16 = {.dtype = "F16", .arch = "qwen2"};
    write_hf(dir3, &h16);
    CHECK_EQ_INT(convert(dir3, out3, -1, NULL, NULL, &err), 0);
    mc_gguf *g = open_gguf(out3);
    const mc_gguf_tensor *gate = mc_gguf_find_tensor(g, "blk.0.ffn_gate.weight");
    CHECK(gate->type == MC_TYPE_F16 &&
          tval(gate, 7, 9) == mc_fp16_to_fp32(mc_fp32_to_fp16(wval(11, 7, 9))));
    mc_gguf_close(g);
}

/* No output, no OUT.tmp and no scratch file after a failure. */
static void check_no_output(const char *out) {
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    CHECK_MSG(access(out, F_OK) != 0, "%s exists after a failure", out);
    CHECK_MSG(access(tmp, F_OK) != 0, "%s exists after a failure", tmp);
    DIR *d = opendir(mc_test_tmpdir());
    MC_REQUIRE(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        CHECK_MSG(strstr(e->d_name, "scratch") == NULL, "%s left behind", e->d_name);
    closedir(d);
}

MC_TEST(convert_hf_refusals_name_the_problem) {
    static const struct {
        hfopt o;
        const char *pre;
        int code;
        const char *needle;
    } cases[] = {
        {{.cfg_extra = ",\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4.0}"},
         NULL,
         MC_EUNSUPPORTED,
         "rope_scaling is set (type 'yarn')"},
        {{.cfg_extra = ",\"architectures\":[\"MistralForCausalLM\"]"},
         NULL,
         MC_EUNSUPPORTED,
         "'MistralForCausalLM' is not supported"},
        {{.cfg_extra = ",\"hidden_act\":\"gelu\""}, NULL, MC_EUNSUPPORTED, "hidden_act"},
        {{.cfg_extra = ",\"num_key_value_heads\":3"}, NULL, MC_EFORMAT, "num_key_value_heads"},
        {{.cfg_extra = ",\"hidden_size\":-4"}, NULL, MC_EFORMAT, "field hidden_size"},
        {{.cfg_extra = ",\"rms_norm_eps\":\"x\""}, NULL, MC_EFORMAT, "field rms_norm_eps"},
        {{.skip = "model.layers.0.mlp.up_proj.weight"},
         NULL,
         MC_EFORMAT,
         "'model.layers.0.mlp.up_proj.weight' is missing"},
        {{.skip = "lm_head.weight"}, NULL, MC_EFORMAT, "tie_word_embeddings is false"},
        {{.bad_shape = 1}, NULL, MC_EFORMAT, "has shape [16, 32]; config.json implies [32, 16]"},
        {{.extra_bias = 1}, NULL, MC_EUNSUPPORTED, "'model.layers.0.self_attn.o_proj.bias'"},
        {{.arch = "qwen2", .skip = "model.layers.0.self_attn.k_proj.bias"},
         NULL,
         MC_EFORMAT,
         "k_proj.bias' is missing"},
        {{.no_tokenizer = 1}, NULL, MC_ENOTFOUND, "--vocab"},
        {{.tok_json = "{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}"},
         NULL,
         MC_EUNSUPPORTED,
         "model.type is 'Unigram'"},
        {{.tok_json = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a b\"]}}"},
         NULL,
         MC_EUNSUPPORTED,
         "ByteLevel"},
        {{.tok_json = "{\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\","
                      "\"vocab\":{\"a\":20}}}"},
         NULL,
         MC_EFORMAT,
         "below vocab_size 20"},
        {{.tok_json = "{\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\","
                      "\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"ab\"]}}"},
         NULL,
         MC_EFORMAT,
         "model.merges[0]"},
        {{.tok_json = "{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\w+\"}},"
                      "\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\","
                      "\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"]}}"},
         NULL,
         MC_EUNSUPPORTED,
         "--pre NAME"},
        {{0}, "klingon", MC_EINVAL, "--pre klingon"},
        {{.tok_json = "{not json"}, NULL, MC_EFORMAT, "tokenizer.json: not valid JSON"},
    };
    for (size_t i = 0; i < MC_ARRAY_LEN(cases); i++) {
        char d[64];
        snprintf(d, sizeof d, "hf%zu", i);
        const char *dir = tmp_path(d), *out = tmp_path("out.gguf");
        write_hf(dir, &cases[i].o);
        mc_err err;
        int rc = convert(dir, out, -1, NULL, cases[i].pre, &err);
        CHECK_MSG(rc == cases[i].code, "case %zu: rc %d, want %d: %s", i, rc, cases[i].code,
                  err.msg);
        CHECK_MSG(strstr(err.msg, cases[i].needle) != NULL, "case %zu: \"%s\" lacks \"%s\"", i,
                  err.msg, cases[i].needle);
        check_no_output(out);
    }
    /* the unrecognised pre-tokenizer converts with --pre */
    const char *dir = tmp_path("hf16"), *out = tmp_path("out.gguf");
    mc_err err;
    CHECK_EQ_INT(convert(dir, out, -1, NULL, "qwen2", &err), 0);
    mc_gguf *g = open_gguf(out);
    mc_str s;
    CHECK(mc_gguf_get_str(g, "tokenizer.ggml.pre", &s) == 0 && s.len == 5 &&
          !memcmp(s.ptr, "qwen2", 5));
    mc_gguf_close(g);
    /* a config.json that is not there, or not an object */
    CHECK_EQ_INT(convert(tmp_path("nowhere"), out, -1, NULL, NULL, &err), MC_ENOTFOUND);
    CHECK_HAS(err.msg, "config.json");
    write_str(tmp_path("hf0/config.json"), "[1]");
    CHECK_EQ_INT(convert(tmp_path("hf0"), tmp_path("x.gguf"), -1, NULL, NULL, &err), MC_EFORMAT);
    check_no_output(tmp_path("x.gguf"));
}

/* merges as ["a", "b"] lists (newer tokenizers) give the same GGUF as "a b" strings */
MC_TEST(convert_hf_merges_list_form) {
    char *alt = malloc(sizeof TOK_JSON + 64);
    MC_REQUIRE(alt);
    memcpy(alt, TOK_JSON, sizeof TOK_JSON);
    char *m = strstr(alt, "\"merges\":[");
    MC_REQUIRE(m);
    strcpy(m, "\"merges\":[[\"a\",\"b\"],[\"ab\",\"c\"]]}}");
    hfopt o1 = {0}, o2 = {.tok_json = alt};
    mkdir(tmp_path("a"), 0755); /* both directories are called hf: general.name is the same */
    mkdir(tmp_path("b"), 0755);
    write_hf(tmp_path("a/hf"), &o1);
    write_hf(tmp_path("b/hf"), &o2);
    mc_err err;
    CHECK_EQ_INT(convert(tmp_path("a/hf"), tmp_path("a.gguf"), -1, NULL, NULL, &err), 0);
    CHECK_EQ_INT(convert(tmp_path("b/hf"), tmp_path("b.gguf"), -1, NULL, NULL, &err), 0);
    FILE *fa = fopen(tmp_path("a.gguf"), "rb"), *fb = fopen(tmp_path("b.gguf"), "rb");
    MC_REQUIRE(fa && fb);
    int same = 1, ca, cb;
    do {
        ca = fgetc(fa);
        cb = fgetc(fb);
        same &= ca == cb;
    } while (ca != EOF && cb != EOF);
    CHECK_MSG(same, "the two forms of merges give different files");
    fclose(fa);
    fclose(fb);
    free(alt);
}

/* JSON string body of a raw string (backslashes and quotes escaped). */
static void json_escape(const char *in, char *out, size_t cap) {
    size_t o = 0;
    for (; *in && o + 3 < cap; in++) {
        if (*in == '\\' || *in == '"')
            out[o++] = '\\';
        out[o++] = *in;
    }
    out[o] = 0;
}

/* The pre_tokenizer section decides tokenizer.ggml.pre, or asks for --pre. */
MC_TEST(convert_hf_pre_tokenizer_detection) {
    /* as Hugging Face's tokenizer.json files of Qwen2 and Llama 3 spell them */
    static const char qwen2_re[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{"
                                   "N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                                   "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    static const char llama3_re[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
                                    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
                                    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    char q[512], l[512];
    json_escape(qwen2_re, q, sizeof q);
    json_escape(llama3_re, l, sizeof l);
    char pre[8][1024];
    static const char split[] =
        "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\","
        "\"pattern\":{\"Regex\":\"%s\"},\"behavior\":\"%s\",\"invert\":false},"
        "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":%s}]}";
    snprintf(pre[0], sizeof pre[0], split, q, "Isolated", "false");
    snprintf(pre[1], sizeof pre[1], split, l, "Isolated", "false");
    snprintf(pre[2], sizeof pre[2], "%s",
             "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\",\"individual_digits\":"
             "true},"
             "{\"type\":\"ByteLevel\",\"add_prefix_space\":false}]}");
    snprintf(pre[3], sizeof pre[3], "%s", "{\"type\":\"ByteLevel\",\"add_prefix_space\":true}");
    snprintf(pre[4], sizeof pre[4], split, q, "Removed", "false");
    snprintf(pre[5], sizeof pre[5], split, q, "Isolated", "true");
    snprintf(pre[6], sizeof pre[6], split, "\\\\w+", "Isolated", "false");
    static const char *want[] = {"qwen2", "llama-bpe", "starcoder", NULL, NULL, NULL, NULL};
    const char *m = strstr(TOK_JSON, "\"pre_tokenizer\":");
    const char *d = strstr(TOK_JSON, ",\"decoder\"");
    MC_REQUIRE(m && d);
    for (int i = 0; i < 7; i++) {
        char tok[4096], dir[64];
        snprintf(tok, sizeof tok, "%.*s\"pre_tokenizer\":%s%s", (int)(m - TOK_JSON), TOK_JSON,
                 pre[i], d);
        snprintf(dir, sizeof dir, "hf%d", i);
        hfopt o = {.tok_json = tok};
        write_hf(tmp_path(dir), &o);
        mc_err err;
        const char *out = tmp_path("p.gguf");
        int rc = convert(tmp_path(dir), out, -1, NULL, NULL, &err);
        if (!want[i]) {
            CHECK_MSG(rc == MC_EUNSUPPORTED && strstr(err.msg, "--pre NAME"), "case %d: rc %d: %s",
                      i, rc, err.msg);
            continue;
        }
        CHECK_MSG(rc == 0, "case %d: %s", i, err.msg);
        if (rc)
            continue;
        mc_gguf *g = open_gguf(out);
        mc_str s;
        CHECK(mc_gguf_get_str(g, "tokenizer.ggml.pre", &s) == 0);
        CHECK_MSG(s.len == strlen(want[i]) && !memcmp(s.ptr, want[i], s.len),
                  "case %d: pre '%.*s', want %s", i, (int)s.len, s.ptr, want[i]);
        mc_gguf_close(g);
        /* mccom's tokenizer accepts what was written */
        mc_tok *tok_ = NULL;
        CHECK_EQ_INT(mc_tok_load_gguf_file(out, &tok_, &err), 0);
        mc_tok_free(tok_);
    }
}

static bool add_bos_of(const char *dir_name, const char *tok_json, const char *tok_config) {
    hfopt o = {.tok_json = tok_json};
    write_hf(tmp_path(dir_name), &o);
    char p[1024];
    if (tok_config) {
        snprintf(p, sizeof p, "%s/tokenizer_config.json", tmp_path(dir_name));
        write_str(p, tok_config);
    }
    mc_err err;
    bool b = false;
    int rc = convert(tmp_path(dir_name), tmp_path("bos.gguf"), -1, NULL, NULL, &err);
    CHECK_MSG(rc == 0, "%s: %s", dir_name, err.msg);
    if (rc == 0) {
        mc_gguf *g = open_gguf(tmp_path("bos.gguf"));
        CHECK(mc_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b) == 0);
        mc_gguf_close(g);
    }
    return b;
}

/* add_bos: false unless tokenizer_config.json says so, or the post-processor template
 * starts with the BOS token (how Llama 3's tokenizer.json asks for it). */
MC_TEST(convert_hf_add_bos) {
    char tmpl[4096];
    const char *d = strstr(TOK_JSON, ",\"decoder\"");
    MC_REQUIRE(d);
    snprintf(tmpl, sizeof tmpl,
             "%.*s,\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":"
             "{\"id\":\"<|endoftext|>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}]}%s",
             (int)(d - TOK_JSON), TOK_JSON, d);
    CHECK(!add_bos_of("plain", NULL, NULL));
    CHECK(add_bos_of("template", tmpl, NULL)); /* BOS is id 0 (config.json) */
    CHECK(!add_bos_of("template-off", tmpl, "{\"add_bos_token\":false}"));
    CHECK(add_bos_of("config-on", NULL, "{\"add_bos_token\":true,\"bos_token\":\"a\"}"));
    CHECK(!add_bos_of("template-other-bos", tmpl, "{\"bos_token\":{\"content\":\"b\"}}"));
}

/* Value of key i of g equals key j of h: type, and every byte of the value. */
static int kv_same(const mc_gguf *g, int64_t i, const mc_gguf *h, int64_t j) {
    int ty = mc_gguf_kv_type(g, i);
    if (ty != mc_gguf_kv_type(h, j))
        return 0;
    if (ty != MC_GGUF_ARRAY) {
        char a[512], b[512];
        mc_gguf_kv_format(g, i, a, sizeof a);
        mc_gguf_kv_format(h, j, b, sizeof b);
        return !strcmp(a, b);
    }
    int et = mc_gguf_arr_type(g, i);
    uint64_t n = mc_gguf_arr_n(g, i);
    if (et != mc_gguf_arr_type(h, j) || n != mc_gguf_arr_n(h, j))
        return 0;
    if (et == MC_GGUF_STRING) {
        for (uint64_t k = 0; k < n; k++) {
            mc_str x = mc_gguf_arr_str(g, i, k), y = mc_gguf_arr_str(h, j, k);
            if (x.len != y.len || memcmp(x.ptr, y.ptr, x.len) != 0)
                return 0;
        }
        return 1;
    }
    static const size_t es[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return et >= 0 && et < 13 && es[et] &&
           !memcmp(mc_gguf_arr_data(g, i), mc_gguf_arr_data(h, j), (size_t)n * es[et]);
}

/* Every tokenizer.* key of `want` is in `got` with the same value, and no other. */
static void same_tokenizer_keys(const char *want_path, const char *got_path) {
    mc_gguf *a = open_gguf(want_path), *b = open_gguf(got_path);
    int n_a = 0, n_b = 0;
    for (int64_t i = 0; i < mc_gguf_n_kv(a); i++) {
        mc_str k = mc_gguf_key(a, i);
        if (k.len < 10 || memcmp(k.ptr, "tokenizer.", 10))
            continue;
        n_a++;
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)k.len, k.ptr);
        int64_t j = mc_gguf_find_key(b, key);
        CHECK_MSG(j >= 0, "%s: key %s is missing", got_path, key);
        if (j >= 0)
            CHECK_MSG(kv_same(a, i, b, j), "%s: key %s differs", got_path, key);
    }
    for (int64_t i = 0; i < mc_gguf_n_kv(b); i++) {
        mc_str k = mc_gguf_key(b, i);
        n_b += k.len >= 10 && !memcmp(k.ptr, "tokenizer.", 10);
    }
    CHECK_MSG(n_a == n_b && n_a >= 14, "%d tokenizer keys in the vocabulary, %d in %s", n_a, n_b,
              got_path);
    mc_gguf_close(a);
    mc_gguf_close(b);
}

/* A vocabulary trained by mccom (real merges, qwen2 pre-tokenizer): converting a model
 * directory that carries its tokenizer.json reproduces the trainer's vocab.gguf section;
 * --vocab copies it. Both tokenize like the vocabulary itself. */
MC_TEST_T(convert_hf_tokenizer_equals_trained_vocab, 240) {
    mc_tok_train_params tp = mc_tok_train_default();
    tp.vocab_size = 600;
    tp.n_threads = 1;
    mc_tok_trainer *tr = mc_tok_trainer_new(&tp);
    MC_REQUIRE(tr);
    const char *paths[] = {"src/tok", "src/gguf"};
    mc_err err;
    MC_REQUIRE(mc_tok_trainer_add_paths(tr, paths, 2, NULL, &err) == 0);
    MC_REQUIRE(mc_tok_trainer_run(tr, &err) == 0);
    const char *dir = tmp_path("hf"), *vocab = tmp_path("vocab.gguf");
    mkdir(dir, 0755);
    char p[1024];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    MC_REQUIRE(mc_tok_trainer_write_gguf(tr, vocab, &err) == 0);
    MC_REQUIRE(mc_tok_trainer_write_hf(tr, p, &err) == 0);
    mc_tok_trainer_free(tr);
    mc_tok *ref = NULL;
    MC_REQUIRE(mc_tok_load_gguf_file(vocab, &ref, &err) == 0);
    const int V = mc_tok_n_vocab(ref);
    CHECK_EQ_INT(V, 600);
    /* weights: a tiny tied llama of this vocabulary; tokenizer_config as export.py writes */
    int n_t = 0;
    stt t[16];
    void *bufs[16];
    struct {
        const char *name;
        int rows, cols;
    } spec[] = {{"model.embed_tokens.weight", V, E},
                {"model.layers.0.input_layernorm.weight", 0, E},
                {"model.layers.0.self_attn.q_proj.weight", NH * HD, E},
                {"model.layers.0.self_attn.k_proj.weight", NKV * HD, E},
                {"model.layers.0.self_attn.v_proj.weight", NKV * HD, E},
                {"model.layers.0.self_attn.o_proj.weight", E, NH * HD},
                {"model.layers.0.post_attention_layernorm.weight", 0, E},
                {"model.layers.0.mlp.gate_proj.weight", FF, E},
                {"model.layers.0.mlp.up_proj.weight", FF, E},
                {"model.layers.0.mlp.down_proj.weight", E, FF},
                {"model.norm.weight", 0, E}};
    for (size_t k = 0; k < MC_ARRAY_LEN(spec); k++) {
        size_t nb;
        bufs[n_t] = fill("F32", (int)k, spec[k].rows ? spec[k].rows : 1, spec[k].cols, &nb);
        t[n_t] = (stt){spec[k].name,
                       "F32",
                       spec[k].rows ? 2 : 1,
                       {spec[k].rows ? spec[k].rows : spec[k].cols, spec[k].cols},
                       bufs[n_t],
                       nb};
        n_t++;
    }
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    st_write(p, t, n_t);
    for (int i = 0; i < n_t; i++)
        free(bufs[i]);
    char cfg[1024];
    snprintf(
        cfg, sizeof cfg,
        "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":%d,\"intermediate_size\":%d,"
        "\"num_hidden_layers\":1,\"num_attention_heads\":%d,\"num_key_value_heads\":%d,"
        "\"head_dim\":%d,\"vocab_size\":%d,\"max_position_embeddings\":2048,"
        "\"rms_norm_eps\":1e-05,\"rope_theta\":10000.0,\"rope_scaling\":null,"
        "\"tie_word_embeddings\":true,\"bos_token_id\":0,\"eos_token_id\":0}",
        E, FF, NH, NKV, HD, V);
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_str(p, cfg);
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    write_str(p, "{\"bos_token\":\"<|endoftext|>\",\"eos_token\":\"<|endoftext|>\","
                 "\"unk_token\":\"<|endoftext|>\",\"add_bos_token\":false,\"add_eos_token\":false,"
                 "\"pad_token\":\"<|fim_pad|>\"}");

    const char *from_json = tmp_path("json.gguf"), *from_vocab = tmp_path("vocab-copy.gguf");
    int rc = convert(dir, from_json, -1, NULL, NULL, &err);
    CHECK_MSG(rc == 0, "convert: %s", err.msg);
    rc = convert(dir, from_vocab, -1, vocab, NULL, &err);
    CHECK_MSG(rc == 0, "convert --vocab: %s", err.msg);
    if (mc_test_failed())
        return;
    same_tokenizer_keys(vocab, from_json);
    same_tokenizer_keys(vocab, from_vocab);
    /* the same ids for a piece of code */
    static const char text[] =
        "static int parse(const char *s) {\n    return s[0] == '\\t' ? 1 : 42;\n}\n";
    int32_t a[256], b[256];
    int64_t na, nb;
    CHECK_EQ_INT(mc_tok_encode(ref, text, strlen(text), 0, a, 256, &na), 0);
    mc_tok *got = NULL;
    MC_REQUIRE(mc_tok_load_gguf_file(from_json, &got, &err) == 0);
    CHECK_EQ_INT(mc_tok_encode(got, text, strlen(text), 0, b, 256, &nb), 0);
    CHECK(na == nb && na < (int64_t)strlen(text) && !memcmp(a, b, (size_t)na * sizeof *a));
    CHECK_EQ_INT(mc_tok_special(got, MC_TOK_FIM_MID), 2);
    mc_tok_free(got);
    mc_tok_free(ref);
    /* a vocabulary of the wrong size is refused */
    hfopt o = {0};
    write_hf(tmp_path("small"), &o);
    CHECK_EQ_INT(convert(tmp_path("small"), tmp_path("w.gguf"), -1, vocab, NULL, &err), MC_EFORMAT);
    CHECK_HAS(err.msg, "600 tokens");
}

/* The command line: success with progress off, usage errors (2), failures (1) with the
 * error on stderr; runs the build's own binary (ASan in the sanitizer build). */
static int cli(const char *args, char *out, size_t cap) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s convert %s 2>&1", mc_test_bin(), args);
    FILE *f = popen(cmd, "r");
    MC_REQUIRE(f);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = 0;
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

MC_TEST(convert_hf_cli) {
    hfopt o = {.arch = "qwen2"};
    write_hf(tmp_path("hf"), &o);
    char args[2048], out[8192];
    CHECK_EQ_INT(cli("--help", out, sizeof out), 0);
    CHECK_HAS(out, "--vocab");
    CHECK_EQ_INT(cli("hf --help", out, sizeof out), 0);
    CHECK_EQ_INT(cli("hf onlyone", out, sizeof out), 2);
    CHECK_EQ_INT(cli("hf a b --type q4_0", out, sizeof out), 2);
    CHECK_HAS(out, "mccom quantize");
    CHECK_EQ_INT(cli("hf a b --bogus", out, sizeof out), 2);
    CHECK_EQ_INT(cli("hf a b --vocab", out, sizeof out), 2);
    snprintf(args, sizeof args, "hf '%s' '%s' --type bf16", tmp_path("hf"), tmp_path("m.gguf"));
    CHECK_EQ_INT(cli(args, out, sizeof out), 0);
    CHECK_HAS(out, "wrote");
    mc_gguf *g = open_gguf(tmp_path("m.gguf"));
    CHECK_EQ_INT(mc_gguf_find_tensor(g, "blk.0.ffn_up.weight")->type, MC_TYPE_BF16);
    mc_gguf_close(g);
    snprintf(args, sizeof args, "hf '%s' '%s' -q --pre starcoder", tmp_path("hf"),
             tmp_path("q.gguf"));
    CHECK_EQ_INT(cli(args, out, sizeof out), 0);
    CHECK_EQ_STR(out, "");
    snprintf(args, sizeof args, "hf '%s' '%s' --vocab '%s'", tmp_path("hf"), tmp_path("v.gguf"),
             tmp_path("missing.gguf"));
    CHECK_EQ_INT(cli(args, out, sizeof out), 1);
    CHECK_HAS(out, "missing.gguf");
    check_no_output(tmp_path("v.gguf"));
}

/* ==== the engine against PyTorch (needs /usr/bin/python3 with torch) ================= */

#define PY "/usr/bin/python3"
/* Bounds on max |mccom - PyTorch| over every logit; F32 absolute (docs/training.md),
 * the others relative to the largest |logit|, so that one bound serves a model trained
 * for 20 steps (logits ~1) and the random ones (logits ~15). See the head of the file. */
#define TOL_F32 1e-4
#define TOL_F16 5e-3
#define TOL_BF16 2e-2
#define TOL_Q8_0 8e-2
#define TOL_ORACLE 1e-4 /* relative, as tests/test_parity.c's F32 bound */

static void need_python(void) {
#if defined(__SANITIZE_ADDRESS__)
    MC_SKIP("Python tests run in the normal build only");
#else
    if (system(PY " -c 'import torch, numpy' >/dev/null 2>&1") != 0)
        MC_SKIP(PY " has no torch/numpy (apt-get install python3-torch python3-numpy)");
#endif
}

/* Run a shell command; on failure print its output and stop the test. */
static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(cmd, sizeof cmd - 64, fmt, ap);
    va_end(ap);
    MC_REQUIRE(w > 0 && (size_t)w < sizeof cmd - 64);
    const char *log = tmp_path("cmd.log");
    char full[9000];
    snprintf(full, sizeof full,
             "export OMP_NUM_THREADS=1 PYTHONDONTWRITEBYTECODE=1; (%s) > '%s' 2>&1", cmd, log);
    int rc = system(full);
    if (rc != 0) {
        char show[1200];
        snprintf(show, sizeof show, "tail -n 30 '%s' >&2", log);
        if (system(show) != 0) {
            /* nothing more to show */
        }
        mc_test_fail_at(__FILE__, __LINE__, "command failed (%d): %s", rc, cmd);
        mc_test_abort();
    }
}

static float *read_f32(const char *path, size_t n) {
    float *x = malloc(n * sizeof *x);
    FILE *f = fopen(path, "rb");
    MC_REQUIRE(x && f);
    size_t got = fread(x, sizeof *x, n, f);
    CHECK_MSG(got == n && fgetc(f) == EOF, "%s: %zu floats, expected %zu", path, got, n);
    fclose(f);
    MC_REQUIRE(got == n);
    return x;
}

enum { N_IDS = 48 };

/* Test ids: the recipe's eight, then a fixed pseudo-random sequence in [0, 262). */
static void test_ids(int32_t *ids, char *csv, size_t cap) {
    static const int32_t head[8] = {0, 1, 50, 51, 3, 60, 2, 70};
    uint64_t s = 0x9E3779B97F4A7C15ull;
    size_t len = 0;
    for (int i = 0; i < N_IDS; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        ids[i] = i < 8 ? head[i] : (int32_t)(s % 262);
        len += (size_t)snprintf(csv + len, cap - len, i ? ",%d" : "%d", ids[i]);
    }
}

/* mccom's logits of every position (F32 KV cache, one thread); *V gets n_vocab. */
static float *engine_logits(const char *gguf, const int32_t *ids, int n, int *V) {
    mc_model *m = NULL;
    mc_err err;
    int rc = mc_model_load(gguf, &m, &err);
    CHECK_MSG(rc == 0, "load %s: %s", gguf, err.msg);
    MC_REQUIRE(rc == 0);
    mc_ctx_params p = mc_ctx_params_default();
    p.n_ctx = 128;
    p.n_threads = 1;
    p.kv_f32 = 1;
    mc_ctx *c = NULL;
    MC_REQUIRE(mc_ctx_new(m, &p, &c, &err) == 0);
    MC_REQUIRE(mc_ctx_decode(c, ids, n, 1, &err) == 0);
    *V = mc_model_hparams(m)->n_vocab;
    float *out = malloc((size_t)n * (size_t)*V * sizeof *out);
    MC_REQUIRE(out);
    for (int i = 0; i < n; i++) {
        const float *row = mc_ctx_logits(c, i);
        MC_REQUIRE(row);
        memcpy(out + (size_t)i * *V, row, (size_t)*V * sizeof *row);
    }
    mc_ctx_free(c);
    mc_model_free(m);
    return out;
}

typedef struct cmp {
    double max_diff, max_ref;
    int argmax_same;
} cmp;

static cmp compare(const float *a, const float *ref, int n, int V) {
    cmp r = {0, 0, 0};
    for (int i = 0; i < n; i++) {
        const float *x = a + (size_t)i * V, *y = ref + (size_t)i * V;
        for (int j = 0; j < V; j++) {
            double d = fabs((double)x[j] - (double)y[j]);
            if (!(d <= r.max_diff))
                r.max_diff = d; /* NaN sticks */
            if (fabs((double)y[j]) > r.max_ref)
                r.max_ref = fabs((double)y[j]);
        }
        r.argmax_same += mc_argmax(x, V) == mc_argmax(y, V);
    }
    return r;
}

/* One GGUF file against reference logits: max |diff| <= tol_abs if > 0, else tol_rel x
 * max |reference logit|; with argmax95, the same argmax at >= 95 % of positions. */
static cmp check_logits(const char *what, const char *gguf, const float *ref, const int32_t *ids,
                        int n, int V_ref, double tol_abs, double tol_rel, int argmax95) {
    int V;
    float *ours = engine_logits(gguf, ids, n, &V);
    CHECK_EQ_INT(V, V_ref);
    cmp c = compare(ours, ref, n, V_ref);
    double tol = tol_abs > 0 ? tol_abs : tol_rel * c.max_ref;
    fprintf(
        stderr,
        "  %s: max |diff| %.3g, relative %.3g (bound %.3g), max |logit| %.3g, argmax same %d/%d\n",
        what, c.max_diff, c.max_diff / c.max_ref, tol, c.max_ref, c.argmax_same, n);
    CHECK_MSG(c.max_diff <= tol, "%s: logits differ from PyTorch by %.3g > %.3g", what, c.max_diff,
              tol);
    CHECK_MSG(c.max_ref > 0.5, "%s: reference logits are too flat (%.3g) to test anything", what,
              c.max_ref);
    if (argmax95)
        CHECK_MSG(c.argmax_same * 100 >= 95 * n, "%s: argmax agrees at %d of %d positions", what,
                  c.argmax_same, n);
    free(ours);
    return c;
}

static const char *oracle_path(void) {
    const char *o = getenv("MC_ORACLE");
    return o && *o ? o : "build/oracle/mccom-oracle";
}

/* llama.cpp's logits of every position of a GGUF file (n x V floats, malloc'd), or NULL
 * (and a failure) without the oracle. */
static float *oracle_logits(const char *gguf, const char *csv, int n, int V) {
    if (access(oracle_path(), X_OK) != 0) {
        mc_test_fail_at(__FILE__, __LINE__,
                        "llama.cpp oracle %s is missing: `make test` builds it (make oracle)",
                        oracle_path());
        return NULL;
    }
    const char *bin = tmp_path("oracle.bin");
    sh("%s logits '%s' --tokens %s --all --threads 1 --kv f32 --out '%s'", oracle_path(), gguf, csv,
       bin);
    return read_f32(bin, (size_t)n * (size_t)V);
}

/* A random model's Q8_0 file: besides the bound, mccom must be as close to PyTorch as
 * llama.cpp's own evaluation of the same file is (quantizing activations to Q8_0 per 32,
 * as both engines do, moves the logits of these deliberately sharp models by a few %;
 * their near ties flip the argmax at some positions in both engines alike). */
static void check_q8_like_llama_cpp(const char *gguf, const float *ref, const char *csv,
                                    const int32_t *ids, int n, int V) {
    cmp ours = check_logits("q8_0", gguf, ref, ids, n, V, 0, TOL_Q8_0, 0);
    float *ll = oracle_logits(gguf, csv, n, V);
    if (!ll)
        return;
    cmp theirs = compare(ll, ref, n, V);
    fprintf(stderr, "  llama.cpp on the same q8_0 file: max |diff| %.3g, argmax same %d/%d\n",
            theirs.max_diff, theirs.argmax_same, n);
    CHECK_MSG(ours.max_diff <= 1.5 * theirs.max_diff + 1e-3 * ours.max_ref,
              "q8_0: mccom is %.3g from PyTorch, llama.cpp %.3g", ours.max_diff, theirs.max_diff);
    CHECK_MSG(ours.argmax_same >= theirs.argmax_same - 2,
              "q8_0: mccom's argmax agrees with PyTorch at %d positions, llama.cpp's at %d",
              ours.argmax_same, theirs.argmax_same);
    free(ll);
}

/* llama.cpp loads the converted file (vocabulary included) and agrees with mccom. */
static void check_oracle(const char *gguf, const char *csv, const int32_t *ids, int n) {
    int V;
    float *ours = engine_logits(gguf, ids, n, &V);
    float *theirs = oracle_logits(gguf, csv, n, V);
    if (theirs) {
        cmp c = compare(ours, theirs, n, V);
        fprintf(stderr, "  llama.cpp: max |diff| %.3g, relative %.3g (bound %.0e)\n", c.max_diff,
                c.max_diff / c.max_ref, TOL_ORACLE);
        CHECK_MSG(c.max_diff <= TOL_ORACLE * c.max_ref, "llama.cpp's logits differ: %.3g relative",
                  c.max_diff / c.max_ref);
    }
    free(ours);
    free(theirs);
}

static const char *mccom_bin(void) { return mc_test_bin(); }

/* The recipe of docs/training.md: byte vocabulary, tiny-test trained a few steps, export,
 * convert, quantize, compare with dump_logits.py. */
static void trained_recipe(int tied) {
    need_python();
    const char *T = mc_test_tmpdir();
    sh(PY " tools/train/tokfile.py byte-vocab '%s/vocab'", T);
    sh("ls src/tok/*.c src/model/*.c > '%s/files.list'", T);
    sh(PY " tools/train/tokfile.py byte-tokenize --list '%s/files.list' --root . --out '%s/t.tok'",
       T, T);
    sh(PY " tools/train/train.py --preset tiny-test --train '%s/t.tok' --vocab "
          "'%s/vocab/tokenizer.json' "
          "--out '%s/run' --steps 20 --batch 2 --warmup 2 --threads 1",
       T, T, T);
    if (tied) /* the tiny preset is untied; tie it as tests/test_train.c's Export test does */
        sh(PY " -c \"import sys, torch; sys.path.insert(0, 'tools/train'); import train; "
              "p = '%s/run/ckpt.pt'; d = train.load_ckpt(p); d['config']['tied'] = True; "
              "d['model']['lm_head.weight'] = d['model']['model.embed_tokens.weight']; "
              "torch.save(d, p)\"",
           T);
    sh(PY " tools/train/export.py --ckpt '%s/run/ckpt.pt' --vocab '%s/vocab/tokenizer.json' --out "
          "'%s/hf'",
       T, T, T);
    sh("%s convert hf '%s/hf' '%s/m.gguf' --type f32", mccom_bin(), T, T);
    sh("%s convert hf '%s/hf' '%s/m16.gguf' --type f16", mccom_bin(), T, T);
    sh("%s quantize '%s/m.gguf' '%s/q8.gguf' q8_0", mccom_bin(), T, T);
    int32_t ids[N_IDS];
    char csv[512];
    test_ids(ids, csv, sizeof csv);
    sh(PY " tools/train/dump_logits.py '%s/hf' --tokens %s --out '%s/ref.bin'", T, csv, T);
    float *ref = read_f32(tmp_path("ref.bin"), (size_t)N_IDS * 262);
    mc_gguf *g = open_gguf(tmp_path("m.gguf"));
    CHECK((mc_gguf_find_tensor(g, "output.weight") == NULL) == tied);
    mc_gguf_close(g);
    check_logits("f32", tmp_path("m.gguf"), ref, ids, N_IDS, 262, TOL_F32, 0, 1);
    check_logits("f16", tmp_path("m16.gguf"), ref, ids, N_IDS, 262, 0, TOL_F16, 1);
    check_logits("q8_0", tmp_path("q8.gguf"), ref, ids, N_IDS, 262, 0, TOL_Q8_0, 1);
    check_oracle(tmp_path("m.gguf"), csv, ids, N_IDS);
    free(ref);
}

MC_TEST_T(convert_hf_logits_trained_untied, 300) { trained_recipe(0); }
MC_TEST_T(convert_hf_logits_trained_tied, 300) { trained_recipe(1); }

/* Write `in` again with the q/k rows put back in Hugging Face's order (the inverse of the
 * converter's permutation): what a converter that forgot it would produce. */
static void unpermute(const char *in, const char *out, int n_head, int n_head_kv) {
    mc_gguf *g = open_gguf(in);
    mc_gguf_writer *w = mc_gguf_writer_new();
    MC_REQUIRE(w);
    MC_REQUIRE(mc_gguf_copy_kv(w, g) == 0);
    void *bufs[64] = {0};
    int nb = 0;
    for (int64_t i = 0; i < mc_gguf_n_tensors(g); i++) {
        const mc_gguf_tensor *t = mc_gguf_tensor_at(g, i);
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        const void *data = t->data;
        int heads = strstr(name, "attn_q.weight")   ? n_head
                    : strstr(name, "attn_k.weight") ? n_head_kv
                                                    : 0;
        if (heads) {
            MC_REQUIRE(t->type == MC_TYPE_F32 && nb < 64);
            int64_t rows = t->ne[1], hd = rows / heads, cols = t->ne[0];
            float *b = malloc(t->size);
            MC_REQUIRE(b);
            for (int64_t r = 0; r < rows;
                 r++) { /* GGUF row h*hd + 2i + j holds HF row h*hd + j*hd/2 + i */
                int64_t h = r / hd, k = r % hd;
                memcpy(b + (h * hd + (k % 2) * (hd / 2) + k / 2) * cols,
                       (const float *)t->data + r * cols, (size_t)cols * 4);
            }
            bufs[nb++] = b;
            data = b;
        }
        MC_REQUIRE(mc_gguf_add_tensor(w, name, t->type, t->n_dims, t->ne, data, t->size) == 0);
    }
    mc_err err;
    MC_REQUIRE(mc_gguf_writer_write(w, out, &err) == 0);
    mc_gguf_writer_free(w);
    for (int i = 0; i < nb; i++)
        free(bufs[i]);
    mc_gguf_close(g);
}

/* A random llama with sharp attention, sharded into three files. */
MC_TEST_T(convert_hf_logits_random_llama_sharded, 300) {
    need_python();
    const char *T = mc_test_tmpdir();
    sh(PY " tools/train/tokfile.py byte-vocab '%s/vocab'", T);
    sh(PY " tests/convert_hf_ref.py llama '%s/hf' --vocab '%s/vocab/tokenizer.json' --seed 7", T,
       T);
    int32_t ids[N_IDS];
    char csv[512];
    test_ids(ids, csv, sizeof csv);
    sh(PY " tools/train/dump_logits.py '%s/hf' --tokens %s --out '%s/ref.bin'", T, csv, T);
    sh(PY " tests/convert_hf_ref.py shard '%s/hf' 3", T);
    MC_REQUIRE(access(tmp_path("hf/model.safetensors"), F_OK) != 0);
    sh("%s convert hf '%s/hf' '%s/m.gguf'", mccom_bin(), T, T);
    sh("%s convert hf '%s/hf' '%s/m16.gguf' --type f16", mccom_bin(), T, T);
    sh("%s quantize '%s/m.gguf' '%s/q8.gguf' q8_0", mccom_bin(), T, T);
    float *ref = read_f32(tmp_path("ref.bin"), (size_t)N_IDS * 262);
    check_logits("f32 (3 shards)", tmp_path("m.gguf"), ref, ids, N_IDS, 262, TOL_F32, 0, 1);
    check_logits("f16", tmp_path("m16.gguf"), ref, ids, N_IDS, 262, 0, TOL_F16, 1);
    check_q8_like_llama_cpp(tmp_path("q8.gguf"), ref, csv, ids, N_IDS, 262);
    check_oracle(tmp_path("m.gguf"), csv, ids, N_IDS);
    /* the test would catch a converter without the rope permutation */
    unpermute(tmp_path("m.gguf"), tmp_path("unpermuted.gguf"), 4, 2);
    int V;
    float *bad = engine_logits(tmp_path("unpermuted.gguf"), ids, N_IDS, &V);
    cmp c = compare(bad, ref, N_IDS, V);
    fprintf(stderr, "  without the q/k permutation: max |diff| %.3g\n", c.max_diff);
    CHECK_MSG(c.max_diff > 100 * TOL_F32 && c.max_diff > 0.1,
              "un-permuted q/k rows change the logits by only %.3g", c.max_diff);
    free(bad);
    free(ref);
}

/* export.py --dtype bf16: kept as f16 by default, compared with the bf16 model's logits. */
MC_TEST_T(convert_hf_logits_bf16_export, 300) {
    need_python();
    const char *T = mc_test_tmpdir();
    sh(PY " tools/train/tokfile.py byte-vocab '%s/vocab'", T);
    sh(PY
       " tests/convert_hf_ref.py llama '%s/hf' --vocab '%s/vocab/tokenizer.json' --seed 11 --tied "
       "--dtype bf16",
       T, T);
    int32_t ids[N_IDS];
    char csv[512];
    test_ids(ids, csv, sizeof csv);
    sh(PY " tools/train/dump_logits.py '%s/hf' --tokens %s --out '%s/ref.bin'", T, csv, T);
    sh("%s convert hf '%s/hf' '%s/m.gguf'", mccom_bin(), T, T);
    sh("%s convert hf '%s/hf' '%s/mb.gguf' --type bf16", mccom_bin(), T, T);
    mc_gguf *g = open_gguf(tmp_path("m.gguf"));
    CHECK_EQ_INT(mc_gguf_find_tensor(g, "blk.0.ffn_up.weight")->type, MC_TYPE_F16);
    mc_gguf_close(g);
    float *ref = read_f32(tmp_path("ref.bin"), (size_t)N_IDS * 262);
    check_logits("bf16 -> f16", tmp_path("m.gguf"), ref, ids, N_IDS, 262, 0, TOL_F16, 1);
    /* bf16 kept as bf16: the weights are exact, but the engine rounds activations to bf16
     * before each matmul as ggml does (8 bits of mantissa), hence the looser bound */
    check_logits("bf16 -> bf16", tmp_path("mb.gguf"), ref, ids, N_IDS, 262, 0, TOL_BF16, 1);
    free(ref);
}

/* Qwen2 with q/k/v biases against an independent numpy forward pass. */
MC_TEST_T(convert_hf_logits_qwen2_biases, 300) {
    need_python();
    const char *T = mc_test_tmpdir();
    int32_t ids[N_IDS];
    char csv[512];
    test_ids(ids, csv, sizeof csv);
    sh(PY " tools/train/tokfile.py byte-vocab '%s/vocab'", T);
    sh(PY " tests/convert_hf_ref.py qwen2 '%s/hf' --vocab '%s/vocab/tokenizer.json' --seed 5 "
          "--tokens %s --ref '%s/ref.bin'",
       T, T, csv, T);
    sh("%s convert hf '%s/hf' '%s/m.gguf'", mccom_bin(), T, T);
    sh("%s quantize '%s/m.gguf' '%s/q8.gguf' q8_0", mccom_bin(), T, T);
    const int V = 262 + 38;
    float *ref = read_f32(tmp_path("ref.bin"), (size_t)N_IDS * V);
    mc_gguf *g = open_gguf(tmp_path("m.gguf"));
    mc_str s;
    CHECK(mc_gguf_get_str(g, "general.architecture", &s) == 0 && s.len == 5 &&
          !memcmp(s.ptr, "qwen2", 5));
    CHECK(mc_gguf_find_tensor(g, "blk.1.attn_k.bias") != NULL);
    CHECK_EQ_INT(get_u32(g, "tokenizer.ggml.eos_token_id"), 0);
    CHECK_EQ_INT(mc_gguf_find_key(g, "tokenizer.ggml.bos_token_id") >= 0, 1); /* from config.json */
    mc_gguf_close(g);
    check_logits("qwen2 f32", tmp_path("m.gguf"), ref, ids, N_IDS, V, TOL_F32, 0, 1);
    check_q8_like_llama_cpp(tmp_path("q8.gguf"), ref, csv, ids, N_IDS, V);
    check_oracle(tmp_path("m.gguf"), csv, ids, N_IDS);
    free(ref);
}
