"""HTTP against the Linux kernel's programs, through a TAP in a network namespace.

The kernel's **curl** downloads from ``seqs up --http`` (100 MB with TSO and
with offload off, sha256 checked; keep-alive, ranges, HEAD, 404; fifty at
once), hostile kernel clients test the limits (a megabyte of header garbage,
a slowloris, a client that vanishes mid-response), and ``seqs get`` downloads
from Python's ``http.server`` on the kernel side (100 MB, sha256 checked) and
by a name that **dnsmasq** resolves.  ``seqs ping`` pings the kernel.

What seqs saw comes from ``seqs up --stats-file`` (SIGUSR1).  Throughput is
printed (``MB/s``), never asserted.  Every wait is bounded; the namespace
goes with everything in it when a test ends.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from seqs.netns import Namespace, SeqsProcess

pytestmark = [pytest.mark.interop, pytest.mark.programs("curl")]

SRC = pathlib.Path(__file__).resolve().parents[2] / "src"
MB = 1_000_000
BIG = 100 * MB
EACH = 10 * MB  # per download, fifty at once
PARALLEL = 50


@dataclass
class Files:
    root: pathlib.Path
    sha: dict[str, str]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    root = tmp_path_factory.mktemp("www")
    sha = {}
    for name, size in (("big.bin", BIG), ("ten.bin", EACH)):
        data = os.urandom(size)
        (root / name).write_bytes(data)
        sha[name] = hashlib.sha256(data).hexdigest()
    (root / "hello.txt").write_text("hello from seqs\n")
    (root / "sub").mkdir()
    (root / "sub" / "index.html").write_text("<p>index</p>\n")
    (root.parent / "secret.txt").write_text("outside the root\n")
    return Files(root, sha)


@dataclass
class Link:
    ns: Namespace
    kernel_ip: str
    seqs_ip: str
    tmp: pathlib.Path

    def sh(self, script: str, *, timeout: float = 120.0, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = self.ns.run(["bash", "-o", "pipefail", "-c", script], timeout=timeout)
        if check:
            assert r.returncode == 0, f"{script}: exit {r.returncode}\n{r.stdout}{r.stderr}"
        return r

    def seqs(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run a one-shot ``seqs`` command (get, ping) on tap0 inside the namespace."""
        env = ["env", f"PYTHONPATH={SRC}"]
        return self.ns.run([*env, sys.executable, "-m", "seqs", *args], timeout=timeout)


@pytest.fixture
def link(tmp_path: pathlib.Path) -> Iterator[Link]:
    x, y = random.randint(1, 254), random.randint(1, 254)
    with Namespace("seqs-http") as ns:
        ns.add_tap("tap0", f"10.{x}.{y}.1/24")
        yield Link(ns, f"10.{x}.{y}.1", f"10.{x}.{y}.2", tmp_path)


