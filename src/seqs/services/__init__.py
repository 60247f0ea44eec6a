"""Application services on seqs sockets, sans-IO: echo (RFC 862) and, in later
modules, discard, chargen, DHCP, DNS, NTP, HTTP."""

from .echo import UdpEchoService
from .tcp_basic import ChargenService, DiscardService, TcpEchoService, chargen_pattern

__all__ = ["ChargenService", "DiscardService", "TcpEchoService", "UdpEchoService", "chargen_pattern"]
