"""The kernel's side of the TCP benchmarks: load generators and a reference
server on plain Linux sockets (``python tcp_peer.py MODE ...``).

Run inside a benchmark's network namespace by path, so it imports nothing
from seqs (and the same file drives seqs, PyTCP and the kernel itself).  Each
client mode prints one JSON line: what it moved, over how many seconds, and
its own CPU seconds (user + system, so the kernel's TCP work done in this
process's context counts).  Every blocking call has a timeout and every loop
a deadline, so a stuck peer fails the run instead of hanging it.

Modes:
  send HOST PORT BYTES SECONDS      bulk to a discard server, then half-close and await its EOF
  recv HOST PORT BYTES SECONDS      bulk from a chargen server
  rr HOST PORT SIZE COUNT SECONDS   one connection, SIZE-byte request -> SIZE-byte echo, in a loop
  connrate HOST PORT COUNT SECONDS  connect, 1-byte request/response, close; again
  hold HOST PORT                    hold N idle connections (and one for rr); commands on stdin:
                                    "open N" (in all), "rr SIZE COUNT SECONDS", "quit"
  serve ECHO DISCARD CHARGEN        the kernel as the server (the veth reference)
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import selectors
import socket
import struct
import sys
import threading
import time
from typing import Any

_CHUNK = 1 << 20
_TIMEOUT = 10.0  # seconds, per blocking socket operation
# struct tcp_info (include/uapi/linux/tcp.h): tcpi_bytes_acked is the u64 at 120
_TCPI_BYTES_ACKED = 120


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _out(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def _connect(host: str, port: int, nodelay: bool = False) -> socket.socket:
    s = socket.create_connection((host, port), timeout=_TIMEOUT)
    if nodelay:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _reset_close(s: socket.socket) -> None:
    """close() that sends RST: nothing waits for unread or unsent data."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def _bytes_acked(s: socket.socket) -> int:
    info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return int(struct.unpack_from("Q", info, _TCPI_BYTES_ACKED)[0])


def mode_send(host: str, port: int, nbytes: int, seconds: float) -> None:
    """Throughput as the server saw it: up to ``nbytes`` sent, then the server's
    EOF after ours (discard closes once it read everything).  If the deadline
    comes first, the bytes the server acknowledged so far count instead."""
    s = _connect(host, port)
    buf = memoryview(bytes(_CHUNK))
    cpu0 = _cpu()
    t0 = time.monotonic()
    deadline = t0 + seconds
    sent = 0
    complete = True
    while sent < nbytes:
        if time.monotonic() > deadline:
            complete = False
            break
        sent += s.send(buf[: min(_CHUNK, nbytes - sent)])
    if complete:
        s.shutdown(socket.SHUT_WR)
        s.settimeout(max(1.0, deadline - time.monotonic()))
        try:
            while s.recv(4096):
                pass
        except TimeoutError:
            complete = False
    elapsed = time.monotonic() - t0
    moved = sent if complete else _bytes_acked(s)
    cpu = _cpu() - cpu0
    _reset_close(s)
    _out(bytes=moved, seconds=elapsed, cpu=cpu, complete=complete)


def mode_recv(host: str, port: int, nbytes: int, seconds: float) -> None:
    s = _connect(host, port)
    buf = bytearray(_CHUNK)
    cpu0 = _cpu()
    t0 = time.monotonic()
    deadline = t0 + seconds
    got = 0
    recv_into = s.recv_into
    while got < nbytes and time.monotonic() < deadline:
        n = recv_into(buf, min(_CHUNK, nbytes - got))
        if not n:
            break
        got += n
    elapsed = time.monotonic() - t0
    cpu = _cpu() - cpu0
    _reset_close(s)
    _out(bytes=got, seconds=elapsed, cpu=cpu, complete=got >= nbytes)


def _rr_loop(s: socket.socket, size: int, count: int, seconds: float) -> dict[str, Any]:
    req = bytes(size)
    buf = bytearray(max(size, 1))
    view = memoryview(buf)
    sendall, recv_into = s.sendall, s.recv_into
    cpu0 = _cpu()
    t0 = time.monotonic()
    deadline = t0 + seconds
    done = 0
    while done < count:
        sendall(req)
        got = 0
        while got < size:
            n = recv_into(view[got:size])
            if not n:
                raise ConnectionError("server closed the connection")
            got += n
        done += 1
        # the clock is read every 64 transactions: it costs as much as a small one
        if not done & 63 and time.monotonic() > deadline:
            break
    elapsed = time.monotonic() - t0
    return {"transactions": done, "seconds": elapsed, "cpu": _cpu() - cpu0}


