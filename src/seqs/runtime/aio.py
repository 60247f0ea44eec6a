"""The asyncio runtime: the same sans-IO stack, driven by an event loop.

One reader on the device's file descriptor and one timer handle, re-armed to
the stack's next deadline after every turn (the aioquic shape).  The stack's
clock is ``loop.time()``.  User-facing asyncio APIs (datagram endpoints here,
TCP streams and transports in :mod:`seqs.runtime.streams`) call :meth:`AsyncRunner.kick`
after changing the stack so output leaves in the same loop iteration.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .._typing import BytesLike
from ..phy.base import Device
from ..services.dns import DnsQuery, Resolver
from ..services.ntp import NtpConfig, NtpQuery, NtpSample
from ..sockets import UdpSocket
from ..stack import Stack
from ..tcp.connection import TcpConfig
from ..wire import ipv4 as wip
from . import streams
from .streams import TCPServer, TCPTransport

__all__ = ["AsyncHost", "AsyncRunner", "DatagramTransport"]

T = TypeVar("T")

#: frames taken in before what they caused is sent, and batches per wakeup (as in poller.Runner)
_BATCH = 16
_BATCHES = 32


class AsyncRunner:
    def __init__(self, stack: Stack, device: Device, loop: asyncio.AbstractEventLoop | None = None) -> None:
        if stack.iface.config.vnet_hdr != device.vnet_hdr:
            raise ValueError("stack and device disagree about the virtio-net header")
        self.stack = stack
        self.device = device
        self.loop = loop or asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._kicked = False
        self._started = False
        self._now = 0.0
        self.turns = 0

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        fd = self.device.fileno()
        if fd >= 0:
            self.loop.add_reader(fd, self._on_readable)
        self.kick()

    def close(self) -> None:
        if self._started:
            fd = self.device.fileno()
            if fd >= 0:
                self.loop.remove_reader(fd)
            self._started = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.device.close()

    # -- turns -------------------------------------------------------------------------

    def _on_readable(self) -> None:
        now = self.loop.time()
        read = self.device.read
        receive = self.stack.iface.receive
        for _ in range(_BATCHES):
            n = read(receive, now, _BATCH)
            if n:
                # what a batch caused leaves before the next is read (as in poller.Runner)
                self.stack.iface.poll(now)
                self._flush(now)
            if n < _BATCH:
                break
        self._service()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        # A wrapper device may hold frames back until now.
        self.device.read(self.stack.iface.receive, self.loop.time(), _BATCH)
        self._service()

    def _service(self) -> None:
        self._kicked = False
        now = self.loop.time()
        self.device.poll(now)
        self.stack.poll(now)
        self._flush(now)
        self.turns += 1
        self._rearm()

    def _flush(self, now: float) -> None:
        """Write out what the stack has produced."""
        tx = self.stack.iface.take_tx()
        if tx:
            send = self.device.send
            for frame in tx:
                send(frame, now)

    def _rearm(self) -> None:
        ds = [d for d in (self.stack.next_deadline(), self.device.next_deadline()) if d is not None]
        if not ds:
            return
        when = min(ds)
        if self._timer is not None:
            if self._timer_at is not None and self._timer_at <= when:
                return
            self._timer.cancel()
        self._timer_at = when
        self._timer = self.loop.call_at(when, self._on_timer)

    def kick(self) -> None:
        """Schedule a turn soon (coalesced): call after changing the stack."""
        if not self._kicked:
            self._kicked = True
            self.loop.call_soon(self._service)


class AsyncHost:
    """A seqs host driven by the running asyncio loop.

        host = AsyncHost(device, ip="10.0.0.2/24")
        transport, protocol = await host.create_datagram_endpoint(MyProto, local_addr=("", 7))
        reader, writer = await host.open_connection("10.0.0.1", 80)   # TCP: see seqs.runtime.streams
    """

    def __init__(
        self,
        device: Device,
        *,
        ip: str | None = None,
        gateway: str | None = None,
        mac: bytes | str | None = None,
        stack: Stack | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.stack = stack or Stack(mac=mac, ip=ip, gateway=gateway, mtu=device.mtu, vnet_hdr=device.vnet_hdr)
        self.runner = AsyncRunner(self.stack, device, loop)
        self.loop = self.runner.loop
        self.runner.start()

    def close(self) -> None:
        self.runner.close()

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the stack at the loop's current time, then schedule a turn
        so what it produced leaves (the asyncio twin of :meth:`Host.call`)."""
        iface = self.stack.iface
        now = self.loop.time()
        if now > iface.now:
            iface.now = now  # e.g. a SYN's retransmission timer counts from now, not the last turn
        try:
            return fn()
        finally:
            self.runner.kick()

    # -- DNS and NTP (seqs.services.dns, seqs.services.ntp) -----------------------------

    @property
    def resolver(self) -> Resolver:
        """The host's resolver (and its cache); see :attr:`seqs.runtime.Host.resolver`."""
        r: Resolver | None = self.__dict__.get("_resolver")
        if r is None:
            r = self.__dict__["_resolver"] = Resolver(self.stack)
        return r

    async def resolve(self, name: str, type: str | int = "A") -> list[str]:
        """Like :meth:`seqs.runtime.Host.resolve`; bound it with :func:`asyncio.wait_for`."""
        done: asyncio.Future[None] = self.loop.create_future()

        def finished(_q: DnsQuery) -> None:
            if not done.done():
                done.set_result(None)

        resolver = self.resolver
        q = self.call(lambda: resolver.query(name, type, on_done=finished))
        try:
            await done
        except asyncio.CancelledError:
            self.call(q.cancel)
            raise
        return q.result()

    async def ntp(self, server: str, *, samples: int = 4, interval: float = 1.0,
                  timeout: float = 1.0) -> NtpSample:
        """Like :meth:`seqs.runtime.Host.ntp`."""
        done: asyncio.Future[None] = self.loop.create_future()

        def finished(_q: NtpQuery) -> None:
            if not done.done():
                done.set_result(None)

        config = NtpConfig(samples=samples, interval=interval, timeout=timeout)
        wall_offset = time.time() - self.loop.time()  # the stack's clock is loop.time()
        q = self.call(lambda: NtpQuery(self.stack, server, wall_offset=wall_offset, config=config,
                                       on_done=finished))
        try:
            await done
        except asyncio.CancelledError:
            self.call(q.cancel)
            raise
        return q.result()

    # -- TCP (seqs.runtime.streams) -----------------------------------------------------

    async def open_connection(self, host: str, port: int, *, limit: int = 2**16,
                              **kwds: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Like :func:`asyncio.open_connection`: a genuine StreamReader/StreamWriter pair.
        ``kwds`` are :meth:`create_connection`'s (``local_addr``, ``config``)."""
        return await streams.open_connection(self, host, port, limit=limit, **kwds)

    async def start_server(self, client_connected_cb: Callable[..., Any], host: str | None = None,
                           port: int | None = None, *, limit: int = 2**16, **kwds: Any) -> TCPServer:
        """Like :func:`asyncio.start_server`.  ``kwds`` are :meth:`create_server`'s."""
        return await streams.start_server(self, client_connected_cb, host, port, limit=limit, **kwds)

    async def create_connection(self, protocol_factory: Callable[[], asyncio.BaseProtocol], host: str,
                                port: int, *, local_addr: tuple[str, int] | None = None,
                                config: TcpConfig | None = None) -> tuple[TCPTransport, asyncio.BaseProtocol]:
        """Like :meth:`asyncio.loop.create_connection`: ConnectionRefusedError on a RST,
        TimeoutError when the SYN retries run out (bound it with :func:`asyncio.wait_for`)."""
        return await streams.create_connection(self, protocol_factory, host, port, local_addr=local_addr,
                                               config=config)

    async def create_server(self, protocol_factory: Callable[[], asyncio.BaseProtocol], host: str | None = None,
                            port: int | None = None, *, backlog: int = 100, reuse_port: bool | None = None,
                            start_serving: bool = True, config: TcpConfig | None = None) -> TCPServer:
        """Like :meth:`asyncio.loop.create_server` (one listener: ``host`` None or "" for every address)."""
        return await streams.create_server(self, protocol_factory, host, port, backlog=backlog,
                                           reuse_port=reuse_port, start_serving=start_serving, config=config)

    async def create_datagram_endpoint(
        self,
        protocol_factory: Callable[[], asyncio.DatagramProtocol],
        local_addr: tuple[str, int] | None = None,
        remote_addr: tuple[str, int] | None = None,
        *,
        allow_broadcast: bool = False,
    ) -> tuple[DatagramTransport, asyncio.DatagramProtocol]:
        """Like :meth:`asyncio.loop.create_datagram_endpoint`, on this stack."""
        sock = self.stack.udp_socket()
        sock.broadcast = allow_broadcast
        try:
            if local_addr is not None:
                sock.bind(local_addr)
            if remote_addr is not None:
                sock.connect(remote_addr)
        except BaseException:
            sock.close()
            raise
        protocol = protocol_factory()
        transport = DatagramTransport(self, sock, protocol)
        protocol.connection_made(transport)
        return transport, protocol


class DatagramTransport(asyncio.DatagramTransport):
    def __init__(self, host: AsyncHost, sock: UdpSocket, protocol: asyncio.DatagramProtocol) -> None:
        super().__init__()
        self._host = host
        self._sock = sock
        self._protocol = protocol
        self._closing = False
        sock.on_event = self._on_event

    def _on_event(self) -> None:
        sock = self._sock
        while True:
            try:
                got = sock.recvfrom()
            except OSError as e:
                self._protocol.error_received(e)
                continue
            if got is None:
                break
            self._protocol.datagram_received(*got)

    def sendto(self, data: BytesLike, addr: tuple[str, int] | None = None) -> None:  # type: ignore[override]
        if self._closing:
            raise RuntimeError("transport is closing")
        try:
            if addr is None:
                self._sock.send(data)
            else:
                self._sock.sendto(data, addr)
        except OSError as e:
            self._protocol.error_received(e)
        self._host.runner.kick()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "sockname":
            return self._sock.local_address
        if name == "peername" and self._sock.remote is not None:
            return (wip.ntoa(self._sock.remote[0]), self._sock.remote[1])
        return default

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._sock.close()
            self._host.loop.call_soon(self._protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()
