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
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
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
    assert_int_equal(run(&R, "cat", name, "--next", "--timeout", "10", NULL), 0);
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
    assert_int_equal(run(&R, "watch", name, "--for", "1.2", "--interval", "0.4", "--json", NULL),
                     0);
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
    assert_true(intervals >= 2);
    assert_true(with_reads >= 1);
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
    assert_int_equal(ndshm_stat(live, &ci), NDSHM_OK);

    /* rm refuses a channel whose writer is alive, naming the writer's pid ... */
    char want[64];
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
        cmocka_unit_test(test_json_checker),  cmocka_unit_test(test_help_and_usage),
        cmocka_unit_test(test_dispatch),      cmocka_unit_test(test_ls_stat),
        cmocka_unit_test(test_cat),           cmocka_unit_test(test_pub),
        cmocka_unit_test(test_record_replay), cmocka_unit_test(test_watch),
        cmocka_unit_test(test_rm_gc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
