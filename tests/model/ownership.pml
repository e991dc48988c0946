/*
 * Promela model of channel ownership (top comment of src/writer.c; ndshm_writer_create,
 * ndshm_writer_open, ndshm_writer_close with NDSHM_UNLINK_ON_CLOSE, and gc_channel() in
 * src/channel.c), checked with spin. See tests/model/check.sh.
 *
 * What is modelled, as kernel-atomic operations
 *   - files (inodes 1..MAXF) and the one name of the channel's control segment: `name` is the
 *     inode it refers to, 0 = none. linkat() gives a file the name only if it is free
 *     (EEXIST otherwise); unlink() removes whatever the name refers to at that moment;
 *     stat() of the name compared with the open file is ndshm__ctl_same_file();
 *   - the OFD write lock of each file: F_OFD_SETLK is a test-and-set (free -> ours, or
 *     EAGAIN); it is released by close and by the death of its holder;
 *   - writers (ids 1..3), each either creating first (ndshm_writer_create with
 *     NDSHM_OPEN_OR_CREATE) or opening first (ndshm_writer_open with NDSHM_OPEN_OR_CREATE):
 *       create: a new unnamed file (O_TMPFILE), its lock, then linkat; EEXIST -> close it,
 *               then open (once);
 *       open:   open the name (none: create), take the lock (EAGAIN after its retries:
 *               NDSHM_E_WRITER_ALIVE), then the same-file check (failed: the name is gone or
 *               re-created, E_NOENT -> create);
 *     then it publishes PUBS versions and either stays alive, or closes (the descriptor and
 *     its lock go; the channel stays for a successor), or closes with NDSHM_UNLINK_ON_CLOSE:
 *     the same-file check and unlink of the name while still holding the lock, then the
 *     descriptor (-DNO_CLOSE_UNLINK leaves that choice out). A writer may die before each
 *     step from its linkat or its lock attempt on (at most DEATHS deaths in a run); the
 *     kernel then releases its lock;
 *   - GCS runs of gc_channel(): open the name, take the lock, same-file check, unlink,
 *     release;
 *   - with -DEXT_UNLINK, one ndshm_unlink(): removes the name unconditionally (the user's
 *     explicit removal of a channel, live or not).
 *
 * Properties (assert)
 *   - never two live writers: a writer that has taken over or created a channel is the only
 *     live one of its file;
 *   - a live writer's channel keeps its name: at each publish the name refers to its file
 *     (without EXT_UNLINK) and gc never removed it: a takeover never ends up publishing into a
 *     channel gc removed;
 *   - gc never removes a channel that has a live writer (also one that took over while gc
 *     ran); close-with-unlink never removes another writer's channel;
 *   - sanity (-DREACH, must fail): a run exists where a takeover succeeds, gc removes a dead
 *     channel and a new one is created under the name: the asserts are not vacuous.
 *
 * Mutations (each must make spin report an error; check.sh runs them all):
 *   BUG_GC_UNLOCK_FIRST        gc releases the lock before it unlinks
 *   BUG_GC_NO_SAME_FILE        gc unlinks without the same-file check
 *   BUG_GC_TEST_ONLY           gc tests the lock (F_OFD_GETLK) instead of holding it
 *   BUG_TAKEOVER_NO_SAME_FILE  a takeover skips the same-file check
 *   BUG_TEST_THEN_CLAIM        a takeover tests the lock, then claims it (not atomic)
 *   BUG_CLOSE_UNLINK_AFTER_RELEASE  close drops the lock, then unlinks
 *   BUG_CLOSE_NO_SAME_FILE     close-with-unlink without the same-file check (EXT_UNLINK)
 *
 * Known limit (-DEXT_UNLINK without -DUNLINK_OUTSIDE_WINDOW, must fail): an ndshm_unlink()
 * and a create of the same name, both landing between the same-file check and the unlink of a
 * gc or of a closing writer, make that gc or close remove the new channel: unlink(2) goes by
 * name, and nothing orders a plain ndshm_unlink() with the check. The main EXT_UNLINK run
 * assumes the user's removal does not land inside that window (UNLINK_OUTSIDE_WINDOW).
 */
#ifndef DEATHS
#define DEATHS 1
#endif
#ifndef GCS
#define GCS 1
#endif
#ifndef PUBS
#define PUBS 1
#endif
#define MAXF 8
#define GCID 10 /* lock holder id of gc run k: GCID + k */

