"""Two devices joined by a ``SOCK_SEQPACKET`` socket pair: a real-time
in-memory Ethernet for running two stacks under real runtimes, in one process
or across a fork, without root."""

from __future__ import annotations

import socket

from .._typing import BytesLike
from .base import Device, FrameHandler

__all__ = ["SocketPairDevice", "socketpair_devices"]


class SocketPairDevice(Device):
    def __init__(self, sock: socket.socket, *, mtu: int = 1500, name: str = "pair") -> None:
        sock.setblocking(False)
        # Room for a few thousand full frames each way before sends would block.
        for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            sock.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
        self._sock = sock
        self.mtu = mtu
        self.name = name
        self._buf = bytearray(65536 + 2048)
        self._view = memoryview(self._buf)
        self.tx_dropped = 0
        self.rx_dropped = 0

    def fileno(self) -> int:
        return self._sock.fileno()

    def read(self, handler: FrameHandler, now: float, limit: int = 64) -> int:
        count = 0
        recv = self._sock.recv_into
        while count < limit:
            try:
                n = recv(self._buf)
            except BlockingIOError:
                break
            except OSError:
                # the other end closed with frames unread: the cable is unplugged
                self.rx_dropped += 1
                break
            if n == 0:
                break
            handler(self._view[:n], now)
            count += 1
        return count

    def send(self, frame: BytesLike, now: float) -> None:
        try:
            self._sock.send(frame)
        except OSError:  # full, or the other end is gone: the frame is lost, as on a wire
            self.tx_dropped += 1

    def close(self) -> None:
        self._sock.close()


def socketpair_devices(mtu: int = 1500) -> tuple[SocketPairDevice, SocketPairDevice]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    return SocketPairDevice(a, mtu=mtu, name="pair-a"), SocketPairDevice(b, mtu=mtu, name="pair-b")
