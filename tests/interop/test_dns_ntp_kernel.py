"""seqs' DNS and NTP clients against real servers: dnsmasq and chrony on the kernel
side of a TAP, inside a network namespace the test creates.

Each test runs ``seqs resolve`` / ``seqs ntp`` (the CLI, so the device options,
the runner and the output format are exercised too) on the TAP's other side.
dnsmasq serves a small zone from its command line (A, AAAA, CNAME chains, PTR,
NXDOMAIN, and an AAAA set too big for its 512-byte UDP limit, which forces the
TCP fallback); chronyd serves its own clock as a stratum-1 ``local`` reference.
The namespace shares the machine's clock, so the offset seqs measures must be
within a few milliseconds of zero.  Both daemons run in the foreground with
every file in ``tmp_path``, are killed with the namespace, and every wait has a
bound.  Nothing depends on a system-wide dnsmasq or chrony service.
"""

from __future__ import annotations

import pathlib
import random
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from seqs.netns import Namespace

pytestmark = pytest.mark.interop

ZONE = "seqs.test"
BIG = 40  # AAAA records: 40 * 28 bytes is far past dnsmasq's --edns-packet-max=512
_OFFSET = re.compile(r"^server (\S+), stratum (\d+), offset ([+-]\d+\.\d+), delay (\d+\.\d+)$", re.M)


@dataclass
class Site:
    ns: Namespace
    kernel_ip: str
    ip: str
    tmp: pathlib.Path

    def seqs(self, *args: str, address: bool = True, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """``python -m seqs ARGS --tap tap0 [--ip ...]`` inside the namespace."""
        cmd = [sys.executable, "-m", "seqs", *args, "--tap", "tap0"]
        if address:
            cmd += ["--ip", f"{self.ip}/24"]
        return self.ns.run(cmd, timeout=timeout)

    def wait_listening(self, proto: str, port: int, log: pathlib.Path, timeout: float = 10.0) -> None:
        flag = "-lnu" if proto == "udp" else "-lnt"
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            out = self.ns.run(["ss", "-H", flag], timeout=10).stdout
            if re.search(rf"[\s:\]]{port}\s", out):
                return
            time.sleep(0.05)
        pytest.fail(f"nothing listening on {proto} port {port} after {timeout}s; log:\n{_read(log)}")


def _read(path: pathlib.Path) -> str:
    return path.read_text(errors="replace") if path.exists() else "(no log)"


@pytest.fixture
def site(tmp_path: pathlib.Path) -> Iterator[Site]:
    x, y = random.randint(1, 254), random.randint(1, 254)
    with Namespace("seqs-dn") as ns:
        ns.add_tap("tap0", f"10.{x}.{y}.1/24")
        yield Site(ns, f"10.{x}.{y}.1", f"10.{x}.{y}.2", tmp_path)


def start_dnsmasq(site: Site, *extra: str) -> pathlib.Path:
    k = site.kernel_ip
    log = site.tmp / "dnsmasq.log"
    args = [
        "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--user=root",
        f"--listen-address={k}", "--bind-interfaces", "--port=53", f"--pid-file={site.tmp / 'dnsmasq.pid'}",
        f"--local=/{ZONE}/", "--local-ttl=30", "--edns-packet-max=512", "--log-queries",
        f"--log-facility={log}",
        f"--host-record=router.{ZONE},{k}",
        f"--host-record=v6.{ZONE},fd00::53",
        f"--cname=www.{ZONE},router.{ZONE}",
        f"--cname=alias.{ZONE},www.{ZONE}",
        f"--address=/wild.{ZONE}/10.9.9.9",
        *(f"--host-record=big.{ZONE},fd00::{i:x}" for i in range(1, BIG + 1)),
        *extra,
    ]
    proc = site.ns.popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        site.wait_listening("udp", 53, log)
        site.wait_listening("tcp", 53, log)
    except BaseException:
        proc.kill()
        raise
    return log


def start_chrony(site: Site, *, local: bool = True) -> pathlib.Path:
    conf = site.tmp / "chrony.conf"
    lines = [
        "local stratum 1" if local else "# no reference: unsynchronized",
        f"allow {site.kernel_ip.rsplit('.', 1)[0]}.0/24",
        "port 123",
        "cmdport 0",
        "bindcmdaddress /",  # no Unix command socket either
        f"driftfile {site.tmp / 'chrony.drift'}",
        f"pidfile {site.tmp / 'chronyd.pid'}",
        "user root",
    ]
    conf.write_text("\n".join(lines) + "\n")
    log = site.tmp / "chronyd.log"
    # -d: foreground, log to stderr; -x: never touch the system clock.
    site.ns.popen(["chronyd", "-d", "-x", "-f", str(conf)], stdout=subprocess.DEVNULL,
                  stderr=log.open("w"))
    site.wait_listening("udp", 123, log)
    return log


def lines(r: subprocess.CompletedProcess[str]) -> list[str]:
    return r.stdout.splitlines()


def ok(r: subprocess.CompletedProcess[str], log: pathlib.Path | None = None) -> subprocess.CompletedProcess[str]:
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}\n" + (
        f"server log:\n{_read(log)}" if log else "")
    return r


# -- DNS against dnsmasq ----------------------------------------------------------------------


@pytest.mark.programs("dnsmasq", "ss")
def test_seqs_resolves_dnsmasq_a_aaaa_and_ptr_records(site: Site) -> None:
    log = start_dnsmasq(site)
    k = site.kernel_ip
    assert lines(ok(site.seqs("resolve", "--dns", k, f"router.{ZONE}"), log)) == [k]
    assert lines(ok(site.seqs("resolve", "--dns", k, "--type", "AAAA", f"v6.{ZONE}"), log)) == ["fd00::53"]
    assert lines(ok(site.seqs("resolve", "--dns", k, f"host.wild.{ZONE}"), log)) == ["10.9.9.9"]
    # --host-record also makes the PTR record (dig -x)
    assert lines(ok(site.seqs("resolve", "--dns", k, "--type", "PTR", k), log)) == [f"router.{ZONE}."]


