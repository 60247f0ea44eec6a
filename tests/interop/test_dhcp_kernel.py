"""DHCP against real implementations, through a TAP device in a namespace:
seqs' client against dnsmasq, and busybox udhcpc and ISC dhclient against seqs'
server.

Each test makes its own namespace (``seqs.netns.Namespace``), runs the real
program on the kernel side of the TAP and ``seqs up`` on the other, and checks
what both sides say: seqs' ``ready``/``dhcp EVENT`` lines and ``--stats-file``,
dnsmasq's lease file and log, udhcpc's and dhclient's script calls and the
kernel's address.
Every wait is bounded; the namespace and every process in it (dnsmasq,
udhcpc, dhclient) are killed when the test ends.
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from seqs.netns import Namespace, SeqsProcess

pytestmark = pytest.mark.interop

_READY = re.compile(r"^ready mac=(?P<mac>[0-9a-f:]{17}) ip=(?P<ip>[0-9.]+)/(?P<prefix>\d+) device=tap0$")


def _prefix() -> str:
    """A random 10.X.Y subnet: a fresh namespace has no routes, so it is private to it."""
    return f"10.{random.randint(1, 254)}.{random.randint(1, 254)}"


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Lines:
    """Lines a process writes to its stdout, read without blocking."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self.fd = proc.stdout.fileno()
        self.buf = b""
        self.lines: list[str] = []

    def pump(self, wait: float = 0.1) -> None:
        r, _, _ = select.select([self.fd], [], [], wait)
        if r:
            chunk = os.read(self.fd, 65536)
            self.buf += chunk
            *done, self.buf = self.buf.split(b"\n")
            self.lines += [d.decode(errors="replace") for d in done]

    def wait_for(self, predicate: Callable[[str], bool], timeout: float, what: str) -> str:
        end = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < end:
            for line in self.lines[seen:]:
                if predicate(line):
                    return line
            seen = len(self.lines)
            self.pump(0.2)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; got {self.lines}")


def start_dnsmasq(ns: Namespace, tmp: pathlib.Path, net: str, *extra: str) -> tuple[pathlib.Path, pathlib.Path]:
    """dnsmasq as the DHCP server on tap0 (DNS off); returns (lease file, log file)."""
    leases, log = tmp / "dnsmasq.leases", tmp / "dnsmasq.log"
    leases.write_text("")
    log.write_text("")
    ns.popen(
        ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=tap0", "--bind-interfaces",
         f"--dhcp-range={net}.50,{net}.99,2m", f"--dhcp-leasefile={leases}", "--no-resolv", "--no-hosts",
         "--log-dhcp", f"--log-facility={log}", f"--pid-file={tmp / 'dnsmasq.pid'}",
         f"--dhcp-option=option:dns-server,{net}.53", f"--dhcp-option=option:ntp-server,{net}.123", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: "DHCP, sockets bound" in log.read_text() or "DHCP, IP range" in log.read_text(), 10,
             "dnsmasq to start")
    return leases, log


def read_stats(proc: subprocess.Popen[str], path: pathlib.Path) -> dict[str, Any]:
    """Ask seqs for its --stats-file snapshot (SIGUSR1) and read it."""
    path.unlink(missing_ok=True)
    proc.send_signal(signal.SIGUSR1)
    wait_for(path.exists, 10, "the stats file")
    snapshot: dict[str, Any] = json.loads(path.read_text())
    return snapshot


# -- seqs' client, dnsmasq's server ------------------------------------------------------------


