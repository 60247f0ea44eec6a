"""``seqs ntp SERVER``: measure a server's clock offset through a seqs host, like ``ntpdate -q``.

Sends ``--samples`` requests and prints the best (lowest-delay) one in
ntpdate's words: ``server ADDR, stratum N, offset +S, delay S`` and a dated
summary line.  It only measures; the clock is never set.  A kiss-o'-death, an
unsynchronized server or no reply prints one line on standard error and exits 1.

The stack's clock is monotonic; the wall clock enters once, as the offset
between ``time.time()`` and ``time.monotonic()`` when the measurement starts
(see :mod:`seqs.services.ntp`).
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
import time
from typing import Any

from ..runtime.poller import Runner
from ..services.dns import Resolver, ResolverConfig
from ..services.ntp import NtpConfig, NtpQuery, NtpSample
from ..stack import Stack
from ..wire import ipv4 as wip
from .oneshot import add_host_arguments, call, check_host_arguments, check_target, one_shot_host, run_until

__all__ = ["add_parser", "format_sample", "run"]

EXAMPLES = """\
examples:
  seqs ntp --tap tap0 --ip 10.0.0.2/24 10.0.0.1
  seqs ntp --tap tap0 --ip 10.0.0.2/24 --samples 8 --interval 0.5 10.0.0.1
  seqs ntp --tap tap0 --dhcp                          # the lease's first NTP server
  seqs ntp --tap tap0 --ip 10.0.0.2/24 --dns 10.0.0.1 ntp.example.org

exit status: 0 with a measurement, 1 on kiss-o'-death, an unsynchronized server,
no reply or another error (one line on stderr), 2 on a usage error.
"""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "ntp",
        help="measure an NTP server's clock offset through a seqs host (like ntpdate -q)",
        description="Bring a seqs host up on a TAP device, send NTP client requests to SERVER and print "
        "the offset of its clock from ours, like ntpdate -q. Never sets the clock.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("server", metavar="SERVER", nargs="?",
                   help="NTP server: an address, or a name looked up with --dns (default: the --dhcp lease's)")
    p.add_argument("-n", "--samples", type=int, default=4, metavar="N",
                   help="requests to send; the lowest-delay reply wins (default: %(default)s)")
    p.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                   help="time between requests (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=1.0, metavar="SECONDS",
                   help="wait for each reply (default: %(default)s)")
    p.add_argument("--dns", action="append", default=[], metavar="ADDR",
                   help="DNS server for a SERVER given by name; repeatable")
    p.add_argument("-v", "--verbose", action="store_true", help="print every sample, not only the best")
    add_host_arguments(p)
    p.set_defaults(func=run)
    return p


def format_sample(server: str, s: NtpSample) -> str:
    """ntpdate -q's server line."""
    return f"server {server}, stratum {s.stratum}, offset {s.offset:+.6f}, delay {s.delay:.5f}"


def run(args: argparse.Namespace) -> int:
    check_host_arguments(args)
    config = NtpConfig(samples=args.samples, interval=args.interval, timeout=args.timeout)
    for s in args.dns:
        wip.aton(s)
    # What needs no device is checked before it opens (a typo should not need root to be reported).
    if args.server is not None:
        check_target(args.server, args, "SERVER")
    elif not args.dhcp:
        raise ValueError("no NTP server: give SERVER (or --dhcp to use the lease's)")
    with one_shot_host(args) as (stack, runner):
        server = args.server or (stack.ntp_servers[0] if stack.ntp_servers else None)
        if server is None:
            raise ValueError("no NTP server: give SERVER" + (" (the lease names none)" if args.dhcp else ""))
        if not _is_address(server):
            server = _lookup(server, args, stack, runner)
        # The one place the wall clock enters: the stack runs on the runner's monotonic clock.
        wall_offset = time.time() - runner.clock()
        q = call(runner, lambda: NtpQuery(stack, server, wall_offset=wall_offset, config=config))
        run_until(runner, lambda: q.done, config.samples * (config.interval + config.timeout) + 5.0)
        if not q.done:
            call(runner, q.cancel)
        if args.verbose:
            for i, s in enumerate(q.samples, 1):
                print(f"sample {i}: offset {s.offset:+.6f}, delay {s.delay:.6f}, stratum {s.stratum}, "
                      f"ref {s.ref_text}", file=sys.stderr)
        best = q.result()  # raises the NtpError (an OSError): one line on stderr and exit 1
        print(format_sample(server, best))
        stamp = time.strftime("%d %b %H:%M:%S", time.localtime())
        print(f"{stamp} seqs ntp: server {server} offset {best.offset:+.6f} sec "
              f"(best of {len(q.samples)}/{q.sent}, delay {best.delay:.6f} sec)")
    return 0


def _is_address(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _lookup(name: str, args: argparse.Namespace, stack: Stack, runner: Runner) -> str:
    resolver = Resolver(stack, ResolverConfig(servers=args.dns or None))
    q = call(runner, lambda: resolver.query(name, "A"))
    run_until(runner, lambda: q.done, 60.0)
    if not q.done:
        call(runner, q.cancel)
    addresses = q.result()
    if not addresses:
        raise ValueError(f"{name} has no IPv4 address")
    return addresses[0]
