"""`make bench` must keep working: a quick smoke run of benchmarks/run.py.

It checks that every scenario ran on every loop and that the report has a row
for every target of issue 3. It asserts no timing: figures on a shared
2-core machine belong to the benchmark's own output, not to a test.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from _support import REPO_ROOT


@pytest.mark.skipif(sys.version_info < (3, 11),
                    reason="the benchmarks use asyncio.Runner, new in Python 3.11 (probed sys.version_info)")

def test_quick_benchmark_run_reports_every_figure(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = dict(os.environ, UINTR_BENCH_RESULTS=str(tmp_path), PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "run.py"), "--quick"],
                          env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "bench.json").read_text())
    (rnd,) = data["rounds"]
    loops = ("asyncio", "uvloop", "uintr-asyncio", "uintr-uvloop")
    assert {f"python/{n}" for n in loops} | {"floor"} <= set(rnd["latency"])
    for series, p in rnd["latency"].items():
        assert p["n"] == 300 and 0 < p["p50"] <= p["p99"] <= p["p99.9"], (series, p)
    assert set(rnd["throughput"]) == {f"{k}/{n}" for k in (1, 4) for n in loops}
    assert all(rate > 0 for rate in rnd["throughput"].values())
    assert set(rnd["echo"]) == {f"{k}/{n}" for k in ("protocol", "streams") for n in loops}
    figures = [row[0] for row in data["targets"]]
    for needle in ("Python sender", "native sender", "busy-poll", "throughput, 1", "throughput, 4",
                   "notifications per 1000", "echo (protocol)", "echo (streams)"):
        assert any(needle in f for f in figures), needle
    table = (tmp_path / "bench.md").read_text()
    assert table.strip() == proc.stdout.strip() and "| figure | target | measured | met |" in table


@pytest.mark.skipif(sys.version_info < (3, 11),
                    reason="the benchmarks use asyncio.Runner, new in Python 3.11 (probed sys.version_info)")
def test_quick_metrics_overhead_run_reports_every_figure(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "metrics_overhead.json"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "metrics_overhead.py"),
                           "--quick", "--rounds", "1", "--json", str(out)],
                          env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert len(data["rounds"]) == 1
    keys = {(r["base"], r["workload"], r["figure"]) for r in data["rows"]}
    for base in ("asyncio", "uvloop"):
        assert {(base, "echo", "rps"), (base, "echo", "cpu_ns_per_req"),
                (base, "switch", "cpu_ns_per_switch"), (base, "post", "cpu_ns_per_post")} <= keys
        for rnd in data["rounds"]:
            # the sampling ran where it was on, and only there
            assert rnd[f"post/{base}/on"]["samples"] > 0 == rnd[f"post/{base}/off"]["samples"]
    assert "| base | workload | figure |" in proc.stdout
