"""seqs' public TCP APIs against the Linux kernel, with transfers large enough to
fill windows and buffers many times over.

``test_tcp_kernel.py`` meets the kernel with ``seqs up``'s services and with the
sans-IO core on the blocking runner; the socket-like and asyncio facades are
otherwise tested on in-memory links.  Here ``seqs_api_peer.py`` — a program
written the way the README's "Python API" shows — runs inside the namespace on
the TAP: ``Host.create_connection`` + ``sendall`` + ``makefile`` against a
kernel echo server, an ``AsyncHost.start_server`` echo handler that kernel
clients push 20 MB and 20 concurrent connections through, and 20 concurrent
``AsyncHost.open_connection`` clients.  Every byte is checked by sha256 against
streams both ends regenerate (``tcp_streams.py``).  Throughput is printed,
never asserted; every wait is bounded.
"""

from __future__ import annotations

import json
import pathlib
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from seqs.netns import Namespace

from .tcp_streams import stream_digest

pytestmark = pytest.mark.interop

HERE = pathlib.Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
KERNEL_PEER = HERE / "kernel_peer.py"
API_PEER = HERE / "seqs_api_peer.py"
MB = 1_000_000
#: Drops that would mean a bug or an overload rather than a frame lost on the way.
_BAD_DROPS = ("tcp_syn_backlog_evicted", "tcp_listen_overflow", "tcp_too_many_connections",
              "tcp_fin_wait2_timeout", "tcp_bad_checksum", "tcp_bad_option", "tcp_no_route")


