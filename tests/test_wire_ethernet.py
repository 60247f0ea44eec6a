"""Ethernet II frames with 802.1Q/802.1ad tags, and the MAC address helpers.

scapy's ``Ether``/``Dot1Q``/``Dot1AD`` are the oracle both ways.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.l2 import LLC, Dot1AD, Dot1Q, Dot3, Ether

from seqs.errors import ParseError
from seqs.wire.ethernet import (
    BROADCAST,
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    ETHERTYPE_QINQ,
    ETHERTYPE_VLAN,
    HEADER_LEN,
    EthernetFrame,
    EthernetView,
    build_header,
    ipv4_multicast_mac,
    is_multicast,
    mac_to_str,
    parse_mac,
)
from seqs.wire.ipv4 import aton

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")

macs = st.binary(min_size=6, max_size=6)
ethertypes = st.integers(0x0600, 0xFFFF).filter(lambda t: t not in (ETHERTYPE_VLAN, ETHERTYPE_QINQ))
frames = st.builds(
    EthernetFrame,
    dst=macs,
    src=macs,
    ethertype=ethertypes,
    payload=st.binary(max_size=100),
    vlan_id=st.none(),
    vlan_pcp=st.just(0),
) | st.builds(
    EthernetFrame,
    dst=macs,
    src=macs,
    ethertype=ethertypes,
    payload=st.binary(max_size=100),
    vlan_id=st.integers(0, 4095),
    vlan_pcp=st.integers(0, 7),
)


def tagged(ethertype: int, *tags: tuple[int, int]) -> bytes:
    """A frame MAC_B -> MAC_A with (TPID, TCI) tags in order, then ``ethertype`` and b"data"."""
    out = MAC_A + MAC_B
    for tpid, tci in tags:
        out += tpid.to_bytes(2, "big") + tci.to_bytes(2, "big")
    return out + ethertype.to_bytes(2, "big") + b"data"


# --- round trip -------------------------------------------------------------


def test_untagged_frame_round_trips() -> None:
    f = EthernetFrame(BROADCAST, MAC_A, ETHERTYPE_ARP, b"\x00" * 28)
    assert EthernetFrame.parse(f.emit()) == f


def test_vlan_tagged_frame_round_trips_with_id_and_priority() -> None:
    f = EthernetFrame(MAC_A, MAC_B, ETHERTYPE_IPV4, b"payload", vlan_id=100, vlan_pcp=5)
    b = f.emit()
    assert len(b) == HEADER_LEN + 4 + len(b"payload")
    assert EthernetFrame.parse(b) == f


@given(frames)
def test_any_frame_round_trips(f: EthernetFrame) -> None:
    assert EthernetFrame.parse(f.emit()) == f


def test_emit_rejects_short_mac_and_oversized_vlan_id() -> None:
    with pytest.raises(ValueError):
        EthernetFrame(MAC_A[:5], MAC_B, ETHERTYPE_IPV4).emit()
    with pytest.raises(ValueError):
        EthernetFrame(MAC_A, MAC_B, ETHERTYPE_IPV4, vlan_id=4096).emit()


def test_build_header_is_the_untagged_header_of_emit() -> None:
    assert build_header(MAC_A, MAC_B, ETHERTYPE_IPV4) == EthernetFrame(MAC_A, MAC_B, ETHERTYPE_IPV4).emit()


def test_view_exposes_addresses_and_payload_without_tag() -> None:
    v = EthernetView(EthernetFrame(MAC_A, MAC_B, ETHERTYPE_IPV6, b"xyz").emit())
    assert (v.dst, v.src, v.ethertype, v.vlan_id, v.header_len) == (MAC_A, MAC_B, ETHERTYPE_IPV6, None, 14)
    assert bytes(v.payload) == b"xyz"


# --- scapy as oracle --------------------------------------------------------


@given(frames)
def test_scapy_dissects_seqs_frames_with_same_fields(f: EthernetFrame) -> None:
    p = Ether(f.emit())
    assert (p.dst, p.src) == (mac_to_str(f.dst), mac_to_str(f.src))
    if f.vlan_id is None:
        assert p.type == f.ethertype
        inner = p.payload
    else:
        assert p.type == ETHERTYPE_VLAN
        q = p[Dot1Q]
        assert (q.vlan, q.prio, q.dei, q.type) == (f.vlan_id, f.vlan_pcp, 0, f.ethertype)
        inner = q.payload
    assert bytes(inner) == f.payload


@given(macs, macs, ethertypes, st.binary(max_size=64))
def test_seqs_parses_scapy_untagged_frames(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> None:
    b = bytes(Ether(dst=mac_to_str(dst), src=mac_to_str(src), type=ethertype) / payload)
    assert EthernetFrame.parse(b) == EthernetFrame(dst, src, ethertype, payload)


@given(st.integers(0, 4095), st.integers(0, 7), ethertypes, st.binary(max_size=64))
def test_seqs_parses_scapy_dot1q_frames(vlan: int, prio: int, ethertype: int, payload: bytes) -> None:
    """IEEE 802.1Q: the TCI is PCP(3) DEI(1) VID(12), then the inner EtherType."""
    b = bytes(
        Ether(dst="02:00:00:00:00:01", src="02:00:00:00:00:02")
        / Dot1Q(vlan=vlan, prio=prio, type=ethertype)
        / payload
    )
    v = EthernetView(b)
    assert (v.ethertype, v.vlan_id, v.header_len) == (ethertype, vlan, 18)
    assert EthernetFrame.parse(b) == EthernetFrame(MAC_A, MAC_B, ethertype, payload, vlan, prio)


def test_dei_bit_is_not_mistaken_for_vlan_id() -> None:
    b = bytes(Ether(dst="02:00:00:00:00:01") / Dot1Q(vlan=4095, prio=7, dei=1, type=0x0800) / b"x")
    f = EthernetFrame.parse(b)
    assert (f.vlan_id, f.vlan_pcp) == (4095, 7)


def test_double_tagged_qinq_frame_yields_inner_vlan_and_ethertype() -> None:
    """IEEE 802.1ad: an outer S-tag (0x88A8) and inner C-tag (0x8100); the inner one wins."""
    b = bytes(
        Ether(dst="02:00:00:00:00:01", src="02:00:00:00:00:02")
        / Dot1AD(vlan=7, prio=1)
        / Dot1Q(vlan=100, prio=3, type=ETHERTYPE_IPV4)
        / b"inner"
    )
    v = EthernetView(b)
    assert (v.ethertype, v.vlan_id, v.header_len) == (ETHERTYPE_IPV4, 100, 22)
    assert bytes(v.payload) == b"inner"
    assert EthernetFrame.parse(b) == EthernetFrame(MAC_A, MAC_B, ETHERTYPE_IPV4, b"inner", 100, 3)


def test_double_8100_tag_is_accepted_like_qinq() -> None:
    v = EthernetView(tagged(ETHERTYPE_ARP, (ETHERTYPE_VLAN, 10), (ETHERTYPE_VLAN, 20)))
    assert (v.ethertype, v.vlan_id, v.header_len, bytes(v.payload)) == (ETHERTYPE_ARP, 20, 22, b"data")


def test_more_than_two_vlan_tags_are_rejected() -> None:
    b = tagged(ETHERTYPE_IPV4, (ETHERTYPE_QINQ, 1), (ETHERTYPE_VLAN, 2), (ETHERTYPE_VLAN, 3))
    with pytest.raises(ParseError) as e:
        EthernetView(b)
    assert e.value.reason == "eth_vlan_nesting"


# --- malformed ----------------------------------------------------------------


@pytest.mark.parametrize("n", range(HEADER_LEN))
def test_frame_shorter_than_header_is_truncated(n: int) -> None:
    with pytest.raises(ParseError) as e:
        EthernetView(EthernetFrame(MAC_A, MAC_B, ETHERTYPE_IPV4).emit()[:n])
    assert e.value.reason == "eth_truncated"


@pytest.mark.parametrize("cut", [14, 15, 16, 17, 18, 19, 20, 21])
def test_vlan_tag_cut_short_is_truncated(cut: int) -> None:
    b = tagged(ETHERTYPE_IPV4, (ETHERTYPE_QINQ, 1), (ETHERTYPE_VLAN, 2))[:cut]
    with pytest.raises(ParseError) as e:
        EthernetView(b)
    assert e.value.reason == "eth_truncated"


def test_frame_exactly_one_tag_long_has_empty_payload() -> None:
    v = EthernetView(tagged(ETHERTYPE_IPV4, (ETHERTYPE_VLAN, 5))[:18])
    assert (v.ethertype, v.vlan_id, bytes(v.payload)) == (ETHERTYPE_IPV4, 5, b"")


def test_ieee_802_3_length_field_is_not_ethernet_ii() -> None:
    """IEEE 802.3 §3.2.6: a type/length value below 0x0600 is a length (LLC frame)."""
    b = bytes(Dot3(dst="02:00:00:00:00:01", src="02:00:00:00:00:02") / LLC() / (b"x" * 10))
    with pytest.raises(ParseError) as e:
        EthernetView(b)
    assert e.value.reason == "eth_not_ethernet2"


@pytest.mark.parametrize(("value", "ok"), [(0, False), (1500, False), (0x05FF, False), (0x0600, True)])
def test_type_length_boundary_is_0x0600(value: int, ok: bool) -> None:
    b = MAC_A + MAC_B + value.to_bytes(2, "big")
    if ok:
        assert EthernetView(b).ethertype == value
    else:
        with pytest.raises(ParseError):
            EthernetView(b)


def test_length_field_inside_vlan_tag_is_rejected() -> None:
    with pytest.raises(ParseError) as e:
        EthernetView(tagged(100, (ETHERTYPE_VLAN, 1)))
    assert e.value.reason == "eth_not_ethernet2"


# --- helpers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "mac"),
    [
        ("02:00:00:aa:bb:cc", bytes.fromhex("020000aabbcc")),
        ("02-00-00-AA-BB-CC", bytes.fromhex("020000aabbcc")),
        ("2:0:0:a:b:c", bytes.fromhex("0200000a0b0c")),
        ("ff:ff:ff:ff:ff:ff", BROADCAST),
    ],
)
def test_parse_mac_accepts_colon_or_dash_hex(text: str, mac: bytes) -> None:
    assert parse_mac(text) == mac


@pytest.mark.parametrize(
    "text",
    [
        "",
        "02:00:00:aa:bb",
        "02:00:00:aa:bb:cc:dd",
        "02:00:00:aa:bb:",
        "02:00:00:aa:bb:ccc",
        "02:00:00:aa:bb:gg",
        "020000aabbcc",
        "+2:00:00:aa:bb:cc",
        " 2:00:00:aa:bb:cc",
        "02:00:00:aa:bb:c_",
        "0x:00:00:aa:bb:cc",
        "02:00:00:aa:bb:\u0663",
    ],
)
def test_parse_mac_rejects_malformed_text(text: str) -> None:
    with pytest.raises(ValueError):
        parse_mac(text)


@given(macs)
def test_mac_to_str_and_parse_mac_are_inverse(mac: bytes) -> None:
    text = mac_to_str(mac)
    assert len(text) == 17
    assert parse_mac(text) == mac


def test_mac_to_str_is_lowercase_colon_separated() -> None:
    assert mac_to_str(bytes.fromhex("02AB00CDEF01")) == "02:ab:00:cd:ef:01"


def test_is_multicast_checks_group_bit() -> None:
    assert is_multicast(BROADCAST)
    assert is_multicast(bytes.fromhex("01005e000001"))
    assert not is_multicast(MAC_A)


@pytest.mark.parametrize(
    ("group", "mac"),
    [
        ("224.0.0.1", "01:00:5e:00:00:01"),
        ("224.0.0.251", "01:00:5e:00:00:fb"),
        ("239.255.255.250", "01:00:5e:7f:ff:fa"),
    ],
)
def test_ipv4_multicast_mac_maps_low_23_bits(group: str, mac: str) -> None:
    """RFC 1112 §6.4: 01-00-5E-00-00-00 plus the low-order 23 bits of the group."""
    assert ipv4_multicast_mac(aton(group)) == parse_mac(mac)
