/*
 * delivery.pml - the delivery protocol of uintr_loop's core, for spin.
 *
 * Steps
 * -----
 * A step of this model is one access to memory that another thread can
 * touch (a UPID's status or PIR, the eventfd, the mailbox) together with the
 * thread-local work that follows it up to the next such access: grouping
 * local work that way removes no behaviour, because a step that touches only
 * a thread's own state commutes with every step of the other threads. Each
 * shared access is one indivisible step, as in the core: a locked
 * instruction (atomic_fetch_or, atomic_fetch_and, atomic_exchange, the
 * compare-exchange) or one atomic load. Every access in the core is seq_cst
 * (on x86, loads plus locked instructions), so the interleavings spin
 * explores are all the executions there are.
 *
 * The steps carry the letters the core's comments use, as "step L" at the
 * end of the model line that mirrors it (upid.h's essay: P R CAS C X U L;
 * and S suppress, Q the pending test, B busy-poll, D shut down, W eventfd
 * write, E the edge epoll consumes, M the mailbox's test-and-append, T its
 * drain, A the adaptive wakeup's alarm). tests/test_model.py checks that every letter used here is named in
 * the core's comments, and the other way round. Within each process the
 * steps come in the core's order.
 *
 * Processes
 * ---------
 *   Sender(v)  two threads posting vectors 1 and 2 (PIR bits 2 and 4) to one
 *              receiver: send.h's uintr_sender_send, that is the post to the
 *              receiver's block, then (if it set ON) its NV to the loop's
 *              block, then (if that set ON) the eventfd write.
 *              With -DKILL the second sender is a process of its own that
 *              may die (SIGKILL) after either CAS that obliges it to
 *              notify, before it does: ON is left set with nothing on the
 *              way. It registered before its first post (vectorfd.h), so
 *              its exit wakes the loop (its pidfd, in the loop's epoll set),
 *              and the loop's callback repairs: it takes the receiver's
 *              block if ON is set there (step K), as a notification would.
 *   Poster     a third thread, calling call_soon_threadsafe: on the asyncio
 *              base asyncio's ready-deque append then our wakeup post; on
 *              the uvloop base (-DUVLOOP) the mailbox of mailbox.pxi, under
 *              the GIL.
 *   Loop       the loop's thread: callbacks with SN set on its block, then
 *              the select bracketed by restore (U L; a busy-poll B may come
 *              first) and recognise (S Q C X, then the vectors highest
 *              first), as port.pxi and uvhook.pxi run them. The select may
 *              also end with no eventfd behind it, at most ALARMS times:
 *              the alarm (busypoll.h, step A) wakes the loop just before a
 *              steady sender's post is due; SN is then set again and the
 *              loop goes on as after any wake-up (its spin is the busy-poll
 *              B of the next round, its miss the restore U L before the
 *              next select). On the uvloop
 *              base the wakeup's mailbox either runs its handles right
 *              there (T in dispatch: the check hook, nothing else queued)
 *              or schedules its drain (T among the callbacks). The receiver's
 *              side runs in its callbacks: delivery (receiver.pxi _deliver),
 *              masking (CLUI/STUI, in handlers too) and close. With -DTASK
 *              the receiver is a task receiver (shim.pxi): its block has SN
 *              set while the task is switched out, cleared when it switches
 *              in and while it waits in wait().
 *
 * Properties
 * ----------
 * Each is an assert(SKIP(name) || ...). tests/test_model.py runs, for each,
 * a broken core (-DBUG_...) with only that property on (-DONLY=P_name) and
 * requires spin to find the violation: delete a property and that test
 * fails.
 *   no_lost_wakeup   when nothing can move any more (spin's timeout: the
 *                    senders are done and the loop sleeps in epoll_wait),
 *                    every vector posted to the open receiver has reached
 *                    its handler and every call_soon_threadsafe callback
 *                    has run. A masked receiver is unmasked, and a task
 *                    switched in, first: that is when the contract says
 *                    they are delivered.
 *   no_delivery_after_close   no handler starts once its receiver is closed.
 *   refused_after_close       a post that begins after the shut-down bit is
 *                    set reports it (ReceiverClosedError): it cannot vanish.
 *   one_notification at most one notification outstanding per UPID: ON goes
 *                    0 -> 1 once, then not again before the receiver's C.
 *   handlers_never_nest       no handler starts while one runs.
 *   highest_first    no handler starts while a higher vector is pending.
 *   callbacks_once   a call_soon_threadsafe callback never runs twice.
 */

