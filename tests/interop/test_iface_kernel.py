"""The foundation against the Linux kernel: Ethernet, ARP, IPv4 (with fragments),
ICMP and UDP, with the kernel's own ping, neighbour cache and sockets as the peer.

Each test gets a fresh network namespace in which the kernel owns one side of a
TAP device and ``seqs up`` the other (see ``conftest.py``).  Kernel-side Python
runs inside that namespace through ``Namespace.python``; every loop and wait
here has a bound, and no timing is asserted.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from seqs.netns import Namespace

if TYPE_CHECKING:
    from .conftest import SeqsHost

pytestmark = pytest.mark.interop

_PING_SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) received")


def ping(host: SeqsHost, count: int, size: int = 56, interval: float = 0.01) -> tuple[int, int, str]:
    """The kernel's ping towards seqs: (sent, received, output).  Bounded by ``-w``."""
    deadline = 10 + int(count * interval * 2)
    r = host.ns.run(
        ["ping", "-n", "-c", str(count), "-i", str(interval), "-s", str(size), "-W", "2", "-w", str(deadline),
         host.ip],
        timeout=deadline + 15,
    )
    out = r.stdout + r.stderr
    m = _PING_SUMMARY.search(out)
    assert m, f"cannot read ping's summary:\n{out}"
    # iputils checks the echoed data and flags corruption and duplicates.
    assert "wrong data byte" not in out, out
    assert "DUP!" not in out, out
    return int(m[1]), int(m[2]), out


# -- 1. ping -----------------------------------------------------------------------------------


@pytest.mark.programs("ping")
@pytest.mark.parametrize("size", [0, 1, 56, 1000, 1472])
def test_kernel_ping_gets_replies_at_every_payload_size(seqs_host: SeqsHost, size: int) -> None:
    # 1472 bytes of ICMP data is a 1500-byte IP packet: exactly the TAP's MTU.
    sent, received, out = ping(seqs_host, 5, size)
    assert (sent, received) == (5, 5), out
    # The reply carries the request's data unchanged (RFC 792), so it has the same length.
    assert out.count(f"{size + 8} bytes from {seqs_host.ip}") == 5, out


# The kernel's ICMP through a raw socket: 100 echo requests whose data sizes are spread
# evenly over 0..1472 (both ends included), sent 10 ms apart like ping's -i 0.01, each
# with its own random data.  Every reply is matched to its request by sequence number
# and checked whole: from seqs, type 0 code 0, our identifier, a correct checksum
# (a raw socket sees replies the kernel's ICMP code would drop) and the request's
# data byte for byte (RFC 792, echo reply: "the data received in the echo message
# must be returned in the echo reply").
_SIZED_PINGER = r"""
import json, os, select, socket, struct, sys, time

dst, count, top = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sizes = [round(i * top / (count - 1)) for i in range(count)]


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


ident = os.getpid() & 0xFFFF
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
payloads = {}
replies, bad, dups = {}, [], 0


def receive(timeout):
    global dups
    r, _, _ = select.select([sock], [], [], timeout)
    if not r:
        return
    pkt, (src, _) = sock.recvfrom(65535)
    icmp = pkt[(pkt[0] & 0x0F) * 4:]
    typ, code, _csum, rid, seq = struct.unpack("!BBHHH", icmp[:8])
    if typ != 0 or rid != ident:
        return  # our own requests (a raw socket sees them too), someone else's
    why = []
    if src != dst:
        why.append(f"from {src}")
    if code != 0:
        why.append(f"code {code}")
    if checksum(icmp) != 0:
        why.append("bad checksum")
    if seq not in payloads:
        why.append("unknown sequence")
    elif icmp[8:] != payloads[seq]:
        why.append(f"data differs ({len(icmp) - 8} bytes back for {len(payloads[seq])})")
    if seq in replies:
        dups += 1
    elif why:
        bad.append({"seq": seq, "why": why})
    else:
        replies[seq] = len(icmp) - 8


for seq, size in enumerate(sizes):
    data = os.urandom(size)
    payloads[seq] = data
    req = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + data
    req = req[:2] + struct.pack("!H", checksum(req)) + req[4:]
    sock.sendto(req, (dst, 0))
    end = time.monotonic() + 0.01
    while (left := end - time.monotonic()) > 0:
        receive(left)
end = time.monotonic() + 5.0  # like ping -W: the last replies' time to come back
while len(replies) + len(bad) < count and time.monotonic() < end:
    receive(end - time.monotonic())
missing = [s for s in range(count) if s not in replies and all(b["seq"] != s for b in bad)]
print(json.dumps({"sizes": sizes, "answered": len(replies), "bad": bad, "duplicates": dups,
                  "missing": [(s, sizes[s]) for s in missing]}))
"""


