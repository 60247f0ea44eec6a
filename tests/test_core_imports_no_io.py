"""The sans-IO rule, enforced: protocol code imports no I/O, thread or clock module."""

from __future__ import annotations

import ast
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parent.parent / "src" / "seqs"
CORE = ["wire", "iface", "tcp", "sockets", "services"]
CORE_FILES = ["stack.py", "errors.py", "_typing.py"]
FORBIDDEN = {
    "asyncio", "fcntl", "mmap", "os", "select", "selectors", "signal", "socket", "ssl", "subprocess",
    "threading", "time", "datetime", "multiprocessing", "io", "pathlib", "shutil", "tempfile", "logging",
}


def _core_modules() -> list[pathlib.Path]:
    files = [SRC / f for f in CORE_FILES]
    for pkg in CORE:
        files.extend(sorted((SRC / pkg).rglob("*.py")))
    return files


@pytest.mark.parametrize("path", _core_modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_core_module_imports_no_io_module(path: pathlib.Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    bad = imported & FORBIDDEN
    assert not bad, f"{path.name} imports {sorted(bad)}: the core must stay sans-IO"
