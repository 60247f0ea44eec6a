"""SYN cookies (RFC 4987 §3.6): the codec, the exchanges on the wire, and a flood on virtual time.

The codec (``seqs.tcp.syncookie``) is tested on its own: a cookie round-trips,
is bound to its 4-tuple and the client's ISN, expires after two 64-second
slots, and cannot be forged (a fixed-seed run of random ACKs, single-bit
flips).  The packet scripts then show a listener whose half-open table is full
answering a SYN with a cookie and keeping nothing, and the ACK that carries the
cookie back creating the connection in one step (RFC 9293 §3.10.7.2 for the
LISTEN state it arrives in).  Last, a flood of thousands of SYNs from random
sources with a legitimate client's handshake in the middle of it.
"""

from __future__ import annotations

import gc
import random
import tracemalloc

import pytest

from helpers import (
    GATEWAY_IP,
    OTHER_MAC,
    OUR_IP,
    PEER_IP,
    ip_frame,
    learn_peer,
    make_stack,
    parse_all,
    record,
)
from seqs.tcp.syncookie import (
    MSS_TABLE,
    SLOT_SECONDS,
    SynCookies,
    decode_ts_options,
    encode_ts_options,
    mss_index,
)
from seqs.wire import ethernet as weth
from seqs.wire import ipv4 as wip
from seqs.wire.ipv4 import Ipv4Header
from seqs.wire.tcp import TcpSegment
from tcp_script import ABSENT, DUT_IP, Dut, Peer, TcpOptions

KEY = bytes(range(16))
TUPLE = (wip.aton("10.0.0.1"), 80, wip.aton("10.0.0.2"), 40000)
M32 = 0xFFFFFFFF
#: SYNs of the flood after the 256 that fill the half-open table
FLOOD = 6_000


# ====================================================================== the codec


@pytest.mark.parametrize(("offered", "carried"), [
    (536, 536), (1460, 1460), (1459, 1452), (1400, 1380), (9000, 8960), (65495, 8960), (300, 64), (40, 64),
])
def test_cookie_round_trip_carries_the_mss_rounded_down_to_the_table(offered: int, carried: int) -> None:
    c = SynCookies(KEY)
    for now in (0.0, 12.5, 1e6 + 0.25):
        cookie = c.make(*TUPLE, 0x12345678, offered, now)
        assert 0 <= cookie <= M32
        assert c.check(*TUPLE, 0x12345678, cookie, now) == carried
    # the table entry never exceeds what was offered, except the floor (64) for tiny MSSs
    assert carried <= offered or carried == MSS_TABLE[0]
    assert MSS_TABLE[mss_index(offered)] == carried


def test_cookie_is_bound_to_the_4_tuple_and_the_client_isn() -> None:
    c = SynCookies(KEY)
    cookie = c.make(*TUPLE, 1000, 1460, 5.0)
    local, lport, remote, rport = TUPLE
    for wrong in ((local + 1, lport, remote, rport), (local, lport + 1, remote, rport),
                  (local, lport, remote + 1, rport), (local, lport, remote, rport + 1), (remote, rport, local, lport)):
        assert c.check(*wrong, 1000, cookie, 5.0) is None, wrong
    assert c.check(*TUPLE, 1001, cookie, 5.0) is None  # another client ISN
    assert SynCookies(bytes(16)).check(*TUPLE, 1000, cookie, 5.0) is None  # another key


def test_cookie_is_valid_in_its_slot_and_the_next_then_expires() -> None:
    c = SynCookies(KEY)
    made = 3 * SLOT_SECONDS + 10.0  # in slot 3
    cookie = c.make(*TUPLE, 7, 1460, made)
    assert c.check(*TUPLE, 7, cookie, made) == 1460
    assert c.check(*TUPLE, 7, cookie, 5 * SLOT_SECONDS - 0.001) == 1460  # end of slot 4
    assert c.check(*TUPLE, 7, cookie, 5 * SLOT_SECONDS) is None  # slot 5: expired
    assert c.check(*TUPLE, 7, cookie, 11 * SLOT_SECONDS + 10.0) is None  # slot 11 = 3 mod 8: still expired
    assert c.check(*TUPLE, 7, cookie, 3 * SLOT_SECONDS - 0.001) is None  # a cookie from the future
    assert c.lifetime == 2 * SLOT_SECONDS


