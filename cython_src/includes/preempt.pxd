from libc.stdint cimport intptr_t, uint64_t

from upid cimport uintr_block_t


cdef extern from "preempt.h" nogil:
    uint64_t uintr_monotonic_ns()
    int uintr_preempt_start(int signum)
    void uintr_preempt_arm(uint64_t token, uint64_t when_ns)
    void uintr_preempt_disarm()
    void uintr_preempt_stop()
    void uintr_preempt_counters(uint64_t out[4])
    void uintr_preempt_thread_only(int on)
    int uintr_preempt_uses_timer()
    void uintr_preempt_watch(uintr_block_t *b, uint64_t mask)
    void uintr_preempt_unwatch(uintr_block_t *b)
    intptr_t uintr_signal_disposition(int signum)
