"""TCP by packet script: one rule of RFC 9293 (and its companions) per test, on virtual time.

The stack under test is "TCP B" of RFC 9293's figures: ISS 300, at 10.0.0.1.
The scripted peer is "TCP A": ISS 100, at 10.0.0.2:40000.  So after a
handshake SND.NXT is 301 and RCV.NXT is 101 on the stack's side, and the
numbers in these tests can be checked against the figures by eye.  See
``tcp_script.py`` for the harness; a failing test prints the exchange.
"""

from __future__ import annotations

import errno

import pytest

from seqs.sockets.tcp import TcpListener
from seqs.tcp.connection import TcpConfig
from seqs.wire import ipv4 as wip
from seqs.wire.icmp import IcmpMessage
from seqs.wire.tcp import TcpSegment
from tcp_script import ABSENT, Dut, Peer, TcpOptions

MSS = 1460


MSS_ONLY = TcpOptions(mss=MSS)


def established(config: TcpConfig | None = None, *, options: TcpOptions = MSS_ONLY,
                window: int = 65535, active: bool = False, **dut: object) -> tuple[Dut, Peer]:
    """A connection in ESTABLISHED: SND.NXT=301, RCV.NXT=101, at t=0."""
    d = Dut(config=config, **dut)  # type: ignore[arg-type]
    p = Peer(d)
    if active:
        p.open_active(options=options, window=window)
    else:
        if config is not None:
            lst = d.listen(80, config=config)
            p.open_passive(options=options, window=window, lst=lst)
        else:
            p.open_passive(options=options, window=window)
    return d, p


# ====================================================================== opening


def test_passive_open_negotiates_mss_window_scale_sack_and_timestamps() -> None:
    """RFC 9293 §3.5 figure 6; RFC 7323 §2.2-2.3, §3.2; RFC 2018 §2: a SYN offering
    everything is answered with everything, and what was agreed is used."""
    d = Dut()
    p = Peer(d)
    lst = d.listen(80)
    p.send("SYN", 100, options=TcpOptions(mss=1000, wscale=2, sack_permitted=True, timestamp=(5000, 0)))
    synack = p.expect("SYN,ACK", seq=300, ack=101, window=65535, mss=1460, wscale=3, sack_permitted=True,
                      tsecr=5000)
    tsval = synack.options.timestamp[0]
    p.send("ACK", 101, 301, window=100, options=TcpOptions(timestamp=(5001, tsval)))
    conn = d.accept(lst)
    assert conn.state_name == "ESTABLISHED"
    # The peer's windows are scaled by its shift (2) from now on: 100 << 2.
    assert conn.snd_wnd == 400
    p.send("ACK", 101, 301, window=1000, options=TcpOptions(timestamp=(5002, tsval)))
    d.send(b"x" * 3000)
    # MSS 1000 from the peer, less the 12 bytes of the timestamp option every segment carries
    # (RFC 6691 §2; RFC 7323 §3.2), and our window field scaled by our shift 3: 256 KiB >> 3.
    for seq in (301, 1289, 2277):
        p.expect("ACK", seq=seq, ack=101, data_len=988, window=(256 * 1024) >> 3, tsecr=5002)
    p.expect_nothing()


def test_active_open_negotiates_mss_window_scale_sack_and_timestamps() -> None:
    """RFC 9293 §3.5 figure 6 from the other side; RFC 7323 §2.2: the SYN's window is not scaled."""
    d = Dut()
    p = Peer(d)
    conn = d.connect(40000, local_port=80)
    syn = p.expect("SYN", seq=300, window=65535, mss=1460, wscale=3, sack_permitted=True)
    tsval = syn.options.timestamp[0]
    assert syn.options.timestamp[1] == 0
    p.send("SYN,ACK", 100, 301, window=1000,
           options=TcpOptions(mss=1200, wscale=1, sack_permitted=True, timestamp=(7000, tsval)))
    p.expect("ACK", seq=301, ack=101, tsecr=7000, window=(256 * 1024) >> 3)
    assert conn.state_name == "ESTABLISHED"
    assert conn.snd_wnd == 1000  # the SYN-ACK's window is taken as is
    assert (conn.ts_ok, conn.sack_ok, conn.ws_ok) == (True, True, True)
    p.send("ACK", 101, 301, window=2000, options=TcpOptions(timestamp=(7001, tsval)))
    assert conn.snd_wnd == 4000  # later windows are scaled by the peer's shift 1
    d.send(b"y" * 2376)
    p.expect("ACK", seq=301, data_len=1188, tsecr=7001)  # 1200 - 12 bytes of timestamp option
    p.expect("ACK", seq=1489, data_len=1188, psh=True)


def test_mss_defaults_to_536_when_the_syn_has_none() -> None:
    """RFC 9293 §3.7.1 (and RFC 1122 §4.2.2.6): without an MSS option the send MSS is 536;
    a SYN without other options gets none back (RFC 7323 §2.2, §3.2; RFC 2018 §2)."""
    d = Dut()
    p = Peer(d)
    conn = p.open_passive(options=TcpOptions())
    syn_ack = [line for line in d.trace if "SYN,ACK" in line]
    assert syn_ack and "<WS=" not in syn_ack[0] and "<TS=" not in syn_ack[0] and "SACKOK" not in syn_ack[0]
    assert (conn.ts_ok, conn.sack_ok, conn.ws_ok) == (False, False, False)
    d.send(b"z" * 1072)
    p.expect("ACK", seq=301, data_len=536)
    p.expect("ACK", seq=837, data_len=536, psh=True)


def test_our_mss_option_announces_mtu_minus_40() -> None:
    """RFC 9293 §3.7.1 / RFC 6691: the MSS we announce is the MTU less the fixed IP and TCP headers."""
    d = Dut(mtu=1280)
    p = Peer(d)
    d.listen(80)
    p.send("SYN", 100, options=TcpOptions(mss=1460))
    p.expect("SYN,ACK", seq=300, ack=101, mss=1240)


def test_window_scale_is_not_used_when_the_peer_did_not_offer_it() -> None:
    """RFC 7323 §2.2: scaling applies only if both SYNs carried the option; otherwise
    neither side scales, and our window field is capped at 65535."""
    d = Dut()
    p = Peer(d)
    d.listen(80)
    p.send("SYN", 100, window=2920, options=TcpOptions(mss=1460, sack_permitted=True))
    p.expect("SYN,ACK", seq=300, ack=101, wscale=ABSENT, sack_permitted=True, window=65535)
    p.send("ACK", 101, 301, window=2920)
    conn = d.conn
    assert conn is not None and conn.snd_wnd == 2920 and conn.rcv_wscale == 0 and conn.snd_wscale == 0
    d.send(b"w" * 5000)
    p.expect("ACK", seq=301, data_len=1460, window=65535)
    p.expect("ACK", seq=1761, data_len=1460)
    p.expect_nothing()  # the peer's 2920-byte window, unscaled, is full


def test_window_scale_is_not_used_when_the_syn_ack_lacks_it() -> None:
    """RFC 7323 §2.2 from the active side: we offered WS=3, the SYN-ACK did not answer it."""
    d = Dut()
    p = Peer(d)
    conn = d.connect(40000, local_port=80)
    p.expect("SYN", seq=300, wscale=3)
    p.send("SYN,ACK", 100, 301, window=3000, options=TcpOptions(mss=1460))
    p.expect("ACK", seq=301, ack=101, window=65535)
    assert (conn.rcv_wscale, conn.snd_wscale, conn.ws_ok) == (0, 0, False)
    p.send("ACK", 101, 301, window=3000)
    assert conn.snd_wnd == 3000


def test_sack_is_used_only_when_both_sides_permitted_it() -> None:
    """RFC 2018 §2: SACK-permitted in both SYNs, or no SACK blocks ever."""
    d = Dut()
    p = Peer(d)
    d.listen(80)
    p.send("SYN", 100, options=TcpOptions(mss=1460))
    p.expect("SYN,ACK", seq=300, ack=101, sack_permitted=False)
    p.send("ACK", 101, 301)
    p.send("ACK", 201, 301, payload=b"a" * 100)  # out of order
    p.expect("ACK", seq=301, ack=101, sack=ABSENT)


def test_simultaneous_open() -> None:
    """RFC 9293 §3.5 figure 7: both ends send SYN; each answers SYN,ACK; both reach ESTABLISHED
    without another segment."""
    d = Dut()
    p = Peer(d)
    conn = d.connect(40000, local_port=80)
    p.expect("SYN", seq=300)
    p.send("SYN", 100, options=TcpOptions(mss=1460))
    p.expect("SYN,ACK", seq=300, ack=101, mss=1460)
    assert conn.state_name == "SYN-RECEIVED"
    p.send("SYN,ACK", 100, 301, options=TcpOptions(mss=1460))
    p.assert_that(conn.state_name == "ESTABLISHED", "not ESTABLISHED after the peer's SYN,ACK")
    d.send(b"hello")
    p.expect("ACK", seq=301, ack=101, payload=b"hello")


