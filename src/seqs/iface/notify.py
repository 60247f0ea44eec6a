"""Deferred readiness callbacks, shared by every socket-like object.

A socket never calls its user directly from inside packet processing.  When
its readiness changes it queues its ``on_event`` callback on the interface's
``ready`` list, and the interface runs the list once the frame (or poll) is
fully processed — so a callback may safely call back into the stack.  A
socket queued once is not queued again until its callback has run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .interface import Interface

__all__ = ["Notifier"]


class Notifier:
    """Base of socket-like objects: deferred readiness callbacks.  Subclasses
    provide ``iface`` and set ``on_event``/``_event_queued`` in ``__init__``."""

    __slots__ = ("_event_queued", "on_event")

    iface: Interface
    on_event: Callable[[], None] | None
    _event_queued: bool

    def _notify(self) -> None:
        if self.on_event is not None and not self._event_queued:
            self._event_queued = True
            self.iface.ready.append(self._fire)

    def _fire(self) -> None:
        self._event_queued = False
        cb = self.on_event
        if cb is not None:
            cb()
