"""The static-file server streams: a 50 MB file crosses the in-memory virtual network
while the Python heap (tracemalloc's peak, both stacks and the client included)
stays a few megabytes — a server that read the file whole would need 50.

The control serves a much smaller file as one ``bytes`` body, the way a server
that held files in memory would: its peak must exceed that file's size, which
shows the measurement sees what it is meant to see.  Jumbo frames (MTU 9000)
keep the frame count, and so tracemalloc's overhead, down.
"""

from __future__ import annotations

import hashlib
import pathlib
import random
import tracemalloc
from collections.abc import Callable

from seqs import Stack
from seqs.http import HttpFetch, HttpServer, Request, Response, StaticFiles
from seqs.phy.faults import FaultConfig
from seqs.phy.memory import VirtualNetwork

MB = 1_000_000
BIG = 50 * MB


def _write(path: pathlib.Path, size: int) -> bytes:
    """``size`` bytes of varied data written a megabyte at a time (never whole in memory); their sha256."""
    digest = hashlib.sha256()
    block = random.Random(5).randbytes(1 << 20)
    with path.open("wb") as f:
        i = 0
        while size > 0:
            piece = (block[i % 251 :] + block[: i % 251])[:size]  # a different rotation per megabyte
            f.write(piece)
            digest.update(piece)
            size -= len(piece)
            i += 1
    return digest.digest()


def _download_peak(handler: Callable[[Request], Response]) -> tuple[int, bytes, int]:
    """Serve ``handler`` at 10.0.0.1 and GET /big.bin from 10.0.0.2, under tracemalloc:
    (peak traced bytes, the body's sha256, bytes received)."""
    net = VirtualNetwork()
    server = Stack(ip="10.0.0.1/24", rng=random.Random(1), mtu=9000)
    client = Stack(ip="10.0.0.2/24", rng=random.Random(2), mtu=9000)
    net.attach(server, FaultConfig(delay=0.001))
    net.attach(client, FaultConfig(delay=0.001))
    got = hashlib.sha256()
    tracemalloc.start()
    try:
        http = HttpServer(server, handler, 80)
        f = HttpFetch(client, "http://10.0.0.1/big.bin", on_data=got.update)
        client.poll(net.now)
        assert net.run_until(lambda: f.done, 600)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert f.error is None and f.head is not None and f.head.status == 200, f.error
    assert net.run_until(lambda: http.open == 0, 10)
    return peak, got.digest(), f.received


def test_static_file_server_streams_a_large_file_without_holding_it(tmp_path: pathlib.Path) -> None:
    want = _write(tmp_path / "big.bin", BIG)
    peak, digest, received = _download_peak(StaticFiles(tmp_path))
    assert received == BIG and digest == want
    assert peak < BIG / 10, f"peak {peak / MB:.1f} MB of Python heap for a {BIG / MB:.0f} MB file"


def test_control_a_body_held_in_memory_shows_in_the_peak(tmp_path: pathlib.Path) -> None:
    size = 5 * MB
    path = tmp_path / "big.bin"
    want = _write(path, size)

    def whole(request: Request) -> Response:
        return Response(200, [("content-type", "application/octet-stream")], path.read_bytes())

    peak, digest, received = _download_peak(whole)
    assert received == size and digest == want
    assert peak > size, f"peak {peak / MB:.1f} MB: tracemalloc did not see a {size / MB:.0f} MB body"
