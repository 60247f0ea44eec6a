"""The kernel's side of the TCP interop tests: Linux sockets, run inside the
test's network namespace (``python kernel_peer.py MODE ...``).

Each mode does one thing to a seqs server (or serves a seqs client) and
prints one JSON line with what it saw; the test compares digests and counts.
Every blocking call has a timeout (``--timeout``, per socket operation), so a
stuck stack makes this program fail rather than hang.  Exit status 0 means
the mode ran to its end, not that the data was right: the test judges that.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import selectors
import socket
import struct
import sys
import threading
import time
from typing import Any

from tcp_streams import Sink, StreamSender, chargen, stream


def out(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def connect(args: argparse.Namespace, rcvbuf: int = 0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(args.timeout)
    if rcvbuf:
        # Before connect, so the window scale offered in the SYN fits it.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect((args.host, args.port))
    return s


def read_all(s: socket.socket, sink: Sink) -> None:
    while data := s.recv(1 << 20):
        sink.write(data)


def rst_close(s: socket.socket) -> None:
    """close() with SO_LINGER {on, 0}: the kernel sends RST instead of FIN."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


# -- modes -------------------------------------------------------------------------------------


def mode_echo(args: argparse.Namespace) -> None:
    """Send ``nbytes`` of the seeded stream from a thread, read the echo here; half-close
    after the last byte, so the server's EOF ends the read."""
    s = connect(args)
    t0 = time.monotonic()
    sender = StreamSender(s, args.nbytes, args.seed)
    sink = Sink()
    read_all(s, sink)
    seconds = time.monotonic() - t0
    try:
        sender.finish(args.timeout)
    finally:
        s.close()
    out(received=sink.count, sha256=sink.digest, seconds=seconds)


def mode_half_close(args: argparse.Namespace) -> None:
    """Send everything, shut down our side (FIN), and only then start reading: the
    echoes must all come back after our FIN, followed by the server's."""
    s = connect(args)
    t0 = time.monotonic()
    for piece in stream(args.nbytes, args.seed):
        s.sendall(piece)
    s.shutdown(socket.SHUT_WR)
    time.sleep(args.pause)
    sink = Sink()
    read_all(s, sink)
    s.close()
    out(received=sink.count, sha256=sink.digest, seconds=time.monotonic() - t0)


def mode_send(args: argparse.Namespace) -> None:
    """Send ``nbytes`` (to discard), half-close, wait for the server's FIN."""
    s = connect(args)
    t0 = time.monotonic()
    for piece in stream(args.nbytes, args.seed):
        s.sendall(piece)
    s.shutdown(socket.SHUT_WR)
    extra = s.recv(1)
    seconds = time.monotonic() - t0
    s.close()
    out(sent=args.nbytes, seconds=seconds, eof=extra == b"")


def mode_read(args: argparse.Namespace) -> None:
    """Read to EOF (from chargen).  With ``--stall-after``, stop reading for ``--stall``
    seconds once that many bytes arrived: a reader whose window goes to zero."""
    s = connect(args, rcvbuf=args.rcvbuf)
    t0 = time.monotonic()
    sink = Sink()
    stalled = 0.0
    if args.stall_after:
        while sink.count < args.stall_after and (data := s.recv(min(65536, args.stall_after - sink.count))):
            sink.write(data)
        print(f"stalling after {sink.count} bytes", file=sys.stderr, flush=True)
        t = time.monotonic()
        time.sleep(args.stall)
        stalled = time.monotonic() - t
    read_all(s, sink)
    seconds = time.monotonic() - t0
    s.close()
    out(received=sink.count, sha256=sink.digest, seconds=seconds, stalled=stalled)


def mode_reset(args: argparse.Namespace) -> None:
    """Start a transfer and abort it with RST halfway: ``--send`` bytes towards the server
    without reading (echo), or read ``--read`` bytes (chargen) and then reset."""
    s = connect(args)
    sent = got = 0
    if args.send:
        for piece in stream(args.send, args.seed):
            s.sendall(piece)
            sent += len(piece)
    while got < args.read and (data := s.recv(65536)):
        got += len(data)
    rst_close(s)
    out(sent=sent, received=got)


def mode_sequential(args: argparse.Namespace) -> None:
    """``--count`` connections one after another.  Echo: send ``--nbytes``, read them
    back, close.  ``--chargen N``: read to the server's FIN, expect N pattern bytes."""
    t0 = time.monotonic()
    payload = b"".join(stream(args.nbytes, args.seed))
    expect = b"".join(chargen(args.chargen)) if args.chargen else b""
    bad = 0
    for i in range(args.count):
        s = connect(args)
        if args.chargen:
            data = bytearray()
            while chunk := s.recv(65536):
                data += chunk
            ok = data == expect
        else:
            msg = payload + i.to_bytes(4, "big")
            s.sendall(msg)
            data = bytearray()
            while len(data) < len(msg) and (chunk := s.recv(65536)):
                data += chunk
            ok = data == msg
        s.close()
        bad += not ok
    out(count=args.count, bad=bad, seconds=time.monotonic() - t0)


