"""The event-driven HTTP server and the event-driven client between two seqs stacks
on the virtual network: lossy downloads, many at once, keep-alive, and the
hostile clients (header garbage, slowloris, resets, clients that stop
reading), all on virtual time — minutes of timeouts in milliseconds."""

from __future__ import annotations

import hashlib
import pathlib
import random
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from seqs import Stack
from seqs.http import HttpFetch, HttpServer, Request, Response, ServerLimits, StaticFiles
from seqs.phy.faults import FaultConfig
from seqs.phy.memory import VirtualNetwork
from seqs.tcp.connection import TcpConnection

SERVER, CLIENT = "10.0.0.1", "10.0.0.2"
BIG = 3_000_000


@dataclass
class Lan:
    net: VirtualNetwork
    server: Stack
    client: Stack
    root: pathlib.Path
    data: bytes

    def serve(self, handler: object = None, limits: ServerLimits | None = None) -> HttpServer:
        return HttpServer(self.server, handler or StaticFiles(self.root), 80, limits=limits)  # type: ignore[arg-type]

    def fetch(self, path: str, **kw: object) -> HttpFetch:
        f = HttpFetch(self.client, f"http://{SERVER}{path}", **kw)  # type: ignore[arg-type]
        self.client.poll(self.net.now)
        return f

    def run(self, until: object, timeout: float = 60.0) -> bool:
        return self.net.run_until(until, timeout)  # type: ignore[arg-type]

    def raw(self) -> TcpConnection:
        """A bare TCP connection to the server (for clients no HTTP library would be)."""
        conn = self.client.tcp_connect((SERVER, 80))
        self.client.poll(self.net.now)
        assert self.run(lambda: conn.established, 10)
        return conn

    def read_all(self, conn: TcpConnection, timeout: float = 30.0) -> bytes:
        got = bytearray()

        def done() -> bool:
            while (d := conn.recv()) is not None:
                if not d:
                    return True
                got.extend(d)
            return conn.closed

        self.run(done, timeout)
        return bytes(got)


@pytest.fixture
def lan(tmp_path: pathlib.Path) -> Iterator[Lan]:
    net = VirtualNetwork()
    server = Stack(ip=f"{SERVER}/24", rng=random.Random(1))
    client = Stack(ip=f"{CLIENT}/24", rng=random.Random(2))
    net.attach(server, FaultConfig(delay=0.001))
    net.attach(client, FaultConfig(delay=0.001))
    data = random.Random(3).randbytes(BIG)
    (tmp_path / "big.bin").write_bytes(data)
    (tmp_path / "small.txt").write_text("small\n")
    yield Lan(net, server, client, tmp_path, data)


def test_download_through_a_lossy_link_is_intact(lan: Lan) -> None:
    lan.net.ports[0].set_faults(FaultConfig(loss=0.05, delay=0.002, seed=7))
    lan.net.ports[1].set_faults(FaultConfig(loss=0.05, delay=0.002, seed=8))
    server = lan.serve()
    digest = hashlib.sha256()
    f = lan.fetch("/big.bin", on_data=digest.update)
    assert lan.run(lambda: f.done, 300)
    assert f.error is None and f.head is not None and f.head.status == 200
    assert f.received == BIG and digest.digest() == hashlib.sha256(lan.data).digest()
    assert lan.server.stats.drops.get("tcp_fast_retransmit", 0) + lan.server.stats.drops.get("tcp_rto", 0) > 0
    assert lan.run(lambda: server.open == 0, 10)


def test_forty_concurrent_downloads_complete_and_leave_no_connection(lan: Lan) -> None:
    server = lan.serve()
    mid = lan.data[:400_000]
    (lan.root / "mid.bin").write_bytes(mid)
    digests = [hashlib.sha256() for _ in range(40)]
    fetches = [lan.fetch("/mid.bin", on_data=d.update) for d in digests]
    assert lan.run(lambda: all(f.done for f in fetches), 600)
    want = hashlib.sha256(mid).digest()
    assert all(f.error is None and d.digest() == want for f, d in zip(fetches, digests, strict=True))
    assert server.accepted == 40 and server.statuses == {200: 40}
    assert lan.run(lambda: server.open == 0, 10)


def test_keep_alive_serves_pipelined_requests_on_one_connection(lan: Lan) -> None:
    server = lan.serve()
    conn = lan.raw()
    req = f"GET /small.txt HTTP/1.1\r\nHost: {SERVER}\r\n\r\n".encode()
    conn.send(req * 3 + f"GET /small.txt HTTP/1.1\r\nHost: {SERVER}\r\nConnection: close\r\n\r\n".encode())
    raw = lan.read_all(conn)
    assert raw.count(b"HTTP/1.1 200 OK") == 4 and raw.count(b"small\n") == 4
    assert server.accepted == 1 and server.requests == 4


