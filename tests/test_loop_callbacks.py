"""Callback scheduling conformance: call_soon, timers, thread-safe calls,
run_coroutine_threadsafe, the exception handler and debug mode.

Every test runs on stock asyncio and on uintr_loop (see conftest.py).
"""
from __future__ import annotations

import asyncio
import collections
import contextvars
import gc
import logging
import os
import random
import sys
import threading
import time
import weakref
from collections.abc import Awaitable
from typing import Any, Callable, TypeVar

import pytest
from _support import HANG_GUARD, debug_mode, exceptions_in_thread, guarded, uvloop_deviation, wait_until_cancelled

_T = TypeVar("_T")
CLOCK_SLACK = 1e-3

pytestmark = pytest.mark.asyncio


def _start_thread(target: Callable[[], None]) -> threading.Thread:
    """Start ``target`` in a daemon thread."""
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


async def _guarded_with_thread(target: Callable[[], None], aw: Awaitable[_T], timeout: float = HANG_GUARD) -> _T:
    """Run ``target`` in a thread while awaiting ``aw`` under the hang guard; join it either way."""
    thread = _start_thread(target)
    try:
        return await guarded(aw, timeout)
    finally:
        thread.join(HANG_GUARD)


async def _drain(loop: asyncio.AbstractEventLoop) -> None:
    """Return once every callback queued before this call has run."""
    fut = loop.create_future()
    loop.call_soon(fut.set_result, None)
    await guarded(fut)


# --- call_soon ----------------------------------------------------------------


async def test_call_soon_runs_callbacks_in_fifo_order() -> None:
    loop = asyncio.get_running_loop()
    order: list[int] = []
    for i in range(500):
        loop.call_soon(order.append, i)
    await _drain(loop)
    assert order == list(range(500))


async def test_call_soon_passes_positional_args() -> None:
    loop = asyncio.get_running_loop()
    seen: list[tuple[Any, ...]] = []
    loop.call_soon(lambda *args: seen.append(args), 1, "two", None)
    loop.call_soon(lambda: seen.append(()))
    await _drain(loop)
    assert seen == [(1, "two", None), ()]


async def test_callback_scheduled_from_callback_runs_after_queued_ones() -> None:
    loop = asyncio.get_running_loop()
    order: list[str] = []

    def first() -> None:
        order.append("first")
        loop.call_soon(order.append, "nested")

    loop.call_soon(first)
    loop.call_soon(order.append, "second")
    await _drain(loop)
    await _drain(loop)
    assert order == ["first", "second", "nested"]


@uvloop_deviation("call_soon/call_soon_threadsafe return uvloop's own Handle (on the uvloop base a ThreadsafeHandle), not an asyncio.Handle")
async def test_cancelled_handle_does_not_run() -> None:
    loop = asyncio.get_running_loop()
    ran: list[str] = []
    handle = loop.call_soon(ran.append, "cancelled")
    loop.call_soon(ran.append, "kept")
    assert isinstance(handle, asyncio.Handle)
    assert not handle.cancelled()
    handle.cancel()
    assert handle.cancelled()
    await _drain(loop)
    assert ran == ["kept"]


async def test_call_soon_context_argument() -> None:
    loop = asyncio.get_running_loop()
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="outer")
    ctx = contextvars.copy_context()
    ctx.run(var.set, "inner")
    seen: list[str] = []

    def record_and_set() -> None:
        seen.append(var.get())
        var.set("changed-inside")

    loop.call_soon(record_and_set, context=ctx)
    loop.call_soon(lambda: seen.append(var.get()))
    await _drain(loop)
    assert seen == ["inner", "outer"]
    assert ctx[var] == "changed-inside"
    assert var.get() == "outer"


async def test_call_soon_without_context_copies_current_context() -> None:
    loop = asyncio.get_running_loop()
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var2", default="unset")
    token = var.set("at-schedule-time")
    try:
        seen: list[str] = []
        loop.call_soon(lambda: seen.append(var.get()))
        var.set("after-schedule")
        await _drain(loop)
        assert seen == ["at-schedule-time"]
    finally:
        var.reset(token)


