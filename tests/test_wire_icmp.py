"""ICMPv4 messages (RFC 792, RFC 1191) and quoted datagrams, with scapy's ``ICMP`` as the oracle."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, IPerror, TCPerror, UDPerror

from seqs.errors import ParseError
from seqs.wire.icmp import (
    CODE_FRAG_NEEDED,
    CODE_PORT_UNREACHABLE,
    CODE_REASSEMBLY_TIMEOUT,
    CODE_TTL_EXCEEDED,
    HEADER_LEN,
    TYPE_DEST_UNREACHABLE,
    TYPE_ECHO_REPLY,
    TYPE_ECHO_REQUEST,
    TYPE_TIME_EXCEEDED,
    IcmpMessage,
    IcmpView,
    QuotedDatagram,
)
from seqs.wire.ipv4 import PROTO_ICMP, PROTO_TCP, PROTO_UDP, Ipv4Header, Ipv4View, aton, ntoa
from seqs.wire.tcp import SYN, TcpSegment
from seqs.wire.udp import UdpDatagram

A = aton("192.0.2.1")
B = aton("198.51.100.7")

messages = st.builds(
    IcmpMessage,
    type=st.integers(0, 255),
    code=st.integers(0, 255),
    rest=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=200),
)


def udp_datagram(sport: int = 5000, dport: int = 53, payload: bytes = b"query") -> bytes:
    """An IPv4 datagram A -> B carrying UDP, to be quoted by an error."""
    return Ipv4Header(A, B, PROTO_UDP).emit(UdpDatagram(sport, dport, payload).emit(A, B))


def rfc792_quote(datagram: bytes) -> bytes:
    """RFC 792: the internet header plus the first 64 bits of the original data."""
    return datagram[: Ipv4View(datagram).header_len + 8]


# --- echo -------------------------------------------------------------------


def test_echo_request_round_trips() -> None:
    m = IcmpMessage.echo(True, 0x1234, 7, b"ping payload")
    b = m.emit()
    assert (b[0], b[1]) == (TYPE_ECHO_REQUEST, 0)
    assert IcmpMessage.parse(b) == m


def test_echo_reply_round_trips_with_identifier_and_sequence() -> None:
    """RFC 792 "Echo or Echo Reply": identifier and sequence number follow the checksum."""
    m = IcmpMessage.echo(False, 0xBEEF, 0xFFFF, b"")
    v = IcmpView(m.emit())
    assert (v.type, v.code, v.ident, v.seq) == (TYPE_ECHO_REPLY, 0, 0xBEEF, 0xFFFF)
    assert IcmpMessage.parse(m.emit()) == m


@given(messages)
def test_any_message_round_trips(m: IcmpMessage) -> None:
    assert IcmpMessage.parse(m.emit()) == m


@given(st.booleans(), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.binary(max_size=100))
def test_scapy_dissects_seqs_echo_with_same_fields_and_checksum(
    request: bool, ident: int, seq: int, payload: bytes
) -> None:
    b = IcmpMessage.echo(request, ident, seq, payload).emit()
    p = ICMP(b)
    assert (p.type, p.code, p.id, p.seq) == (8 if request else 0, 0, ident, seq)
    assert bytes(p.payload) == payload
    p.chksum = None
    assert bytes(p) == b


@given(st.sampled_from([0, 8]), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.binary(max_size=100))
def test_seqs_parses_scapy_echo_with_same_fields(t: int, ident: int, seq: int, payload: bytes) -> None:
    b = bytes(ICMP(type=t, id=ident, seq=seq) / payload)
    v = IcmpView(b)
    assert v.checksum_ok()
    assert (v.type, v.code, v.ident, v.seq, bytes(v.payload), v.is_error) == (
        t,
        0,
        ident,
        seq,
        payload,
        False,
    )
    assert IcmpMessage.parse(b) == IcmpMessage.echo(t == 8, ident, seq, payload)


def test_seqs_parses_scapy_ping_inside_ipv4() -> None:
    b = bytes(IP(src=ntoa(A), dst=ntoa(B)) / ICMP(id=1, seq=2) / b"abcdefg")
    ip = Ipv4View(b)
    assert ip.checksum_ok() and ip.proto == PROTO_ICMP
    assert IcmpMessage.parse(ip.payload) == IcmpMessage.echo(True, 1, 2, b"abcdefg")


# --- errors and the quoted datagram ------------------------------------------


def test_port_unreachable_quotes_udp_ports() -> None:
    """RFC 792/RFC 1122 §3.2.2: errors quote the IP header and at least 8 data octets."""
    orig = udp_datagram(5000, 53)
    m = IcmpMessage(TYPE_DEST_UNREACHABLE, CODE_PORT_UNREACHABLE, 0, rfc792_quote(orig))
    v = IcmpView(m.emit())
    assert v.is_error
    q = v.quoted()
    assert q == QuotedDatagram(A, B, PROTO_UDP, orig[20:28])
    assert q.ports == (5000, 53)
    assert IcmpMessage.parse(m.emit()) == m


def test_scapy_dissects_seqs_port_unreachable_with_quote() -> None:
    orig = udp_datagram(5000, 53)
    b = IcmpMessage(TYPE_DEST_UNREACHABLE, CODE_PORT_UNREACHABLE, 0, rfc792_quote(orig)).emit()
    p = ICMP(b)
    assert (p.type, p.code) == (3, 3)
    assert (p[IPerror].src, p[IPerror].dst, p[IPerror].proto) == (ntoa(A), ntoa(B), PROTO_UDP)
    assert (p[UDPerror].sport, p[UDPerror].dport) == (5000, 53)
    p.chksum = None
    assert bytes(p)[:4] == b[:4]


@given(st.integers(68, 0xFFFF))
def test_frag_needed_carries_next_hop_mtu_both_ways(mtu: int) -> None:
    """RFC 1191 §4: the next-hop MTU is the low-order 16 bits of the second word."""
    orig = udp_datagram()
    b = IcmpMessage(TYPE_DEST_UNREACHABLE, CODE_FRAG_NEEDED, mtu, rfc792_quote(orig)).emit()
    p = ICMP(b)
    assert (p.type, p.code, p.nexthopmtu, p.reserved) == (3, 4, mtu, 0)

    theirs = bytes(
        ICMP(type=3, code=4, nexthopmtu=mtu) / IPerror(src=ntoa(A), dst=ntoa(B)) / TCPerror(sport=1, dport=2)
    )
    v = IcmpView(theirs)
    assert v.checksum_ok()
    assert (v.type, v.code, v.next_hop_mtu) == (TYPE_DEST_UNREACHABLE, CODE_FRAG_NEEDED, mtu)
    assert v.quoted().ports == (1, 2)


def test_frag_needed_from_old_router_has_mtu_zero() -> None:
    """RFC 1191 §5: routers predating it leave the field 0."""
    v = IcmpView(IcmpMessage(TYPE_DEST_UNREACHABLE, CODE_FRAG_NEEDED, 0, rfc792_quote(udp_datagram())).emit())
    assert v.next_hop_mtu == 0


def test_seqs_parses_scapy_time_exceeded_quoting_tcp_inside_ipv4() -> None:
    b = bytes(
        IP(src="203.0.113.9", dst=ntoa(A))
        / ICMP(type=11, code=0)
        / IPerror(src=ntoa(A), dst=ntoa(B), ttl=1, proto=PROTO_TCP)
        / TCPerror(sport=40000, dport=443, seq=1, flags="S")
    )
    ip = Ipv4View(b)
    v = IcmpView(ip.payload)
    assert v.checksum_ok() and v.is_error
    assert (v.type, v.code) == (TYPE_TIME_EXCEEDED, CODE_TTL_EXCEEDED)
    q = v.quoted()
    assert (q.src, q.dst, q.proto, q.ports) == (A, B, PROTO_TCP, (40000, 443))


def test_scapy_dissects_seqs_reassembly_timeout_quoting_tcp() -> None:
    seg = TcpSegment(40000, 443, 1, flags=SYN).emit(A, B)
    orig = Ipv4Header(A, B, PROTO_TCP).emit(seg)
    p = ICMP(IcmpMessage(TYPE_TIME_EXCEEDED, CODE_REASSEMBLY_TIMEOUT, 0, rfc792_quote(orig)).emit())
    assert (p.type, p.code) == (11, 1)
    assert (p[TCPerror].sport, p[TCPerror].dport, p[TCPerror].seq) == (40000, 443, 1)


def test_quote_with_ip_options_skips_them() -> None:
    """The quoted header's own IHL says where the transport bytes begin."""
    orig = Ipv4Header(A, B, PROTO_UDP, options=bytes.fromhex("94040000")).emit(UdpDatagram(7, 9).emit(A, B))
    q = IcmpView(IcmpMessage(TYPE_DEST_UNREACHABLE, 3, 0, rfc792_quote(orig)).emit()).quoted()
    assert q.ports == (7, 9)
    assert q.transport == orig[24:32]


