"""Bad input at every public entry point: one table, run on both uintr bases.

Each row names the entry point it covers, the bad call (a wrong type, a
vector out of 0..63, a closed object, a call from the wrong thread or after
the loop closed), and the exact exception class with a fragment of its
message. Every row runs on a fresh loop of each base and then checks:

* the exception is exactly the documented class (a subclass does not pass);
* no file descriptor leaked: /proc/self/fd counts the same once the loop
  and everything the row made are closed and collected;
* the loop is healthy: a sender thread's post still reaches a handler and a
  ``call_soon_threadsafe`` from another thread still runs.

The rows of behaviour that asyncio itself defines (``call_soon_threadsafe``
after close or in debug mode, ``close``/``run_forever`` while running, ...)
also run on stock asyncio, which must agree.

``test_every_entry_point_has_a_row`` walks ``uintr_loop.__all__``, the public
methods and properties of the public classes (and of the task receiver that
``Receiver.for_task`` returns) and the nogil C API declared in
``uintr_loop/_core.pxd``: a new entry point without a row fails it. The
documentation's "Bad input" table (docs/guide/bad-input.md) is the
documented form of this one.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import errno
import functools
import gc
import math
import os
import re
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

import uintr_loop
from _support import HANG_GUARD, REPO_ROOT
from uintr_loop import (
    HardwareUnavailableError,
    InvalidVectorFdError,
    PreemptionUnavailableError,
    Receiver,
    ReceiverClosedError,
    Sender,
    SenderClosedError,
    TaskReceiverError,
    VectorFd,
)
from uintr_loop._core import TaskReceiver
from uintr_loop._loopapi import UintrLoopAPI
from uintr_loop._native import NativeSender

BASES = ("asyncio", "uvloop")

# wrong types and out-of-range vectors, used across the table
NOT_INTS: list[Any] = [None, True, 1.5, "3", object()]
BAD_VECTORS: list[Any] = [-1, 64, 2**64, -(2**70)]


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def fds_made_since(before: set[str]) -> list[str]:
    """Descriptors open now that were not before (collecting garbage first
    if there are any: only cycles wait for the collector)."""
    for generation in (0, 2):          # the young first: cheap, and usually enough
        if not open_fds() - before:
            break
        gc.collect(generation)
    return [f"{fd} -> {_target(fd)}" for fd in sorted(open_fds() - before)]


def _target(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"


STOCK = "stock-asyncio"


def make_loop(base: str) -> asyncio.AbstractEventLoop:
    """A uintr loop of ``base``, or stock asyncio's loop for STOCK."""
    if base == STOCK:
        return asyncio.new_event_loop()
    return uintr_loop.new_event_loop(base=base)


