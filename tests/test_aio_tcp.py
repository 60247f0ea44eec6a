"""asyncio over seqs TCP: genuine ``asyncio.StreamReader``/``StreamWriter`` from
``AsyncHost.open_connection``/``start_server``, and the transport/protocol form,
between two seqs hosts on a socket-pair link in one event loop (no root).

Every test body runs under ``asyncio.wait_for``, so a lost wakeup fails the
test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from seqs.phy import socketpair_devices
from seqs.runtime import AsyncHost, TCPServer, TCPTransport
from seqs.tcp.connection import TcpConfig, TcpConnection

A, B = "10.0.0.1", "10.0.0.2"
T = TypeVar("T")


def run(body: Callable[[AsyncHost, AsyncHost], Awaitable[T]], timeout: float = 20.0) -> T:
    """Run ``body(a, b)`` with two fresh hosts (a = 10.0.0.1, b = 10.0.0.2) in a new loop."""

    async def main() -> T:
        a_dev, b_dev = socketpair_devices()
        a = AsyncHost(a_dev, ip=f"{A}/24")
        b = AsyncHost(b_dev, ip=f"{B}/24")
        try:
            return await asyncio.wait_for(body(a, b), timeout)
        finally:
            a.close()
            b.close()

    return asyncio.run(main())


class Recorder(asyncio.Protocol):
    """A protocol that writes down every callback."""

    def __init__(self, pause_on_connect: bool = False, keep_open_on_eof: bool = True) -> None:
        self.transport: TCPTransport | None = None
        self.data = bytearray()
        self.events: list[str] = []
        self.pause_on_connect = pause_on_connect
        self.keep_open_on_eof = keep_open_on_eof
        loop = asyncio.get_running_loop()
        self.made: asyncio.Future[None] = loop.create_future()
        self.eof: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[Exception | None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, TCPTransport)
        self.transport = transport
        self.events.append("made")
        if self.pause_on_connect:
            transport.pause_reading()
        self.made.set_result(None)

    def data_received(self, data: bytes) -> None:
        assert self.made.done() and not self.eof.done()
        self.data += data

    def eof_received(self) -> bool:
        self.events.append("eof")
        self.eof.set_result(None)
        return self.keep_open_on_eof

    def pause_writing(self) -> None:
        self.events.append("pause_writing")

    def resume_writing(self) -> None:
        self.events.append("resume_writing")

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append("lost")
        self.lost.set_result(exc)


def connection_of(writer: asyncio.StreamWriter | asyncio.BaseTransport) -> TcpConnection:
    transport = writer.transport if isinstance(writer, asyncio.StreamWriter) else writer
    conn = transport.get_extra_info("connection")
    assert isinstance(conn, TcpConnection)
    return conn


# -- streams ---------------------------------------------------------------------------------


def test_streams_echo_with_readline_readexactly_and_write_eof() -> None:
    async def body(a: AsyncHost, b: AsyncHost) -> None:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while line := await reader.readline():
                writer.write(line)
                await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await a.start_server(echo, None, 7)
        reader, writer = await b.open_connection(A, 7)
        assert isinstance(reader, asyncio.StreamReader) and isinstance(writer, asyncio.StreamWriter)
        assert writer.get_extra_info("peername") == (A, 7)
        assert writer.get_extra_info("sockname")[0] == B
        assert writer.can_write_eof()
        writer.write(b"one\n")
        writer.writelines([b"two\n", b"three\n"])
        await writer.drain()
        assert await reader.readline() == b"one\n"
        assert await reader.readexactly(4) == b"two\n"
        assert await reader.readuntil(b"\n") == b"three\n"
        writer.write_eof()  # the server's readline() sees EOF, it closes, we see EOF
        assert await reader.read() == b""
        assert reader.at_eof()
        with pytest.raises(RuntimeError):
            writer.write(b"after eof")
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    run(body)


def test_ten_megabytes_through_streams_arrive_intact() -> None:
    data = hashlib.shake_256(b"aio").digest(10 * 1024 * 1024)

    async def body(a: AsyncHost, b: AsyncHost) -> None:
        async def digest(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            h = hashlib.sha256()
            n = 0
            while chunk := await reader.read(1 << 16):
                h.update(chunk)
                n += len(chunk)
            writer.write(b"%d %s\n" % (n, h.hexdigest().encode()))
            await writer.drain()
            writer.close()

        server = await a.start_server(digest, A, 80)
        reader, writer = await b.open_connection(A, 80)
        for i in range(0, len(data), 1 << 20):
            writer.write(data[i : i + (1 << 20)])
            await writer.drain()
        writer.write_eof()
        n, seen = (await reader.readline()).split()
        assert int(n) == len(data)
        assert seen.decode() == hashlib.sha256(data).hexdigest()
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    run(body, timeout=60.0)


def test_open_connection_to_a_port_without_listener_is_refused() -> None:
    async def body(a: AsyncHost, b: AsyncHost) -> None:
        with pytest.raises(ConnectionRefusedError):
            await b.open_connection(A, 81)
        assert len(b.stack.tcp) == 0

    run(body)


def test_cancelling_a_connect_forgets_the_connection() -> None:
    async def body(a: AsyncHost, b: AsyncHost) -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(b.open_connection("10.0.0.99", 80), 0.3)  # no ARP answer
        assert len(b.stack.tcp) == 0

    run(body)


def test_drain_waits_while_the_peer_does_not_read() -> None:
    small = TcpConfig(sndbuf=16384, rcvbuf=16384)
    data = hashlib.shake_256(b"drain").digest(1_000_000)

    async def body(a: AsyncHost, b: AsyncHost) -> None:
        go = asyncio.Event()
        received = bytearray()

        async def late_reader(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await go.wait()
            while chunk := await reader.read(65536):
                received.extend(chunk)
            writer.close()

        server = await a.start_server(late_reader, None, 80, config=small)
        reader, writer = await b.open_connection(A, 80, config=small)
        writer.write(data)
        drain = asyncio.ensure_future(writer.drain())
        await asyncio.sleep(0.3)
        # The server's StreamReader took its limit's worth and paused reading; the
        # windows and buffers filled up behind it; the rest waits in our transport.
        assert not drain.done()
        assert writer.transport.get_write_buffer_size() > 64 * 1024
        go.set()
        await drain
        writer.write_eof()
        assert await reader.read() == b""
        assert received == data
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    run(body)


def test_close_with_unread_data_resets_the_peer_reader() -> None:
    async def body(a: AsyncHost, b: AsyncHost) -> None:
        protocols: list[Recorder] = []

        def factory() -> Recorder:
            protocols.append(Recorder(pause_on_connect=True))  # the data stays unread in TCP
            return protocols[-1]

        server = await a.create_server(factory, None, 80)
        reader, writer = await b.open_connection(A, 80)
        writer.write(b"never read")
        await writer.drain()
        await asyncio.sleep(0.1)
        (p,) = protocols
        assert p.transport is not None
        assert connection_of(p.transport).unread == 10 and p.data == b""
        p.transport.close()  # like closing a kernel socket with data unread: RST (RFC 2525 §2.17)
        assert await p.lost is None
        with pytest.raises(ConnectionResetError):
            await reader.read(100)
        writer.close()
        with pytest.raises(ConnectionResetError):
            await writer.wait_closed()
        server.close()
        await server.wait_closed()

    run(body)


def test_start_server_serves_fifty_concurrent_clients() -> None:
    async def body(a: AsyncHost, b: AsyncHost) -> None:
        async def upper(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            data = await reader.read()
            writer.write(data.upper())
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await a.start_server(upper, None, 8080, backlog=64)
        port = server.sockets[0].getsockname()[1]
        assert port == 8080

        async def client(i: int) -> bytes:
            reader, writer = await b.open_connection(A, port)
            msg = (b"client %d " % i) * (100 + i * 20)
            writer.write(msg)
            await writer.drain()
            writer.write_eof()
            got = await reader.read()
            writer.close()
            await writer.wait_closed()
            return got if got == msg.upper() else b"wrong"

        results = await asyncio.gather(*(client(i) for i in range(50)))
        assert all(r != b"wrong" for r in results) and len(results) == 50
        server.close()
        await server.wait_closed()
        assert len(server._transports) == 0

    run(body, timeout=60.0)


def test_writer_close_flushes_what_the_transport_holds() -> None:
    small = TcpConfig(sndbuf=8192, rcvbuf=8192)
    data = hashlib.shake_256(b"close").digest(300_000)

    async def body(a: AsyncHost, b: AsyncHost) -> None:
        got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            got.set_result(await reader.read())
            writer.close()

        server = await a.start_server(sink, None, 80, config=small)
        _, writer = await b.open_connection(A, 80, config=small)
        writer.write(data)
        assert writer.transport.get_write_buffer_size() > 0
        writer.close()
        await writer.wait_closed()  # connection_lost once the connection took the rest
        assert await got == data
        server.close()
        await server.wait_closed()

    run(body)


# -- transports and protocols -------------------------------------------------------------------


def test_pause_reading_closes_the_window_and_resume_delivers_everything() -> None:
    small = TcpConfig(sndbuf=16384, rcvbuf=16384)
    data = hashlib.shake_256(b"pause").digest(200_000)

    async def body(a: AsyncHost, b: AsyncHost) -> None:
        servers: list[Recorder] = []

        def factory() -> Recorder:
            servers.append(Recorder(pause_on_connect=True))
            return servers[-1]

        server = await a.create_server(factory, None, 9, config=small)
        transport, client = await b.create_connection(Recorder, A, 9, config=small)
        assert isinstance(transport, TCPTransport) and isinstance(client, Recorder)
        assert client.events == ["made"]
        transport.write(data)
        # More than the high-water mark waits in the transport: the protocol is paused.
        assert client.events == ["made", "pause_writing"]
        await asyncio.sleep(0.3)
        (srv,) = servers
        assert srv.transport is not None and not srv.transport.is_reading()
        sconn = connection_of(srv.transport)
        assert srv.data == b""
        # The receive buffer is full to within a segment (the sender's SWS avoidance,
        # RFC 9293 §3.8.6.2.1, keeps the last sliver): the window has closed.
        assert 16384 - 1460 <= sconn.unread <= 16384
        assert transport.get_write_buffer_size() >= len(data) - 2 * 16384
        srv.transport.resume_reading()
        assert srv.transport.is_reading()
        transport.write_eof()
        await srv.eof
        assert srv.data == data
        assert client.events[-1] == "resume_writing"
        srv.transport.write(b"thanks")
        srv.transport.close()
        await client.eof
        assert client.data == b"thanks"
        transport.close()
        assert await client.lost is None and await srv.lost is None
        server.close()
        await server.wait_closed()

    run(body)


def test_buffered_protocol_reads_into_its_own_buffer() -> None:
    data = hashlib.shake_256(b"buffered").digest(300_000)

    async def body(a: AsyncHost, b: AsyncHost) -> None:
        done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        class Into(asyncio.BufferedProtocol):
            def __init__(self) -> None:
                self.buf = bytearray(1000)  # small: many get_buffer() calls
                self.got = bytearray()

            def get_buffer(self, sizehint: int) -> bytearray:
                return self.buf

            def buffer_updated(self, nbytes: int) -> None:
                self.got += self.buf[:nbytes]

            def eof_received(self) -> None:
                done.set_result(bytes(self.got))

        server = await a.create_server(Into, None, 9)
        _, writer = await b.open_connection(A, 9)
        writer.write(data)
        writer.write_eof()
        assert await done == data
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    run(body)


def test_write_buffer_limits_like_asyncio() -> None:
    async def body(a: AsyncHost, b: AsyncHost) -> None:
        server = await a.create_server(Recorder, None, 9)
        transport, _ = await b.create_connection(Recorder, A, 9)
        assert transport.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
        transport.set_write_buffer_limits(high=1000)
        assert transport.get_write_buffer_limits() == (250, 1000)
        transport.set_write_buffer_limits(low=100)
        assert transport.get_write_buffer_limits() == (100, 400)
        with pytest.raises(ValueError):
            transport.set_write_buffer_limits(high=10, low=20)
        with pytest.raises(TypeError):
            transport.write("text")  # type: ignore[arg-type]
        transport.abort()
        server.close()
        await server.wait_closed()

    run(body)


def test_eof_received_returning_false_closes_the_transport() -> None:
    async def body(a: AsyncHost, b: AsyncHost) -> None:
        servers: list[Recorder] = []

        def factory() -> Recorder:
            servers.append(Recorder(keep_open_on_eof=False))
            return servers[-1]

        server = await a.create_server(factory, None, 9)
        reader, writer = await b.open_connection(A, 9)
        writer.write(b"bye")
        writer.write_eof()
        assert await reader.read() == b""  # the server's transport closed itself: FIN
        (srv,) = servers
        assert await srv.lost is None
        assert srv.events == ["made", "eof", "lost"] and srv.data == b"bye"
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    run(body)


def test_a_failing_protocol_callback_is_reported_and_closes_only_its_connection() -> None:
    async def body(a: AsyncHost, b: AsyncHost) -> None:
        loop = asyncio.get_running_loop()
        reported: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, ctx: reported.append(ctx))

        class Broken(asyncio.Protocol):
            def data_received(self, data: bytes) -> None:
                raise ValueError("boom")

        server = await a.create_server(Broken, None, 9)
        reader, writer = await b.open_connection(A, 9)
        writer.write(b"x")
        assert await reader.read() == b""
        assert [type(c["exception"]) for c in reported] == [ValueError]
        # The stack is fine: another connection works.
        _, w2 = await b.open_connection(A, 9)
        w2.close()
        await w2.wait_closed()
        writer.close()
        server.close()
        server.abort_clients()
        await server.wait_closed()

    run(body)


def test_abort_drops_what_the_transport_holds() -> None:
    small = TcpConfig(sndbuf=4096, rcvbuf=4096)

    async def body(a: AsyncHost, b: AsyncHost) -> None:
        servers: list[Recorder] = []

        def factory() -> Recorder:
            servers.append(Recorder())
            return servers[-1]

        server = await a.create_server(factory, None, 9, config=small)
        transport, client = await b.create_connection(Recorder, A, 9, config=small)
        assert isinstance(client, Recorder)
        transport.write(b"a" * 100_000)
        transport.abort()
        assert transport.is_closing() and transport.get_write_buffer_size() == 0
        assert await client.lost is None
        (srv,) = servers
        await srv.eof
        assert 0 < len(srv.data) < 100_000
        server.close()
        server.close_clients()
        await server.wait_closed()

    run(body)


# -- servers ------------------------------------------------------------------------------------


def test_server_lifecycle_serve_forever_and_async_with() -> None:
    async def body(a: AsyncHost, b: AsyncHost) -> None:
        async def hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"hello\n")
            await writer.drain()
            writer.close()

        server = await a.start_server(hello, None, 0, start_serving=False)
        assert isinstance(server, TCPServer) and not server.is_serving()
        port = server.sockets[0].getsockname()[1]
        task = asyncio.ensure_future(server.serve_forever())
        await asyncio.sleep(0)
        assert server.is_serving()
        reader, writer = await b.open_connection(A, port)
        assert await reader.readline() == b"hello\n"
        writer.close()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not server.is_serving() and server.sockets == ()
        with pytest.raises(ConnectionRefusedError):
            await b.open_connection(A, port)

        async with await a.start_server(hello, A, port) as again:
            assert again.get_loop() is asyncio.get_running_loop()
            reader, writer = await b.open_connection(A, port)
            assert await reader.readline() == b"hello\n"
            writer.close()
        assert not again.is_serving()

    run(body)


def test_wait_closed_waits_for_the_servers_connections() -> None:
    async def body(a: AsyncHost, b: AsyncHost) -> None:
        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()
            writer.close()

        server = await a.start_server(hold, None, 80)
        reader, writer = await b.open_connection(A, 80)
        await asyncio.sleep(0.05)
        server.close()
        waiting = asyncio.ensure_future(server.wait_closed())
        await asyncio.sleep(0.1)
        assert not waiting.done()  # the accepted connection is still open
        writer.write_eof()
        await waiting
        assert await reader.read() == b""
        writer.close()

    run(body)
