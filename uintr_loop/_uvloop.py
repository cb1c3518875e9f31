"""UintrUVLoop: uvloop's loop, woken through the loop's UPID.

uvloop keeps its ready queue and its wakeup (a libuv async handle) private,
so ``call_soon_threadsafe`` goes to a mailbox of the core's instead and posts
the wakeup vector; libuv's prepare and check phases, hooked in C, clear SN
just before the loop may sleep and set it again right after (see the core's
uvhook.pxi for the why). Everything else is uvloop's.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import re
import threading
from collections.abc import Callable
from typing import Any, TypeVar, TypeVarTuple, Unpack

import uvloop
import uvloop.loop

from ._backend import new_port
from ._core import (
    HardwareUnavailableError,
    Mailbox,
    UVHook,
    mailbox_call_soon_threadsafe,
    new_default_executor,
    submit_executor_job,
    threadsafe_method,
)
from ._loopapi import UintrLoopAPI
from ._shim import install_shim
from ._watchdog import set_hog_watchdog

# The uvloop releases whose Loop this code has run against: [first, end).
# The hook reads uvloop's object, not an API (includes/uvapi.h): the
# uv_loop_t pointer among the first two pointer slots of the Loop, and the
# libuv 1.x symbols uvloop's module exports. A release outside this range may
# lay its Loop out differently, so it is refused before the hook dereferences
# anything. pyproject.toml pins the same range (a test holds the two equal).
UVLOOP_VERSIONS: tuple[tuple[int, int], tuple[int, int]] = ((0, 21), (0, 24))

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")


def uvloop_range() -> str:
    """The supported uvloop range as a pip specifier, e.g. ``">=0.21,<0.24"``."""
    (lo_major, lo_minor), (hi_major, hi_minor) = UVLOOP_VERSIONS
    return f">={lo_major}.{lo_minor},<{hi_major}.{hi_minor}"


def check_uvloop_version(version: object = None) -> str:
    """Refuse a uvloop whose Loop layout this code does not know.

    ``version`` defaults to the imported uvloop's ``__version__``. Returns it
    when it is in :data:`UVLOOP_VERSIONS`; raises RuntimeError naming
    ``base="asyncio"`` (which needs no uvloop internals) otherwise, and for a
    version that does not start with ``MAJOR.MINOR``.
    """
    if version is None:
        version = getattr(uvloop, "__version__", None)
    match = re.match(r"(\d+)\.(\d+)", version) if isinstance(version, str) else None
    if match is not None:
        found = (int(match.group(1)), int(match.group(2)))
        if UVLOOP_VERSIONS[0] <= found < UVLOOP_VERSIONS[1]:
            return str(version)
    raise RuntimeError(
        f"uintr_loop: uvloop {version!s} is not a release whose Loop layout this "
        f"uintr_loop knows (uvloop{uvloop_range()}); use base='asyncio', or "
        f"install uvloop{uvloop_range()}"
    )


class UintrUVLoop(UintrLoopAPI, uvloop.Loop):  # type: ignore[misc]  # uvloop's stubs vs AbstractEventLoop
    """A uvloop event loop woken by (software-delivered) user interrupts.

    ``UintrUVLoop(*, busy_poll="auto")``: ``busy_poll`` and the mode as
    ``new_event_loop``; HardwareUnavailableError in hardware mode (this base
    delivers in software only).
    """

    _uintr_thread_id: int | None
    _uintr_default_executor: concurrent.futures.Executor | None

    def __new__(cls, *, busy_poll: float | str = "auto") -> UintrUVLoop:
        # The checks and the port come before uvloop's __new__, which makes
        # the uv loop (its epoll fd, eventfd...): a refusal in __init__ would
        # leave that to a Loop that is never closed, and its fds leak. The
        # version comes first of all: UVHook reads the Loop's layout.
        check_uvloop_version()
        port = new_port()
        if port.mode != "software":
            port.close()
            raise HardwareUnavailableError(
                "the uvloop base delivers in software only; use base='asyncio' "
                "for hardware delivery"
            )
        try:
            port.busy_poll = busy_poll
        except BaseException:
            port.close()
            raise
        self: UintrUVLoop = super().__new__(cls)
        self._uintr_init(port)
        self._uintr_thread_id = None
        self._uintr_default_executor = None
        return self

    def __init__(self, *, busy_poll: float | str = "auto") -> None:
        super().__init__()
        port = self._uintr_port
        assert port is not None
        self._uintr_mailbox = Mailbox(self, port)
        self._uintr_mailbox.debug = self.get_debug()
        # The mailbox's call bound to it, looked up on the instance first: a
        # call skips binding the class's function, finding the mailbox and
        # parsing its arguments in general (the class attribute below stays
        # for calls through the class).
        self.call_soon_threadsafe = threadsafe_method(self._uintr_mailbox)  # type: ignore[method-assign]
        try:
            self._uintr_hook = UVHook(self, port, uvloop.loop.__file__)
        except BaseException:
            uvloop.Loop.close(self)
            port.close()
            raise
        install_shim(self)

    # returns a ThreadsafeHandle (asyncio's Handle API), not uvloop's Handle
    call_soon_threadsafe = mailbox_call_soon_threadsafe  # type: ignore[assignment]

    def run_in_executor(  # type: ignore[override]  # asyncio's generic signature, not uvloop's stub's
        self, executor: concurrent.futures.Executor | None, func: Callable[[Unpack[_Ts]], _T], *args: Unpack[_Ts]
    ) -> asyncio.Future[_T]:
        """uvloop's run_in_executor (same checks; the default executor is
        uvloop's too, so its close and shutdown_default_executor manage it);
        a thread pool's worker answers the future directly (executor.pxi)."""
        if asyncio.iscoroutine(func) or inspect.iscoroutinefunction(func):
            raise TypeError("coroutines cannot be used with run_in_executor()")
        if self.is_closed():
            raise RuntimeError("Event loop is closed")
        if executor is None:
            self._check_default_executor()  # type: ignore[attr-defined]
            executor = self._uintr_default_executor
            if executor is None:
                executor = new_default_executor(self._uintr_port, "uvloop")
                self.set_default_executor(executor)
        port = self._uintr_port
        fut = None if port is None else submit_executor_job(self, port, executor, func, args)
        if fut is None:
            return super().run_in_executor(executor, func, *args)  # type: ignore[return-value]
        return fut  # type: ignore[no-any-return]

    def set_default_executor(self, executor: concurrent.futures.Executor) -> None:
        super().set_default_executor(executor)
        self._uintr_default_executor = executor

    @property
    def _thread_id(self) -> int | None:
        # asyncio's name for it: Receiver checks wrong-thread calls with it
        return self._uintr_thread_id

    def run_forever(self) -> None:
        if self.is_running():
            super().run_forever()           # raises as uvloop does
            return
        port = self._uintr_port
        if port is not None:
            port.check_owner()              # a fork child: the parent's loop
        self._uintr_thread_id = threading.get_ident()
        try:
            super().run_forever()
        finally:
            self._uintr_thread_id = None
        if port is not None:
            port.check_owner()              # forked while running: the hook stopped it

    def set_debug(self, enabled: bool) -> None:
        super().set_debug(enabled)
        mailbox = getattr(self, "_uintr_mailbox", None)   # None inside __init__
        if mailbox is not None:
            mailbox.debug = bool(enabled)

    def close(self) -> None:
        """Close the loop; its receivers are shut down (senders then raise
        ReceiverClosedError). Callbacks posted and not yet run are dropped,
        as asyncio drops its ready queue. RuntimeError while running, and
        then nothing is stopped."""
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        port = self._uintr_port
        if port is None:
            return
        set_hog_watchdog(self, None)
        # Our libuv handles go first: uvloop's close walks the loop's handles
        # and would take ours for its own.
        self._uintr_hook.close()
        self._uintr_mailbox.close()
        super().close()                 # shuts the default executor down
        self._uintr_default_executor = None
        self._uintr_close_port()

    @property
    def base(self) -> str:
        """The loop this one is built on: ``"uvloop"``."""
        return "uvloop"

    def __reduce__(self) -> Any:
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")
