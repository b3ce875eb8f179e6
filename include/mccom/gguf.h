/* mccom/gguf.h — GGUF v3 model files: a checked reader over mmap, and a writer.
 *
 * File format (little-endian throughout; versions 2 and 3 read, 3 written):
 *
 *   offset  size  field
 *   0       4     magic "GGUF" (0x46554747 as a u32)
 *   4       4     u32 version
 *   8       8     u64 n_tensors
 *   16      8     u64 n_kv
 *   24      ...   n_kv key/value pairs:
 *                   string key; u32 value_type; value
 *                 n_tensors tensor infos:
 *                   string name; u32 n_dims (1..4); u64 ne[n_dims]; u32 ggml_type;
 *                   u64 offset (relative to the data section, a multiple of alignment)
 *                 padding to `alignment` (key general.alignment, u32, default 32)
 *                 data section: tensors at their offsets
 *   string = u64 length, then that many bytes (UTF-8, not NUL-terminated)
 *   value  = by value_type: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool (1 byte,
 *            0 or 1), 8 string, 9 array (u32 elem_type; u64 n; n values; no nested
 *            arrays of arrays: rejected with MC_EUNSUPPORTED, as llama.cpp does),
 *            10 u64, 11 i64, 12 f64
 *   ne[0] is the contiguous dimension (a row); a tensor's byte size is
 *   ne[1]*ne[2]*ne[3] * row_size(type, ne[0]), and ne[0] must be a multiple of the
 *   type's block size.
 *
 * The reader checks every length, count, type, offset and alignment against
 * the bytes present before anything is used; a bad file gets MC_EFORMAT (or
 * MC_EUNSUPPORTED for a valid but unknown tensor type) with the field name
 * and byte offset in the error record, never a crash. Strings and tensor data
 * are returned as pointers into the mapping: they live as long as the
 * mc_gguf. Keys are looked up by a hash index built at open.
 */
#ifndef MCCOM_GGUF_H
#define MCCOM_GGUF_H

#include "mccom/common.h"

#include <stdbool.h>

#define MC_GGUF_MAGIC 0x46554747u /* "GGUF" */
#define MC_GGUF_VERSION 3
#define MC_GGUF_DEFAULT_ALIGNMENT 32

enum mc_gguf_type {
    MC_GGUF_U8 = 0,
    MC_GGUF_I8 = 1,
    MC_GGUF_U16 = 2,
    MC_GGUF_I16 = 3,
    MC_GGUF_U32 = 4,
    MC_GGUF_I32 = 5,
    MC_GGUF_F32 = 6,
    MC_GGUF_BOOL = 7,
    MC_GGUF_STRING = 8,
    MC_GGUF_ARRAY = 9,
    MC_GGUF_U64 = 10,
    MC_GGUF_I64 = 11,
    MC_GGUF_F64 = 12,
    MC_GGUF_TYPE_COUNT
};

/* Tensor element types: ggml's ids. mccom computes with the first five;
 * the reader knows the sizes of the others so it can list and check any file. */
enum mc_ggml_type {
    MC_TYPE_F32 = 0,
    MC_TYPE_F16 = 1,
    MC_TYPE_Q4_0 = 2,
    MC_TYPE_Q4_1 = 3,
    MC_TYPE_Q5_0 = 6,
    MC_TYPE_Q5_1 = 7,
    MC_TYPE_Q8_0 = 8,
    MC_TYPE_Q8_1 = 9,
    MC_TYPE_Q2_K = 10,
    MC_TYPE_Q3_K = 11,
    MC_TYPE_Q4_K = 12,
    MC_TYPE_Q5_K = 13,
    MC_TYPE_Q6_K = 14,
    MC_TYPE_Q8_K = 15,
    MC_TYPE_I8 = 24,
    MC_TYPE_I16 = 25,
    MC_TYPE_I32 = 26,
    MC_TYPE_I64 = 27,
    MC_TYPE_F64 = 28,
    MC_TYPE_BF16 = 30,
    MC_TYPE_COUNT = 40
};

/* Block size (elements) and block bytes of a ggml type; 0 for unknown ids. */
int mc_ggml_type_block(int type);
size_t mc_ggml_type_block_bytes(int type);
const char *mc_ggml_type_name(int type); /* "f32", "q8_0", ...; "?" if unknown */
int mc_ggml_type_from_name(const char *name); /* -1 if unknown */
/* Bytes of a row of n elements; 0 if n is not a multiple of the block size. */
size_t mc_ggml_row_size(int type, int64_t n);
const char *mc_gguf_type_name(int gguf_type); /* "u32", "string", ... */

typedef struct mc_gguf mc_gguf;

typedef struct mc_gguf_tensor {
    mc_str name;
    int type;        /* enum mc_ggml_type */
    int n_dims;      /* 1..4 */
    int64_t ne[4];   /* unused dims are 1 */
    uint64_t offset; /* from the start of the data section */
    size_t size;     /* bytes */
    const void *data; /* inside the mapping */
} mc_gguf_tensor;

/* Open and check a file (read-only mmap). On failure returns a negative code,
 * *out is NULL and err says what and where. */
int mc_gguf_open(const char *path, mc_gguf **out, mc_err *err);
/* Same over bytes in memory; the caller keeps `data` alive and unchanged
 * while the mc_gguf lives (used by tests and the fuzz target). */
