"""Listeners sharing a port, by packet script (the rule is in ``seqs.sockets.tcp``'s docstring).

Listeners on distinct local addresses may share a port; a SYN goes to the
listener bound to exactly its destination address, else to the wildcard one.
Listeners on the *same* address share a port only if every one of them asked
for ``reuse_port``; they form a pool, and each new connection goes to the
member picked by a hash of the remote address and port (Linux's SO_REUSEPORT).
RFC 9293 §3.10.7.2 (LISTEN) leaves the choice of listener to the
implementation; these tests pin down seqs' choice.

The stack under test is 10.0.0.1 (ISS 300 on every connection, see
``tcp_script.py``); the scripted clients are 10.0.0.2-10.0.0.4 on many ports.
"""

from __future__ import annotations

import errno
from collections import Counter

import pytest

from seqs.sockets.tcp import TcpListener
from seqs.tcp.connection import TcpConnection
from seqs.wire import ipv4 as wip
from tcp_script import Dut, Peer, TcpOptions

MSS_ONLY = TcpOptions(mss=1460)
CLIENT_IPS = ("10.0.0.2", "10.0.0.3", "10.0.0.4")


def handshake(p: Peer, listeners: list[TcpListener], *, isn: int = 100,
              take: bool = True) -> tuple[int, TcpConnection]:
    """SYN, SYN,ACK, ACK from ``p``; returns which listener queued the connection (exactly
    one may have it) and the connection, taken from its accept queue if ``take``."""
    d = p.dut
    p.send("SYN", isn, options=MSS_ONLY)
    p.expect("SYN,ACK", seq=300, ack=isn + 1)
    p.send("ACK", isn + 1, 301)
    queued = [i for i, lst in enumerate(listeners) if lst.pending]
    p.assert_that(len(queued) == 1, f"listeners with a queued connection: {queued}, expected exactly one")
    ends = (wip.ntoa(p.ip), p.port)
    if take:
        conn = listeners[queued[0]].accept()
    else:
        conn = next((c for c in d.stack.tcp.connections if c.remote_address == ends), None)
    p.assert_that(conn is not None and conn.state_name == "ESTABLISHED", "no ESTABLISHED connection")
    assert conn is not None
    p.assert_that(conn.remote_address == ends, f"accepted {conn!r}, not {ends}'s")
    d.conn = conn
    return queued[0], conn


def clients(d: Dut, ports: range) -> list[Peer]:
    return [Peer(d, ip=wip.aton(ip), port=port) for ip in CLIENT_IPS for port in ports]


def abort(d: Dut, p: Peer, conn: TcpConnection, *, isn: int = 100) -> None:
    """End a connection from our side (<SEQ=301><ACK=isn+1><CTL=RST,ACK>), so the client may
    connect again from the same port."""
    d.abort(conn)
    p.expect("RST,ACK", seq=301, ack=isn + 1)


# ====================================================================== distinct addresses


@pytest.mark.parametrize("wildcard_first", [True, False], ids=["wildcard listening first", "exact listening first"])
def test_syn_goes_to_the_listener_bound_to_its_exact_destination_address(wildcard_first: bool) -> None:
    """A SYN to 10.0.0.1:80 goes to the listener on 10.0.0.1:80, not to the one on
    0.0.0.0:80, whichever listened first; a SYN to 127.0.0.1:80, which no listener is bound
    to exactly, goes to the wildcard one."""
    d = Dut()
    if wildcard_first:
        wildcard = d.listen(80)
        exact = d.listen(80, address="10.0.0.1")
    else:
        exact = d.listen(80, address="10.0.0.1")
        wildcard = d.listen(80)
    which, conn = handshake(Peer(d), [exact, wildcard])
    assert which == 0 and conn.local_address == ("10.0.0.1", 80)
    # Over loopback, to 127.0.0.1: only the wildcard listener covers that address.
    client = d.stack.tcp_connect(("127.0.0.1", 80), local_port=50000)
    d.advance(0.1)
    assert client.state_name == "ESTABLISHED"
    assert (exact.pending, wildcard.pending) == (0, 1)
    served = wildcard.accept()
    assert served is not None and served.local_address == ("127.0.0.1", 80)


def test_syn_to_an_address_no_listener_covers_is_reset() -> None:
    """With listeners only on 127.0.0.1:80 and none on the wildcard, a SYN to 10.0.0.1:80
    finds no listener: RFC 9293 §3.10.7.1 (CLOSED) answers <SEQ=0><ACK=SEG.SEQ+1><CTL=RST,ACK>."""
    d = Dut()
    lo = d.listen(80, address="127.0.0.1")
    p = Peer(d)
    p.send("SYN", 100, options=MSS_ONLY)
    p.expect("RST,ACK", seq=0, ack=101)
    assert lo.half_open == 0 and len(d.stack.tcp) == 0


