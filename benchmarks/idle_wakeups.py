"""How often an idle loop wakes up: the loop thread's wakeups in an idle window.

Each measurement runs in a fresh child interpreter that makes a uintr_loop
loop with one receiver and one in-process ``Sender``, sets up the case, then
leaves the loop idle (``asyncio.sleep(seconds)``) and counts, on the loop's
thread only:

* ``wakeups``: the thread's voluntary context switches over the window
  (``/proc/self/task/<tid>/status``): every sleep in epoll_wait that ends is
  one; nothing else blocks an idle loop's thread;
* ``epoll``: with ``--strace``, a second run of each case under strace
  (tracing the loop thread alone, between two marker syscalls, uname, the
  child makes around the window) counts the epoll_wait/epoll_pwait calls
  that returned, and ``blocking`` those of them with a timeout other than 0
  (a poll with timeout 0 follows most wakeups);
* ``cpu_ms``: the loop thread's CPU time over the window.

Cases: ``none`` (no vector fd handed out), ``local`` (senders of this process
only), ``child`` (a second process holds a Sender opened from the vector fd,
alive all along), ``killed`` (that process was SIGKILLed half way through a
post, and the loop repaired the post before the window starts).

``python benchmarks/idle_wakeups.py [--seconds 5] [--rounds 3] [--strace]``
prints a table (medians over rounds, interleaved) and writes
benchmarks/results/idle_wakeups.json. The timer that ends the window costs
one wakeup, so a loop that sleeps through the window shows 1 or 2.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CASES = ("none", "local", "child", "killed")
BASES = ("asyncio", "uvloop")

CHILD = r"""
import asyncio, json, os, subprocess, sys, threading, time
import uintr_loop
from _testcore._state import repair_count  # test-only extension (make test builds it)

case, base, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
GRANDCHILD = '''
import sys, time
import uintr_loop
sender = uintr_loop.Sender(int(sys.argv[1]))
if sys.argv[2] == "half":
    from _testcore._cells import half_post  # test-only extension (make test builds it)
    assert half_post(sender) == 0        # ON set, no notification: killed here
print("ready", flush=True)
time.sleep(600)
'''
loop = uintr_loop.new_event_loop(base=base)
got = []
receiver = uintr_loop.Receiver(got.append, loop=loop)
proc = None
if case != "none":
    vfd = receiver.vector_fd(5)
    local = uintr_loop.Sender(vfd)
if case in ("child", "killed"):
    proc = subprocess.Popen(
        [sys.executable, "-c", GRANDCHILD, str(vfd.fileno()),
         "half" if case == "killed" else "hold"],
        pass_fds=(vfd.fileno(),), stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    if case == "killed":
        proc.kill()
        proc.wait()

async def settle():
    deadline = time.monotonic() + 20
    if case == "killed":
        while not got:                   # the half-done post, repaired
            assert time.monotonic() < deadline, "the half-done post was never repaired"
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)             # registrations and exits taken

loop.run_until_complete(settle())
tid = threading.get_native_id()

def switches():
    with open(f"/proc/self/task/{tid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise RuntimeError("no voluntary_ctxt_switches in /proc")

os.uname()                               # marker for strace: the window opens
c0, t0 = switches(), time.thread_time()
loop.run_until_complete(asyncio.sleep(seconds))
c1, t1 = switches(), time.thread_time()
os.uname()                               # the window closes
result = {"case": case, "base": base, "wakeups": c1 - c0, "cpu_ms": (t1 - t0) * 1e3,
          "repairs": repair_count(loop), "delivered": len(got)}
if proc is not None and proc.poll() is None:
    proc.kill()
    proc.wait()
loop.close()
print(json.dumps(result), flush=True)
"""


def measure(case: str, base: str, seconds: float = 5.0, use_strace: bool = False,
            timeout: float = 120.0) -> dict[str, Any]:
    """One child run of ``case`` on ``base``: a dict with wakeups, cpu_ms,
    repairs, delivered, and epoll (returns counted by strace) if asked."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), str(REPO / "tests"), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-c", CHILD, case, base, str(seconds)]
    trace = None
    if use_strace:
        trace = tempfile.NamedTemporaryFile(prefix="idle-strace-", suffix=".txt", delete=False)
        trace.close()
        # no -f: only the initial thread, which runs the loop, is traced
        cmd = ["strace", "-qq", "-e", "trace=epoll_wait,epoll_pwait,epoll_pwait2,uname",
               "-o", trace.name] + cmd
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"idle child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if trace is not None:
        try:
            result["epoll"], result["epoll_blocking"] = count_epoll_returns(
                Path(trace.name).read_text())
        finally:
            os.unlink(trace.name)
    return result


