/*
 * loopstats.h - what a loop's statistics() says about time: how long it ran,
 * how much of that it waited (idle), how many iterations it made, and a
 * histogram of wake latency (a call_soon_threadsafe post to the start of the
 * callbacks it queued).
 *
 * Cost. Everything is fixed-size and lives in the loop's Port; nothing here
 * allocates or takes a lock. With timing on, a loop iteration that may block
 * reads the clock twice (wait begins, wait ends); one that only polls reads
 * it never. Wake latency is sampled: one post at a time carries a stamp (the
 * first post to find no stamp in flight takes the clock and stores it), and
 * the loop, when the callbacks of that post start, reads the clock once more
 * and files the difference. So a busy loop samples about once per iteration
 * and an idle one every wakeup, at two clock reads a sample. With timing off
 * (UINTR_LOOP_TIMING=0 when the loop is made) none of the clock reads happen;
 * iterations are still counted (one plain add).
 *
 * Threads. The loop thread is the only writer of every field except `stamp`,
 * which posting threads set (0 -> t, compare-and-swap: one stamp in flight)
 * and the loop thread clears once it has filed the sample. statistics() may
 * run on any thread, so every field is an atomic read and written with
 * relaxed order: each value is a counter or a time that is exact on its own,
 * and a reader on another thread sees each one at most an iteration old.
 * Figures read together may come from neighbouring iterations; the Python
 * side keeps busy and idle time monotonic for such readers (metrics.pxi).
 *
 * Buckets: log2 of the latency in ns. Bucket 0 counts latencies below
 * 2^UINTR_LAT_SHIFT ns (1.024 us); bucket i >= 1 those in [2^(9+i), 2^(10+i))
 * ns; the last bucket everything from 2^(8+UINTR_LAT_BUCKETS) ns (4.3 s) up.
 */
#ifndef UINTR_LOOP_LOOPSTATS_H
#define UINTR_LOOP_LOOPSTATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "clock.h"

#define UINTR_LAT_BUCKETS 24
#define UINTR_LAT_SHIFT 10

#define UINTR_LS_RELAXED memory_order_relaxed

typedef struct {
    int timing;                    /* read the clock at all (fixed when made) */
    _Atomic uint64_t iterations;   /* loop iterations (each select / libuv check) */
    _Atomic uint64_t run_ns;       /* time in finished runs (run_forever calls) */
    _Atomic uint64_t run_start;    /* start of the current run; 0: not running */
    _Atomic uint64_t idle_ns;      /* time waited in finished waits */
    _Atomic uint64_t wait_start;   /* start of the current wait; 0: not waiting */
    _Atomic uint64_t spin_ns;      /* busy-poll spins, where the poller measures the rest */
    _Atomic uint64_t stamp;        /* the sampled post in flight; 0: none */
    _Atomic uint64_t lat_sum_ns;
    _Atomic uint64_t lat_max_ns;
    _Atomic uint64_t lat[UINTR_LAT_BUCKETS];
} uintr_loopstats_t;

/* A copy for statistics(): `now` is when it was taken. */
typedef struct {
    int timing;
    uint64_t now;
    uint64_t iterations;
    uint64_t run_ns;        /* finished runs plus the current one so far */
    uint64_t idle_ns;       /* finished waits plus the current one so far */
    uint64_t lat_sum_ns;
    uint64_t lat_max_ns;
    uint64_t lat[UINTR_LAT_BUCKETS];
} uintr_loopstats_snapshot_t;

static inline uint64_t uintr_ls_get(_Atomic uint64_t *x)
{
    return atomic_load_explicit(x, UINTR_LS_RELAXED);
}

static inline void uintr_ls_set(_Atomic uint64_t *x, uint64_t v)
{
    atomic_store_explicit(x, v, UINTR_LS_RELAXED);
}

/* Single writer: a load and a store, no locked instruction. */
static inline void uintr_ls_add(_Atomic uint64_t *x, uint64_t v)
{
    uintr_ls_set(x, uintr_ls_get(x) + v);
}

static inline void uintr_loopstats_init(uintr_loopstats_t *s, int timing)
{
    unsigned i;
    s->timing = timing;
    uintr_ls_set(&s->iterations, 0);
    uintr_ls_set(&s->run_ns, 0);
    uintr_ls_set(&s->run_start, 0);
    uintr_ls_set(&s->idle_ns, 0);
    uintr_ls_set(&s->wait_start, 0);
    uintr_ls_set(&s->spin_ns, 0);
    uintr_ls_set(&s->lat_sum_ns, 0);
    uintr_ls_set(&s->lat_max_ns, 0);
    for (i = 0; i < UINTR_LAT_BUCKETS; i++)
        uintr_ls_set(&s->lat[i], 0);
    atomic_store(&s->stamp, 0);
}

static inline unsigned uintr_lat_bucket(uint64_t ns)
{
    uint64_t v = ns >> UINTR_LAT_SHIFT;
    unsigned i = v ? 64u - (unsigned)__builtin_clzll(v) : 0u;
    return i < UINTR_LAT_BUCKETS ? i : UINTR_LAT_BUCKETS - 1;
}

/* The loop starts running (run_forever). */
static inline void uintr_loopstats_run_begin(uintr_loopstats_t *s)
{
    if (s->timing)
        uintr_ls_set(&s->run_start, uintr_monotonic_ns());
}

