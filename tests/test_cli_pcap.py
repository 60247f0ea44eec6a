"""``seqs demo --pcap FILE`` (no root): the file is a valid pcap holding every frame
the two stacks sent, each one well formed, with each step of the tour in it.

The frames are read by ``tests/pcap_check.py`` (struct and an independent
checksum, not seqs' parsers) and, when it is installed, by tshark.  The
commands that run on a TAP (ping, resolve, ntp, connect, get) are checked the
same way against the kernel in ``tests/interop/test_cli_pcap_kernel.py``.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import pathlib
import re

import pytest

from pcap_check import TCP_FIN, TCP_SYN, Malformed, decode, kinds, read_pcap, tshark_problems
from seqs.cli import main

ROUTER, HOST = "10.0.0.1", "10.0.0.2"
ROUTER_MAC, HOST_MAC = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
DHCP_TYPES = {1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 5: "ACK", 7: "RELEASE"}


def _dhcp_type(payload: bytes) -> str:
    """Option 53 of a BOOTP message (RFC 2132 §9.6), walked by hand."""
    assert payload[236:240] == b"\x63\x82\x53\x63", "no DHCP magic cookie"
    i = 240
    while i < len(payload) and payload[i] != 255:
        if payload[i] == 0:
            i += 1
            continue
        code, length = payload[i], payload[i + 1]
        if code == 53:
            return DHCP_TYPES.get(payload[i + 2], str(payload[i + 2]))
        i += 2 + length
    raise AssertionError("DHCP message without a message type")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, str]:
    """One run of ``seqs demo --pcap``: the file and what the demo printed."""
    pcap = tmp_path_factory.mktemp("demo") / "demo.pcap"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["demo", "--pcap", str(pcap), "--loss", "0.05", "--seed", "3"]) == 0
    return pcap, out.getvalue()


def test_demo_pcap_holds_every_frame_sent_each_well_formed(demo: tuple[pathlib.Path, str]) -> None:
    pcap, out = demo
    m = re.search(r"^(\d+) frames written to (\S+) ", out, re.M)
    assert m and m[2] == str(pcap), out
    # Every frame either stack transmitted is in the file (the capture sits before the lossy link).
    tx = [int(n) for n in re.findall(r"'tx_frames': (\d+)", out)]
    assert len(tx) == 2 and int(m[1]) == sum(tx), out

    records = read_pcap(str(pcap))  # the container: header, records, nothing cut short or left over
    assert len(records) == int(m[1])
    assert all(a.time <= b.time for a, b in itertools.pairwise(records)), "time goes backwards"
    frames = [decode(r.data) for r in records]  # every length and checksum; Malformed otherwise
    assert {f.src_mac for f in frames} == {ROUTER_MAC, HOST_MAC}

    # The tour, step by step, as it appears on the wire.
    dhcp = [(f.ip_src, _dhcp_type(f.payload)) for f in frames if f.kind == "udp" and 67 in (f.sport, f.dport)]
    assert dhcp == [("0.0.0.0", "DISCOVER"), (ROUTER, "OFFER"), ("0.0.0.0", "REQUEST"), (ROUTER, "ACK"),
                    (HOST, "RELEASE")]
    assert frames[-1].kind == "udp" and _dhcp_type(frames[-1].payload) == "RELEASE"  # flushed to the very end
    arp = {(f.src_mac, f.code) for f in frames if f.kind == "arp"}
    assert (HOST_MAC, 1) in arp and (ROUTER_MAC, 2) in arp  # who-has 10.0.0.1, and the answer
    icmp = {(f.ip_src, f.code >> 8, f.code & 0xFF) for f in frames if f.kind == "icmp"}
    assert {(HOST, 8, 0), (ROUTER, 0, 0), (ROUTER, 3, 3)} <= icmp  # echo, reply, port unreachable
    assert {f.ip_src for f in frames if f.kind == "fragment"} == {HOST, ROUTER}  # the 4000-byte ping
    seen = kinds(frames, {7, 9, 53, 80, 123})
    for port in (7, 53, 123):
        assert seen[HOST, "udp", port] > 0 and seen[ROUTER, "udp", port] > 0, (port, seen)
    for port in (9, 53, 80):  # TCP: the 1 MiB transfer, DNS after truncation, HTTP
        assert seen[HOST, "tcp", port] > 0 and seen[ROUTER, "tcp", port] > 0, (port, seen)
    syns = [f for f in frames if f.kind == "tcp" and f.code & TCP_SYN]
    assert {(f.ip_src, f.dport if f.ip_src == HOST else f.sport) for f in syns} >= {
        (HOST, 9), (ROUTER, 9), (HOST, 80), (ROUTER, 80)}
    assert any(f.code & TCP_FIN and f.sport == 80 for f in frames if f.kind == "tcp")
    payloads = b"".join(f.payload for f in frames if f.kind == "tcp" and 80 in (f.sport, f.dport))
    assert b"GET /demo.bin HTTP/1.1\r\n" in payloads and b"HTTP/1.1 200 " in payloads
    ntp_modes = {f.payload[0] & 7 for f in frames if f.kind == "udp" and 123 in (f.sport, f.dport)}
    assert ntp_modes == {3, 4}  # client requests, server replies (RFC 5905 §7.3)

    problems = tshark_problems(str(pcap))
    assert not problems, f"tshark finds malformed or erroneous frames:\n{problems}"


def test_the_checks_above_catch_a_flipped_bit_and_a_file_cut_short(demo: tuple[pathlib.Path, str],
                                                                   tmp_path: pathlib.Path) -> None:
    """The reader is the oracle of the test above: show that it can say no."""
    pcap, _ = demo
    blob = pcap.read_bytes()
    records = read_pcap(str(pcap))
    i = next(i for i, r in enumerate(records) if len(r.data) > 1000 and decode(r.data).kind == "tcp")
    flipped = bytearray(records[i].data)
    flipped[-1] ^= 0x01  # in the TCP payload: only the TCP checksum can tell
    with pytest.raises(Malformed, match="TCP"):
        decode(bytes(flipped))
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(blob[:-5])
    with pytest.raises(Malformed, match="announced"):
        read_pcap(str(cut))
