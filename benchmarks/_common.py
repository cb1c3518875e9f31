"""What every benchmark shares: the loops under test, percentiles, CPU clocks.

The loops are the peers (every asyncio loop from PyPI that imports here:
asyncio, uvloop, rloop, rsloop, zuvloop) and uintr_loop on each base. A peer
that is not installed is simply absent from ``LOOPS``; ``MISSING`` says why.
uintr_loop itself is imported from the repository (the in-place build of
``make build``), so the benchmark's own environment holds only the peers.
"""
from __future__ import annotations

import asyncio
import functools
import importlib
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:          # the in-place build, not an installed copy
    sys.path.insert(0, str(REPO))

import uintr_loop  # noqa: E402

LoopFactory = Callable[[], asyncio.AbstractEventLoop]
T = TypeVar("T")

# Peers first, in the order the tables list them; "module" is what must import.
PEER_MODULES: dict[str, str | None] = {
    "asyncio": None,
    "uvloop": "uvloop",
    "rloop": "rloop",
    "rsloop": "rsloop",
    "zuvloop": "zuvloop",
}
UINTR_ALL = ("uintr-uvloop", "uintr-asyncio")

LOOPS: dict[str, LoopFactory] = {}
MISSING: dict[str, str] = {}

for _name, _module in PEER_MODULES.items():
    if _module is None:
        LOOPS[_name] = asyncio.new_event_loop
        continue
    try:
        LOOPS[_name] = importlib.import_module(_module).new_event_loop
    except Exception as exc:  # noqa: BLE001 - any import failure means "not available here"
        MISSING[_name] = f"{type(exc).__name__}: {exc}"
for _name in UINTR_ALL:
    _base = _name.split("-", 1)[1]
    if _base == "uvloop" and "uvloop" not in LOOPS:
        MISSING[_name] = "uvloop is not installed"
        continue
    LOOPS[_name] = functools.partial(uintr_loop.new_event_loop, base=_base)

PEERS = tuple(n for n in PEER_MODULES if n in LOOPS)
UINTR_LOOPS = tuple(n for n in UINTR_ALL if n in LOOPS)


def is_uintr(name: str) -> bool:
    return name.startswith("uintr-")


def loop_factory(name: str) -> LoopFactory:
    """The factory for a loop name: a name of ``LOOPS``, or a uintr loop with an
    explicit busy-poll budget, ``uintr-uvloop@50`` (microseconds; ``@0``: never spin)."""
    if "@" in name:
        base_name, _, budget = name.partition("@")
        if base_name not in UINTR_LOOPS:
            raise KeyError(f"{name}: only a uintr loop ({', '.join(UINTR_LOOPS)}) takes @busy_poll")
        return uintr_factory(base_name, busy_poll=float(budget))
    return LOOPS[name]


def uintr_factory(name: str, **kwargs: Any) -> LoopFactory:
    base = name.split("-", 1)[1]
    return functools.partial(uintr_loop.new_event_loop, base=base, **kwargs)


def versions() -> dict[str, str]:
    """The version of every loop package under test (for the report)."""
    from importlib import metadata

    out = {"python": sys.version.split()[0], "uintr_loop": uintr_loop.__version__}
    for name, module in PEER_MODULES.items():
        if module and name in LOOPS:
            try:
                out[name] = metadata.version(module)
            except metadata.PackageNotFoundError:
                out[name] = "?"
    try:
        out["anyio"] = metadata.version("anyio")
    except metadata.PackageNotFoundError:
        pass
    return out


def percentiles(samples_ns: Iterable[int]) -> dict[str, float]:
    """p50/p99/p99.9 in microseconds (nearest-rank), and the mean."""
    s = sorted(samples_ns)
    if not s:
        return {"p50": float("nan"), "p99": float("nan"), "p99.9": float("nan"), "mean": float("nan"), "n": 0}

    def rank(q: float) -> float:
        return s[min(len(s) - 1, int(q * len(s)))] / 1000.0

    return {"p50": rank(0.50), "p99": rank(0.99), "p99.9": rank(0.999), "mean": sum(s) / len(s) / 1000.0,
            "n": len(s)}


def median(values: Iterable[float]) -> float:
    vals = [v for v in values if v == v]          # drop NaN (a run that failed)
    return float(statistics.median(vals)) if vals else float("nan")


class Meter:
    """Wall time and process CPU time (every thread) of a ``with`` block, in ns."""

    wall_ns = 0
    cpu_ns = 0

    def __enter__(self) -> Meter:
        self._w = time.perf_counter_ns()
        self._c = time.process_time_ns()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_ns = time.perf_counter_ns() - self._w
        self.cpu_ns = time.process_time_ns() - self._c


def voluntary_switches(exclude_tid: int | None = None) -> int:
    """Sum of voluntary context switches of this process's threads (each is
    one block-then-wake), read from /proc; ``exclude_tid`` leaves one out."""
    total = 0
    for tid in os.listdir("/proc/self/task"):
        if exclude_tid is not None and int(tid) == exclude_tid:
            continue
        try:
            with open(f"/proc/self/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        total += int(line.split()[1])
                        break
        except FileNotFoundError:       # the thread ended meanwhile
            pass
    return total


async def with_cpu(aw: Awaitable[T]) -> tuple[T, int]:
    """``await aw``, and the process's CPU time (every thread, ns) it took."""
    c0 = time.process_time_ns()
    result = await aw
    return result, time.process_time_ns() - c0


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
