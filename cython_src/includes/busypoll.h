/*
 * busypoll.h - watch a UPID's PIR for a while before blocking, and decide
 * for how long (the adaptive wakeup; docs/design/adaptive-wakeup.md).
 *
 * The spin
 * --------
 * A post that lands during the spin costs the sender no syscall (SN is still
 * set, so it only sets the PIR bit) and the receiver no sleep and wake-up:
 * Linux's busy_poll. It runs without the GIL, so the thread that is about to
 * post can run Python meanwhile.
 *
 * The loads are relaxed: the spin only decides whether to block; the
 * receiver then takes PIR with the seq_cst exchange in recognise, which is
 * what orders the sender's writes before the receiver's reads. A post that
 * lands after the spin gave up is the ordinary case that restore() (clear
 * SN, then load PIR) already handles, so the spin can only make a wakeup
 * cheaper, never lose one.
 *
 * Two things end a spin early besides a post, because a spinning loop is a
 * loop that does not look at its file descriptors and holds a CPU:
 *  - every UINTR_SPIN_CHECK_NS it asks the loop's epoll fd, with poll() and
 *    a zero timeout, whether any event is ready (an epoll fd is readable
 *    when its ready list is not empty; nothing is consumed): a socket that
 *    becomes readable ends the spin, so I/O waits at most that long behind
 *    it (NAPI's busy poll watches the device queue it serves for the same
 *    reason);
 *  - the same syscall, followed by sched_yield(), gives the CPU to a thread
 *    the kernel woke onto this CPU. On a 2-core machine the worker we just
 *    woke (a futex wake is often placed on the waker's CPU) would otherwise
 *    wait behind our spin for the whole budget, the spin's worst case: it
 *    delays the very post it waits for. Go's scheduler does the same
 *    (procyield, then osyield) before it parks a spinning thread. And Go
 *    spins only while some CPU is idle: here, a sched_yield() that took
 *    long (another thread ran) or a step of the spin that took long (we
 *    were preempted) says the CPU is wanted, and the spin ends at once and
 *    closes the window (below): on a busy machine the loop blocks, as it
 *    would without the policy, instead of taking CPU time from the threads
 *    that post to it.
 *
 * The policy (uintr_adapt_*)
 * --------------------------
 * A spin is never free: it burns a CPU for its whole length when nothing
 * comes. So the loop spins only when a post is expected soon, and for about
 * as long as posts have recently taken to come. The rule is KVM's halt
 * polling (virt/kvm/kvm_main.c, halt_poll_ns grow/shrink), which solves the
 * same problem for a vCPU about to halt, with two inputs added from the
 * loop's own knowledge, as NAPI's adaptive interrupt moderation uses the
 * recent packet rate:
 *
 *   expected  a thread round trip is in flight (an executor job submitted
 *             through the loop and not yet answered: `inflight`), or a post
 *             was taken within the last UINTR_ADAPT_HORIZON_NS (a thread
 *             answered recently, and a thread that answers in a loop, as
 *             run_coroutine_threadsafe clients and dedicated workers do,
 *             answers again). Nothing expected: block at once. An idle
 *             loop therefore never spins, whatever its history.
 *   window    the spin budget, learnt from how long blocks took to end in a
 *             post: 0 at first; a block that ended in a post within
 *             UINTR_ADAPT_MAX_NS (a spin of that length would have caught
 *             it) grows it (0 -> START, then doubling up to MAX); a block
 *             that lasted longer than MAX sets it back to 0 (sparse posts:
 *             spinning only wastes); a spin that caught its post in under a
 *             quarter of the window halves it (the window follows the gap
 *             down), but not below the slowest recent post with a quarter
 *             to spare (`peak`: the longest block within MAX that ended in
 *             a post, falling by 1/UINTR_ADAPT_PEAK_DECAY at each post). A
 *             round trip's answers often come at two speeds: anyio's worker
 *             answers a few microseconds into the spin, or some 15 later
 *             (most likely when it slept and the host had to wake its
 *             vCPU). Halving on each quick catch left the window under the
 *             slow answers, so one round trip in four to six was missed and
 *             cost a blocked wake on top; the peak
 *             keeps them caught, and fades once they stop. A spin that
 *             catches its post early costs only what it spun, so a window
 *             longer than the typical post is paid for only by a post that
 *             does not come. A block ended by I/O or a timer, with no post,
 *             says nothing about posts: the window stays, unless the block
 *             was long (then 0). A spin that found the CPU wanted closes it.
 *
 * So a paced sender whose gaps exceed MAX never makes the loop spin from
 * the start of its block (the window stays 0), a round-trip workload spins
 * for about 1-2x its gap, and a burst of spins that miss is bounded: one
 * miss of at most MAX resets the window. With one usable CPU the loop never
 * spins (the poster could only run once the spin ends). The explicit
 * busy_poll=N replaces the policy with a fixed budget.
 *
 * The alarm (uintr_adapt_alarm)
 * -----------------------------
 * A sender that posts at a steady pace longer than MAX (a thread that
 * sleeps and then posts, a sensor, a tick) makes every post a blocked wake:
 * an eventfd write and the loop's wake from a sleep, on the critical path.
 * Yet when the gaps are regular the post's time is known in advance. The
 * loop then sleeps until a little before the post is due, on a timerfd
 * (exact: no timer slack) beside its epoll fd, sets SN and spins through the
 * gap's jitter: the post lands in the spin, with no syscall on either side.
 * The timer's wake costs the loop what the eventfd's did, but before the
 * post, off its path; the spin through the jitter is what the alarm costs.
 * The gap is estimated the way TCP estimates a round-trip time (Jacobson:
 * a smoothed mean and a smoothed mean deviation of the blocks that ended in
 * a post, RFC 6298). The alarm is set for mean - deviation - MARGIN - LATE,
 * where LATE is how late the timer's wake-ups have come (smoothed the same
 * way, from every ring, also one a post beat: on a virtual machine whose
 * idle vCPU halts, some 20 us), and the
 * spin lasts until mean + 2 (deviation + MARGIN) + WAKE. One deviation before the
 * mean, not TCP's four or the two of a normal spread: a sleeping thread's
 * pace is not one spread but runs of a few microseconds' width whose level
 * shifts now and then, so the mean deviation is mostly the shifts; one of
 * it catches the runs, and what falls outside is one blocked wake, no worse
 * than without the alarm. Twice that after the mean: the spin before the
 * post is paid on every post, the spin past the mean only by a post that
 * comes late (or not at all), which it turns from a blocked wake, the
 * paced wake's tail, into a caught one. WAKE on top: what a blocked wake
 * costs this loop, learnt from its own (uintr_adapt_wake_cost). A post
 * later than the jitter is dear when the sender runs on the other CPU (the
 * hypervisor wakes the loop's halted vCPU: 25 to 50 us) and cheap when it
 * runs on the loop's (5 to 10 us), and the paced wake's tail is those dear
 * ones. Spinning as long as blocking would cost is spin-then-block's rule
 * (Karlin et al., SOSP 1991): never more than twice the better choice's
 * cost, and nothing when the post is on time.
 *
 * Two departures from RFC 6298, both because one outlier is common here
 * and a wrong estimate costs the alarm, not a retransmission. The error fed
 * to the estimate is clipped at two deviations and the margin: one post
 * 100 us late (a vCPU the host took away) would otherwise widen the
 * deviation for a dozen posts and move the mean past the next post; a real
 * change of pace still shows, as misses that disarm the alarm (below), or
 * as a clip that grows by a quarter at every post. The first deviation is
 * an eighth of the first gap, not half of it. The timer's lateness is
 * clipped the same way, at twice its estimate.
 *
 *   armed     at least UINTR_ALARM_SAMPLES blocks in a row ended in a post,
 *             the mean is between MAX and UINTR_ALARM_GAP_MAX_NS (shorter
 *             gaps are the window's; longer ones are rare enough that a
 *             blocked wake costs little), the deviation is at most a quarter
 *             of the mean (UINTR_ALARM_SPREAD: a wider spread is no pace to
 *             follow), and the loop's own timeout is a millisecond longer
 *             than the alarm's span. The spin's reach each side of the mean
 *             (deviation + MARGIN) is capped at an eighth of the gap, so the
 *             spin before the post costs at most an eighth of a CPU. A
 *             capped spin catches the posts near the mean, and that settles
 *             a Python sender: a post the spin catches yields (below) and
 *             its thread goes straight back to its own sleep, while one it
 *             misses leaves the thread asleep on whatever the callback wakes
 *             it with, a futex wake whose 5 to 40 us end up in the next gap.
 *             A sender the loop does not catch thus looks too irregular to
 *             catch; one it catches stays regular (refusing a loose pace
 *             outright kept the paced wake's sender uncaught for good in
 *             a third of its blocks);
 *   disarmed  by a block that ended without a post, or UINTR_ALARM_MISSES
 *             alarms in a row whose spin saw none (a single miss's block
 *             goes on as an ordinary one, and its late post is learnt: a
 *             miss is the expected outlier, two in a row a pace that
 *             moved). The estimate then starts again from the next post;
 *             after misses UINTR_ALARM_RESAMPLES posts in a row re-arm it
 *             (the sender is still posting, and each post until then is a
 *             blocked wake), after a block with no post UINTR_ALARM_SAMPLES.
 *
 * Anything ready on the epoll fd (I/O, a post that came early, whose
 * eventfd write SN let through) ends the sleep at once, as the block it
 * replaces would have ended. In the model the alarm is a wake-up with no
 * eventfd behind it (step A), after which the loop sets SN and goes on as
 * after any wake-up.
 *
 * The yield (uintr_adapt_poster_yields, uintr_adapt_yield_wait)
 * --------------------------------------------------------------
 * A Python thread posts with the GIL held and keeps it until it next blocks.
 * A run_coroutine_threadsafe client goes on into Future.result() and lets go
 * of the GIL only in its condition's wait, 2 to 3 us of Python later, while
 * the loop, which saw the post at once, waits for the GIL; then the client
 * sleeps, and the loop's answer has to wake it: a futex wake into a vCPU
 * that may have halted, the larger half of the round trip. So when the loop
 * is spinning for a post, the thread that posts lets go of the GIL inside
 * call_soon_threadsafe (stock asyncio's does too, in its self-pipe write)
 * and waits, spinning without it, until the loop has run what was posted and
 * waits again (it has woken since the post, `wakes`, and `parked` is 1) with
 * the GIL free; then it takes the GIL back. The loop, watching the GIL's
 * word, takes it at once. A client whose coroutine ran to its end in that
 * iteration finds its answer ready when it comes back, and never sleeps.
 *
 * Only when the loop's spin (the window's, busy_poll's or the alarm's) is at
 * least UINTR_YIELD_SPIN_NS old as the post comes.
 *
 * The poster may run on the very CPU the loop spins on: a spinning loop
 * makes the machine look busy, and the kernel's wake-up then stops looking
 * for an idle CPU (SIS_UTIL) and puts a waking thread where it slept. In the
 * paced wake three posts in four came from the loop's own CPU. Such a poster
 * runs only because the loop's spin gave way to it, or was preempted; a wait
 * that pauses would keep the loop off its CPU for the whole bound. So a
 * poster on the CPU the spin began on (`spin_cpu`) gives the CPU away
 * (sched_yield) at each step of its waits. That is what makes the yield pay
 * in the alarm's spin too: with waits that only pause, the yields there made
 * the paced wake 1.18x slower at the median. For the same reason the poster
 * waits for the loop's wake count to move, not for `parked` to go 0: sharing
 * a CPU, the loop wakes and waits again while the poster is not running. The
 * loop's side of it: a Python post notes its CPU (`post_cpu`), and a loop on
 * that CPU gives way at every step of its spin and of its wait for the
 * poster's GIL (uintr_busy_poll, uintr_adapt_await_handoff).
 *
 * A thread that floods takes the GIL back within a microsecond of the loop's
 * wait and posts again at once, into a younger spin: it keeps the GIL, and
 * the loop gets the batch, as before (and only the post that found the
 * mailbox empty posts at all). A thread with a few microseconds of work
 * between posts yields on each, and the loop runs each post in an iteration
 * of its own: in the measurement (docs/design/adaptive-wakeup.md) that cost
 * such a producer a few percent of its rate. A JobQueue worker's answer does
 * not yield: the GIL baton (jobqueue.h) already has the loop wait for the
 * worker's next get(), which lets go of the GIL; a yield on top would have
 * each wait for the other. Each wait is bounded by UINTR_HANDOFF_NS; a loop
 * that does not come back by then leaves the thread to take the GIL as usual
 * (and perhaps sleep on it). A build without a GIL never yields. Nothing
 * here is synchronisation: `spin_since`, `spin_cpu`, `post_cpu`, `wakes` and
 * `parked` are hints read relaxed, and the post went through the UPID before
 * the yield; a wrong hint costs one bounded wait.
 *
 * Only the loop's thread touches the policy, except `inflight`, which the
 * worker that answers decrements, `post_cpu`, which posters write, and
 * `spin_since`, `spin_cpu` and `wakes`, which posters read (relaxed: hints,
 * not synchronisation; the protocol never depends on them).
 */
