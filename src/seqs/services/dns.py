"""A sans-IO DNS stub resolver (RFC 1035 §7, RFC 1123 §6.1.3) on a stack.

``Resolver(stack).query("www.example", "A")`` returns a :class:`DnsQuery` at
once; the query runs inside the stack's event processing (socket callbacks and
the stack's timer heap, no threads) and completes later: poll ``query.done``,
or set ``query.on_done`` (run from the stack's ready list, like a socket's
``on_event``).  ``query.result()`` then returns the values (addresses as text,
names without the final dot) or raises a :class:`DnsError` subclass:
:class:`NxDomain`, :class:`ServFail`, :class:`Refused`, :class:`DnsTimeout`,
:class:`CnameLoop`.  An empty list is a NOERROR answer with no data
("NODATA", RFC 2308 §2.2).

What it does, and where the rules come from:

* Each try uses a fresh UDP socket on a random ephemeral port and a random
  query ID, and a reply must come from the server's address and port, carry
  our ID and repeat our question (RFC 5452 §4, §9.1).  Anything else is
  dropped and counted in ``stack.stats.drops`` (``dns_bad_id``,
  ``dns_bad_question``, ``dns_malformed``, ...); malformed bytes never raise.
* Tries go round the servers, ``attempts`` times each, ``timeout`` seconds per
  try (resolv.conf's model).  The sockets of earlier tries stay open until the
  query ends, so a late answer to an earlier try still counts.  A server that
  answers SERVFAIL/REFUSED/NOTIMP is not asked again for this query; an ICMP
  port unreachable from it ends its try at once.
* A truncated answer (TC) is reported (``query.truncated``) and the question is
  asked again over seqs' own TCP, each message behind a two-byte length
  (RFC 1035 §4.2.2, RFC 7766 §5-§6).
* CNAMEs are followed (RFC 1034 §3.6.2), at most ``max_cname`` of them, and a
  chain that comes back to a name it has passed is a :class:`CnameLoop`.
  Only records on the chain are used or cached: answers about other names
  are ignored (RFC 5452 §6's "in-bailiwick" spirit for a stub resolver).
* EDNS(0) advertises ``edns_payload`` bytes (RFC 6891 §6.2.5); a FORMERR to an
  EDNS query is retried once without it (RFC 6891 §7).
* Answers are cached for their TTL (the smallest of the RRset, capped at
  ``max_ttl``; TTL 0 is not cached, RFC 1035 §3.2.1), NXDOMAIN and NODATA for
  the SOA's negative TTL when the authority section has one (RFC 2308 §5), in
  a least-recently-used table of at most ``cache_size`` entries; each entry
  pushed out to make room counts as ``dns_cache_evicted``.

API calls run at the stack's current time (``stack.iface.now``), like socket
calls; timers run from the stack's timer heap.  The servers are
``ResolverConfig.servers`` or, when that is None, ``stack.dns_servers`` read at
each query (so servers learnt from a DHCP lease later are used).
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from ..errors import ParseError, SeqsError
from ..iface.stats import Stats
from ..sockets.udp import UdpSocket
from ..stack import Stack
from ..tcp.connection import TcpConnection
from ..wire import dns as wdns
from ..wire.dns import DnsMessage, DnsView, Question, Record

__all__ = [
    "CnameLoop",
    "DnsCache",
    "DnsError",
    "DnsQuery",
    "DnsTimeout",
    "NxDomain",
    "Refused",
    "Resolver",
    "ResolverConfig",
    "ServFail",
]

_NXDOMAIN_KEY = 0  # cache key type for "this name does not exist", whatever the type


# -- errors ---------------------------------------------------------------------------------


class DnsError(SeqsError, OSError):
    """A query that failed.  ``rcode`` is the server's RCODE when it gave one."""

    rcode: int | None = None

    def __init__(self, message: str, *, name: str = "", qtype: int = 0, server: str | None = None,
                 rcode: int | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.qtype = qtype
        self.server = server
        if rcode is not None:
            self.rcode = rcode


class NxDomain(DnsError):
    """RCODE 3: the name does not exist (RFC 1035 §4.1.1)."""

    rcode = wdns.RCODE_NXDOMAIN


class ServFail(DnsError):
    """RCODE 2: the server could not answer (RFC 1035 §4.1.1)."""

    rcode = wdns.RCODE_SERVFAIL


class Refused(DnsError):
    """RCODE 5: the server will not answer us (RFC 1035 §4.1.1)."""

    rcode = wdns.RCODE_REFUSED


class DnsTimeout(DnsError, TimeoutError):
    """No usable answer from any server within the tries."""


class CnameLoop(DnsError):
    """A CNAME chain that comes back on itself, or is longer than allowed."""


_RCODE_ERRORS: dict[int, type[DnsError]] = {
    wdns.RCODE_SERVFAIL: ServFail, wdns.RCODE_NXDOMAIN: NxDomain, wdns.RCODE_REFUSED: Refused,
}
_RCODE_TEXT = {1: "format error", 2: "server failure", 3: "no such name", 4: "not implemented",
               5: "refused", 16: "bad EDNS version"}


def _rcode_error(rcode: int, name: str, qtype: int, server: str, via: str = "") -> DnsError:
    cls = _RCODE_ERRORS.get(rcode, DnsError)
    label = wdns.RCODE_NAMES.get(rcode, f"RCODE{rcode}")
    text = _RCODE_TEXT.get(rcode, "error")
    return cls(f"{name}{via}: {label} ({text}) from {server}", name=name, qtype=qtype, server=server,
               rcode=rcode)


# -- configuration and cache ----------------------------------------------------------------


@dataclass(slots=True)
class ResolverConfig:
    #: servers to ask, dotted quads; None: ``stack.dns_servers`` at each query
    servers: list[str] | None = None
    port: int = 53
    #: seconds to wait for an answer to one try (RFC 1123 §6.1.3.3 asks for a bounded wait)
    timeout: float = 2.0
    #: rounds over the server list before giving up (resolv.conf's "attempts")
    attempts: int = 2
    #: seconds a TCP fallback may take, connection included
    tcp_timeout: float = 5.0
    #: EDNS(0) UDP payload size to advertise (RFC 6891); None sends plain RFC 1035 queries
    edns_payload: int | None = 1232
    cache_size: int = 512
    #: answers are cached at most this long whatever their TTL says (RFC 8767 §4's cap)
    max_ttl: int = 86400
    #: CNAMEs followed per query at most (RFC 1034 §5.3.3 asks for a bound)
    max_cname: int = 8

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.tcp_timeout <= 0:
            raise ValueError("timeouts must be positive")
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.cache_size < 0 or self.max_ttl < 0 or self.max_cname < 0:
            raise ValueError("cache_size, max_ttl and max_cname must not be negative")
        if self.edns_payload is not None and not 512 <= self.edns_payload <= 65535:
            raise ValueError("edns_payload must be 512..65535")


@dataclass(frozen=True, slots=True)
class _Entry:
    expires: float
    #: the RRset; empty for a negative entry
    records: tuple[Record, ...]
    rcode: int = wdns.RCODE_NOERROR


class DnsCache:
    """RRsets by (name, type) until their TTL runs out; least recently used out first.

    ``hits``, ``misses`` and ``evictions`` (live entries pushed out to keep the
    table at ``size``; an expired entry that goes is not one) are counters a user
    can read.  With ``stats`` (the resolver passes its stack's), each eviction
    also counts as ``dns_cache_evicted`` in ``stats.drops``, where the other
    DNS drops are: a cache too small for its working set shows up there.
    """

    __slots__ = ("_entries", "_stats", "evictions", "hits", "max_ttl", "misses", "size")

    def __init__(self, size: int = 512, max_ttl: int = 86400, stats: Stats | None = None) -> None:
        self.size = size
        self.max_ttl = max_ttl
        self._entries: OrderedDict[tuple[str, int], _Entry] = OrderedDict()
        self._stats = stats
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, name: str, rtype: int, records: tuple[Record, ...], ttl: int, now: float,
            rcode: int = wdns.RCODE_NOERROR) -> None:
        ttl = min(ttl, self.max_ttl)
        if ttl <= 0 or self.size == 0:
            return  # RFC 1035 §3.2.1: TTL 0 means use once, do not cache
        key = (wdns.name_key(name), rtype)
        self._entries[key] = _Entry(now + ttl, records, rcode)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
            self.evictions += 1
            if self._stats is not None:
                self._stats.drop("dns_cache_evicted")

    def get(self, name: str, rtype: int, now: float) -> _Entry | None:
        key = (wdns.name_key(name), rtype)
        e = self._entries.get(key)
        if e is None:
            return None
        if e.expires <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return e

    def clear(self) -> None:
        self._entries.clear()


