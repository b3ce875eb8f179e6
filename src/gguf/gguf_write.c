/* GGUF writer: collects key/values (serialised on set) and borrowed tensor
 * data, then writes the file sequentially: header, key/values, tensor infos,
 * padding, tensor data each padded to the alignment. The file is replaced
 * crash-safely (mc_file_tmp: a unique temp file, fsync, rename; file.h). */
#include "mccom/gguf.h"

#include "mccom/file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mc__gguf_kv_raw(const mc_gguf *g, int64_t i, const uint8_t **val, size_t *len);

struct wkv {
    char *key;
    int type;
    uint8_t *val; /* serialised value, as it appears after the type field */
    size_t len;
};

struct wtensor {
    char *name;
    int type;
    int n_dims;
    int64_t ne[4];
    const void *data;
    size_t nbytes;
};

struct mc_gguf_writer {
    struct wkv *kv;
    size_t n_kv, cap_kv;
    struct wtensor *t;
    size_t n_t, cap_t;
    uint32_t alignment;
};

mc_gguf_writer *mc_gguf_writer_new(void) {
    mc_gguf_writer *w = calloc(1, sizeof *w);
    if (w)
        w->alignment = MC_GGUF_DEFAULT_ALIGNMENT;
    return w;
}

void mc_gguf_writer_free(mc_gguf_writer *w) {
    if (!w)
        return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val);
    }
    for (size_t i = 0; i < w->n_t; i++)
        free(w->t[i].name);
    free(w->kv);
    free(w->t);
    free(w);
}

/* Store (key, type, value bytes); takes ownership of val. */
static int put(mc_gguf_writer *w, const char *key, int type, uint8_t *val, size_t len) {
    if (!w || !key || !val) {
        free(val);
        return MC_EINVAL;
    }
    for (size_t i = 0; i < w->n_kv; i++) {
        if (!strcmp(w->kv[i].key, key)) {
            free(w->kv[i].val);
            w->kv[i].type = type;
            w->kv[i].val = val;
            w->kv[i].len = len;
            return 0;
        }
    }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? 2 * w->cap_kv : 32;
        struct wkv *kv = realloc(w->kv, cap * sizeof *kv);
        if (!kv) {
            free(val);
            return MC_ENOMEM;
        }
        w->kv = kv;
        w->cap_kv = cap;
    }
    char *k = strdup(key);
    if (!k) {
        free(val);
        return MC_ENOMEM;
    }
    w->kv[w->n_kv++] = (struct wkv){k, type, val, len};
    return 0;
}

static int put_scalar(mc_gguf_writer *w, const char *key, int type, const void *v, size_t n) {
    uint8_t *val = malloc(n);
    if (!val)
        return MC_ENOMEM;
    memcpy(val, v, n);
    return put(w, key, type, val, n);
}

int mc_gguf_set_u8(mc_gguf_writer *w, const char *key, uint8_t v) {
    return put_scalar(w, key, MC_GGUF_U8, &v, 1);
}
int mc_gguf_set_u32(mc_gguf_writer *w, const char *key, uint32_t v) {
    if (key && !strcmp(key, "general.alignment")) {
        if (v == 0 || (v & (v - 1)))
            return MC_EINVAL;
        w->alignment = v;
    }
    return put_scalar(w, key, MC_GGUF_U32, &v, 4);
}
int mc_gguf_set_i32(mc_gguf_writer *w, const char *key, int32_t v) {
    return put_scalar(w, key, MC_GGUF_I32, &v, 4);
}
int mc_gguf_set_u64(mc_gguf_writer *w, const char *key, uint64_t v) {
    return put_scalar(w, key, MC_GGUF_U64, &v, 8);
}
int mc_gguf_set_f32(mc_gguf_writer *w, const char *key, float v) {
    return put_scalar(w, key, MC_GGUF_F32, &v, 4);
}
int mc_gguf_set_bool(mc_gguf_writer *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0;
    return put_scalar(w, key, MC_GGUF_BOOL, &b, 1);
}

int mc_gguf_set_strn(mc_gguf_writer *w, const char *key, const char *v, size_t len) {
    uint8_t *val = malloc(8 + len);
    if (!val)
        return MC_ENOMEM;
    uint64_t n = len;
    memcpy(val, &n, 8);
    memcpy(val + 8, v, len);
    return put(w, key, MC_GGUF_STRING, val, 8 + len);
}

int mc_gguf_set_str(mc_gguf_writer *w, const char *key, const char *v) {
    return mc_gguf_set_strn(w, key, v, strlen(v));
}

static size_t elem_size(int t) {
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

int mc_gguf_set_arr(mc_gguf_writer *w, const char *key, int elem_type, const void *data,
                    uint64_t n) {
    size_t es = elem_size(elem_type);
    if (es == 0 || (n && !data) || n > (SIZE_MAX - 12) / es)
        return MC_EINVAL;
    uint8_t *val = malloc(12 + (size_t)n * es);
    if (!val)
        return MC_ENOMEM;
    uint32_t et = (uint32_t)elem_type;
    memcpy(val, &et, 4);
    memcpy(val + 4, &n, 8);
    if (n)
        memcpy(val + 12, data, (size_t)n * es);
    return put(w, key, MC_GGUF_ARRAY, val, 12 + (size_t)n * es);
}

int mc_gguf_set_arr_str(mc_gguf_writer *w, const char *key, const char *const *strs,
                        const size_t *lens, uint64_t n) {
    size_t total = 12;
    for (uint64_t i = 0; i < n; i++)
        total += 8 + (lens ? lens[i] : strlen(strs[i]));
    uint8_t *val = malloc(total);
    if (!val)
        return MC_ENOMEM;
    uint32_t et = MC_GGUF_STRING;
    memcpy(val, &et, 4);
    memcpy(val + 4, &n, 8);
    size_t o = 12;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len = lens ? lens[i] : strlen(strs[i]);
        memcpy(val + o, &len, 8);
        memcpy(val + o + 8, strs[i], (size_t)len);
        o += 8 + (size_t)len;
    }
    return put(w, key, MC_GGUF_ARRAY, val, total);
}