def test_simultaneous_open_retransmits_a_syn_ack() -> None:
    """RFC 9293 §3.5 figure 7 and §3.8.1: in SYN-RECEIVED what times out and is retransmitted
    is our SYN,ACK (a bare SYN would not acknowledge the peer's SYN)."""
    d = Dut(config=TcpConfig(timestamps=False))
    p = Peer(d)
    conn = d.connect(40000, local_port=80)
    p.expect("SYN", seq=300, at=0.0)
    p.send("SYN", 100, options=TcpOptions(mss=MSS), at=0.1)
    p.expect("SYN,ACK", seq=300, ack=101, at=0.1)
    p.expect("SYN,ACK", seq=300, ack=101, mss=MSS, at=1.0)  # the SYN's timer, still running
    p.send("ACK", 101, 301)
    assert conn.state_name == "ESTABLISHED"


def test_sequence_numbers_wrap_around() -> None:
    """RFC 9293 §3.4: sequence numbers are compared modulo 2**32; both directions cross the wrap."""
    d = Dut(iss=0xFFFFFF00)
    p = Peer(d)
    conn = p.open_passive(isn=0xFFFFFFF0)
    p.send("ACK", 0xFFFFFFF1, 0xFFFFFF01, payload=b"x" * 100)  # 0xFFFFFFF1 .. 0x54
    p.expect("ACK", seq=0xFFFFFF01, ack=0x55, at=0.04)
    d.send(b"y" * 1000)
    p.expect("ACK", seq=0xFFFFFF01, ack=0x55, data_len=1000)
    p.send("ACK", 0x55, (0xFFFFFF01 + 1000) & 0xFFFFFFFF)
    assert conn.snd_una == conn.snd_max and d.recv() == b"x" * 100
    d.close()
    p.expect("FIN,ACK", seq=(0xFFFFFF01 + 1000) & 0xFFFFFFFF, ack=0x55)


def test_retransmitted_syn_in_syn_received_is_answered_again() -> None:
    """RFC 9293 §3.10.7.4: a duplicate of the SYN that opened a half-open connection gets the
    SYN,ACK again (not a challenge ACK), and the connection survives."""
    d = Dut()
    p = Peer(d)
    lst = d.listen(80)
    p.send("SYN", 100, options=TcpOptions(mss=1460))
    p.expect("SYN,ACK", seq=300, ack=101)
    p.send("SYN", 100, options=TcpOptions(mss=1460), at=0.5)
    # RFC 9293 reads the duplicate SYN (SEG.SEQ = RCV.NXT-1) as unacceptable and answers
    # <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>; Linux answers with the SYN,ACK again.  Either
    # tells the peer where we are; what matters is an answer now and a connection that lives.
    d.poll()
    p.assert_that(len(d.outbox) == 1 and d.outbox[0].time == 0.5, "no answer to the duplicate SYN")
    if d.outbox[0].flags & 0x02:
        p.expect("SYN,ACK", seq=300, ack=101)
    else:
        p.expect("ACK", seq=301, ack=101)
    p.send("ACK", 101, 301)
    assert d.accept(lst).state_name == "ESTABLISHED"


def test_ack_to_a_listener_gets_a_reset() -> None:
    """RFC 9293 §3.10.7.2: in LISTEN, any ACK is bad: <SEQ=SEG.ACK><CTL=RST>."""
    d = Dut()
    p = Peer(d)
    d.listen(80)
    p.send("ACK", 100, 5000)
    p.expect("RST", seq=5000)
    assert len(d.stack.tcp) == 0


def test_syn_to_a_listener_with_a_full_backlog_is_dropped() -> None:
    """RFC 9293 §3.10.7.2 leaves the queue to the implementation; like Linux, a SYN that
    would overflow the accept queue is dropped (no RST), so the client retries later."""
    d = Dut()
    first = Peer(d, port=40000)
    second = Peer(d, port=40001)
    lst = d.listen(80, backlog=1)
    first.send("SYN", 100, options=TcpOptions(mss=1460))
    first.expect("SYN,ACK", seq=300, ack=101)
    first.send("ACK", 101, 301)
    assert lst.pending == 1
    second.send("SYN", 500, options=TcpOptions(mss=1460))
    second.expect_nothing()
    assert d.stack.stats.drops.get("tcp_listen_overflow") == 1
    assert d.accept(lst) is not None
    second.send("SYN", 500, options=TcpOptions(mss=1460), at=1.0)  # the client's retry
    second.expect("SYN,ACK", seq=300, ack=501)


# ====================================================================== closing


def test_active_close_goes_through_fin_wait_and_time_wait() -> None:
    """RFC 9293 §3.6 figure 12: FIN-WAIT-1, FIN-WAIT-2, TIME-WAIT."""
    d, p = established()
    conn = d.conn
    assert conn is not None
    d.close()
    p.expect("FIN,ACK", seq=301, ack=101)
    assert conn.state_name == "FIN-WAIT-1"
    p.send("ACK", 101, 302)
    assert conn.state_name == "FIN-WAIT-2"
    p.send("FIN,ACK", 101, 302)
    p.expect("ACK", seq=302, ack=102)
    assert conn.state_name == "TIME-WAIT"


def test_passive_close_goes_through_close_wait_and_last_ack() -> None:
    """RFC 9293 §3.6 figure 12, the other side: CLOSE-WAIT, LAST-ACK, CLOSED, out of the table."""
    d, p = established()
    conn = d.conn
    assert conn is not None
    p.send("FIN,ACK", 101, 301)
    p.expect("ACK", seq=301, ack=102)
    assert conn.state_name == "CLOSE-WAIT"
    assert d.recv() == b""
    d.close()
    p.expect("FIN,ACK", seq=301, ack=102)
    assert conn.state_name == "LAST-ACK"
    p.send("ACK", 102, 302)
    assert conn.state_name == "CLOSED"
    assert len(d.stack.tcp) == 0


def test_simultaneous_close() -> None:
    """RFC 9293 §3.6 figure 13: FINs cross; CLOSING, then TIME-WAIT."""
    d, p = established()
    conn = d.conn
    assert conn is not None
    d.close()
    p.expect("FIN,ACK", seq=301, ack=101)
    p.send("FIN,ACK", 101, 301)  # sent before our FIN arrived: it does not ACK it
    p.expect("ACK", seq=302, ack=102)
    assert conn.state_name == "CLOSING"
    p.send("ACK", 102, 302)
    assert conn.state_name == "TIME-WAIT"


def test_half_close_shutdown_write_keeps_reading() -> None:
    """RFC 9293 §3.6: after our FIN (CLOSE in the user's sense of "no more to send") we keep
    receiving until the peer's FIN."""
    d, p = established()
    conn = d.conn
    assert conn is not None
    d.send(b"request")
    p.expect("ACK", seq=301, payload=b"request")
    d.shutdown_write()
    p.expect("FIN,ACK", seq=308, ack=101)
    p.send("ACK", 101, 309)
    assert conn.state_name == "FIN-WAIT-2"
    p.send("ACK", 101, 309, payload=b"response, part 1 ")
    p.expect("ACK", seq=309, ack=118)
    p.send("ACK", 118, 309, payload=b"and part 2")
    p.expect("ACK", seq=309, ack=128)
    p.send("FIN,ACK", 128, 309)
    p.expect("ACK", seq=309, ack=129)
    assert d.recv() == b"response, part 1 and part 2"
    assert d.recv() == b""
    assert conn.state_name == "TIME-WAIT"
    with pytest.raises(BrokenPipeError):
        conn.send(b"more")


def test_half_close_by_the_peer_we_keep_sending() -> None:
    """RFC 9293 §3.6: in CLOSE-WAIT the side that has not closed may still send."""
    d, p = established()
    conn = d.conn
    assert conn is not None
    p.send("FIN,ACK", 101, 301)
    p.expect("ACK", seq=301, ack=102)
    assert d.recv() == b""
    d.send(b"still talking")
    p.expect("ACK", seq=301, ack=102, payload=b"still talking")
    p.send("ACK", 102, 314)
    d.close()
    p.expect("FIN,ACK", seq=314, ack=102)
    p.send("ACK", 102, 315)
    assert len(d.stack.tcp) == 0


def test_abort_sends_rst_and_forgets_the_connection() -> None:
    """RFC 9293 §3.10.5 ABORT: send <SEQ=SND.NXT><CTL=RST>, delete the TCB.  If the ACK bit
    is set too, its field must be meaningful (RCV.NXT), not zero."""
    d, p = established()
    conn = d.conn
    assert conn is not None
    d.send(b"abc")
    p.expect("ACK", seq=301, payload=b"abc")
    d.abort()
    p.expect_rst(304, rcv_nxt=101)
    assert conn.state_name == "CLOSED" and len(d.stack.tcp) == 0
    p.send("ACK", 101, 304)
    p.expect("RST", seq=304)  # the TCB is gone: RFC 9293 §3.10.7.1


