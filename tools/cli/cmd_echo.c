/* ndshm cat, echo: versions of a channel as numpy prints them (fmt.c), as JSON, or as .npy. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* ---------------------------------------------------------------------------------------------
 * Print options shared by cat and echo
 * ------------------------------------------------------------------------------------------- */

int cli_print_option(int c, const char *arg, struct cli_print *p)
{
    uint64_t v;
    switch (c) {
    case CLI_OPT_REPR:
        p->np.repr = 1;
        return 0;
    case CLI_OPT_FULL:
        p->np.threshold = UINT64_MAX;
        return 0;
    case CLI_OPT_THRESHOLD:
        if (cli_parse_u64(arg, &v))
            return cli_usage("--threshold wants a count, not '%s'", arg);
        p->np.threshold = v;
        return 0;
    case CLI_OPT_EDGEITEMS:
        if (cli_parse_u64(arg, &v) || v > 1000000)
            return cli_usage("--edgeitems wants a count up to 1000000, not '%s'", arg);
        p->np.edgeitems = v;
        return 0;
    case CLI_OPT_LINEWIDTH:
        if (cli_parse_u64(arg, &v) || v < 1 || v > 1000000)
            return cli_usage("--linewidth wants 1..1000000, not '%s'", arg);
        p->np.linewidth = (uint32_t)v;
        return 0;
    case CLI_OPT_PRECISION:
        if (cli_parse_u64(arg, &v) || v > 300)
            return cli_usage("--precision wants 0..300, not '%s'", arg);
        p->np.precision = (uint32_t)v;
        return 0;
    case CLI_OPT_SLICE:
        if (!arg[0])
            return cli_usage("--slice wants numpy indices such as '0:3,:'");
        p->slice = arg;
        return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------------------------------------
 * Fields
 * ------------------------------------------------------------------------------------------- */

enum field {
    F_VERSION,
    F_PUBLISH_NS,
    F_LATENCY_NS,
    F_DROPPED,
    F_DTYPE,
    F_SHAPE,
    F_NBYTES,
    F_GENERATION,
    F_USER_NS,
    F_USER_TAG,
    F_ORIGIN_VERSION,
    F_ORIGIN_NS,
    F_META_LEN,
    F_DATA,
    F_COUNT
};
static const char *const field_names[F_COUNT] = {
    "version",    "publish_ns", "latency_ns", "dropped",        "dtype",     "shape",    "nbytes",
    "generation", "user_ns",    "user_tag",   "origin_version", "origin_ns", "meta_len", "data"};

struct fields {
    int n;
    int f[32];
};

static int parse_fields(const char *spec, struct fields *out)
{
    char buf[512];
    if (strlen(spec) >= sizeof buf)
        return cli_usage("--field: list too long");
    strcpy(buf, spec);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int k = -1;
        for (int i = 0; i < F_COUNT; i++)
            if (strcmp(t, field_names[i]) == 0)
                k = i;
        if (strcmp(t, "latency") == 0)
            k = F_LATENCY_NS;
        if (k < 0)
            return cli_usage("--field: no field '%s' (version, publish_ns, latency_ns, dropped, "
                             "dtype, shape, nbytes, generation, user_ns, user_tag, "
                             "origin_version, origin_ns, meta_len, data)",
                             t);
        if (out->n >= 32)
            return cli_usage("--field: too many fields");
        out->f[out->n++] = k;
    }
    if (!out->n)
        return cli_usage("--field wants a list such as version,data");
    return CLI_OK;
}

static void field_text(FILE *f, int k, const ndshm_info *info, int json)
{
    char buf[1024];
    switch (k) {
    case F_VERSION:
        fprintf(f, "%llu", (unsigned long long)info->version);
        break;
    case F_PUBLISH_NS:
        fprintf(f, "%llu", (unsigned long long)info->publish_ns);
        break;
    case F_LATENCY_NS:
        fprintf(f, "%llu", (unsigned long long)info->latency_ns);
        break;
    case F_DROPPED:
        fprintf(f, "%llu", (unsigned long long)info->dropped);
        break;
    case F_DTYPE:
        if (json)
            cli_json_str(f, ndshm_dtype_name(info->dtype));
        else
            fputs(ndshm_dtype_name(info->dtype), f);
        break;
    case F_SHAPE:
        if (json) {
            cli_json_shape(f, info->ndim, info->shape);
        } else {
            cli_fmt_shape(buf, sizeof buf, info->ndim, info->shape);
            fputs(buf, f);
        }
        break;
    case F_NBYTES:
        fprintf(f, "%llu", (unsigned long long)info->nbytes);
        break;
    case F_GENERATION:
        fprintf(f, "%llu", (unsigned long long)info->generation);
        break;
    case F_USER_NS:
        fprintf(f, "%llu", (unsigned long long)info->user_ns);
        break;
    case F_USER_TAG:
        fprintf(f, "%llu", (unsigned long long)info->user_tag);
        break;
    case F_ORIGIN_VERSION:
        fprintf(f, "%llu", (unsigned long long)info->origin_version);
        break;
    case F_ORIGIN_NS:
        fprintf(f, "%llu", (unsigned long long)info->origin_ns);
        break;
    case F_META_LEN:
        fprintf(f, "%u", (unsigned)info->meta_len);
        break;
    }
}

/* ---------------------------------------------------------------------------------------------
 * One version
 * ------------------------------------------------------------------------------------------- */

/* The array to print: the version's, or its --slice. */
static int select_data(const char *name, const ndshm_info *info, const void *data,
                       const struct cli_print *p, struct cli_array *view)
{
    memset(view, 0, sizeof *view);
    if (!p->slice) {
        view->dtype = info->dtype;
        view->ndim = info->ndim;
        memcpy(view->shape, info->shape, sizeof view->shape);
        view->nbytes = info->nbytes;
        view->data = data;
        return CLI_OK;
    }
    char why[256];
    int st = cli_slice(p->slice, info->dtype, info->ndim, info->shape, data, view, why, sizeof why);
    if (st)
        return cli_fail_why(st, why, "%s: --slice %s", name, p->slice);
    return CLI_OK;
}

static int show_version(const char *name, const ndshm_info *info, const void *data,
                        const struct cli_print *p, const struct fields *fl, int json)
{
    struct cli_array v;
    int rc = select_data(name, info, data, p, &v);
    if (rc)
        return rc;
    uint64_t elems = v.nbytes / ndshm_dtype_size(v.dtype);
    int want_data = !fl || fl->n == 0;
    if (fl)
        for (int i = 0; i < fl->n; i++)
            want_data |= fl->f[i] == F_DATA;
    if (json) {
        const char *sep = "";
        printf("{");
        if (!fl || fl->n == 0) {
            printf("\"name\": ");
            cli_json_str(stdout, name);
            printf(", \"version\": %llu, \"dtype\": \"%s\", \"ndim\": %u, \"shape\": ",
                   (unsigned long long)info->version, ndshm_dtype_name(info->dtype),
                   (unsigned)info->ndim);
            cli_json_shape(stdout, info->ndim, info->shape);
            printf(", \"nbytes\": %llu, \"publish_ns\": %llu, \"latency_ns\": %llu, "
                   "\"dropped\": %llu",
                   (unsigned long long)info->nbytes, (unsigned long long)info->publish_ns,
                   (unsigned long long)info->latency_ns, (unsigned long long)info->dropped);
            if (info->flags & NDSHM_INFO_EXTRA)
                printf(", \"user_ns\": %llu, \"user_tag\": %llu, \"origin_version\": %llu, "
                       "\"origin_ns\": %llu, \"meta_len\": %u",
                       (unsigned long long)info->user_ns, (unsigned long long)info->user_tag,
                       (unsigned long long)info->origin_version,
                       (unsigned long long)info->origin_ns, (unsigned)info->meta_len);
            if (p->slice) {
                printf(", \"slice\": ");
                cli_json_str(stdout, p->slice);
                printf(", \"slice_shape\": ");
                cli_json_shape(stdout, v.ndim, v.shape);
            }
            sep = ", ";
        } else {
            for (int i = 0; i < fl->n; i++) {
                if (fl->f[i] == F_DATA)
                    continue;
                printf("%s\"%s\": ", sep, field_names[fl->f[i]]);
                field_text(stdout, fl->f[i], info, 1);
                sep = ", ";
            }
        }
        if (want_data) {
            printf("%s\"data\": ", sep);
            if (elems <= p->np.threshold)
                cli_print_json_array(stdout, v.dtype, v.ndim, v.shape, v.data);
            else
                printf("null, \"truncated\": true");
        }
        printf("}\n");
        cli_array_free(&v);
        return CLI_OK;
    }
    if (!fl || fl->n == 0) {
        char shape[1024], lat[32];
        cli_fmt_shape(shape, sizeof shape, info->ndim, info->shape);
        cli_fmt_duration(lat, sizeof lat, info->latency_ns);
        printf("# %s version %llu %s %s", name, (unsigned long long)info->version,
               ndshm_dtype_name(info->dtype), shape);
        if (p->slice) {
            cli_fmt_shape(shape, sizeof shape, v.ndim, v.shape);
            printf(" [%s] -> %s", p->slice, shape);
        }
        printf(" latency %s", lat);
        if (info->flags & NDSHM_INFO_EXTRA) {
            /* the version's extras, those that are set */
            if (info->user_ns)
                printf(" user_ns %llu", (unsigned long long)info->user_ns);
            if (info->user_tag)
                printf(" tag %llu", (unsigned long long)info->user_tag);
            if (info->origin_version)
                printf(" origin version %llu", (unsigned long long)info->origin_version);
            if (info->origin_ns)
                printf(" origin_ns %llu", (unsigned long long)info->origin_ns);
            if (info->meta_len)
                printf(" meta %u B", (unsigned)info->meta_len);
        }
        if (info->dropped)
            printf(", %llu dropped before it", (unsigned long long)info->dropped);
        printf("\n");
    } else {
        int scalars = 0;
        for (int i = 0; i < fl->n; i++)
            scalars += fl->f[i] != F_DATA;
        int printed = 0;
        for (int i = 0; i < fl->n; i++) {
            if (fl->f[i] == F_DATA)
                continue;
            if (printed++)
                putchar(' ');
            if (fl->n > 1)
                printf("%s=", field_names[fl->f[i]]);
            field_text(stdout, fl->f[i], info, 0);
        }
        if (scalars)
            putchar('\n');
    }
    if (want_data) {
        struct sbuf sb = SBUF_INIT;
        int st = cli_np_format(&sb, v.dtype, v.ndim, v.shape, v.data, &p->np);
        if (st) {
            sb_free(&sb);
            cli_array_free(&v);
            return cli_fail(st, "%s: formatting", name);
        }
        fwrite(sb.p, 1, sb.len, stdout);
        putchar('\n');
        sb_free(&sb);
    }
    cli_array_free(&v);
    return CLI_OK;
}

/* ---------------------------------------------------------------------------------------------
 * cat
 * ------------------------------------------------------------------------------------------- */

/* cat of a shared array: its current contents (a snapshot copy), in its logical shape. */
static int cat_array(const char *name, const char *out, const struct cli_print *p, int json)
{
    ndshm_array_options o = NDSHM_ARRAY_OPTIONS_INIT;
    o.flags = NDSHM_ARRAY_READONLY;
    ndshm_array *a;
    int st = ndshm_array_attach(name, &o, &a);
    if (st)
        return cli_fail(st, "%s", name);
    ndshm_array_info ai;
    int ret = CLI_FAIL;
    struct cli_array snap, view;
    memset(&snap, 0, sizeof snap);
    memset(&view, 0, sizeof view);
    if ((st = ndshm_array_info_get(a, &ai)) != NDSHM_OK) {
        cli_fail(st, "%s", name);
        goto out;
    }
    const void *d = ndshm_array_cdata(a);
    if (out && !p->slice) {
        /* the array as it is, its order included: numpy.load gives it back exactly */
        if ((st = ndshm_save_npy_order(out, ai.dtype, ai.ndim, ai.shape, ai.order, d)) != 0) {
            cli_fail(st, "writing %s", out);
            goto out;
        }
    }
    /* a C-order snapshot of the logical array (numpy prints a Fortran array the same) */
    size_t isz = ndshm_dtype_size(ai.dtype);
    snap.own = malloc(ai.nbytes ? ai.nbytes : 1);
    if (!snap.own) {
        cli_fail(NDSHM_E_NOMEM, "%s: %llu bytes", name, (unsigned long long)ai.nbytes);
        goto out;
    }
    if (ai.order == NDSHM_ORDER_F && ai.ndim > 1)
        cli_f_to_c(d, snap.own, isz, ai.ndim, ai.shape, ai.nbytes / isz);
    else
        memcpy(snap.own, d, ai.nbytes);
    snap.dtype = ai.dtype;
    snap.ndim = ai.ndim;
    memcpy(snap.shape, ai.shape, sizeof snap.shape);
    snap.nbytes = ai.nbytes;
    snap.data = snap.own;
    if (p->slice) {
        char why[256];
        if ((st = cli_slice(p->slice, snap.dtype, snap.ndim, snap.shape, snap.data, &view, why,
                            sizeof why)) != NDSHM_OK) {
            cli_fail_why(st, why, "%s: --slice %s", name, p->slice);
            goto out;
        }
        if (out && (st = ndshm_save_npy(out, view.dtype, view.ndim, view.shape, view.data))) {
            cli_fail(st, "writing %s", out);
            goto out;
        }
    } else {
        view = snap;
        view.own = NULL; /* snap keeps the buffer */
    }
    uint64_t elems = view.nbytes / isz;
    char shape[1024], vshape[1024];
    cli_fmt_shape(shape, sizeof shape, ai.ndim, ai.shape);
    cli_fmt_shape(vshape, sizeof vshape, view.ndim, view.shape);
    const char *ord = ai.order == NDSHM_ORDER_F ? "F" : "C";
    if (json) {
        printf("{\"name\": ");
        cli_json_str(stdout, name);
        printf(", \"kind\": \"array\", \"dtype\": \"%s\", \"ndim\": %u, \"shape\": ",
               ndshm_dtype_name(ai.dtype), (unsigned)ai.ndim);
        cli_json_shape(stdout, ai.ndim, ai.shape);
        printf(", \"order\": \"%s\", \"nbytes\": %llu, \"created_ns\": %llu", ord,
               (unsigned long long)ai.nbytes, (unsigned long long)ai.created_ns);
        if (p->slice) {
            printf(", \"slice\": ");
            cli_json_str(stdout, p->slice);
            printf(", \"slice_shape\": ");
            cli_json_shape(stdout, view.ndim, view.shape);
        }
        if (out) {
            printf(", \"file\": ");
            cli_json_str(stdout, out);
        } else {
            printf(", \"data\": ");
            if (elems <= p->np.threshold)
                cli_print_json_array(stdout, view.dtype, view.ndim, view.shape, view.data);
            else
                printf("null, \"truncated\": true");
        }
        printf("}\n");
    } else {
        printf("# %s array %s %s %s order", name, ndshm_dtype_name(ai.dtype), shape, ord);
        if (p->slice)
            printf(" [%s] -> %s", p->slice, vshape);
        printf("\n");
        if (out) {
            printf("# written to %s\n", out);
        } else {
            struct sbuf sb = SBUF_INIT;
            if ((st = cli_np_format(&sb, view.dtype, view.ndim, view.shape, view.data, &p->np))) {
                sb_free(&sb);
                cli_fail(st, "%s: formatting", name);
                goto out;
            }
            fwrite(sb.p, 1, sb.len, stdout);
            putchar('\n');
            sb_free(&sb);
        }
    }
    ret = CLI_OK;
out:
    cli_array_free(&view);
    cli_array_free(&snap);
    ndshm_array_detach(a);
    return ret;
}

int cmd_cat(int argc, char **argv)
{
    static const struct option opts[] = {{"output", required_argument, NULL, 'o'},
                                         {"next", no_argument, NULL, 'n'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"max", required_argument, NULL, CLI_OPT_THRESHOLD},
                                         {"json", no_argument, NULL, 'j'},
                                         CLI_PRINT_LONGOPTS,
                                         {NULL, 0, NULL, 0}};
    const char *out = NULL;
    int next = 0, json = 0, c, rc;
    double timeout = -1;
    struct cli_print pr = CLI_PRINT_INIT;
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
        case 'j':
            json = 1;
            break;
        default:
            if ((rc = cli_print_option(c, optarg, &pr)) == 0)
                break;
            if (rc != 1)
                return rc;
            return cli_usage("unknown option or missing value '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return cli_usage("expected one channel name");
    if (out && !out[0])
        return cli_usage("-o wants a file name");
    const char *name = argv[optind];
    ndshm_reader *r = NULL;
    int st = ndshm_reader_open(name, NULL, &r);
    if (st == NDSHM_E_KIND) { /* a shared array */
        if (next)
            return cli_fail_why(st, "a shared array has no versions: --next is for channels", "%s",
                                name);
        return cat_array(name, out, &pr, json);
    }
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
    if (out) {
        struct cli_array v;
        if ((ret = select_data(name, &info, data, &pr, &v)) != CLI_OK)
            goto out;
        st = ndshm_save_npy(out, v.dtype, v.ndim, v.shape, v.data);
        cli_array_free(&v);
        ret = CLI_FAIL;
        if (st) {
            cli_fail(st, "writing %s", out);
            goto out;
        }
        if (json) {
            printf("{\"name\": ");
            cli_json_str(stdout, name);
            printf(", \"version\": %llu, \"dtype\": \"%s\", \"ndim\": %u, \"shape\": ",
                   (unsigned long long)info.version, ndshm_dtype_name(info.dtype),
                   (unsigned)info.ndim);
            cli_json_shape(stdout, info.ndim, info.shape);
            printf(", \"nbytes\": %llu, \"publish_ns\": %llu, \"latency_ns\": %llu, "
                   "\"dropped\": %llu, \"file\": ",
                   (unsigned long long)info.nbytes, (unsigned long long)info.publish_ns,
                   (unsigned long long)info.latency_ns, (unsigned long long)info.dropped);
            cli_json_str(stdout, out);
            printf("}\n");
        } else {
            char shape[1024], lat[32];
            cli_fmt_shape(shape, sizeof shape, info.ndim, info.shape);
            cli_fmt_duration(lat, sizeof lat, info.latency_ns);
            printf("# %s version %llu %s %s latency %s\n# written to %s\n", name,
                   (unsigned long long)info.version, ndshm_dtype_name(info.dtype), shape, lat, out);
        }
        ret = CLI_OK;
        goto out;
    }
    ret = show_version(name, &info, data, &pr, NULL, json);
out:
    ndshm_reader_close(r);
    return ret;
}

/* ---------------------------------------------------------------------------------------------
 * echo
 * ------------------------------------------------------------------------------------------- */

int cmd_echo(int argc, char **argv)
{
    static const struct option opts[] = {{"once", no_argument, NULL, '1'},
                                         {"count", required_argument, NULL, 'c'},
                                         {"oldest", no_argument, NULL, 'O'},
                                         {"field", required_argument, NULL, 'F'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"json", no_argument, NULL, 'j'},
                                         CLI_PRINT_LONGOPTS,
                                         {NULL, 0, NULL, 0}};
    uint64_t count = 0;
    int oldest = 0, json = 0, c, rc;
    double timeout = -1;
    struct cli_print pr = CLI_PRINT_INIT;
    struct fields fl = {0, {0}};
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case '1':
            count = 1;
            break;
        case 'c':
            if (cli_parse_u64(optarg, &count) || count == 0)
                return cli_usage("--count wants a count >= 1, not '%s'", optarg);
            break;
        case 'O':
            oldest = 1;
            break;
        case 'F':
            if ((rc = parse_fields(optarg, &fl)) != CLI_OK)
                return rc;
            break;
        case 't':
            if (cli_parse_seconds(optarg, &timeout))
                return cli_usage("--timeout wants seconds >= 0, not '%s'", optarg);
            break;
        case 'j':
            json = 1;
            break;
        default:
            if ((rc = cli_print_option(c, optarg, &pr)) == 0)
                break;
            if (rc != 1)
                return rc;
            return cli_usage("unknown option or missing value '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return cli_usage("expected one channel name");
    const char *name = argv[optind];
    ndshm_options o = NDSHM_OPTIONS_INIT;
    /* AWAIT_WRITER: wait through a writer's absence (a new writer may take over) */
    o.flags = (oldest ? NDSHM_REPLAY : 0) | NDSHM_AWAIT_WRITER;
    ndshm_reader *r = NULL;
    int st = ndshm_reader_open(name, &o, &r);
    if (st == NDSHM_E_KIND)
        return cli_fail_why(st,
                            "a shared array, changed in place, has no versions to follow: "
                            "`ndshm cat` prints it",
                            "%s", name);
    if (st)
        return cli_fail(st, "%s", name);
    cli_catch_signals();
    uint64_t shown = 0, last_new = ndshm_now_ns();
    int ret = CLI_OK, first = !oldest;
    while (!cli_stop && (count == 0 || shown < count)) {
        const void *data;
        ndshm_info info;
        /* the newest version first (a value published once shows at once), then every
         * version after it; --oldest: every version still in the ring */
        st = first ? ndshm_read_latest_owned(r, &data, &info)
                   : ndshm_read_next_owned(r, &data, &info);
        if (st == NDSHM_OK) {
            first = 0;
            if ((ret = show_version(name, &info, data, &pr, &fl, json)) != CLI_OK)
                break;
            fflush(stdout);
            shown++;
            last_new = ndshm_now_ns();
            continue;
        }
        if (st == NDSHM_CONTENDED)
            continue;
        if (st == NDSHM_NO_DATA || st == NDSHM_NO_NEW) {
            first = 0;
        } else if (st == NDSHM_REPLACED) {
            /* the channel was removed and created again: follow the new one */
            ndshm_reader_close(r);
            r = NULL;
            if ((st = ndshm_reader_open(name, &o, &r)) != NDSHM_OK) {
                ret = cli_fail(st, "%s: reopening after it was replaced", name);
                break;
            }
            first = !oldest;
            continue;
        } else {
            ret = cli_fail(st, "%s: reading", name);
            break;
        }
        uint64_t now = ndshm_now_ns();
        if (timeout >= 0 && now - last_new >= (uint64_t)(timeout * 1e9)) {
            if (shown == 0)
                ret = cli_fail(NDSHM_TIMEOUT, "%s: no version within %g s", name, timeout);
            break;
        }
        /* look at cli_stop and the timeout at least every 100 ms */
        if (ndshm_wait(r, 100000000) == NDSHM_WRITER_GONE)
            cli_sleep_until(ndshm_now_ns() + 100000000u); /* a new writer may take over */
    }
    ndshm_reader_close(r);
    return ret;
}
