"""Seeded impairments: loss, delay with jitter, reordering, duplication, corruption.

:class:`FaultInjector` is sans-IO: it takes a frame and the time and says
which frames leave when.  The virtual-time network and the real-time
:class:`FaultyDevice` wrapper both use it, so a fault schedule behaves the
same in simulation and against the kernel.  The seed makes a run repeatable.
"""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass

from .._typing import BytesLike
from .base import Device, FrameHandler

__all__ = ["FaultConfig", "FaultInjector", "FaultyDevice"]


@dataclass(frozen=True, slots=True)
class FaultConfig:
    #: probability a frame is lost
    loss: float = 0.0
    #: probability a frame is delivered twice
    duplicate: float = 0.0
    #: probability a frame is held back ``reorder_delay`` so later ones pass it
    reorder: float = 0.0
    reorder_delay: float = 0.005
    #: probability one bit is flipped (beyond ``protect`` bytes, so the
    #: Ethernet header stays intact and the IP/transport checksums must catch it)
    corrupt: float = 0.0
    protect: int = 14
    #: fixed one-way delay and uniform extra jitter, seconds
    delay: float = 0.0
    jitter: float = 0.0
    #: link rate in bytes per second (0: unlimited); frames queue behind each other
    rate: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("loss", "duplicate", "reorder", "corrupt"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in 0..1, got {p}")
        if self.delay < 0 or self.jitter < 0 or self.reorder_delay < 0 or self.rate < 0:
            raise ValueError("delays and rate must not be negative")

    @property
    def active(self) -> bool:
        return any((self.loss, self.duplicate, self.reorder, self.corrupt, self.delay, self.jitter, self.rate))


class FaultInjector:
    __slots__ = ("_busy_until", "config", "corrupted", "dropped", "duplicated", "reordered", "rng")

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.dropped = 0
        self.duplicated = 0
        self.reordered = 0
        self.corrupted = 0
        self._busy_until = 0.0

    def process(self, frame: BytesLike, now: float, skip: int = 0) -> list[tuple[float, bytes]]:
        """(release time, frame) for each copy of ``frame`` that survives.

        ``skip`` bytes of link header in front of Ethernet (a virtio-net header)
        are never corrupted.
        """
        c = self.config
        r = self.rng
        if c.loss and r.random() < c.loss:
            self.dropped += 1
            return []
        data = bytes(frame)
        if c.corrupt and r.random() < c.corrupt and len(data) > skip + c.protect:
            pos = r.randrange(skip + c.protect, len(data))
            b = bytearray(data)
            b[pos] ^= 1 << r.randrange(8)
            data = bytes(b)
            self.corrupted += 1
        t = now
        if c.rate:
            start = max(now, self._busy_until)
            self._busy_until = start + len(data) / c.rate
            t = self._busy_until
        t += c.delay + (r.random() * c.jitter if c.jitter else 0.0)
        if c.reorder and r.random() < c.reorder:
            t += c.reorder_delay
            self.reordered += 1
        out = [(t, data)]
        if c.duplicate and r.random() < c.duplicate:
            out.append((t + (r.random() * c.jitter if c.jitter else 0.0), data))
            self.duplicated += 1
        return out


class FaultyDevice(Device):
    """Wraps a real device and impairs what passes in each direction."""

    def __init__(self, inner: Device, *, tx: FaultConfig | None = None, rx: FaultConfig | None = None) -> None:
        self.inner = inner
        self.mtu = inner.mtu
        self.vnet_hdr = inner.vnet_hdr
        self.name = f"faulty({inner.name})"
        self.tx_faults = FaultInjector(tx or FaultConfig())
        self.rx_faults = FaultInjector(rx or FaultConfig())
        self._skip = 12 if inner.vnet_hdr else 0
        self._counter = itertools.count()
        self._tx_held: list[tuple[float, int, bytes]] = []
        self._rx_held: list[tuple[float, int, bytes]] = []

    def fileno(self) -> int:
        return self.inner.fileno()

    def read(self, handler: FrameHandler, now: float, limit: int = 64) -> int:
        held = self._rx_held

        def take(frame: memoryview, _at: float) -> None:
            for t, data in self.rx_faults.process(frame, now, self._skip):
                heapq.heappush(held, (t, next(self._counter), data))

        n = self.inner.read(take, now, limit)
        count = 0
        while held and held[0][0] <= now:
            handler(memoryview(heapq.heappop(held)[2]), now)
            count += 1
        return max(n, count)

    def send(self, frame: BytesLike, now: float) -> None:
        for t, data in self.tx_faults.process(frame, now, self._skip):
            if t <= now:
                self.inner.send(data, now)
            else:
                heapq.heappush(self._tx_held, (t, next(self._counter), data))

    def next_deadline(self) -> float | None:
        times = [h[0][0] for h in (self._tx_held, self._rx_held) if h]
        inner = self.inner.next_deadline()
        if inner is not None:
            times.append(inner)
        return min(times) if times else None

    def poll(self, now: float) -> None:
        while self._tx_held and self._tx_held[0][0] <= now:
            self.inner.send(heapq.heappop(self._tx_held)[2], now)
        self.inner.poll(now)

    def close(self) -> None:
        self.inner.close()
