"""deadline() / preemptible(): stopping Python code that never awaits.

These run on stock asyncio and on uintr_loop (the mechanism needs no UPID);
the task-receiver interactions are uintr-only. No timing is asserted: a CPU
loop spins until it is interrupted or until a generous safety limit, and the
tests check *whether* and *where* the interruption landed.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from types import FrameType

import pytest

import uintr_loop
from _support import HANG_GUARD, child_env, guarded
from uintr_loop import DeadlineExceeded, PreemptionUnavailableError, deadline, preemptible
from uintr_loop._doorbell import RETRY_PROTECTED_NS, timer as _timer

SAFETY = 20.0   # a spin that lasts this long was not preempted: fail, do not hang



def run_child(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (preemption state is per process)."""
    return subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True,
                          text=True, timeout=60)

def spin(limit: float = SAFETY) -> bool:
    """Burn CPU in pure Python; False if the safety limit ended it."""
    end = time.monotonic() + limit
    x = 0
    while time.monotonic() < end:
        x += 1
    return False


@pytest.mark.asyncio
async def test_deadline_interrupts_cpu_bound_code_and_finally_runs() -> None:
    ran_finally = False
    other_ticks = 0

    async def ticker() -> None:
        nonlocal other_ticks
        while True:
            await asyncio.sleep(0.001)
            other_ticks += 1

    async def runaway() -> str:
        nonlocal ran_finally
        try:
            async with deadline(0.05):
                spin()
                return "not preempted"
        except TimeoutError as exc:
            assert isinstance(exc.__cause__, DeadlineExceeded)
            return "preempted"
        finally:
            ran_finally = True

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.005)
    assert await guarded(asyncio.create_task(runaway())) == "preempted"
    assert ran_finally
    before = other_ticks
    await asyncio.sleep(0.02)
    assert other_ticks > before          # the loop and the other task are unharmed
    tick.cancel()
    task = asyncio.current_task()
    assert task is not None
    if sys.version_info >= (3, 11):
        assert task.cancelling() == 0


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout exists from 3.11 (probed sys.version_info)")
@pytest.mark.asyncio
async def test_asyncio_timeout_cannot_stop_cpu_bound_code() -> None:
    """The comparison, bounded: asyncio.timeout(0.01) around 0.2 s of CPU
    work lets it run to the end and does not even raise afterwards."""
    finished = False
    async with asyncio.timeout(0.01):      # type: ignore[attr-defined]
        spin(0.2)
        finished = True
    assert finished


@pytest.mark.asyncio
async def test_deadline_at_an_await_behaves_like_asyncio_timeout() -> None:
    with pytest.raises(TimeoutError):
        async with deadline(0.01) as scope:
            await asyncio.sleep(HANG_GUARD)
    assert scope.expired
    task = asyncio.current_task()
    assert task is not None and not task.cancelled()
    if sys.version_info >= (3, 11):
        assert task.cancelling() == 0
    async with deadline(None):
        await asyncio.sleep(0)
    async with deadline(HANG_GUARD) as quiet:
        await asyncio.sleep(0)
    assert not quiet.expired


@pytest.mark.asyncio
async def test_an_external_cancel_stays_a_cancel() -> None:
    async def victim() -> None:
        async with deadline(HANG_GUARD):
            await asyncio.sleep(HANG_GUARD)

    t = asyncio.create_task(victim())
    await asyncio.sleep(0)
    t.cancel()
    with pytest.raises(asyncio.CancelledError):
        await t


@pytest.mark.asyncio
async def test_never_lands_in_another_task() -> None:
    """A's deadline passes while B runs CPU-bound: B finishes untouched, A
    gets its TimeoutError once B yields."""
    b_done = False

    async def a() -> str:
        try:
            async with deadline(0.02):
                await asyncio.sleep(HANG_GUARD)
        except TimeoutError:
            return "a timed out"
        return "a not stopped"

    async def b() -> None:
        nonlocal b_done
        spin(0.15)
        b_done = True

    ta = asyncio.create_task(a())
    await asyncio.sleep(0)
    tb = asyncio.create_task(b())
    await tb
    assert b_done
    assert await guarded(ta) == "a timed out"


@pytest.mark.asyncio
async def test_nested_deadlines_the_outer_one_fires() -> None:
    inner_saw: list[type] = []
    with pytest.raises(TimeoutError) as info:
        async with deadline(0.03) as outer:
            try:
                async with deadline(HANG_GUARD):
                    spin()
            except BaseException as exc:
                inner_saw.append(type(exc))
                raise
    assert inner_saw == [DeadlineExceeded]
    assert info.value.__cause__.scope is outer  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_masked_sections_are_respected() -> None:
    events: list[str] = []
    with pytest.raises(TimeoutError):
        async with deadline(0.02):
            with uintr_loop.preemption_masked():
                spin(0.1)                 # passes the deadline, not interrupted
                events.append("masked section done")
            events.append("after the section")
            spin()
    # it may land right at the end of the section (STUI) or after the append
    assert events in (["masked section done", "after the section"], ["masked section done"])


