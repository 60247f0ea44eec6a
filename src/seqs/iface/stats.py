"""Counters a user can read from a running stack (``stack.stats``).

Traffic counters are plain attributes; every dropped frame or packet bumps
``drops[reason]`` where ``reason`` is a stable short name, most of them the
``ParseError.reason`` of the parser that refused the bytes.  Counting is the
hot path's only form of logging.
"""

from __future__ import annotations

__all__ = ["Stats"]

#: the traffic counters, in the order ``as_dict`` gives them (read from here, not from
#: ``__slots__``: a compiled build has none to read)
_COUNTERS = (
    "arp_rx", "arp_tx", "icmp_errors_rx", "icmp_errors_tx", "icmp_rx", "icmp_tx", "ipv4_frag_rx",
    "ipv4_frag_tx", "ipv4_reassembled", "ipv4_rx", "ipv4_tx", "rx_bytes", "rx_frames", "tcp_rx", "tcp_tx",
    "tx_bytes", "tx_frames", "udp_rx", "udp_tx",
)


class Stats:
    __slots__ = (*_COUNTERS, "drops")

    def __init__(self) -> None:
        self.rx_frames = 0
        self.rx_bytes = 0
        self.tx_frames = 0
        self.tx_bytes = 0
        self.arp_rx = 0
        self.arp_tx = 0
        self.ipv4_rx = 0
        self.ipv4_tx = 0
        self.ipv4_frag_rx = 0
        self.ipv4_frag_tx = 0
        self.ipv4_reassembled = 0
        self.icmp_rx = 0
        self.icmp_tx = 0
        self.icmp_errors_rx = 0
        self.icmp_errors_tx = 0
        self.udp_rx = 0
        self.udp_tx = 0
        self.tcp_rx = 0
        self.tcp_tx = 0
        #: dropped input or output, by reason
        self.drops: dict[str, int] = {}

    def drop(self, reason: str) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1

    @property
    def dropped(self) -> int:
        return sum(self.drops.values())

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {name: getattr(self, name) for name in _COUNTERS}
        out["drops"] = dict(sorted(self.drops.items()))
        return out

    def __repr__(self) -> str:
        return f"Stats({self.as_dict()})"
