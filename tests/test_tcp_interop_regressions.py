"""TCP behaviours the kernel interop tests (tests/interop/test_tcp_kernel.py) found
wrong, pinned here on virtual time with a scripted peer (see ``tcp_script.py``).

1. While seqs held out-of-order data, each full-sized data segment it sent
   carried SACK blocks on top of the MSS, came out larger than the MTU and was
   refused by the interface (``tcp_no_route``); each one then cost an RTO.
2. Linux grows its advertised window while it SACKs a loss, and its ACKs ride
   on its own data.  Counting only RFC 5681's duplicate ACKs (no data, window
   unchanged) missed both, so a loss waited for the RTO instead of a fast
   retransmit: 15 of 26 RTOs in a 20 MB transfer with 2 % loss.
3. An RTO retransmitted a full segment into a window smaller than one
   (tests/interop/test_api_kernel.py, 20 concurrent echoes).  SND.NXT then lay
   beyond the window's right edge, so every ACK seqs sent (SEQ=SND.NXT) was
   out of Linux's receive window and dropped (TcpExtBeyondWindow), Linux never
   learnt what seqs had received, and both ends backed off until the
   application timed out.  Now retransmissions stay within the window and an
   ACK starts at the window's edge at the latest.
4. With 5 % of every fault each way (tests/interop/test_faults_kernel.py), an
   echo transfer stopped for good about once in fifteen runs.  Two things
   combined:
   - seqs rounded its scaled window down, so the right edge Linux saw moved
     back by a few bytes. Linux had filled the window, so its ACKs carried
     SEG.SEQ = the old edge, and seqs rejected them as beyond the window;
   - an RTO had rewound seqs' SND.NXT, so seqs' own ACKs started below Linux's
     RCV.NXT, and Linux ignored them as old duplicates.
   Neither side learnt what the other had received, and both backed off
   until the client gave up.
"""

from __future__ import annotations

from seqs.tcp.connection import TcpConfig
from tcp_script import DUT_IP, PEER_IP, Dut, Peer, TcpOptions

MTU = 1500
TS_SACK = TcpOptions(mss=MTU - 40, sack_permitted=True, timestamp=(1000, 0))


def test_data_segments_shrink_to_carry_sack_blocks_within_the_mtu() -> None:
    """RFC 9293 §3.7.1, RFC 6691: the sender MUST reduce the data length by the options it sends."""
    d = Dut()
    p = Peer(d)
    conn = p.open_passive(options=TS_SACK)
    assert conn.snd_mss == MTU - 40 - 12  # timestamps are already allowed for
    # A hole: 100 bytes at 201 while RCV.NXT is 101, so our segments carry SACK.
    p.send("ACK", 201, 301, payload=b"x" * 100, options=TcpOptions(timestamp=(1001, 0)))
    p.expect("ACK", seq=301, ack=101, sack=((201, 301),))
    d.send(b"y" * 4000)
    # One SACK block costs 4 + 8 bytes of options (RFC 2018 §3): the data gives way.
    first = p.expect("ACK", seq=301, ack=101, sack=((201, 301),), data_len=conn.snd_mss - 12)
    assert 20 + len(first.seg.emit(DUT_IP, PEER_IP)) == MTU  # IPv4 header + the whole TCP segment
    p.expect("ACK", seq=301 + conn.snd_mss - 12, data_len=conn.snd_mss - 12)
    assert not d.stack.stats.drops.get("tcp_no_route"), d.stack.stats.drops


def test_full_sized_segments_return_once_the_hole_is_filled() -> None:
    d = Dut()
    p = Peer(d)
    conn = p.open_passive(options=TS_SACK)
    p.send("ACK", 201, 301, payload=b"x" * 100, options=TcpOptions(timestamp=(1001, 0)))
    p.expect("ACK", seq=301, ack=101)
    p.send("ACK", 101, 301, payload=b"w" * 100, options=TcpOptions(timestamp=(1002, 0)))
    p.expect("ACK", seq=301, ack=301, sack=())
    d.send(b"y" * 4000)
    p.expect("ACK", seq=301, ack=301, data_len=conn.snd_mss)


