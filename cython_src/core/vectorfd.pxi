# Vector fds across processes (software mode): the owner exports a block as a
# vector fd, any process opens a Sender from it, and each side learns when
# the other is gone. The mechanisms and why they are safe are in
# includes/vectorfd.h (the fd) and includes/liveness.h (the owner's death).
#
# One more hazard is new with other processes: a sender can be killed between
# the two halves of a post. Threads of one process die together; a process
# killed (SIGKILL) after it set ON in a UPID and before it notified leaves ON
# set with nobody to notify, so every later post coalesces on it:
#   - on the loop's own UPID (block 0) the loop takes the bits on its next
#     iteration anyway (recognise() after the select takes ON and PIR); what
#     it needs is an iteration;
#   - on a receiver's block, ON stuck means its NV is never posted to block 0:
#     the loop must do what that notification would have done (C then X).
# Recognising early is always safe: at worst it turns a later notification
# into a spurious one (counted), never loses a post (upid.h).
#
# When to do it: when such a process dies, and only then. Senders of the
# loop's own process cannot die half way without the loop dying too, so
# they need nothing. Every other process that opens a sender registers first
# (includes/vectorfd.h, "The registration socket"; again in each fork child):
# it sends the owner a pidfd of itself. The SenderWatch below waits on each
# of those pidfds (a thread in epoll, which wakes the loop only for an
# event); the kernel makes one readable when its process exits, however it
# exits, and the loop repairs every receiver block with ON set. An idle loop therefore sleeps: no timer,
# whatever the senders. Bound: a post left half done by a dying process is
# delivered in the loop iteration that takes that process's exit, so as late
# as the exit itself (the kernel's exit path, then the loop's wakeup, the
# same scheduling delay as any notification's), never later; a process
# registers before its first post, so the owner cannot miss its death.
#
# Two fallbacks keep it sound where the kernel cannot help. A process that
# cannot register (no pidfd_open: Linux < 5.3, or the owner's registration
# queue full) marks the table instead, and a process whose pidfd cannot be
# watched (more than MAX_WATCHED of them) is not watched: then the loop looks
# on a timer from then on: every REPAIR_INTERVAL it repairs a
# block whose ON it finds set at two successive looks with no notification
# in between, so such a post is at most 2 x REPAIR_INTERVAL late.
#
# One case waits longer: a sender thread cut off half way by an exec() in
# another thread of its process (exec ends every other thread, but the pid
# lives on, so the pidfd does not fire). Its post stays in PIR, and is
# repaired when that process, running its new program, exits.

REPAIR_INTERVAL = 0.05
"""Seconds between two looks on the timer fallback (see the top)."""

MAX_WATCHED = 1024
"""Sender processes the loop watches at most; beyond: the timer fallback."""

REPAIR_ON_EXIT = True
"""False turns the repair at a sender process's exit off (the soak does, so
that a lost wakeup stays visible instead of being repaired)."""


cdef int export_vector_fd(Receiver receiver, unsigned vector) except -2:
    """Make a vector fd for (receiver, vector), or -1 in a process that does
    not own the receiver's loop (a fork child's copy of it)."""
    cdef Port port = receiver.port
    cdef int peer = -1
    cdef int fd = -1
    cdef int rc = 0
    cdef int added = 0
    cdef bint opened = False
    if not port.owned():
        return -1
    # any thread: the registration socket and the peer set under the port's
    # critical section (port.pxi)
    with cython.critical_section(port):
        if port.reg_fds[0] < 0:
            rc = uintr_reg_open(port.reg_fds)
            opened = rc >= 0
        if rc >= 0:
            uintr_peers_hold(&port.peers, receiver.slot)   # forget peers of fds closed everywhere
            fd = uintr_vfd_create(port.memfd, port.channel.fd, port.reg_fds[1], receiver.slot,
                                  vector, TABLE_SIZE, &peer)
            if fd >= 0:
                added = uintr_peers_add(&port.peers, receiver.slot, peer)
    if rc < 0:
        raise OSError(-rc, "uintr_loop: cannot make the sender registration socket: %s"
                      % os.strerror(-rc))
    if opened:
        _registries.add(port)
    if fd < 0:
        raise OSError(-fd, "uintr_loop: cannot create a vector fd: %s" % os.strerror(-fd))
    if added < 0:
        close(fd)
        close(peer)
        raise MemoryError()
    arm_watch(port, receiver.loop)
    return fd


