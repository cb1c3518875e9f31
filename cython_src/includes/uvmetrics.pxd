from libc.stdint cimport uint64_t

from loopstats cimport uintr_loopstats_t


cdef extern from "uvmetrics.h" nogil:
    ctypedef uint64_t (*uintr_uv_idle_time_fn)(void *loop) noexcept nogil

    uintr_uv_idle_time_fn uintr_uv_metrics_enable(const char *path, void *uvloop)
    void uintr_loopstats_iteration_uv(uintr_loopstats_t *s, uintr_uv_idle_time_fn idle_time,
                                      void *uvloop)
