"""``seqs get``'s progress line, through the real command on a pseudo-terminal (no root).

The command runs in this process as ``main(["get", ...])``; its device is one end
of a socket pair (``seqs.cli.oneshot.open_device`` patched) and a seqs host on the
other end serves files over HTTP.  Standard error is the slave side of a pty in
raw mode, so ``isatty()`` is true and the bytes read from the master are exactly
what the command wrote: ``\\r``-redrawn lines with bytes, percentage, rate and
ETA, then the closing summary.  On a stream that is no terminal, and with
``-q`` on one, nothing is written at all.
"""

from __future__ import annotations

import io
import os
import pathlib
import pty
import re
import sys
import threading
import time
import tty
from collections.abc import Iterator
from typing import IO

import pytest

from seqs.cli import main
from seqs.http import HttpServer, StaticFiles
from seqs.phy import socketpair_devices
from seqs.runtime import Host

SIZE = 6_000_000
URL = "http://10.0.0.1/big.bin"
_REDRAW = re.compile(r"^big\.bin  \d+(\.\d)? [kMG]?B / 6\.0 MB +\d+%  \d+(\.\d)? [kMG]?B/s  ETA \d+:\d\d *$")
_DONE = re.compile(r"^big\.bin  6\.0 MB in \d+\.\d s \(\d+(\.\d)? [kMG]?B/s\) *\n$")


@pytest.fixture
def served(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[pathlib.Path]:
    """A seqs HTTP server at 10.0.0.1 on the far end of the device ``seqs get`` will open."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "big.bin").write_bytes(os.urandom(SIZE))
    ours, theirs = socketpair_devices()
    server = Host(theirs, ip="10.0.0.1/24")
    with server.lock:
        HttpServer(server.stack, StaticFiles(root), 80)
    monkeypatch.setattr("seqs.cli.oneshot.open_device", lambda args: ours)
    monkeypatch.chdir(tmp_path)
    try:
        yield root
    finally:
        server.close()


class Terminal:
    """A pty whose slave side is a text stream (raw mode: no \\n -> \\r\\n) and whose
    master side is drained into ``output`` by a thread, so the writer never blocks."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        tty.setraw(self.slave)
        self.stream: IO[str] = open(self.slave, "w", closefd=False)  # noqa: SIM115 - closed in close()
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the slave side is closed
                return
            if not data:
                return
            self._chunks.append(data)

    def close(self) -> str:
        self.stream.close()
        os.close(self.slave)
        self._reader.join(timeout=10)
        os.close(self.master)
        return b"".join(self._chunks).decode()


def test_progress_on_a_terminal_redraws_bytes_rate_and_eta(served: pathlib.Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    term = Terminal()
    assert term.stream.isatty()
    with monkeypatch.context() as m:  # sys.stderr back before the stream goes
        m.setattr(sys, "stderr", term.stream)
        start = time.monotonic()
        code = main(["get", "--tap", "fake0", "--ip", "10.0.0.2/24", URL])
        elapsed = time.monotonic() - start
    shown = term.close()
    assert code == 0, shown
    assert pathlib.Path("big.bin").read_bytes() == (served / "big.bin").read_bytes()

    assert shown.startswith("\r") and shown.endswith("\n") and shown.count("\n") == 1, repr(shown)
    *redraws, summary = shown[1:].split("\r")
    # The first piece is drawn at once, the last at 100 %, and in between at most ten a second.
    assert 2 <= len(redraws) <= 2 + 10 * elapsed + 1, (elapsed, redraws)
    for line in redraws:
        assert _REDRAW.match(line), repr(line)
    assert "  100%  " not in redraws[0] and redraws[-1].startswith("big.bin  6.0 MB / 6.0 MB  100%  ")
    assert redraws[-1].rstrip().endswith("ETA 0:00")
    # Each redraw pads with blanks over what the longer previous one left on the line.
    for before, after in zip(redraws, [*redraws[1:], summary], strict=True):
        assert len(after.rstrip("\n")) >= len(before.rstrip()), (before, after)
    assert _DONE.match(summary), repr(summary)


def test_no_progress_when_stderr_is_no_terminal(served: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    assert main(["get", "--tap", "fake0", "--ip", "10.0.0.2/24", "-o", "copy.bin", URL]) == 0
    assert err.getvalue() == ""
    assert pathlib.Path("copy.bin").stat().st_size == SIZE


def test_quiet_flag_silences_a_terminal(served: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    term = Terminal()
    with monkeypatch.context() as m:
        m.setattr(sys, "stderr", term.stream)
        code = main(["get", "-q", "--tap", "fake0", "--ip", "10.0.0.2/24", "-o", "quiet.bin", URL])
    assert term.close() == "" and code == 0
    assert pathlib.Path("quiet.bin").stat().st_size == SIZE
