"""Devices: the seeded fault injector, the faulty wrapper over a real socket pair, pcap
recording (read back with scapy), and the virtual-time network joining stacks."""

from __future__ import annotations

import random

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from seqs import Stack
from seqs.phy import (
    FaultConfig,
    FaultInjector,
    FaultyDevice,
    PcapDevice,
    PcapWriter,
    VirtualNetwork,
    socketpair_devices,
)
from seqs.services import UdpEchoService


def _frames(n: int, seed: int = 0, size: tuple[int, int] = (60, 1514)) -> list[bytes]:
    r = random.Random(seed)
    return [r.randbytes(r.randint(*size)) for _ in range(n)]


# -- the fault injector ---------------------------------------------------------------------


def _run(config: FaultConfig, frames: list[bytes]) -> list[list[tuple[float, bytes]]]:
    inj = FaultInjector(config)
    return [inj.process(f, i * 0.001) for i, f in enumerate(frames)]


def test_fault_injector_is_deterministic_for_a_seed() -> None:
    frames = _frames(2000)
    cfg = FaultConfig(loss=0.1, duplicate=0.1, reorder=0.1, corrupt=0.1, jitter=0.002, delay=0.01, seed=42)
    assert _run(cfg, frames) == _run(cfg, frames)
    other = FaultConfig(loss=0.1, duplicate=0.1, reorder=0.1, corrupt=0.1, jitter=0.002, delay=0.01, seed=43)
    assert _run(other, frames) != _run(cfg, frames)


@pytest.mark.parametrize("name", ["loss", "duplicate", "reorder", "corrupt"])
def test_each_impairment_happens_at_roughly_its_configured_rate(name: str) -> None:
    n, p = 20_000, 0.1
    frames = _frames(n, size=(60, 200))
    inj = FaultInjector(FaultConfig(seed=1, **{name: p}))
    out = [inj.process(f, i * 0.001) for i, f in enumerate(frames)]
    counted = {"loss": inj.dropped, "duplicate": inj.duplicated, "reorder": inj.reordered, "corrupt": inj.corrupted}
    # Binomial(20000, 0.1): sd ~ 42, so +-300 is beyond 7 sd.
    assert abs(counted[name] - n * p) < 300, counted
    assert sum(v for k, v in counted.items() if k != name) == 0, counted
    observe = {
        "loss": lambda: sum(1 for o in out if not o),
        "duplicate": lambda: sum(1 for o in out if len(o) == 2),
        "reorder": lambda: sum(1 for i, o in enumerate(out) if o[0][0] > i * 0.001),
        "corrupt": lambda: sum(1 for f, o in zip(frames, out, strict=True) if o[0][1] != f),
    }
    observed = observe[name]()
    assert observed == counted[name]


def test_corruption_flips_one_bit_and_never_in_the_protected_bytes() -> None:
    """The Ethernet header (``protect`` bytes, plus a virtio-net header given as ``skip``)
    stays intact so the IP and transport checksums are what must catch the damage."""
    inj = FaultInjector(FaultConfig(corrupt=1.0, protect=14, seed=3))
    for skip in (0, 12):
        for f in _frames(2000, seed=skip, size=(27, 80)):
            ((_, got),) = inj.process(f, 0.0, skip)
            diff = [i for i in range(len(f)) if f[i] != got[i]]
            assert len(diff) == 1 and diff[0] >= skip + 14, (skip, diff)
            assert bin(f[diff[0]] ^ got[diff[0]]).count("1") == 1
    short = bytes(14)
    assert inj.process(short, 0.0) == [(0.0, short)]  # nothing beyond the protected part


def test_delay_jitter_and_reorder_set_the_release_time() -> None:
    inj = FaultInjector(FaultConfig(delay=0.01, jitter=0.005, seed=5))
    for i in range(500):
        ((t, _),) = inj.process(b"x" * 60, float(i))
        assert i + 0.01 <= t <= i + 0.015
    held = FaultInjector(FaultConfig(reorder=1.0, reorder_delay=0.2, seed=5))
    assert held.process(b"x" * 60, 1.0) == [(pytest.approx(1.2), b"x" * 60)]