#define P_no_lost_wakeup 1
#define P_no_delivery_after_close 2
#define P_refused_after_close 3
#define P_one_notification 4
#define P_handlers_never_nest 5
#define P_highest_first 6
#define P_callbacks_once 7
#ifdef ONLY
#define SKIP(p) (ONLY != P_##p)
#else
#define SKIP(p) false
#endif

#define ON    1
#define SN    2
#define SHUT  4

#define LOOP  0          /* block 0: the loop's own UPID */
#define RCV   1          /* block 1: the receiver's UPID, NV = 1 */
#define WAKE  1          /* vector 0 (the wakeup) as a PIR bit */
#define NVBIT 2          /* vector 1 (the receiver's NV) as a PIR bit */

/* uintr_upid_post's results (upid.h); UNDECIDED: go on to the CAS */
#define NOTIFY     0
#define COALESCED  1
#define SUPPRESSED 2
#define REFUSED    3
#define UNDECIDED  255

#ifndef POSTS
#define POSTS 2          /* posts per Sender */
#endif
#ifndef CALLS
#define CALLS 2          /* call_soon_threadsafe calls of the Poster */
#endif
#ifndef OPS
#define OPS 2            /* receiver-side operations: mask, close, task steps */
#endif
#ifndef ALARMS
#define ALARMS 1         /* wake-ups by the adaptive wakeup's alarm */
#endif

byte status[2];          /* ON | SN | SHUT, per block */
byte pir[2];             /* pending vectors as bits, per block */
bool efd;                /* an eventfd edge epoll has not consumed */
bool dead;               /* KILL: the sender process exited (its pidfd is readable) */

byte ready;              /* asyncio base: callbacks in the ready deque */
byte mbox;               /* uvloop base: handles in the mailbox */
bool gil;                /* the mailbox's lock (BUG_MAILBOX_RACE drops it mid-step) */

/* ghosts: what the properties are stated in */
byte owed;               /* receiver vectors posted (P), not yet taken (X) */
byte owed_taken;         /* taken by an X, not yet handed to the handler */
bool outstanding[2];     /* a notification set ON, not yet cleared by a C */
byte senders_done;

/* The checks of uintr_upid_post on a loaded status s. */
inline decide(s, r)
{
#ifdef BUG_SHUT_LAST
    if      /* broken: the shut-down bit tested last */
    :: s & ON -> r = COALESCED
    :: else -> if
        :: s & SN -> r = SUPPRESSED
        :: else -> if
            :: s & SHUT -> r = REFUSED
            :: else -> r = UNDECIDED
            fi
        fi
    fi
#else
    if
    :: s & SHUT -> r = REFUSED
    :: else -> if
        :: s & ON -> r = COALESCED
        :: else -> if
            :: s & SN -> r = SUPPRESSED
            :: else -> r = UNDECIDED
            fi
        fi
    fi
#endif
}

/* uintr_upid_post: r gets its result. sb (ghost): the block was shut down
 * before this post's P. */
inline post(b, vb, r, s, sb)
{
    d_step {
        pir[b] = pir[b] | vb;                               /* step P */
        if
        :: b == RCV -> owed = owed | vb
        :: else -> skip
        fi;
        sb = status[b] & SHUT
    };
    d_step {
        s = status[b];                                      /* step R */
        decide(s, r)
    };
    do
    :: r == UNDECIDED ->
#ifdef BUG_NO_CAS
        d_step {        /* broken: a plain store after the test in R */
            status[b] = s | ON;
            assert(SKIP(one_notification) || !outstanding[b]);
            outstanding[b] = true;
            r = NOTIFY
        }
#else
        d_step {
            if
            :: status[b] == s ->                            /* step CAS */
                status[b] = s | ON;
                assert(SKIP(one_notification) || !outstanding[b]);
                outstanding[b] = true;
                r = NOTIFY
            :: else ->
                s = status[b];      /* the failed CAS reloads s */
                decide(s, r)
            fi
        }
#endif
    :: else -> break
    od;
    assert(SKIP(refused_after_close) || !sb || r == REFUSED)
}

