"""The DHCP client (RFC 2131 §4.4, RFC 5227 §2.1), scripted frame by frame on virtual
time, then against seqs' own DHCP server over a virtual network.

In the scripted tests the test is the server: it answers what the client sends
with messages built from ``seqs.wire.dhcp`` values.  Every state of RFC 2131's
Figure 5 and every timer (retransmission, probe, T1, T2, expiry, decline
back-off, release) is reached and checked here.
"""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dhcp_script import (
    BROADCAST,
    CLIENT_MAC,
    OFFERED_IP,
    OTHER_MAC,
    OTHER_SERVER_IP,
    SERVER_IP,
    SERVER_MAC,
    Sent,
    arp_frame,
    dhcp_frame,
    only_dhcp,
    reply,
    sent,
    trace,
    udp_payload_frame,
)
from seqs import Stack
from seqs.phy.faults import FaultConfig
from seqs.phy.memory import VirtualNetwork
from seqs.services import dhcp_client as dc
from seqs.services.dhcp_client import DhcpClient, DhcpClientConfig, DhcpEvent
from seqs.services.dhcp_server import DhcpServer, DhcpServerConfig
from seqs.wire import dhcp as wd
from seqs.wire import ethernet as weth
from seqs.wire import ipv4 as wip
from seqs.wire.arp import OP_REPLY, OP_REQUEST


class Harness:
    """One client stack and its DhcpClient; the test drives time."""

    def __init__(self, seed: int = 1, previous: str | None = None, **config: object) -> None:
        self.stack = Stack(mac=CLIENT_MAC, rng=random.Random(seed))
        self.events: list[DhcpEvent] = []
        self.client = DhcpClient(self.stack, DhcpClientConfig(**config),  # type: ignore[arg-type]
                                 previous=previous, on_event=self.events.append)
        self.now = 0.0

    @property
    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def start(self) -> list[Sent]:
        self.client.start(self.now)
        return self.at(self.now)

    def at(self, t: float) -> list[Sent]:
        """Advance to ``t`` (polling at every deadline on the way) and return what was sent."""
        out: list[Sent] = []
        while (d := self.stack.next_deadline()) is not None and d <= t:
            self.now = max(self.now, d)
            self.stack.poll(self.now)
            out += sent(self.stack)
        self.now = max(self.now, t)
        self.stack.poll(self.now)
        return out + sent(self.stack)

    def next(self) -> tuple[float, list[Sent]]:
        """Run to the next deadline: (its time, what was sent)."""
        d = self.stack.next_deadline()
        assert d is not None, "no timer armed"
        return d, self.at(d)

    def feed(self, msg: wd.DhcpMessage, **kw: object) -> list[Sent]:
        self.stack.receive(dhcp_frame(msg, **kw), self.now)  # type: ignore[arg-type]
        self.stack.poll(self.now)
        return sent(self.stack)

    def server_arp(self) -> list[Sent]:
        """The server answers our ARP request for it."""
        self.stack.receive(arp_frame(OP_REPLY, SERVER_MAC, SERVER_IP, self.stack.iface.address,
                                     dst=CLIENT_MAC, tha=CLIENT_MAC), self.now)
        self.stack.poll(self.now)
        return sent(self.stack)


def selecting(h: Harness) -> wd.DhcpMessage:
    out = h.start()
    assert len(out) == 1 and out[0].dhcp is not None, trace(out)
    return out[0].dhcp


def requesting(h: Harness, **offer: object) -> wd.DhcpMessage:
    discover = selecting(h)
    out = h.feed(reply(discover, wd.OFFER, **offer))  # type: ignore[arg-type]
    assert len(out) == 1 and out[0].dhcp is not None, trace(out)
    return out[0].dhcp


def probing(h: Harness, **ack: object) -> wd.DhcpMessage:
    request = requesting(h)
    assert h.feed(reply(request, wd.ACK, **ack)) == []  # type: ignore[arg-type]
    assert h.client.state == dc.PROBING
    return request


def bound(h: Harness, **ack: object) -> dc.Lease:
    probing(h, **ack)
    h.at(h.now + 10)
    assert h.client.state == dc.BOUND, h.kinds
    assert h.client.lease is not None
    return h.client.lease


# -- INIT -> SELECTING ---------------------------------------------------------------------


