/* tests/runner.c — runs every MC_TEST in its own process, with a timeout.
 *
 * Usage: mccom-test [-j N] [-v] [-l] [PATTERN...]
 *   PATTERN  run only tests whose name contains one of the patterns
 *   -j N     run N tests at once (default: number of online CPUs)
 *   -v       print each test's output even when it passes
 *   -l       list the tests and exit
 * Each test gets a fresh temporary directory (MC_TEST_TMPDIR) that is removed
 * afterwards, and its stdout/stderr go to a log that is printed if it fails.
 * The last line is "N passed, N failed, N skipped"; the exit status is 1 when
 * any test failed or timed out.
 */
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

extern const struct mc_test __start_mc_tests[];
extern const struct mc_test __stop_mc_tests[];

/* State of the current test process (one test per process). */
static int g_failed;
static char g_shared_buf[4096];

void mc_test_fail_at(const char *file, int line, const char *fmt, ...) {
    g_failed++;
    if (g_failed > 50)
        return; /* keep logs readable */
    fprintf(stderr, "  %s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

int mc_test_failed(void) { return g_failed; }

void mc_test_skip(const char *why) {
    fprintf(stderr, "  skipped: %s\n", why);
    fflush(stderr);
    _exit(77);
}

void mc_test_abort(void) {
    fflush(stdout);
    fflush(stderr);
    _exit(1);
}

const char *mc_test_shared(const char *rel) {
    const char *root = getenv("MC_SHARED");
    if (!root || !*root)
        root = "../shared";
    snprintf(g_shared_buf, sizeof g_shared_buf, "%s/%s", root, rel);
    return g_shared_buf;
}

const char *mc_test_tmpdir(void) {
    const char *d = getenv("MC_TEST_TMPDIR");
    return d ? d : "/tmp";
}

const char *mc_test_bin(void) {
    const char *b = getenv("MC_BIN");
    return b ? b : "build/release/mccom";
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

struct job {
    const struct mc_test *t;
    pid_t pid;
    double start;
    char tmpdir[256];
    char log[300];
    int timed_out;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int matches(const struct mc_test *t, int n_pat, char **pat) {
    if (n_pat == 0)
        return 1;
    for (int i = 0; i < n_pat; i++)
        if (strstr(t->name, pat[i]))
            return 1;
    return 0;
}

static void start_job(struct job *j) {
    const char *base = getenv("TMPDIR");
    snprintf(j->tmpdir, sizeof j->tmpdir, "%s/mctest.XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(j->tmpdir)) {
        perror("mkdtemp");
        exit(2);
    }
    snprintf(j->log, sizeof j->log, "%s.log", j->tmpdir);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(2);
    }
    if (pid == 0) {
        setpgid(0, 0);
        int fd = open(j->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        setenv("MC_TEST_TMPDIR", j->tmpdir, 1);
        /* caches (retrieval indexes) go to the test's own directory, never
         * to the user's ~/.cache */
        char cache[sizeof j->tmpdir + 16];
        snprintf(cache, sizeof cache, "%s/cache", j->tmpdir);
        setenv("XDG_CACHE_HOME", cache, 1);
        unsetenv("MCCOM_CACHE_DIR");
        if (chdir(".") != 0)
            _exit(2);
        j->t->fn();
        fflush(stdout);
        fflush(stderr);
#ifdef __SANITIZE_ADDRESS__
        /* _exit skips LeakSanitizer's check at exit: run it here, so that a
         * test that leaks fails (LSan exits with its own non-zero status). */
        __lsan_do_leak_check();
#endif
        _exit(g_failed ? 1 : 0);
    }
    setpgid(pid, pid);
    j->pid = pid;
    j->start = now_s();
    j->timed_out = 0;
}

static void print_log(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, stdout);
    fclose(f);
}

int main(int argc, char **argv) {
    int jobs = (int)sysconf(_SC_NPROCESSORS_ONLN);
    int verbose = 0, list = 0;
    int n_pat = 0;
    char **pat = calloc((size_t)argc, sizeof(char *));
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-j") && i + 1 < argc)
            jobs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-v"))
            verbose = 1;
        else if (!strcmp(argv[i], "-l"))
            list = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: %s [-j N] [-v] [-l] [PATTERN...]\n", argv[0]);
            free(pat);
            return 0;
        } else
            pat[n_pat++] = argv[i];
    }
    if (jobs < 1)
        jobs = 1;
    size_t n_all = (size_t)(__stop_mc_tests - __start_mc_tests);
    const struct mc_test **todo = calloc(n_all + 1, sizeof *todo);
    size_t n_todo = 0;
    for (const struct mc_test *t = __start_mc_tests; t < __stop_mc_tests; t++) {
        if (!t->name || !t->fn)
            continue; /* section padding */
        if (matches(t, n_pat, pat))
            todo[n_todo++] = t;
    }
    if (list) {
        for (size_t i = 0; i < n_todo; i++)
            printf("%s  (%s, %ds)\n", todo[i]->name, todo[i]->file, todo[i]->timeout_s);
        free(todo);
        free(pat);
        return 0;
    }
    const char *timeout_scale_env = getenv("MC_TEST_TIMEOUT_SCALE");
    double tscale = timeout_scale_env ? atof(timeout_scale_env) : 1.0;
    if (tscale <= 0)
        tscale = 1.0;

    struct job *running = calloc((size_t)jobs, sizeof *running);
    int n_pass = 0, n_fail = 0, n_skip = 0;
    size_t next = 0;
    int active = 0;
    double t0 = now_s();
    while (next < n_todo || active > 0) {
        while (active < jobs && next < n_todo) {
            for (int s = 0; s < jobs; s++) {
                if (running[s].t == NULL) {
                    running[s].t = todo[next++];
                    start_job(&running[s]);
                    active++;
                    break;
                }
            }
        }
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid == 0) {
            double now = now_s();
            for (int s = 0; s < jobs; s++) {
                struct job *j = &running[s];
                if (j->t && !j->timed_out && now - j->start > j->t->timeout_s * tscale) {
                    j->timed_out = 1;
                    kill(-j->pid, SIGKILL);
                }
            }
            usleep(2000);
            continue;
        }
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int s = 0; s < jobs; s++) {
            struct job *j = &running[s];
            if (!j->t || j->pid != pid)
                continue;
            kill(-j->pid, SIGKILL); /* reap any stray children of the test */
            double dt = now_s() - j->start;
            const char *verdict;
            int show = verbose;
            if (j->timed_out) {
                verdict = "TIMEOUT";
                n_fail++;
                show = 1;
            } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
                verdict = "PASS";
                n_pass++;
            } else if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
                verdict = "SKIP";
                n_skip++;
                show = 1;
            } else {
                verdict = WIFSIGNALED(status) ? "CRASH" : "FAIL";
                n_fail++;
                show = 1;
            }
            printf("%-7s %-48s %7.2fs\n", verdict, j->t->name, dt);
            if (show)
                print_log(j->log);
            fflush(stdout);
            remove(j->log);
            nftw(j->tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
            j->t = NULL;
            active--;
            break;
        }
    }
    printf("(%.1fs)\n", now_s() - t0);
    printf("%d passed, %d failed, %d skipped\n", n_pass, n_fail, n_skip);
    free(running);
    free(todo);
    free(pat);
    return n_fail ? 1 : 0;
}
