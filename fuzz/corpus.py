"""The seed corpus: small real inputs for every target (``python -m fuzz corpus`` writes them).

Parser seeds are well-formed packets built with the ``seqs.wire`` value types.
The ``interface`` seeds are conversations with the fuzz host: ARP, ping, UDP
echo, fragments, ICMP errors, and a whole TCP connection (SYN, data, FIN)
whose numbers were taken from the host's own answers — the host is seeded, so
replaying the records reproduces them exactly.  The ``tcp_state`` seeds open
every scenario with a few segments that matter there.  The service seeds
(:func:`fuzz.services.service_seeds`) are conversations that reach each
service's outcomes: a lease bound, renewed, refused, declined, released; an
answer over UDP and over TCP, NXDOMAIN, a CNAME loop; an NTP sample, a kiss.
"""

from __future__ import annotations

import pathlib
import struct

from seqs.wire import arp as warp
from seqs.wire import ethernet as weth
from seqs.wire import icmp as wicmp
from seqs.wire import ipv4 as wip
from seqs.wire import tcp as wtcp
from seqs.wire import udp as wudp
from seqs.wire import virtio
from seqs.wire.ethernet import EthernetFrame

from .harness import ECHO, HOST_IP, HOST_MAC, PEER_IP, PEER_MAC, PEER_SERVER_PORT, Host, ip_frame, tcp_segment
from .services import service_seeds
from .tcp_states import SCENARIOS

__all__ = ["seeds", "write_corpus"]

SYN, ACK, FIN, RST, PSH = wtcp.SYN, wtcp.ACK, wtcp.FIN, wtcp.RST, wtcp.PSH
_SYN_OPTS = wtcp.TcpOptions(mss=1460, wscale=7, sack_permitted=True, timestamp=(1000, 0))


def _udp(sport: int, dport: int, data: bytes) -> bytes:
    return wudp.UdpDatagram(sport, dport, data).emit(PEER_IP, HOST_IP)


def _ip(proto: int, payload: bytes, **kw: object) -> bytes:
    return wip.Ipv4Header(PEER_IP, HOST_IP, proto, **kw).emit(payload)  # type: ignore[arg-type]


def _eth(payload: bytes, ethertype: int = weth.ETHERTYPE_IPV4, vlan: int | None = None) -> bytes:
    return EthernetFrame(HOST_MAC, PEER_MAC, ethertype, payload, vlan).emit()