def test_start_broadcasts_discover_from_0_0_0_0_with_parameter_request_list() -> None:
    h = Harness()
    out = h.start()
    assert len(out) == 1, trace(out)
    s = out[0]
    assert s.frame.dst == weth.BROADCAST and s.ip is not None and s.udp is not None and s.dhcp is not None
    assert (s.ip.src, s.ip.dst) == (0, BROADCAST)
    assert (s.udp.sport, s.udp.dport) == (68, 67)
    m = s.dhcp
    assert m.op == wd.OP_REQUEST and m.message_type == wd.DISCOVER and m.chaddr == CLIENT_MAC
    assert m.ciaddr == 0 and m.flags == 0
    o = m.options
    assert {wd.OPT_SUBNET_MASK, wd.OPT_ROUTER, wd.OPT_DNS, wd.OPT_NTP, wd.OPT_DOMAIN_NAME} <= \
        set(o.parameter_request_list)
    assert o.client_id == b"\x01" + CLIENT_MAC  # RFC 2132 §9.14: type 1 + MAC
    assert o.requested_address is None and o.server_id is None
    assert h.client.state == dc.SELECTING


def test_hostname_and_broadcast_flag_are_sent_when_configured() -> None:
    m = selecting(Harness(hostname="seqs-host", broadcast_flag=True))
    assert m.options.hostname == "seqs-host"
    assert m.flags == wd.FLAG_BROADCAST


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_discover_retransmits_with_randomized_exponential_backoff(seed: int) -> None:
    # RFC 2131 §4.1: 4 s, 8 s, 16 s, 32 s, then 64 s, each randomised by ±1 s; same xid.
    h = Harness(seed=seed)
    first = selecting(h)
    last, gaps = 0.0, []
    for _ in range(7):
        t, out = h.next()
        assert len(out) == 1 and out[0].dhcp is not None, trace(out)
        m = out[0].dhcp
        assert m.message_type == wd.DISCOVER and m.xid == first.xid
        assert m.secs == int(t)  # RFC 2131 §2: seconds since the client began
        gaps.append(t - last)
        last = t
    for gap, base in zip(gaps, [4, 8, 16, 32, 64, 64, 64], strict=True):
        assert base - 1 <= gap <= base + 1, gaps
    assert len({round(g, 6) for g in gaps}) == len(gaps)  # randomised, not fixed


def test_startup_delay_postpones_the_first_discover() -> None:
    h = Harness(startup_delay=(1.0, 10.0))
    assert h.start() == []
    t, out = h.next()
    assert 1.0 <= t <= 10.0 and out[0].dhcp is not None and out[0].dhcp.message_type == wd.DISCOVER


# -- SELECTING -> REQUESTING -------------------------------------------------------------------


def test_offer_is_answered_by_broadcast_request_naming_server_and_address() -> None:
    h = Harness()
    discover = selecting(h)
    out = h.feed(reply(discover, wd.OFFER), mac_dst=CLIENT_MAC, dst=OFFERED_IP)  # unicast offer
    assert len(out) == 1 and out[0].dhcp is not None and out[0].ip is not None, trace(out)
    m = out[0].dhcp
    assert (out[0].ip.src, out[0].ip.dst) == (0, BROADCAST)
    assert m.message_type == wd.REQUEST and m.xid == discover.xid and m.ciaddr == 0
    # RFC 2131 §4.3.2 Table 5 (SELECTING): options 50 and 54 MUST be present.
    assert m.options.requested_address == OFFERED_IP and m.options.server_id == SERVER_IP
    assert h.client.state == dc.REQUESTING
    assert h.stack.iface.address == 0  # nothing is configured before the ACK and the probe


def test_offer_without_server_identifier_is_dropped_and_counted() -> None:
    h = Harness()
    discover = selecting(h)
    assert h.feed(reply(discover, wd.OFFER, server=0)) == []  # 0.0.0.0
    assert h.feed(reply(discover, wd.OFFER, server_id=None)) == []  # absent
    assert h.stack.stats.drops["dhcp_bad_offer"] == 2
    assert h.client.state == dc.SELECTING


def test_reply_with_another_xid_or_chaddr_is_not_for_us() -> None:
    h = Harness()
    discover = selecting(h)
    assert h.feed(reply(discover, wd.OFFER, xid=discover.xid ^ 1)) == []
    other = wd.DhcpMessage(discover.op, discover.xid, OTHER_MAC, discover.options)
    assert h.feed(reply(other, wd.OFFER)) == []
    assert h.stack.stats.drops["dhcp_not_for_us"] == 2
    assert h.client.state == dc.SELECTING


def test_malformed_reply_is_a_counted_drop_named_by_the_parser() -> None:
    h = Harness()
    discover = selecting(h)
    # A subnet mask of 3 bytes: the wrong fixed length for a known option.
    bad = bytearray(wd.DhcpMessage(wd.OP_REPLY, discover.xid, CLIENT_MAC).emit())
    bad[wd.OPTIONS_OFFSET : wd.OPTIONS_OFFSET + 6] = bytes([1, 3, 255, 255, 255, 255])
    h.stack.receive(udp_payload_frame(bytes(bad)), h.now)
    # An option whose length runs past the end of the message.
    overrun = bytearray(wd.DhcpMessage(wd.OP_REPLY, discover.xid, CLIENT_MAC).emit())
    overrun[wd.OPTIONS_OFFSET : wd.OPTIONS_OFFSET + 2] = bytes([wd.OPT_DNS, 200])
    h.stack.receive(udp_payload_frame(bytes(overrun)), h.now)
    assert h.stack.stats.drops["dhcp_option_bad_length"] == 1
    assert h.stack.stats.drops["dhcp_option_overrun"] == 1
    assert h.client.state == dc.SELECTING


