"""``seqs demo`` end to end: every step it narrates, its exit status, and its pcap.

The demo runs once (as ``python -m seqs demo``, the way a user runs it) and the
tests read its output and capture: the lines of the steps that
``test_cli_http.py`` and ``test_runtime_dns_ntp.py`` do not check (DHCP, ARP,
ping, UDP echo, ICMP port unreachable, the TCP transfer), then the pcap, parsed
record by record with ``struct`` (and read by tshark when it is installed).
Failures are injected in-process to prove the exit status reports them.
"""

from __future__ import annotations

import errno
import pathlib
import re
import shutil
import struct
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

from seqs.cli import demo as demo_module
from seqs.cli import main
from seqs.services.dhcp_client import DhcpClient
from seqs.services.echo import UdpEchoService
from seqs.stack import Stack
from seqs.tcp.connection import TcpConnection

ROUTER_MAC = bytes.fromhex("020000000001")
HOST_MAC = bytes.fromhex("020000000002")
BROADCAST = b"\xff" * 6
PCAP_HEADER = struct.Struct("<IHHiIII")  # magic, version major/minor, thiszone, sigfigs, snaplen, linktype
PCAP_RECORD = struct.Struct("<IIII")  # seconds, nanoseconds, captured length, original length
PCAP_MAGIC_NS = 0xA1B23C4D
LINKTYPE_ETHERNET = 1
VIRTUAL_EPOCH = 1.7e9  # VirtualNetwork stamps frames with this plus virtual time


@dataclass(frozen=True)
class DemoRun:
    returncode: int
    out: str
    err: str
    pcap: pathlib.Path


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    where = tmp_path_factory.mktemp("demo")
    pcap = where / "demo.pcap"
    r = subprocess.run([sys.executable, "-m", "seqs", "demo", "--pcap", str(pcap)], capture_output=True,
                       text=True, timeout=300, cwd=where)
    return DemoRun(r.returncode, r.stdout, r.stderr, pcap)


def line(out: str, pattern: str) -> re.Match[str]:
    m = re.search(pattern, out, re.MULTILINE)
    assert m is not None, f"no line matching {pattern!r} in:\n{out}"
    return m


def read_pcap(path: pathlib.Path) -> tuple[tuple[int, ...], list[tuple[float, bytes, int]]]:
    """The file header and the records (timestamp, captured bytes, original length); checks
    that the records fill the file exactly, none truncated and nothing trailing."""
    raw = path.read_bytes()
    assert len(raw) >= PCAP_HEADER.size, "shorter than a pcap file header"
    header = PCAP_HEADER.unpack_from(raw, 0)
    records: list[tuple[float, bytes, int]] = []
    off = PCAP_HEADER.size
    while off < len(raw):
        assert off + PCAP_RECORD.size <= len(raw), f"record header cut short at byte {off}"
        sec, nsec, incl, orig = PCAP_RECORD.unpack_from(raw, off)
        off += PCAP_RECORD.size
        assert nsec < 1_000_000_000 and incl <= orig, (len(records), nsec, incl, orig)
        assert off + incl <= len(raw), f"record {len(records)} cut short"
        records.append((sec + nsec / 1e9, raw[off : off + incl], orig))
        off += incl
    return header, records


# ====================================================================== the narration


def test_demo_narrates_every_step_in_order_and_exits_0(demo: DemoRun) -> None:
    assert demo.returncode == 0, demo.out + demo.err
    assert "Traceback" not in demo.err, demo.err
    out = demo.out
    steps = [
        # DHCP: DISCOVER/OFFER/REQUEST/ACK from the router's server, options included
        line(out, r"^DHCP: host leased 10\.0\.0\.(\d+)/24 from 10\.0\.0\.1 for 3600 s "
                  r"\(gateway 10\.0\.0\.1, DNS 10\.0\.0\.1, NTP 10\.0\.0\.1\)"),
        line(out, r"^ARP: host learned \{'10\.0\.0\.1': '02:00:00:00:00:01'\}$"),
        line(out, r"^ping 10\.0\.0\.1 seq=1: reply from 10\.0\.0\.1 in [\d.]+ ms \(virtual\)$"),
        line(out, r"^ping -s 4000: reply intact; router reassembled ([1-9]\d*), host reassembled ([1-9]\d*) "
                  r"datagrams$"),
        line(out, r"^UDP echo over a 10%-loss link: sent 50, router echoed (\d+), host got (\d+) back"),
        line(out, rf"^UDP to closed port 9999: router answered ICMP port unreachable -> "
                  rf"ConnectionRefusedError\({errno.ECONNREFUSED}, "),
        line(out, r"^TCP: 1 MiB over the 10%-loss link in ([\d.]+) s virtual, sha256 matches, (\d+) loss "
                  r"recoveries"),
        line(out, r"^DNS: "),
        line(out, r"^NTP: "),
        line(out, r"^HTTP: "),
        line(out, r"^DHCP: host released its lease; the server's table: 0 bindings, 98 of 98 addresses free$"),
    ]
    starts = [m.start() for m in steps]
    assert starts == sorted(starts), "the steps are narrated out of order"
    assert 2 <= int(steps[0][1]) <= 99  # from the pool 10.0.0.2-10.0.0.99
    echoed, got = int(steps[4][1]), int(steps[4][2])
    assert 0 < got <= echoed < 50  # the link loses datagrams and UDP does not retransmit them
    assert float(steps[6][1]) > 0 and int(steps[6][2]) > 0  # TCP had losses to recover from
    assert "FAILED" not in out and "DATA DIFFERS" not in out and "WRONG" not in out


