# A loop's port: the page of UPIDs and the channel its notifications travel.
#
# Block 0 is the loop's own receiver. The loop keeps SN set on it while it
# runs callbacks and clears it only around the one place it blocks (the
# selector), mirroring switch_uintr_prepare/switch_uintr_return:
#
#     restore()    just before select: clear SN, then look at PIR; pending
#                  posts turn the select into a poll (timeout 0).
#     recognise()  just after select: set SN again, then take PIR and
#                  dispatch (vector 0: wakeup; vector i: Receiver in block i).
#
# While SN is set, call_soon_threadsafe from any thread is two locked
# instructions (PIR bit, counter), a load of the status word and no syscall;
# while the loop is blocked, the first post sets ON and writes the eventfd
# once, the rest coalesce until recognise.

cdef size_t TABLE_SIZE = sizeof(uintr_table_t)

# A fork child inherits its parent's loops, and with them the parent's table
# (MAP_SHARED) and notification eventfd. A child that ran such a loop would
# take the parent's posts out of PIR and deliver them to its own copies of the
# receivers (the parent's handler never runs), and on the uvloop base it
# would take the parent's call_soon_threadsafe wakeup, leaving the parent's
# mailbox undrained for good. So a loop belongs to the process that made it:
# in a child, its port refuses to restore or recognise (the loop raises at its
# next iteration) and its wakeups are dropped (the loop cannot run there).
# Each fork bumps this counter in the child; a port compares it with the
# value at its birth, which costs no syscall (getpid() is one).
cdef uint64_t fork_generation = 0


def _port_after_fork():
    global fork_generation
    fork_generation += 1
    register_fork_child()       # vectorfd.pxi: this child may send to our loops


os.register_at_fork(after_in_child=_port_after_fork)


