"""The DHCP server (RFC 2131 §4.3), scripted on virtual time: the test is the client.

Every reply is checked for what it carries and where it goes (RFC 2131 §4.1:
broadcast, unicast to ciaddr, or unicast to yiaddr at chaddr).  The flood test
sends thousands of DISCOVERs from random MACs and checks that the table stays
within the pool, exhaustion is counted, and unclaimed offers come back.
"""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dhcp_script import (
    BROADCAST,
    CLIENT_MAC,
    OTHER_MAC,
    OTHER_SERVER_IP,
    SERVER_IP,
    SERVER_MAC,
    Sent,
    arp_frame,
    dhcp_frame,
    random_mac,
    request_msg,
    sent,
    trace,
    udp_payload_frame,
)
from helpers import record
from seqs import Stack
from seqs.services.dhcp_server import DhcpServer, DhcpServerConfig
from seqs.wire import dhcp as wd
from seqs.wire import ethernet as weth
from seqs.wire import ipv4 as wip
from seqs.wire.arp import OP_REPLY

POOL = ("10.0.0.100", "10.0.0.109")
FIRST = wip.aton("10.0.0.100")
CID = b"\x01" + CLIENT_MAC


class Server:
    def __init__(self, **config: object) -> None:
        self.stack = Stack(ip="10.0.0.1/24", mac=SERVER_MAC, rng=random.Random(1))
        fields: dict[str, object] = {"pool_start": POOL[0], "pool_end": POOL[1], "lease_time": 600,
                                     "routers": ("10.0.0.1",), "dns_servers": ("10.0.0.53",),
                                     "ntp_servers": ("10.0.0.123",), "domain_name": "example.test"}
        fields.update(config)
        self.changes = 0
        self.server = DhcpServer(self.stack, DhcpServerConfig(**fields), on_change=self._changed)  # type: ignore[arg-type]
        self.now = 0.0

    def _changed(self) -> None:
        self.changes += 1

    def send(self, msg: wd.DhcpMessage, *, src: int = 0, dst: int = BROADCAST, mac_dst: bytes = weth.BROADCAST
             ) -> list[Sent]:
        self.stack.receive(dhcp_frame(msg, src=src, dst=dst, mac_src=msg.chaddr, mac_dst=mac_dst,
                                      sport=wd.CLIENT_PORT, dport=wd.SERVER_PORT), self.now)
        self.stack.poll(self.now)
        return sent(self.stack)

    def one(self, msg: wd.DhcpMessage, **kw: object) -> Sent:
        out = self.send(msg, **kw)  # type: ignore[arg-type]
        assert len(out) == 1 and out[0].dhcp is not None, trace(out)
        return out[0]

    def at(self, t: float) -> None:
        self.now = t
        self.stack.poll(t)
        sent(self.stack)

    def lease(self, mac: bytes = CLIENT_MAC, **opts: object) -> int:
        """DISCOVER, OFFER, REQUEST, ACK: the address bound."""
        offer = self.one(request_msg(wd.DISCOVER, mac, **opts)).dhcp
        assert offer is not None
        ack = self.one(request_msg(wd.REQUEST, mac, requested_address=offer.yiaddr, server_id=SERVER_IP,
                                   **opts)).dhcp
        assert ack is not None and ack.message_type == wd.ACK
        return ack.yiaddr


# -- DISCOVER -> OFFER ---------------------------------------------------------------------------


