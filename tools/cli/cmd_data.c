/* ndshm cat, pub, record, replay: arrays in and out of channels, as .npy files. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static int bad_option(char **argv)
{
    return cli_usage("unknown option or missing value '%s'", argv[optind - 1]);
}

/* ------------------------------------------------------------------------------------------ */

int cmd_cat(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},  {"next", no_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, 't'}, {"max", required_argument, NULL, 'm'},
        {"json", no_argument, NULL, 'j'},          {NULL, 0, NULL, 0}};
    const char *out = NULL;
    int next = 0, json = 0, c;
    double timeout = -1;
    uint64_t max = 1000;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 'n':
            next = 1;
            break;
        case 't':
            if (cli_parse_seconds(optarg, &timeout))
                return cli_usage("--timeout wants seconds >= 0, not '%s'", optarg);
            break;
        case 'm':
            if (cli_parse_u64(optarg, &max))
                return cli_usage("--max wants a count, not '%s'", optarg);
            break;
        case 'j':
            json = 1;
            break;
        default:
            return bad_option(argv);
        }
    }
    if (argc - optind != 1)
        return cli_usage("expected one channel name");
    if (out && !out[0])
        return cli_usage("-o wants a file name");
    const char *name = argv[optind];
    ndshm_reader *r = NULL;
    int st = ndshm_reader_open(name, NULL, &r);
    if (st)
        return cli_fail(st, "%s", name);
    int ret = CLI_FAIL;
    const void *data = NULL;
    ndshm_info info;
    if (next) {
        /* A fresh handle has read nothing, so ndshm_wait() would return at once for the
         * current version: read it first, then wait for the one after it. */
        cli_catch_signals();
        st = ndshm_read_latest_owned(r, &data, &info);
        if (st < 0) {
            cli_fail(st, "%s: reading", name);
            goto out;
        }
        uint64_t deadline = timeout >= 0 ? ndshm_now_ns() + (uint64_t)(timeout * 1e9) : 0;
        for (;;) {
            int64_t left = -1;
            if (timeout >= 0) {
                uint64_t now = ndshm_now_ns();
                left = deadline > now ? (int64_t)(deadline - now) : 0;
            }
            st = ndshm_wait(r, left);
            if (st != NDSHM_OK) {
                cli_fail(st, "%s: waiting for the next version", name);
                goto out;
            }
            st = ndshm_read_next_owned(r, &data, &info);
            if (st != NDSHM_NO_NEW && st != NDSHM_CONTENDED)
                break;
        }
    } else {
        /* CONTENDED: the writer kept overwriting the slot; try again a few times */
        for (int i = 0; i < 100; i++) {
            st = ndshm_read_latest_owned(r, &data, &info);
            if (st != NDSHM_CONTENDED)
                break;
        }
    }
    if (st != NDSHM_OK) {
        cli_fail(st, "%s: reading", name);
        goto out;
    }
    char shape[1024];
    cli_fmt_shape(shape, sizeof shape, info.ndim, info.shape);
    const char *dn = ndshm_dtype_name(info.dtype);
    uint64_t elems = info.nbytes / ndshm_dtype_size(info.dtype);
    if (out) {
        st = ndshm_save_npy(out, info.dtype, info.ndim, info.shape, data);
        if (st) {
            cli_fail(st, "writing %s", out);
            goto out;
        }
    }
    if (json) {
        printf("{\"name\": ");
        cli_json_str(stdout, name);
        printf(", \"version\": %llu, \"dtype\": \"%s\", \"ndim\": %u, \"shape\": ",
               (unsigned long long)info.version, dn, (unsigned)info.ndim);
        cli_json_shape(stdout, info.ndim, info.shape);
        printf(", \"nbytes\": %llu, \"publish_ns\": %llu, \"latency_ns\": %llu, \"dropped\": %llu",
               (unsigned long long)info.nbytes, (unsigned long long)info.publish_ns,
               (unsigned long long)info.latency_ns, (unsigned long long)info.dropped);
        if (out) {
            printf(", \"file\": ");
            cli_json_str(stdout, out);
        } else {
            printf(", \"data\": ");
            if (elems <= max)
                cli_print_array(stdout, info.dtype, info.ndim, info.shape, data, 1);
            else
                printf("null, \"truncated\": true");
        }
        printf("}\n");
    } else {
        char lat[32];
        cli_fmt_duration(lat, sizeof lat, info.latency_ns);
        printf("# %s version %llu %s %s latency %s\n", name, (unsigned long long)info.version, dn,
               shape, lat);
        if (out) {
            printf("# written to %s\n", out);
        } else if (elems <= max) {
            cli_print_array(stdout, info.dtype, info.ndim, info.shape, data, 0);
            putchar('\n');
        } else {
            printf("# %llu elements: more than --max %llu; use -o FILE.npy, or --max %llu\n",
                   (unsigned long long)elems, (unsigned long long)max, (unsigned long long)elems);
        }
    }
    ret = CLI_OK;
