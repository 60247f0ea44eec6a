"""``seqs bench``: run a benchmark (see :mod:`seqs.bench`).

Unlike the other commands it has no ``--pcap``: it owns no device.  The
benchmarks over a TAP start ``seqs up`` (and the kernel and PyTCP references)
in subprocesses, one per peer, offload mode and repeat, and a capture would
slow the very path being measured; the help says how to capture instead.
"""

from __future__ import annotations

import argparse
from typing import Any

DESCRIPTION = """\
Run seqs benchmarks. Those over a TAP device need root and create (and remove)
their own network namespace.

There is no --pcap: a benchmark runs many stacks (seqs up once per peer, offload
mode and repeat, besides the kernel and PyTCP), and writing every frame to a file
would slow the very path it measures. To look at the frames, run the same
exchange by hand with `seqs up --pcap FILE` (or tcpdump on the TAP), as in the
README's quick start.
"""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    from ..bench import add_arguments

    p: argparse.ArgumentParser = sub.add_parser(
        "bench",
        help="run benchmarks; prints a table and writes JSON",
        description=DESCRIPTION,
        epilog="examples:\n  seqs bench parse\n  seqs bench ping-flood --count 20000\n"
        "  seqs bench bulk --offload off,tso --peers seqs,kernel\n"
        "  seqs bench rr --profile bench-results/prof\n  seqs bench all\n\n"
        "exit status: 0 when a benchmark ran, 1 when none could (one line on stderr each) "
        "or on a bad option value, 2 on a usage error.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from .. import bench

    # The bounds every benchmark shares, checked before any namespace or subprocess exists.
    if args.count < 1:
        raise ValueError(f"--count must be at least 1, got {args.count}")
    if not args.seconds > 0:
        raise ValueError(f"--seconds must be positive, got {args.seconds:g}")
    return bench.run(args)
