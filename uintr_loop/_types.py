"""Immutable records returned by the public API."""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields
from typing import Any, ClassVar


@dataclass(frozen=True)
class ReceiverStatistics:
    """What a receiver (or a loop's own wakeup receiver) has seen.

    ``posted == notifications + coalesced + suppressed``: every accepted post
    either sent the one notification, found one outstanding (ON), or found
    notifications suppressed (SN). ``refused`` counts posts after close.
    ``delivered`` counts vectors handed over (handler calls for a Receiver,
    recognised vectors for a loop); ``spurious`` counts notifications that
    found nothing pending. For a loop, ``busy_polls`` counts the spins it
    made before blocking (``busy_poll`` set, or the adaptive wakeup
    expecting a post), ``busy_poll_hits`` those that saw a post arrive and
    so did not block, and ``busy_poll_time`` the seconds spent spinning;
    ``busy_poll_alarms`` counts the spins the adaptive wakeup's alarm started
    (it woke the loop just before a post of a steady sender was due), and
    ``busy_poll_yields`` the ``call_soon_threadsafe`` posts whose thread, on
    finding the loop spinning, let go of the GIL for the loop to take at once.
    """

    mode: str
    posted: int
    notifications: int
    coalesced: int
    suppressed: int
    refused: int
    delivered: int
    spurious: int
    busy_polls: int = 0
    busy_poll_hits: int = 0
    busy_poll_time: float = 0.0
    busy_poll_alarms: int = 0
    busy_poll_yields: int = 0


# Wake-latency buckets (cython_src/includes/loopstats.h): bucket 0 counts
# latencies below 2**10 ns, bucket i >= 1 those in [2**(9+i), 2**(10+i)) ns,
# the last one everything from 2**32 ns up.
_LAT_BUCKETS = 24
_LAT_SHIFT = 10


def _bucket_bounds() -> tuple[float, ...]:
    bounds = [2.0 ** (_LAT_SHIFT + i) / 1e9 for i in range(_LAT_BUCKETS - 1)]
    return (*bounds, math.inf)


