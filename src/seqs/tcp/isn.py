"""Initial sequence numbers, RFC 6528 §3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey).

M is a clock that ticks every 4 µs (from the ``now`` we are given); F is a
keyed hash (BLAKE2s with a random 128-bit key per stack), so ISNs of
different connections are unpredictable to an off-path attacker while those
of successive incarnations of the same 4-tuple still increase with time.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Protocol

__all__ = ["IsnGenerator", "IsnSource"]

_TUPLE = struct.Struct("!IHIH")


class IsnSource(Protocol):
    """Where a TCP table takes initial sequence numbers from (``TcpTable.isn_source``):
    :class:`IsnGenerator`, or a fixed one in a packet-script test."""

    def isn(self, local: int, lport: int, remote: int, rport: int, now: float) -> int: ...


class IsnGenerator:
    __slots__ = ("_keyed",)

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("ISN key must be at least 16 bytes")
        # the keyed state is made once and copied per ISN: the copy skips compressing
        # the key block again (about half the cost of a fresh keyed hash)
        self._keyed = hashlib.blake2s(key=key[:32], digest_size=4)

    def isn(self, local: int, lport: int, remote: int, rport: int, now: float) -> int:
        h = self._keyed.copy()
        h.update(_TUPLE.pack(local, lport, remote, rport))
        m = int(now * 250_000)  # 4 µs ticks
        return (m + int.from_bytes(h.digest(), "big")) & 0xFFFFFFFF
