"""Lifecycle conformance: cancellation and timeouts, async generator
finalisation, close/stop/run_forever/run_until_complete semantics, running a
loop from other threads, asyncio.Runner, uintr_loop.run, UintrPolicy and anyio.

Async tests run on both loops through the conftest hook; synchronous tests
take the ``loop_factory`` fixture and drive the loop themselves.
"""
from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import subprocess
import sys
import textwrap
import threading
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import pytest
from _support import (HANG_GUARD, REPO_ROOT, LoopFactory, child_env, exceptions_in_thread, free_threaded_build,
                      fresh_loop, gil_enabled, guarded, uvloop_deviation, wait_until_cancelled)

import uintr_loop
from uintr_loop._bases import default_base


def _loop_type(base: str | None = None) -> type:
    """The class of a uintr_loop made on ``base`` (None: the default base)."""
    if (base or default_base()) == "uvloop":
        return uintr_loop.UintrUVLoop  # type: ignore[no-any-return]
    return uintr_loop.UintrEventLoop

needs_311 = pytest.mark.skipif(sys.version_info < (3, 11), reason="API added in Python 3.11")


def _run_with_guard(loop: asyncio.AbstractEventLoop) -> bool:
    """run_forever with a hang guard; True if the guard (not the test) stopped it."""
    fired: list[bool] = []

    def guard() -> None:
        fired.append(True)
        loop.stop()

    handle = loop.call_later(HANG_GUARD, guard)
    try:
        loop.run_forever()
    finally:
        handle.cancel()
    return bool(fired)


# --- cancellation and timeouts ---------------------------------------------------


@pytest.mark.asyncio
async def test_task_cancel_raises_and_runs_finally() -> None:
    cleaned = asyncio.Event()
    started = asyncio.Event()

    async def worker() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned.set()

    task = asyncio.ensure_future(worker())
    await started.wait()
    assert task.cancel() is True
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert cleaned.is_set()
    assert task.cancel() is False


@pytest.mark.asyncio
async def test_cancel_message_is_propagated() -> None:
    task = asyncio.ensure_future(asyncio.sleep(3600))
    await asyncio.sleep(0)
    task.cancel("stop please")
    with pytest.raises(asyncio.CancelledError) as info:
        await task
    if sys.version_info >= (3, 11):
        assert info.value.args == ("stop please",)
    else:  # 3.10 raises a bare CancelledError chained to the message (bpo-45390)
        assert info.value.__context__.args == ("stop please",)


@pytest.mark.asyncio
async def test_cancellation_propagates_to_awaited_task() -> None:
    inner_cancelled = asyncio.Event()
    inner_started = asyncio.Event()

    async def inner() -> None:
        inner_started.set()
        await wait_until_cancelled(inner_cancelled.set)

    inner_task = asyncio.ensure_future(inner())

    async def outer() -> None:
        await inner_task

    outer_task = asyncio.ensure_future(outer())
    await inner_started.wait()
    await asyncio.sleep(0)
    outer_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer_task
    assert inner_cancelled.is_set()
    assert inner_task.cancelled()


@pytest.mark.asyncio
async def test_shield_protects_inner_task() -> None:
    loop = asyncio.get_running_loop()
    release = loop.create_future()

    async def protected() -> str:
        await release
        return "finished"

    inner = asyncio.ensure_future(protected())
    outer = asyncio.ensure_future(asyncio.shield(inner))
    await asyncio.sleep(0)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert not inner.done()
    release.set_result(None)
    assert await guarded(inner) == "finished"


@pytest.mark.asyncio
@needs_311
async def test_asyncio_timeout_raises_timeout_error() -> None:
    cancelled = asyncio.Event()

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01) as cm:
            await wait_until_cancelled(cancelled.set)
    assert cm.expired()
    assert cancelled.is_set()
    async with asyncio.timeout(HANG_GUARD) as cm2:
        await asyncio.sleep(0)
    assert not cm2.expired()


