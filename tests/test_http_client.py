"""The blocking and asyncio HTTP clients, and the asyncio server, between two seqs
hosts on a socket-pair link in real time (no root).  The server side is the
event-driven :class:`HttpServer` on a running :class:`Host`, or :func:`serve`
on an :class:`AsyncHost`.  Every wait is bounded by the clients' timeouts."""

from __future__ import annotations

import asyncio
import hashlib
import io
import pathlib
import random
import threading
from collections.abc import AsyncIterator, Iterator

import pytest

from seqs.cli.demo_responders import DnsResponder
from seqs.http import (
    AsyncHttpClient,
    HttpClient,
    HttpServer,
    RemoteProtocolError,
    Request,
    Response,
    ServerLimits,
    StaticFiles,
    StatusError,
    TooManyRedirects,
    serve,
)
from seqs.phy import socketpair_devices
from seqs.runtime import AsyncHost, Host
from seqs.wire.dns import Record

A, B = "10.0.0.1", "10.0.0.2"
DATA = random.Random(5).randbytes(2_000_000)


@pytest.fixture
def hosts() -> Iterator[tuple[Host, Host]]:
    a_dev, b_dev = socketpair_devices()
    a = Host(a_dev, ip=f"{A}/24")
    b = Host(b_dev, ip=f"{B}/24")
    try:
        yield a, b
    finally:
        a.runner.stop()
        b.runner.stop()
        a.close()
        b.close()
    assert a.runner.error is None and b.runner.error is None


def app(root: pathlib.Path) -> object:
    static = StaticFiles(root)

    def handler(req: Request) -> Response:
        if req.path == "/redirect":
            return Response(302, [("location", "/file.bin")])
        if req.path == "/loop":
            return Response(301, [("location", "/loop")])
        if req.path == "/see-other":
            return Response(303, [("location", "/method")])
        if req.path == "/method":
            return Response(200, [], f"{req.method} {len(req.body)}".encode())
        if req.path == "/chunked":
            return Response(200, [], iter([b"one ", b"two ", b"three"]))
        return static(req)

    return handler


@pytest.fixture
def server(hosts: tuple[Host, Host], tmp_path: pathlib.Path) -> Iterator[HttpServer]:
    a, _ = hosts
    (tmp_path / "file.bin").write_bytes(DATA)
    (tmp_path / "hello.txt").write_text("hello\n")
    with a.lock:
        srv = HttpServer(a.stack, app(tmp_path), 80, limits=ServerLimits(idle_timeout=1.0))  # type: ignore[arg-type]
        dns = DnsResponder(a.stack, [Record.a("files.test", A)])
    yield srv
    with a.lock:
        dns.close()
        srv.close()


def test_get_reads_the_body_and_keep_alive_reuses_one_connection(hosts: tuple[Host, Host],
                                                                  server: HttpServer) -> None:
    _, b = hosts
    with HttpClient(b, timeout=10) as client:
        for _ in range(3):
            r = client.get(f"http://{A}/hello.txt")
            assert (r.status, r.content, r.header("content-type")) == (200, b"hello\n", "text/plain; charset=utf-8")
        big = client.get(f"http://{A}/file.bin")
        assert hashlib.sha256(big.content).digest() == hashlib.sha256(DATA).digest()
        assert client.connections_opened == 1 and server.accepted == 1 and server.requests == 4


def test_names_are_resolved_through_the_seqs_dns_client(hosts: tuple[Host, Host], server: HttpServer) -> None:
    _, b = hosts
    b.stack.dns_servers.append(A)
    with HttpClient(b, timeout=10) as client:
        r = client.get("http://files.test/hello.txt")
        assert r.content == b"hello\n"


def test_redirects_are_followed_and_bounded(hosts: tuple[Host, Host], server: HttpServer) -> None:
    _, b = hosts
    with HttpClient(b, timeout=10) as client:
        r = client.get(f"http://{A}/redirect")
        assert r.status == 200 and r.url == f"http://{A}/file.bin" and len(r.content) == len(DATA)
        r = client.post(f"http://{A}/see-other", b"payload")
        assert r.content == b"GET 0"  # 303: the follow-up is a GET without the body
        with pytest.raises(TooManyRedirects):
            client.get(f"http://{A}/loop")
        r = client.get(f"http://{A}/redirect", follow_redirects=False)
        assert r.status == 302 and r.header("location") == "/file.bin"


def test_chunked_body_and_post(hosts: tuple[Host, Host], server: HttpServer) -> None:
    _, b = hosts
    with HttpClient(b, timeout=10) as client:
        r = client.get(f"http://{A}/chunked")
        assert r.header("transfer-encoding") == "chunked" and r.content == b"one two three"
        assert client.post(f"http://{A}/method", b"x" * 1000).content == b"POST 1000"
        assert client.head(f"http://{A}/file.bin").header("content-length") == str(len(DATA))