def test_close_with_unread_data_sends_rst() -> None:
    """RFC 2525 §2.17 (and RFC 9293 §3.10.4's "reset" option): closing with received data
    unread tells the peer the data was lost, with a RST rather than a FIN."""
    d, p = established()
    conn = d.conn
    assert conn is not None
    p.send("ACK", 101, 301, payload=b"unread")
    d.close()
    while d.outbox and not d.outbox[0].flags & 0x04:
        p.expect("ACK", seq=301, ack=107)  # an ACK of the data may come first
    p.expect_rst(301, rcv_nxt=107)
    assert conn.state_name == "CLOSED" and len(d.stack.tcp) == 0


def test_time_wait_lasts_2msl_then_the_connection_leaves_the_table() -> None:
    """RFC 9293 §3.10.7.4 (TIME-WAIT) and §3.4.2: the TCB lives 2*MSL after the last ACK."""
    d, p = established(TcpConfig(msl=30.0))
    conn = d.conn
    assert conn is not None
    d.close()
    p.expect("FIN,ACK", seq=301, ack=101)
    p.send("FIN,ACK", 101, 302, at=0.5)
    p.expect("ACK", seq=302, ack=102)
    assert conn.state_name == "TIME-WAIT"
    d.run_until(0.5 + 60.0 - 0.001)
    assert conn.state_name == "TIME-WAIT" and len(d.stack.tcp) == 1
    d.run_until(0.5 + 60.0)
    assert conn.state_name == "CLOSED" and len(d.stack.tcp) == 0
    p.expect_nothing()


def test_retransmitted_fin_in_time_wait_is_acked_and_restarts_2msl() -> None:
    """RFC 9293 §3.10.7.4: in TIME-WAIT the only thing that can arrive is the peer's FIN again;
    acknowledge it and restart the 2 MSL timeout."""
    d, p = established(TcpConfig(msl=30.0))
    conn = d.conn
    assert conn is not None
    d.close()
    p.expect("FIN,ACK", seq=301)
    p.send("FIN,ACK", 101, 302)
    p.expect("ACK", seq=302, ack=102)
    p.send("FIN,ACK", 101, 302, at=40.0)  # our ACK was lost
    p.expect("ACK", seq=302, ack=102, at=40.0)
    d.run_until(60.5)
    assert conn.state_name == "TIME-WAIT"
    d.run_until(100.0)
    assert len(d.stack.tcp) == 0


def test_rst_in_time_wait_is_ignored() -> None:
    """RFC 1337 §3 (TIME-WAIT assassination, fix F1): a RST does not end TIME-WAIT early."""
    d, p = established()
    conn = d.conn
    assert conn is not None
    d.close()
    p.expect("FIN,ACK", seq=301)
    p.send("FIN,ACK", 101, 302)
    p.expect("ACK", seq=302, ack=102)
    p.send("RST", 102)
    p.expect_nothing()
    assert conn.state_name == "TIME-WAIT" and len(d.stack.tcp) == 1


# ====================================================================== acceptability

# RFC 9293 §3.10.7.4, first check, with RCV.NXT = 101 and RCV.WND = 4096:
#
#   Segment Length  Receive Window  Test
#   0               0               SEG.SEQ = RCV.NXT
#   0               >0              RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND
#   >0              0               not acceptable
#   >0              >0              RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND
#                                   or RCV.NXT =< SEG.SEQ+SEG.LEN-1 < RCV.NXT+RCV.WND
#
# An unacceptable segment (not a RST) is answered <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> and dropped.
# One deliberate difference, as in Linux's tcp_sequence(): an empty segment exactly at the right
# edge (SEG.SEQ = RCV.NXT+RCV.WND) is accepted, since a peer that filled the window we offered
# sends its ACKs there; a segment with data there has its data dropped and its ACK processed.

ACCEPTABILITY = [
    # name, SEG.SEQ, SEG.LEN, acceptable
    ("empty at RCV.NXT", 101, 0, True),
    ("empty at the right edge - 1", 101 + 4095, 0, True),
    ("empty at the right edge", 101 + 4096, 0, True),
    ("empty below RCV.NXT", 100, 0, False),
    ("data at RCV.NXT", 101, 10, True),
    ("data starting below RCV.NXT, ending inside", 96, 10, True),
    ("data starting inside, ending beyond the window", 101 + 4090, 10, True),
    ("data wholly below RCV.NXT", 80, 10, False),
    ("data wholly beyond the window", 101 + 4096, 10, False),
]


@pytest.mark.parametrize(("seq", "length", "acceptable"), [a[1:] for a in ACCEPTABILITY],
                         ids=[a[0] for a in ACCEPTABILITY])
def test_segment_acceptability_with_an_open_window(seq: int, length: int, acceptable: bool) -> None:
    """RFC 9293 §3.10.7.4, the acceptability table, receive window open."""
    d, p = established(TcpConfig(rcvbuf=4096))
    conn = d.conn
    assert conn is not None and conn.rcv_adv - conn.rcv_nxt == 4096
    p.send("ACK", seq, 301, payload=bytes(range(length)))
    if acceptable:
        if length == 0:
            p.expect_nothing()
        else:
            assert conn.rcv_nxt > 101 or conn._ooo, d.failure("acceptable data was not taken")
    else:
        p.expect("ACK", seq=301, ack=101)
        assert conn.rcv_nxt == 101 and not conn._ooo
    assert conn.state_name == "ESTABLISHED"


def _zero_window() -> tuple[Dut, Peer]:
    """ESTABLISHED with RCV.WND = 0: the peer filled our 4 KiB buffer and nobody reads."""
    d, p = established(TcpConfig(rcvbuf=4096))
    d.send(b"q" * 100)
    p.expect("ACK", seq=301, payload=b"q" * 100)
    p.send("ACK", 101, 301, payload=bytes(1460))
    p.send("ACK", 1561, 301, payload=bytes(1460))
    p.expect("ACK", seq=401, ack=3021, window=1176)  # every second full segment (RFC 5681 §4.2)
    p.send("ACK", 3021, 301, payload=bytes(1176))
    p.expect("ACK", seq=401, ack=4197, window=0, at=0.04)  # a delayed ACK
    return d, p


def test_zero_window_accepts_an_empty_segment_at_rcv_nxt() -> None:
    """RFC 9293 §3.10.7.4: length 0, window 0: acceptable iff SEG.SEQ = RCV.NXT (so its ACK counts)."""
    d, p = _zero_window()
    conn = d.conn
    assert conn is not None
    p.send("ACK", 4197, 401)
    p.expect_nothing()
    assert conn.snd_una == 401


def test_zero_window_refuses_an_empty_segment_past_rcv_nxt() -> None:
    """RFC 9293 §3.10.7.4: length 0, window 0, SEG.SEQ != RCV.NXT: not acceptable, ACK it."""
    d, p = _zero_window()
    conn = d.conn
    assert conn is not None
    p.send("ACK", 4198, 401)
    p.expect("ACK", seq=401, ack=4197, window=0)
    assert conn.snd_una == 301


def test_zero_window_refuses_data_but_still_takes_its_ack() -> None:
    """RFC 9293 §3.10.7.4: with a zero window no data is acceptable, "but special allowance
    should be made to accept valid ACKs, URGs, and RSTs"."""
    d, p = _zero_window()
    conn = d.conn
    assert conn is not None
    p.send("ACK", 4197, 401, payload=b"!")
    p.expect("ACK", seq=401, ack=4197, window=0)
    assert conn.unread == 4096
    p.assert_that(conn.snd_una == 401, f"SND.UNA={conn.snd_una}: the ACK of a refused data segment was ignored")


def test_zero_window_still_takes_an_exact_rst() -> None:
    """RFC 9293 §3.10.7.4: RSTs are accepted with a zero window (at RCV.NXT, RFC 5961 §3.2)."""
    d, p = _zero_window()
    conn = d.conn
    assert conn is not None
    p.send("RST", 4197)
    assert conn.state_name == "CLOSED"
    assert conn.recv() == bytes(4096)  # what was received is still delivered, then the error
    with pytest.raises(ConnectionResetError):
        conn.recv()


# ====================================================================== receiving data


def test_out_of_order_segments_are_held_and_reassembled() -> None:
    """RFC 9293 §3.10.7.4 (seventh, "segments with higher beginning sequence numbers may be
    held"), RFC 5681 §4.2: each out-of-order segment is acknowledged at once (a duplicate
    ACK), and so is the segment that fills the gap."""
    d, p = established()
    conn = d.conn
    assert conn is not None
    p.send("ACK", 201, 301, payload=b"B" * 100)
    p.expect("ACK", seq=301, ack=101)
    p.send("ACK", 301, 301, payload=b"C" * 100)
    p.expect("ACK", seq=301, ack=101)
    assert conn.unread == 0
    p.send("ACK", 101, 301, payload=b"A" * 100)
    p.expect("ACK", seq=301, ack=401)
    assert d.recv() == b"A" * 100 + b"B" * 100 + b"C" * 100


