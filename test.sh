#!/usr/bin/env bash
# The one test command: installs what the tests need, then runs ruff, mypy --strict and pytest.
# As root with apt-get available it also installs the Debian programs the interop tests run
# (the kernel's ping, tshark, ...); without root the interop tests skip and say why.
# Extra arguments go to pytest, e.g.  bash test.sh -k arp -x
set -euo pipefail
cd "$(dirname "$0")"

# dnsmasq-base is dnsmasq without its system service; chrony has no such split, so its
# service is kept from starting (below): the DNS/NTP interop tests run their own daemons.
# busybox brings udhcpc, the DHCP client the DHCP server's interop test leases to.
# hping3 and nmap: the SYN/UDP/ping floods and the port scans of tests/interop/test_attacks_kernel.py.
DEBIAN_PACKAGES=(iproute2 iputils-ping tshark procps dnsmasq-base chrony busybox hping3 nmap socat netcat-openbsd curl)

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
.venv/bin/python -m pytest "$@"
