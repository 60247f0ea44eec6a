"""Fuzz the application protocols: the DHCP client and server, the DNS stub resolver, the NTP client.

Each target builds a seeded host, starts the service and brings it to a state
the first input byte chooses (a DHCP client in SELECTING ... REBINDING, a
server with an empty, busy or exhausted pool, a DNS query for one of several
names and types, an NTP query of 1-4 samples).  The rest of the input is
records that play everything else: the other side's datagrams, ICMP errors
about what the service sent, ARP, TCP segments (the DNS fallback), the passing
of time, and the user's calls.

A reply is mostly the fuzzer's bytes, but the fields a service checks first —
the DHCP xid and chaddr, the DNS id, port and question, the NTP origin
timestamp — are set right when a flag bit of the record says so.  Otherwise
nearly every input would stop at the first check (a 1-in-2^32 xid) and the
code behind it would never run.  The harness reads those values from the
service's private fields (``client._xid``, ``query._tries``) rather than by
parsing what it sent: cheaper, and the parsing is fuzzed elsewhere.

After every record: nothing escaped (any exception is a finding; a query's
``result()`` may raise only its documented error type), the service's own
invariants hold (``check_*`` below), and so do the host's bounds
(:func:`fuzz.harness.check_stack`).  At the end time runs out and every
resource the service took (UDP sockets, TCP connections, pool addresses) must
be back.

Each ``run_*`` returns the set of outcomes it saw (``bound``, ``nak``,
``via_tcp``, ``sample`` ...): ``tests/test_fuzz_targets.py`` checks that the
seed corpus reaches them, so a harness that stops early fails there.

Record layouts (every record starts with ``kind:u8``; fields past the input's
end read as zeros) are in each target's docstring and built by the
``*_record`` helpers, which :mod:`fuzz.corpus` uses for the seeds.
"""

from __future__ import annotations

import dataclasses
import math
import random
import struct
from collections.abc import Callable, Sequence

from seqs import Stack
from seqs._typing import BytesLike
from seqs.services import dhcp_client as dc
from seqs.services.dhcp_server import DhcpServer, DhcpServerConfig
from seqs.services.dns import DnsError, DnsQuery, Resolver, ResolverConfig
from seqs.services.ntp import NtpConfig, NtpError, NtpQuery
from seqs.tcp.connection import TcpConnection
from seqs.wire import arp as warp
from seqs.wire import dhcp as wd
from seqs.wire import dns as wdns
from seqs.wire import ethernet as weth
from seqs.wire import icmp as wicmp
from seqs.wire import ipv4 as wip
from seqs.wire import ntp as wntp
from seqs.wire import tcp as wtcp
from seqs.wire import udp as wudp
from seqs.wire.ethernet import EthernetFrame

from .harness import (
    HOST_IP,
    HOST_MAC,
    PEER_IP,
    PEER_MAC,
    Reader,
    check_stack,
    interface_config,
    ip_frame,
    settle,
    tcp_config,
    tcp_segment,
)

__all__ = [
    "DHCP_CLIENT_SCENARIOS",
    "DHCP_SERVER_SCENARIOS",
    "RUNNERS",
    "SEED_OUTCOMES",
    "run_dhcp_client",
    "run_dhcp_server",
    "run_dns",
    "run_ntp",
    "service_seeds",
]

#: records per input
MAX_RECORDS = 128
OTHER_IP = wip.aton("10.0.0.3")
OTHER_MAC = bytes.fromhex("020000000003")
BROADCAST_IP = 0xFFFFFFFF
#: the wall clock at stack time 0 (a virtual network's epoch)
WALL = 1.7e9


def service_dt(b: int) -> float:
    """A time step: 10 ms steps (0..63), half seconds (64..159) or minutes (160..255), so
    one input reaches retransmissions, DNS and NTP timeouts and the end of a DHCP lease."""
    if b < 64:
        return b * 0.01
    if b < 160:
        return (b - 63) * 0.5
    return (b - 159) * 60.0


def service_stack(*, address: int = HOST_IP, prefix: int = 24) -> Stack:
    """The fuzz host's stack (harness bounds), with ARP entries that outlive any input."""
    cfg = interface_config()
    arp = dataclasses.replace(cfg.arp, lifetime=1e6, refresh_ahead=1.0)
    config = dataclasses.replace(cfg, address=address, prefix=prefix if address else 0,
                                 gateway=cfg.gateway if address else None, arp=arp)
    return Stack(config=config, rng=random.Random(0), tcp_config=tcp_config())


def _known(stack: Stack, ip: int, mac: bytes = PEER_MAC) -> None:
    stack.iface.arp.update(ip, mac, 0.0, create=True)


# -- frames ---------------------------------------------------------------------------------------


def udp_frame(payload: bytes, *, src: int, dst: int, sport: int, dport: int, mac_src: bytes = PEER_MAC,
              mac_dst: bytes = HOST_MAC) -> bytes:
    seg = wudp.UdpDatagram(sport, dport, payload).emit(src, dst)
    ip = wip.build_header(src, dst, wip.PROTO_UDP, len(seg))
    return weth.build_header(mac_dst, mac_src, weth.ETHERTYPE_IPV4) + ip + seg


def port_unreachable(*, ours: int, server: int, sport: int, dport: int) -> bytes:
    """ICMP port unreachable from ``server`` about a datagram we sent from ``sport`` to its ``dport``."""
    quote = wip.build_header(ours, server, wip.PROTO_UDP, 8 + 48) + struct.pack("!HHHH", sport, dport, 56, 0)
    msg = wicmp.IcmpMessage(wicmp.TYPE_DEST_UNREACHABLE, wicmp.CODE_PORT_UNREACHABLE, 0, quote).emit()
    return ip_frame(wip.PROTO_ICMP, msg, src=server, dst=ours or BROADCAST_IP)


def _udp_payloads(frames: Sequence[BytesLike], sport: int) -> list[bytes]:
    """The UDP payloads from ``sport`` among frames a stack sent (those that parse)."""
    out = []
    for raw in frames:
        f = EthernetFrame.parse(bytes(raw))
        if f.ethertype != weth.ETHERTYPE_IPV4:
            continue
        h, p = wip.Ipv4Header.parse(f.payload)
        if h.proto == wip.PROTO_UDP and not h.more_fragments and not h.frag_offset:
            d = wudp.UdpDatagram.parse(p, h.src, h.dst)
            if d.sport == sport:
                out.append(d.payload)
    return out


# -- a record's common parts -----------------------------------------------------------------------


def time_record(b: int) -> bytes:
    return bytes([2, b])