def test_kernel_100_echo_requests_sized_0_to_1472_all_answered_intact(seqs_host: SeqsHost) -> None:
    # Issue 2: "100 pings, 0 lost, payload sizes 0..1472".  1472 bytes of ICMP data is
    # a 1500-byte IP packet, the TAP's MTU, so none of these needs fragmenting.
    r = seqs_host.ns.python(_SIZED_PINGER, seqs_host.ip, "100", "1472", timeout=60)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["sizes"][0] == 0 and res["sizes"][-1] == 1472 and len(set(res["sizes"])) == 100, res["sizes"]
    detail = {k: v for k, v in res.items() if k != "sizes"}
    assert res["bad"] == [] and res["missing"] == [], detail
    assert res["answered"] == 100, detail
    assert res["duplicates"] == 0, detail


@pytest.mark.programs("ping")
def test_kernel_ping_100_requests_none_lost(seqs_host: SeqsHost) -> None:
    # The same count through iputils ping itself, at its 10 ms interval; it checks
    # the echoed data and flags duplicates (see ping() above).
    sent, received, out = ping(seqs_host, 100, 56, interval=0.01)
    assert (sent, received) == (100, 100), out


@pytest.mark.programs("ping")
def test_kernel_ping_of_4000_bytes_is_fragmented_reassembled_and_answered(seqs_host: SeqsHost) -> None:
    # 4028 bytes of IP over a 1500 MTU: the kernel sends 3 fragments, seqs reassembles,
    # answers with 4028 bytes of its own and fragments them (RFC 791 §3.2), the kernel
    # reassembles the reply.
    sent, received, out = ping(seqs_host, 5, 4000, interval=0.05)
    assert (sent, received) == (5, 5), out
    assert out.count(f"4008 bytes from {seqs_host.ip}") == 5, out


# -- 2. ARP ------------------------------------------------------------------------------------


@pytest.mark.programs("ping")
def test_kernel_arp_cache_learns_our_mac(seqs_host: SeqsHost) -> None:
    host = seqs_host
    host.ns.ip("neigh", "flush", "dev", host.tap)
    _, received, out = ping(host, 1)
    assert received == 1, out
    entries = json.loads(host.ns.ip("-j", "neigh", "show", "to", host.ip, "dev", host.tap) or "[]")
    assert len(entries) == 1, entries
    entry = entries[0]
    assert entry.get("lladdr") == host.mac, f"kernel has {entry}, seqs said mac={host.mac}"
    assert not {"FAILED", "INCOMPLETE"} & set(entry.get("state", [])), entry


# -- 3. ICMP port unreachable ----------------------------------------------------------------

_CLOSED_PORT_CLIENT = r"""
import socket, sys
ip = sys.argv[1]
for port in map(int, sys.argv[2:]):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5.0)
    s.connect((ip, port))
    s.send(b"anyone there?")
    try:
        s.recv(2048)
        print(port, "answered")
    except ConnectionRefusedError:
        print(port, "ECONNREFUSED")
    except TimeoutError:
        print(port, "timeout")
    s.close()
"""


def test_udp_to_closed_port_gets_port_unreachable(seqs_host: SeqsHost) -> None:
    # RFC 1122 §4.1.3.1: ICMP port unreachable; Linux turns it into ECONNREFUSED
    # on the connected socket's next call.
    ports = ["9", "4242", "65535"]
    r = seqs_host.ns.python(_CLOSED_PORT_CLIENT, seqs_host.ip, *ports, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:-1] == [f"{p} ECONNREFUSED" for p in ports], r.stdout + r.stderr


# -- 4. UDP echo --------------------------------------------------------------------------------

