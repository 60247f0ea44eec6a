"""The event-driven HTTP server: runs inside a stack's event processing, like the
services of :mod:`seqs.services.tcp_basic` — no thread, no task per connection.

    server = HttpServer(stack, StaticFiles("/srv/www"), port=80)      # sans-IO: any driver
    with host.lock:                                                    # or on a running Host
        server = HttpServer(host.stack, handler, port=8080)

It works wherever the stack is driven: ``seqs up --http`` (the blocking
runner), a :class:`~seqs.runtime.Host` (create it under ``host.lock``), and
the virtual network of ``seqs demo`` and the tests, on virtual time.

Handlers are called in the stack's thread and must not block: they return a
:class:`~seqs.http.Response` at once, and a large body is a
:class:`~seqs.http.FileBody` or an iterator, read only as the connection's
send buffer frees.  The per-connection logic (limits, timeouts, keep-alive) is
:class:`~seqs.http._protocol.ServerConnection`'s; this module moves bytes
between it and a :class:`~seqs.tcp.connection.TcpConnection` and keeps the
counters.

**The heavy path.**  A download is: an ACK frees send-buffer space → the
connection's ``on_event`` (coalesced: one per batch of frames) → one
``preadv`` of up to 256 KB into the server's reused scratch buffer → one copy
into the send buffer.  Nothing is written while less than :data:`LOW_WATER`
bytes are free and data is still in flight, so fifty downloads cost a few
large reads per round trip, not one small read per ACK.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from ..stack import Stack
from ..tcp.connection import TcpConfig, TcpConnection
from ._body import CHUNK
from ._message import Request, Response
from ._protocol import ABORT, BODY, CLOSE, HEAD, ServerConnection, ServerLimits, error_response_bytes

__all__ = ["Handler", "HttpServer"]

log = logging.getLogger("seqs.http")

Handler = Callable[[Request], Response]

#: write only when this much send buffer is free (or nothing is in flight)
LOW_WATER = 64 * 1024
#: the most one recv() takes from a connection per turn
_RECV = 256 * 1024


class _Conn:
    """One TCP connection and its HTTP state; owns a timer in the stack's heap."""

    __slots__ = ("fin_sent", "http", "server", "tcp", "timer_armed")

    def __init__(self, server: HttpServer, tcp: TcpConnection, http: ServerConnection) -> None:
        self.server = server
        self.tcp = tcp
        self.http = http
        self.fin_sent = False
        self.timer_armed: float | None = None

    def deadline(self) -> float | None:
        if self.server.conns.get(self.tcp) is not self:
            return None
        return self.http.deadline()

    def on_timer(self, now: float) -> None:
        if self.server.conns.get(self.tcp) is not self:
            return
        self.http.on_timer(now)
        self.server._step(self)


