"""I/O conformance: readers/writers, sock_* methods, transports and protocols,
streams (TCP and Unix), UDP and name resolution. Loopback only.

Every test runs on stock asyncio and on uintr_loop (see conftest.py).
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import tempfile
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from _support import HANG_GUARD, guarded, uvloop_deviation

pytestmark = pytest.mark.asyncio


def _payload(n: int, seed: int = 0) -> bytes:
    return bytes((i * 31 + seed) % 251 for i in range(n))


def _ipv6_loopback_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


async def _spin(n: int = 10) -> None:
    """Let the loop run ``n`` iterations."""
    for _ in range(n):
        await asyncio.sleep(0)


@contextlib.contextmanager
def _socketpair(*, nonblocking_b: bool = False) -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected pair, ``a`` non-blocking (``b`` too if asked); on exit unregister ``a`` from the loop, close both."""
    a, b = socket.socketpair()
    try:
        a.setblocking(False)
        if nonblocking_b:
            b.setblocking(False)
        yield a, b
    finally:
        loop = asyncio.get_running_loop()
        loop.remove_reader(a)
        loop.remove_writer(a)
        a.close()
        b.close()


async def _sock_read_all(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> bytes:
    """Read ``sock`` with loop.sock_recv until EOF."""
    parts: list[bytes] = []
    while True:
        chunk = await loop.sock_recv(sock, 65536)
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)


@contextlib.asynccontextmanager
async def _serving(start: Awaitable[asyncio.Server]) -> AsyncIterator[asyncio.Server]:
    """Await ``start`` (create_server, start_server, ...); close the server and wait for it on exit."""
    server = await start
    try:
        yield server
    finally:
        server.close()
        await server.wait_closed()


def _port(server: asyncio.Server) -> int:
    """The port of the server's first listening socket."""
    return server.sockets[0].getsockname()[1]


# --- add_reader / add_writer -------------------------------------------------------


async def test_add_reader_fires_and_remove_reader() -> None:
    loop = asyncio.get_running_loop()
    with _socketpair() as (a, b):
        received: list[bytes] = []
        got = asyncio.Event()

        def on_readable(tag: str) -> None:
            received.append(tag.encode() + a.recv(1024))
            got.set()

        loop.add_reader(a, on_readable, "r:")
        b.send(b"ping")
        await guarded(got.wait())
        assert received == [b"r:ping"]

        loop.remove_reader(a)   # return values: test_remove_reader_writer_return_values
        loop.remove_reader(a)
        b.send(b"ignored")
        await _spin()
        assert received == [b"r:ping"]
        assert a.recv(1024) == b"ignored"


async def test_add_reader_accepts_raw_fd_and_replaces_callback() -> None:
    loop = asyncio.get_running_loop()
    with _socketpair() as (a, b):
        calls: list[str] = []
        got = asyncio.Event()

        def old() -> None:
            calls.append("old")

        def new() -> None:
            calls.append("new:" + a.recv(100).decode())
            got.set()

        loop.add_reader(a.fileno(), old)
        loop.add_reader(a.fileno(), new)
        b.send(b"x")
        await guarded(got.wait())
        assert calls == ["new:x"]
        loop.remove_reader(a.fileno())


async def test_add_reader_repeated_readiness() -> None:
    loop = asyncio.get_running_loop()
    with _socketpair() as (a, b):
        chunks: list[bytes] = []
        q: asyncio.Queue[None] = asyncio.Queue()

        def on_readable() -> None:
            chunks.append(a.recv(1024))
            q.put_nowait(None)

        loop.add_reader(a, on_readable)
        for i in range(100):
            b.send(b"%d;" % i)
            await guarded(q.get())
        assert b"".join(chunks) == b"".join(b"%d;" % i for i in range(100))


async def test_add_writer_fires_and_remove_writer() -> None:
    loop = asyncio.get_running_loop()
    with _socketpair(nonblocking_b=True) as (a, b):
        writable = asyncio.Event()
        calls: list[Any] = []

        def on_writable(arg: Any) -> None:
            calls.append(arg)
            loop.remove_writer(a)
            writable.set()

        loop.add_writer(a, on_writable, 123)
        await guarded(writable.wait())
        assert calls == [123]
        loop.add_writer(a, on_writable, 456)
        loop.remove_writer(a)
        await _spin()
        assert calls == [123]


