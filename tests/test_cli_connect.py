"""``seqs connect``: argument errors and the relay without root; against the
Linux kernel's own TCP through a TAP in a network namespace when root is available.

The relay tests drive :func:`seqs.cli.connect.relay` between files (standing
in for stdin and stdout) and a seqs peer on a socket-pair link.  The kernel
tests run the real command, inside a namespace where a ``python3 -c`` server
listens on the kernel side of the TAP.  Every wait and subprocess is bounded.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pathlib
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from helpers import require_interop
from seqs.cli import main
from seqs.cli.connect import describe, relay
from seqs.netns import Namespace
from seqs.phy import socketpair_devices
from seqs.runtime import Host, TCPListener, TCPSocket

WAIT = 10.0
A, B = "10.0.0.1", "10.0.0.2"


# -- arguments (no device needed) --------------------------------------------------------------


def test_help_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["connect", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "seqs connect --tap tap0 --ip 10.0.0.2/24" in out
    assert "--timeout" in out and "exit status" in out


def test_top_level_help_lists_connect(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "connect" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["connect", "--ip", "10.0.0.2/24", "10.0.0.1", "80"], "one of the arguments --tap --raw is required"),
        (["connect", "--tap", "t0", "10.0.0.1", "80"], "--ip"),
        (["connect", "--tap", "t0", "--ip", "10.0.0.2/24", "10.0.0.1"], "PORT"),
        (["connect", "--tap", "t0", "--ip", "10.0.0.2/24", "10.0.0.1", "0"], "port out of range"),
        (["connect", "--tap", "t0", "--ip", "10.0.0.2/24", "10.0.0.1", "70000"], "port out of range"),
        (["connect", "--tap", "t0", "--ip", "10.0.0.2/24", "10.0.0.1", "http"], "not a port number"),
        (["connect", "--tap", "t0", "--ip", "10.0.0.2/24", "-w", "0", "10.0.0.1", "80"], "must be positive"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--ip", "10.0.0.2", "10.0.0.1", "80"], "expected ADDR/LEN"),
        (["--ip", "10.0.0.2/24", "example.org", "80"], "not an IPv4 address: 'example.org'"),
        (["--ip", "10.0.0.2/24", "--gateway", "gw", "10.0.0.1", "80"], "not an IPv4 address: 'gw'"),
    ],
)
def test_bad_addresses_are_reported_before_any_device_is_opened(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # "--tap" names a device that would need root to create: the error must come first.
    assert main(["connect", "--tap", "seqs-never", *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("seqs connect: error:") and message in err
    assert err.count("\n") == 1


def test_error_descriptions_are_netcat_words() -> None:
    assert describe(ConnectionRefusedError(111, "Connection refused")) == "connection refused"
    assert describe(ConnectionResetError(104, "x")) == "connection reset by peer"
    assert describe(TimeoutError("timed out")) == "timed out"
    assert describe(OSError(101, "x")) == "network is unreachable"


# -- the relay, against a seqs peer (no root) ------------------------------------------------


@pytest.fixture
def hosts() -> Iterator[tuple[Host, Host]]:
    a_dev, b_dev = socketpair_devices()
    a = Host(a_dev, ip=f"{A}/24")
    b = Host(b_dev, ip=f"{B}/24")
    try:
        yield a, b
    finally:
        a.runner.stop()
        b.runner.stop()
        a.close()
        b.close()


def _connected(a: Host, b: Host) -> tuple[TCPSocket, TCPSocket, TCPListener]:
    lst = a.create_server(("", 7))
    lst.settimeout(WAIT)
    client = b.create_connection((A, 7), timeout=WAIT)
    server, _ = lst.accept()
    server.settimeout(WAIT)
    return client, server, lst


def _in_thread(fn: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def body() -> None:
        try:
            fn()
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=body, daemon=True)
    t.start()
    return t, errors


def test_relay_copies_both_ways_and_ends_after_both_fins(hosts: tuple[Host, Host], tmp_path: pathlib.Path) -> None:
    a, b = hosts
    client, server, lst = _connected(a, b)
    data = hashlib.shake_256(b"relay").digest(1_000_000)
    src = tmp_path / "stdin"
    src.write_bytes(data)
    dst = tmp_path / "stdout"

    def echo() -> None:
        while chunk := server.recv(65536):
            server.sendall(chunk)
        server.close()

    peer, errors = _in_thread(echo)
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        relay(client, fin.fileno(), fout.fileno())
    peer.join(WAIT)
    assert not peer.is_alive() and not errors
    assert dst.read_bytes() == data
    # relay() waited for our FIN to be acknowledged: the close is complete on both sides.
    with b.lock:
        assert client.connection.state_name in ("TIME-WAIT", "CLOSED")
    client.close()
    lst.close()


def test_relay_waits_for_stdin_after_the_peer_finished(hosts: tuple[Host, Host], tmp_path: pathlib.Path) -> None:
    a, b = hosts
    client, server, lst = _connected(a, b)
    server.sendall(b"220 greeting\r\n")
    server.shutdown(socket.SHUT_WR)
    r, w = os.pipe()
    dst = tmp_path / "stdout"
    with open(dst, "wb") as fout:
        t, errors = _in_thread(functools.partial(relay, client, r, fout.fileno()))
        time.sleep(0.3)
        assert t.is_alive()  # the peer's FIN is in, our input is not done
        os.write(w, b"QUIT\r\n")
        os.close(w)
        t.join(WAIT)
    os.close(r)
    assert not t.is_alive() and not errors
    assert dst.read_bytes() == b"220 greeting\r\n"
    assert server.recv(100) == b"QUIT\r\n"
    assert server.recv(100) == b""
    server.close()
    client.close()
    lst.close()


def test_relay_raises_the_reset(hosts: tuple[Host, Host], tmp_path: pathlib.Path) -> None:
    a, b = hosts
    client, server, lst = _connected(a, b)
    r, w = os.pipe()  # stdin stays open: only the connection can end this
    dst = tmp_path / "stdout"
    with open(dst, "wb") as fout:
        t, errors = _in_thread(functools.partial(relay, client, r, fout.fileno()))
        server.sendall(b"partial")
        time.sleep(0.1)
        server.abort()
        t.join(WAIT)
    os.close(w)
    os.close(r)
    assert not t.is_alive()
    assert [type(e) for e in errors] == [ConnectionResetError]
    assert dst.read_bytes() == b"partial"
    client.close()
    lst.close()


def test_relay_stops_quietly_when_stdout_goes_away(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    client, server, lst = _connected(a, b)
    out_r, out_w = os.pipe()
    os.close(out_r)  # like `seqs connect ... | head -c 0`
    in_r, in_w = os.pipe()
    server.sendall(b"nobody reads this")
    t, errors = _in_thread(functools.partial(relay, client, in_r, out_w))
    t.join(WAIT)
    assert not t.is_alive() and not errors
    with pytest.raises(ConnectionResetError):  # we abandoned the connection: RST
        server.recv(10)
    for fd in (out_w, in_r, in_w):
        os.close(fd)
    server.close()
    client.close()
    lst.close()


# -- against the kernel, in a network namespace (root) ----------------------------------------

_KERNEL_SERVER = r"""
import socket, sys
host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.create_server((host, port))
s.settimeout(30)
print("ready", flush=True)
c, _ = s.accept()
c.settimeout(30)
if mode == "echo":
    while d := c.recv(65536):
        c.sendall(d)
