"""TCP segments and options (RFC 9293 §3.1-3.2, RFC 7323, RFC 2018), with scapy's ``TCP`` as the oracle."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP

from seqs.errors import ParseError
from seqs.wire.checksum import checksum, pseudo_header_sum
from seqs.wire.ipv4 import PROTO_TCP, Ipv4Header, Ipv4View, aton, ntoa
from seqs.wire.tcp import (
    ACK,
    CWR,
    ECE,
    FIN,
    HEADER_LEN,
    PSH,
    RST,
    SYN,
    URG,
    TcpOptions,
    TcpSegment,
    TcpView,
    build_options,
    flags_to_str,
    parse_options,
)

A = aton("192.0.2.1")
B = aton("198.51.100.7")
NO_OPTIONS = TcpOptions()

u32 = st.integers(0, 0xFFFFFFFF)
u16 = st.integers(0, 0xFFFF)
addrs = u32
blocks = st.tuples(u32, u32)

#: Options as Linux puts them on a SYN: MSS, SACK-permitted + timestamps, NOP + window scale.
LINUX_SYN_OPTIONS = bytes.fromhex("020405b4 0402080a 00000001 00000000 01030307")


@st.composite
def tcp_options(draw: st.DrawFn) -> TcpOptions:
    """Any options value that fits in 40 bytes as ``build_options`` lays it out."""
    mss = draw(st.none() | u16)
    wscale = draw(st.none() | st.integers(0, 255))
    sack_permitted = draw(st.booleans())
    timestamp = draw(st.none() | st.tuples(u32, u32))
    used = len(build_options(mss=mss, wscale=wscale, sack_permitted=sack_permitted, timestamp=timestamp))
    room = min(4, (40 - used - 4) // 8)  # NOP, NOP, kind, length, then 8 bytes a block
    sack = tuple(draw(st.lists(blocks, max_size=max(room, 0))))
    return TcpOptions(mss, wscale, sack_permitted, timestamp, sack)


segments = st.builds(
    TcpSegment,
    sport=u16,
    dport=u16,
    seq=u32,
    ack=u32,
    flags=st.integers(0, 255),
    window=u16,
    urgent=u16,
    options=tcp_options(),
    payload=st.binary(max_size=200),
)


def header(*, data_offset: int = 5, options: bytes = b"", payload: bytes = b"") -> bytes:
    """A SYN A:1 -> B:2 with the data offset field set as given and a valid checksum."""
    b = bytearray(TcpSegment(1, 2, 100, 0, SYN).emit(A, B)) + options + payload
    b[12] = data_offset << 4
    b[16:18] = b"\x00\x00"
    b[16:18] = checksum(b, pseudo_header_sum(A, B, PROTO_TCP, len(b))).to_bytes(2, "big")
    return bytes(b)


def options_from_scapy(opts: list[tuple[Any, Any]]) -> TcpOptions:
    """Read scapy's decoded options list back into a value."""
    mss = wscale = ts = None
    perm = False
    sack: list[tuple[int, int]] = []
    for name, value in opts:
        if name == "MSS":
            mss = value
        elif name == "WScale":
            wscale = value
        elif name == "SAckOK":
            perm = True
        elif name == "Timestamp":
            ts = tuple(value)
        elif name == "SAck":
            sack += list(zip(value[::2], value[1::2], strict=True))
    return TcpOptions(mss, wscale, perm, ts, tuple(sack))


# --- round trip -------------------------------------------------------------


def test_bare_segment_round_trips() -> None:
    s = TcpSegment(40000, 80, 1000, 2000, ACK | PSH, 29200, 0, NO_OPTIONS, b"GET / HTTP/1.1\r\n")
    b = s.emit(A, B)
    assert b[12] >> 4 == 5
    assert TcpSegment.parse(b, A, B) == s