byte name = 0;         /* the inode under the name, 0 = none */
byte nextf = 1;        /* next inode O_TMPFILE creates */
byte lk[MAXF];         /* writer lock holder of each inode, 0 = free */
byte owner_of[MAXF];   /* ghost: the live writer that created or took over the inode */
bool gcdel[MAXF];      /* ghost: gc removed this inode's name */
byte deaths = 0;
byte inwin = 0;        /* ghost: processes between a same-file check and their unlink */
#ifdef REACH
bool takeover = 0;     /* ghost, for the sanity run */
bool gcremoved = 0;
bool recreated = 0;
#define REACHED(x) x = 1
#define RECREATED recreated = recreated || gcremoved
#else
#define REACHED(x) skip
#define RECREATED skip
#endif

/* A step a writer may die before (at most DEATHS times in a run). Dying releases every lock
 * the process holds (it holds at most one, on f). Promela merges the first choice of stmt into
 * this one: a stmt that begins with an if must not use `else` there (it would mean "and the
 * writer cannot die"), hence the explicit complementary guards. */
#define DIE_OR(stmt)                                                                           \
    if                                                                                         \
    :: deaths < DEATHS ->                                                                      \
        atomic {                                                                               \
            deaths++;                                                                          \
            if                                                                                 \
            :: lk[f] == id -> lk[f] = 0                                                        \
            :: else -> skip                                                                    \
            fi;                                                                                \
            if                                                                                 \
            :: owner_of[f] == id -> owner_of[f] = 0                                            \
            :: else -> skip                                                                    \
            fi;                                                                                \
            inwin = inwin - inw;                                                               \
            goto dead                                                                          \
        }                                                                                      \
    :: stmt                                                                                    \
    fi

/* The writer has its channel (created it, or took it over): never two live writers. */
#define ESTABLISH                                                                              \
    assert(owner_of[f] == 0);                                                                  \
    owner_of[f] = id

proctype Writer(byte id; bool create_first)
{
    byte f = 0, pubs = 0;
    bool ok = 0, same = 0, opened = 0, inw = 0;
    if
    :: create_first -> goto create
    :: else -> goto open
    fi;
create:
    /* ndshm__ctl_prepare(): O_TMPFILE, its writer lock before the file has a name */
    atomic { assert(nextf < MAXF); f = nextf; nextf++; lk[f] = id };
    /* ndshm__ctl_link(): linkat, EEXIST if the name is taken */
    DIE_OR(atomic {
        if
        :: name == 0 -> name = f; ok = 1; RECREATED; ESTABLISH
        :: name != 0 -> ok = 0
        fi
    });
    if
    :: ok -> goto established
    :: else ->
        atomic { lk[f] = 0; f = 0 };                   /* writer_free() */
        if
        :: !opened -> goto open                        /* E_EXISTS + OPEN_OR_CREATE */
        :: else -> goto fail
        fi
    fi;
open:
    opened = 1;
    atomic {                                           /* ndshm__ctl_open() */
        f = name;
        if
        :: f == 0 -> goto create                       /* E_NOENT + OPEN_OR_CREATE */
        :: else -> skip
        fi
    };
    /* acquire_writer_lock(): F_OFD_SETLK (the kernel's test-and-set) */
#ifdef BUG_TEST_THEN_CLAIM
    DIE_OR(atomic { ok = (lk[f] == 0) });              /* mutation: test ... */
    if
    :: ok -> lk[f] = id                                /* ... then claim */
    :: else -> skip
    fi;
#else
    DIE_OR(atomic {
        if
        :: lk[f] == 0 -> lk[f] = id; ok = 1
        :: lk[f] != 0 -> ok = 0                        /* EAGAIN (after the retries) */
        fi
    });
#endif
    /* the name still refers to the file we opened (and locked)? */
#ifdef BUG_TAKEOVER_NO_SAME_FILE
    atomic {
        same = 1;                                      /* mutation: not checked */
#else
    DIE_OR(atomic {
        same = (name == f);
#endif
        if
        :: same && ok -> REACHED(takeover); ESTABLISH  /* taken over */
        :: else -> skip
        fi
#ifdef BUG_TAKEOVER_NO_SAME_FILE
    };
#else
    });
#endif
    if
    :: !same ->                                        /* E_NOENT + OPEN_OR_CREATE */
        atomic {
            if
            :: ok -> lk[f] = 0
            :: else -> skip
            fi;
            ok = 0; f = 0
        };
        goto create
    :: same && !ok -> f = 0; goto fail                 /* NDSHM_E_WRITER_ALIVE */
    :: same && ok -> skip
    fi;
established:
    /* writer_repair(), claim(), ndshm__notify_all(); then it publishes */
    do
    :: pubs < PUBS ->
        DIE_OR(atomic {
            assert(!gcdel[f]);                         /* not into a channel gc removed */
            assert(lk[f] == id);
#ifndef EXT_UNLINK
            assert(name == f);                         /* the channel keeps its name */
#endif
            pubs++
        })
    :: else -> break
    od;
    if
    :: goto alive                                      /* stays alive and idle */
    :: goto release                                    /* ndshm_writer_close() */
#ifndef NO_CLOSE_UNLINK
    :: true ->                                         /* the same, NDSHM_UNLINK_ON_CLOSE */
#ifdef BUG_CLOSE_UNLINK_AFTER_RELEASE
        atomic { lk[f] = 0; owner_of[f] = 0 };         /* mutation: the lock goes first */
#endif
        /* NDSHM_UNLINK_ON_CLOSE, unlink_own(): while holding the lock, if the name still
         * refers to our file */
#ifdef BUG_CLOSE_NO_SAME_FILE
        DIE_OR(atomic { same = 1; inw = 1; inwin++ }); /* mutation: not checked */
#else
        DIE_OR(atomic {
            same = (name == f);
            if
            :: same -> inw = 1; inwin++
            :: else -> skip
            fi
        });
#endif
        if
        :: same ->
            DIE_OR(atomic {                            /* unlink(2) of the name */
                assert(name == 0 || owner_of[name] == 0 || owner_of[name] == id);
                name = 0;
                inw = 0;
                inwin--
            })
        :: else -> skip
        fi
#endif
    fi;
release:
    atomic {                                           /* writer_free(): the lock goes */
        if
        :: lk[f] == id -> lk[f] = 0
        :: else -> skip
        fi;
        if
        :: owner_of[f] == id -> owner_of[f] = 0
        :: else -> skip
        fi
    };
    goto fail;
alive:                                                 /* holds the lock on f */
    atomic { pubs = 0; ok = 0; same = 0; opened = 0; inw = 0; goto end };
fail:
dead:
    atomic { f = 0; pubs = 0; ok = 0; same = 0; opened = 0; inw = 0 };
end:
    skip
}

