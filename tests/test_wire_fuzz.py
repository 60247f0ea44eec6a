"""Hostile bytes into every wire parser: only ``ParseError`` may escape (STYLE.md habit 4).

Each parser gets arbitrary bytes, and valid packets with a few bytes flipped,
overwritten, cut or appended (random bytes rarely get past a version check;
mutants reach the option and quote parsers).  Every accessor of a view that
was built is read as well, because the interface reads them.  Any exception
other than ``ParseError`` fails the test; a ``ParseError`` must carry a
reason that can serve as a drop counter's name.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from seqs.errors import ParseError
from seqs.wire.arp import OP_REQUEST, ArpPacket, ArpView
from seqs.wire.ethernet import ETHERTYPE_ARP, ETHERTYPE_IPV4, EthernetFrame, EthernetView
from seqs.wire.icmp import TYPE_DEST_UNREACHABLE, IcmpMessage, IcmpView
from seqs.wire.ipv4 import PROTO_ICMP, PROTO_TCP, PROTO_UDP, Ipv4Header, Ipv4View
from seqs.wire.tcp import TcpOptions, TcpSegment, TcpView, parse_options
from seqs.wire.udp import UdpDatagram, UdpView
from seqs.wire.virtio import VnetHeader

A = 0xC0000201
B = 0xC6336407
REASON = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)+$")
FUZZ = settings(max_examples=300, deadline=None)

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
addrs = st.sampled_from([A, B]) | u32
buffer_types: st.SearchStrategy[Callable[[bytes], bytes | bytearray | memoryview]] = st.sampled_from(
    [bytes, bytearray, memoryview]
)


def attempt(fn: Callable[[], object]) -> None:
    """Run one parser call: a value or a ParseError with a counter-like reason, nothing else."""
    try:
        fn()
    except ParseError as e:
        assert REASON.match(e.reason), e.reason


# --- every parser, with every accessor -------------------------------------------


def parse_ethernet(b: bytes | bytearray | memoryview) -> None:
    def view() -> None:
        v = EthernetView(b)
        _ = (v.dst, v.src, v.ethertype, v.vlan_id, v.header_len, bytes(v.payload))

    attempt(view)
    attempt(lambda: EthernetFrame.parse(b))


def parse_arp(b: bytes | bytearray | memoryview) -> None:
    def view() -> None:
        v = ArpView(b)
        _ = (v.op, v.sha, v.spa, v.tha, v.tpa)

    attempt(view)
    attempt(lambda: ArpPacket.parse(b))


def parse_ipv4(b: bytes | bytearray | memoryview) -> None:
    def view() -> None:
        v = Ipv4View(b)
        v.checksum_ok()
        _ = (
            v.dont_fragment,
            v.more_fragments,
            v.frag_offset,
            v.is_fragment,
            bytes(v.options),
            bytes(v.payload),
        )

    attempt(view)
    attempt(lambda: Ipv4Header.parse(b))


def parse_icmp(b: bytes | bytearray | memoryview) -> None:
    def view() -> None:
        v = IcmpView(b)
        v.checksum_ok()
        _ = (v.type, v.code, v.ident, v.seq, v.next_hop_mtu, v.is_error, bytes(v.payload))

    def quoted() -> None:
        q = IcmpView(b).quoted()
        _ = (q.src, q.dst, q.proto, q.ports)

    attempt(view)
    attempt(quoted)
    attempt(lambda: IcmpMessage.parse(b))


def parse_udp(b: bytes | bytearray | memoryview, src: int, dst: int) -> None:
    def view() -> None:
        v = UdpView(b)
        v.checksum_ok(src, dst)
        _ = (v.sport, v.dport, v.length, bytes(v.payload))

    attempt(view)
    attempt(lambda: UdpDatagram.parse(b, src, dst))


def parse_tcp(b: bytes | bytearray | memoryview, src: int, dst: int) -> None:
    def view() -> None:
        v = TcpView(b)
        v.checksum_ok(src, dst)
        _ = (
            v.sport,
            v.dport,
            v.seq,
            v.ack,
            v.flags,
            v.window,
            v.urgent,
            bytes(v.options_bytes),
            bytes(v.payload),
        )

    attempt(view)
    attempt(lambda: TcpView(b).options())
    attempt(lambda: TcpSegment.parse(b, src, dst))


def receive_frame(frame: bytes | bytearray | memoryview) -> None:
    """The receive path as the interface walks it: Ethernet, then ARP or IPv4, then up."""
    try:
        eth = EthernetView(frame)
        if eth.ethertype == ETHERTYPE_ARP:
            ArpPacket.parse(eth.payload)
        elif eth.ethertype == ETHERTYPE_IPV4:
            ip = Ipv4View(eth.payload)
            if not ip.checksum_ok() or ip.is_fragment:
                return
            if ip.proto == PROTO_ICMP:
                msg = IcmpView(ip.payload)
                if msg.checksum_ok() and msg.is_error:
                    _ = msg.quoted().ports
            elif ip.proto == PROTO_UDP:
                UdpDatagram.parse(ip.payload, ip.src, ip.dst)
            elif ip.proto == PROTO_TCP:
                TcpSegment.parse(ip.payload, ip.src, ip.dst)
    except ParseError as e:
        assert REASON.match(e.reason), e.reason


# --- valid packets to mutate -------------------------------------------------------


tcp_options = st.builds(
    TcpOptions,
    mss=st.none() | u16,
    wscale=st.none() | st.integers(0, 14),
    sack_permitted=st.booleans(),
    timestamp=st.none() | st.tuples(u32, u32),
    sack=st.lists(st.tuples(u32, u32), max_size=2).map(tuple),
)
tcp_segments = st.builds(
    lambda sport, dport, seq, flags, o, data: TcpSegment(
        sport, dport, seq, seq, flags, 1000, 0, o, data
    ).emit(A, B),
    u16,
    u16,
    u32,
    st.integers(0, 255),
    tcp_options,
    st.binary(max_size=40),
)
udp_datagrams = st.builds(lambda s, d, p: UdpDatagram(s, d, p).emit(A, B), u16, u16, st.binary(max_size=40))
ipv4_packets = st.builds(
    lambda proto, opts, payload: Ipv4Header(A, B, proto, options=opts).emit(payload),
    st.sampled_from([PROTO_ICMP, PROTO_TCP, PROTO_UDP]),
    st.sampled_from([b"", bytes.fromhex("94040000"), b"\x01" * 40]),
    st.binary(max_size=40),
)
icmp_errors = st.builds(
    lambda code, mtu, inner: IcmpMessage(TYPE_DEST_UNREACHABLE, code, mtu, inner[:28]).emit(),
    st.integers(0, 15),
    u16,
    st.builds(lambda d: Ipv4Header(B, A, PROTO_UDP).emit(d), udp_datagrams),
)
icmp_messages = icmp_errors | st.builds(
    lambda i, s, p: IcmpMessage.echo(True, i, s, p).emit(), u16, u16, st.binary(max_size=40)
)
arp_packets = st.builds(
    lambda spa, tpa: ArpPacket(OP_REQUEST, b"\x02" * 6, spa, bytes(6), tpa).emit(),
    u32,
    u32,
)
ip_payloads = st.one_of(
    st.builds(lambda t: Ipv4Header(A, B, PROTO_TCP).emit(t), tcp_segments),
    st.builds(lambda u: Ipv4Header(A, B, PROTO_UDP).emit(u), udp_datagrams),
    st.builds(lambda m: Ipv4Header(A, B, PROTO_ICMP).emit(m), icmp_messages),
)
frames = st.one_of(
    st.builds(
        lambda p, vlan: EthernetFrame(b"\x02" * 6, b"\x04" * 6, ETHERTYPE_IPV4, p, vlan).emit(),
        ip_payloads,
        st.none() | st.integers(0, 4095),
    ),
    st.builds(lambda a: EthernetFrame(b"\xff" * 6, b"\x02" * 6, ETHERTYPE_ARP, a).emit(), arp_packets),
)


@st.composite
def mutants(draw: st.DrawFn, seeds: st.SearchStrategy[bytes]) -> bytes:
    """A valid packet with up to four bytes flipped, overwritten, cut off or appended."""
    b = bytearray(draw(seeds))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "cut", "append"]))
        if op == "append" or not b:
            b += draw(st.binary(min_size=1, max_size=8))
        elif op == "cut":
            del b[draw(st.integers(0, len(b) - 1)) :]
        else:
            i = draw(st.integers(0, len(b) - 1))
            b[i] = b[i] ^ (1 << draw(st.integers(0, 7))) if op == "flip" else draw(st.integers(0, 255))
    return bytes(b)


def hostile(seeds: st.SearchStrategy[bytes], max_size: int = 120) -> st.SearchStrategy[bytes]:
    return st.binary(max_size=max_size) | mutants(seeds)


# --- the properties ----------------------------------------------------------------


@FUZZ
@given(hostile(frames), buffer_types)
def test_ethernet_parsers_raise_only_parse_error(data: bytes, as_type: Callable[[bytes], bytes]) -> None:
    parse_ethernet(as_type(data))


@FUZZ
@given(hostile(arp_packets, 40), buffer_types)
def test_arp_parsers_raise_only_parse_error(data: bytes, as_type: Callable[[bytes], bytes]) -> None:
    parse_arp(as_type(data))


@FUZZ
@given(hostile(ipv4_packets, 100), buffer_types)
def test_ipv4_parsers_raise_only_parse_error(data: bytes, as_type: Callable[[bytes], bytes]) -> None:
    parse_ipv4(as_type(data))


@FUZZ
@given(hostile(icmp_messages, 80), buffer_types)
def test_icmp_parsers_and_quote_raise_only_parse_error(
    data: bytes, as_type: Callable[[bytes], bytes]
) -> None:
    parse_icmp(as_type(data))


@FUZZ
@given(hostile(udp_datagrams, 60), buffer_types, addrs, addrs)
def test_udp_parsers_raise_only_parse_error(
    data: bytes, as_type: Callable[[bytes], bytes], src: int, dst: int
) -> None:
    parse_udp(as_type(data), src, dst)


@FUZZ
@given(hostile(tcp_segments, 100), buffer_types, addrs, addrs)
def test_tcp_parsers_and_options_raise_only_parse_error(
    data: bytes, as_type: Callable[[bytes], bytes], src: int, dst: int
) -> None:
    parse_tcp(as_type(data), src, dst)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=44), buffer_types)
def test_parse_options_raises_only_parse_error(data: bytes, as_type: Callable[[bytes], bytes]) -> None:
    attempt(lambda: parse_options(as_type(data)))


@st.composite
def option_soup(draw: st.DrawFn) -> bytes:
    """Option-shaped bytes: known kinds with plausible and implausible lengths."""
    out = b""
    while len(out) < 40 and draw(st.booleans()):
        kind = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 8, 30, 34, 254]))
        length = draw(st.sampled_from([0, 1, 2, 3, 4, 10, 18, 26, 34]) | st.integers(0, 255))
        out += bytes([kind, length]) + draw(st.binary(max_size=12))
    return out[:40]


@FUZZ
@given(option_soup())
def test_option_shaped_bytes_parse_or_raise_parse_error(data: bytes) -> None:
    attempt(lambda: parse_options(data))


@FUZZ
@given(st.binary(max_size=30), buffer_types)
def test_vnet_header_parse_raises_only_parse_error(data: bytes, as_type: Callable[[bytes], bytes]) -> None:
    attempt(lambda: VnetHeader.parse(as_type(data)))


@FUZZ
@given(hostile(frames, 200))
def test_receive_path_raises_only_parse_error(data: bytes) -> None:
    receive_frame(data)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=60))
def test_every_parser_raises_only_parse_error_on_the_same_bytes(data: bytes) -> None:
    """One buffer into all of them: a message of one protocol is garbage to the others."""
    parse_ethernet(data)
    parse_arp(data)
    parse_ipv4(data)
    parse_icmp(data)
    parse_udp(data, A, B)
    parse_tcp(data, A, B)
    attempt(lambda: parse_options(data))
    attempt(lambda: VnetHeader.parse(data))
