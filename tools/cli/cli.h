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
/* "ndshm CMD: <what>: <why> (<status name>)": for errors where the tool knows better than the
 * library's generic message what is wrong (a file's content). Returns CLI_FAIL. */
int cli_fail_why(int status, const char *why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "ndshm CMD: <what>" plus a hint to --help on stderr; returns CLI_USAGE. */
int cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print the command's help to stdout; returns CLI_OK. */
int cli_help(const struct cli_cmd *cmd);
const struct cli_cmd *cli_find(const char *name);
const struct cli_cmd *cli_commands(size_t *n);
/* `ndshm help --man [COMMAND]`: ndshm(1), or ndshm-COMMAND(1), as roff on f. */
int cli_man(FILE *f, const char *only);

/* SIGINT/SIGTERM set cli_stop (no SA_RESTART, so sleeps return early). */
void cli_catch_signals(void);
/* Sleep until CLOCK_MONOTONIC reaches deadline_ns or cli_stop is set. */
void cli_sleep_until(uint64_t deadline_ns);

/* Strict number parsing of an option value; 0 on success. */
int cli_parse_u64(const char *s, uint64_t *v);
int cli_parse_seconds(const char *s, double *v);  /* finite, >= 0 */
int cli_parse_rate(const char *s, double *v);     /* finite, > 0 */
int cli_parse_duration(const char *s, double *v); /* seconds: "90", "30s", "10m", "2h", "7d" */

/* Text formatting into caller buffers. */
void cli_fmt_shape(char *buf, size_t n, uint32_t ndim, const uint64_t *shape); /* "(3, 4)" */
void cli_fmt_bytes(char *buf, size_t n, uint64_t bytes);                       /* "64.3 KiB" */
void cli_fmt_duration(char *buf, size_t n, uint64_t ns);                       /* "12.5 us" */

/* JSON output. */
void cli_json_str(FILE *f, const char *s);
void cli_json_shape(FILE *f, uint32_t ndim, const uint64_t *shape); /* [3, 4] */

/* Print an array as nested JSON lists (complex = [re, im], NaN/Inf = null). */
void cli_print_json_array(FILE *f, int dtype, uint32_t ndim, const uint64_t *shape,
                          const void *data);

struct cli_array;

/* A growing string; on allocation failure .oom is set and further additions are dropped. */
struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
};
#define SBUF_INIT                                                                                  \
    {                                                                                              \
        NULL, 0, 0, 0                                                                              \
    }
void sb_add(struct sbuf *b, const char *s, size_t n);
void sb_puts(struct sbuf *b, const char *s);
void sb_spaces(struct sbuf *b, int n); /* nothing for n <= 0 */
void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_free(struct sbuf *b);

/* numpy's print options (numpy.set_printoptions) that the formatter honours. */
struct cli_np_opts {
    uint64_t threshold; /* summarise arrays with more elements than this (1000) */
    uint64_t edgeitems; /* items kept at each edge when summarising (3) */
    uint32_t linewidth; /* characters per line (75) */
    uint32_t precision; /* digits after the point, at most (8) */
    int repr;           /* 1: repr(a), "array([...], dtype=...)"; 0: str(a), as print(a) */
};
#define CLI_NP_OPTS_INIT                                                                           \
    {                                                                                              \
        1000, 3, 75, 8, 0                                                                          \
    }
/* Append numpy's str(a) or repr(a) of a C-contiguous array to out (no final newline). */
int cli_np_format(struct sbuf *out, int dtype, uint32_t ndim, const uint64_t *shape,
                  const void *data, const struct cli_np_opts *opts);
/* numpy basic indexing of a C-order array ("0:3,:", "-1", "::2", "...,0"): a C-order copy of
 * the selection in out->own. Errors say what numpy would. */
int cli_slice(const char *spec, int dtype, uint32_t ndim, const uint64_t *shape, const void *data,
              struct cli_array *out, char *why, size_t why_len);
double cli_half_to_double(uint16_t h);
uint16_t cli_double_to_half(double x); /* nearest, ties to even */

/* ---- input: files and inline values (input.c, literal.c) ---- */

