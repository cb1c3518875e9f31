"""Executor conformance: run_in_executor (default, thread and process pools),
asyncio.to_thread, set_default_executor and shutdown_default_executor.

Every test runs on stock asyncio and on uintr_loop (see conftest.py).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import multiprocessing
import sys
import threading

import pytest
from _support import HANG_GUARD, debug_mode, guarded, uvloop_deviation

pytestmark = pytest.mark.asyncio


def _thread_info(x: int, y: int = 0) -> tuple[int, int, str]:
    return x + y, threading.get_ident(), threading.current_thread().name


def _raise(exc: BaseException) -> None:
    raise exc


async def test_run_in_executor_default_returns_result_from_other_thread() -> None:
    loop = asyncio.get_running_loop()
    total, ident, _ = await guarded(loop.run_in_executor(None, _thread_info, 40, 2))
    assert total == 42
    assert ident != threading.get_ident()


@pytest.mark.parametrize("exc", [ValueError("bad value"), KeyError("k"), ZeroDivisionError()])
async def test_run_in_executor_propagates_exception(exc: BaseException) -> None:
    loop = asyncio.get_running_loop()
    with pytest.raises(type(exc)) as info:
        await guarded(loop.run_in_executor(None, _raise, exc))
    assert info.value is exc


async def test_run_in_executor_custom_thread_pool() -> None:
    loop = asyncio.get_running_loop()
    with concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="custom-pool") as pool:
        jobs = [loop.run_in_executor(pool, _thread_info, i) for i in range(20)]
        results = await guarded(asyncio.gather(*jobs))
    assert [r[0] for r in results] == list(range(20))
    assert all(r[2].startswith("custom-pool") for r in results)
    assert len({r[1] for r in results}) <= 2


async def test_many_executor_jobs_none_lost() -> None:
    loop = asyncio.get_running_loop()
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        futures = [loop.run_in_executor(pool, pow, i, 2) for i in range(2000)]
        results = await guarded(asyncio.gather(*futures), HANG_GUARD * 2)
    assert results == [i * i for i in range(2000)]


async def test_executor_job_blocking_until_loop_signals() -> None:
    """Round trips loop -> worker -> loop while the loop is otherwise idle."""
    loop = asyncio.get_running_loop()
    gate = threading.Event()

    def wait_for_gate() -> str:
        if not gate.wait(HANG_GUARD):
            return "gate timeout"
        return "through"

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        for _ in range(30):
            gate.clear()
            fut = loop.run_in_executor(pool, wait_for_gate)
            await asyncio.sleep(0)
            assert not fut.done()
            loop.call_soon(gate.set)
            assert await guarded(fut) == "through"


async def test_cancel_executor_future() -> None:
    loop = asyncio.get_running_loop()
    release = threading.Event()
    started = threading.Event()

    def blocker() -> str:
        started.set()
        release.wait(HANG_GUARD)
        return "done"

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        fut = loop.run_in_executor(pool, blocker)
        queued = loop.run_in_executor(pool, blocker)
        await guarded(loop.run_in_executor(None, started.wait, HANG_GUARD))
        fut.cancel()
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fut
        with pytest.raises(asyncio.CancelledError):
            await queued
        release.set()
    assert fut.cancelled() and queued.cancelled()


async def test_cancelled_before_it_starts_the_job_never_runs() -> None:
    loop = asyncio.get_running_loop()
    release = threading.Event()
    started = threading.Event()
    ran: list[str] = []

    def blocker() -> None:
        started.set()
        release.wait(HANG_GUARD)

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        first = loop.run_in_executor(pool, blocker)
        queued = loop.run_in_executor(pool, ran.append, "queued")
        await guarded(loop.run_in_executor(None, started.wait, HANG_GUARD))
        queued.cancel()
        for _ in range(3):          # asyncio cancels the concurrent future in a callback
            await asyncio.sleep(0)
        release.set()
        await guarded(first)
        assert await guarded(loop.run_in_executor(pool, ran.append, "after")) is None
    assert queued.cancelled()
    assert ran == ["after"]


async def test_jobs_the_executor_drops_unrun_are_cancelled() -> None:
    """shutdown(cancel_futures=True) drops the queued jobs: their futures
    are cancelled, not left pending."""
    loop = asyncio.get_running_loop()
    release = threading.Event()
    started = threading.Event()
    ran: list[int] = []

    def blocker() -> str:
        started.set()
        release.wait(HANG_GUARD)
        return "done"

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    first = loop.run_in_executor(pool, blocker)
    queued = [loop.run_in_executor(pool, ran.append, i) for i in range(3)]
    await guarded(loop.run_in_executor(None, started.wait, HANG_GUARD))
    pool.shutdown(wait=False, cancel_futures=True)
    release.set()
    assert await guarded(first) == "done"
    for fut in queued:
        with pytest.raises(asyncio.CancelledError):
            await guarded(fut)
    pool.shutdown(wait=True)
    assert ran == []


class _CountingPool(concurrent.futures.ThreadPoolExecutor):
    """A subclass that overrides submit(): its jobs must go through it."""

    submitted = 0

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        type(self).submitted += 1
        return super().submit(fn, *args, **kwargs)


async def test_a_thread_pool_subclass_gets_its_jobs_through_its_submit() -> None:
    loop = asyncio.get_running_loop()
    _CountingPool.submitted = 0
    with _CountingPool(max_workers=2) as pool:
        results = await guarded(asyncio.gather(*(loop.run_in_executor(pool, pow, i, 2) for i in range(5))))
    assert results == [i * i for i in range(5)]
    assert _CountingPool.submitted == 5


def _fail_init() -> None:
    raise RuntimeError("initializer fails")


async def test_a_pool_whose_initializer_fails_raises_broken_thread_pool() -> None:
    """The pool drops the queued job with BrokenThreadPool, which reaches
    the awaiting task (as through wrap_future); the loop goes on."""
    loop = asyncio.get_running_loop()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, initializer=_fail_init)
    try:
        with pytest.raises(concurrent.futures.thread.BrokenThreadPool):
            await guarded(loop.run_in_executor(pool, pow, 2, 2))
        with pytest.raises(concurrent.futures.thread.BrokenThreadPool):
            loop.run_in_executor(pool, pow, 2, 2)
    finally:
        pool.shutdown(wait=True)
    assert await guarded(loop.run_in_executor(None, pow, 3, 2)) == 9


@pytest.mark.skipif(not hasattr(concurrent.futures, "InterpreterPoolExecutor"),
                    reason="InterpreterPoolExecutor is new in Python 3.14 (probed concurrent.futures)")
async def test_run_in_interpreter_pool() -> None:
    """A ThreadPoolExecutor subclass whose jobs run in subinterpreters: the
    function is shared with the subinterpreter, not run in this one."""
    loop = asyncio.get_running_loop()
    with concurrent.futures.InterpreterPoolExecutor(max_workers=1) as pool:  # type: ignore[attr-defined]
        assert await guarded(loop.run_in_executor(pool, pow, 3, 4), HANG_GUARD * 3) == 81
        with pytest.raises(ZeroDivisionError):
            await guarded(loop.run_in_executor(pool, divmod, 1, 0), HANG_GUARD * 3)


async def test_an_answer_that_cannot_be_posted_is_logged_and_the_worker_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    """The worker's post of the answer raises (the loop is not closed):
    concurrent.futures' logger has it, and the pool's only worker stays
    alive for the next job."""
    loop = asyncio.get_running_loop()
    real = loop.call_soon_threadsafe
    own = "call_soon_threadsafe" in vars(loop)
    refused: list[bool] = []

    def refuse_once(*args: object, **kwargs: object) -> object:
        if not refused and threading.current_thread() is not threading.main_thread():
            refused.append(True)
            raise RuntimeError("post refused")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    gate = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        lost = loop.run_in_executor(pool, gate.wait, HANG_GUARD)
        loop.call_soon_threadsafe = refuse_once  # type: ignore[method-assign]
        try:
            with caplog.at_level(logging.ERROR, logger="concurrent.futures"):
                gate.set()
                assert await guarded(loop.run_in_executor(pool, pow, 3, 3)) == 27
        finally:
            if own:
                loop.call_soon_threadsafe = real  # type: ignore[method-assign]
            else:
                del loop.call_soon_threadsafe
        assert not lost.done()
        lost.cancel()
    assert refused == [True]
    logged = [r for r in caplog.records if r.name == "concurrent.futures" and r.exc_info]
    assert [type(r.exc_info[1]) for r in logged] == [RuntimeError]  # type: ignore[index]


async def test_executor_job_returning_after_the_future_was_cancelled() -> None:
    """The answer of a job already running when its future is cancelled is
    dropped: nothing reaches the exception handler, the loop goes on."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    release = threading.Event()
    started = threading.Event()

    def blocker() -> str:
        started.set()
        release.wait(HANG_GUARD)
        return "late"

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        fut = loop.run_in_executor(pool, blocker)
        await guarded(loop.run_in_executor(None, started.wait, HANG_GUARD))
        fut.cancel()
        release.set()
        # the pool answers in order: once this one is back, so was the first
        assert await guarded(loop.run_in_executor(pool, int, "7")) == 7
    for _ in range(3):
        await asyncio.sleep(0)
    assert fut.cancelled()
    assert errors == []


