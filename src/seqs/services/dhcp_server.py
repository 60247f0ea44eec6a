"""A DHCP server (RFC 2131 §4.3) for the interface's own subnet, sans-IO.

Read RFC 2131 §4.3 (what the server does with each message), §4.1 (where
replies go) and §3.1-§3.2 (the exchanges), and RFC 2132 for the options.

What it owns: an address pool (a range inside the interface's subnet), static
reservations by MAC, the binding table (client → address, offered or bound,
with an expiry), addresses held back after a DHCPDECLINE, and counters.  It
serves on a UDP socket bound to port 67 and uses the interface's ARP cache to
deliver a unicast reply to a client that has no address yet (RFC 2131 §4.1).
Persistence is text in, text out (:meth:`to_json`, :meth:`load_json`): the
program that runs the server reads and writes the file.

Memory is bounded by the pool: every binding holds one address of the pool
(or a reservation), so the table never has more entries than there are
addresses.  Offers that are not taken up expire after ``offer_timeout`` and
their addresses return to the pool, so a flood of DISCOVERs from random MACs
fills the pool for at most that long; while the pool is empty a DISCOVER gets
no OFFER (RFC 2131 §4.3.1 lets a server stay silent, and defines no DHCPNAK
for a DISCOVER) and counts as ``dhcp_pool_exhausted``.  The start and the end
of such a spell, not each DISCOVER, are reported to ``on_exhausted(True/False)``
(``seqs up`` logs them once as a warning; logging is the program's business,
not this module's).  Relayed requests (``giaddr`` set) are not served.
Time arrives as an argument (``on_timer(now)``) or as the interface's latest
``now`` when a request is read; wall-clock time only at the JSON boundary.
"""

from __future__ import annotations

import heapq
import itertools
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import ParseError
from ..stack import Stack
from ..wire import dhcp as wd
from ..wire import ethernet as weth
from ..wire import ipv4 as wip

__all__ = ["DhcpServer", "DhcpServerConfig", "ServerLease"]

OFFERED = "offered"
BOUND = "bound"


@dataclass(slots=True)
class DhcpServerConfig:
    #: the pool, inclusive, inside the interface's subnet (dotted quads)
    pool_start: str
    pool_end: str
    #: seconds; RFC 2131 §3.3
    lease_time: int = 3600
    #: T1/T2 in seconds; None: 0.5 and 0.875 of the lease (RFC 2131 §4.4.5)
    renewal_time: int | None = None
    rebinding_time: int | None = None
    #: None: the interface's netmask
    subnet_mask: str | None = None
    routers: tuple[str, ...] = ()
    dns_servers: tuple[str, ...] = ()
    ntp_servers: tuple[str, ...] = ()
    domain_name: str | None = None
    mtu: int | None = None
    #: MAC ("02:00:00:00:00:05") -> address, served to that MAC only
    reservations: dict[str, str] = field(default_factory=dict)
    #: how long an offered address is held for the client (RFC 2131 §4.3.1 lets the
    #: server choose); short, so that offers nobody takes up return to the pool soon
    offer_timeout: float = 30.0
    #: how long an address a client declined (RFC 2131 §4.3.3) stays out of the pool
    decline_hold: float = 600.0
    #: largest pool accepted (memory is proportional to it)
    max_pool: int = 65536


@dataclass(frozen=True, slots=True)
class ServerLease:
    """One row of the binding table, for users and tests."""

    mac: str
    address: str
    state: str
    expires_at: float
    client_id: str | None = None
    hostname: str | None = None


class _Binding:
    __slots__ = ("client_id", "expires", "hostname", "ip", "key", "mac", "seq", "state")

    def __init__(self, key: bytes, mac: bytes, client_id: bytes | None, ip: int, state: str,
                 expires: float) -> None:
        self.key = key
        self.mac = mac
        self.client_id = client_id
        self.ip = ip
        self.state = state
        self.expires = expires
        self.hostname: str | None = None
        self.seq = 0  # identifies this binding's live entry in the expiry heap