@dataclass(frozen=True)
class WakeLatency:
    """A histogram of sampled wake latencies, in seconds: from a
    ``call_soon_threadsafe`` post to the start of its callback.

    ``buckets[i]`` counts the samples below ``BOUNDS[i]`` (and at or above
    ``BOUNDS[i - 1]``); the bounds double from 1.024 µs to 4.29 s, and the
    last bucket is open (``math.inf``). ``total`` is the sum of the samples
    and ``max`` the largest, both exact. Cumulative since the loop was made:
    ``later.since(earlier)`` is the histogram of an interval.
    """

    BOUNDS: ClassVar[tuple[float, ...]] = _bucket_bounds()

    buckets: tuple[int, ...]
    total: float
    max: float

    @property
    def count(self) -> int:
        """Samples taken."""
        return sum(self.buckets)

    @property
    def mean(self) -> float | None:
        """Mean latency in seconds (None without samples)."""
        n = self.count
        return self.total / n if n else None

    def quantile(self, q: float) -> float | None:
        """An upper bound of the ``q``-quantile (0 < q <= 1): the upper bound
        of the bucket that holds it, never more than ``max``. None without
        samples. TypeError/ValueError for a ``q`` that is not in (0, 1]."""
        if isinstance(q, bool) or not isinstance(q, numbers.Real):
            raise TypeError(f"q must be a number in (0, 1], got {type(q).__name__}")
        if not 0 < q <= 1:
            raise ValueError(f"q must be in (0, 1], got {q!r}")
        n = self.count
        if n == 0:
            return None
        rank = max(1, math.ceil(q * n))
        seen = 0
        for bound, count in zip(self.BOUNDS, self.buckets):
            seen += count
            if seen >= rank:
                return min(bound, self.max)
        return self.max                                 # not reached

    def since(self, earlier: WakeLatency) -> WakeLatency:
        """The samples taken after ``earlier`` (an earlier histogram of the
        same loop). ``max`` stays the all-time one (a maximum cannot be
        subtracted). TypeError if ``earlier`` is not a WakeLatency."""
        if not isinstance(earlier, WakeLatency):
            raise TypeError(f"since() takes a WakeLatency, got {type(earlier).__name__}")
        return WakeLatency(
            buckets=tuple(a - b for a, b in zip(self.buckets, earlier.buckets)),
            total=self.total - earlier.total,
            max=self.max,
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain values for logs and JSON: count, mean, p50, p90, p99, max and
        the non-empty buckets keyed by their upper bound in seconds."""
        return {
            "count": self.count,
            "mean": self.mean,
            "p50": self.quantile(0.5),
            "p90": self.quantile(0.9),
            "p99": self.quantile(0.99),
            "max": self.max if self.count else None,
            "buckets": {_bound_key(b): c for b, c in zip(self.BOUNDS, self.buckets) if c},
        }


def _bound_key(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else f"{bound:.9g}"


@dataclass(frozen=True)
class LoopStatistics(ReceiverStatistics):
    """What ``loop.statistics()`` returns: the loop receiver's figures
    (ReceiverStatistics) and the loop's own.

    ``iterations``: loop iterations (each poll of the selector, or libuv's
    loop turn). ``busy_time``/``idle_time``: seconds the loop ran (all its
    ``run_forever`` calls, ``run_until_complete`` and ``asyncio.run``
    included) split into time spent waiting for work (blocked in the poll,
    or spinning in a busy-poll) and the rest; a run still going counts up to
    now, a wait still going too. ``wake_latency``: sampled post-to-callback
    latency of ``call_soon_threadsafe``. ``timing`` is False when the loop
    was made with ``UINTR_LOOP_TIMING=0``: then the times and the histogram
    are None (iterations are still counted).
    """

    timing: bool = False
    iterations: int = 0
    busy_time: float | None = None
    idle_time: float | None = None
    wake_latency: WakeLatency | None = None

    @property
    def utilization(self) -> float | None:
        """``busy_time / (busy_time + idle_time)``: the share of the loop's
        running time it was busy (None without timing or before it ran)."""
        if self.busy_time is None or self.idle_time is None:
            return None
        total = self.busy_time + self.idle_time
        return self.busy_time / total if total > 0 else None

    def since(self, earlier: LoopStatistics) -> LoopStatistics:
        """The figures of the interval after ``earlier`` (an earlier
        statistics() of the same loop): every counter and time is the
        difference; ``mode`` and ``timing`` are this one's. TypeError if
        ``earlier`` is not a LoopStatistics."""
        if not isinstance(earlier, LoopStatistics):
            raise TypeError(f"since() takes a LoopStatistics, got {type(earlier).__name__}")
        values: dict[str, Any] = {}
        for f in fields(self):
            now, then = getattr(self, f.name), getattr(earlier, f.name)
            if isinstance(now, bool) or isinstance(now, str):
                values[f.name] = now
            elif isinstance(now, WakeLatency):
                values[f.name] = now.since(then) if isinstance(then, WakeLatency) else now
            elif isinstance(now, (int, float)) and isinstance(then, (int, float)):
                values[f.name] = now - then
            else:
                values[f.name] = now
        return LoopStatistics(**values)

    def as_dict(self) -> dict[str, Any]:
        """Plain values (str, int, float, None, dicts) for a log record's
        ``extra`` or JSON: every field, ``utilization``, and the wake latency
        as ``WakeLatency.as_dict()``."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.as_dict() if isinstance(value, WakeLatency) else value
        out["utilization"] = self.utilization
        return out


# The core builds these values but imports nothing from the package: it is
# handed the classes here (see cython_src/_core.pyx).
from . import _core as _core  # noqa: E402

_core.register_value_types(ReceiverStatistics, LoopStatistics, WakeLatency)
