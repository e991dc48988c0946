/*
 * Promela model of the ndshm publish / read / wait protocol (src/ring.c, src/wait.c,
 * writer_repair() and the takeover in src/writer.c), checked with spin. See
 * tests/model/check.sh; the ownership rule (lock, names, gc) is in tests/model/ownership.pml.
 *
 * What is modelled
 *   - one data segment of N slots; slot = seq, version and a two-word payload, each word
 *     written by its own step so a reader can observe a half-written slot;
 *   - the writer: W1 seq odd, W2 version + payload words, W3 seq even, W5 head := v, then
 *     W6 as in ndshm__notify(): N := ++notify; w := sleepers (of its own wait page);
 *     if w != 0 { FUTEX_WAKE(all); if low32(w) != N: CAS(sleepers, w -> 0) }.
 *     After the last version it stays alive and idle (or, with -DCLOSE_AT_END, closes:
 *     gone, notify, wake). Before every step it may die (at most CRASHES times in a run).
 *     Dying releases the writer lock; a successor runs only once the lock is free (that is
 *     the kernel's test-and-set, modelled in full in ownership.pml) and takes over:
 *     repair (odd slots and slots holding a version > head are invalidated: seq odd,
 *     version 0, seq even), a new wait page named in wait_id (claim()), notify += 1 and
 *     FUTEX_WAKE(all) (ndshm__notify_all()) for the dead writer, which may have died
 *     anywhere between W5 and the end of W6; then it continues at head + 1;
 *   - R readers, each: read-latest attempts (R1 s1 = seq, odd -> retry; R2 version, R3 the
 *     payload words, R4 s2 = seq; accept only s1 == s2 and version == want) and, when nothing
 *     is new, one round of ndshm_wait's sleep loop: n0 = notify; re-check head; load wait_id
 *     (ndshm__reader_waitpg(): the page of the writer of the moment); announce on that page:
 *     sleepers := max(sleepers, SLEEPER|n0) (announce() in wait.c, a CAS loop); if
 *     notify == n0: FUTEX_WAIT(notify, n0) (the kernel compares the word atomically with
 *     queueing). All readers share the one sleepers word of a page.
 *     A sleeping reader is woken by FUTEX_WAKE only. The sleep slice (100 ms) is NOT a
 *     way out while a writer holds the lock: a sleeper may time out only while the writer is
 *     dead (that is how the real reader learns it). A reader may die (at most RDEATHS times in
 *     a run) just after announcing itself or while asleep: its announcement stays behind.
 *
 * Properties
 *   - no torn read (assert): an accepted version has both payload words equal to it, and
 *     the versions a reader accepts only increase;
 *   - no lost wake-up, three asserts and the end state:
 *       (a) a reader is queued in FUTEX_WAIT while a version newer than its position exists
 *           only while a wake is owed (a writer is between W5 and the end of its W6, or died
 *           there and no successor has done its notify yet);
 *       (b) when a W6 ends, no reader is asleep behind head;
 *       (c) when a takeover's notify ends, no reader is asleep behind head;
 *       (d) no invalid end state: every reader ends having read the last version (or seen
 *           the writer close), none is left asleep;
 *   - the flag is cleared (assert): a W6 during which no reader announced itself ends with
 *     its page's sleepers == 0. So a reader that dies asleep costs the writer at most the
 *     wake of the publish in flight and that of the next one; every later publish finds 0
 *     and makes no syscall (no "wake on every publish forever");
 *   - writer progress: ltl `progress`: the (last) writer eventually finishes, whatever the
 *     readers do (checked with weak fairness; the writer has no blocking step).
 *
 * Mutations (each -DBUG_* must make spin report an error; check.sh runs them all and
 * prints the assert spin hits first):
 *   BUG_PLAIN_ANNOUNCE      a plain store announces (src/wait.c before its fix): a stale
 *                           announcement brings back the value the writer loaded and its CAS
 *                           erases a newer sleeper's (ABA)            -> lost wake-up, 2 readers
 *   BUG_WAKE_BEFORE_NOTIFY  W6 loads sleepers before it bumps notify  -> lost wake-up
 *   BUG_CLEAR_ALWAYS        W6 clears even an announcement of N       -> lost wake-up
 *   BUG_STORE_CLEAR         W6 clears with a plain store, not a CAS   -> lost wake-up
 *   BUG_NO_CLEAR            W6 never clears the flag                  -> flag not cleared
 *   BUG_N0_AFTER_HEAD       the sleeper loads n0 after its head check -> lost wake-up
 *   BUG_WAIT_ON_FRESH       FUTEX_WAIT compares a fresh load of notify, not n0 -> lost wake-up
 *   BUG_STALE_WAITPG        a reader keeps announcing on the first writer's page
 *                           (does not follow wait_id after a takeover) -> lost wake-up
 *   BUG_NO_TAKEOVER_NOTIFY  the takeover does not notify for the dead writer -> lost wake-up
 *   BUG_NO_REPAIR           the takeover does not repair slots        -> torn read
 *   BUG_NO_RECHECK          a reader ignores R4                       -> torn read
 *   NO_USER_RECHECK is not a mutation: the sleeper skips its own re-check of notify and
 *   relies on the kernel's; check.sh shows the model still holds (the re-check in
 *   ndshm_wait only saves a syscall).
 *
 * The model is sequentially consistent: it checks the algorithm, not the C11 fences (those
 * are argued in ring.c and wait.c and exercised by ThreadSanitizer on the relaxed-atomic copy
 * build). notify is a byte here: it never wraps within a run (at most MAXV + CRASHES + 1).
 */
