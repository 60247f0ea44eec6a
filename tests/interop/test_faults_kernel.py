"""``seqs up`` against the kernel through its fault-injecting link, and the ends of connections.

* A TCP echo transfer with loss, reordering, duplication and bit corruption in
  both directions at 0, 1, 2 and 5 % each (4 MB, and 16 MB each way at 5 %):
  every byte comes back intact (sha256), the checksums caught the corruption
  (seqs' ``*_bad_checksum`` drops and the kernel's ``InCsumErrors`` are > 0),
  and throughput degrades with the fault rate (0 % is faster than every lossy
  level, 1 % faster than 5 %) without the transfer ever failing.
* The peer vanishes mid-transfer: its link goes down (a seqs client with
  ``max_retries=3`` gets TimeoutError after its retries), its process is
  SIGKILLed (the kernel resets: ConnectionResetError), or both (TimeoutError).
  The connection leaves the table and the client's traced memory returns to
  what it was before it opened (the full 256 KB send buffer is released).  A
  kernel client killed while pushing into ``seqs up``'s echo service: the
  kernel's RST empties seqs' connection table and the service keeps serving.
* close() right after a large write (chargen with ``--chargen-limit``)
  delivers every byte before the FIN.
* A ``--stats-file`` snapshot that cannot be written (its directory removed)
  is logged, and ``seqs up`` keeps serving.
* SIGTERM with open connections: every peer sees FIN (an orderly EOF), not
  silence and not a reset.  SIGINT to a ``seqs up --dhcp`` holding a lease from
  dnsmasq and four connections: the lease is released (dnsmasq sees
  DHCPRELEASE) and every peer still sees FIN.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from helpers import record

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


#: (fault probability, bytes echoed).  The 5 % run is the long one: 16 MB each way took
#: 40-42 s here (0.38-0.40 MB/s; 20 MB would come too close to a minute on a busy machine);
#: the others are short, there to show the curve.
LEVELS = ((0.0, 4 * MB), (0.01, 4 * MB), (0.02, 4 * MB), (0.05, 16 * MB))


def fault_args(p: float) -> list[str]:
    """``seqs up`` options for loss, reordering, duplication and corruption at ``p`` each
    way, seeded (also used by repeat_faults.py, so a repeated run is this test's)."""
    return ["--loss", str(p), "--reorder", str(p), "--duplicate", str(p), "--corrupt", str(p),
            "--fault-seed", "42"]


def echo_through_faults(tmp_path: pathlib.Path, p: float, size: int) -> dict[str, Any]:
    """One ``seqs up --tcp-echo`` with loss, reordering, duplication and corruption at ``p``
    each way; a kernel client pushes ``size`` bytes through it.  Checks the transfer is
    intact and, if ``p``, that both sides' checksums caught corrupted frames."""
    args = ["--tcp-echo", str(ECHO), *(fault_args(p) if p else [])]
    tmp_path.mkdir(parents=True, exist_ok=True)
    with seqs_up(tmp_path, args) as host:
        # bounded: 30 s without a byte ends the client, and the whole transfer has 150 s
        r = host.ns.python(ECHO_TRANSFER, host.ip, str(size), "30", timeout=150)
        result = json.loads(r.stdout.strip().splitlines()[-1])
        snap = host.stats()
        drops = snap["stats"]["drops"]
        seqs_bad = sum(v for k, v in drops.items() if k.endswith("_bad_checksum"))
        kernel_bad = kernel_csum_errors(host.ns.run)
        figures = {"level": f"{p:.0%}", "bytes": size, "got": result["got"], "seconds": round(result["seconds"], 2),
                   "mbps": round(result["mbps"], 3), "intact": result["intact"], "error": result["error"],
                   "injected": snap["faults"], "seqs_bad_checksums": seqs_bad, "kernel_checksum_errors": kernel_bad}
        report(f"faults {p:.0%} each (loss, reorder, duplicate, corrupt) both ways: {size} B echoed in "
               f"{result['seconds']:.1f} s = {result['mbps']:.2f} MB/s, intact {result['intact']}; "
               f"injected {snap['faults']}; seqs bad checksums {seqs_bad}, kernel checksum errors {kernel_bad}")
        record("interop_faults", **figures)
        assert result["intact"], result  # every byte, in order: sha256 of what went and came back
        if p:
            assert snap["faults"]["rx_corrupted"] > 0 and snap["faults"]["tx_corrupted"] > 0
            # the corruption was caught: by seqs' checksums (frames the kernel sent) and by the
            # kernel's (frames seqs sent), never delivered as data.  Nearly every flipped bit
            # lands under a checksum (a few hit the IP version or length, other drops).
            assert seqs_bad > 0 and kernel_bad > 0, figures
            assert seqs_bad >= snap["faults"]["rx_corrupted"] // 2, figures
            assert kernel_bad >= snap["faults"]["tx_corrupted"] // 2, figures
        return figures


def test_echo_transfer_through_loss_reordering_duplication_and_corruption_is_intact(tmp_path: pathlib.Path) -> None:
    """0, 1, 2 and 5 % of each fault both ways: every level completes with every byte intact
    and the corruption caught, and throughput degrades as the faults grow.  The comparison
    is only between levels far apart (0 % against each lossy one, 1 % against 5 %: 4-40x
    apart here), so a noisy shared machine cannot flip it."""
    runs = {p: echo_through_faults(tmp_path / f"{p:.0%}", p, size) for p, size in LEVELS}
    mbps = {f"{p:.0%}": r["mbps"] for p, r in runs.items()}
    record("interop_faults_curve", mbps=mbps, bytes={f"{p:.0%}": size for p, size in LEVELS})
    assert all(mbps["0%"] >= mbps[level] for level in ("1%", "2%", "5%")), mbps
    assert mbps["1%"] >= mbps["5%"], mbps


#: seqs as a client of a kernel server (which accepts and then only reads), its memory traced
#: from before the connection opened; the peer vanishes mid-transfer and the client must
#: end with an error (TimeoutError after its retries, or ConnectionResetError) and give
#: its buffers back although it still holds the connection object.
VANISH_CLIENT = r"""
import gc, json, sys, time, tracemalloc
from seqs import Stack
from seqs.phy.tap import TapDevice
from seqs.runtime.poller import Runner
from seqs.tcp.connection import TcpConfig
ip, server = sys.argv[1], sys.argv[2]
dev = TapDevice("tap0")
stack = Stack(ip=ip, mtu=dev.mtu, vnet_hdr=dev.vnet_hdr,
              tcp_config=TcpConfig(max_retries=3, rto_max=2.0, syn_retries=3))
runner = Runner(stack, dev)
block = b"v" * 65536  # before the baseline: the test's own data is not the stack's memory
gc.collect()
tracemalloc.start()
base = tracemalloc.get_traced_memory()[0]
conn = stack.tcp_connect((server, 9000))
assert runner.run(until=lambda: conn.established, timeout=10), conn
sent = 0
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
gc.collect()
current, peak = tracemalloc.get_traced_memory()
print(json.dumps({"error": type(err).__name__ if err else None, "errno": getattr(err, "errno", None),
                  "sent": sent, "retries": conn.retries, "connections_left": len(stack.tcp),
                  "seconds": time.monotonic() - t0, "drops": stack.stats.drops,
                  "traced_peak": peak - base, "traced_after": current - base, "sndbuf": conn.config.sndbuf}),
      flush=True)
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
#: traced bytes the client may keep once the connection is gone (its 256 KB send buffer
#: was full when the peer went): counters, a timer slot, the device's buffers
VANISH_SLACK = 32 * 1024


@pytest.mark.parametrize("how", ["link_down", "process_killed", "process_killed_and_link_down"])
def test_peer_vanishing_mid_transfer_ends_the_connection_and_frees_it(tmp_path: pathlib.Path, how: str) -> None:
    """The kernel-side server goes mid-transfer.  Its link going down leaves seqs nothing
    but its retries: TimeoutError.  Its process killed (SIGKILL) makes the kernel answer
    with RST: ConnectionResetError at once, and with the link also down, TimeoutError
    after the retries.  The connection leaves the table and its buffers are released."""
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
        t_gone = time.monotonic()
        if how != "process_killed":
            ns.ip("link", "set", "tap0", "down")
        if how != "link_down":
            server.kill()  # SIGKILL: the kernel closes its socket, with unread data, by RST
        out, err = client.communicate(timeout=90)
        elapsed = time.monotonic() - t_gone
        result = json.loads(out.strip().splitlines()[-1])
        report(f"peer vanished ({how}): {result} ({elapsed:.1f} s after)")
        record("interop_peer_vanishing", how=how, seconds_after=round(elapsed, 2),
               **{k: result[k] for k in ("error", "sent", "retries", "connections_left", "traced_peak",
                                         "traced_after")})
        if how == "process_killed":
            assert result["error"] == "ConnectionResetError", (result, err[-3000:])
            assert elapsed < 10
        else:
            assert result["error"] == "TimeoutError", (result, err[-3000:])
            assert result["drops"].get("tcp_rto", 0) >= 3
            assert elapsed < 30
        assert result["connections_left"] == 0
        assert result["traced_peak"] > result["sndbuf"] // 2, result  # the send buffer was full ...
        assert result["traced_after"] < VANISH_SLACK, result  # ... and is released


#: kernel client that writes to seqs' echo service and never reads: both sides' buffers
#: fill, and when the process is killed its socket holds unread data (the kernel resets)
PUSHER = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.setblocking(True)
print("connected", flush=True)
block = b"p" * 65536
while True:
    s.sendall(block)
"""


def test_kernel_client_killed_mid_transfer_frees_the_seqs_up_connection(tmp_path: pathlib.Path) -> None:
    """A kernel client pushing into seqs' TCP echo is SIGKILLed: the kernel resets the
    connection, seqs up's connection table and its echo service empty, and it keeps serving."""
    with seqs_up(tmp_path, ["--tcp-echo", str(ECHO), "--msl", "1"]) as host:
        p = host.ns.popen([sys.executable, "-c", PUSHER, host.ip, str(ECHO)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
        assert p.stdout is not None and p.stdout.readline().strip() == "connected"
        time.sleep(1.5)  # windows full both ways
        mid = host.stats()
        p.kill()
        p.wait(timeout=10)
        t0 = time.monotonic()
        snap = host.stats()
        while snap["tcp_connections"] and time.monotonic() - t0 < 10:
            time.sleep(0.2)
            snap = host.stats()
        gone_after = time.monotonic() - t0
        echo_mid = next(s for s in mid["services"] if s["port"] == ECHO)
        echo = next(s for s in snap["services"] if s["port"] == ECHO)
        figures = {"bytes_in_before_kill": echo_mid["bytes_in"], "open_before_kill": echo_mid["open"],
                   "tcp_connections_after": snap["tcp_connections"], "open_after": echo["open"],
                   "seconds_to_empty": round(gone_after, 2), "rss_kb": host.rss_kb()}
        report(f"kernel client killed mid-transfer: {figures}")
        record("interop_kernel_client_killed", **figures)
        assert echo_mid["open"] == 1 and mid["tcp_connections"] == 1 and echo_mid["bytes_in"] > 0, mid
        assert snap["tcp_connections"] == 0 and echo["open"] == 0, snap
        assert host.alive()
        r = host.ns.python(TCP_ECHO_ONCE, host.ip, str(ECHO), timeout=30)
        assert r.stdout.strip() == "ok", r.stdout + r.stderr


def test_a_stats_snapshot_that_cannot_be_written_is_logged_and_the_host_keeps_serving(
        tmp_path: pathlib.Path) -> None:
    """SIGUSR1 while the --stats-file directory is gone: one line on stderr, no exit; the
    next snapshot, once the directory is back, is written as usual."""
    where = tmp_path / "snapshots"
    where.mkdir()
    with seqs_up(where, ["--tcp-echo", str(ECHO)]) as host:
        assert host.stats()["tcp_connections"] == 0
        shutil.rmtree(where)
        os.kill(host.proc.pid, signal.SIGUSR1)
        time.sleep(0.5)  # a turn or more: the snapshot was attempted
        assert host.alive()
        r = host.ns.python(TCP_ECHO_ONCE, host.ip, str(ECHO), timeout=30)
        assert r.stdout.strip() == "ok", r.stdout + r.stderr
        where.mkdir()
        assert host.stats()["services"][0]["accepted"] == 1
        code, _out, err = host.proc.stop()
        assert code == 0, err
        assert re.search(r"--stats-file: .*No such file or directory", err), err


TCP_ECHO_ONCE = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(b"still serving"); print("ok" if s.recv(64) == b"still serving" else "bad")
"""


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
        record("interop_sigterm_connections", peer_ends=ends, exit=host.proc.proc.returncode,
               seconds_to_exit=round(stopped, 2))
        assert ends == ["fin"] * 4, (ends, err)
        assert host.proc.proc.returncode == 0 and stopped < 5


def sigint_with_lease_and_connections(tmp_path: pathlib.Path) -> dict[str, Any]:
    """``seqs up --dhcp`` (leased from dnsmasq) with four kernel clients connected to its
    echo service gets SIGINT (Ctrl-C); returns what each side saw."""
    from seqs.netns import Namespace

    from .test_dhcp_kernel import Lines, start_dnsmasq, wait_for

    net = f"10.{random.randint(1, 254)}.{random.randint(1, 254)}"
    with Namespace("seqs-down") as ns:
        ns.add_tap("tap0", f"{net}.1/24")
        leases, log = start_dnsmasq(ns, tmp_path, net)
        seqs = ns.start_seqs(["up", "--tap", "tap0", "--dhcp", "--dhcp-probes", "0", "--hostname", "seqs-down",
                              "--tcp-echo", str(ECHO), "--log-level", "info"], ready_timeout=45)
        m = re.match(r"^ready mac=(\S+) ip=([0-9.]+)/24 ", seqs.ready_line)
        assert m is not None, seqs.ready_line
        mac, ip = m[1], m[2]
        assert f"{mac} {ip} seqs-down" in leases.read_text()
        p = ns.popen([sys.executable, "-c", HOLDERS, ip, "4"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE)
        assert p.stdout is not None and p.stdin is not None
        assert p.stdout.readline().strip() == "open"
        lines = Lines(seqs.proc)
        t0 = time.monotonic()
        seqs.proc.send_signal(signal.SIGINT)
        seqs.proc.wait(timeout=15)
        stopped = time.monotonic() - t0
        p.stdin.write("\n")
        p.stdin.flush()
        out, err = p.communicate(timeout=30)
        ends = json.loads(out.strip().splitlines()[-1])
        code, rest, seqs_err = seqs.stop()
        with contextlib.suppress(AssertionError):
            wait_for(lambda: mac not in leases.read_text(), 10, "dnsmasq to drop the lease")
        return {"peer_ends": ends, "exit": code, "seconds_to_exit": round(stopped, 2),
                "said_released": f"dhcp released ip={ip}/24" in rest + "\n".join(lines.lines),
                "dnsmasq_saw_release": f"DHCPRELEASE(tap0) {ip} {mac}" in log.read_text(),
                "dnsmasq_dropped_lease": mac not in leases.read_text(),
                # seqs up logs this when its FINs are not all acknowledged within its grace
                "fins_acknowledged": "not finished after" not in seqs_err,
                "traceback": "Traceback" in seqs_err, "stderr": seqs_err[-2000:], "holders_stderr": err[-1000:]}


@pytest.mark.programs("dnsmasq")
def test_sigint_with_a_dhcp_lease_and_open_connections_releases_the_lease_and_sends_fin(
        tmp_path: pathlib.Path) -> None:
    """Both ends of shutdown at once: the lease goes back (dnsmasq logs DHCPRELEASE and
    drops it, RFC 2131 §4.4.6) and every peer sees FIN, an orderly end of stream."""
    r = sigint_with_lease_and_connections(tmp_path)
    figures = {k: v for k, v in r.items() if k not in ("stderr", "holders_stderr")}
    report(f"SIGINT with a DHCP lease and 4 open connections: {figures}")
    record("interop_sigint_dhcp_and_connections", **figures)
    assert r["exit"] == 0 and not r["traceback"], r["stderr"]
    assert r["said_released"] and r["dnsmasq_saw_release"] and r["dnsmasq_dropped_lease"], figures
    assert r["peer_ends"] == ["fin"] * 4, (figures, r["holders_stderr"])
    assert r["seconds_to_exit"] < 10


@pytest.mark.programs("dnsmasq")
def test_sigint_with_a_dhcp_lease_lets_the_peers_acknowledge_the_fins(tmp_path: pathlib.Path) -> None:
    r = sigint_with_lease_and_connections(tmp_path)
    assert r["peer_ends"] == ["fin"] * 4
    assert r["fins_acknowledged"], r["stderr"]
