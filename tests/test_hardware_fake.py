"""The hardware backend's logic, run through a LABELLED FAKE of UINTR.

``_testcore._hardware_fake`` (test-only, tests/_testcore) is the backend's own C source (hw/uintr_hw.c)
compiled with -DUINTR_FAKE_ABI: SENDUIPI, STUI, CLUI and the six syscalls of
each numbering are recorded and simulated by tests/_testcore/fake_abi.h; the fake
"delivers" an interrupt by calling the handler's body on the sending thread.
Nothing here ran on UINTR hardware; tests/test_hardware_real.py does that
where the probe allows it.
"""
from __future__ import annotations

import asyncio
import errno
import functools
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import uintr_loop
from uintr_loop import _capabilities
from _testcore import _hardware_fake as fake
from uintr_loop._core import Port
from uintr_loop._native import NativeSender  # type: ignore[attr-defined]
from _support import HANG_GUARD, guarded

ABIS = ("rfc-v1", "v6.0-branch")


@pytest.fixture
def wake_fd() -> Iterator[int]:
    fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    yield fd
    os.close(fd)


def wakes(fd: int) -> int:
    """How many times the eventfd was written since the last call (0: none)."""
    try:
        return os.eventfd_read(fd)
    except BlockingIOError:
        return 0


def calls(*names: str) -> list[tuple[str, int, int, int]]:
    """The fake's log, (what, nr, a0, a1), for the given names only (all if none)."""
    return [(w, nr, a0, a1) for (w, nr, a0, a1, _r, _t) in fake.fake_log() if not names or w in names]


def receiver(abi: str, fd: int) -> Any:
    fake.fake_configure(abi)
    return fake.HardwareReceiver(abi, fd)


# ---- the ABI tables ---------------------------------------------------------

def test_fake_module_is_labelled() -> None:
    assert fake.FAKE is True and "fake" in fake.BUILT_WITH
    if _capabilities.BUILD_HAS_HARDWARE_BACKEND:
        from uintr_loop import _hardware

        assert _hardware.FAKE is False and "-muintr" in _hardware.BUILT_WITH


@pytest.mark.parametrize("abi", ABIS)
def test_compiled_abi_tables_match_the_published_numberings(abi: str) -> None:
    tables = [fake.abi_table()]
    if _capabilities.BUILD_HAS_HARDWARE_BACKEND:
        from uintr_loop import _hardware

        tables.append(_hardware.abi_table())
    for table in tables:
        compiled = list(table[abi]["numbers"].values())
        published = list(_capabilities.ABIS[abi].values())[:6]   # the six common operations
        assert compiled == published
    facts = fake.abi_table()[abi]
    if abi == "rfc-v1":
        assert compiled == [449, 450, 451, 452, 453, 454]
        assert facts["handler_flags"] == 0 and facts["uitt_per_thread"]
        assert not facts["unregister_sender_by_index"] and not facts["wait_takes_usec"]
        assert not facts["kernel_wakes_blocked"] and facts["no_hardware_errno"] == errno.EOPNOTSUPP
    else:
        assert compiled == [471, 472, 473, 474, 475, 476]
        assert facts["handler_flags"] == fake.HANDLER_FLAG_WAITING_RECEIVER == 0x1000
        assert not facts["uitt_per_thread"]
        assert facts["unregister_sender_by_index"] and facts["wait_takes_usec"]
        assert facts["kernel_wakes_blocked"] and facts["no_hardware_errno"] == errno.ENOSYS