#ifndef N
#define N 2 /* slots */
#endif
#ifndef MAXV
#define MAXV 4 /* versions published in a run */
#endif
#ifndef R
#define R 2 /* readers */
#endif
#ifndef CRASHES
#define CRASHES 1 /* writer deaths */
#endif
#ifndef RDEATHS
#define RDEATHS 0 /* reader deaths */
#endif
#define NPG (CRASHES + 1) /* one wait page per writer */

#define LIVE 0
#define DEAD 1
#define CLOSED 2

/* sleepers: 0, or SLEEPER | n0, written n0 + 1 here (low32(w) is w - 1) */
#define ANNOUNCE(n) ((n) + 1)

byte seq[N];
byte ver[N];
byte d0[N];
byte d1[N];
byte head = 0;
byte notify = 0;
byte wait_id = 0;      /* ctl.wait_id: the page of the writer of the moment */
byte sleepers[NPG];    /* one word per wait page */
bool asleep[R];        /* queued in FUTEX_WAIT */
byte pos[R];           /* reader positions (global for the asserts) */
byte wstate = LIVE;
byte crashes = 0;
byte rdeaths = 0;
bool writer_done = 0;
/* ghost state for the asserts */
bool owed = 0;         /* a W5 whose W6 (or the successor's notify) has not ended */
bool announced = 0;    /* a reader announced itself since the last ++notify of a W6 */

/* A writer step: the writer either dies before it (at most CRASHES times in a run; the
 * kernel drops its lock) or does it. Promela merges a statement's first choice into this
 * one: a stmt that begins with an if must not use `else` there (it would mean "and the writer
 * cannot die"), hence the explicit complementary guards below. */
#define STEP(stmt)                                                                             \
    if                                                                                         \
    :: crashes < CRASHES -> atomic { crashes++; wstate = DEAD; goto died }                     \
    :: stmt                                                                                    \
    fi

inline futex_wake_all()
{
    i = 0;
    do
    :: i < R -> asleep[i] = 0; i++
    :: else -> i = 0; break
    od
}

/* (b)/(c): nobody is asleep behind head */
inline nobody_behind()
{
    i = 0;
    do
    :: i < R -> assert(!(asleep[i] && pos[i] < head)); i++
    :: else -> i = 0; break
    od
}

/* The end of a W6: the wake is no longer owed; (b); the flag is cleared unless a reader
 * announced itself during this W6. */
inline w6_end()
{
    owed = 0;
    nobody_behind();
    assert(announced || sleepers[mypg] == 0);
    w = 0;
    n = 0
}

