"""IPv4 headers (RFC 791): view, value, one header builder, address helpers.

Addresses are 32-bit unsigned integers throughout the core: they hash and
compare faster than strings or ``ipaddress`` objects and come straight out of
``struct``.  :func:`aton`/:func:`ntoa` convert at the API boundary.

:func:`build_header` is the one place in seqs that makes an IPv4 header.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .._typing import BytesLike
from ..errors import ParseError
from .checksum import checksum

__all__ = [
    "FLAG_DF",
    "FLAG_MF",
    "HEADER_LEN",
    "PROTO_ICMP",
    "PROTO_TCP",
    "PROTO_UDP",
    "Ipv4Header",
    "Ipv4View",
    "aton",
    "build_header",
    "is_multicast",
    "ntoa",
    "parse_cidr",
]

HEADER_LEN = 20
MAX_HEADER_LEN = 60
PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17

FLAG_DF = 0x4000
FLAG_MF = 0x2000
OFFSET_MASK = 0x1FFF

#: ver/ihl, tos, total length, id, flags/fragment offset, ttl, proto, checksum, src, dst
HDR = struct.Struct("!BBHHHBBHII")
# Offsets of fields inside the header, named once.
OFF_TOTAL_LEN = 2
OFF_CHECKSUM = 10
OFF_SRC = 12
OFF_DST = 16

BROADCAST_ADDR = 0xFFFFFFFF


def aton(text: str) -> int:
    """Dotted quad (decimal only) to integer; ValueError if malformed."""
    parts = text.split(".")
    if len(parts) != 4 or not all(p.isascii() and p.isdigit() and len(p) <= 3 for p in parts):
        raise ValueError(f"not an IPv4 address: {text!r}")
    a, b, c, d = (int(p) for p in parts)
    if max(a, b, c, d) > 255:
        raise ValueError(f"not an IPv4 address: {text!r}")
    return a << 24 | b << 16 | c << 8 | d


def ntoa(addr: int) -> str:
    return f"{addr >> 24}.{(addr >> 16) & 255}.{(addr >> 8) & 255}.{addr & 255}"


def parse_cidr(text: str) -> tuple[int, int]:
    """``"10.0.0.2/24"`` to (address, prefix length)."""
    addr, sep, plen = text.partition("/")
    if not sep:
        raise ValueError(f"expected ADDR/LEN, got {text!r}")
    # Decimal digits only: int() alone would also take "+24", " 24" and "2_4".
    if not (plen.isascii() and plen.isdigit() and len(plen) <= 2) or int(plen) > 32:
        raise ValueError(f"bad prefix length in {text!r}")
    return aton(addr), int(plen)


def prefix_mask(prefix: int) -> int:
    return (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF


def is_multicast(addr: int) -> bool:
    return (addr >> 28) == 0xE


def build_header(
    src: int,
    dst: int,
    proto: int,
    payload_len: int,
    *,
    ident: int = 0,
    ttl: int = 64,
    tos: int = 0,
    flags_frag: int = FLAG_DF,
) -> bytes:
    """A 20-byte header with its checksum filled in (no options)."""
    hdr = bytearray(HDR.pack(0x45, tos, HEADER_LEN + payload_len, ident, flags_frag, ttl, proto, 0, src, dst))
    c = checksum(hdr)
    hdr[10] = c >> 8
    hdr[11] = c & 0xFF
    return bytes(hdr)


class Ipv4View:
    """Zero-copy view of an IPv4 packet.

    The constructor checks what any use of the packet relies on — version,
    header length, total length against the buffer (Ethernet padding beyond
    the total length is cut off) — and raises :class:`ParseError` otherwise.
    The header checksum is checked by :meth:`checksum_ok`, separately, so that
    callers holding an already-verified packet do not pay for it twice.
    """

    __slots__ = (
        "buf",
        "dst",
        "flags_frag",
        "header_len",
        "ident",
        "proto",
        "src",
        "tos",
        "total_len",
        "ttl",
    )

    def __init__(self, buf: BytesLike) -> None:
        mv = memoryview(buf)
        n = len(mv)
        if n < HEADER_LEN:
            raise ParseError("ipv4_truncated", f"{n} bytes")
        vihl, tos, total_len, ident, flags_frag, ttl, proto, _c, src, dst = HDR.unpack_from(mv, 0)
        if vihl >> 4 != 4:
            raise ParseError("ipv4_bad_version", str(vihl >> 4))
        hl = (vihl & 0x0F) * 4
        if hl < HEADER_LEN:
            raise ParseError("ipv4_bad_header_len", str(hl))
        if total_len < hl or total_len > n:
            raise ParseError("ipv4_bad_total_len", f"total length {total_len}, header {hl}, buffer {n}")
        self.buf = mv[:total_len] if total_len != n else mv
        self.header_len = hl
        self.tos: int = tos
        self.total_len: int = total_len
        self.ident: int = ident
        self.flags_frag: int = flags_frag
        self.ttl: int = ttl
        self.proto: int = proto
        self.src: int = src
        self.dst: int = dst

    def checksum_ok(self) -> bool:
        return checksum(self.buf[: self.header_len]) == 0

    @property
    def dont_fragment(self) -> bool:
        return bool(self.flags_frag & FLAG_DF)

    @property
    def more_fragments(self) -> bool:
        return bool(self.flags_frag & FLAG_MF)

    @property
    def frag_offset(self) -> int:
        """Offset of this fragment's data in bytes."""
        return (self.flags_frag & OFFSET_MASK) * 8

    @property
    def is_fragment(self) -> bool:
        return bool(self.flags_frag & (FLAG_MF | OFFSET_MASK))

    @property
    def options(self) -> memoryview:
        return self.buf[HEADER_LEN : self.header_len]

    @property
    def payload(self) -> memoryview:
        return self.buf[self.header_len :]