def test_link_rate_makes_frames_queue_behind_each_other() -> None:
    inj = FaultInjector(FaultConfig(rate=10_000.0))
    times = [inj.process(bytes(1000), 0.0)[0][0] for _ in range(3)]
    assert times == pytest.approx([0.1, 0.2, 0.3])
    assert inj.process(bytes(1000), 5.0)[0][0] == pytest.approx(5.1)  # an idle link starts afresh


def test_fault_config_refuses_impossible_values() -> None:
    with pytest.raises(ValueError):
        FaultConfig(loss=1.5)
    with pytest.raises(ValueError):
        FaultConfig(delay=-1.0)


# -- the faulty device over a real socket pair -------------------------------------------------


def _read_all(dev, now: float) -> list[bytes]:
    got: list[bytes] = []
    for _ in range(100):
        if dev.read(lambda f, _now: got.append(bytes(f)), now) == 0:
            break
    return got


def test_faulty_device_loses_delays_and_duplicates_over_a_socket_pair() -> None:
    a, b = socketpair_devices()
    try:
        lossy = FaultyDevice(a, tx=FaultConfig(loss=1.0, seed=1))
        lossy.send(b"\x01" * 60, 0.0)
        assert _read_all(b, 0.0) == []
        assert lossy.tx_faults.dropped == 1

        slow = FaultyDevice(a, tx=FaultConfig(delay=0.05, seed=1))
        slow.send(b"\x02" * 60, 1.0)
        assert _read_all(b, 1.0) == []
        assert slow.next_deadline() == pytest.approx(1.05)
        slow.poll(1.049)
        assert _read_all(b, 1.049) == []
        slow.poll(1.05)
        assert _read_all(b, 1.05) == [b"\x02" * 60]
        assert slow.next_deadline() is None

        double = FaultyDevice(b, rx=FaultConfig(duplicate=1.0, seed=1))
        a.send(b"\x03" * 60, 2.0)
        assert _read_all(double, 2.0) == [b"\x03" * 60, b"\x03" * 60]
    finally:
        a.close()
        b.close()


def test_faulty_device_holds_received_frames_until_their_time() -> None:
    a, b = socketpair_devices()
    try:
        late = FaultyDevice(b, rx=FaultConfig(delay=0.1, seed=1))
        a.send(b"\x04" * 60, 0.0)
        assert _read_all(late, 0.0) == []
        assert late.next_deadline() == pytest.approx(0.1)
        assert _read_all(late, 0.1) == [b"\x04" * 60]
    finally:
        a.close()
        b.close()


# -- pcap -------------------------------------------------------------------------------------


def test_pcap_writer_output_reads_back_with_scapy(tmp_path) -> None:
    path = tmp_path / "out.pcap"
    frames = _frames(20, seed=9)
    with PcapWriter(str(path)) as w:
        for i, f in enumerate(frames):
            w.write(f, 1_700_000_000.0 + i * 0.25)
    packets = rdpcap(str(path))
    assert [bytes(p) for p in packets] == frames
    assert [float(p.time) for p in packets] == pytest.approx([1_700_000_000.0 + i * 0.25 for i in range(20)])


def test_pcap_writer_skips_the_vnet_header_and_honours_the_snap_length(tmp_path) -> None:
    path = tmp_path / "vnet.pcap"
    frame = bytes(range(100))
    with PcapWriter(str(path), skip=12, snaplen=50) as w:
        w.write(b"\xee" * 12 + frame, 1.0)
    (p,) = rdpcap(str(path))
    assert bytes(p) == frame[:50]
    assert p.wirelen == 100


def test_pcap_device_records_both_directions_in_order(tmp_path) -> None:
    path = tmp_path / "dev.pcap"
    a, b = socketpair_devices()
    dev = PcapDevice(a, PcapWriter(str(path)))
    try:
        dev.send(b"\x10" * 60, 0.0)
        assert _read_all(b, 0.0) == [b"\x10" * 60]
        b.send(b"\x20" * 70, 0.0)
        assert _read_all(dev, 0.0) == [b"\x20" * 70]
    finally:
        dev.close()
        b.close()
    assert [bytes(p) for p in rdpcap(str(path))] == [b"\x10" * 60, b"\x20" * 70]


