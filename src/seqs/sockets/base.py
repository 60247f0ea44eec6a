"""What every sans-IO socket shares: readiness notification and ephemeral ports.

Readiness callbacks go through :class:`seqs.iface.notify.Notifier` (re-exported
here), shared with TCP connections and listeners.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from ..iface.notify import Notifier

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
