"""``seqs get``, ``seqs ping``, ``seqs up --http`` and the demo's HTTP step, without
root: help texts, usage errors reported before any device is opened, and the
pieces the commands print (progress line, ping's reply and summary lines).
The commands against the kernel are in ``tests/interop/test_http_kernel.py``."""

from __future__ import annotations

import io
import pathlib
import subprocess
import sys

import pytest

from seqs.cli import main
from seqs.cli.get import Progress, output_name
from seqs.cli.ping import Stats, format_reply
from seqs.cli.up import parse_http_spec
from seqs.sockets.icmp import EchoReply


@pytest.mark.parametrize("command", ["get", "ping", "up", "connect", "resolve", "ntp", "demo", "bench"])
def test_every_command_has_help_with_examples(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "examples:" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["get", "ping", "up", "connect", "resolve", "ntp"])
def test_every_command_on_a_device_can_write_a_pcap(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "--pcap" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["get", "connect", "up"])
def test_tcp_commands_can_trace(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "--trace" in capsys.readouterr().out


def test_top_level_help_lists_get_and_ping(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "seqs get --tap" in out and "seqs ping --tap" in out and "--http" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["get", "--tap", "nosuchtap0", "--ip", "10.0.0.2/24", "https://10.0.0.1/"], "https is not supported"),
        (["get", "--tap", "nosuchtap0", "--ip", "10.0.0.2/24", "ftp://10.0.0.1/"], "not an http:// URL"),
        (["get", "--tap", "nosuchtap0", "10.0.0.1/x"], "one of --ip ADDR/LEN or --dhcp is required"),
        (["get", "--tap", "nosuchtap0", "--ip", "10.0.0.2", "10.0.0.1/x"], "expected ADDR/LEN"),
        (["get", "--tap", "nosuchtap0", "--ip", "10.0.0.2/24", "--timeout", "0", "10.0.0.1/x"],
         "--timeout must be positive"),
        (["ping", "--tap", "nosuchtap0", "--ip", "10.0.0.2/24", "-i", "0", "10.0.0.1"], "-i positive"),
        (["ping", "--tap", "nosuchtap0", "--ip", "10.0.0.2/24", "-s", "70000", "10.0.0.1"], "-s 0..65507"),
        (["ping", "--tap", "nosuchtap0", "--ip", "10.0.0.2/24", "--dns", "x", "h.test"], "not an IPv4 address"),
        (["up", "--tap", "nosuchtap0", "--ip", "10.0.0.2/24", "--http", "/nonexistent/dir"], "not a directory"),
        (["up", "--tap", "nosuchtap0", "--ip", "10.0.0.2/24", "--http", "/tmp:99999"], "port out of range"),
    ],
)
def test_errors_are_one_line_before_any_device_is_opened(argv: list[str], message: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"seqs {argv[0]}: ")


def test_debug_shows_the_traceback() -> None:
    with pytest.raises(ValueError, match="https"):
        main(["get", "--debug", "--tap", "t0", "--ip", "10.0.0.2/24", "https://10.0.0.1/"])


def test_ping_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["ping", "--tap", "t0", "--ip", "10.0.0.2/24", "-c", "many", "10.0.0.1"])
    assert info.value.code == 2


def test_output_name_is_wgets() -> None:
    assert output_name("http://h/a/b/file.iso") == "file.iso"
    assert output_name("http://h/a/") == "index.html"
    assert output_name("http://h") == "index.html"
    assert output_name("http://h/my%20file.txt?x=1") == "my file.txt"


def test_http_spec_parses_dir_and_port() -> None:
    assert parse_http_spec("/srv/www") == ("/srv/www", 80)
    assert parse_http_spec("/srv/www:8080") == ("/srv/www", 8080)
    assert parse_http_spec(":8080") == (".", 8080)


def test_progress_line_shows_bytes_percent_rate_and_eta() -> None:
    p = Progress(io.StringIO(), "big.iso")
    line = p.line(25_000_000, 100_000_000, p.start + 1.0)
    assert line == "big.iso  25.0 MB / 100.0 MB   25%  25.0 MB/s  ETA 0:03"
    assert p.line(1500, None, p.start + 1.0) == "big.iso  1.5 kB  1.5 kB/s"


def test_ping_lines_are_iputils_lines() -> None:
    r = EchoReply("10.0.0.1", 1, bytes(56), 0.0, 64)
    assert format_reply(r, 0.000512) == "64 bytes from 10.0.0.1: icmp_seq=1 ttl=64 time=0.512 ms"
    assert format_reply(r, 0.0123).endswith("time=12.3 ms")
    s = Stats()
    s.transmitted = 4
    s.rtts = [0.0004, 0.0005, 0.0006]
    lines = s.summary("10.0.0.1", 3.004)
    assert lines == [
        "--- 10.0.0.1 ping statistics ---",
        "4 packets transmitted, 3 received, 25% packet loss, time 3004ms",
        "rtt min/avg/max/mdev = 0.400/0.500/0.600/0.082 ms",
    ]
    empty = Stats()
    empty.transmitted = 2
    assert empty.summary("h", 1.0)[1] == "2 packets transmitted, 0 received, 100% packet loss, time 1000ms"


def test_demo_downloads_over_http_through_the_lossy_link(tmp_path: pathlib.Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--pcap", str(tmp_path / "demo.pcap")]) == 0
    out = capsys.readouterr().out
    assert "HTTP: files.demo -> 10.0.0.1 (DNS); GET http://files.demo/demo.bin -> 200 OK" in out
    assert "sha256 matches" in out.split("HTTP:")[1] and "10%-loss link" in out.split("HTTP:")[1]
    assert "Range bytes=1000-1999 -> 206 (bytes 1000-1999/2097152, bytes match)" in out
    assert "GET /../etc/passwd -> 404" in out


def test_seqs_imports_without_h11() -> None:
    """The stack stays dependency-free: only seqs.http needs h11."""
    code = ("import sys; sys.modules['h11'] = None\n"
            "import seqs, seqs.runtime, seqs.cli, seqs.cli.up, seqs.cli.get\n"
            "try:\n    import seqs.http\nexcept ImportError as e:\n    print('http:', e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "seqs.http needs h11: pip install 'seqs[http]'" in r.stdout


def test_bench_http_is_registered(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    assert "http" in capsys.readouterr().out