@pytest.mark.parametrize("abi", ABIS)
def test_every_call_uses_its_abis_numbers_and_argument_order(abi: str, wake_fd: int) -> None:
    nr = fake.abi_table()[abi]["numbers"]
    rx = receiver(abi, wake_fd)
    hv = rx.vector_for(3, 9)                      # binds the handler, then the vector fd
    sender = rx.sender(3, 9)
    rx.mask()
    assert sender.send() == 0
    assert rx.wait(250) == -errno.EINTR             # an interrupt is pending: no sleep
    assert fake.receiver_state(rx)["pending"] == 0  # UIF clear: not delivered yet
    rx.unmask()
    assert rx.take() == [(3, 9)]
    sender.close()
    rx.close()
    log = calls()
    register = log[0]
    assert register[:2] == ("uintr_register_handler", nr["uintr_register_handler"])
    assert register[2] != 0                        # the handler's address
    assert register[3] == (0 if abi == "rfc-v1" else 0x1000)
    assert log[1][0] == "stui"                     # UIF starts at 0: enabled after registering
    assert log[2] == ("uintr_vector_fd", nr["uintr_vector_fd"], hv, 0)
    vector_fd = fake.fake_log()[2][4]
    reg = calls("uintr_register_sender")
    assert len(reg) == 1 and reg[0][1] == nr["uintr_register_sender"] and reg[0][3] == 0
    index = [r for (w, _n, _a0, _a1, r, _t) in fake.fake_log() if w == "uintr_register_sender"][0]
    assert calls("senduipi") == [("senduipi", 0, index, 0)]
    unreg = calls("uintr_unregister_sender")
    if abi == "rfc-v1":      # uintr_unregister_sender(fd, flags), in the sending thread's UITT
        assert unreg == [("uintr_unregister_sender", 453, reg[0][2], 0)]
        assert reg[0][2] != vector_fd              # the sender's own copy of the fd
        assert calls("uintr_wait")[0] == ("uintr_wait", 454, 0, 0)          # wait(flags)
    else:                    # uintr_unregister_sender(index, flags)
        assert unreg == [("uintr_unregister_sender", 475, index, 0)]
        assert calls("uintr_wait")[0] == ("uintr_wait", 476, 250, 0)        # wait(usec, flags)
    assert calls()[-2:] == [("clui", 0, 0, 0), ("uintr_unregister_handler", nr["uintr_unregister_handler"], 0, 0)]


@pytest.mark.parametrize(("kernel", "backend"), [("rfc-v1", "v6.0-branch"), ("v6.0-branch", "rfc-v1")])
def test_the_other_numbering_is_a_clear_hardware_unavailable_error(kernel: str, backend: str, wake_fd: int) -> None:
    fake.fake_configure(kernel)            # this "kernel" answers only its own numbers
    rx = fake.HardwareReceiver(backend, wake_fd)
    with pytest.raises(uintr_loop.HardwareUnavailableError, match=rf"uintr_register_handler \(syscall \d+, {backend} ABI\) failed with ENOSYS"):
        rx.bind()
    assert not rx.bound


@pytest.mark.parametrize("abi", ABIS)
def test_kernel_errors_are_named(abi: str, wake_fd: int) -> None:
    rx = receiver(abi, wake_fd)
    no_hw = fake.abi_table()[abi]["no_hardware_errno"]
    fake.fake_fail("uintr_register_handler", no_hw)
    with pytest.raises(uintr_loop.HardwareUnavailableError, match=errno.errorcode[no_hw]):
        rx.bind()
    fake.fake_fail("uintr_vector_fd", errno.EBUSY)
    with pytest.raises(OSError, match="uintr_vector_fd .* failed with EBUSY") as info:
        rx.vector_for(1, 1)
    assert info.value.errno == errno.EBUSY
    fake.fake_fail(None)
    rx.vector_for(1, 1)
    if abi == "v6.0-branch":
        fake.fake_fail("uintr_register_sender", errno.EINVAL)
        with pytest.raises(OSError, match="uintr_register_sender"):
            rx.sender(1, 1)
    else:                           # the RFC registers at the first send, per thread
        s = rx.sender(1, 1)
        fake.fake_fail("uintr_register_sender", errno.ENOSPC)
        assert s.send() == -errno.ENOSPC
    fake.fake_fail(None)
    rx.close()


def test_unknown_abi_is_refused(wake_fd: int) -> None:
    with pytest.raises(ValueError, match="unknown UINTR ABI 'v7'"):
        fake.HardwareReceiver("v7", wake_fd)


# ---- the handler's body --------------------------------------------------------

