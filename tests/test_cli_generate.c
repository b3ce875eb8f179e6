/* End to end: `mccom convert llama2c` then `mccom generate` reproduces the
 * reference llama2.c text for the golden prompts, and bad input is a clean error. */
#include "test.h"

#include <stdlib.h>
#include <sys/wait.h>

static int run(const char *cmd, char *out, size_t cap) {
    FILE *p = popen(cmd, "r");
    MC_REQUIRE(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    return pclose(p);
}

MC_TEST(cli_generate_reproduces_golden_text) {
    char cmd[2048], out[8192];
    char model[600];
    snprintf(model, sizeof model, "%s/s.gguf", mc_test_tmpdir());
    char bin[512], tok[512];
    snprintf(bin, sizeof bin, "%s", mc_test_shared("models/stories260K/stories260K.bin"));
    snprintf(tok, sizeof tok, "%s", mc_test_shared("models/stories260K/tok512.bin"));
    snprintf(cmd, sizeof cmd, "%s convert llama2c %s %s %s 2>&1", mc_test_bin(), bin, tok, model);
    CHECK_EQ_INT(run(cmd, out, sizeof out), 0);
    /* the golden text of "Once upon a time": greedy, 99 tokens after BOS, of
     * which 4 are the prompt's; compare the first 120 characters */
    snprintf(cmd, sizeof cmd, "%s generate -m %s -p 'Once upon a time' -n 40 -t 2 2>/dev/null",
             mc_test_bin(), model);
    CHECK_EQ_INT(run(cmd, out, sizeof out), 0);
    const char *want = "Once upon a time, there was a little girl named Lily. She loved to play "
                       "outside in the park. One day, she saw a big, red ball.";
    CHECK_MSG(strncmp(out, want, strlen(want)) == 0, "got: %s", out);
    /* errors: missing model, bad option, bad number */
    snprintf(cmd, sizeof cmd, "%s generate -m /nonexistent.gguf -p x 2>&1", mc_test_bin());
    int rc = run(cmd, out, sizeof out);
    CHECK(WEXITSTATUS(rc) == 1 && strstr(out, "cannot open"));
    snprintf(cmd, sizeof cmd, "%s generate -m %s -p x -n abc 2>&1", mc_test_bin(), model);
    CHECK(WEXITSTATUS(run(cmd, out, sizeof out)) == 2);
    snprintf(cmd, sizeof cmd, "%s generate --bogus 1 2>&1", mc_test_bin());
    CHECK(WEXITSTATUS(run(cmd, out, sizeof out)) == 2);
}
