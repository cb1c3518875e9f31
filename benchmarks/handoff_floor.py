"""Thread hand-off floors: what a thread round trip costs with no event loop at all.

Every thread round trip of ``make bench`` (``asyncio.to_thread``,
``run_in_executor``, the dedicated worker, ``run_coroutine_threadsafe``,
anyio's ``to_thread.run_sync`` and ``from_thread.run``) hands work from one
Python thread to another and the answer back. Whatever the loop does, the
thread on the other side blocks in a futex (``SimpleQueue.get``,
``Future.result``, a condition's wait), so each round trip pays at least one
kernel wake of a sleeping thread and the GIL taken over by it. These floors
measure those hand-offs between two plain Python threads, with no loop:

* ``block``, "ping-pong, both block": thread A puts an item on a
  ``queue.SimpleQueue``, thread B gets it and puts it on a second one, A gets
  it. Two blocking hand-offs: the dedicated worker's round trip on a loop
  that blocks while the worker runs.
* ``spin``, "ping-pong, A spins": the same, but A never blocks. B stores the
  answer and posts to a uintr_loop ``Port`` (the loop's own wakeup
  primitive, here with no loop around it); A waits for the post spinning on
  the port's PIR without the GIL (``Port.prepare_to_block`` with a fixed
  ``busy_poll``: the loop's busy-poll), then takes the GIL back. One blocking
  hand-off (A to B) and one caught by a spin: the round trip on a loop that
  spins while the worker runs. A spin that runs out of budget spins again
  (``respins``). The lower of ``block`` and ``spin`` is the least any loop
  pays while the thread side blocks: the spin saves A's kernel wake, but A
  often sees the post while B still holds the GIL, and then sleeps until B
  lets go of it (the wakeups per operation show it).
* ``wake``, "one wake": A stamps the time and puts it on a ``SimpleQueue``;
  B, blocked in ``get``, records the time from the stamp to its wake. One
  blocking hand-off (a thread wake and the GIL); A then waits for B's
  acknowledgement and pauses 50 us, as the paced wakeups of ``wake.py`` do,
  so B is asleep again when the next one comes. One wake is not half a
  ping-pong: its thread has slept 50 us, the ping-pong's threads only as
  long as the other side works.

Where the two threads run matters more than anything else here. On this
machine (a virtual one whose idle vCPUs halt) a wake of a thread asleep on
the other CPU costs the waker an inter-processor interrupt and the sleeper
a halted vCPU's resumption, tens of microseconds, while a wake on the
waker's own CPU costs about one. Left alone, the kernel puts a quick
ping-pong's threads on one CPU, so ``block`` and ``spin`` measure mostly
that. A loop's round trips do not run so: the loop's thread and the other
thread each keep a CPU of their own (the kernel places a thread woken
while its partner runs on the idle CPU; every loop here, uintr or peer,
runs them on two CPUs), so each floor is also measured with its threads
pinned:

* ``block2``/``spin2``: ``block`` and ``spin`` with A on one CPU and B on
  another: the floors of a round trip as the loops run it. ``spin2`` is
  one blocking hand-off across CPUs (to B) and one caught by a spin.
* ``block1``: ``block`` with both threads on one CPU: what a round trip
  would cost if the loop and its thread shared a CPU (no loop does: the
  thread then cannot run while the loop does).

``run_coroutine_threadsafe`` (and anyio's ``from_thread.run``) has the same
shape as the ping-pong with the roles swapped: the calling thread blocks in
``Future.result`` while the loop, blocked or spinning, runs the coroutine
and answers. ``block`` and ``spin`` are its floors too, so it is not
measured again.

Each floor runs ``--ops`` operations after a warm-up, on fresh threads; the
floors run side by side in interleaved rounds, in an order that rotates from
round to round, and a figure is the median over rounds. Per floor: p50 and
p99 of the per-operation times (``perf_counter_ns``; for ``wake``, the time
B measures), and the CPU time of the whole process (every thread,
``time.process_time``) per operation, so a spin is never free; for ``wake``
it includes the acknowledgement and the pause, as the paced wakeups' does.

As context, the thread round trips of the latest ``make bench`` run on this
Python (``results/bench-PY.json``, ``--bench``) are set against the floors:
each workload's best peer, issue 12's target of 0.5x the best peer, the
uintr loops, and whether the target lies below the floor that no loop can
beat. ``run.py`` runs the floors in its own rounds and prints the same
section in its report.

    python benchmarks/handoff_floor.py [--rounds 5] [--ops 2000] [--json out.json] [--bench bench-PY.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import HERE, PEERS, UINTR_LOOPS, log, median, percentiles, voluntary_switches
from crossthread import WARMUP, _timed_blocking
from uintr_loop._core import Port

FLOORS = {"block": "ping-pong, both block", "spin": "ping-pong, A spins", "wake": "one wake",
          "block2": "ping-pong, both block, two CPUs", "spin2": "ping-pong, A spins, two CPUs",
          "block1": "ping-pong, both block, one CPU"}
PAUSE_S = 50e-6              # the one-wake pause, as the paced wakeups of run.py
SPIN_BUDGET_US = 1000.0      # one spin's budget; a spin that runs out starts again
PY = f"{sys.version_info.major}.{sys.version_info.minor}"
BENCH = HERE / "results" / f"bench-{PY}.json"

Floor = dict[str, float]


def two_cpus() -> tuple[int, int] | None:
    """Two CPUs this process may run on (None: it has only one)."""
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else None


def _with_thread(ops: int, target: Callable[[], None], stop: Callable[[], None],
                 measure: Callable[[], Floor], cpus: tuple[int, int] | None = None) -> Floor:
    """``measure()`` while ``target`` runs on a thread of its own; ``stop()``
    ends it. With ``cpus``, this thread (A) runs on the first and the other
    (B) on the second, for the measurement only. Adds the voluntary context
    switches (blocks that ended in a wake) of every thread per operation,
    warm-up included in both counts."""
    def pinned_target() -> None:
        if cpus is not None:
            os.sched_setaffinity(0, {cpus[1]})     # 0: the calling thread
        target()

    thread = threading.Thread(target=pinned_target, daemon=True)
    saved = os.sched_getaffinity(0)
    thread.start()
    try:
        if cpus is not None:
            os.sched_setaffinity(0, {cpus[0]})
        s0 = voluntary_switches()
        out = measure()
        out["switches"] = (voluntary_switches() - s0) / (ops + WARMUP)
        return out
    finally:
        if cpus is not None:
            os.sched_setaffinity(0, saved)
        stop()
        thread.join()


def _figures(samples: list[int], cpu_ns: int) -> Floor:
    return {**percentiles(samples), "cpu_us": cpu_ns / len(samples) / 1e3}


def ping_pong_block(ops: int, cpus: tuple[int, int] | None = None) -> Floor:
    requests: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    answers: queue.SimpleQueue[int] = queue.SimpleQueue()

    def serve() -> None:
        while (item := requests.get()) is not None:
            answers.put(item)

    def op() -> None:
        requests.put(1)
        answers.get()

    return _with_thread(ops, serve, lambda: requests.put(None), lambda: _figures(*_timed_blocking(ops, op)), cpus)


def ping_pong_spin(ops: int, cpus: tuple[int, int] | None = None) -> Floor:
    requests: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    box: list[int] = []
    port = Port()
    port.busy_poll = SPIN_BUDGET_US    # a fixed budget: spin it all, never give up early
    respins = 0

    def serve() -> None:
        while (item := requests.get()) is not None:
            box.append(item)           # the answer, then the post that says it is there
            port.wakeup()

    def op() -> None:
        nonlocal respins
        requests.put(1)
        # SN stays set while A spins, so B's post is a PIR bit and no syscall.
        # A spin that runs out clears SN (restore), so the post also writes
        # the port's eventfd, which nothing reads; the next spin finds the bit.
        while not port.prepare_to_block(-1.0):
            respins += 1
        port.recognise()
        box.pop()

    def measure() -> Floor:
        out = _figures(*_timed_blocking(ops, op))
        out["respins"] = respins
        return out

    try:
        return _with_thread(ops, serve, lambda: requests.put(None), measure, cpus)
    finally:
        port.close()


def one_wake(ops: int) -> Floor:
    stamps: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    acks: queue.SimpleQueue[None] = queue.SimpleQueue()
    samples: list[int] = []

    def sleeper() -> None:
        while (stamp := stamps.get()) is not None:
            samples.append(time.perf_counter_ns() - stamp)
            acks.put(None)

    def wake(n: int) -> None:
        for _ in range(n):
            time.sleep(PAUSE_S)
            stamps.put(time.perf_counter_ns())
            acks.get()

    def measure() -> Floor:
        wake(WARMUP)
        del samples[:]
        c0 = time.process_time_ns()
        wake(ops)
        return _figures(samples, time.process_time_ns() - c0)

    return _with_thread(ops, sleeper, lambda: stamps.put(None), measure)


def _placed(measure: Callable[..., Floor], how: str) -> Callable[[int], Floor]:
    """``measure`` with A and B on two CPUs (``how`` = "two") or on one."""
    def run(ops: int) -> Floor:
        cpus = two_cpus()
        if cpus is None:
            return {}                  # one CPU: there is no placement to choose
        return measure(ops, cpus if how == "two" else (cpus[0], cpus[0]))
    return run


MEASURE: dict[str, Callable[[int], Floor]] = {
    "block": ping_pong_block, "spin": ping_pong_spin, "wake": one_wake,
    "block2": _placed(ping_pong_block, "two"), "spin2": _placed(ping_pong_spin, "two"),
    "block1": _placed(ping_pong_block, "one"),
}


def one_round(ops: int, index: int = 0) -> dict[str, Floor]:
    """Every floor once, in an order that rotates with the round's ``index``."""
    keys = list(FLOORS)
    order = keys[index % len(keys):] + keys[:index % len(keys)]
    return {key: MEASURE[key](ops) for key in order}


