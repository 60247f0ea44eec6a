"""The classic TCP test services, run inside the stack's event processing:
Echo (RFC 862), Discard (RFC 863) and Character Generator (RFC 864).

Each applies back-pressure the way a careful server does: echo reads only as
much as its send buffer can take, so a client that does not read its echoes
eventually sees a zero window instead of the server buffering without bound.
"""

from __future__ import annotations

from functools import partial

from ..stack import Stack
from ..tcp.connection import TcpConnection

__all__ = ["ChargenService", "DiscardService", "TcpEchoService", "chargen_pattern"]


def chargen_pattern(length: int, start: int = 0) -> bytes:
    """The RFC 864 rotating pattern: 72-character lines of printable ASCII, each
    starting one character later than the one before."""
    chars = bytes(range(32, 127))  # the 95 printable ASCII characters
    out = bytearray()
    line = start
    while len(out) < length:
        i = line % 95
        row = (chars[i:] + chars[:i])[:72] + b"\r\n"
        out += row
        line += 1
    return bytes(out[:length])


class _Service:
    def __init__(self, stack: Stack, port: int, backlog: int = 512) -> None:
        self.stack = stack
        self.listener = stack.tcp_listen(port, backlog=backlog)
        self.listener.on_event = self._on_accept
        self.conns: set[TcpConnection] = set()
        self.accepted = 0
        self.bytes_in = 0
        self.bytes_out = 0

    def _on_accept(self) -> None:
        while (conn := self.listener.accept()) is not None:
            self.accepted += 1
            self.conns.add(conn)
            conn.on_event = partial(self._step, conn)
            self._opened(conn)
            self._step(conn)

    def _opened(self, conn: TcpConnection) -> None:
        pass

    def _step(self, conn: TcpConnection) -> None:
        raise NotImplementedError

    def _done(self, conn: TcpConnection) -> None:
        conn.on_event = None
        self.conns.discard(conn)

    def close(self) -> None:
        self.listener.close()
        for conn in list(self.conns):
            conn.close()
        self.conns.clear()


class TcpEchoService(_Service):
    def _step(self, conn: TcpConnection) -> None:
        if conn.closed:
            self._done(conn)
            return
        try:
            while (space := conn.send_space) > 0:
                data = conn.recv(space)
                if data is None:
                    return
                if data == b"":
                    conn.close()  # the client is done: finish after the echoes
                    self._done(conn)
                    return
                self.bytes_in += len(data)
                self.bytes_out += conn.send(data)
        except OSError:
            conn.abort()
            self._done(conn)


class DiscardService(_Service):
    def __init__(self, stack: Stack, port: int, backlog: int = 512) -> None:
        super().__init__(stack, port, backlog)
        self._sink = bytearray(1 << 18)  # read into, thrown away: no bytes object per read

    def _step(self, conn: TcpConnection) -> None:
        if conn.closed:
            self._done(conn)
            return
        try:
            while (n := conn.recv_into(self._sink)) is not None:
                if n == 0:
                    conn.close()
                    self._done(conn)
                    return
                self.bytes_in += n
        except OSError:
            conn.abort()
            self._done(conn)


class ChargenService(_Service):
    """Sends the pattern until ``limit`` bytes (None: until the client closes)."""

    # A whole number of pattern periods (95 lines of 72 characters plus CRLF), so
    # blocks join seamlessly.
    BLOCK = 74 * 95 * 4

    def __init__(self, stack: Stack, port: int, limit: int | None = None, backlog: int = 512) -> None:
        super().__init__(stack, port, backlog)
        self.limit = limit
        self._block = chargen_pattern(self.BLOCK)
        self._sent: dict[TcpConnection, int] = {}

    def _opened(self, conn: TcpConnection) -> None:
        self._sent[conn] = 0

    def _done(self, conn: TcpConnection) -> None:
        super()._done(conn)
        self._sent.pop(conn, None)

    def _step(self, conn: TcpConnection) -> None:
        if conn.closed:
            self._done(conn)
            return
        try:
            while (data := conn.recv()) is not None:  # RFC 864: received data is thrown away
                if data == b"":
                    break
                self.bytes_in += len(data)
            sent = self._sent.get(conn)
            if sent is None:
                return
            block = self._block
            while conn.send_space > 0:
                want = conn.send_space
                if self.limit is not None:
                    want = min(want, self.limit - sent)
                    if want <= 0:
                        conn.close()
                        self._done(conn)
                        return
                off = sent % len(block)
                chunk = memoryview(block)[off : off + want]
                n = conn.send(chunk)
                if n <= 0:
                    break
                sent += n
                self.bytes_out += n
            self._sent[conn] = sent
        except OSError:
            conn.abort()
            self._done(conn)
