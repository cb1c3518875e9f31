"""The protocol models (cython_src/model/delivery.pml, the delivery protocol;
jobqueue.pml, the default executor's job queue), checked by spin.

Every configuration must verify with no error and a complete search; every
broken core must be caught, by the property it breaks, with only that property
on. So deleting a property from the model (or weakening it until it no longer
sees its bug) fails here, and so does a model that drifts from the core's
marked steps. make verify runs the same searches (about 30 s on 2 cores).
"""
from __future__ import annotations

import os
import re
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "cython_src", "model"))

import verify  # noqa: E402

# What issue 6 asks the model to check, by the names the model gives them.
REQUIRED = {"no_lost_wakeup", "no_delivery_after_close", "one_notification",
            "handlers_never_nest"}


def _model() -> str:
    with open(verify.MODEL) as f:
        return f.read()


def test_every_property_is_stated_numbered_and_has_a_broken_core() -> None:
    text = _model()
    numbered = set(re.findall(r"^#define P_(\w+) \d+$", text, re.M))
    asserted = set(re.findall(r"^\s*assert\(SKIP\((\w+)\)", text, re.M))
    caught = {r.expect_violation for r in verify.BROKEN if r.model == verify.MODEL}
    assert REQUIRED <= set(verify.PROPERTIES)
    assert numbered == set(verify.PROPERTIES)
    assert asserted == set(verify.PROPERTIES), "a property with no assert in the model"
    assert caught == set(verify.PROPERTIES), "a property no broken core exercises"


def test_the_job_queue_model_states_its_property_and_breaks_both_ways() -> None:
    with open(verify.JOBQUEUE_MODEL) as f:
        text = f.read()
    numbered = set(re.findall(r"^#define P_(\w+) \d+$", text, re.M))
    asserted = set(re.findall(r"assert\(SKIP\((\w+)\)", text))
    broken = [r for r in verify.BROKEN if r.model == verify.JOBQUEUE_MODEL]
    assert numbered == asserted == set(verify.JOBQUEUE_PROPERTIES)
    assert {r.expect_violation for r in broken} == set(verify.JOBQUEUE_PROPERTIES)
    # the two orders the C relies on (jobqueue.h), each with a variant that swaps it
    assert {d for r in broken for d in r.defines} == {"BUG_SLEEP_LOOKS_FIRST", "BUG_PUT_LOOKS_FIRST"}


def test_the_model_has_three_senders_and_both_sn_togglers() -> None:
    text = _model()
    init = text[text.index("init"):]
    assert len(re.findall(r"run (Sender|Poster)\(", init)) >= 3
    assert "status[LOOP] = status[LOOP] & ~SN" in text      # the loop's restore
    assert "status[RCV] = status[RCV] | SN" in text         # a task switched out


def _core_step_marks() -> set[str]:
    marks: set[str] = set()
    for top in ("cython_src", "uintr_loop"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            for name in files:
                if name.endswith((".h", ".pxi", ".pyx", ".py")) and "model" not in dirpath:
                    with open(os.path.join(dirpath, name)) as f:
                        marks |= set(re.findall(r"model step ([A-Z]+)\b", f.read()))
    return marks


def test_model_steps_and_the_cores_marks_name_the_same_steps() -> None:
    model_steps = set(re.findall(r"\bstep ([A-Z]+)\b", _model()))
    assert model_steps == _core_step_marks()


@pytest.mark.timeout(900)      # 30 s on an idle 2-core machine; ample for a loaded one
def test_make_verify() -> None:
    """Everything make verify runs, at its full bounds, two searches at a time:
    each configuration verifies (no error, complete search) and each broken
    core is caught by its own property."""
    results = verify.check_all(jobs=2)
    print("\n" + verify.table(results))
    assert len(results) == len(verify.CONFIGURATIONS) + len(verify.BROKEN)
    for r in results:
        if r.run.expect_violation is None:
            assert r.states > 0, r
    failed = [f"{r.run.name}: errors={r.errors} violated={r.violated} {r.detail}"
              for r in results if not r.ok]
    assert not failed, "\n".join(failed)
