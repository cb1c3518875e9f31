# cython: language_level=3, freethreading_compatible=True
"""Native senders for tests and benchmarks: pthreads that send through the
public nogil cimport API (uintr_loop/_core.pxd), exactly as a third-party
Cython extension would, without ever holding the GIL."""
cimport cython
from libc.stdint cimport uint64_t
from libc.string cimport memset

from uintr_loop._core cimport uintr_send, uintr_sender_handle
from threads cimport (native_sender_job, native_sender_join, native_sender_published,
                     native_sender_start)


@cython.no_gc_clear    # __dealloc__ joins the thread, which uses self.sender until then
cdef class NativeSender:
    """Start with ``NativeSender(sender, count, pause_ns, pause_every)``: a
    pthread sends ``count`` times, sleeping ``pause_ns`` after every
    ``pause_every``-th send. ``join()`` waits and returns
    ``(sent, first_error)`` where first_error is 0 or -errno."""
    cdef native_sender_job job
    cdef object sender
    cdef bint started
    cdef bint joined

    def __init__(self, sender, uint64_t count, uint64_t pause_ns=0, uint64_t pause_every=1):
        memset(&self.job, 0, sizeof(self.job))
        self.job.handle = uintr_sender_handle(sender)
        self.job.send = uintr_send
        self.job.count = count
        self.job.pause_ns = pause_ns
        self.job.pause_every = pause_every
        self.sender = sender          # keeps the handle valid
        cdef int rc = native_sender_start(&self.job)
        if rc != 0:
            raise OSError(rc, "pthread_create failed")
        self.started = True

    @property
    def published(self):
        """How many sends the thread has begun (stored before each send)."""
        return native_sender_published(&self.job)

    def join(self):
        if self.started and not self.joined:
            with nogil:
                native_sender_join(&self.job)
            self.joined = True
        return self.job.sent, self.job.error

    def __dealloc__(self):
        if self.started and not self.joined:
            with nogil:
                native_sender_join(&self.job)


cdef extern from "stamp.h" nogil:
    ctypedef struct stamp_job:
        const void *handle
        int (*send)(const void *)
        uint64_t count
        uint64_t pause_ns
        uint64_t sent
        int error
    uint64_t stamp_now_ns()
    uint64_t stamp_load(stamp_job *job)
    void stamp_ack(stamp_job *job)
    void stamp_stop(stamp_job *job)
    int stamp_start(stamp_job *job)
    void stamp_join(stamp_job *job)


@cython.no_gc_clear    # __dealloc__ stops the thread, which uses self.sender until then
cdef class StampSender:
    """For the latency benchmark: a pthread that, ``count`` times, sleeps
    ``pause_ns``, stamps CLOCK_MONOTONIC and sends (no GIL), then waits for
    the handler's ``ack()``. ``latency_ns()`` in the handler is the time from
    the stamp to now (time.perf_counter_ns uses the same clock on Linux)."""
    cdef stamp_job job
    cdef object sender
    cdef bint started
    cdef bint joined

    def __init__(self, sender, uint64_t count, uint64_t pause_ns):
        memset(&self.job, 0, sizeof(self.job))
        self.job.handle = uintr_sender_handle(sender)
        self.job.send = uintr_send
        self.job.count = count
        self.job.pause_ns = pause_ns
        self.sender = sender
        if stamp_start(&self.job) != 0:
            raise OSError("pthread_create failed")
        self.started = True

    def latency_ns(self):
        return stamp_now_ns() - stamp_load(&self.job)

    def ack(self):
        stamp_ack(&self.job)

    def join(self):
        if self.started and not self.joined:
            with nogil:
                stamp_join(&self.job)
            self.joined = True
        return self.job.sent, self.job.error

    def __dealloc__(self):
        # Dropped without join() (a benchmark interrupted mid-run): stop the
        # thread before the job it reads is freed, and close the ack eventfd.
        if self.started and not self.joined:
            with nogil:
                stamp_stop(&self.job)
                stamp_join(&self.job)
