"""Runtimes: the drivers that give the sans-IO stack a clock and a device, and
the user-facing APIs built on them (socket-like blocking, asyncio)."""

from .aio import AsyncHost, AsyncRunner, DatagramTransport
from .host import Host, UDPSocket
from .poller import Runner
from .streams import TCPServer, TCPTransport
from .tcp import TCPListener, TCPSocket

__all__ = [
    "AsyncHost",
    "AsyncRunner",
    "DatagramTransport",
    "Host",
    "Runner",
    "TCPListener",
    "TCPServer",
    "TCPSocket",
    "TCPTransport",
    "UDPSocket",
]
