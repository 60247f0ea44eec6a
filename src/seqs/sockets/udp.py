"""Sans-IO UDP sockets (RFC 768, RFC 1122 §4.1) and the port table that demultiplexes to them.

Sending goes straight to the interface (a datagram needs no state); received
datagrams wait in a per-socket queue bounded in bytes, and overflow is a
counted drop, as in any kernel.  Addresses at this API are ``(str, int)``
pairs, like the standard library's.
"""

from __future__ import annotations

import errno
from collections import deque
from collections.abc import Callable

from .._typing import BytesLike
from ..errors import oserror
from ..iface import Interface
from ..wire import icmp as wicmp
from ..wire import ipv4 as wip
from ..wire import udp as wudp
from ..wire.checksum import checksum, pseudo_header_sum
from .base import Notifier, pick_ephemeral_port

__all__ = ["UdpSocket", "UdpTable"]

Address = tuple[str, int]

DEFAULT_RCVBUF = 256 * 1024
#: what one queued datagram costs beyond its payload, charged against ``rcvbuf`` (as
#: Linux charges an skb's truesize): without it a flood of empty datagrams would
#: queue without limit, each "costing" nothing
DATAGRAM_OVERHEAD = 64


class UdpTable:
    """All UDP sockets of one interface, by local port."""

    __slots__ = ("_ports", "iface")

    def __init__(self, iface: Interface) -> None:
        self.iface = iface
        self._ports: dict[int, UdpSocket] = {}
        iface.register_protocol(wip.PROTO_UDP, self._input, self._icmp_error)

    def socket(self) -> UdpSocket:
        return UdpSocket(self)

    def __len__(self) -> int:
        return len(self._ports)

    # -- binding (used by UdpSocket) ------------------------------------------------

    def _bind(self, sock: UdpSocket, port: int) -> int:
        if port == 0:
            port = pick_ephemeral_port(self.iface.rng, self._ports.__contains__)
        elif port in self._ports:
            raise OSError(errno.EADDRINUSE, f"UDP port {port} in use")
        self._ports[port] = sock
        return port

    def _unbind(self, port: int) -> None:
        self._ports.pop(port, None)

    # -- input -----------------------------------------------------------------------

    def _input(self, src: int, dst: int, seg: memoryview, now: float, trusted: bool) -> bool:
        st = self.iface.stats
        if len(seg) < 8:
            st.drop("udp_truncated")
            return True
        sport, dport, length, ck = wudp.HDR.unpack_from(seg, 0)
        if length < 8 or length > len(seg):
            st.drop("udp_bad_length")
            return True
        if length != len(seg):
            seg = seg[:length]
        # RFC 768: a zero checksum means none was sent.
        if ck and not trusted and checksum(seg, pseudo_header_sum(src, dst, wip.PROTO_UDP, length)) != 0:
            st.drop("udp_bad_checksum")
            return True
        sock = self._ports.get(dport)
        if sock is None or not sock._accepts(src, sport, dst):
            st.drop("udp_no_socket")
            return False  # RFC 1122 §4.1.3.1: port unreachable (unicast only; the interface checks)
        st.udp_rx += 1
        sock._deliver(bytes(seg[8:]), src, sport)
        return True

    def _icmp_error(self, icmp_type: int, code: int, quote: wicmp.QuotedDatagram, mtu: int, now: float) -> None:
        ports = quote.ports
        if ports is None:
            return
        sock = self._ports.get(ports[0])
        if sock is None:
            return
        # RFC 1122 §4.1.3.3: pass ICMP errors up.  Like Linux, report them on
        # connected sockets only: an unconnected socket cannot tell whose error it is.
        if sock.remote is None or sock.remote != (quote.dst, ports[1]):
            return
        if icmp_type == wicmp.TYPE_DEST_UNREACHABLE:
            if code in (wicmp.CODE_PORT_UNREACHABLE, wicmp.CODE_PROTO_UNREACHABLE):
                sock._set_error(errno.ECONNREFUSED)
            elif code == wicmp.CODE_FRAG_NEEDED:
                sock._set_error(errno.EMSGSIZE)
            else:
                sock._set_error(errno.EHOSTUNREACH)


