"""Check the protocol models (delivery.pml, jobqueue.pml) exhaustively with spin.

    python cython_src/model/verify.py     # every configuration, every broken core

make verify runs this; make test runs it too (tests/test_model.py).

Two kinds of run, each a full search of the state space (no bitstate, no
hash compaction: COLLAPSE compression only, which loses nothing):

* configurations: the core as it is, on each base and receiver kind; spin must
  report no error and a complete search;
* broken cores: one -DBUG_... each, checked with only the property it breaks
  (-DONLY=P_name); spin must report that property violated. This is what
  makes deleting a property from the model fail the tests.

Prints a table of states, transitions and depth per run; exits non-zero if
any run does not come out as expected.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "delivery.pml")
JOBQUEUE_MODEL = os.path.join(HERE, "jobqueue.pml")

# The properties the model states (its header documents each).
PROPERTIES = (
    "no_lost_wakeup",
    "no_delivery_after_close",
    "refused_after_close",
    "one_notification",
    "handlers_never_nest",
    "highest_first",
    "callbacks_once",
)
# The default executor's job queue (jobqueue.pml).
JOBQUEUE_PROPERTIES = ("no_lost_job",)


@dataclasses.dataclass(frozen=True)
class Run:
    name: str
    defines: tuple[str, ...]
    # for a broken core: the property spin must report violated
    expect_violation: str | None = None
    model: str = MODEL


# Bounds: POSTS per sender thread (2 of them), CALLS of call_soon_threadsafe
# (the third sender), OPS receiver-side operations (mask, close, task steps).
CONFIGURATIONS = (
    Run("asyncio base, loop receiver", ("POSTS=1", "CALLS=2", "OPS=1")),
    Run("asyncio base, loop receiver, repeated posts", ("POSTS=2", "CALLS=1", "OPS=0")),
    Run("uvloop base (mailbox), loop receiver", ("UVLOOP", "POSTS=1", "CALLS=2", "OPS=1")),
    Run("asyncio base, task receiver", ("TASK", "POSTS=1", "CALLS=1", "OPS=2")),
    Run("uvloop base (mailbox), task receiver", ("TASK", "UVLOOP", "POSTS=1", "CALLS=1", "OPS=2")),
    Run("asyncio base, a sender process killed mid-post", ("KILL", "POSTS=1", "CALLS=1", "OPS=1")),
    Run("uvloop base (mailbox), a sender process killed mid-post",
        ("KILL", "UVLOOP", "POSTS=1", "CALLS=1", "OPS=0")),
    Run("job queue, 3 jobs, 2 workers", ("JOBS=3", "WORKERS=2"), model=JOBQUEUE_MODEL),
    Run("job queue, 4 jobs, 3 workers", ("JOBS=4", "WORKERS=3"), model=JOBQUEUE_MODEL),
)

# One broken core per way the protocol could go wrong; each must be caught
# by the property named.
BROKEN = (
    Run("restore loads PIR before clearing SN", ("BUG_RESTORE_LOAD_FIRST",), "no_lost_wakeup"),
    Run("mailbox test and append not under one GIL hold",
        ("UVLOOP", "BUG_MAILBOX_RACE"), "no_lost_wakeup"),
    Run("recognise overwrites UIRR", ("BUG_UIRR_OVERWRITE",), "no_lost_wakeup"),
    Run("switch-out sets SN while the task waits",
        ("TASK", "BUG_SN_WHILE_WAITING"), "no_lost_wakeup"),
    Run("close keeps UIRR, delivery ignores closed",
        ("BUG_CLOSE_KEEPS_UIRR",), "no_delivery_after_close"),
    Run("post tests the shut-down bit last", ("BUG_SHUT_LAST",), "refused_after_close"),
    Run("ON set by test-then-store, not CAS", ("BUG_NO_CAS",), "one_notification"),
    Run("STUI inside a handler ignores in_handler", ("BUG_NEST",), "handlers_never_nest"),
    Run("lowest vector first", ("BUG_LOWEST_FIRST",), "highest_first"),
    Run("ready callbacks left in the queue after running",
        ("BUG_READY_KEPT",), "callbacks_once"),
    Run("no repair when a sender process dies mid-post",
        ("KILL", "BUG_NO_REPAIR"), "no_lost_wakeup"),
    Run("a missed alarm blocks without clearing SN", ("BUG_ALARM_NO_RESTORE",), "no_lost_wakeup"),
    Run("job queue: a worker reads the count before it counts itself a sleeper",
        ("BUG_SLEEP_LOOKS_FIRST",), "no_lost_job", JOBQUEUE_MODEL),
    Run("job queue: put() reads the sleepers before it adds the job",
        ("BUG_PUT_LOOKS_FIRST",), "no_lost_job", JOBQUEUE_MODEL),
)
BROKEN_BOUNDS = ("POSTS=1", "CALLS=2", "OPS=1")


@dataclasses.dataclass
class Result:
    run: Run
    ok: bool
    errors: int
    states: int
    transitions: int
    depth: int
    seconds: float
    violated: str | None
    detail: str


class ToolMissing(RuntimeError):
    pass


def tools() -> tuple[str, str]:
    spin = shutil.which("spin")
    cc = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
    if spin is None:
        raise ToolMissing("spin is not installed (Debian: apt-get install spin); "
                          "make verify and make test install it")
    if cc is None:
        raise ToolMissing("no C compiler (gcc) to build spin's verifier")
    return spin, cc


def _number(pattern: str, text: str) -> int:
    m = re.search(pattern, text)
    return int(m.group(1)) if m else -1


def _property_named(model: str, assertion: str) -> str | None:
    """The property a failed assertion's text belongs to. Under -DONLY=P_x,
    SKIP(x) expands to (n!=n) with n the property's number (#define P_x n)."""
    with open(model) as f:
        numbers = {int(n): name for name, n in
                   re.findall(r"^#define P_(\w+) (\d+)$", f.read(), re.M)}
    for a, b in re.findall(r"\((\d+)!=(\d+)\)", assertion):
        if a == b:
            return numbers.get(int(a))
    return None


