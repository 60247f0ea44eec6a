"""The blocking TCP API (``Host.create_connection``/``create_server``, ``TCPSocket``)
between two seqs hosts over a socket-pair link, in real time, without root.

Each test states one behaviour of :mod:`socket` that the facade promises
(timeouts, errors, half-close, back-pressure, files).  Threads stand in for the
peer; every join and wait has a bound, so a bug fails the test instead of
hanging it.
"""

from __future__ import annotations

import errno
import hashlib
import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from seqs.phy import socketpair_devices
from seqs.runtime import Host, TCPListener, TCPSocket
from seqs.runtime.tcp import create_connection
from seqs.tcp.connection import TcpConfig

WAIT = 10.0
A, B = "10.0.0.1", "10.0.0.2"


@pytest.fixture
def hosts() -> Iterator[tuple[Host, Host]]:
    a_dev, b_dev = socketpair_devices()
    a = Host(a_dev, ip=f"{A}/24")
    b = Host(b_dev, ip=f"{B}/24")
    try:
        yield a, b
    finally:
        # Stop both loops before either device closes: a socket-pair end closed with
        # frames unread makes the other end's recv() fail with ECONNRESET.
        a.runner.stop()
        b.runner.stop()
        a.close()
        b.close()
    assert a.runner.error is None and b.runner.error is None


