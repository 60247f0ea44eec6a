"""Hostile traffic from the kernel side of the TAP against ``seqs up``: floods, blind attacks, scans.

* SYN flood (``hping3 --flood -S --rand-source``, 10 s): the half-open table
  stays at its bound and every SYN beyond it is answered with a SYN cookie
  (``tcp_syncookie_sent``), the process' RSS stays flat, and a legitimate
  kernel client completes echo round trips *while hping3 is still flooding* —
  through cookies (``tcp_syncookie_valid``).  How many is a figure of the
  machine (2-23 in 10 s here: the TAP queue drops 85-88 % of all frames,
  the client's among them, before seqs can read them), so at least one is
  required and the count is reported.
* UDP flood and ping flood (``hping3 --udp --flood``, ``ping -f``), each on its
  own: TCP and UDP echo round trips succeed while the flood is still running.
* Blind attacks (RFC 5961) with scapy during a TCP echo transfer, in three
  phases with the counters read between them: SYNs into the connection (each
  answered by a challenge ACK), data with unacceptable ACKs (dropped and
  counted as ``tcp_ack_unsent``), in-window RSTs with inexact sequence numbers
  (challenge ACKs, rate-limited).  The transfer completes intact.
* nmap SYN, connect and UDP scans of ports 1-1024 find exactly the open ports;
  closed ones answer RST / ICMP port unreachable (reported closed with reason
  ``reset`` / ``port-unreach``, and counted by seqs as ``tcp_rst_sent`` /
  ``icmp_errors_tx``); the host keeps serving afterwards.

Rates, memory and counters are printed (``-s``) and, with ``SEQS_TEST_REPORT``
set, appended to that file as JSON lines (``helpers.record``); every wait is
bounded.
"""

from __future__ import annotations

import json
import pathlib
import re
import select
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from helpers import record

from .reliability import TCP_ECHO_CLIENT, UDP_ECHO_CLIENT, UpHost, run_json, seqs_up

pytestmark = pytest.mark.interop

ECHO, DISCARD, CHARGEN = 7, 9, 19
FLOOD_SECONDS = 10
#: threads of the legitimate client in the flood tests, each a sequence of round trips: a
#: flood seqs reads one frame in seven of (the kernel drops the rest in the TAP queue) lets
#: a connection through once in 10-20 tries, so the client makes its tries in parallel
LEGIT_WORKERS = 16


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


#: The legitimate client of the flood tests, on the kernel side: ``workers`` threads each
#: doing echo round trips one after another until ``until`` (time.monotonic:
#: CLOCK_MONOTONIC, one clock for every process) or ``enough`` have succeeded.  Each round trip — connect, send, read
#: the echo — must finish within ``budget`` seconds or is abandoned for a fresh one: a
#: connection whose first segments were lost in the flood backs its RTO off (1 s, 2 s...)
#: long past the flood, while a new one starts again from one round trip.  Prints the
#: [start, end] of every round trip that succeeded.
LEGIT_ROUNDS = r"""
import json, socket, sys, threading, time
host, port, size, until, budget, workers, enough = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                                                    float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]),
                                                    int(sys.argv[7]))
msg = (bytes(range(256)) * (size // 256 + 1))[:size]
ok, failed, errors = [], [0], {}
lock = threading.Lock()
def worker():
    while time.monotonic() + 0.2 < until and len(ok) < enough:
        t0 = time.monotonic()
        end = min(until, t0 + budget)
        got = b""
        err = None
        try:
            s = socket.create_connection((host, port), timeout=end - t0)
            try:
                s.sendall(msg)
                while len(got) < len(msg) and time.monotonic() < end:
                    s.settimeout(max(0.01, end - time.monotonic()))
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got += chunk
            finally:
                s.close()
        except OSError as e:
            err = type(e).__name__
        with lock:
            if got == msg:
                ok.append([t0, time.monotonic()])
            else:
                failed[0] += 1
                err = err or "short echo"
                errors[err] = errors.get(err, 0) + 1
threads = [threading.Thread(target=worker) for _ in range(workers)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"ok": sorted(ok), "failed": failed[0], "errors": errors}))
"""


