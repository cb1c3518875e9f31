"""Leaks: a million posts and deliveries leave memory flat, and nothing leaks fds.

Memory. Each path runs one million posts through the real code on both uintr
bases, after a warm-up of the same workload (100 000 posts) that fills what
is meant to stay filled: free lists, allocator pools, glibc's cache of thread
stacks. Then the growth of RSS (/proc/self/statm) and of the memory
tracemalloc sees (every Python allocation still alive) must stay under
bounds that one leaked byte per post would break:

* RSS under 1 MiB: a million posts leaking even one byte each would add
  ~1 MiB; an object leaked per delivery (>= 64 bytes with its header) over
  the >= 20 000 deliveries of the Sender path would add >= 1.2 MiB. The
  bound leaves room for what RSS counts but is not ours to control (a page
  of the allocator or a thread stack touched for the first time).
* tracemalloc under 64 KiB: the 1 000 000 callbacks of call_soon_threadsafe
  and the >= 20 000 deliveries would leave >= 1.2 MiB if one small object
  (>= 64 bytes) stayed alive per delivery; 64 KiB is the size of the
  uvloop base's handle free list (256 x 64 B) with a margin.

The paths: ``Sender.send()`` from a thread into a Receiver, the thread
waiting for a delivery after every batch of 50 posts, so that deliveries
really happen (>= 20 000 of them) and the loop blocks, is notified and
wakes between batches; ``call_soon_threadsafe`` from a thread (every callback
runs: a million of them); the native sender (a pthread with no GIL). All
three run at one million on both bases: measured here, the six runs with
their warm-ups take about 15 s under tracemalloc.

Descriptors. Loops, receivers, vector fds, Senders (in-process, opened from
a raw fd, and from another process's vector fd: a lease with a pidfd),
task receivers, deadlines and a loop closed while its senders live: each is
made and released many times, and /proc/self/fd (and /proc/self/timers for
deadlines) must be what it was before, fd by fd.

No timing is asserted anywhere.
"""
from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import uintr_loop
from _support import HANG_GUARD, free_threaded_build
from _xproc import kill, spawn_owner
from _testcore._state import handle_pool_size, liveness_state
from uintr_loop._native import NativeSender

