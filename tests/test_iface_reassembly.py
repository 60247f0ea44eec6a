"""IPv4 reassembly on virtual time (RFC 791 §3.2, RFC 815, RFC 1122 §3.3.2), bounded in
datagrams, bytes, fragments and time, with overlaps refused (the RFC 5722 policy)."""

from __future__ import annotations

import random

import pytest

from helpers import (
    OUR_IP,
    PEER_IP,
    fragments,
    ip_frame,
    learn_peer,
    make_stack,
    sent_icmp,
)
from seqs import Stack
from seqs.iface import Reassembler, ReassemblyConfig, Stats
from seqs.wire import icmp as wicmp
from seqs.wire import ipv4 as wip
from seqs.wire.icmp import IcmpMessage
from seqs.wire.udp import UdpDatagram

DATA = bytes(range(256)) * 12  # 3072 bytes of UDP payload: 3080 bytes of IP payload


def _udp_fragments(data: bytes = DATA, sizes=(1480, 1480), ident: int = 0x1234, src: int = PEER_IP,
                   dport: int = 9) -> list[bytes]:
    return fragments(wip.PROTO_UDP, UdpDatagram(1000, dport, data).emit(src, OUR_IP), sizes, ident=ident, src=src)


def _stack(**reassembly: object) -> tuple[Stack, object]:
    s = make_stack(reassembly=ReassemblyConfig(**reassembly))  # type: ignore[arg-type]
    sock = s.udp_socket()
    sock.bind(("", 9))
    return s, sock


def _got(sock) -> list[bytes]:
    out = []
    for _ in range(100):
        d = sock.recv()
        if d is None:
            return out
        out.append(d)
    raise AssertionError("queue does not drain")


def test_fragments_in_order_are_reassembled() -> None:
    s, sock = _stack()
    frames = _udp_fragments()
    assert len(frames) == 3
    for f in frames:
        s.receive(f, 1.0)
    assert _got(sock) == [DATA]
    assert s.stats.ipv4_frag_rx == 3 and s.stats.ipv4_reassembled == 1
    assert s.iface.reassembler.held_bytes == 0 and len(s.iface.reassembler) == 0


@pytest.mark.parametrize("seed", range(5))
def test_fragments_in_any_order_are_reassembled(seed: int) -> None:
    """RFC 815: holes are filled in whatever order pieces arrive."""
    s, sock = _stack()
    frames = _udp_fragments(sizes=[400, 800, 8, 1000, 64])
    random.Random(seed).shuffle(frames)
    for f in frames:
        s.receive(f, 1.0)
    assert _got(sock) == [DATA]
    assert s.stats.drops == {}


def test_duplicate_fragment_is_ignored() -> None:
    s, sock = _stack()
    a, b, c = _udp_fragments()
    for f in (a, b, b, a, c, c):
        s.receive(f, 1.0)
    # After completion the last copy of c starts a new datagram, which then times out.
    assert _got(sock) == [DATA]
    assert s.stats.drops == {"ipv4_frag_duplicate": 2}


def test_overlapping_fragment_with_different_bytes_drops_the_datagram() -> None:
    """RFC 5722 §4 (applied to IPv4, as Linux does): overlapping fragments make the whole
    datagram suspect; it is discarded even if every byte arrives later."""
    s, sock = _stack()
    a, b, c = _udp_fragments()
    forged = _udp_fragments(data=bytes(len(DATA)), sizes=[1472, 1488])[1]  # offset 1472, other bytes
    for f in (a, forged, b, c):
        s.receive(f, 1.0)
    assert _got(sock) == []
    assert s.stats.drops["ipv4_frag_overlap"] == 1
    assert s.stats.ipv4_reassembled == 0


def test_overlap_with_equal_bytes_but_other_bounds_also_drops_the_datagram() -> None:
    s, sock = _stack()
    a, b, c = _udp_fragments()
    wider = _udp_fragments(sizes=[8, 2952])[1]  # the same bytes, offset 8..2960
    for f in (a, wider, b, c):
        s.receive(f, 1.0)
    assert _got(sock) == []
    assert s.stats.drops["ipv4_frag_overlap"] == 1


def test_fragments_of_different_datagrams_are_kept_apart() -> None:
    """RFC 791 §3.2: a datagram is identified by source, destination, protocol and identification."""
    s, sock = _stack()
    other = bytes(reversed(DATA))
    x = _udp_fragments(DATA, ident=1)
    y = _udp_fragments(other, ident=2)
    z = _udp_fragments(DATA[:2000], ident=1, src=PEER_IP + 1)
    for f in (x[0], y[0], z[0], y[1], x[1], z[1], x[2], y[2]):
        s.receive(f, 1.0)
    assert _got(sock) == [DATA[:2000], DATA, other]


