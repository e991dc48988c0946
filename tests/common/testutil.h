/* Helpers shared by the C tests: unique channel names, cleanup even on failure, checksummed
 * payloads derived from the version number. */
#ifndef NDSHM_TESTUTIL_H
#define NDSHM_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* "ndt-<pid>-<base>": unique per test process, so parallel ctest runs never collide. The
 * returned string lives until the next 16 calls. */
const char *tu_name(const char *base);
/* Register cleanup (atexit and fatal signals) of every channel this process named. Call
 * first in main(). */
void tu_init(void);
/* Unlink every segment whose name starts with this process's prefix. */
void tu_cleanup(void);
/* Number of files in the shm directory that belong to channel `name` (control + data). */
int tu_count_segments(const char *name);

/* The file name of channel `name`'s data segment of generation `gen` (its random token found
 * in the directory): 1 if found. */
int tu_data_seg(const char *name, uint64_t gen, char *out, size_t cap);
/* The path of a segment (file name) in the shm directory. */
void tu_seg_path(const char *seg, char *out, size_t cap);

/* Payload of version v: a byte pattern that depends on v and on the position, so a copy mixed
 * from two versions is detected. */
void tu_fill(void *buf, size_t n, uint64_t v);
/* 1 if buf is exactly the payload of version v. */
int tu_check(const void *buf, size_t n, uint64_t v);
/* A size for version v in [lo, hi], deterministic. */
size_t tu_size_for(uint64_t v, size_t lo, size_t hi);

/* fork() a child that dies with this process (PR_SET_PDEATHSIG) and is recorded, so that a
 * failing assertion (cmocka jumps out of the test) never leaves one running: returns 0 in the
 * child, its pid in the parent. */
int tu_spawn(void);
/* SIGKILL and reap every child tu_spawn() recorded (call from each test's setup). */
void tu_kill_strays(void);
/* Reap a child: its exit status, 128 + signal if killed, -1 on error. */
int tu_child_status(int pid);

/* Sleep for ms milliseconds. */
void tu_sleep_ms(unsigned ms);

#endif
