/* End-to-end tests of the `ndshm` tool (tools/cli) against live channels started here: every
 * command's output fields, --json validity (a strict JSON checker below), exit statuses, and
 * gc never touching a live channel. Everything happens in a private NDSHM_DIR, so `ls` and
 * `gc` see only this test's channels and parallel tests are never disturbed; the directory
 * is removed at exit. The tool's path comes from $NDSHM_CLI (set by tests/cli/CMakeLists.txt). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ndshm/ndshm.h"
#include "testutil.h"

static char dir[64];
static const char *cli;

/* ---------------------------------------------------------------------------------------------
 * A strict JSON checker (RFC 8259 grammar)
 * ------------------------------------------------------------------------------------------- */
static const char *js_value(const char *p, int depth);

static const char *js_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

static const char *js_string(const char *p)
{
    if (*p++ != '"')
        return NULL;
    while (*p && *p != '"') {
        if ((unsigned char)*p < 0x20)
            return NULL;
        if (*p == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!isxdigit((unsigned char)p[i]))
                        return NULL;
                p += 5;
                continue;
            }
            if (!*p || !strchr("\"\\/bfnrt", *p))
                return NULL;
        }
        p++;
    }
    return *p == '"' ? p + 1 : NULL;
}

static const char *js_number(const char *p)
{
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (isdigit((unsigned char)*p))
            p++;
    else
        return NULL;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return NULL;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!isdigit((unsigned char)*p))
            return NULL;
        while (isdigit((unsigned char)*p))
            p++;
    }
    return p;
}

static const char *js_value(const char *p, int depth)
{
    if (depth > 64)
        return NULL;
    p = js_ws(p);
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        int obj = *p == '{';
        p = js_ws(p + 1);
        if (*p == close)
            return p + 1;
        for (;;) {
            if (obj) {
                if (!(p = js_string(js_ws(p))))
                    return NULL;
                p = js_ws(p);
                if (*p++ != ':')
                    return NULL;
            }
            if (!(p = js_value(p, depth + 1)))
                return NULL;
            p = js_ws(p);
            if (*p == close)
                return p + 1;
            if (*p++ != ',')
                return NULL;
        }
    }
    if (*p == '"')
        return js_string(p);
    if (strncmp(p, "true", 4) == 0)
        return p + 4;
    if (strncmp(p, "false", 5) == 0)
        return p + 5;
    if (strncmp(p, "null", 4) == 0)
        return p + 4;
    return js_number(p);
}

static int json_valid(const char *s)
{
    const char *p = js_value(s, 0);
    return p && *js_ws(p) == 0;
}

static void test_json_checker(void **state)
{
    (void)state;
    assert_true(json_valid("{\"a\": [1, -2.5e3, true, null, \"x\\n\"], \"b\": {}}"));
    assert_false(json_valid("{\"a\": 1,}"));
    assert_false(json_valid("{'a': 1}"));
    assert_false(json_valid("[nan]"));
    assert_false(json_valid("[1] [2]"));
    assert_false(json_valid("[01]"));
    assert_false(json_valid(""));
}

/* ---------------------------------------------------------------------------------------------
 * Running the tool
 * ------------------------------------------------------------------------------------------- */
struct run {
    int status; /* exit status, or 128 + signal */
    char out[1 << 16];
    char err[1 << 13];
};

static void slurp(const char *path, char *buf, size_t cap)
{
    buf[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
    fclose(f);
}

/* Run `ndshm args...` (NULL-terminated), stdout and stderr captured; at most 60 s. */
static int run(struct run *r, ...)
{
    const char *argv[32];
    int argc = 0;
    argv[argc++] = cli;
    va_list ap;
    va_start(ap, r);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && argc < 31)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    char outp[128], errp[128];
    snprintf(outp, sizeof outp, "%s/stdout", dir);
    snprintf(errp, sizeof errp, "%s/stderr", dir);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a test killed by its timeout */
        int o = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(126);
        execv(cli, (char *const *)argv);
        _exit(126);
    }
    int st = 0;
    for (int i = 0; i < 6000; i++) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            break;
        if (i == 5999) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            fail_msg("ndshm %s did not finish within 60 s", argv[1]);
        }
        tu_sleep_ms(10);
    }
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    slurp(outp, r->out, sizeof r->out);
    slurp(errp, r->err, sizeof r->err);
    return r->status;
}

static struct run R; /* one at a time; large buffers stay off the stack */

static int lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

#define assert_contains(hay, needle)                                                               \
    do {                                                                                           \
        if (!strstr((hay), (needle)))                                                              \
            fail_msg("expected \"%s\" in:\n%s", (needle), (hay));                                  \
    } while (0)

/* A failure: exit status 1 and one line on stderr naming the status. */
static void assert_fails_with(const struct run *r, const char *status_name)
{
    if (r->status != 1)
        fail_msg("exit status %d, expected 1; stderr: %s", r->status, r->err);
    assert_contains(r->err, status_name);
    assert_int_equal(lines(r->err), 1);
}

/* ---------------------------------------------------------------------------------------------
 * Writers in child processes
 * ------------------------------------------------------------------------------------------- */
enum wmode { W_FOREVER, W_CLOSE, W_DIE };

/* Child: create `name` (slots), publish `count` versions (forever if 0) every period_ms of a
 * float32 (2, 3) array whose element k is version * 1000 + k (pattern 0), or of a uint8 (100,)
 * tu_fill payload (pattern 1); then close, or _exit without closing (a dead writer). The
 * parent returns once the first version is out. */
static pid_t start_writer(const char *name, uint32_t slots, unsigned period_ms, uint64_t count,
                          int pattern, enum wmode mode)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a forever-writer must die with the test */
        if (getppid() == 1)
            _exit(6);
        close(fds[0]);
        ndshm_options o = NDSHM_OPTIONS_INIT;
        o.slots = slots;
        ndshm_writer *w;
        if (ndshm_writer_create(name, &o, &w) != NDSHM_OK)
            _exit(3);
        for (uint64_t v = 1; count == 0 || v <= count; v++) {
            int rc;
            if (pattern == 0) {
                float a[6];
                for (int k = 0; k < 6; k++)
                    a[k] = (float)(v * 1000 + (uint64_t)k);
                uint64_t shape[] = {2, 3};
                rc = ndshm_publish(w, NDSHM_FLOAT32, 2, shape, a, NULL);
            } else {
                uint8_t b[100];
                tu_fill(b, sizeof b, v);
                uint64_t shape[] = {100};
                rc = ndshm_publish(w, NDSHM_UINT8, 1, shape, b, NULL);
            }
            if (rc)
                _exit(4);
            if (v == 1) {
                if (write(fds[1], "x", 1) != 1)
                    _exit(5);
            }
            if (period_ms)
                tu_sleep_ms(period_ms);
        }
        if (mode == W_CLOSE)
            ndshm_writer_close(w);
        _exit(0); /* W_DIE: no close, the writer word stays: a dead writer */
    }
    close(fds[1]);
    char c;
    assert_int_equal(read(fds[0], &c, 1), 1);
    close(fds[0]);
    return pid;
}