out:
    ndshm_reader_close(r);
    return ret;
}

/* ------------------------------------------------------------------------------------------ */

/* Open channel `name` as its writer, creating it if needed. */
static int open_writer(const char *name, uint32_t slots, int unlink_at_end, ndshm_writer **w)
{
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.flags = NDSHM_OPEN_OR_CREATE | (unlink_at_end ? NDSHM_UNLINK_ON_CLOSE : 0);
    o.slots = slots;
    int st = ndshm_writer_create(name, &o, w);
    if (st)
        return cli_fail(st, "%s: becoming its writer", name);
    return CLI_OK;
}

struct loaded {
    ndshm_npy_header h;
    void *data;
};

int cmd_pub(int argc, char **argv)
{
    static const struct option opts[] = {{"rate", required_argument, NULL, 'r'},
                                         {"count", required_argument, NULL, 'c'},
                                         {"slots", required_argument, NULL, 's'},
                                         {"hold", no_argument, NULL, 'H'},
                                         {"unlink", no_argument, NULL, 'u'},
                                         {"json", no_argument, NULL, 'j'},
                                         {NULL, 0, NULL, 0}};
    double rate = 0;
    uint64_t count = 0, slots = 0;
    int have_count = 0, hold = 0, unlink_end = 0, json = 0, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            if (cli_parse_rate(optarg, &rate))
                return cli_usage("--rate wants a frequency > 0 in Hz, not '%s'", optarg);
            break;
        case 'c':
            if (cli_parse_u64(optarg, &count))
                return cli_usage("--count wants a count, not '%s'", optarg);
            have_count = 1;
            break;
        case 's':
            if (cli_parse_u64(optarg, &slots) || slots < 1 || slots > NDSHM_MAX_SLOTS)
                return cli_usage("--slots wants 1..%u, not '%s'", NDSHM_MAX_SLOTS, optarg);
            break;
        case 'H':
            hold = 1;
            break;
        case 'u':
            unlink_end = 1;
            break;
        case 'j':
            json = 1;
            break;
        default:
            return bad_option(argv);
        }
    }
    if (argc - optind < 2)
        return cli_usage("expected a channel name and at least one .npy file");
    const char *name = argv[optind];
    int nfiles = argc - optind - 1;
    char **files = argv + optind + 1;
    int st = ndshm_name_check(name);
    if (st)
        return cli_fail(st, "%s", name);
    struct loaded *arr = calloc((size_t)nfiles, sizeof *arr);
    if (!arr)
        return cli_fail(NDSHM_E_NOMEM, "loading");
    int ret = CLI_FAIL;
    ndshm_writer *w = NULL;
    for (int i = 0; i < nfiles; i++) {
        if ((st = ndshm_load_npy(files[i], &arr[i].h, &arr[i].data)) != NDSHM_OK) {
            cli_fail(st, "%s", files[i]);
            goto out;
        }
    }
    if (!have_count)
        count = (uint64_t)nfiles;
    if ((ret = open_writer(name, (uint32_t)slots, unlink_end, &w)) != CLI_OK)
        goto out;
    ret = CLI_FAIL;
    cli_catch_signals();
    uint64_t t0 = ndshm_now_ns(), version = 0, done = 0;
    for (uint64_t i = 0; i < count && !cli_stop; i++) {
        if (rate > 0 && i > 0)
            cli_sleep_until(t0 + (uint64_t)((double)i * 1e9 / rate));
        if (cli_stop)
            break;
        const struct loaded *a = &arr[i % (uint64_t)nfiles];
        st = ndshm_publish(w, a->h.dtype, a->h.ndim, a->h.shape, a->data, &version);
        if (st) {
            cli_fail(st, "%s: publishing %s", name, files[i % (uint64_t)nfiles]);
            goto out;
        }
        done++;
    }
    if (json) {
        printf("{\"name\": ");
        cli_json_str(stdout, name);
        printf(", \"published\": %llu, \"last_version\": %llu}\n", (unsigned long long)done,
               (unsigned long long)version);
    } else {
        printf("pub: %s: published %llu version(s), last version %llu\n", name,
               (unsigned long long)done, (unsigned long long)version);
    }
    fflush(stdout);
    if (hold) {
        while (!cli_stop)
            cli_sleep_until(ndshm_now_ns() + 1000000000u);
    }
    ret = CLI_OK;
