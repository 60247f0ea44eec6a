"""seqs: a userspace TCP/IP stack in pure Python, sans-IO at its core.

Layers, bottom up: :mod:`seqs.wire` (formats) → :mod:`seqs.iface` (Ethernet,
ARP, IPv4, ICMP) → :mod:`seqs.tcp` → :mod:`seqs.sockets` → :mod:`seqs.services`
→ :mod:`seqs.phy` (devices) → :mod:`seqs.runtime` (drivers and user APIs) →
:mod:`seqs.cli`.
"""

from .errors import ParseError, SeqsError
from .stack import Stack, random_mac
from .tcp import connection as _connection

__version__ = "0.1.0"

#: "mypyc" when the hot modules were compiled (``SEQS_MYPYC=1``, see setup.py), else "pure"
BUILD = "pure" if _connection.__file__.endswith(".py") else "mypyc"

__all__ = ["BUILD", "ParseError", "SeqsError", "Stack", "__version__", "random_mac"]
