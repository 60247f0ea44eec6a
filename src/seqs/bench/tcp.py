"""TCP benchmarks: seqs against the Linux kernel through a TAP device, with the
references measured in the same run.

``bulk``, ``rr`` and ``connrate`` measure the stack under test as a *server*
(the RFC 862/863/864 services of ``seqs up``) driven by a load generator on the
kernel's sockets (:mod:`seqs.bench.tcp_peer`), and measure the references the
same way with the same generator, one after the other in one run:

* **seqs** — ``seqs up`` on a TAP in a namespace, once per offload mode of
  ``seqs up --offload`` (rows for modes it does not offer are skipped, with a note);
* **kernel** — Linux serving Linux over a veth pair between two namespaces
  (the ceiling), with the veth's TSO/GSO/GRO on, and for ``bulk`` also off;
* **pytcp** — PyTCP (PyPI ``pytcp``, pinned to :data:`PYTCP_VERSION`) on the
  same TAP setup, installed into its own environment
  (``bench-results/.pytcp-venv``), never into seqs' own.

Each table is followed by the ratios seqs/kernel and seqs/PyTCP.  ``concurrency``
holds N idle connections open in one seqs stack and reports memory per
connection (RSS of ``seqs up``, and tracemalloc in a separate run of
:mod:`seqs.bench.seqs_host`) and the request/response rate beside them;
``memory-link`` moves bulk data between two seqs stacks on the in-memory
link inside this process (the protocol cost alone, no system calls).

Every transfer is bounded in bytes and in seconds; every namespace is removed
on the way out, also after an error.  CPU seconds come from /proc (the server)
and from ``os.times()`` in the load generator (user + system: the kernel's
TCP work done in the generator's context counts there).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import os
import re
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..netns import Namespace, interop_unavailable
from . import print_table
from .frames import _cpu_seconds

__all__ = [
    "BENCHMARKS",
    "PYTCP_VERSION",
    "add_arguments",
    "bench_bulk",
    "bench_concurrency",
    "bench_connrate",
    "bench_memory_link",
    "bench_rr",
]

#: the PyTCP release measured (its 2.7 line attaches to a TAP and has blocking sockets)
PYTCP_VERSION = "2.7.6"

_HERE = os.path.dirname(os.path.abspath(__file__))
_SRC = os.path.dirname(os.path.dirname(_HERE))
PEER_SCRIPT = os.path.join(_HERE, "tcp_peer.py")
PYTCP_SCRIPT = os.path.join(_HERE, "pytcp_host.py")

ECHO, DISCARD, CHARGEN = 7, 9, 19
KERNEL_IP, STACK_IP = "10.0.0.1", "10.0.0.2"
MB = 1_000_000
GB = 1_000_000_000
TO_STACK, FROM_STACK = "kernel->stack", "stack->kernel"

Row = dict[str, Any]


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("TCP benchmarks (bulk, rr, connrate, concurrency, memory-link)")
    g.add_argument("--size-mb", type=float, default=200.0,
                   help="bulk and memory-link: megabytes per transfer (default: %(default)s)")
    g.add_argument("--repeat", type=int, default=3,
                   help="transfers or runs per row (bulk, rr, connrate, concurrency, memory-link); the "
                   "tables show their median, min and max (default: %(default)s)")
    g.add_argument("--peers", default="seqs,kernel,pytcp",
                   help="stacks to measure, comma-separated from seqs, kernel, pytcp (default: %(default)s)")
    g.add_argument("--offload", default="off,csum,tso",
                   help="seqs offload modes to measure, those of `seqs up --offload` (default: %(default)s)")
    g.add_argument("--builds", default="pure",
                   help="seqs builds to measure, comma-separated: pure (this interpreter), mypyc (the optional "
                   "compiled build of setup.py, made in bench-results/.mypyc-venv; needs a source checkout and "
                   "a C compiler); rows of the compiled build have modes like tso+mypyc (default: %(default)s)")
    g.add_argument("--rr-seconds", type=float, default=2.0,
                   help="rr, connrate and concurrency: seconds per measurement (default: %(default)s); "
                   "--count caps transactions or connections per measurement")
    g.add_argument("--pytcp-seconds", type=float, default=5.0,
                   help="bulk: upper bound on one PyTCP transfer, which runs at a few MB/s "
                   "(default: %(default)s)")
    g.add_argument("--conns", default="100,1000,10000",
                   help="concurrency: numbers of idle connections, comma-separated (default: %(default)s)")
    g.add_argument("--pin", choices=("none", "same", "split"), default="none",
                   help="CPU placement of the stack under test and the load generator: left to the "
                   "scheduler, both on one CPU, or one CPU each (default: %(default)s)")
    g.add_argument("--profile", metavar="DIR",
                   help="bulk, rr, connrate: run seqs up under cProfile, write DIR/BENCH-seqs-MODE.prof and "
                   "print its top functions (the profiled rates are lower)")
    g.add_argument("--pytcp-python", metavar="PATH",
                   help="a Python with pytcp installed (default: create bench-results/.pytcp-venv with "
                   f"pytcp=={PYTCP_VERSION} from PyPI)")


# -- helpers -----------------------------------------------------------------------------------


def _need_interop() -> None:
    why = interop_unavailable()
    if why:
        raise RuntimeError(why)


def _peers(args: argparse.Namespace) -> list[str]:
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    bad = [p for p in peers if p not in ("seqs", "kernel", "pytcp")]
    if bad:
        raise ValueError(f"--peers: unknown {bad}; choose from seqs, kernel, pytcp")
    return peers


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = _SRC + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


class _Lines:
    """Line reader over a pipe with a timeout (select + os.read on the raw fd)."""

    def __init__(self, proc: subprocess.Popen[str], what: str) -> None:
        assert proc.stdout is not None
        self.proc = proc
        self.fd = proc.stdout.fileno()
        self.what = what
        self.buf = b""
        #: the line _start waited for
        self.last_ready = ""

    def readline(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"{self.what}: no answer within {timeout:.0f} s")
            r, _, _ = select.select([self.fd], [], [], min(left, 0.2))
            if r:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    raise RuntimeError(f"{self.what}: ended (exit {self.proc.wait()})")
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode(errors="replace")

    def json(self, timeout: float) -> dict[str, Any]:
        while True:
            line = self.readline(timeout)
            if line.startswith("{"):
                result: dict[str, Any] = json.loads(line)
                if "error" in result:
                    raise RuntimeError(f"{self.what}: {result['error']}")
                return result


def _start(ns: Namespace, cmd: list[str], ready: str, what: str, logdir: str,
           timeout: float = 20.0, cpus: set[int] | None = None,
           env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], _Lines]:
    """Start a server in ``ns`` and wait for a stdout line starting with ``ready``;
    its stderr goes to a file, quoted if it fails."""
    log = os.path.join(logdir, f"{what.replace(' ', '_')}.stderr")
    with open(log, "w") as err:
        proc = ns.popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.PIPE,
                        env=_env() if env is None else env, preexec_fn=_pinning(cpus))
    lines = _Lines(proc, what)
    try:
        while True:
            line = lines.readline(timeout)
            if line.startswith(ready):
                lines.last_ready = line
                return proc, lines
            if line.startswith("error"):
                why = line  # the server said why itself
                break
    except RuntimeError as e:
        with open(log) as f:
            why = f"{e}\n{f.read()[-2000:]}".strip()
    _stop(proc)
    raise RuntimeError(f"{what} did not start: {why}")


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _client(ns: Namespace, *argv: str | int | float, timeout: float, cpus: set[int] | None = None
            ) -> dict[str, Any]:
    """Run the load generator once in ``ns`` (on ``cpus``); its JSON line, or a RuntimeError."""
    cmd = [sys.executable, PEER_SCRIPT, *map(str, argv)]
    p = ns.popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_pinning(cpus))
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise RuntimeError(f"load generator {argv[0]} timed out after {timeout:.0f} s") from None
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            result: dict[str, Any] = json.loads(line)
            return result
    last = (err.strip().splitlines() or ["no output"])[-1]
    raise RuntimeError(f"load generator {argv[0]} failed (exit {p.returncode}): {last}")


def cpu_split(args: argparse.Namespace) -> tuple[set[int] | None, set[int] | None]:
    """(the stack's CPUs, the load generator's CPUs) for ``--pin``: None, None for
    ``none``; one CPU for both (``same``); or one each, apart (``split``).

    Measured on a 2-vCPU VM: ``split`` made every request/response a cross-CPU
    wakeup and cut the kernel's own rate from ~30,000 to ~3,000/s; ``same``
    helps round trips but puts a bulk transfer's two ends on one core.  So the
    default leaves placement to the scheduler."""
    pin = getattr(args, "pin", "none")
    allowed = sorted(os.sched_getaffinity(0))
    if pin == "none" or (pin == "split" and len(allowed) < 2):
        return None, None
    if pin == "same":
        return {allowed[-1]}, {allowed[-1]}
    return {allowed[-1]}, {allowed[0]}


def _pinning(cpus: set[int] | None) -> Callable[[], None] | None:
    if cpus is None:
        return None
    return functools.partial(os.sched_setaffinity, 0, cpus)


def _tune_kernel_side(ns: Namespace) -> None:
    """Many short connections from one address: every port, TIME-WAIT reuse."""
    ns.run(["sh", "-c", "echo 1024 65535 > /proc/sys/net/ipv4/ip_local_port_range; "
            "echo 1 > /proc/sys/net/ipv4/tcp_tw_reuse"], check=True)


@functools.cache
def seqs_offload_modes() -> list[str] | None:
    """The choices of ``seqs up --offload``, or None if it has no such option."""
    r = subprocess.run([sys.executable, "-m", "seqs", "up", "--help"], capture_output=True, text=True,
                       env=_env(), timeout=30)
    if "--offload" not in r.stdout:
        return None
    m = re.search(r"--offload\s+\{([^}]*)\}", r.stdout)
    return m.group(1).split(",") if m else ["off", "csum", "tso"]


def _pip_into(venv: str, what: str, installs: list[list[str]], env: dict[str, str] | None = None) -> None:
    """Make the benchmark's own environment ``venv`` (if missing) and run ``pip install``
    with each argument list in turn; RuntimeError saying why if that fails."""
    py = os.path.abspath(os.path.join(venv, "bin", "python"))
    try:
        if not os.path.exists(py):
            subprocess.run([sys.executable, "-m", "venv", venv], check=True, capture_output=True, text=True,
                           timeout=300)
        for extra in installs:
            subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", *extra], check=True,
                           capture_output=True, text=True, timeout=1800, env=env)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        detail = getattr(e, "stderr", "") or str(e)
        raise RuntimeError(f"cannot install {what} into {venv}: {detail.strip()[-500:]}") from None


def pytcp_python(args: argparse.Namespace) -> str:
    """An interpreter that imports PyTCP at :data:`PYTCP_VERSION`, installing it into
    ``bench-results/.pytcp-venv`` (pip, from PyPI) if there is none; RuntimeError if that fails."""
    if args.pytcp_python:
        return str(args.pytcp_python)
    venv = os.path.join("bench-results", ".pytcp-venv")
    py = os.path.abspath(os.path.join(venv, "bin", "python"))
    probe = "import importlib.metadata as m, pytcp; print(m.version('pytcp'))"
    if os.path.exists(py):
        r = subprocess.run([py, "-c", probe], capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.strip() == PYTCP_VERSION:
            return py
    print(f"installing pytcp=={PYTCP_VERSION} into {venv} (the benchmark's own environment)", file=sys.stderr)
    _pip_into(venv, f"pytcp=={PYTCP_VERSION}", [[f"pytcp=={PYTCP_VERSION}"]])
    return py


def _source_digest(root: str) -> str:
    """A digest of the sources a compiled build is made from (to know when to rebuild)."""
    h = hashlib.sha256()
    for base, _dirs, files in sorted(os.walk(os.path.join(root, "src", "seqs"))):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(base, name)
                h.update(path[len(root):].encode())
                with open(path, "rb") as f:
                    h.update(f.read())
    for name in ("setup.py", "pyproject.toml"):
        with open(os.path.join(root, name), "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def mypyc_python(args: argparse.Namespace) -> str:
    """An interpreter with the compiled build of these sources (setup.py, ``SEQS_MYPYC=1``)
    in ``bench-results/.mypyc-venv``, built (about two minutes) when missing or stale."""
    root = os.path.dirname(_SRC)
    if not os.path.exists(os.path.join(root, "setup.py")):
        raise RuntimeError("--builds mypyc needs a source checkout of seqs (setup.py next to src/)")
    venv = os.path.join("bench-results", ".mypyc-venv")
    py = os.path.abspath(os.path.join(venv, "bin", "python"))
    stamp = os.path.join(venv, "seqs-source.sha256")
    digest = _source_digest(root)
    if os.path.exists(py) and os.path.exists(stamp):
        with open(stamp) as f:
            if f.read().strip() == digest:
                return py
    print(f"building the mypyc build of seqs into {venv}", file=sys.stderr)
    _pip_into(venv, "seqs compiled with mypyc", [["mypy>=1.10", "setuptools>=68", "wheel"],
                                                 ["--no-build-isolation", "--force-reinstall", "--no-deps", root]],
              env={**os.environ, "SEQS_MYPYC": "1"})
    r = subprocess.run([py, "-c", "import seqs; print(seqs.BUILD)"], capture_output=True, text=True,
                       timeout=60, cwd=venv)
    if r.stdout.strip() != "mypyc":
        raise RuntimeError(f"the build in {venv} is not compiled: {r.stdout.strip()} {r.stderr.strip()[-300:]}")
    with open(stamp, "w") as f:
        f.write(digest)
    return py


# -- the stacks under test --------------------------------------------------------------------


@dataclass
class Target:
    """A stack serving echo (7), discard (9) and chargen (19) at ``host``; load
    generators run in ``ns`` (the kernel's side); ``pid`` is the process to charge."""

    peer: str
    mode: str
    ns: Namespace
    host: str
    pid: int
    client_cpus: set[int] | None = None

    @property
    def label(self) -> str:
        return f"{self.peer} ({self.mode})"

    def cpu(self) -> float:
        return _cpu_seconds(self.pid)


@dataclass
class Plan:
    """Which targets a run measures, and why some are missing."""

    specs: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: per seqs mode, the top of its cProfile (with --profile)
    profiles: dict[str, list[Row]] = field(default_factory=dict)


def _builds(args: argparse.Namespace) -> list[str]:
    builds = [b.strip() for b in getattr(args, "builds", "pure").split(",") if b.strip()]
    bad = [b for b in builds if b not in ("pure", "mypyc")]
    if bad or not builds:
        raise ValueError(f"--builds: unknown {bad}; choose from pure, mypyc")
    return builds


def _plan(args: argparse.Namespace, kernel_modes: tuple[str, ...]) -> Plan:
    plan = Plan()
    peers = _peers(args)
    if "seqs" in peers:
        builds = _builds(args)
        wanted = [m.strip() for m in args.offload.split(",") if m.strip()]
        offered = seqs_offload_modes()
        if offered is None:
            plan.specs.append(("seqs", "off"))
            skipped = [m for m in wanted if m != "off"]
            if skipped:
                plan.notes.append(f"seqs offload {', '.join(skipped)}: skipped, `seqs up --help` has no --offload "
                                  "(seqs runs without offload)")
        else:
            for build in builds:
                for m in wanted:
                    if m in offered:
                        plan.specs.append(("seqs", m if build == "pure" else f"{m}+{build}"))
                    elif build == builds[0]:
                        plan.notes.append(f"seqs offload {m}: skipped, `seqs up --offload` offers {offered}")
    if "kernel" in peers:
        plan.specs += [("kernel", m) for m in kernel_modes]
    if "pytcp" in peers:
        plan.specs.append(("pytcp", "-"))
    return plan


@contextlib.contextmanager
def target(peer: str, mode: str, args: argparse.Namespace, logdir: str,
           profile: str | None = None) -> Iterator[Target]:
    """Bring up one stack under test in fresh namespaces; remove them on exit.
    With ``profile`` (seqs only), ``seqs up`` runs under cProfile, which writes there
    when it stops."""
    stack_cpus, client_cpus = cpu_split(args)
    if peer == "kernel":
        with Namespace("seqs-bench-a") as a, Namespace("seqs-bench-b") as b:
            a.ip("link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", b.name)
            a.ip("addr", "add", f"{KERNEL_IP}/24", "dev", "veth0")
            b.ip("addr", "add", f"{STACK_IP}/24", "dev", "veth1")
            if mode == "offload off":
                for ns, dev in ((a, "veth0"), (b, "veth1")):
                    _veth_offload_off(ns, dev)
            a.ip("link", "set", "veth0", "up")
            b.ip("link", "set", "veth1", "up")
            _tune_kernel_side(a)
            proc, _ = _start(b, [sys.executable, PEER_SCRIPT, "serve", str(ECHO), str(DISCARD), str(CHARGEN)],
                             "ready", "kernel server", logdir, cpus=stack_cpus)
            try:
                yield Target(peer, mode, a, STACK_IP, proc.pid, client_cpus)
            finally:
                _stop(proc)
        return
    with Namespace(f"seqs-bench-{peer}") as ns:
        ns.add_tap("tap0", f"{KERNEL_IP}/24")
        _tune_kernel_side(ns)
        env = None
        if peer == "seqs":
            offload, _, build = mode.partition("+")
            python = sys.executable
            if build == "mypyc":
                python = mypyc_python(args)
                env = {k: v for k, v in _env().items() if k != "PYTHONPATH"}  # the compiled install, not src/
            prof = ["-m", "cProfile", "-o", profile] if profile else []
            cmd = [python, *prof, "-m", "seqs", "up", "--tap", "tap0", "--ip", f"{STACK_IP}/24",
                   "--tcp-echo", str(ECHO), "--discard", str(DISCARD), "--chargen", str(CHARGEN)]
            if seqs_offload_modes() is not None:
                cmd += ["--offload", offload]
        else:
            cmd = [pytcp_python(args), "-O", PYTCP_SCRIPT, "tap0", f"{STACK_IP}/24"]
        proc, _ = _start(ns, cmd, "ready", f"{peer} server", logdir, cpus=stack_cpus, env=env)
        try:
            yield Target(peer, mode, ns, STACK_IP, proc.pid, client_cpus)
        finally:
            _stop(proc)


_VETH_OFFLOAD_OFF = r"""
import ctypes, fcntl, socket, struct, sys
# legacy ethtool ioctls (include/uapi/linux/ethtool.h): set TSO, GSO, GRO
SIOCETHTOOL = 0x8946
for cmd in (0x1F, 0x24, 0x2C):
    buf = ctypes.create_string_buffer(struct.pack("II", cmd, 0))
    ifr = struct.pack("16sP", sys.argv[1].encode(), ctypes.addressof(buf)).ljust(40, b"\0")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifr)
"""


def _veth_offload_off(ns: Namespace, dev: str) -> None:
    """TSO, GSO and GRO off on ``dev`` (what ``ethtool -K DEV tso off gso off gro off`` does)."""
    r = ns.python(_VETH_OFFLOAD_OFF, dev, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"cannot switch veth offloads off: {r.stderr.strip()[-300:]}")


def _each_target(plan: Plan, args: argparse.Namespace, logdir: str, bench: str) -> Iterator[Target]:
    """The plan's targets, one at a time; one that cannot start becomes a note."""
    for peer, mode in plan.specs:
        profile = None
        if args.profile and peer == "seqs":
            os.makedirs(args.profile, exist_ok=True)
            profile = os.path.join(args.profile, f"{bench}-seqs-{mode}.prof")
        try:
            with target(peer, mode, args, logdir, profile) as t:
                yield t
        except RuntimeError as e:
            plan.notes.append(f"{peer} ({mode}): not measured: {e}")
        if profile and os.path.exists(profile):
            plan.profiles[mode] = profile_summary(profile)
            plan.notes.append(f"seqs ({mode}) ran under cProfile (slower than unprofiled): {profile}")


def profile_summary(path: str, top: int = 15) -> list[Row]:
    """The functions with the most time of their own in a cProfile file."""
    import pstats

    st = pstats.Stats(path)
    total = st.total_tt or 1.0  # type: ignore[attr-defined]
    stats: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = st.stats  # type: ignore[attr-defined]
    ranked = sorted(stats.items(), key=lambda item: -item[1][2])[:top]
    return [{"function": f"{func} ({os.path.basename(file)}:{line})" if line else func, "calls": ncalls,
             "own_s": tottime, "own_pct": 100 * tottime / total, "cumulative_s": cumtime}
            for (file, line, func), (_cc, ncalls, tottime, cumtime, _callers) in ranked]


def _print_profiles(plan: Plan) -> None:
    for mode, rows in plan.profiles.items():
        print_table(f"cProfile of seqs up ({mode}): top functions by own time", rows,
                    ["function", "calls", "own_s", "own_pct", "cumulative_s"])


def _median_row(samples: list[float]) -> tuple[float, float, float]:
    return statistics.median(samples), min(samples), max(samples)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _print_notes(notes: list[str]) -> None:
    for n in notes:
        print(f"note: {n}")


# -- bulk ---------------------------------------------------------------------------------------


def bench_bulk(args: argparse.Namespace) -> dict[str, Any]:
    _need_interop()
    nbytes = int(args.size_mb * MB)
    plan = _plan(args, ("offload on", "offload off"))
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="seqs-bench-") as logdir:
        for t in _each_target(plan, args, logdir, "bulk"):
            bound = args.pytcp_seconds if t.peer == "pytcp" else args.seconds
            samples: dict[str, list[dict[str, Any]]] = {TO_STACK: [], FROM_STACK: []}
            for _ in range(max(1, args.repeat)):
                for direction, mode, port in ((TO_STACK, "send", DISCARD), (FROM_STACK, "recv", CHARGEN)):
                    cpu0 = t.cpu()
                    try:
                        r = _client(t.ns, mode, t.host, port, nbytes, bound, timeout=2 * bound + 30,
                                    cpus=t.client_cpus)
                    except RuntimeError as e:
                        plan.notes.append(f"{t.label} {direction}: {e}")
                        continue
                    r["server_cpu"] = t.cpu() - cpu0
                    samples[direction].append(r)
            for direction, runs in samples.items():
                runs = [r for r in runs if r["bytes"] > 0 and r["seconds"] > 0]
                if not runs:
                    continue
                mbps = [r["bytes"] / r["seconds"] / MB for r in runs]
                med, lo, hi = _median_row(mbps)
                rows.append({
                    "stack": t.peer, "mode": t.mode, "direction": direction, "runs": len(runs),
                    "MB_per_run": statistics.median(r["bytes"] for r in runs) / MB,
                    "MB_s": med, "MB_s_min": lo, "MB_s_max": hi,
                    "stack_cpu_s_per_GB": statistics.median(r["server_cpu"] / r["bytes"] * GB for r in runs),
                    "client_cpu_s_per_GB": statistics.median(r["cpu"] / r["bytes"] * GB for r in runs),
                    "bounded_by_time": not all(r["complete"] for r in runs),
                })
    print_table(f"bulk TCP, {args.size_mb:g} MB per transfer (or {args.seconds:g} s; PyTCP "
                f"{args.pytcp_seconds:g} s), MTU 1500, median of {args.repeat}",
                rows, ["stack", "mode", "direction", "MB_s", "MB_s_min", "MB_s_max", "MB_per_run",
                       "stack_cpu_s_per_GB", "client_cpu_s_per_GB", "bounded_by_time"])
    print("stack CPU: of the stack's process (for kernel: the Python server on the far side of the veth), "
          "including the kernel's\nwork in its system calls (a TAP write runs the kernel's receive path); "
          "bounded_by_time: MB/s from the bytes acknowledged\nwhen the time bound came")
    ratios = _ratios(rows, "MB_s", ("direction",))
    _print_ratios(ratios, "bulk MB/s", ["direction"])
    _print_profiles(plan)
    _print_notes(plan.notes)
    return {"unit": "MB/s (10^6 bytes)", "size_mb": args.size_mb, "repeat": args.repeat,
            "pytcp_version": PYTCP_VERSION, "rows": rows, "ratios": ratios, "notes": plan.notes,
            "profiles": plan.profiles}


