"""PyTCP on a TAP device, serving echo, discard and chargen: the Python reference
of the TCP benchmarks (``python -O pytcp_host.py TAP IP/LEN``).

Run with the interpreter of a separate environment that has PyTCP installed
(never seqs' own: PyTCP is GPL and only a measuring stick here); it imports
nothing from seqs.  PyTCP 2.7 attaches to an existing TAP by name
(``TcpIpStack(interface=...)``), runs its RX ring, TX ring, timer and packet
handler in threads, and offers a blocking BSD-like socket API
(``pytcp.lib.socket``); it ships no services, so they are written here against
that API, one thread per connection, the way its examples do.  Run it with
``-O``: PyTCP guards every log call with ``__debug__``, so that is how its
author runs it fast.  Prints ``ready ...`` once serving (or ``error ...`` and
exits 2), and ends on SIGTERM.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

# Chargen stops queueing while this much is unacknowledged: PyTCP's send() only
# appends to an unbounded buffer, so without it chargen would fill memory.
_CHARGEN_QUEUE = 256 * 1024
_BLOCK = bytes(range(32, 127)) * 690  # 65,550 bytes of printable pattern


def _serve(sock_mod: Any, port: int, handler: Callable[[Any], None]) -> None:
    listener = sock_mod.socket(sock_mod.AF_INET4, sock_mod.SOCK_STREAM)
    listener.bind(("0.0.0.0", port))
    listener.listen()

    def loop() -> None:
        while True:
            conn, _peer = listener.accept()
            threading.Thread(target=_guarded, args=(handler, conn), daemon=True).start()

    threading.Thread(target=loop, daemon=True, name=f"accept-{port}").start()


def _guarded(handler: Callable[[Any], None], conn: Any) -> None:
    # A peer's RST surfaces as OSError (or, in PyTCP 2.7, a failed assertion without -O).
    with contextlib.suppress(OSError, AssertionError):
        handler(conn)
    with contextlib.suppress(Exception):
        conn.close()


def echo(conn: Any) -> None:
    while data := conn.recv():
        conn.send(data)


def discard(conn: Any) -> None:
    while conn.recv():
        pass


def chargen(conn: Any) -> None:
    session = conn.tcp_session
    while True:
        if len(session._tx_buffer) > _CHARGEN_QUEUE:
            if str(session.state) not in ("ESTABLISHED", "CLOSE_WAIT"):
                return
            time.sleep(0.0005)
            continue
        conn.send(_BLOCK)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: pytcp_host.py TAP IP/LEN", file=sys.stderr)
        return 2
    tap, cidr = argv
    try:
        pytcp = importlib.import_module("pytcp")
        config: Any = importlib.import_module("pytcp.config")
        sock_mod = importlib.import_module("pytcp.lib.socket")
        version = _version()
        config.LOG_CHANEL = set()  # no console logging even without -O
        stack = pytcp.TcpIpStack(interface=tap, mac_address="02:00:00:77:77:77", ip4_address=cidr)
        # IPv6 would run SLAAC and duplicate address detection (seconds of waiting);
        # the benchmarks are IPv4 only.
        config.IP6_SUPPORT = False
        stack.start()
        _serve(sock_mod, 7, echo)
        _serve(sock_mod, 9, discard)
        _serve(sock_mod, 19, chargen)
    except Exception as e:
        print(f"error: PyTCP did not start: {type(e).__name__}: {e}", flush=True)
        traceback.print_exc()
        os._exit(2)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print(f"ready pytcp={version} ip={cidr} device={tap}", flush=True)
    while True:
        time.sleep(3600)


def _version() -> str:
    from importlib.metadata import version

    try:
        return version("pytcp")
    except Exception:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
