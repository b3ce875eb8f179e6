/* fuzz/fuzz_copy.c — fuzz target for the copy index loader (untrusted bytes
 * from disk). The checksum is skipped so that mutations reach the parser. A
 * loaded index is then synced with its (empty-but-one-file) retrieval index,
 * which removes or re-derives every loaded file: the K1/K2 lists rebuilt from
 * the bytes must be consistent enough to be taken apart again. */
#include "../src/copy/copy_internal.h"
#include "fuzz.h"

#include <string.h>

static int fuzz_copy(const uint8_t *data, size_t size) {
    mc_retr_index *ix;
    if (mc_retr_new(&ix, "/fuzz-root", NULL, NULL, NULL))
        return 0;
    const char *a = "def f(x):\n    return x\n";
    mc_copy_index *cx;
    if (mc_retr_set_file(ix, "a.py", a, strlen(a), NULL) || mc_copy_new(&cx, ix, NULL)) {
        mc_retr_free(ix);
        return 0;
    }
    mc_err e;
    if (mc__copy_load_mem(cx, data, size, false, &e) == 0) {
        mc_copy_stats st;
        mc_copy_get_stats(cx, &st);
        if (mc_copy_sync(cx, NULL, &e) == 0) {
            mc_copy_query q = {"q.py", "def f(x):\n", 10, 10, -1, 1};
            mc_copy_result r;
            if (mc_copy_propose(cx, &q, NULL, &r, &e) == 0)
                mc_copy_result_fini(&r);
        }
    }
    mc_copy_free(cx);
    mc_retr_free(ix);
    return 0;
}

MC_FUZZ_TARGET(copy, fuzz_copy)
