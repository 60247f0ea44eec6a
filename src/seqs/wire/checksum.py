"""The Internet checksum (RFC 1071) — the one implementation in seqs.

Python pays about a microsecond per interpreted line, so summing 16-bit words
in a loop (62 µs for 1460 bytes) is out of the question.  Instead the whole
buffer becomes one big integer: because 2**16 ≡ 1 (mod 0xFFFF), the integer
is congruent to the sum of its 16-bit words modulo 0xFFFF, which is exactly
the one's-complement sum (RFC 1071 §2(B): the sum is independent of byte
order and can be deferred).  ``int.from_bytes`` and a one-digit modulo run in
C over the whole buffer.

The modulo divides once per 30-bit digit, and division is slow (on the
project machine the modulo of a 1480-byte integer took longer than building
it).  Folding the integer — adding its high half to its low half, at a
multiple of 16 bits, which keeps it congruent — costs a shift, a mask and an
add, so :func:`word_sum` folds a segment-sized integer three times before the
modulo: 9.8 instead of 12.7 µs for a 1480-byte segment there (``python -m
seqs.bench parse`` measures the checksum).  Above a few KB it folds in
halves until small.

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
    "word_sum",
]

from .._typing import BytesLike

_FOLD_HALVES_ABOVE = 4096  # bytes; below this the fixed folds or a single modulo are faster
# fixed folds for buffers of 1025..1504 bytes (< 2**12032): masks made once
_M6016 = (1 << 6016) - 1
_M3008 = (1 << 3008) - 1
_M1504 = (1 << 1504) - 1


def word_sum(data: BytesLike) -> int:
    """A non-negative integer congruent modulo 0xFFFF to the sum of ``data``'s 16-bit
    big-endian words (an odd trailing byte padded with zero, as RFC 1071 says), and
    small enough for a cheap modulo: add a pseudo-header sum, then fold or compare."""
    x = int.from_bytes(data, "big")
    n = len(data)
    if n & 1:
        x <<= 8
        n += 1
    if n > 1024:
        if n <= 1504:
            x = (x >> 6016) + (x & _M6016)
            x = (x >> 3008) + (x & _M3008)
            x = (x >> 1504) + (x & _M1504)
        elif n > _FOLD_HALVES_ABOVE:
            bits = n * 8
            while bits > 256:
                half = (bits >> 5) << 4  # a multiple of 16 bits near the middle
                x = (x >> half) + (x & ((1 << half) - 1))
                bits = ((max(bits - half, half) + 16) >> 4) << 4
    return x


def ones_sum(data: BytesLike, initial: int = 0) -> int:
    """One's-complement sum of ``data`` as 16-bit big-endian words, plus ``initial``.

    The result is in 0..0xFFFF (0 only if everything summed was zero).
    """
    x = word_sum(memoryview(data).cast("B")) + initial
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

    A sum congruent to 0 modulo 0xFFFF is 0xFFFF unless everything summed was
    zero (positive zero, which a real header never is).
    """
    x = word_sum(data) + initial
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
