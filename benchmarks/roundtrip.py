"""Thread round trips, the paced one-way wake and the flood, with CPU per op.

The workloads the adaptive wakeup (docs/design/adaptive-wakeup.md) is for,
on each loop side by side, in interleaved rounds; medians over rounds.

* ``to_thread``: ``await asyncio.to_thread(noop)`` in a loop.
* ``executor``: ``await loop.run_in_executor(None, noop)``.
* ``worker``: a dedicated thread takes ``(future, fn)`` from a
  ``queue.SimpleQueue``, runs ``fn`` and resolves the future with
  ``call_soon_threadsafe``.
* ``rcts``: a thread calls ``run_coroutine_threadsafe(coro, loop).result()``
  in a loop (the loop only runs the coroutines).
* ``paced``: a thread sleeps 50 us, stamps the clock and calls
  ``call_soon_threadsafe``; the callback reads the clock (one in flight).
* ``flood1``/``flood4``: 1 or 4 threads call ``call_soon_threadsafe`` as
  fast as they can; callbacks run per second.

Round trips report us per op (wall) and CPU us per op: the process's CPU
time (every thread, ``time.process_time``) over the run divided by the ops,
so a spin is never free in these figures. The paced wake reports p50/p99 us
and CPU us per wakeup. Every loop runs every workload once per round.

    python benchmarks/roundtrip.py [--rounds 5] [--loops uvloop,uintr-uvloop,...]
        [--ops 3000] [--json out.json]

Loop names: asyncio, uvloop, uintr-uvloop, uintr-asyncio (default
configuration: adaptive wakeup), and ``<uintr name>@<busy_poll>`` for an
explicit ``busy_poll`` (``uintr-uvloop@0``: never spin).
"""
from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import queue
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import uvloop

import uintr_loop

PAUSE_S = 50e-6


def factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "asyncio":
        return asyncio.new_event_loop
    if name == "uvloop":
        return uvloop.new_event_loop
    base_name, _, bp = name.partition("@")
    base = base_name.split("-", 1)[1]
    if bp:
        return functools.partial(uintr_loop.new_event_loop, base=base, busy_poll=float(bp))
    return functools.partial(uintr_loop.new_event_loop, base=base)


def noop() -> None:
    return None


async def to_thread(ops: int) -> int:
    for _ in range(ops):
        await asyncio.to_thread(noop)
    return ops


async def executor(ops: int) -> int:
    loop = asyncio.get_running_loop()
    for _ in range(ops):
        await loop.run_in_executor(None, noop)
    return ops


async def worker(ops: int) -> int:
    loop = asyncio.get_running_loop()
    jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def serve() -> None:
        while True:
            job = jobs.get()
            if job is None:
                return
            fut, fn = job
            loop.call_soon_threadsafe(fut.set_result, fn())

    t = threading.Thread(target=serve)
    t.start()
    try:
        for _ in range(ops):
            fut = loop.create_future()
            jobs.put((fut, noop))
            await fut
    finally:
        jobs.put(None)
        t.join()
    return ops


async def rcts(ops: int) -> int:
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    async def coro() -> int:
        return 1

    def client() -> None:
        try:
            for _ in range(ops):
                asyncio.run_coroutine_threadsafe(coro(), loop).result()
        finally:
            loop.call_soon_threadsafe(done.set_result, None)

    t = threading.Thread(target=client)
    t.start()
    await done
    t.join()
    return ops


async def paced(ops: int) -> list[int]:
    loop = asyncio.get_running_loop()
    samples: list[int] = []
    done = loop.create_future()
    got = threading.Semaphore(0)

    def callback(stamp: int) -> None:
        samples.append(time.perf_counter_ns() - stamp)
        got.release()
        if len(samples) == ops:
            done.set_result(None)

    def sender() -> None:
        for _ in range(ops):
            time.sleep(PAUSE_S)
            loop.call_soon_threadsafe(callback, time.perf_counter_ns())
            got.acquire()

    t = threading.Thread(target=sender)
    t.start()
    await done
    t.join()
    return samples


async def flood(senders: int, posts: int) -> int:
    loop = asyncio.get_running_loop()
    per = posts // senders
    total = per * senders
    count = 0
    done = loop.create_future()

    def callback() -> None:
        nonlocal count
        count += 1
        if count == total:
            done.set_result(None)

    def sender() -> None:
        cst = loop.call_soon_threadsafe
        for _ in range(per):
            cst(callback)

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    for t in threads:
        t.start()
    await done
    for t in threads:
        t.join()
    return total


