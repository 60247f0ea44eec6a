"""Devices: where frames come from and go to.

TAP (Linux), raw ``AF_PACKET`` sockets, socket pairs, the virtual-time
in-memory network, and wrappers that impair (faults) or record (pcap).
"""

from .base import Device, FrameHandler
from .faults import FaultConfig, FaultInjector, FaultyDevice
from .memory import Port, SimulationStuck, VirtualNetwork
from .pcap import PcapDevice, PcapWriter
from .socketpair import SocketPairDevice, socketpair_devices

__all__ = [
    "Device",
    "FaultConfig",
    "FaultInjector",
    "FaultyDevice",
    "FrameHandler",
    "PcapDevice",
    "PcapWriter",
    "Port",
    "SimulationStuck",
    "SocketPairDevice",
    "VirtualNetwork",
    "socketpair_devices",
]
