"""A seqs TCP echo host on a TAP, measured from inside: the memory side of the
concurrency benchmark (``python -m seqs.bench.seqs_host TAP IP/LEN PORT``).

It builds what ``seqs up --tcp-echo PORT`` builds (Stack, TapDevice, Runner,
TcpEchoService), but with :mod:`tracemalloc` tracing from before the stack
exists, runs the stack in a background thread, and answers commands on stdin
with one JSON line each:

  mem    Python heap traced now (bytes), this process's RSS, and the number of
         TCP connections and their states (after a full garbage collection)
  quit   stop

tracemalloc slows every allocation, so the request/response rates of the
concurrency benchmark come from a plain ``seqs up``, not from this host.
"""

from __future__ import annotations

import gc
import json
import sys
import tracemalloc


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size from /proc (VmRSS), in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m seqs.bench.seqs_host TAP IP/LEN PORT", file=sys.stderr)
        return 2
    tap, cidr, port = argv[0], argv[1], int(argv[2])
    tracemalloc.start()
    from ..phy.tap import TapDevice
    from ..runtime.poller import Runner
    from ..services.tcp_basic import TcpEchoService
    from ..stack import Stack
    from ..tcp.connection import STATE_NAMES

    device = TapDevice(tap)
    stack = Stack(ip=cidr, mtu=device.mtu, vnet_hdr=device.vnet_hdr)
    runner = Runner(stack, device)
    service = TcpEchoService(stack, port)
    with runner.lock:
        stack.iface.announce()
        runner.flush()
    runner.start()
    print(json.dumps({"ready": True, "mac": stack.mac}), flush=True)
    try:
        for line in sys.stdin:
            cmd = line.strip()
            if cmd == "mem":
                with runner.lock:
                    gc.collect()
                    traced, peak = tracemalloc.get_traced_memory()
                    states: dict[str, int] = {}
                    for conn in stack.tcp.connections:
                        name = STATE_NAMES[conn.state]
                        states[name] = states.get(name, 0) + 1
                    reply = {"traced": traced, "peak": peak, "rss": rss_bytes(),
                             "tracemalloc_overhead": tracemalloc.get_tracemalloc_memory(),
                             "connections": len(stack.tcp), "states": states, "accepted": service.accepted}
                print(json.dumps(reply), flush=True)
            elif cmd == "quit":
                break
    finally:
        runner.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