cdef class SenderLease:
    """What a Sender opened from a vector fd holds: this process's mapping of
    the receiver's table (shared by its senders, watched for the owner's
    exit), a copy of the notification eventfd, and a copy of the vector fd
    (so the owner does not reuse the block while this sender exists)."""
    cdef uintr_lease_t *lease
    cdef int event_fd
    cdef int keep_fd
    cdef bint has_fd_fields
    cdef readonly int owner_pid
    cdef readonly unsigned index

    def __cinit__(self):
        self.event_fd = -1
        self.keep_fd = -1
        self.has_fd_fields = True    # see VectorFd.__cinit__

    def __dealloc__(self):
        # Only with the Sender: no thread can be sending through it any more.
        if self.lease != NULL:
            uintr_lease_release(self.lease)
        if not self.has_fd_fields:
            return
        if self.event_fd >= 0:
            close(self.event_fd)
        if self.keep_fd >= 0:
            close(self.keep_fd)

    def __repr__(self):
        return "<block %d of process %d>" % (self.index, self.owner_pid)


_VFD_ERRORS = {
    _errno.EBADF: "fd %d is not open",
    _errno.ENOTSOCK: "fd %d is not a vector fd (not a socket)",
    _errno.EPROTOTYPE: "fd %d is a socket, but not a uintr_loop vector fd",
    _errno.ENOMSG: ("fd %d carries no capability: not a vector fd, or a holder "
                    "consumed it with recv()"),
    _errno.EPROTO: "fd %d is not a vector fd of this uintr_loop version",
}


cdef SenderLease open_vector_fd(object fd, uintr_sender_c *c):
    cdef uintr_vfd_opened_t o
    cdef int err = 0
    cdef int rc
    cdef int hupfd
    cdef SenderLease lease
    if fd < 0:
        raise InvalidVectorFdError("fd %d is not open" % fd)
    if fd > 0x7fffffff:
        raise InvalidVectorFdError("fd %d is out of range" % fd)
    rc = uintr_vfd_open(fd, TABLE_SIZE, &o)
    if rc == -ESHUTDOWN:
        raise ReceiverClosedError("the receiving process is gone")
    if rc < 0:
        message = _VFD_ERRORS.get(-rc)
        if message is not None:
            raise InvalidVectorFdError(message % fd)
        if rc == -_errno.ESRCH:
            raise OSError(-rc, "uintr_loop: the receiving process is not visible "
                               "from this pid namespace")
        raise OSError(-rc, "uintr_loop: cannot open vector fd %d: %s" % (fd, os.strerror(-rc)))
    lease = SenderLease.__new__(SenderLease)
    lease.event_fd = o.event_fd
    lease.keep_fd = o.keep_fd
    lease.owner_pid = o.owner_pid
    lease.index = o.hdr.index
    hupfd = fcntl(o.keep_fd, F_DUPFD_CLOEXEC, 0) if o.pidfd >= 0 else -1
    if o.pidfd >= 0 and hupfd < 0:
        # No fd left to watch for an owner that execs: refuse (EMFILE)
        # rather than open a sender that would not learn of it.
        err = errno
        close(o.table_fd)
        close(o.pidfd)
        close(o.reg_fd)
        raise OSError(err, "uintr_loop: cannot open vector fd %d: %s" % (fd, os.strerror(err)))
    # the lease takes the pidfd and hupfd, whatever happens
    # the lease takes the registration socket too, and registers this process
    lease.lease = uintr_lease_acquire(o.table_fd, TABLE_SIZE, o.pidfd, hupfd, o.reg_fd, &err)
    close(o.table_fd)                   # the mapping keeps the table
    if lease.lease == NULL:
        raise OSError(-err, "uintr_loop: cannot map or watch the receiver's UPID table")
    c.table = lease.lease.table
    c.channel.kind = UINTR_CHANNEL_EVENTFD
    c.channel.fd = o.event_fd
    c.index = o.hdr.index
    c.vector = o.hdr.vector
    c.closed = 0
    if uintr_upid_is_shut(&c.table.block[c.index]):
        raise ReceiverClosedError()
    return lease


