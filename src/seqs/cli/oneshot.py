"""A seqs host brought up for one question: what ``seqs resolve`` and ``seqs ntp`` share.

The device options and the device itself come from :mod:`seqs.cli.up`; this
adds ``--pcap``, ``--dhcp`` (lease an address, and learn DNS and NTP servers,
before asking) and a loop that runs the stack in this thread until the
question is answered.  With ``--dhcp`` the lease is released on the way out,
as ``dhclient -r`` would.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from typing import TypeVar

from ..runtime.poller import Runner
from ..stack import Stack
from ..wire import dns as wdns
from ..wire import ethernet as weth
from ..wire import ipv4 as wip
from .up import add_device_arguments, open_device

__all__ = ["add_host_arguments", "call", "check_host_arguments", "check_target", "one_shot_host", "run_until"]

T = TypeVar("T")


def add_host_arguments(p: argparse.ArgumentParser) -> None:
    add_device_arguments(p, ip_required=False)
    p.add_argument("--pcap", metavar="FILE", help="record every frame in and out to FILE")
    p.set_defaults(loss=0.0, fault_seed=None)  # open_device() also serves `seqs up --loss`
    g = p.add_argument_group("DHCP")
    g.add_argument("--dhcp", action="store_true",
                   help="lease an address from a DHCP server instead of --ip, and use the DNS and NTP "
                   "servers of the lease; the lease is released on exit")
    g.add_argument("--dhcp-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="give up when no lease is bound within SECONDS (default: %(default)s)")
    g.add_argument("--dhcp-probes", type=int, default=0, metavar="N",
                   help="ARP probes before using the leased address (RFC 5227; default: 0, for speed)")


def check_host_arguments(args: argparse.Namespace) -> None:
    """What needs no device: a typo should not need root to be reported."""
    if args.dhcp == bool(args.ip):
        raise ValueError("one of --ip ADDR/LEN or --dhcp is required (not both)")
    if args.ip:
        wip.parse_cidr(args.ip)
    if args.gateway:
        wip.aton(args.gateway)
    if args.mac:
        weth.parse_mac(args.mac)
    if args.dhcp_timeout <= 0 or args.dhcp_probes < 0:
        raise ValueError("--dhcp-timeout must be positive and --dhcp-probes not negative")


def check_target(text: str, args: argparse.Namespace, what: str) -> None:
    """A HOST or SERVER argument, checked before the device opens: an IPv4 address, or a
    well-formed name with a DNS server to ask it of (``--dns``, or the ``--dhcp`` lease's).

    Digits and dots only is meant as an address: ``300.1.1.1`` is a typo to report,
    not a name to send to a DNS server (which getaddrinfo would not do either).
    """
    if text.replace(".", "").isdigit():
        wip.aton(text)  # ValueError: not an IPv4 address
        return
    wdns.encode_name(text)  # ValueError for a malformed name
    if not args.dns and not args.dhcp:
        raise ValueError(f"{what} {text} is a name: give --dns ADDR to look it up (or --dhcp for the lease's servers)")


def call(runner: Runner, fn: Callable[[], T]) -> T:
    """Run ``fn`` on the stack now, then send what it produced (as :meth:`Host.call` does).

    API calls run at the interface's latest time, so bring it up to the clock
    first: a query started at a stale ``now`` would find its deadlines already past.
    """
    with runner.lock:
        iface = runner.stack.iface
        iface.now = max(iface.now, runner.clock())
        try:
            return fn()
        finally:
            runner.service()


def run_until(runner: Runner, done: Callable[[], bool], timeout: float) -> bool:
    """Drive the stack in this thread until ``done()`` or ``timeout`` seconds."""
    return runner.run(until=done, timeout=timeout)


@contextlib.contextmanager
def one_shot_host(args: argparse.Namespace) -> Iterator[tuple[Stack, Runner]]:
    device = open_device(args)
    try:
        stack = Stack(mac=args.mac, ip=args.ip, gateway=args.gateway, mtu=device.mtu, vnet_hdr=device.vnet_hdr)
    except ValueError:
        device.close()
        raise
    runner = Runner(stack, device)
    release: Callable[[], None] | None = None
    try:
        if args.dhcp:
            release = _lease(args, stack, runner)
        yield stack, runner
    finally:
        try:
            if release is not None:
                release()
        finally:
            runner.close()


def _lease(args: argparse.Namespace, stack: Stack, runner: Runner) -> Callable[[], None]:
    """Bind a DHCP lease (the client fills ``stack.dns_servers`` and ``stack.ntp_servers``)."""
    from ..services.dhcp_client import RELEASING, DhcpClient, DhcpClientConfig

    client = DhcpClient(stack, DhcpClientConfig(probe_num=args.dhcp_probes))
    with runner.lock:
        client.start(runner.clock())
    if not run_until(runner, lambda: client.bound, args.dhcp_timeout):
        client.close()
        raise TimeoutError(f"no DHCP lease within {args.dhcp_timeout:g} s")

    def release() -> None:
        with runner.lock:
            client.release(runner.clock())
        run_until(runner, lambda: client.state != RELEASING, 3.0)
        client.close()

    return release
