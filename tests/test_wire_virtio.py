"""The virtio-net header of TAP devices with IFF_VNET_HDR.

No scapy layer exists for it; the oracle is the layout of ``struct
virtio_net_hdr_mrg_rxbuf`` in Linux's ``include/uapi/linux/virtio_net.h``:
u8 flags, u8 gso_type, then __virtio16 hdr_len, gso_size, csum_start,
csum_offset and num_buffers, little-endian on every host seqs runs on.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seqs.errors import ParseError
from seqs.wire import tcp
from seqs.wire.virtio import (
    F_DATA_VALID,
    F_NEEDS_CSUM,
    GSO_NONE,
    GSO_TCPV4,
    HEADER_LEN,
    ZERO,
    VnetHeader,
)

u16 = st.integers(0, 0xFFFF)
headers = st.builds(
    VnetHeader,
    flags=st.integers(0, 255),
    gso_type=st.integers(0, 255),
    hdr_len=u16,
    gso_size=u16,
    csum_start=u16,
    csum_offset=u16,
    num_buffers=u16,
)


def test_header_is_twelve_bytes_with_num_buffers() -> None:
    """TUNSETVNETHDRSZ 12: virtio_net_hdr (10 bytes) plus num_buffers."""
    assert HEADER_LEN == 12
    assert len(VnetHeader().emit()) == 12


def test_gso_tcp_header_matches_linux_layout() -> None:
    """A 64 KiB TCPv4 super-segment the kernel is to split and checksum: Ethernet 14 +
    IPv4 20 + TCP 20 = 54 header bytes, 1448-byte segments, checksum at 34 + 16."""
    h = VnetHeader(F_NEEDS_CSUM, GSO_TCPV4, 54, 1448, 34, tcp.OFF_CHECKSUM, 1)
    assert h.emit() == bytes.fromhex("01 01 3600 a805 2200 1000 0100")
    assert VnetHeader.parse(h.emit()) == h


def test_udp_checksum_request_matches_linux_layout() -> None:
    """A UDP frame whose checksum the kernel fills: start at 34, UDP checksum 6 bytes in."""
    h = VnetHeader(F_NEEDS_CSUM, GSO_NONE, 0, 0, 34, 6)
    assert h.emit() == bytes.fromhex("01 00 0000 0000 2200 0600 0000")


def test_received_header_with_data_valid_parses() -> None:
    """On receive DATA_VALID says the host already verified the checksum."""
    assert VnetHeader.parse(bytes([F_DATA_VALID]) + bytes(11)).flags == F_DATA_VALID


def test_zero_header_is_the_default_value() -> None:
    assert VnetHeader.parse(ZERO) == VnetHeader()
    assert VnetHeader().emit() == ZERO


@given(headers)
def test_any_header_round_trips(h: VnetHeader) -> None:
    assert VnetHeader.parse(h.emit()) == h


@given(headers, st.binary(max_size=100))
def test_frame_after_the_header_is_ignored(h: VnetHeader, frame: bytes) -> None:
    assert VnetHeader.parse(h.emit() + frame) == h


@pytest.mark.parametrize("n", range(HEADER_LEN))
def test_truncated_header_is_rejected(n: int) -> None:
    with pytest.raises(ParseError) as e:
        VnetHeader.parse(bytes(n))
    assert e.value.reason == "vnet_truncated"
