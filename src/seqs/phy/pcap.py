"""Writing classic pcap files (LINKTYPE_ETHERNET) that Wireshark and tshark read.

Format: the libpcap file header (magic 0xa1b23c4d for nanosecond
timestamps), then per packet a 16-byte record header and the bytes.  A
virtio-net header in front of a frame is not part of Ethernet and is cut off.
"""

from __future__ import annotations

import struct
import time
from typing import BinaryIO

from .._typing import BytesLike
from .base import Device, FrameHandler

__all__ = ["PcapDevice", "PcapWriter"]

_MAGIC_NS = 0xA1B23C4D
_LINKTYPE_ETHERNET = 1
_FILE_HDR = struct.Struct("<IHHiIII")
_REC_HDR = struct.Struct("<IIII")


class PcapWriter:
    """``PcapWriter("out.pcap")``; ``write(frame)``; ``close()`` (or use ``with``)."""

    def __init__(self, target: str | BinaryIO, *, snaplen: int = 262144, skip: int = 0) -> None:
        if isinstance(target, str):
            self._f: BinaryIO = open(target, "wb")  # noqa: SIM115 - closed by close()
            self._owned = True
        else:
            self._f = target
            self._owned = False
        self.snaplen = snaplen
        #: bytes of link metadata (virtio-net header) to cut from each frame
        self.skip = skip
        self.count = 0
        self._f.write(_FILE_HDR.pack(_MAGIC_NS, 2, 4, 0, 0, snaplen, _LINKTYPE_ETHERNET))

    def write(self, frame: BytesLike, timestamp: float | None = None) -> None:
        """Record one frame; ``timestamp`` is wall-clock seconds (default: now)."""
        if self._f.closed:
            return
        ts = time.time() if timestamp is None else timestamp
        data = memoryview(frame)[self.skip :]
        sec = int(ts)
        nsec = int((ts - sec) * 1e9)
        cap = data[: self.snaplen]
        self._f.write(_REC_HDR.pack(sec, nsec, len(cap), len(data)))
        self._f.write(cap)
        self.count += 1

    def flush(self) -> None:
        if not self._f.closed:
            self._f.flush()

    def close(self) -> None:
        if not self._f.closed:
            self._f.flush()
            if self._owned:
                self._f.close()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PcapDevice(Device):
    """Wraps a device and records every frame in and out (smoltcp's PcapWriter idea).

    Timestamps are wall-clock: monotonic ``now`` plus a fixed offset taken once.
    """

    def __init__(self, inner: Device, writer: PcapWriter) -> None:
        self.inner = inner
        self.writer = writer
        writer.skip = 12 if inner.vnet_hdr else 0
        self.mtu = inner.mtu
        self.vnet_hdr = inner.vnet_hdr
        self.name = inner.name
        self._offset = time.time() - time.monotonic()

    def fileno(self) -> int:
        return self.inner.fileno()

    def read(self, handler: FrameHandler, now: float, limit: int = 64) -> int:
        write = self.writer.write
        ts = now + self._offset

        def record(frame: memoryview, at: float) -> None:
            write(frame, ts)
            handler(frame, at)

        return self.inner.read(record, now, limit)

    def send(self, frame: BytesLike, now: float) -> None:
        self.writer.write(frame, now + self._offset)
        self.inner.send(frame, now)

    def next_deadline(self) -> float | None:
        return self.inner.next_deadline()

    def poll(self, now: float) -> None:
        self.inner.poll(now)

    def close(self) -> None:
        self.writer.close()
        self.inner.close()
