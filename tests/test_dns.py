"""The stub resolver (seqs.services.dns) against scripted servers on a virtual LAN.

A host (10.0.0.2) asks one or two server stacks (10.0.0.1, 10.0.0.3) whose
port 53 is a test script: it sees each query as a parsed message and decides
what goes back — a right answer, a wrong ID, another question, garbage,
nothing.  Time is virtual; every timeout is checked to the millisecond.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqs.cli.demo_responders import DnsResponder
from seqs.phy.faults import FaultConfig
from seqs.phy.memory import VirtualNetwork
from seqs.services.dns import (
    CnameLoop,
    DnsError,
    DnsQuery,
    DnsTimeout,
    NxDomain,
    Refused,
    Resolver,
    ResolverConfig,
    ServFail,
)
from seqs.sockets.base import EPHEMERAL_HIGH, EPHEMERAL_LOW
from seqs.stack import Stack
from seqs.wire import dns as wdns
from seqs.wire.dns import DnsMessage, Record

S1, S2 = "10.0.0.1", "10.0.0.3"
ONE_WAY = 0.001  # link delay each way: a round trip is 2 ms

Handler = Callable[[DnsMessage], list[bytes]]


def reply(q: DnsMessage, *answers: Record, rcode: int = 0, ra: bool = True, tc: bool = False,
          authority: tuple[Record, ...] = (), ident: int | None = None) -> bytes:
    flags = wdns.FLAG_QR | wdns.FLAG_AA | wdns.FLAG_RD | rcode | (wdns.FLAG_RA if ra else 0)
    flags |= wdns.FLAG_TC if tc else 0
    return DnsMessage(q.id if ident is None else ident, flags, q.questions, answers, authority).emit()


def a_answer(address: str, ttl: int = 300) -> Handler:
    return lambda q: [reply(q, Record.a(q.questions[0].name, address, ttl))]


def silent(q: DnsMessage) -> list[bytes]:
    return []


class ScriptedDns:
    """UDP port 53 on ``stack``, answered by ``handler``; ``queries`` logs (time, query, peer)."""

    def __init__(self, stack: Stack, handler: Handler) -> None:
        self.stack = stack
        self.handler = handler
        self.queries: list[tuple[float, DnsMessage, tuple[str, int]]] = []
        self.sock = stack.udp_socket()
        self.sock.bind(("", 53))
        self.sock.on_event = self._on_event

    def _on_event(self) -> None:
        while (got := self.sock.recvfrom()) is not None:
            data, peer = got
            q = DnsMessage.parse(data)
            self.queries.append((self.stack.iface.now, q, peer))
            for out in self.handler(q):
                self.sock.sendto(out, peer)


class Lan:
    def __init__(self, servers: int = 1, **config: object) -> None:
        self.net = VirtualNetwork()
        self.host = Stack(ip="10.0.0.2/24", mac="02:00:00:00:00:02", rng=random.Random(7))
        self.net.attach(self.host, FaultConfig(delay=ONE_WAY))
        self.server_stacks = []
        for i in range(servers):
            s = Stack(ip=(S1, S2)[i] + "/24", mac=f"02:00:00:00:01:0{i}", rng=random.Random(100 + i))
            self.net.attach(s, FaultConfig(delay=ONE_WAY))
            self.server_stacks.append(s)
            # Neighbours known from the start, so round trips are DNS only.
            self.host.iface.arp.update(s.iface.address, s.iface.mac, 0.0, create=True)
            s.iface.arp.update(self.host.iface.address, self.host.iface.mac, 0.0, create=True)
        config.setdefault("servers", [S1, S2][:servers])
        self.resolver = Resolver(self.host, ResolverConfig(**config))  # type: ignore[arg-type]

    def serve(self, handler: Handler, index: int = 0) -> ScriptedDns:
        return ScriptedDns(self.server_stacks[index], handler)

    def start(self, name: str, rtype: str | int = "A") -> DnsQuery:
        self.host.poll(self.net.now)  # API calls happen at the stack's latest time
        q = self.resolver.query(name, rtype)
        self.host.poll(self.net.now)
        return q

    def resolve(self, name: str, rtype: str | int = "A", timeout: float = 120.0) -> DnsQuery:
        q = self.start(name, rtype)
        self.net.run_until(lambda: q.done, timeout)
        assert q.done, f"query not done after {timeout} s virtual"
        return q

    def wait(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass (the network alone stops when idle)."""
        end = self.net.now + seconds
        self.net.run_for(seconds)
        self.net.now = max(self.net.now, end)

    @property
    def drops(self) -> dict[str, int]:
        return self.host.stats.drops


