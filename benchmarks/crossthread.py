"""Thread round trips and the idle loop, on any loop, with CPU per operation.

Round trips (one in flight; each op timed with ``perf_counter_ns``):

* ``to_thread``: ``await asyncio.to_thread(noop)``.
* ``executor``: ``await loop.run_in_executor(None, noop)``.
* ``worker``: a dedicated thread takes ``(future, fn)`` from a
  ``queue.SimpleQueue`` the loop fills, runs ``fn`` and resolves the future
  with ``call_soon_threadsafe``.
* ``rcts``: a thread calls ``run_coroutine_threadsafe(coro(), loop).result()``
  in a loop; the loop only runs the coroutines.
* ``anyio_to``: ``await anyio.to_thread.run_sync(noop)``.
* ``anyio_from``: an anyio worker thread calls ``anyio.from_thread.run(coro)``
  in a loop.

Each returns ``(samples_ns, cpu_ns)``: the CPU time of the whole process
(every thread, ``time.process_time_ns``) over the measured ops, so a thread
that spins is counted.

``idle``: the loop blocks on a future for a window while a measuring thread
reads the process's CPU time (less its own) and the voluntary context
switches of every other thread (each is one block-then-wake): CPU % of one
core and wakeups per second of an idle loop.
"""
from __future__ import annotations

import asyncio
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from _common import is_uintr, voluntary_switches

WARMUP = 50
Result = tuple[list[int], int]
T = TypeVar("T")


def noop() -> None:
    return None


async def anoop() -> None:
    return None


async def _timed(n: int, op: Callable[[], Any]) -> Result:
    """Await ``op()`` WARMUP times unmeasured, then n times measured."""
    for _ in range(WARMUP):
        await op()
    samples: list[int] = []
    clock = time.perf_counter_ns
    c0 = time.process_time_ns()
    for _ in range(n):
        t0 = clock()
        await op()
        samples.append(clock() - t0)
    return samples, time.process_time_ns() - c0


def _timed_blocking(n: int, op: Callable[[], Any]) -> Result:
    """``_timed`` for a blocking ``op``, on a thread other than the loop's."""
    for _ in range(WARMUP):
        op()
    samples: list[int] = []
    clock = time.perf_counter_ns
    c0 = time.process_time_ns()
    for _ in range(n):
        t0 = clock()
        op()
        samples.append(clock() - t0)
    return samples, time.process_time_ns() - c0


async def _on_thread(fn: Callable[[], T]) -> T:
    """``fn()`` on a thread of its own (not the loop's executor) while the loop
    waits on a future that the thread resolves with ``call_soon_threadsafe``."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, exc: BaseException | None) -> None:
        if done.done():
            return
        if exc is None:
            done.set_result(result)
        else:
            done.set_exception(exc)

    def body() -> None:
        try:
            outcome: tuple[Any, BaseException | None] = (fn(), None)
        except BaseException as exc:  # noqa: BLE001 - handed to the loop to raise
            outcome = (None, exc)
        loop.call_soon_threadsafe(settle, *outcome)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    try:
        return await done
    finally:
        thread.join()


async def to_thread(n: int) -> Result:
    return await _timed(n, lambda: asyncio.to_thread(noop))


async def executor(n: int) -> Result:
    loop = asyncio.get_running_loop()
    return await _timed(n, lambda: loop.run_in_executor(None, noop))


async def worker(n: int) -> Result:
    loop = asyncio.get_running_loop()
    jobs: queue.SimpleQueue[tuple[asyncio.Future[Any], Callable[[], Any]] | None] = queue.SimpleQueue()

    def resolve(fut: asyncio.Future[Any], value: Any) -> None:
        if not fut.done():
            fut.set_result(value)

    def run() -> None:
        while (job := jobs.get()) is not None:
            fut, fn = job
            loop.call_soon_threadsafe(resolve, fut, fn())

    def submit() -> asyncio.Future[Any]:
        fut = loop.create_future()
        jobs.put((fut, noop))
        return fut

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        return await _timed(n, submit)
    finally:
        jobs.put(None)
        thread.join()


async def rcts(n: int) -> Result:
    loop = asyncio.get_running_loop()

    def call() -> None:
        asyncio.run_coroutine_threadsafe(anoop(), loop).result()

    return await _on_thread(lambda: _timed_blocking(n, call))


async def anyio_to(n: int) -> Result:
    import anyio.to_thread

    return await _timed(n, lambda: anyio.to_thread.run_sync(noop))


async def anyio_from(n: int) -> Result:
    import anyio.from_thread
    import anyio.to_thread

    return await anyio.to_thread.run_sync(_timed_blocking, n, lambda: anyio.from_thread.run(anoop))


ROUND_TRIPS: dict[str, Callable[[int], Any]] = {
    "to_thread": to_thread,
    "executor": executor,
    "worker": worker,
    "rcts": rcts,
    "anyio_to": anyio_to,
    "anyio_from": anyio_from,
}


async def idle(window_s: float, with_endpoints: bool, loop_name: str) -> dict[str, float]:
    """CPU % of one core and wakeups/s of the loop's process while it idles.

    ``with_endpoints``: a uintr loop holds a Receiver and a Sender to it (no
    sends); a peer holds the nearest equivalent, an eventfd in ``add_reader``."""
    loop = asyncio.get_running_loop()
    closers: list[Callable[[], Any]] = []
    if with_endpoints:
        if is_uintr(loop_name):
            import uintr_loop

            receiver = uintr_loop.Receiver(lambda vector: None)
            sender = uintr_loop.Sender(receiver.vector_fd(1))
            closers += [sender.close, receiver.close]
        else:
            efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            loop.add_reader(efd, lambda: None)
            closers += [lambda: os.close(efd), lambda: loop.remove_reader(efd)]

    def measure() -> dict[str, float]:
        me = threading.get_native_id()
        time.sleep(min(0.1, window_s / 4))          # let the loop settle into its wait
        c0, m0, w0, t0 = time.process_time_ns(), time.thread_time_ns(), voluntary_switches(me), time.monotonic()
        time.sleep(window_s)
        c1, m1, w1, t1 = time.process_time_ns(), time.thread_time_ns(), voluntary_switches(me), time.monotonic()
        elapsed = t1 - t0
        # max(): the two clocks are read one after the other, so an idle
        # process can come out a few ns below zero
        return {"cpu_pct": max(0.0, 100.0 * ((c1 - c0) - (m1 - m0)) / 1e9 / elapsed),
                "wakeups_per_s": (w1 - w0) / elapsed, "window_s": elapsed}

    try:
        return await _on_thread(measure)
    finally:
        for close in reversed(closers):
            close()
