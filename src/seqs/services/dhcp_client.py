"""A DHCP client (RFC 2131 §4.4) with RFC 5227 address conflict detection, sans-IO.

Read RFC 2131 §4.4 (the client's state machine, Figure 5) and §4.1
(retransmission), then RFC 5227 §2.1 (probing an address before using it).

What it owns: the client's state, its transaction id, its retransmission and
lease timers (one entry in the interface's timer heap), the lease it holds and
the events it reports.  What it leaves to others: the bytes of a message
(:mod:`seqs.wire.dhcp`), sending and receiving them (a UDP socket on port 68),
ARP (:meth:`Interface.arp_probe` and an ARP listener), the address itself
(:meth:`Interface.set_address`) and, for the DNS and NTP clients, the server
lists it fills in ``stack.dns_servers`` and ``stack.ntp_servers``.

Theory of operation.  The client is a table of transitions (:data:`TRANSITIONS`)
driven by three kinds of input: a server's reply (``offer``, ``ack``, ``nak``),
a timer (``timeout``, ``t1``, ``t2``, ``expire``, ``probed``) and the user
(``start``, ``release``, ``stop``)::

    INIT ----start----> SELECTING --offer--> REQUESTING --ack--> PROBING --probed--> BOUND
    INIT-REBOOT -start-> REBOOTING --------------------- ack --/    | conflict: DECLINE
                         nak/timeout: back to INIT                 v
    BOUND --t1--> RENEWING --t2--> REBINDING --expire--> INIT    INIT (after 10 s)
      ^------ack-----/ <------ack------/      (nak from any of them: INIT)
    BOUND/RENEWING/REBINDING --release--> RELEASING --released--> STOPPED

Time only arrives as an argument (``start(now)``, ``release(now)``, the timer
heap's ``on_timer(now)``); replies arrive through the socket's readiness
callback and use the interface's latest ``now``.  Every refused reply is a
counted drop in ``stack.stats`` (``dhcp_*`` reasons); no reply can make the
client raise.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass

from ..errors import ParseError
from ..stack import Stack
from ..wire import arp as warp
from ..wire import dhcp as wd
from ..wire import ipv4 as wip

__all__ = [
    "BOUND",
    "INIT",
    "INIT_REBOOT",
    "PROBING",
    "REBINDING",
    "REBOOTING",
    "RELEASING",
    "RENEWING",
    "REQUESTING",
    "SELECTING",
    "STOPPED",
    "TRANSITIONS",
    "DhcpClient",
    "DhcpClientConfig",
    "DhcpEvent",
    "Lease",
]

# States (RFC 2131 Figure 5, plus PROBING for RFC 5227 and the two ends of a release).
INIT = "INIT"
SELECTING = "SELECTING"
REQUESTING = "REQUESTING"
PROBING = "PROBING"
BOUND = "BOUND"
RENEWING = "RENEWING"
REBINDING = "REBINDING"
INIT_REBOOT = "INIT-REBOOT"
REBOOTING = "REBOOTING"
RELEASING = "RELEASING"
STOPPED = "STOPPED"

#: (state, event) -> next state.  Anything not listed cannot happen: a reply that
#: does not fit the state is dropped before it becomes an event.
TRANSITIONS: dict[tuple[str, str], str] = {
    (INIT, "start"): SELECTING,  # send DHCPDISCOVER
    (INIT_REBOOT, "start"): REBOOTING,  # send DHCPREQUEST for the old address
    (SELECTING, "offer"): REQUESTING,  # send DHCPREQUEST
    (REQUESTING, "ack"): PROBING,  # RFC 2131 §4.4.1: check the address before use
    (REQUESTING, "nak"): INIT,
    (REQUESTING, "timeout"): INIT,  # RFC 2131 §4.4.1: no answer after retransmissions
    (REBOOTING, "ack"): PROBING,
    (REBOOTING, "nak"): INIT,
    (REBOOTING, "timeout"): INIT,
    (PROBING, "probed"): BOUND,
    (PROBING, "conflict"): INIT,  # send DHCPDECLINE
    (BOUND, "t1"): RENEWING,  # unicast DHCPREQUEST to the server
    (RENEWING, "ack"): BOUND,
    (RENEWING, "nak"): INIT,
    (RENEWING, "t2"): REBINDING,  # broadcast DHCPREQUEST to any server
    (REBINDING, "ack"): BOUND,
    (REBINDING, "nak"): INIT,
    (REBINDING, "expire"): INIT,
    # A lease whose T1/T2 coincide with its end goes straight from these to INIT.
    (BOUND, "expire"): INIT,
    (RENEWING, "expire"): INIT,
    (BOUND, "release"): RELEASING,
    (RENEWING, "release"): RELEASING,
    (REBINDING, "release"): RELEASING,
    (RELEASING, "released"): STOPPED,
}

_INFINITE = 0xFFFFFFFF  # RFC 2131 §3.3: a lease time of all ones is infinite
_REQUESTED = (
    wd.OPT_SUBNET_MASK, wd.OPT_ROUTER, wd.OPT_DNS, wd.OPT_DOMAIN_NAME, wd.OPT_MTU, wd.OPT_BROADCAST,
    wd.OPT_NTP, wd.OPT_LEASE_TIME, wd.OPT_RENEWAL_TIME, wd.OPT_REBINDING_TIME,
)


@dataclass(slots=True)
class DhcpClientConfig:
    #: option 12 sent in DISCOVER/REQUEST (RFC 2132 §3.14)
    hostname: str | None = None
    #: option 61 (RFC 2132 §9.14); None: type 1 (Ethernet) followed by our MAC
    client_id: bytes | None = None
    #: send option 61 at all
    send_client_id: bool = True
    #: ask servers to broadcast their replies (RFC 2131 §4.1); we can take unicast
    #: ones before we have an address, so it is off
    broadcast_flag: bool = False
    #: RFC 2131 §4.4.1 suggests a random 1-10 s wait before the first DISCOVER to
    #: desynchronise hosts booting together; a single interactive host has no herd
    startup_delay: tuple[float, float] = (0.0, 0.0)
    # RFC 2131 §4.1: retransmit after 4 s, then 8, 16, ... up to 64 s, each
    # randomised by a uniform ±1 s.
    retransmit_initial: float = 4.0
    retransmit_max: float = 64.0
    retransmit_jitter: float = 1.0
    #: DHCPREQUESTs sent in REQUESTING or REBOOTING before going back to INIT
    request_attempts: int = 4
    #: RFC 2131 §4.4.5: in RENEWING/REBINDING wait half the time left to T2/expiry,
    #: but at least this long, before sending again
    renew_retry_min: float = 60.0
    #: RFC 2131 §3.1 step 5: after a DHCPDECLINE wait at least 10 s before restarting
    decline_backoff: float = 10.0
    # RFC 5227 §2.1.1 and §1.1 constants.  probe_num = 0 skips the check.
    probe_wait: float = 1.0
    probe_num: int = 3
    probe_min: float = 1.0
    probe_max: float = 2.0
    announce_wait: float = 2.0
    #: after a DHCPRELEASE, keep the address at most this long for its ARP to resolve
    release_wait: float = 2.0
    #: lower the interface MTU to the server's option 26 (never raise it)
    apply_mtu: bool = True
    #: how many past events ``DhcpClient.events`` keeps
    event_history: int = 64

    def __post_init__(self) -> None:
        if self.retransmit_jitter >= self.retransmit_initial:
            raise ValueError("retransmit_jitter must be smaller than retransmit_initial")
        if self.probe_num < 0 or self.probe_min > self.probe_max or self.request_attempts < 1:
            raise ValueError("bad probe or retry settings")


@dataclass(frozen=True, slots=True)
class Lease:
    """What a server gave us (RFC 2131 §4.4.1).  Addresses are dotted quads; times are
    seconds; ``acquired_at`` is the ``now`` at which the acknowledged DHCPREQUEST was
    first sent, from which RFC 2131 §4.4.1 counts the lease.  ``lease_time`` is
    ``math.inf`` for an infinite lease."""

    address: str
    prefix: int
    subnet_mask: str
    server_id: str
    lease_time: float
    renewal_time: float
    rebinding_time: float
    acquired_at: float
    routers: tuple[str, ...] = ()
    dns_servers: tuple[str, ...] = ()
    ntp_servers: tuple[str, ...] = ()
    domain_name: str | None = None
    broadcast_address: str | None = None
    mtu: int | None = None

    @property
    def cidr(self) -> str:
        return f"{self.address}/{self.prefix}"

    @property
    def renew_at(self) -> float:
        return self.acquired_at + self.renewal_time

    @property
    def rebind_at(self) -> float:
        return self.acquired_at + self.rebinding_time

    @property
    def expires_at(self) -> float:
        return self.acquired_at + self.lease_time

    @property
    def gateway(self) -> str | None:
        """The first router on our subnet (the default route), if any."""
        mask = wip.prefix_mask(self.prefix)
        net = wip.aton(self.address) & mask
        for r in self.routers:
            if wip.aton(r) & mask == net:
                return r
        return None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class DhcpEvent:
    """Something the user may want to know.  ``kind`` is one of ``bound``, ``renewed``,
    ``rebound``, ``expired``, ``nak``, ``declined``, ``released``."""

    kind: str
    time: float
    lease: Lease | None = None
    detail: str = ""


def _mask_prefix(mask: int) -> int | None:
    """The prefix length of a contiguous netmask, or None."""
    inv = ~mask & 0xFFFFFFFF
    if inv & (inv + 1):
        return None
    return 32 - inv.bit_length()


def _classful_prefix(addr: int) -> int:
    # Without option 1 there is nothing better than the address class (RFC 791).
    top = addr >> 24
    return 8 if top < 128 else 16 if top < 192 else 24


def _usable_unicast(addr: int) -> bool:
    top = addr >> 24
    return addr not in (0, 0xFFFFFFFF) and top != 127 and top != 0 and top < 224


class DhcpClient:
    """``DhcpClient(stack).start(now)`` and drive the stack; ``lease`` is set once bound.

    Events go to ``on_event`` (if set) as they happen and to the ``events`` list
    (the last ``config.event_history``).  ``previous`` names a lease held before
    (a :class:`Lease` or a dotted quad) to ask for again from INIT-REBOOT.
    """

    def __init__(
        self,
        stack: Stack,
        config: DhcpClientConfig | None = None,
        *,
        previous: Lease | str | None = None,
        on_event: Callable[[DhcpEvent], None] | None = None,
    ) -> None:
        self.stack = stack
        self.iface = stack.iface
        self.config = config or DhcpClientConfig()
        self.on_event = on_event
        self.events: deque[DhcpEvent] = deque(maxlen=self.config.event_history)
        self.state = STOPPED
        #: the lease in use (BOUND, RENEWING, REBINDING), else None
        self.lease: Lease | None = None
        self.timer_armed: float | None = None
        self.sock = stack.udp_socket()
        self.sock.broadcast = True
        self.sock.bind(("", wd.CLIENT_PORT))
        self.sock.on_event = self._on_readable
        self.iface.add_arp_listener(self._on_arp)
        prev = previous.address if isinstance(previous, Lease) else previous
        self._previous = wip.aton(prev) if prev else 0
        cid = self.config.client_id
        self._client_id = (cid if cid is not None else b"\x01" + self.iface.mac) if self.config.send_client_id \
            else None
        self._original_mtu = self.iface.mtu
        self._deadline: float | None = None
        self._xid = 0
        self._started = 0.0  # when this acquisition began (the secs field, RFC 2131 §2)
        self._attempts = 0  # transmissions of the current message
        self._first_sent = 0.0  # when the current DHCPREQUEST was first sent
        self._offer_address = 0
        self._offer_server = 0
        self._pending: Lease | None = None  # acknowledged, being probed
        self._probes = 0
        self._naks = 0  # consecutive, for the restart backoff
        self._release_hop = 0

    # -- API -------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Begin (or restart) acquiring: INIT-REBOOT if a previous address is known, else INIT."""
        self._release_address()
        self.state = INIT_REBOOT if self._previous else INIT
        lo, hi = self.config.startup_delay
        self._set_deadline(now + (self.iface.rng.uniform(lo, hi) if hi > 0 else 0.0))

    def release(self, now: float) -> bool:
        """Give the lease back (RFC 2131 §4.4.6): unicast DHCPRELEASE to the server, then
        drop the address and stop.  False (and just stop) if no lease is held."""
        lease = self.lease
        if lease is None or self.state not in (BOUND, RENEWING, REBINDING):
            self.stop()
            return False
        server = wip.aton(lease.server_id)
        msg = self._message(wd.RELEASE, now, ciaddr=self.iface.address, server_id=server, new_xid=True,
                            prl=False)
        self._send(msg, server)
        self._go("release")
        self._emit("released", now, lease)
        self._previous = 0
        # The release may wait for the next hop's MAC (ARP): keep the address until it
        # has left — release_wait at most — and go as soon as the hop answers.
        try:
            hop, mac = self.iface.route(server)
        except OSError:
            hop, mac = 0, None
        self._release_hop = hop
        if mac is not None or not hop or hop in self.iface.arp.entries(now):
            self._set_deadline(now)
        else:
            self._set_deadline(now + self.config.release_wait)
        return True

    def stop(self) -> None:
        """Stop all activity; a held address stays configured."""
        self.state = STOPPED
        self._deadline = None

    def close(self) -> None:
        self.stop()
        self.sock.close()
        self.iface.remove_arp_listener(self._on_arp)

    @property
    def bound(self) -> bool:
        return self.state in (BOUND, RENEWING, REBINDING)

    # -- timer owner -----------------------------------------------------------------

    def deadline(self) -> float | None:
        return self._deadline

    def on_timer(self, now: float) -> None:
        self._deadline = None
        state = self.state
        if state in (INIT, INIT_REBOOT):
            self._begin(now)
        elif state == SELECTING:
            self._send_discover(now)
        elif state in (REQUESTING, REBOOTING):
            if self._attempts >= self.config.request_attempts:
                self._restart("timeout", now)
            else:
                self._send_request(now)
        elif state == PROBING:
            self._probe_step(now)
        elif state in (BOUND, RENEWING, REBINDING):
            self._lease_timer(now)
        elif state == RELEASING:
            self._go("released")
            self._release_address()
        self.iface.timers.update(self)

    # -- transitions -----------------------------------------------------------------

    def _go(self, event: str) -> None:
        nxt = TRANSITIONS.get((self.state, event))
        if nxt is None:  # a bug in this module, never the peer's doing
            raise RuntimeError(f"DHCP client: no transition from {self.state} on {event}")
        self.state = nxt

    def _emit(self, kind: str, now: float, lease: Lease | None, detail: str = "") -> None:
        ev = DhcpEvent(kind, now, lease, detail)
        self.events.append(ev)
        if self.on_event is not None:
            self.on_event(ev)

    def _set_deadline(self, when: float | None) -> None:
        self._deadline = when
        self.iface.timers.update(self)

    def _backoff(self) -> float:
        """RFC 2131 §4.1: 4 s, 8 s, ... 64 s, each ± a uniform 1 s, by transmission count."""
        c = self.config
        base = min(c.retransmit_initial * float(1 << min(max(self._attempts - 1, 0), 16)), c.retransmit_max)
        return base + self.iface.rng.uniform(-c.retransmit_jitter, c.retransmit_jitter)

    def _begin(self, now: float) -> None:
        self._started = now
        self._xid = self.iface.rng.getrandbits(32)
        self._attempts = 0
        if self.state == INIT_REBOOT:
            self._go("start")
            self._offer_address = self._previous
            self._offer_server = 0
            self._send_request(now)
        else:
            self._go("start")
            self._send_discover(now)

    def _restart(self, event: str, now: float, delay: float = 0.0) -> None:
        """Back to INIT (RFC 2131 §3.1, §3.2): unconfigure and start discovering again."""
        self._go(event)
        self._release_address()
        self._pending = None
        self._previous = 0
        self._set_deadline(now + delay)

    def _send_discover(self, now: float) -> None:
        self._attempts += 1
        # RFC 2131 §4.4.1: the DISCOVER MAY suggest the address the client had.
        self._send(self._message(wd.DISCOVER, now, requested_address=self._previous or None), None)
        self._set_deadline(now + self._backoff())

    def _send_request(self, now: float) -> None:
        """The DHCPREQUEST of REQUESTING (server id + requested address) or REBOOTING
        (requested address only): RFC 2131 §4.3.2, Table 5.  Both are broadcast."""
        self._attempts += 1
        if self._attempts == 1:
            self._first_sent = now
        server = self._offer_server if self.state == REQUESTING else None
        msg = self._message(wd.REQUEST, now, requested_address=self._offer_address, server_id=server)
        self._send(msg, None)
        self._set_deadline(now + self._backoff())

    def _send_renewal(self, now: float) -> None:
        """RENEWING: unicast to the server; REBINDING: broadcast.  ciaddr carries our
        address and neither option 50 nor 54 is sent (RFC 2131 §4.3.2)."""
        lease = self.lease
        assert lease is not None
        self._attempts += 1
        if self._attempts == 1:
            self._first_sent = now
            self._xid = self.iface.rng.getrandbits(32)
            self._started = now
        msg = self._message(wd.REQUEST, now, ciaddr=self.iface.address)
        self._send(msg, wip.aton(lease.server_id) if self.state == RENEWING else None)

    def _message(self, mtype: int, now: float, *, ciaddr: int = 0, requested_address: int | None = None,
                 server_id: int | None = None, new_xid: bool = False, prl: bool = True) -> wd.DhcpMessage:
        c = self.config
        if new_xid:
            self._xid = self.iface.rng.getrandbits(32)
        opts = wd.DhcpOptions(
            message_type=mtype,
            requested_address=requested_address or None,
            server_id=server_id or None,
            client_id=self._client_id,
            hostname=c.hostname if mtype not in (wd.RELEASE, wd.DECLINE) else None,
            parameter_request_list=_REQUESTED if prl else (),
            max_message_size=max(wd.MIN_MAX_MESSAGE_SIZE, min(self.iface.mtu, 1500)) if prl else None,
        )
        secs = min(int(now - self._started), 0xFFFF) if mtype in (wd.DISCOVER, wd.REQUEST) else 0
        flags = wd.FLAG_BROADCAST if c.broadcast_flag and not ciaddr else 0
        return wd.DhcpMessage(wd.OP_REQUEST, self._xid, self.iface.mac, opts, secs=max(secs, 0), flags=flags,
                              ciaddr=ciaddr)

    def _send(self, msg: wd.DhcpMessage, server: int | None) -> None:
        """Broadcast (``server`` None) or unicast to ``server`` port 67."""
        dst = wip.ntoa(server) if server else "255.255.255.255"
        try:
            self.sock.sendto(msg.emit(), (dst, wd.SERVER_PORT))
        except OSError:
            self.iface.stats.drop("dhcp_send_failed")

    # -- replies ---------------------------------------------------------------------

    def _on_readable(self) -> None:
        while True:
            try:
                got = self.sock.recvfrom()
            except OSError:
                continue  # an ICMP error for a unicast we sent; the timers retry
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
        if msg.op != wd.OP_REPLY or msg.chaddr != self.iface.mac or msg.xid != self._xid:
            st.drop("dhcp_not_for_us")
            return
        mtype = msg.message_type
        state = self.state
        if mtype == wd.OFFER and state == SELECTING:
            self._on_offer(msg, now)
        elif mtype == wd.ACK and state in (REQUESTING, REBOOTING, RENEWING, REBINDING):
            self._on_ack(msg, now)
        elif mtype == wd.NAK and state in (REQUESTING, REBOOTING, RENEWING, REBINDING):
            self._on_nak(msg, now)
        else:
            name = wd.MESSAGE_TYPE_NAMES.get(mtype or 0, "bootp")[4:].lower() or "bootp"
            st.drop(f"dhcp_unexpected_{name}")

    def _on_offer(self, msg: wd.DhcpMessage, now: float) -> None:
        server = msg.options.server_id
        if not _usable_unicast(msg.yiaddr) or not server:
            # RFC 2131 §4.3.1 Table 3: an offer MUST carry a server identifier.
            self.iface.stats.drop("dhcp_bad_offer")
            return
        # RFC 2131 §4.4.1: the client may wait for several offers; the first is as good
        # as any for a host that has no preference.
        self._offer_address = msg.yiaddr
        self._offer_server = server
        self._go("offer")
        self._attempts = 0
        self._send_request(now)

    def _on_ack(self, msg: wd.DhcpMessage, now: float) -> None:
        st = self.iface.stats
        o = msg.options
        state = self.state
        if state == REQUESTING and o.server_id is not None and o.server_id != self._offer_server:
            st.drop("dhcp_ack_from_other_server")
            return
        expected = self._offer_address if state in (REQUESTING, REBOOTING) else self.iface.address
        if msg.yiaddr != expected:
            st.drop("dhcp_ack_wrong_address")
            return
        if o.lease_time is None:  # RFC 2131 §4.3.1 Table 3: MUST in an ACK to a REQUEST
            st.drop("dhcp_ack_without_lease_time")
            return
        server = o.server_id or (self._offer_server if state == REQUESTING else 0)
        if not server and self.lease is not None:
            server = wip.aton(self.lease.server_id)
        if not server:
            st.drop("dhcp_ack_without_server_id")
            return
        lease = self._make_lease(msg, server, self._first_sent)
        self._naks = 0
        if state in (REQUESTING, REBOOTING):
            self._go("ack")
            self._pending = lease
            self._probes = 0
            c = self.config
            delay = self.iface.rng.uniform(0.0, c.probe_wait) if c.probe_num else 0.0
            self._set_deadline(now + delay)  # RFC 5227 §2.1.1: random 0..PROBE_WAIT
            return
        self._go("ack")
        kind = "renewed" if state == RENEWING else "rebound"
        self._bind(lease, now, kind)

    def _on_nak(self, msg: wd.DhcpMessage, now: float) -> None:
        server = msg.options.server_id
        if self.state in (REQUESTING, RENEWING) and server is not None:
            # Only the server we asked may refuse us (RFC 2131 §4.3.2).
            want = self._offer_server if self.state == REQUESTING else \
                wip.aton(self.lease.server_id) if self.lease else 0
            if server != want:
                self.iface.stats.drop("dhcp_nak_from_other_server")
                return
        lease = self.lease
        self._emit("nak", now, lease, msg.options.message or "")
        # Consecutive refusals back off (0, 4, 8 ... 64 s) so a confused server and
        # this client cannot loop as fast as the link allows.
        self._naks += 1
        c = self.config
        delay = 0.0 if self._naks == 1 else min(c.retransmit_initial * float(1 << min(self._naks - 2, 16)),
                                                 c.retransmit_max)
        self._restart("nak", now, delay)

    def _make_lease(self, msg: wd.DhcpMessage, server: int, acquired: float) -> Lease:
        o = msg.options
        addr = msg.yiaddr
        prefix = _mask_prefix(o.subnet_mask) if o.subnet_mask is not None else None
        if prefix is None or prefix == 0:
            prefix = _classful_prefix(addr)
        assert o.lease_time is not None
        if o.lease_time == _INFINITE:
            total = t1 = t2 = math.inf
        else:
            total = float(o.lease_time)
            # RFC 2131 §4.4.5: T1 defaults to 0.5 and T2 to 0.875 of the lease; values
            # that break T1 <= T2 <= lease are replaced by the defaults.
            t2 = float(o.rebinding_time) if o.rebinding_time is not None and o.rebinding_time <= total \
                else 0.875 * total
            t1 = float(o.renewal_time) if o.renewal_time is not None and o.renewal_time <= t2 \
                else min(0.5 * total, t2)
        ntoa = wip.ntoa
        return Lease(
            address=ntoa(addr), prefix=prefix, subnet_mask=ntoa(wip.prefix_mask(prefix)), server_id=ntoa(server),
            lease_time=total, renewal_time=t1, rebinding_time=t2, acquired_at=acquired,
            routers=tuple(ntoa(a) for a in o.routers), dns_servers=tuple(ntoa(a) for a in o.dns_servers),
            ntp_servers=tuple(ntoa(a) for a in o.ntp_servers), domain_name=o.domain_name,
            broadcast_address=ntoa(o.broadcast_address) if o.broadcast_address is not None else None,
            mtu=o.mtu,
        )

    # -- RFC 5227 probing ------------------------------------------------------------

    def _probe_step(self, now: float) -> None:
        lease = self._pending
        assert lease is not None
        c = self.config
        if self._probes < c.probe_num:
            self.iface.arp_probe(wip.aton(lease.address))
            self._probes += 1
            # RFC 5227 §2.1.1: probes PROBE_MIN..PROBE_MAX apart, then ANNOUNCE_WAIT.
            wait = self.iface.rng.uniform(c.probe_min, c.probe_max) if self._probes < c.probe_num \
                else c.announce_wait
            self._set_deadline(now + wait)
            return
        self._pending = None
        self._go("probed")
        self._bind(lease, now, "bound")

    def _on_arp(self, op: int, sha: bytes, spa: int, tpa: int, now: float) -> None:
        if sha == self.iface.mac:
            return
        if self.state == PROBING and self._pending is not None:
            addr = wip.aton(self._pending.address)
            # RFC 5227 §2.1.1: any ARP packet from the address, or a probe for it by
            # another host, means it is taken.
            if spa == addr or (spa == 0 and op == warp.OP_REQUEST and tpa == addr):
                self._decline(self._pending, now, f"ARP from {wip.ntoa(addr)} at {sha.hex(':')}")
        elif self.state == RELEASING and spa == self._release_hop:
            # The next hop's MAC is known now and our DHCPRELEASE goes out while this
            # packet is processed: the address can go at the next poll.
            self._set_deadline(now)

    def _decline(self, lease: Lease, now: float, why: str) -> None:
        """RFC 2131 §3.1 step 5, §4.4.1: DHCPDECLINE (broadcast, with options 50 and 54),
        back to INIT, and wait before starting again."""
        msg = self._message(wd.DECLINE, now, requested_address=wip.aton(lease.address),
                            server_id=wip.aton(lease.server_id), prl=False)
        self._send(msg, None)
        self._emit("declined", now, lease, why)
        self._restart("conflict", now, self.config.decline_backoff)

    # -- the lease -------------------------------------------------------------------

    def _bind(self, lease: Lease, now: float, kind: str) -> None:
        self.lease = lease
        self._previous = wip.aton(lease.address)
        self._attempts = 0
        gw = lease.gateway
        self.iface.set_address(wip.aton(lease.address), lease.prefix, wip.aton(gw) if gw else None)
        if self.config.apply_mtu and lease.mtu is not None and 576 <= lease.mtu < self._original_mtu:
            self.iface.mtu = lease.mtu
        else:
            self.iface.mtu = self._original_mtu
        self.stack.dns_servers[:] = lease.dns_servers
        self.stack.ntp_servers[:] = lease.ntp_servers
        self._set_deadline(lease.renew_at if lease.renewal_time != math.inf else None)
        self._emit(kind, now, lease)

    def _lease_timer(self, now: float) -> None:
        lease = self.lease
        assert lease is not None
        c = self.config
        if now >= lease.expires_at:
            # RFC 2131 §4.4.5: at expiry the client MUST stop using the address.
            self._emit("expired", now, lease)
            self._restart("expire", now)
            return
        if self.state == BOUND and now >= lease.renew_at:
            self._go("t1")
            self._attempts = 0
        if self.state == RENEWING and now >= lease.rebind_at:
            self._go("t2")
            self._attempts = 0
        if self.state == BOUND:
            self._set_deadline(lease.renew_at)
            return
        self._send_renewal(now)
        # RFC 2131 §4.4.5: wait half the time left to T2 (RENEWING) or to expiry
        # (REBINDING), at least renew_retry_min, and never past that point.
        until = lease.rebind_at if self.state == RENEWING else lease.expires_at
        self._set_deadline(min(now + max((until - now) / 2, c.renew_retry_min), until))

    def _release_address(self) -> None:
        """Stop using the lease: no address, no servers, the MTU we started with."""
        lease = self.lease
        if lease is not None:
            if self.iface.address == wip.aton(lease.address):
                self.iface.set_address(0, 0, None)
            self.stack.dns_servers.clear()
            self.stack.ntp_servers.clear()
            self.iface.mtu = self._original_mtu
        self.lease = None

