"""The fuzz targets of ``fuzz/`` in CI: the seed corpus, a short fuzzing run of each, and hypothesis.

Each target gets (1) every file of its seed corpus, (2) a bounded fuzzing run —
``FUZZ_SECONDS`` each under atheris (coverage-guided; one ``python -m fuzz run``
for all the selected targets, which instruments seqs once and forks a libFuzzer
process per target) when it is installed, else ``MUTATIONS`` executions of the
built-in mutator — and (3) hypothesis' arbitrary bytes, which shrink a failure
to a small example.  Any exception a target lets out fails the test: for a
parser anything but ParseError, for the stateful targets anything at all,
including a broken invariant.

A run must also have *run*: under atheris each target has to reach
``MIN_RATE`` executions per second of its time (about a tenth of what one
shared CPU does here), so a harness that dies, hangs or crawls fails instead of
passing on a handful of inputs.  The figures (executions, crashes, libFuzzer's
coverage) are printed and recorded (``helpers.record``, ``$SEQS_TEST_REPORT``).
The service targets' seed corpora must reach every outcome of
``fuzz.services.SEED_OUTCOMES`` (a lease bound, an answer over TCP, a kiss-o'-death
...): proof the harness gets past the first checks.  Longer runs: ``python -m
fuzz run --seconds 600``.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from typing import Any

import pytest
from fuzz import run as fuzz_run
from fuzz.services import DHCP_CLIENT_SCENARIOS, RUNNERS, SEED_OUTCOMES, DhcpClientHost
from fuzz.targets import STATEFUL, TARGETS, _attempt
from fuzz.tcp_states import SCENARIOS, setup
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import record
from seqs.errors import ParseError

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: seconds of fuzzing per target; 17 targets x (5 s + ~1 s of libFuzzer's start and end)
#: + ~5 s of instrumentation keep the whole run near two minutes
FUZZ_SECONDS = float(os.environ.get("SEQS_FUZZ_SECONDS", "5"))
MUTATIONS = 3000
#: executions per second of fuzzing each target must reach under atheris.  Measured here
#: (5 s runs, one of two shared CPUs): parsers 4,500 (dhcp) to 80,000/s (vnet),
#: interface ~280/s, tcp_state ~200/s, dhcp_client ~150/s, dhcp_server ~140/s,
#: dns_resolver ~360/s, ntp_client 180-330/s.  The floors are about a tenth of that, for
#: a loaded machine; a harness that dies or hangs after a few inputs is far below them.
PARSER_MIN_RATE = 500
MIN_RATE = {"interface": 30, "tcp_state": 20, "dhcp_client": 15, "dhcp_server": 15, "dns_resolver": 35,
            "ntp_client": 20}


def min_execs(target: str) -> int:
    return int(MIN_RATE.get(target, PARSER_MIN_RATE) * FUZZ_SECONDS)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_target_has_a_seed_corpus_that_runs_clean(target: str) -> None:
    files = fuzz_run.corpus_files(target)
    assert files, f"no seed corpus in fuzz/corpus/{target}: run python -m fuzz corpus"
    for path in files:
        TARGETS[target](path.read_bytes())


@pytest.fixture(scope="module")
def atheris_results(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One ``python -m fuzz run`` under atheris for the targets of the selected
    ``test_target_survives_a_short_fuzzing_run`` items: {target: its figures}."""
    wanted = sorted({item.callspec.params["target"] for item in request.session.items
                     if getattr(item, "originalname", "") == "test_target_survives_a_short_fuzzing_run"
                     and hasattr(item, "callspec")})
    work = tmp_path_factory.mktemp("fuzz")
    out = work / "results.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "src")]))
    cmd = [sys.executable, "-m", "fuzz", "run", "--seconds", str(FUZZ_SECONDS), "--json", str(out),
           "--work", str(work)]
    for t in wanted:
        cmd += ["--target", t]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=len(wanted) * (FUZZ_SECONDS + 60) + 120)
    results = {x["target"]: x for x in json.loads(out.read_text())} if out.exists() else {}
    return {"results": results, "returncode": r.returncode, "stderr": r.stderr[-8000:], "work": work}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_target_survives_a_short_fuzzing_run(target: str, request: pytest.FixtureRequest,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    if fuzz_run.have_atheris():
        run = request.getfixturevalue("atheris_results")
        res = run["results"].get(target)
        assert res is not None, f"no figures for {target} (exit {run['returncode']}):\n{run['stderr']}"
        log = run["work"] / f"{target}.log"
        line = fuzz_run.Result(**res).line()
        figures = {k: res[k] for k in ("execs", "crashes", "seconds", "cov", "ft", "corpus", "engine")}
        floor = min_execs(target)
    else:
        execs, crashes = fuzz_run.run_mutator(target, 60.0, seed=1,
                                              max_execs=MUTATIONS // (10 if target in STATEFUL else 1))
        res = {"execs": execs, "crashes": crashes}
        line = f"fuzz {target}: {execs} execs (built-in mutator), crashes {crashes}"
        figures = {"execs": execs, "crashes": crashes, "engine": "mutate"}
        floor = MUTATIONS // (10 if target in STATEFUL else 1)
        log = None
    with capsys.disabled():
        print(f"\n{line}", end="")
    record(f"fuzz_{target}", **figures, min_execs=floor)
    tail = log.read_text(errors="replace")[-6000:] if log is not None and log.exists() else ""
    assert res["crashes"] == 0, f"{line}\n{tail}"
    # a harness that dies, hangs or crawls runs far fewer inputs than a healthy one
    assert res["execs"] >= floor, f"{line}: fewer than {floor} executions\n{tail}"


@pytest.mark.parametrize("target", sorted(SEED_OUTCOMES))
def test_service_seed_corpus_reaches_every_outcome(target: str) -> None:
    """The seeds get past the checks a service makes first: each outcome a service can
    reach with a well-behaved peer is reached by some seed."""
    seen: set[str] = set()
    for path in fuzz_run.corpus_files(target):
        seen |= RUNNERS[target](path.read_bytes())
    assert SEED_OUTCOMES[target] <= seen, f"never reached: {sorted(SEED_OUTCOMES[target] - seen)}"


@pytest.mark.parametrize("index", range(len(DHCP_CLIENT_SCENARIOS)), ids=[s[0] for s in DHCP_CLIENT_SCENARIOS])
@pytest.mark.parametrize("opts", [0, 1, 2, 4 | 8])
def test_dhcp_client_scenario_reaches_its_state(index: int, opts: int) -> None:
    host = DhcpClientHost(index, opts)
    assert host.client.state == DHCP_CLIENT_SCENARIOS[index][1], (DHCP_CLIENT_SCENARIOS[index], host.client.state)


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


@pytest.mark.parametrize("target", sorted(SEED_OUTCOMES))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=st.integers(0, 255), opts=st.integers(0, 255), records=st.binary(max_size=1500))
def test_service_in_any_state_survives_arbitrary_records(target: str, scenario: int, opts: int,
                                                         records: bytes) -> None:
    TARGETS[target](bytes([scenario, opts]) + records)


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
