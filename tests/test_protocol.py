"""The delivery protocol: posting, coalescing (ON), suppression and restore
(SN), recognition, highest-first delivery, masking, close and bad input.

The port-level tests drive the loop's UPID by hand (no loop running), so every
count is exact; the receiver tests run a uintr_loop on each base for a few
iterations; the selector test is about the asyncio base's selector.
"""
from __future__ import annotations

import asyncio
import dataclasses
import errno
import os
import select
import threading

import pytest

import uintr_loop
from uintr_loop._core import Port
from uintr_loop._native import NativeSender


def readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def run_iterations(loop: asyncio.AbstractEventLoop, n: int = 3) -> None:
    for _ in range(n):
        loop.run_until_complete(asyncio.sleep(0))


@pytest.fixture
def port():
    p = Port("software")
    yield p
    p.close()


@pytest.fixture(params=["asyncio", "uvloop"])
def loop(request: pytest.FixtureRequest):
    lp = uintr_loop.new_event_loop(base=request.param)
    yield lp
    lp.close()


@pytest.fixture
def asyncio_base_loop():
    lp = uintr_loop.new_event_loop(base="asyncio")
    yield lp
    lp.close()


# -- the loop's own UPID: SN, ON, restore -----------------------------------

def test_port_starts_suppressed_posts_cost_no_notification(port):
    for _ in range(3):
        port.wakeup()
    st = port.statistics()
    assert (st.posted, st.notifications, st.suppressed, st.coalesced) == (3, 0, 3, 0)
    assert not readable(port.fileno())


def test_restore_reports_posts_made_while_suppressed(port):
    port.wakeup()
    assert port.restore() is True          # do not block: something is pending
    port.recognise()
    assert port.statistics().delivered == 1
    assert port.restore() is False         # nothing left


def test_blocked_port_sends_one_notification_then_coalesces(port):
    assert port.restore() is False         # "about to block": SN clear
    for _ in range(5):
        port.wakeup()
    st = port.statistics()
    assert (st.notifications, st.coalesced, st.suppressed) == (1, 4, 0)
    assert readable(port.fileno())
    port.recognise()                       # clears ON, takes PIR, sets SN
    st = port.statistics()
    assert st.delivered == 1 and st.spurious == 0
    port.wakeup()                          # SN set again: suppressed
    assert port.statistics().suppressed == 1


def test_statistics_record_is_immutable_and_adds_up(port):
    port.restore()
    for _ in range(4):
        port.wakeup()
    port.recognise()
    port.wakeup()
    st = port.statistics()
    assert st.posted == st.notifications + st.coalesced + st.suppressed == 5
    assert st.mode == "software"
    with pytest.raises(dataclasses.FrozenInstanceError):
        st.posted = 0  # type: ignore[misc]


def test_closed_port_refuses_wakeups_silently_like_a_closed_self_pipe(port):
    port.close()
    port.close()                           # idempotent
    port.wakeup()
    assert port.statistics().refused == 1


# -- receivers ----------------------------------------------------------------

def test_posts_coalesce_into_one_delivery(loop):
    got: list[int] = []
    r = uintr_loop.Receiver(got.append, loop=loop)
    s = uintr_loop.Sender(r.vector_fd(5))
    for _ in range(10):
        s.send()
    st = r.statistics()
    assert (st.posted, st.notifications, st.coalesced) == (10, 1, 9)
    run_iterations(loop)
    assert got == [5]
    assert r.statistics().delivered == 1


def test_pending_vectors_delivered_highest_first(loop):
    got: list[int] = []
    r = uintr_loop.Receiver(got.append, loop=loop)
    for v in (3, 40, 7, 63, 0, 40):
        uintr_loop.Sender(r.vector_fd(v)).send()
    run_iterations(loop)
    assert got == [63, 40, 7, 3, 0]


