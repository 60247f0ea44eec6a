"""Network namespaces for interop tests and benchmarks (Linux, root).

A :class:`Namespace` is created on entry and deleted on exit — also when the
body fails — together with every process started in it.  Nothing here ever
addresses a host outside the namespace it made.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

__all__ = ["Namespace", "SeqsProcess", "interop_unavailable"]


def interop_unavailable() -> str | None:
    """Why interop tests cannot run here, or None if they can."""
    if sys.platform != "linux":
        return "needs Linux"
    if os.geteuid() != 0:
        return "needs root (network namespaces and TAP devices)"
    if not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun"
    if shutil.which("ip") is None:
        return "needs iproute2 (the ip command)"
    name = f"seqs-probe-{secrets.token_hex(3)}"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        return f"cannot create a network namespace: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


class SeqsProcess:
    """A ``seqs`` command running inside a namespace, started and awaited to ``ready``."""

    def __init__(self, proc: subprocess.Popen[str], ready_line: str) -> None:
        self.proc = proc
        self.ready_line = ready_line

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout: float = 10.0) -> tuple[int, str, str]:
        """SIGTERM, wait, and return (exit code, rest of stdout, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return self.proc.returncode, out, err


class Namespace:
    def __init__(self, prefix: str = "seqs") -> None:
        self.name = f"{prefix}-{os.getpid()}-{secrets.token_hex(3)}"
        self._procs: list[subprocess.Popen[str]] = []

    def __enter__(self) -> Namespace:
        self.ip("netns", "add", self.name, netns=False)
        self.ip("link", "set", "lo", "up")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for p in self._procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                with contextlib.suppress(Exception):
                    p.communicate(timeout=5)
        self._procs.clear()
        # Kill anything else still inside (e.g. a daemon a test started).
        r = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True)
        for pid in r.stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)

    # -- commands ----------------------------------------------------------------------

    def ip(self, *args: str, netns: bool = True) -> str:
        cmd = ["ip", "-n", self.name, *args] if netns else ["ip", *args]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")
        return r.stdout

    def exec_args(self, cmd: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *cmd]

    def run(self, cmd: Sequence[str], *, timeout: float = 60.0, check: bool = False,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.exec_args(cmd), capture_output=True, text=True, timeout=timeout,
                              check=check, input=input)

    def popen(self, cmd: Sequence[str], **kw: object) -> subprocess.Popen[str]:
        p: subprocess.Popen[str] = subprocess.Popen(  # type: ignore[call-overload]
            self.exec_args(cmd), text=True, **kw
        )
        self._procs.append(p)
        return p

    def python(self, code: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run Python code inside the namespace (the kernel's own sockets)."""
        return self.run([sys.executable, "-c", code, *args], timeout=timeout)

    def add_tap(self, name: str = "tap0", cidr: str = "10.0.0.1/24", mtu: int = 1500) -> None:
        """A TAP device whose kernel side has ``cidr``; seqs attaches to it by name."""
        self.ip("tuntap", "add", "dev", name, "mode", "tap")
        self.ip("link", "set", name, "mtu", str(mtu))
        self.ip("addr", "add", cidr, "dev", name)
        self.ip("link", "set", name, "up")

    def start_seqs(self, args: Sequence[str], *, ready_timeout: float = 15.0) -> SeqsProcess:
        """Start ``python -m seqs ARGS`` inside the namespace and wait for its ``ready`` line."""
        env = dict(os.environ)
        src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
        env["PYTHONUNBUFFERED"] = "1"
        p = self.popen([sys.executable, "-m", "seqs", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=env)
        assert p.stdout is not None
        fd = p.stdout.fileno()
        deadline = time.monotonic() + ready_timeout
        buf = b""
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.05)
            if r:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                buf += chunk
                if b"\n" in buf:
                    line = buf.split(b"\n", 1)[0].decode(errors="replace")
                    if line.startswith("ready"):
                        return SeqsProcess(p, line)
        if p.poll() is None:
            p.kill()
        out, err = p.communicate()
        raise RuntimeError(
            f"seqs {' '.join(args)} not ready within {ready_timeout}s (exit {p.returncode}): "
            f"{buf.decode(errors='replace')}{out}{err}"
        )
