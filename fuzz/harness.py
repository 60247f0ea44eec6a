"""What the stateful fuzz targets share: a small host with every kind of listener,
a byte reader for structured inputs, the invariants checked after every step,
and a scripted TCP peer that drives a connection into any RFC 9293 state.

Everything is deterministic for a given input: the stack's random generator
is seeded and time only moves as the input says, so a crashing input replays
exactly (``python -m fuzz replay TARGET FILE``).
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Sequence

from seqs import Stack
from seqs._typing import BytesLike
from seqs.iface import ArpConfig, InterfaceConfig, ReassemblyConfig
from seqs.services import UdpEchoService
from seqs.services.tcp_basic import ChargenService, DiscardService, TcpEchoService
from seqs.sockets.tcp import TcpListener
from seqs.sockets.udp import UdpSocket
from seqs.tcp.connection import CLOSED, TcpConfig, TcpConnection
from seqs.wire import arp as warp
from seqs.wire import ethernet as weth
from seqs.wire import ipv4 as wip
from seqs.wire import tcp as wtcp
from seqs.wire.checksum import checksum, pseudo_header_sum

__all__ = [
    "HOST_IP",
    "HOST_MAC",
    "PEER_IP",
    "PEER_MAC",
    "Host",
    "Reader",
    "check_connection",
    "check_stack",
    "fix_checksums",
    "settle",
]

HOST_MAC = bytes.fromhex("020000000001")
PEER_MAC = bytes.fromhex("020000000002")
HOST_IP = wip.aton("10.0.0.1")
PEER_IP = wip.aton("10.0.0.2")
GATEWAY_IP = wip.aton("10.0.0.254")

#: ports of the host's services
ECHO, DISCARD, CHARGEN = 7, 9, 19
#: the host's active connection goes to this peer port (nobody answers it unless the input does)
PEER_SERVER_PORT = 80
#: the most frames one input step may make the stack send (a reassembled 64 KB ping
#: answered in fragments is the largest legitimate burst)
MAX_TX_PER_STEP = 256


def tcp_config() -> TcpConfig:
    """Small buffers and short timers, so short inputs reach every bound and timer."""
    return TcpConfig(rcvbuf=4096, sndbuf=4096, max_ooo_segments=4, rto_initial=0.2, rto_min=0.05, rto_max=2.0,
                     max_retries=3, syn_retries=2, msl=1.0, fin_wait2_timeout=3.0, keepalive=True,
                     keepalive_idle=5.0, keepalive_interval=1.0, keepalive_count=2)


def interface_config() -> InterfaceConfig:
    return InterfaceConfig(
        mac=HOST_MAC, address=HOST_IP, prefix=24, gateway=GATEWAY_IP,
        arp=ArpConfig(lifetime=5.0, refresh_ahead=1.0, max_entries=8, pending_per_address=2, max_pending_addresses=4),
        reassembly=ReassemblyConfig(timeout=1.0, max_datagrams=4, max_bytes=16 * 1024, max_fragments=16),
        icmp_error_rate=20.0, icmp_error_burst=5,
    )


class Host:
    """A seeded stack at 10.0.0.1 that knows the peer 10.0.0.2's MAC and runs UDP echo (7),
    TCP echo (7), discard (9) and chargen (19), with a connected UDP socket, a ping
    socket and an active TCP open to the peer's port 80 (SYN-SENT until the input answers)."""

    def __init__(self, *, services: bool = True) -> None:
        self.now = 0.0
        self.stack = Stack(config=interface_config(), rng=random.Random(0), tcp_config=tcp_config())
        self.stack.tcp.max_connections = 12
        self.stack.receive(_arp_request(PEER_MAC, PEER_IP, HOST_IP), 0.0)
        self.stack.take_tx()
        self.listeners: list[TcpListener] = []
        self.udp = self.stack.udp_socket()
        self.udp.rcvbuf = 2048
        if services:
            UdpEchoService(self.stack, ECHO)
            for svc in (TcpEchoService(self.stack, ECHO), DiscardService(self.stack, DISCARD),
                        ChargenService(self.stack, CHARGEN, limit=20_000)):
                svc.listener.backlog = 2
                svc.listener.max_half_open = 3
                self.listeners.append(svc.listener)
            self.udp.connect(("10.0.0.2", 5353))
            self.ping = self.stack.ping_socket()
            self.active = self.stack.tcp_connect(("10.0.0.2", PEER_SERVER_PORT), local_port=40001)
            self.stack.poll(0.0)
            self.stack.take_tx()

    def step(self, dt: float) -> None:
        """Advance time by ``dt``, run what is due, drop the output, check every bound."""
        self.now += dt
        settle(self.stack, self.now)
        check_stack(self.stack, self.listeners, [self.udp])

    def receive(self, frame: bytes) -> None:
        self.stack.receive(frame, self.now)
        self.step(0.0)


