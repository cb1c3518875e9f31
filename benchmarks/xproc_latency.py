"""Cross-process wake latency of user interrupts, next to cross-thread, in one run.

The same workload three ways, each waking a blocked uintr_loop:

* ``thread``:  a Python thread of the loop's process: stamp, ``Sender.send()``;
* ``process``: a Python process given the vector fd over SCM_RIGHTS: the same;
* ``pipe``:    a Python process writing the stamp to a pipe the loop reads
               (``add_reader``): what one would do without uintr_loop.

The stamp (``time.perf_counter_ns``, CLOCK_MONOTONIC, one clock for every
process) goes into shared memory before the send; the handler reads the clock
and acknowledges through an eventfd the sender blocks on; the sender pauses
and repeats. Rounds interleave the three modes.
Latency is stamp -> handler. It also measures how long senders take to learn
that a SIGKILLed receiving process is gone (the liveness watch).

    python benchmarks/xproc_latency.py [--quick] [--wakeups N] [--rounds R] [--json PATH]

Ratios between rows of one run are what to read; absolute figures on a shared
2-core machine are noise. Target: process p50 and p99 <= 1.2 x thread.
"""
from __future__ import annotations

import argparse
import asyncio
import ctypes
import dataclasses
import json
import mmap
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import uintr_loop

RESULTS = Path(__file__).resolve().parent / "results" / "xproc_latency.json"
VECTOR = 7


class Slot(ctypes.Structure):
    _fields_ = [("stamp", ctypes.c_uint64), ("seq", ctypes.c_uint64), ("ack", ctypes.c_uint64)]


def shared_slot(fd: int) -> tuple[mmap.mmap, Slot]:
    m = mmap.mmap(fd, mmap.PAGESIZE)
    return m, Slot.from_buffer(m)


def send_loop(slot: Slot, post: Any, ack_fd: int, wakeups: int, pause_s: float) -> None:
    """The sender's side, identical for every mode: stamp, post, then block
    until the handler acknowledges (an eventfd: the waiting sender takes no
    CPU from the loop, in a thread or in a process alike)."""
    clock = time.perf_counter_ns
    for i in range(1, wakeups + 1):
        time.sleep(pause_s)                # the loop blocks in the meantime
        slot.stamp = clock()
        slot.seq = i
        post(i)
        os.eventfd_read(ack_fd)


def child_main(sock_fd: int, mode: str, wakeups: int, pause_s: float) -> None:
    sock = socket.socket(fileno=sock_fd)
    _, fds = uintr_loop.recv_fds(sock, 3)
    m, slot = shared_slot(fds[0])
    if mode == "process":
        sender = uintr_loop.Sender(fds[1])
        send_loop(slot, lambda i: sender.send(), fds[2], wakeups, pause_s)
    else:
        wfd = fds[1]
        send_loop(slot, lambda i: os.write(wfd, b"x"), fds[2], wakeups, pause_s)


def spawn_child(mode: str, fds: list[int], wakeups: int, pause_s: float) -> subprocess.Popen[bytes]:
    ours, theirs = socket.socketpair()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", str(theirs.fileno()), mode, str(wakeups), str(pause_s)],
        pass_fds=(theirs.fileno(),),
    )
    theirs.close()
    uintr_loop.send_fds(ours, fds, b"fds")
    ours.close()
    return proc


WARMUP = 200
"""Wakeups at the start of each measurement that are not counted (a new child
process is still importing, faulting pages in and warming caches)."""


async def measure(mode: str, wakeups: int, pause_s: float) -> list[int]:
    loop = asyncio.get_running_loop()
    wakeups += WARMUP
    shm = os.memfd_create("xproc-bench", os.MFD_CLOEXEC)
    os.ftruncate(shm, mmap.PAGESIZE)
    m, slot = shared_slot(shm)
    ack = os.eventfd(0, os.EFD_CLOEXEC)
    samples: list[int] = []
    done = asyncio.Event()
    clock = time.perf_counter_ns

    def record() -> None:
        samples.append(clock() - slot.stamp)
        slot.ack = slot.seq
        os.eventfd_write(ack, 1)
        if len(samples) == wakeups:
            done.set()

    receiver = None
    thread = proc = None
    rfd = wfd = -1
    try:
        if mode == "pipe":
            rfd, wfd = os.pipe()
            os.set_blocking(rfd, False)

            def readable() -> None:
                os.read(rfd, 4096)
                record()

            loop.add_reader(rfd, readable)
            proc = spawn_child(mode, [shm, wfd, ack], wakeups, pause_s)
        else:
            receiver = uintr_loop.Receiver(lambda v: record(), loop=loop)
            vfd = receiver.vector_fd(VECTOR)
            if mode == "thread":
                sender = uintr_loop.Sender(vfd)
                thread = threading.Thread(
                    target=send_loop, args=(slot, lambda i: sender.send(), ack, wakeups, pause_s))
                thread.start()
            else:
                proc = spawn_child(mode, [shm, vfd.fileno(), ack], wakeups, pause_s)
            vfd.close()
        await asyncio.wait_for(done.wait(), 300)
    finally:
        if thread is not None:
            thread.join()
        if proc is not None:
            await asyncio.to_thread(proc.wait)
        if rfd >= 0:
            loop.remove_reader(rfd)
            os.close(rfd)
            os.close(wfd)
        if receiver is not None:
            receiver.close()
        del slot
        m.close()
        os.close(shm)
        os.close(ack)
    return samples[WARMUP:]


