"""Initial sequence numbers, RFC 6528 §3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey).

M is a clock that ticks every 4 µs (from the ``now`` we are given); F is a
keyed hash (BLAKE2s with a random 128-bit key per stack), so ISNs of
different connections are unpredictable to an off-path attacker while those
of successive incarnations of the same 4-tuple still increase with time.
"""

from __future__ import annotations

import hashlib
import struct

__all__ = ["IsnGenerator"]

_TUPLE = struct.Struct("!IHIH")


class IsnGenerator:
    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("ISN key must be at least 16 bytes")
        self._key = key[:32]

    def isn(self, local: int, lport: int, remote: int, rport: int, now: float) -> int:
        h = hashlib.blake2s(_TUPLE.pack(local, lport, remote, rport), key=self._key, digest_size=4).digest()
        m = int(now * 250_000)  # 4 µs ticks
        return (m + int.from_bytes(h, "big")) & 0xFFFFFFFF
