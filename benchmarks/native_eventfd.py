"""The native (no-GIL) sender on any loop: a C thread writes an eventfd the
loop watches with ``add_reader`` (floor/stamp_eventfd.c, loaded with ctypes).

This is the nearest equivalent, on a loop without user-interrupt receivers,
of uintr_loop's native sender (a pthread posting through the nogil API to a
``Receiver``): the sender holds no GIL, the loop wakes from its poller, and
the reader callback reads the clock. It runs on every loop, the uintr loops
included, so the two native paths can be compared on the same loop.
"""
from __future__ import annotations

import asyncio
import ctypes
import os
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE / "floor" / "stamp_eventfd.c"
LIB = HERE / "results" / "build" / "libstamp_eventfd.so"

_lib: tuple[ctypes.CDLL, ctypes.PyDLL] | None = None


def library() -> tuple[ctypes.CDLL, ctypes.PyDLL]:
    """(blocking entry points, GIL-holding entry points) of the sender library.

    ``stamp_eventfd_latency`` and ``_ack`` take well under a microsecond and
    never block, so they are called through ``PyDLL`` (the GIL stays held:
    releasing and retaking it would add to what is measured); ``_start`` and
    ``_join`` go through ``CDLL``, which releases the GIL."""
    global _lib
    if _lib is None:
        LIB.parent.mkdir(parents=True, exist_ok=True)
        if not LIB.exists() or LIB.stat().st_mtime < SRC.stat().st_mtime:
            tmp = LIB.with_name(f"{LIB.name}.{os.getpid()}")
            subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-pthread", "-o", str(tmp), str(SRC)], check=True)
            os.replace(tmp, LIB)
        blocking, quick = ctypes.CDLL(str(LIB)), ctypes.PyDLL(str(LIB))
        blocking.stamp_eventfd_start.restype = ctypes.c_void_p
        blocking.stamp_eventfd_start.argtypes = [ctypes.c_int, ctypes.c_uint64, ctypes.c_uint64]
        blocking.stamp_eventfd_join.restype = ctypes.c_uint64
        blocking.stamp_eventfd_join.argtypes = [ctypes.c_void_p, ctypes.c_int]
        quick.stamp_eventfd_latency.restype = ctypes.c_uint64
        quick.stamp_eventfd_latency.argtypes = [ctypes.c_void_p]
        quick.stamp_eventfd_ack.restype = None
        quick.stamp_eventfd_ack.argtypes = [ctypes.c_void_p]
        _lib = (blocking, quick)
    return _lib


async def eventfd_sender(wakeups: int, pause_s: float) -> list[int]:
    """Latencies (ns) of ``wakeups`` paced wakeups from a C thread via an eventfd."""
    blocking, quick = library()
    loop = asyncio.get_running_loop()
    samples: list[int] = []
    done = loop.create_future()
    efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    job = None
    latency, ack = quick.stamp_eventfd_latency, quick.stamp_eventfd_ack

    def on_readable() -> None:
        try:
            os.eventfd_read(efd)
        except BlockingIOError:
            return
        samples.append(latency(job))
        ack(job)
        if len(samples) == wakeups and not done.done():
            done.set_result(None)

    loop.add_reader(efd, on_readable)
    try:
        job = blocking.stamp_eventfd_start(efd, wakeups, int(pause_s * 1e9))
        if not job:
            raise OSError("stamp_eventfd_start failed")
        await done
    finally:
        loop.remove_reader(efd)
        if job:
            sent = blocking.stamp_eventfd_join(job, 0 if done.done() else 1)
            assert not done.done() or sent == wakeups, (sent, wakeups)
        os.close(efd)
    return samples
