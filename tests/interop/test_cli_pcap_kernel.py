"""``--pcap FILE`` on the one-shot commands, against the Linux kernel through a TAP.

Each test runs one command (``seqs ping``, ``resolve``, ``ntp``, ``connect``,
``get``) with ``--pcap`` inside a namespace it creates, against the kernel's
own ICMP and TCP, dnsmasq or chrony, then reads the capture with
``tests/pcap_check.py`` (struct and an independent checksum: nothing cut
short, every length and checksum right) and, when installed, tshark; and
checks that the exchange the command had is in it, from both sides, to its
last frame.  ``seqs up --pcap`` is covered the same way in
``test_iface_kernel.py`` and ``seqs demo --pcap`` in ``tests/test_cli_pcap.py``.
"""

from __future__ import annotations

import pathlib
import random
import select
import subprocess
import sys
from collections.abc import Iterator

import pytest

from pcap_check import TCP_FIN, TCP_SYN, Frame, decode, kinds, read_pcap, tshark_problems
from seqs.netns import Namespace

from .test_dns_ntp_kernel import BIG, ZONE, Site, start_chrony, start_dnsmasq

pytestmark = pytest.mark.interop


@pytest.fixture
def site(tmp_path: pathlib.Path) -> Iterator[Site]:
    x, y = random.randint(1, 254), random.randint(1, 254)
    with Namespace("seqs-pcap") as ns:
        ns.add_tap("tap0", f"10.{x}.{y}.1/24")
        yield Site(ns, f"10.{x}.{y}.1", f"10.{x}.{y}.2", tmp_path)


def capture(path: pathlib.Path) -> list[Frame]:
    """The frames of a capture seqs wrote, each checked; tshark must find nothing wrong either."""
    frames = [decode(r.data) for r in read_pcap(str(path))]
    assert frames, f"{path}: no frames"
    problems = tshark_problems(str(path))
    assert not problems, f"tshark finds malformed or erroneous frames in {path}:\n{problems}"
    return frames


