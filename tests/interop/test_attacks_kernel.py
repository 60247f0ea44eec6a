"""Hostile traffic from the kernel side of the TAP against ``seqs up``: floods, blind attacks, scans.

* SYN flood (``hping3 --flood -S --rand-source``, 10 s): the half-open table
  stays at its bound (``tcp_syn_backlog_evicted`` counts the evictions), the
  process' RSS stays flat, and a legitimate client connecting during the
  flood gets its echo round trip.
* UDP flood and ping flood (``hping3 --udp --flood``, ``ping -f``): TCP and
  UDP echo round trips still succeed during them.
* Blind attacks (RFC 5961) with scapy during a TCP echo transfer: in-window
  RSTs with inexact sequence numbers, SYNs into the connection and data with
  unacceptable ACKs.  The transfer completes intact, challenge ACKs are sent
  and rate-limited (``tcp_challenge_ack_sent``/``_limited``).
* nmap SYN, connect and UDP scans find exactly the open ports; closed ones
  answer RST / ICMP port unreachable (reported closed, not filtered); the host
  keeps serving afterwards.

Rates and memory are printed (``-s``); every wait is bounded.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from .reliability import TCP_ECHO_CLIENT, UDP_ECHO_CLIENT, UpHost, run_json, seqs_up

pytestmark = pytest.mark.interop

ECHO, DISCARD, CHARGEN = 7, 9, 19
FLOOD_SECONDS = 10


def report(line: str) -> None:
    print(f"\n{line}", end="", file=sys.stderr)


def tcp_echo(host: UpHost, size: int = 20_000, tries: int = 5, timeout: float = 3.0) -> dict[str, object]:
    return run_json(host.ns, TCP_ECHO_CLIENT, host.ip, str(ECHO), str(size), str(tries), str(timeout),
                    timeout=tries * (timeout + 2) + 10)


def udp_echo(host: UpHost, tries: int = 20) -> dict[str, object]:
    return run_json(host.ns, UDP_ECHO_CLIENT, host.ip, str(ECHO), str(tries), timeout=tries + 10)


def flood(host: UpHost, cmd: list[str]) -> subprocess.Popen[str]:
    # SIGINT makes hping3 and ping print their totals before exiting
    return host.ns.popen(["timeout", "-s", "INT", str(FLOOD_SECONDS), *cmd],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(p: subprocess.Popen[str]) -> str:
    out, err = p.communicate(timeout=FLOOD_SECONDS + 20)
    return out + err


@pytest.mark.programs("hping3")
def test_syn_flood_keeps_memory_bounded_and_a_legitimate_client_gets_through(tmp_path: pathlib.Path) -> None:
    with seqs_up(tmp_path, ["--tcp-echo", str(ECHO), "--udp-echo", str(ECHO)]) as host:
        assert tcp_echo(host)["ok"]  # warm up before measuring
        rss_before = host.rss_kb()
        rx_before = host.stats()["stats"]["tcp_rx"]
        p = flood(host, ["hping3", "--flood", "-S", "-p", str(ECHO), "--rand-source", host.ip])
        time.sleep(2.0)
        # Without SYN cookies a half-open entry lives only until 256 newer SYNs evict it (tens
        # of ms at this rate, less than the TAP queue's delay): a handshake may be reset and
        # the client retries.  The flood lasts FLOOD_SECONDS; the client may use all of it.
        during = tcp_echo(host, tries=40, timeout=1.0)
        mid = host.stats()
        time.sleep(1.0)
        rss_during = host.rss_kb()
        hping = finish(p)
        after = host.stats()
        rss_after = host.rss_kb()
        syns = after["stats"]["tcp_rx"] - rx_before
        evicted = after["stats"]["drops"].get("tcp_syn_backlog_evicted", 0)
        report(f"SYN flood: seqs took {syns} segments in ~{FLOOD_SECONDS} s ({syns / FLOOD_SECONDS:.0f}/s), "
               f"evicted {evicted} half-open; RSS {rss_before} -> {rss_during} -> {rss_after} kB; "
               f"tcp_connections mid-flood {mid['tcp_connections']}; legit client {during}; "
               f"hping3: {hping.strip().splitlines()[-2:] if hping.strip() else ''}")
        assert during["ok"], during
        assert syns > 1000 and evicted > 0
        assert mid["tcp_connections"] <= 256 + 8  # max_half_open of the listener, plus a few
        assert rss_after - rss_before < 64 * 1024, (rss_before, rss_after)
        assert host.alive() and tcp_echo(host)["ok"]


@pytest.mark.programs("hping3", "ping")
def test_udp_and_ping_floods_do_not_stop_tcp_and_udp_service(tmp_path: pathlib.Path) -> None:
    with seqs_up(tmp_path, ["--tcp-echo", str(ECHO), "--udp-echo", str(ECHO)]) as host:
        base = host.stats()["stats"]
        rss_before = host.rss_kb()
        udp = flood(host, ["hping3", "--udp", "--flood", "-p", str(ECHO), "-d", "64", host.ip])
        ping = flood(host, ["ping", "-f", "-q", host.ip])
        time.sleep(2.0)
        tcp_during = tcp_echo(host, tries=6, timeout=3.0)
        udp_during = udp_echo(host)
        finish(udp)
        ping_out = finish(ping)
        after = host.stats()["stats"]
        rss_after = host.rss_kb()
        udp_rx = after["udp_rx"] - base["udp_rx"]
        icmp_rx = after["icmp_rx"] - base["icmp_rx"]
        rx = after["rx_frames"] - base["rx_frames"]
        report(f"UDP+ping flood: seqs took {rx} frames in ~{FLOOD_SECONDS} s ({rx / FLOOD_SECONDS:.0f}/s: "
               f"UDP {udp_rx}, ICMP {icmp_rx}); drops {after['drops']}; RSS {rss_before} -> {rss_after} kB; "
               f"TCP echo {tcp_during}; UDP echo {udp_during}; "
               f"ping: {[ln for ln in ping_out.splitlines() if 'transmitted' in ln]}")
        assert tcp_during["ok"], tcp_during
        assert udp_during["ok"], udp_during
        assert udp_rx > 1000 and icmp_rx > 100  # ping -f waits for replies: it floods at our pace
        assert rss_after - rss_before < 64 * 1024
        assert host.alive() and tcp_echo(host)["ok"]


#: The attacker: sniff the victim connection on tap0 to learn roughly where its numbers
#: are (a test's privilege: RFC 5961's attacker guesses), then spray the next 210 KB of
#: sequence space — so many guesses land inside seqs' 256 KB window, none exactly on
#: RCV.NXT but by chance — with RSTs, SYNs and data with unacceptable ACKs, in bursts.
ATTACKER = r"""
import json, socket, struct, sys, time
from scapy.all import Ether, IP, TCP, sniff, conf
conf.verb = 0
iface, seqs_mac, seqs_ip, cport, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])

