"""UDP datagrams (RFC 768) and their pseudo-header checksum, with scapy's ``UDP`` as the oracle."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP

from seqs.errors import ParseError
from seqs.wire.checksum import checksum, pseudo_header_sum
from seqs.wire.ipv4 import PROTO_UDP, Ipv4Header, Ipv4View, aton, ntoa
from seqs.wire.udp import HEADER_LEN, UdpDatagram, UdpView, build_header

A = aton("192.0.2.1")
B = aton("198.51.100.7")

addrs = st.integers(0, 0xFFFFFFFF)
ports = st.integers(0, 0xFFFF)
datagrams = st.builds(UdpDatagram, sport=ports, dport=ports, payload=st.binary(max_size=300))


def payload_whose_checksum_is_zero(src: int, dst: int, sport: int, dport: int) -> bytes:
    """Two bytes chosen so the one's-complement sum is -0 and the computed checksum 0.

    With the word w at 0 the sum is S; setting w = ~S makes it S + ~S = 0xFFFF.
    """
    hdr = struct.pack("!HHHH", sport, dport, HEADER_LEN + 2, 0)
    w = checksum(hdr + b"\x00\x00", pseudo_header_sum(src, dst, PROTO_UDP, HEADER_LEN + 2))
    return w.to_bytes(2, "big")


# --- round trip -------------------------------------------------------------


def test_datagram_round_trips() -> None:
    d = UdpDatagram(5353, 53, b"query")
    b = d.emit(A, B)
    assert int.from_bytes(b[4:6], "big") == HEADER_LEN + 5
    assert UdpDatagram.parse(b, A, B) == d


def test_empty_datagram_round_trips() -> None:
    assert UdpDatagram.parse(UdpDatagram(1, 2).emit(A, B), A, B) == UdpDatagram(1, 2)


@given(datagrams, addrs, addrs)
def test_any_datagram_round_trips(d: UdpDatagram, src: int, dst: int) -> None:
    assert UdpDatagram.parse(d.emit(src, dst), src, dst) == d


# --- scapy as oracle --------------------------------------------------------


@given(datagrams, addrs, addrs)
def test_scapy_dissects_seqs_datagrams_with_same_fields_and_checksum(
    d: UdpDatagram, src: int, dst: int
) -> None:
    b = d.emit(src, dst)
    pkt = IP(bytes(IP(src=ntoa(src), dst=ntoa(dst), proto=PROTO_UDP) / b))
    u = pkt[UDP]
    assert (u.sport, u.dport, u.len) == (d.sport, d.dport, len(b))
    assert bytes(u.payload) == d.payload
    u.chksum = None  # scapy fills in its own: it must match ours byte for byte
    assert bytes(pkt)[20:] == b


@given(datagrams, addrs, addrs)
def test_seqs_parses_scapy_datagrams_with_same_fields(d: UdpDatagram, src: int, dst: int) -> None:
    b = bytes(IP(src=ntoa(src), dst=ntoa(dst)) / UDP(sport=d.sport, dport=d.dport) / d.payload)
    ip = Ipv4View(b)
    v = UdpView(ip.payload)
    assert v.checksum_ok(src, dst)
    assert (v.sport, v.dport, v.length, bytes(v.payload)) == (
        d.sport,
        d.dport,
        HEADER_LEN + len(d.payload),
        d.payload,
    )
    assert UdpDatagram.parse(ip.payload, src, dst) == d


def test_build_header_matches_emit_and_scapy() -> None:
    hdr = build_header(A, B, 1234, 80, b"abc")
    assert hdr + b"abc" == UdpDatagram(1234, 80, b"abc").emit(A, B)
    assert bytes(IP(src=ntoa(A), dst=ntoa(B)) / UDP(sport=1234, dport=80) / b"abc")[20:28] == hdr


# --- the zero checksum --------------------------------------------------------


def test_udp_zero_checksum_means_none_on_receive() -> None:
    """RFC 768: "An all zero transmitted checksum value means that the transmitter
    generated no checksum"; the datagram is accepted whatever the addresses."""
    b = build_header(A, B, 1, 2, b"data", compute=False) + b"data"
    assert b[6:8] == b"\x00\x00"
    v = UdpView(b)
    assert v.checksum == 0
    assert v.checksum_ok(A, B)
    assert v.checksum_ok(0, 0)
    assert UdpDatagram.parse(b, B, A) == UdpDatagram(1, 2, b"data")


