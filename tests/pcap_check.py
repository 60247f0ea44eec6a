"""Reading the pcap files seqs writes, independently of seqs' own parsers.

:func:`read_pcap` checks the container (libpcap header, one record after
another, nothing cut short, nothing left over) and :func:`decode` each frame's
Ethernet, ARP, IPv4, ICMP, UDP and TCP headers with :mod:`struct`, verifying
every length and checksum; a bad one raises :class:`Malformed`.  The checksum
here is written again on purpose: a test that used seqs' own would agree with
seqs whatever it got wrong.  :func:`tshark_problems` adds Wireshark's opinion
when tshark is installed.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections import Counter
from dataclasses import dataclass

__all__ = ["Frame", "Malformed", "Record", "decode", "kinds", "read_pcap", "tshark_problems"]

MAGIC_NS, MAGIC_US = 0xA1B23C4D, 0xA1B2C3D4
LINKTYPE_ETHERNET = 1
FILE_HDR = struct.Struct("<IHHiIII")
REC_HDR = struct.Struct("<IIII")
ETH_HDR = struct.Struct("!6s6sH")
IPV4_HDR = struct.Struct("!BBHHHBBH4s4s")
UDP_HDR = struct.Struct("!HHHH")
TCP_HDR = struct.Struct("!HHIIBBHHH")
ARP_BODY = struct.Struct("!HHBBH6s4s6s4s")

ETH_IPV4, ETH_ARP = 0x0800, 0x0806
PROTO_ICMP, PROTO_TCP, PROTO_UDP = 1, 6, 17
TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10


class Malformed(AssertionError):
    pass


@dataclass(frozen=True)
class Record:
    time: float
    data: bytes


@dataclass(frozen=True)
class Frame:
    src_mac: bytes
    ethertype: int
    #: "arp", "icmp", "udp", "tcp", "fragment" (an IPv4 fragment other than a whole datagram) or "other"
    kind: str
    ip_src: str = ""
    ip_dst: str = ""
    sport: int = 0
    dport: int = 0
    #: TCP flags; ICMP (type << 8) | code; ARP opcode
    code: int = 0
    payload: bytes = b""


def read_pcap(path: str) -> list[Record]:
    """The records of a classic little-endian pcap of Ethernet frames, or Malformed."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < FILE_HDR.size:
        raise Malformed(f"{path}: {len(blob)} bytes, shorter than the pcap file header")
    magic, major, minor, _zone, _sigfigs, snaplen, linktype = FILE_HDR.unpack_from(blob)
    if magic not in (MAGIC_NS, MAGIC_US) or (major, minor) != (2, 4) or linktype != LINKTYPE_ETHERNET:
        raise Malformed(f"{path}: header {magic:#x} v{major}.{minor} linktype {linktype}")
    scale = 1e-9 if magic == MAGIC_NS else 1e-6
    out: list[Record] = []
    at = FILE_HDR.size
    while at < len(blob):
        if len(blob) - at < REC_HDR.size:
            raise Malformed(f"record {len(out) + 1}: header cut short at byte {at}")
        sec, frac, caplen, origlen = REC_HDR.unpack_from(blob, at)
        at += REC_HDR.size
        if frac * scale >= 1.0 or caplen > snaplen or caplen != origlen:
            raise Malformed(f"record {len(out) + 1}: frac {frac}, caplen {caplen}, origlen {origlen}")
        if len(blob) - at < caplen:
            raise Malformed(f"record {len(out) + 1}: {caplen} bytes announced, {len(blob) - at} left")
        out.append(Record(sec + frac * scale, blob[at : at + caplen]))
        at += caplen
    return out


