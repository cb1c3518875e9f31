"""The default executor's job queue (cython_src/core/jobqueue.pxi): the
queue.SimpleQueue interface a ThreadPoolExecutor uses, and the races its
spinning and sleeping workers could lose a job in.

uintr_loop only: stock asyncio's pool has a queue.SimpleQueue, whose own
tests are CPython's. The pool's behaviour (round trips, blocked jobs,
shutdown) runs on every loop in test_loop_executor.py.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import random
import threading
import time

import pytest

import uintr_loop
from uintr_loop._core import JobQueue
from _support import HANG_GUARD


@pytest.fixture(params=["asyncio", "uvloop"])
def loop(request: pytest.FixtureRequest):
    loop = uintr_loop.new_event_loop(base=request.param)
    yield loop
    loop.close()


def test_fifo_and_the_simple_queue_interface() -> None:
    q = JobQueue()
    assert q.empty() and q.qsize() == 0
    for i in range(5):
        q.put(i)
    q.put_nowait(None)
    assert q.qsize() == 6 and not q.empty()
    assert [q.get() for _ in range(3)] == [0, 1, 2]
    assert q.get_nowait() == 3
    assert q.get(block=False) == 4
    assert q.get(timeout=1.0) is None
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)
    with pytest.raises(ValueError, match="non-negative"):
        q.get(timeout=-1)
    assert q.empty()


def test_a_timed_get_returns_an_item_put_meanwhile() -> None:
    q = JobQueue()
    threading.Timer(0.02, q.put, ("late",)).start()
    assert q.get(timeout=HANG_GUARD) == "late"


def _default_executor(loop: asyncio.AbstractEventLoop) -> concurrent.futures.ThreadPoolExecutor:
    # asyncio's attribute; the uvloop base keeps its own copy of uvloop's
    name = "_uintr_default_executor" if hasattr(loop, "_uintr_default_executor") else "_default_executor"
    return getattr(loop, name)  # type: ignore[no-any-return]


def test_the_default_executor_of_a_uintr_loop_runs_on_a_job_queue(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> concurrent.futures.Executor:
        await asyncio.to_thread(int)
        return _default_executor(loop)

    executor = loop.run_until_complete(main())
    assert type(executor) is concurrent.futures.ThreadPoolExecutor
    assert type(executor._work_queue) is JobQueue  # type: ignore[attr-defined]


@pytest.mark.parametrize("workers", [1, 3])
def test_no_job_lost_between_spinning_and_sleeping_workers(loop: asyncio.AbstractEventLoop, workers: int) -> None:
    # Named race: a worker decides to sleep just as a job is queued (put()
    # adds to the count then reads the sleepers; the worker counts itself a
    # sleeper then reads the count). Puts come in bursts and after random
    # pauses, so workers are caught spinning, going to sleep and asleep.
    port = loop._uintr_port  # type: ignore[attr-defined]
    q = JobQueue(port)
    got: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        while True:
            item = q.get()
            if item is None:
                return
            with lock:
                got.append(item)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    rng = random.Random(1)
    n = 0
    for _ in range(400):
        for _ in range(rng.choice((1, 1, 2, 5))):
            q.put(n)
            n += 1
        pause = rng.choice((0, 0, 20e-6, 150e-6, 2e-3))
        if pause:
            time.sleep(pause)
    for _ in threads:
        q.put(None)
    for t in threads:
        t.join(HANG_GUARD)
        assert not t.is_alive(), "a worker never got its job or its sentinel"
    assert sorted(got) == list(range(n))


def test_a_pool_on_a_job_queue_shuts_down_and_cancels_what_it_dropped(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        await asyncio.to_thread(int)
        executor = _default_executor(loop)
        gate = threading.Event()
        running = loop.run_in_executor(None, gate.wait, HANG_GUARD)
        queued = [loop.run_in_executor(None, int, str(i)) for i in range(50)]
        executor.shutdown(wait=False, cancel_futures=True)
        gate.set()
        assert await asyncio.wait_for(running, HANG_GUARD) is True
        outcomes = await asyncio.wait_for(asyncio.gather(*queued, return_exceptions=True), HANG_GUARD)
        # each queued job either ran before the shutdown took it or was cancelled
        assert all(o == i or isinstance(o, asyncio.CancelledError) for i, o in enumerate(outcomes))

    loop.run_until_complete(main())
