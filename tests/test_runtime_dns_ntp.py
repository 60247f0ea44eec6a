"""``Host.resolve``/``Host.ntp`` and their asyncio twins on real time over socket-pair
devices (no root), and the DNS and NTP steps of ``seqs demo``.  Every wait is bounded."""

from __future__ import annotations

import asyncio
import pathlib
import time
from collections.abc import Iterator

import pytest

from seqs.cli import main
from seqs.cli.demo_responders import DnsResponder, NtpResponder
from seqs.phy import socketpair_devices
from seqs.runtime import AsyncHost, Host
from seqs.services.dns import DnsTimeout, NxDomain
from seqs.wire.dns import Record

WAIT = 5.0
SKEW = 0.5
RECORDS = [Record.a("router.test", "10.0.0.1"), Record.cname("www.test", "router.test"),
           Record.aaaa("router.test", "fd00::1"), Record.ptr("1.0.0.10.in-addr.arpa", "router.test"),
           *[Record.aaaa("big.test", f"fd00::{i:x}") for i in range(1, 80)]]


def _wall_offset() -> float:
    return time.time() - time.monotonic()


@pytest.fixture
def hosts() -> Iterator[tuple[Host, Host]]:
    a_dev, b_dev = socketpair_devices()
    server = Host(a_dev, ip="10.0.0.1/24")
    client = Host(b_dev, ip="10.0.0.2/24")
    server.call(lambda: DnsResponder(server.stack, RECORDS))
    server.call(lambda: NtpResponder(server.stack, _wall_offset() + SKEW))
    client.stack.dns_servers.append("10.0.0.1")
    try:
        yield server, client
    finally:
        server.close()
        client.close()
    assert server.runner.error is None and client.runner.error is None


def test_host_resolve_follows_cnames_and_caches(hosts: tuple[Host, Host]) -> None:
    _, client = hosts
    assert client.resolve("www.test", timeout=WAIT) == ["10.0.0.1"]
    assert client.resolve("router.test", "AAAA", timeout=WAIT) == ["fd00::1"]
    assert client.resolve("10.0.0.1", "PTR", timeout=WAIT) == ["router.test"]
    assert len(client.resolver.cache) >= 3


def test_host_resolve_falls_back_to_tcp_for_a_big_answer(hosts: tuple[Host, Host]) -> None:
    _, client = hosts
    assert len(client.resolve("big.test", "AAAA", timeout=WAIT)) == 79


def test_host_resolve_raises_nxdomain(hosts: tuple[Host, Host]) -> None:
    _, client = hosts
    with pytest.raises(NxDomain):
        client.resolve("nosuch.test", timeout=WAIT)


def test_host_resolve_timeout_cuts_the_wait_short(hosts: tuple[Host, Host]) -> None:
    _, client = hosts
    client.resolver.config.servers = ["10.0.0.9"]  # nobody there: ARP goes unanswered
    start = time.monotonic()
    with pytest.raises(DnsTimeout):
        client.resolve("www.test", timeout=0.3)
    assert time.monotonic() - start < WAIT


def test_host_ntp_measures_the_servers_skew(hosts: tuple[Host, Host]) -> None:
    _, client = hosts
    best = client.ntp("10.0.0.1", samples=3, interval=0.05, timeout=1.0)
    # Real time over a socket pair: the offset is the skew to within scheduling noise.
    assert best.offset == pytest.approx(SKEW, abs=0.02)
    assert 0.0 <= best.delay < 0.05


def test_async_host_resolve_and_ntp() -> None:
    async def go() -> tuple[list[str], float]:
        a_dev, b_dev = socketpair_devices()
        server = AsyncHost(a_dev, ip="10.0.0.1/24")
        client = AsyncHost(b_dev, ip="10.0.0.2/24")
        try:
            DnsResponder(server.stack, RECORDS)
            NtpResponder(server.stack, time.time() - server.loop.time() + SKEW)
            client.stack.dns_servers.append("10.0.0.1")
            addresses = await asyncio.wait_for(client.resolve("www.test"), WAIT)
            with pytest.raises(NxDomain):
                await asyncio.wait_for(client.resolve("nosuch.test"), WAIT)
            best = await asyncio.wait_for(client.ntp("10.0.0.1", samples=2, interval=0.05), WAIT)
            return addresses, best.offset
        finally:
            client.close()
            server.close()

    addresses, offset = asyncio.run(go())
    assert addresses == ["10.0.0.1"]
    assert offset == pytest.approx(SKEW, abs=0.02)


def test_demo_resolves_and_measures_the_routers_known_offset(tmp_path: pathlib.Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--pcap", str(tmp_path / "demo.pcap")]) == 0
    out = capsys.readouterr().out
    assert "DNS: www.demo A -> CNAME router.demo -> 10.0.0.1" in out
    assert "NXDOMAIN" in out and "asked again over TCP" in out and "from the cache (no packet sent" in out
    assert "best: offset +250.000 ms" in out
