/* `mccom serve -m MODEL.gguf [--host H] [--port P] [--api-key K] [--slots N]
 *  [-t THREADS] [--ctx N] [--name NAME] [--max-body BYTES] [limits...] [-v]`: serve one
 * model over HTTP (include/mccom/server.h) until SIGINT or SIGTERM, then stop
 * cleanly (queued and running requests are canceled, threads joined).
 *
 * Signals: they are blocked in every thread (the server's threads inherit the
 * mask) and taken synchronously by sigwait in the main thread, so no handler
 * runs inside library code. */
#include "cli.h"
#include "mccom/server.h"

#include <libgen.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: mccom serve -m MODEL.gguf [options]\n\n"
            "Serves the model over HTTP: POST /v1/completions (OpenAI), /infill (llama.cpp),\n"
            "/v1/verify (draft verification); GET /v1/models, /health, /metrics (Prometheus).\n"
            "Runs until SIGINT or SIGTERM.\n\n"
            "  -m, --model FILE     GGUF model (llama or qwen2; f32/f16/bf16/q8_0/q4_0)\n"
            "  --host H             address to bind (default 127.0.0.1); any address that is\n"
            "                       not loopback needs --api-key\n"
            "  --port P             port (default 8080; 0 = any free port, printed at start)\n"
            "  --api-key K          require \"Authorization: Bearer K\" (all but /health)\n"
            "  --slots N            KV caches kept for prompt-prefix reuse (default 2)\n"
            "  -t, --threads N      threads per forward pass (default: all cores)\n"
            "  --ctx N              context size per slot (default: min(training context, 4096))\n"
            "  --name NAME          model id clients see (default: the file's basename)\n"
            "  --max-body BYTES     largest request body accepted (default 1048576)\n"
            "  --max-queue N        waiting requests beyond this get 503 (default 64)\n"
            "  --max-connections N  open connections (default 256)\n"
            "  --max-connections-per-ip N   from one client address (default 64)\n"
            "  --request-timeout S  seconds a connection has to send a complete request\n"
            "                       (default 10); slower ones are closed\n"
            "  --max-inflight-mb N  memory budget of requests in flight, MiB (default 64);\n"
            "                       beyond it: 429 with Retry-After\n"
            "  -v, --verbose        one line per request on stderr\n"
            "GET /health needs no key; see README.md, Security.\n");
}

static int parse_int(const char *opt, const char *v, long lo, long hi, long *out) {
    char *end = NULL;
    long x = strtol(v, &end, 10);
    if (!*v || !end || *end || x < lo || x > hi) {
        fprintf(stderr, "mccom serve: bad value '%s' for %s (%ld..%ld)\n", v, opt, lo, hi);
        return 2;
    }
    *out = x;
    return 0;
}

int mc_cmd_serve(int argc, char **argv) {
    const char *model_path = NULL;
    mc_server_params p = mc_server_params_default();
    char *name_buf = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            p.verbose = 1;
            continue;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "mccom serve: %s needs a value (or unknown option); see --help\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            model_path = v;
            continue;
        }
        if (!strcmp(a, "--host")) {
            p.host = v;
            continue;
        }
        if (!strcmp(a, "--api-key")) {
            p.api_key = v;
            continue;
        }
        if (!strcmp(a, "--name")) {
            p.model_name = v;
            continue;
        }
        int *ip = NULL;
        long lo = 1, hi = 1 << 16, x = 0;
        if (!strcmp(a, "--port")) {
            ip = &p.port;
            lo = 0;
            hi = 65535;
        } else if (!strcmp(a, "--slots")) {
            ip = &p.n_slots;
            hi = 64;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            ip = &p.ctx.n_threads;
            lo = 0;
            hi = 1024;
        } else if (!strcmp(a, "--ctx")) {
            ip = &p.ctx.n_ctx;
            lo = 0;
            hi = 1 << 20;
        } else if (!strcmp(a, "--max-queue")) {
            ip = &p.max_queue;
        } else if (!strcmp(a, "--max-connections")) {
            ip = &p.max_connections;
        } else if (!strcmp(a, "--max-connections-per-ip")) {
            ip = &p.max_connections_per_ip;
        } else if (!strcmp(a, "--request-timeout")) {
            ip = &p.request_timeout_s;
            hi = 3600;
        } else if (!strcmp(a, "--max-inflight-mb")) {
            hi = 1 << 20;
            if (parse_int(a, v, lo, hi, &x) != 0)
                return 2;
            p.max_inflight_bytes = (size_t)x << 20;
            continue;
        } else if (strcmp(a, "--max-body") != 0) {
            fprintf(stderr, "mccom serve: unknown option '%s'; see --help\n", a);
            return 2;
        } else {
            hi = 1L << 30;
        }
        if (parse_int(a, v, lo, hi, &x) != 0)
            return 2;
        if (ip)
            *ip = (int)x;
        else
            p.max_body = (size_t)x;
    }
    if (!model_path) {
        usage(stderr);
        return 2;
    }
    if (!p.model_name) {
        name_buf = strdup(model_path);
        if (!name_buf)
            return 1;
        p.model_name = basename(name_buf);
    }

    /* Block the stop signals before any thread exists; the main thread waits for them. */
    sigset_t stop_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGINT);
    sigaddset(&stop_set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_set, NULL);
    signal(SIGPIPE, SIG_IGN);

    mc_err err;
    mc_model *m = NULL;
    mc_tok *tok = NULL;
    mc_server *s = NULL;
    int status = 1;
    if (mc_model_load(model_path, &m, &err) != 0) {
        mc_cli_error(model_path, &err);
        goto out;
    }
    if (mc_tok_load_gguf(mc_model_gguf(m), &tok, &err) != 0) {
        mc_cli_error("tokenizer", &err);
        goto out;
    }
    if (mc_server_start(m, tok, &p, &s, &err) != 0) {
        mc_cli_error("serve", &err);
        goto out;
    }
    const mc_hparams *hp = mc_model_hparams(m);
    int n_ctx = p.ctx.n_ctx > 0 ? p.ctx.n_ctx : MC_MIN(hp->n_ctx_train, 4096);
    const char *host = p.host ? p.host : "127.0.0.1";
    int v6 = strchr(host, ':') != NULL;
    fprintf(stderr,
            "mccom serve: listening on http://%s%s%s:%d (model %s, %s %dL %dd, vocab %d, "
            "%d slots x %d tokens, %s)\n",
            v6 ? "[" : "", host, v6 ? "]" : "", mc_server_port(s), p.model_name, hp->arch,
            hp->n_layer, hp->n_embd, hp->n_vocab, p.n_slots, n_ctx,
            p.api_key ? "API key required" : "no API key");
    fflush(stderr);

    int sig = 0;
    sigwait(&stop_set, &sig);
    fprintf(stderr, "mccom serve: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    mc_server_stop(s);
    s = NULL;
    status = 0;
out:
    mc_server_stop(s);
    mc_tok_free(tok);
    mc_model_free(m);
    free(name_buf);
    return status;
}
