"""Run the fuzz targets: ``python -m fuzz run [--target T] [--seconds S]``.

With atheris installed each target runs under libFuzzer (coverage-guided, seqs
instrumented once, then one forked process per target): the seed corpus in
``fuzz/corpus/T`` is read, new interesting inputs go to ``--work DIR/T`` (a
temporary directory by default, so the committed corpus only changes when you
copy inputs in), libFuzzer's output to ``--work DIR/T.log``, and a crashing
input to ``--work DIR/crash-T-*``.  Without atheris (or with
``--engine mutate``) a built-in mutator runs every corpus file and then random
mutations of them for the time given.

Other commands: ``list`` (targets), ``corpus`` (regenerate the seed corpus),
``replay T FILE...`` (run inputs once, with a traceback on failure).

Each run ends with one line per target: ``fuzz T: N execs in S s, crashes C``
and, under atheris, libFuzzer's coverage (``cov`` edges, ``ft`` features, the
corpus kept); ``--json FILE`` writes the same figures for a program to read.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import random
import re
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass

HERE = pathlib.Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
_DONE = re.compile(r"Done (\d+) runs in (\d+) second")
_STAT = re.compile(r"#(\d+)\s+(?:pulse|NEW|REDUCE|DONE|INITED)")
_COV = re.compile(r"cov: (\d+) ft: (\d+) corp: (\d+)/")


def have_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def corpus_files(target: str) -> list[pathlib.Path]:
    d = CORPUS / target
    return sorted(p for p in d.iterdir() if p.is_file()) if d.is_dir() else []


# -- the built-in mutator -------------------------------------------------------------------------


def mutate(data: bytes, rng: random.Random, others: list[bytes]) -> bytes:
    """A few libFuzzer-style edits: flip, set, insert, erase, duplicate, splice, interesting values."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(8)
        if not b or op == 0:
            pos = rng.randint(0, len(b))
            b[pos:pos] = rng.randbytes(rng.randint(1, 8))
        elif op == 1:
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif op == 2:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op == 3:
            i = rng.randrange(len(b))
            del b[i : i + rng.randint(1, 16)]
        elif op == 4:
            i = rng.randrange(len(b))
            j = min(len(b), i + rng.randint(1, 32))
            b[i:i] = b[i:j]
        elif op == 5 and others:
            o = rng.choice(others)
            if o:
                i = rng.randrange(len(o))
                b[rng.randint(0, len(b)) :] = o[i:]
        elif op == 6:
            i = rng.randrange(len(b))
            v = rng.choice([0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF])
            width = rng.choice([1, 2, 4])
            b[i : i + width] = (v & ((1 << (8 * width)) - 1)).to_bytes(width, "big")
        else:
            del b[rng.randint(0, len(b)) :]
    return bytes(b[:65536])


def run_mutator(target: str, seconds: float, *, seed: int, max_execs: int | None = None,
                work: pathlib.Path | None = None) -> tuple[int, int]:
    """(executions, crashes).  Crashing inputs are saved to ``work`` if given."""
    from .targets import TARGETS

    fn = TARGETS[target]
    rng = random.Random(seed)
    seeds = [p.read_bytes() for p in corpus_files(target)] or [b""]
    execs = crashes = 0
    end = time.monotonic() + seconds

    def one(data: bytes) -> None:
        nonlocal execs, crashes
        execs += 1
        try:
            fn(data)
        except Exception:
            crashes += 1
            name = f"crash-{target}-{crashes}"
            if crashes <= 3:
                print(f"fuzz {target}: CRASH ({name})\n{traceback.format_exc()}", file=sys.stderr)
            if work is not None:
                (work / name).write_bytes(data)

    for data in seeds:
        one(data)
    while time.monotonic() < end and (max_execs is None or execs < max_execs):
        one(mutate(rng.choice(seeds), rng, seeds))
    return execs, crashes


