"""The device contract between drivers (runtimes) and links.

A device moves whole Ethernet frames.  ``read`` hands each received frame to
a callback (with the time it was given) as a memoryview that is only valid during the call (the device
reuses its buffer; the stack copies what it keeps), which saves one copy per
frame.  ``send`` takes one complete frame.  Devices that hold frames back
(the fault injector's delay) report when they next need ``poll``.
"""

from __future__ import annotations

from collections.abc import Callable

from .._typing import BytesLike

__all__ = ["Device", "FrameHandler"]

#: ``handler(frame, now)``: the signature of :meth:`seqs.iface.Interface.receive`, so a
#: driver hands frames straight to the stack
FrameHandler = Callable[[memoryview, float], None]


class Device:
    """Base class of seqs devices.  Subclasses override what they support."""

    #: largest IP packet the link carries (the interface MTU)
    mtu: int = 1500
    #: frames carry a virtio-net header in front of the Ethernet header
    vnet_hdr: bool = False
    #: a short name for logs
    name: str = "device"

    def fileno(self) -> int:
        """A file descriptor that polls readable when frames wait (-1: none)."""
        return -1

    def read(self, handler: FrameHandler, now: float, limit: int = 64) -> int:
        """Hand up to ``limit`` waiting frames to ``handler``; return how many."""
        raise NotImplementedError

    def send(self, frame: BytesLike, now: float) -> None:
        raise NotImplementedError

    def next_deadline(self) -> float | None:
        """When :meth:`poll` must run (frames held back), or None."""
        return None

    def poll(self, now: float) -> None:
        """Release frames whose time has come."""

    def close(self) -> None:
        pass

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