def test_download_streams_to_a_file_with_progress(hosts: tuple[Host, Host], server: HttpServer,
                                                  tmp_path: pathlib.Path) -> None:
    _, b = hosts
    calls: list[tuple[int, int | None]] = []
    with HttpClient(b, timeout=10) as client:
        client.download(f"http://{A}/file.bin", tmp_path / "got.bin", progress=lambda g, t: calls.append((g, t)))
        assert (tmp_path / "got.bin").read_bytes() == DATA
        assert calls[-1] == (len(DATA), len(DATA)) and len(calls) > 1
        with pytest.raises(StatusError, match="404"):
            client.download(f"http://{A}/nope", io.BytesIO())


def test_a_stalled_body_times_out(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    with a.create_server(("", 8080)) as lst, HttpClient(b, timeout=0.5) as client:
        stop = threading.Event()

        def half_answer() -> None:
            conn, _ = lst.accept()
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345")
            stop.wait(5)
            conn.close()

        t = threading.Thread(target=half_answer, daemon=True)
        t.start()
        with pytest.raises(TimeoutError):
            client.get(f"http://{A}:8080/")
        stop.set()
        t.join(5)


def test_refused_connection_and_unsupported_urls(hosts: tuple[Host, Host]) -> None:
    _, b = hosts
    with HttpClient(b, timeout=5) as client:
        with pytest.raises(ConnectionRefusedError):
            client.get(f"http://{A}:81/")
        with pytest.raises(ValueError, match="https"):
            client.get(f"https://{A}/")
        with pytest.raises(ValueError, match="not an http"):
            client.get(f"ftp://{A}/")


def test_a_connection_the_server_closed_while_idle_is_replaced(hosts: tuple[Host, Host],
                                                              server: HttpServer) -> None:
    _, b = hosts
    with HttpClient(b, timeout=10) as client:
        assert client.get(f"http://{A}/hello.txt").status == 200
        b.wait_for(lambda: server.open == 0, 5.0)  # the server's idle timeout (1 s) closed it
        assert client.get(f"http://{A}/hello.txt").status == 200
        assert client.connections_opened == 2


def test_garbage_from_the_server_is_a_remote_protocol_error(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    with a.create_server(("", 8080)) as lst, HttpClient(b, timeout=5) as client:
        def answer() -> None:
            conn, _ = lst.accept()
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 nonsense\r\n\r\n")
            conn.close()

        t = threading.Thread(target=answer, daemon=True)
        t.start()
        with pytest.raises(RemoteProtocolError):
            client.get(f"http://{A}:8080/")
        t.join(5)


# -- asyncio -------------------------------------------------------------------------------------


async def _aio_pair() -> tuple[AsyncHost, AsyncHost]:
    a_dev, b_dev = socketpair_devices()
    return AsyncHost(a_dev, ip=f"{A}/24"), AsyncHost(b_dev, ip=f"{B}/24")


def test_asyncio_server_and_client(tmp_path: pathlib.Path) -> None:
    (tmp_path / "file.bin").write_bytes(DATA)
    static = StaticFiles(tmp_path)

    async def body() -> AsyncIterator[bytes]:
        for i in range(5):
            await asyncio.sleep(0)
            yield f"part{i} ".encode()

    async def handler(req: Request) -> Response:
        if req.path == "/stream":
            return Response(200, [], body())
        if req.path == "/sync":
            return Response.text(200, "sync")
        return static(req)

    async def main() -> None:
        a, b = await _aio_pair()
        try:
            server = await serve(a, handler, 80)
            b.stack.dns_servers.append(A)
            dns = DnsResponder(a.stack, [Record.a("files.test", A)])
            client = AsyncHttpClient(b, timeout=10)
            r = await client.get("http://files.test/file.bin")
            assert r.status == 200 and hashlib.sha256(await r.read()).digest() == hashlib.sha256(DATA).digest()
            r = await client.get(f"http://{A}/stream")
            assert r.header("transfer-encoding") == "chunked"
            assert await r.read() == b"part0 part1 part2 part3 part4 "
            r = await client.get(f"http://{A}/nope")
            assert r.status == 404
            assert client.connections_opened == 1 and server.requests == 3
            await client.aclose()
            dns.close()
            server.close()
            await asyncio.wait_for(server.wait_closed(), 5)
        finally:
            a.close()
            b.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_asyncio_server_times_out_a_slowloris(tmp_path: pathlib.Path) -> None:
    async def main() -> None:
        a, b = await _aio_pair()
        try:
            server = await serve(a, lambda req: Response.text(200, "x"), 80,
                                 limits=ServerLimits(header_timeout=0.5))
            reader, writer = await b.open_connection(A, 80)
            writer.write(b"GET / HTTP/1.1\r\n")
            reply = await asyncio.wait_for(reader.read(), 5)
            assert reply.startswith(b"HTTP/1.1 408 ")
            writer.close()
            server.close()
            await asyncio.wait_for(server.wait_closed(), 5)
        finally:
            a.close()
            b.close()

    asyncio.run(asyncio.wait_for(main(), 30))
