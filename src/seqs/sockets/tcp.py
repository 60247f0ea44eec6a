"""TCP demultiplexing, listeners and the things no single connection owns.

Owns: the table of connections by 4-tuple (one dict lookup per segment), the
listeners and their accept queues, RSTs for segments that match nothing
(RFC 9293 §3.10.7.1), the ISN secret (RFC 6528), ephemeral port choice
(RFC 6056), and the stack-wide challenge-ACK budget (RFC 5961 §7).

**Listeners sharing a port.**  Listeners on distinct local addresses may
share a port; a SYN goes to the listener bound to exactly its destination
address, else to the wildcard one.  Listeners on the *same* address share a
port only if every one of them was created with ``reuse_port=True``; they form
a pool and each new connection goes to one of them chosen by a hash of the
remote address and port (so a given client keeps landing on the same one),
the rule of Linux's SO_REUSEPORT.

**SYN floods and SYN cookies** (RFC 4987 §3.6).  A listener holds at most
``max_half_open`` connections in SYN-RECEIVED.  When that table is full, a new
SYN is answered with a SYN cookie (``TcpListener.syn_cookies``, on by default):
a SYN-ACK whose ISN encodes a keyed MAC of the 4-tuple, the client's ISN, a
64-second time slot and the MSS, and nothing is kept (the codec and its layout
are in :mod:`seqs.tcp.syncookie`).  An ACK that matches no connection at a
listening port, while cookies were sent in the last two slots, is checked as
one: if ACK-1 is a valid cookie the connection is created there and then, the
ACK completes its handshake (with the data it carries) and the connection joins
the accept queue, backlog permitting.  Cookies kick in only when the table is
full, as Linux's ``tcp_syncookies=1``: a normal handshake keeps its SYN-ACK
retransmissions and every option, while a cookie connection gets window scaling
and SACK only if the client sent timestamps (they ride in our TSval's low bits)
and an MSS rounded down to one of eight values.  With ``syn_cookies = False``
the oldest half-open connection is evicted instead.  Counters:
``tcp_syncookie_sent``, ``tcp_syncookie_valid``, ``tcp_syncookie_invalid``.
"""

from __future__ import annotations

import errno
import hashlib
from collections import deque
from collections.abc import Callable

from ..iface import Interface
from ..tcp.connection import SYN_RECEIVED, TcpConfig, TcpConnection, window_shift
from ..tcp.isn import IsnGenerator, IsnSource
from ..tcp.seq import unwrap
from ..tcp.syncookie import SynCookies, decode_ts_options, encode_ts_options
from ..tcp.trace import Tracer, describe, describe_bytes
from ..wire import icmp as wicmp
from ..wire import ipv4 as wip
from ..wire import tcp as wtcp
from ..wire.checksum import checksum, pseudo_header_sum, valid
from .base import Notifier, pick_ephemeral_port

__all__ = ["TcpListener", "TcpTable"]

Key = tuple[int, int, int, int]  # remote, rport, local, lport

_HDR = wtcp.HDR
SYN, ACK, FIN, RST = wtcp.SYN, wtcp.ACK, wtcp.FIN, wtcp.RST


