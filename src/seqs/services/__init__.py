"""Application services on seqs sockets, sans-IO: echo (RFC 862) and, in later
modules, discard, chargen, DHCP, DNS, NTP, HTTP."""

from .dhcp_client import DhcpClient, DhcpClientConfig, DhcpEvent, Lease
from .dhcp_server import DhcpServer, DhcpServerConfig, ServerLease
from .dns import DnsError, DnsQuery, Resolver, ResolverConfig
from .echo import UdpEchoService
from .ntp import NtpConfig, NtpError, NtpQuery, NtpSample
from .tcp_basic import ChargenService, DiscardService, TcpEchoService, chargen_pattern

__all__ = [
    "ChargenService",
    "DhcpClient",
    "DhcpClientConfig",
    "DhcpEvent",
    "DhcpServer",
    "DhcpServerConfig",
    "DiscardService",
    "DnsError",
    "DnsQuery",
    "NtpConfig",
    "NtpError",
    "NtpQuery",
    "NtpSample",
    "Lease",
    "Resolver",
    "ResolverConfig",
    "ServerLease",
    "TcpEchoService",
    "UdpEchoService",
    "chargen_pattern",
]
