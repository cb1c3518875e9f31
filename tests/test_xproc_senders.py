"""Senders in other processes: fork, SCM_RIGHTS to an unrelated process, no
event loop, native code without the GIL, receiver close, receiver killed,
sender killed. Every test runs real processes; no timing is asserted, waits
are bounded by hang guards."""
from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

import uintr_loop
from _support import HANG_GUARD, child_env, guarded
from _xproc import SharedCounter, finish, kill, spawn_owner, spawn_sender
from _testcore._state import liveness_state, repair_count
from _testcore._cells import half_post
from uintr_loop._native import NativeSender

VECTOR = 9


class Observed:
    """A handler that records, at each delivery, the counter a child publishes."""

    def __init__(self, counter: SharedCounter) -> None:
        self.counter, self.seen = counter, [0]
        self.event = asyncio.Event()

    def __call__(self, vector: int) -> None:
        assert vector == VECTOR
        self.seen.append(self.counter.value)
        self.event.set()

    async def until(self, value: int) -> None:
        while self.seen[-1] != value:
            self.event.clear()
            await self.event.wait()


def run_sender_child(loop: asyncio.AbstractEventLoop, count: int, native: bool = False,
                     via_socket: bool = True) -> tuple[dict[str, object], Observed,
                                                      uintr_loop.Receiver]:
    counter = SharedCounter()
    observed = Observed(counter)
    receiver = uintr_loop.Receiver(observed, loop=loop)
    vfd = receiver.vector_fd(VECTOR)
    args: dict[str, object] = {"count": count, "native": native}
    if via_socket:
        ours, theirs = socket.socketpair()
        args["sock"] = theirs.fileno()
        proc = spawn_sender(args, (theirs.fileno(),))
        theirs.close()
        uintr_loop.send_fds(ours, [vfd, counter.fd], b"vfd")
        ours.close()
    else:
        args["vfd"], args["counter"] = vfd.fileno(), counter.fd
        proc = spawn_sender(args, (vfd.fileno(), counter.fd))
    vfd.close()

    async def main() -> dict[str, object]:
        result = await asyncio.to_thread(finish, proc)
        if not native:
            await observed.until(count)
        return result

    try:
        result = loop.run_until_complete(guarded(main(), HANG_GUARD * 3))
    finally:
        counter.close()
    return result, observed, receiver


def test_scm_rights_to_an_unrelated_process_without_a_loop(uintr_only_loop):
    result, observed, receiver = run_sender_child(uintr_only_loop, 20_000)
    assert result == {"sent": 20_000, "error": None, "loop": None}
    assert observed.seen[-1] == 20_000          # the last post was delivered
    assert observed.seen == sorted(observed.seen)
    st = receiver.statistics()
    assert st.posted == 20_000 and st.refused == 0
    assert st.posted == st.notifications + st.coalesced + st.suppressed
    assert 1 <= st.delivered == len(observed.seen) - 1


def test_inherited_vector_fd_in_a_spawned_child(uintr_only_loop):
    result, observed, receiver = run_sender_child(uintr_only_loop, 5_000, via_socket=False)
    assert result["sent"] == 5_000 and result["error"] is None
    assert observed.seen[-1] == 5_000 and receiver.statistics().posted == 5_000


def test_native_sender_in_another_process(uintr_only_loop):
    result, observed, receiver = run_sender_child(uintr_only_loop, 50_000, native=True)
    assert result["sent"] == 50_000 and result["error"] == 0
    assert receiver.statistics().posted == 50_000

    async def delivered_once() -> None:
        while len(observed.seen) < 2:
            observed.event.clear()
            await observed.event.wait()

    uintr_only_loop.run_until_complete(guarded(delivered_once()))


FORK_SCRIPT = r"""
import asyncio, ctypes, json, mmap, os, uintr_loop
from _testcore._state import liveness_state

loop = uintr_loop.new_event_loop()
shared = mmap.mmap(-1, 8)                       # anonymous, shared with the child
counter = ctypes.c_uint64.from_buffer(shared)
seen = []
receiver = uintr_loop.Receiver(lambda v: seen.append(counter.value), loop=loop)
vfd = receiver.vector_fd(4)
N = 10_000
pid = os.fork()
if pid == 0:
    # a forked child: no loop of its own; a new Sender from the inherited fd
    sender = uintr_loop.Sender(vfd.fileno())
    inherited = uintr_loop.Sender(vfd)           # the VectorFd object works too
    state = liveness_state()
    grandchild = os.fork()
    if grandchild == 0:
        # the watcher thread did not survive fork: the core restarts it
        os._exit(0 if liveness_state()["watcher_running"] else 4)
    _, gstatus = os.waitpid(grandchild, 0)
    for i in range(1, N + 1):
        counter.value = i
        (sender if i % 2 else inherited).send()
    ok = state["watched"] == 1 and state["watcher_running"]
    os._exit(os.waitstatus_to_exitcode(gstatus) or (0 if ok else 3))

async def main():
    while not seen or seen[-1] != N:
        await asyncio.sleep(0.001)
_, status = os.waitpid(pid, 0)
loop.run_until_complete(asyncio.wait_for(main(), 30))
print(json.dumps({"status": os.waitstatus_to_exitcode(status), "last": seen[-1],
                  "posted": receiver.statistics().posted}))
loop.close()
"""


