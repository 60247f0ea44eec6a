"""``seqs get URL``: download over HTTP through a seqs host, like ``wget``.

Brings a seqs host up on a TAP device (or a raw interface; ``--dhcp`` to lease
an address), resolves the URL's name through the seqs DNS client (``--dns``,
or the lease's servers), follows redirects and writes the body to a file as
it arrives: ``-o FILE``, ``-o -`` for standard output, by default the last
part of the URL's path (``index.html`` for a directory).  The file is written
under a ``.part`` name and renamed when complete, so a failed download leaves
nothing behind.  On a terminal a progress line shows bytes, rate and ETA.

Built on the blocking client (:class:`seqs.http.HttpClient`) over a
:class:`~seqs.runtime.Host` driven from this thread.  Exit status: 0 when the
whole body arrived with a 2xx status, 1 with one line on standard error
otherwise (404, connection refused, timeout, unknown name...), 2 on a usage
error.
"""

from __future__ import annotations

import argparse
import os
import posixpath
import sys
import time
from functools import partial
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from ..runtime.host import Host
from ..wire import ipv4 as wip
from .connect import describe
from .oneshot import add_host_arguments, check_host_arguments, check_target, one_shot_host
from .up import enable_offload

__all__ = ["Progress", "add_parser", "output_name", "run"]

EXAMPLES = """\
examples:
  # the kernel side of tap0 serves files (python3 -m http.server 8000 --bind 10.0.0.1)
  seqs get --tap tap0 --ip 10.0.0.2/24 http://10.0.0.1:8000/big.iso
  # by name, through a DNS server, into a chosen file, with TSO offload and a capture
  seqs get --tap tap0 --ip 10.0.0.2/24 --dns 10.0.0.1 -o page.html --pcap get.pcap http://files.test/
  # address and DNS server from DHCP; the body to standard output
  seqs get --tap tap0 --dhcp -o - http://files.test/hello.txt

exit status: 0 when the whole body arrived with a 2xx status, 1 on an HTTP
error status or a network error (one line on stderr), 2 on a usage error.
"""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "get",
        help="download a URL over HTTP through a seqs host (like wget)",
        description="Bring a seqs host up on a TAP device, fetch URL over HTTP/1.1 (names resolved through "
        "the seqs DNS client, redirects followed) and save the body, with a progress line on a terminal.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("url", metavar="URL", help="http:// URL (the scheme may be left out)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="where to save the body; - for standard output (default: the URL's file name)")
    p.add_argument("--dns", action="append", default=[], metavar="ADDR",
                   help="DNS server for the URL's name; repeatable (default: the --dhcp lease's)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                   help="give up when connecting, or waiting for data, takes longer (default: %(default)s)")
    p.add_argument("--max-redirects", type=int, default=5, metavar="N",
                   help="follow at most N redirects (default: %(default)s)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line, even on a terminal")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="when not on a terminal, end with one line on stderr: status, bytes, time, rate")
    p.add_argument("--offload", choices=["off", "csum", "tso"], default="off",
                   help="TAP offloads, as for seqs up (default: off)")
    p.add_argument("--trace", action="store_true",
                   help="print every TCP segment in and out to stderr, drawn as RFC 9293 does")
    add_host_arguments(p)
    p.set_defaults(func=run)
    return p