class Ctx:
    """What a row gets: a fresh loop of one base, and helpers that make the
    objects a row needs and clean up everything the row made."""

    def __init__(self, base: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.base = base
        self.monkeypatch = monkeypatch
        self.loop = make_loop(base)
        self._cleanup: list[Callable[[], object]] = []

    def later(self, fn: Callable[[], object]) -> None:
        self._cleanup.append(fn)

    def receiver(self, loop: asyncio.AbstractEventLoop | None = None) -> Receiver:
        r = Receiver(lambda v: None, loop=loop or self.loop)
        self.later(r.close)
        return r

    def closed_receiver(self) -> Receiver:
        r = self.receiver()
        r.close()
        return r

    def vfd(self, vector: int = 5) -> VectorFd:
        v = self.receiver().vector_fd(vector)
        self.later(v.close)
        return v

    def sender(self) -> Sender:
        s = Sender(self.vfd())
        self.later(s.close)
        return s

    def new_loop(self) -> asyncio.AbstractEventLoop:
        loop = make_loop(self.base)
        self.later(loop.close)
        return loop

    def closed_loop(self) -> asyncio.AbstractEventLoop:
        loop = self.new_loop()
        loop.close()
        return loop

    def socketpair(self) -> socket.socket:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.later(a.close)
        self.later(b.close)
        return a

    def sock(self, family: int = socket.AF_INET) -> socket.socket:
        s = socket.socket(family, socket.SOCK_STREAM)
        self.later(s.close)
        return s

    def coro(self) -> Any:
        c = asyncio.sleep(0)
        self.later(c.close)
        return c

    def run(self, fn: Callable[[Ctx], Any]) -> Any:
        """Run the coroutine ``fn(ctx)`` as a task on the row's loop: what it
        raises propagates out."""
        return self.loop.run_until_complete(asyncio.wait_for(fn(self), HANG_GUARD))

    def in_task(self, fn: Callable[[Ctx], Any]) -> Any:
        """Call ``fn(ctx)`` inside a task of the running loop."""
        async def main(ctx: Ctx) -> Any:
            return fn(ctx)
        return self.loop.run_until_complete(main(self))

    def from_thread(self, fn: Callable[[], Any]) -> Any:
        """Call ``fn`` in another thread while the loop runs (and a task of
        it waits); what it raises propagates out."""
        async def main(ctx: Ctx) -> Any:
            fut = ctx.loop.create_future()

            def run() -> None:
                try:
                    result: Any = ("ok", fn())
                except BaseException as exc:
                    result = ("err", exc)
                ctx.loop.call_soon_threadsafe(fut.set_result, result)

            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            kind, value = await fut
            # joined: until its frame is gone it holds what it made (an
            # fd-holding loop, say) and the fd check would race with it
            thread.join(HANG_GUARD)
            if kind == "err":
                raise value
            return value
        return self.run(main)

    def close(self) -> None:
        while self._cleanup:
            fn = self._cleanup.pop()
            try:
                fn()
            except Exception:
                pass


@dataclasses.dataclass(frozen=True)
class Row:
    entry: str                       # the entry point it covers
    what: str                        # the bad input, in words
    call: Callable[[Ctx], Any]       # the bad call
    exc: type[BaseException] | None  # the exact exception (None: returns `result`)
    match: str = ""                  # a fragment of its message (regex)
    result: Any = None

    @property
    def id(self) -> str:
        return f"{self.entry}: {self.what}"


ROWS: list[Row] = []


def row(entry: str, what: str, call: Callable[[Ctx], Any],
        exc: type[BaseException] | None, match: str = "", result: Any = None) -> None:
    ROWS.append(Row(entry, what, call, exc, match, result))


def _show(value: Any) -> str:
    return "object()" if type(value) is object else f"{value!r:.30}"


def each(entry: str, what: str, values: list[Any], call: Callable[[Ctx, Any], Any],
         exc: type[BaseException], match: str = "") -> None:
    for value in values:
        row(entry, f"{what} {_show(value)}".strip(),
            functools.partial(lambda c, v: call(c, v), v=value), exc, match)


def readonly(entry: str, make: Callable[[Ctx], Any], attr: str, value: Any = 1,
             exc: type[BaseException] = AttributeError) -> None:
    row(entry, f"assigning .{attr}", lambda c: setattr(make(c), attr, value),
        exc, rf"{attr}|not writable|setter|can't set")


def pending_task(c: Ctx) -> asyncio.Task[None]:
    """A task of the row's loop that waits (cancelled at clean-up)."""
    task = c.loop.create_task(asyncio.sleep(HANG_GUARD))
    c.later(lambda: (task.cancel(), c.loop.run_until_complete(asyncio.sleep(0))))
    return task


# -- Receiver ----------------------------------------------------------------

async def async_handler(vector: int) -> None:
    pass


row("Receiver", "handler not callable", lambda c: Receiver(42, loop=c.loop), TypeError, "callable")
row("Receiver", "a coroutine function as handler (it would never run)",
    lambda c: Receiver(async_handler, loop=c.loop), TypeError, "not a coroutine function")
each("Receiver", "loop=", [True, 1.5, "3", object(), -1],
     lambda c, v: Receiver(print, loop=v), TypeError, "uintr_loop event loop")


def stock_loop(c: Ctx) -> asyncio.AbstractEventLoop:
    stock = asyncio.new_event_loop()
    c.later(stock.close)
    return stock


row("Receiver", "a stock asyncio loop", lambda c: Receiver(print, loop=stock_loop(c)),
    TypeError, "uintr_loop event loop")
row("Receiver", "no running loop, no loop=", lambda c: Receiver(print), RuntimeError,
    "no running event loop")
row("Receiver", "a closed loop", lambda c: Receiver(print, loop=c.closed_loop()), RuntimeError,
    "Event loop is closed")


def too_many_receivers(c: Ctx) -> None:
    loop = c.new_loop()
    for _ in range(63):
        c.receiver(loop)
    Receiver(print, loop=loop)


row("Receiver", "a 64th receiver on one loop", too_many_receivers, RuntimeError, "at most 63")
each("Receiver.vector_fd", "vector", NOT_INTS, lambda c, v: c.receiver().vector_fd(v),
     TypeError, "vector must be an int")
each("Receiver.vector_fd", "vector", BAD_VECTORS, lambda c, v: c.receiver().vector_fd(v),
     ValueError, r"vector must be in 0\.\.63")
row("Receiver.vector_fd", "closed receiver", lambda c: c.closed_receiver().vector_fd(1),
    ReceiverClosedError, "closed")
row("Receiver.vector_fd", "receiver of a closed loop",
    lambda c: (r := c.receiver(c.new_loop()), r.loop.close(), r.vector_fd(1)),
    ReceiverClosedError, "closed")
row("Receiver.masked", "from another thread while the loop runs",
    lambda c: (r := c.receiver(), c.from_thread(r.masked)), RuntimeError,
    r"masked\(\) must be called from the thread running its loop")
row("Receiver.masked", "closed receiver", lambda c: c.closed_receiver().masked(),
    ReceiverClosedError, "closed")
row("Receiver.masked", "an argument", lambda c: c.receiver().masked(True), TypeError, "argument")
row("Receiver.statistics", "an argument", lambda c: c.receiver().statistics(1), TypeError,
    "argument")
row("Receiver.statistics", "after close: the figures, no error",
    lambda c: type(c.closed_receiver().statistics()).__name__, None, result="ReceiverStatistics")
row("Receiver.close", "an argument", lambda c: c.receiver().close(1), TypeError, "argument")
row("Receiver.close", "twice, and from another thread while the loop runs: no error",
    lambda c: (r := c.receiver(), c.from_thread(r.close), r.close(), r.closed)[-1], None,
    result=True)
readonly("Receiver.handler", lambda c: c.receiver(), "handler", print)
readonly("Receiver.loop", lambda c: c.receiver(), "loop", None)
readonly("Receiver.closed", lambda c: c.receiver(), "closed", True)

# -- Receiver.for_task and the task receiver ----------------------------------

row("Receiver.for_task", "handler not callable",
    lambda c: c.in_task(lambda c: Receiver.for_task(42)), TypeError, "callable")
row("Receiver.for_task", "a coroutine function as handler",
    lambda c: c.in_task(lambda c: Receiver.for_task(async_handler)), TypeError,
    "not a coroutine function")
row("Receiver.for_task", "outside a task", lambda c: Receiver.for_task(print),
    TaskReceiverError, "from a task")
each("Receiver.for_task", "task=", [True, 1.5, "3", object()],
     lambda c, v: Receiver.for_task(print, v), TypeError, "task must be an asyncio Task")
each("Receiver.for_task", "urgent=", [None, 1.5, 3],
     lambda c, v: c.in_task(lambda c: Receiver.for_task(print, urgent=v)), TypeError,
     "urgent must be an iterable of vectors")
each("Receiver.for_task", "urgent vector", [True, "3", 1.5],
     lambda c, v: c.in_task(lambda c: Receiver.for_task(print, urgent=[v])), TypeError,
     "vector must be an int")
each("Receiver.for_task", "urgent vector", BAD_VECTORS,
     lambda c, v: c.in_task(lambda c: Receiver.for_task(print, urgent=[v])), ValueError,
     r"vector must be in 0\.\.63")
row("Receiver.for_task", "twice for one task",
    lambda c: c.in_task(lambda c: [Receiver.for_task(print) for _ in range(2)]),
    TaskReceiverError, "already has a receiver")


async def for_task_on_done_task(c: Ctx) -> None:
    task = asyncio.ensure_future(asyncio.sleep(0))
    await task
    Receiver.for_task(print, task)


row("Receiver.for_task", "a done task", lambda c: c.run(for_task_on_done_task),
    TaskReceiverError, "the task is done")


row("Receiver.for_task", "from another thread",
    lambda c: (t := pending_task(c), c.from_thread(lambda: Receiver.for_task(print, t))),
    RuntimeError, "from the thread running the loop")


def for_task_without_shim(c: Ctx) -> None:
    uintr_loop.uninstall_shim(c.loop)
    c.later(lambda: uintr_loop.install_shim(c.loop))
    c.in_task(lambda c: Receiver.for_task(print))


row("Receiver.for_task", "a loop without the shim", for_task_without_shim, TaskReceiverError,
    "no scheduler shim")


def for_task_on_stock_loop(c: Ctx) -> None:
    stock = stock_loop(c)
    task = stock.create_task(asyncio.sleep(HANG_GUARD))
    c.later(lambda: (task.cancel(), stock.run_until_complete(asyncio.sleep(0))))
    Receiver.for_task(print, task)


row("Receiver.for_task", "a task of a stock asyncio loop", for_task_on_stock_loop,
    TaskReceiverError, "no scheduler shim")


def urgent_off_main_thread(c: Ctx) -> None:
    def in_thread() -> None:
        loop = uintr_loop.new_event_loop(base=c.base)
        try:
            async def main() -> None:
                Receiver.for_task(print, urgent={9})
            loop.run_until_complete(main())
        finally:
            loop.close()
    c.from_thread(in_thread)


row("Receiver.for_task", "urgent= with the loop in a non-main thread", urgent_off_main_thread,
    PreemptionUnavailableError, "main thread")


def task_receiver(c: Ctx) -> TaskReceiver:
    """A task receiver of a task left pending on the row's loop."""
    r = Receiver.for_task(print, pending_task(c))
    c.later(r.close)
    return r


async def wait_with(c: Ctx, timeout: Any) -> None:
    r = Receiver.for_task(print)
    try:
        await r.wait(timeout)
    finally:
        # refused before any state changed: the receiver still waits normally
        with pytest.raises(asyncio.TimeoutError):
            await r.wait(0)
        r.close()


each("TaskReceiver.wait", "timeout=", [True, "3", object(), Decimal(1)],
     lambda c, v: c.run(lambda c: wait_with(c, v)), TypeError, "timeout must be a number")
row("TaskReceiver.wait", "timeout=nan", lambda c: c.run(lambda c: wait_with(c, math.nan)),
    ValueError, "got nan")
row("TaskReceiver.wait", "from another task", lambda c: c.in_task(
    lambda c: task_receiver(c).wait()), TaskReceiverError, "from its own task")
row("TaskReceiver.wait", "from another thread",
    lambda c: (r := task_receiver(c), c.from_thread(r.wait)), RuntimeError,
    "from the thread running its loop")


async def wait_closed(c: Ctx) -> None:
    r = Receiver.for_task(print)
    r.close()
    await r.wait()


row("TaskReceiver.wait", "closed receiver", lambda c: c.run(wait_closed), ReceiverClosedError,
    "closed")


async def wait_elsewhere(c: Ctx) -> None:
    r = Receiver.for_task(print)
    waiting = r.wait()                          # bound to this task...

    async def other() -> tuple[int, ...]:
        return await waiting                    # ...awaited by another one

    try:
        await asyncio.create_task(other())
    finally:
        r.close()


row("TaskReceiver.wait", "awaited by another task", lambda c: c.run(wait_elsewhere),
    TaskReceiverError, "from its own task")
row("TaskReceiver.masked", "from another task", lambda c: c.in_task(
    lambda c: task_receiver(c).masked()), TaskReceiverError, "from its own task")
row("TaskReceiver.masked", "from another thread",
    lambda c: (r := task_receiver(c), c.from_thread(r.masked)), RuntimeError,
    "from the thread running its loop")
row("TaskReceiver.masked", "closed receiver", lambda c: c.in_task(
    lambda c: (r := Receiver.for_task(print), r.close(), r.masked())), ReceiverClosedError, "closed")
row("TaskReceiver.close", "an argument", lambda c: task_receiver(c).close(1), TypeError, "argument")
readonly("TaskReceiver.task", task_receiver, "task", None)
readonly("TaskReceiver.urgent", task_receiver, "urgent", frozenset())

# -- VectorFd ------------------------------------------------------------------

each("VectorFd", "receiver", [None, True, "3", object()], lambda c, v: VectorFd(v, 1),
     TypeError, "incorrect type")
each("VectorFd", "vector", NOT_INTS, lambda c, v: VectorFd(c.receiver(), v), TypeError,
     "vector must be an int")
each("VectorFd", "vector", BAD_VECTORS, lambda c, v: VectorFd(c.receiver(), v), ValueError,
     r"vector must be in 0\.\.63")
row("VectorFd", "closed receiver", lambda c: VectorFd(c.closed_receiver(), 1),
    ReceiverClosedError, "closed")
row("VectorFd.fileno", "closed VectorFd", lambda c: (v := c.vfd(), v.close(), v.fileno()),
    SenderClosedError, "closed")
row("VectorFd.close", "an argument", lambda c: c.vfd().close(1), TypeError, "argument")
row("VectorFd.close", "twice: no error", lambda c: (v := c.vfd(), v.close(), v.close(), v.closed)[-1],
    None, result=True)
readonly("VectorFd.receiver", lambda c: c.vfd(), "receiver", None)
readonly("VectorFd.vector", lambda c: c.vfd(), "vector", 3)
readonly("VectorFd.closed", lambda c: c.vfd(), "closed", True)

# -- Sender --------------------------------------------------------------------

each("Sender", "", [None, True, False, 1.5, "3", object()], lambda c, v: Sender(v), TypeError,
     "takes a VectorFd")
each("Sender", "fd", [-1, -(2**70), 10**6], lambda c, v: Sender(v), InvalidVectorFdError,
     "is not open")
each("Sender", "fd", [2**31, 2**64], lambda c, v: Sender(v), InvalidVectorFdError,
     "out of range")
row("Sender", "a socket that is not a vector fd", lambda c: Sender(c.socketpair().fileno()),
    InvalidVectorFdError, "not a uintr_loop vector fd")


def a_pipe(c: Ctx) -> int:
    r, w = os.pipe()
    c.later(lambda: (os.close(r), os.close(w)))
    return r


row("Sender", "a pipe", lambda c: Sender(a_pipe(c)), InvalidVectorFdError, "not a socket")
row("Sender", "a closed VectorFd", lambda c: Sender((v := c.vfd(), v.close())[0]),
    SenderClosedError, "closed")
row("Sender", "VectorFd of a closed receiver",
    lambda c: Sender((v := c.vfd(), v.receiver.close())[0]), ReceiverClosedError, "closed")
row("Sender", "vector fd (int) of a closed receiver",
    lambda c: Sender((v := c.vfd(), v.receiver.close())[0].fileno()), ReceiverClosedError,
    "closed")
row("Sender", "VectorFd of a closed loop",
    lambda c: (v := c.receiver(c.new_loop()).vector_fd(1), c.later(v.close),
               v.receiver.loop.close(), Sender(v)), ReceiverClosedError, "closed")
row("Sender.send", "closed Sender", lambda c: (s := c.sender(), s.close(), s.send()),
    SenderClosedError, "closed Sender")
row("Sender.send", "closed receiver",
    lambda c: (s := c.sender(), s.vector_fd.receiver.close(), s.send()), ReceiverClosedError,
    "closed")
row("Sender.send", "closed loop",
    lambda c: (s := Sender(c.receiver(c.new_loop()).vector_fd(2)), c.later(s.close),
               s.vector_fd.receiver.loop.close(), s.send()), ReceiverClosedError, "closed")
row("Sender.send", "an argument", lambda c: c.sender().send(1), TypeError, "argument")
row("Sender.close", "an argument", lambda c: c.sender().close(1), TypeError, "argument")
row("Sender.close", "twice: no error", lambda c: (s := c.sender(), s.close(), s.close(), s.closed)[-1],
    None, result=True)
readonly("Sender.vector", lambda c: c.sender(), "vector", 3)
readonly("Sender.closed", lambda c: c.sender(), "closed", True)
readonly("Sender.vector_fd", lambda c: c.sender(), "vector_fd", None)

# -- the nogil C API (uintr_loop/_core.pxd), through uintr_loop._native ---------

each("C:uintr_sender_handle", "", [None, 3, "3", object()],
     lambda c, v: NativeSender(v, 1), TypeError, "expected a uintr_loop.Sender")
row("C:uintr_send", "closed Sender: -EBADF, nothing sent",
    lambda c: (s := c.sender(), s.close(), NativeSender(s, 1).join())[2], None,
    result=(0, -errno.EBADF))
row("C:uintr_send", "closed receiver: -ESHUTDOWN, nothing sent",
    lambda c: (s := c.sender(), s.vector_fd.receiver.close(), NativeSender(s, 1).join())[2],
    None, result=(0, -errno.ESHUTDOWN))

# -- the loops' own additions (both bases) ---------------------------------------

each("loop.busy_poll", "=", [None, True, "3", object(), Decimal(1)],
     lambda c, v: setattr(c.loop, "busy_poll", v), TypeError, "busy_poll must be a number")
each("loop.busy_poll", "=", [-1, 1_000_001, 2**64, 10**400, math.nan, math.inf],
     lambda c, v: setattr(c.loop, "busy_poll", v), ValueError, "between 0 and 1000000")
# every duration is a real number: a Fraction is one (a Decimal is not, above)
row("loop.busy_poll", "= Fraction(5, 2): 2.5 microseconds",
    lambda c: (setattr(c.loop, "busy_poll", Fraction(5, 2)), c.loop.busy_poll)[1], None,
    result=2.5)
row("deadline", "seconds=10**400: beyond a float, no deadline",
    lambda c: uintr_loop.deadline(10**400).seconds, None, result=math.inf)
row("deadline", "seconds=-10**400: beyond a float, expires at once",
    lambda c: uintr_loop.deadline(-10**400).seconds, None, result=-math.inf)
row("deadline", "seconds=Fraction(1, 2)", lambda c: uintr_loop.deadline(Fraction(1, 2)).seconds,
    None, result=0.5)
row("loop.busy_poll", "set on a closed loop", lambda c: setattr(c.closed_loop(), "busy_poll", 1),
    RuntimeError, "Event loop is closed")
row("loop.delivery_mode", "assigning", lambda c: setattr(c.loop, "delivery_mode", "hardware"),
    AttributeError, "delivery_mode|setter|can't set")
row("loop.base", "assigning", lambda c: setattr(c.loop, "base", "asyncio"),
    AttributeError, "base|setter|can't set")
row("loop.statistics", "an argument", lambda c: c.loop.statistics(1), TypeError, "argument")
row("loop.statistics", "after close: the figures at close, no error",
    lambda c: c.closed_loop().statistics().mode, None, result="software")
row("loop.delivery_mode", "after close: no error", lambda c: c.closed_loop().delivery_mode, None,
    result="software")
row("loop.busy_poll", "read after close: 0, no error", lambda c: c.closed_loop().busy_poll, None,
    result=0.0)
each("loop.set_hog_watchdog", "threshold", [True, "3", object(), Decimal(1)],
     lambda c, v: c.loop.set_hog_watchdog(v), TypeError, "threshold must be a number")
each("loop.set_hog_watchdog", "threshold", [0, -1, math.nan, math.inf, 1e300, 2**64, 10**400],
     lambda c, v: c.loop.set_hog_watchdog(v), ValueError, r"threshold must be > 0 and <= \S+ seconds")
each("loop.set_hog_watchdog", "callback", [True, "3", 42],
     lambda c, v: c.loop.set_hog_watchdog(1.0, v), TypeError, "callback must be callable")
row("loop.set_hog_watchdog", "start on a closed loop",
    lambda c: c.closed_loop().set_hog_watchdog(1.0), RuntimeError, "Event loop is closed")


def refused_watchdog_keeps_the_old_one(c: Ctx) -> None:
    dog = c.loop.set_hog_watchdog(5.0)
    c.later(lambda: c.loop.set_hog_watchdog(None))
    try:
        c.loop.set_hog_watchdog(-1)
    finally:
        assert dog is not None and dog._thread.is_alive(), "a refused call stopped the watchdog"


row("loop.set_hog_watchdog", "refused while one runs", refused_watchdog_keeps_the_old_one,
    ValueError, "> 0")


def close_while_running(c: Ctx) -> None:
    dog = c.loop.set_hog_watchdog(5.0)
    c.later(lambda: c.loop.set_hog_watchdog(None))
    try:
        c.in_task(lambda c: c.loop.close())
    finally:
        assert dog is not None and dog._thread.is_alive(), "a refused close stopped the watchdog"
        assert not c.loop.is_closed()


row("loop.close", "while running (the watchdog stays)", close_while_running, RuntimeError,
    "Cannot close a running event loop")
row("loop.close", "from another thread while running",
    lambda c: c.from_thread(c.loop.close), RuntimeError, "Cannot close a running event loop")
row("loop.call_soon_threadsafe", "after close (asyncio's error)",
    lambda c: c.closed_loop().call_soon_threadsafe(print), RuntimeError, "Event loop is closed")


def threadsafe_in_debug(c: Ctx, callback: Any) -> None:
    c.loop.set_debug(True)
    c.later(lambda: c.loop.set_debug(False))
    c.loop.call_soon_threadsafe(callback)


row("loop.call_soon_threadsafe", "not callable, debug mode (asyncio's check)",
    lambda c: threadsafe_in_debug(c, 42), TypeError, "a callable object was expected")
row("loop.call_soon_threadsafe", "a coroutine function, debug mode (asyncio's check)",
    lambda c: threadsafe_in_debug(c, asyncio.sleep), TypeError, "coroutines cannot be used")
row("loop.run_in_executor", "after close (asyncio's error)",
    lambda c: c.closed_loop().run_in_executor(None, print), RuntimeError, "Event loop is closed")


def executor_after_shutdown(c: Ctx) -> Any:
    c.loop.run_until_complete(c.loop.shutdown_default_executor())
    return c.loop.run_in_executor(None, print)


def shut_pool(c: Ctx) -> concurrent.futures.ThreadPoolExecutor:
    pool = concurrent.futures.ThreadPoolExecutor(1)
    pool.shutdown()
    return pool


row("loop.run_in_executor", "default executor shut down (asyncio's error)", executor_after_shutdown,
    RuntimeError, "Executor shutdown has been called")
row("loop.run_in_executor", "an executor shut down (its own error)",
    lambda c: c.loop.run_in_executor(shut_pool(c), print), RuntimeError, "after shutdown")
row("loop.set_default_executor", "after close: allowed, as asyncio allows it",
    lambda c: c.closed_loop().set_default_executor(shut_pool(c)), None)
row("loop.run_forever", "while running", lambda c: c.in_task(lambda c: c.loop.run_forever()),
    RuntimeError, "already running")
row("loop.run_until_complete", "after close",
    lambda c: c.closed_loop().run_until_complete(c.coro()), RuntimeError, "Event loop is closed")
row("loop.set_debug", "after close: allowed, as asyncio allows it",
    lambda c: c.closed_loop().set_debug(True), None)

# -- module functions and classes ---------------------------------------------------


def with_mode(c: Ctx, mode: str, fn: Callable[[], Any]) -> Any:
    c.monkeypatch.setenv("UINTR_LOOP_MODE", mode)
    try:
        return fn()
    finally:
        c.monkeypatch.delenv("UINTR_LOOP_MODE")


def hardware_available() -> bool:
    return "hardware" == uintr_loop.capabilities().mode


each("new_event_loop", "base=", [True, 1.5, "3", "trio", object()],
     lambda c, v: uintr_loop.new_event_loop(base=v), ValueError, "base must be one of")
each("new_event_loop", "busy_poll=", [None, True, "3"],
     lambda c, v: uintr_loop.new_event_loop(base=c.base, busy_poll=v), TypeError,
     "busy_poll must be a number")
each("new_event_loop", "busy_poll=", [-1, 2**64, math.nan],
     lambda c, v: uintr_loop.new_event_loop(base=c.base, busy_poll=v), ValueError,
     "between 0 and 1000000")
row("new_event_loop", "a positional argument", lambda c: uintr_loop.new_event_loop("asyncio"),
    TypeError, "positional")
row("new_event_loop", "UINTR_LOOP_MODE=bogus",
    lambda c: with_mode(c, "bogus", lambda: uintr_loop.new_event_loop(base=c.base)),
    ValueError, "UINTR_LOOP_MODE='bogus'")
if not hardware_available():
    row("new_event_loop", "UINTR_LOOP_MODE=hardware without UINTR",
        lambda c: with_mode(c, "hardware", lambda: uintr_loop.new_event_loop(base=c.base)),
        HardwareUnavailableError, "UINTR_LOOP_MODE=hardware, but")
    row("capabilities", "UINTR_LOOP_MODE=hardware without UINTR",
        lambda c: with_mode(c, "hardware", uintr_loop.capabilities),
        HardwareUnavailableError, "UINTR_LOOP_MODE=hardware, but")


def with_timing(c: Ctx, value: str, fn: Callable[[], Any]) -> Any:
    c.monkeypatch.setenv("UINTR_LOOP_TIMING", value)
    try:
        return fn()
    finally:
        c.monkeypatch.delenv("UINTR_LOOP_TIMING")


row("new_event_loop", "UINTR_LOOP_TIMING=2",
    lambda c: with_timing(c, "2", lambda: uintr_loop.new_event_loop(base=c.base)),
    ValueError, "UINTR_LOOP_TIMING must be 0 or 1, got '2'")
row("capabilities", "UINTR_LOOP_MODE=bogus",
    lambda c: with_mode(c, "bogus", uintr_loop.capabilities), ValueError, "expected one of")
row("capabilities", "an argument", lambda c: uintr_loop.capabilities(True), TypeError, "argument")
row("UintrEventLoop", "a selector", lambda c: uintr_loop.UintrEventLoop(
    __import__("selectors").DefaultSelector()), TypeError, "makes its own selector")
each("UintrEventLoop", "busy_poll=", ["3", None],
     lambda c, v: uintr_loop.UintrEventLoop(busy_poll=v), TypeError, "busy_poll must be a number")
each("UintrUVLoop", "busy_poll=", ["3", None],
     lambda c, v: uintr_loop.UintrUVLoop(busy_poll=v), TypeError, "busy_poll must be a number")
row("UintrUVLoop", "busy_poll=-1", lambda c: uintr_loop.UintrUVLoop(busy_poll=-1), ValueError,
    "between 0 and 1000000")
each("UintrPolicy", "base=", [True, "3"], lambda c, v: uintr_loop.UintrPolicy(base=v),
     ValueError, "base must be one of")
each("UintrPolicy", "busy_poll=", [None, "3"], lambda c, v: uintr_loop.UintrPolicy(busy_poll=v),
     TypeError, "busy_poll must be a number")
row("UintrPolicy", "busy_poll=-1", lambda c: uintr_loop.UintrPolicy(busy_poll=-1), ValueError,
    "between 0 and 1000000")


def policy(c: Ctx) -> uintr_loop.UintrPolicy:
    """A valid policy (3.14+ deprecates policies: that warning is not the row's)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return uintr_loop.UintrPolicy(base=c.base)


row("UintrPolicy.new_event_loop", "UINTR_LOOP_MODE=bogus",
    lambda c: with_mode(c, "bogus", policy(c).new_event_loop), ValueError, "UINTR_LOOP_MODE")
readonly("UintrPolicy.base", policy, "base", "asyncio")
each("EventLoop", "busy_poll=", ["3", None],
     lambda c, v: uintr_loop.EventLoop(busy_poll=v), TypeError, "busy_poll must be a number")
row("EventLoop", "busy_poll=-1", lambda c: uintr_loop.EventLoop(busy_poll=-1), ValueError,
    "between 0 and 1000000")
# as asyncio.run on this Python: ValueError up to 3.13, TypeError from 3.14
each("run", "a non-coroutine", [None, 3, print], lambda c, v: uintr_loop.run(v),
     TypeError if sys.version_info >= (3, 14) else ValueError,
     "awaitable is required" if sys.version_info >= (3, 14) else "a coroutine was expected")
row("run", "base=bogus", lambda c: uintr_loop.run(c.coro(), base="bogus"), ValueError,
    "base must be one of")
row("run", "busy_poll='3'", lambda c: uintr_loop.run(c.coro(), busy_poll="3"), TypeError,
    "busy_poll must be a number")
row("run", "loop_factory and base", lambda c: uintr_loop.run(
    c.coro(), base="asyncio", loop_factory=uintr_loop.new_event_loop), TypeError,
    "either loop_factory or base")
row("run", "inside a running loop", lambda c: c.in_task(lambda c: uintr_loop.run(c.coro())),
    RuntimeError, "running event loop")

each("deadline", "seconds", [True, "3", object(), 1j, Decimal(1)],
     lambda c, v: uintr_loop.deadline(v), TypeError, "seconds must be a number or None")
row("deadline", "seconds=nan", lambda c: uintr_loop.deadline(math.nan), ValueError, "nan")
row("deadline", "entered twice",
    lambda c: [d.__enter__() for d in [uintr_loop.deadline(None)] for _ in range(2)],
    RuntimeError, "entered only once")
row("deadline", "from another thread", lambda c: c.from_thread(
    lambda: uintr_loop.deadline(1).__enter__()), PreemptionUnavailableError, "main thread")
readonly("deadline.expired", lambda c: uintr_loop.deadline(1), "expired", True)
each("preemptible", "seconds", [True, "3", object()], lambda c, v: uintr_loop.preemptible(v),
     TypeError, "seconds must be a number or None")
row("preemptible", "seconds=nan", lambda c: uintr_loop.preemptible(math.nan, print), ValueError,
    "nan")
each("preemptible", "callback", [42, "3"], lambda c, v: uintr_loop.preemptible(1.0, v),
     TypeError, "needs a callable")
row("preemptible", "decorating a non-callable", lambda c: uintr_loop.preemptible(1.0)(42),
    TypeError, "needs a callable")
row("preemptible", "called from another thread",
    lambda c: c.from_thread(uintr_loop.preemptible(1.0, print)), PreemptionUnavailableError,
    "main thread")
row("preemption_masked", "an argument (it is not a deadline)",
    lambda c: uintr_loop.preemption_masked(0.1), TypeError, "argument")

each("install_shim", "loop=", [None, 3, "3", object()], lambda c, v: uintr_loop.install_shim(v),
     TypeError, "expected an asyncio event loop")
row("install_shim", "a closed loop", lambda c: uintr_loop.install_shim(c.closed_loop()),
    RuntimeError, "Event loop is closed")
each("uninstall_shim", "loop=", [None, 3, "3", object()],
     lambda c, v: uintr_loop.uninstall_shim(v), TypeError, "expected an asyncio event loop")
row("uninstall_shim", "while a task receiver is open",
    lambda c: c.in_task(lambda c: (Receiver.for_task(print), uintr_loop.uninstall_shim(c.loop))),
    TaskReceiverError, "task receiver")

each("send_fds", "sock=", [None, 3, "3"], lambda c, v: uintr_loop.send_fds(v, [0]), TypeError,
     "needs a socket.socket")
row("send_fds", "an AF_INET socket", lambda c: uintr_loop.send_fds(c.sock(), [0]), ValueError,
    "AF_UNIX")
each("send_fds", "fds=", [None, 3, 1.5], lambda c, v: uintr_loop.send_fds(c.socketpair(), v),
     TypeError, "fds must be an iterable")
each("send_fds", "fd", [True, "3", None, 1.5],
     lambda c, v: uintr_loop.send_fds(c.socketpair(), [v]), TypeError,
     "file descriptor|fileno")
row("send_fds", "an fd out of range", lambda c: uintr_loop.send_fds(c.socketpair(), [2**40]),
    ValueError, "out of range")
row("send_fds", "a closed fd", lambda c: uintr_loop.send_fds(c.socketpair(), [-1]), OSError,
    "Bad file descriptor")
row("send_fds", "a closed VectorFd", lambda c: uintr_loop.send_fds(
    c.socketpair(), [(v := c.vfd(), v.close())[0]]), SenderClosedError, "closed")
row("send_fds", "empty data", lambda c: uintr_loop.send_fds(c.socketpair(), [0], b""),
    ValueError, "at least one byte")
row("send_fds", "a closed socket", lambda c: uintr_loop.send_fds(
    (s := c.sock(socket.AF_UNIX), s.close())[0], [0]), OSError, "Bad file descriptor")
each("recv_fds", "sock=", [None, 3], lambda c, v: uintr_loop.recv_fds(v, 1), TypeError,
     "needs a socket.socket")
row("recv_fds", "an AF_INET socket", lambda c: uintr_loop.recv_fds(c.sock(), 1), ValueError,
    "AF_UNIX")
each("recv_fds", "maxfds=", [True, None, 1.5, "3"],
     lambda c, v: uintr_loop.recv_fds(c.socketpair(), v), TypeError, "maxfds must be an int")
each("recv_fds", "maxfds=", [-1, 2**64],
     lambda c, v: uintr_loop.recv_fds(c.socketpair(), v), ValueError, "maxfds")
each("recv_fds", "bufsize=", [True, 1.5],
     lambda c, v: uintr_loop.recv_fds(c.socketpair(), 1, v), TypeError, "bufsize must be an int")
each("recv_fds", "bufsize=", [-1, 2**64],
     lambda c, v: uintr_loop.recv_fds(c.socketpair(), 1, v), ValueError, "bufsize")
row("recv_fds", "a closed socket", lambda c: uintr_loop.recv_fds(
    (s := c.sock(socket.AF_UNIX), s.close())[0], 1), OSError, "Bad file descriptor")


def truncated(c: Ctx) -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    c.later(a.close)
    c.later(b.close)
    uintr_loop.send_fds(a, [a, b])
    uintr_loop.recv_fds(b, 1)


row("recv_fds", "more fds than maxfds (none leak)", truncated, OSError, "truncated")

# -- loop statistics and their export ------------------------------------------------

each("LoopStatistics.since", "earlier", [None, 1, "x"],
     lambda c, v: c.loop.statistics().since(v), TypeError, r"since\(\) takes a LoopStatistics")
row("LoopStatistics.since", "a receiver's ReceiverStatistics",
    lambda c: c.loop.statistics().since(c.receiver().statistics()), TypeError,
    r"since\(\) takes a LoopStatistics")
row("LoopStatistics.utilization", "assigning",
    lambda c: setattr(c.loop.statistics(), "utilization", 0.5), dataclasses.FrozenInstanceError,
    "utilization")
each("WakeLatency.quantile", "q", [None, True, "0.5"],
     lambda c, v: c.loop.statistics().wake_latency.quantile(v), TypeError, "q must be a number")
each("WakeLatency.quantile", "q", [0, -0.5, 1.01, math.nan, math.inf],
     lambda c, v: c.loop.statistics().wake_latency.quantile(v), ValueError, r"q must be in \(0, 1\]")
each("WakeLatency.since", "earlier", [None, 3],
     lambda c, v: c.loop.statistics().wake_latency.since(v), TypeError,
     r"since\(\) takes a WakeLatency")
for _attr in ("count", "mean", "BOUNDS"):
    row(f"WakeLatency.{_attr}", "assigning",
        functools.partial(lambda c, a: setattr(c.loop.statistics().wake_latency, a, 1), a=_attr),
        dataclasses.FrozenInstanceError, _attr)
each("log_statistics", "loop", [None, object()],
     lambda c, v: uintr_loop.log_statistics(v), TypeError, "uintr_loop event loop")
row("log_statistics", "a stock asyncio loop", lambda c: uintr_loop.log_statistics(stock_loop(c)),
    TypeError, "uintr_loop event loop")
each("log_statistics", "logger", ["uintr_loop", 1],
     lambda c, v: uintr_loop.log_statistics(c.loop, v), TypeError, "logger must be a logging.Logger")
each("log_statistics", "level", ["INFO", True, 1.5],
     lambda c, v: uintr_loop.log_statistics(c.loop, level=v), TypeError, "level must be")
each("log_statistics", "since", [1, "x", object()],
     lambda c, v: uintr_loop.log_statistics(c.loop, since=v), TypeError, "since must be")
row("log_statistics", "a closed loop: its final figures, no error",
    lambda c: type(uintr_loop.log_statistics(c.closed_loop())).__name__, None,
    result="LoopStatistics")
each("hog_reporter", "logger", ["x", 1],
     lambda c, v: uintr_loop.hog_reporter(v), TypeError, "logger must be a logging.Logger")
each("hog_reporter", "level", ["WARNING", None],
     lambda c, v: uintr_loop.hog_reporter(level=v), TypeError, "level must be")
each("hog_reporter", "span_event", [1, "yes", None],
     lambda c, v: uintr_loop.hog_reporter(span_event=v), TypeError, "span_event must be a bool")
each("instrument_otel", "loop", [None, object()],
     lambda c, v: uintr_loop.instrument_otel(v), TypeError, "uintr_loop event loop")
row("instrument_otel", "a stock asyncio loop",
    lambda c: uintr_loop.instrument_otel(stock_loop(c)), TypeError, "uintr_loop event loop")
each("instrument_otel", "attributes", [[("a", 1)], {"a": None}, {1: "x"}, {"a": [1]}],
     lambda c, v: uintr_loop.instrument_otel(c.loop, attributes=v), TypeError, "attributes must")
each("instrument_otel", "meter_provider", [1, "x"],
     lambda c, v: uintr_loop.instrument_otel(c.loop, meter_provider=v), TypeError,
     "meter_provider must be")

# -- immutable records: assigning to one is refused --------------------------------

FROZEN = dataclasses.FrozenInstanceError
readonly("ReceiverStatistics", lambda c: c.loop.statistics(), "posted", 0, FROZEN)
readonly("LoopStatistics", lambda c: c.loop.statistics(), "busy_time", 1.0, FROZEN)
readonly("WakeLatency", lambda c: c.loop.statistics().wake_latency, "max", 0.0, FROZEN)
readonly("Capabilities", lambda c: uintr_loop.capabilities(), "mode", "hardware", FROZEN)
readonly("HogReport", lambda c: uintr_loop.HogReport(0.1, 1, (), None), "duration", 0, FROZEN)

# Entry points with no bad input of their own, and why (the meta-test checks
# each name is real, so this list cannot go stale).
EXEMPT = {
    name: "an exception class: constructed by the library, takes a message like its base"
    for name in ("DeadlineExceeded", "HardwareUnavailableError", "InvalidVectorFdError",
                 "PreemptionUnavailableError", "ReceiverClosedError", "SenderClosedError",
                 "TaskReceiverError")
}
EXEMPT["Capabilities.describe"] = "no arguments; formats an immutable record"
EXEMPT["HogReport.format"] = "no arguments; formats an immutable record"
for _name in ("HogReport.as_dict", "HogReport.span_attributes", "LoopStatistics.as_dict",
              "WakeLatency.as_dict"):
    EXEMPT[_name] = "no arguments; plain values of an immutable record"
EXEMPT["OtelInstrumentation"] = "made by instrument_otel (its rows), which checks every argument"
EXEMPT["OtelInstrumentation.close"] = "no arguments; idempotent"


# -- the test --------------------------------------------------------------------


def round_trip(loop: asyncio.AbstractEventLoop) -> None:
    """A sender thread's post reaches a handler, and a call_soon_threadsafe
    from another thread runs: the loop is healthy."""
    async def main() -> None:
        got = loop.create_future()
        ran = loop.create_future()
        r = Receiver(lambda v: got.done() or got.set_result(v))
        s = Sender(r.vector_fd(7))
        try:
            t = threading.Thread(target=lambda: (
                s.send(), loop.call_soon_threadsafe(lambda: ran.done() or ran.set_result(1))))
            t.start()
            assert await asyncio.wait_for(got, HANG_GUARD) == 7
            assert await asyncio.wait_for(ran, HANG_GUARD) == 1
            t.join()
        finally:
            s.close()
            r.close()
            s.vector_fd.close()
    loop.run_until_complete(main())


@pytest.fixture(scope="module", autouse=True)
def _warm_up() -> None:
    """Start what a process starts once and keeps (the liveness watcher of
    senders opened from an fd, uvloop's and asyncio's first loops), so the
    fd count of each row sees only what that row made."""
    for base in BASES:
        loop = uintr_loop.new_event_loop(base=base)
        try:
            round_trip(loop)
            r = Receiver(print, loop=loop)
            v = r.vector_fd(1)
            Sender(v.fileno()).close()
            v.close()
            r.close()
        finally:
            loop.close()
    gc.collect()


@pytest.fixture(params=BASES)
def base(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def threadsafe_round_trip(loop: asyncio.AbstractEventLoop) -> None:
    """A call_soon_threadsafe from another thread runs (any loop)."""
    async def main() -> None:
        ran = loop.create_future()
        t = threading.Thread(target=loop.call_soon_threadsafe, args=(ran.set_result, 1))
        t.start()
        assert await asyncio.wait_for(ran, HANG_GUARD) == 1
        t.join()
    loop.run_until_complete(main())


@pytest.mark.parametrize("case", ROWS, ids=[r.id for r in ROWS])
def test_bad_input(case: Row, base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    check_row(case, base, monkeypatch, round_trip)


# Rows of behaviour asyncio itself defines: stock asyncio must agree.
STOCK_ROWS = [r for r in ROWS if r.entry in (
    "loop.call_soon_threadsafe", "loop.run_forever", "loop.run_until_complete", "loop.set_debug")
    or (r.entry == "loop.close" and "watchdog" not in r.what)]


@pytest.mark.parametrize("case", STOCK_ROWS, ids=[r.id for r in STOCK_ROWS])
def test_asyncio_defined_rows_hold_on_stock_asyncio(
        case: Row, monkeypatch: pytest.MonkeyPatch) -> None:
    check_row(case, STOCK, monkeypatch, threadsafe_round_trip)


def check_row(case: Row, base: str, monkeypatch: pytest.MonkeyPatch,
              healthy: Callable[[asyncio.AbstractEventLoop], None]) -> None:
    fds_before = open_fds()
    ctx = Ctx(base, monkeypatch)
    try:
        if case.exc is None:
            assert case.call(ctx) == case.result
        else:
            with pytest.raises(BaseException) as info:
                case.call(ctx)
            assert type(info.value) is case.exc, (
                f"raised {type(info.value).__name__}: {info.value}, expected {case.exc.__name__}")
            assert re.search(case.match, str(info.value)), str(info.value)
            del info
        healthy(ctx.loop)
    finally:
        ctx.close()
        if not ctx.loop.is_closed():
            ctx.loop.close()
    del ctx
    assert not fds_made_since(fds_before), "file descriptors leaked"


# -- the meta-test: every public entry point has a row ------------------------------


def _public(cls: type) -> Iterator[str]:
    """Public methods and properties defined by ``cls`` itself (a record's
    fields are data: the record's own row covers assigning to them)."""
    names = set(vars(cls))
    if dataclasses.is_dataclass(cls):
        names -= {f.name for f in dataclasses.fields(cls)}
    for name in sorted(names):
        if not name.startswith("_"):
            yield name


def entry_points() -> set[str]:
    """Every public entry point, named as the table names them."""
    found: set[str] = set()
    loop_classes = (uintr_loop.UintrEventLoop, uintr_loop.UintrUVLoop)
    for name in uintr_loop.__all__:
        obj = getattr(uintr_loop, name)
        found.add(name)
        if not isinstance(obj, type) or issubclass(obj, BaseException):
            continue
        if obj in loop_classes:
            for cls in (obj, UintrLoopAPI):
                found |= {f"loop.{attr}" for attr in _public(cls)}
        else:
            found |= {f"{name}.{attr}" for attr in _public(obj)}
    found |= {f"TaskReceiver.{attr}" for attr in _public(TaskReceiver)}
    # the part after "Not a public API" is for the test extension alone
    pxd = (REPO_ROOT / "uintr_loop" / "_core.pxd").read_text().split("# Not a public API")[0]
    found |= {f"C:{fn}" for fn in re.findall(r"^cdef [^#(]*?\b(\w+)\(", pxd, re.M)}
    return found


def test_every_entry_point_has_a_row() -> None:
    points = entry_points()
    covered = {r.entry for r in ROWS}
    missing = sorted(points - covered - set(EXEMPT))
    assert not missing, f"public entry points without a bad-input row: {missing}"
    assert not sorted(set(EXEMPT) - points), "EXEMPT names something that is not an entry point"
    assert not sorted(set(EXEMPT) & covered), "an entry point is both exempt and covered"
    # the walk itself sees what it must
    assert {"Receiver.vector_fd", "loop.busy_poll", "loop.set_hog_watchdog", "TaskReceiver.wait",
            "C:uintr_send", "C:uintr_sender_handle", "run", "Sender"} <= points
    # and every row names a real entry point (or one of the loop's asyncio
    # methods whose behaviour the loops keep: call_soon_threadsafe and co.)
    stray = covered - points - {"loop.call_soon_threadsafe", "loop.run_forever",
                                "loop.run_until_complete", "loop.set_debug"}
    assert not stray, f"rows for unknown entry points: {sorted(stray)}"


def test_documented_table_names_every_entry_point() -> None:
    """The documentation's "Bad input" reference table names each entry
    point of this table, as the table names it (or, for an entry point
    documented on a page of its own, that page's "## Bad input" section does)."""
    section = (REPO_ROOT / "docs" / "guide" / "bad-input.md").read_text()
    for page in sorted((REPO_ROOT / "docs").glob("**/*.md")):
        parts = page.read_text().split("\n## Bad input\n", 1)
        if len(parts) == 2:
            section += parts[1].split("\n## ", 1)[0]
    missing = [entry for entry in sorted({r.entry for r in ROWS} | set(EXEMPT))
               if entry.removeprefix("C:") not in section]
    assert not missing, f"docs/guide/bad-input.md's table does not name: {missing}"


def test_accepted_extremes_are_not_errors() -> None:
    """Values at the edge that are valid, and what they mean (documented)."""
    assert uintr_loop.deadline(1e300).seconds == math.inf          # no deadline
    assert uintr_loop.deadline(2**64).seconds == math.inf
    assert uintr_loop.deadline(-math.inf).seconds == -math.inf     # expires at once
    with uintr_loop.deadline(2**64):                              # no timer armed
        pass
    spins = 0
    with pytest.raises(TimeoutError):
        with uintr_loop.deadline(-math.inf):
            end = time.monotonic() + HANG_GUARD
            while time.monotonic() < end:
                spins += 1
    assert time.monotonic() < end, "a deadline in the past never fired"