def test_fork_child_sends_through_the_inherited_vector_fd() -> None:
    out = subprocess.run([sys.executable, "-c", FORK_SCRIPT], env=child_env(),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout) == {"status": 0, "last": 10_000, "posted": 10_000}


def test_receiver_close_reaches_senders_in_other_processes(uintr_only_loop):
    """A child sends until refused; the receiver is closed mid-stream."""
    counter = SharedCounter()
    receiver = uintr_loop.Receiver(lambda v: None, loop=uintr_only_loop)
    vfd = receiver.vector_fd(VECTOR)
    proc = spawn_sender({"count": 10**9, "vfd": vfd.fileno(), "counter": counter.fd},
                        (vfd.fileno(), counter.fd))
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + HANG_GUARD
        while counter.value < 1000 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert counter.value >= 1000
        receiver.close()
        result = finish(proc)
    finally:
        kill(proc)
        counter.close()
    assert result["error"] == errno.ESHUTDOWN
    st = receiver.statistics()
    # every send the child counted as done was posted; the refused one was counted as refused
    assert st.posted == result["sent"] and st.refused == 1


def test_native_sender_in_another_process_sees_receiver_close(uintr_only_loop):
    """A pthread without the GIL in another process, refused mid-stream."""
    receiver = uintr_loop.Receiver(lambda v: None, loop=uintr_only_loop)
    vfd = receiver.vector_fd(VECTOR)
    counter = SharedCounter()
    proc = spawn_sender({"count": 10**12, "native": True, "pause_ns": 20_000,
                         "vfd": vfd.fileno(), "counter": counter.fd},
                        (vfd.fileno(), counter.fd))
    try:
        deadline = time.monotonic() + HANG_GUARD
        while receiver.statistics().posted < 1000 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert receiver.statistics().posted >= 1000
        receiver.close()
        result = finish(proc)
    finally:
        kill(proc)
        counter.close()
    assert result["error"] == -errno.ESHUTDOWN
    st = receiver.statistics()
    assert st.posted == result["sent"] and st.refused == 1
    with pytest.raises(uintr_loop.ReceiverClosedError):
        uintr_loop.Sender(vfd.fileno())            # and no new sender of it


def wait_refused(sender: uintr_loop.Sender) -> bool:
    deadline = time.monotonic() + HANG_GUARD
    while time.monotonic() < deadline:
        try:
            sender.send()
        except uintr_loop.ReceiverClosedError as exc:
            assert exc.errno == errno.ESHUTDOWN
            return True
        time.sleep(0.0005)
    return False


@pytest.mark.parametrize("then", ["run", "idle"], ids=["owner-loop-running", "owner-loop-idle"])
def test_receiver_process_killed_senders_get_eshutdown(then: str) -> None:
    """SIGKILL: none of the owner's clean-up runs. Senders here (Python and
    native) learn it from the liveness watch, even when every post of theirs
    is coalesced or suppressed and so makes no syscall."""
    proc, fd = spawn_owner(VECTOR, then)
    try:
        sender = uintr_loop.Sender(fd)
        os.close(fd)
        for _ in range(1000):
            sender.send()               # first sets ON; the rest coalesce: no syscall
        assert liveness_state()["watched"] >= 1
        native = NativeSender(sender, 10**12, 20_000, 1)   # sends every 20 us until refused
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert wait_refused(sender), "no ReceiverClosedError within the hang guard after SIGKILL"
        sent, error = native.join()
        assert error == -errno.ESHUTDOWN and sent >= 0
        with pytest.raises(uintr_loop.ReceiverClosedError):
            sender.send()               # and for ever after
    finally:
        kill(proc)


def test_receiver_process_that_execs_is_gone_for_its_senders() -> None:
    """exec keeps the pid (no pidfd event) but closes the owner's fds."""
    keep: list[socket.socket] = []
    proc, fd = spawn_owner(VECTOR, "exec", keep)
    try:
        sender = uintr_loop.Sender(fd)
        os.close(fd)
        sender.send()
        keep[0].send(b"x")
        assert wait_refused(sender), "no ReceiverClosedError within the hang guard after exec"
        assert proc.poll() is None                  # the process itself lives on
    finally:
        keep[0].close()
        kill(proc)


