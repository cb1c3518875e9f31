# The default executor's job queue (both bases): a queue.SimpleQueue for a
# ThreadPoolExecutor's workers whose idle workers spin a while before they
# sleep, and whose hand-offs of the GIL to and from the loop make neither
# thread sleep on the GIL. The essay on why and why it is safe is in
# includes/jobqueue.h.
#
# The loop makes its default executor with new_default_executor(): a plain
# ThreadPoolExecutor whose _work_queue is a JobQueue, set before any worker
# exists (workers, shutdown and the interpreter's exit hook all find the
# queue through that attribute). The executor's own code is unchanged: it
# puts work items (or, from run_in_executor, ExecutorJobs: executor.pxi)
# and None sentinels, and its workers get() them.

import collections
import queue as _queue_module


cdef class JobQueue:
    """A ``queue.SimpleQueue`` for a thread pool's workers, tied to the
    loop (``port``) whose jobs it carries."""
    cdef object items
    cdef uintr_jobq_t q
    cdef Port port
    cdef bint ready

    def __cinit__(self, Port port=None):
        if uintr_jobq_init(&self.q) != 0:
            raise OSError(errno, "sem_init failed")
        self.ready = True
        self.items = collections.deque()
        self.port = port

    def __dealloc__(self):
        if self.ready:
            uintr_jobq_destroy(&self.q)

    cdef inline uintr_adapt_t *adapt(self):
        return NULL if self.port is None else &self.port.adapt

    cdef bint hands_off_to(self, Port port):
        """Do answers posted to ``port`` by this queue's workers take part
        in the GIL hand-off?"""
        return port is self.port

    def put(self, item, block=True, timeout=None):
        """Queue ``item``; never blocks (the queue is unbounded)."""
        self.items.append(item)
        uintr_jobq_put(&self.q)

    def put_nowait(self, item):
        self.put(item)

    def get(self, block=True, timeout=None):
        """The oldest item, waiting for one if ``block``; ``queue.Empty``
        if none came (within ``timeout`` seconds)."""
        cdef uint64_t deadline = 0
        cdef int found
        cdef uintr_adapt_t *a = self.adapt()
        if timeout is not None:
            if timeout < 0:
                raise ValueError("'timeout' must be a non-negative number")
            deadline = uintr_monotonic_ns() + <uint64_t>(timeout * 1e9) + 1
        while True:
            if self.items:
                uintr_jobq_handed()
                try:
                    item = self.items.popleft()
                except IndexError:
                    pass            # another worker took it (free-threaded)
                else:
                    uintr_jobq_taken(&self.q)
                    return item
            if not block:
                # still owed: a worker asks get_nowait() before get()
                raise _queue_module.Empty
            with nogil:
                found = uintr_jobq_wait(&self.q, a, deadline)
            if not found:
                raise _queue_module.Empty

    def get_nowait(self):
        return self.get(False)

    def empty(self):
        return not self.items

    def qsize(self):
        return len(self.items)


def new_default_executor(Port port, str thread_name_prefix):
    """A loop's default executor: a ThreadPoolExecutor on a JobQueue."""
    executor = concurrent.futures.ThreadPoolExecutor(thread_name_prefix=thread_name_prefix)
    if port is not None and type(executor._work_queue) is _queue_module.SimpleQueue:
        executor._work_queue = JobQueue(port)
    return executor
