"""Helpers of the attack and fault interop tests: a ``seqs up`` with chosen arguments in a
namespace of its own, its counters (``--stats-file`` on SIGUSR1), its memory (RSS from
/proc), and kernel-side clients run with ``ns.python`` — each bounded by a timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import random
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from seqs.netns import Namespace, SeqsProcess

HERE = pathlib.Path(__file__).resolve().parent


@dataclass
class UpHost:
    ns: Namespace
    proc: SeqsProcess
    kernel_ip: str
    ip: str
    mac: str
    stats_file: pathlib.Path

    def stats(self, timeout: float = 15.0) -> dict[str, Any]:
        """Ask for a snapshot (SIGUSR1) and read it once it is newer than the request."""
        # Each snapshot is a new file renamed into place: a new inode, even when two
        # land within one tick of the file system's clock (same mtime).
        before = self._version()
        os.kill(self.proc.pid, signal.SIGUSR1)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if (now := self._version()) is not None and now != before:
                with contextlib.suppress(ValueError):
                    data: dict[str, Any] = json.loads(self.stats_file.read_text())
                    return data
            time.sleep(0.02)
        raise TimeoutError(f"no stats snapshot from seqs up (running: {self.alive()})")

    def _version(self) -> tuple[int, int] | None:
        try:
            st = self.stats_file.stat()
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns

    def drops(self) -> dict[str, int]:
        d: dict[str, int] = self.stats()["stats"]["drops"]
        return d

    def rss_kb(self) -> int:
        for line in pathlib.Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def alive(self) -> bool:
        return self.proc.proc.poll() is None


@contextlib.contextmanager
def seqs_up(tmp: pathlib.Path, args: Sequence[str]) -> Iterator[UpHost]:
    """A namespace with ``tap0`` (the kernel side 10.X.Y.1/24) and ``seqs up --ip 10.X.Y.2/24 ARGS``."""
    x, y = random.randint(1, 254), random.randint(1, 254)
    kernel_ip, ip = f"10.{x}.{y}.1", f"10.{x}.{y}.2"
    stats = tmp / "stats.json"
    with Namespace("seqs-rel") as ns:
        ns.add_tap("tap0", f"{kernel_ip}/24")
        proc = ns.start_seqs(["up", "--tap", "tap0", "--ip", f"{ip}/24", "--stats-file", str(stats), *args])
        mac = proc.ready_line.split("mac=")[1].split()[0]
        host = UpHost(ns, proc, kernel_ip, ip, mac, stats)
        try:
            yield host
        except BaseException:
            code, _out, err = proc.stop(timeout=10.0)
            if code != 0 or "Traceback" in err:
                raise AssertionError(f"seqs up ended badly (exit {code}):\n{err[-4000:]}") from None
            raise
        code, _out, err = proc.stop(timeout=10.0)
        assert code == 0 and "Traceback" not in err, f"seqs up ended badly (exit {code}):\n{err[-4000:]}"


#: kernel-side TCP echo round trip: connect (retrying), send, read it back; prints JSON
TCP_ECHO_CLIENT = r"""
import json, socket, sys, time
host, port, size, tries, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
msg = bytes(range(256)) * (size // 256 + 1)
msg = msg[:size]
t0 = time.monotonic()
err = None
for attempt in range(1, tries + 1):
    try:
        s = socket.create_connection((host, port), timeout=timeout)
        s.sendall(msg)
        got = b""
        while len(got) < len(msg):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        s.close()
        print(json.dumps({"ok": got == msg, "attempts": attempt, "seconds": time.monotonic() - t0}))
        sys.exit(0)
    except OSError as e:
        err = repr(e)
print(json.dumps({"ok": False, "attempts": tries, "error": err, "seconds": time.monotonic() - t0}))
"""

#: kernel-side UDP echo round trip with retries (a flooded socket may drop some)
UDP_ECHO_CLIENT = r"""
import json, socket, sys, time
host, port, tries = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
t0 = time.monotonic()
for attempt in range(1, tries + 1):
    msg = b"legit %d" % attempt
    s.sendto(msg, (host, port))
    end = time.monotonic() + 0.5
    try:
        while time.monotonic() < end:
            data, _ = s.recvfrom(2048)
            if data == msg:
                print(json.dumps({"ok": True, "attempts": attempt, "seconds": time.monotonic() - t0}))
                sys.exit(0)
    except OSError:
        pass
print(json.dumps({"ok": False, "attempts": tries, "seconds": time.monotonic() - t0}))
"""


def run_json(ns: Namespace, code: str, *args: str, timeout: float = 60.0) -> dict[str, Any]:
    r = ns.python(code, *args, timeout=timeout)
    lines = r.stdout.strip().splitlines()
    assert lines, f"exit {r.returncode}: {r.stderr[-3000:]}"
    out: dict[str, Any] = json.loads(lines[-1])
    return out
