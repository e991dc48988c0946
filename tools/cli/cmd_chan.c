/* ndshm ls, stat, rm, gc: the channels on this machine. */
#include <dirent.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"

static const char *writer_state(const ndshm_channel_info *ci)
{
    if (ci->writer_pid == 0)
        return "closed";
    return ci->writer_alive ? "alive" : "dead";
}

static uint64_t age_ns(const ndshm_channel_info *ci)
{
    uint64_t now = ndshm_now_ns();
    return now > ci->publish_ns ? now - ci->publish_ns : 0;
}

/* Fields common to ls --json and stat --json; the object is left open for the caller. */
static void json_channel(FILE *f, const ndshm_channel_info *ci)
{
    fprintf(f, "{\"name\": ");
    cli_json_str(f, ci->name);
    fprintf(f, ", \"status\": %d, \"status_name\": ", (int)ci->status);
    cli_json_str(f, ndshm_status_name(ci->status));
    if (ci->status != NDSHM_OK) {
        fprintf(f, ", \"error\": ");
        cli_json_str(f, ndshm_strerror(ci->status));
        return;
    }
    const char *dn = ndshm_dtype_name(ci->dtype);
    fprintf(f, ", \"dtype\": ");
    if (dn)
        cli_json_str(f, dn);
    else
        fputs("null", f);
    fprintf(f, ", \"ndim\": %u, \"shape\": ", (unsigned)ci->ndim);
    cli_json_shape(f, ci->ndim <= NDSHM_MAX_DIMS ? ci->ndim : 0, ci->shape);
    fprintf(f,
            ", \"slots\": %u, \"capacity\": %llu, \"bytes\": %llu, \"version\": %llu, "
            "\"publish_ns\": %llu, \"age_ns\": ",
            (unsigned)ci->slots, (unsigned long long)ci->capacity, (unsigned long long)ci->bytes,
            (unsigned long long)ci->version, (unsigned long long)ci->publish_ns);
    if (ci->version && ci->publish_ns)
        fprintf(f, "%llu", (unsigned long long)age_ns(ci));
    else
        fputs("null", f);
    fprintf(f,
            ", \"generation\": %llu, \"reallocs\": %llu, \"created_ns\": %llu, \"mode\": \"%04o\", "
            "\"writer_pid\": %lld, \"writer_alive\": %s, \"writer\": \"%s\"",
            (unsigned long long)ci->generation, (unsigned long long)ci->reallocs,
            (unsigned long long)ci->created_ns, (unsigned)(ci->mode & 07777),
            (long long)ci->writer_pid, ci->writer_alive ? "true" : "false", writer_state(ci));
}

static int only_json_option(int argc, char **argv, int *json, int want_args)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'j')
            *json = 1;
        else
            return cli_usage("unknown option '%s'", argv[optind - 1]);
    }
    if (want_args >= 0 && argc - optind != want_args)
        return cli_usage(want_args ? "expected %d argument(s)" : "expected no argument%.0d",
                         want_args);
    return CLI_OK;
}

/* ------------------------------------------------------------------------------------------ */

int cmd_ls(int argc, char **argv)
{
    int json = 0, rc = only_json_option(argc, argv, &json, 0);
    if (rc)
        return rc;
    ndshm_channel_info *list;
    size_t n;
    int st = ndshm_list(&list, &n);
    if (st)
        return cli_fail(st, "listing %s", cli_shm_dir());
    if (json) {
        printf("{\"channels\": [");
        for (size_t i = 0; i < n; i++) {
            fputs(i ? ",\n  " : "\n  ", stdout);
            json_channel(stdout, &list[i]);
            fputc('}', stdout);
        }
        printf("%s]}\n", n ? "\n" : "");
        ndshm_list_free(list);
        return CLI_OK;
    }
    int w = 4;
    for (size_t i = 0; i < n; i++)
        if ((int)strlen(list[i].name) > w)
            w = (int)strlen(list[i].name);
    printf("%-*s  %-10s  %-16s  %5s  %9s  %9s  %8s  %8s  %s\n", w, "NAME", "DTYPE", "SHAPE",
           "SLOTS", "SLOT SIZE", "MEMORY", "VERSION", "AGE", "WRITER");
    for (size_t i = 0; i < n; i++) {
        const ndshm_channel_info *ci = &list[i];
        if (ci->status != NDSHM_OK) {
            printf("%-*s  (unreadable: %s, %s)\n", w, ci->name, ndshm_status_name(ci->status),
                   ndshm_strerror(ci->status));
            continue;
        }
        char shape[64] = "-", cap[32], mem[32], age[32] = "-";
        const char *dn = ndshm_dtype_name(ci->dtype);
        if (ci->version && ci->ndim <= NDSHM_MAX_DIMS)
            cli_fmt_shape(shape, sizeof shape, ci->ndim, ci->shape);
        cli_fmt_bytes(cap, sizeof cap, ci->capacity);
        cli_fmt_bytes(mem, sizeof mem, ci->bytes);
        if (ci->version && ci->publish_ns)
            cli_fmt_duration(age, sizeof age, age_ns(ci));
        char writer[48];
        if (ci->writer_pid)
            snprintf(writer, sizeof writer, "%lld %s", (long long)ci->writer_pid, writer_state(ci));
        else
            snprintf(writer, sizeof writer, "- closed");
        printf("%-*s  %-10s  %-16s  %5u  %9s  %9s  %8llu  %8s  %s\n", w, ci->name, dn ? dn : "-",
               shape, (unsigned)ci->slots, cap, mem, (unsigned long long)ci->version, age, writer);
    }
    ndshm_list_free(list);
    return CLI_OK;
}

