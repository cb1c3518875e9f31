"""Loop statistics out to the tools people use: a ``logging`` record, and the
hog watchdog's report as a log record and an OpenTelemetry span event.

The OpenTelemetry metrics side is in ``_otel.py`` (an optional dependency);
this module needs nothing beyond the standard library, and imports
``opentelemetry`` only when a hog report asks for a span event.
"""
from __future__ import annotations

import asyncio
import logging
import numbers
from collections.abc import Callable
from typing import Any

from ._types import LoopStatistics
from ._watchdog import HogReport

__all__ = ["hog_reporter", "log_statistics"]

logger = logging.getLogger("uintr_loop")


def loop_statistics_of(loop: object) -> LoopStatistics:
    """``loop.statistics()`` of a uintr_loop loop; TypeError for any other."""
    stats = getattr(loop, "statistics", None)
    if not isinstance(loop, asyncio.AbstractEventLoop) or stats is None or not hasattr(
        loop, "_uintr_port"
    ):
        raise TypeError(f"a uintr_loop event loop was expected, got {type(loop).__name__}")
    result = stats()
    assert isinstance(result, LoopStatistics)
    return result


def _check_logger(log: object) -> logging.Logger | logging.LoggerAdapter[Any]:
    if log is None:
        return logger
    if not isinstance(log, (logging.Logger, logging.LoggerAdapter)):
        raise TypeError(f"logger must be a logging.Logger or LoggerAdapter, got {type(log).__name__}")
    return log


def _check_level(level: object) -> int:
    if isinstance(level, bool) or not isinstance(level, numbers.Integral):
        raise TypeError(f"level must be a logging level (an int), got {type(level).__name__}")
    return int(level)


def _us(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e6:.0f} us"


def log_statistics(
    loop: asyncio.AbstractEventLoop,
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    level: int = logging.INFO,
    *,
    since: LoopStatistics | None = None,
) -> LoopStatistics:
    """Log one record of ``loop``'s statistics and return them.

    The message is one human line; the record also carries the figures as
    plain values under the attribute ``uintr_loop`` (``LoopStatistics.as_dict()``),
    which JSON and structured formatters pick up. With ``since`` (the value
    an earlier call returned) the record holds the interval since then
    (``LoopStatistics.since``), so calling it periodically as
    ``last = log_statistics(loop, since=last)`` logs each period.

    ``logger`` defaults to the ``"uintr_loop"`` logger. Any thread. Raises
    TypeError for a loop that is not a uintr_loop loop, a ``logger`` that is
    not a Logger/LoggerAdapter, a ``level`` that is not an int, or a
    ``since`` that is not a LoopStatistics.
    """
    log = _check_logger(logger)
    lvl = _check_level(level)
    if since is not None and not isinstance(since, LoopStatistics):
        raise TypeError(f"since must be a LoopStatistics or None, got {type(since).__name__}")
    now = loop_statistics_of(loop)
    shown = now.since(since) if since is not None else now
    if log.isEnabledFor(lvl):
        lat = shown.wake_latency
        util = shown.utilization
        log.log(
            lvl,
            "uintr_loop %s: %s busy, %d iterations, wake latency p50 %s p99 %s (%d samples)",
            "interval" if since is not None else "totals",
            "-" if util is None else f"{util:.1%}",
            shown.iterations,
            _us(lat.quantile(0.5) if lat else None),
            _us(lat.quantile(0.99) if lat else None),
            lat.count if lat else 0,
            extra={"uintr_loop": shown.as_dict()},
        )
    return now


def hog_reporter(
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    level: int = logging.WARNING,
    *,
    span_event: bool = True,
) -> Callable[[HogReport], None]:
    """A callback for ``loop.set_hog_watchdog(threshold, callback)`` that
    logs each report as one record and adds it as a span event.

    The record's message is ``report.format()`` and its attribute
    ``uintr_loop_hog`` holds ``report.as_dict()``. With ``span_event`` and
    OpenTelemetry installed, the event ``uintr_loop.hog`` goes to the span
    that is current in the hogging task (found through the task's context,
    so the request that holds the loop is the one marked), with the duration,
    the task and the stack (``code.stacktrace``) as attributes; with no
    recording span there, only the record is written.

    Raises TypeError for a ``logger`` that is not a Logger/LoggerAdapter, a
    ``level`` that is not an int, or a ``span_event`` that is not a bool.
    """
    log = _check_logger(logger)
    lvl = _check_level(level)
    if not isinstance(span_event, bool):
        raise TypeError(f"span_event must be a bool, got {type(span_event).__name__}")

    def report_hog(report: HogReport) -> None:
        log.log(lvl, "%s", report.format(), extra={"uintr_loop_hog": report.as_dict()})
        if span_event:
            add_hog_span_event(report)

    return report_hog


def add_hog_span_event(report: HogReport) -> bool:
    """Add ``report`` as the event ``uintr_loop.hog`` to the recording span
    current in the hogging task's context; True if there was one."""
    if report.context is None:
        return False
    try:
        from opentelemetry import context as otel_context
        from opentelemetry import trace
    except ImportError:
        return False
    # The task's contextvars hold OpenTelemetry's current context as one of
    # their values; reading a Context from another thread is safe (it is an
    # immutable mapping). The variable itself is OpenTelemetry's private
    # business, so it is found by the type of its value.
    for value in report.context.values():
        if isinstance(value, otel_context.Context):
            span = trace.get_current_span(value)
            if span.is_recording():
                span.add_event("uintr_loop.hog", attributes=report.span_attributes())
                return True
    return False
