from libc.stdint cimport uint64_t


cdef extern from "loopstats.h" nogil:
    const int UINTR_LAT_BUCKETS
    const int UINTR_LAT_SHIFT

    ctypedef struct uintr_loopstats_t:
        int timing

    ctypedef struct uintr_loopstats_snapshot_t:
        int timing
        uint64_t now
        uint64_t iterations
        uint64_t run_ns
        uint64_t idle_ns
        uint64_t lat_sum_ns
        uint64_t lat_max_ns
        uint64_t lat[24]

    void uintr_loopstats_init(uintr_loopstats_t *s, int timing)
    void uintr_loopstats_run_begin(uintr_loopstats_t *s)
    void uintr_loopstats_run_end(uintr_loopstats_t *s)
    void uintr_loopstats_wait_begin(uintr_loopstats_t *s)
    void uintr_loopstats_spun(uintr_loopstats_t *s)
    void uintr_loopstats_iteration(uintr_loopstats_t *s)
    void uintr_loopstats_iteration_measured(uintr_loopstats_t *s, uint64_t provider_idle)
    int uintr_loopstats_stamp(uintr_loopstats_t *s)
    uint64_t uintr_loopstats_posted_at(uintr_loopstats_t *s)
    void uintr_loopstats_sample_end(uintr_loopstats_t *s)
    void uintr_loopstats_read(uintr_loopstats_t *s, uintr_loopstats_snapshot_t *out)
    unsigned uintr_lat_bucket(uint64_t ns)
