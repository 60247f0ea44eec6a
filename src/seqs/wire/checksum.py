"""The Internet checksum (RFC 1071) — the one implementation in seqs.

Python pays about a microsecond per interpreted line, so summing 16-bit words
in a loop (62 µs for 1460 bytes) is out of the question.  Instead the whole
buffer becomes one big integer: because 2**16 ≡ 1 (mod 0xFFFF), the integer
is congruent to the sum of its 16-bit words modulo 0xFFFF, which is exactly
the one's-complement sum (RFC 1071 §2(B): the sum is independent of byte
order and can be deferred).  ``int.from_bytes`` and a one-digit modulo run in
C over the whole buffer (~3 µs for 1460 bytes).  Above a few KB, folding the
integer in halves first is cheaper than the modulo (106 µs vs 177 µs for
64 KB, measured with ``python -m seqs.bench checksum``).

The one subtlety: one's-complement arithmetic has two zeros.  The sum of a
buffer that is not all zero bits is never +0, so a modulo result of 0 for a
non-zero integer stands for 0xFFFF.
"""

from __future__ import annotations

__all__ = [
    "checksum",
    "fold",
    "ones_sum",
    "pseudo_header_sum",
    "update16",
    "valid",
]

from .._typing import BytesLike

_FOLD_HALVES_ABOVE = 4096  # bytes; below this a single modulo is faster


def ones_sum(data: BytesLike, initial: int = 0) -> int:
    """One's-complement sum of ``data`` as 16-bit big-endian words, plus ``initial``.

    The result is in 0..0xFFFF (0 only if everything summed was zero).  An odd
    trailing byte is padded with a zero byte, as RFC 1071 says.
    """
    mv = memoryview(data)
    n = mv.nbytes
    x = int.from_bytes(mv, "big")
    if n & 1:
        x <<= 8
        n += 1
    if n > _FOLD_HALVES_ABOVE:
        bits = n * 8
        while bits > 256:
            half = (bits >> 5) << 4  # a multiple of 16 bits near the middle
            x = (x >> half) + (x & ((1 << half) - 1))
            bits = ((max(bits - half, half) + 16) >> 4) << 4
    x += initial
    if x == 0:
        return 0
    s = x % 0xFFFF
    return s if s else 0xFFFF


def checksum(data: BytesLike, initial: int = 0) -> int:
    """The Internet checksum of ``data`` (with ``initial``, e.g. a pseudo-header sum).

    Put the result in the checksum field; a receiver computing ``checksum``
    over the whole message (checksum field included) gets 0 when it is intact.
    """
    return ~ones_sum(data, initial) & 0xFFFF


def valid(data: BytesLike, initial: int = 0) -> bool:
    """True if ``data`` (checksum field included) plus ``initial`` (a pseudo-header
    sum) checks out: its one's-complement sum is 0xFFFF, negative zero.

    The receive path's form of :func:`checksum`, as few operations as it can be:
    a sum congruent to 0 modulo 0xFFFF is 0xFFFF unless everything summed was
    zero (positive zero, which a real header never is).
    """
    x = int.from_bytes(data, "big")
    if len(data) & 1:
        x <<= 8
    x += initial
    return x != 0 and x % 0xFFFF == 0


def fold(x: int) -> int:
    """Fold an unbounded non-negative sum of 16-bit words into 0..0xFFFF."""
    if x == 0:
        return 0
    s = x % 0xFFFF
    return s if s else 0xFFFF


def pseudo_header_sum(src: int, dst: int, proto: int, length: int) -> int:
    """Unfolded sum of the IPv4 pseudo-header (RFC 793 §3.1, RFC 768).

    Addresses are 32-bit integers.  The result is meant as ``initial`` for
    :func:`checksum`; it is not folded, so pass it on as it is.
    """
    return (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF) + proto + length


def update16(old_checksum: int, old_word: int, new_word: int) -> int:
    """Checksum after one 16-bit word changed, without re-summing (RFC 1624 eqn. 3).

    HC' = ~(~HC + ~m + m')
    """
    s = (~old_checksum & 0xFFFF) + (~old_word & 0xFFFF) + new_word
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
