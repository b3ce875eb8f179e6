/* End-to-end tests of `mccom index` and `mccom retrieve` (the built binary). */
#include "test.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void put(const char *dir, const char *rel, const char *text) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    FILE *f = fopen(path, "wb");
    MC_REQUIRE(f);
    fputs(text, f);
    fclose(f);
}

/* Run a shell command; its stdout into out (NUL-terminated). Returns the exit status. */
static int run(const char *cmd, char *out, size_t cap) {
    FILE *p = popen(cmd, "r");
    MC_REQUIRE(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void make_repo(char *dir, size_t cap) {
    snprintf(dir, cap, "%s/repo", mc_test_tmpdir());
    mkdir(dir, 0755);
    put(dir, "util.py", "def load_config(path):\n    with open(path) as f:\n        return json.load(f)\n");
    put(dir, "main.py", "import util\n\ncfg = util.load_config(path)\nprint(cfg)\nsecret_future_line = 1\n");
}

MC_TEST_T(retr_cli_index_and_retrieve, 20) {
    char dir[1024], cmd[16384], out[65536];
    make_repo(dir, sizeof dir);
    const char *bin = mc_test_bin();
    snprintf(cmd, sizeof cmd, "%s index %s 2>&1", bin, dir);
    CHECK_EQ_INT(run(cmd, out, sizeof out), 0);
    CHECK(strstr(out, "2 files") != NULL);
    char idx[1200];
    snprintf(idx, sizeof idx, "%s/.mccom-retr.idx", dir);
    struct stat st;
    CHECK(stat(idx, &st) == 0 && st.st_size > 40);
    /* second run: nothing re-indexed */
    CHECK_EQ_INT(run(cmd, out, sizeof out), 0);
    CHECK(strstr(out, "0 re-indexed, 2 unchanged") != NULL);

    /* cursor on line 3 of main.py ("print(cfg)"): its own later lines never come back */
    snprintf(cmd, sizeof cmd, "%s retrieve --repo %s --file main.py --line 3 --k 5 --quiet", bin, dir);
    CHECK_EQ_INT(run(cmd, out, sizeof out), 0);
    CHECK(strstr(out, "1. util.py:1-3 score") != NULL);
    CHECK(strstr(out, "secret_future_line") == NULL);
    snprintf(cmd, sizeof cmd,
             "%s retrieve --repo %s --file %s/main.py --line 3 --sim bm25 --prompt --quiet", bin,
             dir, dir);
    CHECK_EQ_INT(run(cmd, out, sizeof out), 0);
    CHECK(strstr(out, "# the below code fragment can be found in:\n# util.py\n") != NULL);
    CHECK(strstr(out, "#     with open(path) as f:\n") != NULL);
    /* round 2 with a draft */
    snprintf(cmd, sizeof cmd,
             "%s retrieve --repo %s --file main.py --line 3 --draft 'json.load(f)' --k 1 --quiet",
             bin, dir);
    CHECK_EQ_INT(run(cmd, out, sizeof out), 0);
    CHECK(strstr(out, "util.py") != NULL);
    /* usage errors */
    snprintf(cmd, sizeof cmd, "%s retrieve --repo %s --line 3 2>/dev/null", bin, dir);
    CHECK_EQ_INT(run(cmd, out, sizeof out), 2);
    snprintf(cmd, sizeof cmd, "%s retrieve --repo %s --file main.py --line 1 --sim cos 2>/dev/null",
             bin, dir);
    CHECK_EQ_INT(run(cmd, out, sizeof out), 2);
}

MC_TEST_T(retr_cli_corrupt_index_rebuilds, 20) {
    char dir[1024], cmd[16384], out[65536];
    make_repo(dir, sizeof dir);
    char idx[1200];
    snprintf(idx, sizeof idx, "%s/.mccom-retr.idx", dir);
    put(dir, ".mccom-retr.idx", "garbage, not an index");
    snprintf(cmd, sizeof cmd, "%s index %s 2>&1", mc_test_bin(), dir);
    CHECK_EQ_INT(run(cmd, out, sizeof out), 0);
    CHECK(strstr(out, "not a mccom retrieval index") != NULL);
    CHECK(strstr(out, "rebuilding") != NULL);
    CHECK(strstr(out, "2 re-indexed") != NULL);
    CHECK_EQ_INT(run(cmd, out, sizeof out), 0);
    CHECK(strstr(out, "0 re-indexed") != NULL);
}

MC_TEST_T(retr_cli_watch, 20) {
    char dir[1024], cmd[16384], out[65536];
    make_repo(dir, sizeof dir);
    char log[1200];
    snprintf(log, sizeof log, "%s/watch.log", mc_test_tmpdir());
    /* run the watcher for a bounded time; change a file while it runs */
    snprintf(cmd, sizeof cmd,
             "timeout -k 3 -s INT 4 %s index %s --watch > %s 2>&1 & pid=$!; sleep 1; "
             "printf 'def fresh_function():\\n    pass\\n' > %s/new.py; wait $pid; cat %s",
             mc_test_bin(), dir, log, dir, log);
    run(cmd, out, sizeof out);
    CHECK_MSG(strstr(out, "re-indexed 1 file") != NULL, "watch output: %s", out);
    snprintf(cmd, sizeof cmd,
             "%s retrieve --repo %s --file main.py --line 3 --draft fresh_function --k 3 --quiet",
             mc_test_bin(), dir);
    CHECK_EQ_INT(run(cmd, out, sizeof out), 0);
    CHECK(strstr(out, "new.py") != NULL);
}
