"""IPv4 in and out of the interface (RFC 791, RFC 1122 §3.2.1, §3.3), plus the Ethernet
checks in front of it.  Each refusal is a named counter in ``stack.stats.drops``."""

from __future__ import annotations

import errno

import pytest

from helpers import (
    FAR_IP,
    GATEWAY_IP,
    OUR_IP,
    OUR_MAC,
    PEER_IP,
    PEER_MAC,
    SUBNET_BROADCAST,
    describe,
    eth,
    ip_of,
    ip_packet,
    learn_peer,
    make_stack,
    parse_all,
    sent_ip,
    udp_frame,
)
from seqs import Stack
from seqs.iface import InterfaceConfig
from seqs.wire import ethernet as weth
from seqs.wire import ipv4 as wip
from seqs.wire import virtio
from seqs.wire.checksum import checksum
from seqs.wire.udp import UdpDatagram


def _bound(stack: Stack, port: int = 9):
    sock = stack.udp_socket()
    sock.bind(("", port))
    return sock


def _drain(sock) -> list[tuple[bytes, tuple[str, int]]]:
    out = []
    for _ in range(10_000):
        got = sock.recvfrom()
        if got is None:
            return out
        out.append(got)
    raise AssertionError("socket queue does not drain")


def _udp_packet(data: bytes = b"hello", *, src: int = PEER_IP, dst: int = OUR_IP, dport: int = 9) -> bytearray:
    return bytearray(ip_packet(wip.PROTO_UDP, UdpDatagram(1000, dport, data).emit(src, dst), src=src, dst=dst))


def _refill_checksum(pkt: bytearray) -> bytearray:
    hl = (pkt[0] & 0x0F) * 4
    pkt[10:12] = b"\0\0"
    pkt[10:12] = checksum(pkt[:hl]).to_bytes(2, "big")
    return pkt


# -- Ethernet in front ------------------------------------------------------------------


def test_frame_shorter_than_an_ethernet_header_is_dropped() -> None:
    s = make_stack()
    s.receive(b"\x02\x00\x00\x00\x00\x01\x02", 1.0)
    assert s.stats.drops == {"eth_truncated": 1}


def test_unknown_ethertype_and_vlan_tagged_frames_are_dropped() -> None:
    s = make_stack()
    s.receive(eth(bytes(46), weth.ETHERTYPE_IPV6), 1.0)
    s.receive(weth.EthernetFrame(OUR_MAC, PEER_MAC, weth.ETHERTYPE_IPV4, bytes(_udp_packet()), vlan_id=5).emit(), 1.0)
    assert s.stats.drops == {"eth_unknown_type": 1, "eth_vlan_not_configured": 1}


def test_frames_we_send_are_padded_to_the_ethernet_minimum() -> None:
    """IEEE 802.3: 60 bytes before the FCS; short frames are padded with zeros."""
    s = make_stack()
    learn_peer(s, 1.0)
    sock = s.udp_socket()
    sock.sendto(b"x", (wip.ntoa(PEER_IP), 9))
    (frame,) = s.take_tx()
    assert len(frame) == 60
    h, p = ip_of(weth.EthernetFrame.parse(frame))
    assert UdpDatagram.parse(p, h.src, h.dst).payload == b"x"


# -- receive checks ---------------------------------------------------------------------


def test_bad_header_checksum_is_dropped() -> None:
    """RFC 1122 §3.2.1.2: a datagram whose header checksum fails is silently discarded."""
    s = make_stack()
    sock = _bound(s)
    pkt = _udp_packet()
    pkt[10] ^= 0x40
    s.receive(eth(bytes(pkt)), 1.0)
    assert _drain(sock) == []
    assert s.stats.drops == {"ipv4_bad_checksum": 1}
    assert s.take_tx() == []


@pytest.mark.parametrize(
    ("total_len", "reason"),
    [(19, "ipv4_bad_total_len"), (10, "ipv4_bad_total_len"), (200, "ipv4_bad_total_len")],
    ids=["below-header", "far-below-header", "beyond-frame"],
)
def test_total_length_outside_header_and_frame_is_dropped(total_len: int, reason: str) -> None:
    """RFC 791 §3.1: total length covers header and data; it can neither be smaller
    than the header nor larger than what arrived."""
    s = make_stack()
    sock = _bound(s)
    pkt = _udp_packet()
    pkt[2:4] = total_len.to_bytes(2, "big")
    s.receive(eth(bytes(_refill_checksum(pkt))), 1.0)
    assert _drain(sock) == []
    assert s.stats.drops == {reason: 1}


