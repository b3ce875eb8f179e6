/* GGUF reader: parses and checks a whole file up front, then serves pointers
 * into the mapping.
 *
 * Every read goes through a bounds-checked cursor; every count is checked
 * against the bytes that remain before anything is allocated for it, so a
 * hostile header cannot make us allocate more than a small multiple of the
 * file size. Nothing here modifies the mapping. Nested arrays are rejected
 * (llama.cpp rejects them too); duplicate keys and tensor names are errors.
 */
#include "mccom/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct kv {
    mc_str key;
    int type;
    int arr_type;        /* element type for arrays */
    uint64_t arr_n;      /* element count for arrays */
    const uint8_t *val;  /* value bytes (for arrays: first element) */
    size_t val_len;      /* bytes of the whole value as stored (after the type field) */
    uint64_t *str_offs;  /* string arrays: offset of each element's length field from val */
};

struct mc_gguf {
    const uint8_t *base;
    size_t size;
    int mapped;
    uint32_t version;
    uint32_t alignment;
    size_t data_off;
    int64_t n_kv;
    struct kv *kv;
    int64_t n_tensors;
    mc_gguf_tensor *tensors;
    /* open-addressing hash indices (value = index + 1, 0 = empty) */
    uint32_t kv_cap, t_cap;
    int64_t *kv_index;
    int64_t *t_index;
};

struct cur {
    const uint8_t *p;
    size_t size;
    size_t pos;
    mc_err *err;
};


static int need(struct cur *c, size_t n, const char *field) {
    if (c->size - c->pos < n)
        return mc_err_set(c->err, MC_EFORMAT, (int64_t)c->pos,
                          "truncated file: %s needs %zu bytes, %zu left", field, n,
                          c->size - c->pos);
    return 0;
}

static int rd_u32(struct cur *c, uint32_t *v, const char *field) {
    int rc = need(c, 4, field);
    if (rc)
        return rc;
    memcpy(v, c->p + c->pos, 4);
    c->pos += 4;
    return 0;
}

static int rd_u64(struct cur *c, uint64_t *v, const char *field) {
    int rc = need(c, 8, field);
    if (rc)
        return rc;
    memcpy(v, c->p + c->pos, 8);
    c->pos += 8;
    return 0;
}

static int rd_str(struct cur *c, mc_str *s, const char *field) {
    uint64_t len;
    size_t at = c->pos;
    int rc = rd_u64(c, &len, field);
    if (rc)
        return rc;
    if (len > c->size - c->pos)
        return mc_err_set(c->err, MC_EFORMAT, (int64_t)at,
                          "%s: string length %llu exceeds the %zu bytes left", field,
                          (unsigned long long)len, c->size - c->pos);
    s->ptr = (const char *)c->p + c->pos;
    s->len = (size_t)len;
    c->pos += (size_t)len;
    return 0;
}

static size_t scalar_size(int t) {
    switch (t) {
    case MC_GGUF_U8:
    case MC_GGUF_I8:
    case MC_GGUF_BOOL:
        return 1;
    case MC_GGUF_U16:
    case MC_GGUF_I16:
        return 2;
    case MC_GGUF_U32:
    case MC_GGUF_I32:
    case MC_GGUF_F32:
        return 4;
    case MC_GGUF_U64:
    case MC_GGUF_I64:
    case MC_GGUF_F64:
        return 8;
    }
    return 0;
}

