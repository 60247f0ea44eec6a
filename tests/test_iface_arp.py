"""ARP on virtual time: answering, learning, resolving, expiring (RFC 826, RFC 1122 §2.3.2, RFC 5227).

Each test injects ARP or IP traffic as frames, advances ``now`` by hand and
reads back what the stack sent.
"""

from __future__ import annotations

import pytest

from helpers import (
    FAR_IP,
    GATEWAY_IP,
    OTHER_IP,
    OTHER_MAC,
    OUR_IP,
    OUR_MAC,
    PEER_IP,
    PEER_MAC,
    arp_frame,
    arp_of,
    arp_reply,
    arp_request,
    describe,
    eth,
    ip_of,
    learn_peer,
    make_stack,
    parse_all,
)
from seqs.iface import ArpConfig
from seqs.wire import ethernet as weth
from seqs.wire import ipv4 as wip
from seqs.wire.arp import OP_REPLY, OP_REQUEST
from seqs.wire.udp import UdpDatagram


def _send_udp(stack, dst: int, data: bytes, now: float, sock=None):
    """Send one datagram to ``dst``:9 at ``now``; returns the socket used."""
    stack.poll(now)
    sock = sock or stack.udp_socket()
    sock.sendto(data, (wip.ntoa(dst), 9))
    return sock


def _arp_requests(frames) -> list:
    return [(f.dst, arp_of(f)) for f in frames if f.ethertype == weth.ETHERTYPE_ARP]


def _udp_payloads(frames) -> list[bytes]:
    out = []
    for f in frames:
        if f.ethertype == weth.ETHERTYPE_IPV4:
            h, p = ip_of(f)
            out.append(UdpDatagram.parse(p, h.src, h.dst).payload)
    return out


# -- answering -------------------------------------------------------------------------


def test_request_for_our_address_gets_a_unicast_reply_with_our_mac() -> None:
    """RFC 826 "Packet Reception": swap the fields, put in our MAC, op = reply, send to the asker."""
    s = make_stack()
    s.receive(arp_request(PEER_MAC, PEER_IP, OUR_IP), 1.0)
    (frame,) = parse_all(s.take_tx())
    a = arp_of(frame)
    assert frame.dst == PEER_MAC, describe(frame)
    assert (a.op, a.sha, a.spa, a.tha, a.tpa) == (OP_REPLY, OUR_MAC, OUR_IP, PEER_MAC, PEER_IP)
    assert s.stats.arp_rx == 1 and s.stats.arp_tx == 1


def test_request_for_another_address_is_neither_answered_nor_learned() -> None:
    """RFC 826: only the target answers, and a host not already knowing the sender
    does not create an entry for it (the merge flag is false, we are not the target)."""
    s = make_stack()
    s.receive(arp_request(PEER_MAC, PEER_IP, OTHER_IP), 1.0)
    assert s.take_tx() == []
    assert s.stats.drops == {"arp_not_for_us": 1}
    assert s.iface.arp.entries(1.0) == {}


def test_request_addressed_to_us_creates_an_entry_for_the_sender() -> None:
    """RFC 826: "If I am the target ... add the triplet" — no request of our own needed later."""
    s = make_stack()
    s.receive(arp_request(PEER_MAC, PEER_IP, OUR_IP), 1.0)
    s.take_tx()
    _send_udp(s, PEER_IP, b"hi", 2.0)
    (frame,) = parse_all(s.take_tx())
    assert frame.ethertype == weth.ETHERTYPE_IPV4 and frame.dst == PEER_MAC, describe(frame)


def test_known_sender_is_updated_even_by_a_request_not_for_us() -> None:
    """RFC 826: the merge flag — an existing entry is refreshed from any ARP packet."""
    s = make_stack()
    learn_peer(s, 0.0)
    new_mac = bytes.fromhex("02000000beef")
    s.receive(arp_request(new_mac, PEER_IP, OTHER_IP), 1.0)
    assert s.iface.arp.entries(1.0) == {PEER_IP: new_mac}
    assert s.take_tx() == []


def test_unsolicited_reply_to_us_is_learned() -> None:
    """RFC 826: a reply whose target is us is a packet for us; its sender is added."""
    s = make_stack()
    s.receive(arp_reply(PEER_MAC, PEER_IP), 1.0)
    assert s.iface.arp.entries(1.0) == {PEER_IP: PEER_MAC}
    assert s.take_tx() == []