# -- the resolver ---------------------------------------------------------------------------


class Resolver:
    """Queries and the cache they share, on one stack."""

    def __init__(self, stack: Stack, config: ResolverConfig | None = None) -> None:
        self.stack = stack
        self.config = config or ResolverConfig()
        self.cache = DnsCache(self.config.cache_size, self.config.max_ttl, stack.stats)
        #: queries not yet done
        self.active: set[DnsQuery] = set()

    @property
    def servers(self) -> list[str]:
        s = self.config.servers
        return list(s if s is not None else self.stack.dns_servers)

    def query(self, name: str, rtype: str | int = "A", *,
              on_done: Callable[[DnsQuery], None] | None = None) -> DnsQuery:
        """Start resolving ``name``.  For PTR an IPv4/IPv6 address is turned into its
        reverse name; for A/AAAA an address literal of that family answers itself.

        ValueError for a malformed name or type, or when no server is configured.
        """
        qtype = wdns.type_code(rtype)
        literal = _address(name)
        if qtype == wdns.TYPE_PTR and literal is not None:
            name = wdns.reverse_name(name)
        name = wdns.decode_name(wdns.encode_name(name))  # ValueError now, and one spelling
        q = DnsQuery(self, name, qtype, on_done)
        if (qtype == wdns.TYPE_A and isinstance(literal, ipaddress.IPv4Address)) or (
                qtype == wdns.TYPE_AAAA and isinstance(literal, ipaddress.IPv6Address)):
            q.from_cache = True
            rec = (Record.a if qtype == wdns.TYPE_A else Record.aaaa)(name, name, 0)
            q._finish(None, (rec,))
            return q
        servers = self.servers
        if not servers:
            raise ValueError("no DNS servers configured (pass servers or set stack.dns_servers)")
        for s in servers:
            ipaddress.IPv4Address(s)  # AddressValueError (a ValueError) for a typo
        q._servers = servers
        self.active.add(q)
        q._begin(self.stack.iface.now)
        return q

    def close(self) -> None:
        """Cancel every query still running."""
        for q in list(self.active):
            q.cancel()


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@dataclass(slots=True, eq=False)
class _Try:
    """One question sent to one server: over UDP (``sock``) or TCP (``conn``)."""

    server: str
    ident: int
    edns: bool
    sock: UdpSocket | None = None
    conn: TcpConnection | None = None
    tcp_in: bytearray = field(default_factory=bytearray)
    tcp_sent: bool = False


