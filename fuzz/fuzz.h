/* fuzz/fuzz.h — a fuzz target is one function over (data, size).
 *
 * Built with -DMC_LIBFUZZER (make fuzz, clang) it becomes libFuzzer's entry
 * point; in the normal and ASan test builds it becomes a test that replays
 * every file of fuzz/corpus/<name>/ through the function. */
#ifndef MCCOM_FUZZ_H
#define MCCOM_FUZZ_H

#include <stddef.h>
#include <stdint.h>

typedef int (*mc_fuzz_fn)(const uint8_t *data, size_t size);

#ifdef MC_LIBFUZZER
#define MC_FUZZ_TARGET(name, fn)                                         \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);        \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {       \
        fn(data, size);                                                  \
        return 0;                                                        \
    }
#else
#include "../tests/test.h"
/* Replays every file in fuzz/corpus/<name>; fails if the corpus is missing or empty. */
void mc_fuzz_replay(const char *name, mc_fuzz_fn fn);
#define MC_FUZZ_TARGET(name, fn) \
    MC_TEST(fuzz_replay_##name) { mc_fuzz_replay(#name, fn); }
#endif

#endif