def test_listeners_on_distinct_addresses_share_a_port_without_reuse_port() -> None:
    d = Dut()
    lsts = [d.listen(80), d.listen(80, address="10.0.0.1"), d.listen(80, address="127.0.0.1")]
    assert [lst.local_address for lst in lsts] == [("10.0.0.1", 80), ("10.0.0.1", 80), ("127.0.0.1", 80)]
    assert [lst.address for lst in lsts] == [0, wip.aton("10.0.0.1"), wip.aton("127.0.0.1")]


# ====================================================================== the same address


@pytest.mark.parametrize("address", ["", "10.0.0.1"], ids=["wildcard", "exact"])
@pytest.mark.parametrize(("first_reuse", "second_reuse"), [(False, False), (True, False), (False, True)],
                         ids=["neither reuse_port", "only the first", "only the second"])
def test_second_listener_on_the_same_address_and_port_is_eaddrinuse(address: str, first_reuse: bool,
                                                                   second_reuse: bool) -> None:
    """Sharing an address and port needs reuse_port on *every* listener; otherwise the
    second listen fails with EADDRINUSE and the first one keeps serving alone."""
    d = Dut()
    first = d.stack.tcp.listen(80, address, reuse_port=first_reuse)
    with pytest.raises(OSError) as info:
        d.stack.tcp.listen(80, address, reuse_port=second_reuse)
    assert info.value.errno == errno.EADDRINUSE
    assert d.stack.tcp._listeners[80] == [first]
    which, _ = handshake(Peer(d), [first])
    assert which == 0


def test_closed_listeners_port_can_be_listened_on_again() -> None:
    d = Dut()
    d.listen(80).close()
    again = d.listen(80)  # no reuse_port needed: the first one is gone
    which, _ = handshake(Peer(d), [again])
    assert which == 0


# ====================================================================== reuse_port pools


def test_reuse_port_pool_spreads_connections_and_keeps_each_client_on_one_member() -> None:
    """Four listeners on 0.0.0.0:80 with reuse_port: 60 clients (3 addresses x 20 ports)
    land on all four, none starved, and a client (address, port) that connects again
    lands on the same member each time."""
    d = Dut()
    pool = [d.listen(80, reuse_port=True) for _ in range(4)]
    peers = clients(d, range(40000, 40020))
    first: dict[tuple[int, int], int] = {}
    for p in peers:
        first[(p.ip, p.port)], conn = handshake(p, pool)
        abort(d, p, conn)
    spread = Counter(first.values())
    assert sorted(spread) == [0, 1, 2, 3], spread
    assert min(spread.values()) >= 5, spread  # 15 each on average: a hash, not a first-fit
    for round_ in range(2):
        for p in peers:
            isn = 1000 * (round_ + 1)
            which, conn = handshake(p, pool, isn=isn)
            assert which == first[(p.ip, p.port)], f"{wip.ntoa(p.ip)}:{p.port} moved from {first[(p.ip, p.port)]}"
            abort(d, p, conn, isn=isn)
    assert len(d.stack.tcp) == 0


def test_closing_one_member_of_a_pool_leaves_the_others_serving() -> None:
    """Closing one listener of a pool resets the connections still in its accept queue
    (not the ones already accepted); every later SYN goes to a remaining member."""
    d = Dut()
    pool = [d.listen(80, reuse_port=True) for _ in range(3)]
    peers = clients(d, range(40000, 40010))
    # Member 1 gets two connections: one accepted, one left in its accept queue.
    landed: dict[Peer, tuple[int, TcpConnection]] = {}
    on_member_1: list[Peer] = []
    for p in peers:
        which, conn = handshake(p, pool, take=len(on_member_1) == 0)
        landed[p] = (which, conn)
        if which == 1:
            on_member_1.append(p)
            if len(on_member_1) == 2:
                break
        elif pool[which].pending:
            pool[which].accept()
    accepted, queued = (landed[p][1] for p in on_member_1)
    assert pool[1].pending == 1
    pool[1].close()
    on_member_1[1].expect("RST,ACK", seq=301, ack=101)
    assert queued.state_name == "CLOSED" and accepted.state_name == "ESTABLISHED"
    for p, (_, conn) in landed.items():
        if conn.state_name == "ESTABLISHED":
            abort(d, p, conn)
    # The others serve every client, including the ones that hashed to the closed member.
    members = [pool[0], pool[2]]
    spread: Counter[int] = Counter()
    for p in peers:
        which, conn = handshake(p, members, isn=5000)
        spread[which] += 1
        abort(d, p, conn, isn=5000)
    assert sorted(spread) == [0, 1] and sum(spread.values()) == len(peers), spread
    # The port stays a pool: a new reuse_port listener may join it, a plain one may not.
    with pytest.raises(OSError) as info:
        d.listen(80)
    assert info.value.errno == errno.EADDRINUSE
    d.listen(80, reuse_port=True)