def _ratios(rows: list[Row], metric: str, keys: tuple[str, ...]) -> list[Row]:
    """For each seqs row: its ``metric`` over the same row (same ``keys``) of each reference."""
    out: list[Row] = []
    for r in rows:
        if r["stack"] != "seqs":
            continue
        ratio: Row = {"seqs_mode": r["mode"], **{k: r[k] for k in keys}}
        for ref in rows:
            if ref["stack"] == "seqs" or any(ref[k] != r[k] for k in keys):
                continue
            name = "vs_pytcp" if ref["stack"] == "pytcp" else f"vs_kernel_{ref['mode'].replace(' ', '_')}"
            ratio[name] = _ratio(r[metric], ref[metric])
        out.append(ratio)
    return out


def _print_ratios(ratios: list[Row], what: str, keys: list[str]) -> None:
    cols = ["seqs_mode", *keys]
    for r in ratios:
        cols += [c for c in r if c.startswith("vs_") and c not in cols]
    if not any(c.startswith("vs_") for c in cols):
        return  # no reference measured
    print_table(f"ratios: seqs {what} / reference {what} (same run)", ratios, cols)


# -- request/response and connection rate -----------------------------------------------------


def _rate_row(t: Target, runs: list[dict[str, Any]], count: str) -> Row:
    """Median (min, max) rate over runs, and CPU per operation of the stack and of the client."""
    med, lo, hi = _median_row([r[count] / r["seconds"] for r in runs])
    return {
        "stack": t.peer, "mode": t.mode, "runs": len(runs), count: sum(r[count] for r in runs),
        "per_s": med, "per_s_min": lo, "per_s_max": hi,
        "stack_cpu_us": statistics.median(r["server_cpu"] / r[count] * 1e6 for r in runs),
        "client_cpu_us": statistics.median(r["cpu"] / r[count] * 1e6 for r in runs),
    }


