"""The ``seqs`` command line.

Every command prints one clear line on failure and exits non-zero; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

__all__ = ["main"]

log = logging.getLogger("seqs")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"],
                   help="stdlib logging level (default: warning)")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")


def build_parser() -> argparse.ArgumentParser:
    from . import bench, connect, demo, get, ntp, ping, resolve, up

    parser = argparse.ArgumentParser(
        prog="seqs",
        description="seqs: a userspace TCP/IP stack in Python.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  seqs demo\n  seqs up --tap tap0 --ip 10.0.0.2/24 --udp-echo 7\n"
        "  seqs connect --tap tap0 --ip 10.0.0.2/24 10.0.0.1 80\n"
        "  seqs resolve --tap tap0 --ip 10.0.0.2/24 --dns 10.0.0.1 www.example.org\n"
        "  seqs ntp --tap tap0 --ip 10.0.0.2/24 10.0.0.1\n"
        "  seqs ping --tap tap0 --ip 10.0.0.2/24 -c 3 10.0.0.1\n"
        "  seqs get --tap tap0 --ip 10.0.0.2/24 http://10.0.0.1:8000/file.bin\n"
        "  seqs up --tap tap0 --ip 10.0.0.2/24 --http ./www\n  seqs bench",
    )
    from .. import BUILD, __version__

    parser.add_argument("--version", action="version",
                        version=f"seqs {__version__} ({'compiled with mypyc' if BUILD == 'mypyc' else 'pure Python'})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in (up, connect, get, ping, resolve, ntp, demo, bench):
        p = module.add_parser(sub)
        _add_common(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (OSError, ValueError, RuntimeError) as e:
        if args.debug:
            raise
        print(f"seqs {args.command}: error: {describe_error(e)}", file=sys.stderr)
        return 1


def describe_error(e: BaseException) -> str:
    """One line for the user: ``FILE: reason`` for a file that could not be opened
    (``--pcap``, ``-o``), instead of Python's ``[Errno 2] ...: 'FILE'``."""
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        return f"{e.filename}: {e.strerror}"
    text = str(e) or type(e).__name__
    return " ".join(text.split("\n"))


if __name__ == "__main__":
    sys.exit(main())