proctype Writer(bool takeover)
{
    byte v, s, i, w, n, mypg;
    if
    :: takeover ->
        /* writer_repair(): the successor holds the lock from here on */
        atomic { wstate = LIVE; mypg = crashes };
#ifdef BUG_NO_REPAIR
        i = N;                                         /* mutation: no repair */
#else
        i = 0;
#endif
        do
        :: i < N ->
            if
            :: (seq[i] % 2 == 1) || ver[i] > head ->
                if
                :: seq[i] % 2 == 0 -> seq[i]++
                :: else -> skip
                fi;
                ver[i] = 0;
                seq[i]++
            :: else -> skip
            fi;
            i++
        :: else -> i = 0; break
        od;
        wait_id = mypg;                                /* claim(): the new wait page */
#ifndef BUG_NO_TAKEOVER_NOTIFY
        /* ndshm__notify_all() on behalf of the dead writer */
        notify++;
        atomic { futex_wake_all(); owed = 0; nobody_behind() }
#else
        atomic { nobody_behind() }                     /* (c) */
#endif
    :: else -> mypg = 0
    fi;
    v = head + 1;
    do
    :: v > MAXV -> break
    :: else ->
        s = v % N;
        STEP(seq[s]++);                                /* W1: odd */
        STEP(ver[s] = v);                              /* W2 */
        STEP(d0[s] = v);
        STEP(d1[s] = v);
        STEP(seq[s]++);                                /* W3: even */
        STEP(atomic { head = v; owed = 1 });           /* W5 */
#ifdef BUG_WAKE_BEFORE_NOTIFY
        /* mutation: sleepers loaded before notify is bumped */
        STEP(w = sleepers[mypg]);
        STEP(atomic { notify++; n = notify; announced = 0 });
        if
        :: w == 0 -> atomic { w6_end() }
        :: else -> skip
        fi;
#else
        STEP(atomic { notify++; n = notify; announced = 0 });   /* W6: N := ++notify */
        STEP(atomic {                                           /* w := sleepers */
            w = sleepers[mypg];
            if
            :: w == 0 -> w6_end()                               /* no syscall */
            :: else -> skip
            fi
        });
#endif
        if
        :: w != 0 ->
            STEP(atomic { futex_wake_all() });                  /* FUTEX_WAKE(all) */
            STEP(atomic {
#if defined(BUG_NO_CLEAR)
                skip;                                           /* mutation: never cleared */
#elif defined(BUG_CLEAR_ALWAYS)
                if                                              /* mutation: N too */
                :: sleepers[mypg] == w -> sleepers[mypg] = 0
                :: sleepers[mypg] != w -> skip
                fi;
#elif defined(BUG_STORE_CLEAR)
                if                                              /* mutation: plain store */
                :: w - 1 != n -> sleepers[mypg] = 0
                :: w - 1 == n -> skip
                fi;
#else
                if                               /* if low32(w) != N: CAS(sleepers, w -> 0) */
                :: w - 1 != n && sleepers[mypg] == w -> sleepers[mypg] = 0
                :: w - 1 == n || sleepers[mypg] != w -> skip
                fi;
#endif
                w6_end()
            })
        :: else -> skip
        fi;
        v++
    od;
#ifdef CLOSE_AT_END
    /* ndshm_writer_close(): owner 0, then ndshm__notify_all() */
    wstate = CLOSED;
    notify++;
    atomic { futex_wake_all() };
#endif
    /* By default the writer stays alive and idle after its last version: nothing after it
     * could mask a lost wake-up of that version. */
    writer_done = 1;
    goto end;
died:
    run Writer(1); /* the lock is free: a successor takes over */
end:
    skip
}

#ifdef BUG_NO_RECHECK
#define ACCEPT (v == want)                             /* mutation: R4 ignored */
#else
#define ACCEPT (s1 == s2 && v == want)
#endif

