"""Print the figures the tests recorded, one line per record, for the CI log.

``test.sh`` points ``$SEQS_TEST_REPORT`` at ``bench-results/test-report.jsonl``
(emptied at each run), the tests append JSON objects to it with
``helpers.record(name, **figures)``, and after pytest ``test.sh`` runs
``python tests/report.py FILE``, which prints::

    fuzz_dhcp_client        execs=1234 crashes=0 cov=941 ...
    interop_faults_5%       bytes=16000000 mbps=0.39 intact=true ...

Values are compact JSON (nested dicts included), floats to three significant
digits; a line longer than ``WIDTH`` is cut.  A line that is not JSON is
shown as it is: the summary never hides what a test wrote.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable

WIDTH = 400


def _round(v: object) -> object:
    if isinstance(v, float):
        return float(f"{v:.3g}")
    if isinstance(v, dict):
        return {k: _round(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_round(x) for x in v]
    return v


def summary_line(text: str) -> str:
    """One record as ``name  key=value ...``."""
    try:
        rec = json.loads(text)
    except ValueError:
        return f"(not JSON) {text.strip()}"[:WIDTH]
    if not isinstance(rec, dict):
        return f"(not an object) {text.strip()}"[:WIDTH]
    name = str(rec.pop("test", "?"))
    parts = [f"{k}={json.dumps(_round(v), separators=(',', ':'), sort_keys=True)}" for k, v in rec.items()]
    line = f"{name:<28} {' '.join(parts)}"
    return line if len(line) <= WIDTH else line[: WIDTH - 3] + "..."


def summarize(lines: Iterable[str]) -> list[str]:
    return [summary_line(ln) for ln in lines if ln.strip()]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python tests/report.py FILE", file=sys.stderr)
        return 2
    try:
        with open(argv[1], encoding="utf-8") as f:
            out = summarize(f)
    except FileNotFoundError:
        print(f"no test figures: {argv[1]} does not exist")
        return 0
    print("\n".join(out) if out else "no test figures recorded")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