# Ports that made a registration socket, for register_fork_child().
_registries = weakref.WeakSet()


cdef class SenderWatch:
    """The owner's side of the repair (see the top): the registration socket
    and one pidfd per registered sender process, and the timer fallback.

    The fds are not the loop's readers: a fork child's copy of a uvloop loop
    shares its parent's epoll set, and closing that copy would reach the
    parent's watch. They sit in an epoll set of their own, one-shot, which a
    thread waits on (no timeout: it costs nothing while idle); an event
    becomes one call_soon_threadsafe to the loop, whose callback handles it
    and re-arms the fd. The thread never touches the port or the loop's
    state; everything else runs on the loop thread, in the owning process."""
    cdef Port port
    cdef object loop_ref
    cdef dict pidfds                # pid -> pidfd, each in the epoll set
    cdef object epoll
    cdef object fds                 # _WatchFds: the epoll set and the stop pipe
    cdef object thread
    cdef bint started
    cdef bint closed
    cdef readonly bint polling      # the timer fallback runs
    cdef readonly uint64_t repairs
    cdef readonly uint64_t exits
    cdef uint64_t on_seen           # timer fallback: blocks with ON set at the last tick
    cdef uint64_t last_notifications[64]
    cdef object __weakref__         # the thread holds us weakly

    def __cinit__(self, Port port not None, loop):
        self.port = port
        self.loop_ref = weakref.ref(loop)    # the loop owns the port: no cycle
        self.pidfds = {}

    cdef object live_loop(self):
        loop = self.loop_ref()
        if loop is None or loop.is_closed() or self.port.closed or self.closed:
            return None
        return loop

    def start(self):
        loop = self.live_loop()
        if loop is None or self.started or not self.port.owned():
            return
        self.started = True
        self.fds = _WatchFds()
        self.epoll = self.fds.epoll
        self.epoll.register(self.fds.stop_r, select.EPOLLIN)
        self.epoll.register(self.port.reg_fds[0], select.EPOLLIN | select.EPOLLONESHOT)
        self.thread = threading.Thread(
            target=_watch_thread,
            args=(self.fds, self.loop_ref, weakref.WeakMethod(self.on_event)),
            name="uintr_loop sender watch", daemon=True)
        self.thread.start()
        self.take_registrations()

    def on_event(self, int fd):
        """Loop callback for a one-shot event of the watch thread."""
        if self.live_loop() is None or not self.port.owned():
            return
        if fd == self.port.reg_fds[0]:
            self.take_registrations()
            return
        for pid, pidfd in list(self.pidfds.items()):
            if pidfd == fd:
                self.sender_exited(pid)

    def take_registrations(self):
        """Watch every process that registered."""
        cdef int pidfd = -1
        cdef int pid = 0
        cdef int rc
        if self.live_loop() is None or not self.port.owned():
            return
        while True:
            rc = uintr_reg_take(self.port.reg_fds[0], &pidfd, &pid)
            if rc == 0:
                break
            if rc < 0:
                self.start_polling()
                return                          # not re-armed
            if rc == 2:
                self.start_polling()            # a process we cannot watch
            elif pid < 0:                       # gone already: repair now
                close(pidfd)
                self.exits += 1
                if REPAIR_ON_EXIT:
                    self.repair_all()
            elif pid in self.pidfds or len(self.pidfds) >= MAX_WATCHED:
                close(pidfd)                    # watched already (a second lease)
                if pid not in self.pidfds:
                    self.start_polling()
            else:
                try:
                    self.epoll.register(pidfd, select.EPOLLIN | select.EPOLLONESHOT)
                except BaseException:
                    close(pidfd)
                    raise
                self.pidfds[pid] = pidfd
        if uintr_table_unwatched(self.port.table):
            self.start_polling()
        self.epoll.modify(self.port.reg_fds[0], select.EPOLLIN | select.EPOLLONESHOT)

    def sender_exited(self, pid):
        """A registered sender process is gone."""
        cdef int pidfd
        if not self.port.owned():
            return
        pidfd = self.pidfds.pop(pid, -1)
        if pidfd >= 0:
            try:
                self.epoll.unregister(pidfd)
            except OSError:
                pass
            close(pidfd)
        self.exits += 1
        if REPAIR_ON_EXIT and self.live_loop() is not None:
            self.repair_all()

    cdef repair_all(self):
        """Do what a dead sender's missing notification would have done, on
        every receiver block with ON set (safe at any time: see the top).
        Block 0 is the loop's own: this iteration's recognise took it."""
        cdef uintr_block_t *b
        cdef unsigned slot
        for slot, receiver in list(self.port.receivers.items()):
            b = &self.port.table.block[slot]
            if uintr_upid_status(b) & UINTR_ON:         # model step K
                self.repairs += 1
                (<Receiver>receiver).recognise()

    cdef start_polling(self):
        loop = self.live_loop()
        if self.polling or loop is None:
            return
        self.polling = True
        loop.call_soon(self.tick)

    def tick(self):
        if self.live_loop() is None:
            return
        self.scan()
        self.loop_ref().call_later(REPAIR_INTERVAL, self.tick)

    cdef scan(self):
        cdef uint64_t counters[4]
        cdef uintr_block_t *b
        cdef unsigned slot
        cdef bint on
        for slot, receiver in list(self.port.receivers.items()):
            b = &self.port.table.block[slot]
            uintr_block_counters(b, counters)
            on = (uintr_upid_status(b) & UINTR_ON) != 0
            if (on and (self.on_seen >> slot) & 1
                    and counters[0] == self.last_notifications[slot]):
                self.repairs += 1
                (<Receiver>receiver).recognise()
                on = False
            self.last_notifications[slot] = counters[0]
            if on:
                self.on_seen |= (<uint64_t>1) << slot
            else:
                self.on_seen &= ~((<uint64_t>1) << slot)

    cdef close(self):
        """With the port: stop watching (the loop is closed or closing). In
        a fork child only our copies of the fds close: the epoll set is the
        parent's too, and no thread runs here. The registration socket stays
        open with the port (capsules name it)."""
        cdef int fd
        if self.closed:
            return
        self.closed = True
        for fd in self.pidfds.values():
            close(fd)
        self.pidfds.clear()
        if self.fds is None:
            return
        if not self.port.owned():
            (<_WatchFds>self.fds).close_copies()
        elif (<_WatchFds>self.fds).stop() and self.thread is not threading.current_thread():
            self.thread.join(5.0)
            if not self.thread.is_alive():
                (<_WatchFds>self.fds).close()