def _parser_seeds() -> dict[str, list[bytes]]:
    arp_req = warp.ArpPacket(warp.OP_REQUEST, PEER_MAC, PEER_IP, bytes(6), HOST_IP).emit()
    arp_rep = warp.ArpPacket(warp.OP_REPLY, PEER_MAC, PEER_IP, HOST_MAC, HOST_IP).emit()
    ping = wicmp.IcmpMessage.echo(True, 0x1234, 1, b"abcdefgh" * 4).emit()
    udp = _udp(5000, ECHO, b"hello")
    syn = wtcp.TcpSegment(40000, ECHO, 1000, 0, SYN, 64240, 0, _SYN_OPTS).emit(PEER_IP, HOST_IP)
    data = wtcp.TcpSegment(40000, ECHO, 1001, 5000, ACK | PSH, 502, 0,
                           wtcp.TcpOptions(timestamp=(1010, 77)), b"GET / HTTP/1.0\r\n\r\n").emit(PEER_IP, HOST_IP)
    fin = wtcp.TcpSegment(40000, ECHO, 1019, 5000, ACK | FIN, 502).emit(PEER_IP, HOST_IP)
    sack = wtcp.TcpSegment(40000, ECHO, 1019, 5000, ACK, 502, 0,
                           wtcp.TcpOptions(sack=((6000, 7000), (8000, 9000)))).emit(PEER_IP, HOST_IP)
    quoted_udp = wip.Ipv4Header(HOST_IP, PEER_IP, wip.PROTO_UDP).emit(_udp(7, 5000, b"x" * 8))[:28]
    quoted_tcp = wip.Ipv4Header(HOST_IP, PEER_IP, wip.PROTO_TCP).emit(syn)[:28]
    unreach = wicmp.IcmpMessage(wicmp.TYPE_DEST_UNREACHABLE, wicmp.CODE_PORT_UNREACHABLE, 0, quoted_udp).emit()
    frag_needed = wicmp.IcmpMessage(wicmp.TYPE_DEST_UNREACHABLE, wicmp.CODE_FRAG_NEEDED, 1280, quoted_tcp).emit()
    exceeded = wicmp.IcmpMessage(wicmp.TYPE_TIME_EXCEEDED, 0, 0, quoted_udp).emit()
    ip_ping = _ip(wip.PROTO_ICMP, ping)
    ip_opts = _ip(wip.PROTO_UDP, udp, options=bytes.fromhex("94040000"))
    frag0 = _ip(wip.PROTO_UDP, _udp(5000, ECHO, b"y" * 40)[:24], ident=7, more_fragments=True)
    frag1 = _ip(wip.PROTO_UDP, _udp(5000, ECHO, b"y" * 40)[24:], ident=7, frag_offset=24)
    seeds: dict[str, list[bytes]] = {
        "ethernet": [_eth(arp_req, weth.ETHERTYPE_ARP), _eth(ip_ping), _eth(_ip(wip.PROTO_UDP, udp), vlan=5),
                     _eth(_ip(wip.PROTO_TCP, syn))],
        "arp": [arp_req, arp_rep],
        "ipv4": [ip_ping, _ip(wip.PROTO_UDP, udp), _ip(wip.PROTO_TCP, syn), ip_opts, frag0, frag1],
        "icmp": [ping, unreach, frag_needed, exceeded],
        "udp": [udp, _udp(68, 67, bytes(20))],
        "tcp": [syn, data, fin, sack],
        "tcp_options": [
            wtcp.build_options(mss=1460, wscale=7, sack_permitted=True, timestamp=(1, 2)),
            wtcp.build_options(timestamp=(5, 6), sack=((1, 2), (3, 4), (5, 6))),
            b"\x01\x01\x00", b"\x02\x04\x05\xb4\x03\x03\x0e\x00",
        ],
        "vnet": [virtio.VnetHeader().emit(), virtio.VnetHeader(1, 1, 54, 1448, 34, 16).emit()],
    }
    try:
        from seqs.wire import dhcp as wdhcp

        chaddr = PEER_MAC
        seeds["dhcp"] = [
            wdhcp.DhcpMessage(wdhcp.OP_REQUEST, 0x1234, chaddr, wdhcp.DhcpOptions(
                message_type=wdhcp.DISCOVER, parameter_request_list=(1, 3, 6, 42), hostname="seqs")).emit(),
            wdhcp.DhcpMessage(wdhcp.OP_REPLY, 0x1234, chaddr, wdhcp.DhcpOptions(
                message_type=wdhcp.OFFER, subnet_mask=0xFFFFFF00, routers=(GATEWAY,), dns_servers=(GATEWAY,),
                lease_time=3600, server_id=GATEWAY, renewal_time=1800, rebinding_time=3000),
                yiaddr=HOST_IP).emit(),
        ]
    except ImportError:
        pass
    try:
        from seqs.wire import dns as wdns

        q = wdns.DnsMessage.query(0xBEEF, "www.example.com", wdns.TYPE_A, edns_payload=1232)
        answer = q.reply((wdns.Record.a("www.example.com", "192.0.2.1"),
                          wdns.Record("example.com", wdns.TYPE_CNAME, 60, wdns.encode_name("www.example.com"))))
        seeds["dns"] = [q.emit(), answer.emit(), wdns.encode_name("a.b.example.org")]
    except ImportError:
        pass
    try:
        from seqs.wire import ntp as wntp

        seeds["ntp"] = [wntp.NtpPacket(wntp.MODE_CLIENT, transmit=0xE8000000_12345678).emit(),
                        wntp.NtpPacket(wntp.MODE_SERVER, stratum=2, ref_id=b"GPS\0", origin=1, receive=2,
                                       transmit=3).emit(),
                        wntp.NtpPacket(wntp.MODE_SERVER, stratum=0, ref_id=b"RATE").emit()]
    except ImportError:
        pass
    return seeds


GATEWAY = wip.aton("10.0.0.254")


# -- interface conversations ------------------------------------------------------------------------


def _record(frame: bytes, dt: int = 0, flags: int = 0) -> bytes:
    return struct.pack("!BBH", dt, flags, len(frame)) + frame


def _tcp_conversation() -> bytes:
    """A whole connection to the echo service, numbered from the host's own SYN-ACK."""
    host = Host()
    records = []

    def send(seg: bytes, dt: int = 0) -> list[wtcp.TcpSegment]:
        frame = ip_frame(wip.PROTO_TCP, seg)
        records.append(_record(frame, dt))
        host.step(dt * 0.001)
        host.stack.receive(frame, host.now)
        host.stack.poll(host.now)  # the echo service answers at the poll
        out = []
        for f in host.stack.take_tx():
            e = EthernetFrame.parse(bytes(f))
            if e.ethertype == weth.ETHERTYPE_IPV4:
                h, p = wip.Ipv4Header.parse(e.payload)
                if h.proto == wip.PROTO_TCP:
                    out.append(wtcp.TcpSegment.parse(p, h.src, h.dst))
        host.step(0.0)
        return out

    isn = 1000
    (synack,) = send(tcp_segment(40000, ECHO, isn, 0, SYN, 64240, wtcp.build_options(mss=1460, sack_permitted=True)))
    una = synack.seq + 1
    send(tcp_segment(40000, ECHO, isn + 1, una, ACK, 64240), dt=1)
    echoed = send(tcp_segment(40000, ECHO, isn + 1, una, ACK | PSH, 64240, b"", b"hello, echo"), dt=1)
    got = sum(len(s.payload) for s in echoed)
    send(tcp_segment(40000, ECHO, isn + 12, una + got, ACK | FIN, 64240), dt=1)
    send(tcp_segment(40000, ECHO, isn + 13, una + got + 1, ACK, 64240), dt=1)
    return b"".join(records)


