/*
 * jobqueue.h - the default executor's job queue: idle workers that spin a
 * while before they sleep, and a GIL hand-off in which neither thread
 * sleeps (docs/design/adaptive-wakeup.md, "The GIL baton").
 *
 * Why
 * ---
 * A thread round trip (asyncio.to_thread) hands the GIL over twice: to the
 * worker that runs the job, and back to the loop that takes the answer.
 * CPython's GIL puts a thread that wants it while another holds it to sleep
 * on a condition variable, and the holder wakes it when it lets go. On a
 * virtual machine a sleeping thread often leaves its vCPU halted, and the
 * wake-up is an inter-processor interrupt into a halted vCPU: tens of
 * microseconds, more than the whole round trip's Python work. Spinning
 * instead of sleeping on the job queue alone does not help: the worker that
 * sees its job at once then sleeps on the GIL, which the loop holds until
 * it waits again. Each thread has to wait, spinning, until the other has
 * let go of the GIL, and only then ask for it:
 *
 *   worker  caught a job in its idle spin: spin until the loop is parked
 *           (it waits for posts without the GIL: busypoll.h's `parked`),
 *           then take the GIL. On the loop's own CPU the spin gives the
 *           CPU away at each step, or the loop could not park.
 *   worker  answered: count itself in `handing` before the post, and count
 *           itself out once it has let go of the GIL (its next get()).
 *   loop    saw a post: spin until `handing` is 0, then take the GIL.
 *
 * Every wait is bounded (UINTR_HANDOFF_NS); after it the thread asks for
 * the GIL as usual and may sleep on it. And both waits are only for a lone
 * round trip (no other executor job in flight, busypoll.h's `inflight`):
 * with several jobs in flight the loop is busy, answers come and go faster
 * than it could wait for them, and a waiting thread would only take a CPU
 * from the one holding the GIL. Nothing here is synchronisation:
 * the flags are hints read relaxed, the job itself is handed over under the
 * GIL (the queue's items live in a Python deque), and the answer through
 * the UPID, whose protocol is unchanged. A wrong hint costs at most one
 * bounded wait.
 *
 * The idle spin follows Go's scheduler and busypoll.h's policy: at most one
 * worker spins at a time, only while jobs have been coming (one was queued
 * within UINTR_ADAPT_HORIZON_NS) and at most one is in flight (the loop is
 * taking the last answer and may already have sent the next job; with more
 * in flight the loop is busy and the CPU is better left to it), and for a
 * window learnt from how long
 * recent waits for a job took (uintr_jobq_learn), at most
 * UINTR_JOBQ_SPIN_NS; then it sleeps on the semaphore. Jobs that come
 * further apart than that close the window, so a pool that serves sparse
 * jobs never spins. A sleeper cannot miss a job: it counts itself in
 * `sleepers` and then reads `count`, and put() adds to `count` and then
 * reads `sleepers`, both sequentially consistent, so at least one of the
 * two sees the other (the semaphore keeps a post made before the wait).
 */
#ifndef UINTR_LOOP_JOBQUEUE_H
#define UINTR_LOOP_JOBQUEUE_H

#include <errno.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "busypoll.h"
#include "clock.h"

#define UINTR_JOBQ_SPIN_NS 100000ull     /* longest idle spin of a worker */

typedef struct {
    _Atomic long count;         /* jobs queued (exact under the GIL) */
    _Atomic int sleepers;       /* workers waiting on sem */
    _Atomic int spinners;       /* workers spinning: 0 or 1 */
    _Atomic uint64_t last_put;  /* when a job was last queued */
    _Atomic uint64_t window_ns; /* the next idle spin's budget (0: none) */
    sem_t sem;
} uintr_jobq_t;

/* The `handing` count this thread is in, if any (it answered a job). */
static __thread _Atomic int *uintr_jobq_owed;

static inline int uintr_jobq_init(uintr_jobq_t *q)
{
    atomic_store(&q->count, 0);
    atomic_store(&q->sleepers, 0);
    atomic_store(&q->spinners, 0);
    atomic_store(&q->last_put, 0);
    atomic_store(&q->window_ns, 0);
    return sem_init(&q->sem, 0, 0);
}

static inline void uintr_jobq_destroy(uintr_jobq_t *q)
{
    sem_destroy(&q->sem);
}

/* A job was appended (the GIL is held). */
static inline void uintr_jobq_put(uintr_jobq_t *q)
{
    atomic_fetch_add(&q->count, 1);
    atomic_store_explicit(&q->last_put, uintr_monotonic_ns(), memory_order_relaxed);
    if (atomic_load(&q->sleepers) > 0)
        sem_post(&q->sem);
}

/* A job was taken (the GIL is held). */
static inline void uintr_jobq_taken(uintr_jobq_t *q)
{
    atomic_fetch_sub(&q->count, 1);
}

/* This thread no longer holds the GIL, or will not post after all. */
static inline void uintr_jobq_handed(void)
{
    if (uintr_jobq_owed != NULL) {
        atomic_fetch_sub_explicit(uintr_jobq_owed, 1, memory_order_relaxed);
        uintr_jobq_owed = NULL;
    }
}

/* Does this thread owe the loop a hand-off (it answered a job and has not
 * let go of the GIL yet)? Its post does not yield the GIL (busypoll.h, "The
 * yield"): its next get() lets go, and the loop waits for that. */
