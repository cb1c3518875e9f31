"""The scheduler shim: tasks as receivers (switch-in/out, uintr_wait, masking)."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading

import pytest

import uintr_loop
from _support import HANG_GUARD, REPO_ROOT, guarded
from uintr_loop import Receiver, ReceiverClosedError, Sender, TaskReceiverError
from uintr_loop._core import TaskStep
from uintr_loop._shim import shim_of

uintr_test = pytest.mark.asyncio(loop_scope="function")


BASE = {"name": "asyncio"}


@pytest.fixture(autouse=True, params=["asyncio", "uvloop"])
def base(request: pytest.FixtureRequest):
    """Every test here runs on both bases of uintr_loop."""
    BASE["name"] = request.param
    yield request.param


def run(coro_fn, base: str | None = None):
    """Run ``coro_fn()`` on a fresh uintr loop (task receivers are uintr-only)."""
    return uintr_loop.run(coro_fn(), base=base or BASE["name"])


def test_for_task_outside_a_task_is_refused() -> None:
    # from a plain callback (no current task)
    async def from_callback() -> None:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()

        def cb() -> None:
            try:
                Receiver.for_task(print)
            except BaseException as exc:      # noqa: BLE001 - handed to the test
                fut.set_result(exc)
            else:
                fut.set_result(None)

        loop.call_soon(cb)
        exc = await fut
        assert isinstance(exc, TaskReceiverError), exc

    run(from_callback)


def test_bad_arguments_and_states() -> None:
    async def main() -> None:
        with pytest.raises(TypeError):
            Receiver.for_task(42)
        with pytest.raises(TypeError):
            Receiver.for_task(print, task=object())
        done = asyncio.ensure_future(asyncio.sleep(0))
        await done
        with pytest.raises(TaskReceiverError, match="done"):
            Receiver.for_task(print, task=done)
        r = Receiver.for_task(print)
        with pytest.raises(TaskReceiverError, match="already has a receiver"):
            Receiver.for_task(print)
        with pytest.raises(TaskReceiverError):
            uintr_loop.uninstall_shim(asyncio.get_running_loop())
        r.close()
        r.close()                                 # idempotent
        with pytest.raises(ReceiverClosedError):
            await r.wait()
        Receiver.for_task(print).close()          # a new one after close is fine

    run(main)


def test_stock_asyncio_loop_has_no_shim() -> None:
    async def main() -> None:
        with pytest.raises(TaskReceiverError, match="no scheduler shim"):
            Receiver.for_task(print)

    asyncio.run(main())


@pytest.mark.parametrize("debug", [False, True], ids=["", "debug"])
def test_post_to_a_suspended_task_costs_no_wakeup_and_is_delivered_before_its_code(debug: bool) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        events: list[object] = []
        gate = loop.create_future()
        ready = loop.create_future()

        async def worker() -> None:
            r = Receiver.for_task(lambda v: events.append(("handler", v)))
            ready.set_result(r)
            await gate                           # suspended: SN set
            events.append("task resumed")

        task = asyncio.create_task(worker())
        r = await ready
        await asyncio.sleep(0)                   # the worker is switched out
        senders = [Sender(r.vector_fd(v)) for v in (3, 40, 9)]
        loop_before = loop.statistics()  # type: ignore[attr-defined]
        for s in senders:
            s.send()
        stats = r.statistics()
        assert (stats.suppressed, stats.notifications) == (3, 0), stats
        await asyncio.sleep(0)
        assert events == []                      # nothing runs until the task does
        assert loop.statistics().posted == loop_before.posted  # type: ignore[attr-defined]
        gate.set_result(None)
        await guarded(task)
        assert events == [("handler", 40), ("handler", 9), ("handler", 3), "task resumed"]
        assert r.closed                          # closed with its task
        with pytest.raises(ReceiverClosedError):
            senders[0].send()
        assert shim_of(loop).task_receivers == 0  # type: ignore[union-attr]

    uintr_loop.run(main(), debug=debug)


def test_wait_wakes_on_a_post_from_another_thread() -> None:
    async def main() -> None:
        seen: list[int] = []
        r = Receiver.for_task(seen.append)
        s1, s2 = Sender(r.vector_fd(1)), Sender(r.vector_fd(62))
        started = threading.Event()

        def post() -> None:
            started.wait()
            s1.send()
            s2.send()

        t = threading.Thread(target=post)
        t.start()
        waiting = r.wait(timeout=HANG_GUARD)   # not guarded(): wait_for makes a task on 3.11
        started.set()
        got = await waiting
        t.join()
        # both may arrive in one wake-up or the second in a later one
        assert got and set(got) <= {62, 1} and seen[: len(got)] == list(got)
        if len(got) == 1:
            assert await r.wait(timeout=HANG_GUARD) == ((1,) if got == (62,) else (62,))
        assert sorted(seen) == [1, 62]
        # pending before wait(): no suspension at all
        s1.send()
        assert await r.wait(timeout=0) == (1,)
        # posted while running, then a switch: delivered at the switch-in
        s1.send()
        await asyncio.sleep(0)
        assert seen[-1] == 1 and len(seen) == 4
        with pytest.raises(asyncio.TimeoutError):
            await r.wait(timeout=0.01)

    run(main)


def test_wait_rules() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        r = Receiver.for_task(print)

        async def other() -> None:
            with pytest.raises(TaskReceiverError, match="its own task"):
                await r.wait()
            with pytest.raises(TaskReceiverError, match="its own task"):
                r.masked()

        await asyncio.create_task(other())
        # a wait() is bound to the task that called wait(): asyncio takes it
        # as a future (no task of its own), and another task may not await it
        w = r.wait()
        assert asyncio.ensure_future(w) is w and asyncio.isfuture(w)

        async def awaits_it() -> None:
            await w

        with pytest.raises(TaskReceiverError, match="its own task"):
            await asyncio.create_task(awaits_it())
        assert not w.done()                      # refused before it started
        # closing wakes a waiter with ReceiverClosedError
        loop.call_later(0.01, r.close)
        with pytest.raises(ReceiverClosedError):
            await r.wait(timeout=HANG_GUARD)

    run(main)


def test_masked_defers_to_the_end_of_the_section_in_the_task() -> None:
    async def main() -> None:
        events: list[object] = []
        r = Receiver.for_task(lambda v: events.append(v))
        s = Sender(r.vector_fd(7))
        with r.masked():
            s.send()
            await asyncio.sleep(0)              # switch-out/in while masked
            assert events == []
            assert await r.wait(timeout=0) == ()  # pending, not delivered
            events.append("end of section")
        assert events == ["end of section", 7]  # STUI: delivered in the task

    run(main)


def test_handler_errors_go_to_the_exception_handler_and_the_task_continues() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        contexts: list[dict] = []
        loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

        def bad(v: int) -> None:
            raise ValueError(v)

        r = Receiver.for_task(bad)
        Sender(r.vector_fd(5)).send()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert len(contexts) == 1
        assert isinstance(contexts[0]["exception"], ValueError)
        assert contexts[0]["receiver"].task is asyncio.current_task()

    run(main)


def test_non_receiver_tasks_are_not_wrapped_and_keep_coro_and_tracebacks() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def plain() -> None:
            await asyncio.sleep(0)
            raise KeyError("boom")

        coro = plain()
        t = loop.create_task(coro)
        await asyncio.sleep(0)
        assert not any(isinstance(h._callback, TaskStep) for h in loop._ready)  # type: ignore[attr-defined]
        with pytest.raises(KeyError):
            await t
        assert t.get_coro() is coro
        frames = [f.name for f in __import__("traceback").extract_tb(t.exception().__traceback__)]  # type: ignore[union-attr]
        assert frames[-1] == "plain"

        async def receiver_task() -> None:
            Receiver.for_task(print)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            raise KeyError("boom")

        coro2 = receiver_task()
        t2 = loop.create_task(coro2)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert any(isinstance(h._callback, TaskStep) for h in loop._ready)  # type: ignore[attr-defined]
        with pytest.raises(KeyError):
            await t2
        assert t2.get_coro() is coro2
        tb = __import__("traceback").extract_tb(t2.exception().__traceback__)  # type: ignore[union-attr]
        assert tb[-1].name == "receiver_task"
        assert {f.name for f in tb} == {"main", "receiver_task"}  # no shim frame

    run(main, base="asyncio")        # it looks into the asyncio base's ready queue


def test_user_task_factory_is_kept_and_works_with_receivers() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        made: list[asyncio.Task] = []

        def factory(lp, coro, **kwargs):  # type: ignore[no-untyped-def]
            t = asyncio.Task(coro, loop=lp, **kwargs)
            made.append(t)
            return t

        loop.set_task_factory(factory)
        got: list[int] = []

        async def worker() -> tuple[int, ...]:
            r = Receiver.for_task(got.append)
            Sender(r.vector_fd(11)).send()
            return await r.wait(timeout=5)

        assert await guarded(asyncio.create_task(worker())) == (11,)
        assert got == [11] and len(made) == 1
        assert loop.get_task_factory() is factory

    run(main)


def _uvloop_takes_eager_task_factory() -> bool:
    """Probe plain uvloop: on Python 3.13, uvloop 0.23's create_task passes
    eager_start to the task factory, which eager_task_factory refuses."""
    import uvloop

    loop = uvloop.new_event_loop()
    coro = asyncio.sleep(0)
    try:
        loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]
        try:
            task = loop.create_task(coro)
        except TypeError:
            coro.close()
            return False
        loop.run_until_complete(task)
        return True
    finally:
        loop.close()


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks exist from Python 3.12 (probed sys.version_info)")
def test_eager_tasks(base: str) -> None:
    if base == "uvloop" and not _uvloop_takes_eager_task_factory():
        pytest.skip("plain uvloop refuses asyncio.eager_task_factory on this Python "
                    "(probed: create_task raised TypeError), so the uvloop base does too")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]
        got: list[int] = []

        async def worker() -> tuple[int, ...]:
            r = Receiver.for_task(got.append)     # created in the eager first step
            Sender(r.vector_fd(4)).send()
            return await r.wait(timeout=5)

        assert await guarded(asyncio.create_task(worker())) == (4,)
        assert got == [4]

    run(main)


def test_for_task_from_another_thread_is_refused() -> None:
    async def main() -> None:
        errors: list[BaseException] = []
        me = asyncio.current_task()

        def other() -> None:
            try:
                Receiver.for_task(print, task=me)
            except BaseException as exc:          # noqa: BLE001
                errors.append(exc)

        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert len(errors) == 1 and isinstance(errors[0], RuntimeError)
        assert "thread" in str(errors[0])

    run(main)


def test_shim_can_be_turned_off_by_environment() -> None:
    code = (
        "import uintr_loop, asyncio\n"
        "from uintr_loop._shim import shim_of\n"
        "loop = uintr_loop.new_event_loop()\n"
        "print(shim_of(loop) is None)\n"
        "loop.close()\n"
    )
    env = dict(os.environ, UINTR_LOOP_SHIM="0", PYTHONPATH=str(REPO_ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.split() == ["True"], out.stderr


def test_uninstall_then_reinstall() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        uintr_loop.uninstall_shim(loop)
        assert "call_soon" not in vars(loop)
        with pytest.raises(TaskReceiverError, match="no scheduler shim"):
            Receiver.for_task(print)
        uintr_loop.install_shim(loop)
        Receiver.for_task(print).close()

    run(main)


def test_hook_is_engaged_only_while_a_task_receiver_is_open() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        shim = shim_of(loop)
        assert shim is not None and shim.installed
        assert "call_soon" not in vars(loop) and not shim.engaged   # zero cost
        r = Receiver.for_task(print)
        assert vars(loop)["call_soon"] == shim.call_soon and shim.engaged
        r.close()
        assert "call_soon" not in vars(loop) and not shim.engaged

    run(main)


def test_pure_python_tasks_are_shimmed_too() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        py_task = getattr(asyncio.tasks, "_PyTask")
        loop.set_task_factory(lambda lp, coro, **kw: py_task(coro, loop=lp, **kw))
        got: list[int] = []

        async def worker() -> tuple[int, ...]:
            r = Receiver.for_task(got.append)
            s = Sender(r.vector_fd(8))
            await asyncio.sleep(0)
            s.send()                       # to a running task: SN clear
            await asyncio.sleep(0)         # delivered at the next switch-in
            return tuple(got)

        assert await guarded(asyncio.create_task(worker())) == (8,)

    run(main)


def test_a_task_step_built_by_hand_is_refused() -> None:
    with pytest.raises(TypeError, match="scheduler shim"):
        TaskStep()()
