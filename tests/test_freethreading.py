"""Free-threaded CPython (3.13t): uintr_loop keeps the GIL off, and the state
other threads touch stays consistent without it.

The import tests run only on a free-threaded build (``make test-ft`` builds
one); the thread-safety tests run everywhere, and are the ones that matter
on a free-threaded build, where nothing serialises the threads.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import sysconfig
import threading

import pytest
from _support import HANG_GUARD, child_env, free_threaded_build, gil_enabled

import uintr_loop
from uintr_loop import Receiver

needs_free_threaded = pytest.mark.skipif(
    not free_threaded_build(),
    reason=f"a GIL build of Python {sys.version.split()[0]} (probed sysconfig "
    f"Py_GIL_DISABLED={sysconfig.get_config_var('Py_GIL_DISABLED')!r}); make test-ft "
    "runs these on a free-threaded 3.13t",
)

# Every extension of the package (the hardware backend only where it was built)
# and the test-only ones the suite loads (tests/_testcore).
EXTENSIONS = ["uintr_loop._core", "uintr_loop._native", "_testcore._hardware_fake", "_testcore._cells"]
try:
    import uintr_loop._hardware  # noqa: F401
except ImportError:
    pass
else:
    EXTENSIONS.append("uintr_loop._hardware")

_IMPORT_CHILD = """
import sys
import {modules}
print(sys._is_gil_enabled())
"""

_LOOP_CHILD = """
import asyncio, sys, threading
import uintr_loop