static inline int uintr_jobq_owing(void)
{
    return uintr_jobq_owed != NULL;
}

/* This thread is about to post an answer that loop `a` will take: the loop
 * waits for it to let go of the GIL (uintr_jobq_handed). */
static inline void uintr_jobq_owe(uintr_adapt_t *a)
{
#ifndef Py_GIL_DISABLED         /* without a GIL there is nothing to hand over */
    uintr_jobq_handed();
    atomic_fetch_add_explicit(&a->handing, 1, memory_order_relaxed);
    uintr_jobq_owed = &a->handing;
#else
    (void)a;
#endif
}

/* Spin up to budget_ns for a job; 1 if one came. */
static inline int uintr_jobq_spin(uintr_jobq_t *q, uint64_t budget_ns)
{
    uint64_t start = uintr_monotonic_ns(), now = start, before;
    uint64_t next_yield = start + UINTR_SPIN_CHECK_NS;
    unsigned i;
    for (;;) {
        for (i = 0; i < 16; i++) {
            if (atomic_load_explicit(&q->count, memory_order_relaxed) > 0)
                return 1;
            __builtin_ia32_pause();
        }
        before = now;
        now = uintr_monotonic_ns();
        if (now - before > UINTR_SPIN_PREEMPTED_NS || now - start >= budget_ns)
            return 0;
        if (now >= next_yield) {
            sched_yield();
            before = now;
            now = uintr_monotonic_ns();
            if (now - before > UINTR_SPIN_PREEMPTED_NS)
                return 0;          /* another thread wanted this CPU */
            next_yield = now + UINTR_SPIN_CHECK_NS;
        }
    }
}

/* The idle spin's window, learnt as busypoll.h's is (KVM's halt polling):
 * a wait that a spin did not end but a job ended within the longest window
 * grows it; a spin that caught its job early halves it; a wait longer than
 * the longest window closes it. */
static inline void uintr_jobq_learn(uintr_jobq_t *q, uint64_t waited, int caught)
{
    uint64_t w = atomic_load_explicit(&q->window_ns, memory_order_relaxed);
    if (caught) {
        if (4 * waited < w && w > UINTR_ADAPT_START_NS)
            w /= 2;
    } else if (waited <= UINTR_JOBQ_SPIN_NS) {
        w = w ? 2 * w : UINTR_ADAPT_START_NS;
        if (w > UINTR_JOBQ_SPIN_NS)
            w = UINTR_JOBQ_SPIN_NS;
    } else {
        w = 0;
    }
    atomic_store_explicit(&q->window_ns, w, memory_order_relaxed);
}

/* Wait, without the GIL, until a job may be queued: 1, or 0 when the
 * deadline (CLOCK_MONOTONIC ns; 0: none) passes first. `a` is the loop
 * the jobs come from (NULL: none): its `parked` is waited for. */
static inline int uintr_jobq_wait(uintr_jobq_t *q, uintr_adapt_t *a, uint64_t deadline)
{
    struct timespec ts;
    int expected = 0, rc, caught = 0;
    uint64_t start, window;
    uintr_jobq_handed();
    if (atomic_load(&q->count) > 0) {
        caught = 1;         /* awake, like a spinner: the loop may not have parked yet */
        goto found;
    }
    start = uintr_monotonic_ns();
    window = atomic_load_explicit(&q->window_ns, memory_order_relaxed);
    if (a != NULL && a->cpus >= 2 && deadline == 0 && window > 0 &&
        atomic_load_explicit(&a->inflight, memory_order_relaxed) <= 1 &&
        start - atomic_load_explicit(&q->last_put, memory_order_relaxed) < UINTR_ADAPT_HORIZON_NS &&
        atomic_compare_exchange_strong(&q->spinners, &expected, 1)) {
        rc = uintr_jobq_spin(q, window);
        atomic_store(&q->spinners, 0);
        if (rc) {
            uintr_jobq_learn(q, uintr_monotonic_ns() - start, 1);
            caught = 1;
            goto found;
        }
    }
    atomic_fetch_add(&q->sleepers, 1);
    while (atomic_load(&q->count) <= 0) {
        if (deadline == 0) {
            rc = sem_wait(&q->sem);
        } else {
            ts.tv_sec = (time_t)(deadline / 1000000000u);
            ts.tv_nsec = (long)(deadline % 1000000000u);
            rc = sem_clockwait(&q->sem, CLOCK_MONOTONIC, &ts);
            if (rc < 0 && errno == ETIMEDOUT) {
                atomic_fetch_sub(&q->sleepers, 1);
                return 0;
            }
        }
        (void)rc;       /* EINTR, or another worker took the job: look again */
    }
    atomic_fetch_sub(&q->sleepers, 1);
    if (a != NULL && deadline == 0)
        uintr_jobq_learn(q, uintr_monotonic_ns() - start, 0);
found:
#ifndef Py_GIL_DISABLED
    /* Only a worker that stayed awake (it spun, or the job was already
     * queued when it came back) for a lone round trip waits for the loop to
     * park: a worker woken from its sleep, or one of several jobs in
     * flight, meets a loop that is busy, and a wait would take its CPU. */
    if (a != NULL && caught &&
        atomic_load_explicit(&a->inflight, memory_order_relaxed) <= 1)
        uintr_adapt_spin_for(&a->parked, 1, uintr_adapt_on_spin_cpu(a));
#else
    (void)caught;
#endif
    return 1;
}

#endif
