/* src/cli/cli.h — the `mccom` program: one function per subcommand.
 * Each returns the process exit status (0 ok, 1 failure, 2 usage error). */
#ifndef MCCOM_CLI_H
#define MCCOM_CLI_H

#include "mccom/common.h"

#include <stdio.h>

typedef int (*mc_cmd_fn)(int argc, char **argv);

struct mc_cmd {
    const char *name;
    mc_cmd_fn fn;
    const char *summary;
};

/* Print "mccom: <what>: <message>" (and the byte offset if known) to stderr. */
void mc_cli_error(const char *what, const mc_err *err);

/* Subcommands (src/cli/cmd_*.c). */
int mc_cmd_info(int argc, char **argv);
int mc_cmd_generate(int argc, char **argv);
int mc_cmd_convert(int argc, char **argv);
int mc_cmd_quantize(int argc, char **argv);
int mc_cmd_tokenize(int argc, char **argv);
int mc_cmd_tokenizer(int argc, char **argv);
int mc_cmd_index(int argc, char **argv);
int mc_cmd_retrieve(int argc, char **argv);
int mc_cmd_eval(int argc, char **argv);

#endif
