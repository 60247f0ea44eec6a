"""SYN cookies (RFC 4987 §3.6): the numbers a listener answers a SYN with when it keeps no state.

This module is the codec only — pure functions of a secret key, the segment's
numbers and ``now``.  When cookies are used, and how the connection is built
from a valid one, is :class:`seqs.sockets.tcp.TcpListener`'s business.

**The cookie** is our ISN in the SYN-ACK.  After Linux (net/ipv4/syncookies.c),
with keyed BLAKE2s for its hashes, it is, modulo 2^32::

    cookie = W + ( slot mod 8 << 29  |  mss index << 26  |  M )

    W = BLAKE2s_k("whiten", local, lport, remote, rport, client ISN)      32 bits
    M = BLAKE2s_k("mac", local, lport, remote, rport, client ISN,
                  slot, mss index) mod 2^26                                26 bits
    slot = floor(now / 64 s)

The whitening W makes cookie ISNs as unpredictable as RFC 6528 ones (the
clear fields do not show); M authenticates the 4-tuple, the client's ISN (the
ACK's SEQ - 1), the time slot and the MSS index.  The ACK acknowledges
cookie + 1; :meth:`SynCookies.check` removes W, takes the slot whose low three
bits match among the current and the previous one (so a cookie lives 64 to
128 s), and recomputes M.  A forged ACK validates with probability about
2^-28 (two slots out of eight, then 26 bits of MAC).

**The MSS** the SYN offered is rounded down to one of eight values
(:data:`MSS_TABLE`; 536, the RFC 9293 §3.7.1 default, when it offered none),
so we never send segments larger than the client asked for.

**Other options.**  The cookie has no room for window scaling and SACK-permitted;
as Linux does, when the SYN carried timestamps (RFC 7323) they ride in the low
:data:`TS_OPT_BITS` bits of our SYN-ACK's TSval, which the client's ACK echoes
in TSecr (:func:`encode_ts_options`, :func:`decode_ts_options`).  The TSval is
rounded *down* to make room, so it never runs ahead of the connection's TS
clock, whose per-connection offset is itself a keyed hash of the 4-tuple
(:meth:`SynCookies.ts_offset`).  Without timestamps, a cookie connection goes
without window scaling and SACK.
"""

from __future__ import annotations

import hashlib
import struct

__all__ = ["MSS_TABLE", "SLOT_SECONDS", "TS_OPT_BITS", "SynCookies", "decode_ts_options", "encode_ts_options",
           "mss_index"]

#: the MSS values a cookie can carry (3 bits); the SYN's MSS is rounded down to one of them.
#: 64 is the least _negotiate ever uses; 536 the default; then tunnels (1220, 1380), PPPoE
#: with and without timestamps (1440, 1452), Ethernet (1460) and 9000-byte jumbo frames.
MSS_TABLE = (64, 536, 1220, 1380, 1440, 1452, 1460, 8960)
#: length of one time slot of the cookie's clock; a cookie is valid in its slot and the next
SLOT_SECONDS = 64.0
#: low bits of the SYN-ACK's TSval that carry the options: 4 bits of window shift
#: (0-14; 15 means none) and 1 bit of SACK-permitted
TS_OPT_BITS = 5
_TS_MASK = (1 << TS_OPT_BITS) - 1
_NO_WSCALE = 15
_SACK_BIT = 16

_TUPLE_ISN = struct.Struct("!IHIHI")
_TUPLE_ISN_SLOT = struct.Struct("!IHIHIqB")
_TUPLE = struct.Struct("!IHIH")
_M32 = 0xFFFFFFFF
_M26 = (1 << 26) - 1


def mss_index(mss: int) -> int:
    """The index of the largest table entry not above ``mss`` (0 if all are)."""
    for i in range(len(MSS_TABLE) - 1, 0, -1):
        if MSS_TABLE[i] <= mss:
            return i
    return 0


