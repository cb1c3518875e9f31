"""Vector fds as file descriptors: what they are, bad input, the owner's
reference count on a block, the sealed table, and the SCM_RIGHTS helpers.
(Senders in other processes: test_xproc_senders.py.)"""
from __future__ import annotations

import array
import asyncio
import errno
import gc
import os
import socket
import stat

import pytest

import uintr_loop
from _testcore._state import liveness_state


def run_iterations(loop: asyncio.AbstractEventLoop, n: int = 3) -> None:
    for _ in range(n):
        loop.run_until_complete(asyncio.sleep(0))


def peek_capsule(fd: int) -> tuple[bytes, list[int]]:
    """What a holder of the vector fd can take out of it (see vectorfd.h)."""
    sock = socket.socket(fileno=os.dup(fd))
    try:
        numbers = array.array("i")
        data, anc, flags, _ = sock.recvmsg(64, socket.CMSG_SPACE(8 * numbers.itemsize),
                                           socket.MSG_PEEK | socket.MSG_DONTWAIT)
        for _level, _kind, payload in anc:
            numbers.frombytes(payload)
        return data, list(numbers)
    finally:
        sock.close()


def test_vector_fd_is_a_close_on_exec_socket(uintr_only_loop):
    r = uintr_loop.Receiver(lambda v: None, loop=uintr_only_loop)
    vfd = r.vector_fd(5)
    fd = vfd.fileno()
    assert stat.S_ISSOCK(os.fstat(fd).st_mode)
    assert not os.get_inheritable(fd)          # close-on-exec, as the kernel's vector fds
    vfd.close()
    vfd.close()                                # idempotent
    with pytest.raises(OSError):
        os.fstat(fd)                           # the fd itself is closed
    with pytest.raises(uintr_loop.SenderClosedError):
        vfd.fileno()


def test_sender_from_an_int_fd_in_the_same_process(uintr_only_loop):
    got: list[int] = []
    r = uintr_loop.Receiver(got.append, loop=uintr_only_loop)
    vfd = r.vector_fd(12)
    watched = liveness_state()["watched"]
    copy = os.dup(vfd.fileno())                   # any copy of the fd will do
    s = uintr_loop.Sender(copy)
    os.close(copy)
    assert s.vector == 12 and s.vector_fd is None
    assert liveness_state()["watched"] == watched  # our own table: nothing to watch
    s.send()
    run_iterations(uintr_only_loop)
    assert got == [12]
    r.close()
    with pytest.raises(uintr_loop.ReceiverClosedError):
        s.send()


def test_closing_the_fd_revokes_no_registered_sender(uintr_only_loop):
    got: list[int] = []
    r = uintr_loop.Receiver(got.append, loop=uintr_only_loop)
    vfd = r.vector_fd(3)
    s = uintr_loop.Sender(vfd.fileno())
    vfd.close()
    s.send()
    run_iterations(uintr_only_loop)
    assert got == [3]


@pytest.fixture
def bad_fds(tmp_path):
    """One fd of every kind that is not a vector fd, closed at the end."""
    made: dict[str, int] = {}
    made["regular file"] = os.open(tmp_path / "f", os.O_CREAT | os.O_RDWR)
    made["pipe"], w = os.pipe()
    made["eventfd"] = os.eventfd(0)
    tcp = socket.socket()
    made["tcp socket"] = tcp.detach()
    stream, peer = socket.socketpair()
    made["unix stream socket"] = stream.detach()
    peer.close()
    empty, other = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    made["empty seqpacket socket"] = empty.detach()
    junk, sender = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sender.send(b"x" * 32)
    made["seqpacket socket with junk"] = junk.detach()
    lonely = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    made["unconnected seqpacket socket"] = lonely.detach()
    extra = [w, other.detach(), sender.detach()]
    yield made
    for fd in [*made.values(), *extra]:
        os.close(fd)


EXPECTED = {
    "regular file": "not a socket",
    "pipe": "not a socket",
    "eventfd": "not a socket",
    "tcp socket": "not a uintr_loop vector fd",
    "unix stream socket": "not a uintr_loop vector fd",
    "empty seqpacket socket": "carries no capability",
    "unconnected seqpacket socket": "carries no capability",
    "seqpacket socket with junk": "not a vector fd of this uintr_loop version",
}


def test_fds_that_are_not_vector_fds_are_refused_by_name(bad_fds, uintr_only_loop):
    r = uintr_loop.Receiver(lambda v: None, loop=uintr_only_loop)
    for kind, fd in bad_fds.items():
        with pytest.raises(uintr_loop.InvalidVectorFdError, match=EXPECTED[kind]):
            uintr_loop.Sender(fd)
    # the junk socket kept its message (a peek takes nothing), the loop is fine
    s = uintr_loop.Sender(r.vector_fd(1))
    s.send()


def test_closed_negative_and_absurd_fds(uintr_only_loop):
    fd = os.open(os.devnull, os.O_RDONLY)
    os.close(fd)
    for bad in (fd, -1, 2**31, 2**40):
        with pytest.raises(uintr_loop.InvalidVectorFdError):
            uintr_loop.Sender(bad)
    for wrong in (True, 1.5, "3", None, b"3"):
        with pytest.raises(TypeError, match="vector fd"):
            uintr_loop.Sender(wrong)  # type: ignore[arg-type]


