# The hardware backend's Python face, shared by uintr_loop._hardware (real
# instructions and syscalls) and _testcore._hardware_fake (the test-only
# fake of both; see tests/_testcore/fake_abi.h). The C lives in hw/uintr_hw.c.
#
# The loop's Port talks to one HardwareReceiver (the loop thread's UINTR
# receiver) through five calls: before_block / take around the selector,
# vector_for when a Receiver hands out a vector fd, sender when a Sender is
# registered, close. Every Receiver vector in use gets one of the loop
# thread's 64 hardware vectors; the handler records hardware vectors, and
# take() turns them back into (receiver slot, vector) for the Port.
cimport cython
from libc.stdint cimport uint64_t, uintptr_t
from libc.stdlib cimport calloc, free

import errno as _errno
import os as _os
import threading as _threading

from uintr_loop._core import HardwareUnavailableError

HANDLER_FLAG_WAITING_RECEIVER = UINTR_HANDLER_FLAG_WAITING_RECEIVER
HANDLER_FLAG_WAITING_SENDER = UINTR_HANDLER_FLAG_WAITING_SENDER
OPS = tuple(uintr_op_name(op).decode() for op in range(UINTR_NOPS))


# The kernel ABI table is C, in includes/uintr_hw.h; the core builds its
# Python face (the probe needs it with no backend built), the backend shares it.
from uintr_loop._core import abi_table


cdef const uintr_abi_t *find_abi(str name) except NULL:
    cdef bytes b = name.encode()
    cdef const uintr_abi_t *abi = uintr_abi_find(b)
    if abi == NULL:
        raise ValueError("unknown UINTR ABI %r (known: %s)" % (name, ", ".join(abi_table())))
    return abi


cdef int raise_abi_error(const uintr_abi_t *abi, int op, long rc) except -1:
    err = <int>-rc
    name = _errno.errorcode.get(err, str(err))
    what = "%s (syscall %d, %s ABI)" % (OPS[op], abi.nr[op], abi.name.decode())
    if err in (_errno.ENOSYS, _errno.EOPNOTSUPP):
        raise HardwareUnavailableError("%s failed with %s: the kernel offers no UINTR" % (what, name))
    raise OSError(err, "%s failed with %s" % (what, name))


