"""One HTTP/1.1 connection, server side and client side, sans-IO: bytes and time
in, bytes and deadlines out.  h11 does the parsing and framing; this adds what
a server on the open network needs and h11 leaves to its user.

**Theory of operation (server).**  A :class:`ServerConnection` is in one of
these states, and its driver (the event-driven server on a stack, or the
asyncio one) does what the state asks:

======== ============================================== ============================
state    the connection is ...                          the driver ...
======== ============================================== ============================
HEAD     waiting for a request's head                   reads, calls next_request()
BODY     reading that request's body                    reads, calls next_request()
HANDLER  holding a whole request for the handler        calls respond()
SEND     sending a response                             writes output()
LINGER   done with the client, FIN pending or sent      writes output(), then FIN,
                                                        reads and discards to EOF
CLOSE    finished                                       closes the TCP connection
ABORT    finished badly (client stopped reading)        resets the TCP connection
======== ============================================== ============================

Limits answer with the status RFC 9110 names and then close: a head larger
than ``max_header_bytes`` gets 431 (RFC 6585 §5), a body larger than
``max_body_bytes`` 413 (RFC 9110 §15.5.14, as soon as Content-Length says so),
malformed framing 400, a head or body not complete in time 408 (the slowloris
defence: the head timeout counts from the first byte, so trickling bytes does
not extend it).  A client that stops reading a response is reset after
``send_timeout`` without progress.  Closing after an error response goes
through LINGER: FIN, then the rest of what the client sends is read and
thrown away, so its unread request does not turn our close into a RST that
destroys the response before it is read (RFC 9112 §9.6).

Time is an argument (``now``, seconds); :meth:`ServerConnection.deadline` says
when :meth:`ServerConnection.on_timer` is next due.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import Any

import h11

from .._typing import BytesLike
from ._body import CHUNK, BodySource, open_body
from ._message import (
    Headers,
    LocalProtocolError,
    RemoteProtocolError,
    Request,
    Response,
    get_header,
    reason_phrase,
)

__all__ = [
    "ABORT",
    "BODY",
    "CLOSE",
    "HANDLER",
    "HEAD",
    "LINGER",
    "SEND",
    "ClientConnection",
    "ResponseHead",
    "ServerConnection",
    "ServerLimits",
]

HEAD, BODY, HANDLER, SEND, LINGER, CLOSE, ABORT = "HEAD", "BODY", "HANDLER", "SEND", "LINGER", "CLOSE", "ABORT"

SERVER_NAME = "seqs"


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What one client may cost a server."""

    #: request line plus header fields (431 beyond)
    max_header_bytes: int = 64 * 1024
    #: request body (413 beyond)
    max_body_bytes: int = 16 * 1024 * 1024
    #: from a request's first byte to its complete head (408 after)
    header_timeout: float = 10.0
    #: a request body without progress for this long (408 after)
    body_timeout: float = 30.0
    #: a kept-alive connection with no new request for this long is closed
    idle_timeout: float = 30.0
    #: a response the client has not taken any of for this long is reset
    send_timeout: float = 60.0
    #: after our FIN, how long the rest of the client's data is waited for and discarded
    linger: float = 2.0
    #: connections served at once; more are answered 503 and closed
    max_connections: int = 1024


def _text(value: bytes) -> str:
    return value.decode("latin-1")


def _headers_in(raw: Any) -> Headers:
    return [(_text(k), _text(v)) for k, v in raw]


def _data(data: BytesLike) -> h11.Data:
    # h11 passes views through untouched (send_with_data_passthrough): no copy of the body
    return h11.Data(data=data)  # type: ignore[arg-type]


def _headers_out(headers: Headers) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), str(v).encode("latin-1")) for k, v in headers]


def error_response_bytes(status: int, detail: str = "") -> bytes:
    """A complete ``Connection: close`` response, built without h11 (whose state may
    be ERROR by then: it has given up on the request)."""
    body = f"{status} {reason_phrase(status)}{': ' + detail if detail else ''}\n".encode("latin-1", "replace")
    head = (f"HTTP/1.1 {status} {reason_phrase(status)}\r\nServer: {SERVER_NAME}\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n")
    return head.encode("latin-1") + body