@pytest.mark.asyncio
async def test_wait_for_timeout_cancels_inner() -> None:
    cancelled = asyncio.Event()

    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(wait_until_cancelled(cancelled.set), 0.01)
    assert cancelled.is_set()
    assert await guarded(asyncio.sleep(0, "in time")) == "in time"


@pytest.mark.asyncio
@needs_311
async def test_task_group_cancels_siblings_on_error() -> None:
    sibling_cancelled = asyncio.Event()

    async def failing() -> None:
        await asyncio.sleep(0)
        raise ValueError("group failure")

    with pytest.raises(BaseExceptionGroup) as info:  # noqa: F821
        async with asyncio.TaskGroup() as tg:
            tg.create_task(wait_until_cancelled(sibling_cancelled.set))
            tg.create_task(failing())
    assert [type(e) for e in info.value.exceptions] == [ValueError]
    assert sibling_cancelled.is_set()


# --- async generators -------------------------------------------------------------


def test_shutdown_asyncgens_runs_finalizers(loop_factory: LoopFactory) -> None:
    finalized: list[str] = []

    async def agen(name: str) -> AsyncIterator[int]:
        try:
            for i in range(10):
                yield i
        finally:
            await asyncio.sleep(0)
            finalized.append(name)

    gens = [agen("a"), agen("b")]

    async def start() -> list[int]:
        return [await g.__anext__() for g in gens]

    with fresh_loop(loop_factory) as loop:
        assert loop.run_until_complete(start()) == [0, 0]
        assert finalized == []
        loop.run_until_complete(loop.shutdown_asyncgens())
        assert sorted(finalized) == ["a", "b"]
        loop.close()


@pytest.mark.asyncio
async def test_asyncgen_finalized_by_loop_when_garbage_collected() -> None:
    done = asyncio.Event()

    async def agen() -> AsyncIterator[int]:
        try:
            yield 1
            yield 2
        finally:
            await asyncio.sleep(0)
            done.set()

    g = agen()
    assert await g.__anext__() == 1
    del g
    gc.collect()
    await guarded(done.wait())


# --- close ---------------------------------------------------------------------------


def test_closed_loop_rejects_scheduling(loop_factory: LoopFactory) -> None:
    loop = loop_factory()
    assert not loop.is_closed()
    loop.close()
    assert loop.is_closed()
    loop.close()
    assert loop.is_closed()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.call_soon(lambda: None)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.call_later(0.1, lambda: None)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.call_at(loop.time() + 0.1, lambda: None)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.call_soon_threadsafe(lambda: None)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.run_forever()
    fut: asyncio.Future[None] = asyncio.Future(loop=loop)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.run_until_complete(fut)
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.create_task(coro)
    coro.close()


def test_call_soon_threadsafe_from_thread_after_close(loop_factory: LoopFactory) -> None:
    loop = loop_factory()
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()
    errors = exceptions_in_thread(lambda: loop.call_soon_threadsafe(lambda: None))
    assert len(errors) == 1
    assert isinstance(errors[0], RuntimeError)
    assert "Event loop is closed" in str(errors[0])


@pytest.mark.asyncio
async def test_closing_a_running_loop_raises() -> None:
    loop = asyncio.get_running_loop()
    with pytest.raises(RuntimeError, match="Cannot close a running event loop"):
        loop.close()
    assert not loop.is_closed()
    assert loop.is_running()
    fut = loop.create_future()
    loop.call_soon(fut.set_result, "still usable")
    assert await guarded(fut) == "still usable"


@pytest.mark.asyncio
async def test_running_loop_refuses_nested_run() -> None:
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    with pytest.raises(RuntimeError, match="already running"):
        loop.run_until_complete(fut)
    if (3, 13) <= sys.version_info < (3, 13, 3):
        # CPython 3.13.0-3.13.2 (gh-130145): a refused run_forever() resets the
        # running state of the loop it was called on; fixed in 3.13.3.
        fut.cancel()
        return
    with pytest.raises(RuntimeError, match="already running"):
        loop.run_forever()
    assert loop.is_running()
    fut.cancel()