#ifdef KILL
/* The second sender may be killed where it must notify next (the kernel
 * then makes its pidfd readable: dead). */
#define KILLABLE (vb == 4 && !dead)
#define DIE { dead = true; break }
#else
#define KILLABLE false
#define DIE skip
#endif

proctype Sender(byte vb)
{
    byte r, s, sb, n;
    do
    :: n < POSTS ->
        post(RCV, vb, r, s, sb);
        if
        :: r == NOTIFY && KILLABLE -> DIE
        :: r == NOTIFY ->
            post(LOOP, NVBIT, r, s, sb);
            if
            :: r == NOTIFY && KILLABLE -> DIE
            :: r == NOTIFY -> efd = true                    /* step W */
            :: else -> skip
            fi
        :: else -> skip
        fi;
        d_step { n++; r = 0; s = 0; sb = 0 }
    :: else -> break
    od;
    senders_done++
}

proctype Poster()
{
    byte r, s, sb, n;
    bool was_empty;
    do
    :: n < CALLS ->
#ifdef UVLOOP
        /* Mailbox.post: under the mailbox's lock (the GIL, or a critical
         * section on a free-threaded build) test for empty and append; then,
         * the lock let go, post if it was empty (the eventfd write last). */
#ifdef BUG_MAILBOX_RACE
        atomic { !gil -> gil = true; was_empty = (mbox == 0) };
        gil = false;    /* broken: the lock dropped between test and append */
        atomic { !gil -> mbox++ };
#else
        atomic { !gil -> was_empty = (mbox == 0); mbox++ }     /* step M */
#endif
        r = SUPPRESSED;
        if
        :: was_empty -> post(LOOP, WAKE, r, s, sb)
        :: else -> skip
        fi;
#else
        /* asyncio's call_soon_threadsafe: the ready-deque append, then
         * _write_to_self, which is our wakeup post. */
        ready++;
        post(LOOP, WAKE, r, s, sb);
#endif
        if
        :: r == NOTIFY -> efd = true                        /* step W */
        :: else -> skip
        fi;
        d_step { n++; r = 0; s = 0; sb = 0; was_empty = false }
    :: else -> break
    od;
    senders_done++
}

/* The receiver's side: inlines of the Loop process, whose locals they use.
 * --------------------------------------------------------------------- */

/* uintr_highest on UIRR. */
inline highest(v)
{
#ifdef BUG_LOWEST_FIRST
    v = uirr & -uirr        /* broken: the lowest first */
#else
    if
    :: uirr & 4 -> v = 4
    :: else -> if
        :: uirr & 2 -> v = 2
        :: else -> v = 1
        fi
    fi
#endif
}

/* A handler starts for vector bit v (already cleared from UIRR). */
inline handler_entry(v)
{
    assert(SKIP(handlers_never_nest) || !in_handler);
    assert(SKIP(no_delivery_after_close) || !closed);
    assert(SKIP(highest_first) || uirr < v);
    owed_taken = owed_taken & ~v
}

/* Receiver.close / TaskReceiver.close in the owner process: the flag, UIRR
 * dropped, the shut-down bit, detached from the port. */
inline close_receiver()
{
    closed = true;
#ifndef BUG_CLOSE_KEEPS_UIRR
    uirr = 0;
#endif
#ifdef TASK
    waiting = false;
    woken = false;
#endif
    status[RCV] = status[RCV] | SHUT                        /* step D */
}

/* From inside a handler, a masked section ends: MaskedSection.__exit__'s
 * STUI delivers what is pending, but never into the running handler. */
inline nested_unmask(w)
{
    if
#ifdef BUG_NEST
    :: uirr && !closed ->               /* broken: no in_handler guard */
#else
    :: uirr && !closed && !in_handler ->
#endif
        highest(w);
        uirr = uirr & ~w;
        handler_entry(w)
    :: else -> skip
    fi
}

/* Receiver._deliver / TaskReceiver.deliver_now: each pending vector,
 * highest first, while unmasked and open. A handler may do nothing, run a
 * masked section, or close its receiver. */
