from libc.stdint cimport uint64_t

from upid cimport uintr_block_t


cdef extern from "pacedpost.h" nogil:
    ctypedef struct uintr_paced_post_t:
        uintr_block_t *block
        unsigned vector
        uint64_t count
        uint64_t max_pause
        uint64_t seed
        int in_post
        int stop
        uint64_t codes[4]
        uint64_t done

    void uintr_paced_post_run(uintr_paced_post_t *p)
