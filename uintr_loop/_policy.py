"""UintrPolicy, and run() for programs that want the loop without a policy."""
from __future__ import annotations

import asyncio
import functools
import sys
import warnings
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ._bases import check_base, new_event_loop
from ._core import validate_busy_poll
from ._loop import UintrEventLoop

_T = TypeVar("_T")

# asyncio's default policy on Unix under every supported Python: on 3.10/3.11
# it carries the child-watcher API, on 3.14+ it is the non-deprecated private
# base of the (deprecated) public DefaultEventLoopPolicy.
_DefaultPolicy: type = asyncio.unix_events._UnixDefaultEventLoopPolicy


class UintrPolicy(_DefaultPolicy):  # type: ignore[misc]
    """asyncio's default policy, making uintr_loop event loops.

    ``asyncio.set_event_loop_policy(UintrPolicy())``; ``base`` and
    ``busy_poll`` are those of ``uintr_loop.new_event_loop``. Everything else
    the default policy offers on this Python (child watchers on 3.10/3.11) is
    inherited unchanged. Python 3.14 deprecates policies: constructing one
    warns like asyncio's own; prefer ``uintr_loop.run()`` or a loop factory.
    Bad ``base``/``busy_poll`` raise at construction, as ``new_event_loop``
    would.
    """

    _loop_factory = UintrEventLoop

    def __init__(self, *, base: str | None = None, busy_poll: float | str = "auto") -> None:
        if sys.version_info >= (3, 14):
            warnings.warn(
                "uintr_loop.UintrPolicy is deprecated as asyncio's event loop policies "
                "are (Python 3.14); use uintr_loop.run() or "
                "asyncio.Runner(loop_factory=uintr_loop.new_event_loop)",
                DeprecationWarning,
                stacklevel=2,
            )
        self._uintr_base = check_base(base)
        validate_busy_poll(busy_poll)
        self._uintr_busy_poll = busy_poll
        super().__init__()

    @property
    def base(self) -> str:
        """The base of the loops this policy makes."""
        return self._uintr_base

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return new_event_loop(base=self._uintr_base, busy_poll=self._uintr_busy_poll)


def run(
    main: Coroutine[Any, Any, _T],
    *,
    base: str | None = None,
    busy_poll: float | str = "auto",
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    debug: bool | None = None,
    **run_kwargs: Any,
) -> _T:
    """Run a coroutine on a new uintr_loop event loop, like ``asyncio.run``.

    ``base`` and ``busy_poll`` are those of ``uintr_loop.new_event_loop``;
    ``loop_factory`` replaces them. Extra keyword arguments go to
    ``asyncio.run`` (3.12+) or the Runner.

    Raises, before any loop exists, as ``new_event_loop`` does for bad
    ``base``/``busy_poll``; TypeError for both ``loop_factory`` and
    ``base``/``busy_poll``; and as ``asyncio.run`` does: ValueError for a
    ``main`` that is not a coroutine, RuntimeError inside a running loop.
    """
    if loop_factory is None:
        check_base(base)
        validate_busy_poll(busy_poll)
        factory: Callable[[], asyncio.AbstractEventLoop] = functools.partial(
            new_event_loop, base=base, busy_poll=busy_poll
        )
    elif base is not None or (busy_poll != "auto" and busy_poll):
        raise TypeError("pass either loop_factory or base/busy_poll, not both")
    else:
        factory = loop_factory
    if sys.version_info >= (3, 12):
        return asyncio.run(main, debug=debug, loop_factory=factory, **run_kwargs)
    # asyncio.run's checks, in its order, before any loop exists
    if asyncio._get_running_loop() is not None:
        raise RuntimeError("uintr_loop.run() cannot be called from a running event loop")
    if not asyncio.iscoroutine(main):
        raise ValueError(f"a coroutine was expected, got {main!r}")
    if sys.version_info >= (3, 11):
        with asyncio.Runner(debug=debug, loop_factory=factory, **run_kwargs) as runner:
            return runner.run(main)
    return _run_310(main, factory, debug)


def _run_310(
    main: Coroutine[Any, Any, _T],
    factory: Callable[[], asyncio.AbstractEventLoop],
    debug: bool | None,
) -> _T:
    """asyncio.run's steps on 3.10, which has neither Runner nor loop_factory."""
    loop = factory()
    try:
        asyncio.set_event_loop(loop)
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_all_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
    pending = asyncio.all_tasks(loop)
    if not pending:
        return
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    for task in pending:
        if not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception during uintr_loop.run() shutdown",
                    "exception": task.exception(),
                    "task": task,
                }
            )
