/*
 * Promela model of the ndshm publish / read / wait protocol (src/ring.c, src/wait.c,
 * writer_repair() in src/writer.c), checked with spin. See tests/model/check.sh.
 *
 * What is modelled
 *   - one data segment of N slots; slot = seq, version and a two-word payload, each word
 *     written by its own step so a reader can observe a half-written slot;
 *   - the writer: W1 seq odd, W2 version + payload words, W3 seq even, W5 head := v,
 *     W6 notify += 1, then FUTEX_WAKE only if waiters > 0; after the last version it stays
 *     alive and idle (or, with -DCLOSE_AT_END, closes: gone, notify, wake). Before every step it may die (at most CRASHES times in a run); a new
 *     writer then takes over: it repairs (odd slots and slots holding a version > head are
 *     invalidated: seq odd, version 0, seq even), does W6 for the dead writer (which may
 *     have died between W5 and W6) and continues at head + 1;
 *   - R readers, each: read-latest attempts (R1 s1 = seq, odd -> retry; R2 version, R3 the
 *     payload words, R4 s2 = seq; accept only s1 == s2 and version == want) and, when nothing
 *     is new, ndshm_wait: n0 = notify; re-check head; waiters += 1; if notify == n0,
 *     FUTEX_WAIT(notify, n0) (the kernel re-checks the word atomically); waiters -= 1.
 *     A sleeping reader is woken by FUTEX_WAKE only: no timeout, so a lost wake-up is a
 *     reader asleep forever. The one exception is the liveness check: a sleeper may time out
 *     only while the writer is dead (that is how the real reader learns it, every 100 ms).
 *
 * Properties
 *   - safety (assert): no reader accepts a torn copy: an accepted version has both payload
 *     words equal to it; versions a reader accepts only increase;
 *   - no lost wake-up: no invalid end state: every reader ends having read the last version
 *     (or seen the writer close), none is left asleep;
 *   - writer progress: ltl `progress`: the (last) writer eventually finishes, whatever the
 *     readers do (checked with weak fairness; the writer has no blocking step).
 *
 * The model is sequentially consistent: it checks the algorithm, not the C11 fences (those
 * are argued in ring.c and checked by ThreadSanitizer on the relaxed-atomic copy build).
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
#define CRASHES 1
#endif

#define LIVE 0
#define DEAD 1
#define CLOSED 2

byte seq[N];
byte ver[N];
byte d0[N];
byte d1[N];
byte head = 0;
byte notify = 0;
byte waiters = 0;
bool asleep[R];
byte wstate = LIVE;
byte crashes = 0;
bool writer_done = 0;

/* Before each writer step: the writer may die here. */
#define STEP                                                                                   \
    if                                                                                         \
    :: crashes < CRASHES -> crashes++; goto died                                               \
    :: true -> skip                                                                            \
    fi

inline futex_wake_all()
{
    atomic {
        i = 0;
        do
        :: i < R -> asleep[i] = 0; i++
        :: else -> break
        od
    }
}

proctype Writer(bool takeover)
{
    byte v, s, i;
    if
    :: takeover ->
        /* writer_repair(): runs only once the old writer is dead (pid and start time) */
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
        :: else -> break
        od;
        wstate = LIVE;
#ifndef BUG_NO_TAKEOVER_NOTIFY
        /* W6 on behalf of the dead writer (it may have died between W5 and W6) */
        notify++;
        if
        :: waiters > 0 -> futex_wake_all()
        :: else -> skip
        fi
#endif
    :: else -> skip
    fi;
    v = head + 1;
    do
    :: v > MAXV -> break
    :: else ->
        s = v % N;
        STEP; seq[s]++;                 /* W1: odd */
        STEP; ver[s] = v;               /* W2 */
        STEP; d0[s] = v;
        STEP; d1[s] = v;
        STEP; seq[s]++;                 /* W3: even */
        STEP; head = v;                 /* W5 */
#ifdef BUG_WAKE_BEFORE_NOTIFY
        /* mutation: waiters loaded before notify is bumped -> lost wake-up */
        STEP;
        if
        :: waiters > 0 -> futex_wake_all()
        :: else -> skip
        fi;
        STEP; notify++;
#else
        STEP; notify++;                 /* W6 */
        STEP;
        if
        :: waiters > 0 -> futex_wake_all()
        :: else -> skip
        fi;
#endif
        v++
    od;
#ifdef CLOSE_AT_END
    /* ndshm_writer_close(): identity cleared, sleepers woken */
    wstate = CLOSED;
    notify++;
    futex_wake_all();
#endif
    /* By default the writer stays alive and idle after its last version: nothing after it
     * could mask a lost wake-up of that version. */
    writer_done = 1;
    goto end;
died:
    wstate = DEAD;
    run Writer(1); /* a new writer takes over */
end:
    skip
}

proctype Reader(byte id)
{
    byte pos = 0, want, slot, s1, s2, v, a, b, n0;
    do
    :: pos == MAXV -> break
    :: pos < MAXV && wstate == CLOSED && head == pos -> break /* NDSHM_WRITER_GONE, final */
    :: else ->
        want = head;
        if
        :: want > pos ->
            /* one read-latest attempt */
            slot = want % N;
            s1 = seq[slot];                            /* R1 */
            if
            :: s1 % 2 == 0 ->
                v = ver[slot];                         /* R2 */
                a = d0[slot];                          /* R3 */
                b = d1[slot];
                s2 = seq[slot];                        /* R4 */
                if
#ifdef BUG_NO_RECHECK
                :: v == want ->                        /* mutation: R4 ignored -> torn */
#else
                :: s1 == s2 && v == want ->
#endif
                    assert(a == want && b == want);    /* no torn copy accepted */
                    assert(want > pos);                /* in order */
                    pos = want
                :: else -> skip                        /* BUSY / NEWER / OLDER: retry */
                fi
            :: else -> skip                            /* BUSY */
            fi
        :: else ->
            /* ndshm_wait() */
            n0 = notify;
            if
            :: head > pos -> skip                      /* has_new */
            :: else ->
                waiters++;
                atomic {
                    if
                    :: notify == n0 -> asleep[id] = 1  /* FUTEX_WAIT queues us */
                    :: else -> skip                    /* EAGAIN */
                    fi
                };
                if
                :: !asleep[id] -> skip                 /* woken (or never slept) */
                :: asleep[id] && wstate == DEAD -> asleep[id] = 0 /* slice timeout, dead */
                fi;
                waiters--
            fi
        fi
    od
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