def _key(mac: bytes, client_id: bytes | None) -> bytes:
    # RFC 2131 §4.2: a client is its client identifier if it sends one, else its chaddr.
    return b"C" + client_id if client_id else b"M" + mac


class DhcpServer:
    """Serve DHCP on ``stack``'s interface (which must have an address)."""

    COUNTERS = ("discover", "offer", "request", "ack", "nak", "decline", "release", "inform", "exhausted",
                "ignored", "expired")

    def __init__(self, stack: Stack, config: DhcpServerConfig,
                 on_change: Callable[[], None] | None = None,
                 on_exhausted: Callable[[bool], None] | None = None) -> None:
        iface = stack.iface
        if not iface.address:
            raise ValueError("a DHCP server needs an interface address")
        self.stack = stack
        self.iface = iface
        self.config = config
        #: called after the set of bound leases changed (to persist them)
        self.on_change = on_change
        #: called with True when a DISCOVER first finds the pool empty, and with False
        #: when an address returns to it (once per spell, however many DISCOVERs)
        self.on_exhausted = on_exhausted
        #: the pool is empty and DISCOVERs are going unanswered
        self.exhausted = False
        self.counts: dict[str, int] = dict.fromkeys(self.COUNTERS, 0)
        self.timer_armed: float | None = None
        self._address = iface.address
        self._mask = wip.aton(config.subnet_mask) if config.subnet_mask else iface.netmask
        net = self._address & self._mask
        start, end = wip.aton(config.pool_start), wip.aton(config.pool_end)
        if end < start:
            raise ValueError("DHCP pool: the end comes before the start")
        if end - start + 1 > config.max_pool:
            raise ValueError(f"DHCP pool larger than {config.max_pool} addresses")
        if start & self._mask != net or end & self._mask != net:
            raise ValueError("DHCP pool is not inside the interface's subnet")
        if config.lease_time < 1:
            raise ValueError("lease time must be at least 1 s")
        self._reserved: dict[bytes, int] = {}
        for mac, ip in config.reservations.items():
            addr = wip.aton(ip)
            if addr & self._mask != net:
                raise ValueError(f"reservation {ip} is not inside the interface's subnet")
            self._reserved[weth.parse_mac(mac)] = addr
        self._reserved_ips = set(self._reserved.values())
        self._broadcast = net | (~self._mask & 0xFFFFFFFF)
        taken = {self._address, net, self._broadcast, *self._reserved_ips}
        taken.update(wip.aton(r) for r in config.routers)
        self._pool = [ip for ip in range(start, end + 1) if ip not in taken]
        self._pool_set = frozenset(self._pool)
        # Free addresses in least-recently-used order: a deque with lazy deletion
        # (an address taken out of turn stays in the deque, absent from the set).
        self._free: deque[int] = deque(self._pool)
        self._free_set: set[int] = set(self._pool)
        self._by_key: dict[bytes, _Binding] = {}
        self._by_ip: dict[int, _Binding] = {}
        self._declined: deque[tuple[float, int]] = deque()
        self._declined_set: set[int] = set()
        self._expiry: list[tuple[float, int, bytes]] = []  # (when, seq, key), lazily validated
        self._seq = itertools.count(1)
        self.sock = stack.udp_socket()
        self.sock.broadcast = True
        self.sock.bind(("", wd.SERVER_PORT))
        self.sock.on_event = self._on_readable

    # -- API -------------------------------------------------------------------------

    @property
    def pool_size(self) -> int:
        return len(self._pool)

    @property
    def free(self) -> int:
        """Addresses of the pool available for a new client now."""
        return len(self._free_set)

    def __len__(self) -> int:
        """Bindings (offered and bound) in the table."""
        return len(self._by_key)

    def leases(self) -> list[ServerLease]:
        return [
            ServerLease(weth.mac_to_str(b.mac), wip.ntoa(b.ip), b.state, b.expires,
                        b.client_id.hex() if b.client_id else None, b.hostname)
            for b in sorted(self._by_ip.values(), key=lambda b: b.ip)
        ]

    def close(self) -> None:
        self.sock.close()

    def to_json(self, now: float, wall: float) -> str:
        """The bound leases as JSON, expiry in wall-clock seconds (``wall`` is the wall
        clock at ``now``), so they survive a restart."""
        rows = [
            {"mac": weth.mac_to_str(b.mac), "client_id": b.client_id.hex() if b.client_id else None,
             "address": wip.ntoa(b.ip), "hostname": b.hostname, "expires": round(wall + (b.expires - now), 3)}
            for b in sorted(self._by_ip.values(), key=lambda b: b.ip) if b.state == BOUND and b.expires > now
        ]
        return json.dumps({"version": 1, "leases": rows}, indent=1)

    def load_json(self, text: str, now: float, wall: float) -> int:
        """Restore leases saved by :meth:`to_json`; returns how many were taken.  Leases
        already expired, outside the pool or clashing with a binding are skipped.
        Raises ValueError if ``text`` is not such a document."""
        doc = json.loads(text)
        if not isinstance(doc, dict) or not isinstance(doc.get("leases"), list):
            raise ValueError("not a seqs DHCP lease file")
        loaded = 0
        for row in doc["leases"]:
            try:
                mac = weth.parse_mac(row["mac"])
                cid = bytes.fromhex(row["client_id"]) if row.get("client_id") else None
                ip = wip.aton(row["address"])
                remaining = float(row["expires"]) - wall
                hostname = row.get("hostname")
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"bad lease entry {row!r}: {e}") from None
            key = _key(mac, cid)
            usable = ip in self._free_set or self._reserved.get(mac) == ip
            if remaining <= 0 or not usable or key in self._by_key or ip in self._by_ip:
                continue
            self._free_set.discard(ip)
            b = self._add(key, mac, cid, ip, BOUND, now + remaining)
            b.hostname = hostname if isinstance(hostname, str) else None
            loaded += 1
        self._update_timer()
        return loaded

    # -- timer owner -----------------------------------------------------------------

    def deadline(self) -> float | None:
        times = []
        if self._expiry:
            times.append(self._expiry[0][0])
        if self._declined:
            times.append(self._declined[0][0])
        return min(times) if times else None

    def on_timer(self, now: float) -> None:
        changed = False
        heap = self._expiry
        while heap and heap[0][0] <= now:
            _, seq, key = heapq.heappop(heap)
            b = self._by_key.get(key)
            if b is None or b.seq != seq:
                continue  # the binding went away or was re-queued
            if b.expires > now:
                self._queue(b)
                continue
            # Offers nobody took up and leases nobody renewed return to the pool.
            changed |= b.state == BOUND
            self.counts["expired"] += 1
            self._remove(b)
        while self._declined and self._declined[0][0] <= now:
            _, ip = self._declined.popleft()
            self._declined_set.discard(ip)
            self._release_ip(ip)
        if changed and self.on_change is not None:
            self.on_change()

    def _update_timer(self) -> None:
        self.iface.timers.update(self)

    # -- the table -------------------------------------------------------------------

    def _add(self, key: bytes, mac: bytes, cid: bytes | None, ip: int, state: str, expires: float) -> _Binding:
        b = _Binding(key, mac, cid, ip, state, expires)
        self._by_key[key] = b
        self._by_ip[ip] = b
        self._queue(b)
        return b

    def _queue(self, b: _Binding) -> None:
        b.seq = next(self._seq)
        heapq.heappush(self._expiry, (b.expires, b.seq, b.key))
        if len(self._expiry) > 2 * len(self._by_key) + 64:
            # Stale entries of removed bindings: rebuild rather than let them pile up.
            self._expiry = [(x.expires, x.seq, x.key) for x in self._by_key.values()]
            heapq.heapify(self._expiry)

    def _remove(self, b: _Binding) -> None:
        if self._by_key.get(b.key) is b:
            del self._by_key[b.key]
        if self._by_ip.get(b.ip) is b:
            del self._by_ip[b.ip]
            self._release_ip(b.ip)

    def _release_ip(self, ip: int) -> None:
        if ip in self._pool_set and ip not in self._declined_set and ip not in self._by_ip \
                and ip not in self._free_set:
            self._free_set.add(ip)
            self._free.append(ip)
            if self.exhausted:
                self._set_exhausted(False)
            if len(self._free) > 2 * len(self._pool) + 64:
                # Drop stale and repeated entries, keeping each address's latest place.
                latest = {ip: i for i, ip in enumerate(self._free) if ip in self._free_set}
                self._free = deque(sorted(latest, key=latest.__getitem__))

    def _set_exhausted(self, exhausted: bool) -> None:
        self.exhausted = exhausted
        if self.on_exhausted is not None:
            self.on_exhausted(exhausted)

    def _take_free(self) -> int | None:
        while self._free:
            ip = self._free.popleft()
            if ip in self._free_set:
                self._free_set.discard(ip)
                return ip
        return None

    def _choose(self, mac: bytes, requested: int | None) -> int | None:
        """An address for a new client (RFC 2131 §4.3.1): its reservation, else the
        address it asks for if free, else the least recently used free one."""
        reserved = self._reserved.get(mac)
        if reserved is not None:
            holder = self._by_ip.get(reserved)
            if holder is not None:
                if holder.mac != mac:
                    return None
                self._remove(holder)  # the same machine under another client identifier
            return reserved
        if requested is not None and requested in self._free_set:
            self._free_set.discard(requested)
            return requested
        return self._take_free()

    # -- requests --------------------------------------------------------------------

    def _on_readable(self) -> None:
        while True:
            try:
                got = self.sock.recvfrom()
            except OSError:
                continue
            if got is None:
                return
            self._on_message(got[0], self.iface.now)

    def _on_message(self, data: bytes, now: float) -> None:
        st = self.iface.stats
        try:
            msg = wd.DhcpMessage.parse(data)
        except ParseError as e:
            st.drop(e.reason)
            return
        if msg.op != wd.OP_REQUEST:
            st.drop("dhcp_not_a_request")
            return
        if msg.chaddr[0] & 1 or msg.chaddr == bytes(6):
            st.drop("dhcp_bad_chaddr")
            return
        if msg.giaddr:
            st.drop("dhcp_relay_unsupported")
            return
        mtype = msg.message_type
        if mtype == wd.DISCOVER:
            self._discover(msg, now)
        elif mtype == wd.REQUEST:
            self._request(msg, now)
        elif mtype == wd.DECLINE:
            self._decline(msg, now)
        elif mtype == wd.RELEASE:
            self._release(msg, now)
        elif mtype == wd.INFORM:
            self._inform(msg)
        else:
            st.drop("dhcp_unexpected_message")
        self._update_timer()

    def _ignore(self, reason: str) -> None:
        self.counts["ignored"] += 1
        self.iface.stats.drop(reason)

    def _discover(self, msg: wd.DhcpMessage, now: float) -> None:
        self.counts["discover"] += 1
        o = msg.options
        key = _key(msg.chaddr, o.client_id)
        b = self._by_key.get(key)
        if b is None:
            ip = self._choose(msg.chaddr, o.requested_address)
            if ip is None:
                # RFC 2131 §4.3.1: with no address available the server may report the
                # problem to the administrator; it sends no OFFER, and there is no DHCPNAK
                # for a DISCOVER. Count each one; report the spell once (on_exhausted).
                self.counts["exhausted"] += 1
                self.iface.stats.drop("dhcp_pool_exhausted")
                if not self.exhausted and not self._free_set:
                    self._set_exhausted(True)
                return
            b = self._add(key, msg.chaddr, o.client_id, ip, OFFERED, now + self.config.offer_timeout)
        elif b.state == OFFERED:
            b.expires = now + self.config.offer_timeout  # the heap entry re-queues itself
        self.counts["offer"] += 1
        self._reply(msg, wd.OFFER, b.ip, now)

    def _request(self, msg: wd.DhcpMessage, now: float) -> None:
        self.counts["request"] += 1
        o = msg.options
        key = _key(msg.chaddr, o.client_id)
        b = self._by_key.get(key)
        sid, req, ciaddr = o.server_id, o.requested_address, msg.ciaddr
        if sid is not None:
            # SELECTING (RFC 2131 §4.3.2): the client answers one server's offer.
            if sid != self._address:
                if b is not None and b.state == OFFERED:
                    self._remove(b)  # it chose another server: our offer is free again
                self._ignore("dhcp_request_for_other_server")
                return
            if b is not None and req == b.ip and not ciaddr:
                self._bind(b, msg, now)
            else:
                self._nak(msg, "address not offered to you")
            return
        if req is not None and not ciaddr:
            # INIT-REBOOT (RFC 2131 §4.3.2): NAK if the address is wrong for this network or
            # someone else's; without a record of the client, stay silent.
            if req & self._mask != self._address & self._mask:
                self._nak(msg, "wrong network")
            elif b is not None and b.ip == req:
                self._bind(b, msg, now)
            elif (holder := self._by_ip.get(req)) is not None and holder.key != key:
                self._nak(msg, "address in use")
            elif b is not None:
                self._nak(msg, "not your address")
            else:
                self._ignore("dhcp_reboot_unknown_client")
            return
        if ciaddr:
            # RENEWING (unicast) or REBINDING (broadcast): extend the binding of ciaddr.
            if b is not None and b.ip == ciaddr:
                self._bind(b, msg, now)
            elif (holder := self._by_ip.get(ciaddr)) is not None and holder.key != key:
                self._nak(msg, "address in use")
            elif b is None and ciaddr in self._free_set:
                # We lost the binding (a restart without a lease file) and the address
                # is free: adopt it rather than take the client's address away.
                self._free_set.discard(ciaddr)
                self._bind(self._add(key, msg.chaddr, o.client_id, ciaddr, BOUND, now), msg, now)
            else:
                self._ignore("dhcp_renew_unknown_client")
            return
        self._ignore("dhcp_request_malformed")

    def _bind(self, b: _Binding, msg: wd.DhcpMessage, now: float) -> None:
        b.state = BOUND
        b.expires = now + self.config.lease_time  # the heap entry re-queues itself
        b.hostname = msg.options.hostname or b.hostname
        self._queue(b)  # the expiry may have moved earlier (a lease shorter than an offer)
        self.counts["ack"] += 1
        self._reply(msg, wd.ACK, b.ip, now)
        if self.on_change is not None:
            self.on_change()

    def _nak(self, msg: wd.DhcpMessage, why: str) -> None:
        self.counts["nak"] += 1
        self._reply(msg, wd.NAK, 0, self.iface.now, why)

    def _decline(self, msg: wd.DhcpMessage, now: float) -> None:
        o = msg.options
        b = self._by_key.get(_key(msg.chaddr, o.client_id))
        if (o.server_id is not None and o.server_id != self._address) or b is None \
                or b.ip != o.requested_address:
            self._ignore("dhcp_decline_unknown")
            return
        # RFC 2131 §4.3.3: mark the address as not available (for decline_hold).
        self.counts["decline"] += 1
        ip = b.ip
        self._declined_set.add(ip)
        self._declined.append((now + self.config.decline_hold, ip))
        self._remove(b)
        if self.on_change is not None:
            self.on_change()

    def _release(self, msg: wd.DhcpMessage, now: float) -> None:
        o = msg.options
        b = self._by_key.get(_key(msg.chaddr, o.client_id))
        if (o.server_id is not None and o.server_id != self._address) or b is None or b.ip != msg.ciaddr:
            self._ignore("dhcp_release_unknown")
            return
        # RFC 2131 §4.3.4: the address is no longer allocated.
        self.counts["release"] += 1
        self._remove(b)
        if self.on_change is not None:
            self.on_change()

    def _inform(self, msg: wd.DhcpMessage) -> None:
        # RFC 2131 §4.3.5: configuration only, no lease, unicast to ciaddr.
        if not msg.ciaddr:
            self._ignore("dhcp_inform_without_ciaddr")
            return
        self.counts["inform"] += 1
        self._reply(msg, wd.ACK, 0, self.iface.now, lease=False)

    # -- replies ---------------------------------------------------------------------

    def _options(self, msg: wd.DhcpMessage, mtype: int, lease: bool, text: str | None) -> wd.DhcpOptions:
        c = self.config
        if mtype == wd.NAK:
            # RFC 2131 §4.3.1 Table 3: a NAK carries the server identifier and a message.
            return wd.DhcpOptions(message_type=mtype, server_id=self._address, message=text,
                                  client_id=msg.options.client_id)
        prl = set(msg.options.parameter_request_list)

        def wanted(code: int) -> bool:
            # RFC 2131 §4.3.1: the requested parameters, if we have them (all of them
            # when the client sends no list); the mask and routers in any case.
            return not prl or code in prl

        aton = wip.aton
        t1 = c.renewal_time if c.renewal_time is not None else c.lease_time // 2
        t2 = c.rebinding_time if c.rebinding_time is not None else c.lease_time * 7 // 8
        return wd.DhcpOptions(
            message_type=mtype,
            server_id=self._address,
            lease_time=c.lease_time if lease else None,
            renewal_time=t1 if lease else None,
            rebinding_time=t2 if lease else None,
            subnet_mask=self._mask,
            routers=tuple(aton(r) for r in c.routers),
            dns_servers=tuple(aton(a) for a in c.dns_servers) if wanted(wd.OPT_DNS) else (),
            ntp_servers=tuple(aton(a) for a in c.ntp_servers) if wanted(wd.OPT_NTP) else (),
            domain_name=c.domain_name if wanted(wd.OPT_DOMAIN_NAME) else None,
            broadcast_address=self._broadcast if wanted(wd.OPT_BROADCAST) and prl else None,
            mtu=c.mtu if wanted(wd.OPT_MTU) else None,
            # RFC 6842 §3: a server MUST return the client identifier it was sent.
            client_id=msg.options.client_id,
        )

    def _reply(self, msg: wd.DhcpMessage, mtype: int, yiaddr: int, now: float, text: str | None = None,
               *, lease: bool = True) -> None:
        ciaddr = msg.ciaddr if mtype != wd.OFFER else 0
        reply = wd.DhcpMessage(
            wd.OP_REPLY, msg.xid, msg.chaddr, self._options(msg, mtype, lease, text), flags=msg.flags,
            ciaddr=ciaddr, yiaddr=yiaddr, giaddr=msg.giaddr,
        )
        # RFC 2131 §4.1: a NAK is broadcast; a client with an address gets a unicast to
        # it; one without gets a broadcast if it set the broadcast bit, otherwise a
        # unicast to yiaddr at chaddr (the ARP entry is made here, since it cannot answer ARP).
        if mtype == wd.NAK:
            dst = 0xFFFFFFFF
        elif msg.ciaddr:
            dst = msg.ciaddr
            if yiaddr == dst:
                # A renewal of the binding this chaddr holds: its MAC is known, so skip
                # the ARP round trip.  (Not for DHCPINFORM, whose ciaddr nobody checked.)
                self.iface.arp.update(dst, msg.chaddr, now, create=True)
        elif msg.broadcast or not yiaddr:
            dst = 0xFFFFFFFF
        else:
            dst = yiaddr
            self.iface.arp.update(yiaddr, msg.chaddr, now, create=True)
        try:
            self.sock.sendto(reply.emit(), (wip.ntoa(dst), wd.CLIENT_PORT))
        except OSError:
            self.iface.stats.drop("dhcp_send_failed")
