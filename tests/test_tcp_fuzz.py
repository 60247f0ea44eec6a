"""Hostile input for TCP: random segments into a connection in every state.

Each test drives the stack under test into one of RFC 9293's eleven states
(§3.3.2) with the packet-script harness, then lets hypothesis throw segments at
it — any flags, sequence and acknowledgment numbers near the window edges or
anywhere in the 32-bit space, any window, well-formed or garbage option bytes,
payloads, several source ports — mixed with jumps of virtual time and the
application's calls.  Whatever arrives:

* nothing escapes ``stack.receive`` or ``stack.poll`` (the interface's contract:
  refusals are counted drops, never exceptions), and the application's calls
  raise only ``OSError`` subclasses;
* every connection keeps its invariants: SND.UNA <= SND.NXT <= SND.MAX, the
  receive side holds at most ``rcvbuf`` bytes (in order plus out of order) in at
  most ``max_ooo_segments`` pieces, the send buffer at most ``sndbuf``, the
  congestion window is positive, and every timer is a finite time or unset;
* the connection table stays bounded (one connection per remote port at most),
  and time always moves on: no timer fires again and again at one instant.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqs.tcp.connection import STATE_NAMES, TcpConfig, TcpConnection
from seqs.wire import ethernet as weth
from seqs.wire import ipv4 as wip
from seqs.wire.checksum import checksum, pseudo_header_sum
from seqs.wire.ethernet import EthernetFrame
from seqs.wire.ipv4 import Ipv4Header
from seqs.wire.tcp import HDR, build_options
from tcp_script import DUT_IP, DUT_MAC, PEER_IP, PEER_MAC, Dut, Peer, TcpOptions

CONFIG = TcpConfig(rcvbuf=8192, sndbuf=8192, max_ooo_segments=8, msl=5.0, keepalive=True, keepalive_idle=30.0,
                   keepalive_interval=5.0, keepalive_count=2, max_retries=8, syn_retries=2, fin_wait2_timeout=20.0)
FULL = TcpOptions(mss=1000, wscale=2, sack_permitted=True, timestamp=(5000, 0))
PORTS = (40000, 40001, 40002)

# ---------------------------------------------------------------------- reaching the states


def _established(d: Dut, p: Peer) -> TcpConnection:
    """ESTABLISHED with every option, some data each way, unacked data in flight and an
    out-of-order segment held."""
    lst = d.listen(80, config=CONFIG)
    p.send("SYN", 100, options=FULL)
    synack = p.expect("SYN,ACK", seq=300, ack=101)
    ts = synack.options.timestamp[0]
    p.send("ACK", 101, 301, window=2000, options=TcpOptions(timestamp=(5001, ts)))
    conn = d.accept(lst)
    p.send("ACK", 101, 301, window=2000, payload=b"hello", options=TcpOptions(timestamp=(5002, ts)))
    p.send("ACK", 200, 301, window=2000, payload=b"later", options=TcpOptions(timestamp=(5003, ts)))
    d.send(b"x" * 3000)
    p.drain()
    return conn


def _to_state(name: str) -> tuple[Dut, Peer, TcpConnection | None]:
    d = Dut(config=CONFIG)
    p = Peer(d)
    conn: TcpConnection | None = None
    if name == "CLOSED":  # a port nobody listens on
        return d, p, None
    if name == "LISTEN":
        d.listen(80, config=CONFIG)
        return d, p, None
    if name == "SYN-SENT":
        conn = d.connect(40000, local_port=80, config=CONFIG)
        d.send(b"queued early")
        p.drain()
    elif name == "SYN-RECEIVED":
        d.listen(80, config=CONFIG)
        p.send("SYN", 100, options=FULL)
        p.drain()
        conn = d.stack.tcp.connections[0]
    else:
        conn = _established(d, p)
        ts = (5004, conn._ts_now(d.now))
        if name != "ESTABLISHED":
            # fill the gap (in order up to 205), read it all, take every byte we sent
            p.send("ACK", 106, 301, window=2000, payload=bytes(94), options=TcpOptions(timestamp=ts))
            d.recv()
            while conn.snd_una < conn.snd_max:
                p.send("ACK", 205, conn.snd_max, window=2000, options=TcpOptions(timestamp=ts))
                p.drain()
        if name in ("FIN-WAIT-1", "FIN-WAIT-2", "CLOSING", "TIME-WAIT"):
            conn.shutdown_write()  # not close(): data arriving after close() resets, by design
            d.poll()
            p.drain()
            fin_acked = conn.snd_max
            if name in ("FIN-WAIT-2", "TIME-WAIT"):
                p.send("ACK", 205, fin_acked, window=2000, options=TcpOptions(timestamp=ts))
            if name == "CLOSING":
                p.send("FIN,ACK", 205, fin_acked - 1, window=2000, options=TcpOptions(timestamp=ts))
            if name == "TIME-WAIT":
                p.send("FIN,ACK", 205, fin_acked, window=2000, options=TcpOptions(timestamp=ts))
        elif name in ("CLOSE-WAIT", "LAST-ACK"):
            p.send("FIN,ACK", 205, conn.snd_max, window=2000, options=TcpOptions(timestamp=ts))
            if name == "LAST-ACK":
                d.close()
        p.drain()
    assert conn is not None
    want = "ESTABLISHED" if name == "ESTABLISHED" else name
    assert conn.state_name == want, d.failure(f"reached {conn.state_name}, wanted {want}")
    return d, p, conn


# ---------------------------------------------------------------------- what hypothesis throws

near = st.integers(-70_000, 70_000) | st.sampled_from([-1, 0, 1, 2, 4095, 4096, 8192, -8192, 1 << 31, -(1 << 31)])
u32 = st.integers(0, 0xFFFFFFFF)


@st.composite
def option_bytes(draw: st.DrawFn) -> bytes:
    """Well-formed options (any values, SACK blocks near our numbers or anywhere) or garbage."""
    if draw(st.booleans()):
        ts = draw(st.none() | st.tuples(u32 | st.integers(4990, 5100), u32))
        opts = build_options(
            mss=draw(st.none() | st.integers(0, 0xFFFF)),
            wscale=draw(st.none() | st.integers(0, 255)),
            sack_permitted=draw(st.booleans()),
            timestamp=ts,
        )
        room = (40 - len(opts) - 4) // 8
        blocks = draw(st.lists(st.tuples(u32, u32), max_size=max(0, min(room, 4))))
        if blocks:
            opts += build_options(sack=blocks)
        return opts
    raw = draw(st.binary(max_size=40))
    return raw + bytes(-len(raw) % 4)


segment_step = st.fixed_dictionaries({
    "kind": st.just("segment"),
    # mostly what a real peer sends (ACK, PSH,ACK, FIN,ACK ...), a quarter anything at all
    "flags": st.one_of(*[st.sampled_from([0x10] * 6 + [0x18] * 3 + [0x11] * 2 + [0x02, 0x12, 0x04, 0x14, 0x01, 0])] * 3,
                       st.integers(0, 255)),
    "seq": st.tuples(st.sampled_from(["rcv", "abs"]), near),
    "ack": st.tuples(st.sampled_from(["una", "max", "abs"]), near),
    "window": st.integers(0, 0xFFFF) | st.sampled_from([0, 1, 65535]),
    "options": st.just(b"") | option_bytes(),
    "payload": st.binary(max_size=64) | st.integers(0, 3000).map(bytes),
    "port": st.sampled_from(PORTS),
    "bad_offset": st.sampled_from([False] * 15 + [True]),
})
time_step = st.fixed_dictionaries({
    "kind": st.just("time"),
    "dt": st.one_of(st.floats(0.0, 2.0), st.floats(0.0, 2.0), st.sampled_from([0.04, 0.2, 1.0]), st.floats(0.0, 30.0)),
})
app_step = st.fixed_dictionaries({
    "kind": st.just("app"),
    "call": st.sampled_from(["recv"] * 4 + ["send"] * 4 + ["shutdown", "close", "abort"]),
    "n": st.integers(0, 5000),
})
steps = st.lists(st.one_of(segment_step, segment_step, segment_step, time_step, app_step), min_size=1, max_size=40)


# ---------------------------------------------------------------------- invariants


def check(d: Dut, conns: list[TcpConnection], where: str) -> None:
    stack = d.stack

    def fail(msg: str) -> None:
        raise AssertionError(d.failure(f"{where}: {msg}")) from None

    if len(stack.tcp) > len(PORTS) + 1:
        fail(f"{len(stack.tcp)} connections in the table")
    for lst in (x for group in stack.tcp._listeners.values() for x in group):
        if lst.half_open > lst.max_half_open or lst.pending > lst.backlog:
            fail("listener queues beyond their bounds")
    dl = stack.next_deadline()
    if dl is not None and not math.isfinite(dl):
        fail(f"stack deadline {dl}")
    for c in {id(c): c for c in conns + stack.tcp.connections}.values():
        name = f"{c.state_name} conn :{c.rport}"
        if not 0 <= c.state < len(STATE_NAMES):
            fail(f"{name}: state {c.state}")
        if not c.snd_una <= c.snd_nxt <= c.snd_max:
            fail(f"{name}: SND.UNA {c.snd_una} SND.NXT {c.snd_nxt} SND.MAX {c.snd_max}")
        ooo_bytes = sum(len(seg) for _, seg in c._ooo)
        if c.unread + ooo_bytes > c.config.rcvbuf:
            fail(f"{name}: {c.unread} unread + {ooo_bytes} out of order > rcvbuf {c.config.rcvbuf}")
        if len(c._ooo) > c.config.max_ooo_segments:
            fail(f"{name}: {len(c._ooo)} out-of-order segments held")
        if c.buffered > c.config.sndbuf:
            fail(f"{name}: {c.buffered} bytes buffered > sndbuf {c.config.sndbuf}")
        if c.cc.cwnd <= 0 or c.snd_wnd < 0 or c.snd_mss <= 0:
            fail(f"{name}: cwnd {c.cc.cwnd} snd_wnd {c.snd_wnd} mss {c.snd_mss}")
        t = c.deadline()
        if t is not None and not math.isfinite(t):
            fail(f"{name}: deadline {t}")
        if c.state_name == "CLOSED" and c in stack.tcp.connections:
            fail(f"{name}: a CLOSED connection left in the table")


def advance(d: Dut, dt: float) -> None:
    """Like Dut.run_until, but time must move on: at most 1000 polls at one instant."""
    end = d.now + dt
    same = 0
    polls = 0
    last = d.now
    while True:
        t = d.stack.next_deadline()
        if t is None or t > end:
            break
        d.now = max(d.now, t)
        same = same + 1 if d.now == last else 0
        last = d.now
        polls += 1
        if same > 1000:
            raise AssertionError(d.failure(f"a timer keeps firing at t={d.now}"))
        if polls > 100 + 10 * dt:  # RTO >= 200 ms, delayed ACK 40 ms: a handful a second at most
            raise AssertionError(d.failure(f"{polls} timer wake-ups in {dt:g} s, now t={d.now}"))
        d.poll()
    d.now = end
    d.poll()
    d.outbox.clear()


def frame_for(p: Peer, port: int, seq: int, ack: int, flags: int, window: int, options: bytes,
              payload: bytes, bad_offset: bool) -> bytes:
    hl = 20 + len(options)
    off = (hl // 4) << 4
    if bad_offset:
        off = 0x10 if len(options) else 0xF0  # data offset 4 (< 20 bytes) or 60 (past the end)
    seg = bytearray(HDR.pack(port, p.dut_port, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, off, flags, window, 0, 0))
    seg += options + payload
    c = checksum(seg, pseudo_header_sum(PEER_IP, DUT_IP, wip.PROTO_TCP, len(seg)))
    struct.pack_into("!H", seg, 16, c)
    ip = Ipv4Header(PEER_IP, DUT_IP, wip.PROTO_TCP, ident=7).emit(bytes(seg))
    return EthernetFrame(DUT_MAC, PEER_MAC, weth.ETHERTYPE_IPV4, ip).emit()


def run(state: str, script: list[dict[str, Any]]) -> None:
    d, p, conn = _to_state(state)
    conns = [conn] if conn is not None else []
    check(d, conns, "after setup")
    for i, step in enumerate(script):
        c = conn if conn is not None else (d.stack.tcp.connections or [None])[0]
        kind = step["kind"]
        if kind == "segment":
            rcv = c.rcv_nxt if c is not None else 101
            una = c.snd_una if c is not None else 301
            smax = c.snd_max if c is not None else 301
            base, off = step["seq"]
            seq = (rcv if base == "rcv" else 0) + off
            base, off = step["ack"]
            ack = {"una": una, "max": smax, "abs": 0}[base] + off
            frame = frame_for(p, step["port"], seq, ack, step["flags"], step["window"], step["options"],
                              step["payload"], step["bad_offset"])
            d.inject(frame, f"fuzz #{i} flags={step['flags']:#04x} seq={seq & 0xFFFFFFFF} ack={ack & 0xFFFFFFFF} "
                            f"len={len(step['payload'])} opts={len(step['options'])}")
            d.outbox.clear()
        elif kind == "time":
            advance(d, step["dt"])
        elif c is not None:
            try:
                call = step["call"]
                if call == "recv":
                    c.recv(step["n"] or 1)
                elif call == "send":
                    c.send(bytes(step["n"]))
                elif call == "shutdown":
                    c.shutdown_write()
                elif call == "close":
                    c.close()
                else:
                    c.abort()
            except OSError:
                pass  # the user's error to handle (EPIPE, ECONNRESET, ...), not a crash
            d.note(f"app {step['call']}")
            d.poll()
            d.outbox.clear()
        check(d, conns, f"after step {i} ({kind})")
    advance(d, 3 * 3600.0)  # every timer runs out: retries, TIME-WAIT, keepalive, FIN-WAIT-2
    check(d, conns, "after three hours")
    for c in d.stack.tcp.connections:
        # Left are only those waiting for the application, rightly: CLOSE-WAIT (it has not
        # closed) and FIN-WAIT-2 after shutdown_write (it may still read; the FIN-WAIT-2
        # timeout is for connections closed by close(), and keepalive probes ESTABLISHED ones).
        if c.state_name not in ("CLOSE-WAIT", "FIN-WAIT-2") or (c.state_name == "FIN-WAIT-2" and c._closed_by_user):
            raise AssertionError(d.failure(f"{c.state_name} connection still in the table after three hours"))


STATES = ["CLOSED", "LISTEN", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT",
          "CLOSING", "LAST-ACK", "TIME-WAIT"]


@pytest.mark.parametrize("state", STATES)
def test_every_state_is_reachable(state: str) -> None:
    d, _p, conn = _to_state(state)
    check(d, [conn] if conn else [], "after setup")


@pytest.mark.parametrize("state", STATES)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(script=steps)
def test_random_segments_never_raise_and_keep_invariants(state: str, script: list[dict[str, Any]]) -> None:
    run(state, script)
