"""The adaptive wakeup's study: thread round trips, the paced one-way wake
and the flood on busy-poll variants of the uintr loops, with CPU per op and
the loop's spin counters.

The workloads the adaptive wakeup (docs/design/adaptive-wakeup.md) is for,
on each loop side by side, in interleaved rounds; medians over rounds. They
are the ones ``make bench`` runs (``benchmarks/run.py``), from the modules
that own them:

* ``to_thread``, ``executor``, ``worker``, ``rcts``: the thread round trips
  of ``crossthread.py``.
* ``paced``: the Python sender of ``wake.py`` (one wakeup in flight, 50 us
  apart).
* ``flood1``/``flood4``: the flood of ``throughput.py`` from 1 or 4 threads.

Round trips report us per op (wall, the mean of the timed ops) and CPU us
per op: the process's CPU time (every thread, ``time.process_time``) over
the ops divided by their number, so a spin is never free in these figures.
The paced wake reports p50/p99 us and CPU us per wakeup, the flood callbacks
per second and CPU us per callback. The spin counters are the loop's
``statistics()`` after the workload. Every loop runs every workload once per
round.

    python benchmarks/roundtrip.py [--rounds 5] [--loops uvloop,uintr-uvloop,...]
        [--ops 3000] [--json out.json]

Loop names: asyncio, uvloop, uintr-uvloop, uintr-asyncio (default
configuration: adaptive wakeup), and ``<uintr name>@<busy_poll>`` for an
explicit ``busy_poll`` (``uintr-uvloop@0``: never spin).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from typing import Any

import crossthread
import throughput
import wake
from _common import loop_factory, percentiles, run_on, with_cpu

PAUSE_S = 50e-6
ROUND_TRIPS = ("to_thread", "executor", "worker", "rcts")
WORKLOADS = (*ROUND_TRIPS, "paced", "flood1", "flood4")


def measure(name: str, workload: str, ops: int, posts: int) -> dict[str, Any]:
    """One workload on a fresh loop: wall and CPU per op (or latency)."""
    factory = loop_factory(name)
    out: dict[str, Any]
    if workload in ROUND_TRIPS:
        (samples, cpu_ns), st = run_on(factory, lambda: crossthread.ROUND_TRIPS[workload](ops))
        out = {"us": sum(samples) / len(samples) / 1e3, "cpu_us": cpu_ns / len(samples) / 1e3}
    elif workload == "paced":
        (samples, cpu_ns), st = run_on(factory, lambda: with_cpu(wake.python_sender(ops, PAUSE_S)))
        pct = percentiles(samples)
        out = {"p50": pct["p50"], "p99": pct["p99"], "cpu_us": cpu_ns / len(samples) / 1e3}
    else:
        senders = int(workload.removeprefix("flood"))
        (rate, cpu_ns), st = run_on(factory, lambda: with_cpu(throughput.throughput(senders, posts)))
        out = {"rate": rate, "cpu_us": cpu_ns / (posts // senders * senders) / 1e3}
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
