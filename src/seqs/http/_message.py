"""HTTP messages as values: :class:`Request`, :class:`Response`, the body kinds a
response may carry, and the errors, split by whose fault they are (after h11).

Header names are kept lower-case (HTTP field names are case-insensitive,
RFC 9110 §5.1) and values as text (Latin-1, the bytes HTTP/1.1 allows,
RFC 9110 §5.5); order and repetition are preserved, as a list of pairs.
"""

from __future__ import annotations

import http
from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass, field
from typing import TypeAlias
from urllib.parse import unquote

from ..errors import SeqsError

__all__ = [
    "Body",
    "FileBody",
    "Headers",
    "HttpError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "Request",
    "Response",
    "StatusError",
    "TooManyRedirects",
    "get_header",
    "reason_phrase",
]

Headers: TypeAlias = list[tuple[str, str]]


class HttpError(SeqsError):
    """Base class of the HTTP layer's own errors (network failures stay ``OSError``s)."""


class RemoteProtocolError(HttpError):
    """The peer broke HTTP/1.1 (malformed message, bad framing, oversized head).
    The only error hostile bytes from the network can raise."""


class LocalProtocolError(HttpError):
    """Our side asked for something HTTP/1.1 cannot do (a body on a 204, ...)."""


class TooManyRedirects(HttpError):
    """A client request was redirected more often than its limit allows."""


class StatusError(HttpError):
    """A response had a status the caller does not accept (see ``HttpResponse.raise_for_status``)."""

    def __init__(self, status: int, reason: str, url: str) -> None:
        super().__init__(f"{url}: {status} {reason}".rstrip())
        self.status = status
        self.reason = reason
        self.url = url


def reason_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def get_header(headers: Headers, name: str, default: str | None = None) -> str | None:
    """The first value of header ``name`` (case-insensitive), or ``default``."""
    name = name.lower()
    for k, v in headers:
        if k == name:
            return v
    return default


@dataclass(frozen=True, slots=True)
class FileBody:
    """A response body read from a file as the connection takes it (never held whole
    in memory): ``length`` bytes from ``offset`` (None: to the end of the file)."""

    path: str
    offset: int = 0
    length: int | None = None


#: What a :class:`Response` may carry: bytes, a file region, or an iterable of
#: byte chunks (sync, or async on the asyncio server) produced as the client reads.
Body: TypeAlias = bytes | bytearray | memoryview | FileBody | Iterable[bytes] | AsyncIterable[bytes]


@dataclass(slots=True)
class Request:
    """A request as the server hands it to a handler, body read whole (bounded by
    the server's ``max_body_bytes``)."""

    method: str
    target: str
    headers: Headers = field(default_factory=list)
    body: bytes = b""
    http_version: str = "1.1"
    #: the client's address and port
    peer: tuple[str, int] | None = None

    def header(self, name: str, default: str | None = None) -> str | None:
        return get_header(self.headers, name, default)

    @property
    def path(self) -> str:
        """The target's path, percent-decoded (RFC 3986 §2.1), without the query."""
        raw = self.target.split("?", 1)[0].split("#", 1)[0]
        if raw.startswith(("http://", "https://")):  # absolute-form (RFC 9112 §3.2.2)
            rest = raw.split("://", 1)[1]
            raw = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
        return unquote(raw, errors="surrogateescape")

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1].split("#", 1)[0] if "?" in self.target else ""


@dataclass(slots=True)
class Response:
    """What a handler returns.  Framing is the server's: a bytes body gets a
    ``Content-Length``, a :class:`FileBody` its length, an iterable goes chunked
    (or close-delimited to an HTTP/1.0 client) unless the handler set
    ``Content-Length`` itself."""

    status: int = 200
    headers: Headers = field(default_factory=list)
    body: Body = b""
    reason: str = ""

    @classmethod
    def text(cls, status: int, text: str, headers: Headers | None = None) -> Response:
        """A small ``text/plain`` response (error pages and the like)."""
        return cls(status, [("content-type", "text/plain; charset=utf-8"), *(headers or [])],
                   (text if text.endswith("\n") else text + "\n").encode())

    def header(self, name: str, default: str | None = None) -> str | None:
        return get_header(self.headers, name, default)
