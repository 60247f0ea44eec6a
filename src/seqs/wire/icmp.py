"""ICMPv4 messages (RFC 792, RFC 1122 §3.2.2, RFC 1191 for "fragmentation needed").

Echo request/reply, destination unreachable, time exceeded, and the rest as
opaque type/code.  Error messages quote the original IP header plus at least
8 bytes of its payload; :meth:`IcmpView.quoted` exposes that quote so the
interface can route the error to the socket that caused it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .._typing import BytesLike
from ..errors import ParseError
from .checksum import checksum

__all__ = [
    "CODE_FRAG_NEEDED",
    "CODE_HOST_UNREACHABLE",
    "CODE_NET_UNREACHABLE",
    "CODE_PORT_UNREACHABLE",
    "CODE_PROTO_UNREACHABLE",
    "CODE_REASSEMBLY_TIMEOUT",
    "CODE_TTL_EXCEEDED",
    "HEADER_LEN",
    "TYPE_DEST_UNREACHABLE",
    "TYPE_ECHO_REPLY",
    "TYPE_ECHO_REQUEST",
    "TYPE_TIME_EXCEEDED",
    "IcmpMessage",
    "IcmpView",
    "QuotedDatagram",
]

HEADER_LEN = 8

TYPE_ECHO_REPLY = 0
TYPE_DEST_UNREACHABLE = 3
TYPE_REDIRECT = 5
TYPE_ECHO_REQUEST = 8
TYPE_TIME_EXCEEDED = 11
TYPE_PARAMETER_PROBLEM = 12

CODE_NET_UNREACHABLE = 0
CODE_HOST_UNREACHABLE = 1
CODE_PROTO_UNREACHABLE = 2
CODE_PORT_UNREACHABLE = 3
CODE_FRAG_NEEDED = 4
CODE_TTL_EXCEEDED = 0
CODE_REASSEMBLY_TIMEOUT = 1

ERROR_TYPES = frozenset({TYPE_DEST_UNREACHABLE, TYPE_TIME_EXCEEDED, TYPE_PARAMETER_PROBLEM, 4, TYPE_REDIRECT})

_HDR = struct.Struct("!BBHI")  # type, code, checksum, rest of header
_ECHO = struct.Struct("!HH")  # identifier, sequence
_QUOTE = struct.Struct("!BBHHHBBHII")


@dataclass(frozen=True, slots=True)
class QuotedDatagram:
    """The start of the datagram an ICMP error refers to (RFC 792)."""

    src: int
    dst: int
    proto: int
    #: the transport bytes quoted (at least 8 in a conforming error)
    transport: bytes

    @property
    def ports(self) -> tuple[int, int] | None:
        """(source port, destination port) for UDP/TCP if quoted."""
        if len(self.transport) < 4:
            return None
        sport, dport = _ECHO.unpack_from(self.transport, 0)
        return sport, dport


class IcmpView:
    """Zero-copy view of an ICMP message.  ``checksum_ok`` is separate, as for IPv4."""

    __slots__ = ("buf", "code", "rest", "type")

    def __init__(self, buf: BytesLike) -> None:
        mv = memoryview(buf)
        if len(mv) < HEADER_LEN:
            raise ParseError("icmp_truncated", f"{len(mv)} bytes")
        t, c, _ck, rest = _HDR.unpack_from(mv, 0)
        self.buf = mv
        self.type: int = t
        self.code: int = c
        self.rest: int = rest

    def checksum_ok(self) -> bool:
        return checksum(self.buf) == 0

    @property
    def ident(self) -> int:
        return self.rest >> 16

    @property
    def seq(self) -> int:
        return self.rest & 0xFFFF

    @property
    def next_hop_mtu(self) -> int:
        """RFC 1191 §4: the MTU in a "fragmentation needed" message (0 if absent)."""
        return self.rest & 0xFFFF

    @property
    def payload(self) -> memoryview:
        return self.buf[HEADER_LEN:]

    @property
    def is_error(self) -> bool:
        return self.type in ERROR_TYPES

    def quoted(self) -> QuotedDatagram:
        """Parse the quoted datagram of an error message."""
        q = self.buf[HEADER_LEN:]
        if len(q) < 20:
            raise ParseError("icmp_bad_quote", "quoted header cut short")
        vihl, _tos, _tl, _id, _ff, _ttl, proto, _ck, src, dst = _QUOTE.unpack_from(q, 0)
        hl = (vihl & 0x0F) * 4
        if vihl >> 4 != 4 or hl < 20 or len(q) < hl:
            raise ParseError("icmp_bad_quote", "quoted header malformed")
        return QuotedDatagram(src, dst, proto, bytes(q[hl : hl + 64]))


@dataclass(frozen=True, slots=True)
class IcmpMessage:
    type: int
    code: int
    rest: int = 0
    payload: bytes = b""

    @classmethod
    def echo(cls, request: bool, ident: int, seq: int, payload: bytes = b"") -> IcmpMessage:
        t = TYPE_ECHO_REQUEST if request else TYPE_ECHO_REPLY
        return cls(t, 0, (ident & 0xFFFF) << 16 | (seq & 0xFFFF), payload)

    @classmethod
    def parse(cls, buf: BytesLike) -> IcmpMessage:
        v = IcmpView(buf)
        if not v.checksum_ok():
            raise ParseError("icmp_bad_checksum")
        return cls(v.type, v.code, v.rest, bytes(v.payload))

    def emit(self) -> bytes:
        msg = bytearray(_HDR.pack(self.type, self.code, 0, self.rest))
        msg += self.payload
        c = checksum(msg)
        msg[2] = c >> 8
        msg[3] = c & 0xFF
        return bytes(msg)
