"""loop.statistics(): busy and idle time, iterations, the wake-latency histogram,
and their export (a logging record, OpenTelemetry metrics, the hog report as
a log record and a span event). On both bases; the call_soon_threadsafe
behaviour the sampling touches also on stock asyncio and plain uvloop.

No figure here is a timing target: each time check is an inequality that
holds on any machine however loaded (the loop's own accounting against
clocks read around or inside the same work). Overhead is measured by
benchmarks/metrics_overhead.py.
"""
from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import math
import sys
import threading
import time
from typing import Any

import pytest

import uintr_loop
from _support import HANG_GUARD, fresh_loop, guarded
from uintr_loop import HogReport, LoopStatistics, WakeLatency
from uintr_loop._core import latency_bucket

BASES = ("asyncio", "uvloop")


def spin(seconds: float) -> float:
    """Hold the loop (busy) for ``seconds``; returns the time it really held it."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        pass
    return time.perf_counter() - t0


# --- the record ----------------------------------------------------------------------


def test_a_fresh_loop_has_zero_figures_and_a_frozen_record(uintr_only_loop: Any) -> None:
    st = uintr_only_loop.statistics()
    assert isinstance(st, LoopStatistics) and isinstance(st, uintr_loop.ReceiverStatistics)
    assert st.timing is True
    assert (st.iterations, st.busy_time, st.idle_time) == (0, 0.0, 0.0)
    assert st.utilization is None
    assert st.wake_latency == WakeLatency(buckets=(0,) * len(WakeLatency.BOUNDS), total=0.0, max=0.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        st.busy_time = 1.0  # type: ignore[misc]


def test_busy_idle_and_iterations_account_for_the_run(uintr_only_loop: Any) -> None:
    loop = uintr_only_loop
    inside: dict[str, float] = {}

    async def main() -> None:
        t0 = time.perf_counter()
        inside["spun"] = spin(0.05)                     # busy: the loop is held
        s0 = time.perf_counter()
        await asyncio.sleep(0.2)                        # idle: the loop blocks
        inside["slept"] = time.perf_counter() - s0
        for _ in range(10):
            await asyncio.sleep(0)
        inside["run"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    loop.run_until_complete(main())
    wall = time.perf_counter() - t0
    st = loop.statistics()
    # the run is inside [t0, t0 + wall] and contains the coroutine
    assert inside["run"] <= st.busy_time + st.idle_time <= wall
    assert st.busy_time >= inside["spun"]               # the spin never counts as idle
    # the sleep's block: epoll's timeout is the timer's, rounded to ms
    assert st.idle_time >= 0.8 * 0.2
    assert st.idle_time <= inside["slept"] + (wall - inside["run"])
    assert st.iterations >= 12                          # one per sleep(0), the sleep, the start
    assert 0 < st.utilization < 1

    # a second run adds to the first; time between runs counts for nothing
    time.sleep(0.1)
    loop.run_until_complete(asyncio.sleep(0))
    again = loop.statistics()
    assert again.iterations > st.iterations
    gained = (again.busy_time + again.idle_time) - (st.busy_time + st.idle_time)
    assert 0 < gained < 0.1


def test_statistics_inside_a_running_loop_count_up_to_now(uintr_only_loop: Any) -> None:
    loop = uintr_only_loop

    async def main() -> tuple[LoopStatistics, LoopStatistics, float]:
        a = loop.statistics()
        held = spin(0.03)
        b = loop.statistics()
        return a, b, held

    a, b, held = loop.run_until_complete(main())
    assert b.busy_time - a.busy_time >= held
    assert b.idle_time == a.idle_time                   # no wait in between


def test_figures_read_from_another_thread_never_go_back(uintr_only_loop: Any) -> None:
    """A reader thread (as an OpenTelemetry reader is) sees the loop between
    stores and mid-wait: every figure must still only grow."""
    loop = uintr_only_loop
    stop = threading.Event()
    seen: list[LoopStatistics] = []

    def reader() -> None:
        while not stop.is_set():
            seen.append(loop.statistics())
            time.sleep(0.0005)

    async def main() -> None:
        for i in range(200):
            if i % 20 == 0:
                await asyncio.sleep(0.005)
            spin(0.0002)
            await asyncio.sleep(0)

    t = threading.Thread(target=reader)
    t.start()
    try:
        loop.run_until_complete(main())
    finally:
        stop.set()
        t.join(HANG_GUARD)
    seen.append(loop.statistics())
    assert len(seen) > 10
    for earlier, later in zip(seen, seen[1:]):
        assert later.iterations >= earlier.iterations
        assert later.busy_time >= earlier.busy_time
        assert later.idle_time >= earlier.idle_time


def test_final_figures_stay_after_close() -> None:
    for base in BASES:
        loop = uintr_loop.new_event_loop(base=base)
        loop.run_until_complete(asyncio.sleep(0.01))
        before = loop.statistics()
        loop.close()
        final = loop.statistics()
        time.sleep(0.02)
        assert loop.statistics() == final
        assert final.iterations == before.iterations and final.busy_time == before.busy_time


# --- wake latency ----------------------------------------------------------------------


def test_wake_latency_samples_each_wakeup_of_a_blocked_loop(uintr_only_loop: Any) -> None:
    """A thread posts one callback at a time to a blocked loop. Every post is
    sampled (none is in flight then), and each sample lies inside the span the
    thread measured itself: stamped after the thread read its clock, filed
    before the callback read the clock."""
    loop = uintr_only_loop
    rounds = 30
    measured: list[int] = []

    async def main() -> None:
        for _ in range(rounds):
            fut = loop.create_future()

            def callback(t0: int, fut: asyncio.Future[None] = fut) -> None:
                measured.append(time.perf_counter_ns() - t0)
                fut.set_result(None)

            def post(callback: Any = callback) -> None:
                time.sleep(0.002)                       # let the loop block
                loop.call_soon_threadsafe(callback, time.perf_counter_ns())

            t = threading.Thread(target=post)
            t.start()
            await guarded(fut)
            t.join(HANG_GUARD)

    before = loop.statistics().wake_latency
    loop.run_until_complete(main())
    lat = loop.statistics().wake_latency.since(before)
    assert lat.count == rounds
    assert 0 < lat.total <= sum(measured) / 1e9
    assert lat.max <= max(measured) / 1e9
    assert lat.quantile(1.0) == lat.max
    assert lat.quantile(0.5) <= lat.quantile(0.99) <= lat.max


def test_many_posts_from_threads_run_in_order_and_sample_at_most_one_each(
        uintr_only_loop: Any) -> None:
    """Under load at most one post is in flight as a sample; the probe the
    asyncio base queues never reorders callbacks, and a cancelled handle
    stays cancelled."""
    loop = uintr_only_loop
    n, threads = 2000, 4
    got: dict[int, list[int]] = {i: [] for i in range(threads)}
    cancelled: list[int] = []

    async def main() -> None:
        done = loop.create_future()
        left = [threads * n]

        def cb(k: int, i: int) -> None:
            got[k].append(i)
            left[0] -= 1
            if left[0] == 0:
                done.set_result(None)

        def poster(k: int) -> None:
            for i in range(n):
                loop.call_soon_threadsafe(cb, k, i)
            loop.call_soon_threadsafe(cancelled.append, k).cancel()

        ts = [threading.Thread(target=poster, args=(k,)) for k in range(threads)]
        for t in ts:
            t.start()
        await guarded(done)
        for t in ts:
            t.join(HANG_GUARD)
        for _ in range(3):
            await asyncio.sleep(0)

    loop.run_until_complete(main())
    assert all(got[k] == list(range(n)) for k in got)
    assert cancelled == []
    st = loop.statistics()
    assert 1 <= st.wake_latency.count <= st.iterations


@pytest.mark.asyncio
async def test_threadsafe_callbacks_keep_their_order_against_call_soon() -> None:
    """Runs on every loop (stock asyncio included): a call_soon_threadsafe
    from the loop's own thread queues like call_soon, in call order, whether
    or not it is the sampled post."""
    loop = asyncio.get_running_loop()
    order: list[str] = []
    done = loop.create_future()
    for i in range(5):
        loop.call_soon(order.append, f"soon{i}")
        loop.call_soon_threadsafe(order.append, f"safe{i}")
    loop.call_soon_threadsafe(done.set_result, None)
    await guarded(done)
    expected = [x for i in range(5) for x in (f"soon{i}", f"safe{i}")]
    if order != expected:
        # uvloop's call_soon_threadsafe (and so the uvloop base's mailbox)
        # runs after callbacks queued with call_soon; each kind keeps its order
        assert [x for x in order if x.startswith("soon")] == expected[0::2]
        assert [x for x in order if x.startswith("safe")] == expected[1::2]


def test_bucket_bounds_agree_with_the_core() -> None:
    bounds = WakeLatency.BOUNDS
    assert len(bounds) == 24 and bounds[-1] == math.inf
    assert latency_bucket(0) == 0
    for i, bound in enumerate(bounds[:-1]):
        ns = round(bound * 1e9)
        assert latency_bucket(ns - 1) == i, i
        assert latency_bucket(ns) == i + 1, i
    assert latency_bucket(2**64 - 1) == len(bounds) - 1


def test_histogram_arithmetic() -> None:
    n = len(WakeLatency.BOUNDS)
    buckets = [0] * n
    buckets[3], buckets[5] = 90, 10          # 90 below 8.192 us, 10 below 32.768 us
    lat = WakeLatency(buckets=tuple(buckets), total=0.0012, max=30e-6)
    assert lat.count == 100 and lat.mean == pytest.approx(12e-6)
    assert lat.quantile(0.5) == lat.quantile(0.9) == WakeLatency.BOUNDS[3]
    assert lat.quantile(0.91) == lat.quantile(1) == 30e-6         # capped at max
    earlier = WakeLatency(buckets=tuple(b // 2 for b in buckets), total=0.0006, max=20e-6)
    diff = lat.since(earlier)
    assert diff.count == 50 and diff.total == pytest.approx(0.0006) and diff.max == 30e-6
    empty = WakeLatency(buckets=(0,) * n, total=0.0, max=0.0)
    assert empty.quantile(0.5) is None and empty.mean is None
    d = lat.as_dict()
    assert d["count"] == 100 and d["buckets"] == {"8.192e-06": 90, "3.2768e-05": 10}
    for bad in (0, 1.5, -1, math.nan):
        with pytest.raises(ValueError):
            lat.quantile(bad)


def test_since_and_as_dict_of_the_loop_record(uintr_only_loop: Any) -> None:
    loop = uintr_only_loop
    loop.run_until_complete(asyncio.sleep(0))
    a = loop.statistics()
    loop.run_until_complete(asyncio.sleep(0.01))
    b = loop.statistics()
    d = b.since(a)
    assert d.iterations == b.iterations - a.iterations > 0
    assert d.busy_time == pytest.approx(b.busy_time - a.busy_time)
    assert d.mode == b.mode and d.timing is True
    flat = b.as_dict()
    assert flat["iterations"] == b.iterations and flat["utilization"] == b.utilization
    assert flat["wake_latency"]["count"] == b.wake_latency.count
    import json
    json.dumps(flat)                                    # plain values only


# --- timing off -------------------------------------------------------------------------


@pytest.mark.parametrize("base", BASES)
def test_timing_off_reads_no_clock_but_counts_iterations(
        base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UINTR_LOOP_TIMING", "0")
    with fresh_loop(functools.partial(uintr_loop.new_event_loop, base=base)) as loop:
        monkeypatch.delenv("UINTR_LOOP_TIMING")     # read when the loop was made

        async def main() -> None:
            fut = loop.create_future()
            threading.Timer(0.01, loop.call_soon_threadsafe, (fut.set_result, 1)).start()
            await guarded(fut)

        loop.run_until_complete(main())
        st = loop.statistics()
        assert st.timing is False and st.iterations > 0
        assert (st.busy_time, st.idle_time, st.wake_latency, st.utilization) == (None,) * 4
        assert st.since(st).iterations == 0


# --- export: logging --------------------------------------------------------------------


def test_log_statistics_writes_one_structured_record(
        uintr_only_loop: Any, caplog: pytest.LogCaptureFixture) -> None:
    loop = uintr_only_loop
    loop.run_until_complete(asyncio.sleep(0.01))
    with caplog.at_level(logging.INFO, logger="uintr_loop"):
        first = uintr_loop.log_statistics(loop)
        loop.run_until_complete(asyncio.sleep(0))
        second = uintr_loop.log_statistics(loop, since=first)
    assert [r.name for r in caplog.records] == ["uintr_loop", "uintr_loop"]
    totals, interval = (r.uintr_loop for r in caplog.records)  # type: ignore[attr-defined]
    assert totals == first.as_dict()
    assert interval["iterations"] == second.iterations - first.iterations
    assert "busy" in caplog.records[0].getMessage() and "totals" in caplog.records[0].getMessage()
    assert "interval" in caplog.records[1].getMessage()


def test_log_statistics_below_the_level_logs_nothing(
        uintr_only_loop: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="uintr_loop"):
        st = uintr_loop.log_statistics(uintr_only_loop, level=logging.DEBUG)
    assert caplog.records == [] and isinstance(st, LoopStatistics)


# --- export: OpenTelemetry metrics ------------------------------------------------------



def _otel() -> Any:
    pytest.importorskip("opentelemetry.sdk.metrics", reason="probed: opentelemetry-sdk (the test extra)")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    reader = InMemoryMetricReader()
    return MeterProvider(metric_readers=[reader]), reader


def _points(reader: Any) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    out: dict[str, list[Any]] = {}
    if data is None:
        return out
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out.setdefault(m.name, []).extend(m.data.data_points)
    return out


def test_instrument_otel_reports_the_statistics(uintr_only_loop: Any) -> None:
    provider, reader = _otel()
    loop = uintr_only_loop

    async def main() -> None:
        for _ in range(5):
            fut = loop.create_future()
            threading.Timer(0.002, loop.call_soon_threadsafe, (fut.set_result, 1)).start()
            await guarded(fut)

    loop.run_until_complete(main())
    inst = uintr_loop.instrument_otel(loop, meter_provider=provider, attributes={"service": "t"})
    before = loop.statistics()
    points = _points(reader)
    after = loop.statistics()
    try:
        (busy,) = points["uintr_loop.busy_time"]
        assert before.busy_time <= busy.value <= after.busy_time
        (idle,) = points["uintr_loop.idle_time"]
        assert before.idle_time <= idle.value <= after.idle_time
        (its,) = points["uintr_loop.iterations"]
        assert before.iterations <= its.value <= after.iterations
        assert dict(its.attributes) == {"service": "t", "uintr_loop.base": loop.base,
                                        "uintr_loop.mode": "software"}
        (count,) = points["uintr_loop.wake_latency.count"]
        assert count.value == after.wake_latency.count >= 5
        buckets = {p.attributes["le"]: p.value for p in points["uintr_loop.wake_latency.bucket"]}
        assert buckets["+Inf"] == count.value
        values = [buckets[k] for k in sorted(buckets, key=lambda k: float(k))]
        assert values == sorted(values)                  # cumulative
        (notif,) = points["uintr_loop.wakeup.notifications"]
        assert notif.value == after.notifications
    finally:
        inst.close()
    assert _points(reader) == {} or all(not v for v in _points(reader).values())
    provider.shutdown()


def test_instrument_otel_after_close_reports_the_final_figures() -> None:
    provider, reader = _otel()
    loop = uintr_loop.new_event_loop(base="asyncio")
    inst = uintr_loop.instrument_otel(loop, meter_provider=provider)
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()
    final = loop.statistics()
    (its,) = _points(reader)["uintr_loop.iterations"]
    assert its.value == final.iterations
    inst.close()
    provider.shutdown()


# --- export: the hog report --------------------------------------------------------------


def _hold_until(reported: threading.Event) -> None:
    end = time.monotonic() + HANG_GUARD
    while not reported.is_set() and time.monotonic() < end:
        pass


def test_default_hog_report_is_a_structured_warning(
        uintr_only_loop: Any, caplog: pytest.LogCaptureFixture) -> None:
    loop = uintr_only_loop
    reported = threading.Event()

    class Flag(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            reported.set()

    flag = Flag()
    logging.getLogger("uintr_loop").addHandler(flag)
    try:
        with caplog.at_level(logging.WARNING, logger="uintr_loop"):
            loop.set_hog_watchdog(0.05)

            async def main() -> None:
                await asyncio.sleep(0.01)
                _hold_until(reported)

            loop.run_until_complete(main())
            loop.set_hog_watchdog(None)
    finally:
        logging.getLogger("uintr_loop").removeHandler(flag)
    (record,) = [r for r in caplog.records if hasattr(r, "uintr_loop_hog")]
    hog = record.uintr_loop_hog  # type: ignore[attr-defined]
    assert hog["duration"] >= 0.05 and "_hold_until" in hog["stack"]
    assert hog["thread_id"] == threading.get_ident() and "main" in hog["task"]


@pytest.mark.skipif(sys.version_info < (3, 12),
                    reason="probed: Task.get_context() (Python 3.12+), how the watchdog "
                           "reaches the hogging task's span")
def test_hog_reporter_adds_a_span_event_to_the_hogging_tasks_span(
        uintr_only_loop: Any, caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("opentelemetry.sdk.trace", reason="probed: opentelemetry-sdk (the test extra)")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    loop = uintr_only_loop
    reported = threading.Event()
    reporter = uintr_loop.hog_reporter()

    def on_hog(report: HogReport) -> None:
        reporter(report)
        reported.set()

    loop.set_hog_watchdog(0.05, on_hog)

    async def request() -> None:
        with tracer.start_as_current_span("request"):
            await asyncio.sleep(0.01)
            _hold_until(reported)

    async def bystander() -> None:
        with tracer.start_as_current_span("bystander"):
            await asyncio.sleep(0.2)

    async def main() -> None:
        await asyncio.gather(request(), bystander())

    with caplog.at_level(logging.WARNING, logger="uintr_loop"):
        loop.run_until_complete(main())
    loop.set_hog_watchdog(None)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    (event,) = spans["request"].events
    assert event.name == "uintr_loop.hog"
    assert event.attributes["uintr_loop.hog.duration"] >= 0.05
    assert "_hold_until" in event.attributes["code.stacktrace"]
    assert spans["bystander"].events == ()
    assert any(hasattr(r, "uintr_loop_hog") for r in caplog.records)
    provider.shutdown()


def test_hog_reporter_without_a_span_only_logs(caplog: pytest.LogCaptureFixture) -> None:
    report = HogReport(0.2, 1, ("  File x\n",), None)
    with caplog.at_level(logging.WARNING, logger="uintr_loop"):
        uintr_loop.hog_reporter()(report)
    (record,) = caplog.records
    assert record.uintr_loop_hog == report.as_dict()  # type: ignore[attr-defined]
    assert report.span_attributes()["uintr_loop.hog.duration"] == 0.2
