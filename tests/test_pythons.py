"""What changes from one Python to the next: 3.16's removal of asyncio's
policies, the loop-class form (``uintr_loop.EventLoop``) that replaces them,
and ``receiver.wait()`` under asyncio's timeouts (``wait_for`` wraps a
coroutine in a task of its own on 3.11, not on 3.12+)."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading

import pytest

import uintr_loop
from _support import HANG_GUARD, child_env
from uintr_loop import Receiver, Sender, TaskReceiverError
from uintr_loop._bases import default_base

BASES = ("asyncio", "uvloop")


def loop_class(base: str) -> type:
    return uintr_loop.UintrUVLoop if base == "uvloop" else uintr_loop.UintrEventLoop


# -- 3.16: no policies ------------------------------------------------------------

# Run first in a child: every policy name asyncio has on 3.10-3.15 is taken
# away (the public ones, their private 3.14 spellings and the deprecation
# hook that hands them out), as on a Python whose asyncio has no policies.
HIDE_POLICIES = textwrap.dedent("""
    import asyncio, asyncio.events as events, asyncio.unix_events as unix_events
    HIDDEN = {
        asyncio: ["AbstractEventLoopPolicy", "DefaultEventLoopPolicy",
                  "get_event_loop_policy", "set_event_loop_policy"],
        events: ["AbstractEventLoopPolicy", "_AbstractEventLoopPolicy",
                 "BaseDefaultEventLoopPolicy", "_BaseDefaultEventLoopPolicy",
                 "get_event_loop_policy", "set_event_loop_policy"],
        unix_events: ["DefaultEventLoopPolicy", "_DefaultEventLoopPolicy",
                      "_UnixDefaultEventLoopPolicy"],
    }
    for module, names in HIDDEN.items():
        for name in names:
            if name in vars(module):
                delattr(module, name)
    def _no_such(name):
        raise AttributeError(f"module 'asyncio' has no attribute {name!r}")
    asyncio.__getattr__ = _no_such
    for module, names in HIDDEN.items():
        for name in names:
            assert not hasattr(module, name), name