@pytest.mark.asyncio
async def test_preemptible_callback() -> None:
    loop = asyncio.get_running_loop()
    contexts: list[dict] = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    after = loop.create_future()
    loop.call_soon(preemptible(0.03, spin))
    loop.call_soon(after.set_result, "next callback ran")
    assert await guarded(after) == "next callback ran"
    assert len(contexts) == 1
    assert isinstance(contexts[0]["exception"], TimeoutError)

    @preemptible(HANG_GUARD)
    def quick(x: int) -> int:
        return x + 1

    assert quick(1) == 2


@pytest.mark.asyncio
async def test_machinery_frames_are_never_interrupted() -> None:
    """The verdict on a frame of asyncio's own code, of a finalizer or of
    the weakref machinery is 'retry'; on user code, 'raise now'."""
    loop = asyncio.get_running_loop()
    seen: list[FrameType] = []
    # asyncio's own Handle._run calls the callback: its frame is machinery on
    # every loop (uvloop runs callbacks from compiled code, with no Python
    # frame of its own to look at)
    asyncio.Handle(lambda: seen.append(sys._getframe(1)), (), loop)._run()
    assert seen[0].f_code.co_filename.endswith("asyncio/events.py"), seen[0].f_code.co_filename
    frames: list[FrameType] = []

    class Finalised:
        def __del__(self) -> None:               # exceptions here are discarded
            frames.append(sys._getframe(0))

    ws: weakref.WeakSet[Finalised] = weakref.WeakSet()
    keep = Finalised()
    ws.add(keep)
    walker = iter(ws)                            # a generator running in _weakrefset.py
    next(walker)
    scope = deadline(HANG_GUARD)
    with scope:
        assert scope._verdict(seen[0]) == RETRY_PROTECTED_NS
        Finalised()                              # runs __del__ at once
        assert frames[0].f_code.co_name == "__del__"
        assert scope._verdict(frames[0]) == RETRY_PROTECTED_NS
        assert walker.gi_frame.f_code.co_filename.endswith("_weakrefset.py")  # type: ignore[attr-defined]
        assert scope._verdict(walker.gi_frame) == RETRY_PROTECTED_NS  # type: ignore[attr-defined]
        assert scope._verdict(sys._getframe(0)) == 0       # would raise here
    assert scope.expired


def test_deadline_in_a_non_main_thread_is_refused(loop_factory) -> None:  # type: ignore[no-untyped-def]
    result: list[BaseException | None] = []

    def thread_main() -> None:
        async def main() -> None:
            async with deadline(1):
                pass

        loop = loop_factory()
        try:
            loop.run_until_complete(main())
            result.append(None)
        except BaseException as exc:          # noqa: BLE001
            result.append(exc)
        finally:
            loop.close()

    t = threading.Thread(target=thread_main)
    t.start()
    t.join(HANG_GUARD)
    assert len(result) == 1 and isinstance(result[0], PreemptionUnavailableError)


@pytest.mark.asyncio
async def test_user_signal_handlers_keep_working() -> None:
    loop = asyncio.get_running_loop()
    got: list[str] = []
    loop.add_signal_handler(signal.SIGUSR1, got.append, "loop handler")
    old = signal.signal(signal.SIGUSR2, lambda s, f: got.append("signal.signal handler"))
    try:
        with pytest.raises(TimeoutError):
            async with deadline(0.02):
                spin()
        assert _timer.doorbell not in (signal.SIGUSR1, signal.SIGUSR2, 0)
        os.kill(os.getpid(), signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGUSR2)
        for _ in range(200):
            if len(got) == 2:
                break
            await asyncio.sleep(0.005)
        assert sorted(got) == ["loop handler", "signal.signal handler"]
    finally:
        loop.remove_signal_handler(signal.SIGUSR1)
        signal.signal(signal.SIGUSR2, old)


def test_a_user_handler_on_a_realtime_signal_is_never_taken() -> None:
    """In a child: the user owns SIGRTMAX first; deadlines still work, the
    doorbell is another number, and the user's handler still gets its signal."""
    code = (
        "import asyncio, os, signal, time, uintr_loop\n"
        "from uintr_loop._doorbell import timer as _timer\n"
        "got = []\n"
        "signal.signal(signal.SIGRTMAX, lambda s, f: got.append(s))\n"
        "async def main():\n"
        "    try:\n"
        "        async with uintr_loop.deadline(0.02):\n"
        "            end = time.monotonic() + 20\n"
        "            while time.monotonic() < end: pass\n"
        "    except TimeoutError:\n"
        "        print('preempted')\n"
        "uintr_loop.run(main())\n"
        "os.kill(os.getpid(), signal.SIGRTMAX)\n"
        "print(_timer.doorbell != signal.SIGRTMAX, got == [signal.SIGRTMAX])\n"
    )
    out = run_child(code)
    assert out.stdout.split() == ["preempted", "True", "True"], out.stderr


