"""The cross-process example runs end to end in quick mode: a producer
process feeds the asyncio consumer through shared memory, woken by user
interrupts and, for comparison, by a pipe; every item arrives exactly once."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from _support import REPO_ROOT, child_env

EXAMPLE = REPO_ROOT / "examples" / "xproc_pipeline.py"


def test_xproc_pipeline_example_quick(tmp_path: Path) -> None:
    out_json = tmp_path / "xproc.json"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "--quick", "--json", str(out_json)],
        cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    header = proc.stdout.splitlines()[0].split()
    assert header == ["transport", "phase", "items", "items/s", "p50", "us", "p99", "us",
                      "wakeups", "syscalls", "lost"], header

    rows = {(r["transport"], r["phase"]): r for r in json.loads(out_json.read_text())["rows"]}
    assert set(rows) == {(t, p) for t in ("uintr", "pipe") for p in ("burst", "paced")}
    expected = {"burst": 20_000, "paced": 500}
    for (transport, phase), r in rows.items():
        assert r["items"] == expected[phase] and r["lost"] == 0, r
        assert 1 <= r["wakeups"] <= r["items"], r
        assert r["items_per_s"] > 0 and 0 < r["p50_us"] <= r["p99_us"], r
    # a pipe pays one write per item; a post at most one eventfd write, and
    # none when the loop's busy poll (SN set) takes it, so any count up to
    # one per item is valid (0 included)
    assert rows["pipe", "burst"]["syscalls"] == 20_000
    assert rows["uintr", "burst"]["syscalls"] <= 20_000


@pytest.mark.skipif(sys.version_info < (3, 11),
                    reason="the benchmark uses asyncio.Runner, new in Python 3.11 (probed sys.version_info)")
def test_xproc_latency_benchmark_quick(tmp_path: Path) -> None:
    """The benchmark is a program, not a test: this only checks it runs and
    reports every row (no figure is asserted)."""
    out_json = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "xproc_latency.py"), "--quick",
         "--wakeups", "300", "--json", str(out_json)],
        cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "| process, Sender.send |" in proc.stdout
    result = json.loads(out_json.read_text())
    assert set(result["rows"]) == {"thread", "process", "pipe"}
    assert all(row["n"] > 0 for row in result["rows"].values())
    assert result["owner_death_detection_us"]["n"] == 3