class UdpSocket(Notifier):
    """A UDP endpoint.  ``on_event`` (if set) is called when it becomes readable."""

    __slots__ = (
        "_queue",
        "_queued_bytes",
        "broadcast",
        "closed",
        "error",
        "iface",
        "local_addr",
        "local_port",
        "rcvbuf",
        "remote",
        "table",
        "tos",
        "ttl",
    )

    def __init__(self, table: UdpTable) -> None:
        self.table = table
        self.iface = table.iface
        self.local_addr = 0  # 0: any of ours
        self.local_port = 0
        self.remote: tuple[int, int] | None = None
        #: SO_BROADCAST: sending to a broadcast address needs it, as in BSD sockets
        self.broadcast = False
        self.ttl: int | None = None
        self.tos = 0
        self.rcvbuf = DEFAULT_RCVBUF
        self.error: int | None = None
        self.closed = False
        self.on_event: Callable[[], None] | None = None
        self._event_queued = False
        self._queue: deque[tuple[bytes, Address]] = deque()
        self._queued_bytes = 0

    # -- API -------------------------------------------------------------------------

    def bind(self, address: Address | tuple[str, int] = ("", 0)) -> None:
        host, port = address
        if self.closed:
            raise OSError(errno.EBADF, "socket is closed")
        if self.local_port:
            raise OSError(errno.EINVAL, "socket already bound")
        if not 0 <= port <= 65535:
            raise OverflowError("port must be 0-65535")
        addr = wip.aton(host) if host and host != "0.0.0.0" else 0
        if addr and addr != self.iface.address and addr != 0xFFFFFFFF:
            raise OSError(errno.EADDRNOTAVAIL, f"{host} is not an address of this interface")
        self.local_port = self.table._bind(self, port)
        self.local_addr = addr

    def connect(self, address: Address) -> None:
        host, port = address
        if not 0 < port <= 65535:
            raise OverflowError("port must be 1-65535")
        dst = wip.aton(host)
        self.iface.route(dst)  # ENETUNREACH now rather than at send time
        if not self.local_port:
            self.bind()
        self.remote = (dst, port)
        self.error = None

    @property
    def local_address(self) -> Address:
        return (wip.ntoa(self.local_addr or self.iface.address), self.local_port)

    def sendto(self, data: BytesLike, address: Address) -> int:
        host, port = address
        if not 0 < port <= 65535:
            raise OverflowError("port must be 1-65535")
        return self._send(data, wip.aton(host), port)

    def send(self, data: BytesLike) -> int:
        if self.remote is None:
            raise OSError(errno.EDESTADDRREQ, "socket is not connected")
        self._raise_error()
        return self._send(data, *self.remote)

    def recvfrom(self) -> tuple[bytes, Address] | None:
        """The next datagram and its sender, or None if none is queued."""
        if self._queue:
            data, addr = self._queue.popleft()
            self._queued_bytes -= len(data) + DATAGRAM_OVERHEAD
            return data, addr
        self._raise_error()
        return None

    def recv(self) -> bytes | None:
        got = self.recvfrom()
        return None if got is None else got[0]

    @property
    def readable(self) -> bool:
        return bool(self._queue) or self.error is not None or self.closed

    @property
    def pending(self) -> int:
        """Datagrams waiting to be read."""
        return len(self._queue)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.local_port:
                self.table._unbind(self.local_port)
            self._queue.clear()
            self._queued_bytes = 0
            self._notify()

    # -- internals -------------------------------------------------------------------

    def _send(self, data: BytesLike, dst: int, port: int) -> int:
        if self.closed:
            raise OSError(errno.EBADF, "socket is closed")
        iface = self.iface
        if (dst == 0xFFFFFFFF or dst == iface.directed_broadcast) and not self.broadcast:
            raise PermissionError(errno.EACCES, "broadcast needs UdpSocket.broadcast = True (SO_BROADCAST)")
        n = len(data)
        if n > 65535 - 28:
            raise OSError(errno.EMSGSIZE, "Message too long")
        if not self.local_port:
            self.bind()
        src = self.local_addr if self.local_addr and self.local_addr != 0xFFFFFFFF else iface.address
        payload = wudp.build_header(src, dst, self.local_port, port, data) + data
        iface.send_ipv4(dst, wip.PROTO_UDP, payload, iface.now, src=src, ttl=self.ttl, tos=self.tos, df=False)
        iface.stats.udp_tx += 1
        return n

    def _accepts(self, src: int, sport: int, dst: int) -> bool:
        if self.remote is not None and self.remote != (src, sport):
            return False
        la = self.local_addr
        return la == 0 or la == dst

    def _deliver(self, data: bytes, src: int, sport: int) -> None:
        cost = len(data) + DATAGRAM_OVERHEAD
        if self._queued_bytes + cost > self.rcvbuf:
            self.iface.stats.drop("udp_rcvbuf_full")
            return
        self._queue.append((data, (wip.ntoa(src), sport)))
        self._queued_bytes += cost
        self._notify()

    def _set_error(self, code: int) -> None:
        self.error = code
        self._notify()

    def _raise_error(self) -> None:
        code = self.error
        if code is not None:
            self.error = None
            raise oserror(code)

