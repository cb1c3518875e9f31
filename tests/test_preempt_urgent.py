"""Urgent vectors: delivered into a task receiver's running code (uintr-only)."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

import uintr_loop
from _support import HANG_GUARD
from uintr_loop import PreemptionUnavailableError, Receiver, Sender

SAFETY = 20.0


def spin_until(flag: list[object], limit: float = SAFETY) -> bool:
    """Pure-Python CPU loop until ``flag`` is non-empty; False at the limit."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if flag:
            return True
    return False


def send_later(sender: Sender, delay: float = 0.02) -> threading.Thread:
    t = threading.Thread(target=lambda: (time.sleep(delay), sender.send()))
    t.start()
    return t


def test_urgent_handler_runs_inside_running_code_and_plain_vectors_wait() -> None:
    async def main() -> list[object]:
        events: list[object] = []
        r = Receiver.for_task(events.append, urgent=[40])
        assert r.urgent == frozenset({40})
        plain, urgent = Sender(r.vector_fd(2)), Sender(r.vector_fd(40))
        plain.send()                            # while running: waits for a switch
        t = send_later(urgent)
        stopped = spin_until(events)            # only the urgent handler can end it
        t.join()
        events.append(("spin ended by handler", stopped))
        await asyncio.sleep(0)                  # switch-in: the plain one now
        return events

    assert uintr_loop.run(main()) == [40, ("spin ended by handler", True), 2]


def test_urgent_handler_exception_is_raised_at_the_interrupted_point() -> None:
    class Stop(Exception):
        pass

    async def main() -> list[str]:
        events: list[str] = []

        def handler(vector: int) -> None:
            raise Stop(vector)

        r = Receiver.for_task(handler, urgent={7})
        t = send_later(Sender(r.vector_fd(7)))
        try:
            try:
                spin_until([])                  # only the exception ends it early
                events.append("not interrupted")
            finally:
                events.append("finally ran")
        except Stop:
            events.append("Stop caught")
        t.join()
        await asyncio.sleep(0)
        return events

    assert uintr_loop.run(main()) == ["finally ran", "Stop caught"]


def test_masked_section_defers_urgent_delivery_to_its_end() -> None:
    async def main() -> list[object]:
        events: list[object] = []
        r = Receiver.for_task(events.append, urgent={5})
        with r.masked():
            t = send_later(Sender(r.vector_fd(5)))
            t.join()
            spin_until(events, 0.1)             # passes with the vector pending
            events.append("end of masked section")
        events.append("after")
        return events

    assert uintr_loop.run(main()) == ["end of masked section", 5, "after"]


def test_urgent_vector_never_lands_in_another_task() -> None:
    async def main() -> list[object]:
        events: list[object] = []
        ready = asyncio.get_running_loop().create_future()
        gate = asyncio.get_running_loop().create_future()

        async def receiver_task() -> None:
            ready.set_result(Receiver.for_task(lambda v: events.append(("handler", v)), urgent={9}))
            await gate
            events.append("receiver task resumed")

        rt = asyncio.create_task(receiver_task())
        r = await ready
        await asyncio.sleep(0)
        Sender(r.vector_fd(9)).send()           # the receiver task is suspended
        spin_until([], 0.1)                     # this task runs CPU-bound meanwhile
        events.append("other task done")
        gate.set_result(None)
        await asyncio.wait_for(rt, HANG_GUARD)
        return events

    assert uintr_loop.run(main()) == [
        "other task done", ("handler", 9), "receiver task resumed"]


def test_bad_urgent_vectors_and_threads() -> None:
    async def main() -> None:
        with pytest.raises(ValueError):
            Receiver.for_task(print, urgent=[64])
        with pytest.raises(TypeError):
            Receiver.for_task(print, urgent=["1"])

    uintr_loop.run(main())

    errors: list[BaseException] = []

    def thread_main() -> None:
        async def inner() -> None:
            Receiver.for_task(print, urgent=[1])

        try:
            uintr_loop.run(inner())
        except BaseException as exc:            # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=thread_main)
    t.start()
    t.join(HANG_GUARD)
    assert len(errors) == 1 and isinstance(errors[0], PreemptionUnavailableError)