# -- the ordinary case ----------------------------------------------------------------------


def test_a_query_is_one_udp_round_trip_with_rd_and_edns() -> None:
    lan = Lan()
    srv = lan.serve(a_answer("192.0.2.10"))
    q = lan.resolve("www.example")
    assert q.result() == ["192.0.2.10"]
    assert (q.server, q.via_tcp, q.truncated, q.tries, q.from_cache) == (S1, False, False, 1, False)
    assert lan.net.now == pytest.approx(2 * ONE_WAY)
    ((_, query, (src, sport)),) = srv.queries
    assert src == "10.0.0.2" and EPHEMERAL_LOW <= sport <= EPHEMERAL_HIGH
    assert query.rd and not query.qr and query.questions == (wdns.Question("www.example", wdns.TYPE_A),)
    assert query.opt is not None and query.opt.cls == 1232  # RFC 6891 payload size


def test_each_query_gets_a_fresh_random_id_and_source_port() -> None:
    # RFC 5452 §4: both are the only entropy a stub resolver has against spoofing.
    lan = Lan(cache_size=0)
    srv = lan.serve(a_answer("192.0.2.10"))
    for _ in range(8):
        lan.resolve("www.example")
    ids = {q.id for _, q, _ in srv.queries}
    ports = {peer[1] for _, _, peer in srv.queries}
    assert len(ids) == 8 and len(ports) == 8
    assert len(lan.host.udp) == 0  # every socket closed again


def test_aaaa_query_returns_compressed_ipv6_text() -> None:
    lan = Lan()
    lan.serve(lambda q: [reply(q, Record.aaaa(q.questions[0].name, "2001:db8:0:0::1"))])
    assert lan.resolve("v6.example", "AAAA").result() == ["2001:db8::1"]


def test_ptr_query_for_an_address_asks_for_the_reverse_name() -> None:
    lan = Lan()
    srv = lan.serve(lambda q: [reply(q, Record.ptr(q.questions[0].name, "host.example"))])
    q = lan.resolve("192.0.2.7", "PTR")
    assert q.result() == ["host.example"]
    assert srv.queries[0][1].questions[0].name == "7.2.0.192.in-addr.arpa"


def test_nodata_answer_is_an_empty_list_not_an_error() -> None:
    # RFC 2308 §2.2: NOERROR with no records of the type.
    lan = Lan()
    lan.serve(lambda q: [reply(q)])
    assert lan.resolve("www.example", "AAAA").result() == []


def test_address_literal_answers_itself_without_a_packet() -> None:
    lan = Lan()
    srv = lan.serve(silent)
    q = lan.start("192.0.2.1", "A")
    assert q.done and q.result() == ["192.0.2.1"] and q.from_cache
    assert srv.queries == []


def test_on_done_runs_once_from_the_stacks_ready_list() -> None:
    lan = Lan()
    lan.serve(a_answer("192.0.2.10"))
    calls: list[DnsQuery] = []
    lan.host.poll(lan.net.now)
    q = lan.resolver.query("www.example", on_done=calls.append)
    assert calls == []  # never from inside the call
    lan.host.poll(lan.net.now)
    lan.net.run_until(lambda: bool(calls), 5)
    lan.net.run_for(1.0)
    assert calls == [q]


def test_servers_default_to_the_stacks_list_read_at_each_query() -> None:
    lan = Lan(servers=1)
    lan.resolver.config.servers = None
    lan.serve(a_answer("192.0.2.10"))
    with pytest.raises(ValueError, match="no DNS servers"):
        lan.resolver.query("www.example")
    lan.host.dns_servers.append(S1)  # e.g. a DHCP lease arrived
    assert lan.resolve("www.example").result() == ["192.0.2.10"]


