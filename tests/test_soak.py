"""The soak driver (tests/soak.py) for a few seconds on each base, and proof that it
fails: a post dropped, or a wakeup lost (either form), is caught and reported with the
state dumped.
``make soak`` runs the same driver for 60 s on each base."""
from __future__ import annotations

import pytest

from soak import SoakConfig, SoakFailure, format_table, run_soak

SECONDS = 2.0


@pytest.mark.stress
@pytest.mark.timeout(120)
@pytest.mark.parametrize("base", ["asyncio", "uvloop"])
def test_soak_counts_every_post_exactly(base: str) -> None:
    result = run_soak(SoakConfig(base=base, seconds=SECONDS))
    print("\n" + format_table([result]))
    kinds = result["kinds"]
    for kind in ("thread", "process", "native", "pingpong", "call_soon_threadsafe"):
        assert kinds[kind]["posts"] > 0, f"no {kind} posts in {result}"
    # every solo kind had its turn, and every receiver phase happened
    assert set(result["solos"]) == {"thread", "process", "pingpong"}
    assert len(result["loop phases"]) == 6 and len(result["task phases"]) == 5
    assert result["repairs"] == 0


@pytest.mark.timeout(120)
def test_soak_catches_a_dropped_post() -> None:
    with pytest.raises(SoakFailure) as failure:
        run_soak(SoakConfig(base="uvloop", seconds=1.0, fault="dropped-post"))
    text = str(failure.value)
    assert "statistics().posted=" in text and "senders counted" in text, text
    assert "UPID block 0 (loop)" in text, text


@pytest.mark.timeout(120)
def test_soak_catches_a_lost_wakeup() -> None:
    """ON left set with no notification (what a lost wakeup leaves): with the repair
    timer off, nothing wakes the loop receiver again, and a guard expires."""
    with pytest.raises(SoakFailure) as failure:
        run_soak(SoakConfig(base="asyncio", seconds=10.0, fault="lost-wakeup", guard=1.0))
    text = str(failure.value)
    assert "lost wakeup?" in text or "gave up" in text, text
    # the dump shows the loop receiver's UPID with ON stuck
    (line,) = [ln for ln in text.splitlines() if "(loop receiver)" in ln]
    assert "ON" in line.split("(", 2)[2], line


@pytest.mark.timeout(120)
def test_soak_catches_the_classic_lost_wakeup() -> None:
    """A loop that clears SN before blocking but ignores what was posted meanwhile (on
    the asyncio base). During storms the next post hides it; a solo, where the loop and
    the receiver task wait on one sender's post with no timer but the guard, cannot."""
    with pytest.raises(SoakFailure) as failure:
        run_soak(SoakConfig(base="asyncio", seconds=60.0, fault="ignore-pending", guard=1.0))
    text = str(failure.value)
    assert "lost wakeup?" in text or "gave up" in text, text
