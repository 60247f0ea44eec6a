"""Serving a directory: :class:`StaticFiles`, a handler for any of the servers.

GET and HEAD (405 with ``Allow`` otherwise); content types from
:mod:`mimetypes`; ``Last-Modified`` and ``If-Modified-Since`` (304); single
byte ranges (RFC 9110 §14: 206 with ``Content-Range``, 416 with
``Content-Range: bytes */SIZE`` when unsatisfiable; a request for several
ranges gets the whole file with 200, which §14.2 allows; ``If-Range`` with a
date is honoured); a directory gets its ``index.html`` or a listing, and a
directory's URL without the final slash a 301 to it.

**No path outside the root.**  The request path is percent-decoded, split on
"/" and rebuilt from its segments, refusing "..", NUL and backslashes; then
the real path (symbolic links resolved) must still lie under the real root.
Anything else is a 404, so nothing reveals what exists outside.
"""

from __future__ import annotations

import email.utils
import html
import mimetypes
import os
import stat
from urllib.parse import quote

from ._message import FileBody, Request, Response

__all__ = ["StaticFiles", "parse_range"]


def parse_range(value: str, size: int) -> tuple[int, int] | str | None:
    """The one byte range ``value`` (a Range header) selects in a file of ``size`` bytes,
    as (first, last) inclusive; None to ignore the header (malformed or several ranges:
    the whole file is sent); "unsatisfiable" for 416."""
    unit, _, spec = value.partition("=")
    if unit.strip().lower() != "bytes" or not spec or "," in spec:
        return None
    first_s, dash, last_s = spec.strip().partition("-")
    if not dash:
        return None
    first_s, last_s = first_s.strip(), last_s.strip()
    if not (first_s.isdigit() or first_s == "") or not (last_s.isdigit() or last_s == ""):
        return None
    if first_s == "":
        if last_s == "":
            return None
        suffix = int(last_s)  # RFC 9110 §14.1.2: the last N bytes
        if suffix == 0:
            return "unsatisfiable"
        return (max(0, size - suffix), size - 1) if size else "unsatisfiable"
    first = int(first_s)
    if last_s and int(last_s) < first:
        return None  # invalid: ignored (§14.1.1)
    if first >= size:
        return "unsatisfiable"
    return first, min(int(last_s), size - 1) if last_s else size - 1


class StaticFiles:
    """``handler(request) -> Response`` serving the files under ``root``."""

    def __init__(self, root: str | os.PathLike[str], *, index: str = "index.html", listing: bool = True) -> None:
        self.root = os.path.realpath(root)
        if not os.path.isdir(self.root):
            raise NotADirectoryError(f"{root}: not a directory")
        self.index = index
        self.listing = listing

    def resolve(self, url_path: str) -> str | None:
        """The real file-system path for ``url_path`` (decoded), or None if it is not under the root."""
        parts = []
        for seg in url_path.split("/"):
            if seg in ("", "."):
                continue
            if seg == ".." or "\0" in seg or "\\" in seg:
                return None
            parts.append(seg)
        real = os.path.realpath(os.path.join(self.root, *parts))
        if real != self.root and not real.startswith(self.root + os.sep):
            return None  # a symbolic link out of the root
        return real

    def __call__(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return Response.text(405, "only GET and HEAD", [("allow", "GET, HEAD")])
        url_path = request.path
        path = self.resolve(url_path)
        if path is None:
            return Response.text(404, "not found")
        try:
            st = os.stat(path)
        except OSError:
            return Response.text(404, "not found")
        if stat.S_ISDIR(st.st_mode):
            if not url_path.endswith("/"):
                return Response(301, [("location", quote(url_path + "/", safe="/")), ("content-length", "0")])
            index = os.path.join(path, self.index)
            if os.path.isfile(index):
                path, st = index, os.stat(index)
            elif self.listing:
                return self._listing(url_path, path)
            else:
                return Response.text(404, "not found")
        if not stat.S_ISREG(st.st_mode):
            return Response.text(404, "not found")
        if not os.access(path, os.R_OK):
            return Response.text(403, "forbidden")
        return self._file(request, path, st)

    def _file(self, request: Request, path: str, st: os.stat_result) -> Response:
        size = st.st_size
        mtime = int(st.st_mtime)
        last_modified = email.utils.formatdate(mtime, usegmt=True)
        ctype, encoding = mimetypes.guess_type(path)
        if encoding is not None:  # .gz and friends: the bytes as they are (RFC 9110 §8.4)
            ctype = {"gzip": "application/gzip", "bzip2": "application/x-bzip2",
                     "xz": "application/x-xz"}.get(encoding, "application/octet-stream")
        ctype = ctype or "application/octet-stream"
        if ctype.startswith("text/") and "charset" not in ctype:
            ctype += "; charset=utf-8"
        headers = [("content-type", ctype), ("last-modified", last_modified), ("accept-ranges", "bytes")]
        ims = request.header("if-modified-since")
        if ims is not None and request.header("range") is None:
            since = _http_date(ims)
            if since is not None and mtime <= since:
                return Response(304, headers[1:])
        rng = request.header("range")
        if rng is not None and request.method == "GET":
            if_range = request.header("if-range")
            if if_range is not None and _http_date(if_range) != mtime:
                rng = None  # RFC 9110 §13.1.5: the file changed; send all of it
        if rng is not None:
            r = parse_range(rng, size)
            if r == "unsatisfiable":
                return Response.text(416, "range not satisfiable", [("content-range", f"bytes */{size}")])
            if isinstance(r, tuple):
                first, last = r
                headers.append(("content-range", f"bytes {first}-{last}/{size}"))
                return Response(206, headers, FileBody(path, first, last - first + 1))
        return Response(200, headers, FileBody(path, 0, size))

    def _listing(self, url_path: str, path: str) -> Response:
        try:
            names = sorted(os.listdir(path))
        except OSError:
            return Response.text(403, "forbidden")
        title = html.escape(url_path)
        rows = []
        for name in names:
            full = os.path.join(path, name)
            slash = "/" if os.path.isdir(full) else ""
            rows.append(f'<li><a href="{quote(name)}{slash}">{html.escape(name)}{slash}</a></li>')
        body = (f"<!doctype html>\n<title>Index of {title}</title>\n<h1>Index of {title}</h1>\n<ul>\n"
                + "\n".join(rows) + "\n</ul>\n").encode()
        return Response(200, [("content-type", "text/html; charset=utf-8")], body)


def _http_date(value: str) -> int | None:
    try:
        dt = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return int(dt.timestamp())
