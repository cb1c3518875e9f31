# The uvloop base: the loop's UPID bracketed by libuv's own loop phases.
#
# libuv runs, per iteration: timers, pending, idle, PREPARE, (timeout is
# computed) POLL, CHECK. uvloop releases the GIL for the whole uv_run, so our
# prepare and check callbacks run without it, as plain C:
#
#     prepare  if this iteration may block (uv_backend_timeout != 0): spin if
#              busy_poll or the adaptive policy says so (busypoll.h), then
#              restore (clear SN, load PIR); a pending post
#              starts our idle handle, which makes the coming poll a zero-timeout
#              one instead of a sleep. A post the spin caught is taken right
#              there, as check would take it, with nothing else ready. If the
#              iteration will not block, SN stays set (and our idle handle
#              makes sure of it, see on_prepare).
#     poll     the eventfd woke epoll: consume it (libuv polls level-triggered).
#     check    suppress (set SN); only if something is pending, take the GIL
#              and recognise (vector 0 drains the call_soon_threadsafe
#              mailbox right here when nothing else is ready, see
#              mailbox.pxi; vector i schedules Receiver i's delivery).
#
# So SN is clear exactly while the loop may sleep, as in the asyncio base, and
# a busy loop pays no syscall and no GIL round trip for the check. This is the
# tightest uvloop allows: its own wakeup (uv_async_t) and ready queue are
# private, with no C API; prepare/check are libuv's public hooks around the one
# place a libuv loop blocks.
#
# Lifetime: the handles and their shared state live in one malloc'd block,
# owned by libuv once started. close() (loop not running) uv_close()s them
# before uvloop's own close walks the loop's handles (uvloop would otherwise
# take our handles for its own); the last close callback frees the block.

from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from libc.stdlib cimport calloc, free
from posix.unistd cimport read as posix_read, close
from posix.fcntl cimport O_CLOEXEC

cdef extern from "<sys/epoll.h>" nogil:
    int epoll_create1(int flags)
    int EPOLL_CLOEXEC

cdef extern from "<unistd.h>" nogil:
    int dup3(int oldfd, int newfd, int flags)

from uvapi cimport *
from uvmetrics cimport uintr_loopstats_iteration_uv, uintr_uv_idle_time_fn, uintr_uv_metrics_enable


cdef struct uvhook_c:
    uintr_uv_api_t api
    void *uvloop
    uintr_block_t *block
    uintr_poll_stats_t *poll_stats
    uint64_t *busy_poll_ns
    uintr_loopstats_t *loopstats    # the port's (metrics.pxi)
    uintr_uv_idle_time_fn idle_time # libuv's measure of the waits; NULL: no timing
    uintr_adapt_t *adapt
    int efd
    uint64_t *fork_generation   # port.pxi's counter, and its value when made:
    uint64_t born               # they differ in a fork child (see on_prepare)
    int idle_active
    int open_handles
    PyObject *port          # strong reference, dropped by UVHook.close()
    void *prepare
    void *check
    void *idle
    void *poll


cdef int forget_parent_epoll(uvhook_c *h) noexcept:
    """In a fork child: libuv's epoll set is the parent's too (fork shares it),
    and closing the copy of the loop (our poll handle on the port's eventfd,
    uvloop's own handles) does EPOLL_CTL_DEL on it: the parent's eventfd then
    leaves its epoll set and a later wakeup never ends its epoll_wait. Put a
    private, empty epoll object at the backend fd's number first (dup3: only
    the child's fd table changes); libuv ignores the DELs' ENOENT."""
    cdef int fd = h.api.backend_fd(h.uvloop)
    cdef int fresh
    if fd < 0:
        return 0
    fresh = epoll_create1(EPOLL_CLOEXEC)
    if fresh < 0:
        return -1
    if dup3(fresh, fd, O_CLOEXEC) < 0:
        close(fresh)
        return -1
    close(fresh)
    return 0


cdef inline uvhook_c *hook_of(void *handle) noexcept nogil:
    return <uvhook_c *>(<void **>handle)[0]      # uv_handle_t.data


cdef void on_idle(void *handle) noexcept nogil:
    pass          # being active is its job: it makes the poll not block


cdef inline bint hook_forked(uvhook_c *h) noexcept nogil:
    return h.fork_generation[0] != h.born


