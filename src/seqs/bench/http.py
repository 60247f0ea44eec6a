"""``seqs bench http``: HTTP download rates through a TAP in a network namespace.

Rows, each the median of ``--repeat`` downloads of ``--size-mb`` megabytes of
random data, per offload mode of ``--offload`` (off and tso by default):

* **curl <- seqs up --http** — the kernel's curl downloads from seqs' event-driven
  HTTP server (rate from curl's own ``time_total``);
* **seqs get <- http.server** — ``seqs get`` downloads from Python's
  ``http.server`` on the kernel side (rate from ``seqs get -v``: the transfer,
  not the start-up);
* **curl <- http.server** — the reference: the same kernel server and file to
  the kernel's curl, without seqs (what the server side can do at all).

Every download is bounded by ``--seconds``; the namespace and every process in
it are removed on the way out.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from ..netns import Namespace, interop_unavailable
from . import print_table

__all__ = ["bench_http"]

_SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KERNEL_IP, STACK_IP = "10.0.0.1", "10.0.0.2"
MB = 1_000_000
_RATE = re.compile(r"\(([\d.]+) MB/s\)")


def _modes(args: argparse.Namespace) -> list[str]:
    given = getattr(args, "offload", "off,csum,tso")
    modes = [m.strip() for m in given.split(",") if m.strip() in ("off", "csum", "tso")]
    if given == "off,csum,tso":  # the TCP benchmarks' default: HTTP is measured off and with TSO
        modes = ["off", "tso"]
    return modes or ["off", "tso"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = _SRC + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _wait_port(ns: Namespace, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ns.run(["bash", "-c", f"exec 3<>/dev/tcp/{KERNEL_IP}/{port}"], timeout=5).returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {KERNEL_IP}:{port}")


def _curl(ns: Namespace, url: str, size: int, seconds: float) -> float:
    r = ns.run(["curl", "-sS", "--max-time", str(seconds), "-o", "/dev/null", "-w",
                "%{size_download} %{time_total}", url], timeout=seconds + 10)
    got, took = r.stdout.split() if r.returncode == 0 else ("0", "0")
    if int(got) != size:
        raise RuntimeError(f"curl {url}: {got} of {size} bytes: {r.stderr.strip()}")
    return size / MB / float(took)


def _seqs_get(ns: Namespace, mode: str, url: str, seconds: float) -> float:
    cmd = [sys.executable, "-m", "seqs", "get", "--tap", "tap0", "--ip", f"{STACK_IP}/24", "--offload", mode,
           "--timeout", str(seconds), "-v", "-o", "/dev/null", url]
    r = subprocess.run(ns.exec_args(cmd), capture_output=True, text=True, timeout=seconds + 30, env=_env())
    m = _RATE.search(r.stderr)
    if r.returncode != 0 or m is None:
        raise RuntimeError(f"seqs get failed: {r.stderr.strip()}")
    return float(m.group(1))


def _row(what: str, mode: str, rates: list[float], size_mb: float) -> dict[str, Any]:
    return {"download": what, "offload": mode, "MB": size_mb, "runs": len(rates),
            "MB_s": statistics.median(rates), "MB_s_min": min(rates), "MB_s_max": max(rates)}


def bench_http(args: argparse.Namespace) -> dict[str, Any]:
    why = interop_unavailable()
    if why:
        raise RuntimeError(why)
    if shutil.which("curl") is None:
        raise RuntimeError("needs curl (apt-get install curl)")
    size_mb = float(getattr(args, "size_mb", 100.0))
    size = int(size_mb * MB)
    repeat = max(1, int(getattr(args, "repeat", 3)))
    seconds = float(args.seconds) if args.seconds else 60.0
    seconds = max(seconds, 30.0)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="seqs-bench-http-") as root, Namespace("seqs-bench-http") as ns:
        with open(os.path.join(root, "file.bin"), "wb") as f:
            left = size
            while left > 0:
                n = min(left, 16 << 20)
                f.write(os.urandom(n))
                left -= n
        ns.add_tap("tap0", f"{KERNEL_IP}/24")
        kernel_server = ns.popen([sys.executable, "-m", "http.server", "8000", "--bind", KERNEL_IP,
                                  "--directory", root], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_port(ns, 8000)
            rates = [_curl(ns, f"http://{KERNEL_IP}:8000/file.bin", size, seconds) for _ in range(repeat)]
            rows.append(_row("curl <- http.server (kernel only)", "-", rates, size_mb))
            for mode in _modes(args):
                up = ns.start_seqs(["up", "--tap", "tap0", "--ip", f"{STACK_IP}/24", "--http", root,
                                    "--offload", mode])
                try:
                    rates = [_curl(ns, f"http://{STACK_IP}/file.bin", size, seconds) for _ in range(repeat)]
                finally:
                    up.stop()
                rows.append(_row("curl <- seqs up --http", mode, rates, size_mb))
                rates = [_seqs_get(ns, mode, f"http://{KERNEL_IP}:8000/file.bin", seconds) for _ in range(repeat)]
                rows.append(_row("seqs get <- http.server", mode, rates, size_mb))
        finally:
            kernel_server.kill()
            kernel_server.wait(5)
    print_table(f"HTTP downloads of {size_mb:g} MB through a TAP (MB/s, median of {repeat})", rows,
                ["download", "offload", "MB_s", "MB_s_min", "MB_s_max"])
    return {"unit": "MB/s (10^6 bytes)", "size_mb": size_mb, "repeat": repeat, "rows": rows}


BENCHMARKS = {"http": bench_http}
