"""``seqs bench``: run a benchmark (see :mod:`seqs.bench`)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> argparse.ArgumentParser:
    from ..bench import add_arguments

    p: argparse.ArgumentParser = sub.add_parser(
        "bench",
        help="run benchmarks; prints a table and writes JSON",
        description="Run seqs benchmarks. Those over a TAP device need root and create (and remove) "
        "their own network namespace.",
        epilog="examples:\n  seqs bench parse\n  seqs bench ping-flood --count 20000\n"
        "  seqs bench bulk --offload off,tso --peers seqs,kernel\n"
        "  seqs bench rr --profile bench-results/prof\n  seqs bench all",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    return p