def check(run: Run, *, bounds: tuple[str, ...] = ()) -> Result:
    """Generate, compile and run spin's verifier for one run."""
    spin, cc = tools()
    defines = list(bounds) + list(run.defines)
    if run.expect_violation is not None:
        defines.append(f"ONLY=P_{run.expect_violation}")
    flags = [f"-D{d}" for d in defines]
    start = time.monotonic()
    name = os.path.basename(run.model)
    with tempfile.TemporaryDirectory(prefix="uintr-spin-") as work:
        shutil.copy(run.model, work)
        subprocess.run([spin, *flags, "-a", name], cwd=work, check=True,
                       capture_output=True, text=True)
        # SAFETY: assertions and end states; COLLAPSE: lossless compression.
        subprocess.run([cc, "-O2", "-w", "-DSAFETY", "-DCOLLAPSE", "-DMEMLIM=6000",
                        "-o", "pan", "pan.c"], cwd=work, check=True,
                       capture_output=True, text=True)
        out = subprocess.run(["./pan", "-m1000000"], cwd=work, capture_output=True,
                             text=True).stdout
        errors = _number(r"errors: (\d+)", out)
        violated = None
        detail = ""
        if errors:
            trail = subprocess.run([spin, *flags, "-t", name], cwd=work,
                                   capture_output=True, text=True).stdout
            m = re.search(r"text of failed assertion: (.*)", trail)
            if m:
                violated = _property_named(run.model, m.group(1))
                detail = m.group(1)
            else:
                detail = (re.search(r"pan:1: (.*)", out) or re.search(r"(.+)", out)).group(1)
    seconds = time.monotonic() - start
    complete = "Search not completed" not in out and "max search depth too small" not in out
    if run.expect_violation is None:
        ok = errors == 0 and complete
        if not complete:
            detail = "search not complete"
    else:
        ok = errors > 0 and violated == run.expect_violation
    return Result(run, ok, errors, _number(r"(\d+) states, stored", out),
                  _number(r"(\d+) transitions", out),
                  _number(r"depth reached (\d+)", out), seconds, violated, detail)


def check_all(jobs: int = 2) -> list[Result]:
    work = [(r, ()) for r in CONFIGURATIONS] + [(r, BROKEN_BOUNDS) for r in BROKEN]
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(check, r, bounds=b) for r, b in work]
        return [f.result() for f in futures]


def table(results: list[Result]) -> str:
    rows = ["| run | defines | expected | result | states | transitions | depth | s |",
            "|---|---|---|---|---:|---:|---:|---:|"]
    for r in results:
        expected = (f"violates {r.run.expect_violation}" if r.run.expect_violation
                    else "no error")
        got = ("ok" if r.ok else "FAILED") + (
            f": {r.violated or r.detail}" if r.errors else "")
        rows.append(f"| {r.run.name} | {' '.join(r.run.defines)} | {expected} | {got} "
                    f"| {r.states:,} | {r.transitions:,} | {r.depth} | {r.seconds:.1f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    try:
        results = check_all(args.jobs)
    except ToolMissing as e:
        print(f"verify: {e}", file=sys.stderr)
        return 2
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([dict(dataclasses.asdict(r), run=dataclasses.asdict(r.run))
                       for r in results], f, indent=1)
    bad = [r for r in results if not r.ok]
    print(f"\n{len(results) - len(bad)}/{len(results)} runs as expected")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