def test_discover_gets_an_offer_unicast_to_yiaddr_at_chaddr() -> None:
    s = Server()
    out = s.one(request_msg(wd.DISCOVER, client_id=CID))
    assert out.ip is not None and out.udp is not None and out.dhcp is not None
    # RFC 2131 §4.1: no broadcast bit, no ciaddr: unicast to yiaddr and chaddr.
    assert (out.ip.src, out.ip.dst, out.frame.dst) == (SERVER_IP, FIRST, CLIENT_MAC)
    assert (out.udp.sport, out.udp.dport) == (67, 68)
    m = out.dhcp
    assert m.op == wd.OP_REPLY and m.message_type == wd.OFFER and m.xid == 0x1234 and m.yiaddr == FIRST
    o = m.options
    assert o.server_id == SERVER_IP and o.lease_time == 600
    assert (o.renewal_time, o.rebinding_time) == (300, 525)  # 0.5 and 0.875 of the lease
    assert o.subnet_mask == wip.aton("255.255.255.0") and o.routers == (SERVER_IP,)
    assert o.dns_servers == (wip.aton("10.0.0.53"),) and o.ntp_servers == (wip.aton("10.0.0.123"),)
    assert o.domain_name == "example.test"
    assert o.client_id == CID  # RFC 6842: echoed
    assert [(x.address, x.state) for x in s.server.leases()] == [("10.0.0.100", "offered")]


def test_broadcast_bit_makes_the_offer_broadcast() -> None:
    s = Server()
    out = s.one(request_msg(wd.DISCOVER, flags=wd.FLAG_BROADCAST))
    assert out.ip is not None and (out.ip.dst, out.frame.dst) == (BROADCAST, weth.BROADCAST)
    assert out.dhcp is not None and out.dhcp.flags == wd.FLAG_BROADCAST


def test_repeated_discover_gets_the_same_offer() -> None:
    s = Server()
    a = s.one(request_msg(wd.DISCOVER)).dhcp
    b = s.one(request_msg(wd.DISCOVER, xid=9)).dhcp
    assert a is not None and b is not None and a.yiaddr == b.yiaddr and b.xid == 9
    assert len(s.server) == 1


def test_requested_address_in_discover_is_honoured_when_free() -> None:
    s = Server()
    want = wip.aton("10.0.0.105")
    assert s.one(request_msg(wd.DISCOVER, requested_address=want)).dhcp.yiaddr == want  # type: ignore[union-attr]
    taken = s.one(request_msg(wd.DISCOVER, OTHER_MAC, requested_address=want)).dhcp
    assert taken is not None and taken.yiaddr != want


def test_parameter_request_list_limits_the_optional_options() -> None:
    s = Server()
    m = s.one(request_msg(wd.DISCOVER, parameter_request_list=(wd.OPT_SUBNET_MASK, wd.OPT_DNS))).dhcp
    assert m is not None
    o = m.options
    assert o.dns_servers and not o.ntp_servers and o.domain_name is None
    assert o.subnet_mask is not None and o.routers  # sent in any case


def test_reservation_goes_to_its_mac_only() -> None:
    s = Server(reservations={weth.mac_to_str(OTHER_MAC): "10.0.0.200"})
    assert s.lease(OTHER_MAC) == wip.aton("10.0.0.200")
    assert s.lease(CLIENT_MAC) == FIRST


def test_pool_excludes_the_servers_and_routers_addresses() -> None:
    s = Server(pool_start="10.0.0.1", pool_end="10.0.0.3", routers=("10.0.0.2",))
    assert s.server.pool_size == 1
    assert s.lease() == wip.aton("10.0.0.3")


# -- REQUEST -> ACK / NAK ------------------------------------------------------------------------


def test_request_for_the_offer_is_acked_and_bound() -> None:
    s = Server()
    offer = s.one(request_msg(wd.DISCOVER)).dhcp
    assert offer is not None
    out = s.one(request_msg(wd.REQUEST, requested_address=offer.yiaddr, server_id=SERVER_IP, hostname="h1"))
    m = out.dhcp
    assert m is not None and m.message_type == wd.ACK and m.yiaddr == FIRST and m.options.lease_time == 600
    assert out.ip is not None and out.ip.dst == FIRST and out.frame.dst == CLIENT_MAC
    [row] = s.server.leases()
    assert (row.address, row.state, row.hostname, row.expires_at) == ("10.0.0.100", "bound", "h1", 600.0)
    assert s.changes == 1 and s.server.counts["ack"] == 1


