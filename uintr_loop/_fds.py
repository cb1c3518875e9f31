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
import sys
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
    fileno = getattr(obj, "fileno", None)
    if fileno is None:
        raise TypeError(
            f"send_fds takes ints, VectorFd objects or objects with fileno(), "
            f"got {type(obj).__name__}")
    fd: int = fileno()
    return fd


def _unix_socket(sock: object, who: str) -> socket.socket:
    if not isinstance(sock, socket.socket):
        raise TypeError(f"{who} needs a socket.socket, got {type(sock).__name__}")
    if sock.family != socket.AF_UNIX:
        raise ValueError(f"{who} needs an AF_UNIX socket (SCM_RIGHTS), got {sock.family!r}")
    return sock


def _count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def send_fds(sock: socket.socket, fds: Iterable[FdLike], data: bytes = b"\0") -> int:
    """Send ``fds`` (ints, ``VectorFd`` objects or anything with ``fileno()``)
    with ``data`` (at least one byte) over a connected Unix socket; returns
    the bytes of ``data`` sent. The sender keeps its own copies.

    Raises TypeError (``sock`` not a socket, ``fds`` not an iterable of
    fd-likes), ValueError (not AF_UNIX, empty ``data``, an fd out of the C
    int range), SenderClosedError (a closed ``VectorFd``) and OSError from
    the kernel (EBADF: a closed socket or fd; EPIPE/ENOTCONN: not connected).
    """
    _unix_socket(sock, "send_fds")
    if not data:
        raise ValueError("send_fds needs at least one byte of data to carry the fds")
    try:
        items = list(fds)
    except TypeError:
        raise TypeError(
            f"fds must be an iterable of file descriptors, got {type(fds).__name__}") from None
    try:
        numbers = array.array("i", [_fd(f) for f in items])
    except OverflowError:
        raise ValueError("send_fds: a file descriptor is out of range") from None
    return sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, numbers)])


def recv_fds(sock: socket.socket, maxfds: int, bufsize: int = 1024) -> tuple[bytes, list[int]]:
    """Receive ``(data, fds)``; the fds are new descriptors of this process,
    close-on-exec, to give to ``Sender(fd)`` (and to close when done).

    Raises OSError(EMSGSIZE) if more than ``maxfds`` descriptors (or more than
    ``bufsize`` bytes) were sent: the kernel would have dropped the excess.
    TypeError/ValueError for a ``sock`` that is not an AF_UNIX socket or a
    ``maxfds``/``bufsize`` that is not an int >= 0; OSError(EBADF) for a
    closed socket.
    """
    _unix_socket(sock, "recv_fds")
    maxfds = _count(maxfds, "maxfds")
    bufsize = _count(bufsize, "bufsize")
    numbers = array.array("i")
    try:
        space = socket.CMSG_SPACE(maxfds * numbers.itemsize)
    except OverflowError:
        raise ValueError(f"maxfds is too large: {maxfds}") from None
    if bufsize > sys.maxsize:
        raise ValueError(f"bufsize is too large: {bufsize}")
    data, ancdata, flags, _ = sock.recvmsg(bufsize, space, socket.MSG_CMSG_CLOEXEC)
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            numbers.frombytes(payload[: len(payload) - len(payload) % numbers.itemsize])
    fds = list(numbers)
    # CMSG_SPACE rounds up to 8 bytes: room for maxfds + 1 ints when maxfds is
    # odd, so the kernel can deliver one fd more than asked without MSG_CTRUNC
    if flags & (socket.MSG_CTRUNC | socket.MSG_TRUNC) or len(fds) > maxfds:
        import errno
        import os

        for fd in fds:
            os.close(fd)
        raise OSError(errno.EMSGSIZE, "recv_fds: message truncated (raise maxfds or bufsize)")
    return data, fds