out:
    if (w && (st = ndshm_writer_close(w)) != NDSHM_OK && ret == CLI_OK)
        ret = cli_fail(st, "%s: closing", name);
    for (int i = 0; i < nfiles; i++)
        ndshm_npy_free(arr[i].data);
    free(arr);
    return ret;
}

/* ------------------------------------------------------------------------------------------ */

#define INDEX_HEADER "version,publish_ns,latency_ns,dropped,file"

static int make_dir(const char *dir)
{
    if (mkdir(dir, 0777) == 0)
        return NDSHM_OK;
    int err = errno;
    struct stat st;
    if (err == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
        return NDSHM_OK;
    return NDSHM_E_SYS - (err == EEXIST ? ENOTDIR : err);
}

int cmd_record(int argc, char **argv)
{
    static const struct option opts[] = {{"count", required_argument, NULL, 'c'},
                                         {"for", required_argument, NULL, 'f'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"oldest", no_argument, NULL, 'o'},
                                         {"force", no_argument, NULL, 'F'},
                                         {"json", no_argument, NULL, 'j'},
                                         {NULL, 0, NULL, 0}};
    uint64_t count = 0;
    double dur = -1, timeout = -1;
    int oldest = 0, force = 0, json = 0, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            if (cli_parse_u64(optarg, &count) || count == 0)
                return cli_usage("--count wants a count >= 1, not '%s'", optarg);
            break;
        case 'f':
            if (cli_parse_seconds(optarg, &dur))
                return cli_usage("--for wants seconds >= 0, not '%s'", optarg);
            break;
        case 't':
            if (cli_parse_seconds(optarg, &timeout))
                return cli_usage("--timeout wants seconds >= 0, not '%s'", optarg);
            break;
        case 'o':
            oldest = 1;
            break;
        case 'F':
            force = 1;
            break;
        case 'j':
            json = 1;
            break;
        default:
            return bad_option(argv);
        }
    }
    if (argc - optind != 2)
        return cli_usage("expected a channel name and a directory");
    const char *name = argv[optind], *dir = argv[optind + 1];
    char path[4096];
    if (strlen(dir) > sizeof path - 64)
        return cli_fail(NDSHM_E_LIMIT, "%s: path too long", dir);
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.flags = oldest ? NDSHM_REPLAY : 0;
    ndshm_reader *r = NULL;
    int st = ndshm_reader_open(name, &o, &r);
    if (st)
        return cli_fail(st, "%s", name);
    int ret = CLI_FAIL;
    FILE *index = NULL;
    if ((st = make_dir(dir)) != NDSHM_OK) {
        cli_fail(st, "creating %s", dir);
        goto out;
    }
    snprintf(path, sizeof path, "%s/index.csv", dir);
    if (!force && access(path, F_OK) == 0) {
        cli_fail(NDSHM_E_EXISTS, "%s holds a recording already (--force to replace it)", dir);
        goto out;
    }
    if (!(index = fopen(path, "w"))) {
        cli_fail(NDSHM_E_SYS - errno, "creating %s", path);
        goto out;
    }
    fprintf(index, INDEX_HEADER "\n");
    cli_catch_signals();
    uint64_t t0 = ndshm_now_ns(), n = 0, dropped = 0;
    uint64_t end = dur >= 0 ? t0 + (uint64_t)(dur * 1e9) : UINT64_MAX;
    uint64_t last_new = t0;
    const char *why = "interrupted";
    for (;;) {
        if (cli_stop)
            break;
        if (count && n >= count) {
            why = "count reached";
            break;
        }
        uint64_t now = ndshm_now_ns();
        if (now >= end) {
            why = "time is up";
            break;
        }
        if (timeout >= 0 && now - last_new >= (uint64_t)(timeout * 1e9)) {
            why = "no new version within the timeout";
            break;
        }
        const void *data;
        ndshm_info info;
        st = ndshm_read_next_owned(r, &data, &info);
        if (st == NDSHM_OK) {
            char file[64];
            snprintf(file, sizeof file, "v%012llu.npy", (unsigned long long)info.version);
            snprintf(path, sizeof path, "%s/%s", dir, file);
            if ((st = ndshm_save_npy(path, info.dtype, info.ndim, info.shape, data)) != 0) {
                cli_fail(st, "writing %s", path);
                goto out;
            }
            fprintf(index, "%llu,%llu,%llu,%llu,%s\n", (unsigned long long)info.version,
                    (unsigned long long)info.publish_ns, (unsigned long long)info.latency_ns,
                    (unsigned long long)info.dropped, file);
            n++;
            dropped += info.dropped;
            last_new = ndshm_now_ns();
            continue;
        }
        if (st == NDSHM_CONTENDED)
            continue;
        if (st != NDSHM_NO_NEW && st != NDSHM_NO_DATA) {
            cli_fail(st, "%s: reading", name);
            goto out;
        }
        /* nothing new: sleep until something arrives or the next 100 ms check */
        st = ndshm_wait(r, 100000000);
        if (st == NDSHM_WRITER_GONE) {
            why = "writer gone";
            break;
        }
    }
    if (fflush(index) != 0 || ferror(index)) {
        cli_fail(NDSHM_E_SYS - errno, "writing %s/index.csv", dir);
        goto out;
    }
    if (json) {
        printf("{\"name\": ");
        cli_json_str(stdout, name);
        printf(", \"dir\": ");
        cli_json_str(stdout, dir);
        printf(", \"recorded\": %llu, \"dropped\": %llu, \"stopped\": \"%s\"}\n",
               (unsigned long long)n, (unsigned long long)dropped, why);
    } else {
        printf("record: %s: %llu version(s) to %s, %llu dropped (%s)\n", name,
               (unsigned long long)n, dir, (unsigned long long)dropped, why);
    }
    ret = CLI_OK;