def _open_fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="no /proc/self/fd to count open descriptors")
def test_closed_loops_release_file_descriptors(loop_factory: LoopFactory) -> None:
    def exercise(loop: asyncio.AbstractEventLoop) -> None:
        fut = loop.create_future()
        t = threading.Thread(target=loop.call_soon_threadsafe, args=(fut.set_result, None))
        t.start()
        loop.run_until_complete(guarded(fut))
        t.join(HANG_GUARD)

    warm = loop_factory()
    exercise(warm)
    warm.close()
    gc.collect()
    baseline = _open_fd_count()
    for _ in range(20):
        loop = loop_factory()
        try:
            exercise(loop)
        finally:
            loop.close()
    many = [loop_factory() for _ in range(32)]
    for loop in many:
        loop.close()
    del many, loop
    gc.collect()
    assert _open_fd_count() == baseline


CHILD_PRELUDE = """
import asyncio, os, sys, threading, time
if sys.argv[1].startswith("uintr-"):
    import functools, uintr_loop
    factory = functools.partial(uintr_loop.new_event_loop, base=sys.argv[1][len("uintr-"):])
elif sys.argv[1] == "uvloop":
    import uvloop
    factory = uvloop.new_event_loop
else:
    factory = asyncio.new_event_loop
"""
CHILD_FACTORIES = ["asyncio", "uvloop", "uintr-asyncio", "uintr-uvloop"]


def _run_child(factory_name: str, body: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CHILD_PRELUDE + textwrap.dedent(body), factory_name],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        env=child_env(),
    )


@pytest.mark.parametrize("factory_name", CHILD_FACTORIES)
def test_close_while_other_threads_keep_posting(factory_name: str, request: pytest.FixtureRequest) -> None:
    """Run in a child: a crash in the wakeup path must fail this test, not the suite."""
    if factory_name == "uvloop" and free_threaded_build() and not gil_enabled():
        # Plain uvloop's own wakeup path, not uintr_loop's (the uvloop base posts
        # through its mailbox and passes): built from its sdist on 3.13t, for
        # which uvloop publishes no wheel, it was seen to die with SIGSEGV here.
        # Not strict: the crash is a race.
        request.applymarker(pytest.mark.xfail(
            strict=False, reason="plain uvloop without the GIL (3.13t) can crash when closed "
            "while other threads call its call_soon_threadsafe"))
    proc = _run_child(
        factory_name,
        """
        outcomes = []
        for round_ in range(5):
            loop = factory()
            seen = [0]
            enough = asyncio.Event()

            def tick():
                seen[0] += 1
                if seen[0] == 2000:
                    enough.set()

            def poster(results):
                try:
                    for i in range(1_000_000):
                        loop.call_soon_threadsafe(tick)
                        if i % 8 == 0:
                            time.sleep(0)
                    results.append("never closed")
                except RuntimeError as exc:
                    results.append(str(exc))

            results = []
            threads = [threading.Thread(target=poster, args=(results,)) for _ in range(4)]
            for t in threads:
                t.start()
            loop.run_until_complete(asyncio.wait_for(enough.wait(), 10))
            loop.close()
            for t in threads:
                t.join(10)
            outcomes.append(sorted(set(results)) == ["Event loop is closed"] and len(results) == 4)
        print("OUTCOMES", outcomes, flush=True)
        """,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-3000:])
    assert proc.stdout.strip() == "OUTCOMES " + str([True] * 5)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork unavailable")
