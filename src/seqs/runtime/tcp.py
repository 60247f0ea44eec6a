"""TCP for blocking code: :class:`TCPSocket` and :class:`TCPListener`, the
``socket.socket(AF_INET, SOCK_STREAM)`` of a seqs :class:`~seqs.runtime.Host`.

    with Host(TapDevice("tap0"), ip="10.0.0.2/24", gateway="10.0.0.1") as host:
        with host.create_connection(("10.0.0.1", 80), timeout=5.0) as s:
            s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
            with s.makefile("rb") as f:
                status = f.readline()

        with host.create_server(("", 7)) as srv:
            conn, peer = srv.accept()
            while data := conn.recv(65536):
                conn.sendall(data)
            conn.close()

Owns: waiting (on the runner's condition variable, never polling), the
``socket`` timeout rules, ``makefile`` and the mapping of the stdlib's calls
onto :class:`~seqs.tcp.connection.TcpConnection`.  The TCP itself — buffers,
windows, retransmission, the close handshake — is the connection's; this
module only decides *when* a call may go ahead.

Timeouts follow :meth:`socket.socket.settimeout`: ``None`` blocks, ``0.0`` is
non-blocking (``BlockingIOError``) and a positive value raises
``TimeoutError``; for :meth:`TCPSocket.sendall` the timeout bounds the whole
call, as in CPython since 3.5.  Errors are the stdlib's: ``ConnectionRefusedError``
(RST to our SYN), ``ConnectionResetError``, ``TimeoutError`` (retransmissions
exhausted), ``BrokenPipeError`` (sending after ``shutdown(SHUT_WR)``), and
``OSError(EBADF)`` on a closed socket.
"""

from __future__ import annotations

import dataclasses
import errno
import io
import socket
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, Literal, TypeVar, cast, overload

from .._typing import BytesLike
from ..errors import oserror
from ..sockets.tcp import TcpListener
from ..tcp.connection import TcpConfig, TcpConnection

if TYPE_CHECKING:
    from .host import Host

__all__ = ["TCPListener", "TCPSocket", "create_connection", "create_server"]

T = TypeVar("T")
Address = tuple[str, int]

_CHUNK = 1 << 20  # recv() hands out at most this much per call when asked for more


def _bad_fd() -> OSError:
    return OSError(errno.EBADF, "Bad file descriptor")


def _no_flags(flags: int) -> None:
    if flags:
        raise OSError(errno.EOPNOTSUPP, "seqs sockets take no MSG_* flags")


def _check_timeout(timeout: float | None) -> float | None:
    if timeout is None:
        return None
    timeout = float(timeout)
    if timeout < 0:
        raise ValueError("Timeout value out of range")
    return timeout


def _attempt(host: Host, attempt: Callable[[], T | None], timeout: float | None) -> T:
    """Run ``attempt`` under the stack lock until it returns something, waiting
    between tries for the runtime to change the stack; apply ``socket``'s
    timeout rules.  Output the attempt caused leaves before this returns."""
    got: list[T] = []

    def ready() -> bool:
        r = attempt()
        if r is None:
            return False
        got.append(r)
        return True

    # First try as a Host.call: the stack's clock is brought up to date and output is flushed.
    if host.call(ready):
        return got[0]
    if timeout == 0.0:
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
    try:
        ok = host.wait_for(ready, timeout)
    finally:
        with host.lock:
            host.runner.kick()  # e.g. recv() opened the window: say so now
    if not ok:
        raise TimeoutError("timed out")
    return got[0]


class _Timeouts:
    """The ``socket`` timeout rules, shared by sockets and listeners: None blocks,
    0.0 is non-blocking (BlockingIOError), a positive value raises TimeoutError."""

    _timeout: float | None

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = _check_timeout(timeout)

    def gettimeout(self) -> float | None:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        self._timeout = None if flag else 0.0

    def getblocking(self) -> bool:
        return self._timeout != 0.0


