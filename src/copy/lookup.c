/* src/copy/lookup.c — token-level prompt lookup: the tokens that followed an
 * earlier occurrence of the sequence's own last n tokens (prompt-lookup
 * decoding). A draft source for speculative decoding when the small model
 * has nothing better: repository code retrieved into the prompt and the
 * file above the cursor repeat themselves. It never scores anything; the
 * verifier decides what is kept. */
#include "mccom/copy.h"

#include <string.h>

int mc_copy_lookup(const int32_t *ids, int n, int min_n, int max_n, int32_t *out, int cap,
                   int *n_match) {
    if (n_match)
        *n_match = 0;
    if (min_n < 1 || max_n < min_n || max_n > 16 || cap < 0 || n < 0 || (!ids && n > 0) ||
        (!out && cap > 0))
        return MC_EINVAL;
    for (int m = MC_MIN(max_n, n - 1); m >= min_n; m--) {
        const int32_t *suf = ids + n - m;
        /* latest first: an occurrence at s is ids[s..s+m), followed by ids[s+m] */
        for (int s = n - m - 1; s >= 0; s--) {
            if (ids[s + m - 1] != suf[m - 1] || memcmp(ids + s, suf, (size_t)m * sizeof *ids))
                continue;
            int k = MC_MIN(cap, n - (s + m));
            memcpy(out, ids + s + m, (size_t)k * sizeof *ids);
            if (n_match)
                *n_match = m;
            return k;
        }
    }
    return 0;
}
