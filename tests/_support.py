"""Helpers shared by the tests/test_loop_*.py conformance modules.

Test modules import them as ``from _support import ...``: tests/ has no
``__init__.py`` and pytest's default "prepend" import mode puts it on sys.path.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

_T = TypeVar("_T")

HANG_GUARD = 10.0
"""Seconds a test may wait on the loop before it counts as hung."""

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The repository checkout, put on PYTHONPATH of child interpreters."""

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


async def guarded(aw: Awaitable[_T], timeout: float = HANG_GUARD) -> _T:
    """Await ``aw`` with a hang guard that fails the test if it had to fire.

    A timer firing wakes the loop, which would run callbacks a lost
    cross-thread wakeup left queued; so finishing late must fail too.
    """
    loop = asyncio.get_running_loop()
    fired = False

    def guard() -> None:
        nonlocal fired
        fired = True

    handle = loop.call_later(timeout, guard)
    try:
        result = await asyncio.wait_for(aw, timeout + 5.0)
    finally:
        handle.cancel()
    assert not fired, f"finished only after the {timeout}s hang guard woke the loop"
    return result


@contextlib.contextmanager
def fresh_loop(factory: LoopFactory) -> Iterator[asyncio.AbstractEventLoop]:
    """A new loop from ``factory``; on exit finalise its async generators and close it."""
    loop = factory()
    try:
        yield loop
    finally:
        if not loop.is_closed():
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


def child_env() -> dict[str, str]:
    """This process's environment with REPO_ROOT and tests/ (the test-only
    extension, _testcore) prepended to PYTHONPATH, for child interpreters."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO_ROOT), str(REPO_ROOT / "tests"), env.get("PYTHONPATH")]))
    return env


async def wait_until_cancelled(on_cancel: Callable[[], object]) -> None:
    """Wait forever; when cancelled, call ``on_cancel`` and re-raise the CancelledError."""
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        on_cancel()
        raise


@contextlib.contextmanager
def debug_mode(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """Turn on ``loop``'s debug mode for the block, then restore the previous setting."""
    original = loop.get_debug()
    loop.set_debug(True)
    try:
        yield
    finally:
        loop.set_debug(original)


def exceptions_in_thread(fn: Callable[[], object]) -> list[BaseException]:
    """Call ``fn`` in a new thread, join it (up to HANG_GUARD) and return what it raised, if anything."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_GUARD)
    return errors


UVLOOP_DEVIATION_MARK = "uvloop_deviation"


def uvloop_deviation(reason: str) -> pytest.MarkDecorator:
    """Mark a test whose property plain uvloop does not have (``reason`` says how).

    conftest turns it into a strict xfail on the uvloop-based parametrisations
    only ("uvloop" and "uintr-uvloop"); the test still has to pass on asyncio
    and on the asyncio base. Never for a uintr_loop bug: plain uvloop runs the
    same test, so a uintr-only failure shows up as an XPASS(strict) on "uvloop".
    """
    return getattr(pytest.mark, UVLOOP_DEVIATION_MARK)(reason)
