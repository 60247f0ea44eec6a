"""Frames and readers for the scripted DHCP tests.

A test plays the other side by hand: it builds a DHCP message as a value
(:class:`seqs.wire.dhcp.DhcpMessage`), wraps it in UDP/IPv4/Ethernet with
:func:`dhcp_frame`, feeds it to the stack, and reads what the stack sent back
with :func:`sent` (every frame parsed; DHCP ones decoded).  ``trace`` renders a
list of them one per line for assertion messages.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from seqs import Stack
from seqs.wire import dhcp as wd
from seqs.wire import ethernet as weth
from seqs.wire import ipv4 as wip
from seqs.wire.arp import ArpPacket
from seqs.wire.ethernet import EthernetFrame
from seqs.wire.ipv4 import Ipv4Header
from seqs.wire.udp import UdpDatagram

CLIENT_MAC = bytes.fromhex("02000000c0de")
SERVER_MAC = bytes.fromhex("02000000dead")
OTHER_MAC = bytes.fromhex("02000000beef")
SERVER_IP = wip.aton("10.0.0.1")
OTHER_SERVER_IP = wip.aton("10.0.0.254")
OFFERED_IP = wip.aton("10.0.0.77")
MASK_24 = wip.aton("255.255.255.0")
BROADCAST = 0xFFFFFFFF


@dataclass
class Sent:
    frame: EthernetFrame
    ip: Ipv4Header | None = None
    udp: UdpDatagram | None = None
    dhcp: wd.DhcpMessage | None = None
    arp: ArpPacket | None = None

    def __str__(self) -> str:
        if self.arp is not None:
            a = self.arp
            return (f"ARP op={a.op} {wip.ntoa(a.spa)} asks {wip.ntoa(a.tpa)} "
                    f"-> {weth.mac_to_str(self.frame.dst)}")
        assert self.ip is not None
        head = f"{wip.ntoa(self.ip.src)} > {wip.ntoa(self.ip.dst)} ({weth.mac_to_str(self.frame.dst)})"
        return f"{head} {self.dhcp.describe() if self.dhcp else 'IP'}"


def sent(stack: Stack) -> list[Sent]:
    """Take and decode everything ``stack`` sent."""
    out = []
    for raw in stack.take_tx():
        f = EthernetFrame.parse(bytes(raw))
        if f.ethertype == weth.ETHERTYPE_ARP:
            out.append(Sent(f, arp=ArpPacket.parse(f.payload)))
            continue
        hdr, payload = Ipv4Header.parse(f.payload)
        s = Sent(f, hdr)
        if hdr.proto == wip.PROTO_UDP:
            s.udp = UdpDatagram.parse(payload, hdr.src, hdr.dst)
            if {s.udp.sport, s.udp.dport} & {wd.SERVER_PORT, wd.CLIENT_PORT}:
                s.dhcp = wd.DhcpMessage.parse(s.udp.payload)
        out.append(s)
    return out


def trace(items: list[Sent]) -> str:
    return "\n".join(str(s) for s in items) or "(nothing sent)"


def only_dhcp(stack: Stack) -> wd.DhcpMessage:
    """Exactly one frame was sent and it is DHCP: return the message."""
    items = sent(stack)
    assert len(items) == 1 and items[0].dhcp is not None, trace(items)
    return items[0].dhcp


def dhcp_frame(msg: wd.DhcpMessage, *, src: int = SERVER_IP, dst: int = BROADCAST,
               mac_src: bytes = SERVER_MAC, mac_dst: bytes = weth.BROADCAST,
               sport: int = wd.SERVER_PORT, dport: int = wd.CLIENT_PORT) -> bytes:
    return udp_payload_frame(msg.emit(), src=src, dst=dst, mac_src=mac_src, mac_dst=mac_dst, sport=sport,
                             dport=dport)


def udp_payload_frame(payload: bytes, *, src: int = SERVER_IP, dst: int = BROADCAST,
                      mac_src: bytes = SERVER_MAC, mac_dst: bytes = weth.BROADCAST,
                      sport: int = wd.SERVER_PORT, dport: int = wd.CLIENT_PORT) -> bytes:
    udp = UdpDatagram(sport, dport, payload).emit(src, dst)
    ip = Ipv4Header(src, dst, wip.PROTO_UDP, dont_fragment=False).emit(udp)
    return EthernetFrame(mac_dst, mac_src, weth.ETHERTYPE_IPV4, ip).emit()


def arp_frame(op: int, sha: bytes, spa: int, tpa: int, *, dst: bytes = weth.BROADCAST,
              tha: bytes = bytes(6)) -> bytes:
    return EthernetFrame(dst, sha, weth.ETHERTYPE_ARP, ArpPacket(op, sha, spa, tha, tpa).emit()).emit()


def reply(request: wd.DhcpMessage, mtype: int, yiaddr: int = OFFERED_IP, *, server: int = SERVER_IP,
          lease: int | None = 3600, xid: int | None = None, **options: object) -> wd.DhcpMessage:
    """A server's answer to ``request``: mask /24, router and DNS at the server, unless overridden."""
    fields: dict[str, object] = {"message_type": mtype, "server_id": server}
    if mtype != wd.NAK:
        fields.update(lease_time=lease, subnet_mask=MASK_24, routers=(SERVER_IP,), dns_servers=(SERVER_IP,))
    fields.update(options)
    return wd.DhcpMessage(
        wd.OP_REPLY, request.xid if xid is None else xid, request.chaddr,
        wd.DhcpOptions(**fields),  # type: ignore[arg-type]
        yiaddr=yiaddr if mtype != wd.NAK else 0, ciaddr=request.ciaddr,
    )


def request_msg(mtype: int, mac: bytes = CLIENT_MAC, *, xid: int = 0x1234, ciaddr: int = 0, flags: int = 0,
                **options: object) -> wd.DhcpMessage:
    """A client's message, for the server tests."""
    return wd.DhcpMessage(wd.OP_REQUEST, xid, mac, wd.DhcpOptions(message_type=mtype, **options),  # type: ignore[arg-type]
                          ciaddr=ciaddr, flags=flags)


def random_mac(rng: random.Random) -> bytes:
    return bytes([(rng.getrandbits(8) & 0xFC) | 0x02]) + rng.randbytes(5)