static void stop_writer(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static void wait_writer(pid_t pid)
{
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static const char *file_in_dir(const char *base)
{
    static char p[4][256];
    static int i;
    char *out = p[i++ % 4];
    snprintf(out, 256, "%s/%s", dir, base);
    return out;
}

/* ---------------------------------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------------------------------- */

static void test_help_and_usage(void **state)
{
    (void)state;
    assert_int_equal(run(&R, "--help", NULL), 0);
    const char *cmds[] = {"ls",     "stat",   "echo", "watch", "cat",  "pub",
                          "record", "replay", "rm",   "gc",    "bench"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        assert_contains(R.out, cmds[i]);
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        if (strcmp(cmds[i], "bench") == 0)
            continue;
        assert_int_equal(run(&R, cmds[i], "--help", NULL), 0);
        assert_contains(R.out, "usage: ndshm");
    }
    assert_int_equal(run(&R, "--version", NULL), 0);
    assert_contains(R.out, ndshm_version());
    assert_int_equal(run(&R, NULL), 2);
    assert_int_equal(run(&R, "cat", NULL), 2);
    assert_int_equal(run(&R, "ls", "--bogus", NULL), 2);
    assert_int_equal(run(&R, "pub", "x", "f.npy", "--rate", "abc", NULL), 2);
    assert_int_equal(run(&R, "stat", "bad/name", NULL), 1);
    assert_contains(R.err, "NDSHM_E_NAME");
}

static void test_dispatch(void **state)
{
    (void)state;
    assert_int_equal(run(&R, "no-such-tool", "x", NULL), 127);
    assert_contains(R.err, "ndshm-no-such-tool");
    assert_int_equal(lines(R.err), 1);
    /* a program ndshm-hello on PATH gets the remaining arguments */
    char bin[128], prog[160], path[4096];
    snprintf(bin, sizeof bin, "%s/bin", dir);
    assert_int_equal(mkdir(bin, 0700), 0);
    snprintf(prog, sizeof prog, "%s/ndshm-hello", bin);
    FILE *f = fopen(prog, "w");
    assert_non_null(f);
    fprintf(f, "#!/bin/sh\necho \"hello [$1] [$2]\"\nexit 7\n");
    fclose(f);
    assert_int_equal(chmod(prog, 0700), 0);
    const char *old = getenv("PATH");
    snprintf(path, sizeof path, "%s:%s", bin, old ? old : "/usr/bin:/bin");
    char *saved = strdup(old ? old : "");
    setenv("PATH", path, 1);
    run(&R, "hello", "a b", "c", NULL);
    setenv("PATH", saved, 1);
    free(saved);
    assert_int_equal(R.status, 7);
    assert_contains(R.out, "hello [a b] [c]");
    /* bench: ndshm-bench next to ndshm, when the benchmark has been built */
    char bench[4096];
    snprintf(bench, sizeof bench, "%s", cli);
    char *slash = strrchr(bench, '/');
    assert_non_null(slash);
    snprintf(slash, sizeof bench - (size_t)(slash - bench), "/ndshm-bench");
    if (access(bench, X_OK) == 0) {
        assert_int_equal(run(&R, "bench", "--help", NULL), 0);
        assert_contains(R.out, "ndshm-bench");
    }
}

static void test_ls_stat(void **state)
{
    (void)state;
    const char *name = tu_name("lsstat");
    pid_t pid = start_writer(name, 8, 5, 0, 0, W_FOREVER);
    char spid[32];
    snprintf(spid, sizeof spid, "%d alive", (int)pid);

    assert_int_equal(run(&R, "ls", NULL), 0);
    assert_contains(R.out, "NAME");
    assert_contains(R.out, name);
    assert_contains(R.out, "float32");
    assert_contains(R.out, "(2, 3)");
    assert_contains(R.out, spid);
    assert_int_equal(run(&R, "ls", "--json", NULL), 0);
    assert_true(json_valid(R.out));
    char want[256];
    snprintf(want, sizeof want, "\"name\": \"%s\"", name);
    assert_contains(R.out, want);
    assert_contains(R.out, "\"writer\": \"alive\"");
    assert_contains(R.out, "\"shape\": [2, 3]");
    assert_contains(R.out, "\"slots\": 8");

    assert_int_equal(run(&R, "stat", name, NULL), 0);
    snprintf(want, sizeof want, "pid %d, alive", (int)pid);
    assert_contains(R.out, want);
    assert_contains(R.out, "reallocs:");
    assert_contains(R.out, "versions published");
    snprintf(want, sizeof want, "%s/ndshm.%s (4096 B)", dir, name);
    assert_contains(R.out, want);
    snprintf(want, sizeof want, "%s/ndshm.%s@", dir, name);
    assert_contains(R.out, want);
    assert_int_equal(run(&R, "stat", name, "--json", NULL), 0);
    assert_true(json_valid(R.out));
    assert_contains(R.out, "\"segments\": [{\"path\": ");
    assert_contains(R.out, "\"versions_published\": ");

    /* readers: counted by the library from the readers' kernel locks, one per reader handle */
    assert_contains(R.out, "\"readers\": 0");
    ndshm_reader *rd[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(ndshm_reader_open(name, NULL, &rd[i]), NDSHM_OK);
    assert_int_equal(run(&R, "stat", name, NULL), 0);
    assert_contains(R.out, "readers:       3\n");
    assert_int_equal(run(&R, "stat", name, "--json", NULL), 0);
    assert_contains(R.out, "\"readers\": 3");
    ndshm_reader_close(rd[2]);
    assert_int_equal(run(&R, "ls", name, NULL), 0);
    snprintf(want, sizeof want, "        2  %d alive", (int)pid); /* READERS, then WRITER */
    assert_contains(R.out, want);
    ndshm_reader_close(rd[1]);
    ndshm_reader_close(rd[0]);
    assert_int_equal(run(&R, "ls", name, "--json", NULL), 0);
    assert_contains(R.out, "\"readers\": 0");

    run(&R, "stat", tu_name("missing"), NULL);
    assert_fails_with(&R, "NDSHM_E_NOENT");
    stop_writer(pid);
    /* killed without closing: dead */
    assert_int_equal(run(&R, "ls", "--json", NULL), 0);
    assert_contains(R.out, "\"writer\": \"dead\"");
    assert_int_equal(run(&R, "rm", name, NULL), 0);
}

/* The version in "# NAME version V float32 (2, 3) ..." (0 if the line is not there). */
static unsigned long long header_version(const char *out, const char *name)
{
    char want[256];
    snprintf(want, sizeof want, "# %s version ", name);
    if (strncmp(out, want, strlen(want)) != 0)
        return 0;
    char *end;
    unsigned long long v = strtoull(out + strlen(want), &end, 10);
    return strncmp(end, " float32 (2, 3) ", 16) == 0 ? v : 0;
}

static void test_cat(void **state)
{
    (void)state;
    const char *name = tu_name("cat");
    pid_t pid = start_writer(name, 4, 2, 0, 0, W_FOREVER);

    assert_int_equal(run(&R, "cat", name, NULL), 0);
    unsigned long long v = header_version(R.out, name);
    assert_true(v >= 1);
    /* the values printed are those of that version: v*1000 + k */
    char row[128];
    /* numpy's print(): one width for the column, "1000." for floats */
    snprintf(row, sizeof row, "[[%llu. %llu. %llu.]\n [%llu. %llu. %llu.]]\n", v * 1000,
             v * 1000 + 1, v * 1000 + 2, v * 1000 + 3, v * 1000 + 4, v * 1000 + 5);
    assert_contains(R.out, row);

    assert_int_equal(run(&R, "cat", name, "--json", NULL), 0);
    assert_true(json_valid(R.out));
    assert_contains(R.out, "\"dtype\": \"float32\"");
    assert_contains(R.out, "\"shape\": [2, 3]");
    assert_contains(R.out, "\"data\": [[");

    const char *out = file_in_dir("cat.npy");
    assert_int_equal(run(&R, "cat", name, "-o", out, NULL), 0);
    v = header_version(R.out, name);
    assert_true(v >= 1);
    ndshm_npy_header h;
    void *data;
    assert_int_equal(ndshm_load_npy(out, &h, &data), NDSHM_OK);
    assert_int_equal(h.dtype, NDSHM_FLOAT32);
    assert_int_equal(h.ndim, 2);
    assert_int_equal(h.shape[0], 2);
    assert_int_equal(h.shape[1], 3);
    for (int k = 0; k < 6; k++)
        assert_true(((float *)data)[k] == (float)(v * 1000 + (unsigned)k));
    ndshm_npy_free(data);

    /* --next: a version newer than the one current when cat started */
    /* (the writer publishes every few ms; 60 s is only a bound for a stalled machine) */
    assert_int_equal(run(&R, "cat", name, "--next", "--timeout", "60", NULL), 0);
    unsigned long long v2 = header_version(R.out, name);
    assert_true(v2 > v);
    /* more elements than --threshold (or --max): summarised as numpy does, with "..." */
    assert_int_equal(run(&R, "cat", name, "--max", "5", "--edgeitems", "1", NULL), 0);
    assert_contains(R.out, "...");
    assert_int_equal(run(&R, "cat", name, "--threshold", "5", "--edgeitems", "1", NULL), 0);
    assert_contains(R.out, "...");
    stop_writer(pid);

    /* a closed writer: --next ends at once with WRITER_GONE */
    const char *closed = tu_name("cat-closed");
    wait_writer(start_writer(closed, 4, 0, 3, 0, W_CLOSE));
    run(&R, "cat", closed, "--next", "--timeout", "10", NULL);
    assert_fails_with(&R, "NDSHM_WRITER_GONE");
    assert_int_equal(run(&R, "cat", closed, NULL), 0); /* the last version is still there */
    assert_contains(R.out, "version 3 ");
    /* created but nothing published */
    ndshm_writer *w;
    const char *empty = tu_name("cat-empty");
    assert_int_equal(ndshm_writer_create(empty, NULL, &w), NDSHM_OK);
    run(&R, "cat", empty, NULL);
    assert_fails_with(&R, "NDSHM_NO_DATA");
    run(&R, "cat", empty, "--next", "--timeout", "0.05", NULL);
    assert_fails_with(&R, "NDSHM_TIMEOUT");
    ndshm_writer_close(w);
    run(&R, "cat", tu_name("missing"), NULL);
    assert_fails_with(&R, "NDSHM_E_NOENT");
}

static void test_pub(void **state)
{
    (void)state;
    uint16_t a[20], b[3] = {7, 8, 9};
    for (int i = 0; i < 20; i++)
        a[i] = (uint16_t)(i * 3);
    uint64_t sa[] = {4, 5}, sb[] = {3};
    const char *fa = file_in_dir("a.npy"), *fb = file_in_dir("b.npy");
    assert_int_equal(ndshm_save_npy(fa, NDSHM_UINT16, 2, sa, a), NDSHM_OK);
    assert_int_equal(ndshm_save_npy(fb, NDSHM_UINT16, 1, sb, b), NDSHM_OK);
    const char *name = tu_name("pub");
    assert_int_equal(run(&R, "pub", name, fa, fb, "--count", "5", "--rate", "500", "--json", NULL),
                     0);
    assert_true(json_valid(R.out));
    assert_contains(R.out, "\"published\": 5");
    assert_contains(R.out, "\"last_version\": 5");
    /* versions alternate a, b, a, b, a: the last is a */
    ndshm_reader *r;
    assert_int_equal(ndshm_reader_open(name, NULL, &r), NDSHM_OK);
    uint16_t buf[20];
    ndshm_info info;
    assert_int_equal(ndshm_read_latest(r, buf, sizeof buf, &info), NDSHM_OK);
    assert_int_equal(info.version, 5);
    assert_int_equal(info.dtype, NDSHM_UINT16);
    assert_int_equal(info.ndim, 2);
    assert_memory_equal(buf, a, sizeof a);
    ndshm_reader_close(r);
    /* again: the channel exists, its writer closed: pub takes it over and numbering goes on */
    assert_int_equal(run(&R, "pub", name, fb, NULL), 0);
    assert_contains(R.out, "last version 6");
    /* a live writer: refused */
    const char *live = tu_name("pub-live");
    pid_t pid = start_writer(live, 4, 5, 0, 0, W_FOREVER);
    run(&R, "pub", live, fb, NULL);
    assert_fails_with(&R, "NDSHM_E_WRITER_ALIVE");
    stop_writer(pid);
    /* bad files: not .npy, missing */
    const char *junk = file_in_dir("junk.npy");
    FILE *f = fopen(junk, "w");
    assert_non_null(f);
    fputs("not numpy\n", f);
    fclose(f);
    run(&R, "pub", name, junk, NULL);
    assert_fails_with(&R, "NDSHM_E_CORRUPT");
    assert_contains(R.err, "junk.npy");
    run(&R, "pub", name, file_in_dir("missing.npy"), NULL);
    assert_fails_with(&R, "No such file");
    /* --unlink: gone afterwards */
    const char *tmp = tu_name("pub-unlink");
    assert_int_equal(run(&R, "pub", tmp, fb, "--unlink", NULL), 0);
    ndshm_channel_info ci;
    assert_int_equal(ndshm_stat(tmp, &ci), NDSHM_E_NOENT);
}

static void test_record_replay(void **state)
{
    (void)state;
    const char *src = tu_name("rec");
    wait_writer(start_writer(src, 64, 2, 20, 1, W_CLOSE)); /* 20 versions, then closed */
    const char *rec = file_in_dir("rec");
    /* --oldest, no count: everything still in the ring, then stops: the writer is gone */
    assert_int_equal(run(&R, "record", src, rec, "--oldest", "--json", NULL), 0);
    assert_true(json_valid(R.out));
    assert_contains(R.out, "\"recorded\": 20");
    assert_contains(R.out, "\"stopped\": \"writer gone\"");
    char idx[256];
    snprintf(idx, sizeof idx, "%s/index.csv", rec);
    FILE *f = fopen(idx, "r");
    assert_non_null(f);
    char line[512];
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "channel,version,publish_ns,latency_ns,dropped,file\n");
    uint64_t first_ns = 0, last_ns = 0;
    for (uint64_t v = 1; v <= 20; v++) {
        assert_non_null(fgets(line, sizeof line, f));
        char *comma = strchr(line, ',');
        assert_non_null(comma);
        *comma = 0;
        assert_string_equal(line, src); /* the channel column */
        unsigned long long ver, pns, lat, drop;
        char file[256];
        assert_int_equal(
            sscanf(comma + 1, "%llu,%llu,%llu,%llu,%255s", &ver, &pns, &lat, &drop, file), 5);
        assert_int_equal(ver, v);
        assert_int_equal(drop, 0);
        char want[256];
        snprintf(want, sizeof want, "%s/v%012llu.npy", src, ver); /* a folder per channel */
        assert_string_equal(file, want);
        if (v == 1)
            first_ns = pns;
        assert_true(pns >= last_ns);
        last_ns = pns;
        char path[768];
        snprintf(path, sizeof path, "%s/%s", rec, file);
        ndshm_npy_header h;
        void *data;
        assert_int_equal(ndshm_load_npy(path, &h, &data), NDSHM_OK);
        assert_int_equal(h.dtype, NDSHM_UINT8);
        assert_int_equal(h.nbytes, 100);
        assert_true(tu_check(data, 100, v));
        ndshm_npy_free(data);
    }
    assert_null(fgets(line, sizeof line, f));
    fclose(f);
    /* a second recording into the same directory is refused without --force, and says why */
    run(&R, "record", src, rec, "--oldest", NULL);
    assert_fails_with(&R, "NDSHM_E_SYS");
    assert_contains(R.err, "the directory exists already");
    assert_null(strstr(R.err, "channel"));
    assert_int_equal(run(&R, "record", src, rec, "--oldest", "--count", "3", "--force", NULL), 0);
    assert_contains(R.out, "3 version(s)");
    assert_int_equal(run(&R, "record", src, rec, "--oldest", "--force", NULL), 0);
    /* --count */
    assert_int_equal(run(&R, "record", src, file_in_dir("rec5"), "--oldest", "--count", "5", NULL),
                     0);
    assert_contains(R.out, "5 version(s)");

    /* replay into a channel made with 64 slots, read back in order by a REPLAY reader */
    const char *dst = tu_name("replay");
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.slots = 64;
    ndshm_writer *w;
    assert_int_equal(ndshm_writer_create(dst, &o, &w), NDSHM_OK);
    assert_int_equal(ndshm_writer_close(w), NDSHM_OK);
    ndshm_options ro = NDSHM_OPTIONS_INIT;
    ro.flags = NDSHM_REPLAY;
    ndshm_reader *r;
    assert_int_equal(ndshm_reader_open(dst, &ro, &r), NDSHM_OK);
    uint64_t t0 = ndshm_now_ns();
    assert_int_equal(run(&R, "replay", rec, dst, "--realtime", "--json", NULL), 0);
    uint64_t elapsed = ndshm_now_ns() - t0;
    assert_true(json_valid(R.out));
    assert_contains(R.out, "\"published\": 20");
    /* the recorded spacing is kept: replay cannot be faster than the recording */
    if (elapsed < last_ns - first_ns)
        fail_msg("replay --realtime took %llu ns, the recording spans %llu ns",
                 (unsigned long long)elapsed, (unsigned long long)(last_ns - first_ns));
    uint8_t buf[100];
    ndshm_info info;
    for (uint64_t v = 1; v <= 20; v++) {
        assert_int_equal(ndshm_read_next(r, buf, sizeof buf, &info), NDSHM_OK);
        assert_int_equal(info.version, v);
        assert_int_equal(info.dropped, 0);
        assert_true(tu_check(buf, 100, v));
    }
    assert_int_equal(ndshm_read_next(r, buf, sizeof buf, &info), NDSHM_NO_NEW);
    /* --rate and --loop: 40 more */
    assert_int_equal(run(&R, "replay", rec, dst, "--rate", "5000", "--loop", "2", NULL), 0);
    assert_contains(R.out, "published 40 version(s)");
    assert_contains(R.out, "last version 60");
    ndshm_reader_close(r);
    /* without NAME: the recorded name (the source channel, whose writer is closed) */
    assert_int_equal(run(&R, "replay", rec, NULL), 0);
    assert_contains(R.out, "last version 40"); /* numbering goes on after the 20 recorded */
    run(&R, "replay", rec, "--prefix", "bad/", NULL);
    assert_fails_with(&R, "NDSHM_E_NAME");

    /* an index that points outside the directory is refused, naming the file and line */
    const char *evil = file_in_dir("evil");
    assert_int_equal(mkdir(evil, 0700), 0);
    snprintf(idx, sizeof idx, "%s/index.csv", evil);
    f = fopen(idx, "w");
    assert_non_null(f);
    fputs("version,publish_ns,latency_ns,dropped,file\n1,1,1,0,../rec/v000000000001.npy\n", f);
    fclose(f);
    run(&R, "replay", evil, dst, NULL);
    assert_fails_with(&R, "NDSHM_E_CORRUPT");
    assert_contains(R.err, "evil/index.csv:2: the file '../rec/v000000000001.npy' is not a plain");
    run(&R, "replay", file_in_dir("nothing-here"), dst, NULL);
    assert_fails_with(&R, "No such file");
    run(&R, "record", tu_name("missing"), file_in_dir("rec-missing"), NULL);
    assert_fails_with(&R, "NDSHM_E_NOENT");
}

static void test_watch(void **state)
{
    (void)state;
    const char *name = tu_name("watch");
    pid_t pid = start_writer(name, 8, 2, 0, 0, W_FOREVER);
    /* 3 s of 0.1 s intervals: at least 2 intervals and a read unless the machine stalls this
     * one process for most of 3 s */
    assert_int_equal(run(&R, "watch", name, "--for", "3", "--interval", "0.1", "--json", NULL), 0);
    /* every line is one JSON object; some interval read versions; a summary ends it */
    int intervals = 0, with_reads = 0, summary = 0;
    char *save = NULL;
    for (char *l = strtok_r(R.out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (!json_valid(l))
            fail_msg("not JSON: %s", l);
        if (strstr(l, "\"summary\": true")) {
            summary++;
            continue;
        }
        intervals++;
        unsigned long long reads = 0;
        const char *p = strstr(l, "\"read\": ");
        assert_non_null(p);
        assert_int_equal(sscanf(p, "\"read\": %llu", &reads), 1);
        if (reads > 0) {
            with_reads++;
            assert_non_null(strstr(l, "\"latency_ns\": {\"p50\": "));
            assert_non_null(strstr(l, "\"writer\": \"alive\""));
            assert_non_null(strstr(l, "\"shape\": [2, 3]"));
        }
    }
    assert_int_equal(summary, 1);
    if (intervals < 2 || with_reads < 1)
        fail_msg("expected at least 2 intervals, one with reads, from `watch --for 3 --interval "
                 "0.1` on a writer publishing every 2 ms; got %d intervals, %d with reads",
                 intervals, with_reads);
    assert_int_equal(run(&R, "watch", name, "--for", "0.3", NULL), 0);
    assert_contains(R.out, "LAT p50");
    assert_contains(R.out, "watch: ");
    stop_writer(pid);
    run(&R, "watch", tu_name("missing"), "--for", "0.1", NULL);
    assert_fails_with(&R, "NDSHM_E_NOENT");
}

static void test_rm_gc(void **state)
{
    (void)state;
    const char *live = tu_name("gc-live"), *dead = tu_name("gc-dead"),
               *closed = tu_name("gc-closed");
    char want[512];
    /* earlier tests left dead and closed channels in our private directory: clear them */
    assert_int_equal(run(&R, "gc", NULL), 0);
    pid_t pid = start_writer(live, 4, 5, 0, 0, W_FOREVER);
    wait_writer(start_writer(dead, 4, 0, 2, 0, W_DIE));
    wait_writer(start_writer(closed, 4, 0, 2, 0, W_CLOSE));
    ndshm_channel_info ci;

    assert_int_equal(run(&R, "gc", "--dry-run", NULL), 0);
    assert_contains(R.out, dead);
    assert_contains(R.out, closed);
    assert_null(strstr(R.out, live));
    assert_int_equal(ndshm_stat(dead, &ci), NDSHM_OK); /* dry run: nothing removed */

    assert_int_equal(run(&R, "gc", "--json", NULL), 0);
    assert_true(json_valid(R.out));
    assert_contains(R.out, "\"count\": 2");
    assert_contains(R.out, dead);
    assert_contains(R.out, "writer dead");
    assert_contains(R.out, closed);
    assert_null(strstr(R.out, live));
    assert_int_equal(ndshm_stat(dead, &ci), NDSHM_E_NOENT);
    assert_int_equal(ndshm_stat(closed, &ci), NDSHM_E_NOENT);
    assert_int_equal(tu_count_segments(dead), 0);
    assert_int_equal(ndshm_stat(live, &ci), NDSHM_OK); /* never the live one */
    assert_int_equal(ci.writer_alive, 1);
    assert_int_equal(run(&R, "gc", NULL), 0);
    assert_contains(R.out, "removed 0 channel(s)");

    /* pub --persist: the channel outlives pub (writer closed) and gc keeps it; ls and stat say
     * so; rm removes it without --force (no live writer) */
    const char *cfg = tu_name("gc-persist"), *plain = tu_name("gc-plain");
    assert_int_equal(run(&R, "pub", cfg, "--persist", "[0.5, 2.0]", NULL), 0);
    assert_int_equal(run(&R, "pub", plain, "[0.5, 2.0]", NULL), 0);
    assert_int_equal(ndshm_stat(cfg, &ci), NDSHM_OK);
    assert_true(ci.flags & NDSHM_ENTRY_PERSISTENT);
    assert_int_equal(ci.writer_alive, 0);
    assert_int_equal(run(&R, "ls", cfg, NULL), 0);
    assert_contains(R.out, "- closed, persistent");
    assert_int_equal(run(&R, "ls", cfg, "--json", NULL), 0);
    assert_contains(R.out, "\"persistent\": true");
    assert_int_equal(run(&R, "stat", cfg, NULL), 0);
    assert_contains(R.out, "persistent:    yes");
    assert_int_equal(run(&R, "gc", "--dry-run", NULL), 0);
    assert_contains(R.out, plain);
    snprintf(want, sizeof want, "kept %s (persistent, writer closed)", cfg);
    assert_contains(R.out, want);
    assert_int_equal(run(&R, "gc", "--json", NULL), 0);
    assert_true(json_valid(R.out));
    assert_contains(R.out, "\"count\": 1");
    snprintf(want, sizeof want, "\"kept_persistent\": [\"%s\"]", cfg);
    assert_contains(R.out, want);
    assert_int_equal(ndshm_stat(plain, &ci), NDSHM_E_NOENT);
    assert_int_equal(ndshm_stat(cfg, &ci), NDSHM_OK);
    /* a new pub into it keeps it persistent */
    assert_int_equal(run(&R, "pub", cfg, "[1.0, 2.0]", NULL), 0);
    assert_int_equal(run(&R, "gc", NULL), 0);
    assert_int_equal(ndshm_stat(cfg, &ci), NDSHM_OK);
    assert_int_equal(run(&R, "rm", cfg, NULL), 0);
    assert_int_equal(ndshm_stat(cfg, &ci), NDSHM_E_NOENT);
    assert_int_equal(ndshm_stat(live, &ci), NDSHM_OK);

    /* rm refuses a channel whose writer is alive, naming the writer's pid ... */
    snprintf(want, sizeof want, "its writer is alive (pid %d)", (int)pid);
    run(&R, "rm", live, NULL);
    assert_fails_with(&R, "NDSHM_E_WRITER_ALIVE");
    assert_contains(R.err, want);
    assert_contains(R.err, "--force");
    assert_int_equal(ndshm_stat(live, &ci), NDSHM_OK);
    run(&R, "rm", live, "--json", NULL);
    assert_int_equal(R.status, 1);
    assert_true(json_valid(R.out));
    assert_contains(R.out, "\"removed\": false");
    snprintf(want, sizeof want, "\"writer_pid\": %d", (int)pid);
    assert_contains(R.out, want);
    /* ... and with --force removes it (its writer keeps its mapping), and says so when absent */
    assert_int_equal(run(&R, "rm", live, "--force", "--json", NULL), 0);
    assert_true(json_valid(R.out));
    assert_contains(R.out, "\"removed\": true");
    assert_int_equal(ndshm_stat(live, &ci), NDSHM_E_NOENT);
    assert_int_equal(tu_count_segments(live), 0);
    run(&R, "rm", live, NULL);
    assert_fails_with(&R, "NDSHM_E_NOENT");
    stop_writer(pid);
}

/* ---------------------------------------------------------------------------------------------
 * echo
 * ------------------------------------------------------------------------------------------- */

/* The versions in "# NAME version V ..." lines of out, in order; returns how many. */
static int versions_in(const char *out, const char *name, unsigned long long *v, int max)
{
    char want[256];
    snprintf(want, sizeof want, "# %s version ", name);
    int n = 0;
    for (const char *p = out; (p = strstr(p, want)) != NULL && n < max; p += strlen(want))
        v[n++] = strtoull(p + strlen(want), NULL, 10);
    return n;
}

static void test_echo(void **state)
{
    (void)state;
    const char *name = tu_name("echo");
    pid_t pid = start_writer(name, 64, 2, 0, 0, W_FOREVER);
    /* every version from the newest on, in order, none skipped, each with its own values */
    assert_int_equal(run(&R, "echo", name, "--count", "5", NULL), 0);
    unsigned long long v[16];
    assert_int_equal(versions_in(R.out, name, v, 16), 5);
    for (int i = 1; i < 5; i++)
        if (v[i] != v[i - 1] + 1)
            fail_msg("echo skipped from version %llu to %llu:\n%s", v[i - 1], v[i], R.out);
    for (int i = 0; i < 5; i++) {
        char row[128];
        snprintf(row, sizeof row, "[[%llu. %llu. %llu.]\n [%llu. %llu. %llu.]]\n", v[i] * 1000,
                 v[i] * 1000 + 1, v[i] * 1000 + 2, v[i] * 1000 + 3, v[i] * 1000 + 4,
                 v[i] * 1000 + 5);
        assert_contains(R.out, row);
    }
    /* --once: one version; --repr: numpy's repr */
    assert_int_equal(run(&R, "echo", name, "--once", "--repr", NULL), 0);
    assert_int_equal(versions_in(R.out, name, v, 16), 1);
    assert_contains(R.out, "array([[");
    assert_contains(R.out, "dtype=float32)");
    /* --field: only those fields, "name=value"; one field alone: just the value */
    assert_int_equal(run(&R, "echo", name, "--count", "3", "--field", "version,shape", NULL), 0);
    assert_int_equal(lines(R.out), 3);
    assert_contains(R.out, "version=");
    assert_contains(R.out, " shape=(2, 3)\n");
    assert_null(strstr(R.out, "[["));
    assert_int_equal(run(&R, "echo", name, "--once", "--field", "dtype", NULL), 0);
    assert_string_equal(R.out, "float32\n");
    /* --slice: numpy indices, the header says what was selected */
    assert_int_equal(run(&R, "echo", name, "--once", "--slice", "1,::2", NULL), 0);
    assert_contains(R.out, " [1,::2] -> (2,) ");
    unsigned long long sv = 0;
    assert_int_equal(versions_in(R.out, name, &sv, 1), 1);
    char row[64];
    snprintf(row, sizeof row, "\n[%llu. %llu.]\n", sv * 1000 + 3, sv * 1000 + 5);
    assert_contains(R.out, row);
    run(&R, "echo", name, "--once", "--slice", "5", NULL);
    assert_fails_with(&R, "NDSHM_E_INVAL");
    assert_contains(R.err, "index 5 is out of bounds for axis 0 with size 2");
    /* --json: one valid object per version */
    assert_int_equal(run(&R, "echo", name, "--count", "4", "--json", NULL), 0);
    assert_int_equal(lines(R.out), 4);
    char *save = NULL;
    for (char *l = strtok_r(R.out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (!json_valid(l))
            fail_msg("not JSON: %s", l);
        assert_non_null(strstr(l, "\"shape\": [2, 3]"));
        assert_non_null(strstr(l, "\"data\": [["));
    }
    assert_int_equal(run(&R, "echo", name, "--once", "--json", "--field", "version", NULL), 0);
    assert_true(json_valid(R.out));
    assert_null(strstr(R.out, "\"data\""));
    stop_writer(pid);

    /* --oldest: every version still in the ring, from the first */
    ndshm_writer *w;
    const char *done = tu_name("echo-done");
    wait_writer(start_writer(done, 16, 0, 6, 0, W_CLOSE));
    assert_int_equal(run(&R, "echo", done, "--oldest", "--count", "6", NULL), 0);
    assert_int_equal(versions_in(R.out, done, v, 16), 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(v[i], i + 1);
    /* a version's extras: in the header line, in --json, as fields */
    const char *ex = tu_name("echo-extras");
    assert_int_equal(ndshm_writer_create(ex, NULL, &w), NDSHM_OK);
    ndshm_extra extra = NDSHM_EXTRA_INIT;
    extra.user_ns = 123456789;
    extra.user_tag = 42;
    extra.origin_version = 7;
    extra.meta = "caps";
    extra.meta_len = 4;
    float val[2] = {1, 2};
    uint64_t shp[] = {2};
    assert_int_equal(ndshm_publish_ex(w, NDSHM_FLOAT32, 1, shp, val, &extra, NULL), NDSHM_OK);
    assert_int_equal(run(&R, "echo", ex, "--once", NULL), 0);
    assert_contains(R.out, " user_ns 123456789 tag 42 origin version 7 meta 4 B");
    assert_contains(R.out, "\n[1. 2.]\n");
    assert_int_equal(run(&R, "echo", ex, "--once", "--json", NULL), 0);
    assert_true(json_valid(R.out));
    assert_contains(R.out, "\"user_tag\": 42, \"origin_version\": 7, \"origin_ns\": 0, "
                           "\"meta_len\": 4");
    assert_int_equal(run(&R, "echo", ex, "--once", "--field", "origin_version", NULL), 0);
    assert_string_equal(R.out, "7\n");
    ndshm_writer_close(w);
    /* a channel with nothing published: --timeout ends it with TIMEOUT */
    const char *empty = tu_name("echo-empty");
    assert_int_equal(ndshm_writer_create(empty, NULL, &w), NDSHM_OK);
    run(&R, "echo", empty, "--timeout", "0.2", NULL);
    assert_fails_with(&R, "NDSHM_TIMEOUT");
    ndshm_writer_close(w);
    run(&R, "echo", tu_name("missing"), "--once", NULL);
    assert_fails_with(&R, "NDSHM_E_NOENT");
    assert_int_equal(run(&R, "echo", name, "--field", "nosuch", NULL), 2);
}

/* ---------------------------------------------------------------------------------------------
 * pub of inline values
 * ------------------------------------------------------------------------------------------- */

/* Read the newest version of name into buf (at most n bytes); info out. */
static void read_back(const char *name, void *buf, size_t n, ndshm_info *info)
{
    ndshm_reader *r;
    assert_int_equal(ndshm_reader_open(name, NULL, &r), NDSHM_OK);
    assert_int_equal(ndshm_read_latest(r, buf, n, info), NDSHM_OK);
    ndshm_reader_close(r);
}

static void test_pub_inline(void **state)
{
    (void)state;
    const char *name = tu_name("inline");
    union {
        double d[8];
        float f[8];
        int64_t i64[8];
        uint8_t u8[64];
        int16_t i16[8];
        uint16_t u16[8];
    } b;
    ndshm_info info;
    /* the issue's example */
    assert_int_equal(run(&R, "pub", name, "--dtype", "f8", "[1.0, 2.0, 3.0]", NULL), 0);
    read_back(name, &b, sizeof b, &info);
    assert_int_equal(info.dtype, NDSHM_FLOAT64);
    assert_int_equal(info.ndim, 1);
    assert_int_equal(info.shape[0], 3);
    assert_true(b.d[0] == 1.0 && b.d[1] == 2.0 && b.d[2] == 3.0);
    /* nested lists: n-d; dtype inferred as numpy does (ints: int64) */
    assert_int_equal(run(&R, "pub", name, "[[1, 2, 3], [4, 5, -6]]", NULL), 0);
    read_back(name, &b, sizeof b, &info);
    assert_int_equal(info.dtype, NDSHM_INT64);
    assert_int_equal(info.ndim, 2);
    assert_int_equal(info.shape[0], 2);
    assert_int_equal(info.shape[1], 3);
    assert_int_equal(b.i64[5], -6);
    /* numpy's print() output reads back: spaces separate too */
    assert_int_equal(run(&R, "pub", name, "--dtype", "float32", "[[0.5 1. ]\n [2.  3.5]]", NULL),
                     0);
    read_back(name, &b, sizeof b, &info);
    assert_int_equal(info.dtype, NDSHM_FLOAT32);
    assert_true(b.f[0] == 0.5f && b.f[1] == 1.0f && b.f[2] == 2.0f && b.f[3] == 3.5f);
    /* a scalar is 0-d; a float anywhere makes float64 */
    assert_int_equal(run(&R, "pub", name, "7", NULL), 0);
    read_back(name, &b, sizeof b, &info);
    assert_int_equal(info.ndim, 0);
    assert_int_equal(b.i64[0], 7);
    assert_int_equal(run(&R, "pub", name, "[1, 2.5]", NULL), 0);
    read_back(name, &b, sizeof b, &info);
    assert_int_equal(info.dtype, NDSHM_FLOAT64);
    /* complex, bool, float16 */
    assert_int_equal(run(&R, "pub", name, "[1+2j, -3.5j]", NULL), 0);
    read_back(name, &b, sizeof b, &info);
    assert_int_equal(info.dtype, NDSHM_COMPLEX128);
    assert_true(b.d[0] == 1 && b.d[1] == 2 && b.d[2] == 0 && b.d[3] == -3.5);
    assert_int_equal(run(&R, "pub", name, "[True, False]", NULL), 0);
    read_back(name, &b, sizeof b, &info);
    assert_int_equal(info.dtype, NDSHM_BOOL);
    assert_true(b.u8[0] == 1 && b.u8[1] == 0);
    assert_int_equal(run(&R, "pub", name, "--dtype", "f2", "[1.5, -2, 65504]", NULL), 0);
    read_back(name, &b, sizeof b, &info);
    assert_int_equal(info.dtype, NDSHM_FLOAT16);
    assert_true(b.u16[0] == 0x3e00 && b.u16[1] == 0xc000 && b.u16[2] == 0x7bff);
    assert_int_equal(run(&R, "pub", name, "--dtype", "i2", "[-32768, 32767]", NULL), 0);
    read_back(name, &b, sizeof b, &info);
    assert_true(b.i16[0] == -32768 && b.i16[1] == 32767);
    /* zero-size: [] is float64 (0,), [[], []] is (2, 0) */
    assert_int_equal(run(&R, "pub", name, "[[], []]", NULL), 0);
    read_back(name, &b, sizeof b, &info);
    assert_int_equal(info.ndim, 2);
    assert_int_equal(info.shape[0], 2);
    assert_int_equal(info.shape[1], 0);
    /* several values cycle, --rate spaces them (never faster than asked), last value wins */
    uint64_t t0 = ndshm_now_ns();
    assert_int_equal(
        run(&R, "pub", name, "[1]", "[2]", "[3]", "--count", "4", "--rate", "20", NULL), 0);
    uint64_t took = ndshm_now_ns() - t0;
    if (took < 150000000u)
        fail_msg("4 versions at 20 Hz took %llu ns, expected at least 150 ms",
                 (unsigned long long)took);
    assert_contains(R.out, "published 4 version(s)");
    read_back(name, &b, sizeof b, &info);
    assert_int_equal(b.i64[0], 1); /* 1 2 3 1 */
    /* each bad value: exit 1, one line, saying what is wrong */
    static const struct {
        const char *dtype, *value, *says;
    } bad[] = {
        {NULL, "[1, [2]]", "ragged nested lists"},
        {NULL, "[[1, 2], [3]]", "ragged nested lists"},
        {NULL, "[1, 2", "']' is missing"},
        {NULL, "[1, abc]", "'abc' is not a number"},
        {"u1", "[1, 300]", "300 is outside the range of uint8 (0..255)"},
        {"u2", "[-1]", "-1 is outside the range of uint16"},
        {"i8", "[9223372036854775808]", "outside the range of int64"},
        {"i4", "[1.5]", "'1.5' is not an integer"},
        {"f4", "[1e39]", "1e39 overflows float32"},
        {"f8", "[1+2j]", "is complex: dtype float64 is real"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (bad[i].dtype)
            run(&R, "pub", name, "--dtype", bad[i].dtype, bad[i].value, NULL);
        else
            run(&R, "pub", name, bad[i].value, NULL);
        assert_fails_with(&R, "NDSHM_E_INVAL");
        assert_contains(R.err, bad[i].says);
    }
    assert_int_equal(run(&R, "pub", name, "--dtype", "nosuch", "[1]", NULL), 2);
    /* --dtype is for inline values */
    uint16_t a[3] = {1, 2, 3};
    uint64_t sa[] = {3};
    const char *fa = file_in_dir("inline-a.npy");
    assert_int_equal(ndshm_save_npy(fa, NDSHM_UINT16, 1, sa, a), NDSHM_OK);
    assert_int_equal(run(&R, "pub", name, "--dtype", "f8", fa, NULL), 2);
    /* files and values mix */
    assert_int_equal(run(&R, "pub", name, fa, "[9, 9]", NULL), 0);
    assert_contains(R.out, "published 2 version(s)");
}

/* ---------------------------------------------------------------------------------------------
 * Input files: every error names the file and what is wrong; FIFOs fail at once
 * ------------------------------------------------------------------------------------------- */

/* A .npy 1.0 file with this header dict (padded as numpy pads it) and payload. */
static void write_npy_raw(const char *path, const char *dict, const void *data, size_t n)
{
    size_t dl = strlen(dict), total = (10 + dl + 1 + 63) & ~(size_t)63, hlen = total - 10;
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    unsigned char pre[10] = {0x93,
                             'N',
                             'U',
                             'M',
                             'P',
                             'Y',
                             1,
                             0,
                             (unsigned char)(hlen & 0xff),
                             (unsigned char)(hlen >> 8)};
    fwrite(pre, 1, 10, f);
    fwrite(dict, 1, dl, f);
    for (size_t i = dl; i + 1 < hlen; i++)
        fputc(' ', f);
    fputc('\n', f);
    if (n)
        fwrite(data, 1, n, f);
    fclose(f);
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n)
        assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void test_input_errors(void **state)
{
    (void)state;
    const char *name = tu_name("input");
    double d[6] = {0, 1, 2, 3, 4, 5}; /* Fortran order of [[0, 2, 4], [1, 3, 5]] */
    char fort[256];                   /* file_in_dir() reuses its buffers */
    snprintf(fort, sizeof fort, "%s", file_in_dir("fortran.npy"));
    write_npy_raw(fort, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", d, sizeof d);
    run(&R, "pub", name, fort, NULL);
    assert_fails_with(&R, "NDSHM_E_LIMIT");
    assert_contains(R.err, "fortran.npy: Fortran-order array");
    assert_contains(R.err, "--transpose");
    assert_contains(R.err, "--c-order");
    assert_null(strstr(R.err, "value outside the supported range"));
    /* --transpose: shape reversed, the bytes as they are */
    double out[6];
    ndshm_info info;
    assert_int_equal(run(&R, "pub", name, fort, "--transpose", NULL), 0);
    read_back(name, out, sizeof out, &info);
    assert_int_equal(info.ndim, 2);
    assert_int_equal(info.shape[0], 3);
    assert_int_equal(info.shape[1], 2);
    assert_memory_equal(out, d, sizeof d);
    /* --c-order: same shape, converted */
    assert_int_equal(run(&R, "pub", name, fort, "--c-order", NULL), 0);
    read_back(name, out, sizeof out, &info);
    assert_int_equal(info.shape[0], 2);
    assert_int_equal(info.shape[1], 3);
    static const double want[6] = {0, 2, 4, 1, 3, 5};
    assert_memory_equal(out, want, sizeof want);
    assert_int_equal(run(&R, "pub", name, fort, "--c-order", "--transpose", NULL), 2);

    /* each broken file: exit 1, one line that names the file and says what is wrong */
    static const struct {
        const char *file, *dict;
        size_t data; /* payload bytes to write */
        const char *says, *status;
    } bad[] = {
        {"trunc.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", 40,
         "trunc.npy: truncated: shape (2, 3) of float64 needs 48 bytes of data, the file has 40",
         "NDSHM_E_CORRUPT"},
        {"trail.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", 50,
         "trail.npy: 2 bytes after the data", "NDSHM_E_CORRUPT"},
        {"bigend.npy", "{'descr': '>f4', 'fortran_order': False, 'shape': (3,), }", 12,
         "bigend.npy: big-endian dtype '>f4'", "NDSHM_E_DTYPE"},
        {"unicode.npy", "{'descr': '<U3', 'fortran_order': False, 'shape': (1,), }", 12,
         "unicode.npy: dtype '<U3' is a unicode string dtype", "NDSHM_E_DTYPE"},
        {"object.npy", "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", 8,
         "object.npy: dtype '|O' is an object dtype", "NDSHM_E_DTYPE"},
        {"struct.npy", "{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': (1,), }", 4,
         "struct.npy: a structured dtype", "NDSHM_E_DTYPE"},
        {"nokey.npy", "{'descr': '<f8', 'shape': (1,), }", 8,
         "nokey.npy: malformed .npy header: key 'fortran_order' missing", "NDSHM_E_CORRUPT"},
        {"badkey.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 'x': 1}", 8,
         "badkey.npy: malformed .npy header: unknown key 'x'", "NDSHM_E_CORRUPT"},
        {"badshape.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (1, -2), }", 8,
         "badshape.npy: malformed .npy header: shape entries must be non-negative integers",
         "NDSHM_E_CORRUPT"},
        {"notuple.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (3), }", 24,
         "notuple.npy: malformed .npy header: shape '(N)' is not a tuple", "NDSHM_E_CORRUPT"},
        {"fo.npy", "{'descr': '<f8', 'fortran_order': 0, 'shape': (1,), }", 8,
         "fo.npy: malformed .npy header: fortran_order must be True or False", "NDSHM_E_CORRUPT"},
    };
    static const unsigned char zeros[64];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *p = file_in_dir(bad[i].file);
        write_npy_raw(p, bad[i].dict, zeros, bad[i].data);
        run(&R, "pub", name, p, NULL);
        assert_fails_with(&R, bad[i].status);
        assert_contains(R.err, bad[i].says);
        assert_null(strstr(R.err, "segment"));
    }
    /* not .npy at all */
    const char *p = file_in_dir("text.npy");
    write_bytes(p, "hello\n", 6);
    run(&R, "pub", name, p, NULL);
    assert_fails_with(&R, "NDSHM_E_CORRUPT");
    assert_contains(R.err, "text.npy: not a .npy file: it does not start with numpy's magic");
    p = file_in_dir("empty.npy");
    write_bytes(p, "", 0);
    run(&R, "pub", name, p, NULL);
    assert_fails_with(&R, "NDSHM_E_CORRUPT");
    assert_contains(R.err, "empty.npy: empty file");
    static const unsigned char v9[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', 9, 0, 0, 0, 0, 0};
    p = file_in_dir("v9.npy");
    write_bytes(p, v9, sizeof v9);
    run(&R, "pub", name, p, NULL);
    assert_fails_with(&R, "NDSHM_E_CORRUPT");
    assert_contains(R.err, "v9.npy: .npy format version 9.0");
    /* a zip that is not named .npz is recognised as one */
    p = file_in_dir("zip.npy");
    write_bytes(p, "PK\x03\x04 not really", 16);
    run(&R, "pub", name, p, NULL);
    assert_fails_with(&R, "NDSHM_E_CORRUPT");
    assert_contains(R.err, "zip.npy: a zip (.npz) archive without an end-of-central-directory");
    p = file_in_dir("fake.npz");
    write_bytes(p, "PK\x03\x04 truncated", 15);
    run(&R, "pub", name, p, NULL);
    assert_fails_with(&R, "NDSHM_E_CORRUPT");
    assert_contains(R.err, "fake.npz: a zip (.npz) archive without an end-of-central-directory");
    run(&R, "pub", name, fort, "--key", "x", NULL);
    assert_fails_with(&R, "NDSHM_E_INVAL");
    assert_contains(R.err, "--key is for .npz archives");

    /* a FIFO (or any non-regular file) fails at once instead of blocking on open or read */
    const char *fifo = file_in_dir("fifo.npy");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    uint64_t t0 = ndshm_now_ns();
    run(&R, "pub", name, fifo, NULL);
    uint64_t took = ndshm_now_ns() - t0;
    assert_fails_with(&R, "NDSHM_E_INVAL");
    assert_contains(R.err, "fifo.npy: a FIFO (named pipe), not a regular file");
    if (took > 10000000000u)
        fail_msg("pub of a FIFO took %llu ns; it must fail without waiting for a writer",
                 (unsigned long long)took);
    run(&R, "pub", name, dir, NULL);
    assert_fails_with(&R, "NDSHM_E_INVAL");
    assert_contains(R.err, "a directory, not a regular file");
    run(&R, "pub", name, "/dev/null", NULL);
    assert_fails_with(&R, "NDSHM_E_INVAL");
    assert_contains(R.err, "/dev/null: a character device");
    /* nothing of this reached the channel: its last version is still the --c-order one */
    read_back(name, out, sizeof out, &info);
    assert_memory_equal(out, want, sizeof want);
}

/* ---------------------------------------------------------------------------------------------
 * Several channels: record into one index, replay in the original interleaving
 * ------------------------------------------------------------------------------------------- */

#define ILV_N 40

static void test_record_multi(void **state)
{
    (void)state;
    char a[256], b[256], glob[256];
    snprintf(a, sizeof a, "%s", tu_name("ilv-a"));
    snprintf(b, sizeof b, "%s", tu_name("ilv-b"));
    snprintf(glob, sizeof glob, "%s", tu_name("ilv-*"));
    /* one process publishes ILV_N versions into a and b in a fixed irregular order; version k
     * of the whole sequence carries tu_fill(k) and says in its first bytes... nothing else:
     * the payload identifies its place in the sequence */
    static const char order[ILV_N + 1] = "abbabaaabbbabababbaaabbbbaaabababbbaaaab";
    ndshm_options o = NDSHM_OPTIONS_INIT;
    o.slots = 64;
    ndshm_writer *wa, *wb;
    assert_int_equal(ndshm_writer_create(a, &o, &wa), NDSHM_OK);
    assert_int_equal(ndshm_writer_create(b, &o, &wb), NDSHM_OK);
    uint64_t shape[] = {100};
    for (int k = 1; k <= ILV_N; k++) {
        uint8_t buf[100];
        tu_fill(buf, sizeof buf, (uint64_t)k);
        assert_int_equal(
            ndshm_publish(order[k - 1] == 'a' ? wa : wb, NDSHM_UINT8, 1, shape, buf, NULL),
            NDSHM_OK);
        uint64_t t = ndshm_now_ns();
        while (ndshm_now_ns() == t) /* strictly increasing publish times */
            ;
    }
    assert_int_equal(ndshm_writer_close(wa), NDSHM_OK);
    assert_int_equal(ndshm_writer_close(wb), NDSHM_OK);
    const char *rec = file_in_dir("rec-multi");
    assert_int_equal(run(&R, "record", glob, rec, "--oldest", "--json", NULL), 0);
    assert_true(json_valid(R.out));
    char want[64];
    snprintf(want, sizeof want, "\"recorded\": %d", ILV_N);
    assert_contains(R.out, want);
    assert_contains(R.out, "\"stopped\": \"writers gone\"");
    /* one index for both, a folder per channel */
    char path[512];
    snprintf(path, sizeof path, "%s/%s", rec, a);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    snprintf(path, sizeof path, "%s/index.csv", rec);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[512];
    int na = 0, nb = 0;
    while (fgets(line, sizeof line, f)) {
        na += strncmp(line, a, strlen(a)) == 0 && line[strlen(a)] == ',';
        nb += strncmp(line, b, strlen(b)) == 0 && line[strlen(b)] == ',';
    }
    fclose(f);
    assert_int_equal(na, 20);
    assert_int_equal(nb, 20);

    /* replay under other names; both targets exist with 64 slots and REPLAY readers */
    char ra[256], rb[256], ren_a[600], ren_b[600];
    snprintf(ra, sizeof ra, "%s", tu_name("ilv-ra"));
    snprintf(rb, sizeof rb, "%s", tu_name("ilv-rb"));
    snprintf(ren_a, sizeof ren_a, "%s=%s", a, ra);
    snprintf(ren_b, sizeof ren_b, "%s=%s", b, rb);
    ndshm_writer *w;
    assert_int_equal(ndshm_writer_create(ra, &o, &w), NDSHM_OK);
    ndshm_writer_close(w);
    assert_int_equal(ndshm_writer_create(rb, &o, &w), NDSHM_OK);
    ndshm_writer_close(w);
    ndshm_options ro = NDSHM_OPTIONS_INIT;
    ro.flags = NDSHM_REPLAY;
    ndshm_reader *r[2];
    assert_int_equal(ndshm_reader_open(ra, &ro, &r[0]), NDSHM_OK);
    assert_int_equal(ndshm_reader_open(rb, &ro, &r[1]), NDSHM_OK);
    assert_int_equal(run(&R, "replay", rec, "--rename", ren_a, "--rename", ren_b, NULL), 0);
    snprintf(want, sizeof want, "%d version(s) in all", ILV_N);
    assert_contains(R.out, want);
    /* merge both by their new publish times: the original sequence 1..ILV_N, each on its
     * original channel */
    struct {
        uint64_t t;
        int ch;
        uint8_t buf[100];
    } got[ILV_N];
    int n = 0;
    for (int c = 0; c < 2; c++) {
        ndshm_info info;
        while (n < ILV_N &&
               ndshm_read_next(r[c], got[n].buf, sizeof got[n].buf, &info) == NDSHM_OK) {
            assert_int_equal(info.dropped, 0);
            got[n].t = info.publish_ns;
            got[n].ch = c;
            n++;
        }
        ndshm_reader_close(r[c]);
    }
    assert_int_equal(n, ILV_N);
    for (int i = 0; i < n; i++) /* insertion sort by time */
        for (int j = i; j > 0 && got[j].t < got[j - 1].t; j--) {
            __typeof__(got[0]) tmp = got[j];
            got[j] = got[j - 1];
            got[j - 1] = tmp;
        }
    for (int k = 1; k <= ILV_N; k++) {
        if (!tu_check(got[k - 1].buf, 100, (uint64_t)k))
            fail_msg("replayed version %d is not the %d-th of the original interleaving", k, k);
        assert_int_equal(got[k - 1].ch, order[k - 1] == 'a' ? 0 : 1);
    }
    /* NAME with a multi-channel recording is a usage error */
    assert_int_equal(run(&R, "replay", rec, ra, NULL), 2);
    assert_contains(R.err, "holds 2 channels");
    /* a glob that matches nothing */
    run(&R, "record", tu_name("nothing-*"), file_in_dir("rec-none"), NULL);
    assert_fails_with(&R, "NDSHM_E_NOENT");
    assert_contains(R.err, "no channel matches");
    ndshm_unlink(ra);
    ndshm_unlink(rb);
}

/* Recordings of the first format (one channel, no channel column) still replay; index errors
 * name the file and line. */
static void test_replay_old_and_bad(void **state)
{
    (void)state;
    const char *old = file_in_dir("rec-v1");
    assert_int_equal(mkdir(old, 0700), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/index.csv", old);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "version,publish_ns,latency_ns,dropped,file\n");
    for (uint64_t v = 1; v <= 3; v++) {
        char file[64], p[600];
        snprintf(file, sizeof file, "v%012llu.npy", (unsigned long long)v);
        snprintf(p, sizeof p, "%s/%s", old, file);
        uint8_t buf[100];
        tu_fill(buf, sizeof buf, v);
        uint64_t shape[] = {100};
        assert_int_equal(ndshm_save_npy(p, NDSHM_UINT8, 1, shape, buf), NDSHM_OK);
        fprintf(f, "%llu,%llu,10,0,%s\n", (unsigned long long)v, (unsigned long long)(v * 1000),
                file);
    }
    fclose(f);
    const char *dst = tu_name("replay-v1");
    assert_int_equal(run(&R, "replay", old, dst, NULL), 0);
    assert_contains(R.out, "published 3 version(s)");
    uint8_t buf[100];
    ndshm_info info;
    read_back(dst, buf, sizeof buf, &info);
    assert_int_equal(info.version, 3);
    assert_true(tu_check(buf, 100, 3));
    assert_int_equal(run(&R, "replay", old, NULL), 2); /* the first format needs NAME */
    assert_contains(R.err, "first format");

    static const struct {
        const char *text, *says;
    } bad[] = {
        {"something,else\n", "index.csv:1: not an ndshm recording index"},
        {"channel,version,publish_ns,latency_ns,dropped,file\nx,1,2,3,4\n",
         "index.csv:2: 5 fields, expected 6"},
        {"channel,version,publish_ns,latency_ns,dropped,file\nx,1,abc,3,4,x/v1.npy\n",
         "index.csv:2: the publish_ns field 'abc' is not a number"},
        {"channel,version,publish_ns,latency_ns,dropped,file\nx/y,1,2,3,4,x/v1.npy\n",
         "index.csv:2: the channel field 'x/y' is not a channel name"},
        {"channel,version,publish_ns,latency_ns,dropped,file\nx,1,2,3,4,y/v1.npy\n",
         "index.csv:2: the file 'y/v1.npy' is not a plain file name in the channel's folder"},
        {"channel,version,publish_ns,latency_ns,dropped,file\nx,1,2,3,4,x/missing.npy\n",
         "missing.npy: cannot open: No such file or directory"},
        {"", "index.csv: empty: not an ndshm recording index"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char d[64];
        snprintf(d, sizeof d, "rec-bad%zu", i);
        const char *bd = file_in_dir(d);
        assert_int_equal(mkdir(bd, 0700), 0);
        snprintf(path, sizeof path, "%s/x", bd);
        assert_int_equal(mkdir(path, 0700), 0);
        snprintf(path, sizeof path, "%s/index.csv", bd);
        write_bytes(path, bad[i].text, strlen(bad[i].text));
        run(&R, "replay", bd, tu_name("replay-bad"), NULL);
        if (R.status != 1)
            fail_msg("%s: exit %d, stderr %s", bad[i].says, R.status, R.err);
        assert_int_equal(lines(R.err), 1);
        assert_contains(R.err, bad[i].says);
        assert_null(strstr(R.err, "segment"));
    }
    /* an index that is a FIFO fails at once */
    const char *fd = file_in_dir("rec-fifo");
    assert_int_equal(mkdir(fd, 0700), 0);
    snprintf(path, sizeof path, "%s/index.csv", fd);
    assert_int_equal(mkfifo(path, 0600), 0);
    run(&R, "replay", fd, dst, NULL);
    assert_fails_with(&R, "NDSHM_E_INVAL");
    assert_contains(R.err, "index.csv: a FIFO (named pipe), not a regular file");
    /* a channel named like the index cannot get a folder of that name */
    assert_int_equal(run(&R, "pub", "index.csv", "[1]", NULL), 0);
    run(&R, "record", "index.csv", file_in_dir("rec-index"), NULL);
    assert_fails_with(&R, "NDSHM_E_NAME");
    assert_contains(R.err, "a channel named index.csv cannot be recorded");
    assert_int_equal(run(&R, "rm", "index.csv", NULL), 0);
    /* record into a path that is a file */
    const char *plain = file_in_dir("rec-file");
    write_bytes(plain, "x", 1);
    run(&R, "record", dst, plain, NULL);
    assert_fails_with(&R, "NDSHM_E_SYS");
    assert_contains(R.err, "exists and is not a directory");
}

/* ---------------------------------------------------------------------------------------------
 * ls with names and globs; watch of several channels with period and bandwidth
 * ------------------------------------------------------------------------------------------- */

static void test_ls_globs(void **state)
{
    (void)state;
    char x[256], y[256], g[256];
    snprintf(x, sizeof x, "%s", tu_name("glob-x"));
    snprintf(y, sizeof y, "%s", tu_name("glob-y"));
    snprintf(g, sizeof g, "%s", tu_name("glob-*"));
    assert_int_equal(run(&R, "pub", x, "[1]", NULL), 0);
    assert_int_equal(run(&R, "pub", y, "[1]", NULL), 0);
    assert_int_equal(run(&R, "pub", tu_name("other"), "[1]", NULL), 0);
    assert_int_equal(run(&R, "ls", g, "--names", NULL), 0);
    char want[600];
    snprintf(want, sizeof want, "%s\n%s\n", x, y);
    if (strcmp(R.out, want) != 0 && !(strstr(R.out, x) && strstr(R.out, y) && lines(R.out) == 2))
        fail_msg("ls %s --names printed:\n%s", g, R.out);
    assert_int_equal(run(&R, "ls", x, NULL), 0);
    assert_int_equal(lines(R.out), 2); /* header and x */
    assert_contains(R.out, "KIND");
    assert_contains(R.out, "READERS");
    assert_contains(R.out, " channel ");
    assert_int_equal(run(&R, "ls", g, "--json", NULL), 0);
    assert_true(json_valid(R.out));
    assert_contains(R.out, "\"kind\": \"channel\"");
    assert_contains(R.out, "\"persistent\": false");
    assert_null(strstr(R.out, tu_name("other")));
    run(&R, "ls", tu_name("absent"), NULL); /* a plain name that is not there: an error */
    assert_fails_with(&R, "NDSHM_E_NOENT");
    assert_int_equal(run(&R, "ls", tu_name("absent-*"), NULL), 0); /* a glob may match none */
    assert_int_equal(lines(R.out), 1);
    /* rm takes globs too */
    assert_int_equal(run(&R, "rm", g, NULL), 0);
    assert_int_equal(lines(R.out), 2);
    ndshm_channel_info ci;
    assert_int_equal(ndshm_stat(x, &ci), NDSHM_E_NOENT);
    assert_int_equal(ndshm_stat(tu_name("other"), &ci), NDSHM_OK);
}

static void test_watch_multi(void **state)
{
    (void)state;
    char a[256], b[256], g[256];
    snprintf(a, sizeof a, "%s", tu_name("wm-a"));
    snprintf(b, sizeof b, "%s", tu_name("wm-b"));
    snprintf(g, sizeof g, "%s", tu_name("wm-*"));
    pid_t pa = start_writer(a, 16, 5, 0, 0, W_FOREVER); /* float32 (2, 3): 24 bytes */
    pid_t pb = start_writer(b, 16, 5, 0, 1, W_FOREVER); /* uint8 (100,): 100 bytes */
    assert_int_equal(run(&R, "watch", g, "--for", "1.5", "--interval", "0.5", "--json", NULL), 0);
    int seen[2] = {0, 0}, summaries = 0, with_period = 0;
    char *save = NULL;
    for (char *l = strtok_r(R.out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (!json_valid(l))
            fail_msg("not JSON: %s", l);
        char na[300];
        snprintf(na, sizeof na, "\"name\": \"%s\"", a);
        int isa = strstr(l, na) != NULL;
        if (strstr(l, "\"summary\": true")) {
            summaries++;
            continue;
        }
        seen[isa ? 0 : 1]++;
        unsigned long long reads = 0, bytes = 0;
        const char *p = strstr(l, "\"read\": ");
        assert_non_null(p);
        assert_int_equal(sscanf(p, "\"read\": %llu", &reads), 1);
        p = strstr(l, "\"bytes\": ");
        assert_non_null(p);
        assert_int_equal(sscanf(p, "\"bytes\": %llu", &bytes), 1);
        /* bandwidth counts exactly the payload bytes of the versions read */
        assert_int_equal(bytes, reads * (isa ? 24 : 100));
        p = strstr(l, "\"period_ns\": {");
        if (p) {
            unsigned long long n, mn, mx;
            double mean, sd;
            assert_int_equal(sscanf(p,
                                    "\"period_ns\": {\"n\": %llu, \"mean\": %lf, \"min\": %llu, "
                                    "\"max\": %llu, \"std\": %lf}",
                                    &n, &mean, &mn, &mx, &sd),
                             5);
            if (!(n >= 1 && (double)mn <= mean + 1 && mean <= (double)mx + 1 && sd >= 0 &&
                  mn >= 5000000u))
                fail_msg("period stats inconsistent (writer sleeps 5 ms between versions): %s", l);
            with_period++;
            assert_non_null(strstr(l, "\"rate_hz\": "));
        }
    }
    assert_int_equal(summaries, 2);
    assert_true(seen[0] >= 2 && seen[1] >= 2);
    assert_true(with_period >= 1);
    /* the table: one line per channel and interval, with the name, jitter and bandwidth */
    assert_int_equal(run(&R, "watch", a, b, "--for", "0.6", "--interval", "0.3", NULL), 0);
    assert_contains(R.out, "PER std");
    assert_contains(R.out, "BW/s");
    assert_contains(R.out, a);
    assert_contains(R.out, b);
    assert_contains(R.out, "rate ");
    stop_writer(pa);
    stop_writer(pb);
    run(&R, "watch", tu_name("wm-none-*"), "--for", "0.1", NULL);
    assert_fails_with(&R, "NDSHM_E_NOENT");
}

/* ---------------------------------------------------------------------------------------------
 * Manual pages: one per command, from the --help texts, every option in them
 * ------------------------------------------------------------------------------------------- */

static void test_man(void **state)
{
    (void)state;
    assert_int_equal(run(&R, "help", "--commands", NULL), 0);
    static char cmds[sizeof R.out];
    memcpy(cmds, R.out, sizeof cmds);
    assert_contains(cmds, "echo\n");
    assert_int_equal(run(&R, "help", "--man", NULL), 0);
    assert_contains(R.out, ".TH \"NDSHM\" 1");
    assert_contains(R.out, ".BR ndshm\\-echo (1)");
    char *save = NULL;
    for (char *c = strtok_r(cmds, "\n", &save); c; c = strtok_r(NULL, "\n", &save)) {
        static char help[sizeof R.out];
        if (strcmp(c, "bench") == 0) /* its help is ndshm-bench's, when that is built */
            continue;
        assert_int_equal(run(&R, c, "--help", NULL), 0);
        memcpy(help, R.out, sizeof help);
        assert_int_equal(run(&R, "help", "--man", c, NULL), 0);
        char th[64];
        snprintf(th, sizeof th, ".SH NAME\nndshm\\-%s \\- ", c);
        assert_contains(R.out, th);
        assert_contains(R.out, ".SH SYNOPSIS");
        if (access("/usr/bin/groff", X_OK) == 0) { /* renders without a warning */
            char page[256], cmd[800], err[4096];
            snprintf(page, sizeof page, "%s/page.1", dir);
            FILE *pf = fopen(page, "w");
            assert_non_null(pf);
            fputs(R.out, pf);
            fclose(pf);
            snprintf(cmd, sizeof cmd, "/usr/bin/groff -man -Tutf8 -ww -z '%s' 2>'%s.err'", page,
                     page);
            assert_int_equal(system(cmd), 0);
            snprintf(cmd, sizeof cmd, "%s.err", page);
            slurp(cmd, err, sizeof err);
            if (err[0])
                fail_msg("groff warns about the page of %s: %s", c, err);
        }
        /* every --option of the help is in the page (roff spells '-' as "\-") */
        for (const char *p = help; (p = strstr(p, "--")) != NULL;) {
            const char *e = p + 2;
            while ((*e >= 'a' && *e <= 'z') || *e == '-')
                e++;
            if (e - p > 2) {
                char opt[64], roff[128];
                snprintf(opt, sizeof opt, "%.*s", (int)(e - p - 2), p + 2);
                snprintf(roff, sizeof roff, "\\-\\-");
                size_t k = strlen(roff);
                for (const char *q = opt; *q && k + 3 < sizeof roff; q++) {
                    if (*q == '-')
                        roff[k++] = '\\';
                    roff[k++] = *q;
                }
                roff[k] = 0;
                if (!strstr(R.out, roff))
                    fail_msg("man page of %s lacks option --%s", c, opt);
            }
            p = e;
        }
    }
    assert_int_equal(run(&R, "help", "--man", "nosuch", NULL), 2);
}

/* ---------------------------------------------------------------------------------------------
 * Shared arrays in ls, stat, cat, rm and gc
 * ------------------------------------------------------------------------------------------- */

/* The line of `ls` output that starts with name (and a space), with its '\n'. */
static void ls_line(const char *out, const char *name, char *line, size_t n)
{
    size_t l = strlen(name);
    for (const char *p = out; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p + 1) : strlen(p);
        if (strncmp(p, name, l) == 0 && p[l] == ' ') {
            snprintf(line, n, "%.*s", (int)len, p);
            return;
        }
        p += len;
    }
    fail_msg("no line for %s in:\n%s", name, out);
}

static void test_arrays(void **state)
{
    (void)state;
    char fa[256], ca[256], ch[256];
    snprintf(fa, sizeof fa, "%s", tu_name("arr-f"));
    snprintf(ca, sizeof ca, "%s", tu_name("arr-c"));
    snprintf(ch, sizeof ch, "%s", tu_name("arr-chan"));
    /* a Fortran-order float64 (2, 3) holding a[i, j] = 3 i + j, and a C-order int16 (4,) */
    ndshm_array_options o = NDSHM_ARRAY_OPTIONS_INIT;
    o.order = NDSHM_ORDER_F;
    ndshm_array *af, *ac;
    uint64_t sf[] = {2, 3}, sc[] = {4};
    assert_int_equal(ndshm_array_create(fa, NDSHM_FLOAT64, 2, sf, &o, &af), NDSHM_OK);
    double *d = ndshm_array_data(af);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            d[j * 2 + i] = 3 * i + j; /* column-major */
    assert_int_equal(ndshm_array_create(ca, NDSHM_INT16, 1, sc, NULL, &ac), NDSHM_OK);
    int16_t *x = ndshm_array_data(ac);
    for (int i = 0; i < 4; i++)
        x[i] = (int16_t)(i * 100 - 7);
    assert_int_equal(run(&R, "pub", ch, "[1]", "--persist", NULL), 0); /* outlives gc */

    /* ls: the kind column, F after a Fortran shape, the processes attached (this one) */
    assert_int_equal(run(&R, "ls", tu_name("arr-*"), NULL), 0);
    assert_contains(R.out, "KIND");
    char want[600], line[512];
    ls_line(R.out, fa, line, sizeof line);
    assert_contains(line, "  array    float64     (2, 3) F              -          -");
    assert_contains(line, "        1  -\n"); /* READERS (attached), WRITER */
    ls_line(R.out, ch, line, sizeof line);
    assert_contains(line, "  channel  int64");
    assert_int_equal(run(&R, "ls", fa, "--json", NULL), 0);
    assert_true(json_valid(R.out));
    assert_contains(R.out, "\"kind\": \"array\"");
    assert_contains(R.out, "\"order\": \"F\"");
    assert_contains(R.out, "\"nbytes\": 48");
    assert_contains(R.out, "\"attached\": 1");
    /* stat: the array's header */
    assert_int_equal(run(&R, "stat", fa, NULL), 0);
    assert_contains(R.out, "kind:          shared array\n");
    assert_contains(R.out, "dtype:         float64\n");
    assert_contains(R.out, "shape:         (2, 3)\n");
    assert_contains(R.out, "order:         F (column-major, Fortran)\n");
    assert_contains(R.out, "array size:    48 B (48 B)\n");
    assert_contains(R.out, "attached:      1 process(es)\n");
    assert_contains(R.out, "created:       ");
    ndshm_array *extra;
    assert_int_equal(ndshm_array_attach(fa, NULL, &extra), NDSHM_OK);
    assert_int_equal(run(&R, "stat", fa, "--json", NULL), 0);
    assert_true(json_valid(R.out));
    assert_contains(R.out, "\"attached\": 2");
    ndshm_array_detach(extra);

    /* cat: the logical array as numpy prints it, whatever its memory order */
    assert_int_equal(run(&R, "cat", fa, NULL), 0);
    snprintf(want, sizeof want, "# %s array float64 (2, 3) F order\n[[0. 1. 2.]\n [3. 4. 5.]]\n",
             fa);
    assert_string_equal(R.out, want);
    assert_int_equal(run(&R, "cat", ca, "--repr", NULL), 0);
    assert_contains(R.out, "array([ -7,  93, 193, 293], dtype=int16)\n");
    assert_int_equal(run(&R, "cat", fa, "--slice", ":,1", NULL), 0);
    assert_contains(R.out, "[1. 4.]\n");
    assert_int_equal(run(&R, "cat", fa, "--json", NULL), 0);
    assert_true(json_valid(R.out));
    assert_contains(R.out, "\"data\": [[0, 1, 2], [3, 4, 5]]");
    /* cat -o: the array's memory and order, as numpy.save would write it */
    const char *out = file_in_dir("arr.npy");
    assert_int_equal(run(&R, "cat", fa, "-o", out, NULL), 0);
    ndshm_npy_header h;
    uint32_t order;
    void *data;
    assert_int_equal(ndshm_load_npy_order(out, &h, &order, &data), NDSHM_OK);
    assert_int_equal(order, NDSHM_ORDER_F);
    assert_int_equal(h.dtype, NDSHM_FLOAT64);
    assert_int_equal(h.shape[0], 2);
    assert_int_equal(h.shape[1], 3);
    assert_memory_equal(data, d, 48);
    ndshm_npy_free(data);
    /* channel-only commands say what an array is */
    run(&R, "cat", fa, "--next", NULL);
    assert_fails_with(&R, "NDSHM_E_KIND");
    assert_contains(R.err, "a shared array has no versions");
    run(&R, "echo", fa, "--once", NULL);
    assert_fails_with(&R, "NDSHM_E_KIND");
    assert_contains(R.err, "`ndshm cat` prints it");

    /* gc never removes an array, even with nobody attached */
    ndshm_array_detach(af);
    ndshm_array_detach(ac);
    assert_int_equal(run(&R, "gc", "--json", NULL), 0);
    assert_true(json_valid(R.out));
    ndshm_array_info ai;
    assert_int_equal(ndshm_array_stat(fa, &ai), NDSHM_OK);
    assert_int_equal(ndshm_array_stat(ca, &ai), NDSHM_OK);
    /* rm --arrays-older-than: by creation time, arrays only */
    assert_int_equal(run(&R, "rm", "--arrays-older-than", "1h", NULL), 0);
    assert_string_equal(R.out, "");
    assert_int_equal(ndshm_array_stat(fa, &ai), NDSHM_OK);
    struct timespec ts = {0, 20000000};
    nanosleep(&ts, NULL);
    assert_int_equal(run(&R, "rm", "--arrays-older-than", "10ms", "--json", NULL), 0);
    assert_true(json_valid(R.out));
    assert_contains(R.out, "\"kind\": \"array\", \"removed\": true");
    assert_int_equal(ndshm_array_stat(fa, &ai), NDSHM_E_NOENT);
    assert_int_equal(ndshm_array_stat(ca, &ai), NDSHM_E_NOENT);
    ndshm_channel_info ci;
    assert_int_equal(ndshm_stat(ch, &ci), NDSHM_OK); /* not a channel */
    /* rm NAME removes an array too */
    assert_int_equal(ndshm_array_create(ca, NDSHM_INT16, 1, sc, NULL, &ac), NDSHM_OK);
    ndshm_array_detach(ac);
    assert_int_equal(run(&R, "rm", ca, NULL), 0);
    snprintf(want, sizeof want, "removed %s (array)\n", ca);
    assert_string_equal(R.out, want);
    assert_int_equal(ndshm_array_stat(ca, &ai), NDSHM_E_NOENT);
    assert_int_equal(run(&R, "rm", "--arrays-older-than", "soon", NULL), 2);
}

/* A live writer in another pid namespace (a container sharing /dev/shm): ls, stat and rm say
 * that its pid is not one of ours. */
static void test_writer_other_pidns(void **state)
{
    (void)state;
    const char *name = tu_name("pidns");
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(ready[0]);
        if (unshare(CLONE_NEWPID) != 0) {
            if (write(ready[1], "u", 1) != 1)
                _exit(2);
            _exit(0);
        }
        pid_t inner = fork(); /* pid 1 of the new namespace */
        if (inner < 0)
            _exit(1);
        if (inner > 0) {
            int st;
            waitpid(inner, &st, 0);
            _exit(0);
        }
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        ndshm_writer *w;
        float a[6] = {0};
        uint64_t shape[] = {2, 3};
        if (ndshm_writer_create(name, NULL, &w) != NDSHM_OK ||
            ndshm_publish(w, NDSHM_FLOAT32, 2, shape, a, NULL) != NDSHM_OK)
            _exit(1);
        if (write(ready[1], "r", 1) != 1)
            _exit(2);
        pause();
        _exit(0);
    }
    close(ready[1]);
    char c = 0;
    if (read(ready[0], &c, 1) != 1)
        c = 0;
    close(ready[0]);
    if (c == 'u') {
        waitpid(pid, NULL, 0);
        print_message("unshare(CLONE_NEWPID) not permitted here: skipped\n");
        skip();
    }
    assert_int_equal(c, 'r');
    assert_int_equal(run(&R, "ls", name, NULL), 0);
    assert_contains(R.out, "1 alive (in another pid namespace)");
    assert_int_equal(run(&R, "ls", name, "--json", NULL), 0);
    assert_contains(R.out, "\"writer_other_pidns\": true");
    assert_int_equal(run(&R, "stat", name, NULL), 0);
    assert_contains(R.out, "writer:        pid 1, alive (in another pid namespace)\n");
    run(&R, "rm", name, NULL);
    assert_fails_with(&R, "NDSHM_E_WRITER_ALIVE");
    assert_contains(R.err, "its writer is alive (pid 1 in another pid namespace)");
    kill(pid, SIGKILL); /* the namespace's init and with it the writer */
    waitpid(pid, NULL, 0);
    assert_int_equal(run(&R, "rm", name, NULL), 0); /* dead now: no --force needed */
}

/* ------------------------------------------------------------------------------------------ */

static void remove_dir(void)
{
    if (!dir[0])
        return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

static void on_fatal(int sig)
{
    remove_dir();
    signal(sig, SIG_DFL);
    raise(sig);
}

int main(void)
{
    cli = getenv("NDSHM_CLI");
    if (!cli || access(cli, X_OK) != 0) {
        fprintf(stderr, "NDSHM_CLI must name the ndshm binary (got %s)\n", cli ? cli : "nothing");
        return 1;
    }
    snprintf(dir, sizeof dir, "/tmp/ndshm-cli-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    setenv("NDSHM_DIR", dir, 1); /* the library, the tool and tu_cleanup all use it */
    atexit(remove_dir);          /* registered first: runs after tu_cleanup */
    tu_init();
    int sigs[] = {SIGABRT, SIGSEGV, SIGBUS, SIGTERM, SIGINT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        signal(sigs[i], on_fatal);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_checker),
        cmocka_unit_test(test_help_and_usage),
        cmocka_unit_test(test_dispatch),
        cmocka_unit_test(test_ls_stat),
        cmocka_unit_test(test_cat),
        cmocka_unit_test(test_pub),
        cmocka_unit_test(test_record_replay),
        cmocka_unit_test(test_watch),
        cmocka_unit_test(test_rm_gc),
        cmocka_unit_test(test_echo),
        cmocka_unit_test(test_pub_inline),
        cmocka_unit_test(test_input_errors),
        cmocka_unit_test(test_record_multi),
        cmocka_unit_test(test_replay_old_and_bad),
        cmocka_unit_test(test_ls_globs),
        cmocka_unit_test(test_watch_multi),
        cmocka_unit_test(test_man),
        cmocka_unit_test(test_arrays),
        cmocka_unit_test(test_writer_other_pidns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