async def test_add_writer_after_buffer_full_fires_when_peer_drains() -> None:
    loop = asyncio.get_running_loop()
    with _socketpair(nonblocking_b=True) as (a, b):
        sent = 0
        chunk = b"z" * 65536
        while True:
            try:
                sent += a.send(chunk)
            except BlockingIOError:
                break
        writable = asyncio.Event()
        loop.add_writer(a, writable.set)
        await _spin()
        assert not writable.is_set()
        drained = 0
        while drained < sent:
            try:
                drained += len(b.recv(1 << 20))
            except BlockingIOError:
                break
        await guarded(writable.wait())
        assert drained == sent


async def test_reader_and_writer_on_same_fd() -> None:
    loop = asyncio.get_running_loop()
    with _socketpair() as (a, b):
        readable, writable = asyncio.Event(), asyncio.Event()
        loop.add_writer(a, writable.set)
        loop.add_reader(a, readable.set)
        await guarded(writable.wait())
        loop.remove_writer(a)
        assert not readable.is_set()
        b.send(b"r")
        await guarded(readable.wait())
        loop.remove_reader(a)


@uvloop_deviation("uvloop's remove_reader()/remove_writer() return None, not whether a callback was removed")
async def test_remove_reader_writer_return_values() -> None:
    loop = asyncio.get_running_loop()
    with _socketpair() as (a, b):
        results = [loop.remove_reader(a), loop.remove_writer(a)]
        loop.add_reader(a, lambda: None)
        loop.add_writer(a, lambda: None)
        results += [loop.remove_writer(a), loop.remove_reader(a), loop.remove_reader(a), loop.remove_writer(a)]
        loop.add_reader(a.fileno(), lambda: None)   # a raw fd and the socket name the same fd
        results += [loop.remove_reader(a), loop.remove_reader(a.fileno())]
    assert results == [False, False, True, True, False, False, True, False]


async def test_add_reader_invalid_fd() -> None:
    loop = asyncio.get_running_loop()
    with pytest.raises(ValueError):
        loop.add_reader(-1, lambda: None)
    with pytest.raises(ValueError):
        loop.add_writer(-1, lambda: None)
    with pytest.raises(ValueError):
        loop.remove_reader(-1)


# --- sock_* methods ----------------------------------------------------------------


async def test_sock_connect_accept_sendall_recv() -> None:
    loop = asyncio.get_running_loop()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    conn: socket.socket | None = None
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        client.setblocking(False)
        accept_task = asyncio.ensure_future(loop.sock_accept(listener))
        await guarded(loop.sock_connect(client, listener.getsockname()))
        conn, peer = await guarded(accept_task)
        assert peer == client.getsockname()
        assert conn.gettimeout() == 0

        data = _payload(1 << 20)
        read_task = asyncio.ensure_future(_sock_read_all(loop, conn))
        await guarded(loop.sock_sendall(client, data))
        client.shutdown(socket.SHUT_WR)
        assert await guarded(read_task) == data
    finally:
        listener.close()
        client.close()
        if conn is not None:
            conn.close()


async def test_sock_recv_into() -> None:
    loop = asyncio.get_running_loop()
    with _socketpair(nonblocking_b=True) as (a, b):
        buf = bytearray(16)
        recv_task = asyncio.ensure_future(loop.sock_recv_into(a, buf))
        await _spin()
        assert not recv_task.done()
        await loop.sock_sendall(b, b"hello")
        n = await guarded(recv_task)
        assert n == 5
        assert bytes(buf[:n]) == b"hello"
        mv = memoryview(buf)[8:]
        await loop.sock_sendall(b, b"12345678")
        assert await guarded(loop.sock_recv_into(a, mv)) == 8
        assert bytes(buf) == b"hello\x00\x00\x0012345678"
        b.close()
        assert await guarded(loop.sock_recv_into(a, buf)) == 0


async def test_sock_recv_cancel_then_reuse() -> None:
    loop = asyncio.get_running_loop()
    with _socketpair(nonblocking_b=True) as (a, b):
        task = asyncio.ensure_future(loop.sock_recv(a, 10))
        await _spin()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await loop.sock_sendall(b, b"after")
        assert await guarded(loop.sock_recv(a, 10)) == b"after"


async def test_sock_connect_refused() -> None:
    loop = asyncio.get_running_loop()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        addr = probe.getsockname()
    client = socket.socket()
    try:
        client.setblocking(False)
        with pytest.raises(ConnectionRefusedError):
            await guarded(loop.sock_connect(client, addr))
    finally:
        client.close()


