"""The ARP neighbour cache and resolution (RFC 826, RFC 1122 §2.3.2).

Owns: IPv4 → MAC entries with a lifetime, the per-address request rate limit
and retry count, and a small bounded queue of packets waiting for an answer.
It produces ARP packets as bytes via callbacks into the interface and never
sees a frame directly.

Entries expire lazily: a lookup of an expired entry is a miss.  Shortly before
expiry a lookup that finds the entry still in use sends one unicast request to
refresh it (RFC 1122 §2.3.2.1's "unicast poll"), so a busy flow never stalls
on a lapsed entry.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .stats import Stats

__all__ = ["ArpCache", "ArpConfig"]


@dataclass(slots=True)
class ArpConfig:
    #: how long a learned entry is used (seconds)
    lifetime: float = 60.0
    #: before expiry, a lookup triggers a unicast refresh this long ahead (seconds)
    refresh_ahead: float = 5.0
    #: at most one request per address per this interval (RFC 1122 §2.3.2.1: at most 1/s)
    retry_interval: float = 1.0
    #: requests sent before giving up on an address
    max_requests: int = 3
    max_entries: int = 1024
    #: packets queued per unresolved address (RFC 1122 asks for at least one; a burst of
    #: connections to a new neighbour all wait here, so more than a handful)
    pending_per_address: int = 64
    #: unresolved addresses tracked at once
    max_pending_addresses: int = 64


class _Pending:
    __slots__ = ("next_request", "packets", "requests")

    def __init__(self) -> None:
        self.packets: deque[bytes] = deque()
        self.requests = 0
        self.next_request = 0.0


class ArpCache:
    """Neighbour table plus resolution state.  Timers run via the interface's heap."""

    __slots__ = (
        "_entries",
        "_pending",
        "_refreshing",
        "_send_packet",
        "_send_request",
        "config",
        "stats",
        "timer_armed",
    )

    def __init__(
        self,
        config: ArpConfig,
        stats: Stats,
        send_request: Callable[[int, bytes | None], None],
        send_packet: Callable[[bytes, bytes], None],
    ) -> None:
        """``send_request(ip, mac_or_None)`` emits an ARP request (unicast if a MAC is
        given); ``send_packet(mac, ip_packet)`` emits a queued IP packet once resolved."""
        self.config = config
        self.stats = stats
        self._entries: dict[int, tuple[bytes, float]] = {}
        self._pending: dict[int, _Pending] = {}
        self._refreshing: dict[int, float] = {}
        self._send_request = send_request
        self._send_packet = send_packet
        self.timer_armed: float | None = None

    # -- lookups -------------------------------------------------------------------

    def lookup(self, ip: int, now: float) -> bytes | None:
        entry = self._entries.get(ip)
        if entry is None:
            return None
        mac, expires = entry
        if now >= expires:
            del self._entries[ip]
            return None
        if expires - now < self.config.refresh_ahead and self._refreshing.get(ip, 0.0) <= now:
            self._refreshing[ip] = now + self.config.retry_interval
            self._send_request(ip, mac)
        return mac

    def entries(self, now: float) -> dict[int, bytes]:
        """The live entries (for users and tests)."""
        return {ip: mac for ip, (mac, exp) in self._entries.items() if exp > now}

    def __len__(self) -> int:
        return len(self._entries)

    # -- learning ------------------------------------------------------------------

    def update(self, ip: int, mac: bytes, now: float, *, create: bool) -> None:
        """Learn ``ip → mac``.  RFC 826: update an existing entry always; create one
        only when the packet was addressed to us (``create``)."""
        if ip in self._entries or create or ip in self._pending:
            if ip not in self._entries and len(self._entries) >= self.config.max_entries:
                oldest = next(iter(self._entries))
                del self._entries[oldest]
                self.stats.drop("arp_cache_evicted")
            self._entries.pop(ip, None)  # re-insert: dict order is age order
            self._entries[ip] = (mac, now + self.config.lifetime)
            self._refreshing.pop(ip, None)
        pending = self._pending.pop(ip, None)
        if pending is not None:
            for packet in pending.packets:
                self._send_packet(mac, packet)

    # -- resolution ----------------------------------------------------------------

    def enqueue(self, ip: int, packet: bytes, now: float) -> None:
        """Hold ``packet`` until ``ip`` resolves; send a request if one is due."""
        pending = self._pending.get(ip)
        if pending is None:
            if len(self._pending) >= self.config.max_pending_addresses:
                self.stats.drop("arp_pending_full")
                return
            pending = self._pending[ip] = _Pending()
        if len(pending.packets) >= self.config.pending_per_address:
            pending.packets.popleft()  # keep the newest, as Linux does
            self.stats.drop("arp_pending_overflow")
        pending.packets.append(packet)
        if pending.requests == 0:
            self._request(ip, pending, now)

    def _request(self, ip: int, pending: _Pending, now: float) -> None:
        pending.requests += 1
        pending.next_request = now + self.config.retry_interval
        self._send_request(ip, None)

    def deadline(self) -> float | None:
        if not self._pending:
            return None
        return min(p.next_request for p in self._pending.values())

    def on_timer(self, now: float) -> None:
        for ip, pending in list(self._pending.items()):
            if pending.next_request > now:
                continue
            if pending.requests >= self.config.max_requests:
                del self._pending[ip]
                for _ in pending.packets:
                    self.stats.drop("arp_unresolved")
                continue
            self._request(ip, pending, now)

    def flush(self) -> None:
        """Forget everything (address change)."""
        self._entries.clear()
        self._pending.clear()
        self._refreshing.clear()