def test_quote_without_transport_ports_has_no_ports() -> None:
    orig = udp_datagram()
    q = IcmpView(IcmpMessage(TYPE_DEST_UNREACHABLE, 3, 0, orig[:22]).emit()).quoted()
    assert q.transport == orig[20:22]
    assert q.ports is None


@pytest.mark.parametrize(
    ("t", "is_error"),
    [(0, False), (3, True), (4, True), (5, True), (8, False), (11, True), (12, True), (13, False)],
)
def test_is_error_covers_rfc792_error_types(t: int, is_error: bool) -> None:
    assert IcmpView(IcmpMessage(t, 0).emit()).is_error is is_error


# --- malformed ----------------------------------------------------------------


@pytest.mark.parametrize("n", range(HEADER_LEN))
def test_truncated_message_is_rejected(n: int) -> None:
    with pytest.raises(ParseError) as e:
        IcmpView(IcmpMessage.echo(True, 1, 1).emit()[:n])
    assert e.value.reason == "icmp_truncated"


@given(st.binary(max_size=50), st.data())
def test_any_single_bit_error_fails_checksum(payload: bytes, data: st.DataObject) -> None:
    """RFC 792: the checksum covers the whole ICMP message."""
    b = bytearray(IcmpMessage.echo(True, 3, 4, payload).emit())
    bit = data.draw(st.integers(0, len(b) * 8 - 1))
    b[bit // 8] ^= 0x80 >> (bit % 8)
    assert not IcmpView(b).checksum_ok()
    with pytest.raises(ParseError) as e:
        IcmpMessage.parse(b)
    assert e.value.reason == "icmp_bad_checksum"


@pytest.mark.parametrize(
    "quote",
    [
        b"",
        rfc792_quote(udp_datagram())[:19],
        b"\x65" + rfc792_quote(udp_datagram())[1:],  # version 6
        b"\x44" + rfc792_quote(udp_datagram())[1:],  # IHL 4
        b"\x4f" + rfc792_quote(udp_datagram())[1:],  # IHL 15, only 28 bytes quoted
    ],
)
def test_malformed_quote_is_rejected(quote: bytes) -> None:
    v = IcmpView(IcmpMessage(TYPE_DEST_UNREACHABLE, 3, 0, quote).emit())
    with pytest.raises(ParseError) as e:
        v.quoted()
    assert e.value.reason == "icmp_bad_quote"
