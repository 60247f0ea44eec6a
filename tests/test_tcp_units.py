"""Unit tests of the TCP building blocks, against their RFCs' formulas:
sequence arithmetic (RFC 9293 §3.4), RTT/RTO (RFC 6298), congestion control
(RFC 5681, RFC 6928, RFC 9438 CUBIC) and ISNs (RFC 6528)."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seqs.tcp.congestion import ALGORITHMS, Cubic, NewReno, initial_window
from seqs.tcp.isn import IsnGenerator
from seqs.tcp.rtt import RttEstimator
from seqs.tcp.seq import MOD, seq_lt, seq_lte, unwrap, wrap

u32 = st.integers(0, MOD - 1)

# ====================================================================== seq.py


def test_unwrap_picks_the_nearest_number_across_the_wrap() -> None:
    """RFC 9293 §3.4: 32-bit numbers compared modulo 2**32; seqs unwraps them against a reference."""
    assert unwrap(5, MOD - 10) == MOD + 5  # just past the wrap, ahead of the reference
    assert unwrap(MOD - 5, MOD + 10) == MOD - 5  # just before it, behind the reference
    assert unwrap(100, 90) == 100
    assert unwrap(80, 90) == 80
    assert unwrap(0, 0) == 0


@given(ref=st.integers(0, 1 << 40), delta=st.integers(-(1 << 31) + 1, (1 << 31) - 1))
def test_unwrap_inverts_wrap_within_half_the_space(ref: int, delta: int) -> None:
    n = ref + delta
    assert unwrap(wrap(n), ref) == n


@given(ref=st.integers(0, 1 << 40), wire=u32)
def test_unwrap_is_congruent_and_within_half_the_space(ref: int, wire: int) -> None:
    n = unwrap(wire, ref)
    assert wrap(n) == wire
    assert -(1 << 31) <= n - ref < (1 << 31)


def test_wrap_keeps_32_bits() -> None:
    assert wrap(MOD + 7) == 7
    assert wrap(MOD - 1) == MOD - 1


def test_seq_lt_compares_modulo_2_32() -> None:
    """RFC 7323 §5.2 (timestamps) and RFC 1982-style comparison."""
    assert seq_lt(1, 2)
    assert not seq_lt(2, 1)
    assert seq_lt(MOD - 1, 0)  # 0 follows 2**32 - 1
    assert not seq_lt(0, MOD - 1)
    assert not seq_lt(7, 7)
    assert seq_lte(7, 7)
    assert seq_lte(MOD - 1, 3)


@given(a=u32, d=st.integers(1, (1 << 31) - 1))
def test_seq_lt_holds_for_anything_less_than_half_the_space_ahead(a: int, d: int) -> None:
    b = (a + d) % MOD
    assert seq_lt(a, b) and not seq_lt(b, a)
    assert seq_lte(a, b) and not seq_lte(b, a)


@given(a=u32, b=u32)
def test_seq_lt_is_antisymmetric(a: int, b: int) -> None:
    assert not (seq_lt(a, b) and seq_lt(b, a))
    if a != b:
        assert seq_lt(a, b) or seq_lt(b, a)


# ====================================================================== rtt.py


def test_rto_is_1s_before_any_sample() -> None:
    """RFC 6298 §2.1."""
    assert RttEstimator().rto == 1.0


def test_first_sample_sets_srtt_and_rttvar() -> None:
    """RFC 6298 §2.2: SRTT = R, RTTVAR = R/2, RTO = SRTT + max(G, K*RTTVAR)."""
    r = RttEstimator(rto_min=0.0)
    r.sample(0.5)
    assert r.srtt == 0.5 and r.rttvar == 0.25
    assert r.rto == pytest.approx(0.5 + 4 * 0.25)


def test_later_samples_smooth_with_alpha_1_8_and_beta_1_4() -> None:
    """RFC 6298 §2.3: RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R'| (with the old SRTT), then
    SRTT = 7/8 SRTT + 1/8 R'."""
    r = RttEstimator(rto_min=0.0)
    r.sample(0.5)
    r.sample(0.9)
    rttvar = 0.75 * 0.25 + 0.25 * abs(0.5 - 0.9)
    srtt = 0.875 * 0.5 + 0.125 * 0.9
    assert r.rttvar == pytest.approx(rttvar) and r.srtt == pytest.approx(srtt)
    assert r.rto == pytest.approx(srtt + 4 * rttvar)