def test_receivers_notify_through_the_loops_upid(loop):
    """A receiver's notification is a post of its NV to the loop's UPID: a
    loop that is not blocked (SN set) takes it without any syscall."""
    r = uintr_loop.Receiver(lambda v: None, loop=loop)
    before = loop.statistics()
    uintr_loop.Sender(r.vector_fd(1)).send()
    after = loop.statistics()
    assert after.suppressed == before.suppressed + 1
    assert after.notifications == before.notifications


def test_handler_runs_on_loop_thread_for_a_sender_thread(loop):
    seen: list[tuple[int, int]] = []
    done = asyncio.Event()

    def handler(v: int) -> None:
        seen.append((v, threading.get_ident()))
        done.set()

    async def main() -> None:
        r = uintr_loop.Receiver(handler)
        s = uintr_loop.Sender(r.vector_fd(9))
        t = threading.Thread(target=s.send)
        t.start()
        await asyncio.wait_for(done.wait(), 10)
        t.join()

    loop.run_until_complete(main())
    assert seen == [(9, threading.get_ident())]
    st = loop.statistics()
    assert st.posted == st.notifications + st.coalesced + st.suppressed


def test_handlers_never_nest(loop):
    order: list[str] = []
    r: uintr_loop.Receiver

    def handler(v: int) -> None:
        order.append(f"enter {v}")
        if v == 2:
            uintr_loop.Sender(r.vector_fd(50)).send()
            order.append("sent 50 from inside handler 2")
        order.append(f"exit {v}")

    r = uintr_loop.Receiver(handler, loop=loop)
    uintr_loop.Sender(r.vector_fd(2)).send()
    run_iterations(loop, 4)
    assert order == ["enter 2", "sent 50 from inside handler 2", "exit 2", "enter 50", "exit 50"]


def test_handler_exception_goes_to_loop_exception_handler(loop):
    contexts: list[dict] = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    got: list[int] = []

    def handler(v: int) -> None:
        if v == 10:
            raise ZeroDivisionError("boom")
        got.append(v)

    r = uintr_loop.Receiver(handler, loop=loop)
    for v in (10, 4):
        uintr_loop.Sender(r.vector_fd(v)).send()
    run_iterations(loop)
    assert got == [4]                       # delivery continues after the failure
    assert len(contexts) == 1
    assert isinstance(contexts[0]["exception"], ZeroDivisionError)
    assert "vector 10" in contexts[0]["message"]
    assert contexts[0]["receiver"] is r


# -- masking (CLUI/STUI) -----------------------------------------------------

def test_masked_defers_delivery_until_exit(loop):
    got: list[int] = []
    r = uintr_loop.Receiver(got.append, loop=loop)
    s = uintr_loop.Sender(r.vector_fd(7))

    async def main() -> None:
        with r.masked():
            s.send()
            for _ in range(3):
                await asyncio.sleep(0)
            with r.masked():                # nests
                await asyncio.sleep(0)
            assert got == []
        assert got == [7]                   # STUI: delivered at exit, right away

    loop.run_until_complete(main())
    assert r.statistics().delivered == 1


def test_masked_from_another_thread_is_refused(loop):
    r = uintr_loop.Receiver(lambda v: None, loop=loop)
    errors: list[BaseException] = []

    async def main() -> None:
        def other() -> None:
            try:
                r.masked()
            except RuntimeError as exc:
                errors.append(exc)

        await asyncio.to_thread(other)

    loop.run_until_complete(main())
    assert len(errors) == 1 and "thread running its loop" in str(errors[0])


# -- close and bad input -----------------------------------------------------

def test_send_to_closed_receiver_raises_eshutdown(loop):
    got: list[int] = []
    r = uintr_loop.Receiver(got.append, loop=loop)
    s = uintr_loop.Sender(r.vector_fd(3))
    s.send()                                # pending, then closed: dropped
    r.close()
    r.close()                               # idempotent
    with pytest.raises(uintr_loop.ReceiverClosedError) as info:
        s.send()
    assert isinstance(info.value, BrokenPipeError)
    assert info.value.errno == errno.ESHUTDOWN
    with pytest.raises(uintr_loop.ReceiverClosedError):
        r.vector_fd(3)
    run_iterations(loop)
    assert got == []                        # nothing delivered after close
    assert r.statistics().refused == 1


