# Receivers: recognition into UIRR, delivery highest first, masking (UIF).
#
# Everything here runs on the loop thread except close(), vector_fd() and the
# VectorFd's close(), which are safe from any thread. close() only sets the
# closed flag (once, under a critical section on the receiver) and the UPID's
# shut-down bit (atomic); UIRR and the masking state belong to the loop thread
# alone, and every delivery path tests the flag before it calls a handler, so
# a close from another thread needs to touch nothing else: vectors left in
# UIRR are never delivered. Without the GIL (a free-threaded build) a loop
# thread that read the flag just before it was set runs at most the handler
# call already under way, as with the GIL.


cdef class Receiver:
    """A user-interrupt receiver bound to a uintr_loop event loop.

    ``handler(vector)`` runs on the loop's thread as a loop callback, once per
    delivered vector, highest vector first, never nested; its exceptions go to
    the loop's exception handler. Posts of one vector before its delivery
    coalesce into one call, as in hardware.

    ``Receiver(handler, *, loop=None)`` raises TypeError (``handler`` not
    callable, ``loop`` not a uintr_loop loop), RuntimeError (the loop is
    closed, no running loop and no ``loop=``, or 63 receivers already).
    """
    cdef Port port
    cdef uintr_block_t *block
    cdef unsigned slot
    cdef readonly object handler
    cdef readonly object loop
    cdef uint64_t uirr
    cdef int mask_depth
    cdef bint delivery_scheduled
    cdef bint in_handler
    cdef readonly bint closed
    cdef uint64_t delivered
    cdef uint64_t spurious

    # __cinit__, not __init__: no Receiver can exist without its block, so
    # none can reach the C pointers uninitialised (not even via __new__).
    def __cinit__(self, handler, *, loop=None):
        check_handler(handler)
        if loop is None:
            loop = asyncio.get_running_loop()
        if not hasattr(loop, "_uintr_port"):
            raise TypeError(
                "a Receiver needs a uintr_loop event loop (uintr_loop."
                "new_event_loop()), got %s" % type(loop).__name__)
        port = loop._uintr_port
        if port is None or loop.is_closed():
            raise RuntimeError("Event loop is closed")
        self.handler = handler
        self.loop = loop
        self.port = <Port>port
        self.slot = self.port.attach(self)
        self.block = &self.port.table.block[self.slot]
        uintr_upid_restore(self.block)   # a loop receiver always takes notifications

    def __dealloc__(self):
        if self.slot and self.port is not None:
            self.port.release(self.slot)

    def __repr__(self):
        state = "closed" if self.closed else "open"
        return "<Receiver nv=%d %s handler=%r>" % (self.slot, state, self.handler)

    @staticmethod
    def for_task(handler, task=None, *, urgent=()):
        """Make ``task`` (None: the current task) a receiver: its vectors are
        delivered inside the task, before its code continues, and cost no
        wakeup while it is suspended. ``urgent`` vectors are delivered even
        into the task's running code (main thread only). See shim.pxi and
        docs/guide/task-receivers.md; raises TaskReceiverError."""
        return make_task_receiver(handler, task, urgent)

    def vector_fd(self, vector):
        """The capability to send ``vector`` (0..63) to this receiver.

        The analogue of uintr_vector_fd(): give it to ``Sender(...)``.
        Raises TypeError (not an int), ValueError (not in 0..63),
        ReceiverClosedError (the receiver or its loop is closed). Any thread.
        """
        vfd = VectorFd(self, vector)      # it checks the vector and the receiver
        if self.port.hw is not None:
            port_hardware_vector(self, vector)
        return vfd

    def masked(self):
        """Defer delivery (CLUI) inside the block; deliver what arrived on
        exit (STUI). Nests. Only on the loop's thread: RuntimeError from
        another one while the loop runs; ReceiverClosedError once closed."""
        self.check_thread("masked")
        if self.closed:
            raise ReceiverClosedError()
        return MaskedSection(self)

    def statistics(self):
        """An immutable ReceiverStatistics record of this receiver (also
        after close: the figures as they were)."""
        return block_statistics(self.block, self.port.mode,
                                self.delivered, self.spurious)

    def close(self):
        """Shut the receiver down: pending vectors are dropped, later sends
        raise ReceiverClosedError. Idempotent; safe from any thread."""
        if not close_once(self):
            return
        if self.port.owned():
            uintr_upid_shutdown(self.block)
        self.port.detach(self.slot)

    cdef int check_thread(self, str what) except -1:
        owner = getattr(self.loop, "_thread_id", None)
        if owner is not None and owner != threading.get_ident():
            raise RuntimeError(
                "Receiver.%s() must be called from the thread running its "
                "loop" % what)
        return 0

    cdef recognise(self):
        cdef int had_on = 0
        cdef uint64_t bits
        if self.closed:
            return
        bits = uintr_upid_recognise(self.block, &had_on)
        if bits == 0:
            if had_on:
                self.spurious += 1
            return
        self.uirr |= bits
        self.schedule_delivery()

    cdef schedule_delivery(self):
        if (self.uirr and self.mask_depth == 0 and not self.delivery_scheduled
                and not self.in_handler and not self.closed):
            self.delivery_scheduled = True
            self.loop.call_soon(self._deliver)

    def _deliver(self):
        """Loop callback: hand each pending vector to the handler."""
        self.delivery_scheduled = False
        if self.in_handler:
            return
        try:
            self.run_handlers(UINT64_MAX, 0)
        finally:
            # Only after SystemExit/KeyboardInterrupt escaped a handler can
            # vectors be left here unmasked: they wait for the next iteration.
            if self.uirr and self.mask_depth == 0 and not self.closed:
                self.schedule_delivery()

    cdef int run_handlers(self, uint64_t allowed, uint64_t propagate) except -1:
        """The delivery loop of every receiver: while open and unmasked, take
        the highest pending vector in ``allowed`` out of UIRR and run the
        handler on it, one at a time (never nested: in_handler). A handler's
        SystemExit/KeyboardInterrupt, and any exception of a vector in
        ``propagate``, is raised to the caller; any other exception goes to
        the loop's exception handler and delivery goes on."""
        cdef unsigned vector
        cdef uint64_t bits
        while not self.closed and self.mask_depth == 0:
            bits = self.uirr & allowed
            if not bits:
                break
            vector = uintr_highest(bits)
            self.uirr &= ~((<uint64_t>1) << vector)
            self.delivered += 1
            self.on_delivery(vector)
            self.in_handler = True
            try:
                self.handler(vector)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                if (propagate >> vector) & 1:
                    raise
                # "receiver", not the task of a task receiver: 3.12+ would
                # re-enter its context (the handler runs inside it)
                self.loop.call_exception_handler({
                    "message": "Exception in user-interrupt handler for vector %d"
                               % vector,
                    "exception": exc,
                    "receiver": self,
                })
            finally:
                self.in_handler = False
        return 0

    cdef int on_delivery(self, unsigned vector) except -1:
        return 0    # a task receiver records what a wake-up delivered

    cdef int unmask(self) except -1:
        """STUI at the end of the outermost masked section: what is pending
        is taken right away."""
        if self.uirr:
            self._deliver()
        return 0