cdef class _WatchFds:
    """The watch thread's epoll set and the pipe that stops it, closed once.

    Two parties may end the thread, and either may come first: close() above
    (the loop closes its port) writes to the pipe; the thread itself returns
    when it cannot post to the loop any more, which happens as soon as the
    loop marks itself closed, before the port closes (a sender process may
    exit in between). So the write and the closing of the fds take one lock
    and a flag: the write happens only while the fds are open, each fd closes
    once, and whoever is last closes them (the thread, if close() gave up
    waiting for it). No number is ever written to or closed after it may
    have been reused for another file."""
    cdef readonly object epoll
    cdef readonly int stop_r
    cdef int stop_w
    cdef object lock
    cdef bint closed

    def __cinit__(self):
        self.stop_r = self.stop_w = -1
        self.lock = threading.Lock()
        self.epoll = select.epoll()
        self.stop_r, self.stop_w = os.pipe2(os.O_CLOEXEC)

    cdef bint stop(self) except -1:
        """Ask the thread to return; False if it has closed the fds already."""
        with self.lock:
            if self.closed:
                return False
            os.write(self.stop_w, b"x")
            return True

    def close(self):
        with self.lock:
            self.close_copies()

    cdef close_copies(self):
        """Close the fds once. Without the lock only in a fork child, where
        no thread runs and the lock may have been held at the fork by the
        parent's."""
        if not self.closed:
            self.closed = True
            self.epoll.close()
            close(self.stop_r)
            close(self.stop_w)