class SynCookies:
    """Makes and checks cookies under one secret key (random, per stack)."""

    __slots__ = ("_mac_state", "_ts_state", "_whiten_state", "slot_seconds")

    def __init__(self, key: bytes, slot_seconds: float = SLOT_SECONDS) -> None:
        if len(key) < 16:
            raise ValueError("SYN cookie key must be at least 16 bytes")
        key = key[:32]
        # Keyed states made once and copied per use: a flood makes a cookie per SYN, and
        # copying skips the key block's compression (1.8 instead of 4.3 µs a hash).
        self._whiten_state = hashlib.blake2s(key=key, digest_size=4, person=b"ckwhiten")
        self._mac_state = hashlib.blake2s(key=key, digest_size=4, person=b"ckmac")
        self._ts_state = hashlib.blake2s(key=key, digest_size=4, person=b"cktsoff")
        self.slot_seconds = slot_seconds

    @property
    def lifetime(self) -> float:
        """The longest a cookie stays valid: the rest of its slot and the whole next one."""
        return 2 * self.slot_seconds

    def _whiten(self, local: int, lport: int, remote: int, rport: int, client_isn: int) -> int:
        h = self._whiten_state.copy()
        h.update(_TUPLE_ISN.pack(local, lport, remote, rport, client_isn))
        return int.from_bytes(h.digest(), "big")

    def _mac(self, local: int, lport: int, remote: int, rport: int, client_isn: int, slot: int, index: int) -> int:
        h = self._mac_state.copy()
        h.update(_TUPLE_ISN_SLOT.pack(local, lport, remote, rport, client_isn, slot, index))
        return int.from_bytes(h.digest(), "big") & _M26

    def make(self, local: int, lport: int, remote: int, rport: int, client_isn: int, mss: int, now: float) -> int:
        """The cookie (our ISN) for a SYN with sequence number ``client_isn`` offering ``mss``."""
        slot = int(now // self.slot_seconds)
        index = mss_index(mss)
        body = ((slot & 7) << 29) | (index << 26) | self._mac(local, lport, remote, rport, client_isn, slot, index)
        return (self._whiten(local, lport, remote, rport, client_isn) + body) & _M32

    def check(self, local: int, lport: int, remote: int, rport: int, client_isn: int, cookie: int,
              now: float) -> int | None:
        """The MSS a valid cookie carries, or None.  ``cookie`` is the ACK's ACK - 1,
        ``client_isn`` its SEQ - 1 (both modulo 2^32)."""
        body = (cookie - self._whiten(local, lport, remote, rport, client_isn)) & _M32
        index = (body >> 26) & 7
        current = int(now // self.slot_seconds)
        for slot in (current, current - 1):
            if slot & 7 == body >> 29:
                if self._mac(local, lport, remote, rport, client_isn, slot, index) == body & _M26:
                    return MSS_TABLE[index]
                return None
        return None

    def ts_offset(self, local: int, lport: int, remote: int, rport: int) -> int:
        """The TS clock offset of a cookie connection: the SYN-ACK that has no connection
        yet and the connection made from its ACK must draw TSvals from the same clock."""
        h = self._ts_state.copy()
        h.update(_TUPLE.pack(local, lport, remote, rport))
        return int.from_bytes(h.digest(), "big")


def encode_ts_options(ts_now: int, wscale: int | None, sack_permitted: bool) -> int:
    """Our SYN-ACK's TSval: the TS clock ``ts_now`` with the options in its low bits,
    rounded down so that it is never ahead of the clock (the client's PAWS, RFC 7323 §5,
    must accept the connection's later TSvals)."""
    opts = (_NO_WSCALE if wscale is None else min(wscale, 14)) | (_SACK_BIT if sack_permitted else 0)
    ts = (ts_now & ~_TS_MASK & _M32) | opts
    if opts > ts_now & _TS_MASK:
        ts = (ts - (1 << TS_OPT_BITS)) & _M32
    return ts


def decode_ts_options(tsecr: int, ts_now: int, max_age: float) -> tuple[int | None, bool] | None:
    """(window shift or None, SACK-permitted) from the ACK's TSecr, or None if that TSecr
    cannot be a TSval we sent within ``max_age`` seconds (nor one from the future)."""
    age_ms = (ts_now - tsecr) & _M32
    if age_ms > max_age * 1000 + (1 << TS_OPT_BITS):
        return None
    wscale = tsecr & 0xF
    return (None if wscale == _NO_WSCALE else wscale), bool(tsecr & _SACK_BIT)
