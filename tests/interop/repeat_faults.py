"""Repeat one level of the faults echo transfer (test_faults_kernel.py) until it fails.

A rare stall is invisible in a single CI run; this runs ``seqs up --tcp-echo`` with
loss, reordering, duplication and corruption at ``--level`` each way, a kernel client
pushing ``--bytes`` through it, ``--runs`` times.  Each run keeps a pcap of seqs'
frames and, every 2 s, the kernel's ``ss -tinoe`` and seqs' counters.  The first run
that is not intact stops the loop and leaves all of that in ``--keep``; intact runs
leave nothing.  Needs root and /dev/net/tun, like the interop tier.

    .venv/bin/python tests/interop/repeat_faults.py --runs 15

This is how the deadlock pinned in tests/test_tcp_interop_regressions.py (item 4)
was caught: 1 stall in 13 runs before the fix, 0 in 30 after.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import statistics
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parents[1])]

from tests.interop.reliability import seqs_up  # noqa: E402
from tests.interop.test_faults_kernel import ECHO, ECHO_TRANSFER, fault_args  # noqa: E402


def one_run(where: pathlib.Path, level: float, size: int) -> dict[str, object]:
    args = ["--tcp-echo", str(ECHO), *fault_args(level), "--pcap", str(where / "seqs.pcap")]
    with seqs_up(where, args) as host:
        client = host.ns.popen([sys.executable, "-c", ECHO_TRANSFER, host.ip, str(size), "30"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        log = []
        t0 = time.monotonic()
        while client.poll() is None and time.monotonic() - t0 < 150:
            time.sleep(2.0)
            snap = host.stats()
            log.append({"t": round(time.monotonic() - t0, 1), "ss": host.ns.run(["ss", "-tinoe"]).stdout,
                        "tcp_states": snap["tcp_states"], "drops": snap["stats"]["drops"]})
        if client.poll() is None:
            client.kill()
        out, _err = client.communicate(timeout=10)
        (where / "log.json").write_text(json.dumps(log, indent=1))
    lines = out.strip().splitlines()
    result: dict[str, object] = json.loads(lines[-1]) if lines else {"intact": False, "error": "no result"}
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--level", type=float, default=0.05, help="probability of each fault, each way")
    ap.add_argument("--bytes", type=int, default=16_000_000)
    ap.add_argument("--keep", type=pathlib.Path, default=pathlib.Path("bench-results/repeat-faults"))
    args = ap.parse_args()
    if not 0.0 <= args.level <= 1.0 or args.runs < 1 or args.bytes < 1:
        ap.error("--level must be in 0..1, --runs and --bytes at least 1")
    seconds: list[float] = []
    for i in range(args.runs):
        where = args.keep / f"run{i}"
        shutil.rmtree(where, ignore_errors=True)
        where.mkdir(parents=True)
        result = one_run(where, args.level, args.bytes)
        print(f"run {i}: {json.dumps(result)}", flush=True)
        if not result.get("intact"):
            print(f"run {i} was not intact: pcap, ss and counters kept in {where}")
            return 1
        seconds.append(float(str(result["seconds"])))
        shutil.rmtree(where)
    print(f"{args.runs} of {args.runs} intact; median {statistics.median(seconds):.1f} s "
          f"({args.bytes / 1e6 / statistics.median(seconds):.2f} MB/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
