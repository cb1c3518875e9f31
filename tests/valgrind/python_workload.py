"""A short run of the compiled extension, for valgrind memcheck (tests/_memcheck.py).

Every path of the core is taken a few thousand times on both bases: posts
from a thread with deliveries in between, call_soon_threadsafe from a thread,
the native sender, a Sender opened from a raw fd (a lease), masking, a task
receiver, a deadline, a cross-process lease whose owner is killed, and a
loop closed while a sender still lives. Everything is closed and dropped at
the end, so memcheck's leak check at exit sees only what the interpreter
itself keeps. Exit status 0 when every count checked out.

Run as ``python tests/valgrind/python_workload.py [posts]``.
"""
from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import threading

import uintr_loop
from uintr_loop import _native

POSTS = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
BATCH = 20

OWNER = r"""
import socket, sys
import uintr_loop
sock = socket.socket(fileno=int(sys.argv[1]))
loop = uintr_loop.new_event_loop()
receiver = uintr_loop.Receiver(lambda v: None, loop=loop)
uintr_loop.send_fds(sock, [receiver.vector_fd(6)], b"vfd")
loop.run_forever()                        # until killed
"""


async def threaded_posts(counts: dict[str, int]) -> None:
    loop = asyncio.get_running_loop()
    delivered = 0
    cond = threading.Condition()

    def handler(vector: int) -> None:
        nonlocal delivered
        with cond:
            delivered += 1
            cond.notify()

    receiver = uintr_loop.Receiver(handler)
    vfd = receiver.vector_fd(7)
    senders = [uintr_loop.Sender(vfd), uintr_loop.Sender(vfd.fileno())]   # in-process, lease
    vfd.close()

    def post() -> None:
        for b in range(POSTS // BATCH):
            with cond:
                seen = delivered
            for _ in range(BATCH):
                senders[b % 2].send()
            with cond:
                while delivered == seen:
                    cond.wait(10)

    await asyncio.to_thread(post)
    ran = 0
    done = asyncio.Event()

    def callback() -> None:
        nonlocal ran
        ran += 1
        if ran == POSTS:
            done.set()

    def threadsafe() -> None:
        for _ in range(POSTS):
            loop.call_soon_threadsafe(callback)

    await asyncio.gather(asyncio.to_thread(threadsafe), asyncio.wait_for(done.wait(), 60))
    native = _native.NativeSender(senders[1], POSTS, 1000, 64)
    sent, error = await asyncio.to_thread(native.join)
    assert (sent, error) == (POSTS, 0), (sent, error)
    await asyncio.sleep(0.01)
    with receiver.masked():
        senders[0].send()
    stats = receiver.statistics()
    assert stats.posted == 2 * POSTS + 1, stats
    receiver.close()
    try:
        senders[0].send()
        raise AssertionError("send to a closed receiver succeeded")
    except uintr_loop.ReceiverClosedError:
        pass
    for s in senders:
        s.close()
    counts["deliveries"] += delivered
    counts["callbacks"] += ran


async def task_receiver(counts: dict[str, int]) -> None:
    got: list[int] = []
    r = uintr_loop.Receiver.for_task(got.append)
    sender = uintr_loop.Sender(r.vector_fd(3))
    for _ in range(50):
        threading.Thread(target=sender.send).start()
        await r.wait(timeout=10)
    with r.masked():
        sender.send()
    await asyncio.sleep(0)
    sender.close()
    counts["task_deliveries"] += len(got)


async def cross_process(counts: dict[str, int]) -> None:
    ours, theirs = socket.socketpair()
    with theirs:
        owner = subprocess.Popen([sys.executable, "-c", OWNER, str(theirs.fileno())],
                                 pass_fds=(theirs.fileno(),))
    with ours:
        ours.settimeout(60)
        _, fds = uintr_loop.recv_fds(ours, 1)
    sender = uintr_loop.Sender(fds[0])
    os.close(fds[0])
    for _ in range(POSTS):
        sender.send()
    owner.send_signal(signal.SIGKILL)
    owner.wait(60)
    for _ in range(2000):                 # the watcher marks the table shut
        try:
            sender.send()
        except uintr_loop.ReceiverClosedError:
            counts["owner_deaths_seen"] += 1
            break
        await asyncio.sleep(0.005)
    sender.close()


def deadline() -> None:
    try:
        with uintr_loop.deadline(0.02):
            while True:
                pass
    except TimeoutError:
        return
    raise AssertionError("deadline did not fire")


def closed_with_a_live_sender(base: str) -> None:
    loop = uintr_loop.new_event_loop(base=base)
    receiver = uintr_loop.Receiver(lambda v: None, loop=loop)
    sender = uintr_loop.Sender(receiver.vector_fd(1))
    loop.close()
    try:
        sender.send()
        raise AssertionError("send after loop close succeeded")
    except uintr_loop.ReceiverClosedError:
        pass
    del receiver, loop
    sender.close()


def main() -> None:
    counts = {"deliveries": 0, "callbacks": 0, "task_deliveries": 0, "owner_deaths_seen": 0}
    for base in ("uvloop", "asyncio"):
        uintr_loop.run(threaded_posts(counts), base=base)
        uintr_loop.run(task_receiver(counts), base=base)
        closed_with_a_live_sender(base)
    uintr_loop.run(cross_process(counts))
    deadline()
    gc.collect()
    assert counts["callbacks"] == 2 * POSTS, counts
    assert counts["deliveries"] >= 2 * POSTS // BATCH, counts
    assert counts["task_deliveries"] >= 2 * 50, counts
    assert counts["owner_deaths_seen"] == 1, counts
    print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    main()
