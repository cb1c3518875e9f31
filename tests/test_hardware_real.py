"""The hardware backend on real UINTR hardware.

These run only where the probe says the hardware mode can be used: a CPU
with CPUID.(7,0):EDX[5], a kernel that claims UINTR and answers one of the two
syscall numberings, and a build with uintr_loop._hardware. Everywhere else
(every machine this project has been run on so far) they skip, and the skip
reason is the probe's own finding. Nothing here is faked.
"""
from __future__ import annotations

import asyncio
import errno
import threading

import pytest

import uintr_loop
from _support import HANG_GUARD, guarded

_caps = uintr_loop.capabilities()
pytestmark = pytest.mark.skipif(
    bool(_caps.hardware_why_not),
    reason="no UINTR hardware path here (probed): " + "; ".join(_caps.hardware_why_not),
)


@pytest.fixture
def hardware_loop(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("UINTR_LOOP_MODE", "hardware")
    loop = uintr_loop.new_event_loop(base="asyncio")
    try:
        yield loop
    finally:
        loop.close()


def test_loop_runs_in_hardware_mode(hardware_loop: uintr_loop.UintrEventLoop) -> None:
    assert hardware_loop.delivery_mode == "hardware"
    assert hardware_loop.statistics().mode == "hardware"


def test_interrupt_from_another_thread_wakes_a_blocked_loop(hardware_loop: uintr_loop.UintrEventLoop) -> None:
    async def main() -> list[int]:
        got: list[int] = []
        done = asyncio.Event()
        r = uintr_loop.Receiver(lambda v: (got.append(v), done.set()))
        s = uintr_loop.Sender(r.vector_fd(21))
        threading.Timer(0.05, s.send).start()     # the loop is asleep in epoll_wait by then
        await guarded(done.wait())
        return got

    assert hardware_loop.run_until_complete(main()) == [21]
    assert hardware_loop._uintr_port.hw.statistics()["interrupts"] >= 1


def test_many_senders_coalesce_and_lose_nothing(hardware_loop: uintr_loop.UintrEventLoop) -> None:
    async def main() -> set[int]:
        got: set[int] = set()
        r = uintr_loop.Receiver(got.add)
        senders = [uintr_loop.Sender(r.vector_fd(v)) for v in range(8)]
        threads = [threading.Thread(target=lambda s=s: [s.send() for _ in range(1000)]) for s in senders]
        for t in threads:
            t.start()
        await asyncio.to_thread(lambda: [t.join(HANG_GUARD) for t in threads])
        for _ in range(200):
            if len(got) == 8:
                break
            await asyncio.sleep(0.01)
        return got

    assert hardware_loop.run_until_complete(main()) == set(range(8))


def test_masked_section_defers_delivery(hardware_loop: uintr_loop.UintrEventLoop) -> None:
    async def main() -> list[int]:
        got: list[int] = []
        r = uintr_loop.Receiver(got.append)
        s = uintr_loop.Sender(r.vector_fd(4))
        with r.masked():
            s.send()
            await asyncio.sleep(0.01)
            assert got == []
        await asyncio.sleep(0.01)
        return got

    assert hardware_loop.run_until_complete(main()) == [4]


def test_closed_receiver_refuses_sends(hardware_loop: uintr_loop.UintrEventLoop) -> None:
    async def main() -> None:
        r = uintr_loop.Receiver(lambda v: None)
        s = uintr_loop.Sender(r.vector_fd(1))
        r.close()
        with pytest.raises(uintr_loop.ReceiverClosedError):
            s.send()

    hardware_loop.run_until_complete(main())


def test_uintr_wait_returns_when_an_interrupt_arrives() -> None:
    from uintr_loop import _hardware
    import os

    assert _caps.abi is not None
    wake = os.eventfd(0, os.EFD_NONBLOCK)
    rx = _hardware.HardwareReceiver(_caps.abi, wake)
    try:
        s = rx.sender(1, 3)
        threading.Timer(0.05, s.send).start()
        rc = rx.wait(2_000_000)                   # the RFC form ignores the timeout
        assert rc in (-errno.EINTR, 0)
        assert rx.take() == [(1, 3)]
        s.close()
    finally:
        rx.close()
        os.close(wake)
