"""IPv4 headers (RFC 791) and the address helpers, with scapy's ``IP`` as the oracle."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP, IPOption_NOP, IPOption_Router_Alert, IPOption_RR, IPOption_Timestamp
from scapy.packet import Packet

from seqs.errors import ParseError
from seqs.wire.ipv4 import (
    FLAG_DF,
    FLAG_MF,
    HEADER_LEN,
    PROTO_ICMP,
    PROTO_TCP,
    PROTO_UDP,
    Ipv4Header,
    Ipv4View,
    aton,
    build_header,
    is_multicast,
    ntoa,
    parse_cidr,
    prefix_mask,
)

SRC = aton("192.0.2.1")
DST = aton("198.51.100.7")

#: Well-formed option areas, padded to 32 bits (RFC 791 §3.1 "Options").
ROUTER_ALERT = bytes.fromhex("94040000")  # RFC 2113
RECORD_ROUTE = bytes.fromhex("070b04") + bytes(8) + b"\x00"  # room for 2 addresses, zero (EOL) pad
NOP_PADDED_SECURITY = bytes.fromhex("01010101")  # four NOPs
TIMESTAMP = bytes.fromhex("4408090000000000")  # timestamps only, one slot, full
#: The same option areas as scapy builds them.
SCAPY_OPTIONS: dict[bytes, Callable[[], list[Packet]]] = {
    b"": list,
    ROUTER_ALERT: lambda: [IPOption_Router_Alert()],
    RECORD_ROUTE: lambda: [IPOption_RR(routers=["0.0.0.0", "0.0.0.0"])],
    NOP_PADDED_SECURITY: lambda: [IPOption_NOP()] * 4,
    TIMESTAMP: lambda: [IPOption_Timestamp(flg=0, timestamp=0)],
    ROUTER_ALERT + RECORD_ROUTE: lambda: [
        IPOption_Router_Alert(),
        IPOption_RR(routers=["0.0.0.0", "0.0.0.0"]),
    ],
}
WELL_FORMED_OPTIONS = list(SCAPY_OPTIONS)

addrs = st.integers(0, 0xFFFFFFFF)
headers = st.builds(
    Ipv4Header,
    src=addrs,
    dst=addrs,
    proto=st.integers(0, 255),
    ttl=st.integers(0, 255),
    tos=st.integers(0, 255),
    ident=st.integers(0, 0xFFFF),
    dont_fragment=st.booleans(),
    more_fragments=st.booleans(),
    frag_offset=st.integers(0, 0x1FFF).map(lambda n: n * 8),
    options=st.binary(max_size=40).map(lambda b: b[: len(b) & ~3]),
)


def scapy_flags(h: Ipv4Header) -> int:
    """scapy numbers the flags reserved=4, DF=2, MF=1."""
    return (2 if h.dont_fragment else 0) | (1 if h.more_fragments else 0)


def raw_header(*, vihl: int = 0x45, total_len: int = 20, extra: bytes = b"") -> bytes:
    hdr = bytearray(build_header(SRC, DST, PROTO_UDP, 0))
    hdr[0] = vihl
    hdr[2:4] = total_len.to_bytes(2, "big")
    return bytes(hdr) + extra


# --- round trip -------------------------------------------------------------


def test_plain_header_round_trips_with_payload() -> None:
    h = Ipv4Header(SRC, DST, PROTO_TCP, ttl=64, tos=0x10, ident=0x1234)
    assert Ipv4Header.parse(h.emit(b"segment")) == (h, b"segment")


def test_header_with_router_alert_option_round_trips() -> None:
    """RFC 791 §3.1: IHL counts 32-bit words, options included."""
    h = Ipv4Header(SRC, DST, 2, ttl=1, tos=0xC0, options=ROUTER_ALERT)
    b = h.emit(b"igmp")
    assert b[0] == 0x46
    assert Ipv4Header.parse(b) == (h, b"igmp")


def test_fragment_fields_round_trip() -> None:
    """RFC 791 §3.1: fragment offset counts 8-octet units; DF and MF are flag bits."""
    h = Ipv4Header(SRC, DST, PROTO_UDP, ident=7, dont_fragment=False, more_fragments=True, frag_offset=1480)
    b = h.emit(b"x" * 8)
    assert int.from_bytes(b[6:8], "big") == FLAG_MF | 185
    assert Ipv4Header.parse(b) == (h, b"x" * 8)


def test_last_possible_fragment_offset_round_trips() -> None:
    h = Ipv4Header(SRC, DST, PROTO_UDP, dont_fragment=False, frag_offset=0x1FFF * 8)
    assert Ipv4Header.parse(h.emit())[0].frag_offset == 65528


@given(headers, st.binary(max_size=200))
def test_any_header_round_trips(h: Ipv4Header, payload: bytes) -> None:
    assert Ipv4Header.parse(h.emit(payload)) == (h, payload)


@pytest.mark.parametrize("options", [b"\x01", b"\x01\x01\x01", bytes(44)])
def test_emit_rejects_unpadded_or_oversized_options(options: bytes) -> None:
    with pytest.raises(ValueError):
        Ipv4Header(SRC, DST, PROTO_UDP, options=options).emit()


def test_emit_rejects_fragment_offset_not_a_multiple_of_eight() -> None:
    with pytest.raises(ValueError):
        Ipv4Header(SRC, DST, PROTO_UDP, frag_offset=100).emit()


def test_build_header_is_the_option_less_emit() -> None:
    b = build_header(SRC, DST, PROTO_ICMP, 12, ident=9, ttl=3, tos=4, flags_frag=FLAG_MF | 2)
    h = Ipv4Header(
        SRC, DST, PROTO_ICMP, ttl=3, tos=4, ident=9, dont_fragment=False, more_fragments=True, frag_offset=16
    )
    assert b == h.emit(bytes(12))[:HEADER_LEN]


# --- scapy as oracle --------------------------------------------------------


@given(headers, st.sampled_from(WELL_FORMED_OPTIONS), st.binary(max_size=64))
def test_scapy_dissects_seqs_packets_with_same_fields_and_checksum(
    h: Ipv4Header, options: bytes, payload: bytes
) -> None:
    h = dataclasses.replace(h, options=options)
    b = h.emit(payload)
    p = IP(b)
    assert (p.version, p.ihl, p.len) == (4, 5 + len(options) // 4, len(b))
    assert (p.tos, p.id, int(p.flags), p.frag * 8, p.ttl, p.proto) == (
        h.tos, h.ident, scapy_flags(h), h.frag_offset, h.ttl, h.proto,
    )  # fmt: skip
    assert (p.src, p.dst) == (ntoa(h.src), ntoa(h.dst))
    # scapy recomputes the checksum when it is None: it must agree with ours.
    p.chksum = None
    assert bytes(p)[:HEADER_LEN] == b[:HEADER_LEN]
    assert bytes(p)[HEADER_LEN : p.ihl * 4] == options


@given(
    addrs,
    addrs,
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 0xFFFF),
    st.sampled_from([0, 1, 2]),
    st.integers(0, 0x1FFF),
    st.sampled_from(WELL_FORMED_OPTIONS),
    st.binary(max_size=64),
)
def test_seqs_parses_scapy_packets_with_same_fields(
    src: int, dst: int, ttl: int, tos: int, ident: int, flags: int, frag: int, options: bytes, payload: bytes
) -> None:
    p = IP(src=ntoa(src), dst=ntoa(dst), ttl=ttl, tos=tos, id=ident, flags=flags, frag=frag, proto=PROTO_UDP)
    p.options = SCAPY_OPTIONS[options]()
    b = bytes(p / payload)
    v = Ipv4View(b)
    assert v.checksum_ok()
    assert (v.header_len, v.total_len, bytes(v.options), bytes(v.payload)) == (
        20 + len(options),
        len(b),
        options,
        payload,
    )
    assert Ipv4Header.parse(b) == (
        Ipv4Header(src, dst, PROTO_UDP, ttl, tos, ident, bool(flags & 2), bool(flags & 1), frag * 8, options),
        payload,
    )


@given(addrs, addrs, st.integers(0, 255), st.integers(0, 1480))
def test_build_header_checksum_agrees_with_scapy(src: int, dst: int, proto: int, n: int) -> None:
    b = build_header(src, dst, proto, n)
    p = IP(b + bytes(n))
    assert (p.src, p.dst, p.proto, p.len, int(p.flags)) == (ntoa(src), ntoa(dst), proto, 20 + n, 2)
    p.chksum = None
    assert bytes(p)[:HEADER_LEN] == b


# --- the view ---------------------------------------------------------------


def test_view_cuts_ethernet_padding_beyond_total_length() -> None:
    """RFC 791 §3.1: Total Length bounds the datagram; a 60-byte frame pads short ones."""
    b = Ipv4Header(SRC, DST, PROTO_TCP).emit(b"abc")
    v = Ipv4View(b + bytes(60 - 14 - len(b)))
    assert v.total_len == len(b) == len(v.buf)
    assert bytes(v.payload) == b"abc"
    assert v.checksum_ok()


@pytest.mark.parametrize(
    ("flags_frag", "df", "mf", "offset", "is_fragment"),
    [
        (0, False, False, 0, False),
        (FLAG_DF, True, False, 0, False),
        (FLAG_MF, False, True, 0, True),
        (1, False, False, 8, True),
        (FLAG_MF | 0x1FFF, False, True, 65528, True),
    ],
)
def test_view_decodes_flags_and_fragment_offset(
    flags_frag: int, df: bool, mf: bool, offset: int, is_fragment: bool
) -> None:
    v = Ipv4View(build_header(SRC, DST, PROTO_UDP, 0, flags_frag=flags_frag))
    assert (v.dont_fragment, v.more_fragments, v.frag_offset, v.is_fragment) == (df, mf, offset, is_fragment)


@given(st.integers(0, HEADER_LEN * 8 - 1))
def test_any_single_bit_error_in_header_fails_checksum(bit: int) -> None:
    """RFC 791 §3.1: the header checksum covers the header; one flipped bit always shows."""
    b = bytearray(Ipv4Header(SRC, DST, PROTO_UDP, ident=bit).emit(b"payload"))
    b[bit // 8] ^= 0x80 >> (bit % 8)
    try:
        v = Ipv4View(b)
    except ParseError:
        return  # the flip broke version, IHL or total length first
    assert not v.checksum_ok()
    with pytest.raises(ParseError) as e:
        Ipv4Header.parse(b)
    assert e.value.reason == "ipv4_bad_checksum"


def test_header_checksum_does_not_cover_payload() -> None:
    b = bytearray(Ipv4Header(SRC, DST, PROTO_UDP).emit(b"payload"))
    b[-1] ^= 0xFF
    assert Ipv4View(b).checksum_ok()


# --- malformed ----------------------------------------------------------------


@pytest.mark.parametrize("n", range(HEADER_LEN))
def test_truncated_header_is_rejected(n: int) -> None:
    with pytest.raises(ParseError) as e:
        Ipv4View(raw_header()[:n])
    assert e.value.reason == "ipv4_truncated"


@pytest.mark.parametrize("version", [0, 1, 5, 6, 15])
def test_version_other_than_4_is_rejected(version: int) -> None:
    with pytest.raises(ParseError) as e:
        Ipv4View(raw_header(vihl=version << 4 | 5))
    assert e.value.reason == "ipv4_bad_version"


@pytest.mark.parametrize("ihl", range(5))
def test_ihl_below_five_words_is_rejected(ihl: int) -> None:
    """RFC 791 §3.1: the minimum value for a correct header is 5."""
    with pytest.raises(ParseError) as e:
        Ipv4View(raw_header(vihl=0x40 | ihl, extra=bytes(40)))
    assert e.value.reason == "ipv4_bad_header_len"


@pytest.mark.parametrize(
    ("vihl", "total_len", "extra"),
    [
        (0x45, 19, b""),  # total length shorter than the header
        (0x46, 20, bytes(4)),  # total length shorter than IHL says
        (0x4F, 60, bytes(20)),  # IHL runs past the buffer
        (0x45, 21, b""),  # total length beyond the buffer
        (0x45, 0xFFFF, bytes(100)),
    ],
)
def test_total_length_inconsistent_with_header_or_buffer_is_rejected(
    vihl: int, total_len: int, extra: bytes
) -> None:
    with pytest.raises(ParseError) as e:
        Ipv4View(raw_header(vihl=vihl, total_len=total_len, extra=extra))
    assert e.value.reason == "ipv4_bad_total_len"


def test_header_of_maximum_length_with_empty_payload_is_accepted() -> None:
    b = Ipv4Header(SRC, DST, PROTO_UDP, options=b"\x01" * 40).emit()
    v = Ipv4View(b)
    assert (v.header_len, len(v.options), bytes(v.payload)) == (60, 40, b"")


# --- addresses ----------------------------------------------------------------


@given(addrs)
def test_ntoa_and_aton_agree_with_ipaddress(addr: int) -> None:
    text = ntoa(addr)
    assert text == str(ipaddress.IPv4Address(addr))
    assert aton(text) == addr


def test_aton_reads_decimal_even_with_leading_zeros() -> None:
    """Decimal only: "010" is ten, not octal eight as inet_aton(3) would read it."""
    assert aton("010.000.000.001") == aton("10.0.0.1") == 0x0A000001


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1.2.3",
        "1.2.3.4.5",
        "256.0.0.1",
        "1.2.3.256",
        "1..2.3",
        "1.2.3.-4",
        "1.2.3.+4",
        " 1.2.3.4",
        "1.2.3.4 ",
        "a.b.c.d",
        "0x1.2.3.4",
        "1000.1.1.1",
        "0001.1.1.1",
        "\u0661.2.3.4",
        "1.2.3.4/24",
    ],
)
def test_aton_rejects_malformed_text(text: str) -> None:
    with pytest.raises(ValueError):
        aton(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10.0.0.2/24", (0x0A000002, 24)), ("0.0.0.0/0", (0, 0)), ("192.0.2.1/32", (0xC0000201, 32))],
)
def test_parse_cidr_splits_address_and_prefix(text: str, expected: tuple[int, int]) -> None:
    assert parse_cidr(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "10.0.0.2",
        "10.0.0.2/",
        "10.0.0.2/33",
        "10.0.0.2/-1",
        "10.0.0.2/+24",
        "10.0.0.2/ 24",
        "10.0.0.2/2_4",
        "10.0.0.2/24/8",
        "10.0.0.2/x",
        "10.0.0.256/24",
        "/24",
    ],
)
def test_parse_cidr_rejects_malformed_text(text: str) -> None:
    with pytest.raises(ValueError):
        parse_cidr(text)


@given(st.integers(0, 32))
def test_prefix_mask_agrees_with_ipaddress(prefix: int) -> None:
    assert prefix_mask(prefix) == int(ipaddress.IPv4Network(f"0.0.0.0/{prefix}").netmask)


@given(addrs)
def test_is_multicast_is_class_d(addr: int) -> None:
    """RFC 5771: 224.0.0.0/4 is multicast."""
    assert is_multicast(addr) == ipaddress.IPv4Address(addr).is_multicast
