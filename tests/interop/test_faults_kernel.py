"""``seqs up`` against the kernel through its fault-injecting link, and the ends of connections.

* A TCP echo transfer with loss, reordering, duplication and bit corruption in
  both directions at 0, 1, 2 and 5 % each: every byte comes back intact
  (sha256), the checksums caught the corruption (seqs' ``*_bad_checksum``
  drops and the kernel's ``InCsumErrors`` are > 0), and the MB/s at each
  level is printed: throughput degrades, the transfer never fails.
* The peer vanishes mid-transfer (its link goes down): a seqs client with
  ``max_retries=3`` gets TimeoutError after its retries and its connection is
  gone from the table.
* close() right after a large write (chargen with ``--chargen-limit``)
  delivers every byte before the FIN.
* SIGTERM with open connections: every peer sees FIN (an orderly EOF), not
  silence and not a reset.
"""

from __future__ import annotations

import json
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from .reliability import seqs_up

pytestmark = pytest.mark.interop

HERE = pathlib.Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
ECHO, CHARGEN = 7, 19
MB = 1_000_000


def report(line: str) -> None:
    print(f"\n{line}", end="", file=sys.stderr)


#: kernel client: push NBYTES through the echo service while reading the echo; JSON result
ECHO_TRANSFER = r"""
import hashlib, json, socket, sys, threading, time
host, total, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.create_connection((host, 7), timeout=timeout)
block = (bytes(range(256)) * 256)
sent, got = hashlib.sha256(), hashlib.sha256()
def writer():
    n = 0
    while n < total:
        chunk = block[: min(len(block), total - n)]
        s.sendall(chunk); sent.update(chunk); n += len(chunk)
    s.shutdown(socket.SHUT_WR)
t0 = time.monotonic()
w = threading.Thread(target=writer, daemon=True); w.start()
n = 0; err = None
try:
    while d := s.recv(1 << 16):
        got.update(d); n += len(d)
except OSError as e:
    err = repr(e)
w.join(5)
dt = time.monotonic() - t0
print(json.dumps({"got": n, "intact": n == total and sent.digest() == got.digest(), "seconds": dt,
                  "mbps": n / 1e6 / dt, "error": err}))
"""


def kernel_csum_errors(ns_run: object) -> int:
    r = ns_run(["cat", "/proc/net/snmp"])  # type: ignore[operator]
    lines = [ln.split() for ln in r.stdout.splitlines()]
    total = 0
    for head, vals in zip(lines[::2], lines[1::2], strict=False):
        for k, v in zip(head[1:], vals[1:], strict=False):
            if k in ("InCsumErrors", "InHdrErrors"):
                total += int(v)
    return total


@pytest.mark.parametrize("p", [0.0, 0.01, 0.02, 0.05], ids=["0%", "1%", "2%", "5%"])
def test_echo_transfer_through_loss_reordering_duplication_and_corruption_is_intact(
        tmp_path: pathlib.Path, p: float) -> None:
    size = 4 * MB
    args = ["--tcp-echo", str(ECHO)]
    if p:
        args += ["--loss", str(p), "--reorder", str(p), "--duplicate", str(p), "--corrupt", str(p),
                 "--fault-seed", "42"]
    with seqs_up(tmp_path, args) as host:
        r = host.ns.python(ECHO_TRANSFER, host.ip, str(size), "30", timeout=600)
        result = json.loads(r.stdout.strip().splitlines()[-1])
        snap = host.stats()
        drops = snap["stats"]["drops"]
        seqs_bad = sum(v for k, v in drops.items() if k.endswith("_bad_checksum"))
        kernel_bad = kernel_csum_errors(host.ns.run)
        report(f"faults {p:.0%} each (loss, reorder, duplicate, corrupt) both ways: {size} B echoed in "
               f"{result['seconds']:.1f} s = {result['mbps']:.2f} MB/s, intact {result['intact']}; "
               f"injected {snap['faults']}; seqs bad checksums {seqs_bad}, kernel checksum errors {kernel_bad}")
        assert result["intact"], result
        if p:
            assert snap["faults"]["rx_corrupted"] > 0 and snap["faults"]["tx_corrupted"] > 0
            assert seqs_bad > 0 and kernel_bad > 0


#: seqs as a client of a kernel server (which accepts and then only reads); the link
#: goes down mid-transfer; the client must end with TimeoutError after its retries.
VANISH_CLIENT = r"""
import json, sys, time
from seqs import Stack
from seqs.phy.tap import TapDevice
from seqs.runtime.poller import Runner
from seqs.tcp.connection import TcpConfig
ip, server = sys.argv[1], sys.argv[2]
dev = TapDevice("tap0")
stack = Stack(ip=ip, mtu=dev.mtu, vnet_hdr=dev.vnet_hdr,
              tcp_config=TcpConfig(max_retries=3, rto_max=2.0, syn_retries=3))
runner = Runner(stack, dev)
conn = stack.tcp_connect((server, 9000))
assert runner.run(until=lambda: conn.established, timeout=10), conn
sent = 0
block = b"v" * 65536
print("established", flush=True)
t0 = time.monotonic()
vanished_at = None
err = None
def step():
    global sent, err
    try:
        while conn.send_space:
            sent += conn.send(block[: conn.send_space])
    except OSError as e:
        err = e
        return True
    return conn.closed
with runner.lock:
    stack.iface.now = runner.clock()
end = time.monotonic() + 60
while time.monotonic() < end:
    with runner.lock:
        done = step()
    if done:
        break
    runner.run_once(0.05)
print(json.dumps({"error": type(err).__name__ if err else None, "errno": getattr(err, "errno", None),
                  "sent": sent, "retries": conn.retries, "connections_left": len(stack.tcp),
                  "seconds": time.monotonic() - t0, "drops": stack.stats.drops}), flush=True)
runner.close()
"""

