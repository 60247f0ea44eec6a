"""TCP (RFC 9293): sequence arithmetic, the connection state machine, RTT/RTO,
congestion control, ISNs.  Demultiplexing and listeners are in :mod:`seqs.sockets.tcp`."""

from .congestion import ALGORITHMS, CongestionControl, Cubic, NewReno
from .connection import STATE_NAMES, TcpConfig, TcpConnection
from .rtt import RttEstimator

__all__ = [
    "ALGORITHMS",
    "STATE_NAMES",
    "CongestionControl",
    "Cubic",
    "NewReno",
    "RttEstimator",
    "TcpConfig",
    "TcpConnection",
]
