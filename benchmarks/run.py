"""``make bench``: every loop side by side, ROUNDS times, interleaved.

Each round runs every scenario on every loop once; the figure reported for a
target is the median over rounds of the ratio measured within one round (so
both sides of a ratio saw the same machine). Writes benchmarks/results/:
bench.json (every figure of every round), bench.md (the tables) and PNG plots
(latency CDFs, throughput bars), and prints the markdown.

    python benchmarks/run.py [--rounds 5] [--wakeups 4000] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import echo
import throughput as tp
import wake
from _common import LOOPS, UINTR_LOOPS, log, median, percentiles, uintr_factory

RESULTS = Path(os.environ.get("UINTR_BENCH_RESULTS") or Path(__file__).resolve().parent / "results")
PAUSE_S = 50e-6
BUSY_POLL_US = 200.0


def one_round(args: argparse.Namespace) -> dict[str, Any]:
    r: dict[str, Any] = {"latency": {}, "throughput": {}, "syscalls": {}, "echo": {}}
    samples = wake.one_round(args.wakeups, PAUSE_S, BUSY_POLL_US)
    r["latency"] = {k: percentiles(v) for k, v in samples.items()}
    r["samples"] = samples
    for senders in (1, 4):
        for name, factory in LOOPS.items():
            rate, _ = wake.run_on(factory, lambda: tp.throughput(senders, args.posts))
            r["throughput"][f"{senders}/{name}"] = rate
    for name in UINTR_LOOPS:
        r["syscalls"][f"busy/{name}"] = tp.per_thousand(uintr_factory(name), tp.busy_posts, args.calls)
        r["syscalls"][f"idle/{name}"] = tp.per_thousand(uintr_factory(name), tp.idle_posts, args.calls // 5)
        r["syscalls"][f"idle busy-poll/{name}"] = tp.per_thousand(
            uintr_factory(name, busy_poll=BUSY_POLL_US), tp.idle_posts, args.calls // 5)
    for kind in ("protocol", "streams"):
        for name in LOOPS:
            rate, lat = echo.run(name, kind, args.conns, args.requests)
            r["echo"][f"{kind}/{name}"] = {"rps": rate, **percentiles(lat)}
    return r


def ratio(rounds: list[dict[str, Any]], num: Any, den: Any) -> float:
    return median(num(r) / den(r) for r in rounds)


def lat(series: str, q: str = "p50") -> Any:
    return lambda r: r["latency"][series][q]


def targets(rounds: list[dict[str, Any]]) -> list[tuple[str, str, float, bool]]:
    """(figure, target, measured, met) with medians over rounds."""
    rows: list[tuple[str, str, float, bool]] = []

    def add(figure: str, target: str, value: float, met: bool) -> None:
        rows.append((figure, target, value, met))

    for name in UINTR_LOOPS:
        v = ratio(rounds, lat(f"python/{name}"), lat("python/uvloop"))
        add(f"wake p50, Python sender, {name} / uvloop", "<= 0.75", v, v <= 0.75)
        v = ratio(rounds, lat(f"python/{name}", "p99"), lat("python/uvloop", "p99"))
        add(f"wake p99, Python sender, {name} / uvloop", "<= 1.0", v, v <= 1.0)
    for name in UINTR_LOOPS:
        v = ratio(rounds, lat(f"native/{name}"), lat("floor"))
        add(f"wake p50, native sender, {name} / C floor", "<= 1.5", v, v <= 1.5)
    for name in UINTR_LOOPS:
        us = median(r["latency"][f"busy-poll native/{name}"]["p50"] for r in rounds)
        v = ratio(rounds, lat(f"busy-poll native/{name}"), lat("floor"))
        add(f"busy-poll wake p50, native sender, {name} (us)", "<= 2 us", us, us <= 2.0)
        add(f"busy-poll wake p50, native sender, {name} / C floor", "<= 0.3", v, v <= 0.3)
    for senders in (1, 4):
        for name in UINTR_LOOPS:
            v = ratio(rounds, lambda r: r["throughput"][f"{senders}/{name}"],
                      lambda r: r["throughput"][f"{senders}/uvloop"])
            add(f"throughput, {senders} sender(s), {name} / uvloop", ">= 1.5", v, v >= 1.5)
    for name in UINTR_LOOPS:
        v = median(r["syscalls"][f"busy/{name}"] for r in rounds)
        add(f"notifications per 1000 posts, loop busy, {name}", "<= 1", v, v <= 1.0)
    for kind in ("protocol", "streams"):
        for name in UINTR_LOOPS:
            base = name.split("-", 1)[1]
            v = ratio(rounds, lambda r: r["echo"][f"{kind}/{name}"]["rps"],
                      lambda r: r["echo"][f"{kind}/{base}"]["rps"])
            add(f"echo ({kind}) req/s, {name} / {base}", ">= 0.95", v, v >= 0.95)
    return rows


def markdown(rounds: list[dict[str, Any]], rows: list[tuple[str, str, float, bool]],
             meta: dict[str, Any]) -> str:
    out = [f"# uintr_loop benchmarks\n\n{meta['when']}, {meta['machine']}; Python {meta['python']}; "
           f"{len(rounds)} rounds, medians over rounds.\n",
           "## Targets (issue 3)\n", "| figure | target | measured | met |", "|---|---|---|---|"]
    out += [f"| {f} | {t} | {v:.2f} | {'yes' if m else '**no**'} |" for f, t, v, m in rows]
    out += ["\n## Wake latency (us; medians over rounds of each round's percentile)\n",
            "| series | p50 | p99 | p99.9 |", "|---|---|---|---|"]
    for series in rounds[0]["latency"]:
        p = {q: median(r["latency"][series][q] for r in rounds) for q in ("p50", "p99", "p99.9")}
        out.append(f"| {series} | {p['p50']:.1f} | {p['p99']:.1f} | {p['p99.9']:.1f} |")
    out += ["\n## Throughput (callbacks/s)\n", "| loop | 1 sender | 4 senders |", "|---|---|---|"]
    for name in LOOPS:
        a = median(r["throughput"][f"1/{name}"] for r in rounds)
        b = median(r["throughput"][f"4/{name}"] for r in rounds)
        out.append(f"| {name} | {a:,.0f} | {b:,.0f} |")
    out += ["\n## Notification syscalls per 1000 call_soon_threadsafe\n",
            "| loop | busy | idle | idle, busy-poll on |", "|---|---|---|---|"]
    for name in UINTR_LOOPS:
        cells = [median(r["syscalls"][f"{k}/{name}"] for r in rounds) for k in ("busy", "idle", "idle busy-poll")]
        out.append(f"| {name} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
    out += ["\n## Echo server (loopback, bounded closed-loop load)\n",
            "| server | req/s | p50 us | p99 us |", "|---|---|---|---|"]
    for key in rounds[0]["echo"]:
        e = {q: median(r["echo"][key][q] for r in rounds) for q in ("rps", "p50", "p99")}
        out.append(f"| {key} | {e['rps']:,.0f} | {e['p50']:.0f} | {e['p99']:.0f} |")
    return "\n".join(out) + "\n"


def plots(rounds: list[dict[str, Any]]) -> list[str]:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed: no plots (make bench installs it)")
        return []
    written = []
    groups = {"python": "Python sender, loop blocked", "native": "native (no-GIL) sender, loop blocked",
              "busy-poll native": "native sender, busy-poll on"}
    fig, axes = plt.subplots(1, len(groups), figsize=(16, 4.5), sharey=True)
    for ax, (prefix, title) in zip(axes, groups.items()):
        floors = ["floor", "floor spin"] if prefix.startswith("busy-poll") else ["floor"]
        keys = floors + [k for k in rounds[0]["samples"] if k.split("/")[0] == prefix]
        for key in keys:
            xs = sorted(v / 1000 for r in rounds for v in r["samples"][key])
            ys = [(i + 1) / len(xs) for i in range(len(xs))]
            label = {"floor": "C floor (eventfd+epoll)", "floor spin": "C floor (spinning receiver)"}
            ax.plot(xs, ys, label=label.get(key, key))
        ax.set_xscale("log")
        ax.set_xlabel("wake latency (us, log)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("fraction of wakeups")
    fig.tight_layout()
    path = RESULTS / "latency_cdf.png"
    fig.savefig(path, dpi=110)
    written.append(str(path.name))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    names = list(LOOPS)
    width = 0.38
    for i, senders in enumerate((1, 4)):
        vals = [median(r["throughput"][f"{senders}/{n}"] for r in rounds) / 1e6 for n in names]
        ax.bar([x + i * width for x in range(len(names))], vals, width, label=f"{senders} sender(s)")
    ax.set_xticks([x + width / 2 for x in range(len(names))], names)
    ax.set_ylabel("callbacks per second (millions)")
    ax.set_title("call_soon_threadsafe throughput (median of rounds)")
    ax.legend()
    fig.tight_layout()
    path = RESULTS / "throughput.png"
    fig.savefig(path, dpi=110)
    written.append(str(path.name))
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--wakeups", type=int, default=4000, help="per series per round (5 rounds: 20k)")
    p.add_argument("--posts", type=int, default=500_000)
    p.add_argument("--calls", type=int, default=10_000)
    p.add_argument("--conns", type=int, default=16)
    p.add_argument("--requests", type=int, default=400)
    p.add_argument("--quick", action="store_true", help="a smoke run: 1 round, few samples")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.wakeups, args.posts, args.calls, args.requests = 1, 300, 20_000, 1000, 50
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "python": platform.python_version(),
            "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, Linux {platform.release()}",
            "pause_us": PAUSE_S * 1e6, "busy_poll_us": BUSY_POLL_US, "args": vars(args)}
    rounds = []
    t0 = time.monotonic()
    for i in range(args.rounds):
        log(f"round {i + 1}/{args.rounds} ({time.monotonic() - t0:.0f} s)")
        rounds.append(one_round(args))
    rows = targets(rounds)
    md = markdown(rounds, rows, meta)
    meta["plots"] = plots(rounds)
    for r in rounds:
        del r["samples"]          # percentiles are kept; raw samples only feed the plots
    (RESULTS / "bench.json").write_text(json.dumps({"meta": meta, "targets": rows, "rounds": rounds}, indent=1))
    (RESULTS / "bench.md").write_text(md)
    print(md)
    log(f"wrote {RESULTS}/bench.json, bench.md, {', '.join(meta['plots'])} in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
