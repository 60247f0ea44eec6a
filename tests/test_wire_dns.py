"""DNS messages (RFC 1035 §4): names, compression and its abuse, records, and
cross-checks against scapy's encoder and decoder."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqs.errors import ParseError
from seqs.wire import dns as wdns
from seqs.wire.dns import DnsMessage, DnsView, Question, Record

HDR = struct.Struct("!HHHHHH")


def header(ident: int = 1, flags: int = 0x8180, qd: int = 0, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return HDR.pack(ident, flags, qd, an, ns, ar)


def label(text: bytes) -> bytes:
    return bytes([len(text)]) + text


def ptr(offset: int) -> bytes:
    return struct.pack("!H", 0xC000 | offset)


def rr_tail(rtype: int, rdata: bytes, ttl: int = 60) -> bytes:
    return struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


# -- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "wire"), [
    ("www.example.org", b"\x03www\x07example\x03org\x00"),
    ("www.example.org.", b"\x03www\x07example\x03org\x00"),
    ("", b"\x00"),
    (".", b"\x00"),
    ("a\\.b.c", b"\x03a.b\x01c\x00"),
    ("x\\032y", b"\x03x y\x00"),
])
def test_names_encode_to_length_prefixed_labels(text: str, wire: bytes) -> None:
    assert wdns.encode_name(text) == wire


@pytest.mark.parametrize("raw", [b"\x03a.b\x01c\x00", b"\x03x y\x00", b"\x02\\\x00\x00", b"\x01\xff\x00"])
def test_name_presentation_round_trips_through_escapes(raw: bytes) -> None:
    # RFC 1035 §5.1: dots and backslashes inside labels are escaped, other bytes as \DDD.
    text = wdns.decode_name(raw)
    assert wdns.encode_name(text) == raw


@pytest.mark.parametrize("bad", ["a..b", ".a", "a" * 64 + ".org", ".".join(["a" * 63] * 4) + ".x",
                                 "ünïcode.org", "a\\"])
def test_invalid_names_are_refused_with_value_error(bad: str) -> None:
    with pytest.raises(ValueError):
        wdns.encode_name(bad)


def test_longest_legal_name_is_255_bytes_on_the_wire() -> None:
    name = ".".join(["a" * 63] * 3 + ["b" * 61])
    assert len(wdns.encode_name(name)) == 255
    assert wdns.decode_name(wdns.encode_name(name)) == name


def test_names_compare_case_insensitively() -> None:
    # RFC 4343
    assert Question("WWW.Example.ORG", 1).matches(Question("www.example.org", 1))
    assert not Question("www.example.org", 1).matches(Question("www.example.org", 28))


def test_reverse_names_for_ipv4_and_ipv6() -> None:
    assert wdns.reverse_name("192.0.2.1") == "1.2.0.192.in-addr.arpa"
    assert wdns.reverse_name("2001:db8::1").endswith(".8.b.d.0.1.0.0.2.ip6.arpa")
    assert wdns.reverse_name("2001:db8::1").startswith("1.0.0.0.")


def test_type_mnemonics() -> None:
    assert wdns.type_code("aaaa") == 28
    assert wdns.type_code("TYPE99") == 99
    assert wdns.type_code(12) == 12
    with pytest.raises(ValueError):
        wdns.type_code("BOGUS")


# -- compression (RFC 1035 §4.1.4) ------------------------------------------------------------


def test_compressed_name_is_followed_to_an_earlier_suffix() -> None:
    msg = header() + b"\x07example\x03org\x00" + b"\x03www" + ptr(12)
    name, end = wdns.read_name(msg, 12 + 13)
    assert (name, end) == ("www.example.org", len(msg))


def test_pointer_to_itself_is_a_parse_error() -> None:
    msg = header() + ptr(12)
    with pytest.raises(ParseError) as e:
        wdns.read_name(msg, 12)
    assert e.value.reason == "dns_bad_pointer"


def test_two_pointers_pointing_at_each_other_cannot_loop() -> None:
    # offset 12: label "a" then a pointer to 17; offset 17: a pointer back to 12
    msg = header() + label(b"a") + ptr(17) + b"\x00" + ptr(12)
    with pytest.raises(ParseError):
        wdns.read_name(msg, 17)
    with pytest.raises(ParseError):
        wdns.read_name(msg, 12)


def test_pointer_into_the_middle_of_its_own_labels_cannot_loop() -> None:
    # The pointer at 16 points back to 12, which is the start of the run it ends:
    # strictly backwards from the pointer, but a loop all the same.
    msg = header() + label(b"abc") + ptr(12)
    with pytest.raises(ParseError) as e:
        wdns.read_name(msg, 12)
    assert e.value.reason == "dns_bad_pointer"


def test_forward_and_out_of_bounds_pointers_are_parse_errors() -> None:
    with pytest.raises(ParseError):
        wdns.read_name(header() + ptr(40), 12)
    with pytest.raises(ParseError):
        wdns.read_name(header() + ptr(0x3FFF), 12)
    with pytest.raises(ParseError) as e:
        wdns.read_name(header() + b"\xc0", 12)  # pointer cut in half
    assert e.value.reason == "dns_name_truncated"


def test_pointer_chain_longer_than_255_bytes_is_refused() -> None:
    # Each 63-byte label points back at the previous one: every jump is backwards,
    # but the name they spell grows past RFC 1035's 255 bytes.
    msg = bytearray(header())
    starts = []
    for i in range(6):
        starts.append(len(msg))
        msg += label(bytes([0x61 + i]) * 63) + (ptr(starts[-2]) if i else b"\x00")
    with pytest.raises(ParseError) as e:
        wdns.read_name(bytes(msg), starts[-1])
    assert e.value.reason == "dns_name_too_long"


def test_extended_label_types_are_refused() -> None:
    with pytest.raises(ParseError) as e:
        wdns.read_name(header() + b"\x41abc\x00", 12)
    assert e.value.reason == "dns_bad_label"


def test_label_running_past_the_message_is_refused() -> None:
    with pytest.raises(ParseError):
        wdns.read_name(header() + b"\x05ab", 12)
    with pytest.raises(ParseError):
        wdns.read_name(header() + b"\x02ab", 12)  # no terminating root label


# -- messages ---------------------------------------------------------------------------------


def test_query_with_edns_carries_an_opt_record() -> None:
    q = DnsMessage.query(0x1234, "www.example.org", wdns.TYPE_AAAA, edns_payload=1232)
    wire = q.emit()
    v = DnsView(wire)
    assert (v.id, v.qr, v.opcode, v.flags & wdns.FLAG_RD, v.qdcount, v.arcount) == (0x1234, False, 0, 0x100, 1, 1)
    back = DnsMessage.parse(wire)
    assert back.questions == (Question("www.example.org", wdns.TYPE_AAAA),)
    assert back.opt is not None and back.opt.cls == 1232 and back.opt.name == ""


def test_emit_compresses_repeated_owner_names_and_parse_reads_them_back() -> None:
    q = DnsMessage.query(9, "big.example", wdns.TYPE_AAAA)
    answers = tuple(Record.aaaa("big.example", f"2001:db8::{i}") for i in range(1, 6))
    wire = q.reply(answers).emit()
    assert wire.count(ptr(12)) == 5  # every owner name is a pointer to the question's
    back = DnsMessage.parse(wire)
    assert [r.value for r in back.answers] == [f"2001:db8::{i}" for i in range(1, 6)]
    assert back.qr and back.aa and back.rd and back.rcode == 0


def test_cname_rdata_is_expanded_when_compressed() -> None:
    q = header(qd=1, an=1) + b"\x03www\x07example\x03org\x00" + struct.pack("!HH", 1, 1)
    # CNAME www.example.org -> web.example.org, the target compressed against the question
    rdata = label(b"web") + ptr(16)
    msg = DnsMessage.parse(q + ptr(12) + rr_tail(wdns.TYPE_CNAME, rdata))
    (cname,) = msg.answers
    assert cname.rdata == wdns.encode_name("web.example.org")
    assert cname.target == "web.example.org" and cname.text == "web.example.org."


def test_rdata_of_the_wrong_size_is_refused() -> None:
    base = header(an=1) + b"\x01a\x00"
    with pytest.raises(ParseError) as e:
        DnsMessage.parse(base + rr_tail(wdns.TYPE_A, b"\x01\x02\x03"))
    assert e.value.reason == "dns_bad_rdata"
    with pytest.raises(ParseError):
        DnsMessage.parse(base + rr_tail(wdns.TYPE_CNAME, b"\x01b\x00junk"))
    with pytest.raises(ParseError):
        DnsMessage.parse(base + rr_tail(wdns.TYPE_A, b"\x01\x02\x03\x04")[:-2])  # RDATA past the end


def test_cname_rdata_may_not_point_past_its_own_end() -> None:
    # The name inside the RDATA runs on into the next record: refused.
    base = header(an=2) + b"\x01a\x00"
    with pytest.raises(ParseError):
        DnsMessage.parse(base + rr_tail(wdns.TYPE_CNAME, b"\x01b") + b"\x00" + rr_tail(wdns.TYPE_A, bytes(4)))


def test_ttl_with_the_top_bit_set_reads_as_zero() -> None:
    # RFC 2181 §8
    msg = DnsMessage.parse(header(an=1) + b"\x01a\x00" + rr_tail(wdns.TYPE_A, bytes(4), ttl=0x80000001))
    assert msg.answers[0].ttl == 0


def test_header_counts_larger_than_the_message_are_parse_errors() -> None:
    with pytest.raises(ParseError):
        DnsMessage.parse(header(qd=65535))
    with pytest.raises(ParseError):
        DnsMessage.parse(header(an=3) + b"\x01a\x00" + rr_tail(wdns.TYPE_A, bytes(4)))
    with pytest.raises(ParseError) as e:
        DnsMessage.parse(b"\x00" * 11)
    assert e.value.reason == "dns_truncated"


def test_extended_rcode_comes_from_the_opt_record() -> None:
    # RFC 6891 §6.1.3: BADVERS (16) = OPT's upper 8 bits 1, header RCODE 0
    opt = Record("", wdns.TYPE_OPT, 1 << 24, b"", cls=1232)
    msg = DnsMessage(1, wdns.FLAG_QR, additional=(opt,))
    assert DnsMessage.parse(msg.emit()).rcode == 16


@pytest.mark.parametrize(("rec", "text"), [
    (Record.a("x", "192.0.2.1"), "192.0.2.1"),
    (Record.aaaa("x", "2001:db8::1"), "2001:db8::1"),
    (Record.cname("x", "y.example"), "y.example."),
    (Record.ptr("x", "host.example"), "host.example."),
    (Record.txt("x", b"hello world", b'say "hi"'), '"hello world" "say \\"hi\\""'),
    (Record("x", wdns.TYPE_MX, 60, b"\x00\x0a" + wdns.encode_name("mail.example")), "10 mail.example."),
    (Record.soa("x", "ns.example", "admin.example", 1, 2, 3, 4, 5), "ns.example. admin.example. 1 2 3 4 5"),
    (Record("x", 99, 60, b"\xab\xcd"), "\\# 2 abcd"),
])
def test_record_presentation_matches_dig_short(rec: Record, text: str) -> None:
    assert rec.text == text
    assert DnsMessage.parse(DnsMessage(1, answers=(rec,)).emit()).answers[0].text == text


def test_soa_negative_ttl_is_the_smaller_of_ttl_and_minimum() -> None:
    # RFC 2308 §5
    assert Record.soa("z", "ns", "admin", 1, 2, 3, 4, 30, ttl=300).soa_negative_ttl == 30
    assert Record.soa("z", "ns", "admin", 1, 2, 3, 4, 900, ttl=300).soa_negative_ttl == 300


# -- against scapy --------------------------------------------------------------------------


def _scapy_response(compress: bool) -> bytes:
    from scapy.layers.dns import DNS, DNSQR, DNSRR

    p = DNS(id=7, qr=1, rd=1, ra=1, qd=DNSQR(qname="www.example.org", qtype="A"),
            an=[DNSRR(rrname="www.example.org", type="CNAME", rdata="web.example.org", ttl=60),
                DNSRR(rrname="web.example.org", type="A", rdata="192.0.2.1", ttl=30)])
    return bytes(p.compress() if compress else p)


@pytest.mark.parametrize("compress", [False, True])
def test_parses_scapy_built_responses(compress: bool) -> None:
    msg = DnsMessage.parse(_scapy_response(compress))
    assert msg.id == 7 and msg.qr and msg.ra and msg.rd
    assert msg.questions == (Question("www.example.org", wdns.TYPE_A),)
    assert [(r.name, r.type, r.ttl, r.text) for r in msg.answers] == [
        ("www.example.org", wdns.TYPE_CNAME, 60, "web.example.org."),
        ("web.example.org", wdns.TYPE_A, 30, "192.0.2.1"),
    ]


def test_scapy_reads_what_we_emit() -> None:
    from scapy.layers.dns import DNS

    q = DnsMessage.query(0xBEEF, "host.example", wdns.TYPE_A)
    wire = q.reply((Record.cname("host.example", "real.example", 10), Record.a("real.example", "198.51.100.7")),
                   ).emit()
    p = DNS(wire)
    assert p.id == 0xBEEF and p.qr == 1 and p.ancount == 2
    assert p.qd[0].qname == b"host.example."
    assert p.an[0].rdata == b"real.example." and p.an[1].rdata == "198.51.100.7"


# -- fuzz: only ParseError ---------------------------------------------------------------------

_SEED = DnsMessage.query(7, "www.example.org", 1).reply(
    (Record.cname("www.example.org", "web.example.org"), Record.a("web.example.org", "192.0.2.1")),
    authority=(Record.soa("example.org", "ns.example.org", "admin.example.org", 1, 2, 3, 4, 5),),
).emit()


def _parse_everything(data: bytes) -> None:
    try:
        msg = DnsMessage.parse(data)
    except ParseError:
        return
    for rr in msg.answers + msg.authority + msg.additional:
        # Reading a parsed record must not raise either (except the documented ValueError
        # for asking a target of a type without one).
        _ = rr.text
        _ = rr.value
    msg.emit()


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_parse_error(data: bytes) -> None:
    _parse_everything(data)


@settings(max_examples=400)
@given(st.lists(st.tuples(st.integers(0, len(_SEED) - 1), st.integers(0, 255)), min_size=1, max_size=8),
       st.integers(0, len(_SEED)))
def test_mutated_responses_raise_only_parse_error(edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(_SEED)
    for pos, value in edits:
        data[pos] = value
    _parse_everything(bytes(data[:cut]) if cut < len(_SEED) // 2 else bytes(data))


@settings(max_examples=300)
@given(st.lists(st.one_of(st.binary(min_size=1, max_size=3).map(lambda b: label(b)),
                          st.integers(0, 0x3FFF).map(ptr), st.just(b"\x00")), max_size=20))
def test_random_label_and_pointer_soup_terminates_with_a_name_or_parse_error(parts: list[bytes]) -> None:
    data = header(qd=1) + b"".join(parts) + b"\x00\x01\x00\x01"
    _parse_everything(data)
    try:
        name, _ = wdns.read_name(data, 12)
    except ParseError:
        return
    assert len(wdns.encode_name(name)) <= 255