def _run_measured(t: Target, plan: Plan, what: str, *argv: str | int | float,
                  seconds: float) -> dict[str, Any] | None:
    cpu0 = t.cpu()
    try:
        r = _client(t.ns, *argv, timeout=seconds + 60, cpus=t.client_cpus)
    except RuntimeError as e:
        plan.notes.append(f"{t.label} {what}: {e}")
        return None
    r["server_cpu"] = t.cpu() - cpu0
    return r


def bench_rr(args: argparse.Namespace) -> dict[str, Any]:
    _need_interop()
    plan = _plan(args, ("offload on",))
    rows: list[Row] = []
    sizes = (1, 1024)
    with tempfile.TemporaryDirectory(prefix="seqs-bench-") as logdir:
        for t in _each_target(plan, args, logdir, "rr"):
            samples: dict[int, list[dict[str, Any]]] = {size: [] for size in sizes}
            for _ in range(max(1, args.repeat)):
                for size in sizes:
                    r = _run_measured(t, plan, f"rr {size} B", "rr", t.host, ECHO, size, max(1, args.count),
                                      args.rr_seconds, seconds=args.rr_seconds)
                    if r is not None and r["transactions"]:
                        samples[size].append(r)
            for size, runs in samples.items():
                if runs:
                    row = _rate_row(t, runs, "transactions")
                    row["size"] = size
                    row["us_per_transaction"] = 1e6 / row["per_s"]
                    rows.append(row)
    print_table(f"request/response on one TCP connection (kernel client -> echo server), "
                f"median of {args.repeat} runs of {args.rr_seconds:g} s (or {args.count} transactions)",
                rows, ["stack", "mode", "size", "per_s", "per_s_min", "per_s_max", "us_per_transaction",
                       "stack_cpu_us", "client_cpu_us"])
    ratios = _ratios(rows, "per_s", ("size",))
    _print_ratios(ratios, "transactions/s", ["size"])
    _print_profiles(plan)
    _print_notes(plan.notes)
    return {"unit": "transactions/s", "pytcp_version": PYTCP_VERSION, "rows": rows, "ratios": ratios,
            "notes": plan.notes, "profiles": plan.profiles}