@pytest.mark.programs("dnsmasq", "ping")
def test_seqs_client_leases_renews_and_releases_with_dnsmasq(tmp_path: pathlib.Path) -> None:
    net = _prefix()
    stats = tmp_path / "stats.json"
    with Namespace("seqs-dhcpc") as ns:
        ns.add_tap("tap0", f"{net}.1/24")
        # dnsmasq's shortest lease is 2 minutes; T1/T2 options make it renew in seconds.
        leases, log = start_dnsmasq(ns, tmp_path, net, "--dhcp-option=option:T1,6", "--dhcp-option=option:T2,12")
        seqs = ns.start_seqs(["up", "--tap", "tap0", "--dhcp", "--hostname", "seqs-test", "--udp-echo", "7",
                              "--stats-file", str(stats)], ready_timeout=45)
        m = _READY.match(seqs.ready_line)
        assert m is not None, seqs.ready_line
        ip, mac = m["ip"], m["mac"]
        assert m["prefix"] == "24" and 50 <= int(ip.rsplit(".", 1)[1]) <= 99, seqs.ready_line
        # dnsmasq recorded the lease: expiry, MAC, address, the host name we sent.
        row = leases.read_text().split()
        assert row[1:4] == [mac, ip, "seqs-test"], row
        # The address works: the kernel pings seqs at it.
        r = ns.run(["ping", "-n", "-c", "2", "-W", "2", "-w", "10", ip], timeout=20)
        assert r.returncode == 0, r.stdout + r.stderr
        # What the lease carried reached the stack.
        lease = read_stats(seqs.proc, stats)["dhcp"]["client"]["lease"]
        assert (lease["server_id"], lease["routers"], lease["dns_servers"], lease["ntp_servers"]) == \
            (f"{net}.1", [f"{net}.1"], [f"{net}.53"], [f"{net}.123"])
        # T1 = 6 s: a unicast DHCPREQUEST renews the lease.
        lines = Lines(seqs.proc)
        lines.wait_for(lambda s: s.startswith(f"dhcp renewed ip={ip}/24 server={net}.1"), 30, "a renewal")
        # SIGTERM: DHCPRELEASE, then exit 0.
        code, out, err = seqs.stop()
        assert code == 0 and "Traceback" not in err, err
        assert f"dhcp released ip={ip}/24" in out + "\n".join(lines.lines), out
        wait_for(lambda: mac not in leases.read_text(), 10, "dnsmasq to drop the lease")
        text = log.read_text()
        assert f"DHCPRELEASE(tap0) {ip} {mac}" in text, text[-2000:]
        assert f"DHCPACK(tap0) {ip} {mac} seqs-test" in text
        final = json.loads(stats.read_text())["dhcp"]["client"]
        kinds = [e["kind"] for e in final["events"]]
        assert final["state"] == "STOPPED" and kinds[0] == "bound" and "renewed" in kinds and \
            kinds[-1] == "released", final


