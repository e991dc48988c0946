/* ndshm ls, stat, rm, gc: the channels and shared arrays on this machine. */
#include <dirent.h>
#include <fnmatch.h>
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

static int is_array(const ndshm_channel_info *ci)
{
    return ci->kind == NDSHM_KIND_ARRAY;
}

static const char *kind_word(const ndshm_channel_info *ci)
{
    return is_array(ci) ? "array" : "channel";
}

static uint64_t age_ns(const ndshm_channel_info *ci)
{
    uint64_t now = ndshm_now_ns();
    return now > ci->publish_ns ? now - ci->publish_ns : 0;
}

/* Time since creation (CLOCK_REALTIME), for arrays. */
static uint64_t created_age_ns(const ndshm_channel_info *ci)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    return now > ci->created_ns ? now - ci->created_ns : 0;
}

/* "405 alive", "- closed", "12 dead, persistent", "7 alive (pid in another pid namespace)" */
static void writer_text(char *buf, size_t n, const ndshm_channel_info *ci)
{
    if (is_array(ci)) {
        snprintf(buf, n, "-");
        return;
    }
    size_t k;
    if (ci->writer_pid)
        k = (size_t)snprintf(buf, n, "%lld %s", (long long)ci->writer_pid, writer_state(ci));
    else
        k = (size_t)snprintf(buf, n, "- closed");
    if (k < n && ci->writer_pid && (ci->flags & NDSHM_ENTRY_OTHER_PIDNS))
        k += (size_t)snprintf(buf + k, n - k, " (in another pid namespace)");
    if (k < n && (ci->flags & NDSHM_ENTRY_PERSISTENT))
        snprintf(buf + k, n - k, ", persistent");
}

static void readers_text(char *buf, size_t n, const ndshm_channel_info *ci)
{
    if (ci->attached < 0)
        snprintf(buf, n, "-");
    else
        snprintf(buf, n, "%d", (int)ci->attached);
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
    fprintf(f, ", \"kind\": \"%s\"", kind_word(ci));
    const char *dn = ndshm_dtype_name(ci->dtype);
    fprintf(f, ", \"dtype\": ");
    if (dn)
        cli_json_str(f, dn);
    else
        fputs("null", f);
    fprintf(f, ", \"ndim\": %u, \"shape\": ", (unsigned)ci->ndim);
    cli_json_shape(f, ci->ndim <= NDSHM_MAX_DIMS ? ci->ndim : 0, ci->shape);
    fprintf(f, ", \"readers\": ");
    if (ci->attached >= 0)
        fprintf(f, "%d", (int)ci->attached);
    else
        fputs("null", f);
    if (is_array(ci)) {
        fprintf(f,
                ", \"order\": \"%s\", \"nbytes\": %llu, \"bytes\": %llu, \"created_ns\": %llu, "
                "\"age_ns\": %llu, \"mode\": \"%04o\", \"attached\": ",
                ci->order == NDSHM_ORDER_F ? "F" : "C", (unsigned long long)ci->nbytes,
                (unsigned long long)ci->bytes, (unsigned long long)ci->created_ns,
                (unsigned long long)created_age_ns(ci), (unsigned)(ci->mode & 07777));
        if (ci->attached >= 0)
            fprintf(f, "%d", (int)ci->attached);
        else
            fputs("null", f);
        return;
    }
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
            "\"writer_pid\": %lld, \"writer_alive\": %s, \"writer\": \"%s\", "
            "\"writer_other_pidns\": %s, \"persistent\": %s",
            (unsigned long long)ci->generation, (unsigned long long)ci->reallocs,
            (unsigned long long)ci->created_ns, (unsigned)(ci->mode & 07777),
            (long long)ci->writer_pid, ci->writer_alive ? "true" : "false", writer_state(ci),
            (ci->flags & NDSHM_ENTRY_OTHER_PIDNS) ? "true" : "false",
            (ci->flags & NDSHM_ENTRY_PERSISTENT) ? "true" : "false");
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

