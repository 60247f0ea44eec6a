"""The one timer heap of a stack: lazy deletion, next deadline, one firing per owner per run.

The owners here are minimal real ``TimerOwner`` implementations: a deadline
the test moves by hand and a log of firings.
"""

from __future__ import annotations

from seqs.iface import TimerHeap


class Owner:
    """A TimerOwner whose deadline the test sets; ``on_timer`` logs and applies ``then``."""

    def __init__(self, name: str, deadline: float | None, then: float | None = None) -> None:
        self.name = name
        self.timer_armed: float | None = None
        self.when = deadline
        self.then = then
        self.fired: list[float] = []

    def deadline(self) -> float | None:
        return self.when

    def on_timer(self, now: float) -> None:
        self.fired.append(now)
        self.when = self.then


def test_deadline_moving_later_pushes_nothing() -> None:
    """Rescheduling a retransmission timer on every ACK must cost O(1): the old entry
    stays, fires early, sees the later deadline and re-arms."""
    heap = TimerHeap()
    o = Owner("rto", 5.0)
    heap.update(o)
    assert len(heap) == 1
    for t in (6.0, 7.0, 8.0, 10.0):
        o.when = t
        heap.update(o)
    assert len(heap) == 1
    heap.run(5.0)  # the early entry surfaces: nothing fires, the owner is re-armed
    assert o.fired == []
    assert len(heap) == 1 and o.timer_armed == 10.0
    assert heap.next_deadline() == 10.0
    heap.run(10.0)
    assert o.fired == [10.0]


def test_deadline_moving_earlier_pushes_one_entry_and_orphans_the_old() -> None:
    heap = TimerHeap()
    o = Owner("rto", 5.0, then=None)
    heap.update(o)
    o.when = 3.0
    heap.update(o)
    assert len(heap) == 2
    assert heap.next_deadline() == 3.0
    heap.run(5.0)
    assert o.fired == [5.0]  # once, although both entries were due
    assert len(heap) == 0
    assert heap.next_deadline() is None


def test_next_deadline_skips_orphans_and_reports_a_later_move() -> None:
    heap = TimerHeap()
    o = Owner("a", 5.0)
    heap.update(o)
    o.when = 2.0
    heap.update(o)  # entry at 5 is now an orphan
    o.when = 9.0  # moved later without update: the entry at 2 is early
    assert heap.next_deadline() == 9.0
    assert len(heap) == 1  # both stale entries gone, one live entry at 9
    o.when = None
    assert heap.next_deadline() is None
    assert len(heap) == 0


def test_next_deadline_is_the_earliest_owner() -> None:
    heap = TimerHeap()
    owners = [Owner(str(t), t) for t in (7.0, 3.0, 5.0)]
    for o in owners:
        heap.update(o)
    assert heap.next_deadline() == 3.0
    heap.run(3.0)
    assert [o.fired for o in owners] == [[], [3.0], []]
    assert heap.next_deadline() == 5.0


def test_each_owner_fires_at_most_once_per_run_even_if_it_stays_due() -> None:
    """An owner that does not move its deadline must not spin the loop: it is re-armed
    a microsecond later and fires again on the next run only."""
    heap = TimerHeap()
    stuck = Owner("stuck", 1.0, then=1.0)
    other = Owner("other", 1.0, then=None)
    heap.update(stuck)
    heap.update(other)
    heap.run(2.0)
    assert stuck.fired == [2.0] and other.fired == [2.0]
    heap.run(2.0)  # same instant: the stuck owner was pushed just past it
    assert stuck.fired == [2.0]
    nxt = heap.next_deadline()
    assert nxt is not None and 2.0 < nxt <= 2.0 + 1e-5
    heap.run(nxt)
    assert stuck.fired == [2.0, nxt] and other.fired == [2.0]


def test_owner_that_reschedules_itself_is_rearmed() -> None:
    heap = TimerHeap()
    o = Owner("periodic", 1.0)
    heap.update(o)
    for t in range(1, 6):
        o.then = t + 1.0
        heap.run(float(t))
    assert o.fired == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert heap.next_deadline() == 6.0
    assert len(heap) == 1


def test_owner_without_a_deadline_is_never_armed() -> None:
    heap = TimerHeap()
    o = Owner("idle", None)
    heap.update(o)
    assert len(heap) == 0 and heap.next_deadline() is None
    heap.run(100.0)
    assert o.fired == []


def test_nothing_fires_before_its_time() -> None:
    heap = TimerHeap()
    o = Owner("a", 10.0)
    heap.update(o)
    heap.run(9.999)
    assert o.fired == []
    assert heap.next_deadline() == 10.0


def test_many_reschedules_later_keep_the_heap_at_one_entry_per_owner() -> None:
    heap = TimerHeap()
    owners = [Owner(str(i), 1.0 + i) for i in range(100)]
    for o in owners:
        heap.update(o)
    for step in range(1, 50):
        for o in owners:
            o.when = o.when + step  # type: ignore[operator]
            heap.update(o)
    assert len(heap) == 100