class TcpListener(Notifier):
    """A passive socket.  ``accept()`` returns established connections (or None);
    ``on_event`` is called when one is waiting."""

    __slots__ = (
        "_accept",
        "_cookies",
        "_cookies_until",
        "_half_open",
        "address",
        "backlog",
        "closed",
        "config",
        "iface",
        "max_half_open",
        "port",
        "reuse_port",
        "syn_cookies",
        "table",
    )

    def __init__(self, table: TcpTable, address: int, port: int, backlog: int, config: TcpConfig,
                 reuse_port: bool, max_half_open: int) -> None:
        self.table = table
        self.iface = table.iface
        self.address = address
        self.port = port
        self.backlog = backlog
        self.config = config
        self.reuse_port = reuse_port
        self.max_half_open = max_half_open
        self._accept: deque[TcpConnection] = deque()
        self._half_open: dict[Key, TcpConnection] = {}
        self.on_event: Callable[[], None] | None = None
        self._event_queued = False
        self.closed = False
        #: answer SYNs with SYN cookies when the half-open table is full (else evict the oldest)
        self.syn_cookies = True
        #: the codec, made (or shared with the stack's other listeners) on first use
        self._cookies: SynCookies | None = None
        #: ACKs are checked as cookies only until then: after a cookie was sent, its lifetime
        self._cookies_until = -1.0

    @property
    def local_address(self) -> tuple[str, int]:
        return (wip.ntoa(self.address or self.iface.address), self.port)

    @property
    def readable(self) -> bool:
        return bool(self._accept) or self.closed

    @property
    def pending(self) -> int:
        """Established connections waiting in the accept queue."""
        return len(self._accept)

    @property
    def half_open(self) -> int:
        return len(self._half_open)

    def accept(self) -> TcpConnection | None:
        while self._accept:
            conn = self._accept.popleft()
            conn._accept_parent = None
            if conn.state != 0:  # not CLOSED: a reset while queued leaves nothing to accept
                return conn
        return None

    def close(self) -> None:
        """Stop listening; connections not yet accepted are reset."""
        if self.closed:
            return
        self.closed = True
        self.table._unlisten(self)
        for conn in list(self._half_open.values()) + list(self._accept):
            conn.abort()
        self._half_open.clear()
        self._accept.clear()
        self._notify()

    # -- from the table ------------------------------------------------------------------

    def _on_syn(self, src: int, sport: int, dst: int, seq: int, wnd: int, opts: memoryview, now: float) -> None:
        st = self.iface.stats
        try:
            o = wtcp.parse_options(opts)
        except Exception:
            st.drop("tcp_bad_option")
            return
        if len(self._accept) >= self.backlog:
            st.drop("tcp_listen_overflow")  # like Linux: drop the SYN, the client retries
            return
        if len(self._half_open) >= self.max_half_open:
            if self.syn_cookies:
                self._send_cookie(src, sport, dst, seq, o, now)
                return
            # Evict the oldest half-open connection (a SYN flood's, most likely).
            oldest = next(iter(self._half_open.values()))
            st.drop("tcp_syn_backlog_evicted")
            oldest._accept_parent = None
            oldest._to_closed(None)
            self._half_open.pop(oldest.key, None)
        table = self.table
        if len(table._conns) >= table.max_connections:
            st.drop("tcp_too_many_connections")
            table.send_rst(dst, self.port, src, sport, 0, seq + 1, RST | ACK, now)
            return
        conn = self._new_connection(dst, src, sport, table.isn_source.isn(dst, self.port, src, sport, now), now)
        self._half_open[conn.key] = conn
        conn.open_passive(seq, wnd, o, now)

    def _new_connection(self, dst: int, src: int, sport: int, iss: int, now: float) -> TcpConnection:
        """A connection of this listener's, in the table, that joins the accept queue
        once established (from a SYN, or from the ACK that returns a SYN cookie)."""
        conn = TcpConnection(self.table, dst, self.port, src, sport, self.config.copy(), iss, now)
        conn._accept_parent = self
        conn.on_established = self._established
        self.table._conns[conn.key] = conn
        return conn

    def _established(self, conn: TcpConnection) -> None:
        self._half_open.pop(conn.key, None)
        conn.on_established = None
        self._accept.append(conn)
        self._notify()

    def _forget(self, conn: TcpConnection) -> None:
        self._half_open.pop(conn.key, None)

    # -- SYN cookies (RFC 4987 §3.6; see the module docstring) ---------------------------

    def _codec(self) -> SynCookies:
        codec = self._cookies
        if codec is None:
            # One secret for all the stack's listeners, so that a reuse_port pool whose
            # membership changes between a SYN-ACK and its ACK still knows the cookie.
            for group in self.table._listeners.values():
                for other in group:
                    codec = codec or other._cookies
            self._cookies = codec = codec or SynCookies(self.table.rng.getrandbits(128).to_bytes(16, "big"))
        return codec

    def _send_cookie(self, src: int, sport: int, dst: int, seq: int, o: wtcp.TcpOptions, now: float) -> None:
        """Answer a SYN with a SYN-ACK whose ISN is a cookie, and keep nothing."""
        codec = self._codec()
        c = self.config
        port = self.port
        iss = codec.make(dst, port, src, sport, seq, o.mss if o.mss else 536, now)  # RFC 9293 §3.7.1
        wscale = None
        sackp = False
        ts = None
        if c.timestamps and o.timestamp is not None:
            # RFC 7323 §3.2 and RFC 2018 §2: answer only with options the SYN offered; the
            # peer's shift and SACK-permitted ride in our TSval, which its ACK echoes.
            peer_ws = o.wscale if c.window_scaling else None
            sackp = c.sack and o.sack_permitted
            ts_now = (int(now * 1000) + codec.ts_offset(dst, port, src, sport)) & 0xFFFFFFFF
            ts = (encode_ts_options(ts_now, peer_ws, sackp), o.timestamp[0])
            wscale = window_shift(c.rcvbuf) if peer_ws is not None else None
        opts = wtcp.build_options(mss=c.mss or (self.iface.mtu - 40), wscale=wscale, sack_permitted=sackp,
                                  timestamp=ts)
        st = self.iface.stats
        st.drop("tcp_syncookie_sent")
        self._cookies_until = now + codec.lifetime
        # RFC 7323 §2.2: the window field of a SYN is not scaled
        self.table.send_bare(dst, port, src, sport, iss, seq + 1, SYN | ACK, now, window=min(c.rcvbuf, 65535),
                             options=opts, ttl=c.ttl, tos=c.tos, note="SYN cookie")

    def _on_ack(self, src: int, sport: int, dst: int, seq: int, ack: int, flags: int, wnd: int,
                seg: memoryview, hl: int, now: float) -> bool:
        """An ACK (without SYN or RST) for no connection: if ACK-1 is a valid cookie, make the
        connection and let the ACK (``seg``, header length ``hl``) complete its handshake.
        False: not a cookie, the caller answers RST (RFC 9293 §3.10.7.2)."""
        if now > self._cookies_until or self._cookies is None:
            return False  # no cookie sent lately: not one (and no MAC to compute under an ACK flood)
        st = self.iface.stats
        codec = self._cookies
        port = self.port
        irs = (seq - 1) & 0xFFFFFFFF
        iss = (ack - 1) & 0xFFFFFFFF
        mss = codec.check(dst, port, src, sport, irs, iss, now)
        if mss is None:
            st.drop("tcp_syncookie_invalid")
            return False
        try:
            o = wtcp.parse_options(seg[20:hl])
        except Exception:
            st.drop("tcp_bad_option")
            return True
        c = self.config
        wscale = None
        sackp = False
        ts = None
        ts_offset = codec.ts_offset(dst, port, src, sport)
        if c.timestamps and o.timestamp is not None:
            ts_now = (int(now * 1000) + ts_offset) & 0xFFFFFFFF
            decoded = decode_ts_options(o.timestamp[1], ts_now, codec.lifetime)
            if decoded is None:
                st.drop("tcp_syncookie_invalid")  # a TSecr we cannot have sent
                return False
            wscale, sackp = decoded
            ts = (o.timestamp[0], 0)
        st.drop("tcp_syncookie_valid")
        if len(self._accept) >= self.backlog:
            st.drop("tcp_listen_overflow")  # like Linux: drop; the client's next segment may find room
            return True
        table = self.table
        if len(table._conns) >= table.max_connections:
            st.drop("tcp_too_many_connections")
            return False
        conn = self._new_connection(dst, src, sport, iss, now)
        conn.open_from_cookie(irs, wtcp.TcpOptions(mss=mss, wscale=wscale, sack_permitted=sackp, timestamp=ts),
                              ts_offset, now)
        if table.tracer is not None:
            table.tracer(f"{table.ends(conn)} LISTEN <-- {describe(seq, ack, flags, wnd, len(seg) - hl)} "
                         "(SYN cookie valid)")
        conn.segment_arrives(seq, ack, flags, wnd, seg, hl, now)
        if conn.state == SYN_RECEIVED:
            conn.abort()  # the ACK did not complete the handshake after all: hold no state for it
        elif table.tracer is not None:
            table.tracer(f"{table.ends(conn)} LISTEN -> {conn.state_name}")
        return True



