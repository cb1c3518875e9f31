"""Deadlines that stop CPU-bound code: ``deadline()`` and ``preemptible()``.

``asyncio.timeout`` cancels a task at its next ``await``; code that never
awaits (a runaway loop, a big parse) runs on and blocks the whole loop.
``deadline(seconds)`` does what ``asyncio.timeout`` does at await points and,
in addition, interrupts running Python code: when a deadline passes, the
kernel (a POSIX timer; a native pthread that never takes the GIL where that
is unavailable) sends a free real-time signal to the main thread; Python runs
that signal's handler, ``_Timer.fire``, at the next bytecode boundary, and
it raises ``DeadlineExceeded`` there when it is safe (see
``deadline._verdict``). The
scope turns it into ``TimeoutError`` on exit; ``finally`` blocks run on the
way out as for any exception.

The mechanism and its safety essay are in cython_src/includes/preempt.h.
Rules, each tested:
* raised only while the scope's own task (or, outside tasks, the scope's own
  synchronous code) is what runs, never in another task or callback;
* never inside the event loop's or this library's own Python code (asyncio,
  concurrent.futures, uintr_loop), nor in standard-library code that keeps
  an invariant over several statements (threading, queue, logging,
  contextlib, weakref, selectors, subprocess, the import system) or any
  ``__del__``, nor in anything such code calls: the whole stack between the
  interrupted code and the scope's own frame is looked at (see
  ``_protected``); the timer retries 50 us later;
* never inside a masked section (``preemption_masked()`` or the task
  receiver's ``masked()``) nor inside a task receiver's handler: retried;
* once raised, raised again every 2 ms until the scope exits if it was
  swallowed (caught, or raised where CPython discards exceptions: a
  finalizer, a weakref callback), never while it is still propagating
  through except/finally blocks or __exit__ methods;
* main thread only (Python runs signal handlers nowhere else): a loop in
  another thread gets ``PreemptionUnavailableError`` from ``deadline()``;
* the signal is a real-time one with no handler as the kernel sees it
  (sigaction, so a handler installed from C counts too; searched from
  SIGRTMAX down), sent only when a deadline passes, so no handler of the
  user's is replaced and their signals keep working; if the user later
  installs a handler on that number (from Python or from C), the next
  deadline moves to another free one. A
  blocking syscall in the main thread may see EINTR at a deadline; Python
  retries it (PEP 475).
"""
from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import dis
import functools
import heapq
import importlib
import itertools
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import CodeType, FrameType, TracebackType
from typing import Any, TypeVar

from . import _core
from ._core import check_duration

__all__ = [
    "DeadlineExceeded",
    "PreemptionUnavailableError",
    "deadline",
    "preemptible",
    "preemption_masked",
]

_R = TypeVar("_R")

RETRY_PROTECTED_NS = 50_000       # masked, in a handler, in loop machinery
RETRY_NOT_RUNNING_NS = 200_000    # the scope's task is suspended right now
REFIRE_NS = 2_000_000             # raised, but the scope has not exited yet
_DROP = -1                        # the scope is no longer active

# Python code a deadline never interrupts, nor any code it calls (it retries
# 50 us later): the event loop's and this library's, and the standard-library
# code that keeps an invariant over several statements: lock and condition
# bookkeeping (threading), queue.Queue's counters (queue), logging's handler
# and module locks (logging), exit stacks and generator context managers
# (contextlib), finalizers and weakref callbacks (weakref, _weakrefset, where
# CPython discards exceptions), selectors, subprocess's child bookkeeping and
# the import system. Protection covers the whole stack between the code
# interrupted and the scope's own frame, as trio's KeyboardInterrupt
# protection does: a deadline that lands in a logging handler's emit() runs
# with the handler's lock held by logging's frame further up, so it waits
# until logging has released it. Everything else in the standard library (a
# long difflib or json call, say) stays interruptible.
_PROTECTED_MODULES = ("threading", "queue", "contextlib", "weakref", "_weakrefset",
                      "selectors", "subprocess")
_PROTECTED_PACKAGES = (asyncio, concurrent.futures, logging, importlib,
                       sys.modules[__package__])
_MACHINERY = tuple(
    [os.path.dirname(os.path.abspath(m.__file__)) + os.sep
     for m in _PROTECTED_PACKAGES if m.__file__]
    + [os.path.abspath(m.__file__)
       for m in map(importlib.import_module, _PROTECTED_MODULES) if m.__file__]
    + ["<frozen importlib."]
)


