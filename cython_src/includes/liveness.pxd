from libc.stdint cimport uint64_t

from upid cimport uintr_table_t


cdef extern from "liveness.h" nogil:
    ctypedef struct uintr_lease_t:
        uintr_table_t *table

    uintr_lease_t *uintr_lease_acquire(int table_fd, size_t size, int pidfd, int hupfd,
                                       int regfd, int *err)
    void uintr_register_self(int reg_fd, uintr_table_t *table)
    uint64_t uintr_table_unwatched(uintr_table_t *t)
    void uintr_lease_release(uintr_lease_t *l)
    int uintr_liveness_after_fork()
    void uintr_liveness_state(uint64_t out[4])
