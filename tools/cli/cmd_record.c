/*
 * ndshm record, replay: every version of one or more channels to a directory, and back.
 *
 * A recording is one directory with one index, DIR/index.csv:
 *
 *     channel,version,publish_ns,latency_ns,dropped,file
 *     cam0,963,2409545636025,7036454,0,cam0/v000000000963.npy
 *     pose,12,2409545701230,51230,0,pose/v000000000012.npy
 *
 * and one .npy per version in a folder per channel. publish_ns is the writer's CLOCK_MONOTONIC,
 * one clock for every process of the machine, so replay puts the versions of all channels back
 * in the order they were published (the index lists them in the order they were read: one
 * reader thread per channel). Recordings of the first format (one channel, header
 * "version,publish_ns,latency_ns,dropped,file", files next to the index) are read as well.
 * Nothing in an index is trusted: every field is checked, each error names the file and line,
 * and a file must be a plain name (in its channel's folder) inside the directory.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#define INDEX_V1 "version,publish_ns,latency_ns,dropped,file"
#define INDEX_V2 "channel,version,publish_ns,latency_ns,dropped,file"

static int bad_option(char **argv)
{
    return cli_usage("unknown option or missing value '%s'", argv[optind - 1]);
}

/* ---------------------------------------------------------------------------------------------
 * record
 * ------------------------------------------------------------------------------------------- */

struct recorder {
    pthread_mutex_t lock;
    FILE *index;
    const char *dir;
    uint64_t count; /* 0 = no limit */
    uint64_t taken; /* versions claimed (under lock) */
    uint64_t last_new_ns;
    int stop; /* atomic: set by any thread, read by all */
    int failed;
    char error[4400];
};

struct rec_chan {
    struct recorder *rec;
    const char *name;
    ndshm_reader *r;
    uint64_t n, dropped;
    int gone; /* finished: writer gone and everything read */
    pthread_t thread;
};

static void rec_error(struct recorder *rec, int status, const char *what, const char *detail)
{
    pthread_mutex_lock(&rec->lock);
    if (!rec->failed) {
        rec->failed = status;
        snprintf(rec->error, sizeof rec->error, "%s%s", what, detail);
    }
    __atomic_store_n(&rec->stop, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&rec->lock);
}

static void *rec_thread(void *arg)
{
    struct rec_chan *ch = arg;
    struct recorder *rec = ch->rec;
    char path[4200], file[NDSHM_NAME_MAX + 40];
    while (!__atomic_load_n(&rec->stop, __ATOMIC_ACQUIRE)) {
        const void *data;
        ndshm_info info;
        int st = ndshm_read_next_owned(ch->r, &data, &info);
        if (st == NDSHM_OK) {
            pthread_mutex_lock(&rec->lock);
            int take = !__atomic_load_n(&rec->stop, __ATOMIC_ACQUIRE) &&
                       (rec->count == 0 || rec->taken < rec->count);
            if (take)
                rec->taken++;
            if (rec->count && rec->taken >= rec->count)
                __atomic_store_n(&rec->stop, 1, __ATOMIC_RELEASE);
            pthread_mutex_unlock(&rec->lock);
            if (!take)
                break;
            snprintf(file, sizeof file, "%s/v%012llu.npy", ch->name,
                     (unsigned long long)info.version);
            snprintf(path, sizeof path, "%s/%s", rec->dir, file);
            if ((st = ndshm_save_npy(path, info.dtype, info.ndim, info.shape, data)) != 0) {
                rec_error(rec, st, "writing ", path);
                break;
            }
            pthread_mutex_lock(&rec->lock);
            fprintf(rec->index, "%s,%llu,%llu,%llu,%llu,%s\n", ch->name,
                    (unsigned long long)info.version, (unsigned long long)info.publish_ns,
                    (unsigned long long)info.latency_ns, (unsigned long long)info.dropped, file);
            rec->last_new_ns = ndshm_now_ns();
            pthread_mutex_unlock(&rec->lock);
            ch->n++;
            ch->dropped += info.dropped;
            continue;
        }
        if (st == NDSHM_CONTENDED)
            continue;
        if (st != NDSHM_NO_NEW && st != NDSHM_NO_DATA) {
            rec_error(rec, st, ch->name, ": reading");
            break;
        }
        /* nothing new: sleep until something arrives or the next 100 ms check */
        if (ndshm_wait(ch->r, 100000000) == NDSHM_WRITER_GONE) {
            __atomic_store_n(&ch->gone, 1, __ATOMIC_RELEASE);
            break;
        }
    }
    return NULL;
}