def test_truncated_ipv4_header_is_dropped() -> None:
    s = make_stack()
    s.receive(eth(bytes(_udp_packet())[:19]), 1.0)
    assert s.stats.drops == {"ipv4_truncated": 1}


def test_ethernet_padding_beyond_total_length_is_ignored() -> None:
    """RFC 894: Ethernet pads short packets; the IP total length says where the datagram
    ends, and the padding must reach neither the checksum nor the application."""
    s = make_stack()
    sock = _bound(s)
    s.receive(eth(bytes(_udp_packet(b"hi")) + b"\xa5" * 30), 1.0)
    assert _drain(sock) == [(b"hi", ("10.0.0.2", 1000))]
    assert s.stats.drops == {}


@pytest.mark.parametrize(
    ("vihl", "reason"),
    [(0x65, "ipv4_bad_version"), (0x55, "ipv4_bad_version"), (0x44, "ipv4_bad_header_len"), (0x40, "ipv4_bad_header_len")],
)
def test_bad_version_or_header_length_is_dropped(vihl: int, reason: str) -> None:
    """RFC 791 §3.1: version 4, IHL at least 5 words."""
    s = make_stack()
    sock = _bound(s)
    pkt = _udp_packet()
    pkt[0] = vihl
    s.receive(eth(bytes(_refill_checksum(pkt))), 1.0)
    assert _drain(sock) == []
    assert s.stats.drops == {reason: 1}


def test_header_length_beyond_the_packet_is_dropped() -> None:
    s = make_stack()
    pkt = _udp_packet(b"")  # 28 bytes
    pkt[0] = 0x4F  # a 60-byte header
    s.receive(eth(bytes(_refill_checksum(pkt))), 1.0)
    assert s.stats.drops == {"ipv4_bad_total_len": 1}


def test_unicast_for_another_address_is_dropped() -> None:
    """RFC 1122 §3.3.4.2 (weak ES / no forwarding): a host keeps only datagrams for its own addresses."""
    s = make_stack()
    sock = _bound(s)
    s.receive(eth(bytes(_udp_packet(dst=wip.aton("10.0.0.77")))), 1.0)
    assert _drain(sock) == []
    assert s.stats.drops == {"ipv4_not_for_us": 1}
    assert s.take_tx() == []  # no ICMP about someone else's packet


@pytest.mark.parametrize(
    "src",
    [0xFFFFFFFF, wip.aton("224.0.0.5"), wip.aton("239.1.2.3"), SUBNET_BROADCAST, wip.aton("127.0.0.1")],
    ids=["limited-broadcast", "all-routers", "multicast", "directed-broadcast", "loopback"],
)
def test_datagram_from_a_broadcast_multicast_or_loopback_source_is_dropped(src: int) -> None:
    """RFC 1122 §3.2.1.3: a source that is a broadcast, multicast or loopback address
    is invalid, and such a datagram MUST be silently discarded."""
    s = make_stack()
    sock = _bound(s)
    s.receive(eth(bytes(_udp_packet(src=src))), 1.0)
    assert _drain(sock) == []
    assert s.stats.drops == {"ipv4_bad_source": 1}
    assert s.take_tx() == []


@pytest.mark.parametrize("options", [b"\x01\x01\x01\x00", b"\x94\x04\x00\x00", b"\x01" * 39 + b"\x00"],
                         ids=["nops", "router-alert", "forty-bytes"])
def test_options_are_skipped_by_the_header_length(options: bytes) -> None:
    """RFC 791 §3.1: the data starts IHL words into the header, whatever the options."""
    s = make_stack()
    sock = _bound(s)
    udp = UdpDatagram(1000, 9, b"payload").emit(PEER_IP, OUR_IP)
    s.receive(eth(ip_packet(wip.PROTO_UDP, udp, options=options)), 1.0)
    assert _drain(sock) == [(b"payload", ("10.0.0.2", 1000))]
    assert s.stats.drops == {}


@pytest.mark.parametrize("dst", [0xFFFFFFFF, SUBNET_BROADCAST, wip.aton("224.0.0.1")],
                         ids=["limited-broadcast", "directed-broadcast", "all-hosts"])