def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF

def frame(kmac, kip, sip, seq, ack, flags, payload=b""):
    tcp = struct.pack("!HHIIBBHHH", cport, 7, seq % 2**32, ack % 2**32, 5 << 4, flags, 1024, 0, 0) + payload
    pseudo = struct.pack("!4s4sBBH", kip, sip, 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, kip, sip)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return bytes.fromhex(seqs_mac.replace(":", "")) + bytes.fromhex(kmac.replace(":", "")) + b"\x08\x00" + ip + tcp

raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
raw.bind((iface, 0))
sip = socket.inet_aton(seqs_ip)
sent = {"rst": 0, "syn": 0, "bad_ack": 0}
for r in range(rounds):
    pkts = sniff(iface=iface, count=1, timeout=5,
                 lfilter=lambda p: TCP in p and p[TCP].sport == cport and p[IP].dst == seqs_ip)
    if not pkts:
        break
    p = pkts[0]
    kmac, kip, seq, ack = p[Ether].src, socket.inet_aton(p[IP].src), p[TCP].seq, p[TCP].ack
    burst = [frame(kmac, kip, sip, seq + 1 + i * 70, 0, 0x04) for i in range(3000)]  # RST
    burst += [frame(kmac, kip, sip, seq + 3 + i * 2003, 0, 0x02) for i in range(50)]  # SYN
    burst += [frame(kmac, kip, sip, seq + i * 2003, ack + 50_000_000 + i, 0x18, b"FORGED!!FORGED!!")
              for i in range(50)]  # data acknowledging what was never sent
    for i in range(0, len(burst), 100):  # ~6,000 frames/s: about what seqs reads, so few are lost in the TAP queue
        for f in burst[i : i + 100]:
            raw.send(f)
        time.sleep(0.015)
    sent["rst"] += 3000; sent["syn"] += 50; sent["bad_ack"] += 50
    time.sleep(0.5)