WORKLOADS = ("to_thread", "executor", "worker", "rcts", "paced", "flood1", "flood4")


def measure(name: str, workload: str, ops: int, posts: int) -> dict[str, Any]:
    """One workload on a fresh loop: wall and CPU per op (or latency)."""
    coro_fn: Callable[[], Any] = {
        "to_thread": lambda: to_thread(ops),
        "executor": lambda: executor(ops),
        "worker": lambda: worker(ops),
        "rcts": lambda: rcts(ops),
        "paced": lambda: paced(ops),
        "flood1": lambda: flood(1, posts),
        "flood4": lambda: flood(4, posts),
    }[workload]
    with asyncio.Runner(loop_factory=factory(name)) as runner:
        runner.run(asyncio.sleep(0))        # the default executor etc. warm
        if workload in ("to_thread", "executor"):
            runner.run(to_thread(20))
        w0, c0 = time.perf_counter(), time.process_time()
        result = runner.run(coro_fn())
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        loop = runner.get_loop()
        st = loop.statistics() if hasattr(loop, "statistics") else None
    out: dict[str, Any] = {}
    if workload == "paced":
        s = sorted(result)
        out["p50"] = s[len(s) // 2] / 1000
        out["p99"] = s[min(len(s) - 1, int(0.99 * len(s)))] / 1000
        out["cpu_us"] = cpu / len(s) * 1e6
    elif workload.startswith("flood"):
        out["rate"] = result / wall
        out["cpu_us"] = cpu / result * 1e6
    else:
        out["us"] = wall / result * 1e6
        out["cpu_us"] = cpu / result * 1e6
    if st is not None:
        out["spins"] = st.busy_polls
        out["hits"] = st.busy_poll_hits
        out["spin_s"] = getattr(st, "busy_poll_time", 0.0)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--loops", default="asyncio,uvloop,uintr-uvloop,uintr-asyncio,uintr-uvloop@0")
    p.add_argument("--workloads", default=",".join(WORKLOADS))
    p.add_argument("--ops", type=int, default=3000)
    p.add_argument("--posts", type=int, default=200_000)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    loops = args.loops.split(",")
    workloads = args.workloads.split(",")
    rounds: list[dict[str, dict[str, Any]]] = []
    for i in range(args.rounds):
        print(f"round {i + 1}/{args.rounds}", file=sys.stderr, flush=True)
        r: dict[str, dict[str, Any]] = {}
        for wl in workloads:
            for name in loops:
                ops = args.ops if wl != "paced" else max(500, args.ops // 2)
                r[f"{wl}/{name}"] = measure(name, wl, ops, args.posts)
        rounds.append(r)

    def med(key: str, field: str) -> float:
        return statistics.median(r[key][field] for r in rounds)

    def ratio(wl: str, name: str, ref: str, field: str) -> float:
        return statistics.median(r[f"{wl}/{name}"][field] / r[f"{wl}/{ref}"][field] for r in rounds)

    print(f"\nPython {platform.python_version()}, {os.cpu_count()} CPUs, {args.rounds} rounds "
          f"(medians; ratios are medians of per-round ratios to uvloop)\n")
    print("| workload | loop | figure | CPU us/op | x uvloop | spins | hits | spin ms |")
    print("|---|---|---|---|---|---|---|---|")
    for wl in workloads:
        for name in loops:
            key = f"{wl}/{name}"
            if wl == "paced":
                fig = f"p50 {med(key, 'p50'):.1f} / p99 {med(key, 'p99'):.1f} us"
                rat = f"{ratio(wl, name, 'uvloop', 'p50'):.2f} / {ratio(wl, name, 'uvloop', 'p99'):.2f}"
            elif wl.startswith("flood"):
                fig = f"{med(key, 'rate') / 1e6:.2f} M/s"
                rat = f"{ratio(wl, name, 'uvloop', 'rate'):.2f}"
            else:
                fig = f"{med(key, 'us'):.1f} us"
                rat = f"{ratio(wl, name, 'uvloop', 'us'):.2f}"
            cpu = f"{med(key, 'cpu_us'):.1f}"
            spins = hits = spin_ms = ""
            if "spins" in rounds[0][key]:
                spins = f"{med(key, 'spins'):.0f}"
                hits = f"{med(key, 'hits'):.0f}"
                spin_ms = f"{med(key, 'spin_s') * 1e3:.1f}"
            if "uvloop" not in loops:
                rat = ""
            print(f"| {wl} | {name} | {fig} | {cpu} | {rat} | {spins} | {hits} | {spin_ms} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"python": platform.python_version(), "args": vars(args), "rounds": rounds}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
