"""Frame builders and a frame describer for the interface and socket tests.

Every test frame is built from the ``seqs.wire`` value types, and every frame
the stack sends is parsed back with them, so a test never hand-assembles
offsets.  ``describe`` renders a frame as one line of a packet trace for
assertion messages.

``skip_or_fail`` is the one way a kernel (interop) test says it cannot run
here: a skip, or a failure when CI demands the interop tier.
"""

from __future__ import annotations

import functools
import itertools
import os
import random
from collections.abc import Iterable, Sequence
from typing import NoReturn

import pytest

from seqs import Stack
from seqs.iface import InterfaceConfig
from seqs.netns import interop_unavailable
from seqs.wire import ethernet as weth
from seqs.wire import ipv4 as wip
from seqs.wire.arp import OP_REPLY, OP_REQUEST, ArpPacket
from seqs.wire.ethernet import EthernetFrame
from seqs.wire.icmp import IcmpMessage
from seqs.wire.ipv4 import Ipv4Header
from seqs.wire.udp import UdpDatagram

OUR_MAC = bytes.fromhex("020000000001")
PEER_MAC = bytes.fromhex("020000000002")
OTHER_MAC = bytes.fromhex("020000000003")
OUR_IP = wip.aton("10.0.0.1")
PEER_IP = wip.aton("10.0.0.2")
OTHER_IP = wip.aton("10.0.0.3")
GATEWAY_IP = wip.aton("10.0.0.254")
SUBNET_BROADCAST = wip.aton("10.0.0.255")
FAR_IP = wip.aton("192.0.2.7")


# -- tests against the Linux kernel -----------------------------------------------------

#: set by ``.ci/run``: a kernel test that cannot run is a failure, not a skip
REQUIRE_INTEROP = "SEQS_REQUIRE_INTEROP"


def skip_or_fail(why: str) -> NoReturn:
    """Skip a kernel test that cannot run on this machine; with ``SEQS_REQUIRE_INTEROP=1``
    fail it instead, so a CI machine that lost a prerequisite (root, /dev/net/tun, a
    program) cannot pass with the interop tier silently skipped."""
    if os.environ.get(REQUIRE_INTEROP) == "1":
        pytest.fail(f"interop test cannot run, and {REQUIRE_INTEROP}=1 requires it: {why}")
    pytest.skip(f"interop test: {why}")


@functools.cache
def why_no_interop() -> str | None:
    """Why namespaces and TAPs are unavailable here, or None.  Asked once per session:
    the probe creates and deletes a namespace."""
    return interop_unavailable()


def require_interop() -> None:
    """``skip_or_fail`` unless this machine can run kernel tests."""
    why = why_no_interop()
    if why:
        skip_or_fail(why)


# -- building frames ---------------------------------------------------------------------


def make_stack(*, seed: int = 1, **config: object) -> Stack:
    """Our host: 10.0.0.1/24 at OUR_MAC, seeded, with ``config`` overriding InterfaceConfig fields."""
    fields: dict[str, object] = {"mac": OUR_MAC, "address": OUR_IP, "prefix": 24}
    fields.update(config)
    return Stack(config=InterfaceConfig(**fields), rng=random.Random(seed))  # type: ignore[arg-type]


def eth(payload: bytes, ethertype: int = weth.ETHERTYPE_IPV4, *, dst: bytes = OUR_MAC,
        src: bytes = PEER_MAC) -> bytes:
    return EthernetFrame(dst, src, ethertype, payload).emit()


def arp_frame(op: int, sha: bytes, spa: int, tpa: int, *, tha: bytes = bytes(6),
              dst: bytes = weth.BROADCAST) -> bytes:
    return eth(ArpPacket(op, sha, spa, tha, tpa).emit(), weth.ETHERTYPE_ARP, dst=dst, src=sha)


def arp_request(sha: bytes, spa: int, tpa: int, **kw: object) -> bytes:
    return arp_frame(OP_REQUEST, sha, spa, tpa, **kw)  # type: ignore[arg-type]


def arp_reply(sha: bytes, spa: int, tpa: int = OUR_IP) -> bytes:
    return arp_frame(OP_REPLY, sha, spa, tpa, tha=OUR_MAC, dst=OUR_MAC)


def ip_packet(proto: int, payload: bytes, *, src: int = PEER_IP, dst: int = OUR_IP, **hdr: object) -> bytes:
    hdr.setdefault("dont_fragment", False)
    return Ipv4Header(src, dst, proto, **hdr).emit(payload)  # type: ignore[arg-type]


def ip_frame(proto: int, payload: bytes, *, src: int = PEER_IP, dst: int = OUR_IP,
             mac_dst: bytes = OUR_MAC, mac_src: bytes = PEER_MAC, **hdr: object) -> bytes:
    return eth(ip_packet(proto, payload, src=src, dst=dst, **hdr), dst=mac_dst, src=mac_src)


def udp_frame(sport: int, dport: int, data: bytes, *, src: int = PEER_IP, dst: int = OUR_IP,
              **kw: object) -> bytes:
    return ip_frame(wip.PROTO_UDP, UdpDatagram(sport, dport, data).emit(src, dst), src=src, dst=dst, **kw)


