"""TCP over a lossy link, simulated: two seqs stacks on the in-memory virtual
network (:mod:`seqs.phy.memory`) with seeded faults, on virtual time.

:func:`transfer` moves bytes between them — one way or both ways at once —
and closes cleanly; it returns what arrived (as SHA-256 digests), how long it
took in virtual and in wall-clock time, and the stacks for inspection.  The
simulation tier of the tests (``tests/test_tcp_sim.py``) checks integrity and
clean closes with it; :func:`bench_sim` (``seqs bench sim``) keeps the table
of throughput against loss rate and receive buffer.

Two throughputs come out, and they measure different things:

* **simulated MB/s** — bytes over *virtual* seconds: what the protocol achieves
  on the modelled link (rate, delay, loss), independent of the machine;
* **wall MB/s** — bytes over the wall-clock time the simulation took: the cost
  of the protocol processing in Python (both stacks, plus the simulator).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import time
from dataclasses import dataclass, field
from typing import Any

from ..phy.faults import FaultConfig
from ..phy.memory import VirtualNetwork
from ..stack import Stack
from ..tcp.connection import TcpConfig, TcpConnection

__all__ = ["Transfer", "bench_sim", "transfer"]

PORT = 5001
MB = 1_000_000


@dataclass
class Transfer:
    """The outcome of one :func:`transfer`."""

    size: int
    #: all bytes arrived in both directions asked for, both connections closed
    complete: bool
    virtual_seconds: float
    wall_seconds: float
    #: SHA-256 of what each side sent and of what the other side received
    sent_a: str
    received_b: str
    sent_b: str
    received_a: str
    bytes_a_to_b: int
    bytes_b_to_a: int
    client: TcpConnection
    server: TcpConnection | None
    a: Stack
    b: Stack
    net: VirtualNetwork
    #: why it stopped early, if it did
    stopped: str = ""
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def intact(self) -> bool:
        return self.sent_a == self.received_b and self.sent_b == self.received_a


def transfer(
    size: int,
    *,
    both_ways: bool = False,
    loss: float = 0.0,
    reorder: float = 0.0,
    duplicate: float = 0.0,
    corrupt: float = 0.0,
    delay: float = 0.001,
    jitter: float = 0.0,
    rate: float = 0.0,
    rcvbuf: int = 256 * 1024,
    sndbuf: int = 256 * 1024,
    congestion: str = "cubic",
    msl: float = 30.0,
    seed: int = 1,
    virtual_limit: float = 3600.0,
    wall_limit: float = 120.0,
    wait_time_wait: bool = True,
    setup: Any = None,
) -> Transfer:
    """Send ``size`` random bytes from A (10.0.0.1) to B (10.0.0.2) — and as many from B to
    A if ``both_ways`` — over a link impaired the same way in each direction, then close:
    each side shuts down writing when it has queued everything, and closes after the
    peer's FIN.  With ``wait_time_wait`` the run goes on until both connection tables are
    empty (after TIME-WAIT, 2*``msl``).  ``setup(net, a, b)`` runs before the first frame."""
    rng = random.Random(seed)
    config = TcpConfig(rcvbuf=rcvbuf, sndbuf=sndbuf, congestion=congestion, msl=msl)
    net = VirtualNetwork()
    a = Stack(ip="10.0.0.1/24", mac="02:00:00:00:00:01", rng=random.Random(rng.getrandbits(64)), tcp_config=config)
    b = Stack(ip="10.0.0.2/24", mac="02:00:00:00:00:02", rng=random.Random(rng.getrandbits(64)), tcp_config=config)

    def faults(salt: int) -> FaultConfig:
        return FaultConfig(loss=loss, reorder=reorder, duplicate=duplicate, corrupt=corrupt, delay=delay,
                           jitter=jitter, rate=rate, seed=rng.getrandbits(32) ^ salt)

    net.attach(a, faults(1))
    net.attach(b, faults(2))
    if setup is not None:
        setup(net, a, b)
    data_a = rng.randbytes(size)
    data_b = rng.randbytes(size) if both_ways else b""
    listener = b.tcp_listen(PORT)
    client = a.tcp_connect(("10.0.0.2", PORT))

    class Side:
        def __init__(self, stack: Stack, data: bytes) -> None:
            self.stack = stack
            self.data = memoryview(data)
            self.off = 0
            self.conn: TcpConnection | None = None
            self.got = hashlib.sha256()
            self.nbytes = 0
            self.eof = False
            self.shut = False
            self.closed = False

        def pump(self) -> None:
            c = self.conn
            if c is None or not c.established:
                return
            if self.off < len(self.data) and c.send_space > 0 and c.error is None and not self.shut:
                self.off += c.send(self.data[self.off : self.off + c.send_space])
            if self.off >= len(self.data) and not self.shut:
                c.shutdown_write()
                self.shut = True
            while not self.eof:
                try:
                    chunk = c.recv(1 << 20)
                except OSError:
                    self.eof = True
                    break
                if chunk is None:
                    break
                if not chunk:
                    self.eof = True
                    break
                self.got.update(chunk)
                self.nbytes += len(chunk)
            if self.eof and self.shut and not self.closed:
                c.close()
                self.closed = True
            self.stack.poll(net.now)

    sa = Side(a, data_a)
    sa.conn = client
    sb = Side(b, data_b)
    wall0 = time.perf_counter()
    wall_end = wall0 + wall_limit
    stopped = ""
    finished_at: float | None = None

    def step() -> bool:
        nonlocal stopped, finished_at
        if sb.conn is None:
            sb.conn = listener.accept()
        sa.pump()
        sb.pump()
        done = sa.closed and sb.closed and client.state_name in ("CLOSED", "TIME-WAIT") and (
            sb.conn is not None and sb.conn.state_name in ("CLOSED", "TIME-WAIT"))
        if done and finished_at is None:
            finished_at = net.now
        if done and (not wait_time_wait or (len(a.tcp) == 0 and len(b.tcp) == 0)):
            return True
        if time.perf_counter() > wall_end:
            stopped = f"wall-clock limit {wall_limit:g} s"
            return True
        if client.error is not None or (sb.conn is not None and sb.conn.error is not None):
            stopped = f"connection error {client.error or (sb.conn.error if sb.conn else None)}"
            return True
        return False

    if not net.run_until(step, timeout=virtual_limit) and not stopped:
        stopped = f"virtual-time limit {virtual_limit:g} s or nothing left to do"
    wall = time.perf_counter() - wall0
    complete = not stopped and sb.nbytes == len(data_a) and sa.nbytes == len(data_b)
    return Transfer(
        size=size,
        complete=complete,
        virtual_seconds=finished_at if finished_at is not None else net.now,
        wall_seconds=wall,
        sent_a=hashlib.sha256(data_a).hexdigest(),
        received_b=sb.got.hexdigest(),
        sent_b=hashlib.sha256(data_b).hexdigest(),
        received_a=sa.got.hexdigest(),
        bytes_a_to_b=sb.nbytes,
        bytes_b_to_a=sa.nbytes,
        client=client,
        server=sb.conn,
        a=a,
        b=b,
        net=net,
        stopped=stopped,
    )


#: the modelled link of the benchmark: 100 Mbit/s each way, 5 ms one-way delay
BENCH_RATE = 12.5e6
BENCH_DELAY = 0.005
BENCH_LOSSES = (0.0, 0.01, 0.02, 0.05, 0.10)
BENCH_BUFFERS = (64 * 1024, 256 * 1024, 1024 * 1024)


def bench_sim(args: argparse.Namespace) -> dict[str, Any]:
    """Throughput against loss rate and receive buffer, two seqs stacks on a simulated
    100 Mbit/s link with 10 ms RTT.  ``--count`` is the kilobytes moved per run (default
    20000: 20 MB), ``--seconds`` the wall-clock cap of one run (a capped run reports what
    it moved so far and says so)."""
    from . import print_table

    size = max(10, args.count) * 1000
    rows: list[dict[str, Any]] = []
    for loss in BENCH_LOSSES:
        for rcvbuf in BENCH_BUFFERS:
            r = transfer(size, loss=loss, rcvbuf=rcvbuf, sndbuf=max(rcvbuf, 256 * 1024), rate=BENCH_RATE,
                         delay=BENCH_DELAY, seed=1, wall_limit=args.seconds, virtual_limit=24 * 3600.0,
                         wait_time_wait=False)
            moved = r.bytes_a_to_b
            rows.append({
                "loss_pct": loss * 100,
                "rcvbuf_KiB": rcvbuf // 1024,
                "MB": moved / MB,
                "sim_MB_s": moved / MB / r.virtual_seconds if r.virtual_seconds else None,
                "wall_MB_s": moved / MB / r.wall_seconds if r.wall_seconds else None,
                "virtual_s": r.virtual_seconds,
                "wall_s": r.wall_seconds,
                "retransmits": r.client._rexmits,
                "intact": r.intact if r.complete else None,
                "complete": r.complete,
            })
    print_table(f"TCP over a simulated lossy link: {size / MB:g} MB A->B, 100 Mbit/s, 10 ms RTT, "
                "loss both ways, seed 1", rows,
                ["loss_pct", "rcvbuf_KiB", "sim_MB_s", "wall_MB_s", "virtual_s", "wall_s", "retransmits",
                 "complete", "intact"])
    print("sim_MB_s: bytes per virtual second (the protocol on the modelled link); "
          "wall_MB_s: bytes per wall-clock second (the cost of simulating both stacks in Python)")
    return {"unit": "MB/s (10^6 bytes)", "link": {"rate_bytes_s": BENCH_RATE, "one_way_delay_s": BENCH_DELAY},
            "bytes_per_run": size, "rows": rows}