cdef void on_prepare(void *handle) noexcept nogil:
    cdef uvhook_c *h = hook_of(handle)
    cdef int timeout = h.api.backend_timeout(h.uvloop)
    cdef uint64_t timeout_ns = UINT64_MAX
    cdef int hit
    if hook_forked(h):
        # A fork child running its parent's loop (port.pxi): touch nothing
        # shared, do not sleep, and end the run; UintrUVLoop.run_forever
        # then raises.
        h.api.stop(h.uvloop)
        start_idle(h)
        return
    if timeout == 0:
        # Usually a poll, not a sleep, and SN stays set. But the public
        # uv_backend_timeout() also says 0 while fd changes wait to reach
        # epoll, and the loop may then still sleep: our idle handle makes
        # sure it does not (one extra iteration, after which it is exact).
        start_idle(h)
        return
    uintr_loopstats_wait_begin(h.loopstats)
    if timeout > 0:
        timeout_ns = <uint64_t>timeout * 1000000
    uintr_adapt_park(h.adapt, 1)
    hit = uintr_spin_before_block(h.block, h.adapt, h.busy_poll_ns[0], timeout_ns,
                                  h.api.backend_fd(h.uvloop), h.poll_stats)
    uintr_loopstats_spun(h.loopstats)
    if hit:
        start_idle(h)
        if h.adapt.hit:
            # The spin caught a post (SN is set): take it now, not after
            # the poll, whose epoll_wait and the rest of the iteration
            # would be on its path. Nothing is ready, or the loop would
            # not have spun, and no Python has run since.
            uintr_adapt_park(h.adapt, 0)
            take_posts(h, True)
        return
    if uintr_upid_restore(h.block):
        start_idle(h)


cdef inline void start_idle(uvhook_c *h) noexcept nogil:
    if not h.idle_active:
        h.idle_active = 1
        h.api.idle_start(h.idle, on_idle)


cdef void on_poll(void *handle, int status, int events) noexcept nogil:
    cdef uint64_t counter
    if hook_forked(hook_of(handle)):
        return              # the parent's notification, not ours to consume
    posix_read(hook_of(handle).efd, &counter, sizeof(counter))    # model step E


cdef inline void take_posts(uvhook_c *h, bint before_poll) noexcept nogil:
    # Set SN and take what is pending: the check's work, or the prepare's
    # after a spin that caught a post (before_poll).
    cdef int pending
    cdef bint nothing_ready
    uintr_upid_suppress(h.block)
    pending = uintr_upid_pending(h.block)
    uintr_adapt_observe(h.adapt, pending, uintr_loopstats_posted_at(h.loopstats))
    if pending:
        # Nothing else ready (uvloop's ready queue empty: its idle handle
        # is stopped, so the next poll could block) is what lets the
        # mailbox run its callbacks in this iteration (mailbox.pxi).
        nothing_ready = before_poll or h.api.backend_timeout(h.uvloop) != 0
        uintr_adapt_await_handoff(h.adapt)
        with gil:
            recognise_from_check(<object>h.port, nothing_ready)


cdef void on_check(void *handle) noexcept nogil:
    cdef uvhook_c *h = hook_of(handle)
    if h.idle_active:
        h.idle_active = 0
        h.api.idle_stop(h.idle)
    uintr_adapt_park(h.adapt, 0)
    if hook_forked(h):
        return
    uintr_loopstats_iteration_uv(h.loopstats, h.idle_time, h.uvloop)
    take_posts(h, False)


cdef void recognise_from_check(object port, bint nothing_ready) noexcept:
    # SN is already set (on_check). Dispatching schedules loop callbacks,
    # or runs the mailbox's; an error here would be a bug, reported as
    # unraisable (a noexcept function) rather than lost.
    (<Port>port).dispatch_from_check(nothing_ready)


cdef void on_closed(void *handle) noexcept nogil:
    cdef uvhook_c *h = hook_of(handle)
    h.open_handles -= 1
    if h.open_handles == 0:
        free(h)          # the handles are inside the same block


