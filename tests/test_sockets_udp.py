"""UDP sockets (RFC 768, RFC 1122 §4.1, RFC 6056 for port choice) and the ping socket,
driven frame by frame on virtual time."""

from __future__ import annotations

import errno
import itertools

import pytest

from helpers import (
    OTHER_IP,
    OUR_IP,
    PEER_IP,
    PEER_MAC,
    SUBNET_BROADCAST,
    ip_frame,
    make_stack,
    parse_all,
    ready_stack,
    sent_icmp,
    sent_ip,
    udp_frame,
)
from seqs.sockets.base import EPHEMERAL_HIGH, EPHEMERAL_LOW
from seqs.wire import ethernet as weth
from seqs.wire import icmp as wicmp
from seqs.wire import ipv4 as wip
from seqs.wire import udp as wudp
from seqs.wire.icmp import IcmpMessage
from seqs.wire.udp import UdpDatagram


def _bound(s, port: int = 9, host: str = ""):
    sock = s.udp_socket()
    sock.bind((host, port))
    return sock


def _drain(sock) -> list:
    out = []
    for _ in range(10_000):
        got = sock.recvfrom()
        if got is None:
            return out
        out.append(got)
    raise AssertionError("socket queue does not drain")


# -- binding ------------------------------------------------------------------------------


def test_bind_to_an_explicit_port_receives_its_datagrams() -> None:
    s = make_stack()
    sock = _bound(s, 9)
    assert sock.local_address == ("10.0.0.1", 9)
    s.receive(udp_frame(1000, 9, b"hi"), 1.0)
    assert _drain(sock) == [(b"hi", ("10.0.0.2", 1000))]
    assert s.stats.udp_rx == 1


def test_bind_to_port_zero_picks_an_ephemeral_port() -> None:
    s = make_stack()
    sock = _bound(s, 0)
    assert EPHEMERAL_LOW <= sock.local_port <= EPHEMERAL_HIGH


def test_sending_from_an_unbound_socket_binds_an_ephemeral_port() -> None:
    s = ready_stack()
    sock = s.udp_socket()
    sock.sendto(b"x", ("10.0.0.2", 53))
    ((hdr, payload),) = sent_ip(s)
    dgram = UdpDatagram.parse(payload, hdr.src, hdr.dst)
    assert dgram.sport == sock.local_port and EPHEMERAL_LOW <= dgram.sport <= EPHEMERAL_HIGH


