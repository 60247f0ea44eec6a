"""Fixtures for the interop tier: seqs against the Linux kernel, through a TAP device.

Every test here runs in a network namespace of its own (``seqs.netns``): the
kernel side of a TAP has ``10.X.Y.1/24`` and ``seqs up`` answers as
``10.X.Y.2/24`` with the UDP echo service on port 7 and a pcap of every frame.
Nothing ever addresses a host outside that namespace, and the namespace, the
TAP and every process in it are removed when the test ends, pass or fail.

A test skips when the machine cannot run it: not root, no ``/dev/net/tun``,
no ``ip``, or a program it calls is missing.  Mark a test with
``@pytest.mark.programs("tshark", ...)`` to name the programs it needs.  With
``SEQS_REQUIRE_INTEROP=1`` in the environment (CI sets it, see ``.ci/run``)
such a test fails instead (``helpers.skip_or_fail``, shared with the kernel
tests outside this directory), so a machine that lost a prerequisite cannot
pass CI with the interop tier silently skipped.
"""

from __future__ import annotations

import contextlib
import pathlib
import random
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from helpers import require_interop, skip_or_fail
from seqs.netns import Namespace, SeqsProcess

ECHO_PORT = 7
_READY = re.compile(r"^ready mac=(?P<mac>[0-9a-f:]{17}) ip=(?P<ip>\S+) device=(?P<device>\S+)$")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "programs(*names): Debian programs the test runs (skips without them)")


@pytest.fixture(autouse=True)
def _interop_prerequisites(request: pytest.FixtureRequest) -> None:
    require_interop()
    for marker in request.node.iter_markers("programs"):
        for prog in marker.args:
            if shutil.which(prog) is None:
                skip_or_fail(f"needs the {prog!r} program (see DEBIAN_PACKAGES in test.sh)")


@dataclass
class SeqsHost:
    """A namespace with a TAP and ``seqs up`` running on it."""

    ns: Namespace
    proc: SeqsProcess
    #: the kernel's address on the TAP
    kernel_ip: str
    #: seqs' address
    ip: str
    #: seqs' MAC, as printed on its ready line
    mac: str
    tap: str
    pcap: pathlib.Path
    echo_port: int = ECHO_PORT
    #: (exit code, stdout, stderr) once stopped
    result: tuple[int, str, str] | None = None

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str, str]:
        """Stop seqs with ``sig`` (idempotent) and return its exit code, stdout and stderr.

        If it has not ended 10 s after ``sig`` it is killed (and the code is negative)."""
        if self.result is None:
            p = self.proc.proc
            if p.poll() is None:
                p.send_signal(sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=10.0)
            self.result = self.proc.stop(timeout=5.0)
        return self.result


def _subnet() -> tuple[str, str]:
    # A fresh namespace has no routes, so any 10/8 subnet is private to it; a random
    # one keeps tests from silently depending on a particular address.
    x, y = random.randint(1, 254), random.randint(1, 254)
    return f"10.{x}.{y}.1", f"10.{x}.{y}.2"


@pytest.fixture
def seqs_host(tmp_path: pathlib.Path) -> Iterator[SeqsHost]:
    kernel_ip, ip = _subnet()
    pcap = tmp_path / "seqs.pcap"
    with Namespace("seqs-it") as ns:
        ns.add_tap("tap0", f"{kernel_ip}/24")
        proc = ns.start_seqs(
            ["up", "--tap", "tap0", "--ip", f"{ip}/24", "--udp-echo", str(ECHO_PORT), "--pcap", str(pcap)]
        )
        m = _READY.match(proc.ready_line)
        host = SeqsHost(ns, proc, kernel_ip, ip, m["mac"] if m else "", "tap0", pcap)
        try:
            assert m is not None, f"unexpected ready line: {proc.ready_line!r}"
            assert m["ip"] == f"{ip}/24" and m["device"] == "tap0", proc.ready_line
            yield host
        finally:
            # Stop before the namespace goes; a crash of the stack during the test
            # (any test) shows up here as a non-zero exit or a traceback.
            code, _out, err = host.stop()
        if code != 0 or "Traceback" in err:
            pytest.fail(f"seqs up ended badly (exit {code}):\n{err}")