def test_task_receiver_mask_and_handler_are_respected() -> None:
    """uintr-only: a task receiver's masked() section and its handler are
    never interrupted; the deadline lands in the task's code after them."""
    from uintr_loop import Receiver, Sender

    async def main() -> list[str]:
        events: list[str] = []

        def handler(vector: int) -> None:
            spin(0.1)                     # runs past the deadline
            events.append("handler done")

        r = Receiver.for_task(handler)
        s = Sender(r.vector_fd(3))
        try:
            async with deadline(0.03):
                with r.masked():
                    spin(0.1)
                    events.append("masked done")
                    s.send()              # delivered at STUI, in the task
                events.append("after handler")
                spin()
        except TimeoutError:
            events.append("timeout")
        return events

    events = uintr_loop.run(main())
    # it may land right at the end of the section/handler (STUI) or later
    assert events in (["masked done", "handler done", "after handler", "timeout"],
                      ["masked done", "handler done", "timeout"])


def test_deadlines_work_in_a_forked_child() -> None:
    """The timer thread does not survive fork; the child starts its own."""
    code = (
        "import os, time, uintr_loop\n"
        "def spin():\n"
        "    end = time.monotonic() + 20\n"
        "    while time.monotonic() < end: pass\n"
        "def once():\n"
        "    try:\n"
        "        with uintr_loop.deadline(0.02):\n"
        "            spin()\n"
        "    except TimeoutError:\n"
        "        return 'preempted'\n"
        "    return 'not preempted'\n"
        "print('parent', once(), flush=True)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    print('child', once(), flush=True)\n"
        "    os._exit(0)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "print('parent', once(), os.waitstatus_to_exitcode(status))\n"
    )
    out = run_child(code)
    assert out.stdout.splitlines() == [
        "parent preempted", "child preempted", "parent preempted 0"], out.stderr


def test_thread_fallback_delivers_deadlines_too() -> None:
    """In a child: deadlines through the pthread (the path used when
    timer_create fails) preempt as the kernel timer does."""
    code = (
        "import time, uintr_loop\n"
        "from uintr_loop import _core\n"
        "def once():\n"
        "    try:\n"
        "        with uintr_loop.deadline(0.02):\n"
        "            end = time.monotonic() + 20\n"
        "            while time.monotonic() < end: pass\n"
        "    except TimeoutError:\n"
        "        return 'preempted'\n"
        "    return 'not preempted'\n"
        "print(once(), _core.preempt_uses_timer())\n"
        "from _testcore._state import preempt_thread_only\n"
        "preempt_thread_only(True)\n"
        "print(once(), _core.preempt_uses_timer(), _core.preempt_counters()[0] >= 1)\n"
    )
    out = run_child(code)
    assert out.stdout.splitlines() == ["preempted True", "preempted False True"], out.stderr


def test_many_deadlines_with_scopes_churning_inside_all_fire() -> None:
    """300 short deadlines; inside each, inner scopes are entered and left as
    fast as possible, so rings land in the timer's own bookkeeping (which
    must retry, not lose the deadline)."""
    fired = 0
    for _ in range(300):
        try:
            with deadline(0.0002):
                end = time.monotonic() + SAFETY
                while time.monotonic() < end:
                    with deadline(HANG_GUARD):
                        pass
        except TimeoutError:
            fired += 1
    assert fired == 300
    assert not _timer._scopes            # nothing left armed


def test_tight_while_loops_inside_the_scope_never_escape_it() -> None:
    """On CPython 3.13 the backward jump closing `while cond: pass` can sit
    outside the try/with's exception range (python/cpython#130279); a
    deadline raised exactly there would skip the scope. 300 tight loops:
    every deadline must come back as TimeoutError from its own scope."""
    fired = 0
    for _ in range(300):
        try:
            with deadline(0.0002):
                end = time.monotonic() + SAFETY
                while time.monotonic() < end:
                    pass
        except TimeoutError:
            fired += 1
    assert fired == 300


def test_a_swallowed_deadline_is_raised_again_but_not_during_cleanup() -> None:
    """The code swallows the first DeadlineExceeded and runs on: it comes
    again. A finally block running (CPU-bound) while it propagates is not
    interrupted a second time."""
    events: list[str] = []
    with pytest.raises(TimeoutError):
        with deadline(0.01):
            try:
                spin()
            except DeadlineExceeded:
                events.append("swallowed")
            try:
                spin()
            finally:
                events.append("cleanup starts")
                spin(0.05)                  # > the 2 ms re-raise interval
                events.append("cleanup done")
    assert events == ["swallowed", "cleanup starts", "cleanup done"]
