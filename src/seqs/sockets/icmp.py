"""A sans-IO ping socket: send ICMP echo requests, collect the replies.

Replies are matched on the identifier this socket chose at random; each one
is reported with its sequence number, sender, payload and arrival time, so the
round-trip time is ``reply.time - sent[seq]`` for whoever keeps the send times.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ..iface import Interface
from ..wire import ipv4 as wip
from .base import Notifier

__all__ = ["EchoReply", "PingSocket"]


@dataclass(frozen=True, slots=True)
class EchoReply:
    src: str
    seq: int
    payload: bytes
    time: float
    #: the IPv4 TTL the reply arrived with (what ping prints)
    ttl: int = 64


class PingSocket(Notifier):
    __slots__ = ("_replies", "closed", "ident", "iface", "max_queued", "sent")

    def __init__(self, iface: Interface) -> None:
        self.iface = iface
        self.ident = iface.rng.getrandbits(16)
        self.on_event: Callable[[], None] | None = None
        self._event_queued = False
        self._replies: deque[EchoReply] = deque()
        self.max_queued = 1024
        #: seq → send time, for the caller's RTT arithmetic
        self.sent: dict[int, float] = {}
        self.closed = False
        iface.add_echo_listener(self._on_reply)

    def send(self, host: str, seq: int, payload: bytes = b"") -> None:
        now = self.iface.now
        self.iface.send_echo_request(wip.aton(host), self.ident, seq & 0xFFFF, payload, now)
        self.sent[seq & 0xFFFF] = now
        if len(self.sent) > 4096:
            del self.sent[next(iter(self.sent))]

    def recv(self) -> EchoReply | None:
        return self._replies.popleft() if self._replies else None

    @property
    def readable(self) -> bool:
        return bool(self._replies)

    def close(self) -> None:
        self.closed = True
        self.iface.remove_echo_listener(self._on_reply)

    def _on_reply(self, src: int, ident: int, seq: int, payload: bytes, now: float, ttl: int = 64) -> None:
        if ident != self.ident:
            return
        if len(self._replies) >= self.max_queued:
            self.iface.stats.drop("icmp_echo_reply_overflow")
            return
        self._replies.append(EchoReply(wip.ntoa(src), seq, payload, now, ttl))
        self._notify()
