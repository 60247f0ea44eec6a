"""seqs: a userspace TCP/IP stack in pure Python, sans-IO at its core.

Layers, bottom up: :mod:`seqs.wire` (formats) → :mod:`seqs.iface` (Ethernet,
ARP, IPv4, ICMP) → :mod:`seqs.tcp` → :mod:`seqs.sockets` → :mod:`seqs.services`
→ :mod:`seqs.phy` (devices) → :mod:`seqs.runtime` (drivers and user APIs) →
:mod:`seqs.cli`.
"""

from .errors import ParseError, SeqsError
from .stack import Stack, random_mac

__version__ = "0.1.0"

__all__ = ["ParseError", "SeqsError", "Stack", "__version__", "random_mac"]