def test_sender_made_before_close_of_vector_fd_keeps_working(loop):
    got: list[int] = []
    r = uintr_loop.Receiver(got.append, loop=loop)
    vfd = r.vector_fd(8)
    s = uintr_loop.Sender(vfd)
    vfd.close()
    with pytest.raises(uintr_loop.SenderClosedError):
        uintr_loop.Sender(vfd)
    s.send()
    run_iterations(loop)
    assert got == [8]


def test_closed_sender_raises(loop):
    r = uintr_loop.Receiver(lambda v: None, loop=loop)
    s = uintr_loop.Sender(r.vector_fd(1))
    s.close()
    s.close()
    assert s.closed
    with pytest.raises(uintr_loop.SenderClosedError):
        s.send()


def test_closing_the_loop_shuts_its_receivers(loop):
    r = uintr_loop.Receiver(lambda v: None, loop=loop)
    s = uintr_loop.Sender(r.vector_fd(1))
    loop.close()
    assert r.closed
    with pytest.raises(uintr_loop.ReceiverClosedError):
        s.send()
    with pytest.raises(RuntimeError, match="closed"):
        loop.call_soon_threadsafe(print)
    with pytest.raises(RuntimeError, match="closed"):
        uintr_loop.Receiver(print, loop=loop)


@pytest.mark.parametrize("vector", [-1, 64, 1000])
def test_vector_out_of_range(loop, vector):
    r = uintr_loop.Receiver(lambda v: None, loop=loop)
    with pytest.raises(ValueError, match="0..63"):
        r.vector_fd(vector)


@pytest.mark.parametrize("vector", [1.0, "3", None, True])
def test_vector_of_wrong_type(loop, vector):
    r = uintr_loop.Receiver(lambda v: None, loop=loop)
    with pytest.raises(TypeError):
        r.vector_fd(vector)


def test_bad_constructor_arguments(loop):
    with pytest.raises(TypeError, match="callable"):
        uintr_loop.Receiver(42, loop=loop)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="VectorFd"):
        uintr_loop.Sender("3")  # type: ignore[arg-type]
    # (an int is a vector fd number: tests/test_xproc_fds.py checks bad ones)
    stock = asyncio.new_event_loop()
    try:
        with pytest.raises(TypeError, match="uintr_loop event loop"):
            uintr_loop.Receiver(print, loop=stock)
    finally:
        stock.close()
    with pytest.raises(RuntimeError, match="no running event loop"):
        uintr_loop.Receiver(print)


def test_receiver_table_is_bounded_and_slots_are_reused(loop):
    receivers = [uintr_loop.Receiver(lambda v: None, loop=loop) for _ in range(63)]
    with pytest.raises(RuntimeError, match="at most 63 receivers"):
        uintr_loop.Receiver(lambda v: None, loop=loop)
    receivers.pop().close()                 # closed and dropped: its slot is free
    got: list[int] = []
    again = uintr_loop.Receiver(got.append, loop=loop)
    uintr_loop.Sender(again.vector_fd(2)).send()
    run_iterations(loop)
    assert got == [2]


def test_slot_is_not_reused_while_a_sender_holds_it(loop):
    receivers = [uintr_loop.Receiver(lambda v: None, loop=loop) for _ in range(63)]
    old = receivers.pop()
    stale = uintr_loop.Sender(old.vector_fd(4))
    old.close()
    del old
    with pytest.raises(RuntimeError, match="at most 63"):
        uintr_loop.Receiver(lambda v: None, loop=loop)
    with pytest.raises(uintr_loop.ReceiverClosedError):
        stale.send()