def test_request_naming_another_server_is_ignored_and_frees_our_offer() -> None:
    # RFC 2131 §4.3.2: the client chose another server's offer.
    s = Server()
    s.one(request_msg(wd.DISCOVER))
    assert s.send(request_msg(wd.REQUEST, requested_address=FIRST, server_id=OTHER_SERVER_IP)) == []
    assert len(s.server) == 0 and s.server.free == 10
    assert s.stack.stats.drops["dhcp_request_for_other_server"] == 1


def test_request_for_an_address_not_offered_gets_a_broadcast_nak() -> None:
    s = Server()
    s.one(request_msg(wd.DISCOVER))
    out = s.one(request_msg(wd.REQUEST, requested_address=FIRST + 3, server_id=SERVER_IP))
    m = out.dhcp
    assert m is not None and m.message_type == wd.NAK and m.yiaddr == 0
    assert m.options.server_id == SERVER_IP and m.options.lease_time is None and m.options.message
    # RFC 2131 §4.1: NAKs are broadcast when giaddr is zero.
    assert out.ip is not None and out.ip.dst == BROADCAST


def test_renewal_extends_the_lease_and_is_answered_to_ciaddr() -> None:
    s = Server()
    addr = s.lease()
    s.at(300.0)
    out = s.one(request_msg(wd.REQUEST, ciaddr=addr), src=addr, dst=SERVER_IP, mac_dst=SERVER_MAC)
    m = out.dhcp
    assert m is not None and m.message_type == wd.ACK and m.yiaddr == addr and m.ciaddr == addr
    assert out.ip is not None and out.ip.dst == addr
    assert s.server.leases()[0].expires_at == 900.0


def test_rebinding_broadcast_is_answered_too() -> None:
    s = Server()
    addr = s.lease()
    s.at(530.0)
    m = s.one(request_msg(wd.REQUEST, ciaddr=addr), src=addr).dhcp
    assert m is not None and m.message_type == wd.ACK


def test_renewal_for_someone_elses_address_gets_a_nak() -> None:
    s = Server()
    addr = s.lease()
    m = s.one(request_msg(wd.REQUEST, OTHER_MAC, ciaddr=addr), src=addr).dhcp
    assert m is not None and m.message_type == wd.NAK


def test_renewal_of_a_free_address_the_server_forgot_is_adopted() -> None:
    s = Server()
    addr = wip.aton("10.0.0.104")
    m = s.one(request_msg(wd.REQUEST, ciaddr=addr), src=addr).dhcp
    assert m is not None and m.message_type == wd.ACK
    assert [(x.address, x.state) for x in s.server.leases()] == [("10.0.0.104", "bound")]


def test_init_reboot_of_a_known_client_is_acked() -> None:
    s = Server()
    addr = s.lease()
    m = s.one(request_msg(wd.REQUEST, requested_address=addr)).dhcp
    assert m is not None and m.message_type == wd.ACK and m.yiaddr == addr


def test_init_reboot_answers() -> None:
    # RFC 2131 §4.3.2 (INIT-REBOOT): NAK a wrong network or someone else's address;
    # stay silent about a client we have no record of.
    s = Server()
    addr = s.lease()
    assert s.one(request_msg(wd.REQUEST, OTHER_MAC, requested_address=addr)).dhcp.message_type == wd.NAK  # type: ignore[union-attr]
    wrong_net = request_msg(wd.REQUEST, OTHER_MAC, requested_address=wip.aton("192.168.1.5"))
    assert s.one(wrong_net).dhcp.message_type == wd.NAK  # type: ignore[union-attr]
    assert s.send(request_msg(wd.REQUEST, OTHER_MAC, requested_address=FIRST + 5)) == []
    assert s.stack.stats.drops["dhcp_reboot_unknown_client"] == 1


