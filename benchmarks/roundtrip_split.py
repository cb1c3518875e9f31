"""Where a thread round trip's time goes: the loop's part and the rest.

Three of run.py's round trips hand work to a thread that sleeps in a lock of
its own (a condition's wait, ``queue.Queue.get``), which no loop can make
wake faster. Stamps inside each round trip split it at the hand-offs
(p50 in us, one in flight, 2000 per round):

* ``rcts``: a thread calls ``run_coroutine_threadsafe(coro(), loop).result()``.
  *to the loop*: from the call to the coroutine's start (the post, the
  loop's wake-up, the Task's first step); *in the loop*: to the moment the
  concurrent future is resolved (the Task's end, its done callbacks);
  *back*: to the return of ``result()`` (the thread's wake-up from its
  condition's wait, its Python).
* ``anyio_to``: ``await anyio.to_thread.run_sync(fn)``. *to the thread*:
  from the call to ``fn``'s start (anyio's dispatch on the loop's thread,
  its worker's wake-up from ``queue.Queue.get``); *back*: to the await's
  return (the worker's post, the loop's wake-up, anyio's future).
* ``anyio_from``: an anyio worker calls ``anyio.from_thread.run(coro)``.
  *to the loop*: to the coroutine's start; *back*: to the call's return
  (anyio's task wrapper ending on the loop's thread, the worker's wake-up
  from its future's wait).

The part no loop's own code takes part in (the other thread's wake-up and
Python, and the library's Python around the hand-off, the same on every
loop) is *back* for rcts and anyio_from and *to the thread* for anyio_to.
Where half the best peer's round trip (issue 12's target) is below that
part as measured with uintr_loop, no loop can reach the target without
changing how that thread waits or what the library runs. Each loop runs in a child process per round, interleaved, as
in run.py; medians over rounds. Writes
``results/roundtrip_split-<python>.{json,md}``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import LOOPS, PEER_MODULES, REPO, UINTR_ALL, loop_factory, run_on
from crossthread import _on_thread

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
OPS = 2000
WARMUP = 100
clock = time.perf_counter_ns

PHASES = {
    "rcts": ("to the loop", "in the loop", "back"),
    "anyio_to": ("to the thread", "back"),
    "anyio_from": ("to the loop", "back"),
}
OUTSIDE = {"rcts": "back", "anyio_to": "to the thread", "anyio_from": "back"}
TITLES = {"rcts": "run_coroutine_threadsafe", "anyio_to": "anyio to_thread", "anyio_from": "anyio from_thread"}


def split(stamps: list[list[int]]) -> list[list[int]]:
    """Per op, the phases between consecutive stamps, then the total."""
    return [[b - a for a, b in zip(s, s[1:])] + [s[-1] - s[0]] for s in stamps]


async def rcts(n: int) -> list[list[int]]:
    loop = asyncio.get_running_loop()
    at: dict[str, int] = {}

    async def coro() -> None:
        at["coro"] = clock()

    def resolved(_: Any) -> None:
        at["set"] = clock()

    def body() -> list[list[int]]:
        out = []
        for i in range(n + WARMUP):
            t0 = clock()
            fut = asyncio.run_coroutine_threadsafe(coro(), loop)
            fut.add_done_callback(resolved)
            fut.result()
            t3 = clock()
            if i >= WARMUP:
                out.append([t0, at["coro"], at["set"], t3])
        return out

    return await _on_thread(body)


async def anyio_to(n: int) -> list[list[int]]:
    import anyio.to_thread

    at: dict[str, int] = {}

    def fn() -> None:
        at["fn"] = clock()

    out = []
    for i in range(n + WARMUP):
        t0 = clock()
        await anyio.to_thread.run_sync(fn)
        t2 = clock()
        if i >= WARMUP:
            out.append([t0, at["fn"], t2])
    return out


async def anyio_from(n: int) -> list[list[int]]:
    import anyio.from_thread
    import anyio.to_thread

    at: dict[str, int] = {}

    async def coro() -> None:
        at["coro"] = clock()

    def body() -> list[list[int]]:
        out = []
        for i in range(n + WARMUP):
            t0 = clock()
            anyio.from_thread.run(coro)
            t2 = clock()
            if i >= WARMUP:
                out.append([t0, at["coro"], t2])
        return out

    return await anyio.to_thread.run_sync(body)


WORKLOADS = {"rcts": rcts, "anyio_to": anyio_to, "anyio_from": anyio_from}


def child(name: str, ops: int) -> dict[str, Any]:
    factory = loop_factory(name)
    out: dict[str, Any] = {}
    for key, fn in WORKLOADS.items():
        try:
            stamps, _ = run_on(factory, lambda fn=fn: fn(ops))
        except Exception as exc:  # noqa: BLE001 - a loop failing one workload must not hide the rest
            out[key] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        cols = list(zip(*split(stamps)))
        out[key] = {ph: statistics.median(c) / 1e3 for ph, c in zip((*PHASES[key], "total"), cols)}
    return out


def run_child(name: str, ops: int) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(HERE)]))
    proc = subprocess.run([sys.executable, __file__, "--child", name, "--ops", str(ops)],
                          env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {k: {"error": f"exit {proc.returncode}: {tail}"} for k in WORKLOADS}
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def table(rounds: list[dict[str, Any]], names: list[str]) -> str:
    def med(name: str, key: str, ph: str) -> float:
        vals = [r[name][key][ph] for r in rounds if ph in r[name].get(key, {})]
        return statistics.median(vals) if vals else float("nan")

    lines = []
    for key, phases in PHASES.items():
        peers = [n for n in names if n in PEER_MODULES]
        best = min(peers, key=lambda n: med(n, key, "total")) if peers else None
        target = med(best, key, "total") / 2 if best else float("nan")
        lines += [f"### {TITLES[key]}", "",
                  "| loop | " + " | ".join(phases) + " | total |",
                  "|---|" + "---|" * (len(phases) + 1)]
        for n in names:
            cells = [f"{med(n, key, ph):.1f}" for ph in (*phases, "total")]
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
        if best:
            mine = med("uintr-uvloop", key, OUTSIDE[key]) if "uintr-uvloop" in names else float("nan")
            verdict = ("below it: out of reach of any loop that leaves the thread's wait and the library as they are"
                       if target < mine else "above it: within the loop's reach")
            lines += ["", f"Best peer {best}, {med(best, key, 'total'):.1f} us; the 0.5x target "
                      f"{target:.1f} us; the part outside the loop's own code (*{OUTSIDE[key]}*), with "
                      f"uintr-uvloop, {mine:.1f} us: the target is {verdict}.", ""]
    return "\n".join(lines)


ABOUT = """\
Stamps at the hand-offs split each round trip (one in flight) into its
phases; each cell is a phase's p50 in us, the median over rounds.
run_coroutine_threadsafe: *to the loop* is the post, the loop's wake-up and
the Task's first step; *in the loop* the Task's end and its done callbacks;
*back* the thread's wake-up from its condition's wait and its Python.
anyio to_thread: *to the thread* is anyio's dispatch on the loop's thread
and its worker's wake-up from `queue.Queue.get`; *back* the worker's post,
the loop's wake-up and anyio's future. anyio from_thread: *to the loop* is
the worker's post to the coroutine's start; *back* anyio's task wrapper
ending on the loop's thread and the worker's wake-up from its future's
wait. The part no loop's own code takes part in (the other thread's
wake-up and Python, the library's Python around the hand-off) is *back*
for the first and the last, *to the thread* for anyio to_thread
(`benchmarks/roundtrip_split.py`)."""


def render(data: dict[str, Any]) -> str:
    rounds = data["rounds"]
    names = data.get("names") or [n for n in (*PEER_MODULES, *UINTR_ALL) if n in rounds[0]]
    took = f"; {data['seconds']} s" if "seconds" in data else ""
    return (f"# Where a thread round trip's time goes, Python {data['python']}\n\n"
            f"{len(rounds)} interleaved rounds of {data.get('ops', OPS)} round trips per loop{took}.\n\n"
            f"{ABOUT}\n\n{table(rounds, names)}\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--ops", type=int, default=OPS)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--render", metavar="JSON", help="write the tables again from a run's JSON")
    args = ap.parse_args()
    if args.render:
        src = Path(args.render)
        md = render(json.loads(src.read_text()))
        src.with_suffix(".md").write_text(md)
        print(md)
        return 0
    if args.child:
        print(json.dumps(child(args.child, args.ops)))
        return 0
    try:
        import anyio  # noqa: F401
    except ImportError:
        print("roundtrip_split: anyio is not installed here: nothing to split", file=sys.stderr)
        return 0
    names = list(LOOPS)
    rounds = []
    t0 = time.monotonic()
    for i in range(args.rounds):
        order = names[i % len(names):] + names[:i % len(names)]
        rounds.append({n: run_child(n, args.ops) for n in order})
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    RESULTS.mkdir(exist_ok=True)
    data = {"python": platform.python_version(), "ops": args.ops, "seconds": round(time.monotonic() - t0),
            "names": names, "rounds": rounds}
    (RESULTS / f"roundtrip_split-{py}.json").write_text(json.dumps(data, indent=1))
    md = render(data)
    (RESULTS / f"roundtrip_split-{py}.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
