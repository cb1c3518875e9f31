"""The product ships no test scaffolding: UpidCell, PacedPoster, half_post,
the windows onto the core's private state (repair_count, sender_watch_state,
liveness_state, preempt_thread_only, handle_pool_size, main_tstate_repairs)
and the fake hardware backend live in the test-only extension
(tests/_testcore, built by `make test`), never in uintr_loop. `make wheel`
checks the installed wheel the same way (.ci/wheel_smoke.py)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import uintr_loop
from uintr_loop import _core, _native
from _support import REPO_ROOT

TEST_ONLY_NAMES = ("UpidCell", "PacedPoster", "half_post", "fake_configure", "fake_log",
                   "repair_count", "sender_watch_state", "liveness_state", "preempt_thread_only",
                   "handle_pool_size", "_handle_pool_size", "main_tstate_repaired",
                   "main_tstate_repairs")


def test_core_and_native_hold_no_test_only_names() -> None:
    for module in (_core, _native):
        leaked = [name for name in TEST_ONLY_NAMES if hasattr(module, name)]
        assert leaked == [], f"{module.__name__} ships test-only names: {leaked}"


def test_package_has_no_test_only_module_files() -> None:
    package = Path(uintr_loop.__file__).parent
    leaked = sorted(p.name for p in package.iterdir() if "fake" in p.name or "testcore" in p.name)
    # a stale build of an older checkout leaves uintr_loop/_hardware_fake*.so: delete it
    assert leaked == [], f"test-only files in the package ({package}): {leaked}"
    assert importlib.util.find_spec("uintr_loop._hardware_fake") is None


def test_product_build_names_no_test_extension() -> None:
    spec = importlib.util.spec_from_file_location("uintr_loop_setup", REPO_ROOT / "setup.py")
    assert spec is not None and spec.loader is not None
    setup = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup)      # not __main__: defines, builds nothing
    for with_hardware in (False, True):
        names = [e.name for e in setup.extensions(with_hardware)]
        assert all(n.startswith("uintr_loop.") and "fake" not in n for n in names), names


def test_the_test_extension_reaches_the_core_state() -> None:
    """_testcore uses the core's own check and figures (through _core.pxd),
    so its errors are the core's."""
    import pytest
    from _testcore._cells import UpidCell

    with pytest.raises(ValueError, match="vector must be in 0..63"):
        UpidCell(64)
    cell = UpidCell(0, 0)
    cell.restore()
    cell.post(3)
    stats = cell.statistics()
    assert isinstance(stats, uintr_loop.ReceiverStatistics)
    assert (stats.posted, stats.notifications) == (1, 1)


def test_the_sdist_carries_every_source_and_nothing_generated(tmp_path: Path) -> None:
    """`pip install` of the sdist builds from it alone (make sdist proves the
    build): every Cython and C source and header of cython_src must be in it;
    the C that Cython generates, the compiled objects and the tests are not
    (MANIFEST.in)."""
    import subprocess
    import sys
    import tarfile

    subprocess.run([sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(tmp_path),
                    "sdist", "--dist-dir", str(tmp_path)],
                   cwd=REPO_ROOT, check=True, capture_output=True)
    (archive,) = tmp_path.glob("uintr_loop-*.tar.gz")
    with tarfile.open(archive) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    src = REPO_ROOT / "cython_src"
    generated = {p for p in src.rglob("*.c") if p.with_suffix(".pyx").exists()}
    wanted = {str(p.relative_to(REPO_ROOT)) for p in src.rglob("*")
              if p.suffix in (".pyx", ".pxi", ".pxd", ".h", ".c") and p not in generated
              and "model" not in p.parts}
    assert wanted and wanted <= names, sorted(wanted - names)
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE", "uintr_loop/__init__.py",
                 "uintr_loop/_core.pxd", "uintr_loop/_core.pyi", "uintr_loop/py.typed"):
        assert name in names, name
    shipped = sorted(n for n in names if n.endswith((".so", ".o")) or n.startswith("tests/")
                     or str(REPO_ROOT / n) in {str(p) for p in generated})
    assert shipped == [], shipped
