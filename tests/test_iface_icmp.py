"""ICMP on virtual time: echo, the errors we send and when we must not, and the errors we
receive (RFC 792, RFC 1122 §3.2.2, RFC 1812 §4.3.2.8 for the rate limit)."""

from __future__ import annotations

import errno

import pytest

from helpers import (
    OUR_IP,
    OUR_MAC,
    PEER_IP,
    PEER_MAC,
    SUBNET_BROADCAST,
    fragments,
    icmp_frame,
    ip_frame,
    ip_of,
    ip_packet,
    make_stack,
    parse_all,
    ready_stack,
    sent_icmp,
    sent_ip,
    udp_frame,
)
from seqs.wire import ethernet as weth
from seqs.wire import icmp as wicmp
from seqs.wire import ipv4 as wip
from seqs.wire.checksum import checksum
from seqs.wire.icmp import IcmpMessage
from seqs.wire.udp import UdpDatagram


def _port_unreachable_about(packet: bytes, *, src: int = PEER_IP) -> bytes:
    """The ICMP error a peer sends about ``packet`` (one of ours): IP header + 8 bytes."""
    hl = (packet[0] & 0x0F) * 4
    msg = IcmpMessage(wicmp.TYPE_DEST_UNREACHABLE, wicmp.CODE_PORT_UNREACHABLE, 0, packet[: hl + 8])
    return icmp_frame(msg, src=src)


# -- echo --------------------------------------------------------------------------------------


def test_echo_request_is_answered_with_the_same_id_seq_and_data_for_sizes_0_to_1472() -> None:
    """RFC 792 / RFC 1122 §3.2.2.6: the reply returns identifier, sequence number and data
    unchanged, from the address the request was sent to."""
    s = ready_stack()
    for size in range(1473):  # 1472 = the largest that fits one 1500-byte packet
        data = bytes((size + i) & 0xFF for i in range(size))
        s.receive(icmp_frame(IcmpMessage.echo(True, 0xBEEF, size, data)), 1.0)
        frames = parse_all(s.take_tx())
        assert len(frames) == 1, f"size {size}: {len(frames)} frames"
        assert frames[0].dst == PEER_MAC
        hdr, payload = ip_of(frames[0])
        msg = IcmpMessage.parse(payload)  # checks the ICMP checksum
        assert (hdr.src, hdr.dst, hdr.ttl) == (OUR_IP, PEER_IP, 64)
        assert (msg.type, msg.code, msg.rest, msg.payload) == (0, 0, 0xBEEF << 16 | size, data), f"size {size}"
    assert s.stats.drops == {}


def test_4000_byte_ping_is_reassembled_and_answered_in_fragments() -> None:
    s = ready_stack()
    data = bytes(i * 13 & 0xFF for i in range(4000))
    request = IcmpMessage.echo(True, 7, 1, data).emit()
    for f in fragments(wip.PROTO_ICMP, request, [1480, 1480]):
        s.receive(f, 1.0)
    packets = sent_ip(s)
    assert len(packets) == 3
    assert [h.more_fragments for h, _ in packets] == [True, True, False]
    assert len({h.ident for h, _ in packets}) == 1
    whole = b"".join(p for _, p in sorted(packets, key=lambda hp: hp[0].frag_offset))
    reply = IcmpMessage.parse(whole)
    assert (reply.type, reply.rest, reply.payload) == (wicmp.TYPE_ECHO_REPLY, 7 << 16 | 1, data)


@pytest.mark.parametrize("dst", [0xFFFFFFFF, SUBNET_BROADCAST], ids=["limited", "directed"])
def test_broadcast_ping_is_not_answered_by_default(dst: int) -> None:
    """RFC 1122 §3.2.2.6: an echo request to a broadcast address MAY be silently discarded
    (Linux's icmp_echo_ignore_broadcasts default; smurf amplification)."""
    s = ready_stack()
    s.receive(icmp_frame(IcmpMessage.echo(True, 1, 1, b"x"), dst=dst, mac_dst=weth.BROADCAST), 1.0)
    assert s.take_tx() == []
    assert s.stats.drops == {"icmp_echo_to_broadcast": 1}