@uvloop_deviation("uvloop's debug mode does not type-check call_soon/call_later callbacks")
async def test_debug_mode_rejects_non_callables_and_coroutine_functions() -> None:
    loop = asyncio.get_running_loop()

    async def coro_fn() -> None:
        pass

    with debug_mode(loop):
        with pytest.raises(TypeError):
            loop.call_soon(42)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            loop.call_soon(coro_fn)
        with pytest.raises(TypeError):
            loop.call_later(0, coro_fn)
        with pytest.raises(TypeError):
            loop.call_soon_threadsafe(coro_fn)


# --- timers -------------------------------------------------------------------


@uvloop_deviation("libuv clamps a deadline in the past to now, so timers already due run in the order they were scheduled, not by deadline")
async def test_call_at_runs_in_deadline_order() -> None:
    loop = asyncio.get_running_loop()
    now = loop.time()
    offsets = [0.05, 0.01, 0.04, 0.0, 0.03, 0.02, -1.0]
    order: list[float] = []
    done = loop.create_future()
    for off in offsets:
        loop.call_at(now + off, order.append, off)
    loop.call_at(now + 0.06, done.set_result, None)
    await guarded(done)
    assert order == sorted(offsets)


@uvloop_deviation("call_later/call_at return uvloop's TimerHandle, not an asyncio.TimerHandle")
async def test_call_later_runs_in_order_of_when() -> None:
    loop = asyncio.get_running_loop()
    delays = [0.03, 0.0, 0.05, 0.01, 0.02, 0.04]
    random.Random(1).shuffle(delays)
    order: list[asyncio.TimerHandle] = []
    handles: list[asyncio.TimerHandle] = []
    remaining = len(delays)
    done = loop.create_future()

    def fire(i: int) -> None:
        nonlocal remaining
        order.append(handles[i])
        remaining -= 1
        if remaining == 0:
            done.set_result(None)

    for i, delay in enumerate(delays):
        before = loop.time()
        handle = loop.call_later(delay, fire, i)
        after = loop.time()
        assert isinstance(handle, asyncio.TimerHandle)
        assert before + delay <= handle.when() <= after + delay
        handles.append(handle)
    await guarded(done)
    assert order == sorted(handles, key=lambda h: h.when())


async def test_timer_does_not_fire_before_its_deadline() -> None:
    loop = asyncio.get_running_loop()
    fired = loop.create_future()
    handle = loop.call_later(0.05, lambda: fired.set_result(loop.time()))
    fired_at = await guarded(fired)
    assert fired_at >= handle.when() - CLOCK_SLACK


async def test_timer_handle_cancel() -> None:
    loop = asyncio.get_running_loop()
    ran: list[str] = []
    cancelled = loop.call_later(0.01, ran.append, "cancelled")
    kept = loop.call_later(0.02, ran.append, "kept")
    done = loop.create_future()
    loop.call_later(0.04, done.set_result, None)
    cancelled.cancel()
    assert cancelled.cancelled()
    assert not kept.cancelled()
    await guarded(done)
    assert ran == ["kept"]


async def test_cancel_timer_from_another_timer() -> None:
    loop = asyncio.get_running_loop()
    ran: list[str] = []
    victim = loop.call_later(0.03, ran.append, "victim")
    loop.call_later(0.01, victim.cancel)
    done = loop.create_future()
    loop.call_later(0.05, done.set_result, None)
    await guarded(done)
    assert ran == []
    assert victim.cancelled()


async def test_call_at_in_the_past_runs_promptly() -> None:
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    loop.call_at(loop.time() - 100.0, fut.set_result, "late")
    assert await guarded(fut) == "late"


async def test_call_later_context_argument() -> None:
    loop = asyncio.get_running_loop()
    var: contextvars.ContextVar[int] = contextvars.ContextVar("timer_var", default=0)
    ctx = contextvars.copy_context()
    ctx.run(var.set, 7)
    fut = loop.create_future()
    loop.call_later(0.001, lambda: fut.set_result(var.get()), context=ctx)
    assert await guarded(fut) == 7


