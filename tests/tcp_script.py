"""Packet-script harness for TCP tests: one seqs stack under test, a scripted peer, virtual time.

A test plays the remote end by hand.  :class:`Dut` wraps the stack under test
(10.0.0.1, its ISN pinned so segment numbers read like RFC 9293's figures)
and owns the virtual clock; :class:`Peer` (10.0.0.2, pre-seeded in the
stack's ARP cache) injects segments built with :class:`seqs.wire.tcp.TcpSegment`
and pops what the stack sent with :meth:`Peer.expect`, checking flags, numbers,
window, options and payload.  Every event goes into a trace drawn the way
RFC 9293 draws exchanges, and every failed expectation prints it::

    t=0.000   --> <SEQ=100><CTL=SYN><WND=65535><MSS=1460>            --> SYN-RECEIVED
    t=0.000   <-- <SEQ=300><ACK=101><CTL=SYN,ACK><WND=65535><MSS=1460> <-- SYN-RECEIVED

The left column is virtual time (the peer is a script and has no state), the
right one the state of the stack's connection after the event; drops the
stack counted while handling a segment are appended as ``[drop: reason]``.

Time moves only when a test says so: :meth:`Dut.run_until`/:meth:`Dut.advance`
poll the stack at each of its deadlines in turn, and :meth:`Peer.expect`, when
nothing is waiting, advances to the stack's next deadline until a segment
comes out (``at=`` then pins the moment it was sent).
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from seqs import Stack
from seqs.iface import InterfaceConfig
from seqs.iface.arp import ArpConfig
from seqs.sockets.tcp import TcpListener
from seqs.tcp.connection import STATE_NAMES, TcpConfig, TcpConnection
from seqs.wire import ethernet as weth
from seqs.wire import ipv4 as wip
from seqs.wire import tcp as wtcp
from seqs.wire.arp import OP_REPLY, OP_REQUEST, ArpPacket
from seqs.wire.ethernet import EthernetFrame
from seqs.wire.icmp import IcmpMessage
from seqs.wire.ipv4 import Ipv4Header
from seqs.wire.tcp import ACK, FIN, PSH, RST, SYN, TcpOptions, TcpSegment

__all__ = [
    "ABSENT", "ACK", "DUT_IP", "DUT_MAC", "FIN", "NO_OPTS", "PEER_IP", "PEER_MAC", "PSH", "RST", "SYN",
    "Dut", "Peer", "Sent", "TcpOptions", "fmt_segment", "parse_flags",
]

DUT_MAC = bytes.fromhex("020000000001")
PEER_MAC = bytes.fromhex("020000000002")
DUT_IP = wip.aton("10.0.0.1")
PEER_IP = wip.aton("10.0.0.2")
NO_OPTS = TcpOptions()
MSS_1460 = TcpOptions(mss=1460)


class _Absent:
    """``expect(wscale=ABSENT)``: the option must not be there."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()

_FLAG_BITS = {"SYN": SYN, "ACK": ACK, "FIN": FIN, "RST": RST, "PSH": PSH, "URG": wtcp.URG,
              "ECE": wtcp.ECE, "CWR": wtcp.CWR}


def parse_flags(flags: str | int) -> int:
    """``"SYN,ACK"`` (RFC 9293's <CTL=...> spelling) or an int of flag bits."""
    if isinstance(flags, int):
        return flags
    bits = 0
    for name in flags.replace("|", ",").split(","):
        name = name.strip().upper()
        if name:
            bits |= _FLAG_BITS[name]
    return bits


def fmt_segment(seg: TcpSegment) -> str:
    """``<SEQ=100><ACK=300><CTL=ACK><WND=..><DATA=5>`` plus the options present."""
    out = f"<SEQ={seg.seq}>"
    if seg.flags & ACK:
        out += f"<ACK={seg.ack}>"
    out += f"<CTL={wtcp.flags_to_str(seg.flags)}><WND={seg.window}>"
    o = seg.options
    if o.mss is not None:
        out += f"<MSS={o.mss}>"
    if o.wscale is not None:
        out += f"<WS={o.wscale}>"
    if o.sack_permitted:
        out += "<SACKOK>"
    if o.timestamp is not None:
        out += f"<TS={o.timestamp[0]},{o.timestamp[1]}>"
    if o.sack:
        out += "<SACK=" + ",".join(f"{a}-{b}" for a, b in o.sack) + ">"
    if seg.payload:
        out += f"<DATA={len(seg.payload)}>"
    return out