def settle(stack: Stack, now: float) -> list[BytesLike]:
    """Poll until nothing is due at ``now``; a deadline that stays due is a busy loop.
    Returns the frames the stack sent meanwhile (callers that play the peer read them)."""
    out: list[BytesLike] = []
    for _ in range(16):
        d = stack.next_deadline()
        if d is None or d > now:
            break
        stack.poll(now)
        tx = stack.take_tx()
        assert len(tx) <= MAX_TX_PER_STEP, f"{len(tx)} frames from one step"
        out += tx
    else:
        raise AssertionError(f"deadline {stack.next_deadline()} still due after 16 polls at {now}")
    tx = stack.take_tx()
    assert len(tx) <= MAX_TX_PER_STEP, f"{len(tx)} frames from one step"
    out += tx
    return out


def check_connection(conn: TcpConnection) -> None:
    """The invariants of one connection (STYLE.md habit 4: memory stays bounded)."""
    c = conn.config
    assert conn.snd_una <= conn.snd_nxt <= conn.snd_max, (conn, conn.snd_una, conn.snd_nxt, conn.snd_max)
    assert 0 <= conn.buffered <= c.sndbuf, (conn, conn.buffered)
    ooo = conn._ooo
    assert len(ooo) <= c.max_ooo_segments, (conn, len(ooo))
    held = conn.unread + sum(len(d) for _, d in ooo)
    assert held <= c.rcvbuf, (conn, held)
    assert conn.rcv_adv - conn.rcv_nxt <= c.rcvbuf, (conn, conn.rcv_adv - conn.rcv_nxt)
    d = conn.deadline()
    assert d is None or math.isfinite(d), (conn, d)
    assert len(conn._sacked) <= 32


def check_stack(stack: Stack, listeners: Sequence[TcpListener] = (), udp_sockets: Sequence[UdpSocket] = ()) -> None:
    """The bounds of every structure the network can make the stack fill."""
    iface = stack.iface
    cfg = iface.config
    r = iface.reassembler
    assert len(r) <= cfg.reassembly.max_datagrams, len(r)
    assert 0 <= r.held_bytes <= cfg.reassembly.max_bytes, r.held_bytes
    assert len(iface.arp) <= cfg.arp.max_entries, len(iface.arp)
    pending = iface.arp._pending
    assert len(pending) <= cfg.arp.max_pending_addresses
    assert all(len(p.packets) <= cfg.arp.pending_per_address for p in pending.values())
    table = stack.tcp
    assert len(table) <= table.max_connections, len(table)
    for conn in table.connections:
        assert conn.state != CLOSED, f"{conn} is CLOSED but still in the table"
        check_connection(conn)
    for lst in listeners:
        assert lst.half_open <= lst.max_half_open, (lst.half_open, lst.max_half_open)
        assert lst.pending <= lst.backlog, (lst.pending, lst.backlog)
    for sock in udp_sockets:
        assert sock._queued_bytes <= sock.rcvbuf, (sock._queued_bytes, sock.rcvbuf)
    d = stack.next_deadline()
    assert d is None or math.isfinite(d), d


