/* Fuzz target: the llama2.c model converter over arbitrary model bytes (its
 * 28-byte header, then weights), with the real tok512.bin tokenizer of
 * stories260K ($MC_SHARED or ../shared; the target returns without it). The
 * bytes reach mc_convert_llama2c as a file (a memfd); a header it accepts is
 * converted into a scratch GGUF that is removed again.
 * Corpus: fuzz/corpus/llama2c (headers with out-of-range and overflowing
 * fields, e.g. a vocabulary size of INT_MIN). */
#include "fuzz.h"
#include "mccom/convert.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static int fuzz_llama2c(const uint8_t *data, size_t size) {
    const char *shared = getenv("MC_SHARED") ? getenv("MC_SHARED") : "../shared";
    char tok[1024], model[64], out[1024];
    snprintf(tok, sizeof tok, "%s/models/stories260K/tok512.bin", shared);
    if (access(tok, R_OK) != 0)
        return 0;
    int fd = memfd_create("fuzz-llama2c", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    snprintf(model, sizeof model, "/proc/self/fd/%d", fd);
    const char *dir = getenv("MC_TEST_TMPDIR") ? getenv("MC_TEST_TMPDIR") : "/tmp";
    snprintf(out, sizeof out, "%s/fuzz-llama2c-%d.gguf", dir, (int)getpid());
    mc_err err;
    if (mc_convert_llama2c(model, tok, out, &err) == 0)
        unlink(out);
    close(fd);
    return 0;
}

MC_FUZZ_TARGET(llama2c, fuzz_llama2c)
