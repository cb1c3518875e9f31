"""Every asyncio test runs on stock asyncio, plain uvloop and uintr_loop's two bases.

pytest-asyncio's ``pytest_asyncio_loop_factories`` hook parametrises each
``@pytest.mark.asyncio`` test over these factories; a behaviour that differs
from stock asyncio fails on a ``uintr-*`` parameter.

Plain uvloop ("uvloop") is there as the reference for the uvloop base: where
uvloop itself behaves differently from asyncio, the test carries
``@uvloop_deviation("why")`` (see _support.py), which turns both uvloop-based
parametrisations into strict xfails. Because plain uvloop runs too, such an
xfail is proven every run to be uvloop's own deviation: a uintr_loop bug
would fail "uintr-uvloop" while "uvloop" passes, and strict xfail reports
that pass as XPASS(strict), a failure.
"""
from __future__ import annotations

import asyncio
import functools

import pytest

import uintr_loop
from _support import UVLOOP_DEVIATION_MARK, fresh_loop, uvloop_unusable_reason

UVLOOP_SKIP = uvloop_unusable_reason()
"""Why uvloop cannot run here (None: it can). On a free-threaded build uvloop
is imported only where it keeps the GIL off; its rows are then skipped."""


def _uvloop_new_event_loop() -> asyncio.AbstractEventLoop:
    if UVLOOP_SKIP is not None:     # a skipped row never gets here
        raise RuntimeError(UVLOOP_SKIP)
    import uvloop

    return uvloop.new_event_loop()


LOOP_FACTORIES = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": _uvloop_new_event_loop,
    "uintr-asyncio": functools.partial(uintr_loop.new_event_loop, base="asyncio"),
    "uintr-uvloop": functools.partial(uintr_loop.new_event_loop, base="uvloop"),
}

_UVLOOP_BASED = ("uvloop", "uintr-uvloop")


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item):
    return LOOP_FACTORIES


@pytest.fixture(params=sorted(LOOP_FACTORIES))
def loop_factory(request: pytest.FixtureRequest):
    """A loop factory for synchronous tests that drive a loop themselves."""
    return LOOP_FACTORIES[request.param]


@pytest.fixture(params=["asyncio", "uvloop"])
def uintr_only_loop(request: pytest.FixtureRequest):
    """A fresh uintr_loop event loop, on each base, for uintr_loop-only features."""
    with fresh_loop(functools.partial(uintr_loop.new_event_loop, base=request.param)) as loop:
        yield loop


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{UVLOOP_DEVIATION_MARK}(reason): uvloop itself differs from asyncio here; "
        "strict xfail on the uvloop-based parametrisations only",
    )
    config.addinivalue_line(
        "markers",
        "needs_uvloop: runs uvloop or the uvloop base in its body; skipped where "
        "uvloop cannot run (not installed, or it would re-enable the GIL)",
    )


def _on_uvloop(item: pytest.Item) -> bool:
    """True if ``item`` is the parametrisation on plain uvloop or the uvloop base."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    uvloop_factories = [LOOP_FACTORIES[name] for name in _UVLOOP_BASED]
    return (
        any(params.get("_asyncio_loop_factory") is f for f in uvloop_factories)
        or params.get("loop_factory") in _UVLOOP_BASED
        or params.get("factory_name") in _UVLOOP_BASED
        or params.get("uintr_only_loop") == "uvloop"
    )


def _uses_uvloop(item: pytest.Item) -> bool:
    """``_on_uvloop``, or any parameter naming uvloop (a ``base`` or loop name)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    return _on_uvloop(item) or any(value in _UVLOOP_BASED for value in params.values()
                                   if isinstance(value, str))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_uvloop = pytest.mark.skip(reason=f"uvloop rows: {UVLOOP_SKIP}")
    for item in items:
        if UVLOOP_SKIP is not None and (_uses_uvloop(item) or item.get_closest_marker("needs_uvloop")):
            item.add_marker(skip_uvloop)
            continue
        mark = item.get_closest_marker(UVLOOP_DEVIATION_MARK)
        if mark is not None and _on_uvloop(item):
            (reason,) = mark.args
            item.add_marker(pytest.mark.xfail(strict=True, reason=f"uvloop deviates from asyncio: {reason}"))
