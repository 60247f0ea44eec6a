"""The sans-IO HTTP connection (``seqs.http._protocol``): bytes and time in, bytes
and deadlines out, no TCP.  Each test states one rule a server on the open
network keeps (RFC 9110/9112, RFC 6585), driven with explicit time."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqs.http import ClientConnection, Request, Response, ResponseHead, ServerConnection, ServerLimits
from seqs.http._protocol import ABORT, BODY, CLOSE, END, HANDLER, HEAD, LINGER, SEND

GET = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"


def drain(c: ServerConnection, now: float = 0.0, max_bytes: int = 1 << 20) -> bytes:
    """Everything the connection has to send, as if the transport took it all."""
    out = bytearray()
    while (piece := c.output(max_bytes)) is not None:
        out += piece
        c.consumed(len(piece), now)
    return bytes(out)


def serve_one(c: ServerConnection, data: bytes, response: Response, now: float = 0.0) -> tuple[Request, bytes]:
    c.receive_data(data, now)
    req = c.next_request(now)
    assert req is not None
    c.respond(response, now)
    return req, drain(c, now)


def parse(raw: bytes, method: str = "GET") -> tuple[ResponseHead, bytes]:
    """A client's reading of ``raw`` (h11 on the other side)."""
    cc = ClientConnection()
    cc.request(method, "/", [("host", "a")])
    cc.receive_data(raw)
    head = cc.next_event()
    assert isinstance(head, ResponseHead)
    body = bytearray()
    while (ev := cc.next_event()) not in (None, END):
        assert isinstance(ev, bytes)
        body += ev
    return head, bytes(body)


def test_request_reaches_the_handler_with_decoded_path_and_headers() -> None:
    c = ServerConnection(ServerLimits(), 0.0, ("10.0.0.2", 5000))
    c.receive_data(b"GET /a%20b/c?q=1 HTTP/1.1\r\nHost: h\r\nX-Thing: v\r\n\r\n", 0.0)
    req = c.next_request(0.0)
    assert req is not None and c.state == HANDLER
    assert (req.method, req.path, req.query, req.header("x-thing"), req.peer) == \
        ("GET", "/a b/c", "q=1", "v", ("10.0.0.2", 5000))


def test_bytes_body_gets_content_length_and_a_reason_phrase() -> None:
    c = ServerConnection(ServerLimits(), 0.0)
    _, raw = serve_one(c, GET, Response(200, [("content-type", "text/plain")], b"hello"))
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    head, body = parse(raw)
    assert dict(head.headers)["content-length"] == "5" and body == b"hello"


def test_keep_alive_serves_pipelined_requests_in_order() -> None:
    c = ServerConnection(ServerLimits(), 0.0)
    c.receive_data(GET.replace(b"/x", b"/1") + GET.replace(b"/x", b"/2"), 0.0)
    paths = []
    for _ in range(2):
        req = c.next_request(0.0)
        assert req is not None
        paths.append(req.path)
        c.respond(Response(200, [], req.path.encode()), 0.0)
        drain(c)
        assert c.state == HEAD  # RFC 9112 §9.3: persistent by default
    assert paths == ["/1", "/2"] and c.requests == 2


def test_http_1_0_client_gets_close_delimited_iterable_and_fin() -> None:
    c = ServerConnection(ServerLimits(), 0.0)
    _, raw = serve_one(c, b"GET / HTTP/1.0\r\n\r\n", Response(200, [], iter([b"ab", b"cd"])))
    assert b"connection: close" in raw.lower() and raw.endswith(b"abcd")
    assert c.state == LINGER and c.wants_fin


def test_iterable_body_is_chunked_for_http_1_1() -> None:
    c = ServerConnection(ServerLimits(), 0.0)
    _, raw = serve_one(c, GET, Response(200, [], iter([b"hello ", b"", b"world"])))
    assert b"transfer-encoding: chunked" in raw.lower()
    assert parse(raw)[1] == b"hello world" and c.state == HEAD


def test_output_reads_no_more_body_than_asked() -> None:
    c = ServerConnection(ServerLimits(), 0.0)
    c.receive_data(GET, 0.0)
    assert c.next_request(0.0) is not None
    c.respond(Response(200, [], b"x" * 100_000), 0.0)
    head = c.output(1000)
    assert head is not None and bytes(head).startswith(b"HTTP/1.1 200")
    c.consumed(len(head), 0.0)
    piece = c.output(1000)
    assert piece is not None and len(piece) == 1000


