"""Subprocess conformance: create_subprocess_exec/shell with pipes, return
codes, signals, communicate, and the low-level subprocess_exec protocol API.

Every test runs on stock asyncio and on uintr_loop (see conftest.py).
"""
from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from _support import guarded

_T = TypeVar("_T")
HANG_GUARD = 15.0
PIPE = asyncio.subprocess.PIPE

pytestmark = pytest.mark.asyncio

SLEEPER = "import sys, time; sys.stdout.write('ready\\n'); sys.stdout.flush(); time.sleep(60)"


async def _guarded(aw: Awaitable[_T], timeout: float = HANG_GUARD) -> _T:
    """guarded() with this module's longer default guard (child processes start slowly)."""
    return await guarded(aw, timeout)


async def test_cat_echo_through_pipes() -> None:
    proc = await asyncio.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE)
    data = b"hello through cat\n" * 1000
    out, err = await _guarded(proc.communicate(data))
    assert out == data
    assert err is None
    assert proc.returncode == 0


async def test_communicate_large_input_and_output() -> None:
    proc = await asyncio.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE)
    data = bytes(range(256)) * 8192
    out, _ = await _guarded(proc.communicate(data))
    assert out == data
    assert proc.returncode == 0


async def test_interactive_line_ping_pong() -> None:
    proc = await asyncio.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        for i in range(50):
            line = b"line %d\n" % i
            proc.stdin.write(line)
            await proc.stdin.drain()
            assert await _guarded(proc.stdout.readline()) == line
        proc.stdin.close()
        assert await _guarded(proc.stdout.read()) == b""
    finally:
        if proc.returncode is None and proc.stdin is not None:
            proc.stdin.close()
        assert await _guarded(proc.wait()) == 0


@pytest.mark.parametrize("code", [0, 1, 3, 255])
async def test_exit_codes(code: int) -> None:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", f"import sys; sys.exit({code})")
    assert await _guarded(proc.wait()) == code
    assert proc.returncode == code
    assert await proc.wait() == code


async def test_stdout_and_stderr_separate_pipes() -> None:
    script = "import sys; sys.stdout.write('to out'); sys.stderr.write('to err'); sys.exit(4)"
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, stdout=PIPE, stderr=PIPE)
    out, err = await _guarded(proc.communicate())
    assert (out, err, proc.returncode) == (b"to out", b"to err", 4)


async def test_stderr_to_stdout() -> None:
    script = "import sys; sys.stdout.write('a'); sys.stdout.flush(); sys.stderr.write('b')"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, err = await _guarded(proc.communicate())
    assert err is None
    assert out == b"ab"
    assert proc.returncode == 0


async def _start_sleeper() -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", SLEEPER, stdout=PIPE)
    assert proc.stdout is not None
    assert await _guarded(proc.stdout.readline()) == b"ready\n"
    return proc


@pytest.mark.parametrize(
    "action, expected",
    [("kill", -signal.SIGKILL), ("terminate", -signal.SIGTERM), ("send_signal", -signal.SIGUSR1)],
)
async def test_kill_terminate_send_signal(action: str, expected: int) -> None:
    proc = await _start_sleeper()
    try:
        if action == "send_signal":
            proc.send_signal(signal.SIGUSR1)
        else:
            getattr(proc, action)()
        assert await _guarded(proc.wait()) == expected
        assert proc.stdout is not None
        assert await _guarded(proc.stdout.read()) == b""
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_wait_cancelled_then_process_still_reaped() -> None:
    proc = await _start_sleeper()
    try:
        waiter = asyncio.ensure_future(proc.wait())
        await asyncio.sleep(0.01)
        assert not waiter.done()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert proc.returncode is None
        proc.kill()
        assert await _guarded(proc.wait()) == -signal.SIGKILL
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.stdout is not None
    await proc.stdout.read()


async def test_many_concurrent_subprocesses() -> None:
    async def one(i: int) -> tuple[int, bytes]:
        proc = await asyncio.create_subprocess_exec("sh", "-c", f"echo {i}; exit {i % 5}", stdout=PIPE)
        out, _ = await proc.communicate()
        return proc.returncode or 0, out

    results = await _guarded(asyncio.gather(*(one(i) for i in range(16))), HANG_GUARD * 2)
    assert results == [(i % 5, b"%d\n" % i) for i in range(16)]


async def test_create_subprocess_shell() -> None:
    proc = await asyncio.create_subprocess_shell(
        "read x; echo \"got $x\"; echo oops 1>&2; exit 7", stdin=PIPE, stdout=PIPE, stderr=PIPE
    )
    out, err = await _guarded(proc.communicate(b"value\n"))
    assert out == b"got value\n"
    assert err == b"oops\n"
    assert proc.returncode == 7


async def test_create_subprocess_shell_cwd_and_env(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_shell(
        "pwd; echo \"$UINTR_TEST_VAR\"", stdout=PIPE, cwd=tmp_path, env={"UINTR_TEST_VAR": "set", "PATH": "/usr/bin:/bin"}
    )
    out, _ = await _guarded(proc.communicate())
    assert out.decode().splitlines() == [str(tmp_path.resolve()), "set"]
    assert proc.returncode == 0


async def test_exec_missing_program_raises() -> None:
    with pytest.raises(FileNotFoundError):
        await asyncio.create_subprocess_exec("/nonexistent/definitely-not-a-program")


class _CatProtocol(asyncio.SubprocessProtocol):
    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.data: dict[int, list[bytes]] = {1: [], 2: []}
        self.pipes_lost: list[int] = []
        self.exited = loop.create_future()
        self.lost = loop.create_future()

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        assert isinstance(data, bytes)
        self.data[fd].append(data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self.pipes_lost.append(fd)

    def process_exited(self) -> None:
        self.exited.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(exc)


async def test_low_level_subprocess_exec_protocol() -> None:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.subprocess_exec(_CatProtocol, "cat", stdin=PIPE, stdout=PIPE, stderr=PIPE)
    try:
        assert transport.get_pid() > 0
        stdin: Any = transport.get_pipe_transport(0)
        stdin.write(b"via protocol")
        stdin.close()
        await _guarded(proto.exited)
        assert await _guarded(proto.lost) is None
        assert transport.get_returncode() == 0
        assert b"".join(proto.data[1]) == b"via protocol"
        assert proto.data[2] == []
        assert sorted(proto.pipes_lost) == [0, 1, 2]
    finally:
        transport.close()