def test_duplicate_data_is_acked_and_not_delivered_twice() -> None:
    """RFC 9293 §3.10.7.4: an old segment is unacceptable: ACK it, drop it."""
    d, p = established()
    p.send("ACK", 101, 301, payload=b"once")
    p.send("ACK", 101, 301, payload=b"once")
    p.expect("ACK", seq=301, ack=105)
    p.expect_nothing(1.0)
    assert d.recv() == b"once"
    assert d.recv() is None


def test_overlapping_segment_delivers_only_the_new_bytes() -> None:
    """RFC 9293 §3.10.7.4: a segment that starts before RCV.NXT is trimmed to its new part."""
    d, p = established()
    p.send("ACK", 101, 301, payload=b"hello ")
    p.send("ACK", 104, 301, payload=b"lo world")  # 3 old bytes, 5 new
    p.expect("ACK", seq=301, ack=112)
    assert d.recv() == b"hello world"


def test_overlapping_out_of_order_segments_merge() -> None:
    """RFC 9293 §3.10.7.4 / RFC 2018 §4: overlapping held segments form one block."""
    d, p = established(options=TcpOptions(mss=MSS, sack_permitted=True))
    p.send("ACK", 111, 301, payload=b"bcdefghij")  # 111..120
    p.expect("ACK", seq=301, ack=101, sack=[(111, 120)])
    p.send("ACK", 115, 301, payload=b"fghijklmn")  # 115..124, overlapping
    p.expect("ACK", seq=301, ack=101, sack=[(111, 124)])
    p.send("ACK", 101, 301, payload=b"0123456789")
    p.expect("ACK", seq=301, ack=124)
    assert d.recv() == b"0123456789bcdefghijklmn"


def test_data_beyond_the_window_is_trimmed() -> None:
    """RFC 9293 §3.10.7.4: the part of a segment beyond the window is not taken."""
    d, p = established(TcpConfig(rcvbuf=4096))
    p.send("ACK", 101, 301, payload=bytes(5000))
    p.expect("ACK", seq=301, ack=101 + 4096, window=0)
    assert d.recv() == bytes(4096)


# ====================================================================== blind attacks, RFC 5961


def test_rst_with_the_exact_sequence_number_resets_the_connection() -> None:
    """RFC 5961 §3.2 / RFC 9293 §3.10.7.4: a RST at exactly RCV.NXT resets: ECONNRESET."""
    d, p = established()
    conn = d.conn
    assert conn is not None
    p.send("RST", 101)
    p.expect_nothing()
    assert conn.state_name == "CLOSED" and len(d.stack.tcp) == 0
    with pytest.raises(ConnectionResetError):
        conn.recv()
    with pytest.raises(ConnectionResetError):
        conn.send(b"x")


def test_inexact_rst_in_window_gets_a_challenge_ack() -> None:
    """RFC 5961 §3.2: a RST inside the window but not at RCV.NXT gets a challenge ACK; the
    real peer then sends a RST at RCV.NXT, an attacker cannot."""
    d, p = established()
    conn = d.conn
    assert conn is not None
    p.send("RST", 101 + 1000)
    p.expect("ACK", seq=301, ack=101)
    assert conn.state_name == "ESTABLISHED"
    p.send("RST", 101)
    assert conn.state_name == "CLOSED"


def test_rst_outside_the_window_is_ignored() -> None:
    """RFC 5961 §3.2 / RFC 9293 §3.10.7.4: an out-of-window RST is silently dropped."""
    d, p = established()
    conn = d.conn
    assert conn is not None
    p.send("RST", 101 + 70000)
    p.send("RST", 100)
    p.expect_nothing()
    assert conn.state_name == "ESTABLISHED"


@pytest.mark.parametrize("seq", [101, 101 + 500, 101 + 1_000_000], ids=["at RCV.NXT", "in window", "out of window"])
def test_syn_in_established_gets_a_challenge_ack(seq: int) -> None:
    """RFC 5961 §4.2: a SYN in a synchronized state, whatever its sequence number, gets an
    ACK and the connection stays (no reset, RFC 9293 §3.10.7.4 fourth check)."""
    d, p = established()
    conn = d.conn
    assert conn is not None
    p.send("SYN", seq, options=TcpOptions(mss=MSS))
    p.expect("ACK", seq=301, ack=101)
    assert conn.state_name == "ESTABLISHED"


def test_data_with_an_ack_of_unsent_data_is_dropped_with_an_ack() -> None:
    """RFC 5961 §5.2 / RFC 9293 §3.10.7.4 fifth check: SEG.ACK > SND.NXT: send an ACK, drop the
    segment, data included."""
    d, p = established()
    conn = d.conn
    assert conn is not None
    p.send("ACK", 101, 301 + 1000, payload=b"spoofed")
    p.expect("ACK", seq=301, ack=101)
    assert conn.rcv_nxt == 101 and conn.unread == 0


def test_data_with_an_ack_too_far_below_snd_una_is_dropped_with_an_ack() -> None:
    """RFC 5961 §5.2: acceptable ACKs are SND.UNA - MAX.SND.WND =< SEG.ACK =< SND.NXT;
    below that, drop the segment (data too) and send an ACK."""
    d, p = established(window=1000)
    conn = d.conn
    assert conn is not None
    d.send(b"x" * 3000)
    for i in range(3):  # 1000 bytes per round trip through the peer's 1000-byte window
        p.expect("ACK", seq=301 + 1000 * i, data_len=1000)
        p.send("ACK", 101, 1301 + 1000 * i, window=1000)
    assert conn.snd_una == 3301 and conn.max_snd_wnd == 1000
    p.send("ACK", 101, 2300, window=1000, payload=b"too old")  # 3301 - 1000 - 1
    p.expect("ACK", seq=3301, ack=101)
    assert conn.unread == 0
    p.send("ACK", 101, 2301, window=1000, payload=b"old enough")  # exactly at the limit
    assert d.recv() == b"old enough"


def test_challenge_acks_are_rate_limited() -> None:
    """RFC 5961 §7: challenge ACKs are throttled (seqs: 1000 a second per stack, like Linux's
    tcp_challenge_ack_limit), so a flood of blind RSTs cannot make us a traffic amplifier."""
    d, p = established()
    conn = d.conn
    assert conn is not None
    for i in range(1010):
        p.send("RST", 101 + 1 + i)
    acks = p.drain()
    assert len(acks) == 1000, d.failure(f"{len(acks)} challenge ACKs for 1010 RSTs at one instant")
    assert d.stack.stats.drops.get("tcp_challenge_ack_limited") == 10
    p.send("RST", 200, at=d.now + 0.01)  # 10 ms later, 10 more are allowed
    p.expect("ACK", seq=301, ack=101)
    assert conn.state_name == "ESTABLISHED"


def test_paws_drops_a_segment_with_an_old_timestamp() -> None:
    """RFC 7323 §5.3: a segment whose TSval is older than TS.Recent is dropped and ACKed."""
    d = Dut()
    p = Peer(d)
    conn = p.open_passive(options=TcpOptions(mss=MSS, timestamp=(5000, 0)))
    tsval = conn._ts_now(d.now)
    p.send("ACK", 101, 301, payload=b"new", options=TcpOptions(timestamp=(5010, tsval)))
    assert d.recv() == b"new"
    p.send("ACK", 104, 301, payload=b"old", options=TcpOptions(timestamp=(5005, tsval)))
    p.expect("ACK", seq=301, ack=104, tsecr=5010)
    assert conn.unread == 0 and d.stack.stats.drops.get("tcp_paws_rejected") == 1
    p.send("ACK", 104, 301, payload=b"ok!", options=TcpOptions(timestamp=(5011, tsval)))
    assert d.recv() == b"ok!"


def test_timestamp_echo_follows_the_segment_at_rcv_nxt() -> None:
    """RFC 7323 §4.3: TS.Recent is taken from the segment that covers RCV.NXT, so an
    out-of-order segment's TSval is not echoed."""
    d = Dut()
    p = Peer(d)
    conn = p.open_passive(options=TcpOptions(mss=MSS, timestamp=(5000, 0)))
    tsval = conn._ts_now(d.now)
    p.send("ACK", 201, 301, payload=b"x" * 100, options=TcpOptions(timestamp=(6000, tsval)))
    p.expect("ACK", seq=301, ack=101, tsecr=5001)
    p.send("ACK", 101, 301, payload=b"y" * 100, options=TcpOptions(timestamp=(5500, tsval)))
    p.expect("ACK", seq=301, ack=301, tsecr=5500)


# ====================================================================== no connection


def test_segment_with_ack_to_a_closed_port_gets_rst_at_its_ack() -> None:
    """RFC 9293 §3.10.7.1: if the ACK bit is on, <SEQ=SEG.ACK><CTL=RST>."""
    d = Dut()
    p = Peer(d, dut_port=81)
    p.send("ACK", 100, 5000, payload=b"data")
    p.expect("RST", seq=5000)