class _Driver:
    """Time, the stack, and the check run after every record."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.now = 0.0
        self.sent: list[BytesLike] = []

    def step(self, dt: float) -> None:
        self.now += dt
        self.sent = settle(self.stack, self.now)
        self.check()

    def deliver(self, frame: bytes) -> None:
        self.stack.receive(frame, self.now)
        self.step(0.0)

    def check(self) -> None:
        check_stack(self.stack)

    def wait(self, r: Reader) -> None:
        """A ``dt:u8`` record: time moves on."""
        self.step(service_dt(r.u8()))

    @staticmethod
    def play(r: Reader, records: Sequence[Callable[[Reader], None]]) -> None:
        """Up to :data:`MAX_RECORDS` records, each a kind byte (taken modulo the number of
        kinds) that chooses its handler, which reads the rest of the record."""
        for _ in range(MAX_RECORDS):
            if r.left <= 0:
                break
            records[r.u8() % len(records)](r)


def _finite_or_none(d: float | None) -> bool:
    return d is None or math.isfinite(d)


# == the DHCP client ===============================================================================

DHCP_SERVER_IP = PEER_IP
OFFERED = wip.aton("10.0.0.77")
LEASE, T1, T2 = 600, 300, 525
#: (name, state the client is in when the records start)
DHCP_CLIENT_SCENARIOS: tuple[tuple[str, str], ...] = (
    ("selecting", dc.SELECTING), ("requesting", dc.REQUESTING), ("probing", dc.PROBING), ("bound", dc.BOUND),
    ("renewing", dc.RENEWING), ("rebinding", dc.REBINDING), ("rebooting", dc.REBOOTING),
)
_CLIENT_STATES = frozenset({dc.INIT, dc.SELECTING, dc.REQUESTING, dc.PROBING, dc.BOUND, dc.RENEWING, dc.REBINDING,
                            dc.INIT_REBOOT, dc.REBOOTING, dc.RELEASING, dc.STOPPED})
_UNCONFIGURED = frozenset({dc.INIT, dc.SELECTING, dc.REQUESTING, dc.PROBING, dc.INIT_REBOOT, dc.REBOOTING})


def dhcp_reply_record(flags: int, mtype: int, *, yi: int = 0, lease: int = LEASE, raw: bytes = b"",
                      xid: int = 0, chaddr: bytes = bytes(6)) -> bytes:
    """``0 flags:u8 mtype:u8 yi:u8 lease:u32 [xid:u32 unless flags&1] [chaddr:6 unless flags&2]
    rawlen:u8 raw``: a reply from the server (10.0.0.2:67).  flags: 1 right xid, 2 right
    chaddr, 4 option 53 = mtype, 8 server id 10.0.0.2, 16 server id 10.0.0.3 (unless 8),
    32 option 51 = lease, 64 unicast to yiaddr (else broadcast), 128 op BOOTREQUEST.
    yi % 4 picks yiaddr: the offered address, the interface's, the lease field, 0.  ``raw``
    is more options, as bytes, before END."""
    out = struct.pack("!BBBBI", 0, flags, mtype, yi, lease)
    if not flags & 1:
        out += struct.pack("!I", xid)
    if not flags & 2:
        out += chaddr
    return out + bytes([len(raw)]) + raw


def raw_record(kind: int, payload: bytes, flags: int = 0) -> bytes:
    """``kind flags:u8 len:u16 payload``: a datagram of the fuzzer's bytes."""
    return struct.pack("!BBH", kind, flags, len(payload)) + payload


class DhcpClientHost(_Driver):
    def __init__(self, scenario: int, opts: int) -> None:
        super().__init__(service_stack(address=0))
        name, self.target_state = DHCP_CLIENT_SCENARIOS[scenario % len(DHCP_CLIENT_SCENARIOS)]
        probes = opts % 3 + (1 if name == "probing" else 0)
        config = dc.DhcpClientConfig(hostname="fuzz", probe_num=probes, broadcast_flag=bool(opts & 4),
                                     send_client_id=not opts & 8)
        self.original_mtu = self.stack.iface.mtu
        self.client = dc.DhcpClient(self.stack, config, previous="10.0.0.77" if name == "rebooting" else None)
        _known(self.stack, DHCP_SERVER_IP)
        self.seen: set[str] = set()
        self.client.start(0.0)
        self.step(0.0)
        if name in ("selecting", "rebooting"):
            return
        self.deliver(self._setup_reply(wd.OFFER))
        if name == "requesting":
            return
        self.deliver(self._setup_reply(wd.ACK))
        if name == "probing":
            return
        for _ in range(20):
            if self.client.state == dc.BOUND:
                break
            self.step(0.5)
        if name == "renewing":
            self.step(T1 + 1.0 - self.now)
        elif name == "rebinding":
            self.step(T2 + 1.0 - self.now)

    def _setup_reply(self, mtype: int) -> bytes:
        opts = wd.DhcpOptions(message_type=mtype, server_id=DHCP_SERVER_IP, lease_time=LEASE, renewal_time=T1,
                              rebinding_time=T2, subnet_mask=0xFFFFFF00, routers=(DHCP_SERVER_IP,),
                              dns_servers=(DHCP_SERVER_IP,), ntp_servers=(DHCP_SERVER_IP,), mtu=1400)
        msg = wd.DhcpMessage(wd.OP_REPLY, self.client._xid, HOST_MAC, opts, yiaddr=OFFERED)
        return udp_frame(msg.emit(), src=DHCP_SERVER_IP, dst=BROADCAST_IP, sport=wd.SERVER_PORT,
                         dport=wd.CLIENT_PORT, mac_dst=weth.BROADCAST)

    def check(self) -> None:
        check_stack(self.stack)
        check_dhcp_client(self.client, self.original_mtu)
        self.seen.add(self.client.state)
        self.seen.update(e.kind for e in self.client.events)

    # -- records ---------------------------------------------------------------------------------

    def reply(self, r: Reader) -> None:
        flags, mtype, yi, lease = r.u8(), r.u8(), r.u8(), r.u32()
        xid = self.client._xid if flags & 1 else r.u32()
        chaddr = HOST_MAC if flags & 2 else r.take(6).ljust(6, b"\0")
        raw = r.take(r.u8())
        yiaddr = (OFFERED, self.stack.iface.address, lease, 0)[yi % 4]
        server = DHCP_SERVER_IP if flags & 8 else OTHER_IP if flags & 16 else None
        options = wd.DhcpOptions(message_type=mtype if flags & 4 else None, server_id=server,
                                 lease_time=lease if flags & 32 else None)
        op = wd.OP_REQUEST if flags & 128 else wd.OP_REPLY
        head = wd.DhcpMessage(op, xid, chaddr, yiaddr=yiaddr).emit()[: wd.OPTIONS_OFFSET]
        payload = head + options.emit()[:-1] + raw + bytes([wd.OPT_END])
        payload = payload.ljust(wd.MIN_MESSAGE_LEN, b"\0")
        dst, mac = (yiaddr, HOST_MAC) if flags & 64 else (BROADCAST_IP, weth.BROADCAST)
        self.deliver(udp_frame(payload, src=DHCP_SERVER_IP, dst=dst, sport=wd.SERVER_PORT, dport=wd.CLIENT_PORT,
                               mac_dst=mac))

    def raw(self, r: Reader) -> None:
        flags = r.u8()
        payload = bytearray(r.take(r.u16() % 1500))
        if flags & 1 and len(payload) >= 8:
            payload[4:8] = self.client._xid.to_bytes(4, "big")
        if flags & 2 and len(payload) >= 34:
            payload[28:34] = HOST_MAC
        self.deliver(udp_frame(bytes(payload), src=DHCP_SERVER_IP, dst=BROADCAST_IP, sport=wd.SERVER_PORT,
                               dport=wd.CLIENT_PORT, mac_dst=weth.BROADCAST))

    def unreachable(self, r: Reader) -> None:
        """ICMP port unreachable about our last datagram to the server."""
        self.deliver(port_unreachable(ours=self.stack.iface.address, server=DHCP_SERVER_IP,
                                      sport=wd.CLIENT_PORT, dport=wd.SERVER_PORT))

    def arp(self, r: Reader) -> None:
        """``3 op:u8 who:u8 sha:6``: who % 4 picks (spa, tpa): (offered, offered), (0, offered)
        (a probe), (server, interface), (offered, 0); op odd: request."""
        op, who, sha = r.u8(), r.u8(), r.take(6).ljust(6, b"\x02")
        spa, tpa = ((OFFERED, OFFERED), (0, OFFERED), (DHCP_SERVER_IP, self.stack.iface.address),
                    (OFFERED, 0))[who % 4]
        pkt = warp.ArpPacket(warp.OP_REQUEST if op & 1 else warp.OP_REPLY, sha, spa, bytes(6), tpa).emit()
        self.deliver(weth.build_header(weth.BROADCAST, sha, weth.ETHERTYPE_ARP) + pkt)

    def user(self, r: Reader) -> None:
        """``5 call:u8``: start, release, stop."""
        call = r.u8() % 3
        if call == 0:
            self.client.start(self.now)
        elif call == 1:
            self.client.release(self.now)
        else:
            self.client.stop()
        self.step(0.0)


