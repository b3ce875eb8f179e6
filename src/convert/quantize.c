/* Re-quantize a GGUF model's weight matrices (see convert.h for the rules). */
#include "mccom/convert.h"
#include "mccom/gguf.h"
#include "mccom/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* llama.cpp's general.file_type values (enum llama_ftype). */
static int ftype_of(int type) {
    switch (type) {
    case MC_TYPE_F32:
        return 0;
    case MC_TYPE_F16:
        return 1;
    case MC_TYPE_Q4_0:
        return 2;
    case MC_TYPE_Q8_0:
        return 7;
    case MC_TYPE_BF16:
        return 32;
    }
    return -1;
}

static int is_name(mc_str s, const char *name) {
    return s.len == strlen(name) && !memcmp(s.ptr, name, s.len);
}

int mc_quantize_file(const char *in_path, const char *out_path, int type, mc_progress_fn progress,
                     void *ud, mc_err *err) {
    mc_err_clear(err);
    if (ftype_of(type) < 0)
        return mc_err_set(err, MC_EINVAL, -1, "cannot quantize to %s (q8_0, q4_0, f16, bf16, f32)",
                          mc_ggml_type_name(type));
    mc_gguf *g;
    int rc = mc_gguf_open(in_path, &g, err);
    if (rc)
        return rc;
    int64_t n = mc_gguf_n_tensors(g);
    void **bufs = calloc((size_t)(n ? n : 1), sizeof(void *));
    mc_gguf_writer *w = mc_gguf_writer_new();
    float *row = NULL;
    size_t row_cap = 0;
    if (!bufs || !w) {
        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        goto done;
    }
    if ((rc = mc_gguf_copy_kv(w, g)))
        goto done;
    mc_gguf_set_u32(w, "general.file_type", (uint32_t)ftype_of(type));
    int tied = mc_gguf_find_tensor(g, "output.weight") == NULL;
    for (int64_t i = 0; i < n; i++) {
        const mc_gguf_tensor *t = mc_gguf_tensor_at(g, i);
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)MC_MIN(t->name.len, 255), t->name.ptr);
        int dst = t->type;
        if (t->n_dims == 2 && mc_kernels_type_supported(t->type)) {
            dst = type;
            if (type == MC_TYPE_Q4_0 &&
                (is_name(t->name, "output.weight") || (tied && is_name(t->name, "token_embd.weight"))))
                dst = MC_TYPE_Q8_0;
            if (mc_kernels_row_size(dst, t->ne[0]) == 0)
                dst = t->type; /* row not a whole number of blocks: keep */
        }
        if (dst == t->type) {
            rc = mc_gguf_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data, t->size);
        } else {
            int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
            size_t src_row = mc_kernels_row_size(t->type, t->ne[0]);
            size_t dst_row = mc_kernels_row_size(dst, t->ne[0]);
            if ((size_t)t->ne[0] > row_cap) {
                free(row);
                row_cap = (size_t)t->ne[0];
                row = malloc(row_cap * sizeof(float));
            }
            bufs[i] = malloc(dst_row * (size_t)rows);
            if (!row || !bufs[i]) {
                rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory converting %s", name);
                goto done;
            }
            for (int64_t r = 0; r < rows; r++) {
                mc_dequantize_row(t->type, (const uint8_t *)t->data + (size_t)r * src_row, row,
                                  t->ne[0]);
                mc_quantize_row(dst, row, (uint8_t *)bufs[i] + (size_t)r * dst_row, t->ne[0]);
            }
            rc = mc_gguf_add_tensor(w, name, dst, t->n_dims, t->ne, bufs[i], dst_row * (size_t)rows);
        }
        if (rc) {
            mc_err_set(err, rc, -1, "cannot add tensor %s", name);
            goto done;
        }
        if (progress)
            progress(ud, i + 1, n, name);
    }
    rc = mc_gguf_writer_write(w, out_path, err);
done:
    mc_gguf_writer_free(w);
    if (bufs)
        for (int64_t i = 0; i < n; i++)
            free(bufs[i]);
    free(bufs);
    free(row);
    mc_gguf_close(g);
    return rc;
}