@dataclass(frozen=True, slots=True)
class Ipv4Header:
    """An IPv4 header as a value.  ``emit`` computes total length and checksum."""

    src: int
    dst: int
    proto: int
    ttl: int = 64
    tos: int = 0
    ident: int = 0
    dont_fragment: bool = True
    more_fragments: bool = False
    frag_offset: int = 0  # bytes, a multiple of 8
    options: bytes = b""

    @classmethod
    def parse(cls, buf: BytesLike) -> tuple[Ipv4Header, bytes]:
        """Header and payload; checks the header checksum too."""
        v = Ipv4View(buf)
        if not v.checksum_ok():
            raise ParseError("ipv4_bad_checksum")
        hdr = cls(
            v.src,
            v.dst,
            v.proto,
            v.ttl,
            v.tos,
            v.ident,
            v.dont_fragment,
            v.more_fragments,
            v.frag_offset,
            bytes(v.options),
        )
        return hdr, bytes(v.payload)

    def emit(self, payload: BytesLike = b"") -> bytes:
        if len(self.options) % 4 or len(self.options) > MAX_HEADER_LEN - HEADER_LEN:
            raise ValueError("IPv4 options must be padded to 4 bytes and at most 40 bytes")
        if self.frag_offset % 8:
            raise ValueError("fragment offset must be a multiple of 8")
        hl = HEADER_LEN + len(self.options)
        ff = (self.frag_offset // 8) | (FLAG_DF if self.dont_fragment else 0) | (FLAG_MF if self.more_fragments else 0)
        hdr = bytearray(
            HDR.pack(
                0x40 | hl // 4,
                self.tos,
                hl + len(payload),
                self.ident,
                ff,
                self.ttl,
                self.proto,
                0,
                self.src,
                self.dst,
            )
        )
        hdr += self.options
        c = checksum(hdr)
        hdr[10:12] = c.to_bytes(2, "big")
        return bytes(hdr) + bytes(payload)
