"""The syscall check behind the notification counts: run under
``strace -f -c -e trace=write,sendto`` to count every wakeup write, for any
loop, busy or idle (see benchmarks/README.md for the recorded run).

    strace -f -c -e trace=write,sendto python benchmarks/strace_check.py LOOP busy|idle [CALLS]
"""
from __future__ import annotations

import sys

import throughput as tp
from _common import LOOPS, run_on

if __name__ == "__main__":
    name, mode = sys.argv[1], sys.argv[2]
    calls = int(sys.argv[3]) if len(sys.argv) > 3 else 10_000
    fn = tp.busy_posts if mode == "busy" else tp.idle_posts
    (notes, n), stats = run_on(LOOPS[name], lambda: fn(calls))
    print(f"{name} {mode}: {n} call_soon_threadsafe; loop statistics: "
          f"{'n/a' if stats is None else stats.notifications} notifications", file=sys.stderr)