def test_broadcast_and_all_hosts_datagrams_are_accepted(dst: int) -> None:
    """RFC 1122 §3.3.6: a host receives limited and directed broadcasts; RFC 1112 §4:
    every host is a member of 224.0.0.1."""
    s = make_stack()
    sock = _bound(s)
    mac = weth.ipv4_multicast_mac(dst) if wip.is_multicast(dst) else weth.BROADCAST
    s.receive(eth(bytes(_udp_packet(dst=dst)), dst=mac), 1.0)
    assert _drain(sock) == [(b"hello", ("10.0.0.2", 1000))]


def test_multicast_group_not_joined_is_dropped() -> None:
    s = make_stack()
    sock = _bound(s)
    dst = wip.aton("239.9.9.9")
    s.receive(eth(bytes(_udp_packet(dst=dst)), dst=weth.ipv4_multicast_mac(dst)), 1.0)
    assert _drain(sock) == []
    assert s.stats.drops == {"ipv4_multicast_not_joined": 1}


def test_unconfigured_interface_accepts_unicast_to_any_address() -> None:
    """RFC 2131 §4.1: a DHCP server may unicast the offer to the address it is offering,
    before the client has configured it; so an interface without an address takes any unicast."""
    s = Stack(mac=OUR_MAC)
    sock = _bound(s, 68)
    offered = wip.aton("10.0.0.50")
    s.receive(eth(bytes(_udp_packet(b"offer", dst=offered, dport=68))), 1.0)
    assert _drain(sock) == [(b"offer", ("10.0.0.2", 1000))]


# -- sending --------------------------------------------------------------------------------


def test_sent_packets_carry_ttl_64_by_default_and_the_socket_ttl_when_set() -> None:
    """RFC 1122 §3.2.1.7: a fixed default TTL, configurable; 64 as RFC 1700 recommends."""
    s = make_stack()
    learn_peer(s, 0.0)
    sock = s.udp_socket()
    sock.sendto(b"a", ("10.0.0.2", 9))
    sock.ttl = 3
    sock.sendto(b"b", ("10.0.0.2", 9))
    assert [h.ttl for h, _ in sent_ip(s)] == [64, 3]
    s2 = make_stack(ttl=128)
    learn_peer(s2, 0.0)
    s2.udp_socket().sendto(b"c", ("10.0.0.2", 9))
    assert [h.ttl for h, _ in sent_ip(s2)] == [128]


def test_sending_to_our_own_address_loops_back_without_touching_the_wire() -> None:
    """RFC 1122 §3.3.6 (and the loopback rule of §3.2.1.3(g) for 127/8): datagrams to
    ourselves are delivered internally."""
    s = make_stack()
    rx = _bound(s, 9)
    tx = s.udp_socket()
    tx.sendto(b"to me", ("10.0.0.1", 9))
    tx.sendto(b"to loopback", ("127.0.0.1", 9))
    assert s.take_tx() == []
    assert s.next_deadline() is not None  # the loopback queue wants a poll
    s.poll(0.0)
    assert s.take_tx() == []
    assert [d for d, _ in _drain(rx)] == [b"to me", b"to loopback"]


def test_no_route_raises_enetunreach() -> None:
    s = make_stack()  # no gateway
    sock = s.udp_socket()
    with pytest.raises(OSError) as e:
        sock.sendto(b"x", (wip.ntoa(FAR_IP), 9))
    assert e.value.errno == errno.ENETUNREACH
    with pytest.raises(OSError) as e:
        sock.connect((wip.ntoa(FAR_IP), 9))
    assert e.value.errno == errno.ENETUNREACH
    assert s.take_tx() == []


def test_gateway_route_reaches_off_link_destinations() -> None:
    s = make_stack(gateway=GATEWAY_IP)
    learn_peer(s, 0.0, mac=bytes.fromhex("0200000000fe"), ip=GATEWAY_IP)
    s.udp_socket().sendto(b"x", (wip.ntoa(FAR_IP), 9))
    (frame,) = parse_all(s.take_tx())
    assert frame.dst == bytes.fromhex("0200000000fe")
    assert ip_of(frame)[0].dst == FAR_IP