# -- the nogil cimport API -----------------------------------------------------

def test_native_thread_sends_without_the_gil(loop):
    got: list[int] = []
    r = uintr_loop.Receiver(got.append, loop=loop)
    s = uintr_loop.Sender(r.vector_fd(33))

    async def main() -> tuple[int, int]:
        job = NativeSender(s, 10_000)
        sent, error = await asyncio.to_thread(job.join)
        while not got:
            await asyncio.sleep(0.001)
        return sent, error

    assert loop.run_until_complete(asyncio.wait_for(main(), 30)) == (10_000, 0)
    st = r.statistics()
    assert st.posted == 10_000
    assert set(got) == {33} and 1 <= len(got) == st.delivered <= st.notifications


def test_native_send_to_closed_receiver_reports_eshutdown(loop):
    r = uintr_loop.Receiver(lambda v: None, loop=loop)
    s = uintr_loop.Sender(r.vector_fd(1))
    r.close()
    assert NativeSender(s, 5).join() == (0, -errno.ESHUTDOWN)
    s2 = uintr_loop.Sender(uintr_loop.Receiver(lambda v: None, loop=loop).vector_fd(1))
    s2.close()
    assert NativeSender(s2, 5).join() == (0, -errno.EBADF)
    with pytest.raises(TypeError):
        NativeSender(object(), 1)


@pytest.mark.parametrize("base", ["asyncio", "uvloop"])
def test_closed_loop_releases_its_fds_once_no_sender_holds_them(base: str) -> None:
    import gc
    import os

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    # libuv opens a process-wide pipe (its signal lock) the first time any
    # uv loop runs, and keeps it: one loop first, so only per-loop fds count.
    warm = uintr_loop.new_event_loop(base=base)
    warm.run_until_complete(asyncio.sleep(0))
    warm.close()
    gc.collect()
    before = open_fds()
    lp = uintr_loop.new_event_loop(base=base)
    r = uintr_loop.Receiver(lambda v: None, loop=lp)
    s = uintr_loop.Sender(r.vector_fd(1))
    lp.run_until_complete(asyncio.sleep(0))
    lp.close()
    final = lp.statistics()
    assert final.mode == "software" and final == lp.statistics()
    assert open_fds() > before                # the sender still holds the port
    with pytest.raises(uintr_loop.ReceiverClosedError):
        s.send()
    del r, s
    gc.collect()
    assert open_fds() == before


def test_vector_fd_cannot_be_forged_out_of_range(loop):
    r = uintr_loop.Receiver(lambda v: None, loop=loop)
    with pytest.raises(ValueError, match="0..63"):
        uintr_loop.VectorFd(r, 100)
    with pytest.raises(TypeError):
        uintr_loop.VectorFd(r, "1")
    r.close()
    with pytest.raises(uintr_loop.ReceiverClosedError):
        uintr_loop.VectorFd(r, 1)


def test_no_half_built_receiver_or_sender_can_exist():
    for cls in (uintr_loop.Receiver, uintr_loop.Sender, uintr_loop.VectorFd):
        with pytest.raises(TypeError):
            cls.__new__(cls)


def test_keyboard_interrupt_in_handler_propagates_and_strands_nothing(loop):
    got: list[int] = []

    def handler(v: int) -> None:
        if v == 30 and not got:
            got.append(-1)
            raise KeyboardInterrupt
        got.append(v)

    r = uintr_loop.Receiver(handler, loop=loop)
    for v in (30, 20, 10):
        uintr_loop.Sender(r.vector_fd(v)).send()
    with pytest.raises(KeyboardInterrupt):
        run_iterations(loop)
    # No new post: the rest still arrives. Driven by run_forever + stop, as
    # uvloop (plain too) may leave the interrupted run's stop() queued, which
    # would end a run_until_complete early (test_loop_lifecycle has the case).
    for _ in range(3):
        loop.call_soon(loop.stop)
        loop.run_forever()
    assert got == [-1, 20, 10]


