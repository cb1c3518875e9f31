"""The flagship example runs end to end on both loops with a small load."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "offload_server.py"
REQUESTS = 400
STAT_FIELDS = (
    "posted", "notifications", "coalesced", "suppressed", "delivered", "spurious", "mode",
)


def test_offload_server_example_both_loops(tmp_path: Path) -> None:
    out_json = tmp_path / "offload.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "--requests", str(REQUESTS), "--connections", "8",
         "--loop", "both", "--json", str(out_json)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"

    table = proc.stdout
    header = next(line for line in table.splitlines() if line.startswith("loop"))
    for field in ("requests", "errors", "req/s", "p50 ms", "p99 ms", *STAT_FIELDS):
        assert field in header, header
    rows = {line.split()[0]: line.split() for line in table.splitlines()
            if line.split() and line.split()[0] in ("asyncio", "uvloop", "uintr")}
    assert set(rows) == {"asyncio", "uvloop", "uintr"}, table
    for row in rows.values():
        assert row[1:3] == [str(REQUESTS), "0"], row
    for stock in ("asyncio", "uvloop"):
        assert rows[stock][-len(STAT_FIELDS):] == ["-"] * len(STAT_FIELDS), rows[stock]

    results = {r["loop"]: r for r in json.loads(out_json.read_text())["results"]}
    assert set(results) == {"asyncio", "uvloop", "uintr"}
    for r in results.values():
        assert not r["failed"] and r["ok"] == REQUESTS and r["errors"] == 0, r
        assert r["served"] == r["expected_served"] >= REQUESTS, r
    assert results["asyncio"]["statistics"] is None and results["uvloop"]["statistics"] is None
    stats = results["uintr"]["statistics"]
    assert set(STAT_FIELDS) <= set(stats), stats
    assert results["uintr"]["server_loop"].startswith("uintr_loop"), results["uintr"]
    # every executor completion is a call_soon_threadsafe; on the uvloop base
    # one post covers all those queued before the loop drains its mailbox
    assert 1 <= stats["posted"] <= stats["delivered"] + REQUESTS, stats
    assert stats["delivered"] >= 1, stats
    assert stats["posted"] == (
        stats["notifications"] + stats["coalesced"] + stats["suppressed"]), stats
    assert str(stats["posted"]) in rows["uintr"], rows["uintr"]