def check_dhcp_client(c: dc.DhcpClient, original_mtu: int) -> None:
    """The client's state is one of its states, its lease is consistent with it and bounded."""
    iface = c.iface
    assert c.state in _CLIENT_STATES, c.state
    lease = c.lease
    if c.state in (dc.BOUND, dc.RENEWING, dc.REBINDING):
        assert lease is not None, c.state
        assert iface.address == wip.aton(lease.address), (c.state, lease, wip.ntoa(iface.address))
    if c.state in _UNCONFIGURED:
        assert lease is None and iface.address == 0, (c.state, lease, wip.ntoa(iface.address))
    if lease is not None:
        # RFC 2131 §4.4.5: T1 <= T2 <= lease; an infinite lease has no timers
        assert 0 <= lease.renewal_time <= lease.rebinding_time <= lease.lease_time, lease
        assert 1 <= lease.prefix <= 32, lease
        assert len(lease.dns_servers) + len(lease.routers) + len(lease.ntp_servers) <= 3 * 1500 // 4
    assert len(c.events) <= c.config.event_history
    assert 576 <= iface.mtu <= original_mtu, iface.mtu
    d = c.deadline()
    assert _finite_or_none(d), d
    # Nothing but STOPPED, and BOUND on an infinite lease, may wait without a timer.
    if d is None:
        assert c.state == dc.STOPPED or (c.state == dc.BOUND and lease is not None
                                         and lease.renewal_time == math.inf), (c.state, lease)


def run_dhcp_client(data: bytes) -> set[str]:
    """``scenario:u8 opts:u8`` then records: 0 reply (:func:`dhcp_reply_record`), 1 raw
    datagram to port 68 (:func:`raw_record`; flags 1 xid, 2 chaddr patched in), 2 ``dt:u8``
    (:func:`service_dt`), 3 ARP (:meth:`DhcpClientHost.arp`), 4 ICMP port unreachable about
    our last datagram to the server, 5 a user call.  opts % 3: ARP probes (one more when
    PROBING is the scenario); 4: the broadcast flag; 8: no client identifier."""
    r = Reader(data)
    host = DhcpClientHost(r.u8(), r.u8())
    assert host.client.state == host.target_state, (host.client.state, host.target_state)
    host.play(r, [host.reply, host.raw, host.wait, host.arp, host.unreachable, host.user])
    for _ in range(8):
        host.step(3600.0)  # retransmissions, probes, renewals and (short) leases run out
    host.client.close()
    assert len(host.stack.udp) == 0, "the DHCP client's socket outlived close()"
    return host.seen


# == the DHCP server ===============================================================================

POOL = [wip.aton(f"10.0.0.{i}") for i in range(100, 108)]
RESERVED_MAC = bytes.fromhex("0200000000a0")
RESERVED_IP = wip.aton("10.0.0.200")
#: clients the records pick from: the reserved one, five others, and eight that fill the pool
CLIENT_MACS = [RESERVED_MAC, *(bytes.fromhex(f"0200000000a{i}") for i in range(1, 6))]
FILLER_MACS = [bytes.fromhex(f"0200000001{i:02x}") for i in range(len(POOL))]
DHCP_SERVER_SCENARIOS = ("empty", "busy", "exhausted")


def dhcp_request_record(flags: int, mtype: int, *, mac: int = 1, flags2: int = 0, xid: int = 0x1234, ci: int = 0,
                        rq: int = 0, cid: bytes = b"", raw: bytes = b"", chaddr: bytes = b"") -> bytes:
    """``0 flags:u8 flags2:u8 mac:u8 [chaddr:6 if mac >= 200] xid:u32 mtype:u8 ci:u8 rq:u8
    cidlen:u8 cid rawlen:u8 raw``: a client's message to port 67.

    flags: 1 option 53 = mtype % 8 + 1, 2 option 53 = mtype as is (unless 1), 4 option 50
    (rq picks it), 8 option 54 (16: ours, else another server's), 32 option 61 = cid,
    64 broadcast bit, 128 option 12.  flags2: 1 op BOOTREPLY, 2 giaddr set, 8 sent from
    ciaddr (else 0.0.0.0), 16 unicast to the server (else broadcast).  mac < 200 picks
    one of :data:`CLIENT_MACS` and :data:`FILLER_MACS`; ci % 4 picks ciaddr: 0, a pool
    address (ci >> 2), the reservation, one outside the subnet; rq the same way for
    option 50."""
    out = struct.pack("!BBBB", 0, flags, flags2, mac)
    if mac >= 200:
        out += chaddr.ljust(6, b"\0")[:6]
    out += struct.pack("!IBBB", xid, mtype, ci, rq)
    return out + bytes([len(cid)]) + cid + bytes([len(raw)]) + raw


