/* Replays a fuzz target's corpus (fuzz/corpus/<name>/) as one test. */
#include "../fuzz/fuzz.h"

#include <dirent.h>
#include <stdlib.h>

void mc_fuzz_replay(const char *name, mc_fuzz_fn fn) {
    char dir[512];
    snprintf(dir, sizeof dir, "fuzz/corpus/%s", name);
    DIR *d = opendir(dir);
    CHECK_MSG(d != NULL, "corpus directory %s is missing", dir);
    if (!d)
        return;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        fseek(f, 0, SEEK_END);
        long sz = ftell(f);
        fseek(f, 0, SEEK_SET);
        uint8_t *buf = malloc((size_t)sz + 1);
        size_t got = fread(buf, 1, (size_t)sz, f);
        fclose(f);
        fn(buf, got);
        free(buf);
        n++;
    }
    closedir(d);
    CHECK_MSG(n > 0, "corpus %s is empty", dir);
    printf("replayed %d inputs from %s\n", n, dir);
}