def test_rfc5227_probe_for_our_address_is_answered_but_not_learned() -> None:
    """RFC 5227 §2.1.1: a probe has sender address 0.0.0.0; the owner of the target
    address must answer so the prober sees the conflict.  A zero sender is nobody to cache."""
    s = make_stack()
    s.receive(arp_request(PEER_MAC, 0, OUR_IP), 1.0)
    (frame,) = parse_all(s.take_tx())
    a = arp_of(frame)
    assert (a.op, a.sha, a.spa) == (OP_REPLY, OUR_MAC, OUR_IP), describe(frame)
    assert s.iface.arp.entries(1.0) == {}


def test_rfc5227_probe_for_another_address_is_ignored() -> None:
    s = make_stack()
    s.receive(arp_request(PEER_MAC, 0, OTHER_IP), 1.0)
    assert s.take_tx() == []
    assert s.iface.arp.entries(1.0) == {}


def test_arp_claiming_our_own_address_is_a_counted_conflict() -> None:
    """RFC 5227 §2.4: another host using our address is a conflict, never a neighbour to learn."""
    s = make_stack()
    s.receive(arp_request(PEER_MAC, OUR_IP, OTHER_IP), 1.0)
    s.receive(arp_reply(PEER_MAC, OUR_IP), 1.0)
    assert s.take_tx() == []
    assert s.stats.drops == {"arp_address_conflict": 2}
    assert s.iface.arp.entries(1.0) == {}


@pytest.mark.parametrize(
    ("sha", "spa"),
    [
        (bytes.fromhex("010203040506"), PEER_IP),  # group MAC as sender
        (weth.BROADCAST, PEER_IP),
        (PEER_MAC, 0xFFFFFFFF),  # limited broadcast as sender
        (PEER_MAC, wip.aton("224.0.0.1")),  # multicast as sender
    ],
    ids=["multicast-mac", "broadcast-mac", "broadcast-ip", "multicast-ip"],
)
def test_arp_from_a_broadcast_or_multicast_sender_is_dropped(sha: bytes, spa: int) -> None:
    """RFC 1812 §3.3.2 / Linux arp_process: a group address is never a neighbour."""
    s = make_stack()
    s.receive(arp_frame(OP_REQUEST, sha, spa, OUR_IP, dst=weth.BROADCAST), 1.0)
    assert s.take_tx() == []
    assert s.stats.drops == {"arp_bad_sender": 1}
    assert s.iface.arp.entries(1.0) == {}


def test_non_ethernet_ipv4_arp_and_truncated_arp_are_dropped() -> None:
    s = make_stack()
    good = arp_request(PEER_MAC, PEER_IP, OUR_IP)
    bad_htype = good[:14] + b"\x00\x06" + good[16:]  # IEEE 802 hardware type
    s.receive(bad_htype, 1.0)
    s.receive(good[:14 + 27], 1.0)
    assert s.take_tx() == []
    assert s.stats.drops == {"arp_unsupported": 1, "arp_truncated": 1}


# -- resolving -------------------------------------------------------------------------


def test_first_packet_to_an_unknown_neighbour_waits_for_a_broadcast_request() -> None:
    """RFC 826 / RFC 1122 §2.3.2.2: resolve first, keep (at least) the packet meanwhile."""
    s = make_stack()
    _send_udp(s, PEER_IP, b"first", 1.0)
    sent = parse_all(s.take_tx())
    assert [(d, a.op, a.spa, a.tpa, a.tha) for d, a in _arp_requests(sent)] == [
        (weth.BROADCAST, OP_REQUEST, OUR_IP, PEER_IP, bytes(6))
    ], [describe(f) for f in sent]
    assert _udp_payloads(sent) == []
    s.receive(arp_reply(PEER_MAC, PEER_IP), 1.2)
    sent = parse_all(s.take_tx())
    assert [f.dst for f in sent] == [PEER_MAC]
    assert _udp_payloads(sent) == [b"first"]