def test_client_identifier_not_chaddr_identifies_the_client() -> None:
    # RFC 2131 §4.2: the client identifier, when sent, is the key.
    s = Server()
    a = s.lease(CLIENT_MAC, client_id=b"\x00id-1")
    b = s.lease(CLIENT_MAC, client_id=b"\x00id-2")
    assert a != b and len(s.server) == 2


# -- RELEASE, DECLINE, INFORM ---------------------------------------------------------------------


def test_release_returns_the_address_to_the_pool() -> None:
    s = Server()
    addr = s.lease()
    assert s.send(request_msg(wd.RELEASE, ciaddr=addr, server_id=SERVER_IP), src=addr, dst=SERVER_IP,
                  mac_dst=SERVER_MAC) == []
    assert s.server.leases() == [] and s.server.free == 10 and s.server.counts["release"] == 1
    assert s.changes == 2


def test_release_of_an_address_that_is_not_yours_is_ignored() -> None:
    s = Server()
    addr = s.lease()
    s.send(request_msg(wd.RELEASE, OTHER_MAC, ciaddr=addr, server_id=SERVER_IP), src=addr)
    assert len(s.server.leases()) == 1 and s.stack.stats.drops["dhcp_release_unknown"] == 1


def test_declined_address_is_held_out_of_the_pool_for_a_while() -> None:
    # RFC 2131 §4.3.3: the server marks the address as not available.
    s = Server(pool_start="10.0.0.100", pool_end="10.0.0.101", decline_hold=600, offer_timeout=1000)
    addr = s.lease()
    s.send(request_msg(wd.DECLINE, requested_address=addr, server_id=SERVER_IP))
    assert s.server.counts["decline"] == 1 and s.server.free == 1 and len(s.server) == 0
    other = s.one(request_msg(wd.DISCOVER)).dhcp
    assert other is not None and other.yiaddr != addr
    s.at(601.0)
    assert s.server.free == 1  # .101 is still offered; .100 is back
    assert s.one(request_msg(wd.DISCOVER, OTHER_MAC)).dhcp.yiaddr == addr  # type: ignore[union-attr]


def test_inform_gets_options_without_a_lease() -> None:
    # RFC 2131 §4.3.5: no lease time, no yiaddr, unicast to ciaddr.
    s = Server()
    client = wip.aton("10.0.0.50")
    out = s.send(request_msg(wd.INFORM, ciaddr=client), src=client)
    # ciaddr is the client's word only: resolve it with ARP rather than trust chaddr.
    assert len(out) == 1 and out[0].arp is not None and out[0].arp.tpa == client, trace(out)
    s.stack.receive(arp_frame(OP_REPLY, CLIENT_MAC, client, SERVER_IP, dst=SERVER_MAC, tha=SERVER_MAC), s.now)
    [out] = sent(s.stack)
    m = out.dhcp
    assert m is not None and m.message_type == wd.ACK and m.yiaddr == 0 and m.options.lease_time is None
    assert m.options.dns_servers and out.ip is not None and out.ip.dst == client


def test_relayed_and_malformed_requests_are_dropped() -> None:
    s = Server()
    relayed = wd.DhcpMessage(wd.OP_REQUEST, 1, CLIENT_MAC, wd.DhcpOptions(message_type=wd.DISCOVER), giaddr=5)
    assert s.send(relayed) == []
    reply = wd.DhcpMessage(wd.OP_REPLY, 1, CLIENT_MAC, wd.DhcpOptions(message_type=wd.OFFER))
    assert s.send(reply) == []
    assert s.send(request_msg(wd.DISCOVER, b"\x01\x00\x5e\x00\x00\x01")) == []  # multicast chaddr
    assert s.send(request_msg(wd.REQUEST)) == []  # neither 50, 54 nor ciaddr
    drops = s.stack.stats.drops
    assert drops["dhcp_relay_unsupported"] == drops["dhcp_not_a_request"] == drops["dhcp_bad_chaddr"] == 1
    assert drops["dhcp_request_malformed"] == 1