@pytest.mark.parametrize(
    "options",
    [
        TcpOptions(mss=1460),
        TcpOptions(mss=0),
        TcpOptions(wscale=14),
        TcpOptions(sack_permitted=True),
        TcpOptions(timestamp=(0xFFFFFFFF, 0)),
        TcpOptions(sack=((1, 2),)),
        TcpOptions(sack=((1, 2), (3, 4))),
        TcpOptions(sack=((1, 2), (3, 4), (5, 6))),
        TcpOptions(sack=((1, 2), (3, 4), (5, 6), (7, 0xFFFFFFFF))),
        TcpOptions(timestamp=(5, 6), sack=((1, 2), (3, 4), (5, 6))),
        TcpOptions(mss=1460, wscale=7, sack_permitted=True, timestamp=(1, 0)),
    ],
)
def test_each_option_round_trips(options: TcpOptions) -> None:
    s = TcpSegment(1, 2, 3, 4, ACK, 100, 0, options, b"data")
    b = s.emit(A, B)
    assert (b[12] >> 4) * 4 - HEADER_LEN == len(build_options(**_kwargs(options)))
    assert TcpSegment.parse(b, A, B) == s
    assert parse_options(build_options(**_kwargs(options))) == options


@given(segments, addrs, addrs)
def test_any_segment_round_trips(s: TcpSegment, src: int, dst: int) -> None:
    assert TcpSegment.parse(s.emit(src, dst), src, dst) == s


@given(tcp_options())
def test_options_end_on_a_32_bit_boundary(o: TcpOptions) -> None:
    """RFC 9293 §3.1: padding makes the header end on a 32-bit boundary; at most 40 bytes."""
    b = build_options(**_kwargs(o))
    assert len(b) % 4 == 0
    assert len(b) <= 40


def test_syn_options_use_linux_layout() -> None:
    assert build_options(mss=1460, wscale=7, sack_permitted=True, timestamp=(1, 0)) == LINUX_SYN_OPTIONS


def test_sack_blocks_beyond_option_space_are_dropped() -> None:
    """RFC 2018 §3: 40 bytes hold at most 4 blocks, or 3 alongside timestamps (RFC 7323)."""
    five = tuple((i, i + 1) for i in range(0, 50, 10))
    assert parse_options(build_options(sack=five)).sack == five[:4]
    assert parse_options(build_options(sack=five, timestamp=(1, 2))).sack == five[:3]


def test_flags_to_str_names_flags_in_rfc_order() -> None:
    assert flags_to_str(SYN | ACK) == "SYN,ACK"
    assert flags_to_str(FIN | ACK) == "FIN,ACK"
    assert flags_to_str(0) == "none"
    assert flags_to_str(0xFF) == "SYN,FIN,RST,PSH,ACK,URG,ECE,CWR"
    assert {FIN, SYN, RST, PSH, ACK, URG, ECE, CWR} == {1 << i for i in range(8)}


# --- scapy as oracle --------------------------------------------------------


@given(segments, addrs, addrs)
def test_scapy_dissects_seqs_segments_with_same_fields_options_and_checksum(
    s: TcpSegment, src: int, dst: int
) -> None:
    b = s.emit(src, dst)
    pkt = IP(bytes(IP(src=ntoa(src), dst=ntoa(dst), proto=PROTO_TCP) / b))
    t = pkt[TCP]
    assert (t.sport, t.dport, t.seq, t.ack, int(t.flags), t.window, t.urgptr) == (
        s.sport, s.dport, s.seq, s.ack, s.flags, s.window, s.urgent,
    )  # fmt: skip
    assert t.dataofs * 4 == HEADER_LEN + len(build_options(**_kwargs(s.options)))
    assert options_from_scapy(t.options) == s.options
    assert bytes(t.payload) == s.payload
    t.chksum = None  # scapy computes its own over the pseudo-header: it must match ours
    assert bytes(pkt)[20:] == b


