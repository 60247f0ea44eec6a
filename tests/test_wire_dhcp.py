"""DHCP messages and options (RFC 2131 §2, RFC 2132, RFC 3396): layout, round trips,
the length rules, and hostile bytes (only ParseError may escape)."""

from __future__ import annotations

import re
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqs.errors import ParseError
from seqs.wire import dhcp as wd
from seqs.wire.ipv4 import aton

MAC = bytes.fromhex("02000000c0de")
REASON = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)+$")


def _message(options: bytes, *, op: int = wd.OP_REPLY, cookie: int = wd.MAGIC_COOKIE, sname: bytes = b"",
             file: bytes = b"") -> bytes:
    head = struct.pack("!BBBBIHHIIII16s64s128sI", op, 1, 6, 0, 0x11223344, 0, 0, 0, aton("10.0.0.77"), 0, 0,
                       MAC, sname, file, cookie)
    return head + options


def test_discover_layout_matches_rfc_2131_figure_1() -> None:
    msg = wd.DhcpMessage(wd.OP_REQUEST, 0xDEADBEEF, MAC, wd.DhcpOptions(message_type=wd.DISCOVER), secs=3,
                         flags=wd.FLAG_BROADCAST, ciaddr=aton("1.2.3.4"))
    b = msg.emit()
    assert len(b) == 300  # RFC 1542 §2.1: padded to the BOOTP minimum
    assert b[0:4] == bytes([1, 1, 6, 0])  # op, htype Ethernet, hlen 6, hops
    assert b[4:8] == bytes.fromhex("deadbeef")  # xid
    assert b[8:10] == b"\x00\x03" and b[10:12] == b"\x80\x00"  # secs, flags (broadcast bit)
    assert b[12:16] == bytes([1, 2, 3, 4])  # ciaddr
    assert b[28:34] == MAC and b[34:44] == bytes(10)  # chaddr, padded to 16
    assert b[236:240] == bytes([99, 130, 83, 99])  # the magic cookie
    assert b[240:244] == bytes([53, 1, 1, 255])  # message type DISCOVER, then END
    assert b[244:] == bytes(56)


def test_every_option_round_trips() -> None:
    o = wd.DhcpOptions(
        message_type=wd.ACK, subnet_mask=aton("255.255.255.0"), routers=(aton("10.0.0.1"), aton("10.0.0.2")),
        dns_servers=(aton("10.0.0.53"),), hostname="host", domain_name="example.test", mtu=1400,
        broadcast_address=aton("10.0.0.255"), ntp_servers=(aton("10.0.0.123"),),
        requested_address=aton("10.0.0.77"), lease_time=3600, server_id=aton("10.0.0.1"),
        parameter_request_list=(1, 3, 6), message="hello", max_message_size=1500, renewal_time=1800,
        rebinding_time=3150, client_id=b"\x01" + MAC,
    )
    msg = wd.DhcpMessage(wd.OP_REPLY, 7, MAC, o, yiaddr=aton("10.0.0.77"), siaddr=1, giaddr=2, hops=1,
                         sname=b"server", file=b"boot.img")
    assert wd.DhcpMessage.parse(msg.emit()) == msg


def test_options_are_emitted_message_type_first_then_in_code_order() -> None:
    o = wd.DhcpOptions(message_type=wd.OFFER, server_id=1, subnet_mask=2, lease_time=3)
    assert o.emit() == bytes([53, 1, 2, 1, 4, 0, 0, 0, 2, 51, 4, 0, 0, 0, 3, 54, 4, 0, 0, 0, 1, 255])


def test_view_reads_fields_in_place() -> None:
    msg = wd.DhcpMessage(wd.OP_REPLY, 9, MAC, wd.DhcpOptions(message_type=wd.NAK), flags=wd.FLAG_BROADCAST,
                         ciaddr=1, yiaddr=2, siaddr=3, giaddr=4, hops=5, secs=6)
    v = wd.DhcpView(memoryview(msg.emit()))
    assert (v.op, v.xid, v.hops, v.secs, v.flags, v.broadcast) == (2, 9, 5, 6, 0x8000, True)
    assert (v.ciaddr, v.yiaddr, v.siaddr, v.giaddr, v.chaddr) == (1, 2, 3, 4, MAC)
    assert v.options().message_type == wd.NAK