int mc_gguf_open_mem(const void *data, size_t size, mc_gguf **out, mc_err *err);
/* Unmap and free. NULL is a no-op. */
void mc_gguf_close(mc_gguf *g);

uint32_t mc_gguf_version(const mc_gguf *g);
uint32_t mc_gguf_alignment(const mc_gguf *g);
size_t mc_gguf_data_offset(const mc_gguf *g); /* file offset of the data section */
const void *mc_gguf_base(const mc_gguf *g);   /* start of the mapped file */
size_t mc_gguf_file_size(const mc_gguf *g);

/* Key/value pairs, in file order. */
int64_t mc_gguf_n_kv(const mc_gguf *g);
int64_t mc_gguf_find_key(const mc_gguf *g, const char *key); /* index or -1 */
mc_str mc_gguf_key(const mc_gguf *g, int64_t i);
int mc_gguf_kv_type(const mc_gguf *g, int64_t i); /* enum mc_gguf_type */
/* For arrays: element type and count (0 / MC_GGUF_TYPE_COUNT for non-arrays). */
int mc_gguf_arr_type(const mc_gguf *g, int64_t i);
uint64_t mc_gguf_arr_n(const mc_gguf *g, int64_t i);
/* Numeric array elements: pointer to the n packed little-endian values
 * (unaligned: read with memcpy), NULL for string arrays. */
const void *mc_gguf_arr_data(const mc_gguf *g, int64_t i);
/* Element j of a string array (index built at open: O(1)). */
mc_str mc_gguf_arr_str(const mc_gguf *g, int64_t i, uint64_t j);

/* Typed getters by key. Integer getters accept any integer or bool value
 * that fits the requested type (else MC_ERANGE/MC_ETYPE); f32 accepts f32 or
 * f64 or an integer. Return 0, MC_ENOTFOUND (out untouched) or MC_ETYPE. */
int mc_gguf_get_u32(const mc_gguf *g, const char *key, uint32_t *out);
int mc_gguf_get_i32(const mc_gguf *g, const char *key, int32_t *out);
int mc_gguf_get_u64(const mc_gguf *g, const char *key, uint64_t *out);
int mc_gguf_get_f32(const mc_gguf *g, const char *key, float *out);
int mc_gguf_get_bool(const mc_gguf *g, const char *key, bool *out);
int mc_gguf_get_str(const mc_gguf *g, const char *key, mc_str *out);
/* Scalar value at index i as text (for `mccom info`), arrays summarised. */
int mc_gguf_kv_format(const mc_gguf *g, int64_t i, char *buf, size_t cap);

/* Tensors, in file order. */
int64_t mc_gguf_n_tensors(const mc_gguf *g);
const mc_gguf_tensor *mc_gguf_tensor_at(const mc_gguf *g, int64_t i);
const mc_gguf_tensor *mc_gguf_find_tensor(const mc_gguf *g, const char *name);

/* ---- writer -------------------------------------------------------------
 * Collects key/values and tensors, then writes the file in one go by
 * mc_file_replace's protocol (file.h: a unique temp file beside PATH, fsync,
 * rename, directory fsync; mode 0644 minus the umask): a crash leaves the old
 * PATH or the new one, never a half file, and concurrent writers never share a
 * temp file. Keys are written in the order first set; setting a key
 * again replaces its value. Tensor data is borrowed: the pointer passed to
 * add_tensor must stay valid until mc_gguf_writer_write returns. */
typedef struct mc_gguf_writer mc_gguf_writer;

mc_gguf_writer *mc_gguf_writer_new(void);
void mc_gguf_writer_free(mc_gguf_writer *w);

int mc_gguf_set_u8(mc_gguf_writer *w, const char *key, uint8_t v);
int mc_gguf_set_u32(mc_gguf_writer *w, const char *key, uint32_t v);
int mc_gguf_set_i32(mc_gguf_writer *w, const char *key, int32_t v);
int mc_gguf_set_u64(mc_gguf_writer *w, const char *key, uint64_t v);
int mc_gguf_set_f32(mc_gguf_writer *w, const char *key, float v);
int mc_gguf_set_bool(mc_gguf_writer *w, const char *key, bool v);
int mc_gguf_set_str(mc_gguf_writer *w, const char *key, const char *v);
int mc_gguf_set_strn(mc_gguf_writer *w, const char *key, const char *v, size_t len);
/* Array of n numeric values of gguf type elem_type, copied. */
int mc_gguf_set_arr(mc_gguf_writer *w, const char *key, int elem_type, const void *data,
                    uint64_t n);
/* Array of n strings (lens may be NULL for NUL-terminated strs), copied. */
int mc_gguf_set_arr_str(mc_gguf_writer *w, const char *key, const char *const *strs,
                        const size_t *lens, uint64_t n);
/* Copy every key/value of an open file (except general.alignment). */
int mc_gguf_copy_kv(mc_gguf_writer *w, const mc_gguf *g);

/* Add a tensor of ggml type `type` with n_dims dims ne[0..n_dims-1]; `data`
 * holds exactly mc_ggml_row_size(type, ne[0]) * ne[1]*ne[2]*ne[3] bytes. */
int mc_gguf_add_tensor(mc_gguf_writer *w, const char *name, int type, int n_dims,
                       const int64_t *ne, const void *data, size_t nbytes);

int mc_gguf_writer_write(mc_gguf_writer *w, const char *path, mc_err *err);

#endif
