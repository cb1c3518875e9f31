"""Threaded-offload server: stock asyncio vs. uintr_loop.

What it shows
-------------
A small TCP server on 127.0.0.1 speaks a line protocol. For every request
line ``REQ <id> <payload>`` the handler hands a short blocking job to a
``concurrent.futures.ThreadPoolExecutor`` with ``loop.run_in_executor`` (a
sleep followed by a few SHA-256 passes over a 4 KiB block; both release the
GIL) and answers ``OK <id> <hexdigest>``. Every job completion wakes the
event loop from a worker thread through ``call_soon_threadsafe``, which is
exactly the path uintr_loop replaces: stock asyncio writes a byte to its
self-pipe for each wakeup, uintr_loop posts it to a user-interrupt receiver
(shared-memory atomics, plus an eventfd only when the loop is really asleep).

The server runs in a child process (this same file with ``--serve``), once on
stock asyncio and once on ``uintr_loop``. The load generator runs in the
parent process on plain asyncio, so the client side is identical for both
servers: N keep-alive connections, each sending its share of the requests
one after another and timing each round trip with ``time.perf_counter_ns``.
A warm-up batch (not measured) runs first. At the end the client asks the
server for ``STATS`` (requests served, plus ``loop.statistics()`` on
uintr_loop) and then tells it to shut down.

Usage::

    python examples/offload_server.py --demo
    python examples/offload_server.py --loop uintr --requests 50000 --json out.json
    python examples/offload_server.py --serve --loop uintr --port-file /tmp/port

How to read the table
---------------------
``requests``/``errors``
    measured requests, and how many of them did not get a correct reply
    (failed, timed out, or never sent because the connection died). The
    script exits non-zero if any run has errors, if the server's count of
    served requests disagrees with the client's, or if a server exits badly.
``req/s``, ``p50 ms``, ``p99 ms``
    throughput over the measured phase and round-trip latency percentiles,
    as seen by the client. On a small shared machine these are noisy; run
    with more ``--requests`` for stabler numbers.
``posted`` ... ``mode`` (uintr_loop only; ``-`` for stock asyncio)
    the server loop's receiver statistics over its whole life, warm-up
    included. ``posted`` counts cross-thread wakeups (at least one per job
    completion), with ``posted == notifications + coalesced + suppressed``:

    * ``suppressed``: the loop was busy running callbacks, so the wakeup
      was two atomic instructions and no syscall;
    * ``coalesced``: a notification was already outstanding (the loop was
      asleep and another thread had woken it), so this one rode along;
    * ``notifications``: the wakeups that actually wrote the eventfd.

    Stock asyncio pays one self-pipe ``write`` for every posted wakeup;
    uintr_loop pays one eventfd write per ``notifications``. ``delivered``
    counts how often the loop picked the wakeup up (many posts collapse into
    one pick-up), ``spurious`` notifications that found nothing pending, and
    ``mode`` is how interrupts travel (``software`` unless the CPU, kernel
    and build all support UINTR; see ``UINTR_LOOP_MODE``). The line under
    the table sums this up.
"""
from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import uvloop

import uintr_loop

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
    "uintr": uintr_loop.new_event_loop,     # the default base: uvloop
}
STAT_FIELDS = (
    "posted", "notifications", "coalesced", "suppressed", "delivered", "spurious", "mode",
)
BLOCK_SIZE = 4096


def blocking_job(payload: bytes, sleep_s: float, rounds: int) -> bytes:
    """The offloaded work: a short sleep, then SHA-256 chained over a 4 KiB block."""
    if sleep_s > 0:
        time.sleep(sleep_s)
    block = (payload * (BLOCK_SIZE // max(len(payload), 1) + 1))[:BLOCK_SIZE]
    digest = hashlib.sha256(block).digest()
    for _ in range(rounds):
        digest = hashlib.sha256(digest + block).digest()
    return digest.hex().encode()


# --------------------------------------------------------------------------- server


async def serve(kind: str, port_file: Path, workers: int, sleep_s: float, rounds: int,
                max_lifetime: float) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="offload")
    writers: set[asyncio.StreamWriter] = set()
    served = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        writers.add(writer)
        try:
            while line := await reader.readline():
                cmd, _, rest = line.rstrip(b"\r\n").partition(b" ")
                if cmd == b"REQ":
                    rid, _, payload = rest.partition(b" ")
                    digest = await loop.run_in_executor(
                        pool, blocking_job, payload, sleep_s, rounds)
                    served += 1
                    writer.write(b"OK " + rid + b" " + digest + b"\n")
                elif cmd == b"STATS":
                    stats = dataclasses.asdict(loop.statistics()) if kind == "uintr" else None
                    info = {"loop": f"{type(loop).__module__}.{type(loop).__qualname__}",
                            "served": served, "statistics": stats}
                    writer.write(json.dumps(info).encode() + b"\n")
                elif cmd == b"SHUTDOWN":
                    writer.write(b"BYE\n")
                    stop.set()
                else:
                    writer.write(b"ERR unknown command\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writers.discard(writer)
            writer.close()

    async def watchdog() -> None:
        parent, deadline = os.getppid(), loop.time() + max_lifetime
        while os.getppid() == parent and loop.time() < deadline:
            await asyncio.sleep(0.5)
        stop.set()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    tmp = port_file.with_name(port_file.name + ".tmp")
    tmp.write_text(str(port))
    os.replace(tmp, port_file)
    guard = asyncio.create_task(watchdog())
    try:
        await stop.wait()
    finally:
        guard.cancel()
        server.close()
        for w in list(writers):
            w.close()
        await asyncio.wait_for(server.wait_closed(), 5)
        pool.shutdown(wait=True, cancel_futures=True)


def run_server(args: argparse.Namespace) -> int:
    loop = LOOPS[args.loop]()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(serve(args.loop, Path(args.port_file), args.workers,
                                      args.job_sleep_us / 1e6, args.job_rounds, args.max_lifetime))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    return 0


# --------------------------------------------------------------------------- client


@dataclasses.dataclass
class Result:
    loop: str
    requests: int
    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    req_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    server_loop: str = ""
    served: int = -1
    expected_served: int = 0
    server_exit: int | None = None
    statistics: dict[str, Any] | None = None
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.errors or self.ok != self.requests or self.served != self.expected_served
                    or self.server_exit != 0 or self.problems)


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (i < total % parts) for i in range(parts)]


