/* src/cli/cli.h — the `mccom` program: one function per subcommand.
 * Each returns the process exit status (0 ok, 1 failure, 2 usage error). */
#ifndef MCCOM_CLI_H
#define MCCOM_CLI_H

#include "mccom/common.h"

#include <stdio.h>

#define MC_CLI_VERSION "0.1.0"

typedef int (*mc_cmd_fn)(int argc, char **argv);

struct mc_cmd {
    const char *name;
    mc_cmd_fn fn;
    const char *summary;
};

/* Print "mccom: <what>: <message>" (and the byte offset if known) to stderr. */
void mc_cli_error(const char *what, const mc_err *err);

/* A whole file, NUL-terminated (malloc'd; *len gets its length), or NULL. */
char *mc_cli_read_file(const char *path, size_t *len);

/* The index file of `root`: `given` (--index) when not NULL, else retr.idx in
 * the workspace's cache directory (mc_file_cache_dir: outside the repository).
 * Prints the error; 0 or a negative code. */
int mc_cli_index_path(const char *root, const char *given, char *buf, size_t cap);

struct mc_retr_index;
struct mc_retr_params;
/* Open the retrieval index of `root` stored at `path` (rebuilt when missing or
 * corrupt; NULL: built in memory) and bring it up to date; *changed says
 * whether it should be saved.
 * Prints errors (and progress unless quiet). Returns 0 or a negative code. */
int mc_cli_retr_open(struct mc_retr_index **out, const char *root, const char *path,
                     const struct mc_retr_params *p, int quiet, int *changed);

struct mc_copy_index;
/* Open the copy index following `ix`, kept beside the retrieval index's file
 * `retr_path` (NULL: in memory only): loaded when there is one (a bad one is
 * reported unless quiet, and rebuilt), synced, and saved when `save` and it
 * changed. Prints errors. Returns 0 or a negative code (src/cli/copy_open.c). */
int mc_cli_copy_open(struct mc_copy_index **out, struct mc_retr_index *ix, const char *retr_path,
                     int quiet, int save);

/* Subcommands (src/cli/cmd_*.c). */
int mc_cmd_info(int argc, char **argv);
int mc_cmd_generate(int argc, char **argv);
int mc_cmd_convert(int argc, char **argv);
int mc_cmd_quantize(int argc, char **argv);
int mc_cmd_tokenize(int argc, char **argv);
int mc_cmd_tokenizer(int argc, char **argv);
int mc_cmd_index(int argc, char **argv);
int mc_cmd_retrieve(int argc, char **argv);
int mc_cmd_complete(int argc, char **argv);
int mc_cmd_serve(int argc, char **argv);
int mc_cmd_lsp(int argc, char **argv);
int mc_cmd_eval(int argc, char **argv);

#endif