def test_clock_granularity_bounds_the_variance_term() -> None:
    """RFC 6298 §2.2/2.3: RTO = SRTT + max(G, K*RTTVAR): a steady RTT still leaves G."""
    r = RttEstimator(rto_min=0.0, granularity=0.01)
    for _ in range(200):
        r.sample(0.1)
    assert r.rto == pytest.approx(0.1 + 0.01, rel=1e-3)


def test_rto_min_and_rto_max_bound_the_timeout() -> None:
    """RFC 6298 §2.4 (a minimum; RFC says 1 s, seqs defaults to 200 ms like Linux) and §2.5
    (a maximum of at least 60 s)."""
    r = RttEstimator(rto_min=0.2, rto_max=60.0)
    r.sample(0.001)
    assert r.rto == 0.2
    r = RttEstimator(rto_min=0.2, rto_max=60.0)
    r.sample(100.0)
    assert r.rto == 60.0


def test_back_off_doubles_up_to_the_maximum_and_a_sample_resets_it() -> None:
    """RFC 6298 §5.5 (RTO = RTO * 2) and §5.7's companion: a new sample recomputes the RTO."""
    r = RttEstimator(initial=1.0, rto_min=0.2, rto_max=60.0)
    seen = []
    for _ in range(9):
        seen.append(r.rto)
        r.back_off()
    assert seen == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    assert r.backoff == 6  # stops growing once the cap is reached
    r.sample(0.1)
    assert r.backoff == 0 and r.rto == pytest.approx(0.3)


def test_handshake_timeout_restarts_data_with_a_3s_rto() -> None:
    """RFC 6298 §5.7: SYN timed out and no sample: the RTO for data is 3 s."""
    r = RttEstimator()
    r.back_off()
    r.handshake_timed_out()
    assert r.rto == 3.0 and r.backoff == 0
    s = RttEstimator()
    s.sample(0.1)
    s.handshake_timed_out()  # a sample exists: it stands
    assert s.rto == pytest.approx(0.3)


def test_negative_samples_count_as_zero() -> None:
    r = RttEstimator(rto_min=0.0)
    r.sample(-1.0)
    assert r.srtt == 0.0


# ====================================================================== congestion.py


@pytest.mark.parametrize(("mss", "iw"), [(1460, 14600), (536, 5360), (1448, 14480), (4000, 14600), (9000, 18000)])
def test_initial_window_follows_rfc_6928(mss: int, iw: int) -> None:
    """RFC 6928 §2: IW = min(10*MSS, max(2*MSS, 14600))."""
    assert initial_window(mss) == iw
    for algorithm in ALGORITHMS.values():
        assert algorithm(mss).cwnd == iw


def test_ssthresh_starts_arbitrarily_high() -> None:
    """RFC 5681 §3.1: the initial ssthresh SHOULD be arbitrarily high."""
    assert NewReno(1460).ssthresh >= 1 << 30


def test_newreno_slow_start_grows_by_the_bytes_acked_up_to_2_smss() -> None:
    """RFC 5681 §3.1 eq. 2 with appropriate byte counting, L = 2*SMSS (RFC 3465 §2.3)."""
    cc = NewReno(1000)
    cc.on_ack(1000, 10000, 0.0, 0.1)
    assert cc.cwnd == 11000
    cc.on_ack(5000, 10000, 0.0, 0.1)  # a stretch ACK: at most 2*SMSS
    assert cc.cwnd == 13000


def test_newreno_congestion_avoidance_adds_one_smss_per_window_acked() -> None:
    """RFC 5681 §3.1 eq. 3 (byte-counted): cwnd += SMSS once a cwnd's worth is acknowledged."""
    cc = NewReno(1000)
    cc.cwnd = cc.ssthresh = 10000
    for _ in range(9):
        cc.on_ack(1000, 10000, 0.0, 0.1)
    assert cc.cwnd == 10000
    cc.on_ack(1000, 10000, 0.0, 0.1)
    assert cc.cwnd == 11000


