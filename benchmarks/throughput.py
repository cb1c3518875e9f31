"""Cross-thread throughput and the syscalls it costs.

* throughput: 1 or 4 Python threads call ``call_soon_threadsafe`` as fast as
  they can; the figure is callbacks run per second (all loops).
* python_floor: the flood's own Python with no loop and no second thread:
  the sender's loop calling a C function (``list.append``) with the
  callback, then the callbacks called one by one. No loop can run the
  flood faster: every loop adds its handle, context and hand-off to it.
* syscalls: notification writes (eventfd) per 1000 ``call_soon_threadsafe``
  calls, read from the loop's own statistics, while the loop is busy
  (running a chain of CPU-bound callbacks that release the GIL, as hashing
  or compression in C does) and while it is idle (blocked
  between posts). uintr loops only: stock loops keep no such count (see
  benchmarks/README.md for the strace check of all four).
"""
from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from typing import Any

from _common import run_on

BLOB = bytes(64 * 1024)      # about 50-100 us of sha256 here


async def throughput(senders: int, posts: int) -> float:
    loop = asyncio.get_running_loop()
    per_sender = posts // senders
    total = per_sender * senders
    count = 0
    done = loop.create_future()

    def callback() -> None:
        nonlocal count
        count += 1
        if count == total:
            done.set_result(None)

    def sender() -> None:
        cst = loop.call_soon_threadsafe
        for _ in range(per_sender):
            cst(callback)

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    await done
    elapsed = time.perf_counter() - t0
    for t in threads:
        t.join()
    return total / elapsed


def python_floor(posts: int) -> float:
    """Callbacks per second of the flood's own Python, with no loop: the
    sender's loop appending the callback to a list, then each one called,
    as ``throughput``'s callback counts its calls."""
    count = 0
    total = posts

    def callback() -> None:
        nonlocal count
        count += 1
        if count == total:
            pass

    posted: list[Any] = []
    append = posted.append
    t0 = time.perf_counter()
    for _ in range(posts):
        append(callback)
    for cb in posted:
        cb()
    return posts / (time.perf_counter() - t0)


def notifications(loop: asyncio.AbstractEventLoop) -> int:
    """Eventfd writes so far (uintr loops; 0 for stock loops, which keep no count)."""
    stats = getattr(loop, "statistics", None)
    return stats().notifications if stats else 0


async def busy_posts(calls: int) -> tuple[int, int]:
    """(notifications, calls) while the loop runs CPU-bound callbacks."""
    loop = asyncio.get_running_loop()
    before = notifications(loop)
    stop = False
    ran = 0
    done = loop.create_future()

    def busy() -> None:
        # CPU work that releases the GIL (hashlib does for large inputs), so
        # the sender thread can post while the loop is busy in a callback;
        # a pure-Python spin would leave it only the GIL's 5 ms turns.
        hashlib.sha256(BLOB)
        if not stop:
            loop.call_soon(busy)

    def callback() -> None:
        nonlocal ran
        ran += 1
        if ran == calls:
            done.set_result(None)

    def sender() -> None:
        for i in range(calls):
            loop.call_soon_threadsafe(callback)
            if i % 10 == 9:
                time.sleep(20e-6)

    loop.call_soon(busy)
    await asyncio.sleep(0.01)
    thread = threading.Thread(target=sender)
    thread.start()
    await done
    stop = True
    thread.join()
    return notifications(loop) - before, calls


async def idle_posts(calls: int) -> tuple[int, int]:
    """(notifications, calls) when every post finds the loop blocked."""
    loop = asyncio.get_running_loop()
    before = notifications(loop)
    got = threading.Semaphore(0)
    ran = 0
    done = loop.create_future()

    def callback() -> None:
        nonlocal ran
        ran += 1
        got.release()
        if ran == calls:
            done.set_result(None)

    def sender() -> None:
        for _ in range(calls):
            time.sleep(50e-6)
            loop.call_soon_threadsafe(callback)
            got.acquire()

    thread = threading.Thread(target=sender)
    thread.start()
    await done
    thread.join()
    return notifications(loop) - before, calls


def per_thousand(factory, fn, calls: int) -> float:  # type: ignore[no-untyped-def]
    (notes, n), _ = run_on(factory, lambda: fn(calls))
    return 1000.0 * notes / n
