"""The deadline timer of the process and its signal doorbell: every armed
deadline in one heap, the earliest in the native timer's slot
(cython_src/includes/preempt.h); at a deadline the kernel rings a free
real-time signal whose Python handler asks the scope for its verdict and
raises DeadlineExceeded, or retries. The doorbell also delivers urgent
vectors into a running task receiver."""
from __future__ import annotations

import asyncio
import atexit
import heapq
import itertools
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING

from . import _core
from ._preempt_errors import DeadlineExceeded, PreemptionUnavailableError
from ._protection import is_machinery

if TYPE_CHECKING:
    from ._deadline import deadline

RETRY_PROTECTED_NS = 50_000       # masked, in a handler, in loop machinery
RETRY_NOT_RUNNING_NS = 200_000    # the scope's task is suspended right now
REFIRE_NS = 2_000_000             # raised, but the scope has not exited yet
DROP = -1                        # the scope is no longer active


class Timer:
    """All armed deadlines of the process; the native slot holds the earliest."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int]] = []      # (when_ns, token)
        self._scopes: dict[int, deadline] = {}
        self._tokens = itertools.count(1)
        self._armed = (0, 0)                        # (token, when_ns) in the slot
        self._started = False
        self._signum = 0
        self._kernel_handler = 0        # the kernel's handler for _signum (Python's)
        self.rings = 0                  # doorbell handler runs
        self.last_ring_ns = 0           # monotonic ns of the last one
        self._busy = False              # add/remove/_rearm in progress

    def _doorbell(self, signum: int, frame: FrameType | None) -> None:
        self.rings += 1
        self.last_ring_ns = _core.monotonic_ns()
        if self._busy:
            # The signal interrupted add/remove/_rearm (this handler runs at
            # any bytecode boundary of the main thread): do not touch the heap
            # under them; ring again shortly.
            _core.preempt_arm(1 << 62, self.last_ring_ns + RETRY_PROTECTED_NS)
            self._armed = (1 << 62, 0)
            return
        self.fire(frame)                # deadlines; may raise (after re-arming)
        deliver_urgent(frame)                  # urgent vectors; the thread re-rings if skipped

    def _ensure_doorbell(self) -> None:
        # Ours while both views agree: Python's (the handler it runs) and the
        # kernel's (the C handler it calls: Python's own, as when we
        # installed it). A handler installed from C since (by another
        # extension or an embedding program) replaces Python's in the kernel
        # without Python knowing; then we move to another number. The start
        # is idempotent and cheap, and restarts the thread in a child after
        # fork (preempt.h resets it there).
        if (self._signum and signal.getsignal(self._signum) == self._doorbell
                and _core.signal_disposition(self._signum) == self._kernel_handler):
            _core.preempt_start(self._signum)
            return
        # Free: nobody's handler, as the kernel sees it (signal.getsignal()
        # says SIG_DFL for a handler installed from C after start-up).
        for signum in range(signal.SIGRTMAX, signal.SIGRTMIN - 1, -1):
            if (signum != self._signum and _core.signal_disposition(signum) == 0
                    and signal.getsignal(signum) in (signal.SIG_DFL, None)):
                signal.signal(signum, self._doorbell)
                self._signum = signum
                self._kernel_handler = _core.signal_disposition(signum)
                _core.preempt_start(signum)
                if not self._started:
                    atexit.register(_core.preempt_stop)
                    self._started = True
                return
        raise PreemptionUnavailableError(
            "no free real-time signal number for the preemption doorbell")

    @property
    def doorbell(self) -> int:
        """The real-time signal the timer sends at a deadline (0: none chosen yet)."""
        return self._signum

    def add(self, scope: deadline, when_ns: int) -> int:
        self._ensure_doorbell()
        self._busy = True
        try:
            token = next(self._tokens)
            self._scopes[token] = scope
            heapq.heappush(self._heap, (when_ns, token))
            self._rearm()
        finally:
            self._busy = False
        return token

    def remove(self, token: int) -> None:
        self._busy = True
        try:
            if self._scopes.pop(token, None) is not None and self._armed[0] == token:
                self._rearm()
        finally:
            self._busy = False

    def _rearm(self) -> None:
        heap = self._heap
        while heap and heap[0][1] not in self._scopes:
            heapq.heappop(heap)
        if not heap:
            if self._armed[0]:
                _core.preempt_disarm()
                self._armed = (0, 0)
            return
        when_ns, token = heap[0]
        if self._armed != (token, when_ns):
            _core.preempt_arm(token, when_ns)
            self._armed = (token, when_ns)

    def fire(self, frame: FrameType | None) -> None:
        """Runs in the main thread at a bytecode boundary (the doorbell's
        handler); ``frame`` is the interrupted code."""
        victim: deadline | None = None
        self._busy = True               # a nested ring (handlers can nest) retries
        try:
            self._armed = (0, 0)        # the native slot emptied when it rang
            now = _core.monotonic_ns()
            heap = self._heap
            while heap and heap[0][0] <= now:
                _, token = heapq.heappop(heap)
                scope = self._scopes.get(token)
                if scope is None:
                    continue
                retry = scope._verdict(frame) if victim is None else RETRY_PROTECTED_NS
                if retry == DROP:
                    del self._scopes[token]
                    continue
                if retry == 0:
                    # Raise it, and look again later: an exception raised in a
                    # finalizer or a weakref callback (a ring can land there)
                    # is swallowed by CPython, and so is one the code catches;
                    # until the scope exits, a swallowed deadline is raised
                    # again (never while it is still propagating).
                    victim = scope
                    retry = REFIRE_NS
                heapq.heappush(heap, (now + retry, token))
            self._rearm()
        finally:
            self._busy = False
        if victim is not None:
            raise DeadlineExceeded(victim)


timer = Timer()


def deliver_urgent(frame: FrameType | None) -> None:
    """Deliver urgent vectors into the running task receiver, if it is the
    code running now and the frame is not the loop's or this library's."""
    loop = asyncio._get_running_loop()
    shim = getattr(loop, "_uintr_shim", None) if loop is not None else None
    receiver = shim.urgent_running if shim is not None else None
    if receiver is None or loop is None or _core.running_task(loop) is not receiver.task:
        return
    if frame is None or is_machinery(frame):
        return
    receiver._urgent_interrupt()



def _ready_urgent_doorbell() -> None:
    """Receiver.for_task(urgent=...)'s step before binding (the core calls it
    through set_urgent_hook; it imports nothing from the package)."""
    # the doorbell is a signal handler: main thread only (see preempt.h)
    if threading.current_thread() is not threading.main_thread():
        raise PreemptionUnavailableError("urgent vectors interrupt running code only in the main thread")
    timer._ensure_doorbell()


_core.set_urgent_hook(_ready_urgent_doorbell)
