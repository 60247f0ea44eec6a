"""Drive one TCP connection of a seqs host into a chosen state, then feed it fuzzed input.

A scripted peer (10.0.0.2:40000) opens or accepts a connection with the host
(10.0.0.1:80) using the options the input asks for, then plays a short script
to reach one of :data:`SCENARIOS` (every RFC 9293 state, plus ESTABLISHED with
data in flight, with out-of-order data held, against a zero window, in fast
recovery and with a full receive buffer).  From there each input record is a
segment whose numbers are offsets from what the connection expects (so small
offsets land in the window and large ones test the edges) or a user call.
After every record the host's bounds and the connection's invariants are
checked (:func:`fuzz.harness.check_connection`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from seqs import Stack
from seqs.tcp.connection import (
    CLOSE_WAIT,
    CLOSING,
    ESTABLISHED,
    FIN_WAIT_1,
    FIN_WAIT_2,
    LAST_ACK,
    SYN_RECEIVED,
    SYN_SENT,
    TIME_WAIT,
    TcpConnection,
)
from seqs.tcp.seq import wrap
from seqs.wire import ipv4 as wip
from seqs.wire import tcp as wtcp

from .harness import PEER_IP, Host, Reader, check_connection, ip_frame, tcp_segment

__all__ = ["SCENARIOS", "Scenario", "run_tcp_input"]

SYN, ACK, FIN, RST, PSH = wtcp.SYN, wtcp.ACK, wtcp.FIN, wtcp.RST, wtcp.PSH
PEER_PORT = 40000
HOST_PORT = 80
#: records per input; each may carry up to a few KB
MAX_RECORDS = 200


class Scenario:
    """The host, the scripted peer's numbers, and the connection under test."""

    def __init__(self, opts: int, peer_iss: int = 0xFFFFFF00) -> None:
        self.host = Host(services=False)
        self.stack: Stack = self.host.stack
        self.listener = self.stack.tcp.listen(HOST_PORT, backlog=2, max_half_open=2)
        self.host.listeners.append(self.listener)
        self.ts = bool(opts & 1)
        self.sack = bool(opts & 2)
        self.wscale = (opts >> 3) % 15 if opts & 4 else None
        self.mss = 536 if opts & 0x80 else 1460
        self.peer_iss = peer_iss
        #: the peer's next sequence number (unwrapped)
        self.nxt = peer_iss
        self.tsval = 1000
        self.conn: TcpConnection | None = None
        self.extra_port = 41000

    # -- the peer ----------------------------------------------------------------------------

    def ts_option(self) -> bytes:
        self.tsval += 7
        return b"\x01\x01\x08\x0a" + self.tsval.to_bytes(4, "big") + bytes(4)

    def syn_options(self) -> bytes:
        o = wtcp.build_options(mss=self.mss, wscale=self.wscale, sack_permitted=self.sack,
                               timestamp=(self.tsval, 0) if self.ts else None)
        return o

    def send(self, flags: int, payload: bytes = b"", *, seq: int | None = None, ack: int | None = None,
             wnd: int = 65535, options: bytes | None = None, sport: int = PEER_PORT,
             dport: int | None = None) -> None:
        conn = self.conn
        if options is None:
            options = self.ts_option() if self.ts and conn is not None and conn.ts_ok else b""
        if seq is None:
            seq = self.nxt
        if ack is None:
            ack = conn.snd_nxt if conn is not None else 0
        lport = dport or (conn.lport if conn is not None else HOST_PORT)
        seg = tcp_segment(sport, lport, wrap(seq), wrap(ack), flags, wnd, options, payload)
        self.stack.receive(ip_frame(wip.PROTO_TCP, seg, src=PEER_IP), self.host.now)
        self.host.step(0.0)
        if seq == self.nxt:
            self.nxt += len(payload) + (1 if flags & (SYN | FIN) else 0)

    def advance(self, dt: float) -> None:
        self.host.step(dt)

    # -- opening -------------------------------------------------------------------------------

    def passive(self, *, complete: bool = True) -> TcpConnection:
        self.send(SYN, options=self.syn_options())
        conn = next(c for c in self.stack.tcp.connections if c.rport == PEER_PORT)
        self.conn = conn
        if complete:
            self.send(ACK)
            accepted = self.listener.accept()
            assert accepted is conn
        return conn

    def active(self, *, complete: bool = True) -> TcpConnection:
        conn = self.stack.tcp_connect(("10.0.0.2", PEER_PORT), local_port=HOST_PORT + 1)
        self.conn = conn
        self.advance(0.0)
        if complete:
            self.send(SYN | ACK, options=self.syn_options())
        return conn


def _syn_sent(s: Scenario) -> None:
    s.active(complete=False)


def _syn_received(s: Scenario) -> None:
    s.passive(complete=False)


def _established(s: Scenario) -> None:
    s.passive()


def _established_active(s: Scenario) -> None:
    s.active()


def _in_flight(s: Scenario) -> None:
    conn = s.passive()
    conn.send(bytes(3000))
    s.advance(0.0)


def _ooo_held(s: Scenario) -> None:
    s.passive()
    s.send(ACK | PSH, b"o" * 300, seq=s.nxt + 500)
    s.send(ACK | PSH, b"p" * 100, seq=s.nxt + 1000)


def _zero_window(s: Scenario) -> None:
    conn = s.passive()
    s.send(ACK, wnd=0)
    conn.send(bytes(2000))
    s.advance(0.0)


