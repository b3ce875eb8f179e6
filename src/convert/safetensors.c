/* safetensors reader: one file, bytes in memory, or a sharded model directory.
 *
 * Everything is checked at open (format: include/mccom/convert.h): the header
 * length against the file, the JSON with jansson, every entry's dtype, shape
 * and data_offsets, sizes against shape x dtype with overflow checks, and that
 * the tensors tile the data section exactly. Error offsets point at the
 * tensor's name in the header (found by searching the raw header for its
 * quoted name; a name written with JSON escapes falls back to the header
 * start) or, for data problems, at the data itself.
 *
 * Deliberately not done: converting dtypes, or reading the __metadata__
 * values (they are only checked to be strings). Tensor data is never copied.
 */
#include "mccom/convert.h"
#include "mccom/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HEADER (100ull << 20) /* the reference implementation's limit */
#define MAX_FILES 4096

struct stfile {
    char *path;
    const uint8_t *base;
    size_t size;
    int mapped;
};

struct mc_safetensors {
    struct stfile *files;
    int n_files;
    mc_st_tensor *t; /* sorted by name */
    int64_t n, cap;
    uint64_t data_bytes;
};

static const struct {
    const char *name;
    int size;
    int type;
} DTYPES[] = {
    {"F32", 4, MC_TYPE_F32}, {"F16", 2, MC_TYPE_F16}, {"BF16", 2, MC_TYPE_BF16},
    {"F64", 8, MC_TYPE_F64}, {"I64", 8, MC_TYPE_I64}, {"I32", 4, MC_TYPE_I32},
    {"I16", 2, MC_TYPE_I16}, {"I8", 1, MC_TYPE_I8},   {"U64", 8, -1},
    {"U32", 4, -1},          {"U16", 2, -1},          {"U8", 1, -1},
    {"BOOL", 1, -1},         {"F8_E4M3", 1, -1},      {"F8_E5M2", 1, -1},
};

/* Offset (from the file start) of the first `"name"` in the header, else 8. */
static int64_t name_offset(const uint8_t *hdr, size_t n, const char *name) {
    size_t ln = strlen(name);
    if (ln + 2 > n)
        return 8;
    for (size_t i = 0; i + ln + 2 <= n; i++)
        if (hdr[i] == '"' && hdr[i + ln + 1] == '"' && memcmp(hdr + i + 1, name, ln) == 0)
            return 8 + (int64_t)i;
    return 8;
}

static int add_tensor(mc_safetensors *st, const mc_st_tensor *t) {
    if (st->n == st->cap) {
        int64_t cap = st->cap ? 2 * st->cap : 64;
        mc_st_tensor *nt = realloc(st->t, (size_t)cap * sizeof *nt);
        if (!nt)
            return MC_ENOMEM;
        st->t = nt;
        st->cap = cap;
    }
    st->t[st->n++] = *t;
    return 0;
}

struct span {
    uint64_t begin, end;
    int64_t idx;
};

static int span_cmp(const void *a, const void *b) {
    const struct span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(((const mc_st_tensor *)a)->name, ((const mc_st_tensor *)b)->name);
}