def test_scapy_reads_linux_syn_options_in_order() -> None:
    o = TcpOptions(mss=1460, wscale=7, sack_permitted=True, timestamp=(1, 0))
    t = TCP(TcpSegment(1, 2, 3, 0, SYN, options=o).emit(A, B))
    assert t.options == [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)]


@st.composite
def scapy_options(draw: st.DrawFn) -> tuple[list[tuple[Any, Any]], TcpOptions]:
    """A scapy options list in any order, with NOPs and unknown options mixed in, and its value."""
    candidates: list[tuple[Any, Any]] = []
    expected: dict[str, Any] = {}
    if draw(st.booleans()):
        expected["mss"] = draw(u16)
        candidates.append(("MSS", expected["mss"]))
    if draw(st.booleans()):
        expected["wscale"] = draw(st.integers(0, 255))
        candidates.append(("WScale", expected["wscale"]))
    if draw(st.booleans()):
        expected["sack_permitted"] = True
        candidates.append(("SAckOK", b""))
    if draw(st.booleans()):
        expected["timestamp"] = draw(st.tuples(u32, u32))
        candidates.append(("Timestamp", expected["timestamp"]))
    if draw(st.booleans()):
        sack = draw(st.lists(blocks, min_size=1, max_size=2))
        expected["sack"] = tuple(sack)
        candidates.append(("SAck", tuple(x for blk in sack for x in blk)))
    candidates += draw(
        st.lists(st.sampled_from([("NOP", None), (99, b"xy"), (34, b"cookie!!"), (253, b"")]), max_size=3)
    )
    opts = draw(st.permutations(candidates))
    if draw(st.booleans()):
        opts.append(("EOL", None))
    return opts, TcpOptions(**expected)


def _scapy_len(opts: list[tuple[Any, Any]]) -> int:
    return len(bytes(TCP(options=opts))) - HEADER_LEN


@given(scapy_options().filter(lambda ox: _scapy_len(ox[0]) <= 40), u32, u32, st.binary(max_size=100))
def test_seqs_parses_scapy_segments_with_same_fields_and_options(
    ox: tuple[list[tuple[Any, Any]], TcpOptions], seq: int, ack: int, payload: bytes
) -> None:
    opts, expected = ox
    b = bytes(
        IP(src=ntoa(A), dst=ntoa(B))
        / TCP(sport=443, dport=50000, seq=seq, ack=ack, flags="PA", window=501, urgptr=0, options=opts)
        / payload
    )
    ip = Ipv4View(b)
    v = TcpView(ip.payload)
    assert v.checksum_ok(A, B)
    assert (v.sport, v.dport, v.seq, v.ack, v.flags, v.window, v.urgent) == (
        443,
        50000,
        seq,
        ack,
        PSH | ACK,
        501,
        0,
    )
    assert v.options() == expected
    assert bytes(v.payload) == payload
    assert TcpSegment.parse(ip.payload, A, B) == TcpSegment(
        443, 50000, seq, ack, PSH | ACK, 501, 0, expected, payload
    )


def test_seqs_parses_scapy_urgent_pointer_and_all_flags() -> None:
    b = bytes(TCP(sport=1, dport=2, flags="FSRPAUEC", urgptr=0xBEEF, window=0))
    v = TcpView(b)
    assert (v.flags, v.urgent, v.window) == (0xFF, 0xBEEF, 0)


# --- option parsing rules -------------------------------------------------------


def test_no_options_parse_to_the_empty_value() -> None:
    assert parse_options(b"") == NO_OPTIONS
    assert parse_options(b"\x01\x01\x01\x01") == NO_OPTIONS
    assert parse_options(b"\x00\x00\x00\x00") == NO_OPTIONS


def test_end_of_option_list_stops_parsing() -> None:
    """RFC 9293 §3.2: End of Option List; what follows is padding, even if it looks malformed."""
    assert parse_options(b"\x02\x04\x05\xb4\x00\x03\x00\x08") == TcpOptions(mss=1460)