out:
    if (index && fclose(index) != 0 && ret == CLI_OK)
        ret = cli_fail(NDSHM_E_SYS - errno, "writing %s/index.csv", dir);
    ndshm_reader_close(r);
    return ret;
}

/* ------------------------------------------------------------------------------------------ */

struct entry {
    uint64_t version, publish_ns;
    char file[64];
};

/* A file name from the index: a plain name in DIR, nothing that could leave it. */
static int safe_file(const char *f)
{
    if (!f[0] || f[0] == '.')
        return 0;
    for (const char *p = f; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return 0;
    return 1;
}

/* Read DIR/index.csv; every line is checked, nothing in it is trusted. */
static int read_index(const char *dir, struct entry **out, size_t *count)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/index.csv", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return cli_fail(NDSHM_E_SYS - errno, "%s", path);
    struct entry *e = NULL;
    size_t n = 0, cap = 0;
    char line[512];
    int ret = CLI_FAIL;
    unsigned long lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            cli_fail(NDSHM_E_CORRUPT, "%s:%lu: line too long", path, lineno);
            goto out;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (lineno == 1) {
            if (strcmp(line, INDEX_HEADER) != 0) {
                cli_fail(NDSHM_E_CORRUPT, "%s: not an ndshm recording index", path);
                goto out;
            }
            continue;
        }
        if (!len)
            continue;
        char *fields[5], *save = NULL, *p = line;
        int k = 0;
        for (char *tok; k < 5 && (tok = strtok_r(p, ",", &save)); p = NULL)
            fields[k++] = tok;
        uint64_t v, pns, lat, drop;
        if (k != 5 || strtok_r(NULL, ",", &save) || cli_parse_u64(fields[0], &v) ||
            cli_parse_u64(fields[1], &pns) || cli_parse_u64(fields[2], &lat) ||
            cli_parse_u64(fields[3], &drop) || strlen(fields[4]) >= sizeof e->file ||
            !safe_file(fields[4])) {
            cli_fail(NDSHM_E_CORRUPT, "%s:%lu: malformed line", path, lineno);
            goto out;
        }
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            void *q = realloc(e, nc * sizeof *e);
            if (!q) {
                cli_fail(NDSHM_E_NOMEM, "%s", path);
                goto out;
            }
            e = q;
            cap = nc;
        }
        e[n].version = v;
        e[n].publish_ns = pns;
        snprintf(e[n].file, sizeof e[n].file, "%s", fields[4]);
        n++;
    }
    if (ferror(f)) {
        cli_fail(NDSHM_E_SYS - EIO, "reading %s", path);
        goto out;
    }
    if (lineno == 0) {
        cli_fail(NDSHM_E_CORRUPT, "%s: empty", path);
        goto out;
    }
    *out = e;
    *count = n;
    e = NULL;
    ret = CLI_OK;