# ====================================================================== the capture


def test_demo_pcap_is_a_valid_capture_of_every_frame_sent(demo: DemoRun) -> None:
    """Classic pcap, nanosecond timestamps, Ethernet; one record per frame the demo says it
    wrote, in virtual-time order, each a well-formed Ethernet frame between the two hosts,
    carrying (at least) the demo's 1 MiB TCP transfer and 2 MiB download."""
    header, records = read_pcap(demo.pcap)
    magic, major, minor, _zone, _sigfigs, snaplen, linktype = header
    assert (magic, major, minor, linktype) == (PCAP_MAGIC_NS, 2, 4, LINKTYPE_ETHERNET)
    written = int(line(demo.out, r"^(\d+) frames written to ")[1])
    assert len(records) == written
    assert 2_000 < written < 50_000, written

    times = [t for t, _, _ in records]
    assert times == sorted(times)
    assert times[0] >= VIRTUAL_EPOCH and times[-1] < VIRTUAL_EPOCH + 3600

    ethertypes: Counter[int] = Counter()
    protos: Counter[int] = Counter()
    tcp_payload = 0
    for i, (_, frame, orig) in enumerate(records):
        assert len(frame) == orig <= snaplen and 14 + 28 <= len(frame) <= 1514, (i, len(frame), orig)
        dst, src, ethertype = frame[0:6], frame[6:12], int.from_bytes(frame[12:14], "big")
        assert src in (ROUTER_MAC, HOST_MAC) and dst in (ROUTER_MAC, HOST_MAC, BROADCAST), i
        ethertypes[ethertype] += 1
        if ethertype != 0x0800:
            continue
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        total = int.from_bytes(ip[2:4], "big")
        # short frames are padded to the 60-byte Ethernet minimum; longer ones exactly fit
        assert ip[0] >> 4 == 4 and 20 <= ihl <= total <= len(ip) and (len(frame) == 60 or total == len(ip)), i
        protos[ip[9]] += 1
        fragment = int.from_bytes(ip[6:8], "big") & 0x3FFF  # MF flag or an offset
        if ip[9] == 6 and not fragment:
            tcp_payload += total - ihl - (ip[ihl + 12] >> 4) * 4
    assert set(ethertypes) == {0x0800, 0x0806} and ethertypes[0x0806] >= 2  # ARP request and reply
    assert protos[1] >= 4 and protos[17] >= 50 and protos[6] > 2_000, protos  # ICMP, UDP, TCP
    assert tcp_payload >= 3 * 2**20, tcp_payload  # 1 MiB + 2 MiB, plus retransmissions


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_demo_pcap_reads_cleanly_in_tshark(demo: DemoRun) -> None:
    """Wireshark's dissectors agree: every frame read, none malformed, every protocol of the
    tour recognised."""
    r = subprocess.run(["tshark", "-r", str(demo.pcap), "-n", "-T", "fields", "-e", "frame.protocols"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    frames = r.stdout.splitlines()
    assert len(frames) == len(read_pcap(demo.pcap)[1])
    malformed = [i + 1 for i, protocols in enumerate(frames) if "malformed" in protocols]
    assert not malformed, f"tshark finds frames {malformed[:20]} malformed"
    seen = {p for protocols in frames for p in protocols.split(":")}
    assert {"arp", "icmp", "udp", "echo", "dhcp", "tcp", "dns", "ntp", "http"} <= seen, seen


# ====================================================================== the exit status


def test_demo_exit_status_names_every_failed_step(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Three steps made to fail: the router's TCP server gets one byte of the transfer wrong,
    something listens on the "closed" UDP port, and the host's DHCPRELEASE never leaves.
    The demo says so in each step, names exactly those steps last, and exits 1."""
    recv = TcpConnection.recv
    spoiled: list[bool] = []

    def spoiling_recv(self: TcpConnection, *args: Any, **kwargs: Any) -> bytes | None:
        data = recv(self, *args, **kwargs)
        if data and self.lport == 9 and not spoiled:  # the demo's TCP step serves on port 9
            spoiled.append(True)
            return bytes([data[0] ^ 0xFF]) + data[1:]
        return data

    class EchoAndSquatter(UdpEchoService):
        def __init__(self, stack: Stack, port: int = 7) -> None:
            super().__init__(stack, port)
            self.squatter = stack.udp_socket()
            self.squatter.bind(("", 9999))

    def lost_release(self: DhcpClient, now: float) -> bool:
        self.stop()
        return True

    monkeypatch.setattr(TcpConnection, "recv", spoiling_recv)
    monkeypatch.setattr(demo_module, "UdpEchoService", EchoAndSquatter)
    monkeypatch.setattr(DhcpClient, "release", lost_release)
    assert main(["demo", "--pcap", str(tmp_path / "demo.pcap")]) == 1
    out = capsys.readouterr().out
    assert spoiled
    assert "closed port: no error reported" in out
    assert "DATA DIFFERS" in line(out, r"^TCP: .*$")[0]
    line(out, r"^DHCP: host released its lease; the server's table: 1 bindings, 97 of 98 addresses free$")
    assert out.rstrip().splitlines()[-1] == "demo FAILED: ICMP port unreachable, TCP transfer (sha256), DHCP release"


def test_demo_without_a_dhcp_lease_exits_1(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """The host never asks for an address: the tour stops at its first step with status 1."""
    monkeypatch.setattr(DhcpClient, "start", lambda self, now: None)
    assert main(["demo", "--pcap", str(tmp_path / "demo.pcap")]) == 1
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1] == "DHCP: no lease"
    assert "ping" not in out