def mode_rr(host: str, port: int, size: int, count: int, seconds: float) -> None:
    s = _connect(host, port, nodelay=True)
    r = _rr_loop(s, size, count, seconds)
    s.close()
    _out(**r)


def mode_connrate(host: str, port: int, count: int, seconds: float) -> None:
    cpu0 = _cpu()
    t0 = time.monotonic()
    deadline = t0 + seconds
    done = 0
    while done < count and time.monotonic() < deadline:
        s = _connect(host, port, nodelay=True)
        s.sendall(b"x")
        if s.recv(1) != b"x":
            raise ConnectionError("no echo")
        s.close()
        done += 1
    elapsed = time.monotonic() - t0
    _out(connections=done, seconds=elapsed, cpu=_cpu() - cpu0)


def mode_hold(host: str, port: int) -> None:
    """Hold many idle connections open, driven line by line from stdin."""
    # One descriptor per connection: lift the soft limit to the hard one (raising
    # the hard limit needs CAP_SYS_RESOURCE, which a container may not grant).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = 1 << 20 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < limit:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    capacity = limit - 64  # stdio, the probe, and room to spare
    probe = _connect(host, port, nodelay=True)  # the one rr runs on
    idle: list[socket.socket] = []
    _out(ready=True, capacity=capacity)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "open":
            n = int(cmd[1])
            t0 = time.monotonic()
            cpu0 = _cpu()
            opened = 0
            if n > capacity:
                _out(error=f"open {n}: this process can hold {capacity} (RLIMIT_NOFILE hard limit {limit})")
                continue
            while len(idle) < n:
                idle.append(socket.create_connection((host, port), timeout=_TIMEOUT))
                opened += 1
            _out(open=len(idle), opened=opened, seconds=time.monotonic() - t0, cpu=_cpu() - cpu0)
        elif cmd[0] == "rr":
            _out(**_rr_loop(probe, int(cmd[1]), int(cmd[2]), float(cmd[3])))
        elif cmd[0] == "quit":
            break
    for s in idle:
        _reset_close(s)
    _reset_close(probe)


# -- the kernel as the server ---------------------------------------------------------------


def _serve(port: int, handler: Any) -> None:
    ls = socket.create_server(("", port), backlog=1024, reuse_port=False)

    def loop() -> None:
        while True:
            conn, _ = ls.accept()
            threading.Thread(target=_guarded, args=(handler, conn), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


def _guarded(handler: Any, conn: socket.socket) -> None:
    try:
        handler(conn)
    except OSError:
        pass
    finally:
        conn.close()


def _discard(conn: socket.socket) -> None:
    buf = bytearray(_CHUNK)
    while conn.recv_into(buf):
        pass


def _chargen(conn: socket.socket) -> None:
    block = memoryview(bytes(range(32, 127)) * (_CHUNK // 95))
    while True:
        conn.sendall(block)


def _echo_loop(port: int) -> None:
    """Echo on one thread with epoll: no thread to start per connection, so the
    connection rate measures the kernel, not Python's thread creation."""
    ls = socket.create_server(("", port), backlog=1024)
    ls.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ)
    buf = bytearray(1 << 16)
    view = memoryview(buf)
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            assert isinstance(s, socket.socket)
            if s is ls:
                with contextlib.suppress(BlockingIOError):
                    while True:
                        conn, _ = ls.accept()
                        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        sel.register(conn, selectors.EVENT_READ)
                continue
            try:
                n = s.recv_into(buf)
                if n:
                    # Requests are small and the reply fits the send buffer; blocking is fine.
                    s.setblocking(True)
                    s.sendall(view[:n])
                    s.setblocking(False)
                    continue
            except BlockingIOError:
                continue
            except OSError:
                pass
            sel.unregister(s)
            s.close()


def mode_serve(echo: int, discard: int, chargen: int) -> None:
    threading.Thread(target=_echo_loop, args=(echo,), daemon=True).start()
    _serve(discard, _discard)
    _serve(chargen, _chargen)
    print("ready", flush=True)
    threading.Event().wait()


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    mode, a = argv[0], argv[1:]
    if mode == "send":
        mode_send(a[0], int(a[1]), int(a[2]), float(a[3]))
    elif mode == "recv":
        mode_recv(a[0], int(a[1]), int(a[2]), float(a[3]))
    elif mode == "rr":
        mode_rr(a[0], int(a[1]), int(a[2]), int(a[3]), float(a[4]))
    elif mode == "connrate":
        mode_connrate(a[0], int(a[1]), int(a[2]), float(a[3]))
    elif mode == "hold":
        mode_hold(a[0], int(a[1]))
    elif mode == "serve":
        mode_serve(int(a[0]), int(a[1]), int(a[2]))
    else:
        print(f"unknown mode {mode!r}\n{__doc__}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
