"""Round-trip time estimation and the retransmission timeout (RFC 6298).

Samples come from timestamps (RFC 7323 §4, every ACK that advances) or, without
them, from one timed segment at a time, never from a retransmitted one (Karn's
algorithm, RFC 6298 §3).
"""

from __future__ import annotations

__all__ = ["RttEstimator"]

_ALPHA = 1 / 8
_BETA = 1 / 4
_K = 4


class RttEstimator:
    __slots__ = ("_rto", "backoff", "granularity", "rto_max", "rto_min", "rttvar", "srtt")

    def __init__(self, initial: float = 1.0, rto_min: float = 0.2, rto_max: float = 60.0,
                 granularity: float = 0.001) -> None:
        self.srtt: float | None = None
        self.rttvar = 0.0
        self._rto = initial  # RFC 6298 §2.1: 1 s before any sample
        self.rto_min = rto_min
        self.rto_max = rto_max
        self.granularity = granularity
        #: exponent of the current exponential backoff (RFC 6298 §5.5)
        self.backoff = 0

    def sample(self, rtt: float) -> None:
        if rtt < 0.0:
            rtt = 0.0
        srtt = self.srtt
        if srtt is None:  # RFC 6298 §2.2
            self.srtt = srtt = rtt
            self.rttvar = rttvar = rtt / 2
        else:  # RFC 6298 §2.3
            self.rttvar = rttvar = (1 - _BETA) * self.rttvar + _BETA * abs(srtt - rtt)
            self.srtt = srtt = (1 - _ALPHA) * srtt + _ALPHA * rtt
        k = _K * rttvar
        self._rto = srtt + (k if k > self.granularity else self.granularity)
        self.backoff = 0

    @property
    def rto(self) -> float:
        """The current timeout, backed off and clamped (RFC 6298 §2.4, §2.5, §5.5)."""
        rto = max(self._rto, self.rto_min) * (1 << self.backoff)
        return min(rto, self.rto_max)

    def handshake_timed_out(self) -> None:
        """RFC 6298 §5.7: the SYN (or SYN,ACK) timed out and, by Karn, gave no sample:
        data transmission starts with an RTO of 3 s rather than the backed-off one."""
        if self.srtt is None:
            self._rto = max(self._rto, 3.0)
            self.backoff = 0

    def back_off(self) -> None:
        if (max(self._rto, self.rto_min) * (1 << self.backoff)) < self.rto_max:
            self.backoff += 1