def bench_connrate(args: argparse.Namespace) -> dict[str, Any]:
    _need_interop()
    plan = _plan(args, ("offload on",))
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="seqs-bench-") as logdir:
        for t in _each_target(plan, args, logdir, "connrate"):
            runs = []
            for _ in range(max(1, args.repeat)):
                r = _run_measured(t, plan, "connrate", "connrate", t.host, ECHO, max(1, args.count),
                                  args.rr_seconds, seconds=args.rr_seconds)
                if r is not None and r["connections"]:
                    runs.append(r)
            if runs:
                rows.append(_rate_row(t, runs, "connections"))
    print_table(f"connection rate (connect, 1-byte request/response, close), median of {args.repeat} runs "
                f"of {args.rr_seconds:g} s (or {args.count} connections)",
                rows, ["stack", "mode", "per_s", "per_s_min", "per_s_max", "connections", "stack_cpu_us",
                       "client_cpu_us"])
    ratios = _ratios(rows, "per_s", ())
    _print_ratios(ratios, "connections/s", [])
    _print_profiles(plan)
    _print_notes(plan.notes)
    return {"unit": "connections/s", "pytcp_version": PYTCP_VERSION, "rows": rows, "ratios": ratios,
            "notes": plan.notes, "profiles": plan.profiles}