/* DIR must not exist (or, with --force, be a directory). */
static int make_dir(const char *dir, int force)
{
    if (mkdir(dir, 0777) == 0)
        return CLI_OK;
    int err = errno;
    struct stat st;
    if (err == EEXIST && stat(dir, &st) == 0 && !S_ISDIR(st.st_mode))
        return cli_fail_why(NDSHM_E_SYS - EEXIST,
                            "exists and is not a directory: record makes a directory", "%s", dir);
    if (err == EEXIST && !force)
        return cli_fail_why(NDSHM_E_SYS - EEXIST,
                            "the directory exists already: record makes a new one "
                            "(--force records into it, replacing its index)",
                            "%s", dir);
    if (err == EEXIST)
        return CLI_OK;
    return cli_fail(NDSHM_E_SYS - err, "creating directory %s", dir);
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
    if (argc - optind < 2)
        return cli_usage("expected channel names (or globs) and a directory");
    const char *dir = argv[argc - 1];
    if (strlen(dir) > 3900)
        return cli_fail(NDSHM_E_LIMIT, "%s: path too long", dir);
    char **names;
    size_t n;
    int ret =
        cli_match_names(argc - optind - 1, argv + optind, 1 << NDSHM_KIND_CHANNEL, &names, &n);
    if (ret)
        return ret;
    struct rec_chan *ch = calloc(n, sizeof *ch);
    struct recorder rec;
    memset(&rec, 0, sizeof rec);
    pthread_mutex_init(&rec.lock, NULL);
    rec.dir = dir;
    rec.count = count;
    ret = CLI_FAIL;
    size_t started = 0;
    char path[4200];
    if (!ch) {
        cli_fail(NDSHM_E_NOMEM, "recording");
        goto out;
    }
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.flags = oldest ? NDSHM_REPLAY : 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(names[i], "index.csv") == 0) {
            cli_fail_why(NDSHM_E_NAME,
                         "a channel named index.csv cannot be recorded: its folder would be the "
                         "recording's index",
                         "%s", names[i]);
            goto out;
        }
        ch[i].rec = &rec;
        ch[i].name = names[i];
        int st = ndshm_reader_open(names[i], &o, &ch[i].r);
        if (st) {
            cli_fail(st, "%s", names[i]);
            goto out;
        }
    }
    if ((ret = make_dir(dir, force)) != CLI_OK)
        goto out;
    ret = CLI_FAIL;
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (mkdir(path, 0777) != 0 && errno != EEXIST) {
            cli_fail(NDSHM_E_SYS - errno, "creating directory %s", path);
            goto out;
        }
    }
    snprintf(path, sizeof path, "%s/index.csv", dir);
    if (!(rec.index = fopen(path, "w"))) {
        cli_fail(NDSHM_E_SYS - errno, "creating %s", path);
        goto out;
    }
    fprintf(rec.index, INDEX_V2 "\n");
    cli_catch_signals();
    uint64_t t0 = ndshm_now_ns();
    rec.last_new_ns = t0;
    for (; started < n; started++)
        if (pthread_create(&ch[started].thread, NULL, rec_thread, &ch[started]) != 0) {
            rec_error(&rec, NDSHM_E_NOMEM, "starting a thread", "");
            break;
        }
    uint64_t end = dur >= 0 ? t0 + (uint64_t)(dur * 1e9) : UINT64_MAX;
    const char *why = "interrupted";
    for (;;) {
        pthread_mutex_lock(&rec.lock);
        int stop = __atomic_load_n(&rec.stop, __ATOMIC_ACQUIRE), failed = rec.failed;
        uint64_t taken = rec.taken, last = rec.last_new_ns;
        pthread_mutex_unlock(&rec.lock);
        size_t gone = 0;
        for (size_t i = 0; i < started; i++)
            gone += __atomic_load_n(&ch[i].gone, __ATOMIC_ACQUIRE);
        uint64_t now = ndshm_now_ns();
        if (failed) {
            why = "error";
            break;
        }
        if (stop && count && taken >= count) {
            why = "count reached";
            break;
        }
        if (cli_stop)
            break;
        if (now >= end) {
            why = "time is up";
            break;
        }
        if (timeout >= 0 && now - last >= (uint64_t)(timeout * 1e9)) {
            why = "no new version within the timeout";
            break;
        }
        if (gone == n) {
            why = n > 1 ? "writers gone" : "writer gone";
            break;
        }
        cli_sleep_until(now + 20000000u);
    }
    __atomic_store_n(&rec.stop, 1, __ATOMIC_RELEASE);
    for (size_t i = 0; i < started; i++)
        pthread_join(ch[i].thread, NULL);
    started = 0;
    if (rec.failed) {
        cli_fail(rec.failed, "%s", rec.error);
        goto out;
    }
    if (fflush(rec.index) != 0 || ferror(rec.index)) {
        cli_fail(NDSHM_E_SYS - errno, "writing %s/index.csv", dir);
        goto out;
    }
    uint64_t total = 0, dropped = 0;
    for (size_t i = 0; i < n; i++) {
        total += ch[i].n;
        dropped += ch[i].dropped;
    }
    if (json) {
        printf("{\"dir\": ");
        cli_json_str(stdout, dir);
        if (n == 1) {
            printf(", \"name\": ");
            cli_json_str(stdout, names[0]);
        }
        printf(", \"recorded\": %llu, \"dropped\": %llu, \"stopped\": \"%s\", \"channels\": [",
               (unsigned long long)total, (unsigned long long)dropped, why);
        for (size_t i = 0; i < n; i++) {
            printf("%s{\"name\": ", i ? ", " : "");
            cli_json_str(stdout, names[i]);
            printf(", \"recorded\": %llu, \"dropped\": %llu}", (unsigned long long)ch[i].n,
                   (unsigned long long)ch[i].dropped);
        }
        printf("]}\n");
    } else {
        for (size_t i = 0; i < n; i++)
            printf("record: %s: %llu version(s) to %s, %llu dropped%s%s%s\n", names[i],
                   (unsigned long long)ch[i].n, dir, (unsigned long long)ch[i].dropped,
                   n == 1 ? " (" : "", n == 1 ? why : "", n == 1 ? ")" : "");
        if (n > 1)
            printf("record: %zu channels, %llu version(s) to %s, %llu dropped (%s)\n", n,
                   (unsigned long long)total, dir, (unsigned long long)dropped, why);
    }
    ret = CLI_OK;
