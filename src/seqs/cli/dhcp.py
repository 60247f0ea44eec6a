"""The DHCP options of ``seqs up``: ``--dhcp`` (lease our address) and
``--dhcp-server START-END`` (serve leases on the interface).

This is the I/O side of :mod:`seqs.services.dhcp_client` and
:mod:`seqs.services.dhcp_server`: it turns options into configs, prints lease
events, writes and reads the server's lease file, and releases the lease when
the program stops.  ``up`` calls it at four points: adding options, after the
stack exists (:func:`setup`), in the ``--stats-file`` snapshot, and on exit.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import time
from collections.abc import Callable

from ..runtime.poller import Runner
from ..services.dhcp_client import RELEASING, DhcpClient, DhcpClientConfig, DhcpEvent
from ..services.dhcp_server import DhcpServer, DhcpServerConfig
from ..stack import Stack

__all__ = ["DhcpRole", "add_arguments", "setup"]

log = logging.getLogger("seqs.up")


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("DHCP")
    g.add_argument("--dhcp", action="store_true",
                   help="lease our address from a DHCP server (instead of --ip); 'ready' is printed once "
                   "bound, lease events follow as 'dhcp EVENT ...' lines, the lease is released on exit")
    g.add_argument("--hostname", help="host name to send to the DHCP server (option 12)")
    g.add_argument("--dhcp-probes", type=int, default=3, metavar="N",
                   help="ARP probes before using a leased address (RFC 5227; 0: none; default: 3)")
    g.add_argument("--dhcp-server", metavar="START-END",
                   help="serve DHCP on the interface, leasing addresses START..END (needs --ip)")
    g.add_argument("--lease-time", type=int, default=3600, metavar="S",
                   help="lease time the DHCP server grants (default: 3600)")
    g.add_argument("--router", action="append", default=[], metavar="ADDR",
                   help="router (option 3) the DHCP server announces; repeatable")
    g.add_argument("--dns", action="append", default=[], metavar="ADDR",
                   help="DNS server (option 6) the DHCP server announces; repeatable")
    g.add_argument("--ntp", action="append", default=[], metavar="ADDR",
                   help="NTP server (option 42) the DHCP server announces; repeatable")
    g.add_argument("--domain", metavar="NAME", help="domain name (option 15) the DHCP server announces")
    g.add_argument("--dhcp-leases", metavar="FILE",
                   help="keep the DHCP server's leases in FILE (JSON), read at start, rewritten on change")


def check_arguments(args: argparse.Namespace) -> None:
    """The rules argparse cannot say: exactly one of --ip and --dhcp, a server needs --ip."""
    if args.dhcp and args.ip:
        raise ValueError("--dhcp and --ip exclude each other")
    if not args.dhcp and not args.ip:
        raise ValueError("one of --ip ADDR/LEN or --dhcp is required")
    if args.dhcp_server and not args.ip:
        raise ValueError("--dhcp-server needs --ip (a DHCP server has a fixed address)")
    if args.dhcp_probes < 0:
        raise ValueError("--dhcp-probes must not be negative")


class DhcpRole:
    """The DHCP client and/or server of one ``seqs up``."""

    def __init__(self, runner: Runner, client: DhcpClient | None, server: DhcpServer | None,
                 leases_file: str | None) -> None:
        self.runner = runner
        self.client = client
        self.server = server
        self.leases_file = leases_file
        #: the server's count of unanswered DISCOVERs before the current spell of exhaustion
        self._unanswered_before = 0

    def snapshot(self) -> dict[str, object]:
        """The ``dhcp`` part of the --stats-file snapshot."""
        out: dict[str, object] = {}
        c = self.client
        if c is not None:
            out["client"] = {
                "state": c.state,
                "lease": c.lease.as_dict() if c.lease else None,
                "events": [{"kind": e.kind, "time": e.time, "address": e.lease.cidr if e.lease else None}
                           for e in c.events],
            }
        s = self.server
        if s is not None:
            out["server"] = {
                "counts": dict(s.counts),
                "free": s.free,
                "leases": [{"mac": x.mac, "address": x.address, "state": x.state, "hostname": x.hostname}
                           for x in s.leases()],
            }
        return out

    def pool_exhausted(self, exhausted: bool) -> None:
        """The server's report that its pool ran dry (or has room again): one log line
        per spell, however many DISCOVERs go unanswered in it (they are counted as
        ``dhcp_pool_exhausted`` in the stats)."""
        s = self.server
        assert s is not None
        pool = f"{s.config.pool_start}-{s.config.pool_end}"
        if exhausted:
            self._unanswered_before = s.counts["exhausted"] - 1
            log.warning("DHCP server: pool %s exhausted (%d addresses): DISCOVERs go unanswered until an "
                        "address is free (RFC 2131 §4.3.1); each is counted as dhcp_pool_exhausted",
                        pool, s.pool_size)
        else:
            log.info("DHCP server: pool %s has a free address again, after %d unanswered DISCOVERs",
                     pool, s.counts["exhausted"] - self._unanswered_before)

    def save_leases(self) -> None:
        if self.server is None or self.leases_file is None:
            return
        text = self.server.to_json(self.runner.clock(), time.time())
        tmp = f"{self.leases_file}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.leases_file)

    def close(self) -> None:
        """Release the lease (RFC 2131 §4.4.6), give its DHCPRELEASE up to a few seconds
        to leave, and save the server's leases."""
        runner = self.runner
        c = self.client
        if c is not None:
            with runner.lock:
                c.release(runner.clock())
                runner.service()
            end = runner.clock() + 3.0
            while c.state == RELEASING and runner.clock() < end:
                runner.run_once(0.05)
            c.close()
        if self.server is not None:
            with contextlib.suppress(OSError):
                self.save_leases()
            self.server.close()


