/* The `ndshm` command-line tool: shared helpers of the subcommands. */
#ifndef NDSHM_CLI_H
#define NDSHM_CLI_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "ndshm/ndshm.h"

/* Exit statuses. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2, CLI_NOPROG = 127 };

/* A subcommand: argv[0] is its name. */
struct cli_cmd {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *synopsis; /* one line for `ndshm --help` */
    const char *help;     /* full text for `ndshm CMD --help` */
};

extern const char *cli_cmd_name; /* for messages: "ndshm <cmd>: ..." */
extern volatile sig_atomic_t cli_stop;

/* "ndshm CMD: <what>: <ndshm_strerror(status)> (<status name>)" on stderr; returns CLI_FAIL. */
int cli_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "ndshm CMD: <what>" plus a hint to --help on stderr; returns CLI_USAGE. */
int cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print the command's help to stdout; returns CLI_OK. */
int cli_help(const struct cli_cmd *cmd);
const struct cli_cmd *cli_find(const char *name);

/* SIGINT/SIGTERM set cli_stop (no SA_RESTART, so sleeps return early). */
void cli_catch_signals(void);
/* Sleep until CLOCK_MONOTONIC reaches deadline_ns or cli_stop is set. */
void cli_sleep_until(uint64_t deadline_ns);

/* Strict number parsing of an option value; 0 on success. */
int cli_parse_u64(const char *s, uint64_t *v);
int cli_parse_seconds(const char *s, double *v); /* finite, >= 0 */
int cli_parse_rate(const char *s, double *v);    /* finite, > 0 */

/* Text formatting into caller buffers. */
void cli_fmt_shape(char *buf, size_t n, uint32_t ndim, const uint64_t *shape); /* "(3, 4)" */
void cli_fmt_bytes(char *buf, size_t n, uint64_t bytes);                       /* "64.3 KiB" */
void cli_fmt_duration(char *buf, size_t n, uint64_t ns);                       /* "12.5 us" */

/* JSON output. */
void cli_json_str(FILE *f, const char *s);
void cli_json_shape(FILE *f, uint32_t ndim, const uint64_t *shape); /* [3, 4] */

/* Print an array: numpy-like text (json = 0) or nested JSON lists (json = 1). */
void cli_print_array(FILE *f, int dtype, uint32_t ndim, const uint64_t *shape, const void *data,
                     int json);

/* The shm directory ($NDSHM_DIR or /dev/shm), as the library uses it. */
const char *cli_shm_dir(void);

/* Subcommands. */
int cmd_ls(int argc, char **argv);
int cmd_stat(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_pub(int argc, char **argv);
int cmd_record(int argc, char **argv);
int cmd_replay(int argc, char **argv);

#endif