SLOW_SERVER = r"""
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", 9000)); s.listen(1); print("listening", flush=True)
c, _ = s.accept(); c.settimeout(1)
end = time.monotonic() + 90
while time.monotonic() < end:
    try:
        if not c.recv(1 << 16):
            break
    except OSError:
        pass
"""


def test_peer_vanishing_mid_transfer_ends_the_connection_with_timeout_and_frees_it(tmp_path: pathlib.Path) -> None:
    from seqs.netns import Namespace

    with Namespace("seqs-vanish") as ns:
        ns.add_tap("tap0", "10.77.0.1/24")
        server = ns.popen([sys.executable, "-c", SLOW_SERVER], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert server.stdout is not None and server.stdout.readline().strip() == "listening"
        client = ns.popen(["env", f"PYTHONPATH={SRC}", sys.executable, "-c", VANISH_CLIENT, "10.77.0.2/24",
                           "10.77.0.1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert client.stdout is not None
        assert client.stdout.readline().strip() == "established", client.stderr.read() if client.stderr else ""
        time.sleep(1.0)  # data flowing
        t_down = time.monotonic()
        ns.ip("link", "set", "tap0", "down")
        out, err = client.communicate(timeout=90)
        elapsed = time.monotonic() - t_down
        result = json.loads(out.strip().splitlines()[-1])
        report(f"peer vanished: {result} ({elapsed:.1f} s after link down)")
        assert result["error"] == "TimeoutError", (result, err[-3000:])
        assert result["connections_left"] == 0
        assert result["drops"].get("tcp_rto", 0) >= 3
        assert elapsed < 30


CHARGEN_CLIENT = r"""
import hashlib, json, socket, sys, time
sys.path.insert(0, sys.argv[3])
from tcp_streams import chargen_digest
host, limit = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((host, 19), timeout=30)
h = hashlib.sha256(); n = 0; t0 = time.monotonic()
while d := s.recv(1 << 16):
    h.update(d); n += len(d)
print(json.dumps({"got": n, "digest_ok": h.hexdigest() == chargen_digest(limit), "seconds": time.monotonic() - t0}))
"""


def test_close_right_after_a_large_write_delivers_every_byte_to_the_kernel(tmp_path: pathlib.Path) -> None:
    limit = 20 * MB
    with seqs_up(tmp_path, ["--chargen", str(CHARGEN), "--chargen-limit", str(limit)]) as host:
        r = host.ns.python(CHARGEN_CLIENT, host.ip, str(limit), str(HERE), timeout=300)
        result = json.loads(r.stdout.strip().splitlines()[-1])
        report(f"chargen {limit} B then close: {result}")
        assert result["got"] == limit and result["digest_ok"], result


#: kernel clients holding idle connections open; each reports how its connection ended
HOLDERS = r"""
import json, socket, sys, time
host, n = sys.argv[1], int(sys.argv[2])
socks = []
for i in range(n):
    s = socket.create_connection((host, 7), timeout=10)
    s.sendall(b"hello %d" % i); assert s.recv(64) == b"hello %d" % i
    socks.append(s)
print("open", flush=True)
sys.stdin.readline()  # the test sends SIGTERM to seqs, then a newline here
out = []
for s in socks:
    s.settimeout(5)
    try:
        d = s.recv(64)
        out.append("fin" if d == b"" else "data")
    except ConnectionResetError:
        out.append("reset")
    except socket.timeout:
        out.append("silence")
print(json.dumps(out), flush=True)
"""


def test_sigterm_with_open_connections_closes_them_with_fin(tmp_path: pathlib.Path) -> None:
    with seqs_up(tmp_path, ["--tcp-echo", str(ECHO)]) as host:
        p = host.ns.popen([sys.executable, "-c", HOLDERS, host.ip, "4"], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert p.stdout is not None and p.stdin is not None
        assert p.stdout.readline().strip() == "open"
        t0 = time.monotonic()
        host.proc.proc.send_signal(signal.SIGTERM)
        host.proc.proc.wait(timeout=10)
        stopped = time.monotonic() - t0
        p.stdin.write("\n")
        p.stdin.flush()
        out, err = p.communicate(timeout=30)
        ends = json.loads(out.strip().splitlines()[-1])
        report(f"SIGTERM with 4 open connections: {ends}, seqs exited {host.proc.proc.returncode} in {stopped:.2f} s")
        assert ends == ["fin"] * 4, (ends, err)
        assert host.proc.proc.returncode == 0 and stopped < 5
