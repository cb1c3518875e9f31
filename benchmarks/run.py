"""``make bench``: every loop against every peer, side by side, in interleaved rounds.

Each round runs, for every loop available here (asyncio, uvloop, rloop,
rsloop, zuvloop, uintr_loop on each base) and in an order that rotates from
round to round, one child process that runs every workload once on a fresh
loop of that kind, then the servers (echo.py: a server process per loop,
the loops' runs of each kind one after the other); the C floor and the
thread hand-off floors (handoff_floor.py, no loop) run once per round too. A figure is the
median over rounds; a ratio is the median over rounds of the ratio measured
within one round ("x best peer": to the best peer of that round), so both
sides of a ratio saw the same machine. Every latency and throughput figure
comes with the CPU time per operation of the whole process (every thread),
and the idle loop with its CPU % and wakeups per second.

Writes to benchmarks/results/ (PY is the interpreter's major.minor):
bench-PY.json (every figure of every round, the run's settings and versions),
bench-PY.md (the tables, also printed), latency_cdf-PY.png and
roundtrip-PY.png.

    python benchmarks/run.py [--rounds 7] [--quick] [--loops asyncio,uvloop,...]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import (HERE, LOOPS, MISSING, PEERS, REPO, UINTR_LOOPS, is_uintr, log, loop_factory, median,
                     percentiles, run_on, versions, with_cpu)

RESULTS = Path(os.environ.get("UINTR_BENCH_RESULTS") or HERE / "results")
PY = f"{sys.version_info.major}.{sys.version_info.minor}"
PAUSE_S = 50e-6

ROUND_TRIPS = {"to_thread": "asyncio.to_thread", "executor": "run_in_executor", "worker": "dedicated worker",
               "rcts": "run_coroutine_threadsafe", "anyio_to": "anyio to_thread", "anyio_from": "anyio from_thread"}
WAKES = {"wake": "paced wake, Python sender", "native_eventfd": "native sender, eventfd + add_reader",
         "native_uintr": "native sender, uintr Sender to Receiver"}

DEFAULTS = {"rounds": 7, "wakeups": 5000, "posts": 100_000, "floods": 3, "ops": 2000, "idle": 1.0,
            "calls": 5000, "conns": 16, "requests": 1000, "serves": 3, "timeout": 300.0}
QUICK = {"rounds": 1, "wakeups": 200, "posts": 10_000, "floods": 1, "ops": 200, "idle": 0.2, "calls": 500,
         "conns": 4, "requests": 25, "serves": 1, "timeout": 120.0}


# ---------------------------------------------------------------- the child: one loop, every workload

def worker(name: str, p: dict[str, Any]) -> dict[str, Any]:
    """Every workload once on fresh loops of kind ``name``; figures, samples, errors."""
    import crossthread as ct
    import native_eventfd
    import throughput
    import wake

    factory = loop_factory(name)
    out: dict[str, Any] = {"errors": {}, "samples": {}, "seconds": {}}

    def attempt(key: str, fn: Any) -> None:
        t0 = time.monotonic()
        try:
            fn()
            out["seconds"][key] = round(time.monotonic() - t0, 3)
        except Exception as exc:  # noqa: BLE001 - one workload failing must not hide the others
            out["errors"][key] = f"{type(exc).__name__}: {exc}"
            log(f"  {name}: {key} failed: {out['errors'][key]}")

    def idle(key: str, endpoints: bool) -> None:
        out[key], _ = run_on(factory, lambda: ct.idle(p["idle"], endpoints, name))

    attempt("idle", lambda: idle("idle", False))
    attempt("idle_endpoints", lambda: idle("idle_endpoints", True))

    def latency(key: str, sender: Any) -> None:
        (samples, cpu), _ = run_on(factory, lambda: with_cpu(sender(p["wakeups"], PAUSE_S)))
        out[key] = {**percentiles(samples), "cpu_us": cpu / len(samples) / 1e3}
        out["samples"][key] = samples

    attempt("wake", lambda: latency("wake", wake.python_sender))
    attempt("native_eventfd", lambda: latency("native_eventfd", native_eventfd.eventfd_sender))
    if is_uintr(name):
        attempt("native_uintr", lambda: latency("native_uintr", wake.native_sender))

    def flood(senders: int) -> None:
        # A flood lasts 15-30 ms, and the host's noise moves one by a third:
        # a round's figure is the median of several, each on a fresh loop.
        posts = p["posts"] // senders * senders
        runs = [run_on(factory, lambda: with_cpu(throughput.throughput(senders, posts)))[0]
                for _ in range(p["floods"])]
        out[f"flood{senders}"] = {"mcalls": median(rate for rate, _ in runs) / 1e6,
                                  "cpu_us": median(cpu for _, cpu in runs) / posts / 1e3,
                                  "runs_mcalls": [round(rate / 1e6, 3) for rate, _ in runs]}

    attempt("flood1", lambda: flood(1))
    attempt("flood4", lambda: flood(4))

    def round_trip(key: str) -> None:
        (samples, cpu), _ = run_on(factory, lambda: ct.ROUND_TRIPS[key](p["ops"]))
        out[key] = {**percentiles(samples), "cpu_us": cpu / len(samples) / 1e3}

    for key in ROUND_TRIPS:
        attempt(key, lambda key=key: round_trip(key))

    def notifications() -> None:
        out["notifications"] = {
            "busy": throughput.per_thousand(factory, throughput.busy_posts, p["calls"]),
            "idle": throughput.per_thousand(factory, throughput.idle_posts, p["calls"] // 5)}

    if is_uintr(name):
        attempt("notifications", notifications)
    return out


SERVERS = {"echo": "protocol", "http": "http"}


def run_servers(order: list[str], p: dict[str, Any], loops: dict[str, dict[str, Any]]) -> None:
    """The servers, from this process: each kind for every loop of the round
    one after the other, so that the loops' runs of one kind are seconds
    apart, not a whole child's workloads (echo.py starts each server). That
    goes round ``p["serves"]`` times, and a loop's figures are the medians of
    its runs: one run's rate moves by a tenth from run to run."""
    import echo

    for key, kind in SERVERS.items():
        runs: dict[str, list[tuple[float, list[int], float]]] = {name: [] for name in order}
        for _ in range(p["serves"]):
            for name in order:
                if key in loops.get(name, {}).get("errors", {}):
                    continue
                try:
                    runs[name].append(echo.run_with_cpu(name, kind, p["conns"], p["requests"]))
                except Exception as exc:  # noqa: BLE001 - one server failing must not hide the others
                    out = loops.setdefault(name, {})
                    out.setdefault("errors", {})[key] = f"{type(exc).__name__}: {exc}"
                    log(f"  {name}: {key} failed: {out['errors'][key]}")
        for name, got in runs.items():
            if got and key not in loops.get(name, {}).get("errors", {}):
                pct = [percentiles(lat) for _, lat, _ in got]
                loops.setdefault(name, {})[key] = {
                    "rps": median(rate for rate, _, _ in got),
                    **{q: median(x[q] for x in pct) for q in pct[0]},
                    "cpu_us": median(cpu_s * 1e6 / len(lat) for _, lat, cpu_s in got),
                    "runs_rps": [round(rate) for rate, _, _ in got]}


