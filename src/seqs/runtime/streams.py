"""TCP for asyncio: a real :class:`asyncio.Transport` over a seqs connection,
so asyncio streams and protocols run unchanged on a seqs :class:`~seqs.runtime.AsyncHost`.

    host = AsyncHost(TapDevice("tap0"), ip="10.0.0.2/24", gateway="10.0.0.1")
    reader, writer = await host.open_connection("10.0.0.1", 80)
    writer.write(b"GET / HTTP/1.0\\r\\n\\r\\n")
    await writer.drain()
    status = await reader.readline()
    writer.close()
    await writer.wait_closed()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    async with await host.start_server(echo, None, 7) as server:
        await server.serve_forever()

The readers and writers are the genuine :class:`asyncio.StreamReader` and
:class:`asyncio.StreamWriter`; ``host.create_connection(protocol_factory, ...)``
and ``host.create_server(protocol_factory, ...)`` give the transport/protocol
form, as :meth:`asyncio.loop.create_connection` and
:meth:`asyncio.loop.create_server` do.

Owns the mapping of asyncio's transport contract onto
:class:`~seqs.tcp.connection.TcpConnection`, in particular flow control both
ways.  Reading: ``pause_reading()`` stops taking data out of the connection,
so its receive buffer fills and the advertised window closes (RFC 9293
§3.8.6.2) — the peer is slowed by TCP itself, not by a buffer here.  Writing:
``write()`` hands the connection what its send buffer takes; the rest waits
in the transport and is fed in as acknowledgements free space, and the
protocol gets ``pause_writing()``/``resume_writing()`` at the high/low water
marks of *that* waiting data (64 KiB / 16 KiB by default, as asyncio's), the
way a selector transport counts what the kernel would not take.

Closing follows the selector transports: ``close()`` flushes what the
transport holds into the connection, then closes it (FIN, or RST if received
data was left unread — what closing a kernel socket does) and calls
``connection_lost(None)``; ``abort()`` drops what the transport holds and
closes at once.  A connection error (RST, retransmissions exhausted) becomes
``connection_lost(exc)`` with the stdlib exception, after the data received
before it was delivered.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from .._typing import BytesLike
from ..errors import oserror
from ..sockets.tcp import TcpListener
from ..tcp.connection import TcpConfig, TcpConnection

if TYPE_CHECKING:
    from .aio import AsyncHost

__all__ = [
    "ServerSocket",
    "TCPServer",
    "TCPTransport",
    "create_connection",
    "create_server",
    "open_connection",
    "start_server",
]

log = logging.getLogger("seqs.runtime")

Address = tuple[str, int]
_READ_CHUNK = 256 * 1024  # the most one data_received() carries
_LOG_THRESHOLD_FOR_CONNLOST_WRITES = 5  # asyncio's constant
_STREAM_LIMIT = 2**16  # asyncio.streams' default buffer limit


class TCPTransport(asyncio.Transport):
    """An :class:`asyncio.Transport` over one :class:`TcpConnection`.  See the module docstring."""

    def __init__(self, host: AsyncHost, conn: TcpConnection, protocol: asyncio.BaseProtocol,
                 server: TCPServer | None = None) -> None:
        super().__init__()
        self._host = host
        self._loop = host.loop
        self._conn = conn
        self._protocol = protocol
        self._server = server
        self._wbuf = bytearray()  # written, not yet taken by the connection
        self._high = 64 * 1024
        self._low = 16 * 1024
        self._protocol_paused = False  # pause_writing() was called
        self._reading_paused = False
        self._closing = False
        self._lost = False  # connection_lost() is scheduled or done
        self._conn_lost = 0  # writes after the loss, as asyncio counts them
        self._eof = False  # write_eof() was called
        self._eof_received = False
        self._started = False
        self._local = conn.local_address
        self._remote = conn.remote_address

    # -- life cycle --------------------------------------------------------------------

    def _start(self) -> None:
        """connection_made(), then whatever arrived before it."""
        if self._started or self._lost:
            return
        self._started = True
        self._conn.on_event = self._on_event
        try:
            self._protocol.connection_made(self)
        except Exception as exc:
            self._fatal_error(exc, "Fatal error: protocol.connection_made() call failed.")
            return
        self._loop.call_soon(self._on_event)

    def _on_event(self) -> None:
        """The connection's readiness may have changed (called by the stack after a
        segment or timer, and by us after resume_reading): move data both ways."""
        if self._lost or not self._started:
            return
        conn = self._conn
        try:
            if self._wbuf:
                self._feed()
            if self._closing:
                if not self._wbuf:
                    self._finish_close(None)
                return
            if not self._reading_paused:
                self._deliver()
            elif conn.error is not None and (not conn.unread or self._wbuf or self._protocol_paused):
                # Reading is paused, but a writer waits on a dead connection: tell it now.
                raise oserror(conn.error)
        except OSError as exc:
            self._force_close(exc)
        except Exception as exc:
            self._fatal_error(exc, "Fatal error: protocol callback failed.")

    def _feed(self) -> None:
        """Hand the connection what its send buffer takes of the waiting data."""
        wbuf = self._wbuf
        n = self._conn.send(wbuf)  # raises the connection's error
        if n:
            del wbuf[:n]
            self._host.runner.kick()
        if not wbuf and self._eof:
            self._conn.shutdown_write()
        self._maybe_resume_protocol()

    def _deliver(self) -> None:
        conn = self._conn
        protocol = self._protocol
        moved = False
        while not (self._reading_paused or self._closing or self._lost):
            if isinstance(protocol, asyncio.BufferedProtocol):
                # asyncio's buffered protocols: read straight into their buffer.
                buf = memoryview(protocol.get_buffer(-1)).cast("B")
                if not len(buf):
                    raise RuntimeError("get_buffer() returned an empty buffer")
                n = conn.recv_into(buf)  # raises the connection's error after the data
                if n is None:
                    break
                if n:
                    moved = True
                    protocol.buffer_updated(n)
                    continue
            else:
                data = conn.recv(_READ_CHUNK)  # raises the connection's error after the data
                if data is None:
                    break
                if data:
                    moved = True
                    cast(asyncio.Protocol, protocol).data_received(data)
                    continue
            if not self._eof_received:
                self._eof_received = True
                # asyncio: a false value from eof_received() closes the transport.
                if not cast(asyncio.Protocol, protocol).eof_received():
                    self.close()
            break
        if moved:
            self._host.runner.kick()  # the window may have opened

    def _force_close(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._closing = True
        self._wbuf.clear()
        self._finish_close(exc)

    def _finish_close(self, exc: Exception | None) -> None:
        """Let go of the connection and schedule connection_lost(exc)."""
        self._lost = True
        self._conn_lost += 1
        conn = self._conn
        conn.on_event = None
        conn.close()  # FIN after what is queued, or RST if received data was left unread
        self._host.runner.kick()
        self._loop.call_soon(self._call_connection_lost, exc)

    def _fatal_error(self, exc: Exception, message: str) -> None:
        if isinstance(exc, OSError):
            log.debug("%r: %s", self, message, exc_info=True)
        else:
            self._loop.call_exception_handler(
                {"message": message, "exception": exc, "transport": self, "protocol": self._protocol}
            )
        self._force_close(exc)

    def _call_connection_lost(self, exc: Exception | None) -> None:
        try:
            if self._started:
                self._protocol.connection_lost(exc)
        finally:
            server, self._server = self._server, None
            if server is not None:
                server._detach(self)

    # -- asyncio.BaseTransport -----------------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``peername``, ``sockname``, and ``connection`` (the :class:`TcpConnection`)."""
        if name == "peername":
            return self._remote
        if name == "sockname":
            return self._local
        if name == "connection":
            return self._conn
        return default

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if not self._wbuf:
            self._finish_close(None)
        # else: _on_event finishes once the connection has taken the rest

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    # -- asyncio.ReadTransport -----------------------------------------------------------

    def is_reading(self) -> bool:
        return not (self._reading_paused or self._closing)

    def pause_reading(self) -> None:
        """Stop delivering data; the connection's window closes as its buffer fills."""
        if self._closing or self._reading_paused:
            return
        self._reading_paused = True

    def resume_reading(self) -> None:
        if self._closing or not self._reading_paused:
            return
        self._reading_paused = False
        self._loop.call_soon(self._on_event)

    # -- asyncio.WriteTransport ----------------------------------------------------------

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high, self._low = high, low
        self._maybe_pause_protocol()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low, self._high)

    def get_write_buffer_size(self) -> int:
        """Bytes written that the connection's send buffer has not taken yet."""
        return len(self._wbuf)

    def write(self, data: BytesLike) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, not {type(data).__name__!r}")
        if self._eof:
            raise RuntimeError("Cannot call write() after write_eof()")
        if not data:
            return
        if self._lost or self._closing:
            if self._conn_lost >= _LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                log.warning("TCPTransport.write() after the connection was lost or closed")
            self._conn_lost += 1
            return
        if not self._wbuf:
            view = memoryview(data).cast("B")
            try:
                n = self._conn.send(view)
            except OSError as exc:
                self._fatal_error(exc, "Fatal write error on TCP transport")
                return
            self._host.runner.kick()
            if n == len(view):
                return
            self._wbuf += view[n:]
        else:
            self._wbuf += data
        self._maybe_pause_protocol()

    def write_eof(self) -> None:
        """Half-close: FIN after everything written (RFC 9293 §3.6)."""
        if self._closing or self._eof:
            return
        self._eof = True
        if not self._wbuf:
            self._conn.shutdown_write()
            self._host.runner.kick()

    def can_write_eof(self) -> bool:
        return True

    def abort(self) -> None:
        """Drop what the transport holds and close the connection now (asyncio's abort:
        like closing the kernel socket, not a RST unless received data was left unread)."""
        self._force_close(None)

    # -- write flow control (asyncio's _FlowControlMixin) ----------------------------------

    def _maybe_pause_protocol(self) -> None:
        if len(self._wbuf) <= self._high or self._protocol_paused:
            return
        self._protocol_paused = True
        try:
            self._protocol.pause_writing()
        except Exception as exc:
            self._loop.call_exception_handler(
                {"message": "protocol.pause_writing() failed", "exception": exc, "transport": self,
                 "protocol": self._protocol}
            )

    def _maybe_resume_protocol(self) -> None:
        if self._protocol_paused and len(self._wbuf) <= self._low:
            self._protocol_paused = False
            try:
                self._protocol.resume_writing()
            except Exception as exc:
                self._loop.call_exception_handler(
                    {"message": "protocol.resume_writing() failed", "exception": exc, "transport": self,
                     "protocol": self._protocol}
                )

    def __repr__(self) -> str:
        state = "closed" if self._lost else "closing" if self._closing else "open"
        return f"<seqs TCPTransport {self._local} -> {self._remote} {state}>"


