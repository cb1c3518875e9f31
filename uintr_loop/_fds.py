"""Passing vector fds between processes over a Unix socket (SCM_RIGHTS).

A vector fd is an ordinary file descriptor: ``socket.send_fds`` and
``multiprocessing.reduction.sendfds`` carry it as well. These helpers add
what those leave out: they accept ``VectorFd`` objects, receive with
close-on-exec set (as the kernel's vector fds are), and refuse a truncated
transfer instead of silently losing descriptors. (CPython 3.11's
``socket.recv_fds`` also ignores its ``flags`` argument.)
"""
from __future__ import annotations

import array
import socket
from collections.abc import Iterable
from typing import Protocol, Union


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


FdLike = Union[int, _HasFileno]


def _fd(obj: FdLike) -> int:
    if isinstance(obj, bool):
        raise TypeError("a file descriptor cannot be a bool")
    if isinstance(obj, int):
        return obj
    return obj.fileno()


def send_fds(sock: socket.socket, fds: Iterable[FdLike], data: bytes = b"\0") -> int:
    """Send ``fds`` (ints, ``VectorFd`` objects or anything with ``fileno()``)
    with ``data`` (at least one byte) over a connected Unix socket; returns
    the bytes of ``data`` sent. The sender keeps its own copies."""
    if not data:
        raise ValueError("send_fds needs at least one byte of data to carry the fds")
    numbers = array.array("i", (_fd(f) for f in fds))
    return sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, numbers)])


def recv_fds(sock: socket.socket, maxfds: int, bufsize: int = 1024) -> tuple[bytes, list[int]]:
    """Receive ``(data, fds)``; the fds are new descriptors of this process,
    close-on-exec, to give to ``Sender(fd)`` (and to close when done).

    Raises OSError(EMSGSIZE) if more than ``maxfds`` descriptors (or more than
    ``bufsize`` bytes) were sent: the kernel would have dropped the excess.
    """
    numbers = array.array("i")
    data, ancdata, flags, _ = sock.recvmsg(
        bufsize, socket.CMSG_SPACE(maxfds * numbers.itemsize), socket.MSG_CMSG_CLOEXEC)
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            numbers.frombytes(payload[: len(payload) - len(payload) % numbers.itemsize])
    fds = list(numbers)
    if flags & (socket.MSG_CTRUNC | socket.MSG_TRUNC):
        import errno
        import os

        for fd in fds:
            os.close(fd)
        raise OSError(errno.EMSGSIZE, "recv_fds: message truncated (raise maxfds or bufsize)")
    return data, fds