def test_partial_send_of_a_scratch_view_survives_reuse_of_the_scratch_buffer(tmp_path: object) -> None:
    import pathlib

    from seqs.http import FileBody

    p = pathlib.Path(str(tmp_path)) / "f"
    p.write_bytes(bytes(range(256)) * 64)
    scratch = bytearray(1024)
    c = ServerConnection(ServerLimits(), 0.0, scratch=scratch)
    c.receive_data(GET, 0.0)
    assert c.next_request(0.0) is not None
    c.respond(Response(200, [], FileBody(str(p))), 0.0)
    head = c.output(1 << 20)
    assert head is not None
    c.consumed(len(head), 0.0)
    piece = c.output(1024)
    assert piece is not None
    first = bytes(piece)
    c.consumed(10, 0.0)
    scratch[:] = b"\xff" * 1024  # another connection's read
    rest = c.output(1024)
    assert rest is not None and bytes(rest) == first[10:]


def test_head_response_has_the_get_headers_and_no_body() -> None:
    c = ServerConnection(ServerLimits(), 0.0)
    _, raw = serve_one(c, b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n", Response(200, [], b"x" * 5000))
    head, body = parse(raw, "HEAD")
    assert dict(head.headers)["content-length"] == "5000" and body == b"" and raw.endswith(b"\r\n\r\n")
    assert c.state == HEAD


def test_oversized_head_gets_431_then_linger_and_close() -> None:
    lim = ServerLimits(max_header_bytes=1024)
    c = ServerConnection(lim, 0.0)
    c.receive_data(b"GET / HTTP/1.1\r\nX: " + b"a" * 5000, 0.0)
    assert c.next_request(0.0) is None
    raw = drain(c)
    assert raw.startswith(b"HTTP/1.1 431 ") and b"connection: close" in raw.lower()
    assert c.state == LINGER and c.wants_fin
    c.receive_data(b"more garbage", 0.1)  # read and thrown away while lingering
    c.receive_data(b"", 0.2)
    assert c.state == CLOSE


def test_declared_body_over_the_limit_gets_413_at_once() -> None:
    c = ServerConnection(ServerLimits(max_body_bytes=100), 0.0)
    c.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n", 0.0)
    assert c.next_request(0.0) is None
    assert drain(c).startswith(b"HTTP/1.1 413 ")


def test_chunked_body_over_the_limit_gets_413() -> None:
    c = ServerConnection(ServerLimits(max_body_bytes=100), 0.0)
    c.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 0.0)
    assert c.next_request(0.0) is None
    c.receive_data(b"80\r\n" + b"z" * 128 + b"\r\n", 0.0)
    assert c.next_request(0.0) is None
    assert drain(c).startswith(b"HTTP/1.1 413 ")


def test_chunked_request_body_is_reassembled() -> None:
    c = ServerConnection(ServerLimits(), 0.0)
    c.receive_data(b"POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", 0.0)
    req = c.next_request(0.0)
    assert req is not None and req.body == b"abcde"


