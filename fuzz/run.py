"""Run the fuzz targets: ``python -m fuzz run [--target T] [--seconds S]``.

With atheris installed each target runs under libFuzzer (coverage-guided, seqs
instrumented) in a process of its own: the seed corpus in ``fuzz/corpus/T`` is
read, new interesting inputs go to ``--work DIR/T`` (a temporary directory by
default, so the committed corpus only changes when you copy inputs in), and a
crashing input is written to ``--work DIR/crash-T-*``.  Without atheris (or with
``--engine mutate``) a built-in mutator runs every corpus file and then random
mutations of them for the time given.

Other commands: ``list`` (targets), ``corpus`` (regenerate the seed corpus),
``replay T FILE...`` (run inputs once, with a traceback on failure).

Each run ends with one line per target: ``fuzz T: N execs in S s, crashes C``.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import random
import re
import subprocess
import sys
import tempfile
import time
import traceback

HERE = pathlib.Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
_DONE = re.compile(r"Done (\d+) runs in (\d+) second")
_STAT = re.compile(r"#(\d+)\s+(?:pulse|NEW|REDUCE|DONE|INITED)")


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


def run_atheris_child(target: str, libfuzzer_args: list[str]) -> None:
    """Inside the child process: instrument seqs, then hand control to libFuzzer."""
    import atheris

    with atheris.instrument_imports(include=["seqs", "fuzz"]):
        from .targets import TARGETS
    fn = TARGETS[target]
    atheris.Setup([sys.argv[0], *libfuzzer_args], fn)
    atheris.Fuzz()


def run_atheris(target: str, seconds: float, work: pathlib.Path, *, seed: int) -> tuple[int, int]:
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
        str(out_dir),
    ]
    if corpus_files(target):
        args.append(str(CORPUS / target))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), str(HERE.parent / "src"), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "fuzz", "_atheris", target, *args]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 120)
    execs = 0
    m = _DONE.search(r.stderr)
    if m:
        execs = int(m.group(1))
    else:
        counts = [int(x) for x in _STAT.findall(r.stderr)]
        execs = max(counts, default=0)
    crashes = 0 if r.returncode == 0 else 1
    if crashes:
        print(f"fuzz {target}: CRASH (exit {r.returncode})\n{r.stderr[-6000:]}", file=sys.stderr)
    return execs, crashes


# -- commands -------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from .targets import TARGETS

    targets = args.target or list(TARGETS)
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        print(f"unknown target(s) {unknown}; have {sorted(TARGETS)}", file=sys.stderr)
        return 2
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if have_atheris() else "mutate"
    work = pathlib.Path(args.work) if args.work else pathlib.Path(tempfile.mkdtemp(prefix="seqs-fuzz-"))
    work.mkdir(parents=True, exist_ok=True)
    total_crashes = 0
    for i, target in enumerate(targets):
        t0 = time.monotonic()
        if engine == "atheris":
            execs, crashes = run_atheris(target, args.seconds, work, seed=args.seed + i)
        else:
            execs, crashes = run_mutator(target, args.seconds, seed=args.seed + i, work=work)
        total_crashes += crashes
        print(f"fuzz {target}: {execs} execs in {time.monotonic() - t0:.1f} s, crashes {crashes} "
              f"(engine {engine})", flush=True)
    if total_crashes:
        print(f"crashing inputs are in {work}", file=sys.stderr)
    return 1 if total_crashes else 0


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
    if argv[:1] == ["_atheris"]:
        run_atheris_child(argv[1], argv[2:])
        return 0
    p = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="fuzz targets for a while")
    r.add_argument("--target", action="append", help="target name (repeatable; default: all)")
    r.add_argument("--seconds", type=float, default=60.0, help="per target (default 60)")
    r.add_argument("--engine", choices=["auto", "atheris", "mutate"], default="auto")
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--work", help="directory for new inputs and crashes (default: a temporary one)")
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
