/* fuzz/fuzz_lsp.c — fuzz target for `mccom lsp`'s input side: the framing,
 * the JSON-RPC layer and every handler behind it (documents, edits with
 * positions, configuration, cancellation, the mccom notifications), on a
 * server that loads no files (no models, no index).
 *
 * The first byte chooses how the rest is cut into reads (one read, or chunks
 * of 1..64 bytes), so that partial headers and split bodies are exercised.
 * Invariants checked: the server survives; everything it writes is a
 * well-formed frame whose body is a JSON-RPC 2.0 object; a standalone framer
 * returns only bodies within its limit. */
#include "../src/lsp/lsp_internal.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

int mc_fuzz_lsp(const uint8_t *data, size_t size);

typedef struct sink {
    mc_lsp_framer *fr;
    int n_msgs;
} sink;

static int sink_write(void *ud, const char *d, size_t n) {
    sink *k = ud;
    if (mc_lsp_framer_feed(k->fr, d, n) != 0)
        abort();
    const char *body;
    size_t len;
    mc_err err;
    int rc;
    while ((rc = mc_lsp_framer_next(k->fr, &body, &len, &err)) != 0) {
        if (rc < 0)
            abort(); /* the server wrote a bad frame */
        json_t *j = json_loadb(body, len, JSON_ALLOW_NUL, NULL);
        const char *v = j ? mc__json_str(j, "jsonrpc") : NULL;
        if (!j || !json_is_object(j) || !v || strcmp(v, "2.0") != 0)
            abort(); /* the server wrote something that is not JSON-RPC */
        json_decref(j);
        k->n_msgs++;
    }
    return 0;
}

int mc_fuzz_lsp(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    size_t chunk = data[0] & 0x80 ? size : (size_t)(data[0] & 0x3F) + 1;
    data++;
    size--;

    /* the framer alone, with a small limit */
    mc_lsp_framer *f = mc_lsp_framer_new(256);
    if (!f)
        return 0;
    for (size_t at = 0; at < size; at += chunk) {
        mc_lsp_framer_feed(f, data + at, MC_MIN(chunk, size - at));
        const char *body;
        size_t len;
        mc_err err;
        int rc;
        while ((rc = mc_lsp_framer_next(f, &body, &len, &err)) != 0)
            if (rc == 1 && len > 256)
                abort();
    }
    mc_lsp_framer_free(f);

    /* the whole server */
    sink k = {mc_lsp_framer_new(0), 0};
    mc_lsp_params p = mc_lsp_params_default();
    p.load_files = false;
    p.log_level = -1;
    p.max_message_bytes = 4096;
    mc_lsp_server *s;
    if (!k.fr || mc_lsp_server_new(&p, sink_write, &k, &s, NULL) != 0) {
        mc_lsp_framer_free(k.fr);
        return 0;
    }
    for (size_t at = 0; at < size; at += chunk)
        if (mc_lsp_server_feed(s, data + at, MC_MIN(chunk, size - at)) == 1)
            break;
    mc_lsp_server_free(s);
    mc_lsp_framer_free(k.fr);
    return 0;
}

MC_FUZZ_TARGET(lsp, mc_fuzz_lsp)