/* An array read from a file or a literal. data is C order; file/own are the allocations. */
struct cli_array {
    int dtype;
    uint32_t ndim;
    uint64_t shape[NDSHM_MAX_DIMS];
    uint64_t nbytes;
    const void *data;
    void *file; /* the file's bytes (data points into them) */
    void *own;  /* converted or parsed data */
};
struct cli_load_opts {
    const char *key; /* .npz: the array to take ("x" or "x.npy") */
    int transpose;   /* Fortran order: publish the transpose (shape reversed, no copy) */
    int c_order;     /* Fortran order: convert to C order (same shape) */
};
/* Read a regular file whole, opened with O_NONBLOCK (a FIFO or device fails at once). On
 * failure a status and, in why, what is wrong. */
int cli_read_file(const char *path, uint64_t max, void **buf, size_t *len, char *why,
                  size_t why_len);
/* A .npy file or one array of an .npz archive. */
int cli_load_array(const char *path, const struct cli_load_opts *o, struct cli_array *out,
                   char *why, size_t why_len);
/* The same from memory: buf (malloc'ed, n bytes plus one) is taken over, whatever the outcome.
 * npz_name: the file is called *.npz. */
int cli_parse_array(void *buf, size_t n, int npz_name, const struct cli_load_opts *o,
                    struct cli_array *out, char *why, size_t why_len);
void cli_array_free(struct cli_array *a);
/* Copy count elements of isz bytes, a Fortran-order array of this shape, into C order. */
void cli_f_to_c(const void *from, void *to, size_t isz, uint32_t ndim, const uint64_t *shape,
                uint64_t count);
/* An inline value: "[1.0, 2.0]", "[[1, 2], [3, 4]]", "5", "1+2j". dtype 0 = infer. */
int cli_parse_literal(const char *text, int dtype, struct cli_array *out, char *why,
                      size_t why_len);
/* 1 if arg reads as an inline value rather than a file name ("[...]", a number, True). */
int cli_looks_literal(const char *arg);

/* ---- print options of cat and echo (cmd_echo.c) ---- */
enum {
    CLI_OPT_REPR = 1001,
    CLI_OPT_FULL,
    CLI_OPT_THRESHOLD,
    CLI_OPT_EDGEITEMS,
    CLI_OPT_LINEWIDTH,
    CLI_OPT_PRECISION,
    CLI_OPT_SLICE,
};
#define CLI_PRINT_LONGOPTS                                                                         \
    {"repr", no_argument, NULL, CLI_OPT_REPR}, {"full", no_argument, NULL, CLI_OPT_FULL},          \
        {"threshold", required_argument, NULL, CLI_OPT_THRESHOLD},                                 \
        {"edgeitems", required_argument, NULL, CLI_OPT_EDGEITEMS},                                 \
        {"linewidth", required_argument, NULL, CLI_OPT_LINEWIDTH},                                 \
        {"precision", required_argument, NULL, CLI_OPT_PRECISION},                                 \
    {                                                                                              \
        "slice", required_argument, NULL, CLI_OPT_SLICE                                            \
    }
struct cli_print {
    struct cli_np_opts np;
    const char *slice; /* numpy indices, or NULL */
};
#define CLI_PRINT_INIT                                                                             \
    {                                                                                              \
        CLI_NP_OPTS_INIT, NULL                                                                     \
    }
/* 0: option c handled; 1: not a print option; CLI_USAGE: a bad value (message printed). */
int cli_print_option(int c, const char *arg, struct cli_print *p);

/* Names given on the command line, globs ('cam*') expanded against ndshm_list() (kinds: 0 =
 * any, else a bit set of 1 << ndshm_kind). A glob that matches nothing is an error; plain names
 * are kept as they are (checked by whoever opens them). Duplicates are dropped. */
int cli_is_glob(const char *s);
int cli_match_names(int nargs, char **args, int kinds, char ***names, size_t *count);
void cli_free_names(int nargs, char **args, char **names, size_t count);

/* Become the writer of `name` (created if needed, taken over when its writer is gone); a live
 * writer is reported with its pid. flags: extra ndshm_flags. */
int cli_open_writer(const char *name, uint32_t slots, uint32_t flags, ndshm_writer **w);

/* The shm directory ($NDSHM_DIR or /dev/shm), as the library uses it. */
const char *cli_shm_dir(void);

/* Subcommands. */
int cmd_ls(int argc, char **argv);
int cmd_stat(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_echo(int argc, char **argv);
int cmd_pub(int argc, char **argv);
int cmd_record(int argc, char **argv);
int cmd_replay(int argc, char **argv);

#endif
