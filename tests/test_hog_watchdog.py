"""loop.set_hog_watchdog(): live reports of a callback that holds the loop."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from _support import HANG_GUARD
from uintr_loop import HogReport


def runaway_callback(reported: threading.Event) -> bool:
    """Holds the loop until the watchdog has reported it (or a safety limit)."""
    end = time.monotonic() + HANG_GUARD
    while time.monotonic() < end:
        if reported.is_set():
            return True
    return False


def test_reports_live_with_the_running_stack(uintr_only_loop: asyncio.AbstractEventLoop) -> None:
    loop = uintr_only_loop
    reports: list[HogReport] = []
    reported = threading.Event()

    def on_hog(report: HogReport) -> None:
        reports.append(report)
        reported.set()

    dog = loop.set_hog_watchdog(0.05, on_hog)  # type: ignore[attr-defined]
    assert dog is not None
    seen_while_running: list[bool] = []

    async def main() -> None:
        await asyncio.sleep(0.01)
        loop.call_soon(lambda: seen_while_running.append(runaway_callback(reported)))
        await asyncio.sleep(0.01)

    loop.run_until_complete(main())
    assert seen_while_running == [True]      # the report came while it still ran
    assert len(reports) == 1
    text = reports[0].format()
    assert "runaway_callback" in text and reports[0].duration >= 0.05
    assert reports[0].thread_id == threading.get_ident()
    loop.set_hog_watchdog(None)  # type: ignore[attr-defined]
    assert not dog._thread.is_alive()


def test_quiet_loop_gets_no_report_and_off_means_no_thread(uintr_only_loop: asyncio.AbstractEventLoop) -> None:
    loop = uintr_only_loop
    reports: list[HogReport] = []
    before = threading.active_count()
    assert loop.set_hog_watchdog(None) is None  # type: ignore[attr-defined]
    assert threading.active_count() == before
    dog = loop.set_hog_watchdog(5.0, reports.append)  # type: ignore[attr-defined]

    async def main() -> None:
        for _ in range(20):
            await asyncio.sleep(0.001)

    loop.run_until_complete(main())
    assert reports == []
    loop.close()                             # close stops the watchdog
    assert not dog._thread.is_alive()


def test_bad_arguments(uintr_only_loop: asyncio.AbstractEventLoop) -> None:
    with pytest.raises(ValueError):
        uintr_only_loop.set_hog_watchdog(0, print)  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        uintr_only_loop.set_hog_watchdog(1.0, 42)  # type: ignore[attr-defined]