def ok(r: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


def _dhcp_type(f: Frame) -> int:
    """Option 53 (RFC 2132 §9.6) of a DHCP message, walked by hand."""
    p = f.payload
    i = 240
    while i < len(p) and p[i] != 255:
        if p[i] == 0:
            i += 1
            continue
        if p[i] == 53:
            return p[i + 2]
        i += 2 + p[i + 1]
    raise AssertionError(f"DHCP message without a type from {f.ip_src}")


def test_ping_pcap_has_the_arp_and_every_echo_both_ways(site: Site) -> None:
    pcap = site.tmp / "ping.pcap"
    r = ok(site.seqs("ping", "--pcap", str(pcap), "-c", "3", "-i", "0.2", "-s", "100", site.kernel_ip))
    assert "3 packets transmitted, 3 received" in r.stdout
    frames = capture(pcap)
    arp = {(f.ip_src, f.code) for f in frames if f.kind == "arp"}
    assert (site.ip, 1) in arp and (site.kernel_ip, 2) in arp  # who-has and the kernel's answer
    echoes = [(f.ip_src, f.code >> 8, len(f.payload)) for f in frames if f.kind == "icmp"]
    assert echoes.count((site.ip, 8, 100)) == 3 and echoes.count((site.kernel_ip, 0, 100)) == 3, echoes


@pytest.mark.programs("dnsmasq", "ss")
def test_resolve_pcap_has_the_lease_the_udp_question_the_tcp_retry_and_the_release(site: Site) -> None:
    # --dhcp so the capture must also hold what happens before the host has an address
    # and after the answer (the DHCPRELEASE on the way out).
    k = site.kernel_ip
    net = k.rsplit(".", 1)[0]
    start_dnsmasq(site, "--no-ping", f"--dhcp-range={net}.50,{net}.60,255.255.255.0,1h",
                  f"--dhcp-leasefile={site.tmp / 'leases'}", f"--dhcp-option=option:dns-server,{k}")
    pcap = site.tmp / "resolve.pcap"
    r = ok(site.seqs("resolve", "--dhcp", "--dhcp-timeout", "20", "--pcap", str(pcap), "--type", "AAAA",
                     f"big.{ZONE}", address=False))
    assert len(r.stdout.splitlines()) == BIG
    frames = capture(pcap)
    dhcp = [(i, _dhcp_type(f)) for i, f in enumerate(frames) if f.kind == "udp" and 67 in (f.sport, f.dport)]
    assert [t for _, t in dhcp] == [1, 2, 3, 5, 7], dhcp  # DISCOVER OFFER REQUEST ACK, and at the end RELEASE
    ack = frames[dhcp[3][0]]
    leased = ".".join(str(b) for b in ack.payload[16:20])  # yiaddr
    dns = [i for i, f in enumerate(frames) if f.kind in ("udp", "tcp") and 53 in (f.sport, f.dport)]
    assert dhcp[3][0] < dns[0] and dns[-1] < dhcp[4][0], "DNS outside the lease, or the capture ends early"
    seen = kinds(frames, {53})
    # The UDP answer is truncated (dnsmasq's 512 bytes), so the question is asked again over TCP.
    assert seen[leased, "udp", 53] >= 1 and seen[k, "udp", 53] >= 1, seen
    assert seen[leased, "tcp", 53] >= 3 and seen[k, "tcp", 53] >= 3, seen
    syn = [f.ip_src for f in frames if f.kind == "tcp" and f.code & TCP_SYN]
    assert syn == [leased, k], syn


@pytest.mark.programs("chronyd", "ss")
def test_ntp_pcap_has_each_request_and_reply(site: Site) -> None:
    start_chrony(site)
    pcap = site.tmp / "ntp.pcap"
    ok(site.seqs("ntp", "--pcap", str(pcap), "--samples", "3", "--interval", "0.2", site.kernel_ip))
    frames = capture(pcap)
    ntp = [(f.ip_src, f.payload[0] & 7, len(f.payload)) for f in frames
           if f.kind == "udp" and 123 in (f.sport, f.dport)]
    requests = [x for x in ntp if x[0] == site.ip]
    replies = [x for x in ntp if x[0] == site.kernel_ip]
    # RFC 5905 §7.3: mode 3 out, mode 4 back, 48 bytes each way.
    assert requests == [(site.ip, 3, 48)] * 3, ntp
    assert 2 <= len(replies) <= 3 and set(replies) == {(site.kernel_ip, 4, 48)}, ntp


_ECHO = r"""
import socket, sys
s = socket.create_server((sys.argv[1], int(sys.argv[2])))
s.settimeout(30)
print("ready", flush=True)
c, _ = s.accept()
c.settimeout(30)
while d := c.recv(65536):
    c.sendall(d)
c.close()
"""


def test_connect_pcap_has_the_handshake_the_data_both_ways_and_both_fins(site: Site) -> None:
    server = site.ns.popen([sys.executable, "-c", _ECHO, site.kernel_ip, "7007"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    assert server.stdout is not None
    ready, _, _ = select.select([server.stdout], [], [], 10.0)
    assert ready and server.stdout.readline().strip() == "ready", "the kernel's echo server did not start"
    pcap = site.tmp / "connect.pcap"
    data = "".join(f"line {i} through seqs\n" for i in range(2000))  # ~45 KB: several segments each way
    r = site.ns.run([sys.executable, "-m", "seqs", "connect", "--tap", "tap0", "--ip", f"{site.ip}/24",
                     "--pcap", str(pcap), site.kernel_ip, "7007"], input=data, timeout=60)
    assert ok(r).stdout == data
    frames = [f for f in capture(pcap) if f.kind == "tcp"]
    ours = [f for f in frames if f.ip_src == site.ip]
    theirs = [f for f in frames if f.ip_src == site.kernel_ip]
    assert ours[0].code & TCP_SYN and theirs[0].code & TCP_SYN  # SYN, then SYN-ACK
    assert any(f.code & TCP_FIN for f in ours) and any(f.code & TCP_FIN for f in theirs)
    # Every byte is in the capture each way (retransmissions could only add to it).
    assert sum(len(f.payload) for f in ours) >= len(data) and sum(len(f.payload) for f in theirs) >= len(data)
    assert b"line 1999 through seqs\n" in b"".join(f.payload for f in ours)
    assert b"line 1999 through seqs\n" in b"".join(f.payload for f in theirs)


def test_get_pcap_has_the_request_and_the_response(site: Site) -> None:
    www = site.tmp / "www"
    www.mkdir()
    (www / "hello.txt").write_text("hello through seqs\n")
    site.ns.popen([sys.executable, "-m", "http.server", "8000", "--bind", site.kernel_ip, "--directory", str(www)],
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    site.wait_listening("tcp", 8000, site.tmp / "no.log")
    pcap = site.tmp / "get.pcap"
    r = ok(site.seqs("get", "--pcap", str(pcap), "-o", "-", f"http://{site.kernel_ip}:8000/hello.txt"))
    assert r.stdout == "hello through seqs\n"
    frames = [f for f in capture(pcap) if f.kind == "tcp"]
    request = b"".join(f.payload for f in frames if f.ip_src == site.ip)
    response = b"".join(f.payload for f in frames if f.ip_src == site.kernel_ip)
    assert request.startswith(b"GET /hello.txt HTTP/1.1\r\n")
    assert response.startswith(b"HTTP/1.0 200 OK\r\n") and response.endswith(b"\r\n\r\nhello through seqs\n")
    assert any(f.code & TCP_FIN for f in frames if f.ip_src == site.ip)