def output_name(url: str) -> str:
    """wget's choice of file name: the last segment of the URL's path, or index.html."""
    name = posixpath.basename(unquote(urlsplit(url).path))
    if name in ("", ".", ".."):
        return "index.html"
    return name


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _eta(seconds: float) -> str:
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    """One self-rewriting line on a terminal: bytes, percentage, rate, ETA (at most 10 updates a second)."""

    def __init__(self, stream: IO[str], label: str) -> None:
        self.stream = stream
        self.label = label
        self.start = time.monotonic()
        self._last = 0.0
        self._width = 0

    def line(self, got: int, total: int | None, now: float) -> str:
        elapsed = max(now - self.start, 1e-6)
        rate = got / elapsed
        if total:
            eta = _eta((total - got) / rate) if rate > 0 and got < total else "0:00"
            return (f"{self.label}  {_size(got)} / {_size(total)}  {100 * got / total:3.0f}%  "
                    f"{_size(rate)}/s  ETA {eta}")
        return f"{self.label}  {_size(got)}  {_size(rate)}/s"

    def __call__(self, got: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self._last < 0.1 and (total is None or got < total):
            return
        self._last = now
        text = self.line(got, total, now)
        self.stream.write("\r" + text.ljust(self._width))
        self._width = len(text)
        self.stream.flush()

    def done(self, got: int) -> None:
        elapsed = max(time.monotonic() - self.start, 1e-6)
        self.stream.write("\r" + f"{self.label}  {_size(got)} in {elapsed:.1f} s ({_size(got / elapsed)}/s)"
                          .ljust(self._width) + "\n")
        self.stream.flush()


def run(args: argparse.Namespace) -> int:
    try:
        from ..http import HttpClient, HttpError, parse_url
    except ImportError as e:  # the seqs[http] extra is not installed
        raise RuntimeError(str(e)) from None

    check_host_arguments(args)
    url = args.url if "://" in args.url else f"http://{args.url}"
    # A bad URL, a DNS server that is no address, a name with nobody to ask: usage
    # errors worth reporting before the device is touched.
    for s in args.dns:
        wip.aton(s)
    check_target(parse_url(url).host, args, "the URL's host")
    if args.timeout <= 0 or args.max_redirects < 0:
        raise ValueError("--timeout must be positive and --max-redirects not negative")
    out_path = args.output or output_name(url)
    with one_shot_host(args) as (stack, runner):
        if args.offload != "off":
            enable_offload(runner.device, stack, tso=args.offload == "tso")
        if args.trace:
            stack.tcp.tracer = partial(print, file=sys.stderr, flush=True)
        stack.dns_servers[:0] = [s for s in args.dns if s not in stack.dns_servers]
        with runner.lock:
            stack.iface.announce()
        host = Host.from_runner(runner)
        client = HttpClient(host, timeout=args.timeout, max_redirects=args.max_redirects)
        show = not args.quiet and sys.stderr.isatty()
        progress = Progress(sys.stderr, out_path if out_path != "-" else url) if show else None
        # A .part file renamed when complete, unless the output is no regular file (/dev/null, a FIFO).
        regular = out_path != "-" and (not os.path.exists(out_path) or os.path.isfile(out_path))
        part = f"{out_path}.part" if regular else None
        started = time.monotonic()
        try:
            if out_path == "-":
                r = client.download(url, sys.stdout.buffer, progress=progress)
                sys.stdout.buffer.flush()
            elif part is None:
                r = client.download(url, out_path, progress=progress)
            else:
                r = client.download(url, part, progress=progress)
                os.replace(part, out_path)
                part = None
        except (OSError, HttpError) as e:
            if progress is not None:
                sys.stderr.write("\n")
            if args.debug:
                raise
            why = describe(e) if isinstance(e, OSError) and e.errno is not None else str(e) or type(e).__name__
            print(f"seqs get: {url}: {why}" if url not in why else f"seqs get: {why}", file=sys.stderr)
            return 1
        finally:
            if part is not None and os.path.exists(part):
                os.unlink(part)
            client.close()
        if progress is not None:
            progress.done(r.received)
        elif args.verbose:
            elapsed = max(time.monotonic() - started, 1e-9)
            print(f"seqs get: {url}: {r.status} {r.reason}, {r.received} bytes in {elapsed:.3f} s "
                  f"({r.received / elapsed / 1e6:.1f} MB/s), {client.connections_opened} connection(s)",
                  file=sys.stderr)
    return 0