class Reader:
    """Structured values from the fuzzer's bytes; reads past the end give zeros."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    @property
    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        b = self.data[self.pos : self.pos + n]
        self.pos += len(b)
        return b

    def u8(self) -> int:
        b = self.take(1)
        return b[0] if b else 0

    def u16(self) -> int:
        return int.from_bytes(self.take(2).ljust(2, b"\0"), "big")

    def i32(self) -> int:
        return int.from_bytes(self.take(4).ljust(4, b"\0"), "big", signed=True)

    def u32(self) -> int:
        return int.from_bytes(self.take(4).ljust(4, b"\0"), "big")


def _arp_request(sha: bytes, spa: int, tpa: int) -> bytes:
    pkt = warp.ArpPacket(warp.OP_REQUEST, sha, spa, bytes(6), tpa).emit()
    return weth.build_header(weth.BROADCAST, sha, weth.ETHERTYPE_ARP) + pkt


def ip_frame(proto: int, payload: bytes, *, src: int = PEER_IP, dst: int = HOST_IP, ident: int = 1,
             flags_frag: int = 0, ttl: int = 64) -> bytes:
    hdr = wip.build_header(src, dst, proto, len(payload), ident=ident, ttl=ttl, flags_frag=flags_frag)
    return weth.build_header(HOST_MAC, PEER_MAC, weth.ETHERTYPE_IPV4) + hdr + payload


def tcp_segment(sport: int, dport: int, seq: int, ack: int, flags: int, wnd: int, options: bytes = b"",
                payload: bytes = b"", *, src: int = PEER_IP, dst: int = HOST_IP) -> bytes:
    """A TCP segment with raw option bytes (padded with EOL to a multiple of 4)."""
    options = options[:40]
    if len(options) % 4:
        options += bytes(4 - len(options) % 4)
    hl = 20 + len(options)
    seg = bytearray(wtcp.HDR.pack(sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, (hl // 4) << 4, flags & 0xFF,
                                  wnd & 0xFFFF, 0, 0))
    seg += options
    seg += payload
    c = checksum(seg, pseudo_header_sum(src, dst, wip.PROTO_TCP, len(seg)))
    struct.pack_into("!H", seg, 16, c)
    return bytes(seg)


def fix_checksums(frame: bytearray) -> None:
    """Repair the IPv4 header checksum and, for an unfragmented TCP/UDP/ICMP packet, the
    transport checksum, so a mutation gets past the checksums to the parsers behind them."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return
    ip = memoryview(frame)[14:]
    hl = (ip[0] & 0x0F) * 4
    if hl < 20 or len(ip) < hl:
        return
    total = min(int.from_bytes(ip[2:4], "big"), len(ip))
    ip[10:12] = b"\0\0"
    ip[10:12] = checksum(ip[:hl]).to_bytes(2, "big")
    if int.from_bytes(ip[6:8], "big") & 0x3FFF or total < hl:
        return
    l4 = ip[hl:total]
    proto = ip[9]
    src = int.from_bytes(ip[12:16], "big")
    dst = int.from_bytes(ip[16:20], "big")
    if proto == wip.PROTO_TCP and len(l4) >= 20:
        l4[16:18] = b"\0\0"
        l4[16:18] = checksum(l4, pseudo_header_sum(src, dst, proto, len(l4))).to_bytes(2, "big")
    elif proto == wip.PROTO_UDP and len(l4) >= 8:
        l4[6:8] = b"\0\0"
        c = checksum(l4, pseudo_header_sum(src, dst, proto, len(l4)))
        l4[6:8] = (c or 0xFFFF).to_bytes(2, "big")
    elif proto == wip.PROTO_ICMP and len(l4) >= 4:
        l4[2:4] = b"\0\0"
        l4[2:4] = checksum(l4).to_bytes(2, "big")