# -- expiry and exhaustion --------------------------------------------------------------------


def test_offer_not_taken_up_expires_and_its_address_returns() -> None:
    s = Server(offer_timeout=30)
    s.one(request_msg(wd.DISCOVER))
    assert s.server.free == 9
    s.at(29.0)
    assert len(s.server) == 1
    s.at(30.0)
    assert len(s.server) == 0 and s.server.free == 10 and s.server.counts["expired"] == 1


def test_bound_lease_expires_and_is_reclaimed() -> None:
    s = Server()
    s.lease()
    s.at(599.0)
    assert len(s.server) == 1
    s.at(600.0)
    assert len(s.server) == 0 and s.server.free == 10 and s.changes == 2


def test_lease_shorter_than_an_offer_expires_on_time() -> None:
    s = Server(lease_time=10, offer_timeout=60)
    s.lease()
    s.at(10.0)
    assert len(s.server) == 0


def test_discover_flood_from_random_macs_stays_bounded_and_exhaustion_is_counted() -> None:
    s = Server(offer_timeout=30)
    rng = random.Random(42)
    n = 3000
    for i in range(n):
        s.now = i * 0.001  # 3000 DISCOVERs in 3 s
        s.stack.receive(dhcp_frame(request_msg(wd.DISCOVER, random_mac(rng), xid=i), src=0, mac_src=CLIENT_MAC,
                                   sport=68, dport=67), s.now)
        s.stack.poll(s.now)
        s.stack.take_tx()
    srv = s.server
    record("dhcp_discover_flood", discovers=n, random_macs=n, pool=srv.pool_size, bindings=len(srv),
           offers=srv.counts["offer"], exhausted=srv.counts["exhausted"], expiry_heap=len(srv._expiry),
           arp_entries=len(s.stack.iface.arp))
    assert len(srv) == 10 and srv.free == 0  # the table never outgrows the pool
    assert srv.counts["offer"] == 10 and srv.counts["exhausted"] == n - 10
    assert s.stack.stats.drops["dhcp_pool_exhausted"] == n - 10
    assert len(srv._expiry) <= 2 * len(srv) + 64 and len(srv._free) <= 2 * srv.pool_size + 64
    assert len(s.stack.iface.arp) <= 10
    # The offers were never taken up: 30 s later the pool is whole and serves again.
    s.at(40.0)
    assert len(srv) == 0 and srv.free == 10
    assert s.lease() in range(FIRST, FIRST + 10)


def test_request_and_release_churn_keeps_internal_queues_bounded() -> None:
    s = Server()
    for i in range(2000):
        s.now = float(i)
        addr = s.lease()
        s.send(request_msg(wd.RELEASE, ciaddr=addr, server_id=SERVER_IP), src=addr)
    srv = s.server
    assert len(srv._expiry) <= 2 * len(srv) + 64 and len(srv._free) <= 2 * srv.pool_size + 64


# -- persistence ----------------------------------------------------------------------------------


def test_leases_survive_a_restart_through_json() -> None:
    s = Server()
    a = s.lease(CLIENT_MAC, client_id=CID, hostname="h1")
    s.one(request_msg(wd.DISCOVER, OTHER_MAC))  # an offer: not saved
    text = s.server.to_json(now=100.0, wall=1_000_000.0)
    doc = json.loads(text)
    assert [r["address"] for r in doc["leases"]] == ["10.0.0.100"]
    assert doc["leases"][0]["expires"] == 1_000_500.0
    # A new server, started 50 s of wall time later on a clock that began at 0.
    t = Server()
    assert t.server.load_json(text, now=0.0, wall=1_000_050.0) == 1
    [row] = t.server.leases()
    assert (row.address, row.state, row.hostname, row.expires_at) == ("10.0.0.100", "bound", "h1", 450.0)
    m = t.one(request_msg(wd.REQUEST, client_id=CID, ciaddr=a), src=a).dhcp
    assert m is not None and m.message_type == wd.ACK
    # The restored address is not offered to anyone else.
    assert t.one(request_msg(wd.DISCOVER, OTHER_MAC)).dhcp.yiaddr != a  # type: ignore[union-attr]