async def test_loop_time_is_monotonic() -> None:
    loop = asyncio.get_running_loop()
    samples = []
    for _ in range(200):
        samples.append(loop.time())
        await asyncio.sleep(0)
    assert samples == sorted(samples)
    before = loop.time()
    await asyncio.sleep(0.02)
    assert loop.time() >= before + 0.02 - CLOCK_SLACK


async def test_many_timers_all_fire_exactly_once() -> None:
    loop = asyncio.get_running_loop()
    count = 1000
    fired: collections.Counter[int] = collections.Counter()
    done = loop.create_future()
    rng = random.Random(7)

    def fire(i: int) -> None:
        fired[i] += 1
        if len(fired) == count and not done.done():
            done.set_result(None)

    for i in range(count):
        loop.call_later(rng.random() * 0.05, fire, i)
    await guarded(done)
    await asyncio.sleep(0.06)
    assert set(fired) == set(range(count))
    assert set(fired.values()) == {1}


# --- call_soon_threadsafe ------------------------------------------------------


async def test_call_soon_threadsafe_from_many_threads_none_lost() -> None:
    loop = asyncio.get_running_loop()
    n_threads, per_thread = 8, 500
    total = n_threads * per_thread
    received: list[tuple[int, int]] = []
    done = loop.create_future()
    barrier = threading.Barrier(n_threads)

    def on_loop(tid: int, i: int) -> None:
        received.append((tid, i))
        if len(received) == total:
            done.set_result(None)

    def worker(tid: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            loop.call_soon_threadsafe(on_loop, tid, i)
            if i % 50 == 0:
                time.sleep(0)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    try:
        await guarded(done)
    finally:
        for t in threads:
            t.join(HANG_GUARD)
    await _drain(loop)
    counts = collections.Counter(received)
    assert len(counts) == total
    assert set(counts.values()) == {1}
    for tid in range(n_threads):
        assert [i for (t, i) in received if t == tid] == list(range(per_thread))


async def test_call_soon_threadsafe_wakes_an_idle_loop_ping_pong() -> None:
    """Each round the loop blocks on its selector until another thread calls in."""
    loop = asyncio.get_running_loop()
    rounds = 300
    request = threading.Semaphore(0)
    stop = threading.Event()
    current: list[asyncio.Future[int]] = []

    def responder() -> None:
        for n in range(rounds):
            if not request.acquire(timeout=HANG_GUARD) or stop.is_set():
                return
            fut = current[-1]
            loop.call_soon_threadsafe(fut.set_result, n)

    thread = _start_thread(responder)
    try:
        for n in range(rounds):
            fut: asyncio.Future[int] = loop.create_future()
            current.append(fut)
            request.release()
            assert await guarded(fut) == n
    finally:
        stop.set()
        request.release()
        thread.join(HANG_GUARD)


async def test_call_soon_threadsafe_after_delay_wakes_blocked_loop() -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[str] = loop.create_future()

    def later() -> None:
        time.sleep(0.05)
        loop.call_soon_threadsafe(fut.set_result, "woken")

    assert await _guarded_with_thread(later, fut) == "woken"


@uvloop_deviation("call_soon/call_soon_threadsafe return uvloop's own Handle (on the uvloop base a ThreadsafeHandle), not an asyncio.Handle")
async def test_call_soon_threadsafe_from_loop_thread_and_args() -> None:
    loop = asyncio.get_running_loop()
    seen: list[tuple[Any, ...]] = []
    for i in range(5):
        loop.call_soon_threadsafe(lambda *a: seen.append(a), i, str(i))
    handle = loop.call_soon_threadsafe(seen.append, ("cancelled",))
    assert isinstance(handle, asyncio.Handle)
    handle.cancel()
    await _drain(loop)
    assert seen == [(i, str(i)) for i in range(5)]


async def test_call_soon_threadsafe_takes_its_arguments_as_asyncio_does() -> None:
    """The callback by position or by name, then its arguments; a missing
    callback, a second one or an unknown keyword is a TypeError, and the
    loop goes on."""
    loop = asyncio.get_running_loop()
    seen: list[tuple[Any, ...]] = []

    def record(*args: Any) -> None:
        seen.append(args)

    loop.call_soon_threadsafe(callback=record)
    loop.call_soon_threadsafe(record, 1, "two", context=None)
    loop.call_soon_threadsafe(record, *range(40))
    call = loop.call_soon_threadsafe
    with pytest.raises(TypeError, match="callback|positional argument"):   # uvloop names none
        call()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="callback"):
        call(record, callback=record)  # type: ignore[misc]
    with pytest.raises(TypeError, match="bogus"):
        call(record, bogus=1)  # type: ignore[call-arg]
    await _drain(loop)
    assert seen == [(), (1, "two"), tuple(range(40))]