def summary(rounds: list[dict[str, Floor]]) -> dict[str, Floor]:
    """Per floor, the median over rounds of every figure."""
    return {key: {field: median(r[key][field] for r in rounds if field in r.get(key, {}))
                  for field in ("p50", "p99", "cpu_us", "switches", "respins")
                  if any(field in r.get(key, {}) for r in rounds)}
            for key in FLOORS}


def lowest(floors: dict[str, Floor]) -> float:
    """The lower ping-pong floor's p50 with the threads on two CPUs, as the
    loops run them (without two CPUs, the unplaced ones): the least a thread
    round trip costs on any loop, whether it blocks or spins while the
    thread works."""
    if floors.get("block2", {}).get("p50") and floors.get("spin2", {}).get("p50"):
        return min(floors["block2"]["p50"], floors["spin2"]["p50"])
    return min(floors["block"]["p50"], floors["spin"]["p50"])


def bounds(bench_rounds: list[dict[str, Any]], floors: dict[str, Floor]) -> list[dict[str, Any]]:
    """Per thread round trip of ``bench_rounds`` (run.py's rounds): its best
    peer, issue 12's target (0.5x the best peer's p50), the uintr loops' p50,
    and the target over the lower of the two ping-pong floors (below 1: no
    loop, blocking or spinning, can reach it). Rounds that measured the
    floors too (run.py's) give the median of the ratio within a round, as
    every ratio of run.py; others, the ratio of the medians."""
    from run import ROUND_TRIPS, best_peer_name, fig

    paired = [r for r in bench_rounds if r.get("handoff")]
    rows = []
    for key, label in ROUND_TRIPS.items():
        peer = best_peer_name(bench_rounds, key, "p50", False)
        best = fig(bench_rounds, peer, key, "p50") if peer != "-" else float("nan")
        if paired:
            over = median(min((v for n in PEERS if (v := r["loops"].get(n, {}).get(key, {}).get("p50"))),
                              default=float("nan")) / 2 / lowest(r["handoff"]) for r in paired)
        else:
            over = best / 2 / lowest(floors)
        rows.append({"key": key, "label": label, "peer": peer, "best": best, "target": best / 2,
                     "uintr": {n: fig(bench_rounds, n, key, "p50") for n in UINTR_LOOPS}, "over_floor": over})
    return rows


