"""call_soon_threadsafe from 1 and 4 threads: uintr_loop's asyncio base against
stock asyncio, side by side, meant for a free-threaded CPython (3.13t) without
the GIL, where posting threads really run at once.

    PYTHON_GIL=0 python3.13t benchmarks/freethreaded.py [--rounds 7] [--calls 200000]

Each round runs every (loop, thread count) cell once, in an order that
alternates between rounds; each cell starts a fresh loop, releases N posting
threads together, and times until the loop has run every callback. Per cell:

  - throughput: calls per second, start to the last callback run;
  - CPU per call: the whole process's CPU time (posters and the loop,
    time.process_time) over the calls, and the posters' own (time.thread_time);
  - post cost: each poster times batches of 64 calls; p50/p99 of the
    per-call cost over every batch of every round.

Medians over rounds; the ratio uintr/asyncio is taken per round (the two ran
side by side) and its median reported. Results: a JSON file (default
benchmarks/results/freethreaded.json) and a table on stdout. Runs on a GIL
build too (the JSON says which).
"""
from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import statistics
import sys
import sysconfig
import threading
import time
from collections.abc import Callable
from typing import Any

import uintr_loop

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uintr-asyncio": functools.partial(uintr_loop.new_event_loop, base="asyncio"),
}
BATCH = 64


def _noop() -> None:
    pass


def run_cell(factory: Callable[[], asyncio.AbstractEventLoop], threads: int, calls: int) -> dict[str, Any]:
    """One flood: ``threads`` posters, ``calls`` callbacks in all."""
    per_thread = calls // threads
    total = per_thread * threads
    loop = factory()
    try:
        done = loop.create_future()
        remaining = total

        def hit() -> None:
            nonlocal remaining
            remaining -= 1          # the loop's thread only
            if remaining == 0:
                done.set_result(None)

        start = threading.Barrier(threads + 1)
        batch_ns: list[list[int]] = [[] for _ in range(threads)]
        poster_cpu = [0.0] * threads

        def post(k: int) -> None:
            call = loop.call_soon_threadsafe
            mine = batch_ns[k]
            clock = time.perf_counter_ns
            cpu0 = time.thread_time()
            start.wait()
            left = per_thread
            while left:
                n = BATCH if left >= BATCH else left
                t0 = clock()
                for _ in range(n):
                    call(hit)
                mine.append((clock() - t0) // n)
                left -= n
            poster_cpu[k] = time.thread_time() - cpu0

        posters = [threading.Thread(target=post, args=(k,)) for k in range(threads)]
        for p in posters:
            p.start()

        async def wait_all() -> tuple[float, float]:
            cpu0 = time.process_time()
            t0 = time.perf_counter()
            start.wait()                # releases the posters (the loop is running)
            await done
            return time.perf_counter() - t0, time.process_time() - cpu0

        wall, cpu = loop.run_until_complete(wait_all())
        for p in posters:
            p.join()
    finally:
        loop.close()
    return {
        "calls": total,
        "wall_s": wall,
        "calls_per_s": total / wall,
        "cpu_ns_per_call": cpu * 1e9 / total,
        "poster_cpu_ns_per_call": sum(poster_cpu) * 1e9 / total,
        "post_ns": [ns for mine in batch_ns for ns in mine],
    }


def pct(samples: list[int], q: float) -> float:
    s = sorted(samples)
    return float(s[min(len(s) - 1, int(q * len(s)))]) if s else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=200_000, help="callbacks per cell (all threads)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "results", "freethreaded.json"))
    args = ap.parse_args(argv)

    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    cells = [(name, n) for n in args.threads for name in LOOPS]
    raw: dict[str, list[dict[str, Any]]] = {f"{name}/{n}": [] for name, n in cells}
    run_cell(LOOPS["uintr-asyncio"], 1, 10_000)      # warm up (imports, first loop)
    for r in range(args.rounds):
        order = cells if r % 2 == 0 else cells[::-1]
        for name, n in order:
            raw[f"{name}/{n}"].append(run_cell(LOOPS[name], n, args.calls))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)

    summary: dict[str, Any] = {}
    for key, rounds in raw.items():
        posts = [ns for cell in rounds for ns in cell["post_ns"]]
        summary[key] = {
            "calls_per_s": statistics.median(c["calls_per_s"] for c in rounds),
            "cpu_ns_per_call": statistics.median(c["cpu_ns_per_call"] for c in rounds),
            "poster_cpu_ns_per_call": statistics.median(c["poster_cpu_ns_per_call"] for c in rounds),
            "post_ns_p50": pct(posts, 0.50),
            "post_ns_p99": pct(posts, 0.99),
            "rounds": [{k: v for k, v in c.items() if k != "post_ns"} for c in rounds],
        }
    ratios = {}
    for n in args.threads:
        a, u = raw[f"asyncio/{n}"], raw[f"uintr-asyncio/{n}"]
        ratios[f"{n}"] = {
            "throughput_uintr_over_asyncio": statistics.median(
                x["calls_per_s"] / y["calls_per_s"] for x, y in zip(u, a)),
            "cpu_per_call_uintr_over_asyncio": statistics.median(
                x["cpu_ns_per_call"] / y["cpu_ns_per_call"] for x, y in zip(u, a)),
        }
    result = {
        "benchmark": "call_soon_threadsafe flood, free-threaded",
        "python": sys.version.split()[0],
        "free_threaded_build": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        "gil_enabled": bool(gil),
        "PYTHON_GIL": os.environ.get("PYTHON_GIL"),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "mode": uintr_loop.capabilities().mode,
        "rounds": args.rounds,
        "calls_per_cell": args.calls,
        "summary": summary,
        "ratios_by_threads": ratios,
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)

    print(f"Python {result['python']} free-threaded={result['free_threaded_build']} "
          f"GIL={'on' if gil else 'off'}; {args.rounds} rounds, {args.calls} calls per cell")
    print(f"{'loop/threads':<18}{'M calls/s':>10}{'CPU ns/call':>13}{'poster CPU':>12}"
          f"{'post p50 ns':>13}{'post p99 ns':>13}")
    for key, s in summary.items():
        print(f"{key:<18}{s['calls_per_s'] / 1e6:>10.3f}{s['cpu_ns_per_call']:>13.0f}"
              f"{s['poster_cpu_ns_per_call']:>12.0f}{s['post_ns_p50']:>13.0f}{s['post_ns_p99']:>13.0f}")
    for n, r in ratios.items():
        print(f"{n} thread(s): uintr/asyncio throughput x{r['throughput_uintr_over_asyncio']:.2f}, "
              f"CPU per call x{r['cpu_per_call_uintr_over_asyncio']:.2f} (medians of per-round ratios)")
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
