"""The virtio-net header that Linux TAP devices carry with IFF_VNET_HDR.

It is the link's offload metadata: on receive it says whether the checksum
was already verified (``DATA_VALID``) or is still to be filled in
(``NEEDS_CSUM``, a frame from the local kernel) and whether the frame is a
GSO super-segment; on send it asks the kernel to fill checksums and split
super-segments (``include/uapi/linux/virtio_net.h``).  All fields little-endian.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .._typing import BytesLike
from ..errors import ParseError

__all__ = [
    "F_DATA_VALID",
    "F_NEEDS_CSUM",
    "GSO_NONE",
    "GSO_TCPV4",
    "HEADER_LEN",
    "VnetHeader",
]

HEADER_LEN = 12  # with num_buffers, as TUNSETVNETHDRSZ 12 gives
F_NEEDS_CSUM = 1
F_DATA_VALID = 2
GSO_NONE = 0
GSO_TCPV4 = 1
GSO_UDP = 3
GSO_TCPV6 = 4
GSO_ECN = 0x80

HDR = struct.Struct("<BBHHHHH")
#: The header for a frame that needs nothing done.
ZERO = bytes(HEADER_LEN)


@dataclass(frozen=True, slots=True)
class VnetHeader:
    flags: int = 0
    gso_type: int = GSO_NONE
    hdr_len: int = 0
    gso_size: int = 0
    csum_start: int = 0
    csum_offset: int = 0
    num_buffers: int = 0

    @classmethod
    def parse(cls, buf: BytesLike) -> VnetHeader:
        if len(buf) < HEADER_LEN:
            raise ParseError("vnet_truncated", f"{len(buf)} bytes")
        return cls(*HDR.unpack_from(buf, 0))

    def emit(self) -> bytes:
        return HDR.pack(
            self.flags, self.gso_type, self.hdr_len, self.gso_size, self.csum_start, self.csum_offset, self.num_buffers
        )