FORK_SCRIPT = r"""
import asyncio, os, uintr_loop

loop = uintr_loop.new_event_loop()
got = []
r = uintr_loop.Receiver(got.append, loop=loop)
s = uintr_loop.Sender(r.vector_fd(6))
pid = os.fork()
if pid == 0:
    # the child holds copies of the parent's loop and receiver, mapped shared
    s.send()                    # a send from the child reaches the parent
    r.close()
    loop.close()
    os._exit(0)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0
loop.run_until_complete(asyncio.sleep(0))
s.send()                        # the parent's receiver is still open
loop.run_until_complete(asyncio.sleep(0))
print(got, r.closed)
loop.close()
"""


def test_child_closing_inherited_copies_leaves_the_parent_working() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", FORK_SCRIPT], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[6, 6] False"


class _PortSpy:
    """Stands in for the selector's port and records the protocol calls."""

    def __init__(self, port: Port) -> None:
        self.port, self.calls = port, []

    def check_owner(self) -> None:
        self.port.check_owner()            # not a protocol step: not recorded

    def prepare_to_block(self, timeout: float) -> bool:
        self.calls.append("prepare_to_block")   # busy-poll (if on), then restore
        return self.port.prepare_to_block(timeout)

    def recognise(self) -> None:
        self.calls.append("recognise")
        self.port.recognise()


@pytest.mark.parametrize(("timeout", "calls"), [
    (0, ["recognise"]),                       # a poll: SN stays set
    (0.001, ["prepare_to_block", "recognise"]),   # may block: clear SN, then set it again
    (None, ["prepare_to_block", "recognise"]),    # (a pending post makes this a poll)
])
def test_selector_clears_sn_only_when_it_may_block(asyncio_base_loop, timeout, calls):
    loop = asyncio_base_loop
    selector = loop._selector
    spy = _PortSpy(selector._uintr_port)
    selector._uintr_port = spy
    try:
        if timeout is None:
            loop._write_to_self()             # pending: the select must not block
        selector.select(timeout)
    finally:
        selector._uintr_port = spy.port
    assert spy.calls == calls


def test_receiver_closed_while_a_native_thread_is_sending(loop):
    """The race of close() against posts in flight: the sender sees
    -ESHUTDOWN from some post on, never crashes or hangs, and nothing is
    delivered once the receiver is closed."""
    got: list[int] = []
    r = uintr_loop.Receiver(got.append, loop=loop)
    s = uintr_loop.Sender(r.vector_fd(12))
    job = NativeSender(s, 50_000_000)      # far more than it can send before close

    async def main() -> tuple[int, int]:
        while job.published < 1000:
            await asyncio.sleep(0.001)
        r.close()
        delivered_at_close = len(got)
        result = await asyncio.to_thread(job.join)
        for _ in range(3):
            await asyncio.sleep(0)
        assert len(got) == delivered_at_close
        return result

    sent, error = loop.run_until_complete(asyncio.wait_for(main(), 60))
    assert error == -errno.ESHUTDOWN
    assert 1000 <= sent < 50_000_000
    st = r.statistics()
    assert st.posted == sent and st.refused == 1


def test_a_refused_vector_fd_or_lease_closes_no_fd() -> None:
    """Cython runs __dealloc__ even when __cinit__ refused its arguments, on
    a zeroed object: an fd field read as 0 would close stdin, and the next
    fd opened (a loop's epoll fd, say) would become fd 0."""
    from uintr_loop._core import SenderLease

    before = os.fstat(0)
    for make in (lambda: uintr_loop.VectorFd.__new__(uintr_loop.VectorFd),
                 lambda: uintr_loop.VectorFd(object(), 1)):
        with pytest.raises(TypeError):
            make()
    SenderLease.__new__(SenderLease)          # never filled in: owns no fd
    import gc
    gc.collect()
    after = os.fstat(0)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