class DhcpServerHost(_Driver):
    def __init__(self, scenario: int, opts: int) -> None:
        super().__init__(service_stack())
        self.config = DhcpServerConfig(
            "10.0.0.100", "10.0.0.107", lease_time=60 * (1 + opts % 4), offer_timeout=5.0, decline_hold=20.0,
            routers=("10.0.0.1",), dns_servers=("10.0.0.53",), ntp_servers=("10.0.0.123",),
            domain_name="fuzz.example", mtu=1400 if opts & 4 else None,
            reservations={weth.mac_to_str(RESERVED_MAC): "10.0.0.200"},
        )
        self.server = DhcpServer(self.stack, self.config)
        self._watch_replies()
        self.seen: set[str] = set()
        self.restarts = 0
        name = DHCP_SERVER_SCENARIOS[scenario % len(DHCP_SERVER_SCENARIOS)]
        if name == "busy":
            for mac in CLIENT_MACS[1:4]:
                self._lease(mac)
        elif name == "exhausted":
            for mac in FILLER_MACS:
                self._lease(mac)
            assert self.server.free == 0

    def _watch_replies(self) -> None:
        """Check each reply as the server decides it: the address it offers or acknowledges
        is held for that client *then*.  (On the wire is too late: a reply unicast to an
        address that is not resolved yet waits for ARP, and may leave after the client
        has gone — RFC 2131 §4.1 sends an answer to a message with ``ciaddr`` there.)"""
        server = self.server
        reply = server._reply

        def checked(msg: wd.DhcpMessage, mtype: int, yiaddr: int, now: float, text: str | None = None, *,
                    lease: bool = True) -> None:
            if mtype in (wd.OFFER, wd.ACK) and yiaddr:
                b = server._by_ip.get(yiaddr)
                assert b is not None and b.mac == msg.chaddr, (wd.MESSAGE_TYPE_NAMES[mtype], wip.ntoa(yiaddr),
                                                               msg.chaddr.hex(), b and b.mac.hex())
            reply(msg, mtype, yiaddr, now, text, lease=lease)

        server._reply = checked  # type: ignore[method-assign]

    def _send(self, msg: wd.DhcpMessage, *, src: int = 0, dst: int = BROADCAST_IP) -> None:
        self.deliver(udp_frame(msg.emit(), src=src, dst=dst, sport=wd.CLIENT_PORT, dport=wd.SERVER_PORT,
                               mac_src=msg.chaddr if not msg.chaddr[0] & 1 else PEER_MAC,
                               mac_dst=weth.BROADCAST if dst == BROADCAST_IP else HOST_MAC))

    def _lease(self, mac: bytes) -> None:
        self._send(wd.DhcpMessage(wd.OP_REQUEST, 1, mac, wd.DhcpOptions(message_type=wd.DISCOVER)))
        (offer,) = [wd.DhcpMessage.parse(p) for p in _udp_payloads(self.sent, wd.SERVER_PORT)]
        self._send(wd.DhcpMessage(wd.OP_REQUEST, 2, mac, wd.DhcpOptions(
            message_type=wd.REQUEST, requested_address=offer.yiaddr, server_id=HOST_IP)))

    def check(self) -> None:
        check_stack(self.stack)
        check_dhcp_server(self.server)
        check_dhcp_replies(_udp_payloads(self.sent, wd.SERVER_PORT))
        self.seen.update(k for k, v in self.server.counts.items() if v)

    def request(self, r: Reader) -> None:
        flags, flags2, mac = r.u8(), r.u8(), r.u8()
        macs = CLIENT_MACS + FILLER_MACS
        chaddr = macs[mac % len(macs)] if mac < 200 else r.take(6).ljust(6, b"\0")
        xid, mtype, ci, rq = r.u32(), r.u8(), r.u8(), r.u8()
        cid = r.take(r.u8())
        raw = r.take(r.u8())

        def pick(b: int) -> int:
            return (0, POOL[(b >> 2) % len(POOL)], RESERVED_IP, wip.aton("192.0.2.9"))[b % 4]

        ciaddr = pick(ci)
        message_type = mtype % 8 + 1 if flags & 1 else mtype if flags & 2 else None
        options = wd.DhcpOptions(
            message_type=message_type,
            requested_address=(pick(rq) or None) if flags & 4 else None,
            server_id=(HOST_IP if flags & 16 else wip.aton("10.0.0.254")) if flags & 8 else None,
            client_id=cid if flags & 32 and len(cid) >= 2 else None,
            hostname=f"client-{mac}" if flags & 128 else None,
        )
        op = wd.OP_REPLY if flags2 & 1 else wd.OP_REQUEST
        head = wd.DhcpMessage(op, xid, chaddr, ciaddr=ciaddr, flags=wd.FLAG_BROADCAST if flags & 64 else 0,
                              giaddr=wip.aton("10.9.9.9") if flags2 & 2 else 0).emit()[: wd.OPTIONS_OFFSET]
        payload = (head + options.emit()[:-1] + raw + bytes([wd.OPT_END])).ljust(wd.MIN_MESSAGE_LEN, b"\0")
        src = ciaddr if flags2 & 8 else 0
        dst = HOST_IP if flags2 & 16 else BROADCAST_IP
        self.deliver(udp_frame(payload, src=src, dst=dst, sport=wd.CLIENT_PORT, dport=wd.SERVER_PORT,
                               mac_src=chaddr if not chaddr[0] & 1 else PEER_MAC,
                               mac_dst=HOST_MAC if flags2 & 16 else weth.BROADCAST))

    def raw(self, r: Reader) -> None:
        flags = r.u8()
        payload = bytearray(r.take(r.u16() % 1500))
        if flags & 1 and payload:
            payload[0] = wd.OP_REQUEST
        if flags & 2 and len(payload) >= 34:
            payload[28:34] = CLIENT_MACS[flags >> 4 & 3]
        self.deliver(udp_frame(bytes(payload), src=0, dst=BROADCAST_IP, sport=wd.CLIENT_PORT,
                               dport=wd.SERVER_PORT, mac_dst=weth.BROADCAST))

    def restart(self, r: Reader) -> None:
        """The program restarts (at most twice): the bound leases go through the JSON file to
        a new server."""
        if self.restarts >= 2:
            return
        old = self.server
        text = old.to_json(self.now, WALL + self.now)
        bound = {(x.mac, x.address, x.hostname) for x in old.leases() if x.state == "bound" and x.expires_at > self.now}
        old.close()
        self.server = DhcpServer(self.stack, self.config)
        self._watch_replies()
        loaded = self.server.load_json(text, self.now, WALL + self.now)
        got = {(x.mac, x.address, x.hostname) for x in self.server.leases()}
        assert loaded == len(bound) and got == bound, (bound, got)
        self.restarts += 1
        self.seen.add("restarted")
        self.step(0.0)


def check_dhcp_server(s: DhcpServer) -> None:
    """Every pool address is exactly one of free, bound/offered, declined: none lost, none twice."""
    pool, free, declined = s._pool_set, s._free_set, s._declined_set
    held = set(s._by_ip)
    assert free <= pool and declined <= pool, "an address outside the pool is free or declined"
    assert not free & declined and not free & held and not declined & held, (free, declined, held)
    assert pool <= free | declined | held, f"pool addresses lost: {sorted(pool - free - declined - held)}"
    assert len(s._by_key) == len(s._by_ip) <= s.pool_size + len(s._reserved)
    for key, b in s._by_key.items():
        assert b.key == key and s._by_ip.get(b.ip) is b, b.key
        assert b.ip in pool or s._reserved.get(b.mac) == b.ip, (b.mac.hex(), wip.ntoa(b.ip))
        assert math.isfinite(b.expires)
    assert not (s.exhausted and free), "exhausted with free addresses"
    assert len(s._expiry) <= 2 * len(s._by_key) + 65 and len(s._free) <= 2 * len(s._pool) + 65
    assert len(s._declined) <= len(pool)
    assert _finite_or_none(s.deadline())


def check_dhcp_replies(payloads: Sequence[bytes]) -> None:
    """What the server sent parses as a reply: an OFFER, an ACK or a NAK.  (That each one
    was right when the server made it is checked as it makes it: ``_watch_replies``.)"""
    for p in payloads:
        m = wd.DhcpMessage.parse(p)
        assert m.op == wd.OP_REPLY and m.message_type in (wd.OFFER, wd.ACK, wd.NAK), m.describe()


