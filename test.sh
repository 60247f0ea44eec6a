#!/usr/bin/env bash
# The one test command: installs what the tests need, then runs ruff, mypy --strict and pytest.
# As root with apt-get available it also installs the Debian programs the interop tests run
# (the kernel's ping, tshark, ...); without root the interop tests skip and say why.
# Extra arguments go to pytest, e.g.  bash test.sh -k arp -x
set -euo pipefail
cd "$(dirname "$0")"

DEBIAN_PACKAGES=(iproute2 iputils-ping tshark procps)

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    missing=()
    for pkg in "${DEBIAN_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "test.sh: installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
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
