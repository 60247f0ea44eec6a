"""A raw ``AF_PACKET`` socket on an existing Linux interface (a veth end, a NIC).

The kernel keeps processing the interface's traffic itself, so give seqs an
interface the kernel has no IP configuration on.  Frames the socket sees
going *out* (our own, echoed back by the packet tap) are skipped.

Checksum offload on the far side (a veth's default) hands us TCP and UDP with
the checksum never computed, flagged ``TP_STATUS_CSUMNOTREADY`` in the
``PACKET_AUXDATA`` each frame comes with (packet(7)); ``TP_STATUS_CSUM_VALID``
says it was verified.  Both mean "do not check it", which is what the
virtio-net header's ``DATA_VALID`` tells the stack on a TAP.  So this device
speaks the same 12-byte virtio-net header as a TAP (``vnet_hdr``): it writes
one in front of every frame it reads, with ``DATA_VALID`` set from the
auxdata, and strips it from every frame it sends (which never asks for
offload: ``seqs up --offload`` is for TAP devices only).
"""

from __future__ import annotations

import errno
import socket
import struct

from .._typing import BytesLike
from ..wire import virtio
from .base import Device, FrameHandler

__all__ = ["PacketDevice"]

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_CSUMNOTREADY = 1 << 3
TP_STATUS_CSUM_VALID = 1 << 7
_AUX_STATUS = struct.Struct("=I")  # tpacket_auxdata.tp_status, the first field
_ANCILLARY = socket.CMSG_SPACE(20)  # sizeof(struct tpacket_auxdata)


class PacketDevice(Device):
    vnet_hdr = True

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
        try:
            s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        except OSError as e:
            s.close()
            raise OSError(e.errno, f"cannot ask for PACKET_AUXDATA on {ifname!r}: {e.strerror}") from None
        s.setblocking(False)
        self._sock = s
        # a virtio-net header (all zero but its flags) and room for a 64 KB GSO frame
        self._buf = bytearray(virtio.HEADER_LEN + 65536 + 2048)
        self._view = memoryview(self._buf)
        self._frame_view = [self._view[virtio.HEADER_LEN :]]
        self.tx_dropped = 0

    def fileno(self) -> int:
        return self._sock.fileno()

    def read(self, handler: FrameHandler, now: float, limit: int = 64) -> int:
        count = 0
        recv = self._sock.recvmsg_into
        bufs = self._frame_view
        buf = self._buf
        view = self._view
        while count < limit:
            try:
                n, ancillary, _flags, addr = recv(bufs, _ANCILLARY)
            except BlockingIOError:
                break
            if addr[2] == PACKET_OUTGOING:
                continue
            trusted = False
            for level, kind, data in ancillary:
                if level == SOL_PACKET and kind == PACKET_AUXDATA and len(data) >= 4:
                    trusted = bool(_AUX_STATUS.unpack_from(data)[0] & (TP_STATUS_CSUMNOTREADY | TP_STATUS_CSUM_VALID))
            buf[0] = virtio.F_DATA_VALID if trusted else 0
            handler(view[: virtio.HEADER_LEN + n], now)
            count += 1
        return count

    def send(self, frame: BytesLike, now: float) -> None:
        try:
            self._sock.send(memoryview(frame)[virtio.HEADER_LEN :])
        except (BlockingIOError, InterruptedError):
            self.tx_dropped += 1
        except OSError as e:
            if e.errno not in (errno.ENETDOWN, errno.ENXIO, errno.ENOBUFS):
                raise
            self.tx_dropped += 1

    def close(self) -> None:
        self._sock.close()
