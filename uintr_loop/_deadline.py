"""Deadlines that stop CPU-bound code: ``deadline()`` and ``preemptible()``.

``asyncio.timeout`` cancels a task at its next ``await``; code that never
awaits (a runaway loop, a big parse) runs on and blocks the whole loop.
``deadline(seconds)`` does what ``asyncio.timeout`` does at await points and,
in addition, interrupts running Python code: when a deadline passes, the
kernel (a POSIX timer; a native pthread that never takes the GIL where that
is unavailable) sends a free real-time signal to the main thread; Python runs
that signal's handler, ``Timer.fire`` (``_doorbell``), at the next bytecode boundary, and
it raises ``DeadlineExceeded`` there when it is safe (see
``deadline._verdict``). The
scope turns it into ``TimeoutError`` on exit; ``finally`` blocks run on the
way out as for any exception.

The mechanism and its safety essay are in cython_src/includes/preempt.h.
This module holds the scope; ``_doorbell`` the timer and its signal,
``_protection`` where a deadline may land, ``_preempt_errors`` the
exceptions.
Rules, each tested:
* raised only while the scope's own task (or, outside tasks, the scope's own
  synchronous code) is what runs, never in another task or callback;
* never inside the event loop's or this library's own Python code (asyncio,
  concurrent.futures, uintr_loop), nor in standard-library code that keeps
  an invariant over several statements (threading, queue, logging,
  contextlib, weakref, selectors, subprocess, the import system) or any
  ``__del__``, nor in anything such code calls: the whole stack between the
  interrupted code and the scope's own frame is looked at (see
  ``_protection``); the timer retries 50 us later;
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
import functools
import sys
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any, TypeVar

from . import _core
from ._core import check_duration
from ._doorbell import DROP, REFIRE_NS, RETRY_NOT_RUNNING_NS, RETRY_PROTECTED_NS, timer
from ._preempt_errors import DeadlineExceeded, PreemptionUnavailableError
from ._protection import (GAP_RETRIES, in_handler_gap, mask_depth, preemption_masked,
                          protected, receiver_protects)

__all__ = [
    "DeadlineExceeded",
    "PreemptionUnavailableError",
    "deadline",
    "preemptible",
    "preemption_masked",
]

_R = TypeVar("_R")

_ACTIVE, _EXPIRED, _DONE = "active", "expired", "done"

# A deadline further away than this (about 146 years) is no deadline: its
# CLOCK_MONOTONIC time would not fit the native timer's 64-bit slot.
_NEVER_S = 2.0**62 / 1e9


def _check_seconds(seconds: object) -> float:
    """``seconds`` of a deadline as a float (``inf``: none); the errors of
    ``_core.check_duration``. A deadline in the past fires at once."""
    value = check_duration(seconds, "seconds", none=True)
    return float("inf") if value is None or value >= _NEVER_S else value



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
        self._token = timer.add(self, when_ns)
        return self

    def _on_timeout(self) -> None:
        # Loop callback: the task is suspended at an await (it cannot be
        # running, a callback runs now). Cancel it, as asyncio.timeout does.
        if self._state != _ACTIVE or self._task is None:
            return
        self._state = _EXPIRED
        timer.remove(self._token)
        self._task.cancel()

    def _verdict(self, frame: FrameType | None) -> int:
        """0: raise now; > 0: retry in that many ns; DROP: forget it.
        Runs in the doorbell's handler, under the GIL."""
        if self._state != _ACTIVE and not (self._state == _EXPIRED and self._preempted):
            return DROP
        if self._preempted and _propagating(self):
            return REFIRE_NS            # on its way out through except/finally
        loop = self._loop
        running = _core.running_task(loop) if loop is not None else None
        if running is not self._task:
            return REFIRE_NS if self._preempted else RETRY_NOT_RUNNING_NS
        if mask_depth.get(id(running) if running is not None else 0):
            return RETRY_PROTECTED_NS
        if running is not None and loop is not None and receiver_protects(loop, running):
            return RETRY_PROTECTED_NS
        if frame is None or protected(frame, self._entry):
            return RETRY_PROTECTED_NS
        if self._gap_retries < GAP_RETRIES and in_handler_gap(frame):
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
            timer.remove(self._token)
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

