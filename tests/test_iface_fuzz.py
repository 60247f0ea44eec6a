"""Hostile input: whatever the bytes, the receive path raises nothing and its memory stays bounded.

STYLE.md habit 4: untrusted input is refused by counting a drop, never by an
exception escaping ``Stack.receive``/``Stack.poll``.  The long test feeds
100,000 frames — random bytes, and valid ARP/IPv4/ICMP/UDP/fragment frames
addressed to the stack, mutated (bit flips, truncation, field rewrites with
the header checksum repaired so the mutation reaches the deeper parsers) —
while virtual time advances, and checks every bounded structure after each
frame and the traced memory at the end.  A hypothesis test adds shrinking
examples of arbitrary byte sequences and time steps.
"""

from __future__ import annotations

import gc
import random
import struct
import time
import tracemalloc

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import (
    OUR_IP,
    OUR_MAC,
    PEER_IP,
    PEER_MAC,
    SUBNET_BROADCAST,
    arp_reply,
    arp_request,
    eth,
    fragments,
    icmp_frame,
    ip_frame,
    ip_packet,
    make_stack,
    record,
    udp_frame,
)
from seqs import Stack
from seqs.iface import ArpConfig, ReassemblyConfig
from seqs.services import UdpEchoService
from seqs.wire import ethernet as weth
from seqs.wire import icmp as wicmp
from seqs.wire import ipv4 as wip
from seqs.wire import virtio
from seqs.wire.checksum import checksum
from seqs.wire.icmp import IcmpMessage
from seqs.wire.tcp import SYN, TcpOptions, TcpSegment
from seqs.wire.udp import UdpDatagram

FRAMES = 100_000
WARMUP = 10_000
#: traced memory may grow this much between the end of the warm-up and the end of the run
MEMORY_SLACK = 256 * 1024
#: most frames one input may produce: a reassembled 64 KB echo request is answered in 45 fragments
MAX_TX_PER_STEP = 64


def _config() -> dict[str, object]:
    """Small bounds, so that a run of 100,000 frames reaches every one of them."""
    return {
        "arp": ArpConfig(lifetime=5.0, refresh_ahead=1.0, max_entries=32, pending_per_address=4,
                         max_pending_addresses=8),
        "reassembly": ReassemblyConfig(timeout=0.3, max_datagrams=16, max_bytes=64 * 1024, max_fragments=32),
        "icmp_error_rate": 10.0,
        "icmp_error_burst": 5,
    }


class Target:
    """A stack with something listening: a bound socket, an echo service, a connected
    socket (so ICMP errors find an owner) and a ping socket (so echo replies do)."""

    RCVBUF = 1024

    def __init__(self, *, vnet_hdr: bool = False, seed: int = 1) -> None:
        self.stack: Stack = make_stack(seed=seed, vnet_hdr=vnet_hdr, **_config())
        self.sock = self.stack.udp_socket()
        self.sock.bind(("", 9))
        self.sock.rcvbuf = self.RCVBUF
        self.echo = UdpEchoService(self.stack, 7)
        self.conn = self.stack.udp_socket()
        self.conn.connect(("10.0.0.2", 53))
        self.ping = self.stack.ping_socket()

    def step(self, frame: bytes, now: float) -> int:
        """One frame in, whatever is due run, the outbox emptied; returns frames sent."""
        s = self.stack
        s.receive(frame, now)
        d = s.next_deadline()
        if d is not None and d <= now:
            s.poll(now)
        sent = len(s.take_tx())
        assert s.take_tx() == []
        return sent

    def drain(self) -> None:
        for sock in (self.sock, self.conn):
            for _ in range(10_000):
                try:
                    if sock.recvfrom() is None:
                        break
                except OSError:
                    continue  # an ICMP-reported error, consumed
        for _ in range(10_000):
            if self.ping.recv() is None:
                break

    def check_bounds(self) -> None:
        iface = self.stack.iface
        cfg = iface.config
        r = iface.reassembler
        assert r.held_bytes <= cfg.reassembly.max_bytes
        assert len(r) <= cfg.reassembly.max_datagrams
        assert len(iface.arp) <= cfg.arp.max_entries
        pending = iface.arp._pending
        assert len(pending) <= cfg.arp.max_pending_addresses
        assert all(len(p.packets) <= cfg.arp.pending_per_address for p in pending.values())
        assert len(iface.arp._refreshing) <= cfg.arp.max_entries + cfg.arp.max_pending_addresses
        assert self.sock._queued_bytes <= self.RCVBUF
        assert self.conn._queued_bytes <= self.conn.rcvbuf
        assert len(self.ping._replies) <= self.ping.max_queued
        assert len(iface.timers) <= 16
        assert not iface.tx and not iface.ready
        assert len(iface.stats.drops) < 100  # reasons are a fixed vocabulary


