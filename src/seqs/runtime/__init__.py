"""Runtimes: the drivers that give the sans-IO stack a clock and a device, and
the user-facing APIs built on them (socket-like blocking, asyncio)."""

from .aio import AsyncHost, AsyncRunner, DatagramTransport
from .host import Host, UDPSocket
from .poller import Runner

__all__ = ["AsyncHost", "AsyncRunner", "DatagramTransport", "Host", "Runner", "UDPSocket"]