@pytest.mark.parametrize("factory_name", CHILD_FACTORIES)
def test_new_loop_in_forked_child_and_parent_keeps_working(factory_name: str) -> None:
    proc = _run_child(
        factory_name,
        """
        async def roundtrip(tag):
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
            t = threading.Thread(target=loop.call_soon_threadsafe, args=(fut.set_result, tag))
            t.start()
            try:
                return await asyncio.wait_for(fut, 10)
            finally:
                t.join(10)

        parent_loop = factory()
        assert parent_loop.run_until_complete(roundtrip("before")) == "before"
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                child_loop = factory()
                ok = child_loop.run_until_complete(roundtrip("child")) == "child"
                ok = ok and child_loop.run_until_complete(asyncio.wait_for(asyncio.to_thread(pow, 2, 5), 10)) == 32
                child_loop.run_until_complete(child_loop.shutdown_default_executor())
                child_loop.close()
                code = 0 if ok else 2
            finally:
                os._exit(code)
        during = parent_loop.run_until_complete(roundtrip("during"))
        _, status = os.waitpid(pid, 0)
        after = parent_loop.run_until_complete(roundtrip("after"))
        parent_loop.close()
        print("RESULT", during, os.waitstatus_to_exitcode(status), after, flush=True)
        """,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-3000:])
    assert proc.stdout.strip() == "RESULT during 0 after"


# --- run_until_complete / stop / run_forever -------------------------------------------


def test_run_until_complete_result_and_exception(loop_factory: LoopFactory) -> None:
    async def value() -> int:
        await asyncio.sleep(0)
        return 7

    async def boom() -> None:
        await asyncio.sleep(0)
        raise LookupError("from coroutine")

    with fresh_loop(loop_factory) as loop:
        assert not loop.is_running()
        assert loop.run_until_complete(value()) == 7
        with pytest.raises(LookupError, match="from coroutine"):
            loop.run_until_complete(boom())
        fut = loop.create_future()
        loop.call_soon(fut.set_result, "plain future")
        assert loop.run_until_complete(fut) == "plain future"
        assert not loop.is_running()


def test_run_until_complete_stops_with_other_callbacks_pending(loop_factory: LoopFactory) -> None:
    ticks: list[int] = []

    async def ticker() -> None:
        while True:
            ticks.append(1)
            await asyncio.sleep(0)

    with fresh_loop(loop_factory) as loop:
        bg = loop.create_task(ticker())
        assert loop.run_until_complete(asyncio.sleep(0.01, "done")) == "done"
        assert ticks
        assert not bg.done()
        bg.cancel()
        with pytest.raises(asyncio.CancelledError):
            loop.run_until_complete(bg)


def test_stop_before_run_forever_runs_one_iteration(loop_factory: LoopFactory) -> None:
    order: list[str] = []
    with fresh_loop(loop_factory) as loop:

        def first() -> None:
            order.append("first")
            loop.call_soon(order.append, "scheduled-by-first")

        loop.call_soon(first)
        loop.call_soon(order.append, "second")
        loop.stop()
        assert _run_with_guard(loop) is False
        assert order == ["first", "second"]
        assert not loop.is_running()

        loop.stop()
        assert _run_with_guard(loop) is False
        assert order == ["first", "second", "scheduled-by-first"]


def test_stop_from_callback_and_run_forever_again(loop_factory: LoopFactory) -> None:
    runs: list[int] = []
    with fresh_loop(loop_factory) as loop:
        for i in range(3):
            loop.call_later(0.001, lambda i=i: (runs.append(i), loop.stop()))
            assert _run_with_guard(loop) is False
        assert runs == [0, 1, 2]


def test_stop_from_other_thread_wakes_idle_run_forever(loop_factory: LoopFactory) -> None:
    with fresh_loop(loop_factory) as loop:
        running = threading.Event()

        def stopper() -> None:
            if running.wait(HANG_GUARD):
                loop.call_soon_threadsafe(loop.stop)

        for _ in range(20):
            running.clear()
            loop.call_soon(running.set)
            t = threading.Thread(target=stopper)
            t.start()
            try:
                assert _run_with_guard(loop) is False
            finally:
                t.join(HANG_GUARD)


