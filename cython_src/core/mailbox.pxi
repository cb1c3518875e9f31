# call_soon_threadsafe for a base whose ready queue is private (uvloop).
#
# A sender appends a handle to the mailbox and posts the wakeup vector; the
# loop, recognising vector 0, schedules one drain, which runs every handle in
# posting order. The post can be skipped when the mailbox was not empty.
#
# The mailbox's lock: the test for empty and the append are one step (model
# step M), and so is the drain's swap of the whole list (step T). With the
# GIL they are, as nothing between them releases it (no Python code runs
# there; the handle is built before). On a free-threaded build a critical
# section on the mailbox makes them one: every access to the mailbox's list
# happens inside it, so the list's own lock (taken by append) is never
# contended and cannot suspend the section, and each region is otherwise
# plain C. On a GIL build the sections compile to nothing.
#
# The post itself comes after the step, outside the lock (the model checks
# it so). The first handle of a list is appended by a poster that then
# posts; whoever sees the list non-empty relies on that post, which is
# already on its way: it lands either before the loop's next recognise (which
# then finds the list non-empty and schedules a drain) or after it (the next
# recognise does). A drain swaps out the whole current list, and only a
# drain does, so every list is taken by some drain, with every handle
# appended to it before the swap, and a handle appended after the swap goes
# to a fresh, empty list and posts again. A drain that takes a list before
# its first poster's post lands leaves that post spurious (the drain finds
# nothing), never a handle behind.
#
# A handle may be cancelled from another thread while a drain takes it: both
# under a critical section on the handle, so the drain runs the callback or
# skips it, and never reads a field the other thread is freeing.
#
# The wake-latency stamp taken after the step (includes/loopstats.h) is
# plain C and never releases the GIL either.
#
# Contexts: a post keeps a snapshot of the poster's context variables, and
# the drain runs each callback in one context object of its own loaded with
# the snapshot, the same object from callback to callback while nobody else
# holds it (kept between batches as the mailbox's spare). ctxsnap.c says why
# that is what asyncio's copy per call gives.

cimport cython
from cpython.list cimport PyList_GET_SIZE
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_DECREF, Py_INCREF
from batchlist cimport uintr_list_push, uintr_list_reset
from callargs cimport uintr_take_error
from ctxsnap cimport uintr_ctx_init, uintr_ctx_is_snapshot, uintr_ctx_load, uintr_ctx_snapshot
from gcpark cimport uintr_gc_park
from handlepool cimport uintr_handle_pool_install, uintr_handle_pool_size, uintr_handle_pool_trim
from tshandle cimport uintr_tshandle_context_of, uintr_tshandle_drain, uintr_tshandle_layout_ok, uintr_tshandle_new
from threadsafe cimport uintr_mailbox_layout_ok, uintr_threadsafe_bind, uintr_threadsafe_init


# the largest drained list kept for the next batch: 512 KiB of slots
cdef enum:
    SPARE_ITEMS_MAX = 65536


@cython.no_gc
cdef class ThreadsafeHandle:
    """What ``call_soon_threadsafe`` returns on the uvloop base: asyncio's
    Handle API (``cancel()``, ``cancelled()``, ``get_context()``)."""
    # Not tracked by the cycle collector: half the cost of a post was the GC
    # passes its allocations triggered. A cycle through its callback or
    # arguments does not outlive it: it drops both once it has run or been
    # cancelled (a handle that is never run is cancelled when the loop
    # closes). It keeps its context (or snapshot) after both, as asyncio's
    # Handle does, for get_context(); a cycle back to the handle through that
    # is one the collector cannot see. Its memory comes from a pool
    # (handlepool.h): a freelist of 8192 kept for good (about 400 KB), and an
    # overflow for a flood's batch that empties itself once floods stop.
    # Three references and a flag make 48 bytes, the allocator's size class
    # below 64: a batch touches a quarter less fresh memory (debug mode's
    # traceback lives in a subclass). The post makes it and the drain takes
    # it apart in C (tshandle.h), which mirrors this layout.
    #
    # The context: a post with context=None keeps a snapshot of the poster's
    # context variables (ctxsnap.h), not a copy of its context, in the same
    # field (a Context is the one given, or made from the snapshot). The
    # drain runs the callback in a context object of its own loaded with that
    # snapshot, which is what a copy would have been. get_context() makes the
    # copy when it is asked for; the drain makes it too when anyone but the
    # drain still holds the handle, since they may ask later.
    cdef object _callback
    cdef tuple _args
    cdef object _context    # the context given, or the poster's snapshot until one is made
    cdef bint _cancelled

    def cancel(self):
        cdef object callback = None, args = None
        with cython.critical_section(self):
            if not self._cancelled:
                self._cancelled = True
                callback, args = self._callback, self._args
                self._callback = None
                self._args = None
        # the references are dropped here, outside the section: a callback's
        # or argument's __del__ may run Python code

    def cancelled(self):
        return self._cancelled

    def get_context(self):
        with cython.critical_section(self):
            if uintr_ctx_is_snapshot(self._context):
                self._context = uintr_tshandle_context_of(self._context)
            return self._context

    @property
    def _source_traceback(self):
        """Where it was posted from (asyncio's name): debug mode only."""
        return None

    def __repr__(self):
        if self._cancelled:
            return "<ThreadsafeHandle cancelled>"
        return "<ThreadsafeHandle %r%r>" % (self._callback, self._args)