class TcpTable:
    """All TCP state of one interface."""

    def __init__(self, iface: Interface, *, config: TcpConfig | None = None, max_connections: int = 65536,
                 challenge_ack_rate: float = 1000.0) -> None:
        self.iface = iface
        self.rng = iface.rng
        self.config = config or TcpConfig()
        self.max_connections = max_connections
        self._conns: dict[Key, TcpConnection] = {}
        self._listeners: dict[int, list[TcpListener]] = {}
        #: initial sequence numbers (RFC 6528); replaceable, e.g. by a fixed one in tests
        self.isn_source: IsnSource = IsnGenerator(self.rng.getrandbits(128).to_bytes(16, "big"))
        self._challenge_rate = challenge_ack_rate
        self._challenge_tokens = challenge_ack_rate
        self._challenge_at = 0.0
        #: called with one RFC 9293-style line per segment in and out (see seqs.tcp.trace)
        self.tracer: Tracer | None = None
        iface.register_protocol(wip.PROTO_TCP, self._input, self._icmp_error)

    # -- user API ------------------------------------------------------------------------

    def connect(self, address: tuple[str, int], *, local_port: int = 0,
                config: TcpConfig | None = None) -> TcpConnection:
        """Start an active open; the connection reports ``established`` (or an error) later."""
        host, port = address
        if not 0 < port <= 65535:
            raise OverflowError("port must be 1-65535")
        remote = wip.aton(host)
        iface = self.iface
        if remote == 0xFFFFFFFF or wip.is_multicast(remote) or remote == iface.directed_broadcast:
            raise OSError(errno.ENETUNREACH, "TCP needs a unicast destination")
        if iface.is_local(remote):
            local = remote if (remote >> 24) == 127 else iface.address
        else:
            iface.route(remote)  # ENETUNREACH now rather than after the SYN retries
            local = iface.address
        if local == 0:
            raise OSError(errno.EADDRNOTAVAIL, "the interface has no IPv4 address")
        if len(self._conns) >= self.max_connections:
            raise OSError(errno.EAGAIN, "too many TCP connections")
        if local_port:
            if (remote, port, local, local_port) in self._conns:
                raise OSError(errno.EADDRINUSE, "that 4-tuple is in use")
            lport = local_port
        else:
            lport = pick_ephemeral_port(
                self.rng, lambda p: (remote, port, local, p) in self._conns or p in self._listeners
            )
        now = iface.now
        iss = self.isn_source.isn(local, lport, remote, port, now)
        # each connection owns a copy: changing one (setsockopt) must not change the others
        conn = TcpConnection(self, local, lport, remote, port, (config or self.config).copy(), iss, now)
        self._conns[conn.key] = conn
        conn.open_active(now)
        return conn

    def listen(self, port: int, address: str = "", backlog: int = 128, *, config: TcpConfig | None = None,
               reuse_port: bool = False, max_half_open: int = 256) -> TcpListener:
        if not 0 <= port <= 65535:
            raise OverflowError("port must be 0-65535")
        if backlog < 1:
            backlog = 1
        addr = wip.aton(address) if address and address != "0.0.0.0" else 0
        if addr and addr != self.iface.address and (addr >> 24) != 127:
            raise OSError(errno.EADDRNOTAVAIL, f"{address} is not an address of this interface")
        if port == 0:
            port = pick_ephemeral_port(self.rng, lambda p: p in self._listeners)
        same = [lst for lst in self._listeners.get(port, []) if lst.address == addr]
        if same and not (reuse_port and all(lst.reuse_port for lst in same)):
            raise OSError(errno.EADDRINUSE, f"port {port} is already listened on at that address")
        lst = TcpListener(self, addr, port, backlog, config or self.config, reuse_port, max_half_open)
        self._listeners.setdefault(port, []).append(lst)
        return lst

    @property
    def connections(self) -> list[TcpConnection]:
        return list(self._conns.values())

    def __len__(self) -> int:
        return len(self._conns)

    # -- for connections -----------------------------------------------------------------

    def output(self, conn: TcpConnection, segment: bytearray, now: float, meta: bytes | None = None) -> None:
        if self.tracer is not None:
            self.tracer(f"{self.ends(conn)} {conn.state_name} --> {describe_bytes(segment)}")
        try:
            self.iface.send_ipv4(conn.remote, wip.PROTO_TCP, segment, now, src=conn.local,
                                 ttl=conn.config.ttl, tos=conn.config.tos, df=True, meta=meta)
        except OSError:
            self.iface.stats.drop("tcp_no_route")
            return
        self.iface.stats.tcp_tx += 1

    @staticmethod
    def ends(conn: TcpConnection) -> str:
        """``local:port>remote:port`` for trace lines."""
        return f"{wip.ntoa(conn.local)}:{conn.lport}>{wip.ntoa(conn.remote)}:{conn.rport}"

    def remove(self, conn: TcpConnection) -> None:
        if self._conns.get(conn.key) is conn:
            del self._conns[conn.key]
        parent = conn._accept_parent
        if isinstance(parent, TcpListener):
            parent._forget(conn)

    def challenge_ack_allowed(self, now: float) -> bool:
        rate = self._challenge_rate
        tokens = min(rate, self._challenge_tokens + (now - self._challenge_at) * rate)
        self._challenge_at = now
        if tokens < 1.0:
            self._challenge_tokens = tokens
            return False
        self._challenge_tokens = tokens - 1.0
        return True

    def send_rst(self, local: int, lport: int, remote: int, rport: int, seq: int, ack: int, flags: int,
                 now: float) -> None:
        if self.send_bare(local, lport, remote, rport, seq, ack, flags, now):
            self.iface.stats.drop("tcp_rst_sent")

    def send_bare(self, local: int, lport: int, remote: int, rport: int, seq: int, ack: int, flags: int,
                  now: float, *, window: int = 0, options: bytes = b"", ttl: int | None = None, tos: int = 0,
                  note: str = "") -> bool:
        """Send a segment that belongs to no connection (a RST, a SYN cookie's SYN-ACK);
        False if there is no route."""
        hl = 20 + len(options)
        seg = bytearray(_HDR.pack(lport, rport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, hl << 2, flags, window, 0, 0))
        seg += options
        c = checksum(seg, pseudo_header_sum(local, remote, wip.PROTO_TCP, hl))
        seg[16] = c >> 8
        seg[17] = c & 0xFF
        if self.tracer is not None and note:
            self.tracer(f"{wip.ntoa(local)}:{lport} LISTEN --> {describe_bytes(seg)} ({note})")
        try:
            self.iface.send_ipv4(remote, wip.PROTO_TCP, seg, now, src=local, ttl=ttl, tos=tos, df=True)
        except OSError:
            self.iface.stats.drop("tcp_no_route")
            return False
        self.iface.stats.tcp_tx += 1
        return True

    def send_rst_for(self, conn: TcpConnection, ack: int, now: float) -> None:
        self.send_rst(conn.local, conn.lport, conn.remote, conn.rport, ack, 0, RST, now)

    # -- input ---------------------------------------------------------------------------

    def _input(self, src: int, dst: int, seg: memoryview, now: float, trusted: bool) -> bool:
        st = self.iface.stats
        n = len(seg)
        if n < 20:
            st.drop("tcp_truncated")
            return True
        sport, dport, seq, ack, off, flags, wnd, _ck, _urg = _HDR.unpack_from(seg, 0)
        hl = (off >> 2) & 0x3C
        if hl < 20 or hl > n:
            st.drop("tcp_bad_data_offset")
            return True
        # RFC 9293 §3.1: the checksum covers the pseudo-header (written out here: it
        # runs for every segment) and the whole segment
        if not trusted and not valid(
            seg, (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF) + wip.PROTO_TCP + n
        ):
            st.drop("tcp_bad_checksum")
            return True
        if dst != self.iface.address and (dst >> 24) != 127:
            st.drop("tcp_not_unicast")  # RFC 1122 §4.2.3.10: no TCP to broadcast/multicast
            return True
        if not (sport and dport):
            st.drop("tcp_port_zero")
            return True
        st.tcp_rx += 1
        conn = self._conns.get((src, sport, dst, dport))
        if conn is not None:
            if self.tracer is None:
                conn.segment_arrives(seq, ack, flags, wnd, seg, hl, now)
            else:
                before = conn.state_name
                self.tracer(f"{self.ends(conn)} {before} <-- {describe(seq, ack, flags, wnd, n - hl)}")
                conn.segment_arrives(seq, ack, flags, wnd, seg, hl, now)
                if conn.state_name != before:
                    self.tracer(f"{self.ends(conn)} {before} -> {conn.state_name}")
            return True
        if flags & RST:
            st.drop("tcp_rst_no_connection")
            return True
        lst = self._find_listener(src, sport, dst, dport)
        if lst is not None:
            # RFC 9293 §3.10.7.2 (LISTEN)
            if flags & ACK:
                # RFC 4987 §3.6: unless it completes a handshake we answered with a SYN cookie
                if not (lst.syn_cookies and not flags & SYN
                        and lst._on_ack(src, sport, dst, seq, ack, flags, wnd, seg, hl, now)):
                    self.send_rst(dst, dport, src, sport, ack, 0, RST, now)
            elif flags & SYN:
                if self.tracer is not None:
                    self.tracer(f"{wip.ntoa(dst)}:{dport} LISTEN <-- {describe(seq, ack, flags, wnd, n - hl)}")
                lst._on_syn(src, sport, dst, seq, wnd, seg[20:hl], now)
            else:
                st.drop("tcp_listen_no_syn")
            return True
        # RFC 9293 §3.10.7.1: CLOSED — answer everything but a RST with a RST
        st.drop("tcp_no_socket")
        if flags & ACK:
            self.send_rst(dst, dport, src, sport, ack, 0, RST, now)
        else:
            seglen = n - hl + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
            self.send_rst(dst, dport, src, sport, 0, seq + seglen, RST | ACK, now)
        return True

    def _find_listener(self, src: int, sport: int, dst: int, dport: int) -> TcpListener | None:
        group = self._listeners.get(dport)
        if not group:
            return None
        exact = [lst for lst in group if lst.address == dst]
        pool = exact or [lst for lst in group if lst.address == 0]
        if not pool:
            return None
        if len(pool) == 1:
            return pool[0]
        h = hashlib.blake2s(f"{src}:{sport}".encode(), digest_size=4).digest()
        return pool[int.from_bytes(h, "big") % len(pool)]

    def _unlisten(self, lst: TcpListener) -> None:
        group = self._listeners.get(lst.port)
        if group and lst in group:
            group.remove(lst)
            if not group:
                del self._listeners[lst.port]

    def _icmp_error(self, icmp_type: int, code: int, quote: wicmp.QuotedDatagram, mtu: int, now: float) -> None:
        ports = quote.ports
        if ports is None:
            return
        conn = self._conns.get((quote.dst, ports[1], quote.src, ports[0]))
        if conn is None:
            return
        # RFC 5927 §4.1: the quoted sequence number must be in flight
        if len(quote.transport) >= 8:
            qseq = int.from_bytes(quote.transport[4:8], "big")
            s = unwrap(qseq, conn.snd_una)
            if not conn.snd_una <= s <= conn.snd_max:
                self.iface.stats.drop("tcp_icmp_out_of_window")
                return
        conn.icmp_error(icmp_type, code, mtu, now)