static uint64_t hash_str(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static int str_eq(mc_str a, const char *b, size_t blen) {
    return a.len == blen && memcmp(a.ptr, b, blen) == 0;
}

static uint32_t table_cap(int64_t n) {
    uint32_t cap = 16;
    while ((int64_t)cap < 2 * n + 1)
        cap <<= 1;
    return cap;
}

/* Insert name (index i) into a table; returns 1 if the name was already there. */
static int index_insert(int64_t *tab, uint32_t cap, mc_str name, int64_t i,
                        mc_str (*name_of)(const mc_gguf *, int64_t), const mc_gguf *g) {
    uint32_t h = (uint32_t)hash_str(name.ptr, name.len) & (cap - 1);
    while (tab[h]) {
        mc_str other = name_of(g, tab[h] - 1);
        if (str_eq(other, name.ptr, name.len))
            return 1;
        h = (h + 1) & (cap - 1);
    }
    tab[h] = i + 1;
    return 0;
}

static int64_t index_find(const int64_t *tab, uint32_t cap, const char *name, size_t len,
                          mc_str (*name_of)(const mc_gguf *, int64_t), const mc_gguf *g) {
    if (!tab)
        return -1;
    uint32_t h = (uint32_t)hash_str(name, len) & (cap - 1);
    while (tab[h]) {
        if (str_eq(name_of(g, tab[h] - 1), name, len))
            return tab[h] - 1;
        h = (h + 1) & (cap - 1);
    }
    return -1;
}

static mc_str kv_name(const mc_gguf *g, int64_t i) { return g->kv[i].key; }
static mc_str t_name(const mc_gguf *g, int64_t i) { return g->tensors[i].name; }

/* Parse one value of type t at the cursor into kv (for arrays, the elements). */
static int parse_value(struct cur *c, struct kv *kv, mc_str key) {
    char field[96];
    snprintf(field, sizeof field, "value of '%.*s'", (int)MC_MIN(key.len, 60), key.ptr);
    size_t start = c->pos;
    if (kv->type == MC_GGUF_STRING) {
        mc_str s;
        int rc = rd_str(c, &s, field);
        if (rc)
            return rc;
        kv->val = c->p + start;
    } else if (kv->type == MC_GGUF_ARRAY) {
        uint32_t et;
        uint64_t n;
        int rc = rd_u32(c, &et, field);
        if (rc)
            return rc;
        if (et == MC_GGUF_ARRAY)
            return mc_err_set(c->err, MC_EUNSUPPORTED, (int64_t)start,
                              "%s: nested arrays are not supported", field);
        if (et >= MC_GGUF_TYPE_COUNT)
            return mc_err_set(c->err, MC_EFORMAT, (int64_t)start,
                              "%s: unknown array element type %u", field, et);
        size_t at_n = c->pos;
        rc = rd_u64(c, &n, field);
        if (rc)
            return rc;
        kv->arr_type = (int)et;
        kv->arr_n = n;
        kv->val = c->p + c->pos;
        if (et == MC_GGUF_STRING) {
            /* each element takes at least 8 bytes */
            if (n > (c->size - c->pos) / 8)
                return mc_err_set(c->err, MC_EFORMAT, (int64_t)at_n,
                                  "%s: %llu strings cannot fit in the %zu bytes left", field,
                                  (unsigned long long)n, c->size - c->pos);
            kv->str_offs = malloc((size_t)(n ? n : 1) * sizeof(uint64_t));
            if (!kv->str_offs)
                return mc_err_set(c->err, MC_ENOMEM, -1, "out of memory for %s", field);
            size_t base = c->pos;
            for (uint64_t j = 0; j < n; j++) {
                mc_str s;
                kv->str_offs[j] = c->pos - base;
                rc = rd_str(c, &s, field);
                if (rc)
                    return rc;
            }
        } else {
            size_t es = scalar_size((int)et);
            if (n > (c->size - c->pos) / es)
                return mc_err_set(c->err, MC_EFORMAT, (int64_t)at_n,
                                  "%s: %llu elements of %zu bytes exceed the %zu bytes left",
                                  field, (unsigned long long)n, es, c->size - c->pos);
            c->pos += (size_t)n * es;
        }
    } else {
        size_t es = scalar_size(kv->type);
        int rc = need(c, es, field);
        if (rc)
            return rc;
        if (kv->type == MC_GGUF_BOOL && c->p[c->pos] > 1)
            return mc_err_set(c->err, MC_EFORMAT, (int64_t)c->pos,
                              "%s: bool byte is %u, not 0 or 1", field, c->p[c->pos]);
        kv->val = c->p + c->pos;
        c->pos += es;
    }
    kv->val_len = c->pos - start;
    return 0;
}

static int parse(mc_gguf *g, mc_err *err) {
    struct cur c = {g->base, g->size, 0, err};
    uint32_t magic;
    int rc = rd_u32(&c, &magic, "magic");
    if (rc)
        return rc;
    if (magic != MC_GGUF_MAGIC)
        return mc_err_set(err, MC_EFORMAT, 0, "not a GGUF file (magic is 0x%08x, want \"GGUF\")",
                          magic);
    rc = rd_u32(&c, &g->version, "version");
    if (rc)
        return rc;
    if (g->version < 2 || g->version > 3)
        return mc_err_set(err, MC_EUNSUPPORTED, 4, "GGUF version %u is not supported (2 or 3)",
                          g->version);
    uint64_t n_tensors, n_kv;
    rc = rd_u64(&c, &n_tensors, "n_tensors");
    if (rc)
        return rc;
    rc = rd_u64(&c, &n_kv, "n_kv");
    if (rc)
        return rc;
    /* a key/value takes at least 8+4+1 bytes, a tensor info at least 8+4+8+4+8 */
    if (n_kv > (c.size - c.pos) / 13)
        return mc_err_set(err, MC_EFORMAT, 16, "n_kv %llu cannot fit in a %zu-byte file",
                          (unsigned long long)n_kv, c.size);
    if (n_tensors > (c.size - c.pos) / 32)
        return mc_err_set(err, MC_EFORMAT, 8, "n_tensors %llu cannot fit in a %zu-byte file",
                          (unsigned long long)n_tensors, c.size);
    g->kv = calloc((size_t)(n_kv ? n_kv : 1), sizeof *g->kv);
    g->tensors = calloc((size_t)(n_tensors ? n_tensors : 1), sizeof *g->tensors);
    g->kv_cap = table_cap((int64_t)n_kv);
    g->t_cap = table_cap((int64_t)n_tensors);
    g->kv_index = calloc(g->kv_cap, sizeof(int64_t));
    g->t_index = calloc(g->t_cap, sizeof(int64_t));
    if (!g->kv || !g->tensors || !g->kv_index || !g->t_index)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory reading the GGUF header");

    g->alignment = MC_GGUF_DEFAULT_ALIGNMENT;
    for (uint64_t i = 0; i < n_kv; i++) {
        struct kv *kv = &g->kv[i];
        size_t at = c.pos;
        rc = rd_str(&c, &kv->key, "key");
        if (rc)
            return rc;
        uint32_t t;
        size_t at_type = c.pos;
        rc = rd_u32(&c, &t, "value type");
        if (rc)
            return rc;
        if (t >= MC_GGUF_TYPE_COUNT)
            return mc_err_set(err, MC_EFORMAT, (int64_t)at_type,
                              "key '%.*s': unknown value type %u", (int)MC_MIN(kv->key.len, 60),
                              kv->key.ptr, t);
        kv->type = (int)t;
        kv->arr_type = MC_GGUF_TYPE_COUNT;
        g->n_kv = (int64_t)i + 1; /* so close() frees what was allocated */
        rc = parse_value(&c, kv, kv->key);
        if (rc)
            return rc;
        if (index_insert(g->kv_index, g->kv_cap, kv->key, (int64_t)i, kv_name, g))
            return mc_err_set(err, MC_EFORMAT, (int64_t)at, "duplicate key '%.*s'",
                              (int)MC_MIN(kv->key.len, 60), kv->key.ptr);
        if (str_eq(kv->key, "general.alignment", 17)) {
            uint32_t a;
            if (kv->type != MC_GGUF_U32)
                return mc_err_set(err, MC_EFORMAT, (int64_t)at_type,
                                  "general.alignment must be u32, is %s", mc_gguf_type_name(kv->type));
            memcpy(&a, kv->val, 4);
            if (a == 0 || (a & (a - 1)) != 0)
                return mc_err_set(err, MC_EFORMAT, (int64_t)at_type + 4,
                                  "general.alignment %u is not a power of two", a);
            g->alignment = a;
        }
    }

    for (uint64_t i = 0; i < n_tensors; i++) {
        mc_gguf_tensor *t = &g->tensors[i];
        size_t at = c.pos;
        rc = rd_str(&c, &t->name, "tensor name");
        if (rc)
            return rc;
        char field[96];
        snprintf(field, sizeof field, "tensor '%.*s'", (int)MC_MIN(t->name.len, 60), t->name.ptr);
        uint32_t n_dims;
        size_t at_dims = c.pos;
        rc = rd_u32(&c, &n_dims, field);
        if (rc)
            return rc;
        if (n_dims < 1 || n_dims > 4)
            return mc_err_set(err, MC_EFORMAT, (int64_t)at_dims, "%s: n_dims %u is not in 1..4",
                              field, n_dims);
        t->n_dims = (int)n_dims;
        uint64_t n_el = 1;
        for (int d = 0; d < 4; d++)
            t->ne[d] = 1;
        for (uint32_t d = 0; d < n_dims; d++) {
            uint64_t ne;
            size_t at_ne = c.pos;
            rc = rd_u64(&c, &ne, field);
            if (rc)
                return rc;
            /* n_el: product of the dims, zeros counted as 1, so that every
             * product of a subset of them is known not to overflow */
            uint64_t prod;
            if (ne > (uint64_t)INT64_MAX / 2 || __builtin_mul_overflow(n_el, ne ? ne : 1, &prod) ||
                prod > (uint64_t)INT64_MAX / 2)
                return mc_err_set(err, MC_EFORMAT, (int64_t)at_ne,
                                  "%s: dimension %u (%llu) overflows", field, d,
                                  (unsigned long long)ne);
            t->ne[d] = (int64_t)ne;
            n_el = prod;
        }
        uint32_t type;
        size_t at_type = c.pos;
        rc = rd_u32(&c, &type, field);
        if (rc)
            return rc;
        t->type = (int)type;
        if (mc_ggml_type_block((int)type) == 0)
            return mc_err_set(err, type < 64 ? MC_EUNSUPPORTED : MC_EFORMAT, (int64_t)at_type,
                              "%s: tensor type %u is not supported", field, type);
        if (t->ne[0] % mc_ggml_type_block((int)type) != 0)
            return mc_err_set(err, MC_EFORMAT, (int64_t)at_dims,
                              "%s: ne[0]=%lld is not a multiple of the %s block size %d", field,
                              (long long)t->ne[0], mc_ggml_type_name((int)type),
                              mc_ggml_type_block((int)type));
        size_t at_off = c.pos;
        rc = rd_u64(&c, &t->offset, field);
        if (rc)
            return rc;
        if (t->offset % g->alignment != 0)
            return mc_err_set(err, MC_EFORMAT, (int64_t)at_off,
                              "%s: data offset %llu is not a multiple of the alignment %u", field,
                              (unsigned long long)t->offset, g->alignment);
        uint64_t rows = (uint64_t)(t->ne[1] * t->ne[2] * t->ne[3]);
        uint64_t row = mc_ggml_row_size((int)type, t->ne[0]);
        if (row && rows > UINT64_MAX / row)
            return mc_err_set(err, MC_EFORMAT, (int64_t)at_dims, "%s: size overflows", field);
        t->size = (size_t)(rows * row);
        g->n_tensors = (int64_t)i + 1;
        if (index_insert(g->t_index, g->t_cap, t->name, (int64_t)i, t_name, g))
            return mc_err_set(err, MC_EFORMAT, (int64_t)at, "duplicate tensor name '%.*s'",
                              (int)MC_MIN(t->name.len, 60), t->name.ptr);
    }

    size_t data_off = c.pos + (g->alignment - c.pos % g->alignment) % g->alignment;
    g->data_off = data_off;
    size_t data_size = data_off <= g->size ? g->size - data_off : 0;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        mc_gguf_tensor *t = &g->tensors[i];
        if (data_off > g->size || t->offset > data_size || t->size > data_size - t->offset)
            return mc_err_set(err, MC_EFORMAT, (int64_t)(data_off + t->offset),
                              "tensor '%.*s': data [%llu, %llu) of the data section at byte %zu "
                              "runs past the end of the file (%zu bytes)",
                              (int)MC_MIN(t->name.len, 60), t->name.ptr,
                              (unsigned long long)t->offset,
                              (unsigned long long)(t->offset + t->size), data_off, g->size);
        t->data = g->base + data_off + t->offset;
    }
    return 0;
}

