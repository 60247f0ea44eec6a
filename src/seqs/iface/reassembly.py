"""IPv4 fragment reassembly (RFC 791 §3.2, RFC 815 hole bookkeeping, RFC 1122 §3.3.2).

Bounded in every direction an attacker can push: the number of datagrams in
progress, the bytes held in all of them, and the time any one may take.  When
full, the oldest datagram in progress is evicted (an attacker who fills the
table then only evicts his own fragments once a legitimate datagram finishes
quickly).  Overlapping fragments are not merged: a fragment that overlaps
another with different bytes condemns the whole datagram (the policy of
RFC 5722 for IPv6, and of Linux for IPv4 since 4.19), which closes the door on
overlap-based filter evasion; an exact duplicate is ignored.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

from .stats import Stats

__all__ = ["ReassemblyConfig", "Reassembler"]

MAX_DATAGRAM = 65535


@dataclass(slots=True)
class ReassemblyConfig:
    #: seconds a datagram may take to complete (Linux: 30; RFC 1122 suggests 60..120)
    timeout: float = 30.0
    max_datagrams: int = 64
    #: bytes held across all datagrams in progress
    max_bytes: int = 1 << 20
    #: largest reassembled IP payload we accept
    max_payload: int = MAX_DATAGRAM - 20
    #: fragments one datagram may have (tiny fragments cost memory beyond their bytes)
    max_fragments: int = 512


class _Datagram:
    __slots__ = ("deadline", "first_header", "held", "parts", "total")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        #: sorted list of (start, end, bytes)
        self.parts: list[tuple[int, int, bytes]] = []
        self.total: int | None = None
        self.held = 0
        #: IP header + 8 bytes of the offset-0 fragment, for a time-exceeded message
        self.first_header: bytes | None = None


def _start(part: tuple[int, int, bytes]) -> int:
    return part[0]


Key = tuple[int, int, int, int]  # src, dst, ident, proto


class Reassembler:
    __slots__ = ("_datagrams", "_held", "config", "expired", "stats", "timer_armed")

    def __init__(self, config: ReassemblyConfig, stats: Stats) -> None:
        self.config = config
        self.stats = stats
        self._datagrams: dict[Key, _Datagram] = {}
        self._held = 0
        self.timer_armed: float | None = None
        #: offset-0 quotes of datagrams that timed out, for ICMP time exceeded
        self.expired: list[bytes] = []

    @property
    def held_bytes(self) -> int:
        return self._held

    def __len__(self) -> int:
        return len(self._datagrams)

    def add(
        self, key: Key, offset: int, more: bool, data: bytes, header_quote: bytes | None, now: float
    ) -> bytes | None:
        """Add one fragment; return the whole payload once complete."""
        end = offset + len(data)
        if end > self.config.max_payload:
            self.stats.drop("ipv4_frag_too_big")
            self._discard(key)
            return None
        if more and (len(data) == 0 or len(data) % 8):
            self.stats.drop("ipv4_frag_bad_length")
            return None
        dg = self._datagrams.get(key)
        if dg is None:
            while self._datagrams and (
                len(self._datagrams) >= self.config.max_datagrams or self._held + len(data) > self.config.max_bytes
            ):
                self._discard(next(iter(self._datagrams)))
                self.stats.drop("ipv4_reasm_evicted")
            if len(data) > self.config.max_bytes:
                self.stats.drop("ipv4_reasm_full")
                return None
            dg = self._datagrams[key] = _Datagram(now + self.config.timeout)
        elif self._held + len(data) > self.config.max_bytes:
            self.stats.drop("ipv4_reasm_full")
            self._discard(key)
            return None
        if not more:
            # The last fragment fixes the total; data already held beyond it is as
            # inconsistent as a second, different last fragment.  This keeps every part
            # inside [0, total), so held == total below really means "no holes".
            if (dg.total is not None and dg.total != end) or (dg.parts and dg.parts[-1][1] > end):
                self.stats.drop("ipv4_frag_inconsistent")
                self._discard(key)
                return None
            dg.total = end
        if dg.total is not None and end > dg.total:
            self.stats.drop("ipv4_frag_inconsistent")
            self._discard(key)
            return None
        parts = dg.parts
        # Find the insertion point and check both neighbours for overlap.
        if len(parts) >= self.config.max_fragments:
            self.stats.drop("ipv4_frag_too_many")
            self._discard(key)
            return None
        i = bisect_left(parts, offset, key=_start)
        for j in (i - 1, i):
            if 0 <= j < len(parts):
                s, e, b = parts[j]
                if s < end and offset < e:
                    if s == offset and e == end and b == data:
                        self.stats.drop("ipv4_frag_duplicate")
                        return None
                    self.stats.drop("ipv4_frag_overlap")
                    self._discard(key)
                    return None
        # A fragment can overlap more than its neighbours only if it spans one: checked above
        # because the neighbour at i starts at or after offset and would overlap first.
        parts.insert(i, (offset, end, data))
        dg.held += len(data)
        self._held += len(data)
        if offset == 0 and header_quote is not None:
            dg.first_header = header_quote
        if dg.total is None or dg.held != dg.total:
            return None
        # Complete: parts are sorted, non-overlapping, and their sizes sum to the total.
        del self._datagrams[key]
        self._held -= dg.held
        return b"".join(p[2] for p in parts)

    def _discard(self, key: Key) -> None:
        dg = self._datagrams.pop(key, None)
        if dg is not None:
            self._held -= dg.held

    def deadline(self) -> float | None:
        # Insertion order is deadline order: the timeout is the same for all.
        for dg in self._datagrams.values():
            return dg.deadline
        return None

    def on_timer(self, now: float) -> None:
        while self._datagrams:
            key, dg = next(iter(self._datagrams.items()))
            if dg.deadline > now:
                break
            self._discard(key)
            self.stats.drop("ipv4_reasm_timeout")
            # RFC 792/1122 §3.3.2: time exceeded only if fragment zero arrived.
            if dg.first_header is not None:
                self.expired.append(dg.first_header)