def test_packets_waiting_for_resolution_leave_in_order_when_the_reply_arrives() -> None:
    s = make_stack()
    sock = _send_udp(s, PEER_IP, b"one", 1.0)
    _send_udp(s, PEER_IP, b"two", 1.1, sock)
    _send_udp(s, PEER_IP, b"three", 1.2, sock)
    assert len(_arp_requests(parse_all(s.take_tx()))) == 1
    s.receive(arp_reply(PEER_MAC, PEER_IP), 1.3)
    assert _udp_payloads(parse_all(s.take_tx())) == [b"one", b"two", b"three"]


def test_waiting_queue_overflow_keeps_the_newest_and_counts_the_drop() -> None:
    """RFC 1122 §2.3.2.2 asks for at least one queued packet; the queue is bounded and
    (as in Linux) the oldest is dropped to make room."""
    s = make_stack(arp=ArpConfig(pending_per_address=2))
    sock = None
    for i in range(4):
        sock = _send_udp(s, PEER_IP, b"%d" % i, 1.0, sock)
    s.take_tx()
    assert s.stats.drops == {"arp_pending_overflow": 2}
    s.receive(arp_reply(PEER_MAC, PEER_IP), 1.1)
    assert _udp_payloads(parse_all(s.take_tx())) == [b"2", b"3"]


def test_addresses_awaiting_resolution_are_bounded() -> None:
    s = make_stack(arp=ArpConfig(max_pending_addresses=2))
    sock = None
    for host in (PEER_IP, OTHER_IP, GATEWAY_IP):
        sock = _send_udp(s, host, b"x", 1.0, sock)
    targets = [a.tpa for _, a in _arp_requests(parse_all(s.take_tx()))]
    assert targets == [PEER_IP, OTHER_IP]
    assert s.stats.drops == {"arp_pending_full": 1}


def test_at_most_one_request_per_address_per_retry_interval() -> None:
    """RFC 1122 §2.3.2.1: prevent ARP flooding — at most one request per second per address."""
    s = make_stack(arp=ArpConfig(retry_interval=1.0, max_requests=5))
    sock = _send_udp(s, PEER_IP, b"a", 10.0)
    for t in (10.1, 10.5, 10.99):
        _send_udp(s, PEER_IP, b"b", t, sock)
    assert len(_arp_requests(parse_all(s.take_tx()))) == 1
    assert s.next_deadline() == pytest.approx(11.0)
    s.poll(10.999)
    assert s.take_tx() == []
    s.poll(11.0)
    assert [a.tpa for _, a in _arp_requests(parse_all(s.take_tx()))] == [PEER_IP]


def test_resolution_gives_up_after_max_requests_and_counts_each_queued_packet() -> None:
    s = make_stack(arp=ArpConfig(retry_interval=1.0, max_requests=3))
    sock = _send_udp(s, PEER_IP, b"a", 0.0)
    _send_udp(s, PEER_IP, b"b", 0.0, sock)
    requests = len(_arp_requests(parse_all(s.take_tx())))
    t = 0.0
    for _ in range(10):  # bounded: the resolver must stop on its own
        d = s.next_deadline()
        if d is None:
            break
        t = d
        s.poll(t)
        requests += len(_arp_requests(parse_all(s.take_tx())))
    assert requests == 3
    assert t == pytest.approx(3.0)
    assert s.stats.drops == {"arp_unresolved": 2}
    assert s.next_deadline() is None
    # A late reply finds nothing to send.
    s.receive(arp_reply(PEER_MAC, PEER_IP), 4.0)
    assert s.take_tx() == []


def test_off_link_destination_resolves_the_gateway() -> None:
    """RFC 1122 §3.3.1.1: a destination off the subnet is reached through the gateway."""
    s = make_stack(gateway=GATEWAY_IP)
    _send_udp(s, FAR_IP, b"far", 1.0)
    assert [a.tpa for _, a in _arp_requests(parse_all(s.take_tx()))] == [GATEWAY_IP]
    gw_mac = bytes.fromhex("0200000000fe")
    s.receive(arp_reply(gw_mac, GATEWAY_IP), 1.1)
    (frame,) = parse_all(s.take_tx())
    h, _ = ip_of(frame)
    assert frame.dst == gw_mac and h.dst == FAR_IP


# -- expiring and refreshing -----------------------------------------------------------


