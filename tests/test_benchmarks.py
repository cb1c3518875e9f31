"""`make bench` must keep working: a quick run of benchmarks/run.py.

It runs the harness in its quick mode on this Python with every loop that
imports here (the test environment has asyncio, uvloop and uintr_loop on
both bases; the benchmark's own environment adds the peers from PyPI) and
checks that every workload ran on every loop, with its CPU time, and that the
tables and the targets report them. It asserts no timing: figures on a shared
2-core machine belong to the benchmark's own output, not to a test.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from _support import REPO_ROOT

ROUND_TRIPS = ("to_thread", "executor", "worker", "rcts", "anyio_to", "anyio_from")


@pytest.mark.skipif(sys.version_info < (3, 11),
                    reason="the benchmarks use asyncio.Runner, new in Python 3.11 (probed sys.version_info)")
def test_quick_benchmark_run_reports_every_figure(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = dict(os.environ, UINTR_BENCH_RESULTS=str(tmp_path), PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "run.py"), "--quick"],
                          env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    data = json.loads((tmp_path / f"bench-{py}.json").read_text())
    meta = data["meta"]
    loops = meta["loops"]
    assert {"asyncio", "uvloop", "uintr-uvloop", "uintr-asyncio"} <= set(loops), loops
    (rnd,) = data["rounds"]
    assert sorted(rnd["order"]) == sorted(loops)
    wakeups, ops = meta["params"]["wakeups"], meta["params"]["ops"]
    assert rnd["floor"]["n"] == wakeups and rnd["floor"]["cpu_us"] > 0
    for name in loops:
        fig = rnd["loops"][name]
        assert fig["errors"] == {}, (name, fig["errors"])
        wakes = ["wake", "native_eventfd"] + (["native_uintr"] if name.startswith("uintr-") else [])
        for key in wakes:
            assert fig[key]["n"] == wakeups and 0 < fig[key]["p50"] <= fig[key]["p99"], (name, key, fig[key])
            assert fig[key]["cpu_us"] > 0, (name, key)
        for key in ROUND_TRIPS:
            assert fig[key]["n"] == ops and 0 < fig[key]["p50"] <= fig[key]["p99"], (name, key, fig[key])
            assert fig[key]["cpu_us"] > 0, (name, key)
        if name.startswith("uintr-"):
            assert fig["notifications"]["busy"] >= 0 and fig["notifications"]["idle"] > 0, name
        for key in ("flood1", "flood4"):
            assert fig[key]["mcalls"] > 0 and fig[key]["cpu_us"] > 0, (name, key)
        for key in ("idle", "idle_endpoints"):
            assert fig[key]["cpu_pct"] >= 0 and fig[key]["wakeups_per_s"] >= 0, (name, key)
            assert fig[key]["window_s"] >= meta["params"]["idle"], (name, key)
        for key in ("echo", "http"):
            requests = meta["params"]["conns"] * meta["params"]["requests"]
            assert fig[key]["n"] == requests and fig[key]["rps"] > 0 and fig[key]["cpu_us"] >= 0, (name, key)
    figures = [row["figure"] for row in meta["targets"]]
    for needle in ("asyncio.to_thread", "run_in_executor", "dedicated worker", "run_coroutine_threadsafe",
                   "anyio to_thread", "anyio from_thread", "paced wake p50", "paced wake p99",
                   "flood, 1", "flood, 4", "idle loop,", "idle loop with a Receiver", "round-trip CPU",
                   "echo server", "HTTP with thread offload"):
        assert any(needle in f for f in figures), needle
    for row in meta["targets"]:
        assert set(row["values"]) == {n for n in loops if n.startswith("uintr-")}, row
    table = (tmp_path / f"bench-{py}.md").read_text()
    assert table.strip() == proc.stdout.strip()
    for heading in ("Issue 12's targets", "Wakeups", "Flood", "Thread round trips", "Idle loop", "Notification syscalls",
                    "Servers"):
        assert f"## {heading}" in table, heading
    for name in loops:
        assert f"| {name} |" in table, name
    plots = {f"latency_cdf-{py}.png", f"roundtrip-{py}.png"}
    if importlib.util.find_spec("matplotlib") is not None:
        assert set(meta["plots"]) == plots and all((tmp_path / p).stat().st_size > 0 for p in plots)
    else:
        assert meta["plots"] == [] and "no plots" in proc.stderr


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