cdef class HardwareReceiver:
    """The loop thread's user-interrupt receiver (uintr_register_handler).

    Bound lazily to the first thread that needs it (the loop's, on its first
    select or vector fd); using it from another thread raises RuntimeError.
    """
    cdef uintr_hw_receiver_t *rx
    cdef const uintr_abi_t *c_abi
    cdef readonly str abi
    cdef dict routes              # hardware vector -> (slot, vector)
    cdef dict vectors             # (slot, vector) -> hardware vector
    cdef readonly bint closed
    cdef bint leaked
    cdef cython.pymutex vectors_lock   # vector_for: the loop's thread and senders'

    def __cinit__(self, str abi not None, int wake_fd):
        self.c_abi = find_abi(abi)
        self.abi = abi
        self.rx = <uintr_hw_receiver_t *>calloc(1, sizeof(uintr_hw_receiver_t))
        if self.rx == NULL:
            raise MemoryError()
        uintr_hw_receiver_init(self.rx, self.c_abi, wake_fd)
        self.routes = {}
        self.vectors = {}

    def __dealloc__(self):
        # Freed only once the handler is unregistered; a receiver closed from
        # another thread stays allocated (the handler may still enter).
        if self.rx != NULL and not self.leaked:
            if uintr_hw_close(self.rx) == 0:
                free(self.rx)
            self.rx = NULL

    @property
    def bound(self):
        return bool(self.rx.bound)

    cdef int check(self, long rc, int op) except -1:
        if rc == -_errno.EXDEV:
            raise RuntimeError(
                "hardware mode: the user-interrupt handler is registered for the "
                "thread that first ran this loop (tid %d); use the loop from that "
                "thread only" % self.rx.tid)
        if rc == -_errno.ESHUTDOWN:
            raise ReceiverClosedError()
        if rc < 0:
            raise_abi_error(self.c_abi, op, rc)
        return 0

    def bind(self):
        """uintr_register_handler for the calling thread, then STUI."""
        self.check(uintr_hw_bind(self.rx), UINTR_OP_REGISTER_HANDLER)

    def vector_for(self, unsigned slot, unsigned vector):
        """The hardware vector (and its vector fd) carrying ``vector`` of the
        Receiver in ``slot``; created on first use (uintr_vector_fd)."""
        key = (slot, vector)
        # A Sender registered from any thread gets here (Sender -> sender()):
        # the test, the choice of a free vector and the two records are one
        # step. With the GIL they were (no Python code runs in between); a
        # lock makes them one on a free-threaded build, where a critical
        # section would not do (the dicts' own locks may suspend it).
        with self.vectors_lock:
            return self.vector_for_locked(key, slot)

    cdef unsigned vector_for_locked(self, tuple key, unsigned slot) except? 64:
        cdef unsigned hv
        found = self.vectors.get(key)
        if found is not None:
            return found
        if self.closed:
            raise ReceiverClosedError()
        for hv in range(64):
            if not (self.rx.vectors_used >> hv) & 1:
                break
        else:
            raise RuntimeError(
                "hardware mode: the loop thread's 64 user-interrupt vectors are all "
                "in use (one per receiver vector handed out)")
        self.check(uintr_hw_vector_fd(self.rx, hv), UINTR_OP_VECTOR_FD)
        self.vectors[key] = hv
        self.routes[hv] = key
        return hv

    def vector_fd(self, unsigned hv):
        """The kernel's vector fd for hardware vector ``hv`` (owned here)."""
        if not (self.rx.vectors_used >> hv) & 1:
            raise ValueError("hardware vector %d has no vector fd" % hv)
        return uintr_hw_vector_fd(self.rx, hv)

    def sender(self, unsigned slot, unsigned vector):
        """uintr_register_sender for ``vector`` of the Receiver in ``slot``."""
        hv = self.vector_for(slot, vector)
        return HardwareSender(self, self.vector_fd(hv))

    cpdef bint before_block(self) except -1:
        """The loop may sleep next: publish it; True if interrupts are pending."""
        if not self.rx.bound:
            self.bind()
        cdef int rc = uintr_hw_before_block(self.rx)
        if rc < 0:
            self.check(rc, UINTR_OP_REGISTER_HANDLER)
        return rc != 0

    cpdef list take(self):
        """The loop is running again: (slot, vector) of every recorded interrupt."""
        cdef uint64_t bits = uintr_hw_after_block(self.rx)
        cdef unsigned hv
        out = []
        while bits:
            hv = 63 - __builtin_clzll(bits)
            bits &= ~((<uint64_t>1) << hv)
            route = self.routes.get(hv)
            if route is not None:
                out.append(route)
        return out

    def mask(self):
        """CLUI: no handler entry on this thread until unmask()."""
        uintr_hw_mask()

    def unmask(self):
        """STUI: interrupts recognised meanwhile are delivered now."""
        uintr_hw_unmask()

    def wait(self, unsigned long long usec=0):
        """uintr_wait: sleep the calling (receiver) thread until a user
        interrupt. The RFC form takes no timeout; the later branch's takes
        microseconds. Returns 0 or -errno (-EINTR: an interrupt came)."""
        if not self.rx.bound:
            self.bind()
        cdef long rc
        with nogil:
            rc = uintr_hw_wait(self.c_abi, usec)
        return rc

    def statistics(self):
        return {
            "abi": self.abi,
            "bound": bool(self.rx.bound),
            "vectors_in_use": bin(self.rx.vectors_used).count("1"),
            "interrupts": uintr_hw_counter(self.rx, 0),
            "handler_wakes": uintr_hw_counter(self.rx, 1),
            "sender_wakes": uintr_hw_counter(self.rx, 2),
        }

    def close(self):
        """CLUI, close the vector fds, uintr_unregister_handler. From another
        thread than the bound one only marks it closed (senders then get
        ReceiverClosedError); the handler stays registered until that thread
        exits, and this object's C state is deliberately never freed."""
        cdef int rc
        if self.closed:
            return
        self.closed = True
        rc = uintr_hw_close(self.rx)
        if rc == -_errno.EXDEV:
            self.leaked = True
        elif rc < 0:
            raise_abi_error(self.c_abi, UINTR_OP_UNREGISTER_HANDLER, rc)


cdef class HardwareSender:
    """A registered sender (uintr_register_sender) of one hardware vector."""
    cdef uintr_hw_sender_t *s
    cdef readonly HardwareReceiver receiver      # keeps the receiver's C state alive

    def __cinit__(self, HardwareReceiver receiver not None, int vector_fd):
        cdef int rc
        self.receiver = receiver
        self.s = <uintr_hw_sender_t *>calloc(1, sizeof(uintr_hw_sender_t))
        if self.s == NULL:
            raise MemoryError()
        rc = uintr_hw_sender_init(self.s, receiver.rx, vector_fd)
        if rc < 0:
            free(self.s)
            self.s = NULL
            raise_abi_error(receiver.c_abi, UINTR_OP_REGISTER_SENDER, rc)

    def __dealloc__(self):
        if self.s != NULL:
            uintr_hw_sender_close(self.s)
            free(self.s)
            self.s = NULL

    @property
    def index(self):
        """The UITT index (-1 on the RFC, where each thread registers lazily)."""
        return self.s.index

    @property
    def sent(self):
        return uintr_hw_sender_sent(self.s)

    def c_send_address(self):
        """Address of ``int uintr_hw_send(void *)`` for the core's send path."""
        return <uintptr_t>uintr_hw_send

    def c_context_address(self):
        """The argument to pass it; valid while this object is alive."""
        return <uintptr_t>self.s

    def send(self):
        """SENDUIPI (and, on the RFC, the sender-paid wake). 0 or -errno."""
        cdef int rc
        with nogil:
            rc = uintr_hw_send(self.s)
        return rc

    def close(self):
        """uintr_unregister_sender (errors ignored: closing is idempotent)."""
        uintr_hw_sender_close(self.s)


cdef extern from *:
    int __builtin_clzll(unsigned long long)
