"""ARP for IPv4 over Ethernet (RFC 826): the 28-byte packet and nothing else.

The cache, request rate limits and the queue of packets awaiting resolution
belong to :mod:`seqs.iface.arp`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .._typing import BytesLike
from ..errors import ParseError

__all__ = ["OP_REPLY", "OP_REQUEST", "PACKET_LEN", "ArpPacket", "ArpView"]

PACKET_LEN = 28
OP_REQUEST = 1
OP_REPLY = 2

_HTYPE_ETHERNET = 1
_PTYPE_IPV4 = 0x0800
#: htype, ptype, hlen, plen, op, sha, spa, tha, tpa
_ARP = struct.Struct("!HHBBH6sI6sI")


class ArpView:
    """Zero-copy view of an ARP packet; only Ethernet/IPv4 is accepted."""

    __slots__ = ("op", "sha", "spa", "tha", "tpa")

    def __init__(self, buf: BytesLike) -> None:
        if len(buf) < PACKET_LEN:
            raise ParseError("arp_truncated", f"{len(buf)} bytes")
        htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(buf, 0)
        if htype != _HTYPE_ETHERNET or ptype != _PTYPE_IPV4 or hlen != 6 or plen != 4:
            raise ParseError("arp_unsupported", f"htype={htype} ptype={ptype:#x} hlen={hlen} plen={plen}")
        if op not in (OP_REQUEST, OP_REPLY):
            raise ParseError("arp_bad_op", str(op))
        self.op: int = op
        self.sha: bytes = sha
        self.spa: int = spa
        self.tha: bytes = tha
        self.tpa: int = tpa


@dataclass(frozen=True, slots=True)
class ArpPacket:
    op: int
    sha: bytes
    spa: int
    tha: bytes
    tpa: int

    @classmethod
    def parse(cls, buf: BytesLike) -> ArpPacket:
        v = ArpView(buf)
        return cls(v.op, v.sha, v.spa, v.tha, v.tpa)

    def emit(self) -> bytes:
        return _ARP.pack(_HTYPE_ETHERNET, _PTYPE_IPV4, 6, 4, self.op, self.sha, self.spa, self.tha, self.tpa)