def test_bad_names_are_refused_before_anything_is_sent() -> None:
    lan = Lan()
    with pytest.raises(ValueError):
        lan.resolver.query("a..b")
    with pytest.raises(ValueError):
        lan.resolver.query("x" * 64 + ".example")
    with pytest.raises(ValueError):
        lan.resolver.query("www.example", "NOPE")


# -- CNAMEs -----------------------------------------------------------------------------------


def test_cname_chain_in_one_answer_is_followed_in_order() -> None:
    lan = Lan()
    lan.serve(lambda q: [reply(q, Record.cname("www.example", "edge.example"),
                               Record.cname("edge.example", "node7.cdn.example"),
                               Record.a("node7.cdn.example", "192.0.2.77"))])
    q = lan.resolve("www.example")
    assert q.chain == ["edge.example", "node7.cdn.example"]
    assert q.result() == ["192.0.2.77"]


def test_cname_to_a_name_a_non_recursive_server_did_not_answer_is_asked_about() -> None:
    # RFC 1034 §5.3.3: with RA clear the server gave only the alias; ask for the target.
    lan = Lan()

    def handler(q: DnsMessage) -> list[bytes]:
        name = q.questions[0].name
        if name == "www.example":
            return [reply(q, Record.cname("www.example", "real.example"), ra=False)]
        return [reply(q, Record.a("real.example", "192.0.2.5"), ra=False)]

    srv = lan.serve(handler)
    q = lan.resolve("www.example")
    assert q.result() == ["192.0.2.5"] and q.chain == ["real.example"]
    assert [x.questions[0].name for _, x, _ in srv.queries] == ["www.example", "real.example"]


def test_cname_loop_is_reported_not_followed_forever() -> None:
    lan = Lan()
    lan.serve(lambda q: [reply(q, Record.cname("a.example", "b.example"), Record.cname("b.example", "a.example"))])
    q = lan.resolve("a.example")
    with pytest.raises(CnameLoop, match="loop"):
        q.result()


def test_cname_loop_across_queries_is_reported() -> None:
    lan = Lan()
    targets = {"a.example": "b.example", "b.example": "c.example", "c.example": "a.example"}

    def handler(q: DnsMessage) -> list[bytes]:
        name = q.questions[0].name
        return [reply(q, Record.cname(name, targets[name]), ra=False)]

    srv = lan.serve(handler)
    assert isinstance(lan.resolve("a.example").error, CnameLoop)
    assert len(srv.queries) == 3


def test_cname_chain_longer_than_max_cname_is_refused() -> None:
    lan = Lan(max_cname=3)
    chain = [Record.cname(f"n{i}.example", f"n{i + 1}.example") for i in range(6)]
    lan.serve(lambda q: [reply(q, *chain, Record.a("n6.example", "192.0.2.1"))])
    with pytest.raises(CnameLoop, match="more than 3"):
        lan.resolve("n0.example").result()


def test_cname_query_returns_the_alias_itself() -> None:
    lan = Lan()
    lan.serve(lambda q: [reply(q, Record.cname("www.example", "real.example"))])
    q = lan.resolve("www.example", "CNAME")
    assert q.result() == ["real.example"] and q.chain == []


# -- errors ----------------------------------------------------------------------------------


def test_nxdomain_raises_nxdomain_with_rcode_3() -> None:
    lan = Lan()
    lan.serve(lambda q: [reply(q, rcode=wdns.RCODE_NXDOMAIN)])
    q = lan.resolve("nosuch.example")
    with pytest.raises(NxDomain) as e:
        q.result()
    assert e.value.rcode == 3 and e.value.server == S1 and "NXDOMAIN" in str(e.value)
    assert isinstance(e.value, OSError)


def test_nxdomain_at_the_end_of_a_cname_names_the_missing_target() -> None:
    lan = Lan()
    lan.serve(lambda q: [reply(q, Record.cname("www.example", "gone.example"), rcode=wdns.RCODE_NXDOMAIN)])
    with pytest.raises(NxDomain, match=r"via CNAME gone\.example"):
        lan.resolve("www.example").result()


def test_servfail_moves_to_the_next_server() -> None:
    lan = Lan(servers=2)
    bad = lan.serve(lambda q: [reply(q, rcode=wdns.RCODE_SERVFAIL)], 0)
    good = lan.serve(a_answer("192.0.2.10"), 1)
    q = lan.resolve("www.example")
    assert q.result() == ["192.0.2.10"] and q.server == S2
    assert len(bad.queries) == 1 and len(good.queries) == 1
    assert lan.net.now == pytest.approx(4 * ONE_WAY)  # no timeout waited


