from libc.stdint cimport uint64_t


cdef extern from "preempt.h" nogil:
    uint64_t uintr_monotonic_ns()
    int uintr_preempt_start(int signum)
    void uintr_preempt_arm(uint64_t token, uint64_t when_ns)
    void uintr_preempt_disarm()
    void uintr_preempt_stop()
    void uintr_preempt_counters(uint64_t out[3])
