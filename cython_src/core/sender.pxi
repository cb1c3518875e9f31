# Senders: the analogue of uintr_register_sender() and SENDUIPI.


cdef inline int post_with_gil(uintr_sender_c *s):
    """The send path for callers holding the GIL: the memory half with it,
    the notification (a syscall, rare) without it. 0 or -errno."""
    cdef int rc = uintr_sender_post(s)
    if rc == UINTR_POST_NOTIFY:
        with nogil:
            rc = uintr_channel_notify(&s.channel)
    return rc if rc < 0 else 0


cdef class Sender:
    """A registered sender of one vector to one receiver.

    ``send()`` may be called from any thread. It costs a few locked
    instructions (PIR bit, ON, a counter; the loop's UPID too when this
    receiver needs a notification), plus one eventfd write, with the GIL
    released, only when the loop is blocked and no notification is
    outstanding.

    ``Sender(vector_fd)`` takes a ``VectorFd`` or a vector fd (an int) and
    raises TypeError for anything else (a bool included),
    InvalidVectorFdError for an int that is not an open vector fd,
    SenderClosedError for a closed VectorFd and ReceiverClosedError when the
    receiver, its loop or its process is gone.
    """
    cdef uintr_sender_c c
    cdef readonly VectorFd vector_fd
    cdef Receiver receiver     # keeps the block, the table and the channel alive
    cdef SenderLease lease     # or, opened from a vector fd: the same (vectorfd.pxi)
    cdef object hw_sender      # hardware mode: keeps c.hw_ctx alive

    def __cinit__(self, vector_fd):     # see Receiver.__cinit__
        cdef VectorFd vfd
        if isinstance(vector_fd, VectorFd):
            vfd = <VectorFd>vector_fd
            if vfd.closed:
                raise SenderClosedError("the VectorFd is closed")
            if vfd.receiver.closed:
                raise ReceiverClosedError()
            self.vector_fd = vfd
            if vfd.fd >= 0 and not vfd.receiver.port.owned():
                # inherited through fork: open it as any other process would,
                # so the sender learns when the owner exits
                self.lease = open_vector_fd(vfd.fd, &self.c)
                return
            self.receiver = vfd.receiver
            self.c.table = self.receiver.port.table
            self.c.channel = self.receiver.port.channel
            self.c.index = self.receiver.slot
            self.c.vector = vfd.vector
            self.c.closed = 0
            if self.receiver.port.hw is not None:
                sender_attach_hardware(self)
        elif isinstance(vector_fd, int) and not isinstance(vector_fd, bool):
            self.lease = open_vector_fd(vector_fd, &self.c)
        else:
            raise TypeError("Sender() takes a VectorFd from Receiver.vector_fd() or "
                            "a vector fd (int), got %s" % type(vector_fd).__name__)

    @property
    def vector(self):
        return self.c.vector

    @property
    def closed(self):
        return self.c.closed != 0

    def send(self):
        """Post the vector (SENDUIPI). Raises ReceiverClosedError if the
        receiver or its loop is closed, SenderClosedError if this sender is."""
        cdef int rc = post_with_gil(&self.c)
        if rc < 0:
            raise_send_error(rc)

    def close(self):
        """Unregister. Idempotent; a later send() raises SenderClosedError."""
        self.c.closed = 1
        if self.hw_sender is not None:
            self.hw_sender.close()

    def __repr__(self):
        to = self.receiver if self.lease is None else self.lease
        return "<Sender vector=%d to %r%s>" % (
            self.c.vector, to, " closed" if self.c.closed else "")


cdef const void *uintr_sender_handle(object sender) except NULL:
    if not isinstance(sender, Sender):
        raise TypeError("expected a uintr_loop.Sender, got %s" % type(sender).__name__)
    return <const void *>&(<Sender>sender).c


cdef int uintr_send(const void *handle) noexcept nogil:
    return uintr_sender_send(<uintr_sender_c *>handle)