class Peer(threading.Thread):
    """Run ``fn`` in a thread; ``result()`` joins (bounded) and re-raises its exception."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.fn = fn
        self.value: Any = None
        self.exc: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.value = self.fn()
        except BaseException as e:
            self.exc = e

    def result(self, timeout: float = WAIT) -> Any:
        self.join(timeout)
        assert not self.is_alive(), "peer thread did not finish in time"
        if self.exc is not None:
            raise self.exc
        return self.value


def pair(a: Host, b: Host, *, server_config: TcpConfig | None = None,
         client_config: TcpConfig | None = None) -> tuple[TCPSocket, TCPSocket]:
    """A connected (client on b, server side on a) socket pair."""
    with a.create_server(("", 5000), config=server_config) as lst:
        lst.settimeout(WAIT)
        client = b.create_connection((A, 5000), timeout=WAIT, config=client_config)
        server, peer = lst.accept()
    assert peer == client.getsockname()
    server.settimeout(WAIT)
    return client, server


def recv_exactly(s: TCPSocket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = s.recv(n - len(out))
        assert chunk, f"EOF after {len(out)} of {n} bytes"
        out += chunk
    return bytes(out)


# -- connecting ------------------------------------------------------------------------------


def test_echo_round_trips(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    srv = a.create_server(("", 7))
    srv.settimeout(WAIT)

    def echo() -> None:
        conn, _ = srv.accept()
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    peer = Peer(echo)
    with b.create_connection((A, 7), timeout=WAIT) as s:
        for i in range(20):
            msg = b"message %d " % i * (i + 1)
            s.sendall(msg)
            assert recv_exactly(s, len(msg)) == msg
        s.shutdown(socket.SHUT_WR)
        assert s.recv(10) == b""
    peer.result()
    srv.close()


def test_module_level_create_connection_is_the_host_method(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    with a.create_server(("", 7)) as srv:
        srv.settimeout(WAIT)
        with create_connection(b, (A, 7), WAIT) as s:
            conn, _ = srv.accept()
            conn.sendall(b"hi")
            assert s.recv(2) == b"hi"
            conn.close()


def test_ten_megabytes_arrive_intact(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    data = hashlib.shake_256(b"seqs").digest(10 * 1024 * 1024)
    client, server = pair(a, b)

    def sink() -> tuple[int, str]:
        h = hashlib.sha256()
        n = 0
        buf = bytearray(256 * 1024)
        while got := server.recv_into(buf):
            h.update(memoryview(buf)[:got])
            n += got
        server.sendall(h.hexdigest().encode())
        server.close()
        return n, h.hexdigest()

    peer = Peer(sink)
    client.sendall(data)
    client.shutdown(socket.SHUT_WR)
    digest = client.makefile("rb").read()
    n, seen = peer.result(30.0)
    assert n == len(data)
    assert seen == digest.decode() == hashlib.sha256(data).hexdigest()
    client.close()


def test_connect_to_a_port_without_listener_is_refused(hosts: tuple[Host, Host]) -> None:
    _, b = hosts
    t = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        b.create_connection((A, 81), timeout=WAIT)
    assert time.monotonic() - t < WAIT / 2  # the RST answered it, not the timeout
    assert len(b.stack.tcp) == 0


def test_connect_timeout_raises_timeout_error_and_forgets_the_connection(hosts: tuple[Host, Host]) -> None:
    _, b = hosts
    t = time.monotonic()
    with pytest.raises(TimeoutError):
        b.create_connection(("10.0.0.99", 80), timeout=0.3)  # nobody answers ARP
    assert 0.25 < time.monotonic() - t < WAIT
    assert len(b.stack.tcp) == 0


def test_non_blocking_connect_raises_blocking_io_error(hosts: tuple[Host, Host]) -> None:
    # A zero timeout cannot wait for the handshake: EINPROGRESS, as connect() on a
    # non-blocking socket; create_connection then closes it, as the stdlib does.
    _, b = hosts
    with pytest.raises(BlockingIOError) as info:
        b.create_connection((A, 80), timeout=0.0)
    assert info.value.errno == errno.EINPROGRESS
    assert len(b.stack.tcp) == 0


def test_connect_from_a_chosen_source_port(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    with a.create_server(("", 80)) as srv:
        srv.settimeout(WAIT)
        with b.create_connection((A, 80), WAIT, source_address=("", 40000)) as s:
            conn, peer = srv.accept()
            assert s.getsockname() == (B, 40000) == peer
            conn.close()
        with pytest.raises(OSError) as info:
            b.create_connection((A, 80), WAIT, source_address=("192.0.2.1", 0))
        assert info.value.errno == errno.EADDRNOTAVAIL


# -- timeouts ------------------------------------------------------------------------------------


def test_recv_timeout_raises_timeout_error(hosts: tuple[Host, Host]) -> None:
    client, server = pair(*hosts)
    client.settimeout(0.2)
    t = time.monotonic()
    with pytest.raises(TimeoutError):
        client.recv(10)
    assert 0.15 < time.monotonic() - t < WAIT
    # The socket is still usable.
    server.sendall(b"late")
    client.settimeout(WAIT)
    assert client.recv(10) == b"late"
    client.close()
    server.close()


def test_non_blocking_recv_send_and_accept_raise_blocking_io_error(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    small = TcpConfig(sndbuf=4096, rcvbuf=4096)
    client, server = pair(a, b, server_config=small, client_config=small)
    client.setblocking(False)
    assert client.gettimeout() == 0.0 and not client.getblocking()
    t = time.monotonic()
    with pytest.raises(BlockingIOError):
        client.recv(10)
    # Fill our send buffer and the peer's window: then send() cannot take a byte.
    sent = 0
    with pytest.raises(BlockingIOError):
        for _ in range(1000):
            sent += client.send(b"x" * 4096)
    assert 4096 <= sent <= 3 * 4096
    assert time.monotonic() - t < 2.0
    with a.create_server(("", 6000)) as lst:
        lst.setblocking(False)
        with pytest.raises(BlockingIOError):
            lst.accept()
    client.setblocking(True)
    assert client.gettimeout() is None
    client.abort()
    server.abort()


def test_accept_honours_the_listener_timeout(hosts: tuple[Host, Host]) -> None:
    a, _ = hosts
    with a.create_server(("", 80)) as lst:
        lst.settimeout(0.2)
        t = time.monotonic()
        with pytest.raises(TimeoutError):
            lst.accept()
        assert 0.15 < time.monotonic() - t < WAIT


def test_timeout_values_are_checked_like_the_stdlib(hosts: tuple[Host, Host]) -> None:
    client, server = pair(*hosts)
    with pytest.raises(ValueError):
        client.settimeout(-1)
    client.settimeout(3)
    assert client.gettimeout() == 3.0
    client.close()
    server.close()


# -- back-pressure ----------------------------------------------------------------------------


def test_sendall_blocks_while_the_send_buffer_is_full_then_completes(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    small = TcpConfig(sndbuf=8192, rcvbuf=8192)
    client, server = pair(a, b, server_config=small, client_config=small)
    data = hashlib.shake_256(b"pressure").digest(400_000)
    writer = Peer(lambda: client.sendall(data))
    time.sleep(0.3)
    # Nobody reads: the peer's window is full and so is our send buffer; sendall waits.
    assert writer.is_alive()
    with b.lock:
        assert client.connection.buffered == 8192
    with a.lock:
        assert server.connection.unread <= 8192
    # A slow reader: small reads with pauses; sendall follows at its pace.
    got = bytearray()
    while len(got) < len(data):
        chunk = server.recv(4096)
        assert chunk
        got += chunk
        if len(got) < 40_000:
            time.sleep(0.005)
    writer.result()
    assert bytes(got) == data
    client.close()
    server.close()


def test_sendall_timeout_bounds_the_whole_call(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    small = TcpConfig(sndbuf=4096, rcvbuf=4096)
    client, server = pair(a, b, server_config=small, client_config=small)
    client.settimeout(0.3)
    t = time.monotonic()
    with pytest.raises(TimeoutError):
        client.sendall(b"y" * 1_000_000)
    assert 0.25 < time.monotonic() - t < WAIT
    client.abort()
    server.abort()


# -- ending ----------------------------------------------------------------------------------------


def test_shutdown_write_is_eof_for_the_peer_which_can_still_answer(hosts: tuple[Host, Host]) -> None:
    client, server = pair(*hosts)
    client.sendall(b"request")
    client.shutdown(socket.SHUT_WR)
    assert recv_exactly(server, 7) == b"request"
    assert server.recv(100) == b""  # the FIN
    server.sendall(b"response after your FIN")
    client.settimeout(WAIT)
    assert recv_exactly(client, 23) == b"response after your FIN"
    server.close()
    assert client.recv(100) == b""
    with pytest.raises(BrokenPipeError):
        client.send(b"more")
    client.close()


def test_close_with_unread_data_resets_the_peer(hosts: tuple[Host, Host]) -> None:
    # RFC 2525 §2.17, and what Linux does: data we never read is lost, so say so with RST.
    client, server = pair(*hosts)
    client.sendall(b"you will not read this")
    time.sleep(0.1)
    with hosts[0].lock:
        assert server.connection.unread == 22
    server.close()
    client.settimeout(WAIT)
    with pytest.raises(ConnectionResetError):
        client.recv(10)
    with pytest.raises(ConnectionResetError):
        client.send(b"x")
    client.close()


def test_shutdown_read_makes_recv_return_eof_at_once(hosts: tuple[Host, Host]) -> None:
    client, server = pair(*hosts)
    server.sendall(b"queued")
    time.sleep(0.1)
    client.shutdown(socket.SHUT_RD)
    assert client.recv(100) == b"queued"  # what was queued, then EOF without waiting
    t = time.monotonic()
    assert client.recv(100) == b""
    assert time.monotonic() - t < 1.0
    client.sendall(b"still writable")
    assert recv_exactly(server, 14) == b"still writable"
    client.close()
    server.close()


def test_shutdown_read_wakes_a_blocked_reader(hosts: tuple[Host, Host]) -> None:
    client, server = pair(*hosts)
    reader = Peer(lambda: client.recv(10))
    time.sleep(0.1)
    client.shutdown(socket.SHUT_RD)
    assert reader.result() == b""
    client.close()
    server.close()


def test_shutdown_rejects_bad_arguments_and_dead_connections(hosts: tuple[Host, Host]) -> None:
    client, server = pair(*hosts)
    with pytest.raises(OSError) as info:
        client.shutdown(7)
    assert info.value.errno == errno.EINVAL
    server.abort()
    with pytest.raises(ConnectionResetError):
        client.recv(1)
    with pytest.raises(OSError) as info:
        client.shutdown(socket.SHUT_RDWR)
    assert info.value.errno == errno.ENOTCONN
    client.close()


def test_closed_socket_raises_ebadf(hosts: tuple[Host, Host]) -> None:
    client, server = pair(*hosts)
    client.close()
    client.close()  # idempotent
    for call in (lambda: client.recv(1), lambda: client.send(b"x"), client.getpeername):
        with pytest.raises(OSError) as info:
            call()
        assert info.value.errno == errno.EBADF
    assert server.recv(1) == b""
    server.close()


def test_context_manager_closes_gracefully(hosts: tuple[Host, Host]) -> None:
    client, server = pair(*hosts)
    with client as s:
        s.sendall(b"bye")
    assert client.closed
    assert recv_exactly(server, 3) == b"bye"
    assert server.recv(10) == b""
    server.close()


def test_listener_close_resets_connections_not_yet_accepted(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    lst = a.create_server(("", 80))
    s = b.create_connection((A, 80), WAIT)
    assert a.wait_for(lambda: lst.listener.pending == 1, WAIT)
    lst.close()
    assert lst.closed
    s.settimeout(WAIT)
    with pytest.raises(ConnectionResetError):
        s.recv(1)
    with pytest.raises(OSError) as info:
        lst.accept()
    assert info.value.errno == errno.EBADF
    s.close()


def test_listener_close_wakes_a_blocked_accept(hosts: tuple[Host, Host]) -> None:
    a, _ = hosts
    lst = a.create_server(("", 80))
    acceptor = Peer(lst.accept)
    time.sleep(0.1)
    lst.close()
    with pytest.raises(OSError) as info:
        acceptor.result()
    assert info.value.errno == errno.EBADF


# -- names and options --------------------------------------------------------------------------


def test_names_options_and_repr(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    with a.create_server(("", 0)) as lst:
        assert isinstance(lst, TCPListener)
        addr, port = lst.getsockname()
        assert addr == A and 1024 <= port <= 65535
        lst.settimeout(WAIT)
        client = b.create_connection((A, port), WAIT)
        server, _ = lst.accept()
    assert client.getpeername() == (A, port) == server.getsockname()
    assert server.getpeername() == client.getsockname()
    assert client.family == socket.AF_INET and client.type == socket.SOCK_STREAM
    assert "ESTABLISHED" in repr(client)

    shared = client.connection.config
    assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    assert client.connection.config.nodelay and not shared.nodelay  # the stack's default is untouched
    assert b.stack.tcp.config.nodelay is False
    assert client.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == shared.sndbuf
    assert client.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    with pytest.raises(OSError) as info:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    assert info.value.errno == errno.ENOPROTOOPT
    with pytest.raises(OSError) as info:
        client.recv(10, socket.MSG_PEEK)
    assert info.value.errno == errno.EOPNOTSUPP
    client.close()
    server.close()


# -- files -----------------------------------------------------------------------------------------


def test_makefile_readline_and_write(hosts: tuple[Host, Host]) -> None:
    client, server = pair(*hosts)
    wf = server.makefile("wb")
    assert isinstance(wf, io.BufferedWriter)
    wf.write(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    wf.flush()
    rf = client.makefile("rb")
    assert isinstance(rf, io.BufferedReader)
    assert rf.readline() == b"HTTP/1.0 200 OK\r\n"
    assert rf.readline() == b"Content-Length: 5\r\n"
    assert rf.readline() == b"\r\n"
    assert rf.read(5) == b"hello"
    wf.close()
    server.close()  # the writer file was the last reference: now the connection closes
    assert rf.read() == b""
    rf.close()
    client.close()


def test_makefile_text_mode_and_rw_pair(hosts: tuple[Host, Host]) -> None:
    client, server = pair(*hosts)
    f = client.makefile("rw", encoding="utf-8", newline="")
    g = server.makefile("rwb")
    f.write("grüße\nzweite\n")
    f.flush()
    assert g.readline() == "grüße\n".encode()
    g.write(b"antwort\n")
    g.flush()
    assert f.readline() == "antwort\n"
    assert g.readline() == b"zweite\n"
    for obj in (f, g):
        obj.close()
    client.close()
    server.close()


def test_socket_stays_open_while_a_file_is_open(hosts: tuple[Host, Host]) -> None:
    # socket.makefile's rule: close() on the socket waits for the files.
    client, server = pair(*hosts)
    rf = client.makefile("rb")
    client.close()
    server.sendall(b"line after close()\n")
    assert rf.readline() == b"line after close()\n"
    rf.close()
    assert client.closed
    server.settimeout(WAIT)
    assert server.recv(1) == b""
    server.close()


def test_makefile_timeout_poisons_the_reader(hosts: tuple[Host, Host]) -> None:
    client, server = pair(*hosts)
    client.settimeout(0.1)
    rf = client.makefile("rb")
    with pytest.raises(TimeoutError):
        rf.readline()
    with pytest.raises(OSError, match="timed out object"):
        rf.readline()
    rf.close()
    client.close()
    server.close()