cdef class Port:
    cdef uintr_table_t *table
    cdef int memfd
    cdef uintr_channel_t channel
    cdef uintr_sender_c wakeup_sender    # vector 0 of block 0: _write_to_self
    cdef uint64_t slots_used
    cdef dict receivers
    cdef readonly str mode
    cdef readonly bint closed
    cdef uint64_t recognised
    cdef uint64_t spurious
    cdef pid_t owner_pid
    cdef uint64_t born              # fork_generation when made (see above)
    cdef uintr_poll_stats_t poll_stats
    cdef uint64_t busy_poll_ns          # UINTR_BUSY_POLL_ADAPTIVE: the policy decides
    cdef uintr_adapt_t adapt            # the adaptive wakeup's state (busypoll.h)
    cdef public int epoll_fd            # the loop's epoll fd: a ready event ends a spin
    cdef public object wakeup_handler  # called on vector 0 (a base with a mailbox)
    cdef bint wakeup_inline         # the wakeup handler may run callbacks now (uvhook.pxi)
    cdef readonly object hw            # hardware mode: the HardwareReceiver
    cdef readonly object max_sleep     # hardware mode: longest select (port_hardware.pxi)
    cdef uintr_peer_set_t peers     # vector fds handed out, per block (vectorfd.pxi)
    cdef int reg_fds[2]             # sender registrations: [0] ours, [1] in capsules
    cdef object repair              # the SenderWatch of the repair (vectorfd.pxi)
    cdef uintr_loopstats_t loopstats  # time, iterations, wake latency (metrics.pxi)
    cdef object stats_floor         # monotonic busy/idle for readers (metrics.pxi)
    cdef bint repair_armed          # set once, under the port's critical section
    cdef object __weakref__

    def __cinit__(self, str mode="software", hardware=None):
        self.memfd = -1
        self.reg_fds[0] = self.reg_fds[1] = -1
        self.adapt.alarm_fd = -1        # before anything can fail: __dealloc__ closes it
        self.channel.kind = UINTR_CHANNEL_NONE
        self.channel.fd = -1
        self.table = NULL
        if mode != "software" and (mode != "hardware" or hardware is None):
            raise HardwareUnavailableError(
                "delivery mode %r is not available in this build; see "
                "uintr_loop.capabilities()" % (mode,))
        self.mode = mode
        self.table = <uintr_table_t *>uintr_map_table(&self.memfd, TABLE_SIZE)
        if self.table == NULL:
            err = errno
            raise OSError(err, "uintr_loop: cannot map the UPID table: %s" % os.strerror(err))
        cdef int rc = uintr_channel_open(&self.channel)
        if rc < 0:
            raise OSError(-rc, "uintr_loop: cannot open the notification channel: %s"
                          % os.strerror(-rc))
        uintr_upid_init(&self.table.block[0], 0, 0)   # SN set: not running
        self.wakeup_sender.table = self.table
        self.wakeup_sender.channel = self.channel
        self.wakeup_sender.index = 0
        self.wakeup_sender.vector = UINTR_WAKEUP_VECTOR
        self.wakeup_sender.closed = 0
        self.owner_pid = getpid()
        self.born = fork_generation
        self.busy_poll_ns = UINTR_BUSY_POLL_ADAPTIVE
        self.epoll_fd = -1
        uintr_adapt_init(&self.adapt, usable_cpus(), uintr_gil_word())
        self.slots_used = 1
        self.receivers = {}
        uintr_loopstats_init(&self.loopstats, timing_wanted())
        if mode == "hardware":
            # the alarm's sleep restores the software block alone; a
            # hardware port restores its kernel UPID too (before_block)
            self.adapt.alarm_ok = 0
            port_open_hardware(self, hardware)

    def __dealloc__(self):
        # Reached only when no Sender, Receiver or loop refers to this port any
        # more: nobody can write to the channel or the table after this.
        uintr_adapt_close(&self.adapt)
        uintr_channel_close(&self.channel)
        uintr_peers_close(&self.peers)
        if self.reg_fds[0] >= 0:
            close(self.reg_fds[0])
            close(self.reg_fds[1])
        if self.table != NULL:
            uintr_unmap_table(self.table, TABLE_SIZE, self.memfd)
            self.table = NULL

    def fileno(self):
        """The channel's fd, for the loop's selector (edge-triggered)."""
        return self.channel.fd

    cdef inline bint forked(self):
        return self.born != fork_generation

    cpdef check_owner(self):
        """RuntimeError in a fork child: the loop is its parent's (see the top)."""
        if self.born != fork_generation:
            raise RuntimeError(
                "this uintr_loop event loop belongs to process %d; a forked "
                "child cannot run it (its posts are the parent's): make a new "
                "loop in the child" % self.owner_pid)

    cpdef bint restore(self):
        """Clear SN before blocking; True if posts are pending (do not block)."""
        cdef bint pending
        self.check_owner()
        pending = uintr_upid_restore(&self.table.block[0])
        if self.hw is not None:
            pending = port_restore_hardware(self) or pending
        return pending

    @property
    def busy_poll(self):
        """Microseconds to spin on PIR before blocking (0: never), or
        ``"auto"``: the adaptive policy decides (busypoll.h)."""
        if self.busy_poll_ns == UINTR_BUSY_POLL_ADAPTIVE:
            return "auto"
        return self.busy_poll_ns / 1000.0

    @busy_poll.setter
    def busy_poll(self, microseconds):
        self.busy_poll_ns = check_busy_poll(microseconds)

    cpdef bint prepare_to_block(self, double timeout):
        """Before a select that may block ``timeout`` seconds (< 0: forever):
        spin if the setting or the adaptive policy says so, then restore.
        True: posts are pending, poll instead of blocking."""
        cdef uint64_t timeout_ns = UINT64_MAX
        cdef int hit
        self.check_owner()
        uintr_loopstats_wait_begin(&self.loopstats)
        if timeout >= 0:
            timeout_ns = <uint64_t>(timeout * 1e9) if timeout < 1e9 else UINT64_MAX
        uintr_adapt_park(&self.adapt, 1)        # until recognise (jobqueue.h)
        with nogil:
            hit = uintr_spin_before_block(&self.table.block[0], &self.adapt,
                                          self.busy_poll_ns, timeout_ns,
                                          self.epoll_fd, &self.poll_stats)
        if hit:
            uintr_adapt_park(&self.adapt, 0)
            return True
        return self.restore()

    cdef void expect(self, long delta) noexcept:
        """A thread round trip starts (+1) or is answered (-1): the
        adaptive policy's hint that a post is on its way."""
        uintr_adapt_expect(&self.adapt, delta)

    cdef uintr_poll_stats_t *poll_stats_ptr(self):
        return &self.poll_stats

    cpdef recognise(self):
        """Set SN again after blocking; take and dispatch pending vectors."""
        self.check_owner()
        uintr_adapt_park(&self.adapt, 0)
        uintr_loopstats_iteration(&self.loopstats)
        uintr_upid_suppress(&self.table.block[0])
        if self.hw is not None:
            port_recognise_hardware(self)
        uintr_adapt_observe(&self.adapt, uintr_upid_pending(&self.table.block[0]),
                            uintr_loopstats_posted_at(&self.loopstats))
        self.dispatch()

    cdef dispatch_from_check(self, bint nothing_ready):
        """dispatch() from the uvloop base's check hook: with nothing_ready
        (no loop callback is queued), the mailbox runs its callbacks in
        this iteration instead of scheduling a drain (mailbox.pxi)."""
        self.wakeup_inline = nothing_ready
        try:
            self.dispatch()
        finally:
            self.wakeup_inline = False

    cdef dispatch(self):
        """Take PIR and dispatch it (SN already set by the caller)."""
        cdef uintr_block_t *b = &self.table.block[0]
        cdef int had_on = 0
        cdef uint64_t bits
        cdef unsigned i
        cdef Receiver receiver
        if not uintr_upid_pending(b):
            return
        bits = uintr_upid_recognise(b, &had_on)
        if bits == 0:
            if had_on:
                self.spurious += 1
            return
        while bits:
            i = uintr_highest(bits)
            bits &= ~((<uint64_t>1) << i)
            self.recognised += 1
            if i != UINTR_WAKEUP_VECTOR:
                receiver = self.receivers.get(i)
                if receiver is not None:
                    receiver.recognise()
                    # its delivery is queued now: the wakeup's callbacks go
                    # behind it, as they always did (vector 0 comes last)
                    self.wakeup_inline = False
            elif self.wakeup_handler is not None:
                self.wakeup_handler()

    def wakeup(self):
        """Post the wakeup vector (the loop's _write_to_self).

        Returns silently when the loop is shut down, as asyncio's self-pipe
        write does: call_soon_threadsafe has checked for a closed loop first;
        and in a fork child, where the loop cannot run (see the top).
        """
        if self.forked():
            return          # the loop cannot run here; its parent's must not wake
        self.post_wakeup()

    cdef int post_wakeup(self) except -1:
        """Post the wakeup vector. A loop spinning for it gets the GIL at once:
        the poster lets go of it until the loop has run what the post brought
        (busypoll.h, "The yield"). Asked before the post, whose arrival ends
        the spin. A JobQueue worker's answer does not: the GIL baton hands
        the GIL over (jobqueue.h)."""
        cdef bint yield_gil = uintr_adapt_poster_yields(&self.adapt) and not uintr_jobq_owing()
        cdef unsigned wakes = uintr_adapt_wakes(&self.adapt) if yield_gil else 0
        cdef int rc
        uintr_adapt_note_poster(&self.adapt)
        rc = post_with_gil(&self.wakeup_sender)
        if rc < 0 and rc != -ESHUTDOWN:
            raise OSError(-rc, "uintr_loop: notification failed")
        if rc == 0 and yield_gil:
            self.poll_stats.yields += 1
            with nogil:
                uintr_adapt_yield_wait(&self.adapt, wakes)
        return 0

    def statistics(self):
        return block_statistics(&self.table.block[0], self.mode,
                                self.recognised, self.spurious, &self.poll_stats)

    cdef bint owned(self):
        # The table is a MAP_SHARED mapping that a fork shares: a child closing
        # its inherited copy of a loop or receiver must not shut down the
        # parent's UPIDs. Only the creating process writes the shut-down bit.
        return getpid() == self.owner_pid

    def close(self):
        """Shut every block down: later posts fail with ReceiverClosedError."""
        cdef Receiver receiver
        with cython.critical_section(self):     # against take_free_slot
            if self.closed:
                return
            self.closed = True
        if self.owned():
            uintr_upid_shutdown(&self.table.block[0])
            uintr_adapt_close(&self.adapt)
        for receiver in list(self.receivers.values()):
            receiver.close()
        if self.repair is not None:
            (<SenderWatch>self.repair).close()
        if self.hw is not None:
            self.hw.close()

    # The slot bitmap and the peer set are the port's only state that threads
    # other than the loop's change: a Receiver made with loop= from another
    # thread (attach), a Receiver freed wherever its last reference goes
    # (release), a vector fd made from any thread (export_vector_fd). With the
    # GIL each of these ran whole, as it calls no Python code. On a
    # free-threaded build they run under a critical section on the port, and
    # each region is plain C (bit operations, poll() and close() on the peers'
    # fds, no Python object touched): a critical section is suspended only
    # when its thread blocks on another lock or detaches, which C code that
    # takes no lock and makes no Python call never does, so each region is
    # as atomic as it was under the GIL. On a GIL build the sections compile
    # to nothing.

    cdef unsigned attach(self, Receiver receiver) except 0:
        cdef bint closed
        cdef unsigned slot = take_free_slot(self)
        if slot == 0:
            if self.closed:
                raise RuntimeError("Event loop is closed")
            raise RuntimeError(
                "uintr_loop: a loop holds at most %d receivers (one per "
                "notification vector); close some first" % (UINTR_TABLE_SLOTS - 1))
        # Published complete: once in the dict, close() or dispatch() on
        # another thread may use it.
        receiver.slot = slot
        receiver.block = &self.table.block[slot]
        self.receivers[slot] = receiver
        # Closed by another thread since the slot was taken? close() sets the
        # flag before it collects the receivers: either it sees this one and
        # closes it, or this test sees the flag. (The block stays marked used:
        # the port is finished.)
        with cython.critical_section(self):
            closed = self.closed
        if closed:
            self.receivers.pop(slot, None)
            raise RuntimeError("Event loop is closed")
        return slot

    cdef void detach(self, unsigned slot):
        self.receivers.pop(slot, None)

    cdef void release(self, unsigned slot):
        # Only once no Sender can refer to the block (the Receiver is being
        # deallocated), so a reused slot never receives a stale sender's post.
        with cython.critical_section(self):
            self.slots_used &= ~((<uint64_t>1) << slot)


