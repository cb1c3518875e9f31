"""The type hints hold: ``mypy --strict`` passes on ``uintr_loop`` (its
stubs for the compiled core, ``_core.pyi``, included) and on the emulated
hardware's driver (``tests/hw_emu``). ``make test``
installs mypy where a wheel exists (every GIL build here; not 3.13t, where
its Rust dependency has none); the check runs in a subprocess with its
cache outside the repository."""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(600)
@pytest.mark.parametrize("target", [["uintr_loop"], ["tests/hw_emu/hw_emu.py", "tests/hw_emu/python_level.py"]],
                         ids=["package", "hw_emu"])
def test_passes_mypy_strict(target: list[str]) -> None:
    pytest.importorskip("mypy", reason="mypy is not installed (make test installs it where a wheel exists)")
    with tempfile.TemporaryDirectory() as cache:
        done = subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", "--cache-dir", cache, *target],
            cwd=ROOT, capture_output=True, text=True,
        )
    assert done.returncode == 0, done.stdout + done.stderr
