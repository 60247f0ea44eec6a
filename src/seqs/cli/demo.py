"""``seqs demo``: the tour, with no root and no TAP.

Two seqs hosts on an in-memory Ethernet segment, on virtual time, exchange
real frames: DHCP (the router serves, the host leases its address), ARP, ping (one of them fragmented), UDP echo over a lossy link,
an ICMP port unreachable, a TCP transfer that survives the loss, then DNS
(CNAME, PTR, NXDOMAIN, truncation and TCP fallback, cache) and an NTP offset
measurement against tiny responders on the router (``demo_responders``),
and HTTP: the host resolves the router's name and downloads a file from its
HTTP server through the lossy link, checking its sha256 (``demo_http``).
Everything on the wire goes to a pcap file.  The exit status is 0 only if
every step's check passed; the last line names the steps that failed.
"""

from __future__ import annotations

import argparse
import hashlib
import random
from typing import Any

from ..phy.faults import FaultConfig
from ..phy.memory import VirtualNetwork
from ..phy.pcap import PcapWriter
from ..services.dhcp_client import DhcpClient
from ..services.dhcp_server import DhcpServer, DhcpServerConfig
from ..services.echo import UdpEchoService
from ..stack import Stack
from ..tcp.connection import TcpConnection
from ..wire import ethernet as weth
from .demo_http import demo_http
from .demo_responders import demo_dns_ntp


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="the tour: two seqs hosts on an in-memory link (DHCP, ARP, ping, UDP, TCP, DNS, NTP, HTTP); writes a pcap, no root needed",
        description="Run two seqs stacks on a virtual Ethernet segment inside this process and narrate "
        "what they exchange. Writes every frame to a pcap file.",
        epilog="examples:\n  seqs demo\n  seqs demo --pcap /tmp/demo.pcap --loss 0.2 --seed 7",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--pcap", default="seqs-demo.pcap", metavar="FILE", help="capture file (default: %(default)s)")
    p.add_argument("--loss", type=float, default=0.1, help="frame loss on the link, each way (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="seed for the link's faults and the stacks (default: 1)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    if not 0.0 <= args.loss < 1.0:
        raise ValueError("--loss must be in 0..1")
    out = print
    #: the steps whose check failed: any of them makes the exit status 1
    failures: list[str] = []
    rng = random.Random(args.seed)
    with PcapWriter(args.pcap) as pcap:
        net = VirtualNetwork(pcap=pcap)
        router = Stack(ip="10.0.0.1/24", rng=random.Random(rng.random()), mac="02:00:00:00:00:01")
        host = Stack(rng=random.Random(rng.random()), mac="02:00:00:00:00:02")  # configured by DHCP
        net.attach(router)
        hport = net.attach(host)
        out(f"router {router.cidr} mac {router.mac}; host (no address yet) mac {host.mac}, on one virtual segment")

        # 0. DHCP: DISCOVER, OFFER, REQUEST, ACK, ARP probes (RFC 5227), then the address
        dhcp_server = DhcpServer(router, DhcpServerConfig("10.0.0.2", "10.0.0.99", lease_time=3600,
                                                          routers=("10.0.0.1",), dns_servers=("10.0.0.1",),
                                                          ntp_servers=("10.0.0.1",), domain_name="demo.test"))
        dhcp = DhcpClient(host)
        dhcp.start(net.now)
        if not net.run_until(lambda: dhcp.bound, timeout=30) or dhcp.lease is None:
            out("DHCP: no lease")
            return 1
        lease = dhcp.lease
        out(f"DHCP: host leased {lease.cidr} from {lease.server_id} for {lease.lease_time:g} s "
            f"(gateway {lease.gateway}, DNS {', '.join(host.dns_servers)}, NTP {', '.join(host.ntp_servers)}) "
            f"after {net.now:.2f} s virtual, {lease.renewal_time:g} s until renewal")

        # 1. ping: ARP first, then echo request/reply
        ping = host.ping_socket()
        ping.send("10.0.0.1", 1, b"seqs demo")
        host.poll(net.now)
        net.run_until(lambda: ping.readable, timeout=5)
        reply = ping.recv()
        learned = {f"{k >> 24}.{(k >> 16) & 255}.{(k >> 8) & 255}.{k & 255}": weth.mac_to_str(v)
                   for k, v in host.iface.arp.entries(net.now).items()}
        if reply is None:
            out("ping: no reply")
            return 1
        out(f"ARP: host learned {learned}")
        out(f"ping 10.0.0.1 seq=1: reply from {reply.src} in {(reply.time - ping.sent[1]) * 1e3:.3f} ms (virtual)")

        # 2. a 4000-byte ping crosses the 1500-byte MTU in fragments and is reassembled
        big = bytes(range(256)) * 16
        ping.send("10.0.0.1", 2, big[:4000])
        host.poll(net.now)
        net.run_until(lambda: ping.readable, timeout=5)
        r2 = ping.recv()
        ok = r2 is not None and r2.payload == big[:4000]
        out(f"ping -s 4000: {'reply intact' if ok else 'FAILED'}; router reassembled "
            f"{router.stats.ipv4_reassembled}, host reassembled {host.stats.ipv4_reassembled} datagrams")
        if not ok:
            failures.append("fragmented ping")

        # 3. UDP echo (RFC 862) through a link that now loses frames
        echo = UdpEchoService(router, 7)
        hport.set_faults(FaultConfig(loss=args.loss, delay=0.002, seed=args.seed))
        net.ports[0].set_faults(FaultConfig(loss=args.loss, delay=0.002, seed=args.seed + 1))
        sock = host.udp_socket()
        sock.connect(("10.0.0.1", 7))
        n = 50
        for i in range(n):
            sock.send(f"datagram {i}".encode())
        host.poll(net.now)
        net.run_for(1.0)
        got = 0
        while sock.recv() is not None:
            got += 1
        out(f"UDP echo over a {args.loss:.0%}-loss link: sent {n}, router echoed {echo.echoed}, "
            f"host got {got} back (UDP does not retransmit)")

        # 4. a datagram to a closed port: ICMP port unreachable becomes ECONNREFUSED
        hport.set_faults(None)
        net.ports[0].set_faults(None)
        closed = host.udp_socket()
        closed.connect(("10.0.0.1", 9999))
        closed.send(b"anyone?")
        host.poll(net.now)
        net.run_for(0.1)
        try:
            closed.recv()
            out("closed port: no error reported")
            failures.append("ICMP port unreachable")
        except ConnectionRefusedError as e:
            out(f"UDP to closed port 9999: router answered ICMP port unreachable -> {e!r}")

        # 5. TCP: a megabyte through the lossy link, retransmitted until it is whole
        hport.set_faults(FaultConfig(loss=args.loss, delay=0.002, seed=args.seed + 2))
        net.ports[0].set_faults(FaultConfig(loss=args.loss, delay=0.002, seed=args.seed + 3))
        listener = router.tcp_listen(9)
        data = random.Random(args.seed).randbytes(1 << 20)
        conn = host.tcp_connect(("10.0.0.1", 9))
        received = bytearray()
        server: list[TcpConnection] = []
        offset = 0
        start = net.now

        def step() -> bool:
            nonlocal offset
            if conn.established and offset < len(data):
                offset += conn.send(memoryview(data)[offset : offset + 65536])
                if offset == len(data):
                    conn.close()
                host.poll(net.now)
            if not server and (s := listener.accept()) is not None:
                server.append(s)
            while server and (chunk := server[0].recv()):
                received.extend(chunk)
            return bool(server) and server[0].peer_eof

        net.run_until(step, timeout=300)
        elapsed = net.now - start
        intact = hashlib.sha256(received).digest() == hashlib.sha256(data).digest()
        rexmits = host.stats.drops.get("tcp_fast_retransmit", 0) + host.stats.drops.get("tcp_rto", 0)
        out(f"TCP: 1 MiB over the {args.loss:.0%}-loss link in {elapsed:.2f} s virtual, "
            f"{'sha256 matches' if intact else 'DATA DIFFERS'}, {rexmits} loss recoveries "
            f"(fast retransmit + timeout)")
        if not intact:
            failures.append("TCP transfer (sha256)")
        if server:
            server[0].close()
        net.run_for(1.0)

        # 6-7. DNS and NTP on a lossless, symmetric link (so the NTP offset comes out exact)
        hport.set_faults(FaultConfig(delay=0.002))
        net.ports[0].set_faults(FaultConfig(delay=0.002))
        if not demo_dns_ntp(net, router, host, out):
            failures.append("DNS/NTP")

        # 8. HTTP: the router serves files; the host resolves its name and downloads through the lossy link
        if not demo_http(net, router, host, out, loss=args.loss, seed=args.seed):
            failures.append("HTTP")

        # 9. the host gives its lease back (RFC 2131 §4.4.6)
        released = dhcp.release(net.now)
        net.run_for(1.0)
        out(f"DHCP: host released its lease; the server's table: {len(dhcp_server)} bindings, "
            f"{dhcp_server.free} of {dhcp_server.pool_size} addresses free")
        if not released or len(dhcp_server) or dhcp_server.free != dhcp_server.pool_size:
            failures.append("DHCP release")

        out(f"router stats: {router.stats.as_dict()}")
        out(f"host stats:   {host.stats.as_dict()}")
        out(f"{pcap.count} frames written to {args.pcap} (open with wireshark or tshark -r)")
    if failures:
        out(f"demo FAILED: {', '.join(failures)}")
        return 1
    return 0