async def test_call_soon_threadsafe_context_argument() -> None:
    loop = asyncio.get_running_loop()
    var: contextvars.ContextVar[str] = contextvars.ContextVar("ts_var", default="none")
    ctx = contextvars.copy_context()
    ctx.run(var.set, "from-ctx")
    fut: asyncio.Future[str] = loop.create_future()

    def worker() -> None:
        loop.call_soon_threadsafe(lambda: fut.set_result(var.get()), context=ctx)

    assert await _guarded_with_thread(worker, fut) == "from-ctx"


async def test_call_soon_threadsafe_without_context_isolates_each_call() -> None:
    """Each call snapshots the caller's context: a callback sees the value
    set before its call, and its own set() reaches neither the caller nor
    the next callback (asyncio's Handle copies per call)."""
    loop = asyncio.get_running_loop()
    var: contextvars.ContextVar[int] = contextvars.ContextVar("ts_iso", default=0)
    seen: list[int] = []
    done = loop.create_future()

    def callback() -> None:
        seen.append(var.get())
        var.set(-1)
        if len(seen) == 6:
            done.set_result(None)

    def worker() -> None:
        for value in (1, 1, 2, 2, 3, 3):
            var.set(value)
            loop.call_soon_threadsafe(callback)
        var.set(99)

    await _guarded_with_thread(worker, done)
    assert seen == [1, 1, 2, 2, 3, 3]
    assert var.get() == 0


