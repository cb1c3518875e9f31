"""Echo server, and an HTTP endpoint with thread offload, under a bounded loopback load.

The server runs in a child process on the loop under test: an echo server as
an asyncio Protocol or with streams, or (``http``) a keep-alive HTTP/1.1
endpoint whose every request hands a small job to the default executor
(``run_in_executor``: SHA-256 of 4 KiB) and answers with its digest. The client, another process on plain uvloop for
every server, pinned to the other CPU, opens CONNS connections that each send REQUESTS 64-byte
requests one after another (closed loop: the next goes when the echo is
back). Figures: requests per second over the whole run and the p99 of the
per-request round trip, and the server process's CPU time per request
(user + system, from /proc, over the measured run).

    python benchmarks/echo.py server LOOP KIND PORTFILE   (internal)
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PAYLOAD = b"x" * 64
HTTP_REQUEST = b"GET /digest HTTP/1.1\r\nHost: bench\r\n\r\n"
HTTP_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 64\r\n\r\n"
BLOCK = bytes(4096)
KINDS = {"protocol": (PAYLOAD, len(PAYLOAD)), "streams": (PAYLOAD, len(PAYLOAD)),
         "http": (HTTP_REQUEST, len(HTTP_HEAD) + 64)}


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]


def digest() -> bytes:
    import hashlib

    return hashlib.sha256(BLOCK).hexdigest().encode()


class HttpOffloadProtocol(asyncio.Protocol):
    """Keep-alive HTTP/1.1, one request at a time per connection (the client
    waits for each answer), each answered from a thread of the executor."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""
        self.loop = asyncio.get_running_loop()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            self.buffer = self.buffer[end + 4:]
            self.loop.run_in_executor(None, digest).add_done_callback(self.respond)

    def respond(self, fut: asyncio.Future[bytes]) -> None:
        if not self.transport.is_closing():
            self.transport.write(HTTP_HEAD + fut.result())  # type: ignore[attr-defined]


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
    elif kind == "http":
        server = await loop.create_server(HttpOffloadProtocol, "127.0.0.1", 0)
    else:
        server = await asyncio.start_server(handle_stream, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    Path(portfile).write_text(str(port))
    await asyncio.Event().wait()


async def client(port: int, conns: int, requests: int, kind: str = "protocol",
                 on_start: Any = None) -> tuple[float, list[int]]:
    lat: list[int] = []
    request, answer = KINDS[kind]

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await ready.wait()
        for _ in range(requests):
            t0 = time.perf_counter_ns()
            writer.write(request)
            got = 0
            while got < answer:
                chunk = await reader.read(65536)
                if not chunk:
                    raise ConnectionError("the server closed the connection")
                got += len(chunk)
            lat.append(time.perf_counter_ns() - t0)
        writer.close()

    ready = asyncio.Event()
    tasks = [asyncio.ensure_future(one()) for _ in range(conns)]
    await asyncio.sleep(0.05)           # every connection open before the clock starts
    if on_start is not None:
        on_start()
    t0 = time.perf_counter()
    ready.set()
    await asyncio.gather(*tasks)
    return conns * requests / (time.perf_counter() - t0), lat


@contextlib.contextmanager
def server(loop_name: str, kind: str, **env: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A server process on ``loop_name`` pinned to one CPU, and this process on
    another, for the ``with`` block: yields the process and its port. The
    server answers a line on its stdin with its CPU time (every thread, ns)."""
    with tempfile.TemporaryDirectory() as tmp:
        portfile = os.path.join(tmp, "port")
        environ = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent), str(HERE)]), **env)
        # Server on one CPU, client on the other: left to the scheduler, the
        # two processes sometimes share a CPU and sometimes not, and req/s
        # jumps threefold between runs of the same loop.
        cpus = sorted(os.sched_getaffinity(0))
        pin = len(cpus) >= 2
        with subprocess.Popen([sys.executable, str(Path(__file__)), "server", loop_name, kind, portfile],
                              env=environ, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              preexec_fn=(lambda: os.sched_setaffinity(0, {cpus[0]})) if pin else None) as proc:
            try:
                deadline = time.monotonic() + 20
                while not (os.path.exists(portfile) and Path(portfile).read_text()):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"echo server on {loop_name} did not start")
                    time.sleep(0.01)
                if pin:
                    os.sched_setaffinity(0, {cpus[1]})
                yield proc, int(Path(portfile).read_text())
            finally:
                if pin:
                    os.sched_setaffinity(0, cpus)
                proc.kill()


def run(loop_name: str, kind: str, conns: int, requests: int) -> tuple[float, list[int]]:
    """One server process on ``loop_name``, one client run against it."""
    rate, lat, _ = run_with_cpu(loop_name, kind, conns, requests)
    return rate, lat


def run_with_cpu(loop_name: str, kind: str, conns: int, requests: int) -> tuple[float, list[int], float]:
    """Like run(), plus the server's CPU seconds over the measured run."""
    import uvloop

    with server(loop_name, kind) as (proc, port):

        def server_cpu_s() -> float:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(b"cpu\n")
            proc.stdin.flush()
            return int(proc.stdout.readline()) / 1e9

        cpu0: list[float] = []
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            rate, lat = runner.run(client(port, conns, requests, kind,
                                          on_start=lambda: cpu0.append(server_cpu_s())))
        return rate, lat, server_cpu_s() - cpu0[0]


if __name__ == "__main__" and sys.argv[1:2] == ["server"]:
    from _common import loop_factory

    import threading

    _, loop_name, kind, portfile = sys.argv[1:]

    def report_cpu() -> None:
        # The parent asks for the process's CPU time (every thread, ns) with a
        # line on stdin, before and after the measured run; this thread
        # sleeps in read() otherwise.
        for _line in sys.stdin:
            print(time.process_time_ns(), flush=True)

    threading.Thread(target=report_cpu, daemon=True).start()
    with asyncio.Runner(loop_factory=loop_factory(loop_name)) as runner:
        runner.run(serve(kind, portfile))
