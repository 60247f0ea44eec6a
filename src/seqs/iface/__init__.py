"""The interface layer: Ethernet, ARP, IPv4 (with reassembly), ICMP, timers, counters."""

from .arp import ArpCache, ArpConfig
from .interface import ErrorHandler, Interface, InterfaceConfig, OutputOwner, TransportHandler
from .reassembly import Reassembler, ReassemblyConfig
from .stats import Stats
from .timers import TimerHeap, TimerOwner

__all__ = [
    "ArpCache",
    "ArpConfig",
    "ErrorHandler",
    "Interface",
    "InterfaceConfig",
    "OutputOwner",
    "ReassemblyConfig",
    "Reassembler",
    "Stats",
    "TimerHeap",
    "TimerOwner",
    "TransportHandler",
]
