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
    {"ls", cmd_ls, "list the channels and shared arrays on this machine",
     "usage: ndshm ls [NAME|GLOB...] [--names] [--json]\n"
     "\n"
     "Every channel and shared array on this machine (or those named; globs such as 'cam*'\n"
     "select): name, kind (channel or array), dtype, shape, slots x slot capacity, shared\n"
     "memory used, last version, age of the last version (arrays: since creation), readers\n"
     "(processes attached; '-' when unknown), writer pid and whether it is alive, dead\n"
     "(crashed without closing) or closed, in another pid namespace, and whether the channel\n"
     "is persistent (gc keeps it). Entries that cannot be read are listed with the reason.\n"
     "A NAME that does not exist is an error (exit status 1).\n"
     "\n"
     "  --names  only the names, one per line\n"
     "  --json   one JSON object {\"channels\": [...]} for scripts\n"},
    {"stat", cmd_stat, "details of one channel or shared array",
     "usage: ndshm stat NAME [--json]\n"
     "\n"
     "What `ls` shows for one entry, plus, for a channel: versions published, re-allocations,\n"
     "the current data segment generation, creation time, permission bits, readers, writer\n"
     "and whether it is persistent; for a shared array: its header (dtype, shape, order, size,\n"
     "creation time, mode, processes attached); and the shared-memory segments behind it.\n"
     "\n"
     "  --json   one JSON object for scripts\n"},
    {"echo", cmd_echo, "print every version of a channel as numpy prints it",
     "usage: ndshm echo NAME [--once | --count N] [--oldest] [--field F,...] [--slice S]\n"
     "                  [--repr] [--full] [--threshold N] [--edgeitems N] [--linewidth N]\n"
     "                  [--precision N] [--timeout SECONDS] [--json]\n"
     "\n"
     "Prints the newest version of the channel, then every version after it as it is\n"
     "published, each under a line '# NAME version V DTYPE SHAPE latency L' (then the\n"
     "version's extras that are set: user_ns, tag, origin version, metadata size),\n"
     "formatted as numpy's print() does (str; --repr: repr), summarised with '...' beyond\n"
     "--threshold elements. Versions lost because the writer lapped this reader are said. Runs "
     "until\n"
     "Ctrl-C, --count versions, or --timeout seconds without a new version.\n"
     "\n"
     "  --once            print one version (the newest; waits for the first) and exit\n"
     "  --count N         stop after N versions\n"
     "  --oldest          start at the oldest version still in the ring\n"
     "  --field F,...     print only these fields of each version: version, publish_ns,\n"
     "                    latency_ns, dropped, dtype, shape, nbytes, generation, user_ns,\n"
     "                    user_tag, origin_version, origin_ns, meta_len (the version's\n"
     "                    extras), data\n"
     "  --slice S         print a part of the array, numpy indices: '0:3,:', '-1', '::2,5',\n"
     "                    '...,0'\n"
     "  --repr            numpy's repr: array([...], dtype=...)\n"
     "  --full            never summarise (numpy threshold=inf)\n"
     "  --threshold N     summarise arrays of more than N elements (default 1000)\n"
     "  --edgeitems N     items kept at each edge when summarising (default 3)\n"
     "  --linewidth N     characters per line (default 75)\n"
     "  --precision N     digits after the point, at most (default 8)\n"
     "  --timeout S       stop after S seconds without a new version (exit 1 if none came)\n"
     "  --json            one JSON object per version (JSON Lines); data as nested lists,\n"
     "                    null with \"truncated\": true beyond --threshold\n"},
    {"watch", cmd_watch, "live rate, jitter, bandwidth, latency and drops of channels",
     "usage: ndshm watch NAME|GLOB... [--for SECONDS] [--interval SECONDS] [--json]\n"
     "\n"
     "Reads every version of each channel (one reader thread per channel, as a copying\n"
     "reader does) and prints, every interval and channel: versions/s published, the period\n"
     "between consecutive versions (min / max / standard deviation, from their publish\n"
     "times: the writer's jitter), bandwidth (bytes/s read), write-to-read latency p50 / p99 /\n"
     "max as this reader sees it, versions dropped (lapped by the writer), re-allocations,\n"
     "the last version, the writer's state and the dtype and shape. A summary per channel\n"
     "ends it. Runs until Ctrl-C, or for --for SECONDS.\n"
     "\n"
     "  --for S        stop after S seconds (default: until Ctrl-C)\n"
     "  --interval S   seconds between lines (default 1)\n"
     "  --json         one JSON object per channel and interval (JSON Lines), then one\n"
     "                 summary object per channel\n"},
    {"cat", cmd_cat, "the latest (or next) version: print it or save it as .npy",
     "usage: ndshm cat NAME [-o FILE.npy] [--next] [--timeout SECONDS] [--slice S] [--repr]\n"
     "                 [--full] [--threshold N] [--edgeitems N] [--linewidth N]\n"
     "                 [--precision N] [--json]\n"
     "\n"
     "Reads the newest version of the channel (with --next: waits for the next one) and\n"
     "prints it as numpy's print() does (summarised with '...' beyond --threshold elements),\n"
     "or writes it to FILE.npy (numpy's format: numpy.load(FILE) reads it). For a shared\n"
     "array, its current contents.\n"
     "\n"
     "  -o, --output FILE  write a .npy file instead of printing\n"
     "  --next             wait for the version after the current newest\n"
     "  --timeout S        with --next: give up after S seconds (default: wait forever)\n"
     "  --slice S          only a part of the array, numpy indices such as '0:3,:'\n"
     "  --repr, --full, --threshold N, --edgeitems N, --linewidth N, --precision N\n"
     "                     numpy print options, as for `ndshm echo` (--max N: --threshold N)\n"
     "  --json             metadata and data (nested lists; complex = [re, im]; NaN/Inf =\n"
     "                     null; null and \"truncated\": true beyond --threshold) as one JSON\n"
     "                     object\n"},
    {"pub", cmd_pub, "publish .npy/.npz files or inline values into a channel",
     "usage: ndshm pub NAME (FILE.npy | FILE.npz | VALUE)... [--dtype DTYPE] [--key KEY]\n"
     "                 [--transpose | --c-order] [--rate HZ] [--count N] [--slots N]\n"
     "                 [--persist] [--hold] [--unlink] [--json]\n"
     "\n"
     "Publishes the arrays in order (cycling through them when --count is larger) into\n"
     "channel NAME, creating it if needed or taking it over when its writer is gone. Each\n"
     "source is a .npy file, one array of an .npz archive (--key), or an inline value in\n"
     "Python/numpy syntax: '[1.0, 2.0, 3.0]', nested lists for n-d '[[1, 2], [3, 4]]', a\n"
     "scalar '5', True, 1+2j (commas or spaces between elements; an argument that starts\n"
     "with '[' or reads as a number is a value: write ./5 for a file named 5).\n"
     "\n"
     "  --dtype DTYPE  dtype of the inline values (float64, f8, int32, u1, bool, ...);\n"
     "                 default: as numpy.array() infers it\n"
     "  --key KEY      the array of an .npz archive to publish (needed when it holds\n"
     "                 several)\n"
     "  --transpose    a Fortran-order .npy: publish its transpose (shape reversed, no copy)\n"
     "  --c-order      a Fortran-order .npy: convert it to C order (same shape)\n"
     "  --rate HZ      publish HZ versions per second (default: as fast as possible)\n"
     "  --count N      publish N versions in all (default: each source once)\n"
     "  --slots N      ring slots when the channel is created (default 4)\n"
     "  --persist      mark the channel persistent: gc keeps it after pub exits\n"
     "  --hold         stay the channel's live writer until Ctrl-C after the last publish\n"
     "  --unlink       remove the channel when done\n"
     "  --json         print the result as one JSON object\n"},
    {"record", cmd_record, "record every version of channels into a directory",
     "usage: ndshm record NAME|GLOB... DIR [--count N] [--for SECONDS] [--timeout SECONDS]\n"
     "                    [--oldest] [--force] [--json]\n"
     "\n"
     "Reads every version of each channel (in order; one reader thread per channel) and\n"
     "writes each as DIR/<channel>/v<version>.npy, with one line per version in one index,\n"
     "DIR/index.csv: channel,version,publish_ns,latency_ns,dropped,file. DIR must not exist.\n"
     "Stops after --count versions in all, after --for seconds, after --timeout seconds\n"
     "without a new version, when every writer is gone and everything is read, or at Ctrl-C.\n"
     "\n"
     "  --oldest   start at the oldest version still in each ring (default: the next one)\n"
     "  --force    record into DIR even if it exists (its index is replaced)\n"
     "  --json     print the result as one JSON object\n"},
    {"replay", cmd_replay, "publish a recording again, in its order, at a rate or its timing",
     "usage: ndshm replay DIR [NAME] [--rate HZ | --realtime] [--loop N] [--slots N]\n"
     "                    [--prefix P] [--rename RECORDED=NEW]... [--json]\n"
     "\n"
     "Publishes the versions recorded in DIR (by `ndshm record`) in the order they were\n"
     "first published, across all channels of the recording, each into the channel of its\n"
     "recorded name (NAME: the one channel of a single-channel recording goes there; a\n"
     "recording of the first format, one channel without names, needs NAME).\n"
     "\n"
     "  --rate HZ             HZ versions per second in all (default: as fast as possible)\n"
     "  --realtime            keep the recorded spacing between versions\n"
     "  --loop N              play the recording N times (default 1)\n"
     "  --slots N             ring slots when a channel is created (default 4)\n"
     "  --prefix P            publish channel C as PC\n"
     "  --rename RECORDED=NEW publish channel RECORDED as NEW (repeatable)\n"
     "  --json                print the result as one JSON object\n"},
    {"rm", cmd_rm, "remove channels or shared arrays",
     "usage: ndshm rm NAME|GLOB... [--force] [--arrays-older-than DURATION] [--json]\n"
     "\n"
     "Unlinks the shared-memory segments of each channel or shared array. Processes still\n"
     "attached keep working on their mappings (as with unlink(2)); new ones no longer find\n"
     "it. A channel whose writer is alive is refused (and its writer's pid named) unless\n"
     "--force. Exit status 1 if anything could not be removed.\n"
     "\n"
     "  -f, --force                 remove channels whose writer is alive too\n"
     "  --arrays-older-than DURATION\n"
     "                              remove every shared array created more than DURATION\n"
     "                              ago (90, 30s, 10m, 2h, 7d); gc never removes arrays\n"
     "  --json                      print the results as one JSON object\n"},
    {"gc", cmd_gc, "remove channels whose writer is dead or gone (not persistent ones)",
     "usage: ndshm gc [--dry-run] [--json]\n"
     "\n"
     "Removes every channel whose writer crashed or closed; never one whose writer is alive\n"
     "(checked again right before each removal), never a persistent channel (created by\n"
     "`ndshm pub --persist` or with NDSHM_PERSISTENT), never a shared array (`ndshm rm\n"
     "--arrays-older-than` removes those). Prints what it removed.\n"
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

const struct cli_cmd *cli_commands(size_t *n)
{
    *n = NCOMMANDS;
    return commands;
}

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
               "See, inspect, record, replay and clean up ndshm shared-memory channels and\n"
               "shared arrays.\n"
               "\n"
               "commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].synopsis);
    fprintf(f,
            "\n"
            "Any other command X runs the program ndshm-X found next to ndshm or on PATH\n"
            "(e.g. `ndshm bridge` runs ndshm-bridge).\n"
            "`ndshm <command> --help` describes a command, `man ndshm-<command>` too.\n"
            "Exit status: 0 success, 1 failure, 2 usage error, 127 program ndshm-X not found.\n");
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
        if (strcmp(argv[2], "--man") == 0) /* the manual pages (man.c) */
            return cli_man(stdout, argc > 3 ? argv[3] : NULL);
        if (strcmp(argv[2], "--commands") == 0) { /* for completion and the build */
            for (size_t i = 0; i < NCOMMANDS; i++)
                printf("%s\n", commands[i].name);
            return CLI_OK;
        }
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