def test_too_big_with_dont_fragment_raises_emsgsize() -> None:
    """RFC 791 §3.2: a datagram marked DF that does not fit the MTU cannot be sent."""
    s = make_stack()
    learn_peer(s, 0.0)
    with pytest.raises(OSError) as e:
        s.iface.send_ipv4(PEER_IP, 253, bytes(1481), 0.0, df=True)
    assert e.value.errno == errno.EMSGSIZE
    s.iface.send_ipv4(PEER_IP, 253, bytes(1480), 0.0, df=True)  # exactly the MTU fits
    ((h, p),) = sent_ip(s)
    assert h.dont_fragment and len(p) == 1480


def test_datagram_larger_than_ipv4_allows_raises_emsgsize() -> None:
    s = make_stack()
    learn_peer(s, 0.0)
    with pytest.raises(OSError) as e:
        s.udp_socket().sendto(bytes(65535 - 28 + 1), ("10.0.0.2", 9))
    assert e.value.errno == errno.EMSGSIZE


@pytest.mark.parametrize(("mtu", "size"), [(1500, 4000), (576, 3000), (1500, 65535 - 28)])
def test_oversized_datagram_is_fragmented_and_reassembles_to_the_original(mtu: int, size: int) -> None:
    """RFC 791 §3.2: with DF clear, cut the data at multiples of 8 bytes, same identification,
    MF on all but the last; the receiver (here a second stack) puts it back together."""
    s = make_stack(mtu=mtu)
    learn_peer(s, 0.0)
    data = bytes(i * 7 & 0xFF for i in range(size))
    tx = s.udp_socket()
    tx.sendto(data, ("10.0.0.2", 9))
    frames = s.take_tx()
    packets = [ip_of(f) for f in parse_all(frames)]
    assert len(packets) > 1
    for n, (h, p) in enumerate(packets):
        assert 20 + len(p) <= mtu, describe(frames[n])
        assert h.frag_offset % 8 == 0 and not h.dont_fragment
        assert h.ident == packets[0][0].ident
        assert h.more_fragments == (n < len(packets) - 1)
        if h.more_fragments:
            assert len(p) % 8 == 0
    assert [h.frag_offset for h, _ in packets] == sorted({h.frag_offset for h, _ in packets})
    peer = Stack(config=InterfaceConfig(mac=PEER_MAC, address=PEER_IP, prefix=24, mtu=mtu))
    rx = _bound(peer, 9)
    for f in frames:
        peer.receive(f, 0.5)
    assert _drain(rx) == [(data, ("10.0.0.1", tx.local_port))]
    assert peer.stats.ipv4_reassembled == 1


# -- virtio-net header ------------------------------------------------------------------------


def test_vnet_header_is_stripped_on_receive_and_prepended_on_send() -> None:
    s = make_stack(vnet_hdr=True)
    sock = _bound(s)
    s.receive(virtio.ZERO + udp_frame(1000, 9, b"hi"), 1.0)
    assert _drain(sock) == [(b"hi", ("10.0.0.2", 1000))]
    sock.sendto(b"back", ("10.0.0.2", 1000))  # unresolved: an ARP request goes out
    (frame,) = s.take_tx()
    assert bytes(frame[:12]) == virtio.ZERO
    assert weth.EthernetFrame.parse(frame[12:]).ethertype == weth.ETHERTYPE_ARP
    s.receive(b"\x00" * 11, 1.0)
    assert s.stats.drops == {"vnet_truncated": 1}


def test_checksum_already_validated_by_the_host_is_trusted() -> None:
    """virtio-net DATA_VALID: the kernel checked the transport checksum; we do not redo it."""
    s = make_stack(vnet_hdr=True)
    sock = _bound(s)
    frame = bytearray(udp_frame(1000, 9, b"hi"))
    frame[14 + 20 + 6] ^= 0xFF  # spoil the UDP checksum
    s.receive(virtio.ZERO + bytes(frame), 1.0)
    assert _drain(sock) == []
    assert s.stats.drops == {"udp_bad_checksum": 1}
    s.receive(virtio.VnetHeader(flags=virtio.F_DATA_VALID).emit() + bytes(frame), 1.0)
    assert _drain(sock) == [(b"hi", ("10.0.0.2", 1000))]


def test_stats_as_dict_reports_every_counter() -> None:
    """``stack.stats.as_dict()`` (what ``seqs up --stats-file`` writes) lists every traffic
    counter the class has, and the drops."""
    from seqs.iface import stats as stats_module

    names = getattr(stats_module.Stats, "__slots__", None)
    d = stats_module.Stats().as_dict()
    assert "drops" in d
    if names is not None:  # a compiled build has no __slots__ to compare with
        assert set(d) == set(names)
