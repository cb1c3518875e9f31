# cython: language_level=3, freethreading_compatible=True
"""_testcore._hardware_fake: TEST-ONLY, built by `make test` from
tests/_testcore, never shipped. The hardware backend's C source
compiled with -DUINTR_FAKE_ABI over a recorded, simulated fake of the UINTR
instructions and syscalls (tests/_testcore/fake_abi.h). Nothing but the tests
imports it; it never issues a UINTR instruction or syscall.
"""
from libc.stdint cimport uint64_t
from uintr_hw cimport *
from uintr_loop._core import ReceiverClosedError

FAKE = True
BUILT_WITH = "-DUINTR_FAKE_ABI (test-only fake of the instructions and syscalls)"

include "hardware.pxi"


def fake_configure(str abi):
    """Reset the fake kernel and make it answer ``abi``'s syscall numbers."""
    if uintr_fake_configure(abi.encode()) < 0:
        raise ValueError(abi)


def fake_fail(op, int err=0):
    """Make every later call of syscall ``op`` (a name from OPS) fail with
    -err; ``fake_fail(None)`` stops it."""
    uintr_fake_fail(-1 if op is None else OPS.index(op), err)


def fake_log():
    """Every call so far: (what, nr, a0, a1, result, tid)."""
    cdef const uintr_fake_entry_t *e
    out = []
    for i in range(uintr_fake_log_size()):
        e = uintr_fake_log_entry(i)
        out.append(((<const char *>e.what).decode(), e.nr, e.a0, e.a1, e.result, e.tid))
    return out


def fake_uif():
    return bool(uintr_fake_uif_state())


def fake_uirr():
    return uintr_fake_uirr()


def fake_faults():
    """SENDUIPIs the CPU would have faulted (#GP) on."""
    return uintr_fake_faults()


def record(HardwareReceiver receiver, uint64_t vector):
    """Run the interrupt handler's body for ``vector`` on this thread."""
    uintr_hw_record(receiver.rx, vector)


def receiver_state(HardwareReceiver receiver):
    return {"pending": uintr_hw_pending(receiver.rx), "blocked": bool(uintr_hw_blocked(receiver.rx))}