def percentile(sorted_ns: Sequence[int], q: float) -> float:
    if not sorted_ns:
        return float("nan")
    idx = min(len(sorted_ns) - 1, max(0, round(q * len(sorted_ns)) - 1))
    return sorted_ns[idx] / 1e6


async def drive(conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]], counts: list[int],
                tag: str, timeout: float, payload_size: int, sleep_s: float, rounds: int,
                problems: list[str]) -> tuple[int, list[int]]:
    """Send counts[i] requests on connection i; returns (good replies, latencies in ns)."""
    latencies: list[int] = []
    done = [0] * len(conns)

    async def one(idx: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        filler = b"x" * payload_size
        for i in range(counts[idx]):
            rid = f"{tag}{idx}.{i}".encode()
            payload = (rid + b"-" + filler)[:payload_size]
            t0 = time.perf_counter_ns()
            writer.write(b"REQ " + rid + b" " + payload + b"\n")
            await writer.drain()
            line = await reader.readline()
            t1 = time.perf_counter_ns()
            if not line.endswith(b"\n"):
                raise ConnectionError("server closed the connection")
            status, got_rid, digest = (line.rstrip(b"\n").split(b" ") + [b"", b""])[:3]
            if status != b"OK" or got_rid != rid or len(digest) != 64:
                raise ValueError(f"bad reply {line[:80]!r} to {rid.decode()}")
            if i == 0 and digest != blocking_job(payload, 0, rounds):
                raise ValueError(f"wrong digest for {rid.decode()}")
            latencies.append(t1 - t0)
            done[idx] += 1

    tasks = [asyncio.ensure_future(one(i, r, w)) for i, (r, w) in enumerate(conns)]
    finished, pending = await asyncio.wait(tasks, timeout=timeout)
    for t in pending:
        t.cancel()
    if pending:
        problems.append(f"{len(pending)} connection(s) still busy after {timeout:.0f} s")
        await asyncio.wait(pending)
    for t in finished:
        if not t.cancelled() and t.exception() is not None and len(problems) < 5:
            problems.append(f"{type(t.exception()).__name__}: {t.exception()}")
    return sum(done), latencies


async def client(port: int, result: Result, args: argparse.Namespace) -> None:
    sleep_s = args.job_sleep_us / 1e6
    conns = [await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
             for _ in range(args.connections)]
    try:
        warmup = min(args.warmup, args.requests)
        warm_ok, _ = await drive(conns, split(warmup, len(conns)), "w", args.timeout,
                                 args.payload_size, sleep_s, args.job_rounds, result.problems)
        if warm_ok != warmup:
            result.problems.append(f"warm-up: {warmup - warm_ok} of {warmup} requests unanswered")
        result.expected_served = warmup + result.requests
        t0 = time.perf_counter()
        ok, latencies = await drive(conns, split(result.requests, len(conns)), "r", args.timeout,
                                    args.payload_size, sleep_s, args.job_rounds, result.problems)
        result.seconds = time.perf_counter() - t0
    finally:
        for _, w in conns:
            w.close()
    latencies.sort()
    result.ok, result.errors = ok, result.requests - ok
    result.req_per_s = ok / result.seconds if result.seconds else 0.0
    result.p50_ms, result.p99_ms = percentile(latencies, 0.50), percentile(latencies, 0.99)

    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
    try:
        writer.write(b"STATS\n")
        info = json.loads(await asyncio.wait_for(reader.readline(), 10))
        result.server_loop, result.served = info["loop"], info["served"]
        result.statistics = info["statistics"]
        writer.write(b"SHUTDOWN\n")
        await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()


def server_command(kind: str, port_file: Path, args: argparse.Namespace) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--serve", "--loop", kind,
            "--port-file", str(port_file), "--workers", str(args.workers),
            "--job-sleep-us", str(args.job_sleep_us), "--job-rounds", str(args.job_rounds)]