/* ------------------------------------------------------------------------------------------ */

struct seg {
    char name[NDSHM_NAME_MAX + 40];
    unsigned long long size;
};

static int seg_cmp(const void *a, const void *b)
{
    return strcmp(((const struct seg *)a)->name, ((const struct seg *)b)->name);
}

/* The segment files of channel `name` in the shm directory, sorted. */
static size_t channel_segments(const char *name, struct seg *out, size_t max)
{
    char ctl[NDSHM_NAME_MAX + 16], data[NDSHM_NAME_MAX + 16];
    snprintf(ctl, sizeof ctl, "ndshm.%s", name);
    snprintf(data, sizeof data, "ndshm.%s@", name);
    DIR *d = opendir(cli_shm_dir());
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max) {
        if (strcmp(e->d_name, ctl) != 0 && strncmp(e->d_name, data, strlen(data)) != 0)
            continue;
        size_t len = strlen(e->d_name);
        if (len >= sizeof out[n].name)
            continue;
        memcpy(out[n].name, e->d_name, len + 1);
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", cli_shm_dir(), out[n].name);
        struct stat st;
        out[n].size = stat(path, &st) == 0 ? (unsigned long long)st.st_size : 0;
        n++;
    }
    closedir(d);
    qsort(out, n, sizeof *out, seg_cmp);
    return n;
}

int cmd_stat(int argc, char **argv)
{
    int json = 0, rc = only_json_option(argc, argv, &json, 1);
    if (rc)
        return rc;
    const char *name = argv[optind];
    ndshm_channel_info ci;
    int st = ndshm_stat(name, &ci);
    if (st)
        return cli_fail(st, "%s", name);
    struct seg segs[16];
    size_t nseg = channel_segments(name, segs, 16);
    if (json) {
        json_channel(stdout, &ci);
        printf(", \"versions_published\": %llu, \"segments\": [", (unsigned long long)ci.version);
        for (size_t i = 0; i < nseg; i++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", cli_shm_dir(), segs[i].name);
            printf("%s{\"path\": ", i ? ", " : "");
            cli_json_str(stdout, path);
            printf(", \"bytes\": %llu}", segs[i].size);
        }
        printf("]}\n");
        return CLI_OK;
    }
    char shape[1024] = "-", buf[64], age[32] = "-";
    const char *dn = ndshm_dtype_name(ci.dtype);
    uint64_t nbytes = 0;
    if (ci.version && ci.ndim <= NDSHM_MAX_DIMS) {
        cli_fmt_shape(shape, sizeof shape, ci.ndim, ci.shape);
        if (ndshm_array_nbytes(ci.dtype, ci.ndim, ci.shape, &nbytes) != NDSHM_OK)
            nbytes = 0;
    }
    printf("name:          %s\n", ci.name);
    printf("dtype:         %s\n", dn ? dn : "- (nothing published)");
    printf("shape:         %s\n", shape);
    cli_fmt_bytes(buf, sizeof buf, nbytes);
    printf("array size:    %s (%llu B)\n", buf, (unsigned long long)nbytes);
    cli_fmt_bytes(buf, sizeof buf, ci.capacity);
    printf("slots:         %u x %s (%llu B per slot)\n", (unsigned)ci.slots, buf,
           (unsigned long long)ci.capacity);
    cli_fmt_bytes(buf, sizeof buf, ci.bytes);
    printf("memory:        %s (%llu B)\n", buf, (unsigned long long)ci.bytes);
    printf("version:       %llu (versions published)\n", (unsigned long long)ci.version);
    if (ci.version && ci.publish_ns)
        cli_fmt_duration(age, sizeof age, age_ns(&ci));
    printf("last publish:  %s%s\n", age, strcmp(age, "-") ? " ago" : "");
    printf("reallocs:      %llu\n", (unsigned long long)ci.reallocs);
    printf("generation:    %llu\n", (unsigned long long)ci.generation);
    time_t created = (time_t)(ci.created_ns / 1000000000u);
    struct tm tm;
    char when[64] = "?";
    if (localtime_r(&created, &tm))
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %z", &tm);
    printf("created:       %s\n", when);
    printf("mode:          %04o\n", (unsigned)(ci.mode & 07777));
    if (ci.writer_pid)
        printf("writer:        pid %lld, %s\n", (long long)ci.writer_pid, writer_state(&ci));
    else
        printf("writer:        none (closed)\n");
    for (size_t i = 0; i < nseg; i++)
        printf("%s%s/%s (%llu B)\n", i ? "               " : "segments:      ", cli_shm_dir(),
               segs[i].name, segs[i].size);
    return CLI_OK;
}

