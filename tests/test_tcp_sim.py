"""Simulation tier: two seqs stacks over the fault-injecting in-memory link, seeded.

Each case moves 10 MB (the issue's size) of random bytes through loss, reordering,
duplication or corruption, and checks that everything arrived complete and in
order (SHA-256 of the stream), that both connections closed without error, and
that after TIME-WAIT both connection tables are empty.  Virtual time makes a
minute of retransmissions cost milliseconds; each case takes about a second of
wall-clock time (see :func:`seqs.bench.sim.transfer` for the driver).
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from seqs import Stack
from seqs.bench.sim import Transfer, transfer
from seqs.phy import VirtualNetwork

MB10 = 10_000_000


def assert_clean(r: Transfer) -> None:
    """Complete, intact, closed without error, tables empty after TIME-WAIT."""
    where = (f"stopped={r.stopped!r} virtual={r.virtual_seconds:.2f}s A->B {r.bytes_a_to_b} "
             f"B->A {r.bytes_b_to_a} drops A={r.a.stats.drops} B={r.b.stats.drops}")
    assert r.complete, where
    assert r.sent_a == r.received_b, "A->B stream differs: " + where
    assert r.sent_b == r.received_a, "B->A stream differs: " + where
    assert r.client.error is None and r.server is not None and r.server.error is None, where
    assert r.client.state_name == "CLOSED" and r.server.state_name == "CLOSED", where
    assert len(r.a.tcp) == 0 and len(r.b.tcp) == 0, "connections left after TIME-WAIT: " + where


def injected(r: Transfer, what: str) -> int:
    return sum(getattr(p.faults, what) for p in r.net.ports if p.faults is not None)


@pytest.mark.parametrize("loss", [0.0, 0.01, 0.05, 0.10], ids=["loss 0%", "loss 1%", "loss 5%", "loss 10%"])
def test_10mb_arrive_intact_through_loss(loss: float) -> None:
    """RFC 9293 §3.8 (retransmission), RFC 6298, RFC 5681/6582/6675: every byte arrives,
    in order, whatever is lost on the way — in either direction (data and ACKs)."""
    r = transfer(MB10, loss=loss, seed=1)
    assert_clean(r)
    if loss:
        assert injected(r, "dropped") > 0
        assert r.client._rexmits > 0


def test_10mb_arrive_intact_through_reordering() -> None:
    """RFC 9293 §3.10.7.4 (out-of-order segments held and reassembled): 5% of frames held
    back 5 ms (more than the 2 ms RTT), so segments and ACKs overtake each other."""
    r = transfer(MB10, reorder=0.05, seed=2)
    assert_clean(r)
    assert injected(r, "reordered") > 100


def test_10mb_arrive_intact_through_duplication() -> None:
    """RFC 9293 §3.10.7.4: duplicate segments are ACKed and dropped, never delivered twice."""
    r = transfer(MB10, duplicate=0.05, seed=3)
    assert_clean(r)
    assert injected(r, "duplicated") > 100
    assert r.b.stats.drops.get("tcp_unacceptable_segment", 0) > 0


def _corruption_audit(audit: dict[str, Any]) -> Any:
    """A ``setup`` for :func:`transfer`: remember every IPv4 packet as sent (the network's
    tap sees frames before the fault injector), and check every frame a stack receives:
    one whose IPv4 packet was never sent was corrupted on the way, and must be dropped
    (a drop counted) without reaching TCP (``tcp_rx`` unchanged)."""

    def ip_packet(frame: bytes) -> bytes:
        total = int.from_bytes(frame[16:18], "big")
        return hashlib.blake2b(frame[14 : 14 + total], digest_size=16).digest()

    sent: set[bytes] = set()
    audit.update(corrupted=0, leaked=[], reasons={})

    def setup(net: VirtualNetwork, a: Stack, b: Stack) -> None:
        net.taps.append(lambda _t, _port, frame: sent.add(ip_packet(frame)) if frame[12:14] == b"\x08\x00" else None)
        for stack in (a, b):
            inner = stack.receive

            def receive(frame: Any, now: float, inner: Any = inner, stack: Stack = stack) -> None:
                frame = bytes(frame)
                if frame[12:14] != b"\x08\x00" or ip_packet(frame) in sent:
                    inner(frame, now)
                    return
                audit["corrupted"] += 1
                rx, drops = stack.stats.tcp_rx, dict(stack.stats.drops)
                inner(frame, now)
                new = {k: v - drops.get(k, 0) for k, v in stack.stats.drops.items() if v != drops.get(k, 0)}
                if stack.stats.tcp_rx != rx or sum(new.values()) != 1:
                    audit["leaked"].append((now, new))
                for k in new:
                    audit["reasons"][k] = audit["reasons"].get(k, 0) + 1

            stack.receive = receive  # type: ignore[method-assign]

    return setup


def test_10mb_arrive_intact_through_corruption_and_every_corrupted_frame_is_dropped() -> None:
    """RFC 9293 §3.1 (the TCP checksum covers pseudo-header, header and data) and RFC 791
    (the IPv4 header checksum): 2% of frames get one bit flipped; each is dropped and
    counted, never delivered, and the stream arrives intact anyway."""
    audit: dict[str, Any] = {}
    r = transfer(MB10, corrupt=0.02, seed=4, setup=_corruption_audit(audit))
    assert_clean(r)
    assert audit["corrupted"] > 100 and injected(r, "corrupted") >= audit["corrupted"] // 2
    assert audit["leaked"] == [], f"corrupted frames not dropped: {audit['leaked'][:5]}"
    checksum_drops = audit["reasons"].get("tcp_bad_checksum", 0) + audit["reasons"].get("ipv4_bad_checksum", 0)
    # A few flips hit a field checked before the checksums (version, lengths): dropped too.
    assert checksum_drops >= 0.9 * audit["corrupted"], audit["reasons"]


def test_10mb_both_ways_at_once_through_loss_reordering_and_duplication() -> None:
    """Both directions carry data at once (ACKs ride on data, SACK blocks on full segments:
    RFC 6691's MSS budget), over 2% loss, 2% reordering and 2% duplication."""
    r = transfer(MB10, both_ways=True, loss=0.02, reorder=0.02, duplicate=0.02, seed=5)
    assert_clean(r)
    assert r.bytes_b_to_a == MB10
    assert r.a.stats.drops.get("tcp_no_route", 0) == 0 and r.b.stats.drops.get("tcp_no_route", 0) == 0


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_1mb_through_every_fault_at_once(seed: int) -> None:
    """More seeds, all faults together, small buffers (64 KiB), NewReno: still intact and clean."""
    r = transfer(1_000_000, both_ways=True, loss=0.03, reorder=0.03, duplicate=0.03, corrupt=0.01,
                 jitter=0.002, rcvbuf=64 * 1024, sndbuf=64 * 1024, congestion="newreno", seed=seed)
    assert_clean(r)


def test_time_wait_holds_the_active_closer_for_2msl() -> None:
    """RFC 9293 §3.10.7.4: after a clean close, TIME-WAIT keeps the 4-tuple for 2*MSL."""
    r = transfer(100_000, msl=30.0, seed=6, wait_time_wait=False)
    assert r.complete and r.intact
    left = r.a.tcp.connections + r.b.tcp.connections
    # Both sides shut down writing as soon as they have queued their data, so the FINs
    # cross and both go through CLOSING into TIME-WAIT (RFC 9293 §3.6 figure 13).
    assert [c.state_name for c in left] == ["TIME-WAIT", "TIME-WAIT"]
    r.net.run_for(59.0)
    assert len(r.a.tcp) + len(r.b.tcp) == 2
    r.net.run_for(1.1)
    assert len(r.a.tcp) + len(r.b.tcp) == 0