def _lose_first_of_six(window: int) -> tuple[Dut, Peer, int]:
    """Six segments out; the peer (window ``window``) got all but the first."""
    d = Dut()
    p = Peer(d)
    conn = p.open_passive(options=TS_SACK, window=window)
    mss = conn.snd_mss
    d.send(b"z" * (6 * mss))
    for i in range(6):
        p.expect("ACK", seq=301 + i * mss, data_len=mss)
    return d, p, mss


def test_sacks_with_a_growing_window_trigger_fast_retransmit() -> None:
    """RFC 6675 §2: an ACK that SACKs new data counts as a duplicate even if it
    changes the window."""
    d, p, mss = _lose_first_of_six(20000)
    for i in range(1, 4):
        p.send("ACK", 101, 301, window=20000 + 1000 * i,
               options=TcpOptions(timestamp=(1001 + i, 0), sack=((301 + mss, 301 + (i + 1) * mss),)))
    # now, not after the RTO (1 s at the start: no RTT sample yet)
    p.expect("ACK", seq=301, data_len=mss, at=0.0, wait=0.0)
    assert d.stack.stats.drops.get("tcp_fast_retransmit") == 1, d.stack.stats.drops


def test_sacks_riding_on_data_trigger_fast_retransmit() -> None:
    """RFC 6675 §2: ... even if it carries data (an echo's peer acknowledges with its data)."""
    d, p, mss = _lose_first_of_six(20000)
    for i in range(1, 4):
        p.send("ACK", 101 + 100 * (i - 1), 301, window=20000, payload=b"e" * 100,
               options=TcpOptions(timestamp=(1001 + i, 0), sack=((301 + mss, 301 + (i + 1) * mss),)))
    sent = p.drain()
    assert any(s.seg.seq == 301 and len(s.seg.payload) == mss and s.time == 0.0 for s in sent), \
        d.failure("no fast retransmit of the first segment")
    assert d.stack.stats.drops.get("tcp_fast_retransmit") == 1, d.stack.stats.drops


def test_acks_that_only_change_the_window_are_not_duplicates() -> None:
    """RFC 5681 §2 (no SACK news): a window update is not a loss signal."""
    d, p, _mss = _lose_first_of_six(20000)
    for i in range(1, 4):
        p.send("ACK", 101, 301, window=20000 + 1000 * i, options=TcpOptions(timestamp=(1001 + i, 0)))
    sent = p.drain()
    assert not any(s.seg.seq == 301 and s.seg.payload for s in sent), d.failure("retransmitted on window updates")
    assert not d.stack.stats.drops.get("tcp_fast_retransmit"), d.stack.stats.drops


def test_rto_retransmission_fits_a_window_smaller_than_one_segment() -> None:
    """RFC 9293 §3.8.6: the send window bounds what may be sent, retransmissions included
    (RFC 1122 §4.2.2.17 makes a 1-byte probe the only exception, at a zero window)."""
    d = Dut()
    p = Peer(d)
    conn = p.open_passive(window=65535)
    mss = conn.snd_mss
    d.send(b"x" * 20 * mss)
    flight = p.drain()
    assert len(flight) >= 2, flight
    # The peer takes the first segment; its buffer nearly full, it offers 1024 bytes more.
    p.send("ACK", 101, 301 + mss, window=1024)
    p.drain()
    again = p.expect("ACK", seq=301 + mss, wait=5.0)  # the RTO's retransmission
    p.assert_that(len(again.seg.payload) <= 1024,
                  f"retransmitted {len(again.seg.payload)} bytes into a window of 1024")


