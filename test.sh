#!/usr/bin/env bash
# The one test command: installs what the tests need, then runs ruff, mypy --strict and pytest.
# As root with apt-get available it also installs the Debian programs the interop tests run
# (the kernel's ping, tshark, ...); without root the interop tests skip and say why.
# Extra arguments go to pytest, e.g.  bash test.sh -k arp -x
set -euo pipefail
cd "$(dirname "$0")"

# dnsmasq-base is dnsmasq without its system service; chrony has no such split, so its
# service is kept from starting (below): the DNS/NTP interop tests run their own daemons.
# busybox brings udhcpc and isc-dhcp-client brings dhclient, the two DHCP clients the DHCP
# server's interop tests lease to.
# hping3 and nmap: the SYN/UDP/ping floods and the port scans of tests/interop/test_attacks_kernel.py.
DEBIAN_PACKAGES=(iproute2 iputils-ping tshark procps dnsmasq-base chrony busybox isc-dhcp-client hping3 nmap socat netcat-openbsd curl)

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    missing=()
    for pkg in "${DEBIAN_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "test.sh: installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # Debian starts a package's service on install: chronyd would run on this machine and
        # steer its clock.  A policy-rc.d that exits 101 says "start nothing" to invoke-rc.d
        # and deb-systemd-invoke; put one in place for the install if there is none.
        policy=/usr/sbin/policy-rc.d
        made_policy=""
        if [ ! -e "$policy" ]; then
            made_policy=1
            trap 'rm -f "$policy"' EXIT
            printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy"
        fi
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        if [ -n "$made_policy" ]; then
            rm -f "$policy"
            trap - EXIT
        fi
    fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'

echo "== ruff"
.venv/bin/ruff check src tests
echo "== mypy --strict"
.venv/bin/mypy
echo "== pytest"
# The figures tests measure (fuzz executions and coverage, MB/s under faults, memory, nmap
# results...) are appended to this file by tests/helpers.py record(), one JSON object a
# line; it starts empty each run and is summarized below, pass or fail, for the CI log.
mkdir -p bench-results
export SEQS_TEST_REPORT="$PWD/bench-results/test-report.jsonl"
: >"$SEQS_TEST_REPORT"
status=0
.venv/bin/python -m pytest "$@" || status=$?

# The optional compiled build (setup.py: SEQS_MYPYC=1 compiles the hot modules with
# mypyc from the same typed sources) must behave the same: every test but the interop
# tier runs against it, and of that tier the TCP, socket-API and interface tests, in a
# venv of its own (.venv-mypyc, rebuilt when the sources change).  SEQS_BUILDS=pure skips it.
if [ "${SEQS_BUILDS:-pure,mypyc}" != pure ]; then
    echo "== the compiled build (mypyc)"
    [ -x .venv-mypyc/bin/python ] || "$PY" -m venv .venv-mypyc
    digest=$(cat setup.py pyproject.toml $(find src -name '*.py' | LC_ALL=C sort) | sha256sum | cut -d' ' -f1)
    if [ "$(cat .venv-mypyc/seqs-source.sha256 2>/dev/null)" != "$digest" ]; then
        .venv-mypyc/bin/python -m pip install -q --disable-pip-version-check 'mypy>=1.10' 'setuptools>=68' wheel
        SEQS_MYPYC=1 .venv-mypyc/bin/python -m pip install -q --disable-pip-version-check --no-build-isolation \
            --force-reinstall '.[dev]'
        echo "$digest" >.venv-mypyc/seqs-source.sha256
    fi
    .venv-mypyc/bin/python -c 'import seqs, sys; print("seqs build:", seqs.BUILD); sys.exit(seqs.BUILD != "mypyc")'
    .venv-mypyc/bin/python -m pytest "$@" tests/test_*.py \
        tests/interop/test_tcp_kernel.py tests/interop/test_api_kernel.py tests/interop/test_iface_kernel.py \
        || status=$?
fi
echo "== test figures ($SEQS_TEST_REPORT)"
.venv/bin/python tests/report.py "$SEQS_TEST_REPORT" || true
exit "$status"
