"""The optional compiled build: ``SEQS_MYPYC=1 pip install --no-build-isolation .``

By default seqs installs as pure Python (the metadata is all in pyproject.toml).
With ``SEQS_MYPYC=1`` the hot modules below are compiled by mypyc from the same
typed sources (mypy must be installed in the environment, hence
``--no-build-isolation``); the rest stays interpreted.  The result behaves the
same — the whole test suite runs against it in CI (``test.sh``) — and is faster
per frame (``seqs bench ... --builds pure,mypyc`` measures both side by side).
``seqs --version`` says which build is running.
"""

from __future__ import annotations

import os

from setuptools import setup

#: compiled together (calls between them skip the interpreter); leaf and hot modules
#: only: a compiled class cannot be subclassed or monkeypatched by interpreted code
COMPILED_MODULES = [
    "src/seqs/wire/checksum.py",
    "src/seqs/tcp/seq.py",
    "src/seqs/tcp/rtt.py",
    "src/seqs/tcp/congestion.py",
    "src/seqs/tcp/isn.py",
    "src/seqs/tcp/connection.py",
    "src/seqs/iface/timers.py",
    "src/seqs/iface/stats.py",
    "src/seqs/iface/notify.py",
    "src/seqs/iface/interface.py",
    "src/seqs/iface/arp.py",
    "src/seqs/iface/reassembly.py",
    "src/seqs/sockets/base.py",
    "src/seqs/sockets/icmp.py",
    "src/seqs/sockets/tcp.py",
    "src/seqs/sockets/udp.py",
]

ext_modules = []
if os.environ.get("SEQS_MYPYC") == "1":
    from mypyc.build import mypycify

    ext_modules = mypycify(COMPILED_MODULES, opt_level="3")

setup(ext_modules=ext_modules)
