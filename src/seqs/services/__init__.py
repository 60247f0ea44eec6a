"""Application services on seqs sockets, sans-IO: echo (RFC 862) and, in later
modules, discard, chargen, DHCP, DNS, NTP, HTTP."""

from .echo import UdpEchoService

__all__ = ["UdpEchoService"]
