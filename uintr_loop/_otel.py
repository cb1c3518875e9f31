"""Loop statistics as OpenTelemetry metrics (the optional ``otel`` extra).

``instrument_otel(loop)`` registers observable instruments on a meter; the
SDK's reader calls them at each collection, on its own thread, and each
callback reads ``loop.statistics()`` (any thread may). Nothing runs between
collections, so the cost is the reader's interval, not the loop's.

Every figure is cumulative (a counter only grows), as OpenTelemetry's
observable counters want; rates and the histogram of an interval are the
backend's to compute. The wake-latency histogram is exported Prometheus
style, one counter series per bucket bound with the samples at or below it
(attribute ``le``), beside its sample count and sum.
"""
from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._export import loop_statistics_of
from ._types import LoopStatistics, WakeLatency

__all__ = ["OtelInstrumentation", "instrument_otel"]

Attributes = Mapping[str, "str | bool | int | float"]


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else f"{bound:.9g}"


class OtelInstrumentation:
    """The instruments ``instrument_otel`` registered for one loop.

    ``close()`` stops reporting (OpenTelemetry's API cannot unregister an
    observable callback, so the callbacks then observe nothing). A loop
    that is closed keeps reporting its final figures; one that was garbage
    collected reports nothing.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, meter: Any, attributes: dict[str, Any]) -> None:
        from opentelemetry.metrics import Observation

        self._Observation = Observation
        self._loop = weakref.ref(loop)
        self._attributes = attributes
        self._closed = False
        self.instruments: list[Any] = []

        def counter(name: str, unit: str, description: str,
                    read: Callable[[LoopStatistics], Iterable[tuple[float, dict[str, Any]]]]) -> None:
            self.instruments.append(meter.create_observable_counter(
                name, callbacks=[self._callback(read)], unit=unit, description=description))

        def one(value: Callable[[LoopStatistics], float | int | None]) -> Callable[
                [LoopStatistics], Iterable[tuple[float, dict[str, Any]]]]:
            def read(st: LoopStatistics) -> Iterable[tuple[float, dict[str, Any]]]:
                v = value(st)
                return [] if v is None else [(v, {})]
            return read

        counter("uintr_loop.busy_time", "s", "Time the loop ran callbacks and its own work",
                one(lambda st: st.busy_time))
        counter("uintr_loop.idle_time", "s", "Time the loop waited for work (blocked or busy-polling)",
                one(lambda st: st.idle_time))
        counter("uintr_loop.iterations", "{iteration}", "Loop iterations", one(lambda st: st.iterations))
        counter("uintr_loop.wakeup.posted", "{post}", "Posts of the loop's wakeup vector and receivers",
                one(lambda st: st.posted))
        counter("uintr_loop.wakeup.notifications", "{notification}",
                "Posts that had to notify the loop (one eventfd write each)",
                one(lambda st: st.notifications))
        counter("uintr_loop.wake_latency.count", "{sample}", "Wake-latency samples taken",
                one(lambda st: st.wake_latency.count if st.wake_latency else None))
        counter("uintr_loop.wake_latency.sum", "s", "Sum of the wake-latency samples",
                one(lambda st: st.wake_latency.total if st.wake_latency else None))
        counter("uintr_loop.wake_latency.bucket", "{sample}",
                "Wake-latency samples at or below the bound le (seconds; call_soon_threadsafe "
                "post to callback start)", self._buckets)

    @staticmethod
    def _buckets(st: LoopStatistics) -> Iterable[tuple[float, dict[str, Any]]]:
        lat = st.wake_latency
        if lat is None:
            return []
        out = []
        seen = 0
        for bound, count in zip(WakeLatency.BOUNDS, lat.buckets):
            seen += count
            out.append((seen, {"le": _le(bound)}))
        return out

    def _callback(self, read: Callable[[LoopStatistics], Iterable[tuple[float, dict[str, Any]]]]) -> Callable[
            [Any], Iterable[Any]]:
        def observe(options: Any) -> Iterable[Any]:
            if self._closed:
                return []
            loop = self._loop()
            if loop is None:
                return []
            st = loop_statistics_of(loop)
            return [self._Observation(v, {**self._attributes, **extra}) for v, extra in read(st)]
        return observe

    def close(self) -> None:
        """Stop reporting. Idempotent."""
        self._closed = True


def instrument_otel(
    loop: asyncio.AbstractEventLoop,
    *,
    meter_provider: Any = None,
    attributes: Attributes | None = None,
) -> OtelInstrumentation:
    """Export ``loop``'s statistics as OpenTelemetry metrics.

    Registers observable counters on the meter ``"uintr_loop"`` of
    ``meter_provider`` (default: the global one): ``uintr_loop.busy_time``,
    ``uintr_loop.idle_time`` (s), ``uintr_loop.iterations``,
    ``uintr_loop.wakeup.posted``, ``uintr_loop.wakeup.notifications`` and
    the wake-latency histogram as ``uintr_loop.wake_latency.count``,
    ``.sum`` (s) and ``.bucket`` (attribute ``le``, cumulative). Each
    observation carries ``attributes`` plus ``uintr_loop.base`` and
    ``uintr_loop.mode``. A loop made with ``UINTR_LOOP_TIMING=0`` reports no
    times and no histogram.

    Needs ``opentelemetry-api`` (``pip install uintr_loop[otel]``):
    ImportError without it. TypeError for a loop that is not a uintr_loop
    loop, ``attributes`` that are not a mapping of str to str/bool/int/float,
    or a ``meter_provider`` without ``get_meter``.
    """
    loop_statistics_of(loop)                  # TypeError for another loop
    attrs: dict[str, Any] = {}
    if attributes is not None:
        if not isinstance(attributes, Mapping):
            raise TypeError(f"attributes must be a mapping, got {type(attributes).__name__}")
        for key, value in attributes.items():
            if not isinstance(key, str) or not isinstance(value, (str, bool, int, float)):
                raise TypeError("attributes must map str to str, bool, int or float, got "
                                f"{key!r}: {type(value).__name__}")
            attrs[key] = value
    try:
        from opentelemetry import metrics
    except ImportError as exc:
        raise ImportError("instrument_otel needs OpenTelemetry: pip install 'uintr_loop[otel]' "
                          "(or opentelemetry-api and an SDK)") from exc
    if meter_provider is None:
        meter_provider = metrics.get_meter_provider()
    elif not callable(getattr(meter_provider, "get_meter", None)):
        raise TypeError(f"meter_provider must be an OpenTelemetry MeterProvider, got "
                        f"{type(meter_provider).__name__}")
    from . import __version__

    meter = meter_provider.get_meter("uintr_loop", __version__)
    attrs.setdefault("uintr_loop.base", getattr(loop, "base", "?"))
    attrs.setdefault("uintr_loop.mode", getattr(loop, "delivery_mode", "?"))
    return OtelInstrumentation(loop, meter, attrs)
