/*
 * preempt.h - the preemption timer: a pthread that never takes the GIL,
 * waits for the earliest armed deadline and then makes the main thread run
 * a Python function at its next bytecode boundary. That function
 * (uintr_loop._doorbell.Timer.fire) decides, with the GIL, whether the
 * deadline may be raised where the code stands.
 *
 * The doorbell: why a signal
 * --------------------------
 * Py_AddPendingCall needs neither GIL nor thread state, but on CPython
 * 3.11-3.12 it does not make a busy main thread look at its queue when it is
 * called from another thread: it recomputes the "eval breaker" in the
 * *calling* thread, where "may this thread run pending calls?" is false, so
 * the call waits for the next GIL hand-over, which a lone CPU-bound thread
 * never makes (on 3.11 it runs only when a real signal comes, seconds
 * later). PyErr_SetInterruptEx from another thread fails the same way (the
 * handler runs only after the busy function returns). What works is
 * the path a real signal takes: the kernel runs Python's C-level signal
 * handler *on the main thread* (pthread_kill), which marks the signal
 * tripped and sets the eval breaker there; the main thread then runs the
 * signal's Python handler at the next bytecode boundary (a backward jump, a
 * call, a resume), exactly where a KeyboardInterrupt lands, and an exception
 * that handler raises propagates from the interrupted bytecode.
 *
 * Deadlines go one step further: a POSIX timer (timer_create with
 * SIGEV_THREAD_ID, CLOCK_MONOTONIC, absolute expiry) makes the kernel itself
 * send the signal to the main thread when the deadline passes, from its
 * timer interrupt: no thread has to be scheduled first, and on a loaded
 * 2-core machine a thread's wake-up alone has a millisecond tail
 * (benchmarks/preempt_latency.py measures both). The pthread does what a
 * timer cannot do, polling
 * a running task receiver's PIR for urgent vectors, and as the deadline
 * fallback if timer_create fails.
 *
 * So we need one signal, and take one the user is unlikely to use: a
 * real-time signal with no handler installed, searched from SIGRTMAX down at
 * run time (uintr_loop/_doorbell.py). It is sent only when a deadline passes.
 *
 * Why this is safe
 * ----------------
 * - The thread touches no Python object and never holds the GIL; it only
 *   calls pthread_kill.
 * - Python runs signal handlers only in the main thread, between bytecodes or
 *   from PyErr_CheckSignals inside C code that polls it, never in the middle
 *   of a C function's state change. A C call that neither polls nor returns
 *   (sum(range(10**10))) is not cut short. A blocking syscall in the main
 *   thread gets EINTR; Python retries it after the handlers (PEP 475), or
 *   stops with the handler's exception if it raised.
 * - Whether to raise is decided in the handler, not here: this thread only
 *   knows "a deadline passed". The handler checks, under the GIL, that the
 *   scope's task (or callback) is the code running, that it is not masked,
 *   and that the innermost frame is not the event loop's or the library's
 *   own code; otherwise it re-arms a short retry. A stale token (scope
 *   already left) is ignored.
 * - One slot (the kernel timer, or the thread's token): the earliest
 *   deadline only. The Python side keeps the heap of every armed deadline
 *   and re-arms the slot from the handler.
 * - The condition variable uses CLOCK_MONOTONIC (the clock of time.monotonic
 *   and of asyncio's loop.time), so wall-clock jumps change nothing.
 * - Urgent vectors: while a task receiver with urgent vectors runs, the
 *   thread also watches that receiver's PIR (uintr_preempt_watch): every
 *   URGENT_POLL_NS it loads PIR (an atomic load, no GIL) and rings while an
 *   urgent bit is set. The Python side takes PIR (moving the bits to UIRR),
 *   which stops the rings; a ring that finds the task switched out, masked
 *   or in the loop's code does nothing or takes the bits for later. The
 *   watch is cleared at switch-out; the thread keeps ticking for
 *   URGENT_GRACE_NS after that, so a task switching in again soon costs no
 *   wakeup of the thread (no futex call on the hot path).
 * - Arming signals the condition variable only when the new deadline is
 *   earlier than the one the thread sleeps towards; disarming never does (the
 *   thread wakes at the old time, finds the slot empty or later, and sleeps
 *   again).
 */
#ifndef UINTR_LOOP_PREEMPT_H
#define UINTR_LOOP_PREEMPT_H

#include "clock.h"

#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "upid.h"

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid   /* glibc spells it so */
#endif

