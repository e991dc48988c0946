/* ndshm pub: .npy files, arrays of .npz archives and inline values into a channel. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_open_writer(const char *name, uint32_t slots, uint32_t flags, ndshm_writer **w)
{
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.flags = NDSHM_OPEN_OR_CREATE | flags;
    o.slots = slots;
    int st = ndshm_writer_create(name, &o, w);
    if (st == NDSHM_E_WRITER_ALIVE) {
        ndshm_channel_info ci;
        if (ndshm_stat(name, &ci) == NDSHM_OK && ci.writer_pid) {
            char why[256];
            snprintf(why, sizeof why, "%s (writer pid %lld%s)", ndshm_strerror(st),
                     (long long)ci.writer_pid,
                     (ci.flags & NDSHM_ENTRY_OTHER_PIDNS) ? " in another pid namespace" : "");
            return cli_fail_why(st, why, "%s: becoming its writer", name);
        }
    }
    if (st)
        return cli_fail(st, "%s: becoming its writer", name);
    return CLI_OK;
}

int cmd_pub(int argc, char **argv)
{
    static const struct option opts[] = {
        {"rate", required_argument, NULL, 'r'},  {"count", required_argument, NULL, 'c'},
        {"slots", required_argument, NULL, 's'}, {"hold", no_argument, NULL, 'H'},
        {"unlink", no_argument, NULL, 'u'},      {"dtype", required_argument, NULL, 'd'},
        {"key", required_argument, NULL, 'k'},   {"transpose", no_argument, NULL, 'T'},
        {"c-order", no_argument, NULL, 'C'},     {"persist", no_argument, NULL, 'P'},
        {"json", no_argument, NULL, 'j'},        {NULL, 0, NULL, 0}};
    double rate = 0;
    uint64_t count = 0, slots = 0;
    int have_count = 0, hold = 0, unlink_end = 0, json = 0, c;
    ndshm_dtype dtype = 0;
    struct cli_load_opts lo = {NULL, 0, 0};
    uint32_t wflags = 0;
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
        case 'd':
            if (ndshm_dtype_parse(optarg, &dtype) != NDSHM_OK)
                return cli_usage("--dtype: '%s' is not a dtype (float64, f8, <f8, int32, u1, "
                                 "bool, complex64, ...)",
                                 optarg);
            break;
        case 'k':
            lo.key = optarg;
            break;
        case 'T':
            lo.transpose = 1;
            break;
        case 'C':
            lo.c_order = 1;
            break;
        case 'P':
            wflags |= NDSHM_PERSISTENT; /* gc keeps the channel after we exit */
            break;
        case 'j':
            json = 1;
            break;
        default:
            return cli_usage("unknown option or missing value '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind < 2)
        return cli_usage("expected a channel name and at least one .npy file or value");
    if (lo.transpose && lo.c_order)
        return cli_usage("--transpose and --c-order exclude each other");
    const char *name = argv[optind];
    int nsrc = argc - optind - 1;
    char **src = argv + optind + 1;
    int st = ndshm_name_check(name);
    if (st)
        return cli_fail(st, "%s", name);
    int literals = 0;
    for (int i = 0; i < nsrc; i++)
        literals += cli_looks_literal(src[i]);
    if (dtype && !literals)
        return cli_usage("--dtype applies to inline values such as '[1.0, 2.0]'; the files "
                         "carry their own dtype");
    struct cli_array *arr = calloc((size_t)nsrc, sizeof *arr);
    if (!arr)
        return cli_fail(NDSHM_E_NOMEM, "loading");
    int ret = CLI_FAIL;
    ndshm_writer *w = NULL;
    for (int i = 0; i < nsrc; i++) {
        char why[512];
        if (cli_looks_literal(src[i])) {
            if ((st = cli_parse_literal(src[i], dtype, &arr[i], why, sizeof why)) != NDSHM_OK) {
                cli_fail_why(st, why, "value '%.40s'", src[i]);
                goto out;
            }
        } else if ((st = cli_load_array(src[i], &lo, &arr[i], why, sizeof why)) != NDSHM_OK) {
            cli_fail_why(st, why, "%s", src[i]);
            goto out;
        }
    }
    if (!have_count)
        count = (uint64_t)nsrc;
    if ((ret = cli_open_writer(name, (uint32_t)slots,
                               wflags | (unlink_end ? NDSHM_UNLINK_ON_CLOSE : 0), &w)) != CLI_OK)
        goto out;
    ret = CLI_FAIL;
    cli_catch_signals();
    uint64_t t0 = ndshm_now_ns(), version = 0, done = 0;
    for (uint64_t i = 0; i < count && !cli_stop; i++) {
        if (rate > 0 && i > 0)
            cli_sleep_until(t0 + (uint64_t)((double)i * 1e9 / rate));
        if (cli_stop)
            break;
        const struct cli_array *a = &arr[i % (uint64_t)nsrc];
        st = ndshm_publish(w, a->dtype, a->ndim, a->shape, a->data, &version);
        if (st) {
            cli_fail(st, "%s: publishing %s", name, src[i % (uint64_t)nsrc]);
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
    for (int i = 0; i < nsrc; i++)
        cli_array_free(&arr[i]);
    free(arr);
    return ret;
}
