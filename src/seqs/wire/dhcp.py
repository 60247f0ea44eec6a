"""DHCP messages (RFC 2131 §2) on the BOOTP format (RFC 951, RFC 1542), and their
options (RFC 2132), for Ethernet clients.

Read RFC 2131 §2 (the message), §4.1 (who sends what where) and RFC 2132 §3-§9
(the options) first.  This module owns the bytes only: :class:`DhcpView` reads a
received message in place, :class:`DhcpMessage` is the value a client or server
builds and emits, and :class:`DhcpOptions` is the typed set of options seqs uses.
The state machines live in :mod:`seqs.services.dhcp_client` and
:mod:`seqs.services.dhcp_server`.

Parsing is strict where a wrong byte would mislead a host and lax where RFC 2132
asks receivers to be: an option that runs past the end of its field, or a known
option with the wrong length (a 3-byte subnet mask), raises :class:`ParseError`;
an unknown option is skipped; a missing END option is tolerated; a trailing NUL
on a text option is removed (RFC 2132 §2).  An option that appears more than once
is the concatenation of its instances (RFC 3396 §5), and the ``sname``/``file``
fields are read for options when option 52 says they are overloaded (RFC 2132 §9.3).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, fields

from .._typing import BytesLike
from ..errors import ParseError

__all__ = [
    "CLIENT_PORT",
    "DECLINE",
    "DISCOVER",
    "FLAG_BROADCAST",
    "INFORM",
    "MESSAGE_TYPE_NAMES",
    "NAK",
    "OFFER",
    "OP_REPLY",
    "OP_REQUEST",
    "RELEASE",
    "REQUEST",
    "ACK",
    "SERVER_PORT",
    "DhcpMessage",
    "DhcpOptions",
    "DhcpView",
    "parse_options",
]

SERVER_PORT = 67
CLIENT_PORT = 68

OP_REQUEST = 1  # BOOTREQUEST
OP_REPLY = 2  # BOOTREPLY
HTYPE_ETHERNET = 1
#: RFC 2131 §2: the broadcast bit, the leftmost bit of ``flags``
FLAG_BROADCAST = 0x8000
#: RFC 2131 §3: 99.130.83.99 opens the options field
MAGIC_COOKIE = 0x63825363

# DHCP message types (RFC 2132 §9.6)
DISCOVER = 1
OFFER = 2
REQUEST = 3
DECLINE = 4
ACK = 5
NAK = 6
RELEASE = 7
INFORM = 8
MESSAGE_TYPE_NAMES = {
    DISCOVER: "DHCPDISCOVER", OFFER: "DHCPOFFER", REQUEST: "DHCPREQUEST", DECLINE: "DHCPDECLINE",
    ACK: "DHCPACK", NAK: "DHCPNAK", RELEASE: "DHCPRELEASE", INFORM: "DHCPINFORM",
}

# Option codes (RFC 2132)
OPT_PAD = 0
OPT_SUBNET_MASK = 1
OPT_ROUTER = 3
OPT_DNS = 6
OPT_HOSTNAME = 12
OPT_DOMAIN_NAME = 15
OPT_MTU = 26
OPT_BROADCAST = 28
OPT_NTP = 42
OPT_REQUESTED_ADDRESS = 50
OPT_LEASE_TIME = 51
OPT_OVERLOAD = 52
OPT_MESSAGE_TYPE = 53
OPT_SERVER_ID = 54
OPT_PARAMETER_REQUEST_LIST = 55
OPT_MESSAGE = 56
OPT_MAX_MESSAGE_SIZE = 57
OPT_RENEWAL_TIME = 58  # T1
OPT_REBINDING_TIME = 59  # T2
OPT_CLIENT_ID = 61
OPT_END = 255

#: op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr, sname, file, cookie
_HDR = struct.Struct("!BBBBIHHIIII16s64s128sI")
HEADER_LEN = 236  # the fixed BOOTP fields
OPTIONS_OFFSET = 240  # after the magic cookie
OFF_SNAME = 44
SNAME_LEN = 64
OFF_FILE = 108
FILE_LEN = 128
#: RFC 1542 §2.1: a BOOTP message is at least 300 bytes; some relays drop shorter ones
MIN_MESSAGE_LEN = 300
#: RFC 2131 §2: every host must accept messages of up to 576 bytes of IP
MIN_MAX_MESSAGE_SIZE = 576

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")

# How each known option is coded: the DhcpOptions field it fills and its kind.
# Kinds fix the length rule: u8 = 1 byte, u16 = 2, u32/addr = 4, addrs = a positive
# multiple of 4, str/codes = at least 1, cid = at least 2 (RFC 2132 §9.14).
_SPEC: dict[int, tuple[str, str]] = {
    OPT_SUBNET_MASK: ("subnet_mask", "addr"),  # §3.3
    OPT_ROUTER: ("routers", "addrs"),  # §3.5
    OPT_DNS: ("dns_servers", "addrs"),  # §3.8
    OPT_HOSTNAME: ("hostname", "str"),  # §3.14
    OPT_DOMAIN_NAME: ("domain_name", "str"),  # §3.17
    OPT_MTU: ("mtu", "u16"),  # §5.1
    OPT_BROADCAST: ("broadcast_address", "addr"),  # §5.3
    OPT_NTP: ("ntp_servers", "addrs"),  # §8.3
    OPT_REQUESTED_ADDRESS: ("requested_address", "addr"),  # §9.1
    OPT_LEASE_TIME: ("lease_time", "u32"),  # §9.2
    OPT_MESSAGE_TYPE: ("message_type", "u8"),  # §9.6
    OPT_SERVER_ID: ("server_id", "addr"),  # §9.7
    OPT_PARAMETER_REQUEST_LIST: ("parameter_request_list", "codes"),  # §9.8
    OPT_MESSAGE: ("message", "str"),  # §9.9
    OPT_MAX_MESSAGE_SIZE: ("max_message_size", "u16"),  # §9.10
    OPT_RENEWAL_TIME: ("renewal_time", "u32"),  # §9.11
    OPT_REBINDING_TIME: ("rebinding_time", "u32"),  # §9.12
    OPT_CLIENT_ID: ("client_id", "cid"),  # §9.14
}
_FIXED_LEN = {"u8": 1, "u16": 2, "u32": 4, "addr": 4}
_MIN_LEN = {"addrs": 4, "str": 1, "codes": 1, "cid": 2}


@dataclass(frozen=True, slots=True)
class DhcpOptions:
    """The options seqs understands, decoded.  Addresses are 32-bit integers, times
    are seconds, ``None``/empty means absent.  Emitting writes them in code order
    (the message type first), then END."""

    message_type: int | None = None
    subnet_mask: int | None = None
    routers: tuple[int, ...] = ()
    dns_servers: tuple[int, ...] = ()
    hostname: str | None = None
    domain_name: str | None = None
    mtu: int | None = None
    broadcast_address: int | None = None
    ntp_servers: tuple[int, ...] = ()
    requested_address: int | None = None
    lease_time: int | None = None
    server_id: int | None = None
    parameter_request_list: tuple[int, ...] = ()
    message: str | None = None
    max_message_size: int | None = None
    #: T1 (RFC 2131 §4.4.5)
    renewal_time: int | None = None
    #: T2
    rebinding_time: int | None = None
    client_id: bytes | None = None

    @classmethod
    def from_raw(cls, raw: dict[int, bytes]) -> DhcpOptions:
        """Decode ``{code: value}`` (from :func:`parse_options`); unknown codes are ignored."""
        values: dict[str, object] = {}
        for code, data in raw.items():
            spec = _SPEC.get(code)
            if spec is None:
                continue  # RFC 2131 §2: options a host does not understand are skipped
            name, kind = spec
            n = len(data)
            want = _FIXED_LEN.get(kind)
            if want is not None and n != want:
                raise ParseError("dhcp_option_bad_length", f"option {code}: {n} bytes, expected {want}")
            if n < _MIN_LEN.get(kind, 0) or (kind == "addrs" and n % 4):
                raise ParseError("dhcp_option_bad_length", f"option {code}: {n} bytes")
            if kind == "u8":
                values[name] = data[0]
            elif kind == "u16":
                values[name] = _U16.unpack(data)[0]
            elif kind in ("u32", "addr"):
                values[name] = _U32.unpack(data)[0]
            elif kind == "addrs":
                values[name] = tuple(_U32.unpack_from(data, i)[0] for i in range(0, n, 4))
            elif kind == "str":
                # RFC 2132 §2: receivers must be prepared to delete trailing NULs.
                text = data.rstrip(b"\0").decode("utf-8", "replace")
                if not text:
                    raise ParseError("dhcp_option_bad_length", f"option {code}: empty text")
                values[name] = text
            elif kind == "codes":
                values[name] = tuple(data)
            else:
                values[name] = bytes(data)
        mt = values.get("message_type")
        if mt is not None and mt not in MESSAGE_TYPE_NAMES:
            raise ParseError("dhcp_bad_message_type", str(mt))
        mtu = values.get("mtu")
        if isinstance(mtu, int) and mtu < 68:  # RFC 2132 §5.1: the minimum legal MTU is 68
            raise ParseError("dhcp_option_bad_value", f"MTU {mtu}")
        mms = values.get("max_message_size")
        if isinstance(mms, int) and mms < MIN_MAX_MESSAGE_SIZE:  # RFC 2132 §9.10: at least 576
            raise ParseError("dhcp_option_bad_value", f"maximum message size {mms}")
        return cls(**values)  # type: ignore[arg-type]

    def emit(self) -> bytes:
        """The options field after the magic cookie, END included."""
        out = bytearray()
        items: list[tuple[int, object]] = [(OPT_MESSAGE_TYPE, self.message_type)]
        items += [(code, getattr(self, name)) for code, (name, _k) in sorted(_SPEC.items())
                  if code != OPT_MESSAGE_TYPE]
        for code, value in items:
            if value is None or value == ():
                continue
            kind = _SPEC[code][1]
            data: bytes
            if isinstance(value, int):
                if kind == "u8":
                    data = bytes([value])
                elif kind == "u16":
                    data = _U16.pack(value)
                else:
                    data = _U32.pack(value)
            elif isinstance(value, tuple):
                data = b"".join(_U32.pack(a) for a in value) if kind == "addrs" else bytes(value)
            elif isinstance(value, str):
                data = value.encode("utf-8")
            else:
                data = bytes(value)  # type: ignore[call-overload]
            if len(data) < max(_MIN_LEN.get(kind, 1), 1):
                raise ValueError(f"DHCP option {code} ({_SPEC[code][0]}) is too short: {value!r}")
            # RFC 3396 §7: a value longer than 255 bytes is split into consecutive instances.
            for off in range(0, len(data), 255):
                chunk = data[off : off + 255]
                out += bytes([code, len(chunk)]) + chunk
        out.append(OPT_END)
        return bytes(out)


def _scan(buf: memoryview, raw: dict[int, bytes], overload: list[int]) -> None:
    """Collect the options in ``buf`` into ``raw``, concatenating repeats (RFC 3396 §5)."""
    i = 0
    n = len(buf)
    while i < n:
        code = buf[i]
        if code == OPT_PAD:
            i += 1
            continue
        if code == OPT_END:
            return
        if i + 1 >= n:
            raise ParseError("dhcp_option_overrun", f"option {code} at {i}: no length byte")
        length = buf[i + 1]
        end = i + 2 + length
        if end > n:
            raise ParseError("dhcp_option_overrun", f"option {code} at {i}: length {length} past the end")
        value = bytes(buf[i + 2 : end])
        if code == OPT_OVERLOAD:
            if length != 1 or value[0] not in (1, 2, 3):
                raise ParseError("dhcp_option_bad_length", f"option overload {value.hex()}")
            overload.append(value[0])
        elif code in raw:
            raw[code] += value
        else:
            raw[code] = value
        i = end
    # A field without END: RFC 2131 asks for one, but being lenient costs nothing here.


def parse_options(message: BytesLike) -> dict[int, bytes]:
    """``{code: value}`` for the options of a whole DHCP message (fixed part included).

    The options field comes first, then ``file`` and ``sname`` if option 52 says
    they carry options (RFC 2131 §4.1 fixes that order)."""
    return _parse_options(memoryview(message))[0]


def _parse_options(mv: memoryview) -> tuple[dict[int, bytes], int]:
    """(options, option-overload value or 0)."""
    raw: dict[int, bytes] = {}
    overload: list[int] = []
    _scan(mv[OPTIONS_OFFSET:], raw, overload)
    if overload:
        if len(overload) > 1:
            raise ParseError("dhcp_option_bad_length", "option overload repeated")
        which = overload[0]
        inner: list[int] = []
        if which & 1:
            _scan(mv[OFF_FILE : OFF_FILE + FILE_LEN], raw, inner)
        if which & 2:
            _scan(mv[OFF_SNAME : OFF_SNAME + SNAME_LEN], raw, inner)
        if inner:
            raise ParseError("dhcp_option_bad_length", "option overload inside an overloaded field")
    return raw, overload[0] if overload else 0


class DhcpView:
    """A received DHCP message, read in place.  Construction checks the fixed part
    (length, op, Ethernet hardware type, magic cookie); :meth:`options` decodes the
    options and raises :class:`ParseError` if they are malformed."""

    __slots__ = ("buf",)

    def __init__(self, buf: BytesLike) -> None:
        mv = memoryview(buf)
        if len(mv) < OPTIONS_OFFSET:
            raise ParseError("dhcp_truncated", f"{len(mv)} bytes")
        if mv[0] not in (OP_REQUEST, OP_REPLY):
            raise ParseError("dhcp_bad_op", str(mv[0]))
        if mv[1] != HTYPE_ETHERNET or mv[2] != 6:
            raise ParseError("dhcp_unsupported_hardware", f"htype {mv[1]} hlen {mv[2]}")
        if _U32.unpack_from(mv, HEADER_LEN)[0] != MAGIC_COOKIE:
            raise ParseError("dhcp_no_magic_cookie", "a plain BOOTP message")
        self.buf = mv

    @property
    def op(self) -> int:
        return self.buf[0]

    @property
    def hops(self) -> int:
        return self.buf[3]

    @property
    def xid(self) -> int:
        return int(_U32.unpack_from(self.buf, 4)[0])

    @property
    def secs(self) -> int:
        return int(_U16.unpack_from(self.buf, 8)[0])

    @property
    def flags(self) -> int:
        return int(_U16.unpack_from(self.buf, 10)[0])

    @property
    def broadcast(self) -> bool:
        return bool(self.flags & FLAG_BROADCAST)

    @property
    def ciaddr(self) -> int:
        return int(_U32.unpack_from(self.buf, 12)[0])

    @property
    def yiaddr(self) -> int:
        return int(_U32.unpack_from(self.buf, 16)[0])

    @property
    def siaddr(self) -> int:
        return int(_U32.unpack_from(self.buf, 20)[0])

    @property
    def giaddr(self) -> int:
        return int(_U32.unpack_from(self.buf, 24)[0])

    @property
    def chaddr(self) -> bytes:
        """The client's MAC (the first ``hlen`` = 6 bytes of the 16-byte field)."""
        return bytes(self.buf[28:34])

    def options(self) -> DhcpOptions:
        return DhcpOptions.from_raw(_parse_options(self.buf)[0])


