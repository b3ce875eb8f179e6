/* src/cli/cmd_complete.c — `mccom complete`: one completion at a cursor of a
 * repository file through the cascade, with a one-line account of what it
 * cost (which tier answered — the copy tier, the small or the large model —
 * with the copy line's precision, draft tokens accepted, time per stage).
 *
 * The large model is in process (--llm FILE.gguf) or behind HTTP (--remote
 * URL); without either, only the small model answers. --reject simulates the
 * user rejecting the small model's line, which escalates. */
#include "cli.h"
#include "mccom/cascade.h"
#include "mccom/file.h"
#include "mccom/remote.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: mccom complete --repo DIR --file PATH --line N [options]\n\n"
            "Completes the rest of line N (0-based) of DIR/PATH after column C with the\n"
            "cascade: the small model answers, the large model is called when the small\n"
            "one is unsure (confidence < tau) or its line is rejected (--reject).\n"
            "Prints the suggestion on stdout and an account of the request on stderr.\n\n"
            "  -m, --slm FILE      the small model (GGUF; default models/mccom-cpu-small-q8_0.gguf)\n"
            "  --llm FILE          the large model, in process (GGUF, same vocabulary)\n"
            "  --remote URL        the large model behind HTTP (mccom serve, vLLM, llama.cpp);\n"
            "                      none (the default) sends nothing anywhere\n"
            "  --remote-kind K     auto (default), mccom, vllm or openai\n"
            "  --api-key KEY       bearer token for --remote (or $MCCOM_API_KEY)\n"
            "  --remote-log FILE   log every escalation (what was sent) as JSON lines\n"
            "  --llm-budget-ms N   the large model's time for this request, every call and\n"
            "                      retry together (default 10000)\n"
            "  --col C             byte column of the cursor in line N (default: its end)\n"
            "  --lines N           complete N lines (default 1: the rest of the line)\n"
            "  --tau X             confidence threshold for routing (default 0.5)\n"
            "  --no-routing, --no-spec, --no-iter, --no-retrieval, --no-copy   switch off a stage\n"
            "                      (--no-copy: tier 0, lines copied from the repository)\n"
            "  --tau-copy X        show a copy line at once from this precision (default 0.5)\n"
            "  --reject            reject the small model's line (escalate)\n"
            "  --index FILE        retrieval index (default: in the user's cache, outside DIR)\n"
            "  -t, --threads N     threads (default: all cores)\n"
            "  --json              print the suggestion and the account as one JSON object\n");
}

static void json_str(FILE *f, const char *s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch == '\n')
            fputs("\\n", f);
        else if (ch == '\t')
            fputs("\\t", f);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static const char *source_name(const mc_suggestion *s) {
    return s->source == MC_SRC_LLM ? "llm" : s->source == MC_SRC_COPY ? "copy" : "slm";
}

/* Add the large-model part of one account to another (failed calls count). */
static void add_llm_part(mc_cascade_stats *to, const mc_cascade_stats *from) {
    to->ms_llm += from->ms_llm;
    to->ms_llm_server += from->ms_llm_server;
    to->llm_calls += from->llm_calls;
    to->llm_attempts += from->llm_attempts;
    to->bytes_sent += from->bytes_sent;
    to->bytes_received += from->bytes_received;
    if (!to->llm_deadline_ns)
        to->llm_deadline_ns = from->llm_deadline_ns;
}