def section(floors: dict[str, Floor], bench_rounds: list[dict[str, Any]], source: str) -> str:
    """The report's section: the floors, then the round trips of ``source`` against them."""
    from run import f1, ratio_cell

    lines = ["\n## Thread hand-off floors (no event loop)\n",
             "Two plain Python threads, no loop (`handoff_floor.py`): p50/p99 in us, CPU in us per operation "
             "(the whole process), and wakeups per operation (voluntary context switches of every thread). "
             "Both block: A and B hand an item over and back through `queue.SimpleQueue`s. A spins: B answers "
             "with a post to a uintr_loop `Port` that A waits for spinning without the GIL (the loop's "
             "busy-poll, with no loop). One wake: B, blocked in `SimpleQueue.get`, measures from A's stamp to "
             "its wake; its CPU and wakeups include an acknowledgement and a 50 us pause.\n",
             "Two CPUs: A and B pinned to a CPU each, as a loop's thread and the thread it works with run; "
             "one CPU: both pinned to the same one.\n",
             "| floor | p50 | p99 | CPU | wakeups |", "|---|---|---|---|---|"]
    for key, label in FLOORS.items():
        f = floors.get(key, {})
        if "p50" not in f:
            continue
        lines.append(f"| {label} | {f1(f['p50'])} | {f1(f['p99'], 0)} | {f1(f['cpu_us'])} "
                     f"| {f1(f.get('switches', float('nan')), 2)} |")
    if floors["spin"].get("respins"):
        lines.append(f"\nSpins that ran out of their {SPIN_BUDGET_US:g} us budget and started again: "
                     f"{floors['spin']['respins']:.0f} per run (median).")
    if not bench_rounds:
        return "\n".join(lines) + "\n"
    rows = bounds(bench_rounds, floors)
    uintr = [n for n in UINTR_LOOPS if any(r["uintr"][n] == r["uintr"][n] for r in rows)]
    lines += [f"\nThe thread round trips of {source}, p50 in us, against the floors. Issue 12's target is 0.5x "
              "the best peer; \"/ floor\" is the target over the lower ping-pong floor (within each round, where the "
              "floors ran in the same rounds): below 1, no loop reaches the target, whether it blocks or spins "
              "while the thread works.\n",
              "| round trip | best peer | 0.5x target | " + " | ".join(uintr) + " | / floor |",
              "|---|---|---|" + "---|" * (len(uintr) + 1)]
    for row in rows:
        cells = [f"{row['peer']} {f1(row['best'])}", f1(row["target"])] + [f1(row["uintr"][n]) for n in uintr]
        lines.append(f"| {row['label']} | " + " | ".join(cells) + f" | {ratio_cell(row['over_floor'])}"
                     + (" **below**" if row["over_floor"] < 1 else "") + " |")
    below = [f"{r['label']} ({f1(r['target'])} us)" for r in rows if r["over_floor"] < 1]
    block, spin, wake = (floors[k]["p50"] for k in ("block", "spin", "wake"))
    block2, spin2, block1 = (floors.get(k, {}).get("p50", float("nan")) for k in ("block2", "spin2", "block1"))
    worker = next(r for r in rows if r["key"] == "worker")
    lines.append(
        "\nEvery one of these round trips hands work to a Python thread that sleeps in a futex "
        "(`SimpleQueue.get`, a condition's wait) and takes the answer back. Where the two threads run decides "
        f"the cost: a blocking ping-pong takes {f1(block1)} us with both threads on one CPU and {f1(block2)} us "
        f"with one on each (left to the kernel, {f1(block)} us: it puts so quick a ping-pong on one CPU). The "
        "loops' round trips run on two CPUs, the loop's thread on one and the other thread on the other, so "
        f"their floor is the two-CPU one: {f1(block2)} us with a blocking loop, {f1(spin2)} us with a loop that "
        f"spins for the answer (one wake across CPUs, the thread's, instead of two). Dedicated worker: best peer "
        f"{f1(worker['best'])} us ({worker['peer']}); 0.5x target {f1(worker['target'])} us. A spinning loop "
        "saves its own wake; the thread's wake, its GIL take-over and the Python each side runs remain. "
        "Targets below the lower two-CPU floor, out of reach of any loop that leaves the other thread blocking "
        "in its own primitive: " + (", ".join(below) if below else "none")
        + ". The other round trips add their own machinery (executor, futures, anyio's worker threads) "
        "to the same two hand-offs, so their real floors lie above these; only a thread that does not block "
        f"(the JobQueue's spinning workers, for to_thread and run_in_executor) gets under them. One wake "
        f"({f1(wake)} us) is the paced one: a thread that slept 50 us, woken from whichever CPU the kernel chose.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--ops", type=int, default=2000)
    ap.add_argument("--json", default=None, help="write every round's figures here")
    ap.add_argument("--bench", default=str(BENCH), help="the make bench results to set against the floors")
    args = ap.parse_args(argv)
    rounds: list[dict[str, Floor]] = []
    for i in range(args.rounds):
        log(f"round {i + 1}/{args.rounds}")
        rounds.append(one_round(args.ops, i))
    floors = summary(rounds)
    bench = Path(args.bench)
    bench_rounds: list[dict[str, Any]] = []
    source = "no make bench run"
    if bench.exists():
        data = json.loads(bench.read_text())
        bench_rounds = data["rounds"]
        source = f"`{bench.name}` ({data['meta']['when']}, {len(bench_rounds)} rounds)"
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, {args.rounds} rounds of {args.ops} ops "
          "(medians over rounds)")
    print(section(floors, bench_rounds, source), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"python": platform.python_version(), "args": vars(args), "floors": floors,
                       "rounds": rounds}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