def test_consumed_capsule_is_reported_and_senders_keep_working(uintr_only_loop):
    """A holder that recv()s instead of peeking spoils that fd for new
    senders (the trust model, docs/design/vector-fds.md); registered senders go on."""
    got: list[int] = []
    r = uintr_loop.Receiver(got.append, loop=uintr_only_loop)
    vfd = r.vector_fd(2)
    s = uintr_loop.Sender(vfd.fileno())
    sock = socket.socket(fileno=os.dup(vfd.fileno()))
    _, anc, _, _ = sock.recvmsg(64, socket.CMSG_SPACE(16))
    for _level, _kind, payload in anc:
        for fd in array.array("i", payload):
            os.close(fd)
    sock.close()
    with pytest.raises(uintr_loop.InvalidVectorFdError, match="consumed"):
        uintr_loop.Sender(vfd.fileno())
    s.send()
    run_iterations(uintr_only_loop)
    assert got == [2]


def test_holders_cannot_resize_the_table(uintr_only_loop):
    """A shrunk shared mapping raises SIGBUS on access: the memfd is sealed."""
    r = uintr_loop.Receiver(lambda v: None, loop=uintr_only_loop)
    vfd = r.vector_fd(1)
    data, fds = peek_capsule(vfd.fileno())
    try:
        assert len(data) == 32 and len(fds) == 3    # table, eventfd, registration
        table = fds[0]
        for size in (0, 100, 1 << 20):
            with pytest.raises(PermissionError):
                os.ftruncate(table, size)
        assert os.fstat(table).st_size == 4096
    finally:
        for fd in fds:
            os.close(fd)
    s = uintr_loop.Sender(vfd)
    s.send()


def test_vector_fd_cannot_be_sent_to(uintr_only_loop):
    """No holder can queue a message of its own into a vector fd."""
    r = uintr_loop.Receiver(lambda v: None, loop=uintr_only_loop)
    vfd = r.vector_fd(1)
    sock = socket.socket(fileno=os.dup(vfd.fileno()))
    try:
        with pytest.raises(BrokenPipeError):
            sock.send(b"forged")
    finally:
        sock.close()


def test_block_not_reused_while_a_copy_of_its_vector_fd_exists(uintr_only_loop):
    loop = uintr_only_loop
    receivers = [uintr_loop.Receiver(lambda v: None, loop=loop) for _ in range(63)]
    old = receivers.pop()
    vfd = old.vector_fd(4)
    elsewhere = os.dup(vfd.fileno())          # as if another process held it
    stale = uintr_loop.Sender(elsewhere)      # and a sender registered from it
    vfd.close()
    old.close()
    del old, vfd
    gc.collect()
    with pytest.raises(RuntimeError, match="at most 63"):
        uintr_loop.Receiver(lambda v: None, loop=loop)
    with pytest.raises(uintr_loop.ReceiverClosedError):
        uintr_loop.Sender(elsewhere)          # no new sender of a closed receiver
    os.close(elsewhere)                       # no fd left, but the sender still holds it
    with pytest.raises(RuntimeError, match="at most 63"):
        uintr_loop.Receiver(lambda v: None, loop=loop)
    with pytest.raises(uintr_loop.ReceiverClosedError):
        stale.send()
    del stale                                  # the last reference anywhere
    gc.collect()
    got: list[int] = []
    again = uintr_loop.Receiver(got.append, loop=loop)   # now the block is free
    uintr_loop.Sender(again.vector_fd(2)).send()
    run_iterations(loop)
    assert got == [2]


def test_send_fds_and_recv_fds_round_trip(uintr_only_loop):
    got: list[int] = []
    r = uintr_loop.Receiver(got.append, loop=uintr_only_loop)
    vfd = r.vector_fd(20)
    a, b = socket.socketpair()
    with a, b:
        assert uintr_loop.send_fds(a, [vfd, vfd.fileno()], b"two") == 3
        data, fds = uintr_loop.recv_fds(b, 2)
        assert data == b"two" and len(fds) == 2
        assert all(not os.get_inheritable(fd) for fd in fds)
        senders = [uintr_loop.Sender(fd) for fd in fds]
        for fd in fds:
            os.close(fd)
        for s in senders:
            s.send()
        run_iterations(uintr_only_loop)
        assert got == [20]                      # two posts of one vector coalesce
        assert r.statistics().posted == 2

        uintr_loop.send_fds(a, [vfd, vfd, vfd])
        with pytest.raises(OSError) as info:
            uintr_loop.recv_fds(b, 1)             # room for one: refuse, do not drop
        assert info.value.errno == errno.EMSGSIZE
        with pytest.raises(ValueError):
            uintr_loop.send_fds(a, [vfd], b"")


def test_fork_child_copy_of_a_receiver_cannot_mint_vector_fds(uintr_only_loop):
    import subprocess
    import sys

    from _support import child_env

    script = r"""
import os, uintr_loop
loop = uintr_loop.new_event_loop()
r = uintr_loop.Receiver(lambda v: None, loop=loop)
pid = os.fork()
if pid == 0:
    vfd = r.vector_fd(1)            # the child's copy: an in-process capability only
    try:
        vfd.fileno()
    except RuntimeError as exc:
        os._exit(0 if "only the process running" in str(exc) else 2)
    os._exit(1)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""
    out = subprocess.run([sys.executable, "-c", script], env=child_env(),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "0"


def test_repeated_vector_fds_do_not_pile_up_descriptors(uintr_only_loop):
    r = uintr_loop.Receiver(lambda v: None, loop=uintr_only_loop)
    r.vector_fd(1).close()
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(200):
        vfd = r.vector_fd(1)
        uintr_loop.Sender(vfd.fileno()).send()
        vfd.close()
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) <= before + 2