@dataclass(frozen=True)
class Sent:
    """A segment the stack under test sent, when, and to which address."""

    time: float
    src: int
    dst: int
    seg: TcpSegment

    def __getattr__(self, name: str) -> Any:
        return getattr(self.seg, name)


class _FixedIsn:
    """Pins the stack's ISNs (its generator is tested on its own in test_tcp_units)."""

    def __init__(self, iss: int) -> None:
        self.iss = iss

    def isn(self, local: int, lport: int, remote: int, rport: int, now: float) -> int:
        return self.iss & 0xFFFFFFFF


@dataclass
class Dut:
    """The stack under test, its clock and the trace of everything that happened."""

    config: TcpConfig | None = None
    iss: int = 300
    mtu: int = 1500
    seed: int = 1
    start: float = 0.0
    stack: Stack = field(init=False)
    now: float = field(init=False)
    trace: list[str] = field(init=False, default_factory=list)
    outbox: deque[Sent] = field(init=False, default_factory=deque)
    other: list[EthernetFrame] = field(init=False, default_factory=list)
    #: the connection whose state the trace shows (the last one opened or accepted)
    conn: TcpConnection | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        iface = InterfaceConfig(mac=DUT_MAC, address=DUT_IP, prefix=24, mtu=self.mtu,
                                arp=ArpConfig(lifetime=1e9))
        self.stack = Stack(config=iface, rng=random.Random(self.seed), tcp_config=self.config)
        self.stack.tcp.isn_source = _FixedIsn(self.iss)
        self.now = self.start
        self.stack.iface.arp.update(PEER_IP, PEER_MAC, self.now, create=True)

    # -- the clock ---------------------------------------------------------------------

    def poll(self) -> None:
        self.stack.poll(self.now)
        self._collect()

    def run_until(self, t: float) -> None:
        """Advance to ``t``, polling at every deadline on the way (timers fire on time)."""
        while True:
            d = self.stack.next_deadline()
            if d is None or d > t:
                break
            self.now = max(self.now, d)
            self.poll()
        self.now = max(self.now, t)
        self.poll()

    def advance(self, dt: float) -> None:
        self.run_until(self.now + dt)

    def run_to_next_output(self, limit: float) -> bool:
        """Advance deadline by deadline until the stack sends something (True) or ``limit``."""
        self.poll()
        while not self.outbox:
            d = self.stack.next_deadline()
            if d is None or d > limit:
                return False
            self.now = max(self.now, d)
            self.poll()
        return True

    # -- the user side -------------------------------------------------------------------

    def listen(self, port: int = 80, **kw: Any) -> TcpListener:
        lst = self.stack.tcp_listen(port, **kw)
        self.note(f"LISTEN on port {port}")
        return lst

    def connect(self, port: int = 80, *, local_port: int = 40000, config: TcpConfig | None = None,
                ip: str = "10.0.0.2") -> TcpConnection:
        self.conn = self.stack.tcp_connect((ip, port), local_port=local_port, config=config)
        self.note(f"CONNECT to {ip}:{port}")
        self.poll()
        return self.conn

    def accept(self, lst: TcpListener) -> TcpConnection:
        conn = lst.accept()
        assert conn is not None, self.failure("the listener has no connection to accept")
        self.conn = conn
        return conn

    def send(self, data: bytes, conn: TcpConnection | None = None) -> int:
        c = conn or self._conn()
        n = c.send(data)
        self.note(f"SEND {len(data)} bytes (took {n})")
        self.poll()
        return n

    def recv(self, max_bytes: int = 1 << 20, conn: TcpConnection | None = None) -> bytes | None:
        c = conn or self._conn()
        data = c.recv(max_bytes)
        self.note(f"RECEIVE {'None' if data is None else len(data)} bytes")
        self.poll()
        return data

    def close(self, conn: TcpConnection | None = None) -> None:
        (conn or self._conn()).close()
        self.note("CLOSE")
        self.poll()

    def shutdown_write(self, conn: TcpConnection | None = None) -> None:
        (conn or self._conn()).shutdown_write()
        self.note("SHUTDOWN (write)")
        self.poll()

    def abort(self, conn: TcpConnection | None = None) -> None:
        (conn or self._conn()).abort()
        self.note("ABORT")
        self.poll()

    def _conn(self) -> TcpConnection:
        assert self.conn is not None, "no connection yet"
        return self.conn

    # -- frames --------------------------------------------------------------------------

    def inject(self, frame: bytes, what: str) -> None:
        before = dict(self.stack.stats.drops)
        self.stack.receive(frame, self.now)
        after = self.stack.stats.drops
        drops = [k for k, v in after.items() if v > before.get(k, 0)]
        self.trace.append(self._line("-->", what, "-->") + (f"  [drop: {', '.join(drops)}]" if drops else ""))
        self.poll()

    def _collect(self) -> None:
        for raw in self.stack.take_tx():
            frame = EthernetFrame.parse(bytes(raw))
            if frame.ethertype == weth.ETHERTYPE_ARP:
                a = ArpPacket.parse(frame.payload)
                self.trace.append(self._line("<--", f"ARP who-has {wip.ntoa(a.tpa)}", "<--"))
                if a.op == OP_REQUEST and a.tpa == PEER_IP:
                    reply = ArpPacket(OP_REPLY, PEER_MAC, PEER_IP, DUT_MAC, DUT_IP).emit()
                    self.stack.receive(EthernetFrame(DUT_MAC, PEER_MAC, weth.ETHERTYPE_ARP, reply).emit(), self.now)
                    self.trace.append(self._line("-->", "ARP is-at (auto)", "-->"))
                continue
            if frame.ethertype != weth.ETHERTYPE_IPV4:
                self.other.append(frame)
                continue
            hdr, payload = Ipv4Header.parse(frame.payload)
            if hdr.proto != wip.PROTO_TCP:
                self.other.append(frame)
                self.trace.append(self._line("<--", f"IP proto {hdr.proto} len {len(payload)}", "<--"))
                continue
            seg = TcpSegment.parse(payload, hdr.src, hdr.dst)  # checks the stack's checksum too
            assert frame.dst == PEER_MAC, f"TCP frame to {weth.mac_to_str(frame.dst)}"
            self.outbox.append(Sent(self.now, hdr.src, hdr.dst, seg))
            self.trace.append(self._line("<--", fmt_segment(seg), "<--"))

    # -- the trace -----------------------------------------------------------------------

    def state(self) -> str:
        if self.conn is None:
            conns = self.stack.tcp.connections
            if conns:
                self.conn = conns[-1]  # a passive open: follow the connection the SYN made
            else:
                return "LISTEN" if self.stack.tcp._listeners else "CLOSED"
        return STATE_NAMES[self.conn.state]

    def _line(self, left: str, what: str, right: str) -> str:
        return f"t={self.now:<9.4f} {left} {what:<62} {right} {self.state()}"

    def note(self, text: str) -> None:
        self.trace.append(f"t={self.now:<9.4f}     ({text}){'':<4} {self.state()}")

    def failure(self, message: str) -> str:
        return f"{message}\n\nThe exchange so far (peer on the left, seqs on the right):\n" + "\n".join(
            "  " + line for line in self.trace
        )


