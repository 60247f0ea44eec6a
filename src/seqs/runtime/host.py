"""The socket-like blocking API: a :class:`Host` runs a stack in a background
thread, and its sockets behave like the standard library's.

    host = Host(TapDevice("tap0"), ip="10.0.0.2/24", gateway="10.0.0.1")
    s = host.udp_socket()
    s.bind(("", 7))
    data, peer = s.recvfrom(2048)
    s.sendto(data, peer)

    with host.create_connection(("10.0.0.1", 80), timeout=5.0) as t:   # TCP: see seqs.runtime.tcp
        t.sendall(b"hello")

Blocking calls wait on the runner's condition variable; timeouts follow the
``socket`` conventions (``settimeout(None)`` blocks, ``0`` is non-blocking and
raises ``BlockingIOError``, a positive value raises ``TimeoutError``).
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from functools import partial
from typing import TypeVar

from .._typing import BytesLike
from ..phy.base import Device
from ..services.dns import DnsTimeout, Resolver
from ..services.ntp import NtpConfig, NtpQuery, NtpSample
from ..sockets import UdpSocket
from ..sockets.icmp import PingSocket
from ..stack import Stack
from ..tcp.connection import TcpConfig
from .poller import Runner
from .tcp import TCPListener, TCPSocket
from .tcp import create_connection as _create_connection
from .tcp import create_server as _create_server

__all__ = ["Host", "UDPSocket"]

T = TypeVar("T")
Address = tuple[str, int]


class Host:
    """A seqs host on ``device``, running in a background thread."""

    def __init__(
        self,
        device: Device,
        *,
        ip: str | None = None,
        gateway: str | None = None,
        mac: bytes | str | None = None,
        stack: Stack | None = None,
        start: bool = True,
    ) -> None:
        self.stack = stack or Stack(mac=mac, ip=ip, gateway=gateway, mtu=device.mtu, vnet_hdr=device.vnet_hdr)
        self.runner = Runner(self.stack, device)
        self.lock = self.runner.lock
        if start:
            self.runner.start()

    @classmethod
    def from_runner(cls, runner: Runner, *, start: bool = False) -> Host:
        """A Host over a stack and runner that exist already (a command's one-shot host,
        say).  Not started, its blocking calls drive the runner from the calling thread."""
        host = cls.__new__(cls)
        host.stack = runner.stack
        host.runner = runner
        host.lock = runner.lock
        if start:
            runner.start()
        return host

    def close(self) -> None:
        self.runner.close()

    def __enter__(self) -> Host:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers for facades -----------------------------------------------------------

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the stack under the lock, then flush its output."""
        with self.lock:
            iface = self.stack.iface
            now = self.runner.clock()
            if now > iface.now:
                iface.now = now  # the call happens now, not at the loop's last turn
            try:
                return fn()
            finally:
                self.runner.kick()

    def wait_for(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Block until ``predicate()`` (evaluated under the lock) holds or ``timeout`` passes."""
        cond = self.runner.changed
        end = None if timeout is None else time.monotonic() + timeout
        with self.lock:
            while not predicate():
                if self.runner.error is not None:
                    raise RuntimeError("seqs runtime thread died") from self.runner.error
                if not self.runner.running:
                    # Nobody drives the stack: drive it from this thread.
                    remaining = None if end is None else end - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self.runner.run_once(0.05 if remaining is None else min(remaining, 0.05))
                    continue
                remaining = None if end is None else end - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self.runner.waiters += 1
                try:
                    cond.wait(remaining)
                finally:
                    self.runner.waiters -= 1
        return True

    # -- sockets -------------------------------------------------------------------------

    def udp_socket(self) -> UDPSocket:
        return UDPSocket(self)

    def create_connection(self, address: Address, timeout: float | None = None,
                          source_address: Address | None = None, *,
                          config: TcpConfig | None = None) -> TCPSocket:
        """A connected TCP socket, like :func:`socket.create_connection`; see
        :func:`seqs.runtime.tcp.create_connection`."""
        return _create_connection(self, address, timeout, source_address, config=config)

    def create_server(self, address: Address, *, backlog: int = 128, reuse_port: bool = False,
                      config: TcpConfig | None = None) -> TCPListener:
        """A listening TCP socket, like :func:`socket.create_server`; see
        :func:`seqs.runtime.tcp.create_server`."""
        return _create_server(self, address, backlog=backlog, reuse_port=reuse_port, config=config)

    # -- DNS and NTP (seqs.services.dns, seqs.services.ntp) -------------------------------

    @property
    def resolver(self) -> Resolver:
        """The host's resolver (and its cache).  It asks ``stack.dns_servers`` unless
        ``resolver.config.servers`` is set."""
        r: Resolver | None = self.__dict__.get("_resolver")
        if r is None:
            r = self.__dict__["_resolver"] = Resolver(self.stack)
        return r

    def resolve(self, name: str, type: str | int = "A", *, timeout: float | None = None) -> list[str]:
        """The records of ``type`` for ``name``, like ``dig +short``: addresses as text, names
        without the final dot; [] when the name has none of that type.  Raises
        :class:`seqs.services.dns.DnsError` (NxDomain, ServFail, DnsTimeout...).  The resolver's
        own tries bound the wait; ``timeout`` cuts it shorter."""
        resolver = self.resolver
        q = self.call(lambda: resolver.query(name, type))
        if not self.wait_for(lambda: q.done, timeout):
            self.call(q.cancel)
            raise DnsTimeout(f"{name}: no answer within {timeout} s", name=name)
        return q.result()

    def ntp(self, server: str, *, samples: int = 4, interval: float = 1.0, timeout: float = 1.0) -> NtpSample:
        """Measure the offset of ``server``'s clock from ours (the best of ``samples``); raises
        :class:`seqs.services.ntp.NtpError` (KissOfDeath, Unsynchronized, NtpTimeout)."""
        config = NtpConfig(samples=samples, interval=interval, timeout=timeout)
        # The stack's clock is the runner's (monotonic); NTP needs the wall clock.
        wall_offset = time.time() - self.runner.clock()
        q = self.call(lambda: NtpQuery(self.stack, server, wall_offset=wall_offset, config=config))
        self.wait_for(lambda: q.done, None)  # bounded by samples * (interval + timeout)
        return q.result()

    def ping(self, dst: str, *, count: int = 1, size: int = 56, interval: float = 0.2,
             timeout: float = 1.0) -> list[float | None]:
        """Round-trip times in seconds (None for each request without a reply)."""
        sock: PingSocket = self.call(self.stack.ping_socket)
        sock.on_event = self.runner.changed.notify_all
        results: list[float | None] = []
        try:
            for seq in range(count):
                payload = bytes((seq + i) & 0xFF for i in range(size))
                sent = time.monotonic()
                self.call(partial(sock.send, dst, seq, payload))
                rtt = self._await_reply(sock, seq, timeout)
                results.append(rtt)
                if seq + 1 < count:
                    time.sleep(max(0.0, interval - (time.monotonic() - sent)))
        finally:
            self.call(sock.close)
        return results


    def _await_reply(self, sock: PingSocket, seq: int, timeout: float) -> float | None:
        got: list[float] = []

        def answered() -> bool:
            while (r := sock.recv()) is not None:
                if r.seq == seq:
                    got.append(r.time)
            return bool(got)

        if not self.wait_for(answered, timeout):
            return None
        return max(0.0, got[0] - sock.sent[seq])


class UDPSocket:
    """Like ``socket.socket(AF_INET, SOCK_DGRAM)`` on a seqs host."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self._timeout: float | None = None
        self._sock: UdpSocket = host.call(host.stack.udp_socket)
        self._sock.on_event = host.runner.changed.notify_all

    # -- configuration -----------------------------------------------------------------

    def settimeout(self, timeout: float | None) -> None:
        if timeout is not None and timeout < 0:
            raise ValueError("Timeout value out of range")
        self._timeout = timeout

    def gettimeout(self) -> float | None:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        self._timeout = None if flag else 0.0

    def setbroadcast(self, flag: bool) -> None:
        self._sock.broadcast = flag

    def bind(self, address: Address) -> None:
        self.host.call(lambda: self._sock.bind(address))

    def connect(self, address: Address) -> None:
        self.host.call(lambda: self._sock.connect(address))

    def getsockname(self) -> Address:
        return self._sock.local_address

    # -- data --------------------------------------------------------------------------

    def sendto(self, data: BytesLike, address: Address) -> int:
        return self.host.call(lambda: self._sock.sendto(data, address))

    def send(self, data: BytesLike) -> int:
        return self.host.call(lambda: self._sock.send(data))

    def recvfrom(self, bufsize: int) -> tuple[bytes, Address]:
        if bufsize < 0:
            raise ValueError("negative buffersize in recvfrom")
        got: list[tuple[bytes, Address]] = []

        def ready() -> bool:
            r = self._sock.recvfrom()  # raises a pending ICMP-reported error
            if r is not None:
                got.append(r)
                return True
            return self._sock.closed

        if self._timeout == 0.0:
            with self.host.lock:
                if not ready():
                    raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        elif not self.host.wait_for(ready, self._timeout):
            raise TimeoutError("timed out")
        if not got:
            raise OSError(errno.EBADF, "socket closed")
        data, addr = got[0]
        return data[:bufsize], addr  # like the kernel: the rest of the datagram is discarded

    def recv(self, bufsize: int) -> bytes:
        return self.recvfrom(bufsize)[0]

    def close(self) -> None:
        self.host.call(self._sock.close)

    def __enter__(self) -> UDPSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
