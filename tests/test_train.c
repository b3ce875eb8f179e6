/* Tests of the model factory (tools/train/, Python): each MC_TEST runs some classes of
 * tools/train/test_train.py with Debian's python3 (one process: torch loads once) and
 * fails on a non-zero exit.
 *
 * Skipped where /usr/bin/python3 cannot import torch and numpy (scripts/debian-packages.txt
 * installs them), and in the sanitizer build: the code under test is Python, so a second
 * run would only repeat the first.
 */
#include "test.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define PY "/usr/bin/python3"

/* classes: space-separated unittest names relative to tools.train.test_train */
static void run_py_classes(const char *classes) {
#if defined(__SANITIZE_ADDRESS__)
    (void)classes;
    MC_SKIP("Python tests run in the normal build only");
#else
    char cmd[4096];
    if (system(PY " -c 'import torch, numpy' >/dev/null 2>&1") != 0)
        MC_SKIP(PY " has no torch/numpy (apt-get install python3-torch python3-numpy)");
    const char *shared = mc_test_shared("");
    struct stat st;
    char env[1200] = "";
    if (stat(shared, &st) == 0 && S_ISDIR(st.st_mode))
        snprintf(env, sizeof env, "MC_SHARED='%s' ", shared);
    const char *log = mc_test_tmpdir();
    char names[1024] = "";
    char buf[256];
    snprintf(buf, sizeof buf, "%s", classes);
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        size_t n = strlen(names);
        snprintf(names + n, sizeof names - n, " tools.train.test_train.%s", t);
    }
    snprintf(cmd, sizeof cmd,
             "%sOMP_NUM_THREADS=1 PYTHONDONTWRITEBYTECODE=1 " PY " -m unittest%s > '%s/out.txt' 2>&1",
             env, names, log);
    int rc = system(cmd);
    char grep[1200];
    snprintf(grep, sizeof grep, "grep -q '^OK (skipped=' '%s/out.txt'", log);
    if (rc == 0 && system(grep) == 0)
        MC_SKIP("skipped by test_train.py (see its reason with -v)");
    if (rc != 0) {
        char show[4200];
        snprintf(show, sizeof show, "tail -n 40 '%s/out.txt' >&2", log);
        if (system(show) != 0) {
            /* nothing more to show */
        }
    }
    CHECK_MSG(rc == 0, "tools/train/test_train.py %s failed (exit %d)", classes,
              WIFEXITED(rc) ? WEXITSTATUS(rc) : -1);
#endif
}

MC_TEST(train_py_token_files_fim_packing) { run_py_classes("TokenFiles Fim Packing"); }
MC_TEST(train_py_resume_is_exact) { run_py_classes("Resume Model"); }
MC_TEST(train_py_wsd_branches_examples) { run_py_classes("Wsd"); }
MC_TEST(train_py_export_hf) { run_py_classes("Export"); }
MC_TEST(train_py_factory_steps) { run_py_classes("Factory"); }
MC_TEST(train_py_corpus_filters) { run_py_classes("Corpus"); }
MC_TEST(train_py_no_benchmark_file_in_corpus) { run_py_classes("NoLeak"); }