def test_scapy_datagram_with_checksum_zero_is_accepted() -> None:
    b = bytes(UDP(sport=7, dport=9, chksum=0) / b"no checksum")
    assert UdpDatagram.parse(b, A, B) == UdpDatagram(7, 9, b"no checksum")


@given(addrs, addrs, ports, ports)
def test_udp_computed_zero_checksum_is_sent_as_ffff(src: int, dst: int, sport: int, dport: int) -> None:
    """RFC 768: "If the computed checksum is zero, it is transmitted as all ones"."""
    payload = payload_whose_checksum_is_zero(src, dst, sport, dport)
    b = UdpDatagram(sport, dport, payload).emit(src, dst)
    assert b[6:8] == b"\xff\xff"
    assert UdpView(b).checksum_ok(src, dst)
    assert UdpDatagram.parse(b, src, dst).payload == payload
    # scapy makes the same substitution
    theirs = bytes(IP(src=ntoa(src), dst=ntoa(dst)) / UDP(sport=sport, dport=dport) / payload)[20:]
    assert theirs == b


# --- checksum failures --------------------------------------------------------


@given(datagrams, st.data())
def test_any_single_bit_error_fails_checksum(d: UdpDatagram, data: st.DataObject) -> None:
    b = bytearray(d.emit(A, B))
    bit = data.draw(st.integers(0, len(b) * 8 - 1).filter(lambda i: not 32 <= i < 48))  # not the length
    b[bit // 8] ^= 0x80 >> (bit % 8)
    v = UdpView(b)
    if v.checksum == 0:
        return  # 0x0001 flipped to 0: now "no checksum", which is legal
    assert not v.checksum_ok(A, B)
    with pytest.raises(ParseError) as e:
        UdpDatagram.parse(b, A, B)
    assert e.value.reason == "udp_bad_checksum"


def test_checksum_covers_the_pseudo_header_addresses() -> None:
    """RFC 768: the pseudo-header guards against misrouted datagrams."""
    b = UdpDatagram(1, 2, b"x").emit(A, B)
    assert UdpView(b).checksum_ok(A, B)
    assert not UdpView(b).checksum_ok(A, B ^ 1)
    assert not UdpView(b).checksum_ok(B, A ^ 0x100)


def test_odd_length_payload_checksum_matches_scapy() -> None:
    b = UdpDatagram(1, 2, b"odd").emit(A, B)
    assert b == bytes(IP(src=ntoa(A), dst=ntoa(B)) / UDP(sport=1, dport=2) / b"odd")[20:]


# --- lengths ------------------------------------------------------------------


def test_view_cuts_bytes_beyond_udp_length() -> None:
    """RFC 768: Length counts header and data; anything after it is not the datagram's."""
    b = UdpDatagram(1, 2, b"abc").emit(A, B)
    v = UdpView(b + b"trailing")
    assert (v.length, bytes(v.payload), len(v.buf)) == (11, b"abc", 11)
    assert v.checksum_ok(A, B)


def test_datagram_inside_padded_ipv4_packet_parses() -> None:
    ip = Ipv4Header(A, B, PROTO_UDP).emit(UdpDatagram(1, 2, b"hi").emit(A, B))
    v = Ipv4View(ip + bytes(46 - len(ip)))
    assert UdpDatagram.parse(v.payload, A, B) == UdpDatagram(1, 2, b"hi")


@pytest.mark.parametrize("n", range(HEADER_LEN))
def test_truncated_header_is_rejected(n: int) -> None:
    with pytest.raises(ParseError) as e:
        UdpView(UdpDatagram(1, 2).emit(A, B)[:n])
    assert e.value.reason == "udp_truncated"


@pytest.mark.parametrize("length", [0, 1, 7, 13, 0xFFFF])
def test_length_below_header_or_beyond_buffer_is_rejected(length: int) -> None:
    b = bytearray(UdpDatagram(1, 2, b"abcd").emit(A, B))  # 12 bytes
    b[4:6] = length.to_bytes(2, "big")
    with pytest.raises(ParseError) as e:
        UdpView(b)
    assert e.value.reason == "udp_bad_length"