@pytest.mark.programs("dnsmasq", "ss")
def test_seqs_follows_a_dnsmasq_cname_chain(site: Site) -> None:
    log = start_dnsmasq(site)
    r = ok(site.seqs("resolve", "--dns", site.kernel_ip, "-v", f"alias.{ZONE}"), log)
    # dig +short's shape: the aliases followed, then the address
    assert lines(r) == [f"www.{ZONE}.", f"router.{ZONE}.", site.kernel_ip]
    assert f"CNAMEs www.{ZONE} -> router.{ZONE}" in r.stderr


@pytest.mark.programs("dnsmasq", "ss")
def test_seqs_reports_dnsmasq_nxdomain_in_one_line_and_exits_1(site: Site) -> None:
    log = start_dnsmasq(site)
    r = site.seqs("resolve", "--dns", site.kernel_ip, f"nosuch.{ZONE}")
    assert r.returncode == 1, (r.stdout, r.stderr, _read(log))
    assert r.stdout == ""
    (line,) = r.stderr.splitlines()
    assert "NXDOMAIN" in line and f"nosuch.{ZONE}" in line


@pytest.mark.programs("dnsmasq", "ss")
def test_truncated_dnsmasq_answer_is_fetched_again_over_tcp(site: Site) -> None:
    # dnsmasq cuts UDP answers at --edns-packet-max (512) and sets TC; seqs asks again
    # over its own TCP (RFC 7766) and gets all of them.
    log = start_dnsmasq(site)
    r = ok(site.seqs("resolve", "--dns", site.kernel_ip, "-v", "--type", "AAAA", f"big.{ZONE}"), log)
    assert sorted(lines(r)) == sorted(f"fd00::{i:x}" for i in range(1, BIG + 1))
    assert "over TCP, after a truncated UDP answer" in r.stderr
    assert "query[AAAA] big" in _read(log)


@pytest.mark.programs("dnsmasq", "ss")
def test_timeout_when_nobody_serves_dns(site: Site) -> None:
    # No dnsmasq: the kernel answers ICMP port unreachable, seqs gives up at once.
    r = site.seqs("resolve", "--dns", site.kernel_ip, "--timeout", "0.5", "--attempts", "1", f"router.{ZONE}")
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, r.stderr
    assert "unreachable" in r.stderr


# -- NTP against chrony --------------------------------------------------------------------------


@pytest.mark.programs("chronyd", "ss")
def test_seqs_measures_chronys_offset_within_milliseconds(site: Site) -> None:
    log = start_chrony(site)
    r = ok(site.seqs("ntp", "--samples", "4", "--interval", "0.2", "-v", site.kernel_ip), log)
    m = _OFFSET.search(r.stdout)
    assert m, r.stdout
    server, stratum, offset, delay = m[1], int(m[2]), float(m[3]), float(m[4])
    assert (server, stratum) == (site.kernel_ip, 1)
    # Same machine, same clock: only the asymmetry of two Python-driven paths remains.
    assert abs(offset) < 0.005, r.stdout + r.stderr
    assert 0.0 <= delay < 0.1
    # UDP may lose one (the first request can race the TAP's link coming up in the kernel)
    assert 2 <= r.stderr.count("sample ") <= 4, r.stderr
    assert "ref 127.127.1.1" in r.stderr  # chrony's local reference
    print(f"seqs vs chrony: offset {offset:+.6f} s, delay {delay:.6f} s")


@pytest.mark.programs("chronyd", "ss")
def test_unsynchronized_chrony_is_rejected(site: Site) -> None:
    # Without a reference chrony answers with leap indicator 3 and stratum 0 (RFC 5905 §7.3).
    log = start_chrony(site, local=False)
    r = site.seqs("ntp", "--samples", "2", "--interval", "0.1", site.kernel_ip)
    assert r.returncode == 1, (r.stdout, r.stderr, _read(log))
    (line,) = r.stderr.splitlines()
    assert "not synchronized" in line or "stratum 0" in line


# -- both, with the servers learnt from a DHCP lease ---------------------------------------------


@pytest.mark.programs("dnsmasq", "chronyd", "ss")
def test_dhcp_lease_supplies_the_dns_and_ntp_servers(site: Site) -> None:
    k = site.kernel_ip
    net = k.rsplit(".", 1)[0]
    # --no-ping: skip dnsmasq's 3 s ICMP check that an address is free before offering it
    log = start_dnsmasq(site, "--no-ping", f"--dhcp-range={net}.50,{net}.60,255.255.255.0,1h",
                       f"--dhcp-leasefile={site.tmp / 'leases'}", f"--dhcp-option=option:dns-server,{k}",
                       f"--dhcp-option=option:ntp-server,{k}")
    site.wait_listening("udp", 67, log)
    start_chrony(site)
    r = ok(site.seqs("resolve", "--dhcp", "--dhcp-timeout", "20", f"www.{ZONE}", address=False), log)
    assert lines(r) == [f"router.{ZONE}.", k]
    r = ok(site.seqs("ntp", "--dhcp", "--dhcp-timeout", "20", "--samples", "2", "--interval", "0.2",
                     address=False), log)
    m = _OFFSET.search(r.stdout)
    assert m and m[1] == k and abs(float(m[3])) < 0.005, r.stdout
    assert "DHCPACK" in _read(log)
