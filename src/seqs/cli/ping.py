"""``seqs ping HOST``: ICMP echo through a seqs host, printed the way iputils ping prints.

    PING 10.0.0.1 (10.0.0.1) 56(84) bytes of data.
    64 bytes from 10.0.0.1: icmp_seq=1 ttl=64 time=0.512 ms
    ...
    --- 10.0.0.1 ping statistics ---
    4 packets transmitted, 4 received, 0% packet loss, time 3004ms
    rtt min/avg/max/mdev = 0.402/0.480/0.533/0.049 ms

Runs the stack in this thread (:mod:`seqs.cli.oneshot`) with a
:class:`~seqs.sockets.icmp.PingSocket`; each request goes out on schedule
(``-i``) whatever the replies do, and after the last one the command waits
up to ``-W`` seconds for the stragglers.  Ctrl-C stops early and still prints
the summary.  Exit status as ping's: 0 if any reply came back, 1 if none, 2 on
a usage error (and 1, with one line on stderr, for a failure such as an
unknown name).
"""

from __future__ import annotations

import argparse
import math
from functools import partial
from typing import Any

from ..services.dns import Resolver, ResolverConfig
from ..sockets.icmp import EchoReply, PingSocket
from ..wire import ipv4 as wip
from .oneshot import add_host_arguments, call, check_host_arguments, check_target, one_shot_host, run_until

__all__ = ["Stats", "add_parser", "format_reply", "run"]

EXAMPLES = """\
examples:
  seqs ping --tap tap0 --ip 10.0.0.2/24 10.0.0.1
  seqs ping --tap tap0 --ip 10.0.0.2/24 -c 10 -i 0.2 -s 1400 10.0.0.1
  seqs ping --tap tap0 --ip 10.0.0.2/24 -s 4000 10.0.0.1      # fragmented both ways
  seqs ping --tap tap0 --ip 10.0.0.2/24 --gateway 10.0.0.1 --dns 10.0.0.1 router.test
  seqs ping --tap tap0 --dhcp -c 0 10.0.0.1                    # until Ctrl-C

exit status: 0 if any reply came back, 1 if none (or on an error, one line on
stderr), 2 on a usage error.
"""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "ping",
        help="send ICMP echo requests through a seqs host (prints like ping)",
        description="Bring a seqs host up on a TAP device and ping HOST, printing each reply and the "
        "statistics the way iputils ping does.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("host", metavar="HOST", help="address, or a name looked up with --dns (or the lease's)")
    p.add_argument("-c", "--count", type=int, default=4, metavar="N",
                   help="stop after N requests; 0 for until interrupted (default: %(default)s)")
    p.add_argument("-s", "--size", type=int, default=56, metavar="SIZE",
                   help="data bytes per request, after the 8-byte ICMP header (default: %(default)s)")
    p.add_argument("-i", "--interval", type=float, default=1.0, metavar="SECONDS",
                   help="time between requests (default: %(default)s)")
    p.add_argument("-W", "--timeout", type=float, default=2.0, metavar="SECONDS",
                   help="after the last request, wait this long for replies (default: %(default)s)")
    p.add_argument("--dns", action="append", default=[], metavar="ADDR",
                   help="DNS server for a HOST given by name; repeatable")
    add_host_arguments(p)
    p.set_defaults(func=run)
    return p


def format_reply(reply: EchoReply, rtt: float) -> str:
    """iputils' reply line: ICMP bytes (header included), sender, sequence, TTL, time."""
    ms = rtt * 1e3
    shown = f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 10 else f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"
    return f"{len(reply.payload) + 8} bytes from {reply.src}: icmp_seq={reply.seq} ttl={reply.ttl} time={shown} ms"


class Stats:
    """Counts and round-trip times, summarised as ping does."""

    def __init__(self) -> None:
        self.transmitted = 0
        self.rtts: list[float] = []
        self.duplicates = 0

    def summary(self, target: str, elapsed: float) -> list[str]:
        received = len(self.rtts)
        loss = 0 if self.transmitted == 0 else 100 * (self.transmitted - received) / self.transmitted
        dup = f", +{self.duplicates} duplicates" if self.duplicates else ""
        lines = [f"--- {target} ping statistics ---",
                 f"{self.transmitted} packets transmitted, {received} received{dup}, {loss:.4g}% packet loss, "
                 f"time {elapsed * 1e3:.0f}ms"]
        if self.rtts:
            ms = [r * 1e3 for r in self.rtts]
            avg = sum(ms) / len(ms)
            mdev = math.sqrt(max(0.0, sum(m * m for m in ms) / len(ms) - avg * avg))  # as iputils computes it
            lines.append(f"rtt min/avg/max/mdev = {min(ms):.3f}/{avg:.3f}/{max(ms):.3f}/{mdev:.3f} ms")
        return lines


def run(args: argparse.Namespace) -> int:
    check_host_arguments(args)
    if args.count < 0 or not 0 <= args.size <= 65507 or args.interval <= 0 or args.timeout < 0:
        raise ValueError("-c must be >= 0, -s 0..65507, -i positive and -W not negative")
    for s in args.dns:
        wip.aton(s)
    check_target(args.host, args, "HOST")
    with one_shot_host(args) as (stack, runner):
        target = args.host
        address = target if _is_address(target) else _lookup(target, args, stack, runner)
        sock: PingSocket = call(runner, stack.ping_socket)
        stats = Stats()
        seen: set[int] = set()
        print(f"PING {target} ({address}) {args.size}({args.size + 28}) bytes of data.", flush=True)
        start = runner.clock()
        next_send = start
        last_send = start

        def drain() -> None:
            while (r := sock.recv()) is not None:
                sent = sock.sent.get(r.seq)
                if sent is None or r.src != address:
                    continue
                if r.seq in seen:
                    stats.duplicates += 1
                    print(format_reply(r, r.time - sent) + " (DUP!)", flush=True)
                    continue
                seen.add(r.seq)
                stats.rtts.append(max(0.0, r.time - sent))
                print(format_reply(r, r.time - sent), flush=True)

        try:
            while True:
                now = runner.clock()
                if (args.count == 0 or stats.transmitted < args.count) and now >= next_send:
                    seq = (stats.transmitted + 1) & 0xFFFF
                    payload = bytes((seq + i) & 0xFF for i in range(args.size))
                    call(runner, partial(sock.send, address, seq, payload))
                    stats.transmitted += 1
                    last_send = now
                    next_send += args.interval
                drain()
                all_sent = args.count and stats.transmitted >= args.count
                if all_sent and (len(seen) >= stats.transmitted or now >= last_send + args.timeout):
                    break
                until = last_send + args.timeout if all_sent else next_send
                run_until(runner, lambda: sock.readable, max(0.0, until - runner.clock()))
        except KeyboardInterrupt:
            drain()
        print("\n" + "\n".join(stats.summary(target, runner.clock() - start)), flush=True)
        call(runner, sock.close)
    return 0 if stats.rtts else 1


def _is_address(text: str) -> bool:
    try:
        wip.aton(text)
    except (ValueError, OSError):
        return False
    return True


def _lookup(name: str, args: argparse.Namespace, stack: Any, runner: Any) -> str:
    resolver = Resolver(stack, ResolverConfig(servers=args.dns or None))
    q = call(runner, lambda: resolver.query(name, "A"))
    run_until(runner, lambda: q.done, 60.0)
    if not q.done:
        call(runner, q.cancel)
    addresses = q.result()  # raises the DnsError (an OSError): one line on stderr
    if not addresses:
        raise ValueError(f"{name}: no IPv4 address")
    return addresses[0]
