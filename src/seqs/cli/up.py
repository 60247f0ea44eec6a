"""``seqs up``: bring a seqs host up on a TAP device (or a raw interface) and serve."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
import types
from functools import partial
from typing import Any

from ..phy.base import Device
from ..phy.faults import FaultConfig, FaultyDevice
from ..phy.pcap import PcapDevice, PcapWriter
from ..runtime.poller import Runner
from ..services.echo import UdpEchoService
from ..services.tcp_basic import ChargenService, DiscardService, TcpEchoService
from ..stack import Stack
from ..tcp.connection import CLOSED, FIN_WAIT_2, STATE_NAMES, TIME_WAIT, TcpConfig
from . import dhcp as dhcp_cli

log = logging.getLogger("seqs.up")

EXAMPLES = """\
examples:
  # create tap0 (or attach to it), answer ARP/ping as 10.0.0.2, echo UDP on port 7
  seqs up --tap tap0 --ip 10.0.0.2/24 --udp-echo 7
  # the kernel side, in another shell:
  ip addr add 10.0.0.1/24 dev tap0; ping 10.0.0.2
  # TCP services with a 1 s TIME-WAIT, 2 % of frames lost each way, counters on demand
  seqs up --tap tap0 --ip 10.0.0.2/24 --tcp-echo 7 --chargen 19 --msl 0.5 --loss 0.02 \\
      --stats-file /tmp/seqs.json &
  kill -USR1 $!; cat /tmp/seqs.json
  # serve a directory over HTTP on port 8080 (then, on the kernel side: curl -O http://10.0.0.2:8080/FILE)
  seqs up --tap tap0 --ip 10.0.0.2/24 --http /srv/files:8080 --offload tso
