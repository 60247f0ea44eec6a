"""``seqs demo``'s HTTP step: the router serves files, the host finds it by name and
downloads one through the lossy link.

The router runs the same event-driven :class:`~seqs.http.HttpServer` and
:class:`~seqs.http.StaticFiles` handler as ``seqs up --http``, over a
temporary directory holding a generated file; the host resolves
``files.demo`` through a demo DNS responder on the router and fetches the
file with :class:`~seqs.http.HttpFetch`, hashing it as it arrives.  All of it
on the virtual network's time, so a lossy download of megabytes takes a
fraction of a second of real time.  Without h11 (the ``seqs[http]`` extra) the
step says so and is skipped.
"""

from __future__ import annotations

import hashlib
import os
import random
import tempfile
from collections.abc import Callable

from ..phy.faults import FaultConfig
from ..phy.memory import VirtualNetwork
from ..services.dns import Resolver
from ..stack import Stack
from ..wire.dns import Record
from .demo_responders import DnsResponder

__all__ = ["demo_http"]

NAME = "files.demo"
SIZE = 2 * 1024 * 1024


def demo_http(net: VirtualNetwork, router: Stack, host: Stack, out: Callable[[str], None], *, loss: float,
              seed: int) -> bool:
    """Serve, resolve, download over a ``loss``-lossy link and verify.  False if a step failed."""
    try:
        from ..http import HttpFetch, HttpServer, StaticFiles
    except ImportError:
        out("HTTP: skipped (seqs.http needs h11: pip install 'seqs[http]')")
        return True
    data = random.Random(seed).randbytes(SIZE)
    with tempfile.TemporaryDirectory(prefix="seqs-demo-") as root:
        with open(os.path.join(root, "demo.bin"), "wb") as f:
            f.write(data)
        server = HttpServer(router, StaticFiles(root), 80)
        dns = DnsResponder(router, [Record.a(NAME, router.ip)])
        try:
            # The name first: the host asks the router's DNS responder (lossless, as the DNS step had it).
            q = Resolver(host).query(NAME, "A")
            host.poll(net.now)
            net.run_until(lambda: q.done, timeout=30)
            if q.error is not None or not q.values:
                out(f"HTTP: could not resolve {NAME}: {q.error}")
                return False
            address = q.values[0]

            # Then the download, through the lossy link.
            net.ports[0].set_faults(FaultConfig(loss=loss, delay=0.002, seed=seed + 10))
            net.ports[1].set_faults(FaultConfig(loss=loss, delay=0.002, seed=seed + 11))
            digest = hashlib.sha256()
            rexmit_before = sum(router.stats.drops.get(k, 0) for k in ("tcp_fast_retransmit", "tcp_rto"))
            start = net.now
            fetch = HttpFetch(host, f"http://{address}/demo.bin", headers=[("host", NAME)],
                              on_data=digest.update)
            host.poll(net.now)
            net.run_until(lambda: fetch.done, timeout=600)
            elapsed = net.now - start
            rexmits = sum(router.stats.drops.get(k, 0) for k in ("tcp_fast_retransmit", "tcp_rto")) - rexmit_before
            if not fetch.done or fetch.error is not None or fetch.head is None:
                out(f"HTTP: GET http://{NAME}/demo.bin failed: {fetch.error or 'no answer in time'}")
                return False
            intact = digest.digest() == hashlib.sha256(data).digest()
            ctype = next((v for k, v in fetch.head.headers if k == "content-type"), "?")
            out(f"HTTP: {NAME} -> {address} (DNS); GET http://{NAME}/demo.bin -> {fetch.head.status} "
                f"{fetch.head.reason}, {ctype}, {fetch.received / 1e6:.1f} MB in {elapsed:.2f} s virtual "
                f"({fetch.received / 1e6 / max(elapsed, 1e-9):.1f} MB/s) over the {loss:.0%}-loss link, "
                f"{'sha256 matches' if intact else 'DATA DIFFERS'}, {rexmits} loss recoveries by the server")

            # A range request and a miss, on the same server (lossless again).
            net.ports[0].set_faults(FaultConfig(delay=0.002))
            net.ports[1].set_faults(FaultConfig(delay=0.002))
            part = HttpFetch(host, f"http://{address}/demo.bin", headers=[("range", "bytes=1000-1999")])
            miss = HttpFetch(host, f"http://{address}/../etc/passwd")
            host.poll(net.now)
            net.run_until(lambda: part.done and miss.done, timeout=30)
            ok_range = part.head is not None and part.head.status == 206 and bytes(part.body) == data[1000:2000]
            crange = next((v for k, v in part.head.headers if k == "content-range"), "?") if part.head else "?"
            out(f"HTTP: Range bytes=1000-1999 -> {part.head.status if part.head else '-'} ({crange}, "
                f"{'bytes match' if ok_range else 'WRONG'}); GET /../etc/passwd -> "
                f"{miss.head.status if miss.head else '-'} (nothing outside the served directory); "
                f"server: {server.requests} requests, {server.bytes_out / 1e6:.1f} MB out")
            return intact and ok_range and miss.head is not None and miss.head.status == 404
        finally:
            dns.close()
            server.close()
            net.run_for(1.0)
