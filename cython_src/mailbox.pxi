# call_soon_threadsafe for a base whose ready queue is private (uvloop).
#
# A sender appends a handle to the mailbox and posts the wakeup vector; the
# loop, recognising vector 0, schedules one drain, which runs every handle in
# posting order. Both sides hold the GIL, so the list itself needs no lock,
# and the post can be skipped when the mailbox was not empty. The first
# handle of a list is appended by a poster that then posts, under the GIL
# throughout, so whoever sees the list non-empty also sees that post done. A
# drain swaps out the whole current list, and only a drain does; the post is
# recognised either by a drain already scheduled (which will swap this list)
# or schedules one. So every list is taken by some drain, with every handle
# appended to it before the swap, and a handle appended after the swap goes
# to a fresh, empty list and posts again.
#
# Nothing between the emptiness test and the post can release the GIL (no
# Python code runs there; the handle is built before; the wake-latency stamp
# taken there is plain C, includes/loopstats.h), which is what makes that
# argument hold with several sender threads.

cimport cython
from cpython.contextvars cimport PyContext_CopyCurrent


cdef extern from "Python.h":
    int PyContext_Enter(object ctx) except -1
    int PyContext_Exit(object ctx) except -1


@cython.no_gc
@cython.freelist(256)
cdef class ThreadsafeHandle:
    """What ``call_soon_threadsafe`` returns on the uvloop base: asyncio's
    Handle API (``cancel()``, ``cancelled()``, ``get_context()``)."""
    # Not tracked by the cycle collector: half the cost of a post was the GC
    # passes its allocations triggered. A handle can only be in a cycle
    # through its callback or arguments, and it drops both once it has run
    # or been cancelled (a handle that is never run is cancelled when the
    # loop closes), so no cycle outlives it.
    cdef object _callback
    cdef tuple _args
    cdef object _context
    cdef bint _cancelled
    cdef readonly object _source_traceback   # asyncio's name; debug mode only

    def cancel(self):
        if not self._cancelled:
            self._cancelled = True
            self._callback = None
            self._args = None

    def cancelled(self):
        return self._cancelled

    def get_context(self):
        return self._context

    def __repr__(self):
        if self._cancelled:
            return "<ThreadsafeHandle cancelled>"
        return "<ThreadsafeHandle %r%r>" % (self._callback, self._args)