/* The loop stops running: the run's time joins run_ns (a wait still open,
 * which a run cannot end in, is closed too). */
static inline void uintr_loopstats_run_end(uintr_loopstats_t *s)
{
    uint64_t start = uintr_ls_get(&s->run_start), now, wait;
    if (!s->timing || start == 0)
        return;
    now = uintr_monotonic_ns();
    wait = uintr_ls_get(&s->wait_start);
    if (wait != 0) {
        uintr_ls_add(&s->idle_ns, now - wait);
        uintr_ls_set(&s->wait_start, 0);
    }
    uintr_ls_add(&s->run_ns, now - start);
    uintr_ls_set(&s->run_start, 0);
}

/* The loop may block from now on (before its busy-poll spin, if any: a
 * spinning loop waits for work as a sleeping one does). */
static inline void uintr_loopstats_wait_begin(uintr_loopstats_t *s)
{
    if (s->timing && uintr_ls_get(&s->run_start) != 0)
        uintr_ls_set(&s->wait_start, uintr_monotonic_ns());
}

/* An iteration's poll returned: count it, and close the wait it began with
 * (if it waited) at the clock's time now. */
static inline void uintr_loopstats_iteration(uintr_loopstats_t *s)
{
    uint64_t wait;
    uintr_ls_add(&s->iterations, 1);
    wait = uintr_ls_get(&s->wait_start);
    if (wait != 0) {
        uintr_ls_add(&s->idle_ns, uintr_monotonic_ns() - wait);
        uintr_ls_set(&s->wait_start, 0);
    }
}

/* Where the poller measures its own wait (libuv, which knows when epoll
 * returned, before the I/O callbacks it then runs): a busy-poll spin before
 * it is ours to add. Call after the spin, in a wait. */
static inline void uintr_loopstats_spun(uintr_loopstats_t *s)
{
    uint64_t wait = uintr_ls_get(&s->wait_start);
    if (wait != 0)
        uintr_ls_add(&s->spin_ns, uintr_monotonic_ns() - wait);
}

/* An iteration where the poller measured the wait: provider_idle is its
 * running total of time blocked, to which our spins add. */
static inline void uintr_loopstats_iteration_measured(uintr_loopstats_t *s,
                                                      uint64_t provider_idle)
{
    uint64_t idle;
    uintr_ls_add(&s->iterations, 1);
    if (uintr_ls_get(&s->wait_start) != 0) {
        idle = provider_idle + uintr_ls_get(&s->spin_ns);
        if (idle > uintr_ls_get(&s->idle_ns))
            uintr_ls_set(&s->idle_ns, idle);
        uintr_ls_set(&s->wait_start, 0);
    }
}

/* A poster: stamp this post if no sampled post is in flight. 1 if it did
 * (the caller then arranges for uintr_loopstats_sample_end to run just
 * before the post's callbacks start). Any thread. */
static inline int uintr_loopstats_stamp(uintr_loopstats_t *s)
{
    uint64_t expected = 0;
    if (!s->timing || atomic_load_explicit(&s->stamp, UINTR_LS_RELAXED) != 0)
        return 0;
    return atomic_compare_exchange_strong(&s->stamp, &expected, uintr_monotonic_ns());
}

/* When the sampled post in flight was made; 0: none (the adaptive wakeup
 * times a block by it, busypoll.h). */
static inline uint64_t uintr_loopstats_posted_at(uintr_loopstats_t *s)
{
    return atomic_load_explicit(&s->stamp, UINTR_LS_RELAXED);
}

/* The loop, as the stamped post's callbacks start: file the latency and
 * free the stamp for the next post. Loop thread only. */
static inline void uintr_loopstats_sample_end(uintr_loopstats_t *s)
{
    uint64_t t = atomic_load(&s->stamp), now, d;
    if (t == 0)
        return;
    now = uintr_monotonic_ns();
    d = now > t ? now - t : 0;
    uintr_ls_add(&s->lat[uintr_lat_bucket(d)], 1);
    uintr_ls_add(&s->lat_sum_ns, d);
    if (d > uintr_ls_get(&s->lat_max_ns))
        uintr_ls_set(&s->lat_max_ns, d);
    atomic_store(&s->stamp, 0);        /* after the sample: the next may start */
}

/* Any thread. A run or wait still open counts up to now. */
static inline void uintr_loopstats_read(uintr_loopstats_t *s, uintr_loopstats_snapshot_t *out)
{
    unsigned i;
    uint64_t start, wait;
    out->timing = s->timing;
    out->now = s->timing ? uintr_monotonic_ns() : 0;
    out->iterations = uintr_ls_get(&s->iterations);
    out->run_ns = uintr_ls_get(&s->run_ns);
    out->idle_ns = uintr_ls_get(&s->idle_ns);
    start = uintr_ls_get(&s->run_start);
    wait = uintr_ls_get(&s->wait_start);
    if (start != 0 && out->now > start)
        out->run_ns += out->now - start;
    if (wait != 0 && out->now > wait)
        out->idle_ns += out->now - wait;
    out->lat_sum_ns = uintr_ls_get(&s->lat_sum_ns);
    out->lat_max_ns = uintr_ls_get(&s->lat_max_ns);
    for (i = 0; i < UINTR_LAT_BUCKETS; i++)
        out->lat[i] = uintr_ls_get(&s->lat[i]);
}

#endif
