"""The Echo Protocol over UDP (RFC 862): every datagram goes back to its sender.

Runs entirely inside the stack's processing: the socket's readiness callback
drains the queue and answers, so a runtime needs no thread per service.
"""

from __future__ import annotations

from ..stack import Stack

__all__ = ["UdpEchoService"]


class UdpEchoService:
    def __init__(self, stack: Stack, port: int = 7) -> None:
        self.sock = stack.udp_socket()
        self.sock.bind(("", port))
        self.sock.on_event = self._on_event
        self.echoed = 0

    def _on_event(self) -> None:
        sock = self.sock
        while True:
            try:
                got = sock.recvfrom()
            except OSError:
                continue  # an ICMP error for an earlier answer; keep serving
            if got is None:
                return
            data, peer = got
            if peer[1] == 0:
                # RFC 768: source port 0 means no reply is wanted (and none can be addressed);
                # a UDP flood with random source ports sends some.
                self.sock.iface.stats.drop("udp_echo_from_port_zero")
                continue
            try:
                sock.sendto(data, peer)
            except OSError:
                continue  # e.g. the sender is a broadcast address we may not answer
            self.echoed += 1

    def close(self) -> None:
        self.sock.close()