def _fin_wait_1(s: Scenario) -> None:
    conn = s.passive()
    conn.send(bytes(1000))
    conn.close()
    s.advance(0.0)


def _fin_wait_2(s: Scenario) -> None:
    conn = s.passive()
    conn.close()
    s.advance(0.0)
    s.send(ACK)


def _close_wait(s: Scenario) -> None:
    s.passive()
    s.send(FIN | ACK)


def _last_ack(s: Scenario) -> None:
    conn = s.passive()
    s.send(FIN | ACK)
    conn.close()
    s.advance(0.0)


def _closing(s: Scenario) -> None:
    conn = s.passive()
    before = conn.snd_nxt
    conn.close()
    s.advance(0.0)
    s.send(FIN | ACK, ack=before)  # crosses our FIN: does not acknowledge it


def _time_wait(s: Scenario) -> None:
    _fin_wait_2(s)
    s.send(FIN | ACK)


def _recovery(s: Scenario) -> None:
    conn = s.passive()
    conn.send(bytes(4000))
    s.advance(0.0)
    una = conn.snd_una
    for i in range(3):
        opts = b""
        if s.sack and conn.sack_ok:
            left = una + conn.snd_mss * (1 + i)
            opts = b"\x01\x01\x05\x0a" + wrap(left).to_bytes(4, "big") + wrap(left + conn.snd_mss).to_bytes(4, "big")
        if s.ts and conn.ts_ok:
            opts = s.ts_option() + opts
        s.send(ACK, ack=una, options=opts)


def _receive_buffer_full(s: Scenario) -> None:
    conn = s.passive()
    for _ in range(16):
        room = conn.rcv_adv - conn.rcv_nxt
        if room <= 0:
            break
        s.send(ACK | PSH, b"f" * min(room, conn.snd_mss))


#: (name, expected state, script)
SCENARIOS: tuple[tuple[str, int, Callable[[Scenario], None]], ...] = (
    ("syn-sent", SYN_SENT, _syn_sent),
    ("syn-received", SYN_RECEIVED, _syn_received),
    ("established", ESTABLISHED, _established),
    ("established-active", ESTABLISHED, _established_active),
    ("established-in-flight", ESTABLISHED, _in_flight),
    ("established-ooo", ESTABLISHED, _ooo_held),
    ("established-zero-window", ESTABLISHED, _zero_window),
    ("fin-wait-1", FIN_WAIT_1, _fin_wait_1),
    ("fin-wait-2", FIN_WAIT_2, _fin_wait_2),
    ("close-wait", CLOSE_WAIT, _close_wait),
    ("last-ack", LAST_ACK, _last_ack),
    ("closing", CLOSING, _closing),
    ("time-wait", TIME_WAIT, _time_wait),
    ("established-recovery", ESTABLISHED, _recovery),
    ("established-rcvbuf-full", ESTABLISHED, _receive_buffer_full),
)


def setup(scenario: int, opts: int) -> Scenario:
    s = Scenario(opts)
    SCENARIOS[scenario % len(SCENARIOS)][2](s)
    return s


def _dt(b: int) -> float:
    return b * 0.002 if b < 200 else (b - 199) * 0.5


def run_tcp_input(data: bytes) -> None:
    """The ``tcp_state`` target: byte 0 picks the scenario, byte 1 the peer's SYN options,
    then records until the input ends (see the module docstring)."""
    r = Reader(data)
    s = setup(r.u8(), r.u8())
    conn = s.conn
    assert conn is not None
    for _ in range(MAX_RECORDS):
        if r.left <= 0:
            break
        kind = r.u8()
        if kind < 0xE0:
            flags = r.u8()
            seq = conn.rcv_nxt + r.i32()
            ack = conn.snd_una + r.i32()
            wnd = r.u16()
            dt = _dt(r.u8())
            options = r.take(r.u8() % 41)
            if kind & 1 and s.ts and conn.ts_ok:
                options = s.ts_option() + options
            plen = r.u16() % 3000
            payload = r.take(plen).ljust(plen, b"x")
            s.advance(dt)
            s.send(flags, payload, seq=seq, ack=ack, wnd=wnd, options=options)
        else:
            action = kind & 7
            if action == 0:
                n = r.u16() % 6000
                with contextlib.suppress(OSError):
                    conn.send(b"d" * n)
            elif action == 1:
                try:
                    while conn.recv(1 << 16):
                        pass
                except OSError:
                    pass
            elif action == 2:
                conn.close()
            elif action == 3:
                conn.shutdown_write()
            elif action == 4:
                conn.abort()
            elif action == 5:
                d = s.stack.next_deadline()
                if d is not None and d > s.host.now:
                    s.advance(min(d - s.host.now, 600.0))
            elif action == 6:
                s.advance(r.u8() * 0.1)
            else:
                # another peer knocks at the listener: SYN floods and half-open eviction
                s.extra_port = 41000 + (s.extra_port + 1) % 64
                s.send(SYN, seq=r.i32(), sport=s.extra_port, dport=HOST_PORT, options=r.take(r.u8() % 41))
            s.advance(0.0)
        check_connection(conn)
    # Let every timer run out: whatever state it was left in, the connection ends.
    for _ in range(64):
        d = s.stack.next_deadline()
        if d is None:
            break
        s.advance(max(0.0, min(d - s.host.now, 600.0)))
    check_connection(conn)
