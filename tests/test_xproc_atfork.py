"""Regression: a process with a cross-process sender (so a liveness watcher
and its pthread_atfork handlers) that then spawns a child through uvloop.

uvloop's spawn runs Python's at-fork hooks from inside fork(), in its own
pthread_atfork child handler. When that handler was registered before ours
(any uvloop spawn before the first lease), our hook ran while our prepare
handler's lock was still held by the forking thread, and the child hung for
ever in pthread_mutex_lock (liveness.h, uintr_liveness_after_fork). Run in a
child interpreter, so a hang fails by timeout instead of hanging the suite.
"""
from __future__ import annotations

import subprocess
import sys

from _support import child_env

SCRIPT = r"""
import asyncio, socket, subprocess, sys
import uintr_loop
from _testcore._state import liveness_state

OWNER = '''
import socket, sys, uintr_loop
sock = socket.socket(fileno=int(sys.argv[1]))
loop = uintr_loop.new_event_loop()
r = uintr_loop.Receiver(lambda v: None, loop=loop)
uintr_loop.send_fds(sock, [r.vector_fd(2)], b"vfd")
sock.recv(1)
'''

async def spawn():
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    return await proc.wait()

assert uintr_loop.run(spawn(), base="uvloop") == 0   # uvloop's fork handler first
ours, theirs = socket.socketpair()
owner = subprocess.Popen([sys.executable, "-c", OWNER, str(theirs.fileno())],
                         pass_fds=(theirs.fileno(),))
theirs.close()
_, fds = uintr_loop.recv_fds(ours, 1)
sender = uintr_loop.Sender(fds[0])                     # then ours: a watched lease
sender.send()
assert liveness_state()["watcher_running"]
for _ in range(3):
    assert uintr_loop.run(spawn(), base="uvloop") == 0
ours.send(b"x")
assert owner.wait(30) == 0
try:
    sender.send()                                      # the watcher still works
except uintr_loop.ReceiverClosedError:
    pass
print("ok")
"""


def test_uvloop_spawn_after_a_watched_lease_does_not_hang_the_child() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=child_env(), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]