@pytest.mark.parametrize("abi", ABIS)
def test_handler_records_vectors_and_coalesces(abi: str, wake_fd: int) -> None:
    rx = receiver(abi, wake_fd)
    for v in (5, 17, 5, 63, 64 + 2):                 # 66 & 63 == 2: a vector is 6 bits
        fake.record(rx, v)
    assert fake.receiver_state(rx) == {"pending": (1 << 5) | (1 << 17) | (1 << 63) | (1 << 2), "blocked": False}
    assert rx.statistics()["interrupts"] == 5
    assert wakes(wake_fd) == 0                       # the loop was running: no syscall
    rx.take()
    assert fake.receiver_state(rx)["pending"] == 0
    rx.close()


@pytest.mark.parametrize("abi", ABIS)
def test_handler_wakes_a_blocked_loop_once_per_sleep(abi: str, wake_fd: int) -> None:
    rx = receiver(abi, wake_fd)
    assert rx.before_block() is False                # nothing pending: the loop may sleep
    assert fake.receiver_state(rx)["blocked"] is True
    for v in (1, 2, 3):
        fake.record(rx, v)
    assert wakes(wake_fd) == 1                       # one eventfd write, not three
    assert rx.statistics()["handler_wakes"] == 1
    assert fake.receiver_state(rx)["blocked"] is False
    rx.take()
    assert rx.before_block() is False
    fake.record(rx, 4)
    assert wakes(wake_fd) == 1                       # the next sleep gets its own wakeup
    rx.take()
    rx.close()


@pytest.mark.parametrize("abi", ABIS)
def test_pending_interrupt_turns_the_sleep_into_a_poll(abi: str, wake_fd: int) -> None:
    rx = receiver(abi, wake_fd)
    rx.bind()
    fake.record(rx, 7)                               # arrived while the loop ran
    assert rx.before_block() is True
    assert fake.receiver_state(rx) == {"pending": 1 << 7, "blocked": False}
    assert wakes(wake_fd) == 0
    rx.close()


@pytest.mark.parametrize("abi", ABIS)
def test_take_routes_hardware_vectors_back_to_receivers(abi: str, wake_fd: int) -> None:
    rx = receiver(abi, wake_fd)
    a, b, c = rx.vector_for(1, 40), rx.vector_for(2, 3), rx.vector_for(1, 2)
    assert len({a, b, c}) == 3 and rx.vector_for(2, 3) == b          # one per pair, reused
    for hv in (a, b, c):
        fake.record(rx, hv)
    fake.record(rx, 60)                              # a vector nobody was given: ignored
    assert sorted(rx.take()) == [(1, 2), (1, 40), (2, 3)]
    assert rx.take() == []
    rx.close()