@dataclass
class HttpHost:
    """``seqs up --http`` on the link."""

    link: Link
    proc: SeqsProcess
    stats_file: pathlib.Path

    @property
    def url(self) -> str:
        return f"http://{self.link.seqs_ip}"

    def stats(self) -> dict[str, Any]:
        self.stats_file.unlink(missing_ok=True)
        os.kill(self.proc.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 10.0
        while not self.stats_file.exists():
            assert self.proc.proc.poll() is None, "seqs up exited"
            assert time.monotonic() < deadline, "no stats file within 10 s of SIGUSR1"
            time.sleep(0.02)
        snap: dict[str, Any] = json.loads(self.stats_file.read_text())
        return snap

    def wait(self, pred: Callable[[dict[str, Any]], bool], within: float) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            snap = self.stats()
            if pred(snap) or time.monotonic() > deadline:
                return snap
            time.sleep(0.2)


@pytest.fixture
def seqs_http(link: Link, files: Files) -> Iterator[Callable[..., HttpHost]]:
    started: list[HttpHost] = []

    def start(*extra: str) -> HttpHost:
        stats = link.tmp / "stats.json"
        args = ["up", "--tap", "tap0", "--ip", f"{link.seqs_ip}/24", "--http", str(files.root),
                "--stats-file", str(stats), "--msl", "1", *extra]
        h = HttpHost(link, link.ns.start_seqs(args), stats)
        started.append(h)
        return h

    yield start
    for h in started:
        code, _out, err = h.proc.stop()
        assert code == 0 and "Traceback" not in err, f"seqs up ended badly (exit {code}):\n{err}"


def throughput(label: str, nbytes: int, seconds: float) -> None:
    print(f"throughput {label}: {nbytes / MB:.0f} MB in {seconds:.2f} s = {nbytes / MB / seconds:.1f} MB/s")


# -- curl against seqs up --http -----------------------------------------------------------------


@pytest.mark.parametrize("offload", ["tso", "off"])
def test_curl_downloads_100_mb_intact(seqs_http: Callable[..., HttpHost], files: Files, offload: str) -> None:
    h = seqs_http("--offload", offload)
    t = time.monotonic()
    r = h.link.sh(f"curl -sS --max-time 150 {h.url}/big.bin | sha256sum", timeout=160)
    throughput(f"curl <- seqs up --http (offload {offload})", BIG, time.monotonic() - t)
    assert r.stdout.split()[0] == files.sha["big.bin"]
    snap = h.wait(lambda s: s["http"]["open"] == 0, 10)
    assert snap["http"]["statuses"] == {"200": 1} and snap["http"]["open"] == 0


def test_curl_reuses_one_connection_for_several_urls(seqs_http: Callable[..., HttpHost]) -> None:
    h = seqs_http()
    r = h.link.sh(f"curl -sS -w '[%{{num_connects}}]' {h.url}/hello.txt {h.url}/sub/ {h.url}/hello.txt")
    assert r.stdout == "hello from seqs\n[1]<p>index</p>\n[0]hello from seqs\n[0]"
    verbose = h.link.sh(f"curl -sSv -o /dev/null -o /dev/null {h.url}/hello.txt {h.url}/hello.txt").stderr
    assert "Re-using existing connection" in verbose or "Reusing existing" in verbose
    snap = h.stats()
    assert snap["http"]["accepted"] == 2 and snap["http"]["requests"] == 5


def test_curl_range_head_404_405_and_no_traversal(seqs_http: Callable[..., HttpHost], files: Files) -> None:
    h = seqs_http()
    part = h.link.sh(f"curl -sS -r 1000-1999 -w ' %{{http_code}}' {h.url}/big.bin -o {h.link.tmp}/part").stdout
    assert part.strip() == "206"
    with open(files.root / "big.bin", "rb") as f:
        f.seek(1000)
        assert (h.link.tmp / "part").read_bytes() == f.read(1000)
    assert h.link.sh(f"curl -sS -r 2000000000- -o /dev/null -w '%{{http_code}}' {h.url}/big.bin").stdout == "416"
    head = h.link.sh(f"curl -sSI {h.url}/big.bin").stdout.lower()
    assert "content-length: 100000000" in head and "accept-ranges: bytes" in head and head.startswith("http/1.1 200")
    assert h.link.sh(f"curl -s -o /dev/null -w '%{{http_code}}' {h.url}/nope").stdout == "404"
    assert h.link.sh(f"curl -s -o /dev/null -w '%{{http_code}}' -X DELETE {h.url}/hello.txt").stdout == "405"
    for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/sub/../../secret.txt"):
        r = h.link.sh(f"curl -s --path-as-is -w ' %{{http_code}}' '{h.url}{path}'")
        assert r.stdout.endswith(" 404") and "outside" not in r.stdout, (path, r.stdout)


def test_fifty_concurrent_downloads_complete(seqs_http: Callable[..., HttpHost], files: Files) -> None:
    h = seqs_http("--offload", "tso")
    script = (f"for i in $(seq {PARALLEL}); do (curl -sS --max-time 240 {h.url}/ten.bin | sha256sum) & done; wait")
    t = time.monotonic()
    r = h.link.sh(script, timeout=260)
    elapsed = time.monotonic() - t
    throughput(f"{PARALLEL} concurrent curl <- seqs up --http", PARALLEL * EACH, elapsed)
    sums = [line.split()[0] for line in r.stdout.splitlines()]
    assert sums == [files.sha["ten.bin"]] * PARALLEL
    snap = h.wait(lambda s: s["http"]["open"] == 0, 10)
    assert snap["http"]["statuses"] == {"200": PARALLEL} and snap["http"]["accepted"] == PARALLEL


# -- hostile kernel clients ----------------------------------------------------------------------

_GARBAGE = """
import socket, sys
s = socket.create_connection((sys.argv[1], 80), timeout=20)
try:
    s.sendall(b"GET / HTTP/1.1\\r\\nX-Junk: " + b"A" * 1_000_000)
except OSError:
    pass  # the server may close its side before taking it all
reply = b""
try:
    while chunk := s.recv(65536):
        reply += chunk
except OSError:
    pass
print(reply.split(b"\\r\\n", 1)[0].decode())
"""


def test_a_megabyte_of_header_garbage_gets_431_and_the_server_stays_up(seqs_http: Callable[..., HttpHost]) -> None:
    h = seqs_http()
    r = h.link.ns.python(_GARBAGE, h.link.seqs_ip, timeout=40)
    assert r.stdout.strip() in ("HTTP/1.1 431 Request Header Fields Too Large", "HTTP/1.1 400 Bad Request"), \
        r.stdout + r.stderr
    assert h.link.sh(f"curl -sS --max-time 10 {h.url}/hello.txt").stdout == "hello from seqs\n"
    snap = h.wait(lambda s: s["http"]["open"] == 0, 10)
    assert snap["http"]["open"] == 0


_SLOWLORIS = """
import socket, sys, time
s = socket.create_connection((sys.argv[1], 80), timeout=20)
start = time.monotonic()
reply = b""
try:
    for b in b"GET / HTTP/1.1\\r\\nHost: x\\r\\nX-Slow: " + b"z" * 100:
        s.send(bytes([b]))
        time.sleep(0.25)
except OSError:
    pass
try:
    while chunk := s.recv(65536):
        reply += chunk
except OSError:
    pass
print(round(time.monotonic() - start, 1), reply.split(b"\\r\\n", 1)[0].decode())
"""


def test_a_slowloris_is_timed_out(seqs_http: Callable[..., HttpHost]) -> None:
    h = seqs_http("--http-header-timeout", "2")
    r = h.link.ns.python(_SLOWLORIS, h.link.seqs_ip, timeout=60)
    elapsed, status = r.stdout.strip().split(" ", 1)
    assert status == "HTTP/1.1 408 Request Timeout", r.stdout + r.stderr
    assert float(elapsed) < 10.0  # cut off after ~2 s, not after the 30 s the trickle would take
    snap = h.wait(lambda s: s["http"]["open"] == 0, 10)
    assert snap["http"]["open"] == 0 and snap["http"]["errors"].get("408") == 1


_VANISH = """
import socket, sys
s = socket.create_connection((sys.argv[1], 80), timeout=20)
s.sendall(b"GET /big.bin HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
got = 0
while got < 2_000_000:
    got += len(s.recv(65536))
s.close()  # with unread data: the kernel sends RST
print(got)
"""


def test_a_client_vanishing_mid_response_leaves_no_connection(seqs_http: Callable[..., HttpHost]) -> None:
    h = seqs_http()
    r = h.link.ns.python(_VANISH, h.link.seqs_ip, timeout=40)
    assert r.returncode == 0, r.stderr
    snap = h.wait(lambda s: s["tcp_connections"] == 0 and s["http"]["open"] == 0, 15)
    assert snap["tcp_connections"] == 0 and snap["http"]["open"] == 0, snap["tcp_states"]
    assert h.link.sh(f"curl -sS --max-time 10 {h.url}/hello.txt").stdout == "hello from seqs\n"


# -- seqs get against kernel servers -------------------------------------------------------------


def _http_server(link: Link, root: pathlib.Path) -> subprocess.Popen[str]:
    p = link.ns.popen([sys.executable, "-m", "http.server", "8000", "--bind", link.kernel_ip,
                       "--directory", str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = link.ns.run(["bash", "-c", f"exec 3<>/dev/tcp/{link.kernel_ip}/8000"], timeout=5)
        if r.returncode == 0:
            return p
        time.sleep(0.1)
    raise AssertionError("http.server did not start")


@pytest.mark.parametrize("offload", ["tso", "off"])
def test_seqs_get_downloads_100_mb_from_the_kernel(link: Link, files: Files, offload: str) -> None:
    _http_server(link, files.root)
    out = link.tmp / "got.bin"
    t = time.monotonic()
    r = link.seqs("get", "--tap", "tap0", "--ip", f"{link.seqs_ip}/24", "--offload", offload, "-o", str(out),
                  f"http://{link.kernel_ip}:8000/big.bin", timeout=180)
    throughput(f"seqs get <- python http.server (offload {offload})", BIG, time.monotonic() - t)
    assert r.returncode == 0 and r.stderr == "", r.stderr  # quiet: stderr is not a terminal
    digest = hashlib.sha256()
    with open(out, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    assert digest.hexdigest() == files.sha["big.bin"]
    assert not (link.tmp / "got.bin.part").exists()


@pytest.mark.programs("dnsmasq")
def test_seqs_get_by_a_name_dnsmasq_resolves(link: Link, files: Files) -> None:
    _http_server(link, files.root)
    link.ns.popen(["dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", "--bind-interfaces",
                   f"--listen-address={link.kernel_ip}", f"--address=/files.test/{link.kernel_ip}",
                   "--pid-file=", "--user=root"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    base = ["get", "--tap", "tap0", "--ip", f"{link.seqs_ip}/24", "--dns", link.kernel_ip]
    r = link.seqs(*base, "-o", "-", "http://files.test:8000/hello.txt", timeout=60)
    assert r.returncode == 0 and r.stdout == "hello from seqs\n", r.stderr
    r = link.seqs(*base, "-o", "-", "http://nosuch.invalid:8000/hello.txt", timeout=60)
    assert r.returncode == 1 and r.stdout == "" and r.stderr.count("\n") == 1
    assert "nosuch.invalid" in r.stderr and "Traceback" not in r.stderr


def test_seqs_get_failures_are_one_line_and_exit_1(link: Link, files: Files) -> None:
    _http_server(link, files.root)
    base = ["get", "--tap", "tap0", "--ip", f"{link.seqs_ip}/24", "--timeout", "3"]
    cases = [
        (f"http://{link.kernel_ip}:8000/nope", "404"),
        (f"http://{link.kernel_ip}:8001/", "connection refused"),
        (f"http://{link.kernel_ip[:-1]}77:8000/", "timed out"),
    ]
    for url, why in cases:
        r = link.seqs(*base, "-o", str(link.tmp / "x"), url, timeout=60)
        assert r.returncode == 1, (url, r.stderr)
        assert r.stderr.startswith("seqs get: ") and why in r.stderr and r.stderr.count("\n") == 1, r.stderr
        assert not list(link.tmp.glob("x*")), "a failed download left a file"


def test_seqs_get_traces_and_captures(link: Link, files: Files) -> None:
    _http_server(link, files.root)
    pcap = link.tmp / "get.pcap"
    r = link.seqs("get", "--tap", "tap0", "--ip", f"{link.seqs_ip}/24", "--trace", "--pcap", str(pcap),
                  "-o", "-", f"http://{link.kernel_ip}:8000/hello.txt", timeout=60)
    assert r.returncode == 0 and r.stdout == "hello from seqs\n"
    assert "SYN-SENT -->" in r.stderr and "ESTABLISHED" in r.stderr, r.stderr
    assert pcap.stat().st_size > 24 + 3 * 16


def test_seqs_connect_traces(link: Link) -> None:
    link.ns.popen([sys.executable, "-c", "import socket,sys\ns=socket.create_server((sys.argv[1], 9000))\n"
                   "c,_=s.accept(); c.sendall(b'hi'); c.close()", link.kernel_ip],
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    r = link.ns.run(["env", f"PYTHONPATH={SRC}", sys.executable, "-m", "seqs", "connect", "--tap", "tap0",
                     "--ip", f"{link.seqs_ip}/24", "--trace", link.kernel_ip, "9000"], timeout=60, input="")
    assert r.returncode == 0 and r.stdout == "hi", r.stderr
    assert "ESTABLISHED" in r.stderr


# -- seqs ping -----------------------------------------------------------------------------------


def test_seqs_ping_prints_like_ping(link: Link) -> None:
    r = link.seqs("ping", "--tap", "tap0", "--ip", f"{link.seqs_ip}/24", "-c", "3", "-i", "0.2", "-s", "100",
                  link.kernel_ip, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"PING {link.kernel_ip} ({link.kernel_ip}) 100(128) bytes of data."
    replies = [ln for ln in lines if ln.startswith("108 bytes from")]
    assert len(replies) == 3 and all("ttl=64 time=" in ln for ln in replies)
    assert [ln.split("icmp_seq=")[1].split()[0] for ln in replies] == ["1", "2", "3"]
    assert f"--- {link.kernel_ip} ping statistics ---" in lines
    assert any(ln.startswith("3 packets transmitted, 3 received, 0% packet loss") for ln in lines)
    assert lines[-1].startswith("rtt min/avg/max/mdev = ")


def test_seqs_ping_without_replies_exits_1(link: Link) -> None:
    silent = link.kernel_ip[:-1] + "99"
    r = link.seqs("ping", "--tap", "tap0", "--ip", f"{link.seqs_ip}/24", "-c", "2", "-i", "0.2", "-W", "0.5",
                  silent, timeout=60)
    assert r.returncode == 1
    assert "2 packets transmitted, 0 received, 100% packet loss" in r.stdout


# -- the benchmark ---------------------------------------------------------------------------------


def test_bench_http_measures_every_row(tmp_path: pathlib.Path) -> None:
    import argparse

    from seqs.bench.http import bench_http

    args = argparse.Namespace(size_mb=2.0, repeat=1, seconds=30.0, offload="off,tso")
    result = bench_http(args)
    rows = {(r["download"], r["offload"]): r["MB_s"] for r in result["rows"]}
    assert set(rows) == {("curl <- http.server (kernel only)", "-"), ("curl <- seqs up --http", "off"),
                         ("seqs get <- http.server", "off"), ("curl <- seqs up --http", "tso"),
                         ("seqs get <- http.server", "tso")}
    assert all(v > 0 for v in rows.values())
