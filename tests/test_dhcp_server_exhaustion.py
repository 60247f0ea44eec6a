"""An exhausted DHCP pool (RFC 2131 §4.3.1): a DISCOVER gets no answer at all (there
is no DHCPNAK for a DISCOVER), each one is counted as ``dhcp_pool_exhausted``,
and the spell is reported once — ``on_exhausted(True)`` when it starts,
``on_exhausted(False)`` when an address is free again — which ``seqs up
--dhcp-server`` logs as one warning, however long the flood.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator

import pytest

from dhcp_script import CLIENT_MAC, dhcp_frame, random_mac, request_msg
from seqs.cli import build_parser
from seqs.cli.dhcp import setup
from seqs.phy import socketpair_devices
from seqs.runtime.poller import Runner
from seqs.stack import Stack
from seqs.wire import dhcp as wd
from test_dhcp_server import Server


def _flood(stack: Stack, n: int, now: float, rng: random.Random) -> list[bytes]:
    """``n`` DISCOVERs from random MACs at ``now``; what the server sent back."""
    out = []
    for i in range(n):
        stack.receive(dhcp_frame(request_msg(wd.DISCOVER, random_mac(rng), xid=i), src=0, mac_src=CLIENT_MAC,
                                 sport=68, dport=67), now)
        stack.poll(now)
        out += stack.take_tx()
    return out


def test_exhausted_pool_stays_silent_counts_each_discover_and_reports_the_spell_once() -> None:
    s = Server(offer_timeout=30)
    reports: list[bool] = []
    s.server.on_exhausted = reports.append
    rng = random.Random(7)
    assert len(_flood(s.stack, 10, 0.0, rng)) == 10  # ten OFFERs: the pool (10 addresses) is taken
    assert reports == [] and not s.server.exhausted
    assert _flood(s.stack, 500, 1.0, rng) == []  # nothing at all goes out: no OFFER, no NAK
    assert reports == [True] and s.server.exhausted
    assert s.server.counts["exhausted"] == 500 and s.stack.stats.drops["dhcp_pool_exhausted"] == 500
    s.at(31.0)  # the offers nobody took up expire: the pool is whole again
    assert reports == [True, False] and not s.server.exhausted and s.server.free == 10
    assert len(_flood(s.stack, 12, 32.0, rng)) == 10  # served again, until the next spell
    assert reports == [True, False, True]


@pytest.fixture
def up_server() -> Iterator[Stack]:
    """What ``seqs up --dhcp-server`` sets up (frames are fed to the stack directly, the
    runner only stands by)."""
    args = build_parser().parse_args(["up", "--tap", "unused0", "--ip", "10.0.0.1/24",
                                      "--dhcp-server", "10.0.0.100-10.0.0.101"])
    stack = Stack(ip="10.0.0.1/24", rng=random.Random(3))
    device, peer = socketpair_devices()
    runner = Runner(stack, device)
    role = setup(args, stack, runner, lambda: None)
    assert role is not None and role.server is not None
    role.server.config.offer_timeout = 30.0
    try:
        yield stack
    finally:
        role.close()
        runner.close()
        peer.close()


def test_seqs_up_logs_one_warning_per_spell_not_one_per_discover(up_server: Stack,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    stack = up_server
    rng = random.Random(11)
    with caplog.at_level(logging.INFO, logger="seqs.up"):
        _flood(stack, 2 + 300, 0.0, rng)  # two OFFERs, then 300 DISCOVERs unanswered
        stack.poll(31.0)  # the offers expire
        _flood(stack, 2 + 50, 32.0, rng)  # and a second spell
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "DHCP server: pool 10.0.0.100-10.0.0.101 exhausted (2 addresses): DISCOVERs go unanswered until an "
        "address is free (RFC 2131 §4.3.1); each is counted as dhcp_pool_exhausted"] * 2
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert "DHCP server: pool 10.0.0.100-10.0.0.101 has a free address again, after 300 unanswered DISCOVERs" \
        in infos
    assert stack.stats.drops["dhcp_pool_exhausted"] == 350