async def test_run_in_executor_rejects_coroutine_function_in_debug() -> None:
    loop = asyncio.get_running_loop()

    async def coro_fn() -> None:
        pass

    with debug_mode(loop), pytest.raises(TypeError):
        loop.run_in_executor(None, coro_fn)


async def test_run_in_process_pool() -> None:
    loop = asyncio.get_running_loop()
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        jobs = [loop.run_in_executor(pool, pow, 2, n) for n in range(10)]
        results = await guarded(asyncio.gather(*jobs), HANG_GUARD * 3)
        with pytest.raises(ZeroDivisionError):
            await guarded(loop.run_in_executor(pool, divmod, 1, 0))
    assert results == [2**n for n in range(10)]


async def test_to_thread_args_kwargs_and_result() -> None:
    total, ident, _ = await guarded(asyncio.to_thread(_thread_info, 1, y=2))
    assert total == 3
    assert ident != threading.get_ident()


async def test_to_thread_propagates_context_and_exceptions() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("to_thread_var", default="unset")
    token = var.set("visible in thread")
    try:
        assert await guarded(asyncio.to_thread(var.get)) == "visible in thread"
    finally:
        var.reset(token)
    with pytest.raises(OSError, match="from thread"):
        await guarded(asyncio.to_thread(_raise, OSError("from thread")))


