"""Scheduler-shim overhead: a task-switch-heavy workload with the shim on
and off on the same uintr loop, side by side in one run, for each base.

Workload: T tasks each doing S ``await asyncio.sleep(0)`` (every step is a
task switch through call_soon). Variants, interleaved in every repetition:

  off          the loop's shim uninstalled (plain call_soon)
  on           shim installed, no task receiver anywhere (the common case)
  on+1rx       shim installed, one idle task receiver exists: the other
               tasks pay the attribute lookup and dict probe
  on+all-rx    every task is a receiver: each step is bracketed by
               switch-in (restore) and switch-out (suppress)
  asyncio      stock asyncio, for reference

The figure is ns per task switch, median over repetitions; overhead is
relative to ``off``. Target: ``on`` and ``on+1rx`` <= 10 %.

    python benchmarks/shim_overhead.py [--quick] [--json PATH]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time

import uintr_loop
from uintr_loop import Receiver

VARIANTS = ("off", "on", "on+1rx", "on+all-rx", "asyncio")


async def workload(tasks: int, steps: int, receivers: bool) -> int:
    async def worker() -> None:
        if receivers:
            Receiver.for_task(lambda v: None)
        for _ in range(steps):
            await asyncio.sleep(0)

    t0 = time.perf_counter_ns()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return time.perf_counter_ns() - t0


async def idle_receiver(stop: asyncio.Future[None]) -> None:
    Receiver.for_task(lambda v: None)
    await stop


def run_variant(loop: asyncio.AbstractEventLoop, variant: str, tasks: int, steps: int) -> float:
    """ns per task switch for one run of ``variant`` on ``loop``."""
    if variant != "asyncio":
        if variant == "off":
            uintr_loop.uninstall_shim(loop)
        else:
            uintr_loop.install_shim(loop)
    idle = None
    stop = loop.create_future()
    if variant == "on+1rx":
        idle = loop.create_task(idle_receiver(stop))
        loop.run_until_complete(asyncio.sleep(0))
    elapsed = loop.run_until_complete(workload(tasks, steps, variant == "on+all-rx"))
    stop.set_result(None)
    if idle is not None:
        loop.run_until_complete(idle)
    return elapsed / (tasks * steps)


def percent(x: float, base: float) -> str:
    return f"{(x / base - 1) * 100:+.1f}%"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=50,
                        help="tasks (at most 62: on+all-rx makes each a receiver)")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="a short run (3 repetitions, fewer steps)")
    parser.add_argument("--base", choices=("uvloop", "asyncio", "both"), default="both",
                        help="which uintr_loop base(s) to measure")
    parser.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results", "shim_overhead.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat, args.steps = 3, 100

    if os.environ.get("UINTR_LOOP_SHIM") == "0":
        print("UINTR_LOOP_SHIM=0 is set; unset it to measure the shim", file=sys.stderr)
        return 2
    bases = ("uvloop", "asyncio") if args.base == "both" else (args.base,)
    result: dict[str, object] = {
        "benchmark": "shim_overhead", "python": sys.version.split()[0],
        "tasks": args.tasks, "steps": args.steps, "repeat": args.repeat, "bases": {},
    }
    met = True
    for base_name in bases:
        samples = measure(base_name, args)
        med = {v: statistics.median(s) for v, s in samples.items()}
        base = med["off"]
        print(f"shim overhead, {base_name} base: {args.tasks} tasks x {args.steps} sleep(0), "
              f"median of {args.repeat} runs\n")
        print("| variant | ns/switch (median) | min | max | vs off |")
        print("|---|---|---|---|---|")
        for v in VARIANTS:
            print(f"| {v} | {med[v]:.0f} | {min(samples[v]):.0f} | {max(samples[v]):.0f} | "
                  f"{'-' if v == 'off' else percent(med[v], base)} |")
        target = max(med["on"], med["on+1rx"]) / base - 1
        met = met and target <= 0.10
        print(f"\ntarget (shim on, non-receiver tasks) <= +10%: {target * 100:+.1f}% "
              f"{'met' if target <= 0.10 else 'NOT met'}\n")
        result["bases"][base_name] = {  # type: ignore[index]
            "ns_per_switch": samples, "median": med,
            "overhead_vs_off": {v: med[v] / base - 1 for v in VARIANTS if v != "off"},
            "target_met": target <= 0.10,
        }
    result["target_met"] = met
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)
    return 0


def measure(base_name: str, args: argparse.Namespace) -> dict[str, list[float]]:
    """ns per switch of every variant on a loop of ``base_name``, interleaved."""
    uloop = uintr_loop.new_event_loop(base=base_name)
    aloop = asyncio.new_event_loop()
    samples: dict[str, list[float]] = {v: [] for v in VARIANTS}
    try:
        for loop in (uloop, aloop):
            run_variant(loop, "asyncio" if loop is aloop else "on", args.tasks, args.steps)
        for rep in range(args.repeat):
            order = VARIANTS if rep % 2 == 0 else tuple(reversed(VARIANTS))
            for variant in order:
                loop = aloop if variant == "asyncio" else uloop
                samples[variant].append(run_variant(loop, variant, args.tasks, args.steps))
    finally:
        uintr_loop.install_shim(uloop)
        uloop.close()
        aloop.close()
    return samples


if __name__ == "__main__":
    sys.exit(main())
