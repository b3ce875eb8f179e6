/* End-to-end tests of `mccom index` and `mccom retrieve` (the built binary).
 * The runner points XDG_CACHE_HOME at the test's directory: the index lands
 * there (mc_file_cache_dir), never in the repository or the user's cache. */
#include "test.h"

#include "mccom/file.h"

#include <dirent.h>
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

/* Where `mccom index DIR` keeps its index (the same function the CLI uses). */
static void index_of(const char *dir, char *idx, size_t cap) {
    char cdir[4096];
    mc_err e;
    MC_REQUIRE(mc_file_cache_dir(dir, cdir, sizeof cdir, &e) == 0);
    snprintf(idx, cap, "%s/retr.idx", cdir);
}

/* Whole file into buf (NUL-terminated); its length, or -1. */
static long slurp(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return (long)n;
}

static int has_bytes(const char *hay, long n, const char *needle) {
    size_t m = strlen(needle);
    for (long i = 0; i + (long)m <= n; i++)
        if (!memcmp(hay + i, needle, m))
            return 1;
    return 0;
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
    char idx[4200];
    index_of(dir, idx, sizeof idx);
    struct stat st;
    CHECK(stat(idx, &st) == 0 && st.st_size > 40);
    CHECK(strstr(out, idx) != NULL); /* the summary names where it is */
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
    char idx[4200];
    index_of(dir, idx, sizeof idx);
    {
        FILE *f = fopen(idx, "wb");
        MC_REQUIRE(f);
        fputs("garbage, not an index", f);
        fclose(f);
    }
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

/* The index lives outside the repository (the user's cache, mode 0600 in a
 * 0700 directory), or where MCCOM_CACHE_DIR / --index say; the repository gets
 * nothing written into it. */
MC_TEST_T(retr_cli_index_location_and_mode, 20) {
    char dir[1024], cmd[16384], out[65536], idx[4200];
    make_repo(dir, sizeof dir);
    snprintf(cmd, sizeof cmd, "chmod a-w %s && %s index %s 2>&1", dir, mc_test_bin(), dir);
    CHECK_EQ_INT(run(cmd, out, sizeof out), 0); /* a read-only repository is fine */
    index_of(dir, idx, sizeof idx);
    struct stat st;
    MC_REQUIRE(stat(idx, &st) == 0);
    CHECK_EQ_INT(st.st_mode & 0777, 0600);
    char cdir[4200];
    snprintf(cdir, sizeof cdir, "%s", idx);
    *strrchr(cdir, '/') = '\0';
    MC_REQUIRE(stat(cdir, &st) == 0);
    CHECK_EQ_INT(st.st_mode & 0777, 0700);
    CHECK(strncmp(idx, dir, strlen(dir)) != 0); /* not under the repository */
    /* nothing but the two sources in the repository */
    DIR *d = opendir(dir);
    MC_REQUIRE(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    CHECK_EQ_INT(n, 2);
    /* the same directory whatever the spelling of the root */
    char bin[4096];
    MC_REQUIRE(realpath(mc_test_bin(), bin) != NULL);
    snprintf(cmd, sizeof cmd, "cd %s/.. && %s index ./repo/ 2>&1", dir, bin);
    CHECK_EQ_INT(run(cmd, out, sizeof out), 0);
    CHECK(strstr(out, idx) != NULL);
    /* MCCOM_CACHE_DIR moves it */
    snprintf(cmd, sizeof cmd, "MCCOM_CACHE_DIR=%s/elsewhere %s index %s 2>&1", mc_test_tmpdir(),
             mc_test_bin(), dir);
    CHECK_EQ_INT(run(cmd, out, sizeof out), 0);
    char where[1200];
    snprintf(where, sizeof where, "%s/elsewhere/", mc_test_tmpdir());
    CHECK_MSG(strstr(out, where) != NULL, "output: %s", out);
    /* --index puts it anywhere, still 0600 */
    snprintf(cmd, sizeof cmd, "%s index %s --index %s/my.idx 2>&1", mc_test_bin(), dir,
             mc_test_tmpdir());
    CHECK_EQ_INT(run(cmd, out, sizeof out), 0);
    snprintf(where, sizeof where, "%s/my.idx", mc_test_tmpdir());
    MC_REQUIRE(stat(where, &st) == 0);
    CHECK_EQ_INT(st.st_mode & 0777, 0600);
    snprintf(cmd, sizeof cmd, "chmod u+w %s", dir);
    run(cmd, out, sizeof out);
}

/* Issue 14, finding 1: `ln -s /etc/shadow shadow.py` must not put the
 * target's text into the index (nor anywhere else). A link inside the root is
 * followed; the one that leaves it is skipped and named. */
MC_TEST_T(retr_cli_symlink_outside_never_indexed, 20) {
    char dir[1024], cmd[16384], out[65536], idx[4200], secret[1200];
    make_repo(dir, sizeof dir);
    snprintf(secret, sizeof secret, "%s/outside", mc_test_tmpdir());
    mkdir(secret, 0700);
    put(secret, "id_rsa", "def load_config(path):\n    KEY = 'TOPSECRET-4242'\n");
    snprintf(cmd, sizeof cmd,
             "ln -s %s/id_rsa %s/shadow.py && ln -s util.py %s/alias.py && ln -s %s %s/outdir",
             secret, dir, dir, secret, dir);
    MC_REQUIRE(run(cmd, out, sizeof out) == 0);
    snprintf(cmd, sizeof cmd, "%s index %s 2>&1", mc_test_bin(), dir);
    CHECK_EQ_INT(run(cmd, out, sizeof out), 0);
    CHECK_MSG(strstr(out, "skipped shadow.py: a symbolic link that leads outside") != NULL,
              "output: %s", out);
    CHECK_MSG(strstr(out, "3 files") != NULL && strstr(out, "1 outside the root") != NULL,
              "output: %s", out);
    index_of(dir, idx, sizeof idx);
    static char data[1 << 20];
    long n = slurp(idx, data, sizeof data);
    MC_REQUIRE(n > 40);
    CHECK(!has_bytes(data, n, "TOPSECRET"));
    CHECK(has_bytes(data, n, "alias.py")); /* the in-root link is indexed */
    /* retrieval never returns it either */
    snprintf(cmd, sizeof cmd,
             "%s retrieve --repo %s --file main.py --line 3 --draft 'load_config KEY' --prompt --quiet",
             mc_test_bin(), dir);
    CHECK_EQ_INT(run(cmd, out, sizeof out), 0);
    CHECK(strstr(out, "TOPSECRET") == NULL);
    CHECK(strstr(out, "load_config") != NULL);
}