def test_a_megabyte_of_header_garbage_gets_431_and_the_server_goes_on(lan: Lan) -> None:
    server = lan.serve(limits=ServerLimits(max_header_bytes=16 * 1024))
    conn = lan.raw()
    junk = b"GET / HTTP/1.1\r\nX-Junk: " + b"A" * 1_000_000
    sent = 0

    def push() -> bool:
        nonlocal sent
        if not conn.closed and sent < len(junk):
            try:
                sent += conn.send(memoryview(junk)[sent:])
            except OSError:
                return True
            lan.client.poll(lan.net.now)
        return conn.peer_eof or conn.closed

    lan.run(push, 60)
    reply = lan.read_all(conn)
    assert reply.startswith(b"HTTP/1.1 431 ")
    assert server.statuses.get(431) == 1
    f = lan.fetch("/small.txt")
    assert lan.run(lambda: f.done, 10) and f.head is not None and f.head.status == 200
    assert lan.run(lambda: server.open == 0, 10)


def test_slowloris_is_answered_408_and_cut_off(lan: Lan) -> None:
    server = lan.serve(limits=ServerLimits(header_timeout=5.0))
    conn = lan.raw()
    start = lan.net.now
    line = b"GET / HTTP/1.1\r\nX-Slow: " + b"z" * 100
    i = 0
    while not (conn.peer_eof or conn.closed) and i < len(line):
        conn.send(line[i : i + 1])  # one byte a second
        lan.client.poll(lan.net.now)
        i += 1
        lan.net.run_for(1.0)
    assert lan.read_all(conn).startswith(b"HTTP/1.1 408 ")
    assert lan.net.now - start < 9.0
    assert lan.run(lambda: server.open == 0, 10)


def test_client_reset_mid_response_leaves_no_connection(lan: Lan) -> None:
    server = lan.serve()
    f = lan.fetch("/big.bin", on_data=lambda d: None)
    assert lan.run(lambda: f.received > 200_000, 30)
    f.tcp.abort()
    lan.client.poll(lan.net.now)
    assert lan.run(lambda: server.open == 0, 10)
    assert not lan.server.tcp.connections


def test_client_that_stops_reading_is_reset_after_the_send_timeout(lan: Lan) -> None:
    server = lan.serve(limits=ServerLimits(send_timeout=20.0))
    conn = lan.raw()
    conn.send(f"GET /big.bin HTTP/1.1\r\nHost: {SERVER}\r\n\r\n".encode())
    lan.client.poll(lan.net.now)
    assert lan.run(lambda: server.open == 1, 10)
    start = lan.net.now
    assert lan.run(lambda: server.open == 0, 120)  # we never call conn.recv(): the window closes
    assert 20.0 <= lan.net.now - start < 60.0
    assert server.errors.get("timeout") == 1


def test_handler_failure_is_a_500_and_the_connection_lives_on(lan: Lan) -> None:
    def handler(req: Request) -> Response:
        if req.path == "/boom":
            raise RuntimeError("bug")
        return Response(200, [], req.body[::-1])

    server = lan.serve(handler)
    f = lan.fetch("/boom")
    assert lan.run(lambda: f.done, 10) and f.head is not None and f.head.status == 500
    p = lan.fetch("/echo", method="POST", body=b"abc")
    assert lan.run(lambda: p.done, 10) and bytes(p.body) == b"cba"
    assert server.errors.get("handler") == 1


def test_generator_body_is_streamed_chunked_and_closed(lan: Lan) -> None:
    closed = []

    def gen() -> Iterator[bytes]:
        try:
            for i in range(100):
                yield bytes([i]) * 10_000
        finally:
            closed.append(True)

    lan.serve(lambda req: Response(200, [], gen()))
    f = lan.fetch("/")
    assert lan.run(lambda: f.done, 30) and f.error is None
    assert f.head is not None and dict(f.head.headers).get("transfer-encoding") == "chunked"
    assert bytes(f.body) == b"".join(bytes([i]) * 10_000 for i in range(100)) and closed == [True]


def test_connections_beyond_the_limit_get_503(lan: Lan) -> None:
    server = lan.serve(limits=ServerLimits(max_connections=2))
    held = [lan.raw(), lan.raw()]
    lan.net.run_for(0.1)
    third = lan.raw()
    assert lan.read_all(third).startswith(b"HTTP/1.1 503 ")
    assert server.open == 2 and len(held) == 2


def test_fetch_of_a_closed_port_reports_refused(lan: Lan) -> None:
    f = lan.fetch("/")
    assert lan.run(lambda: f.done, 10)
    assert isinstance(f.error, ConnectionRefusedError)


def test_fetch_needs_an_address() -> None:
    with pytest.raises(ValueError, match="needs an address"):
        HttpFetch(Stack(ip="10.0.0.2/24"), "http://files.test/")