"""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "up",
        help="run a seqs host on a TAP device until SIGINT/SIGTERM",
        description="Attach to (or create) a TAP device, answer ARP and ping, run the services asked for, "
        "print a line starting with 'ready' once serving, and run until SIGINT/SIGTERM.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_device_arguments(p, ip_required=False)
    p.add_argument("--udp-echo", type=int, action="append", default=[], metavar="PORT",
                   help="run the UDP echo service (RFC 862) on PORT; repeatable")
    p.add_argument("--tcp-echo", type=int, action="append", default=[], metavar="PORT",
                   help="run the TCP echo service (RFC 862) on PORT; repeatable")
    p.add_argument("--discard", type=int, action="append", default=[], metavar="PORT",
                   help="run the TCP discard service (RFC 863) on PORT; repeatable")
    p.add_argument("--chargen", type=int, action="append", default=[], metavar="PORT",
                   help="run the TCP character generator (RFC 864) on PORT; repeatable")
    p.add_argument("--chargen-limit", type=int, metavar="BYTES",
                   help="chargen closes after sending BYTES (default: until the client closes)")
    p.add_argument("--pcap", metavar="FILE",
                   help="record every frame in and out to FILE (as the kernel sees them: after --loss)")
    p.add_argument("--msl", type=float, metavar="SECONDS",
                   help="TCP maximum segment lifetime; TIME-WAIT lasts 2*MSL (default: 30)")
    p.add_argument("--loss", type=float, default=0.0, metavar="P",
                   help="drop each frame with probability P (0..1), independently in each direction "
                   "(sent and received), to exercise retransmission against a real peer")
    p.add_argument("--duplicate", type=float, default=0.0, metavar="P",
                   help="deliver each frame twice with probability P, in each direction (like --loss)")
    p.add_argument("--reorder", type=float, default=0.0, metavar="P",
                   help="hold each frame back 5 ms with probability P, so later ones overtake it")
    p.add_argument("--corrupt", type=float, default=0.0, metavar="P",
                   help="flip one bit beyond the Ethernet header with probability P: the IP, TCP, UDP "
                   "and ICMP checksums must catch it (each side counts *_bad_checksum drops)")
    p.add_argument("--fault-seed", type=int, metavar="N",
                   help="seed for --loss and the other faults, so a run repeats them (default: random)")
    p.add_argument("--tcp-max-retries", type=int, metavar="N",
                   help="retransmissions of a segment before a TCP connection fails with ETIMEDOUT "
                   "(default: 12)")
    p.add_argument("--stats-file", metavar="PATH",
                   help="on SIGUSR1 (between two turns of the loop, so the figures agree with each other) "
                   "and at exit, write a JSON object to PATH (replaced atomically; a SIGUSR1 snapshot that "
                   "cannot be written is logged and the host keeps running): "
                   "'stats' (the interface counters and drops by reason), 'tcp_connections' (the number "
                   "in the TCP table, TIME-WAIT included), 'tcp_states' (that number by state), "
                   "'services' (per TCP service: port, accepted, open, bytes_in, bytes_out) and "
                   "'faults' (frames dropped, duplicated, reordered and corrupted by the fault options, per direction: tx_dropped, rx_corrupted, ...)")
    p.add_argument("--offload", choices=["off", "csum", "tso"], default="off",
                   help="TAP offloads through the virtio-net header: csum = checksums filled in by the "
                   "kernel, tso = also TCP super-segments of up to 64 KB both ways (default: off)")
    p.add_argument("--trace", action="store_true",
                   help="print every TCP segment in and out to stderr, drawn as RFC 9293 does")
    p.add_argument("--http", metavar="DIR[:PORT]",
                   help="serve the files under DIR over HTTP/1.1 on PORT (default 80): GET, HEAD, ranges, "
                   "keep-alive; needs h11 (pip install 'seqs[http]')")
    p.add_argument("--http-header-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="close an HTTP connection whose request head is not complete SECONDS after its "
                   "first byte, with 408 (default: %(default)s)")
    dhcp_cli.add_arguments(p)
    p.set_defaults(func=run)
    return p


def add_device_arguments(p: argparse.ArgumentParser, *, ip_required: bool = True) -> None:
    """The options naming the device and who we are on it, shared by the commands
    that run a host on a real device (``--pcap`` and the rest are each command's)."""
    dev = p.add_mutually_exclusive_group(required=True)
    dev.add_argument("--tap", metavar="NAME", help="TAP device to create or attach to")
    dev.add_argument("--raw", metavar="IFNAME", help="existing interface to use through an AF_PACKET socket")
    p.add_argument("--mac", help="our MAC address (default: random, locally administered)")
    p.add_argument("--ip", required=ip_required, metavar="ADDR/LEN", help="our IPv4 address and prefix length")
    p.add_argument("--gateway", metavar="ADDR", help="default gateway")
    p.add_argument("--mtu", type=int, help="MTU (default: the device's)")


def open_device(args: argparse.Namespace) -> Device:
    device: Device
    if args.tap:
        from ..phy.tap import TapDevice

        device = TapDevice(args.tap, mtu=args.mtu)
    else:
        from ..phy.packet import PacketDevice

        device = PacketDevice(args.raw, mtu=args.mtu or 1500)
    if args.pcap:
        try:
            writer = PcapWriter(args.pcap)
        except OSError:
            device.close()  # an unwritable --pcap must not leave the TAP open behind the error
            raise
        device = PcapDevice(device, writer)
    # Commands other than `up` may lack the fault options; only --loss is common to all.
    loss, dup, reorder, corrupt = (float(getattr(args, n, 0.0)) for n in ("loss", "duplicate", "reorder", "corrupt"))
    if loss or dup or reorder or corrupt:
        seed = args.fault_seed
        device = FaultyDevice(
            device,
            tx=FaultConfig(loss=loss, duplicate=dup, reorder=reorder, corrupt=corrupt, seed=seed),
            rx=FaultConfig(loss=loss, duplicate=dup, reorder=reorder, corrupt=corrupt,
                           seed=None if seed is None else seed + 1),
        )
    return device


_Service = UdpEchoService | TcpEchoService | DiscardService | ChargenService
_KINDS = {TcpEchoService: "tcp-echo", DiscardService: "discard", ChargenService: "chargen"}


def write_stats(path: str, stack: Stack, device: Device, services: list[_Service],
                dhcp: dhcp_cli.DhcpRole | None = None, http: Any = None) -> None:
    """The --stats-file snapshot; written to a temporary name and renamed, so a
    reader never sees half of it."""
    states: dict[str, int] = {}
    for conn in stack.tcp.connections:
        name = STATE_NAMES[conn.state]
        states[name] = states.get(name, 0) + 1
    tcp_services = [
        {"kind": _KINDS[type(s)], "port": s.listener.port, "accepted": s.accepted, "open": len(s.conns),
         "bytes_in": s.bytes_in, "bytes_out": s.bytes_out}
        for s in services if not isinstance(s, UdpEchoService)
    ]
    snapshot = {
        "stats": stack.stats.as_dict(),
        "tcp_connections": len(stack.tcp),
        "tcp_states": states,
        "services": tcp_services,
        "faults": ({f"{way}_{what}": getattr(getattr(device, f"{way}_faults"), what)
                    for way in ("tx", "rx") for what in ("dropped", "duplicated", "reordered", "corrupted")}
                   if isinstance(device, FaultyDevice) else None),
        "dhcp": dhcp.snapshot() if dhcp is not None else None,
        "http": http.snapshot() if http is not None else None,
    }
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(snapshot, f)
    os.replace(tmp, path)


def run(args: argparse.Namespace) -> int:
    for name in ("loss", "duplicate", "reorder", "corrupt"):
        p = getattr(args, name)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"--{name} must be a probability in 0..1, got {p}")
    if args.tcp_max_retries is not None and args.tcp_max_retries < 1:
        raise ValueError("--tcp-max-retries must be at least 1")
    if args.msl is not None and args.msl < 0:
        raise ValueError("--msl must not be negative")
    dhcp_cli.check_arguments(args)
    if args.http and not os.path.isdir(parse_http_spec(args.http)[0]):
        raise ValueError(f"--http: {parse_http_spec(args.http)[0]}: not a directory")
    tcp_config = TcpConfig()
    if args.msl is not None:
        tcp_config.msl = args.msl
    if args.tcp_max_retries is not None:
        tcp_config.max_retries = args.tcp_max_retries
    device = open_device(args)
    try:
        stack = Stack(mac=args.mac, ip=args.ip, gateway=args.gateway, mtu=device.mtu, vnet_hdr=device.vnet_hdr,
                      tcp_config=tcp_config)
    except ValueError:
        device.close()
        raise
    if args.offload != "off":
        enable_offload(device, stack, tso=args.offload == "tso")
    if args.trace:
        stack.tcp.tracer = partial(print, file=sys.stderr, flush=True)
    runner = Runner(stack, device)
    services: list[_Service] = []
    services += [UdpEchoService(stack, port) for port in args.udp_echo]
    services += [TcpEchoService(stack, port) for port in args.tcp_echo]
    services += [DiscardService(stack, port) for port in args.discard]
    services += [ChargenService(stack, port, args.chargen_limit) for port in args.chargen]
    http = start_http(args, stack) if args.http else None

    def ready() -> None:
        print(f"ready mac={stack.mac} ip={stack.cidr} device={device.name}", flush=True)

    dhcp = dhcp_cli.setup(args, stack, runner, ready)

    def on_signal(signum: int, frame: types.FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        runner.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    stats_wanted = False
    if args.stats_file:
        # The handler runs in this (the loop's) thread between two bytecodes, possibly
        # in the middle of a turn (a connection gone from the table, its service not yet
        # told).  So it only asks; the snapshot is written between two turns.
        def on_usr1(signum: int, frame: types.FrameType | None) -> None:
            nonlocal stats_wanted
            stats_wanted = True
            runner.wakeup()

        signal.signal(signal.SIGUSR1, on_usr1)

    def between_turns() -> bool:
        nonlocal stats_wanted
        if stats_wanted:
            stats_wanted = False
            try:
                write_stats(args.stats_file, stack, device, services, dhcp, http)
            except OSError as e:  # a snapshot that cannot be written must not end the host
                log.error("--stats-file: %s", e)
        return False  # never stops the loop: SIGINT/SIGTERM do

    with runner.lock:
        stack.iface.announce()
        runner.flush()
    if not args.dhcp:  # with --dhcp, once the lease is bound
        ready()
    clean = False
    try:
        runner.run(until=between_turns if args.stats_file else None)
        clean = True
    finally:
        # Connections first, the lease last: the peers' ACKs of our FINs must still find
        # our address (releasing it first made every FIN wait out the grace period).
        for s in services:
            s.close()
        if http is not None:
            http.close()
        if clean:
            finish_connections(runner, stack)
        if dhcp is not None:
            dhcp.close()  # releases the lease
        if args.stats_file:
            write_stats(args.stats_file, stack, device, services, dhcp, http)
        runner.close()
        log.info("stats: %s", stack.stats.as_dict())
    return 0


#: how long `seqs up` keeps running after SIGTERM/SIGINT for its FINs to be acknowledged
SHUTDOWN_GRACE = 2.0


def finish_connections(runner: Runner, stack: Stack, grace: float = SHUTDOWN_GRACE) -> None:
    """After the services closed their connections (a FIN queued on each, RFC 9293 §3.10.4),
    keep the loop turning until every FIN is acknowledged or ``grace`` seconds pass, so
    peers see an orderly end of stream instead of silence.  Retransmissions of the FIN
    happen as usual in that time; TIME-WAIT is not waited out."""
    def done() -> bool:
        return all(c.state in _FINISHED for c in stack.tcp.connections)

    end = time.monotonic() + grace
    while not done():
        left = end - time.monotonic()
        if left <= 0:
            log.info("shutdown: %d TCP connection(s) not finished after %.1f s", len(stack.tcp), grace)
            return
        runner.run_once(min(left, 0.05))


_FINISHED = frozenset({FIN_WAIT_2, TIME_WAIT, CLOSED})


def enable_offload(device: Device, stack: Stack, *, tso: bool) -> None:
    """Switch on TAP offloads (TUNSETOFFLOAD) and tell the stack to use them."""
    from ..phy.tap import TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TapDevice

    tap = device
    while not isinstance(tap, TapDevice):
        inner = getattr(tap, "inner", None)
        if inner is None:
            raise ValueError("--offload needs a TAP device (--tap)")
        tap = inner
    tap.set_offload(TUN_F_CSUM | (TUN_F_TSO4 | TUN_F_TSO6 if tso else 0))
    stack.iface.set_offload(csum=True, tso=tso)


def parse_http_spec(spec: str) -> tuple[str, int]:
    """``DIR[:PORT]`` → (DIR, PORT); PORT defaults to 80."""
    directory, sep, port = spec.rpartition(":")
    if sep and port.isdigit():
        if not 1 <= int(port) <= 65535:
            raise ValueError(f"--http: port out of range: {port}")
        return directory or ".", int(port)
    return spec, 80


def start_http(args: argparse.Namespace, stack: Stack) -> Any:
    """The ``--http`` server (seqs.http, imported only when asked for: it needs h11)."""
    directory, port = parse_http_spec(args.http)
    try:
        from ..http import HttpServer, ServerLimits, StaticFiles
    except ImportError as e:
        raise RuntimeError(str(e)) from None
    if args.http_header_timeout <= 0:
        raise ValueError("--http-header-timeout must be positive")
    return HttpServer(stack, StaticFiles(directory), port,
                      limits=ServerLimits(header_timeout=args.http_header_timeout))
