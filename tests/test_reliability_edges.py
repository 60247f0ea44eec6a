"""No data lost at the edges of a connection's life (sans-IO, two stacks on a virtual network).

* close() right after a large write still delivers every byte before the FIN
  (RFC 9293 §3.10.4: "CLOSE ... all outstanding SENDs are completed");
* the abortive ends are explicit: abort() sends RST, and close() with unread
  received data resets (RFC 2525 §2.17) — the peer sees ECONNRESET, never a
  silently shortened stream;
* a reader that stops reading closes the window (RFC 9293 §3.8.6): the sender
  waits with zero-window probes, nothing acknowledged is ever dropped, and all
  of it arrives when reading resumes.
"""

from __future__ import annotations

import hashlib
import random

import pytest

from seqs import Stack
from seqs.phy.faults import FaultConfig
from seqs.phy.memory import VirtualNetwork
from seqs.tcp.connection import TcpConfig, TcpConnection

MB = 1_000_000


def pair(faults: FaultConfig | None = None, *, rcvbuf: int = 64 * 1024) -> tuple[VirtualNetwork, Stack, Stack]:
    net = VirtualNetwork()
    cfg = TcpConfig(rcvbuf=rcvbuf, sndbuf=64 * 1024, msl=1.0)
    a = Stack(ip="10.0.0.1/24", rng=random.Random(1), tcp_config=cfg)
    b = Stack(ip="10.0.0.2/24", rng=random.Random(2), tcp_config=cfg)
    net.attach(a, faults)
    net.attach(b, faults)
    return net, a, b


def connect(net: VirtualNetwork, a: Stack, b: Stack, port: int = 5000) -> tuple[TcpConnection, TcpConnection]:
    lst = b.tcp_listen(port)
    client = a.tcp_connect(("10.0.0.2", port))
    accepted: list[TcpConnection] = []

    def ready() -> bool:
        conn = lst.accept()
        if conn is not None:
            accepted.append(conn)
        return bool(accepted) and client.established

    assert net.run_until(ready, timeout=30.0)
    return client, accepted[0]


def data(n: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(n)


@pytest.mark.parametrize("faults", [None, FaultConfig(loss=0.03, reorder=0.03, duplicate=0.03, seed=5)],
                         ids=["clean", "lossy"])
def test_close_right_after_a_large_write_delivers_every_byte_before_the_fin(faults: FaultConfig | None) -> None:
    net, a, b = pair(faults)
    client, server = connect(net, a, b)
    payload = data(2 * MB)
    sent = 0
    got = bytearray()
    eof = False

    def step() -> bool:
        nonlocal sent, eof
        if sent < len(payload):
            sent += client.send(memoryview(payload)[sent : sent + 65536])
            if sent == len(payload):
                client.close()  # with up to sndbuf bytes still queued and unacknowledged
        while not eof and (chunk := server.recv()) is not None:
            eof = chunk == b""
            got.extend(chunk)
        return eof

    assert net.run_until(step, timeout=600.0), (sent, len(got), client.state_name)
    assert len(got) == len(payload) and hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
    assert client.error is None


def test_abort_sends_rst_and_the_peer_sees_connection_reset() -> None:
    net, a, b = pair()
    client, server = connect(net, a, b)
    client.send(b"partial request")
    net.run_until(lambda: server.unread > 0, timeout=5.0)
    client.abort()
    assert client.closed
    assert net.run_until(lambda: server.closed, timeout=5.0)
    assert server.recv() == b"partial request"  # what arrived before the RST is still read...
    with pytest.raises(ConnectionResetError):  # ...and then the reset is reported, not an EOF
        server.recv()
    assert a.stats.drops.get("tcp_rst_sent", 0) == 0  # the RST came from the connection, not the table


def test_close_with_unread_data_resets_instead_of_pretending_all_was_read() -> None:
    net, a, b = pair()
    client, server = connect(net, a, b)
    client.send(b"you will not read this")
    assert net.run_until(lambda: server.unread > 0, timeout=5.0)
    server.close()  # RFC 2525 §2.17: data lost here, so say so with RST
    assert server.closed
    assert net.run_until(lambda: client.closed, timeout=5.0)
    with pytest.raises(ConnectionResetError):
        client.recv()


def test_stopped_reader_gets_a_zero_window_and_no_acknowledged_byte_is_lost() -> None:
    net, a, b = pair(rcvbuf=32 * 1024)
    client, server = connect(net, a, b)
    payload = data(MB, seed=8)
    sent = 0

    def writer() -> bool:
        nonlocal sent
        sent += client.send(memoryview(payload)[sent : sent + 65536])
        return False

    net.run_until(writer, timeout=20.0)  # the reader never reads in this time
    rcvbuf = server.config.rcvbuf
    # The window is closed: what is left is less than a segment, which sender SWS avoidance
    # (RFC 9293 §3.8.6.2.1) will not fill with a runt.
    assert rcvbuf - client.snd_mss < server.unread <= rcvbuf
    assert server.rcv_adv - server.rcv_nxt < client.snd_mss
    acked = client.snd_una - client.iss - 1
    assert acked == server.unread  # everything acknowledged is held, nothing more, nothing less
    assert client.snd_nxt == client.snd_una  # nothing in flight: waiting on the window
    assert client.buffered == client.config.sndbuf  # the writer is blocked, not dropping
    probes = a.stats.tcp_tx
    net.run_for(30.0)
    assert a.stats.tcp_tx > probes  # zero-window probes (RFC 9293 §3.8.6.1) while it waits
    assert client.error is None and client.established
    got = bytearray()

    def reader() -> bool:
        nonlocal sent
        if sent < len(payload):
            sent += client.send(memoryview(payload)[sent : sent + 65536])
        elif client._fin_seq is None:
            client.close()
        while (chunk := server.recv()) not in (None, b""):
            got.extend(chunk)
        return len(got) == len(payload)

    assert net.run_until(reader, timeout=120.0), len(got)
    assert bytes(got) == payload


def test_lost_window_update_after_a_small_window_does_not_stall_the_sender_forever() -> None:
    """A window opened by less than a segment is not used (sender SWS avoidance); if the
    update that opens it fully is then lost, the SWS override timeout (RFC 9293
    §3.8.6.2.1) sends the small segment, whose ACK carries the open window.  Before the
    fix the sender waited forever."""
    net, a, b = pair(rcvbuf=32 * 1024)
    client, server = connect(net, a, b)
    payload = data(MB, seed=9)
    sent = 0

    def writer() -> bool:
        nonlocal sent
        sent += client.send(memoryview(payload)[sent : sent + 65536])
        return False

    net.run_until(writer, timeout=20.0)
    got = bytearray(server.recv(1 << 20) or b"")
    net.ports[1].set_faults(FaultConfig(loss=1.0))  # the reader's window update is lost
    net.run_for(0.5)
    net.ports[1].set_faults(None)
    assert net.run_until(lambda: writer() or server.unread > 0, timeout=60.0)
    got += server.recv(1 << 20) or b""
    assert bytes(got) == payload[: len(got)]
