/* fuzz/fuzz_retr.c — fuzz target for the retrieval index loader (untrusted
 * bytes from disk). The checksum is skipped so that mutations reach the
 * parser. Built into the test binary, where MC_TEST replays the corpus in
 * fuzz/corpus/retr/; with -DMC_LIBFUZZER (scripts/fuzz.sh) it is the entry
 * point LLVMFuzzerTestOneInput. */
#include "../src/retr/retr_internal.h"
#include "../tests/test.h"

#include <dirent.h>
#include <stdlib.h>

int mc_fuzz_retr_index(const uint8_t *data, size_t size);

int mc_fuzz_retr_index(const uint8_t *data, size_t size) {
    mc_retr_index *ix;
    if (mc_retr_new(&ix, "/fuzz-root", NULL, NULL, NULL))
        return 0;
    mc_err e;
    if (mc__retr_load_mem(ix, data, size, false, &e) == 0) {
        /* a loaded index must answer queries and save consistently */
        mc_retr_query q = mc_retr_query_default();
        q.text = "def f(x):\n    return x";
        q.len = strlen(q.text);
        mc_retr_hit h[4];
        mc_retr_search(ix, &q, h, 4, NULL);
        q.sim = MC_RETR_BM25;
        mc_retr_search(ix, &q, h, 4, NULL);
    }
    mc_retr_free(ix);
    return 0;
}

#if defined(MC_FUZZ_MAIN) || defined(MC_LIBFUZZER)
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return mc_fuzz_retr_index(data, size); }
#else

MC_TEST_T(fuzz_retr_index_corpus, 30) {
    const char *dir = "fuzz/corpus/retr";
    DIR *d = opendir(dir);
    if (!d)
        MC_SKIP("no corpus");
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        fseek(f, 0, SEEK_END);
        long sz = ftell(f);
        fseek(f, 0, SEEK_SET);
        uint8_t *buf = malloc((size_t)sz + 1);
        MC_REQUIRE(buf && fread(buf, 1, (size_t)sz, f) == (size_t)sz);
        fclose(f);
        mc_fuzz_retr_index(buf, (size_t)sz);
        /* and every truncation and a few flips of it */
        for (long k = 0; k < sz; k += 1 + sz / 64)
            mc_fuzz_retr_index(buf, (size_t)k);
        for (long k = 40; k < sz; k += 1 + sz / 64) {
            buf[k] ^= 0xff;
            mc_fuzz_retr_index(buf, (size_t)sz);
            buf[k] ^= 0xff;
        }
        free(buf);
        n++;
    }
    closedir(d);
    CHECK(n > 0);
}
#endif