async def test_to_thread_many_concurrent() -> None:
    results = await guarded(asyncio.gather(*(asyncio.to_thread(_thread_info, i) for i in range(200))))
    assert [r[0] for r in results] == list(range(200))


async def test_default_executor_back_to_back_and_after_pauses() -> None:
    # Round trips one after another (a loop's pool may keep a worker
    # spinning for the next job), then with pauses long enough for idle
    # workers to go to sleep: every answer arrives, in order.
    for i in range(300):
        assert (await guarded(asyncio.to_thread(_thread_info, i)))[0] == i
    for i in range(20):
        await asyncio.sleep(0.004)
        assert (await guarded(asyncio.to_thread(_thread_info, i)))[0] == i


async def test_default_executor_fast_jobs_are_not_held_up_by_blocked_ones() -> None:
    # Workers blocked in their jobs (and so holding no GIL) while others
    # take a stream of short jobs; then the blocked ones are let go.
    loop = asyncio.get_running_loop()
    release = threading.Event()
    started = threading.Semaphore(0)

    def blocked(i: int) -> int:
        started.release()
        release.wait(HANG_GUARD)
        return i

    held = [loop.run_in_executor(None, blocked, i) for i in range(3)]
    for _ in range(3):
        assert await guarded(asyncio.to_thread(started.acquire, True, HANG_GUARD))
    quick = await guarded(asyncio.gather(*(asyncio.to_thread(pow, i, 2) for i in range(500))))
    assert quick == [i * i for i in range(500)]
    assert not any(f.done() for f in held)
    release.set()
    assert await guarded(asyncio.gather(*held)) == [0, 1, 2]


async def test_set_default_executor() -> None:
    loop = asyncio.get_running_loop()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="my-default")
    try:
        loop.set_default_executor(pool)
        _, _, name = await guarded(loop.run_in_executor(None, _thread_info, 0))
        assert name.startswith("my-default")
        _, _, name = await guarded(asyncio.to_thread(_thread_info, 0))
        assert name.startswith("my-default")
    finally:
        await loop.shutdown_default_executor()
        pool.shutdown(wait=True)


@uvloop_deviation("uvloop's set_default_executor accepts any Executor (asyncio requires a ThreadPoolExecutor since 3.11)")
async def test_set_default_executor_rejects_non_thread_pool() -> None:
    loop = asyncio.get_running_loop()

    class NotAThreadPool(concurrent.futures.Executor):
        pass

    if sys.version_info >= (3, 11):
        with pytest.raises(TypeError):
            loop.set_default_executor(NotAThreadPool())  # type: ignore[arg-type]
    else:  # 3.10 only warns (TypeError since 3.11), then installs it
        with pytest.warns(DeprecationWarning, match="ThreadPoolExecutor"):
            loop.set_default_executor(NotAThreadPool())  # type: ignore[arg-type]


async def test_shutdown_default_executor_waits_for_running_work() -> None:
    loop = asyncio.get_running_loop()
    started = threading.Event()
    release = threading.Event()
    finished: list[str] = []

    def job() -> str:
        started.set()
        release.wait(HANG_GUARD)
        finished.append("job")
        return "job result"

    job_fut = loop.run_in_executor(None, job)
    assert await guarded(asyncio.to_thread(started.wait, HANG_GUARD))
    shutdown = asyncio.ensure_future(loop.shutdown_default_executor())
    await asyncio.sleep(0.02)
    assert not shutdown.done()
    assert finished == []
    release.set()
    await guarded(shutdown)
    assert finished == ["job"]
    assert await guarded(job_fut) == "job result"


async def test_run_in_executor_after_shutdown_default_executor_raises() -> None:
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, int, "5") == 5
    await guarded(loop.shutdown_default_executor())
    with pytest.raises(RuntimeError, match="shutdown"):
        loop.run_in_executor(None, int, "6")
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        assert await guarded(loop.run_in_executor(pool, int, "7")) == 7


async def test_shutdown_default_executor_without_executor_is_noop() -> None:
    loop = asyncio.get_running_loop()
    await guarded(loop.shutdown_default_executor())
    await guarded(loop.shutdown_default_executor())

