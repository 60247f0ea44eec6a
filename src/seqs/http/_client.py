"""HTTP/1.1 clients over seqs TCP: blocking (:class:`HttpClient` on a
:class:`~seqs.runtime.Host`), asyncio (:class:`AsyncHttpClient` on an
:class:`~seqs.runtime.AsyncHost`) and event-driven (:class:`HttpFetch` on a
bare :class:`~seqs.stack.Stack`, sans-IO: the demo and the virtual-time
tests use it).  All three speak through
:class:`~seqs.http._protocol.ClientConnection` (h11), so framing —
Content-Length, chunked, or delimited by the server's close — is h11's.

    client = HttpClient(host)
    r = client.get("http://files.test/index.html")          # names through host.resolve()
    r.raise_for_status(); print(r.status, len(r.content))
    client.download("http://10.0.0.1/big.iso", "big.iso", progress=lambda got, total: ...)

The blocking and asyncio clients keep finished connections for reuse
(keep-alive), a few per server address and port; a request that fails on a
reused connection before any byte of the response came back is retried once
on a new one, for idempotent methods (the server may have closed it while it
sat idle, RFC 9112 §9.3.1).  Redirects (301, 302, 303, 307, 308) are followed
up to ``max_redirects`` (5): 303, and 301/302 after a POST, become GET without
the body, as browsers do (RFC 9110 §15.4).  ``timeout`` bounds the connect and
each wait for data, like a socket timeout; it is not a deadline for a whole
download.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from ..stack import Stack
from ..tcp.connection import TcpConnection
from ..wire import ipv4 as wip
from ._message import Headers, HttpError, RemoteProtocolError, StatusError, TooManyRedirects, get_header
from ._protocol import END, ClientConnection, ResponseHead

if TYPE_CHECKING:
    from ..runtime.aio import AsyncHost
    from ..runtime.host import Host
    from ..runtime.tcp import TCPSocket

__all__ = ["URL", "AsyncHttpClient", "AsyncHttpResponse", "HttpClient", "HttpFetch", "HttpResponse", "parse_url"]

USER_AGENT = "seqs/0.1"
_RECV = 1 << 20
_REDIRECTS = (301, 302, 303, 307, 308)
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
_DEFAULT = object()


@dataclass(frozen=True, slots=True)
class URL:
    host: str
    port: int
    target: str

    @property
    def authority(self) -> str:
        """The Host header's value (RFC 9110 §7.2)."""
        return self.host if self.port == 80 else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"http://{self.authority}{self.target}"


def parse_url(url: str) -> URL:
    """An ``http://`` URL's parts; ValueError for anything else (there is no TLS in seqs)."""
    u = urlsplit(url)
    if u.scheme.lower() == "https":
        raise ValueError(f"{url}: https is not supported (seqs has no TLS)")
    if u.scheme.lower() != "http":
        raise ValueError(f"{url}: not an http:// URL")
    if not u.hostname:
        raise ValueError(f"{url}: no host")
    try:
        port = u.port or 80
    except ValueError:
        raise ValueError(f"{url}: bad port") from None
    target = (u.path or "/") + (f"?{u.query}" if u.query else "")
    return URL(u.hostname, port, target)


def is_address(name: str) -> bool:
    try:
        wip.aton(name)
    except (ValueError, OSError):
        return False
    return True


def _request_headers(url: URL, extra: Headers, body: bytes | None) -> Headers:
    hs: Headers = [("host", url.authority), ("user-agent", USER_AGENT), ("accept", "*/*")]
    given = {k.lower() for k, _ in extra}
    hs = [(k, v) for k, v in hs if k not in given] + [(k.lower(), v) for k, v in extra]
    if body is not None and "content-length" not in given:
        hs.append(("content-length", str(len(body))))
    return hs


def _redirect(method: str, status: int, body: bytes | None) -> tuple[str, bytes | None]:
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        return "GET", None
    return method, body


# -- blocking ----------------------------------------------------------------------------------