def test_servfail_from_every_server_raises_servfail_asking_each_once() -> None:
    lan = Lan(servers=2)
    a = lan.serve(lambda q: [reply(q, rcode=wdns.RCODE_SERVFAIL)], 0)
    b = lan.serve(lambda q: [reply(q, rcode=wdns.RCODE_SERVFAIL)], 1)
    with pytest.raises(ServFail) as e:
        lan.resolve("www.example").result()
    assert e.value.rcode == 2 and e.value.server == S2
    assert len(a.queries) == len(b.queries) == 1


def test_refused_is_reported_as_refused() -> None:
    lan = Lan()
    lan.serve(lambda q: [reply(q, rcode=wdns.RCODE_REFUSED)])
    with pytest.raises(Refused):
        lan.resolve("www.example").result()


def test_error_reply_without_a_question_section_is_accepted() -> None:
    # Some servers send FORMERR/NOTIMP/SERVFAIL with QDCOUNT 0.
    lan = Lan()
    lan.serve(lambda q: [DnsMessage(q.id, wdns.FLAG_QR | wdns.RCODE_NOTIMP).emit()])
    with pytest.raises(DnsError, match="NOTIMP") as e:
        lan.resolve("www.example").result()
    assert e.value.rcode == wdns.RCODE_NOTIMP


def test_formerr_to_an_edns_query_is_retried_without_edns() -> None:
    # RFC 6891 §7
    lan = Lan()

    def handler(q: DnsMessage) -> list[bytes]:
        if q.opt is not None:
            return [reply(q, rcode=wdns.RCODE_FORMERR)]
        return [reply(q, Record.a("www.example", "192.0.2.10"))]

    srv = lan.serve(handler)
    assert lan.resolve("www.example").result() == ["192.0.2.10"]
    assert [x.opt is not None for _, x, _ in srv.queries] == [True, False]


# -- retries and timeouts --------------------------------------------------------------------


def test_silence_retries_round_the_servers_then_times_out() -> None:
    lan = Lan(servers=2, timeout=2.0, attempts=2)
    a = lan.serve(silent, 0)
    b = lan.serve(silent, 1)
    q = lan.resolve("www.example")
    with pytest.raises(DnsTimeout) as e:
        q.result()
    assert isinstance(e.value, TimeoutError)
    # S1 at 0, S2 at 2, S1 at 4, S2 at 6 (arrival one link delay later); given up at 8.
    assert [round(t, 3) for t, _, _ in a.queries] == [0.001, 4.001]
    assert [round(t, 3) for t, _, _ in b.queries] == [2.001, 6.001]
    assert lan.net.now == pytest.approx(8.0)
    assert q.tries == 4
    assert len({x.id for _, x, _ in a.queries + b.queries}) == 4


def test_second_server_answers_after_the_first_times_out() -> None:
    lan = Lan(servers=2, timeout=1.5)
    lan.serve(silent, 0)
    lan.serve(a_answer("192.0.2.10"), 1)
    q = lan.resolve("www.example")
    assert q.result() == ["192.0.2.10"] and q.server == S2
    assert lan.net.now == pytest.approx(1.5 + 2 * ONE_WAY)


def test_late_answer_to_an_earlier_try_still_counts() -> None:
    lan = Lan(servers=2, timeout=1.0)
    slow = lan.serve(silent, 0)
    lan.serve(silent, 1)
    q = lan.start("www.example")
    lan.net.run_until(lambda: len(slow.queries) == 1, 5)
    lan.net.run_for(1.2)  # S1's try timed out, S2 has been asked
    _, first, peer = slow.queries[0]
    slow.sock.sendto(reply(first, Record.a("www.example", "192.0.2.99")), peer)
    lan.net.run_until(lambda: q.done, 5)
    assert q.result() == ["192.0.2.99"] and q.server == S1


