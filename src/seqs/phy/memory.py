"""An in-memory Ethernet segment joining stacks, driven on virtual time.

:class:`VirtualNetwork` is a learning switch with one port per stack; each
port can impair what its stack sends through a seeded :class:`FaultInjector`.
Time only moves when the network says so — to the next frame delivery or the
next stack deadline — so a simulated minute of TCP retransmissions runs in
milliseconds and every run with the same seeds is identical.  This is both
the simulation tier of the tests and the engine of ``seqs demo``.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING

from .._typing import BytesLike
from .faults import FaultConfig, FaultInjector
from .pcap import PcapWriter

if TYPE_CHECKING:
    from ..stack import Stack

__all__ = ["Port", "SimulationStuck", "VirtualNetwork"]


class SimulationStuck(RuntimeError):
    """A stack kept asking to be polled at the same instant without progress."""


class Port:
    __slots__ = ("faults", "index", "network", "stack")

    def __init__(self, network: VirtualNetwork, index: int, stack: Stack, faults: FaultConfig | None) -> None:
        self.network = network
        self.index = index
        self.stack = stack
        self.faults = FaultInjector(faults) if faults is not None and faults.active else None

    def set_faults(self, faults: FaultConfig | None) -> None:
        self.faults = FaultInjector(faults) if faults is not None and faults.active else None


class VirtualNetwork:
    def __init__(self, *, start: float = 0.0, pcap: PcapWriter | None = None, epoch: float = 1.7e9) -> None:
        self.now = start
        self.ports: list[Port] = []
        self.pcap = pcap
        self.epoch = epoch
        self.frames_delivered = 0
        self._macs: dict[bytes, Port] = {}
        self._queue: list[tuple[float, int, int, bytes]] = []
        self._counter = itertools.count()
        #: observers called with (time, sender port index, frame) for every frame sent
        self.taps: list[Callable[[float, int, bytes], None]] = []

    def attach(self, stack: Stack, faults: FaultConfig | None = None) -> Port:
        """Plug ``stack`` in; ``faults`` impair the frames it sends."""
        if stack.iface.config.vnet_hdr:
            raise ValueError("stacks on a virtual network must not expect a virtio-net header")
        port = Port(self, len(self.ports), stack, faults)
        self.ports.append(port)
        return port

    # -- moving frames ---------------------------------------------------------------

    def _transmit(self, port: Port) -> None:
        for frame in port.stack.take_tx():
            data = bytes(frame)
            if self.pcap is not None:
                self.pcap.write(data, self.epoch + self.now)
            for tap in self.taps:
                tap(self.now, port.index, data)
            if port.faults is None:
                copies = [(self.now, data)]
            else:
                copies = port.faults.process(data, self.now)
            for t, copy in copies:
                heapq.heappush(self._queue, (t, next(self._counter), port.index, copy))

    def _deliver(self, sender: int, frame: bytes) -> None:
        if len(frame) < 14:
            return
        self._macs[frame[6:12]] = self.ports[sender]
        dst = frame[0:6]
        if not frame[0] & 1:
            target = self._macs.get(dst)
            if target is not None:
                if target.index != sender:
                    target.stack.receive(frame, self.now)
                    self.frames_delivered += 1
                return
        for p in self.ports:
            if p.index != sender:
                p.stack.receive(frame, self.now)
                self.frames_delivered += 1

    # -- running ---------------------------------------------------------------------

    def next_event(self) -> float | None:
        times = [self._queue[0][0]] if self._queue else []
        for p in self.ports:
            d = p.stack.next_deadline()
            if d is not None:
                times.append(d)
        return min(times) if times else None

    def run_until(self, predicate: Callable[[], bool] | None = None, timeout: float = 60.0) -> bool:
        """Advance virtual time until ``predicate()`` holds (True) or ``timeout``
        virtual seconds pass or nothing is left to happen (False)."""
        end = self.now + timeout
        spins = 0
        last = self.now
        while True:
            for p in self.ports:
                d = p.stack.next_deadline()
                if d is not None and d <= self.now:
                    p.stack.poll(self.now)
                self._transmit(p)
            q = self._queue
            while q and q[0][0] <= self.now:
                _, _, sender, frame = heapq.heappop(q)
                self._deliver(sender, frame)
            for p in self.ports:
                self._transmit(p)
            if predicate is not None and predicate():
                return True
            # the predicate may have driven a stack (sent data): those frames leave now
            for p in self.ports:
                self._transmit(p)
            nxt = self.next_event()
            if nxt is None:
                return False
            if nxt > end:
                self.now = end
                for p in self.ports:
                    p.stack.poll(self.now)
                    self._transmit(p)
                return predicate() if predicate is not None else False
            if nxt <= last:
                spins += 1
                if spins > 100_000:
                    raise SimulationStuck(f"no progress at t={self.now:.6f}")
            else:
                spins = 0
            self.now = max(self.now, nxt)
            last = self.now

    def run_for(self, seconds: float) -> None:
        self.run_until(None, seconds)

    def send_raw(self, sender: Port, frame: BytesLike) -> None:
        """Inject a frame as if ``sender``'s stack had sent it (for scripted tests)."""
        heapq.heappush(self._queue, (self.now, next(self._counter), sender.index, bytes(frame)))