def test_broadcast_ping_is_answered_from_our_address_when_enabled() -> None:
    s = ready_stack(answer_broadcast_ping=True)
    s.receive(icmp_frame(IcmpMessage.echo(True, 1, 1, b"x"), dst=0xFFFFFFFF, mac_dst=weth.BROADCAST), 1.0)
    ((hdr, msg),) = sent_icmp(s)
    assert (hdr.src, hdr.dst, msg.type) == (OUR_IP, PEER_IP, wicmp.TYPE_ECHO_REPLY)


@pytest.mark.parametrize("dst", ["10.0.0.1", "127.0.0.1"])
def test_ping_to_ourselves_is_answered_over_loopback(dst: str) -> None:
    """RFC 1122 §3.2.1.3(g): 127/8 and our own address are internal loopback."""
    s = make_stack()
    ping = s.ping_socket()
    s.poll(1.0)
    ping.send(dst, 5, b"me")
    s.poll(1.0)
    assert s.take_tx() == []
    reply = ping.recv()
    assert reply is not None, s.stats.drops
    assert (reply.seq, reply.payload) == (5, b"me")


def test_icmp_with_bad_checksum_or_truncated_header_is_dropped() -> None:
    s = ready_stack()
    req = bytearray(IcmpMessage.echo(True, 1, 1, b"abc").emit())
    req[-1] ^= 1
    s.receive(ip_frame(wip.PROTO_ICMP, bytes(req)), 1.0)
    s.receive(ip_frame(wip.PROTO_ICMP, bytes(7)), 1.0)
    assert s.take_tx() == []
    assert s.stats.drops == {"icmp_bad_checksum": 1, "icmp_truncated": 1}


def test_unexpected_echo_reply_is_counted() -> None:
    s = ready_stack()
    s.receive(icmp_frame(IcmpMessage.echo(False, 1, 1, b"?")), 1.0)
    assert s.stats.drops == {"icmp_echo_reply_unexpected": 1}


# -- errors we send ------------------------------------------------------------------------------


def test_udp_to_a_closed_port_gets_port_unreachable_quoting_header_and_8_bytes() -> None:
    """RFC 1122 §4.1.3.1 and §3.2.2: destination unreachable (port) carrying the internet
    header and the first 8 octets of the datagram."""
    s = ready_stack()
    frame = udp_frame(1000, 4444, b"knock knock, anyone?")
    s.receive(frame, 1.0)
    ((hdr, msg),) = sent_icmp(s)
    assert (hdr.src, hdr.dst) == (OUR_IP, PEER_IP)
    assert (msg.type, msg.code) == (wicmp.TYPE_DEST_UNREACHABLE, wicmp.CODE_PORT_UNREACHABLE)
    assert msg.payload == frame[14 : 14 + 28]
    assert s.stats.drops == {"udp_no_socket": 1}


def test_port_unreachable_quotes_ip_options_too() -> None:
    s = ready_stack()
    udp = UdpDatagram(1000, 4444, b"0123456789").emit(PEER_IP, OUR_IP)
    packet = ip_packet(wip.PROTO_UDP, udp, options=b"\x01\x01\x01\x00")
    s.receive(weth.EthernetFrame(OUR_MAC, PEER_MAC, weth.ETHERTYPE_IPV4, packet).emit(), 1.0)
    ((_, msg),) = sent_icmp(s)
    assert msg.payload == packet[: 24 + 8]


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 0, 2)])
def test_reassembled_datagram_to_a_closed_port_gets_port_unreachable_whatever_the_order(
        order: tuple[int, int, int]) -> None:
    """RFC 1122 §3.2.2 forbids errors about non-initial *fragments*; a reassembled datagram
    is whole, and its error quotes the datagram's start (offset 0, no MF), as Linux does."""
    s = ready_stack()
    udp = UdpDatagram(1000, 4444, bytes(3000)).emit(PEER_IP, OUR_IP)
    frames = fragments(wip.PROTO_UDP, udp, [1480, 1480])
    for i in order:
        s.receive(frames[i], 1.0)
    ((_, msg),) = sent_icmp(s)
    assert (msg.type, msg.code) == (wicmp.TYPE_DEST_UNREACHABLE, wicmp.CODE_PORT_UNREACHABLE)
    vihl, _, total, ident, flags_frag, _, proto, _, src, dst = wip.HDR.unpack_from(msg.payload)
    assert (vihl, src, dst, proto, ident) == (0x45, PEER_IP, OUR_IP, wip.PROTO_UDP, 0x1234)
    assert flags_frag & (wip.FLAG_MF | wip.OFFSET_MASK) == 0, "quotes a fragment, not the datagram"
    assert total == 20 + len(udp)
    assert checksum(msg.payload[:20]) == 0
    assert msg.payload[20:] == udp[:8]


