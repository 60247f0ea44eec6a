"""A raw ``AF_PACKET`` socket on an existing Linux interface (a veth end, a NIC).

The kernel keeps processing the interface's traffic itself, so give seqs an
interface the kernel has no IP configuration on.  Frames the socket sees
going *out* (our own, echoed back by the packet tap) are skipped.
"""

from __future__ import annotations

import errno
import socket

from .._typing import BytesLike
from .base import Device, FrameHandler

__all__ = ["PacketDevice"]

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


class PacketDevice(Device):
    def __init__(self, ifname: str, *, mtu: int = 1500) -> None:
        self.name = ifname
        self.mtu = mtu
        try:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        except OSError as e:
            raise OSError(e.errno, f"cannot open AF_PACKET socket: {e.strerror} (needs CAP_NET_RAW)") from None
        try:
            s.bind((ifname, 0))
        except OSError as e:
            s.close()
            raise OSError(e.errno, f"cannot bind to interface {ifname!r}: {e.strerror}") from None
        s.setblocking(False)
        self._sock = s
        self._buf = bytearray(65536 + 2048)
        self._view = memoryview(self._buf)
        self.tx_dropped = 0

    def fileno(self) -> int:
        return self._sock.fileno()

    def read(self, handler: FrameHandler, now: float, limit: int = 64) -> int:
        count = 0
        recv = self._sock.recvfrom_into
        while count < limit:
            try:
                n, addr = recv(self._buf)
            except BlockingIOError:
                break
            if addr[2] == PACKET_OUTGOING:
                continue
            handler(self._view[:n])
            count += 1
        return count

    def send(self, frame: BytesLike, now: float) -> None:
        try:
            self._sock.send(frame)
        except (BlockingIOError, InterruptedError):
            self.tx_dropped += 1
        except OSError as e:
            if e.errno not in (errno.ENETDOWN, errno.ENXIO, errno.ENOBUFS):
                raise
            self.tx_dropped += 1

    def close(self) -> None:
        self._sock.close()