class Peer:
    """The scripted remote end at 10.0.0.2:``port`` talking to the stack's ``dut_port``."""

    def __init__(self, dut: Dut, *, port: int = 40000, dut_port: int = 80, ip: int = PEER_IP,
                 mac: bytes = PEER_MAC) -> None:
        self.dut = dut
        self.port = port
        self.dut_port = dut_port
        self.ip = ip
        self.mac = mac
        if ip != PEER_IP:
            dut.stack.iface.arp.update(ip, mac, dut.now, create=True)

    # -- sending -------------------------------------------------------------------------

    def segment(self, flags: str | int, seq: int, ack: int = 0, *, window: int = 65535,
                options: TcpOptions = NO_OPTS, payload: bytes = b"") -> TcpSegment:
        return TcpSegment(self.port, self.dut_port, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, parse_flags(flags),
                          window, 0, options, payload)

    def frame(self, seg: TcpSegment, *, corrupt: bool = False) -> bytes:
        tcp = bytearray(seg.emit(self.ip, DUT_IP))
        if corrupt:
            tcp[-1 if seg.payload else 13] ^= 0x01
        ip = Ipv4Header(self.ip, DUT_IP, wip.PROTO_TCP, ident=1).emit(bytes(tcp))
        return EthernetFrame(DUT_MAC, self.mac, weth.ETHERTYPE_IPV4, ip).emit()

    def send(self, flags: str | int, seq: int, ack: int = 0, *, window: int = 65535,
             options: TcpOptions = NO_OPTS, payload: bytes = b"", at: float | None = None) -> None:
        """Inject one segment (at virtual time ``at``, default now) and poll the stack."""
        if at is not None:
            self.dut.run_until(at)
        seg = self.segment(flags, seq, ack, window=window, options=options, payload=payload)
        self.dut.inject(self.frame(seg), fmt_segment(seg))

    def send_icmp(self, msg: IcmpMessage, what: str, *, src: int | None = None) -> None:
        ip = Ipv4Header(src or self.ip, DUT_IP, wip.PROTO_ICMP, ident=2).emit(msg.emit())
        self.dut.inject(EthernetFrame(DUT_MAC, self.mac, weth.ETHERTYPE_IPV4, ip).emit(), what)

    # -- receiving -----------------------------------------------------------------------

    def expect(
        self,
        flags: str | int,
        *,
        seq: int | None = None,
        ack: int | None = None,
        window: int | None = None,
        payload: bytes | None = None,
        data_len: int | None = None,
        psh: bool | None = None,
        at: float | None = None,
        wait: float = 3600.0,
        mss: Any = None,
        wscale: Any = None,
        sack_permitted: bool | None = None,
        timestamp: Any = None,
        tsecr: int | None = None,
        sack: Any = None,
        options: TcpOptions | None = None,
    ) -> Sent:
        """Pop the next segment the stack sent and check it.  If none is waiting, advance
        virtual time (at most ``wait`` seconds) until the stack sends one.

        ``flags`` must match exactly, except PSH, which is checked only if ``psh`` is given.
        Other fields are checked when given; ``ABSENT`` requires an option to be missing.
        """
        d = self.dut
        if not d.outbox:
            d.run_to_next_output(d.now + wait)
        want = parse_flags(flags)
        want_txt = f"<CTL={wtcp.flags_to_str(want)}>"
        if seq is not None:
            want_txt = f"<SEQ={seq}>" + want_txt
        if not d.outbox:
            raise AssertionError(d.failure(f"expected {want_txt} from seqs within {wait}s, it sent nothing"))
        got = d.outbox.popleft()
        seg = got.seg
        problems = []
        if (seg.sport, seg.dport) != (self.dut_port, self.port) or got.dst != self.ip:
            problems.append(f"ports {seg.sport}>{seg.dport} to {wip.ntoa(got.dst)}, "
                            f"expected {self.dut_port}>{self.port} to {wip.ntoa(self.ip)}")
        if (seg.flags & ~PSH) != (want & ~PSH):
            problems.append(f"flags {wtcp.flags_to_str(seg.flags)}, expected {wtcp.flags_to_str(want)}")
        if psh is not None and bool(seg.flags & PSH) != psh:
            problems.append(f"PSH {'set' if seg.flags & PSH else 'clear'}, expected {'set' if psh else 'clear'}")

        def check(name: str, value: Any, expected: Any) -> None:
            if expected is None:
                return
            if expected is ABSENT:
                if value not in (None, False, ()):
                    problems.append(f"{name} is {value!r}, expected it absent")
            elif value != expected:
                problems.append(f"{name} is {value!r}, expected {expected!r}")

        check("SEQ", seg.seq, None if seq is None else seq & 0xFFFFFFFF)
        check("ACK", seg.ack, None if ack is None else ack & 0xFFFFFFFF)
        check("WND", seg.window, window)
        check("payload", seg.payload, payload)
        check("payload length", len(seg.payload), data_len)
        o = seg.options
        if options is not None:
            check("options", o, options)
        check("MSS option", o.mss, mss)
        check("window scale option", o.wscale, wscale)
        check("SACK-permitted option", o.sack_permitted, sack_permitted)
        check("timestamp option", o.timestamp, timestamp)
        if tsecr is not None:
            check("TSecr", o.timestamp[1] if o.timestamp else None, tsecr)
        if sack is not None:
            check("SACK blocks", o.sack, sack if sack is ABSENT else tuple(
                (a & 0xFFFFFFFF, b & 0xFFFFFFFF) for a, b in sack))
        if at is not None and abs(got.time - at) > 1e-6:
            problems.append(f"sent at t={got.time:.6f}, expected t={at:.6f}")
        if problems:
            raise AssertionError(d.failure(
                f"expected {want_txt}, got {fmt_segment(seg)} at t={got.time:.4f}:\n  - " + "\n  - ".join(problems)))
        return got

    def expect_rst(self, seq: int, *, rcv_nxt: int | None = None, **kw: Any) -> Sent:
        """A reset at ``seq``: <CTL=RST>, or <CTL=RST,ACK> whose ACK field, the ACK bit being
        set, must then be meaningful (RFC 9293 §3.4: RCV.NXT), not left at zero."""
        d = self.dut
        if not d.outbox:
            d.run_to_next_output(d.now + kw.pop("wait", 3600.0))
        with_ack = bool(d.outbox) and bool(d.outbox[0].seg.flags & ACK)
        return self.expect("RST,ACK" if with_ack else "RST", seq=seq, ack=rcv_nxt if with_ack else None, **kw)

    def expect_nothing(self, for_seconds: float = 0.0) -> None:
        """Nothing is waiting now, and (advancing ``for_seconds``) nothing is sent meanwhile."""
        d = self.dut
        d.poll()
        if not d.outbox and for_seconds > 0:
            end = d.now + for_seconds
            if not d.run_to_next_output(end):
                d.run_until(end)
        if d.outbox:
            got = d.outbox[0]
            raise AssertionError(d.failure(
                f"expected silence, seqs sent {fmt_segment(got.seg)} at t={got.time:.4f}"))

    def drain(self) -> list[Sent]:
        """Everything sent so far (polling first), popped without checks."""
        self.dut.poll()
        out = list(self.dut.outbox)
        self.dut.outbox.clear()
        return out

    def assert_that(self, condition: bool, message: str) -> None:
        """A plain assertion that prints the trace when it fails."""
        if not condition:
            raise AssertionError(self.dut.failure(message))

    # -- common openings -----------------------------------------------------------------

    def open_passive(self, *, isn: int = 100, options: TcpOptions = MSS_1460, window: int = 65535,
                     lst: TcpListener | None = None) -> TcpConnection:
        """RFC 9293 figure 6 with the stack listening: SYN, SYN-ACK, ACK; returns the accepted connection."""
        d = self.dut
        if lst is None:
            lst = d.listen(self.dut_port)
        self.send("SYN", isn, window=window, options=options)
        synack = self.expect("SYN,ACK", seq=d.iss, ack=isn + 1)
        ts = None
        if options.timestamp is not None and synack.options.timestamp is not None:
            ts = (options.timestamp[0] + 1, synack.options.timestamp[0])
        self.send("ACK", isn + 1, d.iss + 1, window=window, options=TcpOptions(timestamp=ts))
        return d.accept(lst)

    def open_active(self, *, isn: int = 100, options: TcpOptions = MSS_1460, window: int = 65535,
                    config: TcpConfig | None = None) -> TcpConnection:
        """The stack connects: SYN, SYN-ACK from us, its ACK."""
        d = self.dut
        conn = d.connect(self.port, local_port=self.dut_port, config=config)
        syn = self.expect("SYN", seq=d.iss, ack=0)
        ts = None
        if options.timestamp is not None and syn.options.timestamp is not None:
            ts = (options.timestamp[0], syn.options.timestamp[0])
        opts = TcpOptions(options.mss, options.wscale, options.sack_permitted, ts)
        self.send("SYN,ACK", isn, d.iss + 1, window=window, options=opts)
        self.expect("ACK", seq=d.iss + 1, ack=isn + 1)
        assert conn.state_name == "ESTABLISHED", d.failure("not ESTABLISHED after the handshake")
        return conn