static int open_common(mc_gguf *g, mc_gguf **out, mc_err *err) {
    mc_err_clear(err);
    int rc = parse(g, err);
    if (rc) {
        mc_gguf_close(g);
        *out = NULL;
        return rc;
    }
    *out = g;
    return 0;
}

int mc_gguf_open_mem(const void *data, size_t size, mc_gguf **out, mc_err *err) {
    *out = NULL;
    mc_gguf *g = calloc(1, sizeof *g);
    if (!g)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    g->base = data;
    g->size = size;
    return open_common(g, out, err);
}

int mc_gguf_open(const char *path, mc_gguf **out, mc_err *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mc_err_set(err, MC_EIO, -1, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return mc_err_set(err, MC_EIO, -1, "%s is not a regular file", path);
    }
    if (st.st_size < 24) {
        close(fd);
        return mc_err_set(err, MC_EFORMAT, 0, "%s: %lld bytes is too short for a GGUF header",
                          path, (long long)st.st_size);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return mc_err_set(err, MC_EIO, -1, "cannot map %s: %s", path, strerror(errno));
    mc_gguf *g = calloc(1, sizeof *g);
    if (!g) {
        munmap(p, (size_t)st.st_size);
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    }
    g->base = p;
    g->size = (size_t)st.st_size;
    g->mapped = 1;
    return open_common(g, out, err);
}

void mc_gguf_close(mc_gguf *g) {
    if (!g)
        return;
    for (int64_t i = 0; i < g->n_kv; i++)
        free(g->kv[i].str_offs);
    free(g->kv);
    free(g->tensors);
    free(g->kv_index);
    free(g->t_index);
    if (g->mapped)
        munmap((void *)g->base, g->size);
    free(g);
}

uint32_t mc_gguf_version(const mc_gguf *g) { return g->version; }
uint32_t mc_gguf_alignment(const mc_gguf *g) { return g->alignment; }
size_t mc_gguf_data_offset(const mc_gguf *g) { return g->data_off; }
const void *mc_gguf_base(const mc_gguf *g) { return g->base; }
size_t mc_gguf_file_size(const mc_gguf *g) { return g->size; }
int64_t mc_gguf_n_kv(const mc_gguf *g) { return g->n_kv; }
int64_t mc_gguf_n_tensors(const mc_gguf *g) { return g->n_tensors; }

int64_t mc_gguf_find_key(const mc_gguf *g, const char *key) {
    return index_find(g->kv_index, g->kv_cap, key, strlen(key), kv_name, g);
}

mc_str mc_gguf_key(const mc_gguf *g, int64_t i) {
    mc_str none = {"", 0};
    return (i >= 0 && i < g->n_kv) ? g->kv[i].key : none;
}

int mc_gguf_kv_type(const mc_gguf *g, int64_t i) {
    return (i >= 0 && i < g->n_kv) ? g->kv[i].type : -1;
}

int mc_gguf_arr_type(const mc_gguf *g, int64_t i) {
    return (i >= 0 && i < g->n_kv) ? g->kv[i].arr_type : MC_GGUF_TYPE_COUNT;
}

uint64_t mc_gguf_arr_n(const mc_gguf *g, int64_t i) {
    return (i >= 0 && i < g->n_kv && g->kv[i].type == MC_GGUF_ARRAY) ? g->kv[i].arr_n : 0;
}

const void *mc_gguf_arr_data(const mc_gguf *g, int64_t i) {
    if (i < 0 || i >= g->n_kv || g->kv[i].type != MC_GGUF_ARRAY ||
        g->kv[i].arr_type == MC_GGUF_STRING)
        return NULL;
    return g->kv[i].val;
}

mc_str mc_gguf_arr_str(const mc_gguf *g, int64_t i, uint64_t j) {
    mc_str s = {"", 0};
    if (i < 0 || i >= g->n_kv)
        return s;
    const struct kv *kv = &g->kv[i];
    if (kv->type != MC_GGUF_ARRAY || kv->arr_type != MC_GGUF_STRING || j >= kv->arr_n)
        return s;
    const uint8_t *p = kv->val + kv->str_offs[j];
    uint64_t len;
    memcpy(&len, p, 8);
    s.ptr = (const char *)p + 8;
    s.len = (size_t)len;
    return s;
}

/* Read an integer-typed scalar as int64 (u64 above INT64_MAX fails). */
static int kv_int(const struct kv *kv, int64_t *out, int *is_big_u64, uint64_t *big) {
    *is_big_u64 = 0;
    switch (kv->type) {
    case MC_GGUF_U8:
    case MC_GGUF_BOOL:
        *out = kv->val[0];
        return 0;
    case MC_GGUF_I8:
        *out = (int8_t)kv->val[0];
        return 0;
    case MC_GGUF_U16: {
        uint16_t v;
        memcpy(&v, kv->val, 2);
        *out = v;
        return 0;
    }
    case MC_GGUF_I16: {
        int16_t v;
        memcpy(&v, kv->val, 2);
        *out = v;
        return 0;
    }
    case MC_GGUF_U32: {
        uint32_t v;
        memcpy(&v, kv->val, 4);
        *out = v;
        return 0;
    }
    case MC_GGUF_I32: {
        int32_t v;
        memcpy(&v, kv->val, 4);
        *out = v;
        return 0;
    }
    case MC_GGUF_U64: {
        uint64_t v;
        memcpy(&v, kv->val, 8);
        if (v > (uint64_t)INT64_MAX) {
            *is_big_u64 = 1;
            *big = v;
            return 0;
        }
        *out = (int64_t)v;
        return 0;
    }
    case MC_GGUF_I64: {
        int64_t v;
        memcpy(&v, kv->val, 8);
        *out = v;
        return 0;
    }
    }
    return MC_ETYPE;
}

static const struct kv *find_kv(const mc_gguf *g, const char *key) {
    int64_t i = mc_gguf_find_key(g, key);
    return i < 0 ? NULL : &g->kv[i];
}

int mc_gguf_get_u64(const mc_gguf *g, const char *key, uint64_t *out) {
    const struct kv *kv = find_kv(g, key);
    if (!kv)
        return MC_ENOTFOUND;
    int64_t v;
    int big;
    uint64_t bigv;
    if (kv_int(kv, &v, &big, &bigv))
        return MC_ETYPE;
    if (big) {
        *out = bigv;
        return 0;
    }
    if (v < 0)
        return MC_ERANGE;
    *out = (uint64_t)v;
    return 0;
}

int mc_gguf_get_u32(const mc_gguf *g, const char *key, uint32_t *out) {
    uint64_t v;
    int rc = mc_gguf_get_u64(g, key, &v);
    if (rc)
        return rc;
    if (v > UINT32_MAX)
        return MC_ERANGE;
    *out = (uint32_t)v;
    return 0;
}

int mc_gguf_get_i32(const mc_gguf *g, const char *key, int32_t *out) {
    const struct kv *kv = find_kv(g, key);
    if (!kv)
        return MC_ENOTFOUND;
    int64_t v;
    int big;
    uint64_t bigv;
    if (kv_int(kv, &v, &big, &bigv))
        return MC_ETYPE;
    if (big || v < INT32_MIN || v > INT32_MAX)
        return MC_ERANGE;
    *out = (int32_t)v;
    return 0;
}

int mc_gguf_get_f32(const mc_gguf *g, const char *key, float *out) {
    const struct kv *kv = find_kv(g, key);
    if (!kv)
        return MC_ENOTFOUND;
    if (kv->type == MC_GGUF_F32) {
        memcpy(out, kv->val, 4);
        return 0;
    }
    if (kv->type == MC_GGUF_F64) {
        double d;
        memcpy(&d, kv->val, 8);
        *out = (float)d;
        return 0;
    }
    int64_t v;
    int big;
    uint64_t bigv;
    if (kv->type == MC_GGUF_BOOL || kv_int(kv, &v, &big, &bigv))
        return MC_ETYPE;
    *out = big ? (float)bigv : (float)v;
    return 0;
}

int mc_gguf_get_bool(const mc_gguf *g, const char *key, bool *out) {
    const struct kv *kv = find_kv(g, key);
    if (!kv)
        return MC_ENOTFOUND;
    if (kv->type != MC_GGUF_BOOL)
        return MC_ETYPE;
    *out = kv->val[0] != 0;
    return 0;
}

int mc_gguf_get_str(const mc_gguf *g, const char *key, mc_str *out) {
    const struct kv *kv = find_kv(g, key);
    if (!kv)
        return MC_ENOTFOUND;
    if (kv->type != MC_GGUF_STRING)
        return MC_ETYPE;
    uint64_t len;
    memcpy(&len, kv->val, 8);
    out->ptr = (const char *)kv->val + 8;
    out->len = (size_t)len;
    return 0;
}

/* Format one scalar element at p of gguf type t. */
static int fmt_scalar(int t, const uint8_t *p, char *buf, size_t cap) {
    switch (t) {
    case MC_GGUF_U8:
        return snprintf(buf, cap, "%u", p[0]);
    case MC_GGUF_I8:
        return snprintf(buf, cap, "%d", (int8_t)p[0]);
    case MC_GGUF_BOOL:
        return snprintf(buf, cap, "%s", p[0] ? "true" : "false");
    case MC_GGUF_U16: {
        uint16_t v;
        memcpy(&v, p, 2);
        return snprintf(buf, cap, "%u", v);
    }
    case MC_GGUF_I16: {
        int16_t v;
        memcpy(&v, p, 2);
        return snprintf(buf, cap, "%d", v);
    }
    case MC_GGUF_U32: {
        uint32_t v;
        memcpy(&v, p, 4);
        return snprintf(buf, cap, "%u", v);
    }
    case MC_GGUF_I32: {
        int32_t v;
        memcpy(&v, p, 4);
        return snprintf(buf, cap, "%d", v);
    }
    case MC_GGUF_F32: {
        float v;
        memcpy(&v, p, 4);
        return snprintf(buf, cap, "%g", (double)v);
    }
    case MC_GGUF_U64: {
        uint64_t v;
        memcpy(&v, p, 8);
        return snprintf(buf, cap, "%llu", (unsigned long long)v);
    }
    case MC_GGUF_I64: {
        int64_t v;
        memcpy(&v, p, 8);
        return snprintf(buf, cap, "%lld", (long long)v);
    }
    case MC_GGUF_F64: {
        double v;
        memcpy(&v, p, 8);
        return snprintf(buf, cap, "%g", v);
    }
    }
    return snprintf(buf, cap, "?");
}

/* Append a string value, quoted, control characters escaped, cut at 60 bytes. */
static size_t fmt_str(mc_str s, char *buf, size_t cap) {
    size_t o = 0;
    if (cap < 8)
        return 0;
    buf[o++] = '"';
    for (size_t i = 0; i < s.len && o + 6 < cap; i++) {
        unsigned char ch = (unsigned char)s.ptr[i];
        if (i >= 60) {
            o += (size_t)snprintf(buf + o, cap - o, "...");
            break;
        }
        if (ch < 0x20 || ch == '"' || ch == '\\')
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", ch);
        else
            buf[o++] = (char)ch;
    }
    if (o + 1 < cap)
        buf[o++] = '"';
    buf[o < cap ? o : cap - 1] = '\0';
    return o;
}

int mc_gguf_kv_format(const mc_gguf *g, int64_t i, char *buf, size_t cap) {
    if (i < 0 || i >= g->n_kv || cap == 0)
        return MC_EINVAL;
    const struct kv *kv = &g->kv[i];
    buf[0] = '\0';
    if (kv->type == MC_GGUF_STRING) {
        mc_str s;
        uint64_t len;
        memcpy(&len, kv->val, 8);
        s.ptr = (const char *)kv->val + 8;
        s.len = (size_t)len;
        fmt_str(s, buf, cap);
    } else if (kv->type == MC_GGUF_ARRAY) {
        size_t o = (size_t)snprintf(buf, cap, "[%s x %llu]", mc_gguf_type_name(kv->arr_type),
                                    (unsigned long long)kv->arr_n);
        for (uint64_t j = 0; j < kv->arr_n && j < 4 && o + 16 < cap; j++) {
            o += (size_t)snprintf(buf + o, cap - o, j ? ", " : " ");
            if (kv->arr_type == MC_GGUF_STRING)
                o += fmt_str(mc_gguf_arr_str(g, i, j), buf + o, cap - o);
            else {
                int w = fmt_scalar(kv->arr_type, kv->val + j * scalar_size(kv->arr_type), buf + o,
                                   cap - o);
                o += (size_t)MC_MAX(w, 0);
            }
            if (o >= cap)
                o = cap - 1;
        }
        if (kv->arr_n > 4 && o + 5 < cap)
            snprintf(buf + o, cap - o, ", ...");
    } else {
        fmt_scalar(kv->type, kv->val, buf, cap);
    }
    return 0;
}

const mc_gguf_tensor *mc_gguf_tensor_at(const mc_gguf *g, int64_t i) {
    return (i >= 0 && i < g->n_tensors) ? &g->tensors[i] : NULL;
}

const mc_gguf_tensor *mc_gguf_find_tensor(const mc_gguf *g, const char *name) {
    int64_t i = index_find(g->t_index, g->t_cap, name, strlen(name), t_name, g);
    return i < 0 ? NULL : &g->tensors[i];
}

/* Raw value bytes for the writer's copy (internal, declared in gguf_write.c). */
int mc__gguf_kv_raw(const mc_gguf *g, int64_t i, const uint8_t **val, size_t *len);
int mc__gguf_kv_raw(const mc_gguf *g, int64_t i, const uint8_t **val, size_t *len) {
    if (i < 0 || i >= g->n_kv)
        return MC_EINVAL;
    const struct kv *kv = &g->kv[i];
    if (kv->type == MC_GGUF_ARRAY) {
        /* the stored value starts 12 bytes before the first element */
        *val = kv->val - 12;
    } else {
        *val = kv->val;
    }
    *len = kv->val_len;
    return 0;
}