cdef class Mailbox:
    cdef list items
    cdef Port port
    cdef readonly object loop
    cdef public bint debug
    cdef bint drain_scheduled
    cdef readonly bint closed

    def __cinit__(self, loop, Port port not None):
        self.items = []
        self.loop = loop
        self.port = port
        port.wakeup_handler = self.on_wakeup

    def call_soon_threadsafe(self, callback, *args, context=None):
        """Like ``call_soon()``, but thread-safe."""
        return self.post(callback, args, context)

    cdef ThreadsafeHandle post(self, callback, tuple args, context):
        cdef ThreadsafeHandle handle
        cdef int rc
        if self.closed:
            raise RuntimeError("Event loop is closed")
        handle = ThreadsafeHandle.__new__(ThreadsafeHandle)
        if self.debug:
            check_callback(callback, "call_soon_threadsafe")
            # where it was posted from, as asyncio's Handle records it (no
            # Python frame of ours: the innermost one is the caller's)
            handle._source_traceback = traceback.extract_stack()
        handle._callback = callback
        handle._args = args
        handle._context = PyContext_CopyCurrent() if context is None else context
        if self.items:                      # model step M (through the post)
            self.items.append(handle)       # a post is already on its way
            return handle
        self.items.append(handle)
        if self.port.forked():
            return handle           # a fork child's copy: it cannot run (port.pxi)
        # wake-latency sample: this post's drain files it (metrics.pxi)
        uintr_loopstats_stamp(&self.port.loopstats)
        rc = post_with_gil(&self.port.wakeup_sender)
        if rc < 0 and rc != -ESHUTDOWN:
            raise OSError(-rc, "uintr_loop: notification failed")
        return handle

    def on_wakeup(self):
        # Port.recognise saw vector 0 (loop thread, GIL held).
        if self.items and not self.drain_scheduled and not self.closed:
            if self.port.wakeup_inline and not self.debug:
                self.run_items(True)
            else:
                self.drain_scheduled = True
                self.loop.call_soon(self.drain)

    def drain(self):
        """Loop callback: run what was posted, in order."""
        self.drain_scheduled = False
        self.run_items(False)

    # Running the callbacks inline, from libuv's check phase (uvhook.pxi),
    # is the same iteration's hand-off: no call_soon, no second GIL
    # acquisition, no wait for the next iteration's idle phase. It keeps
    # asyncio's order because it happens only when no loop callback is
    # queued (uvloop's idle handle is stopped: uv_backend_timeout != 0) and
    # no drain is: every handle in the mailbox was then posted after every
    # callback that has already run, and anything they schedule queues
    # behind them. (A callback queued before a post must run before it;
    # with one queued, the drain is scheduled behind it as before.) It also
    # happens only after the receivers' deliveries of this dispatch were
    # not queued (Port.dispatch), and never in debug mode, where uvloop
    # times each callback it runs.
    cdef int run_items(self, bint inline) except -1:
        cdef list items = self.items
        cdef ThreadsafeHandle handle
        cdef Py_ssize_t i, n = len(items)
        if self.port is not None:
            uintr_loopstats_sample_end(&self.port.loopstats)
        if n == 0:
            return 0
        self.items = []                     # model step T
        for i in range(n):
            handle = <ThreadsafeHandle>items[i]
            if handle._cancelled:
                continue
            callback, args = handle._callback, handle._args
            handle._callback = handle._args = None
            try:
                PyContext_Enter(handle._context)
                try:
                    callback(*args)
                finally:
                    PyContext_Exit(handle._context)
            except (SystemExit, KeyboardInterrupt) as exc:
                # Propagate as asyncio does, and lose none of the rest. Inline,
                # we are not in a loop callback: a callback that raises it
                # hands it to uvloop, which stops the loop with it, ahead of
                # the rest.
                self.items[0:0] = items[i + 1:]
                if inline:
                    self.loop.call_soon(reraise, exc)
                if self.items:
                    self.drain_scheduled = True
                    self.loop.call_soon(self.drain)
                if inline:
                    return 0
                raise
            except BaseException as exc:
                context = {
                    "message": "Exception in callback %r" % (callback,),
                    "exception": exc,
                    "handle": handle,
                }
                if handle._source_traceback is not None:
                    context["source_traceback"] = handle._source_traceback
                self.loop.call_exception_handler(context)
        return 0

    def close(self):
        """The loop closed: callbacks not yet run are dropped, as asyncio's
        close drops its ready queue; later calls raise RuntimeError."""
        self.closed = True
        for handle in self.items:
            (<ThreadsafeHandle>handle).cancel()
        self.items = []
        # Let go of the port, so its memfd and eventfd go as soon as no
        # sender holds them, though the (closed) loop object lives on.
        if self.port is not None:
            self.port.wakeup_handler = None
            self.port = None


cdef int check_callback(callback, str method) except -1:
    # asyncio's debug-mode check
    if asyncio.iscoroutine(callback) or inspect.iscoroutinefunction(callback):
        raise TypeError("coroutines cannot be used with %s()" % method)
    if not callable(callback):
        raise TypeError("a callable object was expected by %s(), got %r"
                        % (method, callback))
    return 0


def reraise(exc):
    raise exc


def mailbox_call_soon_threadsafe(self, callback, *args, context=None):
    """Like ``call_soon()``, but thread-safe: the handle goes to the loop's
    mailbox and the loop is woken by a post of its wakeup vector."""
    return (<Mailbox?>self._uintr_mailbox).post(callback, args, context)