def test_unknown_options_and_pads_are_skipped() -> None:
    raw = bytes([0, 0, 53, 1, 5, 200, 3, 1, 2, 3, 0, 54, 4, 10, 0, 0, 1, 255])
    o = wd.DhcpMessage.parse(_message(raw)).options
    assert o.message_type == wd.ACK and o.server_id == aton("10.0.0.1")


def test_missing_end_option_is_tolerated() -> None:
    o = wd.DhcpMessage.parse(_message(bytes([53, 1, 2]))).options
    assert o.message_type == wd.OFFER


def test_trailing_nul_of_a_text_option_is_removed() -> None:
    # RFC 2132 §2: receivers must be prepared to delete trailing NULs.
    o = wd.DhcpMessage.parse(_message(bytes([12, 5]) + b"host\0" + bytes([255]))).options
    assert o.hostname == "host"


def test_repeated_option_is_the_concatenation_of_its_instances() -> None:
    # RFC 3396 §5: the DNS server list split in two instances.
    raw = bytes([6, 4, 10, 0, 0, 1, 6, 4, 10, 0, 0, 2, 255])
    assert wd.DhcpMessage.parse(_message(raw)).options.dns_servers == (aton("10.0.0.1"), aton("10.0.0.2"))


def test_long_option_is_split_on_emit_and_joined_on_parse() -> None:
    name = "a" * 300  # RFC 3396 §7: more than 255 bytes goes in several instances
    o = wd.DhcpOptions(message_type=wd.ACK, domain_name=name)
    b = o.emit()
    assert b[3:5] == bytes([15, 255]) and b[260:262] == bytes([15, 45])
    assert wd.DhcpMessage.parse(_message(b)).options.domain_name == name


def test_overloaded_file_and_sname_fields_carry_options() -> None:
    # RFC 2132 §9.3: option 52 = 3 means both fields hold options (file first).
    file = bytes([54, 4, 10, 0, 0, 1, 255])
    sname = bytes([51, 4, 0, 0, 14, 16, 255])
    msg = wd.DhcpMessage.parse(_message(bytes([53, 1, 5, 52, 1, 3, 255]), sname=sname, file=file))
    assert msg.options.server_id == aton("10.0.0.1") and msg.options.lease_time == 3600
    assert msg.sname == b"" and msg.file == b""


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (bytes([53, 1, 5, 1, 3, 255, 255, 255]), "dhcp_option_bad_length"),  # a 3-byte subnet mask
        (bytes([53, 2, 5, 5]), "dhcp_option_bad_length"),  # a 2-byte message type
        (bytes([3, 6, 1, 2, 3, 4, 5, 6]), "dhcp_option_bad_length"),  # routers: not a multiple of 4
        (bytes([51, 4, 0, 0]), "dhcp_option_overrun"),  # length past the end
        (bytes([53]), "dhcp_option_overrun"),  # no length byte
        (bytes([53, 1, 9]), "dhcp_bad_message_type"),
        (bytes([26, 2, 0, 67]), "dhcp_option_bad_value"),  # RFC 2132 §5.1: MTU at least 68
        (bytes([57, 2, 2, 0]), "dhcp_option_bad_value"),  # RFC 2132 §9.10: at least 576
        (bytes([61, 1, 1]), "dhcp_option_bad_length"),  # RFC 2132 §9.14: client id at least 2
        (bytes([12, 1, 0]), "dhcp_option_bad_length"),  # a host name of only a NUL
        (bytes([52, 1, 4]), "dhcp_option_bad_length"),  # overload value 1..3 only
    ],
)
def test_malformed_options_raise_parse_error(options: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as e:
        wd.DhcpMessage.parse(_message(options))
    assert e.value.reason == reason


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (_message(b"")[:239], "dhcp_truncated"),
        (_message(b"", op=3), "dhcp_bad_op"),
        (_message(b"", cookie=0), "dhcp_no_magic_cookie"),
        (_message(b"")[:1] + b"\x06" + _message(b"")[2:], "dhcp_unsupported_hardware"),
    ],
)
def test_malformed_fixed_part_raises_parse_error(data: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as e:
        wd.DhcpView(data)
    assert e.value.reason == reason


def test_emit_refuses_values_that_cannot_be_sent() -> None:
    with pytest.raises(ValueError):
        wd.DhcpOptions(hostname="").emit()
    with pytest.raises(ValueError):
        wd.DhcpMessage(1, 0, b"\x00" * 5).emit()


def test_describe_names_the_message() -> None:
    msg = wd.DhcpMessage(wd.OP_REPLY, 1, MAC, wd.DhcpOptions(message_type=wd.OFFER, server_id=aton("10.0.0.1")),
                         yiaddr=aton("10.0.0.77"))
    assert msg.describe() == "DHCPOFFER xid=0x00000001 yiaddr=10.0.0.77 server=10.0.0.1"


# -- property tests ------------------------------------------------------------------------------

_u32 = st.integers(0, 0xFFFFFFFF)
_addrs = st.lists(_u32, max_size=70).map(tuple)  # up to 280 bytes: exercises RFC 3396 splitting
_text = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=300)
options_strategy = st.builds(
    wd.DhcpOptions,
    message_type=st.none() | st.integers(1, 8),
    subnet_mask=st.none() | _u32,
    routers=_addrs,
    dns_servers=_addrs,
    hostname=st.none() | _text,
    domain_name=st.none() | _text,
    mtu=st.none() | st.integers(68, 0xFFFF),
    broadcast_address=st.none() | _u32,
    ntp_servers=_addrs,
    requested_address=st.none() | _u32,
    lease_time=st.none() | _u32,
    server_id=st.none() | _u32,
    parameter_request_list=st.lists(st.integers(0, 255), max_size=300).map(tuple),
    message=st.none() | _text,
    max_message_size=st.none() | st.integers(576, 0xFFFF),
    renewal_time=st.none() | _u32,
    rebinding_time=st.none() | _u32,
    client_id=st.none() | st.binary(min_size=2, max_size=300),
)