def _field_text(data: bytes) -> bytes:
    return data.split(b"\0", 1)[0]


@dataclass(frozen=True, slots=True)
class DhcpMessage:
    """A DHCP message as a value.  ``emit`` pads it to 300 bytes (RFC 1542 §2.1)."""

    op: int
    xid: int
    chaddr: bytes
    options: DhcpOptions = field(default_factory=DhcpOptions)
    secs: int = 0
    flags: int = 0
    ciaddr: int = 0
    yiaddr: int = 0
    siaddr: int = 0
    giaddr: int = 0
    hops: int = 0
    sname: bytes = b""
    file: bytes = b""

    @property
    def message_type(self) -> int | None:
        return self.options.message_type

    @property
    def broadcast(self) -> bool:
        return bool(self.flags & FLAG_BROADCAST)

    @classmethod
    def parse(cls, buf: BytesLike) -> DhcpMessage:
        v = DhcpView(buf)
        raw, overload = _parse_options(v.buf)
        options = DhcpOptions.from_raw(raw)
        # An overloaded field holds options, not a name (RFC 2132 §9.3).
        sname = b"" if overload & 2 else _field_text(bytes(v.buf[OFF_SNAME : OFF_SNAME + SNAME_LEN]))
        file = b"" if overload & 1 else _field_text(bytes(v.buf[OFF_FILE : OFF_FILE + FILE_LEN]))
        return cls(v.op, v.xid, v.chaddr, options, v.secs, v.flags, v.ciaddr, v.yiaddr, v.siaddr, v.giaddr,
                   v.hops, sname, file)

    def emit(self) -> bytes:
        if len(self.chaddr) != 6:
            raise ValueError("chaddr must be a 6-byte Ethernet address")
        # A field filled to the last byte has no NUL; such a value still round-trips.
        if len(self.sname) > SNAME_LEN or len(self.file) > FILE_LEN:
            raise ValueError("sname/file too long")
        head = _HDR.pack(self.op, HTYPE_ETHERNET, 6, self.hops, self.xid, self.secs, self.flags, self.ciaddr,
                         self.yiaddr, self.siaddr, self.giaddr, self.chaddr, self.sname, self.file, MAGIC_COOKIE)
        out = head + self.options.emit()
        if len(out) < MIN_MESSAGE_LEN:
            out += bytes(MIN_MESSAGE_LEN - len(out))
        return out

    def describe(self) -> str:
        """One trace line: ``DHCPOFFER xid=0x1234 yiaddr=10.0.0.5 server=10.0.0.1``."""
        from .ipv4 import ntoa

        name = MESSAGE_TYPE_NAMES.get(self.message_type or 0, "BOOTP")
        parts = [name, f"xid={self.xid:#010x}"]
        for label in ("ciaddr", "yiaddr"):
            value = getattr(self, label)
            if value:
                parts.append(f"{label}={ntoa(value)}")
        o = self.options
        if o.requested_address is not None:
            parts.append(f"requested={ntoa(o.requested_address)}")
        if o.server_id is not None:
            parts.append(f"server={ntoa(o.server_id)}")
        if o.lease_time is not None:
            parts.append(f"lease={o.lease_time}s")
        return " ".join(parts)


# Every field of DhcpOptions has a code: keep the table and the class in step.
assert {name for name, _k in _SPEC.values()} == {f.name for f in fields(DhcpOptions)}