# ---------------------------------------------------------------- the parent: rounds, tables, plots

def run_floor(wakeups: int) -> dict[str, Any]:
    import wake

    wake.build_floor()                 # compiling it is not the floor's CPU time
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    samples = wake.floor(wakeups, PAUSE_S)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {**percentiles(samples), "cpu_us": cpu_s * 1e6 / len(samples), "samples": samples}


def run_flood_floor(posts: int) -> float:
    """The flood's own Python with no loop (throughput.python_floor), M/s."""
    import throughput

    return throughput.python_floor(posts) / 1e6


def run_handoff(ops: int, index: int) -> dict[str, Any]:
    """The thread hand-off floors (handoff_floor.py), in this process: it has no loop."""
    import handoff_floor

    try:
        return handoff_floor.one_round(ops, index)
    except Exception as exc:  # noqa: BLE001 - the floors failing must not lose the loops' run
        log(f"  hand-off floors failed: {type(exc).__name__}: {exc}")
        return {}


def run_child(name: str, p: dict[str, Any]) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(HERE)]))
    cmd = [sys.executable, str(Path(__file__)), "--worker", name, "--params", json.dumps(p)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=p["timeout"])
    except subprocess.TimeoutExpired:
        return {"errors": {"*": f"timed out after {p['timeout']:.0f} s"}, "samples": {}}
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        return {"errors": {"*": f"exit {proc.returncode}: {tail[0]}"}, "samples": {}}
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def fig(rounds: list[dict[str, Any]], loop: str, key: str, field: str) -> float:
    return median(r["loops"].get(loop, {}).get(key, {}).get(field, float("nan")) for r in rounds)