def test_icmp_port_unreachable_moves_on_without_waiting_for_the_timeout() -> None:
    lan = Lan(servers=2, timeout=2.0)
    # nothing listens on 10.0.0.1:53: the stack answers ICMP port unreachable
    lan.serve(a_answer("192.0.2.10"), 1)
    q = lan.resolve("www.example")
    assert q.result() == ["192.0.2.10"] and q.server == S2
    assert lan.net.now < 0.01
    assert lan.drops["dns_server_unreachable"] == 1


def test_unreachable_everywhere_reports_the_reason() -> None:
    lan = Lan(servers=1, attempts=2)
    with pytest.raises(DnsError, match="unreachable"):
        lan.resolve("www.example").result()


def test_cancel_ends_the_query_and_closes_its_sockets() -> None:
    lan = Lan()
    lan.serve(silent)
    q = lan.start("www.example")
    q.cancel()
    assert q.done and isinstance(q.error, DnsError) and "cancel" in str(q.error)
    assert len(lan.host.udp) == 0 and not lan.resolver.active


# -- spoofing and garbage ---------------------------------------------------------------------


def test_reply_with_wrong_id_is_dropped_and_counted_then_right_one_accepted() -> None:
    lan = Lan()
    lan.serve(lambda q: [reply(q, Record.a("www.example", "6.6.6.6"), ident=(q.id + 1) & 0xFFFF),
                         reply(q, Record.a("www.example", "192.0.2.10"))])
    assert lan.resolve("www.example").result() == ["192.0.2.10"]
    assert lan.drops["dns_bad_id"] == 1


def test_reply_to_another_question_is_dropped_and_counted() -> None:
    lan = Lan()

    def handler(q: DnsMessage) -> list[bytes]:
        other = DnsMessage.query(q.id, "evil.example", wdns.TYPE_A)
        return [other.reply((Record.a("evil.example", "6.6.6.6"),)).emit(),
                reply(q, Record.a("www.example", "192.0.2.10"))]

    lan.serve(handler)
    assert lan.resolve("www.example").result() == ["192.0.2.10"]
    assert lan.drops["dns_bad_question"] == 1


def test_reply_from_another_port_never_reaches_the_query() -> None:
    # RFC 5452 §9.1: the reply must come from the address and port we asked.
    lan = Lan(timeout=0.5, attempts=1)
    srv = lan.serve(silent)
    q = lan.start("www.example")
    lan.net.run_until(lambda: bool(srv.queries), 5)
    _, query, peer = srv.queries[0]
    rogue = lan.server_stacks[0].udp_socket()
    rogue.bind(("", 5353))
    rogue.sendto(reply(query, Record.a("www.example", "6.6.6.6")), peer)
    lan.net.run_until(lambda: q.done, 5)
    assert isinstance(q.error, DnsTimeout)
    assert lan.drops["udp_no_socket"] == 1


def test_records_about_other_names_are_neither_returned_nor_cached() -> None:
    lan = Lan()
    srv = lan.serve(lambda q: [reply(q, Record.a(q.questions[0].name, "192.0.2.10"),
                                     Record.a("bank.example", "6.6.6.6", ttl=86400))])
    assert lan.resolve("www.example").result() == ["192.0.2.10"]
    lan.resolve("bank.example")
    assert len(srv.queries) == 2  # bank.example was asked about, not taken from the poisoned answer


def test_garbage_replies_are_counted_and_the_real_one_wins() -> None:
    lan = Lan()
    lan.serve(lambda q: [b"", b"\x00" * 5, q.id.to_bytes(2, "big") + b"\x81\x80\x00\x01" + b"\xc0\x0c" * 20,
                         reply(q, Record.a("www.example", "192.0.2.10"))])
    assert lan.resolve("www.example").result() == ["192.0.2.10"]
    assert sum(v for k, v in lan.drops.items() if k.startswith("dns_")) == 3


def test_query_echoed_back_is_not_taken_for_an_answer() -> None:
    lan = Lan(timeout=0.5, attempts=1)
    lan.serve(lambda q: [q.emit()])
    assert isinstance(lan.resolve("www.example").error, DnsTimeout)
    assert lan.drops["dns_not_response"] == 1


# -- truncation and TCP (RFC 7766) ------------------------------------------------------------


def _big(name: str, n: int = 80) -> list[Record]:
    return [Record.aaaa(name, f"2001:db8::{i:x}") for i in range(1, n + 1)]