out:
    if (started) {
        __atomic_store_n(&rec.stop, 1, __ATOMIC_RELEASE);
        for (size_t i = 0; i < started; i++)
            pthread_join(ch[i].thread, NULL);
    }
    if (rec.index && fclose(rec.index) != 0 && ret == CLI_OK)
        ret = cli_fail(NDSHM_E_SYS - errno, "writing %s/index.csv", dir);
    if (ch)
        for (size_t i = 0; i < n; i++)
            ndshm_reader_close(ch[i].r);
    free(ch);
    pthread_mutex_destroy(&rec.lock);
    cli_free_names(argc - optind - 1, argv + optind, names, n);
    return ret;
}

/* ---------------------------------------------------------------------------------------------
 * replay
 * ------------------------------------------------------------------------------------------- */

struct entry {
    uint64_t version, publish_ns, line;
    uint32_t chan; /* index into the channel table */
    char file[NDSHM_NAME_MAX + 40];
};

struct rchan {
    char name[NDSHM_NAME_MAX + 1];   /* as recorded */
    char target[NDSHM_NAME_MAX + 1]; /* where it is published */
    ndshm_writer *w;
    uint64_t done, version;
};

/* A plain file name: nothing that could leave the directory. */
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

static int strict_u64(const char *s, uint64_t *v)
{
    return cli_parse_u64(s, v);
}

struct index {
    struct entry *e;
    size_t n;
    struct rchan *ch;
    size_t nch;
    int v1;
};

static int find_chan(struct index *ix, const char *name)
{
    for (size_t i = 0; i < ix->nch; i++)
        if (strcmp(ix->ch[i].name, name) == 0)
            return (int)i;
    if (ix->nch >= 4096)
        return -1;
    void *q = realloc(ix->ch, (ix->nch + 1) * sizeof *ix->ch);
    if (!q)
        return -1;
    ix->ch = q;
    memset(&ix->ch[ix->nch], 0, sizeof *ix->ch);
    snprintf(ix->ch[ix->nch].name, sizeof ix->ch[ix->nch].name, "%s", name);
    return (int)ix->nch++;
}

