from libc.stdint cimport uint64_t

from upid cimport uintr_block_t


cdef extern from "busypoll.h" nogil:
    const uint64_t UINTR_BUSY_POLL_ADAPTIVE
    const uint64_t UINTR_ADAPT_START_NS
    const uint64_t UINTR_ADAPT_MAX_NS
    const uint64_t UINTR_ALARM_GAP_MAX_NS
    const uint64_t UINTR_ALARM_LATE_NS
    const uint64_t UINTR_WAKE_COST_NS
    const uint64_t UINTR_ALARM_MARGIN_NS
    const unsigned UINTR_ALARM_SAMPLES
    const unsigned UINTR_ALARM_SHARE
    const unsigned UINTR_ALARM_SPREAD
    const unsigned UINTR_ALARM_MISSES
    const unsigned UINTR_ALARM_RESAMPLES
    const uint64_t UINTR_YIELD_SPIN_NS

    ctypedef struct uintr_poll_stats_t:
        uint64_t polls
        uint64_t hits
        uint64_t spin_ns
        uint64_t alarms
        uint64_t yields

    ctypedef struct uintr_adapt_t:
        uint64_t window_ns
        uint64_t block_start
        int hit
        int cpus
        unsigned gil_skip
        unsigned gil_backoff
        uint64_t spin_since
        int spin_cpu
        int post_cpu
        uint64_t gap_ns
        uint64_t gap_dev_ns
        unsigned gap_samples
        uint64_t alarm_late_ns
        uint64_t wake_ns
        int alarm_fd
        int alarm_ok

    uint64_t uintr_monotonic_ns()
    void uintr_adapt_init(uintr_adapt_t *a, int cpus, const int *gil)
    void uintr_adapt_close(uintr_adapt_t *a)
    void uintr_adapt_expect(uintr_adapt_t *a, long delta)
    void uintr_adapt_observe(uintr_adapt_t *a, int post, uint64_t posted_at)
    int uintr_adapt_alarm(const uintr_adapt_t *a, uint64_t now, uint64_t timeout_ns,
                          uint64_t *ring, uint64_t *until)
    void uintr_adapt_learn(uintr_adapt_t *a, uint64_t waited, int post, uint64_t now)
    void uintr_adapt_alarm_rang(uintr_adapt_t *a, int rc)
    void uintr_adapt_alarm_late(uintr_adapt_t *a, uint64_t late)
    void uintr_adapt_wake_cost(uintr_adapt_t *a, uint64_t cost)
    int uintr_adapt_on_spin_cpu(const uintr_adapt_t *a)
    int uintr_adapt_poster_here(const uintr_adapt_t *a)
    void uintr_adapt_park(uintr_adapt_t *a, int parked)
    void uintr_adapt_await_handoff(uintr_adapt_t *a)
    int uintr_adapt_should_yield(const uintr_adapt_t *a, uint64_t now)
    int uintr_adapt_poster_yields(const uintr_adapt_t *a)
    void uintr_adapt_note_poster(uintr_adapt_t *a)
    unsigned uintr_adapt_wakes(const uintr_adapt_t *a)
    int uintr_adapt_yield_wait(uintr_adapt_t *a, unsigned wakes)
    int uintr_spin_before_block(uintr_block_t *b, uintr_adapt_t *a, uint64_t busy_ns,
                                uint64_t timeout_ns, int epfd, uintr_poll_stats_t *st)
    int uintr_alarm_wait(uintr_block_t *b, uintr_adapt_t *a, uint64_t ring, uint64_t until,
                         int epfd, uintr_poll_stats_t *st)