inline deliver(v, w)
{
    do
#ifdef BUG_CLOSE_KEEPS_UIRR
    :: uirr && mask_depth == 0 ->       /* broken: closed not checked */
#else
    :: uirr && mask_depth == 0 && !closed ->
#endif
        d_step {
            highest(v);
            uirr = uirr & ~v;
            handler_entry(v);
            in_handler = true
        };
        if
        :: true -> skip
        :: ops < OPS -> ops++; nested_unmask(w)
        :: ops < OPS && !closed -> ops++; close_receiver()
        fi;
        d_step { in_handler = false; v = 0; w = 0 }
    :: else -> break
    od
}

/* uintr_upid_recognise on the receiver's block, into UIRR (take_pir). */
inline take_pir(rb, had_on)
{
    d_step {
        had_on = status[RCV] & ON;                          /* step C */
        status[RCV] = status[RCV] & ~ON;
        outstanding[RCV] = false
    };
    d_step {
        rb = pir[RCV];                                      /* step X */
        pir[RCV] = 0;
        owed_taken = owed_taken | (owed & rb);
        owed = owed & ~rb;
#ifdef BUG_UIRR_OVERWRITE
        if
        :: rb -> uirr = rb      /* broken: what UIRR held is lost */
        :: else -> skip
        fi;
#else
        uirr = uirr | rb;
#endif
        rb = 0;
        had_on = false
    }
}

/* uintr_upid_restore then uintr_upid_pending on the receiver's block (a
 * task's switch-in, or wait()), taking PIR if anything is there. */
inline restore_receiver(rb, had_on, pending)
{
    status[RCV] = status[RCV] & ~SN;                        /* step U */
    pending = (pir[RCV] != 0);                              /* step L */
    if
    :: !pending -> pending = (status[RCV] & ON)             /* step Q */
    :: else -> skip
    fi;
    if
    :: pending -> take_pir(rb, had_on)
    :: else -> skip
    fi;
    pending = false
}

#ifdef TASK
/* TaskReceiver.switch_in: restore, take, deliver. */
inline switch_in(v, w, rb, had_on, pending)
{
    running = true;
    if
    :: !closed ->
        restore_receiver(rb, had_on, pending);
        if
        :: uirr && mask_depth == 0 && !in_handler -> deliver(v, w)
        :: else -> skip
        fi
    :: else -> skip
    fi
}

/* TaskReceiver.switch_out: SN set, unless waiting (uintr_wait keeps it
 * clear so that a post wakes the loop) or closed. */
inline switch_out()
{
    running = false;
    if
#ifdef BUG_SN_WHILE_WAITING
    :: !closed ->                   /* broken: a waiting task too */
#else
    :: !closed && !waiting ->
#endif
        status[RCV] = status[RCV] | SN                      /* step S */
    :: else -> skip
    fi
}

/* One step of the receiver task: switch in, its code, switch out. */
inline task_step(v, w, rb, had_on, pending)
{
    if
    :: woken -> woken = false      /* resumed by the wake-up */
    :: else -> ops++
    fi;
    switch_in(v, w, rb, had_on, pending);
    if
    :: true -> skip
    :: !closed && mask_depth == 0 -> mask_depth++
    :: mask_depth > 0 ->            /* TaskMaskedSection.__exit__: STUI */
        mask_depth--;
        if
        :: mask_depth == 0 && !in_handler && !closed ->
            take_pir(rb, had_on);
            deliver(v, w)
        :: else -> skip
        fi
    :: !closed -> close_receiver()
    :: !closed ->                   /* task_receiver_wait */
        waiting = true;
        restore_receiver(rb, had_on, pending);
        if
        :: uirr ->                  /* returns at once */
            waiting = false;
            if
            :: mask_depth == 0 && !in_handler -> deliver(v, w)
            :: else -> skip
            fi
        :: else -> skip             /* awaits the future */
        fi
    fi;
    switch_out()
}
#endif

#ifdef TASK
#define TASK_READY (woken)
#else
#define TASK_READY (false)
#endif

/* Port.dispatch, SN already set: Q, C, X on the loop's block, then the
 * vectors highest first: NV (vector 1) is the receiver's recognise, vector
 * 0 the wakeup (the uvloop base's mailbox drain; on the asyncio base the
 * ready deque needs nothing). */