def setup(args: argparse.Namespace, stack: Stack, runner: Runner,
          ready: Callable[[], None]) -> DhcpRole | None:
    """Start what the options ask for.  With ``--dhcp``, ``ready()`` is called when the
    first lease is bound (the caller must not print its ready line itself)."""
    client = server = None
    if args.dhcp_server:
        start, sep, end = args.dhcp_server.partition("-")
        if not sep:
            raise ValueError(f"--dhcp-server wants START-END, got {args.dhcp_server!r}")
        config = DhcpServerConfig(
            start.strip(), end.strip(), lease_time=args.lease_time, routers=tuple(args.router),
            dns_servers=tuple(args.dns), ntp_servers=tuple(args.ntp), domain_name=args.domain,
        )
        server = DhcpServer(stack, config)
    role = DhcpRole(runner, None, server, args.dhcp_leases)
    if server is not None:
        if args.dhcp_leases and os.path.exists(args.dhcp_leases):
            with open(args.dhcp_leases) as f:
                n = server.load_json(f.read(), runner.clock(), time.time())
            log.info("DHCP server: %d leases restored from %s", n, args.dhcp_leases)
        server.on_change = role.save_leases
        server.on_exhausted = role.pool_exhausted
    if args.dhcp:
        announced = False

        def on_event(ev: DhcpEvent) -> None:
            nonlocal announced
            if ev.kind == "bound" and not announced:
                announced = True
                ready()
                return
            lease = ev.lease
            parts = [f"dhcp {ev.kind}"]
            if lease is not None:
                parts += [f"ip={lease.cidr}", f"server={lease.server_id}", f"lease={lease.lease_time:g}"]
            if ev.detail:
                parts.append(f"detail={ev.detail!r}")
            print(" ".join(parts), flush=True)

        client = DhcpClient(stack, DhcpClientConfig(hostname=args.hostname, probe_num=args.dhcp_probes),
                            on_event=on_event)
        role.client = client
        with runner.lock:
            client.start(runner.clock())
    return role if client is not None or server is not None else None