def test_unexpected_message_for_the_state_is_dropped() -> None:
    h = Harness()
    discover = selecting(h)
    assert h.feed(reply(discover, wd.ACK)) == []  # an ACK while SELECTING
    assert h.stack.stats.drops["dhcp_unexpected_ack"] == 1
    assert h.client.state == dc.SELECTING


# -- REQUESTING --------------------------------------------------------------------------------


def test_request_is_retransmitted_then_the_client_falls_back_to_init() -> None:
    # RFC 2131 §3.1 step 5 / §4.4.1: no ACK or NAK after the retransmissions: back to INIT.
    h = Harness(request_attempts=4)
    request = requesting(h)
    for _ in range(3):
        _, out = h.next()
        m = out[0].dhcp
        assert m is not None and m.message_type == wd.REQUEST and m.xid == request.xid, trace(out)
    _, out = h.next()
    m = out[0].dhcp
    assert m is not None and m.message_type == wd.DISCOVER and m.xid != request.xid, trace(out)
    assert h.client.state == dc.SELECTING


def test_nak_in_requesting_returns_to_init_and_discovers_again() -> None:
    h = Harness()
    request = requesting(h)
    out = h.feed(reply(request, wd.NAK, message="no"))
    assert h.kinds == ["nak"] and h.events[0].detail == "no"
    assert len(out) == 1 and out[0].dhcp is not None and out[0].dhcp.message_type == wd.DISCOVER, trace(out)
    assert out[0].dhcp.xid != request.xid
    assert h.client.state == dc.SELECTING


def test_nak_from_a_server_we_did_not_choose_is_ignored() -> None:
    h = Harness()
    request = requesting(h)
    assert h.feed(reply(request, wd.NAK, server=OTHER_SERVER_IP)) == []
    assert h.stack.stats.drops["dhcp_nak_from_other_server"] == 1
    assert h.client.state == dc.REQUESTING


def test_ack_from_another_server_or_for_another_address_is_dropped() -> None:
    h = Harness()
    request = requesting(h)
    assert h.feed(reply(request, wd.ACK, server=OTHER_SERVER_IP)) == []
    assert h.feed(reply(request, wd.ACK, yiaddr=OFFERED_IP + 1)) == []
    assert h.feed(reply(request, wd.ACK, lease=None)) == []
    drops = h.stack.stats.drops
    assert drops["dhcp_ack_from_other_server"] == drops["dhcp_ack_wrong_address"] == 1
    assert drops["dhcp_ack_without_lease_time"] == 1
    assert h.client.state == dc.REQUESTING


def test_consecutive_naks_back_off_before_rediscovering() -> None:
    h = Harness()
    request = requesting(h)
    out = h.feed(reply(request, wd.NAK))  # the first: rediscover at once
    assert out[-1].dhcp is not None and out[-1].dhcp.message_type == wd.DISCOVER
    request = requesting_again(h)  # the second NAK in a row: wait 4 s
    t0 = h.now
    assert h.feed(reply(request, wd.NAK)) == []
    t, out = h.next()
    assert t - t0 == pytest.approx(4.0)
    assert out[0].dhcp is not None and out[0].dhcp.message_type == wd.DISCOVER


def requesting_again(h: Harness) -> wd.DhcpMessage:
    """From SELECTING (a DISCOVER already sent): take an offer."""
    assert h.client.state == dc.SELECTING
    fake = wd.DhcpMessage(wd.OP_REQUEST, h.client._xid, CLIENT_MAC)
    out = h.feed(reply(fake, wd.OFFER))
    assert out[0].dhcp is not None
    return out[0].dhcp


# -- PROBING (RFC 5227) -> BOUND ---------------------------------------------------------------