def test_segment_without_ack_to_a_closed_port_gets_rst_ack() -> None:
    """RFC 9293 §3.10.7.1: if the ACK bit is off, <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>,
    SEG.LEN counting SYN and FIN."""
    d = Dut()
    p = Peer(d, dut_port=81)
    p.send("SYN", 100, options=TcpOptions(mss=MSS))
    p.expect("RST,ACK", seq=0, ack=101)
    p.send("FIN", 200, payload=b"hello")
    p.expect("RST,ACK", seq=0, ack=206)
    assert len(d.stack.tcp) == 0


def test_rst_to_a_closed_port_is_not_answered() -> None:
    """RFC 9293 §3.10.7.1: an incoming segment containing a RST is discarded."""
    d = Dut()
    p = Peer(d, dut_port=81)
    p.send("RST", 100)
    p.send("RST,ACK", 100, 5000)
    p.expect_nothing()


# ====================================================================== retransmission, RFC 6298


def test_syn_is_retransmitted_after_1s_with_exponential_backoff() -> None:
    """RFC 6298 §2.1 (initial RTO 1 s) and §5.5 (double it on each expiry)."""
    d = Dut()
    p = Peer(d)
    d.connect(40000, local_port=80)
    p.expect("SYN", seq=300, at=0.0)
    for t in (1.0, 3.0, 7.0, 15.0):
        p.expect("SYN", seq=300, at=t)


def test_syn_retries_limit_fails_the_connect_with_etimedout() -> None:
    """RFC 9293 §3.8.3 (R2 for SYNs, at least 3 minutes in RFC 1122; seqs like Linux: 6
    retries, giving up 127 s after the first SYN)."""
    d = Dut()
    p = Peer(d)
    conn = d.connect(40000, local_port=80)
    for t in (0.0, 1.0, 3.0, 7.0, 15.0, 31.0, 63.0):
        p.expect("SYN", seq=300, at=t)
    p.expect_nothing(63.0)
    d.run_until(127.0)
    assert conn.state_name == "CLOSED" and conn.error == errno.ETIMEDOUT
    assert len(d.stack.tcp) == 0
    with pytest.raises(TimeoutError):
        conn.recv()


def _active(rtt: float, config: TcpConfig | None = None, window: int = 65535) -> tuple[Dut, Peer]:
    """ESTABLISHED by our active open, the SYN,ACK arriving ``rtt`` after the SYN: one RTT
    sample R, so SRTT = R, RTTVAR = R/2 and RTO = R + 4*R/2 = 3R (RFC 6298 §2.2)."""
    d = Dut(config=config)
    p = Peer(d)
    d.connect(40000, local_port=80)
    p.expect("SYN", seq=300)
    p.send("SYN,ACK", 100, 301, window=window, options=TcpOptions(mss=MSS), at=rtt)
    p.expect("ACK", seq=301, ack=101)
    return d, p


def test_rto_comes_from_the_rtt_sample() -> None:
    """RFC 6298 §2.2: after the first sample R the RTO is R + max(G, 4 * R/2)."""
    d, p = _active(0.1)
    d.send(b"data")
    p.expect("ACK", seq=301, payload=b"data", at=0.1)
    p.expect("ACK", seq=301, payload=b"data", at=0.1 + 0.3)


def test_rto_is_clamped_to_rto_min() -> None:
    """RFC 6298 §2.4 (seqs' rto_min, 200 ms by default like Linux): a 1 ms RTT still waits 200 ms."""
    d, p = _active(0.001)
    d.send(b"data")
    p.expect("ACK", seq=301, payload=b"data", at=0.001)
    p.expect("ACK", seq=301, payload=b"data", at=0.201)


def test_rto_backs_off_doubling_up_to_rto_max() -> None:
    """RFC 6298 §5.5 (double), §2.5 (a maximum may be placed, at least 60 s)."""
    d, p = _active(0.1, TcpConfig(rto_max=5.0, max_retries=10))
    d.send(b"data")
    t = 0.1
    p.expect("ACK", seq=301, at=t)
    for interval in (0.3, 0.6, 1.2, 2.4, 4.8, 5.0, 5.0):
        t += interval
        p.expect("ACK", seq=301, payload=b"data", at=t)


def test_an_ack_of_new_data_restarts_the_timer() -> None:
    """RFC 6298 §5.3: when an ACK acknowledges new data, restart the timer at RTO."""
    d, p = _active(0.1)
    d.send(b"a" * 1460 + b"b" * 1460)
    p.expect("ACK", seq=301, data_len=1460, at=0.1)
    p.expect("ACK", seq=1761, data_len=1460, at=0.1)
    p.send("ACK", 101, 1761, at=0.35)  # one RTT sample of 0.25: RTO 0.1 + ... recomputed
    rto = d.conn.rtt.rto  # type: ignore[union-attr]
    p.expect("ACK", seq=1761, data_len=1460, at=0.35 + rto)


def test_karn_no_rtt_sample_from_a_retransmitted_segment() -> None:
    """RFC 6298 §3 (Karn's algorithm) and §5.5: the ACK of a retransmitted segment gives no
    RTT sample, and the backed-off RTO is kept for the next segment.  (Without timestamps:
    with them, RFC 7323 §4 makes every ACK an unambiguous sample.)"""
    d, p = _active(0.1, TcpConfig(timestamps=False))
    conn = d.conn
    assert conn is not None
    d.send(b"first")
    p.expect("ACK", seq=301, payload=b"first", at=0.1)
    p.expect("ACK", seq=301, payload=b"first", at=0.4)  # RTO 0.3, now backed off to 0.6
    p.send("ACK", 101, 306, at=0.45)  # was it the first or the second copy?  Nobody knows.
    assert conn.rtt.srtt == pytest.approx(0.1), "an RTT sample was taken from a retransmission"
    d.send(b"second")
    p.expect("ACK", seq=306, payload=b"second", at=0.45)
    p.expect("ACK", seq=306, payload=b"second", at=0.45 + 0.6)


def test_retransmission_limit_ends_a_dead_connection_with_etimedout() -> None:
    """RFC 9293 §3.8.3 (R2) / RFC 1122 §4.2.3.5: after too many retransmissions the
    connection is closed and the user told ETIMEDOUT; the TCB is deleted."""
    d, p = _active(0.1, TcpConfig(max_retries=3))
    conn = d.conn
    assert conn is not None
    d.send(b"hello?")
    t = 0.1
    p.expect("ACK", seq=301, at=t)
    for interval in (0.3, 0.6, 1.2):
        t += interval
        p.expect("ACK", seq=301, payload=b"hello?", at=t)
    p.expect_nothing(2.3)
    d.run_until(t + 2.4 + 1e-9)
    assert conn.state_name == "CLOSED" and conn.error == errno.ETIMEDOUT
    assert len(d.stack.tcp) == 0
    with pytest.raises(TimeoutError):
        conn.send(b"x")


def test_rto_is_3s_when_data_starts_after_a_syn_timeout() -> None:
    """RFC 6298 §5.7: if the SYN's timer expired and the RTO is below 3 s, it MUST be set to
    3 s when data transmission begins (no RTT sample came from the handshake, by Karn)."""
    d = Dut(config=TcpConfig(timestamps=False))
    p = Peer(d)
    conn = d.connect(40000, local_port=80)
    p.expect("SYN", seq=300, at=0.0)
    p.expect("SYN", seq=300, at=1.0)
    p.send("SYN,ACK", 100, 301, options=TcpOptions(mss=MSS), at=1.1)
    p.expect("ACK", seq=301, ack=101)
    d.send(b"data")
    p.expect("ACK", seq=301, payload=b"data", at=1.1)
    p.expect("ACK", seq=301, payload=b"data", at=4.1)
    assert conn.rtt.srtt is None


# ====================================================================== congestion control


def _fill(d: Dut, p: Peer, n: int) -> list[int]:
    """Everything the stack sends now, as the sequence numbers of the segments (checked full-sized)."""
    seqs = []
    for s in p.drain():
        assert len(s.payload) == MSS, d.failure(f"a {len(s.payload)}-byte segment where {MSS} was expected")
        seqs.append(s.seq)
    assert len(seqs) == n, d.failure(f"{len(seqs)} segments sent, expected {n}")
    return seqs


def test_initial_window_is_ten_segments() -> None:
    """RFC 6928 §2: IW = min(10*MSS, max(2*MSS, 14600)), i.e. 10 segments of 1460 bytes;
    that many go out before the first ACK, and no more."""
    d, p = established()
    d.send(bytes(100_000))
    assert _fill(d, p, 10) == [301 + i * MSS for i in range(10)]
    p.expect_nothing()


def test_initial_window_counts_bytes_with_a_small_mss() -> None:
    """RFC 6928 §2 with MSS 536: min(5360, max(1072, 14600)) = 5360 bytes, 10 segments."""
    d, p = established(options=TcpOptions(mss=536))
    d.send(bytes(100_000))
    assert len(p.drain()) == 10
    p.expect_nothing()


