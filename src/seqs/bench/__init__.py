"""Benchmarks: ``seqs bench NAME`` or ``python -m seqs.bench NAME``.

Each benchmark prints a table and writes its results as JSON (``--json``,
default ``bench-results/NAME.json``).  Benchmarks over a TAP device need root;
they make their own network namespace and remove it, and every load loop is
bounded in count and in time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["add_arguments", "main", "print_table", "write_json"]

Result = dict[str, Any]


def _benchmarks() -> dict[str, Callable[[argparse.Namespace], Result]]:
    from . import frames, http, sim, tcp

    return {"parse": frames.bench_parse, "ping-flood": frames.bench_ping_flood, "sim": sim.bench_sim,
            **tcp.BENCHMARKS, **http.BENCHMARKS}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", choices=[*sorted(_benchmarks()), "all"], help="which benchmark")
    p.add_argument("--json", metavar="FILE", help="where to write results (default: bench-results/NAME.json)")
    p.add_argument("--count", type=int, default=20000, help="frames or operations per run (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=20.0, help="upper bound on one run (default: %(default)s)")
    from . import tcp

    tcp.add_arguments(p)
    p.set_defaults(func=run)


def machine() -> dict[str, Any]:
    return {
        "date": time.strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
    }


def print_table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
    print(f"\n{title}")
    widths = [max([len(c), *(len(_fmt(r.get(c))) for r in rows)]) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).ljust(w) for c, w in zip(columns, widths, strict=True)))


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 100 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def write_json(path: str, name: str, result: Result) -> None:
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    with open(path, "w") as f:
        json.dump({"benchmark": name, "machine": machine(), **result}, f, indent=2)
    print(f"\nwrote {path}")


def run(args: argparse.Namespace) -> int:
    benches = _benchmarks()
    names = sorted(benches) if args.name == "all" else [args.name]
    failed = 0
    for name in names:
        try:
            result = benches[name](args)
        except RuntimeError as e:  # e.g. no root for a TAP benchmark
            print(f"{name}: skipped: {e}", file=sys.stderr)
            failed += 1
            continue
        path = args.json if args.json and len(names) == 1 else os.path.join("bench-results", f"{name}.json")
        write_json(path, name, result)
    return 1 if failed == len(names) else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m seqs.bench", description=__doc__)
    add_arguments(p)
    args = p.parse_args(argv)
    return int(args.func(args))
