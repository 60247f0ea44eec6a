"""UDP datagrams (RFC 768) with the IPv4 pseudo-header checksum.

A received checksum of 0 means the sender did not compute one (RFC 768); a
computed checksum of 0 is sent as 0xFFFF.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .._typing import BytesLike
from ..errors import ParseError
from .checksum import checksum, pseudo_header_sum
from .ipv4 import PROTO_UDP

__all__ = ["HEADER_LEN", "UdpDatagram", "UdpView", "build_header"]

HEADER_LEN = 8
HDR = struct.Struct("!HHHH")  # sport, dport, length, checksum


def build_header(src: int, dst: int, sport: int, dport: int, payload: BytesLike, *, compute: bool = True) -> bytes:
    """The 8-byte header for ``payload``; with ``compute=False`` the checksum is 0 (none)."""
    length = HEADER_LEN + len(payload)
    if not compute:
        return HDR.pack(sport, dport, length, 0)
    hdr = HDR.pack(sport, dport, length, 0)
    c = checksum(payload, pseudo_header_sum(src, dst, PROTO_UDP, length) + _sum8(hdr))
    return HDR.pack(sport, dport, length, c or 0xFFFF)


def _sum8(hdr: bytes) -> int:
    a, b, c, d = HDR.unpack(hdr)
    return int(a + b + c + d)


class UdpView:
    __slots__ = ("buf", "checksum", "dport", "length", "sport")

    def __init__(self, buf: BytesLike) -> None:
        mv = memoryview(buf)
        if len(mv) < HEADER_LEN:
            raise ParseError("udp_truncated", f"{len(mv)} bytes")
        sport, dport, length, ck = HDR.unpack_from(mv, 0)
        if length < HEADER_LEN or length > len(mv):
            raise ParseError("udp_bad_length", f"length {length}, {len(mv)} bytes")
        self.buf = mv[:length] if length != len(mv) else mv
        self.sport: int = sport
        self.dport: int = dport
        self.length: int = length
        self.checksum: int = ck

    def checksum_ok(self, src: int, dst: int) -> bool:
        if self.checksum == 0:
            return True  # RFC 768: no checksum was computed
        return checksum(self.buf, pseudo_header_sum(src, dst, PROTO_UDP, self.length)) == 0

    @property
    def payload(self) -> memoryview:
        return self.buf[HEADER_LEN:]


@dataclass(frozen=True, slots=True)
class UdpDatagram:
    sport: int
    dport: int
    payload: bytes = b""

    @classmethod
    def parse(cls, buf: BytesLike, src: int, dst: int) -> UdpDatagram:
        v = UdpView(buf)
        if not v.checksum_ok(src, dst):
            raise ParseError("udp_bad_checksum")
        return cls(v.sport, v.dport, bytes(v.payload))

    def emit(self, src: int, dst: int) -> bytes:
        return build_header(src, dst, self.sport, self.dport, self.payload) + self.payload