class ServerConnection:
    """The server side of one connection.  See the module docstring."""

    def __init__(self, limits: ServerLimits, now: float, peer: tuple[str, int] | None = None,
                 scratch: bytearray | None = None) -> None:
        self.limits = limits
        self.peer = peer
        self.state = HEAD
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes)
        self._scratch = scratch
        self._out: deque[BytesLike] = deque()
        self._source: BodySource | None = None
        self._head_only = False
        self._async_body = False
        self._request: h11.Request | None = None
        self._body = bytearray()
        self._eof = False
        self._cycle_start = now
        self._first_byte_at: float | None = None
        self._progress_at = now
        self._linger_at = 0.0
        #: requests answered on this connection
        self.requests = 0
        #: the status of the response being sent (or last sent)
        self.status = 0
        #: statuses of the responses started since the driver last emptied this list
        self.started: list[int] = []
        #: response body bytes handed to the transport
        self.body_bytes_out = 0
        #: why the connection ended early ("timeout", "431", ...), for counters
        self.error: str | None = None

    # -- input -------------------------------------------------------------------------

    @property
    def wants_read(self) -> bool:
        """Whether the driver should take data from the transport now (not while a
        response is being produced: pipelined requests wait in TCP's window)."""
        return self.state in (HEAD, BODY, LINGER) and not self._eof

    def receive_data(self, data: bytes, now: float) -> None:
        """Bytes from the client; ``b""`` for its end of stream (FIN)."""
        if self._eof:
            return
        if not data:
            self._eof = True
        if self.state == LINGER:
            if self._eof and not self._out:
                self.state = CLOSE
            return
        if self.state not in (HEAD, BODY):
            return  # e.g. after an abort
        if data:
            if self.state == HEAD and self._first_byte_at is None:
                self._first_byte_at = now
            self._progress_at = now
        self._h11.receive_data(data)

    def next_request(self, now: float) -> Request | None:
        """The next complete request (state HANDLER), or None: more data is needed,
        or the connection went on to answer an error or to close."""
        h = self._h11
        while self.state in (HEAD, BODY):
            try:
                ev = h.next_event()
            except h11.RemoteProtocolError as e:
                self.fail(e.error_status_hint if e.error_status_hint >= 400 else 400, str(e), now)
                return None
            if ev is h11.NEED_DATA or ev is h11.PAUSED:
                return None
            if isinstance(ev, h11.Request):
                self._request = ev
                self.state = BODY
                if not ev.http_version.startswith(b"1."):
                    self.fail(505, "HTTP/1.x only", now)  # RFC 9110 §15.6.6
                    return None
                cl = get_header(_headers_in(ev.headers), "content-length")
                if cl is not None and int(cl) > self.limits.max_body_bytes:
                    self.fail(413, f"the body may be at most {self.limits.max_body_bytes} bytes", now)
                    return None
                if h.they_are_waiting_for_100_continue:  # RFC 9110 §10.1.1
                    self._push(h.send(h11.InformationalResponse(status_code=100, headers=[])))
            elif isinstance(ev, h11.Data):
                self._body += ev.data
                if len(self._body) > self.limits.max_body_bytes:
                    self.fail(413, f"the body may be at most {self.limits.max_body_bytes} bytes", now)
                    return None
            elif isinstance(ev, h11.EndOfMessage):
                req = self._request
                assert req is not None
                self.state = HANDLER
                body, self._body = bytes(self._body), bytearray()
                return Request(_text(req.method), _text(req.target), _headers_in(req.headers), body,
                               _text(req.http_version), self.peer)
            elif isinstance(ev, h11.ConnectionClosed):
                # The client closed.  Between requests that is the normal end of a
                # kept-alive connection; inside one, there is nobody left to answer.
                self.state = CLOSE
                if self._request is not None or self._first_byte_at is not None:
                    self.error = "client closed mid-request"
                return None
        return None

    # -- output ------------------------------------------------------------------------

    def respond(self, response: Response, now: float) -> None:
        """Start sending ``response`` to the request :meth:`next_request` returned."""
        if self.state != HANDLER:
            raise LocalProtocolError(f"respond() in state {self.state}")
        req = self._request
        assert req is not None
        headers = [(k.lower(), v) for k, v in response.headers]
        body = response.body
        names = {k for k, _ in headers}
        self._head_only = req.method == b"HEAD" or response.status in (204, 304)
        source: BodySource | None = None
        self._async_body = isinstance(body, AsyncIterable)
        if not self._async_body:
            given = get_header(headers, "content-length")
            source = open_body(body, self._scratch, int(given) if given is not None else None)
            if source.length is not None and "content-length" not in names and "transfer-encoding" not in names \
                    and response.status not in (204, 304) and response.status >= 200:
                headers.append(("content-length", str(source.length)))
        if "server" not in names:
            headers.append(("server", SERVER_NAME))
        try:
            head = self._h11.send(h11.Response(status_code=response.status, headers=_headers_out(headers),
                                               reason=(response.reason or reason_phrase(response.status)).encode()))
        except h11.LocalProtocolError as e:
            if source is not None:
                source.close()
            raise LocalProtocolError(str(e)) from e
        self._push(head)
        self.status = response.status
        self.started.append(response.status)
        self.body_bytes_out = 0
        self._progress_at = now
        self.state = SEND
        if self._head_only:
            if source is not None:
                source.close()
            self._async_body = False
            self._end_response(now)
        else:
            self._source = source

    # For the asyncio server's async bodies: the driver feeds chunks itself.

    def send_body(self, data: BytesLike) -> None:
        """Queue ``data`` of an async body (framed as the response requires)."""
        if self.state != SEND or not self._async_body:
            return
        if data:
            self._push(*(self._h11.send_with_data_passthrough(_data(data)) or ()))
            self.body_bytes_out += len(data)

    def end_body(self, now: float) -> None:
        if self.state != SEND or not self._async_body:
            return
        self._async_body = False
        self._end_response(now)

    def _push(self, *pieces: BytesLike | None) -> None:
        for p in pieces:
            if p:  # never an empty piece: output() returning b"" would make no progress
                self._out.append(p)

    @property
    def has_output(self) -> bool:
        return bool(self._out) or self._source is not None

    def output(self, max_bytes: int) -> BytesLike | None:
        """The next bytes to send (at most ``max_bytes`` of body are read for it), or None.
        Report what the transport took with :meth:`consumed` before calling again."""
        if not self._out:
            src = self._source
            if src is None:
                return None
            piece = src.read(max(1, min(max_bytes, CHUNK)))
            if piece:
                self.body_bytes_out += len(piece)
                self._push(*(self._h11.send_with_data_passthrough(_data(piece)) or ()))
            else:
                src.close()
                self._source = None
                try:
                    self._end_response(self._progress_at)
                except h11.LocalProtocolError:
                    # Fewer bytes than the Content-Length the handler promised: the
                    # response cannot end well; close so the client sees it cut short.
                    self.error = "body shorter than its content-length"
                    self._out.clear()
                    self.state = ABORT
                    return None
            if not self._out:
                return None
        return self._out[0]

    def consumed(self, n: int, now: float) -> None:
        """The transport took ``n`` bytes of what :meth:`output` returned."""
        if n <= 0:
            return
        self._progress_at = now
        first = self._out[0]
        if n >= len(first):
            self._out.popleft()
        else:
            rest = memoryview(first)[n:]
            if self._scratch is not None and isinstance(first, memoryview) and first.obj is self._scratch:
                rest = memoryview(bytes(rest))  # the scratch buffer is about to be reused
            self._out[0] = rest
        if self.state == LINGER and self._eof and not self._out:
            self.state = CLOSE

    def _end_response(self, now: float) -> None:
        h = self._h11
        self._push(h.send(h11.EndOfMessage()))
        self.requests += 1
        self._request = None
        if h.our_state is h11.DONE and h.their_state is h11.DONE:
            h.start_next_cycle()  # keep-alive (RFC 9112 §9.3)
            self.state = HEAD
            self._cycle_start = now
            self._first_byte_at = None
            if h.trailing_data[0]:
                self._first_byte_at = now  # a pipelined request is already waiting
        else:
            self._linger(now)

    # -- ending --------------------------------------------------------------------------

    def fail(self, status: int, detail: str, now: float) -> None:
        """Answer ``status`` (a complete error response, whatever was under way) and
        close after LINGER."""
        self.error = str(status)
        self.status = status
        self.started.append(status)
        if self._source is not None:
            self._source.close()
            self._source = None
        self._out.clear()
        self._out.append(error_response_bytes(status, detail))
        self._linger(now)

    def _linger(self, now: float) -> None:
        self.state = LINGER
        self._linger_at = now
        self._body = bytearray()
        if self._eof and not self._out:
            self.state = CLOSE

    @property
    def wants_fin(self) -> bool:
        """Whether the driver should send FIN now (after everything queued)."""
        return self.state in (LINGER, CLOSE) and not self._out

    def close(self) -> None:
        """Release what the connection holds (the driver is done with it)."""
        if self._source is not None:
            self._source.close()
            self._source = None
        self._out.clear()
        if self.state not in (CLOSE, ABORT):
            self.state = CLOSE

    # -- time --------------------------------------------------------------------------

    def deadline(self) -> float | None:
        lim = self.limits
        st = self.state
        if st == HEAD:
            if self._first_byte_at is not None:
                return self._first_byte_at + lim.header_timeout
            if self.requests == 0:
                return self._cycle_start + lim.header_timeout  # a connection that sends nothing
            return self._cycle_start + lim.idle_timeout
        if st == BODY:
            return self._progress_at + lim.body_timeout
        if st == SEND:
            if not self._out and self._source is None:
                return None  # waiting for an async body: the application's time, not the client's
            return self._progress_at + lim.send_timeout
        if st == LINGER:
            if self._out:
                return self._progress_at + lim.send_timeout
            return self._linger_at + lim.linger
        return None

    def on_timer(self, now: float) -> None:
        d = self.deadline()
        if d is None or now < d:
            return
        st = self.state
        if st == HEAD:
            if self._first_byte_at is None:
                self.state = CLOSE  # idle: close quietly, as every server does
                if self.requests == 0:
                    self.error = "timeout"
            else:
                self.fail(408, "the request head took too long", now)
        elif st == BODY:
            self.fail(408, "the request body stalled", now)
        elif st == SEND or (st == LINGER and self._out):
            self.error = "timeout"
            self.close()
            self.state = ABORT  # the client stopped reading
        elif st == LINGER:
            self.state = CLOSE


