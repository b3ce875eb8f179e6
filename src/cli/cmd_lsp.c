/* `mccom lsp [options]`: the language server on stdin/stdout (docs/lsp.md).
 * The options are defaults; the editor's initializationOptions and
 * workspace/didChangeConfiguration override them. */
#include "cli.h"
#include "mccom/lsp.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: mccom lsp [options]\n\n"
            "Serves inline completions over the Language Server Protocol on stdin/stdout\n"
            "(log lines on stderr). Editors start it; see docs/lsp.md.\n\n"
            "  --slm FILE          small model (GGUF)\n"
            "  --llm FILE          large model, run in this process (GGUF)\n"
            "  --tokenizer FILE    GGUF whose vocabulary both models use (default: the small model's)\n"
            "  --llm-url URL       remote large model (mccom serve, vLLM, OpenAI-compatible);\n"
            "                      \"none\" keeps everything on this machine\n"
            "  --llm-log FILE      log what every escalation sends (JSON lines: bytes, files)\n"
            "  --llm-key-env VAR   environment variable holding its API key (default MCCOM_LLM_API_KEY)\n"
            "  --tau X             escalate at once below this confidence (default 0.5)\n"
            "  --no-retrieval      no repository retrieval (and no index)\n"
            "  --no-copy           no copy tier (tier 0: lines copied from the repository)\n"
            "  --tau-copy X        show a copy line at once from this precision (default 0.5)\n"
            "  --completion        also answer textDocument/completion (editors without inline\n"
            "                      completion, e.g. Helix)\n"
            "  --debounce MS       wait before running a model for a request (default 0)\n"
            "  --max-line-tokens N most tokens of a suggestion (default 48)\n"
            "  -t, --threads N     model threads (default: all cores)\n"
            "  --ctx N             context tokens of each model (default: min(training, 4096))\n"
            "  --max-message-bytes N  drop messages larger than this (default 64 MiB)\n"
            "  -v, --verbose       log every request (twice: also ignored notifications)\n"
            "  -q, --quiet         log errors only\n");
}

static int parse_int(const char *flag, const char *v, int lo, int hi, int *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "mccom lsp: %s wants an integer in [%d, %d], not '%s'\n", flag, lo, hi, v);
        return -1;
    }
    *out = (int)x;
    return 0;
}

int mc_cmd_lsp(int argc, char **argv) {
    mc_lsp_params p = mc_lsp_params_default();
    p.version = MC_CLI_VERSION;
    const char *key_env = "MCCOM_LLM_API_KEY";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--no-retrieval")) {
            p.retrieval = false;
            continue;
        }
        if (!strcmp(a, "--no-copy")) {
            p.copy = false;
            continue;
        }
        if (!strcmp(a, "--completion")) {
            p.completion = true;
            continue;
        }
        if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            p.log_level++;
            continue;
        }
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            p.log_level = 0;
            continue;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "mccom lsp: %s needs a value (or is unknown)\n", a);
            usage(stderr);
            return 2;
        }
        i++;
        int bad = 0;
        if (!strcmp(a, "--slm"))
            p.slm_path = v;
        else if (!strcmp(a, "--llm"))
            p.llm_path = v;
        else if (!strcmp(a, "--tokenizer"))
            p.tokenizer_path = v;
        else if (!strcmp(a, "--llm-url"))
            p.llm_url = v;
        else if (!strcmp(a, "--llm-key-env"))
            key_env = v;
        else if (!strcmp(a, "--llm-log"))
            p.llm_log = v;
        else if (!strcmp(a, "--tau")) {
            char *end;
            p.tau = strtof(v, &end);
            if (end == v || *end || !(p.tau >= 0.0f && p.tau <= 1.0f)) {
                fprintf(stderr, "mccom lsp: --tau wants a number in [0, 1], not '%s'\n", v);
                bad = 1;
            }
        } else if (!strcmp(a, "--tau-copy")) {
            char *end;
            p.tau_copy = strtof(v, &end);
            if (end == v || *end || !(p.tau_copy >= 0.0f)) {
                fprintf(stderr, "mccom lsp: --tau-copy wants a number >= 0, not '%s'\n", v);
                bad = 1;
            }
        } else if (!strcmp(a, "--debounce"))
            bad = parse_int(a, v, 0, 10000, &p.debounce_ms);
        else if (!strcmp(a, "--max-line-tokens"))
            bad = parse_int(a, v, 1, 1024, &p.max_line_tokens);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads"))
            bad = parse_int(a, v, 0, 1024, &p.n_threads);
        else if (!strcmp(a, "--ctx"))
            bad = parse_int(a, v, 0, 1 << 20, &p.n_ctx);
        else if (!strcmp(a, "--max-message-bytes")) {
            int mb = 0;
            bad = parse_int(a, v, 1, 1 << 30, &mb);
            p.max_message_bytes = (size_t)mb;
        }
        else {
            fprintf(stderr, "mccom lsp: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (bad)
            return 2;
    }
    const char *key = getenv(key_env);
    if (key && *key)
        p.llm_api_key = key;
    if (isatty(0))
        fprintf(stderr, "mccom lsp: speaks the Language Server Protocol on stdin/stdout; an editor "
                        "starts it (docs/lsp.md)\n");
    mc_err err;
    mc_err_clear(&err);
    int status = mc_lsp_run(&p, 0, 1, &err);
    if (err.code != 0)
        mc_cli_error("lsp", &err);
    return status;
}
