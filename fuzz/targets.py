"""The fuzz targets: one function per target, each taking the fuzzer's bytes.

Importable without atheris (the pytest suite and the built-in mutator call the
functions directly).  A target returns normally or raises; what it may raise
is the finding:

* parser targets (``ethernet`` ... ``ntp``) may raise only :class:`ParseError`,
  with a reason usable as a drop counter's name (STYLE.md habit 4); every
  accessor of a view that was built is read too, because the stack reads them;
* ``interface`` feeds a sequence of ``(time delta, frame)`` records to a whole
  host (the shape of lwIP's multi-packet fuzzer) and may raise nothing; the
  host's bounds are checked after every frame;
* ``tcp_state`` drives a connection into one of the RFC 9293 states first and
  then feeds it segments and user calls (see :mod:`fuzz.tcp_states`);
* ``dhcp_client``, ``dhcp_server``, ``dns_resolver`` and ``ntp_client`` bring
  a service to a chosen state and feed it the other side's datagrams (with the
  xid, id, port or origin timestamp right some of the time), ICMP errors, ARP,
  TCP segments, time steps and user calls; nothing may escape but the errors
  the service documents, and its invariants are checked after every record
  (see :mod:`fuzz.services`).

Record format of ``interface``: ``dt:u8 flags:u8 len:u16 frame[len]`` repeated;
``dt`` maps to 1 ms steps (0..127), 50 ms steps (128..223) or 2 s steps (224..);
``flags`` bit 0 repairs the IPv4 and transport checksums after mutation, bit 1
addresses the frame to the host's MAC.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable

from seqs.errors import ParseError
from seqs.wire import arp as warp
from seqs.wire import ethernet as weth
from seqs.wire import icmp as wicmp
from seqs.wire import ipv4 as wip
from seqs.wire import tcp as wtcp
from seqs.wire import udp as wudp
from seqs.wire import virtio

from .harness import HOST_IP, HOST_MAC, PEER_IP, Host, Reader, fix_checksums
from .services import run_dhcp_client, run_dhcp_server, run_dns, run_ntp
from .tcp_states import run_tcp_input

__all__ = ["STATEFUL", "TARGETS", "Target"]

Target = Callable[[bytes], None]

_REASON = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)+$")
#: frames per interface input
MAX_FRAMES = 256


def _attempt(fn: Callable[[], object]) -> None:
    """One parser call: a value, or a ParseError whose reason can name a counter."""
    try:
        fn()
    except ParseError as e:
        if not _REASON.match(e.reason):
            raise AssertionError(f"ParseError reason {e.reason!r} is not a counter name") from e


# -- parsers ----------------------------------------------------------------------------------------


def ethernet(data: bytes) -> None:
    def view() -> None:
        v = weth.EthernetView(data)
        _ = (v.dst, v.src, v.ethertype, v.vlan_id, v.header_len, bytes(v.payload))

    _attempt(view)
    _attempt(lambda: weth.EthernetFrame.parse(data))


def arp(data: bytes) -> None:
    def view() -> None:
        v = warp.ArpView(data)
        _ = (v.op, v.sha, v.spa, v.tha, v.tpa)

    _attempt(view)
    _attempt(lambda: warp.ArpPacket.parse(data))


def ipv4(data: bytes) -> None:
    def view() -> None:
        v = wip.Ipv4View(data)
        v.checksum_ok()
        _ = (v.src, v.dst, v.proto, v.ttl, v.ident, v.dont_fragment, v.more_fragments, v.frag_offset,
             v.is_fragment, bytes(v.options), bytes(v.payload))

    _attempt(view)
    _attempt(lambda: wip.Ipv4Header.parse(data))


def icmp(data: bytes) -> None:
    def view() -> None:
        v = wicmp.IcmpView(data)
        v.checksum_ok()
        _ = (v.type, v.code, v.ident, v.seq, v.next_hop_mtu, v.is_error, bytes(v.payload))

    def quoted() -> None:
        q = wicmp.IcmpView(data).quoted()
        _ = (q.src, q.dst, q.proto, q.ports, bytes(q.transport))

    _attempt(view)
    _attempt(quoted)
    _attempt(lambda: wicmp.IcmpMessage.parse(data))


def udp(data: bytes) -> None:
    def view() -> None:
        v = wudp.UdpView(data)
        v.checksum_ok(PEER_IP, HOST_IP)
        _ = (v.sport, v.dport, v.length, bytes(v.payload))

    _attempt(view)
    _attempt(lambda: wudp.UdpDatagram.parse(data, PEER_IP, HOST_IP))


def tcp(data: bytes) -> None:
    def view() -> None:
        v = wtcp.TcpView(data)
        v.checksum_ok(PEER_IP, HOST_IP)
        _ = (v.sport, v.dport, v.seq, v.ack, v.flags, v.window, v.urgent, bytes(v.options_bytes),
             bytes(v.payload))
        v.options()

    _attempt(view)
    _attempt(lambda: wtcp.TcpSegment.parse(data, PEER_IP, HOST_IP))


def tcp_options(data: bytes) -> None:
    def parse() -> None:
        o = wtcp.parse_options(data)
        # What parses must build again (the stack echoes timestamps and SACK blocks).
        wtcp.build_options(mss=o.mss, wscale=o.wscale, sack_permitted=o.sack_permitted, timestamp=o.timestamp,
                           sack=o.sack[:4])

    _attempt(parse)


def vnet(data: bytes) -> None:
    _attempt(lambda: virtio.VnetHeader.parse(data))


def dhcp(data: bytes) -> None:
    from seqs.wire import dhcp as wdhcp

    def view() -> None:
        v = wdhcp.DhcpView(data)
        _ = (v.op, v.hops, v.xid, v.secs, v.flags, v.broadcast, v.ciaddr, v.yiaddr, v.siaddr, v.giaddr, v.chaddr)
        v.options()

    _attempt(view)
    _attempt(lambda: wdhcp.parse_options(data))

    def message() -> None:
        m = wdhcp.DhcpMessage.parse(data)
        _ = (m.message_type, m.broadcast, m.describe())
        m.emit()

    _attempt(message)


def dns(data: bytes) -> None:
    from seqs.wire import dns as wdns

    def view() -> None:
        v = wdns.DnsView(data)
        _ = (v.qr, v.opcode, v.tc, v.rcode)
        _questions, pos = v.questions()
        v.records(pos, v.ancount)

    def message() -> None:
        m = wdns.DnsMessage.parse(data)
        _ = (m.qr, m.opcode, m.aa, m.tc, m.rd, m.ra, m.opt, m.rcode)

    _attempt(view)
    _attempt(message)
    _attempt(lambda: wdns.read_name(data, 0))
    _attempt(lambda: wdns.decode_name(data))


def ntp(data: bytes) -> None:
    from seqs.wire import ntp as wntp

    def view() -> None:
        v = wntp.NtpView(data)
        _ = (v.leap, v.version, v.mode, v.kiss_code)

    _attempt(view)
    _attempt(lambda: wntp.NtpPacket.parse(data))


# -- the whole host ---------------------------------------------------------------------------------


def _dt(b: int) -> float:
    if b < 128:
        return b * 0.001
    if b < 224:
        return (b - 127) * 0.05
    return (b - 223) * 2.0


def interface(data: bytes) -> None:
    """A sequence of ``(dt, flags, frame)`` records into a host; nothing may escape."""
    r = Reader(data)
    host = Host()
    for _ in range(MAX_FRAMES):
        if r.left <= 0:
            break
        dt = _dt(r.u8())
        flags = r.u8()
        frame = bytearray(r.take(r.u16() % 4096))
        if flags & 1:
            fix_checksums(frame)
        if flags & 2 and len(frame) >= 6:
            frame[0:6] = HOST_MAC
        host.step(dt)
        host.receive(bytes(frame))
    host.step(120.0)  # every timer runs out


def tcp_state(data: bytes) -> None:
    run_tcp_input(data)


def dhcp_client(data: bytes) -> None:
    run_dhcp_client(data)


def dhcp_server(data: bytes) -> None:
    run_dhcp_server(data)


def dns_resolver(data: bytes) -> None:
    run_dns(data)


def ntp_client(data: bytes) -> None:
    run_ntp(data)


def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


TARGETS: dict[str, Target] = {
    "ethernet": ethernet,
    "arp": arp,
    "ipv4": ipv4,
    "icmp": icmp,
    "udp": udp,
    "tcp": tcp,
    "tcp_options": tcp_options,
    "vnet": vnet,
    **{name: fn for name, fn in (("dhcp", dhcp), ("dns", dns), ("ntp", ntp)) if _have(f"seqs.wire.{name}")},
    "interface": interface,
    "tcp_state": tcp_state,
    "dhcp_client": dhcp_client,
    "dhcp_server": dhcp_server,
    "dns_resolver": dns_resolver,
    "ntp_client": ntp_client,
}
#: the targets fed whole conversations: they may raise nothing at all (no ParseError either)
STATEFUL = frozenset({"interface", "tcp_state", "dhcp_client", "dhcp_server", "dns_resolver", "ntp_client"})