# -- client ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResponseHead:
    status: int
    reason: str
    headers: Headers
    http_version: str


#: what ClientConnection.next_event() returns at the end of a response body
END = object()


class ClientConnection:
    """The client side of one connection: ``request()`` gives bytes to send,
    ``receive_data()`` takes what arrives, ``next_event()`` returns a
    :class:`ResponseHead`, then body chunks (``bytes``), then :data:`END`; None
    when it needs more data.  Interim 1xx responses are skipped.  Raises
    :class:`RemoteProtocolError` on a malformed response."""

    def __init__(self, max_header_bytes: int = 64 * 1024) -> None:
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_header_bytes)
        self._method = b"GET"
        self._keep_alive = True

    def request(self, method: str, target: str, headers: Headers, body: bytes | None = None) -> list[BytesLike]:
        h = self._h11
        self._method = method.encode()
        hs = list(headers)
        if body is not None and get_header(hs, "content-length") is None:
            hs.append(("content-length", str(len(body))))
        try:
            out: list[BytesLike] = [h.send(h11.Request(method=method, target=target, headers=_headers_out(hs)))
                                    or b""]
            if body:
                out += h.send_with_data_passthrough(_data(body)) or []
            out.append(h.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError as e:
            raise LocalProtocolError(str(e)) from e
        return out

    def receive_data(self, data: bytes) -> None:
        """Bytes from the server; ``b""`` at its end of stream."""
        try:
            self._h11.receive_data(data)
        except RuntimeError as e:  # data after EOF
            raise RemoteProtocolError(str(e)) from e

    def next_event(self) -> ResponseHead | bytes | object | None:
        h = self._h11
        while True:
            try:
                ev = h.next_event()
            except h11.RemoteProtocolError as e:
                raise RemoteProtocolError(str(e)) from e
            if ev is h11.NEED_DATA:
                return None
            if ev is h11.PAUSED:
                return END
            if isinstance(ev, h11.InformationalResponse):
                continue
            if isinstance(ev, h11.Response):
                head = ResponseHead(ev.status_code, _text(ev.reason), _headers_in(ev.headers),
                                    _text(ev.http_version))
                # h11 learns that the connection must close only after the body's end; say it now.
                conn = (get_header(head.headers, "connection") or "").lower()
                te = (get_header(head.headers, "transfer-encoding") or "").lower()
                bodiless = self._method == b"HEAD" or head.status in (204, 304)
                framed = bodiless or te.endswith("chunked") or get_header(head.headers, "content-length")
                self._keep_alive = "close" not in conn and head.http_version == "1.1" and bool(framed)
                return head
            if isinstance(ev, h11.Data):
                return bytes(ev.data)
            if isinstance(ev, h11.EndOfMessage):
                return END
            if isinstance(ev, h11.ConnectionClosed):
                raise RemoteProtocolError("the server closed the connection without a response")

    @property
    def reusable(self) -> bool:
        """Whether another request may follow on this connection (keep-alive)."""
        h = self._h11
        return self._keep_alive and h.our_state is h11.DONE and h.their_state is h11.DONE

    def start_next_cycle(self) -> None:
        self._h11.start_next_cycle()
