"""Smoke tests of the TCP benchmarks (:mod:`seqs.bench.tcp`): each benchmark runs
with tiny sizes and counts, and its JSON has the documented shape.  Speed is
never asserted: these prove the harness works, not how fast anything is.

The TAP benchmarks are interop tests (root, /dev/net/tun, namespaces) and skip
without them (fail, under ``SEQS_REQUIRE_INTEROP=1``); ``memory-link`` runs anywhere.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from helpers import require_interop
from seqs.bench import _benchmarks
from seqs.bench import main as bench_main

TCP_BENCHMARKS = {"bulk", "rr", "connrate", "concurrency", "memory-link"}


@pytest.fixture
def interop() -> None:
    require_interop()  # skips, or fails under SEQS_REQUIRE_INTEROP=1 (CI)


def _run(tmp_path: pathlib.Path, name: str, *args: str) -> dict[str, Any]:
    out = tmp_path / f"{name}.json"
    assert bench_main([name, "--json", str(out), *args]) == 0
    result: dict[str, Any] = json.loads(out.read_text())
    assert result["benchmark"] == name
    assert {"python", "kernel", "cpus"} <= set(result["machine"])
    return result


def _assert_measured_or_explained(result: dict[str, Any], stack: str) -> None:
    """A reference is either in the rows or named in a note that says why not."""
    if not any(r["stack"] == stack for r in result["rows"]):
        assert any(n.startswith(stack) for n in result["notes"]), result["notes"]


def test_tcp_benchmarks_are_registered() -> None:
    assert set(_benchmarks()) >= TCP_BENCHMARKS


def test_memory_link_moves_every_byte(tmp_path: pathlib.Path) -> None:
    result = _run(tmp_path, "memory-link", "--size-mb", "0.3", "--repeat", "2")
    [row] = result["rows"]
    assert row["MB_per_run"] == pytest.approx(0.3)
    assert row["MB_s_min"] <= row["MB_s"] <= row["MB_s_max"]
    assert row["bounded_by_time"] is False
    assert len(result["runs"]) == 2
    assert all(r["complete"] and r["frames"] > 0 for r in result["runs"])


@pytest.mark.interop
def test_bulk_measures_seqs_and_the_kernel_both_ways(interop: None, tmp_path: pathlib.Path) -> None:
    result = _run(tmp_path, "bulk", "--size-mb", "0.5", "--repeat", "1", "--seconds", "20",
                  "--peers", "seqs,kernel", "--offload", "off,tso")
    rows = result["rows"]
    seen = {(r["stack"], r["mode"], r["direction"]) for r in rows}
    for mode in ("offload on", "offload off"):
        assert {("kernel", mode, "kernel->stack"), ("kernel", mode, "stack->kernel")} <= seen
    seqs_modes = {r["mode"] for r in rows if r["stack"] == "seqs"}
    assert "off" in seqs_modes
    for r in rows:
        assert r["runs"] == 1
        assert r["MB_s"] > 0 and r["MB_s_min"] <= r["MB_s"] <= r["MB_s_max"]
        assert r["stack_cpu_s_per_GB"] >= 0 and r["client_cpu_s_per_GB"] >= 0
        assert r["bounded_by_time"] is False  # 0.5 MB never takes 20 s
    assert {(q["seqs_mode"], q["direction"]) for q in result["ratios"]} == {
        (r["mode"], r["direction"]) for r in rows if r["stack"] == "seqs"}
    assert all(q["vs_kernel_offload_on"] > 0 for q in result["ratios"])
    # modes seqs up does not offer are named in a note, never silently missing
    for mode in ("tso",):
        if mode not in seqs_modes:
            assert any(mode in n for n in result["notes"]), result["notes"]


@pytest.mark.interop
def test_rr_one_byte_and_one_kilobyte(interop: None, tmp_path: pathlib.Path) -> None:
    result = _run(tmp_path, "rr", "--rr-seconds", "0.3", "--count", "200", "--repeat", "1",
                  "--peers", "seqs,kernel", "--offload", "off")
    assert {(r["stack"], r["size"]) for r in result["rows"]} == {
        ("seqs", 1), ("seqs", 1024), ("kernel", 1), ("kernel", 1024)}
    for r in result["rows"]:
        assert 0 < r["transactions"] <= 200
        assert r["per_s"] > 0 and r["us_per_transaction"] > 0
    assert {q["size"] for q in result["ratios"]} == {1, 1024}


@pytest.mark.interop
def test_connrate_counts_whole_connections(interop: None, tmp_path: pathlib.Path) -> None:
    result = _run(tmp_path, "connrate", "--rr-seconds", "0.5", "--count", "30", "--repeat", "2",
                  "--peers", "seqs,kernel", "--offload", "off")
    assert {r["stack"] for r in result["rows"]} == {"seqs", "kernel"}
    for r in result["rows"]:
        assert r["runs"] == 2 and 0 < r["connections"] <= 60
        assert r["per_s_min"] <= r["per_s"] <= r["per_s_max"]
    [ratio] = result["ratios"]
    assert ratio["seqs_mode"] == "off" and ratio["vs_kernel_offload_on"] > 0


@pytest.mark.interop
def test_concurrency_reports_memory_per_connection(interop: None, tmp_path: pathlib.Path) -> None:
    result = _run(tmp_path, "concurrency", "--conns", "5,40", "--rr-seconds", "0.2", "--count", "100",
                  "--repeat", "1")
    rows = result["rows"]
    assert [r["N"] for r in rows] == [0, 5, 40]
    assert result["notes"] == []
    for r in rows:
        assert r["rss"] > 0 and r["rr_per_s"] > 0
    for r in rows[1:]:
        assert r["connects_per_s"] > 0
        assert r["traced_per_conn"] is not None and r["rss_per_conn"] is not None
    # a connection costs some heap, and not a megabyte of it
    assert 0 < rows[-1]["traced_per_conn"] < 1_000_000


@pytest.mark.interop
def test_pytcp_reference_is_measured_or_explained(interop: None, tmp_path: pathlib.Path) -> None:
    """PyTCP comes from PyPI into bench-results/.pytcp-venv; if that or PyTCP fails,
    the benchmark says why in its notes instead of dropping the rows silently."""
    bulk = _run(tmp_path, "bulk", "--size-mb", "0.2", "--repeat", "1", "--pytcp-seconds", "2",
                "--peers", "pytcp")
    _assert_measured_or_explained(bulk, "pytcp")
    rr = _run(tmp_path, "rr", "--rr-seconds", "0.3", "--count", "50", "--repeat", "1", "--peers", "pytcp")
    _assert_measured_or_explained(rr, "pytcp")
    conn = _run(tmp_path, "connrate", "--rr-seconds", "0.3", "--count", "10", "--repeat", "1",
                "--peers", "pytcp")
    _assert_measured_or_explained(conn, "pytcp")
    for r in [*bulk["rows"], *rr["rows"], *conn["rows"]]:
        assert r["stack"] == "pytcp" and r["mode"] == "-"
