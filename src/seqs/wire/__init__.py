"""Wire formats: one module per protocol, each with a zero-copy view over a
borrowed buffer and a frozen value type with ``parse``/``emit``.

Nothing here keeps state or knows about connections; that is ``iface`` and up.
"""

from . import arp, checksum, dhcp, dns, ethernet, icmp, ipv4, ntp, tcp, udp, virtio

__all__ = ["arp", "checksum", "dhcp", "dns", "ethernet", "icmp", "ipv4", "ntp", "tcp", "udp", "virtio"]