def test_initial_window_is_one_segment_after_a_lost_syn() -> None:
    """RFC 5681 §3.1 (and RFC 6928 §2): "if the SYN or SYN/ACK is lost, the initial window
    used by a sender after a correctly transmitted SYN MUST be one segment"."""
    d = Dut(config=TcpConfig(timestamps=False))
    p = Peer(d)
    d.connect(40000, local_port=80)
    p.expect("SYN", seq=300, at=0.0)
    p.expect("SYN", seq=300, at=1.0)  # the first one was lost
    p.send("SYN,ACK", 100, 301, options=TcpOptions(mss=MSS), at=1.1)
    p.expect("ACK", seq=301, ack=101)
    d.send(bytes(100_000))
    assert len(p.drain()) == 1, d.failure("more than one segment before the first ACK")


def test_slow_start_grows_the_window_by_one_segment_per_ack() -> None:
    """RFC 5681 §3.1: in slow start each ACK of new data grows cwnd by up to SMSS, so an ACK
    for one segment releases two."""
    d, p = established()
    d.send(bytes(200_000))
    first = _fill(d, p, 10)
    for seq in first:
        p.send("ACK", 101, seq + MSS)
        _fill(d, p, 2)
    assert d.conn is not None and d.conn.cc.cwnd == 20 * MSS


def test_congestion_avoidance_grows_the_window_by_one_segment_per_rtt() -> None:
    """RFC 5681 §3.1 eq. 3: above ssthresh cwnd grows by about SMSS per round trip; ACKing a
    whole window of 10 segments one at a time releases 10 + 1 segments (NewReno)."""
    d, p = established(TcpConfig(congestion="newreno"))
    conn = d.conn
    assert conn is not None
    conn.cc.ssthresh = conn.cc.cwnd  # as a loss would have left it: congestion avoidance
    d.send(bytes(200_000))
    first = _fill(d, p, 10)
    for seq in first[:-1]:
        p.send("ACK", 101, seq + MSS)
        _fill(d, p, 1)
    p.send("ACK", 101, first[-1] + MSS)
    _fill(d, p, 2)
    assert conn.cc.cwnd == 11 * MSS


def test_fast_retransmit_on_the_third_duplicate_ack() -> None:
    """RFC 5681 §3.2: the third duplicate ACK retransmits the missing segment at once, and
    ssthresh drops to max(FlightSize/2, 2*SMSS) (NewReno)."""
    d, p = established(TcpConfig(congestion="newreno"))
    conn = d.conn
    assert conn is not None
    d.send(bytes(10 * MSS))
    _fill(d, p, 10)
    p.send("ACK", 101, 1761)  # segment 1 arrived, segment 2 was lost
    p.send("ACK", 101, 1761)
    p.send("ACK", 101, 1761)
    p.expect_nothing()
    p.send("ACK", 101, 1761)
    p.expect("ACK", seq=1761, data_len=MSS)
    assert conn.in_recovery and conn.cc.ssthresh == 9 * MSS // 2


def test_limited_transmit_sends_new_data_on_the_first_two_duplicate_acks() -> None:
    """RFC 5681 §3.2 step 1 / RFC 3042 §2: on the first and second duplicate ACK a TCP SHOULD
    send a segment of new data, if the receiver's window allows, without changing cwnd."""
    d, p = established(TcpConfig(congestion="newreno"))
    d.send(bytes(20 * MSS))
    seg = _fill(d, p, 10)
    p.send("ACK", 101, seg[1])  # segment 1 arrived, 2 was lost
    _fill(d, p, 2)  # slow start: cwnd + 1 SMSS, one freed
    p.send("ACK", 101, seg[1])
    p.expect("ACK", seq=301 + 12 * MSS, data_len=MSS)
    p.send("ACK", 101, seg[1])
    p.expect("ACK", seq=301 + 13 * MSS, data_len=MSS)


def test_newreno_partial_ack_retransmits_the_next_hole() -> None:
    """RFC 6582 §3.2 step 3: a partial ACK in fast recovery retransmits the first unacknowledged
    segment at once; the full ACK ends recovery with cwnd = min(ssthresh, max(FlightSize, SMSS)
    + SMSS)."""
    d, p = established(TcpConfig(congestion="newreno"))
    conn = d.conn
    assert conn is not None
    d.send(bytes(10 * MSS))
    seg = _fill(d, p, 10)  # segments 2 and 5 (seg[1], seg[4]) are lost
    p.send("ACK", 101, seg[1])
    for _ in range(3):
        p.send("ACK", 101, seg[1])
    p.expect("ACK", seq=seg[1], data_len=MSS)
    for _ in range(4):  # segments 6 to 10 arrive: more duplicate ACKs, nothing new to send
        p.send("ACK", 101, seg[1])
    p.expect_nothing()
    p.send("ACK", 101, seg[4])  # the retransmission filled 2..4: a partial ACK
    p.expect("ACK", seq=seg[4], data_len=MSS)
    assert conn.in_recovery
    end = seg[9] + MSS
    p.send("ACK", 101, end)
    assert not conn.in_recovery
    ssthresh = conn.cc.ssthresh
    assert conn.cc.cwnd == min(ssthresh, max(0, MSS) + MSS), f"cwnd {conn.cc.cwnd} after the full ACK"


def test_sack_blocks_report_out_of_order_data() -> None:
    """RFC 2018 §4: an ACK sent while holding out-of-order data carries SACK blocks."""
    _d, p = established(options=TcpOptions(mss=MSS, sack_permitted=True))
    p.send("ACK", 201, 301, payload=bytes(100))
    p.expect("ACK", seq=301, ack=101, sack=[(201, 301)])
    p.send("ACK", 401, 301, payload=bytes(100))
    p.expect("ACK", seq=301, ack=101, sack=[(401, 501), (201, 301)])
    p.send("ACK", 101, 301, payload=bytes(100))
    p.expect("ACK", seq=301, ack=301, sack=[(401, 501)])
    p.send("ACK", 301, 301, payload=bytes(100))
    p.expect("ACK", seq=301, ack=501, sack=ABSENT)


def test_first_sack_block_is_the_one_holding_the_most_recent_segment() -> None:
    """RFC 2018 §4: the first SACK block MUST be the block containing the segment that
    triggered the ACK; the others repeat the most recently reported blocks."""
    _d, p = established(options=TcpOptions(mss=MSS, sack_permitted=True))
    p.send("ACK", 201, 301, payload=bytes(100))   # block 201-301
    p.expect("ACK", seq=301, ack=101, sack=[(201, 301)])
    p.send("ACK", 401, 301, payload=bytes(100))   # block 401-501
    p.expect("ACK", seq=301, ack=101, sack=[(401, 501), (201, 301)])
    p.send("ACK", 301, 301, payload=bytes(50))    # grows the lower block to 201-351
    p.expect("ACK", seq=301, ack=101, sack=[(201, 351), (401, 501)])


def test_sender_retransmits_only_the_holes_sack_reports() -> None:
    """RFC 6675 §5 (and RFC 2018 §1): with SACK, recovery retransmits the missing segments
    (3 and 6 here) and none of those the receiver already holds."""
    d, p = established(options=TcpOptions(mss=MSS, sack_permitted=True))
    d.send(bytes(10 * MSS))
    seg = _fill(d, p, 10)
    end = [s + MSS for s in seg]
    sent: list[tuple[int, int]] = []

    def peer_acks(ack: int, *blocks: tuple[int, int]) -> None:
        p.send("ACK", 101, ack, options=TcpOptions(sack=blocks))
        sent.extend((s.seq, len(s.payload)) for s in p.drain())

    peer_acks(end[0])
    peer_acks(end[1])
    peer_acks(end[1], (seg[3], end[3]))
    peer_acks(end[1], (seg[3], end[4]))
    peer_acks(end[1], (seg[6], end[6]), (seg[3], end[4]))
    assert sent and sent[0] == (seg[2], MSS), d.failure("no fast retransmit of segment 3")
    peer_acks(end[1], (seg[6], end[7]), (seg[3], end[4]))
    peer_acks(end[1], (seg[6], end[8]), (seg[3], end[4]))
    peer_acks(end[1], (seg[6], end[9]), (seg[3], end[4]))
    peer_acks(end[4], (seg[6], end[9]))  # segment 3 arrived
    if (seg[5], MSS) not in sent:
        peer_acks(end[4], (seg[6], end[9]))
    peer_acks(end[9])
    assert sorted(sent) == [(seg[2], MSS), (seg[5], MSS)], d.failure(f"retransmitted {sent}")
    assert d.conn is not None and not d.conn.in_recovery


# ====================================================================== flow control