#: The legitimate UDP client of the flood tests: a datagram every ``interval`` seconds
#: until ``until``, each echo checked; prints how many were sent and echoed, and when the
#: first echo came (a flood seqs reads one frame in eight of drops that share of the
#: client's datagrams in the TAP queue too, so one datagram is not enough of a test).
UDP_ROUNDS = r"""
import json, socket, sys, time
host, port, until, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sent, echoed, first = 0, 0, None
while time.monotonic() < until:
    msg = b"legit %d" % sent
    s.sendto(msg, (host, port))
    sent += 1
    end = min(until, time.monotonic() + interval)
    while time.monotonic() < end:
        s.settimeout(max(0.001, end - time.monotonic()))
        try:
            data, _ = s.recvfrom(2048)
        except OSError:
            break
        if data.startswith(b"legit "):
            echoed += 1
            first = first or time.monotonic()
print(json.dumps({"ok": echoed > 0, "sent": sent, "echoed": echoed, "first": first}))
"""


def sent_by(tool_output: str) -> int:
    """The packets hping3 or ping says it sent (``N packets transmitted``)."""
    m = re.search(r"(\d+) packets transmitted", tool_output)
    return int(m.group(1)) if m else 0


def tap_drops(host: UpHost) -> dict[str, int]:
    """The kernel's drop counters of tap0: ``to_seqs`` are frames it dropped because seqs
    had not read the queue in time, ``from_seqs`` frames seqs wrote that it dropped."""
    r = host.ns.run(["ip", "-s", "-j", "link", "show", "tap0"], timeout=10)
    st = json.loads(r.stdout)[0]["stats64"]
    return {"to_seqs": int(st["tx"]["dropped"]), "from_seqs": int(st["rx"]["dropped"])}


def counters(host: UpHost) -> dict[str, Any]:
    return host.stats()["stats"]  # type: ignore[no-any-return]


@pytest.mark.programs("hping3")
def test_syn_flood_keeps_memory_bounded_and_a_legitimate_client_gets_through(tmp_path: pathlib.Path) -> None:
    """RFC 4987 §3.6: under ``hping3 --flood`` the legitimate client connects through SYN
    cookies, each round trip done before the flood ends."""
    with seqs_up(tmp_path, ["--tcp-echo", str(ECHO), "--udp-echo", str(ECHO)]) as host:
        assert tcp_echo(host)["ok"]  # warm up before measuring
        rss_before = host.rss_kb()
        before = counters(host)
        tap_before = tap_drops(host)
        start = time.monotonic()
        p = flood(host, ["hping3", "--flood", "-S", "-p", str(ECHO), "--rand-source", host.ip])
        time.sleep(1.0)  # the half-open table fills in a fraction of this: cookies from then on
        mid = host.stats()  # before the legitimate client adds connections of its own
        # Round trips of one segment each way until 1.5 s before the flood ends; each is
        # over when it is recorded.
        until = start + FLOOD_SECONDS - 1.5
        legit = run_json(host.ns, LEGIT_ROUNDS, host.ip, str(ECHO), "1000", f"{until:.3f}", "1.5",
                         str(LEGIT_WORKERS), "1000000", timeout=FLOOD_SECONDS + 10)
        still_flooding = p.poll() is None
        late = host.stats()
        rss_during = host.rss_kb()
        hping = finish(p)
        flood_seconds = time.monotonic() - start
        after = counters(host)
        rss_after = host.rss_kb()
        tap = {k: v - tap_before[k] for k, v in tap_drops(host).items()}
        drops, drops_before = after["drops"], before["drops"]

        def delta(name: str) -> int:
            return int(drops.get(name, 0) - drops_before.get(name, 0))

        syns = after["tcp_rx"] - before["tcp_rx"]
        sent = sent_by(hping)
        done = sorted(round(end - start, 2) for _t0, end in legit["ok"])
        figures = {
            "hping3_sent": sent, "flood_seconds": round(flood_seconds, 2),
            "hping3_rate_per_s": round(sent / flood_seconds), "seqs_segments": syns,
            "seqs_rate_per_s": round(syns / flood_seconds), "tap_dropped": tap, "cookies_sent": delta("tcp_syncookie_sent"),
            "cookies_valid": delta("tcp_syncookie_valid"), "cookies_invalid": delta("tcp_syncookie_invalid"),
            "evicted": delta("tcp_syn_backlog_evicted"), "rss_kb": [rss_before, rss_during, rss_after],
            "tcp_connections_mid_flood": mid["tcp_connections"], "tcp_states_late_in_flood": late["tcp_states"],
            "legit_round_trips": len(done), "legit_first_last_done_at_s": done[:1] + done[-1:],
            "legit_failed": legit["failed"], "legit_errors": legit["errors"], "flooding_at_last_success": still_flooding,
        }
        report(f"SYN flood: {figures}")
        record("interop_syn_flood", **figures)
        # every round trip counted succeeded while hping3 was still running
        assert still_flooding, figures
        assert done and done[-1] < FLOOD_SECONDS - 1.0, figures
        assert syns > 1000 and figures["cookies_sent"] > 1000, figures
        assert figures["evicted"] == 0  # cookies, not eviction, past the half-open bound
        assert figures["cookies_valid"] >= len(done)  # the table stays full: each came by a cookie
        assert mid["tcp_connections"] <= 256 + 8  # max_half_open of the listener, plus a few
        assert late["tcp_states"].get("SYN-RECEIVED", 0) <= 256  # still, with the client's connections
        assert rss_during - rss_before < 64 * 1024, figures["rss_kb"]
        assert rss_after - rss_before < 64 * 1024, figures["rss_kb"]
        assert host.alive() and tcp_echo(host)["ok"]