def test_ack_starts_arp_probes_and_then_the_address_is_configured() -> None:
    h = Harness(seed=5)
    request = probing(h, routers=(SERVER_IP,), dns_servers=(wip.aton("10.0.0.53"),),
                      ntp_servers=(wip.aton("10.0.0.123"),), domain_name="example.test")
    t_ack = h.now
    probes: list[float] = []
    while h.client.state == dc.PROBING:
        t, out = h.next()
        if h.client.state != dc.PROBING:
            break
        assert len(out) == 1 and out[0].arp is not None, trace(out)
        a = out[0].arp
        # RFC 5227 §2.1.1: sender IP all zero, target the address, broadcast.
        assert (a.op, a.spa, a.tpa, out[0].frame.dst) == (OP_REQUEST, 0, OFFERED_IP, weth.BROADCAST)
        probes.append(t)
    assert len(probes) == 3
    assert 0 <= probes[0] - t_ack <= 1.0  # PROBE_WAIT
    assert all(1.0 <= b - a <= 2.0 for a, b in itertools.pairwise(probes))  # PROBE_MIN..MAX
    assert h.now - probes[-1] == pytest.approx(2.0)  # ANNOUNCE_WAIT
    assert h.client.state == dc.BOUND and h.kinds == ["bound"]
    iface = h.stack.iface
    assert (iface.address, iface.prefix, iface.gateway) == (OFFERED_IP, 24, SERVER_IP)
    assert h.stack.cidr == "10.0.0.77/24"
    assert h.stack.dns_servers == ["10.0.0.53"] and h.stack.ntp_servers == ["10.0.0.123"]
    lease = h.client.lease
    assert lease is not None and lease == h.events[0].lease
    assert lease.domain_name == "example.test" and lease.server_id == "10.0.0.1"
    assert lease.acquired_at == 0.0  # RFC 2131 §4.4.1: counted from when the REQUEST was sent
    assert request.options.requested_address == OFFERED_IP


def test_binding_announces_the_address_with_a_gratuitous_arp() -> None:
    h = Harness(probe_num=0)
    out = h.feed(reply(requesting(h), wd.ACK))
    assert len(out) == 1 and out[0].arp is not None, trace(out)
    assert out[0].arp.spa == out[0].arp.tpa == OFFERED_IP
    assert h.client.state == dc.BOUND


def test_arp_reply_from_the_offered_address_declines_it_and_waits_ten_seconds() -> None:
    h = Harness()
    probing(h)
    h.next()  # the first probe
    h.stack.receive(arp_frame(OP_REPLY, OTHER_MAC, OFFERED_IP, 0, dst=CLIENT_MAC, tha=CLIENT_MAC), h.now)
    h.stack.poll(h.now)
    out = sent(h.stack)
    assert len(out) == 1 and out[0].dhcp is not None, trace(out)
    m = out[0].dhcp
    # RFC 2131 §4.4.1: DHCPDECLINE, broadcast, with the address (50) and the server (54).
    assert m.message_type == wd.DECLINE and m.ciaddr == 0
    assert m.options.requested_address == OFFERED_IP and m.options.server_id == SERVER_IP
    assert out[0].ip is not None and out[0].ip.dst == BROADCAST
    assert h.kinds == ["declined"] and h.client.state == dc.INIT
    assert h.stack.iface.address == 0
    # RFC 2131 §3.1 step 5: at least ten seconds before starting again.
    t_decline = h.now
    t, out = h.next()
    assert t - t_decline == pytest.approx(10.0)
    assert out[0].dhcp is not None and out[0].dhcp.message_type == wd.DISCOVER


def test_arp_probe_by_another_host_for_the_address_is_a_conflict() -> None:
    # RFC 5227 §2.1.1: another host probing for the same address at the same time.
    h = Harness()
    probing(h)
    h.stack.receive(arp_frame(OP_REQUEST, OTHER_MAC, 0, OFFERED_IP), h.now)
    h.stack.poll(h.now)
    out = sent(h.stack)
    assert out and out[0].dhcp is not None and out[0].dhcp.message_type == wd.DECLINE, trace(out)
    assert h.kinds == ["declined"]


def test_unrelated_arp_during_probing_is_no_conflict() -> None:
    h = Harness()
    probing(h)
    h.stack.receive(arp_frame(OP_REQUEST, OTHER_MAC, OFFERED_IP + 5, SERVER_IP), h.now)
    h.stack.receive(arp_frame(OP_REQUEST, CLIENT_MAC, 0, OFFERED_IP), h.now)  # our own probe echoed
    h.at(h.now + 10)
    assert h.kinds == ["bound"]


def test_probe_num_zero_binds_without_probing() -> None:
    h = Harness(probe_num=0)
    h.feed(reply(requesting(h), wd.ACK))
    assert h.client.state == dc.BOUND


# -- BOUND -> RENEWING -> REBINDING -> expiry ---------------------------------------------------


def test_default_t1_and_t2_are_half_and_seven_eighths_of_the_lease() -> None:
    lease = bound(Harness(), lease=1000)
    assert (lease.renewal_time, lease.rebinding_time, lease.lease_time) == (500.0, 875.0, 1000.0)
    assert (lease.renew_at, lease.rebind_at, lease.expires_at) == (500.0, 875.0, 1000.0)


def test_server_t1_and_t2_are_used_and_inconsistent_ones_replaced() -> None:
    lease = bound(Harness(), lease=1000, renewal_time=100, rebinding_time=200)
    assert (lease.renewal_time, lease.rebinding_time) == (100.0, 200.0)
    lease = bound(Harness(), lease=1000, renewal_time=900, rebinding_time=2000)
    assert (lease.renewal_time, lease.rebinding_time) == (500.0, 875.0)


