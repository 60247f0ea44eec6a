"""``seqs resolve NAME``: ask a DNS server through a seqs host, print like ``dig +short``.

One line per record: the CNAMEs followed (with their final dot), then the
records of the type asked for.  A name with no records of that type prints
nothing and succeeds, as dig does.  NXDOMAIN, SERVFAIL, a timeout and the like
print one line on standard error and exit 1.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from typing import Any

from ..services.dns import Resolver, ResolverConfig
from ..wire import dns as wdns
from ..wire import ipv4 as wip
from .oneshot import add_host_arguments, call, check_host_arguments, one_shot_host, run_until

__all__ = ["add_parser", "run"]

EXAMPLES = """\
examples:
  seqs resolve --tap tap0 --ip 10.0.0.2/24 --dns 10.0.0.1 www.example.org
  seqs resolve --tap tap0 --ip 10.0.0.2/24 --dns 10.0.0.1 --type AAAA www.example.org
  seqs resolve --tap tap0 --ip 10.0.0.2/24 --dns 10.0.0.1 --type PTR 10.0.0.1
  seqs resolve --tap tap0 --dhcp www.example.org        # the lease's DNS servers

exit status: 0 with an answer (even an empty one), 1 on NXDOMAIN, SERVFAIL,
timeout or another error (one line on stderr), 2 on a usage error.
"""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "resolve",
        help="look a name up in DNS through a seqs host (prints like dig +short)",
        description="Bring a seqs host up on a TAP device, ask DNS servers about NAME (UDP, with TCP "
        "fallback for truncated answers, CNAMEs followed) and print the answer like dig +short.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", metavar="NAME", help="the name to look up (for PTR: an address or a reverse name)")
    p.add_argument("-t", "--type", default="A", metavar="TYPE",
                   help="record type: A, AAAA, CNAME, PTR (also NS, MX, TXT, SOA; default: A)")
    p.add_argument("--dns", action="append", default=[], metavar="ADDR",
                   help="DNS server to ask; repeatable, tried in turn (default: the --dhcp lease's)")
    p.add_argument("--timeout", type=float, default=2.0, metavar="SECONDS",
                   help="wait per try (default: %(default)s)")
    p.add_argument("--attempts", type=int, default=2, metavar="N",
                   help="rounds over the servers before giving up (default: %(default)s)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="say on stderr which server answered, over what, and after how many tries")
    add_host_arguments(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    check_host_arguments(args)
    qtype = wdns.type_code(args.type)
    try:
        ipaddress.ip_address(args.name)  # answers itself (A, AAAA) or becomes its reverse name (PTR)
    except ValueError:
        wdns.encode_name(args.name)  # a malformed name is reported before the device opens
    for s in args.dns:
        wip.aton(s)
    if not args.dns and not args.dhcp:
        raise ValueError("no DNS server: give --dns ADDR (or --dhcp to use the lease's)")
    config = ResolverConfig(servers=args.dns or None, timeout=args.timeout, attempts=args.attempts)
    with one_shot_host(args) as (stack, runner):
        resolver = Resolver(stack, config)
        q = call(runner, lambda: resolver.query(args.name, qtype))
        # The resolver's own tries bound the wait; the extra margin only guards against a bug.
        budget = config.attempts * max(1, len(resolver.servers)) * config.timeout + config.tcp_timeout
        if not run_until(runner, lambda: q.done, budget * (config.max_cname + 1) + 5.0):
            call(runner, q.cancel)
        if args.verbose and q.error is None:
            how = "TCP, after a truncated UDP answer" if q.via_tcp else "UDP"
            src = "the cache" if q.from_cache else f"{q.server} over {how}"
            print(f";; {q.name} {wdns.type_name(qtype)}: answered by {src}, {q.tries} tries"
                  + (f", CNAMEs {' -> '.join(q.chain)}" if q.chain else ""), file=sys.stderr)
        q.result()  # raises the DnsError (an OSError): one line on stderr and exit 1
        for name in q.chain:
            print(name + ".")
        for rec in q.records:
            print(rec.text)
    return 0