def test_sixty_four_hardware_vectors_then_a_clear_error(wake_fd: int) -> None:
    rx = receiver("v6.0-branch", wake_fd)
    for i in range(64):
        rx.vector_for(1 + i // 64, i)
    with pytest.raises(RuntimeError, match="64 user-interrupt vectors"):
        rx.vector_for(2, 0)
    rx.close()


# ---- senders, masking and the wake on a blocked loop ---------------------------------

@pytest.mark.parametrize("abi", ABIS)
def test_masked_interrupts_wait_for_stui_and_come_highest_first(abi: str, wake_fd: int) -> None:
    rx = receiver(abi, wake_fd)
    low, high = rx.sender(1, 1), rx.sender(1, 2)
    rx.mask()
    assert fake.fake_uif() is False
    assert low.send() == 0 and high.send() == 0
    assert fake.receiver_state(rx)["pending"] == 0   # CLUI: the handler did not run
    assert fake.fake_uirr() != 0
    rx.unmask()
    assert fake.fake_uif() is True and fake.fake_uirr() == 0
    assert rx.statistics()["interrupts"] == 2
    assert sorted(rx.take()) == [(1, 1), (1, 2)]
    rx.close()


@pytest.mark.parametrize("abi", ABIS)
def test_who_pays_for_waking_a_blocked_loop(abi: str, wake_fd: int) -> None:
    """RFC: nothing but uintr_wait is woken by the kernel, so the sender sees
    `blocked` and writes the eventfd. Later branch: the kernel wakes the loop
    (WAITING_RECEIVER), the sender makes no syscall."""
    rx = receiver(abi, wake_fd)
    s = rx.sender(1, 4)
    rx.before_block()
    rx.mask()                                        # keep the handler out: the sender alone
    assert s.send() == 0
    expected = 1 if abi == "rfc-v1" else 0
    assert wakes(wake_fd) == expected
    assert rx.statistics()["sender_wakes"] == expected
    rx.unmask()
    assert rx.take() == [(1, 4)]
    rx.close()


@pytest.mark.parametrize("abi", ABIS)
def test_senders_on_several_threads(abi: str, wake_fd: int) -> None:
    rx = receiver(abi, wake_fd)
    s = rx.sender(1, 8)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.extend(s.send() for _ in range(3))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(HANG_GUARD)
    assert results == [0] * 6 and s.sent == 6
    assert fake.fake_faults() == 0                   # no SENDUIPI through a foreign UITT
    registrations = [e for e in fake.fake_log() if e[0] == "uintr_register_sender"]
    if abi == "rfc-v1":           # the UITT is per thread: each sending thread registers once
        assert len(registrations) == 2 and len({e[5] for e in registrations}) == 2
    else:                         # one UITT per process: registered once, at Sender creation
        assert len(registrations) == 1
    assert rx.take() == [(1, 8)]
    rx.close()


@pytest.mark.parametrize("abi", ABIS)
def test_close_from_another_thread_keeps_the_handler_state(abi: str, wake_fd: int) -> None:
    rx = receiver(abi, wake_fd)
    s = rx.sender(1, 2)
    t = threading.Thread(target=rx.close)
    t.start()
    t.join(HANG_GUARD)
    assert rx.closed
    assert calls("uintr_unregister_handler") == []   # only the loop thread can unregister
    assert s.send() == -errno.ESHUTDOWN
    with pytest.raises(uintr_loop.ReceiverClosedError):
        rx.vector_for(5, 5)


def test_a_bound_receiver_refuses_other_threads(wake_fd: int) -> None:
    rx = receiver("v6.0-branch", wake_fd)
    rx.bind()
    errors: list[BaseException] = []

    def other() -> None:
        try:
            rx.before_block()
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join(HANG_GUARD)
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)
    assert "registered for the thread that first ran this loop" in str(errors[0])
    rx.close()


# ---- a whole loop in hardware mode, over the fake ------------------------------

@pytest.fixture(params=ABIS)
def fake_hardware_loop(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[asyncio.AbstractEventLoop]:
    abi = request.param
    fake.fake_configure(abi)
    factory = functools.partial(fake.HardwareReceiver, abi)
    monkeypatch.setattr(uintr_loop._loop, "new_port", lambda: Port("hardware", hardware=factory))
    loop = uintr_loop.new_event_loop(base="asyncio")   # the hardware base
    try:
        yield loop
    finally:
        if not loop.is_closed():
            loop.close()


def test_loop_in_hardware_mode_delivers_through_senduipi(fake_hardware_loop: Any) -> None:
    loop = fake_hardware_loop
    assert loop.delivery_mode == "hardware" and loop.statistics().mode == "hardware"
    assert loop._selector._uintr_max_sleep == uintr_loop._core.HW_MAX_SLEEP

    async def main() -> list[tuple[str, int]]:
        got: list[tuple[str, int]] = []
        done = asyncio.Event()
        a = uintr_loop.Receiver(lambda v: got.append(("a", v)))
        b = uintr_loop.Receiver(lambda v: (got.append(("b", v)), v == 9 and done.set()))
        senders = [uintr_loop.Sender(a.vector_fd(v)) for v in (3, 30)] + [uintr_loop.Sender(b.vector_fd(9))]
        channel = loop._uintr_port.fileno()
        wakes(channel)                                 # start from a drained eventfd
        for s in senders:
            s.send()                                   # from the loop thread, loop running
        assert wakes(channel) == 0                     # a running loop: not one syscall
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert sorted(got) == [("a", 3), ("a", 30), ("b", 9)]
        assert got.index(("a", 30)) < got.index(("a", 3))    # highest first within a receiver
        got.clear()
        done.clear()
        # the loop sleeps; another thread sends: the fake runs the handler on
        # that thread, the handler sees `blocked` and writes the eventfd
        threading.Thread(target=senders[2].send).start()
        await guarded(done.wait())
        assert got == [("b", 9)]
        return got

    loop.run_until_complete(main())
    hw = loop._uintr_port.hw.statistics()
    assert hw["interrupts"] == 4 and hw["vectors_in_use"] == 3
    assert fake.fake_faults() == 0


def test_native_nogil_sender_in_hardware_mode(fake_hardware_loop: Any) -> None:
    loop = fake_hardware_loop

    async def main() -> tuple[int, int, int]:
        got: list[int] = []
        r = uintr_loop.Receiver(got.append)
        s = uintr_loop.Sender(r.vector_fd(11))
        job = NativeSender(s, 2000)
        sent, error = await asyncio.to_thread(job.join)
        for _ in range(3):
            await asyncio.sleep(0)
        return sent, error, len(got)

    sent, error, delivered = loop.run_until_complete(main())
    assert (sent, error) == (2000, 0)
    assert 1 <= delivered <= 2000                      # coalesced, never lost
    assert loop._uintr_port.hw.statistics()["interrupts"] == 2000   # one SENDUIPI each


def test_vector_fd_off_the_loop_thread_is_refused_in_hardware_mode(fake_hardware_loop: Any) -> None:
    loop = fake_hardware_loop

    async def main() -> list[BaseException]:
        r = uintr_loop.Receiver(lambda v: None)
        errors: list[BaseException] = []

        def other() -> None:
            try:
                r.vector_fd(3)
            except BaseException as exc:
                errors.append(exc)

        await asyncio.to_thread(other)
        uintr_loop.Sender(r.vector_fd(3)).send()    # the loop's thread still can
        return errors

    errors = loop.run_until_complete(main())
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)
    assert "must be called from the thread running its loop" in str(errors[0])