def test_random_acks_essentially_never_validate() -> None:
    """A forged ACK validates with probability ~2^-28 (two slots of eight, 26 bits of MAC):
    100,000 tries (a fixed seed: the result cannot vary between runs) find none."""
    c = SynCookies(KEY)
    rng = random.Random(4987)
    now = 1000.0
    hits = 0
    for _ in range(100_000):
        t = (rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(32), rng.getrandbits(16))
        hits += c.check(*t, rng.getrandbits(32), rng.getrandbits(32), now) is not None
    assert hits == 0
    # the right tuple and client ISN with a guessed cookie fare no better
    assert sum(c.check(*TUPLE, 99, rng.getrandbits(32), now) is not None for _ in range(100_000)) == 0


def test_no_single_bit_flip_or_neighbour_of_a_cookie_validates() -> None:
    c = SynCookies(KEY)
    for isn in range(50):
        cookie = c.make(*TUPLE, isn, 1460, 70.0)
        forged = [cookie ^ (1 << b) for b in range(32)] + [(cookie + d) & M32 for d in (-2, -1, 1, 2)]
        assert all(c.check(*TUPLE, isn, f, 70.0) is None for f in forged), isn


def test_cookies_look_uniform_so_the_slot_and_mss_fields_do_not_show() -> None:
    """The whitening hash: the top bits (slot, MSS index before whitening) of cookies made
    in one slot for one MSS take all values, as an RFC 6528 ISN's would."""
    c = SynCookies(KEY)
    tops = {c.make(*TUPLE, isn, 1460, 5.0) >> 26 for isn in range(2000)}
    assert len(tops) == 64


@pytest.mark.parametrize("ts_now", [0, 31, 32, 1000, 0x7FFFFFFF, M32 - 3, M32])
def test_ts_options_round_trip_and_tsval_never_runs_ahead_of_the_clock(ts_now: int) -> None:
    for wscale in (None, *range(15)):
        for sack in (False, True):
            tsval = encode_ts_options(ts_now, wscale, sack)
            behind = (ts_now - tsval) & M32
            assert 0 <= behind < 32, (wscale, sack, behind)  # RFC 7323 §5: our later TSvals are newer
            assert decode_ts_options(tsval, ts_now, 128.0) == (wscale, sack)
            assert decode_ts_options(tsval, (ts_now + 128_000) & M32, 128.0) == (wscale, sack)


def test_ts_options_reject_a_tsecr_from_the_future_or_too_old() -> None:
    assert decode_ts_options(5000, 4000, 128.0) is None  # 1 s ahead of our clock
    assert decode_ts_options(5000, 5000 + 128_000 + 100, 128.0) is None
    assert encode_ts_options(1000, 20, False) & 0xF == 14  # a shift above 14 is capped (RFC 7323 §2.3)


# ====================================================================== on the wire


def full_listener(d: Dut, **syn: object) -> Peer:
    """A listener on port 80 whose half-open table (one entry) a SYN from port 40001 fills."""
    lst = d.listen(80)
    lst.max_half_open = 1
    other = Peer(d, port=40001)
    other.send("SYN", 7000, options=TcpOptions(mss=1460))
    other.expect("SYN,ACK", seq=300, ack=7001)
    return Peer(d)


def test_full_half_open_table_answers_syn_with_a_cookie_and_keeps_no_state() -> None:
    """RFC 4987 §3.6: the SYN-ACK's ISN is the cookie; no connection is made for it."""
    d = Dut()
    p = full_listener(d)
    lst = d.stack.tcp._listeners[80][0]
    p.send("SYN", 100, options=TcpOptions(mss=1400))
    synack = p.expect("SYN,ACK", ack=101, window=65535, mss=1460, wscale=ABSENT, sack_permitted=False,
                      timestamp=ABSENT)
    assert lst._cookies is not None
    p.assert_that(synack.seq == lst._cookies.make(DUT_IP, 80, PEER_IP, 40000, 100, 1400, d.now),
                  "the SYN-ACK's ISN is not the cookie")
    p.assert_that(len(d.stack.tcp) == 1 and lst.half_open == 1, "a cookie SYN must leave no state")
    assert d.stack.stats.drops["tcp_syncookie_sent"] == 1
    # RFC 9293 §3.8.1: a retransmitted SYN gets the same cookie, still without state
    p.send("SYN", 100, options=TcpOptions(mss=1400), at=d.now + 0.5)
    p.expect("SYN,ACK", seq=synack.seq, ack=101)
    assert len(d.stack.tcp) == 1 and d.stack.stats.drops["tcp_syncookie_sent"] == 2
    d.advance(10.0)  # nothing to retransmit to the client: nothing was kept (the filler's are)
    p.assert_that(all(sent.dport == 40001 for sent in p.drain()), "a cookie SYN-ACK was retransmitted")


