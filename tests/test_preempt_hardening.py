"""The preemption timer's process-level hygiene: the doorbell signal is chosen
by asking the kernel (a handler installed from C is seen), the timer thread
runs with every signal blocked, and fork never leaves the child a mutex the
parent's vanished thread held. Each runs in a child interpreter (preemption
state is per process), with a timeout so a hang fails."""
from __future__ import annotations

import subprocess
import sys

import pytest

from _support import child_env


def run_child(code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True,
                          text=True, timeout=timeout)


# A real C-level handler installed with sigaction(2) through ctypes, as
# another extension or an embedding program would: Python's signal module
# never hears of it (signal.getsignal() still says SIG_DFL). It is never
# triggered here: the test only checks that nobody replaces it.
C_HANDLER = r"""
import ctypes, signal
libc = ctypes.CDLL(None, use_errno=True)
HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_int)
c_handler = HANDLER(lambda signum: None)

class SigAction(ctypes.Structure):          # glibc's struct sigaction on Linux
    _fields_ = [("handler", ctypes.c_void_p), ("mask", ctypes.c_ulong * 16),
                ("flags", ctypes.c_int), ("restorer", ctypes.c_void_p)]

def install_from_c(signum):
    sa = SigAction()
    sa.handler = ctypes.cast(c_handler, ctypes.c_void_p).value
    if libc.sigaction(signum, ctypes.byref(sa), None) != 0:
        raise OSError(ctypes.get_errno(), "sigaction")
    return sa.handler
"""


def test_a_handler_installed_from_c_is_never_taken() -> None:
    code = C_HANDLER + r"""
import time, uintr_loop
from uintr_loop import _core
from uintr_loop._doorbell import timer as _timer
address = install_from_c(signal.SIGRTMAX)
assert signal.getsignal(signal.SIGRTMAX) == signal.SIG_DFL      # Python cannot see it
def once():
    try:
        with uintr_loop.deadline(0.01):
            end = time.monotonic() + 20
            while time.monotonic() < end: pass
    except TimeoutError:
        return "preempted"
    return "not preempted"
print(once(), _timer.doorbell != signal.SIGRTMAX,
      _core.signal_disposition(signal.SIGRTMAX) == address)
"""
    out = run_child(code)
    assert out.stdout.split() == ["preempted", "True", "True"], out.stderr


def test_a_handler_installed_from_c_on_the_doorbell_moves_it() -> None:
    """The user's C code takes the doorbell's number after the first
    deadline: the next deadline rings on another number and the user's
    handler stays in place."""
    code = C_HANDLER + r"""
import time, uintr_loop
from uintr_loop import _core
from uintr_loop._doorbell import timer as _timer
def once():
    try:
        with uintr_loop.deadline(0.01):
            end = time.monotonic() + 20
            while time.monotonic() < end: pass
    except TimeoutError:
        return "preempted"
    return "not preempted"
first = once()
taken = _timer.doorbell
address = install_from_c(taken)
second = once()
print(first, second, _timer.doorbell not in (0, taken),
      _core.signal_disposition(taken) == address)
"""
    out = run_child(code)
    assert out.stdout.split() == ["preempted", "preempted", "True", "True"], out.stderr


def test_the_timer_thread_blocks_every_signal() -> None:
    code = r"""
import os, signal, threading, uintr_loop
def tasks():
    return set(os.listdir("/proc/self/task"))
before = tasks()
with uintr_loop.deadline(10):
    pass
new = tasks() - before
blocked = []
for tid in new:
    with open(f"/proc/self/task/{tid}/status") as f:
        mask = int(next(l for l in f if l.startswith("SigBlk:")).split()[1], 16)
    wanted = [signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGUSR1, signal.SIGALRM,
              *range(signal.SIGRTMIN, signal.SIGRTMAX + 1)]
    blocked.append(all(mask >> (s - 1) & 1 for s in wanted))
print(len(new), all(blocked))
"""
    out = run_child(code)
    assert out.stdout.split() == ["1", "True"], (out.stdout, out.stderr)


# Spins in Python, with nothing that calls PyErr_CheckSignals() by hand, until
# its SIGALRM handler has run or a second has passed.
SIGNAL_IN_CHILD_OF_A_THREAD = r"""
import os, signal, sys, threading, time
IMPORT
hits = []
signal.signal(signal.SIGALRM, lambda *a: hits.append(1))
def child():
    signal.setitimer(signal.ITIMER_REAL, 0.01)
    end = time.monotonic() + 1.0
    while time.monotonic() < end and not hits:
        pass
    repaired = -1
    if "uintr_loop._core" in sys.modules:
        from _testcore._state import main_tstate_repairs
        repaired = main_tstate_repairs()
    print(bool(hits), repaired, flush=True)
def forker():
    pid = os.fork()
    if pid == 0:
        child()
        os._exit(0)
    os.waitpid(pid, 0)
t = threading.Thread(target=forker)
t.start()
t.join()
"""


def test_a_child_forked_from_a_thread_runs_its_signal_handlers() -> None:
    """With uintr_loop imported, a child forked from a non-main thread runs its
    Python signal handlers while it computes: CPython 3.13+ alone sends them to
    the parent's main thread state, which the child does not have (the control
    run shows it; mainstate.c says why); the deadline doorbell is one of them."""
    control = run_child(SIGNAL_IN_CHILD_OF_A_THREAD.replace("IMPORT", ""))
    assert control.stdout.split() in (["True", "-1"], ["False", "-1"]), (control.stdout, control.stderr)
    python_loses_them = control.stdout.split()[0] == "False"
    if sys.version_info < (3, 13):
        assert not python_loses_them, "before 3.13 CPython sends signals to whichever thread is main"
    out = run_child(SIGNAL_IN_CHILD_OF_A_THREAD.replace("IMPORT", "import uintr_loop"))
    assert out.stdout.split() == ["True", "1" if python_loses_them else "0"], (out.stdout, out.stderr[-2000:])


def test_forks_racing_with_the_timer_leave_children_working() -> None:
    """A thread forks over and over while the main thread arms and disarms
    deadlines (each disarm takes the timer's mutex) and the timer thread
    runs: every child can still start its own timer and be preempted."""
    code = r"""
import os, threading, time, uintr_loop
from _testcore._state import preempt_thread_only
preempt_thread_only(True)        # deadlines through the thread: its mutex on every arm
def spin_once(seconds):
    try:
        with uintr_loop.deadline(seconds):
            end = time.monotonic() + 20
            while time.monotonic() < end: pass
    except TimeoutError:
        return True
    return False
assert spin_once(0.005)
FORKS = 60
results = []
def forker():
    for _ in range(FORKS):
        pid = os.fork()
        if pid == 0:
            os._exit(0 if spin_once(0.005) else 3)
        _, status = os.waitpid(pid, 0)
        results.append(os.waitstatus_to_exitcode(status))
        if results[-1] != 0:
            break                        # one child not preempted is the failure
t = threading.Thread(target=forker)
t.start()
while t.is_alive():
    with uintr_loop.deadline(10):
        pass
t.join()
print(len(results), sorted(set(results)))
"""
    out = run_child(code, timeout=240)
    assert out.stdout.strip() == "60 [0]", (out.stdout, out.stderr[-3000:])