cdef class UVHook:
    """Installs the loop's UPID into a uvloop Loop (see uvhook.pxi)."""
    cdef uvhook_c *h
    cdef readonly bint closed

    def __cinit__(self, loop, Port port not None, str uvloop_module_path not None):
        cdef char err[256]
        cdef uintr_uv_api_t api
        cdef size_t sizes[4]
        cdef size_t offset
        cdef char *block
        cdef void *uvl
        cdef int i
        err[0] = 0
        if uintr_uv_api_load(&api, uvloop_module_path.encode(), err, sizeof(err)) < 0:
            raise RuntimeError("uintr_loop: cannot hook into uvloop: %s; use "
                               "base='asyncio'" % err.decode())
        uvl = uintr_uv_find_loop(&api, <void *>loop, sizeof(PyObject))
        if uvl == NULL:
            raise RuntimeError("uintr_loop: this uvloop's Loop layout is not "
                               "recognised (no uv_loop_t pointing back at it); "
                               "use base='asyncio'")
        sizes[0] = api.handle_size(UINTR_UV_PREPARE)
        sizes[1] = api.handle_size(UINTR_UV_CHECK)
        sizes[2] = api.handle_size(UINTR_UV_IDLE)
        sizes[3] = api.handle_size(UINTR_UV_POLL)
        offset = (sizeof(uvhook_c) + 63) & ~(<size_t>63)
        block = <char *>calloc(1, offset + 4 * 512)
        if block == NULL:
            raise MemoryError()
        for i in range(4):
            if sizes[i] == 0 or sizes[i] > 512:
                free(block)
                raise RuntimeError("uintr_loop: unexpected libuv handle size %d"
                                   % sizes[i])
        self.h = <uvhook_c *>block
        self.h.api = api
        self.h.uvloop = uvl
        self.h.block = &port.table.block[0]
        self.h.poll_stats = port.poll_stats_ptr()
        self.h.busy_poll_ns = &port.busy_poll_ns
        self.h.loopstats = &port.loopstats
        if port.loopstats.timing:
            self.h.idle_time = uintr_uv_metrics_enable(uvloop_module_path.encode(), uvl)
            if self.h.idle_time == NULL:
                port.loopstats.timing = 0     # no measure of the waits: no time at all
        self.h.adapt = &port.adapt
        self.h.efd = port.channel.fd
        self.h.fork_generation = &fork_generation
        self.h.born = port.born
        self.h.prepare = block + offset
        self.h.check = block + offset + 512
        self.h.idle = block + offset + 1024
        self.h.poll = block + offset + 1536
        for handle in (<size_t>self.h.prepare, <size_t>self.h.check,
                       <size_t>self.h.idle, <size_t>self.h.poll):
            (<void **><size_t>handle)[0] = <void *>self.h
        Py_INCREF(port)
        self.h.port = <PyObject *>port
        self.init_handles()

    cdef int init_handles(self) except -1:
        cdef uvhook_c *h = self.h
        cdef int rc
        rc = h.api.prepare_init(h.uvloop, h.prepare)
        if rc == 0:
            h.open_handles += 1
            rc = h.api.check_init(h.uvloop, h.check)
        if rc == 0:
            h.open_handles += 1
            rc = h.api.idle_init(h.uvloop, h.idle)
        if rc == 0:
            h.open_handles += 1
            rc = h.api.poll_init(h.uvloop, h.poll, h.efd)
        if rc == 0:
            h.open_handles += 1
            rc = h.api.prepare_start(h.prepare, on_prepare)
        if rc == 0:
            rc = h.api.check_start(h.check, on_check)
        if rc == 0:
            rc = h.api.poll_start(h.poll, UINTR_UV_READABLE, on_poll)
        for handle in (<size_t>h.prepare, <size_t>h.check, <size_t>h.idle,
                       <size_t>h.poll):
            h.api.unref(<void *><size_t>handle)   # never keep the loop alive
        if rc != 0:
            self.close()
            raise OSError(-rc, "uintr_loop: libuv refused the loop's handles")
        return 0

    def close(self):
        """Close the handles (the loop must not be running); uvloop's close,
        which runs the loop once more, then frees them."""
        cdef uvhook_c *h = self.h
        if self.closed:
            return
        self.closed = True
        Py_XDECREF(h.port)
        h.port = NULL
        if hook_forked(h):
            forget_parent_epoll(h)
        if h.open_handles == 0:
            free(h)
            return
        for handle in (<size_t>h.prepare, <size_t>h.check, <size_t>h.idle,
                       <size_t>h.poll)[:h.open_handles]:
            h.api.close(<void *><size_t>handle, on_closed)
        self.h = NULL
