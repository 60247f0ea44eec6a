"""A whole host, sans-IO: one interface plus its sockets.

:class:`Stack` is what runtimes, simulators and tests drive.  It adds no
protocol logic of its own; it wires the layers together and offers the
user-facing constructors.
"""

from __future__ import annotations

import random

from ._typing import BytesLike
from .iface import Interface, InterfaceConfig, Stats
from .sockets import PingSocket, UdpSocket, UdpTable
from .sockets.tcp import TcpListener, TcpTable
from .tcp.connection import TcpConfig, TcpConnection
from .wire import ethernet as weth
from .wire import ipv4 as wip

__all__ = ["Stack", "random_mac"]


def random_mac(rng: random.Random | None = None) -> bytes:
    """A random locally administered unicast MAC (IEEE 802: bit 1 set, bit 0 clear)."""
    r = rng or random.SystemRandom()
    first = (r.getrandbits(8) & 0xFC) | 0x02
    return bytes([first]) + r.getrandbits(40).to_bytes(5, "big")


class Stack:
    """A host: ``Stack(ip="10.0.0.2/24", gateway="10.0.0.1")``.

    Drive it with :meth:`receive`, :meth:`poll`, :meth:`take_tx` and
    :meth:`next_deadline` (see :class:`seqs.iface.Interface`).
    """

    def __init__(
        self,
        *,
        mac: bytes | str | None = None,
        ip: str | None = None,
        gateway: str | None = None,
        mtu: int = 1500,
        vnet_hdr: bool = False,
        rng: random.Random | None = None,
        config: InterfaceConfig | None = None,
        tcp_config: TcpConfig | None = None,
    ) -> None:
        if config is None:
            if isinstance(mac, str):
                mac = weth.parse_mac(mac)
            if mac is None:
                mac = random_mac(rng)
            address, prefix = wip.parse_cidr(ip) if ip else (0, 0)
            gw = wip.aton(gateway) if gateway else None
            config = InterfaceConfig(mac=mac, address=address, prefix=prefix, gateway=gw, mtu=mtu, vnet_hdr=vnet_hdr)
        self.iface = Interface(config, rng=rng)
        self.udp = UdpTable(self.iface)
        self.tcp = TcpTable(self.iface, config=tcp_config)
        #: name servers and NTP servers to use, dotted quads, most preferred first; set
        #: by whoever configures the host (the user, or a DHCP client from its lease)
        #: and read by the DNS and NTP clients.  Updated in place, never replaced.
        self.dns_servers: list[str] = []
        self.ntp_servers: list[str] = []

    # -- identity --------------------------------------------------------------------

    @property
    def stats(self) -> Stats:
        return self.iface.stats

    @property
    def mac(self) -> str:
        return weth.mac_to_str(self.iface.mac)

    @property
    def ip(self) -> str:
        return wip.ntoa(self.iface.address)

    @property
    def cidr(self) -> str:
        return f"{self.ip}/{self.iface.prefix}"

    def set_address(self, cidr: str, gateway: str | None = None) -> None:
        address, prefix = wip.parse_cidr(cidr)
        self.iface.set_address(address, prefix, wip.aton(gateway) if gateway else None)

    # -- driving ---------------------------------------------------------------------

    def receive(self, frame: BytesLike, now: float) -> None:
        self.iface.receive(frame, now)
        self.iface.run_ready()

    def poll(self, now: float) -> None:
        self.iface.poll(now)

    def take_tx(self) -> list[BytesLike]:
        return self.iface.take_tx()

    def next_deadline(self) -> float | None:
        return self.iface.next_deadline()

    # -- sockets ---------------------------------------------------------------------

    def udp_socket(self) -> UdpSocket:
        return self.udp.socket()

    def ping_socket(self) -> PingSocket:
        return PingSocket(self.iface)

    def tcp_connect(self, address: tuple[str, int], *, local_port: int = 0,
                    config: TcpConfig | None = None) -> TcpConnection:
        """Active open; see :meth:`seqs.sockets.tcp.TcpTable.connect`."""
        return self.tcp.connect(address, local_port=local_port, config=config)

    def tcp_listen(self, port: int, address: str = "", backlog: int = 128, *, config: TcpConfig | None = None,
                   reuse_port: bool = False) -> TcpListener:
        """Passive open; see :meth:`seqs.sockets.tcp.TcpTable.listen`."""
        return self.tcp.listen(port, address, backlog, config=config, reuse_port=reuse_port)