def test_closing_in_hardware_mode(fake_hardware_loop: Any) -> None:
    loop = fake_hardware_loop

    async def main() -> tuple[Any, Any]:
        r = uintr_loop.Receiver(lambda v: None)
        s1, s2 = uintr_loop.Sender(r.vector_fd(1)), uintr_loop.Sender(r.vector_fd(2))
        s1.send()
        s1.close()
        with pytest.raises(uintr_loop.SenderClosedError):
            s1.send()
        r.close()
        with pytest.raises(uintr_loop.ReceiverClosedError):
            s2.send()
        r2 = uintr_loop.Receiver(lambda v: None)
        return r2, uintr_loop.Sender(r2.vector_fd(5))

    r2, s3 = loop.run_until_complete(main())
    loop.close()
    with pytest.raises(uintr_loop.ReceiverClosedError):
        s3.send()
    # the loop thread masked, then unregistered, on close
    assert [c[0] for c in calls()[-2:]] == ["clui", "uintr_unregister_handler"]


def test_ping_pong_through_a_sleeping_loop_loses_no_wakeup(fake_hardware_loop: Any) -> None:
    """Each send waits for its delivery before the next, so one lost wakeup
    would hang the round (and fail the hang guard). The fake runs the
    handler's body on the sending threads, concurrently with the loop's
    before_block/take: a harsher interleaving than the CPU's same-thread one."""
    loop = fake_hardware_loop
    loop._selector._uintr_max_sleep = None   # no 10 ms cap: a lost wakeup must hang, not be late
    rounds = 1500

    async def main() -> int:
        acks = [threading.Semaphore(0) for _ in range(2)]
        r = uintr_loop.Receiver(lambda v: acks[v].release())
        senders = [uintr_loop.Sender(r.vector_fd(v)) for v in range(2)]
        failures: list[str] = []

        def ping(v: int) -> None:
            for i in range(rounds):
                senders[v].send()
                if not acks[v].acquire(timeout=HANG_GUARD):
                    failures.append(f"vector {v}: round {i} never delivered")
                    return

        await asyncio.gather(*(asyncio.to_thread(ping, v) for v in range(2)))
        assert failures == []
        return r.statistics().delivered

    assert loop.run_until_complete(main()) == 2 * rounds
    hw = loop._uintr_port.hw.statistics()
    assert hw["interrupts"] == 2 * rounds
    assert hw["handler_wakes"] >= 1          # the loop did sleep, and was woken from it