# -- atheris --------------------------------------------------------------------------------------


@dataclass
class Result:
    """One target's run: what CI checks and records."""

    target: str
    engine: str
    execs: int = 0
    crashes: int = 0
    seconds: float = 0.0
    #: libFuzzer's coverage figures at the end (atheris only): edges (``cov``), features
    #: (``ft``) and the corpus it kept
    cov: int | None = None
    ft: int | None = None
    corpus: int | None = None
    detail: str = ""

    def line(self) -> str:
        cov = f", cov {self.cov} ft {self.ft} corpus {self.corpus}" if self.cov is not None else ""
        return (f"fuzz {self.target}: {self.execs} execs in {self.seconds:.1f} s, crashes {self.crashes}{cov} "
                f"(engine {self.engine})")


_instrumented: dict[str, Callable[[bytes], None]] | None = None


def _instrumented_targets() -> dict[str, Callable[[bytes], None]]:
    """Import the targets with seqs and fuzz instrumented for coverage: once per process
    (a few seconds), before anything imports them plainly."""
    global _instrumented
    if _instrumented is None:
        import atheris

        if "fuzz.targets" in sys.modules:
            raise RuntimeError("fuzz.targets was imported before instrumentation: coverage would be blind")
        with atheris.instrument_imports(include=["seqs", "fuzz"]):
            from .targets import TARGETS
        _instrumented = TARGETS
    return _instrumented


def _libfuzzer_args(target: str, seconds: float, work: pathlib.Path, seed: int) -> list[str]:
    out_dir = work / target
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        f"-max_total_time={max(1, round(seconds))}",
        f"-seed={seed}",
        "-rss_limit_mb=2048",
        "-max_len=8192",
        "-timeout=20",
        f"-artifact_prefix={work}/crash-{target}-",
        "-print_final_stats=1",
        str(out_dir),  # new inputs go to the first directory: never the committed corpus
    ]
    if corpus_files(target):
        args.append(str(CORPUS / target))
    from .targets import STATEFUL  # imported (instrumented) by now

    if target in STATEFUL:
        # A conversation takes several records, and these targets run a few hundred inputs
        # a second: libFuzzer's default of growing the length limit slowly kept them under
        # 85 bytes for minutes.  Unlimited from the start: +3-7 % features in 20 s here.
        args.insert(0, "-len_control=0")
    return args


def _saving_crashes(fn: Callable[[bytes], None], target: str, work: pathlib.Path) -> Callable[[bytes], None]:
    """``fn``, writing an input that raises to ``work/crash-T-<sha1>`` first: atheris reports a
    Python exception and exits without libFuzzer writing the artifact."""

    def run(data: bytes) -> None:
        try:
            fn(data)
        except BaseException:
            (work / f"crash-{target}-{hashlib.sha1(data).hexdigest()}").write_bytes(data)
            raise

    return run


def parse_libfuzzer_log(text: str) -> tuple[int, int | None, int | None, int | None]:
    """(executions, cov, ft, corpus size) from libFuzzer's output."""
    m = _DONE.search(text)
    execs = int(m.group(1)) if m else max((int(x) for x in _STAT.findall(text)), default=0)
    stats = _COV.findall(text)
    if not stats:
        return execs, None, None, None
    cov, ft, corp = stats[-1]
    return execs, int(cov), int(ft), int(corp)


