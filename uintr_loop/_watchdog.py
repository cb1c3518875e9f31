"""The hog watchdog: report, live, the stack of a loop callback that runs
longer than a threshold.

asyncio's debug mode reports a slow callback after it has finished; this
reports it while it still runs, with the stack it is running, so a runaway
can be seen (and logged, or stopped with ``deadline``) as it happens.

A watchdog thread posts a heartbeat to the loop (``call_soon_threadsafe``)
every quarter of the threshold. A heartbeat the loop has not run for longer
than the threshold means one callback (or task step) holds the loop: the
thread then reads that thread's current stack (``sys._current_frames()``)
and calls the user's callback *in the watchdog thread* with a ``HogReport``.
One report per stall; the default callback logs it as a warning record
whose ``uintr_loop_hog`` attribute holds ``report.as_dict()``
(``uintr_loop.hog_reporter`` also adds it to the hogging task's span). Off (the default) nothing runs at all; on, it costs
four heartbeat callbacks per threshold. It works on any loop with
``call_soon_threadsafe``.
"""
from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback
import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._core import check_duration

__all__ = ["HogReport", "HogWatchdog"]

logger = logging.getLogger("uintr_loop")


@dataclass(frozen=True)
class HogReport:
    """A loop held by one callback for at least ``duration`` seconds."""

    duration: float
    thread_id: int
    stack: tuple[str, ...]          # traceback.format_stack lines, outermost first
    task: str | None                # repr of the task running, if one is
    # the running task's contextvars (read-only use: the task is running in
    # the loop's thread), for a request id or the current span; None if no
    # task runs or this Python does not say
    context: contextvars.Context | None = field(default=None, repr=False, compare=False)

    def format(self) -> str:
        head = f"event loop held for {self.duration * 1000:.1f} ms"
        if self.task:
            head += f" by {self.task}"
        return head + ", still running:\n" + "".join(self.stack)

    def as_dict(self) -> dict[str, Any]:
        """Plain values for a log record's ``extra`` or JSON: duration (s),
        thread_id, task and the stack as one string."""
        return {"duration": self.duration, "thread_id": self.thread_id,
                "task": self.task, "stack": "".join(self.stack)}

    def span_attributes(self) -> dict[str, str | int | float]:
        """The report as OpenTelemetry attributes (for a span event)."""
        attrs: dict[str, str | int | float] = {
            "uintr_loop.hog.duration": self.duration,
            "thread.id": self.thread_id,
            "code.stacktrace": "".join(self.stack),
        }
        if self.task is not None:
            attrs["uintr_loop.hog.task"] = self.task
        return attrs


class HogWatchdog:
    """One loop's watchdog thread; see the module docstring."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        threshold: float,
        callback: Callable[[HogReport], object],
    ) -> None:
        threshold = _check_threshold(threshold)
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")
        self.loop = loop
        self.threshold = float(threshold)
        self.callback = callback
        self.reports = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sent_at: float | None = None      # heartbeat outstanding since
        self._loop_thread: int | None = None
        self._thread = threading.Thread(
            target=self._run, name="uintr_loop-hog-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (it is joined unless called from it)."""
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def _beat(self) -> None:
        with self._lock:
            self._sent_at = None
            self._loop_thread = threading.get_ident()

    def _run(self) -> None:
        interval = self.threshold / 4
        reported_for: float | None = None
        while not self._stop.wait(interval):
            if self.loop.is_closed():
                return
            now = time.monotonic()
            with self._lock:
                sent_at, loop_thread = self._sent_at, self._loop_thread
            # asyncio's loops (and uvloop) record the running thread; a loop
            # that does not is known from the first heartbeat it ran
            loop_thread = getattr(self.loop, "_thread_id", None) or loop_thread
            if sent_at is None:
                if not self.loop.is_running():
                    continue
                with self._lock:
                    self._sent_at = now
                try:
                    self.loop.call_soon_threadsafe(self._beat)
                except RuntimeError:        # closed meanwhile
                    return
                continue
            if now - sent_at < self.threshold or reported_for == sent_at or loop_thread is None:
                continue
            reported_for = sent_at
            self._report(now - sent_at, loop_thread)

    def _report(self, duration: float, loop_thread: int) -> None:
        frame = sys._current_frames().get(loop_thread)
        stack = tuple(traceback.format_stack(frame)) if frame is not None else ()
        task = None
        context = None
        try:
            # asyncio.current_task(loop) answers for another thread's loop
            # (3.14 keeps the running task in that thread's state, where
            # asyncio's old table no longer has it)
            running = asyncio.current_task(self.loop)
            task = repr(running) if running is not None else None
        except Exception:   # a loop asyncio does not know: no task name
            running = task = None
        if running is not None:     # Task.get_context() is 3.12+; _context before
            get_context = getattr(running, "get_context", None)
            context = get_context() if get_context else getattr(running, "_context", None)
        self.reports += 1
        try:
            self.callback(HogReport(duration, loop_thread, stack, task, context))
        except Exception:
            logger.exception("uintr_loop hog watchdog callback failed")


def _check_threshold(threshold: object) -> float:
    """A watchdog threshold in seconds, > 0; the thread waits threshold / 4
    at a time, which must be a valid wait (threading.TIMEOUT_MAX)."""
    value = check_duration(threshold, "threshold", minimum=0, exclusive=True,
                           maximum=4 * threading.TIMEOUT_MAX)
    assert value is not None
    return value


def set_hog_watchdog(
    loop: asyncio.AbstractEventLoop,
    threshold: float | None,
    callback: Callable[[HogReport], object] | None = None,
) -> HogWatchdog | None:
    """Start (or, with ``threshold=None``, stop) ``loop``'s hog watchdog.
    The default callback logs ``report.format()`` as a warning.

    Raises TypeError (``threshold`` not a number, ``callback`` not callable),
    ValueError (``threshold`` not finite and > 0) and, to start one,
    RuntimeError on a closed loop; a refused call leaves the running watchdog
    as it was. Stopping is always allowed. Any thread.
    """
    if threshold is not None:
        _check_threshold(threshold)
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")
        if loop.is_closed():
            raise RuntimeError("Event loop is closed")
    old: HogWatchdog | None = getattr(loop, "_uintr_hog_watchdog", None)
    if old is not None:
        old.stop()
        loop._uintr_hog_watchdog = None  # type: ignore[attr-defined]
    if threshold is None:
        return None
    dog = HogWatchdog(loop, threshold, callback or _log_report)
    loop._uintr_hog_watchdog = dog  # type: ignore[attr-defined]
    return dog


def _log_report(report: HogReport) -> None:
    logger.warning("%s", report.format(), extra={"uintr_loop_hog": report.as_dict()})