def run_dhcp_server(data: bytes) -> set[str]:
    """``scenario:u8 opts:u8`` then records: 0 a client's message (:func:`dhcp_request_record`),
    1 raw datagram to port 67 (:func:`raw_record`; flags 1: op 1, 2: a known chaddr), 2
    ``dt:u8``, 3 restart through the lease file (at most twice).  The scenario pre-fills
    the pool of 8 (:data:`DHCP_SERVER_SCENARIOS`); opts % 4 sets the lease time (1-4
    minutes), opts & 4 the MTU option."""
    r = Reader(data)
    host = DhcpServerHost(r.u8(), r.u8())
    host.play(r, [host.request, host.raw, host.wait, host.restart])
    host.step(3600.0)  # every offer, lease and decline hold runs out
    s = host.server
    assert len(s) == 0 and s.free == s.pool_size, (len(s), s.free, s.pool_size)
    return host.seen


# == the DNS resolver ==============================================================================

DNS_S1, DNS_S2 = PEER_IP, OTHER_IP
DNS_NAMES = ("www.example.com", "example.org", "a.b.c.d.example.net", "1.2.3.4", "mail.example.com")
DNS_TYPES = (wdns.TYPE_A, wdns.TYPE_AAAA, wdns.TYPE_CNAME, wdns.TYPE_MX, wdns.TYPE_TXT, wdns.TYPE_PTR,
             wdns.TYPE_SOA, wdns.TYPE_NS)
PEER_ISS = 0x10000000
#: queries in flight at most (a user call may start more)
MAX_QUERIES = 4


def dns_reply_record(flags: int, hflags: int, body: bytes = b"", *, an: int = 0, ns: int = 0, ar: int = 0,
                     which: int = 0, ident: int = 0, port: int = 0) -> bytes:
    """``0 flags:u8 which:u8 [ident:u16 unless flags&1] [port:u16 unless flags&2] hflags:u16
    an:u8 ns:u8 ar:u8 len:u16 body``: an answer over UDP to query ``which`` (modulo those
    started; its newest try).  flags: 1 right id, 2 right port, 4 from the try's server
    (else the other one), 8 repeat the question (else none), 16 QR set and opcode 0,
    32 to the oldest open try instead."""
    out = struct.pack("!BBB", 0, flags, which)
    if not flags & 1:
        out += struct.pack("!H", ident)
    if not flags & 2:
        out += struct.pack("!H", port)
    return out + struct.pack("!HBBBH", hflags, an, ns, ar, len(body)) + body


def dns_tcp_record(op: int, flags: int = 0, hflags: int = 0, body: bytes = b"", *, an: int = 0, which: int = 0,
                   split: int = 0, length: int = 0) -> bytes:
    """``3 op:u8``, then for op 1 (a reply): ``flags:u8 which:u8 hflags:u16 an:u8 split:u8
    [length:u16 unless flags&1] len:u16 body``.  ops: 0 SYN-ACK, 1 a reply behind its
    two-byte length (flags: 1 right length, 2 right id, 8 the question, 16 QR; split > 0
    cuts it in two segments there), 2 raw bytes (``len:u16 bytes``), 3 FIN, 4 RST."""
    out = bytes([3, op])
    if op == 1:
        out += struct.pack("!BBHBB", flags, which, hflags, an, split)
        if not flags & 1:
            out += struct.pack("!H", length)
        out += struct.pack("!H", len(body)) + body
    elif op == 2:
        out += struct.pack("!H", len(body)) + body
    return out


class DnsHost(_Driver):
    def __init__(self, scenario: int, opts: int) -> None:
        super().__init__(service_stack())
        _known(self.stack, DNS_S1)
        _known(self.stack, DNS_S2)
        self.config = ResolverConfig(
            servers=[wip.ntoa(DNS_S1), wip.ntoa(DNS_S2)] if opts & 2 else [wip.ntoa(DNS_S1)],
            timeout=1.0, attempts=1 + (opts >> 2 & 1), tcp_timeout=2.0,
            edns_payload=None if opts & 1 else 1232, cache_size=0 if opts & 8 else 4, max_ttl=600, max_cname=3,
        )
        self.resolver = Resolver(self.stack, self.config)
        self.queries: list[DnsQuery] = []
        self.peer_nxt: dict[int, int] = {}
        self.seen: set[str] = set()
        self.start(scenario)

    def start(self, b: int) -> None:
        if len(self.resolver.active) >= MAX_QUERIES:
            return
        self.stack.iface.now = self.now
        q = self.resolver.query(DNS_NAMES[b % len(DNS_NAMES)], DNS_TYPES[(b >> 3) % len(DNS_TYPES)])
        self.queries.append(q)
        self.step(0.0)

    def check(self) -> None:
        check_stack(self.stack)
        check_dns(self.resolver, self.queries)
        for q in self.queries:
            if q.done:
                self.seen.update(dns_outcomes(q))

    def _query(self, which: int) -> DnsQuery | None:
        return self.queries[which % len(self.queries)] if self.queries else None

    def _message(self, q: DnsQuery, ident: int, flags: int, hflags: int, an: int, ns: int, ar: int,
                 body: bytes) -> bytes:
        if flags & 16:
            hflags = (hflags | wdns.FLAG_QR) & ~(wdns.OPCODE_MASK << wdns.OPCODE_SHIFT)
        question: tuple[wdns.Question, ...] = ()
        if flags & 8:
            question = (wdns.Question(q._current, q.qtype),)
        head = wdns.DnsMessage(ident, hflags & 0xFFFF, question).emit()
        return wdns.HDR.pack(ident, hflags & 0xFFFF, len(question), an, ns, ar) + head[wdns.HDR.size :] + body

    def udp_reply(self, r: Reader) -> None:
        flags, which = r.u8(), r.u8()
        ident = 0 if flags & 1 else r.u16()
        port = 0 if flags & 2 else r.u16()
        hflags, an, ns, ar = r.u16(), r.u8(), r.u8(), r.u8()
        body = r.take(r.u16() % 2048)
        q = self._query(which)
        tries = [t for t in (q._tries if q is not None else []) if t.sock is not None]
        t = (tries[0] if flags & 32 else tries[-1]) if tries else None
        if q is None:
            return
        if flags & 1 and t is not None:
            ident = t.ident
        if flags & 2 and t is not None and t.sock is not None:
            port = t.sock.local_port
        server = wip.aton(t.server) if t is not None else DNS_S1
        src = server if flags & 4 else (DNS_S2 if server == DNS_S1 else DNS_S1)
        msg = self._message(q, ident, flags, hflags, an, ns, ar, body)
        self.deliver(udp_frame(msg, src=src, dst=HOST_IP, sport=self.config.port, dport=port))

    def udp_raw(self, r: Reader) -> None:
        flags = r.u8()
        payload = r.take(r.u16() % 2048)
        q = self._query(flags)
        tries = [t for t in (q._tries if q is not None else []) if t.sock is not None]
        if not tries or tries[-1].sock is None:
            return
        t = tries[-1]
        assert t.sock is not None
        self.deliver(udp_frame(payload, src=wip.aton(t.server), dst=HOST_IP, sport=self.config.port,
                               dport=t.sock.local_port))

    def _conn(self) -> TcpConnection | None:
        conns = [c for c in self.stack.tcp.connections if c.rport == self.config.port]
        return conns[-1] if conns else None

    def _segment(self, conn: TcpConnection, flags: int, payload: bytes = b"", options: bytes = b"") -> None:
        seq = self.peer_nxt.get(conn.lport, PEER_ISS)
        if flags & wtcp.SYN:
            seq = PEER_ISS
        seg = tcp_segment(self.config.port, conn.lport, seq, conn.snd_nxt, flags, 65535, options, payload,
                           src=conn.remote)
        self.peer_nxt[conn.lport] = seq + len(payload) + (1 if flags & (wtcp.SYN | wtcp.FIN) else 0)
        self.stack.receive(ip_frame(wip.PROTO_TCP, seg, src=conn.remote), self.now)

    def tcp(self, r: Reader) -> None:
        op = r.u8() % 5
        flags = which = hflags = an = split = 0
        length: int | None = None
        body = b""
        if op == 1:
            flags, which, hflags, an, split = r.u8(), r.u8(), r.u16(), r.u8(), r.u8()
            length = None if flags & 1 else r.u16()
            body = r.take(r.u16() % 4096)
        elif op == 2:
            body = r.take(r.u16() % 4096)
        conn = self._conn()
        if conn is None:
            return
        if op == 0:
            self._segment(conn, wtcp.SYN | wtcp.ACK, options=wtcp.build_options(mss=1460))
        elif op == 1:
            q = self._query(which)
            t = next((t for t in (q._tries if q is not None else []) if t.conn is conn), None)
            if q is None:
                return
            ident = t.ident if flags & 2 and t is not None else hflags ^ 0x5A5A
            msg = self._message(q, ident, flags, hflags, an, 0, 0, body)
            data = (len(msg) if length is None else length).to_bytes(2, "big") + msg
            if 0 < split < len(data):
                self._segment(conn, wtcp.ACK | wtcp.PSH, data[:split])
                self.step(0.0)
                data = data[split:]
            self._segment(conn, wtcp.ACK | wtcp.PSH, data)
        elif op == 2:
            self._segment(conn, wtcp.ACK | wtcp.PSH, body)
        elif op == 3:
            self._segment(conn, wtcp.ACK | wtcp.FIN)
        else:
            self._segment(conn, wtcp.RST | wtcp.ACK)
        self.step(0.0)

    def unreachable(self, r: Reader) -> None:
        q = self._query(len(self.queries) - 1)
        tries = [t for t in (q._tries if q is not None else []) if t.sock is not None]
        if tries and tries[-1].sock is not None:
            t = tries[-1]
            assert t.sock is not None
            self.deliver(port_unreachable(ours=HOST_IP, server=wip.aton(t.server), sport=t.sock.local_port,
                                          dport=self.config.port))

    def user(self, r: Reader) -> None:
        """``5 call:u8 arg:u8``: a new query (arg picks name and type), cancel query arg,
        cancel them all (``Resolver.close``), the first query's question again."""
        call, arg = r.u8() % 4, r.u8()
        self.stack.iface.now = self.now
        if call == 0:
            self.start(arg)
        elif call == 1:
            q = self._query(arg)
            if q is not None:
                q.cancel()
        elif call == 2:
            self.resolver.close()
        elif self.queries and len(self.resolver.active) < MAX_QUERIES:
            first = self.queries[0]
            self.queries.append(self.resolver.query(first.name, first.qtype))
        self.step(0.0)


