"""seqs as a TCP client of a kernel server: run inside the test's network namespace
(``PYTHONPATH=src python seqs_client.py MODE --tap tap0 --ip 10.X.Y.2/24 ...``).

It drives the sans-IO API with the blocking :class:`~seqs.runtime.poller.Runner`
(no socket facade): ``upload`` sends ``--nbytes`` of the seeded stream and
half-closes; ``download`` reads to the server's FIN and hashes.  Either way it
then closes and waits until our FIN is acknowledged, and prints one JSON line.
Every wait is bounded by ``--timeout``; on expiry it prints the connection's
state and exits non-zero.
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from tcp_streams import Sink, stream

from seqs import Stack
from seqs.phy import FaultConfig, FaultyDevice
from seqs.phy.base import Device
from seqs.phy.tap import TapDevice
from seqs.runtime.poller import Runner
from seqs.tcp.connection import TcpConnection


def fail(msg: str, **fields: Any) -> None:
    print(json.dumps({"error": msg, **fields}), flush=True)
    sys.exit(1)


class Client:
    def __init__(self, args: argparse.Namespace) -> None:
        device: Device = TapDevice(args.tap)
        if args.loss:
            device = FaultyDevice(device, tx=FaultConfig(loss=args.loss, seed=args.fault_seed),
                                  rx=FaultConfig(loss=args.loss, seed=args.fault_seed + 1))
        self.device = device
        self.stack = Stack(ip=args.ip, mtu=device.mtu, vnet_hdr=device.vnet_hdr)
        self.runner = Runner(self.stack, device)
        self.timeout = args.timeout

    def call(self, fn: Callable[[], Any]) -> Any:
        """Use the stack between turns: at the current time, and send what results."""
        with self.runner.lock:
            iface = self.stack.iface
            iface.now = max(iface.now, self.runner.clock())
            try:
                return fn()
            finally:
                self.runner.kick()

    def run(self, until: Callable[[], bool], what: str, conn: TcpConnection | None = None) -> None:
        if not self.runner.run(until=until, timeout=self.timeout):
            fail(f"timed out: {what}", state=conn.state_name if conn else None,
                 connections=len(self.stack.tcp))

    def connect(self, host: str, port: int) -> TcpConnection:
        """Connect, retrying while refused (the server may still be starting)."""
        deadline = time.monotonic() + self.timeout
        while True:
            conn: TcpConnection = self.call(lambda: self.stack.tcp_connect((host, port)))
            self.run(lambda c=conn: c.established or c.closed, "connect", conn)
            if conn.established:
                return conn
            if conn.error != errno.ECONNREFUSED or time.monotonic() > deadline:
                fail(f"connect failed: {errno.errorcode.get(conn.error or 0, conn.error)}")
            self.runner.run(timeout=0.1)

    def finish(self, conn: TcpConnection) -> None:
        """close(), then wait until the FIN is acknowledged (TIME-WAIT or CLOSED)."""
        self.call(conn.close)
        self.run(lambda: conn.state_name in ("TIME-WAIT", "CLOSED"), "close", conn)
        if conn.error is not None:
            fail(f"connection error {errno.errorcode.get(conn.error, conn.error)}")

    def close(self) -> None:
        self.runner.close()


def upload(c: Client, args: argparse.Namespace) -> dict[str, Any]:
    conn = c.connect(args.host, args.port)
    pieces = stream(args.nbytes, args.seed)
    pending = memoryview(b"")
    sent = 0
    t0 = time.monotonic()

    def pump() -> bool:
        nonlocal pending, sent
        while True:
            if not pending:
                piece = next(pieces, None)
                if piece is None:
                    conn.shutdown_write()
                    return True
                pending = piece
            n = conn.send(pending)
            if n == 0:
                return False
            sent += n
            pending = pending[n:]

    def step() -> bool:
        # called by the runner under its lock between turns; errors surface via conn.error
        return conn.error is not None or conn.closed or pump()

    c.run(step, "upload", conn)
    if conn.error is not None:
        fail(f"connection error {errno.errorcode.get(conn.error, conn.error)} after {sent} bytes")
    # the server's FIN tells us it has read everything
    c.run(lambda: conn.readable, "server EOF", conn)
    seconds = time.monotonic() - t0
    c.call(lambda: conn.recv())
    c.finish(conn)
    return {"sent": sent, "seconds": seconds}


def download(c: Client, args: argparse.Namespace) -> dict[str, Any]:
    conn = c.connect(args.host, args.port)
    sink = Sink()
    eof = False
    t0 = time.monotonic()

    def drain() -> bool:
        nonlocal eof
        while (data := conn.recv(1 << 20)) is not None:
            if not data:
                eof = True
                return True
            sink.write(data)
        return False

    c.run(lambda: conn.error is not None or drain(), "download", conn)
    if conn.error is not None:
        fail(f"connection error {errno.errorcode.get(conn.error, conn.error)} after {sink.count} bytes")
    seconds = time.monotonic() - t0
    c.finish(conn)
    return {"received": sink.count, "sha256": sink.digest, "seconds": seconds, "eof": eof}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("mode", choices=["upload", "download"])
    p.add_argument("--tap", default="tap0")
    p.add_argument("--ip", required=True, help="seqs' address, ADDR/LEN")
    p.add_argument("--host", required=True, help="the kernel server's address")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--nbytes", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--loss", type=float, default=0.0, help="drop frames with this probability each way")
    p.add_argument("--fault-seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=60.0, help="bound on each phase, seconds")
    args = p.parse_args()
    c = Client(args)
    try:
        result = upload(c, args) if args.mode == "upload" else download(c, args)
        st = c.stack.stats
        result.update(tcp_rto=st.drops.get("tcp_rto", 0), fast_retransmits=st.drops.get("tcp_fast_retransmit", 0),
                      drops=st.drops)
        if isinstance(c.device, FaultyDevice):
            result["injected_losses"] = c.device.tx_faults.dropped + c.device.rx_faults.dropped
        print(json.dumps(result), flush=True)
    finally:
        c.close()


if __name__ == "__main__":
    main()