def test_call_soon_threadsafe_while_not_running_is_processed_next_run(loop_factory: LoopFactory) -> None:
    with fresh_loop(loop_factory) as loop:
        loop.run_until_complete(asyncio.sleep(0))
        got: list[int] = []
        fut = loop.create_future()

        def worker() -> None:
            for i in range(100):
                loop.call_soon_threadsafe(got.append, i)
            loop.call_soon_threadsafe(fut.set_result, None)

        t = threading.Thread(target=worker)
        t.start()
        t.join(HANG_GUARD)
        loop.run_until_complete(guarded(fut))
        assert got == list(range(100))


def test_loop_created_in_one_thread_run_in_another(loop_factory: LoopFactory) -> None:
    loop = loop_factory()
    result: list[Any] = []
    box: list[asyncio.Future[int]] = []
    ready = threading.Event()

    async def main() -> int:
        box.append(loop.create_future())
        ready.set()
        return await guarded(box[0])

    def runner() -> None:
        try:
            result.append(loop.run_until_complete(main()))
        except BaseException as exc:
            result.append(exc)

    try:
        t = threading.Thread(target=runner)
        t.start()
        assert ready.wait(HANG_GUARD)
        loop.call_soon_threadsafe(box[0].set_result, 99)
        t.join(HANG_GUARD)
        assert result == [99]
    finally:
        if not loop.is_running():
            loop.close()


