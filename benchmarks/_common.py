"""What every benchmark shares: the loops under test, percentiles, rounds."""
from __future__ import annotations

import asyncio
import functools
import statistics
import sys
from collections.abc import Callable, Iterable
from typing import Any

import uvloop

import uintr_loop

LoopFactory = Callable[[], asyncio.AbstractEventLoop]

LOOPS: dict[str, LoopFactory] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
    "uintr-asyncio": functools.partial(uintr_loop.new_event_loop, base="asyncio"),
    "uintr-uvloop": functools.partial(uintr_loop.new_event_loop, base="uvloop"),
}
UINTR_LOOPS = ("uintr-asyncio", "uintr-uvloop")


def uintr_factory(name: str, **kwargs: Any) -> LoopFactory:
    base = name.split("-", 1)[1]
    return functools.partial(uintr_loop.new_event_loop, base=base, **kwargs)


def percentiles(samples_ns: Iterable[int]) -> dict[str, float]:
    """p50/p99/p99.9 in microseconds (nearest-rank)."""
    s = sorted(samples_ns)
    if not s:
        return {"p50": float("nan"), "p99": float("nan"), "p99.9": float("nan"), "n": 0}

    def rank(q: float) -> float:
        return s[min(len(s) - 1, int(q * len(s)))] / 1000.0

    return {"p50": rank(0.50), "p99": rank(0.99), "p99.9": rank(0.999), "n": len(s)}


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def run_on(factory: LoopFactory, coro_fn: Callable[[], Any]) -> Any:
    """Run ``coro_fn()`` on a fresh loop from ``factory``; returns (result, loop statistics)."""
    if sys.version_info < (3, 11):
        raise SystemExit("the benchmarks need Python 3.11+ (asyncio.Runner)")
    with asyncio.Runner(loop_factory=factory) as runner:
        result = runner.run(coro_fn())
        stats = getattr(runner.get_loop(), "statistics", None)
        return result, (stats() if stats else None)


def log(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)