def test_t1_sends_a_unicast_request_to_the_server_with_ciaddr() -> None:
    h = Harness()
    bound(h, lease=1000)
    out = h.at(500.0)
    assert h.client.state == dc.RENEWING
    # The server's MAC is not cached: ARP first, and the request follows the answer.
    assert len(out) == 1 and out[0].arp is not None and out[0].arp.tpa == SERVER_IP, trace(out)
    out = h.server_arp()
    assert len(out) == 1 and out[0].dhcp is not None and out[0].ip is not None, trace(out)
    m = out[0].dhcp
    assert (out[0].ip.src, out[0].ip.dst, out[0].frame.dst) == (OFFERED_IP, SERVER_IP, SERVER_MAC)
    # RFC 2131 §4.3.2 Table 5 (RENEWING): ciaddr set, options 50 and 54 absent.
    assert m.message_type == wd.REQUEST and m.ciaddr == OFFERED_IP
    assert m.options.requested_address is None and m.options.server_id is None


def test_ack_while_renewing_extends_the_lease_from_the_request_time() -> None:
    h = Harness()
    bound(h, lease=1000)
    h.at(500.0)
    out = h.server_arp()
    request = out[0].dhcp
    assert request is not None
    h.now = 501.0
    h.feed(reply(request, wd.ACK, lease=1000), dst=OFFERED_IP, mac_dst=CLIENT_MAC)
    assert h.client.state == dc.BOUND and h.kinds == ["bound", "renewed"]
    lease = h.client.lease
    assert lease is not None and lease.acquired_at == 500.0 and lease.renew_at == 1000.0
    assert h.stack.iface.address == OFFERED_IP


def test_renewing_retransmits_at_half_the_time_to_t2_but_not_sooner_than_a_minute() -> None:
    # RFC 2131 §4.4.5, lease 1000 s: T1 = 500, T2 = 875.  Retransmissions at
    # 500 + 187.5 = 687.5, then 687.5 + 93.75 = 781.25, then +60 (the minimum) = 841.25,
    # then T2 (875), where the client starts REBINDING with a broadcast.
    h = Harness()
    bound(h, lease=1000)
    h.at(500.0)
    h.server_arp()
    times = []
    for _ in range(3):
        t = h.client.deadline()
        assert t is not None
        out = h.at(t)
        if out and out[-1].arp is not None:  # the server's ARP entry aged out meanwhile
            out += h.server_arp()
        assert out and out[-1].dhcp is not None and out[-1].ip is not None, trace(out)
        assert out[-1].ip.dst == SERVER_IP and out[-1].dhcp.message_type == wd.REQUEST
        times.append(t)
    assert times == pytest.approx([687.5, 781.25, 841.25])
    t = h.client.deadline()
    out = h.at(t or 0)
    assert t == pytest.approx(875.0) and h.client.state == dc.REBINDING
    m = out[-1].dhcp
    assert m is not None and out[-1].ip is not None and out[-1].ip.dst == BROADCAST, trace(out)
    assert m.message_type == wd.REQUEST and m.ciaddr == OFFERED_IP and m.options.server_id is None


def test_rebinding_retransmits_at_half_the_time_to_expiry_with_the_minimum() -> None:
    h = Harness(renew_retry_min=10)
    bound(h, lease=1000)
    h.at(875.0)  # straight through RENEWING, unanswered (its unicasts wait for ARP)
    assert h.client.state == dc.REBINDING
    assert h.client.deadline() == pytest.approx(875 + 62.5)
    h.at(875 + 62.5)
    assert h.client.deadline() == pytest.approx(875 + 62.5 + 31.25)
    h.at(995)  # retransmitted at 968.75, 984.375, 994.375 (the 10 s minimum)
    assert h.client.deadline() == pytest.approx(1000)  # never past expiry


def test_any_server_may_answer_while_rebinding() -> None:
    h = Harness()
    bound(h, lease=1000)
    out = h.at(875.0)
    request = [s.dhcp for s in out if s.dhcp is not None and s.ip is not None and s.ip.dst == BROADCAST][-1]
    assert request is not None
    h.feed(reply(request, wd.ACK, server=OTHER_SERVER_IP, lease=2000))
    assert h.client.state == dc.BOUND and h.kinds == ["bound", "rebound"]
    lease = h.client.lease
    assert lease is not None and lease.server_id == "10.0.0.254" and lease.lease_time == 2000


