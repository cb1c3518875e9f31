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

# asyncio's default policy on Unix under every Python that has policies: on
# 3.11 it carries the child-watcher API, on 3.14/3.15 it is the
# non-deprecated private base of the (deprecated) public DefaultEventLoopPolicy.
# Python 3.16 removes the policy system (set_event_loop_policy and the policy
# classes): there this module still imports, and UintrPolicy refuses to be
# made, naming what replaces it. Looked up without touching the deprecated
# public names (3.14 warns on those).
_unix_events = getattr(asyncio, "unix_events", None)
_DefaultPolicy: type | None = getattr(_unix_events, "_UnixDefaultEventLoopPolicy", None)
HAS_POLICIES = _DefaultPolicy is not None and callable(
    getattr(asyncio, "set_event_loop_policy", None))

_REPLACEMENT = (
    "uintr_loop.run(main()), or asyncio.run(main(), loop_factory=uintr_loop.EventLoop) "
    "(asyncio.Runner(loop_factory=uintr_loop.EventLoop) on 3.11)"
)


def _check_policy_args(base: str | None, busy_poll: float | str) -> str:
    base = check_base(base)
    validate_busy_poll(busy_poll)
    return base


if HAS_POLICIES:

    class UintrPolicy(_DefaultPolicy):  # type: ignore[misc,valid-type]
        """asyncio's default policy, making uintr_loop event loops.

        ``asyncio.set_event_loop_policy(UintrPolicy())``; ``base`` and
        ``busy_poll`` are those of ``uintr_loop.new_event_loop``. Everything
        else the default policy offers on this Python (child watchers on
        3.11) is inherited unchanged. Bad ``base``/``busy_poll`` raise at
        construction, as ``new_event_loop`` would, before anything else.
        Python 3.14 deprecates policies: a valid construction then warns
        (DeprecationWarning) like asyncio's own policies; prefer
        ``uintr_loop.run()`` or the loop factory ``uintr_loop.EventLoop``.
        On a Python without policies (3.16) it raises RuntimeError.
        """

        _loop_factory = UintrEventLoop

        def __init__(self, *, base: str | None = None, busy_poll: float | str = "auto") -> None:
            # arguments first: a bad one is the caller's error on every Python,
            # never hidden behind the deprecation (an error under -W error)
            self._uintr_base = _check_policy_args(base, busy_poll)
            self._uintr_busy_poll = busy_poll
            if sys.version_info >= (3, 14):
                warnings.warn(
                    "uintr_loop.UintrPolicy is deprecated as asyncio's event loop policies "
                    "are (Python 3.14, removed in 3.16); use " + _REPLACEMENT,
                    DeprecationWarning,
                    stacklevel=2,
                )
            super().__init__()

        @property
        def base(self) -> str:
            """The base of the loops this policy makes."""
            return self._uintr_base

        def new_event_loop(self) -> asyncio.AbstractEventLoop:
            return new_event_loop(base=self._uintr_base, busy_poll=self._uintr_busy_poll)

else:

    class UintrPolicy:  # type: ignore[no-redef]
        """Stands in for the policy on a Python without asyncio's policy
        system (3.16): constructing it raises RuntimeError naming the
        replacement (after the same argument checks)."""

        def __init__(self, *, base: str | None = None, busy_poll: float | str = "auto") -> None:
            _check_policy_args(base, busy_poll)
            raise RuntimeError(
                "asyncio on this Python has no event loop policies (removed in 3.16), "
                "so uintr_loop.UintrPolicy cannot be used: use " + _REPLACEMENT)


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
    ``base``/``busy_poll``; and as ``asyncio.run`` does on this Python:
    RuntimeError inside a running loop, and for a ``main`` that is not a
    coroutine ValueError up to 3.13, TypeError from 3.14 (which also takes
    any awaitable).
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
    with asyncio.Runner(debug=debug, loop_factory=factory, **run_kwargs) as runner:
        return runner.run(main)