def test_truncated_answer_is_reported_and_fetched_over_tcp() -> None:
    lan = Lan()
    dns = DnsResponder(lan.server_stacks[0], _big("big.example"))
    q = lan.resolve("big.example", "AAAA")
    assert len(q.result()) == 80
    assert q.truncated and q.via_tcp and q.server == S1
    assert (dns.udp_queries, dns.tcp_queries, dns.truncated) == (1, 1, 1)
    lan.net.run_for(1.0)
    assert len(lan.host.tcp) <= 1  # closed (at most TIME-WAIT is left)
    assert all(c.state_name in ("TIME-WAIT", "CLOSED") for c in lan.host.tcp.connections)


def test_small_answers_from_the_same_server_stay_on_udp() -> None:
    lan = Lan()
    dns = DnsResponder(lan.server_stacks[0], [Record.a("small.example", "192.0.2.1"), *_big("big.example")])
    q = lan.resolve("small.example")
    assert not q.truncated and not q.via_tcp and dns.tcp_queries == 0


def test_truncated_answer_from_a_server_without_tcp_moves_on() -> None:
    lan = Lan(servers=2)
    DnsResponder(lan.server_stacks[0], _big("big.example"), tcp=False)  # TCP SYN gets RST
    DnsResponder(lan.server_stacks[1], [Record.aaaa("big.example", "2001:db8::1")])
    q = lan.resolve("big.example", "AAAA")
    assert q.result() == ["2001:db8::1"] and q.server == S2 and q.truncated and not q.via_tcp
    assert lan.drops["dns_tcp_failed"] == 1


def test_tcp_fallback_that_never_answers_times_out_then_gives_up() -> None:
    lan = Lan(servers=1, attempts=1, tcp_timeout=3.0)
    lan.serve(lambda q: [reply(q, tc=True)])
    lan.server_stacks[0].tcp_listen(53)  # accepts, never reads
    q = lan.resolve("big.example", "AAAA")
    assert isinstance(q.error, DnsTimeout) and "TCP" in str(q.error)
    assert lan.net.now == pytest.approx(2 * ONE_WAY + 3.0, abs=1e-3)


def test_tcp_reply_with_the_wrong_id_is_dropped() -> None:
    lan = Lan(servers=1, attempts=1, tcp_timeout=2.0)
    lan.serve(lambda q: [reply(q, tc=True)])
    listener = lan.server_stacks[0].tcp_listen(53)
    conns = []

    def on_accept() -> None:
        while (c := listener.accept()) is not None:
            conns.append(c)
            c.on_event = lambda c=c: _answer_wrong_id(c)

    def _answer_wrong_id(c) -> None:  # type: ignore[no-untyped-def]
        data = c.recv()
        if data and len(data) > 2:
            q = DnsMessage.parse(data[2:])
            out = reply(q, Record.a("big.example", "6.6.6.6"), ident=q.id ^ 1)
            c.send(len(out).to_bytes(2, "big") + out)
            c.close()

    listener.on_event = on_accept
    q = lan.resolve("big.example")
    assert q.error is not None and lan.drops["dns_bad_id"] == 1


# -- the cache ---------------------------------------------------------------------------


def test_answer_is_cached_for_its_ttl_then_asked_again() -> None:
    lan = Lan()
    srv = lan.serve(a_answer("192.0.2.10", ttl=60))
    lan.resolve("www.example")
    lan.wait(59.0)
    q = lan.resolve("www.example")
    assert q.from_cache and q.result() == ["192.0.2.10"] and len(srv.queries) == 1
    lan.wait(1.5)
    q = lan.resolve("www.example")
    assert not q.from_cache and len(srv.queries) == 2


def test_names_in_the_cache_match_case_insensitively() -> None:
    lan = Lan()
    srv = lan.serve(a_answer("192.0.2.10"))
    lan.resolve("www.example")
    assert lan.resolve("WWW.Example.").from_cache and len(srv.queries) == 1


def test_ttl_zero_is_never_cached() -> None:
    lan = Lan()
    srv = lan.serve(a_answer("192.0.2.10", ttl=0))
    lan.resolve("www.example")
    lan.resolve("www.example")
    assert len(srv.queries) == 2