# -- making frames -----------------------------------------------------------------------------


def _templates(target: Target) -> list[bytes]:
    """Valid frames addressed to the stack, one or more per path through the receive code."""
    conn_port = target.conn.local_port
    ours = ip_packet(wip.PROTO_UDP, UdpDatagram(conn_port, 53, b"q").emit(OUR_IP, PEER_IP), src=OUR_IP, dst=PEER_IP)
    unreachable = IcmpMessage(wicmp.TYPE_DEST_UNREACHABLE, wicmp.CODE_PORT_UNREACHABLE, 0, ours[:28])
    big_echo = IcmpMessage.echo(True, 1, 1, bytes(3000)).emit()
    big_udp = UdpDatagram(1000, 9, bytes(range(256)) * 12).emit(PEER_IP, OUR_IP)
    syn = TcpSegment(40000, 80, 12345, flags=SYN, options=TcpOptions(mss=1460)).emit(PEER_IP, OUR_IP)
    t = [
        arp_request(PEER_MAC, PEER_IP, OUR_IP),
        arp_request(PEER_MAC, PEER_IP, PEER_IP + 5),
        arp_request(PEER_MAC, 0, OUR_IP),
        arp_reply(PEER_MAC, PEER_IP),
        udp_frame(1000, 9, b"data for the bound socket"),
        udp_frame(1000, 7, b"echo me"),
        udp_frame(1000, 4444, b"closed port"),
        udp_frame(53, conn_port, b"answer"),
        udp_frame(1000, 9, b"broadcast", dst=SUBNET_BROADCAST, mac_dst=weth.BROADCAST),
        icmp_frame(IcmpMessage.echo(True, 0x1234, 1, b"ping" * 14)),
        icmp_frame(IcmpMessage.echo(False, target.ping.ident, 1, b"pong")),
        icmp_frame(unreachable),
        icmp_frame(IcmpMessage(wicmp.TYPE_TIME_EXCEEDED, 0, 0, ours[:28])),
        ip_frame(wip.PROTO_UDP, UdpDatagram(1000, 9, b"opts").emit(PEER_IP, OUR_IP), options=b"\x01\x01\x01\x00"),
        ip_frame(wip.PROTO_TCP, syn),
        ip_frame(253, b"unknown protocol"),
        weth.EthernetFrame(OUR_MAC, PEER_MAC, weth.ETHERTYPE_IPV4, b"vlan", vlan_id=3).emit(),
    ]
    t += fragments(wip.PROTO_ICMP, big_echo, [1480, 1480])
    t += fragments(wip.PROTO_UDP, big_udp, [1480, 1480])
    t += fragments(wip.PROTO_UDP, big_udp, [8] * 8)
    return t


def _fix_ip_checksum(frame: bytearray, off: int = 14) -> None:
    if len(frame) < off + 20:
        return
    hl = max(20, (frame[off] & 0x0F) * 4)
    if len(frame) < off + hl:
        return
    frame[off + 10 : off + 12] = b"\0\0"
    frame[off + 10 : off + 12] = checksum(frame[off : off + hl]).to_bytes(2, "big")