def test_lease_expiry_drops_the_address_and_starts_over() -> None:
    h = Harness()
    bound(h, lease=1000, dns_servers=(SERVER_IP,))
    assert h.stack.dns_servers == ["10.0.0.1"]
    out = h.at(1000.0)
    assert h.kinds == ["bound", "expired"]
    # RFC 2131 §4.4.5: the client MUST stop using the address at expiry.
    assert h.stack.iface.address == 0 and h.stack.iface.gateway is None
    assert h.stack.dns_servers == [] and h.client.lease is None
    assert out[-1].dhcp is not None and out[-1].dhcp.message_type == wd.DISCOVER, trace(out)
    assert out[-1].ip is not None and out[-1].ip.src == 0
    assert h.client.state == dc.SELECTING


def test_nak_while_renewing_drops_the_address() -> None:
    h = Harness()
    bound(h, lease=1000)
    h.at(500.0)
    request = h.server_arp()[0].dhcp
    assert request is not None
    out = h.feed(reply(request, wd.NAK))
    assert h.kinds == ["bound", "nak"] and h.stack.iface.address == 0
    assert out[-1].dhcp is not None and out[-1].dhcp.message_type == wd.DISCOVER


def test_infinite_lease_arms_no_timer() -> None:
    h = Harness()
    lease = bound(h, lease=0xFFFFFFFF)
    assert lease.lease_time == math.inf
    assert h.client.deadline() is None
    assert h.at(1e9) == [] and h.client.state == dc.BOUND


def test_server_mtu_lowers_the_interface_mtu_until_the_lease_ends() -> None:
    h = Harness()
    bound(h, lease=1000, mtu=1400)
    assert h.stack.iface.mtu == 1400
    h.at(1000.0)
    assert h.stack.iface.mtu == 1500


def test_missing_or_noncontiguous_mask_falls_back_to_the_address_class() -> None:
    lease = bound(Harness(), subnet_mask=wip.aton("255.0.255.0"))
    assert lease.prefix == 8  # 10.0.0.77 is class A


# -- INIT-REBOOT ------------------------------------------------------------------------------


def test_init_reboot_asks_for_the_previous_address_without_a_server_id() -> None:
    h = Harness(previous="10.0.0.77")
    out = h.start()
    assert len(out) == 1 and out[0].dhcp is not None, trace(out)
    m = out[0].dhcp
    # RFC 2131 §4.3.2 Table 5 (INIT-REBOOT): option 50, no 54, ciaddr 0, broadcast.
    assert m.message_type == wd.REQUEST and m.ciaddr == 0
    assert m.options.requested_address == OFFERED_IP and m.options.server_id is None
    assert h.client.state == dc.REBOOTING
    h.feed(reply(m, wd.ACK))
    assert h.client.state == dc.PROBING
    h.at(h.now + 10)
    assert h.kinds == ["bound"] and h.stack.iface.address == OFFERED_IP


def test_init_reboot_nak_goes_to_init() -> None:
    h = Harness(previous="10.0.0.77")
    m = h.start()[0].dhcp
    assert m is not None
    out = h.feed(reply(m, wd.NAK, server=OTHER_SERVER_IP))  # any server may refuse a reboot
    assert h.kinds == ["nak"]
    assert out[-1].dhcp is not None and out[-1].dhcp.message_type == wd.DISCOVER
    assert out[-1].dhcp.options.requested_address is None


def test_init_reboot_without_answer_falls_back_to_discover() -> None:
    h = Harness(previous="10.0.0.77", request_attempts=2)
    h.start()
    h.next()
    _, out = h.next()
    assert out[-1].dhcp is not None and out[-1].dhcp.message_type == wd.DISCOVER
    assert h.client.state == dc.SELECTING


def test_a_previous_lease_object_is_accepted() -> None:
    lease = bound(Harness())
    stack = Stack(mac=CLIENT_MAC, rng=random.Random(3))
    DhcpClient(stack, previous=lease).start(0.0)
    stack.poll(0.0)
    m = only_dhcp(stack)
    assert m.message_type == wd.REQUEST and m.options.requested_address == OFFERED_IP


# -- release ---------------------------------------------------------------------------------


def test_release_unicasts_dhcprelease_and_drops_the_address() -> None:
    h = Harness()
    bound(h)
    h.stack.receive(arp_frame(OP_REQUEST, SERVER_MAC, SERVER_IP, OFFERED_IP), h.now)  # server MAC known
    sent(h.stack)
    assert h.client.release(h.now)
    out = h.at(h.now)
    assert len(out) == 1 and out[0].dhcp is not None and out[0].ip is not None, trace(out)
    m = out[0].dhcp
    # RFC 2131 §4.4.6 / Table 5: ciaddr set, option 54, unicast to the server.
    assert m.message_type == wd.RELEASE and m.ciaddr == OFFERED_IP and m.options.server_id == SERVER_IP
    assert (out[0].ip.dst, out[0].frame.dst) == (SERVER_IP, SERVER_MAC)
    assert h.kinds == ["bound", "released"]
    assert h.client.state == dc.STOPPED and h.stack.iface.address == 0 and h.client.lease is None
    assert h.at(h.now + 1e6) == []


