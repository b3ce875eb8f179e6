/* Fuzz target: the GGUF reader over arbitrary bytes, then every accessor. */
#include "fuzz.h"
#include "mccom/gguf.h"

#include <stdlib.h>
#include <string.h>

static int fuzz_gguf(const uint8_t *data, size_t size) {
    /* a private copy of exactly `size` bytes so any overread is caught */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    mc_gguf *g = NULL;
    mc_err err;
    if (mc_gguf_open_mem(copy, size, &g, &err) == 0) {
        char buf[512];
        for (int64_t i = 0; i < mc_gguf_n_kv(g); i++) {
            mc_gguf_kv_format(g, i, buf, sizeof buf);
            uint64_t n = mc_gguf_arr_n(g, i);
            for (uint64_t j = 0; j < n && j < 64; j++) {
                mc_str s = mc_gguf_arr_str(g, i, j);
                volatile char sink = s.len ? s.ptr[s.len - 1] : 0;
                (void)sink;
            }
        }
        uint32_t u;
        float f;
        mc_str s;
        mc_gguf_get_u32(g, "general.alignment", &u);
        mc_gguf_get_f32(g, "llama.rope.freq_base", &f);
        mc_gguf_get_str(g, "general.architecture", &s);
        for (int64_t i = 0; i < mc_gguf_n_tensors(g); i++) {
            const mc_gguf_tensor *t = mc_gguf_tensor_at(g, i);
            if (t->size) {
                volatile uint8_t first = ((const uint8_t *)t->data)[0];
                volatile uint8_t last = ((const uint8_t *)t->data)[t->size - 1];
                (void)first;
                (void)last;
            }
        }
        mc_gguf_close(g);
    }
    free(copy);
    return 0;
}

MC_FUZZ_TARGET(gguf, fuzz_gguf)