def _is_machinery(frame: FrameType) -> bool:
    code = frame.f_code
    return code.co_filename.startswith(_MACHINERY) or code.co_name == "__del__"


def _protected(frame: FrameType, entry: FrameType | None) -> bool:
    """``frame``, or a frame between it and the scope's ``entry`` frame (the
    one whose ``with`` entered it, itself not looked at unless it is
    ``frame``), is code a deadline must not interrupt. If ``entry`` is not
    on the stack, only ``frame`` counts."""
    if _is_machinery(frame):
        return True
    if entry is None or frame is entry:
        return False
    inner: list[FrameType] = []
    f = frame.f_back
    while f is not None and f is not entry:
        inner.append(f)
        f = f.f_back
    return f is entry and any(map(_is_machinery, inner))


class DeadlineExceeded(asyncio.CancelledError):
    """Raised inside code interrupted at its deadline.

    A CancelledError (a BaseException), so ``except Exception`` in the
    interrupted code does not swallow it; the ``deadline`` scope that raised
    it turns it into ``TimeoutError`` when it exits.
    """

    def __init__(self, scope: deadline) -> None:
        super().__init__(f"deadline of {scope.seconds:g} s exceeded")
        self.scope = scope


class PreemptionUnavailableError(RuntimeError):
    """Preemption needs the main thread: CPython runs signal handlers only there."""


_mask_depth: dict[int, int] = {}    # id(task) or 0 (no task) -> depth

# CPython 3.13 sometimes lays out the backward jump that closes a `while`
# loop outside the exception-table range of the try/with around it
# (python/cpython#130279): an exception raised by a signal handler *at that
# jump* skips the enclosing handlers and __exit__, as KeyboardInterrupt does
# there (seen here on 3.13.0 within ten short deadlines around
# `while cond: pass`). So a ring that lands on a backward jump that no
# handler covers, right after an instruction that one does, retries (the
# next boundary is a call or the next iteration); after GAP_RETRIES in a row
# it raises anyway, as Ctrl-C would.
GAP_RETRIES = 20
_BACKWARD_JUMPS = frozenset(
    dis.opmap[name] for name in ("JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT")
    if name in dis.opmap)
# id(code) -> (code, co_code, handler ranges); by id, because hashing a code
# object hashes its bytecode (microseconds, on every ring)
_code_info: dict[int, tuple[CodeType, bytes, tuple[tuple[int, int], ...]]] = {}


def _in_handler_gap(frame: FrameType) -> bool:
    code = frame.f_code
    lasti = frame.f_lasti
    if not _BACKWARD_JUMPS or lasti < 2:
        return False
    info = _code_info.get(id(code))
    if info is None or info[0] is not code:
        # co_code is rebuilt on every access from 3.11 on: cache it
        parse = getattr(dis, "_parse_exception_table", None)
        ranges = tuple((e.start, e.end) for e in parse(code)) if parse else ()
        if len(_code_info) > 1024:
            _code_info.clear()
        info = _code_info[id(code)] = (code, code.co_code, ranges)
    _, co_code, ranges = info
    if lasti >= len(co_code) or co_code[lasti] not in _BACKWARD_JUMPS:
        return False

    def covered(offset: int) -> bool:
        return any(start <= offset < end for start, end in ranges)

    return not covered(lasti) and covered(lasti - 2)


def _unit_key() -> int:
    loop = asyncio._get_running_loop()
    task = _core.running_task(loop) if loop is not None else None
    return id(task) if task is not None else 0


@contextlib.contextmanager
def preemption_masked() -> Iterator[None]:
    """No deadline interrupts the current task (or callback) inside the
    block (CLUI for preemption); one that passed meanwhile lands right after.
    Nests."""
    key = _unit_key()
    _mask_depth[key] = _mask_depth.get(key, 0) + 1
    try:
        yield
    finally:
        depth = _mask_depth[key] - 1
        if depth:
            _mask_depth[key] = depth
        else:
            del _mask_depth[key]


_ACTIVE, _EXPIRED, _DONE = "active", "expired", "done"

# A deadline further away than this (about 146 years) is no deadline: its
# CLOCK_MONOTONIC time would not fit the native timer's 64-bit slot.
_NEVER_S = 2.0**62 / 1e9