def test_expired_entry_is_a_miss() -> None:
    s = make_stack(arp=ArpConfig(lifetime=60.0))
    learn_peer(s, 0.0)
    assert s.iface.arp.lookup(PEER_IP, 59.9) == PEER_MAC
    s.take_tx()
    _send_udp(s, PEER_IP, b"late", 60.0)
    sent = parse_all(s.take_tx())
    assert [(d, a.tpa) for d, a in _arp_requests(sent)] == [(weth.BROADCAST, PEER_IP)]
    assert _udp_payloads(sent) == []


def test_entry_in_use_is_refreshed_by_unicast_request_before_it_expires() -> None:
    """RFC 1122 §2.3.2.1 (unicast poll): shortly before expiry, traffic to the neighbour
    triggers one request sent straight to its known MAC, while traffic keeps flowing."""
    s = make_stack(arp=ArpConfig(lifetime=60.0, refresh_ahead=5.0, retry_interval=1.0))
    learn_peer(s, 0.0)
    sock = _send_udp(s, PEER_IP, b"a", 54.0)
    assert _arp_requests(parse_all(s.take_tx())) == []
    _send_udp(s, PEER_IP, b"b", 56.0, sock)
    sent = parse_all(s.take_tx())
    assert _udp_payloads(sent) == [b"b"]
    assert [(d, a.tpa) for d, a in _arp_requests(sent)] == [(PEER_MAC, PEER_IP)]
    _send_udp(s, PEER_IP, b"c", 56.5, sock)
    assert _arp_requests(parse_all(s.take_tx())) == []  # one per retry interval
    s.receive(arp_reply(PEER_MAC, PEER_IP), 57.0)
    _send_udp(s, PEER_IP, b"d", 100.0, sock)  # the entry now lives until 117
    sent = parse_all(s.take_tx())
    assert _udp_payloads(sent) == [b"d"] and _arp_requests(sent) == []


def test_cache_size_is_bounded_and_eviction_counted() -> None:
    s = make_stack(arp=ArpConfig(max_entries=4))
    macs = [bytes([2, 0, 0, 0, 1, i]) for i in range(5)]
    for i, mac in enumerate(macs):
        s.receive(arp_request(mac, PEER_IP + i, OUR_IP), 1.0 + i)
    s.take_tx()
    assert len(s.iface.arp) == 4
    assert s.stats.drops == {"arp_cache_evicted": 1}
    assert s.iface.arp.entries(10.0) == {PEER_IP + i: macs[i] for i in range(1, 5)}


# -- address changes ----------------------------------------------------------------------


def test_address_change_announces_with_gratuitous_arp_and_forgets_neighbours() -> None:
    """RFC 5227 §3: announce a new address with a request whose sender and target are both it."""
    s = make_stack()
    learn_peer(s, 0.0)
    s.set_address("10.0.0.9/24")
    (frame,) = parse_all(s.take_tx())
    a = arp_of(frame)
    new = wip.aton("10.0.0.9")
    assert frame.dst == weth.BROADCAST
    assert (a.op, a.sha, a.spa, a.tha, a.tpa) == (OP_REQUEST, OUR_MAC, new, bytes(6), new)
    assert s.iface.arp.entries(0.0) == {}
    s.set_address("10.0.0.9/24")  # unchanged: nothing to announce
    assert s.take_tx() == []


def test_after_an_address_change_we_answer_only_for_the_new_address() -> None:
    s = make_stack()
    s.set_address("10.0.0.9/24")
    s.take_tx()
    s.receive(arp_request(PEER_MAC, PEER_IP, OUR_IP), 1.0)
    assert s.take_tx() == []
    s.receive(arp_request(PEER_MAC, PEER_IP, wip.aton("10.0.0.9")), 1.0)
    (frame,) = parse_all(s.take_tx())
    assert arp_of(frame).spa == wip.aton("10.0.0.9")


def test_arp_to_another_unicast_mac_is_not_ours() -> None:
    """Ethernet: a unicast frame for another station is dropped before ARP sees it."""
    s = make_stack()
    frame = arp_frame(OP_REQUEST, PEER_MAC, PEER_IP, OUR_IP, dst=OTHER_MAC)
    s.receive(frame, 1.0)
    assert s.take_tx() == []
    assert s.stats.drops == {"eth_not_for_us": 1}
    # ...and the same request broadcast is answered
    s.receive(eth(frame[14:], weth.ETHERTYPE_ARP, dst=weth.BROADCAST), 1.0)
    assert len(s.take_tx()) == 1
