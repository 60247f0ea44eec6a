"""Frame-level benchmarks: per-frame cost of the receive path, and a ping flood
from the Linux kernel through a TAP device answered by ``seqs up``."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import time
import timeit
from typing import Any

from ..stack import Stack
from ..wire import ethernet as weth
from ..wire import icmp as wicmp
from ..wire import ipv4 as wip
from ..wire import tcp as wtcp
from ..wire import udp as wudp
from ..wire.checksum import checksum
from . import print_table

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")
A = wip.aton("10.0.0.1")
B = wip.aton("10.0.0.2")


def _frame(proto: int, l4: bytes) -> bytes:
    ip = wip.Ipv4Header(A, B, proto, ident=1).emit(l4)
    return weth.EthernetFrame(MAC_B, MAC_A, weth.ETHERTYPE_IPV4, ip).emit()


def _per_op_ns(fn: Any, number: int) -> float:
    best = min(timeit.repeat(fn, number=number, repeat=5))
    return best / number * 1e9


def bench_parse(args: argparse.Namespace) -> dict[str, Any]:
    n = max(1000, min(args.count, 200000))
    stack = Stack(mac=MAC_B, ip="10.0.0.2/24")
    stack.iface.arp.update(A, MAC_A, 0.0, create=True)
    sink = stack.udp_socket()
    sink.bind(("", 9))
    sink.rcvbuf = 1 << 62

    ping = _frame(wip.PROTO_ICMP, wicmp.IcmpMessage.echo(True, 1, 1, bytes(56)).emit())
    udp1472 = _frame(wip.PROTO_UDP, wudp.UdpDatagram(5000, 9, bytes(range(256)) * 5 + bytes(192)).emit(A, B))
    tcp_seg = wtcp.TcpSegment(5000, 80, 1, 1, wtcp.ACK, payload=bytes(1460)).emit(A, B)
    tcp1514 = _frame(wip.PROTO_TCP, tcp_seg)
    payload1460 = os.urandom(1460)

    def rx_ping() -> None:
        stack.iface.receive(ping, 1.0)
        stack.iface.tx.clear()

    def rx_udp() -> None:
        stack.iface.receive(udp1472, 1.0)
        sink._queue.clear()

    def parse_tcp() -> None:
        e = weth.EthernetView(tcp1514)
        ip = wip.Ipv4View(e.payload)
        ip.checksum_ok()
        t = wtcp.TcpView(ip.payload)
        t.checksum_ok(ip.src, ip.dst)

    rows: list[dict[str, Any]] = [
        {"operation": "Internet checksum, 1460 bytes", "ns": _per_op_ns(lambda: checksum(payload1460), n)},
        {"operation": "Internet checksum, 20 bytes (IPv4 header)", "ns": _per_op_ns(lambda: checksum(ping[14:34]), n)},
        {"operation": "views + checksums: Ethernet/IPv4/TCP 1514-byte frame", "ns": _per_op_ns(parse_tcp, n)},
        {"operation": "Interface.receive: ping request -> reply frame queued", "ns": _per_op_ns(rx_ping, n)},
        {"operation": "Interface.receive: 1514-byte UDP datagram -> socket queue", "ns": _per_op_ns(rx_udp, n)},
    ]
    for r in rows:
        r["per_second"] = 1e9 / r["ns"]
    print_table("per-frame cost (best of 5, single core)", rows, ["operation", "ns", "per_second"])
    return {"rows": rows}


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def bench_ping_flood(args: argparse.Namespace) -> dict[str, Any]:
    from ..netns import Namespace, interop_unavailable

    why = interop_unavailable()
    if why:
        raise RuntimeError(why)
    if shutil.which("ping") is None:
        raise RuntimeError("needs ping (Debian iputils-ping)")
    count = max(100, args.count)
    rows: list[dict[str, Any]] = []
    with Namespace("seqs-bench") as ns:
        ns.add_tap("tap0", "10.0.0.1/24")
        proc = ns.start_seqs(["up", "--tap", "tap0", "--ip", "10.0.0.2/24"])
        try:
            for preload in (1, 16, 64):
                cpu0 = _cpu_seconds(proc.pid)
                t0 = time.monotonic()
                r = ns.run(["ping", "-q", "-n", "-f", "-l", str(preload), "-c", str(count), "-w",
                            str(int(args.seconds)), "10.0.0.2"], timeout=args.seconds + 10)
                wall = time.monotonic() - t0
                cpu = _cpu_seconds(proc.pid) - cpu0
                m = re.search(r"(\d+) packets transmitted, (\d+) received", r.stdout)
                if not m:
                    raise RuntimeError(f"cannot parse ping output: {r.stdout}{r.stderr}")
                sent, got = int(m.group(1)), int(m.group(2))
                t = re.search(r"time (\d+)ms", r.stdout)
                elapsed = int(t.group(1)) / 1e3 if t else wall
                rows.append({
                    "in_flight": preload,
                    "sent": sent,
                    "answered": got,
                    "seconds": elapsed,
                    "answered_per_s": got / elapsed if elapsed else 0.0,
                    "seqs_cpu_us_per_frame": cpu / got * 1e6 if got else None,
                })
        finally:
            proc.stop()
    print_table("ping flood from the kernel through a TAP, answered by seqs up", rows,
                ["in_flight", "sent", "answered", "seconds", "answered_per_s", "seqs_cpu_us_per_frame"])
    return {"rows": rows}