async def main():
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    seen = []
    def hit(i):
        seen.append(i)
        if len(seen) == 4000:
            done.set()
    def flood(k):
        for i in range(1000):
            loop.call_soon_threadsafe(hit, k * 1000 + i)
    threads = [threading.Thread(target=flood, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    await asyncio.wait_for(done.wait(), 30)
    for t in threads:
        t.join()
    assert sorted(seen) == list(range(4000)), len(seen)
    assert type(loop).__name__ == "UintrEventLoop", type(loop)

uintr_loop.run(main(), base="asyncio")
print(sys._is_gil_enabled())
"""


def _run_child(code: str) -> subprocess.CompletedProcess[str]:
    env = child_env()
    env.pop("PYTHON_GIL", None)     # the interpreter's own choice, not a forced one
    return subprocess.run([sys.executable, "-W", "error", "-c", code], env=env,
                          capture_output=True, text=True, timeout=120)


@needs_free_threaded
def test_importing_uintr_loop_keeps_the_gil_off() -> None:
    # An extension that does not declare free-threading support turns the GIL
    # on at import, with a RuntimeWarning (-W error makes it fatal here).
    done = _run_child(_IMPORT_CHILD.format(modules=", ".join(["uintr_loop"] + EXTENSIONS)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False", done.stdout + done.stderr


@needs_free_threaded
def test_a_loop_on_the_asyncio_base_runs_threads_without_the_gil() -> None:
    done = _run_child(_LOOP_CHILD)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False", done.stdout + done.stderr


@needs_free_threaded
def test_this_test_process_runs_without_the_gil() -> None:
    # Every test module is imported before the first test runs: so every
    # extension and dependency the suite loads has kept the GIL off, and the
    # suite tests the free-threaded build (unless PYTHON_GIL=1 asked for it).
    if os.environ.get("PYTHON_GIL") == "1":
        pytest.skip("PYTHON_GIL=1 set for this run (probed the environment)")
    assert not gil_enabled()


@pytest.mark.parametrize("base", ["asyncio", "uvloop"])
def test_receivers_made_and_dropped_in_threads_never_share_a_block(base: str) -> None:
    # Port.attach from threads that make Receivers (loop=), Port.release from
    # wherever the last reference goes: the slot bitmap is their shared state.
    loop = uintr_loop.new_event_loop(base=base)
    seen_twice: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def churn(k: int) -> None:
        try:
            start.wait()
            for _ in range(300):
                held = [Receiver(lambda v: None, loop=loop) for _ in range(3)]
                for r in held:
                    slot = int(repr(r).split("nv=")[1].split()[0])
                    owners.setdefault(slot, []).append(k)
                    if len(owners[slot]) > 1:
                        seen_twice.append((slot, k))
                for r in held:
                    slot = int(repr(r).split("nv=")[1].split()[0])
                    owners[slot].remove(k)
                    r.close()
                del held, r
        except BaseException as exc:        # noqa: BLE001 - reported below
            errors.append(exc)

    owners: dict[int, list[int]] = {}
    threads = [threading.Thread(target=churn, args=(k,)) for k in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(HANG_GUARD * 6)
        assert not any(t.is_alive() for t in threads)
        assert not errors, errors
        assert not seen_twice, f"two live receivers shared a block: {seen_twice[:5]}"
    finally:
        loop.close()


@pytest.mark.parametrize("base", ["asyncio", "uvloop"])
def test_vector_fds_made_and_closed_in_threads(base: str) -> None:
    # export_vector_fd (the port's peer set) and VectorFd.close from several
    # threads at once: every fd made is a fresh one, closed exactly once.
    loop = uintr_loop.new_event_loop(base=base)
    receiver = Receiver(lambda v: None, loop=loop)
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def churn() -> None:
        try:
            start.wait()
            for i in range(200):
                vfd = receiver.vector_fd(i % 64)
                fd = vfd.fileno()
                os.fstat(fd)            # ours, and open
                closers = [threading.Thread(target=vfd.close) for _ in range(2)]
                for c in closers:
                    c.start()
                for c in closers:
                    c.join()
                assert vfd.closed
        except BaseException as exc:        # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=churn) for _ in range(4)]
    sentinel_r, sentinel_w = os.pipe()
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(HANG_GUARD * 6)
        assert not any(t.is_alive() for t in threads)
        assert not errors, errors
        # a double close would have closed someone else's fd, maybe this one
        os.write(sentinel_w, b"x")
        assert os.read(sentinel_r, 1) == b"x"
    finally:
        os.close(sentinel_r)
        os.close(sentinel_w)
        receiver.close()
        loop.close()


@pytest.mark.parametrize("base", ["asyncio", "uvloop"])
def test_call_soon_threadsafe_from_many_threads_runs_each_callback_once(base: str) -> None:
    # On the uvloop base this is the mailbox's test-and-append against the
    # drain's swap (mailbox.pxi), the step the GIL used to make atomic.
    per_thread, nthreads = 3000, 4

    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        seen: list[int] = []
        total = per_thread * nthreads

        def hit(i: int) -> None:
            seen.append(i)
            if len(seen) == total:
                done.set()

        def flood(k: int) -> None:
            for i in range(per_thread):
                loop.call_soon_threadsafe(hit, k * per_thread + i)

        threads = [threading.Thread(target=flood, args=(k,)) for k in range(nthreads)]
        for t in threads:
            t.start()
        await asyncio.wait_for(done.wait(), HANG_GUARD * 3)
        for t in threads:
            t.join()
        await asyncio.sleep(0)
        return seen

    seen = uintr_loop.run(main(), base=base)
    assert sorted(seen) == list(range(per_thread * 4))


def test_the_default_base_is_asyncio_while_the_gil_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    # Faked on a GIL build: what default_base() reads is sys._is_gil_enabled
    # and the installed uvloop's version (an old one would turn the GIL on).
    from uintr_loop import _bases

    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: False, raising=False)
    monkeypatch.setattr(_bases, "uvloop_keeps_gil_off", lambda: False)
    assert _bases.default_base() == "asyncio"
    loop = uintr_loop.new_event_loop()
    try:
        assert loop.base == "asyncio"  # type: ignore[attr-defined]
    finally:
        loop.close()
    monkeypatch.setattr(_bases, "uvloop_keeps_gil_off", lambda: True)
    expected = "uvloop" if _bases.uvloop_available() else "asyncio"
    if uintr_loop.capabilities().mode != "software":
        expected = "asyncio"
    assert _bases.default_base() == expected


def test_uvloop_keeps_gil_off_reads_the_installed_version(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    from uintr_loop import _bases

    for version, keeps in [("0.21.0", False), ("0.22.0", True), ("0.23.1", True), ("1.0", True)]:
        monkeypatch.setattr(importlib.metadata, "version", lambda name, v=version: v)
        assert _bases.uvloop_keeps_gil_off() is keeps, version

    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert _bases.uvloop_keeps_gil_off() is False