def run_atheris(targets: list[str], seconds: float, work: pathlib.Path, *, seed: int) -> list[Result]:
    """Each target under libFuzzer in a child forked from this process, which instruments
    seqs once for all of them (instrumenting costs ~5 s; a process per target paid it every
    time).  Each child's output goes to ``work/T.log``; a child that outlives its time by a
    minute is killed and counts as a crash (a hang)."""
    fns = _instrumented_targets()
    results = []
    for i, target in enumerate(targets):
        log = work / f"{target}.log"
        args = _libfuzzer_args(target, seconds, work, seed + i)
        sys.stdout.flush()
        sys.stderr.flush()
        t0 = time.monotonic()
        pid = os.fork()
        if pid == 0:  # the child: libFuzzer takes over and exits the process itself
            code = 1
            try:
                import atheris

                fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                atheris.Setup([sys.argv[0], *args], _saving_crashes(fns[target], target, work))
                atheris.Fuzz()
                code = 0
            finally:
                os._exit(code)
        deadline = t0 + max(1, round(seconds)) + 60
        status = None
        while status is None:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = os.waitstatus_to_exitcode(st)
            elif time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                status = -signal.SIGKILL
            else:
                time.sleep(0.05)
        text = log.read_text(errors="replace") if log.exists() else ""
        execs, cov, ft, corp = parse_libfuzzer_log(text)
        r = Result(target, "atheris", execs, 0 if status == 0 else 1, time.monotonic() - t0, cov, ft, corp)
        if r.crashes:
            r.detail = f"exit {status}; log {log}"
            print(f"fuzz {target}: CRASH (exit {status})\n{text[-6000:]}", file=sys.stderr)
        results.append(r)
        print(r.line(), flush=True)
    return results


# -- commands -------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if have_atheris() else "mutate"
    # under atheris the targets must be imported instrumented: before the name check below
    names = list(_instrumented_targets()) if engine == "atheris" else None
    from .targets import TARGETS

    names = names or list(TARGETS)
    targets = args.target or names
    unknown = [t for t in targets if t not in names]
    if unknown:
        print(f"unknown target(s) {unknown}; have {sorted(names)}", file=sys.stderr)
        return 2
    work = pathlib.Path(args.work) if args.work else pathlib.Path(tempfile.mkdtemp(prefix="seqs-fuzz-"))
    work.mkdir(parents=True, exist_ok=True)
    if engine == "atheris":
        results = run_atheris(targets, args.seconds, work, seed=args.seed)
    else:
        results = []
        for i, target in enumerate(targets):
            t0 = time.monotonic()
            execs, crashes = run_mutator(target, args.seconds, seed=args.seed + i, work=work)
            results.append(Result(target, "mutate", execs, crashes, time.monotonic() - t0))
            print(results[-1].line(), flush=True)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=1) + "\n")
    if any(r.crashes for r in results):
        print(f"crashing inputs are in {work}", file=sys.stderr)
        return 1
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from .targets import TARGETS

    fn = TARGETS[args.target]
    bad = 0
    for path in args.files:
        try:
            fn(pathlib.Path(path).read_bytes())
        except Exception:
            bad += 1
            print(f"{path}:\n{traceback.format_exc()}", file=sys.stderr)
    print(f"replayed {len(args.files)} input(s), {bad} failed")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="fuzz targets for a while")
    r.add_argument("--target", action="append", help="target name (repeatable; default: all)")
    r.add_argument("--seconds", type=float, default=60.0, help="per target (default 60)")
    r.add_argument("--engine", choices=["auto", "atheris", "mutate"], default="auto")
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--work", help="directory for new inputs, crashes and libFuzzer logs (default: a temporary one)")
    r.add_argument("--json", metavar="FILE", help="write each target's figures (execs, crashes, coverage) to FILE")
    sub.add_parser("list", help="list the targets")
    sub.add_parser("corpus", help="regenerate the seed corpus in fuzz/corpus/")
    rp = sub.add_parser("replay", help="run inputs once")
    rp.add_argument("target")
    rp.add_argument("files", nargs="+")
    args = p.parse_args(argv)
    if args.cmd == "run":
        return cmd_run(args)
    if args.cmd == "list":
        from .targets import TARGETS

        print("\n".join(TARGETS))
        return 0
    if args.cmd == "corpus":
        from .corpus import write_corpus

        for target, n in write_corpus(CORPUS).items():
            print(f"{target}: {n} files")
        return 0
    return cmd_replay(args)
