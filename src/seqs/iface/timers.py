"""One timer heap for everything in a stack that needs waking up at a time.

Owners (an ARP resolver, a TCP connection, a reassembly buffer) know when they
next need attention (``deadline()``) and call :meth:`TimerHeap.update` after
anything that may have moved it.  An owner has at most one live heap entry,
at ``timer_armed``: a deadline that moves *later* costs nothing (the entry
fires early, sees the new deadline and re-arms), a deadline that moves
*earlier* pushes one new entry and orphans the old one, which is skipped when
it surfaces.  So rescheduling a retransmission timer on every ACK is O(1),
and the per-tick cost does not depend on how many owners exist.

Entries nobody wants any more (orphans, and those of owners whose deadline went
away, such as a half-open connection evicted by a SYN flood long before its
retransmission timer) are also swept out whenever the heap has doubled since the
last sweep: otherwise they would keep their owners alive until their time came,
and a flood at a fixed instant would grow the heap without bound.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Protocol

__all__ = ["TimerHeap", "TimerOwner"]

#: calls of one owner's ``on_timer`` in one :meth:`TimerHeap.run` before the rest waits
_MAX_CALLS_PER_RUN = 8
#: the heap is swept when it exceeds this many entries and twice the count after the last sweep
_SWEEP_MIN = 1024


class TimerOwner(Protocol):
    #: time of the owner's live heap entry; managed by :class:`TimerHeap` only
    timer_armed: float | None

    def deadline(self) -> float | None:
        """When the owner next needs :meth:`on_timer` (None: never)."""

    def on_timer(self, now: float) -> None: ...


def _armed(owner: TimerOwner) -> float | None:
    """``owner.timer_armed``, read through a call: after ``owner.timer_armed = None``
    a type checker takes the attribute to stay None across ``owner.on_timer()``, which
    may re-arm it through :meth:`TimerHeap.update` — and a compiled build (mypyc)
    checks that belief at run time."""
    return owner.timer_armed


class TimerHeap:
    __slots__ = ("_counter", "_heap", "_sweep_at")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, TimerOwner]] = []
        self._counter = itertools.count()
        self._sweep_at = _SWEEP_MIN

    def update(self, owner: TimerOwner) -> None:
        """Make sure ``owner`` is woken no later than its current deadline."""
        want = owner.deadline()
        if want is None:
            return
        armed = owner.timer_armed
        if armed is None or want < armed:
            owner.timer_armed = want
            heapq.heappush(self._heap, (want, next(self._counter), owner))
            if len(self._heap) > self._sweep_at:
                self._sweep()

    def _sweep(self) -> None:
        """Drop the entries no owner wants (amortised O(1): runs when the heap has doubled).
        In place, because :meth:`run` holds the list while owners re-arm."""
        live = []
        for entry in self._heap:
            when, _, owner = entry
            if owner.timer_armed != when:
                continue
            if owner.deadline() is None:
                owner.timer_armed = None
                continue
            live.append(entry)
        heapq.heapify(live)
        self._heap[:] = live
        self._sweep_at = max(_SWEEP_MIN, 2 * len(live))

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap:
            when, _, owner = heap[0]
            if owner.timer_armed != when:
                heapq.heappop(heap)  # orphaned by an earlier re-arm
                continue
            want = owner.deadline()
            if want is not None and want <= when:
                return when
            heapq.heappop(heap)
            owner.timer_armed = None
            if want is not None:
                owner.timer_armed = want
                heapq.heappush(heap, (want, next(self._counter), owner))
        return None

    def run(self, now: float) -> None:
        """Call ``on_timer`` of every owner whose deadline has come.  An owner that
        stays due may be called again in the same run (a state machine stepping
        through several expired timers at once), but only a few times: then it
        is put off to just after ``now``, so one poll can never spin on it — even
        when it re-armed itself through :meth:`update` inside ``on_timer``."""
        heap = self._heap
        fired: dict[int, int] = {}
        while heap and heap[0][0] <= now:
            when, _, owner = heapq.heappop(heap)
            if owner.timer_armed != when:
                continue
            owner.timer_armed = None
            want = owner.deadline()
            if want is None:
                continue
            if want <= now:
                key = id(owner)
                calls = fired.get(key, 0)
                if calls >= _MAX_CALLS_PER_RUN:
                    want = now + 1e-6
                else:
                    fired[key] = calls + 1
                    owner.on_timer(now)
                    want = owner.deadline()
                    if want is None:
                        continue
                    if want <= now:
                        want = now + 1e-6
            armed = _armed(owner)  # not owner.timer_armed: on_timer may have re-armed it (below)
            if armed is None or want < armed:
                owner.timer_armed = want
                heapq.heappush(heap, (want, next(self._counter), owner))

    def __len__(self) -> int:
        return len(self._heap)