def dns_outcomes(q: DnsQuery) -> set[str]:
    out = {type(q.error).__name__.lower() if q.error is not None else "answer" if q.values else "nodata"}
    if q.via_tcp:
        out.add("via_tcp")
    if q.truncated:
        out.add("truncated")
    if q.chain:
        out.add("cname")
    if q.from_cache:
        out.add("from_cache")
    return out


def check_dns(resolver: Resolver, queries: Sequence[DnsQuery]) -> None:
    """Only DnsError reaches the user; a running query always has a timer; the cache and
    the sockets stay bounded."""
    cfg = resolver.config
    for q in queries:
        if q.done:
            assert q not in resolver.active
            assert q.error is None or isinstance(q.error, DnsError), repr(q.error)
            try:
                values = q.result()
            except DnsError:
                pass
            else:
                assert all(isinstance(v, str) for v in values), values
            assert all(t.sock is None and t.conn is None for t in q._tries), "a finished query holds a socket"
        else:
            assert q in resolver.active
            d = q.deadline()
            assert d is not None and math.isfinite(d), f"{q} runs without a timer"
        assert len(q.chain) <= cfg.max_cname, q.chain
    assert len(resolver.cache) <= cfg.cache_size
    servers = len(cfg.servers or ())
    assert len(resolver.stack.udp) <= len(resolver.active) * (cfg.attempts * servers + 1), len(resolver.stack.udp)


def run_dns(data: bytes) -> set[str]:
    """``scenario:u8 opts:u8`` then records: 0 a UDP answer (:func:`dns_reply_record`), 1 raw
    bytes to the newest try's port (:func:`raw_record`), 2 ``dt:u8``, 3 the server's side
    of the TCP fallback (:func:`dns_tcp_record`), 4 ICMP port unreachable for the newest
    try, 5 a user call (:meth:`DnsHost.user`).  scenario: the first query's name (% 5) and
    type (>> 3, % 8, of :data:`DNS_TYPES`); opts: 1 no EDNS, 2 two servers, 4 two
    attempts, 8 no cache."""
    r = Reader(data)
    host = DnsHost(r.u8(), r.u8())
    host.play(r, [host.udp_reply, host.udp_raw, host.wait, host.tcp, host.unreachable, host.user])
    # Every try, every TCP fallback, FIN-WAIT and TIME-WAIT run out; each timeout may start
    # the next try (a CNAME restarts the count), so time moves in steps.
    for _ in range(60):
        if all(q.done for q in host.queries) and not len(host.stack.tcp):
            break
        host.step(10.0)
    assert all(q.done for q in host.queries), host.queries
    assert len(host.stack.udp) == 0, f"{len(host.stack.udp)} UDP sockets left"
    assert len(host.stack.tcp) == 0, [c.state_name for c in host.stack.tcp.connections]
    return host.seen


# == the NTP client ================================================================================

NTP_SERVER = PEER_IP


def ntp_reply_record(flags: int, packet: bytes = b"", extra: bytes = b"", *, skew_ms: int = 0) -> bytes:
    """``0 flags:u8 skew:i16 packet:48 len:u8 extra``: a reply from 10.0.0.2:123 (from port
    124 with flags&16).  flags: 1 mode 4 and our version (the leap bits stay), 2 origin =
    our last transmit nonce, 4 receive and transmit timestamps = our clock + skew ms,
    8 stratum 2 and leap 0."""
    return struct.pack("!BBh", 0, flags, skew_ms) + packet.ljust(48, b"\0")[:48] + bytes([len(extra)]) + extra