def run_one(kind: str, args: argparse.Namespace) -> Result:
    result = Result(loop=kind, requests=args.requests)
    with tempfile.TemporaryDirectory(prefix="offload-") as tmp:
        port_file = Path(tmp) / "port"
        proc = subprocess.Popen(server_command(kind, port_file, args), stdin=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            while not port_file.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{kind} server did not start (exit code {proc.poll()})")
                time.sleep(0.02)
            asyncio.run(client(int(port_file.read_text()), result, args))
            result.server_exit = proc.wait(timeout=15)
        except Exception as exc:  # report, never hang: the finally block reaps the child
            result.problems.append(f"{type(exc).__name__}: {exc}")
            result.errors = result.requests - result.ok
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if result.server_exit is None:
                result.server_exit = proc.returncode
    if result.server_exit != 0:
        result.problems.append(f"server exited with code {result.server_exit}")
    return result


def format_table(results: Sequence[Result]) -> str:
    head = ["loop", "requests", "errors", "req/s", "p50 ms", "p99 ms", *STAT_FIELDS]
    rows = [head]
    for r in results:
        stats = r.statistics or {}
        timing = ([f"{r.req_per_s:,.0f}", f"{r.p50_ms:.3f}", f"{r.p99_ms:.3f}"]
                  if r.ok else ["-"] * 3)
        rows.append([r.loop, str(r.requests), str(r.errors), *timing,
                     *(str(stats.get(f, "-")) for f in STAT_FIELDS)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i in (0, len(head) - 1) else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths))).rstrip() for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    for r in results:
        s = r.statistics
        if s and s.get("posted"):
            free = s["suppressed"] + s["coalesced"]
            lines.append(f"{r.loop}: {s['posted']} cross-thread wakeups for {r.expected_served} "
                         f"requests; {s['notifications']} needed an eventfd write, "
                         f"{free} ({100 * free / s['posted']:.1f}%) cost no syscall "
                         f"(suppressed while busy or coalesced)")
        for p in r.problems:
            lines.append(f"{r.loop}: PROBLEM: {p}")
        if r.served != r.expected_served and r.served >= 0:
            lines.append(f"{r.loop}: PROBLEM: server served {r.served}, "
                         f"client expected {r.expected_served}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--demo", action="store_true",
                   help="run the server on stock asyncio, then on uintr_loop, and print the table")
    p.add_argument("--loop", choices=[*LOOPS, "both"], default=None,
                   help="server loop (default: both; --serve needs one loop)")
    p.add_argument("--requests", type=int, default=20_000, help="measured requests per run")
    p.add_argument("--connections", type=int, default=32, help="concurrent client connections")
    p.add_argument("--workers", type=int, default=4, help="server thread-pool size")
    p.add_argument("--warmup", type=int, default=1_000, help="unmeasured requests first")
    p.add_argument("--payload-size", type=int, default=48, help="bytes of payload per request")
    p.add_argument("--job-sleep-us", type=int, default=200, help="sleep in each offloaded job")
    p.add_argument("--job-rounds", type=int, default=8, help="SHA-256 passes in each job")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds allowed per load phase")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--serve", action="store_true", help="server only (used by the client)")
    p.add_argument("--port-file", help="with --serve: write the listening port here")
    p.add_argument("--max-lifetime", type=float, default=600.0,
                   help="with --serve: exit after this many seconds regardless")
    args = p.parse_args(argv)
    if args.demo and args.loop not in (None, "both"):
        p.error("--demo always runs both loops")
    if args.serve:
        if args.loop not in LOOPS or not args.port_file:
            p.error("--serve needs --loop %s and --port-file" % "|".join(LOOPS))
    elif args.loop is None:
        args.loop = "both"
    if args.requests < 1 or args.connections < 1 or args.workers < 1 or args.payload_size < 1:
        p.error("--requests, --connections, --workers and --payload-size must be positive")
    if args.connections > args.requests:
        args.connections = args.requests
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        return run_server(args)
    kinds = list(LOOPS) if args.loop == "both" else [args.loop]
    print(f"offload server: {args.requests} requests (+{min(args.warmup, args.requests)} warm-up) "
          f"over {args.connections} connections, {args.workers} worker threads, "
          f"job = {args.job_sleep_us} us sleep + {args.job_rounds} x SHA-256(4 KiB)", flush=True)
    results = []
    for kind in kinds:
        print(f"  running server on {kind} ...", flush=True)
        results.append(run_one(kind, args))
    print()
    print(format_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "config": {k: getattr(args, k) for k in
                       ("requests", "connections", "workers", "warmup", "payload_size",
                        "job_sleep_us", "job_rounds")},
            "results": [dataclasses.asdict(r) | {"failed": r.failed} for r in results],
        }, indent=2) + "\n")
    failed = [r.loop for r in results if r.failed]
    if failed:
        print(f"\nFAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