def best_peer_ratio(rounds: list[dict[str, Any]], loop: str, key: str, field: str, higher: bool) -> float:
    """Median over rounds of loop's figure / the best peer's figure in that round."""
    vals = []
    for r in rounds:
        mine = r["loops"].get(loop, {}).get(key, {}).get(field)
        peers = [r["loops"].get(n, {}).get(key, {}).get(field) for n in PEERS]
        peers = [v for v in peers if v is not None and v == v and v > 0]
        if mine is None or not peers:
            continue
        vals.append(mine / (max(peers) if higher else min(peers)))
    return median(vals)


def ratio_to(rounds: list[dict[str, Any]], loop: str, other: str, key: str, field: str) -> float:
    vals = []
    for r in rounds:
        a = r["loops"].get(loop, {}).get(key, {}).get(field)
        b = r["loops"].get(other, {}).get(key, {}).get(field)
        if a is not None and b:
            vals.append(a / b)
    return median(vals)


def best_peer_name(rounds: list[dict[str, Any]], key: str, field: str, higher: bool) -> str:
    vals = {n: fig(rounds, n, key, field) for n in PEERS}
    vals = {n: v for n, v in vals.items() if v == v}
    if not vals:
        return "-"
    return (max if higher else min)(vals, key=vals.__getitem__)


def f1(v: float, digits: int = 1) -> str:
    return "-" if v != v else f"{v:,.{digits}f}"


def ratio_cell(v: float) -> str:
    return "-" if v != v else f"{v:.2f}x"


