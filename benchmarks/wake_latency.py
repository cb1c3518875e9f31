"""Cross-thread wake latency and throughput: stock asyncio vs uintr_loop
(vs uvloop when installed), measured side by side in one run.

Wake latency: a Python thread stamps perf_counter_ns and calls
call_soon_threadsafe while the loop is blocked; the callback reads the clock.
Throughput: one thread posts call_soon_threadsafe as fast as it can; the
figure is callbacks run per second. Ratios between loops are what to read;
absolute numbers on a shared 2-core machine are noise.

    python benchmarks/wake_latency.py [--wakeups 20000] [--json out.json]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable

import uintr_loop


def loop_factories() -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop,
        "uintr": uintr_loop.new_event_loop,
    }
    try:
        import uvloop
    except ImportError:
        pass
    else:
        factories["uvloop"] = uvloop.new_event_loop
    return factories


def percentile(sorted_values: list[int], q: float) -> float:
    idx = min(len(sorted_values) - 1, int(q * len(sorted_values)))
    return float(sorted_values[idx])


async def wake_latency(wakeups: int, pause_s: float) -> list[int]:
    loop = asyncio.get_running_loop()
    samples: list[int] = []
    done = asyncio.Event()
    got = threading.Semaphore(0)

    def callback(stamp: int) -> None:
        samples.append(time.perf_counter_ns() - stamp)
        got.release()
        if len(samples) == wakeups:
            done.set()

    def sender() -> None:
        for _ in range(wakeups):
            time.sleep(pause_s)            # the loop blocks in the meantime
            loop.call_soon_threadsafe(callback, time.perf_counter_ns())
            got.acquire()

    thread = threading.Thread(target=sender)
    thread.start()
    await done.wait()
    thread.join()
    return samples


async def throughput(posts: int) -> float:
    loop = asyncio.get_running_loop()
    count = 0
    done = asyncio.Event()

    def callback() -> None:
        nonlocal count
        count += 1
        if count == posts:
            done.set()

    def sender() -> None:
        cst = loop.call_soon_threadsafe
        for _ in range(posts):
            cst(callback)

    t0 = time.perf_counter()
    thread = threading.Thread(target=sender)
    thread.start()
    await done.wait()
    elapsed = time.perf_counter() - t0
    thread.join()
    return posts / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wakeups", type=int, default=20000)
    parser.add_argument("--pause-us", type=float, default=50.0)
    parser.add_argument("--posts", type=int, default=200000)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)

    results = {}
    for name, factory in loop_factories().items():
        runner = asyncio.Runner(loop_factory=factory) if sys.version_info >= (3, 11) else None
        assert runner is not None, "benchmarks need Python 3.11+"
        with runner:
            lat = sorted(runner.run(wake_latency(args.wakeups, args.pause_us / 1e6)))
            tput = runner.run(throughput(args.posts))
            stats = getattr(runner.get_loop(), "statistics", None)
            results[name] = {
                "p50_us": percentile(lat, 0.50) / 1000,
                "p99_us": percentile(lat, 0.99) / 1000,
                "p999_us": percentile(lat, 0.999) / 1000,
                "mean_us": statistics.fmean(lat) / 1000,
                "callbacks_per_s": tput,
                "loop_statistics": stats().__dict__ if stats else None,
            }
    print(f"{'loop':8} {'p50 us':>8} {'p99 us':>8} {'p99.9 us':>9} {'cb/s (1 sender)':>16}")
    for name, r in results.items():
        print(f"{name:8} {r['p50_us']:8.1f} {r['p99_us']:8.1f} {r['p999_us']:9.1f} {r['callbacks_per_s']:16,.0f}")
    if "uintr" in results and results["uintr"]["loop_statistics"]:
        print("uintr loop statistics:", results["uintr"]["loop_statistics"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