def mode_concurrent(args: argparse.Namespace) -> None:
    """``--count`` connections open at once, each echoing ``--nbytes`` of its own
    data (seed + index), driven by one selector; every echo is checked."""
    sel = selectors.DefaultSelector()
    conns: list[dict[str, Any]] = []
    t0 = time.monotonic()
    for i in range(args.count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((args.host, args.port))
        c = {"i": i, "sock": s, "out": b"".join(stream(args.nbytes, args.seed + i)), "sent": 0,
             "sink": Sink(), "eof": False, "shut": False}
        conns.append(c)
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
    connected = 0
    deadline = time.monotonic() + args.deadline
    open_now = len(conns)
    peak = 0
    while open_now and time.monotonic() < deadline:
        for key, ev in sel.select(timeout=1.0):
            c = key.data
            s = c["sock"]
            if ev & selectors.EVENT_WRITE and not c["shut"]:
                if c["sent"] == 0 and not c.get("up"):
                    c["up"] = True
                    connected += 1
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, f"connection {c['i']} failed")
                n = s.send(memoryview(c["out"])[c["sent"] : c["sent"] + 65536])
                c["sent"] += n
                if c["sent"] == len(c["out"]):
                    s.shutdown(socket.SHUT_WR)
                    c["shut"] = True
                    sel.modify(s, selectors.EVENT_READ, c)
            if ev & selectors.EVENT_READ:
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    continue
                if data:
                    c["sink"].write(data)
                else:
                    c["eof"] = True
                    sel.unregister(s)
                    s.close()
                    open_now -= 1
        peak = max(peak, sum(1 for c in conns if c.get("up") and not c["eof"]))
    seconds = time.monotonic() - t0
    for c in conns:
        if not c["eof"]:
            c["sock"].close()
    intact = sum(1 for c in conns if c["eof"] and c["sink"].digest == hashlib.sha256(c["out"]).hexdigest())
    out(count=args.count, connected=connected, finished=sum(c["eof"] for c in conns), intact=intact,
        peak_open=peak, bytes=sum(c["sink"].count for c in conns), seconds=seconds)


def mode_serve_sink(args: argparse.Namespace) -> None:
    """Accept one connection, read to EOF hashing, then close."""
    with socket.create_server(("", args.port)) as ls:
        ls.settimeout(args.timeout)
        print("listening", flush=True)
        s, _ = ls.accept()
    s.settimeout(args.timeout)
    t0 = time.monotonic()
    sink = Sink()
    read_all(s, sink)
    seconds = time.monotonic() - t0
    s.close()
    out(received=sink.count, sha256=sink.digest, seconds=seconds)


def mode_serve_source(args: argparse.Namespace) -> None:
    """Accept one connection, send ``nbytes`` of the seeded stream, then close."""
    with socket.create_server(("", args.port)) as ls:
        ls.settimeout(args.timeout)
        print("listening", flush=True)
        s, _ = ls.accept()
    s.settimeout(args.timeout)
    t0 = time.monotonic()
    for piece in stream(args.nbytes, args.seed):
        s.sendall(piece)
    s.shutdown(socket.SHUT_WR)
    rest = s.recv(1)  # the client's FIN: it has read everything
    seconds = time.monotonic() - t0
    s.close()
    out(sent=args.nbytes, seconds=seconds, eof=rest == b"")


def mode_serve_echo(args: argparse.Namespace) -> None:
    """Accept ``--count`` connections, each echoed by a thread of its own (RFC 862) and
    hashed on the way; at a client's EOF, half-close back.  One JSON line at the end,
    with every connection's byte count and digest in the order they were accepted."""
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def echo(s: socket.socket, slot: dict[str, Any]) -> None:
        try:
            sink = Sink()
            while data := s.recv(1 << 16):
                sink.write(data)
                s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            slot.update(received=sink.count, sha256=sink.digest)
        except BaseException as e:
            errors.append(e)
        finally:
            s.close()

    threads = []
    with socket.create_server(("", args.port), backlog=max(args.count, 16)) as ls:
        ls.settimeout(args.timeout)
        print("listening", flush=True)
        for _ in range(args.count):
            s, _addr = ls.accept()
            s.settimeout(args.timeout)
            slot: dict[str, Any] = {}
            results.append(slot)
            t = threading.Thread(target=echo, args=(s, slot), daemon=True)
            t.start()
            threads.append(t)
    for t in threads:
        t.join(args.timeout)
    if errors:
        raise errors[0]
    out(connections=results)


MODES = {
    "echo": mode_echo,
    "half-close": mode_half_close,
    "send": mode_send,
    "read": mode_read,
    "reset": mode_reset,
    "sequential": mode_sequential,
    "concurrent": mode_concurrent,
    "serve-sink": mode_serve_sink,
    "serve-source": mode_serve_source,
    "serve-echo": mode_serve_echo,
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("mode", choices=sorted(MODES))
    p.add_argument("--host", default="")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--nbytes", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--chargen", type=int, default=0, metavar="N")
    p.add_argument("--send", type=int, default=0)
    p.add_argument("--read", type=int, default=0)
    p.add_argument("--rcvbuf", type=int, default=0)
    p.add_argument("--stall-after", type=int, default=0)
    p.add_argument("--stall", type=float, default=0.0)
    p.add_argument("--pause", type=float, default=0.0)
    p.add_argument("--timeout", type=float, default=30.0, help="per socket operation, seconds")
    p.add_argument("--deadline", type=float, default=120.0, help="concurrent: for the whole run, seconds")
    args = p.parse_args()
    MODES[args.mode](args)


if __name__ == "__main__":
    main()