def checksum(data: bytes) -> int:
    """RFC 1071, the straightforward way: 0 over a packet whose checksum is right."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _addr(b: bytes) -> str:
    return ".".join(str(x) for x in b)


def decode(data: bytes) -> Frame:
    """One Ethernet frame, every length and checksum verified (Malformed otherwise)."""
    if len(data) < ETH_HDR.size:
        raise Malformed(f"{len(data)}-byte frame")
    _dst, src, ethertype = ETH_HDR.unpack_from(data)
    body = data[ETH_HDR.size :]
    if ethertype == ETH_ARP:
        if len(body) < ARP_BODY.size:
            raise Malformed(f"{len(body)}-byte ARP body")
        htype, ptype, hlen, plen, op, sha, spa, _tha, tpa = ARP_BODY.unpack_from(body)
        if (htype, ptype, hlen, plen) != (1, ETH_IPV4, 6, 4) or op not in (1, 2) or sha != src:
            raise Malformed(f"ARP {htype}/{ptype:#x}/{hlen}/{plen} op {op}")
        return Frame(src, ethertype, "arp", _addr(spa), _addr(tpa), code=op)
    if ethertype != ETH_IPV4:
        return Frame(src, ethertype, "other")
    if len(body) < IPV4_HDR.size:
        raise Malformed(f"{len(body)}-byte IPv4 packet")
    vihl, _tos, total, _ident, frag, _ttl, proto, _csum, s, d = IPV4_HDR.unpack_from(body)
    ihl = (vihl & 0xF) * 4
    if vihl >> 4 != 4 or ihl < 20 or total < ihl or total > len(body):
        raise Malformed(f"IPv4 version/ihl {vihl:#x}, total length {total}, {len(body)} bytes there")
    if checksum(body[:ihl]):
        raise Malformed(f"IPv4 header checksum {_addr(s)} -> {_addr(d)}")
    src_ip, dst_ip = _addr(s), _addr(d)
    if frag & 0x3FFF:  # MF or an offset: the transport checksum covers the reassembled datagram
        return Frame(src, ethertype, "fragment", src_ip, dst_ip, code=proto)
    seg = body[ihl:total]  # Ethernet pads short frames; the IPv4 total length says where the packet ends
    pseudo = s + d + struct.pack("!BBH", 0, proto, len(seg))
    if proto == PROTO_ICMP:
        if len(seg) < 8 or checksum(seg):
            raise Malformed(f"ICMP {src_ip} -> {dst_ip}: {len(seg)} bytes or a bad checksum")
        return Frame(src, ethertype, "icmp", src_ip, dst_ip, code=seg[0] << 8 | seg[1], payload=seg[8:])
    if proto == PROTO_UDP:
        if len(seg) < UDP_HDR.size:
            raise Malformed(f"{len(seg)}-byte UDP datagram")
        sport, dport, length, csum = UDP_HDR.unpack_from(seg)
        if length != len(seg) or (csum and checksum(pseudo + seg)):
            raise Malformed(f"UDP {src_ip}:{sport} -> {dst_ip}:{dport}: length {length} of {len(seg)}, "
                            "or a bad checksum")
        return Frame(src, ethertype, "udp", src_ip, dst_ip, sport, dport, payload=seg[UDP_HDR.size :])
    if proto == PROTO_TCP:
        if len(seg) < TCP_HDR.size:
            raise Malformed(f"{len(seg)}-byte TCP segment")
        sport, dport, _seq, _ack, off, flags, _win, _csum, _urg = TCP_HDR.unpack_from(seg)
        hlen = (off >> 4) * 4
        if not TCP_HDR.size <= hlen <= len(seg) or checksum(pseudo + seg):
            raise Malformed(f"TCP {src_ip}:{sport} -> {dst_ip}:{dport}: header {hlen} of {len(seg)} bytes, "
                            "or a bad checksum")
        return Frame(src, ethertype, "tcp", src_ip, dst_ip, sport, dport, flags, seg[hlen:])
    return Frame(src, ethertype, "other", src_ip, dst_ip, code=proto)


def kinds(frames: list[Frame], server_ports: set[int]) -> Counter[tuple[str, str, int]]:
    """(sender address, transport, server port) -> frames: who said how much to which service."""
    seen: Counter[tuple[str, str, int]] = Counter()
    for f in frames:
        if f.kind in ("udp", "tcp"):
            port = f.dport if f.dport in server_ports else f.sport
            seen[f.ip_src, f.kind, port] += 1
    return seen


def tshark_problems(path: str) -> str | None:
    """tshark's list of malformed or erroneous frames ("" for none, checksums checked),
    or None when tshark is not installed."""
    if shutil.which("tshark") is None:
        return None
    opts = ["-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE"]
    r = subprocess.run(["tshark", "-n", *opts, "-r", path, "-Y", "_ws.malformed || _ws.expert.severity == error"],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        return f"tshark failed ({r.returncode}): {r.stderr.strip()}"
    return r.stdout
