"""Echo server under a bounded loopback load.

The server runs in a child process on the loop under test, as an asyncio
Protocol or with streams; the client, another process on plain uvloop for
every server, pinned to the other CPU, opens CONNS connections that each send REQUESTS 64-byte
requests one after another (closed loop: the next goes when the echo is
back). Figures: requests per second over the whole run and the p99 of the
per-request round trip.

    python benchmarks/echo.py server LOOP KIND PORTFILE   (internal)
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAYLOAD = b"x" * 64


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]


async def handle_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def serve(kind: str, portfile: str) -> None:
    loop = asyncio.get_running_loop()
    if kind == "protocol":
        server = await loop.create_server(EchoProtocol, "127.0.0.1", 0)
    else:
        server = await asyncio.start_server(handle_stream, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    Path(portfile).write_text(str(port))
    await asyncio.Event().wait()


async def client(port: int, conns: int, requests: int) -> tuple[float, list[int]]:
    lat: list[int] = []

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(requests):
            t0 = time.perf_counter_ns()
            writer.write(PAYLOAD)
            got = 0
            while got < len(PAYLOAD):
                got += len(await reader.read(65536))
            lat.append(time.perf_counter_ns() - t0)
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(conns)))
    return conns * requests / (time.perf_counter() - t0), lat


def run(loop_name: str, kind: str, conns: int, requests: int) -> tuple[float, list[int]]:
    """One server process on ``loop_name``, one client run against it."""
    import uvloop

    with tempfile.TemporaryDirectory() as tmp:
        portfile = os.path.join(tmp, "port")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent), str(HERE)]))
        # Server on one CPU, client on the other: left to the scheduler, the
        # two processes sometimes share a CPU and sometimes not, and req/s
        # jumps threefold between runs of the same loop.
        cpus = sorted(os.sched_getaffinity(0))
        pin = len(cpus) >= 2
        server = subprocess.Popen([sys.executable, str(Path(__file__)), "server", loop_name, kind, portfile],
                                  env=env, preexec_fn=(lambda: os.sched_setaffinity(0, {cpus[0]})) if pin else None)
        try:
            deadline = time.monotonic() + 20
            while not (os.path.exists(portfile) and Path(portfile).read_text()):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"echo server on {loop_name} did not start")
                time.sleep(0.01)
            port = int(Path(portfile).read_text())
            if pin:
                os.sched_setaffinity(0, {cpus[1]})
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(client(port, conns, requests))
        finally:
            if pin:
                os.sched_setaffinity(0, cpus)
            server.kill()
            server.wait()


if __name__ == "__main__" and sys.argv[1:2] == ["server"]:
    from _common import LOOPS

    _, loop_name, kind, portfile = sys.argv[1:]
    with asyncio.Runner(loop_factory=LOOPS[loop_name]) as runner:
        runner.run(serve(kind, portfile))