def test_newreno_loss_halves_the_flight_but_not_below_two_segments() -> None:
    """RFC 5681 §3.2 eq. 4: ssthresh = max(FlightSize/2, 2*SMSS)."""
    cc = NewReno(1000)
    cc.on_loss(30000, 0.0)
    assert cc.ssthresh == 15000
    cc.on_loss(3000, 0.0)
    assert cc.ssthresh == 2000


def test_newreno_timeout_drops_cwnd_to_one_segment() -> None:
    """RFC 5681 §3.1: on RTO, ssthresh = max(FlightSize/2, 2*SMSS) and cwnd = 1 SMSS (LW)."""
    cc = NewReno(1000)
    cc.on_timeout(20000, 0.0)
    assert (cc.cwnd, cc.ssthresh) == (1000, 10000)


# -- CUBIC, RFC 9438 ------------------------------------------------------------------------

C = 0.4
BETA = 0.7
ALPHA = 3 * (1 - BETA) / (1 + BETA)  # RFC 9438 eq. 4


def w_cubic(t: float, k: float, w_max: float) -> float:
    """RFC 9438 eq. 1."""
    return C * (t - k) ** 3 + w_max


def test_cubic_constants_are_rfc_9438s() -> None:
    """RFC 9438 §5: C = 0.4, beta_cubic = 0.7."""
    assert (Cubic.C, Cubic.BETA) == (C, BETA)


def test_cubic_loss_multiplies_by_beta_0_7() -> None:
    """RFC 9438 §4.6: ssthresh = flight_size * beta_cubic (at least 2 segments)."""
    cc = Cubic(1000)
    cc.cwnd = 100_000
    cc.on_loss(100_000, 0.0)
    assert cc.ssthresh == 70_000
    cc.cwnd = 2000
    cc.on_loss(2000, 1.0)
    assert cc.ssthresh == 2000


def test_cubic_fast_convergence_lowers_w_max_after_a_smaller_peak() -> None:
    """RFC 9438 §4.7: if cwnd < W_max at a loss, W_max = cwnd * (1 + beta_cubic) / 2."""
    cc = Cubic(1000)
    cc.cwnd = 100_000
    cc.on_loss(100_000, 0.0)
    assert cc.w_max == 100.0  # first loss: W_max = cwnd
    cc.cwnd = 80_000
    cc.on_loss(80_000, 5.0)
    assert cc.w_max == pytest.approx(80 * (1 + BETA) / 2)
    cc.cwnd = 90_000
    cc.on_loss(90_000, 9.0)  # above the (lowered) W_max: it becomes the new W_max
    assert cc.w_max == 90.0


def _after_loss(w_max_segments: int, mss: int = 1000) -> Cubic:
    """CUBIC just out of recovery: a loss at W_max, cwnd = ssthresh = beta * W_max."""
    cc = Cubic(mss)
    cc.cwnd = w_max_segments * mss
    cc.on_loss(cc.cwnd, 0.0)
    cc.cwnd = cc.ssthresh
    return cc


def test_cubic_k_is_the_time_to_return_to_w_max() -> None:
    """RFC 9438 eq. 2: K = cubic_root((W_max - cwnd_epoch) / C)."""
    cc = _after_loss(100)
    cc.on_ack(1000, 70_000, 10.0, 0.1)
    assert cc.k == pytest.approx(((100 - 70) / C) ** (1 / 3))
    assert cc.epoch == 10.0


def test_cubic_first_ack_grows_towards_w_cubic_of_t_plus_rtt() -> None:
    """RFC 9438 §4.2: target = W_cubic(t + RTT) (clamped to [cwnd, 1.5 cwnd]); cwnd grows by
    (target - cwnd) / cwnd per segment acknowledged."""
    cc = _after_loss(100)
    cc.on_ack(1000, 70_000, 10.0, 0.1)
    k = ((100 - 70) / C) ** (1 / 3)
    target = w_cubic(0.1, k, 100.0)
    assert cc.cwnd == 70_000 + int((target - 70) / 70 * 1000)


