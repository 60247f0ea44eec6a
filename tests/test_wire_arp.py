"""ARP for IPv4 over Ethernet (RFC 826), with scapy's ``ARP`` as the oracle."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.l2 import ARP, Ether

from seqs.errors import ParseError
from seqs.wire.arp import OP_REPLY, OP_REQUEST, PACKET_LEN, ArpPacket, ArpView
from seqs.wire.ethernet import BROADCAST, ETHERTYPE_ARP, EthernetFrame, EthernetView, mac_to_str
from seqs.wire.ipv4 import aton, ntoa

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")
IP_A = aton("10.0.0.1")
IP_B = aton("10.0.0.2")

packets = st.builds(
    ArpPacket,
    op=st.sampled_from([OP_REQUEST, OP_REPLY]),
    sha=st.binary(min_size=6, max_size=6),
    spa=st.integers(0, 0xFFFFFFFF),
    tha=st.binary(min_size=6, max_size=6),
    tpa=st.integers(0, 0xFFFFFFFF),
)


def raw_arp(htype: int = 1, ptype: int = 0x0800, hlen: int = 6, plen: int = 4, op: int = 1) -> bytes:
    return (
        struct.pack("!HHBBH", htype, ptype, hlen, plen, op)
        + MAC_A
        + IP_A.to_bytes(4, "big")
        + bytes(6)
        + IP_B.to_bytes(4, "big")
    )


def test_request_round_trips() -> None:
    """RFC 826: a request asks for tpa's hardware address; tha is unknown (zero)."""
    p = ArpPacket(OP_REQUEST, MAC_A, IP_A, bytes(6), IP_B)
    b = p.emit()
    assert len(b) == PACKET_LEN
    assert ArpPacket.parse(b) == p


def test_reply_round_trips() -> None:
    p = ArpPacket(OP_REPLY, MAC_B, IP_B, MAC_A, IP_A)
    assert ArpPacket.parse(p.emit()) == p


@given(packets)
def test_any_packet_round_trips(p: ArpPacket) -> None:
    assert ArpPacket.parse(p.emit()) == p


@given(packets)
def test_scapy_dissects_seqs_packets_with_same_fields(p: ArpPacket) -> None:
    a = ARP(p.emit())
    assert (a.hwtype, a.ptype, a.hwlen, a.plen) == (1, 0x0800, 6, 4)
    assert a.op == p.op
    assert (a.hwsrc, a.psrc) == (mac_to_str(p.sha), ntoa(p.spa))
    assert (a.hwdst, a.pdst) == (mac_to_str(p.tha), ntoa(p.tpa))


@given(packets)
def test_seqs_parses_scapy_packets_with_same_fields(p: ArpPacket) -> None:
    b = bytes(
        ARP(op=p.op, hwsrc=mac_to_str(p.sha), psrc=ntoa(p.spa), hwdst=mac_to_str(p.tha), pdst=ntoa(p.tpa))
    )
    assert ArpPacket.parse(b) == p
    v = ArpView(b)
    assert (v.op, v.sha, v.spa, v.tha, v.tpa) == (p.op, p.sha, p.spa, p.tha, p.tpa)


def test_scapy_who_has_frame_padded_to_minimum_parses() -> None:
    """A request in a 60-byte frame: the 18 bytes of Ethernet padding are ignored."""
    frame = bytes(
        Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:01")
        / ARP(hwsrc="02:00:00:00:00:01", psrc="10.0.0.1", pdst="10.0.0.2")
    )
    frame += bytes(60 - len(frame))
    eth = EthernetView(frame)
    assert eth.ethertype == ETHERTYPE_ARP
    assert len(eth.payload) == PACKET_LEN + 18
    assert ArpPacket.parse(eth.payload) == ArpPacket(OP_REQUEST, MAC_A, IP_A, bytes(6), IP_B)


def test_seqs_reply_frame_is_what_scapy_calls_is_at() -> None:
    frame = EthernetFrame(
        MAC_A, MAC_B, ETHERTYPE_ARP, ArpPacket(OP_REPLY, MAC_B, IP_B, MAC_A, IP_A).emit()
    ).emit()
    p = Ether(frame)
    assert p[ARP].op == 2  # is-at
    assert p[ARP].psrc == "10.0.0.2"
    assert p.dst != mac_to_str(BROADCAST)


@pytest.mark.parametrize("n", range(PACKET_LEN))
def test_truncated_packet_is_rejected(n: int) -> None:
    with pytest.raises(ParseError) as e:
        ArpView(raw_arp()[:n])
    assert e.value.reason == "arp_truncated"


@pytest.mark.parametrize(
    "fields",
    [
        {"htype": 6},  # IEEE 802 networks
        {"htype": 0},
        {"ptype": 0x86DD},
        {"ptype": 0x0806},
        {"hlen": 8},
        {"hlen": 0},
        {"plen": 16},
        {"plen": 0},
    ],
)
def test_non_ethernet_ipv4_arp_is_unsupported(fields: dict[str, int]) -> None:
    with pytest.raises(ParseError) as e:
        ArpPacket.parse(raw_arp(**fields))
    assert e.value.reason == "arp_unsupported"


@pytest.mark.parametrize("op", [0, 3, 4, 8, 0xFFFF])  # 3/4 are RARP (RFC 903), 8 InARP
def test_operations_other_than_request_and_reply_are_rejected(op: int) -> None:
    with pytest.raises(ParseError) as e:
        ArpView(raw_arp(op=op))
    assert e.value.reason == "arp_bad_op"