class NtpHost(_Driver):
    def __init__(self, scenario: int, opts: int) -> None:
        super().__init__(service_stack())
        _known(self.stack, NTP_SERVER)
        self.config = NtpConfig(samples=1 + scenario % 4, interval=0.5, timeout=1.0, version=3 + (opts & 1))
        self.query = NtpQuery(self.stack, wip.ntoa(NTP_SERVER), wall_offset=WALL, config=self.config)
        self.nonce = 0
        self.seen: set[str] = set()
        self.step(0.0)

    def check(self) -> None:
        check_stack(self.stack)
        check_ntp(self.query)
        out = self.query._outstanding
        if out is not None:
            self.nonce = out[0]
        if self.query.done:
            e = self.query.error
            self.seen.add(type(e).__name__.lower() if e is not None else "sample")
        if self.query.samples:
            self.seen.add("sampled")

    def reply(self, r: Reader) -> None:
        flags, skew = r.u8(), int.from_bytes(r.take(2).ljust(2, b"\0"), "big", signed=True)
        pkt = bytearray(r.take(48).ljust(48, b"\0"))
        extra = r.take(r.u8())
        if flags & 1:
            pkt[0] = (pkt[0] & 0xC0) | (self.config.version << 3) | wntp.MODE_SERVER
        if flags & 8:
            pkt[0] &= 0x3F
            pkt[1] = 2
        if flags & 2:
            pkt[wntp.OFF_ORIGIN : wntp.OFF_ORIGIN + 8] = self.nonce.to_bytes(8, "big")
        if flags & 4:
            t = wntp.from_unix(WALL + self.now + skew / 1000) & (wntp.ERA - 1)
            pkt[wntp.OFF_RECEIVE : wntp.OFF_RECEIVE + 8] = t.to_bytes(8, "big")
            pkt[wntp.OFF_TRANSMIT : wntp.OFF_TRANSMIT + 8] = t.to_bytes(8, "big")
        self.deliver(udp_frame(bytes(pkt) + extra, src=NTP_SERVER, dst=HOST_IP,
                               sport=124 if flags & 16 else self.config.port, dport=self.query._sock.local_port))

    def raw(self, r: Reader) -> None:
        """Raw bytes from the server's port to ours (:func:`raw_record`'s layout)."""
        r.u8()
        payload = r.take(r.u16() % 1500)
        self.deliver(udp_frame(payload, src=NTP_SERVER, dst=HOST_IP, sport=self.config.port,
                               dport=self.query._sock.local_port))

    def unreachable(self, r: Reader) -> None:
        """ICMP port unreachable about our request."""
        self.deliver(port_unreachable(ours=HOST_IP, server=NTP_SERVER, sport=self.query._sock.local_port,
                                      dport=self.config.port))

    def cancel(self, r: Reader) -> None:
        self.query.cancel()
        self.step(0.0)


def check_ntp(q: NtpQuery) -> None:
    """Samples are finite and never more than requests; only NtpError reaches the user; a
    running query always has a timer; a finished one has let its socket go."""
    assert len(q.samples) <= q.sent <= q.config.samples, (len(q.samples), q.sent)
    for s in q.samples:
        figures = (s.offset, s.delay, s.t1, s.t2, s.t3, s.t4, s.root_delay, s.root_dispersion)
        assert all(math.isfinite(x) for x in figures) and s.delay >= 0, s
    if q.done:
        assert q._sock.closed
        assert q.error is None or isinstance(q.error, NtpError), repr(q.error)
        try:
            best = q.result()
        except NtpError:
            pass
        else:
            assert best in q.samples and best.delay == min(s.delay for s in q.samples), best
    else:
        d = q.deadline()
        assert d is not None and math.isfinite(d), f"NTP query running without a timer at {q.sent} sent"


def run_ntp(data: bytes) -> set[str]:
    """``scenario:u8 opts:u8`` then records: 0 a reply (:func:`ntp_reply_record`), 1 raw bytes
    from the server to our port (:func:`raw_record`), 2 ``dt:u8``, 3 ICMP port unreachable
    about our request, 4 cancel.  scenario % 4 + 1 samples; opts & 1: version 4 (else 3)."""
    r = Reader(data)
    host = NtpHost(r.u8(), r.u8())
    q = host.query
    host.play(r, [host.reply, host.raw, host.wait, host.unreachable, host.cancel])
    for _ in range(2 * host.config.samples + 2):  # each request times out in turn
        host.step(2.0)
    assert q.done, (q.sent, q.samples)
    assert len(host.stack.udp) == 0, "the NTP query's socket outlived it"
    return host.seen




# == seeds =========================================================================================

#: what the seed corpus of each target must reach (``tests/test_fuzz_targets.py`` checks it)
SEED_OUTCOMES: dict[str, frozenset[str]] = {
    "dhcp_client": frozenset({"bound", "renewed", "rebound", "nak", "declined", "released", "expired",
                              dc.SELECTING, dc.REQUESTING, dc.PROBING, dc.BOUND, dc.RENEWING, dc.REBINDING,
                              dc.REBOOTING, dc.STOPPED}),
    "dhcp_server": frozenset({"discover", "offer", "request", "ack", "nak", "decline", "release", "inform",
                              "exhausted", "ignored", "expired", "restarted"}),
    "dns_resolver": frozenset({"answer", "nodata", "nxdomain", "servfail", "dnstimeout", "cnameloop", "dnserror",
                               "via_tcp", "truncated", "cname", "from_cache"}),
    "ntp_client": frozenset({"sample", "sampled", "kissofdeath", "unsynchronized", "ntptimeout", "ntperror"}),
}

RUNNERS = {"dhcp_client": run_dhcp_client, "dhcp_server": run_dhcp_server, "dns_resolver": run_dns,
           "ntp_client": run_ntp}

_ALL = 1 | 2 | 4 | 8 | 32  # right xid and chaddr, message type, our server, lease time


def _dhcp_client_seeds() -> list[bytes]:
    def reply(mtype: int, flags: int = _ALL, **kw: object) -> bytes:
        return dhcp_reply_record(flags, mtype, **kw)  # type: ignore[arg-type]

    wait = time_record(70)  # 3.5 s: past probes and retransmissions
    # raw options: mask /24, router, MTU 576, T1 and T2 the wrong way round, a DNS server
    opts = bytes.fromhex("0104ffffff00" "03040a000002" "1a020240" "3a0400000100" "3b0400000080" "06040a000035")
    scenario = {name: i for i, (name, _s) in enumerate(DHCP_CLIENT_SCENARIOS)}
    return [
        bytes([scenario["selecting"], 0]) + reply(wd.OFFER) + reply(wd.ACK) + wait,
        bytes([scenario["selecting"], 1]) + reply(wd.OFFER, raw=opts) + reply(wd.ACK, raw=opts) + wait + wait,
        bytes([scenario["requesting"], 0]) + reply(wd.NAK, 1 | 2 | 4 | 16) + reply(wd.NAK),
        bytes([scenario["requesting"], 4]) + reply(wd.ACK, lease=0xFFFFFFFF) + wait + time_record(255),
        bytes([scenario["probing"], 0]) + struct.pack("!BBB", 3, 0, 0) + bytes.fromhex("02000000beef"),
        bytes([scenario["probing"], 1]) + struct.pack("!BBB", 3, 1, 1) + bytes.fromhex("02000000beef") + wait,
        bytes([scenario["bound"], 0]) + bytes([5, 1]) + wait + bytes([5, 0]),
        bytes([scenario["bound"], 8]) + time_record(200) + time_record(255) + time_record(255),
        bytes([scenario["renewing"], 0]) + reply(wd.ACK, yi=1) + time_record(255),
        bytes([scenario["renewing"], 0]) + reply(wd.NAK) + reply(wd.OFFER) + bytes([4]),
        bytes([scenario["rebinding"], 0]) + reply(wd.ACK, _ALL & ~8, yi=1, lease=60),
        bytes([scenario["rebinding"], 0]) + time_record(165),
        bytes([scenario["rebooting"], 0]) + reply(wd.ACK) + wait,
        bytes([scenario["rebooting"], 0]) + reply(wd.ACK, _ALL & ~8) + bytes([5, 2]),
        bytes([scenario["rebooting"], 0]) + reply(wd.NAK, 1 | 2 | 4) + raw_record(1, bytes(300), 3),
    ]