class Mutator:
    def __init__(self, templates: list[bytes], seed: int) -> None:
        self.templates = templates
        self.r = random.Random(seed)

    def _source(self) -> int:
        r = self.r
        roll = r.random()
        if roll < 0.6:
            return wip.aton("10.0.0.0") + r.randrange(2, 250)  # on-link: fills ARP cache and queue
        if roll < 0.8:
            return PEER_IP
        return r.getrandbits(32)

    def frame(self) -> bytes:
        r = self.r
        kind = r.random()
        if kind < 0.10:
            return r.randbytes(r.randrange(0, 1600))
        if kind < 0.20:
            etype = r.choice((weth.ETHERTYPE_IPV4, weth.ETHERTYPE_ARP, weth.ETHERTYPE_VLAN, r.getrandbits(16)))
            dst = r.choice((OUR_MAC, weth.BROADCAST))
            return eth(r.randbytes(r.randrange(0, 200)), etype, dst=dst)
        f = bytearray(r.choice(self.templates))
        if kind < 0.30:
            return bytes(self._flip(f, 0))
        is_ip = f[12:14] == b"\x08\x00"
        if is_ip:
            fragment = f[20] & 0x3F or f[21]
            if r.random() < (0.05 if fragment else 0.5):  # readdress: another sender, or another destination
                f[26:30] = self._source().to_bytes(4, "big")
            if r.random() < 0.1:
                f[30:34] = r.choice((0xFFFFFFFF, SUBNET_BROADCAST, 0, r.getrandbits(32))).to_bytes(4, "big")
            if r.random() < (0.02 if fragment else 0.1):
                f[18:20] = r.getrandbits(16).to_bytes(2, "big")  # another datagram's fragments
        elif f[12:14] == b"\x08\x06" and r.random() < 0.7:
            f[28:32] = self._source().to_bytes(4, "big")  # ARP sender address
            f[22:28] = f[6:12] = bytes([2, 0, 0, 0, r.randrange(256), r.randrange(256)])
        if kind < 0.55 and is_ip:
            self._rewrite_ip_field(f)
            _fix_ip_checksum(f)
        elif kind < 0.75 and is_ip:
            hl = (f[14] & 0x0F) * 4
            self._flip(f, 14 + hl)  # the transport part: checksum of IP still right
            _fix_ip_checksum(f)
            if r.random() < 0.5 and f[23] == wip.PROTO_UDP and len(f) >= 14 + hl + 8:
                f[14 + hl + 6 : 14 + hl + 8] = b"\0\0"  # "no checksum": let it reach the socket
        elif kind < 0.85:
            del f[r.randrange(0, len(f) + 1) :]
            if is_ip and r.random() < 0.5:
                _fix_ip_checksum(f)
        elif kind < 0.92:
            f += r.randbytes(r.randrange(1, 64))
        elif is_ip:
            _fix_ip_checksum(f)  # readdressed only
        return bytes(f)

    def _flip(self, f: bytearray, start: int) -> bytearray:
        r = self.r
        if len(f) > start:
            for _ in range(r.randrange(1, 9)):
                f[r.randrange(start, len(f))] ^= 1 << r.randrange(8)
        return f

    def _rewrite_ip_field(self, f: bytearray) -> None:
        r = self.r
        if len(f) < 34:
            return
        field = r.randrange(7)
        if field == 0:
            f[14] = r.choice((0x45, 0x46, 0x4F, 0x44, 0x40, 0x55, 0x65, r.randrange(256)))
        elif field == 1:
            total = r.choice((0, 19, 20, 21, len(f) - 14, len(f) - 13, 0xFFFF, r.getrandbits(16)))
            struct.pack_into("!H", f, 16, max(0, min(total, 0xFFFF)))
        elif field == 2:
            off = r.choice((0, 1, 185, 370, 8191, r.getrandbits(13)))
            flags = r.choice((0, wip.FLAG_MF, wip.FLAG_DF, wip.FLAG_DF | wip.FLAG_MF))
            struct.pack_into("!H", f, 20, flags | off)
        elif field == 3:
            f[23] = r.choice((wip.PROTO_ICMP, wip.PROTO_UDP, wip.PROTO_TCP, 0, 255, r.randrange(256)))
        elif field == 4:
            f[22] = r.choice((0, 1, 255))  # TTL: not ours to check
        else:
            f[r.randrange(14, 34)] = r.randrange(256)


# -- the tests -----------------------------------------------------------------------------------


