"""What every sans-IO socket shares: readiness notification and ephemeral ports.

A socket never calls its user directly from inside packet processing.  When
its readiness changes it queues its ``on_event`` callback on the interface's
``ready`` list, and the interface runs the list once the frame (or poll) is
fully processed — so a callback may safely call back into the stack.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from ..iface import Interface

__all__ = ["EPHEMERAL_HIGH", "EPHEMERAL_LOW", "Notifier", "pick_ephemeral_port"]

#: RFC 6056 §3.2: the whole range 1024..65535 may be used; we use IANA's dynamic range.
EPHEMERAL_LOW = 49152
EPHEMERAL_HIGH = 65535


def pick_ephemeral_port(rng: random.Random, in_use: Callable[[int], bool]) -> int:
    """RFC 6056 §3.3.1 (Algorithm 1): a random start, then the next free port.

    Raises OSError(EADDRINUSE) when the whole range is taken.
    """
    count = EPHEMERAL_HIGH - EPHEMERAL_LOW + 1
    start = rng.randrange(count)
    for i in range(count):
        port = EPHEMERAL_LOW + (start + i) % count
        if not in_use(port):
            return port
    raise OSError(98, "no free ephemeral port")


class Notifier:
    """Mixin: deferred readiness callbacks (subclasses declare the slots)."""

    iface: Interface
    on_event: Callable[[], None] | None
    _event_queued: bool

    def _notify(self) -> None:
        if self.on_event is not None and not self._event_queued:
            self._event_queued = True
            self.iface.ready.append(self._fire)

    def _fire(self) -> None:
        self._event_queued = False
        cb = self.on_event
        if cb is not None:
            cb()