inline dispatch(bits, rb, had_on, pending)
{
    pending = status[LOOP] & ON;                            /* step Q */
    if
    :: !pending -> pending = (pir[LOOP] != 0)               /* step Q */
    :: else -> skip
    fi;
    if
    :: pending ->
        d_step {
            had_on = status[LOOP] & ON;                     /* step C */
            status[LOOP] = status[LOOP] & ~ON;
            outstanding[LOOP] = false
        };
        d_step {
            bits = pir[LOOP];                               /* step X */
            pir[LOOP] = 0
        };
        if
        :: (bits & NVBIT) && !closed ->
            take_pir(rb, had_on);
#ifdef TASK
            if      /* TaskReceiver.recognise: wake a waiter (TaskWait.complete):
                     * it no longer waits, and, not running, it is switched
                     * out at once (SN); its next switch-in takes PIR */
            :: uirr && waiting ->
                woken = true;
                waiting = false;
                if
                :: !running && !closed ->
                    status[RCV] = status[RCV] | SN          /* step S */
                :: else -> skip
                fi
            :: else -> skip
            fi
#else
            if      /* Receiver.schedule_delivery */
            :: uirr && mask_depth == 0 && !in_handler -> scheduled = true
            :: else -> skip
            fi
#endif
        :: else -> skip
        fi;
#ifdef UVLOOP
        if      /* Mailbox.on_wakeup, with the GIL */
        :: bits & WAKE ->
            atomic {
                !gil;
                if
                :: mbox > 0 && !drain_scheduled && !scheduled && !TASK_READY && !(bits & NVBIT) ->
                    /* from the check hook with nothing else queued: the
                     * handles run right here (Mailbox.run_items inline);
                     * the other branch is the same state with something
                     * queued (uv_backend_timeout == 0) */
                    calls_run = calls_run + mbox;           /* step T */
                    mbox = 0;
                    assert(SKIP(callbacks_once) || calls_run <= CALLS)
                :: mbox > 0 -> drain_scheduled = true
                :: else -> skip
                fi
            }
        :: else -> skip
        fi;
#endif
        d_step { bits = 0; had_on = false }
    :: else -> skip
    fi;
    pending = false
}

/* The loop's ready callbacks, run with SN set on the loop's block. */
inline run_callbacks(v, w, rb, had_on, pending)
{
#ifdef UVLOOP
    if      /* Mailbox.drain: the whole list, taken with the GIL */
    :: drain_scheduled ->
        drain_scheduled = false;
        atomic {
            !gil;
            calls_run = calls_run + mbox;                   /* step T */
            mbox = 0
        }
    :: else -> skip
    fi;
#else
    d_step {
        calls_run = calls_run + ready;
#ifndef BUG_READY_KEPT
        ready = 0
#else
        skip            /* broken: they stay queued and run again */
#endif
    };
#endif
    assert(SKIP(callbacks_once) || calls_run <= CALLS);
#ifdef KILL
    if      /* SenderWatch.sender_exited: the pidfd's reader callback */
    :: repair_due ->
        repair_due = false;
        repaired = true;
#ifndef BUG_NO_REPAIR
        if
        :: (status[RCV] & ON) && !closed ->                 /* step K */
            take_pir(rb, had_on);
#ifdef TASK
            if
            :: uirr && waiting -> woken = true
            :: else -> skip
            fi
#else
            if
            :: uirr && mask_depth == 0 && !in_handler -> scheduled = true
            :: else -> skip
            fi
#endif
        :: else -> skip
        fi
#endif
    :: else -> skip
    fi;
#endif
#ifdef TASK
    if
    :: woken || (ops < OPS && !waiting) -> task_step(v, w, rb, had_on, pending)
    :: else -> skip
    fi
#else
    if
    :: scheduled -> scheduled = false; deliver(v, w)
    :: else -> skip
    fi;
    if      /* the program's code between callbacks: CLUI, STUI, close */
    :: true -> skip
    :: ops < OPS && mask_depth == 0 && !closed -> ops++; mask_depth++
    :: mask_depth > 0 ->            /* MaskedSection.__exit__: STUI */
        mask_depth--;
        if
        :: mask_depth == 0 && uirr && !in_handler -> deliver(v, w)
        :: else -> skip
        fi
    :: ops < OPS && !closed -> ops++; close_receiver()
    fi
#endif
}