def _check_seconds(seconds: object) -> float:
    """``seconds`` of a deadline as a float (``inf``: none); the errors of
    ``_core.check_duration``. A deadline in the past fires at once."""
    value = check_duration(seconds, "seconds", none=True)
    return float("inf") if value is None or value >= _NEVER_S else value


class _Timer:
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
        _urgent(frame)                  # urgent vectors; the thread re-rings if skipped

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
                if retry == _DROP:
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


_timer = _Timer()


class deadline:
    """``async with deadline(seconds):`` / ``with deadline(seconds):``.

    Raises ``TimeoutError`` when the block runs longer than ``seconds``,
    whether it is waiting at an ``await`` (the task is cancelled, as
    ``asyncio.timeout`` does) or running Python code that never awaits (it is
    interrupted at the next bytecode boundary, see the module docstring).
    ``None`` means no deadline. Works in tasks and in plain loop callbacks
    (``preemptible``) on any asyncio loop running in the main thread.

    Raises TypeError (``seconds`` not a number) or ValueError (NaN) at once;
    entering raises PreemptionUnavailableError outside the main thread and
    RuntimeError the second time. ``seconds <= 0`` expires at once; beyond
    about 146 years it is no deadline.
    """

    def __init__(self, seconds: float | None) -> None:
        self.seconds = _check_seconds(seconds)
        self._state = _DONE
        self._token = 0
        self._task: asyncio.Task[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._cancelling = 0
        self._used = False
        self._fired = False
        self._gap_retries = 0
        self._preempted = False
        self._entry: FrameType | None = None      # the frame whose `with` entered
        self.when_ns = 0
        """The deadline on the CLOCK_MONOTONIC ns scale (time.monotonic_ns); 0 if none."""

    @property
    def expired(self) -> bool:
        """True once the deadline has interrupted or cancelled the block."""
        return self._state == _EXPIRED or self._fired

    def __enter__(self) -> deadline:
        return self._enter(sys._getframe(1))

    def _enter(self, entry: FrameType) -> deadline:
        if self._used:
            raise RuntimeError("a deadline scope can be entered only once")
        self._used = True
        if threading.current_thread() is not threading.main_thread():
            raise PreemptionUnavailableError(
                "uintr_loop.deadline() preempts only code in the main thread "
                "(CPython runs signal handlers nowhere else); in other threads use "
                "asyncio.timeout(), which stops a task at its awaits only")
        self._loop = asyncio._get_running_loop()
        self._task = _core.running_task(self._loop) if self._loop is not None else None
        self._state = _ACTIVE
        self._entry = entry
        if self.seconds == float("inf"):
            return self
        if self._task is not None and self._loop is not None:
            if sys.version_info >= (3, 11):
                self._cancelling = self._task.cancelling()
            self._handle = self._loop.call_at(
                self._loop.time() + max(self.seconds, 0.0), self._on_timeout)
        when_ns = _core.monotonic_ns() + int(max(self.seconds, 0.0) * 1e9)
        self.when_ns = when_ns
        self._token = _timer.add(self, when_ns)
        return self

    def _on_timeout(self) -> None:
        # Loop callback: the task is suspended at an await (it cannot be
        # running, a callback runs now). Cancel it, as asyncio.timeout does.
        if self._state != _ACTIVE or self._task is None:
            return
        self._state = _EXPIRED
        _timer.remove(self._token)
        self._task.cancel()

    def _verdict(self, frame: FrameType | None) -> int:
        """0: raise now; > 0: retry in that many ns; _DROP: forget it.
        Runs in the doorbell's handler, under the GIL."""
        if self._state != _ACTIVE and not (self._state == _EXPIRED and self._preempted):
            return _DROP
        if self._preempted and _propagating(self):
            return REFIRE_NS            # on its way out through except/finally
        loop = self._loop
        running = _core.running_task(loop) if loop is not None else None
        if running is not self._task:
            return REFIRE_NS if self._preempted else RETRY_NOT_RUNNING_NS
        if _mask_depth.get(id(running) if running is not None else 0):
            return RETRY_PROTECTED_NS
        if running is not None and loop is not None and _receiver_protects(loop, running):
            return RETRY_PROTECTED_NS
        if frame is None or _protected(frame, self._entry):
            return RETRY_PROTECTED_NS
        if self._gap_retries < GAP_RETRIES and _in_handler_gap(frame):
            self._gap_retries += 1
            return RETRY_PROTECTED_NS
        self._state = _EXPIRED
        self._preempted = True
        if self._handle is not None:
            self._handle.cancel()
        return 0

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        state = self._state
        self._state = _DONE
        self._entry = None
        if self._token:
            _timer.remove(self._token)
        if self._handle is not None:
            self._handle.cancel()
        if state != _EXPIRED:
            return None
        self._fired = True
        if isinstance(exc, DeadlineExceeded) and exc.scope is self:
            raise TimeoutError(str(exc)) from exc
        if sys.version_info >= (3, 11) and isinstance(exc, BaseExceptionGroup):
            # A TaskGroup collects a CancelledError *subclass* raised in its
            # body as an error (it recognises only CancelledError itself as
            # its task's cancellation): our DeadlineExceeded arrives wrapped.
            # Treat it as asyncio.timeout's cancellation is treated there:
            # alone, it is our TimeoutError; beside other errors, it is
            # dropped from the group, which propagates.
            ours, rest = exc.split(
                lambda e: isinstance(e, DeadlineExceeded) and e.scope is self)
            if ours is not None:
                if rest is None:
                    raise TimeoutError(f"deadline of {self.seconds:g} s exceeded") from exc
                raise rest
        if exc_type is not None and issubclass(exc_type, asyncio.CancelledError) \
                and self._task is not None and not isinstance(exc, DeadlineExceeded):
            if sys.version_info < (3, 11) or self._task.uncancel() <= self._cancelling:
                raise TimeoutError(f"deadline of {self.seconds:g} s exceeded") from exc
        return None

    async def __aenter__(self) -> deadline:
        return self._enter(sys._getframe(1))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        return f"<deadline {self.seconds:g}s {self._state}>"


def _propagating(scope: deadline) -> bool:
    """The scope's DeadlineExceeded is being handled (an except or finally
    block, an __exit__) somewhere on the interrupted stack."""
    exc = sys.exc_info()[1]
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, DeadlineExceeded) and exc.scope is scope:
            return True
        seen.add(id(exc))
        exc = exc.__context__
    return False


