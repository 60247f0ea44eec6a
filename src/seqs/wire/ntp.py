"""NTP packets (RFC 5905 §7.3) and 64-bit NTP timestamps (RFC 5905 §6).

The 48-byte header is all a client needs: extension fields and a MAC may
follow (RFC 5905 §7.3, RFC 7822) and are ignored.  Timestamps stay raw 64-bit
integers on the wire (32 bits of seconds since 1900-01-01 plus a 32-bit
fraction); :func:`to_unix` and :func:`from_unix` convert.

Eras (RFC 5905 §6): the 32-bit seconds field wraps on 2036-02-07 06:28:16
UTC, so a raw timestamp names one instant in every 136-year era.  Unpacking
picks the era that puts it closest to a reference time — the local clock —
which is right as long as the two clocks are within 68 years of each other,
before and after the wrap alike.  The arithmetic is done on integers of
2^-32 s (:func:`unwrap`) so that differences of timestamps near 2^31 s keep
their full resolution.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .._typing import BytesLike
from ..errors import ParseError

__all__ = [
    "HEADER_LEN",
    "LEAP_UNSYNCHRONIZED",
    "MODE_CLIENT",
    "MODE_SERVER",
    "NTP_UNIX_DELTA",
    "NtpPacket",
    "NtpView",
    "from_unix",
    "short_to_seconds",
    "to_unix",
    "unwrap",
]

HEADER_LEN = 48
#: LI/VN/mode, stratum, poll, precision, root delay, root dispersion, reference id,
#: then the reference, origin, receive and transmit timestamps
HDR = struct.Struct("!BBbbII4sQQQQ")
OFF_ORIGIN = 24
OFF_RECEIVE = 32
OFF_TRANSMIT = 40

MODE_SYMMETRIC_ACTIVE = 1
MODE_SYMMETRIC_PASSIVE = 2
MODE_CLIENT = 3
MODE_SERVER = 4
MODE_BROADCAST = 5

LEAP_NONE = 0
LEAP_UNSYNCHRONIZED = 3  # RFC 5905 §7.3: "unknown (clock unsynchronized)"

#: stratum 0 is "unspecified or invalid"; a packet with it carries a kiss code (RFC 5905 §7.4)
STRATUM_KOD = 0
#: RFC 5905 §7.3: 16 means unsynchronized; 17-255 are reserved
STRATUM_UNSYNCHRONIZED = 16

#: seconds from the NTP prime epoch (1900-01-01) to the Unix epoch (1970-01-01)
NTP_UNIX_DELTA = 2_208_988_800
ERA = 1 << 64  # one era in 2^-32 s units
_FRAC = 1 << 32


def from_unix(t: float) -> int:
    """Unix seconds to a raw 64-bit NTP timestamp (the era is dropped, RFC 5905 §6)."""
    return round((t + NTP_UNIX_DELTA) * _FRAC) % ERA


def unwrap(raw: int, near: float) -> int:
    """A raw timestamp as 2^-32 s since 1900 in the era closest to ``near`` (Unix seconds).

    The result may be negative (before 1900) or beyond 2^64 (era 1, from 2036 on).
    """
    ref = round((near + NTP_UNIX_DELTA) * _FRAC)
    # The multiple of ERA that brings raw nearest ref: round((ref - raw) / ERA).
    return raw + ((ref - raw + ERA // 2) // ERA) * ERA


def to_unix(raw: int, near: float) -> float:
    """A raw timestamp to Unix seconds, in the era closest to ``near``."""
    return unwrap(raw, near) / _FRAC - NTP_UNIX_DELTA


def short_to_seconds(v: int) -> float:
    """RFC 5905 §6 NTP short format (16.16 fixed point) to seconds."""
    return v / 65536.0


class NtpView:
    """The 48-byte header in place."""

    __slots__ = ("buf", "li_vn_mode", "origin", "poll", "precision", "receive", "ref_id", "reference",
                 "root_delay", "root_dispersion", "stratum", "transmit")

    def __init__(self, buf: BytesLike) -> None:
        mv = memoryview(buf)
        if len(mv) < HEADER_LEN:
            raise ParseError("ntp_truncated", f"{len(mv)} bytes")
        (lvm, stratum, poll, precision, rdelay, rdisp, ref_id,
         reference, origin, receive, transmit) = HDR.unpack_from(mv, 0)
        self.buf = mv
        self.li_vn_mode: int = lvm
        self.stratum: int = stratum
        self.poll: int = poll
        self.precision: int = precision
        self.root_delay: int = rdelay
        self.root_dispersion: int = rdisp
        self.ref_id: bytes = ref_id
        self.reference: int = reference
        self.origin: int = origin
        self.receive: int = receive
        self.transmit: int = transmit

    @property
    def leap(self) -> int:
        return self.li_vn_mode >> 6

    @property
    def version(self) -> int:
        return (self.li_vn_mode >> 3) & 7

    @property
    def mode(self) -> int:
        return self.li_vn_mode & 7

    @property
    def kiss_code(self) -> str | None:
        """The kiss code of a kiss-o'-death packet (stratum 0), e.g. ``"RATE"`` (RFC 5905 §7.4)."""
        if self.stratum != STRATUM_KOD:
            return None
        return self.ref_id.decode("ascii", "replace").rstrip("\0")


@dataclass(frozen=True, slots=True)
class NtpPacket:
    """An NTP header as values.  Timestamps are raw 64-bit NTP timestamps."""

    mode: int
    version: int = 4
    leap: int = LEAP_NONE
    stratum: int = 0
    poll: int = 0
    precision: int = 0
    root_delay: int = 0
    root_dispersion: int = 0
    ref_id: bytes = bytes(4)
    reference: int = 0
    origin: int = 0
    receive: int = 0
    transmit: int = 0

    @classmethod
    def parse(cls, buf: BytesLike) -> NtpPacket:
        v = NtpView(buf)
        return cls(v.mode, v.version, v.leap, v.stratum, v.poll, v.precision, v.root_delay,
                   v.root_dispersion, v.ref_id, v.reference, v.origin, v.receive, v.transmit)

    def emit(self) -> bytes:
        if len(self.ref_id) != 4:
            raise ValueError("reference id must be 4 bytes")
        lvm = (self.leap & 3) << 6 | (self.version & 7) << 3 | (self.mode & 7)
        return HDR.pack(lvm, self.stratum, self.poll, self.precision, self.root_delay, self.root_dispersion,
                        self.ref_id, self.reference, self.origin, self.receive, self.transmit)