def test_100000_random_and_mutated_frames_raise_nothing_and_memory_stays_bounded() -> None:
    target = Target()
    mutator = Mutator(_templates(target), seed=20240501)
    r = random.Random(7)
    now = 0.0
    most_sent = 0
    baseline = 0
    started = time.monotonic()
    gc.collect()
    tracemalloc.start()
    try:
        for i in range(FRAMES):
            now += r.random() * 0.002  # about 100 s of virtual time: every timeout fires many times
            frame = mutator.frame()
            try:
                sent = target.step(frame, now)
            except Exception as e:
                raise AssertionError(f"frame {i} at t={now:.4f} raised: {frame.hex()}") from e
            most_sent = max(most_sent, sent)
            target.check_bounds()
            if i % 1000 == 0:
                target.drain()
            if i == WARMUP - 1:
                gc.collect()
                baseline = tracemalloc.get_traced_memory()[0]
        gc.collect()
        final = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    elapsed = time.monotonic() - started
    st = target.stack.stats
    record("iface_100000_frames", frames=FRAMES, seconds=round(elapsed, 1), traced_bytes_after_warmup=baseline,
           traced_bytes_at_end=final, growth_bytes=final - baseline, most_sent_per_frame=most_sent,
           dropped=st.dropped, rx_frames=st.rx_frames)
    assert most_sent <= MAX_TX_PER_STEP
    assert final - baseline < MEMORY_SLACK, f"traced memory grew {final - baseline} bytes after warm-up"
    # The run reached the deep paths, not only the parsers' front doors.
    for counter in ("udp_rx", "icmp_rx", "arp_rx", "ipv4_reassembled", "icmp_errors_rx", "icmp_errors_tx"):
        assert getattr(st, counter) > 0, (counter, st)
    for reason in ("ipv4_reasm_timeout", "ipv4_reasm_evicted", "ipv4_frag_overlap", "arp_unresolved",
                   "arp_cache_evicted", "udp_rcvbuf_full", "icmp_error_rate_limited", "ipv4_bad_checksum",
                   "udp_bad_checksum"):
        assert st.drops.get(reason, 0) > 0, (reason, st.drops)
    assert elapsed < 120, f"{elapsed:.1f} s"


def _frame_strategy() -> st.SearchStrategy[bytes]:
    def ipv4(fields: tuple[int, int, int, int, int, int, int, bytes], options: bytes, payload: bytes) -> bytes:
        vihl, total, ident, ff, proto, src, dst, _ = fields
        hdr = bytearray(struct.pack("!BBHHHBBHII", vihl, 0, total, ident, ff, 64, proto, 0, src, dst)) + options
        hdr[10:12] = checksum(hdr).to_bytes(2, "big")
        return eth(bytes(hdr) + payload)

    addresses = st.one_of(st.sampled_from([OUR_IP, PEER_IP, SUBNET_BROADCAST, 0xFFFFFFFF, 0, wip.aton("224.0.0.1")]),
                          st.integers(0, 0xFFFFFFFF))
    fields = st.tuples(
        st.one_of(st.just(0x45), st.integers(0, 255)),
        st.integers(0, 0xFFFF),
        st.integers(0, 3),
        st.one_of(st.just(0), st.just(wip.FLAG_MF), st.integers(0, 0xFFFF)),
        st.sampled_from([wip.PROTO_ICMP, wip.PROTO_UDP, wip.PROTO_TCP, 253]),
        addresses,
        addresses,
        st.just(b""),
    )
    return st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=300).map(lambda b: eth(b, weth.ETHERTYPE_ARP, dst=weth.BROADCAST)),
        st.binary(max_size=300).map(eth),
        st.builds(ipv4, fields, st.sampled_from([b"", b"\x01\x01\x01\x00", b"\x00" * 40]), st.binary(max_size=300)),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    vnet_hdr=st.booleans(),
    steps=st.lists(st.tuples(_frame_strategy(), st.floats(0.0, 10.0, allow_nan=False)), max_size=40),
)
def test_arbitrary_byte_sequences_with_time_steps_raise_nothing(vnet_hdr: bool, steps: list[tuple[bytes, float]]) -> None:
    target = Target(vnet_hdr=vnet_hdr)
    prefix = virtio.ZERO if vnet_hdr else b""
    now = 0.0
    for frame, dt in steps:
        now += dt
        target.step(prefix + frame, now)
        target.check_bounds()
    target.stack.poll(now + 100.0)  # every timer fires
    target.stack.take_tx()
    target.check_bounds()
