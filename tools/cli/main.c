/*
 * ndshm — see, inspect, record, replay and clean up ndshm channels.
 *
 *   ndshm <command> [options] [args]      ndshm <command> --help      ndshm --help
 *
 * Unknown commands are dispatched git-style: `ndshm X args...` runs the program `ndshm-X`
 * found next to this binary (its real path, /proc/self/exe) or else on PATH.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

int cmd_array(int argc, char **argv); /* tools/cli/cmd_array.c (shared arrays) */

static const struct cli_cmd commands[] = {
    {"ls", cmd_ls, "list every channel on this machine",
     "usage: ndshm ls [--json]\n"
     "\n"
     "Every channel on this machine: name, dtype, shape, slots x slot capacity, shared memory\n"
     "used, last version, age of the last version, writer pid and whether it is alive, dead\n"
     "(crashed without closing) or closed. Channels that cannot be read are listed with the\n"
     "reason.\n"
     "\n"
     "  --json   one JSON object {\"channels\": [...]} for scripts\n"},
    {"stat", cmd_stat, "details of one channel, with counters and segment names",
     "usage: ndshm stat NAME [--json]\n"
     "\n"
     "What `ls` shows for one channel, plus: versions published, re-allocations, the current\n"
     "data segment generation, creation time, permission bits and the shared-memory segments\n"
     "behind the channel.\n"
     "\n"
     "  --json   one JSON object for scripts\n"},
    {"watch", cmd_watch, "live rate, latency, drops and re-allocations of a channel",
     "usage: ndshm watch NAME [--for SECONDS] [--interval SECONDS] [--json]\n"
     "\n"
     "Reads every version of the channel (as a copying reader does) and prints, every\n"
     "interval: versions/s published, versions/s read, write-to-read latency p50 / p99 / max\n"
     "as this reader sees it, versions dropped (lapped by the writer), re-allocations, the\n"
     "last version and its dtype and shape. Runs until Ctrl-C, or for --for SECONDS.\n"
     "\n"
     "  --for S        stop after S seconds (default: until Ctrl-C)\n"
     "  --interval S   seconds between lines (default 1)\n"
     "  --json         one JSON object per line (JSON Lines), then a summary object\n"},
    {"cat", cmd_cat, "read the latest (or next) version; print it or save it as .npy",
     "usage: ndshm cat NAME [-o FILE.npy] [--next] [--timeout SECONDS] [--max N] [--json]\n"
     "\n"
     "Reads the newest version of the channel (with --next: waits for the next one) and\n"
     "writes it to FILE.npy (numpy's format: numpy.load(FILE) reads it), or prints it as\n"
     "text, numpy style, when it has at most --max elements.\n"
     "\n"
     "  -o, --output FILE  write a .npy file instead of printing\n"
     "  --next             wait for the version after the current newest\n"
     "  --timeout S        with --next: give up after S seconds (default: wait forever)\n"
     "  --max N            print at most N elements (default 1000)\n"
     "  --json             metadata and data (nested lists; complex = [re, im]; NaN/Inf =\n"
     "                     null) as one JSON object\n"},
    {"pub", cmd_pub, "publish .npy files into a channel, creating it if needed",
     "usage: ndshm pub NAME FILE.npy... [--rate HZ] [--count N] [--slots N] [--hold] [--json]\n"
     "\n"
     "Publishes the files in order (cycling through them when --count is larger) into\n"
     "channel NAME, creating it if needed or taking it over when its writer is gone.\n"
     "\n"
     "  --rate HZ    publish HZ versions per second (default: as fast as possible)\n"
     "  --count N    publish N versions in all (default: each file once)\n"
     "  --slots N    ring slots when the channel is created (default 4)\n"
     "  --hold       stay the channel's live writer until Ctrl-C after the last publish\n"
     "  --unlink     remove the channel when done\n"
     "  --json       print the result as one JSON object\n"},
    {"record", cmd_record, "record every version with its timestamps into a directory",
     "usage: ndshm record NAME DIR [--count N] [--for SECONDS] [--timeout SECONDS] [--oldest]\n"
     "                         [--force] [--json]\n"
     "\n"
     "Reads every version (in order) and writes each as DIR/v<version>.npy, with one line per\n"
     "version in DIR/index.csv: version,publish_ns,latency_ns,dropped,file. Stops after\n"
     "--count versions, after --for seconds, after --timeout seconds without a new version,\n"
     "when the writer is gone and everything is read, or at Ctrl-C.\n"
     "\n"
     "  --oldest   start at the oldest version still in the ring (default: the next one)\n"
     "  --force    write into DIR even if it holds a recording already (index is replaced)\n"
     "  --json     print the result as one JSON object\n"},
    {"replay", cmd_replay, "publish a recording again, at a rate or with its timing",
     "usage: ndshm replay DIR NAME [--rate HZ | --realtime] [--loop N] [--slots N] [--json]\n"
     "\n"
     "Publishes the versions recorded in DIR (by `ndshm record`) into channel NAME, in order.\n"
     "\n"
     "  --rate HZ     HZ versions per second (default: as fast as possible)\n"
     "  --realtime    keep the recorded spacing between versions\n"
     "  --loop N      play the recording N times (default 1)\n"
     "  --slots N     ring slots when the channel is created (default 4)\n"
     "  --json        print the result as one JSON object\n"},
    {"rm", cmd_rm, "remove channels",
     "usage: ndshm rm NAME... [--json]\n"
     "\n"
     "Unlinks the shared-memory segments of each channel. A writer or readers still attached\n"
     "keep working on their mappings (as with unlink(2)); new readers no longer find it.\n"
     "Exit status 1 if any channel could not be removed.\n"},
    {"gc", cmd_gc, "remove channels whose writer is dead or gone",
     "usage: ndshm gc [--dry-run] [--json]\n"
     "\n"
     "Removes every channel whose writer crashed or closed; never one whose writer is alive\n"
     "(checked again right before each removal). Prints what it removed.\n"
     "\n"
     "  --dry-run  only say what would be removed\n"
     "  --json     print the result as one JSON object\n"},
    {"array", cmd_array, "create a shared array (empty, or from .npy), save it as .npy, fill it",
     "usage: ndshm array create NAME --dtype DTYPE --shape 3,4 [--order C|F] [--mode 0640]\n"
     "       ndshm array create NAME --from FILE.npy [--mode 0640]\n"
     "       ndshm array save NAME FILE.npy\n"
     "       ndshm array fill NAME VALUE\n"
     "\n"
     "Shared arrays: one named n-d array that every attached process maps and changes in\n"
     "place (no versions), beside channels in the same namespace. `ndshm ls`, `stat`, `cat`\n"
     "and `rm` show and remove them; `gc` never removes one.\n"
     "\n"
     "create   a new, zero-filled array (exit 1 if the name is taken):\n"
     "  --dtype D      bool, int8..int64, uint8..uint64, float16, float32, float64,\n"
     "                 complex64, complex128, or a numpy string such as '<f4'\n"
     "  --shape S      sizes separated by commas: '3,4', '1000', '' for a scalar (0-d)\n"
     "  --order C|F    memory order (default C; F = Fortran, column-major)\n"
     "  --mode M       permission bits in octal, applied exactly (default 0600)\n"
     "  --from F.npy   dtype, shape, order and contents from a .npy file (C or Fortran\n"
     "                 order, as numpy.save writes them)\n"
     "save     write the array to FILE.npy (its dtype, shape and order: numpy.load gives it\n"
     "         back exactly)\n"
     "fill     set every element to VALUE: True/False, an integer in the dtype's range, a\n"
     "         real number (nan, inf), or a complex number such as 1+2j\n"
     "\n"
     "Exit status: 0 success, 1 failure, 2 usage error.\n"},
    {"bench", NULL, "run the two-process latency benchmark (program ndshm-bench)",
     "usage: ndshm bench [ARGS...]\n"
     "\n"
     "Runs ndshm-bench, the two-process write-to-read latency harness, with ARGS, and shows\n"
     "its table. ndshm-bench --help lists its options.\n"},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

const struct cli_cmd *cli_find(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

int cli_help(const struct cli_cmd *cmd)
{
    fputs(cmd->help, stdout);
    return CLI_OK;
}

static int usage_all(FILE *f)
{
    fprintf(f, "usage: ndshm <command> [options] [args]\n"
               "\n"
               "See, inspect, record, replay and clean up ndshm shared-memory channels.\n"
               "\n"
               "commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].synopsis);
    fprintf(f, "\n"
               "Any other command X runs the program ndshm-X found next to ndshm or on PATH\n"
               "(e.g. `ndshm bridge` runs ndshm-bridge).\n"
               "`ndshm <command> --help` describes a command. Exit status: 0 success, 1 failure,\n"
               "2 usage error, 127 program ndshm-X not found.\n");
    return CLI_OK;
}

/* Run ndshm-<sub> with argv[1..]: next to our own binary first, then on PATH. Returns only on
 * failure. */
static int dispatch(const char *sub, int argc, char **argv)
{
    char prog[NAME_MAX + 1];
    if (strlen(sub) + 6 >= sizeof prog || strchr(sub, '/'))
        return cli_usage("'%s' is not an ndshm command", sub);
    snprintf(prog, sizeof prog, "ndshm-%s", sub);
    char **args = calloc((size_t)argc + 1, sizeof *args);
    if (!args)
        return cli_fail(NDSHM_E_NOMEM, "running %s", prog);
    args[0] = prog;
    for (int i = 1; i < argc; i++)
        args[i] = argv[i];
    fflush(NULL);

    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    char beside[PATH_MAX + NAME_MAX + 2] = "";
    if (n > 0) {
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = 0;
            snprintf(beside, sizeof beside, "%s/%s", self, prog);
            execv(beside, args); /* returns only if it cannot run */
        }
    }
    execvp(prog, args);
    int err = errno;
    free(args);
    if (err == ENOENT) {
        fprintf(stderr,
                "ndshm: '%s' is not an ndshm command, and no program %s was found next to "
                "ndshm (%s) or on PATH: %s (%s)\n",
                sub, prog, n > 0 ? self : "?", ndshm_strerror(NDSHM_E_SYS - err),
                ndshm_status_name(NDSHM_E_SYS - err));
        return CLI_NOPROG;
    }
    cli_cmd_name = sub;
    return cli_fail(NDSHM_E_SYS - err, "cannot run %s", prog);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage_all(stderr), CLI_USAGE;
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0)
        return usage_all(stdout);
    if (strcmp(sub, "--version") == 0) {
        printf("ndshm %s\n", ndshm_version());
        return CLI_OK;
    }
    if (strcmp(sub, "help") == 0) {
        if (argc < 3)
            return usage_all(stdout);
        const struct cli_cmd *c = cli_find(argv[2]);
        if (!c)
            return cli_usage("no command '%s'", argv[2]);
        return cli_help(c);
    }
    if (sub[0] == '-')
        return cli_usage("unknown option '%s'", sub);
    const struct cli_cmd *c = cli_find(sub);
    if (!c || !c->run) {
        if (c && argc >= 3 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0) &&
            !c->run) {
            /* `ndshm bench --help`: our text, then the program's own options if it exists */
            cli_help(c);
            fputc('\n', stdout);
        }
        return dispatch(sub, argc - 1, argv + 1);
    }
    cli_cmd_name = c->name;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return cli_help(c);
    }
    return c->run(argc - 1, argv + 1);
}