/* 1 if name is selected by the patterns (none = all). */
static int selected(const char *name, int npat, char **pat)
{
    if (npat == 0)
        return 1;
    for (int i = 0; i < npat; i++)
        if (cli_is_glob(pat[i]) ? fnmatch(pat[i], name, 0) == 0 : strcmp(pat[i], name) == 0)
            return 1;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

int cmd_ls(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'}, {"names", no_argument, NULL, 'n'}, {NULL, 0, NULL, 0}};
    int json = 0, names_only = 0, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'j')
            json = 1;
        else if (c == 'n')
            names_only = 1;
        else
            return cli_usage("unknown option '%s'", argv[optind - 1]);
    }
    int npat = argc - optind;
    char **pat = argv + optind;
    for (int i = 0; i < npat; i++) {
        int st = cli_is_glob(pat[i]) ? NDSHM_OK : ndshm_name_check(pat[i]);
        if (st)
            return cli_fail(st, "%s", pat[i]);
    }
    ndshm_channel_info *all;
    size_t nall;
    int st = ndshm_list(&all, &nall);
    if (st)
        return cli_fail(st, "listing %s", cli_shm_dir());
    /* keep the selected entries, in place */
    size_t n = 0;
    for (size_t i = 0; i < nall; i++)
        if (selected(all[i].name, npat, pat))
            all[n++] = all[i];
    ndshm_channel_info *list = all;
    int ret = CLI_OK;
    /* a plain name that is not there is an error, as in ls(1); a glob may match nothing */
    for (int i = 0; i < npat; i++) {
        if (cli_is_glob(pat[i]))
            continue;
        int found = 0;
        for (size_t k = 0; k < n; k++)
            found |= strcmp(list[k].name, pat[i]) == 0;
        if (!found)
            ret = cli_fail(NDSHM_E_NOENT, "%s", pat[i]);
    }
    if (names_only) {
        for (size_t i = 0; i < n; i++)
            printf("%s\n", list[i].name);
        ndshm_list_free(all);
        return ret;
    }
    if (json) {
        printf("{\"channels\": [");
        for (size_t i = 0; i < n; i++) {
            fputs(i ? ",\n  " : "\n  ", stdout);
            json_channel(stdout, &list[i]);
            fputc('}', stdout);
        }
        printf("%s]}\n", n ? "\n" : "");
        ndshm_list_free(all);
        return ret;
    }
    int w = 4;
    for (size_t i = 0; i < n; i++)
        if ((int)strlen(list[i].name) > w)
            w = (int)strlen(list[i].name);
    printf("%-*s  %-7s  %-10s  %-16s  %5s  %9s  %9s  %8s  %8s  %7s  %s\n", w, "NAME", "KIND",
           "DTYPE", "SHAPE", "SLOTS", "SLOT SIZE", "MEMORY", "VERSION", "AGE", "READERS", "WRITER");
    for (size_t i = 0; i < n; i++) {
        const ndshm_channel_info *ci = &list[i];
        if (ci->status != NDSHM_OK) {
            printf("%-*s  %-7s  (unreadable: %s, %s)\n", w, ci->name,
                   ci->kind ? kind_word(ci) : "?", ndshm_status_name(ci->status),
                   ndshm_strerror(ci->status));
            continue;
        }
        char shape[64] = "-", cap[32] = "-", mem[32], age[32] = "-", slots[16] = "-",
             version[24] = "-", readers[16], writer[96];
        const char *dn = ndshm_dtype_name(ci->dtype);
        if ((ci->version || is_array(ci)) && ci->ndim <= NDSHM_MAX_DIMS)
            cli_fmt_shape(shape, sizeof shape, ci->ndim, ci->shape);
        if (is_array(ci) && ci->order == NDSHM_ORDER_F && strlen(shape) + 3 < sizeof shape)
            strcat(shape, " F");
        cli_fmt_bytes(mem, sizeof mem, ci->bytes);
        if (is_array(ci)) {
            if (ci->created_ns)
                cli_fmt_duration(age, sizeof age, created_age_ns(ci));
        } else {
            cli_fmt_bytes(cap, sizeof cap, ci->capacity);
            snprintf(slots, sizeof slots, "%u", (unsigned)ci->slots);
            snprintf(version, sizeof version, "%llu", (unsigned long long)ci->version);
            if (ci->version && ci->publish_ns)
                cli_fmt_duration(age, sizeof age, age_ns(ci));
        }
        readers_text(readers, sizeof readers, ci);
        writer_text(writer, sizeof writer, ci);
        printf("%-*s  %-7s  %-10s  %-16s  %5s  %9s  %9s  %8s  %8s  %7s  %s\n", w, ci->name,
               kind_word(ci), dn ? dn : "-", shape, slots, cap, mem, version, age, readers, writer);
    }
    ndshm_list_free(all);
    return ret;
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

static void print_created(const ndshm_channel_info *ci)
{
    time_t created = (time_t)(ci->created_ns / 1000000000u);
    struct tm tm;
    char when[64] = "?";
    if (localtime_r(&created, &tm))
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %z", &tm);
    printf("created:       %s\n", when);
}