@cython.no_gc
cdef class DebugThreadsafeHandle(ThreadsafeHandle):
    """A ``ThreadsafeHandle`` made in debug mode: it keeps where it was posted from."""
    cdef object traceback

    @property
    def _source_traceback(self):
        return self.traceback


uintr_handle_pool_install(<PyTypeObject *>ThreadsafeHandle)
uintr_ctx_init()


cdef int check_handle_layout() except -1:
    cdef ThreadsafeHandle probe = ThreadsafeHandle.__new__(ThreadsafeHandle)
    callback, args, context = object(), (), object()
    probe._callback, probe._args, probe._context = callback, args, context
    probe._cancelled = True
    if not uintr_tshandle_layout_ok(probe, callback, args, context):
        raise ImportError("uintr_loop: ThreadsafeHandle's layout is not the one tshandle.h mirrors")
    return 0


check_handle_layout()


cdef Py_ssize_t uintr_handle_pool_held() noexcept:
    # for the test extension (uintr_loop/_core.pxd)
    return uintr_handle_pool_size()


cdef class Mailbox:
    cdef list items
    cdef Port port
    cdef readonly object loop
    cdef public bint debug
    cdef bint drain_scheduled
    cdef readonly bint closed
    cdef object spare       # the drain's context object between batches
    cdef list spare_items   # a drained list, empty, its storage kept (batchlist.h)

    def __cinit__(self, loop, Port port not None):
        self.items = new_items()
        self.loop = loop
        self.port = port
        port.wakeup_handler = self.on_wakeup

    cdef ThreadsafeHandle post(self, callback, tuple args, context):
        cdef ThreadsafeHandle handle
        cdef Port port = None
        cdef bint closed, first = False
        if self.closed:
            raise RuntimeError("Event loop is closed")
        if self.debug:
            check_callback(callback, "call_soon_threadsafe")
            handle = DebugThreadsafeHandle.__new__(DebugThreadsafeHandle)
            # where it was posted from, as asyncio's Handle records it (no
            # Python frame of ours: the innermost one is the caller's)
            (<DebugThreadsafeHandle>handle).traceback = traceback.extract_stack()
            handle._callback = callback
            handle._args = args
            handle._context = uintr_ctx_snapshot() if context is None else context
        else:
            handle = <ThreadsafeHandle>uintr_tshandle_new(<PyTypeObject *>ThreadsafeHandle,
                                                          callback, args, context)
        with cython.critical_section(self):  # model step M: the test and the append
            closed = self.closed
            if not closed:
                # not first: a post is already on its way
                first = uintr_list_push(self.items, handle)
                if first:
                    port = self.port
        if closed:
            raise RuntimeError("Event loop is closed")
        if first:
            threadsafe_wake(port)
        return handle

    def on_wakeup(self):
        # Port.recognise saw vector 0 (loop thread).
        cdef bint pending
        with cython.critical_section(self):
            pending = PyList_GET_SIZE(self.items) != 0
        if pending and not self.drain_scheduled and not self.closed:
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
        cdef list fresh = self.spare_items
        cdef list items
        cdef ThreadsafeHandle handle
        cdef Py_ssize_t i, n
        cdef PyObject *box = NULL       # a context object only this drain holds (tshandle.h)
        cdef PyObject *failed = NULL
        cdef PyObject *stopped = NULL
        if self.port is not None:
            uintr_loopstats_sample_end(&self.port.loopstats)
        if fresh is None:
            fresh = new_items()
        else:
            self.spare_items = None
        with cython.critical_section(self):     # model step T
            items = self.items
            n = PyList_GET_SIZE(items)
            if n:
                self.items = fresh
        if n == 0:
            self.spare_items = fresh
            return 0
        uintr_handle_pool_trim(False)
        if self.spare is not None:
            box = <PyObject *>self.spare
            Py_INCREF(<object>box)
            self.spare = None
        try:
            i = 0
            while True:
                # The list lets go of each handle as it runs, so a flood's
                # batch does not keep the contexts of callbacks already run
                # alive (and walked by the collector) until the whole batch
                # is done. A handle held by anyone else (the drain's
                # reference is the one left when not) may be asked for its
                # context later: it gets a context of its own (tshandle.h).
                stopped = uintr_tshandle_drain(items, &i, n, &box, &failed)
                if stopped == NULL:
                    break
                handle = <ThreadsafeHandle>stopped
                Py_DECREF(handle)       # the reference the drain returned
                stopped = NULL
                callback = <object>failed
                Py_DECREF(callback)
                failed = NULL
                exc = uintr_take_error()
                if isinstance(exc, (SystemExit, KeyboardInterrupt)):
                    # Propagate as asyncio does, and lose none of the rest.
                    # Inline, we are not in a loop callback: a callback that
                    # raises it hands it to uvloop, which stops the loop with
                    # it, ahead of the rest.
                    rest = items[i + 1:]
                    with cython.critical_section(self):
                        self.items[0:0] = rest
                        n = PyList_GET_SIZE(self.items)
                    if inline:
                        self.loop.call_soon(reraise, exc)
                    if n:
                        self.drain_scheduled = True
                        self.loop.call_soon(self.drain)
                    if inline:
                        return 0
                    raise exc
                callback_failed(self.loop, exc, callback, handle)
                exc = callback = None
                i += 1
            if box != NULL:
                # keeps no variable of the last callback alive
                uintr_ctx_load(<object>box, None)
                self.spare = <object>box
        finally:
            if box != NULL:
                Py_DECREF(<object>box)
                box = NULL
        if uintr_list_reset(items, SPARE_ITEMS_MAX):
            self.spare_items = items
        return 0

    def close(self):
        """The loop closed: callbacks not yet run are dropped, as asyncio's
        close drops its ready queue; later calls raise RuntimeError."""
        cdef list fresh = []
        cdef list items
        with cython.critical_section(self):
            self.closed = True
            items = self.items
            self.items = fresh
        for handle in items:
            (<ThreadsafeHandle>handle).cancel()
        items = None
        self.spare_items = None
        uintr_handle_pool_trim(True)
        # Let go of the port, so its memfd and eventfd go as soon as no
        # sender holds them, though the (closed) loop object lives on.
        with cython.critical_section(self):
            port = self.port
            self.port = None
        if port is not None:
            (<Port>port).wakeup_handler = None