int mc_gguf_copy_kv(mc_gguf_writer *w, const mc_gguf *g) {
    for (int64_t i = 0; i < mc_gguf_n_kv(g); i++) {
        mc_str k = mc_gguf_key(g, i);
        if (k.len == 17 && !memcmp(k.ptr, "general.alignment", 17))
            continue;
        const uint8_t *raw;
        size_t len;
        int rc = mc__gguf_kv_raw(g, i, &raw, &len);
        if (rc)
            return rc;
        char *key = strndup(k.ptr, k.len);
        uint8_t *val = malloc(len ? len : 1);
        if (!key || !val) {
            free(key);
            free(val);
            return MC_ENOMEM;
        }
        memcpy(val, raw, len);
        rc = put(w, key, mc_gguf_kv_type(g, i), val, len);
        free(key);
        if (rc)
            return rc;
    }
    return 0;
}

int mc_gguf_add_tensor(mc_gguf_writer *w, const char *name, int type, int n_dims,
                       const int64_t *ne, const void *data, size_t nbytes) {
    if (!w || !name || n_dims < 1 || n_dims > 4 || mc_ggml_type_block(type) == 0)
        return MC_EINVAL;
    int64_t dims[4] = {1, 1, 1, 1};
    for (int d = 0; d < n_dims; d++) {
        if (ne[d] < 0)
            return MC_EINVAL;
        dims[d] = ne[d];
    }
    size_t row = mc_ggml_row_size(type, dims[0]);
    if (row == 0 && dims[0] != 0)
        return MC_EINVAL;
    if (row * (size_t)(dims[1] * dims[2] * dims[3]) != nbytes)
        return MC_EINVAL;
    for (size_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name))
            return MC_EINVAL;
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? 2 * w->cap_t : 64;
        struct wtensor *t = realloc(w->t, cap * sizeof *t);
        if (!t)
            return MC_ENOMEM;
        w->t = t;
        w->cap_t = cap;
    }
    char *nm = strdup(name);
    if (!nm)
        return MC_ENOMEM;
    struct wtensor *t = &w->t[w->n_t++];
    *t = (struct wtensor){nm, type, n_dims, {dims[0], dims[1], dims[2], dims[3]}, data, nbytes};
    return 0;
}

static size_t pad_to(size_t x, size_t a) { return (x + a - 1) / a * a; }

static int wr(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n ? 0 : -1; }

static int wr_str(FILE *f, const char *s) {
    uint64_t n = strlen(s);
    return wr(f, &n, 8) || wr(f, s, (size_t)n);
}

int mc_gguf_writer_write(mc_gguf_writer *w, const char *path, mc_err *err) {
    mc_err_clear(err);
    mc_file_tmp ft;
    int frc = mc_file_tmp_open(&ft, path, 0644, err);
    if (frc)
        return frc;
    FILE *f = ft.f;
    static const uint8_t zeros[256];
    int bad = 0;
    uint32_t magic = MC_GGUF_MAGIC, version = MC_GGUF_VERSION;
    uint64_t n_t = w->n_t, n_kv = w->n_kv;
    bad |= wr(f, &magic, 4) | wr(f, &version, 4) | wr(f, &n_t, 8) | wr(f, &n_kv, 8);
    size_t pos = 24;
    for (size_t i = 0; i < w->n_kv && !bad; i++) {
        uint32_t t = (uint32_t)w->kv[i].type;
        bad |= wr_str(f, w->kv[i].key) | wr(f, &t, 4) | wr(f, w->kv[i].val, w->kv[i].len);
        pos += 8 + strlen(w->kv[i].key) + 4 + w->kv[i].len;
    }
    size_t off = 0;
    for (size_t i = 0; i < w->n_t && !bad; i++) {
        struct wtensor *t = &w->t[i];
        uint32_t nd = (uint32_t)t->n_dims, ty = (uint32_t)t->type;
        uint64_t o = off;
        bad |= wr_str(f, t->name) | wr(f, &nd, 4);
        for (int d = 0; d < t->n_dims; d++) {
            uint64_t ne = (uint64_t)t->ne[d];
            bad |= wr(f, &ne, 8);
        }
        bad |= wr(f, &ty, 4) | wr(f, &o, 8);
        pos += 8 + strlen(t->name) + 4 + 8 * (size_t)t->n_dims + 4 + 8;
        off = pad_to(off + t->nbytes, w->alignment);
    }
    size_t data_start = pad_to(pos, w->alignment);
    while (pos < data_start && !bad) {
        size_t n = MC_MIN(data_start - pos, sizeof zeros);
        bad |= wr(f, zeros, n);
        pos += n;
    }
    off = 0;
    for (size_t i = 0; i < w->n_t && !bad; i++) {
        struct wtensor *t = &w->t[i];
        if (t->nbytes)
            bad |= wr(f, t->data, t->nbytes);
        size_t end = pad_to(off + t->nbytes, w->alignment);
        size_t padn = end - off - t->nbytes;
        while (padn > 0 && !bad) {
            size_t n = MC_MIN(padn, sizeof zeros);
            bad |= wr(f, zeros, n);
            padn -= n;
        }
        off = end;
    }
    if (bad) {
        int rc = mc_err_set(err, MC_EIO, -1, "writing %s failed: %s", path, strerror(errno));
        mc_file_tmp_abort(&ft);
        return rc;
    }
    return mc_file_tmp_commit(&ft, err);
}