def test_ack_with_a_valid_cookie_creates_the_connection_with_its_data() -> None:
    """RFC 4987 §3.6: ACK-1 is a valid cookie, so the connection is created ESTABLISHED
    (MSS from the cookie: 1400 offered, 1380 carried), the data the ACK carries is
    delivered and acknowledged, and the connection is in the accept queue."""
    d = Dut()
    p = full_listener(d)
    lst = d.stack.tcp._listeners[80][0]
    p.send("SYN", 100, options=TcpOptions(mss=1400))
    cookie = p.expect("SYN,ACK", ack=101).seq
    p.send("ACK,PSH", 101, cookie + 1, window=4000, payload=b"hello", at=d.now + 0.05)
    conn = d.accept(lst)
    p.assert_that(conn.state_name == "ESTABLISHED", "not ESTABLISHED")
    assert (conn.iss, conn.irs, conn.snd_una, conn.rcv_nxt) == (cookie, 100, cookie + 1, 106)
    assert conn.snd_mss == 1380 and not (conn.ws_ok or conn.sack_ok or conn.ts_ok)
    assert conn.snd_wnd == 4000
    assert d.recv() == b"hello"
    p.expect("ACK", seq=cookie + 1, ack=106)
    d.send(b"world")
    p.expect("ACK,PSH", seq=cookie + 1, ack=106, payload=b"world")
    assert d.stack.stats.drops["tcp_syncookie_valid"] == 1
    assert "tcp_syncookie_invalid" not in d.stack.stats.drops


def test_cookie_carries_window_scale_and_sack_in_the_timestamp() -> None:
    """RFC 7323 §2.2/§3.2, RFC 2018 §2: when the SYN offers timestamps, the SYN-ACK
    agrees to window scaling and SACK too, their values riding in the low bits of our
    TSval; the ACK's TSecr brings them back and the connection uses them."""
    d = Dut()
    p = full_listener(d)
    lst = d.stack.tcp._listeners[80][0]
    p.send("SYN", 100, options=TcpOptions(mss=1460, wscale=7, sack_permitted=True, timestamp=(5000, 0)))
    synack = p.expect("SYN,ACK", ack=101, mss=1460, wscale=3, sack_permitted=True, tsecr=5000)
    tsval = synack.options.timestamp[0]
    assert tsval & 0x1F == 7 | 0x10
    p.send("ACK", 101, synack.seq + 1, window=100, options=TcpOptions(timestamp=(5001, tsval)), at=d.now + 0.01)
    conn = d.accept(lst)
    assert conn.state_name == "ESTABLISHED"
    assert (conn.ws_ok, conn.snd_wscale, conn.rcv_wscale, conn.sack_ok, conn.ts_ok) == (True, 7, 3, True, True)
    assert conn.snd_wnd == 100 << 7  # the ACK's window is scaled (RFC 7323 §2.2)
    assert conn.snd_mss == 1460 - 12
    d.send(b"x" * 10)
    seg = p.expect("ACK,PSH", seq=synack.seq + 1, ack=101, tsecr=5001)
    # our TS clock goes on from the SYN-ACK's: the peer's PAWS (RFC 7323 §5) accepts it
    assert 0 <= (seg.options.timestamp[0] - tsval) & M32 < 1000


def test_cookie_without_timestamps_goes_without_window_scale_and_sack() -> None:
    d = Dut()
    p = full_listener(d)
    lst = d.stack.tcp._listeners[80][0]
    p.send("SYN", 100, options=TcpOptions(mss=1460, wscale=7, sack_permitted=True))
    synack = p.expect("SYN,ACK", ack=101, mss=1460, wscale=ABSENT, sack_permitted=False, timestamp=ABSENT)
    p.send("ACK", 101, synack.seq + 1, window=100)
    conn = d.accept(lst)
    assert (conn.ws_ok, conn.sack_ok, conn.ts_ok, conn.snd_wnd) == (False, False, False, 100)