cdef bint close_once(Receiver r):
    """Set ``r.closed``; True for the one caller that set it (any thread)."""
    with cython.critical_section(r):
        if r.closed:
            return False
        r.closed = True
    return True


cdef class MaskedSection:
    """``with receiver.masked():`` (CLUI ... STUI), for both kinds of receiver."""
    cdef Receiver receiver

    def __cinit__(self, Receiver receiver not None):
        self.receiver = receiver

    def __enter__(self):
        self.receiver.mask_depth += 1
        return self.receiver

    def __exit__(self, *exc_info):
        cdef Receiver r = self.receiver
        r.mask_depth -= 1
        if r.mask_depth == 0 and not r.in_handler and not r.closed:
            r.unmask()
        return False


cdef class VectorFd:
    """The right to send one vector to one receiver (uintr_vector_fd).

    ``fileno()`` is a real file descriptor (vectorfd.h): inherited by fork,
    passable with SCM_RIGHTS, and ``Sender(fd)`` opens it in any process.
    ``VectorFd(receiver, vector)`` is ``receiver.vector_fd(vector)``: the
    same TypeError, ValueError and ReceiverClosedError.
    """
    cdef readonly Receiver receiver
    cdef readonly unsigned vector
    cdef readonly bint closed
    cdef int fd
    cdef bint has_fd_field     # __cinit__'s body ran: fd is -1 or ours

    def __cinit__(self, Receiver receiver not None, vector):
        # A bad argument is refused before this body runs, and __dealloc__
        # then still runs on the zeroed object: fd would read 0 (stdin).
        self.fd = -1
        self.has_fd_field = True
        # Reachable directly from Python, so it checks what vector_fd() checks:
        # the vector becomes a shift count in the send path.
        check_vector(vector)
        if receiver.closed:
            raise ReceiverClosedError()
        self.receiver = receiver
        self.vector = vector
        self.fd = export_vector_fd(receiver, vector)

    def __dealloc__(self):
        if self.has_fd_field and self.fd >= 0:
            close(self.fd)

    def fileno(self):
        """The vector fd. Raises SenderClosedError once closed, RuntimeError in
        a process that did not make it (a fork child: make fds in the owner)."""
        if self.closed:
            raise SenderClosedError("the VectorFd is closed")
        if self.fd < 0:
            raise RuntimeError("only the process running the receiver's loop makes "
                               "its vector fds; pass them to other processes")
        return self.fd

    def close(self):
        """Give up the capability (and close the fd). Senders already
        registered keep working, exactly as with the kernel ABI. Idempotent."""
        cdef int fd
        # From any thread: exactly one caller takes the fd and closes it (two
        # close() calls of one fd could close an unrelated fd that reused
        # its number in between).
        with cython.critical_section(self):
            self.closed = True
            fd = self.fd
            self.fd = -1
        if fd >= 0:
            close(fd)

    def __repr__(self):
        return "<VectorFd fd=%d vector=%d of %r%s>" % (
            self.fd, self.vector, self.receiver, " closed" if self.closed else "")