# -- the virtual network ---------------------------------------------------------------------


def _three_hosts(seed: int = 1) -> tuple[VirtualNetwork, list[Stack]]:
    net = VirtualNetwork()
    stacks = [Stack(ip=f"10.0.0.{i + 1}/24", rng=random.Random(seed + i)) for i in range(3)]
    for s in stacks:
        net.attach(s)
    return net, stacks


def test_virtual_network_delivers_between_three_stacks() -> None:
    net, (a, b, c) = _three_hosts()
    echo_b, echo_c = UdpEchoService(b), UdpEchoService(c)
    sock = a.udp_socket()
    sock.sendto(b"to b", ("10.0.0.2", 7))
    sock.sendto(b"to c", ("10.0.0.3", 7))
    got: list = []

    def both_answered() -> bool:
        while (d := sock.recvfrom()) is not None:
            got.append(d)
        return len(got) == 2

    assert net.run_until(both_answered, timeout=5.0)
    assert sorted(got) == [(b"to b", ("10.0.0.2", 7)), (b"to c", ("10.0.0.3", 7))]
    assert (echo_b.echoed, echo_c.echoed) == (1, 1)


def test_virtual_network_learns_where_macs_are_and_stops_flooding_unicast() -> None:
    net, (a, b, c) = _three_hosts()
    ping = a.ping_socket()
    ping.send("10.0.0.2", 1)
    assert net.run_until(ping.recv, timeout=5.0)  # ARP broadcast, then unicast both ways
    seen_by_c = c.stats.rx_frames
    assert seen_by_c == 1  # only the broadcast ARP request
    for seq in range(2, 12):
        ping.send("10.0.0.2", seq)
        assert net.run_until(ping.recv, timeout=5.0)
    assert c.stats.rx_frames == seen_by_c
    assert b.stats.icmp_rx == 11


def _lossy_trace(seed: int) -> tuple[list[tuple[float, int, bytes]], dict]:
    net = VirtualNetwork()
    a = Stack(ip="10.0.0.1/24", mac="02:00:00:00:00:01", rng=random.Random(1))
    b = Stack(ip="10.0.0.2/24", mac="02:00:00:00:00:02", rng=random.Random(2))
    lossy = FaultConfig(loss=0.3, duplicate=0.1, reorder=0.1, jitter=0.001, seed=seed)
    net.attach(a, lossy)
    net.attach(b, lossy)
    UdpEchoService(b)
    trace: list[tuple[float, int, bytes]] = []
    net.taps.append(lambda t, port, frame: trace.append((t, port, frame)))
    sock = a.udp_socket()
    for i in range(40):
        sock.sendto(b"%d" % i, ("10.0.0.2", 7))
        net.run_for(0.5)
    return trace, b.stats.as_dict()


def test_seeded_lossy_run_is_reproducible() -> None:
    first, stats = _lossy_trace(seed=11)
    again, stats_again = _lossy_trace(seed=11)
    assert first == again and stats == stats_again
    other, _ = _lossy_trace(seed=12)
    assert other != first


def test_virtual_network_records_a_pcap_that_scapy_decodes(tmp_path) -> None:
    path = tmp_path / "net.pcap"
    with PcapWriter(str(path)) as w:
        net = VirtualNetwork(pcap=w)
        a = Stack(ip="10.0.0.1/24", rng=random.Random(1))
        b = Stack(ip="10.0.0.2/24", rng=random.Random(2))
        net.attach(a)
        net.attach(b)
        ping = a.ping_socket()
        ping.send("10.0.0.2", 1, b"pcap")
        assert net.run_until(ping.recv, timeout=5.0)
    packets = rdpcap(str(path))
    icmp = [(p[IP].src, p[IP].dst, p[ICMP].type) for p in packets if p.haslayer(ICMP)]
    assert icmp == [("10.0.0.1", "10.0.0.2", 8), ("10.0.0.2", "10.0.0.1", 0)]
    assert all(p.haslayer(Ether) for p in packets)