/* A JSON integer >= 0 (jansson refuses integers beyond int64 at parse time). */
static int get_u64(const json_t *v, uint64_t *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

/* Parse file `fi` of st (already mapped or in memory) and append its tensors. */
static int parse_file(mc_safetensors *st, int fi, mc_err *err) {
    const struct stfile *f = &st->files[fi];
    const char *path = f->path;
    const uint8_t *p = f->base;
    size_t size = f->size;
    if (size < 8)
        return mc_err_set(err, MC_EFORMAT, 0,
                          "%s: %zu bytes, too short for the 8-byte header length", path, size);
    uint64_t hlen;
    memcpy(&hlen, p, 8);
    if (hlen > MAX_HEADER)
        return mc_err_set(err, MC_EFORMAT, 0,
                          "%s: header length %llu is over the 100 MiB limit (not a safetensors "
                          "file?)",
                          path, (unsigned long long)hlen);
    if (hlen > size - 8)
        return mc_err_set(err, MC_EFORMAT, 0,
                          "%s: header length %llu runs past the end of the file (%zu bytes)", path,
                          (unsigned long long)hlen, size);
    if (hlen < 2)
        return mc_err_set(err, MC_EFORMAT, 0,
                          "%s: header length %llu is too small for a JSON object", path,
                          (unsigned long long)hlen);
    const uint8_t *hdr = p + 8;
    if (hdr[0] != '{')
        return mc_err_set(err, MC_EFORMAT, 8, "%s: header does not start with '{'", path);
    json_error_t je;
    json_t *root = json_loadb((const char *)hdr, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return mc_err_set(err, MC_EFORMAT, 8 + (int64_t)je.position,
                          "%s: header is not valid JSON at byte %lld: %s", path,
                          (long long)(8 + je.position), je.text);
    int rc = 0;
    struct span *spans = NULL;
    if (!json_is_object(root)) {
        rc = mc_err_set(err, MC_EFORMAT, 8, "%s: header is not a JSON object", path);
        goto done;
    }
    const uint64_t data_off = 8 + hlen, data_size = size - data_off;
    size_t n_entries = json_object_size(root);
    spans = calloc(n_entries ? n_entries : 1, sizeof *spans);
    if (!spans) {
        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        goto done;
    }
    size_t n_spans = 0;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
/* where the entry's name is: computed only for a message */
#define KEY_OFF name_offset(hdr, (size_t)hlen, key)
        if (!strcmp(key, "__metadata__")) {
            if (!json_is_object(val)) {
                rc = mc_err_set(err, MC_EFORMAT, KEY_OFF,
                                "%s: __metadata__ (byte %lld) is not an object", path,
                                (long long)KEY_OFF);
                goto done;
            }
            const char *mk;
            json_t *mv;
            json_object_foreach(val, mk, mv) {
                if (!json_is_string(mv)) {
                    rc = mc_err_set(err, MC_EFORMAT, KEY_OFF,
                                    "%s: __metadata__.%s (near byte %lld) is not a string", path,
                                    mk, (long long)KEY_OFF);
                    goto done;
                }
            }
            continue;
        }
        mc_st_tensor t;
        memset(&t, 0, sizeof t);
        if (key[0] == 0) {
            rc = mc_err_set(err, MC_EFORMAT, KEY_OFF, "%s: a tensor has an empty name (byte %lld)",
                            path, (long long)KEY_OFF);
            goto done;
        }
        if (!json_is_object(val)) {
            rc = mc_err_set(err, MC_EFORMAT, KEY_OFF,
                            "%s: tensor '%s' (byte %lld): entry is not an object", path, key,
                            (long long)KEY_OFF);
            goto done;
        }
        json_t *jd = json_object_get(val, "dtype"), *js = json_object_get(val, "shape"),
               *jo = json_object_get(val, "data_offsets");
        if (!json_is_string(jd)) {
            rc = mc_err_set(err, MC_EFORMAT, KEY_OFF,
                            "%s: tensor '%s' (byte %lld): field dtype is missing or not a string",
                            path, key, (long long)KEY_OFF);
            goto done;
        }
        const char *ds = json_string_value(jd);
        for (size_t i = 0; i < MC_ARRAY_LEN(DTYPES); i++)
            if (!strcmp(ds, DTYPES[i].name)) {
                t.dtype = DTYPES[i].name;
                t.elem_size = DTYPES[i].size;
                t.type = DTYPES[i].type;
            }
        if (!t.dtype) {
            rc = mc_err_set(err, MC_EUNSUPPORTED, KEY_OFF,
                            "%s: tensor '%s' (byte %lld): field dtype '%.32s' is not a safetensors "
                            "dtype",
                            path, key, (long long)KEY_OFF, ds);
            goto done;
        }
        if (!json_is_array(js)) {
            rc = mc_err_set(err, MC_EFORMAT, KEY_OFF,
                            "%s: tensor '%s' (byte %lld): field shape is missing or not an array",
                            path, key, (long long)KEY_OFF);
            goto done;
        }
        if (json_array_size(js) > MC_ST_MAX_DIMS) {
            rc = mc_err_set(err, MC_EFORMAT, KEY_OFF,
                            "%s: tensor '%s' (byte %lld): field shape has %zu dimensions (at most "
                            "%d)",
                            path, key, (long long)KEY_OFF, json_array_size(js), MC_ST_MAX_DIMS);
            goto done;
        }
        t.n_dims = (int)json_array_size(js);
        uint64_t n_elem = 1;
        int overflow = 0;
        for (int d = 0; d < MC_ST_MAX_DIMS; d++)
            t.shape[d] = 1;
        for (int d = 0; d < t.n_dims; d++) {
            uint64_t v;
            if (get_u64(json_array_get(js, (size_t)d), &v) != 0) {
                rc = mc_err_set(err, MC_EFORMAT, KEY_OFF,
                                "%s: tensor '%s' (byte %lld): field shape[%d] is not a "
                                "non-negative integer",
                                path, key, (long long)KEY_OFF, d);
                goto done;
            }
            t.shape[d] = (int64_t)v;
            if (__builtin_mul_overflow(n_elem, v, &n_elem))
                overflow = 1;
        }
        uint64_t nbytes = 0;
        if (overflow || __builtin_mul_overflow(n_elem, (uint64_t)t.elem_size, &nbytes) ||
            nbytes > data_size) {
            rc = mc_err_set(err, MC_EFORMAT, KEY_OFF,
                            "%s: tensor '%s' (byte %lld): field shape needs more bytes than the "
                            "data section has (%llu)",
                            path, key, (long long)KEY_OFF, (unsigned long long)data_size);
            goto done;
        }
        uint64_t b, e;
        if (!json_is_array(jo) || json_array_size(jo) != 2 ||
            get_u64(json_array_get(jo, 0), &b) != 0 || get_u64(json_array_get(jo, 1), &e) != 0) {
            rc = mc_err_set(err, MC_EFORMAT, KEY_OFF,
                            "%s: tensor '%s' (byte %lld): field data_offsets is not [begin, end] "
                            "of two non-negative integers",
                            path, key, (long long)KEY_OFF);
            goto done;
        }
        if (b > e || e > data_size) {
            rc = mc_err_set(err, MC_EFORMAT, KEY_OFF,
                            "%s: tensor '%s' (byte %lld): field data_offsets [%llu, %llu] is "
                            "outside the data section [0, %llu]",
                            path, key, (long long)KEY_OFF, (unsigned long long)b,
                            (unsigned long long)e, (unsigned long long)data_size);
            goto done;
        }
        if (e - b != nbytes) {
            rc = mc_err_set(err, MC_EFORMAT, (int64_t)(data_off + b),
                            "%s: tensor '%s' (data at byte %llu): field data_offsets spans %llu "
                            "bytes, but shape x dtype %s is %llu bytes",
                            path, key, (unsigned long long)(data_off + b),
                            (unsigned long long)(e - b), t.dtype, (unsigned long long)nbytes);
            goto done;
        }
        t.n_elem = (int64_t)n_elem;
        t.size = (size_t)nbytes;
        t.file_offset = data_off + b;
        t.data = p + data_off + b;
        t.file = fi;
        t.name = strdup(key);
        if (!t.name || add_tensor(st, &t) != 0) {
            free((char *)t.name);
            rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
            goto done;
        }
#undef KEY_OFF
        spans[n_spans].begin = b;
        spans[n_spans].end = e;
        spans[n_spans].idx = st->n - 1;
        n_spans++;
    }
    /* the tensors must tile the data section: no overlap, no hole, nothing after */
    qsort(spans, n_spans, sizeof *spans, span_cmp);
    uint64_t at = 0;
    for (size_t i = 0; i < n_spans; i++) {
        const char *nm = st->t[spans[i].idx].name;
        if (spans[i].begin < at) {
            rc = mc_err_set(err, MC_EFORMAT, (int64_t)(data_off + spans[i].begin),
                            "%s: tensor '%s': field data_offsets [%llu, %llu] overlaps another "
                            "tensor (data at byte %llu)",
                            path, nm, (unsigned long long)spans[i].begin,
                            (unsigned long long)spans[i].end,
                            (unsigned long long)(data_off + spans[i].begin));
            goto done;
        }
        if (spans[i].begin > at) {
            rc = mc_err_set(err, MC_EFORMAT, (int64_t)(data_off + at),
                            "%s: tensor '%s': field data_offsets begins at %llu, leaving a hole of "
                            "%llu unindexed bytes at byte %llu",
                            path, nm, (unsigned long long)spans[i].begin,
                            (unsigned long long)(spans[i].begin - at),
                            (unsigned long long)(data_off + at));
            goto done;
        }
        at = spans[i].end;
    }
    if (at != data_size) {
        rc = mc_err_set(err, MC_EFORMAT, (int64_t)(data_off + at),
                        "%s: %llu bytes after the last tensor's data_offsets (byte %llu) are not "
                        "indexed by the header",
                        path, (unsigned long long)(data_size - at),
                        (unsigned long long)(data_off + at));
        goto done;
    }
    st->data_bytes += data_size;
done:
    free(spans);
    json_decref(root);
    return rc;
}

static int map_file(struct stfile *f, mc_err *err) {
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mc_err_set(err, errno == ENOENT ? MC_ENOTFOUND : MC_EIO, -1, "cannot open %s: %s",
                          f->path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return mc_err_set(err, MC_EIO, -1, "%s is not a regular file", f->path);
    }
    f->size = (size_t)sb.st_size;
    if (f->size == 0) {
        close(fd);
        f->base = (const uint8_t *)"";
        return 0; /* parse_file reports it as too short */
    }
    void *m = mmap(NULL, f->size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return mc_err_set(err, MC_EIO, -1, "cannot map %s: %s", f->path, strerror(errno));
    f->base = m;
    f->mapped = 1;
    return 0;
}

void mc_safetensors_close(mc_safetensors *st) {
    if (!st)
        return;
    for (int i = 0; i < st->n_files; i++) {
        if (st->files[i].mapped)
            munmap((void *)st->files[i].base, st->files[i].size);
        free(st->files[i].path);
    }
    for (int64_t i = 0; i < st->n; i++)
        free((char *)st->t[i].name);
    free(st->files);
    free(st->t);
    free(st);
}

static mc_safetensors *st_new(int n_files) {
    mc_safetensors *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->files = calloc((size_t)n_files, sizeof *st->files);
    if (!st->files) {
        free(st);
        return NULL;
    }
    return st;
}

/* Sort by name; a name in two files is an error. */
static int finish(mc_safetensors *st, mc_err *err) {
    if (st->n > 1)
        qsort(st->t, (size_t)st->n, sizeof *st->t, name_cmp);
    for (int64_t i = 1; i < st->n; i++)
        if (!strcmp(st->t[i].name, st->t[i - 1].name))
            return mc_err_set(err, MC_EFORMAT, -1, "tensor '%s' is in both %s and %s",
                              st->t[i].name, st->files[st->t[i - 1].file].path,
                              st->files[st->t[i].file].path);
    return 0;
}

int mc_safetensors_open_mem(const void *data, size_t size, mc_safetensors **out, mc_err *err) {
    *out = NULL;
    mc_err_clear(err);
    mc_safetensors *st = st_new(1);
    if (!st)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    st->n_files = 1;
    st->files[0].path = strdup("<memory>");
    st->files[0].base = data ? data : (const void *)"";
    st->files[0].size = data ? size : 0;
    int rc = st->files[0].path ? parse_file(st, 0, err)
                               : mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    if (rc == 0)
        rc = finish(st, err);
    if (rc) {
        mc_safetensors_close(st);
        return rc;
    }
    *out = st;
    return 0;
}

int mc_safetensors_open(const char *path, mc_safetensors **out, mc_err *err) {
    *out = NULL;
    mc_err_clear(err);
    mc_safetensors *st = st_new(1);
    if (!st)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    st->n_files = 1;
    st->files[0].path = strdup(path);
    int rc = st->files[0].path ? map_file(&st->files[0], err)
                               : mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    if (rc == 0)
        rc = parse_file(st, 0, err);
    if (rc == 0)
        rc = finish(st, err);
    if (rc) {
        mc_safetensors_close(st);
        return rc;
    }
    *out = st;
    return 0;
}

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s", dir, name);
    return s;
}

/* A shard's file name from the index: a plain name in the directory. */
static int safe_name(const char *s) {
    return s[0] && s[0] != '.' && !strchr(s, '/') && strlen(s) < 1024;
}

static int open_index(const char *dir, const char *index_path, mc_safetensors **out, mc_err *err) {
    json_error_t je;
    json_t *root = json_load_file(index_path, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return mc_err_set(err, MC_EFORMAT, (int64_t)je.position,
                          "%s: not valid JSON at byte %lld: %s", index_path, (long long)je.position,
                          je.text);
    int rc = 0;
    mc_safetensors *st = NULL;
    const char **names = NULL;
    json_t *wm = json_is_object(root) ? json_object_get(root, "weight_map") : NULL;
    if (!json_is_object(wm) || json_object_size(wm) == 0) {
        rc = mc_err_set(err, MC_EFORMAT, -1,
                        "%s: field weight_map is missing, empty or not an object", index_path);
        goto done;
    }
    /* the distinct files, in order of first mention */
    size_t n_map = json_object_size(wm);
    names = calloc(n_map, sizeof *names);
    if (!names) {
        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        goto done;
    }
    int n_files = 0;
    const char *key;
    json_t *val;
    json_object_foreach(wm, key, val) {
        if (!json_is_string(val) || !safe_name(json_string_value(val))) {
            rc = mc_err_set(err, MC_EFORMAT, -1,
                            "%s: field weight_map.%s is not a file name in the directory",
                            index_path, key);
            goto done;
        }
        const char *fn = json_string_value(val);
        int k = 0;
        while (k < n_files && strcmp(names[k], fn) != 0)
            k++;
        if (k == n_files) {
            if (n_files == MAX_FILES) {
                rc = mc_err_set(err, MC_EFORMAT, -1, "%s: more than %d files", index_path,
                                MAX_FILES);
                goto done;
            }
            names[n_files++] = fn;
        }
    }
    st = st_new(n_files);
    if (!st) {
        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        goto done;
    }
    for (int i = 0; i < n_files; i++) {
        st->files[i].path = join(dir, names[i]);
        st->n_files = i + 1;
        if (!st->files[i].path) {
            rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
            goto done;
        }
        if ((rc = map_file(&st->files[i], err)) != 0 || (rc = parse_file(st, i, err)) != 0)
            goto done;
    }
    if ((rc = finish(st, err)) != 0)
        goto done;
    /* the map and the files must agree exactly */
    json_object_foreach(wm, key, val) {
        const mc_st_tensor *t = mc_safetensors_find(st, key);
        if (!t) {
            rc = mc_err_set(err, MC_EFORMAT, -1, "%s: weight_map names tensor '%s', which %s lacks",
                            index_path, key, json_string_value(val));
            goto done;
        }
        const char *base = strrchr(st->files[t->file].path, '/');
        if (strcmp(base + 1, json_string_value(val)) != 0) {
            rc = mc_err_set(err, MC_EFORMAT, -1,
                            "%s: weight_map puts tensor '%s' in %s, but it is in %s", index_path,
                            key, json_string_value(val), base + 1);
            goto done;
        }
    }
    for (int64_t i = 0; i < st->n; i++)
        if (!json_object_get(wm, st->t[i].name)) {
            rc = mc_err_set(err, MC_EFORMAT, -1, "%s: tensor '%s' of %s is not in weight_map",
                            index_path, st->t[i].name, st->files[st->t[i].file].path);
            goto done;
        }
done:
    free(names);
    json_decref(root);
    if (rc) {
        mc_safetensors_close(st);
        return rc;
    }
    *out = st;
    return 0;
}

int mc_safetensors_open_dir(const char *dir, mc_safetensors **out, mc_err *err) {
    *out = NULL;
    mc_err_clear(err);
    char *index = join(dir, "model.safetensors.index.json");
    char *single = join(dir, "model.safetensors");
    int rc;
    if (!index || !single)
        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    else if (access(index, F_OK) == 0)
        rc = open_index(dir, index, out, err);
    else if (access(single, F_OK) == 0)
        rc = mc_safetensors_open(single, out, err);
    else
        rc = mc_err_set(err, MC_ENOTFOUND, -1,
                        "%s has neither model.safetensors nor model.safetensors.index.json", dir);
    free(index);
    free(single);
    return rc;
}

int64_t mc_safetensors_n_tensors(const mc_safetensors *st) { return st->n; }

const mc_st_tensor *mc_safetensors_tensor_at(const mc_safetensors *st, int64_t i) {
    return i >= 0 && i < st->n ? &st->t[i] : NULL;
}

const mc_st_tensor *mc_safetensors_find(const mc_safetensors *st, const char *name) {
    mc_st_tensor key;
    key.name = name;
    return st->n ? bsearch(&key, st->t, (size_t)st->n, sizeof *st->t, name_cmp) : NULL;
}

int mc_safetensors_n_files(const mc_safetensors *st) { return st->n_files; }

const char *mc_safetensors_file_name(const mc_safetensors *st, int file) {
    return file >= 0 && file < st->n_files ? st->files[file].path : "?";
}

uint64_t mc_safetensors_data_bytes(const mc_safetensors *st) { return st->data_bytes; }