class HttpResponse:
    """A response whose body is read on demand (``iter_bytes``, ``read``) or already
    read (``content``, after :meth:`HttpClient.request`)."""

    def __init__(self, client: HttpClient, key: tuple[str, int], sock: TCPSocket, conn: ClientConnection,
                 head: ResponseHead, url: str, method: str) -> None:
        self._client = client
        self._key = key
        self._sock: TCPSocket | None = sock
        self._conn = conn
        self.status = head.status
        self.reason = head.reason
        self.headers = head.headers
        self.http_version = head.http_version
        self.url = url
        self.method = method
        self._content: bytes | None = None
        #: body bytes received so far
        self.received = 0

    def header(self, name: str, default: str | None = None) -> str | None:
        return get_header(self.headers, name, default)

    @property
    def length(self) -> int | None:
        """The Content-Length, if the server sent one."""
        v = self.header("content-length")
        return int(v) if v is not None and v.isdigit() else None

    def iter_bytes(self) -> Iterator[bytes]:
        """The body, in the pieces it arrives in (up to 1 MB each)."""
        if self._content is not None:
            if self._content:
                yield self._content
            return
        sock, conn = self._sock, self._conn
        if sock is None:
            raise HttpError("the response was closed")
        try:
            while True:
                ev = conn.next_event()
                if ev is None:
                    conn.receive_data(sock.recv(_RECV))
                elif ev is END:
                    break
                elif isinstance(ev, bytes):
                    self.received += len(ev)
                    yield ev
        except BaseException:
            self.close()
            raise
        self._release()

    def read(self) -> bytes:
        if self._content is None:
            self._content = b"".join(self.iter_bytes())
        return self._content

    @property
    def content(self) -> bytes:
        return self.read()

    @property
    def text(self) -> str:
        return self.read().decode("utf-8", "replace")

    def raise_for_status(self) -> HttpResponse:
        if not 200 <= self.status < 300:
            raise StatusError(self.status, self.reason, self.url)
        return self

    def _release(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            self._client._checkin(self._key, sock, self._conn)

    def close(self) -> None:
        """Give up on the rest of the body (the connection is not reused)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.abort() if sock.connection.unread else sock.close()

    def __enter__(self) -> HttpResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<HttpResponse {self.status} {self.reason} {self.url}>"


class HttpClient:
    """A blocking HTTP/1.1 client on a :class:`~seqs.runtime.Host`.  See the module
    docstring.  One thread at a time; ``close()`` closes the pooled connections."""

    def __init__(self, host: Host, *, timeout: float | None = 30.0, max_redirects: int = 5,
                 max_idle_per_server: int = 4, headers: Headers | None = None) -> None:
        self.host = host
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.max_idle = max_idle_per_server
        self.headers = list(headers or [])
        self._pool: dict[tuple[str, int], list[tuple[TCPSocket, ClientConnection]]] = {}
        #: TCP connections opened (the rest of the requests reused one)
        self.connections_opened = 0

    def get(self, url: str, **kw: object) -> HttpResponse:
        return self.request("GET", url, **kw)  # type: ignore[arg-type]

    def head(self, url: str, **kw: object) -> HttpResponse:
        return self.request("HEAD", url, **kw)  # type: ignore[arg-type]

    def post(self, url: str, body: bytes, **kw: object) -> HttpResponse:
        return self.request("POST", url, body=body, **kw)  # type: ignore[arg-type]

    def request(self, method: str, url: str, *, headers: Headers | None = None, body: bytes | None = None,
                timeout: float | object | None = _DEFAULT, follow_redirects: bool = True) -> HttpResponse:
        """Send a request and read the whole response body."""
        r = self.stream(method, url, headers=headers, body=body, timeout=timeout,
                        follow_redirects=follow_redirects)
        r.read()
        return r

    def stream(self, method: str, url: str, *, headers: Headers | None = None, body: bytes | None = None,
               timeout: float | object | None = _DEFAULT, follow_redirects: bool = True) -> HttpResponse:
        """Send a request; the response's body is left to read (use it as a context manager)."""
        t = self.timeout if timeout is _DEFAULT else timeout
        assert t is None or isinstance(t, (int, float))
        method = method.upper()
        for _ in range(self.max_redirects + 1):
            r = self._send(method, url, headers or [], body, t)
            location = r.header("location")
            if not (follow_redirects and r.status in _REDIRECTS and location):
                return r
            with contextlib.suppress(OSError, HttpError):
                if (r.length or 0) <= 65536:
                    r.read()  # a small body: read it so the connection can be reused
            r.close()
            url = urljoin(url, location)
            method, body = _redirect(method, r.status, body)
        raise TooManyRedirects(f"{url}: more than {self.max_redirects} redirects")

    def download(self, url: str, dest: str | os.PathLike[str] | IO[bytes], *,
                 progress: Callable[[int, int | None], None] | None = None,
                 timeout: float | object | None = _DEFAULT) -> HttpResponse:
        """GET ``url`` into ``dest`` (a path or a binary file) as it arrives; raise
        :class:`StatusError` for a status other than 2xx (nothing is written then).
        ``progress(received, total_or_None)`` is called after each piece."""
        with self.stream("GET", url, timeout=timeout) as r:
            r.raise_for_status()
            total = r.length
            f = open(dest, "wb") if isinstance(dest, (str, os.PathLike)) else dest  # noqa: SIM115
            try:
                for piece in r.iter_bytes():
                    f.write(piece)
                    if progress is not None:
                        progress(r.received, total)
            finally:
                if f is not dest:
                    f.close()
            return r

    def _resolve(self, name: str, timeout: float | None) -> str:
        if is_address(name):
            return name
        addrs = self.host.resolve(name, "A", timeout=timeout)
        if not addrs:
            raise OSError(f"{name}: the name has no IPv4 address")
        return addrs[0]

    def _send(self, method: str, url: str, extra: Headers, body: bytes | None,
              timeout: float | None) -> HttpResponse:
        u = parse_url(url)
        ip = self._resolve(u.host, timeout)
        key = (ip, u.port)
        headers = _request_headers(u, self.headers + extra, body)
        while True:
            pooled = self._checkout(key)
            if pooled is None:
                sock = self.host.create_connection(key, timeout)
                self.connections_opened += 1
                conn = ClientConnection()
            else:
                sock, conn = pooled
                sock.settimeout(timeout)
            got = False  # any byte of a response
            try:
                for piece in conn.request(method, u.target, headers, body):
                    sock.sendall(piece)
                while not isinstance(ev := conn.next_event(), ResponseHead):
                    if ev is None:
                        data = sock.recv(_RECV)
                        got = got or bool(data)
                        conn.receive_data(data)
            except (OSError, RemoteProtocolError):
                sock.abort()
                if pooled is not None and method in _IDEMPOTENT and not got:
                    continue  # the server closed the idle connection: once more, on a new one
                raise
            return HttpResponse(self, key, sock, conn, ev, url, method)

    def _checkout(self, key: tuple[str, int]) -> tuple[TCPSocket, ClientConnection] | None:
        idle = self._pool.get(key)
        while idle:
            sock, conn = idle.pop()
            c = sock.connection
            if c.established and not c.closed and not c.peer_eof and not c.unread and c.error is None:
                return sock, conn
            sock.close()  # the server closed it while it waited
        return None

    def _checkin(self, key: tuple[str, int], sock: TCPSocket, conn: ClientConnection) -> None:
        idle = self._pool.setdefault(key, [])
        if conn.reusable and len(idle) < self.max_idle:
            conn.start_next_cycle()
            idle.append((sock, conn))
        else:
            sock.close()

    def close(self) -> None:
        for idle in self._pool.values():
            for sock, _ in idle:
                sock.close()
        self._pool.clear()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- asyncio -----------------------------------------------------------------------------------


class AsyncHttpResponse:
    """:class:`HttpResponse`'s asyncio twin."""

    def __init__(self, client: AsyncHttpClient, key: tuple[str, int], reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, conn: ClientConnection, head: ResponseHead, url: str) -> None:
        self._client = client
        self._key = key
        self._rw: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = (reader, writer)
        self._conn = conn
        self.status = head.status
        self.reason = head.reason
        self.headers = head.headers
        self.http_version = head.http_version
        self.url = url
        self._content: bytes | None = None
        self.received = 0

    def header(self, name: str, default: str | None = None) -> str | None:
        return get_header(self.headers, name, default)

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        if self._content is not None:
            if self._content:
                yield self._content
            return
        if self._rw is None:
            raise HttpError("the response was closed")
        reader = self._rw[0]
        conn = self._conn
        timeout = self._client.timeout
        try:
            while True:
                ev = conn.next_event()
                if ev is None:
                    conn.receive_data(await asyncio.wait_for(reader.read(_RECV), timeout))
                elif ev is END:
                    break
                elif isinstance(ev, bytes):
                    self.received += len(ev)
                    yield ev
        except BaseException:
            self.close()
            raise
        rw, self._rw = self._rw, None
        if rw is not None:
            self._client._checkin(self._key, rw, conn)

    async def read(self) -> bytes:
        if self._content is None:
            self._content = b"".join([piece async for piece in self.iter_bytes()])
        return self._content

    def raise_for_status(self) -> AsyncHttpResponse:
        if not 200 <= self.status < 300:
            raise StatusError(self.status, self.reason, self.url)
        return self

    def close(self) -> None:
        rw, self._rw = self._rw, None
        if rw is not None:
            rw[1].transport.abort()


class AsyncHttpClient:
    """An asyncio HTTP/1.1 client on an :class:`~seqs.runtime.AsyncHost` (same rules as
    :class:`HttpClient`)."""

    def __init__(self, host: AsyncHost, *, timeout: float | None = 30.0, max_redirects: int = 5,
                 max_idle_per_server: int = 4, headers: Headers | None = None) -> None:
        self.host = host
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.max_idle = max_idle_per_server
        self.headers = list(headers or [])
        self._pool: dict[tuple[str, int], list[tuple[asyncio.StreamReader, asyncio.StreamWriter,
                                                     ClientConnection]]] = {}
        self.connections_opened = 0

    async def get(self, url: str, **kw: object) -> AsyncHttpResponse:
        return await self.request("GET", url, **kw)  # type: ignore[arg-type]

    async def request(self, method: str, url: str, *, headers: Headers | None = None, body: bytes | None = None,
                      follow_redirects: bool = True) -> AsyncHttpResponse:
        r = await self.stream(method, url, headers=headers, body=body, follow_redirects=follow_redirects)
        await r.read()
        return r

    async def stream(self, method: str, url: str, *, headers: Headers | None = None, body: bytes | None = None,
                     follow_redirects: bool = True) -> AsyncHttpResponse:
        method = method.upper()
        for _ in range(self.max_redirects + 1):
            r = await self._send(method, url, headers or [], body)
            location = r.header("location")
            if not (follow_redirects and r.status in _REDIRECTS and location):
                return r
            r.close()
            url = urljoin(url, location)
            method, body = _redirect(method, r.status, body)
        raise TooManyRedirects(f"{url}: more than {self.max_redirects} redirects")

    async def _send(self, method: str, url: str, extra: Headers, body: bytes | None) -> AsyncHttpResponse:
        u = parse_url(url)
        ip = u.host
        if not is_address(ip):
            addrs = await asyncio.wait_for(self.host.resolve(u.host), self.timeout)
            if not addrs:
                raise OSError(f"{u.host}: the name has no IPv4 address")
            ip = addrs[0]
        key = (ip, u.port)
        headers = _request_headers(u, self.headers + extra, body)
        while True:
            pooled = self._checkout(key)
            if pooled is None:
                reader, writer = await asyncio.wait_for(self.host.open_connection(ip, u.port), self.timeout)
                self.connections_opened += 1
                conn = ClientConnection()
            else:
                reader, writer, conn = pooled
            got = False
            try:
                for piece in conn.request(method, u.target, headers, body):
                    writer.write(piece)
                await asyncio.wait_for(writer.drain(), self.timeout)
                while True:
                    ev = conn.next_event()
                    if isinstance(ev, ResponseHead):
                        return AsyncHttpResponse(self, key, reader, writer, conn, ev, url)
                    if ev is None:
                        data = await asyncio.wait_for(reader.read(_RECV), self.timeout)
                        got = got or bool(data)
                        conn.receive_data(data)
            except (OSError, RemoteProtocolError):
                writer.transport.abort()
                if pooled is not None and method in _IDEMPOTENT and not got:
                    continue
                raise

    def _checkout(self, key: tuple[str, int]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter,
                                                       ClientConnection] | None:
        idle = self._pool.get(key)
        while idle:
            reader, writer, conn = idle.pop()
            if not writer.transport.is_closing() and not reader.at_eof():
                return reader, writer, conn
            writer.transport.abort()
        return None

    def _checkin(self, key: tuple[str, int], rw: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                 conn: ClientConnection) -> None:
        idle = self._pool.setdefault(key, [])
        if conn.reusable and len(idle) < self.max_idle:
            conn.start_next_cycle()
            idle.append((rw[0], rw[1], conn))
        else:
            rw[1].close()

    async def aclose(self) -> None:
        for idle in self._pool.values():
            for _, writer, _ in idle:
                writer.close()
        self._pool.clear()


# -- event-driven (sans-IO) --------------------------------------------------------------------


class HttpFetch:
    """One request over a new TCP connection of ``stack``, driven by the stack's events
    (no thread, no clock): whoever drives the stack drives the fetch.  ``url`` must
    name an address (resolve names first, e.g. with :class:`seqs.services.dns.Resolver`).

    Body pieces go to ``on_data`` as they arrive, or into :attr:`body`.  When
    :attr:`done`, :attr:`head` holds the response and :attr:`error` what went
    wrong, if anything; ``on_done(fetch)`` is called then."""

    def __init__(self, stack: Stack, url: str, *, method: str = "GET", headers: Headers | None = None,
                 body: bytes | None = None, on_data: Callable[[bytes], None] | None = None,
                 on_done: Callable[[HttpFetch], None] | None = None) -> None:
        u = parse_url(url)
        if not is_address(u.host):
            raise ValueError(f"{url}: HttpFetch needs an address (resolve {u.host!r} first)")
        self.url = url
        self.head: ResponseHead | None = None
        self.body = bytearray()
        self.received = 0
        self.done = False
        self.error: Exception | None = None
        self._on_data = on_data
        self._on_done = on_done
        self._conn = ClientConnection()
        self._out: deque[memoryview] = deque(
            memoryview(p) for p in self._conn.request(method.upper(), u.target,
                                                      _request_headers(u, headers or [], body), body) if p)
        self.tcp: TcpConnection = stack.tcp_connect((u.host, u.port))
        self.tcp.on_event = self._step

    def _step(self) -> None:
        if self.done:
            return
        tcp = self.tcp
        try:
            if tcp.connecting:
                return
            while self._out and tcp.send_space > 0:
                n = tcp.send(self._out[0])
                if n == len(self._out[0]):
                    self._out.popleft()
                else:
                    self._out[0] = self._out[0][n:]
            while (data := tcp.recv()) is not None:
                self._conn.receive_data(data)
                while (ev := self._conn.next_event()) is not None:
                    if isinstance(ev, ResponseHead):
                        self.head = ev
                    elif isinstance(ev, bytes):
                        self.received += len(ev)
                        if self._on_data is not None:
                            self._on_data(ev)
                        else:
                            self.body += ev
                    elif ev is END:
                        self._finish(None)
                        return
                if not data:
                    break
            if tcp.closed:
                raise ConnectionAbortedError("the connection closed before the response was complete")
        except (OSError, HttpError) as e:
            self._finish(e)

    def _finish(self, error: Exception | None) -> None:
        self.done = True
        self.error = error
        self.tcp.on_event = None
        if error is None:
            self.tcp.close()
        else:
            self.tcp.abort()
        if self._on_done is not None:
            self._on_done(self)

    def cancel(self) -> None:
        if not self.done:
            self._finish(TimeoutError("cancelled"))
