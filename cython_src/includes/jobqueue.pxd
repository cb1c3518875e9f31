from libc.stdint cimport uint64_t

from busypoll cimport uintr_adapt_t


cdef extern from "jobqueue.h" nogil:
    ctypedef struct uintr_jobq_t:
        pass

    int uintr_jobq_init(uintr_jobq_t *q)
    void uintr_jobq_destroy(uintr_jobq_t *q)
    void uintr_jobq_put(uintr_jobq_t *q)
    void uintr_jobq_taken(uintr_jobq_t *q)
    void uintr_jobq_owe(uintr_adapt_t *a)
    void uintr_jobq_handed()
    int uintr_jobq_owing()
    int uintr_jobq_wait(uintr_jobq_t *q, uintr_adapt_t *a, uint64_t deadline)