proctype GC(byte id)
{
    byte f = 0;
    bool ok = 0, inw = 0;
    atomic {                                           /* ndshm__ctl_open() */
        f = name;
        if
        :: f == 0 -> goto done
        :: else -> skip
        fi
    };
#ifdef BUG_GC_TEST_ONLY
    atomic { ok = (lk[f] == 0) };                      /* mutation: F_OFD_GETLK, not held */
#else
    atomic {                                           /* F_OFD_SETLK */
        if
        :: lk[f] == 0 -> lk[f] = id; ok = 1
        :: else -> ok = 0                              /* a writer lives */
        fi
    };
#endif
    if
    :: !ok -> goto done
    :: else -> skip
    fi;
    atomic {                                           /* ndshm__ctl_same_file() */
#ifdef BUG_GC_NO_SAME_FILE
        ok = 1;                                        /* mutation: not checked */
#else
        ok = (name == f);
#endif
        if
        :: ok -> inw = 1; inwin++
        :: else -> skip
        fi
    };
    if
    :: !ok -> goto release
    :: else -> skip
    fi;
#ifdef BUG_GC_UNLOCK_FIRST
    atomic {                                           /* mutation: release, then unlink */
        if
        :: lk[f] == id -> lk[f] = 0
        :: else -> skip
        fi
    };
#endif
    atomic {                                           /* unlink(2) of the name */
        assert(name == 0 || owner_of[name] == 0);      /* never a channel with a live writer */
        if
        :: name != 0 -> gcdel[name] = 1; name = 0; REACHED(gcremoved)
        :: else -> skip
        fi;
        inw = 0;
        inwin--
    };
release:
    atomic {                                           /* ndshm__ctl_close() */
        if
        :: lk[f] == id -> lk[f] = 0
        :: else -> skip
        fi
    };
done:
    atomic { f = 0; ok = 0; inw = 0 }
}

#ifdef EXT_UNLINK
proctype Unlink()
{
    /* ndshm_unlink(): the name goes, whatever it refers to */
#ifdef UNLINK_OUTSIDE_WINDOW
    atomic { inwin == 0 -> name = 0 }
#else
    name = 0
#endif
}
#endif

#ifdef REACH
/* sanity: such a run exists (this assert must fail) */
active proctype Reach()
{
end:
    atomic { takeover && gcremoved && recreated -> assert(0) }
}
#endif

init
{
    atomic {
        byte k = 0;
        run Writer(1, 1);                              /* the creator */
        run Writer(2, 0);                              /* a successor: open, else create */
#ifndef EXT_UNLINK
        run Writer(3, 1);                              /* create, else open */
#else
        run Writer(3, 1);
        run Unlink();
#endif
        do
        :: k < GCS -> run GC(GCID + k); k++
        :: else -> break
        od
    }
}