# -- concurrency --------------------------------------------------------------------------------


def _rss(pid: int) -> int:
    from .seqs_host import rss_bytes

    return rss_bytes(pid)


def _steps(args: argparse.Namespace) -> list[int]:
    steps = sorted({int(x) for x in args.conns.split(",") if x.strip()})
    if not steps or steps[0] < 1:
        raise ValueError("--conns: positive numbers, comma-separated")
    return steps


def bench_concurrency(args: argparse.Namespace) -> dict[str, Any]:
    """Idle connections held open by a kernel client; per step, seqs' memory and the
    request/response rate on one more connection."""
    _need_interop()
    steps = _steps(args)
    open_bound = max(60.0, steps[-1] / 100)  # seconds to open one step's connections
    rows: list[Row] = []
    notes: list[str] = []
    stack_cpus, client_cpus = cpu_split(args)
    with tempfile.TemporaryDirectory(prefix="seqs-bench-") as logdir:
        # Pass 1: the real `seqs up`: RSS and request/response rate at each N.
        with Namespace("seqs-bench-conc") as ns:
            ns.add_tap("tap0", f"{KERNEL_IP}/24")
            _tune_kernel_side(ns)
            server, _ = _start(ns, [sys.executable, "-m", "seqs", "up", "--tap", "tap0", "--ip", f"{STACK_IP}/24",
                                    "--tcp-echo", str(ECHO)], "ready", "seqs server", logdir, cpus=stack_cpus)
            holders = _Holders(ns, logdir, client_cpus)
            try:
                rows.append(_concurrency_step(0, server.pid, holders, args, open_bound))
                for n in steps:
                    rows.append(_concurrency_step(n, server.pid, holders, args, open_bound))
            finally:
                holders.close()
                _stop(server)
        base = rows[0]
        for r in rows[1:]:
            r["rss_per_conn"] = (r["rss"] - base["rss"]) / r["N"]
        # Pass 2: the same stack built in-process with tracemalloc on (slow, so no rates).
        try:
            traced = _concurrency_traced(steps, logdir, open_bound)
        except RuntimeError as e:
            notes.append(f"tracemalloc pass: {e}")
            traced = {}
        for r in rows[1:]:
            r["traced_per_conn"] = traced.get(r["N"])
    for r in rows:
        r["rss_MB"] = r["rss"] / MB
    print_table("concurrency: N idle connections to `seqs up` (echo), request/response on one more",
                rows, ["N", "open_s", "connects_per_s", "rss_MB", "rss_per_conn", "traced_per_conn", "rr_per_s",
                       "rr_per_s_min", "rr_per_s_max", "stack_cpu_us_per_rr"])
    print("rss_per_conn, traced_per_conn: bytes per connection over the N=0 line (RSS of seqs up; Python heap "
          "by tracemalloc in a separate run)")
    _print_notes(notes)
    return {"unit": "bytes; transactions/s", "rows": rows, "notes": notes}