def test_nops_between_options_are_skipped() -> None:
    assert parse_options(b"\x01\x02\x04\x05\xb4\x01\x01\x03\x03\x07") == TcpOptions(mss=1460, wscale=7)


@pytest.mark.parametrize(
    "unknown",
    [
        bytes.fromhex("1e0c") + bytes(10),  # MPTCP (RFC 8684)
        bytes.fromhex("220a") + b"cookie!!",  # TCP Fast Open cookie (RFC 7413)
        bytes.fromhex("fe04abcd"),  # RFC 6994 experiment
        bytes.fromhex("6302"),  # kind 99, no data
        bytes.fromhex("1312") + bytes(16),  # TCP MD5 signature (RFC 2385)
    ],
)
def test_unknown_options_are_skipped_by_their_length(unknown: bytes) -> None:
    """RFC 9293 §3.1: ignore without error any option not implemented, by its length (MUST-6)."""
    b = b"\x02\x04\x05\xb4" + unknown + b"\x03\x03\x07"
    assert parse_options(b) == TcpOptions(mss=1460, wscale=7)


@pytest.mark.parametrize(
    ("options", "why"),
    [
        (b"\x63\x00\x00\x00", "unknown option length 0"),
        (b"\x63\x01\x00\x00", "unknown option length 1"),
        (b"\x02\x00", "MSS length 0"),
        (b"\x01\x01\x01\x02", "kind with no length byte"),
        (b"\x63\x05\x00\x00", "unknown option overruns the header"),
        (b"\x08\x0a\x00\x00\x00\x00\x00\x00", "timestamps overrun the header"),
        (b"\x02\x03\x05\x00", "MSS length 3"),
        (b"\x02\x05\x05\xb4\x00\x00\x00\x00", "MSS length 5"),
        (b"\x03\x02\x00\x00", "window scale length 2"),
        (b"\x03\x04\x07\x00", "window scale length 4"),
        (b"\x04\x03\x00\x00", "SACK-permitted length 3"),
        (b"\x04\x04\x00\x00", "SACK-permitted length 4"),
        (b"\x08\x08" + bytes(6), "timestamps length 8"),
        (b"\x08\x0c" + bytes(10), "timestamps length 12"),
        (b"\x05\x02\x00\x00", "SACK with no blocks"),
        (b"\x05\x03" + bytes(2), "SACK length 3"),
        (b"\x05\x09" + bytes(10), "SACK length 9"),
        (b"\x05\x0b" + bytes(10), "SACK length 11"),
        (b"\x05\x13" + bytes(18), "SACK length 19"),
    ],
)
def test_malformed_options_are_rejected(options: bytes, why: str) -> None:
    """RFC 9293 §3.1: an illegal option length must be handled (MUST-7); the length counts
    the kind and length octets.  RFC 9293 §3.2, RFC 7323 §2.2/§3.2 and RFC 2018 §2-3 fix
    the lengths of MSS, window scale, timestamps, SACK-permitted and SACK."""
    with pytest.raises(ParseError) as e:
        parse_options(options)
    assert e.value.reason == "tcp_bad_option", why


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_sack_length_of_two_plus_eight_n_is_accepted(n: int) -> None:
    """RFC 2018 §3: a SACK option with n blocks has length 8*n+2."""
    body = b"".join(i.to_bytes(4, "big") + (i + 1).to_bytes(4, "big") for i in range(n))
    assert parse_options(bytes([5, 2 + 8 * n]) + body).sack == tuple((i, i + 1) for i in range(n))


def test_option_may_not_borrow_bytes_from_the_payload() -> None:
    """RFC 9293 §3.1: options end where the data offset says the data begins."""
    v = TcpView(header(data_offset=6, options=b"\x08\x0a\x00\x00", payload=bytes(8)))
    assert len(v.options_bytes) == 4
    with pytest.raises(ParseError) as e:
        v.options()
    assert e.value.reason == "tcp_bad_option"