out:
    free(e);
    fclose(f);
    return ret;
}

int cmd_replay(int argc, char **argv)
{
    static const struct option opts[] = {
        {"rate", required_argument, NULL, 'r'}, {"realtime", no_argument, NULL, 'R'},
        {"loop", required_argument, NULL, 'l'}, {"slots", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},       {NULL, 0, NULL, 0}};
    double rate = 0;
    uint64_t loops = 1, slots = 0;
    int realtime = 0, json = 0, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            if (cli_parse_rate(optarg, &rate))
                return cli_usage("--rate wants a frequency > 0 in Hz, not '%s'", optarg);
            break;
        case 'R':
            realtime = 1;
            break;
        case 'l':
            if (cli_parse_u64(optarg, &loops) || loops == 0)
                return cli_usage("--loop wants a count >= 1, not '%s'", optarg);
            break;
        case 's':
            if (cli_parse_u64(optarg, &slots) || slots < 1 || slots > NDSHM_MAX_SLOTS)
                return cli_usage("--slots wants 1..%u, not '%s'", NDSHM_MAX_SLOTS, optarg);
            break;
        case 'j':
            json = 1;
            break;
        default:
            return bad_option(argv);
        }
    }
    if (argc - optind != 2)
        return cli_usage("expected a directory and a channel name");
    if (realtime && rate > 0)
        return cli_usage("--rate and --realtime exclude each other");
    const char *dir = argv[optind], *name = argv[optind + 1];
    int st = ndshm_name_check(name);
    if (st)
        return cli_fail(st, "%s", name);
    struct entry *e = NULL;
    size_t n = 0;
    int ret = read_index(dir, &e, &n);
    if (ret)
        return ret;
    ndshm_writer *w = NULL;
    if ((ret = open_writer(name, (uint32_t)slots, 0, &w)) != CLI_OK)
        goto out;
    ret = CLI_FAIL;
    cli_catch_signals();
    uint64_t t0 = ndshm_now_ns(), done = 0, version = 0, k = 0;
    for (uint64_t loop = 0; loop < loops && !cli_stop; loop++) {
        uint64_t loop_t0 = ndshm_now_ns();
        for (size_t i = 0; i < n && !cli_stop; i++, k++) {
            if (realtime && i > 0 && e[i].publish_ns >= e[0].publish_ns)
                cli_sleep_until(loop_t0 + (e[i].publish_ns - e[0].publish_ns));
            else if (rate > 0 && k > 0)
                cli_sleep_until(t0 + (uint64_t)((double)k * 1e9 / rate));
            if (cli_stop)
                break;
            char path[4200];
            snprintf(path, sizeof path, "%s/%s", dir, e[i].file);
            ndshm_npy_header h;
            void *data;
            if ((st = ndshm_load_npy(path, &h, &data)) != NDSHM_OK) {
                cli_fail(st, "%s", path);
                goto out;
            }
            st = ndshm_publish(w, h.dtype, h.ndim, h.shape, data, &version);
            ndshm_npy_free(data);
            if (st) {
                cli_fail(st, "%s: publishing %s", name, path);
                goto out;
            }
            done++;
        }
    }
    double secs = (double)(ndshm_now_ns() - t0) / 1e9;
    if (json) {
        printf("{\"name\": ");
        cli_json_str(stdout, name);
        printf(", \"dir\": ");
        cli_json_str(stdout, dir);
        printf(", \"published\": %llu, \"last_version\": %llu, \"seconds\": %.6f}\n",
               (unsigned long long)done, (unsigned long long)version, secs);
    } else {
        printf("replay: %s: published %llu version(s) from %s in %.3f s, last version %llu\n", name,
               (unsigned long long)done, dir, secs, (unsigned long long)version);
    }
    ret = CLI_OK;
out:
    if (w && (st = ndshm_writer_close(w)) != NDSHM_OK && ret == CLI_OK)
        ret = cli_fail(st, "%s: closing", name);
    free(e);
    return ret;
}
