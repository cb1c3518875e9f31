"""The servers people run asyncio apps with, for real on uintr_loop.

Each test starts the real server on 127.0.0.1 with the loop, makes a few
bounded requests (one of them from a worker thread through
``asyncio.to_thread``, and one to a route that itself goes through
``asyncio.to_thread`` on the server's loop), checks from the answers which
loop class served them, and stops the server. The recipes these tests back
are in docs/recipes/servers.md.

The servers come from the ``test-servers`` extra, installed by ``make test``
from wheels only (tests/_servers_install.py). A server with no wheel for
this Python is skipped, naming that probe; one missing for another reason
fails.
"""
from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import uintr_loop
from _support import HANG_GUARD, REPO_ROOT, child_env

EXAMPLE = REPO_ROOT / "examples" / "uvicorn_app.py"
MISSING_RECORD = Path(sys.prefix) / "servers-missing.json"
LOOP_LINE = re.compile(r"^[\w.]+\.\w+$")


def server(module: str, requirement: str) -> ModuleType:
    """Import a server, or skip naming the wheel probe that left it out."""
    try:
        return importlib.import_module(module)
    except ImportError:
        record = json.loads(MISSING_RECORD.read_text()) if MISSING_RECORD.exists() else {}
        if requirement in record:
            pytest.skip(f"{requirement}: no wheel for Python {sys.version.split()[0]} "
                        f"(probed by tests/_servers_install.py: {record[requirement]})")
        raise


def expected_loop() -> str:
    cls = uintr_loop.EventLoop
    return f"{cls.__module__}.{cls.__qualname__}"


def get(url: str) -> str:
    """One bounded request (blocking: call it from a thread)."""
    with urllib.request.urlopen(url, timeout=HANG_GUARD) as response:
        assert response.status == 200
        return response.read().decode().strip()


async def requests(base_url: str) -> list[str]:
    """The bounded requests of every test, from a uintr_loop client: one
    straight from the loop (a raw HTTP/1.1 GET), two through to_thread."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), HANG_GUARD)
    try:
        writer.write(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        raw = await asyncio.wait_for(reader.read(), HANG_GUARD)
    finally:
        writer.close()
    head, _, body = raw.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200"), head
    answers = [body.strip().splitlines()[-1]]
    answers.append(await asyncio.to_thread(get, base_url + "/"))
    answers.append(await asyncio.to_thread(get, base_url + "/thread"))
    return answers


def client(base_url: str) -> list[str]:
    return uintr_loop.run(requests(base_url))


@contextlib.contextmanager
def serving(cmd: list[str], stopped: str = "Finished server process"
            ) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A server in a child process; yields its URL once it says where it
    listens (a "running on" line); stops it with SIGINT, after which it must
    print ``stopped`` and exit 0."""
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    found: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            m = re.search(r"running on (http://127\.0\.0\.1:\d+)", line)
            if m and not found:
                found.append(m.group(1))
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(60) and found, "server did not start:\n" + "".join(lines)
        yield found[0], proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(HANG_GUARD)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("server did not stop on SIGINT:\n" + "".join(lines))
        finally:
            reader.join(HANG_GUARD)
            if proc.stdout is not None:
                proc.stdout.close()
    assert proc.returncode == 0, "".join(lines)
    assert stopped in "".join(lines), "".join(lines)


# -- uvicorn ---------------------------------------------------------------------------


def test_uvicorn_command_line_loop_factory() -> None:
    uvicorn = server("uvicorn", "uvicorn>=0.36")
    assert tuple(map(int, uvicorn.__version__.split(".")[:2])) >= (0, 36)
    cmd = [sys.executable, "-m", "uvicorn", "examples.uvicorn_app:app", "--host", "127.0.0.1",
           "--port", "0", "--loop", "uintr_loop:new_event_loop"]
    with serving(cmd) as (url, _):
        answers = client(url)
    assert answers == [expected_loop()] * 3


def test_uvicorn_run_with_loop_in_the_example() -> None:
    server("uvicorn", "uvicorn>=0.36")
    with serving([sys.executable, str(EXAMPLE), "--port", "0"]) as (url, _):
        answers = client(url)
        with pytest.raises(urllib.error.HTTPError) as info:   # the example's 404
            get(url + "/nothing")
        assert info.value.code == 404
        info.value.close()
    assert answers == [expected_loop()] * 3