def test_icmp_errors_are_rate_limited_by_a_token_bucket() -> None:
    """RFC 1812 §4.3.2.8 / RFC 1122 §3.2.2: limit the rate of ICMP errors we originate;
    here a bucket of 5 refilled at 10 per second."""
    s = ready_stack(icmp_error_rate=10.0, icmp_error_burst=5)
    for _ in range(8):
        s.receive(udp_frame(1000, 4444, b"x"), 10.0)
    assert len(sent_icmp(s)) == 5
    assert s.stats.drops["icmp_error_rate_limited"] == 3
    s.receive(udp_frame(1000, 4444, b"x"), 10.05)  # half a token
    assert sent_icmp(s) == []
    s.receive(udp_frame(1000, 4444, b"x"), 10.2)  # 0.5 + 1.5 tokens: one more
    s.receive(udp_frame(1000, 4444, b"x"), 10.2)
    assert len(sent_icmp(s)) == 1
    assert s.stats.drops["icmp_error_rate_limited"] == 5
    for _ in range(10):
        s.receive(udp_frame(1000, 4444, b"x"), 50.0)  # refilled, but only to the burst
    assert len(sent_icmp(s)) == 5


@pytest.mark.parametrize("dst", [0xFFFFFFFF, SUBNET_BROADCAST, wip.aton("224.0.0.1")],
                         ids=["limited-broadcast", "directed-broadcast", "multicast"])
def test_no_port_unreachable_for_a_broadcast_or_multicast_destination(dst: int) -> None:
    """RFC 1122 §3.2.2: no ICMP error about a datagram sent to a broadcast or multicast address."""
    s = ready_stack()
    mac = weth.ipv4_multicast_mac(dst) if wip.is_multicast(dst) else weth.BROADCAST
    s.receive(udp_frame(1000, 4444, b"x", dst=dst, mac_dst=mac), 1.0)
    assert s.take_tx() == []
    assert s.stats.drops == {"udp_no_socket": 1}


def test_no_port_unreachable_for_an_unspecified_source() -> None:
    """RFC 1122 §3.2.2: never about a datagram whose source does not name a single host."""
    s = ready_stack()
    s.receive(udp_frame(68, 4444, b"x", src=0), 1.0)
    assert s.take_tx() == []


def test_no_icmp_error_about_an_icmp_error_or_a_non_initial_fragment() -> None:
    """RFC 1122 §3.2.2: an ICMP error MUST NOT be sent about an ICMP error message or a
    datagram fragment other than the first."""
    s = ready_stack()
    err = IcmpMessage(wicmp.TYPE_DEST_UNREACHABLE, wicmp.CODE_PORT_UNREACHABLE, 0, bytes(28)).emit()
    s.iface.send_icmp_error(wicmp.TYPE_DEST_UNREACHABLE, wicmp.CODE_PROTO_UNREACHABLE,
                            ip_packet(wip.PROTO_ICMP, err), 1.0)
    later = ip_packet(253, bytes(64), frag_offset=1480, more_fragments=True)
    s.iface.send_icmp_error(wicmp.TYPE_DEST_UNREACHABLE, wicmp.CODE_PROTO_UNREACHABLE, later, 1.0)
    assert s.take_tx() == []
    first = ip_packet(253, bytes(64), more_fragments=True)
    s.iface.send_icmp_error(wicmp.TYPE_DEST_UNREACHABLE, wicmp.CODE_PROTO_UNREACHABLE, first, 1.0)
    ((_, msg),) = sent_icmp(s)  # the first fragment may be the subject of an error
    assert msg.payload == first[:28]


