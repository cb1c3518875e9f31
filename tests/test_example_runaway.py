"""The runaway-request example runs on both loops in its quick mode: the
runaway is stopped on uintr_loop and runs to its end on stock asyncio."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "runaway_server.py"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="the example compares with asyncio.timeout (3.11+; probed sys.version_info)")
def test_runaway_example_both_loops(tmp_path: Path) -> None:
    out_json = tmp_path / "runaway.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "--quick", "--clients", "4", "--json", str(out_json)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    header = next(line for line in proc.stdout.splitlines() if line.startswith("loop"))
    for field in ("runaway", "ran ms", "finally", "pings", "p50 ms", "p99 ms", "max ms"):
        assert field in header
    results = {r["loop"]: r for r in json.loads(out_json.read_text())["results"]}
    assert results["asyncio"]["runaway"] == "ran to the end"
    assert results["asyncio"]["runaway_ms"] >= 500            # asyncio.timeout never fired
    assert results["uintr"]["runaway"] == "stopped"
    assert results["uintr"]["runaway_ms"] < 500
    for r in results.values():
        assert r["finally_ran"] and r["pings"] > 0 and r["server_exit"] == 0