def _watch_thread(_WatchFds fds, loop_ref, on_event_ref):
    """The watch thread (see SenderWatch): wait, hand each event to the loop.
    On its way out it closes the fds unless close() has (see _WatchFds)."""
    try:
        while True:
            try:
                events = fds.epoll.poll()
            except InterruptedError:
                continue
            for fd, _ in events:
                loop, on_event = loop_ref(), on_event_ref()
                if fd == fds.stop_r or loop is None or on_event is None:
                    return
                try:
                    loop.call_soon_threadsafe(on_event, fd)
                except RuntimeError:            # the loop is closed
                    return
                del loop, on_event
    finally:
        fds.close()


cdef arm_watch(Port port, loop):
    cdef bint first = False
    # any thread (export_vector_fd): exactly one caller makes the watch
    with cython.critical_section(port):
        if not port.repair_armed:
            port.repair_armed = True
            first = True
    if not first:
        return
    port.repair = SenderWatch(port, loop)
    # asyncio's loops record the thread running them; a loop that does not
    # say is assumed to be running elsewhere.
    owner = getattr(loop, "_thread_id", -1)
    try:
        if owner is None or owner == threading.get_ident():
            loop.call_soon(port.repair.start)     # no wakeup post needed
        else:
            loop.call_soon_threadsafe(port.repair.start)
    except RuntimeError:       # the loop is closing: nothing left to repair
        pass


cdef register_fork_child():
    """In a fork child of a loop's process: the child may send through
    senders it inherited, so the loops must watch it too (see the top)."""
    cdef Port port
    for p in list(_registries):
        port = <Port>p
        if not port.closed and port.reg_fds[1] >= 0 and port.table != NULL:
            uintr_register_self(port.reg_fds[1], port.table)



cdef object sender_watch_figures(object loop):
    """The loop's watch over sender processes (see the top), for the test
    extension: watched (processes), exits (seen), repairs and polling."""
    port = getattr(loop, "_uintr_port", None)
    if port is None or (<Port>port).repair is None:
        return {"watched": 0, "exits": 0, "repairs": 0, "polling": False}
    w = <SenderWatch>(<Port>port).repair
    return {"watched": len(w.pidfds), "exits": w.exits, "repairs": w.repairs,
            "polling": w.polling}


cdef object liveness_figures():
    """This process's view of other processes' tables (includes/liveness.h)."""
    cdef uint64_t s[4]
    uintr_liveness_state(s)
    return {"leases": s[0], "watched": s[1], "owner_deaths": s[2],
            "watcher_running": bool(s[3])}


def _liveness_after_fork():
    cdef int rc = uintr_liveness_after_fork()
    if rc < 0:
        raise OSError(-rc, "uintr_loop: cannot restart the liveness watcher after fork")


os.register_at_fork(after_in_child=_liveness_after_fork)
