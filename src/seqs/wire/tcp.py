"""TCP segment format (RFC 9293 §3.1) and options (RFC 9293 §3.2, RFC 7323, RFC 2018).

The connection logic lives in :mod:`seqs.tcp`; this module only reads and
writes the bytes.  Option parsing follows RFC 9293 §3.2: unknown options are
skipped by their length; a length byte that is below 2, overruns the header,
or contradicts a known option's fixed size makes the segment malformed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .._typing import BytesLike
from ..errors import ParseError
from .checksum import checksum, pseudo_header_sum
from .ipv4 import PROTO_TCP

__all__ = [
    "ACK",
    "CWR",
    "ECE",
    "FIN",
    "HEADER_LEN",
    "PSH",
    "RST",
    "SYN",
    "URG",
    "TcpOptions",
    "TcpSegment",
    "TcpView",
    "build_options",
    "flags_to_str",
    "parse_options",
]

HEADER_LEN = 20
MAX_HEADER_LEN = 60

FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80

OPT_EOL = 0
OPT_NOP = 1
OPT_MSS = 2
OPT_WSCALE = 3
OPT_SACK_PERMITTED = 4
OPT_SACK = 5
OPT_TIMESTAMP = 8

#: sport, dport, seq, ack, data offset<<4 | reserved, flags, window, checksum, urgent pointer
HDR = struct.Struct("!HHIIBBHHH")
OFF_CHECKSUM = 16

_U16 = struct.Struct("!H")
_TS = struct.Struct("!II")
_FIXED_LEN = {OPT_MSS: 4, OPT_WSCALE: 3, OPT_SACK_PERMITTED: 2, OPT_TIMESTAMP: 10}

_FLAG_NAMES = ((SYN, "SYN"), (FIN, "FIN"), (RST, "RST"), (PSH, "PSH"), (ACK, "ACK"), (URG, "URG"), (ECE, "ECE"), (CWR, "CWR"))


def flags_to_str(flags: int) -> str:
    """``SYN,ACK`` — the order RFC 9293 figures use."""
    return ",".join(name for bit, name in _FLAG_NAMES if flags & bit) or "none"


@dataclass(frozen=True, slots=True)
class TcpOptions:
    mss: int | None = None
    wscale: int | None = None
    sack_permitted: bool = False
    #: (TSval, TSecr)
    timestamp: tuple[int, int] | None = None
    #: SACK blocks as (left edge, right edge) pairs
    sack: tuple[tuple[int, int], ...] = field(default=())


NO_OPTIONS = TcpOptions()


def parse_options(buf: BytesLike) -> TcpOptions:
    n = len(buf)
    if n == 0:
        return NO_OPTIONS
    mss: int | None = None
    wscale: int | None = None
    sack_perm = False
    ts: tuple[int, int] | None = None
    sack: list[tuple[int, int]] = []
    i = 0
    while i < n:
        kind = buf[i]
        if kind == OPT_EOL:
            break
        if kind == OPT_NOP:
            i += 1
            continue
        if i + 1 >= n:
            raise ParseError("tcp_bad_option", f"option {kind} has no length byte")
        length = buf[i + 1]
        if length < 2 or i + length > n:
            raise ParseError("tcp_bad_option", f"option {kind} length {length} at {i} of {n}")
        fixed = _FIXED_LEN.get(kind)
        if fixed is not None and length != fixed:
            raise ParseError("tcp_bad_option", f"option {kind} length {length}, expected {fixed}")
        if kind == OPT_MSS:
            (mss,) = _U16.unpack_from(buf, i + 2)
        elif kind == OPT_WSCALE:
            wscale = buf[i + 2]
        elif kind == OPT_SACK_PERMITTED:
            sack_perm = True
        elif kind == OPT_TIMESTAMP:
            ts = _TS.unpack_from(buf, i + 2)
        elif kind == OPT_SACK:
            if (length - 2) % 8 or length == 2:
                raise ParseError("tcp_bad_option", f"SACK option length {length}")
            for j in range(i + 2, i + length, 8):
                sack.append(_TS.unpack_from(buf, j))
        i += length
    return TcpOptions(mss, wscale, sack_perm, ts, tuple(sack))


def build_options(
    *,
    mss: int | None = None,
    wscale: int | None = None,
    sack_permitted: bool = False,
    timestamp: tuple[int, int] | None = None,
    sack: tuple[tuple[int, int], ...] | list[tuple[int, int]] = (),
) -> bytes:
    """Options laid out the way Linux does (aligned, NOP-padded to 4 bytes)."""
    out = bytearray()
    if mss is not None:
        out += struct.pack("!BBH", OPT_MSS, 4, mss)
    if sack_permitted and timestamp is not None:
        out += struct.pack("!BBBBII", OPT_SACK_PERMITTED, 2, OPT_TIMESTAMP, 10, *timestamp)
    elif timestamp is not None:
        out += struct.pack("!BBBBII", OPT_NOP, OPT_NOP, OPT_TIMESTAMP, 10, *timestamp)
    elif sack_permitted:
        out += struct.pack("!BBBB", OPT_NOP, OPT_NOP, OPT_SACK_PERMITTED, 2)
    if wscale is not None:
        out += struct.pack("!BBBB", OPT_NOP, OPT_WSCALE, 3, wscale)
    if sack:
        blocks = list(sack)[: (40 - len(out) - 2) // 8]
        if blocks:
            out += struct.pack("!BBBB", OPT_NOP, OPT_NOP, OPT_SACK, 2 + 8 * len(blocks))
            for left, right in blocks:
                out += _TS.pack(left & 0xFFFFFFFF, right & 0xFFFFFFFF)
    if len(out) > 40:
        raise ValueError("TCP options exceed 40 bytes")
    return bytes(out)


class TcpView:
    """Zero-copy view of a TCP segment; the checksum is checked by ``checksum_ok``."""

    __slots__ = ("ack", "buf", "dport", "flags", "header_len", "seq", "sport", "urgent", "window")

    def __init__(self, buf: BytesLike) -> None:
        mv = memoryview(buf)
        if len(mv) < HEADER_LEN:
            raise ParseError("tcp_truncated", f"{len(mv)} bytes")
        sport, dport, seq, ack, off, flags, window, _ck, urg = HDR.unpack_from(mv, 0)
        hl = (off >> 4) * 4
        if hl < HEADER_LEN or hl > len(mv):
            raise ParseError("tcp_bad_data_offset", f"data offset {hl}, {len(mv)} bytes")
        self.buf = mv
        self.sport: int = sport
        self.dport: int = dport
        self.seq: int = seq
        self.ack: int = ack
        self.header_len = hl
        self.flags: int = flags
        self.window: int = window
        self.urgent: int = urg

    def checksum_ok(self, src: int, dst: int) -> bool:
        return checksum(self.buf, pseudo_header_sum(src, dst, PROTO_TCP, len(self.buf))) == 0

    @property
    def options_bytes(self) -> memoryview:
        return self.buf[HEADER_LEN : self.header_len]

    def options(self) -> TcpOptions:
        return parse_options(self.buf[HEADER_LEN : self.header_len])

    @property
    def payload(self) -> memoryview:
        return self.buf[self.header_len :]


@dataclass(frozen=True, slots=True)
class TcpSegment:
    """A TCP segment as a value, for building segments in tests and tools."""

    sport: int
    dport: int
    seq: int
    ack: int = 0
    flags: int = 0
    window: int = 65535
    urgent: int = 0
    options: TcpOptions = NO_OPTIONS
    payload: bytes = b""

    @classmethod
    def parse(cls, buf: BytesLike, src: int, dst: int) -> TcpSegment:
        v = TcpView(buf)
        if not v.checksum_ok(src, dst):
            raise ParseError("tcp_bad_checksum")
        return cls(v.sport, v.dport, v.seq, v.ack, v.flags, v.window, v.urgent, v.options(), bytes(v.payload))

    def emit(self, src: int, dst: int) -> bytes:
        o = self.options
        opts = build_options(
            mss=o.mss, wscale=o.wscale, sack_permitted=o.sack_permitted, timestamp=o.timestamp, sack=o.sack
        )
        hl = HEADER_LEN + len(opts)
        seg = bytearray(
            HDR.pack(self.sport, self.dport, self.seq, self.ack, (hl // 4) << 4, self.flags, self.window, 0, self.urgent)
        )
        seg += opts
        seg += self.payload
        c = checksum(seg, pseudo_header_sum(src, dst, PROTO_TCP, len(seg)))
        seg[16] = c >> 8
        seg[17] = c & 0xFF
        return bytes(seg)