#define URGENT_POLL_NS 100000u   /* 100 us */
#define URGENT_GRACE_NS 10000000u /* 10 ms */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int started;
    int stopping;
    uint64_t token;          /* armed token; 0: nothing armed */
    uint64_t when_ns;        /* CLOCK_MONOTONIC deadline of token */
    uint64_t sleeping_until; /* what the thread waits for now */
    int signum;              /* the doorbell signal */
    pthread_t target;        /* the main thread */
    uint64_t fired;          /* deadlines rung */
    uint64_t refused;        /* pthread_kill failures */
    uint64_t last_fire_ns;   /* when the last token was handed over */
    uintr_block_t *watch;    /* the running urgent task receiver, or NULL */
    uint64_t watch_mask;     /* its urgent vectors */
    uint64_t tick_until;     /* keep ticking until then after an unwatch */
    uint64_t urgent_rings;
    int has_timer;           /* deadlines ride a kernel timer (see above) */
    int thread_only;         /* tests/benchmarks: use the pthread for deadlines */
    timer_t timer;
} uintr_preempt_t;

static uintr_preempt_t uintr_preempt = {
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0, UINT64_MAX, 0, 0, 0, 0, 0, NULL, 0, 0, 0, 0, 0, 0,
};

static void *uintr_preempt_main(void *arg)
{
    uintr_preempt_t *p = (uintr_preempt_t *)arg;
    /* Linux lets a timed wait end up to 50 us late by default (timer slack);
     * a deadline is worth a tighter wakeup, for this thread only. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    pthread_mutex_lock(&p->mu);
    while (!p->stopping) {
        uint64_t now = uintr_monotonic_ns();
        int ring = 0;
        if (p->token && now >= p->when_ns) {
            p->token = 0;
            p->fired++;
            p->last_fire_ns = now;
            ring = 1;
        }
        if (p->watch && (atomic_load(&p->watch->upid.pir) & p->watch_mask)) {
            p->urgent_rings++;
            ring = 1;
        }
        if (ring && pthread_kill(p->target, p->signum) != 0)
            p->refused++;
        uint64_t next = p->token ? p->when_ns : UINT64_MAX;
        if ((p->watch || now < p->tick_until) && now + URGENT_POLL_NS < next)
            next = now + URGENT_POLL_NS;
        p->sleeping_until = next;
        if (next == UINT64_MAX) {
            pthread_cond_wait(&p->cv, &p->mu);
        } else {
            struct timespec ts = {(time_t)(next / 1000000000u), (long)(next % 1000000000u)};
            pthread_cond_timedwait(&p->cv, &p->mu, &ts);
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Fork: our prepare handler takes the mutex, so no thread of the parent
 * holds it (or is half way through a change of the slot) at the instant of
 * fork; the parent's handler releases it, and the child's releases its copy
 * and starts afresh: the child has no timer thread and no POSIX timer
 * (neither is inherited); the next start makes new ones. */
static void uintr_preempt_atfork_prepare(void)
{
    pthread_mutex_lock(&uintr_preempt.mu);
}

static void uintr_preempt_atfork_parent(void)
{
    pthread_mutex_unlock(&uintr_preempt.mu);
}

static void uintr_preempt_atfork_child(void)
{
    uintr_preempt_t *p = &uintr_preempt;
    /* the parent's thread may have been waiting on cv: never destroy it
     * here (glibc would wait for that waiter forever); the next start
     * initialises a fresh one */
    memset(&p->cv, 0, sizeof p->cv);
    p->started = 0;
    p->stopping = 0;
    p->token = 0;
    p->watch = NULL;
    p->sleeping_until = UINT64_MAX;
    p->has_timer = 0;         /* POSIX timers are not inherited */
    pthread_mutex_unlock(&p->mu);
}

/* The signal's current disposition, from the kernel: 0 default, 1 ignored,
 * otherwise the handler's address (a handler installed from C after start-up
 * is invisible to signal.getsignal()); -1 if signum is not valid. */
static inline intptr_t uintr_signal_disposition(int signum)
{
    struct sigaction sa;
    if (sigaction(signum, NULL, &sa) < 0)
        return -1;
    if (sa.sa_flags & SA_SIGINFO)
        return (intptr_t)sa.sa_sigaction;
    if (sa.sa_handler == SIG_DFL)
        return 0;
    if (sa.sa_handler == SIG_IGN)
        return 1;
    return (intptr_t)sa.sa_handler;
}

/* Start the thread once (idempotent); signum goes to the calling thread
 * (the main thread) when a deadline passes; a later call may change both.
 * 0 or an errno. */
static inline int uintr_preempt_start(int signum)
{
    uintr_preempt_t *p = &uintr_preempt;
    int rc = 0;
    pthread_mutex_lock(&p->mu);
    if (p->thread_only) {
        if (p->has_timer)
            timer_delete(p->timer);
        p->has_timer = 0;
    } else if (!p->has_timer || p->signum != signum ||
               !pthread_equal(p->target, pthread_self())) {
        struct sigevent sev;
        memset(&sev, 0, sizeof sev);
        sev.sigev_notify = SIGEV_THREAD_ID;
        sev.sigev_signo = signum;
        sev.sigev_notify_thread_id = (pid_t)syscall(SYS_gettid);
        if (p->has_timer)
            timer_delete(p->timer);
        p->has_timer = timer_create(CLOCK_MONOTONIC, &sev, &p->timer) == 0;
    }
    p->signum = signum;
    p->target = pthread_self();
    if (!p->started) {
        static int atfork_registered;
        if (!atfork_registered) {
            pthread_atfork(uintr_preempt_atfork_prepare, uintr_preempt_atfork_parent,
                           uintr_preempt_atfork_child);
            atfork_registered = 1;
        }
        pthread_condattr_t attr;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        /* no waiter exists now (no thread, or it was joined) */
        pthread_cond_init(&p->cv, &attr);
        pthread_condattr_destroy(&attr);
        p->stopping = 0;
        /* The thread inherits the creator's mask: with every signal blocked,
         * no process-directed signal (SIGINT, SIGCHLD, the user's) is ever
         * delivered to it, where Python would only note it for the main
         * thread, and no handler runs on its small stack. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        rc = pthread_create(&p->thread, NULL, uintr_preempt_main, p);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc == 0)
            p->started = 1;
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* Arm the slot: token fires at when_ns (CLOCK_MONOTONIC). Replaces what was
 * armed (the Python side arms only its earliest deadline). */
static inline void uintr_preempt_arm(uint64_t token, uint64_t when_ns)
{
    uintr_preempt_t *p = &uintr_preempt;
    if (p->has_timer) {
        struct itimerspec its = {{0, 0}, {(time_t)(when_ns / 1000000000u),
                                          (long)(when_ns % 1000000000u)}};
        if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
            its.it_value.tv_nsec = 1;   /* zero would disarm */
        if (timer_settime(p->timer, TIMER_ABSTIME, &its, NULL) == 0)
            return;
    }
    pthread_mutex_lock(&p->mu);
    p->token = token;
    p->when_ns = when_ns;
    if (when_ns < p->sleeping_until)
        pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Watch a running task receiver's PIR for urgent vectors (switch-in). */
static inline void uintr_preempt_watch(uintr_block_t *b, uint64_t mask)
{
    uintr_preempt_t *p = &uintr_preempt;
    pthread_mutex_lock(&p->mu);
    p->watch = b;
    p->watch_mask = mask;
    if (p->sleeping_until > uintr_monotonic_ns() + URGENT_POLL_NS)
        pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Stop watching (switch-out, close); never signals. */
static inline void uintr_preempt_unwatch(uintr_block_t *b)
{
    uintr_preempt_t *p = &uintr_preempt;
    pthread_mutex_lock(&p->mu);
    if (p->watch == b) {
        p->watch = NULL;
        p->tick_until = uintr_monotonic_ns() + URGENT_GRACE_NS;
    }
    pthread_mutex_unlock(&p->mu);
}

static inline void uintr_preempt_disarm(void)
{
    uintr_preempt_t *p = &uintr_preempt;
    if (p->has_timer) {
        struct itimerspec its = {{0, 0}, {0, 0}};
        timer_settime(p->timer, 0, &its, NULL);
    }
    pthread_mutex_lock(&p->mu);
    p->token = 0;
    pthread_mutex_unlock(&p->mu);
}

/* Stop and join the thread (at interpreter exit: it must not call into an
 * interpreter that is being torn down). */
static inline void uintr_preempt_stop(void)
{
    uintr_preempt_t *p = &uintr_preempt;
    pthread_mutex_lock(&p->mu);
    if (!p->started) {
        pthread_mutex_unlock(&p->mu);
        return;
    }
    p->stopping = 1;
    p->token = 0;
    p->watch = NULL;
    if (p->has_timer) {
        timer_delete(p->timer);
        p->has_timer = 0;
    }
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    pthread_mutex_lock(&p->mu);
    p->started = 0;
    pthread_mutex_unlock(&p->mu);
}

/* Deadlines through the pthread instead of the kernel timer (the fallback),
 * from the next start on: for its tests and for the benchmark's comparison. */
static inline void uintr_preempt_thread_only(int on)
{
    uintr_preempt_t *p = &uintr_preempt;
    pthread_mutex_lock(&p->mu);
    p->thread_only = on;
    pthread_mutex_unlock(&p->mu);
}

/* 1 if deadlines currently ride the kernel timer. */
static inline int uintr_preempt_uses_timer(void)
{
    return uintr_preempt.has_timer;
}

static inline void uintr_preempt_counters(uint64_t out[4])
{
    uintr_preempt_t *p = &uintr_preempt;
    pthread_mutex_lock(&p->mu);
    out[0] = p->fired;
    out[1] = p->refused;
    out[2] = p->last_fire_ns;
    out[3] = p->urgent_rings;
    pthread_mutex_unlock(&p->mu);
}

#endif
