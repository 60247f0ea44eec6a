"""The NTP client (seqs.services.ntp) against scripted servers on a virtual LAN.

The host's wall clock is virtual time plus ``HOST_EPOCH``; a scripted server
on 10.0.0.1:123 answers each request as the test decides (a good reply from a
clock ``skew`` seconds off, a kiss-o'-death, a replay, nothing).  On a
symmetric link the measured offset must equal the skew exactly.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqs.cli.demo_responders import NtpResponder
from seqs.phy.faults import FaultConfig
from seqs.phy.memory import VirtualNetwork
from seqs.services.ntp import (
    KissOfDeath,
    NtpConfig,
    NtpError,
    NtpQuery,
    NtpTimeout,
    Unsynchronized,
    offset_delay,
)
from seqs.stack import Stack
from seqs.wire import ntp as wntp
from seqs.wire.ntp import NtpPacket, NtpView

SERVER = "10.0.0.1"
HOST_EPOCH = 1_700_000_000.0
ONE_WAY = 0.005

#: handler(request, server wall-clock time as a raw NTP timestamp) -> replies
Handler = Callable[[NtpView, int], list[bytes]]


def good(stratum: int = 2, leap: int = 0, ref_id: bytes = b"\xc0\x00\x02\x01") -> Handler:
    def handler(req: NtpView, t: int) -> list[bytes]:
        return [NtpPacket(mode=wntp.MODE_SERVER, version=4, leap=leap, stratum=stratum, ref_id=ref_id,
                          reference=t, origin=req.transmit, receive=t, transmit=t).emit()]
    return handler


def kod(code: bytes) -> Handler:
    def handler(req: NtpView, t: int) -> list[bytes]:
        return [NtpPacket(mode=wntp.MODE_SERVER, leap=3, stratum=0, ref_id=code, origin=req.transmit).emit()]
    return handler


class ScriptedNtp:
    def __init__(self, stack: Stack, handler: Handler, epoch: float) -> None:
        self.stack = stack
        self.handler = handler
        #: the server's wall clock at virtual time 0
        self.epoch = epoch
        self.requests: list[tuple[float, NtpView]] = []
        self.sock = stack.udp_socket()
        self.sock.bind(("", 123))
        self.sock.on_event = self._on_event

    def _on_event(self) -> None:
        while (got := self.sock.recvfrom()) is not None:
            data, peer = got
            req = NtpView(data)
            now = self.stack.iface.now
            self.requests.append((now, req))
            # the server's wall clock, its two terms scaled apart for exactness
            t = (wntp.from_unix(self.epoch) + round(now * (1 << 32))) % wntp.ERA
            for out in self.handler(req, t):
                self.sock.sendto(out, peer)


class Lan:
    def __init__(self, handler: Handler | None = None, *, skew: float = 0.0, one_way: float = ONE_WAY,
                 host_epoch: float = HOST_EPOCH) -> None:
        self.net = VirtualNetwork()
        self.host = Stack(ip="10.0.0.2/24", mac="02:00:00:00:00:02", rng=random.Random(3))
        self.server = Stack(ip=SERVER + "/24", mac="02:00:00:00:00:01", rng=random.Random(4))
        self.host_port = self.net.attach(self.host, FaultConfig(delay=one_way))
        self.server_port = self.net.attach(self.server, FaultConfig(delay=one_way))
        self.host.iface.arp.update(self.server.iface.address, self.server.iface.mac, 0.0, create=True)
        self.server.iface.arp.update(self.host.iface.address, self.host.iface.mac, 0.0, create=True)
        self.host_epoch = host_epoch
        self.scripted = ScriptedNtp(self.server, handler, host_epoch + skew) if handler is not None else None

    def start(self, **config: object) -> NtpQuery:
        self.host.poll(self.net.now)
        return NtpQuery(self.host, SERVER, wall_offset=self.host_epoch,
                        config=NtpConfig(**config))  # type: ignore[arg-type]

    def measure(self, **config: object) -> NtpQuery:
        q = self.start(**config)
        self.net.run_until(lambda: q.done, 300)
        assert q.done
        return q

    @property
    def drops(self) -> dict[str, int]:
        return self.host.stats.drops


# -- arithmetic (RFC 5905 §8) ----------------------------------------------------------------


def _fixed(seconds: float) -> int:
    return round(seconds * (1 << 32))


def test_offset_and_delay_follow_rfc_5905_section_8() -> None:
    # Sent at 10.000, server received at 10.510 and answered at 10.512 (its clock 0.5 s
    # ahead), we received at 10.022: 20 ms of network, 2 ms in the server.
    offset, delay = offset_delay(_fixed(10.0), _fixed(10.510), _fixed(10.512), _fixed(10.022))
    assert offset == pytest.approx(0.5, abs=1e-9)
    assert delay == pytest.approx(0.020, abs=1e-9)


def test_asymmetric_path_puts_half_the_asymmetry_into_the_offset() -> None:
    # 30 ms out, 10 ms back, clocks equal: θ is off by (30 - 10) / 2.
    offset, delay = offset_delay(_fixed(0.0), _fixed(0.030), _fixed(0.030), _fixed(0.040))
    assert offset == pytest.approx(0.010, abs=1e-9) and delay == pytest.approx(0.040, abs=1e-9)


# -- measuring ---------------------------------------------------------------------------------


@pytest.mark.parametrize("skew", [0.0, 0.25, -3.75, 86400.5])
def test_symmetric_link_measures_the_skew_exactly(skew: float) -> None:
    lan = Lan(good(), skew=skew)
    q = lan.measure(samples=4, interval=0.5)
    best = q.result()
    assert best.offset == pytest.approx(skew, abs=1e-9)
    assert best.delay == pytest.approx(2 * ONE_WAY, abs=1e-9)
    assert len(q.samples) == 4 and q.sent == 4 and best.stratum == 2
    assert best.ref_text == "192.0.2.1"


@pytest.mark.parametrize(("stratum", "ref_id", "text"), [
    (1, b"GPS\0", "GPS"), (1, b"\x7f\x7f\x01\x01", "127.127.1.1"), (3, b"\xc0\x00\x02\x01", "192.0.2.1"),
])
def test_reference_id_is_shown_as_text_or_address(stratum: int, ref_id: bytes, text: str) -> None:
    lan = Lan(good(stratum=stratum, ref_id=ref_id))
    assert lan.measure(samples=1).result().ref_text == text


def test_demo_responder_is_measured_exactly() -> None:
    lan = Lan()
    NtpResponder(lan.server, HOST_EPOCH + 0.25)
    assert lan.measure(samples=2, interval=0.1).result().offset == pytest.approx(0.25, abs=1e-9)


def test_requests_are_client_mode_with_a_random_transmit_nonce_and_nothing_else() -> None:
    lan = Lan(good())
    lan.measure(samples=3, interval=0.2)
    reqs = [r for _, r in lan.scripted.requests]  # type: ignore[union-attr]
    assert [(r.mode, r.version, r.stratum, r.origin, r.receive, r.reference) for r in reqs] == [(3, 4, 0, 0, 0, 0)] * 3
    nonces = {r.transmit for r in reqs}
    assert len(nonces) == 3 and 0 not in nonces
    # the nonce says nothing about our clock: it is not HOST_EPOCH-ish
    assert all(abs(wntp.to_unix(n, HOST_EPOCH) - HOST_EPOCH) > 1.0 for n in nonces)


def test_requests_are_spaced_by_the_interval() -> None:
    lan = Lan(good())
    lan.measure(samples=4, interval=0.7)
    times = [round(t - ONE_WAY, 6) for t, _ in lan.scripted.requests]  # type: ignore[union-attr]
    assert times == [0.0, 0.7, 1.4, 2.1]


def test_the_lowest_delay_sample_wins() -> None:
    # RFC 5905 §10: the least-delayed sample carries the least error.
    lan = Lan(good(), skew=1.0, one_way=0.0)
    delays = [0.040, 0.004, 0.025]
    q = lan.start(samples=3, interval=1.0)
    for i, d in enumerate(delays):
        # asymmetric on purpose: only the host→server direction is slow
        lan.host_port.set_faults(FaultConfig(delay=d))
        lan.net.run_until(lambda i=i: len(q.samples) > i or q.done, 10)
    lan.net.run_until(lambda: q.done, 10)
    best = q.result()
    assert [round(s.delay, 6) for s in q.samples] == delays
    assert best.delay == pytest.approx(0.004)
    assert best.offset == pytest.approx(1.0 + 0.004 / 2)


def test_era_2036_wrap_between_our_clock_and_the_servers() -> None:
    # Our clock is 1 s past the wrap, the server's 2 s behind ours (so still in era 0):
    # the raw seconds differ by almost 2^32, the offset is -2 s.
    wrap = float((1 << 32) - wntp.NTP_UNIX_DELTA)
    lan = Lan(good(), skew=-2.0, host_epoch=wrap + 1.0)
    best = lan.measure(samples=1).result()
    assert best.offset == pytest.approx(-2.0, abs=1e-6)
    assert best.t2 == pytest.approx(wrap - 1.0 + ONE_WAY, abs=1e-6)


# -- rejection -----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [b"RATE", b"DENY", b"RSTR"])
def test_kiss_of_death_ends_the_measurement(code: bytes) -> None:
    # RFC 5905 §7.4: DENY and RSTR mean stop; RATE means slow down — a one-shot client stops.
    lan = Lan(kod(code))
    q = lan.measure(samples=4, interval=0.5)
    with pytest.raises(KissOfDeath) as e:
        q.result()
    assert e.value.code == code.decode() and q.sent == 1
    assert lan.drops["ntp_kiss_of_death"] == 1


def test_other_kiss_codes_are_unsynchronized_replies() -> None:
    lan = Lan(kod(b"INIT"))
    q = lan.measure(samples=2, interval=0.1)
    with pytest.raises(Unsynchronized, match="INIT"):
        q.result()
    assert q.sent == 2


@pytest.mark.parametrize(("leap", "stratum"), [(3, 2), (0, 16), (0, 200)])
def test_unsynchronized_server_is_rejected(leap: int, stratum: int) -> None:
    # RFC 5905 §7.3: leap indicator 3 = clock unsynchronized; stratum 16 = unsynchronized.
    lan = Lan(good(stratum=stratum, leap=leap))
    q = lan.measure(samples=3, interval=0.1)
    assert isinstance(q.error, Unsynchronized) and not q.samples
    assert lan.drops["ntp_unsynchronized"] == 3


def test_one_unsynchronized_reply_among_good_ones_is_skipped() -> None:
    replies = iter([good(leap=3), good(), good()])
    lan = Lan(lambda req, t: next(replies)(req, t), skew=0.5)
    q = lan.measure(samples=3, interval=0.1)
    assert len(q.samples) == 2 and q.result().offset == pytest.approx(0.5)
    assert lan.drops["ntp_unsynchronized"] == 1


def test_reply_with_the_wrong_origin_is_bogus_and_dropped() -> None:
    # RFC 5905 §8: the origin timestamp must be our transmit timestamp.
    def forged(req: NtpView, t: int) -> list[bytes]:
        bad = NtpPacket(mode=4, stratum=1, origin=req.transmit ^ 1, receive=t, transmit=t).emit()
        return [bad, *good()(req, t)]

    lan = Lan(forged, skew=0.1)
    q = lan.measure(samples=2, interval=0.1)
    assert len(q.samples) == 2 and q.result().offset == pytest.approx(0.1)
    assert lan.drops["ntp_bogus_origin"] == 2


def test_duplicated_reply_is_counted_once_and_then_bogus() -> None:
    lan = Lan(lambda req, t: good()(req, t) * 2)
    q = lan.measure(samples=3, interval=0.1)
    assert len(q.samples) == 3
    # the copies of the first two replies; the last one's copy arrives with the query done
    assert lan.drops["ntp_bogus_origin"] == 2


def test_reply_after_its_timeout_is_bogus() -> None:
    late: list[tuple[NtpView, int]] = []

    def hold(req: NtpView, t: int) -> list[bytes]:
        late.append((req, t))
        return []

    lan = Lan(hold)
    q = lan.start(samples=1, timeout=0.5)
    lan.net.run_until(lambda: q.done, 5)
    assert isinstance(q.error, NtpTimeout)
    req, t = late[0]
    lan.scripted.sock.sendto(good()(req, t)[0], ("10.0.0.2", q._sock.local_port))  # type: ignore[union-attr]
    lan.net.run_for(0.1)
    assert lan.drops.get("udp_no_socket", 0) == 1  # the socket is closed: nothing to replay into


@pytest.mark.parametrize("mode", [wntp.MODE_CLIENT, wntp.MODE_BROADCAST, wntp.MODE_SYMMETRIC_ACTIVE])
def test_replies_that_are_not_server_mode_are_dropped(mode: int) -> None:
    def wrong_mode(req: NtpView, t: int) -> list[bytes]:
        return [NtpPacket(mode=mode, stratum=1, origin=req.transmit, receive=t, transmit=t).emit()]

    lan = Lan(wrong_mode)
    q = lan.measure(samples=1, timeout=0.3)
    assert isinstance(q.error, NtpTimeout)
    assert lan.drops["ntp_bad_mode"] == 1


def test_reply_without_timestamps_is_rejected() -> None:
    def empty(req: NtpView, t: int) -> list[bytes]:
        return [NtpPacket(mode=4, stratum=1, origin=req.transmit).emit()]

    lan = Lan(empty)
    q = lan.measure(samples=1)
    assert isinstance(q.error, NtpTimeout) and "without timestamps" in str(q.error)
    assert lan.drops["ntp_bad_timestamps"] == 1


def test_silence_times_out_after_every_request_was_tried() -> None:
    lan = Lan(lambda req, t: [])
    q = lan.measure(samples=3, interval=1.0, timeout=0.4)
    with pytest.raises(NtpTimeout) as e:
        q.result()
    assert isinstance(e.value, TimeoutError) and q.sent == 3
    assert lan.net.now == pytest.approx(2.4)  # sent at 0, 1, 2; the last waited 0.4


def test_no_server_at_all_is_reported() -> None:
    lan = Lan()  # nothing on port 123: ICMP port unreachable
    q = lan.measure(samples=2, interval=0.1, timeout=0.2)
    assert isinstance(q.error, NtpTimeout) and "unreachable" in str(q.error)
    assert lan.drops["ntp_server_unreachable"] == 2


def test_cancel_closes_the_socket() -> None:
    lan = Lan(lambda req, t: [])
    q = lan.start(samples=2)
    q.cancel()
    assert q.done and isinstance(q.error, NtpError) and len(lan.host.udp) == 0


def test_config_is_checked() -> None:
    with pytest.raises(ValueError):
        NtpConfig(samples=0)
    with pytest.raises(ValueError):
        NtpConfig(timeout=0)
    with pytest.raises(ValueError):
        NtpConfig(version=2)


# -- fuzz -------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=80), min_size=1, max_size=3), st.booleans())
def test_arbitrary_replies_never_raise(payloads: list[bytes], keep_origin: bool) -> None:
    def handler(req: NtpView, t: int) -> list[bytes]:
        out = []
        for p in payloads:
            if keep_origin and len(p) >= 48:
                # our nonce in the origin field and mode 4: the reply reaches the checks that matter
                b = bytearray(p)
                b[0] = (b[0] & 0xF8) | 4
                b[24:32] = req.transmit.to_bytes(8, "big")
                p = bytes(b)
            out.append(p)
        return out

    lan = Lan(handler)
    q = lan.measure(samples=2, interval=0.1, timeout=0.2)
    assert q.error is None or isinstance(q.error, NtpError)
    for s in q.samples:
        assert s.delay >= 0.0
