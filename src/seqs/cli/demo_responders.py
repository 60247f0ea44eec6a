"""Tiny DNS and NTP servers for ``seqs demo`` (and the tests), run inside a stack,
and the demo's resolve and NTP steps that use them.

They are props, not services: an authoritative-only DNS responder for a fixed
set of records (UDP with truncation at 512 bytes or the client's EDNS size,
and TCP with length-prefixed messages, RFC 1035 §4.2) and an NTP server whose
clock reads the stack's time plus a fixed ``wall_offset`` (so the demo can
serve "virtual time plus a known offset").  Neither does anything a real server would be trusted for;
both are sans-IO like every service (time arrives through the stack).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from ..errors import ParseError
from ..phy.memory import VirtualNetwork
from ..services.dns import DnsQuery, Resolver
from ..services.ntp import NtpConfig, NtpQuery
from ..stack import Stack
from ..tcp.connection import TcpConnection
from ..wire import dns as wdns
from ..wire import ntp as wntp
from ..wire.dns import DnsMessage, Record
from ..wire.ntp import NtpPacket, NtpView

__all__ = ["DEMO_NTP_OFFSET", "DnsResponder", "NtpResponder", "demo_dns_ntp"]

_UDP_LIMIT = 512  # RFC 1035 §4.2.1, without EDNS


class DnsResponder:
    """Answers from ``records``; names not among them are NXDOMAIN, other types NODATA."""

    def __init__(self, stack: Stack, records: list[Record], port: int = 53, *, tcp: bool = True) -> None:
        self.stack = stack
        self.records = list(records)
        self.sock = stack.udp_socket()
        self.sock.bind(("", port))
        self.sock.on_event = self._on_udp
        self.listener = stack.tcp_listen(port) if tcp else None
        if self.listener is not None:
            self.listener.on_event = self._on_accept
        self._conns: dict[TcpConnection, bytearray] = {}
        self.udp_queries = 0
        self.tcp_queries = 0
        self.truncated = 0

    def answer(self, query: DnsMessage, limit: int | None) -> bytes:
        """The reply to ``query`` as bytes, truncated (TC, no records) past ``limit`` bytes."""
        if query.opcode != 0 or len(query.questions) != 1:
            return query.reply(rcode=wdns.RCODE_NOTIMP if query.opcode else wdns.RCODE_FORMERR).emit()
        q = query.questions[0]
        known = {wdns.name_key(r.name) for r in self.records}
        name, answers = q.name, []
        for _ in range(8):  # follow CNAMEs inside our data, as an authoritative server does
            here = [r for r in self.records if wdns.name_key(r.name) == wdns.name_key(name)]
            hits = [r for r in here if r.type == q.type]
            if hits:
                answers += hits
                break
            cname = next((r for r in here if r.type == wdns.TYPE_CNAME), None)
            if cname is None:
                break
            answers.append(cname)
            name = cname.target
        rcode = wdns.RCODE_NOERROR if wdns.name_key(name) in known else wdns.RCODE_NXDOMAIN
        wire = query.reply(tuple(answers), rcode=rcode).emit()
        if limit is not None and len(wire) > limit:
            self.truncated += 1
            wire = query.reply(rcode=rcode, tc=True).emit()  # RFC 2181 §9: TC, and no partial RRset
        return wire

    def _on_udp(self) -> None:
        while True:
            try:
                got = self.sock.recvfrom()
            except OSError:
                continue
            if got is None:
                return
            data, peer = got
            try:
                query = DnsMessage.parse(data)
            except ParseError:
                continue
            if query.qr:
                continue
            opt = query.opt
            limit = max(_UDP_LIMIT, opt.cls) if opt is not None else _UDP_LIMIT  # RFC 6891 §6.2.3
            self.udp_queries += 1
            self.sock.sendto(self.answer(query, limit), peer)

    def _on_accept(self) -> None:
        assert self.listener is not None
        while (conn := self.listener.accept()) is not None:
            self._conns[conn] = bytearray()
            conn.on_event = partial(self._on_tcp, conn)
            self._on_tcp(conn)

    def _on_tcp(self, conn: TcpConnection) -> None:
        buf = self._conns.get(conn)
        if buf is None:
            return
        try:
            while (chunk := conn.recv()) is not None:
                if not chunk:
                    conn.close()
                    del self._conns[conn]
                    return
                buf += chunk
        except OSError:
            del self._conns[conn]
            return
        while len(buf) >= 2 and len(buf) >= 2 + int.from_bytes(buf[:2], "big"):
            n = int.from_bytes(buf[:2], "big")
            data = bytes(buf[2 : 2 + n])
            del buf[: 2 + n]
            try:
                query = DnsMessage.parse(data)
            except ParseError:
                conn.abort()
                del self._conns[conn]
                return
            self.tcp_queries += 1
            reply = self.answer(query, None)
            conn.send(len(reply).to_bytes(2, "big") + reply)

    def close(self) -> None:
        self.sock.close()
        if self.listener is not None:
            self.listener.close()
        for conn in self._conns:
            conn.close()
        self._conns.clear()


class NtpResponder:
    """An NTP server (mode 4 replies, RFC 5905 §9.2) whose Unix time is ``now + wall_offset``."""

    def __init__(self, stack: Stack, wall_offset: float, port: int = 123, *, stratum: int = 1,
                 ref_id: bytes = b"DEMO") -> None:
        self.stack = stack
        self.wall_offset = wall_offset
        self.stratum = stratum
        self.ref_id = ref_id
        self.sock = stack.udp_socket()
        self.sock.bind(("", port))
        self.sock.on_event = self._on_event
        self.answered = 0

    def _on_event(self) -> None:
        while True:
            try:
                got = self.sock.recvfrom()
            except OSError:
                continue
            if got is None:
                return
            data, peer = got
            try:
                req = NtpView(data)
            except ParseError:
                continue
            if req.mode != wntp.MODE_CLIENT:
                continue
            # Scaled apart, as the client does, so the demo's offset comes out exact.
            t = (wntp.from_unix(self.wall_offset) + round(self.stack.iface.now * (1 << 32))) % wntp.ERA
            reply = NtpPacket(
                mode=wntp.MODE_SERVER, version=req.version, stratum=self.stratum, precision=-20,
                ref_id=self.ref_id, reference=t, origin=req.transmit, receive=t, transmit=t,
            )
            self.sock.sendto(reply.emit(), peer)
            self.answered += 1

    def close(self) -> None:
        self.sock.close()


# -- the demo's DNS and NTP steps ---------------------------------------------------------------

#: how far ahead of the host's clock the demo router's NTP server runs
DEMO_NTP_OFFSET = 0.25


def demo_dns_ntp(net: VirtualNetwork, router: Stack, host: Stack, out: Callable[[str], None]) -> bool:
    """``seqs demo``'s resolve and NTP steps: the router answers DNS and NTP, the host asks.

    Runs on the virtual network's time, over whatever faults its ports have (the
    demo makes the link lossless and symmetric first).  False if a step failed.
    """
    rip = router.ip
    big = [Record.aaaa("big.demo", f"fd00::{i:x}") for i in range(1, 61)]  # > 1232 bytes
    records = [
        Record.a("router.demo", rip), Record.a("host.demo", host.ip), Record.cname("www.demo", "router.demo"),
        Record.ptr(wdns.reverse_name(rip), "router.demo"), Record.ptr(wdns.reverse_name(host.ip), "host.demo"),
        *big,
    ]
    dns = DnsResponder(router, records)
    if not host.dns_servers:
        host.dns_servers.append(rip)
    resolver = Resolver(host)

    def ask(name: str, rtype: str) -> DnsQuery:
        host.poll(net.now)  # API calls happen at the stack's latest time
        q = resolver.query(name, rtype)
        host.poll(net.now)
        net.run_until(lambda: q.done, timeout=30)
        return q

    ok = True
    q = ask("www.demo", "A")
    if q.error is None:
        out(f"DNS: www.demo A -> CNAME {' -> '.join(q.chain)} -> {', '.join(q.values)} "
            f"(UDP from {q.server}, query id and source port random)")
    else:
        out(f"DNS: www.demo A failed: {q.error}")
        ok = False
    q = ask(rip, "PTR")
    out(f"DNS: PTR {rip} -> {', '.join(q.values) if q.error is None else q.error}")
    q = ask("nosuch.demo", "A")
    out(f"DNS: nosuch.demo -> {type(q.error).__name__}: {q.error}")
    q = ask("big.demo", "AAAA")
    if q.error is None and q.truncated and q.via_tcp:
        out(f"DNS: big.demo AAAA -> {len(q.values)} records: the UDP answer was truncated (TC), "
            f"so the host asked again over TCP (RFC 7766)")
    else:
        out(f"DNS: big.demo AAAA: expected a TCP fallback, got {q!r}")
        ok = False
    t0 = net.now
    q = ask("www.demo", "A")
    out(f"DNS: www.demo A again -> {', '.join(q.values)} from the cache "
        f"({'no packet sent' if q.from_cache else 'NOT cached'}, {(net.now - t0) * 1e3:.0f} ms)")
    dns.close()

    # NTP: the router's clock runs DEMO_NTP_OFFSET ahead of the host's (both read virtual time
    # plus the network's epoch); on a symmetric link the measured offset is exactly that.
    ntp = NtpResponder(router, net.epoch + DEMO_NTP_OFFSET)
    host.poll(net.now)
    nq = NtpQuery(host, rip, wall_offset=net.epoch, config=NtpConfig(samples=4, interval=0.5))
    host.poll(net.now)
    net.run_until(lambda: nq.done, timeout=30)
    ntp.close()
    if nq.error is not None or nq.best is None:
        out(f"NTP: failed: {nq.error}")
        return False
    best = nq.best
    out(f"NTP: {len(nq.samples)} samples from {rip} (stratum {best.stratum}); best: offset "
        f"{best.offset * 1e3:+.3f} ms, delay {best.delay * 1e3:.3f} ms (the router's clock was set "
        f"{DEMO_NTP_OFFSET * 1e3:+.0f} ms ahead)")
    return ok and abs(best.offset - DEMO_NTP_OFFSET) < 1e-6