def test_echo_request_is_not_an_error_and_may_be_quoted() -> None:
    """RFC 1122 §3.2.2: the exemption covers ICMP error messages only; a query such as an
    echo request may itself be the subject of an error."""
    s = ready_stack()
    echo = IcmpMessage.echo(True, 1, 1, b"abcdefgh").emit()
    s.iface.send_icmp_error(wicmp.TYPE_DEST_UNREACHABLE, wicmp.CODE_PROTO_UNREACHABLE,
                            ip_packet(wip.PROTO_ICMP, echo), 1.0)
    assert len(sent_icmp(s)) == 1


def test_unknown_protocol_gets_protocol_unreachable() -> None:
    """RFC 1122 §3.2.2.1: protocol unreachable (code 2) for a transport we do not have."""
    s = ready_stack()
    frame = ip_frame(253, b"experimental payload")
    s.receive(frame, 1.0)
    ((_, msg),) = sent_icmp(s)
    assert (msg.type, msg.code) == (wicmp.TYPE_DEST_UNREACHABLE, wicmp.CODE_PROTO_UNREACHABLE)
    assert msg.payload == frame[14 : 14 + 28]
    assert s.stats.drops == {"ipv4_unknown_protocol": 1}


# -- errors we receive ---------------------------------------------------------------------------


def _connected(s, port: int = 5353):
    sock = s.udp_socket()
    sock.connect(("10.0.0.2", port))
    sock.send(b"query")
    ((hdr, payload),) = sent_ip(s)
    return sock, hdr.emit(payload)


def test_port_unreachable_makes_the_next_recv_of_a_connected_socket_raise() -> None:
    """RFC 1122 §4.1.3.3: UDP passes ICMP errors to the application; like Linux, a
    connected socket reports ECONNREFUSED once, on its next call."""
    s = ready_stack()
    sock, sent = _connected(s)
    s.receive(_port_unreachable_about(sent), 2.0)
    assert sock.readable
    with pytest.raises(ConnectionRefusedError) as e:
        sock.recv()
    assert e.value.errno == errno.ECONNREFUSED
    assert sock.recv() is None  # reported once


def test_port_unreachable_makes_the_next_send_of_a_connected_socket_raise() -> None:
    s = ready_stack()
    sock, sent = _connected(s)
    s.receive(_port_unreachable_about(sent), 2.0)
    with pytest.raises(ConnectionRefusedError):
        sock.send(b"again")
    sock.send(b"again")  # the error was consumed
    assert len(sent_ip(s)) == 1


def test_port_unreachable_is_not_reported_to_an_unconnected_socket() -> None:
    """Linux semantics: an unconnected socket cannot tell whose error it is (RFC 1122 §4.1.3.3 leaves it open)."""
    s = ready_stack()
    sock = s.udp_socket()
    sock.sendto(b"query", ("10.0.0.2", 5353))
    ((hdr, payload),) = sent_ip(s)
    s.receive(_port_unreachable_about(hdr.emit(payload)), 2.0)
    assert sock.recvfrom() is None
    sock.sendto(b"again", ("10.0.0.2", 5353))


def test_port_unreachable_for_another_peer_port_is_not_ours() -> None:
    s = ready_stack()
    sock, sent = _connected(s, 5353)
    other = bytearray(sent)
    other[22:24] = (5354).to_bytes(2, "big")  # destination port in the quoted UDP header
    s.receive(_port_unreachable_about(bytes(other)), 2.0)
    assert sock.recv() is None


def test_error_quoting_a_datagram_we_did_not_send_is_dropped() -> None:
    s = ready_stack()
    forged = ip_packet(wip.PROTO_UDP, UdpDatagram(5353, 9, b"x").emit(PEER_IP, OUR_IP), src=PEER_IP, dst=OUR_IP)
    s.receive(_port_unreachable_about(forged), 2.0)
    assert s.stats.drops == {"icmp_error_not_ours": 1}
    assert s.stats.icmp_errors_rx == 1