static void account(const mc_suggestion *s, int json) {
    const mc_cascade_stats *t = &s->st;
    if (json) {
        printf("{\"text\": ");
        json_str(stdout, s->text, s->len);
        if (s->source == MC_SRC_COPY) {
            printf(", \"copy_precision\": %.4f, \"copy_context\": %d, \"copy_file\": ",
                   (double)s->copy_precision, s->copy_context);
            json_str(stdout, s->copy_file, strlen(s->copy_file));
            printf(", \"copy_line\": %d", s->copy_line);
        }
        printf(", \"ms_copy\": %.3f, \"copy_candidates\": %d, \"copy_scored\": %d, "
               "\"lookup_tokens\": %d, \"lookup_accepted\": %d",
               t->ms_copy, t->copy_candidates, t->copy_scored, t->lookup_tokens, t->lookup_accepted);
        printf(", \"source\": \"%s\", \"path\": \"%s\", \"confidence\": %.4f, \"ms_total\": %.3f, "
               "\"ms_retr1\": %.3f, \"ms_slm\": %.3f, \"ms_retr2\": %.3f, \"ms_llm\": %.3f, "
               "\"llm_calls\": %d, \"llm_requests\": %d, \"bytes_sent\": %lld, "
               "\"draft_tokens\": %d, \"draft_accepted\": %d, "
               "\"stage1_accepted\": %d, \"stage2_rounds\": %d, \"slm_prompt_tokens\": %d, "
               "\"llm_prompt_tokens\": %d, \"retr1_windows\": %d, \"retr2_windows\": %d, "
               "\"llm_failed\": %s, \"unverified\": %s}\n",
               source_name(s), mc_cascade_path_name(s->path), (double)s->confidence,
               t->ms_total, t->ms_retr1, t->ms_slm, t->ms_retr2, t->ms_llm, t->llm_calls,
               t->llm_attempts, (long long)t->bytes_sent, t->draft_tokens, t->draft_accepted, t->stage1_accepted, t->stage2_rounds,
               t->slm_prompt_tokens, t->llm_prompt_tokens, t->retr1_windows, t->retr2_windows,
               t->llm_failed ? "true" : "false", t->unverified ? "true" : "false");
        return;
    }
    fwrite(s->text, 1, s->len, stdout);
    fputc('\n', stdout);
    if (s->source == MC_SRC_COPY)
        fprintf(stderr, "copy tier (%s, precision %.2f, copied from %s:%d, %d line%s of context",
                s->path == MC_PATH_COPY ? "shown at once, no model" : "picked by the small model",
                (double)s->copy_precision, s->copy_file, s->copy_line + 1, s->copy_context,
                s->copy_context == 1 ? "" : "s");
    else
        fprintf(stderr, "%s (%s", s->source == MC_SRC_LLM ? "large model" : "small model",
                mc_cascade_path_name(s->path));
    if (s->confidence >= 0)
        fprintf(stderr, ", confidence %.2f", (double)s->confidence);
    fprintf(stderr, ")");
    if (t->copy_candidates > 0 || t->ms_copy > 0)
        fprintf(stderr, " | copy tier %.2f ms (proposals and scoring), %d candidates (%d scored)", t->ms_copy,
                t->copy_candidates, t->copy_scored);
    if (s->path != MC_PATH_COPY)
        fprintf(stderr, " | retrieval %.1f ms, %d windows | small model %.1f ms, prompt %d tokens "
                        "(%d cached)",
                t->ms_retr1, t->retr1_windows, t->ms_slm, t->slm_prompt_tokens, t->slm_reused);
    if (t->llm_calls > 0 && !t->llm_failed)
        fprintf(stderr, " | retrieval 2 %.1f ms, %d windows | large model %.1f ms, %d calls "
                        "(%d requests), stage 1 accepted %d, drafts %d/%d accepted, %d stage-2 "
                        "rounds%s",
                t->ms_retr2, t->retr2_windows, t->ms_llm, t->llm_calls, t->llm_attempts,
                t->stage1_accepted, t->draft_accepted, t->draft_tokens, t->stage2_rounds,
                t->unverified ? " (server cannot verify drafts)" : "");
    if (t->lookup_tokens > 0)
        fprintf(stderr, " (prompt lookup drafted %d, %d accepted)", t->lookup_tokens,
                t->lookup_accepted);
    if (t->llm_failed)
        fprintf(stderr, " | large model failed after %.1f ms, %d calls (%d requests): local answer",
                t->ms_llm, t->llm_calls, t->llm_attempts);
    fprintf(stderr, " | total %.1f ms\n", t->ms_total);
}

