"""Linux TAP devices, opened with the virtio-net header (``IFF_VNET_HDR``).

The header is always on, so checksum offload and TSO/GRO can be switched on
with :meth:`TapDevice.set_offload` without reopening; with offload off the
kernel sends plain frames behind a zero header, and we send a zero header.
ioctl numbers are from ``include/uapi/linux/if_tun.h`` and ``sockios.h``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct

from .._typing import BytesLike
from ..wire import virtio
from .base import Device, FrameHandler

__all__ = ["TUN_F_CSUM", "TUN_F_TSO4", "TUN_F_TSO6", "TapDevice", "TapError"]

TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
TUNSETVNETHDRSZ = 0x400454D8
TUNGETFEATURES = 0x800454CF
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCGIFMTU = 0x8921
SIOCSIFMTU = 0x8922
IFF_UP = 0x1

_BUF_SIZE = 65536 + 2048  # a 64 KB super-segment plus headers


class TapError(OSError):
    """The TAP device could not be opened or configured (with the reason)."""


class TapDevice(Device):
    """A TAP interface of the kernel, seen from the wire side.

    ``TapDevice("tap0")`` attaches to an existing TAP of that name or creates
    it (needs CAP_NET_ADMIN).  The link is brought up unless ``up=False``.
    """

    def __init__(self, name: str, *, mtu: int | None = None, up: bool = True, vnet_hdr: bool = True) -> None:
        if not name or len(name.encode()) > 15:
            raise ValueError("interface name must be 1..15 bytes")
        self.name = name
        self.vnet_hdr = vnet_hdr
        try:
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            raise TapError(e.errno, f"cannot open /dev/net/tun: {e.strerror}") from None
        self._fd = fd
        try:
            flags = IFF_TAP | IFF_NO_PI | (IFF_VNET_HDR if vnet_hdr else 0)
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), flags))
            if vnet_hdr:
                fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", virtio.HEADER_LEN))
            if mtu is not None:
                self._ifreq_int(SIOCSIFMTU, mtu)
            self.mtu = self._ifreq_get_int(SIOCGIFMTU)
            if up:
                self.set_up(True)
        except OSError as e:
            os.close(fd)
            raise TapError(e.errno, f"cannot set up TAP {name!r}: {e.strerror}") from None
        self._buf = bytearray(_BUF_SIZE)
        self._view = memoryview(self._buf)
        self._file = open(fd, "rb", buffering=0, closefd=False)  # noqa: SIM115 - lives as long as the device
        self.offload = 0
        self.tx_dropped = 0

    # -- configuration -----------------------------------------------------------------

    def _ifreq_int(self, req: int, value: int) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            fcntl.ioctl(s.fileno(), req, struct.pack("16si12x", self.name.encode(), value))

    def _ifreq_get_int(self, req: int) -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            out = fcntl.ioctl(s.fileno(), req, struct.pack("16s16x", self.name.encode()))
        return int(struct.unpack_from("i", out, 16)[0])

    def set_up(self, up: bool) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            out = fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, struct.pack("16s16x", self.name.encode()))
            (flags,) = struct.unpack_from("H", out, 16)
            flags = flags | IFF_UP if up else flags & ~IFF_UP
            fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", self.name.encode(), flags))

    def set_offload(self, flags: int) -> None:
        """TUNSETOFFLOAD: which offloads the kernel may use towards us (TUN_F_*)."""
        if not self.vnet_hdr and flags:
            raise TapError(errno.EINVAL, "offload needs the virtio-net header")
        fcntl.ioctl(self._fd, TUNSETOFFLOAD, flags)
        self.offload = flags

    # -- I/O -----------------------------------------------------------------------------

    def fileno(self) -> int:
        return self._fd

    def read(self, handler: FrameHandler, now: float, limit: int = 64) -> int:
        readinto = self._file.readinto
        view = self._view
        count = 0
        while count < limit:
            try:
                n = readinto(self._buf)
            except BlockingIOError:
                break
            if not n:
                break
            handler(view[:n], now)
            count += 1
        return count

    def send(self, frame: BytesLike, now: float) -> None:
        try:
            os.write(self._fd, frame)
        except BlockingIOError:
            self.tx_dropped += 1
        except OSError as e:
            # EIO while the link is down: count, as a NIC would.
            if e.errno not in (errno.EIO, errno.ENOBUFS, errno.EINVAL):
                raise
            self.tx_dropped += 1

    def close(self) -> None:
        if self._fd >= 0:
            self._file.close()
            os.close(self._fd)
            self._fd = -1