@pytest.mark.programs("dnsmasq")
def test_seqs_client_declines_an_address_the_kernel_already_uses(tmp_path: pathlib.Path) -> None:
    net = _prefix()
    mac = "02:5e:00:00:00:42"
    with Namespace("seqs-dhcpd") as ns:
        ns.add_tap("tap0", f"{net}.1/24")
        ns.ip("addr", "add", f"{net}.60/24", "dev", "tap0")  # the kernel holds .60 as well
        # dnsmasq offers .60 to our MAC without checking it first (--no-ping), and
        # broadcasts its replies: a unicast to .60 would stay inside the kernel, which owns it.
        leases, log = start_dnsmasq(ns, tmp_path, net, "--no-ping", "--dhcp-broadcast",
                                    f"--dhcp-host={mac},{net}.60")
        env = dict(os.environ, PYTHONPATH=str(pathlib.Path(__file__).resolve().parents[2] / "src"),
                   PYTHONUNBUFFERED="1")
        proc = ns.popen([sys.executable, "-m", "seqs", "up", "--tap", "tap0", "--dhcp", "--mac", mac],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        lines = Lines(proc)
        # RFC 5227: the kernel answers seqs' ARP probe for .60, so seqs declines it.
        line = lines.wait_for(lambda s: s.startswith("dhcp declined"), 40, "a DHCPDECLINE")
        assert f"ip={net}.60/24" in line, line
        wait_for(lambda: f"DHCPDECLINE(tap0) {net}.60 {mac}" in log.read_text(), 10, "dnsmasq to log the decline")
        # RFC 2131 §3.1 step 5: ten seconds later seqs starts over and gets another address.
        ready = lines.wait_for(lambda s: s.startswith("ready"), 40, "a lease after the decline")
        m = _READY.match(ready)
        assert m is not None and m["ip"] != f"{net}.60", ready
        assert f"{mac} {m['ip']}" in leases.read_text()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0 and "Traceback" not in err, err
        assert f"{net}.60 " not in leases.read_text()


# -- seqs' server, a kernel-side client: what both client tests check ------------------------------


def _start_seqs_dhcp_server(ns: Namespace, net: str, stats: pathlib.Path, saved: pathlib.Path) -> SeqsProcess:
    """tap0 with no address on the kernel side, and `seqs up` serving .100-.110 with 20 s leases."""
    ns.ip("tuntap", "add", "dev", "tap0", "mode", "tap")
    ns.ip("link", "set", "tap0", "up")
    return ns.start_seqs(["up", "--tap", "tap0", "--ip", f"{net}.1/24", "--dhcp-server",
                          f"{net}.100-{net}.110", "--lease-time", "20", "--router", f"{net}.1", "--dns",
                          f"{net}.53", "--stats-file", str(stats), "--dhcp-leases", str(saved)])


def _lines(path: pathlib.Path) -> list[str]:
    return path.read_text().splitlines()


def _kernel_side_bound(ns: Namespace, net: str, events: pathlib.Path, word: str, options: str,
                       who: str, timeout: float) -> str:
    """Wait for the client's script to log ``word`` (its name for "bound"), check the lease it
    logged (``options``: how that client spells mask, router, DNS, lease and server id), and
    that the kernel side has the address and pings seqs from it.  Returns the address."""
    wait_for(lambda: any(x.startswith(word) for x in _lines(events)), timeout, f"{who} to bind")
    bound = next(x for x in _lines(events) if x.startswith(word))
    ip = re.search(r"ip=(\S+)", bound)[1]  # type: ignore[index]
    assert ip.startswith(f"{net}.1") and 100 <= int(ip.rsplit(".", 1)[1]) <= 110, bound
    assert options in bound, bound
    addrs = json.loads(ns.ip("-j", "addr", "show", "dev", "tap0"))
    assert {a["local"] for a in addrs[0]["addr_info"] if a["family"] == "inet"} == {ip}, addrs
    r = ns.run(["ping", "-n", "-c", "2", "-W", "2", "-w", "10", f"{net}.1"], timeout=20)
    assert r.returncode == 0, r.stdout + r.stderr
    return ip


def _assert_one_binding(seqs: SeqsProcess, stats: pathlib.Path, saved: pathlib.Path, ip: str, hostname: str,
                        min_acks: int) -> None:
    """seqs' server holds exactly this binding, in its table and in its lease file."""
    server = read_stats(seqs.proc, stats)["dhcp"]["server"]
    assert [(x["address"], x["state"], x["hostname"]) for x in server["leases"]] == [(ip, "bound", hostname)]
    assert server["counts"]["ack"] >= min_acks and server["counts"]["nak"] == 0, server
    assert [x["address"] for x in json.loads(saved.read_text())["leases"]] == [ip]


def _assert_released_and_stop(seqs: SeqsProcess, stats: pathlib.Path, saved: pathlib.Path) -> None:
    """After the client's DHCPRELEASE seqs frees the address, then exits cleanly."""
    wait_for(lambda: json.loads(saved.read_text())["leases"] == [], 10, "seqs to drop the lease")
    server = read_stats(seqs.proc, stats)["dhcp"]["server"]
    assert server["leases"] == [] and server["counts"]["release"] == 1, server
    code, _out, err = seqs.stop()
    assert code == 0 and "Traceback" not in err, err


# -- busybox udhcpc's client, seqs' server ----------------------------------------------------------


_UDHCPC_SCRIPT = """#!/bin/sh
# udhcpc calls this with deconfig, bound, renew, leasefail or nak; it applies the lease.
echo "$1 ip=$ip mask=$mask router=$router dns=$dns lease=$lease serverid=$serverid" >> {events}
case "$1" in
  deconfig) ip addr flush dev "$interface" ;;
  bound|renew) ip addr replace "$ip/${{mask:-24}}" dev "$interface" ;;
esac
exit 0
"""


@pytest.mark.programs("busybox", "ping")
def test_udhcpc_leases_renews_and_releases_from_seqs_server(tmp_path: pathlib.Path) -> None:
    net = _prefix()
    events, stats, saved = tmp_path / "events", tmp_path / "stats.json", tmp_path / "leases.json"
    events.write_text("")
    script = tmp_path / "udhcpc.sh"
    script.write_text(_UDHCPC_SCRIPT.format(events=events))
    script.chmod(0o755)
    with Namespace("seqs-dhcps") as ns:
        seqs = _start_seqs_dhcp_server(ns, net, stats, saved)
        udhcpc = ns.popen(["busybox", "udhcpc", "-f", "-i", "tap0", "-s", str(script), "-t", "10", "-T", "2",
                           "-R", "-x", "hostname:bbox"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        ip = _kernel_side_bound(ns, net, events, "bound ",
                                f"mask=24 router={net}.1 dns={net}.53 lease=20 serverid={net}.1", "udhcpc", 30)
        # A 20 s lease: udhcpc renews on its own (unicast DHCPREQUEST) ...
        wait_for(lambda: any(x.startswith("renew ") for x in _lines(events)), 30, "udhcpc to renew")
        # ... and on SIGUSR1.
        renewals = sum(x.startswith("renew ") for x in _lines(events))
        udhcpc.send_signal(signal.SIGUSR1)
        wait_for(lambda: sum(x.startswith("renew ") for x in _lines(events)) > renewals, 15, "a forced renewal")
        _assert_one_binding(seqs, stats, saved, ip, "bbox", min_acks=3)
        # SIGTERM with -R: udhcpc releases the lease, and seqs frees the address.
        udhcpc.send_signal(signal.SIGTERM)
        out, _ = udhcpc.communicate(timeout=15)
        assert "release" in out, out
        _assert_released_and_stop(seqs, stats, saved)


# -- ISC dhclient, seqs' server ------------------------------------------------------------------------


# dhclient runs this with $reason (PREINIT, BOUND, RENEW, REBIND, RELEASE, ...) and the lease in
# $new_* variables; like dhclient-script, it gives the kernel side the address.
_DHCLIENT_SCRIPT = """#!/bin/sh
echo "$reason ip=$new_ip_address mask=$new_subnet_mask router=$new_routers dns=$new_domain_name_servers \
lease=$new_dhcp_lease_time serverid=$new_dhcp_server_identifier" >> {events}
case "$reason" in
  PREINIT) ip link set dev "$interface" up ;;
  BOUND|RENEW|REBIND|REBOOT) ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface" ;;
  RELEASE|EXPIRE|STOP) ip addr flush dev "$interface" ;;
esac
exit 0
"""

_DHCLIENT_CONF = """send host-name "isc";
request subnet-mask, routers, domain-name-servers, dhcp-lease-time, dhcp-renewal-time, dhcp-rebinding-time;
"""


@pytest.mark.programs("dhclient", "ping")
def test_isc_dhclient_leases_renews_and_releases_from_seqs_server(tmp_path: pathlib.Path) -> None:
    """A second client implementation (RFC 2131), with its own idea of timers and options:
    ISC dhclient binds, renews by unicast at T1 on its own, and `dhclient -r` releases."""
    net = _prefix()
    events, stats, saved = tmp_path / "events", tmp_path / "stats.json", tmp_path / "leases.json"
    events.write_text("")
    script, conf = tmp_path / "dhclient.sh", tmp_path / "dhclient.conf"
    script.write_text(_DHCLIENT_SCRIPT.format(events=events))
    script.chmod(0o755)
    conf.write_text(_DHCLIENT_CONF)
    files = ["-sf", str(script), "-cf", str(conf), "-lf", str(tmp_path / "dhclient.leases"),
             "-pf", str(tmp_path / "dhclient.pid")]
    with Namespace("seqs-dhcpi") as ns:
        seqs = _start_seqs_dhcp_server(ns, net, stats, saved)
        dhclient = ns.popen(["dhclient", "-d", "-v", "-4", *files, "tap0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        ip = _kernel_side_bound(ns, net, events, "BOUND ",
                                f"mask=255.255.255.0 router={net}.1 dns={net}.53 lease=20 serverid={net}.1",
                                "dhclient", 40)
        # A 20 s lease: T1 at 10 s, and dhclient renews with a unicast DHCPREQUEST (RFC 2131 §4.4.5).
        wait_for(lambda: any(x.startswith("RENEW ") for x in _lines(events)), 40, "dhclient to renew")
        _assert_one_binding(seqs, stats, saved, ip, "isc", min_acks=2)
        # dhclient -r: the running client (by its pid file) is stopped and a DHCPRELEASE goes out.
        r = ns.run(["dhclient", "-r", "-v", *files, "tap0"], timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr
        dhclient.wait(timeout=15)
        _assert_released_and_stop(seqs, stats, saved)