def test_receiver_sws_avoidance_no_small_window_increases() -> None:
    """RFC 9293 §3.8.6.2.2 (RFC 1122 §4.2.3.3): a closed window is not reopened by less
    than min(RCV.BUFF/2, Eff.snd.MSS), neither in a window update nor in the answer to a
    probe."""
    d, p = established(TcpConfig(rcvbuf=4096))
    p.send("ACK", 101, 301, payload=bytes(1460))
    p.send("ACK", 1561, 301, payload=bytes(1460))
    p.expect("ACK", seq=301, ack=3021, window=1176)
    p.send("ACK", 3021, 301, payload=bytes(1176))
    p.expect("ACK", seq=301, ack=4197, window=0)
    assert d.recv(100) == bytes(100)
    p.expect_nothing()
    p.send("ACK", 4196, 301, at=1.0)  # a zero-window probe
    p.expect("ACK", seq=301, ack=4197, window=0)
    assert d.recv(1000) == bytes(1000)  # 1100 free: less than min(2048, 1460)
    p.send("ACK", 4196, 301, at=2.0)
    p.expect("ACK", seq=301, ack=4197, window=0)
    assert d.recv(948) == bytes(948)  # 2048 free: half the buffer
    p.expect("ACK", seq=301, ack=4197, window=2048)


def test_nagle_coalesces_small_writes_while_data_is_unacknowledged() -> None:
    """RFC 9293 §3.7.4 (RFC 896, RFC 1122 §4.2.3.4): a small segment goes out only when
    nothing is unacknowledged; small writes meanwhile wait and leave as one segment."""
    d, p = established()
    d.send(b"a")
    p.expect("ACK", seq=301, payload=b"a")
    d.send(b"b")
    d.send(b"c")
    p.expect_nothing(0.1)
    p.send("ACK", 101, 302, at=0.1)
    p.expect("ACK", seq=302, payload=b"bc", at=0.1)


def test_nodelay_sends_small_writes_at_once() -> None:
    """RFC 1122 §4.2.3.4: an application can disable Nagle (TCP_NODELAY)."""
    d, p = established(TcpConfig(nodelay=True))
    d.send(b"a")
    d.send(b"b")
    d.send(b"c")
    p.expect("ACK", seq=301, payload=b"a")
    p.expect("ACK", seq=302, payload=b"b")
    p.expect("ACK", seq=303, payload=b"c")


def test_sender_sws_avoidance_waits_for_a_useful_window() -> None:
    """RFC 9293 §3.8.6.2.1: with more data queued than the usable window, send only when the
    window allows a full segment or at least half the largest window seen."""
    d, p = established(window=10_000)
    d.send(bytes(30_000))
    sent = p.drain()
    assert sum(len(s.payload) for s in sent) == 6 * MSS  # 8760; the last 1240 bytes wait
    p.send("ACK", 101, 301 + 500, window=10_000)  # usable window 1740: a full segment fits
    p.expect("ACK", seq=301 + 6 * MSS, data_len=MSS)
    p.expect_nothing()  # 280 usable: under both MSS and half the window


def test_reading_sends_no_window_update_the_window_field_cannot_show() -> None:
    """RFC 9293 §3.8.6.2.2 (receiver SWS avoidance): without window scaling a 256 KiB buffer
    still advertises 65535; reading 100 bytes would move the right edge by 100 bytes only,
    so no window update is sent."""
    d, p = established()
    p.send("ACK", 101, 301, payload=bytes(100))
    p.expect("ACK", seq=301, ack=201, window=65535, at=0.04)
    assert d.recv() == bytes(100)
    p.expect_nothing()


def test_delayed_ack_for_every_second_full_segment() -> None:
    """RFC 9293 §3.8.6.3 / RFC 5681 §4.2: an ACK for at least every second full-sized segment."""
    _d, p = established()
    p.send("ACK", 101, 301, payload=bytes(MSS))
    p.expect_nothing()
    p.send("ACK", 101 + MSS, 301, payload=bytes(MSS))
    p.expect("ACK", seq=301, ack=101 + 2 * MSS, at=0.0)


def test_delayed_ack_timer_acks_a_lone_segment() -> None:
    """RFC 9293 §3.8.6.3 (RFC 1122 §4.2.3.2): a lone segment is ACKed within the delayed-ACK
    timer (seqs: 40 ms; it MUST be under 0.5 s)."""
    _d, p = established()
    p.send("ACK", 101, 301, payload=b"lonely", at=1.0)
    p.expect("ACK", seq=301, ack=107, at=1.04)


def test_zero_window_probing_backs_off_and_resumes_when_the_window_opens() -> None:
    """RFC 9293 §3.8.6.1 and RFC 1122 §4.2.2.17: probe a zero window after an RTO, with
    exponential backoff; send as soon as the peer opens it.  The probe is an ACK below the
    window (SEQ = SND.UNA-1, as Linux sends), which any TCP must answer."""
    d, p = established()  # no RTT sample yet: RTO 1 s
    p.send("ACK", 101, 301, window=0)
    d.send(b"waiting")
    p.expect_nothing()
    for t in (1.0, 3.0, 7.0, 15.0):
        p.expect("ACK", seq=300, ack=101, data_len=0, at=t)
        p.send("ACK", 101, 301, window=0)
    p.send("ACK", 101, 301, window=1000, at=20.0)
    p.expect("ACK", seq=301, payload=b"waiting", at=20.0)


def test_zero_window_kept_closed_does_not_kill_a_peer_that_answers_probes() -> None:
    """RFC 1122 §4.2.2.17: a receiver MAY keep its window closed indefinitely; as long as it
    answers the probes the sender MUST keep the connection open."""
    d, p = established()
    conn = d.conn
    assert conn is not None
    p.send("ACK", 101, 301, window=0)
    d.send(b"waiting")
    for _ in range(40):
        probe = p.expect("ACK", seq=300, data_len=0)
        p.send("ACK", 101, 301, window=0)
    assert probe.time > 1800.0
    p.assert_that(conn.state_name == "ESTABLISHED", "the connection died while the peer answered")
    p.send("ACK", 101, 301, window=1000)
    p.expect("ACK", seq=301, payload=b"waiting")


def test_zero_window_probes_unanswered_end_the_connection() -> None:
    """RFC 1122 §4.2.2.17 only protects a peer that answers: when the probes go unanswered
    the connection dies like any other (ETIMEDOUT, RFC 9293 §3.8.3)."""
    d, p = established(TcpConfig(max_retries=2))
    conn = d.conn
    assert conn is not None
    p.send("ACK", 101, 301, window=0)
    d.send(b"waiting")
    for _ in range(5):  # max_retries + 3 probes
        p.expect("ACK", seq=300, data_len=0)
    d.run_until(d.now + 3600.0)
    assert conn.state_name == "CLOSED" and conn.error == errno.ETIMEDOUT and len(d.stack.tcp) == 0


def test_keepalive_is_off_by_default() -> None:
    """RFC 1122 §4.2.3.6 (RFC 9293 §3.8.4): keep-alives MUST default to off."""
    d, p = established()
    p.expect_nothing(3 * 3600.0)
    assert d.conn is not None and d.conn.state_name == "ESTABLISHED"


KEEPALIVE = TcpConfig(keepalive=True, keepalive_idle=10.0, keepalive_interval=5.0, keepalive_count=3)


def test_keepalive_probes_an_idle_connection() -> None:
    """RFC 1122 §4.2.3.6: after the idle interval, a probe (SEQ = SND.NXT-1, no data);
    an answered probe restarts the idle clock."""
    _d, p = established(KEEPALIVE)
    p.expect("ACK", seq=300, ack=101, data_len=0, at=10.0)
    p.send("ACK", 101, 301)
    p.expect("ACK", seq=300, ack=101, data_len=0, at=20.0)
    p.send("ACK", 101, 301, at=21.0)
    p.expect("ACK", seq=300, ack=101, data_len=0, at=31.0)


def test_keepalive_kills_a_dead_peer_with_etimedout() -> None:
    """RFC 1122 §4.2.3.6 / RFC 9293 §3.8.4: unanswered probes end the connection (ETIMEDOUT)."""
    d, p = established(KEEPALIVE)
    conn = d.conn
    assert conn is not None
    for t in (10.0, 15.0, 20.0):
        p.expect("ACK", seq=300, ack=101, data_len=0, at=t)
    p.expect_nothing(5.0 - 1e-6)
    d.run_until(25.0)
    assert conn.state_name == "CLOSED" and conn.error == errno.ETIMEDOUT
    assert len(d.stack.tcp) == 0
    with pytest.raises(TimeoutError):
        conn.recv()


# ====================================================================== ICMP


def _frag_needed(p: Peer, seq: int, mtu: int) -> None:
    """A router's "fragmentation needed" (RFC 1191 §4) about our segment at ``seq``."""
    ours = TcpSegment(p.dut_port, p.port, seq & 0xFFFFFFFF, 101, 0x10, payload=bytes(1460))
    quoted = wip.Ipv4Header(DUT, PEER, wip.PROTO_TCP).emit(ours.emit(DUT, PEER))[:28]
    msg = IcmpMessage(3, 4, mtu & 0xFFFF, quoted)
    p.send_icmp(msg, f"ICMP frag-needed mtu {mtu} for <SEQ={seq}>", src=wip.aton("10.0.0.254"))