def count_epoll_returns(text: str) -> tuple[int, int]:
    """(epoll calls that returned, those of them that could block: timeout
    not 0) between the window's two uname markers (the last two: the
    interpreter calls uname itself at start-up)."""
    lines = text.splitlines()
    marks = [i for i, line in enumerate(lines) if line.startswith("uname(")]
    if len(marks) < 2:
        raise RuntimeError("the trace lacks the window's markers")
    returned = blocking = 0
    for line in lines[marks[-2] + 1:marks[-1]]:
        if line.startswith("epoll") and "=" in line:
            returned += 1
            args = line[line.index("(") + 1:].split(", ")
            if len(args) > 3 and args[3].strip() != "0":
                blocking += 1
    return returned, blocking


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--strace", action="store_true",
                    help="also count epoll returns with strace (if installed)")
    ap.add_argument("--cases", default=",".join(CASES))
    args = ap.parse_args()
    use_strace = args.strace and shutil.which("strace") is not None
    cases = args.cases.split(",")
    runs: dict[str, list[dict[str, Any]]] = {}
    for _ in range(args.rounds):            # interleaved: every case once per round
        for case in cases:
            for base in BASES:
                r = measure(case, base, args.seconds)
                if use_strace:    # ptrace stops inflate the context switches: apart
                    t = measure(case, base, args.seconds, use_strace=True)
                    r["epoll"], r["epoll_blocking"] = t["epoll"], t["epoll_blocking"]
                runs.setdefault(f"{case}/{base}", []).append(r)
    rows = []
    for key, rs in runs.items():
        row = {"series": key,
               "wakeups_p50": statistics.median(r["wakeups"] for r in rs),
               "wakeups_max": max(r["wakeups"] for r in rs),
               "cpu_ms_p50": statistics.median(r["cpu_ms"] for r in rs),
               "per_second": statistics.median(r["wakeups"] for r in rs) / args.seconds}
        if use_strace:
            row["epoll_p50"] = statistics.median(r["epoll"] for r in rs)
            row["epoll_max"] = max(r["epoll"] for r in rs)
            row["blocking_p50"] = statistics.median(r["epoll_blocking"] for r in rs)
        rows.append(row)
    print(f"idle loop wakeups over {args.seconds:g} s (loop thread only; "
          f"median and max of {args.rounds} rounds)")
    head = "| series | wakeups p50 | max | per s | CPU ms p50 |" + (
        " epoll returns p50 | max | blocking p50 |" if use_strace else "")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in rows:
        line = (f"| {r['series']} | {r['wakeups_p50']:g} | {r['wakeups_max']} | "
                f"{r['per_second']:.1f} | {r['cpu_ms_p50']:.2f} |")
        if use_strace:
            line += f" {r['epoll_p50']:g} | {r['epoll_max']} | {r['blocking_p50']:g} |"
        print(line)
    out = Path(os.environ.get("UINTR_BENCH_RESULTS", REPO / "benchmarks" / "results"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "idle_wakeups.json").write_text(json.dumps(
        {"seconds": args.seconds, "rounds": args.rounds, "rows": rows, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
