"""benchmarks/roundtrip.py must keep working: a smoke run of every workload
on a plain and a uintr loop. It asserts no timing (figures belong to the
benchmark's own output), only that each workload ran and was reported, with
the CPU time per operation and the uintr loop's spin counters."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from _support import REPO_ROOT

WORKLOADS = ("to_thread", "executor", "worker", "rcts", "paced", "flood1", "flood4")


@pytest.mark.skipif(sys.version_info < (3, 11),
                    reason="the benchmark uses asyncio.Runner, new in Python 3.11 (probed sys.version_info)")
def test_roundtrip_smoke_run_reports_every_workload(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "rt.json"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "roundtrip.py"), "--rounds", "1", "--ops", "20",
         "--posts", "2000", "--loops", "uvloop,uintr-uvloop,uintr-asyncio@0", "--json", str(out)],
        env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    (rnd,) = json.loads(out.read_text())["rounds"]
    for wl in WORKLOADS:
        for name in ("uvloop", "uintr-uvloop", "uintr-asyncio@0"):
            fig = rnd[f"{wl}/{name}"]
            assert fig["cpu_us"] > 0, (wl, name, fig)
            assert ("spins" in fig) == name.startswith("uintr"), (wl, name, fig)
        assert rnd[f"{wl}/uintr-asyncio@0"]["spins"] == 0       # busy_poll=0 never spins
        assert f"| {wl} | uintr-uvloop |" in proc.stdout
