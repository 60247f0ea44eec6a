"""TCP against the Linux kernel, through a TAP device in a network namespace.

The kernel is the client of seqs' RFC 862/863/864 services (``seqs up``), with
Python sockets (``kernel_peer.py``), ``nc`` and ``socat``; and seqs is the
client of kernel servers (``seqs_client.py``, the sans-IO API on the blocking
runner).  Transfers of 100 MB each way are checked by sha256 against streams
both ends regenerate (``tcp_streams.py``); then many connections in a row and
at once, the kernel's half-close, RST and zero window; and, while seqs' fault
injector drops 2 % of frames each way, the same 100 MB transfers, 200
connections in a row (the table empty after TIME-WAIT) and 50 at once.

What seqs saw comes from its ``--stats-file`` (written on SIGUSR1): the
interface counters, the TCP table by state, and the services' byte counts.
Throughput is printed (``MB/s``), never asserted.  Every wait is bounded, and
the namespace goes with everything in it when a test ends.
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from seqs.netns import Namespace

from .conftest import SeqsHost
from .tcp_streams import chargen_digest, stream_digest

pytestmark = pytest.mark.interop

HERE = pathlib.Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
KERNEL_PEER = HERE / "kernel_peer.py"
SEQS_CLIENT = HERE / "seqs_client.py"

ECHO, DISCARD, CHARGEN = 7, 9, 19
MB = 1_000_000
BIG = 100 * MB
#: Size of the transfers under 2 % loss each way: issue 3 asks for "the same
#: transfers" as without loss, 100 MB each way.  Measured (2 CPUs, shared): 2.3-5 MB/s
#: where seqs sends — most losses cost a fast retransmit, but a lost retransmission
#: or the lost ACKs of a flight's tail wait for the 200 ms RTO (seqs has no RACK or
#: tail loss probe) — and 11-14 MB/s where the kernel sends: 7-45 s a test.
LOSSY = BIG
LOSS = 0.02
#: seqs up --msl: TIME-WAIT lasts 2 s where seqs closes first (chargen)
MSL = 1.0
#: Drops that would mean something went wrong rather than a frame being lost.
_BAD_DROPS = ("tcp_syn_backlog_evicted", "tcp_listen_overflow", "tcp_too_many_connections",
              "tcp_fin_wait2_timeout", "tcp_bad_checksum", "tcp_bad_option", "tcp_no_route")


def throughput(label: str, nbytes: int, seconds: float) -> None:
    """Shown with -s, and with a failure's captured output."""
    print(f"throughput {label}: {nbytes / MB:.0f} MB in {seconds:.2f} s = {nbytes / MB / seconds:.1f} MB/s")


# -- fixtures -----------------------------------------------------------------------------------


