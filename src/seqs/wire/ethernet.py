"""Ethernet II frames, with 802.1Q / 802.1ad VLAN tags parsed (IEEE 802.3, 802.1Q).

Owns the 14-byte header layout, EtherType numbers, MAC address helpers and
multicast MAC mapping.  It does not know what rides inside the frame.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .._typing import BytesLike
from ..errors import ParseError

__all__ = [
    "BROADCAST",
    "ETHERTYPE_ARP",
    "ETHERTYPE_IPV4",
    "ETHERTYPE_IPV6",
    "ETHERTYPE_QINQ",
    "ETHERTYPE_VLAN",
    "HEADER_LEN",
    "EthernetFrame",
    "EthernetView",
    "build_header",
    "ipv4_multicast_mac",
    "is_multicast",
    "mac_to_str",
    "parse_mac",
]

HEADER_LEN = 14
VLAN_TAG_LEN = 4
#: Smallest frame on the wire without the FCS; shorter frames are padded on send.
MIN_FRAME_LEN = 60

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_VLAN = 0x8100
ETHERTYPE_QINQ = 0x88A8
ETHERTYPE_IPV6 = 0x86DD

BROADCAST = b"\xff\xff\xff\xff\xff\xff"

_HDR = struct.Struct("!6s6sH")
_TAG = struct.Struct("!HH")  # TCI, inner EtherType
_HEXDIGITS = frozenset("0123456789abcdefABCDEF")


def mac_to_str(mac: BytesLike) -> str:
    return ":".join(f"{b:02x}" for b in bytes(mac))


def parse_mac(text: str) -> bytes:
    """``"02:00:00:aa:bb:cc"`` (or with ``-``) to 6 bytes; ValueError if malformed."""
    parts = text.replace("-", ":").split(":")
    # Hex digits only: int(p, 16) alone would also take "+f", " f" and "٣".
    if len(parts) != 6 or not all(len(p) in (1, 2) and all(c in _HEXDIGITS for c in p) for p in parts):
        raise ValueError(f"not a MAC address: {text!r}")
    return bytes(int(p, 16) for p in parts)


def is_multicast(mac: BytesLike) -> bool:
    """Group bit set (broadcast included)."""
    return bool(mac[0] & 1)


def ipv4_multicast_mac(addr: int) -> bytes:
    """RFC 1112 §6.4: 01-00-5E plus the low 23 bits of the group address."""
    return b"\x01\x00\x5e" + (addr & 0x7FFFFF).to_bytes(3, "big")


def build_header(dst: bytes, src: bytes, ethertype: int) -> bytes:
    return _HDR.pack(dst, src, ethertype)


class EthernetView:
    """A zero-copy view of an Ethernet II frame (FCS not included).

    VLAN tags (802.1Q, and an outer 802.1ad tag) are stepped over: ``ethertype``
    is the inner type and ``vlan_id`` the innermost VLAN ID, or None.
    """

    __slots__ = ("buf", "ethertype", "header_len", "vlan_id")

    def __init__(self, buf: BytesLike) -> None:
        mv = memoryview(buf)
        if len(mv) < HEADER_LEN:
            raise ParseError("eth_truncated", f"{len(mv)} bytes")
        self.buf = mv
        (ethertype,) = struct.unpack_from("!H", mv, 12)
        off = HEADER_LEN
        vlan: int | None = None
        for _ in range(2):  # at most a double tag
            if ethertype not in (ETHERTYPE_VLAN, ETHERTYPE_QINQ):
                break
            if len(mv) < off + VLAN_TAG_LEN:
                raise ParseError("eth_truncated", "VLAN tag cut short")
            tci, ethertype = _TAG.unpack_from(mv, off)
            vlan = tci & 0x0FFF
            off += VLAN_TAG_LEN
        else:
            if ethertype in (ETHERTYPE_VLAN, ETHERTYPE_QINQ):
                raise ParseError("eth_vlan_nesting", "more than two VLAN tags")
        if ethertype < 0x0600:
            raise ParseError("eth_not_ethernet2", f"length field {ethertype} (802.3 frame)")
        self.ethertype = ethertype
        self.vlan_id = vlan
        self.header_len = off

    @property
    def dst(self) -> bytes:
        return bytes(self.buf[0:6])

    @property
    def src(self) -> bytes:
        return bytes(self.buf[6:12])

    @property
    def payload(self) -> memoryview:
        return self.buf[self.header_len :]


@dataclass(frozen=True, slots=True)
class EthernetFrame:
    """An Ethernet II frame as a value: for building frames and for tests."""

    dst: bytes
    src: bytes
    ethertype: int
    payload: bytes = b""
    vlan_id: int | None = None
    vlan_pcp: int = 0

    @classmethod
    def parse(cls, buf: BytesLike) -> EthernetFrame:
        v = EthernetView(buf)
        pcp = 0
        if v.vlan_id is not None:
            pcp = v.buf[v.header_len - 4] >> 5
        return cls(v.dst, v.src, v.ethertype, bytes(v.payload), v.vlan_id, pcp)

    def emit(self) -> bytes:
        if len(self.dst) != 6 or len(self.src) != 6:
            raise ValueError("MAC addresses are 6 bytes")
        if self.vlan_id is None:
            return _HDR.pack(self.dst, self.src, self.ethertype) + self.payload
        if not 0 <= self.vlan_id < 4096:
            raise ValueError("VLAN ID is 12 bits")
        tci = (self.vlan_pcp & 7) << 13 | self.vlan_id
        return _HDR.pack(self.dst, self.src, ETHERTYPE_VLAN) + _TAG.pack(tci, self.ethertype) + self.payload
