"""Helpers for the cross-process tests: child programs and a shared counter.

Children are real interpreters (subprocess), given their fds through
``pass_fds`` or SCM_RIGHTS. A child sender publishes the sequence number of
each post in a shared 8-byte counter (a memfd) *before* posting it, so the
receiver's last delivery must observe the final count: a lost post would leave
the handler looking at an older number.
"""
from __future__ import annotations

import ctypes
import json
import mmap
import os
import socket
import subprocess
import sys
from typing import Any

from _support import HANG_GUARD, child_env

CHILD_TIMEOUT = 60.0


class SharedCounter:
    """An 8-byte counter in a memfd, shared with children through its fd."""

    def __init__(self) -> None:
        self.fd = os.memfd_create("uintr-test-counter", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, mmap.PAGESIZE)
        self._map = mmap.mmap(self.fd, mmap.PAGESIZE)
        self._value = ctypes.c_uint64.from_buffer(self._map)

    @property
    def value(self) -> int:
        return int(self._value.value)

    def close(self) -> None:
        del self._value
        self._map.close()
        os.close(self.fd)


SENDER_CHILD = r"""
import ctypes, errno, json, mmap, os, socket, sys
import uintr_loop

args = json.loads(sys.argv[1])
if "sock" in args:                       # the fds arrive by SCM_RIGHTS
    sock = socket.socket(fileno=args["sock"])
    data, fds = uintr_loop.recv_fds(sock, 2)
    assert data == b"vfd", data
    vfd, counter_fd = fds
else:                                    # inherited
    vfd, counter_fd = args["vfd"], args["counter"]
counter = ctypes.c_uint64.from_buffer(mmap.mmap(counter_fd, mmap.PAGESIZE))
sender = uintr_loop.Sender(vfd)
os.close(vfd)                            # registered: closing the fd revokes nothing
result = {"sent": 0, "error": None, "loop": None}
import asyncio
try:
    asyncio.get_running_loop()
    result["loop"] = "running"
except RuntimeError:
    pass
if args.get("native"):
    from uintr_loop._native import NativeSender
    print("ready", flush=True)
    sent, err = NativeSender(sender, args["count"], args.get("pause_ns", 0), 64).join()
    result["sent"], result["error"] = sent, err
else:
    start = args.get("start", 0)         # the counter goes on from here
    if args.get("half"):                 # the first half of one post, then wait to be killed
        from _testcore._cells import half_post
        counter.value = start + 1
        half_post(sender)
        print("ready", flush=True)
        import time; time.sleep(600)
    print("ready", flush=True)
    try:
        for i in range(1, args["count"] + 1):
            counter.value = start + i
            sender.send()
            result["sent"] = i
    except uintr_loop.ReceiverClosedError as exc:
        result["error"] = exc.errno
print(json.dumps(result), flush=True)
"""


def spawn_sender(args: dict[str, Any], pass_fds: tuple[int, ...]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", SENDER_CHILD, json.dumps(args)],
        pass_fds=pass_fds, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )


def kill(proc: subprocess.Popen[str]) -> None:
    """SIGKILL a child if it still runs, reap it and close its pipes."""
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=CHILD_TIMEOUT)


def finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=CHILD_TIMEOUT)
    assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{out}\n{err[-3000:]}"
    return dict(json.loads(out.strip().splitlines()[-1]))


OWNER_CHILD = r"""
import asyncio, json, os, socket, sys
import uintr_loop

args = json.loads(sys.argv[1])
sock = socket.socket(fileno=args["sock"])
loop = uintr_loop.new_event_loop()
receiver = uintr_loop.Receiver(lambda v: None, loop=loop)
vfd = receiver.vector_fd(args["vector"])
uintr_loop.send_fds(sock, [vfd], b"vfd")
if args["then"] == "run":
    loop.run_forever()                   # until killed
elif args["then"] == "exec":
    sock.recv(1)                         # then become another program: same pid,
    os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)"])
else:
    sock.recv(1)                         # blocked outside the loop, until killed
"""


def spawn_owner(vector: int, then: str,
                keep: list[socket.socket] | None = None) -> tuple[subprocess.Popen[str], int]:
    """A child that owns a loop and a receiver and sends back a vector fd;
    ``then`` = "run" (its loop), "idle" (blocked, loop not running) or "exec"
    (on a byte sent to the socket appended to ``keep``)."""
    ours, theirs = socket.socketpair()
    with theirs:
        proc = subprocess.Popen(
            [sys.executable, "-c", OWNER_CHILD,
             json.dumps({"sock": theirs.fileno(), "vector": vector, "then": then})],
            pass_fds=(theirs.fileno(),), env=child_env(), text=True,
        )
        ours.settimeout(HANG_GUARD * 3)
        import uintr_loop

        data, fds = uintr_loop.recv_fds(ours, 1)
        assert data == b"vfd" and len(fds) == 1, (data, fds)
    if keep is not None:
        keep.append(ours)
    else:
        ours.close()
    return proc, fds[0]