def _send(proc: subprocess.Popen[str], line: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


class _Holders:
    """Kernel-side processes holding idle connections (``tcp_peer.py hold``): as
    many as the descriptor limit requires, the first one also running rr."""

    def __init__(self, ns: Namespace, logdir: str, cpus: set[int] | None) -> None:
        self.ns, self.logdir, self.cpus = ns, logdir, cpus
        self.procs: list[tuple[subprocess.Popen[str], _Lines, int]] = []
        self.held: list[int] = []
        self._spawn()

    def _spawn(self) -> None:
        proc, lines = _start(self.ns, [sys.executable, PEER_SCRIPT, "hold", STACK_IP, str(ECHO)], "{",
                             f"hold client {len(self.procs)}", self.logdir, cpus=self.cpus)
        # _start consumed the ready line; its capacity was printed with it
        self.procs.append((proc, lines, _capacity(lines)))
        self.held.append(0)

    def open(self, n: int, timeout: float) -> tuple[int, float]:
        """Hold ``n`` connections in all; (newly opened, seconds)."""
        opened, seconds = 0, 0.0
        i = 0
        while sum(self.held) < n:
            if i == len(self.procs):
                self._spawn()
            proc, lines, capacity = self.procs[i]
            want = min(capacity, self.held[i] + n - sum(self.held))
            if want > self.held[i]:
                _send(proc, f"open {want}")
                r = lines.json(timeout)
                opened += r["opened"]
                seconds += r["seconds"]
                self.held[i] = r["open"]
            i += 1
        return opened, seconds

    def rr(self, size: int, count: int, seconds: float) -> dict[str, Any]:
        proc, lines, _ = self.procs[0]
        _send(proc, f"rr {size} {count} {seconds}")
        return lines.json(seconds + 60)

    def close(self) -> None:
        for proc, _, _ in self.procs:
            with contextlib.suppress(OSError):
                _send(proc, "quit")
            _stop(proc)


def _capacity(lines: _Lines) -> int:
    return int(json.loads(lines.last_ready)["capacity"])


def _concurrency_step(n: int, server_pid: int, holders: _Holders, args: argparse.Namespace,
                      open_bound: float) -> Row:
    row: Row = {"N": n}
    if n:
        opened, seconds = holders.open(n, open_bound)
        row["open_s"] = seconds
        row["connects_per_s"] = opened / seconds if seconds else None
    time.sleep(0.2)  # let the last handshakes' delayed ACKs go out
    row["rss"] = _rss(server_pid)
    rates, cpus = [], []
    for _ in range(max(1, args.repeat)):
        cpu0 = _cpu_seconds(server_pid)
        r = holders.rr(1, max(1, args.count), args.rr_seconds)
        cpus.append((_cpu_seconds(server_pid) - cpu0) / r["transactions"] * 1e6)
        rates.append(r["transactions"] / r["seconds"])
    row["rr_per_s"], row["rr_per_s_min"], row["rr_per_s_max"] = _median_row(rates)
    row["stack_cpu_us_per_rr"] = statistics.median(cpus)
    return row


def _concurrency_traced(steps: list[int], logdir: str, open_bound: float) -> dict[int, float]:
    out: dict[int, float] = {}
    with Namespace("seqs-bench-mem") as ns:
        ns.add_tap("tap0", f"{KERNEL_IP}/24")
        _tune_kernel_side(ns)
        host, hlines = _start(ns, [sys.executable, "-m", "seqs.bench.seqs_host", "tap0", f"{STACK_IP}/24",
                                   str(ECHO)], "{", "seqs tracemalloc host", logdir)
        try:
            holders = _Holders(ns, logdir, None)
            try:
                _send(host, "mem")
                base = hlines.json(30)
                for n in steps:
                    holders.open(n, open_bound * 3)  # tracemalloc slows seqs down
                    time.sleep(0.2)
                    _send(host, "mem")
                    m = hlines.json(60)
                    out[n] = (m["traced"] - base["traced"]) / n
                _send(host, "quit")
            finally:
                holders.close()
        finally:
            _stop(host)
    return out


# -- two seqs stacks on the in-memory link -------------------------------------------------------


def bench_memory_link(args: argparse.Namespace) -> dict[str, Any]:
    """Bulk data between two seqs stacks on the in-memory link in this process: the
    protocol's cost alone (both stacks' work, no device, no system call)."""
    nbytes = int(args.size_mb * MB)
    runs = [_memory_transfer(nbytes, args.seconds) for _ in range(max(1, args.repeat))]
    mbps = [r["bytes"] / r["seconds"] / MB for r in runs]
    med, lo, hi = _median_row(mbps)
    row: Row = {
        "MB_per_run": statistics.median(r["bytes"] for r in runs) / MB,
        "MB_s": med, "MB_s_min": lo, "MB_s_max": hi,
        "cpu_s_per_GB": statistics.median(r["cpu"] / r["bytes"] * GB for r in runs),
        "frames_per_s": statistics.median(r["frames"] / r["seconds"] for r in runs),
        "cpu_us_per_frame": statistics.median(r["cpu"] / r["frames"] * 1e6 for r in runs),
        "bounded_by_time": not all(r["complete"] for r in runs),
    }
    print_table(f"in-memory link: two seqs stacks in one process, {args.size_mb:g} MB one way "
                f"(or {args.seconds:g} s), median of {len(runs)}",
                [row], ["MB_s", "MB_s_min", "MB_s_max", "MB_per_run", "cpu_s_per_GB", "frames_per_s",
                        "cpu_us_per_frame", "bounded_by_time"])
    print("CPU counts both stacks (sender and receiver) and the virtual link; frames: data and ACKs")
    return {"unit": "MB/s (10^6 bytes)", "rows": [row], "runs": runs}


def _memory_transfer(nbytes: int, seconds: float) -> dict[str, Any]:
    import random

    from ..phy.memory import VirtualNetwork
    from ..stack import Stack
    from ..tcp.connection import TcpConnection

    rng = random.Random(1)
    net = VirtualNetwork()
    a = Stack(ip="10.0.0.1/24", mac="02:00:00:00:00:01", rng=random.Random(rng.random()))
    b = Stack(ip="10.0.0.2/24", mac="02:00:00:00:00:02", rng=random.Random(rng.random()))
    net.attach(a)
    net.attach(b)
    listener = b.tcp_listen(DISCARD)
    conn = a.tcp_connect(("10.0.0.2", DISCARD))
    block = memoryview(bytes(1 << 20))
    sink = bytearray(1 << 20)
    server: list[TcpConnection] = []
    state = {"sent": 0, "got": 0, "closed": False}
    t0 = time.monotonic()
    cpu0 = time.process_time()
    deadline = t0 + seconds

    def step() -> bool:
        if conn.established and not state["closed"]:
            while state["sent"] < nbytes and conn.send_space > 0:
                n = conn.send(block[: min(len(block), nbytes - state["sent"])])
                if n <= 0:
                    break
                state["sent"] += n
            if state["sent"] >= nbytes or time.monotonic() > deadline:
                conn.close()
                state["closed"] = True
            a.poll(net.now)
        if not server and (s := listener.accept()) is not None:
            server.append(s)
        if server:
            while got := server[0].recv_into(sink):
                state["got"] += got
            return server[0].peer_eof
        return False

    frames0 = net.frames_delivered
    net.run_until(step, timeout=3600.0)
    elapsed = time.monotonic() - t0
    return {"bytes": state["got"], "seconds": elapsed, "cpu": time.process_time() - cpu0,
            "frames": net.frames_delivered - frames0, "complete": state["got"] >= nbytes,
            "virtual_seconds": net.now}


def other_runnable(samples: int = 10, interval: float = 0.05) -> float:
    """Tasks runnable on the machine besides this one (mean of /proc/loadavg's
    instantaneous count over ``samples``): other people's work on a shared machine."""
    total = 0
    for i in range(samples):
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
        total += max(0, running - 1)
        if i + 1 < samples:
            time.sleep(interval)
    return total / samples


def _with_load(fn: Callable[[argparse.Namespace], dict[str, Any]]) -> Callable[[argparse.Namespace], dict[str, Any]]:
    """Record how busy the machine was around a benchmark: on a shared machine the
    absolute numbers move with that, the ratios measured in one run much less."""

    @functools.wraps(fn)
    def run(args: argparse.Namespace) -> dict[str, Any]:
        before = other_runnable()
        result = fn(args)
        after = other_runnable()
        result["other_runnable_tasks"] = {"before": before, "after": after}
        busy = max(before, after)
        if busy >= 0.5:
            print(f"note: the machine was busy ({busy:.1f} other runnable tasks on {os.cpu_count()} CPUs): "
                  "compare the ratios measured in this run, not absolute numbers across runs")
        return result

    return run


BENCHMARKS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "bulk": _with_load(bench_bulk),
    "rr": _with_load(bench_rr),
    "connrate": _with_load(bench_connrate),
    "concurrency": _with_load(bench_concurrency),
    "memory-link": _with_load(bench_memory_link),
}
