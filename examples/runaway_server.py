"""A runaway request: stock asyncio vs. uintr_loop's deadline.

What it shows
-------------
A TCP server on 127.0.0.1 answers ``PING`` lines at once and ``WORK`` lines
with a computation given a budget of ``--budget-ms`` (50 ms). One WORK
request is a runaway: a pure-Python loop that would run for ``--runaway-s``
seconds and never awaits. Meanwhile ``--clients`` clients ping every 5 ms
and time each round trip.

* On stock asyncio the budget is ``asyncio.timeout(budget)``: it can only
  cancel a task at an ``await``, so the runaway runs to its end and every
  other client waits for it (the ping latency's maximum is the runaway).
* On uintr_loop the budget is ``uintr_loop.deadline(budget)``: the runaway is
  interrupted at its deadline (TimeoutError inside the computation, its
  ``finally`` runs, the server answers ``TIMEOUT``), and the other clients
  keep their latency.

Each server runs in a child process (this file with ``--serve``); the
clients run in the parent on plain asyncio, identical for both runs. The two
runs are printed side by side.

    python examples/runaway_server.py                 # both loops, ~2 x 4 s
    python examples/runaway_server.py --quick --json out.json
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


# --------------------------------------------------------------------- server

def runaway(seconds: float) -> int:
    """The runaway computation: pure Python, never awaits."""
    end = time.monotonic() + seconds
    x = 0
    while time.monotonic() < end:
        x += 1
    return x


async def serve(loop_name: str, budget_s: float, runaway_s: float) -> None:
    import uintr_loop

    if loop_name == "uintr":
        def budget() -> contextlib.AbstractAsyncContextManager[object]:
            return uintr_loop.deadline(budget_s)
    else:
        def budget() -> contextlib.AbstractAsyncContextManager[object]:
            return asyncio.timeout(budget_s)  # type: ignore[attr-defined,no-any-return]

    stop = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                cmd = line.strip()
                if cmd == b"PING":
                    writer.write(b"PONG\n")
                elif cmd == b"WORK":
                    t0 = time.monotonic()
                    cleaned = False
                    try:
                        async with budget():
                            try:
                                runaway(runaway_s)
                            finally:
                                cleaned = True
                        reply = "DONE"
                    except TimeoutError:
                        reply = "TIMEOUT"
                    ran_ms = (time.monotonic() - t0) * 1000
                    writer.write(f"{reply} {ran_ms:.1f} {int(cleaned)}\n".encode())
                elif cmd == b"QUIT":
                    stop.set_result(None)
                    break
                await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    async with server:
        await stop


# --------------------------------------------------------------------- client

async def pinger(port: int, until: float, rtts: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() < until:
            t0 = time.perf_counter()
            writer.write(b"PING\n")
            await writer.drain()
            assert await reader.readline() == b"PONG\n"
            rtts.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.005)
    finally:
        writer.close()


async def drive(port: int, clients: int, duration: float) -> dict[str, object]:
    rtts: list[float] = []
    until = time.monotonic() + duration
    pings = [asyncio.create_task(pinger(port, until, rtts)) for _ in range(clients)]
    await asyncio.sleep(duration / 4)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"WORK\n")
    await writer.drain()
    reply, ran_ms, cleaned = (await reader.readline()).decode().split()
    await asyncio.gather(*pings)
    writer.write(b"QUIT\n")
    await writer.drain()
    writer.close()
    rtts.sort()
    return {
        "runaway": "stopped" if reply == "TIMEOUT" else "ran to the end",
        "runaway_ms": float(ran_ms), "finally_ran": cleaned == "1",
        "pings": len(rtts),
        "p50_ms": rtts[len(rtts) // 2], "p99_ms": rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))],
        "max_ms": rtts[-1],
    }


def run_one(loop_name: str, args: argparse.Namespace) -> dict[str, object]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.dirname(HERE), env.get("PYTHONPATH")]))
    server = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--serve", "--loop", loop_name,
         "--budget-ms", str(args.budget_ms), "--runaway-s", str(args.runaway_s)],
        stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        result = asyncio.run(drive(port, args.clients, args.duration))
        server.wait(timeout=30)
        result["server_exit"] = server.returncode
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    result["loop"] = loop_name
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loop", choices=["asyncio", "uintr", "both"], default="both")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--budget-ms", type=float, default=50.0)
    parser.add_argument("--runaway-s", type=float, default=2.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--quick", action="store_true", help="0.5 s runaway, 1.5 s of pings")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    if sys.version_info < (3, 11):
        print("this example needs Python 3.11+ (asyncio.timeout)", file=sys.stderr)
        return 2
    if args.serve:
        if args.loop == "uintr":
            import uintr_loop
            uintr_loop.run(serve("uintr", args.budget_ms / 1000, args.runaway_s))
        else:
            asyncio.run(serve("asyncio", args.budget_ms / 1000, args.runaway_s))
        return 0
    if args.quick:
        args.runaway_s, args.duration = 0.5, 1.5
    names = ["asyncio", "uintr"] if args.loop == "both" else [args.loop]
    results = [run_one(n, args) for n in names]
    print(f"runaway request ({args.runaway_s:g} s of CPU) with a {args.budget_ms:g} ms budget; "
          f"{args.clients} clients pinging every 5 ms\n")
    print(f"{'loop':8} {'runaway':15} {'ran ms':>8} {'finally':>7} {'pings':>6} "
          f"{'p50 ms':>7} {'p99 ms':>8} {'max ms':>8}")
    for r in results:
        budget = "deadline" if r["loop"] == "uintr" else "asyncio.timeout"
        print(f"{r['loop']:8} {r['runaway']:15} {r['runaway_ms']:8.1f} "
              f"{'yes' if r['finally_ran'] else 'no':>7} {r['pings']:6d} {r['p50_ms']:7.2f} "
              f"{r['p99_ms']:8.2f} {r['max_ms']:8.1f}   ({budget})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=2)
    return 0 if all(r["server_exit"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