def targets(rounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 12's targets, per uintr loop: (figure, target, measured, met)."""
    rows: list[dict[str, Any]] = []

    def add(figure: str, target: str, values: dict[str, float], ok: Any) -> None:
        rows.append({"figure": figure, "target": target, "values": values,
                     "met": {k: (None if v != v else bool(ok(v))) for k, v in values.items()}})

    def per_loop(fn: Any) -> dict[str, float]:
        return {n: fn(n) for n in UINTR_LOOPS}

    for key, label in ROUND_TRIPS.items():
        add(f"{label} p50 / best peer", "<= 0.5", per_loop(lambda n: best_peer_ratio(rounds, n, key, "p50", False)),
            lambda v: v <= 0.5)
        if sys.version_info < (3, 14):
            add(f"{label} p50 / uvloop", "<= 0.7", per_loop(lambda n: ratio_to(rounds, n, "uvloop", key, "p50")),
                lambda v: v <= 0.7)
    add("paced wake p50 / best peer", "<= 0.7", per_loop(lambda n: best_peer_ratio(rounds, n, "wake", "p50", False)),
        lambda v: v <= 0.7)
    add("paced wake p99 / best peer", "<= 1.0", per_loop(lambda n: best_peer_ratio(rounds, n, "wake", "p99", False)),
        lambda v: v <= 1.0)
    for s in (1, 4):
        add(f"flood, {s} thread(s) / best peer", ">= 1.3",
            per_loop(lambda n: best_peer_ratio(rounds, n, f"flood{s}", "mcalls", True)), lambda v: v >= 1.3)
    for key, label in (("idle", "idle loop"), ("idle_endpoints", "idle loop with a Receiver and a Sender")):
        add(f"{label}, CPU % of a core", "< 1", per_loop(lambda n: fig(rounds, n, key, "cpu_pct")), lambda v: v < 1)
        add(f"{label}, wakeups/s", "<= 2", per_loop(lambda n: fig(rounds, n, key, "wakeups_per_s")),
            lambda v: v <= 2)
    add("round-trip CPU per op / uvloop's (worst of the six)", "<= 1.5",
        per_loop(lambda n: max((ratio_to(rounds, n, "uvloop", k, "cpu_us") for k in ROUND_TRIPS),
                               key=lambda v: -1 if v != v else v)), lambda v: v <= 1.5)
    add("echo server req/s / uvloop", ">= 0.95", per_loop(lambda n: ratio_to(rounds, n, "uvloop", "echo", "rps")),
        lambda v: v >= 0.95)
    add("HTTP with thread offload req/s / uvloop", ">= 0.95",
        per_loop(lambda n: ratio_to(rounds, n, "uvloop", "http", "rps")), lambda v: v >= 0.95)
    return rows


def markdown(rounds: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    loops = [n for n in meta["loops"]]
    vers = meta["versions"]
    lines = [f"# Benchmarks on Python {meta['python']}\n",
             f"{meta['when']}; {meta['machine']}; {len(rounds)} interleaved round(s), medians over rounds; "
             f"{meta['wall_s']:.0f} s. Versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()) + ".",
             f"Load average (1 min) {meta['loadavg'][0]:.1f} at the start, {meta['loadavg'][1]:.1f} at the end.",
             "A ratio is the median over rounds of the ratio within one round; \"x best\" is to the best peer "
             "(" + ", ".join(meta["peers"]) + ") of that round: below 1 is better for times and CPU, above 1 for rates. "
             "CPU is the whole process's (every thread) per operation."]
    if meta["missing"]:
        lines.append("Not measured here: " + "; ".join(f"{k} ({v})" for k, v in meta["missing"].items()) + ".")
    errors = sorted({f"{n}: {k}: {e}" for r in rounds for n, d in r["loops"].items() for k, e in d["errors"].items()})
    if errors:
        lines.append("Failed runs (left out of the medians): " + "; ".join(errors) + ".")

    rows = targets(rounds)
    lines += ["\n## Issue 12's targets (default configuration)\n",
              "| figure | target | " + " | ".join(UINTR_LOOPS) + " |", "|---|---|" + "---|" * len(UINTR_LOOPS)]
    for row in rows:
        cells = []
        for n in UINTR_LOOPS:
            v, m = row["values"][n], row["met"][n]
            cells.append("-" if m is None else f"{v:.2f} {'met' if m else '**not met**'}")
        lines.append(f"| {row['figure']} | {row['target']} | " + " | ".join(cells) + " |")

    lines += ["\n## Wakeups: one in flight, the sender pauses 50 us between them\n",
              "p50/p99 in us, CPU in us per wakeup. Python: a thread calls `call_soon_threadsafe`. "
              "eventfd: a C thread (no GIL) writes an eventfd the loop watches with `add_reader`. "
              "uintr: a C thread (no GIL) posts through uintr_loop's nogil API to a `Receiver`. "
              "The C floor is two C threads, eventfd + epoll, no Python.\n",
              "| loop | Python p50 | p99 | CPU | x best | eventfd p50 | p99 | CPU | x best | uintr p50 | p99 | CPU "
              "| x best eventfd peer |", "|---|" + "---|" * 12]
    for n in loops:
        cells = []
        for key in WAKES:
            if key == "native_uintr" and not is_uintr(n):
                cells += ["", "", "", ""]
                continue
            ref = "native_eventfd" if key == "native_uintr" else key
            vals = [fig(rounds, n, key, q) for q in ("p50", "p99", "cpu_us")]
            if key == "native_uintr":
                best = median(r["loops"][n][key]["p50"] / min(r["loops"][m][ref]["p50"] for m in PEERS
                                                              if ref in r["loops"].get(m, {}))
                              for r in rounds if key in r["loops"].get(n, {})
                              and any(ref in r["loops"].get(m, {}) for m in PEERS))
            else:
                best = best_peer_ratio(rounds, n, key, "p50", False)
            cells += [f1(vals[0]), f1(vals[1], 0), f1(vals[2]), ratio_cell(best)]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    floor = {q: median(r["floor"][q] for r in rounds) for q in ("p50", "p99", "cpu_us")}
    lines.append(f"| C floor | | | | | {f1(floor['p50'])} | {f1(floor['p99'], 0)} | {f1(floor['cpu_us'])} | | | | | |")

    lines += ["\n## Flood: threads call `call_soon_threadsafe` as fast as they can\n",
              f"M callbacks run per second; CPU in us per call (every thread). Each round's figure is the median "
              f"of {meta['params'].get('floods', 1)} floods of {meta['params']['posts']:,} calls, each on a fresh "
              "loop.\n",
              "| loop | 1 thread M/s | CPU | x best | 4 threads M/s | CPU | x best |", "|---|" + "---|" * 6]
    for n in loops:
        cells = []
        for s in (1, 4):
            key = f"flood{s}"
            cells += [f1(fig(rounds, n, key, "mcalls"), 2), f1(fig(rounds, n, key, "cpu_us"), 2),
                      ratio_cell(best_peer_ratio(rounds, n, key, "mcalls", True))]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    if any("flood_floor" in r for r in rounds):
        ff = median(r["flood_floor"] for r in rounds if "flood_floor" in r)
        lines += [f"| Python floor (no loop) | {f1(ff, 2)} | | | | | |",
                  "\nThe Python floor is the flood's own Python with no loop and no second thread: the sender's "
                  "loop appending each callback to a list, then every callback called (`throughput.python_floor`). "
                  "Every loop adds its handle, its context snapshot and the hand-off between two threads under one "
                  "GIL to it."]

    lines += ["\n## Thread round trips (one in flight)\n",
              "Each cell: p50 us / CPU us per round trip; x best: p50 over the best peer's. p99 and means are in "
              "the JSON.\n",
              "| loop | " + " | ".join(f"{v} | x best" for v in ROUND_TRIPS.values()) + " |",
              "|---|" + "---|" * (2 * len(ROUND_TRIPS))]
    for n in loops:
        cells = []
        for key in ROUND_TRIPS:
            cells += [f"{f1(fig(rounds, n, key, 'p50'))} / {f1(fig(rounds, n, key, 'cpu_us'))}",
                      ratio_cell(best_peer_ratio(rounds, n, key, "p50", False))]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    if any(r.get("handoff") for r in rounds):
        import handoff_floor

        floors = handoff_floor.summary([r["handoff"] for r in rounds if r.get("handoff")])
        lines.append(handoff_floor.section(floors, rounds, "this run").rstrip("\n"))

    lines += ["\n## Idle loop\n",
              f"CPU % of one core and wakeups per second of the loop's process over {meta['params']['idle']:g} s "
              "(voluntary context switches of every thread but the measuring one). \"With endpoints\": a uintr "
              "loop holds a `Receiver` and a `Sender` to it; a peer holds an eventfd in `add_reader`.\n",
              "| loop | CPU % | wakeups/s | with endpoints: CPU % | wakeups/s |", "|---|---|---|---|---|"]
    for n in loops:
        lines.append(f"| {n} | " + " | ".join(f1(fig(rounds, n, k, q), 2) for k in ("idle", "idle_endpoints")
                                             for q in ("cpu_pct", "wakeups_per_s")) + " |")

    lines += ["\n## Notification syscalls per 1000 `call_soon_threadsafe` (uintr loops)\n",
              "Eventfd writes, from the loop's own statistics. Busy: the loop runs CPU-bound callbacks that "
              "release the GIL while a thread posts. Idle: every post finds the loop blocked (50 us apart).\n",
              "| loop | busy | idle |", "|---|---|---|"]
    for n in loops:
        if is_uintr(n):
            lines.append(f"| {n} | {f1(fig(rounds, n, 'notifications', 'busy'))} | "
                         f"{f1(fig(rounds, n, 'notifications', 'idle'))} |")

    p = meta["params"]
    lines += ["\n## Servers (loopback; server pinned to one CPU, client on plain uvloop on the other)\n",
              f"{p['conns']} connections, {p['requests']} sequential requests each. Echo: 64-byte messages to a "
              "Protocol. HTTP: keep-alive requests, each answered from `run_in_executor` (SHA-256 of 4 KiB). "
              "CPU: the server process's, us per request. "
              f"Each round runs every loop's server {p.get('serves', 1)} time(s) in turn; its figures are the "
              "medians of its runs. asyncio and uintr-asyncio read through asyncio's transports, whose "
              "speed here is set by glibc malloc's mmap threshold in the server's process, not by the "
              "loop (docs/development/benchmarks.md, \"The asyncio transports and malloc\").\n",
              "| loop | echo req/s | p99 us | CPU | x best | HTTP offload req/s | p99 us | CPU | x best |",
              "|---|" + "---|" * 8]
    for n in loops:
        cells = []
        for key in ("echo", "http"):
            cells += [f1(fig(rounds, n, key, "rps"), 0), f1(fig(rounds, n, key, "p99"), 0),
                      f1(fig(rounds, n, key, "cpu_us")), ratio_cell(best_peer_ratio(rounds, n, key, "rps", True))]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plots(rounds: list[dict[str, Any]], loops: list[str], floor_samples: list[int]) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed: no plots (make bench installs it in the benchmark's environment)")
        return []
    written = []
    color = {n: f"C{i % 10}" for i, n in enumerate(loops)}      # one colour per loop in every plot
    fig_, axes = plt.subplots(1, 2, figsize=(15, 5), sharey=True)
    xs = sorted(v / 1000 for v in floor_samples)
    for ax, title, keys in ((axes[0], "Python sender (call_soon_threadsafe)", ("wake",)),
                            (axes[1], "native sender (C thread, no GIL)", ("native_eventfd", "native_uintr"))):
        ax.plot(xs, [(i + 1) / len(xs) for i in range(len(xs))], "k:", label="C floor (eventfd + epoll)")
        for n in loops:
            for key in keys:
                data = sorted(v / 1000 for r in rounds for v in r["loops"].get(n, {}).get("samples", {}).get(key, []))
                if not data:
                    continue
                style = "--" if key == "native_uintr" else "-"
                label = n + (" (uintr Receiver)" if key == "native_uintr" else
                             " (eventfd)" if key == "native_eventfd" else "")
                ax.plot(data, [(i + 1) / len(data) for i in range(len(data))], style, color=color[n], label=label)
        ax.set_xscale("log")
        ax.set_xlabel("wake latency, us (log)")
        ax.set_title(f"{title}, Python {PY}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("fraction of wakeups")
    fig_.tight_layout()
    path = RESULTS / f"latency_cdf-{PY}.png"
    fig_.savefig(path, dpi=100)
    plt.close(fig_)
    written.append(path.name)

    fig_, (top, bottom) = plt.subplots(2, 1, figsize=(13, 8), sharex=True)
    keys = list(ROUND_TRIPS)
    width = 0.8 / max(1, len(loops))
    for i, n in enumerate(loops):
        pos = [k + i * width for k in range(len(keys))]
        hatch = "//" if is_uintr(n) else None
        top.bar(pos, [fig(rounds, n, k, "p50") for k in keys], width, label=n, color=color[n], hatch=hatch)
        bottom.bar(pos, [fig(rounds, n, k, "cpu_us") for k in keys], width, label=n, color=color[n], hatch=hatch)
    top.set_ylabel("p50 round trip, us")
    bottom.set_ylabel("CPU per round trip, us (all threads)")
    top.set_title(f"Thread round trips, Python {PY} (medians of {len(rounds)} rounds)")
    bottom.set_xticks([k + width * (len(loops) - 1) / 2 for k in range(len(keys))], list(ROUND_TRIPS.values()))
    top.legend(fontsize=8, ncol=4)
    for ax in (top, bottom):
        ax.grid(True, axis="y", alpha=0.3)
    fig_.tight_layout()
    path = RESULTS / f"roundtrip-{PY}.png"
    fig_.savefig(path, dpi=100)
    plt.close(fig_)
    written.append(path.name)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a smoke run: 1 round, few samples (for development)")
    for key, default in DEFAULTS.items():
        ap.add_argument(f"--{key}", type=type(default), default=None, help=f"default {default}")
    ap.add_argument("--loops", default=None, help="comma-separated, of: " + ", ".join(LOOPS)
                    + "; a uintr loop with an explicit busy_poll (us) as e.g. uintr-uvloop@50")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--params", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        out = worker(args.worker, json.loads(args.params))
        sys.stdout.write(json.dumps(out))
        sys.stdout.flush()
        os._exit(0)           # a peer's runtime threads must not hold the exit
    p = dict(QUICK if args.quick else DEFAULTS)
    p.update({k: getattr(args, k) for k in DEFAULTS if getattr(args, k) is not None})
    loops = list(LOOPS) if not args.loops else args.loops.split(",")
    unknown = [n for n in loops if n.partition("@")[0] not in LOOPS]
    if unknown:
        ap.error(f"not available here: {', '.join(unknown)} (available: {', '.join(LOOPS)}; missing: {MISSING})")
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "python": platform.python_version(),
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, Linux {platform.release()}",
        "versions": versions(), "loops": loops, "peers": [n for n in PEERS if n in loops],
        "missing": MISSING, "params": p, "pause_us": PAUSE_S * 1e6}
    rounds: list[dict[str, Any]] = []
    floor_samples: list[int] = []
    t0 = time.monotonic()
    load0 = os.getloadavg()[0]
    for i in range(p["rounds"]):
        order = loops[i % len(loops):] + loops[:i % len(loops)]
        log(f"round {i + 1}/{p['rounds']} ({time.monotonic() - t0:.0f} s): {', '.join(order)}")
        r: dict[str, Any] = {"order": order, "loops": {}}
        fl = run_floor(p["wakeups"])
        floor_samples += fl.pop("samples")
        r["floor"] = fl
        r["handoff"] = run_handoff(p["ops"], i)
        r["flood_floor"] = run_flood_floor(p["posts"])
        for n in order:
            r["loops"][n] = run_child(n, p)
        run_servers(order, p, r["loops"])
        rounds.append(r)
    meta["wall_s"] = time.monotonic() - t0
    meta["loadavg"] = [load0, os.getloadavg()[0]]
    md = markdown(rounds, meta)
    meta["plots"] = plots(rounds, loops, floor_samples)
    meta["targets"] = targets(rounds)
    for r in rounds:
        for d in r["loops"].values():
            d.pop("samples", None)         # raw samples feed the plots; percentiles are kept
    (RESULTS / f"bench-{PY}.json").write_text(json.dumps({"meta": meta, "rounds": rounds}, indent=1))
    (RESULTS / f"bench-{PY}.md").write_text(md)
    print(md, flush=True)
    log(f"wrote bench-{PY}.json, bench-{PY}.md, {', '.join(meta['plots'])} to {RESULTS} "
        f"in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