/* Read DIR/index.csv: every line is checked, nothing in it is trusted. */
static int read_index(const char *dir, struct index *ix)
{
    char path[4200], why[512];
    snprintf(path, sizeof path, "%s/index.csv", dir);
    struct stat ds;
    if (stat(dir, &ds) == 0 && !S_ISDIR(ds.st_mode))
        return cli_fail_why(NDSHM_E_SYS - ENOTDIR, "not a directory: a recording is a directory",
                            "%s", dir);
    void *buf;
    size_t len;
    int st = cli_read_file(path, UINT64_C(1) << 32, &buf, &len, why, sizeof why);
    if (st)
        return cli_fail_why(st, why, "%s", path);
    char *text = buf;
    int ret = CLI_FAIL;
    size_t cap = 0;
    unsigned long lineno = 0;
    memset(ix, 0, sizeof *ix);
    if (len == 0) {
        cli_fail_why(NDSHM_E_CORRUPT, "empty: not an ndshm recording index", "%s", path);
        goto out;
    }
    if (memchr(text, 0, len)) {
        cli_fail_why(NDSHM_E_CORRUPT, "holds NUL bytes: not an ndshm recording index (a text file)",
                     "%s", path);
        goto out;
    }
    for (size_t pos = 0; pos < len;) {
        char *line = text + pos;
        char *nl = memchr(line, '\n', len - pos);
        size_t l = nl ? (size_t)(nl - line) : len - pos;
        pos += l + (nl ? 1 : 0);
        line[l] = 0; /* the buffer has a byte for it: the '\n' or malloc's extra one */
        lineno++;
        if (l && line[l - 1] == '\r')
            line[--l] = 0;
        if (l > 1024) {
            cli_fail_why(NDSHM_E_CORRUPT, "line too long (more than 1024 characters)", "%s:%lu",
                         path, lineno);
            goto out;
        }
        if (lineno == 1) {
            if (strcmp(line, INDEX_V2) == 0) {
                ix->v1 = 0;
            } else if (strcmp(line, INDEX_V1) == 0) {
                ix->v1 = 1;
            } else {
                cli_fail_why(NDSHM_E_CORRUPT,
                             "not an ndshm recording index: the first line must be \"" INDEX_V2
                             "\" (or \"" INDEX_V1 "\")",
                             "%s:1", path);
                goto out;
            }
            continue;
        }
        if (!l)
            continue;
        char *f[7];
        int k = 0, want = ix->v1 ? 5 : 6;
        for (char *p = line; k < 7;) {
            f[k++] = p;
            char *comma = strchr(p, ',');
            if (!comma)
                break;
            *comma = 0;
            p = comma + 1;
        }
        if (k != want) {
            snprintf(why, sizeof why, "%d fields, expected %d (%s)", k, want,
                     ix->v1 ? INDEX_V1 : INDEX_V2);
            cli_fail_why(NDSHM_E_CORRUPT, why, "%s:%lu", path, lineno);
            goto out;
        }
        int o = ix->v1 ? 1 : 0; /* f[j - o]: field j of INDEX_V2 (1 version .. 5 file) */
        static const char *const names[] = {"channel", "version", "publish_ns", "latency_ns",
                                            "dropped"};
        uint64_t v[5];
        for (int j = 1; j <= 4; j++)
            if (strict_u64(f[j - o], &v[j])) {
                snprintf(why, sizeof why, "the %s field '%.40s' is not a number", names[j],
                         f[j - o]);
                cli_fail_why(NDSHM_E_CORRUPT, why, "%s:%lu", path, lineno);
                goto out;
            }
        const char *file = f[5 - o];
        char chan[NDSHM_NAME_MAX + 1] = "";
        if (!ix->v1) {
            if (ndshm_name_check(f[0]) != NDSHM_OK) {
                snprintf(why, sizeof why, "the channel field '%.40s' is not a channel name", f[0]);
                cli_fail_why(NDSHM_E_CORRUPT, why, "%s:%lu", path, lineno);
                goto out;
            }
            snprintf(chan, sizeof chan, "%s", f[0]);
            size_t cl = strlen(chan);
            if (strncmp(file, chan, cl) != 0 || file[cl] != '/' || !safe_file(file + cl + 1) ||
                strlen(file) >= sizeof ix->e->file) {
                snprintf(why, sizeof why,
                         "the file '%.60s' is not a plain file name in the channel's folder "
                         "'%s/'",
                         file, chan);
                cli_fail_why(NDSHM_E_CORRUPT, why, "%s:%lu", path, lineno);
                goto out;
            }
        } else if (!safe_file(file) || strlen(file) >= sizeof ix->e->file) {
            snprintf(why, sizeof why, "the file '%.60s' is not a plain file name", file);
            cli_fail_why(NDSHM_E_CORRUPT, why, "%s:%lu", path, lineno);
            goto out;
        }
        int ci = find_chan(ix, chan);
        if (ci < 0) {
            cli_fail_why(NDSHM_E_LIMIT, "more than 4096 channels", "%s:%lu", path, lineno);
            goto out;
        }
        if (ix->n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            void *q = realloc(ix->e, nc * sizeof *ix->e);
            if (!q) {
                cli_fail(NDSHM_E_NOMEM, "%s", path);
                goto out;
            }
            ix->e = q;
            cap = nc;
        }
        struct entry *e = &ix->e[ix->n++];
        e->version = v[1];
        e->publish_ns = v[2];
        e->line = lineno;
        e->chan = (uint32_t)ci;
        snprintf(e->file, sizeof e->file, "%s", file);
    }
    ret = CLI_OK;
out:
    free(buf);
    if (ret != CLI_OK) {
        free(ix->e);
        free(ix->ch);
        memset(ix, 0, sizeof *ix);
    }
    return ret;
}

