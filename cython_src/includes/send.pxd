from libc.stdint cimport uint32_t

from notify cimport uintr_channel_t
from upid cimport uintr_table_t


cdef extern from "send.h" nogil:
    ctypedef struct uintr_sender_c:
        uintr_table_t *table
        uintr_channel_t channel
        uint32_t index
        uint32_t vector
        int closed
        int (*hw_send)(void *ctx) noexcept nogil
        void *hw_ctx

    int uintr_sender_post(uintr_sender_c *s)
    int uintr_sender_send(uintr_sender_c *s)