static void stat_array(const ndshm_channel_info *ci)
{
    char shape[1024] = "-", buf[64], age[32] = "-";
    const char *dn = ndshm_dtype_name(ci->dtype);
    if (ci->ndim <= NDSHM_MAX_DIMS)
        cli_fmt_shape(shape, sizeof shape, ci->ndim, ci->shape);
    printf("name:          %s\n", ci->name);
    printf("kind:          shared array\n");
    printf("dtype:         %s\n", dn ? dn : "?");
    printf("shape:         %s\n", shape);
    printf("order:         %s\n",
           ci->order == NDSHM_ORDER_F ? "F (column-major, Fortran)" : "C (row-major)");
    cli_fmt_bytes(buf, sizeof buf, ci->nbytes);
    printf("array size:    %s (%llu B)\n", buf, (unsigned long long)ci->nbytes);
    cli_fmt_bytes(buf, sizeof buf, ci->bytes);
    printf("memory:        %s (%llu B)\n", buf, (unsigned long long)ci->bytes);
    print_created(ci);
    if (ci->created_ns)
        cli_fmt_duration(age, sizeof age, created_age_ns(ci));
    printf("age:           %s\n", age);
    printf("mode:          %04o\n", (unsigned)(ci->mode & 07777));
    if (ci->attached >= 0)
        printf("attached:      %d process(es)\n", (int)ci->attached);
    else
        printf("attached:      - (unknown)\n");
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
        if (!is_array(&ci))
            printf(", \"versions_published\": %llu", (unsigned long long)ci.version);
        printf(", \"segments\": [");
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
    if (is_array(&ci)) {
        stat_array(&ci);
    } else {
        char shape[1024] = "-", buf[64], age[32] = "-", writer[96];
        const char *dn = ndshm_dtype_name(ci.dtype);
        uint64_t nbytes = 0;
        if (ci.version && ci.ndim <= NDSHM_MAX_DIMS) {
            cli_fmt_shape(shape, sizeof shape, ci.ndim, ci.shape);
            if (ndshm_array_nbytes(ci.dtype, ci.ndim, ci.shape, &nbytes) != NDSHM_OK)
                nbytes = 0;
        }
        printf("name:          %s\n", ci.name);
        printf("kind:          channel\n");
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
        print_created(&ci);
        printf("mode:          %04o\n", (unsigned)(ci.mode & 07777));
        if (ci.writer_pid)
            snprintf(writer, sizeof writer, "pid %lld, %s%s", (long long)ci.writer_pid,
                     writer_state(&ci),
                     (ci.flags & NDSHM_ENTRY_OTHER_PIDNS) ? " (in another pid namespace)" : "");
        else
            snprintf(writer, sizeof writer, "none (closed)");
        printf("writer:        %s\n", writer);
        if (ci.attached >= 0)
            printf("readers:       %d\n", (int)ci.attached);
        else
            printf("readers:       - (unknown)\n");
        printf("persistent:    %s\n", (ci.flags & NDSHM_ENTRY_PERSISTENT)
                                          ? "yes (gc keeps it after its writer is gone)"
                                          : "no (gc removes it once its writer is gone)");
    }
    for (size_t i = 0; i < nseg; i++)
        printf("%s%s/%s (%llu B)\n", i ? "               " : "segments:      ", cli_shm_dir(),
               segs[i].name, segs[i].size);
    return CLI_OK;
}

/* ------------------------------------------------------------------------------------------ */

/* Why `rm` without --force refuses name: NULL if it may go. */
static const char *rm_refusal(const ndshm_channel_info *ci, char *buf, size_t n)
{
    if (is_array(ci) || ci->status != NDSHM_OK || !ci->writer_pid || !ci->writer_alive)
        return NULL;
    snprintf(buf, n,
             "its writer is alive (pid %lld%s): --force removes it anyway (the writer and its "
             "readers keep working on their mappings, new readers no longer find it)",
             (long long)ci->writer_pid,
             (ci->flags & NDSHM_ENTRY_OTHER_PIDNS) ? " in another pid namespace" : "");
    return buf;
}