@settings(max_examples=300, deadline=None)
@given(options=options_strategy, xid=_u32, flags=st.integers(0, 0xFFFF), addrs=st.tuples(_u32, _u32, _u32, _u32))
def test_any_message_round_trips(options: wd.DhcpOptions, xid: int, flags: int,
                                 addrs: tuple[int, int, int, int]) -> None:
    msg = wd.DhcpMessage(wd.OP_REQUEST, xid, MAC, options, flags=flags, ciaddr=addrs[0], yiaddr=addrs[1],
                         siaddr=addrs[2], giaddr=addrs[3])
    assert wd.DhcpMessage.parse(msg.emit()) == msg


def _attempt(data: bytes) -> None:
    try:
        msg = wd.DhcpMessage.parse(data)
    except ParseError as e:
        assert REASON.match(e.reason), e.reason
        return
    msg.describe()


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_parse_error(data: bytes) -> None:
    _attempt(data)


@settings(max_examples=500, deadline=None)
@given(tail=st.binary(max_size=200), sname=st.binary(max_size=64), file=st.binary(max_size=128))
def test_arbitrary_options_after_a_valid_header_raise_only_parse_error(tail: bytes, sname: bytes,
                                                                      file: bytes) -> None:
    _attempt(_message(tail, sname=sname, file=file))
    _attempt(_message(bytes([52, 1, 3]) + tail, sname=sname, file=file))


@settings(max_examples=300, deadline=None)
@given(options=options_strategy, edits=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)),
                                                 min_size=1, max_size=6), cut=st.integers(0, 2000))
def test_mutated_valid_messages_raise_only_parse_error(options: wd.DhcpOptions, edits: list[tuple[int, int]],
                                                       cut: int) -> None:
    b = bytearray(wd.DhcpMessage(wd.OP_REPLY, 1, MAC, options).emit())
    for pos, value in edits:
        b[pos % len(b)] = value
    _attempt(bytes(b))
    _attempt(bytes(b[: cut % (len(b) + 1)]))