class ServerSocket:
    """What :attr:`TCPServer.sockets` lists: enough of a socket to ask where it listens."""

    family = socket.AF_INET
    type = socket.SOCK_STREAM

    def __init__(self, listener: TcpListener) -> None:
        self._listener = listener

    def getsockname(self) -> Address:
        return self._listener.local_address

    def __repr__(self) -> str:
        return f"<seqs ServerSocket laddr={self.getsockname()}>"


class TCPServer(asyncio.AbstractServer):
    """What :meth:`AsyncHost.create_server` returns; behaves like :class:`asyncio.Server`.

    ``wait_closed()`` has the 3.12 meaning: it returns once the server is closed
    *and* every connection it accepted is gone (``close_clients()`` and
    ``abort_clients()`` end them, as in 3.13).
    """

    def __init__(self, host: AsyncHost, listener: TcpListener,
                 protocol_factory: Callable[[], asyncio.BaseProtocol]) -> None:
        self._host = host
        self._loop = host.loop
        self._listener = listener
        self._factory = protocol_factory
        self._serving = False
        self._closed = False
        self._transports: set[TCPTransport] = set()
        self._waiters: list[asyncio.Future[None]] = []
        self._serving_forever_fut: asyncio.Future[None] | None = None

    def _start_serving(self) -> None:
        if self._serving or self._closed:
            return
        self._serving = True
        self._listener.on_event = self._on_accept
        self._loop.call_soon(self._on_accept)  # connections that queued before we served

    def _on_accept(self) -> None:
        lst = self._listener
        while self._serving and (conn := lst.accept()) is not None:
            try:
                protocol = self._factory()
            except Exception as exc:
                conn.abort()
                self._loop.call_exception_handler(
                    {"message": "protocol factory failed; connection reset", "exception": exc}
                )
                continue
            transport = TCPTransport(self._host, conn, protocol, server=self)
            self._transports.add(transport)
            self._loop.call_soon(transport._start)
        self._host.runner.kick()

    def _detach(self, transport: TCPTransport) -> None:
        self._transports.discard(transport)
        self._wakeup_if_done()

    def _wakeup_if_done(self) -> None:
        if self._closed and not self._transports:
            waiters, self._waiters = self._waiters, []
            for w in waiters:
                if not w.done():
                    w.set_result(None)

    # -- asyncio.AbstractServer ----------------------------------------------------------

    def close(self) -> None:
        """Stop listening (connections not yet accepted are reset); accepted ones stay."""
        if self._closed:
            return
        self._closed = True
        self._serving = False
        self._listener.on_event = None
        self._listener.close()
        self._host.runner.kick()
        fut = self._serving_forever_fut
        if fut is not None and not fut.done():
            fut.cancel()
        self._wakeup_if_done()

    def close_clients(self) -> None:
        for t in list(self._transports):
            t.close()

    def abort_clients(self) -> None:
        for t in list(self._transports):
            t.abort()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    @property
    def sockets(self) -> tuple[ServerSocket, ...]:
        if self._closed:
            return ()
        return (ServerSocket(self._listener),)

    async def start_serving(self) -> None:
        self._start_serving()
        await asyncio.sleep(0)

    async def serve_forever(self) -> None:
        if self._serving_forever_fut is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        if self._closed:
            raise RuntimeError(f"server {self!r} is closed")
        self._start_serving()
        self._serving_forever_fut = self._loop.create_future()
        try:
            await self._serving_forever_fut
        except asyncio.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever_fut = None

    async def wait_closed(self) -> None:
        if self._closed and not self._transports:
            return
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter

    def __repr__(self) -> str:
        return f"<seqs TCPServer sockets={self.sockets!r}>"


