"""Sequence numbers: the one place that knows they wrap at 2**32.

On the wire, sequence and acknowledgment numbers are 32-bit and compared
modulo 2**32 (RFC 9293 §3.4).  Inside a connection seqs keeps them
*unwrapped*: plain, unbounded Python ints that never wrap, so every comparison
in the state machine is an ordinary ``<`` and no rule can forget the modulus.
A number arriving from the wire is unwrapped against a nearby reference
(RCV.NXT for sequence numbers, SND.UNA for acknowledgments): of all the
integers congruent to it mod 2**32, the one closest to the reference.  That
is exact as long as the two are less than 2**31 apart, which the window
rules guarantee for anything acceptable; what is further away is garbage
either way and fails the acceptability tests.
"""

from __future__ import annotations

__all__ = ["MOD", "seq_lt", "seq_lte", "unwrap", "wrap"]

MOD = 1 << 32
_HALF = 1 << 31
_MASK = MOD - 1


def unwrap(wire: int, ref: int) -> int:
    """The unwrapped number congruent to ``wire`` (mod 2**32) closest to ``ref``."""
    return ref + ((wire - ref + _HALF) & _MASK) - _HALF


def wrap(n: int) -> int:
    """The 32-bit wire form of an unwrapped number."""
    return n & _MASK


def seq_lt(a: int, b: int) -> bool:
    """a < b for 32-bit values compared modulo 2**32 (for timestamps, RFC 7323 §5.2)."""
    return ((a - b) & _MASK) > _HALF or (a != b and ((a - b) & _MASK) == _HALF)


def seq_lte(a: int, b: int) -> bool:
    return a == b or seq_lt(a, b)
