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


def free_threaded_build() -> bool:
    """True on a free-threaded CPython (configure --disable-gil, e.g. 3.13t)."""
    import sysconfig

    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def gil_enabled() -> bool:
    """Whether this process runs with the GIL (always True before 3.13)."""
    import sys

    probe = getattr(sys, "_is_gil_enabled", None)
    return True if probe is None else bool(probe())


_UVLOOP_GIL_PROBE = "import sys, uvloop.loop; print(sys._is_gil_enabled())"


def uvloop_unusable_reason() -> str | None:
    """Why plain uvloop and the uvloop base cannot run here, or None if they can.

    Probed, not assumed: is uvloop installed (importlib.util.find_spec)? On a
    free-threaded build running without the GIL, a child interpreter imports
    uvloop.loop with PYTHON_GIL unset and reports sys._is_gil_enabled(): an
    extension that does not declare free-threading support turns the GIL back
    on for the whole process, which would make every other test of the run a
    test of the GIL build. Cached after the first call.
    """
    global _uvloop_reason
    if _uvloop_reason is not _UNPROBED:
        return _uvloop_reason
    import importlib.util
    import subprocess
    import sys

    reason: str | None = None
    if importlib.util.find_spec("uvloop") is None:
        reason = (f"uvloop is not installed for this Python ({sys.version.split()[0]}"
                  f"{'t' if free_threaded_build() else ''}; probed importlib.util.find_spec('uvloop'))")
    elif free_threaded_build() and not gil_enabled():
        env = {k: v for k, v in os.environ.items() if k != "PYTHON_GIL"}
        done = subprocess.run([sys.executable, "-c", _UVLOOP_GIL_PROBE], env=env,
                              capture_output=True, text=True, timeout=60)
        answer = done.stdout.strip()
        if done.returncode != 0:
            reason = (f"uvloop does not import on this free-threaded build (probed "
                      f"{_UVLOOP_GIL_PROBE!r} in a child: {done.stderr.strip().splitlines()[-1:]})")
        elif answer != "False":
            reason = ("importing uvloop re-enables the GIL on this free-threaded build "
                      f"(probed {_UVLOOP_GIL_PROBE!r} in a child with PYTHON_GIL unset: {answer})")
    _uvloop_reason = reason
    return reason


_UNPROBED = object()
_uvloop_reason: object = _UNPROBED
