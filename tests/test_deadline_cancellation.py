"""DeadlineExceeded is a CancelledError: how a deadline that preempts running
code behaves in TaskGroup, next to asyncio.timeout, with
task.cancelling()/uncancel(), and in anyio's structured concurrency, each
beside what a plain cancellation (asyncio.timeout, anyio.fail_after) does
in the same place. Every test runs on stock asyncio, uvloop and both
uintr_loop bases (the conformance fixtures).

Where they differ, and why (docs/guide/deadlines.md says the same):
* a TaskGroup collects a CancelledError subclass raised in its body as an
  error; the deadline scope unwraps it, so the result is what
  asyncio.timeout gives: TimeoutError, or the group of the other errors;
* a preempting deadline does not count as a cancellation request:
  ``task.cancelling()`` is 0 where asyncio.timeout shows 1 (only
  ``task.cancel()`` can raise that count, and on a running task it would
  also cancel its next await); a deadline that expires at an await cancels
  the task exactly as asyncio.timeout does, count included.
"""
from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import anyio
import pytest

from uintr_loop import DeadlineExceeded, deadline

pytestmark = pytest.mark.skipif(sys.version_info < (3, 11),
                                reason="TaskGroup, asyncio.timeout and Task.cancelling() are "
                                       "Python 3.11+ (probed sys.version_info)")

SAFETY = 20.0


def spin() -> None:
    """Pure-Python CPU work that only a preempting deadline stops."""
    end = time.monotonic() + SAFETY
    while time.monotonic() < end:
        pass
    raise AssertionError("not preempted")


async def sleeper(log: list[str], name: str) -> None:
    try:
        await asyncio.sleep(SAFETY)
    except asyncio.CancelledError:
        log.append(f"{name} cancelled")
        raise


@pytest.mark.asyncio
async def test_taskgroup_body_preempted_gives_timeouterror_as_asyncio_timeout() -> None:
    results: dict[str, Any] = {}
    for kind in ("deadline", "asyncio.timeout"):
        log: list[str] = []
        scope = deadline(0.02) if kind == "deadline" else asyncio.timeout(0.02)
        with pytest.raises(TimeoutError) as info:
            async with scope:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(sleeper(log, "child"))
                    await asyncio.sleep(0)
                    if kind == "deadline":
                        spin()
                    else:
                        await asyncio.sleep(SAFETY)
        results[kind] = (type(info.value), log)
    assert results["deadline"] == results["asyncio.timeout"] == (TimeoutError,
                                                                 ["child cancelled"])


@pytest.mark.asyncio
async def test_taskgroup_with_a_failed_child_raises_only_the_childs_error() -> None:
    async def fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("child")

    groups = {}
    for kind in ("deadline", "asyncio.timeout"):
        scope = deadline(0.05) if kind == "deadline" else asyncio.timeout(0.05)
        with pytest.raises(BaseExceptionGroup) as info:
            async with scope:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(fails())
                    if kind == "deadline":
                        await asyncio.sleep(0)
                        await asyncio.sleep(0)     # the child has failed
                        spin()
                    else:
                        await asyncio.sleep(SAFETY)
        groups[kind] = [type(e) for e in info.value.exceptions]
    assert groups["deadline"] == groups["asyncio.timeout"] == [ValueError]


@pytest.mark.asyncio
async def test_a_preempted_child_task_fails_the_group_like_a_timed_out_one() -> None:
    async def child(kind: str) -> None:
        if kind == "deadline":
            async with deadline(0.02):
                spin()
        else:
            async with asyncio.timeout(0.02):
                await asyncio.sleep(SAFETY)

    seen = {}
    for kind in ("deadline", "asyncio.timeout"):
        log: list[str] = []
        with pytest.raises(ExceptionGroup) as info:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(sleeper(log, "sibling"))
                tg.create_task(child(kind))
        seen[kind] = ([type(e) for e in info.value.exceptions], log)
    assert seen["deadline"] == seen["asyncio.timeout"] == ([TimeoutError], ["sibling cancelled"])


@pytest.mark.asyncio
async def test_nested_in_asyncio_timeout_either_way() -> None:
    async with asyncio.timeout(SAFETY) as outer:
        with pytest.raises(TimeoutError) as info:
            async with deadline(0.02):
                spin()
    assert isinstance(info.value.__cause__, DeadlineExceeded) and not outer.expired()
    with pytest.raises(TimeoutError) as info:
        async with deadline(0.02):
            async with asyncio.timeout(SAFETY) as inner:
                spin()
    assert isinstance(info.value.__cause__, DeadlineExceeded) and not inner.expired()


@pytest.mark.asyncio
async def test_cancelling_counts_of_a_preempting_and_an_awaiting_deadline() -> None:
    task = asyncio.current_task()
    assert task is not None
    seen: dict[str, list[int]] = {}
    for kind in ("preempting deadline", "awaiting deadline", "asyncio.timeout"):
        counts: list[int] = []
        scope = asyncio.timeout(0.02) if kind == "asyncio.timeout" else deadline(0.02)
        try:
            async with scope:
                try:
                    if kind == "preempting deadline":
                        spin()
                    else:
                        await asyncio.sleep(SAFETY)
                except asyncio.CancelledError:
                    counts.append(task.cancelling())
                    raise
        except TimeoutError:
            counts.append(task.cancelling())
        seen[kind] = counts
    # inside: asyncio.timeout and a deadline reached at an await cancel the task
    # (count 1); a preempting deadline raises without a cancellation request
    assert seen == {"preempting deadline": [0, 0], "awaiting deadline": [1, 0],
                    "asyncio.timeout": [1, 0]}


@pytest.mark.asyncio
async def test_an_outside_cancellation_during_a_deadline_stays_a_cancellation() -> None:
    """The task is cancelled by someone else inside the scope: the deadline
    does not turn that into TimeoutError (asyncio.timeout does not either),
    and uncancel() by the canceller's side leaves the count at 0."""
    task = asyncio.current_task()
    assert task is not None
    for kind in ("deadline", "asyncio.timeout"):
        scope = deadline(SAFETY) if kind == "deadline" else asyncio.timeout(SAFETY)
        with pytest.raises(asyncio.CancelledError) as info:
            async with scope:
                asyncio.get_running_loop().call_soon(task.cancel)
                await asyncio.sleep(SAFETY)
        assert type(info.value) is asyncio.CancelledError, kind
        assert task.uncancel() == 0, kind


@pytest.mark.asyncio
async def test_anyio_cancel_scope_and_task_group_beside_fail_after() -> None:
    with anyio.move_on_after(SAFETY) as scope:
        with pytest.raises(TimeoutError):
            async with deadline(0.02):
                spin()
    assert not scope.cancel_called           # the outer anyio scope is untouched

    results = {}
    for kind in ("deadline", "fail_after"):
        log: list[str] = []

        async def child() -> None:
            try:
                await anyio.sleep(SAFETY)
            except BaseException:
                log.append("child cancelled")
                raise

        with pytest.raises(TimeoutError):
            if kind == "deadline":
                async with deadline(0.02):
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(child)
                        await anyio.sleep(0)
                        spin()
            else:
                with anyio.fail_after(0.02):
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(child)
                        await anyio.sleep(SAFETY)
        results[kind] = log
    assert results["deadline"] == results["fail_after"] == ["child cancelled"]
