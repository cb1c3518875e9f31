"""The UINTR probe, the mode choice and ``python -m uintr_loop info``.

Our machines have no UINTR: on them these tests check the software path is
chosen and that the reason given is the probe's. On a UINTR machine, the
expectations follow what the probe reports there.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

import uintr_loop
from uintr_loop import _capabilities


def test_capabilities_reports_the_probe_and_a_reason() -> None:
    caps = uintr_loop.capabilities()
    assert caps.cpu_uintr in (True, False, None)
    assert caps.mode == "software"          # no hardware backend in this build
    assert caps.reason
    assert set(caps.abi_probe) == {"rfc-v1", "v6.0-branch"}
    if not caps.cpuinfo_flag:
        # a kernel that does not claim UINTR is never sent a syscall: mainline
        # reuses these numbers (449 futex_waitv, 452 fchmodat2, ...)
        assert all(r.startswith("not probed") for r in caps.abi_probe.values())
        assert caps.abi is None
    if caps.cpu_uintr is False:
        assert "CPUID.(7,0):EDX[5] = 0" in caps.reason


def test_abi_tables_match_both_published_numberings() -> None:
    rfc, branch = _capabilities.ABIS["rfc-v1"], _capabilities.ABIS["v6.0-branch"]
    # the six operations the backend uses; the RFC calls the third uintr_create_fd
    assert [rfc[k] for k in ("uintr_register_handler", "uintr_vector_fd", "uintr_register_sender", "uintr_wait")] == [449, 451, 452, 454]
    assert list(rfc.values()) == list(range(449, 455))
    assert list(branch.values()) == list(range(471, 477))
    assert branch["uintr_vector_fd"] == 473


def test_mode_software_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UINTR_LOOP_MODE", "software")
    caps = uintr_loop.capabilities()
    assert (caps.requested, caps.mode, caps.reason) == ("software", "software", "UINTR_LOOP_MODE=software")
    loop = uintr_loop.new_event_loop()
    try:
        assert loop.delivery_mode == "software"
        assert loop.statistics().mode == "software"
    finally:
        loop.close()


def test_mode_hardware_without_hardware_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UINTR_LOOP_MODE", "hardware")
    with pytest.raises(uintr_loop.HardwareUnavailableError, match="UINTR_LOOP_MODE=hardware, but"):
        uintr_loop.capabilities()
    with pytest.raises(uintr_loop.HardwareUnavailableError):
        uintr_loop.new_event_loop()


def test_unknown_mode_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UINTR_LOOP_MODE", "turbo")
    with pytest.raises(ValueError, match="expected one of auto, software, hardware"):
        uintr_loop.capabilities()


def test_info_command_prints_the_probe() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "uintr_loop", "info"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    for needle in ("mode:", "CPUID.7.0:EDX[5]", "kernel ABI", "rfc-v1", "v6.0-branch", "hardware backend"):
        assert needle in out


def test_info_command_fails_clearly_when_hardware_is_forced() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "uintr_loop", "info"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "UINTR_LOOP_MODE": "hardware"},
    )
    assert proc.returncode == 2
    assert "UINTR_LOOP_MODE=hardware, but" in proc.stderr


def test_platform_check_names_what_is_supported(monkeypatch: pytest.MonkeyPatch) -> None:
    from uintr_loop import _platform

    monkeypatch.setattr(_platform.sys, "platform", "darwin")
    with pytest.raises(ImportError, match="Linux x86-64"):
        _platform.check_platform()
    monkeypatch.setattr(_platform.sys, "platform", "linux")
    monkeypatch.setattr(_platform.platform, "machine", lambda: "aarch64")
    with pytest.raises(ImportError, match="linux/aarch64"):
        _platform.check_platform()


def test_loop_refuses_a_foreign_selector_cleanly() -> None:
    import selectors

    sel = selectors.DefaultSelector()
    try:
        with pytest.raises(TypeError, match="makes its own selector"):
            uintr_loop.UintrEventLoop(sel)
    finally:
        sel.close()


# ---- the hardware reasons and the build's detection -------------------------------

def test_every_reason_against_hardware_is_named() -> None:
    reasons = _capabilities.hardware_reasons(False, False, None, False)
    assert len(reasons) == 3
    assert "CPUID.(7,0):EDX[5] = 0" in reasons[0]
    assert "does not claim UINTR" in reasons[1] and "not probed" in reasons[1]
    assert "-muintr -mgeneral-regs-only" in reasons[2]
    assert "no CPUID leaf 7" in _capabilities.hardware_reasons(None, True, "rfc-v1", True)[0]
    assert _capabilities.hardware_reasons(True, True, None, True) == [
        "the kernel answers neither UINTR syscall numbering (449.. or 471..)"
    ]
    assert _capabilities.hardware_reasons(True, True, "v6.0-branch", True) == []


def test_this_machine_is_refused_with_all_its_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    caps = uintr_loop.capabilities()
    if not caps.hardware_why_not:
        pytest.skip("this machine can run the hardware mode (probed: CPU, kernel ABI, build)")
    monkeypatch.setenv("UINTR_LOOP_MODE", "hardware")
    with pytest.raises(uintr_loop.HardwareUnavailableError) as info:
        uintr_loop.capabilities()
    for reason in caps.hardware_why_not:
        assert reason in str(info.value)


def test_hardware_is_chosen_only_when_cpu_kernel_and_build_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    # A pretend probe: nothing is executed on the hardware path here.
    monkeypatch.setattr(_capabilities, "_probe", lambda: (True, True, "test", "v6.0-branch", ()))
    monkeypatch.setattr(_capabilities, "BUILD_HAS_HARDWARE_BACKEND", True)
    caps = uintr_loop.capabilities()
    assert (caps.mode, caps.hardware_why_not) == ("hardware", ())
    monkeypatch.setattr(_capabilities, "BUILD_HAS_HARDWARE_BACKEND", False)
    caps = uintr_loop.capabilities()
    assert caps.mode == "software" and "no hardware backend" in caps.reason
    monkeypatch.setenv("UINTR_LOOP_MODE", "hardware")
    with pytest.raises(uintr_loop.HardwareUnavailableError, match="no hardware backend"):
        uintr_loop.capabilities()


def test_build_flag_matches_what_was_built() -> None:
    try:
        from uintr_loop import _hardware  # noqa: F401
        built = True
    except ImportError:
        built = False
    assert _capabilities.BUILD_HAS_HARDWARE_BACKEND is built
    assert ("-muintr" in _capabilities.BUILD_HARDWARE_BACKEND) is built


def _setup_module():
    import importlib.util

    from _support import REPO_ROOT

    spec = importlib.util.spec_from_file_location("uintr_loop_setup", REPO_ROOT / "setup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)      # not __main__: defines, builds nothing
    return module


def test_build_detects_compiler_support_and_never_fails_on_it() -> None:
    setup = _setup_module()
    assert setup.compiler_supports([], source="int uintr_loop_probe;\n") is True   # the mechanism works
    assert setup.compiler_supports([]) is False      # the handler and intrinsics need -muintr
    assert setup.compiler_supports(["-mno-such-option-for-uintr-loop"]) is False   # an answer, not a crash
    names = [e.name for e in setup.extensions(False)]
    assert names == ["uintr_loop._core", "uintr_loop._native"]     # nothing test-only
    assert "uintr_loop._hardware" in [e.name for e in setup.extensions(True)]
    if _capabilities.BUILD_HAS_HARDWARE_BACKEND:      # built only where the flags work
        assert setup.compiler_supports(setup.UINTR_FLAGS) is True


def test_a_compiler_without_muintr_builds_without_the_backend(
    tmp_path: "os.PathLike[str]", monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import pathlib

    cc = pathlib.Path(tmp_path) / "cc"
    cc.write_text('#!/bin/sh\nfor a in "$@"; do [ "$a" = -muintr ] && exit 1; done\nexec gcc "$@"\n')
    cc.chmod(0o755)
    monkeypatch.setenv("CC", str(cc))          # an older compiler: no -muintr
    setup = _setup_module()
    assert setup.compiler_supports([], source="int uintr_loop_probe;\n") is True   # it compiles C
    assert setup.compiler_supports(setup.UINTR_FLAGS) is False
    assert setup.want_hardware() is False
    assert "no hardware backend in this build" in capsys.readouterr().out
    monkeypatch.delenv("CC")
    monkeypatch.setenv("UINTR_LOOP_BUILD_HARDWARE", "0")
    assert setup.want_hardware() is False


def test_info_reports_the_hardware_backend_build() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "uintr_loop", "info"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    line = [ln for ln in out.splitlines() if ln.startswith("hardware backend:")][0]
    assert ("built with -muintr -mgeneral-regs-only" in line) is _capabilities.BUILD_HAS_HARDWARE_BACKEND