def test_ttl_is_capped_at_max_ttl() -> None:
    lan = Lan(max_ttl=10)
    srv = lan.serve(a_answer("192.0.2.10", ttl=86400))
    lan.resolve("www.example")
    lan.wait(11)
    lan.resolve("www.example")
    assert len(srv.queries) == 2


def test_cache_is_bounded_and_evicts_the_least_recently_used() -> None:
    lan = Lan(cache_size=2)
    srv = lan.serve(a_answer("192.0.2.10"))
    lan.resolve("a.example")
    lan.resolve("b.example")
    lan.resolve("a.example")  # a is now the most recently used
    lan.resolve("c.example")  # evicts b
    assert len(lan.resolver.cache) == 2
    assert lan.resolve("a.example").from_cache
    assert not lan.resolve("b.example").from_cache
    assert len(srv.queries) == 4


def test_cached_cname_chain_is_followed_without_a_packet() -> None:
    lan = Lan()
    srv = lan.serve(lambda q: [reply(q, Record.cname("www.example", "real.example"),
                                     Record.a("real.example", "192.0.2.5"))])
    lan.resolve("www.example")
    q = lan.resolve("www.example")
    assert q.from_cache and q.chain == ["real.example"] and q.result() == ["192.0.2.5"]
    q = lan.resolve("real.example")
    assert q.from_cache and len(srv.queries) == 1


def test_nxdomain_is_cached_for_the_soa_minimum() -> None:
    # RFC 2308 §5: min(SOA TTL, SOA MINIMUM)
    lan = Lan()
    soa = Record.soa("example", "ns.example", "admin.example", 1, 3600, 600, 86400, 30, ttl=300)
    srv = lan.serve(lambda q: [reply(q, rcode=wdns.RCODE_NXDOMAIN, authority=(soa,))])
    lan.resolve("nosuch.example")
    assert isinstance(lan.resolve("nosuch.example", "AAAA").error, NxDomain)  # any type
    assert len(srv.queries) == 1
    lan.wait(31)
    lan.resolve("nosuch.example")
    assert len(srv.queries) == 2


def test_negative_answer_without_soa_is_not_cached() -> None:
    lan = Lan()
    srv = lan.serve(lambda q: [reply(q, rcode=wdns.RCODE_NXDOMAIN)])
    lan.resolve("nosuch.example")
    lan.resolve("nosuch.example")
    assert len(srv.queries) == 2


def test_servfail_is_not_cached() -> None:
    lan = Lan()
    srv = lan.serve(lambda q: [reply(q, rcode=wdns.RCODE_SERVFAIL)])
    lan.resolve("www.example")
    lan.resolve("www.example")
    assert len(srv.queries) == 2


# -- fuzz: whatever comes back, the resolver never raises ------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=200), min_size=1, max_size=4), st.booleans())
def test_arbitrary_replies_never_raise(payloads: list[bytes], with_id: bool) -> None:
    lan = Lan(timeout=0.5, attempts=1)

    def handler(q: DnsMessage) -> list[bytes]:
        if with_id:
            # our ID and the QR bit, then anything: gets past the first checks
            return [q.id.to_bytes(2, "big") + b"\x81" + p for p in payloads]
        return payloads

    lan.serve(handler)
    q = lan.resolve("www.example", "A", timeout=30)
    assert q.done and (q.error is None or isinstance(q.error, DnsError))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=6),
       st.sampled_from(["A", "AAAA", "CNAME", "PTR"]))
def test_mutated_real_answers_never_raise(edits: list[tuple[int, int]], rtype: str) -> None:
    lan = Lan(timeout=0.5, attempts=1)

    def handler(q: DnsMessage) -> list[bytes]:
        name = q.questions[0].name
        good = bytearray(reply(q, Record.cname(name, "x.example"), Record.a("x.example", "192.0.2.1"),
                               Record.aaaa("x.example", "2001:db8::1"), Record.ptr(name, "p.example"),
                               authority=(Record.soa("example", "ns", "admin", 1, 2, 3, 4, 5),)))
        for pos, value in edits:
            if 2 <= pos < len(good):  # keep the ID so the mutation is actually parsed
                good[pos] = value
        return [bytes(good)]

    lan.serve(handler)
    q = lan.resolve("www.example", rtype, timeout=30)
    assert q.done and (q.error is None or isinstance(q.error, DnsError))
