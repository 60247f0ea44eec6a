"""Sans-IO sockets over the interface: UDP, ICMP echo (and TCP, from :mod:`seqs.tcp`)."""

from .base import pick_ephemeral_port
from .icmp import EchoReply, PingSocket
from .udp import UdpSocket, UdpTable

__all__ = ["EchoReply", "PingSocket", "UdpSocket", "UdpTable", "pick_ephemeral_port"]