def test_ack_with_an_invalid_cookie_is_answered_with_rst() -> None:
    """RFC 9293 §3.10.7.2: in LISTEN an ACK gets <SEQ=SEG.ACK><CTL=RST>; one that is not a
    valid cookie is counted, and makes no connection."""
    d = Dut()
    p = full_listener(d)
    p.send("SYN", 100, options=TcpOptions(mss=1460))
    cookie = p.expect("SYN,ACK", ack=101).seq
    p.send("ACK", 101, cookie + 2)
    p.expect_rst(cookie + 2)
    p.send("ACK", 102, cookie + 1)  # the wrong client ISN
    p.expect_rst(cookie + 1)
    assert d.stack.stats.drops["tcp_syncookie_invalid"] == 2
    assert len(d.stack.tcp) == 1


def test_ack_with_an_echoed_tsval_we_cannot_have_sent_is_refused() -> None:
    d = Dut()
    p = full_listener(d)
    p.send("SYN", 100, options=TcpOptions(mss=1460, wscale=2, timestamp=(5000, 0)))
    synack = p.expect("SYN,ACK", ack=101)
    tsval = synack.options.timestamp[0]
    p.send("ACK", 101, synack.seq + 1, options=TcpOptions(timestamp=(5001, (tsval + 10_000) & M32)))
    p.expect_rst(synack.seq + 1)
    assert d.stack.stats.drops["tcp_syncookie_invalid"] == 1 and len(d.stack.tcp) == 1


def test_cookie_expires_after_two_slots() -> None:
    d = Dut()
    p = full_listener(d)
    p.send("SYN", 100, options=TcpOptions(mss=1460))
    cookie = p.expect("SYN,ACK", ack=101).seq
    d.run_until(2 * SLOT_SECONDS + 1.0)  # slot 2: the cookie (slot 0) has expired
    # cookies sent lately, so that the ACK is checked: the filler has given up by now
    Peer(d, port=40002).send("SYN", 9000, options=TcpOptions(mss=1460))
    Peer(d, port=40003).send("SYN", 9000, options=TcpOptions(mss=1460))
    p.drain()
    assert d.stack.stats.drops["tcp_syncookie_sent"] == 2
    p.send("ACK", 101, cookie + 1)
    p.expect_rst(cookie + 1)
    assert d.stack.stats.drops["tcp_syncookie_invalid"] == 1


def test_acks_are_not_checked_as_cookies_when_none_was_sent_lately() -> None:
    """Like Linux: with no cookie sent in the last two slots an ACK cannot be one; it gets
    the RST of RFC 9293 §3.10.7.2 without a MAC computed (an ACK flood costs no hashing)."""
    d = Dut()
    d.listen(80)
    p = Peer(d)
    p.send("ACK", 101, 5000)
    p.expect_rst(5000)
    assert "tcp_syncookie_invalid" not in d.stack.stats.drops


def test_cookie_ack_finding_the_accept_queue_full_is_dropped_until_there_is_room() -> None:
    """As Linux does: no RST (the client believes it is connected); its retransmission,
    with the same cookie, succeeds once the application has accepted."""
    d = Dut()
    lst = d.listen(80, backlog=1)
    lst.max_half_open = 1
    first = Peer(d, port=40001)
    first.send("SYN", 7000, options=TcpOptions(mss=1460))
    first.expect("SYN,ACK", seq=300, ack=7001)
    p = Peer(d)
    p.send("SYN", 100, options=TcpOptions(mss=1460))  # the table is full: a cookie
    cookie = p.expect("SYN,ACK", ack=101).seq
    first.send("ACK", 7001, 301)  # the first connection fills the accept queue
    assert lst.pending == 1
    p.send("ACK,PSH", 101, cookie + 1, payload=b"req")
    p.expect_nothing()
    assert d.stack.stats.drops["tcp_listen_overflow"] == 1 and lst.pending == 1
    first_conn = d.accept(lst)
    p.send("ACK,PSH", 101, cookie + 1, payload=b"req", at=d.now + 0.2)  # the client's retransmission
    conn = d.accept(lst)
    assert conn is not first_conn and conn.state_name == "ESTABLISHED" and d.recv(conn=conn) == b"req"


