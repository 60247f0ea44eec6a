"""What an off-path attacker must guess is unpredictable, and what he may send is answered sparingly.

RFC 6528: initial sequence numbers are a 4 µs clock plus a keyed hash of the
4-tuple — so, across many connections, ISN differences show no pattern and the
high bits are uniform, while one 4-tuple's ISNs still advance with time.
RFC 6056 §3.3.1: ephemeral ports start at a random point of 49152..65535.
RFC 5961: an in-window RST that is not exact, a SYN in a synchronized state and
an ACK for data never sent get an ACK (a challenge) rather than acting, and the
challenges are rate-limited per stack (§7).

The statistical checks use the stack's default ``SystemRandom``, so they test
what a deployment gets; their thresholds (chi-square at p = 0.001) fail a
correct implementation about once in a thousand runs per check.
"""

from __future__ import annotations

import collections
import itertools

from fuzz.tcp_states import Scenario

from seqs import Stack
from seqs.sockets.base import EPHEMERAL_HIGH, EPHEMERAL_LOW
from seqs.wire.tcp import ACK, PSH, RST, SYN

N = 4096
#: chi-square critical value, 15 degrees of freedom, p = 0.001
CHI2_15 = 37.70


def chi2_uniform(values: list[int], bins: int = 16) -> float:
    counts = collections.Counter(values)
    expected = len(values) / bins
    return sum((counts.get(b, 0) - expected) ** 2 / expected for b in range(bins))


def many_connections(stack: Stack, n: int) -> list[tuple[int, int]]:
    """(ISN, local port) of ``n`` active opens to distinct remote ports at increasing times."""
    out = []
    for i in range(n):
        stack.iface.now = i * 0.001
        conn = stack.tcp_connect(("10.0.0.2", 1 + i))
        out.append((conn.iss, conn.lport))
        conn.abort()
        stack.take_tx()
    return out


def test_isns_of_many_connections_are_unpredictable() -> None:
    isns = [isn for isn, _ in many_connections(Stack(ip="10.0.0.1/24"), N)]
    deltas = [(b - a) & 0xFFFFFFFF for a, b in itertools.pairwise(isns)]
    # No two consecutive differences are equal (a counter, or a clock alone, would repeat them).
    assert all(d1 != d2 for d1, d2 in itertools.pairwise(deltas))
    assert len(set(isns)) == N
    # The top four bits of the ISNs, and of their differences, are uniform.
    assert chi2_uniform([x >> 28 for x in isns]) < CHI2_15
    assert chi2_uniform([d >> 28 for d in deltas]) < CHI2_15


def test_isn_of_one_four_tuple_advances_with_the_4_microsecond_clock() -> None:
    s = Stack(ip="10.0.0.1/24")
    isns = []
    for t in (0.0, 1.0, 2.5):
        s.iface.now = t
        conn = s.tcp_connect(("10.0.0.2", 80), local_port=50000)
        isns.append(conn.iss)
        conn.abort()
    assert [(b - isns[0]) & 0xFFFFFFFF for b in isns] == [0, 250_000, 625_000]  # RFC 6528 §3


def test_ephemeral_ports_are_spread_over_the_dynamic_range_without_a_pattern() -> None:
    ports = [p for _, p in many_connections(Stack(ip="10.0.0.1/24"), N)]
    assert all(EPHEMERAL_LOW <= p <= EPHEMERAL_HIGH for p in ports)
    span = EPHEMERAL_HIGH - EPHEMERAL_LOW + 1
    assert chi2_uniform([(p - EPHEMERAL_LOW) * 16 // span for p in ports]) < CHI2_15
    steps = [(b - a) % span for a, b in itertools.pairwise(ports)]
    assert max(collections.Counter(steps).values()) < 20  # no common stride (sequential: all 1)
    assert len(set(ports)) > N * 0.85


def established() -> tuple[Scenario, int]:
    s = Scenario(0)
    conn = s.passive()
    return s, conn.snd_nxt


def test_in_window_inexact_rst_gets_a_challenge_ack_and_the_connection_lives() -> None:
    s, _ = established()
    conn = s.conn
    assert conn is not None
    s.send(RST, seq=s.nxt + 100)
    assert conn.established and s.stack.stats.drops["tcp_challenge_ack_sent"] == 1
    s.send(RST, seq=s.nxt)  # exact: RFC 5961 §3.2 lets it reset
    assert conn.closed and conn.error is not None


def test_syn_in_established_gets_a_challenge_ack_and_the_connection_lives() -> None:
    s, _ = established()
    s.send(SYN, seq=s.nxt + 5)
    assert s.conn is not None and s.conn.established
    assert s.stack.stats.drops["tcp_challenge_ack_sent"] == 1


def test_data_acknowledging_unsent_bytes_is_dropped_not_delivered() -> None:
    s, nxt = established()
    conn = s.conn
    assert conn is not None
    s.send(ACK | PSH, b"forged", ack=nxt + 100_000)  # RFC 5961 §5.2 / RFC 9293 §3.10.7.4
    assert conn.unread == 0 and conn.established
    assert s.stack.stats.drops["tcp_ack_unsent"] == 1


def test_challenge_acks_are_rate_limited_per_stack() -> None:
    s, _ = established()
    stats = s.stack.stats
    for i in range(3000):  # a burst at one instant
        s.send(RST, seq=s.nxt + 1 + i)
    sent = stats.drops["tcp_challenge_ack_sent"]
    assert sent <= 1000 and stats.drops["tcp_challenge_ack_limited"] == 3000 - sent
    s.advance(1.0)  # the budget refills
    s.send(RST, seq=s.nxt + 7)
    assert stats.drops["tcp_challenge_ack_sent"] == sent + 1
    assert s.conn is not None and s.conn.established