else:
    c.sendall(b"220 kernel says hello\r\n")
    while c.recv(65536):
        pass
c.close()
print("done", flush=True)
"""

KERNEL_IP, SEQS_IP = "10.77.0.1", "10.77.0.2"


@pytest.fixture
def netns() -> Iterator[Namespace]:
    require_interop()  # skips, or fails under SEQS_REQUIRE_INTEROP=1 (CI)
    with Namespace("seqs-connect") as ns:
        ns.add_tap("tap0", f"{KERNEL_IP}/24")
        yield ns


def _kernel_server(ns: Namespace, port: int, mode: str) -> subprocess.Popen[str]:
    p = ns.popen([sys.executable, "-c", _KERNEL_SERVER, KERNEL_IP, str(port), mode], stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE)
    assert p.stdout is not None
    ready, _, _ = select.select([p.stdout], [], [], WAIT)
    assert ready and p.stdout.readline().strip() == "ready", "the kernel-side server did not start"
    return p


def _seqs_connect(ns: Namespace, *args: str, stdin: bytes = b"", timeout: float = 60.0
                  ) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ)
    src = str(pathlib.Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "seqs", "connect", "--tap", "tap0", "--ip", f"{SEQS_IP}/24", *args]
    return subprocess.run(ns.exec_args(cmd), input=stdin, capture_output=True, timeout=timeout, env=env)


@pytest.mark.interop
def test_kernel_echo_of_a_megabyte_round_trips_and_exits_0(netns: Namespace) -> None:
    server = _kernel_server(netns, 7000, "echo")
    data = hashlib.shake_256(b"kernel").digest(1 << 20)
    r = _seqs_connect(netns, KERNEL_IP, "7000", stdin=data)
    assert r.returncode == 0, r.stderr.decode()
    assert hashlib.sha256(r.stdout).hexdigest() == hashlib.sha256(data).hexdigest()
    assert r.stderr == b""
    out, _ = server.communicate(timeout=WAIT)
    assert out.strip() == "done"  # the kernel saw our FIN and closed cleanly


@pytest.mark.interop
def test_kernel_greeting_with_empty_stdin(netns: Namespace) -> None:
    server = _kernel_server(netns, 7001, "greet")
    r = _seqs_connect(netns, "-v", KERNEL_IP, "7001")
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == b"220 kernel says hello\r\n"
    assert f"connected to {KERNEL_IP}:7001 from {SEQS_IP}:".encode() in r.stderr
    server.communicate(timeout=WAIT)


@pytest.mark.interop
def test_kernel_refuses_a_closed_port_exit_1(netns: Namespace) -> None:
    r = _seqs_connect(netns, KERNEL_IP, "7002")
    assert r.returncode == 1
    assert r.stderr.decode() == f"seqs connect: {KERNEL_IP}:7002: connection refused\n"
    assert r.stdout == b""


@pytest.mark.interop
def test_connect_timeout_to_a_silent_address_exit_1(netns: Namespace) -> None:
    t = time.monotonic()
    r = _seqs_connect(netns, "-w", "1", "10.77.0.99", "80")
    assert r.returncode == 1
    assert r.stderr.decode() == "seqs connect: 10.77.0.99:80: timed out\n"
    assert time.monotonic() - t < 30