def _urgent(frame: FrameType | None) -> None:
    """Deliver urgent vectors into the running task receiver, if it is the
    code running now and the frame is not the loop's or this library's."""
    loop = asyncio._get_running_loop()
    shim = getattr(loop, "_uintr_shim", None) if loop is not None else None
    receiver = shim.urgent_running if shim is not None else None
    if receiver is None or _core.running_task(loop) is not receiver.task:
        return
    if frame is None or _is_machinery(frame):
        return
    receiver._urgent_interrupt()


def _receiver_protects(loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> bool:
    """The task's receiver is masked or running its handler."""
    shim = getattr(loop, "_uintr_shim", None)
    if shim is None:
        return False
    return bool(shim.protects(task))


def preemptible(
    seconds: float, callback: Callable[..., _R] | None = None
) -> Any:
    """Wrap a loop callback (or any function run on the main thread) in a
    ``deadline``: ``loop.call_soon(preemptible(0.05, work), arg)``. Raises
    ``TimeoutError`` from the call when it overruns (a callback's exception
    goes to the loop's exception handler). Also a decorator:
    ``@preemptible(0.05)``. ``seconds`` is checked at once, as ``deadline``
    checks it; a ``callback`` that is not callable raises TypeError."""
    _check_seconds(seconds)

    def wrap(fn: Callable[..., _R]) -> Callable[..., _R]:
        if not callable(fn):
            raise TypeError(f"preemptible() needs a callable, got {fn!r}")

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> _R:
            with deadline(seconds):
                return fn(*args, **kwargs)

        return run

    return wrap(callback) if callback is not None else wrap


def _ready_urgent_doorbell() -> None:
    """Receiver.for_task(urgent=...)'s step before binding (the core calls it
    through set_urgent_hook; it imports nothing from the package)."""
    # the doorbell is a signal handler: main thread only (see preempt.h)
    if threading.current_thread() is not threading.main_thread():
        raise PreemptionUnavailableError("urgent vectors interrupt running code only in the main thread")
    _timer._ensure_doorbell()


_core.set_urgent_hook(_ready_urgent_doorbell)