BASES = ["uvloop", "asyncio"]
MILLION = 1_000_000
WARMUP = 100_000
BATCH = 50
RSS_BOUND = 1 << 20
TRACED_BOUND = 64 << 10
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    """Resident set size in bytes (second field of /proc/self/statm, in pages)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


# -- the million posts -------------------------------------------------------


def sender_posts(base: str, n: int) -> dict[str, Any]:
    """``n`` Sender.send() from a thread, waiting for a delivery after each batch."""
    delivered = 0
    cond = threading.Condition()

    def handler(vector: int) -> None:
        nonlocal delivered
        with cond:
            delivered += 1
            cond.notify()

    async def main() -> dict[str, Any]:
        receiver = uintr_loop.Receiver(handler)
        sender = uintr_loop.Sender(receiver.vector_fd(7))

        def post() -> None:
            for _ in range(n // BATCH):
                with cond:
                    seen = delivered
                for _ in range(BATCH):
                    sender.send()
                with cond:
                    assert cond.wait_for(lambda: delivered != seen, HANG_GUARD), "lost wakeup"

        await asyncio.to_thread(post)
        stats = receiver.statistics()
        receiver.close()
        sender.close()
        return {"posted": stats.posted, "deliveries": delivered, "handler_calls": stats.delivered}

    return uintr_loop.run(main(), base=base)


def threadsafe_posts(base: str, n: int) -> dict[str, Any]:
    """``n`` call_soon_threadsafe from a thread, in batches the loop drains."""
    ran = 0
    drained = threading.Semaphore(0)
    per_batch = 1000

    def callback() -> None:
        nonlocal ran
        ran += 1
        if ran % per_batch == 0:
            drained.release()

    async def main() -> dict[str, Any]:
        loop = asyncio.get_running_loop()

        def post() -> None:
            for _ in range(n // per_batch):
                for _ in range(per_batch):
                    loop.call_soon_threadsafe(callback)
                assert drained.acquire(timeout=HANG_GUARD), "lost wakeup"

        await asyncio.to_thread(post)
        return {"posted": n, "deliveries": ran}

    return uintr_loop.run(main(), base=base)


def native_posts(base: str, n: int) -> dict[str, Any]:
    """``n`` posts from a pthread that never holds the GIL."""
    delivered = 0

    def handler(vector: int) -> None:
        nonlocal delivered
        delivered += 1

    async def main() -> dict[str, Any]:
        receiver = uintr_loop.Receiver(handler)
        sender = uintr_loop.Sender(receiver.vector_fd(3))
        native = NativeSender(sender, n, 1000, 1000)      # a short pause every 1000 posts
        sent, error = await asyncio.to_thread(native.join)
        assert (sent, error) == (n, 0)
        give_up = time.monotonic() + HANG_GUARD
        while delivered == 0:
            assert time.monotonic() < give_up, "lost wakeup"
            await asyncio.sleep(0.001)
        stats = receiver.statistics()
        receiver.close()
        sender.close()
        return {"posted": stats.posted, "deliveries": delivered}

    return uintr_loop.run(main(), base=base)


PATHS: dict[str, Callable[[str, int], dict[str, Any]]] = {
    "Sender.send": sender_posts,
    "call_soon_threadsafe": threadsafe_posts,
    "native": native_posts,
}


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("path", list(PATHS))
def test_a_million_posts_leave_memory_flat(path: str, base: str) -> None:
    run = PATHS[path]
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        run(base, WARMUP)
        gc.collect()
        rss_before, traced_before = rss(), tracemalloc.get_traced_memory()[0]
        result = run(base, MILLION)
        gc.collect()
        rss_growth = rss() - rss_before
        traced_growth = tracemalloc.get_traced_memory()[0] - traced_before
    finally:
        if not tracing:
            tracemalloc.stop()
    print(f"{path} on {base}: {result}, RSS {rss_growth:+d} B, traced {traced_growth:+d} B")
    assert result["posted"] == MILLION
    if path == "Sender.send":
        assert result["deliveries"] >= MILLION // BATCH
        assert result["deliveries"] == result["handler_calls"]
    elif path == "call_soon_threadsafe":
        assert result["deliveries"] == MILLION
    else:
        assert result["deliveries"] >= 1
    assert rss_growth < RSS_BOUND, f"RSS grew by {rss_growth} bytes over a million posts"
    assert traced_growth < TRACED_BOUND, (
        f"{traced_growth} bytes of Python objects made by a million posts are still alive")


# -- a flood's handles ---------------------------------------------------------

HANDLE_FREELIST = 8192      # handlepool.h: the freelist part of the handles' pool
BIG_BATCH = 30_000


def one_batch(loop: asyncio.AbstractEventLoop, n: int, callback: Callable[[], None]) -> None:
    """``n`` call_soon_threadsafe from a thread while the loop's thread (the
    caller, in a coroutine) waits without the GIL: they are drained as one batch."""
    posted = threading.Event()

    def post() -> None:
        for _ in range(n):
            loop.call_soon_threadsafe(callback)
        posted.set()

    thread = threading.Thread(target=post)
    thread.start()
    assert posted.wait(HANG_GUARD), "the poster did not finish"
    thread.join()


@pytest.mark.skipif(free_threaded_build(), reason="free-threaded build: the handles' overflow pool "
                    "is not installed there (handlepool.h), so there is nothing to give back")
def test_a_batch_larger_than_the_freelist_gives_its_memory_back() -> None:
    """uvloop base (the one with a mailbox): after a batch larger than the
    handles' freelist the overflow pool holds the rest of their memory; the
    first drain that did not need it gives it back, and so does closing the
    loop."""
    ran = 0

    def callback() -> None:
        nonlocal ran
        ran += 1

    async def drained(target: int) -> None:
        while ran < target:
            await asyncio.sleep(0.001)

    async def small_post() -> None:
        fut = asyncio.get_running_loop().create_future()
        threading.Thread(target=fut.get_loop().call_soon_threadsafe, args=(fut.set_result, None)).start()
        await asyncio.wait_for(fut, HANG_GUARD)

    loop = uintr_loop.new_event_loop(base="uvloop")
    try:
        async def main() -> tuple[int, int]:
            one_batch(asyncio.get_running_loop(), BIG_BATCH, callback)
            await asyncio.wait_for(drained(BIG_BATCH), HANG_GUARD)
            held = handle_pool_size()
            await small_post()
            return held, handle_pool_size()

        held, after_small = loop.run_until_complete(main())
        assert ran == BIG_BATCH
        assert held >= BIG_BATCH - HANDLE_FREELIST, f"the pool holds {held} handles' memory"
        assert after_small == 0, f"a drain that did not need the pool left {after_small} in it"

        async def again() -> int:
            one_batch(asyncio.get_running_loop(), BIG_BATCH, callback)
            await asyncio.wait_for(drained(2 * BIG_BATCH), HANG_GUARD)
            return handle_pool_size()

        assert loop.run_until_complete(again()) >= BIG_BATCH - HANDLE_FREELIST
    finally:
        loop.close()
    assert handle_pool_size() == 0, "closing the loop left memory in the pool"
    assert ran == 2 * BIG_BATCH


# -- descriptors -------------------------------------------------------------


def fd_table() -> dict[int, str]:
    """Every open fd and what it refers to (the listing's own fd drops out)."""
    table = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            table[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except FileNotFoundError:
            pass
    return table


def posix_timers() -> int:
    with open("/proc/self/timers") as f:
        return sum(line.startswith("ID:") for line in f)


@contextmanager
def no_new_fds(allow: tuple[str, ...] = ()) -> Iterator[None]:
    """The block, then a collection, must leave the fd table as it found it
    (``allow``: link targets that may appear, e.g. a process-lifetime epoll set)."""
    gc.collect()
    before = fd_table()
    yield
    gc.collect()
    after = fd_table()
    new = {fd: t for fd, t in after.items() if before.get(fd) != t and t not in allow}
    gone = {fd: t for fd, t in before.items() if fd not in after}
    assert not new, f"fds left open: {new}"
    assert not gone, f"fds closed that were not ours: {gone}"


def exercise(loop: asyncio.AbstractEventLoop) -> None:
    """A receiver, a vector fd, two senders (in-process and from the raw fd),
    a threadsafe call; everything closed again."""
    got: list[int] = []

    async def main() -> None:
        receiver = uintr_loop.Receiver(got.append)
        vfd = receiver.vector_fd(4)
        senders = [uintr_loop.Sender(vfd), uintr_loop.Sender(vfd.fileno())]
        vfd.close()
        for s in senders:
            await asyncio.to_thread(s.send)
        fut = loop.create_future()
        threading.Thread(target=loop.call_soon_threadsafe, args=(fut.set_result, None)).start()
        await asyncio.wait_for(fut, HANG_GUARD)
        while not got:
            await asyncio.sleep(0.001)
        receiver.close()
        for s in senders:
            s.close()

    loop.run_until_complete(main())
    loop.run_until_complete(loop.shutdown_default_executor())


@pytest.mark.parametrize("base", BASES)
def test_loops_made_and_closed_leave_no_fds(base: str) -> None:
    warm = uintr_loop.new_event_loop(base=base)
    exercise(warm)
    warm.close()
    with no_new_fds():
        for _ in range(50):
            loop = uintr_loop.new_event_loop(base=base)
            try:
                exercise(loop)
            finally:
                loop.close()
        idle = [uintr_loop.new_event_loop(base=base) for _ in range(50)]   # never run
        for loop in idle:
            loop.close()
        del idle, loop



def steady_posts_until_an_alarm(loop: asyncio.AbstractEventLoop, gap_s: float, limit_s: float) -> int:
    """A thread posts every ``gap_s`` (not waiting for the callbacks) until
    the loop's alarm has rung (busypoll.h: it learns so steady a pace) or
    ``limit_s`` has passed; returns the alarms rung."""
    async def main() -> int:
        stop = threading.Event()

        def steady() -> None:
            while not stop.is_set():
                time.sleep(gap_s)
                loop.call_soon_threadsafe(lambda: None)

        thread = threading.Thread(target=steady)
        thread.start()
        try:
            deadline = time.monotonic() + limit_s
            while loop.statistics().busy_poll_alarms == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await asyncio.to_thread(thread.join)
        return int(loop.statistics().busy_poll_alarms)

    return loop.run_until_complete(main())


@pytest.mark.parametrize("base", BASES)
def test_an_alarms_timerfd_goes_with_its_loop(base: str) -> None:
    """The adaptive wakeup's alarm makes a timerfd the first time it rings;
    closing the loop closes it."""
    warm = uintr_loop.new_event_loop(base=base)
    exercise(warm)
    warm.close()
    with no_new_fds():
        loop = uintr_loop.new_event_loop(base=base)
        try:
            rang = steady_posts_until_an_alarm(loop, 300e-6, 3.0)
        finally:
            loop.close()
        del loop
    if rang == 0:
        pytest.skip("probed: a thread posting every 300 us for 3 s never made the alarm ring "
                    "(its pace jittered more than the alarm spins through on this machine), "
                    "so no timerfd was made to close")


@pytest.mark.parametrize("base", BASES)
def test_receivers_vector_fds_and_senders_leave_no_fds(base: str) -> None:
    def churn(loop: asyncio.AbstractEventLoop, rounds: int) -> None:
        for i in range(rounds):
            r = uintr_loop.Receiver(lambda v: None, loop=loop)
            vfds = [r.vector_fd(v) for v in (1, 2, 63)]
            senders = [uintr_loop.Sender(vfds[0]), uintr_loop.Sender(vfds[1].fileno()),
                       uintr_loop.Sender(vfds[2].fileno())]
            for s in senders:
                s.send()
            if i % 2:                       # closed, or just dropped
                for v in vfds:
                    v.close()
                for s in senders:
                    s.close()
            r.close()
            del r, vfds, senders

    with no_new_fds():
        loop = uintr_loop.new_event_loop(base=base)
        try:
            churn(loop, 20)
            gc.collect()
            settled = len(fd_table())
            churn(loop, 300)
            gc.collect()
            assert len(fd_table()) == settled, "fds pile up while the loop lives"
            # a full table: the 64th receiver is refused, and leaves nothing behind
            full = [uintr_loop.Receiver(lambda v: None, loop=loop) for _ in range(63)]
            with pytest.raises(RuntimeError, match="at most 63 receivers"):
                uintr_loop.Receiver(lambda v: None, loop=loop)
            for r in full:
                vfd = r.vector_fd(5)
                uintr_loop.Sender(vfd.fileno()).send()
                r.close()
            del full, r, vfd
        finally:
            loop.close()
        del loop


@pytest.mark.parametrize("base", BASES)
def test_senders_outliving_their_loop_hold_its_fds_until_collected(base: str) -> None:
    with no_new_fds():
        before = set(fd_table())
        loop = uintr_loop.new_event_loop(base=base)
        receiver = uintr_loop.Receiver(lambda v: None, loop=loop)
        vfd = receiver.vector_fd(9)
        senders = [uintr_loop.Sender(vfd), uintr_loop.Sender(vfd.fileno())]
        # a sender its receiver's handler refers to: a cycle, which only the
        # collector frees (receiver -> handler -> box -> sender -> receiver)
        box: list[uintr_loop.Sender] = []
        cyclic = uintr_loop.Receiver(lambda v, box=box: box, loop=loop)
        box.append(uintr_loop.Sender(cyclic.vector_fd(1)))
        loop.close()
        for s in (*senders, *box):
            with pytest.raises(uintr_loop.ReceiverClosedError):
                s.send()
        del loop, receiver, vfd, cyclic, box
        gc.collect()
        held = set(fd_table()) - before
        kinds = sorted(os.readlink(f"/proc/self/fd/{fd}") for fd in held)
        # the table's memfd and the eventfd (in-process senders), and the lease's
        # copies of the eventfd and the vector fd (the sender from the raw fd)
        assert any(k.startswith("/memfd:uintr_loop-upid") for k in kinds), kinds
        assert "anon_inode:[eventfd]" in kinds, kinds
        for s in senders:
            s.close()
        del senders, s       # the last holders but the cycle, which no_new_fds collects


@pytest.mark.parametrize("base", BASES)
def test_task_receivers_leave_no_fds(base: str) -> None:
    async def worker() -> int:
        r = uintr_loop.Receiver.for_task(lambda v: None)
        sender = uintr_loop.Sender(r.vector_fd(3))
        threading.Thread(target=sender.send).start()
        vectors = await r.wait(timeout=HANG_GUARD)
        sender.close()
        return len(vectors)

    async def main(n: int) -> int:
        total = 0
        for _ in range(n // 10):
            total += sum(await asyncio.gather(*(worker() for _ in range(10))))
        return total

    uintr_loop.run(main(10), base=base)
    with no_new_fds():
        assert uintr_loop.run(main(200), base=base) == 200


def test_deadlines_leave_no_fds_or_timers() -> None:
    def spin() -> None:
        while True:
            pass

    async def main() -> None:
        for i in range(50):
            with pytest.raises(TimeoutError):
                async with uintr_loop.deadline(0.001):
                    spin()
            async with uintr_loop.deadline(1.0):
                await asyncio.sleep(0)

    with pytest.raises(TimeoutError):       # warm: the timer and its thread start once
        with uintr_loop.deadline(0.001):
            spin()
    timers = posix_timers()
    with no_new_fds():
        for _ in range(100):
            with pytest.raises(TimeoutError):
                with uintr_loop.deadline(0.001):
                    spin()
            with uintr_loop.deadline(10):
                pass
        for base in BASES:
            uintr_loop.run(main(), base=base)
    assert posix_timers() == timers


def test_cross_process_leases_leave_no_fds() -> None:
    proc, fd = spawn_owner(6, "run")
    try:
        uintr_loop.Sender(fd).send()       # warm: starts this process's liveness watcher
        gc.collect()
        leases = liveness_state()["leases"]
        with no_new_fds():
            for _ in range(200):
                s = uintr_loop.Sender(fd)
                s.send()
                if _ % 2:
                    s.close()
                del s
            gc.collect()
            assert liveness_state()["leases"] == leases
            # the owner dies: the watcher closes the lease's pidfd and vector-fd copy
            held = uintr_loop.Sender(fd)
            kill(proc)
            deadline = time.monotonic() + HANG_GUARD
            while True:
                try:
                    held.send()
                except uintr_loop.ReceiverClosedError:
                    break
                assert time.monotonic() < deadline, "owner's exit not seen"
                time.sleep(0.005)
            del held
        assert liveness_state()["leases"] == leases
    finally:
        kill(proc)
        os.close(fd)


@pytest.mark.parametrize("base", BASES)
def test_stamp_sender_dropped_unjoined_stops_and_releases(base: str) -> None:
    """Regression: StampSender (the latency benchmark's native sender) had no
    __dealloc__: dropped before join(), as a benchmark interrupted mid-run
    does, its pthread ran on over the freed object and its ack eventfd leaked."""
    from uintr_loop._native import StampSender

    async def main() -> None:
        receiver = uintr_loop.Receiver(lambda v: None)
        sender = uintr_loop.Sender(receiver.vector_fd(1))
        for acked in (False, True):
            stamp = StampSender(sender, 1_000_000, 100_000)
            await asyncio.sleep(0.005)        # it sends once, then waits for an ack
            if acked:
                stamp.ack()
            del stamp                         # never joined
        receiver.close()
        sender.close()

    uintr_loop.run(main(), base=base)
    with no_new_fds():
        uintr_loop.run(main(), base=base)
