from libc.stdint cimport uint64_t

from upid cimport uintr_block_t


cdef extern from "busypoll.h" nogil:
    ctypedef struct uintr_poll_stats_t:
        uint64_t polls
        uint64_t hits

    uint64_t uintr_monotonic_ns()
    int uintr_busy_poll(uintr_block_t *b, uint64_t budget_ns, uintr_poll_stats_t *st)
