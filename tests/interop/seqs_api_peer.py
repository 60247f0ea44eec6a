"""seqs' public TCP APIs as the kernel's peer: run inside the test's network
namespace (``PYTHONPATH=src python seqs_api_peer.py MODE --tap tap0 --ip 10.X.Y.2/24 ...``).

Only what the README's "Python API" shows is used: a :class:`seqs.runtime.Host`
or :class:`seqs.runtime.AsyncHost` built on a :class:`~seqs.phy.tap.TapDevice`,
and their sockets and streams, as application code would.

- ``socket-echo``: ``Host.create_connection`` to a kernel echo server;
  ``sendall`` pushes ``--nbytes`` of the seeded stream from a thread while
  ``makefile("rb")`` reads the echo back here and hashes it.
- ``async-serve``: ``AsyncHost.start_server`` with an RFC 862 echo handler on
  ``--port``; prints ``listening``, serves until ``--connections`` clients
  have come and gone, and reports what each sent (bytes, sha256).
- ``async-clients``: ``--count`` concurrent ``AsyncHost.open_connection``
  streams to a kernel echo server, each echoing ``--nbytes`` of its own
  stream (seed + index), every echo hashed.

Each prints one JSON line, including the stack's drop counters and how many
connections are left in its table.  Every wait is bounded by ``--timeout``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from tcp_streams import Sink, StreamSender, stream

from seqs.phy.tap import TapDevice
from seqs.runtime import AsyncHost, Host


def out(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def stack_report(stack: Any) -> dict[str, Any]:
    return {"drops": stack.stats.drops, "tcp_connections": len(stack.tcp)}


# -- blocking, socket-like ---------------------------------------------------------------------


def socket_echo(args: argparse.Namespace) -> None:
    with Host(TapDevice(args.tap), ip=args.ip) as host:
        t0 = time.monotonic()
        # The kernel server may still be starting: retry while refused, as a client would.
        deadline = time.monotonic() + args.timeout
        while True:
            try:
                s = host.create_connection((args.host, args.port), timeout=args.timeout)
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        with s:
            sender = StreamSender(s, args.nbytes, args.seed)
            sink = Sink()
            with s.makefile("rb") as f:
                while chunk := f.read1(1 << 20):
                    sink.write(chunk)
            seconds = time.monotonic() - t0
            sender.finish(args.timeout)
        # Our FIN (shutdown) went first and the server's answered it: once both are
        # acknowledged the connection rests in TIME-WAIT (RFC 9293 §3.6).
        host.wait_for(lambda: all(c.state_name in ("TIME-WAIT", "CLOSED") for c in host.stack.tcp.connections),
                      args.timeout)
        states = sorted({c.state_name for c in host.stack.tcp.connections})
        out(received=sink.count, sha256=sink.digest, seconds=seconds, states=states, **stack_report(host.stack))


# -- asyncio ---------------------------------------------------------------------------------


async def async_serve(args: argparse.Namespace) -> None:
    host = AsyncHost(TapDevice(args.tap), ip=args.ip)
    results: list[dict[str, Any]] = []
    genuine: list[bool] = []
    done = asyncio.Event()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        genuine.append(type(reader) is asyncio.StreamReader and type(writer) is asyncio.StreamWriter)
        sink = Sink()
        t0 = time.monotonic()
        try:
            while data := await reader.read(1 << 16):
                sink.write(data)
                writer.write(data)
                await writer.drain()
            writer.close()
            await writer.wait_closed()
            results.append({"received": sink.count, "sha256": sink.digest, "seconds": time.monotonic() - t0})
        except Exception as e:
            results.append({"error": repr(e), "received": sink.count})
        if len(results) == args.connections:
            done.set()

    server = await host.start_server(echo, port=args.port)
    print("listening", flush=True)
    try:
        await asyncio.wait_for(done.wait(), args.timeout)
    finally:
        server.close()
        await server.wait_closed()
    # The kernel closed first after reading the echo: our LAST-ACKs must all end.
    end = time.monotonic() + 10.0
    while len(host.stack.tcp) and time.monotonic() < end:
        await asyncio.sleep(0.05)
    report = stack_report(host.stack)
    host.close()
    out(connections=results, genuine_streams=all(genuine) and len(genuine) == args.connections, **report)


async def async_clients(args: argparse.Namespace) -> None:
    host = AsyncHost(TapDevice(args.tap), ip=args.ip)
    open_now = peak = 0

    async def one(i: int) -> dict[str, Any]:
        nonlocal open_now, peak
        reader, writer = await host.open_connection(args.host, args.port)
        open_now += 1
        peak = max(peak, open_now)

        async def send() -> None:
            for piece in stream(args.nbytes, args.seed + i):
                writer.write(piece)
                await writer.drain()
            writer.write_eof()

        sender = asyncio.create_task(send())
        sink = Sink()
        while chunk := await reader.read(1 << 16):
            sink.write(chunk)
        await sender
        writer.close()
        await writer.wait_closed()
        open_now -= 1
        return {"received": sink.count, "sha256": sink.digest}

    t0 = time.monotonic()
    results = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(args.count))), args.timeout)
    seconds = time.monotonic() - t0
    # write_eof() sent our FIN first: each connection ends in TIME-WAIT (RFC 9293 §3.6).
    end = time.monotonic() + 10.0
    while any(c.state_name not in ("TIME-WAIT", "CLOSED") for c in host.stack.tcp.connections):
        if time.monotonic() > end:
            break
        await asyncio.sleep(0.05)
    states = sorted({c.state_name for c in host.stack.tcp.connections})
    report = stack_report(host.stack)
    host.close()
    out(connections=list(results), peak_open=peak, seconds=seconds, states=states, **report)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("mode", choices=["socket-echo", "async-serve", "async-clients"])
    p.add_argument("--tap", default="tap0")
    p.add_argument("--ip", required=True, help="seqs' address, ADDR/LEN")
    p.add_argument("--host", default="", help="the kernel server's address")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--nbytes", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--connections", type=int, default=1, help="async-serve: clients to serve before exiting")
    p.add_argument("--timeout", type=float, default=120.0, help="bound on the whole run, seconds")
    args = p.parse_args()
    if args.mode == "socket-echo":
        socket_echo(args)
    elif args.mode == "async-serve":
        asyncio.run(async_serve(args))
    else:
        asyncio.run(async_clients(args))


if __name__ == "__main__":
    main()