DUT = wip.aton("10.0.0.1")
PEER = wip.aton("10.0.0.2")


def test_icmp_frag_needed_lowers_the_mss() -> None:
    """RFC 1191 §6.5 (and RFC 5927 §4.1): "fragmentation needed" for a segment in flight
    lowers the MSS to the next-hop MTU less 40 and retransmits in smaller segments."""
    d, p = established()
    d.send(bytes(2 * 1460))
    sent = p.drain()
    assert [len(s.payload) for s in sent] == [1460, 1460]
    _frag_needed(p, 301, 1000)
    for i in range(3):
        p.expect("ACK", seq=301 + 960 * i, data_len=960)
    p.expect_nothing()  # the last 40 bytes wait for an ACK (Nagle)
    assert d.conn is not None and d.conn.snd_mss == 960


def test_icmp_frag_needed_for_a_sequence_number_not_in_flight_is_ignored() -> None:
    """RFC 5927 §4.1 (and RFC 5961's spirit): an ICMP error quoting a sequence number outside
    SND.UNA..SND.NXT is not about us; an attacker cannot shrink our segments blindly."""
    d, p = established()
    d.send(bytes(1460))
    p.expect("ACK", seq=301, data_len=1460)
    _frag_needed(p, 301 + 100_000, 600)
    p.expect_nothing()
    assert d.conn is not None and d.conn.snd_mss == 1460


# ====================================================================== RST during the handshake


def test_rst_acking_our_syn_in_syn_sent_refuses_the_connection() -> None:
    """RFC 9293 §3.10.7.3 (SYN-SENT, first and second checks) and RFC 5961 §3.2: a RST whose
    ACK acknowledges our SYN (ISS < SEG.ACK =< SND.NXT) is acceptable whatever its SEQ; the
    connection goes to CLOSED with "connection refused" (ECONNREFUSED, as Linux reports it)
    and nothing is sent in answer to a RST."""
    d = Dut()
    p = Peer(d)
    conn = d.connect(40000, local_port=80)
    p.expect("SYN", seq=300)
    p.send("RST,ACK", 0, 301)
    p.expect_nothing(for_seconds=5.0)  # no answer, and no SYN retransmission at t=1 or t=3
    p.assert_that(conn.state_name == "CLOSED" and conn.error == errno.ECONNREFUSED,
                  f"state {conn.state_name}, error {conn.error}: expected CLOSED with ECONNREFUSED")
    assert len(d.stack.tcp) == 0
    with pytest.raises(ConnectionRefusedError):
        conn.recv()


@pytest.mark.parametrize(("flags", "ack"), [("RST,ACK", 300), ("RST,ACK", 302), ("RST,ACK", 300 - 70000),
                                            ("RST", 0)],
                         ids=["ACK=ISS", "ACK beyond SND.NXT", "ACK far below ISS", "no ACK"])
def test_rst_not_acking_our_syn_in_syn_sent_is_ignored(flags: str, ack: int) -> None:
    """RFC 9293 §3.10.7.3: in SYN-SENT, "if SEG.ACK =< ISS or SEG.ACK > SND.NXT ... (unless the
    RST bit is set, if so drop the segment and return)", and a RST without ACK is dropped too
    ("if the ACK bit is off, drop the segment").  RFC 5961 §3.2: an off-path attacker who
    cannot see our ISS cannot kill the connect.  The SYN timer keeps running and a real
    SYN,ACK still completes the handshake."""
    d = Dut()
    p = Peer(d)
    conn = d.connect(40000, local_port=80)
    p.expect("SYN", seq=300)
    p.send(flags, 0, ack)
    p.assert_that(conn.state_name == "SYN-SENT" and conn.error is None, "the RST was taken")
    p.expect("SYN", seq=300, at=1.0)  # not a RST in answer to the RST: just the SYN's retransmission
    p.send("SYN,ACK", 100, 301, options=TcpOptions(mss=MSS))
    p.expect("ACK", seq=301, ack=101)
    assert conn.state_name == "ESTABLISHED"


def _syn_received() -> tuple[Dut, Peer, TcpListener]:
    """A passive open half done: the peer's SYN (ISS 100) answered by our SYN,ACK (ISS 300)."""
    d = Dut()
    p = Peer(d)
    lst = d.listen(80)
    p.send("SYN", 100, options=TcpOptions(mss=MSS))
    p.expect("SYN,ACK", seq=300, ack=101)
    assert lst.half_open == 1
    return d, p, lst


def test_exact_rst_in_passive_syn_received_returns_to_listen() -> None:
    """RFC 9293 §3.10.7.4 (second check, SYN-RECEIVED): a RST at exactly RCV.NXT on a
    connection that came from LISTEN returns it to LISTEN: the half-open connection is
    forgotten, nothing reaches the accept queue, the user is not told, and the listener
    still answers the next SYN."""
    d, p, lst = _syn_received()
    p.send("RST", 101)
    p.expect_nothing()
    p.assert_that(len(d.stack.tcp) == 0, "the half-open connection is still in the table")
    assert (lst.half_open, lst.pending, lst.readable) == (0, 0, False)
    assert lst.accept() is None
    # The handshake's last ACK now meets the listener, not a connection (§3.10.7.2): RST.
    p.send("ACK", 101, 301)
    p.expect("RST", seq=301)
    # And the listener takes a new SYN from the same port.
    p.send("SYN", 5000, options=TcpOptions(mss=MSS), at=1.0)
    p.expect("SYN,ACK", seq=300, ack=5001)
    p.send("ACK", 5001, 301)
    assert d.accept(lst).state_name == "ESTABLISHED"


def test_inexact_rst_in_window_in_syn_received_gets_a_challenge_ack() -> None:
    """RFC 5961 §3.2 applies to SYN-RECEIVED too (RFC 9293 §3.10.7.4 second check): a RST in
    the window but not at RCV.NXT gets <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, and the half-open
    connection stays, so the real peer's ACK completes the handshake."""
    d, p, lst = _syn_received()
    p.send("RST", 101 + 1000)
    p.expect("ACK", seq=301, ack=101)
    p.expect_nothing()
    assert lst.half_open == 1 and d.conn is not None and d.conn.state_name == "SYN-RECEIVED"
    p.send("ACK", 101, 301)
    assert d.accept(lst).state_name == "ESTABLISHED"


@pytest.mark.parametrize("seq", [100, 101 + 70000], ids=["below RCV.NXT", "beyond the window"])
def test_rst_outside_the_window_in_syn_received_is_ignored(seq: int) -> None:
    """RFC 9293 §3.10.7.4 first check (and RFC 5961 §3.2): a RST outside the window is
    dropped without an answer (the window is 65535: no scaling without the peer's WS)."""
    d, p, lst = _syn_received()
    p.send("RST", seq)
    p.expect_nothing()
    assert lst.half_open == 1
    p.send("ACK", 101, 301)
    assert d.accept(lst).state_name == "ESTABLISHED"


def test_exact_rst_in_active_syn_received_refuses_the_connection() -> None:
    """RFC 9293 §3.10.7.4 (second check, SYN-RECEIVED): "If this connection was initiated
    with an active OPEN (i.e., came from SYN-SENT state), then the connection was refused;
    signal the user 'connection refused'" — a simultaneous open (RFC 9293 §3.5 figure 7)
    reset with the exact sequence number ends with ECONNREFUSED."""
    d = Dut()
    p = Peer(d)
    conn = d.connect(40000, local_port=80)
    p.expect("SYN", seq=300)
    p.send("SYN", 100, options=TcpOptions(mss=MSS))
    p.expect("SYN,ACK", seq=300, ack=101)
    p.send("RST", 101)
    p.assert_that(conn.state_name == "CLOSED" and conn.error == errno.ECONNREFUSED,
                  f"state {conn.state_name}, error {conn.error}: expected CLOSED with ECONNREFUSED")
    with pytest.raises(ConnectionRefusedError):
        conn.recv()


def test_segments_dropped_in_syn_sent_are_counted() -> None:
    """STYLE: every drop is counted.  RFC 9293 §3.10.7.3 drops, in SYN-SENT, a RST whose
    ACK is unacceptable, a RST without ACK, and a segment with neither SYN nor RST."""
    d = Dut()
    p = Peer(d)
    d.connect(40000, local_port=80)
    p.expect("SYN", seq=300)
    p.send("RST,ACK", 0, 302)
    p.send("RST", 0)
    p.send("ACK", 0, 301)
    drops = d.stack.stats.drops
    assert drops.get("tcp_rst_out_of_window") == 1 and drops.get("tcp_rst_without_ack") == 1, drops
    assert drops.get("tcp_syn_sent_no_syn") == 1, drops