def test_sender_opened_after_the_owner_died_is_refused() -> None:
    proc, fd = spawn_owner(VECTOR, "idle")
    proc.kill()
    proc.wait(timeout=60)
    try:
        with pytest.raises(uintr_loop.ReceiverClosedError):
            uintr_loop.Sender(fd)
    finally:
        os.close(fd)


def test_sender_process_killed_mid_stream_leaves_the_loop_healthy(uintr_only_loop):
    loop = uintr_only_loop
    got: list[int] = []
    receiver = uintr_loop.Receiver(got.append, loop=loop)
    vfd = receiver.vector_fd(VECTOR)
    counter = SharedCounter()
    proc = spawn_sender({"count": 10**9, "vfd": vfd.fileno(), "counter": counter.fd},
                        (vfd.fileno(), counter.fd))

    async def main() -> None:
        assert proc.stdout is not None
        line = await asyncio.to_thread(proc.stdout.readline)
        assert line.strip() == "ready"
        while receiver.statistics().posted < 5000:
            await asyncio.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait)
        got.clear()
        local = uintr_loop.Sender(vfd)
        local.send()                              # the loop still takes posts
        while VECTOR not in got:
            await asyncio.sleep(0.001)
        loop.call_soon_threadsafe(got.append, -1)  # and wakeups
        while -1 not in got:
            await asyncio.sleep(0.001)

    try:
        loop.run_until_complete(guarded(main(), HANG_GUARD * 3))
    finally:
        kill(proc)
        counter.close()


def test_half_done_post_of_a_killed_sender_is_repaired(uintr_only_loop):
    """The worst instant to kill a sender process: after it set ON in the
    receiver's UPID, before it posted NV to the loop. Later posts coalesce on
    that ON; the loop repairs the post when the process's exit wakes it."""
    loop = uintr_only_loop
    got: list[int] = []
    receiver = uintr_loop.Receiver(got.append, loop=loop)
    vfd = receiver.vector_fd(VECTOR)
    counter = SharedCounter()
    proc = spawn_sender({"count": 1, "vfd": vfd.fileno(), "counter": counter.fd, "half": True},
                        (vfd.fileno(), counter.fd))
    sender = uintr_loop.Sender(vfd)

    async def main() -> None:
        assert proc.stdout is not None
        line = await asyncio.to_thread(proc.stdout.readline)
        assert line.strip() == "ready", line
        sender.send()                             # coalesced on the stuck ON
        await asyncio.sleep(0.05)
        assert got == []                          # nothing woke the loop
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait, HANG_GUARD)
        while not got:
            await asyncio.sleep(0.01)

    try:
        loop.run_until_complete(guarded(main()))
    finally:
        kill(proc)
        counter.close()
    assert got == [VECTOR]
    assert repair_count(loop) == 1
    sender.send()                                 # and the receiver works normally after
    loop.run_until_complete(asyncio.sleep(0.001))
    assert got == [VECTOR, VECTOR]


def test_three_sender_processes_at_once_lose_nothing(uintr_only_loop):
    """Concurrent posts from three processes (two Python, one native) to one
    vector: each Python child's last post is seen, and every post is counted."""
    loop = uintr_only_loop
    counters = [SharedCounter() for _ in range(3)]
    seen: list[tuple[int, ...]] = []
    event = asyncio.Event()

    def handler(vector: int) -> None:
        seen.append(tuple(c.value for c in counters))
        event.set()

    receiver = uintr_loop.Receiver(handler, loop=loop)
    vfd = receiver.vector_fd(VECTOR)
    counts = (20_000, 15_000, 30_000)
    procs = [
        spawn_sender({"count": n, "native": i == 2, "vfd": vfd.fileno(), "counter": c.fd},
                     (vfd.fileno(), c.fd))
        for i, (n, c) in enumerate(zip(counts, counters))
    ]

    async def main() -> list[dict[str, object]]:
        results = [await asyncio.to_thread(finish, p) for p in procs]
        while not seen or seen[-1][:2] != counts[:2]:
            event.clear()
            await event.wait()
        return results

    try:
        results = loop.run_until_complete(guarded(main(), HANG_GUARD * 3))
    finally:
        for p in procs:
            kill(p)
        for c in counters:
            c.close()
    assert [r["sent"] for r in results] == list(counts)
    assert [r["error"] for r in results] == [None, None, 0]
    st = receiver.statistics()
    assert st.posted == sum(counts) and st.refused == 0
    assert st.posted == st.notifications + st.coalesced + st.suppressed