async def test_call_soon_threadsafe_from_many_threads_each_callback_sees_its_posters_context() -> None:
    """Four threads post at once, each from its own context and changing its
    value as it goes; every callback sees the value its poster had at its
    post, whatever ran before it (a free-threaded build posts truly in
    parallel)."""
    loop = asyncio.get_running_loop()
    var: contextvars.ContextVar[tuple[int, int]] = contextvars.ContextVar("ts_many")
    threads, posts = 4, 500
    wrong: list[tuple[tuple[int, int], tuple[int, int]]] = []
    ran = 0
    done = loop.create_future()

    def callback(expected: tuple[int, int]) -> None:
        nonlocal ran
        got = var.get((-1, -1))
        if got != expected:
            wrong.append((expected, got))
        var.set((-2, -2))
        ran += 1
        if ran == threads * posts:
            done.set_result(None)

    def poster(t: int) -> None:
        for i in range(posts):
            if i % 3 == 0:
                var.set((t, i))
            loop.call_soon_threadsafe(callback, var.get())

    def run_all() -> None:
        workers = [threading.Thread(target=contextvars.copy_context().run, args=(poster, t)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    await _guarded_with_thread(run_all, done)
    assert wrong == []


@pytest.mark.skipif(sys.version_info < (3, 14), reason="context watchers are 3.14's (PyContext_AddWatcher)")
async def test_call_soon_threadsafe_context_switches_reach_context_watchers() -> None:
    """Running a threadsafe callback enters its context and leaves it again,
    and a context watcher is told of both, as Context.run tells it."""
    from _testcore._cells import context_switches, context_watcher_add, context_watcher_clear

    loop = asyncio.get_running_loop()
    posts = 200
    ran = 0
    done = loop.create_future()

    def callback() -> None:
        nonlocal ran
        ran += 1
        if ran == posts:
            done.set_result(None)

    def worker() -> None:
        for _ in range(posts):
            loop.call_soon_threadsafe(callback)

    watcher = context_watcher_add()
    try:
        before = context_switches()
        await _guarded_with_thread(worker, done)
        told = context_switches() - before
    finally:
        context_watcher_clear(watcher)
    assert told >= 2 * posts


async def test_call_soon_threadsafe_a_kept_token_keeps_its_context_apart() -> None:
    """A callback that keeps the Token of its set() keeps its context: the
    next callbacks, posted from the same unchanged context, still see the
    poster's value, and the kept token still names the value it replaced."""
    loop = asyncio.get_running_loop()
    var: contextvars.ContextVar[str] = contextvars.ContextVar("ts_token", default="unset")
    seen: list[str] = []
    tokens: list[contextvars.Token[str]] = []
    refused: list[bool] = []
    done = loop.create_future()

    def keeper() -> None:
        seen.append(var.get())
        tokens.append(var.set("kept"))

    def reader() -> None:
        seen.append(var.get())
        try:
            var.reset(tokens[-1])       # a token of another context: refused
        except ValueError:
            refused.append(True)
        var.set("dirty")
        if len(seen) == 6:
            done.set_result(None)

    def worker() -> None:
        var.set("poster")
        for callback in (keeper, reader, keeper, reader, reader, reader):
            loop.call_soon_threadsafe(callback)

    await _guarded_with_thread(worker, done)
    assert seen == ["poster"] * 6
    assert refused == [True] * 4
    assert [t.old_value for t in tokens] == ["poster", "poster"]


async def test_call_soon_threadsafe_held_handle_context_shows_the_callbacks_changes() -> None:
    """get_context() of a handle that ran is the context it ran in, with what
    the callback set there (asyncio's Handle keeps the copy it ran in)."""
    loop = asyncio.get_running_loop()
    var: contextvars.ContextVar[str] = contextvars.ContextVar("ts_held", default="unset")
    var.set("loop")
    handle = loop.call_soon_threadsafe(var.set, "callback")
    await _drain(loop)
    assert _handle_context(handle)[var] == "callback"
    assert var.get() == "loop"


async def test_call_soon_threadsafe_exception_handler_sees_the_failed_callbacks_context() -> None:
    """The handle passed to the exception handler answers get_context() with
    the context the failing callback ran in, its changes included."""
    loop = asyncio.get_running_loop()
    var: contextvars.ContextVar[str] = contextvars.ContextVar("ts_fail", default="unset")
    got = loop.create_future()

    def failing() -> None:
        var.set("before the error")
        raise ValueError("boom")

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if not got.done():
            try:
                got.set_result(_handle_context(context["handle"]).get(var))
            except BaseException as exc:   # pytest.skip included: hand it to the test
                got.set_exception(exc)

    loop.set_exception_handler(handler)
    try:
        await _guarded_with_thread(lambda: loop.call_soon_threadsafe(failing), got)
    finally:
        loop.set_exception_handler(None)
    assert got.result() == "before the error"


def _handle_context(handle: Any) -> contextvars.Context:
    """get_context() (asyncio's Handle has it from 3.12; _context before;
    plain uvloop's Handle has neither: the test is skipped there)."""
    get = getattr(handle, "get_context", None)
    if get is not None:
        return get()  # type: ignore[no-any-return]
    if not hasattr(handle, "_context"):
        pytest.skip(f"{type(handle).__name__} exposes no context")
    return handle._context  # type: ignore[no-any-return]


async def test_call_soon_threadsafe_contexts_stay_collectable() -> None:
    """A handle's context is seen by the cycle collector once the handle ran
    or was cancelled (the uvloop base hides a pending one from it; gcpark.h):
    a cycle through the context of a handle that ran is collected."""
    loop = asyncio.get_running_loop()
    var: contextvars.ContextVar[object] = contextvars.ContextVar("ts_gc")

    class Node:
        ctx: contextvars.Context | None = None

    ran = loop.call_soon_threadsafe(lambda: var.set(Node()))
    cancelled = loop.call_soon_threadsafe(print, "never")
    cancelled.cancel()
    await _drain(loop)
    ctx = _handle_context(ran)
    assert gc.is_tracked(ctx)
    assert gc.is_tracked(_handle_context(cancelled))
    node = ctx[var]
    node.ctx = ctx                      # context -> node -> context
    ref = weakref.ref(node)
    del ran, ctx, node
    gc.collect()
    assert ref() is None


async def test_call_soon_threadsafe_interleaved_with_timers() -> None:
    loop = asyncio.get_running_loop()
    n = 200
    timers_fired = 0
    thread_calls = 0
    done = loop.create_future()

    def check() -> None:
        if timers_fired == n and thread_calls == n and not done.done():
            done.set_result(None)

    def on_timer() -> None:
        nonlocal timers_fired
        timers_fired += 1
        check()

    def on_thread() -> None:
        nonlocal thread_calls
        thread_calls += 1
        check()

    def worker() -> None:
        for i in range(n):
            loop.call_soon_threadsafe(on_thread)
            if i % 20 == 0:
                time.sleep(0.001)

    for i in range(n):
        loop.call_later(i * 0.0002, on_timer)
    await _guarded_with_thread(worker, done)
    assert (timers_fired, thread_calls) == (n, n)


async def test_call_soon_before_a_threadsafe_call_it_caused_runs_first() -> None:
    """asyncio's FIFO: a callback queued with call_soon before a thread's
    call_soon_threadsafe (the thread posts only after it was queued) runs
    first, though the thread's post wakes the loop with the other one still
    queued (the uvloop base's same-iteration hand-off must not overtake it)."""
    loop = asyncio.get_running_loop()
    order: list[str] = []
    rounds = 50

    def queue_then_post(i: int) -> None:
        loop.call_soon(order.append, f"soon {i}")
        t = threading.Thread(target=loop.call_soon_threadsafe, args=(order.append, f"threadsafe {i}"))
        t.start()
        t.join(HANG_GUARD)

    for i in range(rounds):
        loop.call_soon(queue_then_post, i)
        while len(order) < 2 * (i + 1):
            await asyncio.sleep(0)
    assert order == [x for i in range(rounds) for x in (f"soon {i}", f"threadsafe {i}")]


async def test_threadsafe_calls_from_one_thread_keep_their_order_while_blocked() -> None:
    """Posts that find the loop blocked (or about to block) run in posting
    order, each exactly once, whether the loop takes them in the iteration
    that recognised them or in the next."""
    loop = asyncio.get_running_loop()
    got: list[int] = []
    done = loop.create_future()
    n = 300

    def on_loop(i: int) -> None:
        got.append(i)
        if i == n - 1:
            done.set_result(None)

    def worker() -> None:
        for i in range(n):
            loop.call_soon_threadsafe(on_loop, i)
            if i % 3 == 0:
                time.sleep(0.0002)

    await _guarded_with_thread(worker, done)
    assert got == list(range(n))


# --- run_coroutine_threadsafe ---------------------------------------------------


async def test_run_coroutine_threadsafe_returns_result() -> None:
    loop = asyncio.get_running_loop()

    async def add(a: int, b: int) -> tuple[int, bool]:
        await asyncio.sleep(0)
        return a + b, asyncio.get_running_loop() is loop

    results: list[tuple[int, bool]] = []
    errors: list[BaseException] = []
    finished = loop.create_future()

    def worker() -> None:
        try:
            for i in range(50):
                results.append(asyncio.run_coroutine_threadsafe(add(i, 1), loop).result(HANG_GUARD))
        except BaseException as exc:
            errors.append(exc)
        finally:
            loop.call_soon_threadsafe(finished.set_result, None)

    await _guarded_with_thread(worker, finished, HANG_GUARD * 2)
    assert errors == []
    assert results == [(i + 1, True) for i in range(50)]


async def test_run_coroutine_threadsafe_propagates_exception() -> None:
    loop = asyncio.get_running_loop()

    async def boom() -> None:
        await asyncio.sleep(0)
        raise ValueError("boom from coroutine")

    outcome: asyncio.Future[BaseException | None] = loop.create_future()

    def worker() -> None:
        try:
            asyncio.run_coroutine_threadsafe(boom(), loop).result(HANG_GUARD)
        except BaseException as exc:
            loop.call_soon_threadsafe(outcome.set_result, exc)
        else:
            loop.call_soon_threadsafe(outcome.set_result, None)

    exc = await _guarded_with_thread(worker, outcome)
    assert isinstance(exc, ValueError)
    assert str(exc) == "boom from coroutine"


async def test_run_coroutine_threadsafe_cancel_from_thread_cancels_task() -> None:
    loop = asyncio.get_running_loop()
    started = threading.Event()
    saw_cancel: asyncio.Future[bool] = loop.create_future()

    async def forever() -> None:
        started.set()
        await wait_until_cancelled(lambda: saw_cancel.set_result(True))

    cfut_box: list[Any] = []

    def worker() -> None:
        cfut = asyncio.run_coroutine_threadsafe(forever(), loop)
        cfut_box.append(cfut)
        if started.wait(HANG_GUARD):
            cfut.cancel()

    assert await _guarded_with_thread(worker, saw_cancel) is True
    await _drain(loop)
    assert cfut_box[0].cancelled()


async def test_run_coroutine_threadsafe_rejects_non_coroutine() -> None:
    loop = asyncio.get_running_loop()
    with pytest.raises(TypeError):
        asyncio.run_coroutine_threadsafe(lambda: None, loop)  # type: ignore[arg-type]


# --- exception handler -----------------------------------------------------------


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[asyncio.AbstractEventLoop, dict[str, Any]]] = []
        self.event = asyncio.Event()

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.calls.append((loop, context))
        self.event.set()


async def test_exception_handler_set_get_default() -> None:
    loop = asyncio.get_running_loop()
    assert loop.get_exception_handler() is None
    recorder = _Recorder()
    try:
        loop.set_exception_handler(recorder)
        assert loop.get_exception_handler() is recorder
        with pytest.raises(TypeError):
            loop.set_exception_handler(42)  # type: ignore[arg-type]
        assert loop.get_exception_handler() is recorder
        loop.set_exception_handler(None)
        assert loop.get_exception_handler() is None
    finally:
        loop.set_exception_handler(None)


@pytest.mark.parametrize("how", ["call_soon", "call_later", "call_soon_threadsafe", "thread"])
async def test_exception_in_callback_reaches_handler(how: str) -> None:
    loop = asyncio.get_running_loop()
    recorder = _Recorder()
    error = RuntimeError(f"callback failure via {how}")

    def bad() -> None:
        raise error

    loop.set_exception_handler(recorder)
    thread: threading.Thread | None = None
    handles: list[asyncio.Handle] = []
    try:
        if how == "call_soon":
            handles.append(loop.call_soon(bad))
        elif how == "call_later":
            handles.append(loop.call_later(0.001, bad))
        elif how == "call_soon_threadsafe":
            handles.append(loop.call_soon_threadsafe(bad))
        else:
            thread = _start_thread(lambda: handles.append(loop.call_soon_threadsafe(bad)))
        await guarded(recorder.event.wait())
        await _drain(loop)
    finally:
        loop.set_exception_handler(None)
        if thread is not None:
            thread.join(HANG_GUARD)
    assert len(recorder.calls) == 1
    handler_loop, context = recorder.calls[0]
    assert handler_loop is loop
    assert {"message", "exception", "handle"} <= set(context)
    assert context["exception"] is error
    assert isinstance(context["message"], str) and context["message"]
    assert context["handle"] is handles[0]


async def test_loop_keeps_running_after_callback_exception() -> None:
    loop = asyncio.get_running_loop()
    recorder = _Recorder()
    loop.set_exception_handler(recorder)
    ran: list[int] = []
    try:
        loop.call_soon(lambda: 1 / 0)
        loop.call_soon(ran.append, 1)
        await _drain(loop)
    finally:
        loop.set_exception_handler(None)
    assert ran == [1]
    assert isinstance(recorder.calls[0][1]["exception"], ZeroDivisionError)


async def test_unretrieved_task_exception_reaches_handler() -> None:
    loop = asyncio.get_running_loop()
    recorder = _Recorder()

    async def fail() -> None:
        raise KeyError("never retrieved")

    loop.set_exception_handler(recorder)
    try:
        task = loop.create_task(fail())
        await asyncio.wait([task])
        del task
        gc.collect()
        await guarded(recorder.event.wait())
    finally:
        loop.set_exception_handler(None)
    context = recorder.calls[0][1]
    assert {"message", "exception", "future"} <= set(context)
    assert isinstance(context["exception"], KeyError)
    assert isinstance(context["future"], asyncio.Task)


async def test_call_exception_handler_passes_context_through() -> None:
    loop = asyncio.get_running_loop()
    recorder = _Recorder()
    context = {"message": "custom", "exception": OSError("x"), "extra_key": 123}
    loop.set_exception_handler(recorder)
    try:
        loop.call_exception_handler(context)
    finally:
        loop.set_exception_handler(None)
    assert len(recorder.calls) == 1
    assert recorder.calls[0][0] is loop
    assert recorder.calls[0][1] == context


async def test_default_exception_handler_logs(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.get_running_loop()
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_soon(lambda: [][1])
        await _drain(loop)
        loop.default_exception_handler({"message": "direct default call"})
    messages = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert any("Exception in callback" in m for m in messages), messages
    assert any("direct default call" in m for m in messages), messages
    failing = [r for r in caplog.records if r.exc_info and r.exc_info[0] is IndexError]
    assert failing


async def test_failing_custom_handler_falls_back_to_default(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.get_running_loop()

    def broken_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        raise LookupError("handler itself failed")

    loop.set_exception_handler(broken_handler)
    try:
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            loop.call_soon(lambda: 1 / 0)
            await _drain(loop)
    finally:
        loop.set_exception_handler(None)
    messages = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert any("Unhandled error in exception handler" in m for m in messages), messages


# --- debug mode ------------------------------------------------------------------


async def test_set_debug_get_debug() -> None:
    loop = asyncio.get_running_loop()
    original = loop.get_debug()
    env_debug = sys.flags.dev_mode or bool(os.environ.get("PYTHONASYNCIODEBUG"))
    assert original == env_debug
    try:
        loop.set_debug(True)
        assert loop.get_debug() is True
        loop.set_debug(False)
        assert loop.get_debug() is False
    finally:
        loop.set_debug(original)


async def test_debug_mode_rejects_call_soon_from_other_thread() -> None:
    loop = asyncio.get_running_loop()
    with debug_mode(loop):
        errors = exceptions_in_thread(lambda: loop.call_soon(lambda: None))
        await _drain(loop)
    assert len(errors) == 1
    assert isinstance(errors[0], RuntimeError)
    assert "thread" in str(errors[0])


@pytest.mark.parametrize("scheduler", ["call_soon", "call_soon_threadsafe"])
async def test_debug_mode_adds_source_traceback(scheduler: str) -> None:
    loop = asyncio.get_running_loop()
    recorder = _Recorder()
    with debug_mode(loop):
        loop.set_exception_handler(recorder)
        try:
            getattr(loop, scheduler)(lambda: 1 / 0)
            await guarded(recorder.event.wait())
        finally:
            loop.set_exception_handler(None)
    context = recorder.calls[0][1]
    assert "source_traceback" in context
    assert context["source_traceback"]


async def test_debug_mode_reports_slow_callbacks(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.get_running_loop()
    original_slow = loop.slow_callback_duration
    with debug_mode(loop):
        loop.slow_callback_duration = 0.0
        try:
            with caplog.at_level(logging.WARNING, logger="asyncio"):
                loop.call_soon(lambda: None)
                await _drain(loop)
        finally:
            loop.slow_callback_duration = original_slow
    assert any(
        r.name == "asyncio" and r.getMessage().startswith("Executing") for r in caplog.records
    )