#: (program, arguments after it, what seqs counts of it)
FLOODS = {
    "udp": ("hping3", ["--udp", "--flood", "-p", str(ECHO), "-d", "64"], "udp_rx"),
    "ping": ("ping", ["-f", "-q"], "icmp_rx"),
}


@pytest.mark.parametrize("kind", [pytest.param(k, marks=pytest.mark.programs(FLOODS[k][0])) for k in FLOODS])
def test_udp_and_ping_floods_do_not_stop_tcp_and_udp_service(kind: str, tmp_path: pathlib.Path) -> None:
    """Each flood on its own; the TCP and UDP echo round trips both finish while it runs."""
    program, args, counted = FLOODS[kind]
    with seqs_up(tmp_path, ["--tcp-echo", str(ECHO), "--udp-echo", str(ECHO)]) as host:
        base = counters(host)
        rss_before = host.rss_kb()
        tap_before = tap_drops(host)
        start = time.monotonic()
        p = flood(host, [program, *args, host.ip])
        time.sleep(2.0)
        # TCP echo round trips (as in the SYN flood test: until three succeed, the last
        # done 1.5 s before the flood ends) and, meanwhile, UDP echoes (until the same time)
        until = f"{start + FLOOD_SECONDS - 1.5:.3f}"
        tcp = host.ns.popen([sys.executable, "-c", LEGIT_ROUNDS, host.ip, str(ECHO), "1000", until, "1.5",
                             str(LEGIT_WORKERS), "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        udp_during = run_json(host.ns, UDP_ROUNDS, host.ip, str(ECHO), until, "0.1", timeout=FLOOD_SECONDS + 10)
        if udp_during["first"]:
            udp_during["first"] = round(udp_during["first"] - start, 2)
        tcp_out, tcp_err = tcp.communicate(timeout=FLOOD_SECONDS + 10)
        still_flooding = p.poll() is None
        echoes_done = time.monotonic() - start
        assert tcp_out.strip(), tcp_err[-3000:]
        rounds = json.loads(tcp_out.strip().splitlines()[-1])
        done = sorted(round(end - start, 2) for _t0, end in rounds["ok"])
        tcp_during = {"ok": bool(done), "round_trips": len(done), "failed": rounds["failed"],
                      "errors": rounds["errors"], "first_last_done_at_s": done[:1] + done[-1:]}
        rss_during = host.rss_kb()
        out = finish(p)
        flood_seconds = time.monotonic() - start
        after = counters(host)
        rss_after = host.rss_kb()
        tap = {k: v - tap_before[k] for k, v in tap_drops(host).items()}
        taken = after[counted] - base[counted]
        rx = after["rx_frames"] - base["rx_frames"]
        sent = sent_by(out)
        figures = {
            "sent": sent, "flood_seconds": round(flood_seconds, 2), "sent_rate_per_s": round(sent / flood_seconds),
            "seqs_frames": rx, "seqs_rate_per_s": round(rx / flood_seconds), "tap_dropped": tap, counted: taken,
            "rss_kb": [rss_before, rss_during, rss_after], "tcp_echo": tcp_during, "udp_echo": udp_during,
            "echoes_done_at_s": round(echoes_done, 2), "flooding_when_done": still_flooding,
            "drops": after["drops"],
        }
        report(f"{kind} flood: {figures}")
        record(f"interop_{kind}_flood", **figures)
        assert tcp_during["ok"], figures
        assert udp_during["ok"], figures
        assert still_flooding, figures  # both round trips finished while the flood ran
        # ping -f waits for replies: it floods at our pace
        assert taken > (1000 if kind == "udp" else 100), figures
        assert rss_after - rss_before < 64 * 1024, figures["rss_kb"]
        assert host.alive() and tcp_echo(host)["ok"]


#: The attacker: sniff the victim connection on tap0 to learn roughly where its numbers
#: are (a test's privilege: RFC 5961's attacker guesses), then spray the sequence space
#: ahead of it — so many guesses land inside seqs' 256 KB window, none exactly on RCV.NXT
#: but by chance — in bursts, one kind of attack per phase: SYNs, then data with
#: unacceptable ACKs, then RSTs (over the next 210 KB).  After each phase it prints what it
#: sent and waits for a line on stdin: the test reads seqs' counters in between.
ATTACKER = r"""
import json, socket, struct, sys, time
from scapy.all import Ether, IP, TCP, sniff, conf
conf.verb = 0
iface, seqs_mac, seqs_ip, cport = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
phases = [(kind, int(rounds)) for kind, rounds in (p.split(":") for p in sys.argv[5].split(","))]

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

def burst(kind, kmac, kip, sip, seq, ack):
    if kind == "rst":
        return [frame(kmac, kip, sip, seq + 1 + i * 70, 0, 0x04) for i in range(3000)]
    if kind == "syn":
        return [frame(kmac, kip, sip, seq + 3 + i * 2003, 0, 0x02) for i in range(50)]
    # data acknowledging what was never sent
    return [frame(kmac, kip, sip, seq + i * 2003, ack + 50_000_000 + i, 0x18, b"FORGED!!FORGED!!") for i in range(50)]

raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
raw.bind((iface, 0))
sip = socket.inet_aton(seqs_ip)
sent = {}
for kind, rounds in phases:
    t0 = time.monotonic()
    n = 0
    for r in range(rounds):
        pkts = sniff(iface=iface, count=1, timeout=5,
                     lfilter=lambda p: TCP in p and p[TCP].sport == cport and p[IP].dst == seqs_ip)
        if not pkts:
            break
        p = pkts[0]
        frames = burst(kind, p[Ether].src, socket.inet_aton(p[IP].src), sip, p[TCP].seq, p[TCP].ack)
        for i in range(0, len(frames), 100):  # ~6,000 frames/s: about what seqs reads, so few are lost in the TAP queue
            for f in frames[i : i + 100]:
                raw.send(f)
            time.sleep(0.015)
        n += len(frames)
        time.sleep(0.5)
    sent[kind] = n
    print(json.dumps({"phase": kind, "sent": n, "seconds": time.monotonic() - t0}), flush=True)
    sys.stdin.readline()
print(json.dumps(sent), flush=True)
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


def read_line(p: subprocess.Popen[str], timeout: float) -> str:
    """The next line of ``p``'s stdout, waiting at most ``timeout`` seconds."""
    assert p.stdout is not None
    ready, _, _ = select.select([p.stdout], [], [], timeout)
    assert ready, f"no output within {timeout} s"
    return p.stdout.readline()


#: the attack's phases in order, each with its rounds (one burst per round)
PHASES = (("syn", 2), ("bad_ack", 2), ("rst", 4))


@pytest.mark.programs("tshark")
def test_blind_rst_syn_and_bad_ack_injection_leave_a_transfer_intact(tmp_path: pathlib.Path) -> None:
    """RFC 5961 §3.2 (RST), §4.2 (SYN), §5.2 (ACK), §7 (rate limit), against a live transfer;
    the counters are read after each kind of attack, so each is asserted on its own."""
    with seqs_up(tmp_path, ["--tcp-echo", str(ECHO)]) as host:
        cport = 45123
        total = 1_500_000  # ~15 s at the victim's pace: the three phases run inside it
        victim = host.ns.popen([sys.executable, "-c", VICTIM, host.ip, str(cport), str(total)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.0)
        plan = ",".join(f"{kind}:{rounds}" for kind, rounds in PHASES)
        attacker = host.ns.popen([sys.executable, "-c", ATTACKER, "tap0", host.mac, host.ip, str(cport), plan],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        phase: dict[str, dict[str, Any]] = {}
        try:
            drops = host.drops()
            for kind, _rounds in PHASES:
                line = read_line(attacker, 60.0)
                assert line.strip(), attacker.stderr.read() if attacker.stderr else ""
                done = json.loads(line)
                now = host.drops()
                counted = {k: now.get(k, 0) - drops.get(k, 0) for k in (
                    "tcp_challenge_ack_sent", "tcp_challenge_ack_limited", "tcp_ack_unsent", "tcp_unacceptable_segment",
                    "tcp_rst_out_of_window")}
                phase[kind] = {"sent": done["sent"], "seconds": round(done["seconds"], 2), **counted}
                drops = now
                assert attacker.stdin is not None
                attacker.stdin.write("\n")
                attacker.stdin.flush()
            attack = json.loads(read_line(attacker, 10.0))
        finally:
            if attacker.poll() is None:
                attacker.kill()
            attacker.communicate(timeout=10)
        out, err = victim.communicate(timeout=120)
        result = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"error": err}
        drops = host.drops()
        report(f"blind attacks {attack} during {total} B echo: {result}; by phase {phase}; challenge ACKs sent "
               f"{drops.get('tcp_challenge_ack_sent', 0)}, limited {drops.get('tcp_challenge_ack_limited', 0)}, "
               f"ack_unsent {drops.get('tcp_ack_unsent', 0)}")
        record("interop_blind_attacks", attack=attack, phases=phase, victim=result,
               challenge_ack_sent=drops.get("tcp_challenge_ack_sent", 0),
               challenge_ack_limited=drops.get("tcp_challenge_ack_limited", 0),
               ack_unsent=drops.get("tcp_ack_unsent", 0))
        assert result.get("intact"), result
        syn, bad_ack, rst = phase["syn"], phase["bad_ack"], phase["rst"]
        # RFC 5961 §4.2: a SYN in a synchronized state gets a challenge ACK (those outside the
        # window get the plain ACK of RFC 9293 §3.10.7.4 and are counted as unacceptable)
        assert syn["sent"] > 0 and syn["tcp_challenge_ack_sent"] > 0, phase
        assert syn["tcp_challenge_ack_sent"] + syn["tcp_unacceptable_segment"] <= syn["sent"], phase
        # RFC 5961 §5.2: data acknowledging what was never sent is dropped (its bytes never
        # reach the echo: the transfer is intact), counted, and answered by an ACK, not a challenge
        assert bad_ack["sent"] > 0 and bad_ack["tcp_ack_unsent"] > 0, phase
        assert bad_ack["tcp_ack_unsent"] <= bad_ack["sent"] and bad_ack["tcp_challenge_ack_sent"] == 0, phase
        assert syn["tcp_ack_unsent"] == 0 and rst["tcp_ack_unsent"] == 0, phase
        # RFC 5961 §3.2 and §7: inexact in-window RSTs get challenge ACKs, rate-limited
        assert attack["rst"] > 0
        assert rst["tcp_challenge_ack_sent"] > 0, phase
        assert rst["tcp_challenge_ack_limited"] > 0, phase  # 3000 RSTs in half a second exceed 1000/s
        assert rst["tcp_challenge_ack_sent"] <= 1000 * (1 + rst["seconds"]), phase
        assert drops.get("tcp_challenge_ack_sent", 0) > 0
        assert drops.get("tcp_challenge_ack_limited", 0) > 0
        # §7: at most the per-second budget (1000) plus the bucket's depth each second of attack
        assert drops.get("tcp_challenge_ack_sent", 0) <= 1000 * (1 + result["seconds"])


def nmap_ports(xml_text: str) -> tuple[dict[int, str], dict[str, int], dict[str, int]]:
    """(state of each listed port, count of each state nmap folded into "extraports",
    count of each reason nmap gives for a port not open: "reset", "port-unreach", ...)."""
    root = ET.fromstring(xml_text)
    ports: dict[int, str] = {}
    reasons: dict[str, int] = {}
    for p in root.iter("port"):
        state = p.find("state")
        assert state is not None
        ports[int(p.get("portid", "0"))] = state.get("state", "")
        if state.get("state") != "open":
            reasons[state.get("reason", "")] = reasons.get(state.get("reason", ""), 0) + 1
    extra = {e.get("state", ""): int(e.get("count", "0")) for e in root.iter("extraports")}
    for e in root.iter("extrareasons"):
        reasons[e.get("reason", "")] = reasons.get(e.get("reason", ""), 0) + int(e.get("count", "0"))
    return ports, extra, reasons


def counter_delta(before: dict[str, Any], after: dict[str, Any], name: str) -> int:
    """How much a traffic counter (``icmp_errors_tx``) or a drop reason (``tcp_rst_sent``) grew."""
    if name in after:
        return int(after[name] - before[name])
    return int(after["drops"].get(name, 0) - before["drops"].get(name, 0))


#: nmap's scans: (option, ports, extra options, the reason a closed port must give, the seqs
#: counter that counts those answers).  seqs rate-limits the ICMP errors it sends (RFC 1812
#: §4.3.2.8: InterfaceConfig.icmp_error_rate, 100/s with a burst of 50; ``seqs up`` has no
#: option for it), so the UDP scan goes at 80 probes/s: every closed port is answered
#: (1024 ports in ~15 s), none left "open|filtered" by a missing ICMP error.
SCANS = (
    ("-sS", 1024, [], "reset", "tcp_rst_sent"),
    ("-sT", 1024, [], "conn-refused", "tcp_rst_sent"),  # the kernel's connect() got the RST
    ("-sU", 1024, ["--max-rate", "80"], "port-unreach", "icmp_errors_tx"),
)


@pytest.mark.programs("nmap")
def test_nmap_tcp_and_udp_scans_find_exactly_the_open_ports(tmp_path: pathlib.Path) -> None:
    """SYN, connect and UDP scans of ports 1-1024 find exactly seqs' services; every other
    port is "closed" because seqs answered it — RST for TCP, ICMP port unreachable for UDP —
    as nmap's reasons and seqs' own counters both show; and the host keeps serving."""
    args = ["--tcp-echo", str(ECHO), "--discard", str(DISCARD), "--chargen", str(CHARGEN), "--udp-echo", str(ECHO)]
    with seqs_up(tmp_path, args) as host:
        for scan, total, extra_args, reason, counter in SCANS:
            before = counters(host)
            t0 = time.monotonic()
            r = host.ns.run(["nmap", "-n", "-Pn", scan, "-p", f"1-{total}", "--reason", *extra_args, "-oX", "-",
                             host.ip], timeout=240)
            seconds = time.monotonic() - t0
            assert r.returncode == 0, r.stderr
            after = counters(host)
            listed, extra, reasons = nmap_ports(r.stdout)
            open_ports = sorted(p for p, s in listed.items() if s == "open")
            closed = total - len(open_ports)
            answered = counter_delta(before, after, counter)
            figures = {"scan": scan, "ports": total, "seconds": round(seconds, 1), "open": open_ports,
                       "closed": closed, "reasons": reasons, counter: answered,
                       "icmp_error_rate_limited": counter_delta(before, after, "icmp_error_rate_limited")}
            report(f"nmap {scan} -p 1-{total}: {figures}")
            record("interop_nmap", **figures)
            expected = [ECHO] if scan == "-sU" else [DISCARD, ECHO, CHARGEN]
            assert open_ports == sorted(expected), (scan, listed, extra)
            states = set(extra) | {s for s in listed.values() if s != "open"}
            assert states <= {"closed"}, (scan, listed, extra)  # answered, so never "filtered"
            assert len(listed) + sum(extra.values()) == total
            # every closed port answered, and with the right answer: nmap's reason for each,
            # and seqs counted at least one RST / ICMP error per closed port
            assert reasons == {reason: closed}, figures
            assert answered >= closed, figures
        assert host.alive()
        assert tcp_echo(host)["ok"] and udp_echo(host)["ok"]
