"""The DNS cache counts what it pushes out: ``cache.evictions`` and, in the stack's
stats where the resolver's drops are, ``dns_cache_evicted``.  Only live entries
pushed out to make room count; an entry that expired, or one replaced by a
fresher answer, is no eviction."""

from __future__ import annotations

from seqs.iface.stats import Stats
from seqs.services.dns import DnsCache
from seqs.wire import dns as wdns
from seqs.wire.dns import Record
from test_dns import Lan, a_answer


def _a(name: str) -> tuple[Record, ...]:
    return (Record.a(name, "192.0.2.1", 60),)


def test_each_entry_pushed_out_of_a_full_cache_is_counted() -> None:
    stats = Stats()
    cache = DnsCache(size=2, stats=stats)
    cache.put("a.example", wdns.TYPE_A, _a("a.example"), 60, 0.0)
    cache.put("b.example", wdns.TYPE_A, _a("b.example"), 60, 0.0)
    assert cache.evictions == 0 and "dns_cache_evicted" not in stats.drops
    cache.put("c.example", wdns.TYPE_A, _a("c.example"), 60, 0.0)  # a goes: least recently used
    assert cache.evictions == 1 and stats.drops["dns_cache_evicted"] == 1
    assert cache.get("a.example", wdns.TYPE_A, 1.0) is None
    cache.put("a.example", wdns.TYPE_A, _a("a.example"), 60, 1.0)  # and b goes
    assert cache.evictions == 2 and stats.drops["dns_cache_evicted"] == 2 and len(cache) == 2


def test_a_refresh_or_an_expiry_is_no_eviction() -> None:
    cache = DnsCache(size=2)  # no stats: the cache's own counter still counts
    cache.put("a.example", wdns.TYPE_A, _a("a.example"), 10, 0.0)
    cache.put("b.example", wdns.TYPE_A, _a("b.example"), 60, 0.0)
    cache.put("a.example", wdns.TYPE_A, _a("a.example"), 10, 5.0)  # replaced in place, the table stays full
    assert cache.evictions == 0 and len(cache) == 2
    assert cache.get("a.example", wdns.TYPE_A, 20.0) is None  # expired and gone
    cache.put("c.example", wdns.TYPE_A, _a("c.example"), 60, 20.0)  # there is room again
    assert cache.evictions == 0 and len(cache) == 2


def test_resolver_evictions_show_in_the_stack_stats() -> None:
    lan = Lan(cache_size=2)
    srv = lan.serve(a_answer("192.0.2.10"))
    for name in ("a.example", "b.example", "c.example", "d.example"):
        lan.resolve(name)
    assert lan.resolver.cache.evictions == 2
    assert lan.drops["dns_cache_evicted"] == 2
    assert "dns_cache_evicted" in lan.host.stats.as_dict()["drops"]  # type: ignore[operator]
    assert not lan.resolve("a.example").from_cache and len(srv.queries) == 5  # it really went