def _dhcp_server_seeds() -> list[bytes]:
    discover, request, decline, release, inform = (t - 1 for t in (wd.DISCOVER, wd.REQUEST, wd.DECLINE,
                                                                    wd.RELEASE, wd.INFORM))
    selecting = 1 | 4 | 8 | 16  # option 53, 50 and our server id

    def lease(mac: int, pool_index: int) -> bytes:
        return (dhcp_request_record(1 | 128, discover, mac=mac)
                + dhcp_request_record(selecting, request, mac=mac, rq=pool_index << 2 | 1))

    return [
        bytes([0, 0]) + lease(1, 0) + dhcp_request_record(1 | 8 | 16, release, mac=1, ci=1, flags2=8 | 16),
        bytes([0, 1]) + lease(2, 0) + dhcp_request_record(1 | 4 | 8 | 16, decline, mac=2, rq=1) + time_record(120),
        bytes([0, 2]) + dhcp_request_record(1, discover, mac=0) + dhcp_request_record(selecting, request, mac=0, rq=2)
        + dhcp_request_record(1, inform, mac=0, ci=2, flags2=8 | 16),
        # INIT-REBOOT: someone else's address, then one from another network (NAKs)
        bytes([1, 0]) + dhcp_request_record(1 | 4, request, mac=4, rq=1) + dhcp_request_record(1 | 4, request, rq=3),
        # renewing from ciaddr, then a request for another server's offer
        bytes([1, 4]) + dhcp_request_record(1, request, mac=1, ci=1, flags2=8 | 16)
        + dhcp_request_record(1 | 4 | 8, request, mac=5, rq=5) + bytes([3]) + time_record(200),
        bytes([2, 0]) + dhcp_request_record(1, discover, mac=5) + dhcp_request_record(1, discover, mac=200,
                                                                                      chaddr=b"\x01" * 6),
        # an OFFER unicast to a DISCOVER's ciaddr waits for ARP; the client takes another
        # server's offer; the OFFER leaves when a renewal from ciaddr resolves it, stale
        bytes([0, 0]) + dhcp_request_record(1, discover, mac=1, ci=2 << 2 | 1)
        + dhcp_request_record(1 | 8, request, mac=1) + dhcp_request_record(1, request, mac=2, ci=2 << 2 | 1,
                                                                            flags2=8 | 16),
        bytes([0, 0]) + dhcp_request_record(2 | 32, 99, cid=b"\x01abc", raw=b"\x37\x03\x01\x03\x06")
        + raw_record(1, bytes(300), 3) + dhcp_request_record(1, discover, flags2=2),
    ]


def _dns_seeds() -> list[bytes]:
    name = wdns.encode_name
    right = 1 | 2 | 4 | 8 | 16
    qr_ra = wdns.FLAG_QR | wdns.FLAG_RD | wdns.FLAG_RA

    def rr(rtype: int, rdata: bytes, owner: bytes = b"\xc0\x0c", ttl: int = 300) -> bytes:
        return owner + struct.pack("!HHIH", rtype, wdns.CLASS_IN, ttl, len(rdata)) + rdata

    a = rr(wdns.TYPE_A, bytes([192, 0, 2, 1]))
    soa = rr(wdns.TYPE_SOA, name("ns.example") + name("host.example") + struct.pack("!IIIII", 1, 2, 3, 4, 60),
             owner=name("example.com"))
    cname = rr(wdns.TYPE_CNAME, name("web.example.net"))
    cname_a = rr(wdns.TYPE_A, bytes([192, 0, 2, 2]), owner=name("web.example.net"))
    loop = rr(wdns.TYPE_CNAME, name("web.example.net")) + rr(wdns.TYPE_CNAME, name("www.example.com"),
                                                              owner=name("web.example.net"))
    www_a, ex_mx = 0, 3 << 3 | 1  # scenario bytes: www.example.com A, example.org MX
    return [
        bytes([www_a, 0]) + dns_reply_record(right, qr_ra, a, an=1) + bytes([5, 3, 0]),
        bytes([www_a, 0]) + dns_reply_record(right, qr_ra | wdns.RCODE_NXDOMAIN, soa, ns=1),
        bytes([www_a, 0]) + dns_reply_record(right, qr_ra | wdns.RCODE_SERVFAIL),
        bytes([www_a, 2]) + dns_reply_record(right, qr_ra | wdns.RCODE_REFUSED) + time_record(3),
        bytes([www_a, 0]) + dns_reply_record(right, qr_ra, cname + cname_a, an=2),
        bytes([www_a, 0]) + dns_reply_record(right, qr_ra, loop, an=2),
        bytes([www_a, 0]) + dns_reply_record(right, qr_ra) + dns_reply_record(right, qr_ra, a, an=1),
        bytes([ex_mx, 0]) + dns_reply_record(right, qr_ra | wdns.FLAG_TC) + dns_tcp_record(0)
        + dns_tcp_record(1, 1 | 2 | 8 | 16, qr_ra, rr(wdns.TYPE_MX, b"\x00\x0a" + name("mx.example.org")), an=1,
                         split=5),
        bytes([ex_mx, 0]) + dns_reply_record(right, qr_ra | wdns.FLAG_TC) + dns_tcp_record(0) + dns_tcp_record(3),
        bytes([www_a, 4]) + dns_reply_record(right & ~1, qr_ra, a, an=1, ident=7) + bytes([4]) + time_record(100),
        bytes([www_a, 0]) + dns_reply_record(right, qr_ra | wdns.RCODE_FORMERR)
        + dns_reply_record(right, qr_ra, a, an=1),
        bytes([www_a, 0]) + bytes([5, 0, 9]) + bytes([5, 1, 0]) + raw_record(1, bytes(12), 1),
    ]


def _ntp_seeds() -> list[bytes]:
    good = 1 | 2 | 4 | 8
    stratum0 = bytes([0x24, 0, 6, 0xEC]) + bytes(8) + b"RATE" + bytes(32)
    leap3 = bytes([0xE4, 2, 6, 0xEC]) + bytes(44)
    return [
        bytes([0, 1]) + ntp_reply_record(good, skew_ms=150),
        bytes([3, 1]) + b"".join(ntp_reply_record(good, skew_ms=-20 * i) + time_record(50) for i in range(4)),
        bytes([1, 0]) + ntp_reply_record(1 | 2, stratum0),
        bytes([0, 1]) + ntp_reply_record(1 | 2 | 4, leap3),
        bytes([1, 1]) + ntp_reply_record(1 | 4 | 8) + bytes([3]) + time_record(110),
        bytes([0, 0]) + raw_record(1, bytes(48)) + bytes([4]),
    ]


def service_seeds() -> dict[str, list[bytes]]:
    return {"dhcp_client": _dhcp_client_seeds(), "dhcp_server": _dhcp_server_seeds(), "dns_resolver": _dns_seeds(),
            "ntp_client": _ntp_seeds()}