# -- aiohttp -----------------------------------------------------------------------------


def aiohttp_app(web: ModuleType) -> object:
    async def loop_name(request: object) -> object:
        return web.Response(text=type(asyncio.get_running_loop()).__module__ + "."
                            + type(asyncio.get_running_loop()).__qualname__ + "\n")

    async def via_thread(request: object) -> object:
        worker = await asyncio.to_thread(threading.get_ident)
        assert worker != threading.get_ident()
        return await loop_name(request)

    app = web.Application()
    app.router.add_get("/", loop_name)
    app.router.add_get("/thread", via_thread)
    return app


def test_aiohttp_app_runner_under_uintr_run() -> None:
    server("aiohttp", "aiohttp>=3.10")
    from aiohttp import web

    async def main() -> tuple[list[str], str]:
        runner = web.AppRunner(aiohttp_app(web))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            port = runner.addresses[0][1]
            answers = await requests(f"http://127.0.0.1:{port}")
        finally:
            await runner.cleanup()
        return answers, type(asyncio.get_running_loop()).__name__

    answers, served_by = uintr_loop.run(main())
    assert answers == [expected_loop()] * 3 and served_by == uintr_loop.EventLoop.__name__


def test_aiohttp_run_app_on_a_uintr_loop() -> None:
    # web.run_app(app, loop=...) in a child: it runs until SIGINT
    server("aiohttp", "aiohttp>=3.10")
    script = (
        "import sys, uintr_loop\n"
        "from aiohttp import web\n"
        "sys.path.insert(0, 'tests')\n"
        "from test_servers import aiohttp_app\n"
        "web.run_app(aiohttp_app(web), host='127.0.0.1', port=0, loop=uintr_loop.new_event_loop(),\n"
        "            print=lambda s: print(s.replace('Running on', 'running on'), flush=True))\n"
        "print('run_app returned', flush=True)\n"
    )
    with serving([sys.executable, "-c", script], stopped="run_app returned") as (url, proc):
        answers = client(url)
    assert answers == [expected_loop()] * 3


# -- hypercorn ---------------------------------------------------------------------------


def test_hypercorn_serve_under_uintr_run() -> None:
    server("hypercorn", "hypercorn>=0.17")
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    sys.path.insert(0, str(REPO_ROOT / "examples"))
    try:
        from uvicorn_app import app          # plain ASGI: no uvicorn needed to import it
    finally:
        sys.path.remove(str(REPO_ROOT / "examples"))

    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    fd = sock.detach()                   # hypercorn owns (and closes) a bound fd://

    async def main() -> list[str]:
        config = Config()
        config.bind = [f"fd://{fd}"]
        config.accesslog = None
        stop = asyncio.Event()
        serving = asyncio.ensure_future(serve(app, config, shutdown_trigger=stop.wait))
        try:
            return await requests(f"http://127.0.0.1:{port}")
        finally:
            stop.set()
            await asyncio.wait_for(serving, HANG_GUARD)

    answers = uintr_loop.run(main())
    assert answers == [expected_loop()] * 3


# -- granian -----------------------------------------------------------------------------


def test_granian_has_no_custom_loop_hook() -> None:
    """Granian runs its own event loop, chosen by name from a fixed list
    (``--loop auto|asyncio|uvloop|rloop|winloop``, the ``Loops`` enum); it
    has no documented way to name a loop factory. Probed both ways: the
    option refuses uintr_loop's factory, and the enum has no such member. If
    a future granian accepts it, this test fails and the recipe is due."""
    server("granian", "granian>=2.0")
    from granian.constants import Loops

    with pytest.raises(ValueError):
        Loops("uintr_loop:new_event_loop")
    done = subprocess.run(
        [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
         "--port", "0", "--loop", "uintr_loop:new_event_loop", "examples.uvicorn_app:app"],
        cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr          # click's usage error
    assert "--loop" in done.stderr and "uintr_loop:new_event_loop" in done.stderr
