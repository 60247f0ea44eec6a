"""Smoke runs of the two benchmarks that need no root, as a user runs them
(``python -m seqs.bench sim|parse``), with tiny sizes and counts: the printed
table and the JSON have the documented rows and keys, and every measured
number is positive.  Speed is never asserted, only that the harness measures.
"""

from __future__ import annotations

import json
import math
import pathlib
import subprocess
import sys
from typing import Any

from seqs.bench.sim import BENCH_BUFFERS, BENCH_LOSSES

MACHINE_KEYS = {"date", "python", "implementation", "kernel", "cpus"}


def bench(tmp_path: pathlib.Path, name: str, *args: str) -> tuple[str, dict[str, Any]]:
    """Run ``python -m seqs.bench NAME --json FILE ARGS``; its stdout and the JSON it wrote."""
    out = tmp_path / f"{name}.json"
    r = subprocess.run([sys.executable, "-m", "seqs.bench", name, "--json", str(out), *args],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"wrote {out}" in r.stdout
    result: dict[str, Any] = json.loads(out.read_text())
    assert result["benchmark"] == name
    assert set(result["machine"]) >= MACHINE_KEYS and result["machine"]["cpus"] >= 1
    assert not (tmp_path / "bench-results").exists()  # --json is where it writes, nowhere else
    return r.stdout, result


def cells(text: str) -> list[str]:
    """A table line's cells: columns are separated by at least two spaces."""
    return [cell.strip() for cell in text.strip().split("  ") if cell.strip()]


def table(stdout: str, first_column: str) -> list[list[str]]:
    """The rows of the printed table whose header starts with ``first_column``: the lines
    after the dashes with as many cells as the header has columns."""
    lines = stdout.splitlines()
    head = next(i for i, text in enumerate(lines) if text.startswith(first_column + " "))
    assert set(lines[head + 1].replace(" ", "")) == {"-"}, lines[head + 1]
    width = len(cells(lines[head]))
    rows = []
    for text in lines[head + 2 :]:
        row = cells(text)
        if len(row) != width:
            break
        rows.append(row)
    return rows


def positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def test_bench_sim_measures_every_loss_and_buffer(tmp_path: pathlib.Path) -> None:
    """``sim``: 20 kB per run over the simulated 100 Mbit/s, 10 ms link, for each loss rate
    and receive buffer of the table; every run completes intact, with throughputs and
    times above zero, and retransmits only when the link loses frames."""
    stdout, result = bench(tmp_path, "sim", "--count", "20", "--seconds", "10")
    assert "TCP over a simulated lossy link: 0.02 MB A->B" in stdout
    assert result["bytes_per_run"] == 20_000
    assert result["unit"] == "MB/s (10^6 bytes)"
    assert positive(result["link"]["rate_bytes_s"]) and positive(result["link"]["one_way_delay_s"])
    rows = result["rows"]
    grid = [(loss * 100, buf // 1024) for loss in BENCH_LOSSES for buf in BENCH_BUFFERS]
    assert [(r["loss_pct"], r["rcvbuf_KiB"]) for r in rows] == grid
    for r in rows:
        assert set(r) == {"loss_pct", "rcvbuf_KiB", "MB", "sim_MB_s", "wall_MB_s", "virtual_s", "wall_s",
                          "retransmits", "intact", "complete"}, r
        assert r["complete"] is True and r["intact"] is True, r
        assert r["MB"] == 0.02
        assert all(positive(r[k]) for k in ("sim_MB_s", "wall_MB_s", "virtual_s", "wall_s")), r
        # the throughputs are the bytes over the times reported beside them
        assert math.isclose(r["sim_MB_s"], r["MB"] / r["virtual_s"], rel_tol=1e-9)
        assert math.isclose(r["wall_MB_s"], r["MB"] / r["wall_s"], rel_tol=1e-9)
        assert isinstance(r["retransmits"], int) and r["retransmits"] >= 0
    assert all(r["retransmits"] == 0 for r in rows if r["loss_pct"] == 0)
    assert sum(r["retransmits"] for r in rows if r["loss_pct"] > 0) > 0
    printed = table(stdout, "loss_pct")
    assert len(printed) == len(rows)
    for row, r in zip(printed, rows, strict=True):
        assert float(row[0]) == r["loss_pct"] and int(row[1].replace(",", "")) == r["rcvbuf_KiB"]
        assert row[-2:] == ["yes", "yes"]  # complete, intact


def test_bench_parse_measures_every_operation(tmp_path: pathlib.Path) -> None:
    """``parse``: per-frame costs (best of 5) of the checksum, the views and the receive path,
    each a positive time in ns with ``per_second`` its inverse, printed as a table."""
    stdout, result = bench(tmp_path, "parse", "--count", "1000")
    rows = result["rows"]
    assert [r["operation"] for r in rows] == [
        "Internet checksum, 1460 bytes",
        "Internet checksum, 20 bytes (IPv4 header)",
        "views + checksums: Ethernet/IPv4/TCP 1514-byte frame",
        "Interface.receive: ping request -> reply frame queued",
        "Interface.receive: 1514-byte UDP datagram -> socket queue",
    ]
    for r in rows:
        assert set(r) == {"operation", "ns", "per_second"}, r
        assert positive(r["ns"]) and positive(r["per_second"]), r
        assert math.isclose(r["per_second"], 1e9 / r["ns"], rel_tol=1e-9)
    assert "per-frame cost (best of 5, single core)" in stdout
    printed = table(stdout, "operation")
    assert [row[0] for row in printed] == [r["operation"] for r in rows]
    assert all(float(row[1].replace(",", "")) > 0 for row in printed)