def _window_filled_by_the_peer() -> tuple[Dut, Peer]:
    """RCV.NXT = 101 and RCV.WND = 4096 (no scaling); 100 bytes of ours in flight."""
    d = Dut()
    p = Peer(d)
    p.open_passive(lst=d.listen(80, config=TcpConfig(rcvbuf=4096)))
    d.send(b"q" * 100)
    p.expect("ACK", seq=301, ack=101, payload=b"q" * 100)
    return d, p


def test_a_pure_ack_at_our_right_edge_is_processed() -> None:
    """The peer sent up to the edge we offered and we lost it: its ACKs start at
    RCV.NXT + RCV.WND.  Their acknowledgment counts (Linux's tcp_sequence() accepts the
    edge; RFC 9293 §3.10.7.4 makes the same allowance at a zero window)."""
    d, p = _window_filled_by_the_peer()
    conn = d.conn
    assert conn is not None and conn.rcv_adv - conn.rcv_nxt == 4096
    p.send("ACK", 101 + 4096, 401)
    assert conn.snd_una == 401
    p.expect_nothing()
    assert not d.stack.stats.drops.get("tcp_unacceptable_segment"), d.stack.stats.drops


def test_data_at_our_right_edge_is_dropped_but_its_ack_counts() -> None:
    d, p = _window_filled_by_the_peer()
    conn = d.conn
    assert conn is not None
    p.send("ACK", 101 + 4096, 401, payload=b"beyond")
    assert conn.snd_una == 401 and conn.rcv_nxt == 101 and conn.unread == 0
    p.expect("ACK", seq=401, ack=101, window=4096)
    assert d.stack.stats.drops["tcp_data_beyond_window"] == 1


def test_an_ack_at_the_edge_we_offered_counts_after_rounding_moved_it_back() -> None:
    """RFC 7323 §2.4: the window field counts units of 2**shift, so after segments whose
    lengths are no multiple of that the edge the peer sees lies a few bytes short of the
    one we offered first.  A peer that had filled the window sends its ACKs at that first
    edge (Linux did), and they count."""
    d = Dut()
    p = Peer(d)
    conn = p.open_passive(options=TcpOptions(mss=1460, wscale=2))
    shift = conn.rcv_wscale
    assert shift > 0
    d.send(b"q" * 100)
    first = p.expect("ACK", seq=301, ack=101, payload=b"q" * 100)
    offered = 101 + (first.seg.window << shift)
    assert offered == conn.rcv_adv
    seq, edges = 101, []
    for _ in range(6):
        p.send("ACK", seq, 301, payload=b"e" * 1001)
        seq += 1001
        d.advance(0.5)  # the delayed ACK, if any
        edges += [s.seg.ack + (s.seg.window << shift) for s in p.drain()]
    assert conn.rcv_adv == offered and edges and max(edges) < offered, edges  # rounding moved it back
    assert conn.unread == 6 * 1001 <= conn.config.rcvbuf
    p.send("ACK", offered, 401)  # the peer's SND.NXT is the edge it was offered
    assert conn.snd_una == 401
    assert not d.stack.stats.drops.get("tcp_unacceptable_segment"), d.stack.stats.drops


def test_a_pure_ack_after_an_rto_starts_at_snd_max() -> None:
    """The RTO rewound SND.NXT (go back N), but the peer may hold everything up to
    SND.MAX: an ACK starting below its RCV.NXT would be an old duplicate to it."""
    d = Dut()
    p = Peer(d)
    conn = p.open_passive()
    mss = conn.snd_mss
    d.send(b"z" * 3 * mss)
    assert len(p.drain()) == 3
    p.expect("ACK", seq=301, data_len=mss, wait=5.0)  # the RTO's retransmission
    assert conn.snd_nxt == 301 + mss and conn.snd_max == 301 + 3 * mss
    p.send("ACK", 101, 301, payload=b"d" * 100)  # data from the peer, acknowledging nothing new
    d.advance(0.5)
    acks = [s for s in p.drain() if not s.seg.payload]
    assert acks and all(s.seg.seq == 301 + 3 * mss and s.seg.ack == 201 for s in acks), acks
