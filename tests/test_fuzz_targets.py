"""The fuzz targets of ``fuzz/`` in CI: the seed corpus, a short fuzzing run of each, and hypothesis.

Each target gets (1) every file of its seed corpus, (2) a bounded fuzzing run —
``FUZZ_SECONDS`` under atheris (coverage-guided, in a subprocess, as ``python -m
fuzz run`` does) when it is installed, else ``MUTATIONS`` executions of the
built-in mutator — whose execution count is printed (``-s``, or in the report
of a failure), and (3) hypothesis' arbitrary bytes, which shrink a failure to
a small example.  Any exception a target lets out fails the test: for a parser
anything but ParseError, for the interface and TCP targets anything at all,
including a broken invariant.  Longer runs: ``python -m fuzz run --seconds 600``.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest
from fuzz import run as fuzz_run
from fuzz.targets import TARGETS, _attempt
from fuzz.tcp_states import SCENARIOS, setup
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqs.errors import ParseError

ROOT = pathlib.Path(__file__).resolve().parents[1]
FUZZ_SECONDS = float(os.environ.get("SEQS_FUZZ_SECONDS", "2"))
MUTATIONS = 3000
STATEFUL = {"interface", "tcp_state"}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_target_has_a_seed_corpus_that_runs_clean(target: str) -> None:
    files = fuzz_run.corpus_files(target)
    assert files, f"no seed corpus in fuzz/corpus/{target}: run python -m fuzz corpus"
    for path in files:
        TARGETS[target](path.read_bytes())


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_target_survives_a_short_fuzzing_run(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    if fuzz_run.have_atheris():
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "src")]))
        r = subprocess.run(
            [sys.executable, "-m", "fuzz", "run", "--target", target, "--seconds", str(FUZZ_SECONDS)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=FUZZ_SECONDS + 120,
        )
        line = next((ln for ln in r.stdout.splitlines() if ln.startswith(f"fuzz {target}:")), "")
        assert r.returncode == 0, f"{line}\n{r.stderr[-8000:]}"
        execs = int(line.split()[2])
    else:
        execs, crashes = fuzz_run.run_mutator(target, 60.0, seed=1, max_execs=MUTATIONS // (10 if target in STATEFUL else 1))
        line = f"fuzz {target}: {execs} execs (built-in mutator), crashes {crashes}"
        assert crashes == 0, line
    with capsys.disabled():
        print(f"\n{line}", end="")
    assert execs > 0


@pytest.mark.parametrize("target", sorted(set(TARGETS) - STATEFUL))
@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=600))
def test_parser_target_raises_only_parse_error_on_arbitrary_bytes(target: str, data: bytes) -> None:
    TARGETS[target](data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(min_size=4, max_size=3000))
def test_interface_survives_arbitrary_record_sequences(data: bytes) -> None:
    TARGETS["interface"](data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=st.integers(0, len(SCENARIOS) - 1), opts=st.integers(0, 255),
       records=st.binary(max_size=1500))
def test_tcp_connection_in_any_state_survives_arbitrary_records(scenario: int, opts: int, records: bytes) -> None:
    TARGETS["tcp_state"](bytes([scenario, opts]) + records)


@pytest.mark.parametrize("index", range(len(SCENARIOS)), ids=[s[0] for s in SCENARIOS])
@pytest.mark.parametrize("opts", [0, 0x80, 0x01 | 0x02 | 0x04 | (7 << 3)], ids=["plain", "mss536", "ts-sack-ws7"])
def test_tcp_scenario_reaches_its_state(index: int, opts: int) -> None:
    name, state, _ = SCENARIOS[index]
    s = setup(index, opts)
    assert s.conn is not None and s.conn.state == state, (name, s.conn)


def test_a_parser_letting_out_anything_but_parse_error_is_a_finding() -> None:
    _attempt(lambda: (_ for _ in ()).throw(ParseError("ipv4_truncated")))
    with pytest.raises(AssertionError):
        _attempt(lambda: (_ for _ in ()).throw(ParseError("Not A Counter")))
    with pytest.raises(IndexError):
        _attempt(lambda: b""[1])


def test_builtin_mutator_reports_and_saves_a_crashing_input(tmp_path: pathlib.Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def fragile(data: bytes) -> None:
        if len(data) > 3:
            raise RuntimeError("found")

    monkeypatch.setitem(TARGETS, "fragile", fragile)
    execs, crashes = fuzz_run.run_mutator("fragile", 5.0, seed=3, max_execs=200, work=tmp_path)
    assert execs == 200 and crashes > 0
    assert any(p.name.startswith("crash-fragile-") for p in tmp_path.iterdir())


def test_udp_echo_ignores_a_datagram_from_source_port_zero() -> None:
    """Regression: a UDP flood (hping3) from source port 0 made the echo service call
    sendto() with port 0, whose OverflowError escaped the stack and ended `seqs up`.
    RFC 768: source port 0 means no reply is wanted."""
    from fuzz.harness import Host, ip_frame

    from seqs.wire import ipv4 as wip
    from seqs.wire.udp import UdpDatagram

    host = Host()
    seg = UdpDatagram(0, 7, b"no reply wanted").emit(wip.aton("10.0.0.2"), wip.aton("10.0.0.1"))
    host.receive(ip_frame(wip.PROTO_UDP, seg))
    assert host.stack.stats.drops["udp_echo_from_port_zero"] == 1