class TCPSocket(_Timeouts):
    """A connected TCP socket on a seqs host.  Get one from
    :meth:`Host.create_connection <seqs.runtime.Host.create_connection>` or
    :meth:`TCPListener.accept`.

    ``connection`` is the sans-IO :class:`~seqs.tcp.connection.TcpConnection`
    underneath (touch it only under ``host.lock``).
    """

    family = socket.AF_INET
    type = socket.SOCK_STREAM
    proto = socket.IPPROTO_TCP

    def __init__(self, host: Host, conn: TcpConnection, timeout: float | None = None) -> None:
        self.host = host
        self.connection = conn
        self._timeout = _check_timeout(timeout)
        self._closed = False  # close() was called
        self._released = False  # ... and the connection let go (no makefile() objects left)
        self._io_refs = 0  # open makefile() objects keep the socket open (as in the stdlib)
        self._shut_rd = False
        with host.lock:
            conn.on_event = host.runner.changed.notify_all

    # -- configuration -----------------------------------------------------------------

    def getsockname(self) -> Address:
        self._check_open()
        return self.connection.local_address

    def getpeername(self) -> Address:
        self._check_open()
        return self.connection.remote_address

    def fileno(self) -> int:
        """Always -1: a seqs socket has no kernel file descriptor (use threads, not select())."""
        return -1

    def setsockopt(self, level: int, optname: int, value: int | bool) -> None:
        """``TCP_NODELAY`` (disable Nagle, RFC 9293 §3.7.4) and ``SO_KEEPALIVE``
        (RFC 9293 §3.8.4, armed from the next segment on); others raise
        ``OSError(ENOPROTOOPT)``."""
        self._check_open()
        field = _OPTIONS.get((level, optname))
        if field is None:
            raise OSError(errno.ENOPROTOOPT, "Protocol not available")
        conn = self.connection
        with self.host.lock:
            # The config object may be shared with the listener or the stack: copy before changing.
            config = dataclasses.replace(conn.config)
            setattr(config, field, bool(value))
            conn.config = config

    def getsockopt(self, level: int, optname: int) -> int:
        """``TCP_NODELAY``, ``SO_KEEPALIVE``, ``SO_SNDBUF``, ``SO_RCVBUF``, ``SO_TYPE`` and ``SO_ERROR``."""
        self._check_open()
        conn = self.connection
        field = _OPTIONS.get((level, optname))
        if field is not None:
            return int(getattr(conn.config, field))
        if level == socket.SOL_SOCKET:
            if optname == socket.SO_SNDBUF:
                return conn.config.sndbuf
            if optname == socket.SO_RCVBUF:
                return conn.config.rcvbuf
            if optname == socket.SO_TYPE:
                return socket.SOCK_STREAM
            if optname == socket.SO_ERROR:
                return conn.error or 0
        raise OSError(errno.ENOPROTOOPT, "Protocol not available")

    # -- data --------------------------------------------------------------------------

    def send(self, data: BytesLike, flags: int = 0) -> int:
        """Queue what the send buffer takes (at least one byte, waiting for room); return how much."""
        _no_flags(flags)
        self._check_open()
        conn = self.connection
        if not len(data):
            return 0

        def attempt() -> int | None:
            self._check_open()
            n = conn.send(data)  # raises the connection's error, or EPIPE after shutdown
            return n if n > 0 else None

        return _attempt(self.host, attempt, self._timeout)

    def sendall(self, data: BytesLike, flags: int = 0) -> None:
        """Send all of ``data``, waiting while the send buffer is full (back-pressure
        from the peer's window).  The timeout bounds the whole call; after a
        timeout an unknown part was sent, as with the stdlib."""
        _no_flags(flags)
        self._check_open()
        conn = self.connection
        rest = [memoryview(data).cast("B")]

        def attempt() -> int | None:
            self._check_open()
            n = conn.send(rest[0])
            return n if n > 0 else None

        timeout = self._timeout
        end = None if timeout is None else time.monotonic() + timeout
        while len(rest[0]):
            left = None if end is None else (0.0 if timeout == 0.0 else max(end - time.monotonic(), 1e-9))
            n = _attempt(self.host, attempt, left)
            rest[0] = rest[0][n:]

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Up to ``bufsize`` bytes; ``b""`` once the peer has sent FIN (and after ``shutdown(SHUT_RD)``)."""
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        _no_flags(flags)
        self._check_open()
        conn = self.connection
        if bufsize == 0:
            return b""
        want = min(bufsize, _CHUNK)

        def attempt() -> bytes | None:
            self._check_open()
            if self._shut_rd and not conn.unread:
                return b""  # Linux: after SHUT_RD, reads return what is queued, then 0 at once
            return conn.recv(want)

        return _attempt(self.host, attempt, self._timeout)

    def recv_into(self, buffer: bytearray | memoryview, nbytes: int = 0, flags: int = 0) -> int:
        if nbytes < 0:
            raise ValueError("negative buffersize in recv_into")
        view = memoryview(buffer).cast("B")
        if nbytes == 0 or nbytes > len(view):
            nbytes = len(view)
        data = self.recv(nbytes, flags)
        view[: len(data)] = data
        return len(data)

    # -- ending ------------------------------------------------------------------------

    def shutdown(self, how: int) -> None:
        """``SHUT_WR`` sends FIN after the queued data (half-close, RFC 9293 §3.6);
        ``SHUT_RD`` makes reads return EOF; ``SHUT_RDWR`` both."""
        self._check_open()
        if how not in (socket.SHUT_RD, socket.SHUT_WR, socket.SHUT_RDWR):
            raise OSError(errno.EINVAL, "Invalid argument")
        conn = self.connection

        def do() -> None:
            if conn.closed:
                raise oserror(errno.ENOTCONN)  # as Linux, once the connection is gone
            if how in (socket.SHUT_RD, socket.SHUT_RDWR):
                self._shut_rd = True
            if how in (socket.SHUT_WR, socket.SHUT_RDWR):
                conn.shutdown_write()

        self.host.call(do)  # its kick() notifies the runner's condition: blocked readers see SHUT_RD

    def close(self) -> None:
        """Graceful close (FIN after queued data; RST if received data was left
        unread, as Linux does, RFC 2525 §2.17).  Returns at once; the host
        finishes the handshake.  Deferred while ``makefile()`` objects are open."""
        self._closed = True
        if self._io_refs <= 0:
            self._real_close()

    def _real_close(self) -> None:
        if self._released:
            return
        self._released = True
        conn = self.connection

        def do() -> None:
            conn.on_event = None
            conn.close()

        self.host.call(do)  # notifies too: other threads blocked on this socket get EBADF

    def abort(self) -> None:
        """Reset the connection (RST), like ``close()`` with ``SO_LINGER`` zero."""
        self._closed = self._released = True
        self._io_refs = 0
        conn = self.connection

        def do() -> None:
            conn.on_event = None
            conn.abort()

        self.host.call(do)

    @property
    def closed(self) -> bool:
        return self._released

    def _check_open(self) -> None:
        # As in the stdlib, a close()d socket keeps working while makefile() objects are open.
        if self._released:
            raise _bad_fd()

    def _decref_socketios(self) -> None:
        if self._io_refs > 0:
            self._io_refs -= 1
        if self._closed:
            self.close()

    def __enter__(self) -> TCPSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._released:
            return "<seqs TCPSocket [closed]>"
        c = self.connection
        return (f"<seqs TCPSocket laddr={c.local_address} raddr={c.remote_address} state={c.state_name} "
                f"timeout={self._timeout}>")

    # -- files -------------------------------------------------------------------------

    @overload
    def makefile(self, mode: Literal["rb", "br"], buffering: Literal[-1] | None = ..., *,
                 encoding: None = ..., errors: None = ..., newline: None = ...) -> io.BufferedReader: ...
    @overload
    def makefile(self, mode: Literal["wb", "bw"], buffering: Literal[-1] | None = ..., *,
                 encoding: None = ..., errors: None = ..., newline: None = ...) -> io.BufferedWriter: ...
    @overload
    def makefile(self, mode: str = ..., buffering: int | None = ..., *, encoding: str | None = ...,
                 errors: str | None = ..., newline: str | None = ...) -> IO[Any]: ...

    def makefile(self, mode: str = "r", buffering: int | None = None, *, encoding: str | None = None,
                 errors: str | None = None, newline: str | None = None) -> IO[Any]:
        """A file object over the socket, exactly as :meth:`socket.socket.makefile`:
        modes from ``r``, ``w``, ``b``; ``buffering=0`` gives the raw object.
        The socket stays open until it and every file are closed."""
        if not set(mode) <= {"r", "w", "b"}:
            raise ValueError(f"invalid mode {mode!r} (only r, w, b allowed)")
        self._check_open()
        writing = "w" in mode
        reading = "r" in mode or not writing
        binary = "b" in mode
        raw = TCPSocketIO(self, ("r" if reading else "") + ("w" if writing else ""))
        self._io_refs += 1
        if buffering is None or buffering < 0:
            buffering = io.DEFAULT_BUFFER_SIZE
        if buffering == 0:
            if not binary:
                raise ValueError("unbuffered streams must be binary")
            return raw  # type: ignore[return-value]  # a RawIOBase is a binary file
        buffer: io.BufferedReader | io.BufferedWriter | io.BufferedRWPair
        if reading and writing:
            buffer = io.BufferedRWPair(raw, raw, buffering)
        elif reading:
            buffer = io.BufferedReader(raw, buffering)
        else:
            buffer = io.BufferedWriter(raw, buffering)
        if binary:
            return buffer  # type: ignore[return-value]
        text = io.TextIOWrapper(cast(Any, buffer), io.text_encoding(encoding), errors, newline)
        text.mode = mode  # type: ignore[misc]  # as socket.makefile does
        return text


_OPTIONS: dict[tuple[int, int], str] = {
    (socket.IPPROTO_TCP, socket.TCP_NODELAY): "nodelay",
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE): "keepalive",
}


class TCPSocketIO(io.RawIOBase):
    """The raw file under :meth:`TCPSocket.makefile` (the stdlib's ``SocketIO``):
    ``readinto`` is ``recv_into`` and ``write`` is ``send``; on a non-blocking
    socket both return None instead of raising ``BlockingIOError``, as
    :class:`io.RawIOBase` wants."""

    def __init__(self, sock: TCPSocket, mode: str) -> None:
        super().__init__()
        self._sock: TCPSocket | None = sock
        self._mode = mode + "b"
        self._reading = "r" in mode
        self._writing = "w" in mode
        self._timeout_occurred = False

    def _socket(self) -> TCPSocket:
        self._checkClosed()
        assert self._sock is not None
        return self._sock

    def readinto(self, b: Any) -> int | None:
        sock = self._socket()
        if not self._reading:
            raise io.UnsupportedOperation("not readable")
        if self._timeout_occurred:
            # The stdlib's rule: after a timeout the buffered layer's state is unknown.
            raise OSError("cannot read from timed out object")
        try:
            return sock.recv_into(b)
        except BlockingIOError:
            return None
        except TimeoutError as e:
            if e.errno is None:  # ours, not the connection's ETIMEDOUT
                self._timeout_occurred = True
            raise

    def write(self, b: Any) -> int | None:
        sock = self._socket()
        if not self._writing:
            raise io.UnsupportedOperation("not writable")
        try:
            return sock.send(b)
        except BlockingIOError:
            return None

    def readable(self) -> bool:
        if self.closed:
            raise ValueError("I/O operation on closed socket.")
        return self._reading

    def writable(self) -> bool:
        if self.closed:
            raise ValueError("I/O operation on closed socket.")
        return self._writing

    def seekable(self) -> bool:
        if self.closed:
            raise ValueError("I/O operation on closed socket.")
        return False

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def name(self) -> int:
        return -1

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        sock, self._sock = self._sock, None
        if sock is not None:
            sock._decref_socketios()


class TCPListener(_Timeouts):
    """A listening TCP socket on a seqs host (``socket.create_server``'s result).

    ``accept()`` honours the listener's timeout like a ``socket``; sockets it
    returns are blocking (timeout ``None``), as the stdlib's are by default.
    """

    family = socket.AF_INET
    type = socket.SOCK_STREAM
    proto = socket.IPPROTO_TCP

    def __init__(self, host: Host, listener: TcpListener, timeout: float | None = None) -> None:
        self.host = host
        self.listener = listener
        self._timeout = _check_timeout(timeout)
        with host.lock:
            listener.on_event = host.runner.changed.notify_all

    def getsockname(self) -> Address:
        return self.listener.local_address

    def fileno(self) -> int:
        return -1

    def accept(self) -> tuple[TCPSocket, Address]:
        """The next established connection and its peer's address."""
        lst = self.listener
        if lst.closed:
            raise _bad_fd()
        on_event = self.host.runner.changed.notify_all

        def attempt() -> TcpConnection | None:
            if lst.closed:
                raise _bad_fd()  # closed by another thread while we waited
            conn = lst.accept()
            if conn is not None:
                conn.on_event = on_event  # under the lock: no event can be missed
            return conn

        conn = _attempt(self.host, attempt, self._timeout)
        return TCPSocket(self.host, conn), conn.remote_address

    def close(self) -> None:
        """Stop listening; connections not yet accepted are reset."""
        self.host.call(self.listener.close)

    @property
    def closed(self) -> bool:
        return self.listener.closed

    def __enter__(self) -> TCPListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.listener.closed else "listening"
        return f"<seqs TCPListener laddr={self.getsockname()} {state}>"


# -- constructors (Host.create_connection / Host.create_server call these) --------------------


def create_connection(host: Host, address: Address, timeout: float | None = None,
                      source_address: Address | None = None, *, config: TcpConfig | None = None) -> TCPSocket:
    """Connect to ``address`` (an IPv4 address and port) like :func:`socket.create_connection`.

    ``timeout`` bounds the handshake and becomes the socket's timeout; ``0.0``
    cannot complete a handshake and raises ``BlockingIOError`` (EINPROGRESS),
    as a non-blocking ``connect`` does.  ``source_address`` may name the local
    port (its address must be ours or empty).  A RST in answer raises
    ``ConnectionRefusedError``; exhausted SYN retries ``TimeoutError``.
    """
    timeout = _check_timeout(timeout)
    local_port = 0
    if source_address is not None:
        src, local_port = source_address
        if src not in ("", "0.0.0.0", host.stack.ip):
            raise OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")
    conn: TcpConnection = host.call(
        lambda: host.stack.tcp_connect(address, local_port=local_port, config=config)
    )
    with host.lock:
        conn.on_event = host.runner.changed.notify_all
    ok = False
    try:
        if timeout == 0.0:
            raise BlockingIOError(errno.EINPROGRESS, "Operation now in progress")
        if not host.wait_for(lambda: not conn.connecting, timeout):
            raise TimeoutError("timed out")
        with host.lock:
            if conn.error is not None:
                raise oserror(conn.error)
            if conn.closed:
                raise oserror(errno.ECONNABORTED)
        ok = True
    finally:
        if not ok:
            def drop() -> None:
                conn.on_event = None
                conn.abort()

            host.call(drop)
    return TCPSocket(host, conn, timeout)


def create_server(host: Host, address: Address, *, backlog: int = 128, reuse_port: bool = False,
                  config: TcpConfig | None = None) -> TCPListener:
    """Listen on ``address`` (``("", port)`` for every address of the host; port 0
    picks a free one, see :meth:`TCPListener.getsockname`) like :func:`socket.create_server`."""
    addr, port = address
    lst: TcpListener = host.call(
        lambda: host.stack.tcp_listen(port, addr, backlog, config=config, reuse_port=reuse_port)
    )
    return TCPListener(host, lst)