def test_without_syn_cookies_the_oldest_half_open_connection_is_evicted() -> None:
    d = Dut()
    lst = d.listen(80)
    lst.max_half_open = 1
    lst.syn_cookies = False
    other = Peer(d, port=40001)
    other.send("SYN", 7000, options=TcpOptions(mss=1460))
    other.expect("SYN,ACK", seq=300, ack=7001)
    p = Peer(d)
    p.send("SYN", 100, options=TcpOptions(mss=1460))
    p.expect("SYN,ACK", seq=300, ack=101)
    assert [c.rport for c in d.stack.tcp.connections] == [40000]
    assert d.stack.stats.drops["tcp_syn_backlog_evicted"] == 1 and "tcp_syncookie_sent" not in d.stack.stats.drops


# ====================================================================== a flood


def test_legitimate_client_connects_in_the_middle_of_a_syn_flood_with_memory_bounded() -> None:
    """3,000 SYNs from random sources over 1.2 seconds of virtual time, the legitimate
    client's SYN in the middle of them, 3,000 more, then its ACK (with a request): it is
    ESTABLISHED and accepted, the stack holds at most ``max_half_open`` connections, and
    the memory Python holds does not grow past the first 256 SYNs."""
    s = make_stack(gateway=GATEWAY_IP)
    learn_peer(s, 0.0, mac=OTHER_MAC, ip=GATEWAY_IP)  # SYN-ACKs to the random sources leave via it
    learn_peer(s, 0.0)
    lst = s.tcp.listen(80)
    rng = random.Random(7)
    low, high = wip.aton("11.0.0.0"), wip.aton("126.0.0.0")

    def flood_frame() -> bytes:
        src = rng.randrange(low, high)
        seg = TcpSegment(rng.randrange(1024, 65536), 80, rng.getrandbits(32), 0, 0x02, 512).emit(src, OUR_IP)
        return ip_frame(wip.PROTO_TCP, seg, src=src, mac_src=OTHER_MAC)

    flood = [flood_frame() for _ in range(256 + FLOOD)]  # built before memory is traced

    client_syn = TcpSegment(40000, 80, 100, 0, 0x02, 65535, options=TcpOptions(mss=1460)).emit(PEER_IP, OUR_IP)
    synacks: list[TcpSegment] = []

    def drain(now: float) -> None:
        s.poll(now)
        for f in parse_all(s.take_tx()):
            if f.ethertype == weth.ETHERTYPE_IPV4:
                h, payload = Ipv4Header.parse(f.payload)
                if h.dst == PEER_IP and h.proto == wip.PROTO_TCP:
                    synacks.append(TcpSegment.parse(payload, h.src, h.dst))

    tracemalloc.start()
    try:
        now = 0.0
        for frame in flood[:256]:
            s.receive(frame, now)
        drain(now)
        gc.collect()
        base = tracemalloc.get_traced_memory()[0]
        peak_growth = 0
        for i in range(FLOOD):
            now = i * 0.0002
            s.receive(flood[256 + i], now)
            if i == FLOOD // 2:
                s.receive(ip_frame(wip.PROTO_TCP, client_syn), now)
            if i % 100 == 0:
                drain(now)
            if i % 1000 == 0:
                gc.collect()
                peak_growth = max(peak_growth, tracemalloc.get_traced_memory()[0] - base)
        drain(now)
        gc.collect()
        growth = max(peak_growth, tracemalloc.get_traced_memory()[0] - base)
    finally:
        tracemalloc.stop()
    assert len(synacks) == 1 and synacks[0].ack == 101
    cookie = synacks[0].seq
    assert len(s.tcp) == 256 and lst.half_open == 256
    ack = TcpSegment(40000, 80, 101, cookie + 1, 0x18, 65535, payload=b"GET /").emit(PEER_IP, OUR_IP)
    s.receive(ip_frame(wip.PROTO_TCP, ack), now + 0.01)
    conn = lst.accept()
    assert conn is not None and conn.state_name == "ESTABLISHED" and conn.recv() == b"GET /"
    drops = s.stats.drops
    assert drops["tcp_syncookie_sent"] == FLOOD + 1 and drops["tcp_syncookie_valid"] == 1
    assert "tcp_syn_backlog_evicted" not in drops
    assert growth < 256 * 1024, growth
    record("unit_syn_flood_with_cookies", syns=256 + FLOOD, cookies_sent=drops["tcp_syncookie_sent"],
           cookies_valid=drops["tcp_syncookie_valid"], held=len(s.tcp) - 1, traced_growth_bytes=growth)