@dataclass
class Link:
    """A namespace whose kernel owns one side of ``tap0``; seqs (a server or a
    client program) takes the other side as ``seqs_ip``."""

    ns: Namespace
    kernel_ip: str
    seqs_ip: str
    tmp: pathlib.Path

    def _peer_args(self, mode: str, opts: dict[str, Any]) -> list[str]:
        args = [mode]
        for k, v in opts.items():
            args += [f"--{k.replace('_', '-')}", str(v)]
        return args

    def kernel(self, mode: str, *, timeout: float = 120.0, **opts: Any) -> dict[str, Any]:
        """Run ``kernel_peer.py MODE`` against seqs and return its JSON line."""
        opts.setdefault("host", self.seqs_ip)
        opts.setdefault("timeout", min(30.0, timeout))
        return self._run([sys.executable, str(KERNEL_PEER), *self._peer_args(mode, opts)], timeout)

    def kernel_server(self, mode: str, **opts: Any) -> subprocess.Popen[str]:
        """Start a ``kernel_peer.py serve-*`` mode and wait until it listens."""
        opts.setdefault("timeout", 60)
        p = self.ns.popen([sys.executable, str(KERNEL_PEER), *self._peer_args(mode, opts)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert p.stdout is not None
        line = p.stdout.readline()  # bounded: the server exits within its own timeout
        assert line.strip() == "listening", line + (p.stderr.read() if p.stderr else "")
        return p

    def seqs_client(self, mode: str, *, timeout: float = 180.0, **opts: Any) -> dict[str, Any]:
        """Run ``seqs_client.py MODE`` (seqs on tap0 as ``seqs_ip``) against a kernel server."""
        opts.setdefault("host", self.kernel_ip)
        opts.setdefault("ip", f"{self.seqs_ip}/24")
        opts.setdefault("timeout", min(60.0, timeout))
        cmd = ["env", f"PYTHONPATH={SRC}", sys.executable, str(SEQS_CLIENT), *self._peer_args(mode, opts)]
        return self._run(cmd, timeout)

    def _run(self, cmd: list[str], timeout: float) -> dict[str, Any]:
        r = self.ns.run(cmd, timeout=timeout)
        lines = r.stdout.strip().splitlines()
        assert r.returncode == 0 and lines, f"{' '.join(cmd[-12:])}: exit {r.returncode}\n{r.stdout}{r.stderr}"
        result: dict[str, Any] = json.loads(lines[-1])
        return result

    def shell(self, script: str, *, timeout: float = 120.0) -> str:
        r = self.ns.run(["bash", "-o", "pipefail", "-c", script], timeout=timeout)
        assert r.returncode == 0, f"{script}: exit {r.returncode}\n{r.stdout}{r.stderr}"
        return r.stdout


@dataclass
class TcpHost:
    """``seqs up`` serving echo, discard and chargen on the link."""

    link: Link
    host: SeqsHost
    stats_file: pathlib.Path
    args: list[str] = field(default_factory=list)

    @property
    def ip(self) -> str:
        return self.link.seqs_ip

    def stats(self) -> dict[str, Any]:
        """A snapshot from ``--stats-file``: SIGUSR1, then wait for the file."""
        self.stats_file.unlink(missing_ok=True)
        os.kill(self.host.proc.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 10.0
        while not self.stats_file.exists():
            assert self.host.proc.proc.poll() is None, "seqs up exited"
            assert time.monotonic() < deadline, "seqs up wrote no stats file within 10 s of SIGUSR1"
            time.sleep(0.02)
        snapshot: dict[str, Any] = json.loads(self.stats_file.read_text())
        return snapshot

    def service(self, snapshot: dict[str, Any], kind: str) -> dict[str, Any]:
        found: dict[str, Any] = next(s for s in snapshot["services"] if s["kind"] == kind)
        return found

    def wait_drained(self, within: float) -> dict[str, Any]:
        """Poll until seqs' TCP table is empty; return the last snapshot."""
        deadline = time.monotonic() + within
        while True:
            snap = self.stats()
            if snap["tcp_connections"] == 0 or time.monotonic() > deadline:
                return snap
            time.sleep(0.2)


def _addresses() -> tuple[str, str]:
    # A fresh namespace has no routes: any 10/8 subnet is private to it.
    x, y = random.randint(1, 254), random.randint(1, 254)
    return f"10.{x}.{y}.1", f"10.{x}.{y}.2"


@pytest.fixture
def link(tmp_path: pathlib.Path) -> Iterator[Link]:
    kernel_ip, seqs_ip = _addresses()
    with Namespace("seqs-tcp") as ns:
        ns.add_tap("tap0", f"{kernel_ip}/24")
        yield Link(ns, kernel_ip, seqs_ip, tmp_path)


@pytest.fixture
def seqs_up(link: Link) -> Iterator[Callable[..., TcpHost]]:
    """``seqs_up("--chargen-limit", "1000")`` starts seqs with the three services and
    ``--stats-file``; it is stopped (and must exit cleanly) when the test ends."""
    hosts: list[TcpHost] = []

    def start(*extra: str) -> TcpHost:
        stats_file = link.tmp / "seqs-stats.json"
        pcap = link.tmp / "seqs.pcap"
        args = ["up", "--tap", "tap0", "--ip", f"{link.seqs_ip}/24", "--tcp-echo", str(ECHO),
                "--discard", str(DISCARD), "--chargen", str(CHARGEN), "--stats-file", str(stats_file), *extra]
        proc = link.ns.start_seqs(args)
        host = TcpHost(link, SeqsHost(link.ns, proc, link.kernel_ip, link.seqs_ip, "", "tap0", pcap),
                       stats_file, args)
        hosts.append(host)
        return host

    yield start
    failures = []
    for h in hosts:
        code, _out, err = h.host.stop()
        if code != 0 or "Traceback" in err:
            failures.append(f"seqs {' '.join(h.args)} ended badly (exit {code}):\n{err}")
    if failures:
        pytest.fail("\n".join(failures))


def _all_concurrent_echoes_intact(host: TcpHost, res: dict[str, Any], n: int, size: int, drain: float
                                  ) -> dict[str, Any]:
    """The kernel peer's ``concurrent`` run: all ``n`` connections opened, finished and came
    back intact, overlapping; seqs' table drains and its echo service counted every byte.
    Returns seqs' final snapshot."""
    assert res["connected"] == n and res["finished"] == n and res["intact"] == n, res
    assert res["peak_open"] > n // 2, res  # they really overlapped
    snap = host.wait_drained(drain)
    assert snap["tcp_connections"] == 0, snap["tcp_states"]
    echo = host.service(snap, "tcp-echo")
    assert (echo["accepted"], echo["bytes_in"], echo["bytes_out"]) == (n, n * size, n * size), echo
    return snap


def assert_healthy(host: TcpHost, snap: dict[str, Any]) -> None:
    """No drop that means a bug or an overload, and no RTO storm: every RTO must answer
    a frame really lost — dropped by the fault injector, or by the kernel at the TAP
    when seqs did not read its queue in time — bar a few for stalls of the machine."""
    drops = snap["stats"]["drops"]
    bad = {k: drops[k] for k in _BAD_DROPS if drops.get(k)}
    assert not bad, f"unexpected drops {bad}; all: {drops}"
    lost = kernel_tap_tx_dropped(host.link)
    if snap["faults"]:
        lost += snap["faults"]["tx_dropped"] + snap["faults"]["rx_dropped"]
    rto = drops.get("tcp_rto", 0)
    print(f"seqs: {rto} RTOs, {drops.get('tcp_fast_retransmit', 0)} fast retransmits, {lost} frames lost")
    assert rto <= lost + 10, f"RTO storm: {rto} RTOs for {lost} frames lost; drops: {drops}"


def kernel_tap_tx_dropped(link: Link) -> int:
    """Frames the kernel dropped at tap0 because seqs had not read its queue in time."""
    info = json.loads(link.ns.ip("-s", "-j", "link", "show", "tap0"))
    return int(info[0]["stats64"]["tx"]["dropped"])


# -- 1. the kernel as client: 100 MB each way -------------------------------------------------


@pytest.mark.programs("nc")
def test_kernel_nc_sends_100mb_to_discard_and_seqs_counts_every_byte(seqs_up: Callable[..., TcpHost]) -> None:
    host = seqs_up()
    t0 = time.monotonic()
    # -N: shut the socket down for writing at the end of input; nc then waits for
    # discard's FIN (it closes when it sees ours).
    host.link.shell(f"head -c {BIG} /dev/zero | timeout 100 nc -N {host.ip} {DISCARD}", timeout=120)
    throughput("kernel nc -> seqs discard", BIG, time.monotonic() - t0)
    snap = host.wait_drained(10.0)
    discard = host.service(snap, "discard")
    assert (discard["accepted"], discard["bytes_in"], discard["open"]) == (1, BIG, 0), discard
    assert snap["tcp_connections"] == 0, snap["tcp_states"]
    assert_healthy(host, snap)


@pytest.mark.programs("socat", "sha256sum")
def test_kernel_socat_reads_100mb_of_chargen_pattern_intact(seqs_up: Callable[..., TcpHost]) -> None:
    host = seqs_up("--chargen-limit", str(BIG), "--msl", str(MSL))
    t0 = time.monotonic()
    out = host.link.shell(f"timeout 100 socat -u TCP:{host.ip}:{CHARGEN} STDOUT | sha256sum", timeout=120)
    throughput("seqs chargen -> kernel socat", BIG, time.monotonic() - t0)
    assert out.split()[0] == chargen_digest(BIG), "the RFC 864 pattern arrived altered"
    snap = host.wait_drained(2 * MSL + 10)
    assert snap["tcp_connections"] == 0, snap["tcp_states"]
    chargen = host.service(snap, "chargen")
    assert (chargen["accepted"], chargen["bytes_out"]) == (1, BIG), chargen
    assert_healthy(host, snap)


def test_kernel_python_reads_100mb_of_chargen_pattern_intact(seqs_up: Callable[..., TcpHost]) -> None:
    host = seqs_up("--chargen-limit", str(BIG), "--msl", str(MSL))
    res = host.link.kernel("read", port=CHARGEN)
    throughput("seqs chargen -> kernel python", res["received"], res["seconds"])
    assert res["received"] == BIG, res
    assert res["sha256"] == chargen_digest(BIG), "the RFC 864 pattern arrived altered"
    snap = host.wait_drained(2 * MSL + 10)
    assert snap["tcp_connections"] == 0, snap["tcp_states"]
    assert_healthy(host, snap)


def test_kernel_python_echoes_100mb_through_seqs_intact(seqs_up: Callable[..., TcpHost]) -> None:
    host = seqs_up()
    res = host.link.kernel("echo", port=ECHO, nbytes=BIG, seed=1)
    throughput("kernel -> seqs echo -> kernel (each way)", res["received"], res["seconds"])
    assert res["received"] == BIG, res
    assert res["sha256"] == stream_digest(BIG, 1), "the echo differs from what was sent"
    snap = host.wait_drained(10.0)
    echo = host.service(snap, "tcp-echo")
    assert (echo["bytes_in"], echo["bytes_out"]) == (BIG, BIG), echo
    assert_healthy(host, snap)


# -- 2. seqs as client of kernel servers ------------------------------------------------------


def test_seqs_client_uploads_100mb_to_kernel_server_intact(link: Link) -> None:
    server = link.kernel_server("serve-sink", port=5001)
    res = link.seqs_client("upload", port=5001, nbytes=BIG, seed=2)
    out, err = server.communicate(timeout=60)
    assert server.returncode == 0, err
    got = json.loads(out.strip().splitlines()[-1])
    throughput("seqs client -> kernel server", BIG, res["seconds"])
    check_client(link, res)
    assert res["sent"] == BIG, res
    assert got["received"] == BIG, got
    assert got["sha256"] == stream_digest(BIG, 2), "the kernel received altered data"


def test_seqs_client_downloads_100mb_from_kernel_server_intact(link: Link) -> None:
    server = link.kernel_server("serve-source", port=5002, nbytes=BIG, seed=3)
    res = link.seqs_client("download", port=5002)
    out, err = server.communicate(timeout=60)
    assert server.returncode == 0, err
    throughput("kernel server -> seqs client", res["received"], res["seconds"])
    check_client(link, res)
    assert res["eof"] and res["received"] == BIG, res
    assert res["sha256"] == stream_digest(BIG, 3), "seqs received altered data"
    assert json.loads(out.strip().splitlines()[-1])["eof"], out


def check_client(link: Link, res: dict[str, Any]) -> None:
    """assert_healthy for seqs_client.py's report."""
    bad = {k: v for k, v in res["drops"].items() if k in _BAD_DROPS}
    assert not bad, f"unexpected drops {bad}; all: {res['drops']}"
    lost = kernel_tap_tx_dropped(link) + res.get("injected_losses", 0)
    print(f"seqs client: {res['tcp_rto']} RTOs, {res['fast_retransmits']} fast retransmits, {lost} frames lost")
    assert res["tcp_rto"] <= lost + 10, f"RTO storm: {res['tcp_rto']} RTOs for {lost} frames lost"


# -- 3. 1,000 connections in a row ---------------------------------------------------------------

def test_1000_sequential_echo_connections_leave_no_connection_behind(seqs_up: Callable[..., TcpHost]) -> None:
    # The kernel closes first here, so seqs goes CLOSE-WAIT -> LAST-ACK -> CLOSED.
    host = seqs_up("--msl", str(MSL))
    res = host.link.kernel("sequential", port=ECHO, count=1000, nbytes=100, timeout=300)
    print(f"1000 echo connections in {res['seconds']:.1f} s ({1000 / res['seconds']:.0f}/s)")
    assert (res["count"], res["bad"]) == (1000, 0), res
    snap = host.wait_drained(2 * MSL + 10)
    assert snap["tcp_connections"] == 0, f"left in the table: {snap['tcp_states']}"
    echo = host.service(snap, "tcp-echo")
    assert (echo["accepted"], echo["open"]) == (1000, 0), echo
    assert_healthy(host, snap)


def test_1000_sequential_chargen_connections_pass_time_wait_and_drain(seqs_up: Callable[..., TcpHost]) -> None:
    # chargen closes first (after --chargen-limit bytes), so seqs goes FIN-WAIT-1 ->
    # FIN-WAIT-2 -> TIME-WAIT, where each connection stays 2*MSL (RFC 9293 §3.4.2).
    host = seqs_up("--msl", str(MSL), "--chargen-limit", "1000")
    res = host.link.kernel("sequential", port=CHARGEN, count=1000, chargen=1000, timeout=300)
    print(f"1000 chargen connections in {res['seconds']:.1f} s ({1000 / res['seconds']:.0f}/s)")
    assert (res["count"], res["bad"]) == (1000, 0), res
    snap = host.stats()
    assert snap["tcp_states"].get("TIME-WAIT", 0) > 0, f"no connection in TIME-WAIT: {snap['tcp_states']}"
    assert set(snap["tcp_states"]) <= {"TIME-WAIT"}, snap["tcp_states"]
    t0 = time.monotonic()
    snap = host.wait_drained(2 * MSL + 10)
    assert snap["tcp_connections"] == 0, f"left in the table: {snap['tcp_states']}"
    print(f"TIME-WAIT table drained {time.monotonic() - t0:.1f} s after the last connection")
    chargen = host.service(snap, "chargen")
    assert (chargen["accepted"], chargen["open"], chargen["bytes_out"]) == (1000, 0, 1000 * 1000), chargen
    assert_healthy(host, snap)


# -- 4. 200 connections at once -----------------------------------------------------------------


def test_200_concurrent_echo_connections_all_intact(seqs_up: Callable[..., TcpHost]) -> None:
    # 200 initial windows at once overflow the TAP's queue towards seqs (txqueuelen 1000
    # frames; a Python reader drains it more slowly than the kernel fills it), so this
    # is also a test of recovery from real losses: thousands of frames, measured.  With
    # 256 KB per connection the losses grow to a fifth of the frames and the run to a
    # minute; 64 KB keeps it to seconds.
    host = seqs_up()
    n, size = 200, 64 * 1024
    res = host.link.kernel("concurrent", port=ECHO, count=n, nbytes=size, seed=100, deadline=150, timeout=180)
    throughput(f"{n} concurrent echo connections (total, each way)", res["bytes"], res["seconds"])
    snap = _all_concurrent_echoes_intact(host, res, n, size, drain=10.0)
    assert_healthy(host, snap)


# -- 5. the kernel peer's half-close, RST and zero window --------------------------------------


def test_kernel_half_close_still_gets_every_echo_then_fin(seqs_up: Callable[..., TcpHost]) -> None:
    # RFC 9293 §3.6: after the client's FIN, seqs (CLOSE-WAIT) may still send; the echo
    # service answers all it read and then closes its side.
    host = seqs_up()
    n = 200_000  # fits the buffers on the way, so the client can send it all before reading
    res = host.link.kernel("half-close", port=ECHO, nbytes=n, seed=5, pause=0.5)
    assert res["received"] == n and res["sha256"] == stream_digest(n, 5), res
    snap = host.wait_drained(10.0)
    assert snap["tcp_connections"] == 0, snap["tcp_states"]
    assert_healthy(host, snap)


@pytest.mark.parametrize(
    ("port", "opts"),
    [(ECHO, {"send": 300_000}), (CHARGEN, {"read": 2 * MB})],
    ids=["echo-unread-data", "chargen-mid-download"],
)
def test_kernel_rst_mid_transfer_drops_connection_and_service_goes_on(
    seqs_up: Callable[..., TcpHost], port: int, opts: dict[str, int]
) -> None:
    host = seqs_up()
    res = host.link.kernel("reset", port=port, **opts)
    assert res["sent"] == opts.get("send", 0) and res["received"] >= opts.get("read", 0), res
    snap = host.wait_drained(10.0)  # RST: straight to CLOSED, no TIME-WAIT (RFC 9293 §3.10.7.4)
    assert snap["tcp_connections"] == 0, snap["tcp_states"]
    kind = "tcp-echo" if port == ECHO else "chargen"
    assert host.service(snap, kind)["open"] == 0, snap["services"]
    # and it keeps serving
    again = host.link.kernel("echo", port=ECHO, nbytes=100_000, seed=6)
    assert again["received"] == 100_000 and again["sha256"] == stream_digest(100_000, 6), again
    assert_healthy(host, host.wait_drained(10.0))


_TSHARK_FIELDS = ["ip.src", "tcp.flags.reset", "tcp.window_size_value", "tcp.analysis.zero_window",
                  "tcp.analysis.keep_alive", "tcp.analysis.zero_window_probe", "tcp.analysis.window_full"]


@pytest.mark.programs("tshark")
def test_kernel_reader_that_stops_gets_zero_window_probes_and_every_byte(
    link: Link, seqs_up: Callable[..., TcpHost]
) -> None:
    # RFC 9293 §3.8.6.1: a sender facing a zero window must probe it, and must keep
    # the connection open however long the window stays closed.
    total, stall = 4 * MB, 5.0
    pcap = link.tmp / "zero-window.pcap"
    host = seqs_up("--chargen-limit", str(total), "--msl", str(MSL), "--pcap", str(pcap))
    res = host.link.kernel("read", port=CHARGEN, rcvbuf=4096, stall_after=100_000, stall=stall, timeout=60)
    assert res["received"] == total and res["sha256"] == chargen_digest(total), res
    assert res["stalled"] >= stall, res
    print(f"zero-window test: {total / MB:.0f} MB with a {stall:.0f} s stall in {res['seconds']:.1f} s")
    snap = host.wait_drained(2 * MSL + 10)
    assert snap["tcp_connections"] == 0, snap["tcp_states"]
    assert_healthy(host, snap)
    code, _out, err = host.host.stop()
    assert code == 0, err

    fields = [a for f in _TSHARK_FIELDS for a in ("-e", f)]
    r = subprocess.run(["tshark", "-n", "-r", str(pcap), "-Y", "tcp", "-T", "fields", "-E", "separator=\t",
                        "-E", "occurrence=f", *fields], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = [dict(zip(_TSHARK_FIELDS, line.split("\t"), strict=True)) for line in r.stdout.splitlines()]
    kernel = [row for row in rows if row["ip.src"] == host.link.kernel_ip]
    ours = [row for row in rows if row["ip.src"] == host.ip]
    zero_windows = sum(1 for row in kernel if row["tcp.analysis.zero_window"])
    probes = sum(1 for row in ours if row["tcp.analysis.keep_alive"] or row["tcp.analysis.zero_window_probe"])
    resets = sum(1 for row in rows if row["tcp.flags.reset"] in ("1", "True"))
    summary = f"kernel zero windows: {zero_windows}, seqs probes: {probes}, RSTs: {resets}"
    print(summary)
    assert zero_windows >= 1, summary
    # probes back off exponentially from the RTO (>= 200 ms): 0.2, 0.4, 0.8, 1.6 s...
    assert probes >= 2, summary
    assert resets == 0, summary


# -- 6. the same transfers with 2 % loss each way ------------------------------------------------


def test_lossy_kernel_echo_through_seqs_intact(seqs_up: Callable[..., TcpHost]) -> None:
    host = seqs_up("--loss", str(LOSS), "--fault-seed", "11")
    res = host.link.kernel("echo", port=ECHO, nbytes=LOSSY, seed=7, timeout=600)
    throughput("2% loss: kernel -> seqs echo -> kernel (each way)", res["received"], res["seconds"])
    assert res["received"] == LOSSY and res["sha256"] == stream_digest(LOSSY, 7), res
    snap = host.wait_drained(10.0)
    print(f"faults: {snap['faults']}, drops: {snap['stats']['drops']}")
    assert snap["faults"]["tx_dropped"] > 0 and snap["faults"]["rx_dropped"] > 0, snap["faults"]
    assert_healthy(host, snap)


def test_lossy_chargen_download_by_kernel_intact(seqs_up: Callable[..., TcpHost]) -> None:
    host = seqs_up("--loss", str(LOSS), "--fault-seed", "12", "--chargen-limit", str(LOSSY), "--msl", str(MSL))
    res = host.link.kernel("read", port=CHARGEN, timeout=600)
    throughput("2% loss: seqs chargen -> kernel", res["received"], res["seconds"])
    assert res["received"] == LOSSY and res["sha256"] == chargen_digest(LOSSY), res
    snap = host.wait_drained(2 * MSL + 10)
    assert snap["tcp_connections"] == 0, snap["tcp_states"]
    print(f"faults: {snap['faults']}, drops: {snap['stats']['drops']}")
    assert_healthy(host, snap)


def test_lossy_kernel_upload_to_discard_counted(seqs_up: Callable[..., TcpHost]) -> None:
    host = seqs_up("--loss", str(LOSS), "--fault-seed", "13")
    res = host.link.kernel("send", port=DISCARD, nbytes=LOSSY, seed=8, timeout=600)
    throughput("2% loss: kernel -> seqs discard", LOSSY, res["seconds"])
    assert res["eof"], res
    snap = host.wait_drained(10.0)
    assert host.service(snap, "discard")["bytes_in"] == LOSSY, snap["services"]
    assert_healthy(host, snap)


@pytest.mark.parametrize("mode", ["upload", "download"])
def test_lossy_seqs_client_transfer_with_kernel_server_intact(link: Link, mode: str) -> None:
    if mode == "upload":
        server = link.kernel_server("serve-sink", port=5003)
    else:
        server = link.kernel_server("serve-source", port=5003, nbytes=LOSSY, seed=9)
    opts: dict[str, Any] = {"nbytes": LOSSY, "seed": 9} if mode == "upload" else {}
    res = link.seqs_client(mode, port=5003, loss=LOSS, fault_seed=14, timeout=600, **opts)
    out, err = server.communicate(timeout=60)
    assert server.returncode == 0, err
    got = json.loads(out.strip().splitlines()[-1])
    throughput(f"2% loss: seqs client {mode}", LOSSY, res["seconds"])
    check_client(link, res)
    assert res["injected_losses"] > 0, res
    if mode == "upload":
        assert got["received"] == LOSSY and got["sha256"] == stream_digest(LOSSY, 9), got
    else:
        assert res["received"] == LOSSY and res["sha256"] == stream_digest(LOSSY, 9), res


def test_lossy_200_sequential_chargen_connections_pass_time_wait_and_drain(seqs_up: Callable[..., TcpHost]) -> None:
    # Open, transfer, close, 200 times over the lossy link: lost SYNs, SYN-ACKs, data,
    # FINs and final ACKs are all retransmitted by one side or the other, and none of
    # it may leave a connection behind.  chargen closes first, so each of seqs' ends
    # passes FIN-WAIT-1, FIN-WAIT-2 and TIME-WAIT (RFC 9293 §3.6); a lost final ACK
    # is answered by the kernel's FIN again, which TIME-WAIT must acknowledge anew.
    n, size = 200, 10_000  # ~8 segments each: most connections see a loss somewhere
    host = seqs_up("--loss", str(LOSS), "--fault-seed", "15", "--msl", str(MSL), "--chargen-limit", str(size))
    res = host.link.kernel("sequential", port=CHARGEN, count=n, chargen=size, timeout=400)
    print(f"2% loss: {n} chargen connections in {res['seconds']:.1f} s ({n / res['seconds']:.1f}/s)")
    assert (res["count"], res["bad"]) == (n, 0), res
    snap = host.stats()
    assert snap["tcp_states"].get("TIME-WAIT", 0) > 0, f"no connection in TIME-WAIT: {snap['tcp_states']}"
    snap = host.wait_drained(2 * MSL + 30)
    assert snap["tcp_connections"] == 0, f"left in the table: {snap['tcp_states']}"
    chargen = host.service(snap, "chargen")
    assert (chargen["accepted"], chargen["open"], chargen["bytes_out"]) == (n, 0, n * size), chargen
    print(f"faults: {snap['faults']}, drops: {snap['stats']['drops']}")
    assert snap["faults"]["tx_dropped"] > 0 and snap["faults"]["rx_dropped"] > 0, snap["faults"]
    assert_healthy(host, snap)


def test_lossy_200_sequential_echo_connections_leave_no_connection_behind(seqs_up: Callable[..., TcpHost]) -> None:
    # The kernel closes first here: seqs goes CLOSE-WAIT -> LAST-ACK and must retransmit
    # a lost FIN until the kernel's ACK arrives (RFC 9293 §3.10.4), or the table leaks.
    n = 200
    host = seqs_up("--loss", str(LOSS), "--fault-seed", "16", "--msl", str(MSL))
    res = host.link.kernel("sequential", port=ECHO, count=n, nbytes=10_000, timeout=400)
    print(f"2% loss: {n} echo connections in {res['seconds']:.1f} s ({n / res['seconds']:.1f}/s)")
    assert (res["count"], res["bad"]) == (n, 0), res
    snap = host.wait_drained(2 * MSL + 30)
    assert snap["tcp_connections"] == 0, f"left in the table: {snap['tcp_states']}"
    echo = host.service(snap, "tcp-echo")
    assert (echo["accepted"], echo["open"]) == (n, 0), echo
    assert echo["bytes_in"] == echo["bytes_out"] == n * 10_004, echo  # each message ends in its index
    assert snap["faults"]["tx_dropped"] > 0 and snap["faults"]["rx_dropped"] > 0, snap["faults"]
    assert_healthy(host, snap)


def test_lossy_50_concurrent_echo_connections_all_intact(seqs_up: Callable[..., TcpHost]) -> None:
    # 50 connections at once share the lossy link: recoveries on many connections
    # overlap, and each connection's own data (seed + index) must come back whole.
    n, size = 50, 256 * 1024
    host = seqs_up("--loss", str(LOSS), "--fault-seed", "17")
    res = host.link.kernel("concurrent", port=ECHO, count=n, nbytes=size, seed=200, deadline=240, timeout=300)
    throughput(f"2% loss: {n} concurrent echo connections (total, each way)", res["bytes"], res["seconds"])
    snap = _all_concurrent_echoes_intact(host, res, n, size, drain=30.0)
    print(f"faults: {snap['faults']}, drops: {snap['stats']['drops']}")
    assert snap["faults"]["tx_dropped"] > 0 and snap["faults"]["rx_dropped"] > 0, snap["faults"]
    assert_healthy(host, snap)
