"""The two bases: choosing one (new_event_loop/UintrPolicy/run and their bad
input), call_soon_threadsafe's delivery (on the uvloop base: the mailbox),
SN around the loop's blocking, and closing a uvloop-based loop.

Behaviours that stock asyncio has too run on every loop factory; the rest on
both uintr_loop bases.
"""
from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import time
import traceback
import warnings
from typing import Any

import pytest
from _support import HANG_GUARD, LoopFactory, fresh_loop, guarded

import uintr_loop
from uintr_loop._bases import default_base

BASES = ["asyncio", "uvloop"]
BAD_BUSY_POLL = [
    ("1", TypeError),
    (None, TypeError),
    (True, TypeError),        # a bool is not a number of microseconds
    (-1, ValueError),
    (1_000_001, ValueError),
    (float("nan"), ValueError),
    (float("inf"), ValueError),
]


async def _noop() -> None:
    pass


# --- choosing a base, and refusing bad input ---------------------------------------


@pytest.mark.parametrize("base", [None, *BASES])
def test_new_event_loop_makes_the_asked_base(base: str | None) -> None:
    expected = base or default_base()
    with fresh_loop(lambda: uintr_loop.new_event_loop(base=base)) as loop:
        assert loop.base == expected  # type: ignore[attr-defined]
        assert type(loop).__name__ == {"uvloop": "UintrUVLoop", "asyncio": "UintrEventLoop"}[expected]
        assert loop.busy_poll == "auto"  # type: ignore[attr-defined]   # the adaptive wakeup
        assert loop.run_until_complete(asyncio.sleep(0, "ran")) == "ran"


@pytest.mark.parametrize("base", ["", "uv", "UVLOOP", "selector", 1])
def test_unknown_base_is_refused_everywhere(base: Any) -> None:
    with pytest.raises(ValueError, match="base must be one of"):
        uintr_loop.new_event_loop(base=base)
    with pytest.raises(ValueError, match="base must be one of"):
        uintr_loop.UintrPolicy(base=base)
    coro = _noop()
    try:
        with pytest.raises(ValueError, match="base must be one of"):
            uintr_loop.run(coro, base=base)
    finally:
        coro.close()
    assert asyncio._get_running_loop() is None


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize(("value", "error"), BAD_BUSY_POLL)
def test_bad_busy_poll_is_refused_on_every_entry_point(base: str, value: Any, error: type) -> None:
    with pytest.raises(error, match="busy_poll"):
        uintr_loop.new_event_loop(base=base, busy_poll=value)
    with pytest.raises(error, match="busy_poll"):
        uintr_loop.UintrPolicy(base=base, busy_poll=value)
    coro = _noop()
    try:
        with pytest.raises(error, match="busy_poll"):
            uintr_loop.run(coro, base=base, busy_poll=value)
    finally:
        coro.close()
    with fresh_loop(lambda: uintr_loop.new_event_loop(base=base, busy_poll=5)) as loop:
        with pytest.raises(error, match="busy_poll"):
            loop.busy_poll = value  # type: ignore[attr-defined]
        assert loop.busy_poll == 5.0  # type: ignore[attr-defined]   # unchanged
        assert loop.run_until_complete(asyncio.sleep(0, "healthy")) == "healthy"


@pytest.mark.parametrize("base", BASES)
def test_refused_busy_poll_leaks_no_fds(base: str) -> None:
    # warm up: libuv's process-wide pipe, asyncio's module state
    with fresh_loop(lambda: uintr_loop.new_event_loop(base=base)) as warm:
        warm.run_until_complete(asyncio.sleep(0))
    gc.collect()
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        with pytest.raises(ValueError):
            uintr_loop.new_event_loop(base=base, busy_poll=-1)
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) == before