print(json.dumps(sent))
"""

#: The victim: a kernel client pushing data through the echo service from a fixed port.
VICTIM = r"""
import hashlib, json, socket, sys, threading, time
host, cport, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", cport)); s.settimeout(30); s.connect((host, 7))
block = bytes(range(256)) * 256
sent_hash, got_hash = hashlib.sha256(), hashlib.sha256()
def writer():
    n = 0
    while n < total:
        chunk = block[: min(len(block), total - n)]
        s.sendall(chunk); sent_hash.update(chunk); n += len(chunk)
        time.sleep(0.6)  # ~100 KB/s, ~10 s in all: the attack runs during it and aims where it is
    s.shutdown(socket.SHUT_WR)
t = threading.Thread(target=writer); t.start()
got = 0; t0 = time.monotonic(); err = None
try:
    while True:
        d = s.recv(1 << 16)
        if not d: break
        got_hash.update(d); got += len(d)
except OSError as e:
    err = repr(e)
t.join(30)
print(json.dumps({"sent": total, "got": got, "intact": got == total and sent_hash.digest() == got_hash.digest(),
                  "error": err, "seconds": time.monotonic() - t0}))
"""


@pytest.mark.programs("tshark")
def test_blind_rst_syn_and_bad_ack_injection_leave_a_transfer_intact(tmp_path: pathlib.Path) -> None:
    """RFC 5961 §3.2 (RST), §4.2 (SYN), §5.2 (ACK), §7 (rate limit), against a live transfer."""
    with seqs_up(tmp_path, ["--tcp-echo", str(ECHO)]) as host:
        cport = 45123
        total = 1_000_000
        victim = host.ns.popen([sys.executable, "-c", VICTIM, host.ip, str(cport), str(total)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.0)
        attack = run_json(host.ns, ATTACKER, "tap0", host.mac, host.ip, str(cport), "4", timeout=120)
        out, err = victim.communicate(timeout=120)
        result = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"error": err}
        drops = host.drops()
        report(f"blind attacks {attack} during {total} B echo: {result}; challenge ACKs sent "
               f"{drops.get('tcp_challenge_ack_sent', 0)}, limited {drops.get('tcp_challenge_ack_limited', 0)}, "
               f"ack_unsent {drops.get('tcp_ack_unsent', 0)}")
        assert result.get("intact"), result
        assert attack["rst"] > 0
        assert drops.get("tcp_challenge_ack_sent", 0) > 0
        assert drops.get("tcp_challenge_ack_limited", 0) > 0  # 3000 RSTs in half a second exceed 1000/s
        # §7: at most the per-second budget (1000) plus the bucket's depth each second of attack
        assert drops.get("tcp_challenge_ack_sent", 0) <= 1000 * (1 + result["seconds"])


def nmap_ports(xml_text: str) -> tuple[dict[int, str], dict[str, int]]:
    root = ET.fromstring(xml_text)
    ports = {int(p.get("portid", "0")): p.find("state").get("state", "")  # type: ignore[union-attr]
             for p in root.iter("port")}
    extra = {e.get("state", ""): int(e.get("count", "0")) for e in root.iter("extraports")}
    return ports, extra


@pytest.mark.programs("nmap")
def test_nmap_tcp_and_udp_scans_find_exactly_the_open_ports(tmp_path: pathlib.Path) -> None:
    args = ["--tcp-echo", str(ECHO), "--discard", str(DISCARD), "--chargen", str(CHARGEN), "--udp-echo", str(ECHO)]
    with seqs_up(tmp_path, args) as host:
        results = {}
        for scan, ports, extra_args in (("-sS", "1-200", []), ("-sT", "1-200", []),
                                        ("-sU", "1-25", ["--max-rate", "40"])):
            r = host.ns.run(["nmap", "-n", "-Pn", scan, "-p", ports, "--reason", *extra_args, "-oX", "-", host.ip],
                            timeout=240)
            assert r.returncode == 0, r.stderr
            listed, extra = nmap_ports(r.stdout)
            results[scan] = (listed, extra)
            report(f"nmap {scan} -p {ports}: {listed} {extra}")
            open_ports = {p for p, s in listed.items() if s == "open"}
            expected = {ECHO} if scan == "-sU" else {ECHO, DISCARD, CHARGEN}
            assert open_ports == expected, (scan, listed, extra)
            states = set(extra) | {s for s in listed.values() if s != "open"}
            assert states <= {"closed"}, (scan, listed, extra)  # answered, so never "filtered"
            total = int(ports.split("-")[1])
            assert len(listed) + sum(extra.values()) == total
        assert host.alive()
        assert tcp_echo(host)["ok"] and udp_echo(host)["ok"]
