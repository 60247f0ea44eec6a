"""NTP packets and timestamps (RFC 5905 §6, §7.3), including the 2036 era wrap."""

from __future__ import annotations

import calendar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqs.errors import ParseError
from seqs.wire import ntp as wntp
from seqs.wire.ntp import NtpPacket, NtpView

#: 2036-02-07 06:28:16 UTC: the NTP era 0 ends, the 32-bit seconds field wraps to 0
WRAP_UNIX = calendar.timegm((2036, 2, 7, 6, 28, 16))


def test_the_wrap_is_where_rfc_5905_puts_it() -> None:
    assert WRAP_UNIX + wntp.NTP_UNIX_DELTA == 1 << 32


def test_unix_epoch_is_ntp_second_2208988800() -> None:
    assert wntp.from_unix(0.0) == 2_208_988_800 << 32
    assert wntp.from_unix(0.5) == (2_208_988_800 << 32) | (1 << 31)
    assert wntp.to_unix(2_208_988_800 << 32, near=1.7e9) == 0.0


def test_round_trip_keeps_sub_microsecond_resolution() -> None:
    t = 1_700_000_000.123456
    assert wntp.to_unix(wntp.from_unix(t), near=t) == pytest.approx(t, abs=1e-6)


@pytest.mark.parametrize(("t", "near"), [
    (WRAP_UNIX - 1.0, WRAP_UNIX + 5.0),  # timestamp from era 0, our clock already in era 1
    (WRAP_UNIX + 1.0, WRAP_UNIX - 5.0),  # timestamp from era 1 (raw seconds ~1), our clock still in era 0
    (WRAP_UNIX + 3600.0, WRAP_UNIX + 3600.0),
    (WRAP_UNIX + 30 * 365 * 86400.0, WRAP_UNIX + 30 * 365 * 86400.0),  # 2066
    (1_700_000_000.0, 1_700_000_000.0),
])
def test_timestamps_are_read_in_the_era_closest_to_the_local_clock(t: float, near: float) -> None:
    raw = wntp.from_unix(t)
    assert wntp.to_unix(raw, near) == pytest.approx(t, abs=1e-6)


def test_after_the_wrap_raw_seconds_restart_at_zero() -> None:
    raw = wntp.from_unix(WRAP_UNIX + 2.0)
    assert raw >> 32 == 2
    assert wntp.unwrap(raw, WRAP_UNIX) == (1 << 64) + (2 << 32)  # era 1


def test_closest_era_means_within_68_years_either_way() -> None:
    # Raw 0 seen from 1970 is 2036 (66 years on), not 1900 (70 years back).
    assert wntp.to_unix(0, near=0.0) == WRAP_UNIX


def test_packet_round_trips_and_view_reads_fields() -> None:
    p = NtpPacket(mode=wntp.MODE_SERVER, version=4, leap=0, stratum=2, poll=6, precision=-20,
                  root_delay=0x00010000, root_dispersion=0x00008000, ref_id=bytes([192, 0, 2, 1]),
                  reference=1, origin=2, receive=3, transmit=4)
    wire = p.emit()
    assert len(wire) == wntp.HEADER_LEN
    assert wire[0] == 0b00_100_100  # LI 0, VN 4, mode 4
    v = NtpView(wire)
    assert (v.leap, v.version, v.mode, v.stratum, v.poll, v.precision) == (0, 4, 4, 2, 6, -20)
    assert (v.origin, v.receive, v.transmit) == (2, 3, 4)
    assert wntp.short_to_seconds(v.root_delay) == 1.0 and wntp.short_to_seconds(v.root_dispersion) == 0.5
    assert NtpPacket.parse(wire) == p
    assert v.kiss_code is None


def test_extension_fields_and_mac_after_the_header_are_ignored() -> None:
    wire = NtpPacket(mode=4, stratum=1, transmit=5).emit() + bytes(20)
    assert NtpView(wire).transmit == 5


def test_kiss_code_is_the_reference_id_of_a_stratum_0_packet() -> None:
    # RFC 5905 §7.4
    v = NtpView(NtpPacket(mode=4, stratum=0, ref_id=b"RATE").emit())
    assert v.kiss_code == "RATE"


def test_short_packet_is_a_parse_error() -> None:
    with pytest.raises(ParseError) as e:
        NtpView(bytes(47))
    assert e.value.reason == "ntp_truncated"


def test_scapy_agrees_on_the_layout() -> None:
    from scapy.layers.ntp import NTPHeader

    p = NTPHeader(bytes(NtpPacket(mode=4, version=4, stratum=3, poll=10, ref_id=b"\x0a\x00\x00\x01",
                                  transmit=wntp.from_unix(1_700_000_000.25)).emit()))
    assert (p.mode, p.version, p.stratum, p.poll) == (4, 4, 3, 10)
    assert p.id == "10.0.0.1"
    assert float(p.sent) == pytest.approx(1_700_000_000.25 + wntp.NTP_UNIX_DELTA, abs=1e-6)


@settings(max_examples=300)
@given(st.binary(max_size=120))
def test_arbitrary_bytes_raise_only_parse_error(data: bytes) -> None:
    try:
        v = NtpView(data)
    except ParseError:
        return
    _ = (v.leap, v.version, v.mode, v.kiss_code)
    NtpPacket.parse(data).emit()
