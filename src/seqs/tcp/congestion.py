"""Congestion control behind one small interface: NewReno (RFC 5681, RFC 6582) and
CUBIC (RFC 9438), chosen by name from :data:`ALGORITHMS`.

The connection tells the controller about ACKs, loss detected by duplicate
ACKs (fast retransmit), and timeouts; the controller owns ``cwnd`` and
``ssthresh`` in bytes.  Recovery bookkeeping (the NewReno "recover" point,
partial ACKs) stays in the connection, because it is the same for both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

__all__ = ["ALGORITHMS", "CongestionControl", "Cubic", "NewReno", "initial_window"]


def initial_window(mss: int) -> int:
    """RFC 6928 §2: IW = min(10*MSS, max(2*MSS, 14600))."""
    return min(10 * mss, max(2 * mss, 14600))


class CongestionControl:
    name: ClassVar[str] = "base"

    def __init__(self, mss: int) -> None:
        self.mss = mss
        self.cwnd = initial_window(mss)
        self.ssthresh = 1 << 30  # RFC 5681 §3.1: arbitrarily high at first

    def on_ack(self, acked: int, flight: int, now: float, rtt: float | None) -> None:
        raise NotImplementedError

    def on_loss(self, flight: int, now: float) -> None:
        """Fast retransmit (RFC 5681 §3.2 step 2): reduce ssthresh; cwnd set by recovery."""
        raise NotImplementedError

    def on_timeout(self, flight: int, now: float) -> None:
        """RTO expired (RFC 5681 §3.1 eq. 4): ssthresh halves, cwnd to one segment."""
        self.ssthresh = max(flight // 2, 2 * self.mss)
        self.cwnd = self.mss

    def set_mss(self, mss: int) -> None:
        self.mss = mss


class NewReno(CongestionControl):
    name: ClassVar[str] = "newreno"

    def __init__(self, mss: int) -> None:
        super().__init__(mss)
        self._acc = 0

    def on_ack(self, acked: int, flight: int, now: float, rtt: float | None) -> None:
        if self.cwnd < self.ssthresh:
            # Slow start, RFC 5681 §3.1 with appropriate byte counting (L = 2*SMSS, RFC 3465)
            self.cwnd += min(acked, 2 * self.mss)
        else:
            # Congestion avoidance: about one MSS per RTT (RFC 5681 eq. 3, byte-counted)
            self._acc += acked
            if self._acc >= self.cwnd:
                self._acc -= self.cwnd
                self.cwnd += self.mss

    def on_loss(self, flight: int, now: float) -> None:
        self.ssthresh = max(flight // 2, 2 * self.mss)  # RFC 5681 eq. 4
        self._acc = 0


class Cubic(CongestionControl):
    """CUBIC, RFC 9438: window growth a cubic function of the time since the last
    reduction, with the Reno-friendly region (§4.3) and fast convergence (§4.7)."""

    name: ClassVar[str] = "cubic"
    C: ClassVar[float] = 0.4
    BETA: ClassVar[float] = 0.7

    def __init__(self, mss: int) -> None:
        super().__init__(mss)
        self.w_max = 0.0  # in segments
        self.k = 0.0
        self.epoch: float | None = None
        self.w_est = 0.0
        #: cwnd (segments) when ssthresh was last set: where alpha_cubic turns 1 (§4.3)
        self.cwnd_prior = 0.0
        self._acc = 0

    def on_ack(self, acked: int, flight: int, now: float, rtt: float | None) -> None:
        mss = self.mss
        if self.cwnd < self.ssthresh:
            self.cwnd += min(acked, 2 * mss)
            return
        cwnd_seg = self.cwnd / mss
        if self.epoch is None:
            self.epoch = now
            if cwnd_seg < self.w_max:
                self.k = ((self.w_max - cwnd_seg) / self.C) ** (1 / 3)  # RFC 9438 eq. 2
            else:
                self.k = 0.0
                self.w_max = cwnd_seg
            self.w_est = cwnd_seg
        t = now - self.epoch + (rtt or 0.0)
        target = self.C * (t - self.k) ** 3 + self.w_max  # RFC 9438 eq. 1
        # Reno-friendly estimate, RFC 9438 §4.3 eq. 4; alpha_cubic becomes 1 once
        # W_est has grown back to cwnd_prior (same section, SHOULD)
        alpha = 1.0 if self.w_est >= self.cwnd_prior else 3 * (1 - self.BETA) / (1 + self.BETA)
        self.w_est += alpha * (acked / mss) / max(cwnd_seg, 1.0)
        if self.w_est > target:
            target = self.w_est
        target = min(target, 1.5 * cwnd_seg)  # §4.4: at most 1.5x per RTT
        if target > cwnd_seg:
            # grow by (target - cwnd)/cwnd segments per segment acked
            self._acc += int((target - cwnd_seg) / cwnd_seg * acked)
            if self._acc >= 1:
                self.cwnd += self._acc
                self._acc = 0

    def on_loss(self, flight: int, now: float) -> None:
        cwnd_seg = self.cwnd / self.mss
        self.cwnd_prior = cwnd_seg
        # Fast convergence, RFC 9438 §4.7
        if cwnd_seg < self.w_max:
            self.w_max = cwnd_seg * (1 + self.BETA) / 2
        else:
            self.w_max = cwnd_seg
        self.ssthresh = max(int(flight * self.BETA), 2 * self.mss)  # §4.6
        self.epoch = None
        self._acc = 0

    def on_timeout(self, flight: int, now: float) -> None:
        """RFC 9438 §4.8: cwnd to one segment as Reno does, but ssthresh set with
        beta_cubic as for any other congestion event (§4.6)."""
        self.cwnd_prior = self.cwnd / self.mss
        self.ssthresh = max(int(flight * self.BETA), 2 * self.mss)
        self.cwnd = self.mss
        self.w_max = flight / self.mss
        self.epoch = None


ALGORITHMS: dict[str, Callable[[int], CongestionControl]] = {"newreno": NewReno, "cubic": Cubic}