_ECHO_CLIENT = r"""
import json, random, socket, struct, sys, time

ip, port, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
# Sizes of whole datagrams (sequence number included): tiny, around the 1472-byte
# limit of one 1500-byte frame, and larger ones that both sides must fragment.
FIXED = [4, 5, 64, 512, 1400, 1471, 1472, 1473, 2000, 2952, 2953, 4000, 8972, 30000, 65507]
# Every edge size once, then two in three fit one frame and one in three fragments.
sizes = (FIXED + [rng.choice([rng.randint(4, 1472), rng.randint(4, 1472), rng.randint(1473, 9000)])
                  for _ in range(n)])[:n]
payloads = [struct.pack("!I", i) + rng.randbytes(sz - 4) for i, sz in enumerate(sizes)]

WINDOW, WINDOW_BYTES = 8, 96 * 1024  # outstanding datagrams; stays far below both receive buffers
TIMEOUT, MAX_TRIES = 2.0, 3  # per datagram
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
s.connect((ip, port))
s.settimeout(0.2)
pending = {}  # seq -> [sent_at, tries]
done, bad, dups, retries, failed = set(), [], 0, 0, []
nxt, outstanding = 0, 0


def receive():
    global dups, outstanding
    try:
        data = s.recv(70000)
    except TimeoutError:
        return False
    seq = struct.unpack("!I", data[:4])[0] if len(data) >= 4 else -1
    if seq in done:
        dups += 1  # the answer to a datagram we had sent again
    elif seq not in pending:
        bad.append({"seq": seq, "len": len(data), "why": "unexpected"})
    else:
        del pending[seq]
        outstanding -= sizes[seq]
        if data == payloads[seq]:
            done.add(seq)
        else:
            bad.append({"seq": seq, "len": len(data), "want": sizes[seq], "why": "corrupt"})
            failed.append(seq)
    return True


end = time.monotonic() + 120
while len(done) + len(failed) < n and time.monotonic() < end:
    while nxt < n and len(pending) < WINDOW and (not pending or outstanding + sizes[nxt] <= WINDOW_BYTES):
        s.send(payloads[nxt])
        pending[nxt] = [time.monotonic(), 1]
        outstanding += sizes[nxt]
        nxt += 1
    receive()
    now = time.monotonic()
    for seq, st in list(pending.items()):
        if now - st[0] > TIMEOUT:
            if st[1] >= MAX_TRIES:
                del pending[seq]
                outstanding -= sizes[seq]
                failed.append(seq)
            else:
                s.send(payloads[seq])
                st[0], st[1] = now, st[1] + 1
                retries += 1
# A retry after a stall is answered twice; one after a loss only once.  Collect the
# late answers so the two can be told apart.
drain_end = time.monotonic() + (2 * TIMEOUT if retries else 0)
while dups < retries and time.monotonic() < drain_end:
    receive()
print(json.dumps({"intact": len(done), "bad": bad[:10], "failed": failed[:20], "duplicates": dups,
                  "retries": retries, "lost": retries - dups, "sent_bytes": sum(sizes),
                  "max_size": max(sizes)}))
"""


def test_udp_echo_returns_1000_datagrams_intact(seqs_host: SeqsHost) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    host = seqs_host
    r = host.ns.python(_ECHO_CLIENT, host.ip, str(host.echo_port), "1000", str(seed), timeout=180)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    detail = f"seed={seed}: {res}"
    assert res["intact"] == 1000, detail
    assert res["bad"] == [] and res["failed"] == [], detail
    # A lost datagram on a private TAP is a bug.  The few retries allowed only keep
    # a stall of the machine (answers that come late, and then twice) from failing
    # the test; a retry that is answered once stands for a loss.
    assert res["lost"] == 0, detail
    assert res["retries"] <= 3, detail
    assert res["max_size"] == 65507, detail


# -- 5. pcap ------------------------------------------------------------------------------------

_TSHARK_FIELDS = ["frame.protocols", "eth.src", "ip.src", "ip.flags.mf", "ip.frag_offset", "icmp.type",
                  "icmp.code", "udp.srcport", "udp.dstport", "arp.opcode", "arp.src.hw_mac"]
# Checksum validation is off by default in Wireshark; with it on, a bad checksum is
# an expert-info error and shows up in the malformed/error filter below.
_TSHARK_CHECKSUMS = ["-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
                     "-o", "tcp.check_checksum:TRUE"]


