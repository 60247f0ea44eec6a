"""The figures file of a test run: ``helpers.record`` writes it, ``tests/report.py`` summarizes it."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

import report
from helpers import REPORT_ENV, record


def test_record_appends_one_json_line_per_call(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "figures.jsonl"
    monkeypatch.setenv(REPORT_ENV, str(path))
    record("fuzz_ipv4", execs=1000, crashes=0)
    record("interop_faults", mbps={"0%": 18.5912, "5%": 0.38071}, intact=True)
    lines = path.read_text().splitlines()
    assert [json.loads(ln)["test"] for ln in lines] == ["fuzz_ipv4", "interop_faults"]


def test_summary_has_one_line_per_record_with_rounded_figures() -> None:
    out = report.summarize([
        json.dumps({"test": "interop_faults", "mbps": {"0%": 18.5912, "5%": 0.38071}, "intact": True}),
        "",
        "garbage {",
    ])
    assert out == ['interop_faults               mbps={"0%":18.6,"5%":0.381} intact=true', "(not JSON) garbage {"]


def test_a_long_record_is_cut_to_the_width() -> None:
    line = report.summary_line(json.dumps({"test": "t", "drops": {f"reason_{i}": i for i in range(200)}}))
    assert len(line) == report.WIDTH and line.endswith("...")


def test_the_script_prints_the_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "figures.jsonl"
    path.write_text(json.dumps({"test": "nmap", "open": [7, 9, 19]}) + "\n")
    r = subprocess.run([sys.executable, str(pathlib.Path(report.__file__)), str(path)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.split() == ["nmap", "open=[7,9,19]"], r
