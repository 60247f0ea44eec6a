"""Every resource the network can make seqs spend has a bound: past it, a counted drop, never growth.

One test per bound, each of the same shape: fill the structure to its bound,
then push ten times as much again and check (1) the structure did not grow,
(2) the refusal was counted under its named drop reason, and (3) the memory
Python holds (``tracemalloc``) did not grow between the end of the fill and the
end of the push beyond a small slack.  The bounds are configuration with safe
defaults: ``TcpTable.max_connections``, ``listen(max_half_open=)`` (beyond it
SYN cookies, or with ``syn_cookies = False`` eviction of the oldest) and
``backlog``, ``TcpConfig.sndbuf``/``rcvbuf``/``max_ooo_segments``,
``ReassemblyConfig``, ``ArpConfig``, and ``UdpSocket.rcvbuf``.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from fuzz.harness import tcp_segment
from fuzz.tcp_states import Scenario

from helpers import (
    OUR_IP,
    PEER_IP,
    arp_request,
    fragments,
    ip_frame,
    make_stack,
    ready_stack,
    record,
    udp_frame,
)
from seqs.iface import ArpConfig, ReassemblyConfig
from seqs.sockets.udp import DATAGRAM_OVERHEAD, DEFAULT_RCVBUF
from seqs.stack import Stack
from seqs.tcp.connection import TcpConfig
from seqs.wire import ipv4 as wip
from seqs.wire.tcp import ACK, PSH, SYN

#: traced memory may differ this much between "bound reached" and "ten times more pushed"
SLACK = 128 * 1024


@contextmanager
def memory_after_bound() -> Iterator[Callable[[], int]]:
    """Trace memory; the yielded function returns the growth since it was first called."""
    tracemalloc.start()
    base: list[int] = []

    def grown() -> int:
        gc.collect()
        now = tracemalloc.get_traced_memory()[0]
        if not base:
            base.append(now)
        return now - base[0]

    try:
        yield grown
    finally:
        tracemalloc.stop()


def syn(stack_receive: Callable[[bytes, float], None], sport: int, now: float = 0.0, src: int = PEER_IP,
        dport: int = 7) -> None:
    seg = tcp_segment(sport, dport, sport * 7919, 0, SYN, 1024, src=src, dst=OUR_IP)
    stack_receive(ip_frame(wip.PROTO_TCP, seg, src=src), now)


# -- TCP ----------------------------------------------------------------------------------------------


def test_defaults_are_bounded() -> None:
    s = make_stack()
    c = TcpConfig()
    assert s.tcp.max_connections == 65536
    assert (c.rcvbuf, c.sndbuf, c.max_ooo_segments) == (256 * 1024, 256 * 1024, 64)
    assert s.tcp.listen(80).max_half_open == 256
    r, a = s.iface.config.reassembly, s.iface.config.arp
    assert (r.max_datagrams, r.max_bytes, r.timeout) == (64, 1 << 20, 30.0)
    assert a.max_entries == 1024 and a.max_pending_addresses == 64 and 1 <= a.pending_per_address <= 64
    assert s.udp_socket().rcvbuf == DEFAULT_RCVBUF


def test_connections_per_stack_are_capped_and_excess_syns_refused_with_rst() -> None:
    s = ready_stack()
    s.tcp.max_connections = 8
    s.tcp.listen(7, max_half_open=1000)
    with memory_after_bound() as grown:
        for port in range(1000, 1008):
            syn(s.receive, port)
        s.take_tx()
        assert len(s.tcp) == 8
        grown()
        for port in range(2000, 2080):
            syn(s.receive, port)
            s.take_tx()
        assert grown() < SLACK
    assert len(s.tcp) == 8
    assert s.stats.drops["tcp_too_many_connections"] == 80
    with pytest.raises(BlockingIOError):
        s.tcp_connect(("10.0.0.2", 80))


def _syn_flood_beyond_16(s: Stack) -> tuple[list[int], set[int]]:
    """16 SYNs fill a listener's half-open bound, then 4,000 more arrive at one instant (no
    timer ever runs).  Returns the memory growth after each 1,000 and the set of how many
    frames each of the 4,000 drew."""
    growth: list[int] = []
    answers: set[int] = set()
    with memory_after_bound() as grown:
        for port in range(1000, 1016):
            syn(s.receive, port)
        s.take_tx()
        grown()
        for port in range(1016, 5016):
            syn(s.receive, port % 65536)
            answers.add(len(s.take_tx()))
            if port % 1000 == 0:
                growth.append(grown())
    return growth, answers


def test_syn_flood_keeps_half_open_at_the_bound_evicting_the_oldest() -> None:
    s = ready_stack()
    lst = s.tcp.listen(7, max_half_open=16)
    lst.syn_cookies = False  # the fallback: evict (with cookies, see the next test)
    growth, _ = _syn_flood_beyond_16(s)
    record("unit_syn_flood_eviction", syns=4016, half_open=lst.half_open, evicted=s.stats.drops.get(
        "tcp_syn_backlog_evicted", 0), timer_heap=len(s.iface.timers), growth_bytes=growth)
    assert lst.half_open == 16 and len(s.tcp) == 16
    assert s.stats.drops["tcp_syn_backlog_evicted"] == 4000
    # Evicted connections still hold a slot in the timer heap until it is swept (when it
    # has doubled, at least 1024 entries): a few MB at most, however long the flood
    # (before the sweep, 20,000 SYNs kept 45 MB: all of them).
    assert len(s.iface.timers) <= 2048
    assert max(growth) < 4 << 20, growth


def test_syn_flood_beyond_the_half_open_bound_is_answered_with_cookies_holding_nothing_more() -> None:
    s = ready_stack()
    lst = s.tcp.listen(7, max_half_open=16)
    growth, answers = _syn_flood_beyond_16(s)
    assert answers == {1}  # a SYN-ACK with a cookie for each
    record("unit_syn_flood_cookies", syns=4016, half_open=lst.half_open, cookies_sent=s.stats.drops.get(
        "tcp_syncookie_sent", 0), timer_heap=len(s.iface.timers), growth_bytes=growth)
    assert lst.half_open == 16 and len(s.tcp) == 16
    assert s.stats.drops["tcp_syncookie_sent"] == 4000
    assert "tcp_syn_backlog_evicted" not in s.stats.drops
    assert len(s.iface.timers) <= 16 + 8  # a cookie arms no timer
    assert max(growth) < SLACK, growth


def test_legitimate_client_completes_its_handshake_during_a_syn_flood() -> None:
    sc = Scenario(0)
    lst = sc.listener
    lst.max_half_open = 8
    lst.syn_cookies = False  # eviction; with cookies: tests/test_syn_cookies.py
    for port in range(1000, 1100):
        syn(sc.stack.receive, port, sc.host.now, src=wip.aton("10.0.0.77"), dport=80)
    sc.host.step(0.0)
    conn = sc.passive()  # SYN (evicting the oldest flood entry), SYN-ACK, ACK
    assert conn.established and lst.half_open <= 8


def test_accept_queue_is_bounded_by_backlog_and_excess_syns_dropped() -> None:
    sc = Scenario(0)
    lst = sc.listener  # backlog 2, nobody accepts
    for sport in range(41000, 41010):
        sc.nxt = 5000
        sc.conn = None
        sc.send(SYN, sport=sport, options=b"")
        conn = next((c for c in sc.stack.tcp.connections if c.rport == sport), None)
        if conn is not None:
            sc.conn = conn
            sc.send(ACK, sport=sport)
    assert lst.pending == 2
    assert sc.stack.stats.drops["tcp_listen_overflow"] == 8


def test_send_buffer_takes_at_most_sndbuf_bytes() -> None:
    sc = Scenario(0)
    conn = sc.passive()
    sndbuf = conn.config.sndbuf
    taken = sum(conn.send(b"x" * 1000) for _ in range(100))
    assert taken == sndbuf == conn.buffered
    assert conn.send(b"more") == 0 and not conn.writable
    sc.host.step(10.0)  # retransmissions, never more than the buffer
    assert conn.buffered == sndbuf


def test_receive_buffer_holds_at_most_rcvbuf_and_the_window_closes() -> None:
    sc = Scenario(0)
    conn = sc.passive()
    rcvbuf = conn.config.rcvbuf
    with memory_after_bound() as grown:
        for _ in range(rcvbuf // 500 + 2):
            sc.send(ACK | PSH, b"r" * 500)
        assert conn.unread == rcvbuf and conn.rcv_adv == conn.rcv_nxt
        grown()
        for _ in range(200):  # a peer ignoring the zero window
            sc.send(ACK | PSH, b"r" * 500)
        assert grown() < SLACK
    assert conn.unread == rcvbuf
    assert sc.stack.stats.drops["tcp_unacceptable_segment"] >= 200


def test_out_of_order_segments_held_are_capped() -> None:
    sc = Scenario(0)
    conn = sc.passive()
    assert conn.config.max_ooo_segments == 4
    for i in range(1, 40):  # 39 separate holes inside the window
        sc.send(ACK | PSH, b"o" * 10, seq=sc.nxt + 100 * i)
    assert len(conn._ooo) == 4
    assert sc.stack.stats.drops["tcp_ooo_full"] == 35


# -- IPv4 reassembly ----------------------------------------------------------------------------------


def test_reassembly_buffers_are_capped_in_datagrams_and_bytes() -> None:
    s = make_stack(reassembly=ReassemblyConfig(max_datagrams=8, max_bytes=8 * 1024, timeout=30.0))
    first = [fragments(wip.PROTO_UDP, bytes(3000), [1480], ident=i)[0] for i in range(400)]
    with memory_after_bound() as grown:
        for f in first[:8]:
            s.receive(f, 0.0)
        grown()
        for f in first[8:]:
            s.receive(f, 0.0)
        assert grown() < SLACK
    r = s.iface.reassembler
    assert len(r) <= 8 and r.held_bytes <= 8 * 1024
    assert s.stats.drops["ipv4_reasm_evicted"] >= 392 - 8


def test_reassembly_buffers_are_freed_at_the_timeout() -> None:
    s = make_stack(reassembly=ReassemblyConfig(timeout=2.0))
    for i in range(20):
        s.receive(fragments(wip.PROTO_UDP, bytes(3000), [1480], ident=i)[0], 0.0)
    assert len(s.iface.reassembler) == 20
    s.poll(1.9)
    assert len(s.iface.reassembler) == 20
    s.poll(2.0)
    assert len(s.iface.reassembler) == 0 and s.iface.reassembler.held_bytes == 0
    assert s.stats.drops["ipv4_reasm_timeout"] == 20


# -- ARP ----------------------------------------------------------------------------------------------


def test_arp_cache_entries_are_capped_with_eviction_counted() -> None:
    s = make_stack(arp=ArpConfig(max_entries=16))
    reqs = [arp_request(bytes([2, 0, 0, 1, i >> 8, i & 0xFF]), wip.aton("10.0.0.0") + 2 + i, OUR_IP)
            for i in range(250)]
    with memory_after_bound() as grown:
        for f in reqs[:16]:
            s.receive(f, 0.0)
        s.take_tx()
        grown()
        for f in reqs[16:]:
            s.receive(f, 0.0)
            s.take_tx()
        assert grown() < SLACK
    assert len(s.iface.arp) == 16
    assert s.stats.drops["arp_cache_evicted"] == 250 - 16


def test_packets_waiting_for_arp_are_capped_per_address_and_in_addresses() -> None:
    s = make_stack(arp=ArpConfig(pending_per_address=2, max_pending_addresses=4))
    sock = s.udp_socket()
    with memory_after_bound() as grown:
        for host in range(2, 6):
            for _ in range(2):
                sock.sendto(b"x" * 100, (f"10.0.0.{host}", 9))
        s.take_tx()
        grown()
        for host in range(2, 200):
            for _ in range(5):
                sock.sendto(b"x" * 100, (f"10.0.0.{host}", 9))
            s.take_tx()
        assert grown() < SLACK
    pending = s.iface.arp._pending
    assert len(pending) == 4 and all(len(p.packets) == 2 for p in pending.values())
    assert s.stats.drops["arp_pending_overflow"] == 4 * 5
    assert s.stats.drops["arp_pending_full"] == (200 - 6) * 5


# -- UDP ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 1400])
def test_udp_receive_buffer_is_bounded_even_for_empty_datagrams(size: int) -> None:
    s = ready_stack()
    sock = s.udp_socket()
    sock.bind(("", 9))
    sock.rcvbuf = 8 * 1024
    fits = sock.rcvbuf // (size + DATAGRAM_OVERHEAD)
    frame = udp_frame(1000, 9, b"u" * size)
    with memory_after_bound() as grown:
        for _ in range(fits):
            s.receive(frame, 0.0)
        grown()
        for _ in range(10 * fits):
            s.receive(frame, 0.0)
        assert grown() < SLACK
    assert sock.pending == fits
    assert s.stats.drops["udp_rcvbuf_full"] == 10 * fits

