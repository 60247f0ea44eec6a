"""DNS messages (RFC 1035 §4): header, questions, resource records, names.

The view (:class:`DnsView`) reads the fixed 12-byte header in place and walks
the question section; the value (:class:`DnsMessage`) holds a whole parsed
message and emits one (with owner names compressed, RFC 1035 §4.1.4).

Names are text in presentation form (RFC 1035 §5.1): labels joined by dots,
no trailing dot, a byte outside printable ASCII written ``\\DDD`` and a literal
dot or backslash inside a label escaped with a backslash.  Names compare
case-insensitively (RFC 4343); :func:`name_key` is the form to compare.

Compression pointers in received names are followed with two guards that make
every name terminate however hostile the bytes: each pointer must jump
strictly *before* the start of the label run it interrupts (so the jump
targets strictly decrease and no loop is possible), and a name may not
exceed 255 bytes (RFC 1035 §3.1).  Names inside the RDATA of the types RFC 3597
§4 allows to be compressed (NS, CNAME, PTR, MX, SOA) are expanded while
parsing, so :attr:`Record.rdata` is always self-contained, uncompressed wire
format.  Anything malformed raises :class:`~seqs.errors.ParseError` and
nothing else.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

from .._typing import BytesLike
from ..errors import ParseError

__all__ = [
    "CLASS_IN",
    "FLAG_AA",
    "FLAG_QR",
    "FLAG_RA",
    "FLAG_RD",
    "FLAG_TC",
    "HEADER_LEN",
    "RCODE_FORMERR",
    "RCODE_NAMES",
    "RCODE_NOERROR",
    "RCODE_NOTIMP",
    "RCODE_NXDOMAIN",
    "RCODE_REFUSED",
    "RCODE_SERVFAIL",
    "TYPE_A",
    "TYPE_AAAA",
    "TYPE_CNAME",
    "TYPE_MX",
    "TYPE_NAMES",
    "TYPE_NS",
    "TYPE_OPT",
    "TYPE_PTR",
    "TYPE_SOA",
    "TYPE_TXT",
    "DnsMessage",
    "DnsView",
    "Question",
    "Record",
    "decode_name",
    "encode_name",
    "name_key",
    "read_name",
    "reverse_name",
    "type_code",
]

HEADER_LEN = 12
#: id, flags, QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT (RFC 1035 §4.1.1)
HDR = struct.Struct("!HHHHHH")
_QTAIL = struct.Struct("!HH")  # QTYPE, QCLASS
_RRTAIL = struct.Struct("!HHIH")  # TYPE, CLASS, TTL, RDLENGTH
_U16 = struct.Struct("!H")

FLAG_QR = 0x8000
OPCODE_SHIFT = 11
OPCODE_MASK = 0xF
FLAG_AA = 0x0400
FLAG_TC = 0x0200
FLAG_RD = 0x0100
FLAG_RA = 0x0080
RCODE_MASK = 0xF

RCODE_NOERROR = 0
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_NOTIMP = 4
RCODE_REFUSED = 5
RCODE_NAMES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
               16: "BADVERS"}

TYPE_A = 1
TYPE_NS = 2
TYPE_CNAME = 5
TYPE_SOA = 6
TYPE_PTR = 12
TYPE_MX = 15
TYPE_TXT = 16
TYPE_AAAA = 28
TYPE_OPT = 41
TYPE_ANY = 255
TYPE_NAMES = {TYPE_A: "A", TYPE_NS: "NS", TYPE_CNAME: "CNAME", TYPE_SOA: "SOA", TYPE_PTR: "PTR",
              TYPE_MX: "MX", TYPE_TXT: "TXT", TYPE_AAAA: "AAAA", TYPE_OPT: "OPT", TYPE_ANY: "ANY"}
_TYPE_CODES = {v: k for k, v in TYPE_NAMES.items()}

CLASS_IN = 1

MAX_NAME_LEN = 255  # RFC 1035 §3.1: octets of the wire form, length bytes included
MAX_LABEL_LEN = 63
_PTR_MASK = 0xC0
_MAX_POINTER = 0x3FFF

#: RDATA types whose names may be compressed on the wire (RFC 3597 §4), with
#: their layout: 0 for a domain name, n > 0 for n fixed bytes.
_NAME_RDATA: dict[int, tuple[int, ...]] = {
    TYPE_NS: (0,), TYPE_CNAME: (0,), TYPE_PTR: (0,), TYPE_MX: (2, 0), TYPE_SOA: (0, 0, 20),
}
_FIXED_RDATA = {TYPE_A: 4, TYPE_AAAA: 16}


def type_code(t: str | int) -> int:
    """``"AAAA"`` (or ``"TYPE28"``, or 28) to 28; ValueError for an unknown mnemonic."""
    if isinstance(t, int):
        if not 0 <= t <= 0xFFFF:
            raise ValueError(f"record type {t} out of range")
        return t
    up = t.upper()
    if up in _TYPE_CODES:
        return _TYPE_CODES[up]
    if up.startswith("TYPE") and up[4:].isdigit():  # RFC 3597 §5
        return type_code(int(up[4:]))
    raise ValueError(f"unknown DNS record type {t!r}")


def type_name(t: int) -> str:
    return TYPE_NAMES.get(t, f"TYPE{t}")


# -- names --------------------------------------------------------------------------------


def _label_text(label: bytes) -> str:
    out = []
    for b in label:
        if b in (0x2E, 0x5C):  # '.' and '\\' inside a label
            out.append("\\" + chr(b))
        elif 0x21 <= b <= 0x7E:
            out.append(chr(b))
        else:
            out.append(f"\\{b:03d}")
    return "".join(out)


def _join(labels: list[bytes]) -> str:
    return ".".join(_label_text(lb) for lb in labels)


def encode_name(name: str) -> bytes:
    """Presentation form to uncompressed wire form; ValueError if it is not a valid name.

    ``""`` and ``"."`` are the root; one trailing dot is allowed.
    """
    if not name.isascii():
        raise ValueError(f"DNS name {name!r} is not ASCII (IDNA encode it first)")
    labels: list[bytes] = []
    cur = bytearray()
    i, n = 0, len(name)
    if name == ".":
        n = 0
    while i < n:
        c = name[i]
        if c == "\\":
            if name[i + 1 : i + 4].isdigit() and len(name[i + 1 : i + 4]) == 3:
                v = int(name[i + 1 : i + 4])
                if v > 255:
                    raise ValueError(f"bad escape in DNS name {name!r}")
                cur.append(v)
                i += 4
                continue
            if i + 1 >= n:
                raise ValueError(f"dangling backslash in DNS name {name!r}")
            cur.append(ord(name[i + 1]))
            i += 2
            continue
        if c == ".":
            if not cur:
                raise ValueError(f"empty label in DNS name {name!r}")
            labels.append(bytes(cur))
            cur = bytearray()
            if i == n - 1:  # the one trailing dot of an absolute name
                break
        else:
            cur.append(ord(c))
        i += 1
    if cur:
        labels.append(bytes(cur))
    out = bytearray()
    for lb in labels:
        if len(lb) > MAX_LABEL_LEN:
            raise ValueError(f"label longer than {MAX_LABEL_LEN} bytes in DNS name {name!r}")
        out.append(len(lb))
        out += lb
    out.append(0)
    if len(out) > MAX_NAME_LEN:
        raise ValueError(f"DNS name {name!r} longer than {MAX_NAME_LEN} bytes")
    return bytes(out)


def name_key(name: str) -> str:
    """The form in which two names compare equal when DNS says they are (RFC 4343)."""
    return name.lower()


def read_name(buf: BytesLike, offset: int) -> tuple[str, int]:
    """Read a (possibly compressed) name at ``offset``; return it and the offset after it.

    RFC 1035 §4.1.4: a pointer is two bytes ``11`` + a 14-bit offset.  See the
    module docstring for the two guards against loops and oversize names.
    """
    mv = memoryview(buf)
    n = len(mv)
    labels: list[bytes] = []
    total = 1  # the root label's length byte
    pos = offset
    run_start = offset  # where the current run of labels began
    end: int | None = None
    while True:
        if pos >= n:
            raise ParseError("dns_name_truncated", f"name at {offset} runs past the message")
        length = mv[pos]
        kind = length & _PTR_MASK
        if kind == _PTR_MASK:
            if pos + 1 >= n:
                raise ParseError("dns_name_truncated", "pointer cut short")
            target = ((length & 0x3F) << 8) | mv[pos + 1]
            if end is None:
                end = pos + 2
            if target >= run_start:
                raise ParseError("dns_bad_pointer", f"pointer at {pos} to {target} does not point backwards")
            pos = run_start = target
            continue
        if kind:  # 0x40 and 0x80: extended/obsolete label types (RFC 6891 §5)
            raise ParseError("dns_bad_label", f"label type {kind:#x} at {pos}")
        if length == 0:
            return _join(labels), (end if end is not None else pos + 1)
        total += length + 1
        if total > MAX_NAME_LEN:
            raise ParseError("dns_name_too_long", f"name at {offset} exceeds {MAX_NAME_LEN} bytes")
        if pos + 1 + length > n:
            raise ParseError("dns_name_truncated", f"label at {pos} runs past the message")
        labels.append(bytes(mv[pos + 1 : pos + 1 + length]))
        pos += 1 + length


def decode_name(wire: BytesLike) -> str:
    """An uncompressed wire-form name (exactly) to presentation form."""
    name, end = read_name(wire, 0)
    if end != len(wire):
        raise ParseError("dns_bad_name", "trailing bytes after name")
    return name


def reverse_name(address: str) -> str:
    """The PTR owner name for an IPv4 or IPv6 address (RFC 1035 §3.5, RFC 3596 §2.5)."""
    return ipaddress.ip_address(address).reverse_pointer


def _compress(name: str, out: bytearray, table: dict[str, int]) -> None:
    """Append ``name`` to ``out``, pointing at an earlier copy of a suffix where one exists."""
    wire = encode_name(name)
    pos = 0
    while wire[pos]:
        key = name_key(_join(_labels_of(wire[pos:])))
        at = table.get(key)
        if at is not None:
            out += _U16.pack(0xC000 | at)
            return
        if len(out) <= _MAX_POINTER:
            table[key] = len(out)
        out += wire[pos : pos + 1 + wire[pos]]
        pos += 1 + wire[pos]
    out.append(0)


def _labels_of(wire: bytes) -> list[bytes]:
    labels, pos = [], 0
    while wire[pos]:
        labels.append(wire[pos + 1 : pos + 1 + wire[pos]])
        pos += 1 + wire[pos]
    return labels


# -- records ------------------------------------------------------------------------------


def _expand_rdata(mv: memoryview, start: int, rdlen: int, rtype: int) -> bytes:
    """RDATA at ``start`` with any compressed names expanded (RFC 3597 §4)."""
    end = start + rdlen
    layout = _NAME_RDATA.get(rtype)
    if layout is None:
        fixed = _FIXED_RDATA.get(rtype)
        if fixed is not None and rdlen != fixed:
            raise ParseError("dns_bad_rdata", f"{type_name(rtype)} RDATA of {rdlen} bytes")
        return bytes(mv[start:end])
    out = bytearray()
    pos = start
    for part in layout:
        if part == 0:
            name, pos = read_name(mv[:end], pos)
            out += encode_name(name)
        else:
            if pos + part > end:
                raise ParseError("dns_bad_rdata", f"{type_name(rtype)} RDATA cut short")
            out += mv[pos : pos + part]
            pos += part
    if pos != end:
        raise ParseError("dns_bad_rdata", f"{type_name(rtype)} RDATA has {end - pos} extra bytes")
    return bytes(out)


def _quoted(data: bytes) -> str:
    """A <character-string> as a zone file quotes it (RFC 1035 §5.1)."""
    out = []
    for b in data:
        if b in (0x22, 0x5C):  # '"' and '\\'
            out.append("\\" + chr(b))
        elif 0x20 <= b <= 0x7E:
            out.append(chr(b))
        else:
            out.append(f"\\{b:03d}")
    return '"' + "".join(out) + '"'


def _txt_strings(rdata: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(rdata):
        n = rdata[pos]
        out.append(rdata[pos + 1 : pos + 1 + n])
        pos += 1 + n
    return out


@dataclass(frozen=True, slots=True)
class Question:
    name: str
    type: int
    cls: int = CLASS_IN

    def matches(self, other: Question) -> bool:
        return self.type == other.type and self.cls == other.cls and name_key(self.name) == name_key(other.name)


@dataclass(frozen=True, slots=True)
class Record:
    """A resource record (RFC 1035 §4.1.3); ``rdata`` is uncompressed wire format."""

    name: str
    type: int
    ttl: int
    rdata: bytes
    cls: int = CLASS_IN

    # -- constructors for the common types --

    @classmethod
    def a(cls, name: str, address: str, ttl: int = 300) -> Record:
        return cls(name, TYPE_A, ttl, ipaddress.IPv4Address(address).packed)

    @classmethod
    def aaaa(cls, name: str, address: str, ttl: int = 300) -> Record:
        return cls(name, TYPE_AAAA, ttl, ipaddress.IPv6Address(address).packed)

    @classmethod
    def cname(cls, name: str, target: str, ttl: int = 300) -> Record:
        return cls(name, TYPE_CNAME, ttl, encode_name(target))

    @classmethod
    def ptr(cls, name: str, target: str, ttl: int = 300) -> Record:
        return cls(name, TYPE_PTR, ttl, encode_name(target))

    @classmethod
    def txt(cls, name: str, *strings: bytes, ttl: int = 300) -> Record:
        if any(len(s) > 255 for s in strings):
            raise ValueError("a TXT character-string holds at most 255 bytes")
        return cls(name, TYPE_TXT, ttl, b"".join(bytes([len(s)]) + s for s in strings))

    @classmethod
    def soa(cls, name: str, mname: str, rname: str, serial: int, refresh: int, retry: int, expire: int,
            minimum: int, ttl: int = 300) -> Record:
        fixed = struct.pack("!IIIII", serial, refresh, retry, expire, minimum)
        return cls(name, TYPE_SOA, ttl, encode_name(mname) + encode_name(rname) + fixed)

    # -- reading --

    @property
    def target(self) -> str:
        """The name a CNAME, PTR or NS record points to."""
        if self.type not in (TYPE_CNAME, TYPE_PTR, TYPE_NS):
            raise ValueError(f"a {type_name(self.type)} record has no target name")
        return decode_name(self.rdata)

    @property
    def soa_negative_ttl(self) -> int:
        """RFC 2308 §5: how long a negative answer with this SOA may be cached."""
        _mname, pos = read_name(self.rdata, 0)
        _rname, pos = read_name(self.rdata, pos)
        if len(self.rdata) - pos != 20:
            raise ParseError("dns_bad_rdata", "SOA fixed fields")
        minimum = struct.unpack_from("!I", self.rdata, pos + 16)[0]
        return int(min(self.ttl, minimum))

    @property
    def value(self) -> str:
        """The data as an API returns it: an address, or a name without the final dot."""
        t = self.type
        if t == TYPE_A:
            return str(ipaddress.IPv4Address(self.rdata))
        if t == TYPE_AAAA:
            return ipaddress.IPv6Address(self.rdata).compressed
        if t in (TYPE_CNAME, TYPE_PTR, TYPE_NS):
            return self.target
        return self.text

    @property
    def text(self) -> str:
        """The data in presentation form, as ``dig +short`` prints it."""
        t, rd = self.type, self.rdata
        if t in (TYPE_A, TYPE_AAAA):
            return self.value
        if t in (TYPE_CNAME, TYPE_PTR, TYPE_NS):
            return self.target + "."
        if t == TYPE_MX:
            return f"{_U16.unpack_from(rd, 0)[0]} {decode_name(rd[2:])}."
        if t == TYPE_TXT:
            return " ".join(_quoted(s) for s in _txt_strings(rd))
        if t == TYPE_SOA:
            m, pos = read_name(rd, 0)
            r, pos = read_name(rd, pos)
            nums = struct.unpack_from("!IIIII", rd, pos)
            return f"{m}. {r}. " + " ".join(str(x) for x in nums)
        return f"\\# {len(rd)} {rd.hex()}"  # RFC 3597 §5

    def emit_into(self, out: bytearray, table: dict[str, int]) -> None:
        _compress(self.name, out, table)
        out += _RRTAIL.pack(self.type, self.cls, self.ttl & 0xFFFFFFFF, len(self.rdata))
        out += self.rdata


# -- messages -----------------------------------------------------------------------------


class DnsView:
    """The header of a DNS message in place, and a walk over its questions."""

    __slots__ = ("ancount", "arcount", "buf", "flags", "id", "nscount", "qdcount")

    def __init__(self, buf: BytesLike) -> None:
        mv = memoryview(buf)
        if len(mv) < HEADER_LEN:
            raise ParseError("dns_truncated", f"{len(mv)} bytes")
        self.buf = mv
        ident, flags, qd, an, ns, ar = HDR.unpack_from(mv, 0)
        self.id: int = ident
        self.flags: int = flags
        self.qdcount: int = qd
        self.ancount: int = an
        self.nscount: int = ns
        self.arcount: int = ar

    @property
    def qr(self) -> bool:
        return bool(self.flags & FLAG_QR)

    @property
    def opcode(self) -> int:
        return (self.flags >> OPCODE_SHIFT) & OPCODE_MASK

    @property
    def tc(self) -> bool:
        return bool(self.flags & FLAG_TC)

    @property
    def rcode(self) -> int:
        """The 4-bit header RCODE (see :attr:`DnsMessage.rcode` for the EDNS-extended one)."""
        return self.flags & RCODE_MASK

    def questions(self) -> tuple[list[Question], int]:
        """The question section and the offset after it."""
        mv, pos = self.buf, HEADER_LEN
        out = []
        for _ in range(self.qdcount):
            name, pos = read_name(mv, pos)
            if pos + 4 > len(mv):
                raise ParseError("dns_truncated", "question cut short")
            qtype, qclass = _QTAIL.unpack_from(mv, pos)
            pos += 4
            out.append(Question(name, qtype, qclass))
        return out, pos

    def records(self, pos: int, count: int) -> tuple[list[Record], int]:
        mv, out = self.buf, []
        for _ in range(count):
            name, pos = read_name(mv, pos)
            if pos + 10 > len(mv):
                raise ParseError("dns_truncated", "resource record cut short")
            rtype, rclass, ttl, rdlen = _RRTAIL.unpack_from(mv, pos)
            pos += 10
            if pos + rdlen > len(mv):
                raise ParseError("dns_truncated", "RDATA runs past the message")
            rdata = _expand_rdata(mv, pos, rdlen, rtype)
            pos += rdlen
            # RFC 2181 §8: a TTL with the top bit set is read as 0.
            out.append(Record(name, rtype, 0 if ttl & 0x80000000 else ttl, rdata, rclass))
        return out, pos


@dataclass(frozen=True, slots=True)
class DnsMessage:
    id: int
    flags: int = 0
    questions: tuple[Question, ...] = ()
    answers: tuple[Record, ...] = ()
    authority: tuple[Record, ...] = ()
    additional: tuple[Record, ...] = field(default=())

    @classmethod
    def query(cls, ident: int, name: str, qtype: int, *, rd: bool = True, edns_payload: int | None = None) -> DnsMessage:
        """A standard query; with ``edns_payload`` an OPT record advertises that UDP size (RFC 6891 §6)."""
        extra: tuple[Record, ...] = ()
        if edns_payload is not None:
            extra = (Record("", TYPE_OPT, 0, b"", cls=edns_payload),)
        return cls(ident, FLAG_RD if rd else 0, (Question(name, qtype),), additional=extra)

    @classmethod
    def parse(cls, buf: BytesLike) -> DnsMessage:
        view = DnsView(buf)
        questions, pos = view.questions()
        answers, pos = view.records(pos, view.ancount)
        authority, pos = view.records(pos, view.nscount)
        additional, _pos = view.records(pos, view.arcount)
        # Bytes after the last record are tolerated, as by most resolvers.
        return cls(view.id, view.flags, tuple(questions), tuple(answers), tuple(authority), tuple(additional))

    def emit(self) -> bytes:
        out = bytearray(HDR.pack(self.id, self.flags, len(self.questions), len(self.answers),
                                 len(self.authority), len(self.additional)))
        table: dict[str, int] = {}
        for q in self.questions:
            _compress(q.name, out, table)
            out += _QTAIL.pack(q.type, q.cls)
        for section in (self.answers, self.authority, self.additional):
            for rr in section:
                rr.emit_into(out, table)
        return bytes(out)

    # -- flags --

    @property
    def qr(self) -> bool:
        return bool(self.flags & FLAG_QR)

    @property
    def opcode(self) -> int:
        return (self.flags >> OPCODE_SHIFT) & OPCODE_MASK

    @property
    def aa(self) -> bool:
        return bool(self.flags & FLAG_AA)

    @property
    def tc(self) -> bool:
        return bool(self.flags & FLAG_TC)

    @property
    def rd(self) -> bool:
        return bool(self.flags & FLAG_RD)

    @property
    def ra(self) -> bool:
        return bool(self.flags & FLAG_RA)

    @property
    def opt(self) -> Record | None:
        """The EDNS OPT pseudo-record, if any (RFC 6891 §6.1.1)."""
        for rr in self.additional:
            if rr.type == TYPE_OPT:
                return rr
        return None

    @property
    def rcode(self) -> int:
        """The RCODE, extended by the OPT record's upper 8 bits when present (RFC 6891 §6.1.3)."""
        opt = self.opt
        ext = (opt.ttl >> 24) & 0xFF if opt is not None else 0
        return (ext << 4) | (self.flags & RCODE_MASK)

    def reply(self, answers: tuple[Record, ...] = (), *, rcode: int = RCODE_NOERROR, aa: bool = True,
              tc: bool = False, authority: tuple[Record, ...] = ()) -> DnsMessage:
        """A response to this query (for responders and tests): same id, question and RD."""
        flags = FLAG_QR | (self.flags & (FLAG_RD | (OPCODE_MASK << OPCODE_SHIFT))) | FLAG_RA | (rcode & RCODE_MASK)
        if aa:
            flags |= FLAG_AA
        if tc:
            flags |= FLAG_TC
        return DnsMessage(self.id, flags, self.questions, answers, authority)