#ifndef UINTR_LOOP_BUSYPOLL_H
#define UINTR_LOOP_BUSYPOLL_H

#include "clock.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <sys/resource.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "gilword.h"
#include "upid.h"

#define UINTR_SPIN_CHECK_NS 4000ull         /* epoll/yield check period */
#define UINTR_SPIN_PREEMPTED_NS 20000ull    /* a step this long: the CPU was taken */
#define UINTR_ADAPT_START_NS 8000ull        /* first window */
#define UINTR_ADAPT_MAX_NS 64000ull         /* longest window */
#define UINTR_ADAPT_PEAK_DECAY 64           /* the peak falls 1/DECAY a post */
#define UINTR_ADAPT_HORIZON_NS 2000000ull   /* "a post came recently" */
#define UINTR_BUSY_POLL_ADAPTIVE UINT64_MAX /* busy_poll="auto" */
#define UINTR_HANDOFF_NS 30000ull           /* longest wait for a GIL hand-off */
#define UINTR_ALARM_GAP_MAX_NS 2000000ull   /* longest gap the loop sets an alarm for */
#define UINTR_ALARM_SHARE 8                 /* its spin is at most 1/SHARE of the gap */
#define UINTR_ALARM_SPREAD 4                /* a deviation over 1/SPREAD of the gap: no pace */
#define UINTR_ALARM_LATE_NS 30000ull        /* a timer's wake-up lateness, until measured */
#define UINTR_ALARM_MARGIN_NS 5000ull       /* rung this much before the spin is due */
#define UINTR_WAKE_COST_NS 10000ull         /* a blocked wake-up's cost, until measured */
#define UINTR_ALARM_SAMPLES 4               /* posts in a row before the first alarm */
#define UINTR_ALARM_MISSES 2                /* missed alarms in a row that disarm it */
#define UINTR_ALARM_RESAMPLES 2             /* posts in a row that re-arm an alarm misses disarmed */
#define UINTR_YIELD_SPIN_NS 2000ull         /* a spin this old when a post comes: the poster yields */

