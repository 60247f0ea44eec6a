"""The --trace output: one RFC 9293-style line per segment and per state change."""

from __future__ import annotations

import random
import re

from seqs import Stack
from seqs.phy import VirtualNetwork


def test_trace_draws_handshake_data_and_close_like_rfc_9293() -> None:
    net = VirtualNetwork()
    a = Stack(ip="10.0.0.1/24", rng=random.Random(1))
    b = Stack(ip="10.0.0.2/24", rng=random.Random(2))
    net.attach(a)
    net.attach(b)
    lines: list[str] = []
    a.tcp.tracer = lines.append
    lst = b.tcp_listen(80)
    c = a.tcp_connect(("10.0.0.2", 80))
    assert net.run_until(lambda: c.established, 5)
    c.send(b"hello")
    a.poll(net.now)
    assert net.run_until(lambda: lst.readable, 5)
    s = lst.accept()
    assert s is not None
    net.run_for(0.1)
    assert s.recv() == b"hello"
    s.close()
    net.run_for(0.5)
    c.close()
    net.run_for(1.0)
    text = "\n".join(lines)
    assert re.search(r"SYN-SENT --> <SEQ=\d+><CTL=SYN><WND=\d+>", text), text
    assert re.search(r"SYN-SENT <-- <SEQ=\d+><ACK=\d+><CTL=SYN,ACK><WND=\d+>", text), text
    assert "SYN-SENT -> ESTABLISHED" in text
    assert re.search(r"ESTABLISHED --> <SEQ=\d+><ACK=\d+><CTL=PSH,ACK><WND=\d+><DATA=5>", text), text
    assert "ESTABLISHED -> CLOSE-WAIT" in text
    assert "LAST-ACK -> CLOSED" in text
    # every line names the connection's two ends
    assert all(line.startswith("10.0.0.1:") and ">10.0.0.2:80 " in line for line in lines)


def test_no_tracer_means_no_trace_work() -> None:
    b = Stack(ip="10.0.0.2/24")
    assert b.tcp.tracer is None