@dataclass
class Tap:
    ns: Namespace
    kernel_ip: str
    seqs_ip: str

    def _args(self, opts: dict[str, Any]) -> list[str]:
        return [a for k, v in opts.items() for a in (f"--{k.replace('_', '-')}", str(v))]

    def api_peer(self, mode: str, **opts: Any) -> subprocess.Popen[str]:
        """Start ``seqs_api_peer.py MODE`` (seqs on tap0 as ``seqs_ip``)."""
        opts.setdefault("ip", f"{self.seqs_ip}/24")
        cmd = ["env", f"PYTHONPATH={SRC}", sys.executable, str(API_PEER), mode, *self._args(opts)]
        return self.ns.popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def kernel_peer(self, mode: str, **opts: Any) -> subprocess.Popen[str]:
        """Start ``kernel_peer.py MODE`` (the kernel's sockets)."""
        return self.ns.popen([sys.executable, str(KERNEL_PEER), mode, *self._args(opts)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_listening(p: subprocess.Popen[str], who: str) -> None:
    assert p.stdout is not None
    line = p.stdout.readline()  # bounded: each program ends within its own --timeout
    if line.strip() != "listening":
        p.kill()
        _, err = p.communicate(timeout=10)
        pytest.fail(f"{who} did not start listening: {line!r}\n{err}")


def result(p: subprocess.Popen[str], who: str, timeout: float) -> dict[str, Any]:
    """The JSON line a program prints last; it must exit 0 within ``timeout``."""
    try:
        stdout, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        stdout, err = p.communicate(timeout=10)
        pytest.fail(f"{who} still running after {timeout} s:\n{stdout}{err}")
    lines = stdout.strip().splitlines()
    assert p.returncode == 0 and lines, f"{who}: exit {p.returncode}\n{stdout}{err}"
    res: dict[str, Any] = json.loads(lines[-1])
    return res


def assert_stack_clean(res: dict[str, Any]) -> None:
    bad = {k: v for k, v in res["drops"].items() if k in _BAD_DROPS}
    assert not bad, f"unexpected drops {bad}; all: {res['drops']}"


def throughput(label: str, nbytes: int, seconds: float) -> None:
    print(f"throughput {label}: {nbytes / MB:.0f} MB in {seconds:.2f} s = {nbytes / MB / seconds:.1f} MB/s")


@pytest.fixture
def tap() -> Iterator[Tap]:
    # A fresh namespace has no routes: any 10/8 subnet is private to it.
    x, y = random.randint(1, 254), random.randint(1, 254)
    with Namespace("seqs-api") as ns:
        ns.add_tap("tap0", f"10.{x}.{y}.1/24")
        yield Tap(ns, f"10.{x}.{y}.1", f"10.{x}.{y}.2")


def test_host_sendall_20mb_to_kernel_echo_and_makefile_reads_it_back_intact(tap: Tap) -> None:
    nbytes = 20 * MB
    server = tap.kernel_peer("serve-echo", port=5101, count=1, timeout=60)
    wait_listening(server, "kernel echo server")
    client = tap.api_peer("socket-echo", host=tap.kernel_ip, port=5101, nbytes=nbytes, seed=21, timeout=120)
    res = result(client, "Host client", 180)
    got = result(server, "kernel echo server", 30)
    throughput("Host.sendall -> kernel echo -> makefile (each way)", res["received"], res["seconds"])
    # What the kernel received, and what came back to seqs, are both the stream sent.
    assert got["connections"] == [{"received": nbytes, "sha256": stream_digest(nbytes, 21)}], got
    assert (res["received"], res["sha256"]) == (nbytes, stream_digest(nbytes, 21)), res
    # seqs half-closed first, so its end waits in TIME-WAIT (2 MSL, RFC 9293 §3.6), and
    # only there: both FINs were acknowledged.
    assert res["states"] == ["TIME-WAIT"] and res["tcp_connections"] == 1, res
    assert_stack_clean(res)


def test_async_start_server_echoes_20mb_and_20_concurrent_kernel_clients_intact(tap: Tap) -> None:
    nbytes, n, each = 20 * MB, 20, 512 * 1024
    server = tap.api_peer("async-serve", port=7, connections=1 + n, timeout=240)
    wait_listening(server, "AsyncHost server")
    # One large stream first, then n at once (kernel_peer's concurrent mode checks
    # every echo against its own stream, seed + index).
    big = subprocess.run(tap.ns.exec_args([sys.executable, str(KERNEL_PEER), "echo", "--host", tap.seqs_ip,
                                           "--port", "7", "--nbytes", str(nbytes), "--seed", "22",
                                           "--timeout", "30"]),
                         capture_output=True, text=True, timeout=180)
    assert big.returncode == 0, big.stdout + big.stderr
    echo = json.loads(big.stdout.strip().splitlines()[-1])
    throughput("kernel -> AsyncHost echo -> kernel (each way)", echo["received"], echo["seconds"])
    assert (echo["received"], echo["sha256"]) == (nbytes, stream_digest(nbytes, 22)), echo
    many = subprocess.run(tap.ns.exec_args([sys.executable, str(KERNEL_PEER), "concurrent", "--host", tap.seqs_ip,
                                            "--port", "7", "--count", str(n), "--nbytes", str(each),
                                            "--seed", "300", "--deadline", "120"]),
                          capture_output=True, text=True, timeout=180)
    assert many.returncode == 0, many.stdout + many.stderr
    conc = json.loads(many.stdout.strip().splitlines()[-1])
    throughput(f"{n} concurrent kernel clients -> AsyncHost echo (total, each way)", conc["bytes"], conc["seconds"])
    assert conc["connected"] == conc["finished"] == conc["intact"] == n, conc
    assert conc["peak_open"] > n // 2, conc  # they really overlapped

    res = result(server, "AsyncHost server", 60)
    assert res["genuine_streams"], "start_server handed the handler something other than asyncio streams"
    served = res["connections"]
    assert len(served) == 1 + n, served
    want = {(nbytes, stream_digest(nbytes, 22))} | {(each, stream_digest(each, 300 + i)) for i in range(n)}
    assert {(c.get("received"), c.get("sha256")) for c in served} == want, served
    assert res["tcp_connections"] == 0, res
    assert_stack_clean(res)


def test_20_concurrent_async_open_connection_clients_echo_through_kernel_intact(tap: Tap) -> None:
    # 20 echoes pushing both ways fill the kernel's buffers: its window shrinks below
    # one segment at times.  A stall here ending in ConnectionResetError (the kernel
    # server's timeout) has been seqs retransmitting beyond that window — see
    # test_rto_retransmission_fits_a_window_smaller_than_one_segment.
    n, each = 20, 1 * MB
    server = tap.kernel_peer("serve-echo", port=5102, count=n, timeout=60)
    wait_listening(server, "kernel echo server")
    client = tap.api_peer("async-clients", host=tap.kernel_ip, port=5102, count=n, nbytes=each, seed=400,
                          timeout=150)
    res = result(client, "AsyncHost clients", 200)
    got = result(server, "kernel echo server", 30)
    throughput(f"{n} concurrent AsyncHost clients -> kernel echo (total, each way)",
               sum(c["received"] for c in res["connections"]), res["seconds"])
    want: list[dict[str, Any]] = [{"received": each, "sha256": stream_digest(each, 400 + i)} for i in range(n)]
    assert res["connections"] == want, res["connections"]  # gather keeps the clients' order
    # The kernel accepted them in whatever order the SYNs came: compare as a set.
    assert sorted(got["connections"], key=lambda c: c["sha256"]) == sorted(want, key=lambda c: c["sha256"]), got
    assert res["peak_open"] > n // 2, res  # they really overlapped
    # write_eof() sent our FINs first, so every connection waits in TIME-WAIT (RFC 9293
    # §3.6) — none stuck in FIN-WAIT with its FIN unacknowledged or the server's unseen.
    assert res["states"] == ["TIME-WAIT"] and res["tcp_connections"] == n, res
    assert_stack_clean(res)