int cmd_rm(int argc, char **argv)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                         {"force", no_argument, NULL, 'f'},
                                         {"arrays-older-than", required_argument, NULL, 'a'},
                                         {NULL, 0, NULL, 0}};
    int json = 0, force = 0, c;
    double older = -1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "f", opts, NULL)) != -1) {
        if (c == 'j') {
            json = 1;
        } else if (c == 'f') {
            force = 1;
        } else if (c == 'a') {
            if (cli_parse_duration(optarg, &older))
                return cli_usage("--arrays-older-than wants a duration such as 90, 30s, 10m, "
                                 "2h or 7d, not '%s'",
                                 optarg);
        } else {
            return cli_usage("unknown option or missing value '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc && older < 0)
        return cli_usage("expected channel or array names (or globs), or --arrays-older-than");
    char **names = NULL;
    size_t n = 0;
    int failed = 0;
    if (optind < argc) {
        int rc = cli_match_names(argc - optind, argv + optind, 0, &names, &n);
        if (rc)
            return rc;
    }
    /* arrays created more than `older` seconds ago */
    ndshm_channel_info *list = NULL;
    size_t nl = 0;
    if (older >= 0) {
        int st = ndshm_list(&list, &nl);
        if (st) {
            cli_free_names(argc - optind, argv + optind, names, n);
            return cli_fail(st, "listing %s", cli_shm_dir());
        }
    }
    if (json)
        printf("{\"results\": [");
    int first = 1;
    size_t total = n + nl;
    for (size_t i = 0; i < total; i++) {
        const char *name;
        ndshm_channel_info ci;
        int st;
        if (i < n) {
            name = names[i];
            st = ndshm_stat(name, &ci);
            if (st == NDSHM_E_NOENT || st == NDSHM_E_NAME) {
                /* nothing readable: unlink says whether anything is there */
                memset(&ci, 0, sizeof ci);
                st = NDSHM_OK;
            } else if (st != NDSHM_OK) {
                memset(&ci, 0, sizeof ci); /* unreadable (corrupt, not ready): rm may remove */
                ci.status = st;
                st = NDSHM_OK;
            }
        } else {
            ci = list[i - n];
            name = ci.name;
            if (!is_array(&ci) || ci.status != NDSHM_OK ||
                created_age_ns(&ci) < (uint64_t)(older * 1e9))
                continue;
        }
        char why[256];
        const char *refuse = force ? NULL : rm_refusal(&ci, why, sizeof why);
        st = refuse ? NDSHM_E_WRITER_ALIVE : ndshm_unlink(name);
        if (json) {
            printf("%s{\"name\": ", first ? "" : ", ");
            cli_json_str(stdout, name);
            printf(", \"kind\": ");
            if (ci.kind)
                printf("\"%s\"", kind_word(&ci));
            else
                printf("null");
            printf(", \"removed\": %s, \"status\": %d, \"status_name\": \"%s\"",
                   st == NDSHM_OK ? "true" : "false", st, ndshm_status_name(st));
            if (refuse)
                printf(", \"writer_pid\": %lld", (long long)ci.writer_pid);
            printf("}");
            first = 0;
        }
        if (st != NDSHM_OK) {
            failed = 1;
            if (refuse)
                cli_fail_why(st, refuse, "%s", name);
            else
                cli_fail(st, "%s", name);
        } else if (!json) {
            printf("removed %s%s\n", name, is_array(&ci) ? " (array)" : "");
        }
    }
    if (json)
        printf("]}\n");
    ndshm_list_free(list);
    cli_free_names(argc - optind, argv + optind, names, n);
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
            gone = ci->status == NDSHM_OK && !is_array(ci) && !ci->writer_alive &&
                   !(ci->flags & NDSHM_ENTRY_PERSISTENT); /* half-created channels: only the
                                      real run can tell whether their creator died */
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
    /* persistent channels without a live writer: what gc kept and why */
    size_t kept = 0;
    if (json)
        printf("], \"kept_persistent\": [");
    for (size_t i = 0; i < nb; i++) {
        const ndshm_channel_info *ci = &before[i];
        if (ci->status != NDSHM_OK || is_array(ci) || ci->writer_alive ||
            !(ci->flags & NDSHM_ENTRY_PERSISTENT) || (!dry && !find_info(after, na, ci->name)))
            continue;
        if (json) {
            printf("%s", kept ? ", " : "");
            cli_json_str(stdout, ci->name);
        } else {
            printf("kept %s (persistent, %s)\n", ci->name, gc_reason(ci));
        }
        kept++;
    }
    if (json)
        printf("], \"count\": %zu}\n", dry ? shown : removed);
    else if (dry)
        printf("gc: %zu channel(s) would be removed, %zu persistent kept\n", shown, kept);
    else
        printf("gc: removed %zu channel(s), kept %zu persistent\n", removed, kept);
    ndshm_list_free(before);
    ndshm_list_free(after);
    return CLI_OK;
}