int mc_cmd_complete(int argc, char **argv) {
    const char *repo = NULL, *file = NULL, *slm_path = "models/mccom-cpu-small-q8_0.gguf";
    const char *llm_path = NULL, *remote_url = NULL, *index = NULL, *remote_log = NULL;
    const char *api_key = getenv("MCCOM_API_KEY");
    mc_remote_kind kind = MC_REMOTE_AUTO;
    long line = -1, col = -1, lines = 1;
    int reject = 0, json = 0, threads = 0;
    mc_cascade_params cp = mc_cascade_params_default();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--reject")) {
            reject = 1;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--no-routing")) {
            cp.routing = false;
        } else if (!strcmp(a, "--no-spec")) {
            cp.speculative = false;
        } else if (!strcmp(a, "--no-iter")) {
            cp.iterative = false;
        } else if (!strcmp(a, "--no-retrieval")) {
            cp.retrieval = false;
        } else if (!strcmp(a, "--no-copy")) {
            cp.copy = false;
        } else if (!v) {
            fprintf(stderr, "mccom complete: %s needs a value (or is unknown)\n", a);
            return 2;
        } else {
            i++;
            if (!strcmp(a, "--repo"))
                repo = v;
            else if (!strcmp(a, "--file"))
                file = v;
            else if (!strcmp(a, "--line"))
                line = strtol(v, &end, 10);
            else if (!strcmp(a, "--col"))
                col = strtol(v, &end, 10);
            else if (!strcmp(a, "--lines"))
                lines = strtol(v, &end, 10);
            else if (!strcmp(a, "-m") || !strcmp(a, "--slm"))
                slm_path = v;
            else if (!strcmp(a, "--llm"))
                llm_path = v;
            else if (!strcmp(a, "--remote"))
                remote_url = strcmp(v, "none") ? v : NULL; /* none: nothing leaves the machine */
            else if (!strcmp(a, "--remote-log"))
                remote_log = v;
            else if (!strcmp(a, "--api-key"))
                api_key = v;
            else if (!strcmp(a, "--index"))
                index = v;
            else if (!strcmp(a, "--tau"))
                cp.tau = strtof(v, &end);
            else if (!strcmp(a, "--tau-copy"))
                cp.tau_copy = strtof(v, &end);
            else if (!strcmp(a, "--llm-budget-ms"))
                cp.llm_budget_ms = (int)strtol(v, &end, 10);
            else if (!strcmp(a, "-t") || !strcmp(a, "--threads"))
                threads = (int)strtol(v, &end, 10);
            else if (!strcmp(a, "--remote-kind")) {
                if (mc_remote_kind_parse(v, &kind) != 0) {
                    fprintf(stderr, "mccom complete: unknown --remote-kind '%s' (auto, mccom, vllm, openai)\n", v);
                    return 2;
                }
            } else {
                fprintf(stderr, "mccom complete: unknown option '%s'\n", a);
                return 2;
            }
            if (end && *end) {
                fprintf(stderr, "mccom complete: bad number '%s' for %s\n", v, a);
                return 2;
            }
        }
    }
    if (!repo || !file || line < 0 || lines < 1 || lines > 64 || threads < 0) {
        usage(stderr);
        return 2;
    }
    if (llm_path && remote_url) {
        fprintf(stderr, "mccom complete: give --llm or --remote, not both\n");
        return 2;
    }
    char idx_buf[4096], path_buf[4096];
    /* the file goes into prompts (and with --remote, over the network): read
     * only inside the repository, links resolved (file.h) */
    snprintf(path_buf, sizeof path_buf, "%s/%s", repo, file);
    size_t len = 0;
    char *text = NULL;
    mc_err rerr;
    char *real = mc_file_root_real(repo, &rerr);
    if (!real || mc_file_read_in(real, path_buf, 0, &text, &len, &rerr) != 0) {
        free(real);
        mc_cli_error("complete", &rerr);
        return 1;
    }
    free(real);
    if (cp.retrieval) /* without a usable cache: built in memory, not kept */
        index = mc_cli_index_path(repo, index, idx_buf, sizeof idx_buf) == 0 ? idx_buf : NULL;
    /* the cursor: line `line`, column `col` (default: the end of that line) */
    size_t at = 0;
    long ln = 0;
    while (ln < line && at < len) {
        if (text[at] == '\n')
            ln++;
        at++;
    }
    if (ln < line) {
        if (ln == line - 1 && len > 0 && text[len - 1] != '\n') {
            fprintf(stderr, "mccom complete: %s has %ld lines; line %ld does not exist\n", path_buf,
                    ln + 1, line);
            free(text);
            return 1;
        }
        if (ln < line) {
            fprintf(stderr, "mccom complete: %s has %ld lines; line %ld does not exist\n", path_buf, ln,
                    line);
            free(text);
            return 1;
        }
    }
    size_t eol = at;
    while (eol < len && text[eol] != '\n')
        eol++;
    size_t cursor = eol;
    if (col >= 0) {
        if ((size_t)col > eol - at) {
            fprintf(stderr, "mccom complete: line %ld has %zu bytes; column %ld is beyond it\n", line,
                    eol - at, col);
            free(text);
            return 1;
        }
        cursor = at + (size_t)col;
    }

    int status = 1;
    mc_err err;
    mc_model *slm = NULL, *llm_m = NULL;
    mc_tok *tok = NULL;
    mc_llm *llm = NULL;
    mc_retr_index *ix = NULL;
    mc_copy_index *cx = NULL;
    mc_cascade *c = NULL;
    mc_suggestion s;
    memset(&s, 0, sizeof s);
    mc_ctx_params ctxp = mc_ctx_params_default();
    ctxp.n_threads = threads;
    if (mc_model_load(slm_path, &slm, &err) != 0) {
        mc_cli_error(slm_path, &err);
        goto out;
    }
    if (mc_tok_load_gguf(mc_model_gguf(slm), &tok, &err) != 0) {
        mc_cli_error("tokenizer", &err);
        goto out;
    }
    if (llm_path) {
        if (mc_model_load(llm_path, &llm_m, &err) != 0) {
            mc_cli_error(llm_path, &err);
            goto out;
        }
        if (mc_model_hparams(llm_m)->n_vocab != mc_model_hparams(slm)->n_vocab) {
            fprintf(stderr, "mccom complete: %s has %d tokens, %s %d: the two models must share a vocabulary\n",
                    llm_path, mc_model_hparams(llm_m)->n_vocab, slm_path,
                    mc_model_hparams(slm)->n_vocab);
            goto out;
        }
        if (mc_llm_local_new(llm_m, tok, &ctxp, &llm, &err) != 0) {
            mc_cli_error("large model", &err);
            goto out;
        }
    } else if (remote_url) {
        mc_remote_params rp = mc_remote_params_default();
        rp.url = remote_url;
        rp.api_key = api_key;
        rp.kind = kind;
        rp.log_path = remote_log;
        if (cp.llm_budget_ms > 0) /* one call may use the request's whole budget, no more */
            rp.timeout_ms = cp.llm_budget_ms;
        if (mc_llm_remote_new(&rp, tok, &llm, &err) != 0) {
            mc_cli_error("remote", &err);
            goto out;
        }
    }
    if (cp.retrieval) {
        int changed = 0;
        if (mc_cli_retr_open(&ix, repo, index, NULL, 1, &changed) != 0)
            goto out;
        if (changed && index && mc_retr_save(ix, index, &err) != 0)
            fprintf(stderr, "mccom complete: could not save the index: %s\n", err.msg);
        if (cp.copy && mc_cli_copy_open(&cx, ix, index, 1, 1) != 0)
            goto out;
    }
    if (mc_cascade_new(&cp, slm, tok, llm, ix, &ctxp, &c, &err) != 0) {
        mc_cli_error("cascade", &err);
        goto out;
    }
    mc_cascade_set_copy(c, cx);
    mc_cascade_doc d = {file, text, len, cursor, (int)line, (int)lines, 0};
    double t_request = mc_time_s();
    if (mc_cascade_suggest(c, &d, NULL, &s, &err) != 0) {
        mc_cli_error("complete", &err);
        goto out;
    }
    if (reject && s.source != MC_SRC_LLM) {
        if (!llm) {
            fprintf(stderr, "mccom complete: --reject needs a large model (--llm or --remote)\n");
            goto out;
        }
        mc_suggestion up;
        /* the same request: a confidence escalation that already ran (and
         * failed) leaves what is left of the budget, not a new one */
        d.llm_deadline_ns = s.st.llm_deadline_ns;
        if (mc_cascade_escalate(c, &d, &s, MC_PATH_REJECTION, NULL, &up, &err) != 0) {
            mc_cli_error("escalation", &err);
            s.st.llm_failed = true;
            add_llm_part(&s.st, &up.st);
            s.st.ms_retr2 += up.st.ms_retr2;
        } else {
            add_llm_part(&up.st, &s.st); /* a failed confidence escalation before it */
            up.st.ms_retr1 = s.st.ms_retr1;
            up.st.retr1_windows = s.st.retr1_windows;
            up.st.ms_slm = s.st.ms_slm;
            up.st.slm_prompt_tokens = s.st.slm_prompt_tokens;
            up.st.slm_reused = s.st.slm_reused;
            mc_suggestion_fini(&s);
            s = up;
        }
    }
    s.st.ms_total = (mc_time_s() - t_request) * 1e3; /* the whole request, as the user waited */
    account(&s, json);
    status = 0;
out:
    mc_suggestion_fini(&s);
    mc_cascade_free(c);
    mc_copy_free(cx);
    mc_retr_free(ix);
    mc_llm_free(llm);
    mc_model_free(llm_m);
    mc_tok_free(tok);
    mc_model_free(slm);
    free(text);
    return status;
}