def test_cubic_window_follows_the_cubic_function() -> None:
    """RFC 9438 §4.2: far from the Reno-friendly region (large W_max, long RTT), cwnd tracks
    W_cubic(t + RTT): concave up to W_max at t = K, a plateau there, convex beyond."""
    mss = 1000
    cc = _after_loss(1000, mss)  # W_max 1000 segments, cwnd 700
    rtt = 0.2
    k = ((1000 - 700) / C) ** (1 / 3)  # 9.09 s
    t = 0.0
    start = 100.0
    while t < 2 * k:
        # one round trip: a window's worth of ACKs, one segment each
        n = cc.cwnd // mss
        for _ in range(n):
            cc.on_ack(mss, cc.cwnd, start + t, rtt)
        t += rtt
        expect = w_cubic(t, k, 1000.0)  # W_cubic(t_epoch_start + rtt) one round later
        assert cc.cwnd / mss == pytest.approx(expect, rel=0.02, abs=2), f"t={t:.1f}"
    assert cc.epoch == start


def test_cubic_reno_friendly_region_follows_w_est() -> None:
    """RFC 9438 §4.3: W_est grows by alpha_cubic per RTT (eq. 4, alpha = 3(1-beta)/(1+beta));
    when W_est > W_cubic, cwnd follows W_est (short RTT, small W_max)."""
    mss = 1000
    cc = _after_loss(10, mss)  # W_max 10, cwnd 7: K = 1.96 s
    rtt = 0.01
    t = 0.0
    start = 50.0
    w_est = 7.0  # eq. 4, per ACK: W_est += alpha_cubic * segments_acked / cwnd
    rounds_below_prior = 0
    for _ in range(60):
        if w_est < 10:
            rounds_below_prior += 1
        for _ in range(cc.cwnd // mss):
            # alpha_cubic is 3(1-beta)/(1+beta) until W_est reaches cwnd_prior (10), then 1
            w_est += (ALPHA if w_est < 10 else 1.0) * 1 / (cc.cwnd / mss)
            cc.on_ack(mss, cc.cwnd, start + t, rtt)
        t += rtt
    k = ((10 - 7) / C) ** (1 / 3)
    assert w_cubic(t, k, 10.0) < 10.0 < cc.cwnd / mss
    assert cc.w_est == pytest.approx(w_est)
    # about alpha_cubic per RTT up to cwnd_prior: (10 - 7) / alpha_cubic ~ 5.7 rounds
    assert rounds_below_prior == pytest.approx(3 / ALPHA, abs=1.5)
    assert cc.cwnd / mss == pytest.approx(cc.w_est, abs=1.5)  # cwnd trails W_est by its growth in the last round


def test_cubic_reno_friendly_alpha_becomes_1_once_w_est_reaches_the_previous_peak() -> None:
    """RFC 9438 §4.3: "Once W_est has grown to reach the cwnd at the time of most recently
    setting ssthresh -- that is, W_est >= cwnd_prior -- the sender SHOULD set alpha_cubic to 1"."""
    mss = 1000
    cc = _after_loss(10, mss)
    rtt = 0.001
    start = 50.0
    t = 0.0
    while cc.w_est < 10:
        for _ in range(cc.cwnd // mss):
            cc.on_ack(mss, cc.cwnd, start + t, rtt)
        t += rtt
    before = cc.w_est
    for _ in range(cc.cwnd // mss):  # one more round: W_est grows by 1 segment, not 0.53
        cc.on_ack(mss, cc.cwnd, start + t, rtt)
    # one segment per RTT, less the little cwnd itself grows within the round
    assert cc.w_est - before == pytest.approx(1.0, abs=0.1)


def test_cubic_growth_is_at_most_1_5x_per_rtt() -> None:
    """RFC 9438 §4.4 (convex region): target is at most 1.5 * cwnd."""
    mss = 1000
    cc = _after_loss(10, mss)
    n = cc.cwnd // mss
    for _ in range(n):
        cc.on_ack(mss, cc.cwnd, 1000.0, 1.0)  # t - K large: W_cubic enormous
    assert cc.cwnd <= 1.5 * 7000 + mss


def test_cubic_slow_start_is_standard() -> None:
    """RFC 9438 §4.10: below ssthresh CUBIC uses standard slow start."""
    cc = Cubic(1000)
    cc.on_ack(1000, 10_000, 0.0, 0.1)
    assert cc.cwnd == 11_000


def test_cubic_timeout_sets_ssthresh_with_beta() -> None:
    """RFC 9438 §4.8: on RTO, cwnd as Reno (1 segment) but ssthresh = flight_size * beta_cubic."""
    cc = Cubic(1000)
    cc.on_timeout(100_000, 0.0)
    assert cc.cwnd == 1000
    assert cc.ssthresh == 70_000


# ====================================================================== isn.py

KEY = bytes(range(16))
A, B = 0x0A000001, 0x0A000002


def test_isn_is_keyed() -> None:
    """RFC 6528 §3: F is a keyed hash; another key gives other ISNs for the same connection."""
    one = IsnGenerator(KEY).isn(A, 1000, B, 80, 1.0)
    two = IsnGenerator(bytes(range(1, 17))).isn(A, 1000, B, 80, 1.0)
    assert one != two
    assert IsnGenerator(KEY).isn(A, 1000, B, 80, 1.0) == one  # deterministic for a key


@pytest.mark.parametrize("change", ["local", "lport", "remote", "rport"])
def test_isn_depends_on_every_part_of_the_4_tuple(change: str) -> None:
    """RFC 6528 §3: F(localip, localport, remoteip, remoteport, secretkey)."""
    g = IsnGenerator(KEY)
    base = {"local": A, "lport": 1000, "remote": B, "rport": 80}
    other = dict(base)
    other[change] += 1
    assert g.isn(now=1.0, **base) != g.isn(now=1.0, **other)


def test_isn_increases_with_the_clock_every_4_microseconds() -> None:
    """RFC 6528 §3 (M, a 4 µs timer, RFC 9293 §3.4.1): the same 4-tuple's ISNs increase
    with time, 250,000 a second, modulo 2**32."""
    g = IsnGenerator(KEY)
    first = g.isn(A, 1000, B, 80, 10.0)
    assert (g.isn(A, 1000, B, 80, 11.0) - first) % MOD == 250_000
    assert (g.isn(A, 1000, B, 80, 10.000004) - first) % MOD == 1
    later = g.isn(A, 1000, B, 80, 10.0 + 3600.0)
    assert seq_lt(first, later) or (later - first) % MOD == (3600 * 250_000) % MOD


@given(t=st.floats(0, 1e6), dt=st.floats(1e-5, 8000.0))
def test_isn_of_a_later_incarnation_is_ahead(t: float, dt: float) -> None:
    """Successive incarnations of a 4-tuple do not reuse sequence space (within half the
    space: 2**31 ticks of 4 µs is 2.4 hours)."""
    g = IsnGenerator(KEY)
    a = g.isn(A, 1000, B, 80, t)
    b = g.isn(A, 1000, B, 80, t + dt)
    assert seq_lt(a, b)


def test_isn_needs_a_128_bit_key() -> None:
    """RFC 6528 §3 recommends a secret of at least 128 bits."""
    with pytest.raises(ValueError):
        IsnGenerator(bytes(15))


def test_isns_of_different_connections_look_unrelated() -> None:
    """RFC 6528 §2/§3: an off-path attacker cannot predict one connection's ISN from another's."""
    g = IsnGenerator(KEY)
    isns = {g.isn(A, port, B, 80, 1.0) for port in range(1000, 1200)}
    assert len(isns) == 200
    spread = sorted(isns)
    gaps = [b - a for a, b in itertools.pairwise(spread)]
    assert max(gaps) < MOD // 10 and math.isfinite(sum(gaps))