def test_non_last_fragment_not_a_multiple_of_8_bytes_is_dropped() -> None:
    """RFC 791 §3.2: every fragment but the last carries a multiple of 8 octets."""
    s, _ = _stack()
    s.receive(ip_frame(wip.PROTO_UDP, bytes(1001), more_fragments=True), 1.0)
    assert s.stats.drops == {"ipv4_frag_bad_length": 1}
    assert len(s.iface.reassembler) == 0


def test_number_of_datagrams_in_progress_is_bounded_and_the_oldest_evicted() -> None:
    s, sock = _stack(max_datagrams=4)
    sets = [_udp_fragments(ident=i) for i in range(5)]
    for i, frames in enumerate(sets):
        s.receive(frames[0], 1.0 + i)
    assert len(s.iface.reassembler) == 4
    assert s.stats.drops == {"ipv4_reasm_evicted": 1}
    for f in sets[4][1:]:  # the newest completes
        s.receive(f, 6.0)
    assert _got(sock) == [DATA]
    for f in sets[0][1:]:  # the evicted one cannot: its first part is gone
        s.receive(f, 6.0)
    assert _got(sock) == []


def test_bytes_held_are_bounded() -> None:
    s, _ = _stack(max_bytes=4000)
    sets = [_udp_fragments(ident=i) for i in range(3)]
    s.receive(sets[0][0], 1.0)
    s.receive(sets[1][0], 1.0)
    assert s.iface.reassembler.held_bytes == 2960
    s.receive(sets[2][0], 1.0)  # a new datagram evicts the oldest to make room
    assert s.stats.drops == {"ipv4_reasm_evicted": 1}
    assert s.iface.reassembler.held_bytes == 2960
    s.receive(sets[1][1], 1.0)  # growing one beyond the limit gives that one up
    assert s.stats.drops == {"ipv4_reasm_evicted": 1, "ipv4_reasm_full": 1}
    assert s.iface.reassembler.held_bytes == 1480 and len(s.iface.reassembler) == 1


def test_fragments_per_datagram_are_bounded() -> None:
    """Tiny fragments cost memory beyond their bytes; past the limit the datagram is given up."""
    s, _ = _stack(max_fragments=4)
    frames = _udp_fragments(sizes=[8] * 6)
    for f in frames[:5]:
        s.receive(f, 1.0)
    assert s.stats.drops == {"ipv4_frag_too_many": 1}
    assert s.iface.reassembler.held_bytes == 0 and len(s.iface.reassembler) == 0


def test_datagram_larger_than_65535_bytes_is_dropped() -> None:
    """RFC 791 §3.1: total length is 16 bits; the "ping of death" fragment ends beyond it."""
    s, _ = _stack()
    head = ip_frame(wip.PROTO_UDP, bytes(1480), ident=7, more_fragments=True)
    tail = ip_frame(wip.PROTO_UDP, bytes(8), ident=7, frag_offset=65528)  # ends at 65536
    s.receive(head, 1.0)
    s.receive(tail, 1.0)
    assert s.stats.drops == {"ipv4_frag_too_big": 1}
    assert len(s.iface.reassembler) == 0 and s.iface.reassembler.held_bytes == 0


def test_largest_legal_datagram_is_reassembled() -> None:
    s, sock = _stack()
    data = bytes(i & 0xFF for i in range(65535 - 28))
    frames = _udp_fragments(data, sizes=[1480] * 44)
    for f in frames:
        s.receive(f, 1.0)
    assert _got(sock) == [data]


def test_incomplete_datagram_times_out_with_icmp_time_exceeded() -> None:
    """RFC 1122 §3.3.2 / RFC 792: on reassembly timeout the datagram is discarded and, if
    fragment zero arrived, an ICMP time exceeded (code 1) quotes its header and 8 bytes."""
    s, _ = _stack(timeout=30.0)
    learn_peer(s, 0.0)
    first, _, last = _udp_fragments()
    s.receive(first, 10.0)
    s.receive(last, 12.0)
    assert s.next_deadline() == pytest.approx(40.0)
    s.poll(39.9)
    assert s.take_tx() == [] and len(s.iface.reassembler) == 1
    s.poll(40.0)
    ((hdr, msg),) = sent_icmp(s)
    assert (msg.type, msg.code) == (wicmp.TYPE_TIME_EXCEEDED, wicmp.CODE_REASSEMBLY_TIMEOUT)
    assert (hdr.src, hdr.dst) == (OUR_IP, PEER_IP)
    assert msg.payload == first[14 : 14 + 28]
    assert s.stats.drops == {"ipv4_reasm_timeout": 1}
    assert s.iface.reassembler.held_bytes == 0 and s.next_deadline() is None