/* One read-latest attempt of version `want` in `slot` (ndshm__slot_read()). */
inline read_attempt()
{
    if
    :: atomic { seq[slot] % 2 == 0 -> s1 = seq[slot] } /* R1: even */
        v = ver[slot];                                 /* R2 */
        a = d0[slot];                                  /* R3 */
        b = d1[slot];
        atomic {
            s2 = seq[slot];                            /* R4 */
            if
            :: ACCEPT ->
                assert(a == want && b == want);        /* no torn copy accepted */
                assert(want > pos[id]);                /* in order */
                pos[id] = want
            :: else -> skip                            /* BUSY / NEWER / OLDER: retry */
            fi;
            s1 = 0; s2 = 0; v = 0; a = 0; b = 0; want = 0; slot = 0
        }
    :: else -> want = 0; slot = 0                      /* R1: odd, BUSY */
    fi
}

/* The sleep part of one round of ndshm_wait()'s loop, after n0 := notify and the head
 * check found nothing new. */
inline sleep_round()
{
#ifdef BUG_STALE_WAITPG
    pg = 0;                                            /* mutation: the first page, always */
#else
    pg = wait_id;                                      /* ndshm__reader_waitpg() */
#endif
#ifdef BUG_PLAIN_ANNOUNCE
    /* mutation (src/wait.c before its fix): a plain store. A stale announcement can bring
     * back the very value the writer loaded (ABA), and the writer's CAS then erases the
     * announcement of a newer sleeper. */
    atomic { sleepers[pg] = ANNOUNCE(n0); announced = 1; pg = 0 };
#else
    atomic {                                           /* announce: an atomic max (CAS loop) */
        if
        :: sleepers[pg] < ANNOUNCE(n0) -> sleepers[pg] = ANNOUNCE(n0); announced = 1
        :: else -> skip                                /* a newer one is there: notify moved */
        fi;
        pg = 0
    };
#endif
#ifdef BUG_WAIT_ON_FRESH
    n0 = notify;                                       /* mutation: compare a fresh value */
#endif
    if
    :: rdeaths < RDEATHS -> atomic { rdeaths++; goto rdied } /* dies, announced */
#ifdef NO_USER_RECHECK
    :: true -> skip
#else
    :: notify == n0 -> skip                            /* re-check before the syscall */
    :: atomic { notify != n0 -> n0 = 255 }             /* do not sleep */
#endif
    fi;
    atomic {                                           /* FUTEX_WAIT(notify, n0) */
        if
        :: notify == n0 ->
            asleep[id] = 1;
            assert(head <= pos[id] || owed)            /* (a) */
        :: else -> skip                                /* EAGAIN */
        fi;
        n0 = 0
    };
    if
    :: !asleep[id] -> skip                             /* woken (or never slept) */
    :: asleep[id] && wstate == DEAD -> asleep[id] = 0  /* slice timeout, writer dead */
    :: asleep[id] && rdeaths < RDEATHS ->
        atomic { rdeaths++; asleep[id] = 0; goto rdied } /* dies asleep */
    fi
}

proctype Reader(byte id)
{
    byte want, slot, s1, s2, v, a, b, n0, pg;
    do
    :: pos[id] == MAXV -> break
    :: pos[id] < MAXV && wstate == CLOSED && head == pos[id] -> break /* WRITER_GONE, final */
    :: else ->
#ifdef BUG_N0_AFTER_HEAD
        /* mutation: the head check comes before n0 := notify */
        if
        :: atomic { head > pos[id] -> want = head; slot = want % N } -> read_attempt()
        :: else -> n0 = notify; sleep_round()
        fi
#else
        /* n0 := notify, then the head check (a read when it finds something, else sleep).
         * The real reader checks head also before (read_*, the spin phase): such a check only
         * leads to a read attempt, which this loop makes too. */
        n0 = notify;
        if
        :: atomic { head > pos[id] -> want = head; slot = want % N; n0 = 0 } -> read_attempt()
        :: else -> sleep_round()
        fi
#endif
    od;
    goto rend;
rdied:
    skip;
rend:
    skip
}

init
{
    atomic {
        byte k = 0;
        run Writer(0);
        do
        :: k < R -> run Reader(k); k++
        :: else -> break
        od
    }
}

ltl progress { <> writer_done }
