"""``seqs up``: bring a seqs host up on a TAP device (or a raw interface) and serve."""

from __future__ import annotations

import argparse
import logging
import signal
import types
from typing import Any

from ..phy.base import Device
from ..phy.pcap import PcapDevice, PcapWriter
from ..runtime.poller import Runner
from ..services.echo import UdpEchoService
from ..services.tcp_basic import ChargenService, DiscardService, TcpEchoService
from ..stack import Stack

log = logging.getLogger("seqs.up")

EXAMPLES = """\
examples:
  # create tap0 (or attach to it), answer ARP/ping as 10.0.0.2, echo UDP on port 7
  seqs up --tap tap0 --ip 10.0.0.2/24 --udp-echo 7
  # the kernel side, in another shell:
  ip addr add 10.0.0.1/24 dev tap0; ping 10.0.0.2
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
    dev = p.add_mutually_exclusive_group(required=True)
    dev.add_argument("--tap", metavar="NAME", help="TAP device to create or attach to")
    dev.add_argument("--raw", metavar="IFNAME", help="existing interface to use through an AF_PACKET socket")
    p.add_argument("--mac", help="our MAC address (default: random, locally administered)")
    p.add_argument("--ip", required=True, metavar="ADDR/LEN", help="our IPv4 address and prefix length")
    p.add_argument("--gateway", metavar="ADDR", help="default gateway")
    p.add_argument("--mtu", type=int, help="MTU (default: the device's)")
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
    p.add_argument("--pcap", metavar="FILE", help="record every frame in and out to FILE")
    p.set_defaults(func=run)
    return p


def open_device(args: argparse.Namespace) -> Device:
    device: Device
    if args.tap:
        from ..phy.tap import TapDevice

        device = TapDevice(args.tap, mtu=args.mtu)
    else:
        from ..phy.packet import PacketDevice

        device = PacketDevice(args.raw, mtu=args.mtu or 1500)
    if args.pcap:
        device = PcapDevice(device, PcapWriter(args.pcap))
    return device


def run(args: argparse.Namespace) -> int:
    device = open_device(args)
    try:
        stack = Stack(mac=args.mac, ip=args.ip, gateway=args.gateway, mtu=device.mtu, vnet_hdr=device.vnet_hdr)
    except ValueError:
        device.close()
        raise
    runner = Runner(stack, device)
    services: list[UdpEchoService | TcpEchoService | DiscardService | ChargenService] = []
    services += [UdpEchoService(stack, port) for port in args.udp_echo]
    services += [TcpEchoService(stack, port) for port in args.tcp_echo]
    services += [DiscardService(stack, port) for port in args.discard]
    services += [ChargenService(stack, port, args.chargen_limit) for port in args.chargen]

    def on_signal(signum: int, frame: types.FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        runner.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with runner.lock:
        stack.iface.announce()
        runner.flush()
    print(f"ready mac={stack.mac} ip={stack.cidr} device={device.name}", flush=True)
    try:
        runner.run()
    finally:
        for s in services:
            s.close()
        runner.close()
        log.info("stats: %s", stack.stats.as_dict())
    return 0