def icmp_frame(msg: IcmpMessage, *, src: int = PEER_IP, dst: int = OUR_IP, **kw: object) -> bytes:
    return ip_frame(wip.PROTO_ICMP, msg.emit(), src=src, dst=dst, **kw)


def fragments(proto: int, payload: bytes, sizes: Sequence[int], *, ident: int = 0x1234,
              src: int = PEER_IP, dst: int = OUR_IP) -> list[bytes]:
    """Frames carrying ``payload`` cut into pieces of ``sizes`` bytes (RFC 791 §3.2);
    the last piece takes the rest."""
    bounds = [0]
    for size in sizes:
        if bounds[-1] + size >= len(payload):
            break
        bounds.append(bounds[-1] + size)
    bounds.append(len(payload))
    return [
        ip_frame(proto, payload[a:b], src=src, dst=dst, ident=ident, frag_offset=a, more_fragments=b < len(payload))
        for a, b in itertools.pairwise(bounds)
    ]


def learn_peer(stack: Stack, now: float = 0.0, mac: bytes = PEER_MAC, ip: int = PEER_IP) -> None:
    """The peer asks for us (RFC 826: we learn it, being the target) and we answer."""
    stack.receive(arp_request(mac, ip, stack.iface.address), now)
    sent = parse_all(stack.take_tx())
    assert [f.ethertype for f in sent] == [weth.ETHERTYPE_ARP], sent
    assert stack.iface.arp.lookup(ip, now) == mac


def ready_stack(**config: object) -> Stack:
    """Our host with the peer's MAC already known, so IP output leaves at once."""
    s = make_stack(**config)
    learn_peer(s, 0.0)
    return s


# -- reading what the stack sent ----------------------------------------------------


def parse_all(frames: Iterable[bytes | bytearray | memoryview]) -> list[EthernetFrame]:
    return [EthernetFrame.parse(bytes(f)) for f in frames]


def ip_of(frame: EthernetFrame) -> tuple[Ipv4Header, bytes]:
    assert frame.ethertype == weth.ETHERTYPE_IPV4, describe(frame)
    return Ipv4Header.parse(frame.payload)


def arp_of(frame: EthernetFrame) -> ArpPacket:
    assert frame.ethertype == weth.ETHERTYPE_ARP, describe(frame)
    return ArpPacket.parse(frame.payload)


def sent_ip(stack: Stack) -> list[tuple[Ipv4Header, bytes]]:
    """Take the stack's output; every frame must be IPv4."""
    return [ip_of(f) for f in parse_all(stack.take_tx())]


def sent_icmp(stack: Stack) -> list[tuple[Ipv4Header, IcmpMessage]]:
    out = []
    for hdr, payload in sent_ip(stack):
        assert hdr.proto == wip.PROTO_ICMP, hdr
        out.append((hdr, IcmpMessage.parse(payload)))
    return out


def describe(frame: EthernetFrame | bytes) -> str:
    """One trace line: ``10.0.0.2 > 10.0.0.1 UDP 1000>7 len 5`` or ``ARP who-has ...``."""
    if not isinstance(frame, EthernetFrame):
        frame = EthernetFrame.parse(frame)
    if frame.ethertype == weth.ETHERTYPE_ARP:
        a = ArpPacket.parse(frame.payload)
        what = "who-has" if a.op == OP_REQUEST else "is-at"
        return (f"ARP {what} {wip.ntoa(a.tpa)} tell {wip.ntoa(a.spa)} "
                f"{weth.mac_to_str(a.sha)} -> {weth.mac_to_str(frame.dst)}")
    if frame.ethertype != weth.ETHERTYPE_IPV4:
        return f"ethertype {frame.ethertype:#06x} len {len(frame.payload)}"
    h, p = Ipv4Header.parse(frame.payload)
    line = f"{wip.ntoa(h.src)} > {wip.ntoa(h.dst)} ttl {h.ttl} id {h.ident}"
    if h.more_fragments or h.frag_offset:
        line += f" frag {h.frag_offset}{'+' if h.more_fragments else ''}"
    if h.proto == wip.PROTO_ICMP and not h.frag_offset:
        line += f" ICMP type {p[0]} code {p[1]}"
    elif h.proto == wip.PROTO_UDP and not h.frag_offset:
        line += f" UDP {int.from_bytes(p[0:2], 'big')}>{int.from_bytes(p[2:4], 'big')}"
    return line + f" len {len(p)}"


# -- figures a test reports ----------------------------------------------------------------

#: environment variable naming a file that collects test figures, one JSON object a line
REPORT_ENV = "SEQS_TEST_REPORT"


def record(name: str, **figures: object) -> None:
    """Append ``{"test": name, **figures}`` as one JSON line to the file ``$SEQS_TEST_REPORT``
    names, if it is set (flood rates, memory, counters: the figures the issues ask for)."""
    import json
    import os

    path = os.environ.get(REPORT_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"test": name, **figures}, sort_keys=True, default=str) + "\n")
