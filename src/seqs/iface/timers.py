"""One timer heap for everything in a stack that needs waking up at a time.

Owners (an ARP resolver, a TCP connection, a reassembly buffer) know when they
next need attention (``deadline()``) and call :meth:`TimerHeap.update` after
anything that may have moved it.  An owner has at most one live heap entry,
at ``timer_armed``: a deadline that moves *later* costs nothing (the entry
fires early, sees the new deadline and re-arms), a deadline that moves
*earlier* pushes one new entry and orphans the old one, which is skipped when
it surfaces.  So rescheduling a retransmission timer on every ACK is O(1),
and the per-tick cost does not depend on how many owners exist.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Protocol

__all__ = ["TimerHeap", "TimerOwner"]


class TimerOwner(Protocol):
    #: time of the owner's live heap entry; managed by :class:`TimerHeap` only
    timer_armed: float | None

    def deadline(self) -> float | None:
        """When the owner next needs :meth:`on_timer` (None: never)."""

    def on_timer(self, now: float) -> None: ...


class TimerHeap:
    __slots__ = ("_counter", "_heap")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, TimerOwner]] = []
        self._counter = itertools.count()

    def update(self, owner: TimerOwner) -> None:
        """Make sure ``owner`` is woken no later than its current deadline."""
        want = owner.deadline()
        if want is None:
            return
        armed = owner.timer_armed
        if armed is None or want < armed:
            owner.timer_armed = want
            heapq.heappush(self._heap, (want, next(self._counter), owner))

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
        """Call ``on_timer`` of every owner whose deadline has come (once each)."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, _, owner = heapq.heappop(heap)
            if owner.timer_armed != when:
                continue
            owner.timer_armed = None
            want = owner.deadline()
            if want is None:
                continue
            if want <= now:
                owner.on_timer(now)
                want = owner.deadline()
                if want is None:
                    continue
                if want <= now:
                    # The owner did not move its deadline: guard against a busy loop.
                    want = now + 1e-6
            if owner.timer_armed is None or want < owner.timer_armed:
                owner.timer_armed = want
                heapq.heappush(heap, (want, next(self._counter), owner))

    def __len__(self) -> int:
        return len(self._heap)
