"""Every asyncio test runs twice: on stock asyncio and on uintr_loop.

pytest-asyncio's ``pytest_asyncio_loop_factories`` hook parametrises each
``@pytest.mark.asyncio`` test over these factories; a behaviour that differs
from stock asyncio fails on the ``uintr`` parameter.
"""
from __future__ import annotations

import asyncio

import pytest

import uintr_loop
from _support import fresh_loop

LOOP_FACTORIES = {
    "asyncio": asyncio.new_event_loop,
    "uintr": uintr_loop.new_event_loop,
}


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item):
    return LOOP_FACTORIES


@pytest.fixture(params=sorted(LOOP_FACTORIES))
def loop_factory(request: pytest.FixtureRequest):
    """A loop factory for synchronous tests that drive a loop themselves."""
    return LOOP_FACTORIES[request.param]


@pytest.fixture
def uintr_only_loop():
    """A fresh UintrEventLoop for tests of uintr_loop-only features."""
    with fresh_loop(uintr_loop.new_event_loop) as loop:
        yield loop