def test_two_loops_in_two_threads_wake_each_other(loop_factory: LoopFactory) -> None:
    rounds = 200
    loops = [loop_factory(), loop_factory()]
    inboxes: list[asyncio.Queue[int]] = [asyncio.Queue(), asyncio.Queue()]
    results: list[Any] = []

    async def player(me: int) -> int:
        other = loops[1 - me]
        received = 0
        if me == 0:
            other.call_soon_threadsafe(inboxes[1].put_nowait, 0)
        while True:
            n = await guarded(inboxes[me].get())
            received += 1
            if n == rounds:
                return received
            other.call_soon_threadsafe(inboxes[1 - me].put_nowait, n + 1)
            if n + 1 == rounds:
                return received

    def thread_main(me: int) -> None:
        try:
            results.append(loops[me].run_until_complete(player(me)))
        except BaseException as exc:
            results.append(exc)

    threads = [threading.Thread(target=thread_main, args=(i,)) for i in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(HANG_GUARD * 2)
        assert sorted(results) == [rounds // 2, rounds // 2 + 1]
    finally:
        for loop in loops:
            if not loop.is_running():
                loop.close()


# --- Runner, run(), policy, anyio ------------------------------------------------------


@needs_311
def test_asyncio_runner_with_loop_factory(loop_factory: LoopFactory) -> None:
    async def main(tag: str) -> tuple[str, asyncio.AbstractEventLoop]:
        await asyncio.sleep(0)
        await asyncio.to_thread(lambda: None)
        return tag, asyncio.get_running_loop()

    with probe_type(loop_factory) as expected_type:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            loop = runner.get_loop()
            assert type(loop) is expected_type
            assert runner.run(main("one")) == ("one", loop)
            assert runner.run(main("two")) == ("two", loop)
        assert loop.is_closed()


@contextlib.contextmanager
def probe_type(factory: LoopFactory) -> Iterator[type]:
    probe = factory()
    try:
        yield type(probe)
    finally:
        probe.close()


RUN_FUNCTIONS = [pytest.param(asyncio.run, id="asyncio.run"), pytest.param(uintr_loop.run, id="uintr_loop.run")]


@pytest.mark.parametrize("run", RUN_FUNCTIONS)
def test_run_returns_value_and_closes_loop(run: Callable[..., Any]) -> None:
    seen: list[asyncio.AbstractEventLoop] = []

    async def main() -> str:
        seen.append(asyncio.get_running_loop())
        await asyncio.sleep(0)
        return "result"

    assert run(main()) == "result"
    assert seen[0].is_closed()


@pytest.mark.parametrize("run", RUN_FUNCTIONS)
def test_run_propagates_exception(run: Callable[..., Any]) -> None:
    async def main() -> None:
        await asyncio.sleep(0)
        raise ArithmeticError("from main")

    with pytest.raises(ArithmeticError, match="from main"):
        run(main())


@pytest.mark.parametrize("run", RUN_FUNCTIONS)
@pytest.mark.parametrize("debug", [True, False])
def test_run_debug_flag(run: Callable[..., Any], debug: bool) -> None:
    async def main() -> bool:
        return asyncio.get_running_loop().get_debug()

    assert run(main(), debug=debug) is debug


@pytest.mark.parametrize("run", RUN_FUNCTIONS)
def test_run_cancels_leftover_tasks_and_finalizes_asyncgens(run: Callable[..., Any]) -> None:
    events: list[str] = []
    keep: list[Any] = []

    async def agen() -> AsyncIterator[int]:
        try:
            yield 1
            yield 2
        finally:
            events.append("agen finalized")

    async def main() -> None:
        keep.append(asyncio.ensure_future(wait_until_cancelled(lambda: events.append("task cancelled"))))
        g = agen()
        keep.append(g)
        await g.__anext__()
        await asyncio.sleep(0)

    run(main())
    assert sorted(events) == ["agen finalized", "task cancelled"]


@pytest.mark.parametrize("run", RUN_FUNCTIONS)
def test_run_refuses_running_loop(run: Callable[..., Any]) -> None:
    async def inner() -> None:
        pass

    async def main() -> str | None:
        coro = inner()
        try:
            run(coro)
        except RuntimeError as exc:
            return str(exc)
        finally:
            coro.close()
        return None

    message = run(main())
    gc.collect()
    assert message is not None and "running event loop" in message


# asyncio.run's refusal of a non-awaitable changed in 3.14 (it takes any
# awaitable there and raises TypeError for the rest): both run()s follow the
# Python they run on, which this test checks against stock asyncio too.
NOT_A_COROUTINE = TypeError if sys.version_info >= (3, 14) else ValueError


@pytest.mark.parametrize("run", RUN_FUNCTIONS)
def test_run_rejects_non_coroutine(run: Callable[..., Any]) -> None:
    with pytest.raises(NOT_A_COROUTINE):
        run(lambda: None)


@pytest.mark.skipif(sys.version_info < (3, 14), reason="awaitables other than coroutines: 3.14+")
@pytest.mark.parametrize("run", RUN_FUNCTIONS)
def test_run_takes_any_awaitable_on_314(run: Callable[..., Any]) -> None:
    class Awaitable:
        def __await__(self) -> Any:
            yield from asyncio.sleep(0).__await__()
            return "awaited"

    assert run(Awaitable()) == "awaited"


@pytest.mark.parametrize("base", [None, "asyncio", "uvloop"])
def test_uintr_run_uses_uintr_loop(base: str | None) -> None:
    async def main() -> asyncio.AbstractEventLoop:
        await asyncio.to_thread(lambda: None)
        return asyncio.get_running_loop()

    loop = uintr_loop.run(main(), base=base)
    assert type(loop) is _loop_type(base)
    assert loop.base == (base or default_base())  # type: ignore[attr-defined]
    assert loop.is_closed()


@contextlib.contextmanager
def _policy(policy: asyncio.AbstractEventLoopPolicy | None) -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = asyncio.get_event_loop_policy()
        asyncio.set_event_loop_policy(policy)
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.set_event_loop_policy(old)


@pytest.mark.parametrize("base", [None, "asyncio", "uvloop"])
def test_policy_makes_uintr_loops(base: str | None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        policy = uintr_loop.UintrPolicy(base=base)
        assert isinstance(policy, asyncio.AbstractEventLoopPolicy)  # warns on 3.14

    async def main() -> asyncio.AbstractEventLoop:
        await asyncio.to_thread(lambda: None)
        proc = await asyncio.create_subprocess_exec("true")
        assert await guarded(proc.wait()) == 0
        return asyncio.get_running_loop()

    with _policy(policy):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            assert asyncio.get_event_loop_policy() is policy
        loop = asyncio.run(main())
        assert type(loop) is _loop_type(base)
        assert loop.is_closed()
        fresh = asyncio.new_event_loop()
        try:
            assert type(fresh) is _loop_type(base)
        finally:
            fresh.close()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert not isinstance(asyncio.get_event_loop_policy(), uintr_loop.UintrPolicy)
    stock = asyncio.new_event_loop()
    try:
        assert not isinstance(stock, (uintr_loop.UintrEventLoop, uintr_loop.UintrUVLoop))
    finally:
        stock.close()


def test_anyio_with_loop_factory(loop_factory: LoopFactory) -> None:
    async def main() -> tuple[type, int, str]:
        loop_type = type(asyncio.get_running_loop())
        results: list[int] = []

        async def child(i: int) -> None:
            await anyio.sleep(0)
            results.append(await anyio.to_thread.run_sync(pow, i, 2))

        async with anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(child, i)

        def from_worker() -> str:
            return anyio.from_thread.run(anyio_echo, "via from_thread")

        echoed = await anyio.to_thread.run_sync(from_worker)
        with anyio.move_on_after(0.01) as scope:
            await anyio.sleep_forever()
        assert scope.cancelled_caught
        return loop_type, sum(results), echoed

    with probe_type(loop_factory) as expected_type:
        loop_type, total, echoed = anyio.run(
            main, backend="asyncio", backend_options={"loop_factory": loop_factory}
        )
    assert loop_type is expected_type
    assert total == sum(i * i for i in range(10))
    assert echoed == "via from_thread"


async def anyio_echo(value: str) -> str:
    await anyio.sleep(0)
    return value


def test_anyio_runs_on_uintr_loop() -> None:
    async def main() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    loop = anyio.run(main, backend="asyncio", backend_options={"loop_factory": uintr_loop.new_event_loop})
    assert type(loop) is _loop_type()


@uvloop_deviation(
    "a KeyboardInterrupt escaping a callback leaves the interrupted run_until_complete's "
    "done callback queued; it stops the next run before its future completes"
)
def test_keyboard_interrupt_leaves_no_stale_stop(loop_factory: LoopFactory) -> None:
    async def immediate() -> int:
        return 1

    async def three_steps() -> str:
        for _ in range(3):
            await asyncio.sleep(0)
        return "done"

    def interrupt() -> None:
        raise KeyboardInterrupt

    with fresh_loop(loop_factory) as loop:
        loop.call_soon(interrupt)
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(immediate())
        outcome = loop.run_until_complete(three_steps())
    assert outcome == "done"


def test_uintr_loop_statistics_account_for_threadsafe_posts(uintr_only_loop: Any) -> None:
    loop = uintr_only_loop
    n = 200

    async def main() -> None:
        done = loop.create_future()
        got: list[int] = []

        def on_loop(i: int) -> None:
            got.append(i)
            if len(got) == n:
                done.set_result(None)

        def worker() -> None:
            for i in range(n):
                loop.call_soon_threadsafe(on_loop, i)

        t = threading.Thread(target=worker)
        t.start()
        try:
            await guarded(done)
        finally:
            t.join(HANG_GUARD)

    before = loop.statistics()
    loop.run_until_complete(main())
    after = loop.statistics()
    assert after.mode == "software"
    if loop.base == "asyncio":
        # every call_soon_threadsafe posts (asyncio's _write_to_self)
        assert after.posted - before.posted >= n
    else:
        # the mailbox posts only when it goes from empty to non-empty
        assert 1 <= after.posted - before.posted <= n
    assert after.posted == after.notifications + after.coalesced + after.suppressed
    for field in ("posted", "notifications", "coalesced", "suppressed", "delivered", "spurious"):
        assert isinstance(getattr(after, field), int)
        assert getattr(after, field) >= getattr(before, field)