# -- constructors (the AsyncHost methods call these) -----------------------------------------


async def create_connection(host: AsyncHost, protocol_factory: Callable[[], asyncio.BaseProtocol],
                            address: str, port: int, *, local_addr: Address | None = None,
                            config: TcpConfig | None = None) -> tuple[TCPTransport, asyncio.BaseProtocol]:
    """Connect, then build the protocol and call its ``connection_made`` (as
    :meth:`asyncio.loop.create_connection`).  Cancelling the wait (e.g. with
    :func:`asyncio.wait_for`) abandons the handshake with a RST."""
    local_port = 0
    if local_addr is not None:
        src, local_port = local_addr
        if src not in ("", "0.0.0.0", None, host.stack.ip):
            raise OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")
    conn: TcpConnection = host.call(
        lambda: host.stack.tcp_connect((address, port), local_port=local_port, config=config)
    )
    done: asyncio.Future[None] = host.loop.create_future()

    def on_event() -> None:
        if not conn.connecting and not done.done():
            done.set_result(None)

    conn.on_event = on_event
    try:
        await done
        if conn.error is not None:
            raise oserror(conn.error)
        if conn.closed:
            raise oserror(errno.ECONNABORTED)
    except BaseException:
        conn.on_event = None
        host.call(conn.abort)
        raise
    protocol = protocol_factory()
    transport = TCPTransport(host, conn, protocol)
    transport._start()
    return transport, protocol