cdef unsigned take_free_slot(Port port):
    """A free block, marked used and initialised (SN clear, nothing pending);
    0 when the port is closed or every block is taken."""
    cdef unsigned slot
    with cython.critical_section(port):
        if port.closed:
            return 0
        for slot in range(1, UINTR_TABLE_SLOTS):
            if not (port.slots_used >> slot) & 1:
                if uintr_peers_hold(&port.peers, slot):
                    # A vector fd or sender of the block's last receiver may
                    # still exist in some process: reusing the block would
                    # turn its posts into another receiver's (vectorfd.h).
                    continue
                port.slots_used |= (<uint64_t>1) << slot
                uintr_upid_init(&port.table.block[slot], slot, 0)
                return slot
    return 0


cdef object block_statistics(uintr_block_t *b, str mode, uint64_t delivered,
                             uint64_t spurious, uintr_poll_stats_t *polls=NULL):
    cdef uint64_t c[4]
    uintr_block_counters(b, c)
    return ReceiverStatistics(
        mode=mode,
        posted=c[0] + c[1] + c[2],
        notifications=c[0],
        coalesced=c[1],
        suppressed=c[2],
        refused=c[3],
        delivered=delivered,
        spurious=spurious,
        busy_polls=polls.polls if polls != NULL else 0,
        busy_poll_hits=polls.hits if polls != NULL else 0,
        busy_poll_time=polls.spin_ns / 1e9 if polls != NULL else 0.0,
        busy_poll_alarms=polls.alarms if polls != NULL else 0,
        busy_poll_yields=polls.yields if polls != NULL else 0,
    )


cdef uint64_t check_busy_poll(microseconds) except? 0:
    if isinstance(microseconds, str) and microseconds == "auto":
        return UINTR_BUSY_POLL_ADAPTIVE
    return <uint64_t>(check_duration(microseconds, "busy_poll", "microseconds",
                                     alternative="'auto'", minimum=0,
                                     maximum=1_000_000) * 1000)


def validate_busy_poll(microseconds):
    """Check a busy_poll value (TypeError/ValueError as the loops raise)."""
    check_busy_poll(microseconds)


cdef int usable_cpus():
    # The adaptive policy never spins with one CPU: the poster could only
    # run once the spin is over.
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