def test_expect_100_continue_is_answered_before_the_body() -> None:
    c = ServerConnection(ServerLimits(), 0.0)
    c.receive_data(b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n", 0.0)
    assert c.next_request(0.0) is None
    assert drain(c).startswith(b"HTTP/1.1 100 ")
    c.receive_data(b"abc", 0.0)
    req = c.next_request(0.0)
    assert req is not None and req.body == b"abc"


@pytest.mark.parametrize("garbage", [b"\x00\x01\x02 nonsense\r\n\r\n", b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
                                     b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"])
def test_malformed_request_gets_400(garbage: bytes) -> None:
    c = ServerConnection(ServerLimits(), 0.0)
    c.receive_data(garbage, 0.0)
    assert c.next_request(0.0) is None
    assert drain(c).startswith(b"HTTP/1.1 400 ")


def test_slowloris_head_times_out_from_its_first_byte_despite_trickling() -> None:
    lim = ServerLimits(header_timeout=5.0)
    c = ServerConnection(lim, 0.0)
    for i in range(4):  # a byte every second keeps nothing alive
        c.receive_data(b"GET / HTTP/1.1\r\nX-a: "[i : i + 1], 1.0 + i)
        assert c.next_request(1.0 + i) is None
    assert c.deadline() == 6.0
    c.on_timer(6.0)
    assert drain(c, 6.0).startswith(b"HTTP/1.1 408 ") and c.state == LINGER


def test_silent_connection_is_closed_after_the_header_timeout() -> None:
    c = ServerConnection(ServerLimits(header_timeout=3.0), 10.0)
    assert c.deadline() == 13.0
    c.on_timer(12.9)
    assert c.state == HEAD
    c.on_timer(13.0)
    assert c.state == CLOSE and drain(c) == b""


def test_idle_keep_alive_connection_closes_quietly_after_idle_timeout() -> None:
    c = ServerConnection(ServerLimits(idle_timeout=7.0), 0.0)
    serve_one(c, GET, Response(200, [], b"ok"), now=1.0)
    assert c.state == HEAD and c.deadline() == 8.0
    c.on_timer(8.0)
    assert c.state == CLOSE and c.error is None


def test_client_that_stops_reading_is_aborted_after_send_timeout() -> None:
    c = ServerConnection(ServerLimits(send_timeout=4.0), 0.0)
    c.receive_data(GET, 0.0)
    assert c.next_request(0.0) is not None
    c.respond(Response(200, [], b"x" * 10_000), 0.0)
    piece = c.output(100)
    assert piece is not None
    c.consumed(len(piece), 1.0)
    assert c.deadline() == 5.0
    c.on_timer(5.0)
    assert c.state == ABORT and c.error == "timeout"


def test_body_stall_gets_408() -> None:
    c = ServerConnection(ServerLimits(body_timeout=2.0), 0.0)
    c.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc", 0.0)
    assert c.next_request(0.0) is None and c.state == BODY
    c.on_timer(2.0)
    assert drain(c).startswith(b"HTTP/1.1 408 ")


def test_client_close_between_requests_is_a_normal_end() -> None:
    c = ServerConnection(ServerLimits(), 0.0)
    serve_one(c, GET, Response(200, [], b"ok"))
    c.receive_data(b"", 1.0)
    assert c.next_request(1.0) is None
    assert c.state == CLOSE and c.error is None


def test_body_shorter_than_its_declared_length_aborts() -> None:
    c = ServerConnection(ServerLimits(), 0.0)
    c.receive_data(GET, 0.0)
    assert c.next_request(0.0) is not None
    c.respond(Response(200, [("content-length", "10")], iter([b"abc"])), 0.0)
    drain(c)
    assert c.state == ABORT


def test_respond_outside_handler_state_is_a_local_error() -> None:
    from seqs.http import LocalProtocolError

    c = ServerConnection(ServerLimits(), 0.0)
    with pytest.raises(LocalProtocolError):
        c.respond(Response(), 0.0)
    assert c.state == HEAD and SEND != HEAD


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_hostile_bytes_never_raise_from_the_server_side(chunks: list[bytes]) -> None:
    """h11's rule, kept: whatever arrives, the server side answers or waits, never raises."""
    c = ServerConnection(ServerLimits(max_header_bytes=512, max_body_bytes=256), 0.0)
    for i, chunk in enumerate(chunks):
        c.receive_data(chunk, float(i))
        while (req := c.next_request(float(i))) is not None:
            c.respond(Response(200, [], req.body), float(i))
            drain(c, float(i))
        drain(c, float(i))
    c.on_timer(1000.0)
    drain(c, 1000.0)


def test_client_reads_chunked_and_close_delimited_bodies() -> None:
    cc = ClientConnection()
    cc.request("GET", "/", [("host", "a")])
    cc.receive_data(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    assert isinstance(cc.next_event(), ResponseHead)
    assert cc.next_event() == b"abc" and cc.next_event() is END and cc.reusable
    cc = ClientConnection()
    cc.request("GET", "/", [("host", "a")])
    cc.receive_data(b"HTTP/1.1 200 OK\r\n\r\nuntil the end")
    assert isinstance(cc.next_event(), ResponseHead) and cc.next_event() == b"until the end"
    assert cc.next_event() is None
    cc.receive_data(b"")
    assert cc.next_event() is END and not cc.reusable


def test_client_raises_remote_error_on_a_malformed_response() -> None:
    from seqs.http import RemoteProtocolError

    cc = ClientConnection()
    cc.request("GET", "/", [("host", "a")])
    cc.receive_data(b"HTTP/1.1 abc\r\n\r\n")
    with pytest.raises(RemoteProtocolError):
        cc.next_event()


def test_http_2_request_line_gets_505() -> None:
    c = ServerConnection(ServerLimits(), 0.0)
    c.receive_data(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 0.0)
    assert c.next_request(0.0) is None
    assert drain(c).startswith(b"HTTP/1.1 505 ")