""")


def run_child(body: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", HIDE_POLICIES + textwrap.dedent(body)],
        env=child_env(), capture_output=True, text=True, timeout=60)


def test_import_and_run_without_asyncio_policies() -> None:
    done = run_child("""
        import uintr_loop, asyncio
        assert not uintr_loop._policy.HAS_POLICIES

        async def main():
            await asyncio.to_thread(lambda: None)
            return type(asyncio.get_running_loop()).__name__

        print(uintr_loop.run(main(), base="asyncio"))
        runner = asyncio.Runner(loop_factory=uintr_loop.UintrEventLoop)
        with runner:
            print(runner.run(main()))
        try:
            uintr_loop.UintrPolicy()
        except RuntimeError as exc:
            print("refused:", exc)
    """)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == ["UintrEventLoop", "UintrEventLoop"]
    assert lines[2].startswith("refused: asyncio on this Python has no event loop policies")
    assert "loop_factory=uintr_loop.EventLoop" in lines[2] and "uintr_loop.run(" in lines[2]


def test_policy_checks_its_arguments_first_without_policies() -> None:
    done = run_child("""
        import uintr_loop
        for kwargs, exc in (({"base": "bogus"}, ValueError), ({"busy_poll": "3"}, TypeError)):
            try:
                uintr_loop.UintrPolicy(**kwargs)
            except exc:
                pass
            else:
                raise AssertionError(kwargs)
        print("ok")
    """)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_the_uvloop_base_without_asyncio_policies() -> None:
    # uvloop subclasses asyncio's policy at import: where that fails, the
    # default base is uvloop's problem to solve, not ours; say which it is
    done = run_child("""
        try:
            import uvloop
        except Exception as exc:
            print("uvloop:", type(exc).__name__, exc)
            raise SystemExit(0)
        import asyncio, uintr_loop

        async def main():
            return type(asyncio.get_running_loop()).__name__

        print(uintr_loop.run(main(), base="uvloop"))
    """)
    assert done.returncode == 0, done.stderr
    if done.stdout.startswith("uvloop:"):
        pytest.skip(f"uvloop itself does not import without asyncio's policies "
                    f"(probed in a child: {done.stdout.strip()})")
    assert done.stdout.strip() == "UintrUVLoop"


# -- the loop class: uintr_loop.EventLoop ---------------------------------------------


def test_event_loop_is_the_default_base_class(monkeypatch: pytest.MonkeyPatch) -> None:
    assert uintr_loop.EventLoop is loop_class(default_base())
    assert "EventLoop" in uintr_loop.__all__
    # it follows the default: without uvloop the asyncio base
    monkeypatch.setattr(uintr_loop._bases, "uvloop_available", lambda: False)
    assert uintr_loop.EventLoop is uintr_loop.UintrEventLoop


@pytest.mark.skipif(sys.version_info < (3, 12), reason="asyncio.run(loop_factory=) is 3.12+")
def test_asyncio_run_with_loop_factory() -> None:
    async def main() -> asyncio.AbstractEventLoop:
        await asyncio.to_thread(lambda: None)
        return asyncio.get_running_loop()

    loop = asyncio.run(main(), loop_factory=uintr_loop.EventLoop)
    assert type(loop) is uintr_loop.EventLoop and loop.is_closed()


def test_runner_with_loop_factory() -> None:
    async def main() -> asyncio.AbstractEventLoop:
        await asyncio.sleep(0)
        return asyncio.get_running_loop()

    with asyncio.Runner(loop_factory=uintr_loop.EventLoop) as runner:
        first = runner.run(main())
        assert runner.run(main()) is first is runner.get_loop()
        assert type(first) is uintr_loop.EventLoop
    assert first.is_closed()


# -- wait() under asyncio's timeouts ---------------------------------------------------


@pytest.fixture(params=BASES)
def base(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def post_soon(sender: Sender, started: threading.Event) -> threading.Thread:
    """A thread that posts once the task is waiting."""
    t = threading.Thread(target=lambda: (started.wait(HANG_GUARD), sender.send()))
    t.start()
    return t


@pytest.mark.parametrize("how", ["wait_for", "timeout", "wait_for(timeout=None)"])
def test_wait_under_asyncio_timeouts_receives_in_its_own_task(base: str, how: str) -> None:
    async def main() -> None:
        seen: list[int] = []
        r = Receiver.for_task(seen.append)
        s = Sender(r.vector_fd(9))
        started = threading.Event()
        try:
            t = post_soon(s, started)
            asyncio.get_running_loop().call_soon(started.set)
            if how == "wait_for":
                got = await asyncio.wait_for(r.wait(), HANG_GUARD)
            elif how == "timeout":
                async with asyncio.timeout(HANG_GUARD):
                    got = await r.wait()
            else:
                got = await asyncio.wait_for(r.wait(), None)
            t.join()
            # the handler ran at the task's switch-in, before its code went on
            # (on 3.11 wait_for's wrapper task would have been refused here)
            assert got == (9,) and seen == [9]
        finally:
            s.close()
            r.close()

    uintr_loop.run(main(), base=base)


@pytest.mark.parametrize("how", ["wait_for", "timeout", "wait_for(0)"])
def test_wait_times_out_under_asyncio_timeouts_and_waits_again(base: str, how: str) -> None:
    async def main() -> None:
        seen: list[int] = []
        r = Receiver.for_task(seen.append)
        s = Sender(r.vector_fd(3))
        try:
            with pytest.raises((asyncio.TimeoutError, TimeoutError)):
                if how == "wait_for":
                    await asyncio.wait_for(r.wait(), 0.01)
                elif how == "wait_for(0)":
                    await asyncio.wait_for(r.wait(), 0)
                else:
                    async with asyncio.timeout(0.01):
                        await r.wait()
            # the timed-out wait let go: the task waits again, and receives
            s.send()
            assert await asyncio.wait_for(r.wait(), HANG_GUARD) == (3,)
            assert seen == [3]
            # pending before the wait: returned at once, also under wait_for(0)
            s.send()
            assert await asyncio.wait_for(r.wait(), 0) == (3,)
            assert seen == [3, 3]
        finally:
            s.close()
            r.close()

    uintr_loop.run(main(), base=base)


def test_wait_cancelled_with_its_task_lets_go(base: str) -> None:
    async def main() -> None:
        async def waiter() -> None:
            r = Receiver.for_task(print)
            started.set()
            try:
                await r.wait()
            finally:
                assert not r.closed
                holder.append(r)

        holder: list[Receiver] = []
        started = asyncio.Event()
        task = asyncio.create_task(waiter())
        await started.wait()
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert holder[0].closed       # the task is done: its receiver closed

    uintr_loop.run(main(), base=base)


def test_wait_result_is_read_by_its_own_task(base: str) -> None:
    # gather() reads a future's outcome in a callback, before the receiver's
    # task has run: it gets TaskReceiverError instead of a wrong (empty) result
    async def main() -> None:
        seen: list[int] = []
        r = Receiver.for_task(seen.append)
        s = Sender(r.vector_fd(4))
        try:
            asyncio.get_running_loop().call_soon(s.send)
            with pytest.raises(TaskReceiverError, match="own task"):
                await asyncio.gather(r.wait())
            assert seen == [4]            # delivered all the same, in the task
        finally:
            s.close()
            r.close()

    uintr_loop.run(main(), base=base)
