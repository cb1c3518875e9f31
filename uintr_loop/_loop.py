"""UintrEventLoop: asyncio's selector loop whose own wakeup is a receiver.

asyncio wakes a blocked loop by writing a byte to its self-pipe, from every
``call_soon_threadsafe``, busy or not. Here the loop's UPID (block 0 of its
port) takes that role:

* ``_write_to_self`` posts the wakeup vector: while the loop runs callbacks
  SN is set, so the post is two locked instructions (set the PIR bit, count
  it), a load and no syscall; while it is blocked, the first post writes the
  eventfd once and the rest coalesce.
* The selector clears SN just before it blocks and checks PIR after, so a
  post racing with the decision to block turns the block into a poll; it sets
  SN again as soon as the selector returns and dispatches pending vectors
  (Receivers' handlers are scheduled as loop callbacks).

The self-pipe stays for what it is also used for: signal.set_wakeup_fd.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import select
import selectors
from collections.abc import Callable
from contextvars import Context
from typing import Any, TypeVar, TypeVarTuple, Unpack

from ._backend import new_port
from ._core import Port, WakeProbe, loop_timing, new_default_executor, submit_executor_job
from ._loopapi import UintrLoopAPI
from ._shim import install_shim
from ._watchdog import set_hog_watchdog

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")


class _UintrSelector(selectors.EpollSelector):
    """An epoll selector that brackets each select with restore/recognise.

    The port's eventfd is registered edge-triggered on the epoll object itself
    and not in the selector's map: its readiness only ends epoll_wait and is
    never reported as an event, so it needs no reader callback and no read.
    (EpollSelector asks epoll for as many events as it has keys, so the
    eventfd's edge can take one of those slots: a ready level-triggered fd
    pushed out that way is reported again by the very next epoll_wait, which
    then returns at once. One iteration late, never lost.)
    """

    def __init__(self, port: Port) -> None:
        super().__init__()
        self._uintr_port = port
        self._uintr_max_sleep = port.max_sleep   # hardware mode only (see port_hardware.pxi)
        epoll: select.epoll = self._selector  # type: ignore[attr-defined]
        epoll.register(port.fileno(), select.EPOLLIN | select.EPOLLET)
        port.epoll_fd = epoll.fileno()     # a ready event ends a spin (busypoll.h)

    def forget_parent_epoll(self) -> None:
        """In a fork child: the epoll set is the parent's too (fork shares
        it), and closing the loop would unregister the self-pipe and every
        transport from it, for the parent as well. Swap in a private, empty
        epoll object first: those unregisters then fail with ENOENT, which
        EpollSelector ignores."""
        shared: select.epoll = getattr(self, "_selector")
        shared.close()                  # our copy of the fd only
        setattr(self, "_selector", select.epoll())
        self._uintr_port.epoll_fd = -1

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        port = self._uintr_port
        port.check_owner()      # a fork child must not poll its parent's loop
        # Only a select that may block clears SN (after a busy-poll, if on): a
        # poll (timeout 0, callbacks ready) keeps it set, posts meanwhile stay
        # in PIR without a syscall, and recognise() below takes them all the
        # same.
        if (timeout is None or timeout > 0) and port.prepare_to_block(
            -1.0 if timeout is None else timeout
        ):
            timeout = 0
        cap = self._uintr_max_sleep
        if cap is not None and (timeout is None or timeout > cap):
            timeout = cap
        try:
            return super().select(timeout)  # epoll_wait takes the edge: model step E
        finally:
            port.recognise()


class UintrEventLoop(UintrLoopAPI, asyncio.SelectorEventLoop):
    """An asyncio event loop woken by (software-delivered) user interrupts.

    ``UintrEventLoop(*, busy_poll="auto")``: TypeError if given a selector (it
    makes its own); ``busy_poll`` and the mode as ``new_event_loop``.
    """

    _uintr_probe: WakeProbe | None

    def __new__(
        cls, selector: selectors.BaseSelector | None = None, *, busy_poll: float | str = "auto"
    ) -> UintrEventLoop:
        # Argument and mode checks and the port come first, so a refusal
        # leaves no half-built loop behind for asyncio's __del__ to trip over.
        if selector is not None:
            raise TypeError("UintrEventLoop makes its own selector; do not pass one")
        port = new_port()
        port.busy_poll = busy_poll
        self = super().__new__(cls)
        self._uintr_init(port)
        # the asyncio base's end of a wake-latency sample (none: timing off)
        self._uintr_probe = WakeProbe(port) if loop_timing(port) else None
        return self

    def __init__(
        self, selector: selectors.BaseSelector | None = None, *, busy_poll: float | str = "auto"
    ) -> None:
        port = self._uintr_port
        assert port is not None
        selector = None
        try:
            selector = _UintrSelector(port)
            super().__init__(selector)
        except BaseException:
            # Out of fds (EMFILE) half way: asyncio's own __del__ would trip
            # over the missing self-pipe before closing the selector. Close
            # what was made, and leave a closed loop for __del__.
            if selector is not None:
                selector.close()
            port.close()
            self._closed = True
            self._uintr_probe = None
            raise
        install_shim(self)

    def call_soon_threadsafe(
        self, callback: Callable[..., object], *args: object, context: Context | None = None
    ) -> asyncio.Handle:
        """asyncio's, with wake-latency sampling: a post that finds the ready
        queue empty (as the uvloop base's mailbox samples the post that makes
        it non-empty) and no sample in flight is stamped, and the loop's probe
        is queued just ahead of its callback (statistics().wake_latency;
        metrics.pxi). A post behind queued callbacks costs one test more."""
        probe = self._uintr_probe
        if probe is not None and not self._ready and not self._closed:  # type: ignore[attr-defined]
            if self._debug:  # type: ignore[attr-defined]  # refuse before queueing the probe
                self._check_callback(callback, "call_soon_threadsafe")  # type: ignore[attr-defined]
            if probe.stamp():
                self._ready.append(probe)  # type: ignore[attr-defined]
        handle = super().call_soon_threadsafe(callback, *args, context=context)
        tb = handle._source_traceback  # type: ignore[attr-defined]  # debug mode: the caller's frame is last
        while tb and tb[-1].filename == __file__:
            del tb[-1]
        return handle

    def run_in_executor(
        self, executor: concurrent.futures.Executor | None, func: Callable[[Unpack[_Ts]], _T], *args: Unpack[_Ts]
    ) -> asyncio.Future[_T]:
        """asyncio's run_in_executor (same checks, same default executor);
        a thread pool's worker answers the future directly (executor.pxi)."""
        self._check_closed()  # type: ignore[attr-defined]
        if self._debug:  # type: ignore[attr-defined]
            self._check_callback(func, "run_in_executor")  # type: ignore[attr-defined]
        if executor is None:
            executor = self._default_executor  # type: ignore[has-type]
            # Only check when the default executor is being used
            self._check_default_executor()  # type: ignore[attr-defined]
            if executor is None:
                executor = new_default_executor(self._uintr_port, "asyncio")
                self._default_executor = executor
        port = self._uintr_port
        fut = None if port is None else submit_executor_job(self, port, executor, func, args)
        if fut is None:
            return super().run_in_executor(executor, func, *args)
        return fut  # type: ignore[no-any-return]

    def _write_to_self(self) -> None:
        port = self._uintr_port
        if port is not None:      # None once closed, as asyncio's self-pipe is
            port.wakeup()

    def close(self) -> None:
        """Close the loop; its receivers are shut down (senders then raise
        ReceiverClosedError). The port's eventfd and memfd are released as
        soon as no Sender holds them. RuntimeError while running (as
        asyncio), and then nothing is stopped."""
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        set_hog_watchdog(self, None)
        port = self._uintr_port
        if port is not None and not self.is_running():
            try:
                port.check_owner()
            except RuntimeError:        # a fork child's copy (port.pxi)
                selector = getattr(self, "_selector", None)
                if isinstance(selector, _UintrSelector):
                    selector.forget_parent_epoll()
        super().close()
        self._uintr_probe = None            # it holds the port
        self._uintr_close_port()

    @property
    def base(self) -> str:
        """The loop this one is built on: ``"asyncio"``."""
        return "asyncio"