def test_malformed_option_fails_segment_parse() -> None:
    b = header(data_offset=6, options=b"\x02\x03\x00\x00")
    assert TcpView(b).checksum_ok(A, B)
    with pytest.raises(ParseError) as e:
        TcpSegment.parse(b, A, B)
    assert e.value.reason == "tcp_bad_option"


# --- the view and malformed headers ------------------------------------------


def test_view_splits_options_and_payload_by_data_offset() -> None:
    o = TcpOptions(mss=536)
    b = TcpSegment(1, 2, 3, options=o, payload=b"hello").emit(A, B)
    v = TcpView(b)
    assert (v.header_len, bytes(v.options_bytes), bytes(v.payload)) == (24, b"\x02\x04\x02\x18", b"hello")
    assert v.options() == o


@pytest.mark.parametrize("n", range(HEADER_LEN))
def test_truncated_header_is_rejected(n: int) -> None:
    with pytest.raises(ParseError) as e:
        TcpView(header()[:n])
    assert e.value.reason == "tcp_truncated"


@pytest.mark.parametrize("data_offset", range(5))
def test_data_offset_below_five_words_is_rejected(data_offset: int) -> None:
    """RFC 9293 §3.1: the header is at least 20 octets (data offset 5)."""
    with pytest.raises(ParseError) as e:
        TcpView(header(data_offset=data_offset, payload=bytes(40)))
    assert e.value.reason == "tcp_bad_data_offset"


@pytest.mark.parametrize(("data_offset", "extra"), [(6, 0), (6, 3), (15, 39), (8, 11)])
def test_data_offset_beyond_buffer_is_rejected(data_offset: int, extra: int) -> None:
    with pytest.raises(ParseError) as e:
        TcpView(header(data_offset=data_offset, options=b"\x01" * extra))
    assert e.value.reason == "tcp_bad_data_offset"


def test_data_offset_of_fifteen_words_with_no_payload_is_accepted() -> None:
    v = TcpView(header(data_offset=15, options=b"\x01" * 40))
    assert (v.header_len, bytes(v.payload), v.options()) == (60, b"", NO_OPTIONS)


@given(segments, st.data())
def test_any_single_bit_error_fails_checksum(s: TcpSegment, data: st.DataObject) -> None:
    """RFC 9293 §3.1: the checksum covers header, options and data."""
    b = bytearray(s.emit(A, B))
    bit = data.draw(st.integers(0, len(b) * 8 - 1).filter(lambda i: not 96 <= i < 100))  # not data offset
    b[bit // 8] ^= 0x80 >> (bit % 8)
    assert not TcpView(b).checksum_ok(A, B)
    with pytest.raises(ParseError) as e:
        TcpSegment.parse(b, A, B)
    assert e.value.reason == "tcp_bad_checksum"


def test_checksum_covers_pseudo_header() -> None:
    """RFC 9293 §3.1: the pseudo-header holds source, destination, protocol and TCP length."""
    b = TcpSegment(1, 2, 3, flags=SYN).emit(A, B)
    assert TcpView(b).checksum_ok(A, B)
    assert not TcpView(b).checksum_ok(B, A ^ 1)
    assert not TcpView(b + b"\x00\x00").checksum_ok(A, B)  # TCP length differs


def test_segment_inside_ipv4_parses_after_ip_cuts_padding() -> None:
    seg = TcpSegment(1, 2, 3, 4, ACK).emit(A, B)
    ip = Ipv4Header(A, B, PROTO_TCP).emit(seg)
    v = Ipv4View(ip + bytes(6))  # Ethernet padding of a 54-byte frame
    assert TcpSegment.parse(v.payload, A, B) == TcpSegment(1, 2, 3, 4, ACK)


def _kwargs(o: TcpOptions) -> dict[str, Any]:
    return {
        "mss": o.mss,
        "wscale": o.wscale,
        "sack_permitted": o.sack_permitted,
        "timestamp": o.timestamp,
        "sack": o.sack,
    }
