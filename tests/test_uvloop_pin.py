"""The uvloop base reads uvloop's Loop object, so it runs only on the uvloop
releases whose layout it knows: pyproject.toml pins that range, and the loop
checks the imported uvloop's version before the hook touches the object.

Another release is simulated by patching the ``__version__`` the check reads.
"""
from __future__ import annotations

import asyncio
import gc
import os
import re
import warnings
from pathlib import Path

import pytest
import uvloop

import uintr_loop
import uintr_loop._uvloop as uv_base
from uintr_loop._policy import HAS_POLICIES
from uintr_loop._uvloop import UVLOOP_VERSIONS, check_uvloop_version, uvloop_range

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"

OUTSIDE = ["0.20.0", "0.19.1", "0.24.0", "0.30.2", "1.0.0", "2.21.0", "nonsense", "", "v0.22"]
INSIDE = ["0.21.0", "0.22.1", "0.23.0", "0.23.9rc1"]


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_the_pin_in_pyproject_is_the_range_the_code_checks() -> None:
    text = PYPROJECT.read_text()
    pins = re.findall(r'"uvloop\s*([^";]*)"', text)
    assert pins, "pyproject.toml names no uvloop requirement"
    for pin in pins:
        assert sorted(pin.replace(" ", "").split(",")) == sorted(uvloop_range().split(","))
    assert uvloop_range() == ">=%d.%d,<%d.%d" % (*UVLOOP_VERSIONS[0], *UVLOOP_VERSIONS[1])


def test_the_installed_uvloop_is_in_the_range() -> None:
    assert check_uvloop_version() == uvloop.__version__


@pytest.mark.parametrize("version", INSIDE)
def test_releases_in_the_range_are_accepted(version: str) -> None:
    assert check_uvloop_version(version) == version


@pytest.mark.parametrize("version", [*OUTSIDE, 21, None])
def test_releases_outside_the_range_are_refused_naming_the_asyncio_base(
    version: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    if version is None:
        monkeypatch.delattr(uvloop, "__version__")
    else:
        monkeypatch.setattr(uvloop, "__version__", version)
    with pytest.raises(RuntimeError, match=r"use base='asyncio'") as info:
        check_uvloop_version()
    assert uvloop_range() in str(info.value)


def _policy_loop() -> object:
    with warnings.catch_warnings():
        # 3.14+ deprecates policies: that warning is not what this checks
        warnings.simplefilter("ignore", DeprecationWarning)
        policy = uintr_loop.UintrPolicy(base="uvloop")
    return policy.new_event_loop()


@pytest.mark.parametrize("version", OUTSIDE)
def test_a_loop_on_an_unknown_uvloop_is_refused_before_the_hook_reads_it(
    version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hooked: list[object] = []
    ports: list[object] = []
    real_new_port = uv_base.new_port

    def recording_new_port() -> object:
        ports.append(None)
        return real_new_port()

    monkeypatch.setattr(uvloop, "__version__", version)
    monkeypatch.setattr(uv_base, "UVHook", lambda *args: hooked.append(args))
    monkeypatch.setattr(uv_base, "new_port", recording_new_port)
    # An earlier test's garbage may hold fds that a collection in the middle
    # would close: collect it first, and let no collection run until the
    # second count, so any fd a refused constructor leaves behind shows.
    gc.collect()
    gc.disable()
    try:
        before = _open_fds()
        for make in (
            lambda: uintr_loop.new_event_loop(base="uvloop"),
            *([_policy_loop] if HAS_POLICIES else []),
            lambda: uintr_loop.UintrUVLoop(),
        ):
            with pytest.raises(RuntimeError, match=r"use base='asyncio'"):
                make()
        coro = asyncio.sleep(0)
        with pytest.raises(RuntimeError, match=r"use base='asyncio'"):
            uintr_loop.run(coro, base="uvloop")
        coro.close()
        after = _open_fds()
    finally:
        gc.enable()
    assert hooked == [] and ports == []    # refused before any port or hook
    assert after == before
    # the asyncio base needs none of uvloop's internals and still works
    loop = uintr_loop.new_event_loop(base="asyncio")
    try:
        assert loop.run_until_complete(asyncio.sleep(0, "ran")) == "ran"
    finally:
        loop.close()


def test_the_uvloop_base_works_again_on_the_real_version() -> None:
    loop = uintr_loop.new_event_loop(base="uvloop")
    try:
        assert loop.base == "uvloop"  # type: ignore[attr-defined]
        assert loop.run_until_complete(asyncio.sleep(0, "ran")) == "ran"
    finally:
        loop.close()