class DnsQuery:
    """One resolution in progress; see the module docstring.

    Readable at any time: ``done``, ``error``, ``values``, ``records``, ``chain``
    (the CNAME targets followed, in order), ``truncated`` (a truncated answer
    was received), ``via_tcp`` (the answer came over TCP), ``from_cache``,
    ``server`` (which one answered) and ``tries`` (UDP tries made for the
    current name; a TCP fallback is part of the try that was truncated).
    """

    __slots__ = (
        "_current", "_deadline", "_event_queued", "_failed", "_last_error", "_rotation", "_seen",
        "_servers", "_tries", "chain", "done", "error", "from_cache", "name", "on_done", "qtype",
        "records", "resolver", "server", "timer_armed", "tries", "truncated", "values", "via_tcp",
    )

    def __init__(self, resolver: Resolver, name: str, qtype: int,
                 on_done: Callable[[DnsQuery], None] | None) -> None:
        self.resolver = resolver
        self.name = name
        self.qtype = qtype
        self.on_done = on_done
        self.done = False
        self.error: DnsError | None = None
        self.records: list[Record] = []
        self.values: list[str] = []
        self.chain: list[str] = []
        self.truncated = False
        self.via_tcp = False
        self.from_cache = False
        self.server: str | None = None
        self.tries = 0
        self.timer_armed: float | None = None
        self._servers: list[str] = []
        self._current = name
        self._seen = {wdns.name_key(name)}
        self._tries: list[_Try] = []
        self._failed: set[str] = set()
        self._rotation = 0
        self._last_error: DnsError | None = None
        self._deadline: float | None = None
        self._event_queued = False

    def __repr__(self) -> str:
        state = "pending" if not self.done else (repr(self.error) if self.error else repr(self.values))
        return f"<DnsQuery {self.name} {wdns.type_name(self.qtype)} {state}>"

    # -- user API -----------------------------------------------------------------------

    def result(self) -> list[str]:
        """The answer's values; raises the query's DnsError, or RuntimeError if not done."""
        if not self.done:
            raise RuntimeError("DNS query still running")
        if self.error is not None:
            raise self.error
        return list(self.values)

    def cancel(self) -> None:
        """Stop the query; it completes with a DnsError ("cancelled")."""
        if not self.done:
            self._finish(DnsError(f"{self.name}: query cancelled", name=self.name, qtype=self.qtype))

    # -- timer owner (seqs.iface.timers) ------------------------------------------------

    def deadline(self) -> float | None:
        return self._deadline

    def on_timer(self, now: float) -> None:
        if self.done or self._deadline is None or now < self._deadline:
            return
        self._deadline = None
        cur = self._tries[-1] if self._tries else None
        if cur is not None and cur.conn is not None:
            self._drop_tcp(cur)
            self._last_error = DnsTimeout(f"{self._current}: TCP to {cur.server} timed out",
                                          name=self.name, qtype=self.qtype, server=cur.server)
        self._next_try(now)

    def _arm(self, when: float | None) -> None:
        self._deadline = when
        if when is not None:
            self.resolver.stack.iface.timers.update(self)

    # -- flow -------------------------------------------------------------------------------

    def _begin(self, now: float) -> None:
        if not self._from_cache(now):
            self._next_try(now)

    def _from_cache(self, now: float) -> bool:
        """Answer (or move along the CNAME chain) from the cache; True if that finished the query."""
        cache = self.resolver.cache
        name = self._current
        while True:
            e = cache.get(name, self.qtype, now)
            if e is not None:
                cache.hits += 1
                self.from_cache = not self._tries_made()
                self._finish(None, e.records)
                return True
            if cache.get(name, _NXDOMAIN_KEY, now) is not None:
                cache.hits += 1
                self.from_cache = not self._tries_made()
                self._finish(_rcode_error(wdns.RCODE_NXDOMAIN, self.name, self.qtype, "cache", self._via(name)))
                return True
            e = cache.get(name, wdns.TYPE_CNAME, now) if self.qtype != wdns.TYPE_CNAME else None
            if e is None or not e.records:
                cache.misses += 1
                self._current = name
                return False
            cache.hits += 1
            target = e.records[0].target
            if not self._follow(target):
                return True
            name = target

    def _tries_made(self) -> bool:
        return bool(self._tries) or self.tries > 0 or self.server is not None

    def _via(self, name: str) -> str:
        return "" if wdns.name_key(name) == wdns.name_key(self.name) else f" (via CNAME {name})"

    def _follow(self, target: str) -> bool:
        """Step along a CNAME; False (and the query finished) on a loop or an overlong chain."""
        key = wdns.name_key(target)
        if key in self._seen:
            self._finish(CnameLoop(f"{self.name}: CNAME loop at {target}", name=self.name, qtype=self.qtype))
            return False
        if len(self.chain) >= self.resolver.config.max_cname:
            self._finish(CnameLoop(f"{self.name}: more than {self.resolver.config.max_cname} CNAMEs",
                                   name=self.name, qtype=self.qtype))
            return False
        self._seen.add(key)
        self.chain.append(target)
        return True

    def _next_try(self, now: float) -> None:
        """Send the question to the next server in turn, or give up."""
        cfg = self.resolver.config
        servers = self._servers
        while not self.done:
            limit = cfg.attempts * len(servers)
            candidates = [s for s in servers if s not in self._failed]
            if self.tries >= limit or not candidates:
                err = self._last_error or DnsTimeout(
                    f"{self.name}: no answer after {self.tries} tries (servers {', '.join(servers)})",
                    name=self.name, qtype=self.qtype)
                self._finish(err)
                return
            server = servers[self._rotation % len(servers)]
            self._rotation += 1
            if server in self._failed:
                continue
            self.tries += 1
            if self._send_udp(server, cfg.edns_payload is not None, now):
                return

    def _new_ident(self) -> int:
        return self.resolver.stack.iface.rng.getrandbits(16)  # RFC 5452 §4.3: unpredictable IDs

    def _question_bytes(self, t: _Try) -> bytes:
        edns = self.resolver.config.edns_payload if t.edns else None
        return DnsMessage.query(t.ident, self._current, self.qtype, edns_payload=edns).emit()

    def _send_udp(self, server: str, edns: bool, now: float) -> bool:
        """One UDP try on a new socket (RFC 5452 §4.5: a random source port per query)."""
        stack = self.resolver.stack
        t = _Try(server, self._new_ident(), edns)
        sock = stack.udp_socket()
        try:
            sock.connect((server, self.resolver.config.port))
            sock.send(self._question_bytes(t))
        except OSError as e:
            sock.close()
            self._last_error = DnsError(f"{self.name}: cannot send to {server}: {e.strerror or e}",
                                        name=self.name, qtype=self.qtype, server=server)
            return False
        t.sock = sock
        sock.on_event = partial(self._on_udp, t)
        self._tries.append(t)
        self._arm(now + self.resolver.config.timeout)
        return True

    def _on_udp(self, t: _Try) -> None:
        sock = t.sock
        if sock is None or self.done:
            return
        stats = self.resolver.stack.stats
        while sock is t.sock and not self.done:
            try:
                got = sock.recvfrom()
            except OSError:
                # RFC 1122 §4.1.3.3: ICMP port unreachable for our datagram: no server there.
                stats.drop("dns_server_unreachable")
                self._last_error = DnsError(f"{self.name}: {t.server} port {self.resolver.config.port} "
                                            "unreachable", name=self.name, qtype=self.qtype, server=t.server)
                self._try_failed(t, self.resolver.stack.iface.now)
                return
            if got is None:
                return
            self._response(t, got[0], False)

    def _response(self, t: _Try, data: bytes, via_tcp: bool) -> None:
        """Check a reply against what we asked (RFC 5452 §9.1) and act on it."""
        stats = self.resolver.stack.stats
        now = self.resolver.stack.iface.now
        try:
            view = DnsView(data)
            if not view.qr or view.opcode != 0:
                stats.drop("dns_not_response")
                return
            if view.id != t.ident:
                stats.drop("dns_bad_id")
                return
            questions, _ = view.questions()
        except ParseError as e:
            stats.drop(e.reason if e.reason.startswith("dns_") else "dns_malformed")
            return
        asked = Question(self._current, self.qtype)
        # Some servers drop the question from an error reply; an RCODE-only reply can do
        # no more harm than a lost one (we just try elsewhere), so accept it without.
        bare_error = not questions and view.rcode not in (wdns.RCODE_NOERROR, wdns.RCODE_NXDOMAIN)
        if (len(questions) != 1 or not questions[0].matches(asked)) and not bare_error:
            stats.drop("dns_bad_question")
            return
        if view.tc and not via_tcp:
            # RFC 7766 §5: a truncated answer is asked again over TCP.
            self.truncated = True
            self._start_tcp(t.server, t.edns, now)
            return
        try:
            msg = DnsMessage.parse(data)
        except ParseError as e:
            stats.drop(e.reason if e.reason.startswith("dns_") else "dns_malformed")
            return
        self._answer(t, msg, via_tcp, now)

    def _answer(self, t: _Try, msg: DnsMessage, via_tcp: bool, now: float) -> None:
        rcode = msg.rcode
        if rcode == wdns.RCODE_FORMERR and t.edns and msg.opt is None:
            # RFC 6891 §7: a server without EDNS may answer FORMERR; ask it again without.
            self._close_try(t)
            if not self._send_udp(t.server, False, now):
                self._next_try(now)
            return
        if rcode == wdns.RCODE_NXDOMAIN:
            self.server = t.server
            self.via_tcp = via_tcp
            # The server may have followed CNAMEs to the missing name: cache those links too.
            missing = self._walk(msg, now)
            self.resolver.cache.put(missing, _NXDOMAIN_KEY, (), _negative_ttl(msg), now, rcode)
            self._finish(_rcode_error(rcode, self.name, self.qtype, t.server, self._via(missing)))
            return
        if rcode != wdns.RCODE_NOERROR:
            self._failed.add(t.server)
            self._last_error = _rcode_error(rcode, self.name, self.qtype, t.server, self._via(self._current))
            self._try_failed(t, now)
            return
        self.server = t.server
        self.via_tcp = via_tcp
        before = self._current
        end = self._walk(msg, now)
        if self.done:
            return
        data = [r for r in msg.answers if self._on_chain(r, end, self.qtype)]
        if data:
            ttl = min(r.ttl for r in data)
            self.resolver.cache.put(end, self.qtype, tuple(data), ttl, now)
            self._finish(None, data)
            return
        if wdns.name_key(end) != wdns.name_key(before) and not msg.ra:
            # The chain leads to a name this (non-recursive) server did not answer for:
            # ask about the target (RFC 1034 §5.3.3 step 3).
            self._restart(end, now)
            return
        self.resolver.cache.put(end, self.qtype, (), _negative_ttl(msg), now)
        self._finish(None, ())

    def _on_chain(self, r: Record, name: str, rtype: int) -> bool:
        return r.cls == wdns.CLASS_IN and r.type == rtype and wdns.name_key(r.name) == wdns.name_key(name)

    def _walk(self, msg: DnsMessage, now: float) -> str:
        """Follow the CNAMEs in the answer from the current name; return where the chain ends.

        Caches each link.  May finish the query (a loop, an overlong chain).
        """
        name = self._current
        if self.qtype == wdns.TYPE_CNAME:
            return name
        while not self.done:
            if any(self._on_chain(r, name, self.qtype) for r in msg.answers):
                return name
            link = next((r for r in msg.answers if self._on_chain(r, name, wdns.TYPE_CNAME)), None)
            if link is None:
                return name
            try:
                target = link.target
            except ParseError:
                return name
            self.resolver.cache.put(name, wdns.TYPE_CNAME, (link,), link.ttl, now)
            if not self._follow(target):
                return name
            name = target
        return name

    def _restart(self, name: str, now: float) -> None:
        self._close_all()
        self._current = name
        self.tries = 0
        self._failed.clear()
        self._last_error = None
        self._arm(None)
        if not self._from_cache(now):
            self._next_try(now)

    # -- TCP fallback (RFC 7766) ------------------------------------------------------------

    def _start_tcp(self, server: str, edns: bool, now: float) -> None:
        self._close_all()  # committed to TCP: later UDP answers would be truncated too
        t = _Try(server, self._new_ident(), edns)
        try:
            t.conn = self.resolver.stack.tcp_connect((server, self.resolver.config.port))
        except OSError as e:
            self._last_error = DnsError(f"{self.name}: cannot connect to {server}: {e.strerror or e}",
                                        name=self.name, qtype=self.qtype, server=server)
            self._next_try(now)
            return
        t.conn.on_event = partial(self._on_tcp, t)
        self._tries.append(t)
        self._arm(now + self.resolver.config.tcp_timeout)

    def _on_tcp(self, t: _Try) -> None:
        conn = t.conn
        if conn is None or self.done:
            return
        now = self.resolver.stack.iface.now
        eof = False
        try:
            if not t.tcp_sent and conn.established:
                q = self._question_bytes(t)
                # RFC 1035 §4.2.2: the message behind its length, as two bytes.
                conn.send(len(q).to_bytes(2, "big") + q)
                t.tcp_sent = True
            while (chunk := conn.recv()) is not None:
                if not chunk:
                    eof = True
                    break
                t.tcp_in += chunk
                if len(t.tcp_in) > 2 + 65535:
                    break
        except OSError as e:
            self._tcp_failed(t, f"TCP to {t.server}: {e.strerror or e}", now)
            return
        buf = t.tcp_in
        if len(buf) >= 2 and len(buf) >= 2 + int.from_bytes(buf[:2], "big"):
            n = int.from_bytes(buf[:2], "big")
            reply = bytes(buf[2 : 2 + n])
            del buf[: 2 + n]
            self._response(t, reply, True)
            if self.done:
                return
        if eof or conn.closed:
            self._tcp_failed(t, f"{t.server} closed the TCP connection without an answer", now)

    def _tcp_failed(self, t: _Try, why: str, now: float) -> None:
        self.resolver.stack.stats.drop("dns_tcp_failed")
        self._drop_tcp(t)
        self._last_error = DnsError(f"{self.name}: {why}", name=self.name, qtype=self.qtype, server=t.server)
        self._arm(None)
        self._next_try(now)

    def _drop_tcp(self, t: _Try) -> None:
        conn = t.conn
        if conn is not None:
            t.conn = None
            conn.on_event = None
            if not conn.closed:
                conn.abort()

    # -- ending ---------------------------------------------------------------------------

    def _close_try(self, t: _Try) -> None:
        if t.sock is not None:
            t.sock.on_event = None
            t.sock.close()
            t.sock = None
        if t.conn is not None:
            conn, t.conn = t.conn, None
            conn.on_event = None
            conn.close()  # graceful: we have what we wanted (RFC 7766 §6.2.1: the client closes)

    def _try_failed(self, t: _Try, now: float) -> None:
        """``t`` will not be answered: move on now if it was the newest try (older ones
        may still be answered until the deadline)."""
        newest = bool(self._tries) and t is self._tries[-1]
        self._close_try(t)
        if newest or not any(x.sock is not None or x.conn is not None for x in self._tries):
            self._next_try(now)

    def _close_all(self) -> None:
        for t in self._tries:
            self._close_try(t)
        self._tries = []

    def _finish(self, error: DnsError | None, records: tuple[Record, ...] | list[Record] = ()) -> None:
        if self.done:
            return
        self.done = True
        self.error = error
        self.records = list(records)
        self.values = [r.value for r in self.records]
        self._close_all()
        self._deadline = None
        self.resolver.active.discard(self)
        if not self._event_queued:
            self._event_queued = True
            self.resolver.stack.iface.ready.append(self._fire)

    def _fire(self) -> None:
        self._event_queued = False
        cb = self.on_done
        if cb is not None:
            cb(self)


def _negative_ttl(msg: DnsMessage) -> int:
    """RFC 2308 §5: the SOA in the authority section bounds a negative answer's life."""
    for rr in msg.authority:
        if rr.type == wdns.TYPE_SOA:
            try:
                return rr.soa_negative_ttl
            except ParseError:
                return 0
    return 0