def test_expired_or_foreign_saved_leases_are_skipped() -> None:
    t = Server()
    rows = [
        {"mac": "02:00:00:00:00:01", "address": "10.0.0.101", "expires": 10.0},  # expired
        {"mac": "02:00:00:00:00:02", "address": "10.0.0.250", "expires": 1e12},  # outside the pool
        {"mac": "02:00:00:00:00:03", "address": "10.0.0.102", "expires": 1e12},
    ]
    assert t.server.load_json(json.dumps({"version": 1, "leases": rows}), 0.0, 100.0) == 1
    with pytest.raises(ValueError):
        t.server.load_json("[]", 0.0, 0.0)
    with pytest.raises(ValueError):
        t.server.load_json('{"leases": [{"mac": "zz"}]}', 0.0, 0.0)


# -- configuration -----------------------------------------------------------------------------


def test_bad_configurations_are_refused() -> None:
    unconfigured = Stack(mac=SERVER_MAC)
    with pytest.raises(ValueError):
        DhcpServer(unconfigured, DhcpServerConfig(*POOL))
    with pytest.raises(ValueError):
        Server(pool_start="10.0.1.1", pool_end="10.0.1.9")  # outside the subnet
    with pytest.raises(ValueError):
        Server(pool_start="10.0.0.9", pool_end="10.0.0.1")
    with pytest.raises(ValueError):
        Server(reservations={"02:00:00:00:00:09": "192.168.0.1"})


# -- hostile requests ----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=700))
def test_arbitrary_bytes_to_port_67_never_raise(data: bytes) -> None:
    s = Server()
    s.stack.receive(udp_payload_frame(data, src=0, sport=68, dport=67, mac_src=CLIENT_MAC), 0.0)
    s.at(1e4)


_u32 = st.integers(0, 0xFFFFFFFF)
_near = st.sampled_from([0, SERVER_IP, OTHER_SERVER_IP, FIRST, FIRST + 1, FIRST + 9, FIRST + 20]) | _u32
_requests = st.builds(
    lambda mtype, mac, cid, req, sid, ciaddr, flags, prl: wd.DhcpMessage(
        wd.OP_REQUEST, 1, mac, wd.DhcpOptions(message_type=mtype, client_id=cid, requested_address=req,
                                              server_id=sid, parameter_request_list=prl), ciaddr=ciaddr,
        flags=flags),
    st.sampled_from([None, *range(1, 9)]),
    st.sampled_from([CLIENT_MAC, OTHER_MAC]) | st.binary(min_size=6, max_size=6),
    st.none() | st.sampled_from([CID, b"\x00x"]),
    st.none() | _near,
    st.none() | _near,
    _near,
    st.sampled_from([0, wd.FLAG_BROADCAST]),
    st.lists(st.integers(0, 255), max_size=5).map(tuple),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_requests, st.floats(0, 100)), min_size=1, max_size=15))
def test_any_sequence_of_requests_never_raises_and_stays_in_the_pool(
        steps: list[tuple[wd.DhcpMessage, float]]) -> None:
    s = Server(offer_timeout=30, lease_time=60, reservations={weth.mac_to_str(OTHER_MAC): "10.0.0.200"})
    for msg, dt in steps:
        s.now += dt
        s.send(msg)
        srv = s.server
        assert len(srv) <= srv.pool_size + 1
        for row in srv.leases():
            a = wip.aton(row.address)
            assert FIRST <= a <= FIRST + 9 or row.address == "10.0.0.200"
    s.at(s.now + 1e4)
    assert len(s.server) == 0 and s.server.free == 10
