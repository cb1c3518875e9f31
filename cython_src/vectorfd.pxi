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
#     iteration anyway (restore() checks PIR before it blocks); what it needs
#     is an iteration, so the repair timer below makes sure one happens at
#     least every REPAIR_INTERVAL;
#   - on a receiver's block, ON stuck means its NV is never posted to block 0:
#     the timer finds ON set at two successive ticks with no notification in
#     between (a live sender's notification is taken within one loop
#     iteration) and does what that notification would have done.
# Recognising early is always safe: at worst it turns a later notification
# into a spurious one (counted), never loses a post (upid.h). So a sender
# killed at the worst instant delays delivery by at most 2 x REPAIR_INTERVAL.

REPAIR_INTERVAL = 0.05
"""Seconds between two looks for a post a killed sender left half done."""


cdef int export_vector_fd(Receiver receiver, unsigned vector) except -2:
    """Make a vector fd for (receiver, vector), or -1 in a process that does
    not own the receiver's loop (a fork child's copy of it)."""
    cdef Port port = receiver.port
    cdef int peer = -1
    cdef int fd
    cdef int added = 0
    if not port.owned():
        return -1
    # any thread: the peer set under the port's critical section (port.pxi)
    with cython.critical_section(port):
        uintr_peers_hold(&port.peers, receiver.slot)   # forget peers of fds closed everywhere
        fd = uintr_vfd_create(port.memfd, port.channel.fd, receiver.slot, vector,
                              TABLE_SIZE, &peer)
        if fd >= 0:
            added = uintr_peers_add(&port.peers, receiver.slot, peer)
    if fd < 0:
        raise OSError(-fd, "uintr_loop: cannot create a vector fd: %s" % os.strerror(-fd))
    if added < 0:
        close(fd)
        close(peer)
        raise MemoryError()
    arm_repair(port, receiver.loop)
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
        raise OSError(err, "uintr_loop: cannot open vector fd %d: %s" % (fd, os.strerror(err)))
    # the lease takes the pidfd and hupfd, whatever happens
    lease.lease = uintr_lease_acquire(o.table_fd, TABLE_SIZE, o.pidfd, hupfd, &err)
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


cdef class Repair:
    """The loop-side timer of the half-done-post repair (see the top)."""
    cdef Port port
    cdef object loop_ref
    cdef uint64_t on_seen          # blocks with ON set at the last tick
    cdef uint64_t last_notifications[64]
    cdef readonly uint64_t repairs

    def __cinit__(self, Port port not None, loop):
        self.port = port
        self.loop_ref = weakref.ref(loop)    # the loop owns the port: no cycle

    def tick(self):
        loop = self.loop_ref()
        if loop is None or loop.is_closed() or self.port.closed:
            return
        self.scan()
        loop.call_later(REPAIR_INTERVAL, self.tick)

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


cdef arm_repair(Port port, loop):
    cdef bint first = False
    # any thread (export_vector_fd): exactly one caller arms the timer
    with cython.critical_section(port):
        if not port.repair_armed:
            port.repair_armed = True
            first = True
    if not first:
        return
    repair = port.repair = Repair(port, loop)
    # asyncio's loops record the thread running them; a loop that does not
    # say is assumed to be running elsewhere.
    owner = getattr(loop, "_thread_id", -1)
    try:
        if owner is None or owner == threading.get_ident():
            loop.call_soon(repair.tick)      # no wakeup post needed
        else:
            loop.call_soon_threadsafe(repair.tick)
    except RuntimeError:       # the loop is closing: nothing left to repair
        pass


def repair_count(loop):
    """How many half-done posts the loop's repair timer has completed."""
    port = loop._uintr_port
    if port is None or (<Port>port).repair is None:
        return 0
    return (<Repair>(<Port>port).repair).repairs


def liveness_state():
    """This process's view of other processes' tables: a dict of leases
    (tables mapped), watched (owners watched), owner_deaths (tables the
    watcher shut down) and watcher_running."""
    cdef uint64_t s[4]
    uintr_liveness_state(s)
    return {"leases": s[0], "watched": s[1], "owner_deaths": s[2],
            "watcher_running": bool(s[3])}


def _liveness_after_fork():
    cdef int rc = uintr_liveness_after_fork()
    if rc < 0:
        raise OSError(-rc, "uintr_loop: cannot restart the liveness watcher after fork")


os.register_at_fork(after_in_child=_liveness_after_fork)