typedef struct {
    uint64_t polls;   /* spins started (the loop was about to block) */
    uint64_t hits;    /* spins that saw a post and so did not block */
    uint64_t spin_ns; /* time spent spinning */
    uint64_t alarms;  /* of the spins, those an alarm started (uintr_adapt_alarm) */
    uint64_t yields;  /* posts whose thread let the spinning loop have the GIL
                         (uintr_adapt_should_yield; posters write it, under the GIL) */
} uintr_poll_stats_t;

typedef struct {
    uint64_t window_ns;    /* the next spin's budget; 0: block at once */
    uint64_t peak_ns;      /* the slowest recent post within MAX (decaying) */
    uint64_t block_start;  /* when the current block began; 0: none */
    uint64_t last_post;    /* when a post was last taken */
    int hit;               /* the current block's spin saw a post */
    int cpus;              /* CPUs this process may run on */
    _Atomic long inflight; /* executor round trips not yet answered */
    _Atomic int parked;    /* the loop waits for posts, without the GIL */
    _Atomic unsigned wakes; /* times `parked` went from 1 to 0 */
    _Atomic uint64_t spin_since; /* when the loop's current spin began; 0: none
                                    (read by posters: uintr_adapt_should_yield) */
    _Atomic int spin_cpu;  /* the CPU that spin runs on (a yielding poster
                              on the same one gives it the CPU) */
    _Atomic int post_cpu;  /* the CPU of the last post from a Python thread
                              (a loop on the same one waiting for that
                              thread's GIL gives it the CPU) */
    _Atomic int handing;   /* workers that posted and are about to let go
                              of the GIL (jobqueue.h) */
    const int *gil;        /* the interpreter's "GIL held" word (gilword.h);
                              NULL: none to watch */
    unsigned gil_skip;     /* GIL waits still to leave out (the back-off) */
    unsigned gil_backoff;  /* how many to leave out after the next miss */
    uint64_t gap_ns;       /* the alarm: smoothed block-to-post time */
    uint64_t gap_dev_ns;   /* ... and its smoothed mean deviation */
    unsigned gap_samples;  /* blocks in a row that ended in a post */
    unsigned arm_after;    /* ... that arm the alarm (UINTR_ALARM_SAMPLES,
                              or UINTR_ALARM_RESAMPLES after misses) */
    unsigned alarm_misses; /* alarms in a row whose spin saw no post */
    uint64_t alarm_late_ns; /* smoothed lateness of the alarm's wake-ups */
    uint64_t wake_ns;      /* a blocked wake-up's cost: a post to its loop awake */
    int alarm_ok;          /* the alarm may ring: its sleep restores only this
                              block, which is all a software port needs */
    int alarm_fd;          /* the alarm's timerfd, made at its first use; -1: none */
} uintr_adapt_t;

