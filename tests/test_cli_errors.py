"""Failure paths of ``seqs demo``, ``bench``, ``resolve``, ``ntp``, ``ping`` and ``get``
that need no root: exit status 2 for what argparse refuses, 1 with exactly one line
``seqs CMD: error: ...`` on stderr for the rest, never a traceback — unless
``--debug`` asks for it.

Every case must be reported before a device is opened (a typo should not need
root, nor create a TAP): opening one fails the test.
"""

from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys

import pytest

from seqs.cli import main
from seqs.cli.up import open_device

DEV = ["--tap", "nosuchtap0"]
HOST = [*DEV, "--ip", "10.0.0.2/24"]


@pytest.fixture(autouse=True)
def no_device(monkeypatch: pytest.MonkeyPatch) -> None:
    def opened(args: object) -> None:
        raise AssertionError("a device was opened for a usage error")

    monkeypatch.setattr("seqs.cli.oneshot.open_device", opened)
    monkeypatch.setattr("seqs.cli.connect.open_device", opened)
    monkeypatch.setattr("seqs.cli.up.open_device", opened)


def _one_line_error(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 1
    captured = capsys.readouterr()
    err = captured.err
    assert err.startswith(f"seqs {argv[0]}: error: ") and err.count("\n") == 1, err
    assert message in err and "Traceback" not in err, err
    assert captured.out == ""
    return err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--loss", "1.5"], "--loss must be in 0..1"),
        (["demo", "--loss", "-0.1"], "--loss must be in 0..1"),
        (["demo", "--pcap", "/nonexistent-dir/demo.pcap"], "/nonexistent-dir/demo.pcap: No such file or directory"),
        (["bench", "parse", "--count", "0"], "--count must be at least 1, got 0"),
        (["bench", "parse", "--seconds", "-1"], "--seconds must be positive, got -1"),
        (["resolve", *DEV, "www.example.org"], "one of --ip ADDR/LEN or --dhcp is required"),
        (["resolve", *HOST, "--dns", "10.0.0.1", "--type", "BOGUS", "x.test"], "unknown DNS record type 'BOGUS'"),
        (["resolve", *HOST, "--dns", "300.0.0.1", "x.test"], "not an IPv4 address: '300.0.0.1'"),
        (["resolve", *HOST, "x.test"], "no DNS server: give --dns ADDR"),
        (["resolve", *HOST, "--dns", "10.0.0.1", "bad..name"], "empty label"),
        (["resolve", *HOST, "--dns", "10.0.0.1", "--timeout", "0", "x.test"], "timeouts must be positive"),
        (["resolve", *DEV, "--ip", "10.0.0.2", "--dns", "10.0.0.1", "x.test"], "expected ADDR/LEN"),
        (["ntp", *DEV, "10.0.0.1"], "one of --ip ADDR/LEN or --dhcp is required"),
        (["ntp", *HOST], "no NTP server: give SERVER (or --dhcp"),
        (["ntp", *HOST, "300.1.1.1"], "not an IPv4 address: '300.1.1.1'"),
        (["ntp", *HOST, "ntp.example.org"], "SERVER ntp.example.org is a name: give --dns ADDR"),
        (["ntp", *HOST, "--samples", "0", "10.0.0.1"], "samples must be 1..64"),
        (["ntp", *HOST, "--dns", "x", "ntp.example.org"], "not an IPv4 address: 'x'"),
        (["ntp", *HOST, "--gateway", "g", "10.0.0.1"], "not an IPv4 address: 'g'"),
        (["ping", *HOST, "999.1.1.1"], "not an IPv4 address: '999.1.1.1'"),
        (["ping", *HOST, "router.test"], "HOST router.test is a name: give --dns ADDR"),
        (["get", *HOST, "http://files.test/x"], "the URL's host files.test is a name: give --dns ADDR"),
        (["get", *HOST, "--dns", "files", "http://files.test/x"], "not an IPv4 address: 'files'"),
    ],
)
def test_error_is_one_line_and_exit_1(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    _one_line_error(argv, message, capsys)


def test_demo_pcap_that_is_a_directory_is_one_line(tmp_path: pathlib.Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    _one_line_error(["demo", "--pcap", str(tmp_path)], f"{tmp_path}: Is a directory", capsys)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--loss", "abc"], "argument --loss: invalid float value: 'abc'"),
        (["demo", "--seed", "x"], "argument --seed: invalid int value: 'x'"),
        (["bench", "nosuch"], "argument name: invalid choice: 'nosuch'"),
        (["bench", "parse", "--count", "many"], "argument --count: invalid int value: 'many'"),
        (["resolve", "www.example.org"], "one of the arguments --tap --raw is required"),
        (["resolve", *HOST, "--attempts", "two", "x.test"], "argument --attempts: invalid int value"),
        (["ntp", "10.0.0.1"], "one of the arguments --tap --raw is required"),
        (["ntp", *HOST, "--samples", "four", "10.0.0.1"], "argument -n/--samples: invalid int value"),
    ],
)
def test_usage_error_exits_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: seqs ") and f"seqs {argv[0]}: error: {message}" in err, err


def test_bench_help_says_why_it_has_no_pcap(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["bench", "--help"])
    assert info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "There is no --pcap: a benchmark runs many stacks" in out
    assert "seqs up --pcap FILE" in out
    with pytest.raises(SystemExit) as info:
        main(["bench", "parse", "--pcap", "x.pcap"])
    assert info.value.code == 2


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["resolve", *HOST, "--dns", "10.0.0.1", "--type", "BOGUS", "x.test"], ValueError),
        (["ntp", *HOST, "300.1.1.1"], ValueError),
        (["demo", "--pcap", "/nonexistent-dir/demo.pcap"], FileNotFoundError),
        (["bench", "parse", "--count", "0"], ValueError),
    ],
)
def test_debug_raises_instead_of_one_line(argv: list[str], error: type[Exception],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(error):
        main([argv[0], "--debug", *argv[1:]])
    assert capsys.readouterr().err == ""


def test_debug_prints_the_traceback_from_the_real_command() -> None:
    """What a user sees: ``python -m seqs`` without and with ``--debug``."""
    argv = [sys.executable, "-m", "seqs", "ntp", *HOST, "300.1.1.1"]
    plain = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert (plain.returncode, plain.stderr) == (1, "seqs ntp: error: not an IPv4 address: '300.1.1.1'\n")
    debug = subprocess.run([*argv, "--debug"], capture_output=True, text=True, timeout=60)
    assert debug.returncode == 1
    assert debug.stderr.startswith("Traceback (most recent call last):\n"), debug.stderr
    assert debug.stderr.rstrip().endswith("ValueError: not an IPv4 address: '300.1.1.1'"), debug.stderr
    assert "seqs/cli/ntp.py" in debug.stderr


def test_unwritable_pcap_closes_the_device_it_had_opened(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: pathlib.Path) -> None:
    """The commands on a TAP open the device, then the capture: a capture that cannot
    be written must not leave the device open behind the one-line error."""
    events: list[str] = []

    class FakeTap:
        def __init__(self, name: str, mtu: int | None = None) -> None:
            events.append(f"open {name}")

        def close(self) -> None:
            events.append("close")

    monkeypatch.setattr("seqs.phy.tap.TapDevice", FakeTap)
    args = argparse.Namespace(tap="t0", raw=None, mtu=None, pcap=str(tmp_path / "no-such-dir" / "x.pcap"))
    with pytest.raises(FileNotFoundError):
        open_device(args)
    assert events == ["open t0", "close"]