def test_release_waits_for_the_servers_arp_answer_before_dropping_the_address() -> None:
    h = Harness()
    bound(h)
    h.client.release(h.now)
    out = h.at(h.now)
    assert len(out) == 1 and out[0].arp is not None, trace(out)
    assert h.client.state == dc.RELEASING and h.stack.iface.address == OFFERED_IP
    h.now += 0.1
    out = h.server_arp()
    assert out and out[0].dhcp is not None and out[0].dhcp.message_type == wd.RELEASE, trace(out)
    assert h.client.state == dc.STOPPED and h.stack.iface.address == 0


def test_release_gives_up_waiting_for_arp_after_release_wait() -> None:
    h = Harness(release_wait=2.0)
    bound(h)
    t0 = h.now
    h.client.release(h.now)
    t, _ = h.next()
    while h.client.state == dc.RELEASING:
        t, _ = h.next()
    assert t - t0 == pytest.approx(2.0) and h.stack.iface.address == 0


def test_release_without_a_lease_just_stops() -> None:
    h = Harness()
    selecting(h)
    assert not h.client.release(h.now)
    assert h.client.state == dc.STOPPED and h.at(h.now + 100) == []


def test_close_unbinds_port_68() -> None:
    h = Harness()
    h.client.close()
    DhcpClient(h.stack)  # the port is free again


# -- the transition table ---------------------------------------------------------------------


def test_every_state_is_reachable_in_the_transition_table() -> None:
    reached = {dc.INIT, dc.INIT_REBOOT} | set(dc.TRANSITIONS.values())
    states = {v for k, v in vars(dc).items() if k.isupper() and isinstance(v, str) and k != "TRANSITIONS"}
    assert states <= reached | {dc.STOPPED}


# -- hostile replies ---------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=700), state=st.sampled_from(["selecting", "requesting", "bound", "probing"]))
def test_arbitrary_bytes_to_port_68_never_raise(data: bytes, state: str) -> None:
    h = Harness()
    {"selecting": selecting, "requesting": requesting, "bound": bound, "probing": probing}[state](h)
    h.stack.receive(udp_payload_frame(data), h.now)
    h.stack.receive(udp_payload_frame(data, dst=OFFERED_IP, mac_dst=CLIENT_MAC), h.now)
    h.at(h.now + 5000)


