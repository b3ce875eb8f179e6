/* Fuzz target: the safetensors reader over arbitrary bytes, then every tensor's
 * fields and the first and last byte of its data. */
#include "fuzz.h"
#include "mccom/convert.h"

#include <stdlib.h>
#include <string.h>

static int fuzz_safetensors(const uint8_t *data, size_t size) {
    /* a private copy of exactly `size` bytes so any overread is caught */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    mc_safetensors *st = NULL;
    mc_err err;
    if (mc_safetensors_open_mem(copy, size, &st, &err) == 0) {
        for (int64_t i = 0; i < mc_safetensors_n_tensors(st); i++) {
            const mc_st_tensor *t = mc_safetensors_tensor_at(st, i);
            if (mc_safetensors_find(st, t->name) != t)
                abort();
            int64_t n = 1;
            for (int d = 0; d < t->n_dims; d++)
                n *= t->shape[d];
            if (n != t->n_elem || (size_t)n * (size_t)t->elem_size != t->size)
                abort();
            if (t->size) {
                volatile uint8_t first = ((const uint8_t *)t->data)[0];
                volatile uint8_t last = ((const uint8_t *)t->data)[t->size - 1];
                (void)first;
                (void)last;
            }
        }
        mc_safetensors_close(st);
    }
    free(copy);
    return 0;
}

MC_FUZZ_TARGET(safetensors, fuzz_safetensors)
