"""A peer that vanishes mid-transfer: the connection ends with a clear error and gives its memory back.

Two stacks on a virtual network; the client keeps its send buffer full while
the server reads.  Then the server side goes, in one of three ways:

* its process is killed: the kernel resets the connection (here: ``abort()``,
  a RST), so the client gets ConnectionResetError at once (RFC 9293 §3.10.7.4);
* its link goes down (every frame lost both ways): the client retransmits
  ``max_retries`` times with backoff and gets TimeoutError (RFC 9293 §3.8.3,
  RFC 1122 §4.2.3.5 R2);
* it stops reading and then its link goes down: the client, stuck behind a
  zero window, probes (RFC 9293 §3.8.6.1) and must still give up after its
  retries rather than probe an absent peer for ever.

Either way the client's connection leaves the table and the memory traced by
``tracemalloc`` returns to what it was before the connection opened (the
256 KB send buffer is released), although the user still holds the
connection object, as a program holds a socket after an error.
"""

from __future__ import annotations

import gc
import random
import tracemalloc

import pytest

from helpers import record
from seqs import Stack
from seqs.phy.faults import FaultConfig
from seqs.phy.memory import VirtualNetwork
from seqs.tcp.connection import TcpConfig, TcpConnection

SNDBUF = 256 * 1024
#: traced bytes the client's stack may keep after the connection is gone (counters, a
#: timer heap slot...): a tenth of the send buffer it held
SLACK = 24 * 1024
CONFIG = TcpConfig(sndbuf=SNDBUF, rcvbuf=SNDBUF, max_retries=3, rto_max=2.0, msl=1.0)
BLOCK = bytes(range(256)) * 256
#: a 2 MB/s link with 1 ms of delay each way: time moves, and a second moves 2 MB
LINK = FaultConfig(delay=0.001, rate=2e6)
DEAD = FaultConfig(loss=1.0)


def stacks() -> tuple[VirtualNetwork, Stack, Stack]:
    net = VirtualNetwork()
    a = Stack(ip="10.0.0.1/24", rng=random.Random(1), tcp_config=CONFIG)
    b = Stack(ip="10.0.0.2/24", rng=random.Random(2), tcp_config=CONFIG)
    net.attach(a, LINK)
    net.attach(b, LINK)
    return net, a, b


def open_pair(net: VirtualNetwork, a: Stack, b: Stack, port: int) -> tuple[TcpConnection, TcpConnection]:
    lst = b.tcp_listen(port)
    client = a.tcp_connect(("10.0.0.2", port))
    got: list[TcpConnection] = []

    def ready() -> bool:
        if not got and (c := lst.accept()) is not None:
            got.append(c)
        return bool(got) and client.established

    assert net.run_until(ready, timeout=10.0)
    lst.close()
    return client, got[0]


def transfer(net: VirtualNetwork, client: TcpConnection, server: TcpConnection, seconds: float, *,
             read: bool = True) -> int:
    """Keep the client's send buffer full for ``seconds`` of virtual time; the server reads
    (or not).  Returns the bytes the server read."""
    n = 0

    def step() -> bool:
        nonlocal n
        while client.send_space:
            client.send(BLOCK[: client.send_space])
        while read and (d := server.recv()):
            n += len(d)
        return False

    net.run_until(step, timeout=seconds)
    return n


@pytest.mark.parametrize("how", ["killed", "link_down", "zero_window_then_link_down"])
def test_peer_vanishing_mid_transfer_ends_the_connection_and_frees_its_buffers(how: str) -> None:
    net, a, b = stacks()
    # One connection first, so what a stack allocates once (ARP entries, port tables,
    # counters) is in the baseline.
    c0, s0 = open_pair(net, a, b, 4999)
    transfer(net, c0, s0, 0.2)
    c0.abort()
    s0.abort()
    net.run_for(5.0)
    assert len(a.tcp) == 0 and len(b.tcp) == 0
    del c0, s0
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        client, server = open_pair(net, a, b, 5000)
        moved = transfer(net, client, server, 0.5, read=how != "zero_window_then_link_down")
        assert client.buffered > SNDBUF // 2  # the buffer the peer's going must release
        held = tracemalloc.get_traced_memory()[0] - base
        t0 = net.now
        if how == "killed":
            server.abort()  # what the kernel does for a killed process: RST
        else:
            for port in net.ports:
                port.set_faults(DEAD)
        assert net.run_until(lambda: client.closed, timeout=120.0), (client, client.retries)
        elapsed = net.now - t0
        if how != "killed":
            server.abort()  # the vanished side's state goes with it (its RST is lost)
        net.run_for(5.0)
        error = client.error
        with pytest.raises(OSError) as raised:
            client.send(b"more")
        left = len(a.tcp)
        del server
        gc.collect()
        after = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    figures = {"how": how, "error": type(raised.value).__name__, "vanished_after_bytes": moved,
               "seconds_to_error": round(elapsed, 2), "retries": client.retries, "traced_while_open": held,
               "traced_after": after, "connections_left": left}
    record("peer_vanishing_in_process", **figures)
    expected = ConnectionResetError if how == "killed" else TimeoutError
    assert isinstance(raised.value, expected) and error is not None, figures
    assert left == 0, figures
    assert held > SNDBUF // 2, figures  # the buffers were really there ...
    assert after < SLACK, figures  # ... and are gone, with the connection object still held