_addrs = st.lists(st.integers(0, 0xFFFFFFFF), max_size=3).map(tuple)
_options = st.builds(
    wd.DhcpOptions,
    message_type=st.sampled_from([None, *range(1, 9)]),
    subnet_mask=st.none() | st.integers(0, 0xFFFFFFFF),
    routers=_addrs,
    dns_servers=_addrs,
    lease_time=st.none() | st.integers(0, 0xFFFFFFFF),
    server_id=st.none() | st.sampled_from([SERVER_IP, OTHER_SERVER_IP, 0]),
    renewal_time=st.none() | st.integers(0, 0xFFFFFFFF),
    rebinding_time=st.none() | st.integers(0, 0xFFFFFFFF),
    mtu=st.none() | st.integers(68, 0xFFFF),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(options=st.lists(_options, min_size=1, max_size=4), yiaddr=st.integers(0, 0xFFFFFFFF),
       state=st.sampled_from(["selecting", "requesting", "bound"]))
def test_well_formed_replies_with_any_values_never_raise(options: list[wd.DhcpOptions], yiaddr: int,
                                                         state: str) -> None:
    h = Harness()
    {"selecting": selecting, "requesting": requesting, "bound": bound}[state](h)
    for o in options:
        msg = wd.DhcpMessage(wd.OP_REPLY, h.client._xid, CLIENT_MAC, o, yiaddr=yiaddr)
        h.stack.receive(dhcp_frame(msg), h.now)
        h.at(h.now + 1)
    h.at(h.now + 5000)


# -- against seqs' own server on a virtual network ---------------------------------------------


def _network(*, pool: tuple[str, str] = ("10.0.0.100", "10.0.0.199"), lease_time: int = 600,
             loss: float = 0.0, **server: object) -> tuple[VirtualNetwork, Stack, DhcpServer]:
    net = VirtualNetwork()
    router = Stack(ip="10.0.0.1/24", mac=SERVER_MAC, rng=random.Random(7))
    net.attach(router, FaultConfig(loss=loss, seed=1) if loss else None)
    srv = DhcpServer(router, DhcpServerConfig(*pool, lease_time=lease_time, routers=("10.0.0.1",),
                                              dns_servers=("10.0.0.53",), ntp_servers=("10.0.0.123",),
                                              **server))  # type: ignore[arg-type]
    return net, router, srv


def _host(net: VirtualNetwork, mac: bytes, seed: int, loss: float = 0.0,
          **kw: object) -> tuple[Stack, DhcpClient, list[DhcpEvent]]:
    host = Stack(mac=mac, rng=random.Random(seed))
    net.attach(host, FaultConfig(loss=loss, seed=seed) if loss else None)
    events: list[DhcpEvent] = []
    client = DhcpClient(host, on_event=events.append, **kw)  # type: ignore[arg-type]
    client.start(net.now)
    return host, client, events


def test_client_leases_renews_and_releases_against_seqs_server() -> None:
    net, _router, srv = _network(lease_time=600)
    host, client, events = _host(net, CLIENT_MAC, 1)
    assert net.run_until(lambda: client.bound, timeout=30)
    assert host.cidr == "10.0.0.100/24" and host.iface.gateway == SERVER_IP
    assert host.dns_servers == ["10.0.0.53"] and host.ntp_servers == ["10.0.0.123"]
    assert [(x.mac, x.address, x.state) for x in srv.leases()] == \
        [(weth.mac_to_str(CLIENT_MAC), "10.0.0.100", "bound")]
    # The host is usable: it pings the router with its leased address.
    ping = host.ping_socket()
    ping.send("10.0.0.1", 1, b"x")
    host.poll(net.now)
    assert net.run_until(lambda: ping.readable, timeout=5)
    net.run_for(1300)  # renewals every T1 = 300 s
    assert [e.kind for e in events] == ["bound", "renewed", "renewed", "renewed", "renewed"]
    assert srv.counts["ack"] == 5
    client.release(net.now)
    net.run_for(5)
    assert [e.kind for e in events][-1] == "released"
    assert srv.leases() == [] and srv.counts["release"] == 1 and host.iface.address == 0


def test_two_clients_get_different_addresses() -> None:
    net, _router, srv = _network()
    a, ca, _ = _host(net, CLIENT_MAC, 1)
    b, cb, _ = _host(net, OTHER_MAC, 2)
    assert net.run_until(lambda: ca.bound and cb.bound, timeout=30)
    assert a.ip != b.ip and len(srv) == 2


def test_client_declines_an_address_in_use_and_the_server_offers_another() -> None:
    net, _router, srv = _network(pool=("10.0.0.100", "10.0.0.101"))
    squatter = Stack(ip="10.0.0.100/24", mac=OTHER_MAC, rng=random.Random(3))
    net.attach(squatter)
    host, client, events = _host(net, CLIENT_MAC, 1)
    assert net.run_until(lambda: client.bound, timeout=60)
    assert [e.kind for e in events] == ["declined", "bound"]
    assert host.ip == "10.0.0.101" and srv.counts["decline"] == 1
    assert srv.free == 0  # .100 is held back after the decline


def test_reboot_with_the_previous_lease_keeps_the_address() -> None:
    net, _router, srv = _network()
    _host1, c1, _ = _host(net, CLIENT_MAC, 1)
    assert net.run_until(lambda: c1.bound, timeout=30)
    lease = c1.lease
    assert lease is not None
    c1.close()
    net.ports.pop()
    host, c2, _ = _host(net, CLIENT_MAC, 2, previous=lease)
    assert net.run_until(lambda: c2.bound, timeout=30)
    assert host.ip == lease.address
    assert srv.counts["discover"] == 1  # the reboot went straight to REQUEST


def test_client_binds_over_a_lossy_link() -> None:
    net, _router, _srv = _network(loss=0.3)
    host, client, _ = _host(net, CLIENT_MAC, 4, loss=0.3)
    assert net.run_until(lambda: client.bound, timeout=300)
    assert host.iface.address != 0


def test_lease_expires_when_the_server_goes_away() -> None:
    net, router, srv = _network(lease_time=100)
    host, client, events = _host(net, CLIENT_MAC, 1, config=DhcpClientConfig(renew_retry_min=5))
    assert net.run_until(lambda: client.bound, timeout=30)
    srv.close()
    net.run_until(lambda: "expired" in [e.kind for e in events], timeout=200)
    assert host.iface.address == 0 and client.state == dc.SELECTING
    assert router.iface.address == SERVER_IP


# -- the command line ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dhcp", "--ip", "10.0.0.2/24"], "--dhcp and --ip exclude each other"),
        ([], "one of --ip ADDR/LEN or --dhcp is required"),
        (["--dhcp", "--dhcp-server", "10.0.0.5-10.0.0.9"], "--dhcp-server needs --ip"),
        (["--dhcp", "--dhcp-probes", "-1"], "--dhcp-probes must not be negative"),
    ],
)
def test_seqs_up_refuses_inconsistent_dhcp_options(argv: list[str], message: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from seqs.cli import main

    # Checked before any device is opened, so no TAP (and no root) is needed.
    assert main(["up", "--tap", "seqs-no-such-tap", *argv]) == 1
    assert message in capsys.readouterr().err
