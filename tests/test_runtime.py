"""The runtimes on real time, over socket-pair devices (no root needed): the blocking
``Host`` facade, ``Runner`` in the caller's thread, and ``AsyncHost`` under asyncio.

Every wait is bounded (a few seconds) so a bug fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from seqs import Stack
from seqs.phy import socketpair_devices
from seqs.runtime import AsyncHost, Host, Runner
from seqs.services import UdpEchoService

WAIT = 5.0


@pytest.fixture
def hosts() -> Iterator[tuple[Host, Host]]:
    a_dev, b_dev = socketpair_devices()
    a = Host(a_dev, ip="10.0.0.1/24")
    b = Host(b_dev, ip="10.0.0.2/24")
    try:
        yield a, b
    finally:
        a.close()
        b.close()
    assert a.runner.error is None and b.runner.error is None
    assert not a.runner.running and not b.runner.running


def test_blocking_udp_echo_between_two_hosts(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    echo = b.call(lambda: UdpEchoService(b.stack, 7))
    with a.udp_socket() as s:
        s.settimeout(WAIT)
        for i in range(5):
            msg = b"hello %d" % i
            assert s.sendto(msg, ("10.0.0.2", 7)) == len(msg)
            assert s.recvfrom(2048) == (msg, ("10.0.0.2", 7))
    assert echo.echoed == 5


def test_recvfrom_truncates_to_bufsize_like_the_kernel(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    b.call(lambda: UdpEchoService(b.stack, 7))
    with a.udp_socket() as s:
        s.settimeout(WAIT)
        s.connect(("10.0.0.2", 7))
        s.send(b"0123456789")
        assert s.recv(4) == b"0123"


def test_recvfrom_with_a_timeout_raises_timeout_error(hosts: tuple[Host, Host]) -> None:
    a, _ = hosts
    with a.udp_socket() as s:
        s.bind(("", 5000))
        s.settimeout(0.2)
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            s.recvfrom(2048)
        assert 0.19 <= time.monotonic() - start < WAIT


def test_non_blocking_recvfrom_raises_blocking_io_error_at_once(hosts: tuple[Host, Host]) -> None:
    a, _ = hosts
    with a.udp_socket() as s:
        s.bind(("", 5000))
        s.setblocking(False)
        assert s.gettimeout() == 0.0
        start = time.monotonic()
        with pytest.raises(BlockingIOError):
            s.recvfrom(2048)
        assert time.monotonic() - start < 0.5


def test_connected_socket_reports_port_unreachable_as_connection_refused(hosts: tuple[Host, Host]) -> None:
    """RFC 1122 §4.1.3.3 over real runtimes: B has nothing on port 9 and says so."""
    a, _ = hosts
    with a.udp_socket() as s:
        s.settimeout(WAIT)
        s.connect(("10.0.0.2", 9))
        s.send(b"anyone?")
        with pytest.raises(ConnectionRefusedError):
            s.recv(100)


def test_host_ping_returns_round_trip_times(hosts: tuple[Host, Host]) -> None:
    a, _ = hosts
    rtts = a.ping("10.0.0.2", count=3, size=100, interval=0.05, timeout=WAIT)
    assert len(rtts) == 3
    assert all(r is not None and 0.0 <= r < WAIT for r in rtts), rtts


def test_host_ping_without_an_answer_reports_none(hosts: tuple[Host, Host]) -> None:
    a, _ = hosts
    start = time.monotonic()
    assert a.ping("10.0.0.99", count=1, timeout=0.3) == [None]
    assert time.monotonic() - start < WAIT


def test_runner_runs_in_the_callers_thread_until_a_condition_or_timeout() -> None:
    a_dev, b_dev = socketpair_devices()
    stack = Stack(ip="10.0.0.1/24")
    runner = Runner(stack, a_dev)
    peer = Host(b_dev, ip="10.0.0.2/24")
    try:
        peer.call(lambda: UdpEchoService(peer.stack, 7))
        sock = stack.udp_socket()
        with runner.lock:
            stack.poll(runner.clock())
            sock.sendto(b"via runner", ("10.0.0.2", 7))
        assert runner.run(until=lambda: sock.readable, timeout=WAIT) is True
        assert sock.recvfrom() == (b"via runner", ("10.0.0.2", 7))
        assert not runner.running  # no thread was started
        start = time.monotonic()
        assert runner.run(until=lambda: False, timeout=0.2) is False
        assert 0.19 <= time.monotonic() - start < WAIT
    finally:
        peer.close()
        runner.close()


def test_async_hosts_echo_datagrams_in_one_event_loop() -> None:
    async def main() -> tuple[bytes, tuple[str, int]]:
        a_dev, b_dev = socketpair_devices()
        a = AsyncHost(a_dev, ip="10.0.0.1/24")
        b = AsyncHost(b_dev, ip="10.0.0.2/24")
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[tuple[bytes, tuple[str, int]]] = loop.create_future()

        class Echo(asyncio.DatagramProtocol):
            def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
                self.transport = transport

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                self.transport.sendto(data, addr)

        class Client(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                if not answer.done():
                    answer.set_result((data, addr))

            def error_received(self, exc: Exception) -> None:
                if not answer.done():
                    answer.set_exception(exc)

        try:
            server, _ = await b.create_datagram_endpoint(Echo, local_addr=("", 7))
            assert server.get_extra_info("sockname") == ("10.0.0.2", 7)
            client, _ = await a.create_datagram_endpoint(Client, remote_addr=("10.0.0.2", 7))
            assert client.get_extra_info("peername") == ("10.0.0.2", 7)
            client.sendto(b"async hello")
            return await asyncio.wait_for(answer, WAIT)
        finally:
            a.close()
            b.close()

    assert asyncio.run(asyncio.wait_for(main(), 2 * WAIT)) == (b"async hello", ("10.0.0.2", 7))