class HttpServer:
    """HTTP/1.1 on ``port`` of ``stack``; ``handler(request) -> Response`` for each request.
    See the module docstring.  ``close()`` stops listening and closes every connection."""

    kind = "http"

    def __init__(self, stack: Stack, handler: Handler, port: int = 80, *, address: str = "",
                 limits: ServerLimits | None = None, backlog: int = 512, config: TcpConfig | None = None) -> None:
        self.stack = stack
        self.handler = handler
        self.limits = limits or ServerLimits()
        self.listener = stack.tcp_listen(port, address, backlog, config=config)
        self.listener.on_event = self._on_accept
        self.conns: dict[TcpConnection, _Conn] = {}
        self._scratch = bytearray(CHUNK)  # file reads for every connection go through this
        # counters (read by `seqs up --stats-file` and the tests)
        self.accepted = 0
        self.requests = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.statuses: dict[int, int] = {}
        self.errors: dict[str, int] = {}

    @property
    def port(self) -> int:
        return self.listener.port

    def _count_error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    def _on_accept(self) -> None:
        now = self.stack.iface.now
        while (tcp := self.listener.accept()) is not None:
            self.accepted += 1
            if len(self.conns) >= self.limits.max_connections:
                self._count_error("503")
                tcp.send(error_response_bytes(503, "too many connections"))
                tcp.close()
                continue
            http = ServerConnection(self.limits, now, tcp.remote_address, self._scratch)
            c = _Conn(self, tcp, http)
            self.conns[tcp] = c
            tcp.on_event = partial(self._step, c)
            self._step(c)

    def _step(self, c: _Conn) -> None:
        """Move what can move: input into the parser, requests to the handler,
        output into the send buffer; then end the connection or re-arm its timer."""
        tcp, http = c.tcp, c.http
        now = self.stack.iface.now
        try:
            progress = True
            while progress:
                progress = False
                if tcp.closed:
                    if tcp.error is not None and http.state not in (CLOSE, ABORT):
                        self._count_error("reset by client")
                    self._finish(c)
                    return
                if http.wants_read:
                    data = tcp.recv(_RECV)
                    if data is not None:
                        self.bytes_in += len(data)
                        http.receive_data(data, now)
                        progress = True
                if http.state in (HEAD, BODY):
                    req = http.next_request(now)
                    if req is not None:
                        self._handle(http, req, now)
                        progress = True
                if http.has_output:
                    space = tcp.send_space
                    if space >= min(LOW_WATER, tcp.config.sndbuf // 2) or tcp.buffered == 0:
                        while space > 0 and (piece := http.output(space)) is not None:
                            n = tcp.send(piece)
                            if n <= 0:
                                break
                            http.consumed(n, now)
                            self.bytes_out += n
                            space -= n
                            progress = True
                if http.wants_fin and not c.fin_sent:
                    c.fin_sent = True
                    tcp.shutdown_write()
                if http.state == CLOSE:
                    self._end(c, abort=False)
                    return
                if http.state == ABORT:
                    self._end(c, abort=True)
                    return
        except OSError as e:  # the connection's error (reset, timed out) or a file's
            self._count_error(type(e).__name__)
            self._end(c, abort=True)
            return
        if http.started:
            self._count_statuses(http)
        self.stack.iface.timers.update(c)

    def _handle(self, http: ServerConnection, req: Request, now: float) -> None:
        self.requests += 1
        try:
            resp = self.handler(req)
        except Exception:
            log.exception("HTTP handler failed for %s %s", req.method, req.target)
            self._count_error("handler")
            resp = Response.text(500, "internal server error")
        try:
            http.respond(resp, now)
        except Exception as e:  # e.g. a FileBody that vanished, or a body on a 204
            log.warning("HTTP response to %s %s failed: %s", req.method, req.target, e)
            http.fail(500, "internal server error", now)

    def _count_statuses(self, http: ServerConnection) -> None:
        for status in http.started:
            self.statuses[status] = self.statuses.get(status, 0) + 1
        http.started.clear()

    def _end(self, c: _Conn, *, abort: bool) -> None:
        if c.http.error is not None:
            self._count_error(c.http.error)
        if abort:
            c.tcp.abort()
        else:
            c.tcp.close()  # graceful; a RST only if the client sent what we never read
        self._finish(c)

    def _finish(self, c: _Conn) -> None:
        self._count_statuses(c.http)
        c.tcp.on_event = None
        c.http.close()
        self.conns.pop(c.tcp, None)

    # -- management ----------------------------------------------------------------------

    @property
    def open(self) -> int:
        return len(self.conns)

    def snapshot(self) -> dict[str, object]:
        """Counters for ``--stats-file`` and the tests."""
        return {"kind": self.kind, "port": self.port, "accepted": self.accepted, "open": len(self.conns),
                "requests": self.requests, "bytes_in": self.bytes_in, "bytes_out": self.bytes_out,
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())}, "errors": dict(self.errors)}

    def close(self) -> None:
        self.listener.close()
        for c in list(self.conns.values()):
            c.tcp.close()
            self._finish(c)