def test_ephemeral_ports_are_random_over_the_dynamic_range() -> None:
    """RFC 6056 §3.3.1 (Algorithm 1): each choice starts at a random point of the range,
    so successive ports are not predictable from the previous one."""
    s = make_stack(seed=7)
    ports = [_bound(s, 0).local_port for _ in range(300)]
    assert all(EPHEMERAL_LOW <= p <= EPHEMERAL_HIGH for p in ports)
    assert len(set(ports)) == 300
    steps = [b - a for a, b in itertools.pairwise(ports)]
    assert sum(1 for d in steps if abs(d) <= 2) < 10, "ports look sequential"
    lows = sum(1 for p in ports if p < (EPHEMERAL_LOW + EPHEMERAL_HIGH) // 2)
    assert 100 < lows < 200, "ports do not cover the range evenly"
    other = make_stack(seed=8)
    assert [_bound(other, 0).local_port for _ in range(5)] != ports[:5]


def test_binding_a_port_in_use_raises_eaddrinuse() -> None:
    s = make_stack()
    _bound(s, 9)
    with pytest.raises(OSError) as e:
        _bound(s, 9)
    assert e.value.errno == errno.EADDRINUSE


def test_binding_twice_or_to_a_foreign_address_is_refused() -> None:
    s = make_stack()
    sock = _bound(s, 9)
    with pytest.raises(OSError) as e:
        sock.bind(("", 10))
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        s.udp_socket().bind(("10.0.0.99", 10))
    assert e.value.errno == errno.EADDRNOTAVAIL


def test_close_unbinds_the_port() -> None:
    """After close the port is free again, and datagrams to it meet a closed port (RFC 1122 §4.1.3.1)."""
    s = ready_stack()
    sock = _bound(s, 9)
    sock.close()
    s.receive(udp_frame(1000, 9, b"late"), 1.0)
    ((_, msg),) = sent_icmp(s)
    assert (msg.type, msg.code) == (wicmp.TYPE_DEST_UNREACHABLE, wicmp.CODE_PORT_UNREACHABLE)
    with pytest.raises(OSError) as e:
        sock.sendto(b"x", ("10.0.0.2", 9))
    assert e.value.errno == errno.EBADF
    again = _bound(s, 9)
    s.receive(udp_frame(1000, 9, b"new"), 2.0)
    assert _drain(again) == [(b"new", ("10.0.0.2", 1000))]


# -- sending and receiving --------------------------------------------------------------------


def test_sendto_emits_one_checksummed_datagram_and_recvfrom_returns_the_answer() -> None:
    s = ready_stack()
    sock = _bound(s, 5000)
    s.poll(1.0)
    assert sock.sendto(b"question", ("10.0.0.2", 53)) == 8
    (frame,) = parse_all(s.take_tx())
    assert frame.dst == PEER_MAC
    hdr, payload = wip.Ipv4Header.parse(frame.payload)
    assert (hdr.src, hdr.dst, hdr.proto) == (OUR_IP, PEER_IP, wip.PROTO_UDP)
    assert UdpDatagram.parse(payload, hdr.src, hdr.dst) == UdpDatagram(5000, 53, b"question")
    s.receive(udp_frame(53, 5000, b"answer"), 1.1)
    assert sock.recvfrom() == (b"answer", ("10.0.0.2", 53))
    assert sock.recvfrom() is None
    assert (s.stats.udp_tx, s.stats.udp_rx) == (1, 1)


def test_several_sockets_each_get_their_own_datagrams() -> None:
    s = make_stack()
    socks = {port: _bound(s, port) for port in (7, 9, 53)}
    for port in (53, 7, 9, 7):
        s.receive(udp_frame(1000, port, b"to %d" % port), 1.0)
    assert [d for d, _ in _drain(socks[7])] == [b"to 7", b"to 7"]
    assert [d for d, _ in _drain(socks[9])] == [b"to 9"]
    assert [d for d, _ in _drain(socks[53])] == [b"to 53"]


@pytest.mark.parametrize("dst", ["255.255.255.255", "10.0.0.255"])
def test_sending_to_a_broadcast_address_needs_the_broadcast_flag(dst: str) -> None:
    """BSD SO_BROADCAST semantics: EACCES unless the socket allows broadcast."""
    s = make_stack()
    sock = s.udp_socket()
    with pytest.raises(PermissionError):
        sock.sendto(b"all", (dst, 67))
    assert s.take_tx() == []
    sock.broadcast = True
    sock.sendto(b"all", (dst, 67))
    (frame,) = parse_all(s.take_tx())  # no ARP for a broadcast (RFC 1122 §3.3.6)
    assert frame.dst == weth.BROADCAST
    assert wip.Ipv4Header.parse(frame.payload)[0].dst == wip.aton(dst)


def test_socket_bound_to_our_address_does_not_receive_broadcasts() -> None:
    s = make_stack()
    specific = _bound(s, 9, "10.0.0.1")
    s.receive(udp_frame(1000, 9, b"bcast", dst=SUBNET_BROADCAST, mac_dst=weth.BROADCAST), 1.0)
    assert _drain(specific) == []
    s.receive(udp_frame(1000, 9, b"unicast"), 1.0)
    assert [d for d, _ in _drain(specific)] == [b"unicast"]


def test_connected_socket_accepts_only_its_peer() -> None:
    """RFC 1122 §4.1.3.4 / BSD connect(): a connected UDP socket receives only from the
    address and port it is connected to."""
    s = ready_stack()
    sock = s.udp_socket()
    sock.connect(("10.0.0.2", 53))
    s.receive(udp_frame(53, sock.local_port, b"from peer"), 1.0)
    s.receive(udp_frame(54, sock.local_port, b"other port"), 1.0)
    s.receive(udp_frame(53, sock.local_port, b"other host", src=OTHER_IP), 1.0)
    assert _drain(sock) == [(b"from peer", ("10.0.0.2", 53))]
    assert s.stats.drops["udp_no_socket"] == 2


def test_receive_buffer_is_bounded_and_overflow_counted() -> None:
    s = make_stack()
    sock = _bound(s)
    sock.rcvbuf = 1000
    for i in range(4):
        s.receive(udp_frame(1000, 9, bytes([i]) * 400), 1.0)
    assert sock.pending == 2
    assert s.stats.drops == {"udp_rcvbuf_full": 2}
    assert sock.recv() == bytes([0]) * 400
    s.receive(udp_frame(1000, 9, b"\x09" * 400), 1.0)  # room again
    assert [d[0] for d, _ in _drain(sock)] == [1, 9]


def test_datagram_with_bad_checksum_is_dropped() -> None:
    """RFC 1122 §4.1.3.4: a datagram with a bad checksum MUST be silently discarded."""
    s = ready_stack()
    sock = _bound(s)
    frame = bytearray(udp_frame(1000, 9, b"hello"))
    frame[-1] ^= 0x01
    s.receive(bytes(frame), 1.0)
    assert _drain(sock) == []
    assert s.stats.drops == {"udp_bad_checksum": 1}
    assert s.take_tx() == []  # and no ICMP about it


def test_datagram_without_checksum_is_accepted() -> None:
    """RFC 768: an all-zero checksum means the sender computed none."""
    s = make_stack()
    sock = _bound(s)
    udp = wudp.build_header(PEER_IP, OUR_IP, 1000, 9, b"plain", compute=False) + b"plain"
    s.receive(ip_frame(wip.PROTO_UDP, udp), 1.0)
    assert _drain(sock) == [(b"plain", ("10.0.0.2", 1000))]


@pytest.mark.parametrize(("length", "reason"), [(7, "udp_bad_length"), (200, "udp_bad_length")])
def test_udp_length_outside_header_and_packet_is_dropped(length: int, reason: str) -> None:
    s = make_stack()
    sock = _bound(s)
    udp = bytearray(wudp.build_header(PEER_IP, OUR_IP, 1000, 9, b"x", compute=False) + b"x")
    udp[4:6] = length.to_bytes(2, "big")
    s.receive(ip_frame(wip.PROTO_UDP, bytes(udp)), 1.0)
    s.receive(ip_frame(wip.PROTO_UDP, bytes(udp[:7])), 1.0)
    assert _drain(sock) == []
    assert s.stats.drops == {reason: 1, "udp_truncated": 1}


def test_bytes_beyond_the_udp_length_are_not_data() -> None:
    """RFC 768: the length field covers header and data; what follows is not the datagram's."""
    s = make_stack()
    sock = _bound(s)
    udp = UdpDatagram(1000, 9, b"data").emit(PEER_IP, OUR_IP)
    s.receive(ip_frame(wip.PROTO_UDP, udp + b"trailer"), 1.0)
    assert _drain(sock) == [(b"data", ("10.0.0.2", 1000))]


def test_readiness_callback_runs_once_after_the_frame_is_processed() -> None:
    s = make_stack()
    sock = _bound(s)
    calls: list[int] = []
    sock.on_event = lambda: calls.append(sock.pending)
    s.receive(udp_frame(1000, 9, b"a"), 1.0)
    assert calls == [1]
    s.receive(udp_frame(1000, 9, b"b"), 1.0)
    assert calls == [1, 2]


# -- the ping socket ---------------------------------------------------------------------------


def _echo_reply_to(request_payload: bytes, *, ident: int | None = None) -> bytes:
    req = IcmpMessage.parse(request_payload)
    rest = req.rest if ident is None else (ident << 16 | (req.rest & 0xFFFF))
    return ip_frame(wip.PROTO_ICMP, IcmpMessage(wicmp.TYPE_ECHO_REPLY, 0, rest, req.payload).emit())


def test_ping_socket_sends_echo_requests_and_reports_replies_with_their_time() -> None:
    s = ready_stack()
    ping = s.ping_socket()
    s.poll(1.0)
    ping.send("10.0.0.2", 1, b"abc")
    ((hdr, payload),) = sent_ip(s)
    req = IcmpMessage.parse(payload)
    assert (hdr.dst, req.type, req.rest, req.payload) == (PEER_IP, wicmp.TYPE_ECHO_REQUEST, ping.ident << 16 | 1, b"abc")
    s.receive(_echo_reply_to(payload), 1.25)
    reply = ping.recv()
    assert reply is not None
    assert (reply.src, reply.seq, reply.payload) == ("10.0.0.2", 1, b"abc")
    assert reply.time - ping.sent[1] == pytest.approx(0.25)


def test_ping_sockets_receive_only_replies_with_their_own_identifier() -> None:
    s = ready_stack()
    a, b = s.ping_socket(), s.ping_socket()
    assert a.ident != b.ident
    a.send("10.0.0.2", 1)
    b.send("10.0.0.2", 2)
    (_, pa), (_, pb) = sent_ip(s)
    s.receive(_echo_reply_to(pb), 1.0)
    s.receive(_echo_reply_to(pa, ident=(a.ident ^ b.ident ^ 0x5555) & 0xFFFF), 1.0)  # nobody's
    s.receive(_echo_reply_to(pa), 1.0)
    ra, rb = a.recv(), b.recv()
    assert ra is not None and rb is not None
    assert (ra.seq, rb.seq) == (1, 2)
    assert a.recv() is None and b.recv() is None


def test_closed_ping_socket_gets_no_more_replies() -> None:
    s = ready_stack()
    ping = s.ping_socket()
    ping.send("10.0.0.2", 1)
    ((_, payload),) = sent_ip(s)
    ping.close()
    s.receive(_echo_reply_to(payload), 1.0)
    assert ping.recv() is None
    assert s.stats.drops == {"icmp_echo_reply_unexpected": 1}