def tshark(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tshark", "-n", *_TSHARK_CHECKSUMS, *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.programs("ping", "tshark")
def test_pcap_written_by_seqs_is_read_by_tshark_without_malformed_packets(seqs_host: SeqsHost) -> None:
    host = seqs_host
    pings = [(56, 10), (1472, 2), (4000, 2)]
    for size, count in pings:
        _, received, out = ping(host, count, size, interval=0.02)
        assert received == count, out
    echoes = 20
    r = host.ns.python(_ECHO_CLIENT, host.ip, str(host.echo_port), str(echoes), "1", timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout)["intact"] == echoes, r.stdout + r.stderr
    r = host.ns.python(_CLOSED_PORT_CLIENT, host.ip, "9", timeout=60)
    assert "ECONNREFUSED" in r.stdout, r.stdout + r.stderr

    code, _out, err = host.stop()  # SIGTERM: the pcap is flushed and closed
    assert code == 0, err
    assert host.pcap.stat().st_size > 24, "pcap holds no frames"

    r = tshark("-r", str(host.pcap))
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) > 0
    r = tshark("-r", str(host.pcap), "-Y", "_ws.malformed || _ws.expert.severity == error")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "", f"tshark finds malformed or erroneous frames:\n{r.stdout}"

    fields = [a for f in _TSHARK_FIELDS for a in ("-e", f)]
    r = tshark("-r", str(host.pcap), "-T", "fields", "-E", "separator=\t", *fields)
    assert r.returncode == 0, r.stderr
    rows = [dict(zip(_TSHARK_FIELDS, [v.split(",")[0] for v in line.split("\t")], strict=True))
            for line in r.stdout.splitlines()]
    # (sender, kind, detail) -> frames; the sender is told by the Ethernet source.
    seen: Counter[tuple[str, ...]] = Counter()
    for row in rows:
        side = "seqs" if row["eth.src"] == host.mac else "kernel"
        if "arp" in row["frame.protocols"].split(":"):
            seen[side, "arp", "reply" if row["arp.opcode"] == "2" else "request"] += 1
            if side == "seqs":
                assert row["arp.src.hw_mac"] == host.mac, row
        elif row["icmp.type"]:  # before UDP: an ICMP error quotes a UDP header
            seen[side, "icmp", f"{row['icmp.type']}/{row['icmp.code']}"] += 1
        elif row["udp.srcport"]:
            port = row["udp.dstport" if side == "kernel" else "udp.srcport"]  # seqs' end
            seen[side, "udp", port] += 1
        else:  # non-final fragments (tshark shows the datagram on the last), the kernel's IPv6 chatter
            seen[side, "other"] += 1
        if row["ip.src"] and (row["ip.flags.mf"] in ("1", "True") or row["ip.frag_offset"] not in ("", "0")):
            seen[side, "fragment"] += 1
    n_pings = sum(c for _, c in pings)
    echo = str(host.echo_port)
    report = f"frames by (sender, kind): {dict(seen)}"
    assert seen["kernel", "arp", "request"] >= 1, report
    assert seen["seqs", "arp", "reply"] >= 1, report
    assert seen["kernel", "icmp", "8/0"] == seen["seqs", "icmp", "0/0"] == n_pings, report  # echo request/reply
    assert seen["seqs", "icmp", "3/3"] == 1, report  # port unreachable
    assert seen["kernel", "udp", echo] == seen["seqs", "udp", echo] == echoes, report
    assert seen["kernel", "udp", "9"] == 1, report
    assert sum(v for k, v in seen.items() if k[:2] == ("seqs", "udp")) == echoes, report
    # The 4000-byte pings and the large echoes were fragmented both ways.
    assert seen["kernel", "fragment"] > 0 and seen["seqs", "fragment"] > 0, report


# -- 6. the command line -----------------------------------------------------------------------


@pytest.mark.programs("ping")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: signal.Signals(s).name)
def test_seqs_up_exits_0_on_signal(seqs_host: SeqsHost, sig: int) -> None:
    _, received, out = ping(seqs_host, 1)
    assert received == 1, out
    code, _out, err = seqs_host.stop(sig)
    assert code == 0, f"exit {code}:\n{err}"
    assert "Traceback" not in err, err
    assert seqs_host.pcap.stat().st_size > 24, "pcap not flushed on exit"


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["--ip", "10.0.0.300/24"], "10.0.0.300"),
        (["--ip", "10.0.0.2/33"], "10.0.0.2/33"),
        (["--ip", "10.0.0.2/24", "--mac", "zz:zz"], "zz:zz"),
        (["--ip", "10.0.0.2/24", "--mac", "01:00:5e:00:00:01"], "unicast"),
        (["--ip", "10.0.0.2/24", "--mtu", "100"], "MTU"),
        (["--ip", "10.0.0.2/24", "--gateway", "192.168.1.1"], "gateway"),
    ],
    ids=["bad-ip", "bad-prefix", "bad-mac", "multicast-mac", "tiny-mtu", "gateway-off-subnet"],
)
def test_seqs_up_bad_argument_exits_nonzero_with_one_line_error(args: list[str], mentions: str) -> None:
    # Inside a namespace of its own: `seqs up` opens (creates) the TAP before it
    # validates the addresses.
    with Namespace("seqs-it") as ns:
        r = ns.run([sys.executable, "-m", "seqs", "up", "--tap", "tap9", *args], timeout=30)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqs up: error: "), r.stderr
    assert "Traceback" not in r.stderr
    assert mentions in lines[0], lines[0]
    assert "ready" not in r.stdout


# -- 7. the ping-flood benchmark ---------------------------------------------------------------


@pytest.mark.programs("ping")
def test_ping_flood_benchmark_runs(tmp_path: pathlib.Path) -> None:
    # Keeps the benchmark working; its numbers are not asserted (never a speed test).
    # It makes, and removes, a namespace of its own.
    out = tmp_path / "ping-flood.json"
    env = dict(os.environ)
    src = str(pathlib.Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run(
        [sys.executable, "-m", "seqs.bench", "ping-flood", "--count", "2000", "--seconds", "10",
         "--json", str(out)],
        capture_output=True, text=True, timeout=150, cwd=tmp_path, env=env,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(out.read_text())
    assert result["benchmark"] == "ping-flood"
    assert result["rows"], result
    for row in result["rows"]:
        assert row["answered"] > 0, row