@uvloop_deviation("uvloop does not implement sock_sendfile (asyncio's AbstractEventLoop raises NotImplementedError)")
async def test_sock_sendfile(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    data = _payload(300_000, seed=3)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    with _socketpair(nonblocking_b=True) as (a, b):
        read_task = asyncio.ensure_future(_sock_read_all(loop, b))
        with open(path, "rb") as f:
            sent = await guarded(loop.sock_sendfile(a, f))
        a.shutdown(socket.SHUT_WR)
        assert sent == len(data)
        assert await guarded(read_task) == data


# --- transports and protocols ----------------------------------------------------


class EchoServerProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def eof_received(self) -> bool | None:
        self.transport.close()
        return None


class CollectingClientProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.chunks: list[bytes] = []
        self.made = loop.create_future()
        self.eof = loop.create_future()
        self.lost: asyncio.Future[BaseException | None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made.set_result(transport)

    def data_received(self, data: bytes) -> None:
        assert not self.eof.done()
        self.chunks.append(data)

    def eof_received(self) -> bool | None:
        self.eof.set_result(None)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(exc)


@contextlib.asynccontextmanager
async def _echo_connection() -> AsyncIterator[tuple[asyncio.Transport, CollectingClientProtocol]]:
    """A TCP connection to an echo server; on exit close it, await connection_lost, stop the server."""
    loop = asyncio.get_running_loop()
    async with _serving(loop.create_server(EchoServerProtocol, "127.0.0.1", 0)) as server:
        transport, proto = await loop.create_connection(CollectingClientProtocol, "127.0.0.1", _port(server))
        try:
            yield transport, proto
        finally:
            transport.close()
        await guarded(proto.lost)


@uvloop_deviation("uvloop's TCPTransport is not an asyncio.Transport subclass")
async def test_transports_are_asyncio_transports() -> None:
    loop = asyncio.get_running_loop()
    server_side: list[asyncio.BaseTransport] = []

    class Recorder(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            server_side.append(transport)

    async with _serving(loop.create_server(Recorder, "127.0.0.1", 0)) as server:
        transport, proto = await guarded(loop.create_connection(CollectingClientProtocol, "127.0.0.1", _port(server)))
        transport.close()
        await guarded(proto.lost)
    # asserted only after everything is closed, so a failure leaks nothing
    assert len(server_side) == 1
    assert isinstance(server_side[0], asyncio.Transport)
    assert isinstance(transport, asyncio.Transport)


async def test_create_server_create_connection_echo() -> None:
    loop = asyncio.get_running_loop()
    async with _serving(loop.create_server(EchoServerProtocol, "127.0.0.1", 0)) as server:
        assert server.is_serving()
        host, port = server.sockets[0].getsockname()[:2]
        transport, proto = await guarded(loop.create_connection(CollectingClientProtocol, host, port))
        try:
            assert await proto.made is transport
            assert transport.get_extra_info("peername")[:2] == (host, port)
            assert transport.get_extra_info("sockname") is not None
            sock = transport.get_extra_info("socket")
            assert sock.family == socket.AF_INET and sock.fileno() >= 0
            data = _payload(2 << 20, seed=1)
            for off in range(0, len(data), 100_000):
                transport.write(data[off : off + 100_000])
            assert transport.can_write_eof()
            transport.write_eof()
            await guarded(proto.eof)
            assert await guarded(proto.lost) is None
            assert b"".join(proto.chunks) == data
        finally:
            transport.close()
    assert not server.is_serving()


async def test_transport_pause_and_resume_reading() -> None:
    async with _echo_connection() as (transport, proto):
        transport.pause_reading()
        assert not transport.is_reading()
        transport.write(b"while paused")
        await asyncio.sleep(0.05)
        await _spin()
        assert proto.chunks == []
        transport.resume_reading()
        assert transport.is_reading()
        for _ in range(1000):
            if b"".join(proto.chunks) == b"while paused":
                break
            await asyncio.sleep(0.005)
        assert b"".join(proto.chunks) == b"while paused"
    assert proto.lost.result() is None


async def test_write_flow_control_pause_resume_writing() -> None:
    loop = asyncio.get_running_loop()
    server_transports: list[asyncio.Transport] = []
    server_got: list[int] = [0]
    total = 0
    server_done = loop.create_future()

    class SlowSink(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            transport = cast(asyncio.Transport, transport)
            server_transports.append(transport)
            transport.pause_reading()

        def data_received(self, data: bytes) -> None:
            server_got[0] += len(data)
            if server_got[0] == total:
                server_done.set_result(None)

    class Writer(asyncio.Protocol):
        def __init__(self) -> None:
            self.paused = asyncio.Event()
            self.resumed = asyncio.Event()
            self.lost = loop.create_future()

        def pause_writing(self) -> None:
            self.paused.set()

        def resume_writing(self) -> None:
            self.resumed.set()

        def connection_lost(self, exc: Exception | None) -> None:
            self.lost.set_result(exc)

    async with _serving(loop.create_server(SlowSink, "127.0.0.1", 0)) as server:
        port = _port(server)
        transport, proto = await loop.create_connection(Writer, "127.0.0.1", port)
        try:
            transport.set_write_buffer_limits(high=64 * 1024)
            chunk = b"\0" * (256 * 1024)
            while not proto.paused.is_set() and total < 64 << 20:
                transport.write(chunk)
                total += len(chunk)
            assert proto.paused.is_set()
            assert transport.get_write_buffer_size() > 0
            while not server_transports:
                await asyncio.sleep(0.001)
            server_transports[0].resume_reading()
            await guarded(proto.resumed.wait())
            await guarded(server_done)
            assert server_got[0] == total
        finally:
            transport.close()
            for t in server_transports:
                t.close()
        await guarded(proto.lost)


async def test_add_reader_on_transport_fd_is_refused() -> None:
    loop = asyncio.get_running_loop()
    async with _echo_connection() as (transport, _):
        fd = transport.get_extra_info("socket").fileno()
        with pytest.raises(RuntimeError):
            loop.add_reader(fd, lambda: None)
        with pytest.raises(RuntimeError):
            loop.add_writer(fd, lambda: None)


async def test_connection_lost_when_peer_closes() -> None:
    loop = asyncio.get_running_loop()
    server_side: list[asyncio.Transport] = []

    class Closer(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            transport = cast(asyncio.Transport, transport)
            server_side.append(transport)
            transport.write(b"bye")
            transport.close()

    async with _serving(loop.create_server(Closer, "127.0.0.1", 0)) as server:
        port = _port(server)
        transport, proto = await loop.create_connection(CollectingClientProtocol, "127.0.0.1", port)
        try:
            await guarded(proto.eof)
            assert await guarded(proto.lost) is None
            assert b"".join(proto.chunks) == b"bye"
            assert transport.is_closing()
        finally:
            transport.close()


# --- streams -----------------------------------------------------------------------


async def _echo_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()
        await writer.wait_closed()


async def _stream_echo_roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> bytes:
    async def send() -> None:
        for off in range(0, len(data), 32768):
            writer.write(data[off : off + 32768])
            await writer.drain()
        writer.write_eof()

    send_task = asyncio.ensure_future(send())
    received = await reader.read()
    await send_task
    writer.close()
    await writer.wait_closed()
    return received


async def test_streams_echo_many_clients() -> None:
    async with _serving(asyncio.start_server(_echo_handler, "127.0.0.1", 0)) as server:
        port = _port(server)

        async def client(i: int) -> bool:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            data = _payload(100_000 + i * 1000, seed=i)
            return await _stream_echo_roundtrip(reader, writer, data) == data

        results = await guarded(asyncio.gather(*(client(i) for i in range(12))), HANG_GUARD * 3)
        assert results == [True] * 12


async def test_streams_readline_readexactly_readuntil() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"line one\nline two\nEXACT12345|rest:END")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async with _serving(asyncio.start_server(handler, "127.0.0.1", 0)) as server:
        port = _port(server)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            assert await guarded(reader.readline()) == b"line one\n"
            assert await guarded(reader.readline()) == b"line two\n"
            assert await guarded(reader.readexactly(10)) == b"EXACT12345"
            assert await guarded(reader.readuntil(b"|")) == b"|"
            with pytest.raises(asyncio.IncompleteReadError) as info:
                await guarded(reader.readexactly(100))
            assert info.value.partial == b"rest:END"
            assert reader.at_eof()
        finally:
            writer.close()
            await writer.wait_closed()


@pytest.mark.skipif(not _ipv6_loopback_available(), reason="binding to ::1 failed (no IPv6 loopback)")
async def test_streams_echo_ipv6_loopback() -> None:
    async with _serving(asyncio.start_server(_echo_handler, "::1", 0, family=socket.AF_INET6)) as server:
        port = _port(server)
        reader, writer = await asyncio.open_connection("::1", port)
        assert writer.get_extra_info("peername")[0] == "::1"
        data = _payload(50_000, seed=9)
        assert await guarded(_stream_echo_roundtrip(reader, writer, data)) == data


@contextlib.contextmanager
def _unix_socket_path(tmp_path: Path) -> Iterator[str]:
    """tmp_path, unless it is too long for sun_path (108 bytes); then a short temp dir."""
    candidate = tmp_path / "echo.sock"
    if len(os.fsencode(candidate)) < 100:
        yield str(candidate)
        return
    with tempfile.TemporaryDirectory(prefix="ul-", dir="/tmp") as short:
        yield os.path.join(short, "echo.sock")


async def test_unix_stream_echo(tmp_path: Path) -> None:
    with _unix_socket_path(tmp_path) as path:
        await _unix_stream_echo(path)


async def _unix_stream_echo(path: str) -> None:
    async with _serving(asyncio.start_unix_server(_echo_handler, path=path)):
        assert os.path.exists(path)
        results = []
        for i in range(3):
            reader, writer = await asyncio.open_unix_connection(path)
            data = _payload(200_000, seed=20 + i)
            results.append(await guarded(_stream_echo_roundtrip(reader, writer, data)) == data)
        assert results == [True, True, True]


async def test_start_server_serve_forever_cancel() -> None:
    async with _serving(asyncio.start_server(_echo_handler, "127.0.0.1", 0, start_serving=False)) as server:
        assert not server.is_serving()
        task = asyncio.ensure_future(server.serve_forever())
        await _spin()
        assert server.is_serving()
        port = _port(server)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await guarded(_stream_echo_roundtrip(reader, writer, b"abc")) == b"abc"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not server.is_serving()


# --- UDP -----------------------------------------------------------------------------


class UdpEchoServer(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(data.upper(), addr)


class UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()
        self.closed = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.queue.put_nowait((b"", exc))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set_result(exc)


async def test_datagram_endpoint_udp_echo() -> None:
    loop = asyncio.get_running_loop()
    server_transport, _ = await loop.create_datagram_endpoint(UdpEchoServer, local_addr=("127.0.0.1", 0))
    try:
        server_addr = server_transport.get_extra_info("sockname")
        client_transport, client = await loop.create_datagram_endpoint(UdpClient, remote_addr=server_addr)
        try:
            assert client_transport.get_extra_info("peername") == server_addr
            for i in range(50):
                msg = b"datagram-%d" % i
                client_transport.sendto(msg)
                data, addr = await guarded(client.queue.get())
                assert (data, addr) == (msg.upper(), server_addr)
        finally:
            client_transport.close()
        assert await guarded(client.closed) is None
    finally:
        server_transport.close()


async def test_datagram_unconnected_sendto_addr() -> None:
    loop = asyncio.get_running_loop()
    server_transport, _ = await loop.create_datagram_endpoint(UdpEchoServer, local_addr=("127.0.0.1", 0))
    try:
        server_addr = server_transport.get_extra_info("sockname")
        client_transport, client = await loop.create_datagram_endpoint(
            UdpClient, local_addr=("127.0.0.1", 0)
        )
        try:
            client_transport.sendto(b"hi", server_addr)
            assert await guarded(client.queue.get()) == (b"HI", server_addr)
        finally:
            client_transport.close()
        await guarded(client.closed)
    finally:
        server_transport.close()


# --- name resolution ----------------------------------------------------------------


async def test_getaddrinfo_localhost() -> None:
    loop = asyncio.get_running_loop()
    infos = await guarded(loop.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM))
    assert infos
    for family, type_, proto, canonname, sockaddr in infos:
        assert family in (socket.AF_INET, socket.AF_INET6)
        assert type_ == socket.SOCK_STREAM
        assert sockaddr[1] == 80
    assert {sa[0] for *_, sa in infos} & {"127.0.0.1", "::1"}
    assert infos == socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)


async def test_getaddrinfo_numeric_and_getnameinfo() -> None:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo("127.0.0.1", 8080, family=socket.AF_INET, proto=socket.IPPROTO_TCP)
    assert infos[0][4] == ("127.0.0.1", 8080)
    flags = socket.NI_NUMERICHOST | socket.NI_NUMERICSERV
    assert await loop.getnameinfo(("127.0.0.1", 8080), flags) == ("127.0.0.1", "8080")
    with pytest.raises(socket.gaierror):
        await guarded(loop.getaddrinfo("256.256.256.256", 0, flags=socket.AI_NUMERICHOST))


async def test_many_concurrent_getaddrinfo() -> None:
    loop = asyncio.get_running_loop()
    results = await guarded(
        asyncio.gather(
            *(loop.getaddrinfo("127.0.0.1", port, type=socket.SOCK_STREAM) for port in range(1000, 1100))
        )
    )
    assert [r[0][4][1] for r in results] == list(range(1000, 1100))
