"""Byte streams both ends of a TCP transfer can regenerate, so a receiver proves
with one sha256 that it got every byte, once, in order.

``stream(n, seed)`` is pseudo-random data: a 1 MiB random block, rotated by a
different amount for each MiB so that a misplaced block changes the digest.
``chargen_digest(n)`` is the digest of the first ``n`` bytes of the RFC 864
pattern that seqs' chargen service sends.

Imported by the test module and by the programs that run inside the namespace
(``kernel_peer.py``, ``seqs_client.py``), which find it next to themselves.
"""

from __future__ import annotations

import functools
import hashlib
import random
import socket
import threading
from collections.abc import Iterator
from typing import Protocol

from seqs.services.tcp_basic import chargen_pattern

BLOCK = 1 << 20
_ROTATE = 7919  # prime: every block starts somewhere else in the base block
_CHARGEN_PERIOD = 74 * 95  # RFC 864: 95 lines of 72 characters plus CRLF


@functools.cache
def _base(seed: int) -> bytes:
    b = random.Random(seed).randbytes(BLOCK)
    return b + b


def stream(n: int, seed: int = 0) -> Iterator[memoryview]:
    """``n`` bytes in pieces of at most 1 MiB."""
    base = memoryview(_base(seed))
    i = 0
    while n > 0:
        off = (i * _ROTATE) % BLOCK
        k = min(n, BLOCK)
        yield base[off : off + k]
        n -= k
        i += 1


@functools.cache
def stream_digest(n: int, seed: int = 0) -> str:
    h = hashlib.sha256()
    for piece in stream(n, seed):
        h.update(piece)
    return h.hexdigest()


def chargen(n: int) -> Iterator[bytes]:
    """The first ``n`` bytes of the chargen pattern, in pieces of about 1 MiB."""
    period = chargen_pattern(_CHARGEN_PERIOD)
    piece = period * (BLOCK // len(period))  # whole periods, so pieces join seamlessly
    while n > 0:
        k = min(n, len(piece))
        yield piece[:k]
        n -= k


@functools.cache
def chargen_digest(n: int) -> str:
    h = hashlib.sha256()
    for piece in chargen(n):
        h.update(piece)
    return h.hexdigest()


class Sink:
    """Counts and hashes what arrives."""

    def __init__(self) -> None:
        self.count = 0
        self._h = hashlib.sha256()

    def write(self, data: bytes | memoryview) -> None:
        self.count += len(data)
        self._h.update(data)

    @property
    def digest(self) -> str:
        return self._h.hexdigest()


class _Writable(Protocol):
    def sendall(self, data: memoryview, /) -> None: ...
    def shutdown(self, how: int, /) -> None: ...


class StreamSender:
    """Sends ``stream(n, seed)`` on a socket (the kernel's, or seqs' socket-like one) from a
    thread, then shuts down writing (FIN), while the caller reads the echo."""

    def __init__(self, sock: _Writable, n: int, seed: int) -> None:
        self._sock, self._n, self._seed = sock, n, seed
        self._errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for piece in stream(self._n, self._seed):
                self._sock.sendall(piece)
            self._sock.shutdown(socket.SHUT_WR)
        except BaseException as e:
            self._errors.append(e)

    def finish(self, timeout: float) -> None:
        """Wait for the sender; raise what it raised, or TimeoutError if it is still sending."""
        self._thread.join(timeout)
        if self._errors:
            raise self._errors[0]
        if self._thread.is_alive():
            raise TimeoutError("sendall still running after the echo ended")
