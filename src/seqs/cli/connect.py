"""``seqs connect HOST PORT``: netcat over a seqs stack.

Brings a seqs host up on a TAP device (or a raw interface), opens one TCP
connection and relays: standard input to the connection, the connection to
standard output, bytes unchanged.  End of standard input half-closes the
connection (FIN, RFC 9293 §3.6) and the peer may go on sending; the command
ends when both directions are done — the peer's FIN read and standard input
at its end — after waiting briefly for our FIN to be acknowledged so the peer
sees a clean close.  Exit status: 0 for that clean close, 1 with one line on
standard error for anything else ("connection refused", "connection reset by
peer", "timed out"...), 2 for a usage error.

Built on the blocking API (:class:`seqs.runtime.Host`, :class:`seqs.runtime.TCPSocket`):
the main thread copies the connection to standard output while a second
thread copies standard input to the connection, so each direction blocks and
applies back-pressure on its own.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
import threading
from functools import partial
from typing import Any

from ..errors import oserror
from ..runtime.host import Host
from ..runtime.tcp import TCPSocket
from ..tcp.connection import CLOSED, TIME_WAIT
from ..wire import ethernet as weth
from ..wire import ipv4 as wip
from .up import add_device_arguments, open_device

__all__ = ["add_parser", "relay", "run"]

_CHUNK = 65536
#: how long to wait at the end for our FIN to be acknowledged
_LINGER = 2.0

EXAMPLES = """\
examples:
  # an HTTP request to the kernel side of tap0 (10.0.0.1), from 10.0.0.2
  printf 'GET / HTTP/1.0\\r\\n\\r\\n' | seqs connect --tap tap0 --ip 10.0.0.2/24 10.0.0.1 80
  # interactive, through a gateway, recording every frame
  seqs connect --tap tap0 --ip 10.0.0.2/24 --gateway 10.0.0.1 --pcap conn.pcap 192.0.2.10 7
  # send a file, give up if the handshake takes over 5 seconds
  seqs connect --tap tap0 --ip 10.0.0.2/24 -w 5 10.0.0.1 9000 < data.bin

exit status: 0 when both directions closed cleanly, 1 on a connection error
(one line on stderr), 2 on a usage error.
"""


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range (1-65535): {port}")
    return port


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "connect",
        help="netcat over seqs: one TCP connection between stdin/stdout and HOST PORT",
        description="Bring a seqs host up on a TAP device, connect to HOST PORT over TCP, copy standard "
        "input to the connection and the connection to standard output. End of input sends FIN; the "
        "command exits once the peer has closed its side too.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_device_arguments(p)
    p.add_argument("--pcap", metavar="FILE", help="record every frame in and out to FILE")
    p.set_defaults(loss=0.0, fault_seed=None)  # open_device() also serves `seqs up --loss`
    p.add_argument("-w", "--timeout", type=_seconds, metavar="SECONDS",
                   help="give up connecting after SECONDS (default: when TCP's SYN retries run out, ~2 min)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="say on stderr when connected, from which address and port")
    p.add_argument("--trace", action="store_true",
                   help="print every TCP segment in and out to stderr, drawn as RFC 9293 does")
    p.add_argument("host", metavar="HOST", help="IPv4 address to connect to")
    p.add_argument("port", metavar="PORT", type=_port, help="TCP port to connect to")
    p.set_defaults(func=run)
    return p


def describe(e: OSError) -> str:
    """The one-line reason for an error, in netcat's words."""
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(e, TimeoutError):
        return "timed out"
    if e.errno is not None:
        return os.strerror(e.errno).lower()
    return str(e)


def run(args: argparse.Namespace) -> int:
    # Check what needs no device first: a typo should not need root to be reported.
    wip.parse_cidr(args.ip)
    wip.aton(args.host)
    if args.gateway:
        wip.aton(args.gateway)
    if args.mac:
        weth.parse_mac(args.mac)
    device = open_device(args)
    try:
        host = Host(device, ip=args.ip, gateway=args.gateway, mac=args.mac)
    except BaseException:
        device.close()
        raise
    if args.trace:
        host.stack.tcp.tracer = partial(print, file=sys.stderr, flush=True)
    try:
        host.call(host.stack.iface.announce)
        try:
            sock = host.create_connection((args.host, args.port), timeout=args.timeout)
        except OSError as e:
            print(f"seqs connect: {args.host}:{args.port}: {describe(e)}", file=sys.stderr)
            return 1
        if args.verbose:
            laddr = sock.getsockname()
            print(f"seqs connect: connected to {args.host}:{args.port} from {laddr[0]}:{laddr[1]}",
                  file=sys.stderr)
        try:
            relay(sock, sys.stdin.fileno(), sys.stdout.fileno())
        except OSError as e:
            print(f"seqs connect: {describe(e)}", file=sys.stderr)
            return 1
        finally:
            sock.close()
        return 0
    finally:
        host.close()


def relay(sock: TCPSocket, in_fd: int, out_fd: int, *, linger: float = _LINGER) -> None:
    """Copy ``in_fd`` to ``sock`` and ``sock`` to ``out_fd`` until both directions
    are done (see the module docstring); raise the connection's error, if any.

    If ``out_fd`` stops taking data (EPIPE), the connection is reset and this
    returns quietly: the reader chose to stop, as with ``nc | head``.
    """
    host = sock.host
    conn = sock.connection
    sock.settimeout(None)
    failed: list[OSError] = []
    stdin_done = threading.Event()

    def pump_in() -> None:
        try:
            while True:
                try:
                    data = os.read(in_fd, _CHUNK)
                except OSError as e:
                    if e.errno != errno.EBADF:  # no stdin at all counts as empty
                        raise
                    data = b""
                if not data:
                    sock.shutdown(socket.SHUT_WR)
                    return
                sock.sendall(data)
        except OSError as e:
            failed.append(e)
        finally:
            stdin_done.set()
            with host.lock:
                host.runner.changed.notify_all()

    writer = threading.Thread(target=pump_in, name="seqs-connect-stdin", daemon=True)
    writer.start()
    while data := sock.recv(_CHUNK):
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(out_fd, view):]
        except BrokenPipeError:
            sock.abort()
            return
    # The peer has finished.  Wait for our side: standard input's end (or the
    # connection failing while we wait, e.g. a RST for data sent after the peer closed).
    host.wait_for(lambda: stdin_done.is_set() or conn.error is not None, None)
    if failed:
        raise failed[0]
    if conn.error is not None:
        raise oserror(conn.error)
    # Both FINs are out; give ours a moment to be acknowledged before the device goes.
    host.wait_for(lambda: conn.state in (TIME_WAIT, CLOSED), linger)
