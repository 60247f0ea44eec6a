"""HTTP/1.1 over seqs TCP, built on h11 (the optional extra: ``pip install 'seqs[http]'``;
the stack itself needs nothing).

Servers (a handler is ``handler(request) -> Response``):

* :class:`HttpServer` — event-driven, inside the stack's event processing: no
  thread or task per connection; runs under ``seqs up --http``, on a
  :class:`~seqs.runtime.Host` (create it under ``host.lock``) and on the virtual
  network of ``seqs demo``.  Handlers must not block.
* :func:`serve` — on an :class:`~seqs.runtime.AsyncHost`; handlers may be async.
* :class:`StaticFiles` — the handler that serves a directory (ranges, HEAD, types).

Clients: :class:`HttpClient` (blocking, on a ``Host``), :class:`AsyncHttpClient`
(on an ``AsyncHost``), :class:`HttpFetch` (event-driven, on a bare ``Stack``).
The per-connection protocol, without I/O, is :class:`ServerConnection` and
:class:`ClientConnection`.

What is not here: TLS (so no https), HTTP/2, request bodies streamed to a
handler (a request body is read whole, up to ``ServerLimits.max_body_bytes``),
multipart range responses (several ranges get the whole file with 200),
cookies, authentication, compression.
"""

from __future__ import annotations

try:
    import h11 as _h11  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the installation
    raise ImportError("seqs.http needs h11: pip install 'seqs[http]'") from e

from ._aio import AsyncHttpServer, serve
from ._client import URL, AsyncHttpClient, AsyncHttpResponse, HttpClient, HttpFetch, HttpResponse, parse_url
from ._message import (
    Body,
    FileBody,
    Headers,
    HttpError,
    LocalProtocolError,
    RemoteProtocolError,
    Request,
    Response,
    StatusError,
    TooManyRedirects,
)
from ._protocol import ClientConnection, ResponseHead, ServerConnection, ServerLimits
from ._server import Handler, HttpServer
from ._static import StaticFiles, parse_range

__all__ = [
    "URL",
    "AsyncHttpClient",
    "AsyncHttpResponse",
    "AsyncHttpServer",
    "Body",
    "ClientConnection",
    "FileBody",
    "Handler",
    "Headers",
    "HttpClient",
    "HttpError",
    "HttpFetch",
    "HttpResponse",
    "HttpServer",
    "LocalProtocolError",
    "RemoteProtocolError",
    "Request",
    "Response",
    "ResponseHead",
    "ServerConnection",
    "ServerLimits",
    "StaticFiles",
    "StatusError",
    "TooManyRedirects",
    "parse_range",
    "parse_url",
    "serve",
]