async def create_server(host: AsyncHost, protocol_factory: Callable[[], asyncio.BaseProtocol],
                        address: str | None = None, port: int | None = None, *, backlog: int = 100,
                        reuse_port: bool | None = None, start_serving: bool = True,
                        config: TcpConfig | None = None) -> TCPServer:
    """Listen and serve (as :meth:`asyncio.loop.create_server`).  ``address``
    None or ``""`` listens on every address of the host; port None or 0 picks one."""
    lst: TcpListener = host.call(
        lambda: host.stack.tcp_listen(port or 0, address or "", backlog, config=config,
                                      reuse_port=bool(reuse_port))
    )
    server = TCPServer(host, lst, protocol_factory)
    if start_serving:
        server._start_serving()
        await asyncio.sleep(0)  # as asyncio does: let the server start before returning
    return server


async def open_connection(host: AsyncHost, address: str, port: int, *, limit: int = _STREAM_LIMIT,
                          **kwds: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """:func:`asyncio.open_connection` on a seqs host: genuine stream objects."""
    loop = host.loop
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await create_connection(host, lambda: protocol, address, port, **kwds)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer


async def start_server(host: AsyncHost, client_connected_cb: Callable[..., Any], address: str | None = None,
                       port: int | None = None, *, limit: int = _STREAM_LIMIT, **kwds: Any) -> TCPServer:
    """:func:`asyncio.start_server` on a seqs host: ``client_connected_cb(reader, writer)``
    (a function or a coroutine function) runs for each connection."""
    loop = host.loop

    def factory() -> asyncio.BaseProtocol:
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        return asyncio.StreamReaderProtocol(reader, client_connected_cb, loop=loop)

    return await create_server(host, factory, address, port, **kwds)

