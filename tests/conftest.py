"""Every asyncio test runs on stock asyncio and on uintr_loop's two bases.

pytest-asyncio's ``pytest_asyncio_loop_factories`` hook parametrises each
``@pytest.mark.asyncio`` test over these factories; a behaviour that differs
from stock asyncio fails on a ``uintr-*`` parameter.
"""
from __future__ import annotations

import asyncio
import functools

import pytest

import uintr_loop
from _support import fresh_loop

LOOP_FACTORIES = {
    "asyncio": asyncio.new_event_loop,
    "uintr-asyncio": functools.partial(uintr_loop.new_event_loop, base="asyncio"),
    "uintr-uvloop": functools.partial(uintr_loop.new_event_loop, base="uvloop"),
}


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
