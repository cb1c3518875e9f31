"""Wake latency: a sender stamps the time and wakes a blocked loop; the
callback (or user-interrupt handler) reads the clock.

* python: a Python thread calls ``call_soon_threadsafe`` (every loop).
* native: a pthread with no GIL sends through the nogil API (uintr loops).
* busy-poll: the same two senders, the uintr loops spinning on PIR before
  blocking (``busy_poll``), so the wakeup arrives during the spin.
* floor: benchmarks/floor/eventfd_floor.c, eventfd + epoll between two C
  threads: the best the kernel path does on this machine; "floor spin": the
  C receiver spins on the stamp instead (the hardware limit of busy-poll).

One wakeup is in flight at a time; the sender pauses between wakeups so the
loop is blocked (or spinning) when the next one comes.
"""
from __future__ import annotations

import asyncio
import os
import platform
import subprocess
import threading
import time
from pathlib import Path

import uintr_loop
from uintr_loop._native import StampSender

from _common import LOOPS, UINTR_LOOPS, log, run_on, uintr_factory

HERE = Path(__file__).resolve().parent
FLOOR_SRC = HERE / "floor" / "eventfd_floor.c"
# One binary per C library: the same work tree is built and run on this
# machine and in the private root of newer Pythons (make test-pythons), whose
# glibc is newer; a binary linked there does not run here.
FLOOR_BIN = HERE / "results" / "build" / f"eventfd_floor-glibc{platform.libc_ver()[1] or 'x'}"


async def python_sender(wakeups: int, pause_s: float) -> list[int]:
    loop = asyncio.get_running_loop()
    samples: list[int] = []
    done = loop.create_future()
    got = threading.Semaphore(0)

    def callback(stamp: int) -> None:
        samples.append(time.perf_counter_ns() - stamp)
        got.release()
        if len(samples) == wakeups:
            done.set_result(None)

    def sender() -> None:
        for _ in range(wakeups):
            time.sleep(pause_s)
            loop.call_soon_threadsafe(callback, time.perf_counter_ns())
            got.acquire()

    thread = threading.Thread(target=sender)
    thread.start()
    await done
    thread.join()
    return samples


async def native_sender(wakeups: int, pause_s: float) -> list[int]:
    loop = asyncio.get_running_loop()
    samples: list[int] = []
    done = loop.create_future()
    stamp: StampSender | None = None

    def handler(vector: int) -> None:
        assert stamp is not None
        samples.append(stamp.latency_ns())
        stamp.ack()
        if len(samples) == wakeups:
            done.set_result(None)

    receiver = uintr_loop.Receiver(handler)
    sender = uintr_loop.Sender(receiver.vector_fd(1))
    stamp = StampSender(sender, wakeups, int(pause_s * 1e9))
    await done
    sent, error = stamp.join()
    assert sent == wakeups and error == 0, (sent, error)
    receiver.close()
    return samples


def build_floor() -> Path:
    FLOOR_BIN.parent.mkdir(parents=True, exist_ok=True)
    if not FLOOR_BIN.exists() or FLOOR_BIN.stat().st_mtime < FLOOR_SRC.stat().st_mtime:
        subprocess.run(["gcc", "-O2", "-pthread", "-o", str(FLOOR_BIN), str(FLOOR_SRC)], check=True)
    return FLOOR_BIN


def floor(wakeups: int, pause_s: float, spin: bool = False) -> list[int]:
    cmd = [str(build_floor()), str(wakeups), str(int(pause_s * 1e9))] + (["spin"] if spin else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def one_round(wakeups: int, pause_s: float, busy_poll_us: float) -> dict[str, list[int]]:
    """Every wake scenario once, loops interleaved; samples in ns per series."""
    series: dict[str, list[int]] = {}
    series["floor"] = floor(wakeups, pause_s)
    series["floor spin"] = floor(wakeups, pause_s, spin=True)
    for name, factory in LOOPS.items():
        series[f"python/{name}"], _ = run_on(factory, lambda: python_sender(wakeups, pause_s))
    for name in UINTR_LOOPS:
        series[f"native/{name}"], _ = run_on(uintr_factory(name), lambda: native_sender(wakeups, pause_s))
    for name in UINTR_LOOPS:
        factory = uintr_factory(name, busy_poll=busy_poll_us)
        series[f"busy-poll native/{name}"], st = run_on(factory, lambda: native_sender(wakeups, pause_s))
        log(f"  busy-poll native/{name}: spins {st.busy_polls}, hits {st.busy_poll_hits}")
        series[f"busy-poll python/{name}"], st = run_on(factory, lambda: python_sender(wakeups, pause_s))
        log(f"  busy-poll python/{name}: spins {st.busy_polls}, hits {st.busy_poll_hits}")
    return series


if __name__ == "__main__":
    import json
    import sys

    from _common import percentiles

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    res = one_round(n, 50e-6, 200.0)
    print(json.dumps({k: percentiles(v) for k, v in res.items()}, indent=1))
    os._exit(0)
