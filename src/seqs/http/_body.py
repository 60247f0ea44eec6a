"""Response bodies as pull sources: the server asks for at most N bytes when the
connection's send buffer has room for N, so a body is never held whole.

A file is read with ``preadv`` into one scratch buffer the server owns and
reuses for every connection and request (the memory the Go seqs' HTTP helpers
reuse between requests): the view a :class:`FileSource` returns is valid only
until the next read, which is fine because the TCP send buffer copies it at
once.  A view that could not be sent whole is copied by the caller before the
scratch buffer is used again (see ``ServerConnection.consumed``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, Iterable, Iterator
from typing import Protocol

from .._typing import BytesLike
from ._message import Body, FileBody

__all__ = ["BodySource", "BytesSource", "FileSource", "IterSource", "open_body"]

#: the most one read of a file takes (and the scratch buffer's size)
CHUNK = 256 * 1024


class BodySource(Protocol):
    #: the body's length, when known in advance (it becomes Content-Length)
    length: int | None

    def read(self, max_bytes: int) -> BytesLike:
        """At most ``max_bytes`` (> 0) of the body; empty at its end."""

    def close(self) -> None: ...


class BytesSource:
    __slots__ = ("_off", "_view", "length")

    def __init__(self, data: BytesLike) -> None:
        self._view = memoryview(data).cast("B")
        self._off = 0
        self.length: int | None = len(self._view)

    def read(self, max_bytes: int) -> BytesLike:
        off = self._off
        piece = self._view[off : off + max_bytes]
        self._off = off + len(piece)
        return piece

    def close(self) -> None:
        self._off = len(self._view)


class IterSource:
    """Chunks from an iterator, cut to the size asked for (the rest kept for the next read).

    The iterator runs in the server's thread: it must produce its next chunk at once
    (an iterator that has nothing yet cannot wait; use the asyncio server for that)."""

    __slots__ = ("_it", "_rest", "length")

    def __init__(self, chunks: Iterable[bytes], length: int | None = None) -> None:
        self._it: Iterator[bytes] | None = iter(chunks)
        self._rest = memoryview(b"")
        self.length = length

    def read(self, max_bytes: int) -> BytesLike:
        while not self._rest:
            if self._it is None:
                return b""
            try:
                chunk = next(self._it)
            except StopIteration:
                self._it = None
                return b""
            self._rest = memoryview(chunk).cast("B")
        piece = self._rest[:max_bytes]
        self._rest = self._rest[len(piece):]
        return piece

    def close(self) -> None:
        it, self._it = self._it, None
        close = getattr(it, "close", None)  # a generator's finally blocks run now
        if close is not None:
            close()


class FileSource:
    """A region of a file, read into the server's scratch buffer as the connection takes it."""

    __slots__ = ("_fd", "_left", "_off", "_scratch", "length")

    def __init__(self, body: FileBody, scratch: bytearray | None = None) -> None:
        fd = os.open(body.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            size = os.fstat(fd).st_size
        except OSError:
            os.close(fd)
            raise
        offset = max(0, min(body.offset, size))
        length = size - offset if body.length is None else max(0, min(body.length, size - offset))
        self._fd: int | None = fd
        self._off = offset
        self._left = length
        self._scratch = memoryview(scratch if scratch is not None else bytearray(CHUNK))
        self.length: int | None = length

    def read(self, max_bytes: int) -> BytesLike:
        fd = self._fd
        n = min(max_bytes, self._left, len(self._scratch))
        if fd is None or n <= 0:
            return b""
        view = self._scratch[:n]
        got = os.preadv(fd, [view], self._off)
        if got <= 0:
            # The file shrank under us: the promised length cannot be kept.
            raise OSError(f"file ended {self._left} bytes early")
        self._off += got
        self._left -= got
        return view[:got]

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def open_body(body: Body, scratch: bytearray | None = None, length: int | None = None) -> BodySource:
    """The source for a handler's body (not for async iterables: the asyncio server
    reads those itself).  ``length`` is a Content-Length the handler set."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        return BytesSource(body)
    if isinstance(body, FileBody):
        return FileSource(body, scratch)
    if isinstance(body, AsyncIterable):
        raise TypeError("an async iterable body needs the asyncio server")
    return IterSource(body, length)