#ifdef UVLOOP
#define CALLBACKS_READY (drain_scheduled)
#else
#define CALLBACKS_READY (ready > 0 || scheduled)
#endif

/* Nothing can move (spin's timeout): the senders are done, the loop sleeps.
 * What the program does next: end a masked section, run a task that has
 * vectors waiting. Once neither is left, nothing may be outstanding. */
inline quiesce(v, w, rb, had_on, pending, finished)
{
    if
    :: mask_depth > 0 ->
        mask_depth = 0;
#ifdef TASK
        if
        :: !closed && !in_handler -> take_pir(rb, had_on); deliver(v, w)
        :: else -> skip
        fi
#else
        deliver(v, w)
#endif
#ifdef TASK
    :: mask_depth == 0 && !waiting && !closed && (uirr || pir[RCV]) ->
        switch_in(v, w, rb, had_on, pending);
        switch_out()
#endif
    :: else ->
        assert(senders_done == 3);
        assert(SKIP(no_lost_wakeup) || (calls_run == CALLS && ready == 0 && mbox == 0));
        assert(SKIP(no_lost_wakeup) || closed || (owed == 0 && owed_taken == 0 && uirr == 0));
        finished = true
    fi
}

proctype Loop()
{
    byte v, w, bits, rb;
    bool had_on, pending, finished;
    /* the receiver's state: the loop's thread alone touches it */
    byte uirr;
    byte mask_depth;
    bool in_handler;
    bool scheduled;          /* a _deliver callback is queued */
    bool closed;
    byte ops;                /* receiver-side operations so far (bounded) */
    bool drain_scheduled;    /* uvloop base: Mailbox.drain is queued */
    byte alarms;             /* the alarm's wake-ups so far (bounded) */
    bool rang;               /* the last select was ended by the alarm */
    bool repair_due;         /* KILL: the dead sender's pidfd woke the loop */
    bool repaired;           /* KILL: its reader callback has run (once) */
    byte calls_run;          /* call_soon_threadsafe callbacks run */
#ifdef TASK
    bool running;            /* the task's step runs (switched in) */
    bool waiting;            /* the task awaits wait()'s future */
    bool woken;              /* that future is done: the task is ready */
#endif
    do
    :: finished -> break
    :: else ->
        run_callbacks(v, w, rb, had_on, pending);
        if
        :: CALLBACKS_READY || TASK_READY ->
            efd = false     /* a poll (timeout 0), SN stays set: step E */
        :: else ->
            if
            :: pir[LOOP] != 0 ->
                efd = false /* busy-poll saw a post, no restore: step B */
            :: true ->
#ifdef BUG_RESTORE_LOAD_FIRST
                pending = (pir[LOOP] != 0);                 /* step L */
                status[LOOP] = status[LOOP] & ~SN;          /* step U */
#elif defined(BUG_ALARM_NO_RESTORE)
                if
                :: rang -> skip     /* broken: a missed alarm blocks with SN set */
                :: else -> status[LOOP] = status[LOOP] & ~SN    /* step U */
                fi;
                pending = (pir[LOOP] != 0);                 /* step L */
#else
                status[LOOP] = status[LOOP] & ~SN;          /* step U */
                pending = (pir[LOOP] != 0);                 /* step L */
#endif
                rang = false;
                if
                :: pending -> efd = false                   /* step E */
                :: else ->          /* epoll_wait sleeps */
                    if
                    :: efd -> efd = false                   /* step E */
                    :: alarms < ALARMS ->
                        alarms++;
                        rang = true         /* the alarm: no eventfd, step A */
                    :: dead && !repaired && !repair_due ->
                        repair_due = true   /* the pidfd is readable */
                    :: timeout -> quiesce(v, w, rb, had_on, pending, finished)
                    fi
                fi;
                pending = false
            fi
        fi;
        status[LOOP] = status[LOOP] | SN;                   /* step S */
        dispatch(bits, rb, had_on, pending)
    od
}

init
{
    atomic {
        status[LOOP] = SN;      /* uintr_upid_init: a new block has SN set */
#ifdef TASK
        status[RCV] = SN;       /* a task receiver starts switched out */
#else
        status[RCV] = 0;        /* a Receiver restores its block at creation */
#endif
        run Loop();
        run Sender(2);
        run Sender(4);
        run Poster()
    }
}