/* ------------------------------------------------------------------------------------------ */

int cmd_rm(int argc, char **argv)
{
    int json = 0, rc = only_json_option(argc, argv, &json, -1);
    if (rc)
        return rc;
    if (optind >= argc)
        return cli_usage("expected at least one channel name");
    int failed = 0;
    if (json)
        printf("{\"results\": [");
    for (int i = optind; i < argc; i++) {
        int st = ndshm_unlink(argv[i]);
        if (json) {
            printf("%s{\"name\": ", i > optind ? ", " : "");
            cli_json_str(stdout, argv[i]);
            printf(", \"removed\": %s, \"status\": %d, \"status_name\": \"%s\"}",
                   st == NDSHM_OK ? "true" : "false", st, ndshm_status_name(st));
        }
        if (st != NDSHM_OK) {
            failed = 1;
            cli_fail(st, "%s", argv[i]);
        } else if (!json) {
            printf("removed %s\n", argv[i]);
        }
    }
    if (json)
        printf("]}\n");
    return failed ? CLI_FAIL : CLI_OK;
}

/* ------------------------------------------------------------------------------------------ */

static const ndshm_channel_info *find_info(const ndshm_channel_info *list, size_t n,
                                           const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i].name, name) == 0)
            return &list[i];
    return NULL;
}

static const char *gc_reason(const ndshm_channel_info *ci)
{
    if (ci->status == NDSHM_E_NOT_READY)
        return "creator died while creating it";
    return ci->writer_pid ? "writer dead" : "writer closed";
}

int cmd_gc(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'}, {"dry-run", no_argument, NULL, 'n'}, {NULL, 0, NULL, 0}};
    int json = 0, dry = 0, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "n", opts, NULL)) != -1) {
        if (c == 'j')
            json = 1;
        else if (c == 'n')
            dry = 1;
        else
            return cli_usage("unknown option '%s'", argv[optind - 1]);
    }
    if (optind != argc)
        return cli_usage("expected no argument");
    ndshm_channel_info *before, *after = NULL;
    size_t nb, na = 0;
    int st = ndshm_list(&before, &nb);
    if (st)
        return cli_fail(st, "listing %s", cli_shm_dir());
    size_t removed = 0;
    if (!dry) {
        /* The library decides (and re-checks liveness right before each unlink); the names
         * it removed are those listed before and gone after. */
        if ((st = ndshm_gc(&removed)) != NDSHM_OK) {
            ndshm_list_free(before);
            return cli_fail(st, "gc");
        }
        if ((st = ndshm_list(&after, &na)) != NDSHM_OK) {
            ndshm_list_free(before);
            return cli_fail(st, "listing %s", cli_shm_dir());
        }
    }
    if (json)
        printf("{\"dry_run\": %s, \"removed\": [", dry ? "true" : "false");
    size_t shown = 0;
    for (size_t i = 0; i < nb; i++) {
        const ndshm_channel_info *ci = &before[i];
        int gone;
        if (dry)
            gone = ci->status == NDSHM_OK && !ci->writer_alive; /* half-created channels:
                                      only the real run can tell whether their creator died */
        else
            gone = find_info(after, na, ci->name) == NULL;
        if (!gone)
            continue;
        if (json) {
            printf("%s{\"name\": ", shown ? ", " : "");
            cli_json_str(stdout, ci->name);
            printf(", \"writer_pid\": %lld, \"reason\": \"%s\"}", (long long)ci->writer_pid,
                   gc_reason(ci));
        } else {
            printf("%s %s (%s", dry ? "would remove" : "removed", ci->name, gc_reason(ci));
            if (ci->writer_pid)
                printf(": pid %lld", (long long)ci->writer_pid);
            printf(")\n");
        }
        shown++;
    }
    if (json)
        printf("], \"count\": %zu}\n", dry ? shown : removed);
    else if (dry)
        printf("gc: %zu channel(s) would be removed\n", shown);
    else
        printf("gc: removed %zu channel(s)\n", removed);
    ndshm_list_free(before);
    ndshm_list_free(after);
    return CLI_OK;
}
