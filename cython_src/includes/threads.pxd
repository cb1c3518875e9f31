from libc.stdint cimport uint64_t


cdef extern from "threads.h" nogil:
    ctypedef struct native_sender_job:
        const void *handle
        int (*send)(const void *) noexcept nogil
        uint64_t count
        uint64_t pause_ns
        uint64_t pause_every
        uint64_t published
        uint64_t sent
        int error

    int native_sender_start(native_sender_job *job)
    void native_sender_join(native_sender_job *job)

    uint64_t native_sender_published(native_sender_job *job)
