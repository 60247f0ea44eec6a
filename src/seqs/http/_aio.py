"""The asyncio HTTP server: :func:`serve` on an :class:`~seqs.runtime.AsyncHost`,
one task per connection (no thread), over the genuine asyncio streams of
:mod:`seqs.runtime.streams`.

    async def hello(request: Request) -> Response:
        return Response.text(200, f"hello {request.peer[0]}")

    server = await serve(host, hello, port=8080)     # handlers may be sync or async
    ...
    server.close(); await server.wait_closed()

The connection logic is :class:`~seqs.http._protocol.ServerConnection`'s, the
same as the event-driven server's; here a handler may await, and a response
body may be an async iterable (sent chunked unless a Content-Length is given).
Write flow control is the stream's: the task waits in ``drain()`` while the
transport holds more than its high-water mark, bounded by ``send_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import TYPE_CHECKING

from ..runtime.streams import TCPServer
from ._body import CHUNK
from ._message import Request, Response
from ._protocol import ABORT, BODY, CLOSE, HEAD, ServerConnection, ServerLimits

if TYPE_CHECKING:
    from ..runtime.aio import AsyncHost

__all__ = ["AsyncHandler", "AsyncHttpServer", "serve"]

log = logging.getLogger("seqs.http")

AsyncHandler = Callable[[Request], "Response | Awaitable[Response]"]


class AsyncHttpServer:
    """What :func:`serve` returns: the listening server and its counters."""

    def __init__(self, handler: AsyncHandler, limits: ServerLimits) -> None:
        self.handler = handler
        self.limits = limits
        self.server: TCPServer | None = None
        self._scratch = bytearray(CHUNK)
        self._tasks: set[asyncio.Task[None]] = set()
        self.accepted = 0
        self.requests = 0
        self.statuses: dict[int, int] = {}

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    @property
    def open(self) -> int:
        return len(self._tasks)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for t in list(self._tasks):
            t.cancel()

    async def wait_closed(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.accepted += 1
        try:
            await self._serve(reader, writer)
        except (OSError, asyncio.CancelledError):
            writer.transport.abort()
        except Exception:
            log.exception("HTTP connection failed")
            writer.transport.abort()
        finally:
            self._tasks.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        lim = self.limits
        http = ServerConnection(lim, loop.time(), writer.get_extra_info("peername"), self._scratch)
        fin = False
        while True:
            if http.state in (HEAD, BODY):
                req = http.next_request(loop.time())
                if req is not None:
                    await self._respond(http, req, writer)
            while (piece := http.output(CHUNK)) is not None:
                writer.write(piece)  # copied at once: the scratch buffer may be reused
                http.consumed(len(piece), loop.time())
                if writer.transport.get_write_buffer_size() > CHUNK:
                    await asyncio.wait_for(writer.drain(), lim.send_timeout)
            for status in http.started:
                self.statuses[status] = self.statuses.get(status, 0) + 1
            http.started.clear()
            if http.wants_fin and not fin:
                fin = True
                await asyncio.wait_for(writer.drain(), lim.send_timeout)
                writer.write_eof()
            if http.state == CLOSE:
                writer.close()
                return
            if http.state == ABORT:
                writer.transport.abort()
                return
            if http.wants_read:
                d = http.deadline()
                timeout = None if d is None else max(0.0, d - loop.time())
                try:
                    data = await asyncio.wait_for(reader.read(256 * 1024), timeout)
                except TimeoutError:
                    http.on_timer(loop.time())
                    continue
                http.receive_data(data, loop.time())

    async def _respond(self, http: ServerConnection, req: Request, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        self.requests += 1
        try:
            result = self.handler(req)
            resp = await result if inspect.isawaitable(result) else result
            assert isinstance(resp, Response), f"the handler returned {type(resp).__name__}, not a Response"
            http.respond(resp, loop.time())
        except Exception:
            log.exception("HTTP handler failed for %s %s", req.method, req.target)
            http.fail(500, "internal server error", loop.time())
            return
        body = resp.body
        if isinstance(body, AsyncIterable) and req.method != "HEAD":
            try:
                async for chunk in body:
                    http.send_body(chunk)
                    while (piece := http.output(CHUNK)) is not None:
                        writer.write(piece)
                        http.consumed(len(piece), loop.time())
                    await asyncio.wait_for(writer.drain(), self.limits.send_timeout)
            finally:
                aclose = getattr(body, "aclose", None)
                if aclose is not None:
                    with contextlib.suppress(Exception):
                        await aclose()
            http.end_body(loop.time())


async def serve(host: AsyncHost, handler: AsyncHandler, port: int = 80, *, address: str = "",
                limits: ServerLimits | None = None, backlog: int = 512) -> AsyncHttpServer:
    """Serve HTTP/1.1 on ``host`` until ``close()``; ``handler(request)`` returns a
    :class:`Response` or an awaitable of one."""
    server = AsyncHttpServer(handler, limits or ServerLimits())
    server.server = await host.start_server(server._connection, address or None, port, backlog=backlog)
    return server