cdef list new_items():
    # A mailbox's list holds only handles, which the collector does not
    # track (a cycle through one cannot be found anyway), so it is parked
    # for good: a young collection in a flood would otherwise walk the
    # thousands of handles waiting in it, each time (gcpark.h).
    cdef list items = []
    uintr_gc_park(items)
    return items


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


cdef int callback_failed(loop, exc, callback, ThreadsafeHandle handle) except -1:
    # asyncio's Handle._run reports from inside its except clause: the
    # handler sees the exception as the one being handled (sys.exc_info()).
    try:
        raise exc
    except BaseException:
        context = {
            "message": "Exception in callback %r" % (callback,),
            "exception": exc,
            "handle": handle,
        }
        if isinstance(handle, DebugThreadsafeHandle):
            context["source_traceback"] = (<DebugThreadsafeHandle>handle).traceback
        loop.call_exception_handler(context)
    return 0


cdef int threadsafe_wake(object port) except -1:
    # after a first handle: its post (port, read with the append)
    if port is None or (<Port>port).forked():
        return 0                # closed meanwhile, or a fork child's copy (port.pxi)
    # wake-latency sample: this post's drain files it (metrics.pxi)
    uintr_loopstats_stamp(&(<Port>port).loopstats)
    (<Port>port).post_wakeup()
    return 0


cdef object threadsafe_post(object mailbox, object callback, object args, object context):
    return (<Mailbox>mailbox).post(callback, <tuple>args, context)


uintr_threadsafe_init(<PyTypeObject *>ThreadsafeHandle, threadsafe_post, threadsafe_wake)


def threadsafe_method(Mailbox mailbox not None):
    """The mailbox's ``call_soon_threadsafe`` as a function bound to it, for
    a loop's instance (threadsafe.h): the same call as the method's, with
    its arguments taken straight from the call and its post in C."""
    cdef char *base = <char *><PyObject *>mailbox
    if not uintr_mailbox_layout_ok(mailbox, mailbox.items, mailbox.port, mailbox.loop,
                                   <char *>&mailbox.debug - base, <char *>&mailbox.closed - base):
        raise SystemError("uintr_loop: Mailbox's layout is not the one threadsafe.h mirrors")
    return uintr_threadsafe_bind(mailbox)


def mailbox_call_soon_threadsafe(self, callback, *args, context=None):
    """Like ``call_soon()``, but thread-safe: the handle goes to the loop's
    mailbox and the loop is woken by a post of its wakeup vector."""
    return (<Mailbox?>self._uintr_mailbox).post(callback, args, context)