OWNER = r"""
import socket, sys, uintr_loop
sock = socket.socket(fileno=int(sys.argv[1]))
loop = uintr_loop.new_event_loop()
receiver = uintr_loop.Receiver(lambda v: None, loop=loop)
uintr_loop.send_fds(sock, [receiver.vector_fd(1)], b"vfd")
loop.run_forever()
"""


def owner_death_detection(trials: int) -> list[int]:
    """Nanoseconds from kill(SIGKILL) returning to the first refused send."""
    out = []
    for _ in range(trials):
        ours, theirs = socket.socketpair()
        proc = subprocess.Popen([sys.executable, "-c", OWNER, str(theirs.fileno())],
                                pass_fds=(theirs.fileno(),))
        theirs.close()
        _, fds = uintr_loop.recv_fds(ours, 1)
        ours.close()
        sender = uintr_loop.Sender(fds[0])
        os.close(fds[0])
        sender.send()
        t0 = time.perf_counter_ns()
        os.kill(proc.pid, signal.SIGKILL)
        while True:
            try:
                sender.send()
            except uintr_loop.ReceiverClosedError:
                out.append(time.perf_counter_ns() - t0)
                break
        proc.wait()
    return out


def pct(sorted_ns: list[int], q: float) -> float:
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1000.0


def summary(samples: list[int]) -> dict[str, float]:
    s = sorted(samples)
    return {"n": len(s), "p50_us": pct(s, 0.50), "p99_us": pct(s, 0.99),
            "p999_us": pct(s, 0.999), "mean_us": statistics.fmean(s) / 1000.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wakeups", type=int, help="counted per row (default 20000; --quick 2000)")
    parser.add_argument("--pause-us", type=float, default=50.0)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of all modes")
    parser.add_argument("--kill-trials", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="2000 wakeups, 2 rounds, 3 kill trials")
    parser.add_argument("--json", default=str(RESULTS), help=f"default: {RESULTS}")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.kill_trials = 2, 3
    if args.wakeups is None:
        args.wakeups = 2000 if args.quick else 20000

    results: dict[str, Any] = {"wakeups": args.wakeups, "pause_us": args.pause_us,
                               "rounds": args.rounds, "rows": {}}
    modes = ("thread", "process", "pipe")
    samples: dict[str, list[int]] = {mode: [] for mode in modes}
    per_round = max(1, args.wakeups // args.rounds)
    with asyncio.Runner(loop_factory=uintr_loop.new_event_loop) as runner:
        # Rounds interleave the modes, so load that comes and goes on a shared
        # machine falls on all of them alike.
        for _ in range(args.rounds):
            for mode in modes:
                samples[mode] += runner.run(measure(mode, per_round, args.pause_us / 1e6))
        for mode in modes:
            results["rows"][mode] = summary(samples[mode])
        results["loop_statistics"] = dataclasses.asdict(runner.get_loop().statistics())
    detection = sorted(owner_death_detection(args.kill_trials))
    results["owner_death_detection_us"] = {
        "n": len(detection), "p50": pct(detection, 0.5), "max": detection[-1] / 1000.0}
    rows = results["rows"]
    ratio = {k: rows["process"][k] / rows["thread"][k] for k in ("p50_us", "p99_us", "p999_us")}
    results["process_over_thread"] = ratio
    results["target_met"] = ratio["p50_us"] <= 1.2 and ratio["p99_us"] <= 1.2

    print(f"Wake latency of a blocked uintr_loop, {per_round * args.rounds} wakeups each "
          f"(in {args.rounds} interleaved rounds), sender pausing {args.pause_us:g} us\n")
    print("| sender | p50 us | p99 us | p99.9 us | mean us |")
    print("|---|---:|---:|---:|---:|")
    for mode, label in (("thread", "thread, Sender.send"), ("process", "process, Sender.send"),
                        ("pipe", "process, pipe + add_reader")):
        r = rows[mode]
        print(f"| {label} | {r['p50_us']:.1f} | {r['p99_us']:.1f} | {r['p999_us']:.1f} | {r['mean_us']:.1f} |")
    print(f"\nprocess / thread: p50 {ratio['p50_us']:.2f}x, p99 {ratio['p99_us']:.2f}x, "
          f"p99.9 {ratio['p999_us']:.2f}x (target <= 1.2x: {'met' if results['target_met'] else 'NOT met'})")
    d = results["owner_death_detection_us"]
    print(f"receiver SIGKILLed -> sender refused: p50 {d['p50']:.0f} us, max {d['max']:.0f} us "
          f"over {d['n']} kills")
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
        sys.exit(0)
    sys.exit(main())