def _active_open_answered() -> bytes:
    """The SYN-ACK the host's own active open (to the peer's port 80) is waiting for."""
    host = Host()
    conn = host.active
    seg = tcp_segment(PEER_SERVER_PORT, conn.lport, 7000, conn.snd_nxt, SYN | ACK, 29200,
                      wtcp.build_options(mss=1460, wscale=7, sack_permitted=True, timestamp=(50, 0)))
    ack_data = tcp_segment(PEER_SERVER_PORT, conn.lport, 7001, conn.snd_nxt, ACK | PSH, 229, b"", b"server says hi")
    return _record(ip_frame(wip.PROTO_TCP, seg)) + _record(ip_frame(wip.PROTO_TCP, ack_data), 5)


def _interface_seeds() -> list[bytes]:
    arp_req = weth.build_header(weth.BROADCAST, PEER_MAC, weth.ETHERTYPE_ARP) + warp.ArpPacket(
        warp.OP_REQUEST, bytes.fromhex("020000000009"), wip.aton("10.0.0.9"), bytes(6), HOST_IP).emit()
    ping = ip_frame(wip.PROTO_ICMP, wicmp.IcmpMessage.echo(True, 1, 1, b"ping" * 8).emit())
    udp = ip_frame(wip.PROTO_UDP, _udp(5000, ECHO, b"echo me"))
    # hping3's UDP flood comes from every source port, 0 included: it once crashed `seqs up`
    udp_from_zero = ip_frame(wip.PROTO_UDP, _udp(0, ECHO, b"no reply wanted"))
    payload = _udp(5001, ECHO, b"z" * 2000)
    frags = [ip_frame(wip.PROTO_UDP, payload[a : a + 1480], ident=9,
                      flags_frag=(a >> 3) | (wip.FLAG_MF if a + 1480 < len(payload) else 0))
             for a in range(0, len(payload), 1480)]
    quote = wip.Ipv4Header(HOST_IP, PEER_IP, wip.PROTO_UDP).emit(wudp.UdpDatagram(7, 5353, b"q" * 8).emit(HOST_IP, PEER_IP))[:28]
    unreach = ip_frame(wip.PROTO_ICMP, wicmp.IcmpMessage(wicmp.TYPE_DEST_UNREACHABLE, 3, 0, quote).emit())
    syn_flood = b"".join(
        _record(ip_frame(wip.PROTO_TCP, tcp_segment(30000 + i, ECHO, i * 7919, 0, SYN, 1024), src=wip.aton(f"10.0.0.{20 + i}")), 1)
        for i in range(8)
    )
    return [
        _record(arp_req),
        _record(ping) + _record(ping, 200),
        _record(udp) + _record(unreach, 5),
        _record(udp_from_zero),
        b"".join(_record(f, 1) for f in frags),
        b"".join(_record(f, 1) for f in reversed(frags)) + _record(b"", 250),
        _tcp_conversation(),
        _active_open_answered(),
        syn_flood,
    ]


# -- TCP states -------------------------------------------------------------------------------------


def _seg(flags: int, seq_off: int, ack_off: int, payload: bytes = b"", *, wnd: int = 65535, dt: int = 0,
         options: bytes = b"", kind: int = 1) -> bytes:
    return (struct.pack("!BBiiHBB", kind, flags, seq_off, ack_off, wnd, dt, len(options)) + options
            + struct.pack("!H", len(payload)) + payload)


def _tcp_state_seeds() -> list[bytes]:
    out = []
    scripts = [
        _seg(ACK | PSH, 0, 0, b"in order data"),
        _seg(ACK | PSH, 100, 0, b"out of order"),
        _seg(RST, 5, 0),  # in-window, inexact: a challenge ACK
        _seg(SYN, 0, 0),  # SYN in a synchronized state: a challenge ACK
        _seg(ACK, 0, 100000),  # acknowledges what was never sent
        _seg(ACK | FIN, 0, 0) + bytes([0xE5]),
        _seg(ACK, 0, 0, wnd=0) + bytes([0xE0]) + struct.pack("!H", 3000) + bytes([0xE5, 0xE5]),
        bytes([0xE2, 0xE5, 0xE6, 200]),
    ]
    for i in range(len(SCENARIOS)):
        for j, script in enumerate(scripts):
            opts = (0x01 | 0x02 | 0x04 | (7 << 3)) if j % 2 == 0 else 0x80
            out.append(bytes([i, opts]) + script)
    return out


def seeds() -> dict[str, list[bytes]]:
    s = _parser_seeds()
    s["interface"] = _interface_seeds()
    s["tcp_state"] = _tcp_state_seeds()
    s.update(service_seeds())
    return s


def write_corpus(root: pathlib.Path) -> dict[str, int]:
    counts = {}
    for target, inputs in seeds().items():
        d = root / target
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("seed-*"):
            old.unlink()
        for i, data in enumerate(inputs):
            (d / f"seed-{i:03d}").write_bytes(data)
        counts[target] = len(inputs)
    return counts