/* Is any event ready on epoll fd `epfd`? (-1: no fd to ask.) */
static inline int uintr_epoll_ready(int epfd)
{
    struct pollfd p;
    if (epfd < 0)
        return 0;
    p.fd = epfd;
    p.events = POLLIN;
    p.revents = 0;
    return poll(&p, 1, 0) > 0;
}

/* How many times the kernel has switched this thread out while it was
 * runnable (another thread took its CPU); -1 if the kernel will not say. */
static inline long uintr_thread_preemptions(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_THREAD, &ru) != 0)
        return -1;
    return ru.ru_nivcsw;
}

/* A clock step of the spin took longer than UINTR_SPIN_PREEMPTED_NS: did
 * another thread run on this CPU meanwhile (the CPU is wanted), or was the
 * CPU itself away (a virtual CPU the host did not run, an interrupt), which
 * says nothing about this machine's threads? `base` is the count at the
 * spin's start; without one, assume the CPU is wanted. */
static inline int uintr_cpu_wanted(long base)
{
    long now;
    if (base < 0)
        return 1;
    now = uintr_thread_preemptions();
    return now < 0 || now != base;
}

/* Spin up to budget_ns. 1 if PIR became non-zero; 0 if the budget is spent
 * or an event became ready on epfd; with give_way, -1 if another thread
 * wanted this CPU (the spin gave way to it, or was preempted: a clock step
 * longer than UINTR_SPIN_PREEMPTED_NS during which the kernel ran another
 * thread here). An explicit busy_poll spins its whole budget (yielding, but
 * not giving up).
 *
 * Only a switch the kernel counts ends the spin: on a virtual machine a
 * long step is just as often the host taking the vCPU away, and treating
 * that as "the CPU is wanted" closed the window on every such hiccup and
 * cost the next few round trips their spin. The count is read once, when
 * the spin begins to check (after its first UINTR_SPIN_CHECK_NS, so a
 * post that comes at once costs no syscall), and again only after a long
 * step.
 *
 * With shared (the thread expected to post runs on this CPU: "The yield",
 * below), the spin checks and gives way at every step instead of every
 * UINTR_SPIN_CHECK_NS: that thread can post only while the spin lets it
 * run. */
static inline int uintr_busy_poll(uintr_block_t *b, uint64_t budget_ns, int epfd,
                                  int give_way, int shared, uintr_poll_stats_t *st)
{
    uint64_t check_ns = shared ? 0 : UINTR_SPIN_CHECK_NS;
    uint64_t start = uintr_monotonic_ns(), now = start, before;
    uint64_t deadline = start + budget_ns, next_check = start + check_ns;
    long base = -1;
    unsigned i;
    int rc = 0;
    st->polls++;
    for (;;) {
        for (i = 0; i < 16; i++) {
            /* model step B */
            if (atomic_load_explicit(&b->upid.pir, memory_order_relaxed) != 0) {
                rc = 1;
                break;
            }
            __builtin_ia32_pause();
        }
        before = now;
        now = uintr_monotonic_ns();
        if (rc)
            break;
        if (give_way && now - before > UINTR_SPIN_PREEMPTED_NS && uintr_cpu_wanted(base)) {
            rc = -1;
            break;
        }
        if (now >= deadline)
            break;
        if (now >= next_check) {
            if (uintr_epoll_ready(epfd))
                break;
            if (give_way && base < 0)
                base = uintr_thread_preemptions();
            before = uintr_monotonic_ns();
            sched_yield();
            now = uintr_monotonic_ns();
            if (atomic_load_explicit(&b->upid.pir, memory_order_relaxed) != 0) {
                rc = 1;         /* model step B: posted by the thread we gave way to */
                break;
            }
            if (give_way && now - before > UINTR_SPIN_PREEMPTED_NS && uintr_cpu_wanted(base)) {
                rc = -1;
                break;
            }
            next_check = now + check_ns;
        }
    }
    st->hits += rc == 1;
    st->spin_ns += now - start;
    return rc;
}

static inline void uintr_adapt_init(uintr_adapt_t *a, int cpus, const int *gil)
{
    a->window_ns = 0;
    a->peak_ns = 0;
    a->block_start = 0;
    a->last_post = 0;
    a->hit = 0;
    a->cpus = cpus;
    atomic_store_explicit(&a->inflight, 0, memory_order_relaxed);
    atomic_store_explicit(&a->parked, 0, memory_order_relaxed);
    atomic_store_explicit(&a->wakes, 0, memory_order_relaxed);
    atomic_store_explicit(&a->handing, 0, memory_order_relaxed);
    atomic_store_explicit(&a->spin_since, 0, memory_order_relaxed);
    atomic_store_explicit(&a->spin_cpu, -1, memory_order_relaxed);
    atomic_store_explicit(&a->post_cpu, -1, memory_order_relaxed);
    a->gil = gil;
    a->gil_skip = 0;
    a->gil_backoff = 0;
    a->gap_ns = 0;
    a->gap_dev_ns = 0;
    a->gap_samples = 0;
    a->arm_after = UINTR_ALARM_SAMPLES;
    a->alarm_misses = 0;
    a->alarm_late_ns = UINTR_ALARM_LATE_NS;
    a->wake_ns = UINTR_WAKE_COST_NS;
    a->alarm_ok = 1;
    a->alarm_fd = -1;
}