def test_timeout_without_fragment_zero_sends_no_icmp() -> None:
    """RFC 1122 §3.3.2: time exceeded only if fragment zero has been received."""
    s, _ = _stack(timeout=5.0)
    learn_peer(s, 0.0)
    _, middle, last = _udp_fragments()
    s.receive(middle, 1.0)
    s.receive(last, 2.0)
    s.poll(6.0)
    assert s.take_tx() == []
    assert s.stats.drops == {"ipv4_reasm_timeout": 1}
    assert s.next_deadline() is None


def test_timeouts_follow_each_datagrams_own_start() -> None:
    s, sock = _stack(timeout=5.0)
    a = _udp_fragments(ident=1)
    b = _udp_fragments(ident=2)
    s.receive(a[1], 1.0)
    s.receive(b[1], 3.0)
    assert s.next_deadline() == pytest.approx(6.0)
    s.poll(6.0)
    assert s.stats.drops == {"ipv4_reasm_timeout": 1}
    assert s.next_deadline() == pytest.approx(8.0)
    s.receive(b[0], 7.0)
    s.receive(b[2], 7.5)
    assert _got(sock) == [DATA]
    assert s.next_deadline() is None


def test_no_time_exceeded_about_a_fragmented_icmp_error() -> None:
    """RFC 1122 §3.2.2: never send an ICMP error about an ICMP error."""
    s, _ = _stack(timeout=5.0)
    learn_peer(s, 0.0)
    err = IcmpMessage(wicmp.TYPE_DEST_UNREACHABLE, wicmp.CODE_PORT_UNREACHABLE, 0, bytes(1600)).emit()
    first = fragments(wip.PROTO_ICMP, err, [1480])[0]
    s.receive(first, 1.0)
    s.poll(6.0)
    assert s.take_tx() == []
    assert s.stats.drops == {"ipv4_reasm_timeout": 1}


# -- the Reassembler on its own -----------------------------------------------------------


def test_fragment_beyond_the_end_set_by_the_last_fragment_condemns_the_datagram() -> None:
    """RFC 791 §3.2: the last fragment fixes the total length; data already held beyond it
    is inconsistent.  The byte count alone must not pass for completeness (a hole at 0..8
    plus a part at 16..24 also holds 16 bytes)."""
    stats = Stats()
    r = Reassembler(ReassemblyConfig(), stats)
    key = (PEER_IP, OUR_IP, 1, wip.PROTO_UDP)
    assert r.add(key, 16, True, b"C" * 8, None, 0.0) is None
    assert r.add(key, 8, False, b"B" * 8, None, 0.0) is None
    assert stats.drops == {"ipv4_frag_inconsistent": 1}
    assert len(r) == 0 and r.held_bytes == 0


def test_conflicting_last_fragments_condemn_the_datagram() -> None:
    stats = Stats()
    r = Reassembler(ReassemblyConfig(), stats)
    key = (PEER_IP, OUR_IP, 1, wip.PROTO_UDP)
    assert r.add(key, 8, False, b"B" * 8, None, 0.0) is None
    assert r.add(key, 16, False, b"C" * 8, None, 0.0) is None
    assert stats.drops == {"ipv4_frag_inconsistent": 1}
    assert r.add(key, 24, True, b"D" * 8, None, 0.0) is None  # a new datagram, not the old one
    assert r.add(key, 0, False, b"A" * 8, None, 0.0) is None
    assert stats.drops == {"ipv4_frag_inconsistent": 2}


def test_reassembler_returns_the_payload_in_offset_order() -> None:
    r = Reassembler(ReassemblyConfig(), Stats())
    key = (PEER_IP, OUR_IP, 9, 253)
    assert r.add(key, 16, False, b"ccc", None, 0.0) is None
    assert r.add(key, 0, True, b"aaaaaaaa", b"quote", 0.0) is None
    assert r.add(key, 8, True, b"bbbbbbbb", None, 0.0) == b"aaaaaaaabbbbbbbbccc"
    assert len(r) == 0 and r.held_bytes == 0 and r.deadline() is None