/* In publish order; equal times keep the index order. */
static int entry_cmp(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    if (x->publish_ns != y->publish_ns)
        return x->publish_ns < y->publish_ns ? -1 : 1;
    return x->line < y->line ? -1 : x->line > y->line;
}

int cmd_replay(int argc, char **argv)
{
    static const struct option opts[] = {
        {"rate", required_argument, NULL, 'r'},   {"realtime", no_argument, NULL, 'R'},
        {"loop", required_argument, NULL, 'l'},   {"slots", required_argument, NULL, 's'},
        {"prefix", required_argument, NULL, 'p'}, {"rename", required_argument, NULL, 'm'},
        {"json", no_argument, NULL, 'j'},         {NULL, 0, NULL, 0}};
    double rate = 0;
    uint64_t loops = 1, slots = 0;
    int realtime = 0, json = 0, c, nren = 0;
    const char *prefix = "", *ren[64];
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
        case 'p':
            prefix = optarg;
            break;
        case 'm':
            if (!strchr(optarg, '=') || nren >= 64)
                return cli_usage("--rename wants RECORDED=NEW, not '%s'", optarg);
            ren[nren++] = optarg;
            break;
        case 'j':
            json = 1;
            break;
        default:
            return bad_option(argv);
        }
    }
    if (argc - optind < 1 || argc - optind > 2)
        return cli_usage("expected a directory and, optionally, a channel name");
    if (realtime && rate > 0)
        return cli_usage("--rate and --realtime exclude each other");
    const char *dir = argv[optind], *name = argc - optind == 2 ? argv[optind + 1] : NULL;
    int st;
    if (name && (st = ndshm_name_check(name)) != NDSHM_OK)
        return cli_fail(st, "%s", name);
    struct index ix;
    int ret = read_index(dir, &ix);
    if (ret)
        return ret;
    ret = CLI_FAIL;
    /* where each recorded channel goes */
    if (ix.v1 && !name) {
        cli_usage("%s is a recording of the first format (one channel, no channel names): give "
                  "the channel to publish it to",
                  dir);
        ret = CLI_USAGE;
        goto out;
    }
    if (name && ix.nch > 1) {
        cli_usage("%s holds %zu channels: replay publishes each under its recorded name "
                  "(--prefix, --rename change them), so no NAME",
                  dir, ix.nch);
        ret = CLI_USAGE;
        goto out;
    }
    for (size_t i = 0; i < ix.nch; i++) {
        const char *t = ix.ch[i].name;
        for (int k = 0; k < nren; k++) {
            size_t l = (size_t)(strchr(ren[k], '=') - ren[k]);
            if (strlen(t) == l && strncmp(ren[k], t, l) == 0)
                t = ren[k] + l + 1;
        }
        char target[2 * NDSHM_NAME_MAX + 8];
        snprintf(target, sizeof target, "%s%s", prefix, name ? name : t);
        if ((st = ndshm_name_check(target)) != NDSHM_OK) {
            cli_fail(st, "%s", target);
            goto out;
        }
        memcpy(ix.ch[i].target, target, strlen(target) + 1); /* checked: <= NDSHM_NAME_MAX */
        for (size_t j = 0; j < i; j++)
            if (strcmp(ix.ch[j].target, ix.ch[i].target) == 0) {
                cli_usage("channels %s and %s would both be published to %s", ix.ch[j].name,
                          ix.ch[i].name, target);
                ret = CLI_USAGE;
                goto out;
            }
    }
    if (!ix.v1)
        qsort(ix.e, ix.n, sizeof *ix.e, entry_cmp);
    for (size_t i = 0; i < ix.nch; i++)
        if ((ret = cli_open_writer(ix.ch[i].target, (uint32_t)slots, 0, &ix.ch[i].w)) != CLI_OK)
            goto out;
    ret = CLI_FAIL;
    cli_catch_signals();
    uint64_t t0 = ndshm_now_ns(), done = 0, k = 0;
    for (uint64_t loop = 0; loop < loops && !cli_stop; loop++) {
        uint64_t loop_t0 = ndshm_now_ns();
        for (size_t i = 0; i < ix.n && !cli_stop; i++, k++) {
            const struct entry *e = &ix.e[i];
            if (realtime && i > 0 && e->publish_ns >= ix.e[0].publish_ns)
                cli_sleep_until(loop_t0 + (e->publish_ns - ix.e[0].publish_ns));
            else if (rate > 0 && k > 0)
                cli_sleep_until(t0 + (uint64_t)((double)k * 1e9 / rate));
            if (cli_stop)
                break;
            char path[4400], why[512];
            snprintf(path, sizeof path, "%s/%s", dir, e->file);
            struct cli_array a;
            if ((st = cli_load_array(path, NULL, &a, why, sizeof why)) != NDSHM_OK) {
                cli_fail_why(st, why, "%s", path);
                goto out;
            }
            struct rchan *ch = &ix.ch[e->chan];
            st = ndshm_publish(ch->w, a.dtype, a.ndim, a.shape, a.data, &ch->version);
            cli_array_free(&a);
            if (st) {
                cli_fail(st, "%s: publishing %s", ch->target, path);
                goto out;
            }
            ch->done++;
            done++;
        }
    }
    double secs = (double)(ndshm_now_ns() - t0) / 1e9;
    if (json) {
        printf("{\"dir\": ");
        cli_json_str(stdout, dir);
        if (ix.nch == 1) {
            printf(", \"name\": ");
            cli_json_str(stdout, ix.ch[0].target);
            printf(", \"last_version\": %llu", (unsigned long long)ix.ch[0].version);
        }
        printf(", \"published\": %llu, \"seconds\": %.6f, \"channels\": [",
               (unsigned long long)done, secs);
        for (size_t i = 0; i < ix.nch; i++) {
            printf("%s{\"recorded\": ", i ? ", " : "");
            cli_json_str(stdout, ix.ch[i].name);
            printf(", \"name\": ");
            cli_json_str(stdout, ix.ch[i].target);
            printf(", \"published\": %llu, \"last_version\": %llu}",
                   (unsigned long long)ix.ch[i].done, (unsigned long long)ix.ch[i].version);
        }
        printf("]}\n");
    } else {
        for (size_t i = 0; i < ix.nch; i++)
            printf("replay: %s: published %llu version(s) from %s in %.3f s, last version %llu\n",
                   ix.ch[i].target, (unsigned long long)ix.ch[i].done, dir, secs,
                   (unsigned long long)ix.ch[i].version);
        if (ix.nch > 1)
            printf("replay: %zu channels, %llu version(s) in all\n", ix.nch,
                   (unsigned long long)done);
    }
    ret = CLI_OK;
out:
    for (size_t i = 0; i < ix.nch; i++)
        if (ix.ch[i].w && (st = ndshm_writer_close(ix.ch[i].w)) != NDSHM_OK && ret == CLI_OK)
            ret = cli_fail(st, "%s: closing", ix.ch[i].target);
    free(ix.e);
    free(ix.ch);
    return ret;
}