@pytest.mark.parametrize("base", BASES)
def test_busy_poll_reaches_the_loop_from_policy_and_run(base: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        policy = uintr_loop.UintrPolicy(base=base, busy_poll=7)
    assert policy.base == base
    with fresh_loop(policy.new_event_loop) as loop:
        assert (loop.base, loop.busy_poll) == (base, 7.0)  # type: ignore[attr-defined]

    async def main() -> tuple[str, float]:
        loop = asyncio.get_running_loop()
        return loop.base, loop.busy_poll  # type: ignore[attr-defined]

    assert uintr_loop.run(main(), base=base, busy_poll=3) == (base, 3.0)


@pytest.mark.parametrize("kwargs", [{"base": "asyncio"}, {"base": "uvloop"}, {"busy_poll": 5}])
def test_run_refuses_loop_factory_with_base_or_busy_poll(kwargs: dict[str, Any]) -> None:
    coro = _noop()
    try:
        with pytest.raises(TypeError, match="loop_factory"):
            uintr_loop.run(coro, loop_factory=uintr_loop.new_event_loop, **kwargs)
    finally:
        coro.close()
    assert asyncio._get_running_loop() is None


def test_run_with_loop_factory_alone_uses_it() -> None:
    async def main() -> str:
        return type(asyncio.get_running_loop()).__name__

    assert uintr_loop.run(main(), loop_factory=lambda: uintr_loop.new_event_loop(base="asyncio")) == "UintrEventLoop"


# --- call_soon_threadsafe: order, none lost, cancel, errors --------------------------


def test_threadsafe_callbacks_from_one_thread_run_in_posting_order(loop_factory: LoopFactory) -> None:
    n = 20_000

    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        got: list[int] = []
        done = loop.create_future()

        def on_loop(i: int) -> None:
            got.append(i)
            if i == n - 1:
                done.set_result(None)

        def producer() -> None:
            for i in range(n):
                loop.call_soon_threadsafe(on_loop, i)
                if i % 997 == 0:
                    time.sleep(0.0002)      # let the loop drain and block meanwhile

        t = threading.Thread(target=producer)
        t.start()
        try:
            await guarded(done)
        finally:
            t.join(HANG_GUARD)
        return got

    with fresh_loop(loop_factory) as loop:
        assert loop.run_until_complete(main()) == list(range(n))


def test_threadsafe_callbacks_from_four_threads_none_lost(loop_factory: LoopFactory) -> None:
    threads, per_thread = 4, 5_000

    async def main() -> list[list[int]]:
        loop = asyncio.get_running_loop()
        got: list[list[int]] = [[] for _ in range(threads)]
        remaining = [threads * per_thread]
        done = loop.create_future()

        def on_loop(t: int, i: int) -> None:
            got[t].append(i)
            remaining[0] -= 1
            if remaining[0] == 0:
                done.set_result(None)

        def producer(t: int) -> None:
            for i in range(per_thread):
                loop.call_soon_threadsafe(on_loop, t, i)

        workers = [threading.Thread(target=producer, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        try:
            await guarded(done)
        finally:
            for w in workers:
                w.join(HANG_GUARD)
        await asyncio.sleep(0)
        return got

    with fresh_loop(loop_factory) as loop:
        # each thread's callbacks all ran, once, in that thread's order
        assert loop.run_until_complete(main()) == [list(range(per_thread))] * threads


def test_threadsafe_handle_cancelled_before_it_runs(loop_factory: LoopFactory) -> None:
    async def main() -> tuple[list[str], bool, bool]:
        loop = asyncio.get_running_loop()
        ran: list[str] = []
        handles: list[Any] = []

        posted = threading.Event()

        def post_from_thread() -> None:
            handles.append(loop.call_soon_threadsafe(ran.append, "cancelled"))
            handles.append(loop.call_soon_threadsafe(ran.append, "kept"))
            handles[0].cancel()
            posted.set()

        t = threading.Thread(target=post_from_thread)
        t.start()
        # This step holds the loop, so neither callback can run before the cancel.
        posted.wait(HANG_GUARD)
        t.join(HANG_GUARD)
        for _ in range(3):
            await asyncio.sleep(0)
        return ran, handles[0].cancelled(), handles[1].cancelled()

    with fresh_loop(loop_factory) as loop:
        assert loop.run_until_complete(main()) == (["kept"], True, False)


def test_exception_in_threadsafe_callback_goes_to_handler_and_the_rest_run(loop_factory: LoopFactory) -> None:
    async def main() -> tuple[list[str], list[dict[str, Any]]]:
        loop = asyncio.get_running_loop()
        ran: list[str] = []
        contexts: list[dict[str, Any]] = []
        done = loop.create_future()
        handled: list[Any] = []

        def handler(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            # asyncio reports from inside its except clause
            handled.append(sys.exc_info()[1])
            contexts.append(context)

        loop.set_exception_handler(handler)

        def boom() -> None:
            raise ZeroDivisionError("in a threadsafe callback")

        def post_from_thread() -> None:
            loop.call_soon_threadsafe(ran.append, "before")
            loop.call_soon_threadsafe(boom)
            loop.call_soon_threadsafe(ran.append, "after")
            loop.call_soon_threadsafe(done.set_result, None)

        try:
            await asyncio.to_thread(post_from_thread)
            await guarded(done)
        finally:
            loop.set_exception_handler(None)
        return ran, contexts, handled

    with fresh_loop(loop_factory) as loop:
        ran, contexts, handled = loop.run_until_complete(main())
    assert ran == ["before", "after"]
    assert len(contexts) == 1
    assert isinstance(contexts[0]["exception"], ZeroDivisionError)
    assert handled == [contexts[0]["exception"]]
    frames = [f.name for f in traceback.extract_tb(contexts[0]["exception"].__traceback__)]
    assert frames[-1] == "boom", frames
    assert "Exception in callback" in contexts[0]["message"]
    assert "handle" in contexts[0]


def test_keyboard_interrupt_in_threadsafe_callback_propagates_and_strands_nothing(loop_factory: LoopFactory) -> None:
    with fresh_loop(loop_factory) as loop:
        ran: list[str] = []

        def interrupt() -> None:
            ran.append("interrupt")
            raise KeyboardInterrupt

        def post_from_thread() -> None:
            for item in ("a", "b"):
                loop.call_soon_threadsafe(ran.append, item)
            loop.call_soon_threadsafe(interrupt)
            for item in ("c", "d"):
                loop.call_soon_threadsafe(ran.append, item)

        t = threading.Thread(target=post_from_thread)
        t.start()
        t.join(HANG_GUARD)
        with pytest.raises(KeyboardInterrupt):
            loop.run_forever()
        # No new post: the rest still runs. run_forever + stop, not
        # run_until_complete: see test_keyboard_interrupt_leaves_no_stale_stop.
        for _ in range(3):
            loop.call_soon(loop.stop)
            loop.run_forever()
        assert ran == ["a", "b", "interrupt", "c", "d"]


@pytest.mark.parametrize("base", BASES)
def test_debug_mode_call_soon_threadsafe_checks_and_records_the_caller(base: str) -> None:
    async def coro_fn() -> None:
        pass

    async def main() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        contexts: list[dict[str, Any]] = []
        done = loop.create_future()
        loop.set_exception_handler(lambda _loop, context: (contexts.append(context), done.set_result(None)))
        try:
            with pytest.raises(TypeError):
                loop.call_soon_threadsafe(42)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                loop.call_soon_threadsafe(coro_fn)
            loop.call_soon_threadsafe(lambda: 1 / 0)
            await guarded(done)
        finally:
            loop.set_exception_handler(None)
        return contexts[0]

    with fresh_loop(lambda: uintr_loop.new_event_loop(base=base)) as loop:
        loop.set_debug(True)
        context = loop.run_until_complete(main())
    frames = context["source_traceback"]
    assert frames and frames[-1].name == "main" and frames[-1].filename == __file__


# --- SN: notify only a loop that may block -----------------------------------------


def test_posts_while_the_loop_runs_callbacks_are_suppressed(uintr_only_loop: Any) -> None:
    loop = uintr_only_loop
    n = 50

    async def main() -> tuple[Any, Any, list[int]]:
        got: list[int] = []
        posted = threading.Event()

        def post_from_thread() -> None:
            for i in range(n):
                loop.call_soon_threadsafe(got.append, i)
            posted.set()

        await asyncio.sleep(0)
        before = loop.statistics()
        t = threading.Thread(target=post_from_thread)
        t.start()
        # This callback keeps the loop running (SN set) until every post is
        # made: the thread gets the GIL at the interpreter's switch interval.
        while not posted.is_set():
            pass
        mid = loop.statistics()
        t.join(HANG_GUARD)
        for _ in range(3):
            await asyncio.sleep(0)
        return before, mid, got

    before, mid, got = loop.run_until_complete(main())
    assert got == list(range(n))
    assert mid.notifications == before.notifications       # no syscall while running
    posts = mid.posted - before.posted
    assert mid.suppressed - before.suppressed == posts
    if loop.base == "asyncio":
        assert posts == n                 # one post per call_soon_threadsafe
    else:
        assert posts == 1                 # the mailbox posts when it turns non-empty


def test_a_post_to_a_blocked_loop_notifies_exactly_once(uintr_only_loop: Any) -> None:
    """A post while the loop sleeps writes the eventfd once; it wakes the loop.
    Whether the loop had reached its sleep when the thread posted is up to the
    scheduler, so a round where the post came early (suppressed) is retried;
    every round must deliver its callback, and no round may notify twice."""
    loop = uintr_only_loop

    async def one_round() -> tuple[int, int]:
        fut = loop.create_future()

        def post() -> None:
            time.sleep(0.02)                 # give the loop time to block
            loop.call_soon_threadsafe(fut.set_result, "woken")

        before = loop.statistics()
        t = threading.Thread(target=post)
        t.start()
        try:
            assert await guarded(fut) == "woken"
        finally:
            t.join(HANG_GUARD)
        after = loop.statistics()
        assert after.posted - before.posted == 1
        return after.notifications - before.notifications, after.suppressed - before.suppressed

    rounds = [loop.run_until_complete(one_round()) for _ in range(5)]
    assert all(r in ((1, 0), (0, 1)) for r in rounds), rounds
    assert (1, 0) in rounds, rounds


# --- closing a uvloop-based loop ---------------------------------------------------


def test_uvloop_base_closes_cleanly_and_shuts_its_senders() -> None:
    gc.collect()
    warm = uintr_loop.new_event_loop(base="uvloop")   # libuv's process-wide pipe
    warm.run_until_complete(asyncio.sleep(0))
    warm.close()
    gc.collect()
    before = len(os.listdir("/proc/self/fd"))

    loop = uintr_loop.new_event_loop(base="uvloop")
    receiver = uintr_loop.Receiver(lambda v: None, loop=loop)
    sender = uintr_loop.Sender(receiver.vector_fd(3))
    ran: list[str] = []

    async def main() -> None:
        await asyncio.to_thread(lambda: None)
        sender.send()
        await asyncio.sleep(0)

    loop.run_until_complete(main())
    # posted and never run: dropped by close, as asyncio drops its ready queue
    stranded = loop.call_soon_threadsafe(ran.append, "never")
    loop.close()                      # no EBUSY: our libuv handles are closed first
    loop.close()                      # idempotent
    assert loop.is_closed() and receiver.closed
    assert stranded.cancelled() and ran == []
    with pytest.raises(RuntimeError, match="closed"):
        loop.call_soon_threadsafe(ran.append, "late")
    with pytest.raises(uintr_loop.ReceiverClosedError):
        sender.send()
    assert loop.statistics() == loop.statistics()    # the final figures stay readable
    del receiver, sender
    # The sender watch's thread, ending on its own as the loop closes, may
    # hold the watch (and through it the port) for a moment after close():
    # the fds go when it lets go, which is bounded, not at once.
    deadline = time.monotonic() + HANG_GUARD
    while True:
        gc.collect()
        if len(os.listdir("/proc/self/fd")) == before or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert len(os.listdir("/proc/self/fd")) == before
