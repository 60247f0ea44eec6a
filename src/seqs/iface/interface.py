"""The network interface: Ethernet in and out, ARP, IPv4, ICMP — sans-IO.

An :class:`Interface` owns one Ethernet link's worth of host state: its MAC and
IPv4 configuration, the neighbour cache, the reassembly buffers, the ICMP
error rate limiter, the single timer heap of the stack, and the outbox of
frames to send.  Transport protocols plug in from above through
:meth:`Interface.register_protocol`; the interface never imports them.

The contract with whoever drives it (a runtime, a simulator, a test):

* ``receive(frame, now)`` — one Ethernet frame in (with the 12-byte
  virtio-net header in front when ``config.vnet_hdr`` is set);
* ``poll(now)`` — run what is due: timers, loopback delivery, socket output;
* ``take_tx()`` — the frames produced since the last call, in order;
* ``next_deadline()`` — when ``poll`` must next be called (None: only on input).

Time is a float of monotonic seconds and only ever arrives as an argument.
Nothing here raises on input: every refusal is a counted drop in ``stats``.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from .._typing import BytesLike
from ..errors import ParseError
from ..wire import arp as warp
from ..wire import ethernet as weth
from ..wire import icmp as wicmp
from ..wire import ipv4 as wip
from ..wire import virtio
from ..wire.checksum import checksum
from .arp import ArpCache, ArpConfig
from .reassembly import Reassembler, ReassemblyConfig
from .stats import Stats
from .timers import TimerHeap

__all__ = ["ArpListener", "ErrorHandler", "Interface", "InterfaceConfig", "OutputOwner", "TransportHandler"]

#: ``handler(src, dst, transport_bytes, now, checksum_verified) -> delivered``.
#: Returning False for a unicast packet makes the interface answer with ICMP
#: protocol/port unreachable (the handler decides which by ``unreachable_code``).
TransportHandler = Callable[[int, int, memoryview, float, bool], bool]
#: ``handler(icmp_type, icmp_code, quoted_datagram, next_hop_mtu, now)``.
ErrorHandler = Callable[[int, int, wicmp.QuotedDatagram, int, float], None]
#: ``listener(src, ident, seq, payload, now, ttl)`` for echo replies.
EchoListener = Callable[[int, int, int, bytes, float, int], None]
#: ``listener(op, sender_mac, sender_ip, target_ip, now)`` for every well-formed ARP packet
#: received (RFC 5227 address conflict detection watches them).
ArpListener = Callable[[int, bytes, int, int, float], None]


class OutputOwner(Protocol):
    """Something with queued output to flush when the interface is polled."""

    def flush(self, now: float) -> None: ...


@dataclass(slots=True)
class InterfaceConfig:
    mac: bytes
    #: 0 = unconfigured (then any IPv4 unicast is accepted, for a DHCP client)
    address: int = 0
    prefix: int = 0
    gateway: int | None = None
    mtu: int = 1500
    #: default TTL of packets we originate (RFC 1700 recommends 64)
    ttl: int = 64
    #: frames carry a virtio-net header (TAP opened with IFF_VNET_HDR)
    vnet_hdr: bool = False
    #: RFC 1122 §3.2.2.6 allows ignoring echo requests to broadcast; Linux does by default
    answer_broadcast_ping: bool = False
    #: token bucket for ICMP errors we originate (RFC 1812 §4.3.2.8, RFC 1122 §3.2.2)
    icmp_error_rate: float = 100.0
    icmp_error_burst: int = 50
    arp: ArpConfig = field(default_factory=ArpConfig)
    reassembly: ReassemblyConfig = field(default_factory=ReassemblyConfig)

    def __post_init__(self) -> None:
        if len(self.mac) != 6 or self.mac[0] & 1:
            raise ValueError("interface MAC must be a 6-byte unicast address")
        if not 576 <= self.mtu <= 65535:
            raise ValueError(f"MTU {self.mtu} out of range 576..65535")
        if not 0 <= self.prefix <= 32:
            raise ValueError("prefix length must be 0..32")
        if not 1 <= self.ttl <= 255:
            raise ValueError("TTL must be 1..255")


#: the fast path's one unpack: destination MAC, EtherType; IPv4 version/IHL, total
#: length, flags/fragment offset, protocol, source, destination
_FAST_HDR = struct.Struct("!6s6xHBxHxxHxBxxII")
_IP_WORDS = struct.Struct("!10H")  # the fixed IPv4 header as the words its checksum sums
_U16 = struct.Struct("!H")
_LOOPBACK_NET = 0x7F000000


class Interface:
    """See the module docstring.  Attributes are public for reading; change the
    configuration through :meth:`set_address` so dependent state stays right."""

    def __init__(self, config: InterfaceConfig, *, rng: random.Random | None = None) -> None:
        self.config = config
        self.rng = rng or random.SystemRandom()
        self.stats = Stats()
        self.timers = TimerHeap()
        #: frames produced and not yet taken by the driver
        self.tx: list[BytesLike] = []
        #: callbacks to run after input/poll processing (socket readiness)
        self.ready: list[Callable[[], None]] = []
        #: the latest time the driver told us
        self.now = 0.0
        self.mac = config.mac
        self.mtu = config.mtu
        self.address = 0
        self.prefix = 0
        self.netmask = 0
        self.network = 0
        self.directed_broadcast = 0xFFFFFFFF
        self.gateway: int | None = None
        self.multicast_groups: set[int] = {0xE0000001}  # all-hosts, RFC 1112 §4
        self.arp = ArpCache(config.arp, self.stats, self._send_arp_request, self._send_resolved)
        self.reassembler = Reassembler(config.reassembly, self.stats)
        self._protocols: dict[int, TransportHandler] = {}
        self._unreachable: dict[int, int] = {}
        self._error_handlers: dict[int, ErrorHandler] = {}
        self._echo_listeners: list[EchoListener] = []
        self._arp_listeners: list[ArpListener] = []
        self._loopback: list[bytes] = []
        self._outputs: list[OutputOwner] = []
        self._output_set: set[int] = set()
        self._ip_ident = self.rng.getrandbits(16)
        self._icmp_tokens = float(config.icmp_error_burst)
        self._icmp_refill_at = 0.0
        self._l2_prefix = virtio.ZERO if config.vnet_hdr else b""
        #: send TCP with NEEDS_CSUM (the kernel fills in the checksum)
        self.tx_csum_offload = False
        #: send TCP super-segments (the kernel splits them at the MSS)
        self.tso = False
        self._hdr_off = virtio.HEADER_LEN if config.vnet_hdr else 0
        self.set_address(config.address, config.prefix, config.gateway, announce=False)

    # ------------------------------------------------------------------ config

    def set_address(
        self, address: int, prefix: int, gateway: int | None = None, *, announce: bool = True
    ) -> None:
        """Configure (or clear, with 0) the IPv4 address; announce it with a
        gratuitous ARP (RFC 5227 §3) so neighbours update their caches."""
        if not 0 <= prefix <= 32:
            raise ValueError("prefix length must be 0..32")
        changed = address != self.address
        self.address = address
        self.prefix = prefix
        self.netmask = wip.prefix_mask(prefix) if address else 0
        self.network = address & self.netmask
        self.directed_broadcast = (self.network | (~self.netmask & 0xFFFFFFFF)) if prefix < 31 else 0xFFFFFFFF
        if gateway is not None and address and prefix and (gateway & self.netmask) != self.network:
            raise ValueError("gateway is not on the interface's subnet")
        self.gateway = gateway
        if changed:
            self.arp.flush()
            if address and announce:
                self.announce()

    def announce(self) -> None:
        """Send a gratuitous ARP request for our address (RFC 5227 §3 announcement)."""
        if self.address:
            pkt = warp.ArpPacket(warp.OP_REQUEST, self.mac, self.address, bytes(6), self.address).emit()
            self._emit(weth.BROADCAST, weth.ETHERTYPE_ARP, pkt)
            self.stats.arp_tx += 1

    def arp_probe(self, ip: int) -> None:
        """Send an ARP probe for ``ip`` (RFC 5227 §2.1.1): a broadcast request with
        sender IP 0.0.0.0, so no neighbour caches anything from it."""
        pkt = warp.ArpPacket(warp.OP_REQUEST, self.mac, 0, bytes(6), ip).emit()
        self._emit(weth.BROADCAST, weth.ETHERTYPE_ARP, pkt)
        self.stats.arp_tx += 1

    def add_arp_listener(self, listener: ArpListener) -> None:
        self._arp_listeners.append(listener)

    def remove_arp_listener(self, listener: ArpListener) -> None:
        if listener in self._arp_listeners:
            self._arp_listeners.remove(listener)

    def register_protocol(
        self, proto: int, handler: TransportHandler, error_handler: ErrorHandler | None = None,
        *, unreachable_code: int = wicmp.CODE_PORT_UNREACHABLE,
    ) -> None:
        self._protocols[proto] = handler
        self._unreachable[proto] = unreachable_code
        if error_handler is not None:
            self._error_handlers[proto] = error_handler

    def add_echo_listener(self, listener: EchoListener) -> None:
        self._echo_listeners.append(listener)

    def remove_echo_listener(self, listener: EchoListener) -> None:
        if listener in self._echo_listeners:
            self._echo_listeners.remove(listener)

    def want_output(self, owner: OutputOwner) -> None:
        """``owner.flush(now)`` will run at the next :meth:`poll`."""
        key = id(owner)
        if key not in self._output_set:
            self._output_set.add(key)
            self._outputs.append(owner)

    # ------------------------------------------------------------------ driver API

    def take_tx(self) -> list[BytesLike]:
        out = self.tx
        self.tx = []
        return out

    def next_deadline(self) -> float | None:
        if self._loopback or self._outputs or self.ready or self.reassembler.expired:
            return self.now
        return self.timers.next_deadline()

    def poll(self, now: float) -> None:
        if now > self.now:
            self.now = now
        self.timers.run(now)
        if self.reassembler.expired:
            quotes = self.reassembler.expired
            self.reassembler.expired = []
            for q in quotes:
                self._icmp_error_for_quote(wicmp.TYPE_TIME_EXCEEDED, wicmp.CODE_REASSEMBLY_TIMEOUT, q, now)
        # Readiness first, so what the application writes in answer leaves in this same
        # poll and carries the ACK (and a window it updated by reading); then output;
        # then loopback.  Bounded: the three can feed each other.
        for _ in range(4):
            if self.ready:
                self.run_ready()
            if self._outputs:
                owners = self._outputs
                self._outputs = []
                self._output_set.clear()
                for owner in owners:
                    owner.flush(now)
            if self._loopback:
                packets = self._loopback
                self._loopback = []
                for p in packets:
                    self._receive_ipv4(memoryview(p), now, True, True)
            if not (self.ready or self._outputs or self._loopback):
                break

    def run_ready(self) -> None:
        while self.ready:
            callbacks = self.ready
            self.ready = []
            for cb in callbacks:
                cb()

    # ------------------------------------------------------------------ ingress

    def receive(self, frame: BytesLike, now: float) -> None:
        """Process one frame.  Never raises because of its content."""
        if now > self.now:
            self.now = now
        st = self.stats
        st.rx_frames += 1
        n = len(frame)
        st.rx_bytes += n
        o = self._hdr_off
        # The fast path, which nearly all of a busy host's traffic takes: unicast IPv4
        # to our MAC and address, no IP options, not a fragment, a total length that
        # fits the frame, a valid source and a good header checksum.  One unpack
        # replaces the general path's per-layer views and slices (measured with
        # bench/rx.py: about a third of the per-segment cost of a bulk receiver).
        # Anything else, or anything this path is unsure of, takes the general path,
        # which parses again and counts the exact drop reason.
        if n >= o + 34:
            dmac, etype, vihl, total, ff, proto, src, dst = _FAST_HDR.unpack_from(frame, o)
            if (
                etype == 0x0800
                and vihl == 0x45
                and dst == self.address
                and dst
                and dmac == self.mac
                and not ff & 0x3FFF
                and 20 <= total <= n - o - 14
                and src != self.directed_broadcast
                and (src >> 24) != 127
                and (src >> 28) < 14  # RFC 1122 §3.2.1.3: no multicast or broadcast source
                and sum(_IP_WORDS.unpack_from(frame, o + 14)) % 0xFFFF == 0
            ):
                st.ipv4_rx += 1
                # NEEDS_CSUM frames come from the local kernel with only the pseudo-header
                # sum filled in; DATA_VALID ones were already checked.  Trust both.
                trusted = o != 0 and frame[0] & (virtio.F_NEEDS_CSUM | virtio.F_DATA_VALID) != 0
                end = o + 14 + total
                handler = self._protocols.get(proto)
                if handler is not None:
                    if not handler(src, dst, memoryview(frame)[o + 34 : end], now, trusted):
                        self._refused(proto, dst, memoryview(frame)[o + 14 : end], now)
                    return
                packet = memoryview(frame)[o + 14 : end]
                self._deliver(proto, src, dst, packet[20:], now, trusted, packet)
                return
        self._receive_frame(frame, now)

    def _receive_frame(self, frame: BytesLike, now: float) -> None:
        """The general path of :meth:`receive` (the frame is counted already)."""
        st = self.stats
        mv = memoryview(frame)
        trusted = False
        if self._hdr_off:
            if len(mv) < virtio.HEADER_LEN:
                st.drop("vnet_truncated")
                return
            trusted = bool(mv[0] & (virtio.F_NEEDS_CSUM | virtio.F_DATA_VALID))
            mv = mv[virtio.HEADER_LEN :]
        n = len(mv)
        if n < weth.HEADER_LEN:
            st.drop("eth_truncated")
            return
        if not (mv[0] & 1) and mv[0:6] != self.mac:
            st.drop("eth_not_for_us")
            return
        etype = mv[12] << 8 | mv[13]
        if etype == weth.ETHERTYPE_IPV4:
            self._receive_ipv4(mv[14:], now, trusted, False)
        elif etype == weth.ETHERTYPE_ARP:
            self._receive_arp(mv[14:], now)
        elif etype in (weth.ETHERTYPE_VLAN, weth.ETHERTYPE_QINQ):
            try:
                weth.EthernetView(mv)
            except ParseError as e:
                st.drop(e.reason)
                return
            st.drop("eth_vlan_not_configured")
        else:
            st.drop("eth_unknown_type")

    def _receive_arp(self, mv: memoryview, now: float) -> None:
        st = self.stats
        try:
            a = warp.ArpView(mv)
        except ParseError as e:
            st.drop(e.reason)
            return
        st.arp_rx += 1
        if self._arp_listeners:
            for listener in list(self._arp_listeners):
                listener(a.op, a.sha, a.spa, a.tpa, now)
        if a.sha[0] & 1 or a.spa == 0xFFFFFFFF or wip.is_multicast(a.spa):
            st.drop("arp_bad_sender")
            return
        if a.spa == 0:
            # RFC 5227 probe: tells us nothing to cache; answer if it is for us.
            if a.op == warp.OP_REQUEST and a.tpa == self.address and self.address:
                self._arp_reply(a.sha, a.spa)
            return
        for_us = self.address != 0 and a.tpa == self.address
        if a.spa == self.address and self.address:
            st.drop("arp_address_conflict")
            return
        self.arp.update(a.spa, a.sha, now, create=for_us)
        if a.op == warp.OP_REQUEST:
            if for_us:
                self._arp_reply(a.sha, a.spa)
            else:
                st.drop("arp_not_for_us")

    def _arp_reply(self, tha: bytes, tpa: int) -> None:
        pkt = warp.ArpPacket(warp.OP_REPLY, self.mac, self.address, tha, tpa).emit()
        self._emit(tha if tpa else weth.BROADCAST, weth.ETHERTYPE_ARP, pkt)
        self.stats.arp_tx += 1

    def _receive_ipv4(self, mv: memoryview, now: float, trusted: bool, local: bool) -> None:
        st = self.stats
        n = len(mv)
        if n < 20:
            st.drop("ipv4_truncated")
            return
        vihl, _tos, total, ident, ff, _ttl, proto, _ck, src, dst = wip.HDR.unpack_from(mv, 0)
        if vihl != 0x45:
            if vihl >> 4 != 4:
                st.drop("ipv4_bad_version")
                return
            hl = (vihl & 0x0F) * 4
            if hl < 20:
                st.drop("ipv4_bad_header_len")
                return
        else:
            hl = 20
        if total < hl or total > n:
            st.drop("ipv4_bad_total_len")
            return
        if total != n:
            mv = mv[:total]  # Ethernet padding
        if not local and checksum(mv[:hl]) != 0:
            st.drop("ipv4_bad_checksum")
            return
        if dst != self.address:
            if dst == 0xFFFFFFFF or dst == self.directed_broadcast:
                pass
            elif wip.is_multicast(dst):
                if dst not in self.multicast_groups:
                    st.drop("ipv4_multicast_not_joined")
                    return
            elif self.address != 0 and (dst >> 24) != 127:
                st.drop("ipv4_not_for_us")
                return
        # RFC 1122 §3.2.1.3: a broadcast (limited or directed), multicast or loopback
        # source is invalid, and such a datagram MUST be silently discarded.
        if (
            src == 0xFFFFFFFF
            or wip.is_multicast(src)
            or (src == self.directed_broadcast and self.address)
            or ((src >> 24) == 127 and not local)
        ):
            st.drop("ipv4_bad_source")
            return
        st.ipv4_rx += 1
        if ff & 0x3FFF:  # MF or a fragment offset
            st.ipv4_frag_rx += 1
            offset = (ff & wip.OFFSET_MASK) * 8
            quote = bytes(mv[: hl + 8]) if offset == 0 else None
            whole = self.reassembler.add(
                (src, dst, ident, proto), offset, bool(ff & wip.FLAG_MF), bytes(mv[hl:]), quote, now
            )
            self.timers.update(self.reassembler)
            if whole is None:
                return
            st.ipv4_reassembled += 1
            # The reassembled datagram is whole, not a fragment (RFC 1122 §3.2.2 exempts only
            # non-initial fragments from ICMP errors), so the header an error quotes has the
            # fragment fields cleared and the whole length, as Linux's ip_frag_reasm makes it.
            header = bytearray(mv[:hl])
            _U16.pack_into(header, wip.OFF_TOTAL_LEN, min(hl + len(whole), 0xFFFF))
            _U16.pack_into(header, 6, 0)  # flags and fragment offset
            _U16.pack_into(header, wip.OFF_CHECKSUM, 0)
            _U16.pack_into(header, wip.OFF_CHECKSUM, checksum(header))
            payload = memoryview(whole)
            self._deliver(proto, src, dst, payload, now, False, bytes(header))
            return
        self._deliver(proto, src, dst, mv[hl:], now, trusted or local, mv)

    def _deliver(
        self, proto: int, src: int, dst: int, payload: memoryview, now: float, trusted: bool,
        packet: memoryview | bytes,
    ) -> None:
        """Hand a (reassembled) IP payload to its protocol.  ``packet`` is the IP
        packet or, for a reassembled one, the first fragment's header (for quoting)."""
        if proto == wip.PROTO_ICMP:
            self._receive_icmp(src, dst, payload, now, packet)
            return
        handler = self._protocols.get(proto)
        if handler is not None and handler(src, dst, payload, now, trusted):
            return
        self._refused(proto, dst, packet, now, payload)

    def _refused(
        self, proto: int, dst: int, packet: memoryview | bytes, now: float, payload: memoryview | None = None
    ) -> None:
        """No protocol or no socket took the datagram: ICMP protocol or port
        unreachable if it was addressed to us (RFC 1122 §3.2.2.1).  ``packet`` is
        the IP packet (or, reassembled, its first header) and ``payload`` its
        payload when that is not ``packet``'s own."""
        if proto in self._protocols:
            code = self._unreachable[proto]
        else:
            self.stats.drop("ipv4_unknown_protocol")
            code = wicmp.CODE_PROTO_UNREACHABLE
        if dst == self.address:
            hl = (packet[0] & 0x0F) * 4
            head = payload[:8] if payload is not None else packet[hl : hl + 8]
            quote = bytes(packet[:hl]) + bytes(head)
            self._icmp_error_for_quote(wicmp.TYPE_DEST_UNREACHABLE, code, quote, now)

    def _receive_icmp(self, src: int, dst: int, mv: memoryview, now: float, packet: memoryview | bytes) -> None:
        st = self.stats
        try:
            msg = wicmp.IcmpView(mv)
        except ParseError as e:
            st.drop(e.reason)
            return
        if checksum(mv) != 0:
            st.drop("icmp_bad_checksum")
            return
        st.icmp_rx += 1
        t = msg.type
        if t == wicmp.TYPE_ECHO_REQUEST:
            # Not for our own address (or loopback, RFC 1122 §3.2.1.3(g)): a broadcast or multicast.
            if dst != self.address and not self.is_local(dst) and not self.config.answer_broadcast_ping:
                st.drop("icmp_echo_to_broadcast")
                return
            if self.address == 0:
                st.drop("icmp_echo_unconfigured")
                return
            # RFC 1122 §3.2.2.6: the reply carries the request's data unchanged.
            reply = bytearray(mv)
            reply[0] = wicmp.TYPE_ECHO_REPLY
            reply[2] = reply[3] = 0
            c = checksum(reply)
            reply[2] = c >> 8
            reply[3] = c & 0xFF
            try:
                self.send_ipv4(src, wip.PROTO_ICMP, reply, now, df=False)
            except OSError:
                st.drop("icmp_echo_no_route")
                return
            st.icmp_tx += 1
        elif t == wicmp.TYPE_ECHO_REPLY:
            if self._echo_listeners:
                data = bytes(msg.payload)
                for listener in list(self._echo_listeners):
                    listener(src, msg.ident, msg.seq, data, now, packet[8])  # packet[8]: the reply's TTL
            else:
                st.drop("icmp_echo_reply_unexpected")
        elif msg.is_error:
            st.icmp_errors_rx += 1
            try:
                quote = msg.quoted()
            except ParseError as e:
                st.drop(e.reason)
                return
            if quote.src != self.address:
                st.drop("icmp_error_not_ours")
                return
            handler = self._error_handlers.get(quote.proto)
            if handler is None:
                st.drop("icmp_error_unhandled")
                return
            handler(t, msg.code, quote, msg.next_hop_mtu, now)
        else:
            st.drop("icmp_unhandled_type")

    # ------------------------------------------------------------------ egress

    def route(self, dst: int) -> tuple[int, bytes | None]:
        """(next hop, fixed MAC or None) for ``dst``; OSError(ENETUNREACH) without a route."""
        if dst == 0xFFFFFFFF or (dst == self.directed_broadcast and self.address):
            return dst, weth.BROADCAST
        if wip.is_multicast(dst):
            return dst, weth.ipv4_multicast_mac(dst)
        if self.address and (dst & self.netmask) == self.network:
            return dst, None
        if self.gateway is not None:
            return self.gateway, None
        raise OSError(101, "Network is unreachable")

    def is_local(self, dst: int) -> bool:
        return (dst == self.address and dst != 0) or (dst >> 24) == 127

    def next_ident(self) -> int:
        self._ip_ident = (self._ip_ident + 1) & 0xFFFF
        return self._ip_ident

    def send_ipv4(
        self,
        dst: int,
        proto: int,
        payload: BytesLike,
        now: float,
        *,
        src: int | None = None,
        ttl: int | None = None,
        tos: int = 0,
        df: bool = True,
        meta: bytes | None = None,
    ) -> None:
        """Send one IP datagram, fragmenting it if it exceeds the MTU and ``df`` is off.

        ``meta`` is a virtio-net header for this frame (checksum offload, and
        for a TCP super-segment also GSO: then the MTU does not apply, the
        kernel splits it).  Only meaningful when :meth:`set_offload` enabled it.

        Raises OSError: ENETUNREACH without a route, EMSGSIZE if too big for the
        MTU with ``df`` set or larger than IPv4 allows.
        """
        if src is None:
            src = self.address
        ttl = ttl or self.config.ttl
        plen = len(payload)
        if plen > 65535 - 20:
            raise OSError(90, "Message too long")
        ident = self.next_ident()
        if self.is_local(dst):
            hdr = wip.build_header(src, dst, proto, plen, ident=ident, ttl=ttl, tos=tos)
            self._loopback.append(hdr + bytes(payload))
            return
        hop, mac = self.route(dst)
        if plen + 20 <= self.mtu or (meta is not None and meta[1] != virtio.GSO_NONE):
            hdr = wip.build_header(
                src, dst, proto, plen, ident=ident, ttl=ttl, tos=tos, flags_frag=wip.FLAG_DF if df else 0
            )
            self._send_ip(hop, mac, hdr + payload, now, meta)
            self.stats.ipv4_tx += 1
            return
        if df:
            raise OSError(90, "Message too long")
        # RFC 791 §3.2 fragmentation: all but the last carry a multiple of 8 bytes.
        step = (self.mtu - 20) & ~7
        data = memoryview(payload)
        for off in range(0, plen, step):
            chunk = data[off : off + step]
            more = off + step < plen
            hdr = wip.build_header(
                src, dst, proto, len(chunk), ident=ident, ttl=ttl, tos=tos,
                flags_frag=(off >> 3) | (wip.FLAG_MF if more else 0),
            )
            self._send_ip(hop, mac, hdr + bytes(chunk), now)
            self.stats.ipv4_frag_tx += 1
        self.stats.ipv4_tx += 1

    def _send_ip(self, hop: int, mac: bytes | None, packet: bytes, now: float, meta: bytes | None = None) -> None:
        if mac is None:
            mac = self.arp.lookup(hop, now)
            if mac is None:
                if meta is not None:
                    if meta[1] != virtio.GSO_NONE:
                        # A super-segment cannot wait as a plain packet; TCP will resend it.
                        self.stats.drop("offload_gso_unresolved")
                        return
                    packet = _finish_checksum(packet, meta)
                self.arp.enqueue(hop, packet, now)
                self.timers.update(self.arp)
                return
        self._emit(mac, weth.ETHERTYPE_IPV4, packet, meta)

    def _send_resolved(self, mac: bytes, packet: bytes) -> None:
        self._emit(mac, weth.ETHERTYPE_IPV4, packet)

    def _send_arp_request(self, ip: int, mac: bytes | None) -> None:
        pkt = warp.ArpPacket(warp.OP_REQUEST, self.mac, self.address, bytes(6), ip).emit()
        self._emit(mac or weth.BROADCAST, weth.ETHERTYPE_ARP, pkt)
        self.stats.arp_tx += 1

    def l2_header(self, mac: bytes, ethertype: int = weth.ETHERTYPE_IPV4) -> bytes:
        """The bytes that precede an IP packet on this link (virtio header + Ethernet)."""
        return self._l2_prefix + weth.build_header(mac, self.mac, ethertype)

    def set_offload(self, *, csum: bool, tso: bool) -> None:
        """Use the virtio-net header's offloads on send: checksum (``NEEDS_CSUM``)
        and TCP segmentation (GSO super-segments up to ~64 KB).  Receive-side
        offload needs nothing here: frames marked NEEDS_CSUM or DATA_VALID are
        trusted already.  Only with ``config.vnet_hdr`` (a TAP device)."""
        if (csum or tso) and not self.config.vnet_hdr:
            raise ValueError("offload needs a device with the virtio-net header")
        self.tx_csum_offload = csum or tso
        self.tso = tso

    def _emit(self, dst_mac: bytes, ethertype: int, payload: BytesLike, meta: bytes | None = None) -> None:
        prefix = self._l2_prefix if meta is None else meta
        frame = prefix + weth.build_header(dst_mac, self.mac, ethertype) + payload
        n = len(frame) - self._hdr_off
        if n < weth.MIN_FRAME_LEN:
            frame += bytes(weth.MIN_FRAME_LEN - n)
        self.emit_frame(frame)

    def emit_frame(self, frame: BytesLike) -> None:
        """Queue a complete frame (link header included) for the driver."""
        self.tx.append(frame)
        st = self.stats
        st.tx_frames += 1
        st.tx_bytes += len(frame)

    # ------------------------------------------------------------------ ICMP errors

    def _icmp_allowed(self, now: float) -> bool:
        rate = self.config.icmp_error_rate
        tokens = min(
            float(self.config.icmp_error_burst), self._icmp_tokens + (now - self._icmp_refill_at) * rate
        )
        self._icmp_refill_at = now
        if tokens < 1.0:
            self._icmp_tokens = tokens
            self.stats.drop("icmp_error_rate_limited")
            return False
        self._icmp_tokens = tokens - 1.0
        return True

    def _icmp_error_for_quote(self, icmp_type: int, code: int, quote: bytes, now: float) -> None:
        """Send an ICMP error about the datagram whose start is ``quote`` (IP header + 8)."""
        if len(quote) < 20:
            return
        _v, _tos, _tl, _id, ff, _ttl, proto, _ck, src, _dst = wip.HDR.unpack_from(quote, 0)
        # RFC 1122 §3.2.2: never about an ICMP error, a non-initial fragment, or a
        # datagram whose source is not a unicast host.
        if ff & wip.OFFSET_MASK or src == 0 or src == 0xFFFFFFFF or wip.is_multicast(src):
            return
        if src == self.directed_broadcast and self.address:
            return
        if proto == wip.PROTO_ICMP:
            hl = (quote[0] & 0x0F) * 4
            if len(quote) > hl and quote[hl] in wicmp.ERROR_TYPES:
                return
        if not self._icmp_allowed(now):
            return
        msg = wicmp.IcmpMessage(icmp_type, code, 0, quote).emit()
        try:
            self.send_ipv4(src, wip.PROTO_ICMP, msg, now, df=False)
        except OSError:
            self.stats.drop("icmp_error_no_route")
            return
        self.stats.icmp_tx += 1
        self.stats.icmp_errors_tx += 1

    def send_icmp_error(self, icmp_type: int, code: int, packet: BytesLike, now: float) -> None:
        """Send an ICMP error about ``packet`` (an IP packet we received)."""
        hl = (packet[0] & 0x0F) * 4
        self._icmp_error_for_quote(icmp_type, code, bytes(packet[: hl + 8]), now)

    def send_echo_request(self, dst: int, ident: int, seq: int, payload: bytes, now: float) -> None:
        msg = wicmp.IcmpMessage.echo(True, ident, seq, payload).emit()
        self.send_ipv4(dst, wip.PROTO_ICMP, msg, now, df=False)
        self.stats.icmp_tx += 1


def _finish_checksum(packet: bytes, meta: bytes) -> bytes:
    """Complete a NEEDS_CSUM checksum in software (the field holds the pseudo-header sum)."""
    _f, _g, _hl, _gs, start, offset, _nb = virtio.HDR.unpack(meta[: virtio.HEADER_LEN])
    l4 = start - weth.HEADER_LEN
    buf = bytearray(packet)
    buf[l4 + offset : l4 + offset + 2] = b"\x00\x00"
    pseudo = int.from_bytes(packet[l4 + offset : l4 + offset + 2], "big")
    c = checksum(memoryview(buf)[l4:], pseudo)
    buf[l4 + offset : l4 + offset + 2] = c.to_bytes(2, "big")
    return bytes(buf)