/* Let go of the alarm's timerfd (the port closes). */
static inline void uintr_adapt_close(uintr_adapt_t *a)
{
    if (a->alarm_fd >= 0) {
        close(a->alarm_fd);
        a->alarm_fd = -1;
    }
}

/* The GIL baton (jobqueue.h has the essay). The loop is about to wait
 * (parked = 1) or has woken (0): a worker that found a job waits for the
 * first before it takes the GIL. Each wake is counted (`wakes`), so that a
 * yielding poster sees that the loop woke and waited again even when it did
 * both while the poster was not running (the two share a CPU). */
static inline void uintr_adapt_park(uintr_adapt_t *a, int parked)
{
    if (!parked && atomic_load_explicit(&a->parked, memory_order_relaxed))
        atomic_store_explicit(&a->wakes, atomic_load_explicit(&a->wakes, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    atomic_store_explicit(&a->parked, parked, memory_order_relaxed);
}

/* One step of a bounded wait: 16 pauses (or, with give_cpu, a
 * sched_yield(): the thread we wait for may be waiting for this CPU), then 0
 * once UINTR_HANDOFF_NS have passed since the first step (*deadline starts
 * at 0). The clock is read only from the first step on, so a wait that is
 * not needed costs nothing. */
static inline int uintr_handoff_step(uint64_t *deadline, int give_cpu)
{
    unsigned i;
    if (give_cpu)
        sched_yield();
    else
        for (i = 0; i < 16; i++)
            __builtin_ia32_pause();
    if (*deadline == 0)
        *deadline = uintr_monotonic_ns() + UINTR_HANDOFF_NS;
    else if (uintr_monotonic_ns() >= *deadline)
        return 0;
    return 1;
}

/* Spin until *flag is non-zero (want = 1) or zero (want = 0), for at most
 * UINTR_HANDOFF_NS: the GIL baton's and the yield's bounded waits. 1: it
 * came; 0: the bound ran out. */
static inline int uintr_adapt_spin_for(_Atomic int *flag, int want, int give_cpu)
{
    uint64_t deadline = 0;
    while ((atomic_load_explicit(flag, memory_order_relaxed) != 0) != want)
        if (!uintr_handoff_step(&deadline, give_cpu))
            return 0;
    return 1;
}

/* Spin while the GIL is held, for at most UINTR_HANDOFF_NS. 1: it is free
 * (or there is no word to watch), 0: it stayed held.
 *
 * Why: a post from a Python thread is made with the GIL held, and the
 * thread keeps it until it next blocks or returns to C; a
 * run_coroutine_threadsafe client, for one, goes on into
 * Future.result() and lets go only in its lock's wait. A loop that asks
 * for the GIL meanwhile sleeps on the GIL's condition variable, and the
 * thread's release must then wake it: on a virtual machine whose idle vCPU
 * halts, that is an inter-processor interrupt and a vCPU exit, tens of
 * microseconds, paid on every round trip (docs/design/adaptive-wakeup.md
 * has the measurement). Spinning on the word for the few microseconds the
 * poster still needs makes take_gil find the GIL free. The word is a hint:
 * another thread may take the GIL between the load and take_gil, which then
 * sleeps as it would have anyway. */
static inline int uintr_adapt_spin_for_gil(const int *gil, int give_cpu)
{
    uint64_t deadline = 0;
    while (uintr_gil_held(gil))
        if (!uintr_handoff_step(&deadline, give_cpu))
            return 0;
    return 1;
}

/* Is this thread on CPU `cpu` (a noted one: -1, none)? */
static inline int uintr_on_cpu(int cpu)
{
    int here = sched_getcpu();
    return here >= 0 && here == cpu;
}

/* Did the last post from a Python thread come from this CPU? (A hint.) */
static inline int uintr_adapt_poster_here(const uintr_adapt_t *a)
{
    return uintr_on_cpu(atomic_load_explicit(&a->post_cpu, memory_order_relaxed));
}

/* A post has come: before the loop takes the GIL, give the thread that
 * posted it up to UINTR_HANDOFF_NS to let go of it, so that neither
 * thread sleeps on the GIL.
 *
 * A JobQueue worker says so itself (`handing`): only for a lone round trip,
 * because with other jobs in flight the loop has their answers and its own
 * work to get on with, and answering workers come and go faster than it
 * could wait for them. Any other Python thread says nothing, so the loop
 * watches the GIL's own word. A wait that ends with the GIL still held (a
 * thread computing in Python, which keeps it for its switch interval) was
 * wasted: the next waits are left out, 1, 2, 4, ... up to 64 of them, and
 * one that sees the GIL let go resets the back-off, so a loop beside a busy
 * Python thread spins on the GIL on at most one wakeup in 64.
 *
 * The thread that posted may run on the loop's own CPU (the kernel puts a
 * thread it wakes beside a spinning loop, "The yield" above): it can then
 * let go only when the loop lets it run, and a wait that pauses would hold
 * the CPU for its whole bound. So a loop on the CPU the last post came from
 * (`post_cpu`, a hint) gives the CPU away at each step of both waits. */
static inline void uintr_adapt_await_handoff(uintr_adapt_t *a)
{
    int shared = uintr_adapt_poster_here(a);
    if (atomic_load_explicit(&a->inflight, memory_order_relaxed) <= 0)
        uintr_adapt_spin_for(&a->handing, 0, shared);
    if (a->gil == NULL || !uintr_gil_held(a->gil))
        return;
    if (a->gil_skip > 0) {
        a->gil_skip--;
        return;
    }
    if (uintr_adapt_spin_for_gil(a->gil, shared)) {
        a->gil_backoff = 0;
    } else {
        a->gil_backoff = a->gil_backoff ? 2 * a->gil_backoff : 1;
        if (a->gil_backoff > 64)
            a->gil_backoff = 64;
        a->gil_skip = a->gil_backoff;
    }
}

/* A poster, with the GIL, about to post (the yield's essay is at the top):
 * has the loop been spinning for at least UINTR_YIELD_SPIN_NS at `now`?
 * Asked before the post, because the loop's spin ends the moment the post
 * lands. Never where there is no GIL to hand over. */
static inline int uintr_adapt_should_yield(const uintr_adapt_t *a, uint64_t now)
{
    uint64_t since = atomic_load_explicit(&a->spin_since, memory_order_relaxed);
    return a->gil != NULL && since != 0 && now >= since + UINTR_YIELD_SPIN_NS;
}

/* The same, for a post being made now. The clock is read only while the
 * loop spins: a post to a loop that runs or sleeps costs one load. */
static inline int uintr_adapt_poster_yields(const uintr_adapt_t *a)
{
    return atomic_load_explicit(&a->spin_since, memory_order_relaxed) != 0 &&
           uintr_adapt_should_yield(a, uintr_monotonic_ns());
}

/* A Python thread posts: note its CPU for the loop (uintr_adapt_poster_here).
 * Written only when it changes, so that a thread that stays where it is does
 * not take the cache line the loop reads on every post: a sched_getcpu()
 * (glibc reads it from rseq) and a load. */
static inline void uintr_adapt_note_poster(uintr_adapt_t *a)
{
    int cpu = sched_getcpu();
    if (atomic_load_explicit(&a->post_cpu, memory_order_relaxed) != cpu)
        atomic_store_explicit(&a->post_cpu, cpu, memory_order_relaxed);
}

/* Is this thread on the CPU the loop's spin began on? (A hint.) */
static inline int uintr_adapt_on_spin_cpu(const uintr_adapt_t *a)
{
    return uintr_on_cpu(atomic_load_explicit(&a->spin_cpu, memory_order_relaxed));
}

/* How many times the loop has woken; a poster reads it before its post. */
static inline unsigned uintr_adapt_wakes(const uintr_adapt_t *a)
{
    return atomic_load_explicit(&a->wakes, memory_order_relaxed);
}

/* The poster, after its post and without the GIL: wait until the loop has
 * woken since `wakes` (read before the post), run what the post brought and
 * gone back to waiting (parked 1) with the GIL let go, each wait bounded by
 * UINTR_HANDOFF_NS; then the caller takes the GIL back. On the CPU the
 * loop's spin runs on, the waits give that CPU to the loop (the yield's
 * essay, at the top). 1: the loop came back; 0: a bound ran out. */
static inline int uintr_adapt_yield_wait(uintr_adapt_t *a, unsigned wakes)
{
    int shared = uintr_adapt_on_spin_cpu(a), woke = 1;
    uint64_t deadline = 0;
    while (atomic_load_explicit(&a->wakes, memory_order_relaxed) == wakes)
        if (!uintr_handoff_step(&deadline, shared)) {
            woke = 0;
            break;
        }
    if (!uintr_adapt_spin_for(&a->parked, 1, shared))
        woke = 0;
    if (!uintr_adapt_spin_for_gil(a->gil, shared))
        woke = 0;
    return woke;
}

/* The loop begins a spin that posters may yield to, on this CPU. Returns
 * whether the last Python post came from this CPU (uintr_busy_poll's
 * `shared`), from the same sched_getcpu(). */
static inline int uintr_adapt_spin_begins(uintr_adapt_t *a, uint64_t now)
{
    int cpu = sched_getcpu();
    atomic_store_explicit(&a->spin_cpu, cpu, memory_order_relaxed);
    atomic_store_explicit(&a->spin_since, now, memory_order_relaxed);
    return cpu >= 0 && cpu == atomic_load_explicit(&a->post_cpu, memory_order_relaxed);
}

static inline void uintr_adapt_spin_ends(uintr_adapt_t *a)
{
    atomic_store_explicit(&a->spin_since, 0, memory_order_relaxed);
}

static inline void uintr_adapt_expect(uintr_adapt_t *a, long delta)
{
    atomic_fetch_add_explicit(&a->inflight, delta, memory_order_relaxed);
}

/* The budget of the spin before a block of at most timeout_ns
 * (UINT64_MAX: no timeout), for setting busy_ns (a fixed budget, 0 for
 * none, or UINTR_BUSY_POLL_ADAPTIVE). Marks the block's start. */
static inline uint64_t uintr_adapt_budget(uintr_adapt_t *a, uint64_t busy_ns,
                                          uint64_t timeout_ns)
{
    uint64_t now = uintr_monotonic_ns(), budget;
    a->block_start = now;
    a->hit = 0;
    if (busy_ns != UINTR_BUSY_POLL_ADAPTIVE) {
        budget = busy_ns;
    } else {
        if (a->window_ns == 0 || a->cpus < 2)
            return 0;
        if (atomic_load_explicit(&a->inflight, memory_order_relaxed) <= 0 &&
            now - a->last_post > UINTR_ADAPT_HORIZON_NS)
            return 0;          /* nothing expected */
        budget = a->window_ns;
    }
    return budget < timeout_ns ? budget : timeout_ns;
}

/* The window's rule (the table in docs/design/adaptive-wakeup.md): a block
 * that began `waited` ns before `now` ended, in a post or not. */
static inline void uintr_adapt_learn(uintr_adapt_t *a, uint64_t waited, int post, uint64_t now)
{
    uint64_t grown, err, clip, floor;
    if (!post) {                        /* I/O or a timer ended it */
        a->gap_samples = 0;
        a->arm_after = UINTR_ALARM_SAMPLES;
        if (waited > UINTR_ADAPT_MAX_NS)
            a->window_ns = 0;
        return;
    }
    a->last_post = now;
    if (a->gap_samples == 0) {          /* the first measurement */
        a->gap_ns = waited;
        a->gap_dev_ns = waited / UINTR_ALARM_SHARE;
    } else {                            /* RFC 6298's gains, the error clipped */
        clip = 2 * a->gap_dev_ns + UINTR_ALARM_MARGIN_NS;
        err = waited > a->gap_ns ? waited - a->gap_ns : a->gap_ns - waited;
        if (err > clip)
            err = clip;
        a->gap_dev_ns = a->gap_dev_ns - a->gap_dev_ns / 4 + err / 4;
        if (waited > a->gap_ns)
            a->gap_ns += err / 8;
        else
            a->gap_ns -= err / 8;
    }
    if (a->gap_samples < UINTR_ALARM_SAMPLES)
        a->gap_samples++;
    if (waited <= UINTR_ADAPT_MAX_NS) {
        a->peak_ns -= a->peak_ns / UINTR_ADAPT_PEAK_DECAY;
        if (a->peak_ns < waited)
            a->peak_ns = waited;
    }
    if (a->hit) {
        floor = a->peak_ns + a->peak_ns / 4;
        if (floor < UINTR_ADAPT_START_NS)
            floor = UINTR_ADAPT_START_NS;
        if (4 * waited < a->window_ns && a->window_ns > floor)
            a->window_ns = a->window_ns / 2 > floor ? a->window_ns / 2 : floor;
    } else if (waited <= UINTR_ADAPT_MAX_NS) {
        grown = a->window_ns ? 2 * a->window_ns : UINTR_ADAPT_START_NS;
        if (grown < waited + waited / 4)
            grown = waited + waited / 4;
        a->window_ns = grown < UINTR_ADAPT_MAX_NS ? grown : UINTR_ADAPT_MAX_NS;
    } else {
        a->window_ns /= 2;
        if (a->window_ns < UINTR_ADAPT_START_NS)
            a->window_ns = 0;
    }
}

/* A post `cost` ns before the loop, woken from its block, saw it: learn
 * what a blocked wake-up costs. It rises half the way to a dearer sample and
 * falls an eighth of the way to a cheaper one, so the estimate follows the
 * dear wake-ups (one CPU waking another, halted: 25 to 50 us here) more than
 * the cheap (the poster's own CPU: 5 to 10 us); a sample is clipped at the
 * longest window, past which the host took the CPU, not the wake-up. */
static inline void uintr_adapt_wake_cost(uintr_adapt_t *a, uint64_t cost)
{
    if (cost > UINTR_ADAPT_MAX_NS)
        cost = UINTR_ADAPT_MAX_NS;
    if (cost > a->wake_ns)
        a->wake_ns += (cost - a->wake_ns + 1) / 2;
    else
        a->wake_ns -= (a->wake_ns - cost) / 8;
}

/* The loop looked at its UPID after a poll; post: something was pending.
 * posted_at: when a sampled post was made (the wake-latency stamp,
 * loopstats.h), 0 if none is in flight. A block ended by a post is timed to
 * that post when the stamp falls within the block: the time at which the
 * loop saw it includes its own wake-up, tens of microseconds when it slept
 * and next to none when it spun, which would make a steady sender look
 * irregular to the alarm. */
static inline void uintr_adapt_observe(uintr_adapt_t *a, int post, uint64_t posted_at)
{
    uint64_t now, end;
    if (a->block_start == 0) {          /* no block: a poll between callbacks */
        if (post)
            a->last_post = uintr_monotonic_ns();
        return;
    }
    now = uintr_monotonic_ns();
    end = post && posted_at >= a->block_start && posted_at <= now ? posted_at : now;
    if (post && !a->hit && end < now)
        uintr_adapt_wake_cost(a, now - end);
    uintr_adapt_learn(a, end - a->block_start, post, now);
    a->block_start = 0;
}

/* When the alarm should ring and until when its spin may last (absolute
 * times), for a block that starts now; 0: no alarm for this block. */
static inline int uintr_adapt_alarm(const uintr_adapt_t *a, uint64_t now, uint64_t timeout_ns,
                                    uint64_t *ring, uint64_t *until)
{
    uint64_t jitter = a->gap_dev_ns + UINTR_ALARM_MARGIN_NS;
    uint64_t early;
    if (!a->alarm_ok || a->gap_samples < a->arm_after || a->cpus < 2 ||
        a->gap_ns <= UINTR_ADAPT_MAX_NS || a->gap_ns > UINTR_ALARM_GAP_MAX_NS ||
        UINTR_ALARM_SPREAD * a->gap_dev_ns > a->gap_ns)
        return 0;
    if (UINTR_ALARM_SHARE * jitter > a->gap_ns)
        jitter = a->gap_ns / UINTR_ALARM_SHARE;     /* a loose pace: the spin capped */
    early = jitter + a->alarm_late_ns;
    if (a->gap_ns <= early + UINTR_ALARM_MARGIN_NS)
        return 0;
    *ring = now + a->gap_ns - early;
    *until = now + a->gap_ns + 2 * jitter + a->wake_ns;
    if (timeout_ns != UINT64_MAX && timeout_ns < *until - now + 1000000ull)
        return 0;               /* a timer of the loop's is due first */
    return 1;
}

/* The alarm rang `late` ns after its time: learn how late a timer wakes
 * this thread (smoothed, each sample clipped at twice the estimate). */
static inline void uintr_adapt_alarm_late(uintr_adapt_t *a, uint64_t late)
{
    if (late > 2 * a->alarm_late_ns)
        late = 2 * a->alarm_late_ns;
    a->alarm_late_ns = a->alarm_late_ns - a->alarm_late_ns / 4 + late / 4;
}

/* Sleep until the alarm rings (SN clear: a post wakes the loop as in a
 * block), then set SN and spin until `until`. 2: a post came in the spin (SN
 * set); 1: something was ready first, or the sleep was interrupted (SN
 * clear; the check after the poll sets it); 0: nothing came (SN set:
 * restore, then block); -1: the alarm could not be set (nothing changed). */
static inline int uintr_alarm_wait(uintr_block_t *b, uintr_adapt_t *a, uint64_t ring,
                                   uint64_t until, int epfd, uintr_poll_stats_t *st)
{
    struct itimerspec at;
    struct pollfd p[2];
    uint64_t ticks, now;
    int rc, shared;
    if (a->alarm_fd < 0) {
        a->alarm_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (a->alarm_fd < 0)
            return -1;
    }
    at.it_interval.tv_sec = 0;
    at.it_interval.tv_nsec = 0;
    at.it_value.tv_sec = (time_t)(ring / 1000000000ull);
    at.it_value.tv_nsec = (long)(ring % 1000000000ull);
    if (timerfd_settime(a->alarm_fd, TFD_TIMER_ABSTIME, &at, NULL) != 0)
        return -1;
    if (uintr_upid_restore(b))                      /* model step U, L */
        return 1;
    p[0].fd = epfd;
    p[0].events = POLLIN;
    p[1].fd = a->alarm_fd;
    p[1].events = POLLIN;
    p[0].revents = p[1].revents = 0;
    if (poll(p, 2, -1) <= 0)
        return 1;               /* interrupted: go and look */
    /* The timer's lateness is learnt from every ring the loop sees, also
     * from one whose sleep a post ended as well: a post beats the loop out
     * of its sleep mostly while a late wake-up is still on its way (the
     * host waking a halted vCPU, 40 to 70 us here), so learning only from
     * the wake-ups that came first would learn the punctual ones. */
    now = uintr_monotonic_ns();
    if ((p[1].revents & POLLIN) && now > ring)
        uintr_adapt_alarm_late(a, now - ring);
    if (p[0].revents != 0 || !(p[1].revents & POLLIN))
        return 1;               /* ready early: go and look */
    if (read(a->alarm_fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
        return 1;
    st->alarms++;
    uintr_upid_suppress(b);                         /* model step A, then S */
    now = uintr_monotonic_ns();
    shared = uintr_adapt_spin_begins(a, now);
    rc = uintr_busy_poll(b, until > now ? until - now : 0, epfd, 1, shared, st);
    uintr_adapt_spin_ends(a);
    return rc > 0 ? 2 : 0;
}

/* How an alarm's spin ended (uintr_alarm_wait's 2: a post came, 0: none
 * came; 1: something else was ready first, which says nothing). A miss
 * leaves the estimate alone: its post, late, still ends the block and is
 * learnt. UINTR_ALARM_MISSES in a row mean the pace has moved: the
 * estimate starts again, and the alarm stays off until it has
 * UINTR_ALARM_RESAMPLES posts in a row. The sender was posting, so fewer
 * posts than a first pace takes (UINTR_ALARM_SAMPLES) will do; each post
 * until then costs a blocked wake-up. */
static inline void uintr_adapt_alarm_rang(uintr_adapt_t *a, int rc)
{
    if (rc == 2) {
        a->alarm_misses = 0;
    } else if (rc == 0 && ++a->alarm_misses >= UINTR_ALARM_MISSES) {
        a->alarm_misses = 0;
        a->gap_samples = 0;
        a->arm_after = UINTR_ALARM_RESAMPLES;
    }
}

/* Before a block: spin as the setting and the policy say. 1: a post came
 * (do not block; SN is still set, or, after an alarm woken by something
 * ready, clear until the check). */
static inline int uintr_spin_before_block(uintr_block_t *b, uintr_adapt_t *a,
                                          uint64_t busy_ns, uint64_t timeout_ns,
                                          int epfd, uintr_poll_stats_t *st)
{
    uint64_t budget = uintr_adapt_budget(a, busy_ns, timeout_ns);
    uint64_t ring, until;
    int rc, shared;
    if (budget == 0) {
        if (busy_ns != UINTR_BUSY_POLL_ADAPTIVE || epfd < 0 ||
            !uintr_adapt_alarm(a, a->block_start, timeout_ns, &ring, &until))
            return 0;
        rc = uintr_alarm_wait(b, a, ring, until, epfd, st);
        if (rc < 0)
            return 0;
        uintr_adapt_alarm_rang(a, rc);
        if (rc == 2) {
            a->hit = 1;
            uintr_adapt_await_handoff(a);
        }
        return rc > 0;
    }
    shared = uintr_adapt_spin_begins(a, uintr_monotonic_ns());
    rc = uintr_busy_poll(b, budget, epfd, busy_ns == UINTR_BUSY_POLL_ADAPTIVE, shared, st);
    uintr_adapt_spin_ends(a);
    if (rc < 0)
        a->window_ns = 0;       /* the CPU is wanted: stop spinning for now */
    a->hit = rc > 0;
    if (a->hit)
        uintr_adapt_await_handoff(a);
    return a->hit;
}

#endif
